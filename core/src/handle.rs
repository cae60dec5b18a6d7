//! The request path through the hook chain, lighttpd's order:
//! uri_raw → uri_clean → docroot → (compose physical path) → physical → (stat, PATH_INFO,
//! directory redirect, 404) → subrequest_start → subrequest (the claiming module) →
//! response_start. A hook that suspends (WaitForEvent) is called again at the same place when
//! the request is woken; Comeback restarts from the top with conditions re-evaluated.

use crate::host::Chain;
use crate::http::url::{normalize_path, split_target, UrlOpts};
use crate::request::{FileState, Phase, Request};
use crate::worker::stat_path;
use featherd_mod_api::abi::*;

/// How many times a request may be restarted by Comeback before it is answered with 500.
pub const MAX_COMEBACKS: u32 = 16;

pub enum Step {
    /// Suspended: waiting for an fd event or a wake-up.
    Wait,
    /// Status and body decided (or streaming): write the response.
    Respond,
    /// A module failed: 500 (or close if the head went out already).
    Error,
}

/// Request methods the server knows (the IANA registry, as lighttpd): others get 501.
const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"HEAD",
    b"POST",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"ACL",
    b"BASELINE-CONTROL",
    b"BIND",
    b"CHECKIN",
    b"CHECKOUT",
    b"COPY",
    b"LABEL",
    b"LINK",
    b"LOCK",
    b"MERGE",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"MKCOL",
    b"MKREDIRECTREF",
    b"MKWORKSPACE",
    b"MOVE",
    b"ORDERPATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"QUERY",
    b"REBIND",
    b"REPORT",
    b"SEARCH",
    b"UNBIND",
    b"UNCHECKOUT",
    b"UNLINK",
    b"UNLOCK",
    b"UPDATE",
    b"UPDATEREDIRECTREF",
    b"VERSION-CONTROL",
];

/// Decode the target, evaluate the conditions. Errors are the status to answer.
pub fn prepare(req: &mut Request, opts: &UrlOpts) -> Result<(), u16> {
    if !KNOWN_METHODS.contains(&req.head.method.as_slice()) {
        return Err(501);
    }
    if req.head.method == b"POST" && req.head.content_length.is_none() && !req.head.chunked {
        // A POST must say how long its body is, even when it is empty (lighttpd: 411).
        return Err(411);
    }
    if req.head.target == b"*" {
        // OPTIONS * asks about the server as a whole.
        req.evaluate();
        req.status = 200;
        req.resp_headers.set(b"Allow", b"OPTIONS, GET, HEAD, POST");
        req.body_finished = true;
        req.phase = Phase::Respond;
        return Ok(());
    }
    if req.head.method == b"CONNECT" {
        // Authority-form: no path. Only a module that claims it in uri_clean (mod_proxy with
        // "connect" enabled) serves it; conditions on the host still apply.
        req.path.clear();
        req.query = None;
        req.evaluate();
        req.phase = Phase::UriRaw;
        req.chain_pos = 0;
        return Ok(());
    }
    let (raw_path, query) = split_target(&req.head.target);
    let query = query.map(|q| {
        if opts.query_20_plus {
            String::from_utf8_lossy(q).replace("%20", "+").into_bytes()
        } else {
            q.to_vec()
        }
    });
    let mut path = std::mem::take(&mut req.path);
    let r = normalize_path(raw_path, opts, &mut path);
    req.path = path;
    r?;
    req.query = query;
    req.evaluate();
    req.phase = Phase::UriRaw;
    req.chain_pos = 0;
    Ok(())
}

/// Call the hooks of `chain` from `req.chain_pos` on, until one returns other than GO_ON.
fn run_chain(req: &mut Request, chain: &Chain<fd_request_hook>) -> fd_result_t {
    let loaded = req.loaded.clone();
    while req.chain_pos < chain.len() {
        let (m, hook) = chain[req.chain_pos];
        let rp = req as *mut Request as *mut fd_request;
        // SAFETY: the module's hook with its own data and the live request; nothing else
        // touches the request during the call.
        let r = unsafe { hook(loaded.modules[m].data.0, rp) };
        if r != HANDLER_GO_ON {
            if r == HANDLER_ERROR {
                log::error!(
                    "{}: hook failed for {}",
                    loaded.modules[m].name,
                    String::from_utf8_lossy(&req.head.target)
                );
            }
            return r;
        }
        req.chain_pos += 1;
    }
    HANDLER_GO_ON
}

/// Run the request from where it stands until it must wait or can be answered.
pub fn run(req: &mut Request) -> Step {
    loop {
        let step = run_phases(req);
        if matches!(step, Step::Respond) && error_handler(req) {
            continue;
        }
        return step;
    }
}

