//! Large response bodies handed to the socket with `sendfile(2)` instead of
//! copied through `writev`.
//!
//! nginx serves a static file with `sendfile on`: the socket takes the page
//! cache's pages, and the bytes are never copied through user memory. herald
//! keeps its hot documents in memory, so the large ones are written to a
//! file that has no name, mapped read-only ([`pack`]); the connections'
//! writer ([`Io`]) recognises a slice of such a mapping by its address
//! ([`lookup`]) and sends it with `sendfile` from that file at the same
//! offset. Headers, small bodies and any other memory go out with `writev`
//! as before.
//!
//! The file is made with `O_TMPFILE` in the state folder ([`keep_in`]): on a
//! disk filesystem the kernel splices page-cache pages in batches, where
//! from a `memfd` (shmem) it looks every 4 KB page up on its own; that
//! lookup was ~5% of a 200 KB response's CPU, client included, and the
//! plain `/atom.xml` rate rose 9–15% with the change (README, Performance).
//! Like nginx's files, their clean pages may be dropped under memory
//! pressure and read back from disk when next sent. Only the kernel reads
//! them while serving (callers pack only bodies of [`MIN_SENDFILE`] or
//! more; they go by `sendfile`, and a short tail or a refused `sendfile` by
//! `writev` from the mapping), so a disk that fails that read fails the
//! one response (`EIO`, `EFAULT`); herald's own code reading such a page
//! would get a `SIGBUS`, and does not on the serving path. Where the folder
//! cannot hold such a file (a filesystem without `O_TMPFILE`, a full disk:
//! the blocks are preallocated, one that cannot map it), a sealed `memfd`
//! is used; where neither can be made (a seccomp filter, out of
//! descriptors) the bytes stay on the heap and are copied. Each fallback
//! is warned about once.
//!
//! All the `unsafe` code this takes is here: the mapping's lifetime (owned
//! by the `Bytes` that point into it) and the system calls. Only the hot
//! snapshot's documents are packed (one descriptor each: 156 at 100,000
//! announcements in 38 languages); on-demand documents stay on the heap.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future as _;
use std::io::{self, IoSlice, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::rt::Write as _;
use hyper_util::rt::TokioIo;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

/// Bodies below this size are copied: for them `sendfile`'s set-up (an
/// internal pipe, page references) costs more than the copy it saves.
pub const MIN_SENDFILE: usize = 16 * 1024;

/// The folder that holds the files behind the mappings (see [`keep_in`]).
static FOLDER: OnceLock<PathBuf> = OnceLock::new();

/// Every live mapping: start address -> (length, its file).
static MAPPINGS: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());

/// Bytes sent with `sendfile` since start (for tests and curiosity).
static SENT: AtomicU64 = AtomicU64::new(0);

/// Set when `sendfile` itself is refused (a seccomp filter, a kernel that
/// cannot splice from such a file): from then on every body is copied.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Bytes sent with `sendfile` since the process started.
pub fn bytes_sent() -> u64 {
    SENT.load(Ordering::Relaxed)
}

/// From now on, [`pack`] keeps bodies in unnamed files in `folder` (the
/// state folder: private to herald, on a disk filesystem as a rule). Set
/// once, at start-up; until then, and in tests, a `memfd` is used.
pub fn keep_in(folder: &Path) {
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_path_buf());
    let _ = FOLDER.set(folder);
}

/// `parts` copied, one after the other, into one new file mapped
/// read-only, returned as one `Bytes` per part (each keeps the mapping
/// alive). `None` when the parts are too small to be worth it or no file
/// can be made: the caller keeps its heap bytes.
pub fn pack(parts: &[&[u8]]) -> Option<Vec<Bytes>> {
    if parts.iter().all(|p| p.len() < MIN_SENDFILE) {
        return None;
    }
    let mapping = match Mapping::new(parts, FOLDER.get().map(PathBuf::as_path)) {
        Ok(m) => m,
        Err(e) => {
            static WARNED: AtomicBool = AtomicBool::new(false);
            if !WARNED.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cannot keep documents in a file; large bodies are copied to sockets instead of sent with sendfile");
            }
            return None;
        }
    };
    let whole = Bytes::from_owner(mapping);
    let mut at = 0;
    Some(
        parts
            .iter()
            .map(|p| {
                let b = whole.slice(at..at + p.len());
                at += p.len();
                b
            })
            .collect(),
    )
}

