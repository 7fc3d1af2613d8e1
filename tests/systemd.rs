//! herald under a service manager, without one running: a fake
//! `NOTIFY_SOCKET` (a Unix datagram socket in a temp folder) records what
//! herald tells systemd; `systemd-socket-activate` passes a listening socket.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{feed_titles, wait_for, Daemon, Site};

/// A fake notify socket collecting messages.
struct Notify {
    socket: UnixDatagram,
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    seen: Vec<String>,
}

impl Notify {
    fn new() -> Notify {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Notify {
            socket,
            path,
            _dir: dir,
            seen: Vec::new(),
        }
    }

    /// Waits for a message containing `needle`; returns it.
    fn wait(&mut self, needle: &str) -> String {
        let found = wait_for(Duration::from_secs(30), || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = self.socket.recv(&mut buf) {
                self.seen
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            let i = self.seen.iter().position(|m| m.contains(needle))?;
            Some(self.seen.remove(i))
        });
        found.unwrap_or_else(|| panic!("no {needle:?} from herald; saw {:?}", self.seen))
    }
}

fn start(site: &Site, notify: &Notify, watchdog_usec: Option<&str>) -> Daemon {
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--config")
        .arg(site.config())
        .arg("serve")
        .env("NOTIFY_SOCKET", &notify.path);
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec);
    }
    site.serve_with(cmd)
}

#[test]
fn ready_status_watchdog_reload_and_stopping() {
    let site = Site::for_daemon("");
    site.put("a.txt", "First notice\n\nSomething happens on Monday.\n");
    // Too few letters to detect: in the default language.
    site.put("n.txt", "Nr 12 / 2025\n\n14:30 - 16:00\n");
    let mut notify = Notify::new();
    let d = start(&site, &notify, Some("1000000"));

    let ready = notify.wait("READY=1");
    assert!(
        ready.contains("STATUS=serving 2 announcements in 1 languages"),
        "{ready}"
    );
    // READY=1 is sent only once the feeds are served.
    assert_eq!(d.get("/atom.xml").status, 200);
    notify.wait("WATCHDOG=1");

    // A good new configuration: RELOADING=1 with MONOTONIC_USEC, then READY=1.
    let config = std::fs::read_to_string(site.config()).unwrap();
    std::fs::write(
        site.config(),
        config.replace(
            "title = \"Test city\"",
            "title = \"Renamed city\"\ndefault_language = \"de\"",
        ),
    )
    .unwrap();
    d.signal("HUP");
    let reloading = notify.wait("RELOADING=1");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = notify.wait("READY=1");
    assert!(ready.contains("in 2 languages"), "{ready}");
    let feed = feed_rs::parser::parse(&d.get("/atom.xml").body[..]).unwrap();
    assert_eq!(feed.title.unwrap().content, "Renamed city");
    // The new default reaches the entry published before the reload.
    let de = d.get("/de/atom.xml");
    assert_eq!(de.status, 200);
    assert_eq!(feed_titles(&de), ["Nr 12 / 2025"]);

    // A broken one: refused, old one kept, said in STATUS=.
    std::fs::write(site.config(), "[site]\ntitel = \"typo\"\n").unwrap();
    d.signal("HUP");
    notify.wait("RELOADING=1");
    let after = notify.wait("READY=1");
    assert!(
        after.contains("FAILED") && after.contains("titel"),
        "{after}"
    );
    assert_eq!(d.get("/atom.xml").status, 200, "still serving");
    assert!(d.logs().iter().any(|l| l.contains("reload refused")));
    site.put(
        "b.txt",
        "Second notice\n\nStill publishing after a failed reload.\n",
    );
    wait_for(Duration::from_secs(30), || {
        feed_titles(&d.get("/atom.xml"))
            .contains(&"Second notice".to_string())
            .then_some(())
    })
    .expect("still publishing");

    let status = d.terminate();
    notify.wait("STOPPING=1");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn metrics_and_health() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Notice\n\nText of the notice.\n");
    site.put("bad.txt", "");
    let d = site.serve();
    assert_eq!(d.get("/atom.xml").status, 200);
    assert_eq!(d.get("/nope").status, 404);
    let health = d.get("/healthz");
    assert_eq!((health.status, health.text().trim()), (200, "ok"));
    let m = d.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = m.text();
    for needle in [
        "herald_requests_total{route=\"feed\",status=\"200\"} 1",
        "herald_requests_total{route=\"other\",status=\"404\"} 1",
        "herald_announcements{lang=\"en\"} 1",
        "herald_rejected_files 1",
        "herald_publishes_total",
        "herald_last_publish_timestamp_seconds",
        "herald_bytes_served_total",
    ] {
        assert!(text.contains(needle), "{needle} missing from\n{text}");
    }
}

