//! The persistent state: one SQLite database in the state folder.
//!
//! The only module that talks to the database. It stores what the pipeline
//! decided (ids, paths, hashes, first-seen/published/updated times, the
//! parsed announcement) and answers the queries the renderers need; it makes
//! no decisions of its own. A lock file keeps a second herald off the same
//! state; a database that is not readable is moved aside and rebuilt.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};

use crate::announcement::lang::LangTag;
use crate::announcement::LangSource;

const SCHEMA_VERSION: i64 = 2;
/// Prepared statements kept per connection (more than the catalog uses).
const STATEMENT_CACHE: usize = 96;
const DB_FILE: &str = "herald.db";
const LOCK_FILE: &str = "herald.lock";
/// Present while a new database is filled without a rollback journal (see
/// [`Catalog::finish_import`]); found at open, it means that fill was
/// interrupted and the database is started over.
const IMPORT_MARKER: &str = "herald.db-importing";
/// Left by a catalog closed normally and removed when it is opened: found at
/// open, the last run ended cleanly and the whole-file check is skipped;
/// missing (a crash, a kill -9, power loss, an older herald), the database
/// is checked with `PRAGMA quick_check` before use (~0.3 s per 500 MB).
const CLOSED_MARKER: &str = "herald.db-closed";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("state folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state folder {0} is in use by another herald (lock held on {0}/herald.lock)")]
    Locked(PathBuf),
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("state database {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
}

/// A published (or formerly published) announcement as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub path: String,
    pub slug: String,
    pub hash: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub first_seen: DateTime<FixedOffset>,
    pub published: DateTime<FixedOffset>,
    pub updated: DateTime<FixedOffset>,
    pub lang: LangTag,
    pub lang_source: LangSource,
    pub encoding: String,
    pub title: String,
    pub summary: String,
    pub content: String,
    pub author: Option<String>,
    pub tags: Vec<String>,
    pub warnings: Vec<String>,
    /// Entries with the same key are translations of each other.
    pub translation_key: Option<String>,
    /// Hidden before this moment.
    pub publish_at: Option<DateTime<FixedOffset>>,
    /// Withdrawn from this moment.
    pub expires: Option<DateTime<FixedOffset>>,
    /// Withdrawn by its front matter.
    pub withdrawn: bool,
    pub withdrawn_comment: Option<String>,
    /// Not stored: the entry's translations, filled in for rendering by
    /// [`Catalog::fill_translations`].
    pub translations: Vec<Translation>,
}

impl Entry {
    /// Whether the entry is shown at `now`: its file is there, it is not
    /// withdrawn, its `publish_at` has come and its `expires` has not.
    pub fn shown_at(&self, now: DateTime<FixedOffset>) -> bool {
        !self.path.is_empty()
            && !self.withdrawn
            && self.publish_at.is_none_or(|t| t <= now)
            && self.expires.is_none_or(|t| t > now)
    }

    /// `YYYY-MM` of the published date in UTC: the entry's archive month.
    pub fn month(&self) -> String {
        self.published.naive_utc().format("%Y-%m").to_string()
    }
}

/// Another language version of an entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    pub lang: LangTag,
    pub slug: String,
    pub title: String,
}

/// An entry that was shown and no longer is (deleted, withdrawn, expired):
/// announced as deleted (RFC 6721) for a while.
#[derive(Debug, Clone, PartialEq)]
pub struct Tombstone {
    pub id: String,
    pub when: DateTime<FixedOffset>,
    pub comment: Option<String>,
    pub lang: LangTag,
}

/// Which entries a query is about: all, or those of one primary language
/// and/or one tag slug.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Filter<'a> {
    pub lang: Option<&'a str>,
    pub tag: Option<&'a str>,
}

/// A tag on at most this many entries is looked up from its own side (see
/// [`Filter::sql`]).
const FEW_TAGGED: i64 = 256;

impl Filter<'_> {
    /// SQL conditions on `entries`, parameters from `?{first}` on; `few`:
    /// the tag (if any) is on at most [`FEW_TAGGED`] entries.
    fn sql(&self, first: usize, few: bool) -> (String, Vec<String>) {
        let mut cond = String::new();
        let mut params = Vec::new();
        if let Some(l) = self.lang {
            cond.push_str(&format!(" AND lang_primary = ?{}", first + params.len()));
            params.push(l.to_string());
        }
        if let Some(t) = self.tag {
            let n = first + params.len();
            if few {
                // A rare tag: its few entries looked up by id. (With the
                // EXISTS below SQLite walks the whole date index to find
                // them: 80-90 ms per query at 100,000 entries, against
                // 0.03-0.5 ms.)
                cond.push_str(&format!(
                    " AND entries.id IN (SELECT id FROM entry_tags WHERE slug = ?{n})"
                ));
            } else {
                // A correlated EXISTS, not `id IN (SELECT ...)`: with IN,
                // SQLite looks every tagged entry up by id and reads its
                // row, whose `sort_key`/`visible` sit after the content's
                // overflow pages (74 GB read to write the archives of
                // 100,000 announcements); with EXISTS it walks the date
                // indexes and probes the tag's covering primary key.
                cond.push_str(&format!(
                    " AND EXISTS (SELECT 1 FROM entry_tags t WHERE t.id = entries.id AND t.slug = ?{n})"
                ));
            }
            params.push(t.to_string());
        }
        (cond, params)
    }
}

/// Where an entry sorts: newest first by `sort_key` (published, ms), then id.
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    pub sort_key: i64,
    pub id: String,
}

/// How many shown entries carry a tag (in one language, or in all).
#[derive(Debug, Clone, PartialEq)]
pub struct TagCount {
    pub slug: String,
    pub name: String,
    pub lang: String,
    pub count: usize,
}

/// What [`Catalog::refresh`] changed, and when it must run next.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Refreshed {
    /// Entries that appeared (`publish_at` reached) or went (`expires` reached).
    pub changed: Vec<String>,
    /// The next `publish_at` or `expires` still ahead.
    pub next: Option<DateTime<FixedOffset>>,
}

/// The little the pipeline needs to know about a live path.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub id: String,
    pub hash: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// A file that was rejected as it is now (so its warning is not repeated).
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub size: u64,
    pub mtime_ns: i64,
    pub error: String,
}

/// One change to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Insert or replace the entry with this id.
    Upsert(Box<Entry>),
    /// Same content, new file metadata.
    Touch {
        id: String,
        size: u64,
        mtime_ns: i64,
    },
    /// The file is gone: keep the row (ids are never reused), unpublish it.
    Delete {
        id: String,
        at: DateTime<FixedOffset>,
    },
    Reject {
        path: String,
        size: u64,
        mtime_ns: i64,
        error: String,
    },
    ClearReject {
        path: String,
    },
}

pub struct Catalog {
    conn: Connection,
    path: PathBuf,
    created: bool,
    /// Held for the catalog's lifetime; dropping it releases the lock.
    _lock: Option<File>,
    /// Set when a damaged database was moved aside on open.
    pub recovered_from: Option<PathBuf>,
    /// A new database being filled without a journal: the marker file.
    importing: Option<PathBuf>,
    /// An interrupted first import was discarded on open.
    pub import_restarted: bool,
    /// Where to leave [`CLOSED_MARKER`] when this catalog is dropped (the
    /// locked, writable state only).
    closed_marker: Option<PathBuf>,
    /// An existing database was read through at open (`PRAGMA quick_check`)
    /// because the run before did not close it normally.
    pub checked: bool,
    /// The last run closed the state normally (it was not new, and no
    /// crash, kill or power cut came between).
    pub closed_normally: bool,
    /// `lang_counts` is kept by triggers (see `count_languages`).
    counted: bool,
}

impl Drop for Catalog {
    fn drop(&mut self) {
        // Not after a journal-less import that did not finish: that state
        // is discarded at the next open anyway.
        if let (Some(marker), None) = (&self.closed_marker, &self.importing) {
            let _ = File::create(marker);
        }
    }
}

