//! MCP sources → catalog tools (contract §8).
//!
//! The tools a server lists become a synthetic OpenAPI 3.1 document, so overlays, skills,
//! workflows and naming apply exactly as for OpenAPI services: one `POST
//! /_mcp/<service>/<tool>` operation per tool, `operationId` = the MCP tool name, the tool's
//! `inputSchema` as the required JSON body (a non-object schema is wrapped as `{input: …}` and
//! marked `inputWrapped`), and `x-open-cli-backend` naming the source, tool and transport.
//! Unlike the reference, MCP tool annotations set the safety flags (`readOnlyHint`,
//! `destructiveHint`, `idempotentHint`); without them POST defaults apply.

use std::collections::BTreeSet;

use open_cli_config::Config;
use open_cli_config::model::{McpTransportType, OAuthMode, Source};
use open_cli_config::secrets::SecretValue;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::credentials::Credentials;
use crate::credentials::oauth::Issued;
use crate::slug::slug;
use crate::upstream::mcp::Transport;

/// The transport to reach an MCP source, with `headerSecrets` resolved and, when the source
/// has `oauth` (contract §4.7), an `Authorization: Bearer` token from the shared token cache
/// (client credentials; single flight, renewed before expiry, stored like upstream tokens
/// under the secret key `mcp-transport:<source>`). The issued token is returned so a caller
/// that gets HTTP 401 can invalidate it and try once more with a fresh one.
pub async fn authorized_transport(
    source_id: &str,
    source: &Source,
    config: &Config,
    credentials: &Credentials,
    who: Identity<'_>,
) -> Result<(Transport, Option<Issued>), String> {
    let mut transport = transport(source, config, &credentials.secrets, who).await?;
    let Some(o) = &source.oauth else {
        return Ok((transport, None));
    };
    let headers = match &mut transport {
        Transport::Stdio { .. } => {
            return Err(
                "`oauth` applies to the `streamable-http` and `sse` transports, not `stdio`".into(),
            );
        }
        Transport::StreamableHttp { headers, .. } | Transport::Sse { headers, .. } => headers,
    };
    if o.mode != OAuthMode::ClientCredentials {
        return Err(format!(
            "`oauth.mode` `{}` needs a person at a browser, which a server runtime does not have; use `clientCredentials`",
            o.mode
        ));
    }
    if o.token_url.is_none() && o.issuer.is_none() {
        return Err("`oauth` needs `tokenURL` or `issuer` (for discovery)".into());
    }
    let request = credentials
        .client_token_request(
            o,
            config.policy.allow_exec_secrets,
            format!("mcp-transport:{source_id}"),
            "oauth",
        )
        .await?;
    let issued = credentials
        .tokens
        .token(&request)
        .await
        .map_err(|e| format!("oauth: {e}"))?;
    headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
    headers.push((
        "authorization".into(),
        SecretValue::from(format!("Bearer {}", issued.token.expose())),
    ));
    Ok((transport, Some(issued)))
}

/// Whose values a `byPrincipal` secret in `transport.headerSecrets` gives (an extension of the
/// contract, `docs/execution.md`, "Per-caller credentials").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    /// A catalog build lists the server's tools as no caller in particular: with the secret's
    /// `default` entry.
    Listing,
    /// A tool call, for the caller named here (`None` without runtime auth): the caller's own
    /// entry, else `default`. Each set of header values has its own session
    /// (`upstream::mcp`), so callers never share one.
    Caller(Option<&'a str>),
}