/// `server.error-handler` / `server.error-handler-404`: an error the server produced without
/// a body (a missing file, a refusal) is answered by another URI, restarted internally with
/// REDIRECT_STATUS set to the error status. True when the request was restarted.
fn error_handler(req: &mut Request) -> bool {
    let status = req.status;
    if status < 400
        || req.error_status != 0
        || req.head_sent
        || !req.body.is_empty()
        || req.content_length.is_some()
        || req.head.target == b"*"
        || req.head.method == b"CONNECT"
    {
        return false;
    }
    let core = req.core();
    let uri = match (status, &core.error_handler_404, &core.error_handler) {
        (404, Some(u), _) | (_, _, Some(u)) => u.clone(),
        _ => return false,
    };
    if req.core().log_request_handling {
        log::info!(
            "{status} for {}: answered by the error handler {uri}",
            String::from_utf8_lossy(&req.head.target)
        );
    }
    req.error_status = status;
    // The handler is asked with GET (HEAD stays HEAD): it answers about the error, not the
    // original method's action.
    if req.head.method != b"HEAD" {
        req.head.method.clear();
        req.head.method.extend_from_slice(b"GET");
    }
    let mut n = [0u8; 3];
    n[0] = b'0' + (status / 100) as u8;
    n[1] = b'0' + (status / 10 % 10) as u8;
    n[2] = b'0' + (status % 10) as u8;
    req.env.set(b"REDIRECT_STATUS", &n);
    if req.target_orig.is_empty() {
        // The handler learns what was asked for from REQUEST_URI (lighttpd's target_orig).
        req.target_orig = std::mem::take(&mut req.head.target);
    }
    req.head.target.clear();
    req.head.target.extend_from_slice(uri.as_bytes());
    req.status = 0;
    req.resp_headers.clear();
    req.body.clear();
    req.body_finished = false;
    req.content_length = None;
    match comeback(req) {
        None => true,
        // The handler's URI itself is bad: answer the original error.
        Some(_) => {
            req.status = status;
            req.body_finished = true;
            req.phase = Phase::Respond;
            false
        }
    }
}

fn run_phases(req: &mut Request) -> Step {
    let loaded = req.loaded.clone();
    let ch = &loaded.chains;
    loop {
        let phase = req.phase;
        let chain = match phase {
            Phase::Start => {
                req.phase = Phase::UriRaw;
                req.chain_pos = 0;
                continue;
            }
            Phase::UriRaw => &ch.uri_raw,
            Phase::UriClean => &ch.uri_clean,
            Phase::Docroot => &ch.docroot,
            Phase::Physical => &ch.physical,
            Phase::SubrequestStart => &ch.subrequest_start,
            Phase::Subrequest => return subrequest(req),
            Phase::Respond => return Step::Respond,
        };
        if phase == Phase::Docroot && req.chain_pos == 0 {
            set_docroot(req);
        }
        match run_chain(req, chain) {
            HANDLER_GO_ON => {
                req.chain_pos = 0;
                req.phase = after(req, phase);
            }
            HANDLER_FINISHED => {
                req.chain_pos = 0;
                req.body_finished = true;
                req.phase = Phase::Respond;
                return Step::Respond;
            }
            HANDLER_COMEBACK => {
                if let Some(s) = comeback(req) {
                    return s;
                }
            }
            HANDLER_WAIT_FOR_EVENT => return Step::Wait,
            _ => return Step::Error,
        }
    }
}

fn comeback(req: &mut Request) -> Option<Step> {
    req.comebacks += 1;
    if req.comebacks > MAX_COMEBACKS {
        log::error!(
            "request restarted more than {MAX_COMEBACKS} times (rewrite loop?): {} (sent as {})",
            String::from_utf8_lossy(&req.head.target),
            String::from_utf8_lossy(if req.target_orig.is_empty() {
                &req.head.target
            } else {
                &req.target_orig
            })
        );
        if req.head_sent {
            return Some(Step::Error);
        }
        // A loop in the configuration is not a broken connection: answer a plain 500 and
        // keep the connection.
        req.handler = None;
        req.resp_headers.clear();
        req.body.clear();
        req.content_length = None;
        req.status = 500;
        req.body_finished = true;
        req.phase = Phase::Respond;
        return Some(Step::Respond);
    }
    let opts = req.loaded.server.url;
    req.handler = None;
    req.docroot.clear();
    req.physical.clear();
    req.path_info.clear();
    req.file = FileState::Unknown;
    if let Err(status) = prepare(req, &opts) {
        req.status = status;
        req.body_finished = true;
        req.phase = Phase::Respond;
        return Some(Step::Respond);
    }
    None
}

