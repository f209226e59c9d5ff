//! Typed HTTP client of the runtime API. It shares wire types with the runtime through
//! `open-cli-config` and does not link Pingora.

use std::time::Duration;

use open_cli_config::wire::{
    EffectiveCatalog, ErrorBody, ExecuteRequest, ExecuteResponse, RuntimeInfo, codes,
};
use reqwest::Method;
use serde::de::DeserializeOwned;

use crate::error::{CliError, chain, exit};

/// TLS settings of the connection to an `https://` runtime.
#[derive(Debug, Default, Clone)]
pub struct Tls {
    /// More trust anchors (`--ca-file`), besides the system's.
    pub ca_file: Option<std::path::PathBuf>,
    /// The client certificate and key (`--client-cert`, `--client-key`) for mutual TLS.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
}

fn read_pem(path: &std::path::Path, flag: &str) -> Result<Vec<u8>, CliError> {
    open_cli_config::files::read_regular(path, open_cli_config::files::MAX_CA_BYTES)
        .map_err(|e| usage(path, flag, &e.to_string()))
}

fn usage(path: &std::path::Path, flag: &str, why: &str) -> CliError {
    CliError::new(
        exit::USAGE,
        format!("{flag} {}: cannot be used", path.display()),
    )
    .cause(why.to_string())
}

#[derive(Debug)]
pub struct Client {
    base: String,
    http: reqwest::blocking::Client,
    /// Sent as `config` so a runtime bound to another config answers 409 instead of serving
    /// the wrong catalog (`runtime.remote.requestConfigPath`).
    request_config_path: Option<String>,
    /// Where the runtime token comes from (`runtime.remote.oauth`).
    auth: Option<crate::token::Source>,
    token: std::cell::RefCell<Option<String>>,
    /// A login source's session was read (`token` holds its token, or `None`).
    login_read: std::cell::Cell<bool>,
    /// `runtime.remote.oauth` when its `delegation` is enabled: every request sends a child
    /// of the primary token ([`crate::delegation::automatic`]).
    delegation: Option<open_cli_config::model::RemoteOAuth>,
    /// The child sent, and the primary token it was made from.
    delegated: std::cell::RefCell<Option<(String, String)>>,
    /// `--timeout`, named when it runs out.
    timeout: Duration,
    /// `--offline`: the catalog from the local cache, no request.
    offline: bool,
    /// Say on stderr how old an offline catalog is (not while completing a command line).
    note_offline: bool,
    /// `-v`: each request on stderr.
    verbose: bool,
}

/// A success answer of the runtime.
struct Answer {
    /// 304 to an `If-None-Match`: the caller's copy is current (`bytes` is empty).
    not_modified: bool,
    etag: Option<String>,
    bytes: bytes::Bytes,
}

/// Which view of the catalog to ask for.
#[derive(Debug, Default, Clone)]
pub struct ViewSelector {
    pub mode: Option<String>,
    pub agent_profile: Option<String>,
}

