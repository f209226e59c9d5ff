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
//! - The head deadline and the idle timeout are checked once a second, by the serving
//!   thread's heartbeat ([`Waiting`]): either may run up to a second over.
//! - **Connection limit** ([`Limits::max_connections`]): each connection being served holds
//!   a slot of one process-wide semaphore until it closes. When all are taken, each serving
//!   thread accepts one more connection and holds it, unread, until a slot frees; further
//!   connections wait in the kernel's accept queue (the listen backlog, `crate::server::listen`), and
//!   beyond the backlog the kernel drops their SYNs (clients retry). So at most
//!   `max_connections` plus one per serving thread are open.
//!
//! Memory: an idle connection holds no read buffer (it waits for readability, and a head
//! buffer is allocated when bytes arrive), a 1,460-byte write buffer (one MSS, as Pingora's
//! default: a response's head and a small body leave in one `write`) and its socket and task.
//!
//! **Head bounds** ([`Limits::max_header_bytes`], [`Limits::max_headers`],
//! [`Limits::max_request_line`], defaults 64 KiB, 100 fields, 16 KiB): a head over one is
//! answered `431 request_header_fields_too_large` or `414 uri_too_long` and the connection is
//! closed; a head still arriving is refused as soon as it is over, without reading the rest.
//! Checked on the complete head only (one count of its line ends), so the request path pays
//! one `memchr` pass over the head.
//!
//! **TLS** (`runtime.server.tls`, [`super::edge_tls`]): the handshake runs here, within the
//! head deadline; an HTTP/1.1 connection then runs this same loop over the TLS stream, an
//! HTTP/2 one (ALPN `h2`) goes to Pingora's h2 server (its idle timeout is the idle timeout,
//! its header list bound `max_header_bytes`). Plain connections speak HTTP/1.1 only (no h2c).
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
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// The request head (request line and header fields) in bytes: `431` beyond.
    pub max_header_bytes: usize,
    /// Header fields per request: `431` beyond.
    pub max_headers: usize,
    /// The request line in bytes: `414` beyond.
    pub max_request_line: usize,
}

/// Default of [`Limits::max_header_bytes`] (Envoy's default is 60 KiB, nginx's 32 KiB).
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default of [`Limits::max_headers`] (Envoy's and Go's `http2` default).
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default of [`Limits::max_request_line`].
pub const DEFAULT_MAX_REQUEST_LINE: usize = 16 * 1024;

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
    // At least 1 ms: Pingora's timer rounds a timeout's milliseconds and underflows on 0
    // (`pingora-timeout`'s `round_to`; a debug build panics, found under load in the tests).
    session.set_read_timeout(Some((allowed - elapsed).max(Duration::from_millis(1))));
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

/// Why a connection waiting for a request head stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fired {
    /// Its deadline passed.
    Deadline,
    /// The runtime is shutting down.
    Shutdown,
}

/// How often a serving thread's heartbeat fires (`crate::server`), and so the precision of
/// the head deadline and the idle timeout ([`Waiting`]).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The deadlines of one serving thread's connections that wait for a request head (the
/// head deadline, or the idle keep-alive timeout), counted in beats of the thread's
/// heartbeat (`crate::server`, every [`HEARTBEAT`], [`Waiting::beat`]); shutdown wakes them
/// all ([`Waiting::close_all`]).
///
/// Why not a tokio timer and a shutdown waiter per head read, as before: both register with
/// shared structures (the timer wheel, the watch channel's waiter list) on every keep-alive
/// request and deregister when the head arrives, which is nearly always: more than the path,
/// header and credential checks together (measured: `docs/execution.md`, Performance). Here a
/// head read
/// takes a slot in a vector (locked only by its own thread, so uncontended), with no clock
/// read, and gives it back. The price is precision: a wait of `d` ends between `d` and one
/// beat after it, which is well inside what the deadlines are for (seconds, against clients
/// that hold connections for minutes).
#[derive(Debug, Default)]
pub struct Waiting {
    inner: std::sync::Mutex<Slots>,
}

