//! Issue 15 items 8-10: tokens read strictly, least privilege on the runtime's own routes,
//! strict execute requests.

use std::io::{BufRead, BufReader, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use open_cli_product_tests::{AUDIENCE, Fixture, Oidc, Runtime, TestApi, demo_config, http};
use serde_json::{Value, json};

const SCOPES: &str = "bundle:demo audit:read runtime:refresh";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A provider whose signing key the test holds, and a demo runtime trusting it.
struct Crafted {
    oidc: Oidc,
    key: EncodingKey,
    _keys: Fixture,
    _fx: Fixture,
    rt: Runtime,
    _api: TestApi,
}

impl Crafted {
    fn start() -> Self {
        let api = TestApi::start();
        let keys = Fixture::new();
        let (jwks, key) = open_cli_product_tests::rsa_signing_key(keys.path(), "k1");
        let oidc = Oidc::start(SCOPES, &[("JWKS_FILE", jwks.to_str().unwrap())]);
        let fx = Fixture::new();
        fx.write("demo.openapi.yaml", &api.spec_yaml());
        let cfg = fx.write_json(
            ".cli.json",
            &demo_config(json!({"runtime": {"server": {"auth": {
                "validationProfile": "oidc_jwks", "issuer": oidc.issuer, "audience": AUDIENCE,
                "jwksURL": format!("{}/jwks", oidc.issuer), "leewaySeconds": 30}}}})),
        );
        let rt = Runtime::start(&cfg);
        Self {
            oidc,
            key,
            _keys: keys,
            _fx: fx,
            rt,
            _api: api,
        }
    }

    /// Good claims for `sub` with `scope`.
    fn claims(&self, sub: &str, scope: &str) -> Value {
        json!({"iss": self.oidc.issuer, "aud": AUDIENCE, "sub": sub, "scope": scope,
               "iat": now(), "exp": now() + 600})
    }

    /// A token signed with the trusted key: `header` edits the RS256 header, `claims` as given.
    fn sign(&self, header: impl FnOnce(&mut Header), claims: &Value) -> String {
        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some("k1".into());
        h.typ = Some("at+jwt".into());
        header(&mut h);
        jsonwebtoken::encode(&h, claims, &self.key).unwrap()
    }

    fn token(&self, sub: &str, scope: &str) -> String {
        self.sign(|_| {}, &self.claims(sub, scope))
    }

    fn get(&self, path: &str, token: &str) -> reqwest::blocking::Response {
        http()
            .get(format!("{}{path}", self.rt.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    }
}

fn tool_count(body: &Value) -> usize {
    body["view"]["tools"].as_array().unwrap().len()
}

/// A 401 whose challenge and message are printable ASCII and bounded; the message must
/// contain `why`.
fn refused(resp: reqwest::blocking::Response, why: &str) -> String {
    assert_eq!(resp.status(), 401, "{why}");
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Bearer realm=\"open-cli\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(challenge.len() < 300, "bounded: {challenge}");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"]["code"], "authn_failed");
    let msg = body["error"]["message"].as_str().unwrap().to_string();
    assert!(msg.contains(why), "`{why}` not in `{msg}`");
    assert!(
        msg.chars().all(|c| (' '..='~').contains(&c)),
        "printable ASCII only: {msg:?}"
    );
    msg
}

#[test]
fn tokens_are_read_strictly() {
    let c = Crafted::start();
    let good = c.token("alice", "bundle:demo");
    let resp = c.get("/v1/catalog/effective", &good);
    assert_eq!(resp.status(), 200, "the test's key is trusted");
    assert_eq!(tool_count(&resp.json().unwrap()), 17);

    // crit: we implement no extension, so any critical header parameter is refused (RFC
    // 7515 §4.1.11), as is an unencoded payload (b64, RFC 7797).
    let claims = c.claims("alice", "bundle:demo");
    for crit in [vec!["x-unknown-ext"], vec!["exp"]] {
        let t = c.sign(
            |h| h.crit = Some(crit.iter().map(|s| s.to_string()).collect()),
            &claims,
        );
        refused(
            c.get("/v1/catalog/effective", &t),
            "critical header extensions (crit)",
        );
    }
    let t = c.sign(|h| h.extras.insert("b64", false), &claims);
    refused(c.get("/v1/catalog/effective", &t), "`b64` header parameter");

    // Time claims: NumericDate (a number, fractions allowed), never skipped.
    let with = |k: &str, v: Value| {
        let mut cl = c.claims("alice", "bundle:demo");
        cl[k] = v;
        c.sign(|_| {}, &cl)
    };
    let future = now() + 3600;
    for (k, v, why) in [
        (
            "iat",
            json!(future.to_string()),
            "`iat` claim is not a NumericDate",
        ),
        (
            "iat",
            json!(future as f64 + 0.5),
            "issued in the future (iat)",
        ),
        ("iat", json!(null), "`iat` claim is not a NumericDate"),
        (
            "exp",
            json!((now() + 600).to_string()),
            "`exp` claim is not a NumericDate",
        ),
        ("exp", json!(now() as f64 - 40.5), "the token has expired"),
        (
            "nbf",
            json!(future.to_string()),
            "`nbf` claim is not a NumericDate",
        ),
        ("nbf", json!(future as f64 + 0.5), "not valid yet (nbf)"),
    ] {
        refused(c.get("/v1/catalog/effective", &with(k, v.clone())), why);
    }
    let past_float = with("iat", json!(now() as f64 - 10.25));
    assert_eq!(
        c.get("/v1/catalog/effective", &past_float).status(),
        200,
        "a fractional NumericDate in the past is fine"
    );

    // Scopes are separated by U+0020 only: NBSP, tab, newline, em space do not split.
    for scope in [
        "bundle:demo\u{a0}bundle:rec",
        "bundle:demo\tbundle:rec",
        "bundle:demo\nbundle:rec",
        "bundle:demo\u{2003}bundle:rec",
    ] {
        let t = c.token("alice", scope);
        let body: Value = c.get("/v1/catalog/effective", &t).json().unwrap();
        assert_eq!(tool_count(&body), 0, "{scope:?} grants nothing");
    }

    // Token-chosen text (kid, iss) with NUL, CR/LF, bidi overrides or 300 characters: a
    // 401 with an escaped, bounded reason, never a 500.
    let mut refusals = 0;
    for kid in [
        "k\u{0}x",
        "k\r\nx: y",
        "\u{202e}kx",
        &"k".repeat(300),
        "a\"b\\c",
    ] {
        let t = c.sign(|h| h.kid = Some(kid.to_string()), &claims);
        let msg = refused(c.get("/v1/catalog/effective", &t), "no key with kid");
        assert!(!msg.contains("kkkkk".repeat(20).as_str()), "{msg}");
        refusals += 1;
    }
    for iss in [
        "https://x\u{0}",
        "https://x\r\nSet-Cookie: a=b",
        "\u{202e}moc.x",
    ] {
        let mut cl = claims.clone();
        cl["iss"] = json!(iss);
        let t = c.sign(|_| {}, &cl);
        let msg = refused(
            c.get("/v1/catalog/effective", &t),
            "which is not a trusted issuer",
        );
        assert!(!msg.contains('\u{202e}') && !msg.contains('\r'), "{msg:?}");
        refusals += 1;
    }
    // The pass-through refuses the same way.
    let t = c.sign(|h| h.kid = Some("k\r\nx".into()), &claims);
    let resp = http()
        .get(format!("{}/proxy/demo/items", c.rt.url))
        .bearer_auth(&t)
        .send()
        .unwrap();
    refused(resp, "no key with kid `k%0D%0Ax`");
    refusals += 1;

    // The audit records what the caller got: 401s, no 500s.
    let auditor = c.token("auditor", "audit:read");
    let events: Vec<Value> = c.get("/v1/audit/events", &auditor).json().unwrap();
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["eventType"] == "authn_failure")
        .collect();
    assert!(failures.len() >= refusals, "{failures:?}");
    assert!(
        failures.iter().all(|e| e["statusCode"] == 401),
        "{failures:?}"
    );
    assert_eq!(c.get("/healthz", &auditor).status(), 200, "still serving");
}

