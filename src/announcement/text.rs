//! Plain text as clerks paste it: headlines, paragraphs, sentences.
//!
//! Pure. Text pasted from a PDF is hard-wrapped at 80-100 characters with
//! blank lines between paragraphs; this module re-joins the wrapped lines,
//! finds a headline (a short first line followed by a blank line), derives a
//! title from the first sentence, and shortens text on grapheme boundaries.

use unicode_segmentation::GraphemeCursor;

/// The longest first line still taken for a headline.
const HEADLINE_MAX_CHARS: usize = 200;

/// Whether a line holds nothing visible (spaces, NBSP, ideographic space,
/// zero-width characters).
pub fn is_blank(line: &str) -> bool {
    line.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}' | '\u{2060}' | '\u{feff}' | '\u{00ad}')
}

/// Trims whitespace and zero-width characters at both ends.
pub fn trim(s: &str) -> &str {
    // The soft hyphen stays: at a line's end it marks a broken word.
    s.trim_matches(|c: char| c.is_whitespace() || (is_invisible(c) && c != '\u{00ad}'))
}

/// A headline: the first non-blank line, when it is short and followed by a
/// blank line (or is all there is). Returns it and the text after it.
pub fn split_headline(text: &str) -> Option<(&str, &str)> {
    let mut lines = text.split_inclusive('\n');
    let mut consumed = 0;
    let first = loop {
        let line = lines.next()?;
        consumed += line.len();
        if !is_blank(line) {
            break line;
        }
    };
    let headline = trim(first);
    if headline.chars().count() > HEADLINE_MAX_CHARS {
        return None;
    }
    match lines.next() {
        None => Some((headline, "")),
        Some(next) if is_blank(next) => Some((headline, &text[consumed..])),
        Some(_) => None,
    }
}

/// One paragraph: its lines after re-joining. More than one line only where
/// the source had separate lines on purpose (list items).
pub type Paragraph = Vec<String>;

/// Splits text into paragraphs at blank lines and re-joins hard-wrapped lines.
pub fn paragraphs(text: &str) -> Vec<Paragraph> {
    let mut out = Vec::new();
    let mut block: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if is_blank(line) {
            if !block.is_empty() {
                rejoin(&block, &mut out);
                block.clear();
            }
        } else {
            block.push(trim(line));
        }
    }
    if !block.is_empty() {
        rejoin(&block, &mut out);
    }
    out
}

/// Re-joins one block of consecutive non-blank lines into paragraphs.
fn rejoin(block: &[&str], out: &mut Vec<Paragraph>) {
    let width = block.iter().map(|l| l.chars().count()).max().unwrap_or(0);
    let mut para: Paragraph = Vec::new();
    let mut current = String::new();
    let mut previous_ends_paragraph = false;
    for line in block {
        let list_item = is_list_item(line);
        if current.is_empty() {
            current.push_str(line);
        } else if previous_ends_paragraph {
            para.push(std::mem::take(&mut current));
            out.push(std::mem::take(&mut para));
            current.push_str(line);
        } else if list_item {
            para.push(std::mem::take(&mut current));
            current.push_str(line);
        } else {
            join_wrapped(&mut current, line);
        }
        previous_ends_paragraph = ends_paragraph(line, width);
    }
    if !current.is_empty() {
        para.push(current);
    }
    if !para.is_empty() {
        out.push(para);
    }
}

/// Appends a wrapped continuation line: a word broken after a hyphen is
/// joined without a space (keeping the hyphen, since PDF and `textwrap`
/// break compounds like "Böhlitz-Ehrenberg" there); a soft hyphen is dropped.
fn join_wrapped(current: &mut String, next: &str) {
    if current.ends_with('\u{00ad}') {
        current.pop();
        current.push_str(next);
        return;
    }
    let mut tail = current.chars().rev();
    let last = tail.next();
    let before = tail.next();
    let next_starts_word = next.chars().next().is_some_and(|c| c.is_alphanumeric());
    if matches!(last, Some('-' | '\u{2010}'))
        && before.is_some_and(|c| c.is_alphabetic())
        && next_starts_word
    {
        current.push_str(next);
    } else {
        current.push(' ');
        current.push_str(next);
    }
}

/// A clearly short line that ends a sentence ends its paragraph, even
/// without a blank line after it (text saved one line per paragraph).
fn ends_paragraph(line: &str, width: usize) -> bool {
    let len = line.chars().count();
    let terminal = line
        .trim_end_matches(['"', '\'', '»', '”', '’', ')', '*'])
        .ends_with(['.', '!', '?', '…', ':', '؟', '।', '。']);
    terminal && len * 10 < width * 6
}

