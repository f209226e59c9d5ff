//! Loading an OpenAPI document and every document its `$ref`s reach.

use std::collections::HashMap;

use open_cli_config::ntc::Fetch;
use serde_json::Value;
use url::Url;

use super::openapi::{DocSet, check_version, parse_document, referenced_documents};
use crate::fetch::{Fetcher, Policy};

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

/// Fetch `root` and, breadth first, every document referenced from it.
pub async fn load_openapi(
    fetcher: &Fetcher,
    root: &Url,
    policy: Policy,
    provenance: &str,
) -> Result<Loaded, String> {
    let mut docs: HashMap<String, Value> = HashMap::new();
    let mut fetches = Vec::new();
    let mut raw = Vec::new();
    let root_key = without_fragment(root);
    let mut queue = vec![root_key.clone()];
    while let Some(url) = queue.pop() {
        if docs.contains_key(&url) {
            continue;
        }
        if docs.len() >= MAX_DOCUMENTS {
            return Err(format!(
                "more than {MAX_DOCUMENTS} documents are referenced from {root_key}"
            ));
        }
        let parsed = Url::parse(&url).map_err(|e| format!("bad document URL `{url}`: {e}"))?;
        let fetched = fetcher.get(&parsed, ACCEPT, policy, provenance).await?;
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
        let mut next = Vec::new();
        referenced_documents(&url, &value, &mut next);
        queue.extend(next.into_iter().filter(|d| !docs.contains_key(d)));
        raw.push((url.clone(), fetched.body));
        docs.insert(url, value);
    }
    raw.sort();
    Ok(Loaded {
        docs: DocSet::new(root_key, docs),
        fetches,
        raw,
    })
}

pub fn without_fragment(u: &Url) -> String {
    let mut u = u.clone();
    u.set_fragment(None);
    u.to_string()
}
