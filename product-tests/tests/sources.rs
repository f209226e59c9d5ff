use open_cli_product_tests::{Fixture, Runtime, TestApi};
use serde_json::{Value, json};

const ROOT: &str = r#"openapi: 3.0.3
info: {title: Remote Tickets, version: '1'}
servers: [{url: /v1}]
paths:
  /tickets:
    get:
      operationId: listTickets
      tags: [tickets]
      parameters:
        - $ref: 'params.yaml#/Limit'
      responses: {'200': {description: ok}}
    post:
      operationId: createTicket
      tags: [tickets]
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: 'schemas/ticket.yaml#/Ticket'}
      responses: {'201': {description: created}}
"#;
const PARAMS: &str =
    "Limit: {name: limit, in: query, schema: {$ref: 'schemas/ticket.yaml#/Count'}}\n";
const TICKET: &str = r#"Ticket:
  type: object
  required: [title]
  properties:
    title: {type: string}
    parent: {$ref: '#/Ticket'}
Count: {type: integer, minimum: 1}
"#;

/// A document server with the tickets description split over three files.
fn docs() -> (Fixture, TestApi) {
    let docs = Fixture::new();
    docs.write("api/openapi.yaml", ROOT);
    docs.write("api/params.yaml", PARAMS);
    docs.write("api/schemas/ticket.yaml", TICKET);
    let api = TestApi::start_with_docs(docs.path());
    (docs, api)
}

fn config(fx: &Fixture, api: &TestApi, refresh: Value) -> std::path::PathBuf {
    let mut source =
        json!({"type": "openapi", "uri": format!("{}/docs/api/openapi.yaml", api.url)});
    if !refresh.is_null() {
        source["refresh"] = refresh;
    }
    fx.write_json(
        ".cli.json",
        &json!({"cli": "1.0.0", "mode": {"default": "discover"}, "sources": {"tickets": source},
                "services": {"tickets": {"source": "tickets"}}}),
    )
}

fn source_outcomes(catalog: &Value) -> Vec<(String, String)> {
    catalog["catalog"]["sources"][0]["provenance"]["fetches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["url"]
                    .as_str()
                    .unwrap()
                    .rsplit("/docs/")
                    .next()
                    .unwrap()
                    .to_string(),
                f["cacheOutcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn a_remote_description_with_external_refs_becomes_tools() {
    let (_docs, api) = docs();
    let fx = Fixture::new();
    let rt = Runtime::start(&config(&fx, &api, Value::Null));
    let cat = rt.catalog();
    let tools = cat["catalog"]["tools"].as_array().unwrap();
    let ids: Vec<&str> = tools.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tickets:createTicket", "tickets:listTickets"]);
    // Relative server URL resolved against the document's URL.
    assert_eq!(tools[0]["servers"], json!([format!("{}/v1", api.url)]));
    // A parameter from params.yaml whose schema lives in schemas/ticket.yaml.
    assert_eq!(tools[1]["flags"][0]["name"], "limit");
    assert_eq!(
        tools[1]["flags"][0]["schema"],
        json!({"type": "integer", "minimum": 1})
    );
    // The body schema from another file, with its recursive reference kept as a reference.
    let schema = &tools[0]["requestBody"]["contentTypes"][0]["schema"];
    assert_eq!(schema["required"], json!(["title"]));
    assert_eq!(schema["properties"]["parent"], json!({"$ref": "#/Ticket"}));
    // Provenance: every document, fetched once, first time a miss, with its validators.
    let fetches = cat["catalog"]["sources"][0]["provenance"]["fetches"]
        .as_array()
        .unwrap();
    let mut outcomes = source_outcomes(&cat);
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("api/openapi.yaml".to_string(), "miss".to_string()),
            ("api/params.yaml".to_string(), "miss".to_string()),
            ("api/schemas/ticket.yaml".to_string(), "miss".to_string()),
        ]
    );
    for f in fetches {
        assert_eq!(f["statusCode"], 200);
        assert_eq!(f["requestMethod"], "GET");
        assert_eq!(f["method"], "explicit");
        assert!(
            f["etag"].as_str().is_some_and(|e| e.starts_with('"')),
            "{f}"
        );
        assert!(f["lastModified"].is_string(), "{f}");
    }
    assert_eq!(cat["catalog"]["services"][0]["title"], "Remote Tickets");
}

