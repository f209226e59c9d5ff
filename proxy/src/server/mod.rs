//! Start-up, serving and shutdown of the runtime process.
//!
//! Design (the operator's view is in the README, section "The runtime"):
//! - the config is loaded and the catalog built **before** the listener serves, so a runtime
//!   that answers is a runtime with a catalog (`/readyz`), and a broken config fails start-up
//!   with every problem listed instead of serving errors;
//! - the listeners are bound by us (std sockets, non-blocking), so `--addr 127.0.0.1:0` works
//!   and the real address goes to `runtime.json`; we accept on them ourselves and hand each
//!   request to Pingora once its head is complete ([`crate::gateway::conn`]: deadlines, the
//!   connection limit, small idle connections);
//! - Pingora's `Server` is not used: its SIGTERM path sleeps the whole grace period even when
//!   idle. We run the service ourselves and, on SIGTERM or SIGINT, stop accepting, report
//!   not-ready, wait for in-flight requests up to `--shutdown-grace-seconds` and exit as soon
//!   as they are done. A second signal exits at once.
//! - **One event loop per thread** (`--threads`, default: the CPU count), like nginx workers:
//!   each serving thread runs its own current-thread tokio runtime with its own instance of
//!   the Pingora proxy, accepting on its own listening socket ([`crate::server::listen`]: bound with
//!   `SO_REUSEPORT`, so the kernel spreads connections evenly), so a connection lives and
//!   dies on one thread (no work-stealing hand-offs, no cross-thread wake-ups, per-thread
//!   upstream connection pools). Measured with `bench/bare-pingora --per-thread`: about 35%
//!   more requests per second than one multi-thread runtime with the same thread count. A
//!   separate one-thread control runtime handles signals and drains; catalog builds run on
//!   threads of their own, within a deadline ([`crate::refresh`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use open_cli_config::load_file;
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use tokio::signal::unix::{SignalKind, signal};

pub mod listen;

use crate::catalog;
use crate::cli::{ServeArgs, ValidateFormat};
use crate::fetch::Fetcher;
use crate::gateway::Gateway;
use crate::gateway::conn::{self, Limits};
use crate::instance::Instance;
use crate::refresh::{self, Trigger};
use crate::snapshot::Snapshot;
use crate::state::RuntimeState;

/// Pingora's I/O timeouts (the upstream connect, read and write timeouts of every proxied
/// request) go to tokio's timer wheel instead of Pingora's shared "fast" timer.
///
/// Why: a pass-through request's read timeout is almost always cancelled (the answer comes
/// first). Pingora's fast timer registers each timeout in a per-thread `BTreeMap` behind a
/// lock, shares it with a clock thread that ticks every 10 ms, and keeps a cancelled entry
/// until its deadline; tokio's wheel on our per-thread current-thread runtimes inserts and
/// removes in constant time with no other thread involved, and there is no clock thread
/// (measured: `docs/execution.md`, Performance). Timeouts under one second (none of ours)
/// stay on the fast timer.
fn use_tokio_timers() {
    pingora::prelude::fast_timeout::set_fast_timeout_to_tokio_threshold(Some(Duration::ZERO));
}

/// How often a serving thread's heartbeat timer fires ([`timer_heartbeat`]).
const HEARTBEAT: Duration = conn::HEARTBEAT;

/// Keeps a timer pending on a serving thread at all times.
///
/// Why: when tokio's timer wheel is empty as the thread goes idle, the next timer registered
/// (here: the upstream read timeout, one per proxied request) is "earlier than the next
/// wake-up" and tokio wakes its own driver through its eventfd: a `write(2)`, and an extra
/// `epoll_wait` that returns at once. Under load a serving thread often idles with every
/// connection waiting on its client, so this happened for about one request in eight
/// (`strace -c`: 0.13 `write` and 0.11 more `epoll_wait` per request than the bare
/// Pingora hop). With a timer always due within a second, a read timeout (normally longer)
/// is never the earliest, and the heartbeat costs one wake-up a second.
///
/// Each beat also ends the waits for a request head that are due ([`conn::Waiting::beat`]; at
/// shutdown, [`conn::Waiting::close_all`] at once) and returns the thread's freed memory to
/// the OS ([`conn::return_freed_memory`]).
async fn timer_heartbeat(
    waiting: Arc<conn::Waiting>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut closing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(HEARTBEAT) => {}
            _ = shutdown.wait_for(|s| *s), if !closing => {
                closing = true;
                waiting.close_all();
                continue;
            }
        }
        waiting.beat();
        conn::return_freed_memory();
    }
}

