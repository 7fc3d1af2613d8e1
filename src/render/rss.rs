//! RSS 2.0 with the `content`, `dc` and `atom` extensions.
//!
//! Each item carries its own `dc:language`; a per-language channel also has
//! `<language>`. Dates are RFC 822 as RSS requires.

use std::collections::BTreeMap;

use rss::extension::atom::{AtomExtension, Link};
use rss::extension::dublincore::DublinCoreExtension;
use rss::{CategoryBuilder, ChannelBuilder, GuidBuilder, ItemBuilder};

use super::{
    archive_path, newest_updated, page_path, page_path_of, url, FeedDoc, FeedKind, Site, GENERATOR,
    VERSION,
};
use crate::announcement::text::escape;
use crate::catalog::Entry;

/// Renders one RSS document. Archive links (RFC 5005) and hubs are
/// `atom:link`s; tombstones are Atom-only.
pub fn render(site: &Site, doc: &FeedDoc) -> Vec<u8> {
    let scope = doc.scope;
    let entries = doc.entries;
    let items: Vec<rss::Item> = entries.iter().map(|e| item(site, e)).collect();
    let link = |href: String, rel: &str| Link {
        href,
        rel: rel.into(),
        mime_type: Some("application/rss+xml".into()),
        ..Link::default()
    };
    let archive =
        |month: &str, rel: &str| link(url(site, &archive_path(scope, month, "rss.xml")), rel);
    let mut links = vec![link(url(site, &doc.path("rss.xml")), "self")];
    let mut extensions = rss::extension::ExtensionMap::default();
    let mut namespaces = BTreeMap::new();
    match doc.kind {
        FeedKind::Current { prev } => {
            for hub in &site.hubs {
                links.push(Link {
                    href: hub.clone(),
                    rel: "hub".into(),
                    ..Link::default()
                });
            }
            links.extend(prev.map(|p| archive(p, "prev-archive")));
        }
        FeedKind::Archive { prev, next, .. } => {
            links.push(link(
                url(site, &format!("{}rss.xml", scope.dir())),
                "current",
            ));
            links.extend(prev.map(|p| archive(p, "prev-archive")));
            links.extend(next.map(|n| archive(n, "next-archive")));
            namespaces.insert("fh".to_string(), super::atom::FH.to_string());
            extensions.entry("fh".into()).or_default().insert(
                "archive".into(),
                vec![rss::extension::Extension {
                    name: "fh:archive".into(),
                    ..Default::default()
                }],
            );
        }
    }
    let newest_published = entries
        .iter()
        .map(|e| e.published)
        .max()
        .unwrap_or(site.epoch);
    namespaces.insert(
        "atom".to_string(),
        "http://www.w3.org/2005/Atom".to_string(),
    );
    let channel = ChannelBuilder::default()
        .title(scope.title(site))
        .link(url(site, &scope.dir()))
        .description(site.description.clone())
        .language(scope.lang.as_ref().map(|l| l.as_str().to_string()))
        .generator(Some(format!("{GENERATOR} {VERSION}")))
        .pub_date(Some(newest_published.to_rfc2822()))
        .last_build_date(Some(newest_updated(site, entries).to_rfc2822()))
        .namespaces(namespaces)
        .atom_ext(Some(AtomExtension { links }))
        .extensions(extensions)
        .items(items)
        .build();
    let mut out = Vec::with_capacity(4096 + entries.len() * 4096);
    // Writing into a Vec cannot fail with an I/O error, and the channel holds
    // only strings we built: an error here would be a bug in the rss crate.
    match channel.write_to(&mut out) {
        Ok(_) => {}
        Err(e) => unreachable!("writing RSS to memory failed: {e}"),
    }
    out.push(b'\n');
    super::xml_chars_only(out)
}

