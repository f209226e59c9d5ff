//! Issue 15 item 3: an injected credential is never shadowed by a caller's value of the same
//! name (query parameter, header field, cookie; any case, `_` for `-`, percent-encoded), on
//! both channels, and an upstream's redirect or link never hands the secret to the caller.
//!
//! The service `rec` is described here (not by the demo document) so that its operations
//! take flags named like their credentials; its upstream is the test API, which records every
//! request (`/anything/...`) and reflects the credential it received in a redirect
//! (`/reflect/...`).

use open_cli_product_tests::{Fixture, Runtime, TestApi, execute, http};
use serde_json::{Value, json};

const QUERY_SECRET: &str = "q s3cret/+";
const HEADER_SECRET: &str = "h-s3cret";
const COOKIE_SECRET: &str = "c-s3cret";

fn op(id: &str, scheme: &str, params: Value) -> Value {
    json!({"get": {
        "operationId": id,
        "security": [{scheme: []}],
        "parameters": params,
        "responses": {"200": {"description": "ok"}, "302": {"description": "moved"}}
    }})
}

fn spec(api: &TestApi) -> Value {
    let p = |name: &str, location: &str| json!({"name": name, "in": location, "schema": {"type": "string"}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "rec", "version": "1"},
        "servers": [{"url": api.url}],
        "components": {"securitySchemes": {
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "apiKeyQuery": {"type": "apiKey", "in": "query", "name": "api_key"},
            "apiKeyCookie": {"type": "apiKey", "in": "cookie", "name": "session_key"}
        }},
        "paths": {
            "/anything/query": op("queryKey", "apiKeyQuery",
                json!([p("api_key", "query"), p("API-KEY", "query"), p("page", "query"), p("Api-Key", "header")])),
            "/anything/header": op("headerKey", "apiKeyHeader",
                json!([p("X-API-Key", "header"), p("X_API_Key", "header"), p("X-Trace", "header"), p("x.api.key", "query")])),
            "/anything/cookie": op("cookieKey", "apiKeyCookie",
                json!([p("pref", "cookie"), p("session_key", "cookie"), p("Cookie", "header")])),
            "/reflect/query": op("reflectQuery", "apiKeyQuery", json!([])),
            "/reflect/header": op("reflectHeader", "apiKeyHeader", json!([])),
            "/reflect/cookie": op("reflectCookie", "apiKeyCookie", json!([]))
        }
    })
}

fn start(api: &TestApi) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write_json("rec.openapi.json", &spec(api));
    let cfg = fx.write_json(
        ".cli.json",
        &json!({
            "cli": "1.0.0",
            "mode": {"default": "discover"},
            "sources": {"rec": {"type": "openapi", "uri": "rec.openapi.json"}},
            "services": {"rec": {"source": "rec", "alias": "rec"}},
            "secrets": {
                "rec.apiKeyQuery": {"type": "literal", "value": QUERY_SECRET},
                "rec.apiKeyHeader": {"type": "literal", "value": HEADER_SECRET},
                "rec.apiKeyCookie": {"type": "literal", "value": COOKIE_SECRET}
            }
        }),
    );
    let rt = Runtime::start(&cfg);
    (fx, rt)
}

/// The last request the upstream received at `path`.
fn last(api: &TestApi, path: &str) -> Value {
    api.requests_for(path)
        .pop()
        .unwrap_or_else(|| panic!("nothing reached {path}"))
}

