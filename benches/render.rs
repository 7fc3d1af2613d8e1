//! Feed documents rendered per second: the subscription feeds (50 entries)
//! in each format, a language index and one announcement page.
//!
//!     cargo bench --bench render

use chrono::DateTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald::announcement::lang::LangTag;
use herald::catalog::Entry;
use herald::pipeline::{self, Placement};
use herald::render::{self, FeedDoc, Scope, Site};

mod common;

fn entries(n: usize) -> Vec<Entry> {
    let epoch = DateTime::parse_from_rfc3339("2026-01-01T08:00:00+01:00").expect("date");
    let parsed = common::parsed();
    (0..n)
        .map(|i| {
            let a = parsed[i % parsed.len()].clone();
            let when = epoch + chrono::Duration::hours(i as i64);
            let id = format!("tag:news.example.org,2026-01-01:bench/{i}.txt");
            let mut e =
                pipeline::entry(a, Placement::detached(&id, &parsed[i % parsed.len()], when));
            e.published = when;
            e.updated = when;
            e
        })
        .rev()
        .collect()
}

fn site() -> Site {
    let en = LangTag::parse("en").expect("en");
    Site {
        title: "City announcements".into(),
        description: "Official news of the city".into(),
        base_url: "https://news.example.org/".into(),
        author: "City Hall".into(),
        id_prefix: "tag:news.example.org,2026-01-01:".into(),
        default_language: en.clone(),
        epoch: DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").expect("date"),
        languages: vec![(en, 50)],
        hubs: Vec::new(),
    }
}

fn render(c: &mut Criterion) {
    let site = site();
    let entries = entries(50);
    let scope = Scope::ALL;
    let doc = FeedDoc::current(&scope, &entries);
    let mut group = c.benchmark_group("render");
    group.throughput(Throughput::Elements(1));
    group.bench_function("atom, 50 entries", |b| {
        b.iter(|| render::atom::render(&site, &doc))
    });
    group.bench_function("rss, 50 entries", |b| {
        b.iter(|| render::rss::render(&site, &doc))
    });
    group.bench_function("json feed, 50 entries", |b| {
        b.iter(|| render::json::render(&site, &doc))
    });
    group.bench_function("html index, 50 entries", |b| {
        b.iter(|| render::html::index(&site, &scope, &entries))
    });
    group.bench_function("html page", |b| {
        b.iter(|| render::html::entry(&site, &entries[0]))
    });
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
