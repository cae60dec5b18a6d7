//! mod_staticfile: serve the file a request maps to, when it is a regular file.
//!
//! Data in: at SUBREQUEST_START, the host's stat of the physical path (`file_info`), the
//! request method, protocol and conditional headers (`If-None-Match`, `If-Modified-Since`,
//! `Range`, `If-Range`), and this module's configuration for the request. Data out: the
//! response status (200, 206, 304, 412, 416, or 403/404 when the file cannot be opened),
//! `Content-Type`, `ETag`, `Last-Modified`, `Accept-Ranges`, `Content-Range`, the body length,
//! and the open file queued as body (the server sends it with sendfile and closes it).
//!
//! It runs last among the handlers (lighttpd's order): a module before it that set a status
//! or otherwise decided the response makes it step aside. The decisions themselves live in
//! [`logic`], free of the server, so they are tested on their own.

pub mod logic;

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value, FILE_KIND_REGULAR};
use logic::{Conditions, EtagFlags, FileStamp, Method, Plan, Validators};
use std::cell::{Cell, RefCell};
use std::ffi::OsStr;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;

/// Configuration, merged per request.
#[derive(Clone, Debug)]
pub struct StaticFileConfig {
    /// Suffixes of physical paths this module leaves to others (e.g. ".php").
    pub exclude_extensions: Vec<String>,
    /// `static-file.etags`: send ETags at all.
    pub etags: bool,
    /// `static-file.disable-pathinfo`: do not serve when the path had PATH_INFO split off.
    pub disable_pathinfo: bool,
    pub etag_flags: EtagFlags,
    /// `server.range-requests`: honour `Range` (lighttpd's core key; mod_staticfile is the
    /// module that serves ranges, so it owns the key when loaded).
    pub range_requests: bool,
}

impl Default for StaticFileConfig {
    fn default() -> Self {
        StaticFileConfig {
            exclude_extensions: Vec::new(),
            etags: true,
            disable_pathinfo: false,
            etag_flags: EtagFlags { inode: true, size: true, mtime: true },
            range_requests: true,
        }
    }
}

const KEY_EXCLUDE: usize = 0;
const KEY_ETAGS: usize = 1;
const KEY_DISABLE_PATHINFO: usize = 2;
const KEY_USE_INODE: usize = 3;
const KEY_USE_MTIME: usize = 4;
const KEY_USE_SIZE: usize = 5;
const KEY_RANGE_REQUESTS: usize = 6;

impl ModuleConfig for StaticFileConfig {
    const KEYS: &'static [Key] = &[
        Key::array("static-file.exclude-extensions"),
        Key::boolean("static-file.etags"),
        Key::boolean("static-file.disable-pathinfo"),
        Key::boolean("etag.use-inode"),
        Key::boolean("etag.use-mtime"),
        Key::boolean("etag.use-size"),
        Key::boolean("server.range-requests"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            KEY_EXCLUDE => self.exclude_extensions = v.to_str_list()?,
            KEY_ETAGS => self.etags = v.to_bool()?,
            KEY_DISABLE_PATHINFO => self.disable_pathinfo = v.to_bool()?,
            KEY_USE_INODE => self.etag_flags.inode = v.to_bool()?,
            KEY_USE_MTIME => self.etag_flags.mtime = v.to_bool()?,
            KEY_USE_SIZE => self.etag_flags.size = v.to_bool()?,
            KEY_RANGE_REQUESTS => self.range_requests = v.to_bool()?,
            _ => {}
        }
        Ok(())
    }
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct StaticFile;

impl Module for StaticFile {
    const NAME: &'static str = "mod_staticfile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "serves regular files (ETag, conditional and range requests)";
    const HOOKS: Hooks = Hooks::SUBREQUEST_START;
    type Config = StaticFileConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        StaticFile
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        // Someone before us already decided the response, or owns the request.
        if req.status() != 0 || req.claimed_by_other() {
            return Handler::GoOn;
        }
        let Some(method) = Method::parse(req.method()) else {
            return Handler::GoOn;
        };
        match req.file_info() {
            Some(fi) if fi.kind == FILE_KIND_REGULAR => {}
            _ => return Handler::GoOn,
        }
        let conf = req.config();
        if conf.disable_pathinfo && !req.path_info().is_empty() {
            log::debug!("not serving as static file: PATH_INFO present and static-file.disable-pathinfo set");
            return Handler::GoOn;
        }
        // The path outlives the calls that change the response: a copy, in a buffer this
        // thread reuses.
        let mut path = PATH.take();
        path.clear();
        path.extend_from_slice(req.physical_path());
        let h = if path.is_empty() {
            Handler::GoOn
        } else if conf.exclude_extensions.iter().any(|ext| path.ends_with(ext.as_bytes())) {
            log::debug!("not serving as static file: extension excluded");
            Handler::GoOn
        } else {
            serve(req, &conf, method, &path)
        };
        PATH.set(path);
        h
    }
}

