//! Harness for black-box tests of the real binaries.
//!
//! Every process runs on an ephemeral port with its own temp directory, is waited for with a
//! deadline (never a fixed sleep), is killed on drop, and has its stdout/stderr printed when
//! the test fails. Binaries are found in `OPEN_CLI_BIN_DIR`, else in the target directory this
//! test binary runs from (`.ci/run` builds them first).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
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
        "{} is missing; build it first with `cargo build -p open-cli-proxy -p open-cli -p open-cli-testapi` (or set OPEN_CLI_BIN_DIR)",
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
    .env("XDG_CONFIG_HOME", empty.path());
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

/// The demo upstream (`open-cli-testapi`) on an ephemeral port.
#[derive(Debug)]
pub struct TestApi {
    pub proc: Proc,
    pub url: String,
    /// For an HTTPS instance: the PEM of the CA that issued its certificate.
    pub ca_pem: Option<Vec<u8>>,
}

impl TestApi {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Also serve the files of `dir` under `/docs/` (ETag, Last-Modified, 304s, sidecars).
    pub fn start_with_docs(dir: &Path) -> Self {
        Self::start_with(&["--docs", dir.to_str().expect("utf-8 path")])
    }

    /// Serve HTTPS (ALPN h2 and http/1.1) as `https://localhost:PORT`, with a certificate
    /// for `localhost` issued by a fresh test CA whose PEM is written to `dir/ca.pem` (and kept
    /// in [`TestApi::ca_pem`]). Certificates come from the `openssl` command line.
    pub fn start_tls(dir: &Path) -> Self {
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl (scripts/deps installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=open-cli test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat());
        fs::write(
            dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
        )
        .expect("write server.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        let cert = dir.join("server.pem");
        let key = dir.join("server.key");
        let mut api = Self::start_with(&[
            "--tls-cert",
            cert.to_str().expect("utf-8 path"),
            "--tls-key",
            key.to_str().expect("utf-8 path"),
        ]);
        api.ca_pem = Some(fs::read(dir.join("ca.pem")).expect("ca.pem"));
        api
    }

    /// A client for this instance (trusting its CA when it serves HTTPS).
    pub fn client(&self) -> reqwest::blocking::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = &self.ca_pem {
            b = b.add_root_certificate(reqwest::Certificate::from_pem(pem).expect("CA PEM"));
        }
        b.build().expect("http client")
    }

