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

#[derive(Debug)]
pub struct RuntimeState {
    snapshot: ArcSwap<Snapshot>,
    /// The config the current snapshot was built from.
    config: ArcSwap<LoadedConfig>,
    pub fetcher: Fetcher,
    /// Serialises catalog rebuilds.
    pub rebuild_lock: tokio::sync::Mutex<()>,
    pub last_refresh: ArcSwapOption<RefreshStatus>,
    /// Runtime authentication; `None` when `runtime.server.auth` is not configured.
    pub auth: ArcSwapOption<crate::auth::Authenticator>,
    pub instance: Instance,
    /// `http://<listen address>`.
    pub url: String,
    pub bound: BoundConfig,
    pub audit: crate::audit::Audit,
    /// Upstream secrets and OAuth tokens; shared with catalog builds (MCP transport OAuth).
    pub credentials: Arc<crate::exec::credentials::Credentials>,
    pub clients: crate::exec::http::Clients,
    pub resolver: crate::passthrough::Resolver,
    pub ca_bundles: crate::passthrough::CaBundles,
    draining: AtomicBool,
    inflight: AtomicUsize,
}

impl RuntimeState {
    pub fn new(
        snapshot: Snapshot,
        config: LoadedConfig,
        fetcher: Fetcher,
        instance: Instance,
        url: String,
        audit: crate::audit::Audit,
        credentials: Arc<crate::exec::credentials::Credentials>,
    ) -> Self {
        let bound = BoundConfig::new(&config.path);
        Self {
            audit,
            credentials,
            clients: Default::default(),
            resolver: Default::default(),
            ca_bundles: Default::default(),
            snapshot: ArcSwap::from_pointee(snapshot),
            config: ArcSwap::from_pointee(config),
            fetcher,
            rebuild_lock: tokio::sync::Mutex::new(()),
            last_refresh: ArcSwapOption::empty(),
            auth: ArcSwapOption::empty(),
            instance,
            url,
            bound,
            draining: AtomicBool::new(false),
            inflight: AtomicUsize::new(0),
        }
    }

    /// The current catalog snapshot; hold the `Arc` for the whole request.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The config the current snapshot was built from.
    pub fn config(&self) -> Arc<LoadedConfig> {
        self.config.load_full()
    }

    /// Replace the snapshot (and the config it came from); requests in flight keep the
    /// snapshot they loaded.
    pub fn swap(&self, next: Snapshot, config: Arc<LoadedConfig>) {
        self.config.store(config);
        self.snapshot.store(Arc::new(next));
    }

    /// Stop reporting ready (shutdown has begun).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Count a request as in flight until the guard drops.
    pub fn track(self: &Arc<Self>) -> InflightGuard {
        self.inflight.fetch_add(1, Ordering::SeqCst);
        InflightGuard(Arc::clone(self))
    }
}

#[derive(Debug)]
pub struct InflightGuard(Arc<RuntimeState>);

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
