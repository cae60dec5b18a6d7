//! One request's exchange with a backend, on the worker's event loop: pick a host, connect
//! without blocking (failing over to the next host), send the request in the backend's
//! [`Protocol`], read the response, apply its CGI-style head and stream its body with
//! backpressure. Shared by mod_fastcgi and mod_scgi (SCGI and uwsgi).
//!
//! The module keeps an [`Exchange`] in its request state and calls [`Exchange::step`] from its
//! hook each time it runs; every call does all the I/O that is possible without blocking
//! (read and write until WouldBlock, as the poller is edge-triggered) and says what the hook
//! should return ([`Outcome::handler`]). Dropping the exchange (request reset, e.g. the
//! client went away) unregisters and closes the backend connection.

use crate::cgi_head::{self, CgiHead, HeadParse};
use crate::env::{self, Env, EnvOptions};
use crate::hosts::{self, Balance, Host, Lease, Mode, Mount, MountKind};
use featherd_mod_api::{register_fd, FdRegistration, Handler, Module, Request, RequestId};
use socket2::Socket;
use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A backend wire protocol.
pub trait Protocol {
    /// Append the start of the request (with its environment) to `out`. `mode` is the host's.
    /// Err: the request cannot be expressed (e.g. a uwsgi header over 64 KiB).
    fn request_head(&mut self, env: &Env, mode: Mode, out: &mut Vec<u8>) -> Result<(), String>;
    /// Append request body bytes.
    fn request_body(&mut self, data: &[u8], out: &mut Vec<u8>);
    /// Append the end of the request body.
    fn request_end(&mut self, out: &mut Vec<u8>);
    /// Decode what the backend sent so far: consume complete units from `input`, append the
    /// response stream to `stdout` and error text to `stderr`. Ok(true) once the response is
    /// complete; Err when the backend speaks garbage.
    fn response(
        &mut self,
        input: &mut Vec<u8>,
        stdout: &mut Vec<u8>,
        stderr: &mut Vec<u8>,
    ) -> Result<bool, String>;
    /// Whether the backend's EOF ends the response normally (SCGI, uwsgi) rather than cutting
    /// it short (FastCGI ends with END_REQUEST).
    fn eof_ends_response(&self) -> bool;
    /// Whether the body can be sent when the request has no Content-Length (SCGI and uwsgi
    /// announce the length first).
    fn streams_unknown_length(&self) -> bool {
        true
    }
}

/// What the hook should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Suspended: the backend or the client will wake the request.
    Wait,
    /// The response is complete.
    Done,
    /// No response was started: answer with this status (502, 503, 504).
    Failed(u16),
    /// The response head went out and the backend failed: cut the connection.
    Cut,
    /// A local redirect: the target was rewritten, restart the request.
    Redirect,
    /// An authorizer allowed the request: go on with the next handler.
    Authorized,
}

impl Outcome {
    /// The hook result for this outcome (after setting the status for `Failed`).
    pub fn handler<M: Module>(self, req: &mut Request<M>) -> Handler {
        match self {
            Outcome::Wait => Handler::WaitForEvent,
            Outcome::Done => Handler::Finished,
            Outcome::Failed(s) => {
                req.set_status(s);
                Handler::Finished
            }
            Outcome::Cut => Handler::Error,
            Outcome::Redirect => Handler::Comeback,
            Outcome::Authorized => Handler::GoOn,
        }
    }
}

/// The shared deadline of an exchange, checked by a worker timer.
struct Clock {
    deadline: Cell<Option<Instant>>,
    expired: Cell<bool>,
    armed: Cell<bool>,
    alive: Cell<bool>,
}

fn schedule(clock: Rc<Clock>, id: RequestId, after: Duration) {
    clock.armed.set(true);
    let c = clock.clone();
    let r = featherd_mod_api::timer(after.as_millis() as u64 + 1, move || {
        c.armed.set(false);
        if !c.alive.get() {
            return;
        }
        let Some(d) = c.deadline.get() else { return };
        let now = Instant::now();
        if now >= d {
            c.expired.set(true);
            id.wake();
        } else {
            schedule(c.clone(), id, d - now);
        }
    });
    if r.is_err() {
        clock.armed.set(false);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Still reading the client's body into the request.
    Sending,
    Done,
}

/// Why the backend connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    No,
    Eof,
    Error,
}

