//! File-system events -> debounced batches of paths -> syncs of the engine.
//!
//! Runs on its own thread, which owns the [`Engine`] (SQLite is blocking).
//! Events are collected until the folder has been quiet for
//! `watch.debounce_ms`, so a file written in chunks, an editor's save dance
//! or a burst of thousands of files becomes one sync of the paths involved.
//! A full rescan runs on notify's rescan signal (event-queue overflow), on
//! any watcher error, periodically (`watch.rescan_interval_s`), and whenever
//! the watch folder comes back after it was missing. Between syncs, the
//! [`Publisher`]'s background work (writing what publishes changed, or the
//! whole feeds folder, to disk) runs in slices while the folder is quiet.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use notify::{Event, EventKind, RecursiveMode};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::engine::{Engine, EngineError, Synced};
use crate::metrics::Metrics;
use crate::scan;

/// The longest the loop sleeps without showing a sign of life.
const BEAT: Duration = Duration::from_secs(5);
/// Background work (a whole feeds-folder write) waits until no event has
/// come for this long (at least; four debounce periods when longer), so
/// that files dropped one after another are published as fast as when
/// idle...
const QUIET: Duration = Duration::from_secs(1);
/// ...but never waits longer than this since its last slice, so that it
/// ends even while events keep coming.
const STARVE: Duration = Duration::from_secs(5);

/// File events sent by this process's watchers: a slice of background
/// work ends early when one comes (a counter, as the channel cannot be
/// peeked at).
static EVENTS: AtomicU64 = AtomicU64::new(0);

/// What the watcher thread is told.
#[derive(Debug)]
pub enum Msg {
    /// Paths named by a file-system event (absolute), and when it came:
    /// the debounce counts from there, not from when the loop, busy with
    /// the previous publish, gets to it.
    Paths(Vec<PathBuf>, Instant),
    /// Something may have been missed: look at everything.
    Rescan(String),
    /// Publish again even without changes (a failed disk write is retried).
    Retry,
    /// A new, validated configuration (SIGHUP). The reply comes after the
    /// full rescan that follows it.
    Reload(Box<Config>, Sender<()>),
    Shutdown,
}

/// Starts an inotify (or platform) watcher on `root` that forwards events to `tx`.
pub fn start(root: &Path, tx: Sender<Msg>) -> notify::Result<Box<dyn notify::Watcher + Send>> {
    let handler = move |res: notify::Result<Event>| {
        let msg = match res {
            Ok(event) if event.need_rescan() => Msg::Rescan("the event queue overflowed".into()),
            Ok(event) => match event.kind {
                EventKind::Access(notify::event::AccessKind::Close(
                    notify::event::AccessMode::Write,
                ))
                | EventKind::Create(_)
                | EventKind::Modify(_)
                | EventKind::Remove(_)
                | EventKind::Any
                | EventKind::Other => Msg::Paths(event.paths, Instant::now()),
                EventKind::Access(_) => return,
            },
            Err(e) => Msg::Rescan(format!("watcher error: {e}")),
        };
        if may_matter(&msg) {
            EVENTS.fetch_add(1, Ordering::Relaxed);
        }
        let _ = tx.send(msg);
    };
    // Only what changes files, and the close after a write: with opens
    // included the kernel queues an event for every file herald itself
    // reads (100,000 at a first start, ~2 s of CPU and a queue overflow).
    let config = notify::Config::default()
        .with_event_kinds(notify::EventKindMask::CORE | notify::EventKindMask::ACCESS_CLOSE);
    let mut watcher: Box<dyn notify::Watcher + Send> = Box::new(
        <notify::RecommendedWatcher as notify::Watcher>::new(handler, config)?,
    );
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}

/// Whether a message should cut a slice of background work short: not for
/// events on hidden files or editor and transfer temp files only.
fn may_matter(msg: &Msg) -> bool {
    let Msg::Paths(paths, _) = msg else {
        return true;
    };
    paths.iter().any(|p| {
        p.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            !n.starts_with('.') && scan::temp_reason(&n).is_none()
        })
    })
}

