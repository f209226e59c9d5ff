//! MCP client: enough of the Model Context Protocol to list a server's tools
//! (`tools/list`) and call them (`tools/call`, [`call_tool`]) over each transport the
//! contract names (contract §8).
//!
//! - `stdio`: spawn `command args…`; newline-delimited JSON-RPC on stdin/stdout. Messages
//!   that are not the answer (notifications, even before the `initialize` answer) are
//!   skipped. The child gets `transport.env` on top of a minimal inherited environment (PATH,
//!   HOME, LANG, LC_ALL, TMPDIR, USER) — not the runtime's whole environment, which may hold
//!   secrets; and not *only* `env` either (the reference's choice breaks servers that need
//!   PATH).
//! - `streamable-http`: POST each message with `Accept: application/json, text/event-stream`;
//!   a JSON or an SSE answer; `Mcp-Session-Id` and `MCP-Protocol-Version` carried after
//!   `initialize`; the session is closed with DELETE.
//! - `sse` (2024-11-05): GET the event stream, wait for the `endpoint` event, POST messages
//!   there and read answers from the stream.
//!
//! `tools/list` follows `nextCursor` (the reference reads only the first page). Every request
//! has a deadline; the child process is killed when the session ends.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use open_cli_config::secrets::SecretValue;

use crate::error::error_chain;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_PAGES: usize = 100;

/// Header fields sent to an MCP server. Values are [`SecretValue`]s (redacted in `Debug`):
/// static headers and resolved `headerSecrets` travel together, and either may carry a
/// credential.
pub type Headers = Vec<(String, SecretValue)>;

/// The transport settings of an MCP source, with header secrets already resolved.
#[derive(Debug, Clone)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
    },
    StreamableHttp {
        url: String,
        headers: Headers,
    },
    Sse {
        url: String,
        headers: Headers,
    },
}

/// What went wrong talking to an MCP server: the message names the step and the server's
/// answer; an HTTP status the server answered with is kept as a value ([`Error::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
    status: Option<u16>,
}

impl Error {
    /// The server answered `status`; `message` says to what.
    fn http(status: reqwest::StatusCode, message: String) -> Self {
        Self {
            message,
            status: Some(status.as_u16()),
        }
    }

    /// This error with `prefix: ` in front of its message (its status kept).
    fn context(self, prefix: &str) -> Self {
        Self {
            message: format!("{prefix}: {}", self.message),
            ..self
        }
    }

    /// The HTTP status the server answered with, if that is what failed.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The server refused the credentials (HTTP 401).
    pub fn is_unauthorized(&self) -> bool {
        self.status == Some(401)
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Self {
            message,
            status: None,
        }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

/// List every tool of an MCP server.
pub async fn list_tools(transport: &Transport) -> Result<Vec<Value>, Error> {
    let mut session = Session::connect(transport).await?;
    let result = session.list_all().await;
    session.close().await;
    result
}

/// Call one tool (`tools/call`) and return its result object (`content`, `structuredContent`,
/// `isError`). A JSON-RPC error is an `Err`.
pub async fn call_tool(
    transport: &Transport,
    name: &str,
    arguments: Value,
) -> Result<Value, Error> {
    let mut session = Session::connect(transport).await?;
    let result = session
        .request("tools/call", json!({"name": name, "arguments": arguments}))
        .await;
    session.close().await;
    result
}

// One connection per short-lived session: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
enum Conn {
    Stdio {
        child: tokio::process::Child,
        stdin: tokio::process::ChildStdin,
        lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    },
    Http {
        client: reqwest::Client,
        url: String,
        headers: Headers,
        session_id: Option<String>,
        protocol: Option<String>,
    },
    Sse {
        client: reqwest::Client,
        post_url: String,
        headers: Headers,
        events: SseReader,
    },
}

struct Session {
    conn: Conn,
    next_id: u64,
}

impl Session {
    async fn connect(t: &Transport) -> Result<Self, Error> {
        let conn = match t {
            Transport::Stdio { command, args, env } => spawn(command, args, env)?,
            Transport::StreamableHttp { url, headers } => Conn::Http {
                client: http_client()?,
                url: url.clone(),
                headers: headers.clone(),
                session_id: None,
                protocol: None,
            },
            Transport::Sse { url, headers } => connect_sse(url, headers).await?,
        };
        let mut s = Self { conn, next_id: 0 };
        let protocol = if matches!(t, Transport::Sse { .. }) {
            "2024-11-05"
        } else {
            "2025-03-26"
        };
        let init = s
            .request(
                "initialize",
                json!({"protocolVersion": protocol, "capabilities": {},
                       "clientInfo": {"name": "open-cli", "version": env!("CARGO_PKG_VERSION")}}),
            )
            .await
            .map_err(|e| e.context("MCP initialize failed"))?;
        if let Conn::Http { protocol: p, .. } = &mut s.conn {
            *p = init
                .get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        s.notify("notifications/initialized").await?;
        Ok(s)
    }

    async fn list_all(&mut self) -> Result<Vec<Value>, Error> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let page = self
                .request("tools/list", params)
                .await
                .map_err(|e| e.context("MCP tools/list failed"))?;
            let items = page
                .get("tools")
                .and_then(Value::as_array)
                .ok_or("MCP tools/list answer has no `tools` array")?;
            tools.extend(items.iter().cloned());
            cursor = page
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cursor.is_none() {
                return Ok(tools);
            }
        }
        Err(format!("MCP tools/list returned more than {MAX_PAGES} pages").into())
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(&msg, Some(id)))
            .await
            .map_err(|_| format!("no answer to `{method}` within {REQUEST_TIMEOUT:?}"))??
            .ok_or_else(|| format!("no answer to `{method}`"))?;
        if let Some(err) = answer.get("error") {
            return Err(Error::from(format!(
                "the server answered error {}: {}",
                err.get("code").unwrap_or(&Value::Null),
                err.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            )));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| format!("the answer to `{method}` has no `result`").into())
    }

