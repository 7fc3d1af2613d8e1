//! The connection loop for plain requests, without hyper's machinery.
//!
//! Nearly every request a feed server gets is a `GET` or `HEAD` of a path
//! with a handful of headers, answered from memory. For those, hyper's
//! general machinery (a request and a header map built per request, its
//! dispatcher, a timer set per request) was the microsecond of CPU per
//! request by which herald trailed nginx. This loop reads a request head,
//! parses it with `httparse` (the parser hyper itself uses), answers it with
//! the same [`answer`] as hyper's service, and writes the response head (the
//! bytes hyper would write) and body through [`Io`], so that large bodies
//! still go out with `sendfile`.
//!
//! Anything else — another method, a request body, HTTP/1.0, `Expect`,
//! `Upgrade`, other `Connection` options, a target that is not a plain
//! path, a head that does not parse or outgrows the header limit — is handed
//! to hyper with the bytes read so far, and the connection stays with hyper
//! from then on: errors and rarities get hyper's answers.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::header::{self, HeaderName};
use hyper::{Method, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{answer, RequestHeaders, State};
use crate::sendfile::Io;

/// Headers a request may have and stay on this path (hyper takes up to 100).
const MAX_HEADERS: usize = 32;

/// The longest request target hyper's URI type takes (it answers 414 above).
const MAX_TARGET: usize = u16::MAX as usize - 1;

/// The read buffer's first size; it grows up to the header limit.
const FIRST_READ: usize = 4096;

/// Connections handed to hyper since the process started.
static HANDED_OVER: AtomicU64 = AtomicU64::new(0);

/// Connections handed to hyper since the process started (for `/metrics`:
/// a client population that mostly lands there is worth knowing about).
pub fn connections_handed_over() -> u64 {
    HANDED_OVER.load(Ordering::Relaxed)
}

/// How a connection ended up.
pub(super) enum Outcome {
    /// Closed, by either side, a timeout or the server's shutdown.
    Closed,
    /// A request this loop does not take: hyper goes on with the connection,
    /// whose next reads start with what was read of that request.
    Hyper(Io),
}

/// Tells a serving thread's connections that the server is shutting down:
/// idle ones close at once, busy ones after the response they are writing.
#[derive(Default)]
pub(super) struct Stopping {
    set: AtomicBool,
    notify: Notify,
}

impl Stopping {
    pub(super) fn stop(&self) {
        self.set.store(true, Ordering::Relaxed);
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.set.load(Ordering::Relaxed)
    }
}

/// A parsed head's headers, read as [`answer`] reads hyper's map.
struct Parsed<'a, 'b>(&'a [httparse::Header<'b>]);

impl RequestHeaders for Parsed<'_, '_> {
    fn values<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name.as_str()))
            .map(|h| h.value)
    }
}

