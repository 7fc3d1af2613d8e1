//! HTTP: answers from the published snapshot, never from the disk.
//!
//! The only module that speaks HTTP. A URL is decoded, checked and looked up
//! in the in-memory [`Snapshot`]; there is no path from a URL to the file
//! system. Conditional requests (RFC 9110 `If-None-Match`,
//! `If-Modified-Since`), pre-compressed gzip/brotli chosen by
//! `Accept-Encoding` q-values, `HEAD`, limits on header size, header read
//! time and concurrent connections, graceful shutdown.
//!
//! Two ways in, one way to answer: a connection starts in [`http1`], a
//! small loop that parses plain `GET` and `HEAD` requests with `httparse`
//! and writes the responses itself (what nearly every feed reader sends,
//! for a microsecond less CPU each than through hyper); the first request
//! it does not take (a body, another method, HTTP/1.0, a malformed or
//! oversized head, ...) hands the connection to hyper. Both call [`answer`],
//! so the status, headers and body do not depend on the way in.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{info, warn};

use crate::metrics::{Metrics, Route};
use crate::on_demand::OnDemand;
use crate::snapshot::{Resource, Snapshot};

mod balance;
mod http1;

pub use balance::Balance;

pub use http1::connections_handed_over;

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_age: Duration,
    pub header_read_timeout: Duration,
    /// A client that takes no response bytes for this long is cut off.
    pub send_timeout: Duration,
    pub max_connections: usize,
    pub max_header_bytes: usize,
    pub access_log: bool,
    pub shutdown_grace: Duration,
    /// WebSub hubs, announced in a `Link` header on every feed (with the
    /// feed's own URL as `rel="self"`, built on `base_url`).
    pub hubs: Vec<String>,
    pub base_url: String,
}

/// What one listener answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    /// Feeds and pages from the snapshot.
    pub feeds: bool,
    pub metrics: bool,
    pub healthz: bool,
}

/// What the server reads on every request.
#[derive(Clone)]
pub struct State {
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Documents that are not kept ready (pages, archives, tag feeds).
    pub on_demand: Option<Arc<OnDemand>>,
    pub options: Arc<Options>,
    pub metrics: Arc<Metrics>,
    pub roles: Roles,
    cache_control: HeaderValue,
}

impl State {
    pub fn new(
        snapshot: watch::Receiver<Arc<Snapshot>>,
        options: Options,
        metrics: Arc<Metrics>,
        roles: Roles,
    ) -> State {
        let cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", options.max_age.as_secs()))
                .unwrap_or(HeaderValue::from_static("public, max-age=60"));
        State {
            snapshot,
            on_demand: None,
            options: Arc::new(options),
            metrics,
            roles,
            cache_control,
        }
    }

    /// Renders documents missing from the snapshot with `on_demand`.
    pub fn with_on_demand(mut self, on_demand: Arc<OnDemand>) -> State {
        self.on_demand = Some(on_demand);
        self
    }

    /// The same server with other roles (a separate monitoring listener).
    pub fn with_roles(&self, roles: Roles) -> State {
        State {
            roles,
            ..self.clone()
        }
    }
}

/// Serves on `listeners` (each with its own state and roles) until
/// `shutdown` resolves, then lets in-flight requests finish for the grace
/// period.
///
/// Like nginx's worker processes: one thread per core, each with its own
/// single-threaded runtime accepting on every listener, and a connection
/// stays on the thread that serves it. (A work-stealing runtime spent more
/// time waking its workers than answering small requests.) Connections are
/// spread evenly over the threads as they are accepted ([`balance`]).
pub async fn run(
    listeners: Vec<(TcpListener, State)>,
    options: Arc<Options>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shared = Vec::new();
    for (listener, state) in listeners {
        match listener.into_std() {
            Ok(l) => shared.push((l, state)),
            Err(e) => warn!(error = %e, "cannot hand a listener to the serving threads"),
        }
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(16));
    let (balance, inboxes) = Balance::new(threads);
    if let Some((_, state)) = shared.first() {
        state.metrics.set_connections(balance.clone());
    }
    let mut finished = Vec::new();
    for (n, inbox) in inboxes.into_iter().enumerate() {
        let mine: Vec<(Option<std::net::TcpListener>, State)> = shared
            .iter()
            .map(|(l, state)| (l.try_clone().ok(), state.clone()))
            .collect();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = Thread {
            index: n,
            balance: balance.clone(),
            permits: permits.clone(),
            options: options.clone(),
        };
        let stop = stop_rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("herald-http-{n}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    // Out of work: give the core to whatever else is ready
                    // on it (a client, another server process) before going
                    // to sleep, instead of sleeping at once and being woken
                    // by that client's next request. With the client on the
                    // same cores, the second way had each serving thread
                    // sleep and wake ~3,000 times a second, moved between
                    // cores by the scheduler at its wake-ups: a wide latency
                    // tail (p99 7-8 ms at full speed on 2 cores, against
                    // 1-2 ms with the yield, at no more CPU per request; see
                    // README, Performance). Idle, or alone on its core, the
                    // yield returns at once.
                    .on_thread_park(std::thread::yield_now)
                    .build()
                {
                    Ok(runtime) => runtime.block_on(serve_thread(thread, mine, inbox, stop)),
                    Err(e) => warn!(error = %e, "cannot start a serving thread's runtime"),
                }
                drop(done_tx);
            });
        match spawned {
            Ok(_) => finished.push(done_rx),
            Err(e) => warn!(error = %e, "cannot start a serving thread"),
        }
    }
    drop(shared);
    drop(balance);
    shutdown.await;
    let _ = stop_tx.send(true);
    for done in finished {
        // Resolves (with an error) when the thread drops its sender.
        let _ = done.await;
    }
}

