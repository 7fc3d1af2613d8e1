//! `herald serve`: wiring of the engine, the watcher thread and the HTTP
//! server; signals, systemd notifications, reload and shutdown.
//!
//! Start-up order: open the state (its lock keeps a second herald out),
//! publish once, bind (or take systemd's sockets), serve, `READY=1`.
//! SIGHUP: `RELOADING=1`, re-read and validate the configuration; a broken
//! one keeps the old one running and says so in `STATUS=`; a good one is
//! applied with a full rescan, then `READY=1`. SIGTERM or SIGINT:
//! `STOPPING=1`, stop accepting, let in-flight requests finish within the
//! grace period, stop the watcher thread (which closes the state), return.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{debug, error, info, warn};

use crate::config::Config;
use crate::engine::{Engine, EngineError, Synced};
use crate::layout::Doc;
use crate::metrics::Metrics;
use crate::on_demand::{self, OnDemand};
use crate::serve::{self, Roles};
use crate::snapshot::Snapshot;
use crate::websub::{self, WebSub};
use crate::{pipeline, report, systemd, watch};

/// How often a failed write to the feeds folder is retried.
const DISK_RETRY: Duration = Duration::from_secs(15);

pub fn run(config: Config) -> anyhow::Result<()> {
    let mut engine = Engine::open(config.clone())?;
    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
    engine.set_cancel(cancel.clone());
    // Large hot bodies live in unnamed files beside the state (sendfile.rs).
    crate::sendfile::keep_in(&config.paths.state);
    engine.drop_outcome_entries();
    engine.log_state_recovery();
    let metrics = Arc::new(Metrics::default());
    let (tx, rx) = std::sync::mpsc::channel();

    // The first publish: every hot document, in memory. The feeds folder
    // is brought up to date afterwards, by the publishing thread, so that
    // a large archive does not delay serving.
    let started = std::time::Instant::now();
    // Armed first: what changes during the first sync arrives as events.
    let early = watch::start_early(&engine, tx.clone());
    let complete = engine.feeds_complete();
    let (initial, documents, rejected) = match engine.sync_full(!complete) {
        Ok(mut synced) => {
            log_synced(&synced);
            // Logged; writing needs only the documents (a large first
            // start would otherwise hold every outcome until written).
            synced.plan = Default::default();
            let documents = if synced.everything {
                // Writing everything renders everything again.
                std::mem::take(&mut synced.documents)
            } else {
                synced.documents.clone()
            };
            (Some(synced), documents, rejected_count(&engine))
        }
        Err(EngineError::Watch { path, source }) => {
            error!(path = %path.display(), error = %source, "cannot read the watch folder; serving what the state holds");
            (None, engine.render_hot()?, 0)
        }
        Err(e) => return Err(e.into()),
    };
    // Served uncompressed at first, as after every publish: the publishing
    // thread compresses first thing (~0.4 s for a large site's hot set), a
    // few documents at a time so that a file dropped meanwhile waits for
    // no more than those.
    let (snapshot, to_compress) =
        Snapshot::default().updated_uncompressed(&documents, &[], pipeline::now().timestamp());
    drop(documents);
    let on_demand = Arc::new(OnDemand::new(on_demand::Settings {
        state: config.paths.state.clone(),
        max_entries: config.feeds.max_entries,
        tombstone_period: config.feeds.tombstone_period,
        cache_bytes: config.feeds.cache_bytes,
    }));
    on_demand.published(engine.site()?);
    metrics.published(
        started.elapsed(),
        true,
        engine.catalog().languages()?,
        rejected,
    );
    info!(
        ms = started.elapsed().as_millis() as u64,
        "published; serving"
    );
    let (snap_tx, snap_rx) = tokio::sync::watch::channel(Arc::new(snapshot));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listeners = listeners(&config).await?;
        let options = Arc::new(serve_options(&config));
        let feeds_state = serve::State::new(
            snap_rx,
            (*options).clone(),
            metrics.clone(),
            Roles {
                feeds: true,
                metrics: config.monitoring.metrics && config.monitoring.listen.is_none(),
                healthz: config.monitoring.healthz && config.monitoring.listen.is_none(),
            },
        )
        .with_on_demand(on_demand.clone());
        let mut bound = Vec::new();
        let mut self_check = None;
        for (role, l) in listeners {
            let addr = l.local_addr().context("listener has no address")?;
            info!(addr = %addr, role, "listening");
            let state = if role == "monitoring" {
                feeds_state.with_roles(Roles {
                    feeds: false,
                    metrics: config.monitoring.metrics,
                    healthz: config.monitoring.healthz,
                })
            } else {
                self_check.get_or_insert(addr);
                feeds_state.clone()
            };
            bound.push((l, state));
        }

        // WebSub: hubs hear of every feed that changed.
        let websub = Arc::new(WebSub::start(
            &config.websub.hubs,
            websub::Settings::default(),
        ));
        metrics.set_websub(websub.counters.clone(), config.websub.hubs.len());
        let base_url = config.site.base_url.clone();

        // The publishing thread.
        let watcher_tx = tx.clone();
        let mut publisher = Publisher {
            snap_tx,
            on_demand,
            websub,
            base_url,
            metrics: metrics.clone(),
            // (When the first sync failed, an incomplete folder is written
            // whole at the next publish.)
            behind: initial.is_none() && !complete,
            recovering: false,
            full_write_since: None,
            to_compress,
        };
        let thread_metrics = metrics.clone();
        let publisher_thread = std::thread::Builder::new()
            .name("herald-watch".into())
            .spawn(move || {
                // Bring the feeds folder up to date with the first publish:
                // its changes at once, everything (a first start, a new
                // configuration) a slice at a time between publishes.
                if let Some(synced) = initial {
                    let t = std::time::Instant::now();
                    let ok = if synced.everything {
                        publisher.write(&mut engine, synced)
                    } else {
                        let written = engine.write_changes(&synced);
                        if let Ok(r) = &written {
                            log_up_to_date(r, t.elapsed());
                        }
                        publisher.outcome(written)
                    };
                    if !ok {
                        publisher.metrics.disk(false);
                    }
                }
                let mut engine = watch::run(engine, early, rx, watcher_tx, thread_metrics, &mut publisher);
                // Changes not written yet are few (the documents the last
                // publishes touched): written now, not left for a start
                // that would then rewrite the whole folder.
                if engine.pending_write() {
                    if let Err(e) = engine.continue_pending_write(Duration::MAX, &|| false) {
                        log_written(&Err(e));
                    }
                }
                if engine.full_write_pending() {
                    info!("stopped writing the feeds folder for shutdown; the next start completes it");
                }
                drop(engine);
                if let Ok(w) = Arc::try_unwrap(publisher.websub) {
                    w.stop();
                }
            })
            .context("cannot start the watcher thread")?;

        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);

        // Reloads.
        let reload_tx = tx.clone();
        let reload_metrics = metrics.clone();
        let source = config.source.clone();
        let running = config.clone();
        tokio::spawn(async move {
            let mut running = running;
            while hup.recv().await.is_some() {
                running = reload(&source, running, &reload_tx, &reload_metrics).await;
            }
        });

        // The watchdog: ping only while both halves make progress.
        if let Some(period) = systemd::watchdog_period() {
            let m = metrics.clone();
            let target = self_check;
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period / 2);
                loop {
                    tick.tick().await;
                    let server_ok = match target {
                        Some(addr) => http_answers(addr).await,
                        None => true,
                    };
                    match (m.health(), server_ok) {
                        (Ok(_), true) => systemd::watchdog(),
                        (Err(why), _) => warn!(reason = %why, "not pinging the watchdog"),
                        (_, false) => {
                            warn!("not pinging the watchdog: the HTTP server does not answer")
                        }
                    }
                }
            });
        }

        // While the feeds folder cannot be written, retry now and then.
        let retry_tx = tx.clone();
        let retry_metrics = metrics.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(DISK_RETRY);
            loop {
                tick.tick().await;
                if retry_metrics.health().is_ok_and(|h| h != "ok")
                    && retry_tx.send(watch::Msg::Retry).is_err()
                {
                    return;
                }
            }
        });

        systemd::ready(&metrics.status_line());
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: shutting down"),
                _ = int.recv() => info!("SIGINT: shutting down"),
                _ = stop_rx.changed() => {},
            }
            systemd::stopping();
        };
        serve::run(bound, options, shutdown).await;
        drop(stop_tx);
        // A write of the whole feeds folder in progress stops early.
        cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = tx.send(watch::Msg::Shutdown);
        let joined = tokio::task::spawn_blocking(move || publisher_thread.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            warn!("the watcher thread did not stop cleanly");
        }
        info!("stopped");
        anyhow::Ok(())
    })
}

