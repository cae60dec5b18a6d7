//! mod_cgi: runs CGI/1.1 scripts (RFC 3875) as lighttpd 1.4's mod_cgi does.
//!
//! `cgi.assign` maps a suffix of the physical path to an interpreter (or "" to run the file
//! itself). A matching regular file is claimed in `subrequest_start`; `subrequest` starts the
//! script with the CGI environment and nothing else from the server's, in the script's
//! directory, and then moves bytes on the worker's event loop: the request body into the
//! script's stdin, its stdout into the response (a CGI head first, or an NPH status line),
//! its stderr into the error log line by line. All three pipes are non-blocking and
//! registered with the worker's poller; nothing here blocks or waits for a process. The core
//! reaps children and tells us through the `waitpid` hook (see `children`).

mod children;
mod config;

use config::CgiConfig;
use featherd_gateway::cgi_head::{self, HeadParse, MAX_HEAD};
use featherd_gateway::{env, xsendfile};
use featherd_mod_api::{
    export_module, register_fd, FdRegistration, Handler, Hooks, Module, Request, FILE_KIND_REGULAR,
};
use std::cell::RefCell;
use std::ffi::OsStr;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStderr, ChildStdin, ChildStdout, Command, Stdio};
use std::rc::Rc;

/// Bytes moved per read or write of a pipe.
const IO_CHUNK: usize = 64 * 1024;
/// A stderr line longer than this is logged in pieces.
const MAX_LOG_LINE: usize = 4096;
/// Most stderr bytes read in one turn, so that a script flooding its stderr cannot keep the
/// worker from its other connections; the rest is read on a timer right after.
const STDERR_TURN: usize = 256 * 1024;

pub struct Cgi {
    software: String,
}

/// Per request: what `subrequest_start` decided, then the running script.
#[derive(Default)]
pub struct State {
    /// The interpreter `cgi.assign` chose ("" = run the file itself), once claimed.
    interp: Option<String>,
    job: Option<Job>,
}

/// A registered pipe. The registration is declared first so it is dropped (unregistered)
/// before the pipe is closed.
struct Pipe<F: AsRawFd> {
    _reg: FdRegistration,
    file: F,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Collecting the response head.
    Head,
    /// Streaming the body.
    Body,
}

/// One running script.
struct Job {
    pid: i32,
    script: String,
    stdin: Option<Pipe<ChildStdin>>,
    stdout: Option<Pipe<ChildStdout>>,
    stderr: Option<(FdRegistration, Rc<RefCell<StderrLog>>)>,
    /// Request body read from the core and not yet written to the script.
    inbuf: Vec<u8>,
    inpos: usize,
    body_eof: bool,
    /// The response head as it arrives.
    head: Vec<u8>,
    phase: Phase,
    buf: Vec<u8>,
    /// The script ended its output normally: it may finish exiting on its own.
    clean_end: bool,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.stdin = None;
        self.stdout = None;
        // What the script said on stderr before its last output would otherwise be lost when
        // both pipes became readable in the same poll round and stdout was handled first.
        if let Some((_, log)) = &self.stderr {
            if let Ok(mut l) = log.try_borrow_mut() {
                l.drain(STDERR_TURN);
                l.closed = true;
            }
        }
        self.stderr = None;
        children::release(self.pid, !self.clean_end);
    }
}

/// The script's stderr, logged line by line under the module's name.
struct StderrLog {
    pipe: ChildStderr,
    script: String,
    line: Vec<u8>,
    eof: bool,
    /// The request is over: stop reading (the pipe closes with the last reference).
    closed: bool,
}

/// Read the script's stderr for one turn; when there is more than a turn's worth, go on
/// shortly on a worker timer (the poller is edge-triggered and would not report it again).
fn pump_stderr(log: &Rc<RefCell<StderrLog>>) {
    let more = match log.try_borrow_mut() {
        Ok(mut l) if !l.closed => l.drain(STDERR_TURN),
        _ => false,
    };
    if more {
        let again = log.clone();
        if featherd_mod_api::timer(1, move || pump_stderr(&again)).is_err() {
            log::warn!("cannot schedule reading a script's stderr");
        }
    }
}