fn item(site: &Site, e: &Entry) -> rss::Item {
    let dc = DublinCoreExtension {
        languages: vec![e.lang.as_str().to_string()],
        creators: e.author.iter().cloned().collect(),
        ..DublinCoreExtension::default()
    };
    ItemBuilder::default()
        .title(Some(e.title.clone()))
        .link(Some(url(site, &page_path(e))))
        .guid(Some(
            GuidBuilder::default()
                .value(e.id.clone())
                .permalink(false)
                .build(),
        ))
        .pub_date(Some(e.published.to_rfc2822()))
        // RSS readers treat <description> as HTML: the plain-text summary
        // must be escaped, or "<Night>" vanishes and "<script>" text
        // becomes markup (regression: found by the W3C validator run).
        .description(Some(escape(&e.summary)))
        .content(Some(e.content.clone()))
        .categories(
            e.tags
                .iter()
                .map(|t| CategoryBuilder::default().name(t.clone()).build())
                .collect::<Vec<_>>(),
        )
        .dublin_core_ext(Some(dc))
        .atom_ext((!e.translations.is_empty()).then(|| {
            AtomExtension {
                links: e
                    .translations
                    .iter()
                    .map(|t| Link {
                        href: url(site, &page_path_of(&t.lang, &t.slug)),
                        rel: "alternate".into(),
                        hreflang: Some(t.lang.as_str().to_string()),
                        mime_type: Some("text/html".into()),
                        title: Some(t.title.clone()),
                        ..Link::default()
                    })
                    .collect(),
            }
        }))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::announcement::lang::LangTag;
    use crate::render::{fixtures, Scope};

    #[test]
    fn reads_back_with_fields() {
        let site = fixtures::site();
        let entries = vec![fixtures::entry(
            "tram",
            "uk",
            "Трамвай <№2> & ремонт",
            "<p>Текст]]>&amp;</p>",
        )];
        let bytes = render(
            &site,
            &FeedDoc::current(&Scope::lang(LangTag::parse("uk").unwrap()), &entries),
        );
        let channel = ::rss::Channel::read_from(&bytes[..]).unwrap();
        assert_eq!(channel.language(), Some("uk"));
        assert_eq!(channel.title(), "City & News (Українська)");
        let item = &channel.items()[0];
        assert_eq!(item.title(), Some("Трамвай <№2> & ремонт"));
        assert_eq!(item.guid().unwrap().value(), entries[0].id);
        assert!(!item.guid().unwrap().is_permalink());
        assert_eq!(item.link(), Some("https://news.example.org/uk/tram.html"));
        assert_eq!(item.content(), Some("<p>Текст]]>&amp;</p>"));
        assert_eq!(item.dublin_core_ext().unwrap().languages(), ["uk"]);
        assert_eq!(item.categories()[0].name(), "транспорт");
        assert_eq!(item.pub_date(), Some("Mon, 7 Apr 2025 08:00:00 +0300"));
        assert_eq!(
            channel.atom_ext().unwrap().links()[0].href(),
            "https://news.example.org/uk/rss.xml"
        );
    }

    #[test]
    fn one_declaration_and_escaped_description() {
        let site = fixtures::site();
        let mut e = fixtures::entry("fish", "en", "Fish", "<p>x</p>");
        e.summary = "Fish & Chips <Night>: <script>alert(1)</script>".into();
        let bytes = render(&site, &FeedDoc::current(&Scope::ALL, &[e]));
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.matches("<?xml").count(), 1, "{text}");
        assert!(text.starts_with("<?xml"));
        let channel = ::rss::Channel::read_from(&bytes[..]).unwrap();
        // After the reader's HTML decoding the literal text survives.
        let description = channel.items()[0].description().unwrap();
        assert_eq!(
            description,
            "Fish &amp; Chips &lt;Night&gt;: &lt;script&gt;alert(1)&lt;/script&gt;"
        );
    }

    #[test]
    fn deterministic() {
        let site = fixtures::site();
        let entries = vec![fixtures::entry("a", "en", "A", "<p>a</p>")];
        assert_eq!(
            render(&site, &FeedDoc::current(&Scope::ALL, &entries)),
            render(&site, &FeedDoc::current(&Scope::ALL, &entries))
        );
    }
}