/// A read-only shared mapping of a file only this process can reach (an
/// unnamed file or a sealed memfd), registered in [`MAPPINGS`] while it
/// lives.
struct Mapping {
    ptr: *const u8,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: the memory is mapped read-only from a file that herald never
// writes after `new`. A memfd is sealed against writes. An `O_TMPFILE |
// O_EXCL` file has no name and can never be linked into a folder; it can
// still be opened through `/proc/<pid>/fd/N`, by herald's own user or root
// only, and the assumption is that they do not write into a running
// daemon's files (as they do not write into its memory). Sharing it is
// sharing `&[u8]`.
unsafe impl Send for Mapping {}
unsafe impl Sync for Mapping {}

impl Mapping {
    /// An unnamed file in `folder`; a sealed memfd when `folder` is `None`
    /// or when anything fails there (no `O_TMPFILE`, a full disk, a
    /// filesystem that cannot map it).
    fn new(parts: &[&[u8]], folder: Option<&Path>) -> io::Result<Mapping> {
        if let Some(folder) = folder {
            match Mapping::of(unnamed_file(folder), parts, Backing::Unnamed) {
                Ok(mapping) => return Ok(mapping),
                Err(e) => {
                    static WARNED: AtomicBool = AtomicBool::new(false);
                    if !WARNED.swap(true, Ordering::Relaxed) {
                        tracing::warn!(folder = %folder.display(), error = %e, "cannot keep large bodies in unnamed files in the state folder; they are kept in a memfd instead (sent a little slower)");
                    }
                }
            }
        }
        Mapping::of(memfd(), parts, Backing::Memfd)
    }

    /// `file` (new, empty, of kind `backing`) with `parts` written into it,
    /// mapped and registered.
    fn of(file: io::Result<File>, parts: &[&[u8]], backing: Backing) -> io::Result<Mapping> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut file = file?;
        if backing == Backing::Unnamed {
            // The disk blocks, taken now: a full disk is an error here (and
            // a memfd instead), not a failed writeback later. Filesystems
            // that cannot preallocate just skip it.
            // SAFETY: fallocate on a descriptor we own.
            if unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) } < 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    return Err(e);
                }
            }
        }
        for p in parts {
            file.write_all(p)?;
        }
        let fd = OwnedFd::from(file);
        if backing == Backing::Memfd {
            // Sealed: the bytes behind a served body cannot change or shrink.
            let seals =
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
            // SAFETY: fcntl on a descriptor we own.
            if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: a new read-only shared mapping of `len` (> 0) bytes of our
        // own file; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let mapping = Mapping {
            ptr: ptr as *const u8,
            len,
            fd,
        };
        MAPPINGS
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(mapping.ptr as usize, (len, mapping.fd.as_raw_fd()));
        Ok(mapping)
    }
}

/// What holds a mapping's bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backing {
    /// [`unnamed_file`]: preallocated, so that a full disk shows at once.
    Unnamed,
    /// [`memfd`]: sealed after writing.
    Memfd,
}

/// A new file in `folder` that has no name and can never be linked into
/// one (`O_EXCL`): it is gone when its last descriptor closes, crash
/// included.
fn unnamed_file(folder: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_EXCL | libc::O_CLOEXEC)
        .open(folder)
}

/// A new memfd that can be sealed.
fn memfd() -> io::Result<File> {
    // SAFETY: a C string literal and flags; the result is checked.
    let raw = unsafe {
        libc::memfd_create(
            c"herald-body".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(raw) }))
}

