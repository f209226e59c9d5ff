//! Process-wide runtime state shared by every request.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};
use open_cli_config::LoadedConfig;
use open_cli_config::wire::RefreshStatus;

use crate::fetch::Fetcher;
use crate::instance::Instance;
use crate::snapshot::Snapshot;

/// A request named a config other than the one this runtime is bound to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "this runtime is bound to a different config than `{path}`; omit `config` to use the bound config, or start a runtime for that file"
)]
pub struct NotBound {
    pub path: String,
}

#[derive(Debug)]
pub struct RuntimeState {
    snapshot: ArcSwap<Snapshot>,
    /// The config the current snapshot was built from.
    config: ArcSwap<LoadedConfig>,
    pub fetcher: Fetcher,
    /// Serialises catalog rebuilds.
    pub rebuild_lock: Arc<tokio::sync::Mutex<()>>,
    pub last_refresh: ArcSwapOption<RefreshStatus>,
    /// Runtime authentication; `None` when `runtime.server.auth` is not configured.
    pub auth: ArcSwapOption<crate::auth::Authenticator>,
    pub instance: Instance,
    /// `http://<listen address>`.
    pub url: String,
    pub bound: BoundConfig,
    pub audit: crate::audit::Audit,
    /// Upstream secrets and OAuth tokens; shared with catalog builds (MCP transport OAuth).
    pub credentials: Arc<crate::credentials::Credentials>,
    pub clients: crate::upstream::http::Clients,
    pub resolver: crate::upstream::dns::Resolver,
    /// Rate limits and per-service concurrency of the current config.
    budgets: ArcSwap<crate::ratelimit::Budgets>,
    draining: AtomicBool,
    /// One counter per serving thread (see [`InflightCounter`]).
    inflight: std::sync::Mutex<Vec<Arc<InflightCounter>>>,
    /// A local runtime's lease on life: stop requests, idle stop, sessions.
    pub lifecycle: Lifecycle,
}

/// How a runtime a CLI started for itself ends (`--local`, `--idle-stop-seconds`), and the
/// sessions that keep it alive (`POST /v1/runtime/heartbeat`, `session-close`).
#[derive(Debug, Default)]
pub struct Lifecycle {
    /// Started as a local runtime (`open-cli runtime start`): `POST /v1/runtime/stop` is
    /// allowed to callers on a loopback-bound listener.
    pub local: bool,
    /// Stop after this long without a request.
    pub idle_stop: Option<std::time::Duration>,
    stop: tokio::sync::Notify,
    /// Session ID → when its lease ends.
    sessions: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// How long a heartbeat keeps its session alive.
pub const SESSION_LEASE: std::time::Duration = std::time::Duration::from_secs(90);
/// Most sessions remembered at once (each heartbeat with a new ID adds one).
const MAX_SESSIONS: usize = 1024;

impl Lifecycle {
    pub fn new(local: bool, idle_stop: Option<std::time::Duration>) -> Self {
        Self {
            local,
            idle_stop,
            ..Self::default()
        }
    }

    /// Ask the process to shut down (drain, then exit) as on SIGTERM.
    pub fn request_stop(&self) {
        self.stop.notify_one();
    }

    /// Resolves when a stop was requested.
    pub async fn stop_requested(&self) {
        self.stop.notified().await;
    }

    /// Renew `session`'s lease; the sessions alive now, or `None` when too many are.
    pub fn heartbeat(&self, session: &str) -> Option<usize> {
        let now = std::time::Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.retain(|_, until| *until > now);
        if !s.contains_key(session) && s.len() >= MAX_SESSIONS {
            return None;
        }
        s.insert(session.to_string(), now + SESSION_LEASE);
        Some(s.len())
    }

    /// End `session`'s lease; the sessions still alive.
    pub fn close(&self, session: &str) -> usize {
        let now = std::time::Instant::now();
        let mut s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.remove(session);
        s.retain(|_, until| *until > now);
        s.len()
    }

