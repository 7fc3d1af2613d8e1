//! The watch folder -> the files that may be announcements.
//!
//! Owns the ignore rules (hidden files, editor and transfer temp files, other
//! extensions) and symlink containment: a link that leads outside the watch
//! folder is never followed. Reads directory entries and metadata only, never
//! file contents.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use crate::announcement::Format;

/// A candidate announcement file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Relative to the watch folder, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Candidates, sorted by `rel`.
    pub files: Vec<FileInfo>,
    /// Files that were seen and deliberately skipped: (relative path, why).
    pub ignored: Vec<(String, &'static str)>,
    /// Entries that could not be read: (relative path, error).
    pub errors: Vec<(String, String)>,
}

/// Why a name is not an announcement, or `None` when it may be one.
pub fn ignore_reason(name: &str) -> Option<&'static str> {
    if let Some(reason) = temp_reason(name) {
        return Some(reason);
    }
    if Format::of(name).is_none() {
        return Some("not an announcement (.txt, .md or .markdown)");
    }
    None
}

/// Why a name is a hidden, temporary, backup or system file (whatever its
/// extension), or `None`.
pub fn temp_reason(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if name.starts_with('.') {
        return Some("hidden or temporary file");
    }
    if name.ends_with('~')
        || (name.starts_with('#') && name.ends_with('#'))
        || name.starts_with("~$")
    {
        return Some("editor backup or lock file");
    }
    const TEMP_SUFFIXES: &[&str] = &[
        ".swp",
        ".swo",
        ".swx",
        ".tmp",
        ".temp",
        ".part",
        ".partial",
        ".crdownload",
        ".download",
        ".bak",
        ".orig",
        ".rej",
        ".kate-swp",
        ".filepart",
    ];
    if TEMP_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
        return Some("temporary or partial file");
    }
    if matches!(lower.as_str(), "thumbs.db" | "desktop.ini" | "4913") {
        return Some("system or editor file");
    }
    None
}

/// Whether a relative path passes the ignore rules in every component.
pub fn is_candidate_path(rel: &str) -> bool {
    let mut parts = rel.split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_some() {
            if part.starts_with('.') {
                return false;
            }
        } else {
            return ignore_reason(part).is_none();
        }
    }
    false
}

/// Lists the whole watch folder.
pub fn scan(root: &Path) -> io::Result<Listing> {
    let canonical_root = root.canonicalize()?;
    let mut listing = Listing::default();
    let mut visited = HashSet::new();
    visited.insert(canonical_root.clone());
    walk(
        &canonical_root,
        &canonical_root,
        "",
        &mut visited,
        &mut listing,
    );
    listing.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    listing.ignored.sort();
    Ok(listing)
}

/// Looks at one relative path (a file or a folder) below the watch folder:
/// used for the paths a file-system event names.
pub fn scan_path(root: &Path, rel: &str) -> io::Result<Listing> {
    let canonical_root = root.canonicalize()?;
    let mut listing = Listing::default();
    let abs = canonical_root.join(rel);
    let mut visited = HashSet::new();
    visited.insert(canonical_root.clone());
    match std::fs::symlink_metadata(&abs) {
        Ok(meta) if meta.is_dir() => walk(&canonical_root, &abs, rel, &mut visited, &mut listing),
        Ok(meta) => visit(&canonical_root, &abs, rel, meta, &mut visited, &mut listing),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => listing.errors.push((rel.to_string(), e.to_string())),
    }
    listing.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(listing)
}

fn walk(root: &Path, dir: &Path, rel_dir: &str, visited: &mut HashSet<PathBuf>, out: &mut Listing) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push((display_rel(rel_dir), e.to_string()));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                out.errors.push((display_rel(rel_dir), e.to_string()));
                continue;
            }
        };
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            let rel = format!("{}{}", prefix(rel_dir), entry.file_name().to_string_lossy());
            out.ignored.push((rel, "file name is not valid UTF-8"));
            continue;
        };
        let rel = format!("{}{name}", prefix(rel_dir));
        // Read relative to the open folder (no walk of the whole path per
        // file), without following a link.
        let link_meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    out.errors.push((rel, e.to_string()));
                }
                continue;
            }
        };
        visit(root, &entry.path(), &rel, link_meta, visited, out);
    }
}