    fn start_with(extra: &[&str]) -> Self {
        let mut cmd = Command::new(bin("open-cli-testapi"));
        cmd.args(["--addr", "127.0.0.1:0"]).args(extra);
        let mut proc = Proc::spawn("testapi", cmd);
        let url = wait_for("testapi to listen", START_DEADLINE, || {
            if let Some(status) = proc.try_status() {
                panic!("testapi exited early with {status}\n{}", proc.logs());
            }
            proc.stdout()
                .lines()
                .find_map(|l| l.strip_prefix("listening on ").map(str::to_string))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", proc.logs()));
        Self {
            proc,
            url,
            ca_pem: None,
        }
    }

    /// Its OpenAPI document (YAML, `servers` pointing at this instance).
    pub fn spec_yaml(&self) -> String {
        self.client()
            .get(format!("{}/openapi.yaml", self.url))
            .send()
            .and_then(|r| r.text())
            .expect("spec")
    }

    pub fn spec_json(&self) -> Value {
        self.client()
            .get(format!("{}/openapi.json", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("spec")
    }
}

/// A temp directory holding a config and the documents it references.
#[derive(Debug)]
pub struct Fixture {
    pub dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(&p, text).expect("write fixture");
        p
    }

    pub fn write_json(&self, name: &str, v: &Value) -> PathBuf {
        self.write(name, &serde_json::to_string_pretty(v).expect("json"))
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

/// A config serving the demo API's document (already written as `demo.openapi.yaml`).
pub fn demo_config(extra: Value) -> Value {
    let mut base = serde_json::json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"demo": {"type": "openapi", "uri": "demo.openapi.yaml"}},
        "services": {"demo": {"source": "demo", "alias": "demo"}},
        "curation": {"toolSets": {"read-only": {"allow": ["demo:list*", "demo:get*"]}}},
        "agents": {"defaultProfile": "reader", "profiles": {"reader": {"mode": "curated", "toolSet": "read-only"}}}
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    base
}

/// A running `open-cli-toolbox`.
#[derive(Debug)]
pub struct Runtime {
    pub proc: Proc,
    pub url: String,
    pub state_dir: PathBuf,
    _state_tmp: Option<TempDir>,
    pub runtime_json: PathBuf,
    pub config: PathBuf,
}

impl Runtime {
    pub fn start(config: &Path) -> Self {
        Self::try_start(config, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start and wait until `runtime.json` names the URL and `/readyz` answers 200.
    pub fn try_start(config: &Path, extra_args: &[&str]) -> Result<Self, String> {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        Self::try_start_in(config, &dir, extra_args).map(|mut rt| {
            rt._state_tmp = Some(tmp);
            rt
        })
    }

    /// Start with a given state directory (to observe what survives a restart).
    pub fn start_in(config: &Path, state_dir: &Path) -> Self {
        Self::try_start_in(config, state_dir, &[]).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start_in(
        config: &Path,
        state_dir: &Path,
        extra_args: &[&str],
    ) -> Result<Self, String> {
        Self::try_start_env(config, state_dir, extra_args, &[])
    }

    /// Start with extra environment variables (e.g. scope file locations).
    pub fn try_start_env(
        config: &Path,
        state_dir: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = Command::new(bin("open-cli-toolbox"));
        isolate(&mut cmd);
        cmd.envs(env.iter().copied());
        cmd.arg("--config")
            .arg(config)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--instance-id",
                "test",
                "--threads",
                "2",
            ])
            .arg("--state-dir")
            .arg(state_dir)
            .args(extra_args);
        let mut proc = Proc::spawn("open-cli-toolbox", cmd);
        let runtime_json = state_dir.join("instances/test/runtime.json");
        let url = wait_for("runtime.json", START_DEADLINE, || {
            if let Some(status) = proc.try_status() {
                return Some(Err(format!("open-cli-toolbox exited early with {status}")));
            }
            let text = fs::read_to_string(&runtime_json).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            v["url"].as_str().map(|u| Ok(u.to_string()))
        })
        .and_then(|r| r)
        .map_err(|e| format!("{e}\n{}", proc.logs()))?;
        let client = http();
        wait_for("/readyz", START_DEADLINE, || {
            client
                .get(format!("{url}/readyz"))
                .send()
                .ok()
                .filter(|r| r.status() == 200)
        })
        .map_err(|e| format!("{e}\n{}", proc.logs()))?;
        Ok(Self {
            proc,
            url,
            state_dir: state_dir.to_path_buf(),
            _state_tmp: None,
            runtime_json,
            config: config.to_path_buf(),
        })
    }

    pub fn get(&self, path_and_query: &str) -> reqwest::blocking::Response {
        http()
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .expect("request")
    }

    /// Send SIGHUP (re-read the config, rebuild) and wait until `/v1/runtime/info` reports
    /// that rebuild; its info, whether the rebuild succeeded or not.
    pub fn sighup_and_wait(&self) -> Value {
        self.proc.signal(libc::SIGHUP);
        wait_for("the SIGHUP rebuild", Duration::from_secs(10), || {
            let info: Value = self.get("/v1/runtime/info").json().ok()?;
            (info["lastRefresh"]["trigger"] == "sighup").then_some(info)
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }
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

/// Assert that `resp` is the runtime's JSON error with `status` and `code`, whose message
/// mentions `mentions`; return the body.
pub fn expect_error(
    resp: reqwest::blocking::Response,
    status: u16,
    code: &str,
    mentions: &str,
) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let e: Value = resp.json().expect("a JSON error body");
    assert_eq!(e["error"]["code"], code, "{e}");
    let message = e["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "`{mentions}` not in {e}");
    e
}

/// Run `open-cli`.
pub fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    run("open-cli", args, env, None)
}

/// The claims of a JWT, decoded without verification (to inspect a token an upstream got).
pub fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has a payload part");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("a JWT payload is base64url");
    serde_json::from_slice(&json).expect("a JWT payload is JSON")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The demo API's own document and [`demo_config`] in a fixture, and a runtime serving them.
pub fn start_demo_runtime(api: &TestApi) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(".cli.json", &demo_config(serde_json::json!({})));
    let rt = Runtime::start(&config);
    (fx, rt)
}

/// `POST /v1/tools/execute` with `body`: the status and the JSON answer (`null` if none).
pub fn execute(rt: &Runtime, body: Value) -> (u16, Value) {
    let resp = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .expect("execute request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

impl TestApi {
    /// Requests this upstream received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.client()
            .get(format!("{}/_debug/requests", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("requests")
    }

    /// Requests for one path.
    pub fn requests_for(&self, path: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }
}

impl Runtime {
    pub fn post(&self, path_and_query: &str, body: &str) -> reqwest::blocking::Response {
        http()
            .post(format!("{}{path_and_query}", self.url))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("request")
    }

    /// `GET /v1/catalog/effective` as JSON, checked against the NTC schema.
    pub fn catalog(&self) -> Value {
        self.effective("")
    }

    /// `GET /v1/catalog/effective<query>` as JSON, checked against the NTC schema.
    pub fn effective(&self, query: &str) -> Value {
        let resp = self.get(&format!("/v1/catalog/effective{query}"));
        assert_eq!(resp.status(), 200, "GET /v1/catalog/effective{query}");
        let body: Value = resp.json().expect("catalog json");
        assert_valid_effective(&body);
        body
    }

    /// Stop with SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.proc.signal(libc::SIGTERM);
        let status = self.proc.wait_exit(Duration::from_secs(10)).expect("exit");
        assert!(status.success(), "{status}\n{}", self.proc.logs());
    }

    /// Stop (as [`Runtime::stop`]), then the whole output: every line the runtime would
    /// write is written. For checks that something is *not* in the logs, which could pass
    /// while the last lines are still on their way to the file (the log spool writes every
    /// 20 ms).
    pub fn stopped_logs(&mut self) -> String {
        self.stop();
        self.proc.logs()
    }
}

/// Assert that an NTC document validates against `config/schemas/ntc.schema.json`.
pub fn assert_valid_ntc(catalog: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = repo_root().join("config/schemas/ntc.schema.json");
        let schema: Value = serde_json::from_str(&fs::read_to_string(&path).expect("ntc schema"))
            .expect("ntc schema json");
        jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .expect("valid schema")
    });
    let errors: Vec<String> = validator
        .iter_errors(catalog)
        .take(20)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "catalog does not match the NTC schema:\n{}",
        errors.join("\n")
    );
}

/// An effective-catalog response (`{catalog, view}`): the catalog validates, and the view is
/// one of its effective views.
pub fn assert_valid_effective(body: &Value) {
    assert_valid_ntc(&body["catalog"]);
    let views = body["catalog"]["effectiveViews"].as_array().expect("views");
    assert!(
        views
            .iter()
            .any(|v| v["name"] == body["view"]["name"] && v["tools"] == body["view"]["tools"]),
        "the selected view is one of the catalog's effective views"
    );
}

/// `@modelcontextprotocol/server-everything` (installed by `scripts/deps` under
/// `product-tests/mcp`), a real MCP server not written by us.
#[derive(Debug)]
pub struct McpEverything {
    pub proc: Proc,
    pub url: String,
}

impl McpEverything {
    /// The `node` command line of the stdio transport.
    pub fn stdio_command() -> (String, Vec<String>) {
        let bin = repo_root().join("product-tests/mcp/node_modules/.bin/mcp-server-everything");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/deps",
            bin.display()
        );
        (
            "node".into(),
            vec![bin.display().to_string(), "stdio".into()],
        )
    }

    /// Start the `streamableHttp` or `sse` transport on a free loopback port.
    pub fn start(mode: &str) -> Self {
        let (node, args) = Self::stdio_command();
        let preload = repo_root().join("product-tests/mcp/loopback.cjs");
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut cmd = Command::new(&node);
            cmd.arg("--require")
                .arg(&preload)
                .arg(&args[0])
                .arg(mode)
                .env("PORT", port.to_string());
            let mut proc = Proc::spawn(&format!("server-everything {mode}"), cmd);
            let ready = wait_for("server-everything to listen", START_DEADLINE, || {
                if proc.try_status().is_some() {
                    return Some(false);
                }
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| true)
            });
            match ready {
                Ok(true) => {
                    let path = if mode == "sse" { "/sse" } else { "/mcp" };
                    return Self {
                        proc,
                        url: format!("http://127.0.0.1:{port}{path}"),
                    };
                }
                _ => last = proc.logs(),
            }
        }
        panic!("server-everything {mode} did not start\n{last}");
    }
}

/// A real OpenID provider (npm `oidc-provider`, `product-tests/oidc/server.mjs`).
#[derive(Debug)]
pub struct Oidc {
    pub proc: Proc,
    pub issuer: String,
}

pub const AUDIENCE: &str = "urn:open-cli:runtime";

impl Oidc {
    /// Start with the scopes the agent client may be granted and extra env (`AT_TTL`, `AT_ALG`).
    pub fn start(scopes: &str, env: &[(&str, &str)]) -> Self {
        Self::start_on(None, scopes, env)
    }

    /// Stop this provider and start another on the same issuer URL (e.g. with new keys).
    pub fn restart(self, scopes: &str, env: &[(&str, &str)]) -> Self {
        let port = self.issuer.rsplit(':').next().and_then(|p| p.parse().ok());
        drop(self);
        Self::start_on(port, scopes, env)
    }

    fn start_on(fixed_port: Option<u16>, scopes: &str, env: &[(&str, &str)]) -> Self {
        let script = repo_root().join("product-tests/oidc/server.mjs");
        assert!(
            repo_root()
                .join("product-tests/oidc/node_modules/oidc-provider")
                .exists(),
            "oidc-provider is missing: run scripts/deps"
        );
        let mut last = String::new();
        for _ in 0..3 {
            let port = fixed_port.unwrap_or_else(|| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("free port")
                    .port()
            });
            let mut cmd = Command::new("node");
            cmd.arg(&script)
                .env("PORT", port.to_string())
                .env("SCOPES", scopes)
                .env("AUDIENCE", AUDIENCE)
                .envs(env.iter().copied());
            let mut proc = Proc::spawn("oidc-provider", cmd);
            let ready = wait_for("oidc-provider to listen", START_DEADLINE, || {
                if proc.try_status().is_some() {
                    return Some(false);
                }
                proc.stdout().contains("listening on").then_some(true)
            });
            if let Ok(true) = ready {
                return Self {
                    proc,
                    issuer: format!("http://127.0.0.1:{port}"),
                };
            }
            last = proc.logs();
        }
        panic!("oidc-provider did not start\n{last}");
    }

    /// A client-credentials access token for `scope` (and `resource`, which sets `aud`).
    pub fn token(&self, scope: &str, resource: Option<&str>) -> String {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "client_credentials")
            .append_pair("scope", scope);
        if let Some(r) = resource {
            form.append_pair("resource", r);
        }
        let resp = http()
            .post(format!("{}/token", self.issuer))
            .basic_auth("agent-1", Some("agent-1-secret"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.finish())
            .send()
            .expect("token request");
        let status = resp.status();
        let body: Value = resp.json().expect("token json");
        assert!(status.is_success(), "token request failed: {body}");
        body["access_token"]
            .as_str()
            .expect("access_token")
            .to_string()
    }
}

/// A bearer-token gate (`product-tests/oidc/bearer-gate.mjs`) in front of `target`: it admits
/// only JWTs of `oidc` for [`AUDIENCE`], can be told to refuse a token from now on, and lists
/// every token it was shown.
#[derive(Debug)]
pub struct BearerGate {
    pub proc: Proc,
    /// The gate's own base URL (`http://127.0.0.1:PORT`).
    pub url: String,
}

impl BearerGate {
    pub fn start(oidc: &Oidc, target: &str) -> Self {
        let script = repo_root().join("product-tests/oidc/bearer-gate.mjs");
        // scheme://host:port of the target URL
        let origin = target.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
        let mut cmd = Command::new("node");
        cmd.arg(&script)
            .env("PORT", "0")
            .env("ISSUER", &oidc.issuer)
            .env("AUDIENCE", AUDIENCE)
            .env("TARGET", origin);
        let mut proc = Proc::spawn("bearer-gate", cmd);
        let url = wait_for("the bearer gate to listen", START_DEADLINE, || {
            if proc.try_status().is_some() {
                return Some(None);
            }
            proc.stdout()
                .lines()
                .find_map(|l| l.strip_prefix("listening on "))
                .map(|u| Some(u.trim().to_string()))
        })
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("the bearer gate did not start\n{}", proc.logs()));
        Self { proc, url }
    }

