//! `open-cli-testapi`: the demo upstream of the quickstart and the product tests.
//!
//! A small REST API described by `config/examples/demo-api.openapi.yaml` (served at
//! `/openapi.yaml` and `/openapi.json` with `servers` set to the real listen address):
//! CRUD on items, path/query/header parameters, JSON bodies, chosen 4xx/5xx statuses, a slow
//! endpoint, a plain-text endpoint, and one operation per upstream security scheme that
//! echoes the credential it received. `GET /_debug/requests` returns every request it saw
//! (method, path, query, headers, and `fields`: every header field in order, repeated names
//! included), so tests can assert what the runtime injected and that the caller's own token
//! never arrived. Outside the document, for tests that bring their own: `/anything/...`
//! answers any request with 200, `/reflect/...` redirects to another host with the credential
//! it received in `Location`, `Content-Location`, `Link` and `Refresh`.
//!
//! With `--docs DIR` it also serves the files of DIR under `/docs/`, as a document server for
//! catalog tests: a strong `ETag` (content hash) and `Last-Modified` (file time) on every
//! answer, `304` for a matching `If-None-Match` or `If-Modified-Since`, and per-file extras
//! from a sidecar `<file>.meta.json`: `{"headers": {"Cache-Control": "max-age=60", "Link":
//! ["<a>; rel=x"]}, "status": 500}`.
//!
//! Usage: `open-cli-testapi [--addr 127.0.0.1:8780] [--docs DIR]`. Port 0 picks a free port;
//! the first line on stdout is `listening on http://ADDR`.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const SPEC: &str = include_str!("../../../config/examples/demo-api.openapi.yaml");
const SPEC_SERVER: &str = "http://127.0.0.1:8780";
const MAX_RECORDED: usize = 512;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct NewItem {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Item {
    id: u64,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tag: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Recorded {
    method: String,
    path: String,
    query: Option<String>,
    headers: BTreeMap<String, String>,
    /// Every header field as received, in order, repeated names included: `[name, value]`.
    fields: Vec<(String, String)>,
    /// `HTTP/1.1` or `HTTP/2.0`.
    version: String,
}

#[derive(Debug, Default)]
struct Store {
    items: BTreeMap<u64, Item>,
    next_id: u64,
    requests: VecDeque<Recorded>,
    /// `/flaky`: failures served so far per key.
    flaky: BTreeMap<String, u32>,
    /// Bearer tokens `/auth/oauth2` refuses (401), as an expired or revoked token would be.
    rejected_tokens: Vec<String>,
}

#[derive(Debug, Clone)]
struct App {
    base_url: String,
    store: Arc<Mutex<Store>>,
    docs: Option<std::path::PathBuf>,
}

impl App {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

async fn record(State(app): State<App>, req: Request, next: Next) -> Response {
    if req.uri().path() != "/_debug/requests" {
        let fields: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let headers = fields.iter().cloned().collect();
        let mut store = app.store();
        if store.requests.len() >= MAX_RECORDED {
            store.requests.pop_front();
        }
        store.requests.push_back(Recorded {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: req.uri().query().map(str::to_string),
            headers,
            fields,
            version: format!("{:?}", req.version()),
        });
    }
    next.run(req).await
}

async fn spec_yaml(State(app): State<App>) -> Response {
    let body = SPEC.replace(SPEC_SERVER, &app.base_url);
    ([(header::CONTENT_TYPE, "application/yaml")], body).into_response()
}

async fn spec_json(State(app): State<App>) -> Response {
    let body = SPEC.replace(SPEC_SERVER, &app.base_url);
    match serde_yaml_ng::from_str::<Value>(&body) {
        Ok(v) => Json(v).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    tag: Option<String>,
}

async fn list_items(
    State(app): State<App>,
    Query(q): Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let items: Vec<Item> = app
        .store()
        .items
        .values()
        .filter(|i| q.tag.is_none() || i.tag == q.tag)
        .take(q.limit.unwrap_or(usize::MAX))
        .cloned()
        .collect();
    let mut resp = Json(items).into_response();
    if let Some(trace) = headers.get("x-trace-id") {
        resp.headers_mut().insert("x-trace-id", trace.clone());
    }
    resp
}

/// The 422 answer for an invalid item, if it is invalid.
fn invalid_item(body: &NewItem) -> Option<Response> {
    body.name
        .is_empty()
        .then(|| error(StatusCode::UNPROCESSABLE_ENTITY, "name must not be empty"))
}

async fn create_item(State(app): State<App>, Json(body): Json<NewItem>) -> Response {
    if let Some(r) = invalid_item(&body) {
        return r;
    }
    let mut store = app.store();
    store.next_id += 1;
    let item = Item {
        id: store.next_id,
        name: body.name,
        tag: body.tag,
    };
    store.items.insert(item.id, item.clone());
    (StatusCode::CREATED, Json(item)).into_response()
}

async fn get_item(State(app): State<App>, Path(id): Path<u64>) -> Response {
    match app.store().items.get(&id) {
        Some(item) => Json(item.clone()).into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("item {id} not found")),
    }
}

async fn update_item(
    State(app): State<App>,
    Path(id): Path<u64>,
    Json(body): Json<NewItem>,
) -> Response {
    if let Some(r) = invalid_item(&body) {
        return r;
    }
    let mut store = app.store();
    match store.items.get_mut(&id) {
        Some(item) => {
            item.name = body.name;
            item.tag = body.tag;
            Json(item.clone()).into_response()
        }
        None => error(StatusCode::NOT_FOUND, &format!("item {id} not found")),
    }
}

async fn delete_item(State(app): State<App>, Path(id): Path<u64>) -> Response {
    match app.store().items.remove(&id) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => error(StatusCode::NOT_FOUND, &format!("item {id} not found")),
    }
}

async fn status(Path(code): Path<u16>) -> Response {
    match StatusCode::from_u16(code) {
        Ok(s) if (200..=599).contains(&code) => error(s, &format!("status {code} as requested")),
        _ => error(StatusCode::BAD_REQUEST, "code must be between 200 and 599"),
    }
}

#[derive(Debug, Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(Query(q): Query<SlowQuery>) -> Response {
    let ms = q.ms.min(60_000);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Json(json!({"sleptMs": ms})).into_response()
}

/// Also names the connection's state explicitly (`Connection: keep-alive`, as nginx does):
/// a proxy must not relay that hop-by-hop header as it is.
async fn text() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CONNECTION, "keep-alive"),
        ],
        "hello from the demo API\n",
    )
        .into_response()
}