fn is_list_item(line: &str) -> bool {
    let mut chars = line.chars();
    match chars.next() {
        Some('-' | '*' | '•' | '–' | '—' | '·' | '▪' | '►') => {
            chars.next().is_some_and(char::is_whitespace)
        }
        Some(c) if c.is_ascii_digit() => {
            let rest = line.trim_start_matches(|c: char| c.is_ascii_digit());
            (line.len() - rest.len() <= 3)
                && (rest.starts_with(". ") || rest.starts_with(") "))
                && rest.len() > 2
        }
        _ => false,
    }
}

/// Abbreviations after which a period does not end a sentence (lowercase,
/// without the period). Single letters (initials) are handled separately.
const ABBREVIATIONS: &[&str] = &[
    "al",
    "approx",
    "apr",
    "art",
    "aug",
    "bzw",
    "ca",
    "cf",
    "dec",
    "dr",
    "e.g",
    "etc",
    "feb",
    "gen",
    "hr",
    "i.e",
    "ing",
    "inż",
    "jan",
    "jr",
    "jul",
    "jun",
    "lt",
    "mar",
    "mgr",
    "min",
    "mr",
    "mrs",
    "ms",
    "mt",
    "nov",
    "nr",
    "oct",
    "os",
    "pl",
    "prof",
    "sep",
    "sept",
    "sr",
    "st",
    "str",
    "sv",
    "tel",
    "tj",
    "tzn",
    "ul",
    "vgl",
    "vs",
    "z.b",
    "zb",
    "вул",
    "просп",
    "пл",
    "тел",
    "ім",
    "ст",
    "м",
    "р",
    "ул",
    "ж",
    "д",
    "св",
    "см",
    "проф",
    "др",
    "ок",
    "г",
];

/// The first sentence of `text` (the whole text when it has one sentence).
pub fn first_sentence(text: &str) -> &str {
    let text = trim(text);
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        if !matches!(c, '.' | '!' | '?' | '…' | '؟' | '。' | '！' | '？' | '।') {
            continue;
        }
        // Closing quotes and brackets belong to the sentence.
        let mut end = i + c.len_utf8();
        while let Some(&(j, n)) = iter.peek() {
            if matches!(
                n,
                '"' | '\'' | '»' | '”' | '’' | ')' | ']' | '.' | '!' | '?' | '…'
            ) {
                end = j + n.len_utf8();
                iter.next();
            } else {
                break;
            }
        }
        let rest = &text[end..];
        let Some(next) = rest.chars().next() else {
            return text;
        };
        if !next.is_whitespace() {
            continue;
        }
        let following = rest.trim_start().chars().next();
        let starts_sentence = following.is_some_and(|n| {
            n.is_uppercase()
                || n.is_numeric()
                || !n.is_lowercase() && n.is_alphabetic()
                || "\"'«„“‘(¿¡–—-".contains(n)
        });
        if !starts_sentence {
            continue;
        }
        if c == '.' && is_abbreviation(&text[..i]) {
            continue;
        }
        return trim(&text[..end]);
    }
    text
}

fn is_abbreviation(before_period: &str) -> bool {
    let word = before_period
        .rsplit(|c: char| c.is_whitespace() || "([\"'«„“".contains(c))
        .next()
        .unwrap_or("");
    let letters = word.chars().filter(|c| c.is_alphabetic()).count();
    if letters == 1 && word.chars().count() <= 2 {
        return true; // an initial: "A. Mickiewicza", "J. R."
    }
    let lower = word.to_lowercase();
    ABBREVIATIONS.contains(&lower.as_str())
}

/// Shortens `s` to at most `max_chars` characters (the `…` included), at a
/// word boundary when there is one in the second half, never inside a
/// grapheme cluster.
pub fn shorten(s: &str, max_chars: usize) -> String {
    let s = trim(s);
    if nth_char_offset(s, max_chars).is_none() {
        return s.to_string();
    }
    let budget = max_chars.saturating_sub(1).max(1);
    // The end of the last grapheme that fits: the grapheme boundary at or
    // before the end of the first `budget` characters.
    let limit = nth_char_offset(s, budget).unwrap_or(s.len());
    let cut = grapheme_boundary_at_or_before(s, limit);
    // The last whitespace grapheme before the cut, and the characters up to
    // its end.
    let space = s[..cut]
        .char_indices()
        .rev()
        .filter(|&(_, c)| c.is_whitespace())
        .find(|&(i, c)| {
            let end = i + c.len_utf8();
            grapheme_boundary_at_or_before(s, i) == i
                && grapheme_boundary_at_or_before(s, end) == end
        })
        .map(|(i, c)| (i, s[..i + c.len_utf8()].chars().count()));
    let end = match space {
        Some((offset, at)) if at * 2 >= budget => offset,
        _ => cut,
    };
    let head = s[..end].trim_end_matches(|c: char| c.is_whitespace() || ",;:–—-(".contains(c));
    format!("{head}…")
}

