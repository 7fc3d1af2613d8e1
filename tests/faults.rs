//! Faults on purpose: `kill -9` in the middle of a burst of files, and a
//! burst larger than the kernel's inotify event queue. Nothing may be lost,
//! duplicated or re-dated, and no feed on disk may ever be torn.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{wait_for, Site};

/// (id -> published) of every entry in the served combined Atom feed.
fn published_by_id(d: &support::Daemon) -> HashMap<String, String> {
    let r = d.get("/atom.xml");
    match feed_rs::parser::parse(&r.body[..]) {
        Ok(f) => f
            .entries
            .into_iter()
            .map(|e| {
                (
                    e.id,
                    e.published.map(|p| p.to_rfc3339()).unwrap_or_default(),
                )
            })
            .collect(),
        Err(_) => HashMap::new(),
    }
}

fn drop_file(site: &Site, staging: &std::path::Path, name: &str, i: usize) {
    let tmp = staging.join(name);
    std::fs::write(
        &tmp,
        format!("---\ntitle: Burst {i}\nlang: en\n---\nAnnouncement number {i}.\n"),
    )
    .unwrap();
    std::fs::rename(&tmp, site.watch().join(name)).unwrap();
}

#[test]
fn kill_9_mid_burst_loses_and_duplicates_nothing() {
    let site = Site::for_daemon("[feeds]\nmax_entries = 100000\n");
    let staging = site.path().join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    for i in 0..200 {
        site.put(
            &format!("before-{i:04}.md"),
            format!("---\ntitle: Before {i}\nlang: en\n---\nOld {i}.\n"),
        );
    }
    let mut d = site.serve();
    let before = wait_for(Duration::from_secs(60), || {
        let m = published_by_id(&d);
        (m.len() == 200).then_some(m)
    })
    .expect("200 entries before the burst");

    // The feeds folder holds the 200 before the burst begins.
    wait_for(Duration::from_secs(60), || {
        let bytes = std::fs::read(site.feeds().join("atom.xml")).ok()?;
        let feed = feed_rs::parser::parse(&bytes[..]).ok()?;
        (feed.entries.len() == 200).then_some(())
    })
    .expect("the 200 on disk");
    // A reader parsing every feed on disk during the whole run.
    let stop = Arc::new(AtomicBool::new(false));
    let torn = Arc::new(AtomicUsize::new(0));
    let reads = Arc::new(AtomicUsize::new(0));
    let reader = {
        let (stop, torn, reads, feeds) = (stop.clone(), torn.clone(), reads.clone(), site.feeds());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for f in ["atom.xml", "rss.xml", "en/atom.xml", "en/rss.xml"] {
                    if let Ok(bytes) = std::fs::read(feeds.join(f)) {
                        reads.fetch_add(1, Ordering::Relaxed);
                        if feed_rs::parser::parse(&bytes[..]).is_err() {
                            torn.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        })
    };

    // 3,000 files: the first half while herald runs, kill -9 in the middle,
    // the rest while it is down.
    let total = 3000;
    for i in 0..total / 2 {
        drop_file(&site, &staging, &format!("burst-{i:05}.md"), i);
    }
    d.child.kill().unwrap(); // SIGKILL
    let _ = d.child.wait();
    for i in total / 2..total {
        drop_file(&site, &staging, &format!("burst-{i:05}.md"), i);
    }
    // What a kill in the middle of staging a write leaves.
    let litter = [
        site.feeds().join(".herald-k1LLd.tmp"),
        site.feeds().join("en/.herald-k2LLd.tmp"),
    ];
    for f in &litter {
        std::fs::write(f, "<half a feed").unwrap();
    }
    let started = Instant::now();
    let d = site.serve();
    let after = wait_for(Duration::from_secs(240), || {
        let m = published_by_id(&d);
        (m.len() >= 200 + total).then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "only {} of {} entries after restart",
            published_by_id(&d).len(),
            200 + total
        )
    });
    println!(
        "restart to all {} entries: {:?}",
        after.len(),
        started.elapsed()
    );
    // ... and the disk catches up with all of them.
    wait_for(Duration::from_secs(240), || {
        let bytes = std::fs::read(site.feeds().join("atom.xml")).ok()?;
        let feed = feed_rs::parser::parse(&bytes[..]).ok()?;
        (feed.entries.len() == 200 + total).then_some(())
    })
    .expect("all entries on disk too");
    wait_for(Duration::from_secs(240), || {
        litter.iter().all(|f| !f.exists()).then_some(())
    })
    .expect("the temporary files of the killed run swept away");
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();

    let feed = feed_rs::parser::parse(&d.get("/atom.xml").body[..]).unwrap();
    let ids: Vec<&String> = feed.entries.iter().map(|e| &e.id).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 200 + total, "exactly once each");
    assert_eq!(unique.len(), ids.len(), "no duplicates");
    for (id, published) in &before {
        assert_eq!(
            after.get(id),
            Some(published),
            "{id}: id and published date survive the crash"
        );
    }
    assert!(reads.load(Ordering::Relaxed) > 0);
    assert_eq!(
        torn.load(Ordering::Relaxed),
        0,
        "a reader saw a torn feed on disk"
    );
}