impl Client {
    pub fn new(
        base: &str,
        timeout: Duration,
        request_config_path: Option<String>,
        tls: &Tls,
    ) -> Result<Self, CliError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .user_agent(concat!("open-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &tls.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&read_pem(ca, "--ca-file")?)
                .map_err(|e| usage(ca, "--ca-file", &e.to_string()))?;
            if certs.is_empty() {
                return Err(usage(ca, "--ca-file", "it holds no PEM certificate"));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
            let mut pem = read_pem(cert, "--client-cert")?;
            pem.extend(read_pem(key, "--client-key")?);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| usage(cert, "--client-cert/--client-key", &e.to_string()))?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| {
            CliError::new(exit::PROTOCOL, "cannot create the HTTP client").cause(e.to_string())
        })?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            http,
            request_config_path,
            auth: None,
            token: std::cell::RefCell::new(None),
            login_read: std::cell::Cell::new(false),
            delegation: None,
            delegated: std::cell::RefCell::new(None),
            timeout,
            offline: false,
            note_offline: true,
            verbose: false,
        })
    }

    /// Take the catalog from the local cache without asking the runtime (`--offline`).
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Print each request on stderr (`-v`).
    pub fn verbose(mut self, verbose: bool) -> Self {
        self.verbose = verbose;
        self
    }

    /// Nothing on stderr about where the catalog came from (shell completion).
    pub fn quiet(mut self) -> Self {
        self.note_offline = false;
        self
    }

    /// Send a runtime token from this source with every request.
    pub fn with_auth(mut self, auth: Option<crate::token::Source>) -> Self {
        self.auth = auth;
        self
    }

    pub fn auth(&self) -> Option<&crate::token::Source> {
        self.auth.as_ref()
    }

    /// Send a child of the primary token instead of it (`runtime.remote.oauth` with
    /// `delegation.enabled`; otherwise nothing changes).
    pub fn with_delegation(mut self, oauth: Option<&open_cli_config::model::RemoteOAuth>) -> Self {
        self.delegation = oauth
            .filter(|o| o.delegation.as_ref().is_some_and(|d| d.enabled))
            .cloned();
        self
    }

    /// The token to send: the primary token, or its child when delegation is enabled.
    /// `fresh`: the runtime refused the last one; get new ones.
    fn bearer(&self, fresh: bool) -> Result<Option<String>, CliError> {
        let primary = self.primary_bearer(fresh)?;
        let Some(oauth) = &self.delegation else {
            return Ok(primary);
        };
        let Some(parent) = primary else {
            return Ok(None);
        };
        if !fresh
            && let Some((p, child)) = &*self.delegated.borrow()
            && *p == parent
        {
            return Ok(Some(child.clone()));
        }
        let child = crate::delegation::automatic(self, oauth, &parent, fresh)?;
        *self.delegated.borrow_mut() = Some((parent, child.clone()));
        Ok(Some(child))
    }

    /// The primary token (never a delegated child): what `auth delegate` exchanges.
    pub fn primary_token(&self) -> Result<Option<String>, CliError> {
        self.primary_bearer(false)
    }

    /// The primary token to send; `fresh` ignores any cached client-credentials token.
    fn primary_bearer(&self, fresh: bool) -> Result<Option<String>, CliError> {
        use crate::token::Source;
        match &self.auth {
            None => Ok(None),
            Some(Source::Provided { token, .. }) => Ok(Some(token.clone())),
            Some(Source::Client(c)) => {
                if !fresh {
                    if let Some(t) = self.token.borrow().clone() {
                        return Ok(Some(t));
                    }
                    if let Some((t, _)) = c.cached() {
                        *self.token.borrow_mut() = Some(t.clone());
                        return Ok(Some(t));
                    }
                }
                let audience = if c.audience.is_none() {
                    self.get_as::<RuntimeInfo>("/v1/runtime/info", &[], None)
                        .ok()
                        .and_then(|i| i.auth.audience)
                } else {
                    None
                };
                let t = c.fetch(&self.http, audience.as_deref())?;
                *self.token.borrow_mut() = Some(t.clone());
                Ok(Some(t))
            }
            Some(Source::Login(l)) => {
                // The session file is read once per invocation, also when there is none
                // (no `runtime.remote.oauth`, not logged in: every request is anonymous).
                if !fresh && self.login_read.get() {
                    return Ok(self.token.borrow().clone());
                }
                let t = l.bearer(&self.http, &self.base, fresh)?;
                self.token.borrow_mut().clone_from(&t);
                self.login_read.set(true);
                Ok(t)
            }
        }
    }

    /// The HTTP client (for the identity provider's endpoints during a login).
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// `/v1/runtime/info` without a token.
    pub fn info_anonymous(&self) -> Result<RuntimeInfo, CliError> {
        self.get_anonymous("/v1/runtime/info")
    }

    /// `/v1/runtime/info` with this token: who the runtime takes it for.
    pub fn info_as(&self, token: &str) -> Result<RuntimeInfo, CliError> {
        self.get_as("/v1/runtime/info", &[], Some(token))
    }

    /// `GET path` of the runtime without a token (public documents).
    pub fn get_anonymous<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        self.get_as(path, &[], None)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The runtime token this client sends, if it has a token source (fetched when it is an
    /// `oauthClient` without a valid cached token).
    pub fn token(&self) -> Result<Option<String>, CliError> {
        self.bearer(false)
    }

    /// `GET url` without a token: the JSON object of a `200` answer, `None` otherwise (for
    /// optional, public documents such as RFC 9728 metadata).
    pub fn probe_json(&self, url: &str) -> Option<serde_json::Value> {
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .ok()?;
        if resp.status() != reqwest::StatusCode::OK {
            return None;
        }
        let v: serde_json::Value = resp.json().ok()?;
        v.is_object().then_some(v)
    }

    /// `POST /v1/refresh`: rebuild the catalog now, revalidating every source.
    pub fn refresh(&self) -> Result<open_cli_config::wire::RefreshReport, CliError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if let Some(c) = &self.request_config_path {
            q.push(("config", c));
        }
        self.send(Method::POST, "/v1/refresh", &q, None)
    }

    /// `POST /v1/workflows/run`: the workflow's steps, if it may run.
    pub fn run_workflow(
        &self,
        workflow_id: &str,
        view: &ViewSelector,
        approval: bool,
    ) -> Result<serde_json::Value, CliError> {
        let mut req = serde_json::json!({"workflowId": workflow_id});
        for (k, v) in [
            ("configPath", self.request_config_path.as_deref()),
            ("mode", view.mode.as_deref()),
            ("agentProfile", view.agent_profile.as_deref()),
        ] {
            if let Some(v) = v {
                req[k] = v.into();
            }
        }
        if approval {
            req["approval"] = true.into();
        }
        let body = serde_json::to_vec(&req).unwrap_or_default();
        self.send(Method::POST, "/v1/workflows/run", &[], Some(&body))
    }

    /// `POST /v1/runtime/stop`.
    pub fn stop(&self) -> Result<serde_json::Value, CliError> {
        self.send(Method::POST, "/v1/runtime/stop", &[], None)
    }

    pub fn info(&self) -> Result<RuntimeInfo, CliError> {
        self.get("/v1/runtime/info", &[])
    }

    /// The view's tools (the compact form: `catalog.tools` is empty, see
    /// [`EffectiveCatalog::catalog_has_tool`]), from the revalidated cache.
    pub fn effective(&self, view: &ViewSelector) -> Result<EffectiveCatalog, CliError> {
        self.effective_as(view, true)
    }

    /// The runtime's whole `{catalog, view}` document.
    pub fn effective_full(&self, view: &ViewSelector) -> Result<EffectiveCatalog, CliError> {
        self.effective_as(view, false)
    }

    fn effective_as(
        &self,
        view: &ViewSelector,
        compact: bool,
    ) -> Result<EffectiveCatalog, CliError> {
        let mut q: Vec<(&str, &str)> = Vec::new();
        if compact {
            q.push(("compact", "true"));
        }
        if let Some(c) = &self.request_config_path {
            q.push(("config", c));
        }
        if let Some(m) = &view.mode {
            q.push(("mode", m));
        }
        if let Some(p) = &view.agent_profile {
            q.push(("agentProfile", p));
        }
        self.cached_effective(&q)
    }

    /// `GET /v1/catalog/effective`, revalidating the cached copy ([`crate::cache`]): the
    /// runtime answers 304 when it is still this token's view, and the copy is used.
    fn cached_effective(&self, q: &[(&str, &str)]) -> Result<EffectiveCatalog, CliError> {
        const PATH: &str = "/v1/catalog/effective";
        let file = crate::cache::path(&self.base, q);
        let cached = file.as_ref().and_then(crate::cache::load);
        if self.offline {
            let entry = cached.ok_or_else(|| {
                CliError::usage(format!(
                    "--offline: no cached catalog of {} for this view",
                    self.base
                ))
                .hint("run the command once without --offline to cache it")
            })?;
            if self.note_offline {
                eprintln!(
                    "open-cli: offline; the catalog of {} as of {} ago",
                    self.base,
                    crate::cache::human(entry.age)
                );
            }
            return self.parse(&Method::GET, PATH, &entry.body);
        }
        let attempt = |token: Option<&str>| {
            let identity = crate::cache::identity(token);
            let tag = cached
                .as_ref()
                .filter(|c| c.identity == identity)
                .map(|c| c.etag.as_str());
            self.exchange(Method::GET, PATH, q, None, token, tag)
                .map(|a| (a, identity))
        };
        let (answer, identity) = self.with_token(attempt)?;
        if answer.not_modified
            && let (Some(file), Some(entry)) = (&file, cached)
        {
            crate::cache::touch(file);
            return self.parse(&Method::GET, PATH, &entry.body);
        }
        let catalog = self.parse(&Method::GET, PATH, &answer.bytes)?;
        if let (Some(file), Some(etag)) = (&file, answer.etag) {
            crate::cache::store(file, &etag, &identity, &answer.bytes);
        }
        Ok(catalog)
    }

    /// The `config` value sent with every request (`runtime.remote.requestConfigPath`).
    pub fn request_config_path(&self) -> Option<&str> {
        self.request_config_path.as_deref()
    }

    /// `POST /v1/tools/execute`. Never retried (the tool may not be idempotent), except once
    /// with a fresh client-credentials token after `authn_failed`, when nothing was run.
    pub fn execute(&self, req: &ExecuteRequest) -> Result<ExecuteResponse, CliError> {
        if self.offline {
            return Err(CliError::usage(format!(
                "--offline: `{}` would call the runtime",
                req.tool_id
            ))
            .hint("drop --offline to run it, or add --dry-run to see the request"));
        }
        let body = serde_json::to_vec(req).map_err(|e| {
            CliError::new(exit::PROTOCOL, "cannot encode the execute request").cause(e.to_string())
        })?;
        self.send(Method::POST, "/v1/tools/execute", &[], Some(&body))
    }

    fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, &str)]) -> Result<T, CliError> {
        self.send(Method::GET, path, query, None)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<T, CliError> {
        self.with_token(|token| self.send_as(method.clone(), path, query, body, token))
    }

    /// `attempt` with this client's runtime token; once more with a fresh one when a
    /// client-credentials token is refused (`authn_failed`: nothing was run).
    fn with_token<T>(
        &self,
        attempt: impl Fn(Option<&str>) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        let token = self.bearer(false)?;
        match attempt(token.as_deref()) {
            Err(e)
                if e.code.as_deref() == Some(codes::AUTHN_FAILED)
                    && matches!(
                        self.auth,
                        Some(crate::token::Source::Client(_) | crate::token::Source::Login(_))
                    )
                    && token.is_some() =>
            {
                let token = self.bearer(true)?;
                attempt(token.as_deref())
            }
            other => other,
        }
    }

    fn get_as<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        token: Option<&str>,
    ) -> Result<T, CliError> {
        self.send_as(Method::GET, path, query, None, token)
    }

    fn send_as<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        token: Option<&str>,
    ) -> Result<T, CliError> {
        let answer = self.exchange(method.clone(), path, query, body, token, None)?;
        self.parse(&method, path, &answer.bytes)
    }

    fn parse<T: DeserializeOwned>(
        &self,
        method: &Method,
        path: &str,
        bytes: &[u8],
    ) -> Result<T, CliError> {
        serde_json::from_slice(bytes).map_err(|e| {
            CliError::new(exit::PROTOCOL, format!("the runtime at {} sent a response this CLI does not understand", self.base))
                .cause(format!("{method} {path}: {e}"))
                .hint("the runtime may speak a different contract version; compare `open-cli runtime info`")
        })
    }

    /// One request: its success (or, with `if_none_match`, 304) answer decoded, or the error.
    fn exchange(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&[u8]>,
        token: Option<&str>,
        if_none_match: Option<&str>,
    ) -> Result<Answer, CliError> {
        let url = format!("{}{path}", self.base);
        // Catalogs compress ~10x; the runtime serves pre-compressed bodies.
        let mut req = self
            .http
            .request(method.clone(), &url)
            .query(query)
            .header("accept-encoding", "gzip");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_vec());
        }
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(tag) = if_none_match {
            req = req.header("if-none-match", tag);
        }
        // Our own request ID, so a call that outlives `--timeout` can still be named (the
        // runtime keeps a safe inbound ID, answers and audits under it).
        let rid = request_id();
        req = req.header("x-request-id", &rid);
        let started = std::time::Instant::now();
        let resp = req.send().map_err(|e| {
            if self.verbose {
                eprintln!(
                    "open-cli: {method} {url} failed after {:.1} ms (request {rid})",
                    ms(started)
                );
            }
            self.transport_error(&e, &method, path, &rid)
        })?;
        if self.verbose {
            eprintln!(
                "open-cli: {method} {url} -> {} in {:.1} ms (request {rid})",
                resp.status().as_u16(),
                ms(started)
            );
        }
        let gzipped = resp
            .headers()
            .get("content-encoding")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
        let status = resp.status();
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("x-request-id");
        let etag = header("etag");
        let bytes = resp
            .bytes()
            .map_err(|e| self.transport_error(&e, &method, path, &rid))?;
        let bytes = if gzipped && !bytes.is_empty() {
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out)
                .map_err(|e| {
                    CliError::new(
                        exit::PROTOCOL,
                        format!("the runtime at {} sent a corrupt gzip body", self.base),
                    )
                    .cause(e.to_string())
                })?;
            bytes::Bytes::from(out)
        } else {
            bytes
        };
        let not_modified = status == reqwest::StatusCode::NOT_MODIFIED && if_none_match.is_some();
        if !status.is_success() && !not_modified {
            return Err(runtime_error(status.as_u16(), &bytes, request_id));
        }
        Ok(Answer {
            not_modified,
            etag,
            bytes,
        })
    }

    fn transport_error(
        &self,
        e: &reqwest::Error,
        method: &Method,
        path: &str,
        rid: &str,
    ) -> CliError {
        if e.is_timeout() && !e.is_connect() {
            // Connected and asked, but no answer within --timeout: the runtime may still be
            // working on it (and finish it: a tool call is not undone), so say exactly that.
            let secs = self.timeout.as_secs_f64();
            return CliError::new(
                exit::UNREACHABLE,
                format!(
                    "no answer from the runtime at {} within --timeout {secs:.0}s ({method} {path}, request ID {rid})",
                    self.base
                ),
            )
            .cause("the request was sent; the runtime may still complete it")
            .hint(format!(
                "raise --timeout for long calls; the runtime's audit (`GET /v1/audit/events?requestId={rid}`) shows whether and how it finished"
            ));
        }
        let err = if e.is_timeout() {
            CliError::new(
                exit::UNREACHABLE,
                format!("the runtime at {} did not answer in time", self.base),
            )
        } else {
            CliError::new(
                exit::UNREACHABLE,
                format!("cannot reach the runtime at {}", self.base),
            )
        };
        let causes = chain(e);
        let tls = causes
            .iter()
            .any(|c| c.contains("certificate") || c.contains("handshake") || c.contains("alert"));
        let https = self.base.starts_with("https://");
        let err = causes.into_iter().fold(err, CliError::cause);
        if tls {
            err.hint("the TLS handshake failed: for a runtime with a private CA pass --ca-file (OPEN_CLI_CA_FILE); for one that asks for a client certificate pass --client-cert and --client-key")
        } else if https {
            // A TLS 1.3 server that wants a client certificate refuses after the client's side
            // of the handshake: the client sees a closed connection or a broken pipe instead.
            err.hint("is it running, and does it accept this client? A runtime that asks for a client certificate needs --client-cert and --client-key (OPEN_CLI_CLIENT_CERT, OPEN_CLI_CLIENT_KEY); one with a private CA needs --ca-file")
        } else {
            err.hint("is it running? Start one with `open-cli-toolbox --config <file>`, or point --runtime / OPEN_CLI_RUNTIME_URL at the right address")
        }
    }
}

