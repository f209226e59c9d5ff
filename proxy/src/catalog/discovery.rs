//! Finding API descriptions from a service root (RFC 8631) or an API catalog (RFC 9727).
//!
//! - `serviceRoot`: `HEAD` the root, then `GET` it if the `HEAD` carried no `service-desc`;
//!   `Link: <…>; rel="service-desc"` names the OpenAPI document, `rel="service-meta"` a
//!   metadata linkset (RFC 9264) whose links are classified by relation: `…skill-manifest…`,
//!   `…workflows…`, `…schema-overlay…`.
//! - `apiCatalog`: a linkset (`application/linkset+json`); `item` links name service roots,
//!   `api-catalog` links nested catalogs (followed once each: cycles end there), and an entry
//!   whose anchor carries `service-desc` names a description directly.
//!
//! Relative references resolve against the document that contains them.

use open_cli_config::ntc::Fetch;
use serde_json::Value;
use url::Url;

use crate::fetch::{Fetcher, Policy, Referrer};

/// Most nested catalogs followed from one `apiCatalog` source.
const MAX_CATALOGS: usize = 64;

/// One API found by discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub desc: Url,
    /// The document that named `desc` (`None`: the config did).
    pub desc_from: Option<Url>,
    pub overlays: Vec<String>,
    pub skills: Vec<String>,
    pub workflows: Vec<String>,
}

impl Api {
    pub fn explicit(desc: Url) -> Self {
        Self {
            desc,
            desc_from: None,
            overlays: Vec::new(),
            skills: Vec::new(),
            workflows: Vec::new(),
        }
    }
}