/// One request's exchange with a backend (see the module docs).
pub struct Exchange<P: Protocol> {
    mount: Arc<Mount>,
    balance: Balance,
    /// What hash/sticky balancing hashes.
    key: Vec<u8>,
    proto: P,
    tried: Vec<usize>,
    lease: Option<Lease>,
    // `reg` before `sock`: fields drop in order, and the fd must be unregistered before it
    // is closed.
    reg: Option<FdRegistration>,
    sock: Option<Socket>,
    /// Readiness reported by the poller since we last drained the socket ([`READY_IN`],
    /// [`READY_OUT`]): reads and writes are tried only when they can make progress.
    ready: Rc<Cell<u8>>,
    /// Whether the registration asks for writability (only while a write or connect waits).
    write_interest: bool,
    connected: bool,
    out: Vec<u8>,
    out_pos: usize,
    body: Body,
    send_body: bool,
    inbuf: Vec<u8>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    head_done: bool,
    complete: bool,
    clock: Rc<Clock>,
    last_progress: Instant,
    debug: bool,
}

impl<P: Protocol> Drop for Exchange<P> {
    fn drop(&mut self) {
        self.clock.alive.set(false);
        self.release_socket();
    }
}

const READ_CHUNK: usize = 64 * 1024;
const READY_IN: u8 = 1;
const READY_OUT: u8 = 2;
/// The backend closed or failed: read to the end (a short read no longer means drained, the
/// EOF may already be queued behind the data and raises no new edge).
const READY_HUP: u8 = 4;

thread_local! {
    /// The worker's buffer for socket and body reads (allocated once, not per request).
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Run `f` with the worker's read buffer (a fresh one if it is in use further up the stack).
fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut v = cell.take();
        if v.len() < READ_CHUNK {
            v = vec![0; READ_CHUNK];
        }
        let r = f(&mut v);
        cell.set(v);
        r
    })
}

/// Whether the request has a body to forward: a non-zero Content-Length, or chunked.
fn has_body<M: Module>(req: &Request<M>) -> bool {
    match req.content_length() {
        Some(n) => n > 0,
        None => req.header("Transfer-Encoding").is_some(),
    }
}

impl<P: Protocol> Exchange<P> {
    /// An exchange for a request routed to `mount`. `key` feeds hash/sticky balancing (see
    /// [`balance_key`]).
    pub fn new(mount: Arc<Mount>, balance: Balance, key: Vec<u8>, proto: P, debug: bool) -> Self {
        Exchange {
            mount,
            balance,
            key,
            proto,
            tried: vec![],
            lease: None,
            reg: None,
            sock: None,
            ready: Rc::new(Cell::new(0)),
            write_interest: false,
            connected: false,
            out: vec![],
            out_pos: 0,
            body: Body::Sending,
            send_body: true,
            inbuf: vec![],
            stdout: vec![],
            stderr: vec![],
            head_done: false,
            complete: false,
            clock: Rc::new(Clock {
                deadline: Cell::new(None),
                expired: Cell::new(false),
                armed: Cell::new(false),
                alive: Cell::new(true),
            }),
            last_progress: Instant::now(),
            debug,
        }
    }

    /// The host serving this request (once one was picked).
    pub fn host(&self) -> Option<&Arc<Host>> {
        self.lease.as_ref().map(Lease::host)
    }

    pub fn mount(&self) -> &Arc<Mount> {
        &self.mount
    }

    /// Release the backend connection now (the response no longer needs it).
    fn close(&mut self) {
        self.release_socket();
        self.clock.deadline.set(None);
    }

    /// Unregister and close the backend socket (one close: no separate unregistration).
    fn release_socket(&mut self) {
        match (self.reg.take(), self.sock.take()) {
            (Some(reg), Some(sock)) => reg.close(sock.into()),
            (reg, sock) => {
                drop(reg);
                drop(sock);
            }
        }
    }

