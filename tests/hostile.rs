//! Hostile input and hostile clients: known XSS payloads in every place an
//! announcement can carry text, and abusive HTTP (idle floods, oversized and
//! malformed requests, pipelining) while a well-behaved client is measured.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::Site;

/// Classic payloads (OWASP filter-evasion cheat sheet style).
const PAYLOADS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"jav&#x09;ascript:alert('XSS');\">",
    "<svg/onload=alert(1)>",
    "<body onload=alert(1)>",
    "<iframe src=\"javascript:alert(1)\"></iframe>",
    "<a href=\"javascript:alert(1)\">click</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">click</a>",
    "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">click</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">click</a>",
    "<a href=\"vbscript:msgbox(1)\">click</a>",
    "<div style=\"background:url(javascript:alert(1))\">x</div>",
    "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
    "<object data=\"javascript:alert(1)\"></object>",
    "<embed src=\"javascript:alert(1)\">",
    "<form action=\"javascript:alert(1)\"><input type=submit></form>",
    "<details open ontoggle=alert(1)>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<![CDATA[<script>alert(1)</script>]]>",
    "]]><script>alert(1)</script><![CDATA[",
    "<base href=\"javascript:alert(1)//\">",
    "<link rel=stylesheet href=\"javascript:alert(1)\">",
    "[click](javascript:alert(1))",
    "[click](JAVASCRIPT:alert(1))",
    "![x](javascript:alert(1))",
    "<https://example.org/\" onmouseover=\"alert(1)>",
    "\u{0000}<script>alert(1)</script>",
];

/// The real tags of an HTML fragment: (lowercase name, [(attribute, value)]).
/// Escaped text (`&lt;script&gt;`) is text, not a tag, and is not returned.
fn tags(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out = Vec::new();
    let bytes: Vec<char> = html.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != '<'
            || !bytes
                .get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == '!')
        {
            i += 1;
            continue;
        }
        // Read to the closing '>' outside quotes.
        let mut j = i + 1;
        let mut quote = None;
        while j < bytes.len() {
            match (quote, bytes[j]) {
                (None, '"' | '\'') => quote = Some(bytes[j]),
                (Some(q), c) if c == q => quote = None,
                (None, '>') => break,
                _ => {}
            }
            j += 1;
        }
        let inner: String = bytes[i + 1..j.min(bytes.len())].iter().collect();
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '!')
            .collect();
        let mut attrs = Vec::new();
        let rest = &inner[name.len()..];
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == '/') {
                chars.next();
            }
            let attr: String =
                std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=')).collect();
            if attr.is_empty() {
                break;
            }
            let mut value = String::new();
            if chars.peek() == Some(&'=') {
                chars.next();
                match chars.peek().copied() {
                    Some(q @ ('"' | '\'')) => {
                        chars.next();
                        value = std::iter::from_fn(|| chars.next_if(|c| *c != q)).collect();
                        chars.next();
                    }
                    _ => {
                        value =
                            std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect()
                    }
                }
            }
            attrs.push((attr.to_lowercase(), value));
        }
        out.push((name.to_lowercase(), attrs));
        i = j + 1;
    }
    out
}

