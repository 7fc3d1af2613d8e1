//! Spreading connections evenly over the serving threads.
//!
//! Every serving thread accepts on the shared listening sockets, and the
//! kernel wakes them all for a new connection: the one that runs first takes
//! the whole burst. A client opening 64 connections at once (a benchmark, an
//! aggregator's pool) could land them all on one thread and leave the other
//! cores idle for as long as they stay open. So the accepting thread keeps a
//! connection only when no other thread has fewer open ones; otherwise it
//! moves the socket to the thread with the fewest, which registers it with
//! its own reactor. That costs one cross-thread wake-up per moved connection
//! and nothing per request.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit};

/// A connection moved to another thread: the socket (out of the accepting
/// thread's reactor), its peer, which listener took it, and its slot under
/// the connection cap.
#[derive(Debug)]
pub(super) struct Moved {
    pub stream: std::net::TcpStream,
    pub peer: SocketAddr,
    pub listener: usize,
    pub permit: OwnedSemaphorePermit,
    pub open: Open,
}

/// Open connections per serving thread, and a way to hand each one a
/// connection.
#[derive(Debug)]
pub struct Balance {
    open: Vec<AtomicUsize>,
    /// Threads whose inbox is gone (a runtime that failed to start, or
    /// shutdown): never chosen again.
    closed: Vec<AtomicBool>,
    inboxes: Vec<mpsc::UnboundedSender<Moved>>,
}

impl Balance {
    /// A balance over `threads` threads, with the receiving end of each
    /// thread's inbox (index = thread).
    pub(super) fn new(threads: usize) -> (Arc<Balance>, Vec<mpsc::UnboundedReceiver<Moved>>) {
        let (inboxes, receivers) = (0..threads).map(|_| mpsc::unbounded_channel()).unzip();
        let balance = Balance {
            open: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            closed: (0..threads).map(|_| AtomicBool::new(false)).collect(),
            inboxes,
        };
        (Arc::new(balance), receivers)
    }

    /// Open connections on each thread (for `/metrics`).
    pub fn open(&self) -> Vec<usize> {
        self.open
            .iter()
            .map(|n| n.load(Ordering::Relaxed))
            .collect()
    }

    /// Where a connection accepted on thread `me` should be served: `me`
    /// unless another thread has fewer open connections (the lowest index
    /// among those with the fewest). The chosen thread's count goes up at
    /// once, so a burst of accepts alternates between the threads.
    pub(super) fn assign(self: &Arc<Self>, me: usize) -> (usize, Open) {
        let mut best = me;
        let mut fewest = self.count(me);
        for (thread, (open, closed)) in self.open.iter().zip(&self.closed).enumerate() {
            let open = open.load(Ordering::Relaxed);
            if open < fewest && !closed.load(Ordering::Relaxed) {
                (best, fewest) = (thread, open);
            }
        }
        (best, self.opened(best))
    }

    /// Sends a connection to `thread`'s inbox; gives it back when that
    /// thread no longer serves (its runtime failed or is shutting down),
    /// and that thread is not chosen again.
    pub(super) fn send(&self, thread: usize, moved: Moved) -> Result<(), Moved> {
        let sent = match self.inboxes.get(thread) {
            Some(inbox) => inbox.send(moved).map_err(|e| e.0),
            None => Err(moved),
        };
        if sent.is_err() {
            if let Some(closed) = self.closed.get(thread) {
                closed.store(true, Ordering::Relaxed);
            }
        }
        sent
    }

    /// Counts a connection on `thread` until the returned guard drops.
    pub(super) fn opened(self: &Arc<Self>, thread: usize) -> Open {
        if let Some(n) = self.open.get(thread) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Open {
            balance: self.clone(),
            thread,
        }
    }

    fn count(&self, thread: usize) -> usize {
        self.open
            .get(thread)
            .map_or(usize::MAX, |n| n.load(Ordering::Relaxed))
    }
}

/// One open connection counted on a thread; uncounted when dropped.
#[derive(Debug)]
pub(super) struct Open {
    balance: Arc<Balance>,
    thread: usize,
}

impl Open {
    /// Counts the connection on `thread` instead (when a move failed and
    /// the accepting thread serves it after all).
    pub(super) fn move_to(self, thread: usize) -> Open {
        self.balance.opened(thread)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(n) = self.balance.open.get(self.thread) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_accepts_on_one_thread_is_spread_evenly() {
        let (balance, _inboxes) = Balance::new(3);
        let mut guards = Vec::new();
        for _ in 0..30 {
            // Every connection is accepted by thread 1, as when it alone
            // was awake.
            guards.push(balance.assign(1));
        }
        assert_eq!(balance.open(), vec![10, 10, 10]);
        // The accepting thread keeps what it can: the first goes to it.
        assert_eq!(guards[0].0, 1);
        assert!(guards.iter().filter(|(t, _)| *t == 1).count() == 10);
        // Closing connections frees their thread's count.
        guards.retain(|(t, _)| *t != 2);
        assert_eq!(balance.open(), vec![10, 10, 0]);
        let (thread, _open) = balance.assign(0);
        assert_eq!(thread, 2, "the emptiest thread gets the next one");
    }

    #[test]
    fn a_thread_keeps_its_connection_on_a_tie() {
        let (balance, _inboxes) = Balance::new(2);
        let a = balance.assign(1);
        assert_eq!(a.0, 1);
        let b = balance.assign(1);
        assert_eq!(b.0, 0);
        let c = balance.assign(0);
        assert_eq!(c.0, 0, "a tie keeps the connection where it was accepted");
        drop((a, b, c));
        assert_eq!(balance.open(), vec![0, 0]);
    }

    #[test]
    fn a_failed_move_is_counted_where_it_is_served() {
        let (balance, inboxes) = Balance::new(2);
        drop(inboxes);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let peer = stream.local_addr().expect("peer");
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .expect("permit");
        let _kept = balance.assign(0);
        let (thread, open) = balance.assign(0);
        assert_eq!(thread, 1);
        let moved = Moved {
            stream,
            peer,
            listener: 0,
            permit,
            open,
        };
        let back = balance.send(thread, moved).expect_err("inbox closed");
        let _open = back.open.move_to(0);
        assert_eq!(balance.open(), vec![2, 0]);
        // A thread that does not take connections is not chosen again.
        let (thread, _third) = balance.assign(0);
        assert_eq!(thread, 0);
    }
}
