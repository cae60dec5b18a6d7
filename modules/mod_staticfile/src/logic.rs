//! The pure HTTP logic of mod_staticfile: ETag building, validator comparison, byte ranges,
//! and the decision of what to answer.
//!
//! Nothing here touches the server: values come in as plain bytes and numbers (copied out of
//! the request and the file's metadata by `lib.rs`) and a [`Plan`] comes out, so every rule can
//! be checked with table-driven tests.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Which stat fields go into the ETag (`etag.use-inode`, `etag.use-size`, `etag.use-mtime`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtagFlags {
    pub inode: bool,
    pub size: bool,
    pub mtime: bool,
}

impl EtagFlags {
    pub fn any(self) -> bool {
        self.inode || self.size || self.mtime
    }
}

/// The stat fields an ETag can be built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileStamp {
    pub inode: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
}

/// A strong ETag as lighttpd shapes it: a double-quoted decimal 32-bit hash of the enabled
/// fields. None when no field is enabled (then no ETag is sent at all).
///
/// Hashing instead of printing the fields keeps inode numbers and exact sizes out of
/// responses; the nanoseconds of the mtime are included so a file rewritten twice within one
/// second still gets a new tag.
pub fn build_etag(st: &FileStamp, flags: EtagFlags) -> Option<String> {
    let mut buf = [0u8; ETAG_MAX];
    let n = write_etag(st, flags, &mut buf)?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// The longest ETag [`write_etag`] writes: a quoted u32 in decimal.
pub const ETAG_MAX: usize = 12;

/// [`build_etag`] into `buf`, without allocating; returns its length.
pub fn write_etag(st: &FileStamp, flags: EtagFlags, buf: &mut [u8; ETAG_MAX]) -> Option<usize> {
    if !flags.any() {
        return None;
    }
    // FNV-1a over the little-endian bytes of each enabled field, in a fixed order.
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |v: u64| {
        for b in v.to_le_bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    if flags.inode {
        feed(st.inode);
    }
    if flags.size {
        feed(st.size);
    }
    if flags.mtime {
        feed(st.mtime as u64);
        feed(st.mtime_nsec as u64);
    }
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (h % 10) as u8;
        h /= 10;
        if h == 0 {
            break;
        }
    }
    let d = &digits[i..];
    buf[0] = b'"';
    buf[1..=d.len()].copy_from_slice(d);
    buf[d.len() + 1] = b'"';
    Some(d.len() + 2)
}

/// Does an `If-None-Match` value match our ETag?
///
/// `*` matches any existing representation. With `weak_ok` (a plain GET/HEAD) the weak
/// comparison applies: a `W/` prefix on either side is ignored. Without it (the request also
/// carries a Range, where only strong validators are safe) a weak tag never matches.
pub fn etag_matches(header: &[u8], etag: Option<&[u8]>, weak_ok: bool) -> bool {
    let (ours, ours_weak) = match etag {
        Some(e) => match e.strip_prefix(b"W/") {
            Some(rest) => (Some(rest), true),
            None => (Some(e), false),
        },
        None => (None, false),
    };
    let mut s = header;
    loop {
        while let [b' ' | b'\t' | b',', rest @ ..] = s {
            s = rest;
        }
        if s.is_empty() {
            return false;
        }
        if s[0] == b'*' {
            return true;
        }
        let mut weak = false;
        if let Some(rest) = s.strip_prefix(b"W/") {
            weak = true;
            s = rest;
        }
        if s.first() == Some(&b'"') {
            // An entity-tag is a quoted string without escapes: it ends at the next quote.
            let end = s[1..].iter().position(|&c| c == b'"').map(|p| p + 2);
            let Some(end) = end else {
                return false;
            };
            let tag = &s[..end];
            if ours == Some(tag) && (weak_ok || (!weak && !ours_weak)) {
                return true;
            }
            s = &s[end..];
        }
        // Skip anything malformed up to the next list element.
        while let [c, rest @ ..] = s {
            if *c == b',' {
                break;
            }
            s = rest;
        }
    }
}

/// `Last-Modified` form of a file time. Times outside what an HTTP date can express
/// (before 1970, after 9999) are clamped rather than refused: a wrong clock on a file must
/// not stop it from being served.
pub fn http_date(secs: i64) -> String {
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let secs = secs.clamp(0, MAX) as u64;
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

/// `If-Modified-Since` evaluation: true when the file counts as not modified.
///
/// The value matches when it is byte-for-byte our `Last-Modified` (the common case of a
/// client echoing it back), or when it parses as a date not earlier than the mtime. An
/// unparseable date means "modified" so that a bad header never hides new content, and so does
/// a date later than now (invalid, RFC 7232 3.3; as lighttpd): a client whose clock runs ahead
/// would otherwise be told "not modified" about every later change.
pub fn not_modified_since(ims: &[u8], last_modified: &[u8], mtime: i64) -> bool {
    if ims == last_modified {
        return true;
    }
    let Some(since) = std::str::from_utf8(ims).ok().and_then(|s| httpdate::parse_http_date(s.trim()).ok())
    else {
        return false;
    };
    if since > std::time::SystemTime::now() {
        return false;
    }
    let since = match since.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => return false,
    };
    mtime <= since
}

/// `If-Range`: the range applies only if the validator is exactly ours. A value starting with
/// a quote is an entity-tag (compared with our ETag), anything else a date (compared, as text,
/// with our Last-Modified). A weak tag never matches: it does not start with a quote.
pub fn if_range_matches(if_range: &[u8], etag: Option<&[u8]>, last_modified: Option<&[u8]>) -> bool {
    let ours = if if_range.first() == Some(&b'"') { etag } else { last_modified };
    ours.is_some_and(|v| v == if_range)
}

/// What a `Range` header asks of a representation of a given length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable Range: answer the whole representation with 200.
    Ignore,
    /// Bytes `start..=end` of each range, inside the representation, sorted, overlapping and
    /// adjacent ranges merged. One range: a plain 206; several: multipart/byteranges.
    Satisfiable(Vec<(u64, u64)>),
    /// A well-formed range set that selects nothing: 416.
    Unsatisfiable,
}