/// What a serving thread shares with the others.
struct Thread {
    index: usize,
    balance: Arc<Balance>,
    permits: Arc<Semaphore>,
    options: Arc<Options>,
}

/// What a connection task needs from its thread.
#[derive(Clone)]
struct Local {
    graceful: Arc<hyper_util::server::graceful::GracefulShutdown>,
    stopping: Arc<http1::Stopping>,
}

/// One serving thread: accept loops for every listener, connections moved
/// here by other threads, connections as tasks on this thread, graceful
/// shutdown when `stop` changes. `listeners` keeps every listener's place
/// (`None` when this thread could not get a handle on it), since moved
/// connections name their listener by index.
async fn serve_thread(
    thread: Thread,
    listeners: Vec<(Option<std::net::TcpListener>, State)>,
    mut inbox: tokio::sync::mpsc::UnboundedReceiver<balance::Moved>,
    mut stop: watch::Receiver<bool>,
) {
    let thread = Arc::new(thread);
    let local = Local {
        graceful: Arc::new(hyper_util::server::graceful::GracefulShutdown::new()),
        stopping: Arc::new(http1::Stopping::default()),
    };
    // One per thread: requests clone this thread's Arc, not shared state.
    let states: Vec<Arc<State>> = listeners
        .iter()
        .map(|(_, state)| Arc::new(state.clone()))
        .collect();
    let mut accept_loops = Vec::new();
    for (index, (listener, _)) in listeners.into_iter().enumerate() {
        let Some(listener) = listener else {
            warn!("cannot accept on a listener on one serving thread");
            continue;
        };
        let listener = match listener
            .set_nonblocking(true)
            .and_then(|()| TcpListener::from_std(listener))
        {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot accept on a listener");
                continue;
            }
        };
        let (thread, local, state) = (thread.clone(), local.clone(), states[index].clone());
        let mut stop = stop.clone();
        accept_loops.push(tokio::spawn(async move {
            loop {
                // Wait for a free slot first: past the cap, new connections
                // wait in the kernel's backlog instead of being accepted.
                let permit = tokio::select! {
                    p = thread.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                    _ = stop.changed() => return,
                };
                let (stream, peer) = tokio::select! {
                    r = listener.accept() => match r {
                        Ok(c) => c,
                        Err(e) => {
                            // EMFILE and friends: log, back off, keep serving.
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    _ = stop.changed() => return,
                };
                let _ = stream.set_nodelay(true);
                let (to, open) = thread.balance.assign(thread.index);
                if to == thread.index {
                    connection(stream, peer, state.clone(), permit, open, &local);
                    continue;
                }
                let stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        warn!(error = %e, "cannot move a connection to another thread");
                        continue;
                    }
                };
                let moved = balance::Moved {
                    stream,
                    peer,
                    listener: index,
                    permit,
                    open,
                };
                // A thread that no longer takes connections: serve it here.
                if let Err(back) = thread.balance.send(to, moved) {
                    let open = back.open.move_to(thread.index);
                    match TcpStream::from_std(back.stream) {
                        Ok(s) => connection(s, peer, state.clone(), back.permit, open, &local),
                        Err(e) => warn!(error = %e, "cannot take a connection back"),
                    }
                }
            }
        }));
    }
    {
        let (local, mut stop) = (local.clone(), stop.clone());
        accept_loops.push(tokio::spawn(async move {
            let take = |moved: balance::Moved| {
                let Some(state) = states.get(moved.listener) else {
                    return;
                };
                match TcpStream::from_std(moved.stream) {
                    Ok(s) => connection(
                        s,
                        moved.peer,
                        state.clone(),
                        moved.permit,
                        moved.open,
                        &local,
                    ),
                    Err(e) => {
                        warn!(error = %e, "cannot take over a connection from another thread")
                    }
                }
            };
            loop {
                tokio::select! {
                    m = inbox.recv() => match m { Some(m) => take(m), None => return },
                    _ = stop.changed() => break,
                }
            }
            // Closed, then emptied: a move under way when the stop came is
            // still taken (and shut down with the others); none is stranded.
            inbox.close();
            while let Some(m) = inbox.recv().await {
                take(m);
            }
        }));
    }
    let _ = stop.changed().await;
    local.stopping.stop();
    for l in accept_loops {
        let _ = l.await;
    }
    let grace = thread.options.shutdown_grace;
    // The accept loops are done, so this is the last reference.
    let Ok(graceful) = Arc::try_unwrap(local.graceful) else {
        return;
    };
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        );
    }
}

