//! The validated `.cli.json` model.
//!
//! These types have no `Deserialize`: they are produced only by [`crate::decode`], which
//! checks every key and value and reports problems with their key paths. They do implement
//! `Serialize` (in the file's own camelCase spelling) so `config show` can print the effective
//! configuration; secret values are redacted on the way out, and `Debug` redacts them too.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

/// Declares a string enumeration with its wire spelling, `ALL` for messages and lookups.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($s),+];

            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($s => Some(Self::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

str_enum!(
    /// `mode.default` and agent profile modes.
    ModeKind { Discover => "discover", Curated => "curated" }
);
str_enum!(
    /// `runtime.mode`. This implementation is always a remote runtime.
    RuntimeMode { Auto => "auto", Embedded => "embedded", Local => "local", Remote => "remote" }
);
str_enum!(
    /// `sources.<name>.type`.
    SourceType { ApiCatalog => "apiCatalog", ServiceRoot => "serviceRoot", OpenApi => "openapi", Mcp => "mcp" }
);
str_enum!(
    /// `sources.<name>.transport.type`.
    McpTransportType { Stdio => "stdio", Sse => "sse", StreamableHttp => "streamable-http" }
);
str_enum!(
    /// `secrets.<key>.type` for plain secret references.
    SecretType { Literal => "literal", Env => "env", File => "file", OsKeychain => "osKeychain", Exec => "exec" }
);
str_enum!(
    /// OAuth modes of `oauth2` secrets and MCP transport `oauth`.
    /// `tokenExchange` (an extension, `oauth2` secrets only): the upstream token is obtained per
    /// caller by exchanging the caller's runtime token (RFC 8693).
    OAuthMode { AuthorizationCode => "authorizationCode", ClientCredentials => "clientCredentials", OpenIdConnect => "openIdConnect", TokenExchange => "tokenExchange" }
);
str_enum!(
    /// Where OAuth tokens are cached.
    TokenStorage { Instance => "instance", Memory => "memory" }
);
str_enum!(
    /// `runtime.remote.oauth.mode`: how the CLI obtains its runtime token.
    RemoteOAuthMode { ProvidedToken => "providedToken", OAuthClient => "oauthClient", BrowserLogin => "browserLogin" }
);
str_enum!(
    /// `runtime.server.auth.clientAuthMethod` (introspection client authentication).
    ClientAuthMethod { ClientSecretBasic => "client_secret_basic", ClientSecretPost => "client_secret_post" }
);
str_enum!(
    /// `runtime.server.auth.validationProfile`.
    ValidationProfile { OidcJwks => "oidc_jwks", OAuth2Introspection => "oauth2_introspection" }
);

/// A whole, validated `.cli.json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub cli: String,
    pub mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<Runtime>,
    pub sources: BTreeMap<String, Source>,
    pub services: BTreeMap<String, Service>,
    #[serde(skip_serializing_if = "Curation::is_empty")]
    pub curation: Curation,
    #[serde(skip_serializing_if = "Agents::is_empty")]
    pub agents: Agents,
    pub policy: Policy,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, Secret>,
    /// `policy.deny` of the managed scope file: denied whatever other scopes say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managed_deny: Vec<String>,
}

impl Config {
    /// Whether an upstream credential is obtained by exchanging the caller's runtime token
    /// (an `oauth2` secret with `mode: tokenExchange`): only then does the runtime keep a
    /// verified caller's token beside its principal.
    pub fn exchanges_caller_tokens(&self) -> bool {
        self.secrets
            .values()
            .any(|s| matches!(s, Secret::OAuth2(o) if o.settings.mode == OAuthMode::TokenExchange))
    }

    /// `runtime.server.auth`, when runtime authentication is configured.
    pub fn server_auth(&self) -> Option<&ServerAuth> {
        self.runtime.as_ref()?.server.as_ref()?.auth.as_ref()
    }

    /// `runtime.server.refresh.timeoutSeconds`, when set.
    pub fn refresh_timeout_seconds(&self) -> Option<u64> {
        self.runtime
            .as_ref()?
            .server
            .as_ref()?
            .refresh_timeout_seconds
    }

    /// `runtime.server.passThrough` (defaults when unset).
    pub fn pass_through(&self) -> PassThrough {
        self.runtime
            .as_ref()
            .and_then(|r| r.server.as_ref())
            .map(|s| s.pass_through.clone())
            .unwrap_or_default()
    }

    /// `runtime.server.audit` (defaults when unset).
    pub fn audit_settings(&self) -> AuditSettings {
        self.runtime
            .as_ref()
            .and_then(|r| r.server.as_ref())
            .map(|s| s.audit.clone())
            .unwrap_or_default()
    }

    /// `runtime.server` (defaults when unset).
    pub fn server(&self) -> std::borrow::Cow<'_, RuntimeServer> {
        match self.runtime.as_ref().and_then(|r| r.server.as_ref()) {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(RuntimeServer::default()),
        }
    }

    /// `runtime.server.metrics` (defaults when unset).
    pub fn metrics_settings(&self) -> MetricsSettings {
        self.runtime
            .as_ref()
            .and_then(|r| r.server.as_ref())
            .map(|s| s.metrics.clone())
            .unwrap_or_default()
    }

    /// `runtime.server.documents` (empty lists when unset).
    pub fn document_access(&self) -> DocumentAccess {
        self.runtime
            .as_ref()
            .and_then(|r| r.server.as_ref())
            .map(|s| s.documents.clone())
            .unwrap_or_default()
    }

    /// The upstream settings of a service: its own, over `runtime.server.upstream`, over the
    /// built-in defaults.
    pub fn upstream(&self, service_id: &str) -> Upstream {
        let defaults = self
            .runtime
            .as_ref()
            .and_then(|r| r.server.as_ref())
            .map(|s| s.upstream.clone())
            .unwrap_or_default();
        // Services of an API catalog are `<service>.<api>`: they inherit the parent's settings.
        let own = self.services.get(service_id).or_else(|| {
            service_id
                .split_once('.')
                .and_then(|(parent, _)| self.services.get(parent))
        });
        own.map(|s| s.upstream.clone())
            .unwrap_or_default()
            .resolve(&defaults)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Mode {
    pub default: ModeKind,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Runtime {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<RuntimeMode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<Remote>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<RuntimeServer>,
}

/// `runtime.remote`: how a client reaches the runtime.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_config_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<RemoteOAuth>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteOAuth {
    pub mode: RemoteOAuthMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_ref: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<RemoteOAuthClient>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_login: Option<BrowserLogin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delegation: Option<Delegation>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemoteOAuthClient {
    #[serde(rename = "tokenURL")]
    pub token_url: String,
    #[serde(rename = "clientId")]
    pub client_id: SecretRef,
    #[serde(rename = "clientSecret")]
    pub client_secret: SecretRef,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BrowserLogin {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Delegation {
    pub enabled: bool,
    #[serde(rename = "tokenExchangeURL", skip_serializing_if = "Option::is_none")]
    pub token_exchange_url: Option<String>,
    /// The client ID to present at the token-exchange endpoint (an extension); unset: the
    /// runtime's browser-login client.
    #[serde(rename = "clientId", skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeServer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<ServerAuth>,
    /// The sidecar route (`<prefix>/<service alias>/<upstream path>`).
    pub pass_through: PassThrough,
    /// Upstream defaults for every service (`services.<id>.upstream` overrides per field).
    pub upstream: UpstreamSettings,
    /// Where documents may come from beyond the defaults.
    pub documents: DocumentAccess,
    /// `runtime.server.refresh.timeoutSeconds`: the deadline of one catalog build (refresh,
    /// SIGHUP, start-up); unset: the runtime's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_timeout_seconds: Option<u64>,
    /// `runtime.server.audit`: how durable the audit log is, and what happens when it
    /// cannot be written.
    pub audit: AuditSettings,
    /// `runtime.server.metrics`: what `GET /metrics` exports and who may read it.
    pub metrics: MetricsSettings,
    /// `runtime.server.tls`: TLS (and mutual TLS) on the listener; unset: plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    /// `runtime.server.limits`: connection deadlines, request-head bounds, per-service
    /// concurrency. Unset fields take the runtime's defaults (or the command line's flags).
    pub limits: ServerLimits,
    /// `runtime.server.rateLimits`: token buckets per principal, tool and service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
}

/// `runtime.server.tls`. Relative paths are anchored to the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    pub cert_file: String,
    pub key_file: String,
    #[serde(rename = "clientCAFile", skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<String>,
    pub client_auth: ClientAuth,
}

/// `runtime.server.tls.clientAuth`: whether callers must present a certificate chained to
/// `clientCAFile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ClientAuth {
    /// No client certificate is asked for.
    None,
    /// A certificate is asked for; one that is sent must chain to the CA.
    Optional,
    /// A caller without a certificate chained to the CA is refused in the handshake.
    Required,
}

impl ClientAuth {
    pub const ALL: &'static [&'static str] = &["none", "optional", "required"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Self::None),
            "optional" => Some(Self::Optional),
            "required" => Some(Self::Required),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

/// `runtime.server.limits`. `None`: the runtime's default (see docs/security.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerLimits {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_min_rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// The request line and header fields together, in bytes (431 beyond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<u64>,
    /// Header fields per request (431 beyond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_headers: Option<u64>,
    /// The request line (method, target, version), in bytes (414 beyond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_line_bytes: Option<u64>,
    /// Requests in progress per upstream service, on this replica (503 beyond).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent_per_service: Option<u64>,
}

/// One token bucket: refills at `rate` tokens per `per`, holds at most `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Requests allowed per `period_seconds`.
    pub requests: u64,
    /// 1 (`requestsPerSecond`), 60 (`requestsPerMinute`) or 3600 (`requestsPerHour`).
    pub period_seconds: u64,
    /// The bucket's size: requests allowed at once after a quiet period (default: `requests`).
    pub burst: u64,
}

/// `runtime.server.rateLimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimits {
    /// One bucket per principal (the token's subject; anonymous callers share one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_principal: Option<RateLimit>,
    /// One bucket per tool ID listed (shared by every caller).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub tools: std::collections::BTreeMap<String, RateLimit>,
    /// One bucket per service ID listed (shared by every caller and pass-through request).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub services: std::collections::BTreeMap<String, RateLimit>,
    /// `redis://host:port[/db]`: buckets shared by every replica using this store; unset:
    /// per replica, in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// How long one check may wait for the store, 1–10000 ms (default 100).
    pub store_timeout_ms: u64,
    /// When the store cannot be reached: `allow` (fail open, counted and logged) or `deny`
    /// (fail closed: 503).
    pub on_store_error: StoreErrorMode,
}