#[derive(Debug, Default)]
struct Slots {
    entries: Vec<Entry>,
    free: Vec<usize>,
    /// Beats so far.
    beats: u64,
    closing: bool,
}

#[derive(Debug)]
struct Entry {
    /// The beat at which the wait ends.
    due: u64,
    waker: Option<std::task::Waker>,
    fired: Option<Fired>,
}

impl Slots {
    /// The beat by which a wait of `d` from now has passed: a wait begins somewhere inside
    /// the current beat, so one more.
    fn due(&self, d: Duration) -> u64 {
        let beats = d.as_millis().div_ceil(HEARTBEAT.as_millis().max(1));
        self.beats
            .saturating_add(u64::try_from(beats).unwrap_or(u64::MAX))
            .saturating_add(1)
    }
}

impl Waiting {
    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        // A panic while the lock is held leaves nothing half-done that matters here.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wait for `d` at most; `None` when shutting down.
    fn register(&self, d: Duration) -> Option<Wait<'_>> {
        let mut slots = self.slots();
        if slots.closing {
            return None;
        }
        let entry = Entry {
            due: slots.due(d),
            waker: None,
            fired: None,
        };
        let index = match slots.free.pop() {
            Some(i) => {
                slots.entries[i] = entry;
                i
            }
            None => {
                slots.entries.push(entry);
                slots.entries.len() - 1
            }
        };
        Some(Wait {
            waiting: self,
            index,
        })
    }

    /// One heartbeat: end the waits that are due.
    pub fn beat(&self) {
        let beats = {
            let mut slots = self.slots();
            slots.beats += 1;
            slots.beats
        };
        self.fire(|e| e.due <= beats, Fired::Deadline);
    }

    /// Shutting down: end every wait, and refuse new ones.
    pub fn close_all(&self) {
        self.slots().closing = true;
        self.fire(|_| true, Fired::Shutdown);
    }

    /// How many connections wait for a request head.
    pub fn len(&self) -> usize {
        let slots = self.slots();
        slots.entries.len() - slots.free.len()
    }

    /// Whether no connection waits for a request head.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn fire(&self, due: impl Fn(&Entry) -> bool, why: Fired) {
        let mut wake = Vec::new();
        {
            let mut slots = self.slots();
            // Freed slots are marked fired (see `Wait::drop`), so they are skipped.
            for e in slots.entries.iter_mut().filter(|e| e.fired.is_none()) {
                if due(e) {
                    e.fired = Some(why);
                    wake.extend(e.waker.take());
                }
            }
        }
        // Woken outside the lock: a waker may run code that registers.
        wake.into_iter().for_each(std::task::Waker::wake);
    }
}

/// One connection's wait in [`Waiting`]; gives its slot back when dropped.
struct Wait<'a> {
    waiting: &'a Waiting,
    index: usize,
}

impl Wait<'_> {
    /// Whether the wait ended; if not, wake `cx` when it does.
    fn poll_fired(&self, cx: &Context<'_>) -> Option<Fired> {
        let mut slots = self.waiting.slots();
        let entry = &mut slots.entries[self.index];
        if entry.fired.is_none() {
            match &entry.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => entry.waker = Some(cx.waker().clone()),
            }
        }
        entry.fired
    }

    /// Wait for `d` from now instead (a head that started arriving: its own deadline).
    fn restart(&self, d: Duration) {
        let mut slots = self.waiting.slots();
        let due = slots.due(d);
        let entry = &mut slots.entries[self.index];
        if entry.fired == Some(Fired::Deadline) {
            entry.fired = None;
        }
        entry.due = due;
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut slots = self.waiting.slots();
        let entry = &mut slots.entries[self.index];
        entry.waker = None;
        // A freed slot must not look due to `fire` (it would count as a fired wait).
        entry.fired = Some(Fired::Shutdown);
        slots.free.push(self.index);
    }
}

