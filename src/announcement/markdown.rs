//! Markdown (CommonMark) -> sanitised HTML, its plain text, and the title
//! held by a leading `# Heading`.
//!
//! Pure. Raw HTML is allowed through pulldown-cmark and then cleaned by
//! ammonia with an allow-list: no scripts, styles, frames, event handlers,
//! and only http, https and mailto links; relative links are dropped, since a
//! feed reader would resolve them against the wrong document.
//!
//! Markdown without raw HTML (most of it) skips ammonia: pulldown-cmark then
//! writes only its own elements, and [`allowed_only`] makes those what the
//! allow-list would keep. ammonia parses and re-serialises the whole HTML,
//! which was two thirds of rendering such a file.

use std::collections::HashSet;
use std::sync::OnceLock;

use super::decode::xml_safe;
use pulldown_cmark::{
    Alignment, CodeBlockKind, Event, HeadingLevel, LinkType, Options, Parser, Tag, TagEnd,
};

/// A rendered Markdown body.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Text of a first-level heading that opens the document, if any.
    pub title: Option<String>,
    /// Sanitised HTML of the rest.
    pub html: String,
    /// Plain text of the rest, blocks separated by blank lines.
    pub text: String,
}

pub fn render(markdown: &str) -> Rendered {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_SMART_PUNCTUATION;
    let mut events: Vec<Event> = Parser::new_ext(markdown, options).collect();

    let mut title = None;
    if let Some(Event::Start(Tag::Heading {
        level: HeadingLevel::H1,
        ..
    })) = events.first()
    {
        if let Some(end) = events
            .iter()
            .position(|e| matches!(e, Event::End(TagEnd::Heading(HeadingLevel::H1))))
        {
            let mut t = String::new();
            for e in &events[1..end] {
                match e {
                    Event::Text(s) | Event::Code(s) => t.push_str(s),
                    Event::SoftBreak | Event::HardBreak => t.push(' '),
                    _ => {}
                }
            }
            let t = super::text::squash_whitespace(&t);
            if !t.is_empty() {
                title = Some(t);
                events.drain(..=end);
            }
        }
    }

    let mut text = String::new();
    for e in &events {
        match e {
            Event::Text(s) | Event::Code(s) => text.push_str(s),
            Event::SoftBreak | Event::HardBreak => text.push(' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::Item
                | TagEnd::TableRow
                | TagEnd::CodeBlock,
            ) => text.push_str("\n\n"),
            Event::End(TagEnd::TableCell) => text.push(' '),
            _ => {}
        }
    }

    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    if fast_path_allowed(&events) {
        pulldown_cmark::html::push_html(&mut html, allowed_only(events));
    } else {
        pulldown_cmark::html::push_html(&mut html, events.into_iter());
        html = sanitise(&html);
    }
    let text = text.trim().to_string();
    // Numeric character references (`&#1;`, in Markdown or in raw HTML) can
    // make characters that XML forbids; the file's own bytes were cleaned
    // when decoded, and no named reference makes one. Looking for `&#`
    // spares the scan of every output of the files without any.
    if !markdown.contains("&#") {
        return Rendered { title, html, text };
    }
    Rendered {
        title: title.map(xml_safe),
        html: xml_safe(html),
        text: xml_safe(text),
    }
}

/// URL schemes a link may keep; any other, and relative links, lose their
/// `href` (see the module comment).
const URL_SCHEMES: [&str; 3] = ["http", "https", "mailto"];
/// Given to every link, as ammonia's `link_rel` does.
const LINK_REL: &str = "noopener noreferrer nofollow";

/// Whether every event [`writes_only_allowed`], and no link is inside
/// another (an autolink in a link's text): pulldown-cmark would write one
/// `<a>` inside the other, which HTML does not allow; ammonia's parser
/// splits them.
fn fast_path_allowed(events: &[Event]) -> bool {
    let mut in_link = false;
    for event in events {
        match event {
            Event::Start(Tag::Link { .. }) if in_link => return false,
            Event::Start(Tag::Link { .. }) => in_link = true,
            Event::End(TagEnd::Link) => in_link = false,
            _ => {}
        }
        if !writes_only_allowed(event) {
            return false;
        }
    }
    true
}