fn subrequest(req: &mut Request) -> Step {
    let Some(m) = req.handler else {
        req.phase = Phase::Respond;
        return Step::Respond;
    };
    let loaded = req.loaded.clone();
    let module = &loaded.modules[m];
    let Some(hook) = module.desc.subrequest else {
        // A module that claims without a subrequest hook produced its answer already.
        req.body_finished = true;
        req.phase = Phase::Respond;
        return Step::Respond;
    };
    let rp = req as *mut Request as *mut fd_request;
    // SAFETY: the claiming module's hook with its data and the live request.
    match unsafe { hook(module.data.0, rp) } {
        HANDLER_FINISHED => {
            req.body_finished = true;
            req.phase = Phase::Respond;
            Step::Respond
        }
        HANDLER_GO_ON | HANDLER_WAIT_FOR_EVENT => Step::Wait,
        HANDLER_COMEBACK => comeback(req).unwrap_or_else(|| run(req)),
        _ => {
            log::error!("{}: handler failed for {}", module.name, String::from_utf8_lossy(&req.head.target));
            Step::Error
        }
    }
}

fn set_docroot(req: &mut Request) {
    if req.docroot.is_empty() {
        if let Some(d) = req.core().docroot.clone() {
            req.docroot.extend_from_slice(d.as_bytes());
        }
    }
}

fn compose_physical(req: &mut Request) {
    req.physical.clear();
    req.physical.extend_from_slice(&req.docroot);
    let lower = req.core().force_lowercase;
    if lower {
        req.physical.extend(req.path.iter().map(u8::to_ascii_lowercase));
    } else {
        req.physical.extend_from_slice(&req.path);
    }
    req.file = FileState::Unknown;
}

/// What follows a chain that ran through with GO_ON.
fn after(req: &mut Request, phase: Phase) -> Phase {
    match phase {
        Phase::UriRaw => Phase::UriClean,
        Phase::UriClean => {
            if req.head.method == b"CONNECT" {
                if req.handler.is_some() {
                    return Phase::Subrequest;
                }
                // Nothing tunnels: the method is not allowed here (lighttpd answers 405 too).
                req.status = 405;
                req.resp_headers.set(b"Allow", b"OPTIONS, GET, HEAD, POST");
                req.body_finished = true;
                return Phase::Respond;
            }
            if req.handler.is_some() {
                // Claimed early (a backend with check-local disabled): it still gets the
                // paths for its environment, but no file checks.
                set_docroot(req);
                compose_physical(req);
                Phase::Subrequest
            } else {
                Phase::Docroot
            }
        }
        Phase::Docroot => {
            compose_physical(req);
            if req.loaded.has_physical_conds {
                req.evaluate();
            }
            Phase::Physical
        }
        Phase::Physical => {
            if req.handler.is_some() {
                return Phase::Subrequest;
            }
            check_file(req)
        }
        Phase::SubrequestStart => {
            if req.handler.is_some() {
                Phase::Subrequest
            } else {
                if req.status == 0 {
                    let m = req.head.method.as_slice();
                    req.status = if m == b"OPTIONS" {
                        // What a plain file or directory allows.
                        req.resp_headers.set(b"Allow", b"OPTIONS, GET, HEAD, POST");
                        200
                    } else if m == b"GET" || m == b"HEAD" || m == b"POST" {
                        // Nobody serves this (e.g. a directory without index, or an excluded
                        // extension): lighttpd answers 403.
                        403
                    } else {
                        // A method no module implements for this resource (PUT, DELETE...
                        // without WebDAV): lighttpd answers 501.
                        501
                    };
                }
                req.body_finished = true;
                Phase::Respond
            }
        }
        other => other,
    }
}

/// stat the physical path: 404, PATH_INFO split, or 301 for a directory without '/'.
fn check_file(req: &mut Request) -> Phase {
    if req.docroot.is_empty() {
        // No document root: nothing on disk can be served.
        req.status = 404;
        req.body_finished = true;
        return Phase::Respond;
    }
    if matches!(req.file, FileState::Unknown) {
        req.file = stat_path(&req.physical);
    }
    if matches!(req.file, FileState::Found(_)) && !req.core().follow_symlink && below_has_symlink(req) {
        return forbid_symlink(req);
    }
    match req.file {
        FileState::Found(fi) if fi.kind == FILE_KIND_DIRECTORY => {
            if !req.path.ends_with(b"/") {
                redirect_dir(req);
                return Phase::Respond;
            }
            Phase::SubrequestStart
        }
        FileState::Found(fi) if fi.kind == FILE_KIND_REGULAR => Phase::SubrequestStart,
        FileState::Found(_) => {
            req.status = 403;
            req.body_finished = true;
            Phase::Respond
        }
        _ => {
            // PATH_INFO: the longest leading part of the path that is a regular file, below
            // the document root (or anywhere when a module such as mod_userdir mapped the
            // request outside of it; then the walk stops at the first existing directory).
            let root = if req.physical.starts_with(&req.docroot) { req.docroot.len() } else { 0 };
            let mut end = req.physical.len();
            while let Some(pos) = req.physical[root..end].iter().rposition(|&b| b == b'/') {
                let pos = root + pos;
                if pos <= root {
                    break;
                }
                match stat_path(&req.physical[..pos]) {
                    FileState::Found(fi) if fi.kind == FILE_KIND_REGULAR => {
                        req.path_info = req.physical[pos..].to_vec();
                        req.physical.truncate(pos);
                        req.file = FileState::Found(fi);
                        if !req.core().follow_symlink && below_has_symlink(req) {
                            return forbid_symlink(req);
                        }
                        return Phase::SubrequestStart;
                    }
                    FileState::Found(_) => break,
                    _ => end = pos,
                }
            }
            if req.core().log_file_not_found {
                log::info!("file not found: {}", String::from_utf8_lossy(&req.physical));
            }
            req.status = 404;
            req.body_finished = true;
            Phase::Respond
        }
    }
}