/// What one serving thread needs to run its connections.
pub struct Serving {
    pub proxy: Arc<HttpProxy<Gateway>>,
    pub limits: Arc<Limits>,
    /// Process-wide: one permit per open client connection.
    pub slots: Arc<Semaphore>,
    /// TLS on the listener (`runtime.server.tls`), or plain HTTP.
    pub tls: Option<Arc<super::edge_tls::EdgeTls>>,
    /// This thread's shutdown signal (Pingora's `ShutdownWatch`): stop accepting, close idle
    /// connections, finish requests in progress without keep-alive.
    pub shutdown: watch::Receiver<bool>,
    /// The head deadlines of this thread's connections, checked by its heartbeat.
    pub waiting: Arc<Waiting>,
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
    /// The head is over a bound of [`Limits`]: answer this (a `431` or `414`) and close.
    TooLarge(Vec<u8>),
}

async fn connection(
    serving: Arc<Serving>,
    tcp: TcpStream,
    peer: std::net::SocketAddr,
    _permit: OwnedSemaphorePermit,
) {
    let _ = tcp.set_nodelay(true);
    let limits = &serving.limits;
    let mut conn = match &serving.tls {
        None => Box::new(Downstream::new(Io::Plain(tcp), peer)),
        Some(tls) => {
            let fd = tcp.as_raw_fd();
            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
            // The handshake counts against the head deadline.
            let stream = match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    crate::metrics::tls_handshake_failed();
                    tracing::info!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    crate::metrics::tls_handshake_failed();
                    tracing::info!(peer = %peer, "TLS handshake not done within the head deadline: closed");
                    return;
                }
            };
            let (digest, registered) = super::edge_tls::digest(stream.get_ref().1);
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let mut conn = Box::new(Downstream::new_at(Io::Tls(Box::new(stream)), peer, fd));
            conn.tls = Some(TlsState {
                digest,
                _registered: registered,
                h2,
            });
            if h2 {
                // HTTP/2: Pingora's h2 server runs the connection (its streams, flow control,
                // idle timeout); nothing on it is an HTTP/1 answer to replace.
                *conn.received.get_mut() = true;
                use pingora::apps::ServerApp;
                let _ = serving.proxy.process_new(conn, &serving.shutdown).await;
                return;
            }
            conn
        }
    };
    let shutdown = &serving.shutdown;
    let mut first = true;
    let mut settings = None;
    // Bytes of pipelined requests read with an earlier head (see the module docs).
    let mut carry = BytesMut::new();
    loop {
        let head = if first {
            // Right after the accept: the head deadline counts from there.
            read_head(
                &mut conn,
                limits.header_timeout,
                None,
                &serving.waiting,
                carry,
                limits,
            )
            .await
        } else {
            read_head(
                &mut conn,
                limits.idle_timeout,
                Some(limits.header_timeout),
                &serving.waiting,
                carry,
                limits,
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
            Head::TooLarge(answer) => {
                answer_and_close(&mut conn, &answer).await;
                return;
            }
        };
        *conn.received.get_mut() = false;
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
        let reused = serving.proxy.process_new_http(session, shutdown).await;
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

/// Read a request head: wait for its first byte for `wait` at most, then, when
/// `header_timeout` is given, for the rest until that long after the first byte (else within
/// `wait` too).
async fn read_head(
    conn: &mut Downstream,
    wait: Duration,
    header_timeout: Option<Duration>,
    waiting: &Waiting,
    carried: BytesMut,
    limits: &Limits,
) -> Head {
    let tcp = conn.io.get_mut();
    let mut buf = carried;
    let mut scanned = 0;
    let mut wait = wait;
    if !buf.is_empty() {
        // A pipelined request: its head may be here whole; its deadline runs from now.
        if let Some(done) = head_done(&buf, &mut scanned, limits) {
            return settled(buf, done);
        }
        if let Some(t) = header_timeout {
            wait = t;
        }
    }
    let Some(wait) = waiting.register(wait) else {
        return Head::Closed;
    };
    loop {
        let read = std::future::poll_fn(|cx| {
            if buf.capacity() == buf.len() {
                buf.reserve(if buf.is_empty() { HEAD_BUF } else { buf.len() });
            }
            // Through `poll_read` (`read_buf`), not `try_read_buf`: a short read there tells
            // tokio that the socket is drained, so the next poll waits for the kernel instead
            // of answering from stale readiness with a `recv` that fails (one wasted system
            // call per keep-alive request, measured with `strace -c`).
            let read = std::pin::pin!(tcp.read_buf(&mut buf));
            match read.poll(cx) {
                Poll::Ready(r) => Poll::Ready(Ok(r)),
                Poll::Pending => match wait.poll_fired(cx) {
                    Some(fired) => Poll::Ready(Err(fired)),
                    None => Poll::Pending,
                },
            }
        })
        .await;
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(Fired::Shutdown) => return Head::Closed,
            Err(Fired::Deadline) if buf.is_empty() => return Head::Closed,
            Err(Fired::Deadline) => return Head::TimedOut,
            Ok(Ok(n)) => {
                if n == buf.len()
                    && let Some(t) = header_timeout
                {
                    wait.restart(t);
                }
            }
        }
        if let Some(done) = head_done(&buf, &mut scanned, limits) {
            return settled(buf, done);
        }
    }
}

/// Whether the bytes in `buf` settle the head: `Ok` when it is complete (and within the
/// bounds, or past Pingora's own limit, which Pingora refuses), `Err` when it is over a bound
/// already; `None` while more is needed.
fn head_done(buf: &[u8], scanned: &mut usize, limits: &Limits) -> Option<Result<(), Refused>> {
    match head_end(buf, scanned) {
        Some(end) => Some(check_head(&buf[..end], limits).map_or(Ok(()), Err)),
        None => match check_partial_head(buf, limits) {
            Some(r) => Some(Err(r)),
            None => (buf.len() > MAX_HEAD).then_some(Ok(())),
        },
    }
}

/// [`head_done`] as the [`Head`] to return.
fn settled(buf: BytesMut, done: Result<(), Refused>) -> Head {
    match done {
        Ok(()) => Head::Ready(buf),
        Err(r) => Head::TooLarge(too_large_answer(r)),
    }
}

/// Which bound of [`Limits`] a head is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// `max_header_bytes` or `max_headers`: 431.
    Headers,
    /// `max_request_line`: 414.
    RequestLine,
}

