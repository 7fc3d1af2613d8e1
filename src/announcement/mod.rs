//! One announcement file's bytes -> an [`Announcement`], or a [`ParseError`].
//!
//! Pure: no file system, clock, network or logging. The path is only used for
//! its name (format, `name.LANG.ext` suffix, language folder); dates that
//! depend on the clock or on file times are decided later, by the catalog.

pub mod decode;
pub mod front_matter;
pub mod lang;
pub mod markdown;
pub mod text;

use chrono::{DateTime, FixedOffset};

use self::lang::LangTag;

/// The two announcement formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
}

impl Format {
    /// The format of a file, from its extension; `None` for other files.
    pub fn of(path: &str) -> Option<Format> {
        let name = path.rsplit('/').next().unwrap_or(path);
        let (_, ext) = name.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "txt" => Some(Format::Text),
            "md" | "markdown" => Some(Format::Markdown),
            _ => None,
        }
    }
}

/// Where an announcement's language came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LangSource {
    FrontMatter,
    FileName,
    Folder,
    Detected,
    Default,
}

impl LangSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LangSource::FrontMatter => "front-matter",
            LangSource::FileName => "file-name",
            LangSource::Folder => "folder",
            LangSource::Detected => "detected",
            LangSource::Default => "default",
        }
    }

    pub fn parse(s: &str) -> Option<LangSource> {
        [
            LangSource::FrontMatter,
            LangSource::FileName,
            LangSource::Folder,
            LangSource::Detected,
            LangSource::Default,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// The version of what reading a file makes of it (decoding, parsing,
/// language detection, titles and summaries). Raise it with any change
/// that reads an unchanged file differently: a state written by an older
/// version has every file read again once (see `pipeline::reading_rules`).
pub const READING_VERSION: u32 = 1;

/// What the site configuration says about parsing.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Expected languages; empty = all supported.
    pub languages: Vec<LangTag>,
    pub default_language: LangTag,
    pub max_title_chars: usize,
    pub max_summary_chars: usize,
}

/// A derived title (first sentence) is kept shorter than an explicit one.
const DERIVED_TITLE_CHARS: usize = 110;

/// A parsed announcement, ready for the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub title: String,
    pub lang: LangTag,
    pub lang_source: LangSource,
    /// WHATWG encoding name of the source bytes.
    pub encoding: &'static str,
    /// Sanitised HTML of the body.
    pub content_html: String,
    /// Plain-text summary.
    pub summary: String,
    pub published: Option<DateTime<FixedOffset>>,
    pub updated: Option<DateTime<FixedOffset>>,
    /// The `id` from the front matter, if any.
    pub id: Option<String>,
    pub author: Option<String>,
    pub tags: Vec<String>,
    /// Front matter `translation_key`, else the path without its language
    /// suffix when the file name has one (`news/tram.uk.md` -> `news/tram`).
    pub translation_key: Option<String>,
    pub publish_at: Option<DateTime<FixedOffset>>,
    pub expires: Option<DateTime<FixedOffset>>,
    pub withdrawn: bool,
    pub withdrawn_comment: Option<String>,
    pub warnings: Vec<String>,
}

/// Why a file is not published.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Decode(#[from] decode::DecodeError),
    #[error(transparent)]
    FrontMatter(#[from] front_matter::FrontMatterError),
    #[error("no text (only blank lines or white space)")]
    Blank,
    #[error("not an announcement file (expected .txt, .md or .markdown)")]
    UnknownFormat,
}

/// Parses one announcement. `path` is relative to the watch folder,
/// `/`-separated.
pub fn parse(path: &str, bytes: &[u8], options: &ParseOptions) -> Result<Announcement, ParseError> {
    let format = Format::of(path).ok_or(ParseError::UnknownFormat)?;
    let decoded = decode::decode(bytes)?;
    let mut warnings = decoded.warnings;
    if text::is_blank(&decoded.text) {
        return Err(ParseError::Blank);
    }
    let (fm, body) = front_matter::split(&decoded.text)?;
    let fm = fm.unwrap_or_default();
    warnings.extend(fm.warnings.iter().cloned());

    // Body -> (explicit title, html, plain text).
    let (explicit_title, content_html, body_text) = match format {
        Format::Markdown => {
            let r = markdown::render(body);
            let mut html = r.html;
            if let (Some(fm_title), Some(h1)) = (&fm.title, &r.title) {
                if fm_title != h1 {
                    html = format!("<h1>{}</h1>\n{html}", text::escape(h1));
                }
            }
            (r.title, html, r.text)
        }
        Format::Text => {
            let (headline, rest) = match text::split_headline(body) {
                Some((h, rest)) => (Some(h.to_string()), rest),
                None => (None, body),
            };
            let paragraphs = text::paragraphs(rest);
            let plain = paragraphs
                .iter()
                .map(|p| p.join("\n"))
                .collect::<Vec<_>>()
                .join("\n\n");
            (headline, text::paragraphs_html(&paragraphs), plain)
        }
    };

    let title = match fm.title.as_deref().or(explicit_title.as_deref()) {
        Some(t) => text::squash_and_shorten(t, options.max_title_chars),
        None => text::squash_and_shorten(
            text::first_sentence(&body_text),
            DERIVED_TITLE_CHARS.min(options.max_title_chars),
        ),
    };
    if title.is_empty() {
        return Err(ParseError::Blank);
    }
    // A file holding only a headline still gets content.
    let content_html = if text::is_blank(&body_text) && content_html.trim().is_empty() {
        format!("<p>{}</p>\n", text::escape(&title))
    } else {
        content_html
    };
    let summary_source = match &fm.summary {
        Some(s) => s.clone(),
        None if text::is_blank(&body_text) => title.clone(),
        None => body_text.clone(),
    };
    let summary = text::squash_and_shorten(&summary_source, options.max_summary_chars);

    let (lang, lang_source) =
        resolve_language(path, &fm, &title, &body_text, options, &mut warnings);

    Ok(Announcement {
        title,
        lang,
        lang_source,
        encoding: decoded.encoding,
        content_html,
        summary,
        published: fm.published,
        updated: fm.updated,
        id: fm.id,
        author: fm.author,
        tags: fm.tags,
        translation_key: fm
            .translation_key
            .map(|k| format!("key:{k}"))
            .or_else(|| translation_stem(path)),
        publish_at: fm.publish_at,
        expires: fm.expires,
        withdrawn: fm.withdrawn,
        withdrawn_comment: fm.withdrawn_comment,
        warnings,
    })
}