/// [`shorten`] of [`squash_whitespace`], looking only at as much of `s` as
/// it needs: a 4 KB body need not be squashed whole for a 400-char summary.
pub fn squash_and_shorten(s: &str, max_chars: usize) -> String {
    // A prefix whose squashed form is still longer than `max_chars` gives
    // the same first `max_chars + 1` characters as the whole text, which is
    // all `shorten` looks at. Text rarely has long whitespace runs, so a
    // short prefix usually does; a longer one covers the rest.
    for prefix_chars in [max_chars + max_chars / 4 + 16, max_chars.saturating_mul(4)] {
        let Some(end) = nth_char_offset(s, prefix_chars) else {
            break;
        };
        let squashed = squash_whitespace(&s[..end]);
        if nth_char_offset(trim(&squashed), max_chars).is_some() {
            return shorten(&squashed, max_chars);
        }
    }
    shorten(&squash_whitespace(s), max_chars)
}

/// Where `s`'s character number `n` (from 0) begins, as
/// `s.char_indices().nth(n)` says, found by counting the bytes that begin
/// a character a block at a time (the count vectorises; a character walk
/// does not).
fn nth_char_offset(s: &str, n: usize) -> Option<usize> {
    let begins = |b: &u8| (*b as i8) >= -0x40;
    let bytes = s.as_bytes();
    // Characters begun before byte `at`.
    let (mut seen, mut at) = (0, 0);
    for block in bytes.chunks(32) {
        let begun = block.iter().filter(|b| begins(b)).count();
        if seen + begun > n {
            break;
        }
        seen += begun;
        at += block.len();
    }
    bytes[at..]
        .iter()
        .enumerate()
        .filter(|(_, b)| begins(b))
        .nth(n - seen)
        .map(|(i, _)| at + i)
}

/// The nearest extended grapheme cluster boundary at or before byte `at`
/// (a character boundary of `s`).
fn grapheme_boundary_at_or_before(s: &str, at: usize) -> usize {
    let mut cursor = GraphemeCursor::new(at, s.len(), true);
    match cursor.is_boundary(s, 0) {
        Ok(true) => at,
        // With the whole string as the chunk the cursor needs no more
        // context; a character boundary is the safe answer if it did.
        Ok(false) => cursor.prev_boundary(s, 0).ok().flatten().unwrap_or(at),
        Err(_) => at,
    }
}

/// Collapses runs of breaking whitespace into single spaces. No-break spaces
/// (U+00A0, U+202F, U+2007) are typography (French `:`, `«`), not layout,
/// and stay.
pub fn squash_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let breaking = |c: char| c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{202f}' | '\u{2007}');
    // Copies runs of non-breaking text whole; a space goes in before a run
    // only when something came before it. Only a byte that can begin a
    // whitespace character is decoded: the rest is skipped a byte at a time.
    let bytes = s.as_bytes();
    let mut run_start = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !MAY_BEGIN_WHITESPACE[b as usize] {
            run_start.get_or_insert(i);
            i += 1;
            continue;
        }
        // A byte that may begin whitespace is never a continuation byte,
        // so `i` is a character boundary here.
        let c = s[i..].chars().next().unwrap_or(' ');
        if breaking(c) {
            if let Some(start) = run_start.take() {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(&s[start..i]);
            }
        } else {
            run_start.get_or_insert(i);
        }
        i += c.len_utf8();
    }
    if let Some(start) = run_start {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&s[start..]);
    }
    out
}

/// The bytes a whitespace character (`char::is_whitespace`) can begin
/// with in UTF-8: ASCII tab to carriage return and space, and the lead
/// bytes of U+0085/U+00A0, U+1680, U+2000–U+205F and U+3000.
pub(super) const MAY_BEGIN_WHITESPACE: [bool; 256] = byte_set(b"\t\n\x0b\x0c\r \xc2\xe1\xe2\xe3");

/// A byte -> whether it is one of `bytes`, as a table.
const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        t[bytes[i] as usize] = true;
        i += 1;
    }
    t
}

/// Escapes text for XML and HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    let mut done = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if !ESCAPED[b as usize] {
            continue;
        }
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            _ => "&#39;",
        };
        out.push_str(&s[done..i]);
        out.push_str(entity);
        done = i + 1;
    }
    out.push_str(&s[done..]);
    out
}

