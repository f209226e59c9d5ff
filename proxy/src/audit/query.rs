//! Querying the audit log (`GET /v1/audit/events`): filters, either order, and cursor pages
//! that span the rotated (and compressed) files, in bounded memory whatever the log's size.
//!
//! **Order.** Events come in the order the writer appended them (the live file last, the
//! rotated files before it in the order their names sort). That is time order to within the
//! writer's batch window (lines of concurrent requests share a batch), which is what a
//! position can page through without reading the whole log; `since`/`until` are applied to
//! every line's own `timestamp`, so a filter never misses a line for being a little out of
//! order.
//!
//! **Cursors.** A cursor is a position: the file (named by a hash of its first line, so a
//! position in the live file stays valid when the file is rotated, renamed and compressed)
//! and a byte offset in its uncompressed text. Filters are not in the cursor: each page
//! applies the request's own filters (and the caller's principal restriction), so a cursor
//! cannot widen what its bearer sees. A cursor whose file retention has deleted is
//! [`QueryError::CursorExpired`]. In oldest-first order the last page's cursor points at the
//! end of the log, so a client that keeps it gets the events written since on its next call.
//!
//! **Files that move under a read.** Rotation renames the live file and compression replaces a
//! rotated file with its `.gz` while a query runs; a listed file that is gone (or, for the live
//! file, is another file under the same name) when it is read makes the query list the files
//! again, so no line is skipped (the audit export pages through here).
//!
//! **Cost.** Only complete lines (ending in `\n`) are read; a line is parsed only when a raw
//! byte search says its exact-match fields can match, and `since` skips a rotated file whose
//! name says it was closed before that time. Memory is one read buffer plus the page (at most
//! [`MAX_LIMIT`] lines; newest-first through a compressed file keeps a ring of at most that
//! many). `bench/audit-query.sh` measures a page over a million lines.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// The most events one page holds.
pub const MAX_LIMIT: usize = 1000;

/// Events match only if they have these values.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// `timestamp` ≥ this (normalised RFC 3339 UTC with milliseconds, as the log writes it).
    pub since: Option<String>,
    /// `timestamp` < this.
    pub until: Option<String>,
    /// `(field, value)`: the event's `field` is exactly `value`.
    pub exact: Vec<(&'static str, String)>,
}

/// The fields a filter can name exactly, as query parameters and as event fields.
pub const EXACT_FIELDS: [&str; 6] = [
    "eventType",
    "toolId",
    "principal",
    "decision",
    "requestId",
    "channel",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Oldest,
    Newest,
}

/// One page: the events' lines (JSON objects, as in the file) and where the next page starts.
#[derive(Debug, Default)]
pub struct Page {
    pub lines: Vec<Vec<u8>>,
    /// Where each line is: its file's id and its start offset, a record's stable identity
    /// (the same after rotation, renaming and compression; [`record_id`]).
    pub at: Vec<(u64, u64)>,
    pub next: Option<Cursor>,
    /// Lines that are not JSON objects (a torn line from a crash with `durability: none`):
    /// skipped and counted, never fatal.
    pub unreadable: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the cursor is not one this runtime issued")]
    BadCursor,
    #[error("the cursor was issued for order `{0}`; ask with the same order")]
    CursorOrder(&'static str),
    #[error(
        "the audit file this cursor points into has been deleted by retention; start again without a cursor"
    )]
    CursorExpired,
    #[error("cannot read the audit log ({file}): {error}")]
    Io { file: String, error: std::io::Error },
}

/// A record's identity from its position ([`Page::at`]): `<file id, hex>-<offset>`. Stable for
/// the record's life, so a receiver can drop a record sent twice.
pub fn record_id((file, offset): (u64, u64)) -> String {
    format!("{file:016x}-{offset}")
}

/// A position in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    order: Order,
    /// The file's id ([`file_id`]); 0: before the first file.
    file: u64,
    /// Oldest-first: where the next line starts. Newest-first: the start of the last line
    /// returned (the next page holds the lines before it).
    offset: u64,
}