/// `(target, relations)` of an HTTP `Link` header (RFC 8288), resolved against `base`.
pub fn parse_link_header(values: &[String], base: &Url) -> Vec<(Url, Vec<String>)> {
    let mut out = Vec::new();
    for value in values {
        for link in split_links(value) {
            let link = link.trim();
            let Some(end) = link.find('>') else { continue };
            let Some(target) = link.get(1..end).filter(|_| link.starts_with('<')) else {
                continue;
            };
            let Ok(url) = base.join(target.trim()) else {
                continue;
            };
            let rels: Vec<String> = link[end + 1..]
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("rel"))
                .flat_map(|(_, v)| {
                    v.trim()
                        .trim_matches('"')
                        .split_whitespace()
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            out.push((url, rels));
        }
    }
    out
}

/// Split a `Link` header value at the commas between links (not inside `<…>` or quotes).
fn split_links(value: &str) -> Vec<&str> {
    let (mut parts, mut start, mut in_angle, mut in_quote) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// `(anchor, relation, target)` of every link in an RFC 9264 JSON linkset (`linkset`, or
/// `links` as the reference also accepts).
pub fn parse_linkset(doc: &Value, base: &Url) -> Result<Vec<(Option<Url>, String, Url)>, String> {
    let entries = doc
        .get("linkset")
        .or_else(|| doc.get("links"))
        .and_then(Value::as_array)
        .ok_or("not a linkset: no `linkset` array")?;
    let mut out = Vec::new();
    for entry in entries {
        let Some(obj) = entry.as_object() else {
            continue;
        };
        let anchor = obj
            .get("anchor")
            .and_then(Value::as_str)
            .and_then(|a| base.join(a).ok());
        for (rel, targets) in obj.iter().filter(|(k, _)| *k != "anchor") {
            for t in targets.as_array().into_iter().flatten() {
                if let Some(href) = t.get("href").and_then(Value::as_str)
                    && let Ok(url) = base.join(href)
                {
                    out.push((anchor.clone(), rel.clone(), url));
                }
            }
        }
    }
    Ok(out)
}

fn rel_is(rel: &str, name: &str) -> bool {
    rel == name || rel.ends_with(&format!("/{name}"))
}

/// Discovery state shared by one source: the fetches it made.
#[derive(Debug)]
pub struct Discovery<'a> {
    pub fetcher: &'a Fetcher,
    pub policy: Policy,
    pub fetches: Vec<Fetch>,
    pub warnings: Vec<String>,
}

impl Discovery<'_> {
    async fn get_json(
        &mut self,
        url: &Url,
        from: Referrer<'_>,
        accept: &str,
        method: &str,
    ) -> Result<(Value, Vec<String>), String> {
        let f = self
            .fetcher
            .get(url, from, accept, self.policy, method)
            .await?;
        self.fetches.extend(f.record);
        let v = serde_json::from_slice(&f.body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        Ok((v, f.links))
    }

    /// The API behind a service root (named by `from`). Every link it advertises is admitted
    /// by the document rules against the root (a remote root leads only to its own origin
    /// and allowed ones).
    pub async fn service_root(&mut self, root: &Url, from: Referrer<'_>) -> Result<Api, String> {
        let (status, mut links) = self.fetcher.head_links(root, from).await?;
        self.fetches.push(Fetch {
            url: root.to_string(),
            fetched_at: crate::clock::now_rfc3339(),
            method: "rfc8631".into(),
            request_method: Some("HEAD".into()),
            status_code: Some(status),
            cache_outcome: None,
            etag: None,
            last_modified: None,
            cache_control: None,
            expires_at: None,
            stale: false,
        });
        let mut parsed = parse_link_header(&links, root);
        if !parsed
            .iter()
            .any(|(_, rels)| rels.iter().any(|r| rel_is(r, "service-desc")))
        {
            let f = self
                .fetcher
                .get(root, from, "*/*", self.policy, "rfc8631")
                .await?;
            self.fetches.extend(f.record);
            links = f.links;
            parsed = parse_link_header(&links, root);
        }
        let find = |name: &str| {
            parsed
                .iter()
                .find(|(_, rels)| rels.iter().any(|r| rel_is(r, name)))
                .map(|(u, _)| u.clone())
        };
        let desc = find("service-desc").ok_or_else(|| {
            format!(
                "service root {root} advertises no `Link: <…>; rel=\"service-desc\"` (RFC 8631)"
            )
        })?;
        let mut api = Api {
            desc_from: Some(root.clone()),
            ..Api::explicit(desc)
        };
        if let Some(meta) = find("service-meta") {
            self.service_meta(&meta, root, &mut api).await?;
        }
        Ok(api)
    }

    async fn service_meta(&mut self, meta: &Url, root: &Url, api: &mut Api) -> Result<(), String> {
        let (doc, _) = self
            .get_json(
                meta,
                Referrer::Document(root),
                "application/linkset+json, application/json",
                "rfc8631",
            )
            .await?;
        for (_, rel, target) in parse_linkset(&doc, meta).map_err(|e| format!("{meta}: {e}"))? {
            // Fetched later as named by the config: admitted here, against the linkset.
            self.fetcher
                .rules()
                .admit(Referrer::Document(meta), &target)
                .map_err(|e| format!("{meta}: link to {target}: {e}"))?;
            let target = target.to_string();
            if rel.contains("skill-manifest") {
                api.skills.push(target);
            } else if rel.contains("workflows") {
                api.workflows.push(target);
            } else if rel.contains("schema-overlay") {
                api.overlays.push(target);
            }
        }
        Ok(())
    }

    /// Every API an API catalog lists, following nested catalogs.
    pub async fn api_catalog(&mut self, catalog: &Url) -> Result<Vec<Api>, String> {
        let mut apis = Vec::new();
        let mut seen: Vec<Url> = Vec::new();
        let mut queue: Vec<(Url, Option<Url>)> = vec![(catalog.clone(), None)];
        while let Some((url, parent)) = queue.pop() {
            if seen.contains(&url) {
                self.warnings
                    .push(format!("api catalog cycle: {url} is already included"));
                continue;
            }
            if seen.len() >= MAX_CATALOGS {
                return Err(format!(
                    "more than {MAX_CATALOGS} nested API catalogs under {catalog}"
                ));
            }
            seen.push(url.clone());
            let from = parent.as_ref().map_or(Referrer::Config, Referrer::Document);
            let (doc, _) = self
                .get_json(
                    &url,
                    from,
                    "application/linkset+json, application/json;q=0.9",
                    "rfc9727",
                )
                .await?;
            let links = parse_linkset(&doc, &url).map_err(|e| format!("{url}: {e}"))?;
            for (anchor, rel, target) in links {
                if rel_is(&rel, "item") {
                    let api = self
                        .service_root(&target, Referrer::Document(&url))
                        .await
                        .map_err(|e| format!("{url}: item {target}: {e}"))?;
                    push_unique(&mut apis, api);
                } else if rel_is(&rel, "api-catalog") && anchor.as_ref() != Some(&target) {
                    queue.push((target, Some(url.clone())));
                } else if rel_is(&rel, "service-desc") {
                    push_unique(
                        &mut apis,
                        Api {
                            desc_from: Some(url.clone()),
                            ..Api::explicit(target)
                        },
                    );
                }
            }
        }
        if apis.is_empty() {
            return Err(format!(
                "API catalog {catalog} lists no APIs (no `item` or `service-desc` links)"
            ));
        }
        Ok(apis)
    }
}

fn push_unique(apis: &mut Vec<Api>, api: Api) {
    if !apis.iter().any(|a| a.desc == api.desc) {
        apis.push(api);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn link_headers_with_several_links_and_relations() {
        let base = Url::parse("http://h/api/").unwrap();
        let links = parse_link_header(
            &[r#"</openapi.yaml>; rel="service-desc"; type="application/yaml", <meta.json>; rel="service-meta describedby""#.to_string()],
            &base,
        );
        assert_eq!(
            links[0],
            (
                Url::parse("http://h/openapi.yaml").unwrap(),
                vec!["service-desc".to_string()]
            )
        );
        assert_eq!(links[1].0.as_str(), "http://h/api/meta.json");
        assert_eq!(links[1].1, ["service-meta", "describedby"]);
    }

    #[test]
    fn linksets_resolve_relative_targets() {
        let base = Url::parse("http://h/cat/index.json").unwrap();
        let doc = json!({"linkset": [{"anchor": "http://h/cat/index.json", "item": [{"href": "/a"}, {"href": "b"}], "api-catalog": [{"href": "../other.json"}]}]});
        let links = parse_linkset(&doc, &base).unwrap();
        let targets: Vec<(&str, &str)> = links
            .iter()
            .map(|(_, r, u)| (r.as_str(), u.as_str()))
            .collect();
        assert!(targets.contains(&("item", "http://h/a")));
        assert!(targets.contains(&("item", "http://h/cat/b")));
        assert!(targets.contains(&("api-catalog", "http://h/other.json")));
        assert!(parse_linkset(&json!({}), &base).is_err());
    }
}
