//! The host-services table handed to modules, and the `extern "C"` functions behind it.
//!
//! Every function here is an ABI entry point: it checks its pointers, never panics across the
//! boundary (failures become negative returns), and returns strings as views into memory the
//! request (or the configuration) owns, valid until the next mutating call (ABI rule).

use super::{module_info, module_value, ConfigCtx};
use crate::config::Value;
use crate::request::{FileState, Request};
use crate::worker;
use featherd_mod_api::abi::*;
use std::ffi::c_void;
use std::os::fd::{FromRawFd, OwnedFd};

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub static HOST_API: HostApi = HostApi {
    struct_size: std::mem::size_of::<HostApi>() as u32,
    abi_major: ABI_MAJOR,
    abi_minor: ABI_MINOR,
    server_version: Str::from_static(VERSION),
    log: host_log,
    log_max_level,
    config_block_count,
    config_block_parent,
    config_value,
    config_error,
    value_kind,
    value_str,
    value_int,
    value_bool,
    value_array_len,
    value_array_get,
    value_array_key,
    request_config_blocks,
    request_capture,
    request_method,
    request_target,
    request_path,
    request_query,
    request_host,
    request_scheme,
    request_protocol,
    request_set_target,
    request_header_get,
    request_header_set,
    request_header_append,
    request_header_remove,
    request_header_at,
    request_content_length,
    request_body_read,
    request_docroot,
    request_set_docroot,
    request_physical_path,
    request_set_physical_path,
    request_path_info,
    request_remote_addr,
    request_remote_port,
    request_local_addr,
    request_env_get,
    request_env_set,
    request_env_at,
    request_claim,
    response_set_status,
    response_status,
    response_header_get,
    response_header_set,
    response_header_append,
    response_header_remove,
    response_header_at,
    response_append_mem,
    response_append_file,
    response_set_content_length,
    response_body_finish,
    response_pending,
    response_high_water,
    request_slot_get,
    request_slot_set,
    connection_slot_get,
    connection_slot_set,
    connection_remote_addr,
    request_id,
    request_wake,
    fd_register,
    fd_modify,
    fd_unregister,
    timer_add,
    timer_cancel,
    worker_index,
    now,
    request_file_info,
    mimetype_for,
    request_bytes_out,
    request_bytes_in,
    request_start_us,
    module_description,
    request_handler,
    request_set_path,
    response_body_bytes_out,
    response_append_physical,
    fd_close,
    request_target_orig,
    blocking_submit,
    service_register,
    service_lookup,
    request_disable_keep_alive,
    request_server_tag,
    request_set_remote_addr,
    request_set_scheme,
    request_set_host,
    request_connection,
    connection_config_blocks,
    connection_claim_preface,
    connection_set_remote_addr,
    connection_set_scheme,
    server_stats,
    connections_collect,
    conn_list_get,
    conn_list_state_count,
    stat_counter,
    stat_counter_at,
    module_info: host_module_info,
    server_features,
    breakagelog_fd,
};

fn sv(b: &[u8]) -> Str {
    Str::from_bytes(b)
}

/// # Safety
/// `s` must be a valid view for the duration of the call (ABI rule for inputs).
unsafe fn bytes<'a>(s: Str) -> &'a [u8] {
    // SAFETY: forwarded from the caller.
    unsafe { s.as_bytes() }
}

/// # Safety
/// `req` must be null or a request the host handed to the calling module (ABI rule).
unsafe fn req<'a>(r: *mut fd_request) -> Option<&'a mut Request> {
    // SAFETY: forwarded from the caller; requests are Box<Request> kept alive by the worker
    // for the whole hook call.
    unsafe { (r as *mut Request).as_mut() }
}

fn set_found(found: *mut i32, v: bool) {
    if !found.is_null() {
        // SAFETY: the caller passes a writable i32 or null.
        unsafe { *found = i32::from(v) };
    }
}

fn opt_str(found: *mut i32, v: Option<&[u8]>) -> Str {
    set_found(found, v.is_some());
    v.map(sv).unwrap_or(Str::EMPTY)
}

// ---- logging

unsafe extern "C" fn host_log(module_id: u32, level: u32, msg: Str) {
    let name = module_info(module_id).map(|m| m.name).unwrap_or_else(|| "module?".into());
    // SAFETY: msg is the caller's valid view.
    let text = String::from_utf8_lossy(unsafe { bytes(msg) });
    let lvl = match level {
        LOG_ERROR => log::Level::Error,
        LOG_WARN => log::Level::Warn,
        LOG_INFO => log::Level::Info,
        LOG_DEBUG => log::Level::Debug,
        _ => log::Level::Trace,
    };
    log::log!(target: &name, lvl, "{text}");
}

unsafe extern "C" fn log_max_level() -> u32 {
    match log::max_level() {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => LOG_ERROR,
        log::LevelFilter::Warn => LOG_WARN,
        log::LevelFilter::Info => LOG_INFO,
        log::LevelFilter::Debug => LOG_DEBUG,
        log::LevelFilter::Trace => LOG_TRACE,
    }
}

