//! The raw module ABI: the single source of truth for how the server and a module talk.
//!
//! Everything here is `#[repr(C)]` and is what the C header `include/featherd_module.h` is
//! generated from. The rules, which both sides rely on:
//!
//! * A module exports one symbol, [`MODULE_SYMBOL`] (`featherd_module_v1`): a function with no
//!   arguments returning a pointer to a static [`ModuleDescriptor`].
//! * Both tables ([`ModuleDescriptor`] and [`HostApi`]) start with their size in bytes and are
//!   **append-only**: a field, once published, never moves or changes type. A reader uses
//!   `min(struct_size, its own size)` bytes and treats every field past that as absent (a hook
//!   that is absent is simply not in its chain; a host service that is absent is not called).
//!   So a newer server runs an older module and an older server runs a newer module.
//! * A breaking change bumps [`ABI_MAJOR`] *and* the symbol name (`featherd_module_v2`); the
//!   server refuses a module whose `abi_major` differs from its own, naming both.
//! * Strings cross as [`Str`] views (pointer + length, not NUL-terminated, usually UTF-8 but
//!   not guaranteed: header values are bytes). Nothing is allocated on one side and freed on
//!   the other: the receiver copies what it wants to keep.
//! * A [`Str`] returned by the host points into host memory that stays valid until the next
//!   call that mutates the same object (request, response, connection) or until the hook
//!   returns, whichever comes first. Config values stay valid until `cleanup`.
//! * Every callback into a module runs on the worker thread that owns the request (or on the
//!   main thread for `init`, `set_defaults`, `sighup`, `waitpid`, `trigger`, `cleanup`). Host
//!   services that take a request must be called on that request's worker thread, during a
//!   hook or an fd/timer callback of that worker.
//! * A module must not unwind across the boundary; the Rust SDK catches panics and reports
//!   [`HANDLER_ERROR`] (the server answers 500 and logs the module's name).
#![allow(non_camel_case_types)]

use core::ffi::c_void;

/// Incompatible-change counter. A module with a different major is refused at start.
pub const ABI_MAJOR: u32 = 1;
/// Additive-change counter: the number of append steps since the major was published.
pub const ABI_MINOR: u32 = 8;

/// The one symbol a module exports: `extern "C" fn() -> *const ModuleDescriptor`.
pub const MODULE_SYMBOL: &str = "featherd_module_v1";

/// Size of [`ModuleDescriptor`] as ABI 1.0 published it (everything up to and including the
/// `waitpid` hook). A module built against 1.0 declares this size; the server must run it.
pub const MODULE_DESCRIPTOR_SIZE_V1_0: u32 = core::mem::offset_of!(ModuleDescriptor, description) as u32;
/// Size of [`HostApi`] as ABI 1.0 published it.
pub const HOST_API_SIZE_V1_0: u32 = core::mem::offset_of!(HostApi, module_description) as u32;
/// Size of [`HostApi`] as ABI 1.1 published it.
pub const HOST_API_SIZE_V1_1: u32 = core::mem::offset_of!(HostApi, blocking_submit) as u32;

// ---------------------------------------------------------------------------------------------
// Results of hooks (lighttpd's handler_t)

/// Return value of a hook. Plain integer constants rather than a Rust enum: a value that comes
/// from C cannot then be an invalid enum discriminant. Unknown values are treated as ERROR.
pub type fd_result_t = u32;
/// Not mine / nothing to do: call the next module in the chain.
pub const HANDLER_GO_ON: fd_result_t = 0;
/// The response is decided (status set, body queued or none): stop the chain.
pub const HANDLER_FINISHED: fd_result_t = 1;
/// The target was rewritten: restart the request from uri_raw with conditions re-evaluated.
pub const HANDLER_COMEBACK: fd_result_t = 2;
/// Suspended: the request sleeps until an fd event or [`HostApi::request_wake`] for it, then
/// the same hook (for `subrequest`: the handler's) is called again.
pub const HANDLER_WAIT_FOR_EVENT: fd_result_t = 3;
/// Internal error: the request gets a 500 (if nothing was sent yet) and the connection closes.
pub const HANDLER_ERROR: fd_result_t = 4;

// ---------------------------------------------------------------------------------------------
// Basic types

/// A borrowed byte string: pointer and length. `ptr` may be null when `len` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Str {
    pub ptr: *const u8,
    pub len: usize,
}

impl Str {
    pub const EMPTY: Str = Str { ptr: core::ptr::null(), len: 0 };

    pub const fn from_static(s: &'static str) -> Str {
        Str { ptr: s.as_ptr(), len: s.len() }
    }

    pub fn from_bytes(b: &[u8]) -> Str {
        Str { ptr: b.as_ptr(), len: b.len() }
    }

