//! The head of a CGI-style response (RFC 3875 section 6): header lines up to an empty line,
//! with `Status:` giving the status and `Location:` a redirect. CGI scripts, FastCGI
//! responders and SCGI/uwsgi applications all answer this way.

/// A parsed head.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status: 404 Not Found` (None when absent).
    pub status: Option<u16>,
    /// From `Location:`.
    pub location: Option<Vec<u8>>,
    /// Every other header, in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// What the first bytes of a response are.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse {
    /// The head is complete: `n` bytes of head (including the blank line).
    Complete(CgiHead, usize),
    /// Need more bytes.
    Partial,
    /// Not a valid head (the backend answered garbage): 502.
    Invalid(&'static str),
}

/// Most bytes a head may take before it is refused.
pub const MAX_HEAD: usize = 64 * 1024;

/// Parse a head from the start of `buf`. Lines may end in CRLF or LF.
pub fn parse(buf: &[u8]) -> HeadParse {
    let mut head = CgiHead::default();
    let mut pos = 0;
    loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_HEAD {
                HeadParse::Invalid("response head too large")
            } else {
                HeadParse::Partial
            };
        };
        let line_end = pos + nl;
        let line = &buf[pos..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = line_end + 1;
        if line.is_empty() {
            return HeadParse::Complete(head, pos);
        }
        if pos > MAX_HEAD {
            return HeadParse::Invalid("response head too large");
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return HeadParse::Invalid("header line without ':'");
        };
        let name = &line[..colon];
        if name.is_empty() || name.iter().any(|b| !b.is_ascii_graphic()) {
            return HeadParse::Invalid("bad header name");
        }
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"status") {
            let code = value.iter().take_while(|b| b.is_ascii_digit()).copied().collect::<Vec<u8>>();
            match std::str::from_utf8(&code).ok().and_then(|s| s.parse::<u16>().ok()) {
                Some(c) if (100..1000).contains(&c) && code.len() == 3 => head.status = Some(c),
                _ => return HeadParse::Invalid("bad Status: line"),
            }
        } else if name.eq_ignore_ascii_case(b"location") {
            head.location = Some(value.to_vec());
        } else {
            head.headers.push((name.to_vec(), value.to_vec()));
        }
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let a = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let e = s.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(a, |e| e + 1);
    &s[a..e]
}

impl CgiHead {
    /// A local redirect (RFC 3875 6.2.2): `Location: /path` without a Status. The server
    /// should restart the request at that path instead of answering.
    pub fn is_local_redirect(&self) -> bool {
        self.status.is_none() && self.location.as_deref().is_some_and(|l| l.starts_with(b"/"))
    }

    /// The status to answer with: Status:, or 302 for a client redirect, else 200.
    pub fn effective_status(&self) -> u16 {
        match (self.status, &self.location) {
            (Some(s), _) => s,
            (None, Some(_)) => 302,
            (None, None) => 200,
        }
    }

    /// First value of a header (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes())).map(|(_, v)| v.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let HeadParse::Complete(h, n) = parse(b"Content-Type: text/plain\r\nStatus: 404 Nope\r\n\r\nbody")
        else {
            panic!()
        };
        assert_eq!(n, 46);
        assert_eq!(h.status, Some(404));
        assert_eq!(h.get("content-type"), Some(&b"text/plain"[..]));
        let HeadParse::Complete(h, _) = parse(b"Location: /other\n\n") else { panic!() };
        assert!(h.is_local_redirect());
        let HeadParse::Complete(h, _) = parse(b"Location: http://x/\n\n") else { panic!() };
        assert!(!h.is_local_redirect());
        assert_eq!(h.effective_status(), 302);
        assert_eq!(parse(b"Content-Type: x\r\n"), HeadParse::Partial);
        assert!(matches!(parse(b"garbage\n\n"), HeadParse::Invalid(_)));
        assert!(matches!(parse(b"Status: abc\n\n"), HeadParse::Invalid(_)));
        assert!(matches!(parse(&[b'a'; 70000]), HeadParse::Invalid(_)));
    }
}