/// The transport to reach an MCP source, with `headerSecrets` resolved through the runtime's
/// one resolver for `who` (no OAuth; see [`authorized_transport`]).
pub async fn transport(
    source: &Source,
    config: &Config,
    secrets: &crate::credentials::secrets::SecretStore,
    who: Identity<'_>,
) -> Result<Transport, String> {
    let t = source.transport.as_ref().ok_or("`transport` is required")?;
    let mut headers: crate::upstream::mcp::Headers = t
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), SecretValue::new(v.as_str())))
        .collect();
    for (header, key) in &t.header_secrets {
        let at = |e: String| format!("transport.headerSecrets.{header}: {e}");
        let value = match (config.secrets.get(key), who) {
            (Some(open_cli_config::model::Secret::ByPrincipal(b)), Identity::Listing) => {
                let Some(default) = &b.default else {
                    return Err(at(format!(
                        "secret `{key}` holds one value per principal; the catalog build lists the server's tools with its `default` entry, and it has none"
                    )));
                };
                secrets
                    .resolve(default, config.policy.allow_exec_secrets)
                    .await
                    .map_err(|e| at(format!("secret `{key}` (default): {e}")))?
            }
            (_, Identity::Caller(principal)) => {
                secrets.value(config, key, principal).await.map_err(at)?
            }
            (_, Identity::Listing) => secrets.value(config, key, None).await.map_err(at)?,
        };
        headers.push((header.clone(), SecretValue::new(&*value)));
    }
    let url = || t.url.clone().ok_or("`transport.url` is required");
    Ok(match t.kind {
        McpTransportType::Stdio => Transport::Stdio {
            command: t.command.clone().ok_or("`transport.command` is required")?,
            args: t.args.clone(),
            env: t.env.clone(),
        },
        McpTransportType::StreamableHttp => Transport::StreamableHttp {
            url: url()?,
            headers,
        },
        McpTransportType::Sse => Transport::Sse {
            url: url()?,
            headers,
        },
    })
}

/// The synthetic OpenAPI document for the tools of one MCP service. Tools named in
/// `disabled` are left out; names that match no tool are returned as warnings.
pub fn synthetic_document(
    service_id: &str,
    source_id: &str,
    transport: McpTransportType,
    tools: &[Value],
    disabled: &[String],
) -> (Value, Vec<String>) {
    let names: BTreeSet<&str> = tools
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .collect();
    let warnings = disabled
        .iter()
        .filter(|d| !names.contains(d.as_str()))
        .map(|d| format!("disabledTools names `{d}`, which the server does not list"))
        .collect();
    let mut paths = Map::new();
    let mut used = BTreeSet::new();
    let svc_slug = slug(service_id);
    for tool in tools {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        if disabled.iter().any(|d| d == name) {
            continue;
        }
        let mut tool_slug = slug(name);
        if tool_slug.is_empty() || !used.insert(tool_slug.clone()) {
            let h = hex::encode(Sha256::digest(name.as_bytes()));
            tool_slug = format!("{tool_slug}-{}", &h[..8]);
            used.insert(tool_slug.clone());
        }
        let schema = tool
            .get("inputSchema")
            .cloned()
            .unwrap_or_else(|| json!({"type": "object"}));
        let wrapped = schema.get("type").and_then(Value::as_str) != Some("object");
        let schema = if wrapped {
            json!({"type": "object", "properties": {"input": schema}, "required": ["input"]})
        } else {
            schema
        };
        let description = tool
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut op = json!({
            "operationId": name,
            "tags": [service_id],
            "requestBody": {"required": true, "content": {"application/json": {"schema": schema}}},
            "responses": {"200": {"description": "MCP tool result"}},
            "x-open-cli-backend": {"kind": "mcp", "sourceId": source_id, "toolName": name,
                                    "transport": transport.as_str(), "inputWrapped": wrapped},
        });
        if !description.is_empty() {
            op["summary"] = description.lines().next().unwrap_or_default().into();
            op["description"] = description.into();
        }
        if let Some(safety) = safety_from_annotations(tool.get("annotations")) {
            op["x-cli-safety"] = safety;
        }
        paths.insert(format!("/_mcp/{svc_slug}/{tool_slug}"), json!({"post": op}));
    }
    let doc = json!({"openapi": "3.1.0", "info": {"title": service_id, "version": "mcp"}, "paths": paths});
    (doc, warnings)
}