/// Echo a credential, or 401 with a challenge when it is missing.
fn credential(scheme: &str, received: Option<String>, challenge: &str) -> Response {
    match received {
        Some(v) => Json(json!({"scheme": scheme, "received": v})).into_response(),
        None => {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                &format!("missing {scheme} credential"),
            );
            if let Ok(v) = challenge.parse() {
                r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            r
        }
    }
}

fn header_value(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn authorization(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let v = header_value(headers, header::AUTHORIZATION)?;
    let (s, rest) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme)
        .then(|| rest.trim().to_string())
}

async fn auth_api_key_header(headers: HeaderMap) -> Response {
    credential(
        "apiKeyHeader",
        header_value(&headers, "x-api-key"),
        "ApiKey",
    )
}

async fn auth_api_key_query(Query(q): Query<BTreeMap<String, String>>) -> Response {
    credential("apiKeyQuery", q.get("api_key").cloned(), "ApiKey")
}

/// The first `session_key` cookie of the request, if any.
fn session_key_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == "session_key")
        .map(|(_, v)| v.to_string())
}

async fn auth_api_key_cookie(headers: HeaderMap) -> Response {
    let value = session_key_cookie(&headers);
    credential("apiKeyCookie", value, "ApiKey")
}

async fn auth_basic(headers: HeaderMap) -> Response {
    credential(
        "basicAuth",
        authorization(&headers, "basic"),
        "Basic realm=\"demo\"",
    )
}

async fn auth_bearer(headers: HeaderMap) -> Response {
    credential("bearerAuth", authorization(&headers, "bearer"), "Bearer")
}

async fn auth_oauth2(State(app): State<App>, headers: HeaderMap) -> Response {
    let token = authorization(&headers, "bearer");
    if let Some(t) = &token
        && app.store().rejected_tokens.contains(t)
    {
        return error(StatusCode::UNAUTHORIZED, "token rejected");
    }
    credential("oauthClient", token, "Bearer")
}

#[derive(Debug, Deserialize)]
struct RejectToken {
    token: String,
}

