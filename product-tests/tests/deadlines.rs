//! Connection deadlines and limits (issue 15, item 7), through raw TCP connections: a
//! trickled request head or body is cut at its deadline, an idle keep-alive connection is
//! closed, and connections beyond the limit wait until one closes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use open_cli_product_tests::*;
use serde_json::json;

/// The demo API served without agent profiles (so the pass-through admits `echoBody`).
fn start(api: &TestApi, args: &[&str]) -> (Fixture, Runtime) {
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(".cli.json", &open_demo_config(json!({})));
    let rt = Runtime::try_start_in(&cfg, &fx.path().join("state"), args)
        .unwrap_or_else(|e| panic!("{e}"));
    (fx, rt)
}

fn connect(rt: &Runtime) -> TcpStream {
    let s = TcpStream::connect(rt.url.trim_start_matches("http://")).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Everything the runtime sends on `stream` until it closes it, and when (since `since`), read
/// on another thread; `None` when it did not close within `limit`.
fn until_closed(
    stream: &TcpStream,
    since: Instant,
    limit: Duration,
) -> mpsc::Receiver<Option<(Duration, Vec<u8>)>> {
    let mut reader = stream.try_clone().unwrap();
    reader.set_read_timeout(Some(limit)).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let result = loop {
            match reader.read(&mut buf) {
                Ok(0) => break Some((since.elapsed(), got)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                // A reset after the answer is a close too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    break Some((since.elapsed(), got));
                }
                Err(_) => break None,
            }
        };
        let _ = tx.send(result);
    });
    rx
}

/// Write `bytes` one piece every `every` until the runtime closes the connection (seen by
/// `closed`), at most `limit`; the close's time and what the runtime sent.
fn trickle(
    stream: &mut TcpStream,
    pieces: impl Iterator<Item = Vec<u8>>,
    every: Duration,
    closed: &mpsc::Receiver<Option<(Duration, Vec<u8>)>>,
    limit: Duration,
) -> (Duration, String) {
    let start = Instant::now();
    for piece in pieces {
        // Pacing the trickle is the point of the test; the close is waited on as a condition.
        match closed.recv_timeout(every) {
            Ok(Some((at, got))) => return (at, text(&got)),
            Ok(None) => panic!("the connection was not closed within {limit:?}"),
            Err(_) => {}
        }
        assert!(start.elapsed() < limit, "still open after {limit:?}");
        if stream.write_all(&piece).is_err() {
            break;
        }
    }
    match closed.recv_timeout(limit) {
        Ok(Some((at, got))) => (at, text(&got)),
        _ => panic!("the connection was not closed within {limit:?}"),
    }
}

/// The probe: a request head trickled one header line every two seconds was held open
/// forever (Pingora's 60 s timeout is per read). Now the whole head has 10 s by default:
/// the client gets 408 and the connection is closed at that deadline, not before.
#[test]
fn a_trickled_request_head_is_answered_408_at_the_head_deadline() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, &[]);
    let mut s = connect(&rt);
    let since = Instant::now();
    let closed = until_closed(&s, since, Duration::from_secs(40));
    // Each time the trickler sends a line, another client is answered at once: the slow one
    // holds its own connection, nothing else.
    let answered = std::cell::Cell::new(0);
    let lines = std::iter::once(b"GET /v1/runtime/info HTTP/1.1\r\nHost: x\r\n".to_vec()).chain(
        (0..).map(|i| {
            assert_eq!(rt.get("/healthz").status(), 200);
            answered.set(answered.get() + 1);
            format!("X-Trickle-{i}: {i}\r\n").into_bytes()
        }),
    );
    let (at, got) = trickle(
        &mut s,
        lines,
        Duration::from_secs(2),
        &closed,
        Duration::from_secs(30),
    );
    assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
    assert!(got.contains("\"code\":\"request_timeout\""), "{got}");
    assert!(
        at >= Duration::from_millis(9_500) && at < Duration::from_secs(15),
        "closed after {at:?}, the head deadline is 10 s"
    );
    assert!(
        answered.get() >= 3,
        "{} other requests answered",
        answered.get()
    );
}

