//! Group-commit line writer shared by the audit log and the process log.
//!
//! Why: a request that wakes a writer thread for every line pays a futex wake, a context
//! switch and a `write(2)` per line (measured: about 20 µs of CPU per proxied request for the
//! audit record and the access-log line together, a fifth of the pass-through's cost). Here a
//! request appends its whole, already formatted line to a buffer under a mutex (a memcpy)
//! and wakes nobody, except the first line into an empty buffer. The writer thread then
//! *lingers* ([`LINGER`]) so that every line of that window goes out together; under load
//! that is a few hundred writes and wake-ups per second instead of one per request.
//!
//! **Lanes.** Appenders do not share one buffer: each thread appends to its own lane (one of
//! [`LANES`], assigned on its first append), so serving threads on different cores never
//! write the same mutex or buffer cache lines (with one shared buffer every audited request
//! moved the mutex's and the buffer's cache lines between cores). The writer takes every
//! lane's lines at once.
//!
//! Guarantees:
//! - **whole lines**: one [`Spool::append`] is one contiguous piece of the output; appends
//!   never interleave, and only one thread writes to the sink at a time;
//! - **order**: one thread's lines reach the sink in the order it appended them; lines of
//!   different threads within one linger window are grouped by lane (each line carries its
//!   own timestamp);
//! - **not lossy**: when a lane holds [`CAP`] bytes (a stuck disk or pipe), its appenders
//!   wait for the writer instead of dropping lines;
//! - **visibility**: [`Spool::flush`] writes everything appended before it from the calling
//!   thread and returns the sink's result (used by `GET /v1/audit/events` and at exit);
//!   dropping the last handle flushes and stops the writer;
//! - a line waits [`LINGER`] before it is handed to the sink, plus however long the writer
//!   thread waits for a core and for the write; a crash (SIGKILL, abort) loses the lines of
//!   that window, which is not a hard bound on an overloaded machine
//!   (`bench/audit-crash.sh` measures it).
//!
//! Idle, the writer sleeps on a condition variable: no timer, no polling (with
//! [`Durability::Interval`], one timed wake-up to sync what was written since the last sync).
//!
//! **Durability** ([`Durability`]): `None` leaves written lines to the kernel; `Interval(d)`
//! syncs the file (`fdatasync`) at most every `d`, and within `d` of a write; `Always` syncs
//! after every batch and writes without lingering: lines appended while a sync runs form the
//! next batch (group commit), so one sync covers many lines under load. [`Spool::append`]
//! returns a [`Ticket`], and [`Spool::durable`] waits until that line is synced, or fails if
//! the batch holding it could not be written or synced.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer collects lines before writing them.
pub const LINGER: Duration = Duration::from_millis(20);
/// Write early once a lane holds this much.
pub const HIGH_WATER: usize = 256 * 1024;
/// Appenders wait while their lane holds this much not yet written.
pub const CAP: usize = 16 * 1024 * 1024;
/// Appender lanes per spool: more than the serving threads of most deployments; threads
/// beyond share lanes (correct, only less private).
pub const LANES: usize = 8;

/// How a spool makes what it wrote durable (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    None,
    Interval(Duration),
    Always,
}

/// Where a spool's lines go, and how they are synced to stable storage.
pub trait Output: Write + Send {
    /// Make what was written durable (`fdatasync` for a file; nothing for a stream).
    fn sync(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output for std::fs::File {
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
}

impl Output for std::io::Stderr {}

/// One appended line: its lane and its number there, for [`Spool::durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    lane: usize,
    seq: u64,
}

/// Why a line may not be durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} could not write or sync its file")]
pub struct NotDurable(pub String);

/// What a spool reports as it writes (the audit log's metrics); functions, so the spool
/// stays ignorant of who counts.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    /// Pieces (lines) written by one batch.
    pub written: fn(u64),
    /// How long one sync took.
    pub synced: fn(Duration),
    /// The outcome of each write or sync.
    pub health: fn(bool),
}