/// More ranges than this in one header are not worth a multipart answer (and cost the server
/// work for nothing): the whole file is sent instead, as RFC 9110 14.2 allows.
pub const MAX_RANGES: usize = 32;

/// Parse a `Range` header for a representation of `len` bytes.
///
/// `bytes=` ranges only: other units and any malformed range make the whole header ignored,
/// so the client gets the whole file. Ranges past the end are dropped; when none is left the
/// answer is 416. An empty representation is always sent whole, as lighttpd does.
pub fn parse_range(header: &[u8], len: u64) -> ByteRange {
    if len == 0 || header.len() < 6 || !header[..6].eq_ignore_ascii_case(b"bytes=") {
        return ByteRange::Ignore;
    }
    let specs: Vec<&[u8]> =
        header[6..].split(|&c| c == b',').map(trim_ows).filter(|s| !s.is_empty()).collect();
    if specs.is_empty() || specs.len() > MAX_RANGES {
        return ByteRange::Ignore;
    }
    let mut ranges = Vec::with_capacity(specs.len());
    for spec in specs {
        match parse_one(spec, len) {
            None => return ByteRange::Ignore,
            Some(None) => {}
            Some(Some(r)) => ranges.push(r),
        }
    }
    if ranges.is_empty() {
        return ByteRange::Unsatisfiable;
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (a, b) in ranges {
        match merged.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    ByteRange::Satisfiable(merged)
}

/// One range spec: None when malformed, Some(None) when it selects nothing.
fn parse_one(spec: &[u8], len: u64) -> Option<Option<(u64, u64)>> {
    let dash = spec.iter().position(|&c| c == b'-')?;
    let (first, last) = (trim_ows(&spec[..dash]), trim_ows(&spec[dash + 1..]));
    match (digits(first), digits(last)) {
        // "-n": the last n bytes.
        (None, Some(n)) if first.is_empty() => Some((n > 0).then(|| (len.saturating_sub(n), len - 1))),
        // "a-": from a to the end.
        (Some(a), None) if last.is_empty() => Some((a < len).then(|| (a, len - 1))),
        // "a-b": a must not exceed b; b past the end is cut to the end.
        (Some(a), Some(b)) if a <= b => Some((a < len).then(|| (a, b.min(len - 1)))),
        _ => None,
    }
}

fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&c| c != b' ' && c != b'\t').unwrap_or(s.len());
    let end = s.iter().rposition(|&c| c != b' ' && c != b'\t').map_or(start, |p| p + 1);
    &s[start..end]
}

