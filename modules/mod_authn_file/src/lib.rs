//! mod_authn_file: the password-file backends of mod_auth (lighttpd's mod_authn_file).
//!
//! It has no hooks. At `init` it offers three [`featherd_authn::Backend`] tables as server
//! services (`authn.htpasswd`, `authn.htdigest`, `authn.plain`); mod_auth calls the one
//! `auth.backend` names, passing the request, so this module reads its own keys for that
//! request (`auth.backend.*.userfile`, `auth.backend.plain.groupfile`, settable per condition
//! block).
//!
//! Data in: the file named for the request, read on each check as lighttpd does (mod_auth's
//! `auth.cache` saves repeated reads and hashing). Data out: an answer per check. Slow hashes
//! (bcrypt, SHA-crypt) are checked on the server's blocking pool and the answer is delivered
//! on the worker's loop; the cheap ones are checked at once. The hash formats are in
//! [`files`].

pub mod files;

use featherd_authn::{
    digest_joined, Backend, BasicQuery, DigestAnswer, DigestQuery, DoneFn, ALGO_MD5, ALGO_SHA256,
    ALGO_SHA512_256, AUTHN_DENIED, AUTHN_ERROR, AUTHN_OK, AUTHN_PENDING,
};
use featherd_mod_api::abi::{fd_request, Str};
use featherd_mod_api::{export_module, with_request, Hooks, Key, Module, ModuleConfig, Value};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

// ---------------------------------------------------------------------------------------------
// Configuration

#[derive(Clone, Debug, Default)]
pub struct FileConfig {
    pub plain_groupfile: Option<String>,
    pub plain_userfile: Option<String>,
    pub htdigest_userfile: Option<String>,
    pub htpasswd_userfile: Option<String>,
}

