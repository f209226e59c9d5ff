//! MCP answers as the runtime reads them (`upstream::mcp`): JSON-RPC over streamable HTTP
//! (a JSON body, or a `text/event-stream` of events) and over the 2024-11-05 SSE transport.
//!
//! The SSE reader (`SseReader` over `SseParser`) and the JSON-RPC answer matching (`matching`)
//! are reached through the public entry points `mcp::list_tools` and `mcp::call_tool`, driven
//! against an in-process HTTP server on 127.0.0.1 that answers with the fuzz input. The
//! listed tools then go through `catalog::mcp::synthetic_document` and `openapi::tools`, as
//! in a catalog build.
//!
//! Input: a first line of flags, then the answer body.
//! - `s`: answers are `text/event-stream` (else `application/json`);
//! - `g`: the SSE transport (GET stream with a fixed `endpoint` event first, then the body;
//!   POSTs answered 202) instead of streamable HTTP;
//! - `c`: `tools/call` instead of `tools/list`;
//! - `h`: answers carry `Mcp-Session-Id` (the session is closed with DELETE);
//! - `e`: the `tools/list` / `tools/call` answer is HTTP 401 with the body;
//! - digits: the body is sent in chunks of that many bytes (default: one chunk).
//!
//! Streamable HTTP: every JSON-RPC request is answered with the whole body when it is an
//! event stream; with JSON, request k (1-based id) gets the body's k-th line (or its last).
//! The endpoint event is the server's own, so the client only ever talks to 127.0.0.1.
#![no_main]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use open_cli_config::model::McpTransportType;
use open_cli_proxy::catalog::{mcp as catalog_mcp, openapi};
use open_cli_proxy::upstream::mcp::{self, Transport};
use serde_json::{Value, json};

/// `FUZZ_SHOW=1`: print each input's outcome (to check seeds: `cargo fuzz run TARGET FILE`).
fn show() -> bool {
    static SHOW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SHOW.get_or_init(|| std::env::var_os("FUZZ_SHOW").is_some())
}

#[derive(Default, Clone)]
struct Case {
    sse: bool,
    session: bool,
    unauthorized: bool,
    chunk: usize,
    body: Vec<u8>,
}

/// A self-signed certificate without a key: the only trusted root (no TLS is ever made).
const FUZZ_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBhzCCAS2gAwIBAgIUBaO+yJSgyHHUfgSNNt0C/LUped4wCgYIKoZIzj0EAwIw\nGDEWMBQGA1UEAwwNb3Blbi1jbGktZnV6ejAgFw0yNjEyMDYwNjQ4MjZaGA8yMTI2\nMTExMjA2NDgyNlowGDEWMBQGA1UEAwwNb3Blbi1jbGktZnV6ejBZMBMGByqGSM49\nAgEGCCqGSM49AwEHA0IABCHHqsTOOL+WRrB9NXvMlPhGdl1jvHxCHI12MDjHkznH\nHSfTFA4szelaIc0Bx2zsUzfIf3tcug3NtGf1JRG0Eg2jUzBRMB0GA1UdDgQWBBTB\nG91V77JEKjoZwIR5kZz9Fs65izAfBgNVHSMEGDAWgBTBG91V77JEKjoZwIR5kZz9\nFs65izAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gAMEUCIAVQseScMZ+P\nnqTq3Jer2FSvyawimVTJc4fu3QC2WNqIAiEAp6QoR3b1FSYqu+5Slzy+HZSbvDBO\nCNGVPXFh5jaJ4GA=\n-----END CERTIFICATE-----\n";

struct Env {
    rt: tokio::runtime::Runtime,
    base: String,
    case: Arc<Mutex<Case>>,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // The HTTP client (`upstream::mcp::http_client`, one per thread since this target found
        // it was built per session) loads the system's trust store when it is made: a store of
        // one throw-away certificate (its key was discarded) keeps that cheap here too.
        let certs = std::env::temp_dir().join("open-cli-fuzz-certs");
        std::fs::create_dir_all(&certs).expect("cert dir");
        std::fs::write(certs.join("ca.pem"), FUZZ_CA).expect("cert file");
        // SAFETY: set once, before this process starts any thread of its own.
        unsafe {
            std::env::set_var("NO_PROXY", "127.0.0.1,localhost");
            std::env::set_var("SSL_CERT_FILE", certs.join("ca.pem"));
            std::env::set_var("SSL_CERT_DIR", &certs);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let case = Arc::new(Mutex::new(Case::default()));
        let shared = Arc::clone(&case);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let case = Arc::clone(&shared);
                std::thread::spawn(move || {
                    let _ = serve(conn, &case);
                });
            }
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Env { rt, base, case }
    })
}