// ---- configuration

/// # Safety
/// `cfg` must be the handle passed to set_defaults, during that call.
unsafe fn ctx<'a>(cfg: *const fd_config) -> Option<&'a ConfigCtx<'a>> {
    // SAFETY: forwarded; the handle is a &ConfigCtx alive for the set_defaults call.
    unsafe { (cfg as *const ConfigCtx).as_ref() }
}

unsafe extern "C" fn config_block_count(cfg: *const fd_config) -> u32 {
    // SAFETY: ABI rule on cfg.
    unsafe { ctx(cfg) }.map_or(0, |c| c.cfg.blocks.len() as u32)
}

unsafe extern "C" fn config_block_parent(cfg: *const fd_config, block: u32) -> i32 {
    // SAFETY: ABI rule on cfg.
    let Some(c) = (unsafe { ctx(cfg) }) else { return -1 };
    c.cfg.blocks.get(block as usize).and_then(|b| b.parent).map_or(-1, |p| p as i32)
}

unsafe extern "C" fn config_value(
    cfg: *const fd_config,
    module_id: u32,
    block: u32,
    key: u32,
) -> *const fd_value {
    // SAFETY: ABI rule on cfg.
    let Some(c) = (unsafe { ctx(cfg) }) else { return std::ptr::null() };
    module_value(c, module_id as usize, block as usize, key as usize)
        .map_or(std::ptr::null(), |v| v as *const Value as *const fd_value)
}

unsafe extern "C" fn config_error(cfg: *const fd_config, module_id: u32, block: u32, key: u32, msg: Str) {
    // SAFETY: ABI rule on cfg.
    let Some(c) = (unsafe { ctx(cfg) }) else { return };
    // SAFETY: msg is the caller's valid view.
    let msg = String::from_utf8_lossy(unsafe { bytes(msg) }).into_owned();
    let m = c.modules.get(module_id as usize);
    let kname = m.and_then(|m| m.keys.get(key as usize)).map(|k| k.name.as_str()).unwrap_or("?");
    let loc = c
        .cfg
        .blocks
        .get(block as usize)
        .and_then(|b| b.settings.iter().find(|s| s.key == kname))
        .map(|s| s.loc.to_string())
        .unwrap_or_else(|| "config".into());
    let mname = m.map(|m| m.name.as_str()).unwrap_or("?");
    c.errors.borrow_mut().push(format!("{loc}: {kname}: {msg} ({mname})"));
}

/// # Safety
/// `v` must be null or a value handed out by `config_value`/`value_array_get`.
unsafe fn val<'a>(v: *const fd_value) -> Option<&'a Value> {
    // SAFETY: values live in the Loaded config until cleanup.
    unsafe { (v as *const Value).as_ref() }
}

unsafe extern "C" fn value_kind(v: *const fd_value) -> u32 {
    // SAFETY: ABI rule on v.
    match unsafe { val(v) } {
        Some(Value::Str(_)) => VALUE_STRING,
        Some(Value::Int(_)) => VALUE_INT,
        Some(Value::Array(_)) => VALUE_ARRAY,
        None => 0,
    }
}

unsafe extern "C" fn value_str(v: *const fd_value) -> Str {
    // SAFETY: ABI rule on v.
    match unsafe { val(v) } {
        Some(Value::Str(s)) => sv(s.as_bytes()),
        _ => Str::EMPTY,
    }
}

unsafe extern "C" fn value_int(v: *const fd_value, ok: *mut i32) -> i64 {
    // SAFETY: ABI rule on v.
    let r = unsafe { val(v) }.and_then(|v| v.as_int());
    set_found(ok, r.is_some());
    r.unwrap_or(0)
}

unsafe extern "C" fn value_bool(v: *const fd_value) -> i32 {
    // SAFETY: ABI rule on v.
    match unsafe { val(v) }.and_then(|v| v.as_bool()) {
        Some(true) => 1,
        Some(false) => 0,
        None => -1,
    }
}

unsafe extern "C" fn value_array_len(v: *const fd_value) -> usize {
    // SAFETY: ABI rule on v.
    unsafe { val(v) }.and_then(|v| v.as_array()).map_or(0, |a| a.len())
}

unsafe extern "C" fn value_array_get(v: *const fd_value, i: usize) -> *const fd_value {
    // SAFETY: ABI rule on v.
    unsafe { val(v) }
        .and_then(|v| v.as_array())
        .and_then(|a| a.get(i))
        .map_or(std::ptr::null(), |e| &e.value as *const Value as *const fd_value)
}

unsafe extern "C" fn value_array_key(v: *const fd_value, i: usize, found: *mut i32) -> Str {
    // SAFETY: ABI rule on v.
    let k =
        unsafe { val(v) }.and_then(|v| v.as_array()).and_then(|a| a.get(i)).and_then(|e| e.key.as_deref());
    opt_str(found, k.map(str::as_bytes))
}

