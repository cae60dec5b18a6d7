//! One HTTP request as the hook chain sees it: the parsed head, the URL after normalisation,
//! paths, environment, the response being built, module slots and the evaluated conditions.
//! A `*mut Request` is what modules receive as `fd_request`. Requests are pooled per worker
//! and reused, so their buffers stop allocating once warm.

use crate::chunk::ChunkQueue;
use crate::conf::CoreConf;
use crate::config::{CondField, Evaluation, RequestFacts};
use crate::host::Loaded;
use crate::http::headers::HeaderList;
use crate::http::parse::Head;
use featherd_mod_api::abi::FileInfo;
use std::ffi::c_void;
use std::net::IpAddr;
use std::sync::Arc;

/// Where the request is in the hook chain (so a suspended hook resumes at the same place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Start,
    UriRaw,
    UriClean,
    Docroot,
    Physical,
    SubrequestStart,
    Subrequest,
    Respond,
}

#[derive(Clone, Copy, Debug)]
pub enum FileState {
    Unknown,
    Missing,
    Found(FileInfo),
}

/// Per-connection facts copied into each request.
#[derive(Clone, Default)]
pub struct Peer {
    pub remote_addr: String,
    pub remote_ip: Option<IpAddr>,
    pub remote_port: u16,
    /// Shared with the listener when it is bound to one address.
    pub local_addr: Arc<str>,
    /// The listener's name as the config wrote it, for `$SERVER["socket"]`.
    pub server_socket: Arc<str>,
    pub scheme: &'static str,
}

impl Peer {
    pub fn set_remote(&mut self, ip: IpAddr, port: u16) {
        let ip = ip.to_canonical();
        self.remote_addr = ip.to_string();
        self.remote_ip = Some(ip);
        self.remote_port = port;
    }
}

/// The matched blocks that set one of `owner`'s keys for a connection outside any request:
/// conditions on the connection (socket, remote address, scheme) evaluated, the others
/// compared with an empty value.
pub fn connection_config_blocks(loaded: &Loaded, peer: &Peer, owner: usize) -> Vec<u32> {
    let blocks = loaded.owner_blocks.get(owner).map(|v| v.as_slice()).unwrap_or(&[]);
    if blocks.is_empty() {
        return Vec::new();
    }
    let eval = Evaluation::evaluate(&loaded.cfg, &ConnFacts { peer });
    blocks.iter().copied().filter(|&b| eval.matched(b as usize)).collect()
}

struct ConnFacts<'a> {
    peer: &'a Peer,
}

impl RequestFacts for ConnFacts<'_> {
    fn field(&self, field: &CondField) -> Option<&str> {
        match field {
            CondField::RemoteIp => Some(&self.peer.remote_addr),
            CondField::Scheme => Some(self.peer.scheme),
            CondField::ServerSocket => Some(&self.peer.server_socket),
            _ => None,
        }
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        self.peer.remote_ip
    }
}

pub struct Request {
    pub loaded: Arc<Loaded>,
    pub id: u64,
    pub head: Head,
    /// The target as received, kept by the first `request_set_target` (empty until then).
    pub target_orig: Vec<u8>,
    pub path: Vec<u8>,
    pub query: Option<Vec<u8>>,
    /// Shared with the connection (one allocation per connection, not per request); a module
    /// that changes the remote address or scheme of this request only gets it a copy.
    pub peer: Arc<Peer>,
    /// The connection the request is on (set when it is attached to one; null in the pool).
    pub conn: *mut crate::worker::ConnInfo,
    pub docroot: Vec<u8>,
    pub physical: Vec<u8>,
    pub path_info: Vec<u8>,
    pub file: FileState,
    pub env: HeaderList,
    pub eval: Option<Evaluation>,
    /// Core settings for this request: a block's precomputed settings or a merge.
    pub core_block: usize,
    pub core_owned: Option<Box<CoreConf>>,

    pub phase: Phase,
    /// Position in the current chain (to resume the module that suspended).
    pub chain_pos: usize,
    pub comebacks: u32,
    /// The error status an error handler (`server.error-handler[-404]`) is answering for;
    /// 0 when none runs.
    pub error_status: u16,
    pub handler: Option<usize>,
    pub slots: Vec<*mut c_void>,

    /// The request body as it arrives (see [`crate::body`]).
    pub body_in: crate::body::BodyIn,
    /// The handler asked for body bytes that had not arrived: wake it when they do.
    pub body_wanted: bool,

    // response
    pub status: u16,
    pub resp_headers: HeaderList,
    pub body: ChunkQueue,
    pub content_length: Option<u64>,
    pub body_finished: bool,
    /// Headers went out; the body streams.
    pub head_sent: bool,
    pub high_water: u64,
    /// Bytes of this response framed for the socket and not yet written (set by the worker).
    pub out_pending: u64,

