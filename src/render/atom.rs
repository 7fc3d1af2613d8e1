//! Atom 1.0 (RFC 4287).
//!
//! The feed has `xml:lang`; in the combined feed each entry's title, summary
//! and content carry the entry's own `xml:lang`, so readers see every
//! entry's language.

use atom_syndication::{
    Category, Content, Entry as AtomEntry, Feed, Generator, Link, Person, Text, WriteConfig,
};

use super::{newest_updated, page_path, url, Scope, Site, GENERATOR, VERSION};
use crate::catalog::Entry;

/// Renders one Atom document.
pub fn render(site: &Site, scope: &Scope, entries: &[Entry]) -> Vec<u8> {
    let dir = scope.dir();
    let feed = Feed {
        id: scope.feed_id(site),
        title: Text::plain(scope.title(site)),
        subtitle: Some(Text::plain(site.description.clone())),
        updated: newest_updated(site, entries),
        authors: vec![Person {
            name: site.author.clone(),
            email: None,
            uri: Some(site.base_url.clone()),
            ..Person::default()
        }],
        links: vec![
            Link {
                href: url(site, &format!("{dir}atom.xml")),
                rel: "self".into(),
                mime_type: Some("application/atom+xml".into()),
                ..Link::default()
            },
            Link {
                href: url(site, &dir),
                rel: "alternate".into(),
                mime_type: Some("text/html".into()),
                ..Link::default()
            },
        ],
        generator: Some(Generator {
            value: GENERATOR.into(),
            uri: None,
            version: Some(VERSION.into()),
        }),
        lang: Some(scope.lang(site).as_str().to_string()),
        entries: entries.iter().map(|e| entry(site, e)).collect(),
        ..Feed::default()
    };
    let mut out = Vec::with_capacity(4096 + entries.len() * 4096);
    let config = WriteConfig {
        write_document_declaration: true,
        indent_size: None,
    };
    // Writing into a Vec cannot fail with an I/O error; an error here would
    // be a bug in atom_syndication.
    match feed.write_with_config(&mut out, config) {
        Ok(_) => {}
        Err(e) => unreachable!("writing Atom to memory failed: {e}"),
    }
    out.push(b'\n');
    out
}

fn entry(site: &Site, e: &Entry) -> AtomEntry {
    let lang = Some(e.lang.as_str().to_string());
    let mut title = Text::plain(e.title.clone());
    title.lang = lang.clone();
    let mut summary = Text::plain(e.summary.clone());
    summary.lang = lang.clone();
    AtomEntry {
        id: e.id.clone(),
        title,
        updated: e.updated,
        published: Some(e.published),
        summary: Some(summary),
        content: Some(Content {
            value: Some(e.content.clone()),
            content_type: Some("html".into()),
            lang,
            ..Content::default()
        }),
        links: vec![Link {
            href: url(site, &page_path(e)),
            rel: "alternate".into(),
            hreflang: Some(e.lang.as_str().to_string()),
            mime_type: Some("text/html".into()),
            ..Link::default()
        }],
        categories: e
            .tags
            .iter()
            .map(|t| Category {
                term: t.clone(),
                ..Category::default()
            })
            .collect(),
        authors: e
            .author
            .iter()
            .map(|name| Person {
                name: name.clone(),
                ..Person::default()
            })
            .collect(),
        ..AtomEntry::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn reads_back_with_fields_and_languages() {
        let site = fixtures::site();
        let mut en = fixtures::entry(
            "fish",
            "en",
            "Fish & Chips <Night>",
            "<p>&lt;script&gt;</p>",
        );
        en.updated = chrono::DateTime::parse_from_rfc3339("2025-05-01T00:00:00Z").unwrap();
        let entries = vec![
            en.clone(),
            fixtures::entry("tram", "uk", "Трамвай", "<p>Текст</p>"),
        ];
        let bytes = render(&site, &Scope::All, &entries);
        let feed = Feed::read_from(&bytes[..]).unwrap();
        assert_eq!(feed.lang.as_deref(), Some("en"));
        assert_eq!(feed.updated, en.updated, "feed updated = newest entry's");
        assert_eq!(feed.entries[0].title.value, "Fish & Chips <Night>");
        assert_eq!(feed.entries[1].title.lang.as_deref(), Some("uk"));
        assert_eq!(
            feed.entries[1].content.as_ref().unwrap().lang.as_deref(),
            Some("uk")
        );
        assert_eq!(feed.entries[0].id, en.id);
        assert_eq!(feed.links[0].rel, "self");
        assert_eq!(feed.links[0].href, "https://news.example.org/atom.xml");
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("<script"), "{text}");
    }

    #[test]
    fn empty_feed_uses_epoch() {
        let site = fixtures::site();
        let feed = Feed::read_from(&render(&site, &Scope::All, &[])[..]).unwrap();
        assert_eq!(feed.updated, site.epoch);
    }
}
