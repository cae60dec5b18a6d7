//! Request-target handling: split path and query, percent-decode, and normalise the path so
//! that what modules and the file system see has no dot-segments, no empty segments, no NUL
//! and no control characters. The normalised path always starts with '/' and can be appended
//! to a document root without leaving it.

/// How `%2F` (an encoded '/') in a path is treated (`server.http-parseopts`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SlashPolicy {
    /// Keep it as the three characters `%2F` in the decoded path (lighttpd's default): it can
    /// then never create a path separator.
    #[default]
    Keep,
    /// Decode to '/'.
    Decode,
    /// Refuse the request with 400.
    Reject,
}

/// Options for [`normalize_path`], from `server.http-parseopts`.
#[derive(Clone, Copy, Debug)]
pub struct UrlOpts {
    pub slash: SlashPolicy,
    /// Remove `.` and `..` segments (else reject them).
    pub dotseg_remove: bool,
    /// Reject control characters in the raw target.
    pub ctrls_reject: bool,
    /// `url-path-backslash-trans`: a raw `\` in the path is a `/`.
    pub backslash_trans: bool,
    /// `url-invalid-utf8-reject`: a path that is not UTF-8 once decoded is refused.
    pub utf8_reject: bool,
    /// `url-query-20-plus`: `%20` in the query becomes `+`.
    pub query_20_plus: bool,
}

impl Default for UrlOpts {
    fn default() -> Self {
        UrlOpts {
            slash: SlashPolicy::Keep,
            dotseg_remove: true,
            ctrls_reject: true,
            backslash_trans: false,
            utf8_reject: false,
            query_20_plus: false,
        }
    }
}