/// Front matter, then `name.LANG.ext`, then a language folder, then
/// detection among the configured languages, then the default.
fn resolve_language(
    path: &str,
    fm: &front_matter::FrontMatter,
    title: &str,
    body: &str,
    options: &ParseOptions,
    warnings: &mut Vec<String>,
) -> (LangTag, LangSource) {
    if let Some(raw) = &fm.lang {
        match LangTag::parse(raw) {
            Some(tag) => return (tag, LangSource::FrontMatter),
            None => warnings.push(format!(
                "front matter `lang`: {raw:?} is not a BCP 47 language tag; ignored"
            )),
        }
    }
    if let Some(tag) = lang_from_file_name(path) {
        return (tag, LangSource::FileName);
    }
    if let Some(tag) = lang_from_folder(path) {
        return (tag, LangSource::Folder);
    }
    let sample = format!("{title}\n{body}");
    match lang::detect(&sample, &options.languages, &options.default_language) {
        Some(d) => (d.lang, LangSource::Detected),
        None => (options.default_language.clone(), LangSource::Default),
    }
}

/// `news/tram.uk.md` -> `path:news/tram`: files that differ only in their
/// language suffix are translations of each other.
fn translation_stem(path: &str) -> Option<String> {
    lang_from_file_name(path)?;
    let stem = path.rsplit_once('.')?.0.rsplit_once('.')?.0;
    Some(format!("path:{stem}"))
}

/// `tram.uk.md` -> `uk`.
pub fn lang_from_file_name(path: &str) -> Option<LangTag> {
    let name = path.rsplit('/').next()?;
    let stem = name.rsplit_once('.')?.0;
    let (_, suffix) = stem.rsplit_once('.')?;
    LangTag::parse_known(suffix)
}