/// A complete head (from its first byte to its blank line) against the bounds.
fn check_head(head: &[u8], limits: &Limits) -> Option<Refused> {
    let start = head
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let head = &head[start..];
    let line = memchr::memchr(b'\n', head).unwrap_or(head.len());
    if line > limits.max_request_line {
        return Some(Refused::RequestLine);
    }
    if head.len() > limits.max_header_bytes {
        return Some(Refused::Headers);
    }
    // A header field line takes at least 3 bytes (`a:` and its line end), the request line at
    // least 2 and the blank line 1: a head of at most 3 × max + 3 bytes cannot hold more than
    // `max` fields, so it is not counted (nearly every head; the count was a third of the
    // bounds' cost per request, measured with callgrind).
    if head.len() <= limits.max_headers.saturating_mul(3).saturating_add(3) {
        return None;
    }
    // Lines less the request line and the blank line: the header fields.
    let fields = memchr::memchr_iter(b'\n', head).count().saturating_sub(2);
    (fields > limits.max_headers).then_some(Refused::Headers)
}

/// An incomplete head that is over a bound already (so no more of it is read).
fn check_partial_head(buf: &[u8], limits: &Limits) -> Option<Refused> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let head = &buf[start..];
    match memchr::memchr(b'\n', head) {
        None if head.len() > limits.max_request_line => Some(Refused::RequestLine),
        Some(line) if line > limits.max_request_line => Some(Refused::RequestLine),
        _ if head.len() > limits.max_header_bytes => Some(Refused::Headers),
        _ => None,
    }
}