/// Handle to one spool; clones share it.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    _stop: Arc<StopOnDrop>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    linger: Duration,
    durability: Durability,
    meter: Option<Meter>,
    /// Batches written or synced since the last failure... `false` once one failed, until one
    /// succeeds again.
    healthy: AtomicBool,
    /// Syncs done (for the benchmark and tests).
    syncs: AtomicU64,
    /// Wakes [`Spool::durable`] waiters after a sync or a failure.
    synced: tokio::sync::Notify,
    /// `Interval`: when the writer must sync what it wrote since the last sync (`None`: all
    /// synced). Locked after `signal` or `sink`, never the other way round.
    sync_due: Mutex<Option<Instant>>,
    lanes: Box<[Lane]>,
    closed: AtomicBool,
    /// What the writer waits for.
    signal: Mutex<Signal>,
    /// Wakes the writer (first line into an empty lane, high water, close).
    wake: Condvar,
    sink: Mutex<Sink>,
}

/// One lane: its own cache lines, written by the threads assigned to it and by the writer
/// once per batch.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Lane {
    buf: Mutex<LaneBuf>,
    /// Wakes this lane's appenders waiting for space.
    space: Condvar,
    /// The last line number of this lane known to be synced.
    durable: AtomicU64,
    /// The last line number of this lane in a batch that failed to be written or synced.
    lost: AtomicU64,
}

#[derive(Debug, Default)]
struct LaneBuf {
    bytes: Vec<u8>,
    /// Lines appended to this lane so far (the last one's number).
    seq: u64,
}

#[derive(Debug, Default)]
struct Signal {
    /// Some lane received its first line since the writer last looked.
    pending: bool,
    /// Some lane reached [`HIGH_WATER`]: write without lingering further.
    high: bool,
}

struct Sink {
    out: Box<dyn Output>,
    /// The buffers last written, one per lane, reused for the next swap (no allocation per
    /// batch).
    spares: Vec<Vec<u8>>,
    /// Per lane: the last line number written and not yet synced.
    written: Vec<u64>,
    /// Per lane: the last line number taken into the batch being written.
    taken: Vec<u64>,
    /// Something was written since the last sync.
    unsynced: bool,
    last_sync: Instant,
    /// The last write failed (reported once until a write succeeds again).
    failed: bool,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("failed", &self.failed)
            .finish()
    }
}

/// Stops and joins the writer thread when the last handle goes.
#[derive(Debug)]
struct StopOnDrop {
    inner: Arc<Inner>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        drop(lock(&self.inner.signal));
        self.inner.wake.notify_all();
        for lane in self.inner.lanes.iter() {
            drop(lock(&lane.buf));
            lane.space.notify_all();
        }
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        let _ = self.inner.write_pending();
        if self.inner.durability != Durability::None {
            let _ = self.inner.sync_now(&mut lock(&self.inner.sink));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// This thread's lane (the same for every spool).
fn lane_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static LANE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % LANES;
    }
    LANE.with(|l| *l)
}

impl Spool {
    /// Start a spool writing to `out` from a thread named `name`, never syncing.
    pub fn new(name: &str, out: Box<dyn Output>) -> std::io::Result<Self> {
        Self::with_linger(name, out, LINGER, Durability::None, None)
    }

    /// A spool that makes its lines durable as `durability` says.
    pub fn durable_as(
        name: &str,
        out: Box<dyn Output>,
        durability: Durability,
        meter: Option<Meter>,
    ) -> std::io::Result<Self> {
        // Group commit: with `Always` the sync is the batching window.
        let linger = match durability {
            Durability::Always => Duration::ZERO,
            _ => LINGER,
        };
        Self::with_linger(name, out, linger, durability, meter)
    }

