//! The URL layout: every document herald publishes, its path below the base
//! URL, and how it is rendered from the state.
//!
//! ```text
//! {scope}atom.xml  rss.xml  feed.json  index.html      subscription documents, index
//! {scope}archive/YYYY-MM[-N]/atom.xml  rss.xml           RFC 5005 archives: by month, a busy
//!                                                       month in pages of 250 entries
//! {lang}/{slug}.html                                    one page per announcement
//! feeds.opml                                            every feed, for import
//! ```
//! where `{scope}` is `""`, `{lang}/`, `tags/{tag}/` or `{lang}/tags/{tag}/`.
//!
//! The subscription documents hold the newest `feeds.max_entries` entries;
//! the archives hold every older one, by month of publication, so that the
//! two together are the whole feed with no entry twice. An archive changes
//! only when an entry in it changes, or when entries age out of the
//! subscription document into the newest archive.
//!
//! "Hot" documents (the feeds and indexes of everything and of each
//! language) are rendered at every publish and kept ready in memory; the
//! rest (pages, archives, tag feeds, OPML) are rendered when asked for.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc};

use crate::announcement::lang::LangTag;
use crate::catalog::{Catalog, CatalogError, Entry, Filter, Position};
use crate::publish::{self, Document};
use crate::render::{self, FeedDoc, FeedKind, Scope, Site, Tag};

/// A feed format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Atom,
    Rss,
    Json,
}

impl Format {
    pub fn file(self) -> &'static str {
        match self {
            Format::Atom => "atom.xml",
            Format::Rss => "rss.xml",
            Format::Json => "feed.json",
        }
    }

    fn of_file(file: &str) -> Option<Format> {
        [Format::Atom, Format::Rss, Format::Json]
            .into_iter()
            .find(|f| f.file() == file)
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Atom => publish::ATOM,
            Format::Rss => publish::RSS,
            Format::Json => publish::JSON,
        }
    }
}

/// One document herald publishes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Doc {
    /// A subscription document.
    Feed {
        scope: Scope,
        format: Format,
    },
    /// One archive document, by its key (`YYYY-MM` or `YYYY-MM-N`, see
    /// [`archive_key`]); Atom and RSS only.
    Archive {
        scope: Scope,
        month: String,
        format: Format,
    },
    Index {
        scope: Scope,
    },
    Page {
        lang: String,
        slug: String,
    },
    Opml,
}

impl Doc {
    pub fn path(&self) -> String {
        match self {
            Doc::Feed { scope, format } => format!("{}{}", scope.dir(), format.file()),
            Doc::Archive {
                scope,
                month,
                format,
            } => render::archive_path(scope, month, format.file()),
            Doc::Index { scope } => format!("{}index.html", scope.dir()),
            Doc::Page { lang, slug } => format!("{lang}/{slug}.html"),
            Doc::Opml => "feeds.opml".to_string(),
        }
    }

    /// The document at a path, if the path is one herald could publish
    /// (whether it exists is for [`Layout::render`] to say).
    pub fn parse(path: &str) -> Option<Doc> {
        if path == "feeds.opml" {
            return Some(Doc::Opml);
        }
        let mut parts: Vec<&str> = path.split('/').collect();
        let file = parts.pop()?;
        let mut lang = None;
        let mut rest = &parts[..];
        if let Some(first) = rest.first() {
            if *first != "tags" && *first != "archive" {
                let tag = LangTag::parse_known(first)?;
                if tag.as_str() != *first || tag.primary() != *first {
                    return None;
                }
                lang = Some(tag);
                rest = &rest[1..];
            }
        }
        if rest.is_empty() {
            if let (Some(l), Some(slug)) = (&lang, file.strip_suffix(".html")) {
                if slug != "index" {
                    return (!slug.is_empty()).then(|| Doc::Page {
                        lang: l.primary().to_string(),
                        slug: slug.to_string(),
                    });
                }
            }
        }
        let mut tag = None;
        if rest.first() == Some(&"tags") {
            let slug = rest.get(1)?;
            let t = Tag::new(slug)?;
            if t.slug != *slug {
                return None;
            }
            tag = Some(t);
            rest = &rest[2..];
        }
        let scope = Scope { lang, tag };
        match rest {
            [] if file == "index.html" => Some(Doc::Index { scope }),
            [] => Format::of_file(file).map(|format| Doc::Feed { scope, format }),
            ["archive", month] => {
                let format = Format::of_file(file).filter(|f| *f != Format::Json)?;
                let (m, page) = split_archive_key(month)?;
                if archive_key(&m, page) != *month {
                    return None;
                }
                Some(Doc::Archive {
                    scope,
                    month: month.to_string(),
                    format,
                })
            }
            _ => None,
        }
    }

