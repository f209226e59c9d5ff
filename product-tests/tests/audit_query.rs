//! `GET /v1/audit/events` as a query (issue 17, item 3): filters, both orders and cursor pages
//! across rotated, compressed files; expired cursors; the contract's array when no new
//! parameter is given. The `audit:read` rule on pages is in `strict`.

use std::collections::HashSet;
use std::time::Duration;

use open_cli_product_tests::{
    Fixture, Load, Runtime, TestApi, demo_config, expect_error, http, wait_for,
};
use serde_json::{Value, json};

fn runtime_with(api: &TestApi, audit: Value) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let config = fx.write_json(
        ".cli.json",
        &demo_config(json!({"runtime": {"server": {"audit": audit}}})),
    );
    let rt = Runtime::try_start(&config, &[]).unwrap_or_else(|e| panic!("{e}"));
    (fx, rt)
}

fn get(rt: &Runtime, query: &str) -> reqwest::blocking::Response {
    http()
        .get(format!("{}/v1/audit/events?{query}", rt.url))
        .send()
        .unwrap()
}

fn page(rt: &Runtime, query: &str) -> Value {
    let resp = get(rt, query);
    assert_eq!(resp.status(), 200, "{query}");
    resp.json().unwrap()
}

/// Every page of a query, following `next` until a page comes back empty.
fn all_pages(rt: &Runtime, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut q = query.to_string();
    for _ in 0..1000 {
        let p = page(rt, &q);
        assert_eq!(p["unreadableLines"], 0);
        let events = p["events"].as_array().unwrap().clone();
        let empty = events.is_empty();
        out.extend(events);
        match p["next"].as_str() {
            Some(next) if !empty => q = format!("{query}&cursor={next}"),
            _ => return out,
        }
    }
    panic!("paging did not end: {query}");
}

fn request_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| e["requestId"].as_str().map(str::to_string))
        .collect()
}

fn rotated_count(live: &std::path::Path) -> usize {
    std::fs::read_dir(live.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_str().unwrap().ends_with(".gz"))
        .count()
}

fn audit_path(rt: &Runtime) -> std::path::PathBuf {
    let rj: Value =
        serde_json::from_str(&std::fs::read_to_string(&rt.runtime_json).unwrap()).unwrap();
    rj["auditPath"].as_str().unwrap().into()
}

/// Calls on both channels until the log has rotated into at least three compressed files.
fn fill(rt: &Runtime, prefix: &str) -> Vec<String> {
    let base = rt.url.clone();
    let load = Load::start(3, prefix, move |client, i| {
        if i % 2 == 0 {
            client.get(format!("{base}/proxy/demo/items"))
        } else {
            client
                .post(format!("{base}/v1/tools/execute"))
                .header("content-type", "application/json")
                .body(json!({"toolId": "demo:listItems"}).to_string())
        }
    });
    let live = audit_path(rt);
    wait_for(
        "three compressed rotated files",
        Duration::from_secs(60),
        || (load.answered() >= 300 && rotated_count(&live) >= 3).then_some(()),
    )
    .unwrap();
    load.stop()
}