/// `server.follow-symlink = "disable"`: whether any component of the physical path below the
/// document root is a symbolic link (the document root itself may be one: sites are often
/// linked into place). lstat, not the stat cache: this is about the links, not their targets.
fn below_has_symlink(req: &Request) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let root = req.docroot.len().min(req.physical.len());
    let p = &req.physical;
    let ends = p[root..].iter().enumerate().filter(|(_, &b)| b == b'/').map(|(i, _)| root + i);
    ends.chain(std::iter::once(p.len())).filter(|&end| end > root).any(|end| {
        std::fs::symlink_metadata(std::ffi::OsStr::from_bytes(&p[..end]))
            .is_ok_and(|m| m.file_type().is_symlink())
    })
}

fn forbid_symlink(req: &mut Request) -> Phase {
    log::info!(
        "{}: a symbolic link in the path and server.follow-symlink is disabled: 403",
        String::from_utf8_lossy(&req.physical)
    );
    req.status = 403;
    req.body_finished = true;
    Phase::Respond
}

fn redirect_dir(req: &mut Request) {
    let mut loc = Vec::with_capacity(req.path.len() + 64);
    // A path alone by default, as lighttpd 1.4.64+: right behind a proxy or TLS terminator
    // too, where the scheme and host this server sees are not the client's.
    if req.loaded.server.absolute_dir_redirect {
        loc.extend_from_slice(req.peer.scheme.as_bytes());
        loc.extend_from_slice(b"://");
        if req.head.host.is_empty() {
            loc.extend_from_slice(req.peer.local_addr.as_bytes());
        } else {
            loc.extend_from_slice(&req.head.host);
            if let Some(p) = req.head.host_port {
                loc.extend_from_slice(format!(":{p}").as_bytes());
            }
        }
    }
    // The raw path keeps the client's encoding.
    let (raw, query) = split_target(&req.head.target);
    loc.extend_from_slice(raw);
    loc.push(b'/');
    if let Some(q) = query {
        loc.push(b'?');
        loc.extend_from_slice(q);
    }
    req.resp_headers.set(b"Location", &loc);
    req.status = 301;
    req.body_finished = true;
}

/// Last touches before the head is written: status defaults, error pages, response_start.
pub fn finalize(req: &mut Request) {
    if req.status == 0 {
        req.status = if req.body.is_empty() && req.body_finished { 500 } else { 200 };
    }
    if req.error_status != 0 && req.status == 200 {
        // An error handler's page keeps the error's status (a static page would otherwise
        // turn a missing file into a 200, a "soft 404").
        req.status = req.error_status;
    }
    if req.status >= 400
        && req.body_finished
        && req.body.is_empty()
        && req.content_length.is_none()
        && !crate::http::status_has_no_body(req.status)
    {
        error_body(req);
    }
    let loaded = req.loaded.clone();
    for (m, hook) in &loaded.chains.response_start {
        let rp = req as *mut Request as *mut fd_request;
        // SAFETY: module hook with its data and the live request.
        let r = unsafe { hook(loaded.modules[*m].data.0, rp) };
        if r != HANDLER_GO_ON {
            break;
        }
    }
}

fn error_body(req: &mut Request) {
    if let Some(prefix) = req.core().errorfile_prefix.clone() {
        let path = format!("{prefix}{}.html", req.status);
        if let Ok(f) = std::fs::File::open(&path) {
            if let Ok(m) = f.metadata() {
                if m.is_file() {
                    req.body.push_file(f.into(), 0, m.len());
                    req.resp_headers.set(b"Content-Type", b"text/html");
                    return;
                }
            }
        }
    }
    req.body.push_vec(crate::http::error_page(req.status).into_bytes());
    req.resp_headers.set(b"Content-Type", b"text/html; charset=utf-8");
}
