//! Rebuilding the catalog while serving (`GET|POST /v1/refresh`, SIGHUP).
//!
//! A rebuild runs on its own thread, off the serving event loops, one at a time and within a
//! deadline (`runtime.server.refresh.timeoutSeconds`, default [`DEFAULT_BUILD_TIMEOUT`]). It
//! builds a complete new [`Snapshot`] before swapping it in atomically: requests in flight
//! keep the snapshot they loaded, and a failed, panicking or late rebuild leaves the old
//! catalog in place and reports why (`refresh_failed`). `/v1/refresh` forces revalidation of every cached HTTP document; SIGHUP
//! re-reads the config file and rebuilds honouring cache freshness.

use std::sync::Arc;
use std::time::Duration;

use open_cli_config::ntc::Catalog;
use open_cli_config::wire::{RefreshReport, RefreshStatus, SourceRefresh};
use open_cli_config::{LoadedConfig, load_file};

use crate::catalog;
use crate::snapshot::Snapshot;
use crate::state::RuntimeState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `/v1/refresh`: same config, force revalidation.
    Api,
    /// SIGHUP: re-read the config file, normal cache rules.
    Signal,
    /// An MCP source said its tools changed (`notifications/tools/list_changed`): same
    /// config, normal cache rules (the MCP sources are listed afresh either way).
    McpToolsChanged,
}

impl Trigger {
    fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Signal => "sighup",
            Self::McpToolsChanged => "mcp-tools-changed",
        }
    }
}

/// How long one catalog build may take when `runtime.server.refresh.timeoutSeconds` is unset.
pub const DEFAULT_BUILD_TIMEOUT: Duration = Duration::from_secs(120);

/// The build deadline the config asks for (`runtime.server.refresh.timeoutSeconds`).
pub fn build_timeout(config: &open_cli_config::Config) -> Duration {
    config
        .refresh_timeout_seconds()
        .map_or(DEFAULT_BUILD_TIMEOUT, Duration::from_secs)
}

/// Rebuild the catalog each time a long-lived MCP session reports that its server's tools
/// changed ([`crate::upstream::mcp::tools_changed`]), for as long as the runtime runs. There is
/// no per-source rebuild: the whole catalog is rebuilt (normal cache rules), and a burst of
/// notifications during a rebuild leads to one more. Call once, on a serving event loop.
pub fn follow_mcp_tool_changes(state: Arc<RuntimeState>) {
    tokio::spawn(async move {
        loop {
            crate::upstream::mcp::tools_changed().notified().await;
            // The outcome is logged and kept as `last_refresh` by the rebuild itself.
            let _ = rebuild(Arc::clone(&state), Trigger::McpToolsChanged).await;
        }
    });
}

/// Rebuild off the serving threads and wait for the outcome, at most until the deadline.
///
/// The waiting runs on its own task (a caller that disconnects does not cancel it); the build
/// itself runs on a dedicated thread with its own event loop (`spawn_build`), so nothing it
/// does (a blocking file read, a slow source, a panic) can stall a serving thread. The new
/// snapshot is swapped in here, by the waiter, and only if it arrived before the deadline:
/// a build that ends later is discarded.
pub async fn rebuild(state: Arc<RuntimeState>, trigger: Trigger) -> Result<RefreshReport, String> {
    let task = tokio::spawn(rebuild_now(state, trigger));
    task.await
        .map_err(|e| format!("the rebuild task failed: {e}"))?
}

async fn rebuild_now(state: Arc<RuntimeState>, trigger: Trigger) -> Result<RefreshReport, String> {
    let started = std::time::Instant::now();
    let timeout = build_timeout(&state.config().config);
    let deadline = tokio::time::Instant::now() + timeout;
    let result = match tokio::time::timeout_at(
        deadline,
        Arc::clone(&state.rebuild_lock).lock_owned(),
    )
    .await
    {
        Err(_) => Err(format!(
            "a previous catalog rebuild is still running after the {}-second deadline (runtime.server.refresh.timeoutSeconds)",
            timeout.as_secs()
        )),
        Ok(guard) => {
            let outcome = spawn_build(Arc::clone(&state), trigger, guard, timeout);
            match tokio::time::timeout_at(deadline, outcome).await {
                Err(_) => Err(missed_deadline(timeout)),
                Ok(Err(_)) => Err("the catalog build ended without a result".into()),
                Ok(Ok(Err(e))) => Err(e),
                Ok(Ok(Ok(built))) => Ok(commit(&state, trigger, built)),
            }
        }
    };
    let status = RefreshStatus {
        at: crate::clock::now_rfc3339(),
        trigger: trigger.as_str().into(),
        ok: result.is_ok(),
        error: result.as_ref().err().cloned(),
    };
    state.last_refresh.store(Some(Arc::new(status)));
    crate::metrics::catalog_built(
        result.is_ok(),
        result
            .as_ref()
            .ok()
            .and_then(|r| r.catalog.as_ref().map(|c| c.tools)),
        started.elapsed(),
    );
    match &result {
        Ok(r) => tracing::info!(
            trigger = trigger.as_str(),
            tools = r.catalog.as_ref().map(|c| c.tools),
            "catalog rebuilt and swapped"
        ),
        Err(e) => {
            tracing::warn!(trigger = trigger.as_str(), error = %e, "catalog rebuild failed; still serving the previous catalog")
        }
    }
    result
}