thread_local! {
    static PATH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static VALIDATORS: RefCell<[Option<CachedValidators>; VALIDATOR_SLOTS]> =
        const { RefCell::new([None; VALIDATOR_SLOTS]) };
}

/// Files whose formatted validators each thread keeps.
const VALIDATOR_SLOTS: usize = 64;

/// A file's ETag and Last-Modified as sent, kept per thread for the files served most
/// recently: formatting them is most of the work of answering for a cached small file.
#[derive(Clone, Copy)]
struct CachedValidators {
    stamp: FileStamp,
    flags: EtagFlags,
    etag: [u8; logic::ETAG_MAX],
    /// 0: no ETag (no field enabled).
    etag_len: u8,
    last_modified: [u8; 29],
}

fn validators(stamp: &FileStamp, flags: EtagFlags) -> CachedValidators {
    let slot = (stamp.inode ^ stamp.mtime as u64) as usize % VALIDATOR_SLOTS;
    let hit = VALIDATORS
        .with(|v| v.try_borrow().ok().and_then(|v| v[slot]))
        .filter(|c| c.stamp == *stamp && c.flags == flags);
    if let Some(c) = hit {
        return c;
    }
    let mut c = CachedValidators {
        stamp: *stamp,
        flags,
        etag: [0; logic::ETAG_MAX],
        etag_len: 0,
        last_modified: [b' '; 29],
    };
    c.etag_len = logic::write_etag(stamp, flags, &mut c.etag).unwrap_or(0) as u8;
    let lm = logic::http_date(stamp.mtime);
    let n = lm.len().min(29);
    c.last_modified[..n].copy_from_slice(&lm.as_bytes()[..n]);
    VALIDATORS.with(|v| {
        if let Ok(mut v) = v.try_borrow_mut() {
            v[slot] = Some(c);
        }
    });
    c
}

fn serve(req: &mut Request<StaticFile>, conf: &StaticFileConfig, method: Method, path: &[u8]) -> Handler {
    // The server's file cache (ABI 1.2) sends the file its stat described, without an open,
    // fstat and close per request; otherwise open the file here.
    let cached = req.file_info().filter(|fi| fi.kind == FILE_KIND_REGULAR && req.append_physical(0, 0));
    let (stamp, file) = match cached {
        Some(fi) => {
            (FileStamp { inode: fi.inode, size: fi.size, mtime: fi.mtime, mtime_nsec: fi.mtime_nsec }, None)
        }
        None => match open(req, path) {
            Ok(x) => x,
            Err(h) => return h,
        },
    };
    let size = stamp.size;

    // An unknown content type makes lighttpd send application/octet-stream and drop the
    // validators, so that a type added to the config later is not hidden by client caches.
    let mut cachable = true;
    if req.response_header("Content-Type").is_none() && !req.set_content_type_for(path) {
        req.set_response_header("Content-Type", "application/octet-stream");
        cachable = false;
    }

    // Validators another module set are taken as they are (copied: the response changes
    // below); ours come formatted from the thread's cache.
    let mut theirs_etag = None;
    let mut theirs_lm = None;
    let ours = validators(&stamp, conf.etag_flags);
    let ours_etag = Some(&ours.etag[..usize::from(ours.etag_len)]).filter(|e| !e.is_empty());
    let ours_lm = &ours.last_modified[..];
    let mut v = Validators { mtime: stamp.mtime, cachable, ..Validators::default() };
    if cachable {
        match req.response_header("ETag") {
            Some(e) => theirs_etag = Some(e.to_vec()),
            None if conf.etags => {
                if let Some(e) = ours_etag {
                    req.set_response_header("ETag", e);
                }
            }
            None => {}
        }
        match req.response_header("Last-Modified") {
            Some(lm) => theirs_lm = Some(lm.to_vec()),
            None => req.set_response_header("Last-Modified", ours_lm),
        }
        v.etag = match &theirs_etag {
            Some(e) => Some(e.as_slice()),
            None if conf.etags => ours_etag,
            None => None,
        };
        v.last_modified = Some(theirs_lm.as_deref().unwrap_or(ours_lm));
    }

    let owned = |h: Option<&[u8]>| h.map(<[u8]>::to_vec);
    let inm = owned(req.header("If-None-Match"));
    let ims = owned(req.header("If-Modified-Since"));
    let range = if conf.range_requests { owned(req.header("Range")) } else { None };
    let if_range = owned(req.header("If-Range"));
    let c = Conditions {
        method,
        http10: req.protocol() == b"HTTP/1.0",
        if_none_match: inm.as_deref(),
        if_modified_since: ims.as_deref(),
        range: range.as_deref(),
        if_range: if_range.as_deref(),
    };

    match logic::plan(&c, &v, size) {
        Plan::NotModified => {
            req.set_status(304);
            Handler::Finished
        }
        Plan::PreconditionFailed => {
            req.set_status(412);
            Handler::Finished
        }
        Plan::Unsatisfiable => {
            req.set_response_header("Content-Range", format!("bytes */{size}"));
            req.set_status(416);
            Handler::Finished
        }
        Plan::Full { body, accept_ranges } => {
            req.set_status(200);
            if accept_ranges && conf.range_requests {
                req.set_response_header("Accept-Ranges", "bytes");
            }
            req.set_content_length(size);
            // HEAD gets the same headers; not queueing the file saves the server a useless
            // open fd. An empty file has nothing to queue either.
            if body && size > 0 {
                return queue(req, file, 0, size);
            }
            Handler::Finished
        }
        Plan::Partial { start, end } => {
            let len = end - start + 1;
            req.set_status(206);
            req.set_response_header("Accept-Ranges", "bytes");
            req.set_response_header("Content-Range", format!("bytes {start}-{end}/{size}"));
            req.set_content_length(len);
            queue(req, file, start, len)
        }
        Plan::Multipart(ranges) => multipart(req, file, &ranges, size),
    }
}

