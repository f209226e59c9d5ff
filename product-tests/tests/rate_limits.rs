//! Rate limits and per-service concurrency (issue 18, items 2 and 3): per principal with two
//! principals, per tool with `Retry-After` honoured, execute and pass-through sharing one
//! budget, the service's concurrency bound, and the Redis store shared by two runtimes and
//! stopped mid-run.

use std::path::Path;
use std::time::Duration;

use open_cli_product_tests::*;
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(20);

/// The demo API with `server` as `runtime.server`.
fn config(fx: &Fixture, api: &TestApi, server: Value) -> std::path::PathBuf {
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    fx.write_json(".cli.json", &open_demo_config(server))
}

fn start(cfg: &Path, state: &Path) -> Runtime {
    Runtime::try_start_in(cfg, state, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn call(rt: &Runtime, token: Option<&str>, tool: &str) -> reqwest::blocking::Response {
    let mut req = http()
        .post(format!("{}/v1/tools/execute", rt.url))
        .header("content-type", "application/json")
        .body(json!({"toolId": tool}).to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap()
}

fn pass(rt: &Runtime, token: &str, path: &str) -> reqwest::blocking::Response {
    http()
        .get(format!("{}/proxy/demo{path}", rt.url))
        .bearer_auth(token)
        .send()
        .unwrap()
}

fn header(resp: &reqwest::blocking::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// The audit rows with `decision`, once there are `n`.
fn decisions(rt: &Runtime, decision: &str, n: usize) -> Vec<Value> {
    audit_rows(rt, n, |v| v["decision"] == decision)
}

/// A token for `sub` that may also read the metrics.
fn token(issuer: &KeyedIssuer, sub: &str) -> String {
    issuer.token(sub, "bundle:demo metrics:read")
}

#[test]
fn a_principal_over_its_limit_is_refused_and_another_is_not() {
    let issuer = KeyedIssuer::start();
    let api = TestApi::start();
    let fx = Fixture::new();
    let cfg = config(
        &fx,
        &api,
        json!({"auth": issuer.auth(), "rateLimits": {"perPrincipal": {"requestsPerMinute": 4}}}),
    );
    let rt = start(&cfg, &fx.path().join("state"));
    let (alice, bob) = (token(&issuer, "alice"), token(&issuer, "bob"));

    // Execute and the pass-through draw on the same budget.
    for _ in 0..2 {
        assert_eq!(call(&rt, Some(&alice), "demo:listItems").status(), 200);
        assert_eq!(pass(&rt, &alice, "/items").status(), 200);
    }
    let upstream_before = api.requests().len();
    let refused = call(&rt, Some(&alice), "demo:listItems");
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=15).contains(&retry), "Retry-After {retry}");
    assert_eq!(header(&refused, "ratelimit-limit"), "4");
    assert_eq!(header(&refused, "ratelimit-remaining"), "0");
    assert_eq!(header(&refused, "ratelimit-reset"), retry.to_string());
    assert_eq!(header(&refused, "ratelimit-policy"), "4;w=60;burst=4");
    let body = expect_error(
        refused,
        429,
        "rate_limited",
        "the caller's limit of 4 requests per minute",
    );
    assert!(body["error"]["requestId"].is_string());
    let resp = pass(&rt, &alice, "/items");
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "content-type"), "application/json");
    // Nothing reached the upstream.
    assert_eq!(api.requests().len(), upstream_before);
    // A config reload that leaves the limits as they were keeps the buckets.
    rt.sighup_and_wait();
    assert_eq!(call(&rt, Some(&alice), "demo:listItems").status(), 429);

    // Bob is not affected.
    for _ in 0..4 {
        assert_eq!(call(&rt, Some(&bob), "demo:listItems").status(), 200);
    }

    let rows = decisions(&rt, "rate_limited", 3);
    for row in &rows {
        assert_eq!(row["reasonCode"], "rate_limited", "{row}");
        assert_eq!(row["eventType"], "authz_denial", "{row}");
        assert_eq!(row["principal"], "alice", "{row}");
    }
    // Refusals on both channels (their records in any order: several connections).
    let mut channels: Vec<&str> = rows.iter().filter_map(|r| r["channel"].as_str()).collect();
    channels.sort_unstable();
    assert_eq!(channels, ["execute", "execute", "passthrough"]);
    let metrics = metrics(&rt, &bob);
    assert!(
        metrics.contains("open_cli_edge_refusals_total{reason=\"rate_limited\"} 3"),
        "{metrics}"
    );
}

fn metrics(rt: &Runtime, token: &str) -> String {
    let resp = http()
        .get(format!("{}/metrics", rt.url))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().unwrap()
}

