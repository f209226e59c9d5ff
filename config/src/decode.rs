//! Decoding and validating a `.cli.json` document into [`Config`].
//!
//! One pass over the document records every problem (unknown keys, wrong types, bad enum
//! values, missing required keys, broken cross-references) with its key path. The rules follow
//! the open-cli config contract: `additionalProperties: false` everywhere, per-source-type key
//! rules, MCP transport field rules, and the cross-reference checks between services, sources,
//! tool sets and agent profiles.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::diag::{Diagnostic, join};
use crate::model::*;
use crate::reader::{Cx, Obj, check_one_of, kind};

/// Decode a parsed document. Returns the config only when no problem was found.
pub fn decode(doc: &Value) -> Result<Config, Vec<Diagnostic>> {
    decode_with(doc, Cx::new())
}

/// Check one scope file on its own: every rule except required keys and cross-references,
/// which only the merged result must satisfy.
pub fn check_relaxed(doc: &Value) -> Vec<Diagnostic> {
    match decode_with(doc, Cx::relaxed()) {
        Ok(_) => Vec::new(),
        Err(items) => items,
    }
}

fn decode_with(doc: &Value, cx: Cx) -> Result<Config, Vec<Diagnostic>> {
    let config = decode_root(&cx, doc);
    match config {
        Some(c) if !cx.has_errors() => Ok(c),
        _ => Err(cx.into_items()),
    }
}

fn decode_root(cx: &Cx, doc: &Value) -> Option<Config> {
    let mut o = Obj::new(cx, doc, "")?;
    let cli = o.required("cli");
    let mode = o.object("mode").and_then(decode_mode);
    if !o.has("mode") {
        cx.missing("mode", "is required");
    }
    let runtime = o.object("runtime").map(decode_runtime);
    let sources = decode_map(&mut o, "sources", decode_source);
    let mcp_servers = decode_map(&mut o, "mcpServers", decode_mcp_server);
    if !o.has("sources") && !o.has("mcpServers") && runtime.is_none() {
        cx.missing(
            "",
            "at least one of `sources`, `mcpServers` or `runtime` is required",
        );
    }
    let mut services = decode_map(&mut o, "services", decode_service);
    let mut sources = sources;
    for (name, source) in mcp_servers {
        if sources.contains_key(&name) {
            cx.err(
                join("mcpServers", &name),
                format!("is ambiguous with `sources.{name}`; define the server once"),
            );
            continue;
        }
        services.entry(name.clone()).or_insert_with(|| Service {
            source: name.clone(),
            alias: None,
            overlays: Vec::new(),
            skills: Vec::new(),
            workflows: Vec::new(),
            upstream: UpstreamSettings::default(),
        });
        sources.insert(name, source);
    }
    let curation = o
        .object("curation")
        .map(decode_curation)
        .unwrap_or_default();
    let agents = o.object("agents").map(decode_agents).unwrap_or_default();
    let policy = o.object("policy").map(decode_policy).unwrap_or_default();
    let secrets = decode_map(&mut o, "secrets", decode_secret);
    o.finish();
    if !cx.is_relaxed() {
        check_references(cx, &sources, &services, &curation, &agents);
    }
    Some(Config {
        cli: cli?,
        mode: mode?,
        runtime,
        sources,
        services,
        curation,
        agents,
        policy,
        secrets,
        managed_deny: Vec::new(),
    })
}

/// Decode a `{ name: object }` map, checking each name is a usable identifier.
fn decode_map<T>(
    o: &mut Obj<'_>,
    key: &'static str,
    f: impl Fn(Obj<'_>) -> Option<T>,
) -> BTreeMap<String, T> {
    let cx = o.cx();
    let mut out = BTreeMap::new();
    for (name, v, path) in o.entries(key) {
        if key != "secrets" && !is_identifier(&name) {
            cx.err(
                &path,
                "name must start with a letter or digit and contain only letters, digits, `_`, `-` and `.`",
            );
        }
        if let Some(t) = Obj::new(cx, v, &path).and_then(&f) {
            out.insert(name, t);
        }
    }
    out
}

/// Identifiers of sources, services, aliases, tool sets and profiles. Tool IDs are
/// `<serviceId>:<operation>`, so a `:` in a service ID would make them ambiguous.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn decode_mode(mut o: Obj<'_>) -> Option<Mode> {
    if !o.has("default") {
        o.cx().missing(o.key_path("default"), "is required");
    }
    let default = o.one_of("default", ModeKind::ALL).and_then(ModeKind::parse);
    o.finish();
    Some(Mode { default: default? })
}

fn decode_runtime(mut o: Obj<'_>) -> Runtime {
    let cx = o.cx();
    // `local`, `embedded` and `auto` (local unless `runtime.remote.url` is set): the CLI
    // starts `open-cli-toolbox` for the config itself (cli/src/local.rs).
    let mode = o
        .one_of("mode", RuntimeMode::ALL)
        .and_then(RuntimeMode::parse);
    if o.has("local") {
        cx.err(
            o.key_path("local"),
            "is no longer supported; configure a remote runtime (`runtime.remote`) instead",
        );
    }
    let remote = o.object("remote").map(decode_remote);
    let server = o.object("server").map(|mut s| {
        let auth = s.object("auth").and_then(decode_server_auth);
        let pass_through = s
            .object("passThrough")
            .map(decode_pass_through)
            .unwrap_or_default();
        let upstream = s
            .object("upstream")
            .map(decode_upstream)
            .unwrap_or_default();
        let documents = s
            .object("documents")
            .map(decode_documents)
            .unwrap_or_default();
        let refresh_timeout_seconds = s.object("refresh").and_then(|mut r| {
            let t = r.uint("timeoutSeconds", 1, 3600);
            r.finish();
            t
        });
        let audit = s.object("audit").map(decode_audit).unwrap_or_default();
        let metrics = s
            .object("metrics")
            .map(|mut m| {
                let metrics = MetricsSettings {
                    tool_labels: m.bool("toolLabels").unwrap_or(false),
                    public: m.bool("public").unwrap_or(false),
                };
                m.finish();
                metrics
            })
            .unwrap_or_default();
        let tls = s.object("tls").and_then(decode_listener_tls);
        let limits = s.object("limits").map(decode_limits).unwrap_or_default();
        let rate_limits = s.object("rateLimits").map(decode_rate_limits);
        if let Some(a) = &auth
            && a.require_client_cert
            && !tls.as_ref().is_some_and(|t| t.client_auth != ClientAuth::None)
        {
            cx.err(
                format!("{}.auth.requireClientCert", s.path()),
                "needs `runtime.server.tls` with `clientCAFile` (client certificates are verified against it)",
            );
        }
        s.finish();
        RuntimeServer {
            auth,
            pass_through,
            upstream,
            documents,
            refresh_timeout_seconds,
            audit,
            metrics,
            tls,
            limits,
            rate_limits,
        }
    });
    o.finish();
    Runtime {
        mode,
        remote,
        server,
    }
}

