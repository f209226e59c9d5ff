use std::collections::BTreeSet;

use open_cli_product_tests::{TestApi, assert_valid_effective, http, start_demo_runtime};
use serde_json::Value;

/// Operations of an OpenAPI document, read independently of the runtime's code:
/// `(operationId, METHOD, path)` for GET/POST/PUT/PATCH/DELETE.
fn operations(spec: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(op) = item.get(method) {
                out.insert((
                    op["operationId"].as_str().unwrap().to_string(),
                    method.to_uppercase(),
                    path.clone(),
                ));
            }
        }
    }
    out
}

#[test]
fn catalog_over_http_matches_the_demo_apis_operations() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let spec = api.spec_json();
    let resp = rt.get("/v1/catalog/effective");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body: Value = resp.json().unwrap();
    assert_valid_effective(&body);

    let want = operations(&spec);
    let got: BTreeSet<(String, String, String)> = body["catalog"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let id = t["id"].as_str().unwrap();
            assert_eq!(t["serviceId"], "demo");
            assert_eq!(
                t["servers"],
                serde_json::json!([api.url]),
                "tool {id} servers"
            );
            (
                id.strip_prefix("demo:").unwrap().to_string(),
                t["method"].as_str().unwrap().to_string(),
                t["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, want);
    assert!(want.len() >= 14, "the demo API has at least 14 operations");
    // The default view is `discover`, holding every tool.
    assert_eq!(body["view"]["name"], "discover");
    assert_eq!(body["view"]["tools"].as_array().unwrap().len(), want.len());

    let tools = body["catalog"]["tools"].as_array().unwrap();
    let tool = |id: &str| tools.iter().find(|t| t["id"] == id).unwrap().clone();
    // Path parameter from a path-level $ref, query and header flags, request bodies.
    let get_item = tool("demo:getItem");
    assert_eq!(get_item["group"], "items");
    assert_eq!(get_item["command"], "get-item");
    assert_eq!(get_item["pathParams"][0]["name"], "item-id");
    assert_eq!(get_item["pathParams"][0]["originalName"], "itemId");
    assert_eq!(get_item["pathParams"][0]["schema"]["type"], "integer");
    let list = tool("demo:listItems");
    let flags: Vec<(&str, &str, &str)> = list["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap(),
                f["originalName"].as_str().unwrap(),
                f["location"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        flags,
        vec![
            ("limit", "limit", "query"),
            ("tag", "tag", "query"),
            ("x-trace-id", "X-Trace-Id", "header")
        ]
    );
    let create = tool("demo:createItem");
    assert_eq!(create["requestBody"]["required"], true);
    let body_schema = &create["requestBody"]["contentTypes"][0];
    assert_eq!(body_schema["mediaType"], "application/json");
    assert_eq!(
        body_schema["schema"]["required"],
        serde_json::json!(["name"]),
        "$ref inlined"
    );
    // Safety defaults by method.
    assert_eq!(
        tool("demo:deleteItem")["safety"],
        serde_json::json!({"destructive": true, "readOnly": false, "requiresApproval": false, "idempotent": true})
    );
    assert_eq!(create["safety"]["idempotent"], false);
    // One auth requirement per scheme kind.
    for (id, kind, extra) in [
        ("demo:authApiKeyHeader", "apiKey", ("in", "header")),
        ("demo:authApiKeyQuery", "apiKey", ("in", "query")),
        ("demo:authApiKeyCookie", "apiKey", ("in", "cookie")),
        ("demo:authBasic", "http", ("scheme", "basic")),
        ("demo:authBearer", "http", ("scheme", "bearer")),
    ] {
        let req = &tool(id)["authAlternatives"][0]["requirements"][0];
        assert_eq!(req["type"], kind, "{id}");
        assert_eq!(req[extra.0], extra.1, "{id}");
    }
    let oauth = &tool("demo:authOAuth2")["authAlternatives"][0]["requirements"][0];
    assert_eq!(oauth["oauthFlows"][0]["mode"], "clientCredentials");
    assert_eq!(oauth["scopes"], serde_json::json!(["items:read"]));
    assert!(
        tool("demo:listItems").get("authAlternatives").is_none(),
        "no security → no auth"
    );
}

#[test]
fn views_are_selected_by_profile_and_mode() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let ids = |q: &str| -> (String, Vec<String>) {
        let v = rt.effective(q);
        let ids = v["view"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect();
        (v["view"]["name"].as_str().unwrap().to_string(), ids)
    };
    let reader = [
        "demo:getItem",
        "demo:getStatus",
        "demo:getText",
        "demo:listItems",
    ];
    assert_eq!(
        ids("?agentProfile=reader"),
        (
            "reader".to_string(),
            reader.iter().map(|s| s.to_string()).collect()
        )
    );
    // mode=curated falls to agents.defaultProfile.
    assert_eq!(ids("?mode=curated").0, "reader");
    assert_eq!(ids("?mode=discover").0, "discover");

    let resp = rt.get("/v1/catalog/effective?agentProfile=ghost");
    assert_eq!(resp.status(), 404);
    let e: Value = resp.json().unwrap();
    assert_eq!(e["error"]["code"], "unknown_agent_profile");
    assert!(e["error"]["message"].as_str().unwrap().contains("reader"));
    let resp = rt.get("/v1/catalog/effective?mode=everything");
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().unwrap()["error"]["code"],
        "invalid_request"
    );
}

#[test]
fn a_foreign_config_path_gets_409_and_the_bound_one_is_accepted() {
    let api = TestApi::start();
    let (fx, rt) = start_demo_runtime(&api);
    let resp = rt.get("/v1/catalog/effective?config=/etc/open-cli/other.cli.json");
    assert_eq!(resp.status(), 409);
    let e: Value = resp.json().unwrap();
    assert_eq!(e["error"]["code"], "runtime_attach_mismatch");
    assert!(
        e["error"]["requestId"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );

    let bound = fx.path().join(".cli.json");
    let same = format!("{}/./sub/../.cli.json", fx.path().display());
    for p in [bound.display().to_string(), same] {
        let url = format!("{}/v1/catalog/effective", rt.url);
        let resp = http()
            .get(url)
            .query(&[("config", p.as_str())])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "config={p}");
    }
}

#[test]
fn request_ids_are_echoed_and_every_error_is_json() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let client = http();
    let resp = client
        .get(format!("{}/v1/runtime/info", rt.url))
        .header("x-request-id", "trace-42")
        .send()
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
    // An unsafe incoming ID is replaced, not echoed.
    let resp = client
        .get(format!("{}/healthz", rt.url))
        .header("x-request-id", "a b\"c")
        .send()
        .unwrap();
    let generated = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 32);

    let resp = client
        .get(format!("{}/v1/nope", rt.url))
        .header("x-request-id", "r-404")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 404);
    let e: Value = resp.json().unwrap();
    assert_eq!(
        e,
        serde_json::json!({"error": {"code": "not_found", "message": "no route for `/v1/nope`", "requestId": "r-404"}})
    );

    let resp = client
        .delete(format!("{}/v1/catalog/effective", rt.url))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    assert_eq!(
        resp.json::<Value>().unwrap()["error"]["code"],
        "method_not_allowed"
    );

    let resp = client
        .post(format!("{}/v1/tools/execute", rt.url))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().unwrap()["error"]["code"],
        "invalid_request"
    );
}

