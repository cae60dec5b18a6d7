//! Digest authentication (RFC 7616) as pure functions: the `Authorization: Digest ...`
//! parameters, nonces, and the expected response. No server calls, so every rule is
//! unit-tested with byte strings.
//!
//! Nonces are `HEXTIME:RANDOM:HASH`, HASH being H(HEXTIME:RANDOM:secret) with the challenge's
//! algorithm. The secret is the rule's `nonce_secret`, or one drawn at start (so nonces are
//! always tied to a secret and expire after [`NONCE_LIFETIME`] seconds; lighttpd ties them to
//! a secret only when `nonce_secret` is set).

use crate::rules::ALGO_SESS;
use featherd_authn::{ct_eq, digest_hex, digest_len, hex, unhex};

/// How long a nonce is accepted (lighttpd's 10 minutes).
pub const NONCE_LIFETIME: u64 = 600;
/// After this age a successful answer carries a `nextnonce` (lighttpd's 9 minutes).
pub const NONCE_RENEW: u64 = 540;

/// The parameters of an `Authorization: Digest` header (values unquoted and unescaped).
#[derive(Debug, Default)]
pub struct Params {
    pub username: Option<Vec<u8>>,
    pub username_star: Option<Vec<u8>>,
    pub realm: Option<Vec<u8>>,
    pub nonce: Option<Vec<u8>>,
    pub uri: Option<Vec<u8>>,
    pub algorithm: Option<Vec<u8>>,
    pub qop: Option<Vec<u8>>,
    pub cnonce: Option<Vec<u8>>,
    pub nc: Option<Vec<u8>>,
    pub response: Option<Vec<u8>>,
    pub userhash: Option<Vec<u8>>,
    pub opaque: Option<Vec<u8>>,
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parse the part after "Digest ". Stops quietly at the first malformed parameter (the
/// caller then finds fields missing); unknown parameters are ignored; names are
/// case-insensitive.
pub fn parse(s: &[u8]) -> Params {
    let mut p = Params::default();
    let mut i = 0;
    while i < s.len() {
        while i < s.len() && (is_ws(s[i]) || s[i] == b',') {
            i += 1;
        }
        if i >= s.len() {
            break;
        }
        let start = i;
        while i < s.len() && s[i] != b'=' && !is_ws(s[i]) && s[i] != b',' {
            i += 1;
        }
        let name = s[start..i].to_ascii_lowercase();
        while i < s.len() && is_ws(s[i]) {
            i += 1;
        }
        if i >= s.len() || s[i] != b'=' {
            break;
        }
        i += 1;
        while i < s.len() && is_ws(s[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < s.len() && s[i] == b'"' {
            i += 1;
            let mut closed = false;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        closed = true;
                        i += 1;
                        break;
                    }
                    b'\\' if i + 1 < s.len() => {
                        value.push(s[i + 1]);
                        i += 2;
                    }
                    b => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            if !closed {
                break;
            }
        } else {
            let start = i;
            while i < s.len() && s[i] != b',' && !is_ws(s[i]) {
                i += 1;
            }
            value.extend_from_slice(&s[start..i]);
        }
        let slot = match name.as_slice() {
            b"username" => &mut p.username,
            b"username*" => &mut p.username_star,
            b"realm" => &mut p.realm,
            b"nonce" => &mut p.nonce,
            b"uri" => &mut p.uri,
            b"algorithm" => &mut p.algorithm,
            b"qop" => &mut p.qop,
            b"cnonce" => &mut p.cnonce,
            b"nc" => &mut p.nc,
            b"response" => &mut p.response,
            b"userhash" => &mut p.userhash,
            b"opaque" => &mut p.opaque,
            _ => continue,
        };
        *slot = Some(value);
    }
    p
}

/// Decode an RFC 8187 `username*` value: `charset'language'pct-encoded`. UTF-8 or
/// ISO-8859-1 (converted to UTF-8); control characters are refused. Err is what to log.
pub fn decode_ext_value(v: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut parts = v.splitn(3, |&b| b == b'\'');
    let (Some(charset), Some(_lang), Some(enc)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("digest: invalid \"username*\" ext-value");
    };
    let latin1 = if charset.eq_ignore_ascii_case(b"utf-8") {
        false
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        true
    } else {
        return Err("digest: invalid \"username*\" ext-value");
    };
    let mut raw = Vec::with_capacity(enc.len());
    let mut i = 0;
    while i < enc.len() {
        if enc[i] == b'%' {
            let h = enc.get(i + 1..i + 3).and_then(unhex).ok_or("digest: invalid \"username*\" ext-value")?;
            raw.push(h[0]);
            i += 3;
        } else {
            raw.push(enc[i]);
            i += 1;
        }
    }
    let out = if latin1 {
        raw.iter().map(|&b| b as char).collect::<String>().into_bytes()
    } else {
        std::str::from_utf8(&raw).map_err(|_| "digest: invalid \"username*\" invalid UTF-8")?;
        raw
    };
    if out.len() > 256 {
        return Err("digest: invalid \"username*\" too long");
    }
    if out.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err("digest: invalid \"username*\" contains ctrl chars");
    }
    Ok(out)
}

/// A fresh nonce for `now` with random `rnd`.
pub fn make_nonce(now: u64, rnd: u32, secret: &[u8], algo: u32) -> String {
    let ts = format!("{now:x}");
    let r = format!("{rnd:08x}");
    let h = digest_hex(algo, &[ts.as_bytes(), r.as_bytes(), secret]);
    format!("{ts}:{r}:{h}")
}

#[derive(Debug, PartialEq, Eq)]
pub enum NonceCheck {
    /// Ours and in its window; `renew` when it is near the end of it.
    Fresh { issued: u64, renew: bool },
    /// Ours but expired (or from the future): the client should retry with a new one.
    Stale,
    /// Not made with this secret (or not a nonce at all).
    Forged,
}

/// Check a client's nonce against the secret and the time window.
pub fn check_nonce(nonce: &[u8], now: u64, secret: &[u8], algo: u32) -> NonceCheck {
    let mut it = nonce.splitn(3, |&b| b == b':');
    let (Some(ts), Some(rnd), Some(h)) = (it.next(), it.next(), it.next()) else { return NonceCheck::Forged };
    if ts.is_empty() || ts.len() > 16 || rnd.len() != 8 || !ts.iter().chain(rnd).all(u8::is_ascii_hexdigit) {
        return NonceCheck::Forged;
    }
    let want = digest_hex(algo, &[ts, rnd, secret]);
    if !ct_eq(want.as_bytes(), h) {
        return NonceCheck::Forged;
    }
    let Ok(issued) = u64::from_str_radix(std::str::from_utf8(ts).unwrap_or("x"), 16) else {
        return NonceCheck::Forged;
    };
    if issued > now || now - issued > NONCE_LIFETIME {
        return NonceCheck::Stale;
    }
    NonceCheck::Fresh { issued, renew: now - issued > NONCE_RENEW }
}

/// The `response` the client must have sent, in hex, for stored digest `ha1` (binary,
/// H(user:realm:password)) and algorithm `algo` (with `ALGO_SESS` for a `-sess` variant).
pub fn expected_response(algo: u32, ha1: &[u8], p: &Params, method: &[u8]) -> String {
    let base = algo & !ALGO_SESS;
    let e = Vec::new();
    let v = |o: &Option<Vec<u8>>| o.as_ref().unwrap_or(&e).clone();
    let (nonce, cnonce, nc, qop, uri) = (v(&p.nonce), v(&p.cnonce), v(&p.nc), v(&p.qop), v(&p.uri));
    let mut a1 = hex(ha1);
    if algo & ALGO_SESS != 0 {
        a1 = digest_hex(base, &[a1.as_bytes(), &nonce, &cnonce]);
    }
    let a2 = digest_hex(base, &[method, &uri]);
    if p.qop.is_some() {
        digest_hex(base, &[a1.as_bytes(), &nonce, &nc, &cnonce, &qop, a2.as_bytes()])
    } else {
        digest_hex(base, &[a1.as_bytes(), &nonce, a2.as_bytes()])
    }
}

/// Whether the client's hex `response` has the right length for `algo`.
pub fn response_well_formed(algo: u32, response: &[u8]) -> bool {
    response.len() == digest_len(algo & !ALGO_SESS) * 2 && unhex(response).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use featherd_authn::{digest_joined, ALGO_MD5, ALGO_SHA256};

    #[test]
    fn parses_parameters() {
        let p = parse(
            br#"username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf", nc=00000001, cnonce="f2/w", qop=auth, response="7539", opaque="FQhe", x="a\"b""#,
        );
        assert_eq!(p.username.as_deref(), Some(&b"Mufasa"[..]));
        assert_eq!(p.algorithm.as_deref(), Some(&b"SHA-256"[..]));
        assert_eq!(p.nc.as_deref(), Some(&b"00000001"[..]));
        assert_eq!(p.qop.as_deref(), Some(&b"auth"[..]));
        assert_eq!(p.opaque.as_deref(), Some(&b"FQhe"[..]));
        let p = parse(br#"Realm = "a\"b" , USERNAME=x"#);
        assert_eq!(p.realm.as_deref(), Some(&b"a\"b"[..]));
        assert_eq!(p.username.as_deref(), Some(&b"x"[..]));
        // Malformed input stops the parse without panicking.
        for junk in [&b"username"[..], b"username=\"open", b"=", b",,,", b"a=b=c", b"\"\"\"", b"username=\\"]
        {
            let _ = parse(junk);
        }
    }

    #[test]
    fn rfc7616_response() {
        let ha1 = digest_joined(ALGO_SHA256, &[b"Mufasa", b"http-auth@example.org", b"Circle of Life"]);
        let p = parse(
            br#"username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth"#,
        );
        assert_eq!(
            expected_response(ALGO_SHA256, &ha1, &p, b"GET"),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn nonces() {
        let n = make_nonce(1000, 7, b"s", ALGO_MD5);
        assert_eq!(
            check_nonce(n.as_bytes(), 1000, b"s", ALGO_MD5),
            NonceCheck::Fresh { issued: 1000, renew: false }
        );
        assert_eq!(
            check_nonce(n.as_bytes(), 1000 + 550, b"s", ALGO_MD5),
            NonceCheck::Fresh { issued: 1000, renew: true }
        );
        assert_eq!(check_nonce(n.as_bytes(), 1000 + 601, b"s", ALGO_MD5), NonceCheck::Stale);
        assert_eq!(check_nonce(n.as_bytes(), 999, b"s", ALGO_MD5), NonceCheck::Stale);
        assert_eq!(check_nonce(n.as_bytes(), 1000, b"other", ALGO_MD5), NonceCheck::Forged);
        // A changed time with the old hash is refused.
        let forged = n.replacen("3e8", "3e9", 1);
        assert_eq!(check_nonce(forged.as_bytes(), 1001, b"s", ALGO_MD5), NonceCheck::Forged);
        for junk in ["", ":", "zz:00000000:ab", "1:2:3", "3e8:0000000:x"] {
            assert_eq!(check_nonce(junk.as_bytes(), 1000, b"s", ALGO_MD5), NonceCheck::Forged, "{junk}");
        }
    }

    #[test]
    fn ext_values() {
        assert_eq!(decode_ext_value(b"UTF-8''J%C3%A4s%C3%B8n%20Doe").unwrap(), "Jäsøn Doe".as_bytes());
        assert_eq!(decode_ext_value(b"iso-8859-1'en'J%E4son").unwrap(), "Jäson".as_bytes());
        assert!(decode_ext_value(b"utf-8''%0a").is_err());
        assert!(decode_ext_value(b"utf-8''%ff").is_err());
        assert!(decode_ext_value(b"koi8-r''x").is_err());
        assert!(decode_ext_value(b"utf-8'x").is_err());
        assert!(decode_ext_value(b"utf-8''%4").is_err());
    }
}
