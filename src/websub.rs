//! WebSub (W3C Recommendation), the publisher's side: every change of a
//! feed is announced to each configured hub, which then fetches the feed
//! and pushes it to subscribers.
//!
//! The ping is `POST` `application/x-www-form-urlencoded` with
//! `hub.mode=publish` and the feed's URL both as `hub.url` (PubSubHubbub
//! 0.4, what Google's and most hubs read) and `hub.topic` (the WebSub
//! name, read by newer hubs); the Recommendation leaves the format to the
//! hub, and these two cover the hubs in use.
//!
//! Never in the way of publishing: [`WebSub::publish`] only adds topics to
//! each hub's pending set and returns. One worker thread per hub sends
//! them; a topic changed again while it is pending is announced once
//! (coalesced); failures are retried with exponential back-off (1 s, 2 s,
//! 4 s ... 5 min) and given up after [`Settings::attempts`] tries with a
//! warning. One dead hub never delays another. At most [`MAX_PENDING`]
//! topics wait per hub (the oldest are dropped, counted as given up).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

/// Topics waiting per hub, at most.
pub const MAX_PENDING: usize = 10_000;

/// Timing of pings and retries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first retry's delay; doubled each time, capped at `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Tries per change before giving up.
    pub attempts: u32,
    /// Per request.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            attempts: 10,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Counters for `/metrics`, summed over hubs.
#[derive(Debug, Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub given_up: AtomicU64,
    pub pending: AtomicU64,
}

/// One topic waiting for a hub: when it may be sent, and how many tries so far.
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    tries: u32,
}

#[derive(Default)]
struct Queue {
    pending: BTreeMap<String, Due>,
    stop: bool,
}

struct Hub {
    url: String,
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The publisher: one worker thread per hub.
pub struct WebSub {
    hubs: Vec<Arc<Hub>>,
    workers: Vec<std::thread::JoinHandle<()>>,
    pub counters: Arc<Counters>,
}

impl WebSub {
    /// Starts a worker per hub. No hubs: nothing runs, `publish` is free.
    pub fn start(hubs: &[String], settings: Settings) -> WebSub {
        let counters = Arc::new(Counters::default());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            .user_agent(concat!(
                "herald/",
                env!("CARGO_PKG_VERSION"),
                " (WebSub publisher)"
            ))
            .build()
            .into();
        let mut out = WebSub {
            hubs: Vec::new(),
            workers: Vec::new(),
            counters: counters.clone(),
        };
        for url in hubs {
            let hub = Arc::new(Hub {
                url: url.clone(),
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
            });
            let (h, a, s, c) = (
                hub.clone(),
                agent.clone(),
                settings.clone(),
                counters.clone(),
            );
            match std::thread::Builder::new()
                .name("herald-websub".into())
                .spawn(move || work(&h, &a, &s, &c))
            {
                Ok(w) => {
                    out.hubs.push(hub);
                    out.workers.push(w);
                }
                Err(e) => warn!(hub = %url, error = %e, "cannot start the WebSub worker"),
            }
        }
        out
    }

    /// Announces that these feeds (absolute URLs) changed. Returns at once.
    pub fn publish(&self, topics: &[String]) {
        if topics.is_empty() {
            return;
        }
        let now = Instant::now();
        for hub in &self.hubs {
            let mut q = hub.queue.lock().unwrap_or_else(|e| e.into_inner());
            for t in topics {
                // Already waiting (maybe retrying): one ping will do, and
                // it is sent as soon as possible again.
                let before = q.pending.len();
                q.pending.insert(t.clone(), Due { at: now, tries: 0 });
                if q.pending.len() > before {
                    self.counters.pending.fetch_add(1, Relaxed);
                }
            }
            while q.pending.len() > MAX_PENDING {
                if let Some((oldest, _)) = q
                    .pending
                    .iter()
                    .min_by_key(|(_, d)| d.at)
                    .map(|(k, d)| (k.clone(), *d))
                {
                    q.pending.remove(&oldest);
                    self.counters.pending.fetch_sub(1, Relaxed);
                    self.counters.given_up.fetch_add(1, Relaxed);
                }
            }
            hub.wake.notify_one();
        }
    }

    /// Prometheus lines for `/metrics`.
    pub fn write_metrics(&self, out: &mut String) {
        write_metrics(&self.counters, self.hubs.len(), out);
    }