/// Serves requests on `io` until the connection ends or a request needs
/// hyper.
pub(super) async fn serve(
    mut io: Io,
    state: &State,
    peer: SocketAddr,
    stopping: &Stopping,
) -> Outcome {
    let timeout = state.options.header_read_timeout;
    let limit = state.options.max_header_bytes.max(8192);
    let mut buf = vec![0u8; FIRST_READ.min(limit)];
    // Bytes read and not yet answered: buf[start..end]; the head that
    // starts at `start` has no end in buf[..scanned].
    let (mut start, mut end, mut scanned) = (0, 0, 0);
    let mut out = Vec::with_capacity(512);
    // One timer per connection, set to the header-read deadline of an
    // earlier request and moved on only when it fires: a request costs no
    // timer update, only a clock read.
    let mut deadline = Instant::now() + timeout;
    let timer = tokio::time::sleep_until(deadline);
    tokio::pin!(timer);
    loop {
        // Read until the buffer holds a whole head.
        while !head_complete(&buf[..end], &mut start, &mut scanned) {
            if end == buf.len() {
                if start > 0 {
                    buf.copy_within(start..end, 0);
                    (end, scanned) = (end - start, scanned.saturating_sub(start));
                    start = 0;
                } else if buf.len() < limit {
                    buf.resize((buf.len() * 2).min(limit), 0);
                } else {
                    // Larger than the limit: hyper answers 431.
                    return hand_over(io, &buf[start..end]);
                }
            }
            let idle = start == end;
            if idle && stopping.is_set() {
                return Outcome::Closed;
            }
            let read = tokio::select! {
                biased;
                r = io.stream_mut().read(&mut buf[end..]) => r,
                () = &mut timer => {
                    if Instant::now() >= deadline {
                        // Too slow a head, or idle for as long.
                        return Outcome::Closed;
                    }
                    timer.as_mut().reset(deadline);
                    continue;
                }
                () = stopping.notify.notified(), if idle => return Outcome::Closed,
            };
            match read {
                Ok(0) | Err(_) => return Outcome::Closed,
                Ok(n) => end += n,
            }
        }
        let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(&buf[start..end], &mut slots) {
            Ok(httparse::Status::Complete(len)) => len,
            // A parse error, more headers than this loop takes, or (never
            // seen) a head the parser finds incomplete after a blank line.
            Ok(httparse::Status::Partial) | Err(_) => return hand_over(io, &buf[start..end]),
        };
        let Some((method, path, close)) = plain_request(&req) else {
            return hand_over(io, &buf[start..end]);
        };
        let response = answer(state, &method, path, &Parsed(req.headers), peer).await;
        let close = close || stopping.is_set();
        out.clear();
        write_head(&mut out, &response, close);
        // HEAD answers carry the length a GET would get, and no body.
        let body: &[u8] = if method == Method::HEAD {
            &[]
        } else {
            response.body()
        };
        if write_all(&mut io, &out, body).await.is_err() {
            return Outcome::Closed;
        }
        if close {
            let _ = io.stream_mut().shutdown().await;
            return Outcome::Closed;
        }
        start += len;
        if start == end {
            (start, end) = (0, 0);
            rewind(&mut buf);
        }
        scanned = start;
        deadline = Instant::now() + timeout;
    }
}

/// An emptied read buffer back at its first size: a large head grows it up
/// to the header limit, and an idle kept-alive connection should not keep
/// that much (10,000 connections × 16 KB).
fn rewind(buf: &mut Vec<u8>) {
    if buf.len() > FIRST_READ {
        buf.truncate(FIRST_READ);
        buf.shrink_to_fit();
    }
}

/// Whether `buf[*start..]` holds a whole head: a request line and headers
/// up to a blank line (CRLF or bare LF line ends, as `httparse` takes them).
/// Empty lines before the request line are skipped by moving `*start` (RFC
/// 9112 §2.2), and only bytes after `*scanned` are searched (then `*scanned`
/// moves on), so that a head trickled in byte by byte costs linear time.
fn head_complete(buf: &[u8], start: &mut usize, scanned: &mut usize) -> bool {
    loop {
        match &buf[*start..] {
            [b'\n', ..] => *start += 1,
            [b'\r', b'\n', ..] => *start += 2,
            _ => break,
        }
    }
    // The usual case first: one read brought exactly one head.
    if buf.len() > *start && buf.ends_with(b"\r\n\r\n") {
        return true;
    }
    let mut at = (*scanned).max(*start);
    while let Some(i) = buf[at..].iter().position(|&b| b == b'\n') {
        at += i + 1;
        if matches!(&buf[at..], [b'\n', ..] | [b'\r', b'\n', ..]) {
            return true;
        }
    }
    // A blank line may still end on the last two bytes: look there again.
    *scanned = buf.len().saturating_sub(2).max(*start);
    false
}

