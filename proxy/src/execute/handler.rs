//! `POST /v1/tools/execute` (contract §2): decode → find the tool → govern → credentials →
//! call → envelope, with an audit record for every outcome past the tool lookup.

use std::time::Instant;

use base64::Engine;
use bytes::Bytes;
use open_cli_config::ntc::{Parameter, Tool};
use open_cli_config::wire::{ExecuteRequest, ExecuteResponse};
use serde_json::Value;

use super::{Error, Intent, denial_event, failure_event, tool_event};
use crate::audit::Event;
use crate::auth::Caller;
use crate::snapshot::Snapshot;
use crate::snapshot::index::ToolInfo;
use crate::state::RuntimeState;
use crate::upstream::http::{self, CallError};
use tracing::Instrument as _;

/// Answer one execute request: `Ok` is the envelope (status 200).
pub async fn handle(
    state: &RuntimeState,
    body: &[u8],
    caller: &Caller,
    request_id: &str,
) -> Result<ExecuteResponse, Error> {
    let req = decode(body)?;
    execute(
        state,
        &req,
        caller,
        request_id,
        crate::audit::Channel::Execute,
    )
    .await
}

/// Run one decoded tool call that came in on `channel` (`/v1/tools/execute`, or MCP's
/// `tools/call`, `crate::mcp`): the one path every tool call of both takes, from the binding
/// check to the audit record.
pub async fn execute(
    state: &RuntimeState,
    req: &ExecuteRequest,
    caller: &Caller,
    request_id: &str,
    channel: crate::audit::Channel,
) -> Result<ExecuteResponse, Error> {
    state.check_binding(req.config_path.as_deref())?;
    super::check_audit(state)?;
    let snapshot = state.snapshot();
    let i = snapshot
        .exec
        .tool_index(&req.tool_id)
        .ok_or_else(|| Error::UnknownTool(req.tool_id.clone()))?;
    let tool = snapshot.tool(i);
    let info = snapshot.exec.info(i);
    let intent = Intent {
        mode: req.mode.as_deref(),
        agent_profile: req.agent_profile.as_deref(),
        approval: req.approval,
    };
    let event = tool_event(
        tool,
        info,
        caller,
        &intent,
        request_id,
        channel,
        Instant::now(),
    );
    let _permit = match super::admit(state, &snapshot, caller, i, &intent).await {
        Ok(p) => p,
        Err(e) => {
            super::record(state, denial_event(event, &e)).await?;
            return Err(e);
        }
    };
    let started = Instant::now();
    let result = run(state, &snapshot, tool, info, req, caller, request_id).await;
    let latency = started.elapsed();
    match result {
        Ok((resp, mut e)) => {
            e.set_latency(latency);
            super::record(state, crate::audit::events::allowed(merge(event, e))).await?;
            Ok(resp)
        }
        Err((err, mut e)) => {
            e.set_latency(latency);
            // Caller mistakes (400/413) are not executions; failures are audited.
            if err.is_failure() {
                super::record(state, failure_event(merge(event, e), &err)).await?;
            }
            Err(err)
        }
    }
}

/// The keys of an execute request (contract §2).
const REQUEST_KEYS: [&str; 8] = [
    "configPath",
    "mode",
    "agentProfile",
    "toolId",
    "pathArgs",
    "flags",
    "body",
    "approval",
];