/// Every value of header `name` (lower case) the upstream received, in order.
fn fields(req: &Value, name: &str) -> Vec<String> {
    req["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f[0] == name)
        .map(|f| f[1].as_str().unwrap().to_string())
        .collect()
}

/// The cookies the upstream received, `(name, value)` in order, over every `Cookie` field.
fn cookies(req: &Value) -> Vec<(String, String)> {
    fields(req, "cookie")
        .iter()
        .flat_map(|c| c.split(';').map(str::to_string).collect::<Vec<_>>())
        .filter_map(|kv| {
            kv.trim()
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect()
}

/// The pass-through with the caller's own fields.
fn pass(rt: &Runtime, path_and_query: &str, headers: &[(&str, &str)]) -> u16 {
    let mut r = http().get(format!("{}/proxy/rec{path_and_query}", rt.url));
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let resp = r.send().unwrap();
    let status = resp.status().as_u16();
    assert!(!resp.text().unwrap().contains("s3cret"), "{path_and_query}");
    status
}

#[test]
fn caller_query_parameters_named_like_the_credential_never_reach_the_upstream() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api);
    let injected = "api_key=q+s3cret%2F%2B";
    // Pass-through (the probe: `?api_key=CALLER` arrived as `api_key=CALLER&api_key=<secret>`),
    // with the case, separator and percent-encoded variants, and `;` as a separator.
    let status = pass(
        &rt,
        "/anything/query?api_key=CALLER&page=2&API%5FKEY=C2&api-key=C3;Api.Key=C4&x=api_key",
        &[("api-key", "CALLER-HEADER"), ("API_KEY", "CALLER-HEADER")],
    );
    assert_eq!(status, 200);
    let seen = last(&api, "/anything/query");
    assert_eq!(seen["query"], format!("page=2&x=api_key&{injected}"));
    assert!(fields(&seen, "api-key").is_empty(), "{seen}");
    assert!(fields(&seen, "api_key").is_empty(), "{seen}");
    // Nothing but the credential: the caller's query goes whole.
    assert_eq!(pass(&rt, "/anything/query?api_key=CALLER", &[]), 200);
    assert_eq!(last(&api, "/anything/query")["query"], injected);

    // Execute: query flags named like the credential (the probe: sent before the credential).
    let (s, v) = execute(
        &rt,
        json!({"toolId": "rec:queryKey", "flags": {"api_key": "CALLER", "API-KEY": "C2", "page": "2", "Api-Key": "C3"}}),
    );
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");
    let seen = last(&api, "/anything/query");
    assert_eq!(seen["query"], format!("page=2&{injected}"));
    assert!(fields(&seen, "api-key").is_empty(), "{seen}");
    assert!(
        !serde_json::to_string(&api.requests())
            .unwrap()
            .contains("CALLER")
    );
}

#[test]
fn caller_headers_named_like_the_credential_never_reach_the_upstream() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api);
    // Pass-through: the probe's `X_API_Key` travelled beside the injected `x-api-key`.
    let status = pass(
        &rt,
        "/anything/header?x-api-key=CALLER-QUERY&keep=1",
        &[
            ("X_API_Key", "CALLER"),
            ("x-api-key", "CALLER"),
            ("X.Api.Key", "CALLER"),
            ("X-Trace", "t"),
        ],
    );
    assert_eq!(status, 200);
    let seen = last(&api, "/anything/header");
    assert_eq!(fields(&seen, "x-api-key"), [HEADER_SECRET]);
    for other in ["x_api_key", "x.api.key"] {
        assert!(fields(&seen, other).is_empty(), "{other}: {seen}");
    }
    assert_eq!(fields(&seen, "x-trace"), ["t"]);
    assert_eq!(seen["query"], "keep=1");

    // Execute: the probe's header flag was sent as a second `x-api-key`, the caller's first.
    let (s, v) = execute(
        &rt,
        json!({"toolId": "rec:headerKey", "flags": {"X-API-Key": "CALLER", "X_API_Key": "CALLER", "X-Trace": "t", "x.api.key": "CALLER-QUERY"}}),
    );
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");
    let seen = last(&api, "/anything/header");
    assert_eq!(fields(&seen, "x-api-key"), [HEADER_SECRET]);
    assert!(fields(&seen, "x_api_key").is_empty(), "{seen}");
    assert_eq!(fields(&seen, "x-trace"), ["t"]);
    assert!(seen["query"].is_null(), "{seen}");
    assert!(
        !serde_json::to_string(&api.requests())
            .unwrap()
            .contains("CALLER")
    );
}

#[test]
fn cookie_flags_cannot_add_or_shadow_cookies() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api);
    // The probe: `{"pref": "x; session_key=INJECTED"}` became two cookies, the caller's
    // `session_key` first. Now the value is encoded (one cookie), the caller's own
    // `session_key` flag and the `session_key` in a `Cookie` header flag are removed, and
    // the other cookies remain.
    let (s, v) = execute(
        &rt,
        json!({"toolId": "rec:cookieKey", "flags": {
            "pref": "x; session_key=INJECTED",
            "session_key": "CALLER",
            "Cookie": "Session-Key=CALLER2; other=1"
        }}),
    );
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");
    let seen = last(&api, "/anything/cookie");
    assert_eq!(fields(&seen, "cookie").len(), 1, "{seen}");
    let got = cookies(&seen);
    let named = |n: &str| -> Vec<&str> {
        got.iter()
            .filter(|(k, _)| {
                k.eq_ignore_ascii_case(n) || k.replace('-', "_").eq_ignore_ascii_case(n)
            })
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(named("session_key"), [COOKIE_SECRET], "{got:?}");
    assert_eq!(named("pref"), ["x%3B%20session_key=INJECTED"], "{got:?}");
    assert_eq!(named("other"), ["1"], "{got:?}");

    // The pass-through never forwards the caller's `Cookie` (only the credential goes).
    let status = pass(
        &rt,
        "/anything/cookie",
        &[("cookie", "session_key=CALLER; pref=1")],
    );
    assert_eq!(status, 200);
    let seen = last(&api, "/anything/cookie");
    assert_eq!(
        fields(&seen, "cookie"),
        [format!("session_key={COOKIE_SECRET}")]
    );
}

