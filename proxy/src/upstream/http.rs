//! The upstream HTTP call behind `POST /v1/tools/execute`.
//!
//! - One pooled `reqwest` client per distinct upstream profile (connect/read timeouts, CA
//!   file, h2c) for the whole process — never one per request. Redirects are not followed (a
//!   3xx is relayed): following one could carry injected credentials to another host.
//! - The URL is the tool's server + its path template with path arguments percent-encoded as
//!   single segments (`/` becomes `%2F`; `.` and `..` are refused), so no argument can change
//!   which operation is called or on which host.
//! - Retries, only for idempotent operations: connect errors, timeouts, 429, 502, 503, 504; at
//!   most `retries` extra attempts; exponential backoff from 100 ms, capped at 2 s, with full
//!   jitter; a `Retry-After` of at most 10 s is honoured (a longer one ends the retries and the
//!   answer is relayed). A 401 on a call that used an OAuth token drops the token and retries
//!   once with a fresh one (any method: the upstream refused before acting).
//! - The whole call, retries included, is bounded by `totalTimeoutMs`; the response body by
//!   `maxResponseBytes` (read incrementally and abandoned past the limit).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use bytes::Bytes;
use open_cli_config::model::Upstream;
use open_cli_config::ntc::Tool;

use crate::credentials::Applied;
use crate::credentials::shadow;
use crate::error::error_chain;

const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// The pooled clients, keyed by upstream profile.
#[derive(Debug, Default)]
pub struct Clients {
    clients: parking_lot::Mutex<HashMap<ClientKey, reqwest::Client>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    connect_ms: u64,
    read_ms: u64,
    ca_file: Option<String>,
    h2c: bool,
}

