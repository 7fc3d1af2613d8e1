//! Language-detection accuracy of herald's detector on the evaluation set
//! `tests/fixtures/lang_samples.json` (38 languages x 5 kinds of text:
//! headline only, two sentences, dense with street names/times/phone numbers,
//! quoting English, ordinary paragraph).
//!
//!     cargo run --release --example lang_accuracy [-- --default pl]
//!
//! Calls `announcement::lang::detect` exactly as the parser does (no
//! configured languages, default language `en` unless given).

use std::collections::BTreeMap;
use std::time::Instant;

use herald::announcement::lang::{detect, LangTag};

fn main() {
    let default = std::env::args()
        .skip_while(|a| a != "--default")
        .nth(1)
        .unwrap_or_else(|| "en".to_string());
    let default = LangTag::parse(&default).expect("--default takes a language tag");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/lang_samples.json"
    );
    let text = std::fs::read_to_string(path).expect("read the samples");
    let samples: Vec<serde_json::Value> = serde_json::from_str(&text).expect("samples are JSON");

    // Warm up: load the models once, so timings are per text.
    let _ = detect("warm up the models", &[], &default);

    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut by_lang: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut confusions = Vec::new();
    let mut micros = Vec::new();
    for s in &samples {
        let want = s["lang"].as_str().unwrap_or_default();
        let kind = s["kind"].as_str().unwrap_or_default();
        let text = s["text"].as_str().unwrap_or_default();
        let t = Instant::now();
        let got = detect(text, &[], &default).map(|d| d.lang.primary().to_string());
        micros.push(t.elapsed().as_micros());
        let ok = got.as_deref() == Some(want);
        for (map, key) in [(&mut by_kind, kind), (&mut by_lang, want)] {
            let e = map.entry(key.to_string()).or_default();
            e.0 += usize::from(ok);
            e.1 += 1;
        }
        if !ok {
            confusions.push(format!(
                "{want} -> {} ({kind})",
                got.as_deref().unwrap_or("none")
            ));
        }
    }
    let total_ok: usize = by_kind.values().map(|v| v.0).sum();
    println!(
        "overall: {total_ok}/{} = {:.1}%",
        samples.len(),
        100.0 * total_ok as f64 / samples.len() as f64
    );
    for (kind, (ok, n)) in &by_kind {
        println!(
            "  {kind:<14} {ok}/{n} = {:.1}%",
            100.0 * *ok as f64 / *n as f64
        );
    }
    let weak: Vec<String> = by_lang
        .iter()
        .filter(|(_, (ok, n))| ok < n)
        .map(|(l, (ok, n))| format!("{l} {ok}/{n}"))
        .collect();
    println!(
        "languages below 5/5: {}",
        if weak.is_empty() {
            "none".into()
        } else {
            weak.join(", ")
        }
    );
    println!(
        "confusions: {}",
        if confusions.is_empty() {
            "none".into()
        } else {
            confusions.join("; ")
        }
    );
    // Stress: only the first five words of every sample (for "dense" texts
    // these are often just dates and numbers, so some misses are expected).
    let mut stress = (0usize, 0usize, 0usize);
    for s in &samples {
        let want = s["lang"].as_str().unwrap_or_default();
        let words: Vec<&str> = s["text"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .take(5)
            .collect();
        match detect(&words.join(" "), &[], &default) {
            Some(d) if d.lang.primary() == want => stress.0 += 1,
            Some(_) => stress.1 += 1,
            None => stress.2 += 1,
        }
    }
    println!(
        "first 5 words only: {} right, {} wrong, {} no answer (default used) of {}",
        stress.0,
        stress.1,
        stress.2,
        samples.len()
    );
    micros.sort_unstable();
    println!(
        "time per text: median {} us, p90 {} us, max {} us",
        micros[micros.len() / 2],
        micros[micros.len() * 9 / 10],
        micros[micros.len() - 1]
    );
}
