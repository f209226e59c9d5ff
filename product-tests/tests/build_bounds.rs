//! Issue 15 item 2: catalog builds are bounded and never take the runtime down.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use open_cli_product_tests::{Fixture, Runtime, TestApi, bin, isolate, text, wait_for};
use serde_json::{Value, json};

/// A 4.7 KB description whose schemas form a `$ref` DAG: `S{i}.properties.p0..p3 → S{i+1}`,
/// 20 levels. Inlined, the request body schema would be 4^20 copies of `S20`.
fn dag_document(depth: usize) -> Value {
    let mut schemas = serde_json::Map::new();
    for i in 0..depth {
        let next = json!({"$ref": format!("#/components/schemas/S{}", i + 1)});
        schemas.insert(
            format!("S{i}"),
            json!({"type": "object", "properties": {"p0": next, "p1": next, "p2": next, "p3": next}}),
        );
    }
    schemas.insert(format!("S{depth}"), json!({"type": "string"}));
    json!({
        "openapi": "3.1.0",
        "info": {"title": "DAG", "version": "1"},
        "servers": [{"url": "http://127.0.0.1:9/"}],
        "paths": {"/dag": {"post": {
            "operationId": "postDag",
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/S0"}}}},
            "responses": {"200": {"description": "ok"}}
        }}},
        "components": {"schemas": schemas}
    })
}

fn config_for(fx: &Fixture, uri: &str, runtime: Value) -> std::path::PathBuf {
    let mut config = json!({
        "cli": "1.0.0",
        "mode": {"default": "discover"},
        "sources": {"dag": {"type": "openapi", "uri": uri}},
        "services": {"dag": {"source": "dag"}}
    });
    if !runtime.is_null() {
        config["runtime"] = runtime;
    }
    fx.write_json(".cli.json", &config)
}

/// `POST /v1/refresh` on its own thread (it blocks until the rebuild ends): its status and
/// JSON body.
fn refresh_in_background(rt: &Runtime) -> std::thread::JoinHandle<(u16, Value)> {
    let url = rt.url.clone();
    std::thread::spawn(move || {
        let resp = open_cli_product_tests::http()
            .post(format!("{url}/v1/refresh"))
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    })
}

/// `open-cli-toolbox validate`, killed if it does not finish within `deadline` (a build that
/// expands exponentially or parses in quadratic time fails the test here).
fn validate_within(config: &std::path::Path, deadline: Duration) -> Output {
    let mut cmd = Command::new(bin("open-cli-toolbox"));
    isolate(&mut cmd);
    let mut child = cmd
        .args(["validate", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn validate");
    let pid = child.id();
    let status = wait_for("validate to finish", deadline, || {
        child.try_wait().ok().flatten()
    });
    if status.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("validate (pid {pid}) did not finish within {deadline:?}");
    }
    child.wait_with_output().expect("validate output")
}

#[test]
fn a_reference_dag_builds_quickly_with_shared_subschemas() {
    let fx = Fixture::new();
    let doc = serde_json::to_string(&dag_document(20)).unwrap();
    assert!(doc.len() < 5_000, "{}", doc.len());
    fx.write("dag.openapi.json", &doc);
    let config = config_for(&fx, "dag.openapi.json", Value::Null);
    let out = validate_within(&config, Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok: 1 source(s), 1 service(s), 1 tool(s)"));

    let rt = Runtime::start(&config);
    let cat = rt.catalog();
    let schema = &cat["catalog"]["tools"][0]["requestBody"]["contentTypes"][0]["schema"];
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["p0"], json!({"$ref": "#/$defs/S1"}));
    assert_eq!(
        schema["$defs"]["S19"]["properties"]["p3"],
        json!({"$ref": "#/$defs/S20"})
    );
    assert_eq!(schema["$defs"]["S20"], json!({"type": "string"}));
    assert!(schema.to_string().len() < 20_000);
}

#[test]
fn a_live_source_changed_to_a_reference_dag_refreshes_and_keeps_serving() {
    let docs = Fixture::new();
    docs.write(
        "dag.json",
        &serde_json::to_string(&dag_document(2)).unwrap(),
    );
    let api = TestApi::start_with_docs(docs.path());
    let fx = Fixture::new();
    let config = config_for(&fx, &format!("{}/docs/dag.json", api.url), Value::Null);
    let rt = Runtime::start(&config);
    let before = rt.catalog();
    let small = &before["catalog"]["tools"][0]["requestBody"]["contentTypes"][0]["schema"];
    // Small schemas stay inlined.
    assert_eq!(
        small["properties"]["p1"]["properties"]["p2"]["type"],
        "string"
    );
    assert!(small.get("$defs").is_none());

    docs.write(
        "dag.json",
        &serde_json::to_string(&dag_document(20)).unwrap(),
    );
    let resp = rt.post("/v1/refresh", "");
    let status = resp.status();
    let body: Value = resp.json().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(rt.get("/readyz").status(), 200);
    let after = rt.catalog();
    let schema = &after["catalog"]["tools"][0]["requestBody"]["contentTypes"][0]["schema"];
    assert_eq!(
        schema["$defs"]["S1"]["properties"]["p2"]["$ref"],
        "#/$defs/S2"
    );
    assert!(rt.proc.pid() > 0);
}

#[test]
fn deep_yaml_nesting_is_refused_naming_the_bound() {
    let fx = Fixture::new();
    // 100,000 nested flow mappings: the YAML scanner's time is quadratic in this depth.
    let levels = 100_000;
    let doc = format!(
        "openapi: 3.1.0\ninfo: {{title: deep, version: '1'}}\npaths: {{}}\nx-deep: {}1{}\n",
        "{a: ".repeat(levels),
        "}".repeat(levels)
    );
    let brackets = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    // YAML; JSON, refused by the parser's own limit, in linear time, with the same message;
    // nested flow sequences in a document whose type is only known from its content.
    for (name, body) in [
        ("deep.openapi.yaml", doc.as_str()),
        ("deep.openapi.json", brackets.as_str()),
        ("deep-seq", brackets.as_str()),
    ] {
        fx.write(name, body);
        let config = config_for(&fx, name, Value::Null);
        let out = validate_within(&config, Duration::from_secs(20));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.contains(name) && err.contains("nest deeper than 128 levels"),
            "{name}: {err}"
        );
    }
}

