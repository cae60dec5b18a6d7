//! `accesslog.format`: parsing the Apache-style format once, and rendering one log line.
//!
//! Data in: the format string from the configuration (parsed at start, errors refuse the
//! start with the setting's file:line), and, per request, a [`LogValues`] implementation that
//! hands out the request's values. Data out: the rendered line (without the newline).
//! Rendering never touches the server directly, so tests drive it with a plain struct.

use crate::time;

/// lighttpd's default format.
pub const DEFAULT_FORMAT: &str = "%h %V %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";

/// Everything a log line can show about a finished request.
pub trait LogValues {
    fn remote_addr(&self) -> &[u8];
    fn remote_port(&self) -> u16;
    /// "addr:port" the request came in on.
    fn local_addr(&self) -> &[u8];
    fn method(&self) -> &[u8];
    /// The request target (path and query, not decoded); after mod_rewrite, the rewritten one.
    fn target(&self) -> &[u8];
    /// The target as the client sent it, before any rewrite (for `%r`, as lighttpd).
    fn target_orig(&self) -> &[u8] {
        self.target()
    }
    fn protocol(&self) -> &[u8];
    /// Host name of the request (lower-case, no port).
    fn host(&self) -> &[u8];
    fn status(&self) -> u16;
    /// Response body bytes; None when nothing at all was written to the client.
    fn body_bytes(&self) -> Option<u64>;
    /// Response bytes written, headers included.
    fn bytes_out(&self) -> u64;
    /// Request bytes read, head and body.
    fn bytes_in(&self) -> u64;
    /// When the request started and ended, microseconds since the epoch.
    fn start_us(&self) -> u64;
    fn end_us(&self) -> u64;
    fn request_header(&self, name: &str) -> Option<&[u8]>;
    fn response_header(&self, name: &str) -> Option<&[u8]>;
    fn env(&self, name: &str) -> Option<&[u8]>;
    fn physical_path(&self) -> &[u8];
}

/// Which clock reading a `%t` shows and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeKind {
    /// `[10/Oct/2000:13:55:36 +0000]`
    Clf,
    Strftime(String),
    Sec,
    Msec,
    Usec,
    Nsec,
    MsecFrac,
    UsecFrac,
    NsecFrac,
}

/// Unit of `%T` (`%D` is `%T` in microseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurationUnit {
    Sec,
    Msec,
    Usec,
}

/// One piece of a parsed format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    Literal(Vec<u8>),
    /// `%h`, `%a`
    RemoteAddr,
    /// `%A`
    LocalAddr,
    /// `%l`: identd is never asked.
    Ident,
    /// `%u`
    RemoteUser,
    /// `%t`, `%{fmt}t`; `end` for the `end:` prefix.
    Time {
        end: bool,
        kind: TimeKind,
    },
    /// `%r`
    RequestLine,
    /// `%s`, `%>s`
    Status,
    /// `%b`, `%B`
    BodyBytes,
    /// `%O`
    BytesOut,
    /// `%I`
    BytesIn,
    /// `%{Name}i`
    RequestHeader(String),
    /// `%{Name}o`
    ResponseHeader(String),
    /// `%{NAME}e`
    Env(String),
    /// `%{name}C`
    Cookie(String),
    /// `%T`, `%{ms}T`, `%D`
    Duration(DurationUnit),
    /// `%f`
    Filename,
    /// `%H`
    Protocol,
    /// `%m`
    Method,
    /// `%p`, `%{local}p`, `%{remote}p`
    Port {
        remote: bool,
    },
    /// `%q`
    Query,
    /// `%U`
    UrlPath,
    /// `%v`
    ServerName,
    /// `%V`
    HttpHost,
    /// `%X`: the connection state is not visible to modules; always "-".
    ConnectionStatus,
}

/// A parsed format: the fields of a line in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pub fields: Vec<Field>,
}

fn time_kind(param: &str) -> TimeKind {
    match param {
        "" => TimeKind::Clf,
        "sec" => TimeKind::Sec,
        "msec" => TimeKind::Msec,
        "usec" => TimeKind::Usec,
        "nsec" => TimeKind::Nsec,
        "msec_frac" => TimeKind::MsecFrac,
        "usec_frac" => TimeKind::UsecFrac,
        "nsec_frac" => TimeKind::NsecFrac,
        f => TimeKind::Strftime(f.to_owned()),
    }
}