    /// Rendered at every publish and kept in memory, rather than on demand.
    pub fn is_hot(&self) -> bool {
        match self {
            Doc::Feed { scope, .. } | Doc::Index { scope } => scope.tag.is_none(),
            _ => false,
        }
    }
}

/// Entries per archive document: a month with more is split into pages,
/// oldest entries on the first page, so that adding the newest entries only
/// ever changes the last page.
pub const ARCHIVE_PAGE: usize = 250;

/// The key of page `page` (1-based) of a month's archive: `2025-04`,
/// `2025-04-2`, ...
pub fn archive_key(month: &str, page: usize) -> String {
    if page <= 1 {
        month.to_string()
    } else {
        format!("{month}-{page}")
    }
}

/// `2025-04-2` -> (`2025-04`, 2); `2025-04` -> (`2025-04`, 1).
pub fn split_archive_key(key: &str) -> Option<(String, usize)> {
    let (month, page) = match key.get(7..) {
        Some("") | None => (key, 1),
        Some(rest) => {
            let page: usize = rest.strip_prefix('-')?.parse().ok()?;
            if !(2..=1_000_000).contains(&page) {
                return None;
            }
            (key.get(..7)?, page)
        }
    };
    month_range(month)?;
    Some((month.to_string(), page))
}

/// `YYYY-MM` -> `[start, end)` in Unix milliseconds (UTC).
pub fn month_range(month: &str) -> Option<(i64, i64)> {
    let (y, m) = month.split_once('-')?;
    if y.len() != 4 || m.len() != 2 {
        return None;
    }
    let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
    let start = NaiveDate::from_ymd_opt(y, m, 1)?;
    let end = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)?
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)?
    };
    let ms = |d: NaiveDate| {
        d.and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
    };
    Some((ms(start)?, ms(end)?))
}

/// The month (`YYYY-MM`, UTC) of a sort key (Unix milliseconds).
pub fn month_of(ms: i64) -> String {
    let d = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
    format!("{:04}-{:02}", d.year(), d.month())
}

/// What an entry touches: its page, and the feeds of its language and
/// tags around its month. Taken before and after a change, so that both
/// the old and the new place get rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Footprint {
    pub lang: String,
    pub slug: String,
    pub tags: Vec<Tag>,
    pub sort_key: i64,
}

impl Footprint {
    pub fn of(e: &Entry) -> Footprint {
        let mut tags: Vec<Tag> = e.tags.iter().filter_map(|t| Tag::new(t)).collect();
        tags.sort();
        tags.dedup_by(|a, b| a.slug == b.slug);
        Footprint {
            lang: e.lang.primary().to_string(),
            slug: e.slug.clone(),
            tags,
            sort_key: e.published.timestamp_millis(),
        }
    }
}

/// Renders documents from the state as it is now.
pub struct Layout<'a> {
    pub catalog: &'a Catalog,
    pub site: &'a Site,
    pub max_entries: usize,
    /// Entries withdrawn since then are announced as tombstones.
    pub tombstones_since: DateTime<FixedOffset>,
}

