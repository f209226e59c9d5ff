//! What a request's head may say on the wire (issue 15 items 5 and 6), decided once for
//! every request before it is routed: framing is resolved, never relayed, and headers that
//! would change the request's identity or meaning upstream are refused or dropped.
//!
//! - [`check_request`]: one pass over the header fields. `Content-Length` must be one field
//!   holding one decimal number (`5, 5` and repeated fields are refused, 400);
//!   `Transfer-Encoding` must be exactly `chunked` (another coding: 501; `chunked` twice or
//!   empty: 400); both together: 400; `Host` must be one valid `host[:port]` (and present on
//!   HTTP/1.1): 400; a method-override header ([`is_method_override`]): 400.
//! - [`is_identity`]: the headers by which a client could claim another address, host,
//!   scheme or URL to the upstream (`Forwarded`, `X-Real-IP`, `X-Original-URL`, …; the list
//!   is `open_cli_config::wire::IDENTITY_HEADERS`, which the config reader also uses). The
//!   pass-through drops them unless `runtime.server.passThrough.forwardHeaders` keeps them,
//!   and sets `Forwarded` and `X-Forwarded-*` itself; execute refuses header flags by those
//!   names unless kept.
//!
//! Everything here is a byte scan over fields already parsed: no allocation unless a request
//! is refused.

use bytes::Bytes;
use http::HeaderValue;
use open_cli_config::wire::codes;
use pingora::http::RequestHeader;

use crate::gateway::error::ApiError;

pub use open_cli_config::wire::{
    is_identity_header as is_identity, is_method_override_header as is_method_override,
    may_keep_header as may_keep,
};

/// Refuse a request head whose framing, `Host` or method is ambiguous (see the module docs).
/// `raw_header` gives the head as received (HTTP/1 only); it is read only when the request
/// has `Transfer-Encoding`, because Pingora drops `Content-Length` from the parsed head then.
pub fn check_request(
    req: &RequestHeader,
    raw_header: impl FnOnce() -> Option<Bytes>,
) -> Result<(), ApiError> {
    let bad = |m: String| ApiError::new(400, codes::INVALID_REQUEST, m);
    let (mut lengths, mut codings, mut hosts) = (0u32, 0u32, 0u32);
    let mut host = None;
    for (name, value) in &req.headers {
        if name == http::header::CONTENT_LENGTH {
            lengths += 1;
            let v = value.as_bytes();
            if lengths > 1 || v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
                return Err(bad(format!(
                    "Content-Length must be one field holding one decimal number; found `{}`{}",
                    shown(value),
                    if lengths > 1 { " and more" } else { "" }
                )));
            }
        } else if name == http::header::TRANSFER_ENCODING {
            codings += 1;
        } else if name == http::header::HOST {
            hosts += 1;
            host.get_or_insert(value);
        } else if is_method_override(name.as_str()) {
            return Err(bad(format!(
                "the `{name}` header is not accepted: send the request with the method it names (each method is governed as its own operation)"
            )));
        }
    }
    if hosts > 1 {
        return Err(bad("more than one Host field".into()));
    }
    match host {
        Some(h) if !valid_host(h.as_bytes()) => {
            return Err(bad(format!(
                "invalid Host `{}`: expected host[:port] (letters, digits, `-`, `.`, `_`, `~`, or a bracketed IPv6 address)",
                shown(h)
            )));
        }
        None if req.version == http::Version::HTTP_11 => {
            return Err(bad("HTTP/1.1 requests must carry a Host field".into()));
        }
        // HTTP/2 (`:authority`) or an absolute-form target: the same rule.
        None => {
            if let Some(a) = req.uri.authority()
                && !valid_host(a.as_str().as_bytes())
            {
                return Err(bad(format!(
                    "invalid authority `{}`: expected host[:port]",
                    a.as_str().escape_debug()
                )));
            }
        }
        _ => {}
    }
    if codings == 0 {
        return Ok(());
    }
    if lengths > 0 || raw_header().is_some_and(|raw| has_content_length(&raw)) {
        return Err(bad(
            "Content-Length and Transfer-Encoding together make the body's length ambiguous".into(),
        ));
    }
    let mut chunked = 0;
    for value in req.headers.get_all(http::header::TRANSFER_ENCODING) {
        for token in value.as_bytes().split(|&c| c == b',') {
            let token = token.trim_ascii();
            if token.eq_ignore_ascii_case(b"chunked") {
                chunked += 1;
            } else if !token.is_empty() {
                return Err(ApiError::new(
                    501,
                    codes::NOT_IMPLEMENTED,
                    format!(
                        "Transfer-Encoding `{}` is not supported: request bodies may only be sent `chunked` (or with Content-Length)",
                        shown(value)
                    ),
                ));
            }
        }
    }
    if chunked != 1 {
        return Err(bad(
            "Transfer-Encoding must name `chunked` exactly once".into()
        ));
    }
    Ok(())
}