#[test]
fn runtime_info_describes_the_instance_and_its_catalog() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let v: Value = rt.get("/v1/runtime/info").json().unwrap();
    assert_eq!(v["contractVersion"], "1.1");
    assert_eq!(v["runtimeMode"], "remote");
    assert_eq!(v["instanceId"], "test");
    assert_eq!(v["url"], rt.url);
    assert_eq!(
        v["capabilities"],
        serde_json::json!([
            "catalog",
            "refresh",
            "authorization-envelope",
            "execute",
            "pass-through",
            "audit"
        ])
    );
    assert_eq!(v["auth"]["required"], false);
    assert_eq!(
        v["auth"]["scopePrefixes"],
        serde_json::json!(["bundle:", "profile:", "tool:"])
    );
    assert_eq!(
        v["auth"]["browserLogin"]["configEndpoint"],
        "/v1/auth/browser-config"
    );
    assert_eq!(v["catalog"]["tools"], 17);
    assert_eq!(
        v["catalog"]["views"],
        serde_json::json!(["discover", "reader"])
    );
    let state = rt.state_dir.join("instances/test");
    assert_eq!(v["stateDir"], state.display().to_string());
    assert_eq!(
        v["auditPath"],
        state.join("audit.log").display().to_string()
    );
    assert_eq!(
        rt.get("/healthz").json::<Value>().unwrap(),
        serde_json::json!({"status": "ok"})
    );
    assert_eq!(
        rt.get("/readyz").json::<Value>().unwrap(),
        serde_json::json!({"status": "ready"})
    );
}