/// The bytes [`escape`] replaces: `&`, `<`, `>`, `"` and `'` (a table:
/// one look-up per byte of text, most of which is left as it is).
const ESCAPED: [bool; 256] = byte_set(b"&<>\"'");

/// Paragraphs as HTML: `<p>`, with `<br>` between list-like lines.
pub fn paragraphs_html(paragraphs: &[Paragraph]) -> String {
    let mut html = String::new();
    for p in paragraphs {
        html.push_str("<p>");
        for (i, line) in p.iter().enumerate() {
            if i > 0 {
                html.push_str("<br>\n");
            }
            html.push_str(&escape(line));
        }
        html.push_str("</p>\n");
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headlines() {
        let check = |text: &str, expected: Option<&str>| {
            assert_eq!(split_headline(text).map(|(h, _)| h), expected, "{text:?}");
        };
        check(
            "Road works on Main Street\n\nThe city will...",
            Some("Road works on Main Street"),
        );
        check("\n\u{a0}\nTitle\n \nbody", Some("Title"));
        check("Only a headline", Some("Only a headline"));
        check("first line\nsecond line\n\nthird", None);
        check(&format!("{}\n\nbody", "word ".repeat(60)), None);
        check("", None);
    }

    #[test]
    fn hard_wrapped_lines_rejoin() {
        let text = "The city council decided on Monday that the\nnew tram line will run every ten minutes\nfrom December.\n\nSecond paragraph\nwraps here.\n\u{a0}\n";
        let p = paragraphs(text);
        assert_eq!(
            p,
            vec![
                vec!["The city council decided on Monday that the new tram line will run every ten minutes from December."
                    .to_string()],
                vec!["Second paragraph wraps here.".to_string()],
            ]
        );
    }

    #[test]
    fn compounds_split_at_hyphens_rejoin_without_space() {
        let p = paragraphs("Die Linie fährt über Böhlitz-\nEhrenberg und Leutzsch.");
        assert_eq!(
            p[0][0],
            "Die Linie fährt über Böhlitz-Ehrenberg und Leutzsch."
        );
        let p = paragraphs("Ein Wort mit wei\u{ad}\nchem Trennstrich.");
        assert_eq!(p[0][0], "Ein Wort mit weichem Trennstrich.");
        let p = paragraphs("Termin 12 -\n14 Uhr");
        assert_eq!(p[0][0], "Termin 12 - 14 Uhr");
    }

    #[test]
    fn one_line_per_paragraph_and_lists() {
        let long =
            "This is a long line that fills the whole width of the text block and keeps going on.";
        let text = format!(
            "{long}\nShort end.\nNext paragraph starts here and is long enough to matter at all."
        );
        assert_eq!(paragraphs(&text).len(), 2);
        let p = paragraphs("Bring:\n- a pen\n- your ID card\n1. first\n2) second");
        assert_eq!(p[0], ["Bring:"]);
        assert_eq!(p[1], ["- a pen", "- your ID card", "1. first", "2) second"]);
    }

    #[test]
    fn first_sentences() {
        let check =
            |text: &str, expected: &str| assert_eq!(first_sentence(text), expected, "{text:?}");
        check("One. Two.", "One.");
        check("No end in sight", "No end in sight");
        check("Meet at ul. Długa 5. Then go.", "Meet at ul. Długa 5.");
        check("Director A. Smith spoke. Then.", "Director A. Smith spoke.");
        check(
            "Знижка 350 тис. грн. Нова програма.",
            "Знижка 350 тис. грн.",
        );
        check(
            "Увага мешканців Шевченківського району! Відключення.",
            "Увага мешканців Шевченківського району!",
        );
        check("Version 2.5 is out. Yes.", "Version 2.5 is out.");
        check("He said \"stop.\" Then left.", "He said \"stop.\"");
        check(
            "ستبدأ الدورات الأسبوع المقبل. التسجيل مجاني.",
            "ستبدأ الدورات الأسبوع المقبل.",
        );
        check("Le 15 nov. la mairie ouvre.", "Le 15 nov. la mairie ouvre.");
    }

    #[test]
    fn shortening() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("one two three four five", 12), "one two…");
        let cz = "Oznámení o zahájení veřejného projednání";
        let s = shorten(cz, 20);
        assert!(s.chars().count() <= 20 && s.ends_with('…'));
        assert!(cz.starts_with(s.trim_end_matches('…')));
        // Never inside a grapheme cluster.
        let family = "👨‍👩‍👧‍👦👨‍👩‍👧‍👦👨‍👩‍👧‍👦";
        let s = shorten(family, 9);
        assert!(family.starts_with(s.trim_end_matches('…')));
        assert_eq!(
            unicode_segmentation::UnicodeSegmentation::graphemes(s.trim_end_matches('…'), true)
                .count(),
            1
        );
        // One long word: cut at a character boundary.
        let s = shorten(&"й".repeat(1000), 50);
        assert_eq!(s.chars().count(), 50);
    }

    /// The grapheme-by-grapheme walk `shorten` used to do: the fast version
    /// must cut at the same place.
    fn shorten_by_walking(s: &str, max_chars: usize) -> String {
        use unicode_segmentation::UnicodeSegmentation;
        let s = trim(s);
        if s.chars().count() <= max_chars {
            return s.to_string();
        }
        let budget = max_chars.saturating_sub(1).max(1);
        let (mut cut, mut last_space, mut chars) = (0, None, 0);
        for (offset, g) in s.grapheme_indices(true) {
            let n = g.chars().count();
            if chars + n > budget {
                break;
            }
            chars += n;
            if g.chars().all(char::is_whitespace) {
                last_space = Some((offset, chars));
            }
            cut = offset + g.len();
        }
        let end = match last_space {
            Some((offset, at)) if at * 2 >= budget => offset,
            _ => cut,
        };
        let head = s[..end].trim_end_matches(|c: char| c.is_whitespace() || ",;:–—-(".contains(c));
        format!("{head}…")
    }

    proptest::proptest! {
        #[test]
        fn shorten_cuts_where_the_grapheme_walk_does(
            s in "[a-zé ,\\-\u{301}\u{200d}\u{1F468}\u{1F469}\u{a0}\n\t\u{3000}й]{0,60}",
            max in 0usize..40,
        ) {
            proptest::prop_assert_eq!(shorten(&s, max), shorten_by_walking(&s, max));
        }

        #[test]
        fn nth_char_offset_is_where_the_char_walk_finds_it(
            s in "[a-z \né\u{301}й\u{20ac}\u{1F468}]{0,300}",
            n in 0usize..400,
        ) {
            proptest::prop_assert_eq!(nth_char_offset(&s, n), s.char_indices().nth(n).map(|(i, _)| i));
        }

        #[test]
        fn squash_and_shorten_is_shorten_of_squash(
            s in "[a-z \n\t\u{a0}\u{301}\u{200b}\u{200d}\u{1F468}й]{0,80}",
            max in 0usize..30,
        ) {
            proptest::prop_assert_eq!(squash_and_shorten(&s, max), shorten(&squash_whitespace(&s), max));
        }

        #[test]
        fn squash_matches_split_and_join(
            s in "[a-z \n\t\r\u{85}\u{a0}\u{1680}\u{2003}\u{2007}\u{2028}\u{202f}\u{3000}й¢—…ᚁぁ]{0,40}",
        ) {
            let breaking = |c: char| c.is_whitespace() && !matches!(c, '\u{a0}' | '\u{202f}' | '\u{2007}');
            let expected = s.split(breaking).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
            proptest::prop_assert_eq!(squash_whitespace(&s), expected);
        }

        #[test]
        fn escaping_replaces_exactly_the_five(s in "[a-zé&<>\"'; ]{0,40}") {
            let expected = s
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;");
            proptest::prop_assert_eq!(escape(&s), expected);
        }
    }

    #[test]
    fn every_whitespace_character_begins_with_a_flagged_byte() {
        let mut buf = [0u8; 4];
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            if c.is_whitespace() {
                let first = c.encode_utf8(&mut buf).as_bytes()[0];
                assert!(MAY_BEGIN_WHITESPACE[first as usize], "U+{:04X}", c as u32);
            }
        }
        // And no continuation byte is flagged, so a flagged byte is a
        // character boundary.
        assert!((0x80..0xc0).all(|b| !MAY_BEGIN_WHITESPACE[b]));
    }

    #[test]
    fn squashing_keeps_no_break_spaces() {
        assert_eq!(
            squash_whitespace(" a \n\t b\u{a0}: c\u{202f}» "),
            "a b\u{a0}: c\u{202f}»"
        );
    }

    #[test]
    fn escaping_and_html() {
        assert_eq!(
            escape("Fish & Chips <Night> \"x\" 'y'"),
            "Fish &amp; Chips &lt;Night&gt; &quot;x&quot; &#39;y&#39;"
        );
        let html = paragraphs_html(&[vec!["a & b".into()], vec!["- one".into(), "- two".into()]]);
        assert_eq!(html, "<p>a &amp; b</p>\n<p>- one<br>\n- two</p>\n");
    }
}