fn decode_pass_through(mut o: Obj<'_>) -> PassThrough {
    let defaults = PassThrough::default();
    let enabled = o.bool("enabled").unwrap_or(defaults.enabled);
    let prefix = match o.string("prefix") {
        Some(p) => {
            let trimmed = p.trim_end_matches('/');
            let ok = trimmed.starts_with('/')
                && trimmed.len() > 1
                && !trimmed.starts_with("/v1")
                && trimmed
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
                && !trimmed.contains("//");
            if !ok {
                o.cx().err(
                    o.key_path("prefix"),
                    format!("must be a path like `/proxy` (letters, digits, `-`, `_`, `.`; not under `/v1`), found `{p}`"),
                );
            }
            trimmed.to_string()
        }
        None => defaults.prefix,
    };
    let forward_headers = forward_headers(&mut o);
    o.finish();
    PassThrough {
        enabled,
        prefix,
        forward_headers,
    }
}

/// `runtime.server.passThrough.forwardHeaders`: identity headers the caller may send
/// upstream (see [`crate::wire::IDENTITY_HEADERS`]).
fn forward_headers(o: &mut Obj<'_>) -> Vec<String> {
    let names = o.strings("forwardHeaders");
    let mut out = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let lower = name.to_ascii_lowercase();
        let why = if crate::wire::is_method_override_header(&lower) {
            Some("is a method-override header: those are always refused")
        } else if lower == "forwarded" || lower.starts_with("x-forwarded-") {
            Some("is set by the runtime itself and cannot be kept")
        } else if !crate::wire::may_keep_header(&lower) {
            Some(
                "is not a header the runtime drops (only these can be kept: `Forwarded`-style identity headers such as `X-Real-IP`, `True-Client-IP`, `X-Original-URL`; see docs/security.md)",
            )
        } else {
            None
        };
        match why {
            Some(why) => o.cx().err(
                format!("{}[{i}]", o.key_path("forwardHeaders")),
                format!("`{name}` {why}"),
            ),
            None => out.push(lower),
        }
    }
    out
}

/// `runtime.server.tls`.
fn decode_listener_tls(mut o: Obj<'_>) -> Option<ListenerTls> {
    let cert_file = o.required("certFile");
    let key_file = o.required("keyFile");
    let client_ca_file = o.nonempty("clientCAFile");
    let client_auth = o
        .one_of("clientAuth", ClientAuth::ALL)
        .and_then(ClientAuth::parse);
    let client_auth = match (client_auth, &client_ca_file) {
        (Some(a @ (ClientAuth::Optional | ClientAuth::Required)), None) => {
            o.cx().missing(
                o.key_path("clientCAFile"),
                format!(
                    "is required when clientAuth is `{}` (client certificates are verified against it)",
                    a.as_str()
                ),
            );
            a
        }
        (Some(ClientAuth::None), Some(_)) => {
            o.cx().err(
                o.key_path("clientAuth"),
                "is `none` but clientCAFile is set: use `optional` or `required`, or remove clientCAFile",
            );
            ClientAuth::None
        }
        (Some(a), _) => a,
        (None, Some(_)) => ClientAuth::Required,
        (None, None) => ClientAuth::None,
    };
    o.finish();
    Some(ListenerTls {
        cert_file: cert_file?,
        key_file: key_file?,
        client_ca_file,
        client_auth,
    })
}

/// `runtime.server.limits`.
fn decode_limits(mut o: Obj<'_>) -> ServerLimits {
    let limits = ServerLimits {
        header_timeout_seconds: o.uint("headerTimeoutSeconds", 1, 3600),
        idle_timeout_seconds: o.uint("idleTimeoutSeconds", 1, 3600),
        body_timeout_seconds: o.uint("bodyTimeoutSeconds", 1, 3600),
        body_min_rate: o.uint("bodyMinRate", 1, u64::MAX),
        max_connections: o.uint("maxConnections", 1, 1_000_000),
        max_header_bytes: o.uint("maxHeaderBytes", 1024, 1_048_575),
        max_headers: o.uint("maxHeaders", 8, 10_000),
        max_request_line_bytes: o.uint("maxRequestLineBytes", 64, 1_048_575),
        max_concurrent_per_service: o.uint("maxConcurrentPerService", 1, 1_000_000),
    };
    o.finish();
    limits
}

/// `runtime.server.rateLimits`.
fn decode_rate_limits(mut o: Obj<'_>) -> RateLimits {
    let per_principal = o.object("perPrincipal").and_then(decode_rate_limit);
    let keyed = |o: &mut Obj<'_>, key: &'static str| {
        let cx = o.cx();
        let mut out = BTreeMap::new();
        for (name, v, path) in o.entries(key) {
            if let Some(limit) = Obj::new(cx, v, &path).and_then(decode_rate_limit) {
                out.insert(name, limit);
            }
        }
        out
    };
    let tools = keyed(&mut o, "tools");
    let services = keyed(&mut o, "services");
    let store = o.nonempty("store");
    if let Some(url) = &store
        && !(url.starts_with("redis://") || url.starts_with("rediss://"))
    {
        o.cx().err(
            o.key_path("store"),
            format!(
                "must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), found `{url}`"
            ),
        );
    }
    let store_timeout_ms = o.uint("storeTimeoutMs", 1, 10_000).unwrap_or(100);
    let on_store_error = match o.one_of("onStoreError", &["allow", "deny"]) {
        Some("deny") => StoreErrorMode::Deny,
        _ => StoreErrorMode::Allow,
    };
    o.finish();
    RateLimits {
        per_principal,
        tools,
        services,
        store,
        store_timeout_ms,
        on_store_error,
    }
}

