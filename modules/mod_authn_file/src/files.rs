//! The password files and hash formats, as pure functions over bytes (no server, no I/O
//! except [`read_file`]), so that each format is unit-tested with vectors from the real tools.
//!
//! Formats (lighttpd's, which are Apache's):
//! * htpasswd: `user:hash` per line; hash as `htpasswd` writes it: bcrypt (`$2y$`, also
//!   `$2a$`/`$2b$`), apr1 (`$apr1$`, Apache's MD5 scheme), `{SHA}` (base64 SHA-1), and the
//!   system crypt(3) formats: MD5-crypt `$1$`, SHA-256/512-crypt `$5$`/`$6$`, legacy DES
//!   (13 characters).
//! * htdigest: `user:realm:hexdigest[:userhash]`, the digest H(user:realm:password) in MD5
//!   (32 hex digits) or SHA-256 / SHA-512-256 (64).
//! * plain: `user:password` in clear text.
//! * group file: `group: user1 user2 ...` (Apache's AuthGroupFile format).
//!
//! In every file, blank lines and lines starting with `#` are skipped, a trailing CR is
//! ignored, and lines longer than 1024 bytes are skipped (lighttpd's limits).

use featherd_authn::{ct_eq, digest_joined, digest_len, hex, unhex};
use std::io::Read;

/// lighttpd's limit on a password file (it expects well under 1 MB).
pub const MAX_FILE: u64 = 64 * 1024 * 1024;
const MAX_LINE: usize = 1024;

/// Read a whole password file. Errors name the file.
pub fn read_file(path: &str) -> Result<Vec<u8>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let mut v = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut v).map_err(|e| format!("cannot read {path}: {e}"))?;
    if v.len() as u64 > MAX_FILE {
        return Err(format!("{path} is larger than {MAX_FILE} bytes"));
    }
    Ok(v)
}

/// The lines that count: (1-based line number, content without CR).
fn lines(data: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    data.split(|&b| b == b'\n').enumerate().filter_map(|(i, l)| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        (!l.is_empty() && l[0] != b'#' && l.len() <= MAX_LINE).then_some((i + 1, l))
    })
}

/// A malformed line: (line number, what was expected). The caller logs them.
pub type BadLines = Vec<usize>;

/// The second field of the first `user:rest` line for `user` (htpasswd and plain files).
pub fn find_user<'a>(data: &'a [u8], user: &[u8], bad: &mut BadLines) -> Option<&'a [u8]> {
    for (n, l) in lines(data) {
        let Some(c) = l.iter().position(|&b| b == b':') else {
            bad.push(n);
            continue;
        };
        if &l[..c] == user {
            return Some(&l[c + 1..]);
        }
    }
    None
}

/// Fields of an htdigest line.
struct DigestLine<'a> {
    user: &'a [u8],
    realm: &'a [u8],
    digest: &'a [u8],
    userhash: Option<&'a [u8]>,
}

fn digest_lines<'a>(data: &'a [u8], bad: &'a mut BadLines) -> impl Iterator<Item = DigestLine<'a>> + 'a {
    lines(data).filter_map(move |(n, l)| {
        let mut it = l.splitn(4, |&b| b == b':');
        match (it.next(), it.next(), it.next()) {
            (Some(user), Some(realm), Some(digest)) => {
                Some(DigestLine { user, realm, digest, userhash: it.next() })
            }
            _ => {
                bad.push(n);
                None
            }
        }
    })
}

/// The stored digest (binary) and real user name of an htdigest entry. With `userhash`,
/// `user` is the client's H(user:realm) in hex, matched against the line's 4th field or, when
/// absent, computed from the line (htdigest does not write that field).
pub fn htdigest_lookup(
    data: &[u8],
    user: &[u8],
    realm: &[u8],
    algo: u32,
    userhash: bool,
    bad: &mut BadLines,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let want = digest_len(algo) * 2;
    for l in digest_lines(data, bad) {
        if l.realm != realm || l.digest.len() != want {
            continue;
        }
        let hit = if userhash {
            let h = match l.userhash {
                Some(h) => h.to_ascii_lowercase(),
                None => hex(&digest_joined(algo, &[l.user, l.realm])).into_bytes(),
            };
            ct_eq(&h, &user.to_ascii_lowercase())
        } else {
            l.user == user
        };
        if hit {
            return unhex(l.digest).map(|d| (d, l.user.to_vec()));
        }
    }
    None
}

