//! Shared helpers for the integration tests: temporary sites, running the
//! real binary, reading what it wrote with independent parsers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// A temporary site: `watch/`, `feeds/`, `state/` and a `config.toml`.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(extra_config: &str) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("watch")).expect("watch dir");
        let config = format!(
            "[site]\ntitle = \"Test city\"\nbase_url = \"https://news.example.org/\"\n{extra_config}"
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        Site { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn watch(&self) -> PathBuf {
        self.dir.path().join("watch")
    }
    pub fn feeds(&self) -> PathBuf {
        self.dir.path().join("feeds")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Writes a file below `watch/`, creating folders.
    pub fn put(&self, rel: &str, bytes: impl AsRef<[u8]>) {
        let p = self.watch().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }

    /// Copies the shared corpus (and the seed) into `watch/`.
    pub fn with_corpus(self) -> Site {
        for sub in ["announcements", "edge", "ignore"] {
            copy_dir(&corpus_dir().join(sub), &self.watch().join(sub));
        }
        copy_dir(&shared_dir().join("seeds"), &self.watch().join("seeds"));
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run herald")
    }

    /// Runs `herald build` and asserts it succeeded.
    pub fn build(&self) -> Output {
        let out = self.run(&["build"]);
        assert!(
            out.status.success(),
            "build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `herald check --json`, parsed.
    pub fn check_json(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["check", "--json"]);
        assert!(
            out.status.success(),
            "check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("check --json prints JSON")
    }

    pub fn read_feed(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.feeds().join(rel)).unwrap_or_else(|e| panic!("feeds/{rel}: {e}"))
    }

    /// A feed parsed by feed-rs (an independent parser).
    pub fn parse_feed(&self, rel: &str) -> feed_rs::model::Feed {
        feed_rs::parser::parse(&self.read_feed(rel)[..])
            .unwrap_or_else(|e| panic!("feeds/{rel}: {e}"))
    }

    /// Every file below `feeds/` with its bytes, sorted by path.
    pub fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        walk(&self.feeds(), &self.feeds(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
}

pub fn shared_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared")
}

pub fn corpus_dir() -> PathBuf {
    shared_dir().join("corpus")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from)
        .unwrap_or_else(|e| panic!("{}: {e}", from.display()))
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

/// Undoes HTML escaping (the entities herald and ammonia write).
pub fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// Whether a possibly shortened title matches the expected one.
pub fn title_matches(got: &str, expected: &str) -> bool {
    got == expected
        || (got.ends_with('…') && expected.starts_with(got.trim_end_matches('…').trim_end()))
}
