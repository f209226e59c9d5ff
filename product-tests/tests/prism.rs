use base64::Engine;
use open_cli_product_tests::{Fixture, Prism, Runtime, demo_config, execute, repo_root};
use serde_json::{Value, json};

/// The server the demo document names; the runtime's copy points at Prism instead.
const DEMO_SERVER: &str = "http://127.0.0.1:8780";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The shipped demo document, served by Prism (an upstream generated from the document, not
/// written by us): the runtime's requests must satisfy the document's own validation.
#[test]
fn prism_mock_of_the_demo_document_accepts_what_the_runtime_sends() {
    let spec = std::fs::read_to_string(repo_root().join("config/examples/demo-api.openapi.yaml"))
        .expect("demo document");
    assert!(
        spec.contains(DEMO_SERVER),
        "the demo document names {DEMO_SERVER}"
    );
    let fx = Fixture::new();
    let prism = Prism::start(&fx.write("prism.openapi.yaml", &spec));
    fx.write("demo.openapi.yaml", &spec.replace(DEMO_SERVER, &prism.url));
    let cfg = fx.write_json(
        ".cli.json",
        &demo_config(json!({"secrets": {"demo.apiKeyHeader": {"type": "literal", "value": "k"}}})),
    );
    let rt = Runtime::start(&cfg);

    // Prism answers with an example generated from the response schema.
    let (s, v) = execute(&rt, json!({"toolId": "demo:listItems"}));
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");
    assert!(v["body"].is_array(), "{v}");
    assert!(
        v["contentType"]
            .as_str()
            .unwrap()
            .starts_with("application/json"),
        "{v}"
    );

    // Prism answers 401 when the required X-API-Key is absent: the runtime injected it.
    let (s, v) = execute(&rt, json!({"toolId": "demo:authApiKeyHeader"}));
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(200)), "{v}");

    // No bearer secret: the runtime refuses before any request leaves.
    let (s, v) = execute(&rt, json!({"toolId": "demo:authBearer"}));
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (502, Some("credentials_unavailable")),
        "{v}"
    );

    // Prism validates the body against the document; its 422 is relayed in the envelope.
    let (s, v) = execute(&rt, json!({"toolId": "demo:createItem", "body": b64("{}")}));
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(422)), "{v}");
    let (s, v) = execute(
        &rt,
        json!({"toolId": "demo:createItem", "body": b64(r#"{"name":"x"}"#)}),
    );
    assert_eq!((s, v["statusCode"].as_u64()), (200, Some(201)), "{v}");
    assert!(v["body"].is_object(), "{v}");

    // The pass-through reaches the same upstream.
    let resp = rt.get("/proxy/demo/items");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().expect("json");
    assert!(body.is_array(), "{body}");
}