/// `pl/2025/x.txt` -> `pl`.
pub fn lang_from_folder(path: &str) -> Option<LangTag> {
    let (first, _) = path.split_once('/')?;
    LangTag::parse_known(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ParseOptions {
        ParseOptions {
            languages: Vec::new(),
            default_language: LangTag::parse("en").unwrap(),
            max_title_chars: 300,
            max_summary_chars: 400,
        }
    }

    fn parse_ok(path: &str, text: &str) -> Announcement {
        parse(path, text.as_bytes(), &options()).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn characters_xml_forbids_never_come_out_of_references_or_escapes() {
        let forbidden = |s: &str| {
            s.chars().any(|c| {
                (c < ' ' && !matches!(c, '\t' | '\n')) || matches!(c, '\u{fffe}' | '\u{ffff}')
            })
        };
        let md = "---\ntitle: \"Title \\x01 \\uFFFE end\"\nauthor: \"A\\x02\"\n\
                  tags: [\"t\\x03\"]\nid: \"x\\x04y\"\nsummary: \"S\\x05\"\n---\n\
                  Body &#1; and &#xFFFE; and &#x1b;[31m and &#13; [l](https://a.example \"t&#2;\")\n\n\
                  `code &#1;` <b>&#3;</b>\n";
        let a = parse_ok("a.md", md);
        for field in [&a.title, &a.content_html, &a.summary]
            .into_iter()
            .chain(a.author.iter())
            .chain(a.id.iter())
            .chain(a.tags.iter())
        {
            assert!(!forbidden(field), "{field:?}");
        }
        assert_eq!(a.title, "Title end");
        // Without front matter the title comes from the body.
        let a = parse_ok("b.md", "# Head &#1;line\n\nText &#8; here.\n");
        assert_eq!(a.title, "Head line");
        assert!(!forbidden(&a.content_html) && !forbidden(&a.summary));
        // A TOML block's escapes too.
        let a = parse_ok("c.md", "+++\ntitle = \"T\\u0001\"\n+++\nText.\n");
        assert_eq!(a.title, "T");
    }

    #[test]
    fn formats() {
        assert_eq!(Format::of("a/b.TXT"), Some(Format::Text));
        assert_eq!(Format::of("x.markdown"), Some(Format::Markdown));
        assert_eq!(Format::of("x.md~"), None);
        assert_eq!(Format::of("README"), None);
    }

    #[test]
    fn language_sources_in_order() {
        let check = |path: &str, text: &str, lang: &str, source: LangSource| {
            let a = parse_ok(path, text);
            assert_eq!((a.lang.as_str(), a.lang_source), (lang, source), "{path}");
        };
        let polish = "Miasto ogłasza nabór wniosków do budżetu obywatelskiego na przyszły rok.";
        check(
            "x.md",
            &format!("---\nlang: uk-UA\n---\n{polish}"),
            "uk-UA",
            LangSource::FrontMatter,
        );
        check("x.de.txt", polish, "de", LangSource::FileName);
        check("fr/x.txt", polish, "fr", LangSource::Folder);
        check("fr/x.it.txt", polish, "it", LangSource::FileName);
        check("notes.old.txt", polish, "pl", LangSource::Detected);
        check("x.txt", "12:00 – 14:00", "en", LangSource::Default);
        check(
            "x.md",
            &format!("---\nlang: klingon language\n---\n{polish}"),
            "pl",
            LangSource::Detected,
        );
    }

    #[test]
    fn plain_text_title_from_first_sentence() {
        let a = parse_ok(
            "a.txt",
            " 15 жовтня 2025 року Краків офіційно приєднався до асоціації Eurocities – найбільшої європейської\nмережі, що об'єднує міста, які співпрацюють в галузі сталого розвитку.\n\nДругий абзац.\n\n\u{a0}\n",
        );
        assert!(
            a.title.starts_with("15 жовтня 2025 року Краків"),
            "{}",
            a.title
        );
        assert!(a.title.ends_with('…') && a.title.chars().count() <= DERIVED_TITLE_CHARS);
        assert_eq!(a.lang.as_str(), "uk");
        assert!(a.content_html.contains("європейської мережі"));
        assert!(!a.content_html.contains('\u{a0}'));
        assert_eq!(a.content_html.matches("<p>").count(), 2);
    }

    #[test]
    fn headline_title_and_body() {
        let a = parse_ok("a.txt", "Fish & Chips <Night>\n\nBring friends & family.\n");
        assert_eq!(a.title, "Fish & Chips <Night>");
        assert_eq!(a.content_html, "<p>Bring friends &amp; family.</p>\n");
        assert_eq!(a.summary, "Bring friends & family.");
    }

    #[test]
    fn headline_only_file_gets_content() {
        let a = parse_ok("a.txt", "Tram line 4 diverted during track works\n");
        assert_eq!(a.title, "Tram line 4 diverted during track works");
        assert!(a.content_html.contains("Tram line 4"));
    }

    #[test]
    fn markdown_front_matter_and_heading() {
        let a = parse_ok(
            "a.md",
            "---\ntitle: From front matter\ndate: 2025-01-02\ntags: [a, b]\n---\nBody *text*.\n",
        );
        assert_eq!(a.title, "From front matter");
        assert_eq!(
            a.published.unwrap().to_rfc3339(),
            "2025-01-02T00:00:00+00:00"
        );
        assert_eq!(a.tags, ["a", "b"]);
        let a = parse_ok("b.md", "# Heading title\n\nBody.\n");
        assert_eq!(a.title, "Heading title");
        assert!(!a.content_html.contains("Heading title"));
    }

    #[test]
    fn rejections() {
        let check = |path: &str, bytes: &[u8], expected: fn(&ParseError) -> bool| {
            let err = parse(path, bytes, &options()).unwrap_err();
            assert!(expected(&err), "{path}: {err}");
        };
        check("a.txt", b"", |e| {
            matches!(e, ParseError::Decode(decode::DecodeError::Empty))
        });
        check("a.txt", b"\xef\xbb\xbf", |e| *e == ParseError::Blank);
        check("a.txt", " \t\n\u{a0}\n\u{3000}".as_bytes(), |e| {
            *e == ParseError::Blank
        });
        check("a.md", b"---\ntitle: x\nbody", |e| {
            matches!(e, ParseError::FrontMatter(_))
        });
        check("a.png", b"x", |e| *e == ParseError::UnknownFormat);
    }

    #[test]
    fn long_titles_are_shortened_on_char_boundaries() {
        let long = "Oznámení o zahájení veřejného projednání ".repeat(20);
        let a = parse_ok("a.md", &format!("# {long}\n\nText."));
        assert!(a.title.chars().count() <= 300);
        assert!(long.starts_with(a.title.trim_end_matches('…')));
    }
}
