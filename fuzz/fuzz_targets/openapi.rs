//! OpenAPI documents → catalog tools, in memory: `catalog::openapi::parse_document` (JSON,
//! YAML with its nesting pre-scan), `check_version`, `referenced_documents`, then a
//! `DocSet` and `openapi::tools` (every operation: `$ref` resolution across documents,
//! schema snapshots with inlining or shared `$defs`, parameters, request bodies, security,
//! servers), and `guidance::apply_skill` / `bind_workflows` on the tools.
//!
//! `catalog::load::load_openapi` needs a `Fetcher`; its in-memory checks (`check_pointers`)
//! are private, so documents named by external `$ref`s are supplied here: from the root's
//! `x-fuzz-documents` object (keyed by the file name the reference ends in), else the root
//! document itself under the other URL.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use open_cli_proxy::catalog::{guidance, openapi};
use serde_json::Value;

/// `FUZZ_SHOW=1`: print each input's outcome (to check seeds: `cargo fuzz run TARGET FILE`).
fn show() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some())
}

const ROOT: &str = "https://api.example.test/specs/openapi";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // No extension: JSON first, then YAML (as for a fetched document without a content type).
    let parsed = openapi::parse_document(text, ROOT);
    if text.trim_start().starts_with('{') {
        let _ = openapi::parse_document(text, "openapi.json");
    }
    let root = match parsed {
        Ok(root) => root,
        Err(e) => {
            if show() {
                eprintln!("{e}");
            }
            return;
        }
    };
    let _ = openapi::check_version(&root);

    let mut referenced = Vec::new();
    openapi::referenced_documents(ROOT, &root, &mut referenced);
    let supplied = root.get("x-fuzz-documents").and_then(Value::as_object);
    let mut docs: HashMap<String, Value> = HashMap::new();
    for url in referenced.iter().take(16) {
        let file = url.rsplit('/').next().unwrap_or_default();
        let doc = supplied
            .and_then(|s| s.get(file))
            .cloned()
            .unwrap_or_else(|| root.clone());
        // Documents they reference in turn resolve too, or fail to: both are exercised.
        docs.insert(url.clone(), doc);
    }
    docs.insert(ROOT.to_string(), root.clone());
    for (url, doc) in &docs {
        let _ = openapi::split_ref(url, "#/components");
        let mut more = Vec::new();
        openapi::referenced_documents(url, doc, &mut more);
    }
    let set = openapi::DocSet::new(ROOT.to_string(), docs);
    let _ = set.title();
    let mut problems = Vec::new();
    let _ = set.servers(&mut problems);
    let service = openapi::ServiceRef { id: "fuzz" };
    let mut tools = openapi::tools(&set, &service, &mut problems);
    for tool in &tools {
        let _ = openapi::schema_nodes(tool);
        let _ = serde_json::to_vec(tool);
    }
    if show() {
        eprintln!("{} tool(s); problems: {problems:?}", tools.len());
    }
    if let Some(skill) = root.get("x-fuzz-skill") {
        let r = guidance::apply_skill(&mut tools, "fuzz", "fuzz", skill, "skill.json");
        if show() {
            eprintln!("skill: {r:?}");
        }
    }
    if let Some(workflows) = root.get("x-fuzz-workflows") {
        let r = guidance::bind_workflows(&tools, "fuzz", workflows, "workflows.json");
        if show() {
            eprintln!("workflows: {r:?}");
        }
    }
    // The same set after a root replacement (what overlays do).
    let replaced = set.with_root(root);
    let _ = replaced.root_doc();
});
