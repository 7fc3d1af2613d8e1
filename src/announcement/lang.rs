//! Language tags (BCP 47) and language detection.
//!
//! Pure: no I/O. Detection is a two-step hybrid, because one detector is
//! either fast or exact but not both:
//! 1. CLD2 (Chrome's compact detector, C++ with compiled-in tables) answers in
//!    tens of microseconds and is right on everything but close relatives;
//! 2. lingua (pure Rust, 1–15 ms per text over all languages) re-decides when
//!    CLD2 is unsure, names a language outside the allowed set, or names one
//!    of a cluster of close relatives ([`CLUSTERS`]) — then only among that
//!    cluster, which costs a fraction of a full run.
//!
//! Its models load lazily on first use and are shared by every detector built
//! here. Detection is the last resort before the configured default: front
//! matter, a `name.LANG.ext` suffix and a language folder always win over it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

use super::text::MAY_BEGIN_WHITESPACE;

/// A valid, normalised BCP 47 language tag: `uk`, `pt-BR`, `sr-Latn`, `zh-Hant-TW`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LangTag(String);

impl LangTag {
    /// Parses and normalises a tag (`uk_ua` -> `uk-UA`, `iw` -> `he`).
    /// Accepts language[-script][-region][-variant...]; rejects anything else.
    pub fn parse(s: &str) -> Option<LangTag> {
        let s = s.trim();
        if s.is_empty() || s.len() > 35 {
            return None;
        }
        let mut parts = s.split(['-', '_']);
        let primary = parts.next()?.to_ascii_lowercase();
        if !(2..=3).contains(&primary.len()) || !primary.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        let primary = match primary.as_str() {
            "iw" => "he".to_string(),
            "in" => "id".to_string(),
            "ji" => "yi".to_string(),
            "jw" => "jv".to_string(),
            "mo" => "ro".to_string(),
            _ => primary,
        };
        let mut out = primary;
        // 0 = expect script, 1 = expect region, 2 = variants only
        let mut stage = 0;
        for part in parts {
            let is_alpha = part.bytes().all(|b| b.is_ascii_alphabetic());
            let is_digit = part.bytes().all(|b| b.is_ascii_digit());
            let is_alnum = part.bytes().all(|b| b.is_ascii_alphanumeric());
            out.push('-');
            if stage == 0 && part.len() == 4 && is_alpha {
                let mut c = part.chars();
                let first = c.next()?.to_ascii_uppercase();
                out.push(first);
                out.push_str(&c.as_str().to_ascii_lowercase());
                stage = 1;
            } else if stage <= 1 && ((part.len() == 2 && is_alpha) || (part.len() == 3 && is_digit))
            {
                out.push_str(&part.to_ascii_uppercase());
                stage = 2;
            } else if is_alnum
                && ((5..=8).contains(&part.len())
                    || (part.len() == 4 && part.as_bytes()[0].is_ascii_digit()))
            {
                out.push_str(&part.to_ascii_lowercase());
                stage = 2;
            } else {
                return None;
            }
        }
        Some(LangTag(out))
    }