fn safety_from_annotations(a: Option<&Value>) -> Option<Value> {
    let a = a?.as_object()?;
    let hint = |k: &str| a.get(k).and_then(Value::as_bool);
    let read_only = hint("readOnlyHint").unwrap_or(false);
    Some(json!({
        "readOnly": read_only,
        "destructive": !read_only && hint("destructiveHint").unwrap_or(false),
        "idempotent": read_only || hint("idempotentHint").unwrap_or(false),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with MCP source `s` over `kind` (`headerSecrets` are for the HTTP transports;
    /// the config refuses them on `stdio`), whose `X-Api-Key` is the `byPrincipal` secret `k`
    /// (alice's entry, and `default` when given).
    fn per_caller(kind: &str, default: Option<&str>) -> Config {
        let mut secret = json!({"type": "byPrincipal",
            "principals": {"alice": {"type": "literal", "value": "key-alice"}}});
        if let Some(d) = default {
            secret["default"] = json!({"type": "literal", "value": d});
        }
        let transport = json!({"type": kind, "url": "http://127.0.0.1:9/mcp",
                               "headerSecrets": {"X-Api-Key": "k"}});
        let doc = json!({
            "cli": "1.0.0",
            "mode": {"default": "discover"},
            "runtime": {"mode": "remote"},
            "sources": {"s": {"type": "mcp", "transport": transport}},
            "secrets": {"k": secret},
        });
        open_cli_config::load::parse_str(&doc.to_string(), std::path::Path::new("t.cli.json"))
            .unwrap()
    }

    fn key_of(t: &Transport) -> Option<String> {
        match t {
            Transport::StreamableHttp { headers, .. } | Transport::Sse { headers, .. } => headers
                .iter()
                .find(|(k, _)| k == "X-Api-Key")
                .map(|(_, v)| v.expose().to_string()),
            Transport::Stdio { .. } => None,
        }
    }

    #[tokio::test]
    async fn per_caller_header_secrets_are_the_callers_and_the_default_lists() {
        let store = crate::credentials::secrets::SecretStore::default();
        let resolve = |cfg: Config, who: Identity<'static>| {
            let store = &store;
            async move { transport(&cfg.sources["s"], &cfg, store, who).await }
        };
        for kind in ["streamable-http", "sse"] {
            let cfg = || per_caller(kind, Some("key-shared"));
            let alice = resolve(cfg(), Identity::Caller(Some("alice")))
                .await
                .unwrap();
            assert_eq!(key_of(&alice).as_deref(), Some("key-alice"));
            let bob = resolve(cfg(), Identity::Caller(Some("bob"))).await.unwrap();
            assert_eq!(key_of(&bob).as_deref(), Some("key-shared"));
            let listing = resolve(cfg(), Identity::Listing).await.unwrap();
            assert_eq!(key_of(&listing).as_deref(), Some("key-shared"));
            // Without runtime auth a call has no caller: refused, as for HTTP tools.
            let e = resolve(cfg(), Identity::Caller(None)).await.unwrap_err();
            assert!(e.contains("no authenticated caller"), "{e}");
            // Without `default`: no listing, and a caller without an entry is refused.
            let e = resolve(per_caller(kind, None), Identity::Listing)
                .await
                .unwrap_err();
            assert!(
                e.contains("transport.headerSecrets.X-Api-Key")
                    && e.contains("`default` entry, and it has none"),
                "{e}"
            );
            let e = resolve(per_caller(kind, None), Identity::Caller(Some("bob")))
                .await
                .unwrap_err();
            assert!(e.contains("no entry for principal `bob`"), "{e}");
        }
    }

    #[test]
    fn tools_become_operations_with_backends_and_safety() {
        let tools = vec![
            json!({"name": "get_sum", "description": "Adds.\nMore.", "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}}},
                   "annotations": {"readOnlyHint": true}}),
            json!({"name": "get-sum", "inputSchema": {"type": "string"}}),
            json!({"name": "drop_all", "annotations": {"destructiveHint": true}}),
        ];
        let (doc, warnings) = synthetic_document(
            "files",
            "files",
            McpTransportType::Stdio,
            &tools,
            &["drop_all".into(), "ghost".into()],
        );
        assert_eq!(
            warnings,
            ["disabledTools names `ghost`, which the server does not list"]
        );
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.len(), 2);
        let a = &paths["/_mcp/files/get-sum"]["post"];
        assert_eq!(a["operationId"], "get_sum");
        assert_eq!(a["summary"], "Adds.");
        assert_eq!(
            a["x-cli-safety"],
            json!({"readOnly": true, "destructive": false, "idempotent": true})
        );
        assert_eq!(a["x-open-cli-backend"]["inputWrapped"], false);
        let collided = paths
            .keys()
            .find(|k| k.starts_with("/_mcp/files/get-sum-"))
            .unwrap();
        let b = &paths[collided]["post"];
        assert_eq!(b["x-open-cli-backend"]["inputWrapped"], true);
        assert_eq!(
            b["requestBody"]["content"]["application/json"]["schema"]["properties"]["input"],
            json!({"type": "string"})
        );
    }
}