impl StderrLog {
    /// Read and log up to `limit` bytes; true when the limit stopped it.
    fn drain(&mut self, limit: usize) -> bool {
        let mut buf = [0u8; 4096];
        let mut taken = 0;
        while !self.eof {
            if taken >= limit {
                return true;
            }
            match self.pipe.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    if !self.line.is_empty() {
                        self.emit_partial();
                    }
                }
                Ok(n) => {
                    taken += n;
                    self.line.extend_from_slice(&buf[..n]);
                    while let Some(p) = self.line.iter().position(|&b| b == b'\n') {
                        let rest = self.line.split_off(p + 1);
                        let mut l = std::mem::replace(&mut self.line, rest);
                        l.pop();
                        if l.last() == Some(&b'\r') {
                            l.pop();
                        }
                        self.emit(&l);
                    }
                    if self.line.len() > MAX_LOG_LINE {
                        self.emit_partial();
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
    fn emit(&self, l: &[u8]) {
        log::warn!("{}: stderr: {}", self.script, String::from_utf8_lossy(l));
    }
    fn emit_partial(&mut self) {
        let l = std::mem::take(&mut self.line);
        self.emit(&l);
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no pointers involved.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl < 0 || libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `HTTP/1.1 200 OK` (what NPH scripts, and any script that wants to, put first): the status.
fn status_line(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/")?;
    let sp = rest.iter().position(|&b| b == b' ')?;
    let code = rest.get(sp + 1..sp + 4)?;
    if !code.iter().all(u8::is_ascii_digit) || rest.get(sp + 4).is_some_and(|&b| b != b' ') {
        return None;
    }
    let c: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    (100..1000).contains(&c).then_some(c)
}

/// lighttpd does not restart a request at its own path (or below it): the script would
/// have handled that itself, and it would loop.
fn redirects_to_self(location: &[u8], path: &[u8]) -> bool {
    location.starts_with(path) && matches!(location.get(path.len()), None | Some(b'/') | Some(b'?'))
}

/// What feeding output to the response decided.
enum Next {
    More,
    Done(Handler),
}

impl Cgi {
    /// Start the script for a claimed request.
    fn start(&self, req: &mut Request<Self>) -> Result<Job, Handler> {
        let interp = req.state().interp.clone().unwrap_or_default();
        let script_path = req.physical_path().to_vec();
        let script = String::from_utf8_lossy(&script_path).into_owned();
        let opts = env::EnvOptions { server_software: &self.software, ..Default::default() };
        let vars = env::build(req, &opts);
        let path = Path::new(OsStr::from_bytes(&script_path));
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("/"));
        let mut cmd = if interp.is_empty() {
            Command::new(path)
        } else {
            if !Path::new(&interp).is_file() {
                log::error!("cgi.assign: interpreter {interp} for {script} does not exist");
                req.set_status(500);
                return Err(Handler::Finished);
            }
            let mut c = Command::new(&interp);
            c.arg(path);
            c
        };
        // With `server.breakagelog` the script writes its stderr there itself, as with
        // lighttpd; otherwise it comes through a pipe into the error log, line by line.
        let breakage = featherd_mod_api::breakagelog_fd().and_then(|fd| {
            // SAFETY: the server's breakage log descriptor stays open for the life of the
            // process; it is only borrowed here to duplicate it for the child.
            let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            b.try_clone_to_owned().ok()
        });
        let stderr_to = match breakage {
            Some(fd) => Stdio::from(fd),
            None => Stdio::piped(),
        };
        cmd.env_clear()
            .envs(vars.iter().map(|(n, v)| (OsStr::from_bytes(n), OsStr::from_bytes(v))))
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr_to)
            // Its own process group, so that what the script starts is stopped with it.
            .process_group(0);
        let (pid, stdin, stdout, stderr) = {
            let mut table = children::table();
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    drop(table);
                    log::error!("cannot run {script}: {e}");
                    req.set_status(if e.kind() == ErrorKind::PermissionDenied { 403 } else { 500 });
                    return Err(Handler::Finished);
                }
            };
            let pid = child.id() as i32;
            table.insert(
                pid,
                children::Tracked { script: script.clone(), term_at: None, kill_at: None, signalled: false },
            );
            (pid, child.stdin.take(), child.stdout.take(), child.stderr.take())
            // `child` is dropped without waiting: the core reaps it.
        };
        let mut job = Job {
            pid,
            script: script.clone(),
            stdin: None,
            stdout: None,
            stderr: None,
            inbuf: Vec::new(),
            inpos: 0,
            body_eof: false,
            head: Vec::new(),
            phase: Phase::Head,
            buf: vec![0u8; IO_CHUNK],
            clean_end: false,
        };
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            log::error!("{script}: pipes missing after spawn");
            req.set_status(500);
            return Err(Handler::Finished);
        };
        let id = req.id();
        let setup = (|| -> io::Result<()> {
            for fd in [stdin.as_raw_fd(), stdout.as_raw_fd()] {
                set_nonblocking(fd)?;
            }
            let reg = register_fd(stdout.as_raw_fd(), true, false, move |_, _| {
                id.wake();
            })?;
            job.stdout = Some(Pipe { _reg: reg, file: stdout });
            let reg = register_fd(stdin.as_raw_fd(), false, true, move |_, _| {
                id.wake();
            })?;
            job.stdin = Some(Pipe { _reg: reg, file: stdin });
            // No pipe: the script writes to the breakage log itself.
            let Some(stderr) = stderr else { return Ok(()) };
            set_nonblocking(stderr.as_raw_fd())?;
            let fd = stderr.as_raw_fd();
            let log = Rc::new(RefCell::new(StderrLog {
                pipe: stderr,
                script,
                line: Vec::new(),
                eof: false,
                closed: false,
            }));
            let l2 = log.clone();
            let reg = register_fd(fd, true, false, move |_, _| pump_stderr(&l2))?;
            job.stderr = Some((reg, log));
            Ok(())
        })();
        if let Err(e) = setup {
            log::error!("{}: cannot watch the script's pipes: {e}", job.script);
            req.set_status(500);
            return Err(Handler::Finished);
        }
        Ok(job)
    }

