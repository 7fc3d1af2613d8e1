//! `herald serve`: wiring of the engine, the watcher thread and the HTTP
//! server; signals and shutdown.
//!
//! Start-up order: open the state (its lock keeps a second herald out),
//! start watching, publish once, bind, serve. SIGTERM or SIGINT: stop
//! accepting, let in-flight requests finish within the grace period, stop
//! the watcher thread (which closes the state), return.

use std::sync::Arc;

use anyhow::Context as _;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::engine::{Engine, EngineError, Synced};
use crate::snapshot::Snapshot;
use crate::{pipeline, report, serve, watch};

pub fn run(config: Config) -> anyhow::Result<()> {
    let mut engine = Engine::open(config.clone())?;
    if let Some(aside) = engine.recovered_from() {
        warn!(moved_to = %aside.display(), "state database was damaged; moved aside and rebuilt from the watch folder (dates of files without a front-matter date are now their modification times)");
    }
    let (tx, rx) = std::sync::mpsc::channel();

    // The first publish: everything, pages included.
    let documents = match engine.sync_full(true) {
        Ok(synced) => {
            log_synced(&synced);
            synced.documents
        }
        Err(EngineError::Watch { path, source }) => {
            error!(path = %path.display(), error = %source, "cannot read the watch folder; serving what the state holds");
            engine.render_all()?
        }
        Err(e) => return Err(e.into()),
    };
    let snapshot = Snapshot::default().updated(&documents, &[], pipeline::now().timestamp());
    let entries = engine
        .catalog()
        .languages()?
        .iter()
        .map(|(_, n)| n)
        .sum::<usize>();
    let (snap_tx, snap_rx) = tokio::sync::watch::channel(Arc::new(snapshot));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listeners = serve::bind(&config.server.listen).await?;
        for l in &listeners {
            if let Ok(addr) = l.local_addr() {
                info!(addr = %addr, entries, "listening");
            }
        }
        let watcher_tx = tx.clone();
        let publisher = std::thread::Builder::new()
            .name("herald-watch".into())
            .spawn(move || {
                watch::run(engine, rx, watcher_tx, move |_engine, synced| {
                    log_synced(&synced);
                    if synced.documents.is_empty() && synced.removed.is_empty() {
                        return;
                    }
                    let now = pipeline::now().timestamp();
                    snap_tx.send_modify(|s| {
                        *s = Arc::new(s.updated(&synced.documents, &synced.removed, now))
                    });
                })
            })
            .context("cannot start the watcher thread")?;

        let state = serve::State::new(
            snap_rx,
            serve::Options {
                max_age: config.server.max_age,
                header_read_timeout: config.server.header_read_timeout,
                max_connections: config.server.max_connections,
                max_header_bytes: config.server.max_header_bytes,
                access_log: config.server.access_log,
                shutdown_grace: config.server.shutdown_grace,
            },
        );
        let mut term =
            signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => info!("SIGTERM: shutting down"),
                _ = int.recv() => info!("SIGINT: shutting down"),
            }
        };
        serve::run(listeners, state, shutdown).await;
        let _ = tx.send(watch::Msg::Shutdown);
        let joined = tokio::task::spawn_blocking(move || publisher.join()).await;
        if !matches!(joined, Ok(Ok(()))) {
            warn!("the watcher thread did not stop cleanly");
        }
        info!("stopped");
        anyhow::Ok(())
    })
}

fn log_synced(synced: &Synced) {
    report::log_outcomes(&synced.plan.outcomes);
    for (path, error) in &synced.scan_errors {
        warn!(path = %path, "cannot list: {error}");
    }
    if let Err(e) = &synced.written {
        error!(error = %e, "cannot write the feeds folder; serving from memory, will retry on the next change");
    }
    let changed = synced.plan.pages.len() + synced.plan.deleted.len();
    if changed > 0 {
        info!(changed, removed = synced.plan.deleted.len(), "published");
    }
}