    /// Like [`LangTag::parse`], but only for tags whose primary subtag is a
    /// known ISO 639-1 code: used on file and folder names, where a random
    /// word (`notes.old.txt`) must not be taken for a language.
    pub fn parse_known(s: &str) -> Option<LangTag> {
        let tag = LangTag::parse(s)?;
        ISO_639_1.binary_search(&tag.primary()).ok()?;
        Some(tag)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The primary language subtag: `pt` for `pt-BR`. Feeds are grouped by it.
    pub fn primary(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// The tag reduced to its primary subtag.
    pub fn primary_tag(&self) -> LangTag {
        LangTag(self.primary().to_string())
    }

    /// Whether the language is written right to left.
    pub fn is_rtl(&self) -> bool {
        if self.0.contains("-Latn") || self.0.contains("-Cyrl") {
            return false;
        }
        matches!(
            self.primary(),
            "ar" | "he" | "fa" | "ur" | "yi" | "ps" | "sd" | "ug" | "dv" | "ckb" | "syr"
        ) || self.0.contains("-Arab")
            || self.0.contains("-Hebr")
    }

    /// The language's own name for itself, for pages and feed titles.
    pub fn name(&self) -> &str {
        let p = self.primary();
        ENDONYMS
            .iter()
            .find(|(code, _)| *code == p)
            .map_or(self.as_str(), |(_, name)| name)
    }
}

impl fmt::Display for LangTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The languages detection chooses among when `site.languages` is empty.
pub const SUPPORTED: &[Language] = &[
    Language::Albanian,
    Language::Arabic,
    Language::Armenian,
    Language::Azerbaijani,
    Language::Basque,
    Language::Belarusian,
    Language::Bokmal,
    Language::Bosnian,
    Language::Bulgarian,
    Language::Catalan,
    Language::Chinese,
    Language::Croatian,
    Language::Czech,
    Language::Danish,
    Language::Dutch,
    Language::English,
    Language::Estonian,
    Language::Finnish,
    Language::French,
    Language::Georgian,
    Language::German,
    Language::Greek,
    Language::Hebrew,
    Language::Hindi,
    Language::Hungarian,
    Language::Icelandic,
    Language::Irish,
    Language::Italian,
    Language::Japanese,
    Language::Korean,
    Language::Latvian,
    Language::Lithuanian,
    Language::Macedonian,
    Language::Nynorsk,
    Language::Persian,
    Language::Polish,
    Language::Portuguese,
    Language::Romanian,
    Language::Russian,
    Language::Serbian,
    Language::Slovak,
    Language::Slovene,
    Language::Spanish,
    Language::Swedish,
    Language::Turkish,
    Language::Ukrainian,
    Language::Urdu,
    Language::Welsh,
];

/// What detection concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub lang: LangTag,
    /// lingua's confidence for the winner, 0..=1.
    pub confidence: f64,
}

/// Below this many letters a text says too little to detect anything.
const MIN_LETTERS: usize = 3;
/// Detection reads at most this many characters of the prepared text: long
/// texts gain nothing from more, and the cost grows with the length.
const MAX_CHARS: usize = 800;
/// When the default language's confidence is within this margin of the
/// winner's, the guess is not trusted over the configured default.
const DEFAULT_MARGIN: f64 = 0.10;

/// Detects the language of `text` among `allowed` (all supported languages
/// when empty). Returns `None` when the text has too few letters or no
/// allowed language can be detected; the caller falls back to the default.
pub fn detect(text: &str, allowed: &[LangTag], default: &LangTag) -> Option<Detection> {
    // The words as far as the first look: most texts need no more.
    let head = Collector::new(text);
    // At least MIN_LETTERS letters (counting stops there).
    head.text
        .chars()
        .filter(|&c| is_letter(c))
        .nth(MIN_LETTERS - 1)?;
    let languages = candidate_languages(allowed);
    match languages.len() {
        0 => return None,
        1 => {
            return Some(Detection {
                lang: LangTag::parse(&languages[0].iso_code_639_1().to_string())?,
                confidence: 1.0,
            })
        }
        _ => {}
    }
    if let Some(lang) = first_look(&head, &languages) {
        return Some(Detection {
            lang: tag_of(lang)?,
            confidence: 1.0,
        });
    }
    let sample = head.finish();
    let languages = match quick_guess(&sample, &languages) {
        Guess::Sure(lang) => {
            return Some(Detection {
                lang: tag_of(lang)?,
                confidence: 1.0,
            })
        }
        Guess::Among(cluster) => cluster,
        Guess::Unsure => languages,
    };
    let detector = detector_for(&languages);
    // lingua's cost grows with the text too: of a long sample it reads
    // the first look's part (on the corpus and the joined evaluation texts
    // every answer stayed the same; the long texts that reach it there are
    // Russian ones for which CLD2 scored under half of the text).
    let read = match sample.first_look_end {
        Some(end) if sample.long => &sample.text[..end],
        _ => &sample.text,
    };
    let values = detector.compute_language_confidence_values(read);
    let (best, confidence) = *values.first()?;
    if confidence <= 0.0 {
        return None;
    }
    let best_tag = tag_of(best)?;
    // An unreliable guess must not beat the configured default: keep the
    // default when it scored nearly as well as the winner.
    if best_tag.primary() != default.primary() {
        if let Some((_, default_conf)) = values
            .iter()
            .find(|(l, _)| tag_of(*l).is_some_and(|t| t.primary() == default.primary()))
        {
            if confidence - default_conf < DEFAULT_MARGIN {
                return Some(Detection {
                    lang: default.primary_tag(),
                    confidence: *default_conf,
                });
            }
        }
    }
    Some(Detection {
        lang: best_tag,
        confidence,
    })
}

/// CLD2's answers that [`first_look`] does not take on a text's first
/// [`FIRST_LOOK_CHARS`] characters: the pairs it confuses most.
const NEEDS_MORE_TEXT: &[Language] = &[
    Language::Croatian,
    Language::Bosnian,
    Language::Slovene,
    Language::Serbian,
    Language::Bokmal,
    Language::Nynorsk,
];

/// Close relatives that CLD2 mixes up now and then; lingua tells them apart.
const CLUSTERS: &[&[Language]] = &[
    &[
        Language::Ukrainian,
        Language::Russian,
        Language::Belarusian,
        Language::Bulgarian,
        Language::Macedonian,
        Language::Serbian,
    ],
    &[
        Language::Croatian,
        Language::Bosnian,
        Language::Slovene,
        Language::Serbian,
    ],
    &[Language::Czech, Language::Slovak],
    &[
        Language::Danish,
        Language::Bokmal,
        Language::Nynorsk,
        Language::Swedish,
    ],
    &[Language::Spanish, Language::Catalan, Language::Portuguese],
];

/// Texts at least this long, on which CLD2 is reliable, are taken as CLD2
/// says even for a cluster language: on long text it does not confuse them
/// (its mistakes on the evaluation set were all on texts under 400 chars).
const LONG_CHARS: usize = 600;

/// What the fast first step concluded.
enum Guess {
    /// This language, no second opinion needed.
    Sure(Language),
    /// One of these (a cluster, within the candidates): ask lingua.
    Among(Vec<Language>),
    /// Ask lingua among all candidates.
    Unsure,
}

/// A longer sample is first read only this far: CLD2's cost grows with
/// the length, and its reliable answer on this much text was, on every
/// test text, its answer on all of it (see [`first_look`]).
const FIRST_LOOK_CHARS: usize = 350;

/// Step 1 of [`detect`] when the [`first_look`] did not settle it:
/// CLD2's answer on the whole sample, checked against the candidates.
fn quick_guess(sample: &Sample, candidates: &[Language]) -> Guess {
    let result = cld2::detect_language_ext(&sample.text, cld2::Format::Text, &Default::default());
    let reliable = result.reliability == cld2::Reliability::Reliable;
    let Some(lang) = cld2_choice(&result, candidates) else {
        return unsure(&result, candidates);
    };
    let mut cluster: Vec<Language> = CLUSTERS
        .iter()
        .filter(|c| c.contains(&lang))
        .flat_map(|c| c.iter().copied())
        .filter(|l| candidates.contains(l))
        .collect();
    cluster.sort();
    cluster.dedup();
    if cluster.len() > 1 && !(reliable && sample.long) {
        return Guess::Among(cluster);
    }
    if reliable {
        return Guess::Sure(lang);
    }
    // Unreliable: lingua decides, but only among CLD2's own candidates and
    // their relatives, so that lingua's models (~5 MB each) for the other
    // languages stay unloaded.
    match unsure(&result, candidates) {
        Guess::Unsure if sample.long => Guess::Sure(lang),
        guess => guess,
    }
}

/// CLD2's reliable answer on the sample's first [`FIRST_LOOK_CHARS`]
/// characters, when the sample is longer than that, unless it is one of
/// [`NEEDS_MORE_TEXT`] (those, and every unreliable answer, are read again
/// in full). At 500 characters this gave, on the 100,000 announcements of
/// the benchmark corpus, the same answer for every file as reading 800
/// characters, and on the evaluation texts joined in every order (4,560
/// texts of ~1,000 characters) the same count of right answers and the
/// same mistakes (33 Bosnian texts taken for Croatian); taken for every
/// language, it turned 17 more of those Bosnian texts into Croatian and 2
/// of the 100,000 Bokmål files into Nynorsk. At 350 and at 300 characters
/// every answer on both sets was the one at 500, text by text; at 250, 101
/// Czech files of the corpus came out Slovak, so 350 keeps a margin.
fn first_look(head: &Collector, candidates: &[Language]) -> Option<Language> {
    let text = &head.text[..head.first_look_end?];
    let result = cld2::detect_language_ext(text, cld2::Format::Text, &Default::default());
    if result.reliability != cld2::Reliability::Reliable {
        return None;
    }
    cld2_choice(&result, candidates).filter(|l| !NEEDS_MORE_TEXT.contains(l))
}

/// CLD2's language, if it is one of the candidates.
fn cld2_choice(result: &cld2::DetectionResult, candidates: &[Language]) -> Option<Language> {
    result
        .language
        .and_then(|l| from_cld2(l.0))
        .filter(|l| candidates.contains(l))
}

/// CLD2 is unsure: lingua decides among CLD2's three candidates and their
/// close relatives (fewer models to load and run than all languages), or
/// among all candidates when CLD2 has no candidate herald supports.
fn unsure(result: &cld2::DetectionResult, candidates: &[Language]) -> Guess {
    let mut among: Vec<Language> = Vec::new();
    for score in &result.scores {
        let Some(l) = score
            .language
            .and_then(|l| from_cld2(l.0))
            .filter(|l| candidates.contains(l))
        else {
            continue;
        };
        among.push(l);
        for c in CLUSTERS.iter().filter(|c| c.contains(&l)) {
            among.extend(c.iter().copied().filter(|l| candidates.contains(l)));
        }
    }
    among.sort();
    among.dedup();
    if among.len() >= 2 {
        Guess::Among(among)
    } else {
        Guess::Unsure
    }
}

/// A CLD2 language code (`uk`, `no`, `iw`, `zh-Hant`) as a supported language.
fn from_cld2(code: &str) -> Option<Language> {
    let primary = code.split('-').next().unwrap_or(code);
    let primary = match primary {
        "no" => "nb",
        "iw" => "he",
        p => p,
    };
    language_of(primary)
}

/// The lingua languages to choose among for a configured set.
fn candidate_languages(allowed: &[LangTag]) -> Vec<Language> {
    if allowed.is_empty() {
        return SUPPORTED.to_vec();
    }
    let mut out: Vec<Language> = allowed
        .iter()
        .filter_map(|t| language_of(t.primary()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A supported language by its ISO 639-1 code (lowercase, as CLD2 and
/// [`LangTag::primary`] give it). A map built once: lingua's own parsing of
/// the code compares it with every code it knows, on each call.
fn language_of(primary: &str) -> Option<Language> {
    static BY_CODE: OnceLock<HashMap<String, Language>> = OnceLock::new();
    BY_CODE
        .get_or_init(|| {
            SUPPORTED
                .iter()
                .map(|l| (l.iso_code_639_1().to_string(), *l))
                .collect()
        })
        .get(primary)
        .copied()
}

fn tag_of(lang: Language) -> Option<LangTag> {
    LangTag::parse(&lang.iso_code_639_1().to_string())
}

/// One detector per candidate set, built once; lingua shares the models
/// between detectors, so a second set costs no extra model memory.
fn detector_for(languages: &[Language]) -> Arc<LanguageDetector> {
    static CACHE: OnceLock<Mutex<HashMap<Vec<Language>, Arc<LanguageDetector>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    // A poisoned lock only means another thread panicked while inserting; the
    // map itself is still usable.
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(languages.to_vec())
        .or_insert_with(|| Arc::new(LanguageDetectorBuilder::from_languages(languages).build()))
        .clone()
}

/// What detection reads: the words of a text that carry language, and
/// what the steps ask of them, counted while the words are collected.
struct Sample {
    text: String,
    /// Where the first [`FIRST_LOOK_CHARS`] characters end, when `text`
    /// is longer than that.
    first_look_end: Option<usize>,
    /// Whether `text` is longer than [`LONG_CHARS`] characters.
    long: bool,
}

/// Collects a [`Sample`]: the words that carry language (no URLs, e-mail
/// addresses, numbers or phone numbers), up to [`MAX_CHARS`] characters.
/// [`Collector::new`] stops at the end of the first look, which settles
/// most texts; [`Collector::finish`] reads on.
struct Collector<'a> {
    source: &'a str,
    /// Where the words not read yet begin in `source`.
    at: usize,
    text: String,
    /// The stopping rule: each word's characters plus one.
    budget: usize,
    /// The exact length of `text` in characters.
    chars: usize,
    first_look_end: Option<usize>,
}

impl<'a> Collector<'a> {
    /// The words of `text` as far as the first [`FIRST_LOOK_CHARS`]
    /// characters (all of them when the text is shorter).
    fn new(text: &'a str) -> Collector<'a> {
        let mut c = Collector {
            source: text,
            at: 0,
            text: String::with_capacity(text.len().min(MAX_CHARS * 2)),
            budget: 0,
            chars: 0,
            first_look_end: None,
        };
        c.collect(true);
        c
    }

    /// The whole sample.
    fn finish(mut self) -> Sample {
        self.collect(false);
        Sample {
            text: self.text,
            first_look_end: self.first_look_end,
            long: self.chars > LONG_CHARS,
        }
    }

    /// Reads words until the budget is spent or the text ends (or, with
    /// `first_look_only`, the first look's cut is known).
    fn collect(&mut self, first_look_only: bool) {
        while self.budget < MAX_CHARS {
            let Some((word, word_chars, marked)) = self.next_word() else {
                return;
            };
            if marked && (word.contains("://") || word.contains('@')) || word.starts_with("www.") {
                continue;
            }
            let ascii_letter = word.as_bytes().first().is_some_and(u8::is_ascii_alphabetic);
            if !ascii_letter && !word.chars().any(is_letter) {
                continue;
            }
            if !self.text.is_empty() {
                self.text.push(' ');
                self.chars += 1;
                if self.chars > FIRST_LOOK_CHARS && self.first_look_end.is_none() {
                    self.first_look_end = Some(self.text.len() - 1);
                }
            }
            if self.first_look_end.is_none() && self.chars + word_chars > FIRST_LOOK_CHARS {
                let inside = word
                    .char_indices()
                    .nth(FIRST_LOOK_CHARS - self.chars)
                    .map_or(word.len(), |(at, _)| at);
                self.first_look_end = Some(self.text.len() + inside);
            }
            self.text.push_str(word);
            self.chars += word_chars;
            self.budget += word_chars + 1;
            if first_look_only && self.first_look_end.is_some() {
                return;
            }
        }
    }

    /// The next word of the source (split as `str::split_whitespace`
    /// splits), its length in characters and whether it holds ':' or '@'
    /// (a URL or an address may), all in one pass over its bytes: only a
    /// byte that may begin whitespace is decoded.
    fn next_word(&mut self) -> Option<(&'a str, usize, bool)> {
        let source = self.source;
        let bytes = source.as_bytes();
        // A byte that may begin whitespace is never a continuation byte,
        // so `at` is a character boundary where one is decoded.
        let space_at = |at: usize| {
            source
                .get(at..)
                .and_then(|rest| rest.chars().next())
                .filter(|c| c.is_whitespace())
                .map(char::len_utf8)
        };
        let mut at = self.at;
        while at < bytes.len() && MAY_BEGIN_WHITESPACE[bytes[at] as usize] {
            match space_at(at) {
                Some(len) => at += len,
                None => break,
            }
        }
        let start = at;
        let (mut chars, mut marked) = (0, false);
        while let Some(&b) = bytes.get(at) {
            if MAY_BEGIN_WHITESPACE[b as usize] && space_at(at).is_some() {
                break;
            }
            chars += usize::from((b as i8) >= -0x40);
            marked |= b == b':' || b == b'@';
            at += 1;
        }
        self.at = at;
        (at > start).then(|| (&source[start..at], chars, marked))
    }
}

/// The whole sample of `text` at once.
#[cfg(test)]
fn prepare(text: &str) -> Sample {
    Collector::new(text).finish()
}

/// `char::is_alphabetic`, answered without a table search for the
/// letters of the Latin and Cyrillic blocks (every character in these
/// ranges is alphabetic; a test checks each one).
fn is_letter(c: char) -> bool {
    matches!(c, 'a'..='z' | 'A'..='Z' | 'À'..='Ö' | 'Ø'..='ö' | 'ø'..='ɏ' | 'Ѐ'..='ҁ' | 'Ҋ'..='ӿ')
        || c.is_alphabetic()
}

/// ISO 639-1 codes, sorted, for recognising language names in paths.
const ISO_639_1: &[&str] = &[
    "aa", "ab", "ae", "af", "ak", "am", "an", "ar", "as", "av", "ay", "az", "ba", "be", "bg", "bh",
    "bi", "bm", "bn", "bo", "br", "bs", "ca", "ce", "ch", "co", "cr", "cs", "cu", "cv", "cy", "da",
    "de", "dv", "dz", "ee", "el", "en", "eo", "es", "et", "eu", "fa", "ff", "fi", "fj", "fo", "fr",
    "fy", "ga", "gd", "gl", "gn", "gu", "gv", "ha", "he", "hi", "ho", "hr", "ht", "hu", "hy", "hz",
    "ia", "id", "ie", "ig", "ii", "ik", "io", "is", "it", "iu", "ja", "jv", "ka", "kg", "ki", "kj",
    "kk", "kl", "km", "kn", "ko", "kr", "ks", "ku", "kv", "kw", "ky", "la", "lb", "lg", "li", "ln",
    "lo", "lt", "lu", "lv", "mg", "mh", "mi", "mk", "ml", "mn", "mr", "ms", "mt", "my", "na", "nb",
    "nd", "ne", "ng", "nl", "nn", "no", "nr", "nv", "ny", "oc", "oj", "om", "or", "os", "pa", "pi",
    "pl", "ps", "pt", "qu", "rm", "rn", "ro", "ru", "rw", "sa", "sc", "sd", "se", "sg", "si", "sk",
    "sl", "sm", "sn", "so", "sq", "sr", "ss", "st", "su", "sv", "sw", "ta", "te", "tg", "th", "ti",
    "tk", "tl", "tn", "to", "tr", "ts", "tt", "tw", "ty", "ug", "uk", "ur", "uz", "ve", "vi", "vo",
    "wa", "wo", "xh", "yi", "yo", "za", "zh", "zu",
];

const ENDONYMS: &[(&str, &str)] = &[
    ("ar", "العربية"),
    ("az", "Azərbaycanca"),
    ("be", "Беларуская"),
    ("bg", "Български"),
    ("bs", "Bosanski"),
    ("ca", "Català"),
    ("cs", "Čeština"),
    ("cy", "Cymraeg"),
    ("da", "Dansk"),
    ("de", "Deutsch"),
    ("el", "Ελληνικά"),
    ("en", "English"),
    ("es", "Español"),
    ("et", "Eesti"),
    ("eu", "Euskara"),
    ("fa", "فارسی"),
    ("fi", "Suomi"),
    ("fr", "Français"),
    ("ga", "Gaeilge"),
    ("he", "עברית"),
    ("hi", "हिन्दी"),
    ("hr", "Hrvatski"),
    ("hu", "Magyar"),
    ("hy", "Հայերեն"),
    ("is", "Íslenska"),
    ("it", "Italiano"),
    ("ja", "日本語"),
    ("ka", "ქართული"),
    ("ko", "한국어"),
    ("lb", "Lëtzebuergesch"),
    ("lt", "Lietuvių"),
    ("lv", "Latviešu"),
    ("mk", "Македонски"),
    ("mt", "Malti"),
    ("nb", "Norsk bokmål"),
    ("nl", "Nederlands"),
    ("nn", "Norsk nynorsk"),
    ("no", "Norsk"),
    ("pl", "Polski"),
    ("pt", "Português"),
    ("ro", "Română"),
    ("ru", "Русский"),
    ("sk", "Slovenčina"),
    ("sl", "Slovenščina"),
    ("sq", "Shqip"),
    ("sr", "Српски"),
    ("sv", "Svenska"),
    ("tr", "Türkçe"),
    ("uk", "Українська"),
    ("ur", "اردو"),
    ("zh", "中文"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn tags_parse_and_normalise() {
        let check = |input: &str, expected: Option<&str>| {
            assert_eq!(
                LangTag::parse(input).as_ref().map(LangTag::as_str),
                expected,
                "{input}"
            );
        };
        check("uk", Some("uk"));
        check("uk-UA", Some("uk-UA"));
        check("pt_br", Some("pt-BR"));
        check("SR-latn-rs", Some("sr-Latn-RS"));
        check("es-419", Some("es-419"));
        check("iw", Some("he"));
        check("de-CH-1996", Some("de-CH-1996"));
        check("english", None);
        check("", None);
        check("u", None);
        check("uk-", None);
        check("pl-PL-x", None);
        check("12", None);
    }

    #[test]
    fn known_tags_only_for_paths() {
        assert!(LangTag::parse_known("pl").is_some());
        assert!(LangTag::parse_known("pt-BR").is_some());
        assert!(LangTag::parse_known("old").is_none());
        assert!(LangTag::parse_known("xx").is_none());
        assert!(
            ISO_639_1.windows(2).all(|w| w[0] < w[1]),
            "ISO_639_1 must stay sorted"
        );
    }

    #[test]
    fn primary_rtl_and_names() {
        let t = LangTag::parse("pt-BR").unwrap();
        assert_eq!(t.primary(), "pt");
        assert_eq!(t.name(), "Português");
        assert!(LangTag::parse("ar").unwrap().is_rtl());
        assert!(LangTag::parse("he-IL").unwrap().is_rtl());
        assert!(!LangTag::parse("uk").unwrap().is_rtl());
    }

    /// The sample as the steps of [`detect`] found it before [`prepare`]
    /// counted its length: words filtered and joined, then the cut and the
    /// length each counted on their own.
    fn prepare_by_passes(text: &str) -> (String, Option<usize>, bool) {
        let mut out = String::new();
        let mut budget = 0;
        for word in text.split_whitespace() {
            let url = word.contains("://") || word.starts_with("www.") || word.contains('@');
            if url || !word.chars().any(|c| c.is_alphabetic()) {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
            budget += word.chars().count() + 1;
            if budget >= MAX_CHARS {
                break;
            }
        }
        let cut = out.char_indices().nth(FIRST_LOOK_CHARS).map(|(i, _)| i);
        let long = out.chars().nth(LONG_CHARS).is_some();
        (out, cut, long)
    }

    /// The whole sample, after checking that the collector's first stop
    /// gives the first look what the whole sample would.
    fn prepared(text: &str) -> (String, Option<usize>, bool) {
        let head = Collector::new(text);
        let (head_text, head_cut) = (head.text.clone(), head.first_look_end);
        let s = head.finish();
        assert_eq!(head_cut, s.first_look_end, "{text}");
        match head_cut {
            Some(cut) => assert_eq!(head_text[..cut], s.text[..cut], "{text}"),
            // A text that ends before the first look's length is read whole.
            None => assert_eq!(head_text, s.text, "{text}"),
        }
        (s.text, s.first_look_end, s.long)
    }

    #[test]
    fn the_letter_ranges_hold_only_letters() {
        let ranges = [
            ('a', 'z'),
            ('A', 'Z'),
            ('À', 'Ö'),
            ('Ø', 'ö'),
            ('ø', 'ɏ'),
            ('Ѐ', 'ҁ'),
            ('Ҋ', 'ӿ'),
        ];
        for (from, to) in ranges {
            for c in from..=to {
                assert!(c.is_alphabetic(), "{c:?} U+{:04X}", c as u32);
            }
        }
        for c in ['×', '÷', '҂', '\u{483}', '1', ' ', '@'] {
            assert_eq!(is_letter(c), c.is_alphabetic(), "{c:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn prepare_counts_as_the_passes_count(
            s in "([a-zé]{0,9}[ \t\n\u{85}\u{a0}\u{1680}\u{2003}\u{202f}\u{3000}]{1,2}|ж|日本|a:b|12 |https://a.b |x@y.z |www.q |«»){100,400}",
        ) {
            proptest::prop_assert_eq!(prepared(&s), prepare_by_passes(&s));
        }
    }

    #[test]
    fn prepare_counts_as_the_passes_count_on_the_evaluation_texts() {
        let samples: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/lang_samples.json")).unwrap();
        let texts: Vec<&str> = samples.iter().filter_map(|s| s["text"].as_str()).collect();
        for window in texts.windows(3) {
            let joined = window.join("\n\n");
            assert_eq!(prepared(&joined), prepare_by_passes(&joined), "{joined}");
        }
        for short in ["", "a b", "1 2 3", "ab 12 c", "https://x.y/abc d@e.f"] {
            assert_eq!(prepared(short), prepare_by_passes(short), "{short}");
        }
    }

    fn detect_primary(text: &str) -> Option<String> {
        let en = LangTag::parse("en").unwrap();
        detect(text, &[], &en).map(|d| d.lang.primary().to_string())
    }

    /// The first look answers only what reading the whole sample answers:
    /// each language's evaluation texts joined into one long text.
    #[test]
    fn the_first_look_agrees_with_the_whole_sample() {
        let samples: Vec<serde_json::Value> =
            serde_json::from_str(include_str!("../../tests/fixtures/lang_samples.json")).unwrap();
        let mut by_lang: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for s in &samples {
            let (Some(lang), Some(text)) = (s["lang"].as_str(), s["text"].as_str()) else {
                panic!("a sample without lang or text: {s}");
            };
            by_lang.entry(lang).or_default().push(text);
        }
        let mut answered = 0;
        for (lang, texts) in &by_lang {
            let joined = texts.join("\n\n");
            let Some(first) = first_look(&Collector::new(&joined), SUPPORTED) else {
                continue;
            };
            answered += 1;
            let sample = prepare(&joined);
            let whole =
                cld2::detect_language_ext(&sample.text, cld2::Format::Text, &Default::default());
            assert_eq!(cld2_choice(&whole, SUPPORTED), Some(first), "{lang}");
        }
        // All but the languages read in full, and the few texts too short.
        assert!(
            answered >= 25,
            "the first look answered only {answered} of {}",
            by_lang.len()
        );
    }

    #[test]
    fn detects_close_languages() {
        let check = |text: &str, expected: &str| {
            assert_eq!(detect_primary(text).as_deref(), Some(expected), "{text}");
        };
        check(
            "Міська рада оголошує конкурс проєктів громадського бюджету на наступний рік.",
            "uk",
        );
        check(
            "Городская администрация объявляет о ремонте дороги на улице Ленина.",
            "ru",
        );
        check(
            "Mesto vyhlasuje súťaž o najlepší projekt obnovy námestia.",
            "sk",
        );
        check(
            "Město vyhlašuje soutěž o nejlepší projekt obnovy náměstí.",
            "cs",
        );
        check(
            "Kommunen åbner en ny cykelsti langs havnen i næste uge.",
            "da",
        );
        check(
            "La ciutat obrirà una nova biblioteca al barri de Gràcia aquesta setmana.",
            "ca",
        );
    }

    #[test]
    fn too_little_text_is_no_detection() {
        assert_eq!(detect_primary("12:30 — 14:00, +49 30 1234567"), None);
        assert_eq!(detect_primary("https://example.org/a"), None);
    }

    #[test]
    fn restricted_set_and_single_language() {
        let en = LangTag::parse("en").unwrap();
        let only_pl = [LangTag::parse("pl").unwrap()];
        let d = detect("Anything at all here", &only_pl, &en).unwrap();
        assert_eq!(d.lang.as_str(), "pl");
        let uk_pl = [LangTag::parse("uk").unwrap(), LangTag::parse("pl").unwrap()];
        let d = detect(
            "Городская администрация объявляет о ремонте дороги.",
            &uk_pl,
            &en,
        )
        .unwrap();
        assert_eq!(d.lang.as_str(), "uk");
    }
}