impl AsRef<[u8]> for Mapping {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` is mapped readable until `drop`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unregistered before it is unmapped (and its fd closed), so that no
        // writer can find it afterwards.
        MAPPINGS
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(self.ptr as usize));
        // SAFETY: unmapping what `new` mapped; no `Bytes` points into it any
        // more (they own this mapping).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// The file and offset holding `slice`, when it lies inside a mapping made
/// by [`pack`] and is large enough to be worth `sendfile`.
///
/// The descriptor is valid as long as the caller holds the `Bytes` that
/// `slice` borrows from (it owns the mapping, which owns the descriptor).
fn lookup(slice: &[u8]) -> Option<(RawFd, libc::off_t)> {
    if slice.len() < MIN_SENDFILE || REFUSED.load(Ordering::Relaxed) {
        return None;
    }
    mapped(slice)
}

/// The file and offset holding `slice`, whatever its size.
fn mapped(slice: &[u8]) -> Option<(RawFd, libc::off_t)> {
    let addr = slice.as_ptr() as usize;
    let map = MAPPINGS.read().unwrap_or_else(|e| e.into_inner());
    let (&start, &(len, fd)) = map.range(..=addr).next_back()?;
    (addr + slice.len() <= start + len).then(|| (fd, (addr - start) as libc::off_t))
}

/// `slice` lies inside a mapping made by [`pack`], whatever its size.
#[cfg(test)]
pub(crate) fn is_packed(slice: &[u8]) -> bool {
    mapped(slice).is_some()
}

/// A TCP connection (for herald's own HTTP/1.1 loop, then hyper if the loop
/// hands it over) that sends bodies held in [`pack`]'s mappings with
/// `sendfile` and everything else as `TokioIo` would.
///
/// A write fails with `TimedOut` when the client has taken no bytes for
/// `send_timeout` (nginx's `send_timeout`): a reader that stops reading
/// does not hold a connection, its slot and its response forever.
pub struct Io {
    inner: TokioIo<TcpStream>,
    /// Bytes already read from the socket by someone else, read first.
    unread: Bytes,
    send_timeout: Duration,
    /// Runs while a write waits for room in the socket; made at the first
    /// such wait and reused. (After progress it may still be armed: one
    /// spurious wake-up, no harm.)
    stall: Option<Pin<Box<Sleep>>>,
    /// A write is waiting since the timer was set. Callers (hyper, the
    /// loop) retry a pending write until it completes or the connection
    /// ends; a write abandoned and tried again much later would find its
    /// old deadline.
    stalled: bool,
}

impl Io {
    pub fn new(stream: TcpStream, send_timeout: Duration) -> Io {
        Io {
            inner: TokioIo::new(stream),
            unread: Bytes::new(),
            send_timeout,
            stall: None,
            stalled: false,
        }
    }

    /// The connection, for reading it directly.
    pub fn stream_mut(&mut self) -> &mut TcpStream {
        self.inner.inner_mut()
    }

    /// Gives `bytes` (read from the socket before) to the next reads, ahead
    /// of what the socket has.
    pub fn unread(&mut self, bytes: Bytes) {
        self.unread = bytes;
    }
}

impl hyper::rt::Read for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.unread.is_empty() {
            let n = this.unread.len().min(buf.remaining());
            buf.put_slice(&this.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match this.poll_send(cx, bufs) {
            Poll::Pending => this.poll_stall(cx),
            done => {
                this.stalled = false;
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Io {
    /// A write that could not go on: starts the send timeout at the first
    /// wait since the last progress, and fails the write when it expires.
    fn poll_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if !self.stalled {
            self.stalled = true;
            let deadline = Instant::now() + self.send_timeout;
            match &mut self.stall {
                Some(sleep) => sleep.as_mut().reset(deadline),
                None => self.stall = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(sleep) = &mut self.stall {
            if sleep.as_mut().poll(cx).is_ready() {
                self.stalled = false;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no response bytes within the send timeout",
                )));
            }
        }
        Poll::Pending
    }

    /// One write: bodies in a mapping with `sendfile`, the rest copied.
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        let found = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| lookup(b).map(|at| (i, at)));
        match found {
            None => Pin::new(&mut self.inner).poll_write_vectored(cx, bufs),
            // What comes before the body (the head) first, marked as
            // followed by more so that it leaves with the body's first bytes;
            // hyper calls again for the rest. (Empty slices before the body
            // are skipped: a write of nothing would read as a closed socket.)
            Some((i, _)) if bufs[..i].iter().any(|b| !b.is_empty()) => {
                poll_write_with(self.inner.inner(), cx, |sock| send_more(sock, &bufs[..i]))
            }
            Some((i, (fd, offset))) => {
                let len = bufs[i].len();
                let sent = ready!(poll_write_with(self.inner.inner(), cx, |sock| {
                    sendfile(sock, fd, offset, len)
                }));
                match sent {
                    // sendfile refused (nothing was sent, so the copy
                    // neither repeats nor skips a byte): copy, now and
                    // from now on.
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::EINVAL | libc::ENOSYS | libc::EPERM | libc::EOPNOTSUPP)
                        ) =>
                    {
                        if !REFUSED.swap(true, Ordering::Relaxed) {
                            tracing::warn!(error = %e, "sendfile refused; large bodies are copied to sockets instead");
                        }
                        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
                    }
                    Ok(n) => {
                        SENT.fetch_add(n as u64, Ordering::Relaxed);
                        Poll::Ready(Ok(n))
                    }
                    Err(e) => Poll::Ready(Err(e)),
                }
            }
        }
    }
}

/// Runs a non-blocking write on the socket when it is writable; waits (and
/// retries) while it would block.
fn poll_write_with(
    stream: &TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut(RawFd) -> io::Result<usize>,
) -> Poll<io::Result<usize>> {
    loop {
        ready!(stream.poll_write_ready(cx))?;
        match stream.try_io(Interest::WRITABLE, || write(stream.as_raw_fd())) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            result => return Poll::Ready(result),
        }
    }
}

/// `sendmsg` of `bufs` with `MSG_MORE`.
fn send_more(sock: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is ABI-compatible with iovec on Unix (std's guarantee); the
    // kernel only reads through it.
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len().min(1024) as _;
    // SAFETY: `msg` points at `bufs`, alive for the call.
    written(unsafe { libc::sendmsg(sock, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) })
}

/// `sendfile` of `len` bytes of `fd` from `offset`. (It has no
/// `MSG_NOSIGNAL`: a closed peer gives `EPIPE` because Rust programs start
/// with `SIGPIPE` ignored.)
fn sendfile(sock: RawFd, fd: RawFd, offset: libc::off_t, len: usize) -> io::Result<usize> {
    let mut offset = offset;
    // SAFETY: both descriptors are open (see `lookup`); the kernel writes
    // only `offset`.
    written(unsafe { libc::sendfile(sock, fd, &mut offset, len) })
}

/// A write call's return value: bytes written, or the error in `errno`.
fn written(n: isize) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use tokio::io::AsyncReadExt;

    fn body(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn packed_parts_are_found_at_their_offsets() {
        let (a, b, c) = (body(40_000, 1), body(100, 2), body(20_000, 3));
        let parts = pack(&[&a, &b, &c]).expect("memfd available");
        assert_eq!(&parts[0][..], &a[..]);
        assert_eq!(&parts[1][..], &b[..]);
        assert_eq!(&parts[2][..], &c[..]);
        let (fd, off) = lookup(&parts[0]).expect("first part mapped");
        assert_eq!(off, 0);
        assert_eq!(lookup(&parts[2]), Some((fd, 40_100)));
        // Too small to bother; heap memory is never found.
        assert_eq!(lookup(&parts[1]), None);
        assert_eq!(lookup(&a), None);
        // A slice inside a part, and the memfd holds the same bytes there.
        let inner = parts[0].slice(1000..30_000);
        let (_, off) = lookup(&inner).expect("inner slice mapped");
        let mut read = vec![0u8; inner.len()];
        // SAFETY: pread into a buffer of that length.
        let n = unsafe { libc::pread(fd, read.as_mut_ptr().cast(), read.len(), off) };
        assert_eq!(n as usize, inner.len());
        assert_eq!(read, &inner[..]);
        drop((parts, inner));
    }

    /// Where the descriptor of `mapping` points, as the kernel names it.
    fn target(mapping: &Mapping) -> String {
        let link = format!("/proc/self/fd/{}", mapping.fd.as_raw_fd());
        std::fs::read_link(link)
            .expect("a descriptor of ours")
            .display()
            .to_string()
    }

    #[test]
    fn bodies_go_to_an_unnamed_file_in_the_folder_given() {
        let dir = tempfile::tempdir().unwrap();
        if let Err(e) = unnamed_file(dir.path()) {
            eprintln!("skipped: the temp folder takes no O_TMPFILE ({e})");
            return;
        }
        let (a, b) = (body(40_000, 4), body(30_000, 5));
        let mapping = Mapping::new(&[&a, &b], Some(dir.path())).unwrap();
        assert_eq!(mapping.as_ref(), [&a[..], &b[..]].concat());
        // A regular file in that folder's filesystem, with no name in it.
        let path = target(&mapping);
        assert!(
            path.starts_with(&dir.path().display().to_string()),
            "{path}"
        );
        // SAFETY: fstat into a zeroed stat of our own descriptor.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(mapping.fd.as_raw_fd(), &mut st) }, 0);
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
        assert_eq!(st.st_nlink, 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        drop(mapping);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_folder_that_cannot_hold_unnamed_files_falls_back_to_a_sealed_memfd() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("not-there");
        let a = body(40_000, 6);
        let mapping = Mapping::new(&[&a], Some(&missing)).expect("memfd available");
        assert_eq!(mapping.as_ref(), &a[..]);
        assert!(target(&mapping).starts_with("/memfd:herald-body"));
        // SAFETY: fcntl on our own descriptor.
        let seals = unsafe { libc::fcntl(mapping.fd.as_raw_fd(), libc::F_GET_SEALS) };
        assert_ne!(seals & libc::F_SEAL_WRITE, 0);
    }

    #[test]
    fn small_parts_stay_on_the_heap() {
        assert!(pack(&[&body(1000, 0), &body(2000, 0)]).is_none());
    }

    /// Shrinks a socket's send buffer, so that a large body takes many
    /// partial writes.
    fn small_send_buffer(stream: &TcpStream) {
        let small: libc::c_int = 16 * 1024;
        // SAFETY: setsockopt with a c_int option value.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&small as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }

    /// The server's end of a connection from `listener`, with a small send
    /// buffer, and `len` bytes of test data with their packed copy.
    async fn serving(
        listener: &tokio::net::TcpListener,
        len: usize,
        seed: u8,
    ) -> (TcpStream, Vec<u8>, Bytes) {
        let (stream, _) = listener.accept().await.unwrap();
        small_send_buffer(&stream);
        let data = body(len, seed);
        let packed = pack(&[&data]).expect("memfd available").remove(0);
        (stream, data, packed)
    }

    /// Writes `head` and then `body` through `io` as hyper does (the head
    /// and the rest of the body in one vectored write), then shuts down.
    async fn send(io: &mut Io, head: &[u8], body: &[u8]) -> io::Result<()> {
        use hyper::rt::Write;
        let mut pos = 0;
        let total = head.len() + body.len();
        while pos < total {
            let n = poll_fn(|cx| {
                let (h, b) = if pos < head.len() {
                    (&head[pos..], body)
                } else {
                    (&head[..0], &body[pos - head.len()..])
                };
                let slices = [IoSlice::new(h), IoSlice::new(b)];
                let slices: &[IoSlice] = if h.is_empty() { &slices[1..] } else { &slices };
                Pin::new(&mut *io).poll_write_vectored(cx, slices)
            })
            .await?;
            assert!(n > 0);
            pos += n;
        }
        poll_fn(|cx| Pin::new(&mut *io).poll_shutdown(cx)).await
    }

    #[tokio::test]
    async fn head_and_mapped_body_arrive_intact_through_partial_writes() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        // A small send buffer: the 3 MB body takes many partial writes.
        let (stream, data, packed) = serving(&listener, 3_000_000, 7).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 3000000\r\n\r\n".to_vec();
        let before = bytes_sent();
        let mut io = Io::new(stream, Duration::from_secs(60));
        send(&mut io, &head, &packed).await.unwrap();
        drop(io);
        let got = client.await.unwrap();
        assert_eq!(got.len(), head.len() + data.len());
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(got[head.len()..] == data[..], "body bytes differ");
        // The body went by sendfile (tests run in parallel: at least ours).
        assert!(bytes_sent() - before >= (data.len() - MIN_SENDFILE) as u64);
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_after_the_send_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (stream, _, packed) = serving(&listener, 8_000_000, 3).await;
        let timeout = Duration::from_millis(200);
        let mut io = Io::new(stream, timeout);
        let start = Instant::now();
        // The client never reads: its buffers fill, then the writes wait.
        let sent = tokio::time::timeout(Duration::from_secs(30), send(&mut io, b"", &packed))
            .await
            .expect("the write gave up on its own");
        let err = sent.expect_err("8 MB cannot fit in the socket buffers");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= timeout);
        drop(client);
    }

    #[tokio::test]
    async fn a_slow_reader_that_keeps_taking_bytes_is_served_to_the_end() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(16 * 1024).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            let (mut got, mut chunk) = (Vec::new(), vec![0u8; 16 * 1024]);
            loop {
                // A reader slower than the server, never stalled for long.
                tokio::time::sleep(Duration::from_millis(20)).await;
                match s.read(&mut chunk).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&chunk[..n]),
                }
            }
        });
        // At most 16 KB per 20 ms: 1.5 MB takes at least 1.9 s.
        let (stream, data, packed) = serving(&listener, 1_500_000, 5).await;
        // Far above the reader's pauses, even on a busy machine.
        let timeout = Duration::from_secs(1);
        let mut io = Io::new(stream, timeout);
        let start = Instant::now();
        send(&mut io, b"", &packed).await.unwrap();
        drop(io);
        let got = client.await.unwrap();
        assert!(got == data, "body bytes differ");
        // The whole response took longer than the timeout: it bounds each
        // wait, not the response.
        assert!(start.elapsed() > timeout, "{:?}", start.elapsed());
    }
}
