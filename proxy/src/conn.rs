//! Client connections: the accept loop, deadlines and the connection limit.
//!
//! Pingora's own accept loop (`Service::start_service`) gives every connection a 64 KiB read
//! buffer, reads each request head with a timeout *per read* (60 s), and keeps an HTTP/1.1
//! keep-alive connection waiting for its next request without any timeout (the session's
//! keep-alive becomes "infinite" once the client speaks HTTP/1.1). A client trickling one
//! header line every few seconds, or just keeping idle connections open, held them forever,
//! at about 100 KiB of memory each. So the runtime accepts connections itself and hands each
//! request to Pingora's `HttpServerApp::process_new_http` (the entry point Pingora offers
//! for custom accept loops) only once its head is complete:
//!
//! - **Head deadline** ([`Limits::header_timeout`], default 10 s): a request head must be
//!   complete within this time, counted from the connection's accept for its first request
//!   and from the first byte for later ones. A client that sent part of a head gets
//!   `408 request_timeout` and the connection is closed; one that sent nothing is closed.
//! - **Idle keep-alive timeout** ([`Limits::idle_timeout`], default 60 s): a connection with
//!   no request in progress is closed after this time.
//! - **Request body rate** ([`Limits::body_timeout`] and [`Limits::body_min_rate`], default
//!   10 s and 1,024 bytes per second): a request body must have arrived within the timeout
//!   plus one second per `body_min_rate` bytes received, counted from the end of the head
//!   ([`body_progress`], on the pass-through and the runtime's own API alike). Beyond it the
//!   request fails with `408 request_timeout` (or, when the answer has started, the
//!   connection is closed), and the upstream connection of a pass-through request is
//!   dropped.
//! - **Connection limit** ([`Limits::max_connections`]): each connection being served holds
//!   a slot of one process-wide semaphore until it closes. When all are taken, each serving
//!   thread accepts one more connection and holds it, unread, until a slot frees; further
//!   connections wait in the kernel's accept queue (the listen backlog, `crate::listen`), and
//!   beyond the backlog the kernel drops their SYNs (clients retry). So at most
//!   `max_connections` plus one per serving thread are open.
//!
//! Memory: an idle connection holds no read buffer (it waits for readability, and a head
//! buffer is allocated when bytes arrive), a 1,460-byte write buffer (one MSS, as Pingora's
//! default: a response's head and a small body leave in one `write`) and its socket and task.
//!
//! HTTP/1.1 only (the runtime does not offer h2c to clients).
//!
//! **Pipelining** (a client sending request N+1 before reading answer N) is served in order
//! (issue 15, item 6): when the bytes read for a head go past the end of its request (a
//! bodiless request, or a `Content-Length` body that arrived whole), Pingora gets only that
//! request's bytes and the rest is carried to this loop's next head read
//! ([`pipelined_split`]), which parses it before reading the socket again, under the same
//! deadlines. Pingora's own pipelining support (`set_pipelining_enabled`) stays off: it keeps
//! the bytes it read past a request in a private field that this loop cannot see. When the
//! extra bytes cannot be split off here (a chunked body, or a body still arriving), Pingora
//! finds them past the body, answers the request and closes the connection, so the client
//! sees the close and retries (RFC 9112 §9.3.2) instead of getting a wrong answer.

use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::HttpServerApp;
use pingora::protocols::http::ServerSession;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use pingora::proxy::{HttpProxy, Session};
use pingora::{Error, ErrorType, Result};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

use crate::gateway::Gateway;

/// The error code of a `408` answer: a request head or body that did not arrive in time.
pub const REQUEST_TIMEOUT: &str = "request_timeout";