/// One token bucket: exactly one of `requestsPerSecond`, `requestsPerMinute`,
/// `requestsPerHour`, and an optional `burst`.
fn decode_rate_limit(mut o: Obj<'_>) -> Option<RateLimit> {
    let rates = [
        ("requestsPerSecond", 1),
        ("requestsPerMinute", 60),
        ("requestsPerHour", 3600),
    ]
    .map(|(k, p)| (k, o.uint(k, 1, 1_000_000_000).map(|n| (n, p))));
    let given: Vec<_> = rates
        .iter()
        .filter_map(|(k, r)| r.map(|r| (*k, r)))
        .collect();
    let burst = o.uint("burst", 1, 1_000_000_000);
    let cx = o.cx();
    let path = o.path().to_string();
    o.finish();
    match given.as_slice() {
        [(_, (requests, period_seconds))] => Some(RateLimit {
            requests: *requests,
            period_seconds: *period_seconds,
            burst: burst.unwrap_or(*requests),
        }),
        [] => {
            cx.missing(
                path,
                "needs one of `requestsPerSecond`, `requestsPerMinute`, `requestsPerHour`",
            );
            None
        }
        _ => {
            cx.err(
                path,
                format!(
                    "sets {}: give one rate",
                    given
                        .iter()
                        .map(|(k, _)| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            );
            None
        }
    }
}

/// `runtime.server.audit`.
fn decode_audit(mut o: Obj<'_>) -> AuditSettings {
    let defaults = AuditSettings::default();
    let durability = o
        .one_of("durability", AuditDurability::ALL)
        .and_then(AuditDurability::parse)
        .unwrap_or(defaults.durability);
    let interval_ms = o
        .uint("intervalMs", 1, 1000)
        .unwrap_or(defaults.interval_ms);
    let fail_closed = o.bool("failClosed").unwrap_or(defaults.fail_closed);
    let rotation = o
        .object("rotation")
        .map(|mut r| {
            let rotation = AuditRotation {
                max_bytes: r.uint("maxBytes", 4096, u64::MAX),
                max_age_hours: r.uint("maxAgeHours", 1, 24 * 366),
                keep: r.uint("keep", 1, 100_000),
                keep_days: r.uint("keepDays", 1, 36_600),
                compress: r.bool("compress").unwrap_or(false),
            };
            r.finish();
            rotation
        })
        .unwrap_or_default();
    let export = o.object("export").map(|mut e| {
        let defaults = AuditExport::default();
        let endpoint = e.string("endpoint");
        if let Some(url) = &endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            e.cx().err(
                e.key_path("endpoint"),
                format!("must be an http:// or https:// URL (the OTLP/HTTP logs endpoint, e.g. http://collector:4318/v1/logs), found `{url}`"),
            );
        }
        let export = AuditExport {
            endpoint,
            interval_ms: e.uint("intervalMs", 50, 60_000).unwrap_or(defaults.interval_ms),
            batch_size: e.uint("batchSize", 1, 1000).unwrap_or(defaults.batch_size),
        };
        e.finish();
        export
    });
    o.finish();
    AuditSettings {
        durability,
        interval_ms,
        fail_closed,
        rotation,
        export,
    }
}

/// `runtime.server.documents`.
fn decode_documents(mut o: Obj<'_>) -> DocumentAccess {
    let cx = o.cx();
    let allowed_origins = o.strings("allowedOrigins");
    let origins_path = o.key_path("allowedOrigins");
    for (i, origin) in allowed_origins.iter().enumerate() {
        if let Err(e) = check_origin(origin) {
            cx.err(format!("{origins_path}[{i}]"), e);
        }
    }
    let allowed_directories = o.strings("allowedDirectories");
    o.finish();
    DocumentAccess {
        allowed_origins,
        allowed_directories,
    }
}

/// An origin as `scheme://host[:port]` (http or https; no path, query, fragment or user info).
fn check_origin(origin: &str) -> Result<(), String> {
    let rest = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let authority = rest.map(|r| r.strip_suffix('/').unwrap_or(r));
    match authority {
        Some(a)
            if !a.is_empty()
                && !a.contains(['/', '?', '#', '@', '\\'])
                && !a.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "must be an origin like `https://specs.example.com` or `http://127.0.0.1:8080` (scheme, host and optional port; no path), found `{origin}`"
        )),
    }
}

/// `runtime.server.upstream` and `services.<id>.upstream`.
fn decode_upstream(mut o: Obj<'_>) -> UpstreamSettings {
    const DAY_MS: u64 = 86_400_000;
    let s = UpstreamSettings {
        connect_timeout_ms: o.uint("connectTimeoutMs", 1, DAY_MS),
        read_timeout_ms: o.uint("readTimeoutMs", 1, DAY_MS),
        total_timeout_ms: o.uint("totalTimeoutMs", 1, DAY_MS),
        max_request_bytes: o.uint("maxRequestBytes", 0, 1 << 40),
        max_response_bytes: o.uint("maxResponseBytes", 0, 1 << 40),
        retries: o.uint("retries", 0, 10).map(|r| r as u32),
        ca_file: o.nonempty("caFile"),
        h2c: o.bool("h2c"),
    };
    o.finish();
    s
}

fn decode_remote(mut o: Obj<'_>) -> Remote {
    let url = o.nonempty("url");
    if let Some(u) = &url {
        check_http_url(o.cx(), &o.key_path("url"), u);
    }
    let request_config_path = o.nonempty("requestConfigPath");
    let oauth = o.object("oauth").and_then(decode_remote_oauth);
    o.finish();
    Remote {
        url,
        request_config_path,
        oauth,
    }
}

fn decode_remote_oauth(mut o: Obj<'_>) -> Option<RemoteOAuth> {
    let cx = o.cx();
    if !o.has("mode") {
        cx.missing(o.key_path("mode"), "is required");
    }
    let mode = o
        .one_of("mode", RemoteOAuthMode::ALL)
        .and_then(RemoteOAuthMode::parse);
    let audience = o.nonempty("audience");
    let scopes = o.strings("scopes");
    let token_ref = o.nonempty("tokenRef");
    if let Some(r) = &token_ref
        && !(r.starts_with("env:") && r.len() > 4 || r.starts_with("file:") && r.len() > 5)
    {
        cx.err(
            o.key_path("tokenRef"),
            format!("must be `env:NAME` or `file:PATH`, found `{r}`"),
        );
    }
    let client = o.object("client").and_then(|mut c| {
        let token_url = c.required("tokenURL");
        if let Some(u) = &token_url {
            check_http_url(cx, &c.key_path("tokenURL"), u);
        }
        let client_id = required_secret_ref(&mut c, "clientId");
        let client_secret = required_secret_ref(&mut c, "clientSecret");
        c.finish();
        Some(RemoteOAuthClient {
            token_url: token_url?,
            client_id: client_id?,
            client_secret: client_secret?,
        })
    });
    let browser_login = o.object("browserLogin").map(|mut b| {
        let callback_port = b.uint("callbackPort", 1, 65535).map(|p| p as u16);
        b.finish();
        BrowserLogin { callback_port }
    });
    let delegation = o.object("delegation").map(|mut d| {
        let enabled = d.bool("enabled").unwrap_or(false);
        let token_exchange_url = d.nonempty("tokenExchangeURL");
        if let Some(u) = &token_exchange_url {
            check_http_url(cx, &d.key_path("tokenExchangeURL"), u);
        }
        let client_id = d.nonempty("clientId");
        let scopes = d.strings("scopes");
        if enabled && scopes.is_empty() {
            cx.missing(
                d.key_path("scopes"),
                "is required when delegation is enabled: the subset of the token's scopes every command runs with",
            );
        }
        d.finish();
        Delegation {
            enabled,
            token_exchange_url,
            client_id,
            scopes,
        }
    });
    match mode {
        Some(RemoteOAuthMode::ProvidedToken) if token_ref.is_none() => cx.missing(
            o.key_path("tokenRef"),
            "is required when mode is `providedToken`",
        ),
        Some(RemoteOAuthMode::OAuthClient) if !o.has("client") => cx.missing(
            o.key_path("client"),
            "is required when mode is `oauthClient`",
        ),
        _ => {}
    }
    o.finish();
    Some(RemoteOAuth {
        mode: mode?,
        audience,
        scopes,
        token_ref,
        client,
        browser_login,
        delegation,
    })
}

