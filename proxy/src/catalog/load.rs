//! Loading an OpenAPI document and every document its `$ref`s reach.

use std::collections::HashMap;

use open_cli_config::ntc::Fetch;
use serde_json::Value;
use url::Url;

use super::display_location;
use super::openapi::{DocSet, check_version, parse_document, percent_decode, split_ref};
use crate::fetch::{Fetcher, Policy, Referrer};

/// Most documents one OpenAPI description may pull in through `$ref`s.
pub const MAX_DOCUMENTS: usize = 512;

/// What loading a description produced.
#[derive(Debug)]
pub struct Loaded {
    pub docs: DocSet,
    /// HTTP fetches, in the order they happened.
    pub fetches: Vec<Fetch>,
    /// `(url, bytes)` of every document, for the catalog fingerprint.
    pub raw: Vec<(String, Vec<u8>)>,
}

const ACCEPT: &str =
    "application/vnd.oai.openapi+json, application/json, application/yaml;q=0.9, */*;q=0.8";

/// A document to load and who named it: `None` for the root (named by `from` of
/// [`load_openapi`]), else the referencing document's URL and the `$ref` text.
type Pending = (String, Option<(Url, String)>);

/// Fetch `root` (named by `from`) and every document referenced from it, each admitted by the
/// fetcher's [`crate::fetch::DocumentRules`] against the document that references it; then
/// check that every `$ref`'s JSON pointer resolves.
pub async fn load_openapi(
    fetcher: &Fetcher,
    root: &Url,
    from: Referrer<'_>,
    policy: Policy,
    provenance: &str,
) -> Result<Loaded, String> {
    let mut docs: HashMap<String, Value> = HashMap::new();
    let mut fetches = Vec::new();
    let mut raw = Vec::new();
    let root_key = without_fragment(root);
    let mut queue: Vec<Pending> = vec![(root_key.clone(), None)];
    while let Some((url, named_by)) = queue.pop() {
        if docs.contains_key(&url) {
            continue;
        }
        if docs.len() >= MAX_DOCUMENTS {
            return Err(format!(
                "more than {MAX_DOCUMENTS} documents are referenced from {root_key}"
            ));
        }
        let parsed = Url::parse(&url).map_err(|e| format!("bad document URL `{url}`: {e}"))?;
        let fetched = match &named_by {
            None => fetcher.get(&parsed, from, ACCEPT, policy, provenance).await,
            Some((doc, reference)) => fetcher
                .get(&parsed, Referrer::Document(doc), ACCEPT, policy, provenance)
                .await
                .map_err(|e| format!("{}: `$ref` `{reference}`: {e}", display_location(doc))),
        }?;
        fetches.extend(fetched.record);
        let text = String::from_utf8(fetched.body.clone())
            .map_err(|_| format!("{url}: the document is not UTF-8 text"))?;
        let hint = match fetched.content_type.as_deref() {
            Some(ct) if ct.contains("json") => "x.json",
            Some(ct) if ct.contains("yaml") => "x.yaml",
            _ => url.as_str(),
        };
        let value = parse_document(&text, hint).map_err(|e| {
            if url == root_key {
                e
            } else {
                format!("referenced document {url}: {e}")
            }
        })?;
        if url == root_key {
            check_version(&value)?;
        }
        let mut refs = Vec::new();
        collect_refs(&value, &mut refs);
        for reference in refs.into_iter().filter(|r| !r.starts_with('#')) {
            let (doc, _) = split_ref(&url, reference)
                .map_err(|e| format!("{}: {e}", display_location(&parsed)))?;
            if !docs.contains_key(&doc) && !queue.iter().any(|(q, _)| *q == doc) {
                queue.push((doc, Some((parsed.clone(), reference.to_string()))));
            }
        }
        raw.push((url.clone(), fetched.body));
        docs.insert(url, value);
    }
    check_pointers(&docs)?;
    raw.sort();
    Ok(Loaded {
        docs: DocSet::new(root_key, docs),
        fetches,
        raw,
    })
}

/// Every `$ref` string in `v`.
fn collect_refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::Object(map) => {
            if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                out.push(r);
            }
            map.values().for_each(|c| collect_refs(c, out));
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// Every `$ref` whose fragment is a JSON pointer (empty or starting with `/`) must point at
/// something; the error names the referencing document and the reference.
fn check_pointers(docs: &HashMap<String, Value>) -> Result<(), String> {
    let mut names: Vec<&String> = docs.keys().collect();
    names.sort();
    for name in names {
        let mut refs = Vec::new();
        collect_refs(&docs[name], &mut refs);
        let shown = Url::parse(name)
            .map(|u| display_location(&u))
            .unwrap_or_else(|_| name.clone());
        for reference in refs {
            let (target, fragment) =
                split_ref(name, reference).map_err(|e| format!("{shown}: {e}"))?;
            let pointer = percent_decode(&fragment);
            if !(pointer.is_empty() || pointer.starts_with('/')) {
                continue; // a plain-name fragment (`$anchor`), not a JSON pointer
            }
            let found = docs.get(&target).and_then(|d| d.pointer(&pointer));
            if found.is_none() {
                return Err(format!(
                    "{shown}: `$ref` `{reference}` points at nothing: {} has no `{pointer}`",
                    Url::parse(&target)
                        .map(|u| display_location(&u))
                        .unwrap_or(target)
                ));
            }
        }
    }
    Ok(())
}

pub fn without_fragment(u: &Url) -> String {
    let mut u = u.clone();
    u.set_fragment(None);
    u.to_string()
}