/// The answer to a head over a bound.
fn too_large_answer(why: Refused) -> Vec<u8> {
    use open_cli_config::wire::codes;
    match why {
        Refused::Headers => error_answer(
            "431 Request Header Fields Too Large",
            codes::HEADERS_TOO_LARGE,
            "the request header fields are too large or too many (runtime.server.limits.maxHeaderBytes, maxHeaders)",
        ),
        Refused::RequestLine => error_answer(
            "414 URI Too Long",
            codes::URI_TOO_LONG,
            "the request line is too long (runtime.server.limits.maxRequestLineBytes)",
        ),
    }
}

/// Write `answer`, then close (within [`ANSWER_TIMEOUT`]).
async fn answer_and_close(conn: &mut Downstream, answer: &[u8]) {
    let status = std::str::from_utf8(answer.get(9..12).unwrap_or_default()).unwrap_or("");
    crate::metrics::head_refused(status);
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
        conn.io.write_all(answer).await?;
        conn.io.flush().await?;
        conn.io.shutdown().await
    })
    .await;
    tracing::info!(peer = ?conn.digest.peer_addr.get(), status, "request head over a bound of runtime.server.limits: answered and closed the connection");
}

/// Where the request head in `buf` ends (just past its blank line), if it does. Empty lines
/// before the request line are skipped (RFC 9112 §2.2); lines may end in CRLF or LF, as
/// Pingora's parser accepts. `from` carries the scan position across calls, so a head that
/// arrives in pieces is scanned once.
fn head_end(buf: &[u8], from: &mut usize) -> Option<usize> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let mut i = (*from).max(start);
    // One `memchr` per line (a single two-pattern `memmem` search measured slower on heads
    // of a few hundred bytes: its set-up costs more than the lines).
    while let Some(p) = memchr::memchr(b'\n', &buf[i..]) {
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
    let answer = error_answer(
        "408 Request Timeout",
        REQUEST_TIMEOUT,
        &format!(
            "the request head was not complete within {} s",
            after.as_secs()
        ),
    );
    let _ = tokio::time::timeout(ANSWER_TIMEOUT, async {
        conn.io.write_all(&answer).await?;
        conn.io.flush().await?;
        conn.io.shutdown().await
    })
    .await;
    tracing::info!(peer = ?conn.digest.peer_addr.get(), "request head timed out: answered 408 and closed the connection");
}

/// A complete `{"error": …}` answer that closes the connection (`message` must not need JSON
/// escaping).
fn error_answer(status: &str, code: &str, message: &str) -> Vec<u8> {
    let body = format!("{{\"error\":{{\"code\":\"{code}\",\"message\":\"{message}\"}}}}");
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The runtime's answer in place of one Pingora writes for a request the gateway never
/// received (see [`Downstream::mark_received`]): a head Pingora's parser refuses (bad syntax,
/// a `Content-Length` list such as `5, 6`, a repeated `Host`, …) gets Pingora's bare `400`
/// (with `Server: Pingora`, no body), and `CONNECT` its `405`. `None` for anything that is
/// not such an answer (only 4xx and 5xx status lines are replaced).
fn refusal(written: &[u8]) -> Option<(u16, Vec<u8>)> {
    let rest = written
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| written.strip_prefix(b"HTTP/1.0 "))?;
    let status = rest.get(..3)?;
    if !status.iter().all(u8::is_ascii_digit) || !matches!(status[0], b'4' | b'5') {
        return None;
    }
    let n = status
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    use open_cli_config::wire::codes;
    let (code, message) = match n {
        400 => (
            codes::INVALID_REQUEST,
            "the request head is malformed or ambiguous (RFC 9112): check the request line, the Host field and the message framing fields",
        ),
        405 => (codes::METHOD_NOT_ALLOWED, "CONNECT is not supported"),
        n if n < 500 => (
            codes::INVALID_REQUEST,
            "the request was refused before it reached the runtime",
        ),
        _ => (
            codes::INTERNAL,
            "the request failed before it reached the runtime",
        ),
    };
    let reason = http::StatusCode::from_u16(n)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let line = format!("{n} {reason}");
    Some((n, error_answer(&line, code, message)))
}