#[test]
fn random_opaque_tokens_cannot_flood_the_introspection_endpoint() {
    let api = TestApi::start();
    let oidc = Oidc::start("bundle:demo", &[]);
    let opaque_aud = "urn:open-cli:opaque";
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"auth": {
            "validationProfile": "oauth2_introspection", "audience": opaque_aud, "issuer": oidc.issuer,
            "introspectionURL": format!("{}/token/introspection", oidc.issuer),
            "clientId": {"type": "literal", "value": "runtime"},
            "clientSecret": {"type": "literal", "value": "runtime-secret"}}}}})),
    );
    let rt = Runtime::start(&cfg);
    let good = oidc.token("bundle:demo", Some(opaque_aud));
    let get = |token: &str| {
        http()
            .get(format!("{}/v1/catalog/effective", rt.url))
            .bearer_auth(token)
            .send()
            .unwrap()
    };
    assert_eq!(get(&good).status(), 200);
    let before = oidc.introspections();

    // 200 random opaque tokens arriving at once: every request is written before any answer
    // is read, so the runtime, not the provider's speed, decides how many calls it makes.
    let addr = rt.url.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let conns: Vec<std::net::TcpStream> = (0..200)
        .map(|i| {
            let mut c = std::net::TcpStream::connect(&addr).unwrap();
            write!(
                c,
                "GET /v1/catalog/effective HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer random-{i}-{}\r\nConnection: close\r\n\r\n",
                now()
            )
            .unwrap();
            c
        })
        .collect();
    let statuses: Vec<(u16, Option<String>, Value)> = conns
        .into_iter()
        .map(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut c, &mut text).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap();
            let status = head[9..12].parse().unwrap();
            let retry = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("retry-after: ")
                    .map(str::to_string)
            });
            (
                status,
                retry,
                serde_json::from_str(body).unwrap_or(Value::Null),
            )
        })
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    let calls = oidc.introspections() - before;
    // Burst 40, then 20 per second.
    let bound = 40 + (20.0 * elapsed).ceil() as u64 + 1;
    assert!(calls < 200, "{calls} calls in {elapsed:.2} s");
    assert!(
        calls <= bound,
        "{calls} introspection calls for 200 random tokens in {elapsed:.2} s (bound {bound})"
    );
    assert!(statuses.iter().all(|(s, _, _)| *s == 401 || *s == 503));
    let throttled: Vec<_> = statuses.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(!throttled.is_empty(), "{calls} calls in {elapsed:.2} s");
    for (_, retry, body) in &throttled {
        assert_eq!(body["error"]["code"], "introspection_throttled", "{body}");
        let secs: u64 = retry.as_deref().unwrap().parse().unwrap();
        assert!(secs >= 1, "{retry:?}");
    }
    // A caller the provider already vouched for is not locked out by the flood.
    assert_eq!(get(&good).status(), 200);
}

