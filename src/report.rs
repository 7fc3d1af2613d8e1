//! What `check` prints and what a sync logs, per file.

use serde::Serialize;
use tracing::warn;

use crate::pipeline::{Outcome, Status};
use crate::scan::Listing;

/// One file, as `herald check --json` shows it.
#[derive(Debug, Serialize, PartialEq)]
pub struct Row {
    pub path: String,
    pub status: &'static str,
    pub id: Option<String>,
    /// Primary language subtag (what the feeds are grouped by).
    pub lang: Option<String>,
    /// The full tag as published in `xml:lang` / `dc:language`.
    pub lang_tag: Option<String>,
    pub lang_source: Option<&'static str>,
    pub encoding: Option<&'static str>,
    pub title: Option<String>,
    pub published: Option<String>,
    pub updated: Option<String>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    /// For ignored files: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

impl Row {
    /// A row with nothing known but the path and status.
    fn bare(path: &str, status: &'static str) -> Row {
        Row {
            path: path.to_string(),
            status,
            id: None,
            lang: None,
            lang_tag: None,
            lang_source: None,
            encoding: None,
            title: None,
            published: None,
            updated: None,
            warnings: Vec::new(),
            error: None,
            reason: None,
        }
    }
}

/// Every file found under the watch folder, sorted by path.
pub fn rows(outcomes: &[Outcome], listing: &Listing) -> Vec<Row> {
    let mut rows: Vec<Row> = outcomes.iter().map(row).collect();
    for (path, reason) in &listing.ignored {
        rows.push(Row {
            reason: Some(reason),
            ..Row::bare(path, "ignored")
        });
    }
    for (path, error) in &listing.errors {
        rows.push(Row {
            error: Some(format!("cannot read: {error}")),
            ..Row::bare(path, "rejected")
        });
    }
    rows.sort_by(|a, b| a.path.cmp(&b.path));
    rows
}

fn row(o: &Outcome) -> Row {
    let e = o.entry.as_ref();
    Row {
        path: o.rel.clone(),
        status: if o.status == Status::Rejected {
            "rejected"
        } else {
            "published"
        },
        id: e.map(|e| e.id.clone()),
        lang: e.map(|e| e.lang.primary().to_string()),
        lang_tag: e.map(|e| e.lang.as_str().to_string()),
        lang_source: e.map(|e| e.lang_source.as_str()),
        encoding: o.encoding.or(e.map(|_| "UTF-8")),
        title: e.map(|e| e.title.clone()),
        published: e.map(|e| e.published.to_rfc3339()),
        updated: e.map(|e| e.updated.to_rfc3339()),
        warnings: o.warnings.clone(),
        error: o.error.clone(),
        reason: None,
    }
}

/// A readable table for `herald check`.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    let width = rows
        .iter()
        .map(|r| r.path.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    out.push_str(&format!(
        "{:<9} {:<6} {:<12} {:<13} {:<width$} TITLE / REASON\n",
        "STATUS", "LANG", "SOURCE", "ENCODING", "PATH"
    ));
    for r in rows {
        let what = match (&r.title, &r.error, r.reason) {
            (_, Some(e), _) => e.clone(),
            (Some(t), None, _) => t.clone(),
            (None, None, Some(reason)) => reason.to_string(),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{:<9} {:<6} {:<12} {:<13} {:<width$} {}\n",
            r.status,
            r.lang.as_deref().unwrap_or("-"),
            r.lang_source.unwrap_or("-"),
            r.encoding.unwrap_or("-"),
            r.path,
            what
        ));
        for w in &r.warnings {
            out.push_str(&format!("{:>9} warning: {w}\n", ""));
        }
    }
    let count = |s: &str| rows.iter().filter(|r| r.status == s).count();
    out.push_str(&format!(
        "{} published, {} rejected, {} ignored\n",
        count("published"),
        count("rejected"),
        count("ignored")
    ));
    out
}

/// One log line per file worth telling about: a new rejection, or a
/// published file with warnings.
pub fn log_outcomes(outcomes: &[Outcome]) {
    for o in outcomes {
        if let Some(error) = &o.error {
            if o.fresh {
                warn!(path = %o.rel, "rejected: {error}");
            }
        } else if !o.warnings.is_empty() && o.status != Status::Unchanged {
            warn!(path = %o.rel, "{}", o.warnings.join("; "));
        }
    }
}