/// A client connection as Pingora sees it: the socket, unbuffered for reads (Pingora reads
/// heads into its own buffer, bodies in 64 KiB reads), with one MSS of write buffer, and the
/// peer address for `Session::client_addr`.
#[derive(Debug)]
pub struct Downstream {
    io: BufWriter<Io>,
    digest: Arc<SocketDigest>,
    established: SystemTime,
    /// Whether the gateway received the request being served ([`Downstream::mark_received`]);
    /// reset before each request.
    received: AtomicBool,
    /// What the TLS handshake established, on a TLS listener.
    tls: Option<TlsState>,
}

/// A client connection's transport: plain TCP, or TLS over it (`runtime.server.tls`).
#[derive(Debug)]
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A TLS connection's digest (version, cipher, client certificate) as Pingora shows it to
/// the gateway, and its entry in the client identity table ([`super::edge_tls`]).
#[derive(Debug)]
struct TlsState {
    digest: Arc<pingora::protocols::tls::SslDigest>,
    _registered: Option<super::edge_tls::Registered>,
    h2: bool,
}

impl Downstream {
    fn new(io: Io, peer: std::net::SocketAddr) -> Self {
        let fd = match &io {
            Io::Plain(tcp) => tcp.as_raw_fd(),
            Io::Tls(tls) => tls.get_ref().0.as_raw_fd(),
        };
        Self::new_at(io, peer, fd)
    }

    fn new_at(io: Io, peer: std::net::SocketAddr, fd: std::os::fd::RawFd) -> Self {
        let digest = SocketDigest::from_raw_fd(fd);
        let _ = digest.peer_addr.set(Some(PingoraAddr::from(peer)));
        Self {
            io: BufWriter::with_capacity(WRITE_BUF, io),
            digest: Arc::new(digest),
            established: SystemTime::now(),
            received: AtomicBool::new(false),
            tls: None,
        }
    }

    /// The gateway received this session's request (called by its first hook,
    /// `early_request_filter`, for each one).
    ///
    /// Why: Pingora answers some requests itself before any of the gateway's code runs: a
    /// head its parser refuses gets a bare `400` with a `Server: Pingora` banner, `CONNECT`
    /// a `405` (issue 15, item 6). Until this is called for a request, the connection
    /// replaces such an answer with the runtime's own `{"error": …}` one as it
    /// is written; answers to requests the gateway received pass untouched, whatever they
    /// carry (an upstream's `Server` field included).
    pub fn mark_received(session: &Session) {
        let downstream = session
            .as_http1()
            .map(|h1| h1.stream().as_ref().as_any())
            .and_then(|any| any.downcast_ref::<Downstream>());
        if let Some(d) = downstream {
            d.received.store(true, Ordering::Relaxed);
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
        if !*self.received.get_mut()
            && let Some((status, answer)) = refusal(buf)
        {
            *self.received.get_mut() = true;
            // Pingora's own answer to a request the gateway never saw: ours instead. With the
            // write buffer empty (nothing else was written for this request), the buffer
            // takes it whole at once; otherwise Pingora's goes out as it is.
            if self.io.buffer().is_empty() && answer.len() < WRITE_BUF {
                return match Pin::new(&mut self.io).poll_write(cx, &answer) {
                    Poll::Ready(Ok(_)) => {
                        tracing::info!(peer = ?self.digest.peer_addr.get(), status, "request refused before the gateway (a malformed head, or CONNECT): answered with the runtime's error, closing the connection");
                        Poll::Ready(Ok(buf.len()))
                    }
                    other => other,
                };
            }
        }
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
        match self.io.get_ref() {
            Io::Plain(tcp) => tcp.as_raw_fd(),
            Io::Tls(tls) => tls.get_ref().0.as_raw_fd(),
        }
    }
}

impl Ssl for Downstream {
    fn get_ssl_digest(&self) -> Option<Arc<pingora::protocols::tls::SslDigest>> {
        self.tls.as_ref().map(|t| Arc::clone(&t.digest))
    }