impl Format {
    /// Parse an `accesslog.format` value.
    pub fn parse(fmt: &str) -> Result<Format, String> {
        let mut fields = Vec::new();
        let mut lit = Vec::new();
        let b = fmt.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'%' {
                lit.push(b[i]);
                i += 1;
                continue;
            }
            i += 1;
            let mut param: Option<&str> = None;
            if b.get(i) == Some(&b'{') {
                let close =
                    b[i..].iter().position(|&c| c == b'}').ok_or("unterminated %{ in accesslog.format")?;
                // Indices are on ASCII braces, so the slice is on char boundaries.
                param = Some(&fmt[i + 1..i + close]);
                i += close + 1;
            }
            // Apache's %<s / %>s (original / final status): one request, one status here.
            while matches!(b.get(i), Some(b'<' | b'>')) {
                i += 1;
            }
            let Some(&d) = b.get(i) else {
                return Err("accesslog.format ends with an incomplete % directive".into());
            };
            i += 1;
            let named = |what: &str| -> Result<String, String> {
                match param {
                    Some(p) if !p.is_empty() => Ok(p.to_owned()),
                    _ => Err(format!(
                        "%{} in accesslog.format needs a {what}: %{{...}}{}",
                        d as char, d as char
                    )),
                }
            };
            let field = match d {
                b'%' if param.is_none() => {
                    lit.push(b'%');
                    continue;
                }
                b'h' | b'a' => Field::RemoteAddr,
                b'A' => Field::LocalAddr,
                b'l' => Field::Ident,
                b'u' => Field::RemoteUser,
                b't' => {
                    let p = param.unwrap_or("");
                    let (end, rest) = match (p.strip_prefix("begin:"), p.strip_prefix("end:")) {
                        (Some(r), _) => (false, r),
                        (_, Some(r)) => (true, r),
                        _ => (false, p),
                    };
                    Field::Time { end, kind: time_kind(rest) }
                }
                b'r' => Field::RequestLine,
                b's' => Field::Status,
                b'b' | b'B' => Field::BodyBytes,
                b'O' => Field::BytesOut,
                b'I' => Field::BytesIn,
                b'i' => Field::RequestHeader(named("header name")?),
                b'o' => Field::ResponseHeader(named("header name")?),
                b'e' => Field::Env(named("variable name")?),
                b'C' => Field::Cookie(named("cookie name")?),
                b'D' => Field::Duration(DurationUnit::Usec),
                b'T' => Field::Duration(match param.unwrap_or("s") {
                    "s" | "" => DurationUnit::Sec,
                    "ms" => DurationUnit::Msec,
                    "us" => DurationUnit::Usec,
                    other => return Err(format!("%{{{other}}}T: unit must be s, ms or us")),
                }),
                b'f' => Field::Filename,
                b'H' => Field::Protocol,
                b'm' => Field::Method,
                b'p' => match param.unwrap_or("local") {
                    "local" | "canonical" => Field::Port { remote: false },
                    "remote" => Field::Port { remote: true },
                    other => return Err(format!("%{{{other}}}p: expected local or remote")),
                },
                b'q' => Field::Query,
                b'U' => Field::UrlPath,
                b'v' => Field::ServerName,
                b'V' => Field::HttpHost,
                b'X' => Field::ConnectionStatus,
                other => {
                    let c = String::from_utf8_lossy(&b[i - 1..]).chars().next().unwrap_or(other as char);
                    return Err(format!("unknown or unsupported directive %{c} in accesslog.format"));
                }
            };
            if !lit.is_empty() {
                fields.push(Field::Literal(std::mem::take(&mut lit)));
            }
            fields.push(field);
        }
        if !lit.is_empty() {
            fields.push(Field::Literal(lit));
        }
        Ok(Format { fields })
    }

    /// Append the line for one request to `out` (no newline).
    pub fn render(&self, v: &dyn LogValues, out: &mut Vec<u8>) {
        for f in &self.fields {
            render_field(f, v, out);
        }
    }
}

fn or_dash(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) if !s.is_empty() => escape_into(out, s),
        _ => out.push(b'-'),
    }
}