    async fn notify(&mut self, method: &str) -> Result<(), Error> {
        let msg = json!({"jsonrpc": "2.0", "method": method});
        tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(&msg, None))
            .await
            .map_err(|_| format!("`{method}` was not accepted within {REQUEST_TIMEOUT:?}"))??;
        Ok(())
    }

    /// Send one message; for a request (`id`), return the matching answer.
    async fn exchange(&mut self, msg: &Value, id: Option<u64>) -> Result<Option<Value>, Error> {
        match &mut self.conn {
            Conn::Stdio {
                stdin,
                lines,
                child,
            } => {
                let mut line = serde_json::to_vec(msg).map_err(|e| e.to_string())?;
                line.push(b'\n');
                stdin
                    .write_all(&line)
                    .await
                    .map_err(|e| format!("cannot write to the MCP server: {e}"))?;
                stdin.flush().await.map_err(|e| e.to_string())?;
                let Some(id) = id else { return Ok(None) };
                loop {
                    match lines.next_line().await {
                        Ok(Some(l)) => {
                            if let Some(v) = matching(&l, id) {
                                return Ok(Some(v));
                            }
                        }
                        Ok(None) => {
                            let status = child.try_wait().ok().flatten();
                            return Err(format!(
                                "the MCP server closed its output{}",
                                status.map(|s| format!(" ({s})")).unwrap_or_default()
                            )
                            .into());
                        }
                        Err(e) => {
                            return Err(format!("cannot read from the MCP server: {e}").into());
                        }
                    }
                }
            }
            Conn::Http {
                client,
                url,
                headers,
                session_id,
                protocol,
            } => {
                let mut req = client
                    .post(url.as_str())
                    .header("accept", "application/json, text/event-stream")
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(msg).map_err(|e| e.to_string())?);
                for (k, v) in headers.iter() {
                    req = req.header(k, v.expose());
                }
                if let Some(s) = session_id.as_ref() {
                    req = req.header("mcp-session-id", s);
                }
                if let Some(p) = protocol.as_ref() {
                    req = req.header("mcp-protocol-version", p);
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {}", error_chain(&e)))?;
                let status = resp.status();
                if let Some(s) = resp
                    .headers()
                    .get("mcp-session-id")
                    .and_then(|v| v.to_str().ok())
                {
                    *session_id = Some(s.to_string());
                }
                if !status.is_success() {
                    let body = resp.text().await.unwrap_or_default();
                    return Err(Error::http(
                        status,
                        format!(
                            "POST {url}: HTTP {status}: {}",
                            body.chars().take(200).collect::<String>()
                        ),
                    ));
                }
                let Some(id) = id else { return Ok(None) };
                let sse = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.starts_with("text/event-stream"));
                if sse {
                    let mut events = SseReader::new(resp);
                    while let Some((_, data)) = events.next().await? {
                        if let Some(v) = matching(&data, id) {
                            return Ok(Some(v));
                        }
                    }
                    Err("the event stream ended without an answer".into())
                } else {
                    let body = resp.text().await.map_err(|e| error_chain(&e))?;
                    Ok(matching(&body, id))
                }
            }
            Conn::Sse {
                client,
                post_url,
                headers,
                events,
            } => {
                let mut req = client
                    .post(post_url.as_str())
                    .header("content-type", "application/json")
                    .body(serde_json::to_vec(msg).map_err(|e| e.to_string())?);
                for (k, v) in headers.iter() {
                    req = req.header(k, v.expose());
                }
                let resp = req
                    .send()
                    .await
                    .map_err(|e| format!("POST {post_url}: {}", error_chain(&e)))?;
                if !resp.status().is_success() {
                    let status = resp.status();
                    return Err(Error::http(
                        status,
                        format!("POST {post_url}: HTTP {status}"),
                    ));
                }
                let Some(id) = id else { return Ok(None) };
                while let Some((_, data)) = events.next().await? {
                    if let Some(v) = matching(&data, id) {
                        return Ok(Some(v));
                    }
                }
                Err("the event stream ended without an answer".into())
            }
        }
    }

    async fn close(self) {
        match self.conn {
            Conn::Stdio {
                mut child, stdin, ..
            } => {
                drop(stdin);
                if tokio::time::timeout(Duration::from_millis(500), child.wait())
                    .await
                    .is_err()
                {
                    let _ = child.kill().await;
                }
            }
            Conn::Http {
                client,
                url,
                headers,
                session_id: Some(sid),
                ..
            } => {
                let mut req = client.delete(url.as_str()).header("mcp-session-id", sid);
                for (k, v) in headers.iter() {
                    req = req.header(k, v.expose());
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), req.send()).await;
            }
            _ => {}
        }
    }
}