#[test]
fn a_tool_limit_is_shared_and_retry_after_is_enough() {
    let api = TestApi::start();
    let fx = Fixture::new();
    let cfg = config(
        &fx,
        &api,
        json!({"rateLimits": {
            "tools": {"demo:listItems": {"requestsPerSecond": 2, "burst": 2},
                      "demo:listItem": {"requestsPerSecond": 2}},
            "services": {"dmeo": {"requestsPerSecond": 2}}}}),
    );
    let rt = start(&cfg, &fx.path().join("state"));
    // Names that match nothing are typos more often than plans: said at start-up.
    wait_for("the unknown names logged", DEADLINE, || {
        let logs = rt.proc.logs();
        let said = |end: &str| {
            logs.lines()
                .any(|l| l.contains("applies to nothing") && l.ends_with(end))
        };
        (said("tool=demo:listItem") && said("service=dmeo") && !said("tool=demo:listItems"))
            .then_some(())
    })
    .unwrap();
    // Fill the bucket; the third call in the same instant is refused. (A refill may land
    // between calls on a slow machine: the refusal is waited for, within a deadline.)
    let refused = wait_for("a refusal", DEADLINE, || {
        let r = call(&rt, None, "demo:listItems");
        (r.status() == 429).then_some(r)
    })
    .unwrap();
    let retry: u64 = header(&refused, "retry-after").parse().unwrap();
    assert_eq!(retry, 1);
    assert_eq!(header(&refused, "ratelimit-policy"), "2;w=1;burst=2");
    expect_error(
        refused,
        429,
        "rate_limited",
        "tool `demo:listItems`'s limit",
    );
    // Another tool has no limit.
    assert_eq!(call(&rt, None, "demo:getText").status(), 200);
    // Waiting as told is enough: honouring Retry-After is what is tested, so this pause is the
    // client's, not a synchronisation.
    std::thread::sleep(Duration::from_secs(retry));
    assert_eq!(call(&rt, None, "demo:listItems").status(), 200);
}

#[test]
fn a_service_at_its_concurrency_bound_answers_503_until_a_call_ends() {
    let api = TestApi::start();
    let fx = Fixture::new();
    let cfg = config(&fx, &api, json!({"limits": {"maxConcurrentPerService": 1}}));
    let rt = start(&cfg, &fx.path().join("state"));
    let url = format!("{}/proxy/demo/slow?ms=3000", rt.url);
    let slow = std::thread::spawn(move || http().get(url).send().unwrap().status().as_u16());
    wait_for("the slow call upstream", DEADLINE, || {
        (!api.requests_for("/slow").is_empty()).then_some(())
    })
    .unwrap();
    let busy = call(&rt, None, "demo:listItems");
    assert_eq!(header(&busy, "retry-after"), "1");
    expect_error(
        busy,
        503,
        "service_busy",
        "service `demo` has 1 calls in progress",
    );
    assert_eq!(slow.join().unwrap(), 200);
    assert_eq!(call(&rt, None, "demo:listItems").status(), 200);
    let rows = decisions(&rt, "error", 1);
    assert_eq!(rows[0]["reasonCode"], "service_busy");
}

#[test]
fn two_runtimes_on_one_redis_share_a_budget_exactly_and_a_lost_store_is_handled_as_set() {
    let issuer = KeyedIssuer::start();
    let api = TestApi::start();
    let redis = Redis::start();
    let store = redis.url();
    let rt_for = |on_error: &str| {
        let fx = Fixture::new();
        let cfg = config(
            &fx,
            &api,
            json!({"auth": issuer.auth(), "rateLimits": {
                "perPrincipal": {"requestsPerMinute": 10},
                "store": store, "onStoreError": on_error, "storeTimeoutMs": 200}}),
        );
        let rt = start(&cfg, &fx.path().join("state"));
        (fx, rt)
    };
    let ((_a, a), (_b, b)) = (rt_for("allow"), rt_for("deny"));
    let carol = token(&issuer, "carol");
    let mut allowed = 0;
    for i in 0..14 {
        let rt = if i % 2 == 0 { &a } else { &b };
        match call(rt, Some(&carol), "demo:listItems").status().as_u16() {
            200 => allowed += 1,
            429 => {}
            other => panic!("status {other}"),
        }
    }
    assert_eq!(allowed, 10, "two replicas must share one budget of 10");
    // Another principal starts with a full budget on either replica.
    assert_eq!(
        call(&b, Some(&token(&issuer, "dave")), "demo:listItems").status(),
        200
    );

    // The store goes away: `allow` lets calls through (counted), `deny` refuses them.
    let port = redis.port;
    drop(redis);
    wait_for("redis gone", DEADLINE, || {
        ping(port).is_none().then_some(())
    })
    .unwrap();
    let erin = token(&issuer, "erin");
    assert_eq!(call(&a, Some(&erin), "demo:listItems").status(), 200);
    expect_error(
        call(&b, Some(&erin), "demo:listItems"),
        503,
        "rate_limit_unavailable",
        "onStoreError is `deny`",
    );
    let text = metrics(&a, &erin);
    assert!(
        text.contains("open_cli_rate_limit_store_errors_total 1"),
        "{text}"
    );
    wait_for("the store error logged", DEADLINE, || {
        a.proc
            .logs()
            .contains("the rate-limit store cannot be asked")
            .then_some(())
    })
    .unwrap();
    // A runtime that starts while the store is down: `allow` serves.
    let (_c, c) = rt_for("allow");
    assert_eq!(call(&c, Some(&erin), "demo:listItems").status(), 200);
    // Back: limits apply again (an empty store: a fresh budget), on the runtime that was
    // connected before and on the one that never was.
    let redis = Redis::start_on(Port::Fixed(port));
    wait_for("calls counted again", DEADLINE, || {
        (call(&b, Some(&erin), "demo:listItems").status() == 200).then_some(())
    })
    .unwrap();
    let frank = token(&issuer, "frank");
    let statuses = wait_for("frank limited through the store", DEADLINE, || {
        let s: Vec<u16> = (0..11)
            .map(|_| call(&c, Some(&frank), "demo:listItems").status().as_u16())
            .collect();
        s.contains(&429).then_some(s)
    })
    .unwrap();
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 10,
        "{statuses:?}"
    );
    drop(redis);
}