/// Starts writing the import's pages to disk without waiting for them
/// (`sync_file_range`, Linux): each chunk's pages go out while the next
/// chunk is parsed, instead of all 500 MB at the final `fsync`, which then
/// has little left to wait for (at 100,000 files it had kept both cores
/// idle for ~0.3 s before serving). Durability still comes from that
/// `fsync`; failing here only loses the head start.
fn start_writeback(path: &Path) {
    #[cfg(target_os = "linux")]
    if let Ok(file) = File::open(path) {
        use std::os::fd::AsRawFd;
        // SAFETY: a plain system call on a descriptor this function owns
        // for the call's duration; no memory is passed.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = path;
}

impl Catalog {
    /// Opens (creating if needed) the state in `dir`, taking its lock.
    pub fn open(dir: &Path) -> Result<Catalog, CatalogError> {
        let folder = |source| CatalogError::Folder {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(folder)?;
        // Held from here on, also while a damaged database is moved aside.
        let lock = take_lock(dir)?;
        let path = dir.join(DB_FILE);
        let marker = dir.join(IMPORT_MARKER);
        // A first import that never finished was written without a journal:
        // its database may be torn, and holds nothing the watch folder does
        // not (it is filled from the folder alone). Start it over.
        let import_restarted = marker.exists();
        if import_restarted {
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                match std::fs::remove_file(&file) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(folder(e)),
                    _ => {}
                }
            }
            std::fs::remove_file(&marker).map_err(folder)?;
        }
        // Closed normally last time: the file need not be read through to
        // be trusted. The marker goes now, so that a crash from here on
        // leaves none.
        let closed_marker = dir.join(CLOSED_MARKER);
        let verify = match std::fs::remove_file(&closed_marker) {
            Ok(()) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => return Err(folder(e)),
        };
        let (mut catalog, recovered_from) = match Catalog::open_db(&path, verify) {
            Ok(c) => (c, None),
            Err(CatalogError::Corrupt { .. }) | Err(CatalogError::Db { .. }) if path.exists() => {
                // Move the damaged file aside (never delete evidence) and
                // start over; the pipeline rebuilds from the watch folder.
                let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
                let aside = dir.join(format!("{DB_FILE}.damaged-{stamp}"));
                for suffix in ["", "-wal", "-shm"] {
                    let from = PathBuf::from(format!("{}{suffix}", path.display()));
                    if from.exists() {
                        let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                        std::fs::rename(&from, &to).map_err(folder)?;
                    }
                }
                (Catalog::open_db(&path, false)?, Some(aside))
            }
            Err(e) => return Err(e),
        };
        catalog._lock = Some(lock);
        catalog.recovered_from = recovered_from;
        catalog.import_restarted = import_restarted;
        catalog.closed_marker = Some(closed_marker);
        catalog.checked = verify && !catalog.created && catalog.recovered_from.is_none();
        catalog.closed_normally = !verify;
        if catalog.created {
            catalog.start_import(marker)?;
        }
        Ok(catalog)
    }

    /// A new database is filled from the whole watch folder (100,000 files
    /// make 500 MB): without a rollback journal and without syncs, its pages
    /// are written once instead of twice (WAL, then checkpoint). The marker
    /// file goes first, so that a crash meanwhile is seen at the next open.
    fn start_import(&mut self, marker: PathBuf) -> Result<(), CatalogError> {
        File::create(&marker)
            .and_then(|f| f.sync_all())
            .map_err(|source| CatalogError::Folder {
                path: marker.clone(),
                source,
            })?;
        // (The language counts are made at the end, in one walk: kept by
        // triggers, they cost ~4 µs an insert. So are the indexes that only
        // the feeds' queries use, one sorted pass each.)
        self.conn
            .execute_batch(&format!(
                "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; {DROP_LANGUAGE_COUNTS} {DROP_FEED_INDEXES}"
            ))
            .map_err(|e| self.db_err(e))?;
        self.counted = false;
        self.importing = Some(marker);
        Ok(())
    }

    /// Ends the journal-less fill of a new database: back to WAL, the file
    /// synced, the marker removed. With `complete` false (the import failed
    /// part-way, when a rollback without a journal is not reliable) the
    /// marker stays, so that the next start begins the state afresh.
    pub fn finish_import(&mut self, complete: bool) -> Result<(), CatalogError> {
        let Some(marker) = self.importing.take() else {
            return Ok(());
        };
        self.conn
            .execute_batch(&format!(
                "{INDEXES} PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;"
            ))
            .map_err(|e| self.db_err(e))?;
        if !complete {
            return Ok(());
        }
        self.count_languages()?;
        let folder = |source| CatalogError::Folder {
            path: marker.clone(),
            source,
        };
        File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(folder)?;
        std::fs::remove_file(&marker).map_err(folder)?;
        if let Some(dir) = marker.parent() {
            // The removal itself made durable; not all filesystems can.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }

    /// Opens an existing state read-only, without the lock (for `check`).
    /// `Ok(None)` when there is no state yet, or only a first import in
    /// progress or interrupted (written without a journal, not to be read).
    pub fn open_read_only(dir: &Path) -> Result<Option<Catalog>, CatalogError> {
        let path = dir.join(DB_FILE);
        if !path.exists() || dir.join(IMPORT_MARKER).exists() {
            return Ok(None);
        }
        let db = |source| CatalogError::Db {
            path: path.clone(),
            source,
        };
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let c = Catalog {
            conn,
            path: path.clone(),
            created: false,
            _lock: None,
            recovered_from: None,
            importing: None,
            import_restarted: false,
            closed_marker: None,
            checked: false,
            closed_normally: false,
            counted: false,
        };
        c.check_schema()?;
        Ok(Some(c))
    }

    /// An empty, private, in-memory state (for `check` before the first run).
    pub fn open_in_memory() -> Result<Catalog, CatalogError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| CatalogError::Db {
            path: path.clone(),
            source,
        })?;
        conn.execute_batch(&format!("{SCHEMA}{INDEXES}"))
            .map_err(|source| CatalogError::Db {
                path: path.clone(),
                source,
            })?;
        Ok(Catalog {
            conn,
            path,
            created: true,
            _lock: None,
            recovered_from: None,
            importing: None,
            import_restarted: false,
            closed_marker: None,
            checked: false,
            closed_normally: false,
            counted: false,
        })
    }

    /// Opens or creates the database file; with `verify`, an existing one
    /// is checked through (`PRAGMA quick_check`) first.
    fn open_db(path: &Path, verify: bool) -> Result<Catalog, CatalogError> {
        let existed = path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        let db = |source| CatalogError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if !existed {
            // Announcements are 2-8 KB: larger pages keep most rows off
            // overflow chains (set before the first table exists).
            conn.execute_batch("PRAGMA page_size = 16384;")
                .map_err(db)?;
        }
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA wal_autocheckpoint = 4096;
             PRAGMA cache_size = -16384;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA recursive_triggers = ON;",
        )
        .map_err(db)?;
        if verify && existed {
            let quick: String = conn
                .query_row("PRAGMA quick_check", [], |r| r.get(0))
                .map_err(db)?;
            if quick != "ok" {
                return Err(CatalogError::Corrupt {
                    path: path.to_path_buf(),
                    message: format!("integrity check failed: {quick}"),
                });
            }
        }
        drop_full_hash_index(&conn).map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        let mut c = Catalog {
            conn,
            path: path.to_path_buf(),
            created: !existed,
            _lock: None,
            recovered_from: None,
            importing: None,
            import_restarted: false,
            closed_marker: None,
            checked: false,
            closed_normally: false,
            counted: false,
        };
        match c.meta("schema_version")?.as_deref() {
            None => c.set_meta("schema_version", &SCHEMA_VERSION.to_string())?,
            Some("1") => c.migrate_1_2()?,
            Some(_) => c.check_schema()?,
        }
        c.conn.execute_batch(INDEXES).map_err(db)?;
        c.count_languages()?;
        Ok(c)
    }

    /// Counts the shown entries per language once (a walk of one index,
    /// 20-80 ms at 100,000 entries), after which triggers keep the counts
    /// as entries come, go and change: [`Catalog::languages`] then reads a
    /// few rows instead of walking the index at every publish. Made again
    /// at every open, so that nothing could have drifted.
    fn count_languages(&mut self) -> Result<(), CatalogError> {
        self.conn
            .execute_batch(&format!(
                "{LANGUAGE_COUNTS}
                 BEGIN;
                 DELETE FROM lang_counts;
                 INSERT INTO lang_counts (lang, n)
                   SELECT lang_primary, COUNT(*) FROM entries WHERE visible = 1
                   GROUP BY lang_primary;
                 COMMIT;"
            ))
            .map_err(|e| self.db_err(e))?;
        self.counted = true;
        Ok(())
    }

    /// Adds the columns of schema 2 to a schema 1 database, in one
    /// transaction; ids, dates and paths stay as they were.
    fn migrate_1_2(&mut self) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let db = |source| CatalogError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        tx.execute_batch(MIGRATE_1_2).map_err(db)?;
        let tagged: Vec<(String, String)> = {
            let mut stmt = tx
                .prepare("SELECT id, tags FROM entries WHERE tags <> '[]'")
                .map_err(db)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<Result<_, _>>().map_err(db)?
        };
        for (id, tags) in tagged {
            let tags: Vec<String> = serde_json::from_str(&tags).unwrap_or_default();
            insert_tags(&tx, &id, &tags).map_err(db)?;
        }
        exec(
            &tx,
            "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
            [SCHEMA_VERSION.to_string()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)
    }

    fn check_schema(&self) -> Result<(), CatalogError> {
        let v = self.meta("schema_version")?;
        if v.as_deref() != Some(&SCHEMA_VERSION.to_string()) {
            return Err(CatalogError::Corrupt {
                path: self.path.clone(),
                message: format!(
                    "unknown schema version {v:?} (this herald writes {SCHEMA_VERSION})"
                ),
            });
        }
        Ok(())
    }

    fn db_err(&self, source: rusqlite::Error) -> CatalogError {
        CatalogError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Whether this open created the database (the first run).
    pub fn is_new(&self) -> bool {
        self.created
    }

    pub fn meta(&self, key: &str) -> Result<Option<String>, CatalogError> {
        q(
            &self.conn,
            "SELECT value FROM meta WHERE key = ?1",
            [key],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| self.db_err(e))
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), CatalogError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
            .map_err(|e| self.db_err(e))
    }

    /// Every live path with its id, hash and file metadata.
    pub fn known(&self) -> Result<HashMap<String, Known>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, id, hash, size, mtime_ns FROM entries WHERE path IS NOT NULL",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, known_from(r)?)))
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// The live entry at `path`, if any.
    pub fn known_path(&self, path: &str) -> Result<Option<Known>, CatalogError> {
        q(
            &self.conn,
            "SELECT path, id, hash, size, mtime_ns FROM entries WHERE path = ?1",
            [path],
            known_from,
        )
        .optional()
        .map_err(|e| self.db_err(e))
    }

    /// Live paths under a folder (`""` = all), for events that name a folder.
    pub fn known_under(&self, folder: &str) -> Result<HashMap<String, Known>, CatalogError> {
        // A range on the indexed path column ("dir/" <= path < "dir0", '0'
        // being the character after '/'), not LIKE, which would scan the
        // whole table for every path a file event names.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, id, hash, size, mtime_ns FROM entries WHERE path >= ?1 AND path < ?2",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([format!("{folder}/"), format!("{folder}0")], |r| {
                Ok((r.get::<_, String>(0)?, known_from(r)?))
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    pub fn rejected(&self, path: &str) -> Result<Option<Rejected>, CatalogError> {
        q(
            &self.conn,
            "SELECT size, mtime_ns, error FROM rejects WHERE path = ?1",
            [path],
            |r| {
                Ok(Rejected {
                    size: r.get::<_, i64>(0)? as u64,
                    mtime_ns: r.get(1)?,
                    error: r.get(2)?,
                })
            },
        )
        .optional()
        .map_err(|e| self.db_err(e))
    }

    pub fn all_rejected(&self) -> Result<HashMap<String, Rejected>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT path, size, mtime_ns, error FROM rejects")
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    Rejected {
                        size: r.get::<_, i64>(1)? as u64,
                        mtime_ns: r.get(2)?,
                        error: r.get(3)?,
                    },
                ))
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// Whether an id was ever used (live or deleted): ids are never reused.
    pub fn id_exists(&self, id: &str) -> Result<bool, CatalogError> {
        self.exists("SELECT 1 FROM entries WHERE id = ?1", id)
    }

    pub fn slug_exists(&self, slug: &str) -> Result<bool, CatalogError> {
        self.exists("SELECT 1 FROM entries WHERE slug = ?1", slug)
    }

    fn exists(&self, sql: &str, value: &str) -> Result<bool, CatalogError> {
        q(&self.conn, sql, [value], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.db_err(e))
    }

    /// The stored entry with this id (live or deleted).
    pub fn entry(&self, id: &str) -> Result<Option<Entry>, CatalogError> {
        q(
            &self.conn,
            &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE id = ?1"),
            [id],
            entry_from,
        )
        .optional()
        .map_err(|e| self.db_err(e))
    }

    /// A deleted entry whose file had exactly these bytes (newest first):
    /// a file moved out and back in, or renamed across two batches.
    pub fn deleted_by_hash(&self, hash: &str) -> Result<Option<Entry>, CatalogError> {
        self.deleted_where("entries_by_hash", "hash = ?1", hash)
    }

    /// A deleted entry that lived at this path: a file deleted and written
    /// again (some editors save that way) keeps its id.
    pub fn deleted_by_last_path(&self, path: &str) -> Result<Option<Entry>, CatalogError> {
        self.deleted_where("entries_by_last_path", "last_path = ?1", path)
    }

    /// The newest deleted entry meeting `condition`, looked up through
    /// `index` (a partial index of deleted entries). Left to itself, the
    /// planner walks every deleted entry through the index of paths
    /// (`path IS NULL`) instead.
    fn deleted_where(
        &self,
        index: &str,
        condition: &str,
        value: &str,
    ) -> Result<Option<Entry>, CatalogError> {
        q(
            &self.conn,
            &format!(
                "SELECT {ENTRY_COLUMNS} FROM entries INDEXED BY {index}
                   WHERE path IS NULL AND {condition}
                   ORDER BY deleted_at DESC LIMIT 1"
            ),
            [value],
            entry_from,
        )
        .optional()
        .map_err(|e| self.db_err(e))
    }

    /// [`Filter::sql`], the form chosen by how many entries carry the tag.
    fn filter_sql(
        &self,
        filter: Filter,
        first: usize,
    ) -> Result<(String, Vec<String>), CatalogError> {
        let few = match filter.tag {
            Some(slug) => self.tagged_at_most(slug, FEW_TAGGED)?,
            None => false,
        };
        Ok(filter.sql(first, few))
    }

    /// Whether at most `n` entries (shown or not) carry a tag (reads at
    /// most `n + 1` rows of its index).
    fn tagged_at_most(&self, slug: &str, n: i64) -> Result<bool, CatalogError> {
        q(
            &self.conn,
            "SELECT COUNT(*) FROM (SELECT 1 FROM entry_tags WHERE slug = ?1 LIMIT ?2)",
            rusqlite::params![slug, n + 1],
            |r| r.get::<_, i64>(0),
        )
        .map(|count| count <= n)
        .map_err(|e| self.db_err(e))
    }

    /// The newest shown entries (by published, then id) of a filter.
    pub fn latest(&self, filter: Filter, limit: usize) -> Result<Vec<Entry>, CatalogError> {
        self.latest_from(filter, 0, limit)
    }

    /// Like [`Catalog::latest`], skipping the first `offset`.
    pub fn latest_from(
        &self,
        filter: Filter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Entry>, CatalogError> {
        let (cond, params) = self.filter_sql(filter, 3)?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE visible = 1{cond}
             ORDER BY sort_key DESC, id ASC LIMIT ?1 OFFSET ?2"
        );
        let mut all: Vec<rusqlite::types::Value> = vec![
            (i64::try_from(limit).unwrap_or(i64::MAX)).into(),
            (i64::try_from(offset).unwrap_or(i64::MAX)).into(),
        ];
        all.extend(params.into_iter().map(rusqlite::types::Value::from));
        self.entries(&sql, all)
    }

    /// Shown entries of a filter published in `[from_ms, to_ms)` that sort
    /// after `after` (newest first), i.e. older than the subscription
    /// document's last entry, oldest first, `limit` from `offset`: a page
    /// of one month's archive.
    pub fn archived(
        &self,
        filter: Filter,
        from_ms: i64,
        to_ms: i64,
        after: &Position,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Entry>, CatalogError> {
        let (cond, params) = self.filter_sql(filter, 7)?;
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE visible = 1{cond}
             AND sort_key >= ?1 AND sort_key < ?2
             AND (sort_key < ?3 OR (sort_key = ?3 AND id > ?4))
             ORDER BY sort_key ASC, id DESC LIMIT ?5 OFFSET ?6"
        );
        let mut all: Vec<rusqlite::types::Value> = vec![
            from_ms.into(),
            to_ms.into(),
            after.sort_key.into(),
            after.id.clone().into(),
            (i64::try_from(limit).unwrap_or(i64::MAX)).into(),
            (i64::try_from(offset).unwrap_or(i64::MAX)).into(),
        ];
        all.extend(params.into_iter().map(rusqlite::types::Value::from));
        self.entries(&sql, all)
    }

    /// How many entries [`Catalog::archived`] has in `[from_ms, to_ms)`.
    pub fn count_archived(
        &self,
        filter: Filter,
        from_ms: i64,
        to_ms: i64,
        after: &Position,
    ) -> Result<usize, CatalogError> {
        let (cond, params) = self.filter_sql(filter, 5)?;
        let sql = format!(
            "SELECT COUNT(*) FROM entries WHERE visible = 1{cond}
             AND sort_key >= ?1 AND sort_key < ?2
             AND (sort_key < ?3 OR (sort_key = ?3 AND id > ?4))"
        );
        let mut all: Vec<rusqlite::types::Value> = vec![
            from_ms.into(),
            to_ms.into(),
            after.sort_key.into(),
            after.id.clone().into(),
        ];
        all.extend(params.into_iter().map(rusqlite::types::Value::from));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db_err(e))?;
        stmt.query_row(rusqlite::params_from_iter(all), |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(|e| self.db_err(e))
    }

    /// The position of the `n`-th newest shown entry (1-based) of a filter.
    pub fn nth(&self, filter: Filter, n: usize) -> Result<Option<Position>, CatalogError> {
        if n == 0 {
            return Ok(None);
        }
        let (cond, params) = self.filter_sql(filter, 2)?;
        let sql = format!(
            "SELECT sort_key, id FROM entries WHERE visible = 1{cond}
             ORDER BY sort_key DESC, id ASC LIMIT 1 OFFSET ?1"
        );
        let mut all: Vec<rusqlite::types::Value> = vec![(n as i64 - 1).into()];
        all.extend(params.into_iter().map(rusqlite::types::Value::from));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db_err(e))?;
        stmt.query_row(rusqlite::params_from_iter(all), |r| {
            Ok(Position {
                sort_key: r.get(0)?,
                id: r.get(1)?,
            })
        })
        .optional()
        .map_err(|e| self.db_err(e))
    }

    /// The newest `sort_key` of a shown entry of a filter below `before_ms`.
    pub fn newest_before(
        &self,
        filter: Filter,
        before_ms: i64,
    ) -> Result<Option<i64>, CatalogError> {
        self.key_query(filter, "sort_key < ?1 ORDER BY sort_key DESC", before_ms)
    }

    /// The oldest `sort_key` of a shown entry of a filter from `from_ms` on.
    pub fn oldest_from(&self, filter: Filter, from_ms: i64) -> Result<Option<i64>, CatalogError> {
        self.key_query(filter, "sort_key >= ?1 ORDER BY sort_key ASC", from_ms)
    }

    fn key_query(
        &self,
        filter: Filter,
        clause: &str,
        ms: i64,
    ) -> Result<Option<i64>, CatalogError> {
        let (cond, params) = self.filter_sql(filter, 2)?;
        let sql =
            format!("SELECT sort_key FROM entries WHERE visible = 1{cond} AND {clause} LIMIT 1");
        let mut all: Vec<rusqlite::types::Value> = vec![ms.into()];
        all.extend(params.into_iter().map(rusqlite::types::Value::from));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db_err(e))?;
        stmt.query_row(rusqlite::params_from_iter(all), |r| r.get(0))
            .optional()
            .map_err(|e| self.db_err(e))
    }

    fn entries(
        &self,
        sql: &str,
        params: Vec<rusqlite::types::Value>,
    ) -> Result<Vec<Entry>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), entry_from)
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db_err(e))
    }

    /// Entries of a filter that stopped being shown at or after `since`.
    pub fn tombstones(
        &self,
        filter: Filter,
        since: DateTime<FixedOffset>,
    ) -> Result<Vec<Tombstone>, CatalogError> {
        let (cond, params) = self.filter_sql(filter, 2)?;
        let sql = format!(
            "SELECT id, gone_at, gone_comment, lang FROM entries
             WHERE visible = 0 AND gone_at_ms >= ?1{cond}
             ORDER BY gone_at_ms DESC, id ASC"
        );
        let mut all: Vec<rusqlite::types::Value> = vec![since.timestamp_millis().into()];
        all.extend(params.into_iter().map(rusqlite::types::Value::from));
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(all), |r| {
                let when: String = r.get(1)?;
                let lang: String = r.get(3)?;
                Ok((r.get::<_, String>(0)?, when, r.get(2)?, lang))
            })
            .map_err(|e| self.db_err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, when, comment, lang) = row.map_err(|e| self.db_err(e))?;
            if let (Ok(when), Some(lang)) =
                (DateTime::parse_from_rfc3339(&when), LangTag::parse(&lang))
            {
                out.push(Tombstone {
                    id,
                    when,
                    comment,
                    lang,
                });
            }
        }
        Ok(out)
    }

    /// (primary language, tag slug or `None`) of the entries that stopped
    /// being shown at or after `since`: the scopes whose Atom feeds carry
    /// tombstones.
    pub fn tombstone_scopes(
        &self,
        since: DateTime<FixedOffset>,
    ) -> Result<Vec<(String, Option<String>)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT e.lang_primary, t.slug FROM entries e
                 LEFT JOIN entry_tags t ON t.id = e.id
                 WHERE e.visible = 0 AND e.gone_at_ms >= ?1",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([since.timestamp_millis()], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// Fills in each entry's translations (shown entries with the same key).
    pub fn fill_translations(&self, entries: &mut [Entry]) -> Result<(), CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, lang, slug, title FROM entries
                 WHERE tkey = ?1 AND visible = 1 ORDER BY lang, id",
            )
            .map_err(|e| self.db_err(e))?;
        for e in entries.iter_mut() {
            let Some(key) = &e.translation_key else {
                continue;
            };
            let rows = stmt
                .query_map([key], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                })
                .map_err(|e| self.db_err(e))?;
            e.translations.clear();
            for row in rows {
                let (id, lang, slug, title) = row.map_err(|e| self.db_err(e))?;
                if id == e.id {
                    continue;
                }
                if let Some(lang) = LangTag::parse(&lang) {
                    e.translations.push(Translation { lang, slug, title });
                }
            }
        }
        Ok(())
    }

    /// The shown entry with this slug.
    pub fn shown_by_slug(&self, slug: &str) -> Result<Option<Entry>, CatalogError> {
        q(
            &self.conn,
            &format!("SELECT {ENTRY_COLUMNS} FROM entries WHERE slug = ?1 AND visible = 1"),
            [slug],
            entry_from,
        )
        .optional()
        .map_err(|e| self.db_err(e))
    }

    /// Primary language subtags with shown entries, and how many each.
    pub fn languages(&self) -> Result<Vec<(String, usize)>, CatalogError> {
        if !self.counted {
            return self.languages_walked();
        }
        self.language_rows("SELECT lang, n FROM lang_counts WHERE n > 0 ORDER BY lang")
    }

    /// [`Catalog::languages`] by walking the index (read-only connections,
    /// which keep no counts, and during an import).
    fn languages_walked(&self) -> Result<Vec<(String, usize)>, CatalogError> {
        self.language_rows(
            "SELECT lang_primary, COUNT(*) FROM entries WHERE visible = 1
             GROUP BY lang_primary ORDER BY lang_primary",
        )
    }

    /// (language, count) rows of a query.
    fn language_rows(&self, sql: &str) -> Result<Vec<(String, usize)>, CatalogError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// Tags of shown entries: (slug, first name, primary language, count),
    /// by slug then language; `lang` is `None` in the rows that count all
    /// languages together.
    pub fn tags(&self) -> Result<Vec<TagCount>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                // Shown entries from the (covering) language index, then
                // their tags: SQLite's own order looked every tagged entry
                // up by id and read its row, past the content's overflow
                // pages (0.42 against 0.16 s at 100,000 announcements).
                "SELECT t.slug, MIN(t.name), e.lang_primary, COUNT(*)
                 FROM entries e INDEXED BY entries_shown_by_lang_date
                 CROSS JOIN entry_tags t ON t.id = e.id
                 WHERE e.visible = 1
                 GROUP BY t.slug, e.lang_primary ORDER BY t.slug, e.lang_primary",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TagCount {
                    slug: r.get(0)?,
                    name: r.get(1)?,
                    lang: r.get(2)?,
                    count: r.get::<_, i64>(3)? as usize,
                })
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// How a tag slug is written (its first spelling, alphabetically).
    pub fn tag_name(&self, slug: &str) -> Result<Option<String>, CatalogError> {
        q(
            &self.conn,
            "SELECT MIN(name) FROM entry_tags WHERE slug = ?1",
            [slug],
            |r| r.get(0),
        )
        .map_err(|e| self.db_err(e))
    }

    /// Makes shown what reached its `publish_at` and hides what reached its
    /// `expires`, as of `now`; says what changed and when to look again.
    pub fn refresh(&mut self, now: DateTime<FixedOffset>) -> Result<Refreshed, CatalogError> {
        let path = self.path.clone();
        let db = |source| CatalogError::Db {
            path: path.clone(),
            source,
        };
        let now_ms = now.timestamp_millis();
        let tx = self.conn.transaction().map_err(db)?;
        let mut changed = Vec::new();
        {
            let mut appear = tx
                .prepare_cached(
                    "SELECT id FROM entries WHERE publish_at_ms <= ?1 AND visible = 0
                     AND path IS NOT NULL AND withdrawn = 0
                     AND (expires_ms IS NULL OR expires_ms > ?1)",
                )
                .map_err(db)?;
            let ids: Vec<String> = appear
                .query_map([now_ms], |r| r.get(0))
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            for id in ids {
                exec(
                    &tx,
                    "UPDATE entries SET visible = 1, gone_at = NULL, gone_at_ms = NULL,
                     gone_comment = NULL WHERE id = ?1",
                    [&id],
                )
                .map_err(db)?;
                changed.push(id);
            }
            let mut expire = tx
                .prepare_cached(
                    "SELECT id, expires FROM entries WHERE expires_ms <= ?1 AND visible = 1",
                )
                .map_err(db)?;
            let rows: Vec<(String, String)> = expire
                .query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            for (id, expires) in rows {
                let at = DateTime::parse_from_rfc3339(&expires).unwrap_or(now);
                exec(
                    &tx,
                    "UPDATE entries SET visible = 0, gone_at = ?2, gone_at_ms = ?3 WHERE id = ?1",
                    params![id, at.to_rfc3339(), at.timestamp_millis()],
                )
                .map_err(db)?;
                changed.push(id);
            }
        }
        let next: Option<i64> = q(
            &tx,
            "SELECT MIN(t) FROM (
                   SELECT MIN(publish_at_ms) AS t FROM entries WHERE publish_at_ms > ?1
                     AND visible = 0 AND path IS NOT NULL AND withdrawn = 0
                   UNION ALL
                   SELECT MIN(expires_ms) FROM entries WHERE expires_ms > ?1 AND path IS NOT NULL
                     AND withdrawn = 0)",
            [now_ms],
            |r| r.get(0),
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(Refreshed {
            changed,
            next: next.and_then(|ms| {
                chrono::TimeZone::timestamp_millis_opt(&chrono::Utc, ms)
                    .single()
                    .map(|d| d.fixed_offset())
            }),
        })
    }

    /// (primary language, slug) of the shown entries (their pages) whose
    /// slugs sort after `after`, at most `limit`, in slug order.
    pub fn shown_pages_after(
        &self,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, String)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT lang_primary, slug FROM entries WHERE visible = 1 AND slug > ?1
                 ORDER BY slug LIMIT ?2",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map(rusqlite::params![after, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// Applies changes in one transaction. `now` decides whether an
    /// upserted entry is shown (see [`Entry::shown_at`]) and dates the
    /// tombstones of entries that stop being shown.
    pub fn apply(
        &mut self,
        changes: &[Change],
        now: DateTime<FixedOffset>,
    ) -> Result<(), CatalogError> {
        // Changes outside a first import go through the journal.
        self.finish_import(true)?;
        self.apply_changes(changes, now, false)
    }

    /// [`Catalog::apply`] for a first import (the catalog had no entries and
    /// no rejects when the sync began, see [`Catalog::is_empty`]): an
    /// upserted entry frees no path, replaces no entry, tags or reject, so
    /// it is one insert and its tags instead of six statements.
    pub fn import(
        &mut self,
        changes: &[Change],
        now: DateTime<FixedOffset>,
    ) -> Result<(), CatalogError> {
        self.apply_changes(changes, now, true)?;
        if self.importing.is_some() {
            start_writeback(&self.path);
        }
        Ok(())
    }

    /// Whether the catalog holds no entries (not even deleted ones) and no
    /// rejects.
    pub fn is_empty(&self) -> Result<bool, CatalogError> {
        q(
            &self.conn,
            "SELECT NOT EXISTS (SELECT 1 FROM entries) AND NOT EXISTS (SELECT 1 FROM rejects)",
            [],
            |r| r.get(0),
        )
        .map_err(|e| self.db_err(e))
    }

    fn apply_changes(
        &mut self,
        changes: &[Change],
        now: DateTime<FixedOffset>,
        import: bool,
    ) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let db = |source| CatalogError::Db {
            path: path.clone(),
            source,
        };
        let now_s = now.to_rfc3339();
        let now_ms = now.timestamp_millis();
        let insert = format!(
            "INSERT OR REPLACE INTO entries ({ENTRY_COLUMNS}, sort_key, lang_primary,
               deleted_at, publish_at_ms, expires_ms, visible, gone_at, gone_at_ms,
               gone_comment)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                     ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, NULL, ?26, ?27, ?28,
                     ?29, ?30, ?31)"
        );
        let tx = self.conn.transaction().map_err(db)?;
        for change in changes {
            match change {
                Change::Upsert(e) if import => {
                    let shown = e.shown_at(now);
                    insert_entry(&tx, &insert, e, shown, (None, None, None)).map_err(db)?;
                    insert_tags(&tx, &e.id, &e.tags).map_err(db)?;
                }
                Change::Upsert(e) => {
                    // A path belongs to one live entry: free it first.
                    exec(
                        &tx,
                        "UPDATE entries SET last_path = path, path = NULL, deleted_at = ?2,
                           gone_at = CASE WHEN visible = 1 THEN ?2 ELSE gone_at END,
                           gone_at_ms = CASE WHEN visible = 1 THEN ?3 ELSE gone_at_ms END,
                           visible = 0
                         WHERE path = ?1 AND id <> ?4",
                        params![e.path, now_s, now_ms, e.id],
                    )
                    .map_err(db)?;
                    let before: Option<Shown> = q(&tx,
                            "SELECT visible, gone_at, gone_at_ms, gone_comment FROM entries WHERE id = ?1",
                            [&e.id],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                        )
                        .optional()
                        .map_err(db)?;
                    let shown = e.shown_at(now);
                    let was_shown = before.as_ref().is_some_and(|b| b.0 == 1);
                    let (gone_at, gone_ms, gone_comment) = if shown {
                        (None, None, None)
                    } else if was_shown {
                        (
                            Some(now_s.clone()),
                            Some(now_ms),
                            e.withdrawn_comment.clone(),
                        )
                    } else {
                        before.map(|b| (b.1, b.2, b.3)).unwrap_or_default()
                    };
                    insert_entry(&tx, &insert, e, shown, (gone_at, gone_ms, gone_comment))
                        .map_err(db)?;
                    exec(&tx, "DELETE FROM entry_tags WHERE id = ?1", [&e.id]).map_err(db)?;
                    insert_tags(&tx, &e.id, &e.tags).map_err(db)?;
                    exec(&tx, "DELETE FROM rejects WHERE path = ?1", [&e.path]).map_err(db)?;
                }
                Change::Touch { id, size, mtime_ns } => {
                    exec(
                        &tx,
                        "UPDATE entries SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
                        params![id, *size as i64, mtime_ns],
                    )
                    .map_err(db)?;
                }
                Change::Delete { id, at } => {
                    exec(
                        &tx,
                        "UPDATE entries SET last_path = path, path = NULL, deleted_at = ?2,
                           gone_at = CASE WHEN visible = 1 THEN ?2 ELSE gone_at END,
                           gone_at_ms = CASE WHEN visible = 1 THEN ?3 ELSE gone_at_ms END,
                           visible = 0
                         WHERE id = ?1",
                        params![id, at.to_rfc3339(), at.timestamp_millis()],
                    )
                    .map_err(db)?;
                }
                Change::Reject {
                    path,
                    size,
                    mtime_ns,
                    error,
                } => {
                    exec(&tx,
                        "INSERT OR REPLACE INTO rejects (path, size, mtime_ns, error) VALUES (?1, ?2, ?3, ?4)",
                        params![path, *size as i64, mtime_ns, error],
                    )
                    .map_err(db)?;
                }
                Change::ClearReject { path } => {
                    exec(&tx, "DELETE FROM rejects WHERE path = ?1", [path]).map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)
    }
}