/// Whether pulldown-cmark writes this event as elements and attributes that
/// the allow-list keeps, once [`allowed_only`] has adjusted it. Raw HTML,
/// and anything an option not enabled here would bring (heading ids and
/// classes, alert blockquotes, footnotes, task lists, math...), is not: such
/// a document goes through ammonia whole.
fn writes_only_allowed(event: &Event) -> bool {
    match event {
        Event::Start(tag) => match tag {
            Tag::Heading {
                id, classes, attrs, ..
            } => id.is_none() && classes.is_empty() && attrs.is_empty(),
            Tag::BlockQuote(kind) => kind.is_none(),
            Tag::Paragraph
            | Tag::CodeBlock(_)
            | Tag::List(_)
            | Tag::Item
            | Tag::Table(_)
            | Tag::TableHead
            | Tag::TableRow
            | Tag::TableCell
            | Tag::Emphasis
            | Tag::Strong
            | Tag::Strikethrough
            | Tag::Link { .. }
            | Tag::Image { .. } => true,
            _ => false,
        },
        Event::End(_)
        | Event::Text(_)
        | Event::Code(_)
        | Event::SoftBreak
        | Event::HardBreak
        | Event::Rule => true,
        _ => false,
    }
}

/// Events that [`writes_only_allowed`] accepts, changed as ammonia would
/// change their HTML: images go (with their alt text), a link's `href`
/// stays only for an absolute URL with an allowed scheme and every link gets
/// `rel`, table cells lose their alignment (a `style`), code blocks their
/// language (a `class`).
fn allowed_only(events: Vec<Event<'_>>) -> impl Iterator<Item = Event<'_>> {
    let mut in_image = 0usize;
    events.into_iter().filter_map(move |event| match event {
        Event::Start(Tag::Image { .. }) => {
            in_image += 1;
            None
        }
        Event::End(TagEnd::Image) => {
            in_image = in_image.saturating_sub(1);
            None
        }
        _ if in_image > 0 => None,
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            ..
        }) => Some(Event::InlineHtml(
            link_start(link_type, &dest_url, &title).into(),
        )),
        Event::Start(Tag::Table(alignments)) => Some(Event::Start(Tag::Table(vec![
            Alignment::None;
            alignments
                .len()
        ]))),
        Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(_))) => Some(Event::Start(
            Tag::CodeBlock(CodeBlockKind::Fenced("".into())),
        )),
        event => Some(event),
    })
}

/// `<a href="…" title="…" rel="…">`: the `href` written as pulldown-cmark
/// writes it, and kept when ammonia would keep it (it checks the attribute's
/// value, which is that text with its two entities read back).
fn link_start(link_type: LinkType, dest: &str, title: &str) -> String {
    let mut href = String::new();
    if link_type == LinkType::Email {
        href.push_str("mailto:");
    }
    // Writing into a String cannot fail (the error type is `Infallible`).
    let _ = pulldown_cmark_escape::escape_href(&mut href, dest);
    let value = href.replace("&#x27;", "'").replace("&amp;", "&");
    let allowed = url::Url::parse(&value).is_ok_and(|u| URL_SCHEMES.contains(&u.scheme()));
    let mut tag = String::with_capacity(href.len() + title.len() + 64);
    tag.push_str("<a");
    if allowed {
        tag.push_str(" href=\"");
        tag.push_str(&href);
        tag.push('"');
    }
    if !title.is_empty() {
        tag.push_str(" title=\"");
        let _ = pulldown_cmark_escape::escape_html(&mut tag, title);
        tag.push('"');
    }
    tag.push_str(" rel=\"");
    tag.push_str(LINK_REL);
    tag.push_str("\">");
    tag
}

