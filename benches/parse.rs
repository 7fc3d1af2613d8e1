//! Announcements decoded, parsed and language-detected per second (the pure
//! stage every file goes through), and language detection alone.
//!
//!     cargo bench --bench parse

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use herald::announcement::{self, lang};

mod common;

fn parse(c: &mut Criterion) {
    let inputs = common::inputs();
    let options = common::options();
    let bytes: usize = inputs.iter().map(|i| i.bytes.len()).sum();
    let mut group = c.benchmark_group("parse");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function(
        format!("{} announcements, {} KB", inputs.len(), bytes / 1024),
        |b| {
            b.iter(|| {
                for i in &inputs {
                    let a = announcement::parse(&i.name, &i.bytes, &options);
                    std::hint::black_box(a.is_ok());
                }
            })
        },
    );
    group.finish();

    let texts: Vec<String> = common::parsed()
        .into_iter()
        .map(|a| a.title + "\n\n" + &a.summary)
        .collect();
    let default = options.default_language.clone();
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("title + summary", |b| {
        b.iter_batched(
            || (),
            |()| {
                for t in &texts {
                    std::hint::black_box(lang::detect(t, &[], &default));
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