/// Load, build, bind, serve until a signal, drain, clean up.
pub fn serve(args: &ServeArgs, config: &std::path::Path) -> Result<(), String> {
    let started = Instant::now();
    use_tokio_timers();
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
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    // The control runtime: catalog builds, signals, drain. Request handling runs on the
    // serving threads (see the module docs).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("open-cli-control")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let fetcher = Fetcher::new(Some(&instance.cache_dir))?;
    let credentials = Arc::new(crate::credentials::Credentials::new(
        fetcher.http().clone(),
        Some(instance.state_dir.clone()),
    ));
    let build_started = Instant::now();
    let catalog = build_within_deadline(&loaded, &fetcher, &credentials)?;
    let tools = catalog.tools.len();
    crate::metrics::catalog_built(true, Some(tools), build_started.elapsed());
    crate::metrics::set_tool_labels(loaded.config.metrics_settings().tool_labels);
    let snapshot = Snapshot::for_config(catalog, &loaded.config)
        .map_err(|e| format!("cannot render the catalog: {e}"))?;
    let limits = limits(args);
    let listeners = crate::server::listen::bind(&args.addr, threads)?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;
    let config_path = loaded.path.clone();
    let auth = rt.block_on(crate::auth::Authenticator::from_config(
        loaded.config.server_auth(),
        &credentials.secrets,
        loaded.config.policy.allow_exec_secrets,
    ))?;
    let audit = crate::audit::Audit::open(&instance.audit_path, &loaded.config.audit_settings())
        .map_err(|e| {
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
        credentials,
    ));
    if let Some(target) = crate::export::Target::resolve(
        state.audit.settings().export.as_ref(),
        |k| std::env::var(k).ok(),
        &state.instance.id,
    )? {
        crate::export::start(Arc::clone(&state), target)?;
    }
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
    let result = rt.block_on(run(Arc::clone(&state), listeners, grace, limits));
    state.instance.remove_runtime_json();
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

/// The start-up and `validate` catalog build, within the build deadline
/// (`runtime.server.refresh.timeoutSeconds`, see [`refresh::build_timeout`]). It runs on its
/// own thread, like a rebuild, so the deadline holds even for a build blocked in a system
/// call (the process then exits with the error); a panic in the builder is reported as an
/// error too.
fn build_within_deadline(
    loaded: &open_cli_config::LoadedConfig,
    fetcher: &Fetcher,
    credentials: &Arc<crate::credentials::Credentials>,
) -> Result<open_cli_config::ntc::Catalog, String> {
    let timeout = refresh::build_timeout(&loaded.config);
    let (tx, rx) = std::sync::mpsc::channel();
    let (loaded_c, fetcher, credentials) =
        (loaded.clone(), fetcher.clone(), Arc::clone(credentials));
    std::thread::Builder::new()
        .name("open-cli-build".into())
        .spawn(move || {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| format!("cannot start the build's event loop: {e}"))?;
                rt.block_on(catalog::build(&loaded_c, &fetcher, &credentials))
                    .map_err(|e| e.to_string())
            }));
            let _ = tx.send(run.unwrap_or_else(|panic| {
                Err(format!(
                    "the catalog build failed unexpectedly: {}",
                    refresh::panic_message(&*panic)
                ))
            }));
        })
        .map_err(|e| format!("cannot start the catalog build thread: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(built) => built,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "{}: the catalog build did not finish within {} seconds (runtime.server.refresh.timeoutSeconds)",
            loaded.path.display(),
            timeout.as_secs()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the catalog build ended without a result".into())
        }
    }
}

