//! Processes under test: where the binaries are, waiting with a deadline, a child killed on
//! drop ([`Proc`]), starting a server on a free port ([`spawn_on_free_port`], used by every
//! counterpart), running a binary to completion ([`run`]), and the shared HTTP client.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// Path of a workspace binary.
pub fn bin(name: &str) -> PathBuf {
    let dir = match std::env::var_os("OPEN_CLI_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            let exe = std::env::current_exe().expect("current_exe");
            // target/<profile>/deps/<test-binary>
            exe.parent()
                .and_then(Path::parent)
                .expect("target dir")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing; build it first with `cargo build --workspace --all-targets` (scripts/test does; or set OPEN_CLI_BIN_DIR)",
        path.display()
    );
    path
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// Poll `f` until it returns `Some` or the deadline passes.
pub fn wait_for<T>(
    what: &str,
    deadline: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(format!("timed out after {deadline:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Keep a process under test away from the host's managed and user config files: the managed
/// scope points at a file that does not exist, the user scope at an empty directory. Callers
/// that test scopes override these variables afterwards.
pub fn isolate(cmd: &mut Command) {
    static EMPTY: std::sync::OnceLock<TempDir> = std::sync::OnceLock::new();
    let empty = EMPTY.get_or_init(|| tempfile::tempdir().expect("tempdir"));
    cmd.env(
        "OPEN_CLI_MANAGED_CONFIG",
        empty.path().join("no-managed.cli.json"),
    )
    .env("XDG_CONFIG_HOME", empty.path())
    // The CLI's catalog cache stays out of the home directory; entries are keyed by runtime
    // URL and revalidated against tags unique to a runtime process, so tests share it safely.
    .env("OPEN_CLI_CACHE_DIR", empty.path().join("cache"))
    // A token or agent session of the environment the tests run in is not the test's.
    .env_remove("OPEN_CLI_TOKEN")
    .env_remove("OPEN_CLI_AGENT_SESSION_ID")
    .env_remove("COPILOT_SESSION_ID");
}

/// A child process whose output goes to files, killed on drop; logs are printed if the
/// current test is failing.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    pub dir: TempDir,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = fs::File::create(dir.path().join("stdout.log")).expect("stdout file");
        let err = fs::File::create(dir.path().join("stderr.log")).expect("stderr file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Self {
            name: name.to_string(),
            child: Some(child),
            dir,
        }
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// The rest of the first stdout line that starts with `prefix` (e.g. the address after
    /// `listening on `), if one was written yet.
    pub fn stdout_after(&self, prefix: &str) -> Option<String> {
        self.stdout()
            .lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
    }

    pub fn logs(&self) -> String {
        format!(
            "----- {} stdout -----\n{}----- {} stderr -----\n{}",
            self.name,
            self.stdout(),
            self.name,
            self.stderr()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// The exit status if the process has ended.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Send a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        let pid = self.pid() as i32;
        // SAFETY: kill(2) on the PID of a child we spawned and still own; no memory is shared.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Wait for the process to exit, at most `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus, String> {
        wait_for(&format!("{} to exit", self.name), deadline, || {
            self.try_status()
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A loopback port nothing listens on right now: bound, read and released. Another process
/// may take it before it is used; [`spawn_on_free_port`] retries on a new one then.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Whether something accepts TCP connections on loopback `port` (a readiness check for a
/// server that says nothing when it listens).
pub fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Where a server started by [`spawn_on_free_port`] listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    /// The server binds port 0 itself and reports the port it got (its readiness check reads
    /// it); the command is built with port 0. Nothing can take the port first: one attempt.
    Ephemeral,
    /// A port from [`free_port`], passed to the command (for servers that cannot report a
    /// port of their own). Another process may take it between; a start that fails is retried
    /// on a new port, three attempts in all.
    Free,
    /// This port (a restart on the same address), three attempts.
    Fixed(u16),
}

impl Port {
    fn attempts(self) -> usize {
        match self {
            Self::Ephemeral => 1,
            Self::Free | Self::Fixed(_) => 3,
        }
    }

    fn pick(self) -> u16 {
        match self {
            Self::Ephemeral => 0,
            Self::Free => free_port(),
            Self::Fixed(p) => p,
        }
    }
}

/// Start a server that binds port 0 itself and prints `listening on <URL>` once it serves (the
/// test counterparts written for these tests, and the demo API): the process and that URL.
/// Panics, naming `name` and the cause, when it does not start.
pub fn spawn_listening(name: &str, command: impl FnMut(u16) -> Command) -> (Proc, String) {
    spawn_on_free_port(name, Port::Ephemeral, START_DEADLINE, command, |proc, _| {
        proc.stdout_after("listening on ")
            .map(|u| u.trim().to_string())
    })
    .unwrap_or_else(|e| panic!("{name} did not start: {e}"))
}

/// Start the server `name` and wait until it is ready: `command(port)` builds its command
/// line for the port chosen by `port` (0 for [`Port::Ephemeral`]); `ready(&proc, port)` is
/// polled until it returns `Some`, for at most `deadline` per attempt. An attempt fails when
/// the process exits first or the deadline passes; failed attempts are killed and, for
/// [`Port::Free`] and [`Port::Fixed`], retried. The error names the cause (`… exited early
/// with …` or `timed out after …`) and carries the last attempt's logs.
pub fn spawn_on_free_port<T>(
    name: &str,
    port: Port,
    deadline: Duration,
    mut command: impl FnMut(u16) -> Command,
    mut ready: impl FnMut(&Proc, u16) -> Option<T>,
) -> Result<(Proc, T), String> {
    let attempts = port.attempts();
    let mut last = String::new();
    for attempt in 1..=attempts {
        let p = port.pick();
        let mut proc = Proc::spawn(name, command(p));
        let outcome = wait_for(&format!("{name} to be ready"), deadline, || {
            if let Some(status) = proc.try_status() {
                return Some(Err(format!("{name} exited early with {status}")));
            }
            ready(&proc, p).map(Ok)
        })
        .and_then(|r| r);
        match outcome {
            Ok(v) => return Ok((proc, v)),
            Err(e) => last = format!("{e}\n{}", proc.logs()),
        }
        if attempt < attempts {
            eprintln!("{name}: attempt {attempt} of {attempts} failed, retrying: {last}");
        }
    }
    if attempts > 1 {
        last = format!("{name} did not start in {attempts} attempts; the last: {last}");
    }
    Err(last)
}

/// Wait until `GET url` answers 200 (a runtime's `/readyz`, a probe), at most `deadline`;
/// on time-out, panic with `proc`'s logs.
pub fn wait_200(url: &str, deadline: Duration, proc: &Proc) {
    wait_for(&format!("{url} to answer 200"), deadline, || {
        http().get(url).send().ok().filter(|r| r.status() == 200)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", proc.logs()));
}

/// A shared blocking HTTP client for tests.
pub fn http() -> reqwest::blocking::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Run a binary to completion with a deadline.
pub fn run(bin_name: &str, args: &[&str], env: &[(&str, &str)], cwd: Option<&Path>) -> Output {
    let mut cmd = Command::new(bin(bin_name));
    isolate(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::null())
        .env_remove("OPEN_CLI_RUNTIME_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(d) = cwd {
        cmd.current_dir(d);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Both pipes drained on their own threads (a full pipe would stall the child), the exit
    // polled against a deadline; past it the child is killed, not left running.
    let drain = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let status = wait_for(
        &format!("{bin_name} {args:?} to finish"),
        Duration::from_secs(60),
        || child.try_wait().ok().flatten(),
    );
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{e} (killed)");
        }
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Make a FIFO at `path` (for tests that a runtime never blocks reading one).
pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