/// Decode an execute request strictly: an unknown key is refused (400 naming it, with the
/// closest known key: a misspelt `agentprofile` must not silently drop a restriction), and a
/// number given as a flag value is kept as the exact text the caller sent (serde_json would
/// turn `123456789012345678901234567890` into `1.2345678901234568e29`).
pub fn decode(body: &[u8]) -> Result<ExecuteRequest, Error> {
    use serde_json::value::RawValue;
    use std::collections::BTreeMap;
    let bad = Error::Invalid;
    let invalid = |e: &dyn std::fmt::Display| bad(format!("invalid execute request: {e}"));
    let text = std::str::from_utf8(body).map_err(|e| invalid(&e))?;
    // Keys first, so a misspelt required key (`toolID`) is named too.
    let top: BTreeMap<String, &RawValue> = serde_json::from_str(text).map_err(|e| invalid(&e))?;
    if let Some(key) = top.keys().find(|k| !REQUEST_KEYS.contains(&k.as_str())) {
        let hint = (key.len() <= 64)
            .then(|| open_cli_config::diag::did_you_mean(key, &REQUEST_KEYS))
            .flatten()
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
        return Err(bad(format!(
            "invalid execute request: unknown key `{}`{hint}; allowed keys: {}",
            crate::auth::shown(key),
            REQUEST_KEYS.join(", ")
        )));
    }
    let mut req: ExecuteRequest = serde_json::from_str(text).map_err(|e| invalid(&e))?;
    if let Some(flags) = top.get("flags") {
        let flags: BTreeMap<String, &RawValue> = serde_json::from_str(flags.get())
            .map_err(|e| bad(format!("invalid execute request: `flags`: {e}")))?;
        for (name, raw) in flags {
            let exact = |r: &RawValue| -> Option<Value> {
                let t = r.get().trim();
                t.starts_with(|c: char| c == '-' || c.is_ascii_digit())
                    .then(|| Value::String(t.to_string()))
            };
            let value = if raw.get().trim_start().starts_with('[') {
                let items: Vec<&RawValue> = serde_json::from_str(raw.get())
                    .map_err(|e| bad(format!("invalid execute request: flag `{name}`: {e}")))?;
                if !items.iter().any(|r| exact(r).is_some()) {
                    continue;
                }
                let mut out = Vec::with_capacity(items.len());
                for r in items {
                    out.push(match exact(r) {
                        Some(v) => v,
                        None => serde_json::from_str(r.get()).map_err(|e| {
                            bad(format!("invalid execute request: flag `{name}`: {e}"))
                        })?,
                    });
                }
                Value::Array(out)
            } else {
                match exact(raw) {
                    Some(v) => v,
                    None => continue,
                }
            };
            req.flags.insert(name, value);
        }
    }
    Ok(req)
}

/// The JSON pointer of the first number in `json` that serde_json cannot carry exactly (its
/// value as sent would differ from the value given), if any. Used where a JSON document is
/// re-encoded before it goes upstream (MCP arguments): such numbers are refused, not rounded.
pub fn inexact_number(json: &str) -> Option<String> {
    use serde_json::value::RawValue;
    fn walk(raw: &RawValue, at: &mut String) -> Option<String> {
        let t = raw.get().trim();
        match t.as_bytes().first() {
            Some(b'{') => {
                let map: std::collections::BTreeMap<String, &RawValue> =
                    serde_json::from_str(t).ok()?;
                for (k, v) in map {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    if let Some(p) = walk(v, at) {
                        return Some(p);
                    }
                    at.truncate(len);
                }
                None
            }
            Some(b'[') => {
                let items: Vec<&RawValue> = serde_json::from_str(t).ok()?;
                for (i, v) in items.into_iter().enumerate() {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&i.to_string());
                    if let Some(p) = walk(v, at) {
                        return Some(p);
                    }
                    at.truncate(len);
                }
                None
            }
            Some(b'-' | b'0'..=b'9') => {
                let sent = serde_json::from_str::<Value>(t).ok()?.to_string();
                (open_cli_config::wire::decimal(t) != open_cli_config::wire::decimal(&sent))
                    .then(|| at.clone())
            }
            _ => None,
        }
    }
    let raw: &RawValue = serde_json::from_str(json).ok()?;
    walk(raw, &mut String::new())
}

/// The execution-specific fields of `partial` over the common fields of `base`.
fn merge<'a>(base: Event<'a>, partial: Event<'static>) -> Event<'a> {
    Event {
        auth_scheme: partial.auth_scheme,
        request_size: partial.request_size,
        response_size: partial.response_size,
        status_code: partial.status_code,
        latency_ms: partial.latency_ms,
        took: partial.took,
        retry_count: partial.retry_count,
        upstream_path: partial.upstream_path,
        ..base
    }
}

