//! The publishing engine: configuration + state, and one sync at a time.
//!
//! A sync scans (all of the watch folder, or the paths an event named),
//! plans, applies the plan to the catalog, renders the feeds, indexes and
//! changed pages; [`Engine::write`] then writes them to the feeds folder. `build` runs one full
//! sync; the daemon runs one per batch of file events and keeps the rendered
//! documents in memory. A failure to write to disk does not stop a sync: the
//! in-memory documents are still current, and the next sync retries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, FixedOffset};

use crate::announcement::lang::LangTag;
use crate::announcement::ParseOptions;
use crate::catalog::{Catalog, CatalogError, Known};
use crate::config::{self, Config};
use crate::pipeline::{self, Context, Plan};
use crate::publish::{self, Document, PublishError, WriteReport};
use crate::render::{self, Site};
use crate::scan;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("watch folder {path}: {source}")]
    Watch {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one sync did.
#[derive(Debug)]
pub struct Synced {
    pub plan: Plan,
    /// Every document rendered by this sync (feeds, indexes, changed pages).
    pub documents: Vec<Document>,
    /// Document paths that no longer exist.
    pub removed: Vec<String>,
    /// Entries that could not be listed: (path, error).
    pub scan_errors: Vec<(String, String)>,
}

pub struct Engine {
    progress: Option<pipeline::Progress>,
    config: Config,
    catalog: Catalog,
    id_prefix: String,
    epoch: DateTime<FixedOffset>,
    first_run: bool,
}

impl Engine {
    /// Opens the state (taking its lock) for `config`.
    pub fn open(config: Config) -> Result<Engine, EngineError> {
        let catalog = Catalog::open(&config.paths.state)?;
        let first_run = catalog.is_new();
        let now = pipeline::now();
        let (id_prefix, epoch) = identity(&catalog, &config, now, true)?;
        Ok(Engine {
            progress: None,
            config,
            catalog,
            id_prefix,
            epoch,
            first_run,
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

    /// Called during long syncs (the daemon's liveness heartbeat).
    pub fn set_progress(&mut self, progress: pipeline::Progress) {
        self.progress = Some(progress);
    }

    /// Takes a new configuration (reload). Ids stay as they were.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// Scans the whole watch folder and publishes. `all_pages` re-renders
    /// every announcement's page (start-up, `build`), not just changed ones.
    pub fn sync_full(&mut self, all_pages: bool) -> Result<Synced, EngineError> {
        let watch = &self.config.paths.watch;
        let listing = scan::scan(watch).map_err(|source| EngineError::Watch {
            path: watch.clone(),
            source,
        })?;
        let mut known = self.catalog.known()?;
        let present: HashMap<&str, ()> =
            listing.files.iter().map(|f| (f.rel.as_str(), ())).collect();
        let gone: Vec<(String, Known)> = known
            .iter()
            .filter(|(p, _)| !present.contains_key(p.as_str()))
            .map(|(p, k)| (p.clone(), k.clone()))
            .collect();
        known.retain(|p, _| present.contains_key(p.as_str()));
        let plan = pipeline::plan(
            &self.catalog,
            &listing.files,
            &known,
            gone,
            &self.context(false),
        )?;
        self.finish(plan, listing.errors, all_pages)
    }

    /// Looks only at the given paths (relative to the watch folder; files or
    /// folders, present or gone) and publishes.
    pub fn sync_paths(&mut self, rels: &[String]) -> Result<Synced, EngineError> {
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
                if !files.contains_key(&p) && !known.contains_key(&p) {
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
        let plan = pipeline::plan(&self.catalog, &files, &known, gone, &self.context(false))?;
        self.finish(plan, errors, false)
    }

    /// Renders every live announcement's page (start-up of the daemon).
    pub fn all_pages(&self) -> Result<Vec<Document>, EngineError> {
        let site = self.site()?;
        let mut docs = Vec::new();
        for id in self.catalog.live_ids()? {
            if let Some(e) = self.catalog.entry(&id)? {
                docs.push(Document {
                    path: render::page_path(&e),
                    bytes: render::html::entry(&site, &e).into_bytes().into(),
                    content_type: publish::HTML,
                    last_modified: Some(e.updated.timestamp()),
                });
            }
        }
        Ok(docs)
    }

    /// Renders everything from the state without scanning (when the watch
    /// folder cannot be read at start-up).
    pub fn render_all(&self) -> Result<Vec<Document>, EngineError> {
        let site = self.site()?;
        let mut docs =
            pipeline::render_documents(&self.catalog, &site, self.config.feeds.max_entries, &[])?;
        docs.extend(self.all_pages()?);
        Ok(docs)
    }

    fn finish(
        &mut self,
        plan: Plan,
        scan_errors: Vec<(String, String)>,
        all_pages: bool,
    ) -> Result<Synced, EngineError> {
        let languages_before = self.catalog.languages()?;
        let t = std::time::Instant::now();
        self.catalog.apply(&plan.changes)?;
        tracing::debug!(
            changes = plan.changes.len(),
            ms = t.elapsed().as_millis() as u64,
            "applied"
        );
        let t = std::time::Instant::now();
        self.first_run = false;
        let site = self.site()?;
        let mut documents = pipeline::render_documents(
            &self.catalog,
            &site,
            self.config.feeds.max_entries,
            &plan.pages,
        )?;
        if all_pages {
            let have: HashSet<String> = documents.iter().map(|d| d.path.clone()).collect();
            let rest: Vec<Document> = self
                .all_pages()?
                .into_iter()
                .filter(|d| !have.contains(&d.path))
                .collect();
            documents.extend(rest);
        }
        let mut removed = plan.pages_removed.clone();
        for (lang, _) in languages_before {
            if !site.languages.iter().any(|(l, _)| l.primary() == lang) {
                for file in ["rss.xml", "atom.xml", "index.html"] {
                    removed.push(format!("{lang}/{file}"));
                }
            }
        }
        let have: HashSet<&str> = documents.iter().map(|d| d.path.as_str()).collect();
        removed.retain(|p| !have.contains(p.as_str()));
        tracing::debug!(
            documents = documents.len(),
            ms = t.elapsed().as_millis() as u64,
            "rendered"
        );
        Ok(Synced {
            plan,
            documents,
            removed,
            scan_errors,
        })
    }

    /// Writes what a sync rendered to the feeds folder. A failure (disk
    /// full, read-only folder) does not undo the sync; the caller logs it.
    pub fn write(&self, synced: &Synced) -> Result<WriteReport, PublishError> {
        publish::write(&self.config.paths.feeds, &synced.documents, &synced.removed)
    }

    /// Writes the given documents (all of them, after a failed write).
    pub fn write_documents(
        &self,
        documents: &[Document],
        removed: &[String],
    ) -> Result<WriteReport, PublishError> {
        publish::write(&self.config.paths.feeds, documents, removed)
    }

    fn context(&self, reparse_all: bool) -> Context {
        let mut ctx = context(&self.config, &self.id_prefix, self.first_run, reparse_all);
        ctx.progress = self.progress.clone();
        ctx
    }

    /// What the renderers need, as the catalog is now.
    pub fn site(&self) -> Result<Site, EngineError> {
        site(&self.config, &self.catalog, &self.id_prefix, self.epoch)
    }
}

/// Parses every file without changing anything (`herald check`): reads the
/// state if there is one, else plans as a first run would.
pub fn check(config: &Config) -> Result<(Plan, scan::Listing), EngineError> {
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
    let all_known = catalog.known()?;
    let known: HashMap<String, Known> = listing
        .files
        .iter()
        .filter_map(|f| all_known.get(&f.rel).map(|k| (f.rel.clone(), k.clone())))
        .collect();
    let ctx = context(config, &id_prefix, first_run, true);
    let plan = pipeline::plan(&catalog, &listing.files, &known, Vec::new(), &ctx)?;
    Ok((plan, listing))
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
    })
}