/// How long one slice of a feeds-folder write (of everything, or of what
/// publishes changed) renders at most. It ends sooner when a file event
/// comes (a change then waits for one document's rendering, or one batch
/// of four, and the staging of what was rendered), but some steps cannot
/// be cut: listing, one scope's archives, putting a batch in place.
/// Slices run only when the watch folder is quiet (see `watch.rs`).
const WRITE_SLICE: Duration = Duration::from_millis(20);

/// How many of the first publish's hot documents are compressed at a time
/// (~2.5 ms each for a large site, on both cores).
const COMPRESSED_AT_ONCE: usize = 16;

/// The publishing thread's side of publishing: memory first (readers see a
/// change at once), WebSub, then the feeds folder.
struct Publisher {
    snap_tx: tokio::sync::watch::Sender<Arc<Snapshot>>,
    on_demand: Arc<OnDemand>,
    websub: Arc<WebSub>,
    base_url: String,
    metrics: Arc<Metrics>,
    /// The folder is behind (a write failed): the next publish begins a
    /// full write.
    behind: bool,
    /// The full write under way catches up after a failed write.
    recovering: bool,
    /// When the full write under way began.
    full_write_since: Option<std::time::Instant>,
    /// Hot documents of the first publish still served uncompressed: they
    /// are compressed first thing, a few at a time, between publishes.
    to_compress: Vec<String>,
}

