//! `herald build` and `herald check` on the shared corpus and on fixtures:
//! every file against `expected.json`, read back with independent parsers.

mod support;

use std::collections::HashMap;

use support::{html_unescape, title_matches, Site};

fn expected() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(support::corpus_dir().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn corpus_matches_expected() {
    let site = Site::new("").with_corpus();
    let out = site.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rows = site.check_json();
    let by_path: HashMap<String, &serde_json::Value> = rows
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_string(), r))
        .collect();

    let atom = site.parse_feed("atom.xml");
    let rss = site.parse_feed("rss.xml");
    let atom_typed = atom_syndication::Feed::read_from(&site.read_feed("atom.xml")[..]).unwrap();
    let rss_typed = rss::Channel::read_from(&site.read_feed("rss.xml")[..]).unwrap();
    let mut failures = Vec::new();

    for (path, exp) in expected() {
        let Some(row) = by_path.get(&path) else {
            failures.push(format!("{path}: not reported by check"));
            continue;
        };
        if exp.get("ignore").is_some() {
            if row["status"] != "ignored" {
                failures.push(format!("{path}: should be ignored, is {}", row["status"]));
            }
            continue;
        }
        let lang = exp["lang"].as_str();
        let note = exp["note"].as_str().unwrap_or("");
        if row["status"] == "rejected" {
            // Nothing to publish, or the preferred "skip with a warning".
            let allowed = lang.is_none() || note.contains("Preferred: skip");
            if !allowed {
                failures.push(format!("{path}: rejected ({})", row["error"]));
            }
            let warnings = stderr.lines().filter(|l| l.contains(&path)).count();
            if warnings != 1 {
                failures.push(format!("{path}: {warnings} warning lines, want exactly 1"));
            }
            continue;
        }
        let Some(lang) = lang else {
            failures.push(format!("{path}: published but expected nothing"));
            continue;
        };
        if row["lang"] != lang {
            failures.push(format!("{path}: lang {} want {lang}", row["lang"]));
        }
        if exp["encoding"] != row["encoding"] {
            failures.push(format!(
                "{path}: encoding {} want {}",
                row["encoding"], exp["encoding"]
            ));
        }
        let title = row["title"].as_str().unwrap();
        match exp["title"].as_str() {
            Some(t) if !title_matches(title, t) => {
                failures.push(format!("{path}: title {title:?} want {t:?}"))
            }
            None if title.trim().is_empty() => {
                failures.push(format!("{path}: empty derived title"))
            }
            _ => {}
        }
        if let Some(p) = exp["published"].as_str() {
            let want = chrono::DateTime::parse_from_rfc3339(p).unwrap();
            let got =
                chrono::DateTime::parse_from_rfc3339(row["published"].as_str().unwrap()).unwrap();
            if want != got {
                failures.push(format!("{path}: published {got} want {want}"));
            }
        }
        let id = row["id"].as_str().unwrap();
        // Exactly one entry in each combined feed, and in its language's feeds.
        let in_atom: Vec<_> = atom.entries.iter().filter(|e| e.id == id).collect();
        let in_rss = rss.entries.iter().filter(|e| e.id == id).count();
        if in_atom.len() != 1 || in_rss != 1 {
            failures.push(format!(
                "{path}: {} atom / {in_rss} rss entries",
                in_atom.len()
            ));
            continue;
        }
        for file in ["atom.xml", "rss.xml"] {
            let feed = site.parse_feed(&format!("{lang}/{file}"));
            if feed.entries.iter().filter(|e| e.id == id).count() != 1 {
                failures.push(format!("{path}: not exactly once in {lang}/{file}"));
            }
        }
        let entry = in_atom[0];
        if entry.title.as_ref().map(|t| t.content.as_str()) != Some(title) {
            failures.push(format!("{path}: atom title differs from check's"));
        }
        let body = entry
            .content
            .as_ref()
            .and_then(|c| c.body.clone())
            .unwrap_or_default();
        let text = html_unescape(&body);
        for word in exp["must_contain"].as_array().unwrap() {
            let word = word.as_str().unwrap();
            if !text.contains(word) {
                failures.push(format!("{path}: content lacks {word:?}"));
            }
        }
        if body.contains('\u{0}') || body.to_lowercase().contains("<script") {
            failures.push(format!("{path}: unsafe content"));
        }
        // The entry's own language, in both formats.
        let typed = atom_typed.entries.iter().find(|e| e.id == id).unwrap();
        let xml_lang = typed.title.lang.as_deref().unwrap_or("");
        if xml_lang.split('-').next() != Some(lang) {
            failures.push(format!("{path}: atom xml:lang {xml_lang:?}"));
        }
        let item = rss_typed
            .items()
            .iter()
            .find(|i| i.guid().map(|g| g.value()) == Some(id))
            .unwrap();
        let dc = item
            .dublin_core_ext()
            .map(|d| d.languages().to_vec())
            .unwrap_or_default();
        if dc.len() != 1 || dc[0].split('-').next() != Some(lang) {
            failures.push(format!("{path}: dc:language {dc:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn seed_becomes_a_ukrainian_entry_with_rejoined_paragraphs() {
    let site = Site::new("");
    let seed = std::fs::read(support::shared_dir().join("seeds/000_25116ca3aa7398a5.txt")).unwrap();
    site.put("seed.txt", &seed);
    site.build();
    let feed = site.parse_feed("uk/atom.xml");
    assert_eq!(feed.entries.len(), 1);
    let e = &feed.entries[0];
    let title = &e.title.as_ref().unwrap().content;
    let first_sentence = "15 жовтня 2025 року Краків офіційно приєднався до асоціації Eurocities – найбільшої європейської мережі, що об'єднує міста, які співпрацюють в галузі сталого розвитку, інновацій та підвищення якості життя мешканців.";
    assert!(title_matches(title, first_sentence), "{title}");
    assert!(
        title.chars().count() < first_sentence.chars().count(),
        "long first sentence is shortened"
    );
    let body = html_unescape(e.content.as_ref().unwrap().body.as_deref().unwrap());
    assert!(
        body.contains("європейської мережі"),
        "wrapped lines re-joined with a space"
    );
    assert_eq!(body.matches("<p>").count(), 7, "seven paragraphs: {body}");
    assert!(!body.contains('\u{a0}'), "no stray no-break space");
    assert!(!body.contains("<p> </p>") && !body.contains("<p></p>"));
}

#[test]
fn second_build_is_byte_identical() {
    let site = Site::new("").with_corpus();
    site.build();
    let first = site.snapshot();
    assert!(first.len() > 20);
    site.build();
    assert_eq!(first, site.snapshot());
}

fn row_for<'a>(rows: &'a [serde_json::Value], path: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in check output"))
}

#[test]
fn ids_and_dates_survive_restart_edit_rename_and_delete() {
    let site = Site::new("");
    site.put(
        "a/tram.txt",
        "Tram line 4 diverted\n\nThe tram runs via Main Street until Friday.\n",
    );
    site.put(
        "b.md",
        "---\ntitle: Fixed date\ndate: 2025-01-02\n---\nBody text of the second file.\n",
    );
    site.build();
    let before = site.check_json();
    let tram = row_for(&before, "a/tram.txt").clone();
    let id = tram["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("tag:news.example.org,"), "{id}");

    // Restart with no change: nothing changes.
    site.build();
    assert_eq!(row_for(&site.check_json(), "a/tram.txt"), &tram);

    // Edit: same id and published; updated moves (or stays if within the same second).
    site.put(
        "a/tram.txt",
        "Tram line 4 diverted\n\nThe tram runs via Main Street until Monday.\n",
    );
    site.build();
    let edited = row_for(&site.check_json(), "a/tram.txt").clone();
    assert_eq!(edited["id"], tram["id"]);
    assert_eq!(edited["published"], tram["published"]);
    assert!(edited["updated"].as_str() >= tram["updated"].as_str());

    // Rename without a content change: same id and dates.
    std::fs::rename(
        site.watch().join("a/tram.txt"),
        site.watch().join("tram-renamed.txt"),
    )
    .unwrap();
    site.build();
    let renamed = row_for(&site.check_json(), "tram-renamed.txt").clone();
    assert_eq!(renamed["id"], tram["id"]);
    assert_eq!(renamed["published"], edited["published"]);
    assert_eq!(renamed["updated"], edited["updated"]);
    let feed = site.parse_feed("atom.xml");
    assert_eq!(feed.entries.iter().filter(|e| e.id == id).count(), 1);

    // base_url changes later: ids stay.
    let config = std::fs::read_to_string(site.config())
        .unwrap()
        .replace("news.example.org", "other.example.net");
    std::fs::write(site.config(), config).unwrap();
    site.build();
    assert_eq!(
        row_for(&site.check_json(), "tram-renamed.txt")["id"],
        tram["id"]
    );

    // Delete: the entry leaves the feeds; bringing the file back restores its id.
    let bytes = std::fs::read(site.watch().join("tram-renamed.txt")).unwrap();
    std::fs::remove_file(site.watch().join("tram-renamed.txt")).unwrap();
    site.build();
    assert!(site
        .parse_feed("atom.xml")
        .entries
        .iter()
        .all(|e| e.id != id));
    site.put("tram-renamed.txt", &bytes);
    site.build();
    assert_eq!(
        row_for(&site.check_json(), "tram-renamed.txt")["id"],
        tram["id"]
    );

    // Front-matter date wins and survives.
    let b = row_for(&site.check_json(), "b.md").clone();
    assert_eq!(b["published"], "2025-01-02T00:00:00+00:00");
}

#[test]
fn broken_edit_keeps_the_last_good_version() {
    let site = Site::new("");
    site.put("x.md", "---\ntitle: Good version\n---\nText.\n");
    site.build();
    site.put("x.md", "---\ntitle: [broken\n---\nText.\n");
    let out = site.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("x.md")).count(),
        1,
        "{stderr}"
    );
    let feed = site.parse_feed("atom.xml");
    assert_eq!(
        feed.entries[0].title.as_ref().unwrap().content,
        "Good version"
    );
    // No new warning while the file stays as it is.
    let out = site.build();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("x.md"));
}