/// A non-empty run of ASCII digits; values too large for u64 saturate (they can only mean
/// "past the end" for any real file).
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |acc, &c| acc.saturating_mul(10).saturating_add(u64::from(c - b'0'))))
}

/// The request methods mod_staticfile answers; the core deals with the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// lighttpd serves the file for a POST too (the body is ignored).
    Post,
}

impl Method {
    pub fn parse(m: &[u8]) -> Option<Method> {
        match m {
            b"GET" => Some(Method::Get),
            b"HEAD" => Some(Method::Head),
            b"POST" => Some(Method::Post),
            _ => None,
        }
    }
}

/// The request headers and facts the decision depends on.
#[derive(Clone, Copy, Debug)]
pub struct Conditions<'a> {
    pub method: Method,
    /// HTTP/1.0 requests get no range handling (lighttpd's default).
    pub http10: bool,
    pub if_none_match: Option<&'a [u8]>,
    pub if_modified_since: Option<&'a [u8]>,
    pub range: Option<&'a [u8]>,
    pub if_range: Option<&'a [u8]>,
}

/// The validators of the response, when caching is allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Validators<'a> {
    pub etag: Option<&'a [u8]>,
    pub last_modified: Option<&'a [u8]>,
    pub mtime: i64,
    /// False when the response may not be cached (no known content type): then no
    /// conditional request is evaluated, as lighttpd does.
    pub cachable: bool,
}

/// What to answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    NotModified,
    PreconditionFailed,
    /// 200 with the whole file; `body` false for HEAD.
    Full {
        body: bool,
        accept_ranges: bool,
    },
    /// 206 with bytes `start..=end`.
    Partial {
        start: u64,
        end: u64,
    },
    /// 206 multipart/byteranges with these ranges (two or more).
    Multipart(Vec<(u64, u64)>),
    /// 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Decide the answer for a regular file of `size` bytes.
pub fn plan(c: &Conditions, v: &Validators, size: u64) -> Plan {
    let get_or_head = matches!(c.method, Method::Get | Method::Head);
    if v.cachable {
        if let Some(inm) = c.if_none_match {
            // Weak comparison is fine for a whole-body GET, not when a range is requested.
            if etag_matches(inm, v.etag, c.range.is_none()) {
                return if get_or_head { Plan::NotModified } else { Plan::PreconditionFailed };
            }
        } else if let (true, Some(ims), Some(lm)) = (get_or_head, c.if_modified_since, v.last_modified) {
            if not_modified_since(ims, lm, v.mtime) {
                return Plan::NotModified;
            }
        }
    }
    let accept_ranges = get_or_head && !c.http10;
    let full = Plan::Full { body: c.method != Method::Head, accept_ranges };
    if c.method != Method::Get || c.http10 {
        return full;
    }
    let Some(range) = c.range else {
        return full;
    };
    if let Some(ir) = c.if_range {
        if !if_range_matches(ir, v.etag, v.last_modified) {
            return full;
        }
    }
    match parse_range(range, size) {
        ByteRange::Ignore => full,
        ByteRange::Satisfiable(r) if r.len() == 1 => Plan::Partial { start: r[0].0, end: r[0].1 },
        ByteRange::Satisfiable(r) => Plan::Multipart(r),
        ByteRange::Unsatisfiable => Plan::Unsatisfiable,
    }
}