/// `host[:port]`: a name of letters, digits, `-`, `.`, `_`, `~` (no list, no userinfo, no
/// path), or a bracketed IPv6 literal; a port of 1 to 5 digits.
fn valid_host(v: &[u8]) -> bool {
    let (host_ok, rest) = if let Some(inner) = v.strip_prefix(b"[") {
        match inner.iter().position(|&c| c == b']') {
            Some(end) => (
                end > 1
                    && inner[..end]
                        .iter()
                        .all(|&c| c.is_ascii_hexdigit() || c == b':' || c == b'.'),
                &inner[end + 1..],
            ),
            None => return false,
        }
    } else {
        // One table lookup per byte (this runs for every request): the name ends at the
        // first byte that is not a name byte, which must then be the port's `:` or nothing.
        let end = v
            .iter()
            .position(|&c| !HOST_NAME_BYTE[usize::from(c)])
            .unwrap_or(v.len());
        (end > 0, &v[end..])
    };
    host_ok
        && match rest {
            [] => true,
            [b':', port @ ..] => {
                (1..=5).contains(&port.len())
                    && port.iter().all(u8::is_ascii_digit)
                    && port.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')) <= 65_535
            }
            _ => false,
        }
}

/// The bytes of a host name in `Host`: letters, digits, `-`, `.`, `_`, `~`.
const HOST_NAME_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        c += 1;
    }
    t
};

/// Whether a raw HTTP/1 head has a `Content-Length` field.
fn has_content_length(raw: &[u8]) -> bool {
    const NAME: &[u8] = b"content-length:";
    raw.split(|&c| c == b'\n')
        .skip(1)
        .any(|line| line.len() >= NAME.len() && line[..NAME.len()].eq_ignore_ascii_case(NAME))
}

/// A header value for an error message: text, escaped, at most 80 characters.
fn shown(v: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(v.as_bytes());
    let mut s: String = text
        .chars()
        .take(80)
        .collect::<String>()
        .escape_debug()
        .collect();
    if text.chars().count() > 80 {
        s.push('…');
    }
    s
}

