//! The forwarding headers, as pure functions over their bytes: X-Forwarded-For and the
//! headers written like it (X-Real-IP, Forwarded-For, X-Cluster-Client-Ip...), and RFC 7239
//! `Forwarded`. Which address is the client's is lighttpd's rule: walk the list from the
//! right (the hop nearest to us), skip the trusted proxies, and the first address that is not
//! one is the client.

/// The address-like tokens of an X-Forwarded-For value, left to right: runs of hex digits,
/// ':' and '.', starting with a hex digit or ':' (lighttpd's scanner; anything else
/// separates, so "for=" noise and brackets fall away, and "unknown" is no token).
pub fn xff_tokens(v: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &b) in v.iter().enumerate() {
        let lead = b.is_ascii_hexdigit() || b == b':';
        match start {
            Some(s) if !lead && b != b'.' => {
                out.push(&v[s..i]);
                start = None;
            }
            None if lead => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(&v[s..]);
    }
    out
}

/// The client's address in an X-Forwarded-For value: the rightmost token that is not a
/// trusted proxy. None when every hop is trusted (or there is none): nothing changes then.
pub fn xff_client(v: &[u8], trusted: impl Fn(&[u8]) -> bool) -> Option<&[u8]> {
    xff_tokens(v).into_iter().rev().find(|t| !trusted(t))
}

/// A `Forwarded` value that cannot be trusted to say anything: the request gets 400 (a
/// client that sends a broken quoted-string through a proxy could otherwise spoof an address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadForwarded {
    /// A quoted-string without its closing quote.
    Quote,
    /// `for="[...` without a proper `]`, or `[]`.
    Ipv6,
    /// A `host=` value that is not a host, or a quoted value ending in a lone backslash.
    Value(&'static str),
}

impl std::fmt::Display for BadForwarded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadForwarded::Quote => f.write_str("invalid quoted-string in Forwarded header"),
            BadForwarded::Ipv6 => f.write_str("invalid IPv6 address in Forwarded header"),
            BadForwarded::Value(p) => write!(f, "invalid {p}= value in Forwarded header"),
        }
    }
}

/// One `key=value` of a Forwarded element; `value` as written (maybe quoted), trailing
/// blanks removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Elements (one per hop, split at ',') of `key=value` pairs (split at ';'). Quoted strings
/// may hold ',', ';' and '=', and `\x` escapes. A token without '=' is skipped, as lighttpd
/// does; an unterminated quoted string is an error.
pub fn parse_forwarded(v: &[u8]) -> Result<Vec<Vec<Pair<'_>>>, BadForwarded> {
    let mut groups: Vec<Vec<Pair>> = vec![Vec::new()];
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b' ' | b'\t' | b';' => {
                i += 1;
                continue;
            }
            b',' => {
                groups.push(Vec::new());
                i += 1;
                continue;
            }
            _ => {}
        }
        let k = i;
        i = scan(v, i, b"=;,")?;
        if v.get(i) != Some(&b'=') {
            continue;
        }
        let key = &v[k..i];
        i += 1;
        let start = i;
        i = scan(v, i, b";,")?;
        let value = trim_end(&v[start..i]);
        if !key.is_empty() {
            if let Some(g) = groups.last_mut() {
                g.push(Pair { key, value });
            }
        }
    }
    Ok(groups)
}

/// The index of the first byte of `stops` at or after `i` outside quoted strings (or the end).
fn scan(v: &[u8], mut i: usize, stops: &[u8]) -> Result<usize, BadForwarded> {
    while i < v.len() && !stops.contains(&v[i]) {
        if v[i] == b'"' {
            i += 1;
            loop {
                match v.get(i) {
                    None => return Err(BadForwarded::Quote),
                    Some(b'"') => break,
                    Some(b'\\') => i += 2,
                    Some(_) => i += 1,
                }
            }
        }
        i += 1;
    }
    Ok(i.min(v.len()))
}

fn trim_end(v: &[u8]) -> &[u8] {
    let n = v.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |p| p + 1);
    &v[..n]
}

fn unquote(v: &[u8]) -> Option<&[u8]> {
    (v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"').then(|| &v[1..v.len() - 1])
}

/// A `for=` node as an address to look up: quotes removed, and with them an IPv6 address's
/// brackets and the port (`"[2001:db8::1]:4711"`, `"192.0.2.1:80"`). Obfuscated names
/// (`_hidden`), unix paths and `unknown` are left as they are.
pub fn node(v: &[u8]) -> Result<&[u8], BadForwarded> {
    let Some(inner) = unquote(v) else { return Ok(v) };
    if inner.first() == Some(&b'[') {
        return match inner.iter().rposition(|&b| b == b']') {
            Some(end) if end > 1 => Ok(&inner[1..end]),
            _ => Err(BadForwarded::Ipv6),
        };
    }
    if matches!(inner.first(), Some(b'_' | b'/')) || inner.eq_ignore_ascii_case(b"unknown") {
        return Ok(inner);
    }
    Ok(inner.split(|&b| b == b':').next().unwrap_or(inner))
}

/// An identifier that names no address: obfuscated (`_x`), a unix path, or `unknown`.
pub fn is_obfuscated(n: &[u8]) -> bool {
    matches!(n.first(), Some(b'_' | b'/')) || n.eq_ignore_ascii_case(b"unknown")
}

/// What a trusted chain of `Forwarded` elements says about the client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarded<'a> {
    /// The client's address (a node as [`node`] left it; not checked to be an address).
    pub addr: &'a [u8],
    /// `proto=` of the client's element (unquoted).
    pub proto: Option<&'a [u8]>,
    /// `host=` of the client's element, else of the nearest element after it (unquoted,
    /// unescaped).
    pub host: Option<Vec<u8>>,
    /// `remote_user=` of the last element that has one, from the client's on (unquoted,
    /// unescaped).
    pub remote_user: Option<Vec<u8>>,
}