impl watch::Publisher for Publisher {
    fn publish(&mut self, engine: &mut Engine, synced: Synced) {
        let started = std::time::Instant::now();
        let mut synced = synced;
        log_synced(&synced);
        if synced.changed() {
            let now = pipeline::now().timestamp();
            // Visible at once, uncompressed; compressed forms follow a few
            // milliseconds later.
            let mut todo = Vec::new();
            self.snap_tx.send_modify(|s| {
                let (next, paths) = s.updated_uncompressed(&synced.documents, &synced.removed, now);
                todo = paths;
                *s = Arc::new(next);
            });
            debug!(ms = started.elapsed().as_millis() as u64, "visible");
            if let Ok(site) = engine.site() {
                self.on_demand.published(site);
            }
            // (The tag feeds it touched, for WebSub and the folder.)
            if let Err(e) = engine.list_affected(&mut synced) {
                warn!(error = %e, "cannot list the documents the change touched");
            }
            self.websub.publish(&changed_feeds(&self.base_url, &synced));
            compress_into(&self.snap_tx, &todo);
        } else if !self.behind {
            return;
        }
        let disk_ok = self.write(engine, synced);
        debug!(
            ms = started.elapsed().as_millis() as u64,
            "published; the feeds folder follows"
        );
        let languages = engine.site().map_or_else(
            |_| Vec::new(),
            |s| {
                s.languages
                    .into_iter()
                    .map(|(l, n)| (l.to_string(), n))
                    .collect()
            },
        );
        self.metrics.published(
            started.elapsed(),
            disk_ok,
            languages,
            rejected_count(engine),
        );
        if self.recovering {
            // Healthy again only once the catch-up write has ended.
            self.metrics.disk_catching_up();
        }
        systemd::status(&self.metrics.status_line());
    }

