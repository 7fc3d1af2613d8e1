//! Bytes -> clean text.
//!
//! Order: byte order mark (UTF-8, UTF-16LE/BE), then UTF-16 without a BOM,
//! then strict UTF-8, then "mostly UTF-8" (decoded with U+FFFD and a
//! warning), then binary sniffing, then a legacy single-byte or CJK encoding
//! guessed by chardetng. The result is normalised for XML 1.0: CRLF/CR -> LF,
//! no characters XML forbids, no ANSI escape sequences, no BOM.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// Decoded text and what it took to get it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub text: String,
    /// WHATWG name, as `encoding_rs::Encoding::name()` gives it.
    pub encoding: &'static str,
    pub warnings: Vec<String>,
}

/// Why bytes are not text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty file")]
    Empty,
    #[error("not text: {0}")]
    Binary(&'static str),
}

/// Decodes an announcement's bytes.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    let mut warnings = Vec::new();
    // Valid UTF-8 (most files) is checked once and borrowed, not decoded.
    let mut valid_utf8 = None;
    let (encoding, body) = if let Some((enc, bom_len)) = Encoding::for_bom(bytes) {
        (enc, &bytes[bom_len..])
    } else if let Some(enc) = utf16_without_bom(bytes) {
        warnings.push(format!("no byte order mark; read as {}", enc.name()));
        (enc, bytes)
    } else if let Ok(text) = simdutf8::basic::from_utf8(bytes) {
        valid_utf8 = Some(text);
        (UTF_8, bytes)
    } else if mostly_utf8(bytes) {
        warnings.push("invalid UTF-8 sequences replaced with U+FFFD".to_string());
        (UTF_8, bytes)
    } else {
        if let Some(kind) = binary_kind(bytes) {
            return Err(DecodeError::Binary(kind));
        }
        (guess_legacy(&words_with_non_ascii(bytes)), bytes)
    };
    let (text, had_errors) = match valid_utf8 {
        Some(text) => (Cow::Borrowed(text), false),
        None => encoding.decode_without_bom_handling(body),
    };
    if had_errors && encoding != UTF_8 {
        warnings.push(format!(
            "bytes not valid in {} replaced with U+FFFD",
            encoding.name()
        ));
    }
    let text = if needs_cleaning(&text) {
        clean(&text)
    } else {
        text.into_owned()
    };
    if looks_garbled(&text) {
        return Err(DecodeError::Binary("mostly unprintable after decoding"));
    }
    Ok(Decoded {
        text,
        encoding: encoding.name(),
        warnings,
    })
}

/// The words of `bytes` that hold a non-ASCII byte, one space apart: what
/// chardetng needs to guess a legacy encoding. It scores pairs of bytes
/// of which one at least is non-ASCII, and letter case within words; a
/// word of ASCII bytes only adds nothing to any candidate. Fed this, it
/// guessed as from the whole file for every one of 6,709 legacy-encoded
/// texts (the benchmark corpus's, the evaluation texts in 19 encodings,
/// the shared corpus's, the tests' fixtures), reading 55% fewer bytes: it
/// runs every byte through each of its ~27 candidates, ~600 instructions
/// a byte.
fn words_with_non_ascii(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for word in bytes.split(|&c| matches!(c, b' ' | b'\n' | b'\r' | b'\t')) {
        if !word.is_ascii() {
            if !out.is_empty() {
                out.push(b' ');
            }
            out.extend_from_slice(word);
        }
    }
    out
}

/// How much of the words with non-ASCII bytes chardetng reads before its
/// guess is taken if that is a Cyrillic encoding.
const CYRILLIC_SETTLED_AFTER: usize = 512;