impl Cursor {
    /// The opaque text form.
    pub fn encode(&self) -> String {
        let o = match self.order {
            Order::Oldest => 'a',
            Order::Newest => 'd',
        };
        let text = format!("1.{o}.{:x}.{}", self.file, self.offset);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(s: &str) -> Result<Self, QueryError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| QueryError::BadCursor)?;
        let text = String::from_utf8(bytes).map_err(|_| QueryError::BadCursor)?;
        let mut parts = text.split('.');
        let (Some("1"), Some(o), Some(file), Some(offset), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(QueryError::BadCursor);
        };
        let order = match o {
            "a" => Order::Oldest,
            "d" => Order::Newest,
            _ => return Err(QueryError::BadCursor),
        };
        Ok(Self {
            order,
            file: u64::from_str_radix(file, 16).map_err(|_| QueryError::BadCursor)?,
            offset: offset.parse().map_err(|_| QueryError::BadCursor)?,
        })
    }
}

/// One file of the log.
struct Source {
    path: PathBuf,
    gz: bool,
    /// For a rotated file: a time no line in it is at or after (its name's second, plus one).
    closed_before: Option<String>,
}

/// The log's files, oldest first: the rotated ones, then the live one.
fn sources(live: &Path) -> Vec<Source> {
    let name = live
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut out: Vec<Source> = super::file::rotated_files(live)
        .into_iter()
        .map(|path| {
            let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let gz = file_name.ends_with(".gz");
            let closed_before = file_name
                .strip_prefix(&name)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(closed_before);
            Source {
                path,
                gz,
                closed_before,
            }
        })
        .collect();
    out.push(Source {
        path: live.to_path_buf(),
        gz: false,
        closed_before: None,
    });
    out
}

/// `20261206T031500Z-003[.gz]` → `2026-12-06T03:15:01.000Z`.
fn closed_before(suffix: &str) -> Option<String> {
    let b = suffix.as_bytes();
    if b.len() < 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> { suffix.get(r)?.parse().ok() };
    let date = time::Date::from_calendar_date(
        digits(0..4)? as i32,
        time::Month::try_from(digits(4..6)? as u8).ok()?,
        digits(6..8)? as u8,
    )
    .ok()?;
    let t = time::Time::from_hms(
        digits(9..11)? as u8,
        digits(11..13)? as u8,
        digits(13..15)? as u8,
    )
    .ok()?;
    let at = time::PrimitiveDateTime::new(date, t).assume_utc() + time::Duration::seconds(1);
    Some(format_utc(at))
}

/// RFC 3339 UTC with milliseconds: the log's own timestamp format (text order is time order).
pub fn format_utc(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A `since`/`until` value: RFC 3339 (any offset), or an age before `now` (`90s`, `15m`,
/// `2h`, `7d`). The error names the accepted forms.
pub fn parse_time(s: &str, now: time::OffsetDateTime) -> Result<String, String> {
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(format_utc(t));
    }
    let unit = s.chars().last().unwrap_or(' ');
    let n: Option<i64> = s[..s.len() - unit.len_utf8().min(s.len())].parse().ok();
    let secs = match (n, unit) {
        (Some(n), 's') => Some(n),
        (Some(n), 'm') => n.checked_mul(60),
        (Some(n), 'h') => n.checked_mul(3600),
        (Some(n), 'd') => n.checked_mul(86_400),
        _ => None,
    };
    match secs {
        Some(secs) if secs >= 0 => now
            .checked_sub(time::Duration::seconds(secs))
            .map(format_utc)
            .ok_or_else(|| format!("`{s}` is too far back")),
        _ => Err(format!(
            "`{s}` is neither an RFC 3339 time (2026-12-06T10:00:00Z) nor an age (30s, 15m, 2h, 7d)"
        )),
    }
}

/// A file's id: FNV-1a of its first line (0 for an empty file, and never 0 otherwise).
fn file_id(first_line: &[u8]) -> u64 {
    if first_line.is_empty() {
        return 0;
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in first_line {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h.max(1)
}

/// The fields a filter looks at, borrowed from the line where no escape forces a copy.
#[derive(serde::Deserialize)]
struct Fields<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "eventType")]
    event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "toolId")]
    tool_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    principal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "requestId")]
    request_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
}

impl Fields<'_> {
    fn get(&self, field: &str) -> Option<&str> {
        match field {
            "eventType" => self.event_type.as_deref(),
            "toolId" => self.tool_id.as_deref(),
            "principal" => self.principal.as_deref(),
            "decision" => self.decision.as_deref(),
            "requestId" => self.request_id.as_deref(),
            "channel" => self.channel.as_deref(),
            _ => None,
        }
    }
}

