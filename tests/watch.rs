//! `herald serve` reacting to the watch folder: every way a file can arrive,
//! change or leave, checked over HTTP with an independent feed parser.

mod support;

use std::io::Write;
use std::time::Duration;

use support::{feed_ids, feed_titles, wait_for, Daemon, Site};

const DEADLINE: Duration = Duration::from_secs(30);

fn started() -> (Site, Daemon) {
    let site = Site::for_daemon("");
    site.put(
        "existing.txt",
        "Existing announcement\n\nIt was there before the daemon started.\n",
    );
    let d = site.serve();
    (site, d)
}

/// Waits until the combined Atom feed satisfies `f`.
fn wait_feed(d: &Daemon, what: &str, f: impl Fn(&[String]) -> bool) -> Vec<String> {
    wait_for(DEADLINE, || {
        let titles = feed_titles(&d.get("/atom.xml"));
        f(&titles).then_some(titles)
    })
    .unwrap_or_else(|| {
        panic!(
            "timed out waiting for: {what}; feed has {:?}",
            feed_titles(&d.get("/atom.xml"))
        )
    })
}

fn count(titles: &[String], title: &str) -> usize {
    titles.iter().filter(|t| *t == title).count()
}

#[test]
fn file_renamed_into_the_folder_appears_once() {
    let (site, d) = started();
    let staging = site.path().join("staging.txt");
    std::fs::write(&staging, "Dropped by rename\n\nBody of the dropped file.\n").unwrap();
    std::fs::rename(&staging, site.watch().join("dropped.txt")).unwrap();
    let titles = wait_feed(&d, "renamed-in file", |t| {
        count(t, "Dropped by rename") == 1
    });
    assert_eq!(count(&titles, "Existing announcement"), 1);
    // On disk too (written just after memory), for a plain web server.
    wait_for(DEADLINE, || {
        let on_disk = std::fs::read_to_string(site.feeds().join("atom.xml")).ok()?;
        on_disk.contains("Dropped by rename").then_some(())
    })
    .expect("feeds folder updated");
}

#[test]
fn slow_chunked_write_is_published_whole() {
    let (site, d) = started();
    let mut f = std::fs::File::create(site.watch().join("slow.txt")).unwrap();
    let body = "Slowly written notice\n\nThe first part of the body. The second part of the body. The very last words arrive late.\n";
    for chunk in body.as_bytes().chunks(12) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    drop(f);
    wait_for(DEADLINE, || {
        let r = d.get("/atom.xml");
        let feed = feed_rs::parser::parse(&r.body[..]).ok()?;
        let e = feed.entries.iter().find(|e| {
            e.title
                .as_ref()
                .is_some_and(|t| t.content == "Slowly written notice")
        })?;
        e.content
            .as_ref()?
            .body
            .as_ref()?
            .contains("arrive late.")
            .then_some(())
    })
    .expect("whole file published");
    assert_eq!(
        count(&feed_titles(&d.get("/atom.xml")), "Slowly written notice"),
        1
    );
}

#[test]
fn vim_style_save_keeps_one_entry_and_its_id() {
    let (site, d) = started();
    let w = site.watch();
    std::fs::write(
        w.join("notes.txt"),
        "Council notes\n\nFirst version of the notes.\n",
    )
    .unwrap();
    wait_feed(&d, "first version", |t| count(t, "Council notes") == 1);
    let id = feed_ids(&d.get("/atom.xml"))
        .into_iter()
        .find(|i| i.contains("notes.txt"))
        .unwrap();
    // vim: probe file 4913, swap file, backup by rename, write anew, clean up.
    std::fs::write(w.join("4913"), "").unwrap();
    std::fs::remove_file(w.join("4913")).unwrap();
    std::fs::write(w.join(".notes.txt.swp"), "swap").unwrap();
    std::fs::rename(w.join("notes.txt"), w.join("notes.txt~")).unwrap();
    std::fs::write(
        w.join("notes.txt"),
        "Council notes, revised\n\nSecond version of the notes.\n",
    )
    .unwrap();
    std::fs::remove_file(w.join("notes.txt~")).unwrap();
    std::fs::remove_file(w.join(".notes.txt.swp")).unwrap();
    let titles = wait_feed(&d, "revised version", |t| {
        count(t, "Council notes, revised") == 1
    });
    assert_eq!(count(&titles, "Council notes"), 0);
    let ids = feed_ids(&d.get("/atom.xml"));
    assert!(
        ids.contains(&id),
        "id kept across the save: {id} not in {ids:?}"
    );
    assert!(titles.iter().all(|t| !t.contains("swap")));
}