#[test]
fn an_oversized_config_is_refused_with_a_message() {
    let fx = Fixture::new();
    // Valid JSON of 5 MiB: refused for its size before it is parsed.
    let pad = "x".repeat(5 * 1024 * 1024);
    let config = fx.write(
        ".cli.json",
        &format!(
            r#"{{"cli": "1.0.0", "mode": {{"default": "discover"}}, "sources": {{}}, "x-pad": "{pad}"}}"#
        ),
    );
    let out = validate_within(&config, Duration::from_secs(20));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(".cli.json") && err.contains("larger than 4194304 bytes"),
        "{err}"
    );
    let started = Runtime::try_start(&config, &[]);
    let e = started.expect_err("the runtime must refuse the config");
    assert!(e.contains("exited early"), "{e}");
}

/// A config path naming a FIFO (nobody writes to it) or a device is refused at once, not read
/// (a blocking open, or an endless read).
#[test]
fn a_config_that_is_not_a_regular_file_is_refused_promptly() {
    let fx = Fixture::new();
    let fifo = fx.path().join("fifo.cli.json");
    open_cli_product_tests::mkfifo(&fifo);
    for (config, what) in [
        (fifo.as_path(), "it is a FIFO"),
        (std::path::Path::new("/dev/zero"), "it is a device"),
    ] {
        let out = validate_within(config, Duration::from_secs(20));
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(what), "{config:?}: {err}");
    }
}

/// A document server on loopback that answers with `doc` until `hang` is set, then accepts
/// connections and never answers them.
struct SlowServer {
    url: String,
    hang: Arc<AtomicBool>,
    held: Arc<AtomicUsize>,
}

impl SlowServer {
    fn start(doc: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/openapi.json", listener.local_addr().unwrap());
        let hang = Arc::new(AtomicBool::new(false));
        let held = Arc::new(AtomicUsize::new(0));
        let (h, n) = (Arc::clone(&hang), Arc::clone(&held));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                if h.load(Ordering::SeqCst) {
                    open.lock().unwrap().push(conn);
                    n.fetch_add(1, Ordering::SeqCst);
                    continue;
                }
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                    doc.len()
                );
            }
        });
        Self { url, hang, held }
    }
}