/// Why a build that missed its deadline failed (the waiter's and the build's own deadline
/// fire together; either may report it).
fn missed_deadline(timeout: Duration) -> String {
    format!(
        "the catalog build did not finish within {} seconds (runtime.server.refresh.timeoutSeconds)",
        timeout.as_secs()
    )
}

/// What a finished build hands back to the waiter.
struct Built {
    snapshot: Snapshot,
    loaded: Arc<LoadedConfig>,
    report: RefreshReport,
    /// The new runtime authentication (SIGHUP only).
    auth: Option<Option<crate::auth::Authenticator>>,
}

/// Swap the new catalog in (the previous one stays for requests that already hold it).
fn commit(state: &RuntimeState, trigger: Trigger, built: Built) -> RefreshReport {
    let summary = built.snapshot.summary.clone();
    if let (Trigger::Signal, Some(auth)) = (trigger, built.auth) {
        state.auth.store(auth.map(Arc::new));
    }
    state.swap(built.snapshot, built.loaded);
    RefreshReport {
        catalog: Some(summary),
        ..built.report
    }
}

/// Run one build on a new thread with its own current-thread event loop. The rebuild lock
/// travels with the thread: a build stuck past its deadline keeps later rebuilds out until it
/// ends (they fail at their own deadline) instead of running beside it. A panic in the
/// builder is caught and reported as the build's error.
fn spawn_build(
    state: Arc<RuntimeState>,
    trigger: Trigger,
    guard: tokio::sync::OwnedMutexGuard<()>,
    timeout: Duration,
) -> tokio::sync::oneshot::Receiver<Result<Built, String>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("open-cli-rebuild".into())
        .spawn(move || {
            let _one_at_a_time = guard;
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the rebuild's event loop: {e}"))?;
                // The build's own deadline ends a build waiting on I/O, and with it the
                // thread and the lock; only a build blocked in a system call outlives it.
                rt.block_on(async { tokio::time::timeout(timeout, attempt(&state, trigger)).await })
                    .map_err(|_| missed_deadline(timeout))?
            }));
            let result = run.unwrap_or_else(|panic| {
                Err(format!(
                    "the catalog build failed unexpectedly: {}",
                    panic_message(&*panic)
                ))
            });
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a rebuild thread");
    }
    rx
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

async fn attempt(state: &RuntimeState, trigger: Trigger) -> Result<Built, String> {
    let loaded = match trigger {
        Trigger::Signal => Arc::new(load_file(&state.bound.path).map_err(|e| e.to_string())?),
        Trigger::Api | Trigger::McpToolsChanged => state.config(),
    };
    let fetcher = match trigger {
        Trigger::Api => state.fetcher.forced(),
        Trigger::Signal | Trigger::McpToolsChanged => state.fetcher.clone(),
    };
    let catalog = catalog::build(&loaded, &fetcher, &state.credentials)
        .await
        .map_err(|e| e.to_string())?;
    let report = report(&catalog);
    let snapshot = Snapshot::for_config(catalog, &loaded.config)
        .map_err(|e| format!("cannot render the catalog: {e}"))?;
    let auth = match trigger {
        Trigger::Signal => Some(
            crate::auth::Authenticator::from_config(
                loaded.config.server_auth(),
                &state.credentials.secrets,
                loaded.config.policy.allow_exec_secrets,
                loaded.config.exchanges_caller_tokens(),
            )
            .await?,
        ),
        Trigger::Api | Trigger::McpToolsChanged => None,
    };
    Ok(Built {
        snapshot,
        loaded,
        report,
        auth,
    })
}

/// Per source, how its main (first fetched) document was obtained.
fn report(catalog: &Catalog) -> RefreshReport {
    RefreshReport {
        refreshed_at: catalog.generated_at.clone(),
        sources: catalog
            .sources
            .iter()
            .map(|s| {
                let first = s.provenance.fetches.first();
                SourceRefresh {
                    id: s.id.clone(),
                    uri: s.uri.clone(),
                    cache_outcome: first.and_then(|f| f.cache_outcome.clone()),
                    status_code: first.and_then(|f| f.status_code),
                    stale: first.is_some_and(|f| f.stale),
                }
            })
            .collect(),
        catalog: None,
    }
}