/// `runtime.server.rateLimits.onStoreError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum StoreErrorMode {
    Allow,
    Deny,
}

/// `runtime.server.metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSettings {
    /// Also count tool calls by tool ID (`open_cli_tool_calls_by_tool_total`): one series per
    /// tool and outcome, so off by default.
    pub tool_labels: bool,
    /// Serve `/metrics` without a token even when runtime auth is on (for a scraper on a
    /// private network); otherwise it needs scope `metrics:read` then.
    pub public: bool,
}

/// `runtime.server.audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditSettings {
    pub durability: AuditDurability,
    /// `interval`: sync at most this often (and within this long of a write), 1–1000 ms.
    pub interval_ms: u64,
    /// Refuse tool calls (`503 audit_unavailable`) while the audit log cannot be written.
    pub fail_closed: bool,
    /// `rotation`: when the log file is rotated and how long rotated files are kept.
    pub rotation: AuditRotation,
    /// `export`: ship every record to an OTLP log receiver (a SIEM's collector).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<AuditExport>,
}

/// `runtime.server.audit.export`: OTLP/HTTP log export of the audit records. The endpoint is
/// `endpoint`, else `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`, else `OTEL_EXPORTER_OTLP_ENDPOINT` +
/// `/v1/logs`; headers come from `OTEL_EXPORTER_OTLP_LOGS_HEADERS` / `OTEL_EXPORTER_OTLP_HEADERS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditExport {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How often the exporter looks for new records when it has caught up, 50–60000 ms.
    pub interval_ms: u64,
    /// Records per export request, 1–1000.
    pub batch_size: u64,
}