    /// # Safety
    /// `ptr` must be valid for `len` bytes for the chosen lifetime (the ABI's validity rule).
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees ptr/len describe live memory.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Opaque: one HTTP request on a worker. Valid from the hook that receives it until
/// `request_reset` returns; never keep it past that (keep a request id, see `request_id`).
#[repr(C)]
pub struct fd_request {
    _private: [u8; 0],
}
/// Opaque: one client connection on a worker.
#[repr(C)]
pub struct fd_connection {
    _private: [u8; 0],
}
/// Opaque: the configuration handed to `set_defaults`.
#[repr(C)]
pub struct fd_config {
    _private: [u8; 0],
}
/// Opaque: one configuration value (string, integer or array). Valid until `cleanup`.
#[repr(C)]
pub struct fd_value {
    _private: [u8; 0],
}

/// Opaque: the connections of every worker as they were described for one
/// `connections_collect` call. Valid only during the `fd_collect_fn` call that receives it.
#[repr(C)]
pub struct fd_conn_list {
    _private: [u8; 0],
}

/// Log levels (as the `log` crate orders them).
pub const LOG_ERROR: u32 = 1;
pub const LOG_WARN: u32 = 2;
pub const LOG_INFO: u32 = 3;
pub const LOG_DEBUG: u32 = 4;
pub const LOG_TRACE: u32 = 5;

/// Config value kinds, for [`ConfigKeyDecl::kind`] and `value_kind`.
pub const VALUE_STRING: u32 = 1;
pub const VALUE_INT: u32 = 2;
/// A boolean key: "enable"/"disable", "true"/"false", "1"/"0" or an integer 0/1.
pub const VALUE_BOOL: u32 = 3;
/// An array: `( "a", "b" )` or `( "k" => v, ... )`.
pub const VALUE_ARRAY: u32 = 4;
/// Any of the above; the module checks it.
pub const VALUE_ANY: u32 = 5;

/// Key scope: may appear in conditional blocks (merged per request).
pub const SCOPE_CONDITIONAL: u32 = 0;
/// Key scope: only in the global block (server-wide settings).
pub const SCOPE_SERVER: u32 = 1;

/// One configuration key a module owns, e.g. `index-file.names`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConfigKeyDecl {
    pub name: Str,
    /// One of the `VALUE_*` constants; the host checks it and reports file:line on mismatch.
    pub kind: u32,
    /// `SCOPE_CONDITIONAL` or `SCOPE_SERVER`.
    pub scope: u32,
}

/// fd interest / readiness bits.
pub const FD_READABLE: u32 = 1;
pub const FD_WRITABLE: u32 = 2;
/// Readiness only: hang-up or error on the fd.
pub const FD_HUP: u32 = 4;
pub const FD_ERROR: u32 = 8;

/// Called on the worker thread when a registered fd is ready (or a timer fires; then `fd` is
/// -1 and `events` is 0). `module_data` is what the module's `init` returned, `ctx` what it
/// passed at registration.
pub type fd_event_fn = unsafe extern "C" fn(module_data: *mut c_void, ctx: *mut c_void, fd: i32, events: u32);

/// A step of a blocking job (see `blocking_submit`): `module_data` is what the module's `init`
/// returned, `ctx` what it passed at submission.
pub type fd_blocking_fn = unsafe extern "C" fn(module_data: *mut c_void, ctx: *mut c_void);

/// Called on the worker thread that asked for a connection snapshot, once every worker has
/// described its connections (see `connections_collect`). `list` is valid for this call only.
pub type fd_collect_fn =
    unsafe extern "C" fn(module_data: *mut c_void, ctx: *mut c_void, list: *const fd_conn_list);

/// What the host's stat found (see `request_file_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FileInfo {
    pub size: u64,
    /// Modification time, seconds and nanoseconds since the epoch.
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub inode: u64,
    pub device: u64,
    /// st_mode (file type and permission bits).
    pub mode: u32,
    /// 1 for a regular file, 2 for a directory, 0 for anything else.
    pub kind: u32,
}

pub const FILE_KIND_OTHER: u32 = 0;
pub const FILE_KIND_REGULAR: u32 = 1;
pub const FILE_KIND_DIRECTORY: u32 = 2;

// ---------------------------------------------------------------------------------------------
// Server-wide figures (ABI 1.7)

/// Server-wide figures, summed over every worker (see `server_stats`). Size-prefixed and
/// append-only like the tables: the caller sets `struct_size` to its own size and the host
/// fills at most that many bytes (fields it does not know stay as the caller set them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ServerStats {
    pub struct_size: u32,
    /// Workers running now.
    pub workers: u32,
    /// When the server started, seconds since the epoch (a graceful restart keeps it).
    pub start_time: i64,
    /// The server's clock, seconds since the epoch.
    pub now: i64,
    /// Responses started since the server started (every request answered, errors included;
    /// counted when the response head is built, so a client that has read a response sees it
    /// counted).
    pub requests: u64,
    /// Bytes read from clients (request heads and bodies).
    pub bytes_in: u64,
    /// Bytes written to clients (response heads and bodies). Requests in progress are added
    /// once a second and when they end.
    pub bytes_out: u64,
    /// Connections accepted since the server started.
    pub connections: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// `server.max-connections` as it applies (0: no limit).
    pub max_connections: u64,
    /// The soft limit on open files (`RLIMIT_NOFILE`), 0 when unknown.
    pub fd_limit: u64,
    /// Graceful restarts (SIGUSR1) since the server started.
    pub restarts: u64,
}

/// Connection states, as lighttpd names them (`connection_get_state`), for
/// [`ConnRecord::state`] and `conn_list_state_count`. featherd uses `READ` (waiting for or
/// reading a request head), `READ_POST` (reading a body before the handler runs),
/// `HANDLE_REQUEST` (in the hook chain or suspended on a backend), `WRITE`, `CLOSE` (the
/// response is out, the rest of the input is read and dropped) and `KEEP_ALIVE` (idle between
/// requests); the others are there so that lighttpd's legend reads the same.
pub const CONN_STATE_CONNECT: u32 = 0;
pub const CONN_STATE_REQUEST_START: u32 = 1;
pub const CONN_STATE_READ: u32 = 2;
pub const CONN_STATE_REQUEST_END: u32 = 3;
pub const CONN_STATE_READ_POST: u32 = 4;
pub const CONN_STATE_HANDLE_REQUEST: u32 = 5;
pub const CONN_STATE_RESPONSE_START: u32 = 6;
pub const CONN_STATE_WRITE: u32 = 7;
pub const CONN_STATE_RESPONSE_END: u32 = 8;
pub const CONN_STATE_ERROR: u32 = 9;
pub const CONN_STATE_CLOSE: u32 = 10;
pub const CONN_STATE_KEEP_ALIVE: u32 = 11;
/// Number of states (one past the last).
pub const CONN_STATE_COUNT: u32 = 12;