#[test]
fn the_audit_log_and_refresh_need_their_scopes() {
    let c = Crafted::start();
    let execute = |token: &str, tool: &str| {
        let resp = http()
            .post(format!("{}/v1/tools/execute", c.rt.url))
            .bearer_auth(token)
            .body(json!({"toolId": tool}).to_string())
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "{tool}");
    };
    let alice = c.token("alice", "bundle:demo");
    let bob = c.token("bob", "bundle:demo");
    execute(&alice, "demo:listItems");
    execute(&bob, "demo:getText");
    // An anonymous refusal: no principal.
    assert_eq!(
        http()
            .get(format!("{}/v1/catalog/effective", c.rt.url))
            .send()
            .unwrap()
            .status(),
        401
    );

    let events = |token: &str| -> Vec<Value> {
        let resp = c.get("/v1/audit/events", token);
        assert_eq!(resp.status(), 200);
        resp.json().unwrap()
    };
    let principals = |evs: &[Value]| -> Vec<String> {
        let mut p: Vec<String> = evs
            .iter()
            .map(|e| e["principal"].as_str().unwrap_or("(none)").to_string())
            .collect();
        p.sort();
        p.dedup();
        p
    };
    let own = events(&alice);
    assert_eq!(principals(&own), ["alice"], "{own:?}");
    assert!(own.iter().any(|e| e["toolId"] == "demo:listItems"));
    assert_eq!(principals(&events(&bob)), ["bob"]);
    // audit:read sees everyone, anonymous refusals included.
    let auditor = c.token("auditor", "audit:read");
    let all = principals(&events(&auditor));
    for p in ["(none)", "alice", "bob"] {
        assert!(all.contains(&p.to_string()), "{p} in {all:?}");
    }

    // Pages keep the rule, whatever the filter and on every page; naming another principal
    // needs audit:read.
    let paged = |token: &str, q: &str| -> Vec<Value> {
        let resp = c.get(&format!("/v1/audit/events?{q}"), token);
        assert_eq!(resp.status(), 200, "{q}");
        let body: Value = resp.json().unwrap();
        body["events"].as_array().unwrap().clone()
    };
    for q in [
        "order=newest&limit=1",
        "order=oldest",
        "order=oldest&toolId=demo:getText",
        "principal=alice",
    ] {
        let evs = paged(&alice, q);
        assert!(
            evs.iter().all(|e| e["principal"] == "alice"),
            "{q}: {evs:?}"
        );
    }
    assert_eq!(
        paged(&alice, "channel=execute&toolId=demo:listItems").len(),
        1
    );
    assert!(
        paged(&alice, "channel=execute&toolId=demo:getText").is_empty(),
        "bob's call"
    );
    let first: Value = c
        .get("/v1/audit/events?order=oldest&limit=1", &alice)
        .json()
        .unwrap();
    let next = first["next"].as_str().unwrap();
    let rest = paged(&alice, &format!("order=oldest&cursor={next}"));
    assert!(rest.iter().all(|e| e["principal"] == "alice"), "{rest:?}");
    open_cli_product_tests::expect_error(
        c.get("/v1/audit/events?principal=bob", &alice),
        403,
        "authz_denied",
        "audit:read",
    );
    let bobs = paged(&auditor, "principal=bob");
    assert!(!bobs.is_empty() && bobs.iter().all(|e| e["principal"] == "bob"));

    // Refresh needs runtime:refresh.
    for method in ["GET", "POST"] {
        let resp = http()
            .request(method.parse().unwrap(), format!("{}/v1/refresh", c.rt.url))
            .bearer_auth(&alice)
            .send()
            .unwrap();
        assert_eq!(
            resp.headers()["www-authenticate"],
            "Bearer realm=\"open-cli\", error=\"insufficient_scope\"",
            "{method}"
        );
        open_cli_product_tests::expect_error(resp, 403, "authz_denied", "runtime:refresh");
    }
    let operator = c.token("operator", "runtime:refresh");
    let resp = http()
        .post(format!("{}/v1/refresh", c.rt.url))
        .bearer_auth(&operator)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The new scopes neither widen nor narrow the envelope.
    let mixed = c.token("alice", "bundle:demo runtime:refresh audit:read");
    let body: Value = c.get("/v1/catalog/effective", &mixed).json().unwrap();
    assert_eq!(tool_count(&body), 17);
    let only = c.token("alice", "runtime:refresh audit:read");
    let body: Value = c.get("/v1/catalog/effective", &only).json().unwrap();
    assert_eq!(tool_count(&body), 0);
}

