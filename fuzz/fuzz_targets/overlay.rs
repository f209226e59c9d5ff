//! Overlay JSONPath targets (`catalog::overlay`): the input's first line is a JSONPath, the
//! rest a JSON document (a small built-in one when the rest is not JSON). The path is parsed
//! and applied through `overlay::apply` (its parser and selector are private) as an
//! `update` with an object, an `update` with a scalar, a `remove`, and a `copy` both from it
//! and to it. When the rest is itself an overlay document (`actions`, at most 8), it is also
//! applied to the built-in document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use open_cli_proxy::catalog::overlay;
use serde_json::{Value, json};

fn base_doc() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "tags": [{"name": "items"}, {"name": "admin", "x-internal": true}],
        "paths": {
            "/items": {"get": {"operationId": "listItems", "tags": ["items"]},
                        "post": {"operationId": "createItem"}},
            "/items/{id}": {"delete": {"operationId": "deleteItem", "x-cli-safety": {"destructive": true}}}
        },
        "servers": [{"url": "http://127.0.0.1:8780"}]
    })
}

fn apply(doc: &Value, action: Value) {
    let mut d = doc.clone();
    let ov = json!({"overlay": "1.0.0", "actions": [action]});
    let _ = overlay::apply(&mut d, &ov, "fuzz.overlay.json");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (path, rest) = text.split_once('\n').unwrap_or((text, ""));
    let parsed: Option<Value> = serde_json::from_str(rest).ok();
    let doc = parsed.clone().unwrap_or_else(base_doc);

    apply(
        &doc,
        json!({"target": path, "update": {"x-fuzz": true, "description": "d"}}),
    );
    apply(&doc, json!({"target": path, "update": "scalar"}));
    apply(&doc, json!({"target": path, "remove": true}));
    apply(&doc, json!({"target": path, "copy": {"to": "$.x-copied"}}));
    apply(&doc, json!({"target": "$.paths", "copy": {"to": path}}));

    if let Some(ov) = parsed
        && ov
            .get("actions")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() <= 8)
    {
        let mut d = base_doc();
        let _ = overlay::apply(&mut d, &ov, "fuzz.overlay.json");
    }
});