// ---- per-request configuration

unsafe extern "C" fn request_config_blocks(
    r: *mut fd_request,
    module_id: u32,
    out: *mut u32,
    cap: usize,
) -> usize {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return 0 };
    let mut n = 0;
    for b in r.config_blocks(module_id as usize + 1) {
        if n < cap && !out.is_null() {
            // SAFETY: out has room for cap entries (caller's promise), n < cap.
            unsafe { *out.add(n) = b };
        }
        n += 1;
    }
    n
}

unsafe extern "C" fn request_capture(r: *mut fd_request, block: u32, n: u32, found: *mut i32) -> Str {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return opt_str(found, None) };
    let c = r.eval.as_ref().and_then(|e| e.capture(block as usize, n as usize));
    opt_str(found, c.map(str::as_bytes))
}

// ---- request line

macro_rules! getter {
    ($name:ident, |$r:ident| $e:expr) => {
        unsafe extern "C" fn $name(r: *mut fd_request) -> Str {
            // SAFETY: ABI rule on r.
            match unsafe { req(r) } {
                Some($r) => sv($e),
                None => Str::EMPTY,
            }
        }
    };
}

getter!(request_method, |r| &r.head.method);
getter!(request_target, |r| &r.head.target);
getter!(request_path, |r| &r.path);
getter!(request_host, |r| &r.head.host);
getter!(request_scheme, |r| r.peer.scheme.as_bytes());
getter!(request_protocol, |r| if r.head.minor == 0 { b"HTTP/1.0" } else { b"HTTP/1.1" });
getter!(request_docroot, |r| &r.docroot);
getter!(request_physical_path, |r| &r.physical);
getter!(request_path_info, |r| &r.path_info);
getter!(request_remote_addr, |r| r.peer.remote_addr.as_bytes());
getter!(request_local_addr, |r| r.peer.local_addr.as_bytes());

unsafe extern "C" fn request_query(r: *mut fd_request, found: *mut i32) -> Str {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return opt_str(found, None) };
    opt_str(found, r.query.as_deref())
}

unsafe extern "C" fn request_remote_port(r: *mut fd_request) -> u32 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| u32::from(r.peer.remote_port))
}

unsafe extern "C" fn request_set_target(r: *mut fd_request, target: Str) -> i32 {
    // SAFETY: ABI rule on r and target.
    let (Some(r), t) = (unsafe { req(r) }, unsafe { bytes(target) }) else { return -1 };
    if t.first() != Some(&b'/') || t.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return -1;
    }
    if r.target_orig.is_empty() {
        // The first rewrite keeps what the client sent.
        r.target_orig = std::mem::take(&mut r.head.target);
    }
    r.head.target.clear();
    r.head.target.extend_from_slice(t);
    0
}

// ---- headers

macro_rules! header_fns {
    ($get:ident, $set:ident, $append:ident, $remove:ident, $at:ident, |$r:ident| $list:expr) => {
        unsafe extern "C" fn $get(r: *mut fd_request, name: Str, found: *mut i32) -> Str {
            // SAFETY: ABI rule on r and name.
            let Some($r) = (unsafe { req(r) }) else { return opt_str(found, None) };
            opt_str(found, $list.get(unsafe { bytes(name) }))
        }
        unsafe extern "C" fn $set(r: *mut fd_request, name: Str, value: Str) -> i32 {
            // SAFETY: ABI rule on r, name and value.
            let Some($r) = (unsafe { req(r) }) else { return -1 };
            let (n, v) = unsafe { (bytes(name), bytes(value)) };
            if !valid_header(n, v) {
                return -1;
            }
            $list.set(n, v);
            0
        }
        unsafe extern "C" fn $append(r: *mut fd_request, name: Str, value: Str) -> i32 {
            // SAFETY: ABI rule on r, name and value.
            let Some($r) = (unsafe { req(r) }) else { return -1 };
            let (n, v) = unsafe { (bytes(name), bytes(value)) };
            if !valid_header(n, v) {
                return -1;
            }
            $list.append(n, v);
            0
        }
        unsafe extern "C" fn $remove(r: *mut fd_request, name: Str) -> i32 {
            // SAFETY: ABI rule on r and name.
            let Some($r) = (unsafe { req(r) }) else { return -1 };
            $list.remove(unsafe { bytes(name) }) as i32
        }
        unsafe extern "C" fn $at(r: *mut fd_request, i: usize, name: *mut Str, value: *mut Str) -> i32 {
            // SAFETY: ABI rule on r.
            let Some($r) = (unsafe { req(r) }) else { return 0 };
            pair_out($list.at(i), name, value)
        }
    };
}

/// The bytes a header name may hold (visible ASCII but ':').
static TOKEN_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b < 0x7f {
        t[b] = b != b':' as usize;
        b += 1;
    }
    t
};

