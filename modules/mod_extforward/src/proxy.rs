//! The HAProxy PROXY protocol header (versions 1 and 2, haproxy's proxy-protocol.txt), as a
//! pure function over the first bytes of a connection.
//!
//! Version 1 is a text line, `PROXY TCP4|TCP6|UNKNOWN src dst sport dport\r\n` (at most 107
//! bytes). Version 2 is binary: a 12-byte signature, version/command, family, a length, the
//! addresses and optional TLVs. A `LOCAL` command (health checks) and `UNKNOWN` or
//! unsupported families keep the connection's own address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const V2_SIGNATURE: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];
/// The longest version 1 line, CRLF included.
const V1_MAX: usize = 107;

/// What the header says about the connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// The client; None to keep the connection's address (LOCAL, UNKNOWN).
    pub source: Option<SocketAddr>,
    /// The client talked TLS to the proxy (a PP2_TYPE_SSL TLV with PP2_CLIENT_SSL).
    pub ssl: bool,
    /// The client presented a certificate that the proxy verified.
    pub cert_verified: bool,
    /// Environment for the connection's requests: `SSL_PROTOCOL`, `SSL_CLIENT_S_DN_CN`,
    /// `SSL_CIPHER`, `SSL_SERVER_A_SIG`, `SSL_SERVER_A_KEY`, `PP2_UNIQUE_ID` (as lighttpd).
    pub env: Vec<(&'static str, Vec<u8>)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Valid so far: the header is not complete.
    NeedMore,
    /// Not a PROXY header, or a malformed one: why.
    Invalid(&'static str),
    /// The header is the first `len` bytes.
    Done { len: usize, header: Header },
}

/// Parse the PROXY header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed {
    match buf.first() {
        None => Parsed::NeedMore,
        Some(b'\r') => v2(buf),
        Some(b'P') => v1(buf),
        Some(_) => Parsed::Invalid("not a PROXY protocol header"),
    }
}

fn v1(buf: &[u8]) -> Parsed {
    let n = buf.len().min(5);
    if buf[..n] != b"PROXY"[..n] {
        return Parsed::Invalid("not a PROXY protocol header");
    }
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(cr) = window.iter().position(|&b| b == b'\r' || b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Parsed::Invalid("version 1 line longer than 107 bytes")
        } else {
            Parsed::NeedMore
        };
    };
    if window[cr] == b'\n' {
        return Parsed::Invalid("version 1 line ends without CR");
    }
    match buf.get(cr + 1) {
        None => return Parsed::NeedMore,
        Some(b'\n') => {}
        Some(_) => return Parsed::Invalid("version 1 line: CR without LF"),
    }
    let len = cr + 2;
    let line = &buf[..cr];
    let Some(rest) = line.strip_prefix(b"PROXY ") else {
        return Parsed::Invalid("version 1: no space after PROXY");
    };
    if rest == b"UNKNOWN" || rest.starts_with(b"UNKNOWN ") {
        return Parsed::Done { len, header: Header::default() };
    }
    let v6 = if let Some(r) = rest.strip_prefix(b"TCP4 ") {
        (false, r)
    } else if let Some(r) = rest.strip_prefix(b"TCP6 ") {
        (true, r)
    } else {
        return Parsed::Invalid("version 1: protocol is not TCP4, TCP6 or UNKNOWN");
    };
    let (is_v6, fields) = v6;
    let Ok(text) = std::str::from_utf8(fields) else { return Parsed::Invalid("version 1: not text") };
    let parts: Vec<&str> = text.split(' ').collect();
    let [src, dst, sport, dport] = parts[..] else {
        return Parsed::Invalid("version 1: expected source, destination and two ports");
    };
    let addr = |s: &str| -> Option<IpAddr> {
        if is_v6 {
            s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        } else {
            s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        }
    };
    let (Some(src), Some(_dst), Some(sport), Some(_dport)) = (addr(src), addr(dst), port(sport), port(dport))
    else {
        return Parsed::Invalid("version 1: bad address or port");
    };
    Parsed::Done { len, header: Header { source: Some(SocketAddr::new(src, sport)), ..Header::default() } }
}

/// 1 to 65535, digits only (no sign, no leading blanks).
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u16>().ok().filter(|&p| p > 0)
}