impl Default for AuditExport {
    fn default() -> Self {
        Self {
            endpoint: None,
            interval_ms: 1000,
            batch_size: 512,
        }
    }
}

/// `runtime.server.audit.rotation`. Nothing set: the file is never rotated by the runtime
/// (an operator's `logrotate` can still move it and send SIGUSR1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRotation {
    /// Rotate once the file holds this many bytes (after the batch that crossed it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Rotate a file this many hours after it was opened (at its next write).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_hours: Option<u64>,
    /// Keep at most this many rotated files (the oldest go first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep: Option<u64>,
    /// Delete rotated files older than this many days.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_days: Option<u64>,
    /// gzip rotated files (`audit.log.<time>.gz`).
    pub compress: bool,
}

impl AuditSettings {
    pub const DEFAULT_INTERVAL_MS: u64 = 200;
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            durability: AuditDurability::Interval,
            interval_ms: Self::DEFAULT_INTERVAL_MS,
            fail_closed: false,
            rotation: AuditRotation::default(),
            export: None,
        }
    }
}

/// `runtime.server.audit.durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AuditDurability {
    /// A tool call's record is synced to disk before its answer is sent.
    Always,
    /// Records are synced at most every `intervalMs`.
    Interval,
    /// Records are left to the kernel.
    None,
}