/// A header a module sets must not smuggle framing: no CR, LF or NUL, a token name.
fn valid_header(n: &[u8], v: &[u8]) -> bool {
    !n.is_empty() && n.iter().all(|&b| TOKEN_CHAR[usize::from(b)]) && !crate::http::has_cr_lf_nul(v)
}

header_fns!(
    request_header_get,
    request_header_set,
    request_header_append,
    request_header_remove,
    request_header_at,
    |r| r.head.headers
);
header_fns!(
    response_header_get,
    response_header_set,
    response_header_append,
    response_header_remove,
    response_header_at,
    |r| r.resp_headers
);
unsafe extern "C" fn request_env_get(r: *mut fd_request, name: Str, found: *mut i32) -> Str {
    // SAFETY: ABI rule on r and name.
    let Some(r) = (unsafe { req(r) }) else { return opt_str(found, None) };
    opt_str(found, r.env.get(unsafe { bytes(name) }))
}

unsafe extern "C" fn request_env_at(r: *mut fd_request, i: usize, name: *mut Str, value: *mut Str) -> i32 {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return 0 };
    pair_out(r.env.at(i), name, value)
}

fn pair_out(p: Option<(&[u8], &[u8])>, name: *mut Str, value: *mut Str) -> i32 {
    match p {
        Some((n, v)) => {
            if !name.is_null() && !value.is_null() {
                // SAFETY: the caller passes writable Str slots.
                unsafe {
                    *name = sv(n);
                    *value = sv(v);
                }
            }
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn request_env_set(r: *mut fd_request, name: Str, value: Str) -> i32 {
    // SAFETY: ABI rule on r, name and value.
    let Some(rq) = (unsafe { req(r) }) else { return -1 };
    let (n, v) = unsafe { (bytes(name), bytes(value)) };
    if n.is_empty() || n.contains(&b'=') || n.contains(&0) || v.contains(&0) {
        return -1;
    }
    rq.env.set(n, v);
    0
}

// ---- body in

unsafe extern "C" fn request_content_length(r: *mut fd_request) -> i64 {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    match r.head.content_length {
        Some(n) => n as i64,
        // A chunked body read in full before the handler ran has a known length.
        None if r.head.chunked && r.body_in.complete => r.body_in.received as i64,
        None => -1,
    }
}

unsafe extern "C" fn request_body_read(r: *mut fd_request, buf: *mut u8, cap: usize) -> isize {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    if buf.is_null() {
        return -1;
    }
    // SAFETY: buf is writable for cap bytes (caller's promise).
    let out = unsafe { std::slice::from_raw_parts_mut(buf, cap) };
    match r.body_in.read(out) {
        Ok(n) => n as isize,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            r.body_wanted = true;
            -11
        }
        Err(_) => -5,
    }
}

// ---- paths

unsafe extern "C" fn request_set_docroot(r: *mut fd_request, p: Str) -> i32 {
    // SAFETY: ABI rule on r and p.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    let p = unsafe { bytes(p) };
    if p.contains(&0) {
        return -1;
    }
    r.docroot.clear();
    r.docroot.extend_from_slice(p);
    while r.docroot.len() > 1 && r.docroot.ends_with(b"/") {
        r.docroot.pop();
    }
    0
}

unsafe extern "C" fn request_set_physical_path(r: *mut fd_request, p: Str) -> i32 {
    // SAFETY: ABI rule on r and p.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    let p = unsafe { bytes(p) };
    if p.contains(&0) {
        return -1;
    }
    r.physical.clear();
    r.physical.extend_from_slice(p);
    // The host stats again before the next hook that needs it.
    r.file = FileState::Unknown;
    0
}

unsafe extern "C" fn request_file_info(r: *mut fd_request, out: *mut FileInfo) -> i32 {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    if r.physical.is_empty() {
        return -1;
    }
    if matches!(r.file, FileState::Unknown) {
        r.file = worker::stat_path(&r.physical);
    }
    match r.file {
        FileState::Found(fi) => {
            if !out.is_null() {
                // SAFETY: out is a writable FileInfo (caller's promise).
                unsafe { *out = fi };
            }
            0
        }
        _ => -2,
    }
}

unsafe extern "C" fn mimetype_for(r: *mut fd_request, path: Str) -> Str {
    // SAFETY: ABI rule on r and path.
    let Some(r) = (unsafe { req(r) }) else { return Str::EMPTY };
    let p = unsafe { bytes(path) };
    sv(r.core().mimetype_for(p).as_bytes())
}

// ---- handler and response

unsafe extern "C" fn request_claim(r: *mut fd_request, module_id: u32) -> i32 {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    match r.handler {
        Some(h) if h != module_id as usize => -1,
        _ => {
            if module_id as usize >= r.loaded.modules.len() {
                return -1;
            }
            r.handler = Some(module_id as usize);
            0
        }
    }
}

unsafe extern "C" fn response_set_status(r: *mut fd_request, status: u32) {
    // SAFETY: ABI rule on r.
    if let Some(r) = unsafe { req(r) } {
        if (100..1000).contains(&status) && !r.head_sent {
            r.status = status as u16;
        }
    }
}

unsafe extern "C" fn response_status(r: *mut fd_request) -> u32 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| u32::from(r.status))
}