#[test]
fn the_catalog_is_built_once_not_per_request() {
    let api = TestApi::start();
    let (fx, rt) = start_demo_runtime(&api);
    let first = rt.catalog();
    // Deleting the document does not affect a running runtime: nothing is re-read per request.
    std::fs::remove_file(fx.path().join("demo.openapi.yaml")).unwrap();
    let second = rt.catalog();
    assert_eq!(first, second);
    assert_eq!(
        first["catalog"]["generatedAt"],
        second["catalog"]["generatedAt"]
    );
}

#[test]
fn the_catalog_is_gzip_compressed_when_the_client_accepts_it() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let client = http();
    let url = format!("{}/v1/catalog/effective", rt.url);
    let plain = client.get(&url).send().unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    assert_eq!(plain.headers()["vary"], "accept-encoding, authorization");
    let plain = plain.bytes().unwrap();
    for accept in ["gzip", "br, gzip;q=0.8", "*"] {
        let resp = client
            .get(&url)
            .header("accept-encoding", accept)
            .send()
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], "gzip", "{accept}");
        let zipped = resp.bytes().unwrap();
        assert!(
            zipped.len() * 3 < plain.len(),
            "compressed: {} vs {}",
            zipped.len(),
            plain.len()
        );
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&zipped[..]),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped, plain.to_vec());
    }
    let refused = client
        .get(&url)
        .header("accept-encoding", "gzip;q=0")
        .send()
        .unwrap();
    assert!(refused.headers().get("content-encoding").is_none());
}

