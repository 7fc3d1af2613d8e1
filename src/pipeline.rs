//! watch folder + state -> a [`Plan`] -> catalog changes and rendered documents.
//!
//! This is where the rules about ids and dates live, shared by `build`,
//! `check` and the daemon:
//! - an id never changes: an edited file keeps its id, a renamed file with
//!   the same bytes keeps it, a file deleted and written again at the same
//!   path gets its old id back; ids of deleted entries are never reused;
//! - `published` is the front-matter date, else the time herald first saw the
//!   file (its modification time for files there at the first run);
//! - `updated` is the front-matter `updated`, else the time the content was
//!   seen to change (`published` for the first version);
//! - a file that stops parsing keeps its last good version published and
//!   costs one warning per change.
//!
//! Files are read and parsed in parallel; decisions are made in path order,
//! so the outcome does not depend on thread timing.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::announcement::{self, Announcement, ParseOptions};
use crate::catalog::{Catalog, CatalogError, Change, Entry, Known};
use crate::layout::Footprint;
use crate::render;
use crate::scan::FileInfo;

/// Called now and then during long work, to show the publisher is alive.
pub type Progress = std::sync::Arc<dyn Fn() + Send + Sync>;

/// What the planner needs besides the catalog.
#[derive(Clone)]
pub struct Context {
    pub options: ParseOptions,
    pub id_prefix: String,
    pub now: DateTime<FixedOffset>,
    /// The state was empty when this process opened it: files already there
    /// are dated by their modification time.
    pub first_run: bool,
    pub max_file_bytes: u64,
    /// Read every file even when its size and time are unchanged (`check`,
    /// and a sync after the [`reading_rules`] changed). An unchanged file
    /// whose entry reads differently now is republished, with its id and
    /// dates.
    pub reparse_all: bool,
    /// The catalog held no entries and no rejects when this sync began (a
    /// first import): no file can be a rename, a re-creation or a known
    /// reject, so those lookups are skipped and upserts are plain inserts.
    pub empty_catalog: bool,
    /// Outcomes carry their entry (for `check` and `build` reports); the
    /// daemon only counts them, and skips the copy.
    pub outcome_entries: bool,
    pub progress: Option<Progress>,
}

/// Everything besides a file's bytes that decides what its entry says: the
/// reading code's version and the settings it follows. Kept in the state;
/// when it differs, the next full sync reads every file again (a reload
/// that sets `site.languages`, or an upgrade, reaches files already
/// published, not only the next ones).
pub fn reading_rules(ctx: &Context) -> String {
    let o = &ctx.options;
    let languages: Vec<&str> = o.languages.iter().map(|l| l.as_str()).collect();
    format!(
        "reading {}; site.languages [{}]; site.default_language {}; \
         limits.max_title_chars {}; limits.max_summary_chars {}; limits.max_file_bytes {}",
        announcement::READING_VERSION,
        languages.join(", "),
        o.default_language.as_str(),
        o.max_title_chars,
        o.max_summary_chars,
        ctx.max_file_bytes,
    )
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    New,
    Changed,
    Renamed { from: String },
    Unchanged,
    Rejected,
}

/// What became of one file.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub rel: String,
    pub status: Status,
    /// The entry as it is (or will stay) published, without its content
    /// and summary (see [`slim`]). `None` for rejected files and for
    /// unchanged files that were not re-parsed.
    pub entry: Option<Entry>,
    pub encoding: Option<&'static str>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// Whether this outcome is news (worth a log line): a rejection of a
    /// file that was already rejected as it is now is not.
    pub fresh: bool,
}

/// Everything one sync decided.
#[derive(Debug, Default)]
pub struct Plan {
    pub outcomes: Vec<Outcome>,
    pub changes: Vec<Change>,
    /// Ids of entries unpublished because their file is gone.
    pub deleted: Vec<String>,
    /// Where the changed entries were and are (to know what to re-render).
    pub footprints: Vec<Footprint>,
    /// Unchanged files whose entry reads differently now (new reading
    /// rules), republished.
    pub read_differently: usize,
}

impl Plan {
    /// Adds a later chunk's plan to this one.
    pub fn extend(&mut self, other: Plan) {
        self.outcomes.extend(other.outcomes);
        self.changes.extend(other.changes);
        self.deleted.extend(other.deleted);
        self.footprints.extend(other.footprints);
        self.read_differently += other.read_differently;
    }
}