unsafe extern "C" fn response_append_mem(r: *mut fd_request, data: Str) -> i32 {
    // SAFETY: ABI rule on r and data.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    if r.body_finished {
        return -1;
    }
    r.body.push_mem(unsafe { bytes(data) });
    0
}

unsafe extern "C" fn response_append_file(r: *mut fd_request, fd: i32, offset: u64, len: u64) -> i32 {
    if fd < 0 {
        return -1;
    }
    // SAFETY: the ABI transfers ownership of fd to the host in every case.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    if r.body_finished {
        return -1;
    }
    r.body.push_file(owned, offset, len);
    0
}

unsafe extern "C" fn response_set_content_length(r: *mut fd_request, len: i64) {
    // SAFETY: ABI rule on r.
    if let Some(r) = unsafe { req(r) } {
        r.content_length = u64::try_from(len).ok();
    }
}

unsafe extern "C" fn response_body_finish(r: *mut fd_request) {
    // SAFETY: ABI rule on r.
    if let Some(r) = unsafe { req(r) } {
        r.body_finished = true;
    }
}

unsafe extern "C" fn response_pending(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.body.len() + r.out_pending)
}

unsafe extern "C" fn response_high_water(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.high_water)
}

// ---- slots

unsafe extern "C" fn request_slot_get(r: *mut fd_request, module_id: u32) -> *mut c_void {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.and_then(|r| r.slots.get(module_id as usize).copied()).unwrap_or(std::ptr::null_mut())
}

unsafe extern "C" fn request_slot_set(r: *mut fd_request, module_id: u32, data: *mut c_void) {
    // SAFETY: ABI rule on r.
    if let Some(s) = unsafe { req(r) }.and_then(|r| r.slots.get_mut(module_id as usize)) {
        *s = data;
    }
}

unsafe extern "C" fn connection_slot_get(c: *mut fd_connection, module_id: u32) -> *mut c_void {
    // SAFETY: connection handles are &mut ConnInfo kept alive for the hook call.
    unsafe { (c as *mut worker::ConnInfo).as_mut() }
        .and_then(|c| c.slots.get(module_id as usize).copied())
        .unwrap_or(std::ptr::null_mut())
}

unsafe extern "C" fn connection_slot_set(c: *mut fd_connection, module_id: u32, data: *mut c_void) {
    // SAFETY: as above.
    let Some(c) = (unsafe { (c as *mut worker::ConnInfo).as_mut() }) else { return };
    // Slots are allocated when a module first uses one (idle connections stay small).
    let i = module_id as usize;
    if i >= c.slots.len() {
        if data.is_null() || module_info(module_id).is_none() {
            return;
        }
        c.slots.resize(i + 1, std::ptr::null_mut());
    }
    c.slots[i] = data;
}

unsafe extern "C" fn connection_remote_addr(c: *mut fd_connection) -> Str {
    // SAFETY: as above.
    unsafe { (c as *mut worker::ConnInfo).as_ref() }.map_or(Str::EMPTY, |c| sv(c.peer.remote_addr.as_bytes()))
}

// ---- events

unsafe extern "C" fn request_id(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.id)
}

unsafe extern "C" fn request_wake(id: u64) -> i32 {
    worker::wake(id)
}

unsafe extern "C" fn fd_register(
    module_id: u32,
    fd: i32,
    interest: u32,
    cb: fd_event_fn,
    ctx: *mut c_void,
) -> i64 {
    let Some(m) = module_info(module_id) else { return -1 };
    worker::fd_register(m.data, fd, interest, cb, ctx)
}

unsafe extern "C" fn fd_modify(handle: i64, interest: u32) -> i32 {
    worker::fd_modify(handle, interest)
}

unsafe extern "C" fn fd_unregister(handle: i64) -> i32 {
    worker::fd_unregister(handle)
}

unsafe extern "C" fn timer_add(module_id: u32, ms: u64, cb: fd_event_fn, ctx: *mut c_void) -> i64 {
    let Some(m) = module_info(module_id) else { return -1 };
    worker::timer_add(m.data, ms, cb, ctx)
}

unsafe extern "C" fn timer_cancel(handle: i64) -> i32 {
    worker::timer_cancel(handle)
}

unsafe extern "C" fn worker_index() -> i32 {
    worker::current_index()
}

unsafe extern "C" fn now() -> i64 {
    crate::http::unix_now() as i64
}

unsafe extern "C" fn request_bytes_out(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.bytes_out)
}

unsafe extern "C" fn request_bytes_in(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.bytes_in)
}

unsafe extern "C" fn request_start_us(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.start_us)
}

