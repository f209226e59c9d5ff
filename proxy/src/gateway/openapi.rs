//! `GET /v1/openapi.json`: the runtime's own API described in OpenAPI 3.1 (issue 18, item 4).
//!
//! The description is `openapi.json` beside this file, written by hand and kept true by tests:
//! a unit test holds its paths and methods equal to the route table (`super::api`), the product
//! test `openapi` checks live answers of every operation against its schemas, and schemathesis
//! (`scripts/api-fuzz`) fuzzes the runtime from it. At serve time the runtime's URL, its
//! version and the contract version are filled in, and the NTC schema
//! (`config/schemas/ntc.schema.json`, the one the product tests validate every catalog with)
//! becomes `components.schemas.Catalog`, its `$defs` references re-rooted there.

use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;

const DESCRIPTION: &str = include_str!("openapi.json");
const NTC_SCHEMA: &str = include_str!("../../../config/schemas/ntc.schema.json");

/// The description served at `url`, with runtime auth on or off (rendered once per process:
/// neither changes while it runs).
pub fn document(url: &str, auth: bool) -> Bytes {
    static RENDERED: [OnceLock<Bytes>; 2] = [OnceLock::new(), OnceLock::new()];
    RENDERED[usize::from(auth)]
        .get_or_init(|| Bytes::from(serde_json::to_vec(&render(url, auth)).unwrap_or_default()))
        .clone()
}

/// The description with the runtime's URL, versions and the catalog schema in place. Without
/// runtime auth no operation needs a token: the bearer requirements are left out.
pub fn render(url: &str, auth: bool) -> Value {
    let mut doc: Value = serde_json::from_str(DESCRIPTION).unwrap_or_default();
    if !auth {
        doc["security"] = Value::Array(Vec::new());
        if let Some(paths) = doc["paths"].as_object_mut() {
            for op in paths.values_mut().filter_map(Value::as_object_mut) {
                for o in op.values_mut().filter_map(Value::as_object_mut) {
                    o.remove("security");
                    if let Some(r) = o.get_mut("responses").and_then(Value::as_object_mut) {
                        r.remove("401");
                    }
                }
            }
        }
    }
    doc["info"]["version"] = env!("CARGO_PKG_VERSION").into();
    doc["info"]["x-contract-version"] = open_cli_config::wire::CONTRACT_VERSION.into();
    doc["servers"][0]["url"] = url.into();
    let mut ntc: Value = serde_json::from_str(NTC_SCHEMA).unwrap_or_default();
    if let Some(o) = ntc.as_object_mut() {
        // Its `$id` would change the base of its references; the description is their base.
        o.remove("$id");
        o.remove("$schema");
    }
    reroot(&mut ntc, "#/$defs/", "#/components/schemas/Catalog/$defs/");
    doc["components"]["schemas"]["Catalog"] = ntc;
    doc
}

/// Rewrite every `$ref` starting with `from` to start with `to`.
fn reroot(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if k == "$ref" && s.starts_with(from) => {
                        *s = format!("{to}{}", &s[from.len()..]);
                    }
                    _ => reroot(child, from, to),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| reroot(i, from, to)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_and_every_description_is_a_route() {
        let doc = render("http://127.0.0.1:1", true);
        assert_eq!(doc["openapi"], "3.1.0");
        let mut described: Vec<(String, String)> = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for method in ops.as_object().unwrap().keys() {
                described.push((path.clone(), method.to_ascii_uppercase()));
            }
        }
        described.sort();
        let mut routes: Vec<(String, String)> = crate::gateway::api::routes()
            .flat_map(|(p, methods)| methods.iter().map(move |m| (p.to_string(), m.to_string())))
            .collect();
        routes.sort();
        assert_eq!(described, routes);
    }

    #[test]
    fn every_reference_resolves() {
        let doc = render("http://127.0.0.1:1", true);
        let mut refs = Vec::new();
        fn collect(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, c) in m {
                        match c {
                            Value::String(s) if k == "$ref" => out.push(s.clone()),
                            _ => collect(c, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|c| collect(c, out)),
                _ => {}
            }
        }
        collect(&doc, &mut refs);
        assert!(refs.len() > 50);
        for r in refs {
            let pointer = r.strip_prefix('#').expect("local reference");
            assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
        }
    }
}
