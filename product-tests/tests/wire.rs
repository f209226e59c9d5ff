//! Issue 15 items 4–6 through the real binary: paths mean one thing on both channels,
//! identity and method-override headers do not pass, framing is resolved rather than relayed.
//! Framing and path cases go over a raw `TcpStream` (an HTTP client would normalise them); the
//! test upstream records what reached it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use open_cli_product_tests::{Fixture, Runtime, TestApi, execute, http, run};
use serde_json::{Value, json};

/// The `rec` service: operations on the test upstream, `rec:deleteItem` denied by policy.
fn rec_document(api: &TestApi) -> Value {
    let op = |id: &str, params: Value| json!({"operationId": id, "parameters": params, "responses": {"200": {"description": "ok"}}});
    let name =
        json!([{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let id = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let headers = json!([
        {"name": "X-HTTP-Method-Override", "in": "header", "schema": {"type": "string"}},
        {"name": "X-Real-IP", "in": "header", "schema": {"type": "string"}},
        {"name": "X-Trace", "in": "header", "schema": {"type": "string"}}
    ]);
    let mut create = op("createItem", json!([]));
    create["requestBody"] =
        json!({"content": {"application/json": {"schema": {"type": "object"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "rec", "version": "1"},
        "servers": [{"url": api.url}],
        "paths": {
            "/files/{name}": {"get": op("getFile", name)},
            "/items": {"get": op("listItems", json!([])), "post": create},
            "/items/{id}": {"delete": op("deleteItem", id)},
            "/text": {"get": op("getText", headers)}
        }
    })
}

fn rec_config(extra: Value) -> Value {
    let mut c = json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"rec": {"type": "openapi", "uri": "rec.openapi.json"}},
        "services": {"rec": {"source": "rec", "alias": "rec"}},
        "policy": {"deny": ["rec:deleteItem"]}
    });
    if let (Value::Object(c), Value::Object(e)) = (&mut c, extra) {
        c.extend(e);
    }
    c
}

fn start(api: &TestApi, extra: Value) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write_json("rec.openapi.json", &rec_document(api));
    let cfg = fx.write_json(".cli.json", &rec_config(extra));
    let rt = Runtime::start(&cfg);
    (fx, rt)
}

fn addr(rt: &Runtime) -> String {
    rt.url.trim_start_matches("http://").to_string()
}

/// Send raw bytes, read until the runtime closes the connection (every request here ends
/// with `Connection: close` or makes the runtime close).
fn raw(rt: &Runtime, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr(rt)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The status of the first answer in raw response bytes.
fn status(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {answer:?}"))
}

fn no_server_banner(answer: &str) {
    assert!(
        !answer
            .lines()
            .any(|l| l.to_ascii_lowercase().starts_with("server:")),
        "a Server header in {answer}"
    );
}

fn audit(rt: &Runtime) -> Vec<Value> {
    http()
        .get(format!("{}/v1/audit/events", rt.url))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Item 4: `..;/admin`, `%2e%2e;`, `..;x=1`, fullwidth and other look-alike dots, empty
/// segments are refused by the pass-through (400 naming the problem) and the same check
/// refuses execute path arguments; what is forwarded is what was matched, and the audit
/// records the path actually sent.
#[test]
fn dot_and_empty_segments_are_refused_on_both_channels() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}));
    let host = addr(&rt);
    for path in [
        "/files/..;/admin",
        "/files/%2e%2e;/admin",
        "/files/%2E%2e%3B/admin",
        "/files/..;x=1/admin",
        "/files/..%3Bx=1",
        "/files/.;",
        "/files/%EF%BC%8E%EF%BC%8E",
        "/files/%ef%bc%8e%ef%bc%8e",
        "/files/%E2%80%A4%E2%80%A4",
        "/files/%E2%80%A5",
        "/files/%EF%B9%92.",
        "/files/a%EF%BC%8Fb",
        "//items",
        "/files//x",
        "/files/;x",
    ] {
        let answer = raw(
            &rt,
            format!("GET /proxy/rec{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status(&answer), 400, "{path}: {answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("segment") && message.contains("not allowed"),
            "{path}: {message}"
        );
        no_server_banner(&answer);
    }
    // Raw look-alike dots in the request line (Pingora escapes them) are refused as well.
    let mut line = b"GET /proxy/rec/files/".to_vec();
    line.extend_from_slice("\u{ff0e}\u{ff0e}".as_bytes());
    line.extend_from_slice(
        format!(" HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status(&raw(&rt, &line)), 400);
    assert!(
        api.requests().is_empty(),
        "refused paths reached the upstream: {:?}",
        api.requests()
    );

    // Execute: the same rule on path arguments (`../admin` was sent as `..%2Fadmin`).
    for arg in [
        "../admin",
        "..",
        "..;x=1",
        "\u{ff0e}\u{ff0e}",
        "\u{2025}",
        "a\u{ff0f}b",
    ] {
        let (s, v) = execute(&rt, json!({"toolId": "rec:getFile", "pathArgs": [arg]}));
        assert_eq!(s, 400, "{arg}: {v}");
        assert_eq!(v["error"]["code"], "invalid_request", "{arg}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unsafe path"),
            "{arg}: {v}"
        );
    }
    assert!(api.requests().is_empty(), "{:?}", api.requests());

    // A sound path is forwarded as matched, and both channels audit the path sent.
    let resp = http()
        .get(format!("{}/proxy/rec/files/report.txt", rt.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404, "the upstream has no /files");
    let (s, v) = execute(&rt, json!({"toolId": "rec:getFile", "pathArgs": ["a b"]}));
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(404)), "{v}");
    let seen: Vec<String> = api
        .requests()
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["/files/report.txt", "/files/a%20b"]);
    let events = audit(&rt);
    let sent: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e["toolId"] == "rec:getFile" && e["decision"] == "allowed")
        .map(|e| {
            (
                e["channel"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
                e["upstreamPath"].as_str().unwrap_or("<none>"),
            )
        })
        .collect();
    assert_eq!(
        sent,
        [
            ("passthrough", "/files/{name}", "/files/report.txt"),
            ("execute", "/files/{name}", "/files/a%20b"),
        ],
        "{events:#?}"
    );
}