/// A document server whose answers can be held: `hold()` makes the next request wait until
/// `release()`; `held()` tells when one is waiting.
struct HeldDocs {
    url: String,
    hold: mpsc::Sender<mpsc::Receiver<()>>,
    waiting: mpsc::Receiver<()>,
}

impl HeldDocs {
    fn start(doc: String) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/openapi.yaml", listener.local_addr().unwrap());
        let (hold_tx, hold_rx) = mpsc::channel::<mpsc::Receiver<()>>();
        let (wait_tx, wait_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                if let Ok(release) = hold_rx.try_recv() {
                    let _ = wait_tx.send(());
                    let _ = release.recv();
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{doc}",
                    doc.len()
                );
            }
        });
        Self {
            url,
            hold: hold_tx,
            waiting: wait_rx,
        }
    }

    fn hold(&self) -> mpsc::Sender<()> {
        let (tx, rx) = mpsc::channel();
        self.hold.send(rx).unwrap();
        tx
    }
}

#[test]
fn with_auth_off_refresh_is_one_at_a_time_and_rate_limited() {
    let api = TestApi::start();
    let docs = HeldDocs::start(api.spec_yaml());
    let fx = Fixture::new();
    let mut cfg = demo_config(json!({}));
    cfg["sources"]["demo"]["uri"] = json!(docs.url);
    let rt = Runtime::start(&fx.write_json(".cli.json", &cfg));
    let refresh = |timeout: u64| {
        reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(timeout))
            .build()
            .unwrap()
            .post(format!("{}/v1/refresh", rt.url))
            .send()
    };

    // One refresh held at the document server; a second one meanwhile is refused at once.
    let started = Instant::now();
    let release = docs.hold();
    std::thread::scope(|s| {
        let first = s.spawn(|| refresh(30).unwrap());
        docs.waiting
            .recv_timeout(Duration::from_secs(10))
            .expect("the first refresh reaches the document server");
        let second = refresh(5).expect("answered at once, not queued");
        assert_eq!(second.status(), 409);
        let e: Value = second.json().unwrap();
        assert_eq!(e["error"]["code"], "refresh_in_progress", "{e}");
        assert!(e["error"]["requestId"].is_string());
        release.send(()).unwrap();
        assert_eq!(first.join().unwrap().status(), 200);
    });

    // Beyond the rate (bursts of 2, one per second): 429 with Retry-After. Back-to-back
    // refreshes (each takes a fraction of a second) soon find the bucket empty.
    let mut admitted = 1; // the first one above
    let throttled = (0..20)
        .map(|_| refresh(30).unwrap())
        .find(|r| {
            admitted += u64::from(r.status() == 200);
            r.status() == 429
        })
        .expect("a refresh beyond the rate is refused");
    let bound = 2 + started.elapsed().as_secs_f64().ceil() as u64;
    assert!(
        admitted <= bound,
        "{admitted} refreshes admitted (bound {bound})"
    );
    let retry: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let e: Value = throttled.json().unwrap();
    assert_eq!(e["error"]["code"], "refresh_throttled", "{e}");
}