/// Serves one connection as a task on this thread: herald's own loop first,
/// hyper from the first request the loop does not take. `permit` (the slot
/// under the connection cap) and `open` (the count on this thread) are held
/// until the connection closes.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<State>,
    permit: tokio::sync::OwnedSemaphorePermit,
    open: balance::Open,
    local: &Local,
) {
    // Counted by the graceful shutdown from the start, whichever path
    // serves the connection.
    let watcher = local.graceful.watcher();
    let stopping = local.stopping.clone();
    tokio::spawn(async move {
        let io = crate::sendfile::Io::new(stream, state.options.send_timeout);
        if let http1::Outcome::Hyper(io) = http1::serve(io, &state, peer, &stopping).await {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(state.options.header_read_timeout)
                .max_buf_size(state.options.max_header_bytes.max(8192))
                .keep_alive(true);
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, req, peer).await) }
            });
            let _ = watcher.watch(builder.serve_connection(io, service)).await;
        }
        drop((permit, open));
    });
}

/// Answers one request that hyper parsed.
pub async fn handle<B>(state: &State, req: Request<B>, peer: SocketAddr) -> Response<Full<Bytes>> {
    answer(state, req.method(), req.uri().path(), req.headers(), peer)
        .await
        .map(Full::new)
}

/// Request headers as the answering code reads them: every value of one
/// name, in the order they came. Implemented by hyper's map and by the
/// fast path's parsed head ([`http1`]), so that both answer alike.
pub(crate) trait RequestHeaders {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a;

    fn first<'a>(&'a self, name: &'a HeaderName) -> Option<&'a [u8]> {
        self.values(name).next()
    }
}

impl RequestHeaders for HeaderMap {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }
}