    /// Request body → the script's stdin, until the pipe is full or the body has no more for
    /// now; stdin is closed at the end of the body.
    fn feed(req: &mut Request<Self>, job: &mut Job) {
        while let Some(stdin) = job.stdin.as_mut() {
            if job.inpos < job.inbuf.len() {
                match stdin.file.write(&job.inbuf[job.inpos..]) {
                    Ok(n) => job.inpos += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => {
                        // The script stopped reading (EPIPE): the rest of the body is dropped.
                        log::info!(
                            "{}: script closed its input before the end of the request body: {e}",
                            job.script
                        );
                        job.stdin = None;
                        job.inbuf = Vec::new();
                        job.body_eof = true;
                        return;
                    }
                }
                continue;
            }
            if job.body_eof {
                job.stdin = None;
                job.inbuf = Vec::new();
                return;
            }
            job.inbuf.resize(IO_CHUNK, 0);
            job.inpos = 0;
            match req.read_body(&mut job.inbuf) {
                Ok(0) => {
                    job.inbuf.clear();
                    job.body_eof = true;
                }
                Ok(n) => job.inbuf.truncate(n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    job.inbuf.clear();
                    return;
                }
                Err(e) => {
                    log::error!("{}: reading the request body failed: {e}", job.script);
                    job.inbuf.clear();
                    job.body_eof = true;
                }
            }
        }
    }