/// One entry, given its own (not followed) metadata.
fn visit(
    root: &Path,
    path: &Path,
    rel: &str,
    link_meta: std::fs::Metadata,
    visited: &mut HashSet<PathBuf>,
    out: &mut Listing,
) {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let meta = if link_meta.file_type().is_symlink() {
        // Dangling links (Emacs locks) and links leading out are skipped.
        let Ok(target) = path.canonicalize() else {
            out.ignored
                .push((rel.to_string(), "dangling symbolic link"));
            return;
        };
        if !target.starts_with(root) {
            out.ignored.push((
                rel.to_string(),
                "symbolic link leading outside the watch folder",
            ));
            return;
        }
        match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => {
                out.errors.push((rel.to_string(), e.to_string()));
                return;
            }
        }
    } else {
        link_meta
    };
    if meta.is_dir() {
        if name.starts_with('.') {
            return; // .git, .Trash-1000, ...: not ours to look into
        }
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if visited.insert(key) {
            walk(root, path, rel, visited, out);
        }
        return;
    }
    if !meta.is_file() {
        out.ignored.push((rel.to_string(), "not a regular file"));
        return;
    }
    if let Some(reason) = ignore_reason(name) {
        out.ignored.push((rel.to_string(), reason));
        return;
    }
    out.files.push(FileInfo {
        rel: rel.to_string(),
        abs: path.to_path_buf(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    });
}

/// A file's modification time in nanoseconds since the epoch (0 if unknown).
pub fn mtime_ns(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn prefix(rel_dir: &str) -> String {
    if rel_dir.is_empty() {
        String::new()
    } else {
        format!("{rel_dir}/")
    }
}

fn display_rel(rel_dir: &str) -> String {
    if rel_dir.is_empty() {
        ".".to_string()
    } else {
        rel_dir.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignore_rules() {
        let check = |name: &str, ignored: bool| {
            assert_eq!(ignore_reason(name).is_some(), ignored, "{name}")
        };
        for name in [
            ".#notes.md",
            ".DS_Store",
            ".notes.md.Xa81Qz",
            ".notes.md.swp",
            ".~lock.notes.odt#",
            "4913",
            "Thumbs.db",
            "notes.md.part",
            "notes.md.tmp",
            "notes.md~",
            "#notes.md#",
            "~$report.md",
            "photo.png",
            "notes.md.crdownload",
            "README",
        ] {
            check(name, true);
        }
        for name in [
            "notes.md",
            "tram.uk.md",
            "a.txt",
            "B.MARKDOWN",
            "2025-01-01-x.txt",
        ] {
            check(name, false);
        }
        assert!(is_candidate_path("pl/2025/a.txt"));
        assert!(!is_candidate_path(".git/a.txt"));
        assert!(!is_candidate_path("pl/.a.txt.swp"));
    }

    #[test]
    fn scan_lists_sorted_and_skips_links_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("pl/sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("b.txt"), "b").unwrap();
        std::fs::write(root.join("pl/sub/a.md"), "a").unwrap();
        std::fs::write(root.join(".git/c.txt"), "c").unwrap();
        std::fs::write(root.join("x.swp"), "x").unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("leak.txt"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("leakdir")).unwrap();
        std::os::unix::fs::symlink(root.join("b.txt"), root.join("inside.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join(".#lock.md")).unwrap();
        let l = scan(root).unwrap();
        let rels: Vec<_> = l.files.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["b.txt", "inside.txt", "pl/sub/a.md"]);
        let ignored: Vec<_> = l.ignored.iter().map(|(p, _)| p.as_str()).collect();
        assert!(
            ignored.contains(&"leak.txt")
                && ignored.contains(&"leakdir")
                && ignored.contains(&"x.swp")
        );
        let one = scan_path(root, "pl").unwrap();
        assert_eq!(one.files.len(), 1);
        assert!(scan_path(root, "gone.txt").unwrap().files.is_empty());
    }
}
