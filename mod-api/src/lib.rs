//! # featherd-mod-api: write featherd modules
//!
//! A featherd module is a shared library (`mod_NAME.so`, crate-type `cdylib`) that the server
//! loads at start when `server.modules` names it. This crate is the only dependency a module
//! needs. It has two layers:
//!
//! * [`abi`]: the raw, versioned C ABI: `#[repr(C)]` tables, append-only. It is the single
//!   source of truth; `include/featherd_module.h` is generated from it for modules in C.
//! * The safe SDK (this module): implement [`Module`] (every hook has a no-op default), declare
//!   your config keys with [`ModuleConfig`], and call [`export_module!`]. The SDK writes the
//!   descriptor and the `extern "C"` shims, catches panics at the boundary (the request gets a
//!   500, the error log names your module, the server goes on), forwards the `log` crate to
//!   the server's error log, merges your config per request over the matching conditional
//!   blocks, and keeps your per-request and per-connection state.
//!
//! ```ignore
//! use featherd_mod_api::{export_module, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
//!
//! #[derive(Clone, Default)]
//! struct HelloConfig { greeting: Option<String> }
//!
//! impl ModuleConfig for HelloConfig {
//!     const KEYS: &'static [Key] = &[Key::string("hello.greeting")];
//!     fn apply(&mut self, _key: usize, v: &Value) -> Result<(), String> {
//!         self.greeting = Some(v.to_str()?.to_owned());
//!         Ok(())
//!     }
//! }
//!
//! #[derive(Default)]
//! struct Hello;
//!
//! impl Module for Hello {
//!     const NAME: &'static str = "mod_hello";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!     const HOOKS: Hooks = Hooks::URI_CLEAN;
//!     type Config = HelloConfig;
//!     type RequestState = ();
//!     type ConnectionState = ();
//!
//!     fn init() -> Self { Hello }
//!
//!     fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
//!         if req.path() != b"/hello" { return Handler::GoOn; }
//!         let text = req.config().greeting.clone().unwrap_or_else(|| "hello".into());
//!         req.set_status(200);
//!         req.set_response_header("Content-Type", "text/plain");
//!         req.append_body(text.as_bytes());
//!         Handler::Finished
//!     }
//! }
//!
//! export_module!(Hello);
//! ```
//!
//! See `docs/writing-a-module.md` in the featherd repository for the lifecycle and the hook
//! chain, and `modules/mod_skeleton` for a commented template.

pub mod abi;
pub mod util;

pub use abi::{FileInfo, FILE_KIND_DIRECTORY, FILE_KIND_OTHER, FILE_KIND_REGULAR};

use abi::*;
use core::ffi::c_void;
use std::any::Any;
use std::cell::RefCell;
use std::marker::PhantomData;
use std::ops::Deref;
use std::os::fd::{IntoRawFd, OwnedFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

// ---------------------------------------------------------------------------------------------
// Results and hooks

/// What a hook tells the server (lighttpd's `handler_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Not mine: the next module in the chain.
    GoOn,
    /// The response is decided: stop the chain.
    Finished,
    /// The target was rewritten: restart the request with conditions re-evaluated.
    Comeback,
    /// Suspend until an fd event or [`RequestId::wake`], then this hook runs again.
    WaitForEvent,
    /// Internal error: 500 and close.
    Error,
}

impl Handler {
    fn raw(self) -> fd_result_t {
        match self {
            Handler::GoOn => HANDLER_GO_ON,
            Handler::Finished => HANDLER_FINISHED,
            Handler::Comeback => HANDLER_COMEBACK,
            Handler::WaitForEvent => HANDLER_WAIT_FOR_EVENT,
            Handler::Error => HANDLER_ERROR,
        }
    }
}

/// What [`Module::connection_preface`] made of the bytes a connection sent first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preface {
    /// The preface is the first `n` bytes; the rest is HTTP.
    Done(usize),
    /// Not complete yet: call again when more bytes have arrived.
    NeedMore,
    /// Not a valid preface: close the connection without a response.
    Reject,
}

/// The hooks a module implements; only those are put in their chains (an unused hook costs
/// nothing). Combine with `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hooks(pub u32);

impl Hooks {
    pub const NONE: Hooks = Hooks(0);
    pub const URI_RAW: Hooks = Hooks(HOOK_URI_RAW);
    pub const URI_CLEAN: Hooks = Hooks(HOOK_URI_CLEAN);
    pub const DOCROOT: Hooks = Hooks(HOOK_DOCROOT);
    pub const PHYSICAL: Hooks = Hooks(HOOK_PHYSICAL);
    pub const SUBREQUEST_START: Hooks = Hooks(HOOK_SUBREQUEST_START);
    pub const SUBREQUEST: Hooks = Hooks(HOOK_SUBREQUEST);
    pub const RESPONSE_START: Hooks = Hooks(HOOK_RESPONSE_START);
    pub const REQUEST_DONE: Hooks = Hooks(HOOK_REQUEST_DONE);
    pub const REQUEST_RESET: Hooks = Hooks(HOOK_REQUEST_RESET);
    pub const CONNECTION_ACCEPT: Hooks = Hooks(HOOK_CONNECTION_ACCEPT);
    pub const CONNECTION_SHUT_WR: Hooks = Hooks(HOOK_CONNECTION_SHUT_WR);
    pub const CONNECTION_CLOSE: Hooks = Hooks(HOOK_CONNECTION_CLOSE);
    pub const TRIGGER: Hooks = Hooks(HOOK_TRIGGER);
    pub const SIGHUP: Hooks = Hooks(HOOK_SIGHUP);
    pub const WAITPID: Hooks = Hooks(HOOK_WAITPID);
    pub const WORKER_INIT: Hooks = Hooks(HOOK_WORKER_INIT);
    /// [`Module::connection_preface`] (ABI 1.6), for connections whose preface the module
    /// claimed with [`Connection::claim_preface`].
    pub const CONNECTION_PREFACE: Hooks = Hooks(HOOK_CONNECTION_PREFACE);

    /// Every hook with its name, in the order the descriptor lists them.
    pub const ALL: [(Hooks, &'static str); 17] = [
        (Hooks::URI_RAW, "uri_raw"),
        (Hooks::URI_CLEAN, "uri_clean"),
        (Hooks::DOCROOT, "docroot"),
        (Hooks::PHYSICAL, "physical"),
        (Hooks::SUBREQUEST_START, "subrequest_start"),
        (Hooks::SUBREQUEST, "subrequest"),
        (Hooks::RESPONSE_START, "response_start"),
        (Hooks::REQUEST_DONE, "request_done"),
        (Hooks::REQUEST_RESET, "request_reset"),
        (Hooks::CONNECTION_ACCEPT, "connection_accept"),
        (Hooks::CONNECTION_SHUT_WR, "connection_shut_wr"),
        (Hooks::CONNECTION_CLOSE, "connection_close"),
        (Hooks::TRIGGER, "trigger"),
        (Hooks::SIGHUP, "sighup"),
        (Hooks::WAITPID, "waitpid"),
        (Hooks::WORKER_INIT, "worker_init"),
        (Hooks::CONNECTION_PREFACE, "connection_preface"),
    ];

    /// The names of the hooks in `self` ("uri_clean", "request_done", ...).
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Hooks::ALL.into_iter().filter(move |(h, _)| self.has(*h)).map(|(_, n)| n)
    }

    pub const fn union(self, other: Hooks) -> Hooks {
        Hooks(self.0 | other.0)
    }
    pub const fn has(self, other: Hooks) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Hooks {
    type Output = Hooks;
    fn bitor(self, rhs: Hooks) -> Hooks {
        self.union(rhs)
    }
}

/// A featherd module. Every hook has a no-op default; list the ones you implement in
/// [`Module::HOOKS`]. The instance is shared by all worker threads after `set_defaults`, so
/// mutable state goes in [`Module::RequestState`], [`Module::ConnectionState`], or behind
/// your own synchronisation (or thread-locals for per-worker state).
#[allow(unused_variables)]
pub trait Module: Sized + Send + Sync + 'static {
    /// File name without `.so`, e.g. `mod_hello`.
    const NAME: &'static str;
    const VERSION: &'static str;
    const DESCRIPTION: &'static str = "";
    const HOOKS: Hooks;
    /// The module's configuration, merged per request (use `()` for none).
    type Config: ModuleConfig;
    /// Per-request state, created on first use by [`Request::state`], dropped at reset.
    type RequestState: Default + 'static;
    /// Per-connection state, created on first use by [`Connection::state`].
    type ConnectionState: Default + 'static;

    /// Create the module (after loading, on the main thread).
    fn init() -> Self;
    /// The configuration is read (block 0 is the global one): check whole-server settings.
    fn set_defaults(&mut self, configs: &Configs<Self::Config>) -> Result<(), String> {
        Ok(())
    }
    fn worker_init(&self, worker: u32) -> Result<(), String> {
        Ok(())
    }
    fn cleanup(&mut self) {}

