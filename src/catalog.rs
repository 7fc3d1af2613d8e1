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

const SCHEMA_VERSION: i64 = 1;
const DB_FILE: &str = "herald.db";
const LOCK_FILE: &str = "herald.lock";

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
        let (mut catalog, recovered_from) = match Catalog::open_db(&path) {
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
                (Catalog::open_db(&path)?, Some(aside))
            }
            Err(e) => return Err(e),
        };
        catalog._lock = Some(lock);
        catalog.recovered_from = recovered_from;
        Ok(catalog)
    }

    /// Opens an existing state read-only, without the lock (for `check`).
    /// `Ok(None)` when there is no state yet.
    pub fn open_read_only(dir: &Path) -> Result<Option<Catalog>, CatalogError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let db = |source| CatalogError::Db {
            path: path.clone(),
            source,
        };
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(db)?;
        let c = Catalog {
            conn,
            path: path.clone(),
            created: false,
            _lock: None,
            recovered_from: None,
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
        conn.execute_batch(SCHEMA)
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
        })
    }

    fn open_db(path: &Path) -> Result<Catalog, CatalogError> {
        let existed = path.exists()
            && std::fs::metadata(path)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
        let db = |source| CatalogError::Db {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(db)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(db)?;
        let quick: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(db)?;
        if quick != "ok" {
            return Err(CatalogError::Corrupt {
                path: path.to_path_buf(),
                message: format!("integrity check failed: {quick}"),
            });
        }
        conn.execute_batch(SCHEMA).map_err(db)?;
        let c = Catalog {
            conn,
            path: path.to_path_buf(),
            created: !existed,
            _lock: None,
            recovered_from: None,
        };
        match c.meta("schema_version")? {
            None => c.set_meta("schema_version", &SCHEMA_VERSION.to_string())?,
            Some(_) => c.check_schema()?,
        }
        Ok(c)
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
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
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
        self.conn
            .query_row(
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
        self.conn
            .query_row(
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
        self.conn
            .query_row(sql, [value], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.db_err(e))
    }

    /// The stored entry with this id (live or deleted).
    pub fn entry(&self, id: &str) -> Result<Option<Entry>, CatalogError> {
        self.conn
            .query_row(
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
        self.deleted_where("hash = ?1", hash)
    }

    /// A deleted entry that lived at this path: a file deleted and written
    /// again (some editors save that way) keeps its id.
    pub fn deleted_by_last_path(&self, path: &str) -> Result<Option<Entry>, CatalogError> {
        self.deleted_where("last_path = ?1", path)
    }

    fn deleted_where(&self, condition: &str, value: &str) -> Result<Option<Entry>, CatalogError> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM entries WHERE path IS NULL AND {condition}
                     ORDER BY deleted_at DESC LIMIT 1"
                ),
                [value],
                entry_from,
            )
            .optional()
            .map_err(|e| self.db_err(e))
    }

    /// The newest live entries (by published, then id), optionally of one
    /// primary language.
    pub fn latest(&self, lang: Option<&str>, limit: usize) -> Result<Vec<Entry>, CatalogError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql_all = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE path IS NOT NULL
             ORDER BY sort_key DESC, id ASC LIMIT ?1"
        );
        let sql_lang = format!(
            "SELECT {ENTRY_COLUMNS} FROM entries WHERE path IS NOT NULL AND lang_primary = ?2
             ORDER BY sort_key DESC, id ASC LIMIT ?1"
        );
        let result = match lang {
            None => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&sql_all)
                    .map_err(|e| self.db_err(e))?;
                let rows = stmt
                    .query_map(params![limit], entry_from)
                    .map_err(|e| self.db_err(e))?;
                rows.collect::<Result<Vec<_>, _>>()
            }
            Some(l) => {
                let mut stmt = self
                    .conn
                    .prepare_cached(&sql_lang)
                    .map_err(|e| self.db_err(e))?;
                let rows = stmt
                    .query_map(params![limit, l], entry_from)
                    .map_err(|e| self.db_err(e))?;
                rows.collect::<Result<Vec<_>, _>>()
            }
        };
        result.map_err(|e| self.db_err(e))
    }

    /// Primary language subtags with live entries, and how many each.
    pub fn languages(&self) -> Result<Vec<(String, usize)>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT lang_primary, COUNT(*) FROM entries WHERE path IS NOT NULL
                 GROUP BY lang_primary ORDER BY lang_primary",
            )
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as usize))
            })
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// Ids of all live entries (for a full page render).
    pub fn live_ids(&self) -> Result<Vec<String>, CatalogError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM entries WHERE path IS NOT NULL ORDER BY id")
            .map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(|e| self.db_err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.db_err(e))
    }

    /// Applies changes atomically.
    pub fn apply(&mut self, changes: &[Change]) -> Result<(), CatalogError> {
        let path = self.path.clone();
        let db = |source| CatalogError::Db {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(db)?;
        for change in changes {
            match change {
                Change::Upsert(e) => {
                    // A path belongs to one live entry: free it first.
                    tx.execute(
                        "UPDATE entries SET last_path = path, path = NULL, deleted_at = ?2
                         WHERE path = ?1 AND id <> ?3",
                        params![e.path, e.updated.to_rfc3339(), e.id],
                    )
                    .map_err(db)?;
                    tx.execute(
                        &format!(
                            "INSERT OR REPLACE INTO entries ({ENTRY_COLUMNS}, sort_key, lang_primary, deleted_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                                     ?17, ?18, ?19, ?20, NULL)"
                        ),
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
                            e.published.timestamp_millis(),
                            e.lang.primary(),
                        ],
                    )
                    .map_err(db)?;
                    tx.execute("DELETE FROM rejects WHERE path = ?1", [&e.path])
                        .map_err(db)?;
                }
                Change::Touch { id, size, mtime_ns } => {
                    tx.execute(
                        "UPDATE entries SET size = ?2, mtime_ns = ?3 WHERE id = ?1",
                        params![id, *size as i64, mtime_ns],
                    )
                    .map_err(db)?;
                }
                Change::Delete { id, at } => {
                    tx.execute(
                        "UPDATE entries SET last_path = path, path = NULL, deleted_at = ?2 WHERE id = ?1",
                        params![id, at.to_rfc3339()],
                    )
                    .map_err(db)?;
                }
                Change::Reject {
                    path,
                    size,
                    mtime_ns,
                    error,
                } => {
                    tx.execute(
                        "INSERT OR REPLACE INTO rejects (path, size, mtime_ns, error) VALUES (?1, ?2, ?3, ?4)",
                        params![path, *size as i64, mtime_ns, error],
                    )
                    .map_err(db)?;
                }
                Change::ClearReject { path } => {
                    tx.execute("DELETE FROM rejects WHERE path = ?1", [path])
                        .map_err(db)?;
                }
            }
        }
        tx.commit().map_err(db)
    }
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
    last_path   TEXT
);
CREATE INDEX IF NOT EXISTS entries_by_last_path ON entries (last_path) WHERE path IS NULL;
CREATE INDEX IF NOT EXISTS entries_by_date ON entries (sort_key DESC, id) WHERE path IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_lang_date ON entries (lang_primary, sort_key DESC, id) WHERE path IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_hash ON entries (hash);
CREATE TABLE IF NOT EXISTS rejects (
    path     TEXT PRIMARY KEY,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    error    TEXT NOT NULL
);
";