unsafe extern "C" fn module_description(module_id: u32) -> Str {
    // The registry keeps each description in an Arc<str> until the next configuration load,
    // which outlives any use a module can make of the view within a call.
    match super::REGISTRY.read() {
        Ok(reg) => reg.get(module_id as usize).map_or(Str::EMPTY, |m| sv(m.description.as_bytes())),
        Err(_) => Str::EMPTY,
    }
}

unsafe extern "C" fn request_handler(r: *mut fd_request) -> i32 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.and_then(|r| r.handler).map_or(-1, |m| m as i32)
}

unsafe extern "C" fn request_set_path(r: *mut fd_request, path: Str) -> i32 {
    // SAFETY: ABI rule on r and path.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    let p = unsafe { bytes(path) };
    if p.first() != Some(&b'/') || p.contains(&0) {
        return -1;
    }
    r.path.clear();
    r.path.extend_from_slice(p);
    0
}

unsafe extern "C" fn response_body_bytes_out(r: *mut fd_request) -> u64 {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(0, |r| r.bytes_out.saturating_sub(r.head_len))
}

unsafe extern "C" fn response_append_physical(r: *mut fd_request, offset: u64, len: u64) -> i32 {
    // SAFETY: ABI rule on r.
    let Some(r) = (unsafe { req(r) }) else { return -1 };
    let FileState::Found(fi) = r.file else { return -1 };
    match offset.checked_add(len) {
        Some(end) if end <= fi.size && !r.body_finished && !r.physical.is_empty() => {}
        _ => return -1,
    }
    // len 0 only checks that the file can be sent (and warms the cache).
    match worker::cached_file(&r.physical, &fi) {
        Some(_) if len == 0 => 0,
        Some(worker::CachedFile::Data(data)) => {
            r.body.push_shared(data, offset as usize, (offset + len) as usize);
            0
        }
        Some(worker::CachedFile::Fd(fd)) => {
            r.body.push_shared_file(fd, offset, len);
            0
        }
        None => -1,
    }
}

unsafe extern "C" fn fd_close(handle: i64, fd: i32) -> i32 {
    worker::fd_close(handle, fd)
}

// ---- ABI 1.4

unsafe extern "C" fn blocking_submit(
    module_id: u32,
    job: fd_blocking_fn,
    done: fd_blocking_fn,
    ctx: *mut c_void,
) -> i32 {
    let Some(m) = module_info(module_id) else { return -1 };
    worker::blocking_submit(m.data, job, done, ctx)
}

unsafe extern "C" fn service_register(module_id: u32, name: Str, table: *const c_void) -> i32 {
    // SAFETY: ABI rule on name.
    let name = unsafe { bytes(name) };
    if table.is_null() || name.is_empty() || module_info(module_id).is_none() {
        return -1;
    }
    super::register_service(name, module_id, table)
}

unsafe extern "C" fn service_lookup(name: Str, provider: *mut u32) -> *const c_void {
    // SAFETY: ABI rule on name.
    let Some((id, table)) = super::lookup_service(unsafe { bytes(name) }) else {
        return std::ptr::null();
    };
    if !provider.is_null() {
        // SAFETY: the caller passes a writable u32 or null.
        unsafe { *provider = id };
    }
    table
}

unsafe extern "C" fn request_disable_keep_alive(r: *mut fd_request) {
    // SAFETY: ABI rule on r.
    if let Some(r) = unsafe { req(r) } {
        r.head.close = true;
    }
}

unsafe extern "C" fn request_target_orig(r: *mut fd_request) -> Str {
    // SAFETY: ABI rule on r.
    match unsafe { req(r) } {
        Some(r) if !r.target_orig.is_empty() => sv(&r.target_orig),
        Some(r) => sv(&r.head.target),
        None => Str::EMPTY,
    }
}

// ---- ABI 1.5

unsafe extern "C" fn request_server_tag(r: *mut fd_request) -> Str {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(Str::EMPTY, |r| sv(r.core().tag.as_bytes()))
}

// ---- ABI 1.6

/// An IP address as text, with or without IPv6 brackets.
fn parse_ip(b: &[u8]) -> Option<std::net::IpAddr> {
    let s = std::str::from_utf8(b).ok()?;
    let s = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(s);
    s.parse().ok()
}

/// "http" or "https", any case.
fn parse_scheme(b: &[u8]) -> Option<&'static str> {
    if b.eq_ignore_ascii_case(b"https") {
        Some("https")
    } else if b.eq_ignore_ascii_case(b"http") {
        Some("http")
    } else {
        None
    }
}

/// # Safety
/// `c` must be null or a connection the host handed to the calling module (ABI rule).
unsafe fn con<'a>(c: *mut fd_connection) -> Option<&'a mut worker::ConnInfo> {
    // SAFETY: connection handles are &mut ConnInfo kept alive by the worker for the call.
    unsafe { (c as *mut worker::ConnInfo).as_mut() }
}