/// One connection of one worker (see `conn_list_get`). Size-prefixed like [`ServerStats`].
/// The strings point into the list and are valid during the `fd_collect_fn` call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ConnRecord {
    pub struct_size: u32,
    /// One of the `CONN_STATE_*` values.
    pub state: u32,
    /// The worker that owns the connection.
    pub worker: u32,
    pub remote_port: u32,
    /// Requests answered on this connection before the current one.
    pub requests: u64,
    /// Milliseconds since the current request began (idle connections: since their last
    /// activity).
    pub age_ms: u64,
    /// Request bytes read for the current request (head and body).
    pub bytes_in: u64,
    /// The request body's declared length, or -1 (none, or chunked).
    pub content_length: i64,
    /// Response bytes written for the current request (head and body).
    pub bytes_out: u64,
    /// Response bytes produced so far: written plus queued.
    pub bytes_total: u64,
    /// Response status once decided, else 0.
    pub status: u32,
    pub _reserved: u32,
    /// The client's address ("127.0.0.1", "::1", "unix:").
    pub remote_addr: Str,
    /// Empty while no request head has been read.
    pub method: Str,
    /// The request's host (Host header or absolute target), as the host services give it.
    pub host: Str,
    /// The target as the client sent it (raw, not decoded).
    pub target: Str,
    /// The target after a module rewrote it; empty when it was not rewritten.
    pub target_rewritten: Str,
    /// The physical path, once known.
    pub physical: Str,
}

/// Hook bits of [`ModuleInfo::hooks`], in the order of the descriptor (the Rust SDK's
/// `Hooks` uses the same bits).
pub const HOOK_URI_RAW: u32 = 1 << 0;
pub const HOOK_URI_CLEAN: u32 = 1 << 1;
pub const HOOK_DOCROOT: u32 = 1 << 2;
pub const HOOK_PHYSICAL: u32 = 1 << 3;
pub const HOOK_SUBREQUEST_START: u32 = 1 << 4;
pub const HOOK_SUBREQUEST: u32 = 1 << 5;
pub const HOOK_RESPONSE_START: u32 = 1 << 6;
pub const HOOK_REQUEST_DONE: u32 = 1 << 7;
pub const HOOK_REQUEST_RESET: u32 = 1 << 8;
pub const HOOK_CONNECTION_ACCEPT: u32 = 1 << 9;
pub const HOOK_CONNECTION_SHUT_WR: u32 = 1 << 10;
pub const HOOK_CONNECTION_CLOSE: u32 = 1 << 11;
pub const HOOK_TRIGGER: u32 = 1 << 12;
pub const HOOK_SIGHUP: u32 = 1 << 13;
pub const HOOK_WAITPID: u32 = 1 << 14;
pub const HOOK_WORKER_INIT: u32 = 1 << 15;
pub const HOOK_CONNECTION_PREFACE: u32 = 1 << 16;

/// A loaded module, as `module_info` describes it. Size-prefixed like [`ServerStats`]; the
/// strings are valid until the configuration is loaded again (a graceful restart).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleInfo {
    pub struct_size: u32,
    /// The `HOOK_*` bits of the hooks the module's descriptor sets.
    pub hooks: u32,
    pub name: Str,
    pub version: Str,
    pub description: Str,
    /// The size of the descriptor the module was built with (tells its ABI minor).
    pub descriptor_size: u32,
    pub _reserved: u32,
}

// ---------------------------------------------------------------------------------------------
// The module descriptor

/// A hook on a request. `module_data` is what `init` returned.
pub type fd_request_hook =
    unsafe extern "C" fn(module_data: *mut c_void, req: *mut fd_request) -> fd_result_t;
/// A hook on a connection (accept, shut_wr, close).
pub type fd_connection_hook =
    unsafe extern "C" fn(module_data: *mut c_void, con: *mut fd_connection) -> fd_result_t;
/// A server-life hook (trigger, sighup).
pub type fd_server_hook = unsafe extern "C" fn(module_data: *mut c_void) -> fd_result_t;
/// `waitpid`: a child process exited. Return FINISHED if the pid was the module's.
pub type fd_waitpid_hook =
    unsafe extern "C" fn(module_data: *mut c_void, pid: i32, status: i32) -> fd_result_t;
/// `connection_preface` (ABI 1.6): the `len` bytes at `data` are what the connection sent so
/// far, before any HTTP; the module writes how many of them it took to `consumed`.
pub type fd_preface_hook = unsafe extern "C" fn(
    module_data: *mut c_void,
    con: *mut fd_connection,
    data: *const u8,
    len: usize,
    consumed: *mut usize,
) -> fd_result_t;

/// What a module's `featherd_module_v1` returns. Static, never freed.
#[repr(C)]
pub struct ModuleDescriptor {
    /// Must be [`ABI_MAJOR`] of the mod-api the module was built with.
    pub abi_major: u32,
    /// `size_of::<ModuleDescriptor>()` as the module was built.
    pub struct_size: u32,
    /// The module's name, e.g. "mod_staticfile"; must match the file name `NAME.so`.
    pub name: Str,
    /// The module's own version, e.g. "1.0.0".
    pub version: Str,
    /// The configuration keys the module owns; the host rejects keys no module owns.
    pub config_keys: *const ConfigKeyDecl,
    pub config_keys_len: usize,