impl AuditDurability {
    pub const ALL: &'static [&'static str] = &["always", "interval", "none"];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "always" => Some(Self::Always),
            "interval" => Some(Self::Interval),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// `runtime.server.documents`: what documents (OpenAPI descriptions and the documents their
/// `$ref`s reach, overlays, skills, workflows, linksets) may reference beyond the defaults.
/// By default a remote document references only its own origin and local files are read only
/// inside the config file's directory tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentAccess {
    /// Origins (`scheme://host[:port]`) any remote document may reference or redirect to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Directories local documents may also be read from (relative paths are anchored to the
    /// config file's directory).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_directories: Vec<String>,
}

/// `runtime.server.passThrough`.
#[derive(Debug, Clone, Serialize)]
pub struct PassThrough {
    pub enabled: bool,
    /// Starts with `/`, no trailing `/`.
    pub prefix: String,
    /// Identity headers (lower case, [`crate::wire::IDENTITY_HEADERS`]) the caller may send
    /// upstream; all others are dropped.
    #[serde(rename = "forwardHeaders", skip_serializing_if = "Vec::is_empty")]
    pub forward_headers: Vec<String>,
}

impl Default for PassThrough {
    fn default() -> Self {
        Self {
            enabled: true,
            prefix: "/proxy".into(),
            forward_headers: Vec::new(),
        }
    }
}

/// How the runtime talks to a service's upstream. Every field is optional; unset fields fall
/// back to `runtime.server.upstream`, then to the defaults in [`UpstreamSettings::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_timeout_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_response_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// PEM bundle trusted in addition to the system roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Speak HTTP/2 without TLS (prior knowledge) to a plaintext upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub h2c: Option<bool>,
}

/// [`UpstreamSettings`] with every default applied.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Upstream {
    pub connect_timeout_ms: u64,
    pub read_timeout_ms: u64,
    pub total_timeout_ms: u64,
    pub max_request_bytes: u64,
    pub max_response_bytes: u64,
    pub retries: u32,
    pub ca_file: Option<String>,
    pub h2c: bool,
}

impl UpstreamSettings {
    /// `self` over `defaults` over the built-in defaults.
    pub fn resolve(&self, defaults: &UpstreamSettings) -> Upstream {
        Upstream {
            connect_timeout_ms: self
                .connect_timeout_ms
                .or(defaults.connect_timeout_ms)
                .unwrap_or(5_000),
            read_timeout_ms: self
                .read_timeout_ms
                .or(defaults.read_timeout_ms)
                .unwrap_or(60_000),
            total_timeout_ms: self
                .total_timeout_ms
                .or(defaults.total_timeout_ms)
                .unwrap_or(120_000),
            max_request_bytes: self
                .max_request_bytes
                .or(defaults.max_request_bytes)
                .unwrap_or(1024 * 1024),
            max_response_bytes: self
                .max_response_bytes
                .or(defaults.max_response_bytes)
                .unwrap_or(10 * 1024 * 1024),
            retries: self.retries.or(defaults.retries).unwrap_or(2),
            ca_file: self.ca_file.clone().or_else(|| defaults.ca_file.clone()),
            h2c: self.h2c.or(defaults.h2c).unwrap_or(false),
        }
    }
}

/// `runtime.server.auth`: how the runtime validates callers' bearer tokens.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerAuth {
    pub validation_profile: ValidationProfile,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(rename = "jwksURL", skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    pub audience: String,
    #[serde(rename = "introspectionURL", skip_serializing_if = "Option::is_none")]
    pub introspection_url: Option<String>,
    #[serde(rename = "authorizationURL", skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    #[serde(rename = "tokenURL", skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser_client_id: Option<String>,
    /// The provider's RFC 8628 device authorization endpoint, for `open-cli auth login
    /// --device` (advertised in `/v1/auth/browser-config`; without it the CLI asks the
    /// issuer's metadata).
    #[serde(
        rename = "deviceAuthorizationURL",
        skip_serializing_if = "Option::is_none"
    )]
    pub device_authorization_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<SecretRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    /// Clock skew allowed for `exp`, `nbf` and `iat` (default 60 s).
    pub leeway_seconds: u64,
    /// Read scopes from this claim only (string or array); default: `scope` and `scp`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope_claim: Option<String>,
    /// How the runtime authenticates to the introspection endpoint.
    pub client_auth_method: ClientAuthMethod,
    /// How long an active introspection answer is reused (never past the token's `exp`);
    /// 0 disables the cache. Revocation takes effect at most this long after it happens.
    pub introspection_cache_seconds: u64,
    /// More OpenID providers trusted besides `issuer` (`oidc_jwks`); a token's `iss` picks
    /// the provider whose keys verify it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub additional_issuers: Vec<TrustedIssuer>,
    /// Refuse requests (401) that did not come with a verified client certificate, even
    /// with a valid token (needs `runtime.server.tls.clientAuth` `optional` or `required`).
    pub require_client_cert: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct TrustedIssuer {
    pub issuer: String,
    #[serde(rename = "jwksURL", skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
}