    /// Every token presented so far, in order.
    pub fn tokens(&self) -> Vec<String> {
        http()
            .get(format!("{}/_gate/tokens", self.url))
            .send()
            .and_then(|r| r.json())
            .expect("gate token list")
    }

    /// Refuse `token` from now on (as an upstream that revoked it).
    pub fn reject(&self, token: &str) {
        let resp = http()
            .post(format!("{}/_gate/reject", self.url))
            .json(&serde_json::json!({ "token": token }))
            .send()
            .expect("gate reject");
        assert!(resp.status().is_success());
    }
}

/// Stoplight Prism (npm `@stoplight/prism-cli`, installed by `scripts/deps` under
/// `product-tests/prism`): a mock upstream generated from an OpenAPI document. It validates
/// requests against the document (422 on a bad body, 401 when a required credential is absent)
/// and answers with examples generated from the response schemas.
#[derive(Debug)]
pub struct Prism {
    pub proc: Proc,
    pub url: String,
}

impl Prism {
    /// Start `prism mock` on `spec` on a free loopback port, retrying on a port clash.
    pub fn start(spec: &Path) -> Self {
        let prism = repo_root().join("product-tests/prism/node_modules/.bin/prism");
        assert!(
            prism.exists(),
            "{} is missing: run scripts/deps",
            prism.display()
        );
        let mut last = String::new();
        for _ in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut cmd = Command::new(&prism);
            cmd.args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
                .arg(spec);
            let mut proc = Proc::spawn("prism", cmd);
            // Prism compiles the document before it listens: allow more than START_DEADLINE.
            let ready = wait_for("prism to listen", START_DEADLINE * 3, || {
                if proc.try_status().is_some() {
                    return Some(false);
                }
                (proc.stdout().contains("Prism is listening")
                    || proc.stderr().contains("Prism is listening"))
                .then_some(true)
            });
            if let Ok(true) = ready {
                return Self {
                    proc,
                    url: format!("http://127.0.0.1:{port}"),
                };
            }
            last = proc.logs();
        }
        panic!("prism did not start\n{last}");
    }
}