    // lifecycle (main thread)
    /// Called once after loading; returns the module's data pointer (may be null) passed to
    /// every later call. `module_id` identifies the module in host calls that need it.
    pub init: Option<unsafe extern "C" fn(host: *const HostApi, module_id: u32) -> *mut c_void>,
    /// The configuration is parsed: read and validate the keys (see the `config_*` services).
    /// Return 0 for success; non-zero refuses to start (report the error with `config_error`).
    pub set_defaults: Option<unsafe extern "C" fn(module_data: *mut c_void, cfg: *const fd_config) -> i32>,
    /// Called on each worker thread as it starts, with the worker index. Return 0 for success.
    pub worker_init: Option<unsafe extern "C" fn(module_data: *mut c_void, worker: u32) -> i32>,
    /// Called once at shutdown.
    pub cleanup: Option<unsafe extern "C" fn(module_data: *mut c_void)>,

    // request hooks, in the order the host calls them
    pub uri_raw: Option<fd_request_hook>,
    pub uri_clean: Option<fd_request_hook>,
    pub docroot: Option<fd_request_hook>,
    pub physical: Option<fd_request_hook>,
    pub subrequest_start: Option<fd_request_hook>,
    /// Called only for the module that claimed the request (`request_claim`).
    pub subrequest: Option<fd_request_hook>,
    pub response_start: Option<fd_request_hook>,
    pub request_done: Option<fd_request_hook>,
    /// Release per-request state (reverse module order). The result is ignored.
    pub request_reset: Option<fd_request_hook>,

    // connection hooks
    pub connection_accept: Option<fd_connection_hook>,
    pub connection_shut_wr: Option<fd_connection_hook>,
    /// Release per-connection state (reverse module order). The result is ignored.
    pub connection_close: Option<fd_connection_hook>,

    // server hooks (main thread)
    /// About once a second.
    pub trigger: Option<fd_server_hook>,
    /// SIGHUP: reopen log files.
    pub sighup: Option<fd_server_hook>,
    pub waitpid: Option<fd_waitpid_hook>,

    // ---- ABI 1.1 ----
    /// A one-line description of the module (see `module_description`).
    pub description: Str,

    // ---- ABI 1.6 ----
    /// A connection preface: bytes a peer sends before HTTP (the HAProxy PROXY protocol
    /// header). Called only for a connection whose preface the module claimed in its
    /// `connection_accept` hook (`connection_claim_preface`), with the bytes read so far, before
    /// the HTTP parser sees any of them. Return:
    /// * GO_ON (or FINISHED) with `*consumed` = n: the preface is the first n bytes (at most
    ///   `len`, 0 allowed); they are dropped and the rest is parsed as HTTP. The preface is
    ///   over: the hook is not called again on this connection;
    /// * WAIT_FOR_EVENT: more bytes are needed; called again when they arrive. A peer that
    ///   closes, or fills `server.max-request-field-size` first, is closed; one that sends
    ///   nothing is closed by `server.max-read-idle`;
    /// * anything else: the preface is refused, and the connection is closed without a
    ///   response.
    ///
    /// While it runs, the module may change the connection's remote address and scheme
    /// (`connection_set_remote_addr`, `connection_set_scheme`).
    pub connection_preface: Option<fd_preface_hook>,
}

// SAFETY: the descriptor is immutable static data; its raw pointers point to static data.
unsafe impl Sync for ModuleDescriptor {}
// SAFETY: as above; moving the plain-data descriptor between threads is harmless.
unsafe impl Send for ModuleDescriptor {}
// SAFETY: see above.
unsafe impl Sync for ConfigKeyDecl {}

/// The signature of the exported symbol.
pub type fd_module_entry = unsafe extern "C" fn() -> *const ModuleDescriptor;

// ---------------------------------------------------------------------------------------------
// Host services

/// The services the server offers to modules, passed to `init`. Append-only like the
/// descriptor: check `struct_size` before calling a field added after the module's ABI minor
/// (the Rust SDK does this for you).
///
/// Conventions: functions returning `i32` return 0 on success and a negative value on error
/// (-1 bad argument / not allowed now, -2 not found); `Str` results are empty when absent
/// unless a `found` flag says otherwise.
#[repr(C)]
pub struct HostApi {
    pub struct_size: u32,
    pub abi_major: u32,
    pub abi_minor: u32,
    /// The server's version, e.g. "0.1.0".
    pub server_version: Str,

    // ---- logging
    /// Write a line to the error log, prefixed with the module's name.
    pub log: unsafe extern "C" fn(module_id: u32, level: u32, msg: Str),
    /// Highest level currently logged (so a module can skip formatting debug lines).
    pub log_max_level: unsafe extern "C" fn() -> u32,

