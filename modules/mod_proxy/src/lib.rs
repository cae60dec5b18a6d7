//! mod_proxy: an HTTP reverse proxy in lighttpd 1.4's manner (`proxy.server`, `proxy.balance`,
//! `proxy.header`, `proxy.forwarded`, `proxy.replace-http-host`).
//!
//! Data in: the request (method, target, headers, body via `read_body`), this module's
//! configuration for the request, and the backend's HTTP/1.x response. Data out: the response
//! status, end-to-end headers (mapped back per `proxy.header`) and the body streamed with
//! backpressure; 502 for a backend that fails or answers garbage, 503 when no host can be
//! connected, 504 when a backend stays silent past its read timeout.
//!
//! Hosts, mounts, balancing, disabling and non-blocking connects come from the shared gateway
//! layer ([`featherd_gateway::hosts`]); the HTTP exchange is [`http`] (pure) driven by
//! [`Exchange`] on the worker's event loop, with idle backend connections kept per worker in
//! [`pool`].

pub mod http;
pub mod pool;

use featherd_gateway::backend::balance_key;
use featherd_gateway::glue::GatewayConf;
use featherd_gateway::hosts::{self, Addr, Balance, Host, Lease, Mount, ParseOptions};
use featherd_mod_api::{
    register_fd, FdRegistration, Handler, Hooks, Key, Module, ModuleConfig, Request, RequestId, Value,
};
use http::{Dechunker, ForwardedOpts, Framing, HeadError, HeaderOpts, RemapCtx, RequestInfo};
use socket2::Socket;
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Read timeout when neither the host's `read-timeout` nor `proxy.read-timeout` says.
pub const DEFAULT_READ_TIMEOUT: u32 = 60;
/// Request bodies up to this size are kept while sent over a reused connection, so that the
/// request can be sent again on a fresh one if the backend had closed the idle connection.
const REPLAY_LIMIT: u64 = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// The core carries a tunnel after a 101: it sends the head without a body, keeps the
/// module's `Connection: upgrade`, hands the module the client's raw bytes through
/// `read_body` until the client closes, and writes the module's bytes unframed.
const CORE_CAN_TUNNEL: bool = true;

/// Configuration, merged per request.
#[derive(Clone)]
pub struct ProxyConfig {
    pub gw: GatewayConf,
    pub header: Arc<HeaderOpts>,
    pub forwarded: ForwardedOpts,
    pub replace_host: bool,
    /// `proxy.read-timeout` (seconds; 0 = none), used for hosts without `read-timeout`.
    pub read_timeout: u32,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            gw: GatewayConf::default(),
            header: Arc::default(),
            forwarded: ForwardedOpts::default(),
            replace_host: false,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }
}

const PARSE: ParseOptions = ParseOptions { extra: &[], require_addr: true, stats: "proxy" };

fn flag(v: &Value) -> Result<bool, String> {
    match (v.as_int(), v.as_bool()) {
        (Some(n), _) => Ok(n != 0),
        (None, Some(b)) => Ok(b),
        _ => Err("expected 1/0 or \"enable\"/\"disable\"".into()),
    }
}

fn parse_header(v: &Value) -> Result<HeaderOpts, String> {
    let mut h = HeaderOpts::default();
    for (k, val) in v.iter() {
        let Some(k) = k else { return Err("proxy.header: expected ( \"option\" => value )".into()) };
        let e = |m: String| format!("proxy.header \"{k}\": {m}");
        match k {
            "map-host-request" => h.map_host_request = val.to_str_map().map_err(e)?,
            "map-host-response" => h.map_host_response = val.to_str_map().map_err(e)?,
            "map-urlpath" => h.map_urlpath = val.to_str_map().map_err(e)?,
            "https-remap" => h.https_remap = flag(&val).map_err(e)?,
            "upgrade" => h.upgrade = flag(&val).map_err(e)?,
            "connect" => h.connect = flag(&val).map_err(e)?,
            "force-http10" => h.force_http10 = flag(&val).map_err(e)?,
            _ => return Err(format!("proxy.header: unknown option \"{k}\"")),
        }
    }
    Ok(h)
}