    fn with_linger(
        name: &str,
        out: Box<dyn Output>,
        linger: Duration,
        durability: Durability,
        meter: Option<Meter>,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            name: name.to_string(),
            linger,
            durability,
            meter,
            healthy: AtomicBool::new(true),
            syncs: AtomicU64::new(0),
            synced: tokio::sync::Notify::new(),
            sync_due: Mutex::new(None),
            lanes: (0..LANES).map(|_| Lane::default()).collect(),
            closed: AtomicBool::new(false),
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
            sink: Mutex::new(Sink {
                out,
                spares: vec![Vec::new(); LANES],
                written: vec![0; LANES],
                taken: vec![0; LANES],
                unsynced: false,
                last_sync: Instant::now(),
                failed: false,
            }),
        });
        let worker = Arc::clone(&inner);
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || worker.run())?;
        Ok(Self {
            _stop: Arc::new(StopOnDrop {
                inner: Arc::clone(&inner),
                thread: Mutex::new(Some(thread)),
            }),
            inner,
        })
    }

    /// Append one whole piece of output (normally one line, newline included).
    pub fn append(&self, bytes: &[u8]) -> Ticket {
        let inner = &*self.inner;
        let index = lane_index();
        let lane = &inner.lanes[index];
        let mut buf = lock(&lane.buf);
        while buf.bytes.len() >= CAP && !inner.closed.load(Ordering::SeqCst) {
            buf = lane.space.wait(buf).unwrap_or_else(|e| e.into_inner());
        }
        let before = buf.bytes.len();
        buf.bytes.extend_from_slice(bytes);
        buf.seq += 1;
        let ticket = Ticket {
            lane: index,
            seq: buf.seq,
        };
        // Signal only the crossings (a `notify` is a system call even with nobody waiting).
        let was_empty = before == 0;
        let high = before < HIGH_WATER && buf.bytes.len() >= HIGH_WATER;
        drop(buf);
        if was_empty || high {
            let mut s = lock(&inner.signal);
            s.pending = true;
            s.high |= high;
            drop(s);
            inner.wake.notify_one();
        }
        ticket
    }

    /// Wait until the line of `ticket` is synced ([`Durability::Always`]: its batch's sync;
    /// `Interval`: the next timed sync); an error when its batch could not be written or
    /// synced. (With [`Durability::None`] nothing is ever synced: do not wait.)
    pub async fn durable(&self, ticket: Ticket) -> Result<(), NotDurable> {
        let lane = &self.inner.lanes[ticket.lane];
        loop {
            let synced = self.inner.synced.notified();
            tokio::pin!(synced);
            synced.as_mut().enable();
            if lane.lost.load(Ordering::Acquire) >= ticket.seq {
                return Err(NotDurable(self.inner.name.clone()));
            }
            if lane.durable.load(Ordering::Acquire) >= ticket.seq {
                return Ok(());
            }
            if self.inner.closed.load(Ordering::SeqCst) {
                return Err(NotDurable(self.inner.name.clone()));
            }
            synced.await;
        }
    }

    /// The last batch was written (and synced, as the durability asks) without an error.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// Syncs done so far.
    pub fn syncs(&self) -> u64 {
        self.inner.syncs.load(Ordering::Relaxed)
    }

    /// Write everything appended so far, from this thread; the sink's result.
    pub fn flush(&self) -> std::io::Result<()> {
        self.inner.write_pending()
    }

    /// [`Spool::flush`] unless another thread is writing right now (then that write is
    /// under way and this returns at once): for panic hooks, which must never wait on a
    /// lock the panicking thread may hold.
    pub fn try_flush(&self) {
        if let Ok(sink) = self.inner.sink.try_lock() {
            let _ = self.inner.write_locked(sink);
        }
    }
}

