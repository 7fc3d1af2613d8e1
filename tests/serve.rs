//! `herald serve` over HTTP: types, validators, compression, HEAD, limits,
//! traversal, shutdown. Each test starts the real binary on 127.0.0.1:0.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{feed_ids, Site};

fn corpus_daemon() -> (Site, support::Daemon) {
    let site = Site::for_daemon("").with_corpus();
    let d = site.serve();
    (site, d)
}

#[test]
fn feeds_have_types_validators_and_answer_304() {
    let (_site, d) = corpus_daemon();
    for (path, ty) in [
        ("/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/uk/atom.xml", "application/atom+xml; charset=utf-8"),
        ("/uk/rss.xml", "application/rss+xml; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/uk/", "text/html; charset=utf-8"),
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"));
        assert!(r.header("cache-control").unwrap().contains("max-age=60"));
        let etag = r.header("etag").unwrap().to_string();
        assert!(
            etag.starts_with('"') && !etag.starts_with("W/"),
            "strong etag {etag}"
        );
        let lm = r.header("last-modified").unwrap().to_string();
        assert_eq!(
            r.header("content-length")
                .unwrap()
                .parse::<usize>()
                .unwrap(),
            r.body.len()
        );

        let inm = format!("If-None-Match: {etag}");
        assert_eq!(d.request("GET", path, &[&inm]).status, 304);
        let list = format!("If-None-Match: \"nope\", {etag}");
        assert_eq!(d.request("GET", path, &[&list]).status, 304);
        assert_eq!(d.request("GET", path, &["If-None-Match: *"]).status, 304);
        assert_eq!(
            d.request("GET", path, &["If-None-Match: \"other\""]).status,
            200
        );
        let ims = format!("If-Modified-Since: {lm}");
        assert_eq!(d.request("GET", path, &[&ims]).status, 304);
        assert_eq!(
            d.request(
                "GET",
                path,
                &["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"]
            )
            .status,
            200
        );
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            d.request("GET", path, &["If-None-Match: \"other\"", &ims])
                .status,
            200
        );
    }
    let feed = d.get("/atom.xml");
    assert!(feed_ids(&feed).len() >= 30, "the corpus is served");
}

#[test]
fn head_gives_get_headers_without_body() {
    let (_site, d) = corpus_daemon();
    d.wait_compressed("/atom.xml");
    for enc in ["", "Accept-Encoding: gzip", "Accept-Encoding: br"] {
        let extra: Vec<&str> = if enc.is_empty() { vec![] } else { vec![enc] };
        let get = d.request("GET", "/atom.xml", &extra);
        let head = d.request("HEAD", "/atom.xml", &extra);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        for h in [
            "content-type",
            "content-length",
            "etag",
            "last-modified",
            "content-encoding",
            "vary",
        ] {
            assert_eq!(get.header(h), head.header(h), "{h} with {enc:?}");
        }
    }
}

#[test]
fn gzip_and_brotli_round_trip_and_follow_q_values() {
    let (site, d) = corpus_daemon();
    d.wait_compressed("/rss.xml");
    let plain = d.get("/rss.xml");
    // Large enough to be sent with sendfile from an unnamed file in the
    // state folder (src/sendfile.rs): the bytes must be those written to
    // the feeds folder.
    assert!(plain.body.len() > 64 * 1024, "{}", plain.body.len());
    let on_disk = support::wait_for(Duration::from_secs(20), || {
        let disk = std::fs::read(site.feeds().join("rss.xml")).ok()?;
        (disk == plain.body).then_some(())
    });
    assert!(
        on_disk.is_some(),
        "served bytes differ from the feeds folder's"
    );
    let sent = d.get("/metrics").text().lines().find_map(|l| {
        l.strip_prefix("herald_bytes_sendfile_total ")?
            .parse::<u64>()
            .ok()
    });
    assert!(
        sent.is_some_and(|n| n >= plain.body.len() as u64 - 16 * 1024),
        "the large body went by sendfile: {sent:?}"
    );
    // Those files have no name: the daemon holds them open.
    let state = site.path().join("state").canonicalize().unwrap();
    let held = std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| {
            target.starts_with(&state) && target.to_string_lossy().ends_with(" (deleted)")
        })
        .count();
    // (Unless the temp folder's filesystem takes no O_TMPFILE: then a
    // memfd, with a warning.)
    let fallback = d
        .logs()
        .iter()
        .any(|l| l.contains("cannot keep large bodies in unnamed files"));
    assert!(
        held > 0 || fallback,
        "no unnamed body file in {}",
        state.display()
    );
    let gz = d.request("GET", "/rss.xml", &["Accept-Encoding: gzip"]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain.body);
    assert!(gz.body.len() < plain.body.len());

    let br = d.request("GET", "/rss.xml", &["Accept-Encoding: gzip, deflate, br"]);
    assert_eq!(br.header("content-encoding"), Some("br"));
    let mut out = Vec::new();
    brotli::Decompressor::new(&br.body[..], 4096)
        .read_to_end(&mut out)
        .unwrap();
    assert_eq!(out, plain.body);

    let pref = d.request(
        "GET",
        "/rss.xml",
        &["Accept-Encoding: br;q=0.4, gzip;q=0.8"],
    );
    assert_eq!(pref.header("content-encoding"), Some("gzip"));
    let none = d.request("GET", "/rss.xml", &["Accept-Encoding: br;q=0, gzip;q=0"]);
    assert_eq!(none.header("content-encoding"), None);
    assert_ne!(
        gz.header("etag"),
        plain.header("etag"),
        "each representation has its own strong etag"
    );
    // A client holding the identity etag still gets 304 for the same bytes.
    let inm = format!("If-None-Match: {}", plain.header("etag").unwrap());
    assert_eq!(
        d.request("GET", "/rss.xml", &["Accept-Encoding: gzip", &inm])
            .status,
        304
    );
}