/// The client as a `Forwarded` chain tells it: walking the elements from the right, each
/// element's (last) `for=` is looked at; a trusted proxy is passed over, and the walk stops at
/// the first node that is not one. The client is the last real address seen on the way
/// (lighttpd's rule: an obfuscated or `unknown` node where the trust ends leaves the nearest
/// real address as the client). When every node is trusted, the leftmost real one is the
/// client. None: no element names an address.
pub fn forwarded_client<'a>(
    groups: &[Vec<Pair<'a>>],
    trusted: impl Fn(&[u8]) -> bool,
) -> Result<Option<Forwarded<'a>>, BadForwarded> {
    let is = |p: &Pair, k: &[u8]| p.key.eq_ignore_ascii_case(k);
    let mut found: Option<(usize, &'a [u8])> = None;
    for (gi, g) in groups.iter().enumerate().rev() {
        let Some(p) = g.iter().rev().find(|p| is(p, b"for")) else { continue };
        let n = node(p.value)?;
        if n.is_empty() {
            continue;
        }
        if !is_obfuscated(n) {
            found = Some((gi, n));
        }
        if !trusted(n) {
            break;
        }
    }
    let Some((gi, addr)) = found else { return Ok(None) };
    let own = &groups[gi];
    let last = |k: &[u8]| own.iter().rev().find(|p| is(p, k)).map(|p| p.value);
    let proto = last(b"proto").map(|v| unquote(v).unwrap_or(v));
    let host = match last(b"host") {
        Some(h) => Some(h),
        None => groups[gi + 1..].iter().flatten().find(|p| is(p, b"host")).map(|p| p.value),
    };
    let user = groups[gi + 1..].iter().flatten().rev().find(|p| is(p, b"remote_user")).map(|p| p.value);
    let user = user.or_else(|| last(b"remote_user"));
    Ok(Some(Forwarded {
        addr,
        proto,
        host: host.map(|h| unescape(h, "host")).transpose()?,
        remote_user: user.map(|u| unescape(u, "remote_user")).transpose()?,
    }))
}