    /// Pick a host and start connecting, failing over while connects fail at once.
    fn start<M: Module>(&mut self, req: &mut Request<M>) -> Result<(), Outcome> {
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
            let (sock, connected_now) = match hosts::connect_now(&host.config.addr) {
                Ok(s) => s,
                Err(e) => {
                    self.host_failed(&host, &e);
                    continue;
                }
            };
            let env = self.environment(req, &host);
            self.out.clear();
            self.out_pos = 0;
            let mode = host.config.mode;
            let head = self.proto.request_head(&env, mode, &mut self.out);
            env.recycle();
            if let Err(e) = head {
                log::error!(
                    "{}: cannot send {}: {e}",
                    host.config.name,
                    String::from_utf8_lossy(req.target())
                );
                return Err(Outcome::Failed(500));
            }
            // An authorizer is asked about the request, not sent its body.
            self.send_body = mode == Mode::Responder
                && has_body(req)
                && (req.content_length().is_some() || self.proto.streams_unknown_length());
            if !self.send_body {
                // Head and end go out in one write.
                self.proto.request_end(&mut self.out);
                self.body = Body::Done;
            }
            let id = req.id();
            // Edge-triggered: the socket is registered before anything is sent, so every byte
            // the backend sends later raises an event. Writability is asked for only while a
            // connect or a write waits (a fresh socket is writable at once: a wasted wake-up).
            let ready = Rc::new(Cell::new(0u8));
            let flags = ready.clone();
            let reg = match register_fd(sock.as_raw_fd(), true, !connected_now, move |_, ev| {
                let mut f = flags.get();
                if ev.readable() || ev.hup() || ev.error() {
                    f |= READY_IN;
                }
                if ev.hup() || ev.error() {
                    f |= READY_HUP;
                }
                if ev.writable() {
                    f |= READY_OUT;
                }
                flags.set(f);
                id.wake();
            }) {
                Ok(r) => r,
                Err(e) => {
                    log::error!("cannot watch the backend socket: {e}");
                    return Err(Outcome::Failed(500));
                }
            };
            if self.debug {
                log::info!(
                    "{} → {} ({})",
                    String::from_utf8_lossy(req.target()),
                    host.config.name,
                    host.config.addr
                );
            }
            self.reg = Some(reg);
            self.sock = Some(sock);
            self.ready = ready;
            self.write_interest = !connected_now;
            self.connected = connected_now;
            self.lease = Some(host.lease());
            if connected_now {
                host.connected();
            }
            self.last_progress = Instant::now();
            return Ok(());
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

    fn environment<M: Module>(&self, req: &Request<M>, host: &Host) -> Env {
        static SOFTWARE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let c = &host.config;
        let opts = EnvOptions {
            server_software: SOFTWARE
                .get_or_init(|| format!("featherd/{}", featherd_mod_api::server_version())),
            fix_root_scriptname: c.fix_root_scriptname,
            strip_request_uri: c.strip_request_uri.as_deref(),
            broken_scriptfilename: c.broken_scriptfilename,
            mount_prefix: (self.mount.kind == MountKind::Prefix && !c.check_local)
                .then_some(self.mount.key.as_str()),
        };
        let mut e = env::build(req, &opts);
        if let Some(root) = &c.docroot {
            // The backend sees its own document root (a remote machine's layout).
            let mut file = root.trim_end_matches('/').as_bytes().to_vec();
            file.extend_from_slice(e.get(b"SCRIPT_NAME").unwrap_or_default());
            e.set(b"DOCUMENT_ROOT", root.as_bytes());
            e.set(b"SCRIPT_FILENAME", &file);
        }
        e
    }

    /// Do all the I/O possible now and say what the hook returns next.
    pub fn step<M: Module>(&mut self, req: &mut Request<M>) -> Outcome {
        match self.step_inner(req) {
            Outcome::Wait => {
                self.arm(req);
                Outcome::Wait
            }
            o => {
                self.close();
                o
            }
        }
    }

    fn timeout(&self) -> Option<Duration> {
        let c = &self.lease.as_ref()?.host().config;
        let secs = if !self.connected {
            c.connect_timeout
        } else if self.out_pos < self.out.len() {
            c.write_timeout
        } else {
            c.read_timeout
        };
        (secs > 0).then(|| Duration::from_secs(u64::from(secs)))
    }

    fn arm<M: Module>(&mut self, req: &Request<M>) {
        let deadline = self.timeout().map(|t| self.last_progress + t);
        self.clock.deadline.set(deadline);
        if let Some(d) = deadline {
            if !self.clock.armed.get() {
                schedule(self.clock.clone(), req.id(), d.saturating_duration_since(Instant::now()));
            }
        }
    }

    fn expired(&self) -> bool {
        self.clock.expired.replace(false) && self.clock.deadline.get().is_some_and(|d| Instant::now() >= d)
    }

    fn step_inner<M: Module>(&mut self, req: &mut Request<M>) -> Outcome {
        // Connect, failing over to the next host while connects fail.
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
                    if let Some(l) = &self.lease {
                        l.host().connected();
                    }
                    self.last_progress = Instant::now();
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
                    if self.expired() {
                        let host = self.lease.as_ref().map(|l| l.host().clone());
                        if let Some(h) = host {
                            self.host_failed(
                                &h,
                                &io::Error::new(io::ErrorKind::TimedOut, "connect timed out"),
                            );
                        }
                        continue;
                    }
                    return Outcome::Wait;
                }
                Err(e) => {
                    let host = self.lease.as_ref().map(|l| l.host().clone());
                    if let Some(h) = host {
                        self.host_failed(&h, &e);
                    }
                }
            }
        }
        // The host's name for the log lines below (an Arc, not a copy of the name).
        let host = self.lease.as_ref().map(|l| l.host().clone());
        let name = host.as_ref().map_or("", |h| h.config.name.as_str());
        let ended = match self.send(req) {
            Ok(()) => Ended::No,
            Err(e) => {
                // The backend stopped reading (it may have answered already): read what it said.
                if self.debug {
                    log::info!("{name}: sending the request stopped: {e}");
                }
                self.body = Body::Done;
                self.out.clear();
                self.out_pos = 0;
                Ended::No
            }
        };
        let mut ended = ended;
        if let Some(o) = self.receive(req, &mut ended) {
            return o;
        }
        if self.complete {
            return self.finish(req, name);
        }
        match ended {
            Ended::No => {}
            Ended::Eof if self.proto.eof_ends_response() && self.head_done => {
                return self.finish(req, name);
            }
            _ => {
                let what = if ended == Ended::Eof { "closed the connection" } else { "connection failed" };
                return self.fail(req, &format!("backend {name} {what} before the response was complete"));
            }
        }
        if self.expired() {
            return if self.head_done {
                log::error!(
                    "backend {name}: read timeout; cutting {}",
                    String::from_utf8_lossy(req.target())
                );
                Outcome::Cut
            } else {
                log::error!(
                    "backend {name}: no response within the read-timeout; answering 504 for {}",
                    String::from_utf8_lossy(req.target())
                );
                Outcome::Failed(504)
            };
        }
        Outcome::Wait
    }

    fn fail<M: Module>(&mut self, req: &Request<M>, why: &str) -> Outcome {
        if self.head_done {
            log::error!("{why}; cutting the response to {}", String::from_utf8_lossy(req.target()));
            Outcome::Cut
        } else {
            log::error!("{why}; answering 502 for {}", String::from_utf8_lossy(req.target()));
            Outcome::Failed(502)
        }
    }

    fn finish<M: Module>(&mut self, req: &mut Request<M>, name: &str) -> Outcome {
        if !self.head_done {
            if self.stdout.is_empty() && self.inbuf.is_empty() {
                return self.fail(req, &format!("backend {name} sent no response"));
            }
            return self.fail(req, &format!("backend {name} sent an incomplete response head"));
        }
        Outcome::Done
    }

    /// Write the request: head, then the body as the client sends it.
    fn send<M: Module>(&mut self, req: &mut Request<M>) -> io::Result<()> {
        if self.sock.is_none() || (self.out_pos == self.out.len() && self.body == Body::Done) {
            return Ok(());
        }
        with_scratch(|buf| loop {
            let Some(sock) = &self.sock else { return Ok(()) };
            let mut sock: &Socket = sock;
            while self.out_pos < self.out.len() {
                match sock.write(&self.out[self.out_pos..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        self.out_pos += n;
                        self.last_progress = Instant::now();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.ready.set(self.ready.get() & !READY_OUT);
                        if !self.write_interest {
                            self.write_interest = true;
                            if let Some(r) = &self.reg {
                                r.modify(true, true);
                            }
                        }
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.out.clear();
            self.out_pos = 0;
            if self.body == Body::Done {
                return Ok(());
            }
            match req.read_body(buf) {
                Ok(0) => {
                    self.proto.request_end(&mut self.out);
                    self.body = Body::Done;
                }
                Ok(n) => self.proto.request_body(&buf[..n], &mut self.out),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        })
    }

    /// Read and apply what the backend sent, while the client keeps up.
    fn receive<M: Module>(&mut self, req: &mut Request<M>, ended: &mut Ended) -> Option<Outcome> {
        if self.ready.get() & READY_IN == 0 {
            // Nothing arrived since the socket was drained (the poller would have said so).
            return None;
        }
        with_scratch(|buf| self.receive_into(req, ended, buf))
    }

    fn receive_into<M: Module>(
        &mut self,
        req: &mut Request<M>,
        ended: &mut Ended,
        buf: &mut [u8],
    ) -> Option<Outcome> {
        let mut drained = false;
        loop {
            if self.complete || *ended != Ended::No || self.sock.is_none() || drained {
                return None;
            }
            if self.head_done && req.pending() >= req.high_water() {
                // The client is slow: stop reading (the backend blocks in turn); the core wakes
                // us when its queue drains. Waiting on the client is not a backend timeout.
                self.last_progress = Instant::now();
                return None;
            }
            let n = match self.sock.as_ref().map(|s| {
                let mut s: &Socket = s;
                s.read(buf)
            }) {
                Some(Ok(0)) => {
                    *ended = Ended::Eof;
                    0
                }
                Some(Ok(n)) => {
                    if n < buf.len() && self.ready.get() & READY_HUP == 0 {
                        // A short read drained the socket: the next byte raises a new edge.
                        // This saves the read(2) that would only say EAGAIN.
                        self.ready.set(self.ready.get() & !READY_IN);
                        drained = true;
                    }
                    n
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.ready.set(self.ready.get() & !READY_IN);
                    return None;
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Some(Err(e)) => {
                    if self.debug {
                        log::info!("backend read: {e}");
                    }
                    *ended = Ended::Error;
                    0
                }
                None => return None,
            };
            if n > 0 {
                self.last_progress = Instant::now();
                self.inbuf.extend_from_slice(&buf[..n]);
            }
            match self.proto.response(&mut self.inbuf, &mut self.stdout, &mut self.stderr) {
                Ok(done) => self.complete |= done,
                Err(e) => {
                    let name = self.host().map(|h| h.config.name.clone()).unwrap_or_default();
                    return Some(self.fail(req, &format!("backend {name}: bad response: {e}")));
                }
            }
            self.log_stderr();
            if let Some(o) = self.output(req) {
                return Some(o);
            }
        }
    }

    fn log_stderr(&mut self) {
        while let Some(nl) = self.stderr.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.stderr.drain(..=nl).collect();
            let name = self.host().map(|h| h.config.name.clone()).unwrap_or_default();
            log::error!("{name}: stderr: {}", String::from_utf8_lossy(&line).trim_end());
        }
        if self.complete && !self.stderr.is_empty() {
            let name = self.host().map(|h| h.config.name.clone()).unwrap_or_default();
            log::error!("{name}: stderr: {}", String::from_utf8_lossy(&self.stderr).trim_end());
            self.stderr.clear();
        }
    }

    /// Apply the head once complete, then queue body bytes.
    fn output<M: Module>(&mut self, req: &mut Request<M>) -> Option<Outcome> {
        if !self.head_done {
            let (status_line, skip) = http_status_line(&self.stdout)?;
            let parsed = cgi_head::parse(&self.stdout[skip..]);
            match parsed {
                HeadParse::Partial => return None,
                HeadParse::Invalid(e) => {
                    let name = self.host().map(|h| h.config.name.clone()).unwrap_or_default();
                    return Some(self.fail(req, &format!("backend {name}: bad response head: {e}")));
                }
                HeadParse::Complete(mut head, n) => {
                    if head.status.is_none() {
                        head.status = status_line;
                    }
                    self.stdout.drain(..skip + n);
                    if let Some(o) = self.apply_head(req, head) {
                        return Some(o);
                    }
                    self.head_done = true;
                }
            }
        }
        if !self.stdout.is_empty() {
            req.append_body(&self.stdout);
            self.stdout.clear();
        }
        None
    }

    fn apply_head<M: Module>(&mut self, req: &mut Request<M>, head: CgiHead) -> Option<Outcome> {
        let host = self.host()?.clone();
        let c = &host.config;
        if c.mode == Mode::Authorizer {
            if head.effective_status() == 200 && head.location.is_none() {
                for (n, v) in &head.headers {
                    if n.len() > 9 && n[..9].eq_ignore_ascii_case(b"variable-") {
                        if let Ok(name) = std::str::from_utf8(&n[9..]) {
                            req.set_env(name, v);
                        }
                    }
                }
                if let Some(d) = &c.docroot {
                    req.set_docroot(d.as_bytes());
                }
                return Some(Outcome::Authorized);
            }
        } else if head.location.as_deref().is_some_and(|l| l.starts_with(b"/"))
            && matches!(head.status, None | Some(200))
        {
            // RFC 3875 6.2.2 says "no Status"; an explicit 200 counts too (PHP sends one), as
            // in lighttpd.
            let loc = head.location.clone().unwrap_or_default();
            if self.debug {
                log::info!("local redirect to {}", String::from_utf8_lossy(&loc));
            }
            return Some(if req.set_target(&loc) { Outcome::Redirect } else { Outcome::Failed(502) });
        }
        let sendfile =
            head.get("X-Sendfile").or_else(|| head.get("X-LIGHTTPD-send-file")).map(<[u8]>::to_vec);
        req.set_status(head.effective_status());
        if let Some(l) = &head.location {
            req.set_response_header("Location", l);
        }
        for (n, v) in &head.headers {
            let skip: &[&[u8]] = &[
                b"connection",
                b"keep-alive",
                b"transfer-encoding",
                b"content-length",
                b"x-sendfile",
                b"x-lighttpd-send-file",
            ];
            if skip.iter().any(|s| n.eq_ignore_ascii_case(s)) {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(n) {
                req.append_response_header(name, v);
            }
        }
        if let Some(path) = sendfile.filter(|_| c.x_sendfile) {
            return Some(self.send_file(req, &host, &path));
        }
        if let Some(len) =
            head.get("Content-Length").and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        {
            if req.method() != b"HEAD" {
                req.set_content_length(len);
            }
        }
        None
    }

    /// X-Sendfile: answer with that file instead of the backend's body.
    fn send_file<M: Module>(&mut self, req: &mut Request<M>, host: &Host, path: &[u8]) -> Outcome {
        let c = &host.config;
        self.complete = true;
        match crate::xsendfile::answer(req, path, &c.x_sendfile_docroot, &c.name, "x-sendfile-docroot") {
            true => Outcome::Done,
            false => Outcome::Cut,
        }
    }
}

/// A leading `HTTP/1.x NNN reason` line (uwsgi applications may answer like an HTTP server):
/// its status and length. None while the first line is incomplete.
fn http_status_line(buf: &[u8]) -> Option<(Option<u16>, usize)> {
    if !buf.starts_with(b"HTTP/") {
        if buf.len() < 5 && b"HTTP/".starts_with(buf) {
            return None;
        }
        return Some((None, 0));
    }
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = String::from_utf8_lossy(&buf[..nl]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..1000).contains(s));
    Some((status, nl + 1))
}

/// What [`Balance::Hash`] and [`Balance::Sticky`] hash for `req`.
pub fn balance_key<M: Module>(req: &Request<M>, balance: Balance) -> Vec<u8> {
    match balance {
        Balance::Hash => {
            let mut k = req.path().to_vec();
            k.push(0);
            k.extend_from_slice(req.header("Host").unwrap_or(req.host()));
            k
        }
        Balance::Sticky => req.remote_addr().to_vec(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(http_status_line(b"HTTP/1.1 201 Created\r\nA: b\r\n\r\n"), Some((Some(201), 22)));
        assert_eq!(http_status_line(b"Status: 200\r\n"), Some((None, 0)));
        assert_eq!(http_status_line(b"HTT"), None);
        assert_eq!(http_status_line(b"HTTP/1.1 200 OK"), None);
    }
}
