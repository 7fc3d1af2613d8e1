//! HTML pages: the index (`/`, `/{lang}/`) and one page per announcement.
//!
//! Readable without JavaScript and on a phone; `lang` and `dir` are set on
//! every element whose language differs from the page's; every feed is
//! advertised in `<head>` for autodiscovery.

use std::fmt::Write as _;

use super::{encode_path, page_path, page_path_of, Scope, Site};
use crate::announcement::lang::LangTag;
use crate::announcement::text::escape;
use crate::catalog::Entry;

const STYLE: &str = "body{font:1.05rem/1.55 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
max-width:46rem;margin:0 auto;padding:1rem;color:#1a1a1a;background:#fff}\
header,footer{border-bottom:1px solid #ddd;margin-bottom:1rem;padding-bottom:.5rem}\
footer{border-top:1px solid #ddd;border-bottom:0;margin-top:2rem;padding-top:.5rem;font-size:.9rem}\
h1{font-size:1.6rem;line-height:1.25}h2{font-size:1.2rem;margin:.2rem 0}\
a{color:#0645ad}ul.feeds,ul.langs{padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:.3rem 1rem}\
ol.entries{padding:0;list-style:none}ol.entries li{margin:0 0 1.2rem}\
time{color:#555;font-size:.9rem}.summary{margin:.2rem 0}\
article{overflow-wrap:anywhere}img{max-width:100%}";

/// The index of a scope: its feeds, the languages, the newest entries.
pub fn index(site: &Site, scope: &Scope, entries: &[Entry]) -> String {
    let lang = scope.lang_of(site);
    let title = scope.title(site);
    let mut h = head(site, lang, &title, &scope.dir());
    h.push_str("<header>\n");
    let _ = writeln!(h, "<h1>{}</h1>", escape(&title));
    nav(&mut h, site, scope);
    h.push_str("</header>\n<main>\n");
    if entries.is_empty() {
        h.push_str("<p>No announcements yet.</p>\n");
    }
    h.push_str("<ol class=\"entries\">\n");
    for e in entries {
        let attrs = lang_attrs(&e.lang, lang);
        let _ = write!(
            h,
            "<li{attrs}><h2><a href=\"{}\">{}</a></h2>\n<time datetime=\"{}\">{}</time>\n<p class=\"summary\">{}</p>",
            escape(&relative(&scope.dir(), &page_path(e))),
            escape(&e.title),
            e.published.to_rfc3339(),
            e.published.format("%Y-%m-%d"),
            escape(&e.summary),
        );
        translations(&mut h, &scope.dir(), e);
        h.push_str("</li>\n");
    }
    h.push_str("</ol>\n</main>\n");
    foot(&mut h, site);
    h
}

/// One announcement's page, with its full text.
pub fn entry(site: &Site, e: &Entry) -> String {
    let dir = format!("{}/", e.lang.primary());
    let mut extra = String::new();
    for t in &e.translations {
        let _ = writeln!(
            extra,
            "<link rel=\"alternate\" hreflang=\"{}\" href=\"{}\">",
            escape(t.lang.as_str()),
            escape(&relative(&dir, &page_path_of(&t.lang, &t.slug))),
        );
    }
    let mut h = head_with(site, &e.lang, &e.title, &dir, &extra);
    h.push_str("<header>\n");
    let _ = writeln!(
        h,
        "<p><a href=\"{}\">{}</a></p>",
        escape(&relative(&dir, "")),
        escape(&site.title)
    );
    nav(&mut h, site, &Scope::lang(e.lang.primary_tag()));
    h.push_str("</header>\n<main>\n<article>\n");
    let _ = writeln!(h, "<h1>{}</h1>", escape(&e.title));
    let _ = write!(
        h,
        "<p><time datetime=\"{}\">{}</time>",
        e.published.to_rfc3339(),
        e.published.format("%Y-%m-%d %H:%M")
    );
    if e.updated != e.published {
        let _ = write!(
            h,
            " · <time datetime=\"{}\">{}</time>",
            e.updated.to_rfc3339(),
            e.updated.format("%Y-%m-%d %H:%M")
        );
    }
    if let Some(author) = &e.author {
        let _ = write!(h, " · {}", escape(author));
    }
    h.push_str("</p>\n");
    translations(&mut h, &dir, e);
    h.push_str(&e.content);
    if !e.tags.is_empty() {
        h.push_str("<p>");
        for (i, t) in e.tags.iter().enumerate() {
            if i > 0 {
                h.push_str(", ");
            }
            let _ = write!(h, "#{}", escape(t));
        }
        h.push_str("</p>\n");
    }
    h.push_str("</article>\n</main>\n");
    foot(&mut h, site);
    h
}

/// "Also in: ..." with a link to each translation.
fn translations(h: &mut String, dir: &str, e: &Entry) {
    if e.translations.is_empty() {
        return;
    }
    h.push_str("<p class=\"translations\">⇄ ");
    for (i, t) in e.translations.iter().enumerate() {
        if i > 0 {
            h.push_str(" · ");
        }
        let _ = write!(
            h,
            "<a href=\"{}\" hreflang=\"{}\" lang=\"{}\" dir=\"{}\" title=\"{}\">{}</a>",
            escape(&relative(dir, &page_path_of(&t.lang, &t.slug))),
            escape(t.lang.as_str()),
            escape(t.lang.as_str()),
            if t.lang.is_rtl() { "rtl" } else { "ltr" },
            escape(&t.title),
            escape(t.lang.name()),
        );
    }
    h.push_str("</p>\n");
}

fn head(site: &Site, lang: &LangTag, title: &str, dir: &str) -> String {
    head_with(site, lang, title, dir, "")
}

fn head_with(site: &Site, lang: &LangTag, title: &str, dir: &str, extra: &str) -> String {
    let mut h = String::with_capacity(8192);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{}\" dir=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{}</title>\n",
        escape(lang.as_str()),
        if lang.is_rtl() { "rtl" } else { "ltr" },
        escape(title),
    );
    let mut feeds = vec![(None, site.title.clone(), String::new())];
    for (l, _) in &site.languages {
        feeds.push((
            Some(l),
            Scope::lang(l.clone()).title(site),
            format!("{}/", l.primary()),
        ));
    }
    for (l, feed_title, feed_dir) in &feeds {
        let hreflang = l
            .map(|l| format!(" hreflang=\"{}\"", escape(l.as_str())))
            .unwrap_or_default();
        for (kind, file, label) in [
            ("application/atom+xml", "atom.xml", "Atom"),
            ("application/rss+xml", "rss.xml", "RSS"),
            ("application/feed+json", "feed.json", "JSON Feed"),
        ] {
            let _ = writeln!(
                h,
                "<link rel=\"alternate\" type=\"{kind}\"{hreflang} title=\"{} ({label})\" href=\"{}\">",
                escape(feed_title),
                escape(&relative(dir, &format!("{feed_dir}{file}"))),
            );
        }
    }
    let _ = writeln!(
        h,
        "<link rel=\"outline\" type=\"text/x-opml\" title=\"All feeds (OPML)\" href=\"{}\">",
        escape(&relative(dir, "feeds.opml"))
    );
    h.push_str(extra);
    let _ = writeln!(h, "<style>{STYLE}</style>\n</head>\n<body>");
    h
}

/// Links to the scope's feeds and to every language's index. Only the
/// home page (every entry's scope) shows how many entries each language
/// has: it is rendered again whenever one is added or goes, and the other
/// pages are not, on disk (100,000 entry pages).
fn nav(h: &mut String, site: &Site, scope: &Scope) {
    let here = scope.dir();
    let _ = writeln!(
        h,
        "<ul class=\"feeds\"><li><a href=\"{}\">Atom</a></li><li><a href=\"{}\">RSS</a></li>\
         <li><a href=\"{}\">JSON Feed</a></li><li><a href=\"{}\">OPML</a></li></ul>",
        escape(&relative(&here, &format!("{here}atom.xml"))),
        escape(&relative(&here, &format!("{here}rss.xml"))),
        escape(&relative(&here, &format!("{here}feed.json"))),
        escape(&relative(&here, "feeds.opml")),
    );
    h.push_str("<ul class=\"langs\">");
    let _ = write!(
        h,
        "<li><a href=\"{}\">✱</a></li>",
        escape(&relative(&here, ""))
    );
    let home = *scope == Scope::ALL;
    for (l, count) in &site.languages {
        let _ = write!(
            h,
            "<li lang=\"{}\" dir=\"{}\"><a href=\"{}\" hreflang=\"{}\">{}</a>",
            escape(l.as_str()),
            if l.is_rtl() { "rtl" } else { "ltr" },
            escape(&relative(&here, &format!("{}/", l.primary()))),
            escape(l.as_str()),
            escape(l.name()),
        );
        if home {
            let _ = write!(h, " ({count})");
        }
        h.push_str("</li>");
    }
    h.push_str("</ul>\n");
}

fn foot(h: &mut String, site: &Site) {
    let _ = writeln!(
        h,
        "<footer>{} · herald</footer>\n</body>\n</html>",
        escape(&site.description)
    );
}

/// A link from a page in `from_dir` (`""` or `"uk/"`) to a site path, kept
/// relative so that the pages work under any base URL and from `feeds/`.
fn relative(from_dir: &str, to: &str) -> String {
    let ups = from_dir.matches('/').count();
    let target = encode_path(to);
    let mut s = "../".repeat(ups);
    s.push_str(&target);
    if s.is_empty() {
        "./".to_string()
    } else {
        s
    }
}

/// ` lang=".." dir=".."` when an element's language differs from the page's.
fn lang_attrs(lang: &LangTag, page: &LangTag) -> String {
    if lang == page {
        String::new()
    } else {
        format!(
            " lang=\"{}\" dir=\"{}\"",
            escape(lang.as_str()),
            if lang.is_rtl() { "rtl" } else { "ltr" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::fixtures;

    #[test]
    fn index_lists_entries_and_feeds() {
        let site = fixtures::site();
        let entries = vec![fixtures::entry("tram", "uk", "Трамвай <2>", "<p>x</p>")];
        let html = index(&site, &Scope::ALL, &entries);
        assert!(html.contains("<html lang=\"en\" dir=\"ltr\">"));
        assert!(html.contains(
            "<li lang=\"uk\" dir=\"ltr\"><h2><a href=\"uk/tram.html\">Трамвай &lt;2&gt;</a>"
        ));
        assert!(html.contains("type=\"application/atom+xml\" hreflang=\"uk\""));
        assert!(html.contains("href=\"uk/atom.xml\""));
    }

    #[test]
    fn entry_page_is_rtl_for_arabic() {
        let site = fixtures::site();
        let e = fixtures::entry("x", "ar", "عنوان", "<p>نص</p>");
        let html = entry(&site, &e);
        assert!(html.contains("<html lang=\"ar\" dir=\"rtl\">"));
        assert!(html.contains("<h1>عنوان</h1>"));
        assert!(html.contains("href=\"../atom.xml\""));
    }

    #[test]
    fn relative_links() {
        assert_eq!(relative("", ""), "./");
        assert_eq!(relative("uk/", ""), "../");
        assert_eq!(relative("uk/", "uk/a.html"), "../uk/a.html");
    }
}
