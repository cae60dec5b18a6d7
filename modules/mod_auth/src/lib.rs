//! mod_auth: HTTP authentication, lighttpd's mod_auth.
//!
//! In `uri_clean` it finds the `auth.require` entry for the request path (the longest
//! matching prefix), and checks the client's credentials with the scheme the entry names:
//! Basic (RFC 7617), Digest (RFC 7616: MD5, SHA-256, SHA-512-256, `-sess`, userhash) or
//! extern (REMOTE_USER set by a module before). Passwords live in a backend module
//! (`auth.backend`; mod_authn_file for "htpasswd", "htdigest", "plain"), reached through the
//! server's service table ([`featherd_authn`]).
//!
//! Data in: the `Authorization` header, the configuration, the backend's answers (a slow
//! bcrypt check arrives later, from the server's blocking pool, while the request waits
//! suspended). Data out: a 401 with `WWW-Authenticate` challenges (or 400 for a malformed
//! header), or, on success, `REMOTE_USER` and `AUTH_TYPE` in the request environment (CGI,
//! FastCGI, SCGI and the access log's `%u` read them there). A failed login is answered after
//! `auth.delay-invalid-creds` milliseconds on a timer (the worker goes on serving others) and
//! closes the connection.

pub mod digest;
pub mod rules;

use digest::{check_nonce, make_nonce, NonceCheck};
use featherd_authn::{
    ct_eq, digest_len, Backend, BasicQuery, DigestAnswer, DigestQuery, ALGO_MD5, ALGO_SHA256,
    ALGO_SHA512_256, AUTHN_OK, AUTHN_PENDING,
};
use featherd_mod_api::abi::Str;
use featherd_mod_api::{
    export_module, Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, RequestId, Value,
};
use rules::{Method, Rule, ALGO_SESS};
use std::cell::Cell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Configuration

/// A backend table another module registered (static in that module, valid until cleanup).
#[derive(Clone, Copy)]
pub struct BackendRef(&'static Backend);

impl std::fmt::Debug for BackendRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Backend")
    }
}

/// lighttpd delays the answer to wrong credentials by about a second.
pub const DEFAULT_DELAY_MS: u64 = 1000;

#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    pub backend: Option<BackendRef>,
    pub backend_name: String,
    pub require: Option<Arc<Vec<Rule>>>,
    pub extern_authn: bool,
    /// `auth.cache = ( "max-age" => "600" )`: seconds a verified credential is remembered.
    pub cache_max_age: Option<u64>,
    /// `auth.delay-invalid-creds`: None is the default.
    pub delay_ms: Option<u64>,
}

impl AuthConfig {
    fn delay(&self) -> u64 {
        self.delay_ms.unwrap_or(DEFAULT_DELAY_MS)
    }
}