type Failure = (Error, Event<'static>);

async fn run(
    state: &RuntimeState,
    snapshot: &Snapshot,
    tool: &Tool,
    info: &ToolInfo,
    req: &ExecuteRequest,
    caller: &Caller,
    request_id: &str,
) -> Result<(ExecuteResponse, Event<'static>), Failure> {
    let mut ev = Event::default();
    let bad = |m: String, ev: &Event<'static>| (Error::Invalid(m), ev.clone());
    let body = match &req.body {
        None => None,
        Some(b) => Some(Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| bad(format!("`body` is not valid base64: {e}"), &ev))?,
        )),
    };
    ev.request_size = body.as_ref().map_or(0, |b| b.len() as u64);
    let limit = info.upstream.max_request_bytes;
    if ev.request_size > limit {
        return Err((
            Error::TooLarge(format!(
                "the request body is {} bytes; tool `{}` accepts at most {limit} (maxRequestBytes)",
                ev.request_size, tool.id
            )),
            ev,
        ));
    }
    if tool.request_body.as_ref().is_some_and(|b| b.required) && body.is_none() {
        return Err(bad(
            format!("tool `{}` requires a request body", tool.id),
            &ev,
        ));
    }
    if info.mcp {
        return run_mcp(state, snapshot, tool, req, body, caller, ev).await;
    }
    let flags = match_flags(tool, req).map_err(|m| bad(m, &ev))?;
    check_header_flags(tool, &flags, &snapshot.pass_through.forward_headers)
        .map_err(|m| bad(m, &ev))?;
    let base = info
        .base
        .as_ref()
        .map_err(|m| (Error::Unreachable(m.clone()), ev.clone()))?;
    let path = http::upstream_path(tool, &req.path_args).map_err(|m| bad(m, &ev))?;
    // The pass-through's rule, on the path as it would arrive there.
    crate::policy::path::check_path(&path).map_err(|why| {
        bad(
            format!("tool `{}`: unsafe path `{path}`: {why}", tool.id),
            &ev,
        )
    })?;
    let prepared = http::prepare(tool, base, &path, &flags, body).map_err(|m| bad(m, &ev))?;
    ev.upstream_path = Some(crate::audit::UpstreamPath(
        prepared.url.path().to_string().into(),
        "".into(),
    ));
    let config = &snapshot.config;
    let on_behalf = caller
        .principal
        .as_deref()
        .map(crate::auth::Principal::on_behalf);
    let creds = state
        .credentials
        .resolve_cached(config, tool, &info.creds, on_behalf)
        .instrument(crate::span!("credentials", open_cli.service = %tool.service_id))
        .await
        .map_err(|u| (Error::Credentials(u.message(&tool.id)), ev.clone()))?;
    ev.auth_scheme = creds.scheme.clone().map(Into::into);
    let client = state
        .clients
        .get(&info.upstream)
        .map_err(|m| (Error::Unreachable(m), ev.clone()))?;
    let renew = |used: std::sync::Arc<crate::credentials::Applied>| async move {
        for issued in &used.oauth {
            state.credentials.tokens.invalidate(issued).await;
        }
        state
            .credentials
            .resolve(config, tool, on_behalf)
            .await
            .map(std::sync::Arc::new)
            .map_err(|u| u.message(&tool.id))
    };
    let answer = http::call(
        &client,
        &info.upstream,
        info.idempotent,
        &prepared,
        creds,
        request_id,
        renew,
    )
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            let target = info
                .base
                .as_ref()
                .map(|u| u.to_string())
                .unwrap_or_default();
            let word = |why: &str| format!("tool `{}`: upstream {target}: {why}", tool.id);
            let err = match e {
                CallError::Timeout(w) => Error::Timeout(word(&w)),
                CallError::Transport(w) => Error::Unreachable(word(&w)),
                CallError::TooLarge(n) => Error::ResponseTooLarge(word(&format!(
                    "the answer exceeds maxResponseBytes ({n} bytes)"
                ))),
                CallError::Credentials(w) => Error::Credentials(word(&w)),
            };
            return Err((err, ev));
        }
    };
    ev.status_code = answer.status;
    ev.retry_count = answer.retries;
    ev.response_size = answer.body.len() as u64;
    Ok((
        envelope(answer.status, answer.content_type, &answer.body),
        ev,
    ))
}