/// Seconds since the epoch of a `SystemTime` (negative before 1970).
pub fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: EtagFlags = EtagFlags { inode: true, size: true, mtime: true };

    #[test]
    fn etag_shape_and_sensitivity() {
        let st = FileStamp { inode: 42, size: 12, mtime: 1_700_000_000, mtime_nsec: 5 };
        let e = build_etag(&st, ALL).expect("flags set");
        assert!(e.starts_with('"') && e.ends_with('"') && e.len() > 2);
        assert!(e[1..e.len() - 1].bytes().all(|c| c.is_ascii_digit()), "{e}");
        assert_eq!(build_etag(&st, ALL), Some(e.clone()), "deterministic");
        assert_eq!(build_etag(&st, EtagFlags { inode: false, size: false, mtime: false }), None);

        let cases: &[(FileStamp, EtagFlags, bool)] = &[
            // (changed stamp, flags, tag expected to change)
            (FileStamp { inode: 43, ..st }, ALL, true),
            (FileStamp { size: 13, ..st }, ALL, true),
            (FileStamp { mtime: st.mtime + 1, ..st }, ALL, true),
            (FileStamp { mtime_nsec: 6, ..st }, ALL, true),
            (FileStamp { inode: 43, ..st }, EtagFlags { inode: false, ..ALL }, false),
            (FileStamp { size: 13, ..st }, EtagFlags { size: false, ..ALL }, false),
            (FileStamp { mtime: 1, ..st }, EtagFlags { mtime: false, ..ALL }, false),
        ];
        for (i, (changed, flags, differs)) in cases.iter().enumerate() {
            let a = build_etag(&st, *flags);
            let b = build_etag(changed, *flags);
            assert_eq!(a != b, *differs, "case {i}");
        }
    }

    #[test]
    fn if_none_match_table() {
        let e = Some("\"123\"");
        let cases: &[(&str, Option<&str>, bool, bool)] = &[
            // (header, our etag, weak_ok, expected)
            ("\"123\"", e, true, true),
            ("\"123\"", e, false, true),
            ("W/\"123\"", e, true, true),
            ("W/\"123\"", e, false, false),
            ("\"124\"", e, true, false),
            ("\"1\", \"123\"", e, true, true),
            ("\"1\",\"2\" , W/\"123\"", e, true, true),
            ("*", e, true, true),
            ("*", None, true, true),
            ("\"1\", *", e, false, true),
            ("\"123\"", None, true, false),
            ("", e, true, false),
            ("123", e, true, false),
            ("\"12", e, true, false),
            ("garbage, \"123\"", e, true, true),
            ("\"a,b\", \"123\"", e, true, true),
            ("\"123\"", Some("W/\"123\""), true, true),
            ("\"123\"", Some("W/\"123\""), false, false),
            ("\"1234\"", e, true, false),
        ];
        for (h, ours, weak_ok, want) in cases {
            assert_eq!(
                etag_matches(h.as_bytes(), ours.map(str::as_bytes), *weak_ok),
                *want,
                "{h:?} vs {ours:?} weak_ok={weak_ok}"
            );
        }
    }

    #[test]
    fn http_date_format_and_clamp() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(i64::MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn if_modified_since_table() {
        let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
        let mtime = 784_111_777;
        let cases: &[(&str, i64, bool)] = &[
            // (If-Modified-Since, file mtime, not modified?)
            (lm, mtime, true),
            ("Sun, 06 Nov 1994 08:49:38 GMT", mtime, true),
            ("Sun, 06 Nov 1994 08:49:36 GMT", mtime, false),
            ("Sunday, 06-Nov-94 08:49:37 GMT", mtime, true),
            ("Sun Nov  6 08:49:37 1994", mtime, true),
            ("yesterday", mtime, false),
            ("Thu, 01 Jan 2099 00:00:00 GMT", mtime, false), // later than now: invalid
            ("", mtime, false),
            (lm, mtime + 10, true), // exact echo of our Last-Modified wins
        ];
        for (ims, mt, want) in cases {
            assert_eq!(not_modified_since(ims.as_bytes(), lm.as_bytes(), *mt), *want, "{ims:?} mtime={mt}");
        }
    }

    #[test]
    fn if_range_table() {
        let et = Some("\"7\"");
        let lm = Some("Sun, 06 Nov 1994 08:49:37 GMT");
        let cases: &[(&str, Option<&str>, Option<&str>, bool)] = &[
            ("\"7\"", et, lm, true),
            ("\"8\"", et, lm, false),
            ("W/\"7\"", et, lm, false),
            ("Sun, 06 Nov 1994 08:49:37 GMT", et, lm, true),
            ("Sun, 06 Nov 1994 08:49:38 GMT", et, lm, false),
            ("\"7\"", None, lm, false),
            ("Sun, 06 Nov 1994 08:49:37 GMT", et, None, false),
        ];
        for (ir, e, l, want) in cases {
            assert_eq!(
                if_range_matches(ir.as_bytes(), e.map(str::as_bytes), l.map(str::as_bytes)),
                *want,
                "{ir:?}"
            );
        }
    }

    #[test]
    fn range_table() {
        use ByteRange::*;
        let s = |start, end| Satisfiable(vec![(start, end)]);
        let cases: &[(&str, u64, ByteRange)] = &[
            ("bytes=0-0", 10, s(0, 0)),
            ("bytes=2-4", 10, s(2, 4)),
            ("bytes=2-", 10, s(2, 9)),
            ("bytes=-3", 10, s(7, 9)),
            ("bytes=-30", 10, s(0, 9)),
            ("bytes=5-100", 10, s(5, 9)),
            ("bytes=9-9", 10, s(9, 9)),
            ("BYTES=1-2", 10, s(1, 2)),
            ("bytes= 1 - 2 ", 10, s(1, 2)),
            ("bytes=1-2,", 10, s(1, 2)),
            ("bytes=0-99999999999999999999999", 10, s(0, 9)),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=99999999999999999999999-", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=4-2", 10, Ignore),
            ("bytes=abc", 10, Ignore),
            ("bytes=1-2-3", 10, Ignore),
            ("bytes=-", 10, Ignore),
            ("bytes=", 10, Ignore),
            ("bytes=+1-2", 10, Ignore),
            ("bytes=0-1,3-4", 10, Satisfiable(vec![(0, 1), (3, 4)])),
            ("bytes=3-4,0-1", 10, Satisfiable(vec![(0, 1), (3, 4)])),
            ("bytes=0-3,2-5,7-", 10, Satisfiable(vec![(0, 5), (7, 9)])),
            ("bytes=0-1,2-3", 10, s(0, 3)),
            ("bytes=0-1,20-30", 10, s(0, 1)),
            ("bytes=20-30,40-", 10, Unsatisfiable),
            ("bytes=0-1,x", 10, Ignore),
            ("items=0-1", 10, Ignore),
            ("bytes", 10, Ignore),
            ("bytes=0-1", 0, Ignore),
            ("bytes=-5", 0, Ignore),
        ];
        for (h, len, want) in cases {
            assert_eq!(parse_range(h.as_bytes(), *len), *want, "{h:?} len={len}");
        }
        let many = format!(
            "bytes={}",
            (0..=MAX_RANGES).map(|i| format!("{}-{}", i * 3, i * 3)).collect::<Vec<_>>().join(",")
        );
        assert_eq!(parse_range(many.as_bytes(), 1000), Ignore, "too many ranges");
        {}
    }

    #[test]
    fn plan_table() {
        let etag = "\"99\"".to_string();
        let lm = http_date(1_000_000);
        let v = Validators {
            etag: Some(etag.as_bytes()),
            last_modified: Some(lm.as_bytes()),
            mtime: 1_000_000,
            cachable: true,
        };
        let uncachable = Validators { cachable: false, ..v };
        let base = Conditions {
            method: Method::Get,
            http10: false,
            if_none_match: None,
            if_modified_since: None,
            range: None,
            if_range: None,
        };
        let full = Plan::Full { body: true, accept_ranges: true };
        let later = http_date(2_000_000);
        let earlier = http_date(10);
        let cases: Vec<(&str, Conditions, &Validators, Plan)> = vec![
            ("plain GET", base, &v, full.clone()),
            (
                "HEAD",
                Conditions { method: Method::Head, ..base },
                &v,
                Plan::Full { body: false, accept_ranges: true },
            ),
            (
                "POST",
                Conditions { method: Method::Post, ..base },
                &v,
                Plan::Full { body: true, accept_ranges: false },
            ),
            (
                "HTTP/1.0",
                Conditions { http10: true, ..base },
                &v,
                Plan::Full { body: true, accept_ranges: false },
            ),
            ("INM match", Conditions { if_none_match: Some(etag.as_bytes()), ..base }, &v, Plan::NotModified),
            (
                "INM weak match",
                Conditions { if_none_match: Some(b"W/\"99\""), ..base },
                &v,
                Plan::NotModified,
            ),
            (
                "INM weak + Range",
                Conditions { if_none_match: Some(b"W/\"99\""), range: Some(b"bytes=0-1"), ..base },
                &v,
                Plan::Partial { start: 0, end: 1 },
            ),
            ("INM star", Conditions { if_none_match: Some(b"*"), ..base }, &v, Plan::NotModified),
            (
                "INM HEAD",
                Conditions { method: Method::Head, if_none_match: Some(b"*"), ..base },
                &v,
                Plan::NotModified,
            ),
            (
                "INM POST",
                Conditions { method: Method::Post, if_none_match: Some(b"*"), ..base },
                &v,
                Plan::PreconditionFailed,
            ),
            ("INM no match", Conditions { if_none_match: Some(b"\"1\""), ..base }, &v, full.clone()),
            (
                "INM no match beats IMS",
                Conditions { if_none_match: Some(b"\"1\""), if_modified_since: Some(lm.as_bytes()), ..base },
                &v,
                full.clone(),
            ),
            (
                "IMS equal",
                Conditions { if_modified_since: Some(lm.as_bytes()), ..base },
                &v,
                Plan::NotModified,
            ),
            (
                "IMS later",
                Conditions { if_modified_since: Some(later.as_bytes()), ..base },
                &v,
                Plan::NotModified,
            ),
            (
                "IMS earlier",
                Conditions { if_modified_since: Some(earlier.as_bytes()), ..base },
                &v,
                full.clone(),
            ),
            (
                "IMS POST ignored",
                Conditions { method: Method::Post, if_modified_since: Some(lm.as_bytes()), ..base },
                &v,
                Plan::Full { body: true, accept_ranges: false },
            ),
            (
                "uncachable ignores INM",
                Conditions { if_none_match: Some(b"*"), ..base },
                &uncachable,
                full.clone(),
            ),
            (
                "range",
                Conditions { range: Some(b"bytes=2-4"), ..base },
                &v,
                Plan::Partial { start: 2, end: 4 },
            ),
            (
                "range suffix",
                Conditions { range: Some(b"bytes=-2"), ..base },
                &v,
                Plan::Partial { start: 98, end: 99 },
            ),
            ("range 416", Conditions { range: Some(b"bytes=100-"), ..base }, &v, Plan::Unsatisfiable),
            ("range malformed", Conditions { range: Some(b"bytes=x"), ..base }, &v, full.clone()),
            (
                "range multi",
                Conditions { range: Some(b"bytes=0-1,5-6"), ..base },
                &v,
                Plan::Multipart(vec![(0, 1), (5, 6)]),
            ),
            (
                "range on HEAD",
                Conditions { method: Method::Head, range: Some(b"bytes=0-1"), ..base },
                &v,
                Plan::Full { body: false, accept_ranges: true },
            ),
            (
                "range on HTTP/1.0",
                Conditions { http10: true, range: Some(b"bytes=0-1"), ..base },
                &v,
                Plan::Full { body: true, accept_ranges: false },
            ),
            (
                "If-Range etag ok",
                Conditions { range: Some(b"bytes=0-1"), if_range: Some(etag.as_bytes()), ..base },
                &v,
                Plan::Partial { start: 0, end: 1 },
            ),
            (
                "If-Range date ok",
                Conditions { range: Some(b"bytes=0-1"), if_range: Some(lm.as_bytes()), ..base },
                &v,
                Plan::Partial { start: 0, end: 1 },
            ),
            (
                "If-Range stale",
                Conditions { range: Some(b"bytes=0-1"), if_range: Some(b"\"1\""), ..base },
                &v,
                full.clone(),
            ),
            (
                "If-Range stale date",
                Conditions { range: Some(b"bytes=0-1"), if_range: Some(earlier.as_bytes()), ..base },
                &v,
                full.clone(),
            ),
        ];
        for (name, c, v, want) in cases {
            assert_eq!(plan(&c, v, 100), want, "{name}");
        }
    }

    #[test]
    fn methods() {
        assert_eq!(Method::parse(b"GET"), Some(Method::Get));
        assert_eq!(Method::parse(b"HEAD"), Some(Method::Head));
        assert_eq!(Method::parse(b"POST"), Some(Method::Post));
        assert_eq!(Method::parse(b"get"), None);
        assert_eq!(Method::parse(b"PUT"), None);
        assert_eq!(Method::parse(b"OPTIONS"), None);
    }

    #[test]
    fn unix_secs_signs() {
        assert_eq!(unix_secs(UNIX_EPOCH + Duration::from_secs(5)), 5);
        assert_eq!(unix_secs(UNIX_EPOCH - Duration::from_secs(5)), -5);
    }
}