fn ms(since: std::time::Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// A request ID of this CLI's own (`cli-` and 16 hex digits): unique enough per process and
/// call (time, process, a counter), and of the characters the runtime accepts as inbound IDs.
fn request_id() -> String {
    use sha2::Digest as _;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let digest = sha2::Sha256::digest(format!("{now}:{}:{n}", std::process::id()));
    format!("cli-{}", hex::encode(&digest[..8]))
}

/// Turn an error response into a CLI error, keeping the runtime's code and request ID.
fn runtime_error(status: u16, body: &[u8], request_id: Option<String>) -> CliError {
    let Ok(ErrorBody { error }) = serde_json::from_slice::<ErrorBody>(body) else {
        let text = String::from_utf8_lossy(body);
        let excerpt: String = text.chars().take(300).collect();
        return CliError::new(
            exit::REQUEST_FAILED,
            format!("the runtime answered HTTP {status}"),
        )
        .cause(excerpt.trim().to_string());
    };
    let mut err = CliError::new(
        exit::REQUEST_FAILED,
        format!(
            "the runtime refused the request (HTTP {status}, {})",
            error.code
        ),
    )
    .cause(error.message);
    err.code = Some(error.code.clone());
    if let Some(id) = error.request_id.or(request_id) {
        err = err.cause(format!("request id: {id}"));
    }
    match error.code.as_str() {
        codes::RUNTIME_ATTACH_MISMATCH => err.hint(
            "the runtime serves another config; fix `runtime.remote.requestConfigPath` or point --runtime at the runtime for this config",
        ),
        codes::UNKNOWN_AGENT_PROFILE => err.exit_usage().hint("list the profiles with `open-cli runtime info` (catalog.views)"),
        codes::INVALID_REQUEST => err.exit_usage(),
        codes::AUTHN_FAILED => err.hint("your runtime token is missing, expired or not accepted: log in with `open-cli auth login`, or check `runtime.remote.oauth`"),
        // Execute refusals (docs/execution.md).
        codes::APPROVAL_REQUIRED => err.hint("this tool requires approval: re-run with --approval"),
        codes::CREDENTIALS_UNAVAILABLE => err.hint(
            "the runtime cannot resolve a secret this tool needs; set it in the runtime config's `secrets` (e.g. \"<service>.<scheme>\") and check with `open-cli-toolbox validate`",
        ),
        codes::TOOL_NOT_FOUND => err.exit_usage().hint("the catalog changed; list the tools with `open-cli catalog list`"),
        codes::NOT_IMPLEMENTED => err.hint("this runtime does not implement it; compare `open-cli runtime info` (capabilities)"),
        codes::MANAGED_DENY | codes::POLICY_DENY | codes::CURATED_DENY | codes::AUTHZ_DENIED => {
            err.hint("the runtime's policy does not allow this tool for you; see `open-cli tool schema <tool>` and the runtime's policy")
        }
        _ => err,
    }
}

impl CliError {
    fn exit_usage(mut self) -> Self {
        self.exit = exit::USAGE;
        self
    }
}