fn decode_server_auth(mut o: Obj<'_>) -> Option<ServerAuth> {
    let cx = o.cx();
    let profile = o
        .one_of("validationProfile", ValidationProfile::ALL)
        .and_then(ValidationProfile::parse);
    let legacy = o.one_of("mode", &["oauth2Introspection"]);
    let profile = match (profile, legacy) {
        (Some(p), None) => Some(p),
        (None, Some(_)) | (Some(ValidationProfile::OAuth2Introspection), Some(_)) => {
            Some(ValidationProfile::OAuth2Introspection)
        }
        (Some(_), Some(_)) => {
            cx.err(
                o.key_path("mode"),
                "contradicts `validationProfile`; remove the legacy `mode` key",
            );
            None
        }
        (None, None) => {
            if !o.has("validationProfile") && !o.has("mode") {
                cx.missing(o.key_path("validationProfile"), "is required");
            }
            None
        }
    };
    let issuer = o.nonempty("issuer");
    let jwks_url = o.nonempty("jwksURL");
    let audience = o.required("audience");
    let introspection_url = o.nonempty("introspectionURL");
    let authorization_url = o.nonempty("authorizationURL");
    let token_url = o.nonempty("tokenURL");
    let browser_client_id = o.nonempty("browserClientId");
    let device_authorization_url = o.nonempty("deviceAuthorizationURL");
    let client_id = optional_secret_ref(&mut o, "clientId");
    let client_secret = optional_secret_ref(&mut o, "clientSecret");
    let leeway_seconds = o.uint("leewaySeconds", 0, 3600).unwrap_or(60);
    let scope_claim = o.nonempty("scopeClaim");
    let client_auth_method = o
        .one_of("clientAuthMethod", ClientAuthMethod::ALL)
        .and_then(ClientAuthMethod::parse)
        .unwrap_or(ClientAuthMethod::ClientSecretBasic);
    let introspection_cache_seconds = o.uint("introspectionCacheSeconds", 0, 3600).unwrap_or(30);
    let mut additional_issuers = Vec::new();
    if let Some(v) = o.value("additionalIssuers") {
        let path = o.key_path("additionalIssuers");
        match v.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(mut t) = Obj::new(cx, item, &crate::diag::index(&path, i)) {
                        let issuer = t.required("issuer");
                        let jwks_url = t.nonempty("jwksURL");
                        for (k, u) in [("issuer", &issuer), ("jwksURL", &jwks_url)] {
                            if let Some(u) = u {
                                check_http_url(cx, &t.key_path(k), u);
                            }
                        }
                        t.finish();
                        if let Some(issuer) = issuer {
                            additional_issuers.push(TrustedIssuer { issuer, jwks_url });
                        }
                    }
                }
            }
            None => cx.err(
                path,
                format!(
                    "must be an array of {{\"issuer\", \"jwksURL\"}} objects, found {}",
                    kind(v)
                ),
            ),
        }
    }
    for (key, url) in [
        ("issuer", &issuer),
        ("jwksURL", &jwks_url),
        ("introspectionURL", &introspection_url),
        ("authorizationURL", &authorization_url),
        ("tokenURL", &token_url),
        ("deviceAuthorizationURL", &device_authorization_url),
    ] {
        if let Some(u) = url {
            check_http_url(cx, &o.key_path(key), u);
        }
    }
    match profile {
        Some(ValidationProfile::OidcJwks) if issuer.is_none() => cx.missing(
            o.key_path("issuer"),
            "is required when validationProfile is `oidc_jwks`",
        ),
        Some(ValidationProfile::OAuth2Introspection) if introspection_url.is_none() => cx.missing(
            o.key_path("introspectionURL"),
            "is required when validationProfile is `oauth2_introspection`",
        ),
        _ => {}
    }
    let require_client_cert = o.bool("requireClientCert").unwrap_or(false);
    o.finish();
    Some(ServerAuth {
        require_client_cert,
        validation_profile: profile?,
        issuer,
        jwks_url,
        audience: audience?,
        introspection_url,
        authorization_url,
        token_url,
        browser_client_id,
        device_authorization_url,
        client_id,
        client_secret,
        leeway_seconds,
        scope_claim,
        client_auth_method,
        introspection_cache_seconds,
        additional_issuers,
    })
}

fn decode_source(mut o: Obj<'_>) -> Option<Source> {
    let cx = o.cx();
    if !o.has("type") {
        cx.missing(o.key_path("type"), "is required");
    }
    let kind = o
        .one_of("type", SourceType::ALL)
        .and_then(SourceType::parse);
    let uri = o.nonempty("uri");
    let enabled = o.bool("enabled").unwrap_or(true);
    let refresh = o.object("refresh").map(|mut r| {
        let max_age_seconds = r.uint("maxAgeSeconds", 0, u64::from(u32::MAX));
        let manual_only = r.bool("manualOnly").unwrap_or(false);
        r.finish();
        Refresh {
            max_age_seconds,
            manual_only,
        }
    });
    let transport = o.object("transport").and_then(decode_transport);
    let disabled_tools = o.strings("disabledTools");
    let oauth = o.object("oauth").and_then(decode_oauth_settings);
    let is_mcp = kind == Some(SourceType::Mcp);
    if is_mcp {
        if o.has("uri") {
            cx.err(
                o.key_path("uri"),
                "is not allowed on an `mcp` source; use `transport.url`",
            );
        }
        if !o.has("transport") {
            cx.missing(o.key_path("transport"), "is required on an `mcp` source");
        }
        check_mcp_oauth(cx, &o, transport.as_ref(), oauth.as_ref());
    } else if let Some(k) = kind {
        if uri.is_none() && !o.has("uri") {
            cx.missing(o.key_path("uri"), format!("is required for `{k}` sources"));
        }
        if let Some(u) = &uri {
            check_document_uri(cx, &o.key_path("uri"), u);
        }
        for key in ["transport", "disabledTools", "oauth"] {
            if o.has(key) {
                cx.err(
                    o.key_path(key),
                    format!("is only allowed on `mcp` sources, not on `{k}`"),
                );
            }
        }
    }
    o.finish();
    Some(Source {
        kind: kind?,
        uri,
        enabled,
        refresh,
        transport,
        disabled_tools,
        oauth,
    })
}

/// `mcpServers.<name>`: the `.mcp.json` form, normalised into an `mcp` source (and a service
/// of the same name). `type` may be omitted (`command` → stdio, `url` → streamable-http) and
/// `http` is accepted for `streamable-http`.
fn decode_mcp_server(mut o: Obj<'_>) -> Option<Source> {
    let cx = o.cx();
    let mut transport = serde_json::Map::new();
    for key in ["command", "args", "env", "url", "headers", "headerSecrets"] {
        if let Some(v) = o.value(key) {
            transport.insert(key.to_string(), v.clone());
        }
    }
    let ty = match o.value("type") {
        Some(Value::String(t)) if t == "http" => Value::String("streamable-http".into()),
        Some(t) => t.clone(),
        None if transport.contains_key("command") => Value::String("stdio".into()),
        None => Value::String("streamable-http".into()),
    };
    transport.insert("type".into(), ty);
    let transport = Value::Object(transport);
    let decoded = Obj::new(cx, &transport, o.path()).and_then(decode_transport);
    let disabled_tools = o.strings("disabledTools");
    let oauth = o.object("oauth").and_then(decode_oauth_settings);
    o.finish();
    let source = Source {
        kind: SourceType::Mcp,
        uri: None,
        enabled: true,
        refresh: None,
        transport: decoded,
        disabled_tools,
        oauth,
    };
    Some(source)
}