impl Clients {
    pub fn get(&self, up: &Upstream) -> Result<reqwest::Client, String> {
        let key = ClientKey {
            connect_ms: up.connect_timeout_ms,
            read_ms: up.read_timeout_ms,
            ca_file: up.ca_file.clone(),
            h2c: up.h2c,
        };
        if let Some(c) = self.clients.lock().get(&key) {
            return Ok(c.clone());
        }
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(key.connect_ms))
            .read_timeout(Duration::from_millis(key.read_ms))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("open-cli-toolbox/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &key.ca_file {
            let pem = open_cli_config::files::read_regular(
                std::path::Path::new(ca),
                open_cli_config::files::MAX_CA_BYTES,
            )
            .map_err(|e| format!("cannot read caFile `{ca}`: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("caFile `{ca}` is not a PEM bundle: {e}"))?;
            b = b.tls_certs_merge(certs);
        }
        if key.h2c {
            b = b.http2_prior_knowledge();
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot create the upstream HTTP client: {e}"))?;
        self.clients.lock().insert(key, client.clone());
        Ok(client)
    }
}

/// A prepared upstream request (credentials are added per attempt).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: reqwest::Method,
    pub url: url::Url,
    pub headers: Vec<(String, String)>,
    pub cookies: Vec<(String, String)>,
    pub body: Option<Bytes>,
    pub content_type: Option<String>,
}

/// The upstream path of a call: the tool's path template with its arguments, each
/// percent-encoded as one segment; errors are the caller's (400). (The caller checks the
/// result against the path rule, [`crate::policy::path::check_path`], before [`prepare`].)
pub fn upstream_path(tool: &Tool, path_args: &[String]) -> Result<String, String> {
    if path_args.len() != tool.path_params.len() {
        let names: Vec<&str> = tool.path_params.iter().map(|p| p.name.as_str()).collect();
        return Err(format!(
            "tool `{}` takes {} path argument(s) ({}), got {}",
            tool.id,
            names.len(),
            names.join(", "),
            path_args.len()
        ));
    }
    let mut path = String::new();
    for seg in tool.path.split('/').skip(1) {
        path.push('/');
        if seg.starts_with('{') && seg.ends_with('}') {
            let (param, value) = tool
                .path_params
                .iter()
                .zip(path_args)
                .find(|(p, _)| p.original_name == seg[1..seg.len() - 1])
                .ok_or_else(|| format!("path parameter `{seg}` has no argument"))?;
            if value.is_empty() {
                return Err(format!("path argument `{}` must not be empty", param.name));
            }
            path.push_str(&open_cli_config::ntc::encode_path_segment(value));
        } else {
            path.push_str(seg);
        }
    }
    Ok(path)
}

/// Build the URL and parameters of a call to `path` (from [`upstream_path`]); errors are the
/// caller's (400).
pub fn prepare(
    tool: &Tool,
    base: &url::Url,
    path: &str,
    flags: &[(&open_cli_config::ntc::Parameter, Vec<String>)],
    body: Option<Bytes>,
) -> Result<Prepared, String> {
    let mut url = base.clone();
    let joined = format!("{}{}", url.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    let mut headers = Vec::new();
    let mut cookies = Vec::new();
    {
        let mut q = url.query_pairs_mut();
        for (param, values) in flags {
            for v in values {
                match param.location.as_str() {
                    "query" => {
                        q.append_pair(&param.original_name, v);
                    }
                    "header" => {
                        check_field(param, v)?;
                        headers.push((param.original_name.to_ascii_lowercase(), v.clone()));
                    }
                    "cookie" => {
                        check_field(param, v)?;
                        cookies.push((
                            param.original_name.clone(),
                            shadow::encode_cookie_value(v).into_owned(),
                        ));
                    }
                    other => return Err(format!("parameter location `{other}` is not supported")),
                }
            }
        }
    }
    if url.query() == Some("") {
        url.set_query(None);
    }
    let content_type = body.as_ref().map(|_| {
        let declared = tool
            .request_body
            .as_ref()
            .map(|b| b.content_types.as_slice())
            .unwrap_or_default();
        match declared {
            [one] if !one.media_type.contains("json") => one.media_type.clone(),
            _ => "application/json".to_string(),
        }
    });
    let method = reqwest::Method::from_bytes(tool.method.as_bytes())
        .map_err(|_| format!("tool `{}` has an invalid method", tool.id))?;
    Ok(Prepared {
        method,
        url,
        headers,
        cookies,
        body,
        content_type,
    })
}

/// A header or cookie flag's name and value are fit to send: the name an HTTP token (for a
/// cookie also without `=`, `;`, `,`: a token has none of them), the value without control
/// characters (CR, LF, NUL, other C0, DEL) that could end the field or the request head.
/// (Cookie values are also percent-encoded: [`shadow::encode_cookie_value`].)
fn check_field(param: &open_cli_config::ntc::Parameter, value: &str) -> Result<(), String> {
    let name = &param.original_name;
    if name.is_empty() || !name.bytes().all(shadow::token_char) {
        return Err(format!(
            "flag `{}`: `{name}` is not a valid {} name (letters, digits and !#$%&'*+-.^_`|~ only)",
            param.name, param.location
        ));
    }
    if let Some(b) = value.bytes().find(|b| shadow::is_control(*b)) {
        return Err(format!(
            "flag `{}`: the {} value contains the control character 0x{b:02X}; control characters (CR, LF, NUL, other C0 and DEL) are not allowed",
            param.name, param.location
        ));
    }
    Ok(())
}

/// What came back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
    pub retries: u32,
}

#[derive(Debug)]
pub enum CallError {
    Timeout(String),
    Transport(String),
    TooLarge(u64),
    /// Credentials could not be renewed after a 401.
    Credentials(String),
}

/// Run the call with retries; `renew` re-resolves credentials after a 401 on an OAuth token.
pub async fn call<F, Fut>(
    client: &reqwest::Client,
    up: &Upstream,
    idempotent: bool,
    prepared: &Prepared,
    mut creds: std::sync::Arc<Applied>,
    request_id: &str,
    renew: F,
) -> Result<Answer, CallError>
where
    F: Fn(std::sync::Arc<Applied>) -> Fut,
    Fut: std::future::Future<Output = Result<std::sync::Arc<Applied>, String>>,
{
    let total = Duration::from_millis(up.total_timeout_ms);
    let work = async {
        let mut retries = 0u32;
        let mut renewed = false;
        loop {
            let sent = send(client, prepared, &creds, request_id).await;
            let retryable = idempotent && retries < up.retries;
            match sent {
                Err(e) => {
                    // The URL may carry an API key in its query: never show it.
                    let e = e.without_url();
                    let timeout = e.is_timeout();
                    let why = error_chain(&e);
                    if retryable && (e.is_connect() || timeout) {
                        tokio::time::sleep(backoff(retries)).await;
                        retries += 1;
                        continue;
                    }
                    return Err(if timeout {
                        CallError::Timeout(why)
                    } else {
                        CallError::Transport(why)
                    });
                }
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    if status == 401 && !creds.oauth.is_empty() && !renewed {
                        renewed = true;
                        creds = renew(creds).await.map_err(CallError::Credentials)?;
                        retries += 1;
                        continue;
                    }
                    if retryable && matches!(status, 429 | 502 | 503 | 504) {
                        match retry_after(resp.headers()) {
                            Some(d) if d > MAX_RETRY_AFTER => {}
                            Some(d) => {
                                drop(resp);
                                tokio::time::sleep(d).await;
                                retries += 1;
                                continue;
                            }
                            None => {
                                drop(resp);
                                tokio::time::sleep(backoff(retries)).await;
                                retries += 1;
                                continue;
                            }
                        }
                    }
                    return read(resp, up.max_response_bytes, retries).await;
                }
            }
        }
    };
    match tokio::time::timeout(total, work).await {
        Ok(r) => r,
        Err(_) => Err(CallError::Timeout(format!(
            "no complete answer within totalTimeoutMs ({} ms)",
            up.total_timeout_ms
        ))),
    }
}

