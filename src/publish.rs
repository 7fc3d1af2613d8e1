//! A rendered set of documents -> the feeds folder, atomically.
//!
//! The only module that writes under the output folder. Every file is
//! written to a temporary file in the same folder, fsynced, made readable by
//! other users (a web server may serve the folder) and renamed into place, so
//! a reader never sees a half-written feed. Files whose bytes did not change
//! are not touched. A manifest lists what herald wrote, so that only herald's
//! own files are ever removed.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

const MANIFEST: &str = ".herald-manifest";

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

#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteReport {
    pub written: usize,
    pub unchanged: usize,
    pub removed: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct PublishError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// Writes `documents` and removes `removed` (paths below the base URL).
///
/// All new files are first written to temporary files, then made durable
/// with one `syncfs` (instead of one fsync per file, which made large
/// publishes slow), then renamed into place; the folders are fsynced last.
pub fn write(
    dir: &Path,
    documents: &[Document],
    removed: &[String],
) -> Result<WriteReport, PublishError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PublishError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let mut manifest = read_manifest(dir);
    let before = manifest.clone();
    let mut report = WriteReport::default();
    let mut touched_dirs = BTreeSet::new();
    let mut staged: Vec<(tempfile::TempPath, PathBuf)> = Vec::new();
    for doc in documents {
        let Some(target) = safe_join(dir, &doc.path) else {
            continue;
        };
        let parent = target.parent().unwrap_or(dir).to_path_buf();
        if std::fs::read(&target).is_ok_and(|old| old == doc.bytes[..]) {
            report.unchanged += 1;
        } else {
            std::fs::create_dir_all(&parent).map_err(err(&parent))?;
            staged.push((stage(&target, &doc.bytes).map_err(err(&target))?, target));
            touched_dirs.insert(parent);
            report.written += 1;
        }
        manifest.insert(doc.path.clone());
    }
    for path in removed {
        manifest.remove(path);
    }
    if manifest != before {
        let target = dir.join(MANIFEST);
        let text: String = manifest.iter().map(|p| format!("{p}\n")).collect();
        staged.push((
            stage(&target, text.as_bytes()).map_err(err(&target))?,
            target,
        ));
        touched_dirs.insert(dir.to_path_buf());
    }
    if !staged.is_empty() {
        sync_filesystem(dir).map_err(err(dir))?;
    }
    for (tmp, target) in staged {
        tmp.persist(&target).map_err(|e| PublishError {
            path: target.clone(),
            source: e.error,
        })?;
    }
    for path in removed {
        if !before.contains(path) {
            continue; // not ours: never delete what herald did not write
        }
        if let Some(target) = safe_join(dir, path) {
            match std::fs::remove_file(&target) {
                Ok(()) => report.removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(PublishError {
                        path: target,
                        source: e,
                    })
                }
            }
            if let Some(parent) = target.parent() {
                // Remove a language folder left empty; fails harmlessly if not.
                if parent != dir {
                    let _ = std::fs::remove_dir(parent);
                }
                touched_dirs.insert(parent.to_path_buf());
            }
        }
    }
    for d in touched_dirs {
        // Make the renames durable; a folder that was just removed is fine.
        if let Ok(f) = std::fs::File::open(&d) {
            let _ = f.sync_all();
        }
    }
    Ok(report)
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

/// Writes bytes to a new temporary file next to `target` (readable by
/// other users: a web server may serve the folder).
fn stage(target: &Path, bytes: &[u8]) -> io::Result<tempfile::TempPath> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".herald-")
        .suffix(".tmp")
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

    #[test]
    fn refuses_paths_leaving_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        for p in ["../x", "/etc/x", "a//b", "a/./b", ""] {
            assert!(safe_join(dir.path(), p).is_none(), "{p}");
        }
    }
}
