//! Front matter: YAML between `---` lines or TOML between `+++` lines.
//!
//! Pure. Known keys are read leniently (a date may be a string or a native
//! date, `tags` a list or a comma-separated string); unknown keys are ignored;
//! a value that cannot be used is a warning, never a failure of the whole
//! block. Only a block that cannot be parsed at all is an error.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use yaml_rust2::{Yaml, YamlLoader};

/// The keys herald understands.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FrontMatter {
    pub title: Option<String>,
    pub published: Option<DateTime<FixedOffset>>,
    pub updated: Option<DateTime<FixedOffset>>,
    pub lang: Option<String>,
    pub id: Option<String>,
    pub summary: Option<String>,
    pub author: Option<String>,
    pub tags: Vec<String>,
    /// Announcements with the same key are translations of each other.
    pub translation_key: Option<String>,
    /// Not shown anywhere before this moment.
    pub publish_at: Option<DateTime<FixedOffset>>,
    /// Withdrawn at this moment.
    pub expires: Option<DateTime<FixedOffset>>,
    /// Withdrawn now: removed from feeds and announced as deleted.
    pub withdrawn: bool,
    /// Why it was withdrawn (shown in the tombstone).
    pub withdrawn_comment: Option<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrontMatterError {
    #[error("unclosed front matter: no closing `{0}` line")]
    Unclosed(&'static str),
    #[error("front matter (YAML): {0}")]
    Yaml(String),
    #[error("front matter (TOML): {0}")]
    Toml(String),
    #[error("front matter must be a table of keys and values")]
    NotAMap,
}

/// Splits `text` into front matter and body. No front matter: `(None, text)`.
pub fn split(text: &str) -> Result<(Option<FrontMatter>, &str), FrontMatterError> {
    let first_line_end = text.find('\n').unwrap_or(text.len());
    let first = text[..first_line_end].trim_end();
    let (close, is_yaml): (&[&str], bool) = match first {
        "---" => (&["---", "..."], true),
        "+++" => (&["+++"], false),
        _ => return Ok((None, text)),
    };
    let after_open = &text[(first_line_end + 1).min(text.len())..];
    let mut offset = 0;
    for line in after_open.split_inclusive('\n') {
        if close.contains(&line.trim_end()) {
            let block = &after_open[..offset];
            let body = &after_open[offset + line.len()..];
            let fm = if is_yaml {
                parse_yaml(block)?
            } else {
                parse_toml(block)?
            };
            return Ok((Some(fm), body));
        }
        offset += line.len();
    }
    Err(FrontMatterError::Unclosed(close[0]))
}

fn parse_yaml(block: &str) -> Result<FrontMatter, FrontMatterError> {
    let docs =
        YamlLoader::load_from_str(block).map_err(|e| FrontMatterError::Yaml(e.to_string()))?;
    let doc = match docs.into_iter().next() {
        None | Some(Yaml::Null) => return Ok(FrontMatter::default()),
        Some(d) => d,
    };
    let Yaml::Hash(map) = doc else {
        return Err(FrontMatterError::NotAMap);
    };
    let mut fm = FrontMatter::default();
    for (k, v) in map {
        let Yaml::String(key) = k else { continue };
        let value = yaml_value(&v);
        fm.set(&key, value);
    }
    Ok(fm)
}

fn yaml_value(v: &Yaml) -> Value {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Value::Text(super::decode::xml_safe(s.clone())),
        Yaml::Integer(i) => Value::Text(i.to_string()),
        Yaml::Boolean(b) => Value::Text(b.to_string()),
        Yaml::Array(items) => Value::List(items.iter().map(yaml_value).collect()),
        Yaml::Hash(map) => Value::Map(
            map.iter()
                .filter_map(|(k, v)| match k {
                    Yaml::String(k) => Some((k.clone(), yaml_value(v))),
                    _ => None,
                })
                .collect(),
        ),
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::None,
    }
}

fn parse_toml(block: &str) -> Result<FrontMatter, FrontMatterError> {
    let table: toml::Table = block.parse().map_err(|e: toml::de::Error| {
        FrontMatterError::Toml(e.to_string().trim_end().replace('\n', " "))
    })?;
    let mut fm = FrontMatter::default();
    for (key, v) in table {
        fm.set(&key, toml_value(&v));
    }
    Ok(fm)
}