/// A keep-alive connection waiting for its next request is closed after the idle timeout
/// (settable; the default is 60 s), after the request it served; a request head on a reused
/// connection has the head deadline from its first byte.
#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let api = TestApi::start();
    let (_fx, rt) = start(
        &api,
        &[
            "--idle-timeout-seconds",
            "2",
            "--header-timeout-seconds",
            "3",
        ],
    );
    let mut s = connect(&rt);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /v1/runtime/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.read(&mut buf).unwrap();
    let answer = text(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("connection: keep-alive"),
        "{answer}"
    );
    let since = Instant::now();
    let closed = until_closed(&s, since, Duration::from_secs(20));
    let (at, got) = match closed.recv_timeout(Duration::from_secs(20)) {
        Ok(Some(c)) => c,
        _ => panic!("the idle connection was not closed within 20 s"),
    };
    assert!(
        got.is_empty(),
        "an idle close sends nothing: {:?}",
        text(&got)
    );
    assert!(
        at >= Duration::from_millis(1_500) && at < Duration::from_secs(8),
        "closed after {at:?}, the idle timeout is 2 s"
    );

    // A reused connection: 2 s idle are allowed before the first byte, then 3 s for the head.
    let mut s = connect(&rt);
    s.write_all(b"GET /v1/runtime/info HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(text(&buf[..n]).starts_with("HTTP/1.1 200 "));
    let since = Instant::now();
    let closed = until_closed(&s, since, Duration::from_secs(30));
    let lines = std::iter::once(b"GET /v1/runtime/info HTTP/1.1\r\n".to_vec())
        .chain((0..).map(|i| format!("X-Trickle-{i}: {i}\r\n").into_bytes()));
    let (at, got) = trickle(
        &mut s,
        lines,
        Duration::from_secs(1),
        &closed,
        Duration::from_secs(20),
    );
    assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}");
    assert!(
        at >= Duration::from_millis(3_500) && at < Duration::from_secs(9),
        "closed after {at:?}: 1 s idle, then a 3 s head deadline"
    );
}

/// The probe: a body trickled slowly held the request (and its upstream connection) for as
/// long as the client liked. Now a body must arrive within 10 s plus 1 s per 1,024 bytes (by
/// default): a body trickled at one byte every two seconds is answered 408 after about 10 s,
/// on the pass-through and on the runtime's own API.
#[test]
fn a_trickled_request_body_is_cut_at_the_body_deadline() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, &[]);
    let run = |head: String| {
        let rt_url = rt.url.clone();
        std::thread::spawn(move || {
            let mut s = TcpStream::connect(rt_url.trim_start_matches("http://")).unwrap();
            s.write_all(head.as_bytes()).unwrap();
            let since = Instant::now();
            let closed = until_closed(&s, since, Duration::from_secs(40));
            let bytes = (0..100).map(|_| b"x".to_vec());
            trickle(
                &mut s,
                bytes,
                Duration::from_secs(2),
                &closed,
                Duration::from_secs(30),
            )
        })
    };
    let pass = run(
        "POST /proxy/demo/echo HTTP/1.1\r\nHost: x\r\ncontent-type: application/octet-stream\r\ncontent-length: 100\r\n\r\n"
            .to_string(),
    );
    let local = run(
        "POST /v1/tools/execute HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
            .to_string(),
    );
    for (name, h) in [("pass-through", pass), ("API", local)] {
        let (at, got) = h.join().unwrap();
        assert!(got.starts_with("HTTP/1.1 408 "), "{name}: {got:?}");
        assert!(
            got.contains("\"code\":\"request_timeout\""),
            "{name}: {got}"
        );
        assert!(
            at >= Duration::from_millis(9_500) && at < Duration::from_secs(16),
            "{name}: closed after {at:?}; the body deadline is 10 s"
        );
    }
}

/// With `--max-connections 2`, a third connection is not served while two are open (it
/// waits in the listen backlog), and is served as soon as one of them closes.
#[test]
fn connections_beyond_the_limit_wait_until_one_closes() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, &["--max-connections", "2"]);
    let request = b"GET /v1/runtime/info HTTP/1.1\r\nHost: x\r\n\r\n";
    let served = |s: &mut TcpStream, within: Duration| -> bool {
        s.set_read_timeout(Some(within)).unwrap();
        if s.write_all(request).is_err() {
            return false;
        }
        let mut buf = vec![0u8; 64 * 1024];
        matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/1.1 200 "))
    };
    // The start-up probe's connection may still hold a slot for a moment.
    let mut a = connect(&rt);
    assert!(served(&mut a, Duration::from_secs(10)));
    let mut b = connect(&rt);
    assert!(served(&mut b, Duration::from_secs(10)));
    let mut c = connect(&rt);
    assert!(
        !served(&mut c, Duration::from_secs(2)),
        "a third connection was served while two were open"
    );
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let n = c.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        text(&buf[..n])
    );
    // Still two at most: b and c are open.
    let mut d = connect(&rt);
    assert!(!served(&mut d, Duration::from_secs(1)));
    drop(b);
    drop(c);
    d.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = d.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 "));
}

