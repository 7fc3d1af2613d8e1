//! The service manager's side channel: `sd_notify` messages, the watchdog
//! period, and sockets passed by socket activation.
//!
//! Everything here is optional: without `NOTIFY_SOCKET`, `WATCHDOG_USEC` or
//! `LISTEN_FDS` (not under systemd) the functions do nothing, and a missing
//! or broken notify socket is logged at debug level, never fatal.

use std::net::TcpListener;
use std::os::fd::FromRawFd;
use std::time::Duration;

use sd_notify::NotifyState;
use tracing::debug;

/// Sends notification states; errors are not fatal, and a service manager
/// that does not read (a full socket buffer) never blocks the caller: the
/// publishing thread sends `STATUS=` after every publish.
fn notify(states: &[NotifyState]) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let mut msg = String::new();
    for s in states {
        msg.push_str(&s.to_string());
        msg.push('\n');
    }
    if let Err(e) = send_nonblocking(&path, msg.as_bytes()) {
        debug!(error = %e, "sd_notify failed");
    }
}

fn send_nonblocking(path: &std::ffi::OsStr, msg: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = path.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    sock.connect_addr(&addr)?;
    sock.send(msg).map(drop)
}

/// `READY=1` with a status line.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

/// `RELOADING=1` with `MONOTONIC_USEC`, as `Type=notify-reload` expects.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading configuration"),
        ]),
        Err(_) => notify(&[
            NotifyState::Reloading,
            NotifyState::Status("reloading configuration"),
        ]),
    }
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// The watchdog period, when systemd asked for pings (`WATCHDOG_USEC`,
/// for this process if `WATCHDOG_PID` is set).
pub fn watchdog_period() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// TCP listeners passed by systemd (`LISTEN_FDS`, `LISTEN_PID`), with their
/// names (`LISTEN_FDNAMES`, `FileDescriptorName=`); empty when none.
pub fn activated_listeners() -> std::io::Result<Vec<(String, TcpListener)>> {
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    let fds: Vec<i32> = sd_notify::listen_fds()?.collect();
    let mut out = Vec::new();
    for (i, fd) in fds.into_iter().enumerate() {
        // SAFETY: systemd passes these descriptors to this process (LISTEN_PID
        // was checked by listen_fds) and nothing else in herald owns them.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        listener.local_addr().map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("passed file descriptor {fd} is not a TCP socket: {e}"),
            )
        })?;
        listener.set_nonblocking(true)?;
        out.push((
            names.get(i).cloned().unwrap_or_else(|| "http".into()),
            listener,
        ));
    }
    std::env::remove_var("LISTEN_FDNAMES");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_manager_that_does_not_read_never_blocks_the_sender() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let _reader = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        let target = path.into_os_string();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Far more than a datagram socket's receive queue holds.
            let line = "STATUS=".to_string() + &"x".repeat(1000);
            let mut refused = 0;
            for _ in 0..5_000 {
                if send_nonblocking(&target, line.as_bytes()).is_err() {
                    refused += 1;
                }
            }
            let _ = done_tx.send(refused);
        });
        let refused = done_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("sending blocked on a full socket");
        assert!(refused > 0, "the queue never filled up");
    }

    #[test]
    fn abstract_socket_names_are_understood() {
        let name = format!("herald-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let reader = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        send_nonblocking(std::ffi::OsStr::new(&format!("@{name}")), b"READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = reader.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