    fn selected_alpn_proto(&self) -> Option<pingora::protocols::ALPN> {
        use pingora::protocols::ALPN;
        self.tls
            .as_ref()
            .map(|t| if t.h2 { ALPN::H2 } else { ALPN::H1 })
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(t) => Pin::new(t).poll_read(cx, buf),
            Io::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(t) => Pin::new(t).poll_write(cx, buf),
            Io::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(t) => Pin::new(t).poll_flush(cx),
            Io::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(t) => Pin::new(t).poll_shutdown(cx),
            Io::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(t) => Pin::new(t).poll_write_vectored(cx, bufs),
            Io::Tls(t) => Pin::new(t.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Plain(t) => t.is_write_vectored(),
            Io::Tls(t) => t.is_write_vectored(),
        }
    }
}

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
        // The first blank line ends the head, whichever line ending it has.
        let mixed = b"GET / HTTP/1.1\nA: b\n\nC: d\r\n\r\n";
        assert_eq!(end(&[mixed]), Some(21));
        for cut in 1..mixed.len() {
            let (a, b) = mixed.split_at(cut);
            assert_eq!(end(&[a, b]), Some(21), "cut at {cut}");
        }
        let mixed = b"GET / HTTP/1.1\r\nA: b\r\n\r\nC: d\n\n";
        assert_eq!(end(&[mixed]), Some(24));
        // Byte by byte.
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let bytes: Vec<&[u8]> = head.chunks(1).collect();
        assert_eq!(end(&bytes), Some(head.len()));
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

    struct Count(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn waits_end_at_their_deadline_or_at_shutdown_and_give_their_slot_back() {
        let waiting = Waiting::default();
        let count = Arc::new(Count(0.into()));
        let waker = std::task::Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&waker);
        let woken = || count.0.load(std::sync::atomic::Ordering::SeqCst);
        let beats = |n| (0..n).for_each(|_| waiting.beat());

        // A wait of 2 s begins inside a beat: it ends at the third beat, never before 2 s.
        let a = waiting.register(Duration::from_secs(2)).unwrap();
        let b = waiting.register(Duration::from_millis(4_500)).unwrap();
        assert_eq!((a.poll_fired(&cx), b.poll_fired(&cx)), (None, None));
        beats(2);
        assert_eq!((a.poll_fired(&cx), woken()), (None, 0));
        beats(1);
        assert_eq!((a.poll_fired(&cx), woken()), (Some(Fired::Deadline), 1));
        assert_eq!(b.poll_fired(&cx), None);
        // A head that started arriving gets its own deadline, from now.
        b.restart(Duration::from_secs(3));
        beats(3);
        assert_eq!(b.poll_fired(&cx), None);
        drop(a);
        assert_eq!(waiting.len(), 1);
        // The freed slot is reused, and a freed slot never fires.
        let c = waiting.register(Duration::from_secs(1)).unwrap();
        assert_eq!((waiting.len(), c.index), (2, 0));
        drop(c);
        beats(1);
        assert_eq!((b.poll_fired(&cx), woken()), (Some(Fired::Deadline), 2));

        let d = waiting.register(Duration::from_secs(60)).unwrap();
        assert_eq!(d.poll_fired(&cx), None);
        waiting.close_all();
        assert_eq!((d.poll_fired(&cx), woken()), (Some(Fired::Shutdown), 3));
        assert!(waiting.register(Duration::from_secs(60)).is_none());
        drop((b, d));
        assert!(waiting.is_empty());
    }