/// The user whose H(user:realm) (hex) is `userhash`, among `user:password` lines (plain files
/// with userhash).
pub fn plain_userhash<'a>(
    data: &'a [u8],
    userhash: &[u8],
    realm: &[u8],
    algo: u32,
    bad: &mut BadLines,
) -> Option<(&'a [u8], &'a [u8])> {
    let want = userhash.to_ascii_lowercase();
    for (n, l) in lines(data) {
        let Some(c) = l.iter().position(|&b| b == b':') else {
            bad.push(n);
            continue;
        };
        let u = &l[..c];
        if ct_eq(hex(&digest_joined(algo, &[u, realm])).as_bytes(), &want) {
            return Some((u, &l[c + 1..]));
        }
    }
    None
}

/// Whether `user` is listed in `group` of a group file.
pub fn in_group(data: &[u8], user: &[u8], group: &[u8]) -> bool {
    lines(data).any(|(_, l)| {
        let Some(c) = l.iter().position(|&b| b == b':') else { return false };
        l[..c].trim_ascii() == group
            && l[c + 1..].split(|b| b.is_ascii_whitespace()).any(|m| !m.is_empty() && m == user)
    })
}

/// How expensive checking a stored htpasswd hash is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cost {
    /// Microseconds: check on the event loop.
    Cheap,
    /// Milliseconds or more (bcrypt, SHA-crypt with its rounds): check on the blocking pool.
    Slow,
}

pub fn cost(stored: &[u8]) -> Cost {
    if stored.starts_with(b"$2") || stored.starts_with(b"$5$") || stored.starts_with(b"$6$") {
        Cost::Slow
    } else {
        Cost::Cheap
    }
}

/// Whether `password` matches the htpasswd `stored` hash. Unknown formats never match.
pub fn htpasswd_verify(stored: &[u8], password: &[u8]) -> bool {
    if let Some(b64) = stored.strip_prefix(b"{SHA}") {
        use base64::Engine as _;
        use sha1::Digest as _;
        let Ok(want) = base64::engine::general_purpose::STANDARD.decode(b64) else { return false };
        return ct_eq(&sha1::Sha1::digest(password), &want);
    }
    if let Some(rest) = stored.strip_prefix(b"$apr1$") {
        let salt_end = rest.iter().take(8).position(|&b| b == b'$').unwrap_or(rest.len().min(8));
        return ct_eq(&apr1(password, &rest[..salt_end]), stored);
    }
    let Ok(stored) = std::str::from_utf8(stored) else { return false };
    if stored.starts_with("$2") {
        return bcrypt::verify(password, stored).unwrap_or(false);
    }
    // The crypt(3) family: MD5-crypt, SHA-crypt, DES (2 + 11 characters; anything shorter is
    // not a hash, as lighttpd decides too).
    if stored.len() < 13 {
        return false;
    }
    match pwhash::unix::crypt(password, stored) {
        Ok(h) => ct_eq(h.as_bytes(), stored.as_bytes()),
        Err(_) => false,
    }
}

