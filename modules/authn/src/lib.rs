//! The contract between mod_auth and the modules that know passwords (lighttpd's
//! `http_auth_backend_t`): a backend module registers one [`Backend`] table per backend name
//! as the server service `authn.NAME` (mod_authn_file: `authn.htpasswd`, `authn.htdigest`,
//! `authn.plain`), and mod_auth looks up the one `auth.backend` names.
//!
//! Data in and out of a backend: mod_auth passes the request (so the backend reads its own
//! per-request configuration, e.g. which user file) and the credentials; the backend answers
//! whether a Basic password is right ([`Backend::basic`], possibly later, from the blocking
//! pool, through a [`DoneFn`]), the stored digest of a user for Digest ([`Backend::digest`]),
//! and group membership ([`Backend::in_group`]). Authorisation rules (`require`) are
//! mod_auth's business.
//!
//! The table is `#[repr(C)]` and append-only like the server's own ABI: a caller checks
//! `struct_size` before using a field added later. Strings cross as borrowed views, valid for
//! the call.
//!
//! Both sides also hash the same things for Digest (RFC 7616): [`digest_hex`] and friends.

use featherd_mod_api::abi::{fd_request, Str};
use md5::Md5;
use sha2::{Sha256, Sha512_256};
use std::ffi::c_void;

/// Service name prefix: the backend `htpasswd` is the service `authn.htpasswd`.
pub const SERVICE_PREFIX: &str = "authn.";

/// The service name of backend `name`.
pub fn service_name(name: &str) -> String {
    format!("{SERVICE_PREFIX}{name}")
}

/// Digest algorithms (bits, so a `require` can allow several).
pub const ALGO_MD5: u32 = 1;
pub const ALGO_SHA256: u32 = 2;
pub const ALGO_SHA512_256: u32 = 4;

/// The password (or user) is right / the user was found.
pub const AUTHN_OK: i32 = 0;
/// Unknown user or wrong password.
pub const AUTHN_DENIED: i32 = 1;
/// The backend cannot answer (no user file configured, file unreadable); it logged why.
pub const AUTHN_ERROR: i32 = 2;
/// The answer comes later: the backend calls `done(ctx, result)` exactly once, on the same
/// worker thread, from its event loop (never from inside the call that returned PENDING).
pub const AUTHN_PENDING: i32 = 3;

/// How a backend delivers a late Basic answer (one of the other `AUTHN_*` values).
pub type DoneFn = unsafe extern "C" fn(ctx: *mut c_void, result: i32);

/// A Basic check: is `password` right for `user`?
#[repr(C)]
pub struct BasicQuery {
    pub user: Str,
    pub password: Str,
    /// The realm of the matching `auth.require` (an htdigest file stores per-realm digests).
    pub realm: Str,
    /// The `ALGO_*` bits the `auth.require` allows (for htdigest files: which digest is stored).
    pub algorithms: u32,
}

/// A Digest lookup: the stored H(user:realm:password) of `user` for `algorithm`.
#[repr(C)]
pub struct DigestQuery {
    /// The user name, or with `userhash` the client's H(user:realm) in lower-case hex.
    pub user: Str,
    pub realm: Str,
    /// One `ALGO_*` value.
    pub algorithm: u32,
    /// 1 when `user` is a user hash (RFC 7616 `userhash=true`).
    pub userhash: u32,
}

/// What a Digest lookup found.
#[repr(C)]
pub struct DigestAnswer {
    /// The binary digest H(user:realm:password), `ha1_len` bytes (16 or 32).
    pub ha1: [u8; 32],
    pub ha1_len: u32,
    /// The user's real name (with `userhash`, the name the hash belongs to), `user_len` bytes.
    pub user: [u8; 256],
    pub user_len: u32,
}

impl Default for DigestAnswer {
    fn default() -> Self {
        DigestAnswer { ha1: [0; 32], ha1_len: 0, user: [0; 256], user_len: 0 }
    }
}

impl DigestAnswer {
    pub fn ha1(&self) -> &[u8] {
        &self.ha1[..(self.ha1_len as usize).min(32)]
    }
    pub fn user(&self) -> &[u8] {
        &self.user[..(self.user_len as usize).min(256)]
    }
    /// Fill in; false when the digest or the name does not fit.
    pub fn set(&mut self, ha1: &[u8], user: &[u8]) -> bool {
        if ha1.len() > self.ha1.len() || user.len() > self.user.len() {
            return false;
        }
        self.ha1[..ha1.len()].copy_from_slice(ha1);
        self.ha1_len = ha1.len() as u32;
        self.user[..user.len()].copy_from_slice(user);
        self.user_len = user.len() as u32;
        true
    }
}

