//! `stdio` sources: one supervised, long-lived server process per source (see the module doc
//! of [`super`]).
//!
//! A supervisor task per registry entry starts the process and the rmcp session, publishes
//! the session's [`Peer`] (cheap to clone; concurrent calls are multiplexed over it), waits
//! for the session to end and starts it again: at once after a long healthy run, else after
//! a backoff that doubles from [`MIN_BACKOFF`] to [`MAX_BACKOFF`]. A start that fails (the
//! command is missing, the handshake fails) is reported to the calls waiting for it and tried
//! again only when a later call asks (after the backoff), so a broken source does not spawn
//! processes nobody uses.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use rmcp::service::{ClientServiceExt, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{Peer, RoleClient};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::{Error, Handler, REQUEST_TIMEOUT, Transport};

/// The first wait before starting a process that ended again.
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between two starts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A process that ran this long before it ended is started again without waiting.
const HEALTHY_RUN: Duration = Duration::from_secs(30);
/// The most of one stderr line that goes to the log.
const MAX_STDERR_LINE: u64 = 4096;

/// A stdio source's transport settings: what the registry is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    command: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Key {
    pub(super) fn of(t: &Transport) -> Self {
        match t {
            Transport::Stdio { command, args, env } => Self {
                command: command.clone(),
                args: args.clone(),
                env: env.clone(),
            },
            _ => unreachable!("a stdio transport"),
        }
    }
}

pub(super) async fn list_tools(key: &Key) -> Result<Vec<Value>, Error> {
    let server = Server::of(key);
    let mut retried = false;
    loop {
        let peer = server.ready().await?;
        match super::list_with(&peer).await {
            Ok(tools) => return Ok(tools),
            // Listing is safe to repeat: once more on a restarted process.
            Err(e) if !retried && peer.is_transport_closed() => {
                tracing::debug!(command = %key.command, error = %e, "tools/list on an ended MCP server; trying its successor");
                retried = true;
            }
            Err(e) => return Err(failed(key, "tools/list", &e)),
        }
    }
}

pub(super) async fn call_tool(key: &Key, params: CallToolRequestParams) -> Result<Value, Error> {
    let server = Server::of(key);
    let mut retried = false;
    loop {
        let peer = server.ready().await?;
        match super::call_with(&peer, params.clone()).await {
            Ok(v) => return Ok(v),
            // The process had ended before the request reached it: it did not run there.
            Err(e) if !retried && super::never_sent(&e) => {
                tracing::debug!(command = %key.command, error = %e, "tools/call not sent to an ended MCP server; trying its successor");
                retried = true;
            }
            Err(e) => return Err(failed(key, "tools/call", &e)),
        }
    }
}

fn failed(key: &Key, what: &str, e: &rmcp::ServiceError) -> Error {
    let text = super::service_error_text(e);
    match e {
        rmcp::ServiceError::McpError(_) => text.into(),
        _ => format!("MCP {what} failed (`{}`): {text}", key.command).into(),
    }
}

/// What the supervisor of a server has to offer right now.
#[derive(Clone)]
enum State {
    /// A start is under way.
    Starting,
    Ready(Peer<RoleClient>),
    /// The last start failed; the next call asks for another.
    Failed(Error),
}

struct Server {
    state: watch::Sender<State>,
    /// A call asks the supervisor to try again after a failed start.
    demand: Notify,
}

impl Server {
    /// The registry's server for `key`, its supervisor started on first use.
    fn of(key: &Key) -> Arc<Self> {
        static SERVERS: LazyLock<Mutex<HashMap<Key, Arc<Server>>>> =
            LazyLock::new(Default::default);
        let mut servers = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(servers.entry(key.clone()).or_insert_with(|| {
            let server = Arc::new(Server {
                state: watch::Sender::new(State::Starting),
                demand: Notify::new(),
            });
            tokio::spawn(supervise(key.clone(), Arc::clone(&server)));
            server
        }))
    }

