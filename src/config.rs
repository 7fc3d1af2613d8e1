//! `config.toml` -> a validated [`Config`].
//!
//! This is the only module that reads the configuration file. Everything it
//! hands out is already checked: paths are absolute, the base URL ends in `/`,
//! language tags are valid BCP 47, numbers are in range. A [`ConfigError`]
//! names the file, the key and (where it can) the line; `main` turns it into
//! exit code 78 (EX_CONFIG).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::announcement::lang::LangTag;

/// Why a configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the configuration file: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}:{line}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it came from (absolute).
    pub source: PathBuf,
    pub site: Site,
    pub paths: Paths,
    pub server: Server,
    pub watch: Watch,
    pub feeds: Feeds,
    pub limits: Limits,
    pub log: Log,
    pub monitoring: Monitoring,
    pub websub: WebSub,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Monitoring {
    pub metrics: bool,
    pub healthz: bool,
    /// `None` = on the feed listeners; else their own addresses.
    pub listen: Option<Vec<SocketAddr>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub title: String,
    pub description: String,
    /// Always ends with `/`.
    pub base_url: String,
    /// Expected languages; empty means "detect among all supported".
    pub languages: Vec<LangTag>,
    pub default_language: LangTag,
    pub author: String,
    /// The authority of `tag:` ids; `None` = the host of `base_url` at first run.
    pub id_authority: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Paths {
    pub watch: PathBuf,
    pub feeds: PathBuf,
    pub state: PathBuf,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub listen: Vec<SocketAddr>,
    pub max_age: Duration,
    pub shutdown_grace: Duration,
    pub header_read_timeout: Duration,
    pub send_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub access_log: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Watch {
    pub debounce: Duration,
    /// `Some` = poll instead of using inotify (network filesystems).
    pub poll_interval: Option<Duration>,
    /// `None` = no periodic safety rescan.
    pub rescan_interval: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Feeds {
    pub max_entries: usize,
    /// How long a withdrawn entry is announced as deleted (RFC 6721).
    pub tombstone_period: chrono::Duration,
    /// Memory for documents rendered on demand (pages, archives, tag feeds).
    pub cache_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WebSub {
    /// Hubs told about every change of a feed; empty = none.
    pub hubs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_file_bytes: u64,
    pub max_title_chars: usize,
    pub max_summary_chars: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable; plain (no timestamps, journal priorities) under journald.
    Auto,
    Json,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    pub level: String,
    pub format: LogFormat,
}

// ---- the file's shape -------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    site: RawSite,
    paths: RawPaths,
    server: RawServer,
    watch: RawWatch,
    feeds: RawFeeds,
    limits: RawLimits,
    log: RawLog,
    monitoring: RawMonitoring,
    websub: RawWebSub,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWebSub {
    hubs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMonitoring {
    metrics: bool,
    healthz: bool,
    listen: OneOrMany,
}

impl Default for RawMonitoring {
    fn default() -> Self {
        RawMonitoring {
            metrics: true,
            healthz: true,
            listen: OneOrMany::Many(Vec::new()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSite {
    title: String,
    description: Option<String>,
    base_url: String,
    languages: Vec<String>,
    default_language: String,
    author: Option<String>,
    id_authority: Option<String>,
}

impl Default for RawSite {
    fn default() -> Self {
        RawSite {
            title: "City announcements".into(),
            description: None,
            base_url: "http://127.0.0.1:8080/".into(),
            languages: Vec::new(),
            default_language: "en".into(),
            author: None,
            id_authority: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPaths {
    watch: PathBuf,
    feeds: PathBuf,
    state: PathBuf,
}

impl Default for RawPaths {
    fn default() -> Self {
        RawPaths {
            watch: "watch".into(),
            feeds: "feeds".into(),
            state: "state".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: OneOrMany,
    max_age_s: u64,
    shutdown_grace_ms: u64,
    header_read_timeout_ms: u64,
    send_timeout_ms: u64,
    max_connections: usize,
    max_header_bytes: usize,
    access_log: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: OneOrMany::One("127.0.0.1:8080".into()),
            max_age_s: 60,
            shutdown_grace_ms: 5_000,
            header_read_timeout_ms: 10_000,
            send_timeout_ms: 60_000,
            max_connections: 10_000,
            max_header_bytes: 16 * 1024,
            access_log: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatch {
    debounce_ms: u64,
    poll_interval_ms: u64,
    rescan_interval_s: u64,
}

impl Default for RawWatch {
    fn default() -> Self {
        RawWatch {
            debounce_ms: 250,
            poll_interval_ms: 0,
            rescan_interval_s: 3600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawFeeds {
    max_entries: usize,
    tombstone_days: u32,
    cache_mb: usize,
}

impl Default for RawFeeds {
    fn default() -> Self {
        RawFeeds {
            max_entries: 50,
            tombstone_days: 30,
            cache_mb: 32,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLimits {
    max_file_bytes: u64,
    max_title_chars: usize,
    max_summary_chars: usize,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_file_bytes: 4 * 1024 * 1024,
            max_title_chars: 300,
            max_summary_chars: 400,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLog {
    level: String,
    format: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            level: "info".into(),
            format: "auto".into(),
        }
    }
}

impl Config {
    /// Reads and validates the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Config::parse(&text, &absolute)
    }

    /// Validates configuration text; `path` is where it came from (relative
    /// paths in it are relative to that file's folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let invalid = |table: &str, key: &str, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(text, table, key),
            key: format!("{table}.{key}"),
            message,
        };
        let base_dir = path.parent().unwrap_or(Path::new("."));

        let s = raw.site;
        if s.title.trim().is_empty() {
            return Err(invalid("site", "title", "must not be empty".into()));
        }
        let base_url =
            validate_base_url(&s.base_url).map_err(|m| invalid("site", "base_url", m))?;
        let mut languages = Vec::new();
        for tag in &s.languages {
            let parsed = LangTag::parse(tag).ok_or_else(|| {
                invalid(
                    "site",
                    "languages",
                    format!("{tag:?} is not a BCP 47 language tag"),
                )
            })?;
            if !languages.contains(&parsed) {
                languages.push(parsed);
            }
        }
        let default_language = LangTag::parse(&s.default_language).ok_or_else(|| {
            invalid(
                "site",
                "default_language",
                format!("{:?} is not a BCP 47 language tag", s.default_language),
            )
        })?;
        if let Some(authority) = &s.id_authority {
            if !is_tag_authority(authority) {
                return Err(invalid(
                    "site",
                    "id_authority",
                    "must be a DNS name or an e-mail address (RFC 4151)".into(),
                ));
            }
        }
        let site = Site {
            description: s.description.unwrap_or_else(|| s.title.clone()),
            author: s.author.unwrap_or_else(|| s.title.clone()),
            title: s.title,
            base_url,
            languages,
            default_language,
            id_authority: s.id_authority,
        };

        let p = raw.paths;
        for (key, value) in [
            ("watch", &p.watch),
            ("feeds", &p.feeds),
            ("state", &p.state),
        ] {
            if value.as_os_str().is_empty() {
                return Err(invalid("paths", key, "must not be empty".into()));
            }
        }
        let paths = Paths {
            watch: base_dir.join(&p.watch),
            feeds: base_dir.join(&p.feeds),
            state: base_dir.join(&p.state),
        };
        if paths.feeds.starts_with(&paths.watch) || paths.watch.starts_with(&paths.feeds) {
            return Err(invalid(
                "paths",
                "feeds",
                "the feeds folder and the watch folder must not contain each other".into(),
            ));
        }

        let r = raw.server;
        let listen_strings = match r.listen {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        let parse_addrs = |table: &str, list: &[String]| -> Result<Vec<SocketAddr>, ConfigError> {
            list.iter()
                .map(|addr| {
                    addr.parse::<SocketAddr>().map_err(|_| {
                        invalid(
                            table,
                            "listen",
                            format!("{addr:?} is not an address:port (e.g. \"127.0.0.1:8080\" or \"[::1]:8080\")"),
                        )
                    })
                })
                .collect()
        };
        let listen = parse_addrs("server", &listen_strings)?;
        if listen.is_empty() {
            return Err(invalid(
                "server",
                "listen",
                "needs at least one address".into(),
            ));
        }
        let m = raw.monitoring;
        let monitoring_listen = match m.listen {
            OneOrMany::One(s) if s.is_empty() => Vec::new(),
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        let monitoring = Monitoring {
            metrics: m.metrics,
            healthz: m.healthz,
            listen: match parse_addrs("monitoring", &monitoring_listen)? {
                v if v.is_empty() => None,
                v => Some(v),
            },
        };
        if r.max_connections == 0 {
            return Err(invalid(
                "server",
                "max_connections",
                "must be at least 1".into(),
            ));
        }
        if r.max_header_bytes < 1024 {
            return Err(invalid(
                "server",
                "max_header_bytes",
                "must be at least 1024".into(),
            ));
        }
        let server = Server {
            listen,
            max_age: Duration::from_secs(r.max_age_s),
            shutdown_grace: Duration::from_millis(r.shutdown_grace_ms),
            header_read_timeout: Duration::from_millis(r.header_read_timeout_ms.max(1)),
            send_timeout: Duration::from_millis(r.send_timeout_ms.max(1)),
            max_connections: r.max_connections,
            max_header_bytes: r.max_header_bytes,
            access_log: r.access_log,
        };

        let w = raw.watch;
        if w.debounce_ms > 60_000 {
            return Err(invalid(
                "watch",
                "debounce_ms",
                "must be at most 60000".into(),
            ));
        }
        let watch = Watch {
            debounce: Duration::from_millis(w.debounce_ms),
            poll_interval: (w.poll_interval_ms > 0)
                .then(|| Duration::from_millis(w.poll_interval_ms)),
            rescan_interval: (w.rescan_interval_s > 0)
                .then(|| Duration::from_secs(w.rescan_interval_s)),
        };

        if raw.feeds.max_entries == 0 {
            return Err(invalid("feeds", "max_entries", "must be at least 1".into()));
        }
        if raw.feeds.tombstone_days > 3650 {
            return Err(invalid(
                "feeds",
                "tombstone_days",
                "must be at most 3650".into(),
            ));
        }
        let feeds = Feeds {
            max_entries: raw.feeds.max_entries,
            tombstone_period: chrono::Duration::days(raw.feeds.tombstone_days.into()),
            cache_bytes: raw.feeds.cache_mb.min(1 << 20) << 20,
        };
        let mut hubs = Vec::new();
        for hub in raw.websub.hubs {
            let ok = (hub.starts_with("https://") || hub.starts_with("http://"))
                && hub.len() > "https://".len()
                && !hub.contains(char::is_whitespace)
                && !hub.contains(['"', '<', '>']);
            if !ok {
                return Err(invalid(
                    "websub",
                    "hubs",
                    format!("{hub:?} is not an http:// or https:// URL"),
                ));
            }
            hubs.push(hub);
        }
        let websub = WebSub { hubs };

        let l = raw.limits;
        if l.max_file_bytes == 0 {
            return Err(invalid(
                "limits",
                "max_file_bytes",
                "must be at least 1".into(),
            ));
        }
        if l.max_title_chars < 20 {
            return Err(invalid(
                "limits",
                "max_title_chars",
                "must be at least 20".into(),
            ));
        }
        if l.max_summary_chars < 20 {
            return Err(invalid(
                "limits",
                "max_summary_chars",
                "must be at least 20".into(),
            ));
        }
        let limits = Limits {
            max_file_bytes: l.max_file_bytes,
            max_title_chars: l.max_title_chars,
            max_summary_chars: l.max_summary_chars,
        };

        let format = match raw.log.format.as_str() {
            "auto" => LogFormat::Auto,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "log",
                    "format",
                    format!("{other:?} is not one of \"auto\", \"json\""),
                ))
            }
        };
        if tracing_subscriber::EnvFilter::try_new(&raw.log.level).is_err() {
            return Err(invalid(
                "log",
                "level",
                format!(
                    "{:?} is not a level or filter (e.g. \"info\", \"herald=debug\")",
                    raw.log.level
                ),
            ));
        }
        let log = Log {
            level: raw.log.level,
            format,
        };

        Ok(Config {
            source: path.to_path_buf(),
            site,
            paths,
            server,
            watch,
            feeds,
            limits,
            log,
            monitoring,
            websub,
        })
    }
}

fn validate_base_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains(['?', '#', ' ', '"', '<', '>']) {
        return Err(format!(
            "{url:?} must not contain a query, a fragment, spaces or quotes"
        ));
    }
    let mut url = url.to_string();
    if !url.ends_with('/') {
        url.push('/');
    }
    Ok(url)
}

/// The host part of a base URL, without port or brackets.
pub fn base_url_host(base_url: &str) -> &str {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// RFC 4151 `authorityName`: a DNS name or an e-mail address.
pub fn is_tag_authority(s: &str) -> bool {
    let dns = |d: &str| {
        !d.is_empty()
            && d.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            })
    };
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b))
                && dns(domain)
        }
        None => dns(s),
    }
}

/// Best-effort line number of `key` inside `[table]`, for error messages.
fn line_of(text: &str, table: &str, key: &str) -> usize {
    let mut current = String::new();
    let mut table_line = 0;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = name.trim().to_string();
            if current == table {
                table_line = i + 1;
            }
            continue;
        }
        if current == table {
            if let Some((k, _)) = t.split_once('=') {
                if k.trim() == key {
                    return i + 1;
                }
            }
        }
    }
    table_line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/herald/config.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.paths.watch, PathBuf::from("/etc/herald/watch"));
        assert_eq!(c.site.base_url, "http://127.0.0.1:8080/");
        assert_eq!(c.feeds.max_entries, 50);
        assert_eq!(c.watch.debounce, Duration::from_millis(250));
        assert_eq!(c.site.default_language.as_str(), "en");
        assert_eq!(c.server.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let err = parse("[site]\ntitel = \"x\"\n").unwrap_err().to_string();
        assert!(err.contains("titel"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn invalid_values_name_key_and_line() {
        let check = |text: &str, key: &str, line: usize| {
            let err = parse(text).unwrap_err();
            match &err {
                ConfigError::Invalid {
                    key: k, line: l, ..
                } => {
                    assert_eq!((k.as_str(), *l), (key, line), "{err}")
                }
                other => panic!("{other}"),
            }
        };
        check(
            "[site]\n\nlanguages = [\"pl\", \"not a tag\"]\n",
            "site.languages",
            3,
        );
        check(
            "[site]\ndefault_language = \"english\"\n",
            "site.default_language",
            2,
        );
        check("[site]\nbase_url = \"ftp://x/\"\n", "site.base_url", 2);
        check("[server]\nlisten = \"localhost\"\n", "server.listen", 2);
        check("[feeds]\nmax_entries = 0\n", "feeds.max_entries", 2);
        check("[log]\nformat = \"xml\"\n", "log.format", 2);
    }

    #[test]
    fn listen_accepts_one_or_many() {
        let c = parse("[server]\nlisten = [\"127.0.0.1:1\", \"[::1]:2\"]\n").unwrap();
        assert_eq!(c.server.listen.len(), 2);
    }

    #[test]
    fn base_url_gets_a_trailing_slash() {
        let c = parse("[site]\nbase_url = \"https://news.example.org/city\"\n").unwrap();
        assert_eq!(c.site.base_url, "https://news.example.org/city/");
        assert_eq!(base_url_host(&c.site.base_url), "news.example.org");
        assert_eq!(base_url_host("http://[::1]:8080/"), "::1");
    }

    #[test]
    fn tag_authorities() {
        assert!(is_tag_authority("example.org"));
        assert!(is_tag_authority("news@example.org"));
        assert!(is_tag_authority("127.0.0.1"));
        assert!(!is_tag_authority("exa mple.org"));
        assert!(!is_tag_authority("-bad.org"));
    }
}
