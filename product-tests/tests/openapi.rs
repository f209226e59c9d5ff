//! `GET /v1/openapi.json` (issue 18, item 4): the runtime's own description, checked against
//! what every operation really answers: the status is one the description lists for it, and
//! the body validates against that response's schema (the NTC schema for catalogs included).

use open_cli_product_tests::*;
use serde_json::{Value, json};

struct Checked {
    doc: Value,
    rt: Runtime,
    answers: usize,
}

impl Checked {
    /// Call `method path` (with `token` and `body`), check the answer against the description,
    /// and return its status and body.
    fn call(
        &mut self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let path = path_and_query.split('?').next().unwrap();
        let op = self.doc["paths"][path][method.to_ascii_lowercase()].clone();
        assert!(op.is_object(), "{method} {path} is not described");
        let mut req = http().request(
            method.parse().unwrap(),
            format!("{}{path_and_query}", self.rt.url),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = resp.text().unwrap();
        let mut response = op["responses"][status.to_string()].clone();
        assert!(
            response.is_object(),
            "{method} {path_and_query} answered {status}, which its description does not list: {text}"
        );
        if let Some(r) = response["$ref"].as_str() {
            response = self.doc.pointer(&r[1..]).unwrap().clone();
        }
        let (media, content) = response["content"]
            .as_object()
            .and_then(|c| c.iter().next())
            .map(|(m, c)| (m.clone(), c.clone()))
            .expect("a described content");
        assert!(
            content_type.starts_with(&media),
            "{method} {path}: content-type `{content_type}`, described `{media}`"
        );
        let value = if media == "application/json" {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"))
        } else {
            Value::String(text)
        };
        let schema = json!({"allOf": [content["schema"]], "components": self.doc["components"]});
        let validator = jsonschema::options()
            .build(&schema)
            .unwrap_or_else(|e| panic!("{path} {status}: the schema does not compile: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .take(10)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path_and_query} {status} does not match its description:\n{}\n{value}",
            errors.join("\n")
        );
        self.answers += 1;
        (status, value)
    }
}

#[test]
fn the_description_matches_what_every_route_answers() {
    let api = TestApi::start();
    let issuer = KeyedIssuer::start();
    let (_fx, rt) = start_demo_runtime_with(
        &api,
        json!({"auth": issuer.auth(),
               "rateLimits": {"tools": {"demo:getText": {"requestsPerMinute": 1}}}}),
    );
    let doc: Value = rt.get("/v1/openapi.json").json().unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], rt.url.as_str());
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut c = Checked {
        doc,
        rt,
        answers: 0,
    };
    let all = issuer.token(
        "describer",
        "bundle:demo audit:read runtime:refresh metrics:read",
    );
    let narrow = issuer.token("describer", "tool:demo:listItems");
    let all = Some(all.as_str());

    assert_eq!(c.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(c.call("GET", "/readyz", None, None).0, 200);
    assert_eq!(c.call("GET", "/v1/runtime/info", None, None).0, 200);
    assert_eq!(c.call("GET", "/v1/runtime/info", all, None).0, 200);
    assert_eq!(c.call("GET", "/v1/runtime/info", Some("bad"), None).0, 401);
    assert_eq!(c.call("GET", "/v1/openapi.json", None, None).0, 200);
    assert_eq!(c.call("GET", "/v1/auth/browser-config", None, None).0, 404);

    assert_eq!(c.call("GET", "/v1/catalog/effective", all, None).0, 200);
    assert_eq!(
        c.call(
            "GET",
            "/v1/catalog/effective?mode=curated&agentProfile=reader",
            all,
            None
        )
        .0,
        200
    );
    assert_eq!(c.call("GET", "/v1/catalog/effective", None, None).0, 401);
    assert_eq!(
        c.call("GET", "/v1/catalog/effective?mode=sideways", all, None)
            .0,
        400
    );
    assert_eq!(
        c.call(
            "GET",
            "/v1/catalog/effective?agentProfile=nobody",
            all,
            None
        )
        .0,
        404
    );
    assert_eq!(
        c.call(
            "GET",
            "/v1/catalog/effective?config=/elsewhere/.cli.json",
            all,
            None
        )
        .0,
        409
    );

    let exec = |tool: &str| json!({"toolId": tool, "agentProfile": "reader"});
    assert_eq!(
        c.call(
            "POST",
            "/v1/tools/execute",
            all,
            Some(exec("demo:listItems"))
        )
        .0,
        200
    );
    assert_eq!(
        c.call("POST", "/v1/tools/execute", all, Some(exec("demo:getText")))
            .0,
        200
    );
    assert_eq!(
        c.call("POST", "/v1/tools/execute", all, Some(exec("demo:getText")))
            .0,
        429
    );
    assert_eq!(
        c.call("POST", "/v1/tools/execute", all, Some(exec("demo:nothing")))
            .0,
        404
    );
    assert_eq!(
        c.call("POST", "/v1/tools/execute", all, Some(json!({"tool": 1})))
            .0,
        400
    );
    assert_eq!(
        c.call(
            "POST",
            "/v1/tools/execute",
            Some(&narrow),
            Some(exec("demo:getText"))
        )
        .0,
        403
    );
    assert_eq!(
        c.call(
            "POST",
            "/v1/tools/execute",
            None,
            Some(exec("demo:listItems"))
        )
        .0,
        401
    );

    assert_eq!(
        c.call(
            "POST",
            "/v1/workflows/run",
            all,
            Some(json!({"workflowId": "none"}))
        )
        .0,
        404
    );
    assert_eq!(
        c.call(
            "POST",
            "/v1/workflows/run",
            all,
            Some(json!({"workflow": 1}))
        )
        .0,
        400
    );

    assert_eq!(c.call("GET", "/v1/refresh", all, None).0, 200);
    assert_eq!(c.call("POST", "/v1/refresh", all, Some(json!({}))).0, 200);
    assert_eq!(c.call("POST", "/v1/refresh", Some(&narrow), None).0, 403);

    // The audit log as the contract's array, and as pages.
    let (_, array) = c.call("GET", "/v1/audit/events?limit=5", all, None);
    assert!(!array.as_array().unwrap().is_empty());
    let (_, page) = c.call("GET", "/v1/audit/events?order=newest&limit=2", all, None);
    assert!(page["next"].is_string());
    assert_eq!(
        c.call("GET", "/v1/audit/events?cursor=nonsense", all, None)
            .0,
        400
    );
    assert_eq!(
        c.call(
            "GET",
            "/v1/audit/events?principal=other",
            Some(&narrow),
            None
        )
        .0,
        403
    );

    assert_eq!(c.call("GET", "/metrics", all, None).0, 200);
    assert_eq!(c.call("GET", "/metrics", Some(&narrow), None).0, 403);

    // Every described operation was called at least once.
    assert!(c.answers >= 30);
}