/// The Cyrillic encodings chardetng knows. They place the letters apart
/// (windows-1251 and x-mac-cyrillic share the small letters, not the
/// capitals; KOI8-R and KOI8-U differ in letters Ukrainian uses all the
/// time), so a few hundred bytes of Cyrillic words tell them apart. Latin
/// encodings are not taken early: windows-1250 and windows-1252 differ in a
/// few letters, which may come late. Nor Greek ones: ISO-8859-7 and
/// windows-1253 differ in a capital and some punctuation (a guess at
/// 100 bytes changed later).
const CYRILLIC: &[&Encoding] = &[
    encoding_rs::WINDOWS_1251,
    encoding_rs::KOI8_U,
    encoding_rs::KOI8_R,
    encoding_rs::ISO_8859_5,
    encoding_rs::IBM866,
    encoding_rs::X_MAC_CYRILLIC,
];

/// chardetng's guess for `words` (see [`words_with_non_ascii`]).
fn guess_legacy(words: &[u8]) -> &'static Encoding {
    guess_legacy_early(words).0
}

/// [`guess_legacy`], and whether the guess was taken early: chardetng
/// reads [`CYRILLIC_SETTLED_AFTER`] bytes first and stops there when it
/// guesses a Cyrillic encoding, where every word holds non-ASCII bytes and
/// it would read the whole file. (Its `guess_assess` flag cannot help: in
/// 0.1.17 it is true for every guess.) On the benchmark corpus's 5,937
/// legacy-encoded files and the evaluation texts (each and all joined, in
/// every encoding that holds them) every guess was the whole text's, and
/// chardetng took ~30% less time.
fn guess_legacy_early(words: &[u8]) -> (&'static Encoding, bool) {
    let mut detector = chardetng::EncodingDetector::new();
    match words.split_at_checked(CYRILLIC_SETTLED_AFTER) {
        Some((head, rest)) if !rest.is_empty() => {
            // chardetng reads a stream: where it is cut does not matter.
            detector.feed(head, false);
            let guess = detector.guess(None, false);
            if CYRILLIC.contains(&guess) {
                return (guess, true);
            }
            detector.feed(rest, true);
        }
        _ => {
            detector.feed(words, true);
        }
    }
    (detector.guess(None, false), false)
}

/// Text whose every other byte is NUL is UTF-16 saved without a BOM.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    if bytes.len() < 8 || !bytes.len().is_multiple_of(2) || !bytes.contains(&0) {
        return None;
    }
    let pairs = bytes.len() / 2;
    let even_nul = bytes.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd_nul = bytes.iter().skip(1).step_by(2).filter(|&&b| b == 0).count();
    // Latin-script UTF-16 has a NUL in nearly every high byte and almost
    // none in the low bytes.
    if odd_nul * 10 >= pairs * 7 && even_nul * 20 < pairs {
        Some(UTF_16LE)
    } else if even_nul * 10 >= pairs * 7 && odd_nul * 20 < pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Invalid UTF-8 with many valid multi-byte sequences is damaged UTF-8, not
/// a legacy encoding: re-decoding it as one would garble every valid letter.
fn mostly_utf8(bytes: &[u8]) -> bool {
    let mut valid_multibyte = 0usize;
    let mut invalid = 0usize;
    let mut rest = bytes;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                valid_multibyte += s.chars().filter(|c| c.len_utf8() > 1).count();
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // SAFETY-free: `good` is valid UTF-8 by construction.
                valid_multibyte += std::str::from_utf8(good)
                    .map(|s| s.chars().filter(|c| c.len_utf8() > 1).count())
                    .unwrap_or(0);
                invalid += 1;
                let skip = e.error_len().unwrap_or(bad.len()).max(1);
                rest = &bad[skip.min(bad.len())..];
                if rest.is_empty() {
                    break;
                }
            }
        }
    }
    valid_multibyte >= 8 && valid_multibyte >= invalid * 2
}