async fn reject_token(State(app): State<App>, Json(body): Json<RejectToken>) -> Response {
    app.store().rejected_tokens.push(body.token);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlakyQuery {
    key: String,
    fail: u32,
    retry_after: Option<u64>,
    status: Option<u16>,
}

/// Fail `fail` times per `key` (503, or `status`), then answer 200 with the attempt count.
async fn flaky(State(app): State<App>, Query(q): Query<FlakyQuery>) -> Response {
    let served = {
        let mut store = app.store();
        let n = store.flaky.entry(q.key.clone()).or_insert(0);
        *n += 1;
        *n
    };
    if served <= q.fail {
        let status = q
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut r = error(status, &format!("failure {served} of {}", q.fail));
        if let Some(s) = q.retry_after
            && let Ok(v) = s.to_string().parse()
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return r;
    }
    Json(json!({"attempts": served})).into_response()
}

#[derive(Debug, Deserialize)]
struct LargeQuery {
    bytes: u64,
}

/// Stream `bytes` bytes in 64 KiB chunks, produced on demand (never held in memory).
async fn large(Query(q): Query<LargeQuery>) -> Response {
    const CHUNK: u64 = 64 * 1024;
    let chunk = bytes::Bytes::from(vec![b'x'; CHUNK as usize]);
    let stream = futures_util::stream::unfold(q.bytes, move |left| {
        let chunk = chunk.clone();
        async move {
            (left > 0).then(|| {
                let n = left.min(CHUNK);
                (Ok::<_, std::io::Error>(chunk.slice(..n as usize)), left - n)
            })
        }
    });
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Count the request body as it streams in; answer its size.
async fn echo(req: Request) -> Response {
    use futures_util::StreamExt;
    let content_type = header_value(req.headers(), header::CONTENT_TYPE);
    let mut stream = req.into_body().into_data_stream();
    let mut total = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => total += c.len() as u64,
            Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }
    Json(json!({"bytes": total, "contentType": content_type})).into_response()
}

/// Any method, any path under `/anything/`: 200 `{"ok": true}` (what arrived is recorded).
async fn anything() -> Response {
    Json(json!({"ok": true})).into_response()
}

/// Percent-encode everything but RFC 3986 unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `/reflect/...`: a careless upstream that puts the credential it received (query `api_key`,
/// header `X-API-Key`, cookie `session_key` or a bearer token, the first found) into a
/// `302` to another host: `Location`, `Content-Location` and `Link` carry it percent-encoded,
/// `Refresh` as received. The body names no credential.
async fn reflect(Query(q): Query<Vec<(String, String)>>, headers: HeaderMap) -> Response {
    let cookie = session_key_cookie(&headers);
    let key = q
        .iter()
        .find(|(k, _)| k == "api_key")
        .map(|(_, v)| v.clone())
        .or_else(|| header_value(&headers, "x-api-key"))
        .or(cookie)
        .or_else(|| authorization(&headers, "bearer"));
    let Some(key) = key else {
        return error(StatusCode::UNAUTHORIZED, "no credential to reflect");
    };
    let enc = url_encode(&key);
    let mut r = (StatusCode::FOUND, Json(json!({"redirect": "elsewhere"}))).into_response();
    for (name, value) in [
        (
            header::LOCATION,
            format!("http://elsewhere.example/cb?api_key={enc}&next=1"),
        ),
        (header::CONTENT_LOCATION, format!("/reflect/self?key={enc}")),
        (
            header::LINK,
            format!("<http://elsewhere.example/p?key={enc}>; rel=\"next\""),
        ),
        (
            header::REFRESH,
            format!("0; url=http://elsewhere.example/?key={key}"),
        ),
    ] {
        if let Ok(v) = value.parse() {
            r.headers_mut().append(name, v);
        }
    }
    r
}

async fn debug_requests(State(app): State<App>) -> Response {
    Json(app.store().requests.iter().cloned().collect::<Vec<_>>()).into_response()
}

async fn debug_clear(State(app): State<App>) -> Response {
    app.store().requests.clear();
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, Default, Deserialize)]
struct DocMeta {
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    status: Option<u16>,
}

async fn serve_doc(
    State(app): State<App>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(root) = &app.docs else {
        return error(StatusCode::NOT_FOUND, "no --docs directory");
    };
    if path.split('/').any(|seg| seg == ".." || seg.is_empty()) {
        return error(StatusCode::BAD_REQUEST, "bad path");
    }
    let file = root.join(&path);
    let meta_file = root.join(format!("{path}.meta.json"));
    let meta: DocMeta = std::fs::read(&meta_file)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut resp = match meta.status.and_then(|s| StatusCode::from_u16(s).ok()) {
        Some(s) if !s.is_success() => error(s, "status forced by the .meta.json sidecar"),
        _ => match std::fs::read(&file) {
            Err(_) => error(StatusCode::NOT_FOUND, &format!("no document {path}")),
            Ok(body) => {
                let etag = format!("\"{:016x}\"", {
                    use std::hash::{Hash, Hasher};
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    body.hash(&mut h);
                    h.finish()
                });
                let modified = std::fs::metadata(&file)
                    .and_then(|m| m.modified())
                    .map(httpdate::fmt_http_date)
                    .unwrap_or_default();
                let inm = headers
                    .get(header::IF_NONE_MATCH)
                    .and_then(|v| v.to_str().ok());
                let ims = headers
                    .get(header::IF_MODIFIED_SINCE)
                    .and_then(|v| v.to_str().ok());
                let not_modified = match inm {
                    Some(tag) => tag == etag,
                    None => ims.is_some_and(|d| d == modified),
                };
                let mut r = if not_modified {
                    StatusCode::NOT_MODIFIED.into_response()
                } else {
                    let ct = if path.ends_with(".json") {
                        "application/json"
                    } else {
                        "application/yaml"
                    };
                    ([(header::CONTENT_TYPE, ct)], body).into_response()
                };
                if let (Ok(e), Ok(m)) = (etag.parse(), modified.parse()) {
                    r.headers_mut().insert(header::ETAG, e);
                    r.headers_mut().insert(header::LAST_MODIFIED, m);
                }
                r
            }
        },
    };
    for (name, value) in meta.headers {
        let values: Vec<String> = match value {
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Value::String(s) => vec![s],
            other => vec![other.to_string()],
        };
        for v in values {
            if let (Ok(n), Ok(v)) = (header::HeaderName::from_bytes(name.as_bytes()), v.parse()) {
                resp.headers_mut().append(n, v);
            }
        }
    }
    resp
}