/// The method, path and whether the client asked to close, for a request
/// this loop answers: `GET` or `HEAD` over HTTP/1.1 of a plain path (any
/// query is ignored, as hyper's path is), no body, no expectations, no
/// upgrade, no `Connection` options beyond `close` and `keep-alive`.
fn plain_request<'b>(req: &httparse::Request<'_, 'b>) -> Option<(Method, &'b str, bool)> {
    let method = match req.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    if req.version != Some(1) {
        return None;
    }
    let target = req.path?;
    // Longer targets get hyper's 414.
    if target.len() > MAX_TARGET
        || !target.starts_with('/')
        || !target.bytes().all(plain_target_byte)
    {
        return None;
    }
    let path = target.split_once('?').map_or(target, |(path, _query)| path);
    let mut close = false;
    for h in req.headers.iter() {
        let is = |name: &HeaderName| h.name.eq_ignore_ascii_case(name.as_str());
        if is(&header::CONTENT_LENGTH)
            || is(&header::TRANSFER_ENCODING)
            || is(&header::EXPECT)
            || is(&header::UPGRADE)
        {
            return None;
        }
        if is(&header::CONNECTION) {
            for option in std::str::from_utf8(h.value).ok()?.split(',') {
                let option = option.trim();
                if option.eq_ignore_ascii_case("close") {
                    close = true;
                } else if !option.eq_ignore_ascii_case("keep-alive") {
                    return None;
                }
            }
        }
    }
    Some((method, path, close))
}

/// Bytes of a request target this loop takes: RFC 3986's unreserved and
/// sub-delimiters, `:`, `@`, `/`, `?` and `%` (every one of them accepted by
/// hyper's URI parser too, so both paths route the same targets).
fn plain_target_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

/// The response head as hyper writes it: status line, the response's
/// headers in order, `connection: close` when closing, then `date`.
fn write_head(out: &mut Vec<u8>, response: &Response<Bytes>, close: bool) {
    let status = response.status();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let bodiless = status == StatusCode::NOT_MODIFIED || status.is_informational();
    if !bodiless && !response.headers().contains_key(header::CONTENT_LENGTH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(response.body().len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"date: ");
    push_date(out);
    out.extend_from_slice(b"\r\n\r\n");
}

/// The current `Date` value, formatted once per second per thread.
fn push_date(out: &mut Vec<u8>) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != secs || text.is_empty() {
            *text = httpdate::fmt_http_date(now);
            *at = secs;
        }
        out.extend_from_slice(text.as_bytes());
    });
}