/// A filter ready to test raw lines.
struct Matcher<'f> {
    filter: &'f Filter,
    /// `"field":"value"` as the writer spells it: a line without each of them cannot match.
    needles: Vec<memchr::memmem::Finder<'static>>,
}

enum Verdict {
    Match,
    NoMatch,
    Unreadable,
}

impl<'f> Matcher<'f> {
    fn new(filter: &'f Filter) -> Self {
        let needles = filter
            .exact
            .iter()
            .map(|(field, value)| {
                let mut n = format!("\"{field}\":").into_bytes();
                n.extend_from_slice(&serde_json::to_vec(value).unwrap_or_default());
                memchr::memmem::Finder::new(&n).into_owned()
            })
            .collect();
        Self { filter, needles }
    }

    /// `ts` is within `since`..`until`.
    fn in_range(&self, ts: &[u8]) -> bool {
        !(self
            .filter
            .since
            .as_deref()
            .is_some_and(|s| ts < s.as_bytes())
            || self
                .filter
                .until
                .as_deref()
                .is_some_and(|u| ts >= u.as_bytes()))
    }

    fn test(&self, line: &[u8]) -> Verdict {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        if body.iter().all(u8::is_ascii_whitespace) {
            return Verdict::NoMatch;
        }
        // The raw search may miss a value the writer escaped differently; the writer is ours
        // and escapes as serde_json does (a unit test in `audit` holds that).
        if self.needles.iter().any(|n| n.find(body).is_none()) {
            return if body.first() == Some(&b'{') && body.last() == Some(&b'}') {
                Verdict::NoMatch
            } else {
                Verdict::Unreadable
            };
        }
        // The writer puts `timestamp` first, in a fixed width: compared before parsing.
        const HEAD: &[u8] = b"{\"timestamp\":\"";
        if body.len() > HEAD.len() + 25
            && body.starts_with(HEAD)
            && body[HEAD.len() + 24] == b'"'
            && !self.in_range(&body[HEAD.len()..HEAD.len() + 24])
        {
            return Verdict::NoMatch;
        }
        let Ok(f) = serde_json::from_slice::<Fields<'_>>(body) else {
            return Verdict::Unreadable;
        };
        if !self.in_range(f.timestamp.as_deref().unwrap_or("").as_bytes()) {
            return Verdict::NoMatch;
        }
        for (field, want) in &self.filter.exact {
            if f.get(field) != Some(want.as_str()) {
                return Verdict::NoMatch;
            }
        }
        Verdict::Match
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> QueryError + '_ {
    move |error| QueryError::Io {
        file: path.display().to_string(),
        error,
    }
}

/// A buffered reader of a file's uncompressed text.
fn open_text(src: &Source) -> std::io::Result<Box<dyn BufRead>> {
    let f = std::fs::File::open(&src.path)?;
    Ok(if src.gz {
        Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(f),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 * 1024, f))
    })
}

/// A plain file opened for a scan, checked to be the file `id` names: the live file can be
/// renamed by a rotation after it was listed, and a new one take its name. A mismatch reads as
/// `NotFound`, so [`query`] lists the files again. (Rotated files never change in place.)
fn open_checked(src: &Source, id: u64) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::open(&src.path)?;
    let mut first = Vec::new();
    BufReader::new(&f).read_until(b'\n', &mut first)?;
    if first.last() != Some(&b'\n') {
        first.clear();
    }
    if file_id(&first) != id {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the live audit file was rotated while it was read",
        ));
    }
    Ok(f)
}

/// The id of a file (from its first complete line).
fn id_of(src: &Source) -> std::io::Result<u64> {
    let mut r = open_text(src)?;
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line)?;
    if line.last() != Some(&b'\n') {
        line.clear();
    }
    Ok(file_id(&line))
}