/// Apache's `$apr1$` hash of `password` with `salt` (at most 8 characters): MD5-crypt with the
/// magic "$apr1$" in place of "$1$". The MD5 is the md-5 crate's; this is only the scheme.
pub fn apr1(password: &[u8], salt: &[u8]) -> Vec<u8> {
    use md5::{Digest, Md5};
    const MAGIC: &[u8] = b"$apr1$";
    let salt = &salt[..salt.len().min(8)];
    let alt = Md5::new().chain_update(password).chain_update(salt).chain_update(password).finalize();
    let mut ctx = Md5::new().chain_update(password).chain_update(MAGIC).chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    let mut i = password.len();
    while i != 0 {
        if i & 1 != 0 {
            ctx.update([0u8]);
        } else {
            ctx.update(&password[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize();
    for r in 0..1000 {
        let mut c = Md5::new();
        if r & 1 != 0 {
            c.update(password);
        } else {
            c.update(fin);
        }
        if r % 3 != 0 {
            c.update(salt);
        }
        if r % 7 != 0 {
            c.update(password);
        }
        if r & 1 != 0 {
            c.update(fin);
        } else {
            c.update(password);
        }
        fin = c.finalize();
    }
    let mut out = Vec::with_capacity(37);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(salt);
    out.push(b'$');
    let f = fin;
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        to64(&mut out, (u32::from(f[a]) << 16) | (u32::from(f[b]) << 8) | u32::from(f[c]), 4);
    }
    to64(&mut out, u32::from(f[11]), 2);
    out
}

fn to64(out: &mut Vec<u8>, mut v: u32, n: usize) {
    const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..n {
        out.push(ITOA64[(v & 0x3f) as usize]);
        v >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use featherd_authn::{ALGO_MD5, ALGO_SHA256};

    // Vectors written by apache2-utils' htpasswd/htdigest and by crypt(3).
    #[test]
    fn htpasswd_formats() {
        let ok = [
            ("$apr1$paBnvqC7$zDyoLuI4C20u/Z3wrVrJr0", "builder"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password"),
            ("$2y$05$7zf32wyGS./6GJ9S1s47xeBYUh5e4G6bEadgr/gDUBIN6ghMFfoH2", "secret"),
            ("$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0", "password"),
            ("aZGJuE6EXrjEE", "test"),
            (
                "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5",
                "Hello world!",
            ),
            (
                "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
                "Hello world!",
            ),
        ];
        for (h, pw) in ok {
            assert!(htpasswd_verify(h.as_bytes(), pw.as_bytes()), "{h} should accept {pw}");
            assert!(!htpasswd_verify(h.as_bytes(), b"wrong"), "{h} should refuse a wrong password");
        }
        for bad in ["", "x", "{SHA}!!!", "$apr1$", "$2y$99$short", "$9$x$y"] {
            assert!(!htpasswd_verify(bad.as_bytes(), b"anything"), "{bad:?}");
        }
        assert_eq!(cost(b"$2y$10$abc"), Cost::Slow);
        assert_eq!(cost(b"$6$abc"), Cost::Slow);
        assert_eq!(cost(b"$apr1$abc"), Cost::Cheap);
    }

    #[test]
    fn files_parse() {
        let data = b"# comment\r\n\nbroken line\nalice:x1\r\nbob:x2:extra\n";
        let mut bad = Vec::new();
        assert_eq!(find_user(data, b"alice", &mut bad), Some(&b"x1"[..]));
        assert_eq!(find_user(data, b"bob", &mut bad), Some(&b"x2:extra"[..]));
        assert_eq!(find_user(data, b"carol", &mut bad), None);
        assert!(bad.contains(&3));

        let d = b"carol:My Realm:3c5447a3f283d3fa0e2042aeb16c06e9\n";
        let (ha1, u) = htdigest_lookup(d, b"carol", b"My Realm", ALGO_MD5, false, &mut bad).unwrap();
        assert_eq!(hex(&ha1), "3c5447a3f283d3fa0e2042aeb16c06e9");
        assert_eq!(u, b"carol");
        assert!(htdigest_lookup(d, b"carol", b"Other", ALGO_MD5, false, &mut bad).is_none());
        assert!(htdigest_lookup(d, b"carol", b"My Realm", ALGO_SHA256, false, &mut bad).is_none());
        let uh = hex(&digest_joined(ALGO_MD5, &[b"carol", b"My Realm"]));
        let (_, u) = htdigest_lookup(d, uh.as_bytes(), b"My Realm", ALGO_MD5, true, &mut bad).unwrap();
        assert_eq!(u, b"carol");

        let g = b"admins: alice bob\nstaff:carol\n";
        assert!(in_group(g, b"bob", b"admins"));
        assert!(in_group(g, b"carol", b"staff"));
        assert!(!in_group(g, b"carol", b"admins"));
        assert!(!in_group(g, b"", b"admins"));
    }
}