const ENTRY_COLUMNS: &str =
    "id, path, slug, hash, size, mtime_ns, first_seen, published, updated, lang, \
     lang_source, encoding, title, summary, content, author, tags, warnings";

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
        }
    }

    #[test]
    fn round_trip_order_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        assert!(c.is_new());
        let a = entry("a", "a.txt", "2025-01-01T00:00:00Z");
        let b = entry("b", "b.txt", "2025-02-01T00:00:00+01:00");
        c.apply(&[
            Change::Upsert(Box::new(a.clone())),
            Change::Upsert(Box::new(b.clone())),
        ])
        .unwrap();
        let latest = c.latest(None, 10).unwrap();
        assert_eq!(latest, vec![b.clone(), a.clone()]);
        assert_eq!(c.latest(Some("pl"), 1).unwrap(), vec![b.clone()]);
        assert_eq!(c.languages().unwrap(), vec![("pl".to_string(), 2)]);
        c.apply(&[Change::Delete {
            id: "a".into(),
            at: a.published,
        }])
        .unwrap();
        assert_eq!(c.latest(None, 10).unwrap(), vec![b]);
        assert!(c.id_exists("a").unwrap(), "deleted ids stay reserved");
        assert!(c.known_path("a.txt").unwrap().is_none());
        drop(c);
        let c = Catalog::open(dir.path()).unwrap();
        assert!(!c.is_new());
    }

    #[test]
    fn known_under_a_folder_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(dir.path()).unwrap();
        let d = "2025-01-01T00:00:00Z";
        c.apply(&[
            Change::Upsert(Box::new(entry("a", "pl/a.txt", d))),
            Change::Upsert(Box::new(entry("b", "pl/sub/b.txt", d))),
            Change::Upsert(Box::new(entry("c", "pl.txt", d))),
            Change::Upsert(Box::new(entry("e", "plx/e.txt", d))),
            Change::Upsert(Box::new(entry("f", "p_l/f.txt", d))),
        ])
        .unwrap();
        let mut got: Vec<_> = c.known_under("pl").unwrap().into_keys().collect();
        got.sort();
        assert_eq!(got, ["pl/a.txt", "pl/sub/b.txt"]);
        assert!(c.known_under("p%").unwrap().is_empty());
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
