//! Injected credentials are never shadowed nor reflected (both channels share these checks).
//!
//! **Shadowing.** A caller must not send a value under the name of a credential the runtime
//! injects: many servers read the first of two equal names (query parameters, repeated header
//! fields, cookies), so the caller's value would win over the injected one, or be read where
//! the upstream looks for the key. Every injected credential's name — header, query parameter
//! or cookie, whatever its location — is one name of the tool's [`Shadow`], and the caller's
//! query parameters, header fields and cookies whose names are equal to one of them are
//! removed before the credentials are added. Names are equal after [`fold`]ing each byte
//! (ASCII case, and `_`, `-`, `.` and space as one character, as servers and CGI-style
//! gateways fold them) and, for query parameters and cookies, after percent-decoding (`+` as
//! a space in queries): `API_KEY`, `api%5Fkey`, `Api-Key` and `api.key` all name `api_key`.
//!
//! **Reflection.** An upstream that echoes the injected secret in a redirect or link
//! (`302 Location: …?api_key=<secret>`) would hand it to the caller, whose client may carry it
//! to another host. [`Shadow::redact_response`] finds every occurrence of an injected secret
//! in the `Location`, `Content-Location`, `Link` and `Refresh` response fields (as sent, and
//! percent-encoded in any case or with `+` for a space) and gives those fields with each
//! occurrence replaced by `REDACTED`, and which fields changed, for the audit record.
//!
//! The names are folded and the secrets collected once per credential resolution (for fixed
//! credentials: once per snapshot), so a request pays a byte comparison per caller field.

use std::borrow::Cow;