#[test]
fn the_ntc_schema_check_rejects_malformed_catalogs() {
    let api = TestApi::start();
    let (_fx, rt) = start_demo_runtime(&api);
    let good = rt.catalog()["catalog"].clone();
    type Breakage = (&'static str, fn(&mut Value));
    let breakages: [Breakage; 4] = [
        ("tool without safety", |c| {
            c["tools"][0].as_object_mut().unwrap().remove("safety");
        }),
        ("lower-case method", |c| {
            c["tools"][0]["method"] = "get".into()
        }),
        ("unknown top-level key", |c| c["extra"] = true.into()),
        (
            "bad cache outcome",
            |c| c["sources"][0]["provenance"]["fetches"] = serde_json::json!([{"url": "u", "fetchedAt": "2026-01-01T00:00:00Z", "method": "explicit", "cacheOutcome": "hit"}]),
        ),
    ];
    for (what, breakage) in breakages {
        let mut bad = good.clone();
        breakage(&mut bad);
        let result = std::panic::catch_unwind(|| open_cli_product_tests::assert_valid_ntc(&bad));
        assert!(
            result.is_err(),
            "the schema check accepted a catalog with a {what}"
        );
    }
}

#[test]
fn tool_ids_without_an_operation_id_are_marked_unstable() {
    let fx = open_cli_product_tests::Fixture::new();
    fx.write(
        "api.yaml",
        "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /things/{thingId}:\n    get:\n      parameters: [{name: thingId, in: path, required: true}]\n      responses: {'200': {description: ok}}\n    put: {operationId: putThing, parameters: [{name: thingId, in: path, required: true}], responses: {'200': {description: ok}}}\n",
    );
    let cfg = fx.write_json(
        ".cli.json",
        &serde_json::json!({"cli": "1", "mode": {"default": "discover"}, "sources": {"s": {"type": "openapi", "uri": "api.yaml"}}}),
    );
    let rt = open_cli_product_tests::Runtime::start(&cfg);
    let tools = rt.catalog()["catalog"]["tools"].clone();
    assert_eq!(tools[0]["id"], "things:get:/things/{thingId}");
    assert_eq!(tools[0]["unstableId"], true);
    assert_eq!(tools[0]["command"], "get-things-thing-id");
    assert_eq!(tools[1]["id"], "things:putThing");
    assert!(tools[1].get("unstableId").is_none());
}

#[test]
fn operation_extensions_servers_and_local_external_refs() {
    let fx = open_cli_product_tests::Fixture::new();
    fx.write("schemas/common.yaml", "Page: {type: object, properties: {next: {type: string}}}\nLimit: {name: limit, in: query, x-cli-name: max, schema: {type: integer}}\n");
    fx.write(
        "api.yaml",
        r#"openapi: 3.0.3
info: {title: Ext, version: '1'}
servers: [{url: 'https://{region}.api.test/v1', variables: {region: {default: eu}}}]
paths:
  /reports:
    servers: [{url: 'https://reports.api.test'}]
    get:
      operationId: listReports
      x-cli-group: analytics
      x-cli-aliases: [ls]
      x-cli-description: Lists reports (overridden).
      description: original
      x-cli-output: {defaultFields: [id, name], redactions: [secret]}
      x-cli-pagination: {style: cursor, cursorParam: next}
      x-cli-retry: {recommended: true, locationHeader: Location}
      parameters: [{$ref: 'schemas/common.yaml#/Limit'}]
      responses: {'200': {description: ok, content: {application/json: {schema: {$ref: 'schemas/common.yaml#/Page'}}}}}
    post:
      operationId: createReport
      servers: [{url: 'https://write.api.test'}]
      x-cli-hidden: true
      responses: {'201': {description: ok}}
  /internal:
    get: {operationId: internal, x-cli-ignore: true, responses: {'200': {description: ok}}}
  /plain:
    get: {operationId: plain, responses: {'200': {description: ok}}}
"#,
    );
    let cfg = fx.write_json(
        ".cli.json",
        &serde_json::json!({"cli": "1", "mode": {"default": "discover"}, "sources": {"ext": {"type": "openapi", "uri": "api.yaml"}}, "services": {"ext": {"source": "ext"}}}),
    );
    let rt = open_cli_product_tests::Runtime::start(&cfg);
    let cat = rt.catalog();
    let tools = cat["catalog"]["tools"].as_array().unwrap();
    let ids: Vec<&str> = tools.iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["ext:createReport", "ext:listReports", "ext:plain"],
        "x-cli-ignore drops `internal`"
    );
    let list = &tools[1];
    assert_eq!(list["group"], "analytics");
    assert_eq!(list["aliases"], serde_json::json!(["ls"]));
    assert_eq!(list["description"], "Lists reports (overridden).");
    assert_eq!(
        list["output"]["defaultFields"],
        serde_json::json!(["id", "name"])
    );
    assert_eq!(list["pagination"]["cursorParam"], "next");
    assert_eq!(list["retry"]["locationHeader"], "Location");
    assert_eq!(
        list["flags"][0]["name"], "max",
        "parameter x-cli-name via an external local $ref"
    );
    assert_eq!(list["flags"][0]["originalName"], "limit");
    assert_eq!(
        list["servers"],
        serde_json::json!(["https://reports.api.test"]),
        "path-level servers"
    );
    assert_eq!(
        tools[0]["servers"],
        serde_json::json!(["https://write.api.test"]),
        "operation-level servers"
    );
    assert_eq!(tools[0]["hidden"], true);
    assert_eq!(
        tools[2]["servers"],
        serde_json::json!(["https://eu.api.test/v1"]),
        "document servers with variables"
    );
    assert_eq!(tools[2]["group"], "plain");
}