fn parse_forwarded(v: &Value) -> Result<ForwardedOpts, String> {
    let mut f = ForwardedOpts::default();
    for (k, val) in v.iter() {
        let Some(k) = k else { return Err("proxy.forwarded: expected ( \"for\" => 1, ... )".into()) };
        let on = flag(&val).map_err(|m| format!("proxy.forwarded \"{k}\": {m}"))?;
        match k {
            "for" => f.for_ = on,
            "proto" => f.proto = on,
            "host" => f.host = on,
            "by" => f.by = on,
            // lighttpd's remote_user needs mod_auth's REMOTE_USER; not sent (documented).
            "remote_user" => {}
            _ => return Err(format!("proxy.forwarded: unknown parameter \"{k}\" (for, proto, host, by)")),
        }
    }
    Ok(f)
}

impl ModuleConfig for ProxyConfig {
    const KEYS: &'static [Key] = &[
        Key::array("proxy.server"),
        Key::string("proxy.balance"),
        Key::any("proxy.debug"),
        Key::any("proxy.replace-http-host"),
        Key::array("proxy.forwarded"),
        Key::array("proxy.header"),
        Key::int("proxy.read-timeout"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.gw.set_server("proxy.server", v, &PARSE)?,
            1 => self.gw.set_balance(v)?,
            2 => self.gw.set_debug(v)?,
            3 => self.replace_host = flag(v)?,
            4 => self.forwarded = parse_forwarded(v)?,
            5 => self.header = Arc::new(parse_header(v)?),
            6 => {
                self.read_timeout =
                    u32::try_from(v.to_int()?).map_err(|_| "expected a non-negative number of seconds")?
            }
            _ => {}
        }
        Ok(())
    }
}

pub struct Proxy;

/// Per-request state: the exchange once the request is routed to a backend. Dropping it
/// (request reset, e.g. the client went away) closes the backend connection.
#[derive(Default)]
pub struct ProxyState {
    exchange: Option<Box<Exchange>>,
}

impl Module for Proxy {
    const NAME: &'static str = "mod_proxy";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "HTTP reverse proxy (proxy.server)";
    const HOOKS: Hooks = Hooks::URI_CLEAN.union(Hooks::SUBREQUEST);
    type Config = ProxyConfig;
    type RequestState = ProxyState;
    type ConnectionState = ();

    fn init() -> Self {
        hosts::forget_parsed();
        Proxy
    }

    fn set_defaults(&mut self, configs: &featherd_mod_api::Configs<ProxyConfig>) -> Result<(), String> {
        let h = |f: fn(&HeaderOpts) -> bool| configs.all().iter().any(|c| f(&c.header));
        if h(|o| o.upgrade) && !CORE_CAN_TUNNEL {
            log::warn!(
                "proxy.header \"upgrade\": the server cannot carry a tunnel yet; Upgrade requests are \
                 sent to the backend as plain HTTP requests"
            );
        }
        Ok(())
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        // A restart (rewrite, local redirect) routes afresh.
        req.state().exchange = None;
        if req.claimed_by_other() {
            return Handler::GoOn;
        }
        let conf = req.config();
        let connect = req.method() == b"CONNECT";
        if connect && !conf.header.connect {
            // Not ours to tunnel here: the core answers 405.
            return Handler::GoOn;
        }
        let Some(mounts) = conf.gw.mounts.as_ref() else { return Handler::GoOn };
        // A CONNECT has no path: the mount for "/" (or "") takes it.
        let path: &[u8] = if connect { b"/" } else { req.path() };
        let Some(mount) = mounts.find(path, &[]).cloned() else { return Handler::GoOn };
        // The backend decides what exists: no local file is needed (lighttpd claims here too).
        if !req.claim() {
            return Handler::GoOn;
        }
        let ex = Exchange::new(req, &conf, mount);
        req.state().exchange = Some(Box::new(ex));
        Handler::GoOn
    }

    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        let Some(mut ex) = req.state().exchange.take() else { return Handler::GoOn };
        let o = ex.step(req);
        let h = match o {
            Outcome::Wait => Handler::WaitForEvent,
            Outcome::Done => Handler::Finished,
            Outcome::Failed(status) => {
                req.set_status(status);
                Handler::Finished
            }
            Outcome::Abort => Handler::Error,
        };
        if o == Outcome::Wait {
            req.state().exchange = Some(ex);
        }
        h
    }
}