/// One page of events. `flush` has been done by the caller, so everything recorded before
/// the query is in the files.
pub fn query(
    live: &Path,
    filter: &Filter,
    order: Order,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<Page, QueryError> {
    // Rotation renames the live file and compression replaces a rotated file with its `.gz`
    // while a query reads: a listed file that is gone when it is read means the files are
    // listed again, never that its lines are skipped (the export reads through here).
    let mut attempts = 0;
    loop {
        match query_once(live, filter, order, limit, cursor) {
            Err(QueryError::Io { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound && attempts < 20 =>
            {
                attempts += 1;
            }
            other => return other,
        }
    }
}

fn query_once(
    live: &Path,
    filter: &Filter,
    order: Order,
    limit: usize,
    cursor: Option<Cursor>,
) -> Result<Page, QueryError> {
    if let Some(c) = cursor
        && c.order != order
    {
        return Err(QueryError::CursorOrder(match c.order {
            Order::Oldest => "oldest",
            Order::Newest => "newest",
        }));
    }
    let limit = limit.min(MAX_LIMIT);
    let files = sources(live);
    let mut ids = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let id = match id_of(f) {
            Ok(id) => Some(id),
            // No live file (moved away, not reopened yet): no lines there.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && i + 1 == files.len() => None,
            Err(e) => return Err(io_err(&f.path)(e)),
        };
        ids.push(id);
    }
    // Where to start: (index into `files`, offset), from the cursor.
    let start = match cursor {
        None => None,
        Some(c) if c.file == 0 => match order {
            Order::Oldest => None,
            // Before the first file: nothing older.
            Order::Newest => {
                return Ok(Page::default());
            }
        },
        Some(c) => {
            let i = ids
                .iter()
                .position(|id| *id == Some(c.file))
                .ok_or(QueryError::CursorExpired)?;
            Some((i, c.offset))
        }
    };
    let matcher = Matcher::new(filter);
    let mut page = Page::default();
    match order {
        Order::Oldest => {
            let (first, mut offset) = start.unwrap_or((0, 0));
            // Where the log ends so far: the next page starts there when this one is short.
            let mut end = cursor.unwrap_or(Cursor {
                order,
                file: 0,
                offset: 0,
            });
            for (i, src) in files.iter().enumerate().skip(first) {
                let Some(id) = ids[i] else {
                    offset = 0;
                    continue;
                };
                if id == 0 {
                    offset = 0;
                    continue;
                }
                // A file this page resumes in is read from the cursor on; any other is
                // skipped whole when its name says it was closed before `since`.
                let skip = offset == 0
                    && matches!((&src.closed_before, &filter.since), (Some(c), Some(s)) if c <= s);
                if skip {
                    end = Cursor {
                        order,
                        file: id,
                        offset: u64::MAX,
                    };
                    offset = 0;
                    continue;
                }
                let full = scan_forward(src, id, offset, &matcher, limit, &mut page)
                    .map_err(io_err(&src.path))?;
                end = Cursor {
                    order,
                    file: id,
                    offset: full.1,
                };
                offset = 0;
                if full.0 {
                    break;
                }
            }
            page.next = Some(end);
        }
        Order::Newest => {
            let (last, offset) = start.unwrap_or((files.len() - 1, u64::MAX));
            for i in (0..=last).rev() {
                let src = &files[i];
                let Some(id) = ids[i].filter(|id| *id != 0) else {
                    continue;
                };
                let until = if i == last { offset } else { u64::MAX };
                let need = limit - page.lines.len();
                let mut found = if src.gz {
                    scan_ring(src, until, &matcher, need, &mut page.unreadable)
                } else {
                    scan_backward(src, id, until, &matcher, need, &mut page.unreadable)
                }
                .map_err(io_err(&src.path))?;
                let full = found.len() == need;
                if full {
                    let at = found.last().map_or(0, |(o, _)| *o);
                    page.next = (at > 0 || i > 0).then_some(Cursor {
                        order,
                        file: id,
                        offset: at,
                    });
                }
                for (at, line) in found.drain(..) {
                    page.at.push((id, at));
                    page.lines.push(line);
                }
                if full {
                    break;
                }
            }
        }
    }
    Ok(page)
}

/// Oldest-first through one file from `offset`: `(page full, offset after the last line read)`.
fn scan_forward(
    src: &Source,
    id: u64,
    offset: u64,
    m: &Matcher<'_>,
    limit: usize,
    page: &mut Page,
) -> std::io::Result<(bool, u64)> {
    let (mut r, mut pos): (Box<dyn BufRead>, u64) = if src.gz {
        let mut r = open_text(src)?;
        let pos = skip(&mut r, offset)?;
        (r, pos)
    } else {
        // A plain file seeks to the position instead of reading up to it.
        let mut f = open_checked(src, id)?;
        let pos = f.seek(SeekFrom::Start(offset.min(f.metadata()?.len())))?;
        (Box::new(BufReader::with_capacity(256 * 1024, f)), pos)
    };
    let mut line = Vec::with_capacity(1024);
    loop {
        if page.lines.len() >= limit {
            return Ok((true, pos));
        }
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // The end, or a line still being written: not consumed.
            return Ok((false, pos));
        }
        let start = pos;
        pos += n as u64;
        match m.test(&line) {
            Verdict::Match => {
                line.pop();
                page.at.push((id, start));
                page.lines
                    .push(std::mem::replace(&mut line, Vec::with_capacity(1024)));
            }
            Verdict::NoMatch => {}
            Verdict::Unreadable => page.unreadable += 1,
        }
    }
}

/// Move `r` to `offset` of its text (or its end, if shorter); the position reached.
fn skip(r: &mut Box<dyn BufRead>, offset: u64) -> std::io::Result<u64> {
    if offset == 0 {
        return Ok(0);
    }
    std::io::copy(&mut r.take(offset), &mut std::io::sink())
}

/// Newest-first through a plain file, reading backwards from `until` (its end if past it):
/// up to `need` matching lines with their start offsets, newest first.
fn scan_backward(
    src: &Source,
    id: u64,
    until: u64,
    m: &Matcher<'_>,
    need: usize,
    unreadable: &mut u64,
) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    const CHUNK: u64 = 256 * 1024;
    let mut found = Vec::new();
    if need == 0 {
        return Ok(found);
    }
    let mut f = open_checked(src, id)?;
    let len = f.metadata()?.len();
    // The bytes from `base` up to `until` that are not yet split into lines.
    let mut buf: Vec<u8> = Vec::new();
    let mut base = until.min(len);
    // A last line without its newline is still being written: drop it.
    let mut trim_partial = true;
    loop {
        let read_from = base.saturating_sub(CHUNK);
        let mut chunk = vec![0; (base - read_from) as usize];
        f.seek(SeekFrom::Start(read_from))?;
        f.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&buf);
        buf = chunk;
        base = read_from;
        if trim_partial {
            match buf.iter().rposition(|b| *b == b'\n') {
                Some(nl) => {
                    buf.truncate(nl + 1);
                    trim_partial = false;
                }
                None if base == 0 => return Ok(found),
                None => continue,
            }
        }
        // Complete lines: those after the first newline in `buf` (or all, at the file start).
        let first_nl = if base == 0 {
            None
        } else {
            match buf.iter().position(|b| *b == b'\n') {
                Some(p) => Some(p),
                None => continue,
            }
        };
        let start_of_lines = first_nl.map_or(0, |p| p + 1);
        let mut stop = buf.len();
        while stop > start_of_lines {
            let from = buf[start_of_lines..stop - 1]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(start_of_lines, |p| start_of_lines + p + 1);
            let line = &buf[from..stop];
            match m.test(line) {
                Verdict::Match => {
                    found.push((base + from as u64, line[..line.len() - 1].to_vec()));
                    if found.len() == need {
                        return Ok(found);
                    }
                }
                Verdict::NoMatch => {}
                Verdict::Unreadable => *unreadable += 1,
            }
            stop = from;
        }
        buf.truncate(start_of_lines);
        if base == 0 {
            return Ok(found);
        }
    }
}

