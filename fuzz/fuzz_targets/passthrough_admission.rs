//! Pass-through admission from method, path and header fields, in the gateway's order:
//! `gateway::wire::check_request` (framing, `Host`, method overrides), `passthrough::strip_prefix`,
//! `passthrough::Fields::scan`, `RequestId::new`, the route (`snapshot::index::ExecIndex::route`,
//! which applies `policy::path::check_path`) against the demo API's catalog, then
//! `passthrough::detach_headers`, `target_uri` and `rewrite` (hop-by-hop, identity,
//! credential-shadowing headers dropped; credentials added), the credential shadow's query,
//! cookie and answer redaction, and the header-name rules of `open_cli_config::wire`.
//! (`passthrough::admit` itself needs the runtime state: authentication, audit, credentials.)
#![no_main]

use std::net::IpAddr;
use std::sync::OnceLock;

use http::{HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use open_cli_config::ntc::{Catalog, ServiceEntry};
use open_cli_proxy::catalog::openapi;
use open_cli_proxy::credentials::Applied;
use open_cli_proxy::credentials::shadow::Shadow;
use open_cli_proxy::gateway::template::Template;
use open_cli_proxy::gateway::{RequestId, passthrough, wire};
use open_cli_proxy::policy::path;
use open_cli_proxy::snapshot::index::ExecIndex;
use pingora::http::RequestHeader;

const PREFIX: &str = "/proxy";
const SPEC: &str = include_str!("../../config/examples/demo-api.openapi.yaml");
const CONFIG: &str = r#"{
  "cli": "1.0.0",
  "mode": {"default": "discover"},
  "runtime": {"mode": "remote", "server": {"passThrough": {"enabled": true, "prefix": "/proxy",
      "forwardHeaders": ["x-real-ip", "true-client-ip"]}}},
  "sources": {"demo": {"type": "openapi", "uri": "demo-api.openapi.yaml"}},
  "services": {"demo": {"source": "demo", "alias": "demo"}},
  "policy": {"deny": ["demo:delete*"], "approvalRequired": ["demo:create*"]}
}"#;

struct Env {
    index: ExecIndex,
    keep: Vec<String>,
    creds: Applied,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let config =
            open_cli_config::load::parse_str(CONFIG, std::path::Path::new("/fuzz/.cli.json"))
                .expect("the fuzz config is valid");
        let doc = openapi::parse_document(SPEC, "demo-api.openapi.yaml").expect("demo spec");
        let set = openapi::DocSet::single("file:///fuzz/demo-api.openapi.yaml", doc);
        let mut problems = Vec::new();
        let tools = openapi::tools(&set, &openapi::ServiceRef { id: "demo" }, &mut problems);
        assert!(problems.is_empty() && !tools.is_empty(), "{problems:?}");
        let catalog = Catalog {
            catalog_version: "1".into(),
            generated_at: "2025-01-01T00:00:00Z".into(),
            source_fingerprint: "fuzz".into(),
            sources: Vec::new(),
            services: vec![ServiceEntry {
                id: "demo".into(),
                alias: "demo".into(),
                source_id: "demo".into(),
                title: "demo".into(),
                servers: vec!["http://127.0.0.1:8780/base".into()],
            }],
            tools,
            workflows: Vec::new(),
            effective_views: Vec::new(),
        };
        let index = ExecIndex::build(&catalog, &config);
        let keep = config
            .runtime
            .as_ref()
            .and_then(|r| r.server.as_ref())
            .map(|s| s.pass_through.forward_headers.clone())
            .unwrap_or_default();
        let secret = "s3cr3t-key/+=";
        let creds = Applied {
            headers: vec![("x-api-key".into(), secret.into())],
            query: vec![("api_key".into(), secret.into())],
            cookies: vec![("session_key".into(), secret.into())],
            scheme: Some("apiKeyHeader".into()),
            wire: vec![(
                HeaderName::from_static("x-api-key"),
                HeaderValue::from_static("s3cr3t-key/+="),
            )],
            fixed: true,
            secrets: vec![secret.into()],
            shadow: Shadow::new(["x-api-key", "api_key", "session_key"], [secret]),
            ..Applied::default()
        };
        Env { index, keep, creds }
    })
}

/// A request head as text: `METHOD TARGET VERSION`, then `Name: value` lines (ends at an
/// empty line). Bytes need not be valid: fields whose name or value `http` refuses are skipped,
/// as a request line it refuses ends the case (Pingora would not parse either).
struct Head<'a> {
    method: &'a [u8],
    target: &'a [u8],
    version: http::Version,
    fields: Vec<(&'a [u8], &'a [u8])>,
}

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
}