featherd_mod_api::export_module!(Proxy);

/// What the hook does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Wait,
    Done,
    /// Nothing was started for the client: answer with this status.
    Failed(u16),
    /// The response was started and cannot be completed: close the client connection.
    Abort,
}

/// The request body towards the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Sending,
    Done,
}

/// The response from the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resp {
    Head,
    Body(Framing),
    /// After a 101: bytes in both directions as they come.
    Tunnel,
    Complete,
}

/// The timeout timer, shared with its callback.
struct Clock {
    armed: Cell<bool>,
    alive: Cell<bool>,
}

/// One request's exchange with a backend.
pub struct Exchange {
    mount: Arc<Mount>,
    balance: Balance,
    key: Vec<u8>,
    header: Arc<HeaderOpts>,
    forwarded: ForwardedOpts,
    replace_host: bool,
    default_read_timeout: u32,
    debug: bool,
    tried: Vec<usize>,
    lease: Option<Lease>,
    // `reg` before `sock`: unregister before the fd closes.
    reg: Option<FdRegistration>,
    sock: Option<Socket>,
    connected: bool,
    /// The connection came from the pool (it may turn out to be closed by the backend).
    reused: bool,
    out: Vec<u8>,
    out_pos: usize,
    body: Body,
    body_chunked: bool,
    /// Body bytes sent so far, kept while a resend may be needed.
    replay: Option<Vec<u8>>,
    upgrade: Option<Vec<u8>>,
    /// A CONNECT tunnelled to the backend (`proxy.header "connect"`): no request is sent; once
    /// connected the client gets 200 and the bytes flow both ways.
    connect: bool,
    http10: bool,
    head_request: bool,
    /// Host header sent and the client's, for mapping response headers back.
    sent_host: String,
    client_host: String,
    client_https: bool,
    inbuf: Vec<u8>,
    resp: Resp,
    dechunk: Dechunker,
    left: u64,
    backend_keep_alive: bool,
    /// Backend bytes seen on this connection.
    got_bytes: bool,
    /// Status set on the client response (a failure now can only close).
    started: bool,
    /// Stopped reading the backend because the client's queue is full.
    paused: bool,
    last_progress: Instant,
    clock: Rc<Clock>,
    /// The pending timeout timer: cancelled when the exchange ends, so that finished requests
    /// do not leave timers behind for the length of a read timeout.
    timer: Option<featherd_mod_api::Timer>,
    scratch: Vec<u8>,
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.clock.alive.set(false);
        if let Some(t) = self.timer.take() {
            if self.clock.armed.get() {
                t.cancel();
            }
        }
        self.reg = None;
        self.sock = None;
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

impl Exchange {
    fn new(req: &Request<Proxy>, conf: &ProxyConfig, mount: Arc<Mount>) -> Exchange {
        let header = conf.header.clone();
        let http10 = header.force_http10;
        let upgrade = if header.upgrade && CORE_CAN_TUNNEL && !http10 {
            let wants = req.header("Connection").is_some_and(|c| has_token(c, b"upgrade"));
            req.header("Upgrade").filter(|_| wants).map(<[u8]>::to_vec)
        } else {
            None
        };
        let body_chunked = req.content_length().is_none()
            && req.header("Transfer-Encoding").is_some_and(|t| has_token(t, b"chunked"));
        Exchange {
            key: balance_key(req, conf.gw.balance),
            mount,
            balance: conf.gw.balance,
            header,
            forwarded: conf.forwarded,
            replace_host: conf.replace_host,
            default_read_timeout: conf.read_timeout,
            debug: conf.gw.debug,
            tried: vec![],
            lease: None,
            reg: None,
            sock: None,
            connected: false,
            reused: false,
            out: vec![],
            out_pos: 0,
            body: Body::Sending,
            body_chunked,
            replay: None,
            upgrade,
            connect: conf.header.connect && req.method() == b"CONNECT",
            http10,
            head_request: req.method() == b"HEAD",
            sent_host: String::new(),
            client_host: String::from_utf8_lossy(req.header("Host").unwrap_or(b"")).into_owned(),
            client_https: req.scheme() == b"https",
            inbuf: vec![],
            resp: Resp::Head,
            dechunk: Dechunker::default(),
            left: 0,
            backend_keep_alive: false,
            got_bytes: false,
            started: false,
            paused: false,
            last_progress: Instant::now(),
            clock: Rc::new(Clock { armed: Cell::new(false), alive: Cell::new(true) }),
            timer: None,
            scratch: vec![0; READ_CHUNK],
        }
    }

