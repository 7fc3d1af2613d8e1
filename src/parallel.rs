//! One helper: a function over a slice on all cores, results in order
//! (and its variants for jobs that also wait for the disk, and for a long
//! slice handed on chunk by chunk to a consumer, by the same threads).
//!
//! Used where a batch of independent, unevenly sized jobs holds up a
//! publish: listing the watch folder, reading and parsing files,
//! compressing documents.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// `f` over `items` on up to 8 cores, results in the order of `items`.
/// Each thread takes the next item as it finishes one, so a slow item does
/// not leave the other cores idle behind a fixed split. Fewer than 4 items
/// run on the calling thread. A panic in `f` is a bug and is passed on.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_on(cores().min(8), items, f)
}

/// [`map`] for jobs that also wait for the disk (reading files that may
/// not be in the page cache): twice as many threads as cores, up to 16, so
/// that a thread waiting for a read leaves its core to another.
pub fn map_reading<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    map_on((cores() * 2).min(16), items, f)
}

/// [`map_reading`] over `items` in consecutive chunks of `chunk` items,
/// handed to `sink` in order, on the calling thread, as each completes;
/// `sink` returns `false` to stop early. The same threads serve every
/// chunk (no thread, and no allocator heap, started per chunk). They work
/// on one chunk at a time: the next one while `sink` holds the last, as
/// when each chunk was mapped in turn.
pub fn map_reading_chunks<T: Sync, R: Send>(
    items: &[T],
    chunk: usize,
    f: impl Fn(&T) -> R + Sync,
    mut sink: impl FnMut(Vec<R>) -> bool,
) {
    let chunk = chunk.max(1);
    let threads = (cores() * 2).min(16).min(items.len());
    if items.len() <= chunk {
        // One chunk (or none): the ordinary map.
        if !items.is_empty() {
            sink(map_reading(items, f));
        }
        return;
    }
    if threads <= 1 {
        for part in items.chunks(chunk) {
            if !sink(part.iter().map(&f).collect()) {
                return;
            }
        }
        return;
    }
    let pool = Pool {
        chunk,
        len: items.len(),
        state: Mutex::new(PoolState {
            done: std::collections::BTreeMap::new(),
            filled: vec![0; items.len().div_ceil(chunk)],
            handed: 0,
            stop: false,
        }),
        ready: Condvar::new(),
        room: Condvar::new(),
        next: AtomicUsize::new(0),
    };
    let (f, pool) = (&f, &pool);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || work(pool, items, f)))
            .collect();
        hand_on(pool, &mut sink);
        for w in workers {
            w.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        }
    });
}