/// Recognises files that are not text: known magic numbers, or too many
/// control bytes.
fn binary_kind(bytes: &[u8]) -> Option<&'static str> {
    const MAGIC: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n", "PNG image"),
        (b"GIF87a", "GIF image"),
        (b"GIF89a", "GIF image"),
        (b"\xff\xd8\xff", "JPEG image"),
        (b"%PDF-", "PDF document"),
        (b"PK\x03\x04", "ZIP archive (or an office document)"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
            "OLE compound file (old office format)",
        ),
        (b"\x1f\x8b", "gzip data"),
        (b"\x7fELF", "executable"),
        (b"RIFF", "RIFF media"),
        (b"SQLite format 3\0", "SQLite database"),
    ];
    for (magic, kind) in MAGIC {
        if bytes.starts_with(magic) {
            return Some(kind);
        }
    }
    let sample = &bytes[..bytes.len().min(8192)];
    let control = sample
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0x1b))
        .count();
    (control * 20 > sample.len()).then_some("binary data (control bytes)")
}

/// After decoding: mostly replacement or control characters means garbage.
fn looks_garbled(text: &str) -> bool {
    // After `clean` the only "bad" characters left are U+FFFD.
    if !text.contains('\u{FFFD}') {
        return false;
    }
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in text.chars().take(20_000) {
        if c.is_whitespace() {
            continue;
        }
        total += 1;
        if c == '\u{FFFD}' || c.is_control() {
            bad += 1;
        }
    }
    total > 0 && bad * 5 > total
}

/// Whether [`clean`] would change `text`: a byte-wise scan (every character
/// it removes or rewrites starts with an ASCII control byte or with the
/// UTF-8 lead bytes of U+0080..U+009F, U+FEFF, U+FFFE and U+FFFF).
fn needs_cleaning(text: &str) -> bool {
    let b = text.as_bytes();
    let cleaned_at = |i: usize| match b[i] {
        b'\n' | b'\t' => false,
        0..=0x1f | 0x7f => true,
        0xc2 => b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)),
        0xef => matches!(
            b.get(i + 1..i + 3),
            Some([0xbb, 0xbf] | [0xbf, 0xbe | 0xbf])
        ),
        _ => false,
    };
    // Blocks without any of those bytes (nearly all) are passed over by a
    // branch-free test the compiler vectorises.
    let lead = |c: u8| {
        ((c < 0x20) & (c != b'\n') & (c != b'\t')) | (c == 0x7f) | (c == 0xc2) | (c == 0xef)
    };
    b.chunks(64).enumerate().any(|(k, block)| {
        block.iter().fold(false, |seen, &c| seen | lead(c))
            && (k * 64..k * 64 + block.len()).any(cleaned_at)
    })
}

/// `text` with what [`clean`] removes removed, without a copy when there
/// is nothing to remove. For text made after decoding: Markdown's character
/// references (`&#1;`) and front matter's escapes (`"\x01"`) can make any
/// character, and one that XML 1.0 forbids makes a whole feed unreadable.
pub fn xml_safe(text: String) -> String {
    if needs_cleaning(&text) {
        clean(&text)
    } else {
        text
    }
}

