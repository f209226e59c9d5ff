//! Start-up, serving and shutdown of the runtime process.
//!
//! Design (see `docs/runtime-lifecycle.md`):
//! - the config is loaded and the catalog built **before** the listener serves, so a runtime
//!   that answers is a runtime with a catalog (`/readyz`), and a broken config fails start-up
//!   with every problem listed instead of serving errors;
//! - the listener is bound by us (std socket, non-blocking) and handed to Pingora through its
//!   `Fds` table, so `--addr 127.0.0.1:0` works and the real address goes to `runtime.json`;
//! - Pingora's `Server` is not used: its SIGTERM path sleeps the whole grace period even when
//!   idle. We run the service in our own tokio runtime and, on SIGTERM or SIGINT, stop
//!   accepting, report not-ready, wait for in-flight requests up to `--shutdown-grace-seconds`
//!   and exit as soon as they are done. A second signal exits at once.

use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use open_cli_config::load_file;
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::ServerConf;
use pingora::server::{Fds, ListenFds};
use pingora::services::Service as _;
use tokio::signal::unix::{SignalKind, signal};

use crate::catalog;
use crate::cli::{ServeArgs, ValidateFormat};
use crate::fetch::Fetcher;
use crate::gateway::Gateway;
use crate::instance::Instance;
use crate::refresh::{self, Trigger};
use crate::snapshot::Snapshot;
use crate::state::RuntimeState;

/// Load, build, bind, serve until a signal, drain, clean up.
pub fn serve(args: &ServeArgs, config: &std::path::Path) -> Result<(), String> {
    let started = Instant::now();
    let loaded = load_file(config).map_err(|e| e.to_string())?;
    let mut instance = Instance::resolve(
        args.instance_id.as_deref(),
        args.state_dir.as_deref(),
        &loaded.path,
    )?;
    if let Some(p) = &args.audit_path {
        instance.audit_path = open_cli_config::load::absolute(p);
    }
    instance.create_dirs().map_err(|e| {
        format!(
            "cannot create state directory {}: {e}",
            instance.state_dir.display()
        )
    })?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("open-cli-worker")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let fetcher = Fetcher::new(Some(&instance.cache_dir))?;
    let catalog = rt
        .block_on(catalog::build(&loaded, &fetcher))
        .map_err(|e| e.to_string())?;
    let tools = catalog.tools.len();
    let snapshot = Snapshot::for_config(catalog, &loaded.config)
        .map_err(|e| format!("cannot render the catalog: {e}"))?;
    let listener = std::net::TcpListener::bind(&args.addr)
        .map_err(|e| format!("cannot listen on {}: {e}", args.addr))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot configure the listener: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;
    let config_path = loaded.path.clone();
    let auth = crate::auth::Authenticator::from_config(loaded.config.server_auth())?;
    let audit = crate::audit::Audit::open(&instance.audit_path).map_err(|e| {
        format!(
            "cannot open the audit log {}: {e}",
            instance.audit_path.display()
        )
    })?;
    let state = Arc::new(RuntimeState::new(
        snapshot,
        loaded,
        fetcher,
        instance,
        format!("http://{addr}"),
        audit,
    ));
    warn_unresolvable_secrets(&rt, &state);
    state.auth.store(auth.map(Arc::new));
    tracing::info!(
        config = %config_path.display(),
        instance = %state.instance.id,
        tools,
        threads,
        startup_ms = started.elapsed().as_millis() as u64,
        "catalog loaded"
    );
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    let result = rt.block_on(run(Arc::clone(&state), listener, grace));
    state.instance.remove_runtime_json();
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

/// Log every upstream secret the catalog's tools need that cannot be resolved now (the calls
/// that need them will be refused; the runtime still starts).
fn warn_unresolvable_secrets(rt: &tokio::runtime::Runtime, state: &RuntimeState) {
    let snapshot = state.snapshot();
    let problems = rt.block_on(
        state
            .credentials
            .unresolvable(&snapshot.config, &snapshot.catalog.tools),
    );
    for p in problems {
        tracing::warn!(problem = %p, "upstream credential unavailable; tools that need it will be refused");
    }
}

async fn run(
    state: Arc<RuntimeState>,
    listener: std::net::TcpListener,
    grace: Duration,
) -> Result<(), String> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let key = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?
        .to_string();
    let mut fds = Fds::new();
    fds.add(key.clone(), listener.into_raw_fd());
    let fds: ListenFds = Arc::new(parking_lot::Mutex::new(fds));
    let conf = Arc::new(ServerConf::default());
    let mut service =
        http_proxy_service_with_name(&conf, Gateway::new(Arc::clone(&state)), "open-cli-runtime");
    service.add_tcp(&key);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let serving =
        tokio::spawn(async move { service.start_service(Some(fds), shutdown_rx, 1).await });

    state.instance.write_runtime_json(&state.url).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            state.instance.runtime_json.display()
        )
    })?;
    tracing::info!(url = %state.url, runtime_json = %state.instance.runtime_json.display(), "open-cli runtime listening");

    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let which = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => {
                tracing::info!("SIGHUP: re-reading the config and rebuilding the catalog");
                tokio::spawn(refresh::rebuild(Arc::clone(&state), Trigger::Signal));
            }
        }
    };
    state.start_draining();
    let _ = shutdown_tx.send(true);
    tracing::info!(
        signal = which,
        inflight = state.inflight(),
        grace_s = grace.as_secs(),
        "shutting down: draining in-flight requests"
    );
    let deadline = Instant::now() + grace;
    let drained = tokio::select! {
        d = wait_drained(&state, deadline) => d,
        _ = term.recv() => false,
        _ = int.recv() => false,
    };
    if drained {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            inflight = state.inflight(),
            "exiting with requests still in flight"
        );
    }
    serving.abort();
    if let Err(e) = state.audit.flush() {
        tracing::error!(error = %e, "cannot flush the audit log at exit");
    }
    Ok(())
}

async fn wait_drained(state: &RuntimeState, deadline: Instant) -> bool {
    while state.inflight() > 0 {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    true
}

/// `open-cli-toolbox validate`: load and merge the config scopes, build the catalog, and
/// report what would be served.
pub fn validate(config: &std::path::Path, format: ValidateFormat) -> Result<String, String> {
    let loaded = load_file(config).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let fetcher = Fetcher::new(None)?;
    let catalog = rt
        .block_on(catalog::build(&loaded, &fetcher))
        .map_err(|e| e.to_string())?;
    let views: Vec<String> = catalog
        .effective_views
        .iter()
        .map(|v| format!("{} ({} tools)", v.name, v.tools.len()))
        .collect();
    let summary = format!(
        "{}: ok: {} source(s), {} service(s), {} tool(s), views: {}",
        loaded.path.display(),
        catalog.sources.len(),
        catalog.services.len(),
        catalog.tools.len(),
        views.join(", ")
    );
    match format {
        ValidateFormat::Text => Ok(format!(
            "{summary}\n{}",
            open_cli_config::show::render_text(&loaded)
        )),
        ValidateFormat::Json => {
            let report = serde_json::json!({
                "ok": true,
                "sources": catalog.sources.len(),
                "services": catalog.services.len(),
                "tools": catalog.tools.len(),
                "views": catalog.effective_views.iter().map(|v| serde_json::json!({"name": v.name, "tools": v.tools.len()})).collect::<Vec<_>>(),
                "effective": open_cli_config::show::effective(&loaded),
            });
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())
        }
    }
}