#[test]
fn monitoring_can_move_to_its_own_address_or_be_disabled() {
    let site = Site::for_daemon("[monitoring]\nlisten = \"127.0.0.1:0\"\n");
    site.put("a.txt", "Notice\n\nText.\n");
    let d = site.serve();
    assert_eq!(d.get("/metrics").status, 404, "not on the feed listener");
    let admin = wait_for(Duration::from_secs(10), || {
        d.logs()
            .iter()
            .find(|l| l.contains("listening") && l.contains("monitoring"))
            .and_then(|l| {
                l.split("addr=")
                    .nth(1)?
                    .split_whitespace()
                    .next()
                    .map(str::to_string)
            })
    })
    .expect("monitoring listener");
    let on_admin = Daemon::request_to(&admin, "GET", "/metrics", &[]);
    assert_eq!(on_admin.status, 200);
    assert_eq!(
        Daemon::request_to(&admin, "GET", "/atom.xml", &[]).status,
        404,
        "no feeds there"
    );

    let site = Site::for_daemon("[monitoring]\nmetrics = false\nhealthz = false\n");
    let d = site.serve();
    assert_eq!(d.get("/metrics").status, 404);
    assert_eq!(d.get("/healthz").status, 404);
}

#[test]
fn socket_activation() {
    let site = Site::for_daemon("");
    site.put(
        "a.txt",
        "Activated notice\n\nServed on a socket passed by systemd.\n",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new("systemd-socket-activate")
        .args([
            "-l",
            &addr,
            "--fdname=http",
            "-E",
            "RUST_LOG=info",
            support::BIN,
            "--config",
        ])
        .arg(site.config())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (Debian package systemd)");
    let resp = wait_for(Duration::from_secs(30), || {
        std::net::TcpStream::connect(&addr).ok()?;
        let r = Daemon::request_to(&addr, "GET", "/atom.xml", &[]);
        (r.status == 200).then_some(r)
    })
    .expect("served on the activated socket");
    assert!(feed_titles(&resp).contains(&"Activated notice".to_string()));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn broken_config_exits_78_for_serve() {
    let site = Site::for_daemon("");
    std::fs::write(site.config(), "[server]\nlisten = \"nowhere\"\n").unwrap();
    let out = site.run(&["serve"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn second_instance_on_the_same_state_refuses_to_start() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Notice\n\nText.\n");
    let _first = site.serve();
    let out = site.run(&["serve"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another herald"), "{stderr}");
}

#[test]
fn journal_and_json_log_formats() {
    let site = Site::for_daemon("");
    site.put("bad.txt", "");
    // Under journald: priority prefixes, no timestamps, no colours.
    let out = Command::new(support::BIN)
        .arg("--config")
        .arg(site.config())
        .arg("build")
        .env("JOURNAL_STREAM", "8:12345")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warn = stderr
        .lines()
        .find(|l| l.contains("bad.txt"))
        .expect("a warning line");
    assert!(warn.starts_with("<4>"), "{warn}");
    assert!(
        !warn.contains("\u{1b}[") && !warn.contains("20"),
        "no colours or timestamps: {warn}"
    );
    assert!(stderr.lines().any(|l| l.starts_with("<6>")), "{stderr}");
    // JSON lines for log shippers.
    let out = site.run(&["build", "--log-format", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
    }
}

#[test]
fn a_broken_notify_socket_is_never_fatal() {
    let site = Site::for_daemon("");
    site.put("a.txt", "Notice\n\nText.\n");
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--config")
        .arg(site.config())
        .arg("serve")
        .env("NOTIFY_SOCKET", "/nonexistent/notify.sock")
        .env("WATCHDOG_USEC", "500000");
    let d = site.serve_with(cmd);
    assert_eq!(d.get("/atom.xml").status, 200);
    // The watchdog task's first tick fires at start: pings to the broken
    // socket have been attempted by the time the daemon answers.
    assert_eq!(d.get("/healthz").status, 200);
    assert_eq!(d.terminate().code(), Some(0));
}