    /// A live session: the current one, or the outcome of the start under way (or of one
    /// this call asks for, when the last failed).
    async fn ready(&self) -> Result<Peer<RoleClient>, Error> {
        let mut state = self.state.subscribe();
        // Whether the outcome seen next is of a start this call waited for.
        let mut fresh = false;
        let wait = async {
            loop {
                let now = state.borrow_and_update().clone();
                match now {
                    State::Ready(peer) if !peer.is_transport_closed() => return Ok(peer),
                    State::Ready(_) | State::Starting => fresh = true,
                    State::Failed(e) if fresh => return Err(e),
                    State::Failed(_) => {
                        self.demand.notify_one();
                        fresh = true;
                    }
                }
                if state.changed().await.is_err() {
                    return Err(Error::from("the MCP server's supervisor ended"));
                }
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT * 2, wait)
            .await
            .map_err(|_| Error::from("the MCP server did not start in time"))?
    }
}

/// Start the server, publish its session, wait for it to end, start it again (module doc).
async fn supervise(key: Key, server: Arc<Server>) {
    let mut backoff = MIN_BACKOFF;
    let mut last_start: Option<Instant> = None;
    loop {
        if let Some(at) = last_start {
            tokio::time::sleep_until(at + backoff).await;
        }
        server.state.send_replace(State::Starting);
        let started = Instant::now();
        last_start = Some(started);
        match start(&key).await {
            Ok((running, pid)) => {
                server
                    .state
                    .send_replace(State::Ready(running.peer().clone()));
                let quit = running.waiting().await;
                let ran = started.elapsed();
                backoff = if ran >= HEALTHY_RUN {
                    Duration::ZERO
                } else {
                    (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF)
                };
                tracing::warn!(command = %key.command, pid, ran_ms = ran.as_millis() as u64,
                    restart_in_ms = backoff.as_millis() as u64, reason = ?quit.ok(),
                    "the MCP server ended; starting it again");
                server.state.send_replace(State::Starting);
            }
            Err(e) => {
                tracing::warn!(command = %key.command, error = %e, "cannot start the MCP server");
                server.state.send_replace(State::Failed(e));
                backoff = (backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                server.demand.notified().await;
            }
        }
    }
}

type Session = RunningService<RoleClient, Handler>;

/// Spawn the process and open the rmcp session over its stdin/stdout.
async fn start(key: &Key) -> Result<(Session, Option<u32>), Error> {
    let mut cmd = tokio::process::Command::new(&key.command);
    cmd.args(&key.args).env_clear();
    for name in ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    cmd.envs(&key.env);
    let (transport, stderr) = TokioChildProcess::builder(cmd)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start MCP server `{}`: {e}", key.command))?;
    let pid = transport.id();
    if let Some(stderr) = stderr {
        tokio::spawn(log_stderr(key.command.clone(), pid, stderr));
    }
    let handler = Handler {
        server: key.command.as_str().into(),
    };
    let running = tokio::time::timeout(
        REQUEST_TIMEOUT,
        handler.serve_with_lifecycle(transport, super::lifecycle()),
    )
    .await
    .map_err(|_| format!("MCP initialize failed: no answer within {REQUEST_TIMEOUT:?}"))?
    .map_err(|e| format!("MCP initialize failed: {}", crate::error::error_chain(&e)))?;
    tracing::info!(command = %key.command, pid, protocol = ?running.peer().peer_info().map(|i| i.protocol_version.to_string()),
        "MCP server started");
    Ok((running, pid))
}

/// Each line the server writes to stderr, to the runtime log (at most [`MAX_STDERR_LINE`]
/// bytes of it).
async fn log_stderr(command: String, pid: Option<u32>, stderr: tokio::process::ChildStderr) {
    let mut reader = tokio::io::BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_STDERR_LINE)
            .read_until(b'\n', &mut line)
            .await
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let full = line.ends_with(b"\n");
                let text = String::from_utf8_lossy(&line);
                tracing::info!(target: "open_cli_proxy::mcp::stderr", command = %command, pid,
                    "{}", text.trim_end());
                // The rest of an over-long line is skipped, a bounded piece at a time.
                let mut skipped = full;
                while !skipped {
                    line.clear();
                    match (&mut reader)
                        .take(MAX_STDERR_LINE)
                        .read_until(b'\n', &mut line)
                        .await
                    {
                        Ok(0) | Err(_) => return,
                        Ok(_) => skipped = line.ends_with(b"\n"),
                    }
                }
            }
        }
    }
}