fn parse(data: &[u8]) -> Option<Head<'_>> {
    let mut it = lines(data);
    let line = it.next()?;
    let mut parts = line.splitn(3, |&b| b == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = match parts.next().unwrap_or_default() {
        b"HTTP/1.0" => http::Version::HTTP_10,
        b"HTTP/2" | b"HTTP/2.0" => http::Version::HTTP_2,
        b"HTTP/0.9" => http::Version::HTTP_09,
        _ => http::Version::HTTP_11,
    };
    let mut fields = Vec::new();
    for l in it.take(100) {
        if l.is_empty() {
            break;
        }
        let colon = l.iter().position(|&b| b == b':').unwrap_or(l.len());
        let value = l.get(colon + 1..).unwrap_or_default().trim_ascii();
        fields.push((&l[..colon], value));
    }
    Some(Head {
        method,
        target,
        version,
        fields,
    })
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let Some(head) = parse(data) else { return };
    let Ok(req) = http::Request::builder()
        .method(head.method)
        .uri(head.target)
        .version(head.version)
        .body(())
    else {
        return;
    };
    let (mut parts, ()) = req.into_parts();
    for (n, v) in &head.fields {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(n), HeaderValue::from_bytes(v)) {
            parts.headers.append(name, value);
        }
    }
    // Derived from the input, so each case is reproducible.
    let v6 = head.target.len() % 2 == 1;
    let fixed_creds = head.fields.len() % 2 == 1;
    let mut req = RequestHeader::from(parts);

    // Every request: the head checks.
    let checked = wire::check_request(&req, || Some(bytes::Bytes::copy_from_slice(data)));
    let _ = wire::check_request(&req, || None);

    let fields = passthrough::Fields::scan(&req.headers);
    let request_id = RequestId::new(fields.request_id);
    let _ = (
        request_id.as_str(),
        fields.authorization.map(|v| v.as_bytes()),
    );

    let uri_path = req.uri.path().to_string();
    let _ = path::check_path(&uri_path);
    let _ = path::percent_decode(&uri_path);
    let Some(rest) = passthrough::strip_prefix(PREFIX, &uri_path) else {
        return;
    };
    // As `passthrough::admit` splits it: `/<alias><upstream path>`.
    let after = &rest[1..];
    let (alias, upstream_path) = match after.bytes().position(|c| c == b'/') {
        Some(k) => (&after[..k], &after[k..]),
        None => (after, "/"),
    };
    let routed = env.index.route(alias, req.method.as_str(), upstream_path);
    if let Ok(tool) = routed {
        let info = env.index.info(tool);
        let _ = (info.base.is_ok(), info.target.is_some());
        // A routed path is one `check_path` accepted.
        assert!(
            path::check_path(upstream_path).is_ok(),
            "routed an unsafe path: {upstream_path:?}"
        );
    }
    if checked.is_err() {
        return;
    }

    let caller = passthrough::detach_headers(&mut req);
    for name in caller.keys() {
        let n = name.as_str();
        let _ = (
            wire::is_identity(n),
            wire::may_keep(n),
            wire::is_method_override(n),
        );
        let _ = open_cli_config::wire::check_header_flag(n, &env.keep);
        let _ = env.creds.shadow.shadows_header(n.as_bytes());
    }
    for cookie in caller.get_all(http::header::COOKIE) {
        if let Ok(c) = cookie.to_str() {
            let _ = env.creds.shadow.strip_cookies(c);
        }
    }
    let query = req.uri.query().map(str::to_string);
    let stripped = query
        .as_deref()
        .and_then(|q| env.creds.shadow.strip_query(q));
    let Ok(uri) = passthrough::target_uri(
        "http://127.0.0.1:8780/base",
        upstream_path,
        stripped.as_deref(),
        &env.creds.query,
    ) else {
        return;
    };
    let authority = HeaderValue::from_static("127.0.0.1:8780");
    let template = Template::new(&authority, fixed_creds.then_some(&env.creds)).keeping(&env.keep);
    let client: IpAddr = if v6 {
        "2001:db8::1".parse().expect("ip")
    } else {
        "192.0.2.7".parse().expect("ip")
    };
    let _ = wire::forwarded_value(client, caller.get(http::header::HOST), "http");
    if passthrough::rewrite(
        &mut req,
        &caller,
        &template,
        uri,
        &env.creds,
        Some(client),
        request_id.header(),
    )
    .is_ok()
    {
        // Nothing the caller sent under a credential's name, and no hop-by-hop field, goes on.
        for (name, value) in req.headers.iter() {
            assert!(
                !matches!(
                    name.as_str(),
                    "authorization"
                        | "cookie"
                        | "proxy-authorization"
                        | "connection"
                        | "transfer-encoding"
                ),
                "`{name}` forwarded"
            );
            if name == "x-api-key" {
                assert_eq!(
                    value.as_bytes(),
                    b"s3cr3t-key/+=",
                    "the caller's x-api-key was forwarded"
                );
            }
        }
    }
    // The caller's fields as if they were an upstream answer: secrets redacted from
    // Location, Content-Location, Link, Refresh.
    let _ = env.creds.shadow.redact_response(&caller);
});