fn router(app: App) -> Router {
    Router::new()
        .route("/openapi.yaml", get(spec_yaml))
        .route("/openapi.json", get(spec_json))
        .route("/items", get(list_items).post(create_item))
        .route(
            "/items/{id}",
            get(get_item).put(update_item).delete(delete_item),
        )
        .route("/status/{code}", get(status))
        .route("/slow", get(slow))
        .route("/text", get(text))
        .route("/auth/api-key-header", get(auth_api_key_header))
        .route("/auth/api-key-query", get(auth_api_key_query))
        .route("/auth/api-key-cookie", get(auth_api_key_cookie))
        .route("/auth/basic", get(auth_basic))
        .route("/auth/bearer", get(auth_bearer))
        .route("/auth/oauth2", get(auth_oauth2))
        .route("/flaky", get(flaky))
        .route("/large", get(large))
        .route("/echo", axum::routing::post(echo))
        .route("/anything/{*rest}", axum::routing::any(anything))
        .route("/reflect/{*rest}", get(reflect))
        .route("/_debug/reject-token", axum::routing::post(reject_token))
        .route("/_debug/requests", get(debug_requests).delete(debug_clear))
        .route("/docs/{*path}", get(serve_doc))
        .layer(middleware::from_fn_with_state(app.clone(), record))
        .with_state(app)
}

#[derive(Debug, Default)]
struct Args {
    addr: String,
    docs: Option<std::path::PathBuf>,
    tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut out = Args {
        addr: "127.0.0.1:8780".to_string(),
        ..Args::default()
    };
    let (mut cert, mut key) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => out.addr = args.next().ok_or("--addr needs HOST:PORT")?,
            "--docs" => out.docs = Some(args.next().ok_or("--docs needs DIR")?.into()),
            "--tls-cert" => cert = Some(args.next().ok_or("--tls-cert needs FILE")?.into()),
            "--tls-key" => key = Some(args.next().ok_or("--tls-key needs FILE")?.into()),
            "-h" | "--help" => {
                println!(
                    "usage: open-cli-testapi [--addr HOST:PORT] [--docs DIR] [--tls-cert PEM --tls-key PEM]   (default 127.0.0.1:8780)\n\
                     With --tls-cert/--tls-key it serves HTTPS (ALPN h2 and http/1.1) and names itself https://localhost:PORT."
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    out.tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(out)
}

/// TLS server config from PEM files (certificate chain, private key).
fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A TCP listener that completes the TLS handshake before handing a connection to axum
/// (failed handshakes are skipped: a test may connect with an untrusted client on purpose).
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(c) => c,
                Err(_) => {
                    // Transient (e.g. EMFILE): back off briefly, as axum's own listener does.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(&args.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.addr);
            return std::process::ExitCode::from(1);
        }
    };
    let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
    let tls = match &args.tls {
        None => None,
        Some((cert, key)) => match tls_config(cert, key) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: TLS: {e}");
                return std::process::ExitCode::from(2);
            }
        },
    };
    let base_url = match &tls {
        // The certificate names `localhost`.
        Some(_) => format!("https://localhost:{port}"),
        None => {
            let local = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or(args.addr.clone());
            format!("http://{local}")
        }
    };
    println!("listening on {base_url}");
    let _ = std::io::stdout().flush();
    let app = App {
        base_url,
        store: Arc::default(),
        docs: args.docs,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = match tls {
        Some(config) => {
            let listener = TlsListener {
                tcp: listener,
                acceptor: tokio_rustls::TlsAcceptor::from(config),
            };
            axum::serve(listener, router(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
        None => {
            axum::serve(listener, router(app))
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