impl ModuleConfig for FileConfig {
    const KEYS: &'static [Key] = &[
        Key::string("auth.backend.plain.groupfile"),
        Key::string("auth.backend.plain.userfile"),
        Key::string("auth.backend.htdigest.userfile"),
        Key::string("auth.backend.htpasswd.userfile"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        let s = v.to_str()?.trim();
        // A blank name unsets the file (lighttpd does the same).
        let f = (!s.is_empty()).then(|| s.to_owned());
        match key {
            0 => self.plain_groupfile = f,
            1 => self.plain_userfile = f,
            2 => self.htdigest_userfile = f,
            3 => self.htpasswd_userfile = f,
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The module

#[derive(Default)]
pub struct AuthnFile;

impl Module for AuthnFile {
    const NAME: &'static str = "mod_authn_file";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "password files for mod_auth: htpasswd, htdigest, plain, group file";
    const HOOKS: Hooks = Hooks::NONE;
    type Config = FileConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        for b in [&HTPASSWD, &HTDIGEST, &PLAIN] {
            // SAFETY: the names are static strings.
            let name = String::from_utf8_lossy(unsafe { b.name.as_bytes() }).into_owned();
            if !featherd_mod_api::register_service(&featherd_authn::service_name(&name), b) {
                log::error!("cannot offer the auth backend {name:?}: another module offers it already");
            }
        }
        AuthnFile
    }
}

export_module!(AuthnFile);

const fn backend(
    name: &'static str,
    basic: unsafe extern "C" fn(*mut fd_request, *const BasicQuery, DoneFn, *mut c_void) -> i32,
    digest: Option<unsafe extern "C" fn(*mut fd_request, *const DigestQuery, *mut DigestAnswer) -> i32>,
) -> Backend {
    Backend {
        struct_size: core::mem::size_of::<Backend>() as u32,
        name: Str::from_static(name),
        basic: Some(basic),
        digest,
        in_group: Some(in_group),
    }
}

static HTPASSWD: Backend = backend("htpasswd", htpasswd_basic, None);
static HTDIGEST: Backend = backend("htdigest", htdigest_basic, Some(htdigest_digest));
static PLAIN: Backend = backend("plain", plain_basic, Some(plain_digest));

// ---------------------------------------------------------------------------------------------
// The backends' entry points (called by mod_auth from its uri_clean hook)

/// This module's configuration for the request mod_auth is checking.
///
/// # Safety
/// `req` is the live request mod_auth passed down from its hook.
unsafe fn config_for(req: *mut fd_request) -> FileConfig {
    // SAFETY: forwarded from the caller; no other Request of this module is in use (this
    // module has no hooks of its own running).
    unsafe { with_request::<AuthnFile, _>(req, |r| r.config().clone()) }.unwrap_or_default()
}

/// Read `path` (None: not configured), logging why it cannot be used.
fn load(path: Option<&str>, key: &str) -> Option<Vec<u8>> {
    let Some(path) = path else {
        log::error!("{key} is not set: nobody can log in with this backend");
        return None;
    };
    match files::read_file(path) {
        Ok(d) => Some(d),
        Err(e) => {
            log::error!("{key}: {e}");
            None
        }
    }
}

fn log_bad(path: &str, bad: &files::BadLines, expected: &str) {
    for n in bad {
        log::warn!("{path}:{n}: parse error, expected {expected}");
    }
}

/// Borrow the bytes of a query string.
///
/// # Safety
/// `s` is valid for the call (the contract's rule for strings).
unsafe fn b<'a>(s: Str) -> &'a [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { s.as_bytes() }
}

unsafe extern "C" fn htpasswd_basic(
    req: *mut fd_request,
    q: *const BasicQuery,
    done: DoneFn,
    ctx: *mut c_void,
) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: mod_auth passes a live request and a query valid for the call.
        let (conf, q) = unsafe { (config_for(req), &*q) };
        let key = "auth.backend.htpasswd.userfile";
        let Some(data) = load(conf.htpasswd_userfile.as_deref(), key) else { return AUTHN_ERROR };
        let mut bad = Vec::new();
        // SAFETY: query strings are valid for the call.
        let (user, pw) = unsafe { (b(q.user), b(q.password)) };
        let stored = files::find_user(&data, user, &mut bad).map(<[u8]>::to_vec);
        log_bad(conf.htpasswd_userfile.as_deref().unwrap_or(""), &bad, "'username:password'");
        let Some(stored) = stored else { return AUTHN_DENIED };
        if files::cost(&stored) == files::Cost::Cheap {
            return if files::htpasswd_verify(&stored, pw) { AUTHN_OK } else { AUTHN_DENIED };
        }
        let pw = pw.to_vec();
        let ctx = CtxPtr(ctx);
        let submitted = featherd_mod_api::blocking(
            move || files::htpasswd_verify(&stored, &pw),
            move |ok: Result<bool, String>| {
                let result = match ok {
                    Ok(true) => AUTHN_OK,
                    Ok(false) => AUTHN_DENIED,
                    Err(e) => {
                        log::error!("password check failed: {e}");
                        AUTHN_ERROR
                    }
                };
                let ctx = ctx;
                // SAFETY: the contract: done(ctx, result) once, on this worker, later.
                unsafe { done(ctx.0, result) };
            },
        );
        match submitted {
            Ok(()) => AUTHN_PENDING,
            Err(e) => {
                log::error!("cannot hand the password check to the blocking pool: {e}");
                AUTHN_ERROR
            }
        }
    }));
    r.unwrap_or(AUTHN_ERROR)
}

/// The caller's context, carried to the completion on the same worker.
struct CtxPtr(*mut c_void);

/// The algorithms to try, strongest first, among `bits`.
fn algorithms(bits: u32) -> impl Iterator<Item = u32> {
    [ALGO_SHA512_256, ALGO_SHA256, ALGO_MD5].into_iter().filter(move |a| bits & a != 0)
}

unsafe extern "C" fn htdigest_basic(
    req: *mut fd_request,
    q: *const BasicQuery,
    _d: DoneFn,
    _c: *mut c_void,
) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: mod_auth passes a live request and a query valid for the call.
        let (conf, q) = unsafe { (config_for(req), &*q) };
        let Some(data) = load(conf.htdigest_userfile.as_deref(), "auth.backend.htdigest.userfile") else {
            return AUTHN_ERROR;
        };
        // SAFETY: query strings are valid for the call.
        let (user, pw, realm) = unsafe { (b(q.user), b(q.password), b(q.realm)) };
        let mut bad = Vec::new();
        let mut result = AUTHN_DENIED;
        for algo in algorithms(q.algorithms.max(ALGO_MD5)) {
            if let Some((stored, _)) = files::htdigest_lookup(&data, user, realm, algo, false, &mut bad) {
                let mine = digest_joined(algo, &[user, realm, pw]);
                result = if featherd_authn::ct_eq(&mine, &stored) { AUTHN_OK } else { AUTHN_DENIED };
                break;
            }
        }
        log_bad(conf.htdigest_userfile.as_deref().unwrap_or(""), &bad, "'username:realm:digest[:userhash]'");
        result
    }));
    r.unwrap_or(AUTHN_ERROR)
}