/// Item 5: the caller's `Forwarded`, `X-Real-IP`, `X-Original-URL`, … never reach the
/// upstream; the runtime sets `Forwarded` like `X-Forwarded-*`; a method override is refused
/// (it slipped a DELETE past the policy deny on `rec:deleteItem`); `forwardHeaders` keeps
/// only what the operator names; execute header flags follow the same rule.
#[test]
fn identity_and_method_override_headers_do_not_pass() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}));
    let spoofed = [
        ("Forwarded", "for=6.6.6.6;host=evil;proto=https"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Client-IP", "6.6.6.6"),
        ("True-Client-IP", "6.6.6.6"),
        ("Client-IP", "6.6.6.6"),
        ("X-Cluster-Client-IP", "6.6.6.6"),
        ("X-ProxyUser-Ip", "6.6.6.6"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Host", "evil"),
        ("X-Forwarded-Server", "evil"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-For", "6.6.6.6"),
        // `_` for `-`: CGI-style upstreams read these as the same variables.
        ("X_Forwarded_For", "6.6.6.6"),
        ("X_Real_IP", "6.6.6.6"),
        ("X-Trace", "kept"),
    ];
    let mut req = http().get(format!("{}/proxy/rec/items", rt.url));
    for (k, v) in spoofed {
        req = req.header(k, v);
    }
    assert_eq!(req.send().unwrap().status(), 200);
    let got = api.requests_for("/items").pop().unwrap();
    let headers = got["headers"].as_object().unwrap();
    for (k, v) in headers {
        let v = v.as_str().unwrap();
        assert!(
            !v.contains("6.6.6.6") && !v.contains("evil") && !v.contains("/admin") && v != "443",
            "`{k}: {v}` reached the upstream: {headers:?}"
        );
    }
    assert_eq!(headers["x-trace"], "kept");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    let host = addr(&rt);
    assert_eq!(headers["x-forwarded-host"], host.as_str());
    assert_eq!(
        headers["forwarded"],
        format!("for=127.0.0.1;host=\"{host}\";proto=http").as_str()
    );

    // A method override is refused on an allowed POST (nothing forwarded), as well as a
    // DELETE would have been: the policy denies `rec:deleteItem`.
    let before = api.requests().len();
    for name in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X_HTTP_Method_Override",
    ] {
        let resp = http()
            .post(format!("{}/proxy/rec/items", rt.url))
            .header(name, "DELETE")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 400, "{name}");
        let v: Value = resp.json().unwrap();
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&name.to_ascii_lowercase()),
            "{v}"
        );
    }
    let resp = http()
        .delete(format!("{}/proxy/rec/items/1", rt.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(api.requests().len(), before, "{:?}", api.requests());

    // Execute: header flags by those names are refused; others are sent.
    for flag in ["X-HTTP-Method-Override", "X-Real-IP"] {
        let (s, v) = execute(
            &rt,
            json!({"toolId": "rec:getText", "flags": {flag: "DELETE"}}),
        );
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{flag}: {v}"
        );
    }
    assert_eq!(api.requests().len(), before);
    let (s, v) = execute(
        &rt,
        json!({"toolId": "rec:getText", "flags": {"X-Trace": "t"}}),
    );
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");

    // The operator's allowlist keeps exactly the names it lists.
    let api2 = TestApi::start();
    let (_fx2, rt2) = start(
        &api2,
        json!({"runtime": {"mode": "remote", "server": {"passThrough": {"forwardHeaders": ["X-Real-IP"]}}}}),
    );
    let resp = http()
        .get(format!("{}/proxy/rec/items", rt2.url))
        .header("X-Real-IP", "10.9.8.7")
        .header("True-Client-IP", "6.6.6.6")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = api2.requests_for("/items").pop().unwrap();
    assert_eq!(got["headers"]["x-real-ip"], "10.9.8.7");
    assert!(got["headers"].get("true-client-ip").is_none(), "{got}");
    let (s, v) = execute(
        &rt2,
        json!({"toolId": "rec:getText", "flags": {"X-Real-IP": "10.9.8.7"}}),
    );
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");
    assert_eq!(
        api2.requests_for("/text").pop().unwrap()["headers"]["x-real-ip"],
        "10.9.8.7"
    );

    // The allowlist cannot keep what the runtime sets or always refuses.
    for name in [
        "Forwarded",
        "X-Forwarded-For",
        "X-HTTP-Method-Override",
        "Accept",
    ] {
        let fx = Fixture::new();
        fx.write_json("rec.openapi.json", &rec_document(&api));
        let cfg = fx.write_json(
            ".cli.json",
            &rec_config(json!({"runtime": {"mode": "remote", "server": {"passThrough": {"forwardHeaders": [name]}}}})),
        );
        let out = run(
            "open-cli-toolbox",
            &["validate", "--config", cfg.to_str().unwrap()],
            &[],
            None,
        );
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "{name}: {text}");
        assert!(
            text.contains("forwardHeaders") && text.contains(name),
            "{name}: {text}"
        );
    }
}