#[test]
fn pages_and_filters_span_rotated_compressed_files() {
    let api = TestApi::start();
    let (_fx, rt) = runtime_with(
        &api,
        json!({"rotation": {"maxBytes": 16384, "compress": true}}),
    );
    let answered = fill(&rt, "q");
    let answered: HashSet<String> = answered.into_iter().collect();

    // Every answered call, exactly once, in each order and at several page sizes.
    for limit in [37, 1000] {
        for order in ["oldest", "newest"] {
            let events = all_pages(&rt, &format!("order={order}&limit={limit}"));
            let ids: Vec<String> = request_ids(&events)
                .into_iter()
                .filter(|id| id.starts_with("q-"))
                .collect();
            let unique: HashSet<&String> = ids.iter().collect();
            assert_eq!(ids.len(), unique.len(), "{order} {limit}: an event twice");
            for id in &answered {
                assert!(unique.contains(id), "{order} {limit}: {id} missing");
            }
            // Write order, to within the writer's batch window: the timestamps of a page
            // sequence never go back by more than a second.
            let ts: Vec<&str> = events
                .iter()
                .map(|e| e["timestamp"].as_str().unwrap())
                .collect();
            let back = |a: &str, b: &str| {
                let secs = |t: &str| -> f64 {
                    let hms: Vec<f64> = t[11..23].split(':').map(|x| x.parse().unwrap()).collect();
                    hms[0] * 3600.0 + hms[1] * 60.0 + hms[2]
                };
                secs(a) - secs(b)
            };
            for w in ts.windows(2) {
                let (earlier, later) = if order == "oldest" {
                    (w[0], w[1])
                } else {
                    (w[1], w[0])
                };
                assert!(
                    back(earlier, later) < 1.0,
                    "{order}: {earlier} then {later}"
                );
            }
        }
    }

    // Exact filters: one request ID; a channel; a tool (with the channel).
    let one = answered.iter().next().unwrap().to_string();
    let hit = page(&rt, &format!("requestId={one}"));
    assert_eq!(request_ids(hit["events"].as_array().unwrap()), [one]);
    let passthrough = all_pages(&rt, "channel=passthrough&limit=1000");
    assert!(!passthrough.is_empty());
    assert!(passthrough.iter().all(|e| e["channel"] == "passthrough"));
    let executed = all_pages(&rt, "channel=execute&toolId=demo:listItems&limit=1000");
    assert!(!executed.is_empty());
    assert!(
        executed
            .iter()
            .all(|e| e["channel"] == "execute" && e["toolId"] == "demo:listItems")
    );
    let all_q = all_pages(&rt, "order=oldest&limit=1000");
    let q_count = |evs: &[Value]| {
        request_ids(evs)
            .iter()
            .filter(|id| id.starts_with("q-"))
            .count()
    };
    assert_eq!(
        q_count(&passthrough) + q_count(&executed),
        q_count(&all_q),
        "the two channels partition the calls"
    );

    // `since`/`until` by each line's own time: the events from the middle one on.
    let mid = all_q[all_q.len() / 2]["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    let later = all_pages(&rt, &format!("since={mid}&limit=1000"));
    let earlier = all_pages(&rt, &format!("until={mid}&limit=1000"));
    assert!(
        later
            .iter()
            .all(|e| e["timestamp"].as_str().unwrap() >= mid.as_str())
    );
    assert!(
        earlier
            .iter()
            .all(|e| e["timestamp"].as_str().unwrap() < mid.as_str())
    );
    assert_eq!(later.len() + earlier.len(), all_q.len());
    // An age works too: everything was written in the last hour.
    assert_eq!(all_pages(&rt, "since=1h&limit=1000").len(), all_q.len());
    assert!(all_pages(&rt, "until=1h&limit=1000").is_empty());

    // The contract's array when no new parameter is given.
    let arr: Value = get(&rt, "limit=5&toolId=demo:listItems").json().unwrap();
    assert_eq!(arr.as_array().unwrap().len(), 5);

    // Precise refusals.
    expect_error(get(&rt, "sinse=1h"), 400, "invalid_request", "sinse");
    expect_error(get(&rt, "since=yesterday"), 400, "invalid_request", "since");
    expect_error(get(&rt, "order=up"), 400, "invalid_request", "order");
    expect_error(
        get(&rt, "order=oldest&limit=1001"),
        400,
        "invalid_request",
        "1000",
    );
    expect_error(get(&rt, "cursor=bm9wZQ"), 400, "invalid_request", "cursor");
    let newest_cursor = page(&rt, "order=newest&limit=1")["next"]
        .as_str()
        .unwrap()
        .to_string();
    expect_error(
        get(&rt, &format!("order=oldest&cursor={newest_cursor}")),
        400,
        "invalid_request",
        "order",
    );
}

/// A cursor into a file that retention has since deleted is refused as expired, never
/// silently restarted; a cursor at the end of the log follows what is written after it.
#[test]
fn cursors_follow_the_log_and_expire_with_retention() {
    let api = TestApi::start();
    let (_fx, rt) = runtime_with(
        &api,
        json!({"rotation": {"maxBytes": 8192, "keep": 1, "compress": true}}),
    );
    let call = |id: &str| {
        let r = http()
            .get(format!("{}/proxy/demo/items", rt.url))
            .header("x-request-id", id)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    call("first");
    let first = page(&rt, "order=oldest&limit=1");
    assert_eq!(request_ids(first["events"].as_array().unwrap()), ["first"]);
    let at_first = first["next"].as_str().unwrap().to_string();
    // The end of the log: nothing more yet, and the cursor stays put.
    let end = page(&rt, "order=oldest&limit=10");
    let tail = end["next"].as_str().unwrap().to_string();
    let again = page(&rt, &format!("order=oldest&cursor={tail}"));
    assert!(again["events"].as_array().unwrap().is_empty());
    call("second");
    let follow = page(&rt, &format!("order=oldest&cursor={tail}"));
    assert_eq!(
        request_ids(follow["events"].as_array().unwrap()),
        ["second"]
    );
    // Enough calls for the first file to be rotated away and then deleted (keep 1).
    let live = audit_path(&rt);
    let mut n = 0;
    wait_for(
        "the first file deleted by retention",
        Duration::from_secs(60),
        || {
            for _ in 0..20 {
                n += 1;
                call(&format!("fill-{n}"));
            }
            let resp = get(&rt, &format!("order=oldest&cursor={at_first}"));
            (resp.status() == 410).then_some(resp)
        },
    )
    .map(|resp| expect_error(resp, 410, "cursor_expired", "retention"))
    .unwrap();
    assert!(rotated_count(&live) <= 1);
}
