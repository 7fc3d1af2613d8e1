//! The property the fuzz target and its regression test check, shared so
//! that both check exactly the same thing: for any input, parsing does not
//! panic, and whatever is published renders to RSS and Atom made of
//! characters XML 1.0 allows, that an XML feed reader reads back with the
//! same title and id.

use chrono::DateTime;

use crate::announcement::lang::LangTag;
use crate::announcement::{parse, ParseOptions};
use crate::pipeline::{self, Placement};
use crate::render::{self, Scope, Site};

/// Runs one input (first byte: bit 0 = Markdown, bit 1 = detect languages).
pub fn check_parse_render(data: &[u8]) -> Result<(), String> {
    let Some((&flags, bytes)) = data.split_first() else {
        return Ok(());
    };
    let path = if flags & 1 == 1 { "f.md" } else { "f.txt" };
    let en = LangTag::parse("en").ok_or("en is a tag")?;
    let options = ParseOptions {
        languages: if flags & 2 == 2 {
            Vec::new()
        } else {
            vec![en.clone()]
        },
        default_language: en.clone(),
        max_title_chars: 300,
        max_summary_chars: 400,
    };
    let Ok(a) = parse(path, bytes, &options) else {
        return Ok(());
    };
    if a.title.trim().is_empty() {
        return Err("empty title published".into());
    }
    let epoch = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").map_err(|e| e.to_string())?;
    let placement = Placement::detached("tag:fuzz.example,2026-01-01:f", &a, epoch);
    let entry = pipeline::entry(a, placement);
    let site = Site {
        title: "Fuzz".into(),
        description: "Fuzz".into(),
        base_url: "https://fuzz.example/".into(),
        author: "Fuzz".into(),
        id_prefix: "tag:fuzz.example,2026-01-01:".into(),
        default_language: en,
        epoch,
        languages: Vec::new(),
        hubs: Vec::new(),
    };
    let entries = [entry];
    let atom = render::atom::render(&site, &render::FeedDoc::current(&Scope::ALL, &entries));
    xml_chars_only("Atom", &atom)?;
    let feed = atom_syndication::Feed::read_from(&atom[..])
        .map_err(|e| format!("Atom not readable: {e}"))?;
    let got = feed.entries.first().ok_or("Atom entry missing")?;
    if got.title.value != entries[0].title || got.id != entries[0].id {
        return Err(format!("Atom title/id changed: {:?}", got.title.value));
    }
    let rss = render::rss::render(&site, &render::FeedDoc::current(&Scope::ALL, &entries));
    xml_chars_only("RSS", &rss)?;
    let channel =
        rss::Channel::read_from(&rss[..]).map_err(|e| format!("RSS not readable: {e}"))?;
    let item = channel.items().first().ok_or("RSS item missing")?;
    if item.title() != Some(entries[0].title.as_str()) {
        return Err(format!("RSS title changed: {:?}", item.title()));
    }
    Ok(())
}

/// A character outside XML 1.0's `Char` production makes the whole document
/// unreadable to a conforming parser (feed-rs and quick-xml let it pass).
fn xml_chars_only(what: &str, doc: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(doc).map_err(|e| format!("{what} not UTF-8: {e}"))?;
    match text
        .chars()
        .find(|&c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..))
    {
        Some(c) => Err(format!("{what} holds {c:?}, which XML 1.0 forbids")),
        None => Ok(()),
    }
}
