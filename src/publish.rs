//! A rendered set of documents -> the feeds folder, atomically.
//!
//! The only module that writes under the output folder. Every file is
//! written to a temporary file in the same folder, fsynced, made readable by
//! other users (a web server may serve the folder) and renamed into place, so
//! a reader never sees a half-written feed. Files whose bytes did not change
//! are not touched. A manifest lists what herald wrote, so that only herald's
//! own files are ever removed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Lists every file herald wrote in the feeds folder.
pub const MANIFEST: &str = ".herald-manifest";

/// One document at a path below the base URL (`uk/atom.xml`).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub path: String,
    pub bytes: Bytes,
    pub content_type: &'static str,
    /// For `Last-Modified`: the newest entry's time (Unix seconds).
    pub last_modified: Option<i64>,
}

pub const RSS: &str = "application/rss+xml; charset=utf-8";
pub const ATOM: &str = "application/atom+xml; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/feed+json; charset=utf-8";
pub const OPML: &str = "text/x-opml; charset=utf-8";

#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteReport {
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
}

impl WriteReport {
    /// What was done after `earlier` (a report of the same writer).
    pub fn since(&self, earlier: &WriteReport) -> WriteReport {
        WriteReport {
            written: self.written - earlier.written,
            unchanged: self.unchanged - earlier.unchanged,
            removed: self.removed - earlier.removed,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PublishError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Writes `documents` and removes `removed` (paths below the base URL).
pub fn write(
    dir: &Path,
    documents: &[Document],
    removed: &[String],
) -> Result<WriteReport, PublishError> {
    let mut w = Writer::open(dir)?;
    w.write(documents)?;
    w.remove(removed)?;
    w.finish()
}

/// Writes documents in batches and updates the manifest once at the end
/// (or when a full write is dropped; large publishes: the manifest lists
/// every file herald wrote).
///
/// Files are first written to temporary files beside their targets
/// ([`Writer::stage`]); [`Writer::commit`] then makes them durable with one
/// `syncfs` (instead of one fsync per file, which made large publishes
/// slow), renames them into place and fsyncs their folders.
pub struct Writer {
    dir: PathBuf,
    manifest: BTreeSet<String>,
    before: BTreeSet<String>,
    report: WriteReport,
    /// Staged files not renamed into place yet, by target: staging a
    /// target again replaces the older temporary file, so a commit never
    /// puts an older version over a newer one.
    pending: BTreeMap<PathBuf, tempfile::TempPath>,
    pending_bytes: usize,
}

fn err(path: &Path) -> impl FnOnce(io::Error) -> PublishError {
    let path = path.to_path_buf();
    move |source| PublishError { path, source }
}

impl Writer {
    pub fn open(dir: &Path) -> Result<Writer, PublishError> {
        std::fs::create_dir_all(dir).map_err(err(dir))?;
        let manifest = read_manifest(dir);
        Ok(Writer {
            dir: dir.to_path_buf(),
            before: manifest.clone(),
            manifest,
            report: WriteReport::default(),
            pending: BTreeMap::new(),
            pending_bytes: 0,
        })
    }

    /// Writes one batch; files whose bytes did not change are not touched.
    pub fn write(&mut self, documents: &[Document]) -> Result<(), PublishError> {
        self.stage(documents)?;
        self.commit()
    }

    /// Writes documents to temporary files, to be put in place by
    /// [`Writer::commit`]; files whose bytes did not change are not touched.
    pub fn stage(&mut self, documents: &[Document]) -> Result<(), PublishError> {
        for doc in documents {
            let Some(target) = safe_join(&self.dir, &doc.path) else {
                continue;
            };
            // (Compared below with what is in place, not with this.)
            self.unstage(&target);
            if std::fs::read(&target).is_ok_and(|old| old == doc.bytes[..]) {
                self.report.unchanged += 1;
            } else {
                let parent = target.parent().unwrap_or(&self.dir);
                std::fs::create_dir_all(parent).map_err(err(parent))?;
                let tmp = stage(&target, &doc.bytes).map_err(err(&target))?;
                self.pending_bytes += doc.bytes.len();
                self.pending.insert(target, tmp);
            }
            self.manifest.insert(doc.path.clone());
        }
        Ok(())
    }

    /// The bytes staged and not yet committed.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Makes the staged files durable and renames them into place.
    pub fn commit(&mut self) -> Result<(), PublishError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        sync_filesystem(&self.dir).map_err(err(&self.dir))?;
        let mut touched_dirs = BTreeSet::new();
        for (target, tmp) in std::mem::take(&mut self.pending) {
            tmp.persist(&target).map_err(|e| PublishError {
                path: target.clone(),
                source: e.error,
            })?;
            touched_dirs.insert(target.parent().unwrap_or(&self.dir).to_path_buf());
            self.report.written += 1;
        }
        self.pending_bytes = 0;
        sync_dirs(touched_dirs);
        Ok(())
    }

    /// Forgets a staged version of `target` (its temporary file goes).
    fn unstage(&mut self, target: &Path) {
        if let Some(tmp) = self.pending.remove(target) {
            let len = std::fs::metadata(&*tmp).map_or(0, |m| m.len() as usize);
            self.pending_bytes = self.pending_bytes.saturating_sub(len);
        }
    }

    /// Removes files herald wrote earlier (never anything else).
    pub fn remove(&mut self, removed: &[String]) -> Result<(), PublishError> {
        let mut touched_dirs = BTreeSet::new();
        for path in removed {
            if let Some(target) = safe_join(&self.dir, path) {
                self.unstage(&target);
            }
            if !self.manifest.contains(path) && !self.before.contains(path) {
                continue; // not ours: never delete what herald did not write
            }
            if let Some(target) = safe_join(&self.dir, path) {
                // Unlisted only once gone: a file that could not be
                // removed stays herald's to remove later.
                match std::fs::remove_file(&target) {
                    Ok(()) => self.report.removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(PublishError {
                            path: target,
                            source: e,
                        })
                    }
                }
                self.manifest.remove(path);
                // Remove folders left empty (a language's, a tag's, an
                // archive month's); fails harmlessly when not empty.
                let mut parent = target.parent();
                while let Some(p) = parent {
                    if p == self.dir || std::fs::remove_dir(p).is_err() {
                        break;
                    }
                    touched_dirs.insert(p.parent().unwrap_or(&self.dir).to_path_buf());
                    parent = p.parent();
                }
                if let Some(p) = target.parent() {
                    touched_dirs.insert(p.to_path_buf());
                }
            }
        }
        sync_dirs(touched_dirs);
        Ok(())
    }

    /// What this writer did so far.
    pub fn report(&self) -> &WriteReport {
        &self.report
    }

    /// The paths the manifest will list: herald's files before, plus those
    /// written, minus those removed.
    pub fn listed(&self) -> impl Iterator<Item = &String> {
        self.manifest.iter()
    }

    /// Commits what is staged, then writes the manifest if it changed
    /// since it was last written.
    pub fn save_manifest(&mut self) -> Result<(), PublishError> {
        self.commit()?;
        if self.manifest == self.before {
            return Ok(());
        }
        let target = self.dir.join(MANIFEST);
        let text: String = self.manifest.iter().map(|p| format!("{p}\n")).collect();
        let tmp = stage(&target, text.as_bytes()).map_err(err(&target))?;
        std::fs::File::open(&*tmp)
            .and_then(|f| f.sync_all())
            .map_err(err(&target))?;
        tmp.persist(&target).map_err(|e| PublishError {
            path: target.clone(),
            source: e.error,
        })?;
        sync_dirs([self.dir.clone()].into());
        self.before = self.manifest.clone();
        Ok(())
    }

    /// Removes the temporary files a run that stopped abnormally left
    /// behind (staged, never put in place), anywhere in the folder; returns
    /// how many. Call with nothing staged.
    pub fn sweep_temporaries(&self) -> usize {
        let mut removed = 0;
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(kind) = e.file_type() else {
                    continue;
                };
                let name = e.file_name();
                let name = name.to_string_lossy();
                if kind.is_dir() {
                    dirs.push(e.path());
                } else if kind.is_file()
                    && name.starts_with(TEMP_PREFIX)
                    && name.ends_with(TEMP_SUFFIX)
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Writes the manifest if it changed.
    pub fn finish(mut self) -> Result<WriteReport, PublishError> {
        self.save_manifest()?;
        Ok(self.report)
    }
}

fn sync_dirs(dirs: BTreeSet<PathBuf>) {
    for d in dirs {
        // Make the renames durable; a folder that was just removed is fine.
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.sync_all();
        }
    }
}

/// The paths herald wrote earlier.
pub fn read_manifest(dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(dir.join(MANIFEST))
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// How staged files are named: `.herald-XXXXXX.tmp`.
const TEMP_PREFIX: &str = ".herald-";
const TEMP_SUFFIX: &str = ".tmp";

/// Writes bytes to a new temporary file next to `target` (readable by
/// other users: a web server may serve the folder).
fn stage(target: &Path, bytes: &[u8]) -> io::Result<tempfile::TempPath> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .suffix(TEMP_SUFFIX)
        .tempfile_in(parent)?;
    tmp.write_all(bytes)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    Ok(tmp.into_temp_path())
}

/// Flushes every written file on the folder's filesystem in one call.
fn sync_filesystem(dir: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(dir)?;
    // SAFETY: syncfs only reads the descriptor, which `f` keeps open.
    if unsafe { libc::syncfs(f.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Joins a document path below `dir`, refusing anything that could leave it.
fn safe_join(dir: &Path, path: &str) -> Option<PathBuf> {
    if path.is_empty()
        || path.starts_with('/')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || path.contains('\0')
    {
        return None;
    }
    Some(dir.join(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(path: &str, body: &str) -> Document {
        Document {
            path: path.into(),
            bytes: Bytes::from(body.to_string()),
            content_type: HTML,
            last_modified: None,
        }
    }

    #[test]
    fn writes_skips_unchanged_and_removes_only_own_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("robots.txt"), "mine").unwrap();
        let r = write(d, &[doc("index.html", "a"), doc("uk/atom.xml", "b")], &[]).unwrap();
        assert_eq!((r.written, r.unchanged), (2, 0));
        let mode = std::fs::metadata(d.join("uk/atom.xml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let r = write(
            d,
            &[doc("index.html", "a")],
            &["uk/atom.xml".into(), "robots.txt".into()],
        )
        .unwrap();
        assert_eq!((r.written, r.unchanged, r.removed), (0, 1, 1));
        assert!(!d.join("uk").exists(), "empty language folder removed");
        assert!(
            d.join("robots.txt").exists(),
            "files herald did not write stay"
        );
        let leftovers: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// The names in `d` that are staged temporary files.
    fn temporaries(d: &Path) -> usize {
        std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count()
    }

    #[test]
    fn staged_files_are_put_in_place_newest_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.xml"), "one").unwrap();
        let mut w = Writer::open(d).unwrap();
        w.stage(&[doc("a.xml", "two"), doc("b.xml", "b")]).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("a.xml")).unwrap(), "one");
        assert!(!d.join("b.xml").exists());
        assert_eq!(w.pending_bytes(), 4);
        // Staged again, back to what is in place: nothing to put there,
        // and the staged "two" must not land later.
        w.stage(&[doc("a.xml", "one")]).unwrap();
        // Staged, then removed: never put in place.
        w.remove(&["b.xml".into()]).unwrap();
        assert_eq!(w.pending_bytes(), 0);
        assert_eq!(temporaries(d), 0);
        w.stage(&[doc("c.xml", "c1")]).unwrap();
        w.stage(&[doc("c.xml", "c2")]).unwrap();
        let r = w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(d.join("a.xml")).unwrap(), "one");
        assert!(!d.join("b.xml").exists());
        assert_eq!(std::fs::read_to_string(d.join("c.xml")).unwrap(), "c2");
        assert_eq!((r.written, r.unchanged), (1, 1));
        assert_eq!(temporaries(d), 0);
        let listed = read_manifest(d);
        assert!(
            listed.contains("c.xml") && !listed.contains("b.xml"),
            "{listed:?}"
        );
    }

    #[test]
    fn a_file_that_cannot_be_removed_stays_listed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, &[doc("x.xml", "x")], &[]).unwrap();
        // Replaced by a non-empty folder: removing it as a file fails
        // (even for root).
        std::fs::remove_file(d.join("x.xml")).unwrap();
        std::fs::create_dir_all(d.join("x.xml/inside")).unwrap();
        let mut w = Writer::open(d).unwrap();
        assert!(w.remove(&["x.xml".into()]).is_err());
        w.save_manifest().unwrap();
        assert!(read_manifest(d).contains("x.xml"));
    }

    #[test]
    fn temporaries_left_by_a_crash_are_swept_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(d, &[doc("uk/atom.xml", "a")], &[]).unwrap();
        for p in [
            ".herald-x1Yz.tmp",
            "uk/.herald-AbC9.tmp",
            "notes.tmp",
            ".herald-keep",
        ] {
            std::fs::write(d.join(p), "x").unwrap();
        }
        let w = Writer::open(d).unwrap();
        assert_eq!(w.sweep_temporaries(), 2);
        assert!(!d.join(".herald-x1Yz.tmp").exists());
        assert!(!d.join("uk/.herald-AbC9.tmp").exists());
        for kept in ["notes.tmp", ".herald-keep", MANIFEST, "uk/atom.xml"] {
            assert!(d.join(kept).exists(), "{kept}");
        }
        assert_eq!(w.sweep_temporaries(), 0);
    }

    #[test]
    fn refuses_paths_leaving_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["../x", "/etc/x", "a//b", "a/./b", ""] {
            assert!(safe_join(dir.path(), p).is_none(), "{p}");
        }
    }
}