#[test]
fn execute_requests_are_strict_and_send_numbers_exactly() {
    let api = TestApi::start();
    let (_fx, rt) = open_cli_product_tests::start_demo_runtime(&api);
    let execute = |body: Value| {
        let resp = rt.post("/v1/tools/execute", &body.to_string());
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap())
    };
    // A misspelt key is refused, naming it, before anything runs.
    let before = api.requests_for("/items").len();
    let (s, v) = execute(json!({"toolId": "demo:listItems", "agentprofile": "reader"}));
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("unknown key `agentprofile` (did you mean `agentProfile`?)"),
        "{msg}"
    );
    assert_eq!(api.requests_for("/items").len(), before, "nothing was sent");
    let (s, v) = execute(json!({"toolId": "demo:listItems", "flags": {"limt": 1}}));
    assert_eq!(s, 400, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("no flag `limt` (did you mean `limit`?)"),
        "{msg}"
    );

    // Numbers reach the upstream exactly as given (raw JSON: serde_json's Value would round).
    for (number, sent) in [
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("9007199254740993", "9007199254740993"),
        ("1e2", "1e2"),
        ("-0.10", "-0.10"),
    ] {
        let body = format!(r#"{{"toolId": "demo:listItems", "flags": {{"limit": {number}}}}}"#);
        let resp = rt.post("/v1/tools/execute", &body);
        assert_eq!(resp.status(), 200, "{number}");
        let seen = api.requests_for("/items").pop().unwrap();
        assert_eq!(seen["query"], format!("limit={sent}"), "{number}");
    }
}

/// MCP arguments are re-encoded as JSON for the server: a number that would change on the
/// way (beyond 64-bit integers, more digits than a double holds) is refused, naming it.
#[test]
fn mcp_arguments_that_cannot_be_sent_exactly_are_refused() {
    use base64::Engine;
    let (node, args) = open_cli_product_tests::McpEverything::stdio_command();
    let fx = Fixture::new();
    let cfg = fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "sources": {"everything": {"type": "mcp",
            "transport": {"type": "stdio", "command": node, "args": args}}}}),
    );
    let rt = Runtime::start(&cfg);
    let sum = |args: &str| {
        let body = base64::engine::general_purpose::STANDARD.encode(args);
        let resp = rt.post(
            "/v1/tools/execute",
            &json!({"toolId": "everything:get-sum", "body": body}).to_string(),
        );
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap())
    };
    let (s, v) = sum(r#"{"a": 123456789012345678901234567890, "b": 1}"#);
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "invalid_request");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the number at `/a` cannot be sent exactly"),
        "{msg}"
    );
    let (s, v) = sum(r#"{"a": 0.30000000000000000000001, "b": 1}"#);
    assert_eq!(s, 400, "{v}");
    // Exactly representable numbers go through.
    let (s, v) = sum(r#"{"a": 9007199254740993, "b": 1e2}"#);
    assert_eq!(s, 200, "{v}");
}