fn v2(buf: &[u8]) -> Parsed {
    let n = buf.len().min(12);
    if buf[..n] != V2_SIGNATURE[..n] {
        return Parsed::Invalid("not a PROXY protocol header");
    }
    if buf.len() < 16 {
        return Parsed::NeedMore;
    }
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("version 2 signature with another version");
    }
    let len = 16 + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < len {
        return Parsed::NeedMore;
    }
    let body = &buf[16..len];
    match ver_cmd & 0x0F {
        0x0 => return Parsed::Done { len, header: Header::default() },
        0x1 => {}
        _ => return Parsed::Invalid("version 2: unknown command"),
    }
    let (source, used) = match buf[13] {
        // TCP over IPv4
        0x11 => {
            let Some(a) = body.get(..12) else { return Parsed::Invalid("version 2: short IPv4 addresses") };
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            (Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([a[8], a[9]]))), 12)
        }
        // TCP over IPv6
        0x21 => {
            let Some(a) = body.get(..36) else { return Parsed::Invalid("version 2: short IPv6 addresses") };
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(o);
            (Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be_bytes([a[32], a[33]]))), 36)
        }
        // UNSPEC, UDP, unix sockets: keep the connection's address.
        _ => return Parsed::Done { len, header: Header::default() },
    };
    let mut header = Header { source, ..Header::default() };
    tlvs(&body[used..], &mut header);
    Parsed::Done { len, header }
}

/// Type-length-value entries after the addresses; a malformed one ends the list (lighttpd
/// does the same: the addresses stand).
fn tlvs(mut t: &[u8], h: &mut Header) {
    while t.len() >= 3 {
        let n = usize::from(u16::from_be_bytes([t[1], t[2]]));
        let Some(value) = t.get(3..3 + n) else { return };
        match t[0] {
            // PP2_TYPE_SSL: client flags, verify result, sub-TLVs.
            0x20 if n >= 5 => {
                let client = value[0];
                let verify = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
                h.ssl |= client & 0x01 != 0;
                h.cert_verified |= client & 0x06 != 0 && verify == 0;
                let mut sub = &value[5..];
                while sub.len() >= 3 {
                    let m = usize::from(u16::from_be_bytes([sub[1], sub[2]]));
                    let Some(v) = sub.get(3..3 + m) else { break };
                    let name = match sub[0] {
                        0x21 => Some("SSL_PROTOCOL"),
                        0x22 => Some("SSL_CLIENT_S_DN_CN"),
                        0x23 => Some("SSL_CIPHER"),
                        0x24 => Some("SSL_SERVER_A_SIG"),
                        0x25 => Some("SSL_SERVER_A_KEY"),
                        _ => None,
                    };
                    if let Some(name) = name {
                        set(&mut h.env, name, v);
                    }
                    sub = &sub[3 + m..];
                }
            }
            // PP2_TYPE_UNIQUE_ID
            0x05 => set(&mut h.env, "PP2_UNIQUE_ID", value),
            // ALPN, AUTHORITY, CRC32C, NOOP, NETNS, vendor types: skipped.
            _ => {}
        }
        t = &t[3 + n..];
    }
}