    fn host(&self) -> Option<Arc<Host>> {
        self.lease.as_ref().map(|l| l.host().clone())
    }

    fn close(&mut self) {
        self.reg = None;
        self.sock = None;
        self.connected = false;
    }

    /// The Host header for the backend: the backend's own address with replace-http-host,
    /// else the client's as mapped by map-host-request.
    fn backend_host(&self, host: &Host) -> String {
        if self.replace_host {
            let name = host.config.host.clone().unwrap_or_else(|| "localhost".into());
            return match &host.config.addr {
                Addr::Tcp(a) if a.port() != 80 => format!("{name}:{}", a.port()),
                _ => name,
            };
        }
        if self.client_host.is_empty() {
            return match &host.config.addr {
                Addr::Tcp(a) => a.to_string(),
                Addr::Unix(_) => "localhost".into(),
            };
        }
        if self.header.map_host_request.is_empty() {
            return self.client_host.clone();
        }
        http::map_host_request(&self.header.map_host_request, &self.client_host)
    }

    fn request_head(&mut self, req: &Request<Proxy>, host: &Host) -> Vec<u8> {
        self.sent_host = self.backend_host(host);
        let target = http::map_path_request(&self.header.map_urlpath, req.target());
        let remote = String::from_utf8_lossy(req.remote_addr()).into_owned();
        let hop = String::from_utf8_lossy(req.connection_remote_addr()).into_owned();
        let local = String::from_utf8_lossy(req.local_addr()).into_owned();
        let scheme = if self.client_https { "https" } else { "http" };
        let info = RequestInfo {
            method: req.method(),
            target: &target,
            host: &self.sent_host,
            client_host: req.header("Host").unwrap_or(b""),
            remote_addr: &remote,
            hop_addr: &hop,
            local_addr: &local,
            scheme,
            content_length: req.content_length().filter(|_| !self.body_chunked),
            chunked_body: self.body_chunked,
            upgrade: self.upgrade.as_deref(),
            http10: self.http10,
            forwarded: self.forwarded,
        };
        let headers: Vec<(&[u8], &[u8])> = req.headers().collect();
        http::build_request(&info, &headers)
    }

    /// Pick a host and get a connection to it (idle from the pool, or a new non-blocking
    /// connect), failing over while connects fail at once.
    fn start(&mut self, req: &mut Request<Proxy>) -> Result<(), Outcome> {
        let reusable = !self.http10
            && self.upgrade.is_none()
            && !self.connect
            && !self.body_chunked
            && req.content_length().unwrap_or(0) <= REPLAY_LIMIT;
        loop {
            let Some(host) = self.mount.pick(self.balance, &self.key, &self.tried) else {
                log::error!(
                    "all backends for \"{}\" are down or disabled (hosts: {}); answering 503 for {}",
                    self.mount.key,
                    self.mount.describe_hosts(),
                    String::from_utf8_lossy(req.target())
                );
                return Err(Outcome::Failed(503));
            };
            self.tried.push(host.index);
            let pooled = if reusable { pool::take(pool_key(&host)) } else { None };
            let reused = pooled.is_some();
            let sock = match pooled.map_or_else(|| hosts::connect(&host.config.addr), Ok) {
                Ok(s) => s,
                Err(e) => {
                    self.host_failed(&host, &e);
                    continue;
                }
            };
            self.attach(req, &host, sock, reused)?;
            self.lease = Some(host.lease());
            if reused {
                host.connected();
            }
            return Ok(());
        }
    }