fn toml_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::Text(super::decode::xml_safe(s.clone())),
        toml::Value::Integer(i) => Value::Text(i.to_string()),
        toml::Value::Float(f) => Value::Text(f.to_string()),
        toml::Value::Boolean(b) => Value::Text(b.to_string()),
        toml::Value::Datetime(d) => Value::Text(d.to_string()),
        toml::Value::Array(items) => Value::List(items.iter().map(toml_value).collect()),
        toml::Value::Table(t) => {
            Value::Map(t.iter().map(|(k, v)| (k.clone(), toml_value(v))).collect())
        }
    }
}

/// A front-matter value, whatever format it came from.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    None,
    Text(String),
    List(Vec<Value>),
    Map(Vec<(String, Value)>),
}

impl Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::Text(s) => {
                let s = s.trim();
                (!s.is_empty()).then(|| s.to_string())
            }
            _ => None,
        }
    }
}

impl FrontMatter {
    fn set(&mut self, key: &str, value: Value) {
        if value == Value::None {
            return;
        }
        let expect_text = |slot: &mut Option<String>, warnings: &mut Vec<String>| match value.text()
        {
            Some(s) => *slot = Some(s),
            None => warnings.push(format!("front matter `{key}` is not a text value; ignored")),
        };
        match key {
            "title" => expect_text(&mut self.title, &mut self.warnings),
            "lang" | "language" => expect_text(&mut self.lang, &mut self.warnings),
            "id" => expect_text(&mut self.id, &mut self.warnings),
            "summary" | "description" => expect_text(&mut self.summary, &mut self.warnings),
            "author" => match &value {
                Value::Map(fields) => {
                    self.author = fields
                        .iter()
                        .find(|(k, _)| k == "name")
                        .and_then(|(_, v)| v.text())
                }
                _ => expect_text(&mut self.author, &mut self.warnings),
            },
            "translation_key" | "translation" | "translations" => {
                expect_text(&mut self.translation_key, &mut self.warnings)
            }
            "withdrawn" | "retracted" => match value.text().as_deref() {
                Some("true" | "yes" | "on") => self.withdrawn = true,
                Some("false" | "no" | "off") => self.withdrawn = false,
                // Any other text: withdrawn, and the text says why.
                Some(reason) => {
                    self.withdrawn = true;
                    self.withdrawn_comment
                        .get_or_insert_with(|| reason.to_string());
                }
                None => self.warnings.push(format!(
                    "front matter `{key}` is not true or false; ignored"
                )),
            },
            "withdrawn_comment" | "withdrawal_comment" | "withdrawn_reason" => match value.text() {
                Some(s) => self.withdrawn_comment = Some(s),
                None => self
                    .warnings
                    .push(format!("front matter `{key}` is not a text value; ignored")),
            },
            "date" | "published" | "updated" | "publish_at" | "expires" | "expires_at"
            | "expiry" => {
                let parsed = value.text().map(|s| parse_date(&s).ok_or(s));
                let slot = match key {
                    "updated" => &mut self.updated,
                    "publish_at" => &mut self.publish_at,
                    "expires" | "expires_at" | "expiry" => &mut self.expires,
                    _ => &mut self.published,
                };
                match parsed {
                    Some(Ok(d)) => *slot = Some(d),
                    Some(Err(s)) => self.warnings.push(format!(
                        "front matter `{key}`: {s:?} is not a valid date (RFC 3339 or YYYY-MM-DD); ignored"
                    )),
                    None => self.warnings.push(format!("front matter `{key}` is not a date; ignored")),
                }
            }
            "tags" | "categories" | "keywords" => {
                let items = match &value {
                    Value::List(items) => items.iter().filter_map(Value::text).collect(),
                    Value::Text(s) => s.split(',').map(|t| t.trim().to_string()).collect(),
                    _ => Vec::new(),
                };
                for tag in items {
                    if !tag.is_empty() && !self.tags.contains(&tag) {
                        self.tags.push(tag);
                    }
                }
            }
            _ => {}
        }
    }
}

