//! The one path rule of both channels: which upstream paths may be sent at all.

/// Percent-decode; `None` for malformed escapes or non-UTF-8.
pub fn percent_decode(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    let b = s.as_bytes();
    // `percent_decode_str` passes malformed escapes through; they are refused here instead.
    let malformed = b.iter().enumerate().any(|(i, &c)| {
        c == b'%'
            && !b
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
    });
    if malformed {
        return None;
    }
    percent_encoding::percent_decode_str(s).decode_utf8().ok()
}

/// Why a path is unsafe, and the segment that made it so (as received).
#[derive(Debug, PartialEq, Eq)]
pub struct UnsafePath {
    pub why: &'static str,
    pub segment: String,
}

impl std::fmt::Display for UnsafePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "segment `{}`: {}", self.segment.escape_debug(), self.why)
    }
}

/// Non-ASCII code points whose NFKC form contains `.`, `/`, `\` or `;` (the characters a
/// path's meaning turns on), with that form: a server or framework that normalises a path
/// (NFKC) would read them as those characters. Sorted by code point; the unit test
/// `compatibility_table_is_complete` holds it equal to the Unicode data.
const LOOK_ALIKES: [(char, &str); 42] = [
    ('\u{37e}', ";"),
    ('\u{2024}', "."),
    ('\u{2025}', ".."),
    ('\u{2026}', "..."),
    ('\u{2100}', "a/c"),
    ('\u{2101}', "a/s"),
    ('\u{2105}', "c/o"),
    ('\u{2106}', "c/u"),
    ('\u{2488}', "1."),
    ('\u{2489}', "2."),
    ('\u{248a}', "3."),
    ('\u{248b}', "4."),
    ('\u{248c}', "5."),
    ('\u{248d}', "6."),
    ('\u{248e}', "7."),
    ('\u{248f}', "8."),
    ('\u{2490}', "9."),
    ('\u{2491}', "10."),
    ('\u{2492}', "11."),
    ('\u{2493}', "12."),
    ('\u{2494}', "13."),
    ('\u{2495}', "14."),
    ('\u{2496}', "15."),
    ('\u{2497}', "16."),
    ('\u{2498}', "17."),
    ('\u{2499}', "18."),
    ('\u{249a}', "19."),
    ('\u{249b}', "20."),
    ('\u{33c2}', "a.m."),
    ('\u{33c7}', "Co."),
    ('\u{33d8}', "p.m."),
    ('\u{fe14}', ";"),
    ('\u{fe19}', "..."),
    ('\u{fe30}', ".."),
    ('\u{fe52}', "."),
    ('\u{fe54}', ";"),
    ('\u{fe68}', "\\"),
    ('\u{ff0e}', "."),
    ('\u{ff0f}', "/"),
    ('\u{ff1b}', ";"),
    ('\u{ff3c}', "\\"),
    ('\u{1f100}', "0."),
];

/// The one path rule of both channels (the pass-through's request path after the alias, and
/// execute's path built from the tool's template and its path arguments): refuse a path that
/// could name something other than what it seems once an upstream, a framework or an
/// intermediary normalises it.
///
/// Refused, each naming the segment:
/// - dot segments (`.`, `..`) in any form: with `;` parameters (`..;x=1`, read as `..` by
///   servlet containers), percent-encoded in any case (`%2e%2E`), or in a Unicode
///   compatibility form that NFKC-normalises to dots (`．．`, `‥`, U+2024, …);
/// - empty segments (`//`, and `;…` with nothing before the parameters) except a single
///   trailing `/`: matching and forwarding then see the same segments;
/// - encoded or look-alike slashes and backslashes (`%2F`, `%5C`, `／`, `＼`), raw
///   backslashes, NUL, malformed percent-encoding.
///
/// One pass over the bytes settles the usual path (no allocation): only a path with `%`,
/// `\`, `;`, NUL, non-ASCII, `//` or a segment starting with `.` is looked at segment by
/// segment.
pub fn check_path(path: &str) -> Result<(), UnsafePath> {
    let b = path.as_bytes();
    let suspect = b.iter().enumerate().any(|(i, &c)| match c {
        b'%' | b'\\' | b';' | 0 | 0x80.. => true,
        b'.' => i == 0 || b[i - 1] == b'/',
        b'/' => i > 0 && b[i - 1] == b'/',
        _ => false,
    });
    if !suspect {
        return Ok(());
    }
    let last = path.bytes().filter(|&c| c == b'/').count();
    for (k, seg) in path.split('/').enumerate() {
        check_segment(seg, k == 0, k == last).map_err(|why| UnsafePath {
            why,
            segment: seg.to_string(),
        })?;
    }
    Ok(())
}