    fn uri_raw(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn docroot(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn physical(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn response_start(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    fn request_done(&self, req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }
    /// Called before the request state is dropped.
    fn request_reset(&self, req: &mut Request<Self>) {}
    fn connection_accept(&self, con: &mut Connection<Self>) -> Handler {
        Handler::GoOn
    }
    fn connection_shut_wr(&self, con: &mut Connection<Self>) -> Handler {
        Handler::GoOn
    }
    /// The bytes the connection sent so far, before any HTTP: only for a connection whose
    /// preface this module claimed in [`Module::connection_accept`] with
    /// [`Connection::claim_preface`] (list [`Hooks::CONNECTION_PREFACE`]). `data` starts at
    /// the connection's first byte and grows from call to call while you answer
    /// [`Preface::NeedMore`]. A panic rejects the preface.
    fn connection_preface(&self, con: &mut Connection<Self>, data: &[u8]) -> Preface {
        Preface::Done(0)
    }
    fn connection_close(&self, con: &mut Connection<Self>) {}
    fn trigger(&self) {}
    fn sighup(&self) {}
    /// A child exited; return true if it was yours.
    fn waitpid(&self, pid: i32, status: i32) -> bool {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// Host access

static HOST: AtomicPtr<HostApi> = AtomicPtr::new(core::ptr::null_mut());
static MODULE_ID: AtomicU32 = AtomicU32::new(u32::MAX);
/// The module type this library exports and its instance (for [`with_request`]).
static INSTANCE: std::sync::RwLock<Option<(std::any::TypeId, usize)>> = std::sync::RwLock::new(None);

/// The host table. Panics if called before `init` (the SDK never does).
fn host() -> &'static HostApi {
    let p = HOST.load(Ordering::Acquire);
    assert!(!p.is_null(), "featherd host API used before init");
    // SAFETY: the pointer was set from the host's static table in init and is never freed.
    unsafe { &*p }
}

fn module_id() -> u32 {
    MODULE_ID.load(Ordering::Relaxed)
}

/// Whether the host table has the field ending at `end` (for fields appended after 1.0).
fn host_has(end: usize) -> bool {
    host().struct_size as usize >= end
}

/// Where a (function pointer) field of [`HostApi`] ends, for [`host_has`].
macro_rules! end_of {
    ($field:ident) => {
        core::mem::offset_of!(HostApi, $field) + core::mem::size_of::<usize>()
    };
}

/// The description a loaded module declared (None on a server older than ABI 1.1).
pub fn module_description(module: u32) -> Option<String> {
    let end = core::mem::offset_of!(HostApi, module_description) + core::mem::size_of::<usize>();
    if !host_has(end) {
        return None;
    }
    // SAFETY: the field exists (checked above); the string is static host data.
    let d = unsafe { (host().module_description)(module) };
    // SAFETY: as above.
    Some(String::from_utf8_lossy(unsafe { d.as_bytes() }).into_owned())
}

fn s(b: &[u8]) -> Str {
    Str::from_bytes(b)
}

fn found_str<'a>(f: impl FnOnce(*mut i32) -> Str) -> Option<&'a [u8]> {
    let mut found = 0i32;
    let v = f(&mut found);
    // SAFETY: host strings are valid until the next mutation of the object (ABI rule); the
    // borrow we hand out is tied to a `&self` of the wrapper, which prevents mutation.
    (found != 0).then(|| unsafe { v.as_bytes() })
}

/// The server's version.
pub fn server_version() -> String {
    // SAFETY: static host string.
    String::from_utf8_lossy(unsafe { host().server_version.as_bytes() }).into_owned()
}

/// The ABI minor the server speaks (None before `init`).
pub fn host_abi_minor() -> Option<u32> {
    if HOST.load(Ordering::Acquire).is_null() {
        return None;
    }
    Some(host().abi_minor)
}

/// Index of the current worker thread (None on the main thread).
pub fn worker_index() -> Option<u32> {
    // SAFETY: plain host call.
    let w = unsafe { (host().worker_index)() };
    u32::try_from(w).ok()
}

/// The server's cached clock, seconds since the epoch.
pub fn now() -> i64 {
    // SAFETY: plain host call.
    unsafe { (host().now)() }
}

// ---------------------------------------------------------------------------------------------
// Logging bridge: each cdylib has its own `log` globals, so the SDK installs a logger that
// forwards to the server's error log with the module's name.

struct Bridge;

impl log::Log for Bridge {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) || HOST.load(Ordering::Acquire).is_null() {
            return;
        }
        let lvl = match r.level() {
            log::Level::Error => LOG_ERROR,
            log::Level::Warn => LOG_WARN,
            log::Level::Info => LOG_INFO,
            log::Level::Debug => LOG_DEBUG,
            log::Level::Trace => LOG_TRACE,
        };
        let msg = r.args().to_string();
        // SAFETY: plain host call with a borrowed string.
        unsafe { (host().log)(module_id(), lvl, s(msg.as_bytes())) };
    }
    fn flush(&self) {}
}

static BRIDGE: Bridge = Bridge;

fn level_filter(l: u32) -> log::LevelFilter {
    match l {
        0 => log::LevelFilter::Off,
        LOG_ERROR => log::LevelFilter::Error,
        LOG_WARN => log::LevelFilter::Warn,
        LOG_INFO => log::LevelFilter::Info,
        LOG_DEBUG => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    }
}

fn log_raw(level: u32, msg: &str) {
    if !HOST.load(Ordering::Acquire).is_null() {
        // SAFETY: plain host call with a borrowed string.
        unsafe { (host().log)(module_id(), level, s(msg.as_bytes())) };
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// The type a key's value must have; the server checks it and reports file:line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Int,
    Bool,
    Array,
    Any,
}

/// A configuration key a module owns.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    pub name: &'static str,
    pub kind: ValueKind,
    /// Only allowed in the global block.
    pub server_only: bool,
}

impl Key {
    pub const fn string(name: &'static str) -> Key {
        Key { name, kind: ValueKind::String, server_only: false }
    }
    pub const fn int(name: &'static str) -> Key {
        Key { name, kind: ValueKind::Int, server_only: false }
    }
    pub const fn boolean(name: &'static str) -> Key {
        Key { name, kind: ValueKind::Bool, server_only: false }
    }
    pub const fn array(name: &'static str) -> Key {
        Key { name, kind: ValueKind::Array, server_only: false }
    }
    pub const fn any(name: &'static str) -> Key {
        Key { name, kind: ValueKind::Any, server_only: false }
    }
    /// Restrict the key to the global block.
    pub const fn server(self) -> Key {
        Key { server_only: true, ..self }
    }
}

/// A module's configuration: a plain struct, declared once with its keys. The SDK builds one
/// per config block at start (defaults, then the global block, then each nested block over
/// its parent) and, per request, hands the hooks the one that the matching blocks produce.
pub trait ModuleConfig: Clone + Default + Send + Sync + 'static {
    const KEYS: &'static [Key];
    /// Set key number `key` (index in `KEYS`) from `value`. An `Err` is reported with the
    /// file:line of the setting and refuses the start.
    fn apply(&mut self, key: usize, value: &Value) -> Result<(), String>;
}

impl ModuleConfig for () {
    const KEYS: &'static [Key] = &[];
    fn apply(&mut self, _key: usize, _value: &Value) -> Result<(), String> {
        Ok(())
    }
}

/// A configuration value: a string, an integer or an array (of values, or of `"k" => v`).
#[derive(Clone, Copy)]
pub struct Value<'a> {
    raw: *const fd_value,
    block: u32,
    _l: PhantomData<&'a ()>,
}

impl<'a> Value<'a> {
    /// The config block the value was set in (for `%n` captures: [`Request::capture`]).
    pub fn block(&self) -> u32 {
        self.block
    }
    pub fn kind(&self) -> ValueKind {
        // SAFETY: raw is a live host value (valid until cleanup).
        match unsafe { (host().value_kind)(self.raw) } {
            VALUE_STRING => ValueKind::String,
            VALUE_INT => ValueKind::Int,
            VALUE_ARRAY => ValueKind::Array,
            _ => ValueKind::Any,
        }
    }
    pub fn as_str(&self) -> Option<&'a str> {
        if self.kind() != ValueKind::String {
            return None;
        }
        // SAFETY: config strings live until cleanup.
        std::str::from_utf8(unsafe { (host().value_str)(self.raw).as_bytes() }).ok()
    }
    pub fn as_int(&self) -> Option<i64> {
        let mut ok = 0;
        // SAFETY: live host value.
        let v = unsafe { (host().value_int)(self.raw, &mut ok) };
        (ok != 0).then_some(v)
    }
    pub fn as_bool(&self) -> Option<bool> {
        // SAFETY: live host value.
        match unsafe { (host().value_bool)(self.raw) } {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
    /// Number of elements (0 for a non-array).
    pub fn len(&self) -> usize {
        // SAFETY: live host value.
        unsafe { (host().value_array_len)(self.raw) }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element `i` of an array and its key (for `"k" => v` elements).
    pub fn get(&self, i: usize) -> Option<(Option<&'a str>, Value<'a>)> {
        // SAFETY: live host value; index checked by the host.
        let v = unsafe { (host().value_array_get)(self.raw, i) };
        if v.is_null() {
            return None;
        }
        let mut found = 0;
        // SAFETY: as above.
        let k = unsafe { (host().value_array_key)(self.raw, i, &mut found) };
        // SAFETY: config strings live until cleanup.
        let key = (found != 0).then(|| std::str::from_utf8(unsafe { k.as_bytes() }).unwrap_or(""));
        Some((key, Value { raw: v, block: self.block, _l: PhantomData }))
    }
    /// The elements of an array with their keys.
    pub fn iter(&self) -> impl Iterator<Item = (Option<&'a str>, Value<'a>)> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }

    // Conversions with an error message a user can act on.
    pub fn to_str(&self) -> Result<&'a str, String> {
        self.as_str().ok_or_else(|| "expected a string".to_string())
    }
    pub fn to_int(&self) -> Result<i64, String> {
        self.as_int().ok_or_else(|| "expected an integer".to_string())
    }
    pub fn to_bool(&self) -> Result<bool, String> {
        self.as_bool().ok_or_else(|| "expected a boolean: \"enable\" or \"disable\"".to_string())
    }
    /// `( "a", "b" )` (a single string is accepted as a one-element list).
    pub fn to_str_list(&self) -> Result<Vec<String>, String> {
        if let Some(s) = self.as_str() {
            return Ok(vec![s.to_owned()]);
        }
        if self.kind() != ValueKind::Array {
            return Err("expected an array of strings".into());
        }
        self.iter()
            .map(|(_, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| "expected an array of strings".to_string())
            })
            .collect()
    }
    /// `( "k" => "v", ... )`.
    pub fn to_str_map(&self) -> Result<Vec<(String, String)>, String> {
        if self.kind() != ValueKind::Array {
            return Err("expected an array of \"key\" => \"value\"".into());
        }
        self.iter()
            .map(|(k, v)| match (k, v.as_str()) {
                (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
                _ => Err("expected an array of \"key\" => \"value\"".to_string()),
            })
            .collect()
    }
}

struct RawValues(Vec<Vec<(usize, *const fd_value)>>);
// SAFETY: config values are immutable host data valid until cleanup, readable from any thread.
unsafe impl Send for RawValues {}
// SAFETY: see above.
unsafe impl Sync for RawValues {}

/// The module's configuration for every config block, built at start.
pub struct Configs<C: ModuleConfig> {
    /// `base[b]`: defaults, then block 0, then each enclosing block of `b` down to `b`.
    base: Vec<C>,
    parent: Vec<Option<u32>>,
    raw: RawValues,
}

impl<C: ModuleConfig> Configs<C> {
    /// The global configuration (defaults + block 0).
    pub fn global(&self) -> &C {
        &self.base[0]
    }
    /// The configuration of block `b` as seen by a request matching `b` and its parents.
    pub fn block(&self, b: usize) -> Option<&C> {
        self.base.get(b)
    }
    /// Every block's configuration (index = block number).
    pub fn all(&self) -> &[C] {
        &self.base
    }

