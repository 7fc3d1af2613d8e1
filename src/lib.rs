//! herald publishes city announcements as language-tagged RSS 2.0 and Atom
//! 1.0 feeds and serves them over HTTP.
//!
//! # Bird's-eye view
//!
//! A clerk drops a file into the watch folder. Data flows one way:
//!
//! ```text
//! watch ──> scan ──> pipeline ──(announcement::parse)──> catalog ──> layout/render ──> publish ──> feeds/
//!                                                                     ├──> snapshot (hot) ──┐
//!                                                                     └──> on_demand ───────┴──> serve (HTTP)
//! ```
//!
//! `herald build` runs that once; `herald serve` runs it on every batch of
//! file events (and when a scheduled entry is due), keeps the hot documents
//! (the feeds and indexes of everything and of each language) ready in
//! memory, and renders the rest (pages, archives, tag feeds) on request.
//!
//! # Codemap
//!
//! - [`config`]: `config.toml` -> validated [`config::Config`]; the only reader of it.
//! - [`announcement`]: bytes -> [`announcement::Announcement`], pure:
//!   [`announcement::decode`] (BOMs, UTF-16, legacy encodings, XML-safe text),
//!   [`announcement::front_matter`], [`announcement::text`] (plain text,
//!   headlines, first sentences), [`announcement::markdown`] (sanitised HTML),
//!   [`announcement::lang`] (BCP 47 tags, detection).
//! - [`scan`]: the watch folder -> candidate files; ignore rules; symlink containment.
//! - [`pipeline`]: files + state -> a plan: the rules for ids, dates,
//!   renames and rejections.
//! - [`catalog`]: the SQLite state; the only module that touches the
//!   database; which entries are shown now (scheduling, withdrawals),
//!   tombstones, translations, tags.
//! - [`layout`]: the URL layout — every document (feeds per scope, monthly
//!   archives, pages, OPML), its path, and how it is rendered from the state.
//! - [`render`]: entries -> RSS, Atom, JSON Feed, OPML and HTML bytes, pure.
//! - [`publish`]: documents -> the feeds folder, atomically; the only writer there.
//! - [`engine`]: configuration + state; runs one sync (scan, plan, apply, render, write);
//!   writes what publishes changed, or the whole feeds folder, a slice at a time when asked.
//! - [`snapshot`]: the hot documents in memory, pre-compressed, with validators.
//! - [`on_demand`]: the other documents, rendered per request, in a bounded cache.
//! - [`watch`]: notify events -> debounced syncs, rescans; owns the engine's thread,
//!   and gives background work (the slices of the feeds-folder writes) the quiet moments.
//! - [`serve`]: one single-threaded runtime per core, connections spread
//!   evenly over them (`serve/balance.rs`); answers from the snapshot and
//!   on-demand documents only; the only HTTP server code: plain
//!   `GET`/`HEAD` requests through its own HTTP/1.1 loop
//!   (`serve/http1.rs`), anything else through hyper.
//! - [`sendfile`]: large hot bodies in unnamed files in the state folder
//!   (a sealed memfd where that fails), mapped and sent to sockets with
//!   `sendfile(2)` (no copy through user memory), the rest with `writev`.
//! - [`websub`]: tells WebSub hubs which feeds changed (retries, back-off), never blocking a publish.
//! - [`daemon`]: `herald serve` wiring, signals, reload, shutdown; the
//!   publishing thread's order (memory, WebSub, then the feeds folder in
//!   slices once the watch folder is quiet).
//! - [`systemd`]: `sd_notify`, the watchdog period, socket activation.
//! - [`metrics`]: counters for `/metrics`, the health verdict for `/healthz` and the watchdog.
//! - [`report`]: per-file results for `check` and for logs.
//! - [`logging`]: human, journald or JSON log output.
//! - [`allocator`]: how long freed memory is kept (longer during a first import).
//! - [`parallel`]: a function over a slice on all cores, results in order (listing the watch folder, parsing, compression); reading files runs two threads per core, so that one waiting for the disk leaves its core to another; a first import reads chunk by chunk on the same threads.
//! - `fuzzing`: the property the fuzz target (`fuzz/`) and its regression test check.
//!
//! # Invariants
//!
//! - `announcement` and `render` touch no file system, clock, network or
//!   logger; time comes in as an argument.
//! - Only `publish` writes under the feeds folder; only `catalog` talks to
//!   the database; only `serve` speaks HTTP; only `main` picks exit codes.
//! - A request can only reach bytes that were published: there is no path
//!   from a URL to the file system.
//! - One bad input file never breaks a feed: it costs one warning naming the
//!   file, and its last good version stays published.
//! - An entry's id never changes once given, and is never reused.
//! - Output is a function of inputs and state: rebuilding without changes
//!   gives byte-identical feeds.

pub mod allocator;
pub mod announcement;
pub mod catalog;
pub mod config;
pub mod daemon;
pub mod engine;
#[doc(hidden)]
pub mod fuzzing;
pub mod layout;
pub mod logging;
pub mod metrics;
pub mod on_demand;
pub mod parallel;
pub mod pipeline;
pub mod publish;
pub mod render;
pub mod report;
pub mod scan;
pub mod sendfile;
pub mod serve;
pub mod snapshot;
pub mod systemd;
pub mod watch;
pub mod websub;