fn count(out: &mut Vec<u8>, n: u64) {
    if n == 0 {
        out.push(b'-');
    } else {
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

fn render_field(f: &Field, v: &dyn LogValues, out: &mut Vec<u8>) {
    match f {
        Field::Literal(l) => out.extend_from_slice(l),
        Field::RemoteAddr => or_dash(out, Some(v.remote_addr())),
        Field::LocalAddr => or_dash(out, Some(split_port(v.local_addr()).0)),
        Field::Ident => out.push(b'-'),
        Field::RemoteUser => or_dash(out, v.env("REMOTE_USER")),
        Field::Time { end, kind } => {
            let us = if *end { v.end_us() } else { v.start_us() };
            render_time(kind, us, out);
        }
        Field::RequestLine => {
            escape_into(out, v.method());
            out.push(b' ');
            escape_into(out, v.target_orig());
            out.push(b' ');
            escape_into(out, v.protocol());
        }
        Field::Status => out.extend_from_slice(v.status().to_string().as_bytes()),
        Field::BodyBytes => match v.body_bytes() {
            Some(n) => out.extend_from_slice(n.to_string().as_bytes()),
            None => out.push(b'-'),
        },
        Field::BytesOut => count(out, v.bytes_out()),
        Field::BytesIn => count(out, v.bytes_in()),
        Field::RequestHeader(n) => or_dash(out, v.request_header(n)),
        Field::ResponseHeader(n) => or_dash(out, v.response_header(n)),
        Field::Env(n) => or_dash(out, v.env(n)),
        Field::Cookie(n) => or_dash(out, v.request_header("Cookie").and_then(|c| cookie(c, n))),
        Field::Duration(unit) => {
            let us = v.end_us().saturating_sub(v.start_us());
            let n = match unit {
                DurationUnit::Sec => us / 1_000_000,
                DurationUnit::Msec => us / 1_000,
                DurationUnit::Usec => us,
            };
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Field::Filename => or_dash(out, Some(v.physical_path())),
        Field::Protocol => escape_into(out, v.protocol()),
        Field::Method => escape_into(out, v.method()),
        Field::Port { remote: true } => out.extend_from_slice(v.remote_port().to_string().as_bytes()),
        Field::Port { remote: false } => or_dash(out, split_port(v.local_addr()).1),
        Field::Query => {
            // Without the '?', as lighttpd prints it (Apache's %q has it).
            if let Some(q) = split_query(v.target()).1 {
                escape_into(out, q);
            }
        }
        Field::UrlPath => escape_into(out, split_query(v.target()).0),
        Field::ServerName => or_dash(out, Some(v.host())),
        Field::HttpHost => {
            let h = v.request_header("Host").filter(|h| !h.is_empty()).unwrap_or(v.host());
            or_dash(out, Some(h));
        }
        Field::ConnectionStatus => out.push(b'-'),
    }
}

fn render_time(kind: &TimeKind, us: u64, out: &mut Vec<u8>) {
    let secs = i64::try_from(us / 1_000_000).unwrap_or(i64::MAX);
    let frac_us = us % 1_000_000;
    let num = |out: &mut Vec<u8>, n: u64| out.extend_from_slice(n.to_string().as_bytes());
    match kind {
        TimeKind::Clf => time::clf(out, secs),
        TimeKind::Strftime(f) => time::strftime(out, f, secs),
        TimeKind::Sec => num(out, us / 1_000_000),
        TimeKind::Msec => num(out, us / 1_000),
        TimeKind::Usec => num(out, us),
        TimeKind::Nsec => num(out, us.saturating_mul(1_000)),
        TimeKind::MsecFrac => out.extend_from_slice(format!("{:03}", frac_us / 1_000).as_bytes()),
        TimeKind::UsecFrac => out.extend_from_slice(format!("{frac_us:06}").as_bytes()),
        TimeKind::NsecFrac => out.extend_from_slice(format!("{:09}", frac_us * 1_000).as_bytes()),
    }
}

/// "addr:port" → (addr, port). IPv6 addresses may come bracketed or bare: the port is what
/// follows the last ':' when it is all digits.
fn split_port(a: &[u8]) -> (&[u8], Option<&[u8]>) {
    match a.iter().rposition(|&c| c == b':') {
        Some(p) if p + 1 < a.len() && a[p + 1..].iter().all(u8::is_ascii_digit) => {
            let host = &a[..p];
            let host = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")).unwrap_or(host);
            (host, Some(&a[p + 1..]))
        }
        _ => (a, None),
    }
}

fn split_query(t: &[u8]) -> (&[u8], Option<&[u8]>) {
    match t.iter().position(|&c| c == b'?') {
        Some(p) => (&t[..p], Some(&t[p + 1..])),
        None => (t, None),
    }
}

/// Value of cookie `name` in a `Cookie` header (`a=1; b=2`).
fn cookie<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&c| c == b';').find_map(|pair| {
        let pair = pair.strip_prefix(b" ").unwrap_or(pair);
        let eq = pair.iter().position(|&c| c == b'=')?;
        (pair[..eq].trim_ascii() == name.as_bytes()).then(|| pair[eq + 1..].trim_ascii())
    })
}

/// Append `s` so that a log line stays one line of printable ASCII and its quoted fields
/// stay parseable: `"` and `\` get a backslash, common control characters their C escape,
/// and every other byte outside 0x20..=0x7e becomes `\xHH` (as lighttpd writes them).
pub fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &c in s {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\x08' => out.extend_from_slice(b"\\b"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\x0b' => out.extend_from_slice(b"\\v"),
            0x20..=0x7e => out.push(c),
            _ => out.extend_from_slice(&[b'\\', b'x', HEX[usize::from(c >> 4)], HEX[usize::from(c & 15)]]),
        }
    }
}

