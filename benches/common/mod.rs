//! Inputs shared by the benchmarks: announcements built from the
//! language-detection samples (38 languages), as plain text, as Markdown with
//! front matter, and in the legacy encodings office PCs produce.

use std::path::Path;

use herald::announcement::lang::LangTag;
use herald::announcement::{self, Announcement, ParseOptions};

/// The daemon's allocator (see `src/main.rs`), so that the figures are the
/// daemon's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(serde::Deserialize)]
struct Sample {
    lang: String,
    kind: String,
    text: String,
}

/// A file name and its bytes.
pub struct Input {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// The legacy encoding an office PC would use for a language, if any.
fn legacy(lang: &str) -> Option<&'static encoding_rs::Encoding> {
    Some(match lang {
        "uk" | "ru" | "be" | "bg" | "mk" | "sr" => encoding_rs::WINDOWS_1251,
        "pl" | "cs" | "sk" | "hu" | "hr" | "sl" | "ro" | "bs" | "sq" => encoding_rs::WINDOWS_1250,
        "el" => encoding_rs::WINDOWS_1253,
        "tr" => encoding_rs::WINDOWS_1254,
        "lv" | "lt" | "et" => encoding_rs::WINDOWS_1257,
        "de" | "fr" | "es" | "it" | "nl" | "pt" | "ca" | "da" | "sv" | "fi" | "ga" | "cy"
        | "is" | "en" | "nb" | "nn" => encoding_rs::WINDOWS_1252,
        _ => return None,
    })
}

/// Three announcements per language of the samples (plain UTF-8, Markdown
/// with front matter, legacy encoding where there is one), 1.5–4 KB each.
pub fn inputs() -> Vec<Input> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lang_samples.json");
    let raw = std::fs::read_to_string(&path).expect("tests/fixtures/lang_samples.json");
    let samples: Vec<Sample> = serde_json::from_str(&raw).expect("samples parse");
    let mut langs: Vec<&str> = samples.iter().map(|s| s.lang.as_str()).collect();
    langs.dedup();
    let mut out = Vec::new();
    for lang in langs {
        let of = |kind: &str| {
            samples
                .iter()
                .find(|s| s.lang == lang && s.kind == kind)
                .map_or("", |s| s.text.as_str())
        };
        let headline = of("headline");
        let mut body = String::new();
        // Hard-wrapped paragraphs, as text extracted from a PDF comes.
        while body.len() < 2000 {
            for kind in ["short", "dense", "paragraph", "english-quote"] {
                for line in wrap(of(kind), 72) {
                    body.push_str(&line);
                    body.push('\n');
                }
                body.push('\n');
            }
        }
        let text = format!("{headline}\n\n{body}");
        out.push(Input {
            name: format!("{lang}-plain.txt"),
            bytes: text.clone().into_bytes(),
        });
        out.push(Input {
            name: format!("{lang}-front.md"),
            bytes: format!(
                "---\ntitle: \"{}\"\ndate: 2026-03-14T09:30:00+02:00\ntags: [transport, city]\n---\n\n{}",
                headline.replace('"', "'"),
                body.replace("\n\n", "\n\n**Note:** ")
            )
            .into_bytes(),
        });
        if let Some(enc) = legacy(lang) {
            let (bytes, _, lossy) = enc.encode(&text);
            if !lossy {
                out.push(Input {
                    name: format!("{lang}-{}.txt", enc.name()),
                    bytes: bytes.into_owned(),
                });
            }
        }
    }
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().expect("one line at least");
        if !last.is_empty() && last.chars().count() + word.chars().count() >= width {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

/// Parse options as the daemon uses them with no `site.languages` set.
pub fn options() -> ParseOptions {
    ParseOptions {
        languages: Vec::new(),
        default_language: LangTag::parse("en").expect("en"),
        max_title_chars: 300,
        max_summary_chars: 400,
    }
}

/// Every input parsed.
#[allow(dead_code)]
pub fn parsed() -> Vec<Announcement> {
    let options = options();
    inputs()
        .iter()
        .map(|i| announcement::parse(&i.name, &i.bytes, &options).expect("benchmark input parses"))
        .collect()
}
