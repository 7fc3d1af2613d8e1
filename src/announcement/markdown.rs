//! Markdown (CommonMark) -> sanitised HTML, its plain text, and the title
//! held by a leading `# Heading`.
//!
//! Pure. Raw HTML is allowed through pulldown-cmark and then cleaned by
//! ammonia with an allow-list: no scripts, styles, frames, event handlers,
//! and only http, https and mailto links; relative links are dropped, since a
//! feed reader would resolve them against the wrong document.

use std::collections::HashSet;
use std::sync::OnceLock;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};

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

    let mut raw_html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut raw_html, events.into_iter());
    Rendered {
        title,
        html: sanitise(&raw_html),
        text: text.trim().to_string(),
    }
}

/// Cleans HTML with an allow-list.
pub fn sanitise(html: &str) -> String {
    static CLEANER: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    let cleaner = CLEANER.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.url_schemes(HashSet::from(["http", "https", "mailto"]))
            .url_relative(ammonia::UrlRelative::Deny)
            .link_rel(Some("noopener noreferrer nofollow"))
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