    pub bytes_in: u64,
    pub bytes_out: u64,
    /// How much of `bytes_in` / `bytes_out` the worker's counters have (see
    /// [`crate::stats`]).
    pub counted_in: u64,
    pub counted_out: u64,
    /// Length of the response head (status line and headers).
    pub head_len: u64,
    pub start_us: u64,
    /// Scratch for values the host returns as strings it computes (valid until next call).
    pub scratch: Vec<u8>,
}

impl Request {
    pub fn new(loaded: Arc<Loaded>) -> Request {
        let n = loaded.modules.len();
        Request {
            loaded,
            id: 0,
            head: Head::default(),
            target_orig: Vec::new(),
            path: Vec::new(),
            query: None,
            peer: Arc::default(),
            conn: std::ptr::null_mut(),
            docroot: Vec::new(),
            physical: Vec::new(),
            path_info: Vec::new(),
            file: FileState::Unknown,
            env: HeaderList::default(),
            eval: None,
            core_block: 0,
            core_owned: None,
            phase: Phase::Start,
            chain_pos: 0,
            comebacks: 0,
            error_status: 0,
            handler: None,
            slots: vec![std::ptr::null_mut(); n],
            body_in: Default::default(),
            body_wanted: false,
            status: 0,
            resp_headers: HeaderList::default(),
            body: ChunkQueue::default(),
            content_length: None,
            body_finished: false,
            head_sent: false,
            high_water: 256 * 1024,
            out_pending: 0,
            bytes_in: 0,
            bytes_out: 0,
            counted_in: 0,
            counted_out: 0,
            head_len: 0,
            start_us: 0,
            scratch: Vec::new(),
        }
    }

    /// Forget the previous request (keeping buffers).
    pub fn reset(&mut self) {
        self.conn = std::ptr::null_mut();
        self.target_orig.clear();
        self.path.clear();
        self.query = None;
        self.docroot.clear();
        self.physical.clear();
        self.path_info.clear();
        self.file = FileState::Unknown;
        self.env.clear();
        self.core_block = 0;
        self.core_owned = None;
        self.phase = Phase::Start;
        self.chain_pos = 0;
        self.comebacks = 0;
        self.error_status = 0;
        self.handler = None;
        for s in self.slots.iter_mut() {
            *s = std::ptr::null_mut();
        }
        self.body_in.reset();
        self.body_wanted = false;
        self.status = 0;
        self.resp_headers.clear();
        self.body.clear();
        self.content_length = None;
        self.body_finished = false;
        self.head_sent = false;
        self.out_pending = 0;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.counted_in = 0;
        self.counted_out = 0;
        self.head_len = 0;
        self.head.headers.shrink(16 * 1024);
        self.resp_headers.shrink(16 * 1024);
    }

    /// For a request kept beyond the first few in the pool: no buffer over 4 KiB, so that a
    /// burst of large requests does not pin much memory for long.
    pub fn trim(&mut self) {
        self.head.headers.shrink(4096);
        self.resp_headers.shrink(4096);
        for b in [
            &mut self.target_orig,
            &mut self.path,
            &mut self.docroot,
            &mut self.physical,
            &mut self.path_info,
        ] {
            if b.capacity() > 4096 {
                *b = Vec::new();
            }
        }
    }

    /// Drop whatever response a handler started (before the head went out), keeping the
    /// parsed request: for an error answer in its place.
    pub fn reset_response(&mut self) {
        self.status = 0;
        self.resp_headers.clear();
        self.body.clear();
        self.content_length = None;
        self.body_finished = false;
        self.handler = None;
        for s in self.slots.iter_mut() {
            *s = std::ptr::null_mut();
        }
    }

    pub fn core(&self) -> &CoreConf {
        match &self.core_owned {
            Some(c) => c,
            None => &self.loaded.core_base[self.core_block],
        }
    }

    /// Evaluate the conditions and pick the core settings for this request.
    /// Whether the response turns the connection into a raw tunnel: 101 Switching Protocols,
    /// or a 2xx answer to CONNECT.
    pub fn is_tunnel(&self) -> bool {
        self.status == 101 || (self.head.method == b"CONNECT" && (200..300).contains(&self.status))
    }