impl ModuleConfig for AuthConfig {
    const KEYS: &'static [Key] = &[
        Key::string("auth.backend"),
        Key::array("auth.require"),
        Key::boolean("auth.extern-authn"),
        Key::array("auth.cache"),
        Key::any("auth.delay-invalid-creds"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => {
                let name = v.to_str()?.trim();
                if name.is_empty() {
                    self.backend = None;
                    self.backend_name.clear();
                    return Ok(());
                }
                let Some((t, _)) = featherd_mod_api::lookup_service(&featherd_authn::service_name(name))
                else {
                    let hint = if ["htpasswd", "htdigest", "plain"].contains(&name) {
                        " (it is offered by mod_authn_file: add it to server.modules)"
                    } else {
                        ""
                    };
                    return Err(format!("auth.backend not supported: {name}{hint}"));
                };
                // SAFETY: "authn.*" services are `featherd_authn::Backend` tables (the
                // contract of the name), static in their module until cleanup.
                let b: &'static Backend = unsafe { &*(t as *const Backend) };
                if (b.struct_size as usize) < core::mem::size_of::<Backend>() {
                    return Err(format!(
                        "auth.backend {name}: the module offering it is too old for this mod_auth"
                    ));
                }
                self.backend = Some(BackendRef(b));
                self.backend_name = name.to_owned();
            }
            1 => self.require = Some(Arc::new(rules::parse_require(v)?)),
            2 => self.extern_authn = v.to_bool()?,
            3 => {
                let mut age = 600;
                for (k, val) in v.iter() {
                    if k == Some("max-age") {
                        age = val
                            .as_int()
                            .filter(|&n| n >= 0)
                            .ok_or("auth.cache \"max-age\" must be a number of seconds")?
                            as u64;
                    } else {
                        return Err(format!(
                            "unknown auth.cache option {:?} (expected \"max-age\")",
                            k.unwrap_or("")
                        ));
                    }
                }
                self.cache_max_age = Some(age);
            }
            4 => {
                const EXPECTED: &str =
                    "expected \"enable\", \"disable\" or a delay in milliseconds (0 to 60000)";
                // A number is milliseconds (0 and 1 too); a word is the on/off switch.
                let ms = match (v.kind(), v.as_bool()) {
                    (featherd_mod_api::ValueKind::Int, _) | (_, None) => {
                        v.as_int().filter(|n| (0..=60_000).contains(n)).ok_or(EXPECTED)? as u64
                    }
                    (_, Some(true)) => DEFAULT_DELAY_MS,
                    (_, Some(false)) => 0,
                };
                self.delay_ms = Some(ms);
            }
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Process-wide state: a secret for nonces and cached credentials, the credential cache and
// the nonce counts seen (replay protection). Shared by the workers behind mutexes; the
// trigger hook prunes them.

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if getrandom::getrandom(&mut b).is_err() {
        // No entropy source: fall back to the clock and the address space (still unguessable
        // enough for nonces that also carry the time; never reached on Linux).
        let t =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let seed = featherd_authn::digest(
            ALGO_SHA256,
            &[&t.to_le_bytes(), &(&b as *const _ as usize).to_le_bytes()],
        );
        for (i, x) in b.iter_mut().enumerate() {
            *x = seed[i % seed.len()];
        }
    }
    b
}

fn process_secret() -> &'static [u8] {
    static S: OnceLock<String> = OnceLock::new();
    S.get_or_init(|| featherd_authn::hex(&random_bytes::<32>())).as_bytes()
}

#[derive(Hash, PartialEq, Eq)]
struct CacheKey {
    rule: u64,
    /// 0 for Basic, the digest algorithm otherwise.
    algo: u32,
    /// The user name, or the lower-case user hash.
    user: Vec<u8>,
}

struct CacheEntry {
    at: u64,
    /// The real user name.
    username: Vec<u8>,
    /// Basic: H(process secret, password); Digest: the stored digest.
    secret: Vec<u8>,
}

static CACHE: Mutex<Option<HashMap<CacheKey, CacheEntry>>> = Mutex::new(None);
/// Nonce → (issued, highest nc accepted).
type NonceCounts = HashMap<Vec<u8>, (u64, u32)>;
static NONCE_COUNTS: Mutex<Option<NonceCounts>> = Mutex::new(None);
const NONCE_COUNTS_MAX: usize = 65536;

fn cache_get(key: &CacheKey, max_age: u64, now: u64) -> Option<(Vec<u8>, Vec<u8>)> {
    let c = CACHE.lock().ok()?;
    let e = c.as_ref()?.get(key)?;
    (now.saturating_sub(e.at) <= max_age).then(|| (e.username.clone(), e.secret.clone()))
}

fn cache_put(key: CacheKey, username: &[u8], secret: Vec<u8>, now: u64) {
    if let Ok(mut c) = CACHE.lock() {
        c.get_or_insert_with(HashMap::new)
            .insert(key, CacheEntry { at: now, username: username.to_vec(), secret });
    }
}

fn password_key(pw: &[u8]) -> Vec<u8> {
    featherd_authn::digest(ALGO_SHA256, &[process_secret(), b":", pw])
}

