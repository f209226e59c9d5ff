//! Steady load for the availability tests: clients sending the same request one after another,
//! counting answers and failures.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::process::wait_for;

const DEADLINE: Duration = Duration::from_secs(30);

/// Steady load: `threads` clients, each sending `GET url` one after another on a keep-alive
/// connection, counting answers (200) and failures (anything else, with why). Unlike the crash
/// tests' [`crate::Load`], a client keeps going after a failure: availability tests count them.
#[derive(Debug)]
pub struct SteadyLoad {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl SteadyLoad {
    pub fn start(url: String, threads: usize) -> Self {
        Self::start_with(url, threads, true)
    }

    /// [`SteadyLoad::start`]; without `keep_alive` each call opens a connection of its own (what a
    /// test of refused connections needs: no call rides on a connection accepted earlier).
    pub fn start_with(url: String, threads: usize, keep_alive: bool) -> Self {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..threads)
            .map(|_| {
                let (ok, failed, errors, stop, url) = (
                    Arc::clone(&ok),
                    Arc::clone(&failed),
                    Arc::clone(&errors),
                    Arc::clone(&stop),
                    url.clone(),
                );
                std::thread::spawn(move || {
                    let client = if keep_alive {
                        crate::process::http()
                    } else {
                        reqwest::blocking::Client::builder()
                            .timeout(DEADLINE)
                            .pool_max_idle_per_host(0)
                            .build()
                            .expect("http client")
                    };
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(&url).send() {
                            Ok(r) if r.status() == 200 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            other => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let why = match other {
                                    Ok(r) => format!("HTTP {}", r.status()),
                                    Err(e) => e.to_string(),
                                };
                                errors.lock().unwrap().push(why);
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            ok,
            failed,
            errors,
            stop,
            workers,
        }
    }

    /// Wait until `n` more calls were answered (the load keeps running meanwhile).
    pub fn run_for(&self, n: u64) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        wait_for(&format!("{n} more answered calls"), DEADLINE, || {
            (self.ok.load(Ordering::Relaxed) >= target).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}; failed so far: {:?}", self.errors.lock().unwrap()));
    }

    /// Stop; `(answered, failed, why each failed)`.
    pub fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.join().unwrap();
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }
}