/// Decodes numeric and the common named entities, drops whitespace and
/// controls: what a browser compares a URL scheme against.
fn url_as_browser_sees(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(pos) = rest.find('&') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos..];
        let end = rest.find(';').unwrap_or(rest.len());
        let entity = &rest[1..end];
        let decoded = if let Some(hex) = entity.strip_prefix("#x").or(entity.strip_prefix("#X")) {
            u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)
        } else if let Some(dec) = entity.strip_prefix('#') {
            dec.parse().ok().and_then(char::from_u32)
        } else {
            match entity {
                "amp" => Some('&'),
                "colon" => Some(':'),
                "tab" => Some('\t'),
                "newline" => Some('\n'),
                _ => None,
            }
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[(end + 1).min(rest.len())..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_lowercase()
}

/// Anything executable among the real tags of an HTML fragment.
fn executable(html: &str) -> Option<String> {
    const TAGS: &[&str] = &[
        "script", "iframe", "object", "embed", "svg", "math", "form", "meta", "base", "link",
        "style", "frame", "frameset", "applet",
    ];
    for (name, attrs) in tags(html) {
        if TAGS.contains(&name.as_str()) {
            return Some(format!("<{name}>"));
        }
        for (attr, value) in attrs {
            if attr.starts_with("on") || attr == "style" || attr == "formaction" {
                return Some(format!("<{name} {attr}=...>"));
            }
            let url = url_as_browser_sees(&value);
            // A scheme is letters, digits, + - . before the first ':' (and
            // before any '/', '?' or '#'); relative URLs have none.
            let scheme = url
                .split_once(':')
                .map(|(s, _)| s)
                .filter(|s| !s.contains(['/', '?', '#']) && !s.is_empty());
            let dangerous = scheme.is_some_and(|s| !["http", "https", "mailto"].contains(&s));
            if [
                "href",
                "src",
                "action",
                "data",
                "xlink:href",
                "poster",
                "background",
            ]
            .contains(&attr.as_str())
                && dangerous
            {
                return Some(format!("<{name} {attr}={value:?}>"));
            }
        }
    }
    None
}

#[test]
fn the_checker_itself_catches_payloads_and_ignores_escaped_text() {
    for p in PAYLOADS
        .iter()
        .filter(|p| p.starts_with('<') && !p.starts_with("<!") && !p.starts_with("<http"))
    {
        assert!(executable(p).is_some(), "checker misses {p}");
    }
    assert_eq!(
        executable(
            "<p>&lt;script&gt;alert(1)&lt;/script&gt; <a href=\"https://x.example/\">ok</a></p>"
        ),
        None
    );
}

#[test]
fn xss_payloads_never_reach_a_feed_or_page() {
    let site = Site::new("[feeds]\nmax_entries = 1000\n");
    for (i, p) in PAYLOADS.iter().enumerate() {
        let yaml_safe = p
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\u{0}', "");
        site.put(
            &format!("md{i}.md"),
            format!("---\ntitle: \"Title {i} {yaml_safe}\"\ntags: [\"{yaml_safe}\"]\nauthor: \"{yaml_safe}\"\nlang: en\n---\nBefore {i}.\n\n{p}\n\nAfter {i}.\n"),
        );
        site.put(
            &format!("txt{i}.en.txt"),
            format!("Headline {i} {p}\n\nBody {i} {p} end.\n"),
        );
    }
    site.build();
    let mut failures = Vec::new();
    for file in ["atom.xml", "rss.xml", "en/atom.xml", "en/rss.xml"] {
        let feed = site.parse_feed(file);
        assert_eq!(
            feed.entries.len(),
            PAYLOADS.len() * 2,
            "{file}: every file published"
        );
        for e in &feed.entries {
            let content = e
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .unwrap_or_default();
            let summary = e
                .summary
                .as_ref()
                .map(|s| s.content.clone())
                .unwrap_or_default();
            if let Some(bad) = executable(&content) {
                failures.push(format!("{file} {}: content has {bad}: {content}", e.id));
            }
            if file.ends_with("rss.xml") {
                // RSS descriptions are HTML for readers.
                if let Some(bad) = executable(&summary) {
                    failures.push(format!("{file} {}: description has {bad}: {summary}", e.id));
                }
            }
        }
    }
    // Pages: raw HTML files, checked as served.
    for (path, bytes) in site.snapshot() {
        if path.ends_with(".html") {
            let html = String::from_utf8_lossy(&bytes);
            // The pages' own <style> block is herald's; look at the body only.
            let body = html.split("<body>").nth(1).unwrap_or("");
            if let Some(bad) = executable(body) {
                failures.push(format!("{path}: {bad}"));
            }
        }
        assert!(!bytes.contains(&0), "{path}: NUL byte");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn oversized_files_are_rejected_with_one_warning() {
    let site = Site::new("[limits]\nmax_file_bytes = 1000\n");
    site.put("big.txt", "word ".repeat(400));
    site.put("small.txt", "Small notice\n\nFits.\n");
    let out = site.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<_> = stderr.lines().filter(|l| l.contains("big.txt")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("too large"));
    let feed = site.parse_feed("atom.xml");
    assert_eq!(feed.entries.len(), 1);
}

fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn abusive_requests_get_errors_and_good_clients_stay_fast() {
    let site = Site::for_daemon("");
    std::fs::write(
        site.config(),
        std::fs::read_to_string(site.config())
            .unwrap()
            .replace("[server]\n", "[server]\nheader_read_timeout_ms = 3000\n"),
    )
    .unwrap();
    site.put("a.txt", "Notice\n\nSomething happens on Monday.\n");
    let d = site.serve();

    // Pipelined: two requests in one write, two answers in order.
    let two = raw(&d.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /atom.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(two.matches("HTTP/1.1 200").count(), 2, "{two}");
    // Malformed request lines and headers: 400, never a crash.
    for junk in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    ] {
        let r = raw(&d.addr, junk);
        assert!(
            r.is_empty() || r.starts_with("HTTP/1.1 4"),
            "{junk:?} -> {r}"
        );
    }
    // An oversized URL and headers: 431 (or 414), not a crash.
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100_000));
    let r = raw(&d.addr, long.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 431") || r.starts_with("HTTP/1.1 414"),
        "{}",
        &r[..r.len().min(80)]
    );
    // Traversal in several encodings: plain 404.
    for p in [
        "/..%2f..%2fetc%2fpasswd",
        "/%252e%252e/x",
        "/..\\..\\x",
        "/%u002e%u002e/x",
        "/.%2e/x",
    ] {
        let r = raw(
            &d.addr,
            format!("GET {p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(
            r.starts_with("HTTP/1.1 404") || r.starts_with("HTTP/1.1 400"),
            "{p} -> {r}"
        );
    }

    let rss_kb = || -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", d.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .map(str::to_string)
            })
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    let rss_before = rss_kb();
    // 500 idle connections (no bytes sent) and 50 slowloris ones.
    let mut idle: Vec<TcpStream> = (0..500)
        .filter_map(|_| TcpStream::connect(&d.addr).ok())
        .collect();
    for s in idle.iter_mut().take(50) {
        let _ = s.write_all(b"GET / HTTP/1.1\r\n");
    }
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(d.get("/atom.xml").status, 200);
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let p90 = latencies[latencies.len() * 9 / 10];
    assert!(
        p90 < Duration::from_millis(500),
        "p90 latency under attack {p90:?}"
    );
    let rss_during = rss_kb();
    println!(
        "well-behaved p50 {:?} p90 {:?} with {} idle connections; daemon RSS {} MB before, {} MB during",
        latencies[25],
        p90,
        idle.len(),
        rss_before / 1024,
        rss_during / 1024
    );
    assert!(
        rss_during < rss_before + 64 * 1024,
        "memory grew by more than 64 MB under the flood"
    );
    // The idle ones are closed by the header timeout (3 s here): a read
    // ends in EOF or a reset, not in our own 10 s read timeout.
    let mut still_open = 0;
    for s in &mut idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 512];
        loop {
            match s.read(&mut b) {
                Ok(0) => break,
                Ok(_) => continue, // an error response before closing is fine
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    still_open += 1;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    assert_eq!(
        still_open, 0,
        "idle connections outlived the header timeout"
    );
    assert_eq!(d.get("/healthz").status, 200, "still healthy");
}

/// A client that asks for more than the socket buffers hold and stops
/// reading (a slow-read attack) is disconnected after `send_timeout_ms`,
/// in herald's own loop and after a hand-over to hyper, and the slot is
/// freed (the open-connection gauge drops back).
#[test]
fn clients_that_stop_reading_are_disconnected_after_the_send_timeout() {
    let site = Site::for_daemon("").with_corpus();
    std::fs::write(
        site.config(),
        std::fs::read_to_string(site.config()).unwrap().replace(
            "[server]\n",
            // A header timeout far beyond the test: only the send
            // timeout can close the stalled connections.
            "[server]\nsend_timeout_ms = 3000\nheader_read_timeout_ms = 120000\n",
        ),
    )
    .unwrap();
    let d = site.serve();
    let size = d.get("/atom.xml").body.len();
    let open = || -> u64 {
        d.get("/metrics")
            .text()
            .lines()
            .filter(|l| l.starts_with("herald_http_connections_open{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    // Far more than loopback's socket buffers (a few MB) can hold.
    let requests = 24_000_000 / size.max(1) + 1;
    let mut stalled = Vec::new();
    for extra in ["", "Content-Length: 0\r\n"] {
        let s = TcpStream::connect(&d.addr).unwrap();
        let pipelined =
            format!("GET /atom.xml HTTP/1.1\r\nHost: x\r\n{extra}\r\n").repeat(requests);
        // Written from a thread: the server stops reading requests too
        // once its writes wait.
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = w.write_all(pipelined.as_bytes());
        });
        stalled.push(s);
    }
    // Both stalled connections are seen open, then closed by the server
    // (the /metrics request's own connection counts 1).
    let seen = support::wait_for(Duration::from_secs(10), || (open() == 3).then_some(()));
    assert!(seen.is_some(), "stalled clients not seen: {}", open());
    let closed = support::wait_for(Duration::from_secs(30), || (open() == 1).then_some(()));
    assert!(
        closed.is_some(),
        "stalled clients still connected: {}",
        open()
    );
    for mut s in stalled {
        // The connection ends (reset, as the server leaves requests
        // unread) before all the answers were sent.
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut got = Vec::new();
        let ended = s.read_to_end(&mut got);
        let answers = got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
        assert!(answers < requests, "{answers} of {requests}, {ended:?}");
        assert!(
            !matches!(&ended, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "still open"
        );
    }
    // The server still answers.
    assert_eq!(d.get("/atom.xml").status, 200);
}
