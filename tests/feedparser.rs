//! Python's feedparser (Debian's python3-feedparser, as aggregators use it)
//! reads every feed herald writes for the shared corpus without `bozo`, and
//! sees each entry's language.

mod support;

use std::process::Command;

use support::Site;

const SCRIPT: &str = r#"
import sys, glob, feedparser
bad = []
for path in sorted(glob.glob(sys.argv[1] + '/**/*.xml', recursive=True)):
    d = feedparser.parse(path)
    if d.bozo:
        bad.append(f"{path}: bozo {d.bozo_exception!r}")
    for e in d.entries:
        lang = e.get('language') or (e.get('title_detail') or {}).get('language')
        if not (e.get('title') and e.get('id') and e.get('link') and lang):
            bad.append(f"{path}: entry {e.get('id')!r} lacks title/id/link/language")
print("\n".join(bad))
sys.exit(1 if bad else 0)
"#;

#[test]
fn feedparser_reads_every_feed_without_bozo() {
    let works = |p: &str| {
        Command::new(p)
            .args(["-c", "import feedparser"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    support::ensure_debian_package("python3-feedparser", || works("/usr/bin/python3"));
    let python = ["/usr/bin/python3", "python3"]
        .into_iter()
        .find(|p| works(p))
        .expect("python3 with feedparser is needed: apt-get install -y python3-feedparser (the test installs it itself when run as root)");
    let site = Site::new("").with_corpus();
    site.build();
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .arg(site.feeds())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