fn decode_transport(mut o: Obj<'_>) -> Option<McpTransport> {
    let cx = o.cx();
    if !o.has("type") {
        cx.missing(o.key_path("type"), "is required");
    }
    let kind = o
        .one_of("type", McpTransportType::ALL)
        .and_then(McpTransportType::parse);
    let command = o.nonempty("command");
    let args = o.strings("args");
    let env = o.string_map("env");
    let url = o.nonempty("url");
    let headers = o.string_map("headers");
    let header_secrets = o.string_map("headerSecrets");
    if let Some(k) = kind {
        let (needs, forbids): (&str, &[&'static str]) = match k {
            McpTransportType::Stdio => ("command", &["url", "headers", "headerSecrets"]),
            McpTransportType::Sse | McpTransportType::StreamableHttp => {
                ("url", &["command", "args", "env"])
            }
        };
        if !o.has(if needs == "command" { "command" } else { "url" }) {
            cx.missing(
                o.key_path(needs),
                format!("is required for transport type `{k}`"),
            );
        }
        for key in forbids {
            if o.has(key) {
                cx.err(
                    o.key_path(key),
                    format!("is not allowed for transport type `{k}`"),
                );
            }
        }
        if let Some(u) = &url {
            check_http_url(cx, &o.key_path("url"), u);
        }
    }
    for name in header_secrets.keys() {
        if headers.keys().any(|h| h.eq_ignore_ascii_case(name)) {
            cx.err(
                join(&o.key_path("headerSecrets"), name),
                format!("duplicates transport.headers.{name}"),
            );
        }
    }
    o.finish();
    Some(McpTransport {
        kind: kind?,
        command,
        args,
        env,
        url,
        headers,
        header_secrets,
    })
}

fn check_mcp_oauth(
    cx: &Cx,
    o: &Obj<'_>,
    transport: Option<&McpTransport>,
    oauth: Option<&OAuthSettings>,
) {
    let (Some(oauth), Some(t)) = (oauth, transport) else {
        return;
    };
    let path = o.key_path("oauth");
    if t.kind != McpTransportType::StreamableHttp {
        cx.err(
            &path,
            format!(
                "is only allowed with transport type `streamable-http`, not `{}`",
                t.kind
            ),
        );
    }
    match oauth.mode {
        OAuthMode::ClientCredentials => {}
        OAuthMode::OpenIdConnect => cx.err(
            join(&path, "mode"),
            "`openIdConnect` is not a direct oauth mode; use `clientCredentials` with `issuer`",
        ),
        m => cx.err(
            join(&path, "mode"),
            format!("must be `clientCredentials` for mcp transport oauth, found `{m}`"),
        ),
    }
    if oauth.client_id.is_none() {
        cx.missing(
            join(&path, "clientId"),
            "is required for `clientCredentials`",
        );
    }
    if oauth.client_secret.is_none() {
        cx.missing(
            join(&path, "clientSecret"),
            "is required for `clientCredentials`",
        );
    }
    if oauth.issuer.is_none() && oauth.token_url.is_none() {
        cx.missing(
            &path,
            "needs `issuer` or `tokenURL` for `clientCredentials`",
        );
    }
    let interactive = [
        ("authorizationURL", oauth.authorization_url.is_some()),
        ("interactive", oauth.interactive.is_some()),
        ("callbackPort", oauth.callback_port.is_some()),
        ("redirectURI", oauth.redirect_uri.is_some()),
    ];
    for (key, present) in interactive {
        if present {
            cx.err(join(&path, key), "is not allowed for `clientCredentials`");
        }
    }
    let owned = |h: &String| h.eq_ignore_ascii_case("authorization");
    if t.headers.keys().any(owned) || t.header_secrets.keys().any(owned) {
        cx.err(
            o.key_path("transport"),
            "the `Authorization` header is owned by oauth and cannot be set explicitly",
        );
    }
}

fn decode_service(mut o: Obj<'_>) -> Option<Service> {
    let source = o.required("source");
    let alias = o.nonempty("alias");
    if let Some(a) = &alias
        && !is_identifier(a)
    {
        o.cx().err(
            o.key_path("alias"),
            "must start with a letter or digit and contain only letters, digits, `_`, `-` and `.`",
        );
    }
    let overlays = o.strings("overlays");
    let skills = o.strings("skills");
    let workflows = o.strings("workflows");
    let upstream = o
        .object("upstream")
        .map(decode_upstream)
        .unwrap_or_default();
    o.finish();
    Some(Service {
        source: source?,
        alias,
        overlays,
        skills,
        workflows,
        upstream,
    })
}

fn decode_curation(mut o: Obj<'_>) -> Curation {
    let tool_sets = decode_map(&mut o, "toolSets", |mut t| {
        let allow = t.strings("allow");
        let deny = t.strings("deny");
        t.finish();
        Some(ToolSet { allow, deny })
    });
    o.finish();
    Curation { tool_sets }
}

fn decode_agents(mut o: Obj<'_>) -> Agents {
    let default_profile = o.nonempty("defaultProfile");
    let profiles = decode_map(&mut o, "profiles", |mut p| {
        let mode = p.one_of("mode", ModeKind::ALL).and_then(ModeKind::parse);
        let tool_set = p.nonempty("toolSet");
        p.finish();
        Some(AgentProfile { mode, tool_set })
    });
    o.finish();
    Agents {
        default_profile,
        profiles,
    }
}

fn decode_policy(mut o: Obj<'_>) -> Policy {
    let deny = o.strings("deny");
    let approval_required = o.strings("approvalRequired");
    let allow_exec_secrets = o.bool("allowExecSecrets").unwrap_or(false);
    o.finish();
    Policy {
        deny,
        approval_required,
        allow_exec_secrets,
    }
}

fn decode_secret(mut o: Obj<'_>) -> Option<Secret> {
    let cx = o.cx();
    match o.value("type").and_then(Value::as_str) {
        Some("oauth2") => {
            o.value("type");
            let settings = decode_oauth_fields(&mut o);
            if let Some(s) = &settings
                && s.mode == OAuthMode::TokenExchange
            {
                // The broker must know which upstream the token is for, and who asks.
                if s.audience.is_none() {
                    cx.missing(
                        o.key_path("audience"),
                        "is required for `tokenExchange` (the upstream's audience at the broker)",
                    );
                }
                if s.client_id.is_none() {
                    cx.missing(
                        o.key_path("clientId"),
                        "is required for `tokenExchange` (the runtime's client at the broker)",
                    );
                }
                // Callers' tokens go to this address: it comes from the config alone, never
                // from an API description.
                if s.token_url.is_none() && s.issuer.is_none() {
                    cx.missing(
                        o.key_path("tokenURL"),
                        "is required for `tokenExchange` (or `issuer`): the broker's token endpoint is never taken from the API description",
                    );
                }
                if s.token_storage == Some(TokenStorage::Instance) {
                    cx.err(
                        o.key_path("tokenStorage"),
                        "must be `memory` for `tokenExchange`: tokens issued for callers are never written to disk",
                    );
                }
            }
            o.finish();
            Some(Secret::OAuth2(Box::new(OAuth2Secret {
                kind: "oauth2",
                settings: settings?,
            })))
        }
        Some("byPrincipal") => {
            o.value("type");
            let path = o.key_path("principals");
            let mut principals = BTreeMap::new();
            for (name, v, at) in o.entries("principals") {
                if name.is_empty() {
                    cx.err(&at, "a principal name must not be empty");
                }
                let r = match v {
                    Value::Object(_) => Obj::new(cx, v, &at).and_then(decode_secret_ref),
                    other => {
                        cx.err(
                            &at,
                            format!(
                                "must be a secret reference object like {{\"type\": \"env\", \"value\": \"NAME\"}}, found {}",
                                kind(other)
                            ),
                        );
                        None
                    }
                };
                if let Some(r) = r {
                    principals.insert(name, r);
                }
            }
            if !o.has("principals") {
                cx.missing(
                    &path,
                    "is required: `{ \"<principal>\": <secret reference> }`",
                );
            }
            let default = optional_secret_ref(&mut o, "default");
            o.finish();
            Some(Secret::ByPrincipal(Box::new(ByPrincipalSecret {
                kind: "byPrincipal",
                principals,
                default,
            })))
        }
        _ => decode_secret_ref(o).map(Secret::Ref),
    }
}

/// A secret reference object (`{ type, value?, command? }`).
fn decode_secret_ref(mut o: Obj<'_>) -> Option<SecretRef> {
    let cx = o.cx();
    if !o.has("type") {
        cx.missing(o.key_path("type"), "is required");
    }
    let kind = match o.string("type") {
        Some(t) if t == "oauth2" || t == "byPrincipal" => {
            cx.err(
                o.key_path("type"),
                format!("`{t}` is only allowed for top-level `secrets` entries"),
            );
            None
        }
        Some(t) => {
            check_one_of(cx, &o.key_path("type"), &t, SecretType::ALL).and_then(SecretType::parse)
        }
        None => None,
    };
    let value = o.string("value");
    let command = o.strings("command");
    match kind {
        Some(SecretType::Exec) if value.is_none() && command.is_empty() => cx.missing(
            o.path(),
            "an `exec` secret needs `command` (argv) or `value` (an executable path)",
        ),
        Some(SecretType::Exec) => {}
        Some(k) => {
            if value.as_deref().is_none_or(str::is_empty) {
                cx.missing(
                    o.key_path("value"),
                    format!("is required for `{k}` secrets"),
                );
            }
            if !command.is_empty() {
                cx.err(o.key_path("command"), "is only allowed on `exec` secrets");
            }
        }
        None => {}
    }
    o.finish();
    Some(SecretRef {
        kind: kind?,
        value,
        command,
    })
}

fn optional_secret_ref(o: &mut Obj<'_>, key: &'static str) -> Option<SecretRef> {
    let v = o.value(key)?;
    let path = o.key_path(key);
    match v {
        Value::Object(_) => Obj::new(o.cx(), v, &path).and_then(decode_secret_ref),
        other => {
            o.cx().err(
                path,
                format!(
                    "must be a secret reference object like {{\"type\": \"env\", \"value\": \"NAME\"}}, found {}",
                    kind(other)
                ),
            );
            None
        }
    }
}

fn required_secret_ref(o: &mut Obj<'_>, key: &'static str) -> Option<SecretRef> {
    if !o.has(key) {
        o.cx().missing(o.key_path(key), "is required");
        return None;
    }
    optional_secret_ref(o, key)
}

fn decode_oauth_settings(mut o: Obj<'_>) -> Option<OAuthSettings> {
    let s = decode_oauth_fields(&mut o);
    o.finish();
    s
}

fn decode_oauth_fields(o: &mut Obj<'_>) -> Option<OAuthSettings> {
    let cx = o.cx();
    if !o.has("mode") {
        cx.missing(o.key_path("mode"), "is required");
    }
    let mode = match o.string("mode") {
        Some(m) if m == "implicit" || m == "password" => {
            cx.err(
                o.key_path("mode"),
                format!("the OAuth `{m}` flow is not supported (it is deprecated by OAuth 2.1); use `clientCredentials` or `authorizationCode`"),
            );
            None
        }
        Some(m) => {
            check_one_of(cx, &o.key_path("mode"), &m, OAuthMode::ALL).and_then(OAuthMode::parse)
        }
        None => None,
    };
    let issuer = o.nonempty("issuer");
    let authorization_url = o.nonempty("authorizationURL");
    let token_url = o.nonempty("tokenURL");
    for (key, url) in [
        ("issuer", &issuer),
        ("authorizationURL", &authorization_url),
        ("tokenURL", &token_url),
    ] {
        if let Some(u) = url {
            check_http_url(cx, &o.key_path(key), u);
        }
    }
    let client_id = optional_secret_ref(o, "clientId");
    let client_secret = optional_secret_ref(o, "clientSecret");
    let scopes = o.strings("scopes");
    let audience = o.nonempty("audience");
    let interactive = o.bool("interactive");
    let callback_port = o.uint("callbackPort", 1, 65535).map(|p| p as u16);
    let redirect_uri = o.nonempty("redirectURI");
    let token_storage = o
        .one_of("tokenStorage", TokenStorage::ALL)
        .and_then(TokenStorage::parse);
    let client_auth_method = o
        .one_of("clientAuthMethod", ClientAuthMethod::ALL)
        .and_then(ClientAuthMethod::parse);
    Some(OAuthSettings {
        mode: mode?,
        issuer,
        authorization_url,
        token_url,
        client_id,
        client_secret,
        scopes,
        audience,
        interactive,
        callback_port,
        redirect_uri,
        token_storage,
        client_auth_method,
    })
}

/// Cross-reference checks that need the whole document.
fn check_references(
    cx: &Cx,
    sources: &BTreeMap<String, Source>,
    services: &BTreeMap<String, Service>,
    curation: &Curation,
    agents: &Agents,
) {
    let mut aliases: BTreeMap<&str, &str> = BTreeMap::new();
    let mut mcp_served: BTreeSet<&str> = BTreeSet::new();
    for (id, svc) in services {
        let path = join("services", id);
        match sources.get(&svc.source) {
            None => cx.err(
                join(&path, "source"),
                format!(
                    "names source `{}`, which is not defined in `sources`{}",
                    svc.source,
                    known(sources.keys())
                ),
            ),
            Some(src) if src.kind == SourceType::Mcp => {
                if *id != svc.source {
                    cx.err(
                        join(&path, "source"),
                        format!(
                            "an `mcp` source must be served by a service with the same ID (`{}`)",
                            svc.source
                        ),
                    );
                } else {
                    mcp_served.insert(&svc.source);
                }
            }
            Some(_) => {}
        }
        let alias = svc.alias.as_deref().unwrap_or(id);
        if let Some(other) = aliases.insert(alias, id) {
            cx.err(
                join(&path, "alias"),
                format!("`{alias}` is already used by service `{other}`"),
            );
        }
    }
    for (name, set) in &agents.profiles {
        if let Some(ts) = &set.tool_set
            && !curation.tool_sets.contains_key(ts)
        {
            cx.err(
                join(&join("agents.profiles", name), "toolSet"),
                format!(
                    "names tool set `{ts}`, which is not defined in `curation.toolSets`{}",
                    known(curation.tool_sets.keys())
                ),
            );
        }
    }
    if agents.profiles.contains_key("discover") {
        cx.err(
            "agents.profiles.discover",
            "`discover` is reserved for the view holding every tool; choose another profile name",
        );
    }
    if let Some(p) = &agents.default_profile
        && !agents.profiles.contains_key(p)
    {
        cx.err(
            "agents.defaultProfile",
            format!(
                "names profile `{p}`, which is not defined in `agents.profiles`{}",
                known(agents.profiles.keys())
            ),
        );
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        " (none are defined)".to_string()
    } else {
        format!(" (defined: {})", names.join(", "))
    }
}

fn check_http_url(cx: &Cx, path: &str, url: &str) {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !r.starts_with('/') => {}
        _ => cx.err(
            path,
            format!("must be an absolute http:// or https:// URL, found `{url}`"),
        ),
    }
}