/// Send `request` on a new connection; everything the runtime answers before it closes.
fn exchange(rt: &Runtime, request: &[u8]) -> String {
    let mut s = connect(rt);
    let closed = until_closed(&s, Instant::now(), Duration::from_secs(20));
    // The runtime may answer and close before the whole request is written.
    let _ = s.write_all(request);
    match closed.recv_timeout(Duration::from_secs(20)) {
        Ok(Some((_, got))) => text(&got),
        _ => panic!("no answer and close within 20 s"),
    }
}

fn head_with(fields: &[String]) -> Vec<u8> {
    let mut head = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_string();
    for f in fields {
        head.push_str(f);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The probe: a 200 KB header was served. Request heads are bounded by default (64 KiB,
/// 100 fields, a 16 KiB request line): 431 or 414 with the runtime's JSON error, and the
/// connection closed; heads within the bounds are served.
#[test]
fn request_heads_over_the_default_bounds_get_431_or_414() {
    let api = TestApi::start();
    let (_fx, rt) = start(&api, &[]);
    let big = head_with(&[format!("X-Big: {}", "a".repeat(200 * 1024))]);
    let got = exchange(&rt, &big);
    assert!(
        got.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{}",
        &got[..got.len().min(200)]
    );
    assert!(
        got.contains("\"code\":\"request_header_fields_too_large\""),
        "{got}"
    );

    let fields = |n: usize| (0..n).map(|i| format!("X-F{i}: v")).collect::<Vec<_>>();
    // Host and Connection count: 98 more make 100.
    let got = exchange(&rt, &head_with(&fields(98)));
    assert!(got.starts_with("HTTP/1.1 200 "), "{got}");
    let got = exchange(&rt, &head_with(&fields(99)));
    assert!(got.starts_with("HTTP/1.1 431 "), "{got}");

    let long = format!(
        "GET /healthz?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    let got = exchange(&rt, long.as_bytes());
    assert!(got.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{got}");
    assert!(got.contains("\"code\":\"uri_too_long\""), "{got}");
    // A request line that never ends is refused as soon as it is over the bound.
    let got = exchange(&rt, format!("GET /{}", "a".repeat(20 * 1024)).as_bytes());
    assert!(got.starts_with("HTTP/1.1 414 "), "{got}");

    let metrics = rt.get("/metrics").text().unwrap();
    for line in [
        "open_cli_edge_refusals_total{reason=\"header_fields_too_large\"} 2",
        "open_cli_edge_refusals_total{reason=\"request_line_too_long\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
}

/// The bounds are settings: `runtime.server.limits` in the config, a flag over it.
#[test]
fn head_bounds_come_from_runtime_server_limits_and_flags() {
    let api = TestApi::start();
    let fx = Fixture::new();
    fx.write("demo.openapi.yaml", &api.spec_yaml());
    let cfg = fx.write_json(
        ".cli.json",
        &open_demo_config(json!({"limits": {
            "maxHeaderBytes": 2048, "maxRequestLineBytes": 512, "maxHeaders": 20
        }})),
    );
    let rt = Runtime::try_start_in(&cfg, &fx.path().join("state"), &["--max-headers", "10"])
        .unwrap_or_else(|e| panic!("{e}"));
    let field = |n: usize| format!("X-Pad: {}", "p".repeat(n));
    assert!(exchange(&rt, &head_with(&[field(1500)])).starts_with("HTTP/1.1 200 "));
    assert!(exchange(&rt, &head_with(&[field(2100)])).starts_with("HTTP/1.1 431 "));
    let line = |n: usize| {
        format!(
            "GET /healthz?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "q".repeat(n)
        )
    };
    assert!(exchange(&rt, line(400).as_bytes()).starts_with("HTTP/1.1 200 "));
    assert!(exchange(&rt, line(600).as_bytes()).starts_with("HTTP/1.1 414 "));
    // The flag (10 fields) wins over the config (20).
    let fields: Vec<String> = (0..12).map(|i| format!("X-F{i}: v")).collect();
    assert!(exchange(&rt, &head_with(&fields)).starts_with("HTTP/1.1 431 "));
    assert!(exchange(&rt, &head_with(&fields[..8])).starts_with("HTTP/1.1 200 "));
}