#[test]
fn refresh_revalidates_then_picks_up_changes_and_swaps_the_catalog() {
    let (docs, api) = docs();
    let fx = Fixture::new();
    let rt = Runtime::start(&config(&fx, &api, Value::Null));
    let before = rt.catalog();

    // Unchanged documents: conditional requests, 304s, same tools.
    let resp = rt.post("/v1/refresh", "");
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().unwrap();
    assert_eq!(report["sources"][0]["id"], "tickets");
    assert_eq!(report["sources"][0]["cacheOutcome"], "revalidated_hit");
    assert_eq!(report["sources"][0]["statusCode"], 200);
    let last = api.requests_for("/docs/api/openapi.yaml").pop().unwrap();
    assert!(
        last["headers"]["if-none-match"].is_string(),
        "conditional request: {last}"
    );
    let after = rt.catalog();
    assert_ne!(
        after["catalog"]["generatedAt"], before["catalog"]["generatedAt"],
        "a new snapshot was swapped in"
    );
    assert_eq!(after["catalog"]["tools"], before["catalog"]["tools"]);
    assert_eq!(
        after["catalog"]["sourceFingerprint"],
        before["catalog"]["sourceFingerprint"]
    );

    // A changed document: fetched again (`refreshed`), and the new operation is served.
    docs.write(
        "api/openapi.yaml",
        &ROOT.replace("paths:\n", "paths:\n  /health:\n    get: {operationId: health, responses: {'200': {description: ok}}}\n"),
    );
    let report: Value = rt.get("/v1/refresh").json().unwrap();
    assert_eq!(report["sources"][0]["cacheOutcome"], "refreshed");
    assert_eq!(report["catalog"]["tools"], 3);
    let ids: Vec<String> = rt.catalog()["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&"tickets:health".to_string()), "{ids:?}");
    let info: Value = rt.get("/v1/runtime/info").json().unwrap();
    assert_eq!(info["lastRefresh"]["ok"], true);
    assert_eq!(info["lastRefresh"]["trigger"], "api");
    assert!(
        info["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh"))
    );
}

#[test]
fn a_failed_refresh_keeps_serving_the_previous_catalog() {
    let (docs, api) = docs();
    let fx = Fixture::new();
    let rt = Runtime::start(&config(&fx, &api, Value::Null));
    let before = rt.catalog();
    docs.write("api/openapi.yaml", "openapi: 3.0.3\npaths: [not, a, map\n");
    let resp = rt.post("/v1/refresh", "");
    assert_eq!(resp.status(), 502);
    let e: Value = resp.json().unwrap();
    assert_eq!(e["error"]["code"], "refresh_failed");
    let msg = e["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("the previous catalog is still served") && msg.contains("invalid YAML"),
        "{msg}"
    );
    assert_eq!(rt.catalog(), before);
    let info: Value = rt.get("/v1/runtime/info").json().unwrap();
    assert_eq!(info["lastRefresh"]["ok"], false);
    assert!(
        info["lastRefresh"]["error"]
            .as_str()
            .unwrap()
            .contains("invalid YAML")
    );
}