async fn send(
    client: &reqwest::Client,
    p: &Prepared,
    creds: &Applied,
    request_id: &str,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut url = p.url.clone();
    // The flags named like an injected credential go before the credentials are added, in
    // any location (query, header, cookie), as on the pass-through (`shadow`).
    if let Some(q) = url.query() {
        let kept = creds.shadow.strip_query(q).map(|k| k.into_owned());
        url.set_query(kept.as_deref());
    }
    if !creds.query.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in &creds.query {
            q.append_pair(k, v);
        }
    }
    let mut req = client.request(p.method.clone(), url);
    // One `Cookie` field: a `Cookie` header flag's cookies, the cookie flags, the credentials.
    let mut cookies: Vec<String> = Vec::new();
    for (k, v) in &p.headers {
        if k == "cookie" {
            cookies.extend(creds.shadow.strip_cookies(v).map(|c| c.into_owned()));
        } else if !creds.shadow.shadows_header(k.as_bytes()) {
            req = req.header(k.as_str(), v.as_str());
        }
    }
    for (k, v) in &creds.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let flags = p
        .cookies
        .iter()
        .filter(|(k, _)| !creds.shadow.shadows_cookie(k.as_bytes()));
    cookies.extend(flags.chain(&creds.cookies).map(|(k, v)| format!("{k}={v}")));
    // (`creds.wire` is not used here: the tool's own cookie parameters share one header
    // with the credential cookies.)
    if !cookies.is_empty() {
        req = req.header("cookie", cookies.join("; "));
    }
    req = req.header("x-request-id", request_id);
    if let Some(body) = &p.body {
        if let Some(ct) = &p.content_type {
            req = req.header("content-type", ct.as_str());
        }
        req = req.body(body.clone());
    }
    // One span per attempt, the upstream's parent (`traceparent`) when traces are exported.
    let span = crate::span!(
        "upstream",
        otel.kind = "client",
        http.request.method = %p.method,
        server.address = p.url.host_str().unwrap_or_default(),
        http.response.status_code = tracing::field::Empty,
    );
    for (k, v) in crate::trace::outgoing(&span) {
        req = req.header(k, v);
    }
    let sent = tracing::Instrument::instrument(req.send(), span.clone()).await;
    if let Ok(r) = &sent {
        span.record("http.response.status_code", r.status().as_u16());
    }
    sent
}

async fn read(mut resp: reqwest::Response, limit: u64, retries: u32) -> Result<Answer, CallError> {
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(CallError::TooLarge(limit));
    }
    let mut body = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if (body.len() + c.len()) as u64 > limit {
                    return Err(CallError::TooLarge(limit));
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Err(CallError::Timeout(error_chain(&e.without_url())));
            }
            Err(e) => return Err(CallError::Transport(error_chain(&e.without_url()))),
        }
    }
    Ok(Answer {
        status,
        content_type,
        body: Bytes::from(body),
        retries,
    })
}

/// Full-jitter exponential backoff: uniform in `[0, min(cap, base·2^attempt)]`.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(10))
        .min(BACKOFF_CAP);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(attempt);
    let r = h.finish();
    ceiling.mul_f64((r % 10_000) as f64 / 10_000.0)
}

/// `Retry-After` as seconds or an HTTP date.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded_whole() {
        use open_cli_config::ntc::encode_path_segment as enc;
        assert_eq!(enc("a b/c?d#e%"), "a%20b%2Fc%3Fd%23e%25");
        assert_eq!(enc("héllo"), "h%C3%A9llo");
        assert_eq!(enc("x-y_z.~"), "x-y_z.~");
    }

    #[test]
    fn backoff_is_bounded_and_retry_after_parses() {
        for a in 0..20 {
            assert!(backoff(a) <= BACKOFF_CAP);
        }
        assert!(backoff(0) <= BACKOFF_BASE);
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }
}
