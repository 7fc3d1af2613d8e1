//! Counters and gauges for `/metrics` (Prometheus text format 0.0.4) and the
//! health verdict behind `/healthz` and the systemd watchdog.
//!
//! Lock-free on the request path: one atomic add per request.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Request routes, for the `route` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Feed,
    Page,
    Index,
    Health,
    Metrics,
    Other,
}

const ROUTES: [(Route, &str); 6] = [
    (Route::Feed, "feed"),
    (Route::Page, "page"),
    (Route::Index, "index"),
    (Route::Health, "healthz"),
    (Route::Metrics, "metrics"),
    (Route::Other, "other"),
];
const STATUSES: [u16; 8] = [200, 304, 404, 405, 431, 500, 503, 0];

/// How long the publishing thread may go without a sign of life before the
/// pipeline counts as stuck.
pub const STALL_AFTER: Duration = Duration::from_secs(60);

/// Request counters of one group of serving threads, on cache lines of
/// their own: serving threads counting into one shared counter made its
/// cache line bounce between cores on every request.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    requests: [[AtomicU64; STATUSES.len()]; ROUTES.len()],
    bytes_served: AtomicU64,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            bytes_served: AtomicU64::new(0),
        }
    }
}

const SHARDS: usize = 16;

/// This thread's shard: threads take shards in turn.
fn shard_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

#[derive(Debug)]
pub struct Metrics {
    shards: [Shard; SHARDS],
    publishes: AtomicU64,
    publish_micros: AtomicU64,
    publish_write_failures: AtomicU64,
    last_publish: AtomicI64,
    rejected_files: AtomicU64,
    disk_ok: AtomicBool,
    /// Unix milliseconds of the publishing thread's last sign of life.
    heartbeat: AtomicI64,
    languages: Mutex<Vec<(String, usize)>>,
    started: AtomicI64,
    /// WebSub counters and the number of hubs, once the publisher runs.
    websub: std::sync::OnceLock<(std::sync::Arc<crate::websub::Counters>, usize)>,
    /// Open connections per serving thread, once the server runs.
    connections: std::sync::OnceLock<std::sync::Arc<crate::serve::Balance>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            shards: std::array::from_fn(|_| Shard::default()),
            publishes: AtomicU64::new(0),
            publish_micros: AtomicU64::new(0),
            publish_write_failures: AtomicU64::new(0),
            last_publish: AtomicI64::new(0),
            rejected_files: AtomicU64::new(0),
            disk_ok: AtomicBool::new(true),
            heartbeat: AtomicI64::new(now_ms()),
            languages: Mutex::new(Vec::new()),
            started: AtomicI64::new(now_ms() / 1000),
            websub: std::sync::OnceLock::new(),
            connections: std::sync::OnceLock::new(),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Metrics {
    pub fn request(&self, route: Route, status: u16, bytes: u64) {
        let r = ROUTES
            .iter()
            .position(|(x, _)| *x == route)
            .unwrap_or(ROUTES.len() - 1);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len() - 1);
        let shard = &self.shards[shard_index()];
        shard.requests[r][s].fetch_add(1, Relaxed);
        shard.bytes_served.fetch_add(bytes, Relaxed);
    }

    /// The publishing thread is alive.
    pub fn beat(&self) {
        self.heartbeat.store(now_ms(), Relaxed);
    }

    /// After a publish: its duration, whether the disk write worked, and the
    /// catalog's languages.
    pub fn published(
        &self,
        took: Duration,
        disk_ok: bool,
        languages: Vec<(String, usize)>,
        rejected: usize,
    ) {
        self.publishes.fetch_add(1, Relaxed);
        self.publish_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
        if !disk_ok {
            self.publish_write_failures.fetch_add(1, Relaxed);
        }
        self.disk_ok.store(disk_ok, Relaxed);
        self.last_publish.store(now_ms() / 1000, Relaxed);
        self.rejected_files.store(rejected as u64, Relaxed);
        *self.languages.lock().unwrap_or_else(|e| e.into_inner()) = languages;
        self.beat();
    }

    /// Shows the WebSub publisher's counters in `/metrics`.
    pub fn set_websub(&self, counters: std::sync::Arc<crate::websub::Counters>, hubs: usize) {
        let _ = self.websub.set((counters, hubs));
    }

    /// Shows the serving threads' open connections in `/metrics`.
    pub fn set_connections(&self, balance: std::sync::Arc<crate::serve::Balance>) {
        let _ = self.connections.set(balance);
    }

    /// Whether the last write to the feeds folder worked.
    pub fn disk(&self, ok: bool) {
        if !ok {
            self.publish_write_failures.fetch_add(1, Relaxed);
        }
        self.disk_ok.store(ok, Relaxed);
    }

    /// The feeds folder is being rewritten after failed writes: still
    /// degraded until that ends, with no new failure to count.
    pub fn disk_catching_up(&self) {
        self.disk_ok.store(false, Relaxed);
    }