/// An entry without its content and summary: what reports need. (Copies
/// everything else, not the content only to drop it.)
pub fn slim(e: &mut Entry) -> Entry {
    let content = std::mem::take(&mut e.content);
    let summary = std::mem::take(&mut e.summary);
    let slim = e.clone();
    e.content = content;
    e.summary = summary;
    slim
}

/// Decides what to do with `files` (present now) and `gone` (live paths
/// whose file disappeared). `known` holds the live catalog rows for the
/// paths in `files`. A gone path whose bytes turn up as a new file is a
/// rename and leaves `gone`; with `finish`, the rest are deleted. (A large
/// folder is planned in chunks, each applied before the next is planned;
/// only the last chunk finishes.)
pub fn plan(
    catalog: &Catalog,
    files: &[FileInfo],
    known: &HashMap<String, Known>,
    gone: &mut Vec<(String, Known)>,
    ctx: &Context,
    finish: bool,
) -> Result<Plan, CatalogError> {
    let (plan, to_read) = triage(catalog, files, known, ctx)?;
    let parsed = read_and_parse_all(&to_read, ctx);
    let mut claimed = Claimed::default();
    decide(
        plan,
        catalog,
        to_read,
        parsed,
        known,
        gone,
        &mut claimed,
        ctx,
        finish,
    )
}

/// Ids and slugs given out by one sync so far (across its chunks). On a
/// first import they are all the catalog holds, so a name is looked up in
/// the database only when its hash matches an earlier chunk's claim (a real
/// duplicate, or a rare hash collision), instead of twice per file. Earlier
/// chunks are kept as 64-bit hashes (100,000 names in ~2 MB, not ~17),
/// except when no chunk is applied ([`Claimed::unapplied`]): then every
/// claim is kept exactly.
#[derive(Debug, Default)]
pub struct Claimed {
    /// This chunk's claims (every chunk's when `unapplied`), exactly: each
    /// id with the path of the file that has it.
    ids: HashMap<String, String>,
    slugs: HashSet<String>,
    /// Earlier chunks' claims (applied to the catalog by now), hashed.
    earlier_ids: HashSet<u64>,
    earlier_slugs: HashSet<u64>,
    /// The chunks are not applied to the catalog between them (`herald
    /// check`): every claim stays exact.
    unapplied: bool,
}

impl Claimed {
    /// Claims for chunks decided without applying any of them.
    pub fn unapplied() -> Claimed {
        Claimed {
            unapplied: true,
            ..Claimed::default()
        }
    }

    /// Called as a chunk begins: the previous chunk's claims are in the
    /// catalog now.
    fn next_chunk(&mut self) {
        if self.unapplied {
            return;
        }
        self.earlier_ids
            .extend(self.ids.drain().map(|(id, _)| name_hash(&id)));
        self.earlier_slugs
            .extend(self.slugs.drain().map(|s| name_hash(&s)));
    }
}

/// Whether `name` is taken: claimed in this chunk (`exact`), or in the
/// catalog (asked only when it may hold other names, `stored`, or when the
/// name's hash matches an earlier chunk's claim).
fn taken(
    exact: bool,
    earlier: &HashSet<u64>,
    name: &str,
    stored: bool,
    in_catalog: impl FnOnce(&str) -> Result<bool, CatalogError>,
) -> Result<bool, CatalogError> {
    if exact {
        return Ok(true);
    }
    if stored || earlier.contains(&name_hash(name)) {
        return in_catalog(name);
    }
    Ok(false)
}

/// A fixed 64-bit hash of a name (a collision costs one database lookup).
fn name_hash(s: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// One sync decided a chunk at a time, in path order, and what its chunks
/// share: the live rows by path, the files gone, the names claimed. The
/// last chunk finishes the sync: the files still gone are deleted.
pub struct Chunked<'a> {
    known: &'a HashMap<String, Known>,
    gone: Vec<(String, Known)>,
    claimed: Claimed,
    ctx: &'a Context,
    last: usize,
}