#[test]
fn nothing_outside_the_published_set_is_reachable() {
    let (site, d) = corpus_daemon();
    // The feeds folder is written after READY: it may not exist yet.
    std::fs::create_dir_all(site.feeds()).unwrap();
    std::fs::write(site.feeds().join("secret.txt"), "secret").unwrap();
    for path in [
        "/../config.toml",
        "/%2e%2e/config.toml",
        "/%2E%2E%2Fconfig.toml",
        "/..%2fconfig.toml",
        "//etc/passwd",
        "/uk/../../config.toml",
        "/./atom.xml",
        "/%00",
        "/secret.txt",
        "/.herald-manifest",
        "/state/herald.db",
        "/watch/announcements/festival.pl.md",
        "/%c0%ae%c0%ae/config.toml",
        "/uk//atom.xml",
        "/atom.xml/",
        "/nope.xml",
    ] {
        let r = d.get(path);
        assert_eq!(r.status, 404, "{path}");
        assert!(
            !r.text().contains("secret") && !r.text().contains("[site]"),
            "{path}"
        );
    }
}

/// Plain GET and HEAD requests are answered by herald's own HTTP/1.1 loop
/// (src/serve/http1.rs); a request with a body header goes to hyper. Both
/// must give the same status, headers (in the same order) and body.
#[test]
fn herald_and_hyper_answer_alike() {
    let (_site, d) = corpus_daemon();
    d.wait_compressed("/atom.xml");
    let etag = d.get("/uk/atom.xml").header("etag").unwrap().to_string();
    let inm = format!("If-None-Match: {etag}");
    let cases: Vec<(&str, &str, Vec<&str>)> = vec![
        ("GET", "/atom.xml", vec![]),
        ("GET", "/atom.xml", vec!["Accept-Encoding: gzip, br;q=0.5"]),
        (
            "GET",
            "/atom.xml",
            vec!["Accept-Encoding: br", "Accept-Encoding: gzip;q=0.1"],
        ),
        ("HEAD", "/atom.xml", vec!["Accept-Encoding: gzip"]),
        ("GET", "/uk/atom.xml", vec![&inm]),
        ("HEAD", "/uk/atom.xml", vec![&inm]),
        (
            "GET",
            "/uk/atom.xml",
            vec!["If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT"],
        ),
        ("GET", "/uk/atom.xml?since=yesterday", vec![]),
        ("GET", "/uk/", vec!["User-Agent: herald-watchdog"]),
        (
            "GET",
            "/",
            vec!["Accept-Encoding: x-gzip;q=0.3, identity;q=0.9"],
        ),
        ("GET", "/no/such.xml", vec![]),
        ("HEAD", "/no/such.xml", vec![]),
        ("GET", "/uk/../atom.xml", vec![]),
        ("GET", "/%D1%82.html", vec![]),
        ("GET", "/healthz", vec![]),
    ];
    let to_hyper = || -> u64 {
        d.get("/metrics")
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("herald_http_connections_to_hyper_total "))
            .and_then(|v| v.parse().ok())
            .expect("the hand-over counter is in /metrics")
    };
    let before = to_hyper();
    for (method, path, extra) in &cases {
        let ours = d.request(method, path, extra);
        let mut with_body = extra.clone();
        with_body.push("Content-Length: 0");
        let hypers = d.request(method, path, &with_body);
        let strip = |r: &support::Resp| -> Vec<(String, String)> {
            r.headers
                .iter()
                .filter(|(k, _)| k != "date")
                .cloned()
                .collect()
        };
        assert_eq!(ours.status, hypers.status, "{method} {path} {extra:?}");
        assert_eq!(strip(&ours), strip(&hypers), "{method} {path} {extra:?}");
        assert_eq!(ours.body, hypers.body, "{method} {path} {extra:?}");
        assert!(ours.header("date").is_some(), "{method} {path}");
    }
    // Each request with a body header, and only those, went to hyper.
    assert_eq!(to_hyper(), before + cases.len() as u64);
}