/// Starts watching before the first sync, so that what changes during it
/// arrives as events and [`run`] needs no full rescan when it starts (at
/// 100,000 files that rescan delayed the first publish by ~1 s). `None` in
/// polling mode or when the folder cannot be watched yet: [`run`] arms the
/// watcher itself then, with a rescan.
pub fn start_early(engine: &Engine, tx: Sender<Msg>) -> Option<Box<dyn notify::Watcher + Send>> {
    if engine.config().watch.poll_interval.is_some() {
        return None;
    }
    start(&canonical_root(engine)?, tx).ok()
}

/// What the loop hands its results to (the daemon's publisher).
pub trait Publisher {
    /// A sync's result: make it visible and write it.
    fn publish(&mut self, engine: &mut Engine, synced: Synced);
    /// A short slice of background work (the daemon writes the feeds
    /// folder this way), called while no event is waiting; returns whether
    /// more is left. Events are looked at between slices, so a slice
    /// should end soon after `interrupt` says that a file event came.
    fn idle(&mut self, engine: &mut Engine, interrupt: &dyn Fn() -> bool) -> bool;
}

/// The loop: wait for events, debounce, sync, hand the result to
/// `publisher`. Returns the engine when told to shut down (dropping it
/// closes the state). `early` is a watcher from [`start_early`], armed
/// before the first sync.
pub fn run(
    mut engine: Engine,
    early: Option<Box<dyn notify::Watcher + Send>>,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    metrics: std::sync::Arc<Metrics>,
    publisher: &mut impl Publisher,
) -> Engine {
    let beat = metrics.clone();
    engine.set_progress(std::sync::Arc::new(move || beat.beat()));
    let mut reload_replies: Vec<Sender<()>> = Vec::new();
    let mut watcher: Option<Box<dyn notify::Watcher + Send>> = early;
    let mut root = canonical_root(&engine);
    let mut next_rescan = engine
        .config()
        .watch
        .rescan_interval
        .map(|d| Instant::now() + d);
    let mut missing_logged = false;
    let mut pending_full = false;
    // When a scheduled entry is due (publish_at / expires): checked at
    // once, then whenever a sync says when the next one is.
    let mut due: Option<Instant> = Some(Instant::now());
    // Whether the publisher has background work left, when an event was
    // last handled and when the background work last had a slice.
    let mut idle_work = true;
    let mut last_event: Option<Instant> = None;
    let mut last_slice = Instant::now();
    // When arming the watcher may be tried again after a failure (slices
    // would otherwise retry it, walking the whole tree, every few ms), and
    // when the folder was last scanned whole (polling counts from there).
    let mut next_arm = Instant::now();
    let mut last_full_scan = Instant::now();
    loop {
        // Polling mode (network filesystems) uses no notify watcher: a full
        // rescan every interval sees everything, deletions included.
        let poll = engine.config().watch.poll_interval;
        if poll.is_some() && root.is_some() && missing_logged {
            info!(path = %engine.config().paths.watch.display(), "watch folder is back; rescanning");
            missing_logged = false;
            pending_full = true;
        }
        // The folder itself vanished (renamed away, unmounted): inotify
        // watches die with it; forget them and look for it again.
        if root.as_ref().is_some_and(|r| !r.is_dir()) {
            root = None;
        }
        if root.is_none() {
            // (Also an early watcher whose folder went before this loop
            // started.)
            watcher = None;
        }
        let armed = |w: &Option<Box<dyn notify::Watcher + Send>>, root: &Option<PathBuf>| {
            w.is_some() || (poll.is_some() && root.is_some())
        };
        if !armed(&watcher, &root) && Instant::now() >= next_arm {
            next_arm = Instant::now() + Duration::from_secs(2);
            if root.is_none() {
                root = canonical_root(&engine);
            }
            match root
                .as_ref()
                .filter(|_| poll.is_none())
                .map(|r| start(r, tx.clone()))
            {
                Some(Ok(w)) => {
                    if missing_logged {
                        info!(path = %engine.config().paths.watch.display(), "watch folder is back; rescanning");
                        missing_logged = false;
                    }
                    watcher = Some(w);
                    pending_full = true;
                }
                Some(Err(e)) => {
                    if !missing_logged {
                        error!(path = %engine.config().paths.watch.display(), error = %e, "cannot watch the watch folder; serving the last published feeds and retrying");
                        missing_logged = true;
                    }
                }
                None => {
                    if !missing_logged {
                        error!(path = %engine.config().paths.watch.display(), "watch folder is missing; serving the last published feeds and retrying");
                        missing_logged = true;
                    }
                }
            }
        }
        metrics.beat();
        // Wait for the first message (or a timer).
        let wait = if !armed(&watcher, &root) {
            Duration::from_secs(2)
        } else if pending_full {
            Duration::ZERO
        } else {
            let rescan = next_rescan.map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(Instant::now())
            });
            poll.map_or(rescan, |p| {
                rescan.min((last_full_scan + p).saturating_duration_since(Instant::now()))
            })
        };
        let wait = match due {
            Some(t) => wait.min(t.saturating_duration_since(Instant::now())),
            None => wait,
        };
        let mut paths = BTreeSet::new();
        let mut full = std::mem::take(&mut pending_full);
        let mut new_config = None;
        let mut time_due = false;
        let quiet = QUIET.max(engine.config().watch.debounce * 4);
        let now = Instant::now();
        let slice_at = idle_work.then(|| {
            last_event
                .map_or(now, |t| t + quiet)
                .min(last_slice + STARVE)
        });
        let received = match slice_at {
            // Starved (events keep coming): one slice, not cut short.
            Some(_) if now >= last_slice + STARVE && !wait.is_zero() => {
                idle_work = publisher.idle(&mut engine, &|| false);
                last_slice = Instant::now();
                pending_full = full;
                continue;
            }
            Some(at) if at <= now && !wait.is_zero() => match rx.try_recv() {
                Ok(msg) => Ok(msg),
                Err(TryRecvError::Empty) => {
                    let seen = EVENTS.load(Ordering::Relaxed);
                    let interrupt = || EVENTS.load(Ordering::Relaxed) != seen;
                    idle_work = publisher.idle(&mut engine, &interrupt);
                    last_slice = Instant::now();
                    pending_full = full;
                    continue;
                }
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
            },
            // Until the folder has been quiet long enough, or a message.
            Some(at) if at > now && at - now < wait.min(BEAT) => match rx.recv_timeout(at - now) {
                Err(RecvTimeoutError::Timeout) => {
                    pending_full = full;
                    continue;
                }
                other => other,
            },
            _ => rx.recv_timeout(wait.min(BEAT)),
        };
        // When the newest event of the batch came.
        let mut newest = Instant::now();
        match received {
            Ok(Msg::Shutdown) | Err(RecvTimeoutError::Disconnected) => return engine,
            Ok(msg) => {
                newest = came_at(&msg);
                if collect(msg, &mut paths, &mut full, &mut new_config) {
                    return engine;
                }
            }
            Err(RecvTimeoutError::Timeout) if due.is_some_and(|t| t <= Instant::now()) => {
                time_due = true;
            }
            Err(RecvTimeoutError::Timeout) if wait > BEAT => continue,
            Err(RecvTimeoutError::Timeout) => {
                if !armed(&watcher, &root) {
                    root = canonical_root(&engine);
                    continue;
                }
                if !full {
                    debug!("periodic rescan");
                    full = true;
                }
            }
        }
        // Debounce: until the folder has been quiet for `debounce` since
        // the newest event (which may have come while the last publish was
        // under way), but never longer than a few seconds in all.
        let debounce = engine.config().watch.debounce;
        let give_up = Instant::now() + (debounce * 20).max(Duration::from_secs(2));
        loop {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let quiet_for = (newest + debounce).saturating_duration_since(Instant::now());
            // (A zero wait still takes a message that is there.)
            match rx.recv_timeout(quiet_for.min(left)) {
                Ok(msg) => {
                    newest = newest.max(came_at(&msg));
                    if collect(msg, &mut paths, &mut full, &mut new_config) {
                        return engine;
                    }
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return engine,
            }
        }
        let mut everything = false;
        if let Some((config, reply)) = new_config {
            let watch_changed = config.paths.watch != engine.config().paths.watch
                || config.watch.poll_interval != engine.config().watch.poll_interval;
            // (In polling mode there is no watcher; dropping None is harmless.)
            engine.set_config(*config);
            if watch_changed {
                watcher = None;
                root = canonical_root(&engine);
            }
            reload_replies.push(reply);
            full = true;
            everything = true; // the title or base URL may have changed
        }
        if full {
            last_full_scan = Instant::now();
            next_rescan = engine
                .config()
                .watch
                .rescan_interval
                .map(|d| Instant::now() + d);
        }
        if root.as_ref().is_some_and(|r| paths.contains(r)) {
            // An event on the folder itself (deleted, moved, replaced):
            // its watches may be gone. Re-armed, with a full rescan, at
            // the top of the loop.
            watcher = None;
        }
        let rels: Vec<String> = match &root {
            Some(r) => paths.iter().filter_map(|p| relevant(r, p)).collect(),
            None => Vec::new(),
        };
        if due.is_some_and(|t| t <= Instant::now()) {
            time_due = true;
        }
        if !full && rels.is_empty() && !time_due {
            continue;
        }
        let started = Instant::now();
        let result = if full {
            engine.sync_full(everything)
        } else if !rels.is_empty() {
            engine.sync_paths(&rels)
        } else {
            engine.sync_time()
        };
        match result {
            Ok(synced) => {
                due = synced.next_due.map(|at| {
                    let ms = (at - crate::pipeline::now()).num_milliseconds().max(0);
                    // Whole seconds are stored: a little late, never early.
                    Instant::now() + Duration::from_millis(ms as u64 + 20)
                });
                debug!(
                    full,
                    paths = rels.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "synced"
                );
                publisher.publish(&mut engine, synced);
                idle_work = true;
                if !rels.is_empty() {
                    // Files are arriving: more may follow.
                    last_event = Some(Instant::now());
                }
            }
            Err(EngineError::Watch { path, source }) => {
                error!(path = %path.display(), error = %source, "cannot read the watch folder; serving the last published feeds");
                missing_logged = true;
                watcher = None;
                root = canonical_root(&engine);
            }
            Err(e) => {
                due = due.map(|_| Instant::now() + Duration::from_secs(1));
                error!(error = %e, "sync failed; will retry with a full rescan");
                pending_full = true;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        for reply in reload_replies.drain(..) {
            let _ = reply.send(());
        }
    }
}

/// Adds a message's paths; returns true on shutdown.
fn collect(
    msg: Msg,
    paths: &mut BTreeSet<PathBuf>,
    full: &mut bool,
    new_config: &mut Option<(Box<Config>, Sender<()>)>,
) -> bool {
    match msg {
        Msg::Reload(config, reply) => {
            // A second reload in the same batch wins; both callers hear back.
            if let Some((_, earlier)) = new_config.take() {
                let _ = earlier.send(());
            }
            *new_config = Some((config, reply));
        }
        Msg::Paths(p, _) => paths.extend(p),
        Msg::Rescan(why) => {
            if !*full {
                warn!(reason = %why, "full rescan");
            }
            *full = true;
        }
        Msg::Retry => *full = true,
        Msg::Shutdown => return true,
    }
    false
}

/// When a message's event came (others: now).
fn came_at(msg: &Msg) -> Instant {
    match msg {
        Msg::Paths(_, at) => *at,
        _ => Instant::now(),
    }
}

fn canonical_root(engine: &Engine) -> Option<PathBuf> {
    engine
        .config()
        .paths
        .watch
        .canonicalize()
        .ok()
        .filter(|p| p.is_dir())
}

/// An event path -> the relative path to look at, or `None` when it cannot
/// matter (hidden files, editor and transfer temp files).
fn relevant(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?.to_str()?.to_string();
    if rel.is_empty() {
        return None;
    }
    let name = rel.rsplit('/').next().unwrap_or(&rel);
    if rel.split('/').any(|c| c.starts_with('.')) {
        return None;
    }
    // Folders are looked into: present ones, and gone ones (no extension,
    // not a known temp name such as vim's `4913`).
    let keep = scan::is_candidate_path(&rel)
        || path.is_dir()
        || (!name.contains('.') && scan::temp_reason(name).is_none());
    keep.then_some(rel)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_temp_files_do_not_cut_background_work_short() {
        let paths =
            |ps: &[&str]| Msg::Paths(ps.iter().map(PathBuf::from).collect(), Instant::now());
        assert!(may_matter(&paths(&["/w/a.txt"])));
        assert!(may_matter(&paths(&["/w/.a.txt.swp", "/w/b.md"])));
        assert!(!may_matter(&paths(&[
            "/w/.a.txt.swp",
            "/w/4913",
            "/w/a.txt~"
        ])));
        assert!(may_matter(&Msg::Rescan("overflow".into())));
    }

    #[test]
    fn relevant_paths() {
        let root = Path::new("/w");
        let check = |p: &str, expected: Option<&str>| {
            assert_eq!(relevant(root, Path::new(p)).as_deref(), expected, "{p}");
        };
        check("/w/a.txt", Some("a.txt"));
        check("/w/pl/b.md", Some("pl/b.md"));
        check("/w/pl", Some("pl"));
        check("/w/.a.txt.swp", None);
        check("/w/a.txt~", None);
        check("/w/4913", None);
        check("/w/x.tmp", None);
        check("/w/.git/a.txt", None);
        check("/w", None);
        check("/elsewhere/a.txt", None);
    }

    /// Background work that never ends by itself.
    struct Endless {
        slices: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        /// The number of slices done at each publish.
        published_at: Vec<usize>,
        /// When each publish and each slice happened.
        publish_times: Vec<Instant>,
        slice_times: Vec<Instant>,
    }

    impl Publisher for Endless {
        fn publish(&mut self, _: &mut Engine, _: Synced) {
            self.published_at
                .push(self.slices.load(std::sync::atomic::Ordering::SeqCst));
            self.publish_times.push(Instant::now());
        }
        fn idle(&mut self, _: &mut Engine, _: &dyn Fn() -> bool) -> bool {
            self.slice_times.push(Instant::now());
            let n = self
                .slices
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
            n < 20_000 // a bound, so that a broken loop ends the test
        }
    }

    #[test]
    fn events_are_handled_between_slices_of_background_work() {
        let dir = tempfile::tempdir().expect("temp dir");
        let watch = dir.path().join("watch");
        std::fs::create_dir_all(&watch).expect("watch folder");
        let dropped = watch
            .canonicalize()
            .expect("canonical watch folder")
            .join("dropped.txt");
        std::fs::write(&dropped, "Dropped\n\nA file dropped while the work runs.\n")
            .expect("dropped file");
        let config = Config::parse(
            "[watch]\ndebounce_ms = 10\npoll_interval_ms = 60000\nrescan_interval_s = 0\n",
            &dir.path().join("config.toml"),
        )
        .expect("config");
        let engine = Engine::open(config).expect("engine");
        let (tx, rx) = std::sync::mpsc::channel();
        let slices = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut publisher = Endless {
            slices: slices.clone(),
            published_at: Vec::new(),
            publish_times: Vec::new(),
            slice_times: Vec::new(),
        };
        let sender = {
            let tx = tx.clone();
            let slices = slices.clone();
            std::thread::spawn(move || {
                // Once the work is under way: a file event, then shutdown.
                while slices.load(std::sync::atomic::Ordering::SeqCst) < 50 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let _ = tx.send(Msg::Paths(vec![dropped], Instant::now()));
                while slices.load(std::sync::atomic::Ordering::SeqCst) < 200 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let _ = tx.send(Msg::Shutdown);
            })
        };
        let metrics = std::sync::Arc::new(Metrics::default());
        run(engine, None, rx, tx, metrics, &mut publisher);
        sender.join().expect("sender");
        // (The loop's first round, due at once, publishes before any slice.)
        let at = &publisher.published_at;
        assert!(
            at.iter().any(|n| (50..200).contains(n)),
            "the event was published between slices: {at:?}"
        );
        let total = slices.load(std::sync::atomic::Ordering::SeqCst);
        assert!(total < 20_000, "shutdown was heard between slices: {total}");
        // After the file event's publish, the work waited for the folder to
        // be quiet. (The loop's first round is no event: no wait.)
        let mut checked = 0;
        for (p, n) in publisher.publish_times.iter().zip(at) {
            let next = publisher.slice_times.iter().find(|t| *t > p);
            match next {
                Some(next) if *n >= 50 => {
                    assert!(*next - *p >= QUIET, "a slice {:?} after", *next - *p);
                    checked += 1;
                }
                _ => {}
            }
        }
        assert_eq!(checked, 1);
    }
}
