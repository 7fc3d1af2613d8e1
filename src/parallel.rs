//! One helper: a function over a slice on all cores, results in order
//! (and its variant for jobs that also wait for the disk).
//!
//! Used where a batch of independent, unevenly sized jobs holds up a
//! publish: listing the watch folder, reading and parsing files,
//! compressing documents.

use std::sync::atomic::{AtomicUsize, Ordering};

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
}