    pub fn evaluate(&mut self) {
        let facts = Facts { req: self };
        let eval = Evaluation::evaluate(&self.loaded.cfg, &facts);
        self.eval = Some(eval);
        self.core_owned = None;
        self.core_block = 0;
        let list: Vec<u32> =
            self.loaded.owner_blocks[0].iter().copied().filter(|&b| self.matched(b)).collect();
        let Some(&last) = list.last() else { return };
        if list[..list.len() - 1].iter().all(|&a| self.loaded.is_ancestor(a, last)) {
            self.core_block = last as usize;
            return;
        }
        let mut c = self.loaded.core_base[0].clone();
        for b in list {
            for s in &self.loaded.cfg.blocks[b as usize].settings {
                c.apply(&s.key, &s.value);
            }
        }
        self.core_owned = Some(Box::new(c));
    }

    /// A module changed what the client is (a trusted proxy's report): this request's remote
    /// address and port. Conditions are evaluated again when some condition tests the address.
    pub fn set_remote(&mut self, ip: IpAddr, port: u16) {
        let ip = ip.to_canonical();
        if self.peer.remote_ip == Some(ip) && self.peer.remote_port == port {
            return;
        }
        let mut p = Peer::clone(&self.peer);
        p.set_remote(ip, port);
        self.peer = Arc::new(p);
        if self.loaded.cond_use.remote_ip {
            self.reevaluate();
        }
    }

    /// As [`Request::set_remote`], for the scheme ("http" or "https").
    pub fn set_scheme(&mut self, scheme: &'static str) {
        if self.peer.scheme == scheme {
            return;
        }
        let mut p = Peer::clone(&self.peer);
        p.scheme = scheme;
        self.peer = Arc::new(p);
        if self.loaded.cond_use.scheme {
            self.reevaluate();
        }
    }

    /// As [`Request::set_remote`], for the host: `host[:port]`, checked as a Host header is.
    /// False (and nothing changed) when it is not a valid host.
    pub fn set_host(&mut self, value: &[u8]) -> bool {
        let mut head = Head::default();
        if value.is_empty() || !crate::http::parse::set_host(&mut head, value) {
            return false;
        }
        if head.host == self.head.host && head.host_port == self.head.host_port {
            return true;
        }
        self.head.host = head.host;
        self.head.host_port = head.host_port;
        self.head.headers.set(b"Host", &value.to_ascii_lowercase());
        if self.loaded.cond_use.host {
            self.reevaluate();
        }
        true
    }

    /// Evaluate again after a module changed a fact that conditions test (only once the
    /// request has been evaluated: before, the first evaluation will see it).
    fn reevaluate(&mut self) {
        if self.eval.is_some() {
            self.evaluate();
        }
    }

    /// The matched blocks that set one of `owner`'s keys (0 = core, i+1 = module i).
    pub fn config_blocks(&self, owner: usize) -> impl Iterator<Item = u32> + '_ {
        self.loaded
            .owner_blocks
            .get(owner)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
            .iter()
            .copied()
            .filter(|&b| self.matched(b))
    }

    pub fn matched(&self, block: u32) -> bool {
        block == 0 || self.eval.as_ref().is_some_and(|e| e.matched(block as usize))
    }
}

struct Facts<'a> {
    req: &'a Request,
}

fn utf8(b: &[u8]) -> Option<&str> {
    std::str::from_utf8(b).ok()
}

impl RequestFacts for Facts<'_> {
    fn field(&self, field: &CondField) -> Option<&str> {
        let r = self.req;
        let h = |n: &[u8]| r.head.headers.get(n).and_then(utf8);
        match field {
            CondField::Host => utf8(&r.head.host),
            CondField::Url => utf8(&r.path),
            CondField::QueryString => Some(r.query.as_deref().and_then(utf8).unwrap_or("")),
            CondField::RemoteIp => Some(&r.peer.remote_addr),
            CondField::Scheme => Some(r.peer.scheme),
            CondField::RequestMethod => utf8(&r.head.method),
            CondField::UserAgent => h(b"user-agent"),
            CondField::Referer => h(b"referer"),
            CondField::Cookie => h(b"cookie"),
            CondField::Language => h(b"accept-language"),
            CondField::RequestHeader(name) => h(name.as_bytes()),
            CondField::ServerSocket => Some(&r.peer.server_socket),
            CondField::PhysicalPath | CondField::PhysicalExistingPath => utf8(&r.physical),
        }
    }

    fn remote_ip(&self) -> Option<IpAddr> {
        self.req.peer.remote_ip
    }

    fn host_port(&self) -> Option<u16> {
        let r = self.req;
        let default = if r.peer.scheme == "https" { 443 } else { 80 };
        r.head.host_port.filter(|&p| p != default && !r.head.host.is_empty())
    }
}

// SAFETY: the slot pointers are opaque module state that only the owning module dereferences,
// on the worker thread that owns the request. Requests never cross threads while in use: a
// worker (with its empty request pool) moves to its thread once, before any request exists.
unsafe impl Send for Request {}