/// The names and secret values of one resolution's injected credentials. Its `Debug` shows
/// the names only.
#[derive(Default, Clone)]
pub struct Shadow {
    /// Folded names of every injected credential (header, query parameter, cookie).
    names: Vec<Box<[u8]>>,
    /// The injected secret values (empty ones left out).
    secrets: Vec<Box<[u8]>>,
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<Cow<'_, str>> = self
            .names
            .iter()
            .map(|n| String::from_utf8_lossy(n))
            .collect();
        f.debug_struct("Shadow")
            .field("names", &names)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// A name byte as compared: ASCII lower case, and `_`, `.` and space as `-`.
#[inline]
pub fn fold(b: u8) -> u8 {
    match b {
        b'_' | b'.' | b' ' => b'-',
        _ => b.to_ascii_lowercase(),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte at `at` percent-decoded (`%XX`), or the byte itself; and how many bytes it took.
#[inline]
fn decoded_at(s: &[u8], at: usize) -> (u8, usize) {
    if s[at] == b'%'
        && let (Some(h), Some(l)) = (
            s.get(at + 1).copied().and_then(hex),
            s.get(at + 2).copied().and_then(hex),
        )
    {
        return (h << 4 | l, 3);
    }
    (s[at], 1)
}

/// `raw` (percent-decoded, `+` as a space when `plus`) folds to `folded`.
fn same_decoded(raw: &[u8], folded: &[u8], plus: bool) -> bool {
    // Decoding only shortens a name.
    if raw.len() < folded.len() {
        return false;
    }
    let (mut i, mut j) = (0, 0);
    while i < raw.len() {
        let (mut b, n) = decoded_at(raw, i);
        if plus && n == 1 && b == b'+' {
            b = b' ';
        }
        if j >= folded.len() || fold(b) != folded[j] {
            return false;
        }
        i += n;
        j += 1;
    }
    j == folded.len()
}

/// The response fields an injected secret is removed from.
pub const REFLECTING: [http::HeaderName; 4] = [
    http::header::LOCATION,
    http::header::CONTENT_LOCATION,
    http::header::LINK,
    http::header::REFRESH,
];

/// Which [`REFLECTING`] fields a response had a secret removed from (one bit each, in order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redacted(pub u8);

impl Redacted {
    /// The changed fields' names, comma-separated (`None` when nothing was changed).
    pub fn names(self) -> Option<String> {
        (self.0 != 0).then(|| {
            REFLECTING
                .iter()
                .enumerate()
                .filter(|(i, _)| self.0 & (1 << i) != 0)
                .map(|(_, n)| n.as_str())
                .collect::<Vec<_>>()
                .join(",")
        })
    }
}

const REDACTED: &[u8] = b"REDACTED";

impl Shadow {
    /// From the injected credentials' names (any location, any case) and secret values.
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        secrets: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let mut out = Shadow::default();
        for name in names {
            let folded: Box<[u8]> = name.bytes().map(fold).collect();
            if !folded.is_empty() && !out.names.contains(&folded) {
                out.names.push(folded);
            }
        }
        for s in secrets {
            let s: Box<[u8]> = s.as_bytes().into();
            if !s.is_empty() && !out.secrets.contains(&s) {
                out.secrets.push(s);
            }
        }
        out
    }

    /// A header field named `name` shadows an injected credential.
    #[inline]
    pub fn shadows_header(&self, name: &[u8]) -> bool {
        self.names
            .iter()
            .any(|n| n.len() == name.len() && n.iter().zip(name).all(|(a, b)| *a == fold(*b)))
    }

    /// A cookie named `name` (percent-decoded) shadows an injected credential.
    pub fn shadows_cookie(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| same_decoded(name, n, false))
    }

    /// A query parameter named `name` (percent-decoded, `+` as space) shadows one.
    pub fn shadows_query(&self, name: &[u8]) -> bool {
        self.names.iter().any(|n| same_decoded(name, n, true))
    }

    /// `query` without the parameters that shadow an injected credential (`None` when none
    /// is left). Parameters are separated by `&` or `;` (servers split on either). Borrowed,
    /// without allocating, when nothing is removed.
    pub fn strip_query<'q>(&self, query: &'q str) -> Option<Cow<'q, str>> {
        let pair = |p: &str| {
            let name = p.split_once('=').map_or(p, |(n, _)| n);
            self.shadows_query(name.as_bytes())
        };
        let pieces = || query.split(['&', ';']);
        if self.names.is_empty() || !pieces().any(pair) {
            return (!query.is_empty()).then_some(Cow::Borrowed(query));
        }
        let kept = join_kept(query, b"&;", pair);
        (!kept.is_empty()).then_some(Cow::Owned(kept))
    }

    /// A `Cookie` field value without the cookies that shadow an injected credential (`;`
    /// or `,` separate them); `None` when none is left.
    pub fn strip_cookies<'c>(&self, cookie: &'c str) -> Option<Cow<'c, str>> {
        let pair = |p: &str| {
            let name = p.split_once('=').map_or(p, |(n, _)| n);
            self.shadows_cookie(name.trim().as_bytes())
        };
        if !cookie.split([';', ',']).any(pair) {
            return (!cookie.trim().is_empty()).then_some(Cow::Borrowed(cookie));
        }
        let kept = join_kept(cookie, b";,", pair).trim().to_string();
        (!kept.is_empty()).then_some(Cow::Owned(kept))
    }

    /// The [`REFLECTING`] fields of a response that hold an injected secret, with their
    /// values as they must go to the caller (every value of each such field, in order, each
    /// secret replaced by `REDACTED`); empty when there is nothing to change. One pass over
    /// the field names (standard names compare by tag), then a search only in those fields.
    pub fn redact_response(
        &self,
        headers: &http::HeaderMap,
    ) -> (Redacted, Vec<(http::HeaderName, http::HeaderValue)>) {
        let mut changed = Redacted::default();
        if self.secrets.is_empty() {
            return (changed, Vec::new());
        }
        for (name, value) in headers {
            if let Some(i) = REFLECTING.iter().position(|r| r == name)
                && changed.0 & (1 << i) == 0
                && self.redact(value.as_bytes()).is_some()
            {
                changed.0 |= 1 << i;
            }
        }
        let mut out = Vec::new();
        for (i, name) in REFLECTING.iter().enumerate() {
            if changed.0 & (1 << i) == 0 {
                continue;
            }
            for value in headers.get_all(name) {
                let clean = match self.redact(value.as_bytes()) {
                    Some(c) => http::HeaderValue::from_bytes(&c)
                        .unwrap_or_else(|_| http::HeaderValue::from_static("REDACTED")),
                    None => value.clone(),
                };
                out.push((name.clone(), clean));
            }
        }
        (changed, out)
    }

    /// `value` with every secret replaced, or `None` when it holds none.
    pub fn redact(&self, value: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        for secret in &self.secrets {
            // As sent, then percent-encoded (any mix of encoded and plain bytes).
            for decode in [false, true] {
                let current = out.as_deref().unwrap_or(value);
                if let Some(next) = replace_all(current, secret, decode) {
                    out = Some(next);
                }
            }
        }
        out
    }
}