    // ---- configuration (set_defaults; values valid until cleanup)
    /// Number of config blocks; block 0 is the global one, the others are conditional.
    pub config_block_count: unsafe extern "C" fn(cfg: *const fd_config) -> u32,
    /// Enclosing block of `block`, or -1 for block 0.
    pub config_block_parent: unsafe extern "C" fn(cfg: *const fd_config, block: u32) -> i32,
    /// Value of the module's key number `key` (index in its `config_keys`) in `block`, or null
    /// when that block does not set it.
    pub config_value:
        unsafe extern "C" fn(cfg: *const fd_config, module_id: u32, block: u32, key: u32) -> *const fd_value,
    /// Report a config error for a key of the module in a block: the host prints it with the
    /// file:line of the setting and the key name, and refuses to start.
    pub config_error:
        unsafe extern "C" fn(cfg: *const fd_config, module_id: u32, block: u32, key: u32, msg: Str),
    /// `VALUE_STRING`, `VALUE_INT` or `VALUE_ARRAY`.
    pub value_kind: unsafe extern "C" fn(v: *const fd_value) -> u32,
    pub value_str: unsafe extern "C" fn(v: *const fd_value) -> Str,
    /// Integer value; strings holding a decimal integer convert. `ok` is set to 1 or 0.
    pub value_int: unsafe extern "C" fn(v: *const fd_value, ok: *mut i32) -> i64,
    /// Boolean value ("enable", "disable", "true", "false", "1", "0", integers). Returns 1, 0,
    /// or -1 when the value is not a boolean.
    pub value_bool: unsafe extern "C" fn(v: *const fd_value) -> i32,
    pub value_array_len: unsafe extern "C" fn(v: *const fd_value) -> usize,
    /// Element `i` of an array value, or null.
    pub value_array_get: unsafe extern "C" fn(v: *const fd_value, i: usize) -> *const fd_value,
    /// Key of element `i` (`"k" => v` entries), empty for plain elements; `found` set to 1/0.
    pub value_array_key: unsafe extern "C" fn(v: *const fd_value, i: usize, found: *mut i32) -> Str,

    // ---- per-request configuration
    /// The matched config blocks that set at least one of the module's keys, in config order
    /// (block 0 is never listed). Writes up to `cap` block numbers, returns the total count.
    pub request_config_blocks:
        unsafe extern "C" fn(req: *mut fd_request, module_id: u32, out: *mut u32, cap: usize) -> usize,
    /// Capture `n` (`%n`) of the nearest regex condition at or above `block` for this request.
    pub request_capture:
        unsafe extern "C" fn(req: *mut fd_request, block: u32, n: u32, found: *mut i32) -> Str,

    // ---- request line and URL
    pub request_method: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    /// The request target as received (raw, not decoded).
    pub request_target: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    /// The decoded, normalised path (already so in uri_raw; the raw form is `request_target`).
    pub request_path: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    /// Query string without '?' ; `found` says whether a '?' was present.
    pub request_query: unsafe extern "C" fn(req: *mut fd_request, found: *mut i32) -> Str,
    /// Host (from the Host header or absolute target), lower-cased, without port.
    pub request_host: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    /// "http" or "https".
    pub request_scheme: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    /// "HTTP/1.0" or "HTTP/1.1".
    pub request_protocol: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    /// Rewrite the target (path?query, raw form). After returning COMEBACK the request
    /// restarts with the new target. Returns -1 if the target is not acceptable.
    pub request_set_target: unsafe extern "C" fn(req: *mut fd_request, target: Str) -> i32,

    // ---- request headers (names are case-insensitive)
    /// First value of header `name`; `found` set to 1/0.
    pub request_header_get: unsafe extern "C" fn(req: *mut fd_request, name: Str, found: *mut i32) -> Str,
    /// Replace all values of `name` by `value`.
    pub request_header_set: unsafe extern "C" fn(req: *mut fd_request, name: Str, value: Str) -> i32,
    pub request_header_append: unsafe extern "C" fn(req: *mut fd_request, name: Str, value: Str) -> i32,
    pub request_header_remove: unsafe extern "C" fn(req: *mut fd_request, name: Str) -> i32,
    /// Header number `i` (in received order); returns 0 past the end.
    pub request_header_at:
        unsafe extern "C" fn(req: *mut fd_request, i: usize, name: *mut Str, value: *mut Str) -> i32,

    // ---- request body
    /// Content-Length of the request body, or -1 if none/unknown.
    pub request_content_length: unsafe extern "C" fn(req: *mut fd_request) -> i64,
    /// Read up to `cap` bytes of the request body. Returns the count, 0 at the end of the
    /// body, -11 (EAGAIN) when more is expected but not here yet (the handler is woken when
    /// it arrives).
    pub request_body_read: unsafe extern "C" fn(req: *mut fd_request, buf: *mut u8, cap: usize) -> isize,

    // ---- paths
    pub request_docroot: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    pub request_set_docroot: unsafe extern "C" fn(req: *mut fd_request, docroot: Str) -> i32,
    pub request_physical_path: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    pub request_set_physical_path: unsafe extern "C" fn(req: *mut fd_request, path: Str) -> i32,
    /// PATH_INFO split off after the physical path (subrequest_start onwards).
    pub request_path_info: unsafe extern "C" fn(req: *mut fd_request) -> Str,

    // ---- peer
    /// Remote address as text ("127.0.0.1", "::1", or "unix:")
    pub request_remote_addr: unsafe extern "C" fn(req: *mut fd_request) -> Str,
    pub request_remote_port: unsafe extern "C" fn(req: *mut fd_request) -> u32,
    /// Local address and port the request came in on, as "addr:port".
    pub request_local_addr: unsafe extern "C" fn(req: *mut fd_request) -> Str,

    // ---- environment (for CGI-like backends; mod_setenv adds to it)
    pub request_env_get: unsafe extern "C" fn(req: *mut fd_request, name: Str, found: *mut i32) -> Str,
    pub request_env_set: unsafe extern "C" fn(req: *mut fd_request, name: Str, value: Str) -> i32,
    pub request_env_at:
        unsafe extern "C" fn(req: *mut fd_request, i: usize, name: *mut Str, value: *mut Str) -> i32,

    // ---- handler
    /// Claim the request: the module's `subrequest` hook becomes its handler. Returns -1 if
    /// another module already claimed it.
    pub request_claim: unsafe extern "C" fn(req: *mut fd_request, module_id: u32) -> i32,