/// Item 6: ambiguous framing and `Host` are refused (400) and codings other than `chunked`
/// are 501 before anything goes upstream (all were relayed), without a `Server` banner.
#[test]
fn framing_is_resolved_not_relayed() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}));
    let host = addr(&rt);
    let post = |fields: &str, body: &str| {
        raw(
            &rt,
            format!("POST /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\n{fields}\r\n{body}").as_bytes(),
        )
    };
    for (fields, body, want) in [
        ("Content-Length: 2, 2\r\n", "{}", 400),
        ("Content-Length: 2\r\nContent-Length: 2\r\n", "{}", 400),
        (
            "Transfer-Encoding: gzip, chunked\r\n",
            "2\r\n{}\r\n0\r\n\r\n",
            501,
        ),
        (
            "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n",
            "2\r\n{}\r\n0\r\n\r\n",
            400,
        ),
        (
            "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n",
            "2\r\n{}\r\n0\r\n\r\n",
            400,
        ),
    ] {
        let answer = post(fields, body);
        assert_eq!(status(&answer), want, "{fields:?}: {answer}");
        no_server_banner(&answer);
    }
    for bad_host in ["evil.example, other", "a/b", "a b", "x:99999"] {
        let answer = raw(
            &rt,
            format!(
                "GET /proxy/rec/items HTTP/1.1\r\nHost: {bad_host}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(status(&answer), 400, "{bad_host}: {answer}");
        assert!(answer.contains("invalid Host"), "{answer}");
        no_server_banner(&answer);
    }
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    // A local error answer has no banner either.
    let answer = raw(
        &rt,
        format!("GET /v1/nope HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status(&answer), 404, "{answer}");
    no_server_banner(&answer);
}

/// Item 6: heads that Pingora's parser refuses before the gateway runs (a `Content-Length`
/// list of different values, a repeated `Host`, bad syntax, `CONNECT`) get the runtime's
/// own JSON error, with no `Server: Pingora` banner; nothing reaches the upstream, and the
/// next connection is served as usual.
#[test]
fn heads_the_parser_refuses_get_the_runtimes_error_without_a_banner() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}));
    let host = addr(&rt);
    for (head, want, code) in [
        (
            format!(
                "POST /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5, 6\r\n\r\nhello!"
            ),
            400,
            "invalid_request",
        ),
        (
            format!("GET /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nHost: other.example\r\n\r\n"),
            400,
            "invalid_request",
        ),
        (
            format!("GET /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nBad Header : x\r\n\r\n"),
            400,
            "invalid_request",
        ),
        (
            "GET /proxy/rec/items HTTP/1.1 extra\r\n\r\n".to_string(),
            400,
            "invalid_request",
        ),
        (
            format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            405,
            "method_not_allowed",
        ),
    ] {
        let answer = raw(&rt, head.as_bytes());
        assert_eq!(status(&answer), want, "{head:?}: {answer}");
        no_server_banner(&answer);
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("\r\nconnection: close\r\n"), "{answer}");
        let body: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap())
            .unwrap_or_else(|e| panic!("{head:?}: not JSON ({e}): {answer}"));
        assert_eq!(body["error"]["code"], code, "{head:?}: {body}");
    }
    assert!(api.requests().is_empty(), "{:?}", api.requests());
    // The runtime serves on.
    let answer = raw(
        &rt,
        format!("GET /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(status(&answer), 200, "{answer}");
}

/// Item 6: a chunked body that turns out invalid after the upstream got the head gets a
/// clean 400 (there was no HTTP answer at all) and an audit record.
#[test]
fn an_invalid_chunk_mid_stream_gets_a_400_and_an_audit_record() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}));
    let host = addr(&rt);
    let answer = raw(
        &rt,
        format!("POST /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n").as_bytes(),
    );
    assert!(!answer.is_empty(), "no HTTP answer at all");
    assert_eq!(status(&answer), 400, "{answer}");
    assert!(answer.contains("invalid_request"), "{answer}");
    no_server_banner(&answer);
    let events = audit(&rt);
    let e = events
        .iter()
        .rev()
        .find(|e| e["toolId"] == "rec:createItem")
        .unwrap_or_else(|| panic!("not audited: {events:#?}"));
    assert_eq!(e["decision"], "error", "{e}");
    assert_eq!(e["reasonCode"], "invalid_request", "{e}");
    assert_eq!(e["channel"], "passthrough", "{e}");
}

/// Item 6: requests pipelined behind the first are answered, in order (they were dropped
/// with the connection); no answer carries a `Server` banner.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, json!({}));
    let host = addr(&rt);
    let answer = raw(
        &rt,
        format!(
            "GET /proxy/rec/items HTTP/1.1\r\nHost: {host}\r\nX-Request-ID: pipe-1\r\n\r\n\
             GET /v1/runtime/info HTTP/1.1\r\nHost: {host}\r\nX-Request-ID: pipe-2\r\n\r\n\
             GET /proxy/rec/text HTTP/1.1\r\nHost: {host}\r\nX-Request-ID: pipe-3\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(answer.matches("HTTP/1.1 200").count(), 3, "{answer}");
    let order: Vec<usize> = ["pipe-1", "pipe-2", "pipe-3"]
        .iter()
        .map(|id| {
            answer
                .find(id)
                .unwrap_or_else(|| panic!("{id} unanswered: {answer}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{answer}");
    assert!(answer.contains("hello from the demo API"), "{answer}");
    no_server_banner(&answer);
}