/// A header value as text when it is visible ASCII (and tabs), as
/// `HeaderValue::to_str` has it.
fn visible(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// Answers one request (either path), counts it and logs it.
pub(crate) async fn answer(
    state: &State,
    method: &Method,
    raw_path: &str,
    headers: &impl RequestHeaders,
    peer: SocketAddr,
) -> Response<Bytes> {
    let start = state.options.access_log.then(Instant::now);
    // herald's own watchdog probe every few seconds would drown the log.
    let probe = headers.first(&header::USER_AGENT) == Some(b"herald-watchdog".as_slice());
    let (route, response) = respond(state, method, raw_path, headers).await;
    // The body as sent (none for HEAD, empty for 304).
    let bytes = if method == Method::HEAD {
        0
    } else {
        response.body().len() as u64
    };
    state
        .metrics
        .request(route, response.status().as_u16(), bytes);
    if let Some(start) = start.filter(|_| !probe) {
        info!(
            target: "herald::access",
            peer = %peer.ip(),
            method = %method,
            path = %raw_path,
            status = response.status().as_u16(),
            bytes,
            duration_us = start.elapsed().as_micros() as u64,
            "request"
        );
    }
    response
}

async fn respond(
    state: &State,
    method: &Method,
    raw_path: &str,
    headers: &impl RequestHeaders,
) -> (Route, Response<Bytes>) {
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return (Route::Other, r);
    }
    let not_found = || {
        (
            Route::Other,
            plain(StatusCode::NOT_FOUND, "not found\n".into()),
        )
    };
    let Some(key) = route(raw_path) else {
        return not_found();
    };
    if key == "healthz" && state.roles.healthz {
        let r = match state.metrics.health() {
            Ok(note) => plain(StatusCode::OK, format!("{note}\n")),
            Err(why) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        };
        return (Route::Health, r);
    }
    if key == "metrics" && state.roles.metrics {
        let mut r = plain(StatusCode::OK, state.metrics.render());
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return (Route::Metrics, r);
    }
    if !state.roles.feeds {
        return not_found();
    }
    let snapshot = state.snapshot.borrow().clone();
    let resource = match snapshot.get(&key) {
        Some(r) => r.clone(),
        None => {
            let Some(od) = state.on_demand.clone() else {
                return not_found();
            };
            // Rendering reads SQLite: off the serving thread.
            let wanted = key.to_string();
            match tokio::task::spawn_blocking(move || od.get(&wanted)).await {
                Ok(Some(r)) => r,
                _ => return not_found(),
            }
        }
    };
    let is_feed = key.ends_with(".xml") || key.ends_with(".json");
    let mut response = represent(state, &resource, method, headers);
    if is_feed && !state.options.hubs.is_empty() && !key.contains("/archive/") {
        let mut link = String::new();
        for hub in &state.options.hubs {
            link.push_str(&format!("<{hub}>; rel=\"hub\", "));
        }
        link.push_str(&format!(
            "<{}{}>; rel=\"self\"",
            state.options.base_url,
            crate::render::encode_path(&key)
        ));
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    let kind = if is_feed || key.ends_with(".opml") {
        Route::Feed
    } else if key == "index.html" || key.ends_with("/index.html") {
        Route::Index
    } else {
        Route::Page
    };
    (kind, response)
}

/// The response for a resource: validators, encoding, 304 or 200.
fn represent(
    state: &State,
    resource: &Resource,
    method: &Method,
    headers: &impl RequestHeaders,
) -> Response<Bytes> {
    // Every header value is static or made once per publish: no
    // allocation or validation per request.
    let (body, encoding, etag) = select_encoding(resource, headers);
    let not_modified = not_modified(resource, headers);
    let len = body.len();
    // The body's bytes are shared, not copied; a 304 or HEAD takes none.
    let body = if not_modified || *method == Method::HEAD {
        Bytes::new()
    } else {
        body.clone()
    };
    // Headers go straight into a map sized for them (no builder).
    let mut r = Response::new(body);
    let h = r.headers_mut();
    h.reserve(10);
    // What a cache needs to refresh its copy (RFC 9110 15.4.5)...
    h.insert(header::ETAG, etag.clone());
    h.insert(header::LAST_MODIFIED, resource.last_modified_value.clone());
    h.insert(header::CACHE_CONTROL, state.cache_control.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if not_modified {
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        return r;
    }
    // ... and for a body, what describes it.
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(resource.content_type),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if resource.content_type.starts_with("text/html") {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src https:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
        );
    }
    if let Some(enc) = encoding {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static(enc));
    }
    // Set explicitly so that HEAD reports the length GET would send.
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// A request path -> a snapshot key, or `None` (404) for anything that is
/// not a clean path: bad percent-encoding, `..`, `.`, empty segments,
/// backslashes, control characters.
pub fn route(raw: &str) -> Option<Cow<'_, str>> {
    let rest = raw.strip_prefix('/')?;
    let decoded = percent_decode(rest)?;
    if decoded.contains(['\\', '\0']) || decoded.chars().any(char::is_control) {
        return None;
    }
    if decoded.is_empty() {
        return Some("index.html".into());
    }
    let (dir, is_dir) = match decoded.strip_suffix('/') {
        Some(d) => (d, true),
        None => (&*decoded, false),
    };
    if dir
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == ".." || s.starts_with('.'))
    {
        return None;
    }
    Some(if is_dir {
        format!("{dir}/index.html").into()
    } else {
        decoded
    })
}