/// The JSON-RPC answer with `id` in `text`, if that is what it is.
fn matching(text: &str, id: u64) -> Option<Value> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    (v.get("id").and_then(Value::as_u64) == Some(id)).then_some(v)
}

/// The HTTP client of MCP sessions: one per thread, made on first use. Building a client loads
/// and parses the system trust store, which a client per session did for every MCP tool call
/// (found while fuzzing: most of a session's time). Per thread rather than per process: a
/// client's pooled connections are tasks of the runtime that opened them, and a catalog build
/// runs on a runtime of its own that ends with it.
fn http_client() -> Result<reqwest::Client, String> {
    thread_local! {
        static CLIENT: std::cell::OnceCell<reqwest::Client> = const { std::cell::OnceCell::new() };
    }
    CLIENT.with(|cell| {
        if let Some(c) = cell.get() {
            return Ok(c.clone());
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot create the HTTP client: {e}"))?;
        Ok(cell.get_or_init(|| client).clone())
    })
}

fn spawn(command: &str, args: &[String], env: &BTreeMap<String, String>) -> Result<Conn, String> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.args(args)
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for key in ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "USER"] {
        if let Some(v) = std::env::var_os(key) {
            cmd.env(key, v);
        }
    }
    cmd.envs(env);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start MCP server `{command}`: {e}"))?;
    let stdin = child.stdin.take().ok_or("no stdin pipe")?;
    let stdout = child.stdout.take().ok_or("no stdout pipe")?;
    Ok(Conn::Stdio {
        child,
        stdin,
        lines: BufReader::new(stdout).lines(),
    })
}

