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
pub mod upgrade;

use crate::catalog;
use crate::cli::{ServeArgs, ValidateFormat};
use crate::fetch::Fetcher;
use crate::gateway::Gateway;
use crate::gateway::conn::{self, Limits};
use crate::gateway::edge_tls::{EdgeTls, TlsFiles};
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
    upgrade::remember_exe();
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
    let limits = limits(args, &loaded.config.server().limits);
    let tls = listener_tls(args, &loaded)?;
    // Sockets handed over by a predecessor (SIGUSR2) or systemd, else our own.
    let listeners = match upgrade::inherited()? {
        Some(l) => {
            tracing::info!(sockets = l.len(), "serving on inherited listening sockets");
            l
        }
        None => crate::server::listen::bind(&args.addr, threads)?,
    };
    let addr = listeners[0]
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;
    if args.local && !addr.ip().is_loopback() {
        return Err(format!(
            "--local: the listen address {addr} is not loopback; a local runtime listens on 127.0.0.1 or ::1 only"
        ));
    }
    if !addr.ip().is_loopback() && tls.is_none() && loaded.config.server_auth().is_none() {
        tracing::warn!(addr = %addr, "listening on a non-loopback address without TLS and without runtime auth: anyone who can reach it can call every tool (set runtime.server.tls and runtime.server.auth)");
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let config_path = loaded.path.clone();
    let auth = rt.block_on(crate::auth::Authenticator::from_config(
        loaded.config.server_auth(),
        &credentials.secrets,
        loaded.config.policy.allow_exec_secrets,
        loaded.config.exchanges_caller_tokens(),
    ))?;
    let audit = crate::audit::Audit::open(&instance.audit_path, &loaded.config.audit_settings())
        .map_err(|e| {
            format!(
                "cannot open the audit log {}: {e}",
                instance.audit_path.display()
            )
        })?
        .for_instance(&instance.id);
    let mut state = RuntimeState::new(
        snapshot,
        loaded,
        fetcher,
        instance,
        format!("{scheme}://{addr}"),
        audit,
        credentials,
    );
    state.lifecycle =
        crate::state::Lifecycle::new(args.local, args.idle_stop_seconds.map(Duration::from_secs));
    let state = Arc::new(state);
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
    let result = rt.block_on(run(Arc::clone(&state), listeners, grace, limits, tls));
    state.instance.remove_runtime_json();
    rt.shutdown_timeout(Duration::from_millis(500));
    result
}

