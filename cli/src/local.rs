//! Local runtimes: an `open-cli-toolbox` this CLI starts for a config on this machine (the
//! enterprise overview's local-daemon and embedded topologies).
//!
//! - **Which runtime**: `--runtime` (or `OPEN_CLI_RUNTIME_URL`) always names a remote one.
//!   Otherwise `--embedded` (or `runtime.mode: "embedded"`) starts one for this invocation
//!   and stops it after; `--local` (or `runtime.mode: "local"`, or `"auto"` without
//!   `runtime.remote.url`) uses the config's local runtime, starting it on first use.
//! - **One per config**: its instance ID is derived from the config's absolute path
//!   (`cli-<directory>-<hash>`), its files live under `<state dir>/runtimes/instances/<id>/`
//!   (`runtime.json`, `audit.log`, `runtime.log`); two configs get two runtimes. A
//!   `runtime.json` whose process is gone or does not answer `/readyz` is stale: it is
//!   removed and a new runtime started.
//! - **The process**: the `open-cli-toolbox` binary (`$OPEN_CLI_TOOLBOX`, else next to
//!   `open-cli`, else on `PATH`; the CLI does not link the runtime), started with `--local`
//!   (loopback only; `POST /v1/runtime/stop` allowed), `--addr 127.0.0.1:0` (an ephemeral
//!   port, read back from `runtime.json`), in its own process group (a Ctrl-C at the CLI does
//!   not stop it), and `--idle-stop-seconds` ([`DEFAULT_IDLE`] unless `runtime start` says
//!   otherwise), so a runtime nobody uses goes away by itself.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use open_cli_config::LoadedConfig;
use open_cli_config::model::RuntimeMode;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{CliError, exit};

/// A local runtime started on first use stops after this long without a request.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(900);
/// How long a runtime may take to start and answer `/readyz`.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// How this invocation reaches its runtime, when not through a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    Local,
    Embedded,
}

/// The topology the flags and config ask for; `None`: a remote runtime by URL.
pub fn wanted(
    runtime_flag: Option<&str>,
    local: bool,
    embedded: bool,
    config: Option<&LoadedConfig>,
) -> Option<Topology> {
    if runtime_flag.is_some_and(|u| !u.is_empty()) {
        return None;
    }
    if embedded {
        return Some(Topology::Embedded);
    }
    if local {
        return Some(Topology::Local);
    }
    let runtime = config?.config.runtime.as_ref()?;
    match runtime.mode? {
        RuntimeMode::Local => Some(Topology::Local),
        RuntimeMode::Embedded => Some(Topology::Embedded),
        RuntimeMode::Auto
            if runtime
                .remote
                .as_ref()
                .and_then(|r| r.url.as_ref())
                .is_none() =>
        {
            Some(Topology::Local)
        }
        RuntimeMode::Auto | RuntimeMode::Remote => None,
    }
}

/// What `runtime.json` says about a running runtime.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub url: String,
    pub pid: u32,
    pub instance_id: String,
}

/// The local runtime of one config file.
#[derive(Debug, Clone)]
pub struct LocalRuntime {
    pub config: PathBuf,
    pub instance_id: String,
    /// `--state-dir` of the runtime.
    pub root: PathBuf,
}

/// The runtime an `--embedded` invocation started: stopped (and reaped) by [`finish`].
static EMBEDDED: Mutex<Option<std::process::Child>> = Mutex::new(None);

impl LocalRuntime {
    pub fn for_config(loaded: &LoadedConfig) -> Result<Self, CliError> {
        let config = std::fs::canonicalize(&loaded.path).map_err(|e| {
            CliError::usage(format!("cannot resolve {}", loaded.path.display()))
                .cause(e.to_string())
        })?;
        let dir = config
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or("root");
        let slug: String = dir
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        let hash = hex::encode(Sha256::digest(config.as_os_str().as_encoded_bytes()));
        Ok(Self {
            instance_id: format!("cli-{}-{}", slug.trim_matches('-'), &hash[..10]),
            root: crate::token::state_dir().join("runtimes"),
            config,
        })
    }

    fn dir(&self) -> PathBuf {
        self.root.join("instances").join(&self.instance_id)
    }

    pub fn runtime_json(&self) -> PathBuf {
        self.dir().join("runtime.json")
    }

    pub fn log(&self) -> PathBuf {
        self.dir().join("runtime.log")
    }

    /// The runtime `runtime.json` names, if its process is alive and answers `/readyz`.
    /// A stale file is removed.
    pub fn running(&self) -> Option<Running> {
        let file = self.runtime_json();
        let r: Running = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
        if alive(r.pid) && ready(&r.url) {
            return Some(r);
        }
        let _ = std::fs::remove_file(&file);
        None
    }