unsafe extern "C" fn request_set_remote_addr(r: *mut fd_request, addr: Str, port: u32) -> i32 {
    // SAFETY: ABI rule on r and addr.
    let (Some(r), a) = (unsafe { req(r) }, unsafe { bytes(addr) }) else { return -1 };
    let (Some(ip), Ok(port)) = (parse_ip(a), u16::try_from(port)) else { return -1 };
    r.set_remote(ip, port);
    0
}

unsafe extern "C" fn request_set_scheme(r: *mut fd_request, scheme: Str) -> i32 {
    // SAFETY: ABI rule on r and scheme.
    let (Some(r), s) = (unsafe { req(r) }, unsafe { bytes(scheme) }) else { return -1 };
    let Some(s) = parse_scheme(s) else { return -1 };
    r.set_scheme(s);
    0
}

unsafe extern "C" fn request_set_host(r: *mut fd_request, host: Str) -> i32 {
    // SAFETY: ABI rule on r and host.
    let (Some(r), h) = (unsafe { req(r) }, unsafe { bytes(host) }) else { return -1 };
    if r.set_host(h) {
        0
    } else {
        -1
    }
}

unsafe extern "C" fn request_connection(r: *mut fd_request) -> *mut fd_connection {
    // SAFETY: ABI rule on r.
    unsafe { req(r) }.map_or(std::ptr::null_mut(), |r| r.conn as *mut fd_connection)
}

unsafe extern "C" fn connection_config_blocks(
    c: *mut fd_connection,
    module_id: u32,
    out: *mut u32,
    cap: usize,
) -> usize {
    // SAFETY: ABI rule on c.
    let Some(c) = (unsafe { con(c) }) else { return 0 };
    // SAFETY: the worker's Loaded outlives its connections (see ConnInfo::loaded).
    let Some(loaded) = (unsafe { c.loaded.as_ref() }) else { return 0 };
    let list = crate::request::connection_config_blocks(loaded, &c.peer, module_id as usize + 1);
    if !out.is_null() {
        for (i, b) in list.iter().take(cap).enumerate() {
            // SAFETY: out has room for cap entries (caller's promise), i < cap.
            unsafe { *out.add(i) = *b };
        }
    }
    list.len()
}

unsafe extern "C" fn connection_claim_preface(c: *mut fd_connection, module_id: u32) -> i32 {
    // SAFETY: ABI rule on c.
    let Some(c) = (unsafe { con(c) }) else { return -1 };
    // SAFETY: the worker's Loaded outlives its connections (see ConnInfo::loaded).
    let Some(loaded) = (unsafe { c.loaded.as_ref() }) else { return -1 };
    let m = module_id as usize;
    if loaded.modules.get(m).is_none_or(|x| x.desc.connection_preface.is_none()) {
        return -1;
    }
    match c.preface {
        Some(o) if o != m => -1,
        _ => {
            c.preface = Some(m);
            0
        }
    }
}

unsafe extern "C" fn connection_set_remote_addr(c: *mut fd_connection, addr: Str, port: u32) -> i32 {
    // SAFETY: ABI rule on c and addr.
    let (Some(c), a) = (unsafe { con(c) }, unsafe { bytes(addr) }) else { return -1 };
    let (Some(ip), Ok(port)) = (parse_ip(a), u16::try_from(port)) else { return -1 };
    let mut p = crate::request::Peer::clone(&c.peer);
    p.set_remote(ip, port);
    c.peer = std::sync::Arc::new(p);
    0
}

unsafe extern "C" fn connection_set_scheme(c: *mut fd_connection, scheme: Str) -> i32 {
    // SAFETY: ABI rule on c and scheme.
    let (Some(c), s) = (unsafe { con(c) }, unsafe { bytes(scheme) }) else { return -1 };
    let Some(s) = parse_scheme(s) else { return -1 };
    if c.peer.scheme != s {
        let mut p = crate::request::Peer::clone(&c.peer);
        p.scheme = s;
        c.peer = std::sync::Arc::new(p);
    }
    0
}

// ---- ABI 1.7

/// Copy the first `want` bytes of `v` (a size-prefixed struct) to `out`, keeping the caller's
/// `struct_size`: a module built against an older ABI gets the fields it knows.
///
/// # Safety
/// `out` must be writable for `want` bytes.
unsafe fn fill_sized<T: Copy>(out: *mut T, v: &T, want: usize) {
    let n = want.min(std::mem::size_of::<T>());
    // SAFETY: out is writable for `want` >= n bytes (caller), v is a live T of size >= n.
    unsafe { std::ptr::copy_nonoverlapping(v as *const T as *const u8, out as *mut u8, n) };
}

/// The `struct_size` a caller set in a size-prefixed struct, or None when too small.
///
/// # Safety
/// `out` must be null or point to at least a u32.
unsafe fn caller_size<T>(out: *mut T) -> Option<usize> {
    if out.is_null() {
        return None;
    }
    // SAFETY: every size-prefixed struct starts with its u32 struct_size (caller's promise).
    let n = unsafe { *(out as *const u32) } as usize;
    (n >= 8).then_some(n)
}