impl Layout<'_> {
    /// The hot documents (see [`Doc::is_hot`]) as the site is now.
    pub fn hot(&self) -> Vec<Doc> {
        let mut scopes = vec![Scope::ALL];
        scopes.extend(
            self.site
                .languages
                .iter()
                .map(|(l, _)| Scope::lang(l.clone())),
        );
        let mut docs = Vec::new();
        for scope in scopes {
            for format in [Format::Atom, Format::Rss, Format::Json] {
                docs.push(Doc::Feed {
                    scope: scope.clone(),
                    format,
                });
            }
            docs.push(Doc::Index { scope });
        }
        docs
    }

    /// Every document that exists (for `build` and for bringing the feeds
    /// folder up to date), but the archives and pages: hot ones, tag feeds
    /// and indexes, tombstone feeds, OPML; and every scope, whose archives
    /// [`Layout::archives`] lists ([`Layout::pages_after`] lists the pages).
    /// (Listing the archives takes a few queries per scope and month,
    /// seconds in all for a large site: they are listed as the write gets
    /// to them.)
    pub fn all_but_archives(&self) -> Result<(Vec<Doc>, Vec<Scope>), CatalogError> {
        let mut docs = self.hot();
        docs.push(Doc::Opml);
        let mut scopes: Vec<Scope> = vec![Scope::ALL];
        scopes.extend(
            self.site
                .languages
                .iter()
                .map(|(l, _)| Scope::lang(l.clone())),
        );
        for t in self.catalog.tags()? {
            let tag = Tag {
                slug: t.slug.clone(),
                name: t.name.clone(),
            };
            let lang = LangTag::parse(&t.lang);
            let tag_scope = Scope::tag(tag.clone());
            if !scopes.contains(&tag_scope) {
                scopes.push(tag_scope);
            }
            scopes.push(Scope {
                lang,
                tag: Some(tag),
            });
        }
        for scope in scopes.iter().filter(|s| s.tag.is_some()) {
            for format in [Format::Atom, Format::Rss, Format::Json] {
                docs.push(Doc::Feed {
                    scope: scope.clone(),
                    format,
                });
            }
            docs.push(Doc::Index {
                scope: scope.clone(),
            });
        }
        // Scopes with nothing shown but withdrawals to announce keep an
        // Atom feed of tombstones.
        let mut listed: BTreeSet<Doc> = docs.iter().cloned().collect();
        for (lang, slug) in self.catalog.tombstone_scopes(self.tombstones_since)? {
            let lang = LangTag::parse(&lang);
            let tag = slug.and_then(|s| Tag::new(&s));
            let mut candidates = vec![Scope {
                lang: lang.clone(),
                tag: None,
            }];
            if let Some(t) = tag {
                candidates.push(Scope::tag(t.clone()));
                candidates.push(Scope { lang, tag: Some(t) });
            }
            for scope in candidates {
                let doc = Doc::Feed {
                    scope,
                    format: Format::Atom,
                };
                if listed.insert(doc.clone()) {
                    docs.push(doc);
                }
            }
        }
        Ok((docs, scopes))
    }

    /// The pages of the shown entries whose slugs sort after `after`, at
    /// most `limit`, in slug order (listed in parts: ~0.3 s at 100,000).
    pub fn pages_after(&self, after: &str, limit: usize) -> Result<Vec<Doc>, CatalogError> {
        Ok(self
            .catalog
            .shown_pages_after(after, limit)?
            .into_iter()
            .map(|(lang, slug)| Doc::Page { lang, slug })
            .collect())
    }

    /// The archive documents of a scope, oldest first.
    pub fn archives(&self, scope: &Scope) -> Result<Vec<Doc>, CatalogError> {
        let mut docs = Vec::new();
        for month in self.archive_keys(scope)? {
            for format in [Format::Atom, Format::Rss] {
                docs.push(Doc::Archive {
                    scope: scope.clone(),
                    month: month.clone(),
                    format,
                });
            }
        }
        Ok(docs)
    }

    /// The keys of every archive document of a scope, oldest first.
    pub fn archive_keys(&self, scope: &Scope) -> Result<Vec<String>, CatalogError> {
        let filter = filter(scope);
        let mut keys = Vec::new();
        let Some(boundary) = self.catalog.nth(filter, self.max_entries)? else {
            return Ok(keys);
        };
        let Some(mut at) = self
            .catalog
            .nth(filter, self.max_entries + 1)?
            .map(|p| p.sort_key)
        else {
            return Ok(keys);
        };
        // Walk back month by month from the newest archived entry.
        loop {
            let month = month_of(at);
            let Some((start, _)) = month_range(&month) else {
                break;
            };
            for page in (1..=self.pages(filter, &month, &boundary)?).rev() {
                keys.push(archive_key(&month, page));
            }
            match self.catalog.newest_before(filter, start)? {
                Some(k) => at = k,
                None => break,
            }
        }
        keys.reverse();
        Ok(keys)
    }

    /// How many archive pages a month has.
    fn pages(
        &self,
        filter: Filter,
        month: &str,
        boundary: &Position,
    ) -> Result<usize, CatalogError> {
        let Some((start, end)) = month_range(month) else {
            return Ok(0);
        };
        let n = self.catalog.count_archived(filter, start, end, boundary)?;
        Ok(n.div_ceil(ARCHIVE_PAGE))
    }

    /// The page of its month's archive an entry sorting at `key` is on.
    fn page_of(
        &self,
        filter: Filter,
        key: i64,
        boundary: &Position,
    ) -> Result<usize, CatalogError> {
        let Some((start, _)) = month_range(&month_of(key)) else {
            return Ok(1);
        };
        let before = self.catalog.count_archived(filter, start, key, boundary)?;
        Ok(before / ARCHIVE_PAGE + 1)
    }

    /// The archive document just older than page `page` of `month`.
    fn prev_archive(
        &self,
        filter: Filter,
        month: &str,
        page: usize,
        boundary: &Position,
    ) -> Result<Option<String>, CatalogError> {
        if page > 1 {
            return Ok(Some(archive_key(month, page - 1)));
        }
        let Some((start, _)) = month_range(month) else {
            return Ok(None);
        };
        Ok(match self.catalog.newest_before(filter, start)? {
            Some(k) => {
                let m = month_of(k);
                Some(archive_key(&m, self.pages(filter, &m, boundary)?))
            }
            None => None,
        })
    }

    /// The archive document just newer than page `page` of `month`.
    fn next_archive(
        &self,
        filter: Filter,
        month: &str,
        page: usize,
        boundary: &Position,
    ) -> Result<Option<String>, CatalogError> {
        if page < self.pages(filter, month, boundary)? {
            return Ok(Some(archive_key(month, page + 1)));
        }
        let Some((_, end)) = month_range(month) else {
            return Ok(None);
        };
        Ok(match self.catalog.oldest_from(filter, end)? {
            Some(k) if k <= boundary.sort_key => {
                let m = month_of(k);
                (self.pages(filter, &m, boundary)? > 0).then(|| archive_key(&m, 1))
            }
            _ => None,
        })
    }

    /// The newest archive document of a scope (the subscription document's
    /// `prev-archive`).
    fn newest_archive(&self, filter: Filter) -> Result<Option<String>, CatalogError> {
        let (Some(boundary), Some(p)) = (
            self.catalog.nth(filter, self.max_entries)?,
            self.catalog.nth(filter, self.max_entries + 1)?,
        ) else {
            return Ok(None);
        };
        let m = month_of(p.sort_key);
        Ok(Some(archive_key(
            &m,
            self.pages(filter, &m, &boundary)?.max(1),
        )))
    }

    /// The documents a set of changes may have changed (besides the hot
    /// ones): pages, tag feeds and indexes, archives around the months
    /// touched and around where the subscription documents end, OPML.
    pub fn affected(&self, footprints: &[Footprint]) -> Result<Vec<Doc>, CatalogError> {
        let mut docs = BTreeSet::new();
        let mut scopes: BTreeSet<Scope> = BTreeSet::new();
        let mut months: BTreeSet<(Scope, i64)> = BTreeSet::new();
        for f in footprints {
            docs.insert(Doc::Page {
                lang: f.lang.clone(),
                slug: f.slug.clone(),
            });
            let lang = LangTag::parse(&f.lang);
            let mut mine = vec![
                Scope::ALL,
                Scope {
                    lang: lang.clone(),
                    tag: None,
                },
            ];
            for t in &f.tags {
                mine.push(Scope::tag(t.clone()));
                mine.push(Scope {
                    lang: lang.clone(),
                    tag: Some(t.clone()),
                });
            }
            for s in mine {
                months.insert((s.clone(), f.sort_key));
                scopes.insert(s);
            }
        }
        // The OPML list names the tag feeds; the caller adds it when the
        // set of languages changes.
        if footprints.iter().any(|f| !f.tags.is_empty()) {
            docs.insert(Doc::Opml);
        }
        for scope in &scopes {
            if scope.tag.is_some() {
                for format in [Format::Atom, Format::Rss, Format::Json] {
                    docs.insert(Doc::Feed {
                        scope: scope.clone(),
                        format,
                    });
                }
                docs.insert(Doc::Index {
                    scope: scope.clone(),
                });
            }
            let filter = filter(scope);
            let Some(boundary) = self.catalog.nth(filter, self.max_entries)? else {
                continue;
            };
            // (month, first page that may have changed)
            let mut touched: BTreeMap<String, usize> = BTreeMap::new();
            let mut touch = |m: String, page: usize| {
                let e = touched.entry(m).or_insert(page);
                *e = (*e).min(page);
            };
            for (_, k) in months.range((scope.clone(), i64::MIN)..=(scope.clone(), i64::MAX)) {
                touch(month_of(*k), self.page_of(filter, *k, &boundary)?);
            }
            // Where the subscription document ends: entries move between it
            // and the newest archive page.
            for n in [self.max_entries, self.max_entries + 1] {
                if let Some(p) = self.catalog.nth(filter, n)? {
                    let m = month_of(p.sort_key);
                    let last = self.pages(filter, &m, &boundary)?.max(1);
                    touch(m, last);
                }
            }
            let mut keys: BTreeSet<String> = BTreeSet::new();
            for (month, first) in &touched {
                let last = self.pages(filter, month, &boundary)?;
                // One past the last: a page that just disappeared.
                for page in *first..=last + 1 {
                    keys.insert(archive_key(month, page));
                }
                // Neighbours: their prev/next links may point at a page
                // that appeared or disappeared.
                if let Some(p) = self.prev_archive(filter, month, 1, &boundary)? {
                    keys.insert(p);
                }
                if let Some(n) = self.next_archive(filter, month, last.max(1), &boundary)? {
                    keys.insert(n);
                }
            }
            for key in keys {
                for format in [Format::Atom, Format::Rss] {
                    docs.insert(Doc::Archive {
                        scope: scope.clone(),
                        month: key.clone(),
                        format,
                    });
                }
            }
        }
        Ok(docs.into_iter().collect())
    }

    /// Renders a document; `None` when it does not exist (an unknown page,
    /// an empty archive month, a tag nobody uses).
    pub fn render(&self, doc: &Doc) -> Result<Option<Document>, CatalogError> {
        self.render_with(doc, &mut Newest::default())
    }

    /// [`Layout::render`], taking a scope's newest entries from `newest`
    /// when it holds them.
    fn render_with(
        &self,
        doc: &Doc,
        newest: &mut Newest,
    ) -> Result<Option<Document>, CatalogError> {
        // A scope parsed from a URL knows its tag's slug only: show the
        // name the announcements use.
        let named;
        let doc = match doc {
            Doc::Feed { scope, .. } | Doc::Index { scope } | Doc::Archive { scope, .. }
                if scope.tag.is_some() =>
            {
                let mut d = doc.clone();
                if let Doc::Feed { scope, .. } | Doc::Index { scope } | Doc::Archive { scope, .. } =
                    &mut d
                {
                    if let Some(t) = scope.tag.as_mut() {
                        if let Some(name) = self.catalog.tag_name(&t.slug)? {
                            t.name = name;
                        }
                    }
                }
                named = d;
                &named
            }
            _ => doc,
        };
        let site = self.site;
        let path = doc.path();
        let out = |bytes: Vec<u8>, content_type, last: Option<i64>| {
            Some(Document {
                path: path.clone(),
                bytes: bytes.into(),
                content_type,
                last_modified: last,
            })
        };
        match doc {
            Doc::Page { lang, slug } => {
                let Some(mut e) = self.catalog.shown_by_slug(slug)? else {
                    return Ok(None);
                };
                if e.lang.primary() != lang {
                    return Ok(None);
                }
                self.catalog
                    .fill_translations(std::slice::from_mut(&mut e))?;
                let last = Some(e.updated.timestamp());
                Ok(out(
                    render::html::entry(site, &e).into_bytes(),
                    publish::HTML,
                    last,
                ))
            }
            Doc::Opml => {
                let tags = self.catalog.tags()?;
                Ok(out(render::opml::render(site, &tags), publish::OPML, None))
            }
            Doc::Index { scope } => {
                let entries = self.newest_of(scope, newest)?;
                if entries.is_empty() && *scope != Scope::ALL {
                    return Ok(None);
                }
                let last = newest_update(entries);
                Ok(out(
                    render::html::index(site, scope, entries).into_bytes(),
                    publish::HTML,
                    last,
                ))
            }
            Doc::Feed { scope, format } => {
                let filter = filter(scope);
                let tombstones = if *format == Format::Atom {
                    self.catalog.tombstones(filter, self.tombstones_since)?
                } else {
                    Vec::new()
                };
                // A language or tag with nothing shown has no feed, except
                // an Atom feed announcing what was withdrawn from it.
                if self.newest_of(scope, newest)?.is_empty()
                    && tombstones.is_empty()
                    && *scope != Scope::ALL
                {
                    return Ok(None);
                }
                let (entries, prev) = self.current_of(scope, newest)?;
                let feed = FeedDoc {
                    scope,
                    entries,
                    tombstones: &tombstones,
                    kind: FeedKind::Current { prev },
                };
                let last =
                    newest_update(entries).max(tombstones.iter().map(|t| t.when.timestamp()).max());
                Ok(out(
                    self.feed_bytes(&feed, *format),
                    format.content_type(),
                    last,
                ))
            }
            Doc::Archive {
                scope,
                month,
                format,
            } => {
                let filter = filter(scope);
                let Some((m, page)) = split_archive_key(month) else {
                    return Ok(None);
                };
                let Some((start, end)) = month_range(&m) else {
                    return Ok(None);
                };
                let Some(boundary) = self.catalog.nth(filter, self.max_entries)? else {
                    return Ok(None);
                };
                let mut entries = self.catalog.archived(
                    filter,
                    start,
                    end,
                    &boundary,
                    (page - 1) * ARCHIVE_PAGE,
                    ARCHIVE_PAGE,
                )?;
                if entries.is_empty() {
                    return Ok(None);
                }
                entries.reverse();
                self.catalog.fill_translations(&mut entries)?;
                let prev = self.prev_archive(filter, &m, page, &boundary)?;
                let next = self.next_archive(filter, &m, page, &boundary)?;
                let feed = FeedDoc {
                    scope,
                    entries: &entries,
                    tombstones: &[],
                    kind: FeedKind::Archive {
                        month,
                        prev: prev.as_deref(),
                        next: next.as_deref(),
                    },
                };
                let last = newest_update(&entries);
                Ok(out(
                    self.feed_bytes(&feed, *format),
                    format.content_type(),
                    last,
                ))
            }
        }
    }

    /// The newest shown entries of `scope`, translations filled: read from
    /// the catalog unless `newest` holds them already.
    fn newest_of<'n>(
        &self,
        scope: &Scope,
        newest: &'n mut Newest,
    ) -> Result<&'n [Entry], CatalogError> {
        if newest.scope.as_ref() != Some(scope) {
            newest.scope = None;
            newest.prev = None;
            newest.entries = self.catalog.latest(filter(scope), self.max_entries)?;
            self.catalog.fill_translations(&mut newest.entries)?;
            newest.scope = Some(scope.clone());
        }
        Ok(&newest.entries)
    }

    /// [`Layout::newest_of`], and the key of the newest archive document
    /// (where a subscription document's `prev-archive` link leads).
    fn current_of<'n>(
        &self,
        scope: &Scope,
        newest: &'n mut Newest,
    ) -> Result<(&'n [Entry], Option<&'n str>), CatalogError> {
        self.newest_of(scope, newest)?;
        if newest.prev.is_none() {
            newest.prev = Some(self.newest_archive(filter(scope))?);
        }
        Ok((
            &newest.entries,
            newest.prev.as_ref().and_then(|p| p.as_deref()),
        ))
    }

    fn feed_bytes(&self, feed: &FeedDoc, format: Format) -> Vec<u8> {
        match format {
            Format::Atom => render::atom::render(self.site, feed),
            Format::Rss => render::rss::render(self.site, feed),
            Format::Json => render::json::render(self.site, feed),
        }
    }

    /// Renders many documents; those that do not exist are returned as
    /// paths to remove.
    pub fn render_all(&self, docs: &[Doc]) -> Result<(Vec<Document>, Vec<String>), CatalogError> {
        let mut out = Vec::with_capacity(docs.len());
        let mut gone = Vec::new();
        let mut newest = Newest::default();
        for doc in docs {
            match self.render_with(doc, &mut newest)? {
                Some(d) => out.push(d),
                None => gone.push(doc.path()),
            }
        }
        Ok((out, gone))
    }
}