#[test]
fn language_sources_and_configured_languages() {
    let site = Site::new("languages = [\"pl\", \"uk\"]\ndefault_language = \"pl\"\n");
    site.put(
        "pl/a.txt",
        "Short English text in the Polish folder about the tram timetable.\n",
    );
    site.put(
        "b.uk.txt",
        "Komunikat dla mieszkańców w sprawie rozkładu jazdy.\n",
    );
    site.put(
        "c.txt",
        "Rozkład jazdy tramwajów zmienia się od poniedziałku w całym mieście.\n",
    );
    site.put(
        "d.txt",
        "Трамваї курсуватимуть за новим розкладом з понеділка.\n",
    );
    site.put(
        "e.txt",
        "The tram timetable changes on Monday across the whole city.\n",
    );
    site.build();
    let rows = site.check_json();
    let lang = |p: &str| {
        let r = row_for(&rows, p);
        (
            r["lang"].as_str().unwrap().to_string(),
            r["lang_source"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(lang("pl/a.txt"), ("pl".into(), "folder".into()));
    assert_eq!(lang("b.uk.txt"), ("uk".into(), "file-name".into()));
    assert_eq!(lang("c.txt"), ("pl".into(), "detected".into()));
    assert_eq!(lang("d.txt").0, "uk");
    // English is not among the configured languages: never published as en.
    assert_ne!(lang("e.txt").0, "en");
}

#[test]
fn invalid_config_exits_78_naming_the_key() {
    let site = Site::new("");
    std::fs::write(
        site.config(),
        "[site]\ntitle = \"x\"\n[feeds]\nmax_entrys = 5\n",
    )
    .unwrap();
    for cmd in [&["build"][..], &["check"], &["check", "--json"]] {
        let out = site.run(cmd);
        assert_eq!(out.status.code(), Some(78), "{cmd:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("max_entrys") && stderr.contains("line 4"),
            "{stderr}"
        );
    }
    // --config accepted after the subcommand too.
    let out = std::process::Command::new(support::BIN)
        .args(["check", "--config"])
        .arg(site.config())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn max_entries_limits_every_feed() {
    let site = Site::new("[feeds]\nmax_entries = 3\n");
    for i in 0..5 {
        site.put(
            &format!("n{i}.md"),
            format!(
                "---\ntitle: Entry {i}\ndate: 2025-01-0{}\nlang: en\n---\nText {i}.\n",
                i + 1
            ),
        );
    }
    site.build();
    let feed = site.parse_feed("atom.xml");
    let titles: Vec<_> = feed
        .entries
        .iter()
        .map(|e| e.title.as_ref().unwrap().content.clone())
        .collect();
    assert_eq!(titles, ["Entry 4", "Entry 3", "Entry 2"], "newest first");
    assert_eq!(site.parse_feed("en/rss.xml").entries.len(), 3);
    let updated = feed.updated.unwrap();
    assert_eq!(
        updated.to_rfc3339(),
        "2025-01-05T00:00:00+00:00",
        "feed updated = newest entry's"
    );
}

#[test]
fn a_front_matter_id_given_twice_in_one_run_stays_with_the_first_file() {
    // Two new files with the same front-matter id, in one chunk and 2,000
    // files apart: the first in path order keeps it, the other is rejected
    // naming it, by `check` (no state yet), by the build, and by `check`
    // against the state.
    let site = Site::new("[feeds]\nmax_entries = 5\n");
    let with_id = |title: &str, id: &str| {
        format!(
            "---\ntitle: {title}\ndate: 2025-03-02\nid: {id}\nlang: en\n---\nText of {title}.\n"
        )
    };
    site.put("a/near-1.md", with_id("Near first", "near"));
    site.put("a/near-2.md", with_id("Near second", "near"));
    site.put("b/far.md", with_id("Far first", "far"));
    for i in 0..2100 {
        site.put(
            &format!("m/f{i:04}.md"),
            format!("---\ntitle: Filler {i}\ndate: 2001-01-01\nlang: en\n---\nFiller text {i}.\n"),
        );
    }
    site.put("z/far.md", with_id("Far second", "far"));
    let verdicts = |rows: &[serde_json::Value]| {
        for (later, first) in [("a/near-2.md", "a/near-1.md"), ("z/far.md", "b/far.md")] {
            let row = row_for(rows, later);
            assert_eq!(row["status"], "rejected", "{row}");
            let error = row["error"].as_str().unwrap_or_default();
            assert!(
                error.contains("already used by") && error.ends_with(first),
                "{later}: {error}"
            );
            assert_eq!(row_for(rows, first)["status"], "published");
        }
        let published = rows.iter().filter(|r| r["status"] == "published").count();
        assert_eq!(published, 2102);
    };
    verdicts(&site.check_json());
    let out = site.build();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("published=2102 rejected=2"), "{log}");
    verdicts(&site.check_json());
    let titles: Vec<String> = site
        .parse_feed("atom.xml")
        .entries
        .iter()
        .filter_map(|e| e.title.as_ref().map(|t| t.content.clone()))
        .collect();
    assert!(titles.contains(&"Near first".to_string()), "{titles:?}");
    assert!(titles.contains(&"Far first".to_string()), "{titles:?}");
    assert!(!titles.iter().any(|t| t.ends_with("second")), "{titles:?}");
}

#[test]
fn check_sees_renames_as_the_next_build_will() {
    // `check` against a state: a file renamed (same bytes) and a file with
    // a front-matter id moved elsewhere keep their ids, as the build that
    // follows keeps them.
    let site = Site::new("");
    site.put(
        "plain.txt",
        "Tram 4 detour\n\nTrams run on a detour route this week.\n",
    );
    site.put(
        "withid.md",
        "---\ntitle: Council meeting\nid: council-7\nlang: en\n---\nThe council meets on Monday.\n",
    );
    site.build();
    let before = site.check_json();
    let id_of = |rows: &[serde_json::Value], path: &str| {
        row_for(rows, path)["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{path}: no id"))
            .to_string()
    };
    let (plain, withid) = (id_of(&before, "plain.txt"), id_of(&before, "withid.md"));
    std::fs::rename(
        site.watch().join("plain.txt"),
        site.watch().join("moved.txt"),
    )
    .unwrap();
    site.put(
        "sub/withid.md",
        "---\ntitle: Council meeting moved\nid: council-7\nlang: en\n---\nThe council meets on Tuesday.\n",
    );
    std::fs::remove_file(site.watch().join("withid.md")).unwrap();
    let checked = site.check_json();
    for (path, id) in [("moved.txt", &plain), ("sub/withid.md", &withid)] {
        assert_eq!(row_for(&checked, path)["status"], "published", "{path}");
        assert_eq!(&id_of(&checked, path), id, "{path} in check");
    }
    site.build();
    let built = site.check_json();
    assert_eq!(id_of(&built, "moved.txt"), plain);
    assert_eq!(id_of(&built, "sub/withid.md"), withid);
}

#[test]
fn ids_and_slugs_stay_unique_across_the_chunks_of_a_first_import() {
    // A first run is planned in chunks of 2,000 files; names that collide
    // must be told apart even when the second comes chunks later.
    let site = Site::new("[feeds]\nmax_entries = 5\n");
    site.put(
        "a/same.md",
        "---\ntitle: First same\ndate: 2025-03-02\nid: z/same.md\nlang: en\n---\nThe first file.\n",
    );
    for i in 0..2100 {
        site.put(
            &format!("m/f{i:04}.md"),
            format!("---\ntitle: Filler {i}\ndate: 2001-01-01\nlang: en\n---\nFiller text {i}.\n"),
        );
    }
    site.put(
        "z/same.md",
        "---\ntitle: Second same\ndate: 2025-03-01\nlang: en\n---\nThe second file.\n",
    );
    site.build();
    let rows = site.check_json();
    let first = row_for(&rows, "a/same.md")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let second = row_for(&rows, "z/same.md")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(first.ends_with("z/same.md"), "{first}");
    assert_eq!(
        second,
        format!("{first}~2"),
        "the path id was taken by a's front matter"
    );
    let mut ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!((ids.len(), n), (2102, 2102), "every id once");

    let feed = site.parse_feed("atom.xml");
    let link_of = |title: &str| {
        let e = feed
            .entries
            .iter()
            .find(|e| e.title.as_ref().is_some_and(|t| t.content == title))
            .unwrap_or_else(|| panic!("{title} not in the feed"));
        e.links[0].href.clone()
    };
    let (a, z) = (link_of("First same"), link_of("Second same"));
    assert_ne!(a, z, "two pages, two slugs");
    assert!(a.ends_with("/same.html") || a.ends_with("/same"), "{a}");
    assert!(z.contains("same-2"), "{z}");
}

/// Each entry of the site's Atom feed: id -> (xml:lang, published, updated).
fn atom_langs(site: &Site) -> HashMap<String, (String, String, String)> {
    let feed = atom_syndication::Feed::read_from(&site.read_feed("atom.xml")[..]).unwrap();
    feed.entries
        .iter()
        .map(|e| {
            (
                e.id.clone(),
                (
                    e.title.lang.clone().unwrap_or_default(),
                    e.published.map(|p| p.to_rfc3339()).unwrap_or_default(),
                    e.updated.to_rfc3339(),
                ),
            )
        })
        .collect()
}

#[test]
fn changed_reading_rules_reach_files_already_published() {
    let rules = |default: &str, max: u64| {
        format!("default_language = \"{default}\"\n[limits]\nmax_file_bytes = {max}\n")
    };
    let site = Site::new(&rules("en", 300));
    // Too few letters to detect: the default language.
    site.put("numbers.txt", "Nr 12 / 2025\n\n14:30 - 16:00\n");
    site.put(
        "english.txt",
        "The tram timetable changes on Monday across the whole city.\n",
    );
    let long = "Die Straßenbahn fährt ab Montag nach einem neuen Fahrplan. ".repeat(8);
    site.put("long.txt", &long);
    let out = site.build();
    assert!(String::from_utf8_lossy(&out.stderr).contains("long.txt"));
    let rows = site.check_json();
    let id = |p: &str| row_for(&rows, p)["id"].as_str().unwrap().to_string();
    let (numbers, english) = (id("numbers.txt"), id("english.txt"));
    assert_eq!(row_for(&rows, "long.txt")["status"], "rejected");
    let before = atom_langs(&site);
    assert_eq!(before[&numbers].0, "en");
    assert_eq!(before[&english].0, "en");
    assert_eq!(before.len(), 2);

    // The clerk's office sets another default and a larger limit.
    std::fs::write(
        site.config(),
        std::fs::read_to_string(site.config())
            .unwrap()
            .replace(&rules("en", 300), &rules("de", 1_000_000)),
    )
    .unwrap();
    let out = site.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("reading rules changed"), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.ends_with("republished=1")),
        "{stderr}"
    );
    let after = atom_langs(&site);
    // Same ids and dates; the language follows the new default.
    assert_eq!(after[&numbers].0, "de");
    assert_eq!(after[&numbers].1, before[&numbers].1);
    assert_eq!(after[&numbers].2, before[&numbers].2);
    assert_eq!(after[&english], before[&english]);
    let long_id = row_for(&site.check_json(), "long.txt")["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(after[&long_id].0, "de");
    assert_eq!(after.len(), 3);

    // The rules are recorded: the next start reads nothing again.
    let published = site.snapshot();
    let out = site.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("reading rules changed"), "{stderr}");
    assert_eq!(site.snapshot(), published);
}