/// One password backend. Functions may be absent (None): htpasswd files hold no digests.
#[repr(C)]
pub struct Backend {
    /// `size_of::<Backend>()` as the provider was built.
    pub struct_size: u32,
    /// The backend's name, e.g. "htpasswd".
    pub name: Str,
    /// Check a Basic password. Returns an `AUTHN_*` value; with `AUTHN_PENDING` the answer
    /// comes through `done(ctx, result)`.
    pub basic: Option<
        unsafe extern "C" fn(
            req: *mut fd_request,
            q: *const BasicQuery,
            done: DoneFn,
            ctx: *mut c_void,
        ) -> i32,
    >,
    /// Look up a user's stored digest. Returns `AUTHN_OK` (and fills `out`), `AUTHN_DENIED`
    /// or `AUTHN_ERROR`; never pending.
    pub digest: Option<
        unsafe extern "C" fn(req: *mut fd_request, q: *const DigestQuery, out: *mut DigestAnswer) -> i32,
    >,
    /// Whether `user` is in `group`: 1 yes, 0 no.
    pub in_group: Option<unsafe extern "C" fn(req: *mut fd_request, user: Str, group: Str) -> i32>,
}

// SAFETY: the table is immutable static data (function pointers and a static name).
unsafe impl Sync for Backend {}

/// Whether the table `b` has the field that ends at byte `end`.
pub fn backend_has(b: &Backend, end: usize) -> bool {
    b.struct_size as usize >= end
}

/// Hash the concatenation of `parts` with `algo` (binary).
pub fn digest(algo: u32, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: sha2::Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for p in parts {
            d.update(p);
        }
        d.finalize().to_vec()
    }
    match algo {
        ALGO_SHA256 => run::<Sha256>(parts),
        ALGO_SHA512_256 => run::<Sha512_256>(parts),
        _ => run::<Md5>(parts),
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

/// Decode hex (either case); None for odd length or a non-hex character.
pub fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    fn v(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    s.chunks(2).map(|p| Some(v(p[0])? << 4 | v(p[1])?)).collect()
}

/// Hex of `algo` over `parts` joined by ':' (e.g. H(user:realm:password)).
pub fn digest_hex(algo: u32, parts: &[&[u8]]) -> String {
    hex(&digest_joined(algo, parts))
}

/// Binary `algo` over `parts` joined by ':'.
pub fn digest_joined(algo: u32, parts: &[&[u8]]) -> Vec<u8> {
    let mut v: Vec<&[u8]> = Vec::with_capacity(parts.len() * 2);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            v.push(b":");
        }
        v.push(p);
    }
    digest(algo, &v)
}

/// The digest length of `algo` in bytes.
pub fn digest_len(algo: u32) -> usize {
    match algo {
        ALGO_SHA256 | ALGO_SHA512_256 => 32,
        _ => 16,
    }
}

/// Constant-time equality of two byte strings (the lengths are not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7616_example_digests() {
        // RFC 7616 section 3.9.1: user Mufasa, realm http-auth@example.org, password
        // "Circle of Life".
        let ha1 = digest_hex(ALGO_MD5, &[b"Mufasa", b"http-auth@example.org", b"Circle of Life"]);
        let ha2 = digest_hex(ALGO_MD5, &[b"GET", b"/dir/index.html"]);
        let nonce = b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
        let cnonce = b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let r = digest_hex(ALGO_MD5, &[ha1.as_bytes(), nonce, b"00000001", cnonce, b"auth", ha2.as_bytes()]);
        assert_eq!(r, "8ca523f5e9506fed4657c9700eebdbec");
        let ha1 = digest_hex(ALGO_SHA256, &[b"Mufasa", b"http-auth@example.org", b"Circle of Life"]);
        let ha2 = digest_hex(ALGO_SHA256, &[b"GET", b"/dir/index.html"]);
        let r =
            digest_hex(ALGO_SHA256, &[ha1.as_bytes(), nonce, b"00000001", cnonce, b"auth", ha2.as_bytes()]);
        assert_eq!(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(unhex(hex(&[0, 255, 16]).as_bytes()), Some(vec![0, 255, 16]));
        assert_eq!(unhex(b"0G"), None);
        assert_eq!(unhex(b"abc"), None);
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }
}