    /// The running runtime, or a new one.
    pub fn ensure(&self, idle: Option<Duration>) -> Result<(Running, bool), CliError> {
        if let Some(r) = self.running() {
            return Ok((r, false));
        }
        // Not reaped by this process: the runtime outlives it (its parent becomes init).
        self.start(&self.instance_id, idle)
            .map(|(r, _child)| (r, true))
    }

    /// Start `open-cli-toolbox` for this config under `instance_id`.
    fn start(
        &self,
        instance_id: &str,
        idle: Option<Duration>,
    ) -> Result<(Running, std::process::Child), CliError> {
        let toolbox = toolbox()?;
        let dir = self.root.join("instances").join(instance_id);
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| {
                    CliError::usage(format!("cannot create {}", dir.display())).cause(e.to_string())
                })?;
        }
        let log_path = dir.join("runtime.log");
        let log = std::fs::File::create(&log_path).map_err(|e| {
            CliError::usage(format!("cannot create {}", log_path.display())).cause(e.to_string())
        })?;
        let runtime_json = dir.join("runtime.json");
        let _ = std::fs::remove_file(&runtime_json);
        let mut cmd = Command::new(&toolbox);
        cmd.arg("--config")
            .arg(&self.config)
            .args(["--addr", "127.0.0.1:0", "--local", "--state-dir"])
            .arg(&self.root)
            .args(["--instance-id", instance_id]);
        if let Some(idle) = idle {
            cmd.arg("--idle-stop-seconds")
                .arg(idle.as_secs().max(1).to_string());
        }
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| {
                CliError::usage("cannot share the runtime log").cause(e.to_string())
            })?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                CliError::usage(format!("cannot start {}", toolbox.display())).cause(e.to_string())
            })?;
        let pid = child.id();
        let failed = |why: String| {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let mut err = CliError::new(
                exit::UNREACHABLE,
                format!(
                    "the local runtime for {} did not start: {why}",
                    self.config.display()
                ),
            );
            for l in tail.into_iter().rev() {
                err = err.cause(l.to_string());
            }
            err.hint(format!("its log: {}", log_path.display()))
        };
        let end = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(failed(format!("it exited ({status})")));
            }
            let found = std::fs::read(&runtime_json)
                .ok()
                .and_then(|b| serde_json::from_slice::<Running>(&b).ok())
                .filter(|r| r.pid == pid);
            if let Some(r) = found
                && ready(&r.url)
            {
                return Ok((r, child));
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(format!(
                    "not ready within {} s",
                    START_DEADLINE.as_secs()
                )));
            }
            // Polling the process and its runtime.json: nothing to wait on instead.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start a runtime for this invocation only ([`finish`] stops it).
    pub fn start_embedded(&self) -> Result<Running, CliError> {
        let id = format!("{}-embedded-{}", self.instance_id, std::process::id());
        let (r, child) = self.start(&id, Some(DEFAULT_IDLE))?;
        *EMBEDDED.lock().unwrap_or_else(|p| p.into_inner()) = Some(child);
        Ok(r)
    }
}

/// Stop the runtime an `--embedded` invocation started, if any (SIGTERM: it drains, writes
/// its audit, removes its `runtime.json`, and exits).
pub fn finish() {
    let taken = EMBEDDED.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(mut child) = taken {
        terminate(child.id());
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Send SIGTERM to `pid`.
#[allow(unsafe_code)]
pub fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a PID read from our own runtime.json; no memory is shared.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Whether process `pid` exists (a runtime started by an earlier invocation is not our child:
/// its parent, init, reaps it when it exits).
#[allow(unsafe_code)]
pub fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `GET /readyz` answers 200: a plain HTTP/1.1 exchange over loopback (a local runtime is
/// always `http://127.0.0.1:PORT`), without building an HTTP client per poll.
fn ready(url: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Some(addr) = url
        .strip_prefix("http://")
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
    else {
        return false;
    };
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /readyz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// The `open-cli-toolbox` binary: `$OPEN_CLI_TOOLBOX`, next to this executable, or on `PATH`.
pub fn toolbox() -> Result<PathBuf, CliError> {
    const NAME: &str = "open-cli-toolbox";
    if let Some(p) = std::env::var_os("OPEN_CLI_TOOLBOX").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join(NAME)))
        .filter(|p| p.is_file());
    let on_path = || {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(NAME))
                .find(|p| is_executable(p))
        })
    };
    beside.or_else(on_path).ok_or_else(|| {
        CliError::usage("a local runtime needs the `open-cli-toolbox` binary, which is not installed")
            .hint("put open-cli-toolbox next to open-cli or on PATH (or set OPEN_CLI_TOOLBOX), or point --runtime at a running runtime")
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