#[test]
fn rsync_temp_name_then_rename() {
    let (site, d) = started();
    let w = site.watch();
    std::fs::create_dir_all(w.join("pl")).unwrap();
    std::fs::write(
        w.join("pl/.komunikat.txt.Xa81Qz"),
        "Komunikat o remoncie\n\nUlica będzie zamknięta w sobotę.\n",
    )
    .unwrap();
    std::fs::rename(
        w.join("pl/.komunikat.txt.Xa81Qz"),
        w.join("pl/komunikat.txt"),
    )
    .unwrap();
    let titles = wait_feed(&d, "rsync file", |t| count(t, "Komunikat o remoncie") == 1);
    assert_eq!(titles.len(), 2);
    assert_eq!(
        feed_titles(&d.get("/pl/atom.xml")),
        ["Komunikat o remoncie"]
    );
}

#[test]
fn burst_of_two_thousand_files_all_appear() {
    let site = Site::for_daemon("[feeds]\nmax_entries = 5000\n");
    let d = site.serve();
    let w = site.watch();
    for i in 0..2000 {
        std::fs::write(
            w.join(format!("n{i:04}.md")),
            format!("---\ntitle: Burst {i}\nlang: en\n---\nBody {i}.\n"),
        )
        .unwrap();
    }
    let ids = wait_for(Duration::from_secs(120), || {
        let ids = feed_ids(&d.get("/atom.xml"));
        (ids.len() >= 2000).then_some(ids)
    })
    .unwrap_or_else(|| {
        panic!(
            "only {} of 2000 appeared",
            feed_ids(&d.get("/atom.xml")).len()
        )
    });
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 2000, "no duplicates");
}

#[test]
fn deletion_and_folder_moves() {
    let (site, d) = started();
    let w = site.watch();
    // A folder full of files moved in at once (notify reports only the folder).
    let outside = site.path().join("incoming");
    std::fs::create_dir_all(outside.join("de/sub")).unwrap();
    std::fs::write(
        outside.join("de/sub/a.txt"),
        "Straßenfest am Samstag\n\nDie Straße ist gesperrt.\n",
    )
    .unwrap();
    std::fs::write(
        outside.join("de/b.txt"),
        "Neue Buslinie\n\nAb Montag fährt die Linie 7.\n",
    )
    .unwrap();
    std::fs::rename(outside.join("de"), w.join("de")).unwrap();
    wait_feed(&d, "moved-in folder", |t| {
        count(t, "Straßenfest am Samstag") == 1 && count(t, "Neue Buslinie") == 1
    });
    // Deleting a file removes its entry.
    std::fs::remove_file(w.join("existing.txt")).unwrap();
    wait_feed(&d, "deletion", |t| count(t, "Existing announcement") == 0);
    // Moving the folder out removes its entries.
    std::fs::rename(w.join("de"), site.path().join("gone")).unwrap();
    let titles = wait_feed(&d, "folder moved out", |t| t.is_empty());
    assert!(titles.is_empty());
    assert_eq!(
        d.get("/de/rss.xml").status,
        404,
        "empty language feed is gone"
    );
    assert_eq!(d.get("/de/").status, 404, "and its index");
    // ... but its Atom feed announces the withdrawals (RFC 6721).
    let atom = d.get("/de/atom.xml");
    assert_eq!(atom.status, 200);
    assert!(feed_ids(&atom).is_empty());
    assert_eq!(
        atom.text().matches("<at:deleted-entry ").count(),
        2,
        "{}",
        atom.text()
    );
}

