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

impl Listing {
    /// Whether `rel` (a path seen before) may still be there unseen: it, or
    /// a folder above it, could not be read. Its absence from `files` then
    /// says nothing; taking it for a deletion would unpublish it.
    pub fn may_hide(&self, rel: &str) -> bool {
        self.errors.iter().any(|(at, _)| {
            at == "."
                || rel
                    .strip_prefix(at.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
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
    let top = Folder {
        abs: canonical_root.clone(),
        rel: String::new(),
        key: canonical_root.clone(),
        link: false,
    };
    walk(&canonical_root, top, &mut listing);
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
    match std::fs::symlink_metadata(&abs) {
        Ok(meta) => match visit(&canonical_root, &abs, rel, meta) {
            // A link to a folder that a full scan lists under its own path
            // (the watch folder itself included): not listed again below
            // the link, as a full scan would not either.
            Seen::Folder(folder)
                if folder.link && listed_directly(&canonical_root, &folder.key) => {}
            Seen::Folder(folder) => walk(&canonical_root, folder, &mut listing),
            seen => seen.add_to(&mut listing),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => listing.errors.push((rel.to_string(), e.to_string())),
    }
    listing.files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(listing)
}

/// A folder to list.
#[derive(Debug)]
struct Folder {
    abs: PathBuf,
    /// Relative to the watch folder, `/`-separated (empty for the watch
    /// folder itself).
    rel: String,
    /// Where it really is: a folder reached twice is listed once.
    key: PathBuf,
    /// Reached through a symbolic link.
    link: bool,
}

/// What one directory entry turned out to be.
enum Seen {
    File(FileInfo),
    Folder(Folder),
    Ignored(String, &'static str),
    Error(String, String),
    /// Gone meanwhile, or a hidden folder (`.git`, `.Trash-1000`, ...): not
    /// ours to look into.
    Nothing,
}

impl Seen {
    /// Files, skips and errors go into the listing; folders are the
    /// caller's.
    fn add_to(self, out: &mut Listing) {
        match self {
            Seen::File(f) => out.files.push(f),
            Seen::Ignored(rel, why) => out.ignored.push((rel, why)),
            Seen::Error(rel, e) => out.errors.push((rel, e)),
            Seen::Folder(_) | Seen::Nothing => {}
        }
    }
}

/// Lists `top` and everything below it, one depth at a time: the folders
/// of a depth are read on all cores, then their entries are looked at
/// (one `statx` each, relative to the open folder) on all cores in slices,
/// so that both a tree of month folders and one flat folder of 100,000
/// files use every core.
fn walk(root: &Path, top: Folder, out: &mut Listing) {
    let mut visited = HashSet::from([root.to_path_buf(), top.key.clone()]);
    let mut level = vec![top];
    let mut links: Vec<Folder> = Vec::new();
    loop {
        while !level.is_empty() {
            let mut next = Vec::new();
            // An entry keeps its folder open: a bounded number at a time.
            for folders in level.chunks(FOLDERS_AT_ONCE) {
                next.extend(look_into(root, folders, out));
            }
            let (linked, mut real): (Vec<Folder>, Vec<Folder>) =
                next.into_iter().partition(|f| f.link);
            links.extend(linked);
            real.sort_by(|a, b| a.rel.cmp(&b.rel));
            real.retain(|f| visited.insert(f.key.clone()));
            level = real;
        }
        // Folders reached through links come last: a folder that can be
        // listed under its own path is listed there (its path may name its
        // language), whatever the order the folders happened to be read in;
        // a link adds only what no real path reaches.
        links.sort_by(|a, b| a.rel.cmp(&b.rel));
        links.retain(|f| visited.insert(f.key.clone()));
        if links.is_empty() {
            return;
        }
        level = std::mem::take(&mut links);
    }
}

/// Whether a full scan reaches the folder at `real` (a canonical path
/// inside `root`) by its own path: no hidden folder on the way.
fn listed_directly(root: &Path, real: &Path) -> bool {
    real.strip_prefix(root).is_ok_and(|rel| {
        rel.components()
            .all(|c| !c.as_os_str().as_encoded_bytes().starts_with(b"."))
    })
}

/// Folders listed at once by [`walk`]: each stays open until its entries
/// have been looked at (well under a default limit of 1,024 descriptors,
/// with connections and the state open too).
const FOLDERS_AT_ONCE: usize = 64;
/// Entries looked at by one thread in one go.
const ENTRIES_PER_JOB: usize = 512;

/// Lists `folders` into `out`; returns the folders found in them.
fn look_into(root: &Path, folders: &[Folder], out: &mut Listing) -> Vec<Folder> {
    // The names only: reading a folder does not stat its entries.
    let read = crate::parallel::map(folders, |f| {
        std::fs::read_dir(&f.abs).map(|d| d.collect::<Vec<_>>())
    });
    let mut entries: Vec<(&Folder, std::fs::DirEntry)> = Vec::new();
    for (folder, read) in folders.iter().zip(read) {
        match read {
            Ok(listed) => {
                for entry in listed {
                    match entry {
                        Ok(e) => entries.push((folder, e)),
                        Err(e) => out.errors.push((display_rel(&folder.rel), e.to_string())),
                    }
                }
            }
            // Removed since its parent was listed: nothing there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => out.errors.push((display_rel(&folder.rel), e.to_string())),
        }
    }
    let jobs: Vec<&[(&Folder, std::fs::DirEntry)]> = entries.chunks(ENTRIES_PER_JOB).collect();
    let seen = crate::parallel::map(&jobs, |job| {
        job.iter()
            .map(|(folder, entry)| look_at(root, folder, entry))
            .collect::<Vec<_>>()
    });
    let mut found = Vec::new();
    for seen in seen.into_iter().flatten() {
        match seen {
            Seen::Folder(f) => found.push(f),
            seen => seen.add_to(out),
        }
    }
    found
}

/// One entry of a listed folder.
fn look_at(root: &Path, folder: &Folder, entry: &std::fs::DirEntry) -> Seen {
    let name = entry.file_name();
    let Some(name) = name.to_str() else {
        let rel = format!("{}{}", prefix(&folder.rel), name.to_string_lossy());
        return Seen::Ignored(rel, "file name is not valid UTF-8");
    };
    let rel = format!("{}{name}", prefix(&folder.rel));
    // Read relative to the open folder (no walk of the whole path per
    // file), without following a link.
    match entry.metadata() {
        Ok(meta) => visit(root, &entry.path(), &rel, meta),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Seen::Nothing,
        Err(e) => Seen::Error(rel, e.to_string()),
    }
}

/// One entry, given its own (not followed) metadata.
fn visit(root: &Path, path: &Path, rel: &str, link_meta: std::fs::Metadata) -> Seen {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let link = link_meta.file_type().is_symlink();
    let meta = if link {
        // Dangling links (Emacs locks) and links leading out are skipped.
        let Ok(target) = path.canonicalize() else {
            return Seen::Ignored(rel.to_string(), "dangling symbolic link");
        };
        if !target.starts_with(root) {
            return Seen::Ignored(
                rel.to_string(),
                "symbolic link leading outside the watch folder",
            );
        }
        match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return Seen::Error(rel.to_string(), e.to_string()),
        }
    } else {
        link_meta
    };
    if meta.is_dir() {
        if name.starts_with('.') {
            return Seen::Nothing;
        }
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        return Seen::Folder(Folder {
            abs: path.to_path_buf(),
            rel: rel.to_string(),
            key,
            link,
        });
    }
    if !meta.is_file() {
        return Seen::Ignored(rel.to_string(), "not a regular file");
    }
    if let Some(reason) = ignore_reason(name) {
        return Seen::Ignored(rel.to_string(), reason);
    }
    Seen::File(FileInfo {
        rel: rel.to_string(),
        abs: path.to_path_buf(),
        size: meta.len(),
        mtime_ns: mtime_ns(&meta),
    })
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

    /// The relative paths of the files listed.
    fn rels(listing: io::Result<Listing>) -> Vec<String> {
        listing.unwrap().files.into_iter().map(|f| f.rel).collect()
    }

    #[test]
    fn a_folder_reached_twice_is_listed_once_under_its_own_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("pl/2025")).unwrap();
        std::fs::write(root.join("pl/2025/a.md"), "a").unwrap();
        // Links that sort before the real folder, at a shallower depth and
        // at the same depth, and one back up to the watch folder (a loop).
        std::os::unix::fs::symlink(root.join("pl/2025"), root.join("latest")).unwrap();
        std::os::unix::fs::symlink(root.join("pl/2025"), root.join("pl/0now")).unwrap();
        std::os::unix::fs::symlink(root, root.join("pl/2025/up")).unwrap();
        // A folder only a link reaches (its real path is hidden).
        std::fs::create_dir_all(root.join(".archive/old")).unwrap();
        std::fs::write(root.join(".archive/old/b.md"), "b").unwrap();
        std::os::unix::fs::symlink(root.join(".archive/old"), root.join("old")).unwrap();
        assert_eq!(rels(scan(root)), ["old/b.md", "pl/2025/a.md"]);
        assert_eq!(rels(scan_path(root, "pl")), ["pl/2025/a.md"]);
        // An event naming a link to the watch folder lists nothing again.
        assert!(scan_path(root, "pl/2025/up").unwrap().files.is_empty());
        // An event naming a link lists what a full scan lists below it.
        assert!(scan_path(root, "latest").unwrap().files.is_empty());
        assert_eq!(rels(scan_path(root, "old")), ["old/b.md"]);
    }

    #[test]
    fn what_an_error_may_hide() {
        let mut l = Listing::default();
        assert!(!l.may_hide("pl/a.md"));
        l.errors
            .push(("pl/2025".into(), "Too many open files".into()));
        assert!(l.may_hide("pl/2025/a.md") && l.may_hide("pl/2025/05/b.md"));
        assert!(l.may_hide("pl/2025"));
        assert!(!l.may_hide("pl/20251/a.md") && !l.may_hide("pl/a.md"));
        l.errors = vec![(".".into(), "Permission denied".into())];
        assert!(l.may_hide("a.md"));
    }

    #[test]
    fn more_folders_than_are_listed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut expected = Vec::new();
        for i in 0..FOLDERS_AT_ONCE + 40 {
            let folder = format!("f{i:04}");
            std::fs::create_dir(root.join(&folder)).unwrap();
            for j in 0..3 {
                std::fs::write(root.join(format!("{folder}/{j}.txt")), "x").unwrap();
                expected.push(format!("{folder}/{j}.txt"));
            }
            std::fs::write(root.join(format!("{folder}/{i}.swp")), "x").unwrap();
        }
        expected.sort();
        let l = scan(root).unwrap();
        let rels: Vec<_> = l.files.iter().map(|f| f.rel.clone()).collect();
        assert_eq!(rels, expected);
        assert_eq!(l.ignored.len(), FOLDERS_AT_ONCE + 40);
        assert!(l.errors.is_empty());
        assert!(l
            .files
            .iter()
            .all(|f| f.size == 1 && f.abs.ends_with(&f.rel)));
    }
}