impl<'a> Chunked<'a> {
    pub fn new(
        known: &'a HashMap<String, Known>,
        gone: Vec<(String, Known)>,
        claimed: Claimed,
        ctx: &'a Context,
        chunks: usize,
    ) -> Chunked<'a> {
        Chunked {
            known,
            gone,
            claimed,
            ctx,
            last: chunks.saturating_sub(1),
        }
    }

    /// [`decide`] for chunk `i` (with no chunks, chunk 0 with no files
    /// finishes the sync).
    pub fn decide(
        &mut self,
        catalog: &Catalog,
        i: usize,
        files: &[&FileInfo],
        parsed: Vec<ReadResult>,
    ) -> Result<Plan, CatalogError> {
        decide(
            Plan::default(),
            catalog,
            files.to_vec(),
            parsed,
            self.known,
            &mut self.gone,
            &mut self.claimed,
            self.ctx,
            i == self.last,
        )
    }
}

/// Step 1 of [`plan`]: which files must be read (the others are unchanged,
/// or rejected as they are now). Needs only the catalog's state before the
/// sync, so a large sync can triage everything first and read ahead.
pub fn triage<'f>(
    catalog: &Catalog,
    files: &'f [FileInfo],
    known: &HashMap<String, Known>,
    ctx: &Context,
) -> Result<(Plan, Vec<&'f FileInfo>), CatalogError> {
    let mut plan = Plan::default();
    let mut to_read = Vec::new();
    for f in files {
        let k = known.get(&f.rel);
        let same_meta = |size: u64, mtime: i64| size == f.size && mtime == f.mtime_ns;
        if !ctx.reparse_all {
            if k.is_some_and(|k| same_meta(k.size, k.mtime_ns)) {
                plan.outcomes.push(outcome(&f.rel, Status::Unchanged, None));
                continue;
            }
            let rejected = if ctx.empty_catalog {
                None
            } else {
                catalog.rejected(&f.rel)?
            };
            if let Some(r) = rejected {
                if same_meta(r.size, r.mtime_ns) {
                    let mut o = outcome(&f.rel, Status::Rejected, None);
                    o.error = Some(r.error);
                    o.fresh = false;
                    plan.outcomes.push(o);
                    continue;
                }
            }
        }
        to_read.push(f);
    }
    Ok((plan, to_read))
}