/// Normalises decoded text for XML 1.0 and for the parsers after it.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            '\n' | '\t' => out.push(c),
            // Word's manual line break and the page break PDF tools emit.
            '\u{0b}' | '\u{0c}' => out.push('\n'),
            // ANSI escape sequences pasted from a terminal: drop the whole
            // sequence, not just the ESC, or "[31m" is left in the text.
            '\u{1b}' => {
                if chars.peek() == Some(&'[') {
                    chars.next();
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if ('\u{40}'..='\u{7e}').contains(&n) {
                            break;
                        }
                    }
                }
            }
            // Forbidden in XML 1.0 (C0), discouraged (DEL, C1), BOMs and
            // noncharacters.
            c if (c as u32) < 0x20 => {}
            '\u{7f}'..='\u{9f}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(bytes: &[u8], encoding: &str, text_contains: &str) {
        let d = decode(bytes).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.encoding, encoding);
        assert!(d.text.contains(text_contains), "{:?}", d.text);
    }

    #[test]
    fn boms_and_utf8() {
        check(b"\xef\xbb\xbfHello", "UTF-8", "Hello");
        check(b"\xff\xfeH\0i\0", "UTF-16LE", "Hi");
        check(b"\xfe\xff\0H\0i", "UTF-16BE", "Hi");
        check("Zażółć gęślą jaźń".as_bytes(), "UTF-8", "gęślą");
        assert!(!decode(b"\xef\xbb\xbfHello")
            .unwrap()
            .text
            .contains('\u{feff}'));
    }

    #[test]
    fn utf16_without_bom_is_recognised() {
        let bytes: Vec<u8> = "Bugetare participativă"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        check(&bytes, "UTF-16LE", "participativă");
    }

    #[test]
    fn legacy_encodings() {
        let (b, _, _) = encoding_rs::WINDOWS_1251
            .encode("Житомирська міська рада оголошує конкурс. Ґрунтовні зміни у програмі підтримки молоді.");
        check(&b, "windows-1251", "Ґрунтовні");
        let (b, _, _) = encoding_rs::WINDOWS_1250.encode(
            "Oprava křižovatky potrvá přibližně tři týdny. Děkujeme za trpělivost – „Město“ žádá řidiče o ohleduplnost.",
        );
        check(&b, "windows-1250", "přibližně");
        let (b, _, _) = encoding_rs::WINDOWS_1252.encode(
            "Le cœur de la fête bat à Nantes : entrée 5 € pour les adultes, c’est la tradition…",
        );
        check(&b, "windows-1252", "cœur");
    }

    #[test]
    fn damaged_utf8_keeps_valid_letters() {
        let mut bytes = "Nabór wniosków do budżetu obywatelskiego. Mieszkańcy mogą zgłaszać projekty ogólnomiejskie i dzielnicowe. Głosowanie odbędzie się we wrześniu, a wyniki ogłosimy w październiku. "
            .as_bytes()
            .to_vec();
        bytes.extend_from_slice(b"Zg\xb3oszenia \xc0\xaf \xff\xfe koniec \xe2\x82");
        let d = decode(&bytes).unwrap();
        assert_eq!(d.encoding, "UTF-8");
        assert!(d.text.contains("budżetu") && d.text.contains('\u{FFFD}'));
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn binary_and_empty() {
        assert_eq!(decode(b""), Err(DecodeError::Empty));
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend((0..4000u32).map(|i| (i * 7919 % 251) as u8));
        assert!(matches!(decode(&png), Err(DecodeError::Binary(_))));
        let junk: Vec<u8> = (0..4000u32).map(|i| (i * 7919 % 256) as u8).collect();
        assert!(matches!(decode(&junk), Err(DecodeError::Binary(_))));
    }

    #[test]
    fn cleaning_for_xml() {
        assert_eq!(clean("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(clean("x\u{0}y\u{7}z\u{8}"), "xyz");
        assert_eq!(clean("red \u{1b}[31mALERT\u{1b}[0m!"), "red ALERT!");
        assert_eq!(clean("a\u{0b}b\u{0c}c"), "a\nb\nc");
        assert_eq!(clean("\u{feff}x\u{fffe}\u{85}"), "x");
        assert_eq!(clean("emoji 👨‍👩‍👧‍👦 ok"), "emoji 👨‍👩‍👧‍👦 ok");
    }

    /// chardetng guesses from the words holding non-ASCII bytes, and from
    /// their head when it guesses a Cyrillic encoding there, what it
    /// guesses from the whole text (the evaluation texts, each and joined,
    /// encoded in every legacy encoding that can hold them).
    #[test]
    fn the_encoding_guess_needs_only_the_words_with_non_ascii_bytes() {
        let samples: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/lang_samples.json")).unwrap();
        let encodings = [
            "windows-1250",
            "windows-1251",
            "windows-1252",
            "windows-1253",
            "windows-1254",
            "windows-1257",
            "koi8-r",
            "koi8-u",
            "iso-8859-2",
            "iso-8859-5",
            "iso-8859-7",
            "iso-8859-15",
            "ibm866",
        ];
        let guess = |bytes: &[u8]| {
            let mut detector = chardetng::EncodingDetector::new();
            detector.feed(bytes, true);
            detector.guess(None, false)
        };
        // Each text, and each language's texts joined: long enough for
        // `guess_legacy` to stop early.
        let mut by_lang = std::collections::BTreeMap::<&str, Vec<&str>>::new();
        for s in &samples {
            if let (Some(lang), Some(text)) = (s["lang"].as_str(), s["text"].as_str()) {
                by_lang.entry(lang).or_default().push(text);
            }
        }
        let joined: Vec<String> = by_lang.values().map(|t| t.join("\n\n")).collect();
        let texts = by_lang.values().flatten().copied();
        let (mut compared, mut early) = (0, 0);
        for text in texts.chain(joined.iter().map(String::as_str)) {
            for label in encodings {
                let encoding = Encoding::for_label(label.as_bytes()).unwrap();
                let (bytes, _, unmappable) = encoding.encode(text);
                if unmappable || bytes.is_ascii() {
                    continue;
                }
                compared += 1;
                let words = words_with_non_ascii(&bytes);
                let whole = guess(&bytes);
                assert_eq!(guess(&words), whole, "{label}: {text}");
                let (staged, stopped_early) = guess_legacy_early(&words);
                assert_eq!(staged, whole, "{label}: {text}");
                early += usize::from(stopped_early);
            }
        }
        assert!(compared > 400, "only {compared} encoded texts");
        assert!(early >= 5, "only {early} guesses taken early");
    }

    /// Text without spaces (Japanese, Chinese) is one long word, here after
    /// a short one: the early look reads the first 512 bytes all the same,
    /// and the guess is the whole text's.
    #[test]
    fn text_without_spaces_is_guessed_as_from_the_whole() {
        let japanese = "市電4号線は線路工事のため迂回運転します。ご迷惑をおかけします。".repeat(20);
        let chinese = "由于轨道维修，四路电车将绕道行驶。给您带来不便，敬请谅解。".repeat(20);
        for (text, encoding) in [
            (japanese.as_str(), encoding_rs::SHIFT_JIS),
            (japanese.as_str(), encoding_rs::EUC_JP),
            (chinese.as_str(), encoding_rs::GBK),
        ] {
            let text = format!("市電 {text}");
            let (bytes, _, unmappable) = encoding.encode(&text);
            assert!(!unmappable);
            let words = words_with_non_ascii(&bytes);
            assert!(words.len() > 2 * CYRILLIC_SETTLED_AFTER);
            let mut detector = chardetng::EncodingDetector::new();
            detector.feed(&words, true);
            assert_eq!(detector.guess(None, false), encoding);
            assert_eq!(guess_legacy_early(&words), (encoding, false));
            assert_eq!(decode(&bytes).unwrap().encoding, encoding.name());
        }
    }

    #[test]
    fn the_cleaning_shortcut_agrees_with_clean() {
        for s in [
            "plain text\nwith\tlines",
            "Київ, вул. Хрещатик — «Євро» ¥ ÿ ￼ ﻿",
            "a\r\nb",
            "x\u{0}y",
            "del\u{7f}",
            "c1\u{85}\u{9f}",
            "keep \u{a0}\u{a9}\u{c2}\u{ef}",
            "bom\u{feff}",
            "non\u{fffe}\u{ffff}",
            "ok \u{fffd}\u{fefe}\u{ffbf}",
            "esc \u{1b}[1m",
        ] {
            // Padded so that what matters falls on either side of, and
            // across, the scan's 64-byte blocks.
            for pad in [0, 60, 61, 62, 63, 64, 65, 127] {
                let s = format!("{}{s}", "p".repeat(pad));
                assert_eq!(needs_cleaning(&s), clean(&s) != s, "{s:?}");
            }
        }
    }
}