/// The same on one kept-alive connection, compared byte for byte but for
/// `date`: pipelined requests (one preceded by an empty line), a 304 and a
/// HEAD between bodies, then requests herald's loop hands to hyper in the
/// middle of the connection (more than 32 headers, a POST), whose bytes
/// hyper must read as they were sent. Herald's side is written a few bytes
/// at a time, so that heads arrive split at every point.
#[test]
fn one_connection_answers_alike_through_both_ways() {
    let (_site, d) = corpus_daemon();
    d.wait_compressed("/atom.xml");
    let etag = d.get("/uk/atom.xml").header("etag").unwrap().to_string();
    let many: String = (0..40).map(|i| format!("X-Header-{i}: {i}\r\n")).collect();
    let rest = format!(
        "HEAD /atom.xml HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\n\r\n\
         GET /uk/atom.xml HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n\
         \r\nGET /no/such.xml HTTP/1.1\nHost: t\n\n\
         GET /uk/ HTTP/1.1\r\nHost: t\r\nConnection: keep-alive\r\n\r\n\
         GET /uk/atom.xml HTTP/1.1\r\nHost: t\r\n{many}\r\n\
         POST /atom.xml HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc\
         GET /atom.xml HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\nConnection: close\r\n\r\n"
    );
    let exchange = |first: &str, chunk: usize| -> Vec<u8> {
        let mut s = TcpStream::connect(&d.addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let sent = format!("{first}{rest}").into_bytes();
        let mut reader = s.try_clone().unwrap();
        let collect = std::thread::spawn(move || {
            let mut got = Vec::new();
            let _ = reader.read_to_end(&mut got);
            got
        });
        for part in sent.chunks(chunk) {
            s.write_all(part).unwrap();
        }
        let got = collect.join().unwrap();
        // Every byte but the date lines (bodies are binary: gzip, brotli).
        let find = |b: &[u8], what: &[u8]| b.windows(what.len()).position(|w| w == what);
        let (mut kept, mut rest) = (Vec::new(), &got[..]);
        while let Some(i) = find(rest, b"\r\ndate: ") {
            kept.extend_from_slice(&rest[..i]);
            let line = &rest[i + 2..];
            rest = &line[find(line, b"\r\n").expect("a whole date line")..];
        }
        kept.extend_from_slice(rest);
        kept
    };
    let ours = exchange("\r\nGET /atom.xml HTTP/1.1\r\nHost: t\r\n\r\n", 7);
    let hypers = exchange(
        "GET /atom.xml HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        64 * 1024,
    );
    // The status lines, walking the stream head by head (bodies by their
    // length; none after a HEAD or a 304), and all of it consumed.
    let statuses = |b: &[u8]| -> Vec<String> {
        let heads = [false, true, false, false, false, false, false, false];
        let mut out = Vec::new();
        let mut at = 0;
        for head_request in heads {
            let end = at
                + b[at..]
                    .windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .expect("a response head");
            let head = String::from_utf8_lossy(&b[at..end]).into_owned();
            let status = head.lines().next().unwrap_or("").to_string();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .map_or(0, |v| v.parse().unwrap());
            let bodiless = head_request || status.contains(" 304 ");
            at = end + 4 + if bodiless { 0 } else { len };
            out.push(status);
        }
        assert_eq!(at, b.len(), "bytes after the last response");
        out
    };
    assert_eq!(
        statuses(&ours),
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 304 Not Modified",
            "HTTP/1.1 404 Not Found",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 405 Method Not Allowed",
            "HTTP/1.1 200 OK",
        ]
    );
    assert!(ours == hypers, "the two connections' bytes differ");
}

#[test]
fn other_methods_get_405_with_allow() {
    let (_site, d) = corpus_daemon();
    for m in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
        let r = d.request(m, "/atom.xml", &["Content-Length: 0"]);
        assert_eq!(r.status, 405, "{m}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    assert_eq!(d.get("/healthz").status, 200);
}

#[test]
fn oversized_headers_get_431() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Hello world, this is an announcement.\n");
    let d = site.serve();
    let big = format!("X-Big: {}", "a".repeat(40_000));
    let r = d.request("GET", "/", &[&big]);
    assert_eq!(r.status, 431);
    assert_eq!(d.get("/").status, 200, "still serving");
}