/// Record nonce count `nc` for `nonce`; false when it is not above the last one accepted.
fn nonce_count_ok(nonce: &[u8], issued: u64, nc: u32) -> bool {
    let Ok(mut m) = NONCE_COUNTS.lock() else { return true };
    let m = m.get_or_insert_with(HashMap::new);
    if m.len() >= NONCE_COUNTS_MAX && !m.contains_key(nonce) {
        let now = featherd_mod_api::now().max(0) as u64;
        m.retain(|_, (t, _)| now.saturating_sub(*t) <= digest::NONCE_LIFETIME);
        if m.len() >= NONCE_COUNTS_MAX {
            // Flooded with valid nonces: forget them all; clients see a stale nonce and retry.
            m.clear();
        }
    }
    match m.get_mut(nonce) {
        Some((_, last)) if nc <= *last => false,
        Some((_, last)) => {
            *last = nc;
            true
        }
        None => {
            m.insert(nonce.to_vec(), (issued, nc));
            true
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Per-request state

#[derive(Default)]
pub struct AuthState {
    stage: Stage,
    /// The Digest (nonce, nc) this request already passed with (a restart re-authenticates
    /// without counting it as a replay).
    passed: Option<(Vec<u8>, u32)>,
}

#[derive(Default)]
enum Stage {
    #[default]
    Idle,
    /// A Basic check went to the blocking pool.
    Checking(Box<Pending>),
    /// The 401 is decided; it goes out at `until`.
    Delaying(Instant),
}

struct Pending {
    answer: Rc<Cell<Option<i32>>>,
    rule: usize,
    user: Vec<u8>,
    pw_key: Vec<u8>,
}

/// What a backend's late answer needs: where to put it and whom to wake.
struct Waiter {
    answer: Rc<Cell<Option<i32>>>,
    id: RequestId,
}

unsafe extern "C" fn basic_done(ctx: *mut c_void, result: i32) {
    // SAFETY: ctx is the Box<Waiter> handed to the backend with AUTHN_PENDING; the contract
    // says done is called once, on this worker.
    let w = unsafe { Box::from_raw(ctx as *mut Waiter) };
    w.answer.set(Some(result));
    w.id.wake();
}

// ---------------------------------------------------------------------------------------------
// The module

#[derive(Default)]
pub struct Auth;

impl Module for Auth {
    const NAME: &'static str = "mod_auth";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "HTTP authentication: Basic and Digest over password backends";
    const HOOKS: Hooks = Hooks::URI_CLEAN.union(Hooks::TRIGGER);
    type Config = AuthConfig;
    type RequestState = AuthState;
    type ConnectionState = ();

    fn init() -> Self {
        Auth
    }

    fn set_defaults(&mut self, configs: &Configs<AuthConfig>) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for c in configs.all() {
            let Some(rules) = &c.require else { continue };
            if !seen.insert(Arc::as_ptr(rules) as usize) {
                continue;
            }
            for (later, earlier) in rules::shadowed(rules) {
                log::warn!(
                    "auth.require path ({later:?}) comes after ({earlier:?}): lighttpd would never match it; \
                     featherd uses the longest matching path. Sort longer paths first to keep both servers alike"
                );
            }
            for r in rules.iter().filter(|r| !r.hosts.is_empty()) {
                log::warn!(
                    "warning parsing auth.require 'require' field: 'host' not implemented; field value for {:?}: {}",
                    r.prefix,
                    r.hosts.iter().map(|h| format!("host={h}")).collect::<Vec<_>>().join("|")
                );
            }
        }
        Ok(())
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        match std::mem::take(&mut req.state().stage) {
            Stage::Idle => {}
            Stage::Delaying(until) => {
                if Instant::now() < until {
                    req.state().stage = Stage::Delaying(until);
                    return Handler::WaitForEvent;
                }
                return Handler::Finished;
            }
            Stage::Checking(p) => {
                let Some(result) = p.answer.get() else {
                    req.state().stage = Stage::Checking(p);
                    return Handler::WaitForEvent;
                };
                let Some(rule) = conf.require.as_ref().and_then(|r| r.get(p.rule)) else {
                    return Handler::Error;
                };
                return self.basic_answer(req, &conf, rule, &p.user, p.pw_key, result);
            }
        }
        let Some(rules) = conf.require.clone() else { return Handler::GoOn };
        let Some((idx, rule)) = rules::find(&rules, req.path()) else { return Handler::GoOn };
        if conf.extern_authn {
            if let Some(u) = req.env("REMOTE_USER").map(<[u8]>::to_vec) {
                if authorized(req, &conf, rule, &u) {
                    return Handler::GoOn;
                }
            }
        }
        match rule.method {
            Method::Basic => self.basic(req, &conf, idx, rule),
            Method::Digest => self.digest(req, &conf, rule),
            Method::Extern => {
                let ok = req
                    .env("REMOTE_USER")
                    .map(<[u8]>::to_vec)
                    .is_some_and(|u| authorized(req, &conf, rule, &u));
                if ok {
                    Handler::GoOn
                } else {
                    req.set_status(401);
                    Handler::Finished
                }
            }
        }
    }

    fn trigger(&self) {
        let now = featherd_mod_api::now().max(0) as u64;
        if now % 8 != 0 {
            return;
        }
        if let Ok(mut m) = NONCE_COUNTS.lock() {
            if let Some(m) = m.as_mut() {
                m.retain(|_, (t, _)| now.saturating_sub(*t) <= digest::NONCE_LIFETIME);
            }
        }
        // Entries older than the longest max-age any block may use are useless; a shorter
        // max-age is enforced at lookup.
        if let Ok(mut c) = CACHE.lock() {
            if let Some(c) = c.as_mut() {
                c.retain(|_, e| now.saturating_sub(e.at) <= 86_400);
            }
        }
    }
}

export_module!(Auth);

// ---------------------------------------------------------------------------------------------
// Shared answers

/// A realm inside a quoted-string.
fn quoted(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn bad_request(req: &mut Request<Auth>) -> Handler {
    req.set_status(400);
    Handler::Finished
}

fn unauthorized_basic(req: &mut Request<Auth>, rule: &Rule) -> Handler {
    req.set_status(401);
    req.set_response_header(
        "WWW-Authenticate",
        format!("Basic realm=\"{}\", charset=\"UTF-8\"", quoted(&rule.realm)),
    );
    Handler::Finished
}

fn nonce_secret(rule: &Rule) -> &[u8] {
    rule.nonce_secret.as_deref().map_or(process_secret(), str::as_bytes)
}

fn random_u32() -> u32 {
    u32::from_le_bytes(random_bytes::<4>())
}

/// One challenge per allowed algorithm, strongest first (lighttpd's order); with `stale`
/// only the client's algorithm, flagged stale.
fn unauthorized_digest(req: &mut Request<Auth>, rule: &Rule, stale: Option<u32>) -> Handler {
    let algos = stale.map_or(rule.algorithms, |a| a & !ALGO_SESS);
    let now = featherd_mod_api::now().max(0) as u64;
    let opaque = featherd_authn::digest_hex(ALGO_MD5, &[rule.realm.as_bytes(), process_secret()]);
    req.set_status(401);
    req.remove_response_header("WWW-Authenticate");
    for algo in [ALGO_SHA512_256, ALGO_SHA256, ALGO_MD5] {
        if algos & algo == 0 {
            continue;
        }
        let mut h = format!(
            "Digest realm=\"{}\", charset=\"UTF-8\", algorithm={}, nonce=\"{}\", opaque=\"{opaque}\", qop=\"auth\"",
            quoted(&rule.realm),
            rules::algorithm_name(algo),
            make_nonce(now, random_u32(), nonce_secret(rule), algo),
        );
        if rule.userhash {
            h.push_str(", userhash=true");
        }
        if stale.is_some() {
            h.push_str(", stale=true");
        }
        req.append_response_header("WWW-Authenticate", h);
    }
    Handler::Finished
}

/// The authorisation rules of `rule` for an authenticated `user`.
fn authorized(req: &mut Request<Auth>, conf: &AuthConfig, rule: &Rule, user: &[u8]) -> bool {
    if rule.valid_user || rule.users.iter().any(|u| u.as_bytes() == user) {
        return true;
    }
    let Some(BackendRef(b)) = conf.backend else { return false };
    let Some(in_group) = b.in_group else { return false };
    rule.groups.iter().any(|g| {
        // SAFETY: the backend's contract: a live request of this worker and strings valid
        // for the call.
        unsafe { in_group(req.as_raw(), Str::from_bytes(user), Str::from_bytes(g.as_bytes())) == 1 }
    })
}

fn set_user(req: &mut Request<Auth>, user: &[u8], auth_type: &[u8]) {
    req.set_env("REMOTE_USER", user);
    req.set_env("AUTH_TYPE", auth_type);
}

/// Wrong credentials: lighttpd closes the connection after the 401 and answers late, so that
/// guessing passwords is slow; the wait is a timer, the worker serves others meanwhile.
fn refuse_late(req: &mut Request<Auth>, conf: &AuthConfig, answer: Handler) -> Handler {
    req.disable_keep_alive();
    let delay = conf.delay();
    if delay == 0 || answer != Handler::Finished {
        return answer;
    }
    // The deadline is taken before the timer is armed, so the timer never fires before it.
    let until = Instant::now() + Duration::from_millis(delay);
    let id = req.id();
    match featherd_mod_api::timer(delay, move || {
        id.wake();
    }) {
        Ok(_) => {
            req.state().stage = Stage::Delaying(until);
            Handler::WaitForEvent
        }
        Err(_) => answer,
    }
}

fn misconfigured(req: &mut Request<Auth>, conf: &AuthConfig, method: &str, other: &str) -> Handler {
    let path = String::from_utf8_lossy(req.path()).into_owned();
    if conf.backend.is_none() {
        log::error!("auth.backend not configured for {path}");
    } else {
        log::error!(
            "auth.require \"method\" => \"{method}\" invalid (try \"{other}\"?) for {path}: auth.backend \"{}\" cannot check it",
            conf.backend_name
        );
    }
    req.set_status(500);
    Handler::Finished
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn has_ctl(b: &[u8]) -> bool {
    b.iter().any(|&c| c < 0x20 || c == 0x7f)
}

fn strip_scheme<'h>(h: &'h [u8], scheme: &[u8]) -> Option<&'h [u8]> {
    let n = scheme.len();
    (h.len() > n && h[..n].eq_ignore_ascii_case(scheme) && h[n] == b' ').then(|| &h[n + 1..])
}

// ---------------------------------------------------------------------------------------------
// Basic

impl Auth {
    fn basic(&self, req: &mut Request<Self>, conf: &AuthConfig, idx: usize, rule: &Rule) -> Handler {
        let Some(BackendRef(backend)) = conf.backend else {
            return misconfigured(req, conf, "basic", "digest");
        };
        let Some(check) = backend.basic else { return misconfigured(req, conf, "basic", "digest") };
        let Some(h) = req.header("Authorization") else { return unauthorized_basic(req, rule) };
        let Some(b64) = strip_scheme(h, b"Basic") else { return unauthorized_basic(req, rule) };
        let b64 = b64.trim_ascii();
        // lighttpd's bound: the decoded "user:password" fits in 1 KiB.
        if b64.len() > 1363 {
            return unauthorized_basic(req, rule);
        }
        use base64::Engine as _;
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = match engine.decode(b64) {
            Ok(d) if !d.is_empty() => d,
            _ => {
                log::error!("decoding base64-string failed {}", lossy(b64));
                return bad_request(req);
            }
        };
        let Some(colon) = decoded.iter().position(|&b| b == b':') else {
            log::error!("missing ':' in {}", lossy(&decoded));
            return bad_request(req);
        };
        let (user, pw) = (&decoded[..colon], &decoded[colon + 1..]);
        let pw_key = password_key(pw);
        let now = featherd_mod_api::now().max(0) as u64;
        if has_ctl(user) {
            return self.basic_answer(req, conf, rule, user, pw_key, featherd_authn::AUTHN_DENIED);
        }
        if let Some(age) = conf.cache_max_age {
            let key = CacheKey { rule: rule.id, algo: 0, user: user.to_vec() };
            if let Some((_, secret)) = cache_get(&key, age, now) {
                if ct_eq(&secret, &pw_key) {
                    return self.basic_answer(req, conf, rule, user, pw_key, AUTHN_OK);
                }
            }
        }
        let answer = Rc::new(Cell::new(None));
        let waiter = Box::into_raw(Box::new(Waiter { answer: answer.clone(), id: req.id() }));
        let q = BasicQuery {
            user: Str::from_bytes(user),
            password: Str::from_bytes(pw),
            realm: Str::from_bytes(rule.realm.as_bytes()),
            algorithms: rule.algorithms,
        };
        // SAFETY: the backend's contract: a live request of this worker, a query valid for
        // the call, and our waiter, which it hands back to basic_done only when it answers
        // AUTHN_PENDING.
        let r = unsafe { check(req.as_raw(), &q, basic_done, waiter as *mut c_void) };
        if r == AUTHN_PENDING {
            req.state().stage =
                Stage::Checking(Box::new(Pending { answer, rule: idx, user: user.to_vec(), pw_key }));
            return Handler::WaitForEvent;
        }
        // SAFETY: not pending: the backend did not keep the waiter.
        drop(unsafe { Box::from_raw(waiter) });
        self.basic_answer(req, conf, rule, user, pw_key, r)
    }

    /// The backend said `result` about `user`'s password: authorise, remember, answer.
    fn basic_answer(
        &self,
        req: &mut Request<Self>,
        conf: &AuthConfig,
        rule: &Rule,
        user: &[u8],
        pw_key: Vec<u8>,
        result: i32,
    ) -> Handler {
        if result == AUTHN_OK && authorized(req, conf, rule, user) {
            set_user(req, user, b"Basic");
            if conf.cache_max_age.is_some() {
                let now = featherd_mod_api::now().max(0) as u64;
                cache_put(CacheKey { rule: rule.id, algo: 0, user: user.to_vec() }, user, pw_key, now);
            }
            return Handler::GoOn;
        }
        log::error!(
            "password doesn't match for {} username: {} IP: {}",
            lossy(req.path()),
            lossy(user),
            lossy(req.remote_addr())
        );
        let h = unauthorized_basic(req, rule);
        refuse_late(req, conf, h)
    }
}

// ---------------------------------------------------------------------------------------------
// Digest

impl Auth {
    fn digest(&self, req: &mut Request<Self>, conf: &AuthConfig, rule: &Rule) -> Handler {
        let Some(BackendRef(backend)) = conf.backend else {
            return misconfigured(req, conf, "digest", "basic");
        };
        let Some(lookup) = backend.digest else { return misconfigured(req, conf, "digest", "basic") };
        let Some(h) = req.header("Authorization") else { return unauthorized_digest(req, rule, None) };
        let Some(rest) = strip_scheme(h, b"Digest") else { return unauthorized_digest(req, rule, None) };
        let p = digest::parse(rest);

        // Required fields (lighttpd's checks, in its order).
        let complete = (p.qop.is_none() || (p.nc.is_some() && p.cnonce.is_some()))
            && (p.username.is_some() != p.username_star.is_some())
            && p.realm.is_some()
            && p.nonce.is_some()
            && p.uri.is_some()
            && p.response.is_some();
        if !complete {
            log::error!("digest: missing field");
            return bad_request(req);
        }
        let userhash = p.userhash.as_deref() == Some(b"true");
        let user: Vec<u8> = match (&p.username, &p.username_star) {
            (Some(u), _) => u.clone(),
            (None, Some(star)) => {
                if userhash {
                    log::error!("digest: invalid \"username*\" with \"userhash\" = true");
                    return bad_request(req);
                }
                match digest::decode_ext_value(star) {
                    Ok(u) => u,
                    Err(e) => {
                        log::error!("{e}");
                        return bad_request(req);
                    }
                }
            }
            (None, None) => return bad_request(req),
        };
        if p.realm.as_deref() != Some(rule.realm.as_bytes()) {
            log::error!("digest: realm mismatch");
            return unauthorized_digest(req, rule, None);
        }
        let algo =
            match p.algorithm.as_deref().map(lossy).as_deref().map_or(Some(ALGO_MD5), rules::parse_algorithm)
            {
                Some(a) if rule.algorithms & a & !ALGO_SESS != 0 => a,
                _ => {
                    log::error!("digest: ({}): invalid", lossy(p.algorithm.as_deref().unwrap_or_default()));
                    return unauthorized_digest(req, rule, None);
                }
            };
        let base = algo & !ALGO_SESS;
        if algo & ALGO_SESS != 0 && p.cnonce.is_none() {
            log::error!("digest: ({}): missing field", rules::algorithm_name(base));
            return bad_request(req);
        }
        let response = p.response.clone().unwrap_or_default();
        if !digest::response_well_formed(algo, &response) {
            log::error!("digest: ({}): invalid format", lossy(&response));
            return bad_request(req);
        }
        if p.qop.as_deref().is_some_and(|q| q.eq_ignore_ascii_case(b"auth-int")) {
            log::error!("digest: qop=auth-int not supported");
            return bad_request(req);
        }
        let nc = match &p.nc {
            Some(nc) => match std::str::from_utf8(nc).ok().and_then(|s| u32::from_str_radix(s, 16).ok()) {
                Some(n) => n,
                None => {
                    log::error!("digest: invalid nc {}", lossy(nc));
                    return bad_request(req);
                }
            },
            None => 0,
        };
        // A digest for one URI must not open another (the original target: a rewrite may
        // have changed the current one).
        let uri = p.uri.clone().unwrap_or_default();
        if req.target_orig() != uri.as_slice() {
            log::error!(
                "digest: auth failed: uri mismatch ({} != {}), IP: {}",
                lossy(req.target_orig()),
                lossy(&uri),
                lossy(req.remote_addr())
            );
            return bad_request(req);
        }

        let now = featherd_mod_api::now().max(0) as u64;
        let nonce = p.nonce.clone().unwrap_or_default();
        let (issued, renew) = match check_nonce(&nonce, now, nonce_secret(rule), base) {
            NonceCheck::Fresh { issued, renew } => (issued, renew),
            NonceCheck::Stale => return unauthorized_digest(req, rule, Some(base)),
            NonceCheck::Forged if rule.nonce_secret.is_some() => {
                log::error!("digest: nonce mismatch");
                return unauthorized_digest(req, rule, None);
            }
            // Made with another process's secret (a restart): ask for a new one quietly.
            NonceCheck::Forged => return unauthorized_digest(req, rule, Some(base)),
        };

        // The stored digest: from the cache or the backend.
        let key_user = if userhash { user.to_ascii_lowercase() } else { user.clone() };
        let key = CacheKey { rule: rule.id, algo: base, user: key_user.clone() };
        let cached = conf.cache_max_age.and_then(|age| cache_get(&key, age, now));
        let (name, ha1) = match cached {
            Some(hit) => hit,
            None => {
                let q = DigestQuery {
                    user: Str::from_bytes(&key_user),
                    realm: Str::from_bytes(rule.realm.as_bytes()),
                    algorithm: base,
                    userhash: u32::from(userhash),
                };
                let mut out = DigestAnswer::default();
                // SAFETY: the backend's contract: a live request, a query valid for the call
                // and an answer we own.
                let r = unsafe { lookup(req.as_raw(), &q, &mut out) };
                if r != AUTHN_OK || out.ha1().len() != digest_len(base) {
                    log::error!(
                        "digest: auth failed for {}: unknown user, IP: {}",
                        lossy(&user),
                        lossy(req.remote_addr())
                    );
                    let h = unauthorized_digest(req, rule, None);
                    return refuse_late(req, conf, h);
                }
                if conf.cache_max_age.is_some() {
                    cache_put(key, out.user(), out.ha1().to_vec(), now);
                }
                (out.user().to_vec(), out.ha1().to_vec())
            }
        };
        let want = digest::expected_response(algo, &ha1, &p, req.method());
        if !ct_eq(want.as_bytes(), &response.to_ascii_lowercase()) {
            log::error!(
                "digest: auth failed for {}: wrong password, IP: {}",
                lossy(&name),
                lossy(req.remote_addr())
            );
            let h = unauthorized_digest(req, rule, None);
            return refuse_late(req, conf, h);
        }
        if !authorized(req, conf, rule, &name) {
            let h = unauthorized_digest(req, rule, None);
            return refuse_late(req, conf, h);
        }
        // Replay: each request with a nonce must count higher than the last one accepted.
        let again = req.state().passed.as_ref().is_some_and(|(n, c)| *n == nonce && *c == nc);
        if !again {
            if !nonce_count_ok(&nonce, issued, nc) {
                log::error!(
                    "digest: nonce count {nc:08x} reused for {} (replay?), IP: {}",
                    lossy(&name),
                    lossy(req.remote_addr())
                );
                return unauthorized_digest(req, rule, Some(base));
            }
            req.state().passed = Some((nonce.clone(), nc));
        }
        if renew {
            let next = make_nonce(now, random_u32(), nonce_secret(rule), base);
            req.set_response_header("Authentication-Info", format!("nextnonce=\"{next}\""));
        }
        set_user(req, &name, b"Digest");
        Handler::GoOn
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_quoting() {
        assert_eq!(strip_scheme(b"basic abc", b"Basic"), Some(&b"abc"[..]));
        assert_eq!(strip_scheme(b"Basic", b"Basic"), None);
        assert_eq!(strip_scheme(b"Basicabc", b"Basic"), None);
        assert_eq!(strip_scheme(b"Bearer x", b"Basic"), None);
        assert_eq!(quoted("a\"b\\c"), "a\\\"b\\\\c");
    }

    #[test]
    fn nonce_counts_must_grow() {
        assert!(nonce_count_ok(b"n1", 1, 1));
        assert!(nonce_count_ok(b"n1", 1, 2));
        assert!(!nonce_count_ok(b"n1", 1, 2));
        assert!(!nonce_count_ok(b"n1", 1, 1));
        assert!(nonce_count_ok(b"n2", 1, 0));
        assert!(!nonce_count_ok(b"n2", 1, 0));
    }
}