/// `s` without the pieces (between `seps`) that `drop` selects; each kept piece keeps the
/// separator before it (the first kept one goes without).
fn join_kept(s: &str, seps: &[u8], drop: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = 0;
    let mut sep: Option<char> = None;
    let bytes = s.as_bytes();
    for end in (0..=bytes.len()).filter(|&k| k == bytes.len() || seps.contains(&bytes[k])) {
        let piece = &s[start..end];
        if !drop(piece) {
            if !out.is_empty()
                && let Some(c) = sep
            {
                out.push(c);
            }
            out.push_str(piece);
        }
        sep = bytes.get(end).map(|b| *b as char);
        start = end + 1;
    }
    out
}

/// Where `secret` ends when it starts at `at` in `value` (decoding `%XX` and `+` when
/// `decode`).
fn match_at(value: &[u8], at: usize, secret: &[u8], decode: bool) -> Option<usize> {
    let mut k = at;
    for &want in secret {
        if k >= value.len() {
            return None;
        }
        let (b, n) = if decode {
            match decoded_at(value, k) {
                (b'+', 1) if want == b' ' => (b' ', 1),
                d => d,
            }
        } else {
            (value[k], 1)
        };
        if b != want {
            return None;
        }
        k += n;
    }
    Some(k)
}

fn replace_all(value: &[u8], secret: &[u8], decode: bool) -> Option<Vec<u8>> {
    let first = secret[0];
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < value.len() {
        // A quick filter on the first byte: as is, or (decoding) a `%` or `+`.
        let b = value[i];
        let candidate = b == first || (decode && (b == b'%' || b == b'+'));
        if candidate && let Some(end) = match_at(value, i, secret, decode) {
            let o = out.get_or_insert_with(|| Vec::with_capacity(value.len()));
            o.extend_from_slice(&value[copied..i]);
            o.extend_from_slice(REDACTED);
            copied = end;
            i = end;
            continue;
        }
        i += 1;
    }
    let mut o = out?;
    o.extend_from_slice(&value[copied..]);
    Some(o)
}

/// RFC 9110 `tchar`: what a field or cookie name may hold.
pub fn token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A control character (C0, DEL): never allowed in a header name or value from a caller.
pub fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// A cookie value as sent (shared with the CLI's `--dry-run`, which shows what is sent).
pub use open_cli_config::wire::encode_cookie_value;

#[cfg(test)]
mod tests {
    use super::*;

    fn shadow() -> Shadow {
        Shadow::new(
            ["X-API-Key", "api_key", "session_key"],
            ["s3cr et/&k", "abc"],
        )
    }

    #[test]
    fn names_fold_case_separators_and_percent_encoding() {
        let s = shadow();
        for h in [
            "x-api-key",
            "X_API_Key",
            "x.api.key",
            "API-KEY",
            "Session-Key",
        ] {
            assert!(s.shadows_header(h.as_bytes()), "{h}");
        }
        for h in ["x-api-keys", "api", "x-api-ke", "authorization", "xapikey"] {
            assert!(!s.shadows_header(h.as_bytes()), "{h}");
        }
        for q in [
            "api_key",
            "API_KEY",
            "api-key",
            "api%5Fkey",
            "api%5fkey",
            "%61pi_key",
            "api+key",
            "x%2Dapi%2Dkey",
        ] {
            assert!(s.shadows_query(q.as_bytes()), "{q}");
        }
        for q in ["api_keys", "api%5", "api%5Fke", "api%255Fkey", ""] {
            assert!(!s.shadows_query(q.as_bytes()), "{q}");
        }
        assert!(s.shadows_cookie(b"Session_Key"));
        assert!(s.shadows_cookie(b"session%5Fkey"));
        assert!(!s.shadows_cookie(b"session"));
        assert!(!Shadow::default().shadows_header(b""));
    }