#[test]
fn a_failing_server_serves_the_cached_copy_marked_stale() {
    let (docs, api) = docs();
    let fx = Fixture::new();
    let rt = Runtime::start(&config(&fx, &api, Value::Null));
    docs.write("api/openapi.yaml.meta.json", r#"{"status": 503}"#);
    let report: Value = rt.post("/v1/refresh", "").json().unwrap();
    assert_eq!(report["sources"][0]["cacheOutcome"], "stale_hit");
    assert_eq!(report["sources"][0]["stale"], true);
    let fetch = &rt.catalog()["catalog"]["sources"][0]["provenance"]["fetches"][0];
    assert_eq!(fetch["stale"], true);
    assert_eq!(
        rt.catalog()["catalog"]["tools"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn fresh_and_manual_only_copies_are_served_from_the_cache_across_restarts() {
    let (docs, api) = docs();
    let fx = Fixture::new();
    let state = Fixture::new();
    // Cache-Control max-age makes the root document fresh for an hour.
    docs.write(
        "api/openapi.yaml.meta.json",
        r#"{"headers": {"Cache-Control": "max-age=3600"}}"#,
    );
    let cfg = config(&fx, &api, Value::Null);
    let mut first = Runtime::start_in(&cfg, state.path());
    first.stop();
    let seen = api.requests_for("/docs/api/openapi.yaml").len();
    let second = Runtime::start_in(&cfg, state.path());
    let outcomes = source_outcomes(&second.catalog());
    assert!(
        outcomes.contains(&("api/openapi.yaml".into(), "fresh_hit".into())),
        "{outcomes:?}"
    );
    // No max-age on the others: revalidated with a conditional request.
    assert!(
        outcomes.contains(&("api/params.yaml".into(), "revalidated_hit".into())),
        "{outcomes:?}"
    );
    assert_eq!(
        api.requests_for("/docs/api/openapi.yaml").len(),
        seen,
        "fresh: no request made"
    );
    let mut second = second;
    second.stop();

    // manualOnly: the cached copy is used without asking the server, until a forced refresh.
    let cfg = config(&fx, &api, json!({"manualOnly": true}));
    let before = api.requests().len();
    let third = Runtime::start_in(&cfg, state.path());
    let outcomes = source_outcomes(&third.catalog());
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| o == "stale_hit" || o == "fresh_hit"),
        "{outcomes:?}"
    );
    assert_eq!(api.requests().len(), before, "manualOnly: no request made");
    let report: Value = third.post("/v1/refresh", "").json().unwrap();
    assert_eq!(
        report["sources"][0]["cacheOutcome"], "revalidated_hit",
        "forced refresh revalidates"
    );
}

#[test]
fn sighup_rereads_the_config_and_rebuilds() {
    let (_docs, api) = docs();
    let fx = Fixture::new();
    let cfg = config(&fx, &api, Value::Null);
    let rt = Runtime::start(&cfg);
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    v["curation"] = json!({"toolSets": {"ro": {"allow": ["tickets:list*"]}}});
    v["agents"] = json!({"profiles": {"viewer": {"mode": "curated", "toolSet": "ro"}}});
    fx.write_json(".cli.json", &v);
    let info = rt.sighup_and_wait();
    assert_eq!(info["lastRefresh"]["ok"], true, "{info}");
    assert_eq!(info["catalog"]["views"], json!(["discover", "viewer"]));
    let view: Value = rt
        .get("/v1/catalog/effective?agentProfile=viewer")
        .json()
        .unwrap();
    assert_eq!(view["view"]["tools"].as_array().unwrap().len(), 1);
}

#[test]
fn refresh_checks_the_config_binding_and_its_body() {
    let (_docs, api) = docs();
    let fx = Fixture::new();
    let rt = Runtime::start(&config(&fx, &api, Value::Null));
    let resp = rt.post("/v1/refresh", r#"{"configPath": "/elsewhere/.cli.json"}"#);
    assert_eq!(resp.status(), 409);
    let resp = rt.post("/v1/refresh", r#"{"configPth": "x"}"#);
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().unwrap()["error"]["code"],
        "invalid_request"
    );
    let bound = fx.path().join(".cli.json");
    let resp = rt.post("/v1/refresh", &json!({"configPath": bound}).to_string());
    assert_eq!(resp.status(), 200);
}

#[test]
fn refresh_max_age_seconds_makes_cached_documents_fresh() {
    let (_docs, api) = docs();
    let fx = Fixture::new();
    let state = Fixture::new();
    let cfg = config(&fx, &api, json!({"maxAgeSeconds": 3600}));
    let mut first = Runtime::start_in(&cfg, state.path());
    assert!(
        source_outcomes(&first.catalog())
            .iter()
            .all(|(_, o)| o == "miss")
    );
    first.stop();
    let before = api.requests().len();
    let second = Runtime::start_in(&cfg, state.path());
    let outcomes = source_outcomes(&second.catalog());
    assert!(
        outcomes.iter().all(|(_, o)| o == "fresh_hit"),
        "{outcomes:?}"
    );
    assert_eq!(
        api.requests().len(),
        before,
        "fresh documents are not requested"
    );
    let fetch = &second.catalog()["catalog"]["sources"][0]["provenance"]["fetches"][0];
    assert!(fetch["expiresAt"].is_string(), "{fetch}");
}