/// Write a private JWKS with one RSA key `kid` (for `JWKS_FILE`); returns its path.
pub fn rsa_jwks(dir: &Path, kid: &str) -> PathBuf {
    let file = dir.join(format!("{kid}.jwks.json"));
    let script = format!(
        r#"const c=require("crypto");const k=c.generateKeyPairSync("rsa",{{modulusLength:2048}}).privateKey.export({{format:"jwk"}});require("fs").writeFileSync(process.argv[1],JSON.stringify({{keys:[{{...k,kid:"{kid}",use:"sig",alg:"RS256"}}]}}))"#
    );
    let status = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&file)
        .status()
        .expect("node");
    assert!(status.success(), "key generation failed");
    file
}

/// [`rsa_jwks`] plus the key to sign with: tests that craft their own tokens (any header,
/// any claims) start the provider with the JWKS file, so the runtime trusts their signatures.
pub fn rsa_signing_key(dir: &Path, kid: &str) -> (PathBuf, jsonwebtoken::EncodingKey) {
    let file = dir.join(format!("{kid}.jwks.json"));
    let der = dir.join(format!("{kid}.pkcs1.der"));
    let script = format!(
        r#"const c=require("crypto");const p=c.generateKeyPairSync("rsa",{{modulusLength:2048}}).privateKey;const fs=require("fs");fs.writeFileSync(process.argv[1],JSON.stringify({{keys:[{{...p.export({{format:"jwk"}}),kid:"{kid}",use:"sig",alg:"RS256"}}]}}));fs.writeFileSync(process.argv[2],p.export({{type:"pkcs1",format:"der"}}))"#
    );
    let status = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(&file)
        .arg(&der)
        .status()
        .expect("node");
    assert!(status.success(), "key generation failed");
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&std::fs::read(&der).expect("key file"));
    (file, key)
}

impl Oidc {
    /// How many introspection requests the provider has received.
    pub fn introspections(&self) -> u64 {
        http()
            .get(format!("{}/test/introspections", self.issuer))
            .send()
            .and_then(|r| r.json::<Value>())
            .expect("introspection count")["count"]
            .as_u64()
            .expect("count")
    }
}

/// `open-cli-toolbox validate --config FILE` expected to fail with exit 1; returns stderr.
pub fn validate_fails(config: &Path) -> String {
    let out = run(
        "open-cli-toolbox",
        &["validate", "--config", config.to_str().expect("utf-8 path")],
        &[],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "validate should fail:\n{err}");
    err
}