/// Split a request target (origin form) into raw path and query (without '?'), dropping any
/// fragment.
pub fn split_target(target: &[u8]) -> (&[u8], Option<&[u8]>) {
    let t = match target.iter().position(|&b| b == b'#') {
        Some(i) => &target[..i],
        None => target,
    };
    match t.iter().position(|&b| b == b'?') {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
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

/// Percent-decode `%XX` sequences. Returns None on a malformed escape.
pub fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let h = hex(*s.get(i + 1)?)?;
            let l = hex(*s.get(i + 2)?)?;
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether `raw` (starting with '/') is already normal: no escape, no control character, no
/// byte the options want checked, and no empty or dot segment (no '/' followed by '/' or '.',
/// which also keeps "/.htaccess" on the careful path). Most requests are.
fn is_plain(raw: &[u8], opts: &UrlOpts) -> bool {
    let mut prev_slash = false;
    for &c in raw {
        match c {
            b'%' | 0..=0x1f | 0x7f => return false,
            b'\\' if opts.backslash_trans => return false,
            0x80.. if opts.utf8_reject => return false,
            b'/' | b'.' if prev_slash => return false,
            _ => {}
        }
        prev_slash = c == b'/';
    }
    true
}

/// Decode and normalise a raw path into `out` (cleared first). Errors are the HTTP status to
/// answer (400).
pub fn normalize_path(raw: &[u8], opts: &UrlOpts, out: &mut Vec<u8>) -> Result<(), u16> {
    out.clear();
    if raw.first() != Some(&b'/') {
        return Err(400);
    }
    if is_plain(raw, opts) {
        // Nothing to decode and no segment to drop: the path is its own normal form.
        out.extend_from_slice(raw);
        return Ok(());
    }
    normalize_slow(raw, opts, out)
}

/// [`normalize_path`] for a path that needs decoding or has segments to drop.
fn normalize_slow(raw: &[u8], opts: &UrlOpts, out: &mut Vec<u8>) -> Result<(), u16> {
    // Decode into a scratch buffer, then walk the segments.
    let mut dec = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let c = raw[i];
        // NUL never belongs in a path (it would end it for C code), whatever the options.
        if c == 0 || (opts.ctrls_reject && (c < 0x20 || c == 0x7f)) {
            return Err(400);
        }
        if c == b'%' {
            let h = raw.get(i + 1).copied().and_then(hex).ok_or(400u16)?;
            let l = raw.get(i + 2).copied().and_then(hex).ok_or(400u16)?;
            let v = h << 4 | l;
            if v == 0 || (opts.ctrls_reject && (v < 0x20 || v == 0x7f)) {
                return Err(400);
            }
            if v == b'/' {
                match opts.slash {
                    SlashPolicy::Keep => dec.extend_from_slice(b"%2F"),
                    SlashPolicy::Decode => dec.push(b'/'),
                    SlashPolicy::Reject => return Err(400),
                }
            } else {
                dec.push(v);
            }
            i += 3;
        } else {
            dec.push(if c == b'\\' && opts.backslash_trans { b'/' } else { c });
            i += 1;
        }
    }
    if opts.utf8_reject && std::str::from_utf8(&dec).is_err() {
        return Err(400);
    }
    // Segment walk: drop empty and "." segments, pop on "..", clamp at the root.
    let ends_with_slash = dec.ends_with(b"/");
    let mut stack: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    let mut trailing_dir = ends_with_slash;
    for seg in dec.split(|&b| b == b'/') {
        let start = pos;
        pos += seg.len() + 1;
        match seg {
            b"" => {}
            b"." | b".." if !opts.dotseg_remove => return Err(400),
            b"." => trailing_dir = true,
            b".." => {
                stack.pop();
                trailing_dir = true;
            }
            _ => {
                stack.push((start, seg.len()));
                trailing_dir = ends_with_slash;
            }
        }
    }
    if stack.is_empty() {
        out.push(b'/');
        return Ok(());
    }
    for &(s, l) in &stack {
        out.push(b'/');
        out.extend_from_slice(&dec[s..s + l]);
    }
    if trailing_dir {
        out.push(b'/');
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<String, u16> {
        let mut out = Vec::new();
        normalize_path(s.as_bytes(), &UrlOpts::default(), &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn plain_paths_are_their_own_normal_form() {
        let cases = [
            "/",
            "/a",
            "/a/b",
            "/a/b/",
            "/index.html",
            "/a.b/c.d",
            "/x/y.z/",
            "/~user/",
            "/a\\b",
            "/ü",
            "/a-b_c+d;e=f",
            "/a/b.",
            "/a..b/",
            "/a/b./c",
        ];
        for opts in
            [UrlOpts::default(), UrlOpts { utf8_reject: true, backslash_trans: true, ..UrlOpts::default() }]
        {
            for c in cases {
                if !is_plain(c.as_bytes(), &opts) {
                    continue;
                }
                let mut slow = Vec::new();
                assert_eq!(normalize_slow(c.as_bytes(), &opts, &mut slow), Ok(()), "{c}");
                assert_eq!(slow, c.as_bytes(), "{c}");
            }
        }
        for c in ["/a//b", "/./a", "/a/..", "/a/.", "/%41", "/a\u{1}", "//"] {
            assert!(!is_plain(c.as_bytes(), &UrlOpts::default()), "{c}");
        }
    }

    #[test]
    fn normalise_table() {
        let ok: &[(&str, &str)] = &[
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/a/%2e%2e/b", "/b"),
            ("/%41%62c", "/Abc"),
            ("/a%2Fb", "/a%2Fb"),
            ("/a%20b", "/a b"),
            ("/..", "/"),
            ("/.%2e/x", "/x"),
        ];
        for (i, o) in ok {
            assert_eq!(n(i).as_deref(), Ok(*o), "input {i}");
        }
        for bad in ["a/b", "", "/a%00b", "/a%0ab", "/%zz", "/%4", "/a\x01"] {
            assert_eq!(n(bad), Err(400), "input {bad:?}");
        }
        // Without url-ctrls-reject control characters pass, NUL never (found by fuzzing).
        let o = UrlOpts { backslash_trans: true, utf8_reject: true, ..UrlOpts::default() };
        let mut out = Vec::new();
        assert_eq!(normalize_path(b"/a\\b\\..\\c", &o, &mut out), Ok(()));
        assert_eq!(out, b"/a/c");
        assert_eq!(normalize_path(b"/%C3%28", &o, &mut out), Err(400));
        assert_eq!(normalize_path(b"/%C3%A9", &o, &mut out), Ok(()));
        let lax = UrlOpts { ctrls_reject: false, ..UrlOpts::default() };
        let mut out = Vec::new();
        assert_eq!(normalize_path(b"/a\x01b", &lax, &mut out), Ok(()));
        assert_eq!(normalize_path(b"/a\x00b", &lax, &mut out), Err(400));
        assert_eq!(normalize_path(b"/a%00b", &lax, &mut out), Err(400));
    }

    #[test]
    fn slash_policies() {
        let mut out = Vec::new();
        let o = UrlOpts { slash: SlashPolicy::Decode, ..Default::default() };
        normalize_path(b"/a%2F..%2Fb", &o, &mut out).unwrap();
        assert_eq!(out, b"/b");
        let o = UrlOpts { slash: SlashPolicy::Reject, ..Default::default() };
        assert_eq!(normalize_path(b"/a%2Fb", &o, &mut out), Err(400));
        let o = UrlOpts { dotseg_remove: false, ..Default::default() };
        assert_eq!(normalize_path(b"/a/../b", &o, &mut out), Err(400));
    }

    #[test]
    fn split() {
        assert_eq!(split_target(b"/a?b=c#f"), (&b"/a"[..], Some(&b"b=c"[..])));
        assert_eq!(split_target(b"/a#f?x"), (&b"/a"[..], None));
        assert_eq!(split_target(b"/a?"), (&b"/a"[..], Some(&b""[..])));
        assert_eq!(percent_decode(b"a%20b").unwrap(), b"a b");
        assert!(percent_decode(b"a%2").is_none());
    }
}