async fn run_mcp(
    state: &RuntimeState,
    snapshot: &Snapshot,
    tool: &Tool,
    req: &ExecuteRequest,
    body: Option<Bytes>,
    caller: &Caller,
    mut ev: Event<'static>,
) -> Result<(ExecuteResponse, Event<'static>), Failure> {
    let fail = |e: fn(String) -> Error, m: String, ev: &Event<'static>| (e(m), ev.clone());
    if !req.path_args.is_empty() || !req.flags.is_empty() {
        return Err(fail(
            Error::Invalid,
            format!(
                "tool `{}` is an MCP tool: pass its arguments as the JSON body, not as pathArgs or flags",
                tool.id
            ),
            &ev,
        ));
    }
    let backend = tool
        .backend
        .as_ref()
        .ok_or_else(|| fail(Error::Internal, "MCP tool without a backend".into(), &ev))?;
    let mut args: Value = match &body {
        None => Value::Object(Default::default()),
        Some(b) if b.is_empty() => Value::Object(Default::default()),
        Some(b) => {
            let args: Value = serde_json::from_slice(b).map_err(|e| {
                fail(
                    Error::Invalid,
                    format!("the body of MCP tool `{}` must be JSON: {e}", tool.id),
                    &ev,
                )
            })?;
            // Arguments are re-encoded for the MCP server: a number that would change is
            // refused rather than rounded.
            if let Some(at) = std::str::from_utf8(b).ok().and_then(inexact_number) {
                return Err(fail(
                    Error::Invalid,
                    format!(
                        "the body of MCP tool `{}`: the number at `{}` cannot be sent exactly (beyond 64-bit integers and binary floating point); send it as a string",
                        tool.id,
                        if at.is_empty() { "/" } else { &at }
                    ),
                    &ev,
                ));
            }
            args
        }
    };
    if backend.input_wrapped {
        args = serde_json::json!({ "input": args });
    }
    let config = &snapshot.config;
    let source = config.sources.get(&backend.source_id).ok_or_else(|| {
        fail(
            Error::Unreachable,
            format!("MCP source `{}` is no longer configured", backend.source_id),
            &ev,
        )
    })?;
    // The caller's name for per-caller `headerSecrets` (`byPrincipal`).
    let principal = caller
        .principal
        .as_deref()
        .map(|p| p.on_behalf().principal());
    let authorize = || {
        crate::catalog::mcp::authorized_transport(
            &backend.source_id,
            source,
            config,
            &state.credentials,
            crate::catalog::mcp::Identity::Caller(principal.as_deref()),
        )
    };
    let refused = |m: String, ev: &Event<'static>| {
        fail(
            Error::Credentials,
            format!(
                "tool `{}`: MCP source `{}`: {m}",
                tool.id, backend.source_id
            ),
            ev,
        )
    };
    let (transport, issued) = authorize().await.map_err(|m| refused(m, &ev))?;
    ev.auth_scheme = Some(
        if issued.is_some() {
            "mcp-transport-oauth"
        } else {
            "mcp-transport"
        }
        .into(),
    );
    let mut result = crate::upstream::mcp::call_tool(&transport, &backend.tool_name, args.clone())
        .instrument(
            crate::span!("mcp", otel.kind = "client", open_cli.mcp.tool = %backend.tool_name),
        )
        .await;
    if let (Err(e), Some(i)) = (&result, &issued)
        && e.is_unauthorized()
    {
        // The server refused the token: drop it, fetch a fresh one, try once more.
        state.credentials.tokens.invalidate(i).await;
        let (transport, _) = authorize().await.map_err(|m| refused(m, &ev))?;
        ev.retry_count = 1;
        result = crate::upstream::mcp::call_tool(&transport, &backend.tool_name, args)
            .instrument(
                crate::span!("mcp", otel.kind = "client", open_cli.mcp.tool = %backend.tool_name),
            )
            .await;
    }
    let result = result.map_err(|m| {
        fail(
            Error::Unreachable,
            format!(
                "tool `{}`: MCP server `{}`: {m}",
                tool.id, backend.source_id
            ),
            &ev,
        )
    })?;
    let bytes = serde_json::to_vec(&result).unwrap_or_default();
    ev.status_code = 200;
    ev.response_size = bytes.len() as u64;
    Ok((
        ExecuteResponse {
            status_code: 200,
            body: Some(result),
            text: None,
            content_type: Some("application/json".into()),
        },
        ev,
    ))
}

/// The request's flags, each matched to a tool parameter by name or original name.
fn match_flags<'t>(
    tool: &'t Tool,
    req: &ExecuteRequest,
) -> Result<Vec<(&'t Parameter, Vec<String>)>, String> {
    let mut out: Vec<(&Parameter, Vec<String>)> = Vec::new();
    for (key, value) in &req.flags {
        let param = tool
            .flags
            .iter()
            .find(|p| p.name == *key || p.original_name == *key)
            .ok_or_else(|| {
                let known: Vec<&str> = tool.flags.iter().map(|p| p.name.as_str()).collect();
                let hint = (key.len() <= 64)
                    .then(|| open_cli_config::diag::did_you_mean(key, &known))
                    .flatten()
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                format!(
                    "tool `{}` has no flag `{key}`{hint}{}",
                    tool.id,
                    if known.is_empty() {
                        " (it takes no flags)".to_string()
                    } else {
                        format!(" (flags: {})", known.join(", "))
                    }
                )
            })?;
        if out.iter().any(|(p, _)| p.name == param.name) {
            return Err(format!(
                "flag `{}` is given twice (by name and by original name)",
                param.name
            ));
        }
        let scalar = |v: &Value| -> Result<String, String> {
            match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                Value::Bool(b) => Ok(b.to_string()),
                _ => Err(format!(
                    "flag `{key}` must be a string, number, boolean or an array of those"
                )),
            }
        };
        let values = match value {
            Value::Array(a) => a.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
            v => vec![scalar(v)?],
        };
        out.push((param, values));
    }
    let missing: Vec<&str> = tool
        .flags
        .iter()
        .filter(|p| p.required && !out.iter().any(|(q, _)| q.name == p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "tool `{}` requires flag(s): {}",
            tool.id,
            missing.join(", ")
        ));
    }
    Ok(out)
}