    // ---- response
    pub response_set_status: unsafe extern "C" fn(req: *mut fd_request, status: u32),
    pub response_status: unsafe extern "C" fn(req: *mut fd_request) -> u32,
    pub response_header_get: unsafe extern "C" fn(req: *mut fd_request, name: Str, found: *mut i32) -> Str,
    pub response_header_set: unsafe extern "C" fn(req: *mut fd_request, name: Str, value: Str) -> i32,
    pub response_header_append: unsafe extern "C" fn(req: *mut fd_request, name: Str, value: Str) -> i32,
    pub response_header_remove: unsafe extern "C" fn(req: *mut fd_request, name: Str) -> i32,
    pub response_header_at:
        unsafe extern "C" fn(req: *mut fd_request, i: usize, name: *mut Str, value: *mut Str) -> i32,
    /// Queue a copy of `data` as body.
    pub response_append_mem: unsafe extern "C" fn(req: *mut fd_request, data: Str) -> i32,
    /// Queue `len` bytes of the open file `fd` from `offset` (sent with sendfile). The host
    /// takes ownership of `fd` (closes it when sent, or on error) in every case.
    pub response_append_file:
        unsafe extern "C" fn(req: *mut fd_request, fd: i32, offset: u64, len: u64) -> i32,
    /// Declare the body length (Content-Length). Without it, a finished body's length is the
    /// queued size; a streamed body of unknown length goes out chunked (HTTP/1.1).
    pub response_set_content_length: unsafe extern "C" fn(req: *mut fd_request, len: i64),
    /// Mark the body complete (streamed responses; a handler that returns FINISHED marks it).
    pub response_body_finish: unsafe extern "C" fn(req: *mut fd_request),
    /// Bytes queued and not yet written to the client.
    pub response_pending: unsafe extern "C" fn(req: *mut fd_request) -> u64,
    /// Above this many pending bytes a streaming module should stop producing; the request is
    /// woken when the queue drains below half of it.
    pub response_high_water: unsafe extern "C" fn(req: *mut fd_request) -> u64,

    // ---- module state
    /// Per-request slot of the module (null until set). The module frees what it stored in
    /// its `request_reset` hook.
    pub request_slot_get: unsafe extern "C" fn(req: *mut fd_request, module_id: u32) -> *mut c_void,
    pub request_slot_set: unsafe extern "C" fn(req: *mut fd_request, module_id: u32, data: *mut c_void),
    pub connection_slot_get: unsafe extern "C" fn(con: *mut fd_connection, module_id: u32) -> *mut c_void,
    pub connection_slot_set: unsafe extern "C" fn(con: *mut fd_connection, module_id: u32, data: *mut c_void),
    pub connection_remote_addr: unsafe extern "C" fn(con: *mut fd_connection) -> Str,

    // ---- events
    /// An id for the request that stays unique on its worker; safe to keep after the request
    /// is gone (waking a gone request does nothing).
    pub request_id: unsafe extern "C" fn(req: *mut fd_request) -> u64,
    /// Resume a request suspended with WAIT_FOR_EVENT (worker thread only). Returns -2 if the
    /// request no longer exists.
    pub request_wake: unsafe extern "C" fn(request_id: u64) -> i32,
    /// Register `fd` with the current worker's poller for `interest` (FD_READABLE |
    /// FD_WRITABLE); `cb(module_data, ctx, fd, events)` runs on readiness (edge-triggered: read
    /// or write until EAGAIN). Returns a handle (> 0) or a negative error. The fd stays the
    /// module's: unregister before closing it.
    pub fd_register: unsafe extern "C" fn(
        module_id: u32,
        fd: i32,
        interest: u32,
        cb: fd_event_fn,
        ctx: *mut c_void,
    ) -> i64,
    pub fd_modify: unsafe extern "C" fn(handle: i64, interest: u32) -> i32,
    pub fd_unregister: unsafe extern "C" fn(handle: i64) -> i32,
    /// Call `cb(module_data, ctx, -1, 0)` once after `ms` milliseconds on the current worker.
    /// Returns a handle (> 0) for `timer_cancel`.
    pub timer_add: unsafe extern "C" fn(module_id: u32, ms: u64, cb: fd_event_fn, ctx: *mut c_void) -> i64,
    pub timer_cancel: unsafe extern "C" fn(handle: i64) -> i32,
    /// Index of the current worker thread, or -1 on the main thread.
    pub worker_index: unsafe extern "C" fn() -> i32,
    /// Current time in seconds since the epoch as the server caches it.
    pub now: unsafe extern "C" fn() -> i64,

    // ---- files, types and statistics
    /// Result of the host's stat of the physical path (subrequest_start onwards; after a
    /// module changed the physical path, the host stats again). Returns -2 if the path does
    /// not exist, -1 before the physical path is known.
    pub request_file_info: unsafe extern "C" fn(req: *mut fd_request, out: *mut FileInfo) -> i32,
    /// Content type for a file name from `mimetype.assign` (longest matching suffix), or
    /// `mimetype.default`.
    pub mimetype_for: unsafe extern "C" fn(req: *mut fd_request, path: Str) -> Str,
    /// Response bytes written to the client so far (headers included).
    pub request_bytes_out: unsafe extern "C" fn(req: *mut fd_request) -> u64,
    /// Request bytes read from the client (head and body).
    pub request_bytes_in: unsafe extern "C" fn(req: *mut fd_request) -> u64,
    /// When the request's first byte arrived, microseconds since the epoch.
    pub request_start_us: unsafe extern "C" fn(req: *mut fd_request) -> u64,

