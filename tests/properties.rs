//! Property tests of the whole parse-and-render path: for arbitrary bytes and
//! arbitrary front matter, parsing never panics, and every feed rendered is
//! well-formed XML that an independent parser (feed-rs) reads back with the
//! same titles and ids.

use chrono::DateTime;
use proptest::prelude::*;

use herald::announcement::lang::LangTag;
use herald::announcement::{parse, Announcement, ParseOptions};
use herald::catalog::Entry;
use herald::pipeline::{self, Placement};
use herald::render::{self, Scope, Site};

fn options() -> ParseOptions {
    ParseOptions {
        languages: Vec::new(),
        default_language: LangTag::parse("en").unwrap(),
        max_title_chars: 300,
        max_summary_chars: 400,
    }
}

fn site() -> Site {
    Site {
        title: "Prop <city> & co".into(),
        description: "d".into(),
        base_url: "https://news.example.org/".into(),
        author: "a".into(),
        id_prefix: "tag:news.example.org,2026-11-23:".into(),
        default_language: LangTag::parse("en").unwrap(),
        epoch: DateTime::parse_from_rfc3339("2026-11-23T00:00:00Z").unwrap(),
        languages: vec![],
        hubs: vec![],
    }
}

fn entry(i: usize, a: Announcement) -> Entry {
    let fallback = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    let placement = Placement::detached(
        &format!("tag:news.example.org,2026-11-23:f{i}"),
        &a,
        fallback,
    );
    pipeline::entry(a, placement)
}

/// Renders both formats and reads them back with feed-rs.
fn round_trip(entries: &[Entry]) -> Result<(), TestCaseError> {
    let site = site();
    for bytes in [
        render::atom::render(&site, &render::FeedDoc::current(&Scope::ALL, entries)),
        render::rss::render(&site, &render::FeedDoc::current(&Scope::ALL, entries)),
    ] {
        let text =
            String::from_utf8(bytes.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!text.contains('\u{0}'), "NUL in feed");
        prop_assert!(
            !text
                .chars()
                .any(|c| (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r')),
            "forbidden control char"
        );
        let feed = feed_rs::parser::parse(&bytes[..])
            .map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
        prop_assert_eq!(feed.entries.len(), entries.len());
        for (got, want) in feed.entries.iter().zip(entries) {
            prop_assert_eq!(&got.id, &want.id);
            let title = got
                .title
                .as_ref()
                .map(|t| t.content.clone())
                .unwrap_or_default();
            // feed-rs trims surrounding white space; herald's titles have none.
            prop_assert_eq!(title.trim(), want.title.trim());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_render_well_formed(bytes in proptest::collection::vec(any::<u8>(), 0..2048), md in any::<bool>()) {
        let path = if md { "x.md" } else { "x.txt" };
        if let Ok(a) = parse(path, &bytes, &options()) {
            prop_assert!(!a.title.trim().is_empty());
            round_trip(&[entry(0, a)])?;
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}", md in any::<bool>()) {
        let path = if md { "x.md" } else { "x.txt" };
        if let Ok(a) = parse(path, text.as_bytes(), &options()) {
            round_trip(&[entry(0, a)])?;
        }
    }

    #[test]
    fn arbitrary_front_matter_round_trips(
        title in "[^\\n\\r\"\\\\]{0,80}",
        tag in "[^\\n\\r\"\\\\,\\]\\[]{0,20}",
        lang in "[a-zA-Z_-]{0,12}",
        date in "[0-9T:+ZW-]{0,25}",
        body in "\\PC{0,200}",
        toml in any::<bool>(),
    ) {
        let doc = if toml {
            format!("+++\ntitle = \"{title}\"\ntags = [\"{tag}\"]\nlang = \"{lang}\"\ndate = \"{date}\"\n+++\n{body}\n")
        } else {
            format!("---\ntitle: \"{title}\"\ntags: [\"{tag}\"]\nlang: \"{lang}\"\ndate: \"{date}\"\n---\n{body}\n")
        };
        if let Ok(a) = parse("x.md", doc.as_bytes(), &options()) {
            round_trip(&[entry(0, a)])?;
        }
    }

    #[test]
    fn many_entries_round_trip(texts in proptest::collection::vec("\\PC{1,120}", 1..12)) {
        let entries: Vec<Entry> = texts
            .iter()
            .enumerate()
            .filter_map(|(i, t)| parse("x.txt", t.as_bytes(), &options()).ok().map(|a| entry(i, a)))
            .collect();
        round_trip(&entries)?;
    }
}