/// A worker of [`map_reading_chunks`]: takes the next item, once its chunk
/// may be worked on, until there is none or the pool stops.
fn work<T, R>(pool: &Pool<R>, items: &[T], f: &impl Fn(&T) -> R) {
    let _stop_on_panic = StopOnPanic(pool);
    loop {
        let i = pool.next.fetch_add(1, Ordering::Relaxed);
        let Some(item) = items.get(i) else {
            return;
        };
        let k = i / pool.chunk;
        let mut state = pool.lock();
        while !state.stop && k > state.handed {
            state = pool.room.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.stop {
            return;
        }
        drop(state);
        let r = f(item);
        let mut state = pool.lock();
        state.done.insert(i, r);
        state.filled[k] += 1;
        if state.filled[k] == pool.len_of(k) {
            pool.ready.notify_all();
        }
    }
}

/// The calling thread's part of [`map_reading_chunks`]: each chunk to
/// `sink` as soon as it is complete.
fn hand_on<R>(pool: &Pool<R>, sink: &mut impl FnMut(Vec<R>) -> bool) {
    // A panic in `sink` must not leave the workers waiting for room.
    let _stop_on_panic = StopOnPanic(pool);
    for k in 0..pool.len.div_ceil(pool.chunk) {
        let mut state = pool.lock();
        while !state.stop && state.filled[k] < pool.len_of(k) {
            state = pool.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.stop {
            // A worker panicked: joining it passes the panic on.
            return;
        }
        let later = state.done.split_off(&((k + 1) * pool.chunk));
        let results = std::mem::replace(&mut state.done, later);
        state.handed = k + 1;
        drop(state);
        pool.room.notify_all();
        if !sink(results.into_values().collect()) {
            pool.lock().stop = true;
            pool.room.notify_all();
            return;
        }
    }
}

struct Pool<R> {
    /// Items per chunk.
    chunk: usize,
    /// Items in all.
    len: usize,
    state: Mutex<PoolState<R>>,
    /// A chunk was completed.
    ready: Condvar,
    /// A chunk was handed on: workers may go on.
    room: Condvar,
    /// The next item to take.
    next: AtomicUsize,
}

struct PoolState<R> {
    /// Results not handed on yet, by item.
    done: std::collections::BTreeMap<usize, R>,
    /// Results per chunk.
    filled: Vec<usize>,
    /// Chunks handed to the sink.
    handed: usize,
    /// The sink stopped, or a worker panicked.
    stop: bool,
}

impl<R> Pool<R> {
    fn lock(&self) -> MutexGuard<'_, PoolState<R>> {
        // Nothing panics while holding the lock; a poisoned one is still whole.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Items in chunk `k` (the last may be short).
    fn len_of(&self, k: usize) -> usize {
        self.chunk.min(self.len - k * self.chunk)
    }
}

/// Wakes everyone with `stop` set when a worker or the sink unwinds, so
/// that nobody waits for what will never come.
struct StopOnPanic<'a, R>(&'a Pool<R>);

impl<R> Drop for StopOnPanic<'_, R> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.lock().stop = true;
            self.0.ready.notify_all();
            self.0.room.notify_all();
        }
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn map_on<T: Sync, R: Send>(threads: usize, items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = threads.min(items.len());
    if items.len() < 4 || threads <= 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else {
                            return mine;
                        };
                        mine.push((i, f(item)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..200).collect();
        // Uneven work: early items are the slow ones.
        let work = |&i: &u64| {
            let mut x = i;
            for _ in 0..(200 - i) * 500 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            (i, x)
        };
        for out in [map(&items, work), map_reading(&items, work)] {
            let order: Vec<u64> = out.iter().map(|(i, _)| *i).collect();
            assert_eq!(order, items);
        }
    }

    #[test]
    fn chunks_come_whole_and_in_order() {
        let items: Vec<u64> = (0..1003).collect();
        let work = |&i: &u64| {
            let mut x = i;
            for _ in 0..(1003 - i) * 50 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            i
        };
        let mut seen = Vec::new();
        map_reading_chunks(&items, 100, work, |part| {
            assert!(part.len() == 100 || seen.len() == 1000, "{}", part.len());
            seen.extend(part);
            true
        });
        assert_eq!(seen, items);
        // Chunks smaller than the pool, the last one short; one chunk; none.
        for (len, expected) in [(5, vec![2, 2, 1]), (2, vec![2]), (1, vec![1]), (0, vec![])] {
            let mut sizes = Vec::new();
            map_reading_chunks(
                &items[..len],
                2,
                |&i| i,
                |part| {
                    sizes.push(part.len());
                    true
                },
            );
            assert_eq!(sizes, expected);
        }
    }

    #[test]
    fn the_sink_can_stop_early() {
        let items: Vec<u64> = (0..10_000).collect();
        let calls = AtomicUsize::new(0);
        let mut chunks = 0;
        map_reading_chunks(
            &items,
            100,
            |&i| {
                calls.fetch_add(1, Ordering::Relaxed);
                i
            },
            |_| {
                chunks += 1;
                chunks < 3
            },
        );
        assert_eq!(chunks, 3);
        // The fourth chunk, done while the sink held the third, at most.
        assert!(calls.load(Ordering::Relaxed) <= 400, "{calls:?}");
    }

    #[test]
    #[should_panic(expected = "bad chunk")]
    fn a_panic_in_the_sink_is_passed_on() {
        let items: Vec<u64> = (0..1000).collect();
        map_reading_chunks(
            &items,
            100,
            |&i| i,
            |part| {
                assert!(part[0] < 300, "bad chunk");
                true
            },
        );
    }

    #[test]
    #[should_panic(expected = "bad item")]
    fn a_panic_in_a_worker_is_passed_on() {
        let items: Vec<u64> = (0..1000).collect();
        map_reading_chunks(
            &items,
            100,
            |&i| {
                assert!(i != 450, "bad item");
                i
            },
            |_| true,
        );
    }
}