    // ---- ABI 1.1 ----
    /// The description a module declared (empty for 1.0 modules); for listings.
    pub module_description: unsafe extern "C" fn(module_id: u32) -> Str,
    /// The module that claimed the request (`request_claim`), or -1 when none did. A module
    /// that would serve a request steps aside when another module owns it.
    pub request_handler: unsafe extern "C" fn(req: *mut fd_request) -> i32,
    /// Replace the decoded path in place, without restarting the request (mod_indexfile
    /// appends the index file's name so later modules see it). Returns -1 for a path that
    /// does not start with '/' or contains NUL.
    pub request_set_path: unsafe extern "C" fn(req: *mut fd_request, path: Str) -> i32,
    /// Response body bytes written to the client so far (headers excluded).
    pub response_body_bytes_out: unsafe extern "C" fn(req: *mut fd_request) -> u64,

    // ---- ABI 1.2 ----
    /// Queue `len` bytes from `offset` of the request's physical file as response body,
    /// from the worker's file cache (an open descriptor kept for about a second, small files'
    /// contents in memory): no open, fstat or close per request. The bytes are those of the
    /// file `request_file_info` describes; -1 when that cannot be promised (the file changed,
    /// vanished or cannot be read: open it yourself and use `response_append_file`).
    /// `len` 0 only checks that the file can be sent this way.
    pub response_append_physical: unsafe extern "C" fn(req: *mut fd_request, offset: u64, len: u64) -> i32,
    /// Unregister `handle` and close `fd`, the descriptor it watches, in one step: closing
    /// removes it from the poller, so no separate unregistration call is made. The host takes
    /// `fd` in every case. Returns -2 for an unknown handle (the fd is closed all the same).
    pub fd_close: unsafe extern "C" fn(handle: i64, fd: i32) -> i32,

    // ---- ABI 1.3 ----
    /// The target as the client sent it, before any `request_set_target` (mod_rewrite, a
    /// backend's local redirect) changed it: CGI's `REQUEST_URI`, the access log's request
    /// line. Equal to `request_target` for a request that was not rewritten.
    pub request_target_orig: unsafe extern "C" fn(req: *mut fd_request) -> Str,

    // ---- ABI 1.4 ----
    /// Run `job(module_data, ctx)` on one of the server's blocking threads (a small pool shared
    /// by all workers, started on first use), then `done(module_data, ctx)` on the worker thread
    /// that submitted it, from its event loop. For work that must block or burn CPU (a slow
    /// password hash, a large directory walk): the worker goes on serving other clients
    /// meanwhile; a request waiting for the result returns WAIT_FOR_EVENT and is woken from
    /// `done`. `job` must not call host services. `done` is called exactly once while the
    /// worker runs (not at all if the worker stops first: `ctx` is then leaked). Worker thread
    /// only: returns 0, or -1 (not on a worker thread, or no thread could be started).
    pub blocking_submit: unsafe extern "C" fn(
        module_id: u32,
        job: fd_blocking_fn,
        done: fd_blocking_fn,
        ctx: *mut c_void,
    ) -> i32,
    /// Offer a table of functions to other modules under `name` (e.g. mod_authn_file offers
    /// the password backends mod_auth calls). The table's layout is the business of the modules
    /// that share the name; it must stay valid until `cleanup`. Call from `init` (main thread).
    /// Returns 0, or -1 when the name is taken or the call comes too late.
    pub service_register: unsafe extern "C" fn(module_id: u32, name: Str, table: *const c_void) -> i32,
    /// The table registered under `name`, or null. `provider` (may be null) receives the id of
    /// the module that registered it. Callable from `set_defaults` on (every `init` has run).
    pub service_lookup: unsafe extern "C" fn(name: Str, provider: *mut u32) -> *const c_void,
    /// Close the connection after this response instead of keeping it alive (mod_auth does so
    /// after a wrong password, as lighttpd does).
    pub request_disable_keep_alive: unsafe extern "C" fn(req: *mut fd_request),

    // ---- ABI 1.5 ----
    /// `server.tag` as configured for this request (empty when set to ""): what the `Server`
    /// response header says, for modules that name the server in a page they generate
    /// (mod_dirlisting's footer).
    pub request_server_tag: unsafe extern "C" fn(req: *mut fd_request) -> Str,