    fn is_ancestor(&self, a: u32, mut b: u32) -> bool {
        while let Some(p) = self.parent.get(b as usize).copied().flatten() {
            if p == a {
                return true;
            }
            b = p;
        }
        false
    }

    /// Merge for a request whose matched blocks (setting our keys) are `list`, in order.
    fn merged(&self, list: &[u32]) -> ConfRef<'_, C> {
        let Some(&last) = list.last() else {
            return ConfRef::Borrowed(&self.base[0]);
        };
        if list[..list.len() - 1].iter().all(|&a| self.is_ancestor(a, last)) {
            if let Some(c) = self.base.get(last as usize) {
                return ConfRef::Borrowed(c);
            }
        }
        // Sibling blocks both matched: apply them in config order over the global config.
        let mut c = self.base[0].clone();
        for &b in list {
            if let Some(vals) = self.raw.0.get(b as usize) {
                for &(k, v) in vals {
                    // Already validated at start; a failure here cannot happen.
                    let _ = c.apply(k, &Value { raw: v, block: b, _l: PhantomData });
                }
            }
        }
        ConfRef::Owned(Box::new(c))
    }
}

/// A configuration borrowed from the precomputed blocks or merged for this request.
pub enum ConfRef<'a, C> {
    Borrowed(&'a C),
    Owned(Box<C>),
}