/// Writes `head` then `body`, vectored, through `io` (which sends a large
/// body from a packed file with `sendfile`).
async fn write_all(io: &mut Io, mut head: &[u8], mut body: &[u8]) -> io::Result<()> {
    use hyper::rt::Write as _;
    while !head.is_empty() || !body.is_empty() {
        let n = poll_fn(|cx| {
            let slices = [io::IoSlice::new(head), io::IoSlice::new(body)];
            let slices = if head.is_empty() {
                &slices[1..]
            } else {
                &slices[..]
            };
            Pin::new(&mut *io).poll_write_vectored(cx, slices)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}

/// Hands the connection to hyper, with `unread` (the request it did not
/// take, and anything after it) to be read first.
fn hand_over(mut io: Io, unread: &[u8]) -> Outcome {
    HANDED_OVER.fetch_add(1, Ordering::Relaxed);
    io.unread(Bytes::copy_from_slice(unread));
    Outcome::Hyper(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emptied_buffer_goes_back_to_its_first_size() {
        let mut grown = vec![0u8; 16 * 1024];
        rewind(&mut grown);
        assert_eq!(grown.len(), FIRST_READ);
        assert!(grown.capacity() < 16 * 1024, "{}", grown.capacity());
        let mut first = vec![0u8; FIRST_READ];
        let at = first.as_ptr();
        rewind(&mut first);
        assert_eq!((first.len(), first.as_ptr()), (FIRST_READ, at));
    }

    fn parse(raw: &str) -> Option<(Method, String, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(raw.as_bytes()) {
            Ok(httparse::Status::Complete(_)) => {}
            other => panic!("{raw:?} does not parse: {other:?}"),
        }
        plain_request(&req).map(|(m, p, c)| (m, p.to_string(), c))
    }

    #[test]
    fn plain_requests_stay_and_the_rest_go_to_hyper() {
        let taken = |raw: &str| parse(raw).is_some();
        assert_eq!(
            parse("GET /uk/atom.xml HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some((Method::GET, "/uk/atom.xml".into(), false))
        );
        assert_eq!(
            parse("HEAD /atom.xml?since=1 HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n"),
            Some((Method::HEAD, "/atom.xml".into(), true))
        );
        assert!(taken(
            "GET /%D1%82.html HTTP/1.1\r\nAccept-Encoding: gzip\r\n\r\n"
        ));
        for other in [
            "POST /atom.xml HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "GET /atom.xml HTTP/1.0\r\n\r\n",
            "GET http://a/atom.xml HTTP/1.1\r\n\r\n",
            "GET /a\"b HTTP/1.1\r\n\r\n",
            "GET /a{b} HTTP/1.1\r\n\r\n",
            "GET /atom.xml HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "GET /atom.xml HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET /atom.xml HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
            "GET /atom.xml HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
            "GET /atom.xml HTTP/1.1\r\nConnection: x-private\r\n\r\n",
        ] {
            assert!(!taken(other), "{other:?} should go to hyper");
        }
    }

    #[test]
    fn a_head_is_complete_at_its_first_blank_line() {
        let complete = |bytes: &[u8]| head_complete(bytes, &mut 0, &mut 0);
        assert!(complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(complete(b"GET / HTTP/1.1\nHost: a\n\n"));
        assert!(complete(b"GET / HTTP/1.1\r\n\r\nGET /x"));
        assert!(!complete(b"GET / HTTP/1.1\r\nHost: a\r\n"));
        assert!(!complete(b"GET / HTTP/1.1\r\nHost: a\r\n\r"));
        assert!(!complete(b""));
        // Empty lines before a request line are skipped, not taken for its end.
        let (mut start, mut scanned) = (0, 0);
        assert!(!head_complete(
            b"\r\n\nGET / HTTP/1.1\r\n",
            &mut start,
            &mut scanned
        ));
        assert_eq!(start, 3);
        assert!(!head_complete(b"\r\n\r\n", &mut 0, &mut 0));
    }

    #[test]
    fn a_trickled_head_is_found_whatever_the_read_boundaries() {
        let head = b"\r\nGET /atom.xml HTTP/1.1\r\nHost: a\r\nX-A: b\n\r\nGET /next";
        let end_of_head = head.len() - b"GET /next".len();
        for step in 1..=4 {
            let (mut start, mut scanned) = (0, 0);
            let mut end = 0;
            let found = loop {
                end = (end + step).min(head.len());
                if head_complete(&head[..end], &mut start, &mut scanned) {
                    break end;
                }
                assert!(scanned <= end && end < head.len(), "step {step}");
            };
            assert_eq!(start, 2, "step {step}");
            assert!(
                found >= end_of_head && found < end_of_head + step,
                "step {step}: {found}"
            );
        }
    }

    #[test]
    fn heads_are_written_as_hyper_writes_them() {
        let mut r = Response::new(Bytes::from_static(b"not found\n"));
        *r.status_mut() = StatusCode::NOT_FOUND;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain"),
        );
        let mut out = Vec::new();
        write_head(&mut out, &r, true);
        let text = String::from_utf8(out).expect("ASCII");
        let date = text
            .strip_prefix(
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\ncontent-length: 10\r\n\
                 connection: close\r\ndate: ",
            )
            .and_then(|rest| rest.strip_suffix("\r\n\r\n"))
            .unwrap_or_else(|| panic!("unexpected head {text:?}"));
        assert!(httpdate::parse_http_date(date).is_ok(), "{date:?}");
        let mut r = Response::new(Bytes::new());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        let mut out = Vec::new();
        write_head(&mut out, &r, false);
        assert!(out.starts_with(b"HTTP/1.1 304 Not Modified\r\ndate: "));
    }
}