    /// The script's stdout → the response, while the client keeps up.
    fn drain_stdout(&self, req: &mut Request<Self>, job: &mut Job) -> Handler {
        let mut buf = std::mem::take(&mut job.buf);
        let r = loop {
            if job.phase == Phase::Body && req.pending() >= req.high_water() {
                break Handler::WaitForEvent;
            }
            let Some(out) = job.stdout.as_mut() else { break Handler::WaitForEvent };
            match out.file.read(&mut buf) {
                Ok(0) => break Self::end_of_output(req, job),
                Ok(n) => match self.output(req, job, &buf[..n]) {
                    Next::More => {}
                    Next::Done(h) => break h,
                },
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Handler::WaitForEvent,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("{}: reading the script's output failed: {e}", job.script);
                    if job.phase == Phase::Head {
                        req.set_status(502);
                        break Handler::Finished;
                    }
                    break Handler::Error;
                }
            }
        };
        job.buf = buf;
        r
    }

    fn end_of_output(req: &mut Request<Self>, job: &mut Job) -> Handler {
        match job.phase {
            Phase::Body => {
                job.clean_end = true;
                Handler::Finished
            }
            Phase::Head if job.head.is_empty() => {
                // lighttpd answers 500 when a script says nothing at all.
                log::error!("{}: the script ended without any output", job.script);
                job.clean_end = true;
                req.set_status(500);
                Handler::Finished
            }
            Phase::Head => {
                log::error!(
                    "{}: the script's output ended inside its response head ({} bytes, no blank line)",
                    job.script,
                    job.head.len()
                );
                req.set_status(502);
                Handler::Finished
            }
        }
    }

    fn output(&self, req: &mut Request<Self>, job: &mut Job, data: &[u8]) -> Next {
        if job.phase == Phase::Body {
            req.append_body(data);
            return Next::More;
        }
        job.head.extend_from_slice(data);
        let (nph_status, off) = if job.head.starts_with(b"HTTP/") {
            let Some(nl) = job.head.iter().position(|&b| b == b'\n') else {
                return if job.head.len() > MAX_HEAD {
                    Self::bad_head(req, job, "status line too long")
                } else {
                    Next::More
                };
            };
            let line = &job.head[..nl];
            match status_line(line.strip_suffix(b"\r").unwrap_or(line)) {
                Some(s) => (Some(s), nl + 1),
                None => return Self::bad_head(req, job, "malformed HTTP status line"),
            }
        } else {
            (None, 0)
        };
        match cgi_head::parse(&job.head[off..]) {
            HeadParse::Partial => Next::More,
            HeadParse::Invalid(why) => Self::bad_head(req, job, why),
            HeadParse::Complete(head, n) => {
                let rest = job.head.split_off(off + n);
                job.head = Vec::new();
                self.apply_head(req, job, nph_status, head, rest)
            }
        }
    }

    fn bad_head(req: &mut Request<Self>, job: &mut Job, why: &str) -> Next {
        log::error!("{}: invalid response head: {why}", job.script);
        req.set_status(502);
        Next::Done(Handler::Finished)
    }

    fn apply_head(
        &self,
        req: &mut Request<Self>,
        job: &mut Job,
        nph_status: Option<u16>,
        head: cgi_head::CgiHead,
        rest: Vec<u8>,
    ) -> Next {
        let cfg = req.config();
        if cfg.local_redir
            && nph_status.is_none()
            && head.is_local_redirect()
            && head.headers.is_empty()
            && rest.is_empty()
        {
            let loc = head.location.clone().unwrap_or_default();
            if !redirects_to_self(&loc, req.path()) {
                drop(cfg);
                // The script has said all it will: let it exit on its own.
                job.clean_end = true;
                if !req.set_target(&loc) {
                    log::error!("{}: cannot redirect to {}", job.script, String::from_utf8_lossy(&loc));
                    req.set_status(502);
                    return Next::Done(Handler::Finished);
                }
                return Next::Done(Handler::Comeback);
            }
        }
        let status = nph_status.unwrap_or_else(|| head.effective_status());
        req.set_status(status);
        if let Some(loc) = &head.location {
            req.append_response_header("Location", loc);
        }
        let mut sendfile: Option<Vec<u8>> = None;
        for (name, value) in &head.headers {
            if xsendfile::HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes())) {
                // Never passed on (it names a server path), whether honoured or not.
                sendfile = Some(value.clone());
                continue;
            }
            if name.eq_ignore_ascii_case(b"x-sendfile2")
                || [&b"content-length"[..], b"transfer-encoding", b"connection", b"status"]
                    .iter()
                    .any(|h| name.eq_ignore_ascii_case(h))
            {
                // The server frames the body itself.
                continue;
            }
            if let Ok(n) = std::str::from_utf8(name) {
                req.append_response_header(n, value);
            }
        }
        if let Some(target) = sendfile.filter(|_| cfg.x_sendfile) {
            let docroots = cfg.x_sendfile_docroot.clone();
            drop(cfg);
            job.clean_end = true;
            return Next::Done(Self::send_file(req, job, &target, &docroots));
        }
        job.phase = Phase::Body;
        if !rest.is_empty() {
            req.append_body(&rest);
        }
        Next::More
    }

    fn send_file(req: &mut Request<Self>, job: &Job, target: &[u8], docroots: &[String]) -> Handler {
        match xsendfile::answer(req, target, docroots, &job.script, "cgi.x-sendfile-docroot") {
            true => Handler::Finished,
            false => Handler::Error,
        }
    }
}

