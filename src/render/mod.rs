//! Catalog entries -> feed and page bytes.
//!
//! Pure: no file system, clock, network or logging; everything (including
//! the dates shown) comes in as arguments, so the same entries always give
//! byte-identical output. `rss` and `atom` write the feeds, `html` the pages.

pub mod atom;
pub mod html;
pub mod rss;

use chrono::{DateTime, FixedOffset};

use crate::announcement::lang::LangTag;
use crate::catalog::Entry;

/// `herald/VERSION`, for the feeds' generator elements.
pub const GENERATOR: &str = "herald";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the renderers need to know about the site.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    pub title: String,
    pub description: String,
    /// Ends with `/`.
    pub base_url: String,
    pub author: String,
    /// The `tag:` prefix of every id, fixed at first run (ends with `:`).
    pub id_prefix: String,
    pub default_language: LangTag,
    /// The feeds' `updated` when they have no entries: the first run's time.
    pub epoch: DateTime<FixedOffset>,
    /// Primary languages with live entries and their counts, sorted.
    pub languages: Vec<(LangTag, usize)>,
}

/// Which entries a feed or index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// One primary language.
    Lang(LangTag),
}

impl Scope {
    /// The folder of its documents below the base URL: `""` or `"uk/"`.
    pub fn dir(&self) -> String {
        match self {
            Scope::All => String::new(),
            Scope::Lang(l) => format!("{}/", l.primary()),
        }
    }

    pub fn title(&self, site: &Site) -> String {
        match self {
            Scope::All => site.title.clone(),
            Scope::Lang(l) => format!("{} ({})", site.title, l.name()),
        }
    }

    /// The language a document of this scope is in (the default for `All`).
    pub fn lang<'a>(&'a self, site: &'a Site) -> &'a LangTag {
        match self {
            Scope::All => &site.default_language,
            Scope::Lang(l) => l,
        }
    }

    pub fn feed_id(&self, site: &Site) -> String {
        match self {
            Scope::All => format!("{}feed", site.id_prefix),
            Scope::Lang(l) => format!("{}feed/{}", site.id_prefix, l.primary()),
        }
    }
}

/// The path (below the base URL) of an entry's page: `uk/tram-detour.html`.
pub fn page_path(entry: &Entry) -> String {
    format!("{}/{}.html", entry.lang.primary(), entry.slug)
}

/// An absolute URL for a path below the base URL, percent-encoding what a
/// URL cannot hold as is.
pub fn url(site: &Site, path: &str) -> String {
    format!("{}{}", site.base_url, encode_path(path))
}

/// Percent-encodes a path, keeping `/` and URL-safe characters.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The feed's `updated`: the newest entry's, never the build time.
pub fn newest_updated(site: &Site, entries: &[Entry]) -> DateTime<FixedOffset> {
    entries
        .iter()
        .map(|e| e.updated)
        .max()
        .unwrap_or(site.epoch)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;
    use crate::announcement::LangSource;

    pub fn site() -> Site {
        Site {
            title: "City & News".into(),
            description: "Announcements <official>".into(),
            base_url: "https://news.example.org/".into(),
            author: "City Hall".into(),
            id_prefix: "tag:news.example.org,2026-11-23:".into(),
            default_language: LangTag::parse("en").unwrap(),
            epoch: DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z").unwrap(),
            languages: vec![
                (LangTag::parse("uk").unwrap(), 1),
                (LangTag::parse("en").unwrap(), 1),
            ],
        }
    }

    pub fn entry(slug: &str, lang: &str, title: &str, content: &str) -> Entry {
        let d = DateTime::parse_from_rfc3339("2025-04-07T08:00:00+03:00").unwrap();
        Entry {
            id: format!("tag:news.example.org,2026-11-23:{slug}.txt"),
            path: format!("{slug}.txt"),
            slug: slug.into(),
            hash: "h".into(),
            size: 1,
            mtime_ns: 1,
            first_seen: d,
            published: d,
            updated: d,
            lang: LangTag::parse(lang).unwrap(),
            lang_source: LangSource::Detected,
            encoding: "UTF-8".into(),
            title: title.into(),
            summary: "Summary & more".into(),
            content: content.into(),
            author: None,
            tags: vec!["транспорт".into()],
            warnings: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded() {
        let site = fixtures::site();
        assert_eq!(
            url(&site, "uk/трамвай 2.html"),
            "https://news.example.org/uk/%D1%82%D1%80%D0%B0%D0%BC%D0%B2%D0%B0%D0%B9%202.html"
        );
        assert_eq!(Scope::Lang(LangTag::parse("pt-BR").unwrap()).dir(), "pt/");
    }
}