    fn idle(&mut self, engine: &mut Engine, interrupt: &dyn Fn() -> bool) -> bool {
        if !self.to_compress.is_empty() {
            let rest = self
                .to_compress
                .split_off(self.to_compress.len().min(COMPRESSED_AT_ONCE));
            compress_into(
                &self.snap_tx,
                &std::mem::replace(&mut self.to_compress, rest),
            );
            return true;
        }
        if engine.pending_write() {
            // What the last publishes changed, before the rest of a full
            // write (which is complete only once this is written).
            return match engine.continue_pending_write(WRITE_SLICE, interrupt) {
                Ok(None) => true,
                Ok(Some(r)) => {
                    debug!(
                        written = r.written,
                        unchanged = r.unchanged,
                        removed = r.removed,
                        "changes written to the feeds folder"
                    );
                    engine.full_write_pending()
                }
                Err(e) => {
                    self.outcome(Err(e));
                    self.metrics.disk(false);
                    systemd::status(&self.metrics.status_line());
                    false
                }
            };
        }
        if !engine.full_write_pending() {
            return false;
        }
        match engine.continue_full_write(WRITE_SLICE, interrupt) {
            Ok(None) => true,
            Ok(Some(r)) => {
                let took = self.full_write_since.take().map(|t| t.elapsed());
                log_up_to_date(&r, took.unwrap_or_default());
                let started = std::time::Instant::now();
                match engine.reread_for_publishing() {
                    Ok(()) => debug!(
                        ms = started.elapsed().as_millis() as u64,
                        "what a publish reads is in the state's cache again"
                    ),
                    Err(e) => {
                        warn!(error = %e, "cannot read the newest entries after the full write")
                    }
                }
                if std::mem::take(&mut self.recovering) {
                    info!("the feeds folder is writable again and up to date");
                }
                self.metrics.disk(true);
                systemd::status(&self.metrics.status_line());
                false
            }
            Err(EngineError::Interrupted) => {
                log_written(&Err(EngineError::Interrupted));
                false
            }
            Err(e) => {
                self.outcome(Err(e));
                self.metrics.disk(false);
                systemd::status(&self.metrics.status_line());
                false
            }
        }
    }
}

impl Publisher {
    /// Writes a sync to the feeds folder: its changes, or, when everything
    /// must be written (a first start, a new configuration, a folder left
    /// behind by a failed write), all of it. Either way
    /// [`watch::Publisher::idle`] does the work, a slice at a time while
    /// the watch folder is quiet. Returns whether it could begin.
    fn write(&mut self, engine: &mut Engine, synced: Synced) -> bool {
        if self.behind || synced.everything {
            let began = engine.begin_full_write();
            if began.is_ok() {
                self.recovering |= self.behind;
                self.behind = false;
                self.full_write_since = Some(std::time::Instant::now());
            }
            return self.outcome(began.map(|()| Default::default()));
        }
        let queued = engine.queue_write(synced);
        self.outcome(queued.map(|()| Default::default()))
    }

    /// Whether a write worked; a failure is logged and leaves the folder
    /// behind (the next write is of everything).
    fn outcome(&mut self, written: Result<crate::publish::WriteReport, EngineError>) -> bool {
        log_written(&written);
        let ok = written.is_ok();
        if !ok {
            self.behind = true;
            self.full_write_since = None;
        }
        ok
    }
}

/// SIGHUP: validate the new configuration; apply it or keep the old one.
async fn reload(
    source: &Path,
    running: Config,
    tx: &std::sync::mpsc::Sender<watch::Msg>,
    metrics: &Metrics,
) -> Config {
    systemd::reloading();
    info!(path = %source.display(), "SIGHUP: reloading the configuration");
    let new = match Config::load(source) {
        Ok(c) => c,
        Err(e) => {
            error!("reload refused, still running with the previous configuration: {e}");
            systemd::ready(&format!(
                "{}; last reload FAILED: {e}",
                metrics.status_line()
            ));
            return running;
        }
    };
    for (what, changed) in [
        ("server", new.server != running.server),
        ("paths.state", new.paths.state != running.paths.state),
        ("monitoring", new.monitoring != running.monitoring),
        ("log", new.log != running.log),
    ] {
        if changed {
            warn!(
                section = what,
                "this change takes effect only after a restart (systemctl restart herald)"
            );
        }
    }
    let (reply_tx, reply_rx) = std::sync::mpsc::channel();
    if tx
        .send(watch::Msg::Reload(Box::new(new.clone()), reply_tx))
        .is_err()
    {
        return running;
    }
    // Wait for the rescan with the new configuration before READY=1.
    let _ =
        tokio::task::spawn_blocking(move || reply_rx.recv_timeout(Duration::from_secs(600))).await;
    info!("configuration reloaded");
    systemd::ready(&metrics.status_line());
    new
}