#[test]
fn twenty_thousand_files_at_once_all_appear() {
    let site = Site::for_daemon("[feeds]\nmax_entries = 100000\n");
    let d = site.serve();
    let n = 20_000;
    let started = Instant::now();
    let ids = drop_all_and_wait(&site, &d, n, Duration::from_secs(400), |i| {
        (
            format!("f{i:05}.md"),
            format!("---\ntitle: File {i}\nlang: en\n---\nText {i}.\n"),
        )
    });
    println!("{n} files visible after {:?}", started.elapsed());
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), n);
    assert_eq!(ids.len(), n);
}

#[test]
fn watch_folder_moved_away_and_back() {
    let site = Site::for_daemon("");
    site.put("a.txt", "First notice\n\nText one.\n");
    site.put("b.txt", "Second notice\n\nText two.\n");
    let d = site.serve();
    wait_for(Duration::from_secs(30), || {
        (support::feed_ids(&d.get("/atom.xml")).len() == 2).then_some(())
    })
    .expect("two entries");
    // The folder disappears (unmounted, renamed): keep serving, say so.
    let away = site.path().join("watch-away");
    std::fs::rename(site.watch(), &away).unwrap();
    wait_for(Duration::from_secs(30), || {
        d.logs()
            .iter()
            .any(|l| l.contains("watch folder") && (l.contains("missing") || l.contains("cannot")))
            .then_some(())
    })
    .unwrap_or_else(|| panic!("a log line says the folder is missing: {:#?}", d.logs()));
    assert_eq!(
        support::feed_ids(&d.get("/atom.xml")).len(),
        2,
        "nothing unpublished because the folder vanished"
    );
    // It comes back with one more file: herald resumes.
    std::fs::rename(&away, site.watch()).unwrap();
    site.put("c.txt", "Third notice\n\nText three.\n");
    let titles = wait_for(Duration::from_secs(30), || {
        let t = support::feed_titles(&d.get("/atom.xml"));
        (t.len() == 3).then_some(t)
    })
    .expect("resumed");
    assert!(titles.contains(&"Third notice".to_string()));
}

#[test]
fn state_folder_deleted_or_garbage_rebuilds_with_the_same_ids() {
    let site = Site::new("");
    site.put("a.txt", "First notice\n\nText one.\n");
    site.put(
        "b.md",
        "---\ntitle: Dated\ndate: 2025-01-02\n---\nText two.\n",
    );
    site.build();
    let before = site.check_json();
    // Deleted: rebuilt from the files; ids (path + first-run date) and dates
    // (front matter, else modification time) come out the same the same day.
    std::fs::remove_dir_all(site.path().join("state")).unwrap();
    site.build();
    let after = site.check_json();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(
            (&b["id"], &b["published"]),
            (&a["id"], &a["published"]),
            "{}",
            b["path"]
        );
    }
    // Garbage: moved aside with a warning naming it, then rebuilt.
    std::fs::write(site.path().join("state/herald.db"), vec![0xAB; 10_000]).unwrap();
    let _ = std::fs::remove_file(site.path().join("state/herald.db-wal"));
    let out = site.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damaged") && stderr.contains("moved"),
        "{stderr}"
    );
    assert_eq!(site.parse_feed("atom.xml").entries.len(), 2);
    assert!(std::fs::read_dir(site.path().join("state"))
        .unwrap()
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("herald.db.damaged-")));
}

/// Writes `n` files at once (name and content from `file`) and waits until
/// the feed holds at least `n` entries; returns their ids.
fn drop_all_and_wait(
    site: &Site,
    d: &support::Daemon,
    n: usize,
    deadline: Duration,
    file: impl Fn(usize) -> (String, String),
) -> Vec<String> {
    for i in 0..n {
        let (name, text) = file(i);
        std::fs::write(site.watch().join(name), text).unwrap();
    }
    wait_for(deadline, || {
        let ids = support::feed_ids(&d.get("/atom.xml"));
        (ids.len() >= n).then_some(ids)
    })
    .unwrap_or_else(|| {
        panic!(
            "only {} of {n} appeared",
            support::feed_ids(&d.get("/atom.xml")).len()
        )
    })
}

/// Restores a `/proc/sys` value when dropped (also when the test fails).
struct Knob {
    path: &'static str,
    old: String,
}

impl Drop for Knob {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path, self.old.trim());
    }
}

/// The kernel's inotify queue made to overflow for real: the daemon's
/// watcher is created while `max_queued_events` is 32 (root only; the
/// value is restored as soon as the daemon is up, and an inotify instance
/// keeps the limit it was created with). The files must all arrive through
/// the rescan that the overflow triggers.
#[test]
fn event_queue_overflow_is_caught_by_a_rescan() {
    const KNOB: &str = "/proc/sys/fs/inotify/max_queued_events";
    let Ok(old) = std::fs::read_to_string(KNOB) else {
        eprintln!("skipped: {KNOB} cannot be read");
        return;
    };
    if std::fs::write(KNOB, "32").is_err() {
        eprintln!("skipped: {KNOB} cannot be written (not root)");
        return;
    }
    let knob = Knob { path: KNOB, old };
    let site = Site::for_daemon("[feeds]\nmax_entries = 100000\n");
    let d = site.serve();
    drop(knob);
    let n = 600;
    let ids = drop_all_and_wait(&site, &d, n, Duration::from_secs(120), |i| {
        (
            format!("q{i:04}.txt"),
            format!("Queue test {i}\n\nText {i}.\n"),
        )
    });
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), n);
    assert!(
        d.logs().iter().any(|l| l.contains("overflowed")),
        "the queue overflowed and said so: {:#?}",
        d.logs()
    );
}