    /// `Ok(note)` when healthy (note says what is degraded), `Err(why)` when
    /// the publishing pipeline is stuck.
    pub fn health(&self) -> Result<&'static str, String> {
        let silent = now_ms() - self.heartbeat.load(Relaxed);
        if silent > STALL_AFTER.as_millis() as i64 {
            return Err(format!(
                "publishing pipeline stalled: no progress for {} s",
                silent / 1000
            ));
        }
        Ok(if self.disk_ok.load(Relaxed) {
            "ok"
        } else {
            "degraded: cannot write the feeds folder; serving from memory"
        })
    }

    /// One line for systemd's `STATUS=`.
    pub fn status_line(&self) -> String {
        let langs = self
            .languages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let entries: usize = langs.iter().map(|(_, n)| n).sum();
        let last = self.last_publish.load(Relaxed);
        let when = chrono::DateTime::from_timestamp(last, 0).map_or_else(String::new, |t| {
            t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
        });
        let disk = if self.disk_ok.load(Relaxed) {
            ""
        } else {
            "; feeds folder NOT writable"
        };
        format!(
            "serving {entries} announcements in {} languages; last publish {when}{disk}",
            langs.len()
        )
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut o = String::with_capacity(4096);
        let _ = writeln!(
            o,
            "# HELP herald_requests_total HTTP requests answered, by route and status."
        );
        let _ = writeln!(o, "# TYPE herald_requests_total counter");
        for (ri, (_, route)) in ROUTES.iter().enumerate() {
            for (si, status) in STATUSES.iter().enumerate() {
                let n: u64 = self
                    .shards
                    .iter()
                    .map(|sh| sh.requests[ri][si].load(Relaxed))
                    .sum();
                if n > 0 {
                    let status = if *status == 0 {
                        "other".to_string()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        o,
                        "herald_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                    );
                }
            }
        }
        let gauge = |o: &mut String, name: &str, help: &str, kind: &str, v: String| {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        };
        gauge(
            &mut o,
            "herald_bytes_served_total",
            "Response body bytes sent.",
            "counter",
            self.shards
                .iter()
                .map(|sh| sh.bytes_served.load(Relaxed))
                .sum::<u64>()
                .to_string(),
        );
        gauge(
            &mut o,
            "herald_bytes_sendfile_total",
            "Response body bytes handed to sockets with sendfile (not copied).",
            "counter",
            crate::sendfile::bytes_sent().to_string(),
        );
        gauge(
            &mut o,
            "herald_http_connections_to_hyper_total",
            "Connections handed to hyper at a request herald's own HTTP/1.1 loop does not take (a body, another method, HTTP/1.0, a malformed or oversized head).",
            "counter",
            crate::serve::connections_handed_over().to_string(),
        );
        if let Some(balance) = self.connections.get() {
            let _ = writeln!(
                o,
                "# HELP herald_http_connections_open Open HTTP connections, by serving thread.\n# TYPE herald_http_connections_open gauge"
            );
            for (thread, open) in balance.open().iter().enumerate() {
                let _ = writeln!(
                    o,
                    "herald_http_connections_open{{thread=\"{thread}\"}} {open}"
                );
            }
        }
        gauge(
            &mut o,
            "herald_publishes_total",
            "Publishes (syncs that changed or checked the feeds).",
            "counter",
            self.publishes.load(Relaxed).to_string(),
        );
        gauge(
            &mut o,
            "herald_publish_duration_seconds_total",
            "Time spent publishing, summed.",
            "counter",
            format!("{:.6}", self.publish_micros.load(Relaxed) as f64 / 1e6),
        );
        gauge(
            &mut o,
            "herald_publish_write_failures_total",
            "Publishes whose write to the feeds folder failed.",
            "counter",
            self.publish_write_failures.load(Relaxed).to_string(),
        );
        gauge(
            &mut o,
            "herald_feeds_folder_writable",
            "1 when the last write to the feeds folder worked.",
            "gauge",
            u8::from(self.disk_ok.load(Relaxed)).to_string(),
        );
        gauge(
            &mut o,
            "herald_last_publish_timestamp_seconds",
            "Unix time of the last publish.",
            "gauge",
            self.last_publish.load(Relaxed).to_string(),
        );
        gauge(
            &mut o,
            "herald_rejected_files",
            "Files in the watch folder that are currently rejected.",
            "gauge",
            self.rejected_files.load(Relaxed).to_string(),
        );
        gauge(
            &mut o,
            "herald_start_timestamp_seconds",
            "Unix time the daemon started.",
            "gauge",
            self.started.load(Relaxed).to_string(),
        );
        let _ = writeln!(
            o,
            "# HELP herald_announcements Published announcements, by primary language."
        );
        let _ = writeln!(o, "# TYPE herald_announcements gauge");
        for (lang, n) in self
            .languages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(o, "herald_announcements{{lang=\"{lang}\"}} {n}");
        }
        if let Some((counters, hubs)) = self.websub.get() {
            crate::websub::write_metrics(counters, *hubs, &mut o);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request(Route::Feed, 200, 100);
        m.request(Route::Feed, 304, 0);
        m.request(Route::Other, 418, 0);
        m.published(
            Duration::from_millis(5),
            true,
            vec![("uk".into(), 3), ("pl".into(), 1)],
            2,
        );
        let text = m.render();
        assert!(text.contains("herald_requests_total{route=\"feed\",status=\"200\"} 1"));
        assert!(text.contains("herald_requests_total{route=\"other\",status=\"other\"} 1"));
        assert!(text.contains("herald_announcements{lang=\"uk\"} 3"));
        assert!(text.contains("herald_rejected_files 2"));
        assert!(text.contains("herald_bytes_served_total 100"));
        assert_eq!(m.health(), Ok("ok"));
        assert!(m
            .status_line()
            .starts_with("serving 4 announcements in 2 languages"));
    }

    #[test]
    fn stalled_pipeline_is_unhealthy() {
        let m = Metrics::default();
        m.heartbeat.store(now_ms() - 120_000, Relaxed);
        assert!(m.health().is_err());
        m.published(Duration::ZERO, false, vec![], 0);
        assert!(m.health().unwrap().starts_with("degraded"));
    }
}