#[test]
fn control_characters_in_header_and_cookie_flags_are_the_callers_mistake() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api);
    let before = api.requests().len();
    for (flag, value) in [
        ("X-Trace", "a\r\nX-Injected: 1"),
        ("X-Trace", "nul\u{0}"),
        ("X-Trace", "del\u{7f}"),
        ("X-Trace", "tab\there"),
        ("X-Trace", "lf\nonly"),
    ] {
        let (s, v) = execute(
            &rt,
            json!({"toolId": "rec:headerKey", "flags": {flag: value}}),
        );
        assert_eq!(s, 400, "{value:?}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        let msg = v["error"]["message"].as_str().unwrap().to_ascii_lowercase();
        assert!(msg.contains("x-trace") && msg.contains("control"), "{msg}");
    }
    let (s, v) = execute(
        &rt,
        json!({"toolId": "rec:cookieKey", "flags": {"pref": "a\r\nb"}}),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    assert!(
        v["error"]["message"].as_str().unwrap().contains("pref"),
        "{v}"
    );
    assert_eq!(api.requests().len(), before, "nothing was sent");
}

#[test]
fn secrets_reflected_by_the_upstream_never_reach_the_caller() {
    let api = TestApi::start();
    let (_fx, mut rt) = start(&api);
    let client = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for kind in ["query", "header", "cookie"] {
        let resp = client
            .get(format!("{}/proxy/rec/reflect/{kind}", rt.url))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 302, "{kind}");
        let h = resp.headers().clone();
        let shown = format!("{h:?}");
        assert!(!shown.contains("s3cret"), "{kind}: {shown}");
        // The redirect still goes where the upstream said, without the secret.
        assert_eq!(
            h["location"], "http://elsewhere.example/cb?api_key=REDACTED&next=1",
            "{kind}"
        );
        assert_eq!(h["content-location"], "/reflect/self?key=REDACTED");
        assert_eq!(
            h["link"],
            "<http://elsewhere.example/p?key=REDACTED>; rel=\"next\""
        );
        assert_eq!(
            h["refresh"],
            "0; url=http://elsewhere.example/?key=REDACTED"
        );
        assert!(!resp.text().unwrap().contains("s3cret"));
        // The upstream did get (and reflect) the secret.
        let seen = serde_json::to_string(&last(&api, &format!("/reflect/{kind}"))).unwrap();
        assert!(seen.contains("s3cret"), "{seen}");

        // Execute relays no `Location`, `Link`, … at all: only status, type and body.
        let resp = http()
            .post(format!("{}/v1/tools/execute", rt.url))
            .body(json!({"toolId": format!("rec:reflect{}", capitalise(kind))}).to_string())
            .send()
            .unwrap();
        let shown = format!("{:?}", resp.headers());
        let body = resp.text().unwrap();
        assert!(body.contains("\"statusCode\":302"), "{body}");
        assert!(
            !body.contains("s3cret") && !shown.contains("s3cret"),
            "{body} {shown}"
        );
    }
    let events: Vec<Value> = http()
        .get(format!("{}/v1/audit/events", rt.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let redacted: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["channel"] == "passthrough")
        .map(|e| {
            (
                e["toolId"].as_str().unwrap(),
                e["credentialsRedacted"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let all = "location,content-location,link,refresh";
    assert_eq!(
        redacted,
        [
            ("rec:reflectQuery", all),
            ("rec:reflectHeader", all),
            ("rec:reflectCookie", all)
        ],
        "the redaction is audited on the tool's own record"
    );
    // Stopped first: every log and audit line is then in its file.
    let logs = rt.stopped_logs();
    let log = std::fs::read_to_string(rt.state_dir.join("instances/test/audit.log")).unwrap();
    assert!(!log.contains("s3cret"));
    assert!(!logs.contains("s3cret"));
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