impl<C> Deref for ConfRef<'_, C> {
    type Target = C;
    fn deref(&self) -> &C {
        match self {
            ConfRef::Borrowed(c) => c,
            ConfRef::Owned(c) => c,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The instance behind a module's data pointer

#[doc(hidden)]
pub struct Instance<M: Module> {
    module: M,
    configs: Configs<M::Config>,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// A request, as a hook sees it. All accessors read from the server without copying; the
/// borrows they return end before the next mutation.
pub struct Request<'a, M: Module> {
    raw: *mut fd_request,
    inst: &'a Instance<M>,
}

/// Names a request beyond the hook that saw it: wake it from an fd or timer callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

impl RequestId {
    /// Resume the request if it is suspended (WaitForEvent). Returns false if it is gone.
    /// Call on the worker thread that owns the request.
    pub fn wake(self) -> bool {
        // SAFETY: plain host call; the host validates the id.
        unsafe { (host().request_wake)(self.0) == 0 }
    }
}

macro_rules! req_str {
    ($(#[$m:meta])* $name:ident, $field:ident) => {
        $(#[$m])*
        pub fn $name(&self) -> &[u8] {
            // SAFETY: raw is the live request of this hook; see `found_str` for the borrow.
            unsafe { (host().$field)(self.raw).as_bytes() }
        }
    };
}

impl<'a, M: Module> Request<'a, M> {
    /// The raw request pointer, for host calls the SDK does not wrap.
    pub fn as_raw(&self) -> *mut fd_request {
        self.raw
    }
    /// The module instance.
    pub fn module(&self) -> &'a M {
        &self.inst.module
    }

    /// The module's configuration for this request: defaults, the global block and every
    /// matching conditional block that sets one of the module's keys, in config order.
    pub fn config(&self) -> ConfRef<'a, M::Config> {
        let mut buf = [0u32; 8];
        // SAFETY: live request; buf has room for `cap` entries.
        let n = unsafe { (host().request_config_blocks)(self.raw, module_id(), buf.as_mut_ptr(), buf.len()) };
        if n <= buf.len() {
            return self.inst.configs.merged(&buf[..n]);
        }
        let mut v = vec![0u32; n];
        // SAFETY: as above, with a buffer of the size the host asked for.
        let n2 = unsafe { (host().request_config_blocks)(self.raw, module_id(), v.as_mut_ptr(), v.len()) };
        v.truncate(n2.min(n));
        self.inst.configs.merged(&v)
    }

    /// `%n` of the regex condition enclosing config `block` (see [`Value::block`]).
    pub fn capture(&self, block: u32, n: u32) -> Option<&[u8]> {
        // SAFETY: live request.
        found_str(|f| unsafe { (host().request_capture)(self.raw, block, n, f) })
    }

    /// Per-request state of this module, created on first use and dropped at request reset.
    pub fn state(&mut self) -> &mut M::RequestState {
        // SAFETY: live request; the slot holds a Box<M::RequestState> this SDK put there.
        unsafe {
            let mut p = (host().request_slot_get)(self.raw, module_id()) as *mut M::RequestState;
            if p.is_null() {
                p = Box::into_raw(Box::<M::RequestState>::default());
                (host().request_slot_set)(self.raw, module_id(), p as *mut c_void);
            }
            &mut *p
        }
    }

    /// A handle that names this request after the hook returns.
    pub fn id(&self) -> RequestId {
        // SAFETY: live request.
        RequestId(unsafe { (host().request_id)(self.raw) })
    }

    req_str!(/// "GET", "POST", ...
        method, request_method);
    req_str!(/// The target as received (not decoded).
        target, request_target);
    req_str!(/// The decoded, normalised path (raw in uri_raw).
        path, request_path);
    req_str!(/// Host name, lower-case, without port.
        host, request_host);
    req_str!(/// "http" or "https".
        scheme, request_scheme);
    req_str!(/// "HTTP/1.0" or "HTTP/1.1".
        protocol, request_protocol);
    req_str!(/// The document root.
        docroot, request_docroot);
    req_str!(/// The physical path (docroot + path) once composed.
        physical_path, request_physical_path);
    req_str!(/// PATH_INFO split off after the file name.
        path_info, request_path_info);
    req_str!(/// The client's address as text.
        remote_addr, request_remote_addr);
    req_str!(/// The local "addr:port" the request came in on.
        local_addr, request_local_addr);

    /// The query string (without '?'), None when the target had no '?'.
    pub fn query(&self) -> Option<&[u8]> {
        // SAFETY: live request.
        found_str(|f| unsafe { (host().request_query)(self.raw, f) })
    }
    pub fn remote_port(&self) -> u16 {
        // SAFETY: live request.
        unsafe { (host().request_remote_port)(self.raw) as u16 }
    }
    /// Rewrite the target (path?query). Return [`Handler::Comeback`] afterwards.
    pub fn set_target(&mut self, target: &[u8]) -> bool {
        // SAFETY: live request; borrowed input.
        unsafe { (host().request_set_target)(self.raw, s(target)) == 0 }
    }
    pub fn set_docroot(&mut self, p: &[u8]) {
        // SAFETY: live request; borrowed input.
        unsafe { (host().request_set_docroot)(self.raw, s(p)) };
    }
    pub fn set_physical_path(&mut self, p: &[u8]) {
        // SAFETY: live request; borrowed input.
        unsafe { (host().request_set_physical_path)(self.raw, s(p)) };
    }

    /// First value of a request header.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        // SAFETY: live request.
        found_str(|f| unsafe { (host().request_header_get)(self.raw, s(name.as_bytes()), f) })
    }
    pub fn set_header(&mut self, name: &str, value: &[u8]) {
        // SAFETY: live request.
        unsafe { (host().request_header_set)(self.raw, s(name.as_bytes()), s(value)) };
    }
    pub fn append_header(&mut self, name: &str, value: &[u8]) {
        // SAFETY: live request.
        unsafe { (host().request_header_append)(self.raw, s(name.as_bytes()), s(value)) };
    }
    pub fn remove_header(&mut self, name: &str) {
        // SAFETY: live request.
        unsafe { (host().request_header_remove)(self.raw, s(name.as_bytes())) };
    }
    /// Request headers in received order.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        pairs(move |i, n, v| unsafe { (host().request_header_at)(self.raw, i, n, v) })
    }

    /// Content-Length of the request body.
    pub fn content_length(&self) -> Option<u64> {
        // SAFETY: live request.
        u64::try_from(unsafe { (host().request_content_length)(self.raw) }).ok()
    }
    /// Read request body bytes: Ok(0) at the end, Err(WouldBlock) when more is coming (the
    /// handler runs again when it arrives).
    pub fn read_body(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: live request; buf is writable for its length.
        let n = unsafe { (host().request_body_read)(self.raw, buf.as_mut_ptr(), buf.len()) };
        match n {
            n if n >= 0 => Ok(n as usize),
            -11 => Err(std::io::ErrorKind::WouldBlock.into()),
            _ => Err(std::io::Error::other("request body read failed")),
        }
    }

    pub fn env(&self, name: &str) -> Option<&[u8]> {
        // SAFETY: live request.
        found_str(|f| unsafe { (host().request_env_get)(self.raw, s(name.as_bytes()), f) })
    }
    pub fn set_env(&mut self, name: &str, value: &[u8]) {
        // SAFETY: live request.
        unsafe { (host().request_env_set)(self.raw, s(name.as_bytes()), s(value)) };
    }
    pub fn env_vars(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        pairs(move |i, n, v| unsafe { (host().request_env_at)(self.raw, i, n, v) })
    }

    /// Whether another module has claimed this request (then it is not ours to serve).
    /// Always false on a server older than ABI 1.1.
    pub fn claimed_by_other(&self) -> bool {
        let end = core::mem::offset_of!(HostApi, request_handler) + core::mem::size_of::<usize>();
        if !host_has(end) {
            return false;
        }
        // SAFETY: the field exists (checked above); live request.
        let h = unsafe { (host().request_handler)(self.raw) };
        h >= 0 && h as u32 != module_id()
    }

    /// Replace the decoded path without restarting the request. Returns false on a server
    /// older than ABI 1.1 or for a path not starting with '/'.
    pub fn set_path(&mut self, path: &[u8]) -> bool {
        let end = core::mem::offset_of!(HostApi, request_set_path) + core::mem::size_of::<usize>();
        // SAFETY: the field exists (checked first); live request; borrowed input.
        host_has(end) && unsafe { (host().request_set_path)(self.raw, s(path)) } == 0
    }

    /// Queue `len` bytes from `offset` of the physical file (the one [`Request::file_info`]
    /// describes) from the server's file cache: no open/fstat/close per request. False on a
    /// server older than ABI 1.2, or when the file changed or cannot be read: then open it
    /// and use [`Request::append_file`]. `len` 0 only checks that it would work.
    pub fn append_physical(&mut self, offset: u64, len: u64) -> bool {
        let end = core::mem::offset_of!(HostApi, response_append_physical) + core::mem::size_of::<usize>();
        // SAFETY: the field exists (checked first); live request.
        host_has(end) && unsafe { (host().response_append_physical)(self.raw, offset, len) } == 0
    }

    /// The target as the client sent it, before mod_rewrite or a backend's local redirect
    /// changed it (lighttpd's `target_orig`: CGI's `REQUEST_URI`, the access log's `%r`).
    /// Equal to [`Request::target`] for a request that was not rewritten, and on a server
    /// older than ABI 1.3.
    pub fn target_orig(&self) -> &[u8] {
        let end = core::mem::offset_of!(HostApi, request_target_orig) + core::mem::size_of::<usize>();
        if !host_has(end) {
            return self.target();
        }
        // SAFETY: the field exists (checked above); live request; see `found_str` for the borrow.
        unsafe { (host().request_target_orig)(self.raw).as_bytes() }
    }

    /// Response body bytes written so far (None on a server older than ABI 1.1).
    pub fn body_bytes_out(&self) -> Option<u64> {
        let end = core::mem::offset_of!(HostApi, response_body_bytes_out) + core::mem::size_of::<usize>();
        // SAFETY: the field exists (checked first); live request.
        host_has(end).then(|| unsafe { (host().response_body_bytes_out)(self.raw) })
    }

    /// Close the connection after this response (no keep-alive). Does nothing on a server
    /// older than ABI 1.4.
    pub fn disable_keep_alive(&mut self) {
        let end = core::mem::offset_of!(HostApi, request_disable_keep_alive) + core::mem::size_of::<usize>();
        if host_has(end) {
            // SAFETY: the field exists (checked above); live request.
            unsafe { (host().request_disable_keep_alive)(self.raw) };
        }
    }

    /// `server.tag` for this request (what the `Server` header says; empty when the
    /// configuration set it to ""). None on a server older than ABI 1.5.
    pub fn server_tag(&self) -> Option<&[u8]> {
        let end = core::mem::offset_of!(HostApi, request_server_tag) + core::mem::size_of::<usize>();
        // SAFETY: the field exists (checked first); live request; config data outlives the hook.
        host_has(end).then(|| unsafe { (host().request_server_tag)(self.raw).as_bytes() })
    }

    /// Set this request's remote address (IPv4 or IPv6 text) and port (0 when unknown), as a
    /// trusted proxy reports the client: every later hook, the access log, backends and
    /// `$HTTP["remoteip"]` see it (conditions are evaluated again, so the settings of every
    /// module from the next call on are those of the new address). The next request of the
    /// connection starts from the connection's address. False for text that is not an
    /// address, or on a server older than ABI 1.6.
    pub fn set_remote_addr(&mut self, addr: &[u8], port: u16) -> bool {
        // SAFETY: the field exists (checked first); live request; borrowed input.
        host_has(end_of!(request_set_remote_addr))
            && unsafe { (host().request_set_remote_addr)(self.raw, s(addr), u32::from(port)) } == 0
    }

    /// Set this request's scheme ("http" or "https", any case), as a TLS-terminating proxy
    /// reports it (`HTTPS=on` for backends, `$HTTP["scheme"]`). False for another scheme, or
    /// on a server older than ABI 1.6.
    pub fn set_scheme(&mut self, scheme: &[u8]) -> bool {
        // SAFETY: the field exists (checked first); live request; borrowed input.
        host_has(end_of!(request_set_scheme))
            && unsafe { (host().request_set_scheme)(self.raw, s(scheme)) } == 0
    }

    /// Set this request's host (`host[:port]`) and its Host header; `$HTTP["host"]` follows.
    /// False for a value that is not a valid host, or on a server older than ABI 1.6.
    pub fn set_host(&mut self, value: &[u8]) -> bool {
        // SAFETY: the field exists (checked first); live request; borrowed input.
        host_has(end_of!(request_set_host)) && unsafe { (host().request_set_host)(self.raw, s(value)) } == 0
    }

    /// The address of the peer the connection is from: the request's own
    /// ([`Request::remote_addr`]) unless a module set that from a proxy's headers (then this
    /// is the proxy). Equal to `remote_addr` on a server older than ABI 1.6.
    pub fn connection_remote_addr(&self) -> &[u8] {
        if host_has(end_of!(request_connection)) {
            // SAFETY: the field exists (checked above); live request.
            let raw = unsafe { (host().request_connection)(self.raw) };
            if !raw.is_null() {
                // SAFETY: a live connection; the view lives as long as its peer, which the
                // request holds no handle to change while `&self` is borrowed.
                return unsafe { (host().connection_remote_addr)(raw).as_bytes() };
            }
        }
        self.remote_addr()
    }

    /// This module's state for the connection the request is on (created on first use, as
    /// [`Connection::state`]). None on a server older than ABI 1.6.
    pub fn connection_state(&mut self) -> Option<&mut M::ConnectionState> {
        if !host_has(end_of!(request_connection)) {
            return None;
        }
        // SAFETY: the field exists (checked above); live request.
        let raw = unsafe { (host().request_connection)(self.raw) };
        if raw.is_null() {
            return None;
        }
        let mut c = Connection { raw, inst: self.inst };
        let p: *mut M::ConnectionState = c.state();
        // SAFETY: the state lives in the connection's slot until connection_close, which
        // comes after every request of the connection; the borrow is tied to `&mut self`.
        Some(unsafe { &mut *p })
    }

    /// Make this module the request's handler: its `subrequest` hook produces the response.
    pub fn claim(&mut self) -> bool {
        // SAFETY: live request.
        unsafe { (host().request_claim)(self.raw, module_id()) == 0 }
    }

    pub fn status(&self) -> u16 {
        // SAFETY: live request.
        unsafe { (host().response_status)(self.raw) as u16 }
    }
    pub fn set_status(&mut self, code: u16) {
        // SAFETY: live request.
        unsafe { (host().response_set_status)(self.raw, code as u32) };
    }
    pub fn response_header(&self, name: &str) -> Option<&[u8]> {
        // SAFETY: live request.
        found_str(|f| unsafe { (host().response_header_get)(self.raw, s(name.as_bytes()), f) })
    }
    pub fn set_response_header(&mut self, name: &str, value: impl AsRef<[u8]>) {
        // SAFETY: live request.
        unsafe { (host().response_header_set)(self.raw, s(name.as_bytes()), s(value.as_ref())) };
    }
    pub fn append_response_header(&mut self, name: &str, value: impl AsRef<[u8]>) {
        // SAFETY: live request.
        unsafe { (host().response_header_append)(self.raw, s(name.as_bytes()), s(value.as_ref())) };
    }
    pub fn remove_response_header(&mut self, name: &str) {
        // SAFETY: live request.
        unsafe { (host().response_header_remove)(self.raw, s(name.as_bytes())) };
    }
    pub fn response_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        pairs(move |i, n, v| unsafe { (host().response_header_at)(self.raw, i, n, v) })
    }
    /// Queue a copy of `data` as response body.
    pub fn append_body(&mut self, data: &[u8]) {
        // SAFETY: live request; borrowed input copied by the host.
        unsafe { (host().response_append_mem)(self.raw, s(data)) };
    }
    /// Queue `len` bytes of `file` from `offset`; sent with sendfile. The server owns the fd.
    pub fn append_file(&mut self, file: impl Into<OwnedFd>, offset: u64, len: u64) -> bool {
        let fd = file.into().into_raw_fd();
        // SAFETY: live request; ownership of fd passes to the host in every case.
        unsafe { (host().response_append_file)(self.raw, fd, offset, len) == 0 }
    }
    /// The host's stat of the physical path (None if it does not exist or is not known yet).
    pub fn file_info(&self) -> Option<FileInfo> {
        let mut fi = FileInfo::default();
        // SAFETY: live request; fi is writable.
        (unsafe { (host().request_file_info)(self.raw, &mut fi) } == 0).then_some(fi)
    }
    /// The content type `mimetype.assign` gives a file name.
    pub fn mimetype_for(&self, path: &[u8]) -> &[u8] {
        // SAFETY: live request; the result is config data valid until cleanup.
        unsafe { (host().mimetype_for)(self.raw, s(path)).as_bytes() }
    }
    /// Set `Content-Type` to what `mimetype.assign` gives `path`, without copying it; false
    /// (and nothing set) when no type is configured for it.
    pub fn set_content_type_for(&mut self, path: &[u8]) -> bool {
        // SAFETY: live request. The type is config data, valid until cleanup, so the view
        // stays valid while the host stores a copy of it among the response headers.
        unsafe {
            let t = (host().mimetype_for)(self.raw, s(path));
            if t.len == 0 {
                return false;
            }
            (host().response_header_set)(self.raw, s(b"Content-Type"), t);
        }
        true
    }
    /// Response bytes written so far (headers included).
    pub fn bytes_out(&self) -> u64 {
        // SAFETY: live request.
        unsafe { (host().request_bytes_out)(self.raw) }
    }
    /// Request bytes read (head and body).
    pub fn bytes_in(&self) -> u64 {
        // SAFETY: live request.
        unsafe { (host().request_bytes_in)(self.raw) }
    }
    /// When the request started, microseconds since the epoch.
    pub fn start_us(&self) -> u64 {
        // SAFETY: live request.
        unsafe { (host().request_start_us)(self.raw) }
    }
    pub fn set_content_length(&mut self, len: u64) {
        // SAFETY: live request.
        unsafe { (host().response_set_content_length)(self.raw, len as i64) };
    }
    /// The streamed body is complete.
    pub fn finish_body(&mut self) {
        // SAFETY: live request.
        unsafe { (host().response_body_finish)(self.raw) };
    }
    /// Body bytes queued and not yet sent.
    pub fn pending(&self) -> u64 {
        // SAFETY: live request.
        unsafe { (host().response_pending)(self.raw) }
    }
    /// Stop producing above this many pending bytes; you are woken below half of it.
    pub fn high_water(&self) -> u64 {
        // SAFETY: live request.
        unsafe { (host().response_high_water)(self.raw) }
    }
}

