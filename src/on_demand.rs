//! Documents rendered when first asked for: entry pages, archives, tag
//! feeds, OPML (see [`crate::layout`]). There can be hundreds of thousands
//! of them, so they are not kept ready like the hot documents: a request
//! renders one from the state (a read-only connection of its own, never the
//! publisher's) and keeps it, compressed, in a cache bounded in bytes.
//! Every publish empties the cache, so nothing stale is ever served.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::layout::{Doc, Layout};
use crate::render::Site;
use crate::snapshot::{self, Resource};

/// What on-demand rendering needs besides the state.
#[derive(Debug, Clone)]
pub struct Settings {
    pub state: PathBuf,
    pub max_entries: usize,
    pub tombstone_period: Duration,
    /// Cache budget (bytes of all encodings together).
    pub cache_bytes: usize,
}

pub struct OnDemand {
    settings: Settings,
    inner: Mutex<Inner>,
    /// Idle read-only connections.
    readers: Mutex<Vec<Catalog>>,
}

struct Inner {
    site: Option<Arc<Site>>,
    cache: HashMap<String, (Arc<Resource>, u64)>,
    bytes: usize,
    tick: u64,
}

impl OnDemand {
    pub fn new(settings: Settings) -> OnDemand {
        OnDemand {
            settings,
            inner: Mutex::new(Inner {
                site: None,
                cache: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
            readers: Mutex::new(Vec::new()),
        }
    }

    /// After a publish: the site as it is now, and an empty cache.
    pub fn published(&self, site: Site) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.site = Some(Arc::new(site));
        inner.cache.clear();
        inner.bytes = 0;
    }

    /// The document at `path`, rendered now or from the cache; `None` when
    /// there is no such document. Blocking (SQLite and compression): call
    /// it off the async runtime's workers.
    pub fn get(&self, path: &str) -> Option<Arc<Resource>> {
        let doc = Doc::parse(path)?;
        let site = {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            inner.tick += 1;
            let tick = inner.tick;
            if let Some((r, used)) = inner.cache.get_mut(path) {
                *used = tick;
                return Some(r.clone());
            }
            inner.site.clone()?
        };
        let catalog = self.reader()?;
        let layout = Layout {
            catalog: &catalog,
            site: &site,
            max_entries: self.settings.max_entries,
            tombstones_since: crate::pipeline::now() - self.settings.tombstone_period,
        };
        let rendered = layout.render(&doc);
        self.readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(catalog);
        let document = match rendered {
            Ok(d) => d?,
            Err(e) => {
                tracing::warn!(path, error = %e, "cannot render on demand");
                return None;
            }
        };
        let digest = snapshot::hex(&Sha256::digest(&document.bytes)[..16]);
        let resource = Arc::new(snapshot::resource(
            &document,
            digest,
            crate::pipeline::now().timestamp(),
        ));
        let size = resource.size();
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if !inner.site.as_ref().is_some_and(|s| Arc::ptr_eq(s, &site)) {
            return Some(resource); // published meanwhile: do not cache
        }
        if size <= self.settings.cache_bytes {
            while inner.bytes + size > self.settings.cache_bytes {
                let Some(oldest) = inner
                    .cache
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(k, _)| k.clone())
                else {
                    break;
                };
                if let Some((r, _)) = inner.cache.remove(&oldest) {
                    inner.bytes = inner.bytes.saturating_sub(r.size());
                }
            }
            let tick = inner.tick;
            inner.bytes += size;
            if let Some((old, _)) = inner
                .cache
                .insert(path.to_string(), (resource.clone(), tick))
            {
                inner.bytes = inner.bytes.saturating_sub(old.size());
            }
        }
        Some(resource)
    }

    /// Bytes held by the cache now.
    pub fn cached_bytes(&self) -> usize {
        self.inner.lock().map(|i| i.bytes).unwrap_or(0)
    }

    fn reader(&self) -> Option<Catalog> {
        if let Some(c) = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Some(c);
        }
        match Catalog::open_read_only(&self.settings.state) {
            Ok(Some(c)) => Some(c),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the state for reading");
                None
            }
        }
    }
}
