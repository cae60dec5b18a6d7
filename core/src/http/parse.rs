//! The request head parser: bytes in, a validated [`Head`] (or the status to answer) out.
//! httparse does the tokenising; this file adds HTTP/1.1's framing rules (RFC 9112) so that a
//! request is either understood exactly or refused, never guessed at.

use super::headers::HeaderList;

/// Most header lines accepted in one request (beyond: 431).
pub const MAX_HEADERS: usize = 128;

/// A parsed request head. Byte strings are copies (the read buffer is reused).
#[derive(Default, Debug)]
pub struct Head {
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: HeaderList,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// Connection: close (or HTTP/1.0 without keep-alive).
    pub close: bool,
    pub expect_continue: bool,
    /// Host header or the authority of an absolute-form target, lower-cased, port removed.
    pub host: Vec<u8>,
    pub host_port: Option<u16>,
}

/// Outcome of feeding the buffered bytes to the parser.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head is complete and `n` bytes long.
    Complete(usize),
    /// Need more bytes.
    Partial,
    /// Refuse with this status (400, 431, 505, ...), then close.
    Error(u16),
}

/// 505 for a well-formed request line naming another version (`HTTP/2.0`), 400 when the line
/// itself is malformed (two spaces before the version, no version at all, ...).
fn version_error(buf: &[u8]) -> u16 {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let well_formed = matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some(m), Some(t), Some([b'H', b'T', b'T', b'P', b'/', a, b'.', b]), None)
            if !m.is_empty() && !t.is_empty() && a.is_ascii_digit() && b.is_ascii_digit()
    );
    if well_formed {
        505
    } else {
        400
    }
}

/// Parse the head at the start of `buf` into `head` (cleared first).
pub fn parse_head(buf: &[u8], head: &mut Head) -> Parsed {
    // Uninitialised slots: httparse writes only the headers it finds (initialising 128 empty
    // ones would cost more than parsing a typical request).
    let mut hdrs = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let n = match req.parse_with_uninit_headers(buf, &mut hdrs) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Error(431),
        Err(httparse::Error::Version) => return Parsed::Error(version_error(buf)),
        Err(_) => return Parsed::Error(400),
    };
    // The head is copied once; the header list refers into the copy.
    head.headers.load_raw(&buf[..n]);
    let base = buf.as_ptr() as usize;
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    head.method.clear();
    head.target.clear();
    head.host.clear();
    head.host_port = None;
    head.content_length = None;
    head.chunked = false;
    head.expect_continue = false;
    head.method.extend_from_slice(req.method.unwrap_or("").as_bytes());
    head.target.extend_from_slice(req.path.unwrap_or("").as_bytes());
    head.minor = req.version.unwrap_or(1);

    let mut keep_alive = false;
    let mut close = false;
    let mut te_seen = false;
    let mut host_seen = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        // httparse accepts obs-text and tabs in values; a bare CR or LF or NUL never belongs.
        if super::has_cr_lf_nul(value) {
            return Parsed::Error(400);
        }
        head.headers.push_range(at(name), at(value));
        if name.eq_ignore_ascii_case(b"content-length") {
            let Some(v) = parse_content_length(value) else { return Parsed::Error(400) };
            if head.content_length.is_some_and(|old| old != v) {
                return Parsed::Error(400);
            }
            if head.content_length.is_some() {
                // Duplicate identical lengths are still an ambiguity worth refusing.
                return Parsed::Error(400);
            }
            head.content_length = Some(v);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            // RFC 9112 6.3: without a final "chunked" the body's length cannot be known (400,
            // and close); "chunked" twice is forbidden too. A coding before it that we do not
            // implement (gzip, ...) is 501 (RFC 9112 6.1).
            let mut codings = value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty());
            let last = codings.next_back().unwrap_or(b"");
            if !last.eq_ignore_ascii_case(b"chunked") || head.chunked {
                return Parsed::Error(400);
            }
            if codings.any(|t| t.eq_ignore_ascii_case(b"chunked")) {
                return Parsed::Error(400);
            }
            if value.split(|&b| b == b',').map(trim).filter(|t| !t.is_empty()).count() > 1 {
                return Parsed::Error(if head.minor == 0 { 400 } else { 501 });
            }
            head.chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for tok in value.split(|&b| b == b',').map(trim) {
                if tok.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"host") {
            if host_seen {
                return Parsed::Error(400);
            }
            host_seen = true;
            if !set_host(head, value) {
                return Parsed::Error(400);
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                head.expect_continue = true;
            } else {
                return Parsed::Error(417);
            }
        }
    }
    if te_seen && head.content_length.is_some() {
        return Parsed::Error(400);
    }
    if te_seen && head.minor == 0 {
        return Parsed::Error(400);
    }
    if head.method == b"CONNECT" {
        // Authority-form (RFC 9112 3.2.3): "host:port", port required; it is the request's
        // host. A CONNECT has no content before the tunnel opens.
        let t = std::mem::take(&mut head.target);
        let ok = !t.starts_with(b"/") && !t.contains(&b'@') && set_host(head, &t) && head.host_port.is_some();
        head.target = t;
        if !ok || te_seen || head.content_length.is_some_and(|n| n > 0) {
            return Parsed::Error(400);
        }
        head.content_length = None;
        return finish(head, n, true, keep_alive, close);
    }
    // Absolute-form target: the authority wins over the Host header (RFC 9112 3.2.2).
    if head.target.len() > 7 && !head.target.starts_with(b"/") {
        let t = std::mem::take(&mut head.target);
        let lower = t.to_ascii_lowercase();
        let rest = if lower.starts_with(b"http://") {
            &t[7..]
        } else if lower.starts_with(b"https://") {
            &t[8..]
        } else {
            head.target = t;
            return finish(head, n, host_seen, keep_alive, close);
        };
        let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
        if !set_host(head, &rest[..end]) {
            return Parsed::Error(400);
        }
        host_seen = true;
        let path = &rest[end..];
        if path.first() == Some(&b'?') || path.is_empty() {
            head.target.push(b'/');
        }
        head.target.extend_from_slice(path);
    }
    finish(head, n, host_seen, keep_alive, close)
}