#[test]
fn slow_clients_do_not_block_others_and_are_cut_off() {
    let site = Site::for_daemon("");
    std::fs::write(
        site.config(),
        std::fs::read_to_string(site.config())
            .unwrap()
            .replace("[server]\n", "[server]\nheader_read_timeout_ms = 1500\n"),
    )
    .unwrap();
    site.put("a.txt", "Hello world, this is an announcement.\n");
    let d = site.serve();
    // Twenty slowloris connections trickling a header byte every 200 ms.
    let mut slow: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&d.addr).unwrap())
        .collect();
    for s in &mut slow {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    }
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(3) {
        for s in &mut slow {
            let _ = s.write_all(b"X");
        }
        let t = Instant::now();
        assert_eq!(d.get("/atom.xml").status, 200);
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        worst < Duration::from_secs(1),
        "well-behaved clients stay fast: {worst:?}"
    );
    // After the header timeout the slow connections are closed.
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(_) | Err(_) => closed += 1,
        }
    }
    assert_eq!(closed, slow.len());
}

/// A burst of connections accepted by whichever serving thread woke first
/// is spread evenly over the threads (/metrics shows the open connections
/// per thread), and every moved connection is served.
#[test]
fn a_burst_of_connections_is_spread_over_the_serving_threads() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Hello world, this is an announcement.\n");
    let d = site.serve();
    let open = |text: &str| -> Vec<u64> {
        text.lines()
            .filter(|l| l.starts_with("herald_http_connections_open{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect()
    };
    let threads = open(&d.get("/metrics").text()).len();
    assert!(threads >= 1, "no open-connection gauge in /metrics");
    // All connected before any is used, as a client's pool opens them.
    let mut burst: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(&d.addr).unwrap())
        .collect();
    for s in &mut burst {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut got = [0u8; 4096];
        let n = s.read(&mut got).unwrap();
        assert!(got[..n].starts_with(b"HTTP/1.1 200"));
    }
    // The /metrics request's own connection is counted too.
    let counts = open(&d.get("/metrics").text());
    assert_eq!(counts.iter().sum::<u64>(), 25, "{counts:?}");
    let (least, most) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(
        most - least <= 1,
        "uneven over {threads} threads: {counts:?}"
    );
    drop(burst);
    let closed = support::wait_for(Duration::from_secs(10), || {
        let counts = open(&d.get("/metrics").text());
        (counts.iter().sum::<u64>() == 1).then_some(())
    });
    assert!(closed.is_some(), "closed connections are still counted");
}

#[test]
fn sigterm_exits_zero() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Hello world, this is an announcement.\n");
    let d = site.serve();
    assert_eq!(d.get("/").status, 200);
    let status = d.terminate();
    assert_eq!(status.code(), Some(0));
}

/// Shutdown closes kept-alive connections that wait for their next request
/// at once (herald's loop and hyper alike) instead of holding the exit for
/// the grace period (5 s by default).
#[test]
fn sigterm_closes_idle_kept_alive_connections_at_once() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Hello world, this is an announcement.\n");
    let d = site.serve();
    let mut idle = Vec::new();
    // One connection stays in herald's loop, one was handed to hyper.
    for extra in ["", "Content-Length: 0\r\n"] {
        let mut s = TcpStream::connect(&d.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{extra}\r\n").as_bytes())
            .unwrap();
        let mut got = [0u8; 4096];
        let n = s.read(&mut got).unwrap();
        assert!(got[..n].starts_with(b"HTTP/1.1 200"), "{extra:?}");
        idle.push(s);
    }
    let start = Instant::now();
    assert_eq!(d.terminate().code(), Some(0));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "idle connections held the exit for {took:?}"
    );
    for mut s in idle {
        let mut rest = Vec::new();
        assert!(matches!(s.read_to_end(&mut rest), Ok(0) | Err(_)));
    }
}

#[test]
fn pages_link_every_entry_and_feed() {
    let site = Site::for_daemon("");
    site.put(
        "tram.uk.txt",
        "Трамвай №2 змінює маршрут\n\nЧерез ремонт колії трамвай курсуватиме об'їзною дорогою.\n",
    );
    site.put(
        "a/bus.md",
        "---\ntitle: \"Bus <7> & night line\"\nlang: en\n---\nThe night bus runs again.\n",
    );
    let d = site.serve();
    let index = d.get("/").text();
    assert!(index.contains("type=\"application/atom+xml\" hreflang=\"uk\""));
    assert!(index.contains("Bus &lt;7&gt; &amp; night line"));
    let feed = feed_rs::parser::parse(&d.get("/atom.xml").body[..]).unwrap();
    for e in &feed.entries {
        let link = &e.links[0].href;
        let path = link.strip_prefix("https://news.example.org").unwrap();
        let page = d.get(path);
        assert_eq!(page.status, 200, "{link}");
        assert!(page.text().contains("<article>"));
    }
    let uk_page = d.get("/uk/tram.html").text();
    assert!(uk_page.contains("<html lang=\"uk\" dir=\"ltr\">"));
    assert!(uk_page.contains("об&#39;їзною") || uk_page.contains("об'їзною"));
}