    // ---- ABI 1.6 ----
    /// Set the request's remote address (an IPv4 or IPv6 address in text, e.g. from
    /// X-Forwarded-For; IPv4-mapped IPv6 becomes IPv4) and port (0 when unknown): from now on,
    /// for this request only, `request_remote_addr`/`request_remote_port`, `$HTTP["remoteip"]`,
    /// the access log and backends' `REMOTE_ADDR`/`REMOTE_PORT` say so. When that changes the
    /// result of a condition, the conditions are evaluated again at once, so the settings of
    /// every module from the next call on are those of the new address. The next request of
    /// the connection starts from the connection's address again. Returns 0, or -1 for text
    /// that is not an IP address.
    pub request_set_remote_addr: unsafe extern "C" fn(req: *mut fd_request, addr: Str, port: u32) -> i32,
    /// Set the request's scheme, "http" or "https" (any case), as a TLS-terminating proxy
    /// reports it: `request_scheme`, `$HTTP["scheme"]`, backends' `HTTPS` and
    /// `REQUEST_SCHEME`, redirects the server builds. Conditions are evaluated again when that
    /// matters. Returns 0, or -1 for another scheme.
    pub request_set_scheme: unsafe extern "C" fn(req: *mut fd_request, scheme: Str) -> i32,
    /// Set the request's host (`host[:port]`, as a Host header holds it; lower-cased, the
    /// port split off as the parser does) and its Host header: `request_host`,
    /// `$HTTP["host"]`, backends' `HTTP_HOST` and `SERVER_NAME`. Conditions are evaluated
    /// again when that matters. Returns 0, or -1 for a value that is not a valid host.
    pub request_set_host: unsafe extern "C" fn(req: *mut fd_request, host: Str) -> i32,
    /// The connection the request came on (for `connection_slot_get`: a module's connection
    /// state from a request hook). Valid as long as the request.
    pub request_connection: unsafe extern "C" fn(req: *mut fd_request) -> *mut fd_connection,
    /// Like `request_config_blocks`, for a connection outside any request (connection
    /// hooks): the matched blocks setting one of the module's keys, with conditions on the
    /// connection (`$SERVER["socket"]`, `$HTTP["remoteip"]`, `$HTTP["scheme"]`) evaluated
    /// and every condition on request data (host, URL, headers...) compared with an empty
    /// value. Writes up to `cap` block numbers, returns the total count.
    pub connection_config_blocks:
        unsafe extern "C" fn(con: *mut fd_connection, module_id: u32, out: *mut u32, cap: usize) -> usize,
    /// Claim the connection's preface: the module's `connection_preface` hook sees the first
    /// bytes before the HTTP parser. Call from `connection_accept`. Returns 0, or -1 when
    /// another module claimed it or the module has no `connection_preface` hook.
    pub connection_claim_preface: unsafe extern "C" fn(con: *mut fd_connection, module_id: u32) -> i32,
    /// Set the connection's remote address and port (as `request_set_remote_addr`, for every
    /// request of the connection from the next one on: a PROXY protocol header). Returns 0,
    /// or -1 for text that is not an IP address.
    pub connection_set_remote_addr:
        unsafe extern "C" fn(con: *mut fd_connection, addr: Str, port: u32) -> i32,
    /// Set the connection's scheme, "http" or "https", for its requests from the next one on.
    /// Returns 0, or -1 for another scheme.
    pub connection_set_scheme: unsafe extern "C" fn(con: *mut fd_connection, scheme: Str) -> i32,

    // ---- ABI 1.7 ----
    /// Fill `out` (whose `struct_size` the caller set) with the server-wide figures, summed
    /// over every worker. Any thread; takes no lock a worker holds while serving. Returns 0,
    /// or -1 for a null `out` or a `struct_size` below 8.
    pub server_stats: unsafe extern "C" fn(out: *mut ServerStats) -> i32,
    /// Ask every worker to describe its connections (at most `max` records each; the counts
    /// per state always cover every connection). Each worker answers from its own loop, between
    /// two events, so no worker ever waits for another; when the last has answered,
    /// `done(module_data, ctx, list)` runs on the calling worker, from its loop (a request
    /// waiting for it returns WAIT_FOR_EVENT and is woken from `done`). A worker that stops
    /// first answers with nothing; if the calling worker stops first, `done` is not called.
    /// Worker thread only: returns 0, or -1.
    pub connections_collect:
        unsafe extern "C" fn(module_id: u32, max: u32, done: fd_collect_fn, ctx: *mut c_void) -> i32,
    /// Record `i` of a collected list into `out` (whose `struct_size` the caller set). Returns
    /// 1, or 0 past the end.
    pub conn_list_get: unsafe extern "C" fn(list: *const fd_conn_list, i: usize, out: *mut ConnRecord) -> i32,
    /// How many connections of the list are in `state` (`CONN_STATE_*`), over every worker and
    /// whatever `max` was.
    pub conn_list_state_count: unsafe extern "C" fn(list: *const fd_conn_list, state: u32) -> u64,
    /// The named counter `name` (lighttpd's plugin statistics, e.g.
    /// "fastcgi.backend.php.0.load"), created at 0 on first use; the same name always gives the
    /// same counter, also across graceful restarts (values are kept). The pointer is valid for
    /// the life of the process and must be accessed atomically (C11 `atomic_fetch_add` on an
    /// `_Atomic int64_t *`, or the `__atomic_*` builtins); workers share it. A name is 1 to 200
    /// printable ASCII characters without spaces or ':'; null otherwise. Any thread.
    pub stat_counter: unsafe extern "C" fn(module_id: u32, name: Str) -> *mut i64,
    /// Counter number `i`, in name order, among those asked for since the configuration was
    /// (re)loaded: its name (valid for the life of the process) and current value. Returns 1,
    /// or 0 past the end.
    pub stat_counter_at: unsafe extern "C" fn(i: usize, name: *mut Str, value: *mut i64) -> i32,
    /// Describe loaded module number `module_id` (0, 1, ... in `server.modules` order) into
    /// `out` (whose `struct_size` the caller set). Returns 0, or -2 past the last module.
    pub module_info: unsafe extern "C" fn(module_id: u32, out: *mut ModuleInfo) -> i32,
    /// The server's compile-time features as `featherd -V` lists them, one per line
    /// ("+ IPv6 support", "- TLS support"), static text.
    pub server_features: unsafe extern "C" fn() -> Str,

    // ---- ABI 1.8 ----
    /// The descriptor of `server.breakagelog` (open for appending, close-on-exec), or -1 when
    /// it is not set. Its number stays the same for the life of the process (SIGHUP and
    /// restarts reopen the file onto it), so it may be handed to a child process as its stderr
    /// at any moment; do not close it. Any thread.
    pub breakagelog_fd: unsafe extern "C" fn() -> i32,
}

// SAFETY: the host table is immutable after construction and its functions are thread-safe
// in the sense documented on each (request services check their thread).
unsafe impl Sync for HostApi {}
unsafe impl Send for HostApi {}