/// Header flags follow the pass-through's header rule (`open_cli_config::wire::check_header_flag`).
fn check_header_flags(
    tool: &Tool,
    flags: &[(&Parameter, Vec<String>)],
    keep: &[String],
) -> Result<(), String> {
    for (param, _) in flags.iter().filter(|(p, _)| p.location == "header") {
        open_cli_config::wire::check_header_flag(&param.original_name.to_ascii_lowercase(), keep)
            .map_err(|m| format!("tool `{}`, flag `{}`: {m}", tool.id, param.name))?;
    }
    Ok(())
}

/// The contract's envelope: JSON bodies as JSON, anything else as text.
pub fn envelope(status: u16, content_type: Option<String>, body: &[u8]) -> ExecuteResponse {
    let mut resp = ExecuteResponse {
        status_code: status,
        body: None,
        text: None,
        content_type: None,
    };
    if body.is_empty() {
        return resp;
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => resp.body = Some(v),
        Err(_) => resp.text = Some(String::from_utf8_lossy(body).into_owned()),
    }
    resp.content_type = content_type;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_strict_and_numbers_exact() {
        let e = decode(br#"{"toolId": "a:b", "agentprofile": "reader"}"#).unwrap_err();
        assert_eq!(e.code(), "invalid_request");
        assert!(
            e.to_string()
                .contains("unknown key `agentprofile` (did you mean `agentProfile`?)"),
            "{e}"
        );
        let r = decode(
            br#"{"toolId": "a:b", "flags": {"n": 123456789012345678901234567890, "m": [1e2, "x", true], "s": "1", "b": false}}"#,
        )
        .unwrap();
        assert_eq!(r.flags["n"], "123456789012345678901234567890");
        assert_eq!(r.flags["m"], serde_json::json!(["1e2", "x", true]));
        assert_eq!(r.flags["s"], "1");
        assert_eq!(r.flags["b"], false);
        assert!(decode(br#"{"toolId": 5}"#).is_err());
        let e = decode(br#"{"toolID": "a:b"}"#).unwrap_err();
        assert!(e.to_string().contains("(did you mean `toolId`?)"), "{e}");
        assert!(decode(b"[1]").is_err() && decode(b"\xff").is_err());
    }

    #[test]
    fn inexact_numbers_are_found_by_pointer() {
        for ok in [
            r#"{"a": 9007199254740993, "b": -0, "c": 0.1, "d": 1e2, "e": 1.50, "f": [18446744073709551615]}"#,
            r#"-9223372036854775808"#,
            r#""123456789012345678901234567890""#,
        ] {
            assert_eq!(inexact_number(ok), None, "{ok}");
        }
        assert_eq!(
            inexact_number(r#"{"x": {"a/b": [1, 123456789012345678901234567890]}}"#).as_deref(),
            Some("/x/a~1b/1")
        );
        assert_eq!(
            inexact_number("0.1000000000000000055511151231257827").as_deref(),
            Some("")
        );
        assert_eq!(inexact_number("18446744073709551616").as_deref(), Some(""));
    }

    #[test]
    fn envelope_keeps_json_as_json_and_text_as_text() {
        let e = envelope(404, Some("application/json".into()), br#"{"a":1}"#);
        assert_eq!(e.status_code, 404);
        assert_eq!(e.body, Some(serde_json::json!({"a": 1})));
        let t = envelope(200, Some("text/plain".into()), b"hello");
        assert_eq!(t.text.as_deref(), Some("hello"));
        assert_eq!(t.content_type.as_deref(), Some("text/plain"));
        let empty = envelope(204, Some("text/plain".into()), b"");
        assert!(empty.body.is_none() && empty.text.is_none() && empty.content_type.is_none());
    }
}