/// `query_row` through the statement cache: the same SQL is parsed once,
/// not once per file (most of the catalog's cost on a large first run).
fn q<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    conn.prepare_cached(sql)?.query_row(params, f)
}

/// `execute` through the statement cache.
fn exec<P: rusqlite::Params>(conn: &Connection, sql: &str, params: P) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// An entry's visibility before a change: shown, gone_at, gone_at_ms,
/// gone_comment.
type Shown = (i64, Option<String>, Option<i64>, Option<String>);

/// Writes one entry's row (replacing the row with its id).
fn insert_entry(
    tx: &rusqlite::Transaction,
    sql: &str,
    e: &Entry,
    shown: bool,
    gone: (Option<String>, Option<i64>, Option<String>),
) -> rusqlite::Result<usize> {
    exec(
        tx,
        sql,
        params![
            e.id,
            e.path,
            e.slug,
            e.hash,
            e.size as i64,
            e.mtime_ns,
            e.first_seen.to_rfc3339(),
            e.published.to_rfc3339(),
            e.updated.to_rfc3339(),
            e.lang.as_str(),
            e.lang_source.as_str(),
            e.encoding,
            e.title,
            e.summary,
            e.content,
            e.author,
            serde_json::to_string(&e.tags).unwrap_or_else(|_| "[]".into()),
            serde_json::to_string(&e.warnings).unwrap_or_else(|_| "[]".into()),
            e.translation_key,
            e.publish_at.map(|d| d.to_rfc3339()),
            e.expires.map(|d| d.to_rfc3339()),
            e.withdrawn as i64,
            e.withdrawn_comment,
            e.published.timestamp_millis(),
            e.lang.primary(),
            e.publish_at.map(|d| d.timestamp_millis()),
            e.expires.map(|d| d.timestamp_millis()),
            shown as i64,
            gone.0,
            gone.1,
            gone.2,
        ],
    )
}