async fn connect_sse(url: &str, headers: &[(String, SecretValue)]) -> Result<Conn, Error> {
    let client = http_client()?;
    let mut req = client.get(url).header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(k, v.expose());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    if !resp.status().is_success() {
        let status = resp.status();
        return Err(Error::http(status, format!("GET {url}: HTTP {status}")));
    }
    let mut events = SseReader::new(resp);
    let endpoint = tokio::time::timeout(REQUEST_TIMEOUT, async {
        while let Some((event, data)) = events.next().await? {
            if event == "endpoint" {
                return Ok(data);
            }
        }
        Err::<String, String>("the event stream ended before an `endpoint` event".into())
    })
    .await
    .map_err(|_| format!("GET {url}: no `endpoint` event within {REQUEST_TIMEOUT:?}"))??;
    let post_url = url::Url::parse(url)
        .and_then(|u| u.join(endpoint.trim()))
        .map_err(|e| format!("bad SSE endpoint `{endpoint}`: {e}"))?
        .to_string();
    Ok(Conn::Sse {
        client,
        post_url,
        headers: headers.to_vec(),
        events,
    })
}

/// Incremental `text/event-stream` parser: yields `(event, data)`.
struct SseReader {
    stream:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    parser: SseParser,
    ready: std::collections::VecDeque<(String, String)>,
}

impl SseReader {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            stream: Box::pin(resp.bytes_stream()),
            parser: SseParser::default(),
            ready: Default::default(),
        }
    }

    async fn next(&mut self) -> Result<Option<(String, String)>, String> {
        loop {
            if let Some(ev) = self.ready.pop_front() {
                return Ok(Some(ev));
            }
            match self.stream.next().await {
                Some(Ok(chunk)) => self.parser.push(&chunk, &mut self.ready)?,
                Some(Err(e)) => return Err(format!("event stream: {}", error_chain(&e))),
                None => return Ok(None),
            }
        }
    }
}

/// The most bytes one event (its lines so far) may hold: a server that never ends an event
/// cannot make the runtime buffer without bound.
pub const MAX_SSE_EVENT_BYTES: usize = 16 << 20;

/// A `text/event-stream` parser: bytes in, `(event type, data)` out, as the SSE standard
/// frames them (WHATWG HTML, "Parsing an event stream"). Chunks may split the stream anywhere:
/// inside a UTF-8 character or between the `\r` and `\n` of a line end (lines end in CRLF,
/// LF or CR); only complete lines are decoded. Comments (`:`), `id` and `retry` are ignored;
/// an event without `data` is not dispatched; an event left incomplete at the end of the
/// stream is dropped. (The fuzz target `mcp_framing` found the earlier reader, which decoded
/// each chunk on its own, losing an answer whose CRLF was split and garbling split characters.)
#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet ended.
    line: Vec<u8>,
    /// The last byte seen ended a line with `\r`: an `\n` right after belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: Vec<String>,
    /// Bytes held for the event being read.
    held: usize,
}