/// The newest shown entries of the scope rendered last. The formats of a
/// scope come one after the other in [`Layout::hot`], so that
/// [`Layout::render_all`] reads them once, not once per format; holding one
/// scope only keeps the memory bounded however many tags there are.
#[derive(Default)]
struct Newest {
    scope: Option<Scope>,
    entries: Vec<Entry>,
    /// The newest archive's key (`None` inside: no archive), once asked for.
    prev: Option<Option<String>>,
}

/// The catalog filter of a scope.
pub fn filter(scope: &Scope) -> Filter<'_> {
    Filter {
        lang: scope.primary(),
        tag: scope.tag.as_ref().map(|t| t.slug.as_str()),
    }
}

/// The time of the latest change among `entries`.
fn newest_update(entries: &[Entry]) -> Option<i64> {
    entries.iter().map(|e| e.updated.timestamp()).max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_of<'a>(catalog: &'a Catalog, site: &'a Site) -> Layout<'a> {
        Layout {
            catalog,
            site,
            max_entries: 50,
            tombstones_since: site.epoch,
        }
    }

    #[test]
    fn the_opml_list_is_affected_only_by_tagged_changes() {
        let catalog = Catalog::open_in_memory().unwrap();
        let site = crate::render::fixtures::site();
        let layout = layout_of(&catalog, &site);
        let mut f = Footprint {
            lang: "uk".into(),
            slug: "tram".into(),
            tags: Vec::new(),
            sort_key: 0,
        };
        let docs = layout.affected(std::slice::from_ref(&f)).unwrap();
        assert!(docs.contains(&Doc::Page {
            lang: "uk".into(),
            slug: "tram".into()
        }));
        assert!(!docs.contains(&Doc::Opml), "{docs:?}");
        f.tags = vec![Tag::new("Транспорт").unwrap()];
        let docs = layout.affected(&[f]).unwrap();
        assert!(docs.contains(&Doc::Opml), "{docs:?}");
    }

    #[test]
    fn rendering_many_gives_what_rendering_each_gives() {
        use crate::catalog::Change;
        let mut catalog = Catalog::open_in_memory().unwrap();
        let site = crate::render::fixtures::site();
        // More than a subscription document holds (archives exist), in two
        // languages, a translation pair, and one withdrawn (a tombstone).
        let start = DateTime::parse_from_rfc3339("2026-10-01T08:00:00+00:00").unwrap();
        let mut changes = Vec::new();
        for i in 0..70 {
            let lang = if i % 3 == 0 { "en" } else { "uk" };
            let mut e = crate::render::fixtures::entry(&format!("n{i}"), lang, "T", "<p>c</p>");
            let d = start + chrono::Duration::days(i);
            (e.first_seen, e.published, e.updated) = (d, d, d);
            e.translation_key = (i == 66 || i == 67).then(|| "pair".to_string());
            changes.push(Change::Upsert(Box::new(e)));
        }
        let now = start + chrono::Duration::days(80);
        catalog.apply(&changes, now).unwrap();
        let Some(Change::Upsert(mut withdrawn)) = changes.pop() else {
            unreachable!()
        };
        withdrawn.withdrawn = true;
        catalog
            .apply(
                &[Change::Upsert(withdrawn)],
                now + chrono::Duration::hours(1),
            )
            .unwrap();
        let layout = layout_of(&catalog, &site);
        let hot = layout.hot();
        let (many, gone) = layout.render_all(&hot).unwrap();
        assert!(gone.is_empty(), "{gone:?}");
        assert_eq!(many.len(), hot.len());
        for (doc, d) in hot.iter().zip(&many) {
            let one = layout.render(doc).unwrap().expect("exists");
            assert_eq!(one, *d, "{}", doc.path());
        }
        let atom = String::from_utf8(many[0].bytes.to_vec()).unwrap();
        assert!(atom.contains("prev-archive"), "{atom}");
        assert!(atom.contains("deleted-entry"), "{atom}");
        let en = many
            .iter()
            .find(|d| d.path == "en/atom.xml")
            .expect("en feed");
        let en = String::from_utf8(en.bytes.to_vec()).unwrap();
        assert!(en.contains(r#"hreflang="uk""#), "translations filled: {en}");
        // What a publish writes besides: tag feeds and indexes, archives,
        // pages, in the order `affected` gives them.
        let footprints: Vec<Footprint> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Upsert(e) => Some(Footprint::of(e)),
                _ => None,
            })
            .filter(|f| f.slug.ends_with('0') || f.slug.ends_with('5'))
            .collect();
        let affected = layout.affected(&footprints).unwrap();
        assert!(affected
            .iter()
            .any(|d| matches!(d, Doc::Feed { scope, .. } if scope.tag.is_some())));
        assert!(affected.iter().any(|d| matches!(d, Doc::Archive { .. })));
        let (many, gone) = layout.render_all(&affected).unwrap();
        let mut many = many.into_iter();
        for doc in &affected {
            match layout.render(doc).unwrap() {
                Some(one) => assert_eq!(Some(one), many.next(), "{}", doc.path()),
                None => assert!(gone.contains(&doc.path()), "{}", doc.path()),
            }
        }
        assert_eq!(many.next(), None);
    }

    #[test]
    fn listing_every_document() {
        let catalog = Catalog::open_in_memory().unwrap();
        let site = crate::render::fixtures::site();
        let layout = layout_of(&catalog, &site);
        let (docs, scopes) = layout.all_but_archives().unwrap();
        assert!(docs.contains(&Doc::Opml), "{docs:?}");
        assert!(docs.iter().all(|d| !matches!(d, Doc::Archive { .. })));
        assert_eq!(scopes.first(), Some(&Scope::ALL));
        // Nothing archived, no pages in an empty catalog.
        assert_eq!(layout.archives(&Scope::ALL).unwrap(), Vec::new());
        assert_eq!(layout.pages_after("", 10).unwrap(), Vec::new());
    }

    #[test]
    fn paths_round_trip() {
        let uk = LangTag::parse("uk").unwrap();
        let tag = Tag::new("Транспорт").unwrap();
        let docs = [
            Doc::Feed {
                scope: Scope::ALL,
                format: Format::Atom,
            },
            Doc::Feed {
                scope: Scope::lang(uk.clone()),
                format: Format::Json,
            },
            Doc::Feed {
                scope: Scope {
                    lang: Some(uk.clone()),
                    tag: Some(tag.clone()),
                },
                format: Format::Rss,
            },
            Doc::Archive {
                scope: Scope::tag(tag),
                month: "2025-04".into(),
                format: Format::Atom,
            },
            Doc::Index {
                scope: Scope::lang(uk),
            },
            Doc::Page {
                lang: "uk".into(),
                slug: "трамвай".into(),
            },
            Doc::Opml,
        ];
        for d in docs {
            assert_eq!(Doc::parse(&d.path()), Some(d.clone()), "{}", d.path());
        }
        assert_eq!(Doc::parse("xx/atom.xml"), None);
        assert_eq!(Doc::parse("archive/2025-13/atom.xml"), None);
        assert_eq!(Doc::parse("archive/2025-04/feed.json"), None);
        assert_eq!(
            Doc::parse("tags/Tram/atom.xml"),
            None,
            "slugs are lowercase"
        );
        assert_eq!(Doc::parse("uk/index.html").map(|d| d.is_hot()), Some(true));
        assert_eq!(Doc::parse("a/b/c/d.html"), None);
    }

    #[test]
    fn months() {
        assert_eq!(month_of(0), "1970-01");
        let (s, e) = month_range("2024-12").unwrap();
        assert_eq!(month_of(s), "2024-12");
        assert_eq!(month_of(e), "2025-01");
        assert_eq!(month_of(e - 1), "2024-12");
        assert!(month_range("2024-1").is_none());
        assert_eq!(split_archive_key("2024-12"), Some(("2024-12".into(), 1)));
        assert_eq!(split_archive_key("2024-12-3"), Some(("2024-12".into(), 3)));
        assert_eq!(split_archive_key("2024-12-1"), None);
        assert_eq!(split_archive_key("2024-12-x"), None);
        assert_eq!(archive_key("2024-12", 3), "2024-12-3");
    }
}
