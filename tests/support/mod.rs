//! Shared helpers for the integration tests: temporary sites, running the
//! real binary, reading what it wrote with independent parsers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// A temporary site: `watch/`, `feeds/`, `state/` and a `config.toml`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(extra_config: &str) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("watch")).expect("watch dir");
        let config = format!(
            "[site]\ntitle = \"Test city\"\nbase_url = \"https://news.example.org/\"\n{extra_config}"
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn watch(&self) -> PathBuf {
        self.dir.path().join("watch")
    }
    pub fn feeds(&self) -> PathBuf {
        self.dir.path().join("feeds")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Writes a file below `watch/`, creating folders.
    pub fn put(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.watch().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Copies the shared corpus (and the seed) into `watch/`.
    pub fn with_corpus(self) -> Site {
        for sub in ["announcements", "edge", "ignore"] {
            copy_dir(&corpus_dir().join(sub), &self.watch().join(sub));
        }
        copy_dir(&shared_dir().join("seeds"), &self.watch().join("seeds"));
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run herald")
    }

    /// Runs `herald build` and asserts it succeeded.
    pub fn build(&self) -> Output {
        let out = self.run(&["build"]);
        assert!(
            out.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `herald check --json`, parsed.
    pub fn check_json(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["check", "--json"]);
        assert!(
            out.status.success(),
            "check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("check --json prints JSON")
    }

    pub fn read_feed(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.feeds().join(rel)).unwrap_or_else(|e| panic!("feeds/{rel}: {e}"))
    }

    /// A feed parsed by feed-rs (an independent parser).
    pub fn parse_feed(&self, rel: &str) -> feed_rs::model::Feed {
        feed_rs::parser::parse(&self.read_feed(rel)[..])
            .unwrap_or_else(|e| panic!("feeds/{rel}: {e}"))
    }

    /// Every file below `feeds/` with its bytes, sorted by path.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.feeds(), &self.feeds(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
}

pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn corpus_dir() -> PathBuf {
    shared_dir().join("corpus")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{}: {e}", from.display()))
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Undoes HTML escaping (the entities herald and ammonia write).
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Whether a possibly shortened title matches the expected one.
pub fn title_matches(got: &str, expected: &str) -> bool {
    got == expected
        || (got.ends_with('…') && expected.starts_with(got.trim_end_matches('…').trim_end()))
}

// ---- the daemon ---------------------------------------------------------------

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `herald serve` on a free loopback port.
pub struct Daemon {
    pub child: Child,
    pub addr: String,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl Site {
    /// A site whose daemon listens on 127.0.0.1:0 with a short debounce.
    pub fn for_daemon(extra: &str) -> Site {
        Site::new(&format!("{extra}\n[server]\nlisten = \"127.0.0.1:0\"\naccess_log = false\n[watch]\ndebounce_ms = 100\n"))
    }

    /// Starts the daemon and waits until it listens.
    pub fn serve(&self) -> Daemon {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(self.config()).arg("serve");
        self.serve_with(cmd)
    }

    /// Starts a prepared daemon command and waits until it listens.
    pub fn serve_with(&self, mut cmd: Command) -> Daemon {
        let mut child = cmd
            .env_remove("RUST_LOG")
            .env_remove("NO_COLOR")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herald serve");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut d = Daemon {
            child,
            addr: String::new(),
            logs,
        };
        let addr = wait_for(Duration::from_secs(30), || {
            d.logs.lock().unwrap().iter().find_map(|l| {
                l.contains("listening").then(|| {
                    l.split("addr=")
                        .nth(1)?
                        .split_whitespace()
                        .next()
                        .map(str::to_string)
                })?
            })
        });
        d.addr =
            addr.unwrap_or_else(|| panic!("daemon did not start: {:?}", d.logs.lock().unwrap()));
        d
    }
}

impl Daemon {
    /// One request on a fresh connection; `extra` are raw header lines.
    pub fn request(&self, method: &str, path: &str, extra: &[&str]) -> Resp {
        Daemon::request_to(&self.addr, method, path, extra)
    }

    /// One request to any address.
    pub fn request_to(addr: &str, method: &str, path: &str, extra: &[&str]) -> Resp {
        let mut s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        for h in extra {
            req.push_str(h);
            req.push_str("\r\n");
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("send");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        Resp::parse(&raw)
    }

    pub fn get(&self, path: &str) -> Resp {
        self.request("GET", path, &[])
    }

    /// Waits until `path` is served compressed: a publish (the first one
    /// too) is served uncompressed at once, its gzip and brotli forms follow.
    pub fn wait_compressed(&self, path: &str) {
        let ready = wait_for(Duration::from_secs(30), || {
            let gz = self.request("GET", path, &["Accept-Encoding: gzip"]);
            let br = self.request("GET", path, &["Accept-Encoding: br"]);
            (gz.header("content-encoding") == Some("gzip")
                && br.header("content-encoding") == Some("br"))
            .then_some(())
        });
        assert!(ready.is_some(), "{path} was never served compressed");
    }

    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap().clone()
    }

    /// Sends a signal (`"HUP"`, `"TERM"`...).
    pub fn signal(&self, name: &str) {
        Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let status = wait_for(Duration::from_secs(20), || {
            self.child.try_wait().ok().flatten()
        });
        status.unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("daemon did not stop on SIGTERM")
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    fn parse(raw: &[u8]) -> Resp {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(raw.len());
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let body = raw.get(split + 4..).unwrap_or(&[]).to_vec();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Decodes `%XX` escapes (URLs in feeds -> paths in the feeds folder).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(deadline: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ids in a served feed (parsed by feed-rs).
pub fn feed_ids(resp: &Resp) -> Vec<String> {
    match feed_rs::parser::parse(&resp.body[..]) {
        Ok(f) => f.entries.into_iter().map(|e| e.id).collect(),
        Err(_) => Vec::new(),
    }
}

/// The titles in a served feed.
pub fn feed_titles(resp: &Resp) -> Vec<String> {
    match feed_rs::parser::parse(&resp.body[..]) {
        Ok(f) => f
            .entries
            .into_iter()
            .filter_map(|e| e.title.map(|t| t.content))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Makes sure a Debian package's program works: runs `probe`, and when it
/// fails and we are root, installs `package` with apt-get and probes again.
/// So `cargo test` needs nothing installed by hand on a Debian machine.
pub fn ensure_debian_package(package: &str, mut probe: impl FnMut() -> bool) -> bool {
    if probe() {
        return true;
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if is_root {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-qq", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    probe()
}
