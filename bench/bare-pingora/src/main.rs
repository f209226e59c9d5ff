//! Benchmark baseline for `bench/proxy.sh`: a bare Pingora HTTP/1.1 pass-through with no
//! filters, to tell apart what Pingora itself costs from what the open-cli runtime's
//! pass-through (`/proxy/<alias>/…`: token check, operation match, credential injection,
//! access log) adds on top.
//!
//! It is set up exactly like the runtime (`proxy/src/server.rs`), so the comparison is fair:
//! - our own multi-thread tokio runtime with `--threads` worker threads (Pingora's `Server`
//!   is not used);
//! - the listener is bound here (std socket, non-blocking) and handed to Pingora through its
//!   `Fds` table, so `--listen 127.0.0.1:0` works; the real address is printed on stdout as
//!   `listening on http://ADDR`;
//! - `http_proxy_service_with_name` with `ServerConf::default()` and one listener task per fd;
//! - the same global allocator (mimalloc).
//!
//! Every request goes to `--upstream` (plain HTTP) unchanged; Pingora's upstream keep-alive
//! pool is on (its default). Nothing is logged per request. SIGTERM or SIGINT stops it at once.
//! Not part of the product; never published.

use std::os::fd::IntoRawFd;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::http_proxy_service_with_name;
use pingora::server::configuration::ServerConf;
use pingora::server::{Fds, ListenFds};
use pingora::services::Service as _;
use tokio::signal::unix::{SignalKind, signal};

/// The same allocator as the runtime, so the comparison isolates what the runtime's filters
/// cost.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Bare Pingora pass-through (benchmark baseline).
#[derive(Debug, Parser)]
#[command(name = "open-cli-bench-bare-pingora")]
struct Opt {
    /// Listen address; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0", value_name = "HOST:PORT")]
    listen: String,
    /// Upstream address (plain HTTP/1.1), e.g. 127.0.0.1:8080.
    #[arg(long, value_name = "HOST:PORT")]
    upstream: String,
    /// Worker threads of the tokio runtime (same meaning as the runtime's `--threads`).
    #[arg(long, default_value_t = 2, value_name = "N")]
    threads: usize,
}

/// The whole proxy: one fixed upstream, every filter left at Pingora's default.
#[derive(Debug)]
struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut (),
    ) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() -> ExitCode {
    let opt = Opt::parse();
    // Same as the runtime: one crypto provider for the process (unused here, no TLS).
    let _ = rustls::crypto::ring::default_provider().install_default();
    match serve(&opt) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(opt: &Opt) -> Result<(), String> {
    let upstream: std::net::SocketAddr = opt
        .upstream
        .parse()
        .map_err(|e| format!("--upstream {}: {e}", opt.upstream))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opt.threads.max(1))
        .thread_name("bare-pingora-worker")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let listener = std::net::TcpListener::bind(&opt.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", opt.listen))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot configure the listener: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;
    rt.block_on(run(listener, addr, upstream.to_string()))?;
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    Ok(())
}

async fn run(
    listener: std::net::TcpListener,
    addr: std::net::SocketAddr,
    upstream: String,
) -> Result<(), String> {
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
    let key = addr.to_string();
    let mut fds = Fds::new();
    fds.add(key.clone(), listener.into_raw_fd());
    let fds: ListenFds = Arc::new(parking_lot::Mutex::new(fds));
    let conf = Arc::new(ServerConf::default());
    let mut service = http_proxy_service_with_name(&conf, Bare { upstream }, "bare-pingora");
    service.add_tcp(&key);
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let serving =
        tokio::spawn(async move { service.start_service(Some(fds), shutdown_rx, 1).await });
    println!("listening on http://{addr}");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = shutdown_tx.send(true);
    serving.abort();
    Ok(())
}