/// Step 3 of [`plan`] (step 2 is [`read_and_parse_all`]): the decisions
/// about ids, dates and renames, in path order, against the catalog as it
/// is now (earlier chunks applied). `claimed` carries the ids and slugs
/// given out by earlier chunks of the same sync.
#[allow(clippy::too_many_arguments)]
fn decide(
    mut plan: Plan,
    catalog: &Catalog,
    to_read: Vec<&FileInfo>,
    parsed: Vec<ReadResult>,
    known: &HashMap<String, Known>,
    gone: &mut Vec<(String, Known)>,
    claimed: &mut Claimed,
    ctx: &Context,
    finish: bool,
) -> Result<Plan, CatalogError> {
    // On a first import the catalog holds only what this sync claimed.
    let stored = !ctx.empty_catalog;
    claimed.next_chunk();
    for (f, result) in to_read.into_iter().zip(parsed) {
        let (hash, parsed) = match result {
            Err(error) => {
                plan.reject(f, error, None);
                continue;
            }
            Ok(r) => r,
        };
        let a = match parsed {
            Err(e) => {
                plan.reject(f, e.to_string(), None);
                continue;
            }
            Ok(a) => a,
        };
        let encoding = a.encoding;
        let mut warnings = a.warnings.clone();

        // Which stored entry, if any, is this file?
        let mut status = Status::New;
        let mut previous: Option<Entry> = None;
        if let Some(k) = known.get(&f.rel) {
            previous = catalog.entry(&k.id)?;
            status = if k.hash == hash {
                Status::Unchanged
            } else {
                Status::Changed
            };
        } else if let Some(fm_id) = a.id.as_deref().map(|id| full_id(&ctx.id_prefix, id)) {
            // The file that has the id already, if any: another of this
            // sync (the first in path order keeps it; earlier chunks' are
            // in the catalog unless no chunk is applied, then they are
            // claims too), or a stored entry's file that is not gone.
            let claim = claimed.ids.get(&fm_id);
            let stored = match claim {
                Some(_) => None,
                None => catalog.entry(&fm_id)?,
            };
            let present = stored
                .as_ref()
                .map(|e| &e.path)
                .filter(|p| !p.is_empty() && !gone.iter().any(|(g, _)| g == *p));
            if let Some(holder) = claim.or(present) {
                let msg = format!("front matter `id` {fm_id:?} is already used by {holder}");
                plan.reject(f, msg, Some(encoding));
                continue;
            }
            if let Some(e) = stored {
                gone.retain(|(p, _)| *p != e.path);
                status = Status::Renamed {
                    from: e.path.clone(),
                };
                previous = Some(e);
            }
        } else if let Some(i) = gone.iter().position(|(_, k)| k.hash == hash) {
            let (from, k) = gone.remove(i);
            previous = catalog.entry(&k.id)?;
            status = Status::Renamed { from };
        } else if ctx.empty_catalog {
            // Nothing was deleted before: a new file.
        } else if let Some(e) = catalog.deleted_by_hash(&hash)? {
            status = Status::Renamed {
                from: e.path.clone(),
            };
            previous = Some(e);
        } else if let Some(e) = catalog.deleted_by_last_path(&f.rel)? {
            status = Status::Changed;
            previous = Some(e);
        }
        if previous
            .as_ref()
            .is_some_and(|p| claimed.ids.contains_key(&p.id))
        {
            // Two new files claim the same old entry: the first (in path
            // order) gets it, the other is new.
            previous = None;
            status = Status::New;
        }

        // Same bytes, but what reading them makes of them changed (new
        // rules, or the file's time changed after an upgrade).
        let mut reads_differently = false;
        let mut entry = match previous {
            Some(p) => {
                let content_changed = p.hash != hash;
                let published = a.published.unwrap_or(p.published);
                let updated =
                    a.updated
                        .unwrap_or(if content_changed { ctx.now } else { p.updated });
                if a.id
                    .as_deref()
                    .is_some_and(|id| full_id(&ctx.id_prefix, id) != p.id)
                {
                    warnings.push(format!(
                        "front matter `id` ignored: this file already has the id {:?}",
                        p.id
                    ));
                }
                let before = Footprint::of(&p);
                let mut e = entry(
                    a,
                    Placement {
                        id: p.id.clone(),
                        slug: p.slug.clone(),
                        path: f.rel.clone(),
                        hash,
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                        first_seen: p.first_seen,
                        published,
                        updated: updated.max(published),
                    },
                );
                if Footprint::of(&e) != before {
                    plan.footprints.push(before);
                }
                if status == Status::Unchanged {
                    reads_differently = !reads_the_same(&mut e, &p);
                }
                e
            }
            None => {
                let id = match a.id.as_deref() {
                    Some(id) => full_id(&ctx.id_prefix, id),
                    None => unique(
                        &format!("{}{}", ctx.id_prefix, render::encode_path(&f.rel)),
                        '~',
                        |c| {
                            let exact = claimed.ids.contains_key(c);
                            taken(exact, &claimed.earlier_ids, c, stored, |c| {
                                catalog.id_exists(c)
                            })
                        },
                    )?,
                };
                let slug = unique(&slug_of(&f.rel), '-', |c| {
                    let exact = claimed.slugs.contains(c);
                    taken(exact, &claimed.earlier_slugs, c, stored, |c| {
                        catalog.slug_exists(c)
                    })
                })?;
                let seen = if ctx.first_run {
                    time_of(f.mtime_ns).min(ctx.now)
                } else {
                    ctx.now
                };
                let published = a.published.or(a.publish_at).unwrap_or(seen);
                let updated = a.updated.unwrap_or(published).max(published);
                entry(
                    a,
                    Placement {
                        id,
                        slug,
                        path: f.rel.clone(),
                        hash,
                        size: f.size,
                        mtime_ns: f.mtime_ns,
                        first_seen: seen,
                        published,
                        updated,
                    },
                )
            }
        };
        let slim_entry = ctx.outcome_entries.then(|| slim(&mut entry));
        claimed.ids.insert(entry.id.clone(), f.rel.clone());
        claimed.slugs.insert(entry.slug.clone());
        if status == Status::Unchanged && !reads_differently {
            // Read again as it was (new rules): nothing to store.
            let touched = known
                .get(&f.rel)
                .is_none_or(|k| (k.size, k.mtime_ns) != (f.size, f.mtime_ns));
            if touched {
                plan.changes.push(Change::Touch {
                    id: entry.id.clone(),
                    size: f.size,
                    mtime_ns: f.mtime_ns,
                });
                plan.changes.push(Change::ClearReject {
                    path: f.rel.clone(),
                });
            }
        } else {
            plan.read_differently += usize::from(reads_differently);
            plan.footprints.push(Footprint::of(&entry));
            plan.changes.push(Change::Upsert(Box::new(entry)));
        }
        let mut o = outcome(&f.rel, status, slim_entry);
        o.encoding = Some(encoding);
        o.warnings = warnings;
        plan.outcomes.push(o);
    }

    if finish {
        for (path, k) in gone.drain(..) {
            if let Some(e) = catalog.entry(&k.id)? {
                plan.footprints.push(Footprint::of(&e));
                plan.changes.push(Change::Delete {
                    id: k.id.clone(),
                    at: ctx.now,
                });
                plan.changes.push(Change::ClearReject { path });
                plan.deleted.push(e.id);
            }
        }
    }
    plan.outcomes.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(plan)
}

