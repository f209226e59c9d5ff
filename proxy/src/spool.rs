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
//! Idle, the writer sleeps on a condition variable: no timer, no polling.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
    buf: Mutex<Vec<u8>>,
    /// Wakes this lane's appenders waiting for space.
    space: Condvar,
}

#[derive(Debug, Default)]
struct Signal {
    /// Some lane received its first line since the writer last looked.
    pending: bool,
    /// Some lane reached [`HIGH_WATER`]: write without lingering further.
    high: bool,
}

struct Sink {
    out: Box<dyn Write + Send>,
    /// The buffers last written, one per lane, reused for the next swap (no allocation per
    /// batch).
    spares: Vec<Vec<u8>>,
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
    /// Start a spool writing to `out` from a thread named `name`.
    pub fn new(name: &str, out: Box<dyn Write + Send>) -> std::io::Result<Self> {
        Self::with_linger(name, out, LINGER)
    }

    fn with_linger(
        name: &str,
        out: Box<dyn Write + Send>,
        linger: Duration,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            name: name.to_string(),
            linger,
            lanes: (0..LANES).map(|_| Lane::default()).collect(),
            closed: AtomicBool::new(false),
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
            sink: Mutex::new(Sink {
                out,
                spares: vec![Vec::new(); LANES],
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
    pub fn append(&self, bytes: &[u8]) {
        let inner = &*self.inner;
        let lane = &inner.lanes[lane_index()];
        let mut buf = lock(&lane.buf);
        while buf.len() >= CAP && !inner.closed.load(Ordering::SeqCst) {
            buf = lane.space.wait(buf).unwrap_or_else(|e| e.into_inner());
        }
        let before = buf.len();
        buf.extend_from_slice(bytes);
        // Signal only the crossings (a `notify` is a system call even with nobody waiting).
        let was_empty = before == 0;
        let high = before < HIGH_WATER && buf.len() >= HIGH_WATER;
        drop(buf);
        if was_empty || high {
            let mut s = lock(&inner.signal);
            s.pending = true;
            s.high |= high;
            drop(s);
            inner.wake.notify_one();
        }
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
                s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
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
        for (lane, spare) in self.lanes.iter().zip(sink.spares.iter_mut()) {
            let mut buf = lock(&lane.buf);
            if buf.is_empty() {
                continue;
            }
            let was_full = buf.len() >= CAP;
            std::mem::swap(&mut *buf, spare);
            drop(buf);
            if was_full {
                lane.space.notify_all();
            }
            any = true;
        }
        if !any {
            return Ok(());
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
            Err(e) if !sink.failed => {
                sink.failed = true;
                // Not through `tracing`: the process log may be this very spool.
                eprintln!("error: {}: cannot write: {e}", self.name);
            }
            Ok(()) => sink.failed = false,
            Err(_) => {}
        }
        r
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
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk full"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        // A linger longer than the test: only `flush` writes.
        let spool =
            Spool::with_linger("test-spool", Box::new(Full), Duration::from_secs(3600)).unwrap();
        spool.append(b"x\n");
        assert_eq!(spool.flush().unwrap_err().to_string(), "disk full");
    }
}