/// A document location: local path (relative to the config file), `file://` or `http(s)://`.
fn check_document_uri(cx: &Cx, path: &str, uri: &str) {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        check_http_url(cx, path, uri);
    } else if let Some((scheme, _)) = uri.split_once("://")
        && scheme != "file"
    {
        cx.err(
            path,
            format!(
                "unsupported URI scheme `{scheme}`; use a file path, file://, http:// or https://"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// One config fragment per message class; each must yield exactly its message.
    #[test]
    fn every_rule_has_a_precise_message() {
        let base = || json!({"cli": "1", "mode": {"default": "discover"}});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"runtime": {"local": {}}}),
                "runtime.local: is no longer supported; configure a remote runtime (`runtime.remote`) instead",
            ),
            (
                json!({"runtime": {"remote": {"url": "ftp://x"}}}),
                "runtime.remote.url: must be an absolute http:// or https:// URL, found `ftp://x`",
            ),
            (
                json!({"runtime": {"remote": {"oauth": {"mode": "providedToken", "tokenRef": "TOKEN"}}}}),
                "runtime.remote.oauth.tokenRef: must be `env:NAME` or `file:PATH`, found `TOKEN`",
            ),
            (
                json!({"runtime": {"remote": {"oauth": {"mode": "browserLogin", "delegation": {"enabled": true}}}}}),
                "runtime.remote.oauth.delegation.scopes: is required when delegation is enabled: the subset of the token's scopes every command runs with",
            ),
            (
                json!({"runtime": {"remote": {"oauth": {"mode": "oauthClient"}}}}),
                "runtime.remote.oauth.client: is required when mode is `oauthClient`",
            ),
            (
                json!({"runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "audience": "a"}}}}),
                "runtime.server.auth.issuer: is required when validationProfile is `oidc_jwks`",
            ),
            (
                json!({"runtime": {"server": {"documents": {"allowedOrigins": ["http://a:1", "https://b/specs"]}}}}),
                "runtime.server.documents.allowedOrigins[1]: must be an origin like `https://specs.example.com` or `http://127.0.0.1:8080` (scheme, host and optional port; no path), found `https://b/specs`",
            ),
            (
                json!({"runtime": {"server": {"documents": {"allowedDirectory": ["x"]}}}}),
                "runtime.server.documents.allowedDirectory: unknown key (did you mean `allowedDirectories`?); allowed keys here: allowedDirectories, allowedOrigins",
            ),
            (
                json!({"runtime": {"server": {"audit": {"durability": "sometimes"}}}}),
                "runtime.server.audit.durability: must be one of `always`, `interval`, `none`, found `sometimes`",
            ),
            (
                json!({"runtime": {"server": {"audit": {"intervalMs": 5000}}}}),
                "runtime.server.audit.intervalMs: must be between 1 and 1000, found 5000",
            ),
            (
                json!({"runtime": {"server": {"audit": {"rotation": {"maxBytes": 10}}}}}),
                "runtime.server.audit.rotation.maxBytes: must be between 4096 and 18446744073709551615, found 10",
            ),
            (
                json!({"runtime": {"server": {"audit": {"failclosed": true}}}}),
                "runtime.server.audit.failclosed: unknown key (did you mean `failClosed`?); allowed keys here: durability, export, failClosed, intervalMs, rotation",
            ),
            (
                json!({"runtime": {"server": {"audit": {"export": {"endpoint": "collector:4318"}}}}}),
                "runtime.server.audit.export.endpoint: must be an http:// or https:// URL (the OTLP/HTTP logs endpoint, e.g. http://collector:4318/v1/logs), found `collector:4318`",
            ),
            (
                json!({"runtime": {"server": {"audit": {"export": {"batchSize": 5000}}}}}),
                "runtime.server.audit.export.batchSize: must be between 1 and 1000, found 5000",
            ),
            (
                json!({"runtime": {"server": {"metrics": {"toollabels": true}}}}),
                "runtime.server.metrics.toollabels: unknown key (did you mean `toolLabels`?); allowed keys here: public, toolLabels",
            ),
            (
                json!({"runtime": {"server": {"tls": {"keyFile": "k.pem"}}}}),
                "runtime.server.tls.certFile: is required",
            ),
            (
                json!({"runtime": {"server": {"tls": {"certFile": "c", "keyFile": "k", "clientAuth": "required"}}}}),
                "runtime.server.tls.clientCAFile: is required when clientAuth is `required` (client certificates are verified against it)",
            ),
            (
                json!({"runtime": {"server": {"tls": {"certFile": "c", "keyFile": "k", "clientCAFile": "ca", "clientAuth": "none"}}}}),
                "runtime.server.tls.clientAuth: is `none` but clientCAFile is set: use `optional` or `required`, or remove clientCAFile",
            ),
            (
                json!({"runtime": {"server": {"tls": {"certFile": "c", "keyFile": "k", "clientAuth": "sometimes"}}}}),
                "runtime.server.tls.clientAuth: must be one of `none`, `optional`, `required`, found `sometimes`",
            ),
            (
                json!({"runtime": {"server": {"auth": {"validationProfile": "oidc_jwks", "issuer": "https://i", "audience": "a", "requireClientCert": true}}}}),
                "runtime.server.auth.requireClientCert: needs `runtime.server.tls` with `clientCAFile` (client certificates are verified against it)",
            ),
            (
                json!({"runtime": {"server": {"limits": {"maxHeaderBytes": 10}}}}),
                "runtime.server.limits.maxHeaderBytes: must be between 1024 and 1048575, found 10",
            ),
            (
                json!({"runtime": {"server": {"limits": {"maxHeader": 10}}}}),
                "runtime.server.limits.maxHeader: unknown key (did you mean `maxHeaders`?); allowed keys here: bodyMinRate, bodyTimeoutSeconds, headerTimeoutSeconds, idleTimeoutSeconds, maxConcurrentPerService, maxConnections, maxHeaderBytes, maxHeaders, maxRequestLineBytes",
            ),
            (
                json!({"runtime": {"server": {"rateLimits": {"perPrincipal": {"requestsPerSecond": 5, "requestsPerMinute": 100}}}}}),
                "runtime.server.rateLimits.perPrincipal: sets `requestsPerSecond` and `requestsPerMinute`: give one rate",
            ),
            (
                json!({"runtime": {"server": {"rateLimits": {"tools": {"t:x": {"burst": 5}}}}}}),
                "runtime.server.rateLimits.tools[\"t:x\"]: needs one of `requestsPerSecond`, `requestsPerMinute`, `requestsPerHour`",
            ),
            (
                json!({"runtime": {"server": {"rateLimits": {"store": "memcached://x"}}}}),
                "runtime.server.rateLimits.store: must be a redis:// or rediss:// URL (e.g. redis://127.0.0.1:6379/0), found `memcached://x`",
            ),
            (
                json!({"runtime": {"server": {"rateLimits": {"onStoreError": "maybe"}}}}),
                "runtime.server.rateLimits.onStoreError: must be one of `allow`, `deny`, found `maybe`",
            ),
            (
                json!({"sources": {"m": {"type": "mcp", "transport": {"type": "sse", "url": "http://x", "command": "c"}}}}),
                "sources.m.transport.command: is not allowed for transport type `sse`",
            ),
            (
                json!({"sources": {"m": {"type": "mcp", "transport": {"type": "stdio", "command": "c"}, "oauth": {"mode": "clientCredentials", "clientId": {"type": "env", "value": "I"}, "clientSecret": {"type": "env", "value": "S"}, "tokenURL": "http://t"}}}}),
                "sources.m.oauth: is only allowed with transport type `streamable-http`, not `stdio`",
            ),
            (
                json!({"sources": {"m": {"type": "mcp", "transport": {"type": "streamable-http", "url": "http://x", "headers": {"Authorization": "x"}}, "oauth": {"mode": "clientCredentials", "clientId": {"type": "env", "value": "I"}, "clientSecret": {"type": "env", "value": "S"}, "issuer": "http://i"}}}}),
                "sources.m.transport: the `Authorization` header is owned by oauth and cannot be set explicitly",
            ),
            (
                json!({"sources": {"m": {"type": "mcp", "transport": {"type": "streamable-http", "url": "http://x", "headers": {"X-K": "a"}, "headerSecrets": {"X-K": "k"}}}}}),
                "sources.m.transport.headerSecrets.X-K: duplicates transport.headers.X-K",
            ),
            (
                json!({"sources": {"o": {"type": "openapi", "uri": "a.yaml", "transport": {"type": "stdio", "command": "c"}}}}),
                "sources.o.transport: is only allowed on `mcp` sources, not on `openapi`",
            ),
            (
                json!({"sources": {"o": {"type": "openapi", "uri": "gopher://x"}}}),
                "sources.o.uri: unsupported URI scheme `gopher`; use a file path, file://, http:// or https://",
            ),
            (
                json!({"sources": {"a:b": {"type": "openapi", "uri": "a.yaml"}}}),
                "sources[\"a:b\"]: name must start with a letter or digit and contain only letters, digits, `_`, `-` and `.`",
            ),
            (
                json!({"secrets": {"s": {"type": "oauth2", "mode": "implicit"}}}),
                "secrets.s.mode: the OAuth `implicit` flow is not supported (it is deprecated by OAuth 2.1); use `clientCredentials` or `authorizationCode`",
            ),
            (
                json!({"secrets": {"s": {"type": "oauth2", "mode": "tokenExchange", "tokenURL": "http://b/token", "clientId": {"type": "literal", "value": "runtime"}}}}),
                "secrets.s.audience: is required for `tokenExchange` (the upstream's audience at the broker)",
            ),
            (
                json!({"secrets": {"s": {"type": "oauth2", "mode": "tokenExchange", "tokenURL": "http://b/token", "audience": "urn:a", "clientId": {"type": "literal", "value": "runtime"}, "tokenStorage": "instance"}}}),
                "secrets.s.tokenStorage: must be `memory` for `tokenExchange`: tokens issued for callers are never written to disk",
            ),
            (
                json!({"secrets": {"s": {"type": "oauth2", "mode": "tokenExchange", "audience": "urn:a", "clientId": {"type": "literal", "value": "runtime"}}}}),
                "secrets.s.tokenURL: is required for `tokenExchange` (or `issuer`): the broker's token endpoint is never taken from the API description",
            ),
            (
                json!({"secrets": {"s": {"type": "byPrincipal", "principals": {"alice": {"type": "env"}}}}}),
                "secrets.s.principals.alice.value: is required for `env` secrets",
            ),
            (
                json!({"secrets": {"s": {"type": "byPrincipal", "principals": {"alice": "KEY"}}}}),
                "secrets.s.principals.alice: must be a secret reference object like {\"type\": \"env\", \"value\": \"NAME\"}, found a string",
            ),
            (
                json!({"secrets": {"s": {"type": "byPrincipal"}}}),
                "secrets.s.principals: is required: `{ \"<principal>\": <secret reference> }`",
            ),
            (
                json!({"secrets": {"s": {"type": "exec"}}}),
                "secrets.s: an `exec` secret needs `command` (argv) or `value` (an executable path)",
            ),
            (
                json!({"sources": {"a": {"type": "openapi", "uri": "a.yaml"}}, "services": {"x": {"source": "a"}, "y": {"source": "a", "alias": "x"}}}),
                "services.y.alias: `x` is already used by service `x`",
            ),
            (
                json!({"agents": {"profiles": {"discover": {}}}, "runtime": {}}),
                "agents.profiles.discover: `discover` is reserved for the view holding every tool; choose another profile name",
            ),
            (
                json!({"agents": {"defaultProfile": "p"}, "runtime": {}}),
                "agents.defaultProfile: names profile `p`, which is not defined in `agents.profiles` (none are defined)",
            ),
            (
                json!({"sources": {"a": {"type": "openapi", "uri": "a.yaml", "refresh": {"maxAgeSeconds": -1}}}}),
                "sources.a.refresh.maxAgeSeconds: must be a non-negative integer, found -1",
            ),
        ];
        for (fragment, want) in cases {
            let mut doc = base();
            doc.as_object_mut()
                .unwrap()
                .extend(fragment.as_object().unwrap().clone());
            let got: Vec<String> = decode(&doc)
                .err()
                .unwrap_or_default()
                .iter()
                .map(|d| d.to_string())
                .collect();
            assert!(got.iter().any(|g| g == want), "want `{want}`\ngot {got:#?}");
        }
    }
}