fn pairs<'a>(
    at: impl Fn(usize, *mut Str, *mut Str) -> i32 + 'a,
) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
    let mut i = 0;
    std::iter::from_fn(move || {
        let (mut n, mut v) = (Str::EMPTY, Str::EMPTY);
        if at(i, &mut n, &mut v) == 0 {
            return None;
        }
        i += 1;
        // SAFETY: host strings valid while the request is borrowed immutably.
        Some(unsafe { (n.as_bytes(), v.as_bytes()) })
    })
}

/// A connection, as connection hooks see it.
pub struct Connection<'a, M: Module> {
    raw: *mut fd_connection,
    inst: &'a Instance<M>,
}

impl<'a, M: Module> Connection<'a, M> {
    pub fn module(&self) -> &'a M {
        &self.inst.module
    }

    /// The raw connection pointer, for host calls the SDK does not wrap.
    pub fn as_raw(&self) -> *mut fd_connection {
        self.raw
    }

    /// The module's configuration for this connection, outside any request: the blocks
    /// whose conditions on the connection match (`$SERVER["socket"]`, `$HTTP["remoteip"]`,
    /// `$HTTP["scheme"]`; conditions on request data compare an empty value). The global
    /// configuration on a server older than ABI 1.6.
    pub fn config(&self) -> ConfRef<'a, M::Config> {
        if !host_has(end_of!(connection_config_blocks)) {
            return ConfRef::Borrowed(self.inst.configs.global());
        }
        let mut buf = [0u32; 8];
        // SAFETY: the field exists (checked above); live connection; buf has room for cap.
        let n =
            unsafe { (host().connection_config_blocks)(self.raw, module_id(), buf.as_mut_ptr(), buf.len()) };
        if n <= buf.len() {
            return self.inst.configs.merged(&buf[..n]);
        }
        let mut v = vec![0u32; n];
        // SAFETY: as above, with a buffer of the size the host asked for.
        let n2 = unsafe { (host().connection_config_blocks)(self.raw, module_id(), v.as_mut_ptr(), v.len()) };
        v.truncate(n2.min(n));
        self.inst.configs.merged(&v)
    }

    /// In `connection_accept`: hand the connection's first bytes to this module's
    /// [`Module::connection_preface`] before HTTP parsing. False when another module claimed
    /// them, the module does not list [`Hooks::CONNECTION_PREFACE`], or the server is older
    /// than ABI 1.6.
    pub fn claim_preface(&mut self) -> bool {
        // SAFETY: the field exists (checked first); live connection.
        host_has(end_of!(connection_claim_preface))
            && unsafe { (host().connection_claim_preface)(self.raw, module_id()) } == 0
    }

    /// Set the connection's remote address (IPv4 or IPv6 text) and port, for its requests
    /// from the next one on. False for text that is not an address, or before ABI 1.6.
    pub fn set_remote_addr(&mut self, addr: &str, port: u16) -> bool {
        // SAFETY: the field exists (checked first); live connection; borrowed input.
        host_has(end_of!(connection_set_remote_addr))
            && unsafe { (host().connection_set_remote_addr)(self.raw, s(addr.as_bytes()), u32::from(port)) }
                == 0
    }

    /// Set the connection's scheme ("http" or "https"), for its requests from the next one
    /// on. False for another scheme, or before ABI 1.6.
    pub fn set_scheme(&mut self, scheme: &str) -> bool {
        // SAFETY: the field exists (checked first); live connection; borrowed input.
        host_has(end_of!(connection_set_scheme))
            && unsafe { (host().connection_set_scheme)(self.raw, s(scheme.as_bytes())) } == 0
    }
    pub fn remote_addr(&self) -> &[u8] {
        // SAFETY: live connection.
        unsafe { (host().connection_remote_addr)(self.raw).as_bytes() }
    }
    /// Per-connection state, created on first use, dropped at connection close.
    pub fn state(&mut self) -> &mut M::ConnectionState {
        // SAFETY: live connection; the slot holds a Box<M::ConnectionState> this SDK set.
        unsafe {
            let mut p = (host().connection_slot_get)(self.raw, module_id()) as *mut M::ConnectionState;
            if p.is_null() {
                p = Box::into_raw(Box::<M::ConnectionState>::default());
                (host().connection_slot_set)(self.raw, module_id(), p as *mut c_void);
            }
            &mut *p
        }
    }
}

// ---------------------------------------------------------------------------------------------
// fd readiness and timers

/// Readiness of a registered fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Events(pub u32);

impl Events {
    pub fn readable(self) -> bool {
        self.0 & FD_READABLE != 0
    }
    pub fn writable(self) -> bool {
        self.0 & FD_WRITABLE != 0
    }
    pub fn hup(self) -> bool {
        self.0 & FD_HUP != 0
    }
    pub fn error(self) -> bool {
        self.0 & FD_ERROR != 0
    }
}

type FdCallback = RefCell<Box<dyn FnMut(RawFd, Events)>>;

/// An fd registered with the worker's poller; dropping it unregisters (safe also from inside
/// its own callback). The fd itself stays yours: drop this before closing it.
pub struct FdRegistration {
    handle: i64,
    cb: *const FdCallback,
}

unsafe extern "C" fn fd_trampoline(_data: *mut c_void, ctx: *mut c_void, fd: i32, events: u32) {
    let p = ctx as *const FdCallback;
    // SAFETY: ctx is an Rc<FdCallback> raw pointer owned by a live FdRegistration (the host
    // calls only registered handles). We take a second reference for the call so that
    // dropping the registration inside the callback does not free the closure under us.
    let rc = unsafe {
        Rc::increment_strong_count(p);
        Rc::from_raw(p)
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        if let Ok(mut f) = rc.try_borrow_mut() {
            f(fd, Events(events));
        }
    }));
    if let Err(e) = r {
        log_raw(LOG_ERROR, &format!("panic in fd callback: {}", panic_message(&e)));
    }
}

/// Watch `fd` for readiness on the current worker's poller (edge-triggered: read or write
/// until WouldBlock). Call on a worker thread (in a hook or callback).
pub fn register_fd(
    fd: RawFd,
    readable: bool,
    writable: bool,
    f: impl FnMut(RawFd, Events) + 'static,
) -> std::io::Result<FdRegistration> {
    let cb: Rc<FdCallback> = Rc::new(RefCell::new(Box::new(f)));
    let p = Rc::into_raw(cb);
    let interest = (readable as u32 * FD_READABLE) | (writable as u32 * FD_WRITABLE);
    // SAFETY: host call; p stays alive until the registration is dropped.
    let handle = unsafe { (host().fd_register)(module_id(), fd, interest, fd_trampoline, p as *mut c_void) };
    if handle <= 0 {
        // SAFETY: p came from Rc::into_raw above and was not handed out.
        drop(unsafe { Rc::from_raw(p) });
        return Err(std::io::Error::other("fd registration refused (not on a worker thread?)"));
    }
    Ok(FdRegistration { handle, cb: p })
}

impl FdRegistration {
    /// Unregister and close `fd`, the descriptor this registration watches, in one step (the
    /// close removes it from the poller: one system call instead of two). On a server older
    /// than ABI 1.2: unregister, then close.
    pub fn close(self, fd: std::os::fd::OwnedFd) {
        use std::os::fd::IntoRawFd;
        let end = core::mem::offset_of!(HostApi, fd_close) + core::mem::size_of::<usize>();
        if !host_has(end) {
            drop(self);
            drop(fd);
            return;
        }
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: our handle; the host takes the fd in every case and no longer holds `cb`
        // afterwards, so the reference we own is released (Drop is skipped: ManuallyDrop).
        unsafe {
            (host().fd_close)(this.handle, fd.into_raw_fd());
            drop(Rc::from_raw(this.cb));
        }
    }

    /// Change the interest.
    pub fn modify(&self, readable: bool, writable: bool) -> bool {
        let interest = (readable as u32 * FD_READABLE) | (writable as u32 * FD_WRITABLE);
        // SAFETY: host call with our own handle.
        unsafe { (host().fd_modify)(self.handle, interest) == 0 }
    }
}

impl Drop for FdRegistration {
    fn drop(&mut self) {
        // SAFETY: our handle; after unregistering the host no longer holds `cb`, so the
        // reference we own can be released.
        unsafe {
            (host().fd_unregister)(self.handle);
            drop(Rc::from_raw(self.cb));
        }
    }
}

type TimerCallback = Option<Box<dyn FnOnce()>>;

/// A one-shot timer; [`Timer::cancel`] stops it. Dropping the handle does not cancel it.
pub struct Timer {
    handle: i64,
    cb: *mut TimerCallback,
}

unsafe extern "C" fn timer_trampoline(_data: *mut c_void, ctx: *mut c_void, _fd: i32, _ev: u32) {
    // SAFETY: ctx is the Box<TimerCallback> leaked in `timer`; the host calls a timer once,
    // and `cancel` frees the box only when the host confirms it had not fired.
    let mut b = unsafe { Box::from_raw(ctx as *mut TimerCallback) };
    if let Some(f) = b.take() {
        if let Err(e) = catch_unwind(AssertUnwindSafe(f)) {
            log_raw(LOG_ERROR, &format!("panic in timer callback: {}", panic_message(&e)));
        }
    }
}

/// Run `f` once after `ms` milliseconds on the current worker thread.
pub fn timer(ms: u64, f: impl FnOnce() + 'static) -> std::io::Result<Timer> {
    let b: Box<TimerCallback> = Box::new(Some(Box::new(f)));
    let p = Box::into_raw(b);
    // SAFETY: host call; the host owns p until it fires or is cancelled.
    let handle = unsafe { (host().timer_add)(module_id(), ms, timer_trampoline, p as *mut c_void) };
    if handle <= 0 {
        // SAFETY: p was not handed out.
        drop(unsafe { Box::from_raw(p) });
        return Err(std::io::Error::other("timer refused (not on a worker thread?)"));
    }
    Ok(Timer { handle, cb: p })
}