impl Plan {
    fn reject(&mut self, f: &FileInfo, error: String, encoding: Option<&'static str>) {
        self.changes.push(Change::Reject {
            path: f.rel.clone(),
            size: f.size,
            mtime_ns: f.mtime_ns,
            error: error.clone(),
        });
        let mut o = outcome(&f.rel, Status::Rejected, None);
        o.error = Some(error);
        o.encoding = encoding;
        self.outcomes.push(o);
    }
}

fn outcome(rel: &str, status: Status, entry: Option<Entry>) -> Outcome {
    Outcome {
        rel: rel.to_string(),
        status,
        entry,
        encoding: None,
        error: None,
        warnings: Vec::new(),
        fresh: true,
    }
}

/// What the catalog adds to a parsed announcement: where it lives and when.
#[derive(Debug, Clone)]
pub struct Placement {
    pub id: String,
    pub slug: String,
    pub path: String,
    pub hash: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub first_seen: DateTime<FixedOffset>,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
}

impl Placement {
    /// A placement for an announcement that is not backed by a file (fuzzing,
    /// property tests): dates from the announcement, else `fallback`.
    pub fn detached(id: &str, a: &Announcement, fallback: DateTime<FixedOffset>) -> Placement {
        let published = a.published.or(a.publish_at).unwrap_or(fallback);
        Placement {
            id: id.to_string(),
            slug: slug_of(id),
            path: String::new(),
            hash: String::new(),
            size: 0,
            mtime_ns: 0,
            first_seen: published,
            published,
            updated: a.updated.unwrap_or(published).max(published),
        }
    }
}

/// A parsed announcement, placed: the catalog's entry.
pub fn entry(a: Announcement, p: Placement) -> Entry {
    Entry {
        id: p.id,
        path: p.path,
        slug: p.slug,
        hash: p.hash,
        size: p.size,
        mtime_ns: p.mtime_ns,
        first_seen: p.first_seen,
        published: p.published,
        updated: p.updated,
        lang: a.lang,
        lang_source: a.lang_source,
        encoding: a.encoding.to_string(),
        title: a.title,
        summary: a.summary,
        content: a.content_html,
        author: a.author,
        tags: a.tags,
        warnings: a.warnings,
        translation_key: a.translation_key,
        publish_at: a.publish_at,
        expires: a.expires,
        withdrawn: a.withdrawn,
        withdrawn_comment: a.withdrawn_comment,
        translations: Vec::new(),
    }
}

/// Whether `now`, an unchanged file's entry as read again, says what the
/// `stored` one says (the file's size and time aside).
fn reads_the_same(now: &mut Entry, stored: &Entry) -> bool {
    let file = (now.size, now.mtime_ns);
    (now.size, now.mtime_ns) = (stored.size, stored.mtime_ns);
    let same = now == stored;
    (now.size, now.mtime_ns) = file;
    same
}

/// A file's bytes hashed and parsed, or why it could not be read.
pub type ReadResult = Result<(String, Result<Announcement, announcement::ParseError>), String>;

/// Reads, hashes and parses files on all cores (two threads per core).
pub fn read_and_parse_all(files: &[&FileInfo], ctx: &Context) -> Vec<ReadResult> {
    crate::parallel::map_reading(files, |f| read_and_parse(f, ctx))
}