fn finish(head: &mut Head, n: usize, host_seen: bool, keep_alive: bool, close: bool) -> Parsed {
    if head.minor == 1 && !host_seen {
        return Parsed::Error(400);
    }
    head.close = close || (head.minor == 0 && !keep_alive);
    if head.target.first() != Some(&b'/')
        && !(head.target == b"*" && head.method == b"OPTIONS")
        && head.method != b"CONNECT"
    {
        return Parsed::Error(400);
    }
    Parsed::Complete(n)
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let e = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(a, |e| e + 1);
    &s[a..e]
}

fn parse_content_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Validate and store a Host value: reg-name / IPv4 / [IPv6], optional port.
pub(crate) fn set_host(head: &mut Head, v: &[u8]) -> bool {
    let v = trim(v);
    if v.is_empty() {
        // HTTP/1.1 allows an empty Host for targets without authority.
        return true;
    }
    let (name, port) = if v[0] == b'[' {
        let Some(close) = v.iter().position(|&b| b == b']') else { return false };
        let inner = &v[1..close];
        if inner.is_empty() || !inner.iter().all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.') {
            return false;
        }
        let rest = &v[close + 1..];
        match rest {
            [] => (&v[..=close], None),
            [b':', p @ ..] => (&v[..=close], Some(p)),
            _ => return false,
        }
    } else {
        match v.iter().position(|&b| b == b':') {
            Some(i) => (&v[..i], Some(&v[i + 1..])),
            None => (v, None),
        }
    };
    if name.first() != Some(&b'[')
        && (name.is_empty()
            || !name.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            || name.starts_with(b".")
            || name.starts_with(b"-"))
    {
        return false;
    }
    head.host_port = match port {
        None => None,
        Some([]) => None,
        Some(p) => {
            if p.len() > 5 || !p.iter().all(u8::is_ascii_digit) {
                return false;
            }
            let n = p.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
            match u16::try_from(n) {
                Ok(p) => Some(p),
                Err(_) => return false,
            }
        }
    };
    head.host.clear();
    head.host.extend(name.iter().map(u8::to_ascii_lowercase));
    // A trailing dot names the same host.
    if head.host.len() > 1 && head.host.ends_with(b".") {
        head.host.pop();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> (Parsed, Head) {
        let mut h = Head::default();
        let r = parse_head(s.as_bytes(), &mut h);
        (r, h)
    }

    #[test]
    fn basic() {
        let (r, h) = p("GET /a?b HTTP/1.1\r\nHost: Example.ORG:8080\r\nX: y\r\n\r\nrest");
        assert_eq!(r, Parsed::Complete(51));
        assert_eq!(h.method, b"GET");
        assert_eq!(h.target, b"/a?b");
        assert_eq!(h.host, b"example.org");
        assert_eq!(h.host_port, Some(8080));
        assert!(!h.close);
        assert_eq!(h.headers.get(b"x"), Some(&b"y"[..]));
    }

    #[test]
    fn framing_table() {
        let cases: &[(&str, Parsed)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n", Parsed::Partial),
            ("GET / HTTP/1.1\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.0\r\n\r\n", Parsed::Complete(18)),
            ("GET / HTTP/2.0\r\n\r\n", Parsed::Error(505)),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", Parsed::Error(505)),
            ("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/11\r\nHost: a\r\n\r\n", Parsed::Error(400)),
            ("GET / FTP/1.1\r\nHost: a\r\n\r\n", Parsed::Error(400)),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Parsed::Error(400),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Parsed::Error(400),
            ),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                Parsed::Error(400),
            ),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", Parsed::Error(400)),
            ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", Parsed::Error(400)),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", Parsed::Error(400)),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", Parsed::Error(400)),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Parsed::Error(501)),
            ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", Parsed::Error(400)),
            (
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                Parsed::Error(400),
            ),
            ("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", Parsed::Complete(34)),
            ("GET / HTTP/1.1\r\nHost: a\r\nExpect: nope\r\n\r\n", Parsed::Error(417)),
            ("GET x HTTP/1.1\r\nHost: a\r\n\r\n", Parsed::Error(400)),
            ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", Parsed::Complete(31)),
            ("GET * HTTP/1.1\r\nHost: a\r\n\r\n", Parsed::Error(400)),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Parsed::Error(400)),
        ];
        for (input, want) in cases {
            let (r, _) = p(input);
            assert_eq!(&r, want, "input {input:?}");
        }
    }

    #[test]
    fn connection_and_absolute_form() {
        let (_, h) = p("GET / HTTP/1.0\r\n\r\n");
        assert!(h.close);
        let (_, h) = p("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(!h.close);
        let (_, h) = p("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n");
        assert!(h.close);
        let (r, h) = p("GET http://Other.example:81/x?y HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(r, Parsed::Complete(_)));
        assert_eq!(h.host, b"other.example");
        assert_eq!(h.target, b"/x?y");
        let (_, h) = p("GET http://h?q HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(h.target, b"/?q");
    }
}
