//! The publishing engine: configuration + state, and one sync at a time.
//!
//! A sync scans (all of the watch folder, or the paths an event named),
//! plans and applies the plan to the catalog chunk by chunk (so a folder of
//! 100,000 files never sits in memory at once), makes scheduled entries
//! appear and expired ones go, and renders the hot documents whose content
//! changed; [`Engine::write`] then brings the feeds folder up to date (the
//! documents the changes touched, or everything). `build` runs one full
//! sync; the daemon runs one per batch of file events and keeps the hot
//! documents in memory, and writes everything (a first start, a new
//! configuration) a slice at a time between syncs
//! ([`Engine::begin_full_write`]): at 100,000 announcements that write
//! takes minutes. A failure to write to disk does not stop a sync:
//! the in-memory documents are still current, and a later write catches up.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

use crate::announcement::lang::LangTag;
use crate::announcement::ParseOptions;
use crate::catalog::{Catalog, CatalogError, Known};
use crate::config::{self, Config};
use crate::layout::{Doc, Footprint, Layout};
use crate::pipeline::{self, Claimed, Context, Plan};
use crate::publish::{self, Document, PublishError, WriteReport};
use crate::render::Site;
use crate::scan;

/// Catalog meta key: the fingerprint of the last complete write of the
/// feeds folder ("" while a change is not on disk yet).
const FEEDS_WRITTEN: &str = "feeds_written";
/// Catalog meta key: the [`pipeline::reading_rules`] the entries were read
/// under.
const READING_RULES: &str = "reading_rules";
/// Raised when what the documents look like changes within a version, so
/// that a folder written before is rewritten (2: pages show no counts).
const LAYOUT_REVISION: u32 = 2;
/// Files planned and applied together in a full sync.
const CHUNK: usize = 2_000;
/// More changed entries than this in one sync: rewrite the whole feeds
/// folder rather than work out which documents they touched.
const MANY: usize = 500;
/// Documents rendered and written together (at most this many, and at
/// most about this many bytes).
const WRITE_BATCH: usize = 1_000;
const WRITE_BATCH_BYTES: usize = 8 << 20;
/// Pages listed at a time by a full write (~10 ms each at 100,000).
const PAGES_LISTED: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("watch folder {path}: {source}")]
    Watch {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("interrupted by shutdown")]
    Interrupted,
}

/// What one sync did.
#[derive(Debug, Default)]
pub struct Synced {
    pub plan: Plan,
    /// Hot documents whose content may have changed, rendered.
    pub documents: Vec<Document>,
    /// Hot documents that no longer exist (a language with no entries left).
    pub removed: Vec<String>,
    /// Other documents the changes touched (rendered when written): those
    /// of languages that went, and, once [`Engine::list_affected`] has
    /// run, every one the changes touched (a few queries per scope, up to
    /// ~100 ms at 100,000 entries, so not before the change is visible).
    pub affected: Vec<Doc>,
    /// Whether `affected` lists everything the changes touched.
    pub affected_listed: bool,
    /// Too much changed to list: the whole feeds folder must be rewritten.
    pub everything: bool,
    /// Entries that could not be listed: (path, error).
    pub scan_errors: Vec<(String, String)>,
    /// When a scheduled entry is next due to appear or expire.
    pub next_due: Option<DateTime<FixedOffset>>,
}

impl Synced {
    /// Whether readers can see any difference.
    pub fn changed(&self) -> bool {
        !self.documents.is_empty() || !self.removed.is_empty() || self.everything
    }
}

pub struct Engine {
    progress: Option<pipeline::Progress>,
    /// Set when the daemon stops: long writes end early (every file
    /// written so far is whole; the rest is written at the next start).
    cancel: Option<Arc<AtomicBool>>,
    /// Whether outcomes keep their (slim) entries; the daemon only logs
    /// outcomes and does without them (100,000 files: ~60 MB).
    outcome_entries: bool,
    config: Config,
    catalog: Catalog,
    id_prefix: String,
    epoch: DateTime<FixedOffset>,
    first_run: bool,
    /// Whether a sync has rendered the hot documents since the engine was
    /// opened (the first one renders all of them).
    published: bool,
    /// The languages of the last sync, which the feeds folder is written
    /// for (every page lists them); before the first, those of the state
    /// at start-up (`None` for a new state).
    languages_written: Option<BTreeSet<String>>,
    /// A write of the whole feeds folder under way.
    full_write: Option<FullWrite>,
    /// The last run did not close the state normally: the next full write
    /// ends by sweeping away the temporary files it may have left.
    sweep_temporaries: bool,
    /// What publishes changed in the feeds folder and is not written yet.
    pending: Option<PendingWrite>,
    /// What the renderers need, as of the last sync (a publish needs it
    /// several times: rendering, the on-demand documents, the metrics).
    /// Emptied whenever the catalog or the configuration changes.
    site: std::cell::RefCell<Option<Site>>,
}

/// What publishes changed in the feeds folder and is not written yet: the
/// daemon makes a change visible, then writes it to the folder a slice at
/// a time while the watch folder is quiet, so that writing the tag feeds
/// and archives one change touched (up to a second at 100,000 entries)
/// never delays the next change.
struct PendingWrite {
    /// Documents rendered by the syncs, and paths they removed (`None`),
    /// by path: a later sync's version replaces an earlier one.
    staged: BTreeMap<String, Option<Document>>,
    /// Documents to render when written (as the catalog is then, which is
    /// never older than the syncs that touched them).
    docs: BTreeSet<Doc>,
    /// Its own writer, opened by the first slice (`None` while a full
    /// write is under way: it goes through that one's).
    writer: Option<publish::Writer>,
}

/// A write of every document, done a slice at a time so that the daemon
/// publishes changes in between (at 100,000 announcements it takes about
/// two minutes).
struct FullWrite {
    /// The configuration it renders for (see [`Engine::feeds_complete`]):
    /// if that changes on the way, the folder is not complete at the end.
    fingerprint: String,
    /// Whether `all` and `scopes` were listed (by the first slice).
    listed: bool,
    /// The documents being written: every one but the pages and archives
    /// (as listed by the first slice), then the pages a part at a time,
    /// then each scope's archives, each listed when the write gets to
    /// them; documents that no longer exist when their turn comes are
    /// skipped (and removed).
    all: Vec<Doc>,
    /// The slug after which pages are still to be listed (`None` once
    /// they all were).
    pages_after: Option<String>,
    /// The scopes whose archives are still to be listed.
    scopes: std::collections::VecDeque<crate::render::Scope>,
    /// The next one to render.
    next: usize,
    /// The paths written so far, by this write or by changes written in
    /// between: every other file in the manifest is stale at the end.
    keep: BTreeSet<String>,
    writer: publish::Writer,
}

impl Drop for FullWrite {
    /// A full write replaced, abandoned after an error or stopped for
    /// shutdown still lists what it wrote in the manifest, so that those
    /// files stay herald's to remove (best effort: the disk may be full).
    fn drop(&mut self) {
        if let Err(e) = self.writer.save_manifest() {
            tracing::warn!(error = %e, "cannot list what the feeds-folder write wrote");
        }
    }
}