    /// Use `sock` for the request: queue the head, watch the socket.
    fn attach(
        &mut self,
        req: &mut Request<Proxy>,
        host: &Arc<Host>,
        sock: Socket,
        reused: bool,
    ) -> Result<(), Outcome> {
        self.out = if self.connect { Vec::new() } else { self.request_head(req, host) };
        self.out_pos = 0;
        if let Some(r) = &self.replay {
            // A resend: the body read so far goes again.
            self.out.extend_from_slice(r);
        } else if reused && self.body == Body::Sending {
            self.replay = Some(Vec::new());
        }
        let id = req.id();
        let reg = register_fd(sock.as_raw_fd(), true, true, move |_, _| {
            id.wake();
        })
        .map_err(|e| {
            log::error!("cannot watch the backend socket: {e}");
            Outcome::Failed(500)
        })?;
        if self.debug {
            log::info!(
                "{} → {} ({}){}",
                String::from_utf8_lossy(req.target()),
                host.config.name,
                host.config.addr,
                if reused { " on a kept connection" } else { "" }
            );
        }
        self.reg = Some(reg);
        self.sock = Some(sock);
        self.connected = reused;
        self.reused = reused;
        self.got_bytes = false;
        self.inbuf.clear();
        self.last_progress = Instant::now();
        Ok(())
    }

    /// A kept connection turned out to be closed before it answered: send again on a new one
    /// to the same host.
    fn resend(&mut self, req: &mut Request<Proxy>) -> Result<(), Outcome> {
        let Some(host) = self.host() else { return Err(Outcome::Failed(502)) };
        self.close();
        if self.debug {
            log::info!("{}: kept connection was closed; sending again", host.config.name);
        }
        match hosts::connect(&host.config.addr) {
            Ok(s) => self.attach(req, &host, s, false),
            Err(e) => {
                self.host_failed(&host, &e);
                self.start(req)
            }
        }
    }

    fn host_failed(&mut self, host: &Arc<Host>, e: &io::Error) {
        log::error!(
            "connect to backend {} ({}) for \"{}\" failed: {e}; disabled for {} s",
            host.config.name,
            host.config.addr,
            self.mount.key,
            host.config.disable_time.max(1)
        );
        host.connect_failed(e);
        self.close();
        self.lease = None;
    }

    fn timeout(&self) -> Option<Duration> {
        // Waiting for the client (to drain the response, or to send more of its body) is not
        // the backend's delay.
        let awaiting_client_body =
            self.connected && self.body == Body::Sending && self.out_pos >= self.out.len();
        if self.paused || self.resp == Resp::Tunnel || awaiting_client_body {
            return None;
        }
        let c = &self.lease.as_ref()?.host().config;
        let secs = if !self.connected {
            c.connect_timeout
        } else if self.out_pos < self.out.len() {
            c.write_timeout
        } else if c.read_timeout > 0 {
            c.read_timeout
        } else {
            self.default_read_timeout
        };
        (secs > 0).then(|| Duration::from_secs(u64::from(secs)))
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout().map(|t| self.last_progress + t)
    }

    fn arm(&mut self, id: RequestId) {
        let Some(d) = self.deadline() else { return };
        if self.clock.armed.get() {
            return;
        }
        self.clock.armed.set(true);
        let c = self.clock.clone();
        let after = d.saturating_duration_since(Instant::now()).as_millis() as u64 + 1;
        let r = featherd_mod_api::timer(after, move || {
            c.armed.set(false);
            if c.alive.get() {
                id.wake();
            }
        });
        match r {
            Ok(t) => self.timer = Some(t),
            Err(_) => self.clock.armed.set(false),
        }
    }