impl SseParser {
    /// Read `chunk`; complete events are appended to `out`.
    pub fn push(
        &mut self,
        mut chunk: &[u8],
        out: &mut std::collections::VecDeque<(String, String)>,
    ) -> Result<(), String> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = memchr::memchr2(b'\r', b'\n', chunk) {
            self.line.extend_from_slice(&chunk[..end]);
            self.end_line(out);
            if chunk[end] == b'\r' {
                match chunk.get(end + 1) {
                    Some(b'\n') => chunk = &chunk[end + 2..],
                    Some(_) => chunk = &chunk[end + 1..],
                    None => {
                        self.after_cr = true;
                        chunk = &[];
                    }
                }
            } else {
                chunk = &chunk[end + 1..];
            }
        }
        self.line.extend_from_slice(chunk);
        if self.held + self.line.len() > MAX_SSE_EVENT_BYTES {
            return Err(format!(
                "event stream: an event is larger than {MAX_SSE_EVENT_BYTES} bytes"
            ));
        }
        Ok(())
    }

    fn end_line(&mut self, out: &mut std::collections::VecDeque<(String, String)>) {
        let line = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        if line.is_empty() {
            let event = self.event.take();
            let data = std::mem::take(&mut self.data);
            self.held = 0;
            if !data.is_empty() {
                out.push_back((event.unwrap_or_else(|| "message".into()), data.join("\n")));
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_str(), ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                self.held += value.len() + 1;
                self.data.push(value.to_string());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 401 is found from the status the server answered with, however the message was
    /// worded or prefixed on the way up, and a 401 in a message's text is not one.
    #[test]
    fn an_http_status_is_a_value_that_survives_context() {
        let e = Error::http(
            reqwest::StatusCode::UNAUTHORIZED,
            "POST http://127.0.0.1:1/mcp: HTTP 401 Unauthorized: no".into(),
        )
        .context("MCP initialize failed");
        assert!(e.is_unauthorized());
        assert_eq!(e.status(), Some(401));
        assert!(
            e.to_string().starts_with("MCP initialize failed: POST "),
            "{e}"
        );
        let text = Error::from("the server answered error -32000: HTTP 401 Unauthorized");
        assert!(!text.is_unauthorized());
        let other = Error::http(reqwest::StatusCode::FORBIDDEN, "POST x: HTTP 403".into());
        assert!(!other.is_unauthorized());
    }

    #[test]
    fn header_values_never_show_in_debug_output() {
        let t = Transport::StreamableHttp {
            url: "http://127.0.0.1:1/mcp".into(),
            headers: vec![(
                "authorization".into(),
                SecretValue::new("Bearer mcp-s3cret"),
            )],
        };
        let debug = format!("{t:?}");
        assert!(!debug.contains("mcp-s3cret"), "{debug}");
        assert!(debug.contains("authorization"), "{debug}");
    }

    fn events(parts: &[&[u8]]) -> Vec<(String, String)> {
        let mut p = SseParser::default();
        let mut out = std::collections::VecDeque::new();
        for part in parts {
            p.push(part, &mut out).unwrap();
        }
        out.into_iter().collect()
    }

    #[test]
    fn sse_events_are_split_and_joined() {
        let stream =
            ": comment\n\nevent: endpoint\ndata: /message?x=1\n\ndata: {\"a\":\ndata: 1}\n\nda";
        let want = vec![
            ("endpoint".to_string(), "/message?x=1".to_string()),
            ("message".to_string(), "{\"a\":\n1}".to_string()),
        ];
        assert_eq!(events(&[stream.as_bytes()]), want);
        // CRLF and CR line ends alike.
        let crlf = stream.replace('\n', "\r\n");
        assert_eq!(events(&[crlf.as_bytes()]), want);
        let cr = stream.replace('\n', "\r");
        assert_eq!(events(&[cr.as_bytes()]), want);
    }

    /// The regression the fuzz target `mcp_framing` found: chunks split a CRLF or a UTF-8
    /// character, and the answer was lost or garbled. Every split of the stream into two or
    /// three chunks gives the same events.
    #[test]
    fn sse_events_survive_any_split_into_chunks() {
        let stream =
            "event: message\r\ndata: {\"name\":\"café ✓\"}\r\n\r\nid: 7\r\ndata: x\r\n\r\n"
                .as_bytes();
        let want = events(&[stream]);
        assert_eq!(
            want,
            vec![
                ("message".to_string(), "{\"name\":\"café ✓\"}".to_string()),
                ("message".to_string(), "x".to_string()),
            ]
        );
        for i in 0..=stream.len() {
            assert_eq!(events(&[&stream[..i], &stream[i..]]), want, "split at {i}");
            for j in i..=stream.len() {
                assert_eq!(
                    events(&[&stream[..i], &stream[i..j], &stream[j..]]),
                    want,
                    "split at {i} and {j}"
                );
            }
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(events(&bytes), want);
    }

    #[test]
    fn an_event_that_never_ends_is_refused_at_the_bound() {
        let mut p = SseParser::default();
        let mut out = std::collections::VecDeque::new();
        let line = format!("data: {}\n", "x".repeat(1 << 20));
        let mut failed = false;
        for _ in 0..20 {
            if p.push(line.as_bytes(), &mut out).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed && out.is_empty());
        // A line that never ends too.
        let mut p = SseParser::default();
        let big = vec![b'x'; MAX_SSE_EVENT_BYTES + 1];
        assert!(p.push(&big, &mut out).is_err());
    }

    #[test]
    fn only_the_matching_answer_is_taken() {
        assert!(
            matching(
                r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#,
                1
            )
            .is_none()
        );
        assert!(matching(r#"{"jsonrpc":"2.0","id":2,"result":{}}"#, 1).is_none());
        assert!(matching(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#, 1).is_some());
        assert!(matching("not json", 1).is_none());
    }
}