    #[test]
    fn only_error_answers_are_replaced_and_keep_their_status() {
        let pingora_400 =
            b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nContent-Length: 0\r\n\r\n";
        let (status, answer) = refusal(pingora_400).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert_eq!(status, 400);
        assert!(
            answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{answer}"
        );
        assert!(!answer.to_ascii_lowercase().contains("server:"), "{answer}");
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request");
        let length = format!("content-length: {}\r\n", body.to_string().len());
        assert!(answer.contains(&length), "{answer}");
        let (_, answer) = refusal(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n").unwrap();
        assert!(
            String::from_utf8(answer)
                .unwrap()
                .contains("method_not_allowed")
        );
        let (_, answer) = refusal(b"HTTP/1.1 431 X\r\n\r\n").unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let (_, answer) = refusal(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").unwrap();
        assert!(answer.starts_with(b"HTTP/1.1 502 Bad Gateway\r\n"));
        for other in [
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 30",
            b"{\"error\": 400}",
            b"",
        ] {
            assert!(refusal(other).is_none(), "{other:?}");
        }
    }

    #[test]
    fn heads_are_held_to_the_bounds_whole_or_in_part() {
        let limits = Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            body_min_rate: DEFAULT_BODY_MIN_RATE,
            max_connections: 1,
            max_header_bytes: 100,
            max_headers: 2,
            max_request_line: 30,
        };
        let done = |head: &str| head_done(head.as_bytes(), &mut 0, &limits);
        assert_eq!(done("GET / HTTP/1.1\r\nA: b\r\nC: d\r\n\r\n"), Some(Ok(())));
        // Leading empty lines are not part of the head.
        assert_eq!(
            done("\r\n\r\nGET / HTTP/1.1\r\nA: b\r\nC: d\r\n\r\n"),
            Some(Ok(()))
        );
        assert_eq!(
            done("GET / HTTP/1.1\r\nA: b\r\nC: d\r\nE: f\r\n\r\n"),
            Some(Err(Refused::Headers))
        );
        assert_eq!(
            done("GET / HTTP/1.1\nA: b\nC: d\nE: f\n\n"),
            Some(Err(Refused::Headers))
        );
        // The shortest head with one field too many is still counted and refused.
        assert_eq!(done("x\na:\nb:\nc:\n\n"), Some(Err(Refused::Headers)));
        assert_eq!(done("x\na:\nb:\n\n"), Some(Ok(())));
        let long_field = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "b".repeat(90));
        assert_eq!(done(&long_field), Some(Err(Refused::Headers)));
        let long_line = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(30));
        assert_eq!(done(&long_line), Some(Err(Refused::RequestLine)));
        // Incomplete heads: refused once over a bound, else more is read.
        assert_eq!(done("GET / HTTP/1.1\r\nA: b"), None);
        assert_eq!(
            done(&format!("GET /{}", "a".repeat(30))),
            Some(Err(Refused::RequestLine))
        );
        assert_eq!(
            done(&format!("GET / HTTP/1.1\r\nA: {}", "b".repeat(100))),
            Some(Err(Refused::Headers))
        );
        assert_eq!(done("\r\n\r\n"), None);
    }

    #[test]
    fn the_default_connection_limit_leaves_two_fds_per_connection() {
        assert_eq!(Limits::default_max_connections(1024), 384);
        assert_eq!(Limits::default_max_connections(1 << 20), 10_000);
        assert_eq!(Limits::default_max_connections(10), 1);
    }
}