/// Default of [`Limits::header_timeout`].
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`Limits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`Limits::body_min_rate`], in bytes per second.
pub const DEFAULT_BODY_MIN_RATE: u64 = 1024;
/// The most connections the default [`Limits::max_connections`] allows.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// File descriptors kept out of the default connection limit (listening sockets, the audit
/// log, catalog fetches, logs).
const RESERVED_FDS: u64 = 256;

/// A request head larger than this is handed to Pingora as it is, which refuses it with 400
/// (Pingora's own limit, `MAX_HEADER_SIZE`).
const MAX_HEAD: usize = 1_048_575;
/// The head buffer's first allocation (Pingora's `INIT_HEADER_BUF_SIZE`).
const HEAD_BUF: usize = 4096;
/// One MSS: a response's head and a small body leave in one `write`.
const WRITE_BUF: usize = 1460;
/// How long the 408 answer may take to write before the connection is just closed.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The connection deadlines and limit (see the module docs).
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub body_min_rate: u64,
    pub max_connections: usize,
}

impl Limits {
    /// The connection limit when none is given: [`DEFAULT_MAX_CONNECTIONS`], or fewer when
    /// the open-file limit (raised to its hard limit first, see [`raise_fd_limit`]) cannot
    /// hold two descriptors per connection (a proxied request also holds an upstream one).
    pub fn default_max_connections(fd_limit: u64) -> usize {
        let by_fds = fd_limit.saturating_sub(RESERVED_FDS) / 2;
        (by_fds as usize).clamp(1, DEFAULT_MAX_CONNECTIONS)
    }
}

static BODY_LIMITS: OnceLock<(Duration, u64)> = OnceLock::new();

/// Raise the soft open-file limit to the hard one (as Go's runtime does at start-up) and
/// return the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

/// Record the body limits for [`body_progress`] (once per process, at start-up).
pub fn set_body_limits(limits: &Limits) {
    let _ = BODY_LIMITS.set((limits.body_timeout, limits.body_min_rate.max(1)));
}

fn body_limits() -> (Duration, u64) {
    *BODY_LIMITS.get_or_init(|| (DEFAULT_BODY_TIMEOUT, DEFAULT_BODY_MIN_RATE))
}

/// The request body's progress check, after each chunk read (and before the first one):
/// the body may take [`Limits::body_timeout`] plus one second per [`Limits::body_min_rate`]
/// bytes read so far, counted from `started` (the end of the head). Past that, a `408`
/// error; otherwise the next read may wait until that deadline at most (Pingora's downstream
/// read timeout), so a stalled body is cut without another chunk arriving.
pub fn body_progress(session: &mut Session, started: std::time::Instant) -> Result<()> {
    let (timeout, rate) = body_limits();
    let read = session.body_bytes_read() as u64;
    let allowed = timeout + Duration::from_millis(read.saturating_mul(1000) / rate);
    let elapsed = started.elapsed();
    if elapsed >= allowed {
        return Error::e_explain(
            ErrorType::HTTPStatus(408),
            format!(
                "the request body arrived too slowly ({read} bytes in {} ms; allowed: {} s plus 1 s per {rate} bytes)",
                elapsed.as_millis(),
                timeout.as_secs()
            ),
        );
    }
    session.set_read_timeout(Some(allowed - elapsed));
    Ok(())
}

/// Return this thread's freed memory to the OS.
///
/// Why: mimalloc (the runtime's allocator, `main.rs`) hands pages that became free back to
/// the OS after a delay (1 s), but only while the thread does allocator work that looks at
/// them; a serving thread whose connections closed kept their memory indefinitely, also
/// under later traffic (measured with `bench/idle-connections.sh`: 2,000 idle connections
/// closed, 0% of their growth returned, with 200 requests after). Called on every serving
/// thread's heartbeat (once a second, `crate::server`), it walks the thread's heap and
/// purges what has been free for longer than the delay: off the request path, and the
/// delay keeps pages that are reused at once from being purged and faulted in again.
#[allow(unsafe_code)]
pub fn return_freed_memory() {
    // SAFETY: `mi_collect` has no preconditions; it collects the calling thread's heap.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// What one serving thread needs to run its connections.
pub struct Serving {
    pub proxy: Arc<HttpProxy<Gateway>>,
    pub limits: Arc<Limits>,
    /// Process-wide: one permit per open client connection.
    pub slots: Arc<Semaphore>,
    /// This thread's shutdown signal (Pingora's `ShutdownWatch`): stop accepting, close idle
    /// connections, finish requests in progress without keep-alive.
    pub shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving")
            .field("limits", &self.limits)
            .field("free_slots", &self.slots.available_permits())
            .finish_non_exhaustive()
    }
}

/// Accept connections on `listener` until shutdown, each served on this thread.
pub async fn accept_loop(serving: Serving, listener: std::net::TcpListener) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the listening socket");
            return;
        }
    };
    let serving = Arc::new(serving);
    let mut shutdown = serving.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors: accept() fails at once until one is freed.
                let emfile = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                tracing::warn!(error = %e, "accept failed");
                if emfile {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                continue;
            }
        };
        // The slot is taken after accept, not before: with one listening socket per thread, a
        // thread holding a free slot while its own queue is empty would keep it from a
        // thread whose queue is not. At the limit, each thread holds one accepted connection
        // (unread) until a slot frees; the others wait in the kernel's queue.
        let permit = match Arc::clone(&serving.slots).try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                tracing::warn!(
                    max_connections = serving.limits.max_connections,
                    "connection limit reached: new connections wait until one closes"
                );
                tokio::select! {
                    p = Arc::clone(&serving.slots).acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    _ = shutdown.wait_for(|s| *s) => break,
                }
            }
        };
        tokio::spawn(connection(Arc::clone(&serving), tcp, peer, permit));
    }
    serving.proxy.http_cleanup().await;
}

/// What reading a request head came to.
enum Head {
    /// A complete head (and maybe the start of its body).
    Ready(BytesMut),
    /// Closed, idle past the timeout, or shutting down: close without an answer.
    Closed,
    /// Part of a head arrived, not all of it before the deadline: answer 408.
    TimedOut,
}

async fn connection(
    serving: Arc<Serving>,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let accepted = Instant::now();
    let _ = tcp.set_nodelay(true);
    let mut conn = Box::new(Downstream::new(tcp, peer));
    let mut shutdown = serving.shutdown.clone();
    let limits = &serving.limits;
    let mut first = true;
    let mut settings = None;
    // Bytes of pipelined requests read with an earlier head (see the module docs).
    let mut carry = BytesMut::new();
    loop {
        let head = if first {
            read_head(
                &mut conn,
                accepted + limits.header_timeout,
                None,
                &mut shutdown,
                carry,
            )
            .await
        } else {
            let idle_until = Instant::now() + limits.idle_timeout;
            read_head(
                &mut conn,
                idle_until,
                Some(limits.header_timeout),
                &mut shutdown,
                carry,
            )
            .await
        };
        let mut head = match head {
            Head::Ready(h) => h,
            Head::Closed => return,
            Head::TimedOut => {
                answer_timeout(&mut conn, limits.header_timeout).await;
                return;
            }
        };
        let mut session = ServerSession::new_http1(conn);
        match settings.take() {
            Some(s) => pingora::apps::HttpPersistentSettings::apply_to_session(s, &mut session),
            None => session.set_keepalive_reuses_remaining(
                serving
                    .proxy
                    .server_options()
                    .and_then(|o| o.keepalive_request_limit),
            ),
        }
        // Keep-alive on unless shutting down; the idle time between requests is ours.
        let closing = *shutdown.borrow();
        session.set_keepalive(if closing {
            None
        } else {
            Some(limits.idle_timeout.as_secs().max(1))
        });
        // The first body read may wait this long; `body_progress` shortens it as the body
        // arrives.
        session.set_read_timeout(Some(body_limits().0));
        carry = pipelined_split(&mut head);
        session.set_pipelined_prefix(head);
        let reused = serving.proxy.process_new_http(session, &shutdown).await;
        let Some(reused) = reused else { return };
        let (stream, s) = reused.consume();
        conn = match stream.into_any().downcast::<Downstream>() {
            Ok(c) => c,
            Err(_) => return,
        };
        settings = s;
        first = false;
    }
}

/// Read a request head: wait for its first byte until `wait_until`, then, when
/// `header_timeout` is given, for the rest until that long after the first byte (else until
/// `wait_until` too).
async fn read_head(
    conn: &mut Downstream,
    wait_until: Instant,
    header_timeout: Option<Duration>,
    shutdown: &mut watch::Receiver<bool>,
    carried: BytesMut,
) -> Head {
    let tcp = conn.io.get_mut();
    let mut buf = carried;
    let mut deadline = wait_until;
    let mut scanned = 0;
    if !buf.is_empty() {
        // A pipelined request: its head may be here whole; its deadline runs from now.
        if head_end(&buf, &mut scanned).is_some() || buf.len() > MAX_HEAD {
            return Head::Ready(buf);
        }
        if let Some(t) = header_timeout {
            deadline = Instant::now() + t;
        }
    }
    loop {
        let ready = tokio::select! {
            biased;
            r = tokio::time::timeout_at(deadline, tcp.readable()) => r,
            _ = shutdown.wait_for(|s| *s) => return Head::Closed,
        };
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Head::Closed,
            Err(_) if buf.is_empty() => return Head::Closed,
            Err(_) => return Head::TimedOut,
        }
        if buf.capacity() == buf.len() {
            buf.reserve(if buf.is_empty() { HEAD_BUF } else { buf.len() });
        }
        // Read through `poll_read`, not `try_read_buf`: a short read there tells tokio that
        // the socket is drained, so the next `readable()` waits for the kernel instead of
        // answering from stale readiness with a `recv` that fails (one wasted system call
        // per keep-alive request, measured with `strace -c`). Readable, so no waiting here; a
        // stale readiness gives `Pending` (and clears it), and the loop waits again.
        let read = {
            let read = tcp.read_buf(&mut buf);
            let mut read = std::pin::pin!(read);
            match read
                .as_mut()
                .poll(&mut Context::from_waker(std::task::Waker::noop()))
            {
                Poll::Ready(r) => r,
                Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
            }
        };
        match read {
            Ok(0) => return Head::Closed,
            Ok(n) => {
                if n == buf.len()
                    && let Some(t) = header_timeout
                {
                    deadline = Instant::now() + t;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(_) => return Head::Closed,
        }
        if head_end(&buf, &mut scanned).is_some() || buf.len() > MAX_HEAD {
            return Head::Ready(buf);
        }
    }
}

/// Where the request head in `buf` ends (just past its blank line), if it does. Empty lines
/// before the request line are skipped (RFC 9112 §2.2); lines may end in CRLF or LF, as
/// Pingora's parser accepts. `from` carries the scan position across calls, so a head that
/// arrives in pieces is scanned once.
fn head_end(buf: &[u8], from: &mut usize) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut i = (*from).max(start);
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            (None, _) | (Some(b'\r'), None) => {
                *from = nl;
                return None;
            }
            _ => i = nl + 1,
        }
    }
    *from = buf.len();
    None
}

/// Split off, and return, the bytes in `buf` past the end of its first request, when that
/// end is known from the head alone: no `Transfer-Encoding`, at most one `Content-Length`
/// (digits), and the whole body in `buf`. Otherwise (nothing past the head, which is the usual
/// case, or an end that only the body parser can find) nothing is split off.
pub fn pipelined_split(buf: &mut BytesMut) -> BytesMut {
    let mut from = 0;
    let Some(end) = head_end(buf, &mut from) else {
        return BytesMut::new();
    };
    if buf.len() == end {
        return BytesMut::new();
    }
    let mut length: Option<usize> = None;
    for line in buf[..end].split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return BytesMut::new();
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed =
                (!value.is_empty() && value.len() <= 18 && value.iter().all(u8::is_ascii_digit))
                    .then(|| {
                        value
                            .iter()
                            .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'))
                    });
            match (length, parsed) {
                (None, Some(n)) => length = Some(n),
                _ => return BytesMut::new(),
            }
        }
    }
    match end.checked_add(length.unwrap_or(0)) {
        Some(request_end) if request_end < buf.len() => buf.split_off(request_end),
        _ => BytesMut::new(),
    }
}

/// Answer `408 request_timeout` to a head that did not arrive in time, then close.
async fn answer_timeout(conn: &mut Downstream, after: Duration) {
    let body = format!(
        "{{\"error\":{{\"code\":\"{REQUEST_TIMEOUT}\",\"message\":\"the request head was not complete within {} s\"}}}}",
        after.as_secs()
    );
    let answer = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
        conn.io.write_all(answer.as_bytes()).await?;
        conn.io.flush().await?;
        conn.io.shutdown().await
    })
    .await;
    tracing::info!(peer = ?conn.digest.peer_addr.get(), "request head timed out: answered 408 and closed the connection");
}

/// A client connection as Pingora sees it: the socket, unbuffered for reads (Pingora reads
/// heads into its own buffer, bodies in 64 KiB reads), with one MSS of write buffer, and the
/// peer address for `Session::client_addr`.
#[derive(Debug)]
pub struct Downstream {
    io: BufWriter<TcpStream>,
    digest: Arc<SocketDigest>,
    established: SystemTime,
}

impl Downstream {
    fn new(tcp: TcpStream, peer: std::net::SocketAddr) -> Self {
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        let _ = digest.peer_addr.set(Some(PingoraAddr::from(peer)));
        Self {
            io: BufWriter::with_capacity(WRITE_BUF, tcp),
            digest: Arc::new(digest),
            established: SystemTime::now(),
        }
    }
}

impl AsyncRead for Downstream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Downstream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Downstream {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(&mut self.io).await;
    }
}

impl UniqueID for Downstream {
    fn id(&self) -> UniqueIDType {
        self.io.get_ref().as_raw_fd()
    }
}

impl Ssl for Downstream {}

impl GetTimingDigest for Downstream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![Some(TimingDigest {
            established_ts: self.established,
            ..Default::default()
        })]
    }
}

impl GetProxyDigest for Downstream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Downstream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(Arc::clone(&self.digest))
    }
}

#[async_trait]
impl Peek for Downstream {}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(parts: &[&[u8]]) -> Option<usize> {
        let mut buf = Vec::new();
        let mut from = 0;
        let mut found = None;
        for p in parts {
            buf.extend_from_slice(p);
            found = head_end(&buf, &mut from);
        }
        found
    }

    #[test]
    fn head_ends_at_the_first_blank_line_in_any_split() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(end(&[head]), Some(head.len() - 4));
        for cut in 1..head.len() {
            let (a, b) = head.split_at(cut);
            assert_eq!(end(&[a, b]), Some(head.len() - 4), "cut at {cut}");
        }
        assert_eq!(end(&[b"GET / HTTP/1.1\nHost: a\n\n"]), Some(24));
        assert_eq!(end(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]), None);
        // Leading empty lines are not a head.
        assert_eq!(end(&[b"\r\n\r\n\r\n"]), None);
        assert_eq!(end(&[b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"]), Some(22));
    }

    #[test]
    fn pipelined_requests_are_split_where_the_head_says_the_request_ends() {
        let split = |s: &str| {
            let mut buf = BytesMut::from(s);
            let rest = pipelined_split(&mut buf);
            (
                String::from_utf8(buf.to_vec()).unwrap(),
                String::from_utf8(rest.to_vec()).unwrap(),
            )
        };
        let get = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(split(get), (get.into(), String::new()));
        assert_eq!(
            split(&format!("{get}GET /b")),
            (get.into(), "GET /b".into())
        );
        let post = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\n";
        assert_eq!(
            split(&format!("{post}abcGET /b")),
            (format!("{post}abc"), "GET /b".into())
        );
        // The body is not all here, or its end is the body parser's to find: no split.
        assert_eq!(
            split(&format!("{post}ab")),
            (format!("{post}ab"), String::new())
        );
        let chunked = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /b";
        assert_eq!(split(chunked), (chunked.into(), String::new()));
        let two = "POST /a HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\naGET /b";
        assert_eq!(split(two), (two.into(), String::new()));
        let bad = "POST /a HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\naGET /b";
        assert_eq!(split(bad), (bad.into(), String::new()));
        // An incomplete head is not split.
        assert_eq!(
            split("GET /a HTTP/1.1\r\n"),
            ("GET /a HTTP/1.1\r\n".into(), String::new())
        );
    }

    #[test]
    fn the_default_connection_limit_leaves_two_fds_per_connection() {
        assert_eq!(Limits::default_max_connections(1024), 384);
        assert_eq!(Limits::default_max_connections(1 << 20), 10_000);
        assert_eq!(Limits::default_max_connections(10), 1);
    }
}