/// The runtime's `Forwarded` element (RFC 7239) for a client address, the caller's `Host`
/// and the scheme: `for=…;host=…;proto=…`, the same facts as `X-Forwarded-For`,
/// `X-Forwarded-Host` and `X-Forwarded-Proto`, with an IPv6 address bracketed and quoted and
/// a host with a port quoted (`:` is not a token character).
pub fn forwarded_value(
    client: std::net::IpAddr,
    host: Option<&HeaderValue>,
    proto: &str,
) -> Option<HeaderValue> {
    let mut v = match client {
        std::net::IpAddr::V4(ip) => format!("for={ip}"),
        std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\""),
    };
    if let Some(h) = host.and_then(|h| h.to_str().ok()) {
        let token = h
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c));
        if token {
            v.push_str(";host=");
            v.push_str(h);
        } else {
            v.push_str(";host=\"");
            v.push_str(h);
            v.push('"');
        }
    }
    v.push_str(";proto=");
    v.push_str(proto);
    HeaderValue::from_str(&v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: http::Version, fields: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/proxy/rec/items", None).unwrap();
        r.set_version(version);
        for (k, v) in fields {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    fn status(fields: &[(&str, &str)], raw: &str) -> u16 {
        let r = req(http::Version::HTTP_11, fields);
        match check_request(&r, || Some(Bytes::copy_from_slice(raw.as_bytes()))) {
            Ok(()) => 200,
            Err(e) => e.status,
        }
    }

    #[test]
    fn framing_is_one_plain_length_or_chunked_alone() {
        let h = ("host", "runtime:8765");
        for (fields, want) in [
            (vec![h], 200),
            (vec![h, ("content-length", "5")], 200),
            (vec![h, ("transfer-encoding", "chunked")], 200),
            (vec![h, ("transfer-encoding", "Chunked")], 200),
            (vec![h, ("content-length", "5, 5")], 400),
            (
                vec![h, ("content-length", "5"), ("content-length", "5")],
                400,
            ),
            (vec![h, ("content-length", "+5")], 400),
            (vec![h, ("content-length", "")], 400),
            (vec![h, ("content-length", "99999999999999999999")], 400),
            (vec![h, ("transfer-encoding", "gzip, chunked")], 501),
            (
                vec![
                    h,
                    ("transfer-encoding", "gzip"),
                    ("transfer-encoding", "chunked"),
                ],
                501,
            ),
            (vec![h, ("transfer-encoding", "chunked, chunked")], 400),
            (
                vec![
                    h,
                    ("transfer-encoding", "chunked"),
                    ("transfer-encoding", "chunked"),
                ],
                400,
            ),
            (vec![h, ("transfer-encoding", ",")], 400),
            (
                vec![h, ("transfer-encoding", "chunked"), ("content-length", "5")],
                400,
            ),
            (vec![h, ("x-http-method-override", "DELETE")], 400),
            (vec![h, ("X-Method-Override", "DELETE")], 400),
            (vec![h, ("x-http-method", "DELETE")], 400),
        ] {
            assert_eq!(status(&fields, "POST / HTTP/1.1\r\n"), want, "{fields:?}");
        }
        // Pingora drops Content-Length beside Transfer-Encoding: the raw head still shows it.
        assert_eq!(
            status(
                &[h, ("transfer-encoding", "chunked")],
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            400
        );
    }

    #[test]
    fn hosts_are_one_valid_host_and_port() {
        for good in [
            "runtime",
            "runtime:8765",
            "127.0.0.1:1",
            "[::1]:80",
            "[fe80::1]",
            "a_b.c-d~e",
        ] {
            assert_eq!(status(&[("host", good)], ""), 200, "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a,b",
            "evil.com, other",
            ":80",
            "a:",
            "a:123456",
            "a:65536",
            "a:8x",
            "[::1",
            "[]",
            "[::1]x",
            "a@b",
            "a\"b",
            "ä",
        ] {
            assert_eq!(status(&[("host", bad)], ""), 400, "{bad:?}");
        }
        assert_eq!(status(&[("host", "a"), ("host", "a")], ""), 400);
        assert_eq!(status(&[], ""), 400, "HTTP/1.1 without Host");
        let r = req(http::Version::HTTP_10, &[]);
        assert!(check_request(&r, || None).is_ok(), "HTTP/1.0 may omit Host");
    }

    #[test]
    fn identity_headers_are_classified() {
        for n in [
            "forwarded",
            "x-real-ip",
            "x-forwarded-port",
            "true-client-ip",
            "x-original-url",
            "x-rewrite-url",
            "x-host",
            // `_` for `-`: CGI-style upstreams read both as one variable.
            "x_forwarded_for",
            "x-forwarded_host",
            "x_real_ip",
            "true_client_ip",
        ] {
            assert!(is_identity(n), "{n}");
        }
        for n in [
            "accept",
            "x-request-id",
            "x-api-key",
            "x-forwarded",
            "x_forwarded",
        ] {
            assert!(!is_identity(n), "{n}");
        }
        assert!(may_keep("x-real-ip") && !may_keep("forwarded") && !may_keep("x-forwarded-for"));
        assert!(!may_keep("x_forwarded_for"));
        for n in [
            "x-http-method-override",
            "x_http_method_override",
            "x-http_method",
        ] {
            assert!(is_method_override(n), "{n}");
        }
    }

    #[test]
    fn forwarded_elements_quote_what_is_not_a_token() {
        let v = |ip: &str, host: Option<&'static str>| {
            forwarded_value(
                ip.parse().unwrap(),
                host.map(HeaderValue::from_static).as_ref(),
                "http",
            )
            .unwrap()
        };
        assert_eq!(
            v("10.0.0.1", Some("runtime")),
            "for=10.0.0.1;host=runtime;proto=http"
        );
        assert_eq!(
            v("10.0.0.1", Some("runtime:8765")),
            "for=10.0.0.1;host=\"runtime:8765\";proto=http"
        );
        assert_eq!(v("::1", None), "for=\"[::1]\";proto=http");
    }
}