/// RFC 3339 (also with a space instead of `T`, or without an offset, taken as
/// UTC) or a plain `YYYY-MM-DD` (midnight UTC). Impossible dates are `None`.
pub fn parse_date(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(&s.replacen(' ', "T", 1)) {
        return Some(d);
    }
    let utc = FixedOffset::east_opt(0)?;
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, format) {
            return Some(Utc.from_utc_datetime(&naive).with_timezone(&utc));
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(
        Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?)
            .with_timezone(&utc),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fm(text: &str) -> FrontMatter {
        split(text).unwrap().0.unwrap()
    }

    #[test]
    fn no_front_matter() {
        assert_eq!(split("# Title\n\nbody").unwrap(), (None, "# Title\n\nbody"));
        assert_eq!(split("--- not a fence\n").unwrap().0, None);
    }

    #[test]
    fn yaml_block() {
        let (f, body) = split(
            "---\ntitle: \"Festiwal Nauki: trzy dni\"\ndate: 2025-09-12\nlang: pl\ntags:\n  - nauka\n  - festiwal\n---\nBody\n",
        )
        .unwrap();
        let f = f.unwrap();
        assert_eq!(f.title.as_deref(), Some("Festiwal Nauki: trzy dni"));
        assert_eq!(
            f.published.unwrap().to_rfc3339(),
            "2025-09-12T00:00:00+00:00"
        );
        assert_eq!(f.tags, ["nauka", "festiwal"]);
        assert_eq!(body, "Body\n");
    }

    #[test]
    fn toml_block_with_native_dates() {
        let f = fm("+++\ntitle = \"Gleise\"\ndate = 2025-07-14T06:00:00+02:00\n+++\nx");
        assert_eq!(
            f.published.unwrap().to_rfc3339(),
            "2025-07-14T06:00:00+02:00"
        );
        let f = fm("+++\ndate = 2025-05-20\n+++\n");
        assert_eq!(
            f.published.unwrap().to_rfc3339(),
            "2025-05-20T00:00:00+00:00"
        );
        let f = fm("+++\ndate = \"2025-02-17T07:30:00+01:00\"\n+++\n");
        assert_eq!(
            f.published.unwrap().to_rfc3339(),
            "2025-02-17T07:30:00+01:00"
        );
    }

    #[test]
    fn crlf_fences() {
        let f = fm("+++\r\ntitle = \"A\"\r\n+++\r\nbody");
        assert_eq!(f.title.as_deref(), Some("A"));
    }

    #[test]
    fn bad_values_are_warnings() {
        let f = fm("---\ntitle: Chiusura\ndate: 2025-02-30\ntags: fiets, parkeren, station\nextra:\n  nested: [1, 2]\nflag: true\n---\n");
        assert_eq!(f.title.as_deref(), Some("Chiusura"));
        assert_eq!(f.published, None);
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert_eq!(f.tags, ["fiets", "parkeren", "station"]);
    }

    #[test]
    fn errors() {
        assert_eq!(
            split("---\ntitle: x\n\nbody"),
            Err(FrontMatterError::Unclosed("---"))
        );
        assert!(matches!(
            split("---\ntitle: [x\n---\n"),
            Err(FrontMatterError::Yaml(_))
        ));
        assert!(matches!(
            split("+++\ntitle = \n+++\n"),
            Err(FrontMatterError::Toml(_))
        ));
        assert_eq!(
            split("---\n- a\n- b\n---\n"),
            Err(FrontMatterError::NotAMap)
        );
        assert_eq!(split("---\n---\nbody").unwrap().1, "body");
    }

    #[test]
    fn dates() {
        let check = |s: &str, expected: Option<&str>| {
            assert_eq!(
                parse_date(s).map(|d| d.to_rfc3339()).as_deref(),
                expected,
                "{s}"
            );
        };
        check(
            "2025-04-07T08:00:00+03:00",
            Some("2025-04-07T08:00:00+03:00"),
        );
        check("2025-04-07 08:00:00Z", Some("2025-04-07T08:00:00+00:00"));
        check("2025-04-07T08:00:00", Some("2025-04-07T08:00:00+00:00"));
        check("2025-04-07", Some("2025-04-07T00:00:00+00:00"));
        check("2025-02-30", None);
        check("yesterday", None);
    }
}