/// 206 multipart/byteranges: each range as a part with its own Content-Type and
/// Content-Range (RFC 9110 14.6), the file bytes queued from the file, not copied.
fn multipart(req: &mut Request<StaticFile>, file: Option<File>, ranges: &[(u64, u64)], size: u64) -> Handler {
    let ctype = req.response_header("Content-Type").map(<[u8]>::to_vec).unwrap_or_default();
    // A boundary that cannot occur in the file by accident: derived from the file's identity
    // and the time, in hex.
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ size.rotate_left(17);
    let boundary = format!("featherd-{seed:016x}");
    let part_head = |start: u64, end: u64| {
        let mut h = format!("\r\n--{boundary}\r\n").into_bytes();
        if !ctype.is_empty() {
            h.extend_from_slice(b"Content-Type: ");
            h.extend_from_slice(&ctype);
            h.extend_from_slice(b"\r\n");
        }
        h.extend_from_slice(format!("Content-Range: bytes {start}-{end}/{size}\r\n\r\n").as_bytes());
        h
    };
    let tail = format!("\r\n--{boundary}--\r\n");
    let total: u64 = ranges.iter().map(|&(a, b)| part_head(a, b).len() as u64 + (b - a + 1)).sum::<u64>()
        + tail.len() as u64;
    req.set_status(206);
    req.set_response_header("Accept-Ranges", "bytes");
    req.set_response_header("Content-Type", format!("multipart/byteranges; boundary={boundary}"));
    req.set_content_length(total);
    for &(a, b) in ranges {
        req.append_body(&part_head(a, b));
        let f = match &file {
            Some(f) => match f.try_clone() {
                Ok(c) => Some(c),
                Err(e) => {
                    log::error!("cannot duplicate the file descriptor: {e}");
                    return Handler::Error;
                }
            },
            None => None,
        };
        if queue(req, f, a, b - a + 1) != Handler::Finished {
            return Handler::Error;
        }
    }
    req.append_body(tail.as_bytes());
    Handler::Finished
}

/// Open the file and describe what was opened (the file may have been replaced since the
/// stat: size and validators must match the bytes sent).
fn open(req: &mut Request<StaticFile>, path: &[u8]) -> Result<(FileStamp, Option<File>), Handler> {
    let file = match File::open(OsStr::from_bytes(path)) {
        Ok(f) => f,
        Err(e) => {
            // The stat said "regular file" a moment ago: the file went away or is unreadable.
            let status = if e.kind() == ErrorKind::NotFound { 404 } else { 403 };
            log::debug!("open {} failed: {e}", String::from_utf8_lossy(path));
            req.set_status(status);
            return Err(Handler::Finished);
        }
    };
    match file.metadata() {
        Ok(m) if m.is_file() => Ok((
            FileStamp { inode: m.ino(), size: m.len(), mtime: m.mtime(), mtime_nsec: m.mtime_nsec() },
            Some(file),
        )),
        _ => {
            req.set_status(403);
            Err(Handler::Finished)
        }
    }
}

fn queue(req: &mut Request<StaticFile>, file: Option<File>, offset: u64, len: u64) -> Handler {
    let queued = match file {
        Some(f) => req.append_file(f, offset, len),
        None => req.append_physical(offset, len),
    };
    if queued {
        Handler::Finished
    } else {
        log::error!("could not queue the file as response body");
        Handler::Error
    }
}

featherd_mod_api::export_module!(StaticFile);