/// One keep-alive connection: read requests, answer each from the current case.
fn serve(conn: TcpStream, case: &Mutex<Case>) -> std::io::Result<()> {
    // One write per answer, sent at once (no Nagle delay against the client's delayed ACK).
    conn.set_nodelay(true)?;
    let mut out = std::io::BufWriter::new(conn.try_clone()?);
    let mut reader = BufReader::new(conn);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length.min(1 << 20)];
        reader.read_exact(&mut body)?;
        let c = case.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let method = request_line.split(' ').next().unwrap_or_default();
        let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let id = msg.get("id").and_then(Value::as_u64);
        let session = if c.session {
            "Mcp-Session-Id: fuzz-session\r\n"
        } else {
            ""
        };
        match (method, id) {
            // The SSE transport's event stream: our endpoint first, then the input.
            ("GET", _) => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n";
                out.write_all(head.as_bytes())?;
                write_chunk(&mut out, b"event: endpoint\ndata: /messages?session=1\n\n")?;
                write_chunked(&mut out, &c.body, c.chunk)?;
                out.flush()?;
                return Ok(());
            }
            ("DELETE", _) | (_, None) => {
                out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
            }
            ("POST", Some(_)) if request_line.contains("/messages") => {
                out.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")?;
            }
            (_, Some(id)) => {
                let status = if c.unauthorized && id > 1 {
                    "401 Unauthorized"
                } else {
                    "200 OK"
                };
                let (ctype, answer): (&str, &[u8]) = if c.sse {
                    ("text/event-stream", &c.body)
                } else {
                    let lines: Vec<&[u8]> = c.body.split(|&b| b == b'\n').collect();
                    let k = usize::try_from(id - 1)
                        .unwrap_or(usize::MAX)
                        .min(lines.len() - 1);
                    ("application/json", lines[k])
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n{session}Transfer-Encoding: chunked\r\n\r\n"
                );
                out.write_all(head.as_bytes())?;
                write_chunked(&mut out, answer, c.chunk)?;
            }
        }
        out.flush()?;
    }
}

fn write_chunk(out: &mut impl Write, piece: &[u8]) -> std::io::Result<()> {
    write!(out, "{:x}\r\n", piece.len())?;
    out.write_all(piece)?;
    out.write_all(b"\r\n")
}

fn write_chunked(out: &mut impl Write, body: &[u8], chunk: usize) -> std::io::Result<()> {
    let size = if chunk == 0 { body.len().max(1) } else { chunk };
    for piece in body.chunks(size) {
        write_chunk(out, piece)?;
    }
    out.write_all(b"0\r\n\r\n")
}

fuzz_target!(|data: &[u8]| {
    let env = env();
    let (flags, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let has = |c: u8| flags.contains(&c);
    let digits: String = flags
        .iter()
        .filter(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    let case = Case {
        sse: has(b's'),
        session: has(b'h'),
        unauthorized: has(b'e'),
        chunk: digits.parse::<usize>().unwrap_or(0).min(1 << 16),
        body: body.to_vec(),
    };
    *env.case.lock().unwrap_or_else(|p| p.into_inner()) = case;
    let url = format!("{}/mcp", env.base);
    let transport = if has(b'g') {
        Transport::Sse {
            url: format!("{}/sse", env.base),
            headers: Vec::new(),
        }
    } else {
        Transport::StreamableHttp {
            url,
            headers: Vec::new(),
        }
    };
    if has(b'c') {
        let result = env
            .rt
            .block_on(mcp::call_tool(&transport, "echo", json!({"text": "hi"})));
        match result {
            Ok(v) if show() => eprintln!("tools/call: {v}"),
            Ok(_) => {}
            Err(e) => {
                let message = e.to_string();
                if show() {
                    eprintln!("tools/call failed ({:?}): {message}", e.status());
                }
            }
        }
        return;
    }
    let tools = match env.rt.block_on(mcp::list_tools(&transport)) {
        Ok(t) => t,
        Err(e) => {
            let message = e.to_string();
            if show() {
                eprintln!("tools/list failed ({:?}): {message}", e.status());
            }
            return;
        }
    };
    let disabled = vec!["disabled-tool".to_string()];
    let (doc, _warnings) = catalog_mcp::synthetic_document(
        "fuzz",
        "fuzz",
        McpTransportType::StreamableHttp,
        &tools,
        &disabled,
    );
    let set = openapi::DocSet::single("mcp://fuzz", doc);
    let mut problems = Vec::new();
    let tools = openapi::tools(&set, &openapi::ServiceRef { id: "fuzz" }, &mut problems);
    if show() {
        let catalog: Vec<&str> = tools.iter().map(|t| t.id.as_str()).collect();
        eprintln!(
            "{} tool(s) listed, catalog {catalog:?}, problems: {problems:?}",
            set.root_doc()["paths"].as_object().map_or(0, |p| p.len())
        );
    }
});