/// Body bytes from what the SDK reports: it counts response bytes with the head included, so
/// the body is what remains after the head, capped by the declared Content-Length (the head
/// size is rebuilt from the response headers and may miss what the core adds at the last
/// moment). Responses that cannot carry a body count 0. None when nothing was written.
pub fn body_bytes(
    bytes_out: u64,
    head_request: bool,
    status: u16,
    content_length: Option<u64>,
    head_len: u64,
) -> Option<u64> {
    if bytes_out == 0 {
        return None;
    }
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some(0);
    }
    let rest = bytes_out.saturating_sub(head_len);
    Some(content_length.map_or(rest, |cl| cl.min(rest)))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A request's values as plain data.
    #[derive(Clone, Default)]
    pub struct Fake {
        pub remote_addr: Vec<u8>,
        pub remote_port: u16,
        pub local_addr: Vec<u8>,
        pub method: Vec<u8>,
        pub target: Vec<u8>,
        pub protocol: Vec<u8>,
        pub host: Vec<u8>,
        pub status: u16,
        pub body: Option<u64>,
        pub bytes_out: u64,
        pub bytes_in: u64,
        pub start_us: u64,
        pub end_us: u64,
        pub req_headers: HashMap<String, Vec<u8>>,
        pub resp_headers: HashMap<String, Vec<u8>>,
        pub env: HashMap<String, Vec<u8>>,
        pub physical: Vec<u8>,
    }

    fn get<'a>(m: &'a HashMap<String, Vec<u8>>, name: &str) -> Option<&'a [u8]> {
        m.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
    }

    impl LogValues for Fake {
        fn remote_addr(&self) -> &[u8] {
            &self.remote_addr
        }
        fn remote_port(&self) -> u16 {
            self.remote_port
        }
        fn local_addr(&self) -> &[u8] {
            &self.local_addr
        }
        fn method(&self) -> &[u8] {
            &self.method
        }
        fn target(&self) -> &[u8] {
            &self.target
        }
        fn protocol(&self) -> &[u8] {
            &self.protocol
        }
        fn host(&self) -> &[u8] {
            &self.host
        }
        fn status(&self) -> u16 {
            self.status
        }
        fn body_bytes(&self) -> Option<u64> {
            self.body
        }
        fn bytes_out(&self) -> u64 {
            self.bytes_out
        }
        fn bytes_in(&self) -> u64 {
            self.bytes_in
        }
        fn start_us(&self) -> u64 {
            self.start_us
        }
        fn end_us(&self) -> u64 {
            self.end_us
        }
        fn request_header(&self, name: &str) -> Option<&[u8]> {
            get(&self.req_headers, name)
        }
        fn response_header(&self, name: &str) -> Option<&[u8]> {
            get(&self.resp_headers, name)
        }
        fn env(&self, name: &str) -> Option<&[u8]> {
            self.env.get(name).map(Vec::as_slice)
        }
        fn physical_path(&self) -> &[u8] {
            &self.physical
        }
    }

    pub fn sample() -> Fake {
        let h = |l: &[(&str, &str)]| l.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        Fake {
            remote_addr: b"192.0.2.7".to_vec(),
            remote_port: 51234,
            local_addr: b"198.51.100.1:8080".to_vec(),
            method: b"GET".to_vec(),
            target: b"/a/b.html?x=1&y=2".to_vec(),
            protocol: b"HTTP/1.1".to_vec(),
            host: b"example.org".to_vec(),
            status: 200,
            body: Some(1234),
            bytes_out: 1400,
            bytes_in: 210,
            start_us: 971_186_136_250_000, // Tue, 10 Oct 2000 13:55:36.25 UTC
            end_us: 971_186_138_750_500,
            req_headers: h(&[
                ("Host", "example.org:8080"),
                ("Referer", "http://example.org/"),
                ("User-Agent", "curl/8.0"),
                ("Cookie", "a=1; session=abc ; z=9"),
            ]),
            resp_headers: h(&[("Content-Type", "text/html"), ("X-Id", "q\"1")]),
            env: [("REMOTE_USER".to_string(), b"alice".to_vec())].into_iter().collect(),
            physical: b"/srv/www/a/b.html".to_vec(),
        }
    }

    fn render(fmt: &str, v: &Fake) -> String {
        let f = Format::parse(fmt).unwrap_or_else(|e| panic!("{fmt}: {e}"));
        let mut out = Vec::new();
        f.render(v, &mut out);
        String::from_utf8(out).expect("log lines are ASCII")
    }

    #[test]
    fn default_format_line() {
        assert_eq!(
            render(DEFAULT_FORMAT, &sample()),
            "192.0.2.7 example.org:8080 alice [10/Oct/2000:13:55:36 +0000] \"GET /a/b.html?x=1&y=2 HTTP/1.1\" 200 1234 \"http://example.org/\" \"curl/8.0\""
        );
        let mut bare = sample();
        bare.req_headers.clear();
        bare.env.clear();
        bare.body = None;
        assert_eq!(
            render(DEFAULT_FORMAT, &bare),
            "192.0.2.7 example.org - [10/Oct/2000:13:55:36 +0000] \"GET /a/b.html?x=1&y=2 HTTP/1.1\" 200 - \"-\" \"-\""
        );
    }

    #[test]
    fn directive_table() {
        let v = sample();
        let cases: &[(&str, &str)] = &[
            ("%h|%a|%A|%l", "192.0.2.7|192.0.2.7|198.51.100.1|-"),
            ("%u", "alice"),
            ("%r", "GET /a/b.html?x=1&y=2 HTTP/1.1"),
            ("%s %>s %<s", "200 200 200"),
            ("%b %B %O %I", "1234 1234 1400 210"),
            ("%{User-Agent}i|%{user-agent}i|%{X-None}i", "curl/8.0|curl/8.0|-"),
            ("%{Content-Type}o|%{X-Id}o|%{X-None}o", "text/html|q\\\"1|-"),
            ("%{REMOTE_USER}e|%{NOPE}e", "alice|-"),
            ("%{session}C|%{z}C|%{nope}C", "abc|9|-"),
            ("%D|%T|%{ms}T|%{us}T|%{s}T", "2500500|2|2500|2500500|2"),
            ("%f", "/srv/www/a/b.html"),
            ("%H %m", "HTTP/1.1 GET"),
            ("%p|%{local}p|%{remote}p", "8080|8080|51234"),
            ("%q|%U", "x=1&y=2|/a/b.html"),
            ("%v|%V", "example.org|example.org:8080"),
            ("%X", "-"),
            ("%t", "[10/Oct/2000:13:55:36 +0000]"),
            ("%{%Y-%m-%d %H:%M:%S}t", "2000-10-10 13:55:36"),
            ("%{end:%H:%M:%S}t|%{begin:%S}t", "13:55:38|36"),
            ("%{sec}t %{msec}t", "971186136 971186136250"),
            ("%{usec}t", "971186136250000"),
            ("%{msec_frac}t %{usec_frac}t %{nsec_frac}t", "250 250000 250000000"),
            ("%{end:msec_frac}t", "750"),
            ("100%% [%h]", "100% [192.0.2.7]"),
            ("no directives", "no directives"),
            ("", ""),
        ];
        for (fmt, want) in cases {
            assert_eq!(render(fmt, &v), *want, "{fmt}");
        }
    }

    #[test]
    fn query_absent_and_empty() {
        let mut v = sample();
        v.target = b"/plain".to_vec();
        assert_eq!(render("[%q] %U", &v), "[] /plain");
        v.target = b"/plain?".to_vec();
        assert_eq!(render("[%q] %U", &v), "[] /plain");
    }

    #[test]
    fn escaping_table() {
        let cases: &[(&[u8], &str)] = &[
            (b"plain text", "plain text"),
            (b"say \"hi\"", "say \\\"hi\\\""),
            (b"back\\slash", "back\\\\slash"),
            (b"a\nb\rc\td\x08e\x0bf", "a\\nb\\rc\\td\\be\\vf"),
            (b"\x00\x01\x1f\x7f", "\\x00\\x01\\x1F\\x7F"),
            ("é".as_bytes(), "\\xC3\\xA9"),
            (b"~ !", "~ !"),
        ];
        for (input, want) in cases {
            let mut out = Vec::new();
            escape_into(&mut out, input);
            assert_eq!(String::from_utf8_lossy(&out), *want, "{input:?}");
        }
        // Values that reach the log through the request are escaped, so one request is
        // always one line.
        let mut v = sample();
        v.target = b"/x\"y\nz".to_vec();
        v.req_headers.insert("User-Agent".into(), b"evil\"\r\nfake line".to_vec());
        let line = render(DEFAULT_FORMAT, &v);
        assert!(!line.contains('\n') && !line.contains('\r'), "{line}");
        assert!(line.contains("\"GET /x\\\"y\\nz HTTP/1.1\""), "{line}");
        assert!(line.ends_with("\"evil\\\"\\r\\nfake line\""), "{line}");
    }

    #[test]
    fn parse_errors() {
        let cases: &[&str] =
            &["%", "%{User-Agent", "%{}i", "%i", "%o", "%e", "%C", "%Z", "%{x}T", "%{x}p", "abc %é"];
        for fmt in cases {
            assert!(Format::parse(fmt).is_err(), "{fmt:?} should be refused");
        }
    }

    #[test]
    fn parse_structure() {
        let f = Format::parse("a%%b %>s \"%{Referer}i\"").expect("valid");
        assert_eq!(
            f.fields,
            vec![
                Field::Literal(b"a%b ".to_vec()),
                Field::Status,
                Field::Literal(b" \"".to_vec()),
                Field::RequestHeader("Referer".into()),
                Field::Literal(b"\"".to_vec()),
            ]
        );
    }

    #[test]
    fn port_splitting() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("127.0.0.1:80", "127.0.0.1", Some("80")),
            ("[::1]:8080", "::1", Some("8080")),
            ("::1:8080", "::1", Some("8080")),
            ("unix:", "unix:", None),
            ("host", "host", None),
        ];
        for (a, host, port) in cases {
            let (h, p) = split_port(a.as_bytes());
            assert_eq!((h, p), (host.as_bytes(), port.map(str::as_bytes)), "{a}");
        }
    }

    #[test]
    fn body_bytes_table() {
        type Case = (u64, bool, u16, Option<u64>, u64, Option<u64>);
        let cases: &[Case] = &[
            // (bytes_out, HEAD, status, Content-Length, head size, expected)
            (0, false, 200, Some(10), 100, None),
            (110, false, 200, Some(10), 100, Some(10)),
            (115, false, 200, Some(10), 95, Some(10)), // head underestimated: capped
            (105, false, 200, Some(10), 100, Some(5)), // cut short
            (300, false, 200, None, 100, Some(200)),
            (100, true, 200, Some(10), 100, Some(0)),
            (100, false, 304, None, 100, Some(0)),
            (100, false, 204, None, 100, Some(0)),
            (50, false, 200, None, 100, Some(0)),
        ];
        for &(out, head, status, cl, hl, want) in cases {
            assert_eq!(body_bytes(out, head, status, cl, hl), want, "{out} {head} {status} {cl:?} {hl}");
        }
    }
}