impl Module for Cgi {
    const NAME: &'static str = "mod_cgi";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "runs CGI scripts (cgi.assign)";
    const HOOKS: Hooks =
        Hooks::SUBREQUEST_START.union(Hooks::SUBREQUEST).union(Hooks::TRIGGER).union(Hooks::WAITPID);
    type Config = CgiConfig;
    type RequestState = State;
    type ConnectionState = ();

    fn init() -> Self {
        Cgi { software: String::new() }
    }

    fn set_defaults(&mut self, _configs: &featherd_mod_api::Configs<CgiConfig>) -> Result<(), String> {
        self.software = format!("featherd/{}", featherd_mod_api::server_version());
        Ok(())
    }

    fn cleanup(&mut self) {
        children::shutdown();
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        if req.claimed_by_other() || req.status() != 0 {
            return Handler::GoOn;
        }
        let cfg = req.config();
        if cfg.assign.is_empty() {
            return Handler::GoOn;
        }
        let Some(fi) = req.file_info() else { return Handler::GoOn };
        if fi.kind != FILE_KIND_REGULAR {
            return Handler::GoOn;
        }
        let Some(interp) = cfg.interpreter_for(req.physical_path()) else { return Handler::GoOn };
        if cfg.execute_x_only && fi.mode & 0o111 == 0 {
            // lighttpd passes such a file on to the next handler, which may send the script's
            // source; refusing is the safe reading of "execute only".
            log::info!(
                "{}: not executable and cgi.execute-x-only is enabled",
                String::from_utf8_lossy(req.physical_path())
            );
            req.set_status(403);
            return Handler::Finished;
        }
        let interp = interp.to_owned();
        drop(cfg);
        if !req.claim() {
            return Handler::GoOn;
        }
        req.state().interp = Some(interp);
        Handler::GoOn
    }

    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        let mut job = match req.state().job.take() {
            Some(j) => j,
            None => {
                if req.state().interp.is_none() {
                    return Handler::GoOn;
                }
                match self.start(req) {
                    Ok(j) => j,
                    Err(h) => return h,
                }
            }
        };
        Self::feed(req, &mut job);
        let r = self.drain_stdout(req, &mut job);
        match r {
            Handler::WaitForEvent | Handler::GoOn => {
                req.state().job = Some(job);
            }
            Handler::Comeback => {
                // The request starts over at another target: the next handler may be us.
                let st = req.state();
                st.interp = None;
                drop(job);
            }
            _ => drop(job),
        }
        r
    }

    fn trigger(&self) {
        children::tick();
    }

    fn waitpid(&self, pid: i32, status: i32) -> bool {
        children::reaped(pid, status)
    }
}

export_module!(Cgi);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(status_line(b"HTTP/1.1 203 Whatever"), Some(203));
        assert_eq!(status_line(b"HTTP/1.0 404"), Some(404));
        assert_eq!(status_line(b"HTTP/1.0 40"), None);
        assert_eq!(status_line(b"HTTP/1.0 4044"), None);
        assert_eq!(status_line(b"HTTP/1.0"), None);
    }

    #[test]
    fn self_redirects() {
        assert!(redirects_to_self(b"/a.py", b"/a.py"));
        assert!(redirects_to_self(b"/a.py?x", b"/a.py"));
        assert!(redirects_to_self(b"/a.py/more", b"/a.py"));
        assert!(!redirects_to_self(b"/a.pyc", b"/a.py"));
        assert!(!redirects_to_self(b"/b.py", b"/a.py"));
    }
}