/// Cleans HTML with an allow-list.
pub fn sanitise(html: &str) -> String {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    let cleaner = CLEANER.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.url_schemes(HashSet::from(URL_SCHEMES))
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some(LINK_REL))
            .rm_tags(["img"])
            .add_tags(["figure", "figcaption"]);
        b
    });
    cleaner.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_becomes_title() {
        let r = render("# Millhouses Library reopens\r\n\r\nThe library & café *reopen*.\r\n");
        assert_eq!(r.title.as_deref(), Some("Millhouses Library reopens"));
        assert_eq!(
            r.html.trim(),
            "<p>The library &amp; café <em>reopen</em>.</p>"
        );
        assert_eq!(r.text, "The library & café reopen.");
    }

    #[test]
    fn no_heading_no_title() {
        let r = render("Text first.\n\n# Later heading\n");
        assert_eq!(r.title, None);
        assert!(r.html.contains("<h1>Later heading</h1>"));
    }

    #[test]
    fn lists_and_links_survive() {
        let r = render("- one\n- two\n\n[site](https://city.example/a?b=1&c=2)");
        assert!(r.html.contains("<li>one</li>"));
        assert!(r
            .html
            .contains("href=\"https://city.example/a?b=1&amp;c=2\""));
    }

    /// What ammonia makes of `html` keeping everything pulldown-cmark can
    /// write: it parses and re-serialises, and removes nothing.
    fn reserialised(html: &str) -> String {
        let mut b = ammonia::Builder::empty();
        b.add_tags([
            "p",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "code",
            "ul",
            "ol",
            "li",
            "table",
            "thead",
            "tbody",
            "tr",
            "th",
            "td",
            "em",
            "strong",
            "del",
            "a",
            "img",
            "hr",
            "br",
        ])
        .add_generic_attributes([
            "href", "title", "rel", "src", "alt", "style", "class", "start",
        ])
        .url_schemes(HashSet::from([
            "http",
            "https",
            "mailto",
            "javascript",
            "data",
            "ftp",
        ]))
        .url_relative(ammonia::UrlRelative::PassThrough)
        .link_rel(None);
        b.clean(html).to_string()
    }

    /// Markdown that pulldown-cmark writes without raw HTML: every construct
    /// the fast path adjusts, alone and mixed.
    fn markdown_without_html() -> Vec<String> {
        let links = [
            "[site](https://city.example/a?b=1&c=2 \"Title & 'quotes'\")",
            "[mail](mailto:clerk@city.example)",
            "<clerk@city.example>",
            "<https://city.example/путь?q=а b>",
            "<javascript:alert(1)>",
            "[x](javascript:alert(1))",
            "[x](JaVaScRiPt:alert(1))",
            "[x](&#106;avascript:alert(1))",
            "[x](data:text/html,hi)",
            "[x](/relative/page)",
            "[x](//evil.example/x)",
            "[x](page.html#top)",
            "[x](ftp://files.example/a)",
            "[x](http://[::1]:8080/a)",
            "[x](https://city.example/it's)",
            "[x](<https://city.example/a b>)",
            "[ref][r]\n\n[r]: https://city.example/ref \"Ref\"",
            "[![logo](https://city.example/logo.png \"Logo\")](https://city.example/)",
            "![alt *with* **marks**](https://city.example/x.png)",
            "![](javascript:alert(1))",
            "- a\n  ![b](https://city.example/b.png)\n  - d\n  > quote",
        ];
        let blocks = [
            "## Heading with `code` and *emphasis*",
            "> quoted\n> text with ~~strike~~",
            "```rust ignore\nfn main() { println!(\"<b>\"); }\n```",
            "    indented x < y && z > 0",
            "3. three\n4. four\n   - nested\n   - items",
            "| left | centre | right |\n|:-----|:------:|------:|\n| a & b | \"c\" | d |",
            "| head only |\n|---|",
            "line one  \nhard break\\\nand soft\nbreak",
            "---",
            "Straße \"quoted\" -- dashes... &amp; \\<escaped\\> entities &copy; &#x27;",
        ];
        let mut out: Vec<String> = links
            .iter()
            .chain(blocks.iter())
            .map(|s| s.to_string())
            .collect();
        for (i, l) in links.iter().enumerate() {
            let b = blocks[i % blocks.len()];
            out.push(format!("{b}\n\nText with {l} inside.\n\n- item {l}\n\n{b}"));
        }
        out
    }

    #[test]
    fn without_raw_html_the_output_is_what_ammonia_would_keep() {
        let options = Options::ENABLE_TABLES
            | Options::ENABLE_STRIKETHROUGH
            | Options::ENABLE_SMART_PUNCTUATION;
        // A dropped image can leave out one newline between blocks, which
        // shows nowhere.
        let blocks = |html: String| html.replace('\n', "");
        for md in markdown_without_html() {
            let events: Vec<Event> = Parser::new_ext(&md, options).collect();
            assert!(fast_path_allowed(&events), "{md}");
            let mut direct = String::new();
            pulldown_cmark::html::push_html(&mut direct, events.clone().into_iter());
            let fast = render(&md).html;
            // The same content as sanitising pulldown-cmark's own HTML...
            assert_eq!(blocks(sanitise(&fast)), blocks(sanitise(&direct)), "{md}");
            // ...and nothing in it that the sanitiser would take out.
            assert_eq!(reserialised(&fast), sanitise(&fast), "{md}\n{fast}");
        }
    }

    #[test]
    fn raw_html_or_other_elements_go_through_ammonia() {
        for md in ["a <b>bold</b>", "<div>\nblock\n</div>", "x <!-- c -->"] {
            let events: Vec<Event> = Parser::new_ext(md, Options::empty()).collect();
            assert!(!fast_path_allowed(&events), "{md}");
        }
        let footnote: Vec<Event> =
            Parser::new_ext("a[^1]\n\n[^1]: note", Options::ENABLE_FOOTNOTES).collect();
        assert!(!fast_path_allowed(&footnote));
        // An autolink inside a link's text: not nested in the output.
        let nested = "[x <https://b.example> y](https://a.example)";
        let events: Vec<Event> = Parser::new_ext(nested, Options::empty()).collect();
        assert!(events.iter().all(writes_only_allowed) && !fast_path_allowed(&events));
        let html = render(nested).html;
        assert_eq!(html.matches("<a ").count(), 2, "{html}");
        assert!(!html.contains("<a href=\"https://b.example\" rel=\"noopener noreferrer nofollow\">https://b.example</a> y</a>"), "{html}");
        let r = render("Text <span onclick=\"x()\">here</span> [a](javascript:x)");
        assert_eq!(
            r.html.trim(),
            "<p>Text <span>here</span> <a rel=\"noopener noreferrer nofollow\">a</a></p>"
        );
    }

    #[test]
    fn hostile_html_is_removed() {
        let payloads = [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"&#106;avascript:alert(1)\">x</a>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<svg onload=alert(1)>",
            "<div onclick=\"alert(1)\" style=\"position:fixed\">x</div>",
            "<style>body{display:none}</style>",
            "[x](javascript:alert(1))",
            "[x](&#106;avascript:alert(1))",
            "![x](javascript:alert(1))",
            "[x](data:text/html,hi)",
            "<![CDATA[ ]]><script>alert(1)</script>",
        ];
        for p in payloads {
            let html = render(&format!("text\n\n{p}\n")).html.to_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onload",
                "onclick",
                "javascript:",
                "data:",
                "<iframe",
                "<svg",
                "<style",
                "style=",
            ] {
                assert!(!html.contains(bad), "{p} -> {html}");
            }
        }
    }
}