#[test]
fn links_leading_outside_are_never_published() {
    let (site, d) = started();
    let secret = site.path().join("secret.txt");
    std::fs::write(&secret, "Top secret\n\nNot for publication.\n").unwrap();
    std::os::unix::fs::symlink(&secret, site.watch().join("leak.txt")).unwrap();
    std::fs::write(
        site.watch().join("marker.txt"),
        "Marker\n\nPublished after the link.\n",
    )
    .unwrap();
    let titles = wait_feed(&d, "marker", |t| count(t, "Marker") == 1);
    assert_eq!(count(&titles, "Top secret"), 0);
}

#[test]
fn a_broken_edit_keeps_the_last_good_version_with_one_warning() {
    let (site, d) = started();
    let w = site.watch();
    std::fs::write(w.join("x.md"), "---\ntitle: Good version\n---\nText.\n").unwrap();
    wait_feed(&d, "good version", |t| count(t, "Good version") == 1);
    std::fs::write(w.join("x.md"), "---\ntitle: [broken\n---\nText.\n").unwrap();
    wait_for(DEADLINE, || {
        d.logs()
            .iter()
            .any(|l| l.contains("x.md") && l.contains("rejected"))
            .then_some(())
    })
    .expect("a warning naming the file");
    std::fs::write(w.join("later.txt"), "Later\n\nAnother file.\n").unwrap();
    let titles = wait_feed(&d, "later", |t| count(t, "Later") == 1);
    assert_eq!(
        count(&titles, "Good version"),
        1,
        "last good version still published"
    );
    let warnings = d.logs().iter().filter(|l| l.contains("x.md")).count();
    assert_eq!(warnings, 1);
}

#[test]
fn polling_mode_for_network_filesystems() {
    let site = Site::for_daemon("");
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace("[watch]\n", "[watch]\npoll_interval_ms = 200\n"),
    )
    .unwrap();
    let d = site.serve();
    site.put("polled.txt", "Found by polling\n\nNo inotify needed.\n");
    wait_feed(&d, "polled file", |t| count(t, "Found by polling") == 1);
    std::fs::remove_file(site.watch().join("polled.txt")).unwrap();
    wait_feed(&d, "polled deletion", |t| t.is_empty());
}

#[test]
fn feeds_folder_unwritable_keeps_serving_and_catches_up() {
    let (site, d) = started();
    // The feeds folder is written after the daemon is ready: wait for it.
    wait_for(DEADLINE, || {
        site.feeds().join("atom.xml").is_file().then_some(())
    })
    .expect("the first write of the feeds folder");
    // Replace the feeds folder by a plain file: every write now fails (the
    // tests run as root, for whom permissions would not stop a write).
    let aside = site.path().join("feeds-aside");
    std::fs::rename(site.feeds(), &aside).unwrap();
    std::fs::write(site.feeds(), "not a folder").unwrap();
    site.put(
        "during.txt",
        "Published while the disk is broken\n\nServed from memory.\n",
    );
    wait_feed(&d, "served from memory", |t| {
        count(t, "Published while the disk is broken") == 1
    });
    let health = wait_for(DEADLINE, || {
        let h = d.get("/healthz");
        h.text().starts_with("degraded").then_some(h)
    })
    .expect("health says degraded");
    assert_eq!(health.status, 200);
    assert!(d
        .get("/metrics")
        .text()
        .contains("herald_feeds_folder_writable 0"));
    assert!(d
        .logs()
        .iter()
        .any(|l| l.contains("cannot write the feeds folder")));
    // Space returns: the folder catches up with everything, by itself.
    std::fs::remove_file(site.feeds()).unwrap();
    wait_for(Duration::from_secs(60), || {
        let atom = std::fs::read_to_string(site.feeds().join("atom.xml")).ok()?;
        (atom.contains("Published while the disk is broken")
            && site.feeds().join("en/during.html").exists())
        .then_some(())
    })
    .expect("feeds folder caught up");
    assert!(
        site.feeds().join("en/existing.html").exists(),
        "earlier pages rewritten too"
    );
    // Health turns back to ok once the whole catch-up write has finished,
    // which may be a moment after the files above are in place.
    wait_for(DEADLINE, || {
        (d.get("/healthz").text().trim() == "ok").then_some(())
    })
    .expect("health back to ok after catching up");
    // Said once, when it is true (not at each retry of the failed write).
    let said = d
        .logs()
        .iter()
        .filter(|l| l.contains("writable again"))
        .count();
    assert_eq!(said, 1);
}