impl Inner {
    fn run(&self) {
        loop {
            let mut s = lock(&self.signal);
            while !s.pending && !self.closed.load(Ordering::SeqCst) {
                // `Interval`: sync what was written, at most `every` after the last sync.
                let due = *lock(&self.sync_due);
                match due {
                    None => s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner()),
                    Some(at) => {
                        let left = at.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            drop(s);
                            let _ = self.sync_now(&mut lock(&self.sink));
                            s = lock(&self.signal);
                        } else {
                            s = self
                                .wake
                                .wait_timeout(s, left)
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    }
                }
            }
            if self.closed.load(Ordering::SeqCst) {
                return; // the dropper writes what is left
            }
            s.pending = false;
            let deadline = Instant::now() + self.linger;
            while !s.high && !self.closed.load(Ordering::SeqCst) {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                s = self
                    .wake
                    .wait_timeout(s, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            s.high = false;
            drop(s);
            let _ = self.write_pending();
        }
    }

    /// Swap every lane's buffer out (under the sink lock, so batches keep their order) and
    /// write them.
    fn write_pending(&self) -> std::io::Result<()> {
        self.write_locked(lock(&self.sink))
    }

    fn write_locked(&self, mut sink: MutexGuard<'_, Sink>) -> std::io::Result<()> {
        let sink = &mut *sink;
        let mut any = false;
        for (i, (lane, spare)) in self.lanes.iter().zip(sink.spares.iter_mut()).enumerate() {
            let mut buf = lock(&lane.buf);
            if buf.bytes.is_empty() {
                continue;
            }
            let was_full = buf.bytes.len() >= CAP;
            std::mem::swap(&mut buf.bytes, spare);
            sink.taken[i] = buf.seq;
            drop(buf);
            if was_full {
                lane.space.notify_all();
            }
            any = true;
        }
        if !any {
            // The sink's batch boundary all the same (a file that was asked to reopen does
            // it here, before the next line).
            return sink.out.flush();
        }
        let mut r = Ok(());
        for spare in sink.spares.iter_mut() {
            if !spare.is_empty() && r.is_ok() {
                r = sink.out.write_all(spare);
            }
            // Keep a moderate buffer for reuse; give back what a burst made large.
            spare.clear();
            if spare.capacity() > 4 * HIGH_WATER {
                spare.shrink_to(HIGH_WATER);
            }
        }
        let r = r.and_then(|()| sink.out.flush());
        match &r {
            Ok(()) => {
                if let Some(m) = &self.meter {
                    let lines: u64 = sink
                        .taken
                        .iter()
                        .zip(&sink.written)
                        .map(|(t, w)| t.saturating_sub(*w))
                        .sum();
                    (m.written)(lines);
                }
                sink.written.clone_from(&sink.taken);
                sink.unsynced = true;
                let due = match self.durability {
                    Durability::None => false,
                    Durability::Always => true,
                    Durability::Interval(every) => {
                        let due = sink.last_sync.elapsed() >= every;
                        if !due {
                            *lock(&self.sync_due) = Some(sink.last_sync + every);
                        }
                        due
                    }
                };
                if due {
                    return self.sync_now(sink);
                }
                self.set_healthy(sink, Ok(()));
            }
            Err(_) => self.lose_taken(sink),
        }
        self.report(sink, &r);
        r
    }

    /// Sync what was written; publish it as durable, or as lost.
    fn sync_now(&self, sink: &mut Sink) -> std::io::Result<()> {
        if !sink.unsynced {
            return Ok(());
        }
        let began = Instant::now();
        let r = sink.out.sync();
        sink.last_sync = Instant::now();
        if let Some(m) = &self.meter {
            (m.synced)(sink.last_sync - began);
        }
        sink.unsynced = false;
        *lock(&self.sync_due) = None;
        self.syncs.fetch_add(1, Ordering::Relaxed);
        match &r {
            Ok(()) => {
                for (lane, &seq) in self.lanes.iter().zip(&sink.written) {
                    lane.durable.fetch_max(seq, Ordering::Release);
                }
            }
            Err(_) => {
                for (lane, &seq) in self.lanes.iter().zip(&sink.written) {
                    lane.lost.fetch_max(seq, Ordering::Release);
                }
            }
        }
        self.report(sink, &r);
        self.synced.notify_waiters();
        r
    }

    /// The batch being written failed: its lines are lost.
    fn lose_taken(&self, sink: &mut Sink) {
        for (lane, &seq) in self.lanes.iter().zip(&sink.taken) {
            lane.lost.fetch_max(seq, Ordering::Release);
        }
        self.synced.notify_waiters();
    }

    fn set_healthy(&self, sink: &mut Sink, r: Result<(), ()>) {
        if let Some(m) = &self.meter {
            (m.health)(r.is_ok());
        }
        sink.failed = r.is_err();
        self.healthy.store(r.is_ok(), Ordering::Relaxed);
    }

    /// Record the outcome of a write or sync; an error is reported once until one succeeds.
    fn report(&self, sink: &mut Sink, r: &std::io::Result<()>) {
        match r {
            Err(e) => {
                if !sink.failed {
                    // Not through `tracing`: the process log may be this very spool.
                    eprintln!("error: {}: cannot write: {e}", self.name);
                }
                self.set_healthy(sink, Err(()));
            }
            Ok(()) => self.set_healthy(sink, Ok(())),
        }
    }
}

/// `tracing_subscriber` formats one event into one buffer and writes it with one `write`
/// call, so each event becomes one [`Spool::append`].
impl Write for &Spool {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(()) // lines are written by the spool's thread; `Spool::flush` forces it
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Spool {
    type Writer = &'a Spool;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records each `write` call, to see batching and ordering.
    #[derive(Clone, Default)]
    struct Calls(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Output for Calls {}

    impl Write for Calls {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn concurrent_lines_stay_whole_ordered_per_thread_and_batched() {
        let calls = Calls::default();
        let spool = Spool::new("test-spool", Box::new(calls.clone())).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = spool.clone();
                std::thread::spawn(move || {
                    for i in 0..5000 {
                        s.append(format!("t{t} {i} {}\n", "x".repeat(i % 50)).as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        spool.flush().unwrap();
        let writes = lock(&calls.0).clone();
        let all: Vec<u8> = writes.concat();
        let text = String::from_utf8(all).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 20_000);
        for t in 0..4 {
            let mine: Vec<usize> = lines
                .iter()
                .filter(|l| l.starts_with(&format!("t{t} ")))
                .map(|l| {
                    let mut parts = l.split(' ');
                    let _ = parts.next();
                    let i: usize = parts.next().unwrap().parse().unwrap();
                    assert_eq!(parts.next().unwrap(), "x".repeat(i % 50), "torn line {l:?}");
                    i
                })
                .collect();
            assert_eq!(
                mine,
                (0..5000).collect::<Vec<_>>(),
                "thread {t} out of order"
            );
        }
        // Batched: far fewer writes than lines (each write holds whole lines).
        assert!(
            writes.len() < 2000,
            "{} writes for 20000 lines",
            writes.len()
        );
        assert!(writes.iter().all(|w| w.ends_with(b"\n")));
    }

    /// A spool whose linger outlasts any test: only `flush`, high water or drop write.
    fn lingering(calls: &Calls) -> Spool {
        Spool::with_linger(
            "test-spool",
            Box::new(calls.clone()),
            Duration::from_secs(3600),
            Durability::None,
            None,
        )
        .unwrap()
    }

    /// Wait (with a deadline) until the sink received a write.
    fn wait_for_a_write(calls: &Calls, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while lock(&calls.0).is_empty() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn flush_writes_at_once_and_drop_writes_the_rest() {
        let calls = Calls::default();
        let spool = lingering(&calls);
        spool.append(b"one\n");
        spool.flush().unwrap();
        assert_eq!(lock(&calls.0).concat(), b"one\n");
        spool.append(b"two\n");
        drop(spool);
        assert_eq!(lock(&calls.0).concat(), b"one\ntwo\n");
    }

    #[test]
    fn the_writer_writes_lines_without_a_flush() {
        let calls = Calls::default();
        let spool = Spool::new("test-spool", Box::new(calls.clone())).unwrap();
        spool.append(b"later\n");
        wait_for_a_write(&calls, "the writer never wrote the line");
        assert_eq!(lock(&calls.0).concat(), b"later\n");
    }

    #[test]
    fn a_lane_at_high_water_is_written_without_lingering() {
        let calls = Calls::default();
        // Only the high-water mark can start this write.
        let spool = lingering(&calls);
        let line = [b'x'; 1023]
            .iter()
            .chain(b"\n")
            .copied()
            .collect::<Vec<u8>>();
        for _ in 0..HIGH_WATER / line.len() + 1 {
            spool.append(&line);
        }
        wait_for_a_write(&calls, "high water did not start a write");
        let written: usize = lock(&calls.0).iter().map(Vec::len).sum();
        assert!(written >= HIGH_WATER, "{written} bytes written");
        assert_eq!(written % line.len(), 0, "whole lines only");
    }

    #[test]
    fn write_errors_are_returned_by_flush() {
        struct Full;
        impl Output for Full {}
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // A linger longer than the test: only `flush` writes.
        let spool = Spool::with_linger(
            "test-spool",
            Box::new(Full),
            Duration::from_secs(3600),
            Durability::None,
            None,
        )
        .unwrap();
        spool.append(b"x\n");
        assert_eq!(spool.flush().unwrap_err().to_string(), "disk full");
    }

    /// A sink that logs writes and syncs in order, and can be told to fail its syncs.
    #[derive(Clone, Default)]
    struct Synced {
        log: Arc<Mutex<Vec<String>>>,
        fail_sync: Arc<AtomicBool>,
    }

    impl Write for Synced {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.log).push(format!("write {}", String::from_utf8_lossy(buf).trim_end()));
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Output for Synced {
        fn sync(&mut self) -> std::io::Result<()> {
            if self.fail_sync.load(Ordering::SeqCst) {
                return Err(std::io::Error::other("sync failed"));
            }
            lock(&self.log).push("sync".into());
            Ok(())
        }
    }

    /// A spool writing into `sink`, syncing as `durability` says.
    fn synced_spool(sink: &Synced, durability: Durability) -> Spool {
        Spool::durable_as("test-spool", Box::new(sink.clone()), durability, None).unwrap()
    }

    async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("{what} did not happen within 10 s"))
    }

    #[tokio::test]
    async fn always_waits_for_the_sync_of_the_lines_batch() {
        let sink = Synced::default();
        let spool = synced_spool(&sink, Durability::Always);
        let a = spool.append(b"a\n");
        within("the sync of a", spool.durable(a)).await.unwrap();
        let log = lock(&sink.log).clone();
        let written = log.iter().position(|l| l == "write a").expect("a written");
        assert!(log[written..].contains(&"sync".to_string()), "{log:?}");
        // Many lines, one after the other: every one is durable, in fewer syncs than lines.
        let before = spool.syncs();
        let tickets: Vec<Ticket> = (0..200)
            .map(|i| spool.append(format!("{i}\n").as_bytes()))
            .collect();
        for t in tickets {
            within("a batch's sync", spool.durable(t)).await.unwrap();
        }
        assert!(spool.syncs() > before);
        assert!(spool.healthy());
    }

    #[tokio::test]
    async fn interval_syncs_within_the_interval_without_further_lines() {
        let sink = Synced::default();
        let spool = synced_spool(&sink, Durability::Interval(Duration::from_millis(50)));
        // The first batch after start-up is not due yet (the last sync is "now").
        let t = spool.append(b"x\n");
        within("the timed sync", spool.durable(t)).await.unwrap();
        assert!(lock(&sink.log).contains(&"sync".to_string()));
    }

    #[tokio::test]
    async fn a_failed_sync_is_reported_to_its_lines_and_clears_on_success() {
        let sink = Synced::default();
        sink.fail_sync.store(true, Ordering::SeqCst);
        let spool = synced_spool(&sink, Durability::Always);
        let t = spool.append(b"lost\n");
        assert!(within("the failed sync", spool.durable(t)).await.is_err());
        assert!(!spool.healthy());
        sink.fail_sync.store(false, Ordering::SeqCst);
        let t = spool.append(b"kept\n");
        within("the next sync", spool.durable(t)).await.unwrap();
        assert!(spool.healthy());
    }

    #[test]
    fn none_never_syncs() {
        let sink = Synced::default();
        let spool = Spool::new("test-spool", Box::new(sink.clone())).unwrap();
        spool.append(b"x\n");
        spool.flush().unwrap();
        drop(spool);
        assert!(!lock(&sink.log).contains(&"sync".to_string()));
    }
}
