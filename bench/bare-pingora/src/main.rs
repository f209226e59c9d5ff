//! Benchmark baseline for `bench/proxy.sh`: a bare Pingora HTTP/1.1 pass-through with no
//! filters, to tell apart what Pingora itself costs from what the open-cli runtime's
//! pass-through (`/proxy/<alias>/…`: token check, operation match, credential injection,
//! audit record) adds on top.
//!
//! It is set up exactly like the runtime (`proxy/src/server/mod.rs`), so the comparison is fair:
//! - `--threads` serving threads, each one current-thread tokio runtime running its own
//!   instance of the service on its own listening socket (Pingora's `Server` is not used);
//! - the listeners are bound by the runtime's own code (`proxy/src/server/listen.rs`, compiled in
//!   here: one socket per thread with `SO_REUSEPORT`) and handed to Pingora through its
//!   `Fds` table, so `--listen 127.0.0.1:0` works; the real address is printed on stdout as
//!   `listening on http://ADDR`;
//! - `http_proxy_service_with_name` with `ServerConf::default()` and one listener task per fd
//!   per thread;
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

/// The runtime's listening sockets (the same source file, not a dependency on the runtime).
#[path = "../../../proxy/src/server/listen.rs"]
mod listen;

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
    /// Serving threads, one event loop each (same meaning as the runtime's `--threads`).
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
    let listeners = listen::bind(&opt.listen, opt.threads.max(1))?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|e| format!("cannot read the listen address: {e}"))?;
    let key = addr.to_string();
    let conf = Arc::new(ServerConf::default());
    for (i, socket) in listeners.into_iter().enumerate() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let mut fds = Fds::new();
        fds.add(key.clone(), socket.into_raw_fd());
        let fds: ListenFds = Arc::new(parking_lot::Mutex::new(fds));
        let mut service = http_proxy_service_with_name(
            &conf,
            Bare {
                upstream: upstream.to_string(),
            },
            "bare-pingora",
        );
        service.add_tcp(&key);
        std::thread::Builder::new()
            .name(format!("bare-pingora-{i}"))
            .spawn(move || {
                let (_keep, shutdown) = tokio::sync::watch::channel(false);
                rt.block_on(service.start_service(Some(fds), shutdown, 1));
            })
            .map_err(|e| format!("cannot start a serving thread: {e}"))?;
    }
    println!("listening on http://{addr}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    rt.block_on(async {
        let mut term =
            signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
        let mut int =
            signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<(), String>(())
    })?;
    // Exiting the process ends the serving threads.
    Ok(())
}