    /// Whether some session's lease is still running.
    pub fn has_sessions(&self) -> bool {
        let now = std::time::Instant::now();
        let s = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        s.values().any(|until| *until > now)
    }
}

impl RuntimeState {
    pub fn new(
        snapshot: Snapshot,
        config: LoadedConfig,
        fetcher: Fetcher,
        instance: Instance,
        url: String,
        audit: crate::audit::Audit,
        credentials: Arc<crate::credentials::Credentials>,
    ) -> Self {
        let bound = BoundConfig::new(&config.path);
        warn_unknown_limits(&snapshot, &config);
        let budgets = ArcSwap::from_pointee(budgets_of(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "rate limits cannot be set up: none apply");
            crate::ratelimit::Budgets::new(None, None).unwrap_or_else(|_| unreachable!())
        }));
        Self {
            budgets,
            audit,
            credentials,
            clients: Default::default(),
            resolver: Default::default(),
            snapshot: ArcSwap::from_pointee(snapshot),
            config: ArcSwap::from_pointee(config),
            fetcher,
            rebuild_lock: Arc::new(tokio::sync::Mutex::new(())),
            last_refresh: ArcSwapOption::empty(),
            auth: ArcSwapOption::empty(),
            instance,
            url,
            bound,
            draining: AtomicBool::new(false),
            inflight: Default::default(),
            lifecycle: Lifecycle::default(),
        }
    }

    /// The current catalog snapshot; hold the `Arc` for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The current snapshot, for a thread that keeps its own handle on it
    /// ([`crate::gateway::local::LocalSnapshot`]): a guard, no reference count taken.
    pub fn snapshot_guard(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// `runtime.server.metrics` of the current config.
    pub fn metrics_settings(&self) -> open_cli_config::model::MetricsSettings {
        self.config.load().config.metrics_settings()
    }

    /// The config the current snapshot was built from.
    pub fn config(&self) -> Arc<LoadedConfig> {
        self.config.load_full()
    }

    /// Replace the snapshot (and the config it came from); requests in flight keep the
    /// snapshot they loaded.
    pub fn swap(&self, next: Snapshot, config: Arc<LoadedConfig>) {
        crate::metrics::set_tool_labels(config.config.metrics_settings().tool_labels);
        warn_unknown_limits(&next, &config);
        let server = config.config.server();
        let max = server.limits.max_concurrent_per_service.map(|n| n as usize);
        // Buckets survive a reload that leaves the limits as they were.
        if !self
            .budgets
            .load()
            .same_as(server.rate_limits.as_ref(), max)
        {
            match budgets_of(&config) {
                Ok(b) => self.budgets.store(Arc::new(b)),
                Err(e) => {
                    tracing::error!(error = %e, "the new rate limits cannot be set up: the previous ones stay")
                }
            }
        }
        self.config.store(config);
        self.snapshot.store(Arc::new(next));
    }

    /// The current config's rate limits and per-service concurrency.
    pub fn budgets(&self) -> arc_swap::Guard<Arc<crate::ratelimit::Budgets>> {
        self.budgets.load()
    }

    /// Stop reporting ready (shutdown has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Requests in flight on every serving thread.
    pub fn inflight(&self) -> usize {
        let counters = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .map(|c| c.inflight.load(Ordering::SeqCst))
            .sum()
    }

    /// Requests started so far on every serving thread (the idle stop's measure of activity).
    pub fn requests_started(&self) -> u64 {
        let counters = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .map(|c| c.started.load(Ordering::Relaxed))
            .sum()
    }

    /// A new counter of in-flight requests, for one serving thread, counted by
    /// [`RuntimeState::inflight`].
    pub fn inflight_counter(&self) -> Arc<InflightCounter> {
        let c = Arc::new(InflightCounter::default());
        let mut counters = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        counters.push(Arc::clone(&c));
        c
    }

    /// A caller may name the config it expects; it must be the one this runtime is bound to.
    pub fn check_binding(&self, requested: Option<&str>) -> Result<(), NotBound> {
        match requested {
            Some(path) if !path.is_empty() && !self.bound.matches(path) => Err(NotBound {
                path: path.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// Requests in flight on one serving thread.
///
/// Why per thread: one process-wide counter (and the state's reference count, which each
/// guard held) meant four atomic read-modify-writes per request on cache lines every serving
/// core writes, i.e. a cross-core cache-line transfer each. A thread's own counter (aligned
/// to its own cache lines, guarded through its own `Arc`) is only ever written by that
/// thread; [`RuntimeState::inflight`] sums them (rare: drain and shutdown).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct InflightCounter {
    inflight: AtomicUsize,
    /// Requests started on this thread (only this thread writes it: no shared line).
    started: std::sync::atomic::AtomicU64,
}

/// Counts one request as in flight until it drops.
#[derive(Debug)]
pub struct InflightGuard(Arc<InflightCounter>);

impl InflightGuard {
    pub fn new(counter: &Arc<InflightCounter>) -> Self {
        counter.inflight.fetch_add(1, Ordering::SeqCst);
        counter.started.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(counter))
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The config file the runtime was started with. Requests may name a config path only to
/// confirm they talk to the runtime they expect; the runtime never loads a path a caller names.
#[derive(Debug, Clone)]
pub struct BoundConfig {
    /// Absolute, lexically normalised path as given on the command line.
    pub path: PathBuf,
    /// The same file with symlinks resolved, when that succeeded at start-up.
    pub canonical: Option<PathBuf>,
}

impl BoundConfig {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            canonical: std::fs::canonicalize(path).ok(),
        }
    }

    /// Whether a caller-named path denotes the bound config. Compared lexically (relative
    /// paths against the runtime's working directory); the caller's path is never opened or
    /// stat'ed, so the answer leaks nothing about the runtime host's files.
    pub fn matches(&self, requested: &str) -> bool {
        let requested = open_cli_config::load::absolute(Path::new(requested));
        requested == self.path || self.canonical.as_deref() == Some(requested.as_path())
    }
}

/// The budgets `runtime.server.rateLimits` and `runtime.server.limits.maxConcurrentPerService`
/// ask for.
pub fn budgets_of(config: &LoadedConfig) -> Result<crate::ratelimit::Budgets, String> {
    let server = config.config.server();
    crate::ratelimit::Budgets::new(
        server.rate_limits.as_ref(),
        server.limits.max_concurrent_per_service.map(|n| n as usize),
    )
}

/// Log each rate limit that names a tool or service the catalog does not have: it limits
/// nothing, which is a typo more often than a plan (a later refresh may bring the tool).
fn warn_unknown_limits(snapshot: &Snapshot, config: &LoadedConfig) {
    let Some(limits) = config.config.server().rate_limits.clone() else {
        return;
    };
    for tool in limits.tools.keys() {
        if snapshot.exec.tool_index(tool).is_none() {
            tracing::warn!(tool = %tool, "runtime.server.rateLimits.tools names a tool the catalog does not have: that limit applies to nothing");
        }
    }
    for service in limits.services.keys() {
        if !snapshot.catalog.services.iter().any(|s| &s.id == service) {
            tracing::warn!(service = %service, "runtime.server.rateLimits.services names a service the catalog does not have: that limit applies to nothing");
        }
    }
}