unsafe extern "C" fn server_stats(out: *mut ServerStats) -> i32 {
    // SAFETY: ABI rule: out points to a ServerStats prefix of the size it declares.
    let Some(want) = (unsafe { caller_size(out) }) else { return -1 };
    let mut s = crate::stats::server_stats();
    s.struct_size = want as u32;
    // SAFETY: as above.
    unsafe { fill_sized(out, &s, want) };
    0
}

unsafe extern "C" fn connections_collect(
    module_id: u32,
    max: u32,
    done: fd_collect_fn,
    ctx: *mut c_void,
) -> i32 {
    let Some(m) = module_info(module_id) else { return -1 };
    worker::connections_collect(m.data, max, done, ctx)
}

/// # Safety
/// `list` must be the pointer handed to an `fd_collect_fn`, during that call.
unsafe fn conn_list<'a>(list: *const fd_conn_list) -> Option<&'a crate::stats::Answers> {
    // SAFETY: the list handle is an Arc<Collection> kept alive by the completion that runs
    // the callback (see worker::connections_collect).
    unsafe { (list as *const crate::stats::Collection).as_ref() }?.finished()
}

unsafe extern "C" fn conn_list_get(list: *const fd_conn_list, i: usize, out: *mut ConnRecord) -> i32 {
    // SAFETY: ABI rule on list.
    let Some(a) = (unsafe { conn_list(list) }) else { return 0 };
    let Some(r) = a.records.get(i) else { return 0 };
    // SAFETY: ABI rule: out points to a ConnRecord prefix of the size it declares.
    let Some(want) = (unsafe { caller_size(out) }) else { return 0 };
    let rec = ConnRecord {
        struct_size: want as u32,
        state: r.state,
        worker: r.worker,
        remote_port: r.remote_port,
        requests: r.requests,
        age_ms: r.age_ms,
        bytes_in: r.bytes_in,
        content_length: r.content_length,
        bytes_out: r.bytes_out,
        bytes_total: r.bytes_total,
        status: r.status,
        _reserved: 0,
        remote_addr: sv(r.remote_addr.as_bytes()),
        method: sv(&r.method),
        host: sv(&r.host),
        target: sv(&r.target),
        target_rewritten: sv(&r.target_rewritten),
        physical: sv(&r.physical),
    };
    // SAFETY: as above.
    unsafe { fill_sized(out, &rec, want) };
    1
}

unsafe extern "C" fn conn_list_state_count(list: *const fd_conn_list, state: u32) -> u64 {
    // SAFETY: ABI rule on list.
    unsafe { conn_list(list) }.and_then(|a| a.counts.get(state as usize).copied()).unwrap_or(0)
}

unsafe extern "C" fn stat_counter(module_id: u32, name: Str) -> *mut i64 {
    if module_info(module_id).is_none() {
        return std::ptr::null_mut();
    }
    // SAFETY: ABI rule on name.
    match crate::stats::counter(unsafe { bytes(name) }) {
        Some(c) => c.as_ptr(),
        None => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn stat_counter_at(i: usize, name: *mut Str, value: *mut i64) -> i32 {
    let Some((n, v)) = crate::stats::counter_at(i) else { return 0 };
    if !name.is_null() {
        // SAFETY: the caller passes a writable Str or null.
        unsafe { *name = sv(n) };
    }
    if !value.is_null() {
        // SAFETY: the caller passes a writable i64 or null.
        unsafe { *value = v };
    }
    1
}

unsafe extern "C" fn host_module_info(module_id: u32, out: *mut ModuleInfo) -> i32 {
    // SAFETY: ABI rule: out points to a ModuleInfo prefix of the size it declares.
    let Some(want) = (unsafe { caller_size(out) }) else { return -1 };
    // The registry keeps the strings in Arc<str>s until the next configuration load.
    let Ok(reg) = super::REGISTRY.read() else { return -1 };
    let Some(m) = reg.get(module_id as usize) else { return -2 };
    let info = ModuleInfo {
        struct_size: want as u32,
        hooks: m.hooks,
        name: sv(m.name.as_bytes()),
        version: sv(m.version.as_bytes()),
        description: sv(m.description.as_bytes()),
        descriptor_size: m.descriptor_size,
        _reserved: 0,
    };
    // SAFETY: as above.
    unsafe { fill_sized(out, &info, want) };
    0
}

unsafe extern "C" fn breakagelog_fd() -> i32 {
    crate::errorlog::breakage_fd()
}

unsafe extern "C" fn server_features() -> Str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let t = TEXT.get_or_init(|| {
        crate::server::FEATURES.iter().map(|(sign, name)| format!("{sign} {name}\n")).collect()
    });
    sv(t.as_bytes())
}