    fn step(&mut self, req: &mut Request<Proxy>) -> Outcome {
        loop {
            let o = self.step_inner(req);
            if o != Outcome::Wait {
                self.finish(o);
                return o;
            }
            if self.deadline().is_some_and(|d| Instant::now() >= d) {
                let host = self.host();
                let name = host.as_ref().map(|h| h.config.name.clone()).unwrap_or_default();
                if !self.connected {
                    if let Some(h) = host {
                        self.host_failed(&h, &io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
                    }
                    continue;
                }
                log::error!(
                    "backend {name} did not answer {} in time",
                    String::from_utf8_lossy(req.target())
                );
                let o = if self.started { Outcome::Abort } else { Outcome::Failed(504) };
                self.finish(o);
                return o;
            }
            self.arm(req.id());
            return Outcome::Wait;
        }
    }

    /// The exchange is over: keep the connection for the next request when both sides
    /// allow it and nothing is left over, else close it.
    fn finish(&mut self, o: Outcome) {
        let reusable = o == Outcome::Done
            && self.resp == Resp::Complete
            && self.backend_keep_alive
            && self.body == Body::Done
            && self.out_pos >= self.out.len()
            && self.inbuf.is_empty()
            && !self.http10
            && self.upgrade.is_none()
            && !self.connect;
        self.reg = None;
        let sock = self.sock.take();
        if let (true, Some(s), Some(h)) = (reusable, sock, self.host()) {
            pool::put(pool_key(&h), s);
        }
    }

    fn step_inner(&mut self, req: &mut Request<Proxy>) -> Outcome {
        loop {
            if self.sock.is_none() {
                if let Err(o) = self.start(req) {
                    return o;
                }
            }
            if self.connected {
                break;
            }
            let Some(sock) = &self.sock else { continue };
            match hosts::connect_finished(sock) {
                Ok(()) => {
                    self.connected = true;
                    if let Some(h) = self.host() {
                        h.connected();
                    }
                    self.last_progress = Instant::now();
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Outcome::Wait,
                Err(e) => {
                    if let Some(h) = self.host() {
                        self.host_failed(&h, &e);
                    }
                }
            }
        }
        if self.connect && self.resp == Resp::Head {
            // The tunnel is open: tell the client, then relay.
            req.set_status(200);
            self.started = true;
            self.body = Body::Done;
            self.resp = Resp::Tunnel;
        }
        if let Err(e) = self.send(req) {
            // The backend stopped reading; what it answered (if anything) is read below.
            if self.debug {
                log::info!("sending to the backend stopped: {e}");
            }
            self.body = Body::Done;
            self.out.clear();
            self.out_pos = 0;
        }
        match self.receive(req) {
            Recv::Wait => Outcome::Wait,
            Recv::Done => Outcome::Done,
            Recv::Resend => match self.resend(req) {
                Ok(()) => self.step_inner(req),
                Err(o) => o,
            },
            Recv::Fail(status) => {
                if self.started {
                    Outcome::Abort
                } else {
                    Outcome::Failed(status)
                }
            }
        }
    }

    /// Write the queued request bytes, refilled from the client's body, until the socket is
    /// full, the body is complete, or the client has sent nothing more yet.
    fn send(&mut self, req: &mut Request<Proxy>) -> io::Result<()> {
        let Some(sock) = self.sock.as_ref() else { return Ok(()) };
        let mut sock: &Socket = sock;
        loop {
            while self.out_pos < self.out.len() {
                match sock.write(&self.out[self.out_pos..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.out_pos += n;
                        self.last_progress = Instant::now();
                    }
                    Err(e) if is_would_block(&e) => return Ok(()),
                    Err(e) => return Err(e),
                }
            }
            self.out.clear();
            self.out_pos = 0;
            if self.body == Body::Done && self.resp != Resp::Tunnel {
                return Ok(());
            }
            match req.read_body(&mut self.scratch) {
                Ok(0) => {
                    if self.resp == Resp::Tunnel || self.body == Body::Done {
                        return Ok(());
                    }
                    self.body = Body::Done;
                    self.replay = None;
                    if self.body_chunked && !self.http10 {
                        self.out.extend_from_slice(b"0\r\n\r\n");
                    }
                }
                Ok(n) => {
                    let data = &self.scratch[..n];
                    if self.body_chunked && !self.http10 && self.resp != Resp::Tunnel {
                        self.out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                        self.out.extend_from_slice(data);
                        self.out.extend_from_slice(b"\r\n");
                    } else {
                        self.out.extend_from_slice(data);
                    }
                    if let Some(r) = self.replay.as_mut() {
                        r.extend_from_slice(data);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// Read the backend: the head, then the body into the client's queue while it is below
    /// its high-water mark.
    fn receive(&mut self, req: &mut Request<Proxy>) -> Recv {
        if self.paused {
            // The time the client took to drain its queue is not the backend's.
            self.paused = false;
            self.last_progress = Instant::now();
        }
        loop {
            if !self.inbuf.is_empty() || self.resp == Resp::Complete {
                match self.process(req) {
                    Ok(true) => return Recv::Done,
                    Ok(false) => {}
                    Err(status) => return Recv::Fail(status),
                }
            }
            if matches!(self.resp, Resp::Body(_) | Resp::Tunnel) && req.pending() >= req.high_water() {
                self.paused = true;
                return Recv::Wait;
            }
            let Some(sock) = self.sock.as_ref() else { return Recv::Fail(502) };
            let mut sock: &Socket = sock;
            match sock.read(&mut self.scratch) {
                Ok(0) => return self.eof(req, None),
                Ok(n) => {
                    self.got_bytes = true;
                    self.last_progress = Instant::now();
                    if self.resp == Resp::Head || !self.inbuf.is_empty() {
                        self.inbuf.extend_from_slice(&self.scratch[..n]);
                    } else {
                        // Body bytes straight from the read buffer, without a copy to inbuf.
                        let data = std::mem::take(&mut self.scratch);
                        let r = self.body_bytes(req, &data[..n]);
                        self.scratch = data;
                        match r {
                            Ok(true) => return Recv::Done,
                            Ok(false) => {}
                            Err(status) => return Recv::Fail(status),
                        }
                    }
                }
                Err(e) if is_would_block(&e) => return Recv::Wait,
                Err(e) => return self.eof(req, Some(e)),
            }
        }
    }

    /// The backend closed (or reset) the connection.
    fn eof(&mut self, req: &Request<Proxy>, err: Option<io::Error>) -> Recv {
        let name = self.host().map(|h| h.config.name.clone()).unwrap_or_default();
        match self.resp {
            Resp::Head if self.reused && !self.got_bytes => Recv::Resend,
            Resp::Head => {
                log::error!(
                    "backend {name} closed the connection without a complete response to {}{}",
                    String::from_utf8_lossy(req.target()),
                    err.map(|e| format!(": {e}")).unwrap_or_default()
                );
                Recv::Fail(502)
            }
            Resp::Body(Framing::Close) | Resp::Tunnel if err.is_none() => {
                self.backend_keep_alive = false;
                self.resp = Resp::Complete;
                Recv::Done
            }
            Resp::Complete => Recv::Done,
            _ => {
                log::error!(
                    "backend {name} cut the response to {} short{}",
                    String::from_utf8_lossy(req.target()),
                    err.map(|e| format!(": {e}")).unwrap_or_default()
                );
                Recv::Fail(502)
            }
        }
    }

    /// Use what is in `inbuf`. Ok(true): the response is complete.
    fn process(&mut self, req: &mut Request<Proxy>) -> Result<bool, u16> {
        loop {
            match self.resp {
                Resp::Head => {
                    let h = match http::parse_response(&self.inbuf, self.head_request) {
                        Ok(h) => h,
                        Err(HeadError::Partial) => {
                            if self.inbuf.len() > 64 * 1024 {
                                log::error!("backend response head over 64 KiB");
                                return Err(502);
                            }
                            return Ok(false);
                        }
                        Err(HeadError::Invalid) => {
                            log::error!(
                                "backend sent an invalid response head for {}",
                                String::from_utf8_lossy(req.target())
                            );
                            return Err(502);
                        }
                    };
                    self.inbuf.drain(..h.len);
                    if (100..200).contains(&h.status) && h.status != 101 {
                        // Interim responses (100 Continue, 103) are the backend's business.
                        continue;
                    }
                    if h.status == 101 && self.upgrade.is_none() {
                        log::error!("backend switched protocols without being asked");
                        return Err(502);
                    }
                    self.apply_head(req, &h);
                }
                Resp::Body(_) => {
                    if self.inbuf.is_empty() {
                        return Ok(false);
                    }
                    let data = std::mem::take(&mut self.inbuf);
                    return self.body_bytes(req, &data);
                }
                Resp::Tunnel => {
                    if !self.inbuf.is_empty() {
                        req.append_body(&self.inbuf);
                        self.inbuf.clear();
                    }
                    return Ok(false);
                }
                Resp::Complete => return Ok(true),
            }
        }
    }

    fn apply_head(&mut self, req: &mut Request<Proxy>, h: &http::ResponseHead) {
        req.set_status(h.status);
        self.started = true;
        let ctx = RemapCtx {
            opts: &self.header,
            sent_host: &self.sent_host,
            client_host: &self.client_host,
            client_https: self.client_https,
        };
        let remap = !self.header.map_host_response.is_empty()
            || !self.header.map_urlpath.is_empty()
            || (self.header.https_remap && self.client_https);
        for (n, v) in &h.headers {
            let mapped = if !remap {
                None
            } else if n.eq_ignore_ascii_case("location") || n.eq_ignore_ascii_case("content-location") {
                http::remap_location(&ctx, v)
            } else if n.eq_ignore_ascii_case("set-cookie") {
                http::remap_set_cookie(&ctx, v)
            } else {
                None
            };
            req.append_response_header(n, mapped.as_deref().unwrap_or(v));
        }
        self.backend_keep_alive = h.keep_alive;
        if self.upgrade.is_some() && h.status == 101 {
            req.set_response_header("Upgrade", self.upgrade.clone().unwrap_or_default());
            req.set_response_header("Connection", "upgrade");
            self.resp = Resp::Tunnel;
            return;
        }
        // A backend that refused the upgrade answers normally: the connection is plain HTTP.
        self.upgrade = None;
        match h.framing {
            Framing::None => {
                if let (true, Some(l)) = (self.head_request, h.content_length) {
                    req.set_content_length(l);
                }
                self.resp = Resp::Complete;
            }
            Framing::Length(l) => {
                req.set_content_length(l);
                self.left = l;
                self.resp = if l == 0 { Resp::Complete } else { Resp::Body(Framing::Length(l)) };
            }
            f => self.resp = Resp::Body(f),
        }
    }

    /// Body bytes from the backend. Ok(true): the response is complete.
    fn body_bytes(&mut self, req: &mut Request<Proxy>, data: &[u8]) -> Result<bool, u16> {
        match self.resp {
            Resp::Body(Framing::Length(_)) => {
                let n = (data.len() as u64).min(self.left) as usize;
                req.append_body(&data[..n]);
                self.left -= n as u64;
                if n < data.len() {
                    // More than announced: the connection cannot be trusted for another request.
                    self.backend_keep_alive = false;
                }
                if self.left == 0 {
                    self.resp = Resp::Complete;
                    return Ok(true);
                }
                Ok(false)
            }
            Resp::Body(Framing::Chunked) => {
                let mut out = Vec::with_capacity(data.len());
                let used = self.dechunk.feed(data, &mut out).map_err(|_| {
                    log::error!(
                        "backend sent a broken chunked body for {}",
                        String::from_utf8_lossy(req.target())
                    );
                    502u16
                })?;
                if !out.is_empty() {
                    req.append_body(&out);
                }
                let rest = &data[used..];
                if self.dechunk.done {
                    if !rest.is_empty() {
                        self.backend_keep_alive = false;
                    }
                    self.resp = Resp::Complete;
                    return Ok(true);
                }
                self.inbuf.extend_from_slice(rest);
                Ok(false)
            }
            Resp::Body(_) | Resp::Tunnel => {
                req.append_body(data);
                Ok(false)
            }
            Resp::Complete => Ok(true),
            Resp::Head => {
                self.inbuf.extend_from_slice(data);
                self.process(req)
            }
        }
    }
}

enum Recv {
    Wait,
    Done,
    /// A kept connection was closed by the backend before answering.
    Resend,
    Fail(u16),
}

fn pool_key(h: &Arc<Host>) -> usize {
    Arc::as_ptr(h) as usize
}