impl Timer {
    /// Cancel if it has not fired yet.
    pub fn cancel(self) {
        // SAFETY: the host returns 0 only if it removed the timer before firing; then the box
        // is still ours to free.
        unsafe {
            if (host().timer_cancel)(self.handle) == 0 {
                drop(Box::from_raw(self.cb));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The blocking pool

/// What a job produced, type-erased for the trip back to the worker.
type JobOutput = Result<Box<dyn Any + Send>, String>;

/// Travels with the job to a pool thread and back: only `Send` things.
struct JobCell {
    job: Option<Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>>,
    out: Option<JobOutput>,
    token: u64,
}

type DoneFn = Box<dyn FnOnce(JobOutput)>;

thread_local! {
    /// The `done` halves of this worker's jobs: they may hold non-`Send` things (an `Rc`, a
    /// request id), so they never leave the worker thread.
    static DONE: RefCell<std::collections::HashMap<u64, DoneFn>> = RefCell::new(Default::default());
    static NEXT_JOB: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

unsafe extern "C" fn blocking_job(_data: *mut c_void, ctx: *mut c_void) {
    // SAFETY: ctx is the Box<JobCell> leaked in `blocking`; the host hands it to exactly one
    // pool thread, and gives it back to the worker (`blocking_done`) only after this returns.
    let cell = unsafe { &mut *(ctx as *mut JobCell) };
    if let Some(job) = cell.job.take() {
        cell.out = Some(catch_unwind(AssertUnwindSafe(job)).map_err(|e| panic_message(&e)));
    }
}

unsafe extern "C" fn blocking_done(_data: *mut c_void, ctx: *mut c_void) {
    // SAFETY: ctx is the Box<JobCell> leaked in `blocking`; the host calls `done` once, after
    // the job, on the submitting worker thread.
    let cell = unsafe { Box::from_raw(ctx as *mut JobCell) };
    let out = cell.out.unwrap_or_else(|| Err("the job did not run".into()));
    let Some(f) = DONE.with(|d| d.borrow_mut().remove(&cell.token)) else { return };
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(out))) {
        log_raw(LOG_ERROR, &format!("panic in blocking job completion: {}", panic_message(&e)));
    }
}

/// Run `job` on one of the server's blocking threads, then `done` with its result on this
/// worker thread, from its event loop. For work that must block or burn CPU (a slow password
/// hash, a large directory walk): the worker serves other clients meanwhile. A request waiting
/// for the result returns [`Handler::WaitForEvent`] and is woken from `done`
/// ([`RequestId::wake`]).
///
/// `job` must not call into the server (no logging through the host, no request access): it
/// runs on a thread that is not a worker. A panic in `job` reaches `done` as `Err(message)`;
/// a panic in `done` is logged. Call on a worker thread (in a hook or callback); fails on the
/// main thread and on a server older than ABI 1.4. If the worker stops before the job is done,
/// `done` is not called.
pub fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
    done: impl FnOnce(Result<T, String>) + 'static,
) -> std::io::Result<()> {
    let end = core::mem::offset_of!(HostApi, blocking_submit) + core::mem::size_of::<usize>();
    if !host_has(end) {
        return Err(std::io::Error::other("the server has no blocking pool (older than ABI 1.4)"));
    }
    let token = NEXT_JOB.with(|n| {
        n.set(n.get().wrapping_add(1));
        n.get()
    });
    let finish: DoneFn = Box::new(move |out: JobOutput| {
        done(out.and_then(|b| b.downcast::<T>().map(|b| *b).map_err(|_| "job result of another type".into())))
    });
    DONE.with(|d| d.borrow_mut().insert(token, finish));
    let cell = Box::new(JobCell {
        job: Some(Box::new(move || Box::new(job()) as Box<dyn Any + Send>)),
        out: None,
        token,
    });
    let p = Box::into_raw(cell);
    // SAFETY: host call (field checked above); the host owns p until it calls blocking_done.
    let r = unsafe { (host().blocking_submit)(module_id(), blocking_job, blocking_done, p as *mut c_void) };
    if r != 0 {
        // SAFETY: p was not handed out.
        drop(unsafe { Box::from_raw(p) });
        DONE.with(|d| d.borrow_mut().remove(&token));
        return Err(std::io::Error::other("blocking job refused (not on a worker thread?)"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Server-wide figures, connection snapshots, named counters, modules (ABI 1.7)

pub use abi::{
    ServerStats, CONN_STATE_CLOSE, CONN_STATE_CONNECT, CONN_STATE_COUNT, CONN_STATE_ERROR,
    CONN_STATE_HANDLE_REQUEST, CONN_STATE_KEEP_ALIVE, CONN_STATE_READ, CONN_STATE_READ_POST,
    CONN_STATE_REQUEST_END, CONN_STATE_REQUEST_START, CONN_STATE_RESPONSE_END, CONN_STATE_RESPONSE_START,
    CONN_STATE_WRITE,
};

/// Whether the host table has `field` (appended after ABI 1.0).
macro_rules! host_has_field {
    ($field:ident) => {
        host_has(core::mem::offset_of!(HostApi, $field) + core::mem::size_of::<usize>())
    };
}

/// The server-wide figures, summed over every worker: requests, traffic, connections, uptime.
/// None on a server older than ABI 1.7 (or before `init`).
pub fn server_stats() -> Option<ServerStats> {
    if HOST.load(Ordering::Acquire).is_null() || !host_has_field!(server_stats) {
        return None;
    }
    let mut s = ServerStats { struct_size: core::mem::size_of::<ServerStats>() as u32, ..Default::default() };
    // SAFETY: the field exists (checked above); s is a writable ServerStats of the size it says.
    (unsafe { (host().server_stats)(&mut s) } == 0).then_some(s)
}

/// One connection of one worker, as [`collect_connections`] reports it (owned copies).
#[derive(Clone, Debug, Default)]
pub struct ConnSnapshot {
    /// One of the `CONN_STATE_*` values.
    pub state: u32,
    pub worker: u32,
    pub remote_addr: String,
    pub remote_port: u16,
    /// Requests answered on the connection before the current one.
    pub requests: u64,
    /// Milliseconds since the current request began (idle: since the last activity).
    pub age_ms: u64,
    /// Request bytes read (head and body) and the body's declared length.
    pub bytes_in: u64,
    pub content_length: Option<u64>,
    /// Response bytes written, and produced so far (written + queued).
    pub bytes_out: u64,
    pub bytes_total: u64,
    /// The response status once decided, else 0.
    pub status: u16,
    pub method: Vec<u8>,
    pub host: Vec<u8>,
    /// The target as the client sent it.
    pub target: Vec<u8>,
    /// The target after a rewrite (empty when not rewritten).
    pub target_rewritten: Vec<u8>,
    pub physical: Vec<u8>,
}

/// Every worker's connections at one moment.
#[derive(Clone, Debug, Default)]
pub struct ConnList {
    /// At most the `max` asked for per worker.
    pub conns: Vec<ConnSnapshot>,
    /// Connections per `CONN_STATE_*` over every worker (all of them, whatever `max` was).
    pub counts: [u64; CONN_STATE_COUNT as usize],
}

type CollectDone = Box<dyn FnOnce(ConnList)>;

thread_local! {
    static COLLECT_DONE: RefCell<std::collections::HashMap<u64, CollectDone>> = RefCell::new(Default::default());
    static NEXT_COLLECT: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

unsafe extern "C" fn collect_trampoline(_data: *mut c_void, ctx: *mut c_void, list: *const fd_conn_list) {
    let token = ctx as usize as u64;
    let Some(f) = COLLECT_DONE.with(|d| d.borrow_mut().remove(&token)) else { return };
    let h = host();
    let mut out = ConnList::default();
    for (state, n) in out.counts.iter_mut().enumerate() {
        // SAFETY: list is the live list of this callback (ABI rule).
        *n = unsafe { (h.conn_list_state_count)(list, state as u32) };
    }
    let mut i = 0;
    loop {
        let mut r = ConnRecord {
            struct_size: core::mem::size_of::<ConnRecord>() as u32,
            state: 0,
            worker: 0,
            remote_port: 0,
            requests: 0,
            age_ms: 0,
            bytes_in: 0,
            content_length: -1,
            bytes_out: 0,
            bytes_total: 0,
            status: 0,
            _reserved: 0,
            remote_addr: Str::EMPTY,
            method: Str::EMPTY,
            host: Str::EMPTY,
            target: Str::EMPTY,
            target_rewritten: Str::EMPTY,
            physical: Str::EMPTY,
        };
        // SAFETY: as above; r is a writable ConnRecord of the size it says.
        if unsafe { (h.conn_list_get)(list, i, &mut r) } == 0 {
            break;
        }
        i += 1;
        // SAFETY: the record's strings are valid during this callback (ABI rule).
        let b = |s: Str| unsafe { s.as_bytes() }.to_vec();
        out.conns.push(ConnSnapshot {
            state: r.state,
            worker: r.worker,
            remote_addr: String::from_utf8_lossy(&b(r.remote_addr)).into_owned(),
            remote_port: r.remote_port as u16,
            requests: r.requests,
            age_ms: r.age_ms,
            bytes_in: r.bytes_in,
            content_length: u64::try_from(r.content_length).ok(),
            bytes_out: r.bytes_out,
            bytes_total: r.bytes_total,
            status: r.status as u16,
            method: b(r.method),
            host: b(r.host),
            target: b(r.target),
            target_rewritten: b(r.target_rewritten),
            physical: b(r.physical),
        });
    }
    if let Err(e) = catch_unwind(AssertUnwindSafe(|| f(out))) {
        log_raw(LOG_ERROR, &format!("panic in connection snapshot callback: {}", panic_message(&e)));
    }
}

/// Ask every worker to describe its connections (at most `max` each); `done` runs later on
/// this worker thread, from its loop, with all of them. A request waiting for it returns
/// [`Handler::WaitForEvent`] and is woken from `done` ([`RequestId::wake`]). Workers answer
/// between two events of their own, so this never blocks one worker on another. Call on a
/// worker thread; fails on the main thread and on a server older than ABI 1.7. If this worker
/// stops before every worker answered, `done` is not called.
pub fn collect_connections(max: u32, done: impl FnOnce(ConnList) + 'static) -> std::io::Result<()> {
    if !host_has_field!(connections_collect) {
        return Err(std::io::Error::other("the server cannot list connections (older than ABI 1.7)"));
    }
    let token = NEXT_COLLECT.with(|n| {
        n.set(n.get().wrapping_add(1));
        n.get()
    });
    COLLECT_DONE.with(|d| d.borrow_mut().insert(token, Box::new(done)));
    // SAFETY: host call (field checked above); the token is a plain integer in the pointer.
    let r = unsafe {
        (host().connections_collect)(module_id(), max, collect_trampoline, token as usize as *mut c_void)
    };
    if r != 0 {
        COLLECT_DONE.with(|d| d.borrow_mut().remove(&token));
        return Err(std::io::Error::other("connection snapshot refused (not on a worker thread?)"));
    }
    Ok(())
}

/// A named counter shared by every worker (lighttpd's plugin statistics), listed by status
/// pages (mod_status's `status.statistics-url`). Cheap to update: one relaxed atomic
/// operation. Keep it (it is valid for the life of the process) rather than asking by name
/// per request.
#[derive(Clone, Copy, Debug)]
pub struct Counter(&'static core::sync::atomic::AtomicI64);

impl Counter {
    pub fn add(self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn sub(self, n: i64) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
    pub fn set(self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counter named `name` ("fastcgi.backend.php.0.load"; 1 to 200 printable ASCII
/// characters, no spaces or ':'), created at 0; the same name gives the same counter, across
/// graceful restarts too. None for a bad name, before `init`, or on a server older than ABI
/// 1.7. Any thread.
pub fn stat_counter(name: &str) -> Option<Counter> {
    if HOST.load(Ordering::Acquire).is_null() || !host_has_field!(stat_counter) {
        return None;
    }
    // SAFETY: the field exists (checked above); borrowed input.
    let p = unsafe { (host().stat_counter)(module_id(), s(name.as_bytes())) };
    if p.is_null() {
        return None;
    }
    // SAFETY: the host hands out a pointer to an aligned AtomicI64 it never frees, to be used
    // atomically only (ABI rule for stat_counter).
    Some(Counter(unsafe { core::sync::atomic::AtomicI64::from_ptr(p) }))
}

/// Every named counter the current configuration publishes, in name order. Empty on a server
/// older than ABI 1.7.
pub fn stat_counters() -> Vec<(String, i64)> {
    let mut out = Vec::new();
    if HOST.load(Ordering::Acquire).is_null() || !host_has_field!(stat_counter_at) {
        return out;
    }
    for i in 0.. {
        let (mut name, mut value) = (Str::EMPTY, 0i64);
        // SAFETY: the field exists (checked above); name and value are writable.
        if unsafe { (host().stat_counter_at)(i, &mut name, &mut value) } == 0 {
            break;
        }
        // SAFETY: counter names live as long as the process.
        out.push((String::from_utf8_lossy(unsafe { name.as_bytes() }).into_owned(), value));
    }
    out
}

/// A loaded module, as [`modules`] lists it.
#[derive(Clone, Debug)]
pub struct LoadedModule {
    pub id: u32,
    pub name: String,
    pub version: String,
    pub description: String,
    pub hooks: Hooks,
    /// The size of the descriptor it was built with (its ABI minor, in effect).
    pub descriptor_size: u32,
}

/// The loaded modules in `server.modules` order. Empty on a server older than ABI 1.7.
pub fn modules() -> Vec<LoadedModule> {
    let mut out = Vec::new();
    if HOST.load(Ordering::Acquire).is_null() || !host_has_field!(module_info) {
        return out;
    }
    for id in 0.. {
        let mut m = ModuleInfo {
            struct_size: core::mem::size_of::<ModuleInfo>() as u32,
            hooks: 0,
            name: Str::EMPTY,
            version: Str::EMPTY,
            description: Str::EMPTY,
            descriptor_size: 0,
            _reserved: 0,
        };
        // SAFETY: the field exists (checked above); m is a writable ModuleInfo of its size.
        if unsafe { (host().module_info)(id, &mut m) } != 0 {
            break;
        }
        // SAFETY: module strings stay valid until the configuration is loaded again.
        let t = |s: Str| String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned();
        out.push(LoadedModule {
            id,
            name: t(m.name),
            version: t(m.version),
            description: t(m.description),
            hooks: Hooks(m.hooks),
            descriptor_size: m.descriptor_size,
        });
    }
    out
}

/// The server's compile-time features ("+ IPv6 support", "- TLS support", one per line), as
/// `featherd -V` lists them. None on a server older than ABI 1.7.
pub fn server_features() -> Option<String> {
    if HOST.load(Ordering::Acquire).is_null() || !host_has_field!(server_features) {
        return None;
    }
    // SAFETY: the field exists (checked above); static host text.
    Some(String::from_utf8_lossy(unsafe { (host().server_features)().as_bytes() }).into_owned())
}

/// The descriptor of `server.breakagelog` (for a child's stderr: duplicate it, never close
/// it), or None when it is not set or the server is older than ABI 1.8.
pub fn breakagelog_fd() -> Option<RawFd> {
    if HOST.load(Ordering::Acquire).is_null() || !host_has_field!(breakagelog_fd) {
        return None;
    }
    // SAFETY: the field exists (checked above); the call has no preconditions.
    let fd = unsafe { (host().breakagelog_fd)() };
    (fd >= 0).then_some(fd)
}

// ---------------------------------------------------------------------------------------------
// Services between modules

/// Offer `table` to other modules under `name` (call from [`Module::init`]). What the table
/// holds is agreed between the modules sharing the name, usually a `#[repr(C)]` struct of
/// `extern "C"` functions starting with its size. False when the name is taken or the server
/// is older than ABI 1.4.
pub fn register_service<T: Sync + 'static>(name: &str, table: &'static T) -> bool {
    let end = core::mem::offset_of!(HostApi, service_register) + core::mem::size_of::<usize>();
    // SAFETY: the field exists (checked first); the table is 'static.
    host_has(end)
        && unsafe {
            (host().service_register)(module_id(), s(name.as_bytes()), table as *const T as *const c_void)
        } == 0
}

/// The table another module registered under `name` (from [`Module::set_defaults`] on) and
/// that module's id. The caller knows the table's type from the name's contract.
pub fn lookup_service(name: &str) -> Option<(*const c_void, u32)> {
    let end = core::mem::offset_of!(HostApi, service_lookup) + core::mem::size_of::<usize>();
    if !host_has(end) {
        return None;
    }
    let mut provider = 0u32;
    // SAFETY: the field exists (checked above); provider is writable.
    let t = unsafe { (host().service_lookup)(s(name.as_bytes()), &mut provider) };
    (!t.is_null()).then_some((t, provider))
}

/// Run `f` with this module's view of a request that another module handed over through a
/// service call (its per-request configuration, its state), as if in one of this module's
/// hooks. None when `M` is not the module this library exports, or before `init`.
///
/// # Safety
/// `raw` must be a live request of the current worker thread, passed down from a hook (or a
/// callback of the worker) that is running now, and no other `Request` of this module for it
/// may be in use.
pub unsafe fn with_request<M: Module, R>(
    raw: *mut fd_request,
    f: impl FnOnce(&mut Request<M>) -> R,
) -> Option<R> {
    let p = match INSTANCE.read() {
        Ok(i) => match *i {
            Some((t, p)) if t == std::any::TypeId::of::<M>() => p,
            _ => return None,
        },
        Err(_) => return None,
    };
    // SAFETY: p is the Box<Instance<M>> init created (type checked above), alive until cleanup.
    let inst = unsafe { &*(p as *const Instance<M>) };
    let mut r = Request { raw, inst };
    Some(f(&mut r))
}

// ---------------------------------------------------------------------------------------------
// Shims: the extern "C" side, written once for every module by `export_module!`.

fn panic_message(e: &Box<dyn Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn guard<R>(what: &str, fail: R, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(e) => {
            log_raw(LOG_ERROR, &format!("panic in {what}: {}", panic_message(&e)));
            fail
        }
    }
}

#[doc(hidden)]
pub mod __private {
    use super::*;

    pub use abi::{ModuleDescriptor, ABI_MAJOR};

    fn inst<'a, M: Module>(data: *mut c_void) -> &'a Instance<M> {
        // SAFETY: data is the Box<Instance<M>> init returned; it lives until cleanup.
        unsafe { &*(data as *const Instance<M>) }
    }

    unsafe extern "C" fn init<M: Module>(h: *const HostApi, id: u32) -> *mut c_void {
        HOST.store(h as *mut HostApi, Ordering::Release);
        MODULE_ID.store(id, Ordering::Relaxed);
        let _ = log::set_logger(&BRIDGE);
        // SAFETY: host table just stored.
        log::set_max_level(level_filter(unsafe { (host().log_max_level)() }));
        guard("init", core::ptr::null_mut(), || {
            let inst = Instance::<M> {
                module: M::init(),
                configs: Configs {
                    base: vec![M::Config::default()],
                    parent: vec![None],
                    raw: RawValues(vec![vec![]]),
                },
            };
            let p = Box::into_raw(Box::new(inst));
            if let Ok(mut i) = INSTANCE.write() {
                *i = Some((std::any::TypeId::of::<M>(), p as usize));
            }
            p as *mut c_void
        })
    }

    unsafe extern "C" fn set_defaults<M: Module>(data: *mut c_void, cfg: *const fd_config) -> i32 {
        if data.is_null() {
            return -1;
        }
        guard("set_defaults", -1, || {
            // SAFETY: main thread, before workers: we have the only reference.
            let inst = unsafe { &mut *(data as *mut Instance<M>) };
            let h = host();
            // SAFETY: cfg is the live config handle for this call.
            let nblocks = unsafe { (h.config_block_count)(cfg) } as usize;
            let mut base: Vec<M::Config> = Vec::with_capacity(nblocks);
            let mut parent = Vec::with_capacity(nblocks);
            let mut raw = Vec::with_capacity(nblocks);
            let mut ok = true;
            for b in 0..nblocks {
                // SAFETY: b < block count.
                let p = unsafe { (h.config_block_parent)(cfg, b as u32) };
                let p = u32::try_from(p).ok().filter(|&p| (p as usize) < b);
                let mut c = match p {
                    Some(p) => base[p as usize].clone(),
                    None => M::Config::default(),
                };
                let mut vals = Vec::new();
                for k in 0..M::Config::KEYS.len() {
                    // SAFETY: k indexes our declared keys.
                    let v = unsafe { (h.config_value)(cfg, module_id(), b as u32, k as u32) };
                    if v.is_null() {
                        continue;
                    }
                    vals.push((k, v));
                    if let Err(msg) = c.apply(k, &Value { raw: v, block: b as u32, _l: PhantomData }) {
                        // SAFETY: host reports with file:line of the setting.
                        unsafe { (h.config_error)(cfg, module_id(), b as u32, k as u32, s(msg.as_bytes())) };
                        ok = false;
                    }
                }
                base.push(c);
                parent.push(p);
                raw.push(vals);
            }
            if !ok {
                return -1;
            }
            if base.is_empty() {
                base.push(M::Config::default());
                parent.push(None);
                raw.push(vec![]);
            }
            inst.configs = Configs { base, parent, raw: RawValues(raw) };
            let Instance { module, configs } = inst;
            match module.set_defaults(configs) {
                Ok(()) => 0,
                Err(msg) => {
                    log_raw(LOG_ERROR, &msg);
                    -1
                }
            }
        })
    }

    unsafe extern "C" fn worker_init<M: Module>(data: *mut c_void, w: u32) -> i32 {
        if data.is_null() {
            return -1;
        }
        guard("worker_init", -1, || match inst::<M>(data).module.worker_init(w) {
            Ok(()) => 0,
            Err(msg) => {
                log_raw(LOG_ERROR, &msg);
                -1
            }
        })
    }

    unsafe extern "C" fn cleanup<M: Module>(data: *mut c_void) {
        if data.is_null() {
            return;
        }
        guard("cleanup", (), || {
            if let Ok(mut i) = INSTANCE.write() {
                *i = None;
            }
            // SAFETY: cleanup is the last call; we take back the Box from init.
            let mut b = unsafe { Box::from_raw(data as *mut Instance<M>) };
            b.module.cleanup();
        })
    }

    macro_rules! req_hook {
        ($name:ident) => {
            unsafe extern "C" fn $name<M: Module>(data: *mut c_void, req: *mut fd_request) -> fd_result_t {
                if data.is_null() {
                    return HANDLER_ERROR;
                }
                guard(stringify!($name), HANDLER_ERROR, || {
                    let inst = inst::<M>(data);
                    let mut r = Request { raw: req, inst };
                    inst.module.$name(&mut r).raw()
                })
            }
        };
    }
    req_hook!(uri_raw);
    req_hook!(uri_clean);
    req_hook!(docroot);
    req_hook!(physical);
    req_hook!(subrequest_start);
    req_hook!(subrequest);
    req_hook!(response_start);
    req_hook!(request_done);

    unsafe extern "C" fn request_reset<M: Module>(data: *mut c_void, req: *mut fd_request) -> fd_result_t {
        if data.is_null() {
            return HANDLER_GO_ON;
        }
        let inst = inst::<M>(data);
        if M::HOOKS.has(Hooks::REQUEST_RESET) {
            guard("request_reset", (), || inst.module.request_reset(&mut Request { raw: req, inst }));
        }
        // SAFETY: live request; the slot holds a Box this SDK created, or null.
        unsafe {
            let p = (host().request_slot_get)(req, module_id()) as *mut M::RequestState;
            if !p.is_null() {
                (host().request_slot_set)(req, module_id(), core::ptr::null_mut());
                guard("request state drop", (), || drop(Box::from_raw(p)));
            }
        }
        HANDLER_GO_ON
    }

    macro_rules! con_hook {
        ($name:ident) => {
            unsafe extern "C" fn $name<M: Module>(data: *mut c_void, con: *mut fd_connection) -> fd_result_t {
                if data.is_null() {
                    return HANDLER_ERROR;
                }
                guard(stringify!($name), HANDLER_ERROR, || {
                    let inst = inst::<M>(data);
                    inst.module.$name(&mut Connection { raw: con, inst }).raw()
                })
            }
        };
    }
    con_hook!(connection_accept);
    con_hook!(connection_shut_wr);

    unsafe extern "C" fn connection_preface<M: Module>(
        data: *mut c_void,
        con: *mut fd_connection,
        bytes: *const u8,
        len: usize,
        consumed: *mut usize,
    ) -> fd_result_t {
        if data.is_null() || consumed.is_null() {
            return HANDLER_ERROR;
        }
        guard("connection_preface", HANDLER_ERROR, || {
            let inst = inst::<M>(data);
            // SAFETY: the host's view of the connection's read buffer, valid for this call.
            let b = unsafe { Str { ptr: bytes, len }.as_bytes() };
            match inst.module.connection_preface(&mut Connection { raw: con, inst }, b) {
                Preface::Done(n) if n <= b.len() => {
                    // SAFETY: checked non-null above; the host passes a writable usize.
                    unsafe { *consumed = n };
                    HANDLER_GO_ON
                }
                Preface::NeedMore => HANDLER_WAIT_FOR_EVENT,
                _ => HANDLER_ERROR,
            }
        })
    }

    unsafe extern "C" fn connection_close<M: Module>(
        data: *mut c_void,
        con: *mut fd_connection,
    ) -> fd_result_t {
        if data.is_null() {
            return HANDLER_GO_ON;
        }
        let inst = inst::<M>(data);
        if M::HOOKS.has(Hooks::CONNECTION_CLOSE) {
            guard("connection_close", (), || {
                inst.module.connection_close(&mut Connection { raw: con, inst })
            });
        }
        // SAFETY: live connection; the slot holds a Box this SDK created, or null.
        unsafe {
            let p = (host().connection_slot_get)(con, module_id()) as *mut M::ConnectionState;
            if !p.is_null() {
                (host().connection_slot_set)(con, module_id(), core::ptr::null_mut());
                guard("connection state drop", (), || drop(Box::from_raw(p)));
            }
        }
        HANDLER_GO_ON
    }

    unsafe extern "C" fn trigger<M: Module>(data: *mut c_void) -> fd_result_t {
        if data.is_null() {
            return HANDLER_GO_ON;
        }
        guard("trigger", HANDLER_ERROR, || {
            inst::<M>(data).module.trigger();
            HANDLER_GO_ON
        })
    }
    unsafe extern "C" fn sighup<M: Module>(data: *mut c_void) -> fd_result_t {
        if data.is_null() {
            return HANDLER_GO_ON;
        }
        guard("sighup", HANDLER_ERROR, || {
            inst::<M>(data).module.sighup();
            HANDLER_GO_ON
        })
    }
    unsafe extern "C" fn waitpid<M: Module>(data: *mut c_void, pid: i32, status: i32) -> fd_result_t {
        if data.is_null() {
            return HANDLER_GO_ON;
        }
        guard("waitpid", HANDLER_GO_ON, || {
            if inst::<M>(data).module.waitpid(pid, status) {
                HANDLER_FINISHED
            } else {
                HANDLER_GO_ON
            }
        })
    }

    fn needs_drop_state<T>() -> bool {
        core::mem::needs_drop::<T>() || core::mem::size_of::<T>() != 0
    }

    /// Build the descriptor for `M` (called once by the exported symbol).
    pub fn descriptor<M: Module>() -> ModuleDescriptor {
        let keys: Vec<ConfigKeyDecl> = M::Config::KEYS
            .iter()
            .map(|k| ConfigKeyDecl {
                name: Str::from_static(k.name),
                kind: match k.kind {
                    ValueKind::String => VALUE_STRING,
                    ValueKind::Int => VALUE_INT,
                    ValueKind::Bool => VALUE_BOOL,
                    ValueKind::Array => VALUE_ARRAY,
                    ValueKind::Any => VALUE_ANY,
                },
                scope: if k.server_only { SCOPE_SERVER } else { SCOPE_CONDITIONAL },
            })
            .collect();
        let keys: &'static [ConfigKeyDecl] = Box::leak(keys.into_boxed_slice());
        let h = M::HOOKS;
        macro_rules! hook {
            ($flag:ident, $f:ident) => {
                if h.has(Hooks::$flag) {
                    Some($f::<M> as _)
                } else {
                    None
                }
            };
        }
        ModuleDescriptor {
            abi_major: ABI_MAJOR,
            struct_size: core::mem::size_of::<ModuleDescriptor>() as u32,
            name: Str::from_static(M::NAME),
            version: Str::from_static(M::VERSION),
            config_keys: keys.as_ptr(),
            config_keys_len: keys.len(),
            init: Some(init::<M>),
            set_defaults: Some(set_defaults::<M>),
            worker_init: hook!(WORKER_INIT, worker_init),
            cleanup: Some(cleanup::<M>),
            uri_raw: hook!(URI_RAW, uri_raw),
            uri_clean: hook!(URI_CLEAN, uri_clean),
            docroot: hook!(DOCROOT, docroot),
            physical: hook!(PHYSICAL, physical),
            subrequest_start: hook!(SUBREQUEST_START, subrequest_start),
            subrequest: hook!(SUBREQUEST, subrequest),
            response_start: hook!(RESPONSE_START, response_start),
            request_done: hook!(REQUEST_DONE, request_done),
            request_reset: if h.has(Hooks::REQUEST_RESET) || needs_drop_state::<M::RequestState>() {
                Some(request_reset::<M>)
            } else {
                None
            },
            connection_accept: hook!(CONNECTION_ACCEPT, connection_accept),
            connection_shut_wr: hook!(CONNECTION_SHUT_WR, connection_shut_wr),
            connection_close: if h.has(Hooks::CONNECTION_CLOSE) || needs_drop_state::<M::ConnectionState>() {
                Some(connection_close::<M>)
            } else {
                None
            },
            trigger: hook!(TRIGGER, trigger),
            sighup: hook!(SIGHUP, sighup),
            waitpid: hook!(WAITPID, waitpid),
            description: Str::from_static(M::DESCRIPTION),
            connection_preface: hook!(CONNECTION_PREFACE, connection_preface),
        }
    }
}

/// Export a [`Module`] implementation as this library's featherd module:
/// `featherd_mod_api::export_module!(MyModule);`
#[macro_export]
macro_rules! export_module {
    ($m:ty) => {
        /// The module's entry point, called by the featherd server after loading.
        #[no_mangle]
        pub extern "C" fn featherd_module_v1() -> *const $crate::__private::ModuleDescriptor {
            static DESC: ::std::sync::OnceLock<$crate::__private::ModuleDescriptor> =
                ::std::sync::OnceLock::new();
            DESC.get_or_init($crate::__private::descriptor::<$m>) as *const _
        }
    };
}