/// The connection deadlines and limit from the command line ([`crate::gateway::conn`]).
fn limits(args: &ServeArgs) -> Limits {
    let fd_limit = conn::raise_fd_limit();
    let limits = Limits {
        header_timeout: Duration::from_secs(args.header_timeout_seconds),
        idle_timeout: Duration::from_secs(args.idle_timeout_seconds),
        body_timeout: Duration::from_secs(args.body_timeout_seconds),
        body_min_rate: args.body_min_rate,
        max_connections: args
            .max_connections
            .unwrap_or_else(|| Limits::default_max_connections(fd_limit)),
    };
    if (limits.max_connections as u64).saturating_mul(2) > fd_limit {
        tracing::warn!(
            max_connections = limits.max_connections,
            fd_limit,
            "the open-file limit cannot hold two descriptors per allowed connection"
        );
    }
    tracing::info!(
        header_timeout_s = limits.header_timeout.as_secs(),
        idle_timeout_s = limits.idle_timeout.as_secs(),
        body_timeout_s = limits.body_timeout.as_secs(),
        body_min_rate = limits.body_min_rate,
        max_connections = limits.max_connections,
        "connection limits"
    );
    conn::set_body_limits(&limits);
    limits
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
    listeners: Vec<std::net::TcpListener>,
    grace: Duration,
    limits: Limits,
) -> Result<(), String> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    // `shutdown`: stop accepting (Pingora's own signal); `stop`: end the serving threads.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = start_workers(&state, listeners, limits, &shutdown_rx, &stop_rx)?;

    state.instance.write_runtime_json(&state.url).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            state.instance.runtime_json.display()
        )
    })?;
    tracing::info!(url = %state.url, runtime_json = %state.instance.runtime_json.display(), "open-cli runtime listening");

    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let mut usr1 =
        signal(SignalKind::user_defined1()).map_err(|e| format!("cannot watch SIGUSR1: {e}"))?;
    let which = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = usr1.recv() => {
                tracing::info!(file = %state.audit.path().display(), "SIGUSR1: reopening the audit log");
                state.audit.reopen();
            }
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
    // How often the audit log was synced (`runtime.server.audit.durability`): the benchmark
    // reads it to report syncs per second.
    tracing::info!(audit_syncs = state.audit.syncs(), "audit log");
    if drained {
        tracing::info!("drained; exiting");
    } else {
        tracing::warn!(
            inflight = state.inflight(),
            "exiting with requests still in flight"
        );
    }
    let _ = stop_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for w in workers {
            let _ = w.join();
        }
    })
    .await;
    if let Err(e) = state.audit.flush() {
        tracing::error!(error = %e, "cannot flush the audit log at exit");
    }
    Ok(())
}

/// One thread per listening socket ([`crate::server::listen`]), each with a current-thread runtime
/// running its own instance of the Pingora proxy on the connections it accepts
/// ([`crate::gateway::conn`]), until `stop`.
fn start_workers(
    state: &Arc<RuntimeState>,
    listeners: Vec<std::net::TcpListener>,
    limits: Limits,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> Result<Vec<std::thread::JoinHandle<()>>, String> {
    let conf = Arc::new(ServerConf::default());
    let limits = Arc::new(limits);
    // Process-wide: the limit holds across the serving threads.
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    // Loaded once per file for every serving thread.
    let ca_bundles = Arc::new(crate::gateway::tls::CaBundles::default());
    let mut workers = Vec::with_capacity(listeners.len());
    for (i, socket) in listeners.into_iter().enumerate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let proxy = Arc::new(http_proxy(
            &conf,
            Gateway::new(Arc::clone(state), Arc::clone(&ca_bundles)),
        ));
        let (limits, slots) = (Arc::clone(&limits), Arc::clone(&slots));
        let mut shutdown = shutdown.clone();
        let mut stop = stop.clone();
        let worker = std::thread::Builder::new()
            .name(format!("open-cli-worker-{i}"))
            .spawn(move || {
                rt.block_on(async move {
                    // This thread's own shutdown signal, which every connection waiting for a
                    // request watches: no cache line shared with the other threads.
                    let (local_tx, local_rx) = tokio::sync::watch::channel(false);
                    let relay = tokio::spawn(async move {
                        let _ = shutdown.wait_for(|s| *s).await;
                        let _ = local_tx.send(true);
                        // Keep the sender until the thread ends (a dropped sender would read
                        // as a shutdown too, which is what it is).
                        std::future::pending::<()>().await;
                    });
                    let waiting = Arc::new(conn::Waiting::default());
                    let heartbeat =
                        tokio::spawn(timer_heartbeat(Arc::clone(&waiting), local_rx.clone()));
                    let serving = conn::Serving {
                        proxy,
                        limits,
                        slots,
                        shutdown: local_rx,
                        waiting,
                    };
                    // Serve until `stop`: after `shutdown` the accept loop ends, but the
                    // connection tasks it spawned on this runtime finish their requests.
                    let serving = tokio::spawn(conn::accept_loop(serving, socket));
                    let _ = stop.wait_for(|s| *s).await;
                    serving.abort();
                    heartbeat.abort();
                    relay.abort();
                });
                rt.shutdown_timeout(Duration::from_millis(200));
            })
            .map_err(|e| format!("cannot start a serving thread: {e}"))?;
        workers.push(worker);
    }
    Ok(workers)
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
    let fetcher = Fetcher::new(None)?;
    let credentials = Arc::new(crate::credentials::Credentials::new(
        fetcher.http().clone(),
        None,
    ));
    let catalog = build_within_deadline(&loaded, &fetcher, &credentials)?;
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