impl Engine {
    /// Opens the state (taking its lock) for `config`.
    pub fn open(config: Config) -> Result<Engine, EngineError> {
        let catalog = Catalog::open(&config.paths.state)?;
        let first_run = catalog.is_new();
        let languages_written = if first_run {
            None
        } else {
            Some(primaries(catalog.languages()?))
        };
        let now = pipeline::now();
        let (id_prefix, epoch) = identity(&catalog, &config, now, true)?;
        let sweep_temporaries = !catalog.closed_normally;
        Ok(Engine {
            progress: None,
            cancel: None,
            outcome_entries: true,
            config,
            catalog,
            id_prefix,
            epoch,
            first_run,
            published: false,
            languages_written,
            full_write: None,
            sweep_temporaries,
            pending: None,
            site: Default::default(),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Where a damaged state database was moved, if it was.
    pub fn recovered_from(&self) -> Option<&PathBuf> {
        self.catalog.recovered_from.as_ref()
    }

    /// Says (once, at start-up) when the state was rebuilt on open.
    pub fn log_state_recovery(&self) {
        if let Some(aside) = self.recovered_from() {
            tracing::warn!(moved_to = %aside.display(), "state database was damaged; moved aside and rebuilt from the watch folder (dates of files without a front-matter date are now their modification times)");
        }
        if self.catalog.import_restarted {
            tracing::warn!("the state's first import was interrupted (the process stopped while filling a new state); started over");
        }
        if self.catalog.checked {
            tracing::info!("the state was not closed normally by the last run; checked it through (PRAGMA quick_check): intact");
        }
    }

    /// A flag that, once set, makes a long write stop early with
    /// [`EngineError::Interrupted`].
    pub fn set_cancel(&mut self, cancel: Arc<AtomicBool>) {
        self.cancel = Some(cancel);
    }

    /// Outcomes without their entries (for callers that only log them).
    pub fn drop_outcome_entries(&mut self) {
        self.outcome_entries = false;
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Called during long syncs (the daemon's liveness heartbeat).
    pub fn set_progress(&mut self, progress: pipeline::Progress) {
        self.progress = Some(progress);
    }

    /// Takes a new configuration (reload). Ids stay as they were.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
        self.forget_site();
    }

    /// Scans the whole watch folder and publishes. `everything` re-renders
    /// every hot document and asks for the whole feeds folder to be
    /// rewritten (start-up, `build`, a reload).
    pub fn sync_full(&mut self, everything: bool) -> Result<Synced, EngineError> {
        self.forget_site();
        let started = std::time::Instant::now();
        let watch = &self.config.paths.watch;
        // The folder is listed while the catalog's rows are read: on a
        // restart with a large archive each takes a few hundred ms.
        let catalog = &self.catalog;
        let (listing, known) = std::thread::scope(|s| {
            let listing = s.spawn(|| scan::scan(watch));
            let known = catalog.known();
            let listing = listing
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e));
            (listing, known)
        });
        let listing = listing.map_err(|source| EngineError::Watch {
            path: watch.clone(),
            source,
        })?;
        let mut known = known?;
        let gone = take_gone(&mut known, &listing);
        tracing::debug!(
            files = listing.files.len(),
            ms = started.elapsed().as_millis() as u64,
            "scanned"
        );
        let mut ctx = self.context(false);
        ctx.empty_catalog = self.catalog.is_empty()?;
        let rules = pipeline::reading_rules(&ctx);
        let rules_before = self.catalog.meta(READING_RULES)?;
        let new_rules = rules_before.as_deref() != Some(rules.as_str());
        if new_rules && !ctx.empty_catalog {
            tracing::info!(
                was = rules_before.as_deref().unwrap_or("(not recorded)"),
                now = %rules,
                "the reading rules changed since the state was written: reading every file again; entries that read differently now are republished with their ids and dates"
            );
            ctx.reparse_all = true;
        }
        let _burst = ctx.empty_catalog.then(crate::allocator::ImportBurst::begin);
        let mut plan = Plan::default();
        let (triaged, to_read) = pipeline::triage(&self.catalog, &listing.files, &known, &ctx)?;
        plan.extend(triaged);
        // Files are read and parsed a chunk ahead (all cores) while the
        // previous chunk is decided and applied here: the two overlap.
        let (mut planning, mut applying) = (0u128, 0u128);
        let chunks: Vec<&[&scan::FileInfo]> = to_read.chunks(CHUNK).collect();
        let catalog = &mut self.catalog;
        let mut chunked =
            pipeline::Chunked::new(&known, gone, Claimed::default(), &ctx, chunks.len());
        let applied = std::thread::scope(|s| -> Result<(), EngineError> {
            // (A rendezvous: the readers go on with the chunk after the one
            // waiting here, so that three chunks are in memory at most.)
            let (tx, rx) = std::sync::mpsc::sync_channel(0);
            let (reader_ctx, to_read) = (&ctx, &to_read);
            s.spawn(move || {
                pipeline::read_and_parse_chunks(to_read, CHUNK, reader_ctx, |parsed| {
                    tx.send(parsed).is_ok()
                });
            });
            for (i, chunk) in chunks.iter().enumerate() {
                let Ok(parsed) = rx.recv() else {
                    break;
                };
                let t = std::time::Instant::now();
                let mut part = chunked.decide(catalog, i, chunk, parsed)?;
                planning += t.elapsed().as_millis();
                let t = std::time::Instant::now();
                let changes = std::mem::take(&mut part.changes);
                if ctx.empty_catalog {
                    catalog.import(&changes, ctx.now)?;
                } else {
                    catalog.apply(&changes, ctx.now)?;
                }
                applying += t.elapsed().as_millis();
                plan.extend(part);
            }
            Ok(())
        });
        // A new state was filled without a journal: complete only when
        // every chunk went in.
        self.catalog.finish_import(applied.is_ok())?;
        applied?;
        if new_rules {
            self.catalog.set_meta(READING_RULES, &rules)?;
        }
        if chunks.is_empty() {
            // Nothing to read: files may still be gone.
            let mut part = chunked.decide(&self.catalog, 0, &[], Vec::new())?;
            self.catalog
                .apply(&std::mem::take(&mut part.changes), ctx.now)?;
            plan.extend(part);
        }
        if ctx.reparse_all {
            tracing::info!(
                republished = plan.read_differently,
                "read every file again under the new reading rules"
            );
        }
        tracing::debug!(
            planning_ms = planning as u64,
            applying_ms = applying as u64,
            "planned and applied"
        );
        self.finish(plan, listing.errors, everything)
    }

    /// Looks only at the given paths (relative to the watch folder; files or
    /// folders, present or gone) and publishes.
    pub fn sync_paths(&mut self, rels: &[String]) -> Result<Synced, EngineError> {
        self.forget_site();
        let watch = self.config.paths.watch.clone();
        let mut files = BTreeMap::new();
        let mut errors = Vec::new();
        let mut known = HashMap::new();
        let mut gone = Vec::new();
        for rel in rels {
            let listing = scan::scan_path(&watch, rel).map_err(|source| EngineError::Watch {
                path: watch.clone(),
                source,
            })?;
            let mut candidates: HashMap<String, Known> = self.catalog.known_under(rel)?;
            if let Some(k) = self.catalog.known_path(rel)? {
                candidates.insert(rel.clone(), k);
            }
            for f in &listing.files {
                if let Some(k) = candidates.remove(&f.rel) {
                    known.insert(f.rel.clone(), k);
                }
            }
            for (p, k) in candidates {
                if !files.contains_key(&p) && !known.contains_key(&p) && !listing.may_hide(&p) {
                    gone.push((p, k));
                }
            }
            for f in listing.files {
                files.insert(f.rel.clone(), f);
            }
            errors.extend(listing.errors);
        }
        gone.retain(|(p, _)| !files.contains_key(p));
        gone.sort_by(|a, b| a.0.cmp(&b.0));
        gone.dedup_by(|a, b| a.0 == b.0);
        let files: Vec<_> = files.into_values().collect();
        let ctx = self.context(false);
        let mut plan = pipeline::plan(&self.catalog, &files, &known, &mut gone, &ctx, true)?;
        self.catalog
            .apply(&std::mem::take(&mut plan.changes), ctx.now)?;
        self.finish(plan, errors, false)
    }

    /// Publishes what the clock changed (scheduled entries that are due,
    /// expired ones), with no file event.
    pub fn sync_time(&mut self) -> Result<Synced, EngineError> {
        self.finish(Plan::default(), Vec::new(), false)
    }

    /// Renders every hot document from the state without scanning (when
    /// the watch folder cannot be read at start-up).
    pub fn render_hot(&self) -> Result<Vec<Document>, EngineError> {
        let site = self.site()?;
        let layout = self.layout(&site);
        Ok(layout.render_all(&layout.hot())?.0)
    }

    fn finish(
        &mut self,
        mut plan: Plan,
        scan_errors: Vec<(String, String)>,
        everything: bool,
    ) -> Result<Synced, EngineError> {
        let now = pipeline::now();
        self.forget_site();
        let refreshed = self.catalog.refresh(now)?;
        for id in &refreshed.changed {
            if let Some(e) = self.catalog.entry(id)? {
                plan.footprints.push(Footprint::of(&e));
            }
        }
        self.first_run = false;
        let started = std::time::Instant::now();
        let site = self.site()?;
        let languages_now: BTreeSet<String> = site
            .languages
            .iter()
            .map(|(l, _)| l.primary().to_string())
            .collect();
        let layout = self.layout(&site);
        // Every page lists the languages (in its links and header): when
        // they change, the whole folder does.
        let languages_changed = self
            .languages_written
            .as_ref()
            .is_some_and(|written| *written != languages_now);
        let everything = everything || plan.footprints.len() > MANY || languages_changed;
        let hot: Vec<Doc> = if everything || !self.published {
            layout.hot()
        } else {
            let langs: BTreeSet<&str> = plan.footprints.iter().map(|f| f.lang.as_str()).collect();
            layout
                .hot()
                .into_iter()
                .filter(|d| match d {
                    Doc::Feed { scope, .. } | Doc::Index { scope } => scope
                        .lang
                        .as_ref()
                        .is_none_or(|l| langs.contains(l.primary())),
                    _ => false,
                })
                .filter(|_| !plan.footprints.is_empty())
                .collect()
        };
        let (documents, mut removed) = layout.render_all(&hot)?;
        // The rest of what the changes touched is listed by
        // `list_affected`, once the change is visible.
        let mut affected = Vec::new();
        let languages_before = self.languages_written.take().unwrap_or_default();
        for lang in languages_before.difference(&languages_now) {
            // No longer kept ready; its Atom feed lives on (on demand) as
            // long as it announces withdrawn entries.
            for file in ["rss.xml", "atom.xml", "feed.json", "index.html"] {
                removed.push(format!("{lang}/{file}"));
            }
            if let Some(l) = LangTag::parse(lang) {
                affected.push(Doc::Feed {
                    scope: crate::render::Scope::lang(l),
                    format: crate::layout::Format::Atom,
                });
            }
        }
        self.languages_written = Some(languages_now);
        self.published = true;
        if !documents.is_empty()
            || !removed.is_empty()
            || !affected.is_empty()
            || !plan.footprints.is_empty()
            || everything
        {
            // Until this sync is on disk, the feeds folder is behind.
            self.catalog.set_meta(FEEDS_WRITTEN, "")?;
        }
        tracing::debug!(
            documents = documents.len(),
            affected = affected.len(),
            everything,
            ms = started.elapsed().as_millis() as u64,
            "rendered"
        );
        Ok(Synced {
            plan,
            documents,
            removed,
            affected,
            affected_listed: everything,
            everything,
            scan_errors,
            next_due: refreshed.next,
        })
    }

    /// Writes what a sync changed to the feeds folder, and returns when it
    /// is on disk: the hot documents, and the documents the changes touched
    /// or, after a large change, every document (stale files herald wrote
    /// earlier are removed). A failure (disk full, read-only folder) does
    /// not undo the sync; the caller logs it and asks for everything next
    /// time. (The daemon writes everything a slice at a time instead:
    /// [`Engine::begin_full_write`].)
    pub fn write(&mut self, synced: &Synced) -> Result<WriteReport, EngineError> {
        if !synced.everything {
            return self.write_changes(synced);
        }
        self.begin_full_write()?;
        while self.full_write.is_some() {
            if let Some(report) = self.continue_full_write(std::time::Duration::MAX, &|| false)? {
                return Ok(report);
            }
        }
        Ok(WriteReport::default())
    }

    /// Writes the documents a sync changed or touched, and removes the ones
    /// it made disappear. While a full write is under way, through its
    /// writer (so that it keeps what this wrote and completes the folder);
    /// otherwise the folder is complete again afterwards (if it was
    /// before).
    pub fn write_changes(&mut self, synced: &Synced) -> Result<WriteReport, EngineError> {
        let mut full = self.full_write.take();
        let result = self.write_changes_with(synced, full.as_mut());
        match (result, full) {
            (Ok(report), Some(full)) => {
                self.full_write = Some(full);
                Ok(report)
            }
            (Ok(report), None) => {
                self.catalog.set_meta(FEEDS_WRITTEN, &self.fingerprint())?;
                Ok(report)
            }
            // A failed write abandons the full write too: the caller
            // starts another one once the folder is writable again.
            (Err(e), _) => Err(e),
        }
    }

    fn write_changes_with(
        &self,
        synced: &Synced,
        full: Option<&mut FullWrite>,
    ) -> Result<WriteReport, EngineError> {
        let site = self.site()?;
        let layout = self.layout(&site);
        let mut affected = synced.affected.clone();
        if !synced.affected_listed {
            affected.extend(layout.affected(&synced.plan.footprints)?);
        }
        let Some(full) = full else {
            let mut w = publish::Writer::open(&self.config.paths.feeds)?;
            write_synced(&layout, &mut w, synced, &affected, |_, _| {})?;
            return Ok(w.finish()?);
        };
        let before = full.writer.report().clone();
        let keep = &mut full.keep;
        write_synced(
            &layout,
            &mut full.writer,
            synced,
            &affected,
            |written, gone| note_kept(keep, written, gone),
        )?;
        Ok(full.writer.report().since(&before))
    }

    /// Adds to `synced.affected` every other document its changes touched
    /// (tag feeds, pages, archives, OPML). Call it before the next sync:
    /// the archives it lists are those around where the entries are now.
    pub fn list_affected(&self, synced: &mut Synced) -> Result<(), EngineError> {
        if synced.affected_listed {
            return Ok(());
        }
        let site = self.site()?;
        let mut touched = self.layout(&site).affected(&synced.plan.footprints)?;
        touched.retain(|d| !synced.affected.contains(d));
        synced.affected.extend(touched);
        synced.affected_listed = true;
        Ok(())
    }

    /// Takes a sync's changes to the feeds folder, to be written by
    /// [`Engine::continue_pending_write`] (with those of other syncs not
    /// written yet). A sync of everything is a full write's job instead
    /// ([`Engine::begin_full_write`]); this takes only its listed changes.
    pub fn queue_write(&mut self, synced: Synced) -> Result<(), EngineError> {
        let mut synced = synced;
        if let Err(e) = self.list_affected(&mut synced) {
            // What waits would complete a folder that misses this sync:
            // the caller writes everything instead.
            self.pending = None;
            return Err(e);
        }
        let pending = self.pending.get_or_insert_with(|| PendingWrite {
            staged: BTreeMap::new(),
            docs: BTreeSet::new(),
            writer: None,
        });
        for path in synced.removed {
            pending.staged.insert(path, None);
        }
        for doc in synced.documents {
            pending.staged.insert(doc.path.clone(), Some(doc));
        }
        pending.docs.extend(synced.affected);
        Ok(())
    }

    /// Whether changes wait to be written ([`Engine::queue_write`]).
    pub fn pending_write(&self) -> bool {
        self.pending.is_some()
    }

    /// Writes what [`Engine::queue_write`] took: the rendered documents and
    /// removals first, then the touched documents, rendered now, for about
    /// `budget` or until `interrupt` says that something waits. `Some` with
    /// what was written once everything is in place (the folder is then
    /// complete again, unless a full write is under way). An error drops
    /// what was waiting: the folder is behind, and the caller writes it
    /// whole.
    pub fn continue_pending_write(
        &mut self,
        budget: std::time::Duration,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<WriteReport>, EngineError> {
        let Some(mut pending) = self.pending.take() else {
            return Ok(None);
        };
        let out_of_time = out_of(budget);
        let mut full = self.full_write.take();
        let done = match self.pending_slice(&mut pending, full.as_mut(), &out_of_time, interrupt) {
            Ok(done) => done,
            Err(e) => {
                // Dropped with it: a full write that went on would mark
                // the folder complete without these changes.
                drop(full);
                return Err(e);
            }
        };
        self.full_write = full;
        if !done {
            self.pending = Some(pending);
            return Ok(None);
        }
        let Some(writer) = pending.writer.take() else {
            // Through the full write's writer, which puts it in place.
            return Ok(Some(WriteReport::default()));
        };
        let report = writer.finish()?;
        if self.full_write.is_none() {
            self.catalog.set_meta(FEEDS_WRITTEN, &self.fingerprint())?;
        }
        Ok(Some(report))
    }

    /// One slice of [`Engine::continue_pending_write`]: what the syncs
    /// rendered, then at least one batch of the touched documents, more
    /// while there is time and nothing waits; put in place unless
    /// something waits (then the next slice does). Whether all of it is
    /// in place.
    fn pending_slice(
        &self,
        pending: &mut PendingWrite,
        full: Option<&mut FullWrite>,
        out_of_time: &dyn Fn() -> bool,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<bool, EngineError> {
        let (writer, mut keep) = match full {
            Some(full) => (&mut full.writer, Some(&mut full.keep)),
            None => match &mut pending.writer {
                Some(w) => (w, None),
                None => (
                    pending
                        .writer
                        .insert(publish::Writer::open(&self.config.paths.feeds)?),
                    None,
                ),
            },
        };
        let mut written = Vec::new();
        let mut gone = Vec::new();
        for (path, doc) in std::mem::take(&mut pending.staged) {
            match doc {
                Some(d) => written.push(d),
                None => gone.push(path),
            }
        }
        writer.remove(&gone)?;
        writer.stage(&written)?;
        if let Some(keep) = keep.as_deref_mut() {
            note_kept(keep, &written, &gone);
        }
        let site = self.site()?;
        let layout = self.layout(&site);
        let mut first = true;
        while !pending.docs.is_empty() && (first || !(interrupt() || out_of_time())) {
            first = false;
            // (A scope's formats are next to each other in the set, and a
            // batch reads their entries once.)
            let batch: Vec<Doc> = std::iter::from_fn(|| pending.docs.pop_first())
                .take(4)
                .collect();
            let (docs, gone) = layout.render_all(&batch)?;
            writer.remove(&gone)?;
            writer.stage(&docs)?;
            if let Some(keep) = keep.as_deref_mut() {
                note_kept(keep, &docs, &gone);
            }
        }
        let done = pending.docs.is_empty();
        if done || !interrupt() {
            writer.commit()?;
        }
        Ok(done)
    }

    /// Starts rendering and writing every document, removing the files
    /// herald wrote earlier that no longer exist; [`Engine::continue_full_write`]
    /// does the work a slice at a time. Replaces a full write under way.
    pub fn begin_full_write(&mut self) -> Result<(), EngineError> {
        self.full_write = None;
        // It writes everything as the catalog is then.
        self.pending = None;
        let writer = publish::Writer::open(&self.config.paths.feeds)?;
        self.full_write = Some(FullWrite {
            fingerprint: self.fingerprint(),
            listed: false,
            pages_after: Some(String::new()),
            all: Vec::new(),
            scopes: Default::default(),
            next: 0,
            keep: BTreeSet::new(),
            writer,
        });
        Ok(())
    }

    /// Whether a full write has begun and not ended.
    pub fn full_write_pending(&self) -> bool {
        self.full_write.is_some()
    }

    /// Renders and stages the next documents of the full write, for about
    /// `budget` or until `interrupt` says that something else is waiting
    /// (such as a file event); puts them in place once about
    /// [`WRITE_BATCH_BYTES`] are staged (four times that while something
    /// waits). `Some` with the whole write's
    /// report once the folder is complete. An error abandons the full
    /// write.
    pub fn continue_full_write(
        &mut self,
        budget: std::time::Duration,
        interrupt: &dyn Fn() -> bool,
    ) -> Result<Option<WriteReport>, EngineError> {
        let Some(mut full) = self.full_write.take() else {
            return Ok(None);
        };
        let out_of_time = out_of(budget);
        let stop = || interrupt() || out_of_time();
        let site = self.site()?;
        let layout = self.layout(&site);
        if !full.listed {
            // The first slice lists what to write (~0.13 s at 100,000).
            let started = std::time::Instant::now();
            let (all, scopes) = layout.all_but_archives()?;
            tracing::debug!(
                documents = all.len(),
                scopes = scopes.len(),
                ms = started.elapsed().as_millis() as u64,
                "full write of the feeds folder begun"
            );
            full.all = all;
            full.scopes = scopes.into();
            full.listed = true;
            self.full_write = Some(full);
            return Ok(None);
        }
        let mut batch: Vec<Document> = Vec::new();
        let mut bytes = 0;
        loop {
            let Some(doc) = full.all.get(full.next) else {
                // Then the pages, a part at a time, then each scope's
                // archives. (What was written is no longer needed.)
                full.all.clear();
                full.next = 0;
                if let Some(after) = full.pages_after.take() {
                    let pages = layout.pages_after(&after, PAGES_LISTED)?;
                    if let Some(Doc::Page { slug, .. }) = pages.last() {
                        full.pages_after = Some(slug.clone());
                    }
                    full.all = pages;
                } else if let Some(scope) = full.scopes.pop_front() {
                    full.all = layout.archives(&scope)?;
                } else {
                    break;
                }
                if stop() {
                    break;
                }
                continue;
            };
            if full.next % 256 == 0 {
                if let Some(progress) = &self.progress {
                    progress();
                }
            }
            if self.cancelled() {
                return Err(EngineError::Interrupted);
            }
            full.next += 1;
            if let Some(d) = layout.render(doc)? {
                full.keep.insert(d.path.clone());
                bytes += d.bytes.len();
                batch.push(d);
            }
            // Bounded by bytes, not count: archive documents can be 1 MB.
            if bytes >= WRITE_BATCH_BYTES || batch.len() >= WRITE_BATCH || stop() {
                break;
            }
        }
        full.writer.stage(&batch)?;
        drop(batch);
        if full.next < full.all.len() || full.pages_after.is_some() || !full.scopes.is_empty() {
            // Put in place in batches (one syncfs each); not while
            // something waits, unless the batch has grown large.
            let staged = full.writer.pending_bytes();
            if (staged >= WRITE_BATCH_BYTES && !interrupt()) || staged >= 4 * WRITE_BATCH_BYTES {
                full.writer.commit()?;
            }
            self.full_write = Some(full);
            return Ok(None);
        }
        let stale: Vec<String> = full
            .writer
            .listed()
            .filter(|p| !full.keep.contains(*p))
            .cloned()
            .collect();
        full.writer.remove(&stale)?;
        full.writer.save_manifest()?;
        if std::mem::take(&mut self.sweep_temporaries) {
            let removed = full.writer.sweep_temporaries();
            if removed > 0 {
                tracing::info!(
                    removed,
                    "removed the temporary files a run that stopped abnormally left in the feeds folder"
                );
            }
        }
        let report = full.writer.report().clone();
        // (Changes still waiting to be written: complete once they are.)
        if full.fingerprint == self.fingerprint() && self.pending.is_none() {
            self.catalog.set_meta(FEEDS_WRITTEN, &full.fingerprint)?;
        }
        Ok(Some(report))
    }

    /// Reads again what every publish reads: the hot scopes' newest
    /// entries (busiest scope last) and, last, the count of entries per
    /// language. Called by the daemon after a full write, which read
    /// every entry through SQLite's page cache and left the last archives'
    /// pages there: the next publish then finds what it needs in memory
    /// even after the system has dropped its own cache of the state file.
    /// (The first publish after a full write took 87-95 ms to render
    /// instead of ~15 without this, mostly the count, which then walked an
    /// index: 84 ms from disk at 100,000 entries. It is a few rows now.)
    pub fn reread_for_publishing(&self) -> Result<(), EngineError> {
        let site = self.site()?;
        self.layout(&site)
            .render_all(&hot_feeds_busiest_last(&site))?;
        self.catalog.languages()?;
        Ok(())
    }

    /// Whether the feeds folder holds everything as this configuration
    /// renders it (written completely after the last change, by this
    /// version of herald); if not, start-up rewrites all of it.
    pub fn feeds_complete(&self) -> bool {
        self.catalog
            .meta(FEEDS_WRITTEN)
            .ok()
            .flatten()
            .is_some_and(|f| f == self.fingerprint())
            && self.config.paths.feeds.join(publish::MANIFEST).exists()
    }

    /// What the feeds folder's content depends on besides the entries.
    fn fingerprint(&self) -> String {
        let c = &self.config;
        let text = format!(
            "{}.{LAYOUT_REVISION}|{}|{}|{}|{}|{}|{}|{}|{:?}|{}",
            crate::render::VERSION,
            c.site.base_url,
            c.site.title,
            c.site.description,
            c.site.author,
            c.site.default_language,
            c.feeds.max_entries,
            c.feeds.tombstone_period.num_seconds(),
            c.websub.hubs,
            c.paths.feeds.display(),
        );
        crate::snapshot::hex(&sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(text.as_bytes()),
        ))
    }

    fn layout<'a>(&'a self, site: &'a Site) -> Layout<'a> {
        Layout {
            catalog: &self.catalog,
            site,
            max_entries: self.config.feeds.max_entries,
            tombstones_since: pipeline::now() - self.config.feeds.tombstone_period,
        }
    }

    fn context(&self, reparse_all: bool) -> Context {
        let mut ctx = context(&self.config, &self.id_prefix, self.first_run, reparse_all);
        ctx.progress = self.progress.clone();
        ctx.outcome_entries = self.outcome_entries;
        ctx
    }

    /// What the renderers need, as the catalog is now.
    pub fn site(&self) -> Result<Site, EngineError> {
        if let Some(site) = self.site.borrow().as_ref() {
            return Ok(site.clone());
        }
        let made = site(&self.config, &self.catalog, &self.id_prefix, self.epoch)?;
        *self.site.borrow_mut() = Some(made.clone());
        Ok(made)
    }

    /// The catalog or the configuration is about to change.
    fn forget_site(&mut self) {
        *self.site.get_mut() = None;
    }
}

/// One feed per hot scope (its formats read the same entries): the
/// languages from the fewest entries to the most, then everything, so
/// that when they do not all fit in the state's cache, the scopes a new
/// file most likely lands in are the ones read last, and kept.
fn hot_feeds_busiest_last(site: &Site) -> Vec<Doc> {
    let mut languages = site.languages.clone();
    languages.sort_by_key(|(_, n)| *n);
    languages
        .into_iter()
        .map(|(l, _)| crate::render::Scope::lang(l))
        .chain([crate::render::Scope::ALL])
        .map(|scope| Doc::Feed {
            scope,
            format: crate::layout::Format::Atom,
        })
        .collect()
}

/// Writes a sync's documents and the ones it touched, and removes what it
/// made disappear; `note` hears of each batch written and removed.
fn write_synced(
    layout: &Layout,
    w: &mut publish::Writer,
    synced: &Synced,
    affected: &[Doc],
    mut note: impl FnMut(&[Document], &[String]),
) -> Result<(), EngineError> {
    w.write(&synced.documents)?;
    w.remove(&synced.removed)?;
    note(&synced.documents, &synced.removed);
    for batch in affected.chunks(64) {
        let (docs, gone) = layout.render_all(batch)?;
        w.write(&docs)?;
        w.remove(&gone)?;
        note(&docs, &gone);
    }
    Ok(())
}

/// Whether `budget` from now has passed (never, for `Duration::MAX`).
fn out_of(budget: std::time::Duration) -> impl Fn() -> bool {
    let deadline = std::time::Instant::now().checked_add(budget);
    move || deadline.is_some_and(|d| std::time::Instant::now() >= d)
}

/// The primary language subtags of (language, count) rows.
fn primaries(languages: Vec<(String, usize)>) -> BTreeSet<String> {
    languages
        .into_iter()
        .filter_map(|(l, _)| LangTag::parse(&l))
        .map(|t| t.primary().to_string())
        .collect()
}

/// A full write keeps what changes wrote in between, and not what they
/// removed.
fn note_kept(keep: &mut BTreeSet<String>, written: &[Document], gone: &[String]) {
    keep.extend(written.iter().map(|d| d.path.clone()));
    for p in gone {
        keep.remove(p);
    }
}

/// Parses every file without changing anything (`herald check`): reads the
/// state if there is one (files gone since are found again when renamed,
/// as a sync would), else plans as a first run would. Files are read
/// and decided a chunk at a time and only their outcomes kept (without
/// contents): a whole large folder's parsed texts need not fit in memory.
pub fn check(config: &Config) -> Result<(Vec<pipeline::Outcome>, scan::Listing), EngineError> {
    let (catalog, first_run) = match Catalog::open_read_only(&config.paths.state)? {
        Some(c) => (c, false),
        None => (Catalog::open_in_memory()?, true),
    };
    let now = pipeline::now();
    let (id_prefix, _) = identity(&catalog, config, now, false)?;
    let watch = &config.paths.watch;
    let listing = scan::scan(watch).map_err(|source| EngineError::Watch {
        path: watch.clone(),
        source,
    })?;
    let mut known = catalog.known()?;
    let gone = take_gone(&mut known, &listing);
    let mut ctx = context(config, &id_prefix, first_run, true);
    ctx.empty_catalog = catalog.is_empty()?;
    let (triaged, to_read) = pipeline::triage(&catalog, &listing.files, &known, &ctx)?;
    let mut outcomes = triaged.outcomes;
    let chunks: Vec<&[&scan::FileInfo]> = to_read.chunks(CHUNK).collect();
    // Nothing is applied between the chunks: the claims stay exact.
    let mut chunked =
        pipeline::Chunked::new(&known, gone, Claimed::unapplied(), &ctx, chunks.len());
    for (i, chunk) in chunks.into_iter().enumerate() {
        let parsed = pipeline::read_and_parse_all(chunk, &ctx);
        outcomes.extend(chunked.decide(&catalog, i, chunk, parsed)?.outcomes);
    }
    Ok((outcomes, listing))
}

/// Leaves in `known` (the catalog's live rows by path) the files listed
/// now, and returns the others, in path order: files gone since (a rename
/// finds its entry among them). A file in a folder that could not be read
/// is not gone.
fn take_gone(known: &mut HashMap<String, Known>, listing: &scan::Listing) -> Vec<(String, Known)> {
    let present: HashSet<&str> = listing.files.iter().map(|f| f.rel.as_str()).collect();
    let mut gone: Vec<(String, Known)> = known
        .iter()
        .filter(|(p, _)| !present.contains(p.as_str()) && !listing.may_hide(p))
        .map(|(p, k)| (p.clone(), k.clone()))
        .collect();
    gone.sort_by(|a, b| a.0.cmp(&b.0));
    known.retain(|p, _| present.contains(p.as_str()));
    gone
}

fn context(config: &Config, id_prefix: &str, first_run: bool, reparse_all: bool) -> Context {
    Context {
        options: ParseOptions {
            languages: config.site.languages.clone(),
            default_language: config.site.default_language.clone(),
            max_title_chars: config.limits.max_title_chars,
            max_summary_chars: config.limits.max_summary_chars,
        },
        id_prefix: id_prefix.to_string(),
        now: pipeline::now(),
        first_run,
        max_file_bytes: config.limits.max_file_bytes,
        reparse_all,
        empty_catalog: false,
        outcome_entries: true,
        progress: None,
    }
}

/// The id prefix and epoch, fixed at first run and kept in the state.
fn identity(
    catalog: &Catalog,
    config: &Config,
    now: DateTime<FixedOffset>,
    store: bool,
) -> Result<(String, DateTime<FixedOffset>), CatalogError> {
    let prefix = match catalog.meta("id_prefix")? {
        Some(p) => p,
        None => {
            let authority = config
                .site
                .id_authority
                .clone()
                .unwrap_or_else(|| config::base_url_host(&config.site.base_url).to_string());
            let authority = if config::is_tag_authority(&authority) {
                authority
            } else {
                "localhost".to_string()
            };
            let p = format!("tag:{authority},{}:", now.format("%Y-%m-%d"));
            if store {
                catalog.set_meta("id_prefix", &p)?;
            }
            p
        }
    };
    let epoch = match catalog
        .meta("epoch")?
        .and_then(|e| DateTime::parse_from_rfc3339(&e).ok())
    {
        Some(e) => e,
        None => {
            if store {
                catalog.set_meta("epoch", &now.to_rfc3339())?;
            }
            now
        }
    };
    Ok((prefix, epoch))
}

fn site(
    config: &Config,
    catalog: &Catalog,
    id_prefix: &str,
    epoch: DateTime<FixedOffset>,
) -> Result<Site, EngineError> {
    let languages = catalog
        .languages()?
        .into_iter()
        .filter_map(|(l, n)| LangTag::parse(&l).map(|t| (t, n)))
        .collect();
    Ok(Site {
        title: config.site.title.clone(),
        description: config.site.description.clone(),
        base_url: config.site.base_url.clone(),
        author: config.site.author.clone(),
        id_prefix: id_prefix.to_string(),
        default_language: config.site.default_language.clone(),
        epoch,
        languages,
        hubs: config.websub.hubs.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const TEXTS: [&str; 3] = [
        "The city council announces road works on Main Street from Monday, with buses diverted via the station and parking closed.",
        "Die Stadtverwaltung kündigt ab Montag Bauarbeiten in der Hauptstraße an; die Busse fahren über den Bahnhof und Parkplätze sind gesperrt.",
        "Urząd miasta zapowiada od poniedziałku roboty drogowe na ulicy Głównej, autobusy pojadą objazdem przez dworzec, a parking będzie zamknięty.",
    ];
    const FRENCH: &str = "La mairie annonce des travaux rue Principale à partir de lundi ; les bus seront déviés par la gare et le parking sera fermé.";

    #[test]
    fn newest_entries_are_read_again_busiest_scope_last() {
        let mut site = crate::render::fixtures::site();
        site.languages = [("de", 40), ("en", 900), ("uk", 7)]
            .into_iter()
            .map(|(l, n)| (LangTag::parse(l).expect("tag"), n))
            .collect();
        let order: Vec<String> = hot_feeds_busiest_last(&site)
            .into_iter()
            .map(|d| match d {
                Doc::Feed {
                    scope,
                    format: crate::layout::Format::Atom,
                } => scope.lang.map_or("all".to_string(), |l| l.to_string()),
                other => panic!("not an Atom feed: {other:?}"),
            })
            .collect();
        assert_eq!(order, ["uk", "de", "en", "all"]);
    }

    fn site(n: usize) -> (tempfile::TempDir, Engine) {
        let dir = tempfile::tempdir().expect("temp dir");
        let watch = dir.path().join("watch");
        std::fs::create_dir_all(&watch).expect("watch folder");
        for i in 0..n {
            let text = TEXTS[i % TEXTS.len()];
            let body = format!("Announcement {i}\n\n{text}\n{text}\n");
            std::fs::write(watch.join(format!("a-{i:03}.txt")), body).expect("announcement");
        }
        let engine = Engine::open(config(dir.path())).expect("engine");
        (dir, engine)
    }

    /// The configuration of [`site`]'s folder.
    fn config(dir: &std::path::Path) -> Config {
        Config::parse(
            "[site]\ntitle = \"Test city\"\nbase_url = \"https://news.example.org/\"\n[feeds]\nmax_entries = 5\n",
            &dir.join("config.toml"),
        )
        .expect("config")
    }

    /// A site of `n` announcements, synced, its full write begun; and its
    /// feeds folder.
    fn begun(n: usize) -> (tempfile::TempDir, Engine, std::path::PathBuf) {
        let (dir, mut engine) = site(n);
        let feeds = dir.path().join("feeds");
        engine.sync_full(true).expect("first sync");
        engine.begin_full_write().expect("begin");
        (dir, engine, feeds)
    }

    /// `n` slices of one document each (the first one lists).
    fn slices(engine: &mut Engine, n: usize) {
        for _ in 0..n {
            engine
                .continue_full_write(Duration::ZERO, &|| false)
                .expect("slice");
        }
    }

    /// The files below `dir` (relative paths), the manifest left out.
    fn files(dir: &std::path::Path) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    todo.push(p);
                } else if p.to_string_lossy().contains(".herald-")
                    && !p.ends_with(publish::MANIFEST)
                {
                    // A staged temporary file: not in place.
                } else if let Ok(rel) = p.strip_prefix(dir) {
                    out.insert(rel.to_string_lossy().into_owned());
                }
            }
        }
        out.remove(publish::MANIFEST);
        out
    }

    #[test]
    fn a_full_write_in_slices_with_changes_between_ends_as_one_write_would() {
        let (dir, mut engine, feeds) = begun(36);
        let watch = dir.path().join("watch");
        // A zero budget writes one document per slice.
        slices(&mut engine, 5);
        assert!(engine.full_write_pending());
        assert!(!engine.feeds_complete());

        // In between: an announcement with new tags comes, another goes.
        tagged(&watch, "de-1.md");
        std::fs::remove_file(watch.join("a-000.txt")).expect("remove");
        let changed = engine
            .sync_paths(&["de-1.md".to_string(), "a-000.txt".to_string()])
            .expect("sync");
        assert!(!changed.everything);
        let report = engine.write_changes(&changed).expect("changes written");
        assert!(report.written > 0, "{report:?}");
        assert!(feeds.join("tags/bus/atom.xml").exists());
        // Still under way, and not complete.
        assert!(engine.full_write_pending());
        assert!(!engine.feeds_complete());

        let mut slices = 0;
        let report = loop {
            slices += 1;
            if let Some(r) = engine
                .continue_full_write(Duration::ZERO, &|| false)
                .expect("slice")
            {
                break r;
            }
        };
        assert!(slices > 10, "one document per slice: {slices}");
        assert!(report.written > 0);
        assert!(!engine.full_write_pending());
        assert!(engine.feeds_complete());
        // What changes wrote in between is kept.
        assert!(feeds.join("tags/bus/atom.xml").exists());

        // The folder is what one uninterrupted write makes of the state:
        // writing everything again changes and removes nothing.
        let everything = Synced {
            everything: true,
            ..Default::default()
        };
        let again = engine.write(&everything).expect("write everything");
        assert_eq!((again.written, again.removed), (0, 0), "{again:?}");
        // And the manifest lists exactly the files there.
        assert_eq!(publish::read_manifest(&feeds), files(&feeds));
    }

    /// Writes the pending changes, alternating slices with no budget
    /// (which stage what the syncs rendered and nothing more) and slices
    /// with time enough for the rest; returns how many it took.
    fn write_pending(engine: &mut Engine) -> usize {
        let mut slices = 0;
        while engine.pending_write() {
            slices += 1;
            assert!(slices < 100, "the pending write never ends");
            let budget = if slices % 2 == 1 {
                Duration::ZERO
            } else {
                Duration::from_secs(60)
            };
            engine
                .continue_pending_write(budget, &|| false)
                .expect("pending slice");
        }
        slices
    }

    /// A tagged German announcement in Markdown (German is one of the
    /// site's languages already).
    fn tagged(watch: &std::path::Path, name: &str) {
        let german = TEXTS[1];
        std::fs::write(
            watch.join(name),
            format!(
                "---\ntitle: Bauarbeiten {name}\ntags: [Straßen, Bus]\n---\n{german}\n{german}\n"
            ),
        )
        .expect("new file");
    }

    #[test]
    fn changes_queued_by_several_syncs_and_written_later_leave_the_folder_as_one_write_would() {
        let (dir, mut engine, feeds) = begun(36);
        let watch = dir.path().join("watch");
        while engine
            .continue_full_write(Duration::MAX, &|| false)
            .expect("full write")
            .is_none()
        {}
        assert!(engine.feeds_complete());

        // A tagged announcement: visible at once, on disk later.
        tagged(&watch, "de-1.md");
        let first = engine.sync_paths(&["de-1.md".to_string()]).expect("sync");
        assert!(!first.affected_listed);
        engine.queue_write(first).expect("queued");
        assert!(engine.pending_write());
        assert!(!engine.feeds_complete());
        assert!(!feeds.join("tags/bus/atom.xml").exists());
        // Interrupted at once: what the sync rendered is staged, the rest
        // waits.
        assert!(engine
            .continue_pending_write(Duration::MAX, &|| true)
            .expect("slice")
            .is_none());
        assert!(engine.pending_write());

        // More changes before it is written: another tagged file, and
        // one of the first announcements goes.
        tagged(&watch, "de-2.md");
        std::fs::remove_file(watch.join("a-002.txt")).expect("remove");
        let second = engine
            .sync_paths(&["de-2.md".to_string(), "a-002.txt".to_string()])
            .expect("sync");
        engine.queue_write(second).expect("queued");
        let slices = write_pending(&mut engine);
        assert!(slices > 1, "{slices}");
        assert!(engine.feeds_complete());
        assert!(feeds.join("tags/bus/atom.xml").exists());
        assert!(feeds.join("de/tags/bus/rss.xml").exists());
        assert!(!feeds.join("pl/a-002.html").exists());

        // The tagged announcements go again: their tag's documents go
        // (or stay for the withdrawn entries' tombstones) the same way.
        std::fs::remove_file(watch.join("de-1.md")).expect("remove");
        std::fs::remove_file(watch.join("de-2.md")).expect("remove");
        let gone = engine
            .sync_paths(&["de-1.md".to_string(), "de-2.md".to_string()])
            .expect("sync");
        assert!(!gone.everything);
        engine.queue_write(gone).expect("queued");
        write_pending(&mut engine);
        assert!(!feeds.join("de/tags/bus/index.html").exists());

        // Writing everything again changes and removes nothing, and the
        // manifest lists exactly the files there.
        let everything = Synced {
            everything: true,
            ..Default::default()
        };
        let again = engine.write(&everything).expect("write everything");
        assert_eq!((again.written, again.removed), (0, 0), "{again:?}");
        assert_eq!(publish::read_manifest(&feeds), files(&feeds));

        // A new language changes every page (they list the languages):
        // that is a full write's job.
        std::fs::write(
            watch.join("fr.txt"),
            format!("Travaux\n\n{FRENCH}\n{FRENCH}\n"),
        )
        .expect("new file");
        let french = engine.sync_paths(&["fr.txt".to_string()]).expect("sync");
        assert!(french.everything);
    }

    #[test]
    fn changes_queued_during_a_full_write_go_through_it_and_it_completes_after_them() {
        let (dir, mut engine, feeds) = begun(36);
        let watch = dir.path().join("watch");
        slices(&mut engine, 5);
        tagged(&watch, "de-1.md");
        let changed = engine.sync_paths(&["de-1.md".to_string()]).expect("sync");
        engine.queue_write(changed).expect("queued");
        // Its changes first, through the full write's writer; the folder
        // is complete only when both are done.
        write_pending(&mut engine);
        assert!(feeds.join("tags/bus/atom.xml").exists());
        assert!(engine.full_write_pending());
        assert!(!engine.feeds_complete());
        tagged(&watch, "de-2.md");
        let changed = engine.sync_paths(&["de-2.md".to_string()]).expect("sync");
        engine.queue_write(changed).expect("queued");
        // The full write ends first: not complete while changes wait.
        while engine
            .continue_full_write(Duration::MAX, &|| false)
            .expect("full write")
            .is_none()
        {}
        assert!(!engine.feeds_complete());
        write_pending(&mut engine);
        assert!(engine.feeds_complete());
        let everything = Synced {
            everything: true,
            ..Default::default()
        };
        let again = engine.write(&everything).expect("write everything");
        assert_eq!((again.written, again.removed), (0, 0), "{again:?}");
        assert_eq!(publish::read_manifest(&feeds), files(&feeds));
    }

    /// Puts a file where the feeds folder was: nothing can be written.
    fn break_feeds(feeds: &std::path::Path) {
        std::fs::rename(feeds, feeds.with_extension("old")).expect("moved away");
        std::fs::write(feeds, "not a folder").expect("file in its place");
    }

    #[test]
    fn a_failed_pending_write_leaves_the_folder_behind_and_ends_a_full_write_under_way() {
        for during_full_write in [false, true] {
            let (dir, mut engine, feeds) = begun(12);
            let watch = dir.path().join("watch");
            if during_full_write {
                slices(&mut engine, 3);
            } else {
                while engine
                    .continue_full_write(Duration::MAX, &|| false)
                    .expect("full write")
                    .is_none()
                {}
            }
            tagged(&watch, "de-1.md");
            let changed = engine.sync_paths(&["de-1.md".to_string()]).expect("sync");
            engine.queue_write(changed).expect("queued");
            break_feeds(&feeds);
            assert!(engine
                .continue_pending_write(Duration::MAX, &|| false)
                .is_err());
            assert!(!engine.pending_write());
            assert!(
                !engine.full_write_pending(),
                "a full write that went on would end complete without the change"
            );
            assert!(!engine.feeds_complete());
        }
    }

    #[test]
    fn a_pending_write_interrupted_at_every_slice_still_ends() {
        let (dir, mut engine, feeds) = begun(12);
        let watch = dir.path().join("watch");
        while engine
            .continue_full_write(Duration::MAX, &|| false)
            .expect("full write")
            .is_none()
        {}
        tagged(&watch, "de-1.md");
        let changed = engine.sync_paths(&["de-1.md".to_string()]).expect("sync");
        engine.queue_write(changed).expect("queued");
        let mut slices = 0;
        while engine.pending_write() {
            slices += 1;
            assert!(slices < 100, "no progress");
            engine
                .continue_pending_write(Duration::ZERO, &|| true)
                .expect("slice");
        }
        assert!(slices > 1);
        assert!(engine.feeds_complete());
        assert!(feeds.join("tags/bus/atom.xml").exists());
    }

    #[test]
    fn a_language_that_came_while_herald_was_stopped_rewrites_the_whole_folder() {
        let (dir, mut engine) = site(12);
        let watch = dir.path().join("watch");
        let first = engine.sync_full(true).expect("first sync");
        engine.write(&first).expect("written");
        drop(engine);
        // Another German announcement: the same languages.
        tagged(&watch, "de-1.md");
        let mut engine = Engine::open(config(dir.path())).expect("engine");
        assert!(!engine.sync_full(false).expect("sync").everything);
        drop(engine);
        std::fs::write(
            watch.join("fr.txt"),
            format!("Travaux\n\n{FRENCH}\n{FRENCH}\n"),
        )
        .expect("new file");
        let mut engine = Engine::open(config(dir.path())).expect("engine");
        assert!(engine.sync_full(false).expect("sync").everything);
    }

    #[test]
    fn a_full_write_replaced_or_dropped_keeps_its_files_in_the_manifest() {
        let (_dir, mut engine, feeds) = begun(12);
        slices(&mut engine, 4);
        // Replaced by a new full write: what the first one staged is put
        // in place and listed.
        engine.begin_full_write().expect("begin again");
        let written = files(&feeds);
        assert_eq!(written.len(), 3, "{written:?}");
        assert_eq!(publish::read_manifest(&feeds), written);
        // (It lists, then renders the same three, unchanged, then two more.)
        slices(&mut engine, 6);
        // Dropped with the engine (shutdown): the same.
        drop(engine);
        assert_eq!(files(&feeds).len(), 5);
        assert_eq!(publish::read_manifest(&feeds), files(&feeds));
    }

    #[test]
    fn a_slice_ends_when_interrupted_and_puts_nothing_in_place_then() {
        let (_dir, mut engine, feeds) = begun(12);
        let listing = engine.continue_full_write(Duration::MAX, &|| true);
        assert_eq!(listing.expect("listed"), None);
        // An unlimited budget, but something waits: one document.
        let asked = std::cell::Cell::new(0);
        let interrupt = || {
            asked.set(asked.get() + 1);
            true
        };
        let slice = engine.continue_full_write(Duration::MAX, &interrupt);
        assert_eq!(slice.expect("slice"), None);
        assert!(asked.get() >= 1);
        assert_eq!(files(&feeds), BTreeSet::new(), "staged only");
        // Uninterrupted, it ends.
        let report = engine
            .continue_full_write(Duration::MAX, &|| false)
            .expect("the rest")
            .expect("done");
        assert_eq!(report.written, files(&feeds).len());
        assert!(engine.feeds_complete());
    }
}
