//! What partner cities' aggregators build on: the full history (RFC 5005
//! archives), withdrawals (RFC 6721 tombstones), translations linked in
//! feeds and pages, scheduling, tag feeds, JSON Feed and OPML. Everything
//! is read back with independent parsers (feed-rs, roxmltree, serde_json),
//! from the feeds folder and over HTTP.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use support::{feed_ids, wait_for, Site};

const DEADLINE: Duration = Duration::from_secs(30);
const ATOM: &str = "http://www.w3.org/2005/Atom";
const FH: &str = "http://purl.org/syndication/history/1.0";
const AT: &str = "http://purl.org/atompub/tombstones/1.0";
const BASE: &str = "https://news.example.org/";

/// One Atom document, as an aggregator sees it.
struct Doc {
    ids: Vec<String>,
    links: Vec<(String, String, Option<String>)>,
    archive: bool,
    tombstones: Vec<(String, String, Option<String>)>,
}

fn parse_atom(bytes: &[u8]) -> Doc {
    let text = std::str::from_utf8(bytes).expect("UTF-8");
    let xml = roxmltree::Document::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let feed = xml.root_element();
    assert!(feed.has_tag_name((ATOM, "feed")));
    let kids = || feed.children().filter(|n| n.is_element());
    Doc {
        ids: kids()
            .filter(|n| n.has_tag_name((ATOM, "entry")))
            .map(|e| {
                e.children()
                    .find(|n| n.has_tag_name((ATOM, "id")))
                    .and_then(|n| n.text())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect(),
        links: kids()
            .filter(|n| n.has_tag_name((ATOM, "link")))
            .map(|l| {
                (
                    l.attribute("rel").unwrap_or("alternate").to_string(),
                    l.attribute("href").unwrap_or_default().to_string(),
                    l.attribute("hreflang").map(str::to_string),
                )
            })
            .collect(),
        archive: kids().any(|n| n.has_tag_name((FH, "archive"))),
        tombstones: kids()
            .filter(|n| n.has_tag_name((AT, "deleted-entry")))
            .map(|t| {
                (
                    t.attribute("ref").unwrap_or_default().to_string(),
                    t.attribute("when").unwrap_or_default().to_string(),
                    t.children()
                        .find(|n| n.has_tag_name((AT, "comment")))
                        .and_then(|n| n.text())
                        .map(str::to_string),
                )
            })
            .collect(),
    }
}

impl Doc {
    fn link(&self, rel: &str) -> Option<String> {
        self.links
            .iter()
            .find(|(r, _, _)| r == rel)
            .map(|(_, h, _)| h.clone())
    }
}

/// Follows `prev-archive` from a subscription document to the oldest
/// archive, as an aggregator does; returns every entry id seen, in order.
fn walk(fetch: &dyn Fn(&str) -> Vec<u8>, start: &str) -> (Vec<String>, usize) {
    let current = parse_atom(&fetch(start));
    assert!(!current.archive, "the subscription document is no archive");
    let mut ids = current.ids.clone();
    let mut next_url = current.link("self").expect("self link");
    let mut url = current.link("prev-archive");
    let mut archives = 0;
    let mut seen = HashSet::new();
    while let Some(u) = url {
        assert!(seen.insert(u.clone()), "archive loop at {u}");
        let doc = parse_atom(&fetch(&u));
        assert!(doc.archive, "{u} is marked fh:archive");
        assert_eq!(doc.link("self").as_deref(), Some(u.as_str()));
        assert!(
            doc.link("current").is_some_and(|c| c.ends_with("atom.xml")),
            "{u} links to the current document"
        );
        if archives > 0 {
            assert_eq!(
                doc.link("next-archive").as_deref(),
                Some(next_url.as_str()),
                "{u}: next-archive goes back where we came from"
            );
        }
        assert!(!doc.ids.is_empty(), "no empty archive documents ({u})");
        url = doc.link("prev-archive");
        ids.extend(doc.ids);
        archives += 1;
        next_url = u;
    }
    (ids, archives)
}

fn dated(i: usize, month: u32, day: u32, lang: &str, tags: &str) -> String {
    format!(
        "---\ntitle: Announcement {i}\ndate: 2025-{month:02}-{day:02}T{:02}:{:02}:00Z\nlang: {lang}\ntags: [{tags}]\n---\nBody of announcement number {i}.\n",
        i % 24,
        i % 60
    )
}

/// 330 announcements over four months, one of them busier than an archive
/// page holds: the walk finds every entry exactly once, on disk and over
/// HTTP, for everything, one language and one tag.
#[test]
fn archives_walk_to_every_entry_exactly_once() {
    let site = Site::for_daemon("[feeds]\nmax_entries = 10\n");
    let plan = [(1, 20), (2, 260), (3, 40), (4, 10)];
    let mut n = 0;
    for (month, count) in plan {
        for k in 0..count {
            let lang = if n % 3 == 0 { "uk" } else { "pl" };
            let tags = if n % 2 == 0 {
                "Транспорт"
            } else {
                "budget"
            };
            site.put(
                &format!("{month}/a{n:04}.md"),
                dated(n, month, 1 + (k % 28) as u32, lang, tags),
            );
            n += 1;
        }
    }
    let out = site.build();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: BTreeSet<String> = site
        .parse_feed("atom.xml")
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(all.len(), 10, "the subscription document holds max_entries");

    let disk = |url: &str| -> Vec<u8> {
        let rel = url.strip_prefix(BASE).expect("absolute URL on the site");
        let rel = support::percent_decode(rel);
        std::fs::read(site.feeds().join(&rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    };
    let (ids, archives) = walk(&disk, &format!("{BASE}atom.xml"));
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 330, "every entry, none twice");
    assert_eq!(unique.len(), 330);
    assert_eq!(archives, 4, "Jan, Feb (two pages), Mar; Apr is all current");

    // The same walk over HTTP, per language and per tag.
    let d = site.serve();
    let http = |url: &str| -> Vec<u8> {
        let path = url.strip_prefix(BASE).expect("absolute URL");
        let r = d.get(&format!("/{path}"));
        assert_eq!(r.status, 200, "{url}");
        r.body
    };
    let (ids, _) = walk(&http, &format!("{BASE}atom.xml"));
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 330);
    assert_eq!(ids.len(), 330);
    let (uk, _) = walk(&http, &format!("{BASE}uk/atom.xml"));
    assert_eq!(uk.len(), 110, "one in three is Ukrainian");
    let (tagged, _) = walk(
        &http,
        &format!("{BASE}tags/%D1%82%D1%80%D0%B0%D0%BD%D1%81%D0%BF%D0%BE%D1%80%D1%82/atom.xml"),
    );
    assert_eq!(tagged.len(), 165, "every second one is tagged Транспорт");
    assert_eq!(tagged.iter().collect::<HashSet<_>>().len(), 165);

    // An archive document does not change when a new entry arrives.
    let oldest = http(&format!("{BASE}archive/2025-01/atom.xml"));
    site.put("new.md", dated(999, 5, 1, "pl", "budget"));
    wait_for(DEADLINE, || {
        let ids = feed_ids(&d.get("/atom.xml"));
        ids.iter().any(|i| i.contains("new.md")).then_some(())
    })
    .expect("new entry published");
    assert_eq!(http(&format!("{BASE}archive/2025-01/atom.xml")), oldest);
    let (ids, _) = walk(&http, &format!("{BASE}atom.xml"));
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 331);
    assert_eq!(ids.len(), 331);
}

/// `tram.uk.md` and `tram.pl.md`, and two files sharing a front-matter
/// `translation_key`, link each other in Atom, RSS and the HTML pages.
#[test]
fn translations_are_linked_both_ways() {
    let site = Site::new("");
    site.put(
        "tram.uk.md",
        "# Трамвай у депо\n\nТрамвай №3 їде в об'їзд.\n",
    );
    site.put(
        "tram.pl.md",
        "# Tramwaj objazdem\n\nTramwaj nr 3 jedzie objazdem.\n",
    );
    site.put(
        "budget-en.md",
        "---\ntitle: Budget vote\nlang: en\ntranslation_key: budget-2026\n---\nThe council votes.\n",
    );
    site.put(
        "haushalt.md",
        "---\ntitle: Haushaltsabstimmung\nlang: de\ntranslation_key: budget-2026\n---\nDer Rat stimmt ab.\n",
    );
    site.put("alone.md", "# Alone\n\nNo translation.\n");
    let out = site.build();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let text = String::from_utf8(site.read_feed("atom.xml")).unwrap();
    let xml = roxmltree::Document::parse(&text).unwrap();
    let entry_links = |title: &str| -> Vec<(String, String)> {
        let entry = xml
            .descendants()
            .find(|n| {
                n.has_tag_name((ATOM, "entry"))
                    && n.children()
                        .any(|c| c.has_tag_name((ATOM, "title")) && c.text() == Some(title))
            })
            .unwrap_or_else(|| panic!("no entry {title}"));
        entry
            .children()
            .filter(|c| c.has_tag_name((ATOM, "link")) && c.attribute("rel") == Some("alternate"))
            .map(|l| {
                (
                    l.attribute("hreflang").unwrap_or_default().to_string(),
                    l.attribute("href").unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let uk = entry_links("Трамвай у депо");
    let pl = entry_links("Tramwaj objazdem");
    assert_eq!(uk.len(), 2, "own page + the Polish one: {uk:?}");
    assert_eq!(pl.len(), 2, "{pl:?}");
    // Each points at the other's own page: resolved in both directions.
    assert_eq!(uk[1], pl[0]);
    assert_eq!(pl[1], uk[0]);
    assert_eq!(uk[1].0, "pl");
    assert_eq!(pl[1].0, "uk");
    let en = entry_links("Budget vote");
    let de = entry_links("Haushaltsabstimmung");
    assert_eq!(
        (en[1].clone(), de[1].clone()),
        (de[0].clone(), en[0].clone())
    );
    assert_eq!(entry_links("Alone").len(), 1);

    // RSS carries them as atom:link.
    let rss = String::from_utf8(site.read_feed("rss.xml")).unwrap();
    let rss = roxmltree::Document::parse(&rss).unwrap();
    let hreflangs: Vec<&str> = rss
        .descendants()
        .filter(|n| n.has_tag_name((ATOM, "link")))
        .filter_map(|n| n.attribute("hreflang"))
        .collect();
    assert_eq!(hreflangs.iter().filter(|h| **h == "pl").count(), 1);

    // The pages link each other with hreflang, the index says which exist.
    let page = |abs: &str| {
        let rel = abs.strip_prefix(BASE).unwrap();
        std::fs::read_to_string(site.feeds().join(support::percent_decode(rel))).unwrap()
    };
    let uk_page = page(&uk[0].1);
    let pl_rel = pl[0].1.strip_prefix(BASE).unwrap();
    assert!(
        uk_page.contains(&format!(
            "<link rel=\"alternate\" hreflang=\"pl\" href=\"../{pl_rel}\">"
        )),
        "{uk_page}"
    );
    assert!(page(&pl[0].1).contains("hreflang=\"uk\""));
    let index = std::fs::read_to_string(site.feeds().join("index.html")).unwrap();
    assert!(index.contains("class=\"translations\""));
}

/// Deleting a file and `withdrawn: true` both remove the entry and leave an
/// `at:deleted-entry` (with the front matter's comment) in the Atom feeds.
#[test]
fn deletions_and_withdrawals_leave_tombstones() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Road closed\n\nMain street is closed.\n");
    site.put(
        "b.md",
        "---\ntitle: Concert\ntags: [culture]\n---\nA concert in the park.\n",
    );
    let d = site.serve();
    let ids = feed_ids(&d.get("/atom.xml"));
    assert_eq!(ids.len(), 2);
    let id_of = |name: &str| ids.iter().find(|i| i.contains(name)).unwrap().clone();
    let (a, b) = (id_of("a.txt"), id_of("b.md"));

    std::fs::remove_file(site.watch().join("a.txt")).unwrap();
    site.put(
        "b.md",
        "---\ntitle: Concert\ntags: [culture]\nwithdrawn: true\nwithdrawn_comment: Cancelled by the organisers\n---\nA concert in the park.\n",
    );
    let doc = wait_for(DEADLINE, || {
        let doc = parse_atom(&d.get("/atom.xml").body);
        (doc.ids.is_empty() && doc.tombstones.len() == 2).then_some(doc)
    })
    .expect("both withdrawn with tombstones");
    let by_ref = |id: &str| doc.tombstones.iter().find(|t| t.0 == id).unwrap().clone();
    assert_eq!(by_ref(&a).2, None);
    assert_eq!(by_ref(&b).2.as_deref(), Some("Cancelled by the organisers"));
    assert!(chrono::DateTime::parse_from_rfc3339(&by_ref(&a).1).is_ok());
    // The tag's Atom feed announces it too; the page is gone.
    let tag = parse_atom(&d.get("/tags/culture/atom.xml").body);
    assert_eq!(tag.tombstones.len(), 1);
    assert_eq!(d.get("/en/concert.html").status, 404);
    // And the feeds folder says the same.
    wait_for(DEADLINE, || {
        let disk = std::fs::read(site.feeds().join("atom.xml")).ok()?;
        (parse_atom(&disk).tombstones.len() == 2).then_some(())
    })
    .expect("tombstones on disk");
    // Putting the file back brings the entry back, with its id.
    site.put("a.txt", "Road closed\n\nMain street is closed.\n");
    wait_for(DEADLINE, || {
        let doc = parse_atom(&d.get("/atom.xml").body);
        (doc.ids == [a.clone()] && doc.tombstones.len() == 1).then_some(())
    })
    .expect("restored with the same id, tombstone gone");
}

fn in_secs(s: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::seconds(s)
}

/// `publish_at` a few seconds ahead: hidden everywhere until then, then
/// published by herald's own clock with no file event, also across a
/// restart; `expires` withdraws on time.
#[test]
fn scheduled_entries_appear_and_expire_on_time() {
    let site = Site::for_daemon("");
    let at = in_secs(4);
    site.put(
        "later.md",
        format!(
            "---\ntitle: Scheduled\nlang: en\npublish_at: {}\n---\nSecret until then.\n",
            at.to_rfc3339()
        ),
    );
    site.put(
        "brief.md",
        format!(
            "---\ntitle: Brief\nlang: en\nexpires: {}\n---\nGone soon.\n",
            in_secs(6).to_rfc3339()
        ),
    );
    let d = site.serve();
    let titles = support::feed_titles(&d.get("/atom.xml"));
    assert_eq!(titles, ["Brief"], "not before its time");
    assert_eq!(d.get("/en/later.html").status, 404);
    assert!(!String::from_utf8_lossy(&d.get("/feed.json").body).contains("Secret"));
    // Restart before it is due: the schedule is in the state.
    assert!(d.terminate().success());
    let d = site.serve();
    let appeared = wait_for(DEADLINE, || {
        support::feed_titles(&d.get("/atom.xml"))
            .contains(&"Scheduled".to_string())
            .then(chrono::Utc::now)
    })
    .expect("scheduled entry appears");
    assert!(appeared >= at, "not early");
    assert!(
        appeared - at < chrono::Duration::milliseconds(2500),
        "on time: {} ms late",
        (appeared - at).num_milliseconds()
    );
    assert_eq!(d.get("/en/later.html").status, 200);
    let gone = wait_for(DEADLINE, || {
        let doc = parse_atom(&d.get("/atom.xml").body);
        (doc.tombstones.len() == 1).then_some(doc)
    })
    .expect("expired entry withdrawn");
    assert_eq!(gone.ids.len(), 1);
}

/// Tag feeds (also per language, non-ASCII slugs), JSON Feed 1.1 with
/// languages, WebSub-free Link headers, and an OPML list whose every feed
/// can be fetched.
#[test]
fn tag_feeds_json_feed_and_opml() {
    let site = Site::for_daemon("");
    site.put(
        "uk/tram.md",
        "---\ntitle: Трамвай\ntags: [Транспорт, Ремонт]\n---\nТекст.\n",
    );
    site.put(
        "pl/tram.md",
        "---\ntitle: Tramwaj\ntags: [транспорт]\n---\nTekst.\n",
    );
    site.put(
        "en/fair.md",
        "---\ntitle: Fair\ntags: [Culture]\n---\nText.\n",
    );
    let d = site.serve();
    let tag = "/tags/%D1%82%D1%80%D0%B0%D0%BD%D1%81%D0%BF%D0%BE%D1%80%D1%82/";
    let titles = |path: &str| support::feed_titles(&d.get(path));
    let mut both = titles(&format!("{tag}atom.xml"));
    both.sort();
    assert_eq!(both, ["Tramwaj", "Трамвай"], "one slug for both spellings");
    assert_eq!(titles(&format!("/uk{tag}rss.xml")), ["Трамвай"]);
    assert_eq!(titles("/tags/culture/atom.xml"), ["Fair"]);
    assert_eq!(d.get("/tags/nothing/atom.xml").status, 404);
    let tag_feed = feed_rs::parser::parse(&d.get(&format!("{tag}atom.xml")).body[..]).unwrap();
    assert!(tag_feed.title.unwrap().content.contains("Транспорт"));

    let json: serde_json::Value = serde_json::from_slice(&d.get("/uk/feed.json").body).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["language"], "uk");
    assert_eq!(json["items"][0]["title"], "Трамвай");
    assert_eq!(json["items"][0]["language"], "uk");
    let all: serde_json::Value = serde_json::from_slice(&d.get("/feed.json").body).unwrap();
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    assert_eq!(
        d.get("/feed.json").header("content-type"),
        Some("application/feed+json; charset=utf-8")
    );

    let opml = d.get("/feeds.opml");
    assert_eq!(opml.status, 200);
    let text = opml.text();
    let xml = roxmltree::Document::parse(&text).unwrap();
    assert_eq!(xml.root_element().attribute("version"), Some("2.0"));
    let feeds: Vec<(String, Option<String>)> = xml
        .descendants()
        .filter(|n| n.has_tag_name("outline") && n.attribute("xmlUrl").is_some())
        .map(|n| {
            (
                n.attribute("xmlUrl").unwrap().to_string(),
                n.attribute("language").map(str::to_string),
            )
        })
        .collect();
    // all + 3 languages + 3 tags + the 2 languages of the tag used in
    // two (a tag of one language needs no second entry), Atom and RSS each
    assert_eq!(feeds.len(), 2 * (1 + 3 + 3 + 2), "{text}");
    for (url, lang) in &feeds {
        let path = url.strip_prefix(BASE).unwrap();
        let r = d.get(&format!("/{path}"));
        assert_eq!(r.status, 200, "{url}");
        let f = feed_rs::parser::parse(&r.body[..]).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(!f.entries.is_empty(), "{url}");
        if let Some(lang) = lang {
            assert!(url.starts_with(&format!("{BASE}{lang}/")), "{url} {lang}");
        }
    }
    let index = d.get("/").text();
    assert!(index.contains("href=\"feeds.opml\""));
}

/// A local WebSub hub: records the form body of every request, answers 500
/// to the first one (herald must retry) and 204 to the rest.
fn local_hub() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hub", l.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for (n, conn) in l.incoming().enumerate() {
            let Ok(mut s) = conn else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut len = 0;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let status = if n == 0 { 500 } else { 204 };
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, bodies)
}

/// With a hub configured, feeds advertise it (atom:link and Link header)
/// and every change of a feed reaches the hub as a publish ping, retried
/// after a failure, counted in /metrics.
#[test]
fn websub_hub_hears_of_every_change() {
    let (hub, bodies) = local_hub();
    let site = Site::for_daemon(&format!("[websub]\nhubs = [\"{hub}\"]\n"));
    site.put("pl/first.md", "---\ntitle: First\n---\nText.\n");
    let d = site.serve();
    let atom = d.get("/atom.xml");
    let doc = parse_atom(&atom.body);
    assert_eq!(doc.link("hub").as_deref(), Some(hub.as_str()));
    let link = atom.header("link").unwrap_or_default().to_string();
    assert!(link.contains(&format!("<{hub}>; rel=\"hub\"")), "{link}");
    assert!(
        link.contains(&format!("<{BASE}atom.xml>; rel=\"self\"")),
        "{link}"
    );
    let json: serde_json::Value = serde_json::from_slice(&d.get("/feed.json").body).unwrap();
    assert_eq!(json["hubs"][0]["url"], hub.as_str());

    site.put(
        "pl/second.md",
        "---\ntitle: Second\ntags: [Tram]\n---\nText.\n",
    );
    let topic = |path: &str| {
        format!(
            "hub.mode=publish&hub.url={}",
            url_encode(&format!("{BASE}{path}"))
        )
    };
    for path in [
        "atom.xml",
        "pl/atom.xml",
        "pl/rss.xml",
        "feed.json",
        "tags/tram/atom.xml",
    ] {
        let want = topic(path);
        wait_for(DEADLINE, || {
            bodies
                .lock()
                .unwrap()
                .iter()
                .any(|b| b.starts_with(&format!("{want}&")))
                .then_some(())
        })
        .unwrap_or_else(|| panic!("no ping for {path}: {:?}", bodies.lock().unwrap()));
    }
    let metrics = wait_for(DEADLINE, || {
        let m = d.get("/metrics").text();
        m.contains("herald_websub_failed_attempts_total 1")
            .then_some(m)
    })
    .expect("the refused ping is counted");
    assert!(metrics.contains("herald_websub_hubs 1"));
    assert!(!metrics.contains("herald_websub_pings_total 0"));
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