/// Indexes an entry's tags by slug (for the tag feeds).
fn insert_tags(tx: &rusqlite::Transaction, id: &str, tags: &[String]) -> rusqlite::Result<()> {
    let mut stmt =
        tx.prepare_cached("INSERT OR IGNORE INTO entry_tags (id, slug, name) VALUES (?1, ?2, ?3)")?;
    for tag in tags {
        if let Some(t) = crate::render::Tag::new(tag) {
            stmt.execute(params![id, t.slug, t.name])?;
        }
    }
    Ok(())
}

/// States written before 2026-12 indexed the hash of every entry; [`SCHEMA`]
/// then makes the index of deleted entries' hashes in its place (its name
/// kept, so that a query naming it works on either while `check` reads an
/// older state).
fn drop_full_hash_index(conn: &Connection) -> rusqlite::Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'entries_by_hash'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if sql.is_some_and(|sql| !sql.contains("WHERE")) {
        conn.execute_batch("DROP INDEX entries_by_hash")?;
    }
    Ok(())
}

/// Takes the state's lock file, or says who holds it.
fn take_lock(dir: &Path) -> Result<File, CatalogError> {
    let folder = |source| CatalogError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(folder)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(CatalogError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(source)) => Err(folder(source)),
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    id          TEXT PRIMARY KEY,
    path        TEXT UNIQUE,
    slug        TEXT NOT NULL UNIQUE,
    hash        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    first_seen  TEXT NOT NULL,
    published   TEXT NOT NULL,
    updated     TEXT NOT NULL,
    lang        TEXT NOT NULL,
    lang_source TEXT NOT NULL,
    encoding    TEXT NOT NULL,
    title       TEXT NOT NULL,
    summary     TEXT NOT NULL,
    content     TEXT NOT NULL,
    author      TEXT,
    tags        TEXT NOT NULL,
    warnings    TEXT NOT NULL,
    sort_key    INTEGER NOT NULL,
    lang_primary TEXT NOT NULL,
    deleted_at  TEXT,
    last_path   TEXT,
    tkey        TEXT,
    publish_at  TEXT,
    expires     TEXT,
    withdrawn   INTEGER NOT NULL DEFAULT 0,
    withdrawn_comment TEXT,
    publish_at_ms INTEGER,
    expires_ms  INTEGER,
    -- shown in feeds and pages now (file there, not withdrawn, in its window)
    visible     INTEGER NOT NULL DEFAULT 0,
    -- when it stopped being shown, for tombstones
    gone_at     TEXT,
    gone_at_ms  INTEGER,
    gone_comment TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_last_path ON entries (last_path) WHERE path IS NULL;
-- Hashes are looked up among deleted entries only (a file moved back in):
-- live rows stay out of this index (random 64-character keys: about a
-- fifth of an insert's CPU when every row was in it).
CREATE INDEX IF NOT EXISTS entries_by_hash ON entries (hash) WHERE path IS NULL;
CREATE TABLE IF NOT EXISTS entry_tags (
    id   TEXT NOT NULL,
    slug TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (id, slug)
);
CREATE TABLE IF NOT EXISTS rejects (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    error    TEXT NOT NULL
);
";

/// Shown entries per language, kept by triggers (see
/// `Catalog::count_languages`). `INSERT OR REPLACE` deletes the row it
/// replaces, which fires the delete trigger only with
/// `PRAGMA recursive_triggers = ON` (set at open).
const LANGUAGE_COUNTS: &str = "
CREATE TABLE IF NOT EXISTS lang_counts (lang TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS lang_counts_insert AFTER INSERT ON entries WHEN NEW.visible = 1
BEGIN
  INSERT INTO lang_counts (lang, n) VALUES (NEW.lang_primary, 1)
    ON CONFLICT (lang) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS lang_counts_delete AFTER DELETE ON entries WHEN OLD.visible = 1
BEGIN
  UPDATE lang_counts SET n = n - 1 WHERE lang = OLD.lang_primary;
END;
CREATE TRIGGER IF NOT EXISTS lang_counts_update AFTER UPDATE OF visible, lang_primary ON entries
  WHEN OLD.visible = 1 OR NEW.visible = 1
BEGIN
  UPDATE lang_counts SET n = n - 1 WHERE OLD.visible = 1 AND lang = OLD.lang_primary;
  INSERT INTO lang_counts (lang, n) SELECT NEW.lang_primary, 1 WHERE NEW.visible = 1
    ON CONFLICT (lang) DO UPDATE SET n = n + 1;
END;
";

/// The triggers of [`LANGUAGE_COUNTS`], dropped for an import.
const DROP_LANGUAGE_COUNTS: &str = "
DROP TRIGGER IF EXISTS lang_counts_insert;
DROP TRIGGER IF EXISTS lang_counts_delete;
DROP TRIGGER IF EXISTS lang_counts_update;
";

/// Indexes on the columns of schema 2 (created after a migration added them),
/// made at every open; a first import builds some of them at its end
/// ([`DROP_FEED_INDEXES`]).
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS entry_tags_by_slug ON entry_tags (slug, id);
CREATE INDEX IF NOT EXISTS entry_tags_names ON entry_tags (slug, name);
CREATE INDEX IF NOT EXISTS entries_shown_by_date ON entries (sort_key DESC, id) WHERE visible = 1;
CREATE INDEX IF NOT EXISTS entries_shown_by_lang_date ON entries (lang_primary, sort_key DESC, id) WHERE visible = 1;
CREATE INDEX IF NOT EXISTS entries_by_tkey ON entries (tkey) WHERE tkey IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_gone ON entries (gone_at_ms) WHERE gone_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_scheduled ON entries (publish_at_ms) WHERE publish_at_ms IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_expiring ON entries (expires_ms) WHERE expires_ms IS NOT NULL;
";

/// The indexes of [`INDEXES`] that a first import's inserts would have to
/// keep (the others are on columns it leaves empty); it builds them at its
/// end instead.
const DROP_FEED_INDEXES: &str = "
DROP INDEX IF EXISTS entry_tags_by_slug;
DROP INDEX IF EXISTS entry_tags_names;
DROP INDEX IF EXISTS entries_shown_by_date;
DROP INDEX IF EXISTS entries_shown_by_lang_date;
";

/// Schema 1 -> 2: scheduling, withdrawals, translations, tags table.
const MIGRATE_1_2: &str = "
ALTER TABLE entries ADD COLUMN tkey TEXT;
ALTER TABLE entries ADD COLUMN publish_at TEXT;
ALTER TABLE entries ADD COLUMN expires TEXT;
ALTER TABLE entries ADD COLUMN withdrawn INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN withdrawn_comment TEXT;
ALTER TABLE entries ADD COLUMN publish_at_ms INTEGER;
ALTER TABLE entries ADD COLUMN expires_ms INTEGER;
ALTER TABLE entries ADD COLUMN visible INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN gone_at TEXT;
ALTER TABLE entries ADD COLUMN gone_at_ms INTEGER;
ALTER TABLE entries ADD COLUMN gone_comment TEXT;
UPDATE entries SET visible = (path IS NOT NULL);
DROP INDEX IF EXISTS entries_by_date;
DROP INDEX IF EXISTS entries_by_lang_date;
";

const ENTRY_COLUMNS: &str =
    "id, path, slug, hash, size, mtime_ns, first_seen, published, updated, lang, \
     lang_source, encoding, title, summary, content, author, tags, warnings, \
     tkey, publish_at, expires, withdrawn, withdrawn_comment";

fn known_from(r: &Row) -> rusqlite::Result<Known> {
    Ok(Known {
        id: r.get(1)?,
        hash: r.get(2)?,
        size: r.get::<_, i64>(3)? as u64,
        mtime_ns: r.get(4)?,
    })
}

fn entry_from(r: &Row) -> rusqlite::Result<Entry> {
    let date = |i: usize| -> rusqlite::Result<DateTime<FixedOffset>> {
        let s: String = r.get(i)?;
        DateTime::parse_from_rfc3339(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let opt_date = |i: usize| -> rusqlite::Result<Option<DateTime<FixedOffset>>> {
        match r.get::<_, Option<String>>(i)? {
            None => Ok(None),
            Some(_) => date(i).map(Some),
        }
    };
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            what.to_string().into(),
        )
    };
    let lang: String = r.get(9)?;
    let source: String = r.get(10)?;
    let tags: String = r.get(16)?;
    let warnings: String = r.get(17)?;
    Ok(Entry {
        id: r.get(0)?,
        path: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        slug: r.get(2)?,
        hash: r.get(3)?,
        size: r.get::<_, i64>(4)? as u64,
        mtime_ns: r.get(5)?,
        first_seen: date(6)?,
        published: date(7)?,
        updated: date(8)?,
        lang: LangTag::parse(&lang).ok_or_else(|| bad(9, "invalid language tag"))?,
        lang_source: LangSource::parse(&source)
            .ok_or_else(|| bad(10, "invalid language source"))?,
        encoding: r.get(11)?,
        title: r.get(12)?,
        summary: r.get(13)?,
        content: r.get(14)?,
        author: r.get(15)?,
        tags: serde_json::from_str(&tags).map_err(|_| bad(16, "invalid tags"))?,
        warnings: serde_json::from_str(&warnings).map_err(|_| bad(17, "invalid warnings"))?,
        translation_key: r.get(18)?,
        publish_at: opt_date(19)?,
        expires: opt_date(20)?,
        withdrawn: r.get::<_, i64>(21)? != 0,
        withdrawn_comment: r.get(22)?,
        translations: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, path: &str, published: &str) -> Entry {
        let d = DateTime::parse_from_rfc3339(published).unwrap();
        Entry {
            id: id.into(),
            path: path.into(),
            slug: id.into(),
            hash: format!("h-{id}"),
            size: 1,
            mtime_ns: 1,
            first_seen: d,
            published: d,
            updated: d,
            lang: LangTag::parse("pl").unwrap(),
            lang_source: LangSource::Detected,
            encoding: "UTF-8".into(),
            title: "t".into(),
            summary: "s".into(),
            content: "<p>c</p>".into(),
            author: None,
            tags: vec!["a".into()],
            warnings: vec![],
            translation_key: None,
            publish_at: None,
            expires: None,
            withdrawn: false,
            withdrawn_comment: None,
            translations: vec![],
        }
    }

    fn at(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn round_trip_order_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        assert!(c.is_new());
        let a = entry("a", "a.txt", "2025-01-01T00:00:00Z");
        let b = entry("b", "b.txt", "2025-02-01T00:00:00+01:00");
        let now = at("2026-01-01T00:00:00Z");
        c.apply(
            &[
                Change::Upsert(Box::new(a.clone())),
                Change::Upsert(Box::new(b.clone())),
            ],
            now,
        )
        .unwrap();
        let all = Filter::default();
        let latest = c.latest(all, 10).unwrap();
        assert_eq!(latest, vec![b.clone(), a.clone()]);
        let pl = Filter {
            lang: Some("pl"),
            tag: None,
        };
        assert_eq!(c.latest(pl, 1).unwrap(), vec![b.clone()]);
        let tag_a = Filter {
            lang: None,
            tag: Some("a"),
        };
        assert_eq!(c.latest(tag_a, 5).unwrap().len(), 2);
        assert_eq!(c.languages().unwrap(), vec![("pl".to_string(), 2)]);
        c.apply(
            &[Change::Delete {
                id: "a".into(),
                at: now,
            }],
            now,
        )
        .unwrap();
        assert_eq!(c.latest(all, 10).unwrap(), vec![b]);
        let t = c.tombstones(all, at("2025-12-01T00:00:00Z")).unwrap();
        assert_eq!(t.len(), 1, "a deleted entry is a tombstone");
        assert_eq!((t[0].id.as_str(), t[0].when), ("a", now));
        assert!(c.id_exists("a").unwrap(), "deleted ids stay reserved");
        assert!(c.known_path("a.txt").unwrap().is_none());
        drop(c);
        let c = Catalog::open(dir.path()).unwrap();
        assert!(!c.is_new());
    }

    #[test]
    fn deleted_entries_are_found_by_hash_through_a_partial_index() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-01-01T00:00:00Z");
        {
            let mut c = Catalog::open(dir.path()).unwrap();
            let a = entry("a", "a.txt", "2025-01-01T00:00:00Z");
            let b = entry("b", "b.txt", "2025-02-01T00:00:00Z");
            let delete_a = Change::Delete {
                id: "a".into(),
                at: now,
            };
            let changes = [
                Change::Upsert(Box::new(a)),
                Change::Upsert(Box::new(b)),
                delete_a,
            ];
            c.apply(&changes, now).unwrap();
            // A state from before the partial index had one of every hash.
            c.conn
                .execute_batch(
                    "DROP INDEX entries_by_hash; CREATE INDEX entries_by_hash ON entries (hash)",
                )
                .unwrap();
        }
        // `check` reads such a state as it is...
        let old = Catalog::open_read_only(dir.path()).unwrap().unwrap();
        let found = old.deleted_by_hash("h-a").unwrap().map(|e| e.id);
        assert_eq!(found.as_deref(), Some("a"));
        drop(old);
        // ... and the daemon replaces the index.
        let c = Catalog::open(dir.path()).unwrap();
        let sql: String = c
            .conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'entries_by_hash'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.ends_with("WHERE path IS NULL"), "{sql}");
        let found = c.deleted_by_hash("h-a").unwrap().map(|e| e.id);
        assert_eq!(found.as_deref(), Some("a"));
        assert_eq!(c.deleted_by_hash("h-b").unwrap(), None, "b is live");
        // (Both lookups name their index: a query fails if it cannot use it.)
        let last = c.deleted_by_last_path("a.txt").unwrap().map(|e| e.id);
        assert_eq!(last.as_deref(), Some("a"));
    }

    #[test]
    fn rare_and_common_tags_give_the_same_answers_however_they_are_looked_up() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let now = at("2026-01-01T00:00:00Z");
        let changes: Vec<Change> = (0..FEW_TAGGED as usize + 40)
            .map(|i| {
                let published = format!("2025-{:02}-{:02}T00:00:00Z", 1 + i % 12, 1 + i % 28);
                let mut e = entry(&format!("e{i:03}"), &format!("e{i:03}.txt"), &published);
                e.tags = vec!["common".into()];
                if i % 7 == 0 {
                    e.tags.push("rare".into());
                }
                Change::Upsert(Box::new(e))
            })
            .collect();
        c.apply(&changes, now).unwrap();
        assert!(!c.tagged_at_most("common", FEW_TAGGED).unwrap());
        assert!(c.tagged_at_most("rare", FEW_TAGGED).unwrap());
        let everything = c.latest(Filter::default(), 10_000).unwrap();
        let newest = c.nth(Filter::default(), 1).unwrap().unwrap();
        let (march, april) = (
            at("2025-03-01T00:00:00Z").timestamp_millis(),
            at("2025-04-01T00:00:00Z").timestamp_millis(),
        );
        for tag in ["common", "rare"] {
            let f = Filter {
                lang: Some("pl"),
                tag: Some(tag),
            };
            let expected: Vec<&Entry> = everything
                .iter()
                .filter(|e| e.tags.iter().any(|t| t == tag))
                .collect();
            let latest = c.latest(f, 10_000).unwrap();
            assert_eq!(latest.iter().collect::<Vec<_>>(), expected, "{tag}");
            let some = c.latest_from(f, 3, 5).unwrap();
            assert_eq!(some.iter().collect::<Vec<_>>(), expected[3..8], "{tag}");
            assert_eq!(c.nth(f, 5).unwrap().unwrap().id, expected[4].id, "{tag}");
            let in_march: Vec<&&Entry> = expected
                .iter()
                .filter(|e| (march..april).contains(&e.published.timestamp_millis()))
                .filter(|e| e.id != newest.id)
                .collect();
            assert!(!in_march.is_empty());
            assert_eq!(
                c.count_archived(f, march, april, &newest).unwrap(),
                in_march.len(),
                "{tag}"
            );
            let page = c.archived(f, march, april, &newest, 0, 1000).unwrap();
            let mut oldest_first: Vec<&Entry> = in_march.into_iter().copied().collect();
            oldest_first.reverse();
            assert_eq!(page.iter().collect::<Vec<_>>(), oldest_first, "{tag}");
        }
    }

    #[test]
    fn language_counts_follow_every_change_as_a_walk_would_count_them() {
        let dir = tempfile::tempdir().unwrap();
        let now = at("2026-01-01T00:00:00Z");
        let with_lang = |id: &str, lang: &str| {
            let mut e = entry(id, &format!("{id}.txt"), "2025-06-01T00:00:00Z");
            e.lang = LangTag::parse(lang).unwrap();
            e
        };
        let mut c = Catalog::open(dir.path()).unwrap();
        // The first fill (an import, counted at its end).
        c.import(
            &[
                Change::Upsert(Box::new(with_lang("a", "pl"))),
                Change::Upsert(Box::new(with_lang("b", "pl"))),
                Change::Upsert(Box::new(with_lang("c", "en"))),
            ],
            now,
        )
        .unwrap();
        c.finish_import(true).unwrap();
        assert!(c.counted);
        let check = |c: &Catalog, expected: &[(&str, usize)]| {
            let walked = c.languages_walked().unwrap();
            assert_eq!(c.languages().unwrap(), walked);
            let expected: Vec<(String, usize)> =
                expected.iter().map(|(l, n)| (l.to_string(), *n)).collect();
            assert_eq!(walked, expected);
        };
        check(&c, &[("en", 1), ("pl", 2)]);
        let mut later = with_lang("d", "uk");
        later.publish_at = Some(at("2026-02-01T00:00:00Z"));
        let mut withdrawn = with_lang("e", "uk");
        withdrawn.withdrawn = true;
        c.apply(
            &[
                // Replaced in another language (INSERT OR REPLACE).
                Change::Upsert(Box::new(with_lang("a", "de"))),
                // Gone.
                Change::Delete {
                    id: "c".into(),
                    at: now,
                },
                // Not shown yet, or not at all.
                Change::Upsert(Box::new(later)),
                Change::Upsert(Box::new(withdrawn)),
            ],
            now,
        )
        .unwrap();
        check(&c, &[("de", 1), ("pl", 1)]);
        // Its time comes.
        c.refresh(at("2026-02-02T00:00:00Z")).unwrap();
        check(&c, &[("de", 1), ("pl", 1), ("uk", 1)]);
        // And again from the state as it is on disk.
        drop(c);
        let c = Catalog::open(dir.path()).unwrap();
        check(&c, &[("de", 1), ("pl", 1), ("uk", 1)]);
    }

    #[test]
    fn tags_are_counted_per_language_over_shown_entries() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let mut a = entry("a", "a.txt", "2025-01-01T00:00:00Z");
        a.tags = vec!["Transport".into(), "Culture".into()];
        let mut b = entry("b", "b.txt", "2025-01-02T00:00:00Z");
        b.tags = vec!["transport".into()];
        let mut c_uk = entry("c", "c.txt", "2025-01-03T00:00:00Z");
        c_uk.lang = LangTag::parse("uk").unwrap();
        c_uk.tags = vec!["Transport".into()];
        let mut hidden = entry("d", "d.txt", "2025-01-04T00:00:00Z");
        hidden.tags = vec!["Transport".into(), "Secret".into()];
        hidden.withdrawn = true;
        let now = at("2026-01-01T00:00:00Z");
        let changes: Vec<Change> = [a, b, c_uk, hidden]
            .into_iter()
            .map(|e| Change::Upsert(Box::new(e)))
            .collect();
        c.apply(&changes, now).unwrap();
        let got: Vec<(String, String, String, usize)> = c
            .tags()
            .unwrap()
            .into_iter()
            .map(|t| (t.slug, t.name, t.lang, t.count))
            .collect();
        let row =
            |slug: &str, name: &str, lang: &str, n| (slug.into(), name.into(), lang.into(), n);
        assert_eq!(
            got,
            vec![
                row("culture", "Culture", "pl", 1),
                row("transport", "Transport", "pl", 2),
                row("transport", "Transport", "uk", 1),
            ]
        );
    }

    #[test]
    fn known_under_a_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let d = "2025-01-01T00:00:00Z";
        c.apply(
            &[
                Change::Upsert(Box::new(entry("a", "pl/a.txt", d))),
                Change::Upsert(Box::new(entry("b", "pl/sub/b.txt", d))),
                Change::Upsert(Box::new(entry("c", "pl.txt", d))),
                Change::Upsert(Box::new(entry("e", "plx/e.txt", d))),
                Change::Upsert(Box::new(entry("f", "p_l/f.txt", d))),
            ],
            at(d),
        )
        .unwrap();
        let mut got: Vec<_> = c.known_under("pl").unwrap().into_keys().collect();
        got.sort();
        assert_eq!(got, ["pl/a.txt", "pl/sub/b.txt"]);
        assert!(c.known_under("p%").unwrap().is_empty());
    }

    #[test]
    fn scheduled_expiring_and_withdrawn() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let now = at("2026-01-01T12:00:00Z");
        let mut later = entry("later", "later.txt", "2026-01-01T12:00:05Z");
        later.publish_at = Some(at("2026-01-01T12:00:05Z"));
        let mut brief = entry("brief", "brief.txt", "2025-12-01T00:00:00Z");
        brief.expires = Some(at("2026-01-01T12:00:10Z"));
        let mut gone = entry("gone", "gone.txt", "2025-11-01T00:00:00Z");
        c.apply(
            &[
                Change::Upsert(Box::new(later.clone())),
                Change::Upsert(Box::new(brief)),
                Change::Upsert(Box::new(gone.clone())),
            ],
            now,
        )
        .unwrap();
        let ids = |c: &Catalog| -> Vec<String> {
            c.latest(Filter::default(), 10)
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect()
        };
        assert_eq!(ids(&c), ["brief", "gone"]);
        let r = c.refresh(now).unwrap();
        assert!(r.changed.is_empty());
        assert_eq!(r.next, Some(at("2026-01-01T12:00:05Z")));
        let r = c.refresh(at("2026-01-01T12:00:05Z")).unwrap();
        assert_eq!(r.changed, ["later"]);
        assert_eq!(r.next, Some(at("2026-01-01T12:00:10Z")));
        assert_eq!(ids(&c), ["later", "brief", "gone"]);
        let r = c.refresh(at("2026-01-01T12:00:11Z")).unwrap();
        assert_eq!(r.changed, ["brief"]);
        assert_eq!(r.next, None);
        gone.withdrawn = true;
        gone.withdrawn_comment = Some("Published by mistake".into());
        c.apply(
            &[Change::Upsert(Box::new(gone))],
            at("2026-01-01T12:00:12Z"),
        )
        .unwrap();
        assert_eq!(ids(&c), ["later"]);
        let t = c.tombstones(Filter::default(), now).unwrap();
        let got: Vec<(&str, Option<&str>)> = t
            .iter()
            .map(|t| (t.id.as_str(), t.comment.as_deref()))
            .collect();
        assert_eq!(
            got,
            [("gone", Some("Published by mistake")), ("brief", None)]
        );
        assert_eq!(t[1].when, at("2026-01-01T12:00:10Z"), "expired at its time");
    }

    #[test]
    fn schema_1_is_migrated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                 INSERT INTO meta VALUES ('schema_version', '1'), ('id_prefix', 'tag:x,2026:');
                 CREATE TABLE entries (id TEXT PRIMARY KEY, path TEXT UNIQUE, slug TEXT NOT NULL UNIQUE,
                   hash TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                   first_seen TEXT NOT NULL, published TEXT NOT NULL, updated TEXT NOT NULL,
                   lang TEXT NOT NULL, lang_source TEXT NOT NULL, encoding TEXT NOT NULL,
                   title TEXT NOT NULL, summary TEXT NOT NULL, content TEXT NOT NULL, author TEXT,
                   tags TEXT NOT NULL, warnings TEXT NOT NULL, sort_key INTEGER NOT NULL,
                   lang_primary TEXT NOT NULL, deleted_at TEXT, last_path TEXT);
                 INSERT INTO entries VALUES ('tag:x,2026:a', 'a.txt', 'a', 'h', 1, 1,
                   '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00', '2025-01-01T00:00:00+00:00',
                   'pl', 'detected', 'UTF-8', 'T', 'S', '<p>C</p>', NULL, '[\"Bus\"]', '[]',
                   1735689600000, 'pl', NULL, NULL);",
            )
            .unwrap();
        }
        let c = Catalog::open(dir.path()).unwrap();
        assert!(c.recovered_from.is_none(), "migrated, not rebuilt");
        let e = c.latest(Filter::default(), 5).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].id, "tag:x,2026:a");
        let bus = Filter {
            lang: None,
            tag: Some("bus"),
        };
        assert_eq!(c.latest(bus, 5).unwrap().len(), 1);
        assert_eq!(c.meta("schema_version").unwrap().as_deref(), Some("2"));
    }

    #[test]
    fn a_state_closed_normally_is_not_read_through_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let closed = dir.path().join(CLOSED_MARKER);
        let now = at("2026-01-01T00:00:00Z");
        {
            let mut c = Catalog::open(dir.path()).unwrap();
            c.import(
                &[Change::Upsert(Box::new(entry(
                    "a",
                    "a.txt",
                    "2025-01-01T00:00:00Z",
                )))],
                now,
            )
            .unwrap();
            c.finish_import(true).unwrap();
            assert!(!closed.exists(), "only left when closed");
        }
        assert!(closed.exists());
        {
            let c = Catalog::open(dir.path()).unwrap();
            assert!(!c.checked, "closed normally: trusted");
            assert!(!closed.exists(), "taken while open: a crash leaves none");
            assert!(c.entry("a").unwrap().is_some());
        }
        // A crash: closed without the marker.
        std::fs::remove_file(&closed).unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert!(c.checked, "not closed normally: checked through");
        assert!(c.entry("a").unwrap().is_some());
    }

    #[test]
    fn a_new_state_is_imported_without_a_journal_and_an_interrupted_import_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(IMPORT_MARKER);
        let now = at("2026-01-01T00:00:00Z");
        let d = "2025-01-01T00:00:00Z";
        let mode = |c: &Catalog| -> String {
            c.conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap()
        };
        let indexes = |c: &Catalog| -> Vec<String> {
            let mut stmt = c
                .conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
                .unwrap();
            let mut names: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            names.sort();
            names
        };
        let all_indexes = indexes(&Catalog::open_in_memory().unwrap());
        assert!(all_indexes.contains(&"entries_shown_by_date".to_string()));
        {
            let mut c = Catalog::open(dir.path()).unwrap();
            assert!(marker.exists());
            assert_eq!(mode(&c), "off");
            assert!(
                !indexes(&c).contains(&"entries_shown_by_date".to_string()),
                "built at the end"
            );
            assert!(c.is_empty().unwrap());
            c.import(&[Change::Upsert(Box::new(entry("a", "a.txt", d)))], now)
                .unwrap();
            assert!(!c.is_empty().unwrap());
            // Stopped here: the marker stays.
        }
        assert!(
            Catalog::open_read_only(dir.path()).unwrap().is_none(),
            "`check` does not read a torn import"
        );
        {
            let mut c = Catalog::open(dir.path()).unwrap();
            assert!(c.import_restarted && c.is_new());
            assert!(
                c.entry("a").unwrap().is_none(),
                "the torn import is discarded"
            );
            c.import(&[Change::Upsert(Box::new(entry("b", "b.txt", d)))], now)
                .unwrap();
            c.finish_import(true).unwrap();
            assert!(!marker.exists());
            assert_eq!(mode(&c), "wal");
            assert_eq!(indexes(&c), all_indexes);
        }
        let c = Catalog::open(dir.path()).unwrap();
        assert!(!c.import_restarted && !c.is_new());
        assert!(c.entry("b").unwrap().is_some());
        assert_eq!(mode(&c), "wal");
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Catalog::open(dir.path()).unwrap();
        assert!(matches!(
            Catalog::open(dir.path()),
            Err(CatalogError::Locked(_))
        ));
    }

    #[test]
    fn garbage_database_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]).unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert!(c.recovered_from.is_some());
        assert!(c.is_new());
        assert!(c.recovered_from.as_ref().unwrap().exists());
    }
}