/// `open-cli-toolbox probe --url URL`: `GET` it with a plain HTTP/1.1 exchange (2 s); `Ok` on
/// 200. For container health checks (the image has no curl).
pub fn probe(url: &str) -> Result<(), String> {
    use std::io::{Read as _, Write as _};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are probed"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let timeout = Duration::from_secs(2);
    let mut s =
        std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    write!(
        s,
        "GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| format!("{url}: {e}"))?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| format!("{url}: {e}"))?;
    if head.starts_with(b"HTTP/1.1 200") {
        Ok(())
    } else {
        Err(format!("{url}: {}", String::from_utf8_lossy(&head)))
    }
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

/// The connection deadlines and bounds ([`crate::gateway::conn`]): each from its flag, else
/// `runtime.server.limits`, else the default.
fn limits(args: &ServeArgs, config: &open_cli_config::model::ServerLimits) -> Limits {
    let fd_limit = conn::raise_fd_limit();
    let secs = |flag: Option<u64>, set: Option<u64>, default: Duration| {
        flag.or(set).map_or(default, Duration::from_secs)
    };
    let size = |flag: Option<usize>, set: Option<u64>, default: usize| {
        flag.or(set.map(|n| n as usize)).unwrap_or(default)
    };
    let limits = Limits {
        header_timeout: secs(
            args.header_timeout_seconds,
            config.header_timeout_seconds,
            conn::DEFAULT_HEADER_TIMEOUT,
        ),
        idle_timeout: secs(
            args.idle_timeout_seconds,
            config.idle_timeout_seconds,
            conn::DEFAULT_IDLE_TIMEOUT,
        ),
        body_timeout: secs(
            args.body_timeout_seconds,
            config.body_timeout_seconds,
            conn::DEFAULT_BODY_TIMEOUT,
        ),
        body_min_rate: args
            .body_min_rate
            .or(config.body_min_rate)
            .unwrap_or(conn::DEFAULT_BODY_MIN_RATE),
        max_connections: args
            .max_connections
            .or(config.max_connections.map(|n| n as usize))
            .unwrap_or_else(|| Limits::default_max_connections(fd_limit)),
        max_header_bytes: size(
            args.max_header_bytes,
            config.max_header_bytes,
            conn::DEFAULT_MAX_HEADER_BYTES,
        ),
        max_headers: size(
            args.max_headers,
            config.max_headers,
            conn::DEFAULT_MAX_HEADERS,
        ),
        max_request_line: size(
            args.max_request_line_bytes,
            config.max_request_line_bytes,
            conn::DEFAULT_MAX_REQUEST_LINE,
        ),
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
        max_header_bytes = limits.max_header_bytes,
        max_headers = limits.max_headers,
        max_request_line_bytes = limits.max_request_line,
        "connection limits"
    );
    conn::set_body_limits(&limits);
    limits
}

/// TLS on the listener: the `--tls-*` flags, else `runtime.server.tls` (relative paths from
/// the config file's directory); `None`: plain HTTP.
fn listener_tls(
    args: &ServeArgs,
    loaded: &open_cli_config::LoadedConfig,
) -> Result<Option<Arc<EdgeTls>>, String> {
    use open_cli_config::model::ClientAuth;
    let server = loaded.config.server();
    let set = server.tls.as_ref();
    let dir = loaded.path.parent().unwrap_or(std::path::Path::new("."));
    let anchored = |p: &str| dir.join(p);
    let files = match (&args.tls_cert_file, &args.tls_key_file, set) {
        (Some(cert), Some(key), _) => {
            let client_ca = args
                .tls_client_ca_file
                .clone()
                .or_else(|| set.and_then(|t| t.client_ca_file.as_deref().map(anchored)));
            let client_auth = match args.tls_client_auth.as_deref() {
                Some(mode) => ClientAuth::parse(mode).unwrap_or(ClientAuth::Required),
                None if client_ca.is_some() => set
                    .map(|t| t.client_auth)
                    .filter(|a| *a != ClientAuth::None)
                    .unwrap_or(ClientAuth::Required),
                None => ClientAuth::None,
            };
            TlsFiles {
                cert: open_cli_config::load::absolute(cert),
                key: open_cli_config::load::absolute(key),
                client_ca: client_ca.map(|p| open_cli_config::load::absolute(&p)),
                client_auth,
            }
        }
        (None, None, Some(t)) => TlsFiles {
            cert: anchored(&t.cert_file),
            key: anchored(&t.key_file),
            client_ca: args
                .tls_client_ca_file
                .as_deref()
                .map(open_cli_config::load::absolute)
                .or_else(|| t.client_ca_file.as_deref().map(anchored)),
            client_auth: args
                .tls_client_auth
                .as_deref()
                .and_then(ClientAuth::parse)
                .unwrap_or(t.client_auth),
        },
        (None, None, None) => {
            if args.tls_client_ca_file.is_some() || args.tls_client_auth.is_some() {
                return Err("--tls-client-ca-file and --tls-client-auth need TLS: give --tls-cert-file and --tls-key-file (or runtime.server.tls)".into());
            }
            return Ok(None);
        }
        _ => return Err("--tls-cert-file and --tls-key-file go together".into()),
    };
    if files.client_auth != ClientAuth::None && files.client_ca.is_none() {
        return Err(format!(
            "client certificates `{}` need a CA to verify them: give --tls-client-ca-file (or runtime.server.tls.clientCAFile)",
            files.client_auth.as_str()
        ));
    }
    if let Some(a) = loaded.config.server_auth()
        && a.require_client_cert
        && files.client_auth == ClientAuth::None
    {
        return Err("runtime.server.auth.requireClientCert needs client certificates: set runtime.server.tls.clientCAFile (or --tls-client-ca-file)".into());
    }
    let tls = EdgeTls::load(files)?;
    tracing::info!(
        cert = %tls.files().cert.display(),
        client_auth = tls.files().client_auth.as_str(),
        "TLS on the listener (TLS 1.2 and 1.3, ALPN h2 and http/1.1)"
    );
    Ok(Some(Arc::new(tls)))
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
    tls: Option<Arc<EdgeTls>>,
) -> Result<(), String> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    // `shutdown`: stop accepting (Pingora's own signal); `stop`: end the serving threads.
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Valid while the workers own the sockets: handed to a successor on SIGUSR2.
    let fds = upgrade::fds(&listeners);
    let workers = start_workers(
        &state,
        listeners,
        limits,
        tls.clone(),
        &shutdown_rx,
        &stop_rx,
    )?;
    // A changed certificate, key or CA file is picked up within a second.
    let watcher = tls.clone().map(|tls| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let tls = Arc::clone(&tls);
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    });

    state.instance.write_runtime_json(&state.url).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            state.instance.runtime_json.display()
        )
    })?;
    tracing::info!(url = %state.url, runtime_json = %state.instance.runtime_json.display(), "open-cli runtime listening");
    // A successor of a binary upgrade: now serving, so the predecessor may go.
    upgrade::take_over();
    // An MCP source's `notifications/tools/list_changed` rebuilds the catalog.
    crate::refresh::follow_mcp_tool_changes(Arc::clone(&state));

    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?;
    let mut usr1 =
        signal(SignalKind::user_defined1()).map_err(|e| format!("cannot watch SIGUSR1: {e}"))?;
    let mut usr2 =
        signal(SignalKind::user_defined2()).map_err(|e| format!("cannot watch SIGUSR2: {e}"))?;
    let mut idle = IdleWatch::new(&state);
    let which = loop {
        tokio::select! {
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = state.lifecycle.stop_requested() => break "POST /v1/runtime/stop",
            _ = idle.expired(&state) => break "idle stop",
            _ = usr2.recv() => {
                match upgrade::spawn_successor(&fds) {
                    Ok(pid) => tracing::info!(successor = pid, "SIGUSR2: started the new binary on the listening sockets; it takes over when it serves"),
                    Err(e) => tracing::error!(error = %e, "SIGUSR2: cannot start the new binary; this one keeps serving"),
                }
            }
            _ = usr1.recv() => {
                tracing::info!(file = %state.audit.path().display(), "SIGUSR1: reopening the audit log");
                state.audit.reopen();
            }
            _ = hup.recv() => {
                if let Some(tls) = tls.clone() {
                    let _ = tokio::task::spawn_blocking(move || tls.reload("SIGHUP")).await;
                }
                tracing::info!("SIGHUP: re-reading the config and rebuilding the catalog");
                tokio::spawn(refresh::rebuild(Arc::clone(&state), Trigger::Signal));
            }
        }
    };
    state.start_draining();
    if let Some(w) = watcher {
        w.abort();
    }
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