/// Newest-first through a compressed file (which reads only forwards): the last `need`
/// matches before `until`, newest first, keeping at most `need` lines.
fn scan_ring(
    src: &Source,
    until: u64,
    m: &Matcher<'_>,
    need: usize,
    unreadable: &mut u64,
) -> std::io::Result<Vec<(u64, Vec<u8>)>> {
    let mut ring: VecDeque<(u64, Vec<u8>)> = VecDeque::with_capacity(need.min(MAX_LIMIT));
    if need == 0 {
        return Ok(Vec::new());
    }
    let mut r = open_text(src)?;
    let mut pos = 0u64;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') || pos >= until {
            break;
        }
        match m.test(&line) {
            Verdict::Match => {
                if ring.len() == need {
                    ring.pop_front();
                }
                line.pop();
                ring.push_back((pos, line.clone()));
            }
            Verdict::NoMatch => {}
            Verdict::Unreadable => *unreadable += 1,
        }
        pos += n as u64;
    }
    Ok(ring.into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: &str, tool: &str, principal: &str, rid: usize) -> String {
        format!(
            r#"{{"timestamp":"{ts}","eventType":"tool_execution","toolId":"{tool}","principal":"{principal}","decision":"allowed","reasonCode":"allowed","requestId":"r{rid}","channel":"execute"}}"#
        )
    }

    fn write_gz(path: &Path, text: &str) {
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(path).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut enc, text.as_bytes()).unwrap();
        enc.finish().unwrap();
    }

    /// A log of `n` lines over two rotated files (one compressed) and the live file.
    fn log(dir: &Path, n: usize) -> PathBuf {
        let live = dir.join("audit.log");
        let names = [
            "audit.log.20261206T010000Z-000.gz",
            "audit.log.20261206T020000Z-000",
        ];
        let per = n / 3;
        for (k, file) in [names[0], names[1], "audit.log"].iter().enumerate() {
            let from = k * per;
            let to = if k == 2 { n } else { from + per };
            let mut text = String::new();
            for i in from..to {
                let ts = format!("2026-12-06T0{}:{:02}:{:02}.000Z", k, (i / 60) % 60, i % 60);
                let tool = if i % 10 == 0 { "rare" } else { "common" };
                let who = if i % 2 == 0 { "alice" } else { "bob" };
                text.push_str(&line(&ts, tool, who, i));
                text.push('\n');
            }
            let path = dir.join(file);
            if file.ends_with(".gz") {
                write_gz(&path, &text);
            } else {
                std::fs::write(&path, text).unwrap();
            }
        }
        live
    }

    fn ids(page: &Page) -> Vec<usize> {
        page.lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                v["requestId"].as_str().unwrap()[1..].parse().unwrap()
            })
            .collect()
    }

    fn all(live: &Path, filter: &Filter, order: Order, limit: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cursor = None;
        for _ in 0..10_000 {
            let page = query(live, filter, order, limit, cursor).unwrap();
            let got = ids(&page);
            out.extend(&got);
            match page.next {
                Some(c) if !got.is_empty() => cursor = Some(c),
                _ => return out,
            }
        }
        panic!("paging does not end");
    }

    #[test]
    fn pages_span_rotated_and_compressed_files_in_both_orders() {
        let dir = tempfile::tempdir().unwrap();
        let live = log(dir.path(), 300);
        let everything = Filter::default();
        for limit in [1, 7, 100, 1000] {
            assert_eq!(
                all(&live, &everything, Order::Oldest, limit),
                (0..300).collect::<Vec<_>>(),
                "oldest, limit {limit}"
            );
            assert_eq!(
                all(&live, &everything, Order::Newest, limit),
                (0..300).rev().collect::<Vec<_>>(),
                "newest, limit {limit}"
            );
        }
        let rare = Filter {
            exact: vec![("toolId", "rare".into()), ("principal", "alice".into())],
            ..Filter::default()
        };
        let want: Vec<usize> = (0..300).filter(|i| i % 10 == 0).collect();
        assert_eq!(all(&live, &rare, Order::Oldest, 3), want);
        let mut rev = want.clone();
        rev.reverse();
        assert_eq!(all(&live, &rare, Order::Newest, 3), rev);
    }

    #[test]
    fn since_and_until_filter_every_line_and_skip_closed_files() {
        let dir = tempfile::tempdir().unwrap();
        let live = log(dir.path(), 300);
        let f = Filter {
            since: Some("2026-12-06T01:01:50.000Z".into()),
            until: Some("2026-12-06T02:00:00.000Z".into()),
            ..Filter::default()
        };
        // Lines 110..200 are hour 1; from minute 1 second 50: i % 3600 ≥ 110.
        let want: Vec<usize> = (110..200).collect();
        assert_eq!(all(&live, &f, Order::Oldest, 50), want);
        let mut rev = want;
        rev.reverse();
        assert_eq!(all(&live, &f, Order::Newest, 50), rev);
    }

    #[test]
    fn an_oldest_first_cursor_at_the_end_follows_new_lines_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.log");
        std::fs::write(
            &live,
            format!("{}\n", line("2026-12-06T00:00:00.000Z", "t", "a", 0)),
        )
        .unwrap();
        let p = query(&live, &Filter::default(), Order::Oldest, 10, None).unwrap();
        assert_eq!(ids(&p), [0]);
        let end = p.next.unwrap();
        // A line still being written is not returned, and not skipped.
        let mut text = std::fs::read_to_string(&live).unwrap();
        text.push_str(&line("2026-12-06T00:00:01.000Z", "t", "a", 1));
        std::fs::write(&live, &text).unwrap();
        let p = query(&live, &Filter::default(), Order::Oldest, 10, Some(end)).unwrap();
        assert!(p.lines.is_empty());
        assert_eq!(p.next, Some(end));
        text.push('\n');
        std::fs::write(&live, &text).unwrap();
        // Rotated (renamed), and a new live file begun.
        std::fs::rename(&live, dir.path().join("audit.log.20261206T000002Z-000")).unwrap();
        std::fs::write(
            &live,
            format!("{}\n", line("2026-12-06T00:00:03.000Z", "t", "a", 2)),
        )
        .unwrap();
        let p = query(&live, &Filter::default(), Order::Oldest, 10, Some(end)).unwrap();
        assert_eq!(ids(&p), [1, 2]);
        // Deleted by retention: the cursor is expired, not silently restarted.
        std::fs::remove_file(dir.path().join("audit.log.20261206T000002Z-000")).unwrap();
        assert!(matches!(
            query(&live, &Filter::default(), Order::Oldest, 10, Some(end)),
            Err(QueryError::CursorExpired)
        ));
    }

    #[test]
    fn a_record_keeps_its_id_when_its_file_is_rotated_and_compressed() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.log");
        let text = format!(
            "{}\n{}\n",
            line("2026-12-06T00:00:00.000Z", "t", "a", 0),
            line("2026-12-06T00:00:01.000Z", "t", "a", 1)
        );
        std::fs::write(&live, &text).unwrap();
        let before = query(&live, &Filter::default(), Order::Oldest, 10, None).unwrap();
        write_gz(&dir.path().join("audit.log.20261206T000002Z-000.gz"), &text);
        std::fs::write(&live, "").unwrap();
        let after = query(&live, &Filter::default(), Order::Oldest, 10, None).unwrap();
        let newest = query(&live, &Filter::default(), Order::Newest, 10, None).unwrap();
        assert_eq!(before.at.len(), 2);
        assert_eq!(before.at, after.at);
        assert_eq!(
            newest.at.iter().rev().copied().collect::<Vec<_>>(),
            before.at
        );
        assert_ne!(record_id(before.at[0]), record_id(before.at[1]));
    }

    /// The live file renamed by a rotation after it was listed: the scan notices (the file
    /// under the name is another one) and the query lists the files again.
    #[test]
    fn a_live_file_swapped_under_a_scan_reads_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.log");
        let first = format!("{}\n", line("2026-12-06T00:00:00.000Z", "t", "a", 0));
        std::fs::write(&live, &first).unwrap();
        let src = Source {
            path: live.clone(),
            gz: false,
            closed_before: None,
        };
        let id = id_of(&src).unwrap();
        assert!(open_checked(&src, id).is_ok());
        std::fs::write(
            &live,
            format!("{}\n", line("2026-12-06T00:00:09.000Z", "t", "a", 9)),
        )
        .unwrap();
        let e = open_checked(&src, id).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn torn_lines_are_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.log");
        let text = format!(
            "{}\n{{\"timestamp\":\"2026-12-06T00:00:0\n{}\n",
            line("2026-12-06T00:00:00.000Z", "t", "a", 0),
            line("2026-12-06T00:00:02.000Z", "t", "a", 2)
        );
        std::fs::write(&live, text).unwrap();
        for order in [Order::Oldest, Order::Newest] {
            let p = query(&live, &Filter::default(), order, 10, None).unwrap();
            assert_eq!(p.lines.len(), 2);
            assert_eq!(p.unreadable, 1);
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        let c = Cursor {
            order: Order::Newest,
            file: 0xdead_beef,
            offset: 12345,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        // "2.a.1.2": another version.
        for junk in ["", "x", "Mi5hLjEuMg", "!!!"] {
            assert!(Cursor::decode(junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn times_parse_as_rfc3339_or_ages() {
        let now = time::macros::datetime!(2026-12-06 10:00:00 UTC);
        assert_eq!(
            parse_time("2026-12-06T12:00:00+02:00", now).unwrap(),
            "2026-12-06T10:00:00.000Z"
        );
        assert_eq!(parse_time("15m", now).unwrap(), "2026-12-06T09:45:00.000Z");
        assert_eq!(parse_time("2d", now).unwrap(), "2026-12-04T10:00:00.000Z");
        for bad in ["yesterday", "-5m", "5w", "", "m"] {
            assert!(parse_time(bad, now).is_err(), "{bad}");
        }
    }
}