/// The path with `%XX` escapes decoded; borrowed when it has none (the
/// usual case: no allocation per request).
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let h = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(h, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// Picks the representation: the coding with the highest q-value among
/// those available (brotli before gzip before identity on ties).
fn select_encoding<'r>(
    r: &'r Resource,
    headers: &impl RequestHeaders,
) -> (&'r Bytes, Option<&'static str>, &'r HeaderValue) {
    let mut values = headers.values(&header::ACCEPT_ENCODING);
    // One Accept-Encoding header (the usual case) is read in place.
    let accept: Cow<str> = match (values.next(), values.next()) {
        (None, _) => "".into(),
        (Some(v), None) => visible(v).unwrap_or("").into(),
        _ => headers
            .values(&header::ACCEPT_ENCODING)
            .filter_map(visible)
            .collect::<Vec<_>>()
            .join(",")
            .into(),
    };
    let q = |coding: &str| accept_q(&accept, coding);
    // Identity is acceptable by default, but ranks above a compressed
    // coding only with an explicit, higher q-value.
    let identity = if mentions(&accept, "identity") {
        q("identity")
    } else {
        0.0
    };
    let mut best: (f32, Option<&'static str>) = (identity, None);
    if r.gzip.is_some() {
        let qg = q("gzip");
        if qg > 0.0 && qg > best.0 {
            best = (qg, Some("gzip"));
        }
    }
    if r.brotli.is_some() {
        let qb = q("br");
        if qb > 0.0 && qb >= best.0 && (best.1.is_some() || qb > identity) {
            best = (qb, Some("br"));
        }
    }
    match (best.1, &r.brotli, &r.gzip) {
        (Some("br"), Some(b), _) => (b, Some("br"), &r.etags[2]),
        (Some("gzip"), _, Some(g)) => (g, Some("gzip"), &r.etags[1]),
        _ => (&r.identity, None, &r.etags[0]),
    }
}

fn mentions(accept: &str, coding: &str) -> bool {
    accept.split(',').any(|p| {
        p.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(coding)
    })
}

/// The q-value `Accept-Encoding` gives a coding (RFC 9110 §12.5.3):
/// explicit, else `*`, else 1 for identity and 0 for the rest. An absent
/// header accepts identity only.
fn accept_q(accept: &str, coding: &str) -> f32 {
    let mut star = None;
    for part in accept.split(',') {
        let mut it = part.split(';');
        let name = it.next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for param in it {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = v.trim().parse::<f32>().unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
        }
        if name.eq_ignore_ascii_case(coding)
            || (coding == "gzip" && name.eq_ignore_ascii_case("x-gzip"))
        {
            return q;
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star.unwrap_or(if coding == "identity" { 1.0 } else { 0.0 })
}

/// RFC 9110 §13.1: `If-None-Match` (weak comparison, `*`, lists) decides
/// when present; else `If-Modified-Since`.
fn not_modified(r: &Resource, headers: &impl RequestHeaders) -> bool {
    let mut has_inm = false;
    for value in headers.values(&header::IF_NONE_MATCH) {
        let Some(value) = visible(value) else {
            continue;
        };
        has_inm = true;
        let matches = value.split(',').any(|tag| {
            let tag = tag.trim();
            if tag == "*" {
                return true;
            }
            let opaque = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
            // Any representation of the same bytes matches.
            opaque == r.digest
                || opaque.strip_suffix("-gz").or(opaque.strip_suffix("-br")) == Some(&r.digest)
        });
        if matches {
            return true;
        }
    }
    if has_inm {
        // If-Modified-Since is ignored when If-None-Match is present.
        return false;
    }
    headers
        .first(&header::IF_MODIFIED_SINCE)
        .and_then(visible)
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .is_some_and(|since| r.last_modified_secs <= since.as_secs() as i64)
}

fn plain(status: StatusCode, text: String) -> Response<Bytes> {
    let len = text.len();
    let mut r = Response::new(Bytes::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

/// Binds every address; an error names the address.
pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<Vec<TcpListener>> {
    let mut out = Vec::new();
    for addr in addrs {
        let l = TcpListener::bind(addr)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
        out.push(l);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let check = |raw: &str, expected: Option<&str>| {
            assert_eq!(route(raw).as_deref(), expected, "{raw}")
        };
        check("/", Some("index.html"));
        check("/atom.xml", Some("atom.xml"));
        check("/uk/", Some("uk/index.html"));
        check("/uk/atom.xml", Some("uk/atom.xml"));
        check("/uk/%D1%82.html", Some("uk/т.html"));
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/x",
            "/uk/../atom.xml",
            "//etc/passwd",
            "/uk//atom.xml",
            "/./atom.xml",
            "/%2E%2E%2Fx",
            "/..%2fx",
            "/a%00b",
            "/a\\b",
            "/%zz",
            "/%c0%ae%c0%ae/x",
            "/.herald-manifest",
        ] {
            check(bad, None);
        }
    }

    #[test]
    fn accept_encoding_q_values() {
        assert_eq!(accept_q("gzip, br;q=0.5", "br"), 0.5);
        assert_eq!(accept_q("gzip, br;q=0.5", "gzip"), 1.0);
        assert_eq!(accept_q("*;q=0.2", "br"), 0.2);
        assert_eq!(accept_q("", "identity"), 1.0);
        assert_eq!(accept_q("", "gzip"), 0.0);
        assert_eq!(accept_q("identity;q=0, gzip", "identity"), 0.0);
        assert_eq!(accept_q("GZIP;Q=0.7", "gzip"), 0.7);
    }
}