fn set(env: &mut Vec<(&'static str, Vec<u8>)>, name: &'static str, v: &[u8]) {
    env.retain(|(n, _)| *n != name);
    env.push((name, v.to_vec()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn ipv4_body(src: [u8; 4], sport: u16) -> Vec<u8> {
        let mut b = src.to_vec();
        b.extend_from_slice(&[198, 51, 100, 9]);
        b.extend_from_slice(&sport.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    fn tlv(t: u8, v: &[u8]) -> Vec<u8> {
        let mut o = vec![t];
        o.extend_from_slice(&(v.len() as u16).to_be_bytes());
        o.extend_from_slice(v);
        o
    }

    fn source(p: &Parsed) -> Option<String> {
        match p {
            Parsed::Done { header, .. } => header.source.map(|s| s.to_string()),
            _ => None,
        }
    }

    #[test]
    fn version_1() {
        let ok: &[(&str, Option<&str>)] = &[
            ("PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\r\n", Some("192.0.2.1:4711")),
            ("PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n", Some("[2001:db8::1]:4711")),
            ("PROXY UNKNOWN\r\n", None),
            ("PROXY UNKNOWN 192.0.2.1 198.51.100.2 1 2\r\n", None),
            ("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", Some("255.255.255.255:65535")),
        ];
        for (line, src) in ok {
            let mut buf = line.as_bytes().to_vec();
            buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
            let p = parse(&buf);
            assert!(matches!(p, Parsed::Done { len, .. } if len == line.len()), "{line:?}: {p:?}");
            assert_eq!(source(&p).as_deref(), *src, "{line:?}");
        }
        let bad = [
            "PROXY TCP4 192.0.2.1 198.51.100.2 0 443\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.2 4711\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.2 4711 443 9\r\n",
            "PROXY TCP4 2001:db8::1 198.51.100.2 4711 443\r\n",
            "PROXY TCP6 192.0.2.1 2001:db8::2 4711 443\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.2 +4711 443\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",
            "PROXY TCP4  192.0.2.1 198.51.100.2 4711 443\r\n",
            "PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\n",
            "PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\rX",
            "PROXY UDP4 192.0.2.1 198.51.100.2 4711 443\r\n",
            "PROXYTCP4 192.0.2.1 198.51.100.2 4711 443\r\n",
            "GET / HTTP/1.1\r\n",
            "PRoXY TCP4",
        ];
        for b in bad {
            assert!(matches!(parse(b.as_bytes()), Parsed::Invalid(_)), "{b:?}");
        }
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(120));
        assert!(matches!(parse(long.as_bytes()), Parsed::Invalid(_)));
        for partial in
            ["P", "PROX", "PROXY", "PROXY TCP4 192.0.2.1", "PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\r"]
        {
            assert_eq!(parse(partial.as_bytes()), Parsed::NeedMore, "{partial:?}");
        }
    }

    #[test]
    fn version_2() {
        let h = v2_header(1, 0x11, &ipv4_body([192, 0, 2, 7], 5555));
        let mut buf = h.clone();
        buf.extend_from_slice(b"GET /");
        let p = parse(&buf);
        assert!(matches!(p, Parsed::Done { len, .. } if len == h.len()));
        assert_eq!(source(&p).as_deref(), Some("192.0.2.7:5555"));
        for cut in 1..h.len() {
            assert_eq!(parse(&h[..cut]), Parsed::NeedMore, "cut at {cut}");
        }

        let mut b6 = Vec::new();
        b6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap_or(Ipv6Addr::LOCALHOST).octets());
        b6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        b6.extend_from_slice(&5556u16.to_be_bytes());
        b6.extend_from_slice(&443u16.to_be_bytes());
        assert_eq!(source(&parse(&v2_header(1, 0x21, &b6))).as_deref(), Some("[2001:db8::7]:5556"));

        // LOCAL (with or without addresses), UNSPEC, UDP and unix: the connection's own address.
        for (cmd, fam, body) in [
            (0, 0x00, Vec::new()),
            (0, 0x11, ipv4_body([192, 0, 2, 7], 1)),
            (1, 0x00, Vec::new()),
            (1, 0x12, ipv4_body([192, 0, 2, 7], 1)),
            (1, 0x31, vec![0u8; 216]),
        ] {
            let p = parse(&v2_header(cmd, fam, &body));
            assert!(
                matches!(&p, Parsed::Done { header, .. } if header.source.is_none()),
                "{cmd} {fam}: {p:?}"
            );
        }

        let mut bad_version = v2_header(1, 0x11, &ipv4_body([192, 0, 2, 7], 1));
        bad_version[12] = 0x11;
        let bad: Vec<Vec<u8>> = vec![
            bad_version,
            v2_header(2, 0x11, &ipv4_body([192, 0, 2, 7], 1)),
            v2_header(1, 0x11, &[1, 2, 3]),
            v2_header(1, 0x21, &ipv4_body([192, 0, 2, 7], 1)),
            b"\r\n\r\nX".to_vec(),
        ];
        for b in bad {
            assert!(matches!(parse(&b), Parsed::Invalid(_)), "{b:?}");
        }
    }

    #[test]
    fn version_2_tlvs() {
        let mut ssl = vec![0x01 | 0x02];
        ssl.extend_from_slice(&0u32.to_be_bytes());
        ssl.extend(tlv(0x21, b"TLSv1.3"));
        ssl.extend(tlv(0x22, b"alice"));
        ssl.extend(tlv(0x23, b"TLS_AES_128_GCM_SHA256"));
        let mut body = ipv4_body([192, 0, 2, 7], 5555);
        body.extend(tlv(0x04, b"noop"));
        body.extend(tlv(0x20, &ssl));
        body.extend(tlv(0x05, b"id-1"));
        let Parsed::Done { header, .. } = parse(&v2_header(1, 0x11, &body)) else { panic!("not parsed") };
        assert!(header.ssl && header.cert_verified);
        let env: Vec<(&str, &[u8])> = header.env.iter().map(|(n, v)| (*n, v.as_slice())).collect();
        assert_eq!(
            env,
            vec![
                ("SSL_PROTOCOL", &b"TLSv1.3"[..]),
                ("SSL_CLIENT_S_DN_CN", b"alice"),
                ("SSL_CIPHER", b"TLS_AES_128_GCM_SHA256"),
                ("PP2_UNIQUE_ID", b"id-1")
            ]
        );
        // A failed verification, no client certificate, and a TLV running past the end.
        let mut ssl = vec![0x01 | 0x02];
        ssl.extend_from_slice(&1u32.to_be_bytes());
        let mut body = ipv4_body([192, 0, 2, 7], 5555);
        body.extend(tlv(0x20, &ssl));
        body.extend_from_slice(&[0x05, 0x00, 0x09, b'x']);
        let Parsed::Done { header, .. } = parse(&v2_header(1, 0x11, &body)) else { panic!("not parsed") };
        assert!(header.ssl && !header.cert_verified && header.env.is_empty());
        assert_eq!(header.source.map(|s| s.port()), Some(5555));
    }
}