/// `sources.<name>`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    #[serde(rename = "type")]
    pub kind: SourceType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Refresh>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<McpTransport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub disabled_tools: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSettings>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Refresh {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u64>,
    pub manual_only: bool,
}

/// `sources.<name>.transport` of an MCP source.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpTransport {
    #[serde(rename = "type")]
    pub kind: McpTransportType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub header_secrets: BTreeMap<String, String>,
}

/// `services.<id>`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overlays: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skills: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub workflows: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub upstream: UpstreamSettings,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Curation {
    pub tool_sets: BTreeMap<String, ToolSet>,
}

impl Curation {
    pub fn is_empty(&self) -> bool {
        self.tool_sets.is_empty()
    }
}

/// A named allow/deny list of tool ID glob patterns.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ToolSet {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Agents {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_profile: Option<String>,
    pub profiles: BTreeMap<String, AgentProfile>,
}

impl Agents {
    pub fn is_empty(&self) -> bool {
        self.default_profile.is_none() && self.profiles.is_empty()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentProfile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<ModeKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_set: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approval_required: Vec<String>,
    pub allow_exec_secrets: bool,
}

/// `secrets.<key>`: a plain reference or OAuth2 client settings.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Secret {
    Ref(SecretRef),
    OAuth2(Box<OAuth2Secret>),
    /// `type: byPrincipal` (an extension): each caller's own value.
    ByPrincipal(Box<ByPrincipalSecret>),
}

/// `secrets.<key>` with `type: byPrincipal`: one reference per principal (the runtime token's
/// `sub`, else `client_id`), so one runtime serves many callers with their own upstream keys.
/// A caller with no entry gets `default` when it is set, else the call is refused.
#[derive(Debug, Clone, Serialize)]
pub struct ByPrincipalSecret {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub principals: BTreeMap<String, SecretRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<SecretRef>,
}

/// Where a secret value comes from. `Debug` and `Serialize` never show a literal value.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub kind: SecretType,
    /// The literal value, env variable name, file path or keychain entry (by `kind`).
    pub value: Option<String>,
    /// argv for `exec` secrets.
    pub command: Vec<String>,
}

const REDACTED: &str = "<redacted>";

impl SecretRef {
    /// The reference as it may be shown to people: literal values redacted.
    fn shown_value(&self) -> Option<&str> {
        match (self.kind, self.value.as_deref()) {
            (SecretType::Literal, Some(_)) => Some(REDACTED),
            (_, v) => v,
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRef")
            .field("kind", &self.kind)
            .field("value", &self.shown_value())
            .field("command", &self.command)
            .finish()
    }
}

impl Serialize for SecretRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("type", &self.kind)?;
        if let Some(v) = self.shown_value() {
            m.serialize_entry("value", v)?;
        }
        if !self.command.is_empty() {
            m.serialize_entry("command", &self.command)?;
        }
        m.end()
    }
}

/// `secrets.<key>` with `type: oauth2`.
#[derive(Debug, Clone, Serialize)]
pub struct OAuth2Secret {
    #[serde(rename = "type")]
    pub kind: &'static str,
    #[serde(flatten)]
    pub settings: OAuthSettings,
}

/// OAuth client settings shared by `oauth2` secrets and MCP transport `oauth`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthSettings {
    pub mode: OAuthMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(rename = "authorizationURL", skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    #[serde(rename = "tokenURL", skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<SecretRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretRef>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interactive: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_port: Option<u16>,
    #[serde(rename = "redirectURI", skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_storage: Option<TokenStorage>,
    /// How the client authenticates at the token endpoint (default `client_secret_basic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth_method: Option<ClientAuthMethod>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_secrets_never_show() {
        let s = SecretRef {
            kind: SecretType::Literal,
            value: Some("hunter2".into()),
            command: vec![],
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
        assert!(json.contains(REDACTED));
        let env = SecretRef {
            kind: SecretType::Env,
            value: Some("API_KEY".into()),
            command: vec![],
        };
        assert!(serde_json::to_string(&env).unwrap().contains("API_KEY"));
    }
}