/// [`read_and_parse_all`] for many files: `sink` gets the results of each
/// `chunk` files in turn, and returns `false` to stop.
pub fn read_and_parse_chunks(
    files: &[&FileInfo],
    chunk: usize,
    ctx: &Context,
    sink: impl FnMut(Vec<ReadResult>) -> bool,
) {
    crate::parallel::map_reading_chunks(files, chunk, |f| read_and_parse(f, ctx), sink);
}

fn read_and_parse(f: &FileInfo, ctx: &Context) -> ReadResult {
    if let Some(progress) = &ctx.progress {
        progress();
    }
    let limit = ctx.max_file_bytes;
    if f.size > limit {
        return Err(format!(
            "file too large ({} bytes; limits.max_file_bytes is {limit})",
            f.size
        ));
    }
    let file = std::fs::File::open(&f.abs).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::with_capacity(f.size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "file too large (over {limit} bytes; limits.max_file_bytes)"
        ));
    }
    let hash = crate::snapshot::hex(&Sha256::digest(&bytes));
    Ok((hash, announcement::parse(&f.rel, &bytes, &ctx.options)))
}

/// A front-matter id as a full id: kept when it is already a URI
/// (`urn:`, `tag:`, `https:`), else placed under the site's tag prefix.
pub fn full_id(prefix: &str, id: &str) -> String {
    let id = id.trim();
    let is_uri = id.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    }) && !id.contains(char::is_whitespace);
    if is_uri {
        id.to_string()
    } else {
        format!("{prefix}{}", render::encode_path(id))
    }
}

/// `base`, or `base{sep}2`, `base{sep}3`... whichever is free.
fn unique(
    base: &str,
    sep: char,
    mut taken: impl FnMut(&str) -> Result<bool, CatalogError>,
) -> Result<String, CatalogError> {
    if !taken(base)? {
        return Ok(base.to_string());
    }
    let mut n = 2;
    loop {
        let candidate = format!("{base}{sep}{n}");
        if !taken(&candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// A page slug from a path: the file stem without a language suffix,
/// lowercased, letters and digits kept (any script), the rest as `-`.
pub fn slug_of(rel: &str) -> String {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let stem = match stem.rsplit_once('.') {
        Some((s, suffix)) if crate::announcement::lang::LangTag::parse_known(suffix).is_some() => s,
        _ => stem,
    };
    let mut slug = String::new();
    for c in stem.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
        if slug.chars().count() >= 80 {
            break;
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "entry".to_string()
    } else {
        slug
    }
}

/// A file time as a date (UTC, whole seconds).
pub fn time_of(mtime_ns: i64) -> DateTime<FixedOffset> {
    let secs = mtime_ns.div_euclid(1_000_000_000);
    Utc.timestamp_opt(secs, 0)
        .single()
        .unwrap_or_default()
        .fixed_offset()
}

/// `now` as herald records it: UTC, whole seconds.
pub fn now() -> DateTime<FixedOffset> {
    time_of(Utc::now().timestamp().saturating_mul(1_000_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        let check = |rel: &str, expected: &str| assert_eq!(slug_of(rel), expected, "{rel}");
        check("a/2025-04-07-Tram Detour.uk.md", "2025-04-07-tram-detour");
        check("оголошення.txt", "оголошення");
        check("x/.txt", "entry");
        check("notes.old.txt", "notes-old");
        check("!!!.md", "entry");
    }

    #[test]
    fn front_matter_ids() {
        let p = "tag:example.org,2026-11-23:";
        assert_eq!(full_id(p, "urn:uuid:1234"), "urn:uuid:1234");
        assert_eq!(full_id(p, "tag:other.org,2020:x"), "tag:other.org,2020:x");
        assert_eq!(
            full_id(p, "council 2025/7"),
            "tag:example.org,2026-11-23:council%202025/7"
        );
        assert_eq!(full_id(p, "a:"), "tag:example.org,2026-11-23:a%3A");
    }

    #[test]
    fn unique_names() {
        let taken = ["a", "a~2"];
        let r = unique("a", '~', |c| Ok(taken.contains(&c))).unwrap();
        assert_eq!(r, "a~3");
    }
}