/// A value as its text: a quoted string loses its quotes and backslash escapes.
fn unescape(v: &[u8], what: &'static str) -> Result<Vec<u8>, BadForwarded> {
    let Some(inner) = unquote(v) else { return Ok(v.to_vec()) };
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.iter();
    while let Some(&b) = it.next() {
        if b == b'\\' {
            match it.next() {
                Some(&e) => out.push(e),
                None => return Err(BadForwarded::Value(what)),
            }
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10.0.0.0/8 and 2001:db8::/32 are the trusted proxies of these tables.
    fn trusted(a: &[u8]) -> bool {
        let s = std::str::from_utf8(a).unwrap_or("");
        s.starts_with("10.") || s.starts_with("2001:db8:")
    }

    #[test]
    fn xff_tokens_are_lighttpds() {
        let cases: &[(&str, &[&str])] = &[
            ("192.0.2.1", &["192.0.2.1"]),
            ("192.0.2.1, 10.0.0.1", &["192.0.2.1", "10.0.0.1"]),
            ("  192.0.2.1 ,10.0.0.1,", &["192.0.2.1", "10.0.0.1"]),
            ("unknown, 192.0.2.1", &["192.0.2.1"]),
            ("[2001:db8::1]:443", &["2001:db8::1", ":443"]),
            ("192.0.2.1:80", &["192.0.2.1:80"]),
            ("", &[]),
            ("zzz", &[]),
            (".5", &["5"]),
        ];
        for (v, want) in cases {
            let got: Vec<&[u8]> = xff_tokens(v.as_bytes());
            let want: Vec<&[u8]> = want.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(got, want, "{v:?}");
        }
    }

    #[test]
    fn xff_client_is_the_rightmost_untrusted() {
        let cases: &[(&str, Option<&str>)] = &[
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1, 10.0.0.1, 10.0.0.2", Some("192.0.2.1")),
            ("198.51.100.1, 192.0.2.1, 10.0.0.1", Some("192.0.2.1")),
            ("10.0.0.1, 10.0.0.2", None),
            ("2001:db9::1, 2001:db8::5", Some("2001:db9::1")),
            ("", None),
        ];
        for (v, want) in cases {
            let got = xff_client(v.as_bytes(), trusted).map(|b| String::from_utf8_lossy(b).into_owned());
            assert_eq!(got.as_deref(), *want, "{v:?}");
        }
    }

    #[test]
    fn forwarded_elements_and_quoting() {
        let g = parse_forwarded(
            br#"for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8::1]:4711" ; host="a;b,c=d""#,
        )
        .expect("valid");
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].len(), 3);
        assert_eq!(g[0][1], Pair { key: b"proto", value: b"http" });
        assert_eq!(g[1][0], Pair { key: b"For", value: br#""[2001:db8::1]:4711""# });
        assert_eq!(g[1][1].value, br#""a;b,c=d""#);
        assert_eq!(parse_forwarded(br#"for="192.0.2.1"#), Err(BadForwarded::Quote));
        assert_eq!(parse_forwarded(br#"for=1;host="x\""#), Err(BadForwarded::Quote));
        assert_eq!(parse_forwarded(b"junk, ;;, =x, for=").expect("valid").len(), 4);
    }

    #[test]
    fn nodes() {
        let cases: &[(&str, Result<&str, BadForwarded>)] = &[
            ("192.0.2.1", Ok("192.0.2.1")),
            (r#""192.0.2.1:4711""#, Ok("192.0.2.1")),
            (r#""[2001:db8::1]:4711""#, Ok("2001:db8::1")),
            (r#""[2001:db8::1]""#, Ok("2001:db8::1")),
            (r#""[]""#, Err(BadForwarded::Ipv6)),
            (r#""[2001:db8::1""#, Err(BadForwarded::Ipv6)),
            ("_hidden", Ok("_hidden")),
            (r#""_hidden:_port""#, Ok("_hidden:_port")),
            ("unknown", Ok("unknown")),
            (r#""/run/x.sock""#, Ok("/run/x.sock")),
        ];
        for (v, want) in cases {
            let got = node(v.as_bytes()).map(|b| std::str::from_utf8(b).unwrap_or("?"));
            assert_eq!(got, *want, "{v}");
        }
    }

    fn client(v: &str) -> Result<Option<Forwarded<'_>>, BadForwarded> {
        forwarded_client(&parse_forwarded(v.as_bytes())?, trusted)
    }

    #[test]
    fn forwarded_client_walks_from_the_right() {
        let addr = |v: &str| {
            client(v).map(|c| c.map(|c| String::from_utf8_lossy(c.addr).into_owned())).expect("valid")
        };
        let cases: &[(&str, Option<&str>)] = &[
            // A single element (lighttpd 1.4.69 ignores a single-parameter leftmost element).
            ("for=192.0.2.60", Some("192.0.2.60")),
            ("for=192.0.2.60, for=10.0.0.1", Some("192.0.2.60")),
            ("for=198.51.100.7, for=192.0.2.60, for=10.0.0.1", Some("192.0.2.60")),
            (r#"for="[2001:db9::17]:4711", for="[2001:db8::1]""#, Some("2001:db9::17")),
            // Trust ends at an obfuscated node: the nearest real address is the client.
            ("for=_hidden, for=10.0.0.3", Some("10.0.0.3")),
            ("for=unknown;proto=https", None),
            // Every node trusted: the leftmost real one.
            ("for=10.0.0.1, for=10.0.0.2", Some("10.0.0.1")),
            // Elements without for= are passed over.
            ("for=192.0.2.9, proto=https, for=10.0.0.2", Some("192.0.2.9")),
            // The last for= of an element counts.
            ("for=10.0.0.9;for=192.0.2.8", Some("192.0.2.8")),
            ("proto=https", None),
            ("for=", None),
        ];
        for (v, want) in cases {
            assert_eq!(addr(v).as_deref(), *want, "{v:?}");
        }
    }

    #[test]
    fn forwarded_params_of_the_client() {
        let c = client(r#"for=192.0.2.60;proto=https;host="Example.com:8080";remote_user="b\"ob", for=10.0.0.1;host=inner;proto=http"#)
            .expect("valid")
            .expect("a client");
        assert_eq!(c.addr, b"192.0.2.60");
        assert_eq!(c.proto, Some(&b"https"[..]));
        assert_eq!(c.host.as_deref(), Some(&b"Example.com:8080"[..]));
        assert_eq!(c.remote_user.as_deref(), Some(&b"b\"ob"[..]));
        // host from the nearest element after the client's when its own has none;
        // remote_user from the last element that has one.
        let c = client("for=192.0.2.60;remote_user=a, for=10.0.0.1;host=h1;remote_user=b, for=10.0.0.2;host=h2;remote_user=c")
            .expect("valid")
            .expect("a client");
        assert_eq!(c.host.as_deref(), Some(&b"h1"[..]));
        assert_eq!(c.remote_user.as_deref(), Some(&b"c"[..]));
        assert_eq!(c.proto, None);
        assert_eq!(client(r#"for=192.0.2.60;host="x\"#).err(), Some(BadForwarded::Quote));
        assert_eq!(client(r#"for="[]""#).err(), Some(BadForwarded::Ipv6));
        // A broken node beyond the untrusted one is never looked at.
        assert!(client(r#"for="[]", for=192.0.2.1"#).expect("valid").is_some());
    }
}