unsafe extern "C" fn htdigest_digest(
    req: *mut fd_request,
    q: *const DigestQuery,
    out: *mut DigestAnswer,
) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: mod_auth passes a live request, a query valid for the call and an answer
        // it owns.
        let (conf, q, out) = unsafe { (config_for(req), &*q, &mut *out) };
        let Some(data) = load(conf.htdigest_userfile.as_deref(), "auth.backend.htdigest.userfile") else {
            return AUTHN_ERROR;
        };
        // SAFETY: query strings are valid for the call.
        let (user, realm) = unsafe { (b(q.user), b(q.realm)) };
        let mut bad = Vec::new();
        let found = files::htdigest_lookup(&data, user, realm, q.algorithm, q.userhash != 0, &mut bad);
        log_bad(conf.htdigest_userfile.as_deref().unwrap_or(""), &bad, "'username:realm:digest[:userhash]'");
        match found {
            Some((ha1, name)) if out.set(&ha1, &name) => AUTHN_OK,
            _ => AUTHN_DENIED,
        }
    }));
    r.unwrap_or(AUTHN_ERROR)
}

unsafe extern "C" fn plain_basic(
    req: *mut fd_request,
    q: *const BasicQuery,
    _d: DoneFn,
    _c: *mut c_void,
) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: mod_auth passes a live request and a query valid for the call.
        let (conf, q) = unsafe { (config_for(req), &*q) };
        let Some(data) = load(conf.plain_userfile.as_deref(), "auth.backend.plain.userfile") else {
            return AUTHN_ERROR;
        };
        // SAFETY: query strings are valid for the call.
        let (user, pw) = unsafe { (b(q.user), b(q.password)) };
        let mut bad = Vec::new();
        let found = files::find_user(&data, user, &mut bad);
        log_bad(conf.plain_userfile.as_deref().unwrap_or(""), &bad, "'username:password'");
        match found {
            Some(stored) if featherd_authn::ct_eq(stored, pw) => AUTHN_OK,
            _ => AUTHN_DENIED,
        }
    }));
    r.unwrap_or(AUTHN_ERROR)
}

unsafe extern "C" fn plain_digest(
    req: *mut fd_request,
    q: *const DigestQuery,
    out: *mut DigestAnswer,
) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: mod_auth passes a live request, a query valid for the call and an answer
        // it owns.
        let (conf, q, out) = unsafe { (config_for(req), &*q, &mut *out) };
        let Some(data) = load(conf.plain_userfile.as_deref(), "auth.backend.plain.userfile") else {
            return AUTHN_ERROR;
        };
        // SAFETY: query strings are valid for the call.
        let (user, realm) = unsafe { (b(q.user), b(q.realm)) };
        let mut bad = Vec::new();
        let found = if q.userhash != 0 {
            files::plain_userhash(&data, user, realm, q.algorithm, &mut bad)
        } else {
            files::find_user(&data, user, &mut bad).map(|pw| (user, pw))
        };
        log_bad(conf.plain_userfile.as_deref().unwrap_or(""), &bad, "'username:password'");
        match found {
            Some((name, pw)) => {
                let ha1 = digest_joined(q.algorithm, &[name, realm, pw]);
                if out.set(&ha1, name) {
                    AUTHN_OK
                } else {
                    AUTHN_DENIED
                }
            }
            None => AUTHN_DENIED,
        }
    }));
    r.unwrap_or(AUTHN_ERROR)
}

unsafe extern "C" fn in_group(req: *mut fd_request, user: Str, group: Str) -> i32 {
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: mod_auth passes a live request and strings valid for the call.
        let (conf, user, group) = unsafe { (config_for(req), b(user), b(group)) };
        let Some(data) = load(conf.plain_groupfile.as_deref(), "auth.backend.plain.groupfile") else {
            return 0;
        };
        i32::from(files::in_group(&data, user, group))
    }));
    r.unwrap_or(0)
}