/// `--idle-stop-seconds`: the time since the last request, measured once a second (requests
/// started on every thread, requests in flight, sessions' leases).
struct IdleWatch {
    seen: u64,
    since: Instant,
}

impl IdleWatch {
    fn new(state: &RuntimeState) -> Self {
        Self {
            seen: state.requests_started(),
            since: Instant::now(),
        }
    }

    /// Resolves when the runtime has been idle for `--idle-stop-seconds`; never without it.
    async fn expired(&mut self, state: &RuntimeState) {
        let Some(limit) = state.lifecycle.idle_stop else {
            return std::future::pending().await;
        };
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let started = state.requests_started();
            if started != self.seen || state.inflight() > 0 || state.lifecycle.has_sessions() {
                self.seen = started;
                self.since = Instant::now();
            } else if self.since.elapsed() >= limit {
                tracing::info!(
                    idle_s = limit.as_secs(),
                    "no request for --idle-stop-seconds"
                );
                return;
            }
        }
    }
}

/// One thread per listening socket ([`crate::server::listen`]), each with a current-thread runtime
/// running its own instance of the Pingora proxy on the connections it accepts
/// ([`crate::gateway::conn`]), until `stop`.
fn start_workers(
    state: &Arc<RuntimeState>,
    listeners: Vec<std::net::TcpListener>,
    limits: Limits,
    tls: Option<Arc<EdgeTls>>,
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
        let mut proxy = http_proxy(
            &conf,
            Gateway::new(Arc::clone(state), Arc::clone(&ca_bundles)),
        );
        // HTTP/2 (over TLS): idle connections close after the idle timeout, and a head's
        // header list is bounded as HTTP/1.1's is.
        let mut options = pingora::apps::HttpServerOptions::default();
        options.h2_idle_timeout = Some(limits.idle_timeout);
        proxy.server_options = Some(options);
        let mut h2 = pingora::protocols::http::v2::server::H2Options::new();
        h2.max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        proxy.h2_options = Some(h2);
        let proxy = Arc::new(proxy);
        let (limits, slots, tls) = (Arc::clone(&limits), Arc::clone(&slots), tls.clone());
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
                        tls,
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