fn check_segment(seg: &str, first: bool, last: bool) -> Result<(), &'static str> {
    const DOT: &str = "dot segments (`.`, `..`) are not allowed, also not with `;` parameters, percent-encoded or as Unicode look-alikes";
    const EMPTY: &str = "empty path segments (`//`) are not allowed";
    if seg.is_empty() {
        // The path's leading `/`, or one trailing `/`.
        return if first || last { Ok(()) } else { Err(EMPTY) };
    }
    let decoded = if seg.contains('%') {
        percent_decode(seg).ok_or("malformed percent-encoding (or not UTF-8)")?
    } else {
        std::borrow::Cow::Borrowed(seg)
    };
    // The segment as a normalising reader sees the characters that matter: ASCII as is,
    // look-alikes as their NFKC form, anything else as a neutral letter.
    let mut seen = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if c.is_ascii() {
            seen.push(c);
        } else if let Ok(i) = LOOK_ALIKES.binary_search_by_key(&c, |&(k, _)| k) {
            seen.push_str(LOOK_ALIKES[i].1);
        } else {
            seen.push('x');
        }
    }
    if seen.contains('\0') {
        return Err("NUL is not allowed in paths");
    }
    if seen.contains(['/', '\\']) {
        return Err(
            "slashes and backslashes inside a segment (percent-encoded, raw `\\` or Unicode look-alikes) are not allowed",
        );
    }
    let head = seen.split(';').next().unwrap_or_default();
    if head == "." || head == ".." {
        return Err(DOT);
    }
    if head.is_empty() {
        return Err("path segments with `;` parameters but no name are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_name_the_segment_and_the_problem() {
        let Err(e) = check_path("/files/..;/admin") else {
            panic!("accepted");
        };
        assert_eq!(e.segment, "..;");
        assert!(e.to_string().contains("dot segments"), "{e}");
        let Err(e) = check_path("//items") else {
            panic!("accepted");
        };
        assert!(e.to_string().contains("empty path segments"), "{e}");
    }

    /// Every code point whose NFKC form contains `.`, `/`, `\` or `;` is ASCII or in
    /// `LOOK_ALIKES` with exactly that form (checked against the Unicode data of
    /// `icu_normalizer`): the table the hot path uses is complete.
    #[test]
    fn compatibility_table_is_complete() {
        let nfkc = icu_normalizer::ComposingNormalizerBorrowed::new_nfkc();
        let mut found = Vec::new();
        for c in (0x80..=0x10ffff).filter_map(char::from_u32) {
            let mut buf = [0u8; 4];
            let n = nfkc.normalize(c.encode_utf8(&mut buf));
            if n.contains(['.', '/', '\\', ';']) {
                found.push((c, n.into_owned()));
            }
        }
        let table: Vec<(char, String)> = LOOK_ALIKES
            .iter()
            .map(|&(c, s)| (c, s.to_string()))
            .collect();
        assert_eq!(found, table);
        assert!(LOOK_ALIKES.windows(2).all(|w| w[0].0 < w[1].0), "sorted");
    }
}