#[test]
fn a_refresh_blocked_on_a_slow_source_does_not_freeze_serving_and_fails_at_its_deadline() {
    let server = SlowServer::start(serde_json::to_string(&dag_document(1)).unwrap());
    let fx = Fixture::new();
    let config = config_for(
        &fx,
        &server.url,
        json!({"server": {"refresh": {"timeoutSeconds": 2}}}),
    );
    // Two serving threads (the harness starts every runtime with `--threads 2`).
    let rt = Runtime::start(&config);
    let before = rt.catalog();
    server.hang.store(true, Ordering::SeqCst);

    let refresh = refresh_in_background(&rt);
    wait_for(
        "the refresh to reach the slow source",
        Duration::from_secs(10),
        || (server.held.load(Ordering::SeqCst) > 0).then_some(()),
    )
    .unwrap();
    // While the rebuild waits on the source, every serving thread answers: fresh connections
    // (spread over the threads' listening sockets by the kernel), each with a short timeout.
    for i in 0..24 {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(1500))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let path = if i % 2 == 0 {
            "/healthz"
        } else {
            "/v1/catalog/effective"
        };
        let resp = client
            .get(format!("{}{path}", rt.url))
            .send()
            .unwrap_or_else(|e| panic!("{path} (connection {i}) while a refresh is pending: {e}"));
        assert_eq!(resp.status(), 200, "{path}");
    }

    let (status, body) = refresh.join().unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "refresh_failed");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("did not finish within 2 seconds") && msg.contains("timeoutSeconds"),
        "{msg}"
    );
    assert_eq!(rt.catalog(), before);
    assert_eq!(rt.get("/readyz").status(), 200);
    let info: Value = rt.get("/v1/runtime/info").json().unwrap();
    assert_eq!(info["lastRefresh"]["ok"], false);
}

#[test]
fn a_refresh_that_blocks_reading_a_fifo_does_not_freeze_serving() {
    let fx = Fixture::new();
    fx.write(
        "api.json",
        &serde_json::to_string(&dag_document(1)).unwrap(),
    );
    let config = config_for(
        &fx,
        "api.json",
        json!({"server": {"refresh": {"timeoutSeconds": 2}}}),
    );
    let rt = Runtime::start(&config);
    let before = rt.catalog();
    // The source becomes a FIFO nobody writes to: reading it blocks in the kernel (unless
    // the runtime refuses to read anything but regular files, which is as good here).
    let path = fx.path().join("api.json");
    std::fs::remove_file(&path).unwrap();
    open_cli_product_tests::mkfifo(&path);

    let refresh = refresh_in_background(&rt);
    // Fresh connections reach both serving threads; none may hang behind the rebuild.
    for i in 0..24 {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_millis(1500))
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let resp = client
            .get(format!("{}/healthz", rt.url))
            .send()
            .unwrap_or_else(|e| panic!("/healthz (connection {i}) during the refresh: {e}"));
        assert_eq!(resp.status(), 200);
    }
    let (status, body) = refresh.join().unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "refresh_failed");
    assert_eq!(rt.catalog(), before);
    // A second refresh is not run beside a build still blocked: it fails at its deadline
    // (502 `refresh_failed`), or is refused at once while a rebuild runs (409
    // `refresh_in_progress`, for unauthenticated refreshes).
    let resp = rt.post("/v1/refresh", "");
    let status = resp.status().as_u16();
    let body: Value = resp.json().unwrap();
    assert!(
        (status == 502 && body["error"]["code"] == "refresh_failed")
            || (status == 409 && body["error"]["code"] == "refresh_in_progress"),
        "{status} {body}"
    );
    assert_eq!(rt.catalog(), before);
    assert_eq!(rt.get("/readyz").status(), 200);
}

#[test]
fn validate_and_start_up_builds_stop_at_the_deadline() {
    let server = SlowServer::start(String::new());
    server.hang.store(true, Ordering::SeqCst);
    let fx = Fixture::new();
    let config = config_for(
        &fx,
        &server.url,
        json!({"server": {"refresh": {"timeoutSeconds": 2}}}),
    );
    let out = validate_within(&config, Duration::from_secs(20));
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not finish within 2 seconds"), "{err}");
    let e = Runtime::try_start(&config, &[]).expect_err("start-up must fail at the deadline");
    assert!(e.contains("did not finish within 2 seconds"), "{e}");
}
