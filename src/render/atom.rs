//! Atom 1.0 (RFC 4287).
//!
//! The feed has `xml:lang`; in the combined feed each entry's title, summary
//! and content carry the entry's own `xml:lang`, so readers see every
//! entry's language.

use std::collections::BTreeMap;

use atom_syndication::extension::{Extension, ExtensionMap};
use atom_syndication::{
    Category, Content, Entry as AtomEntry, Feed, Generator, Link, Person, Text, WriteConfig,
};

use super::{
    archive_path, newest_updated, page_path, page_path_of, url, FeedDoc, FeedKind, Site, GENERATOR,
    VERSION,
};
use crate::catalog::{Entry, Tombstone};

/// RFC 5005 (feed history) namespace.
pub const FH: &str = "http://purl.org/syndication/history/1.0";
/// RFC 6721 (tombstones) namespace.
pub const AT: &str = "http://purl.org/atompub/tombstones/1.0";

/// Renders one Atom document.
pub fn render(site: &Site, doc: &FeedDoc) -> Vec<u8> {
    let scope = doc.scope;
    let entries = doc.entries;
    let dir = scope.dir();
    let mut links = vec![
        link(
            url(site, &doc.path("atom.xml")),
            "self",
            "application/atom+xml",
        ),
        link(url(site, &dir), "alternate", "text/html"),
    ];
    let mut namespaces = BTreeMap::new();
    let mut extensions = ExtensionMap::default();
    match doc.kind {
        FeedKind::Current { prev } => {
            for hub in &site.hubs {
                links.push(Link {
                    href: hub.clone(),
                    rel: "hub".into(),
                    ..Link::default()
                });
            }
            if let Some(prev) = prev {
                links.push(archive_link(site, doc, prev, "prev-archive"));
            }
        }
        FeedKind::Archive { prev, next, .. } => {
            links.push(link(
                url(site, &format!("{dir}atom.xml")),
                "current",
                "application/atom+xml",
            ));
            if let Some(prev) = prev {
                links.push(archive_link(site, doc, prev, "prev-archive"));
            }
            if let Some(next) = next {
                links.push(archive_link(site, doc, next, "next-archive"));
            }
            namespaces.insert("fh".to_string(), FH.to_string());
            extensions
                .entry("fh".into())
                .or_default()
                .insert("archive".into(), vec![element("fh:archive")]);
        }
    }
    if !doc.tombstones.is_empty() {
        namespaces.insert("at".to_string(), AT.to_string());
        extensions.entry("at".into()).or_default().insert(
            "deleted-entry".into(),
            doc.tombstones.iter().map(tombstone).collect(),
        );
    }
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
        links,
        generator: Some(Generator {
            value: GENERATOR.into(),
            uri: None,
            version: Some(VERSION.into()),
        }),
        lang: Some(scope.lang_of(site).as_str().to_string()),
        entries: entries.iter().map(|e| entry(site, e)).collect(),
        extensions,
        namespaces,
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
    super::xml_chars_only(out)
}

fn link(href: String, rel: &str, mime: &str) -> Link {
    Link {
        href,
        rel: rel.into(),
        mime_type: Some(mime.into()),
        ..Link::default()
    }
}

fn archive_link(site: &Site, doc: &FeedDoc, month: &str, rel: &str) -> Link {
    link(
        url(site, &archive_path(doc.scope, month, "atom.xml")),
        rel,
        "application/atom+xml",
    )
}

fn element(name: &str) -> Extension {
    Extension {
        name: name.into(),
        ..Extension::default()
    }
}

/// `<at:deleted-entry ref=".." when=".."><at:comment>..</at:comment>`.
fn tombstone(t: &Tombstone) -> Extension {
    let mut ext = element("at:deleted-entry");
    ext.attrs.insert("ref".into(), t.id.clone());
    ext.attrs.insert("when".into(), t.when.to_rfc3339());
    if let Some(comment) = &t.comment {
        let mut c = element("at:comment");
        c.value = Some(comment.clone());
        c.attrs
            .insert("xml:lang".into(), t.lang.as_str().to_string());
        ext.children.insert("comment".into(), vec![c]);
    }
    ext
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
        links: std::iter::once(Link {
            href: url(site, &page_path(e)),
            rel: "alternate".into(),
            hreflang: Some(e.lang.as_str().to_string()),
            mime_type: Some("text/html".into()),
            ..Link::default()
        })
        .chain(e.translations.iter().map(|t| Link {
            href: url(site, &page_path_of(&t.lang, &t.slug)),
            rel: "alternate".into(),
            hreflang: Some(t.lang.as_str().to_string()),
            mime_type: Some("text/html".into()),
            title: Some(t.title.clone()),
            ..Link::default()
        }))
        .collect(),
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
    use crate::render::{fixtures, Scope};

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
        let bytes = render(&site, &FeedDoc::current(&Scope::ALL, &entries));
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
        let feed =
            Feed::read_from(&render(&site, &FeedDoc::current(&Scope::ALL, &[]))[..]).unwrap();
        assert_eq!(feed.updated, site.epoch);
    }
}
