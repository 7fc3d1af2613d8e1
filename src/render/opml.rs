//! OPML 2.0 (<http://opml.org/spec2.opml>): every feed herald publishes —
//! all languages, each language, each tag (overall and per language) — in
//! Atom and RSS, for an aggregator to import in one step.

use std::fmt::Write as _;

use super::{url, Scope, Site, Tag};
use crate::announcement::lang::LangTag;
use crate::announcement::text::escape;
use crate::catalog::TagCount;

/// Renders `/feeds.opml`. `tags` as [`crate::catalog::Catalog::tags`] gives
/// them: one row per tag and language, by tag.
pub fn render(site: &Site, tags: &[TagCount]) -> Vec<u8> {
    let mut o = String::with_capacity(4096);
    o.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<opml version=\"2.0\">\n<head>\n");
    let _ = writeln!(o, "<title>{}</title>", escape(&site.title));
    let _ = writeln!(o, "<ownerName>{}</ownerName>", escape(&site.author));
    let _ = writeln!(o, "<dateCreated>{}</dateCreated>", site.epoch.to_rfc2822());
    o.push_str("<docs>http://opml.org/spec2.opml</docs>\n</head>\n<body>\n");
    feeds(&mut o, site, &Scope::ALL);
    if !site.languages.is_empty() {
        o.push_str("<outline text=\"Languages\">\n");
        for (l, _) in &site.languages {
            feeds(&mut o, site, &Scope::lang(l.clone()));
        }
        o.push_str("</outline>\n");
    }
    if !tags.is_empty() {
        o.push_str("<outline text=\"Tags\">\n");
        let mut i = 0;
        while i < tags.len() {
            let slug = &tags[i].slug;
            let group: Vec<&TagCount> = tags[i..].iter().take_while(|t| &t.slug == slug).collect();
            i += group.len();
            let tag = Tag {
                slug: slug.clone(),
                name: group
                    .iter()
                    .map(|t| &t.name)
                    .min()
                    .cloned()
                    .unwrap_or_default(),
            };
            let _ = writeln!(o, "<outline text=\"{}\">", escape(&tag.name));
            feeds(&mut o, site, &Scope::tag(tag.clone()));
            if group.len() > 1 {
                for t in &group {
                    if let Some(l) = LangTag::parse(&t.lang) {
                        let scope = Scope {
                            lang: Some(l),
                            tag: Some(tag.clone()),
                        };
                        feeds(&mut o, site, &scope);
                    }
                }
            }
            o.push_str("</outline>\n");
        }
        o.push_str("</outline>\n");
    }
    o.push_str("</body>\n</opml>\n");
    super::xml_chars_only(o.into_bytes())
}

/// The Atom and RSS outlines of one scope.
fn feeds(o: &mut String, site: &Site, scope: &Scope) {
    let title = scope.title(site);
    let lang = scope
        .lang
        .as_ref()
        .map(|l| format!(" language=\"{}\"", escape(l.as_str())))
        .unwrap_or_default();
    let dir = scope.dir();
    for (file, version, label) in [("atom.xml", "ATOM1", "Atom"), ("rss.xml", "RSS2", "RSS")] {
        let _ = writeln!(
            o,
            "<outline type=\"rss\" version=\"{version}\" text=\"{} ({label})\" title=\"{}\"{lang} xmlUrl=\"{}\" htmlUrl=\"{}\"/>",
            escape(&title),
            escape(&title),
            escape(&url(site, &format!("{dir}{file}"))),
            escape(&url(site, &dir)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn lists_every_feed() {
        let site = fixtures::site();
        let tags = vec![
            TagCount {
                slug: "транспорт".into(),
                name: "Транспорт".into(),
                lang: "pl".into(),
                count: 1,
            },
            TagCount {
                slug: "транспорт".into(),
                name: "Транспорт".into(),
                lang: "uk".into(),
                count: 2,
            },
        ];
        let text = String::from_utf8(render(&site, &tags)).unwrap();
        assert!(text.contains("xmlUrl=\"https://news.example.org/atom.xml\""));
        assert!(text.contains("language=\"uk\" xmlUrl=\"https://news.example.org/uk/rss.xml\""));
        assert!(text.contains(
            "xmlUrl=\"https://news.example.org/uk/tags/%D1%82%D1%80%D0%B0%D0%BD%D1%81%D0%BF%D0%BE%D1%80%D1%82/atom.xml\""
        ));
        assert_eq!(
            text.matches("<outline type=\"rss\"").count(),
            2 * (1 + 2 + 1 + 2)
        );
    }
}