    #[test]
    fn shadowing_query_parameters_are_removed_and_the_rest_kept() {
        let s = shadow();
        let strip = |q: &str| s.strip_query(q).map(|c| c.into_owned());
        assert!(matches!(s.strip_query("a=1&b=2"), Some(Cow::Borrowed(_))));
        assert_eq!(strip("api_key=CALLER").as_deref(), None);
        assert_eq!(strip("").as_deref(), None);
        assert_eq!(strip("a=1&api_key=CALLER&b=2").as_deref(), Some("a=1&b=2"));
        assert_eq!(strip("API%5FKEY=x&a=1").as_deref(), Some("a=1"));
        assert_eq!(strip("a=1;api-key=x;b").as_deref(), Some("a=1;b"));
        assert_eq!(strip("api_key&a=1&x_api_key=2").as_deref(), Some("a=1"));
        assert_eq!(strip("q=api_key").as_deref(), Some("q=api_key"));
        assert_eq!(
            Shadow::default().strip_query("api_key=1").as_deref(),
            Some("api_key=1")
        );
    }

    #[test]
    fn shadowing_cookies_are_removed_and_the_rest_kept() {
        let s = shadow();
        let strip = |c: &str| s.strip_cookies(c).map(|c| c.into_owned());
        assert_eq!(strip("a=1; b=2").as_deref(), Some("a=1; b=2"));
        assert_eq!(
            strip("pref=x; session_key=INJECTED; b=2").as_deref(),
            Some("pref=x; b=2")
        );
        assert_eq!(strip("Session-Key=1").as_deref(), None);
        assert_eq!(strip("session_key=1, a=2").as_deref(), Some("a=2"));
    }

    #[test]
    fn secrets_are_redacted_as_sent_and_percent_encoded() {
        let s = shadow();
        let r = |v: &str| {
            s.redact(v.as_bytes())
                .map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(r("https://x/cb?page=2"), None);
        assert_eq!(
            r("https://x/cb?api_key=abc&n=1").as_deref(),
            Some("https://x/cb?api_key=REDACTED&n=1")
        );
        for encoded in [
            "s3cr+et%2F%26k",
            "s3cr%20et%2f%26k",
            "s3cr%20et/%26k",
            "%73%33cr et/&k",
        ] {
            assert_eq!(
                r(&format!("<https://x/?k={encoded}>; rel=next")).as_deref(),
                Some("<https://x/?k=REDACTED>; rel=next"),
                "{encoded}"
            );
        }
        assert_eq!(r("abcabc").as_deref(), Some("REDACTEDREDACTED"));
        assert_eq!(r("0; url=/x?k=ab").as_deref(), None);
        let mut h = http::HeaderMap::new();
        h.insert(http::header::LOCATION, "/a?api_key=abc".parse().unwrap());
        h.insert(http::header::REFRESH, "0; url=/b?k=abc".parse().unwrap());
        h.append(http::header::LINK, "</n>; rel=next".parse().unwrap());
        h.append(http::header::LINK, "</p>; rel=prev".parse().unwrap());
        h.insert(http::header::CONTENT_TYPE, "text/abc".parse().unwrap());
        let (done, fields) = s.redact_response(&h);
        assert_eq!(done.names().as_deref(), Some("location,refresh"));
        let shown: Vec<String> = fields
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.to_str().unwrap()))
            .collect();
        assert_eq!(
            shown,
            [
                "location: /a?api_key=REDACTED",
                "refresh: 0; url=/b?k=REDACTED"
            ],
            "only the four fields, only those with a secret"
        );
        h.append(http::header::LINK, "</x?k=abc>; rel=x".parse().unwrap());
        let (done, fields) = s.redact_response(&h);
        assert_eq!(done.names().as_deref(), Some("location,link,refresh"));
        let links: Vec<&http::HeaderValue> = fields
            .iter()
            .filter(|(n, _)| n == http::header::LINK)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            links,
            ["</n>; rel=next", "</p>; rel=prev", "</x?k=REDACTED>; rel=x"],
            "every value of a changed field, in order"
        );
        assert_eq!(
            Shadow::default().redact_response(&h),
            (Redacted::default(), Vec::new())
        );
        assert_eq!(Redacted::default().names(), None);
        assert!(!format!("{s:?}").contains("abc"));
    }

    #[test]
    fn cookie_values_are_encoded_so_they_stay_one_value() {
        assert!(matches!(
            encode_cookie_value("abc-1"),
            Cow::Borrowed("abc-1")
        ));
        assert_eq!(
            encode_cookie_value("x; session_key=INJECTED"),
            "x%3B%20session_key=INJECTED"
        );
        assert_eq!(encode_cookie_value("a,b\"c\\%é"), "a%2Cb%22c%5C%25%C3%A9");
    }
}