/// The listeners: systemd's sockets when socket-activated, else the
/// configured addresses; plus the monitoring addresses.
async fn listeners(config: &Config) -> anyhow::Result<Vec<(&'static str, TcpListener)>> {
    let mut out = Vec::new();
    let activated =
        systemd::activated_listeners().context("cannot use the sockets passed by systemd")?;
    if activated.is_empty() {
        for l in serve::bind(&config.server.listen).await? {
            out.push(("feeds", l));
        }
    } else {
        info!(
            count = activated.len(),
            "using sockets passed by systemd; server.listen is ignored"
        );
        for (name, l) in activated {
            let role = if name == "monitoring" {
                "monitoring"
            } else {
                "feeds"
            };
            out.push((
                role,
                TcpListener::from_std(l).context("cannot use a passed socket")?,
            ));
        }
    }
    if let Some(addrs) = &config.monitoring.listen {
        for l in serve::bind(addrs).await? {
            out.push(("monitoring", l));
        }
    }
    Ok(out)
}

fn serve_options(config: &Config) -> serve::Options {
    serve::Options {
        max_age: config.server.max_age,
        header_read_timeout: config.server.header_read_timeout,
        send_timeout: config.server.send_timeout,
        max_connections: config.server.max_connections,
        max_header_bytes: config.server.max_header_bytes,
        access_log: config.server.access_log,
        shutdown_grace: config.server.shutdown_grace,
        hubs: config.websub.hubs.clone(),
        base_url: config.site.base_url.clone(),
    }
}

/// Whether our own HTTP server answers a request within two seconds.
async fn http_answers(addr: SocketAddr) -> bool {
    let addr = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([127, 0, 0, 1], a.port()))
        }
        SocketAddr::V6(a) if a.ip().is_unspecified() => {
            SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], a.port()))
        }
        a => a,
    };
    let attempt = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"HEAD /healthz HTTP/1.1\r\nHost: watchdog\r\nUser-Agent: herald-watchdog\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).await.ok()?;
        buf.starts_with(b"HTTP/1.1 ").then_some(())
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Some(()))
    )
}

/// The absolute URLs of the feeds (subscription documents) a sync changed:
/// the topics to announce to WebSub hubs.
fn changed_feeds(base_url: &str, synced: &Synced) -> Vec<String> {
    let is_feed =
        |p: &str| (p.ends_with(".xml") || p.ends_with(".json")) && !p.contains("archive/");
    let mut paths: Vec<String> = synced
        .documents
        .iter()
        .map(|d| d.path.clone())
        .chain(synced.affected.iter().map(Doc::path))
        .filter(|p| is_feed(p))
        .collect();
    paths.sort();
    paths.dedup();
    paths
        .into_iter()
        .map(|p| format!("{base_url}{}", crate::render::encode_path(&p)))
        .collect()
}

/// Files rejected as they are now.
fn rejected_count(engine: &Engine) -> usize {
    engine.catalog().all_rejected().map_or(0, |r| r.len())
}

fn log_up_to_date(r: &crate::publish::WriteReport, took: Duration) {
    info!(
        written = r.written,
        unchanged = r.unchanged,
        removed = r.removed,
        ms = took.as_millis() as u64,
        "feeds folder up to date"
    );
}

fn log_written(written: &Result<crate::publish::WriteReport, EngineError>) {
    if let Err(EngineError::Interrupted) = written {
        info!("stopped writing the feeds folder for shutdown; the next start completes it");
    } else if let Err(e) = written {
        error!(error = %e, "cannot write the feeds folder; serving from memory, will retry on the next change");
    }
}

fn log_synced(synced: &Synced) {
    report::log_outcomes(&synced.plan.outcomes);
    for (path, error) in &synced.scan_errors {
        warn!(path = %path, "cannot list: {error}");
    }
    let changed = synced.plan.footprints.len();
    if changed > 0 {
        info!(changed, removed = synced.plan.deleted.len(), "published");
    }
}

/// Puts the compressed forms of `paths` into the served snapshot (where the
/// bytes are still the ones compressed).
fn compress_into(snap_tx: &tokio::sync::watch::Sender<Arc<Snapshot>>, paths: &[String]) {
    if paths.is_empty() {
        return;
    }
    let current = snap_tx.borrow().clone();
    let done = current.compress(paths);
    snap_tx.send_modify(|s| *s = Arc::new(s.compressed(&done)));
}