    /// Stops the workers; pings still pending are dropped.
    pub fn stop(mut self) {
        for hub in &self.hubs {
            hub.queue.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
            hub.wake.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Prometheus lines for a set of counters.
pub fn write_metrics(c: &Counters, hubs: usize, out: &mut String) {
    use std::fmt::Write as _;
    for (name, help, kind, value) in [
        (
            "herald_websub_hubs",
            "WebSub hubs configured.",
            "gauge",
            hubs as u64,
        ),
        (
            "herald_websub_pings_total",
            "Publish pings a hub accepted.",
            "counter",
            c.sent.load(Relaxed),
        ),
        (
            "herald_websub_failed_attempts_total",
            "Publish pings that failed (retried later).",
            "counter",
            c.failed_attempts.load(Relaxed),
        ),
        (
            "herald_websub_given_up_total",
            "Changes never announced to a hub (too many failures).",
            "counter",
            c.given_up.load(Relaxed),
        ),
        (
            "herald_websub_pending",
            "Changes waiting to be announced.",
            "gauge",
            c.pending.load(Relaxed),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

fn work(hub: &Hub, agent: &ureq::Agent, settings: &Settings, counters: &Counters) {
    loop {
        // The topic due first, once it is due.
        let (topic, due) = {
            let mut q = hub.queue.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                if q.stop {
                    if !q.pending.is_empty() {
                        debug!(hub = %hub.url, dropped = q.pending.len(), "stopping with pings pending");
                    }
                    return;
                }
                let next = q
                    .pending
                    .iter()
                    .min_by_key(|(_, d)| d.at)
                    .map(|(t, d)| (t.clone(), *d));
                match next {
                    None => q = hub.wake.wait(q).unwrap_or_else(|e| e.into_inner()),
                    Some((t, d)) => {
                        let now = Instant::now();
                        if d.at <= now {
                            q.pending.remove(&t);
                            break (t, d);
                        }
                        q = hub
                            .wake
                            .wait_timeout(q, d.at - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                    }
                }
            }
        };
        counters.pending.fetch_sub(1, Relaxed);
        let result = agent
            .post(&hub.url)
            .send_form([
                ("hub.mode", "publish"),
                ("hub.url", topic.as_str()),
                ("hub.topic", topic.as_str()),
            ])
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status()))
                }
            });
        match result {
            Ok(()) => {
                counters.sent.fetch_add(1, Relaxed);
                debug!(hub = %hub.url, topic = %topic, "WebSub ping accepted");
            }
            Err(error) => {
                counters.failed_attempts.fetch_add(1, Relaxed);
                let tries = due.tries + 1;
                if tries >= settings.attempts {
                    counters.given_up.fetch_add(1, Relaxed);
                    warn!(hub = %hub.url, topic = %topic, tries, error = %error, "WebSub hub keeps failing; change not announced");
                    continue;
                }
                let delay = settings
                    .backoff
                    .saturating_mul(1 << (tries - 1).min(20))
                    .min(settings.max_backoff);
                // Up to a quarter more, so that many feeds do not retry in step.
                let jitter = delay.mul_f64(f64::from(topic.len() as u32 % 25) / 100.0);
                debug!(hub = %hub.url, topic = %topic, tries, error = %error, "WebSub ping failed; retrying");
                let mut q = hub.queue.lock().unwrap_or_else(|e| e.into_inner());
                // A newer change (queued meanwhile) is sent anyway.
                if let std::collections::btree_map::Entry::Vacant(slot) = q.pending.entry(topic) {
                    slot.insert(Due {
                        at: Instant::now() + delay + jitter,
                        tries,
                    });
                    counters.pending.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    /// A hub on 127.0.0.1 answering `statuses` in turn (then 204), keeping
    /// every form body it received.
    fn hub(statuses: Vec<u16>, delay: Duration) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hub", l.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let seen = bodies.clone();
        std::thread::spawn(move || {
            let mut statuses = statuses.into_iter();
            for conn in l.incoming() {
                let Ok(mut s) = conn else { continue };
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                std::thread::sleep(delay);
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
                let status = statuses.next().unwrap_or(204);
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        (url, bodies)
    }

    fn fast() -> Settings {
        Settings {
            backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            attempts: 4,
            timeout: Duration::from_secs(2),
        }
    }

    fn wait(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn pings_with_retries_and_metrics() {
        let (url, bodies) = hub(vec![500, 503], Duration::ZERO);
        let w = WebSub::start(std::slice::from_ref(&url), fast());
        w.publish(&["https://news.example.org/uk/atom.xml?x=1&y".to_string()]);
        assert!(wait(|| w.counters.sent.load(Relaxed) == 1));
        let got = bodies.lock().unwrap().clone();
        assert_eq!(got.len(), 3, "two failures, then accepted");
        assert_eq!(
            got[2],
            "hub.mode=publish&hub.url=https%3A%2F%2Fnews.example.org%2Fuk%2Fatom.xml%3Fx%3D1%26y\
             &hub.topic=https%3A%2F%2Fnews.example.org%2Fuk%2Fatom.xml%3Fx%3D1%26y"
        );
        assert_eq!(w.counters.failed_attempts.load(Relaxed), 2);
        assert_eq!(w.counters.pending.load(Relaxed), 0);
        let mut m = String::new();
        w.write_metrics(&mut m);
        assert!(m.contains("herald_websub_pings_total 1"), "{m}");
        w.stop();
    }

    #[test]
    fn a_dead_hub_does_not_delay_a_live_one_and_is_given_up() {
        let dead = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", l.local_addr().unwrap())
        }; // closed again: connection refused
        let (live, bodies) = hub(vec![], Duration::ZERO);
        let w = WebSub::start(&[dead, live], fast());
        let started = Instant::now();
        w.publish(&["https://x.example/atom.xml".to_string()]);
        assert!(
            started.elapsed() < Duration::from_millis(50),
            "publish never waits"
        );
        assert!(wait(|| bodies.lock().unwrap().len() == 1));
        assert!(wait(|| w.counters.given_up.load(Relaxed) == 1));
        assert_eq!(w.counters.sent.load(Relaxed), 1);
        w.stop();
    }

    #[test]
    fn changes_while_pending_are_coalesced() {
        let (url, bodies) = hub(vec![], Duration::from_millis(150));
        let w = WebSub::start(std::slice::from_ref(&url), fast());
        let topic = "https://x.example/atom.xml".to_string();
        for _ in 0..50 {
            w.publish(std::slice::from_ref(&topic));
            std::thread::sleep(Duration::from_millis(5));
        }
        // The last change is always announced after the last publish call.
        assert!(wait(
            || w.counters.pending.load(Relaxed) == 0 && w.counters.sent.load(Relaxed) >= 2
        ));
        std::thread::sleep(Duration::from_millis(300));
        let n = bodies.lock().unwrap().len();
        assert!(n <= 4, "50 changes coalesced into {n} pings");
        w.stop();
    }
}
