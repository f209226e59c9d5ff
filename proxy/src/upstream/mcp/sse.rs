//! The 2024-11-05 HTTP+SSE transport, our own code: rmcp 3.x has no client for it (the SDK
//! removed it; its `client-side-sse` feature is the event-stream framing of streamable HTTP).
//! Kept as small as the transport allows: one short session per operation — GET the event
//! stream, wait for the `endpoint` event, POST each message there and read the answer from
//! the stream — with the version pinned to 2024-11-05, the only one this transport speaks.

use futures_util::StreamExt;
use serde_json::{Value, json};

use super::{Error, Headers, MAX_PAGES, REQUEST_TIMEOUT};
use crate::error::error_chain;

/// List every tool of a 2024-11-05 SSE server (following `nextCursor`).
pub(super) async fn list_tools(url: &str, headers: &Headers) -> Result<Vec<Value>, Error> {
    let mut session = Session::connect(url, headers).await?;
    let mut tools = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let params = match &cursor {
            Some(c) => json!({"cursor": c}),
            None => json!({}),
        };
        let page = session
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

/// Call one tool on a 2024-11-05 SSE server.
pub(super) async fn call_tool(
    url: &str,
    headers: &Headers,
    name: &str,
    arguments: Value,
) -> Result<Value, Error> {
    let mut session = Session::connect(url, headers).await?;
    session
        .request("tools/call", json!({"name": name, "arguments": arguments}))
        .await
}

struct Session {
    client: reqwest::Client,
    post_url: String,
    headers: Headers,
    events: SseReader,
    next_id: u64,
}

impl Session {
    async fn connect(url: &str, headers: &Headers) -> Result<Self, Error> {
        let client = super::http::client()?;
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
        let mut s = Self {
            client,
            post_url,
            headers: headers.clone(),
            events,
            next_id: 0,
        };
        s.request(
            "initialize",
            json!({"protocolVersion": "2024-11-05", "capabilities": {},
                   "clientInfo": {"name": "open-cli", "version": env!("CARGO_PKG_VERSION")}}),
        )
        .await
        .map_err(|e| e.context("MCP initialize failed"))?;
        s.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(s)
    }

    async fn request(&mut self, method: &str, params: Value) -> Result<Value, Error> {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
            self.send(&msg).await?;
            while let Some((_, data)) = self.events.next().await? {
                if let Some(v) = matching(&data, id) {
                    return Ok(v);
                }
            }
            Err(Error::from("the event stream ended without an answer"))
        })
        .await
        .map_err(|_| format!("no answer to `{method}` within {REQUEST_TIMEOUT:?}"))??;
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

    async fn send(&mut self, msg: &Value) -> Result<(), Error> {
        let mut req = self
            .client
            .post(self.post_url.as_str())
            .header("content-type", "application/json")
            .timeout(REQUEST_TIMEOUT)
            .body(serde_json::to_vec(msg).map_err(|e| e.to_string())?);
        for (k, v) in self.headers.iter() {
            req = req.header(k, v.expose());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", self.post_url, error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Error::http(
                status,
                format!("POST {}: HTTP {status}", self.post_url),
            ));
        }
        Ok(())
    }
}

/// The JSON-RPC answer with `id` in `text`, if that is what it is.
fn matching(text: &str, id: u64) -> Option<Value> {
    let v: Value = serde_json::from_str(text.trim()).ok()?;
    (v.get("id").and_then(Value::as_u64) == Some(id)).then_some(v)
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
