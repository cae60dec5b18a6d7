//! A worker: one thread, one mio poller, its own listening sockets (SO_REUSEPORT) and its own
//! connections. Each connection runs a small state machine (read head → read body → hooks →
//! write → keep-alive or close); the hook chain itself is in [`crate::handle`]. Module fds
//! and timers live in a thread-local context so that host services called from inside a
//! hook can reach them without aliasing the worker's own borrows.

use crate::blocking::Completions;
use crate::chunk::{ChunkQueue, WriteResult};
use crate::handle::{self, Step};
use crate::host::{DataPtr, Loaded};
use crate::http::parse::{parse_head, Parsed};
use crate::request::{FileState, Peer, Request};
use crate::stats::{self, WorkerShared};
use featherd_mod_api::abi::*;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ffi::c_void;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const RUN: u8 = 0;
pub const GRACEFUL: u8 = 1;
pub const STOP: u8 = 2;

/// Shared between the main thread and the workers of one generation (a graceful restart
/// starts a new generation with its own `Control`).
pub struct Control {
    pub state: AtomicU8,
    /// Open connections over all workers (for server.max-connections).
    pub connections: AtomicUsize,
    pub max_connections: usize,
    /// Unix time (seconds) a worker last had an fd event (for `-i`, the idle exit).
    pub last_activity: AtomicU64,
    /// Workers whose loop has ended (their threads are about to finish).
    pub exited: AtomicUsize,
    /// Written to (one byte) when a worker's loop ends, so the main thread notices at once
    /// (the write end of its signal self-pipe).
    pub notify_main: Option<std::os::unix::net::UnixStream>,
}

impl Control {
    pub fn new(max_connections: usize, notify_main: Option<std::os::unix::net::UnixStream>) -> Control {
        Control {
            state: AtomicU8::new(RUN),
            connections: AtomicUsize::new(0),
            max_connections,
            last_activity: AtomicU64::new(now_secs()),
            exited: AtomicUsize::new(0),
            notify_main,
        }
    }
}

/// How long after a graceful stop begins an idle keep-alive connection is still kept: a request
/// the client sent just before it learnt of the stop is on its way and gets its answer (with
/// `Connection: close`) instead of a closed connection.
const GRACEFUL_IDLE_GRACE: Duration = Duration::from_secs(1);

pub enum ListenSock {
    Tcp(TcpListener),
    Unix(UnixListener),
}

pub struct Listener {
    pub sock: ListenSock,
    /// The name `$SERVER["socket"]` compares with, e.g. "127.0.0.1:8080".
    pub name: Arc<str>,
    /// The local address of accepted connections when the listener is bound to one address
    /// (None for a wildcard address: ask each connection).
    pub local: Option<Arc<str>>,
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        }
    }
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(b),
            Stream::Unix(s) => s.read(b),
        }
    }
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(b),
            Stream::Unix(s) => s.write(b),
        }
    }
    fn shutdown_write(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        };
    }
    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
        }
    }
}

/// What connection hooks see as `fd_connection`.
pub struct ConnInfo {
    pub peer: Arc<Peer>,
    pub slots: Vec<*mut c_void>,
    /// The worker's configuration (for `connection_config_blocks`). The worker keeps its
    /// `Arc<Loaded>` for longer than any of its connections lives.
    pub loaded: *const Loaded,
    /// The module that claimed the connection's preface and has not finished reading it.
    pub preface: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    ReadHead,
    ReadBody,
    Handle,
    Write,
    /// Response sent, write side shut: read and discard until EOF so the client gets all of
    /// it (closing with unread data would send a reset).
    Linger,
}

struct Conn {
    stream: Stream,
    info: Box<ConnInfo>,
    gen: u32,
    state: State,
    rbuf: Vec<u8>,
    req: Option<Box<Request>>,
    out: ChunkQueue,
    chunked: bool,
    keep_alive: bool,
    served: u32,
    last_active: u64,
    suspended: bool,
    peer_closed: bool,
    /// The kernel may have bytes for us that we have not read (edge-triggered poller).
    maybe_readable: bool,
    /// The loop turn (`Worker::turn`) of the last read that left the socket drained.
    drained_turn: u64,
    /// The response queue went over the high-water mark: wake the handler when it drains.
    drain_armed: bool,
    /// A suspended handler was woken and must run.
    resume: bool,
    /// Waiting in `Worker::deferred` for the end of the event batch.
    deferred: bool,
}

// ---- thread-local services for modules

struct FdReg {
    fd: RawFd,
    gen: u32,
    data: DataPtr,
    cb: fd_event_fn,
    ctx: *mut c_void,
}

struct TimerReg {
    data: DataPtr,
    cb: fd_event_fn,
    ctx: *mut c_void,
}

struct WorkerCtx {
    index: u32,
    registry: Registry,
    fds: Slab<FdReg>,
    fd_gen: u32,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    timer_regs: HashMap<u64, TimerReg>,
    next_timer: u64,
    wakes: Vec<u64>,
    /// Finished blocking-pool jobs come back here ([`crate::blocking`]).
    completions: Arc<Completions>,
    /// Jobs submitted and not yet completed.
    jobs_out: usize,
}

thread_local! {
    static WCTX: RefCell<Option<WorkerCtx>> = const { RefCell::new(None) };
}

const LISTENER_MAX: usize = 256;
/// Connections accepted from one listener before the worker turns to its other events.
const ACCEPT_BATCH: usize = 64;
const WAKER: Token = Token(LISTENER_MAX);
const CONN_BASE: usize = 1024;
const FD_BASE: usize = 1 << 32;

fn mio_interest(i: u32) -> Option<Interest> {
    match (i & FD_READABLE != 0, i & FD_WRITABLE != 0) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

pub fn current_index() -> i32 {
    WCTX.with(|w| w.borrow().as_ref().map_or(-1, |w| w.index as i32))
}

pub fn wake(id: u64) -> i32 {
    WCTX.with(|w| match w.borrow_mut().as_mut() {
        Some(w) => {
            w.wakes.push(id);
            0
        }
        None => -1,
    })
}

/// Hand `job` to the blocking pool; `done` comes back to this worker's loop.
pub fn blocking_submit(data: DataPtr, job: fd_blocking_fn, done: fd_blocking_fn, ctx: *mut c_void) -> i32 {
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        if !crate::blocking::submit(data, job, done, ctx, w.completions.clone()) {
            return -1;
        }
        w.jobs_out += 1;
        0
    })
}

/// Ask every worker for a snapshot of its connections; `done(data, ctx, list)` runs on this
/// worker's loop once all have answered ([`crate::stats::collect`]).
pub fn connections_collect(data: DataPtr, max: u32, done: fd_collect_fn, ctx: *mut c_void) -> i32 {
    let ctx = crate::blocking::CtxPtr(ctx);
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        let reply = w.completions.clone();
        let asked = stats::collect(max as usize, move |c| {
            reply.push(Box::new(move || {
                // Whole wrappers (Send), not their raw-pointer fields, go into the closure.
                let (data, ctx) = (data, ctx);
                let list = Arc::as_ptr(&c) as *const fd_conn_list;
                // SAFETY: the module's callback with its own data and context, on the worker
                // that asked; `list` stays valid for the call (the closure holds the Arc).
                unsafe { done(data.0, ctx.0, list) };
                drop(c);
            }));
        });
        if !asked {
            return -1;
        }
        w.jobs_out += 1;
        0
    })
}

pub fn fd_register(data: DataPtr, fd: RawFd, interest: u32, cb: fd_event_fn, ctx: *mut c_void) -> i64 {
    let Some(int) = mio_interest(interest) else { return -1 };
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        w.fd_gen = w.fd_gen.wrapping_add(1).max(1);
        let gen = w.fd_gen;
        let entry = w.fds.vacant_entry();
        let key = entry.key();
        if w.registry.register(&mut SourceFd(&fd), Token(FD_BASE + key), int).is_err() {
            return -1;
        }
        entry.insert(FdReg { fd, gen, data, cb, ctx });
        ((gen as i64) << 32) | (key as i64 + 1)
    })
}

fn fd_key(handle: i64) -> (usize, u32) {
    (((handle & 0xffff_ffff) - 1) as usize, (handle >> 32) as u32)
}

pub fn fd_modify(handle: i64, interest: u32) -> i32 {
    let (key, gen) = fd_key(handle);
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        let Some(r) = w.fds.get(key).filter(|r| r.gen == gen) else { return -2 };
        let fd = r.fd;
        match mio_interest(interest) {
            Some(i) => w.registry.reregister(&mut SourceFd(&fd), Token(FD_BASE + key), i).map_or(-1, |_| 0),
            // mio has no empty interest: deregister until asked again.
            None => w.registry.deregister(&mut SourceFd(&fd)).map_or(-1, |_| 0),
        }
    })
}

pub fn fd_unregister(handle: i64) -> i32 {
    let (key, gen) = fd_key(handle);
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        if w.fds.get(key).is_none_or(|r| r.gen != gen) {
            return -2;
        }
        let r = w.fds.remove(key);
        let _ = w.registry.deregister(&mut SourceFd(&r.fd));
        0
    })
}

/// Forget registration `handle` and close `fd` (the host owns it now). The close removes the
/// descriptor from the poller, so no EPOLL_CTL_DEL is made.
pub fn fd_close(handle: i64, fd: RawFd) -> i32 {
    let (key, gen) = fd_key(handle);
    let r = WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        match w.fds.get(key) {
            Some(r) if r.gen == gen && r.fd == fd => {
                w.fds.remove(key);
                0
            }
            Some(r) if r.gen == gen => {
                // Another descriptor than the one registered: unregister the right one.
                let r = w.fds.remove(key);
                let _ = w.registry.deregister(&mut SourceFd(&r.fd));
                0
            }
            _ => -2,
        }
    });
    if fd >= 0 {
        // SAFETY: the ABI hands `fd` to the host; it is closed exactly once, here.
        drop(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    r
}

pub fn timer_add(data: DataPtr, ms: u64, cb: fd_event_fn, ctx: *mut c_void) -> i64 {
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        w.next_timer += 1;
        let id = w.next_timer;
        w.timers.push(Reverse((Instant::now() + Duration::from_millis(ms), id)));
        w.timer_regs.insert(id, TimerReg { data, cb, ctx });
        id as i64
    })
}

pub fn timer_cancel(handle: i64) -> i32 {
    WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let Some(w) = w.as_mut() else { return -1 };
        match w.timer_regs.remove(&(handle as u64)) {
            Some(_) => 0,
            None => -2,
        }
    })
}

/// stat(2) a physical path.
/// The worker's stat cache (lighttpd's "simple" engine): what a path's stat found, valid for
/// the rest of the current second. Misses are not kept (a file created now is seen now).
/// Files that are sent keep their open descriptor (and, when small, their contents) in the
/// entry for the same time, so a busy file costs one open per second, not one per request.
struct StatCache {
    enabled: bool,
    second: u64,
    /// foldhash: fast on short keys and seeded per process (the keys come from client URLs,
    /// although only paths that exist are kept).
    entries: std::collections::HashMap<Vec<u8>, StatEntry, foldhash::fast::RandomState>,
}

struct StatEntry {
    info: FileInfo,
    fd: Option<Arc<OwnedFd>>,
    data: Option<Arc<[u8]>>,
}

/// Files up to this size are kept in memory by the file cache (and sent with the head).
const SMALL_FILE: u64 = 16 * 1024;

thread_local! {
    static STAT_CACHE: RefCell<StatCache> = RefCell::new(StatCache {
        enabled: false,
        second: 0,
        entries: std::collections::HashMap::with_hasher(foldhash::fast::RandomState::default()),
    });
}

/// stat `p`, through the worker's stat cache when enabled.
pub fn stat_path(p: &[u8]) -> FileState {
    STAT_CACHE.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else { return stat_now(p) };
        if !c.enabled {
            return stat_now(p);
        }
        let now = now_secs();
        if c.second != now {
            c.second = now;
            c.entries.clear();
        }
        if let Some(e) = c.entries.get(p) {
            return FileState::Found(e.info);
        }
        let st = stat_now(p);
        if let FileState::Found(info) = st {
            c.entries.insert(p.to_vec(), StatEntry { info, fd: None, data: None });
        }
        st
    })
}

/// What the file cache can send for a file.
pub enum CachedFile {
    /// The whole contents of a small file.
    Data(Arc<[u8]>),
    /// An open descriptor.
    Fd(Arc<OwnedFd>),
}

/// The open file (or a small file's contents) at `p`, provided it is still the file `info`
/// describes (same inode, size and modification time, checked on the open descriptor).
pub fn cached_file(p: &[u8], info: &FileInfo) -> Option<CachedFile> {
    let same = |a: &FileInfo| {
        a.inode == info.inode
            && a.size == info.size
            && a.mtime == info.mtime
            && a.mtime_nsec == info.mtime_nsec
    };
    let open = || -> Option<(OwnedFd, Option<Arc<[u8]>>)> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::MetadataExt;
        let f = std::fs::File::open(std::ffi::OsStr::from_bytes(p)).ok()?;
        let m = f.metadata().ok()?;
        let opened = FileInfo {
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            inode: m.ino(),
            ..*info
        };
        if !m.is_file() || !same(&opened) {
            return None;
        }
        let data = if info.size <= SMALL_FILE {
            let mut buf = vec![0u8; info.size as usize];
            use std::os::unix::fs::FileExt;
            f.read_exact_at(&mut buf, 0).ok()?;
            Some(Arc::from(buf))
        } else {
            None
        };
        Some((f.into(), data))
    };
    STAT_CACHE.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else { return None };
        let cached = c.enabled && c.second == now_secs();
        let entry = if cached { c.entries.get_mut(p).filter(|e| same(&e.info)) } else { None };
        let Some(e) = entry else {
            // Not cached: open for this request only.
            let (fd, data) = open()?;
            return Some(match data {
                Some(d) => CachedFile::Data(d),
                None => CachedFile::Fd(Arc::new(fd)),
            });
        };
        if let Some(d) = &e.data {
            return Some(CachedFile::Data(d.clone()));
        }
        if let Some(fd) = &e.fd {
            return Some(CachedFile::Fd(fd.clone()));
        }
        let (fd, data) = open()?;
        Some(match data {
            Some(d) => {
                e.data = Some(d.clone());
                CachedFile::Data(d)
            }
            None => {
                let fd = Arc::new(fd);
                e.fd = Some(fd.clone());
                CachedFile::Fd(fd)
            }
        })
    })
}

fn stat_now(p: &[u8]) -> FileState {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(std::ffi::OsStr::from_bytes(p)) {
        Ok(m) => FileState::Found(FileInfo {
            size: m.size(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
            inode: m.ino(),
            device: m.dev(),
            mode: m.mode(),
            kind: if m.is_file() {
                FILE_KIND_REGULAR
            } else if m.is_dir() {
                FILE_KIND_DIRECTORY
            } else {
                FILE_KIND_OTHER
            },
        }),
        Err(_) => FileState::Missing,
    }
}

fn now_secs() -> u64 {
    crate::http::unix_now()
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Requests kept for reuse per worker. Responses of one poll batch are written after the batch
/// (see `run`), so a batch of N ready connections holds N requests at once: with 256 busy
/// keep-alive connections a pool of 64 left three of four requests to be built from scratch.
const REQUEST_POOL: usize = 256;

pub struct Worker {
    index: u32,
    poll: Poll,
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    loaded: Arc<Loaded>,
    control: Arc<Control>,
    // Boxed: a request keeps its address while modules hold its pointer.
    #[allow(clippy::vec_box)]
    pool: Vec<Box<Request>>,
    scratch: Vec<u8>,
    accept_paused: bool,
    listening: bool,
    /// Connections that stopped writing because their turn was over, not because the socket
    /// was full: continued on the next loop iteration.
    writable: Vec<usize>,
    /// While the events of one poll are handled, responses are queued here and written
    /// after the batch (see `run`).
    deferring: bool,
    deferred: Vec<usize>,
    /// A listener may have connections waiting that were left for the next turn (a full
    /// batch, or accepting paused at `server.max-connections` and resumed).
    accept_again: bool,
    last_tick: u64,
    /// Counts the poller's returns: "the same turn" means no event was looked at since.
    turn: u64,
    /// Connections handed over before the thread started (`-1`: the socket on stdin).
    adopted: Vec<(Stream, Peer)>,
    /// `-1`: the worker ends once its connections are gone.
    exit_when_idle: bool,
    /// When a graceful stop began (idle keep-alive connections close a moment later).
    graceful_since: Option<Instant>,
    /// This worker's counters and snapshot inbox (see [`crate::stats`]).
    shared: Arc<WorkerShared>,
    /// The poller's waker (for the completion queue and the snapshot inbox).
    waker: Option<Arc<Waker>>,
}

/// Wakers of pollers whose worker has not started yet, by the poller's fd: mio allows one
/// waker per poller, and the worker needs it too (the blocking pool wakes it with it).
static WAKERS: std::sync::Mutex<Vec<(RawFd, Arc<Waker>)>> = std::sync::Mutex::new(Vec::new());

/// Create a worker's poller and waker (the waker is handed to the main thread).
pub fn new_poll() -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    if let Ok(mut w) = WAKERS.lock() {
        w.push((poll.as_raw_fd(), waker.clone()));
    }
    Ok((poll, waker))
}

/// The waker `new_poll` made for `poll`.
fn take_waker(poll: &Poll) -> Option<Arc<Waker>> {
    let fd = poll.as_raw_fd();
    let mut w = WAKERS.lock().ok()?;
    let i = w.iter().position(|(f, _)| *f == fd)?;
    Some(w.swap_remove(i).1)
}

impl Worker {
    pub fn new(
        index: u32,
        poll: Poll,
        mut listeners: Vec<Listener>,
        loaded: Arc<Loaded>,
        control: Arc<Control>,
    ) -> io::Result<Worker> {
        listeners.truncate(LISTENER_MAX);
        for (i, l) in listeners.iter_mut().enumerate() {
            match &mut l.sock {
                ListenSock::Tcp(s) => poll.registry().register(s, Token(i), Interest::READABLE)?,
                ListenSock::Unix(s) => poll.registry().register(s, Token(i), Interest::READABLE)?,
            }
        }
        let waker = take_waker(&poll);
        Ok(Worker {
            index,
            shared: stats::new_worker(index, waker.clone()),
            waker,
            poll,
            listeners,
            conns: Slab::new(),
            loaded,
            control,
            pool: Vec::new(),
            scratch: vec![0u8; 16 * 1024],
            accept_paused: false,
            listening: true,
            writable: Vec::new(),
            deferring: false,
            deferred: Vec::new(),
            accept_again: false,
            turn: 0,
            last_tick: now_secs(),
            adopted: Vec::new(),
            exit_when_idle: false,
            graceful_since: None,
        })
    }

    /// Serve an already connected socket (TCP or unix), as if it had been accepted from a
    /// listener named `server_socket`; the worker then ends when its last connection closes
    /// (`featherd -1`). The connection starts when the worker runs.
    pub fn adopt(&mut self, fd: OwnedFd, server_socket: Arc<str>) -> io::Result<()> {
        let sock = socket2::Socket::from(fd);
        sock.set_nonblocking(true)?;
        sock.set_cloexec(true)?;
        let local = sock.local_addr()?;
        let (stream, peer) = if local.is_unix() {
            let st = UnixStream::from_std(std::os::unix::net::UnixStream::from(OwnedFd::from(sock)));
            let peer = Peer {
                remote_addr: "unix:".into(),
                remote_ip: None,
                remote_port: 0,
                local_addr: server_socket.clone(),
                server_socket,
                scheme: "http",
            };
            (Stream::Unix(st), peer)
        } else {
            let remote = sock.peer_addr()?.as_socket();
            let local: Arc<str> = Arc::from(local.as_socket().map(|a| a.to_string()).unwrap_or_default());
            let _ = sock.set_nodelay(true);
            let st = TcpStream::from_std(std::net::TcpStream::from(OwnedFd::from(sock)));
            let ip = remote.map(|a| a.ip().to_canonical());
            let peer = Peer {
                remote_addr: ip.map(|i| i.to_string()).unwrap_or_default(),
                remote_ip: ip,
                remote_port: remote.map_or(0, |a| a.port()),
                local_addr: local,
                server_socket,
                scheme: "http",
            };
            (Stream::Tcp(st), peer)
        };
        self.adopted.push((stream, peer));
        self.exit_when_idle = true;
        Ok(())
    }

    pub fn run(mut self) {
        let stat_cache = self.loaded.server.stat_cache;
        STAT_CACHE.with(|c| c.borrow_mut().enabled = stat_cache);
        let registry = match self.poll.registry().try_clone() {
            Ok(r) => r,
            Err(e) => {
                log::error!("worker {}: cannot clone the poll registry: {e}", self.index);
                return;
            }
        };
        WCTX.with(|w| {
            *w.borrow_mut() = Some(WorkerCtx {
                index: self.index,
                registry,
                fds: Slab::new(),
                fd_gen: 0,
                timers: BinaryHeap::new(),
                timer_regs: HashMap::new(),
                next_timer: 0,
                wakes: Vec::new(),
                completions: Completions::new(self.waker.clone()),
                jobs_out: 0,
            })
        });
        stats::register(&self.shared);
        for m in &self.loaded.modules {
            if let Some(wi) = m.desc.worker_init {
                // SAFETY: the module's own data pointer, on the worker thread it is for.
                if unsafe { wi(m.data.0, self.index) } != 0 {
                    log::error!("{}: worker_init failed on worker {}", m.name, self.index);
                }
            }
        }
        for (stream, peer) in std::mem::take(&mut self.adopted) {
            self.add_conn(stream, peer);
        }
        let mut events = Events::with_capacity(1024);
        let mut graceful_deadline: Option<Instant> = None;
        let mut active_sec = 0;
        loop {
            if self.exit_when_idle && self.conns.is_empty() {
                break;
            }
            let timeout = self.next_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("worker {}: poll failed: {e}", self.index);
                    break;
                }
            }
            self.turn += 1;
            let now = crate::http::tick();
            if now != active_sec && events.iter().any(|e| e.token() != WAKER) {
                // For `-i`: one store a second at most, not one per event.
                active_sec = now;
                self.control.last_activity.store(now, Ordering::Relaxed);
            }
            // Responses produced while handling this batch are written after it: the client
            // (woken by our first write) then finds the whole batch's answers at once, instead
            // of being woken, going back to sleep and being woken again for each one.
            self.deferring = true;
            for ev in events.iter() {
                let t = ev.token().0;
                if t < self.listeners.len() {
                    self.accept(t);
                } else if t == WAKER.0 {
                    // Control state is checked below.
                } else if t >= FD_BASE {
                    dispatch_fd(t - FD_BASE, ev);
                } else if t >= CONN_BASE {
                    let idx = t - CONN_BASE;
                    if let Some(c) = self.conns.get_mut(idx) {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            c.maybe_readable = true;
                        }
                        // The client reset the connection (or both directions are closed)
                        // while its handler waits for a backend: nothing will be written
                        // there again, so end the request now and let request_reset release
                        // the backend (a CGI script, a FastCGI connection). A mere FIN is a
                        // half-close and is not treated as a disconnect (lighttpd neither).
                        let gone = ev.is_error() || (ev.is_read_closed() && ev.is_write_closed());
                        if gone && c.suspended && matches!(c.state, State::Handle | State::Write) {
                            self.close(idx);
                            continue;
                        }
                        self.drive(idx);
                    }
                }
            }
            self.deferring = false;
            for idx in std::mem::take(&mut self.deferred) {
                if let Some(c) = self.conns.get_mut(idx) {
                    c.deferred = false;
                    if c.state == State::Write {
                        self.drive(idx);
                    }
                }
            }
            for idx in std::mem::take(&mut self.writable) {
                if self.conns.get(idx).is_some_and(|c| c.state == State::Write) {
                    self.drive(idx);
                }
            }
            if std::mem::take(&mut self.accept_again) && self.listening {
                for li in 0..self.listeners.len() {
                    self.accept(li);
                }
            }
            self.run_timers();
            run_completions();
            if self.shared.has_asks() {
                self.answer_asks();
            }
            self.run_wakes();
            let now = now_secs();
            if now != self.last_tick {
                self.last_tick = now;
                self.check_timeouts(now);
            }
            match self.control.state.load(Ordering::Acquire) {
                STOP => break,
                GRACEFUL => {
                    if self.graceful_since.is_none() {
                        self.stop_listening();
                        let now = Instant::now();
                        self.graceful_since = Some(now);
                        graceful_deadline = Some(
                            now + Duration::from_secs(self.loaded.server.graceful_shutdown_timeout.max(1)),
                        );
                    }
                    if self.graceful_since.is_some_and(|t| t.elapsed() >= GRACEFUL_IDLE_GRACE) {
                        self.close_idle();
                    }
                    if self.conns.is_empty() || graceful_deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                }
                _ => {}
            }
        }
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            self.close(k);
        }
        WCTX.with(|w| *w.borrow_mut() = None);
        stats::unregister(&self.shared);
        self.control.exited.fetch_add(1, Ordering::Release);
        if let Some(n) = &self.control.notify_main {
            let _ = (&*n).write(&[0]);
        }
    }

    fn next_timeout(&self) -> Duration {
        if !self.writable.is_empty() || self.accept_again {
            return Duration::ZERO;
        }
        let mut d = Duration::from_millis(1000);
        if let Some(t) = self.graceful_since {
            // Wake when idle connections are due to close.
            let grace = GRACEFUL_IDLE_GRACE.saturating_sub(t.elapsed());
            if !grace.is_zero() {
                d = d.min(grace);
            }
        }
        WCTX.with(|w| {
            if let Some(w) = w.borrow().as_ref() {
                if !w.wakes.is_empty() {
                    d = Duration::ZERO;
                } else if let Some(Reverse((at, _))) = w.timers.peek() {
                    d = d.min(at.saturating_duration_since(Instant::now()));
                }
                if w.jobs_out > 0 && !w.completions.has_waker() {
                    // Nothing will wake us when a job finishes: look again soon.
                    d = d.min(Duration::from_millis(5));
                }
            }
        });
        d
    }

    fn stop_listening(&mut self) {
        for l in self.listeners.iter_mut() {
            let _ = match &mut l.sock {
                ListenSock::Tcp(s) => self.poll.registry().deregister(s),
                ListenSock::Unix(s) => self.poll.registry().deregister(s),
            };
        }
        self.listeners.clear();
        self.listening = false;
    }

    fn close_idle(&mut self) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::ReadHead && c.rbuf.is_empty() && c.req.is_none())
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            self.close(k);
        }
    }

    fn accept(&mut self, li: usize) {
        // Stopping or restarting: what has not been accepted yet waits in the kernel's queue
        // for the next workers (a restart) or is refused when the socket closes (a stop).
        if self.control.state.load(Ordering::Acquire) != RUN {
            return;
        }
        let mut accepted = 0;
        loop {
            if self.control.max_connections > 0
                && self.control.connections.load(Ordering::Relaxed) >= self.control.max_connections
            {
                self.accept_paused = true;
                return;
            }
            if accepted == ACCEPT_BATCH {
                // Fairness: the connections we have get their events before more come in
                // (the listener is edge-triggered: the loop comes back for the rest).
                self.accept_again = true;
                return;
            }
            accepted += 1;
            let Some(l) = self.listeners.get(li) else { return };
            let name = l.name.clone();
            let (stream, peer) = match &l.sock {
                ListenSock::Tcp(s) => match s.accept() {
                    Ok((st, addr)) => {
                        // TCP_NODELAY comes from the listening socket (Linux copies it to the
                        // accepted one). The local address is the listener's unless it is a
                        // wildcard: only then is getsockname needed.
                        let local = match &l.local {
                            Some(a) => a.clone(),
                            None => Arc::from(st.local_addr().map(|a| a.to_string()).unwrap_or_default()),
                        };
                        let ip = addr.ip().to_canonical();
                        (
                            Stream::Tcp(st),
                            Peer {
                                remote_addr: ip.to_string(),
                                remote_ip: Some(ip),
                                remote_port: addr.port(),
                                local_addr: local,
                                server_socket: name,
                                scheme: "http",
                            },
                        )
                    }
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            log::warn!("accept on {name}: {e}");
                        }
                        return;
                    }
                },
                ListenSock::Unix(s) => match s.accept() {
                    Ok((st, _)) => (
                        Stream::Unix(st),
                        Peer {
                            remote_addr: "unix:".into(),
                            remote_ip: None,
                            remote_port: 0,
                            local_addr: name.clone(),
                            server_socket: name,
                            scheme: "http",
                        },
                    ),
                    Err(e) => {
                        if e.kind() != io::ErrorKind::WouldBlock {
                            log::warn!("accept on {name}: {e}");
                        }
                        return;
                    }
                },
            };
            self.add_conn(stream, peer);
        }
    }

    fn add_conn(&mut self, stream: Stream, peer: Peer) {
        let entry = self.conns.vacant_entry();
        let idx = entry.key();
        self.control.connections.fetch_add(1, Ordering::Relaxed);
        stats::bump(&self.shared.counters.accepted, 1);
        stats::bump(&self.shared.counters.open, 1);
        let mut info = Box::new(ConnInfo {
            peer: Arc::new(peer),
            slots: Vec::new(),
            loaded: Arc::as_ptr(&self.loaded),
            preface: None,
        });
        let mut ok = true;
        for (i, hook) in &self.loaded.chains.connection_accept {
            let data = self.loaded.modules[*i].data.0;
            // SAFETY: module hook with its data and a live ConnInfo.
            let r = unsafe { hook(data, &mut *info as *mut ConnInfo as *mut fd_connection) };
            if r == HANDLER_ERROR {
                ok = false;
                break;
            }
            if r != HANDLER_GO_ON {
                break;
            }
        }
        entry.insert(Conn {
            stream,
            info,
            gen: 0,
            state: State::ReadHead,
            rbuf: Vec::new(),
            req: None,
            out: ChunkQueue::default(),
            chunked: false,
            keep_alive: true,
            served: 0,
            last_active: now_secs(),
            suspended: false,
            peer_closed: false,
            maybe_readable: true,
            drained_turn: u64::MAX,
            drain_armed: false,
            resume: false,
            deferred: false,
        });
        if !ok {
            self.close(idx);
            return;
        }
        // The connection is served as far as it goes before the poller learns of it: a client
        // whose request is already here and who asked to close is answered and gone without
        // an epoll_ctl. Registered afterwards (both directions, edge-triggered, once: no
        // re-registration per request), the poller reports what is pending at once. Its
        // first answer is written at once, not after the event batch.
        let deferring = std::mem::replace(&mut self.deferring, false);
        self.drive(idx);
        self.deferring = deferring;
        if let Some(c) = self.conns.get_mut(idx) {
            if let Err(e) = self.poll.registry().register(
                c.stream.source(),
                Token(CONN_BASE + idx),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                log::warn!("cannot register a connection: {e}");
                self.close(idx);
            }
        }
    }

    fn close(&mut self, idx: usize) {
        if !self.conns.contains(idx) {
            return;
        }
        let mut c = self.conns.remove(idx);
        if let Some(mut req) = c.req.take() {
            self.end_request(&mut req, false);
            self.release(req);
        }
        for (i, hook) in &self.loaded.chains.connection_close {
            let data = self.loaded.modules[*i].data.0;
            // SAFETY: module hook with its data and a live ConnInfo.
            unsafe { hook(data, &mut *c.info as *mut ConnInfo as *mut fd_connection) };
        }
        // No EPOLL_CTL_DEL: closing the socket (its only descriptor) removes it from the
        // poller; a stray event for the slot at worst finds a socket with nothing to read.
        self.control.connections.fetch_sub(1, Ordering::Relaxed);
        stats::drop_by(&self.shared.counters.open, 1);
        drop(c);
        if self.accept_paused && self.listening {
            // Resumed from the loop, not from here: close can run inside accept (a connection
            // answered and closed at once), and accepting from here would nest.
            self.accept_paused = false;
            self.accept_again = true;
        }
    }

    fn take_request(&mut self) -> Box<Request> {
        match self.pool.pop() {
            Some(r) if Arc::ptr_eq(&r.loaded, &self.loaded) => r,
            _ => Box::new(Request::new(self.loaded.clone())),
        }
    }

    fn release(&mut self, mut req: Box<Request>) {
        if self.pool.len() >= REQUEST_POOL {
            return;
        }
        req.reset();
        if self.pool.len() >= 64 {
            req.trim();
        }
        self.pool.push(req);
    }

    /// request_done (if it completed) and request_reset for every module.
    fn end_request(&self, req: &mut Request, done: bool) {
        self.count_bytes(req);
        let rp = req as *mut Request as *mut fd_request;
        if done {
            for (i, hook) in &self.loaded.chains.request_done {
                // SAFETY: module hook with its data and the live request.
                unsafe { hook(self.loaded.modules[*i].data.0, rp) };
            }
        }
        for (i, hook) in &self.loaded.chains.request_reset {
            // SAFETY: as above.
            unsafe { hook(self.loaded.modules[*i].data.0, rp) };
        }
    }

    /// Hand the bytes read so far to the module that claimed the connection's preface.
    /// Some(true): the preface is over (the rest of the buffer, if any, is HTTP); Some(false):
    /// it needs more bytes (read on); None: the connection was closed.
    fn preface(&mut self, idx: usize) -> Option<bool> {
        let c = &mut self.conns[idx];
        let m = c.info.preface?;
        let loaded = self.loaded.clone();
        let module = &loaded.modules[m];
        let Some(hook) = module.desc.connection_preface else {
            c.info.preface = None;
            return Some(true);
        };
        let mut consumed = 0usize;
        let con = &mut *c.info as *mut ConnInfo as *mut fd_connection;
        // SAFETY: the claiming module's hook with its data, a live ConnInfo and a view of the
        // connection's read buffer, which nothing else touches during the call.
        let r = unsafe { hook(module.data.0, con, c.rbuf.as_ptr(), c.rbuf.len(), &mut consumed) };
        match r {
            HANDLER_GO_ON | HANDLER_FINISHED if consumed <= c.rbuf.len() => {
                c.rbuf.drain(..consumed);
                c.info.preface = None;
                Some(true)
            }
            HANDLER_WAIT_FOR_EVENT if c.rbuf.len() < self.loaded.server.max_request_field_size => Some(false),
            _ => {
                if r == HANDLER_WAIT_FOR_EVENT {
                    log::warn!(
                        "{}: connection preface from {} longer than server.max-request-field-size: closed",
                        module.name,
                        c.info.peer.remote_addr
                    );
                }
                self.close(idx);
                None
            }
        }
    }

    /// Read what the socket has into the connection buffer. Returns false when the peer
    /// closed or failed (the caller decides what that means in its state).
    fn fill(&mut self, idx: usize, limit: usize) -> io::Result<bool> {
        let turn = self.turn;
        let c = &mut self.conns[idx];
        if c.rbuf.capacity() == 0 {
            c.rbuf = crate::chunk::take_buf();
        }
        loop {
            if c.rbuf.len() >= limit {
                // Leave the rest in the kernel until we have room (it stays readable).
                c.maybe_readable = true;
                return Ok(true);
            }
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    c.maybe_readable = false;
                    c.peer_closed = true;
                    return Ok(false);
                }
                Ok(n) => {
                    c.rbuf.extend_from_slice(&self.scratch[..n]);
                    c.last_active = now_secs();
                    if n < self.scratch.len() {
                        // Short read: most likely drained. Edge-triggered polling will tell
                        // us about more; save the extra read(2) that would say EAGAIN.
                        c.maybe_readable = false;
                        c.drained_turn = turn;
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    c.maybe_readable = false;
                    c.drained_turn = turn;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    c.peer_closed = true;
                    return Err(e);
                }
            }
        }
    }

    /// Advance a connection as far as it can go without blocking.
    fn drive(&mut self, idx: usize) {
        loop {
            let Some(c) = self.conns.get_mut(idx) else { return };
            match c.state {
                State::ReadHead => {
                    if !c.rbuf.is_empty() {
                        if c.info.preface.is_some() {
                            match self.preface(idx) {
                                Some(true) => continue,
                                Some(false) => {}
                                None => return,
                            }
                        } else {
                            let mut req = match c.req.take() {
                                Some(r) => r,
                                None => self.take_request(),
                            };
                            let c = &mut self.conns[idx];
                            req.conn = &mut *c.info;
                            match parse_head(&c.rbuf, &mut req.head) {
                                Parsed::Complete(n) if n > self.loaded.server.max_request_field_size => {
                                    c.rbuf.clear();
                                    self.fail(idx, req, 431);
                                    continue;
                                }
                                Parsed::Complete(n) => {
                                    c.rbuf.drain(..n);
                                    req.bytes_in = n as u64;
                                    self.start_request(idx, req);
                                    continue;
                                }
                                Parsed::Error(status) => {
                                    c.rbuf.clear();
                                    self.fail(idx, req, status);
                                    continue;
                                }
                                Parsed::Partial => {
                                    let limit = self.loaded.server.max_request_field_size;
                                    if c.rbuf.len() >= limit {
                                        c.rbuf.clear();
                                        self.fail(idx, req, 431);
                                        continue;
                                    }
                                    c.req = Some(req);
                                }
                            }
                        }
                    }
                    let c = &mut self.conns[idx];
                    if !c.maybe_readable {
                        // An idle connection keeps its buffer for a moment (the next request
                        // of a busy client reuses it); the once-a-second sweep frees it.
                        return;
                    }
                    let before = c.rbuf.len();
                    let limit = self.loaded.server.max_request_field_size + 1;
                    match self.fill(idx, limit) {
                        Ok(true) => {
                            if self.conns[idx].rbuf.len() == before {
                                return;
                            }
                        }
                        _ => {
                            // EOF or error while waiting for a request: done.
                            self.close(idx);
                            return;
                        }
                    }
                }
                State::ReadBody => match self.pump_body(idx) {
                    Err(status) => {
                        self.body_failed(idx, status);
                        continue;
                    }
                    Ok(_) => {
                        let c = &mut self.conns[idx];
                        let complete = c.req.as_ref().is_none_or(|r| r.body_in.complete);
                        if complete {
                            c.state = State::Handle;
                            continue;
                        }
                        if c.peer_closed {
                            self.close(idx);
                        }
                        return;
                    }
                },
                State::Handle => {
                    if c.req.as_ref().is_some_and(|r| !r.body_in.complete) {
                        match self.pump_body(idx) {
                            Err(status) => {
                                self.body_failed(idx, status);
                                continue;
                            }
                            Ok(true) => self.conns[idx].resume = true,
                            Ok(false) => {}
                        }
                    }
                    let c = &mut self.conns[idx];
                    // A suspended handler runs again only when woken (fd, timer, drained
                    // queue, body bytes it asked for), not on every socket event.
                    if c.suspended && !c.resume {
                        if c.peer_closed && c.req.as_ref().is_some_and(|r| !r.body_in.complete) {
                            self.close(idx);
                        }
                        return;
                    }
                    c.resume = false;
                    let Some(mut req) = c.req.take() else {
                        self.close(idx);
                        return;
                    };
                    c.suspended = false;
                    let step = handle::run(&mut req);
                    match step {
                        Step::Wait => {
                            let c = &mut self.conns[idx];
                            c.suspended = true;
                            // It paused at the high-water mark: wake it when the queue drains.
                            if req.body.len() + c.out.len() >= req.high_water {
                                c.drain_armed = true;
                            }
                            let wants_body = req.body_wanted && !req.body_in.complete;
                            c.req = Some(req);
                            // The handler drained the body buffer: read the client again now
                            // (the poller will not report bytes that were already waiting).
                            if wants_body {
                                match self.pump_body(idx) {
                                    Err(status) => {
                                        self.body_failed(idx, status);
                                        continue;
                                    }
                                    Ok(true) => {
                                        self.conns[idx].resume = true;
                                        continue;
                                    }
                                    Ok(false) => {}
                                }
                            }
                            let c = &mut self.conns[idx];
                            let Some(req) = c.req.as_ref() else { return };
                            // A handler that set a status and queued body (or finished it)
                            // streams: the head goes out now, the rest as it comes.
                            let can_start = req.head_sent
                                || (req.phase == crate::request::Phase::Subrequest
                                    && req.status != 0
                                    && (!req.body.is_empty() || req.body_finished || req.is_tunnel()));
                            if can_start {
                                self.begin_response(idx);
                                self.conns[idx].state = State::Write;
                                continue;
                            }
                            return;
                        }
                        Step::Respond => {
                            self.conns[idx].req = Some(req);
                            self.begin_response(idx);
                            self.conns[idx].state = State::Write;
                            continue;
                        }
                        Step::Error => {
                            if req.head_sent {
                                self.conns[idx].req = Some(req);
                                self.close(idx);
                                return;
                            }
                            req.status = 500;
                            req.body.clear();
                            req.body_finished = true;
                            req.content_length = None;
                            req.resp_headers.clear();
                            self.conns[idx].keep_alive = false;
                            self.conns[idx].req = Some(req);
                            self.begin_response(idx);
                            self.conns[idx].keep_alive = false;
                            self.conns[idx].state = State::Write;
                            continue;
                        }
                    }
                }
                State::Write => {
                    // A streaming handler may still be reading the body.
                    if self.conns[idx].suspended
                        && self.conns[idx].req.as_ref().is_some_and(|r| !r.body_in.complete)
                    {
                        match self.pump_body(idx) {
                            Err(status) => {
                                self.body_failed(idx, status);
                                continue;
                            }
                            Ok(true) => {
                                self.conns[idx].state = State::Handle;
                                self.conns[idx].resume = true;
                                continue;
                            }
                            Ok(false) => {}
                        }
                    }
                    if self.deferring && !self.conns[idx].suspended {
                        let c = &mut self.conns[idx];
                        if c.req.as_ref().is_some_and(|r| r.bytes_out == 0) {
                            // The first write of a response waits for the end of the batch.
                            if !c.deferred {
                                c.deferred = true;
                                self.deferred.push(idx);
                            }
                            return;
                        }
                    }
                    let all_written = match self.flush(idx) {
                        Err(_) => {
                            self.close(idx);
                            return;
                        }
                        Ok(w) => w,
                    };
                    let c = &mut self.conns[idx];
                    let Some(req) = c.req.as_mut() else {
                        self.close(idx);
                        return;
                    };
                    // Body the handler queued since the head went out.
                    if !req.body.is_empty() {
                        if req.head.method == b"HEAD" {
                            req.body.clear();
                        } else {
                            let chunked = c.chunked;
                            c.out.take_from(&mut req.body, chunked);
                        }
                        if all_written {
                            continue;
                        }
                    }
                    if all_written && req.body_finished {
                        self.complete(idx);
                        continue;
                    }
                    // Backpressure: above the high-water mark the handler is expected to
                    // pause; once the queue drains below half of it, wake it once.
                    let pending = c.out.len();
                    let hw = req.high_water;
                    if pending >= hw {
                        c.drain_armed = true;
                    } else if c.drain_armed && pending < hw / 2 && c.suspended {
                        c.drain_armed = false;
                        c.state = State::Handle;
                        c.resume = true;
                        continue;
                    }
                    return;
                }
                State::Linger => {
                    let c = &mut self.conns[idx];
                    loop {
                        match c.stream.read(&mut self.scratch) {
                            Ok(0) => {
                                self.close(idx);
                                return;
                            }
                            Ok(_) => continue,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => {
                                self.close(idx);
                                return;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Move request-body bytes from the connection buffer and the socket into the request.
    /// Ok(true) when new bytes arrived (or the body completed) that a waiting handler asked
    /// for. In streaming mode 2 the socket is read only while less than 64 KiB is buffered.
    fn pump_body(&mut self, idx: usize) -> Result<bool, u16> {
        let spill = self.loaded.server.upload_dirs.first().cloned();
        let mut progressed = false;
        loop {
            let c = &mut self.conns[idx];
            let Some(req) = c.req.as_mut() else { return Ok(false) };
            if req.body_in.complete {
                break;
            }
            let mode = req.core().stream_request_body;
            let max = req.core().max_request_size;
            if !c.rbuf.is_empty() {
                let before = req.body_in.received;
                let used = req.body_in.feed(&c.rbuf, max, if mode == 2 { None } else { spill.as_deref() })?;
                c.rbuf.drain(..used);
                req.bytes_in += used as u64;
                if req.body_in.received != before || req.body_in.complete {
                    progressed = true;
                }
                if req.body_in.complete {
                    break;
                }
            }
            if mode == 2 && req.body_in.buffered() >= crate::body::MEM_LIMIT as u64 {
                // Backpressure: the client waits until the handler has read.
                break;
            }
            if !c.maybe_readable {
                break;
            }
            match self.fill(idx, 256 * 1024) {
                Ok(true) if !self.conns[idx].rbuf.is_empty() => continue,
                Ok(true) => break,
                _ => {
                    let c = &mut self.conns[idx];
                    if let Some(req) = c.req.as_mut() {
                        if req.body_in.client_eof() {
                            progressed = true;
                        }
                    }
                    break;
                }
            }
        }
        let c = &mut self.conns[idx];
        let Some(req) = c.req.as_mut() else { return Ok(false) };
        let wake = progressed && (req.body_wanted || req.body_in.complete || req.body_in.is_tunnel());
        if wake {
            req.body_wanted = false;
        }
        Ok(wake)
    }

    /// The request body was refused (400, 413, 500): answer if nothing went out yet.
    fn body_failed(&mut self, idx: usize, status: u16) {
        let c = &mut self.conns[idx];
        c.rbuf.clear();
        match c.req.take() {
            Some(req) if !req.head_sent => {
                let mut req = req;
                self.end_request(&mut req, false);
                req.reset_response();
                self.fail(idx, req, status);
            }
            Some(req) => {
                c.req = Some(req);
                self.close(idx);
            }
            None => self.close(idx),
        }
    }

    /// A head was parsed: set the request up and decide how its body is read.
    fn start_request(&mut self, idx: usize, mut req: Box<Request>) {
        let c = &mut self.conns[idx];
        c.gen = c.gen.wrapping_add(1);
        req.id = ((idx as u64) << 32) | u64::from(c.gen);
        req.peer = c.info.peer.clone();
        req.start_us = now_us();
        if let Err(status) = handle::prepare(&mut req, &self.loaded.server.url) {
            self.fail(idx, req, status);
            return;
        }
        let len = req.head.content_length.unwrap_or(0);
        let max = req.core().max_request_size;
        if max > 0 && len > max {
            self.fail(idx, req, 413);
            return;
        }
        if req.head.chunked {
            req.body_in.start_chunked();
        } else {
            req.body_in.start_length(len);
        }
        let c = &mut self.conns[idx];
        if !req.body_in.complete {
            if req.head.expect_continue && req.head.minor == 1 && c.rbuf.is_empty() {
                let _ = c.stream.write(b"HTTP/1.1 100 Continue\r\n\r\n");
            }
            // Buffered mode reads the whole body first; streaming modes run the handler now
            // and feed it as bytes arrive.
            c.state = if req.core().stream_request_body == 0 { State::ReadBody } else { State::Handle };
        } else {
            c.state = State::Handle;
        }
        c.req = Some(req);
    }

    /// Answer a request that could not be parsed or accepted, then close.
    fn fail(&mut self, idx: usize, mut req: Box<Request>, status: u16) {
        if req.peer.scheme.is_empty() {
            req.peer = self.conns[idx].info.peer.clone();
        }
        req.status = status;
        req.body.clear();
        req.body_finished = true;
        req.phase = crate::request::Phase::Respond;
        let c = &mut self.conns[idx];
        c.keep_alive = false;
        c.req = Some(req);
        self.begin_response(idx);
        let c = &mut self.conns[idx];
        c.keep_alive = false;
        c.state = State::Write;
    }

    /// Build the status line and headers and queue them with what body there is.
    fn begin_response(&mut self, idx: usize) {
        let stopping = self.control.state.load(Ordering::Relaxed) != RUN;
        let c = &mut self.conns[idx];
        let Some(req) = c.req.as_mut() else { return };
        if req.head_sent {
            return;
        }
        // Counted before a byte goes out: a client that has read the response finds it
        // counted on a status page it asks for next.
        stats::bump(&self.shared.counters.requests, 1);
        handle::finalize(req);
        let head_only = req.head.method == b"HEAD";
        // 101, or a 2xx to CONNECT: the connection becomes a raw tunnel between the client and
        // the handler (the handler reads the client's bytes as request body and writes raw
        // response body). A 2xx to CONNECT carries no Content-Length or Transfer-Encoding.
        let tunnel = req.is_tunnel();
        let no_body = !tunnel && crate::http::status_has_no_body(req.status);
        let max_req = req.core().max_keep_alive_requests;
        let mut keep = c.keep_alive
            && !req.head.close
            && !stopping
            && !c.peer_closed
            && (max_req == 0 || c.served + 1 < max_req)
            && req.body_in.complete
            && !tunnel;
        c.chunked = false;
        let length = if no_body || tunnel {
            None
        } else if let Some(l) = req.content_length {
            Some(l)
        } else if req.body_finished {
            Some(req.body.len())
        } else if req.head.minor >= 1 {
            c.chunked = !head_only;
            None
        } else {
            keep = false;
            None
        };
        let mut h = crate::chunk::take_buf();
        h.reserve(256);
        h.extend_from_slice(if req.head.minor == 0 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
        let mut num = itoa_buf(u64::from(req.status));
        h.extend_from_slice(num.as_bytes(&mut [0u8; 20]));
        h.push(b' ');
        h.extend_from_slice(crate::http::reason(req.status).as_bytes());
        h.extend_from_slice(b"\r\n");
        for (n, v) in req.resp_headers.iter() {
            if n.eq_ignore_ascii_case(b"content-length")
                || n.eq_ignore_ascii_case(b"transfer-encoding")
                || (n.eq_ignore_ascii_case(b"connection") && !tunnel)
                || n.eq_ignore_ascii_case(b"date")
            {
                continue;
            }
            h.extend_from_slice(n);
            h.extend_from_slice(b": ");
            h.extend_from_slice(v);
            h.extend_from_slice(b"\r\n");
        }
        if let Some(l) = length {
            if req.status != 304 {
                h.extend_from_slice(b"Content-Length: ");
                num = itoa_buf(l);
                let mut dbuf = [0u8; 20];
                let digits = num.as_bytes(&mut dbuf);
                h.extend_from_slice(digits);
                h.extend_from_slice(b"\r\n");
                // Record what the head announced among the response headers, as lighttpd
                // does: request_done hooks read it there (mod_accesslog caps %b with it and
                // prints it for %{Content-Length}o). It is written above from `length` only,
                // never from the list, so it cannot be sent twice.
                req.resp_headers.set(b"Content-Length", digits);
            }
        } else if c.chunked {
            h.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        h.extend_from_slice(b"Date: ");
        crate::http::append_date(&mut h);
        h.extend_from_slice(b"\r\n");
        let tag = &req.core().tag;
        if !tag.is_empty() && !req.resp_headers.contains(b"server") {
            h.extend_from_slice(b"Server: ");
            h.extend_from_slice(tag.as_bytes());
            h.extend_from_slice(b"\r\n");
        }
        if tunnel {
            if req.body_in.complete {
                req.body_in.start_until_eof();
            }
        } else if !keep {
            h.extend_from_slice(b"Connection: close\r\n");
        } else if req.head.minor == 0 {
            h.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        h.extend_from_slice(b"\r\n");
        c.keep_alive = keep;
        req.head_len = h.len() as u64;
        if (head_only && !tunnel) || no_body {
            req.body.clear();
            c.out.push_vec(h);
        } else {
            // A small file goes out with the head in one writev instead of writev + sendfile.
            req.body.inline_small_files(16 * 1024);
            if c.out.is_empty() && !c.chunked {
                // The body's chunks as they are, the head in front.
                c.out.adopt(&mut req.body);
                c.out.push_front_vec(h);
            } else {
                c.out.push_vec(h);
                let chunked = c.chunked;
                c.out.take_from(&mut req.body, chunked);
            }
        }
        req.head_sent = true;
    }

    /// Write queued output. Ok(true): everything queued was written; Ok(false): the socket is
    /// full (we are woken when it drains).
    fn flush(&mut self, idx: usize) -> io::Result<bool> {
        let c = &mut self.conns[idx];
        // Fairness: one connection writes at most this much per turn (one sendfile of a
        // file), then the others get theirs; it is resumed from `self.writable` on the next
        // loop iteration (the poller is edge-triggered and would not report the socket again).
        // 512 KiB (two sendfiles in a row) made 1 MiB keep-alive downloads 0.74x as fast on
        // loopback: the client reads less per wake-up when each connection's data arrives in
        // longer bursts. The head counts against the budget (the first sendfile is short by
        // the head's length), so that every sendfile ends on a 256 KiB boundary of the
        // response, as with lighttpd: with the head's bytes offsetting every call, a 100 MiB
        // download on loopback ran at 0.76x lighttpd's rate with 1.3x its CPU per byte.
        let mut budget: u64 = 256 * 1024;
        loop {
            if budget == 0 {
                let pending = c.out.len();
                if let Some(r) = c.req.as_mut() {
                    r.out_pending = pending;
                }
                self.writable.push(idx);
                return Ok(false);
            }
            if c.out.is_empty() {
                if let Some(r) = c.req.as_mut() {
                    r.out_pending = 0;
                }
                return Ok(true);
            }
            match c.out.write_max(c.stream.fd(), budget)? {
                WriteResult::Wrote(n) => {
                    if let Some(r) = c.req.as_mut() {
                        r.bytes_out += n;
                    }
                    budget = budget.saturating_sub(n.max(1));
                    c.last_active = now_secs();
                }
                WriteResult::WouldBlock => {
                    let pending = c.out.len();
                    if let Some(r) = c.req.as_mut() {
                        r.out_pending = pending;
                    }
                    return Ok(false);
                }
            }
        }
    }

    /// The response is fully written: finish the request and go on with the connection.
    fn complete(&mut self, idx: usize) {
        let c = &mut self.conns[idx];
        if c.chunked {
            c.chunked = false;
            c.out.push_mem(b"0\r\n\r\n");
            return; // the Write state flushes it and comes back here
        }
        let Some(mut req) = c.req.take() else { return };
        c.served += 1;
        let keep = c.keep_alive;
        // The client said it was done (Connection: close, or HTTP/1.0 without keep-alive)
        // and sent nothing more: closing at once is safe (see below).
        let client_done = req.head.close && req.body_in.complete && c.rbuf.is_empty() && !c.peer_closed;
        if c.out.is_empty() && req.body.is_empty() {
            // The output queue's storage goes back with the pooled request (see `adopt`).
            req.body.adopt(&mut c.out);
        }
        self.end_request(&mut req, true);
        self.release(req);
        let c = &mut self.conns[idx];
        c.suspended = false;
        c.drain_armed = false;
        if keep {
            c.state = State::ReadHead;
            // An idle keep-alive connection holds no buffers (10,000 idle connections must
            // cost little); the next request allocates them again.
            if c.rbuf.is_empty() {
                crate::chunk::recycle_buf(std::mem::take(&mut c.rbuf));
            }
            c.out.release();
        } else {
            for (i, hook) in &self.loaded.chains.connection_shut_wr {
                let data = self.loaded.modules[*i].data.0;
                // SAFETY: module hook with its data and a live ConnInfo.
                unsafe { hook(data, &mut *c.info as *mut ConnInfo as *mut fd_connection) };
            }
            if client_done {
                // Unread input makes close() send a reset, which can destroy the response on
                // its way; lingering (shut the write side, read until EOF) avoids it, at the
                // cost of two system calls and a wake-up per connection. A client that asked
                // to close and has nothing more in the socket cannot lose anything: close
                // now, as nginx does. A read in this same loop turn that found the socket
                // drained says so already (a request served at once, the common case of
                // a connection per request), without one more read(2).
                if c.drained_turn == self.turn && !c.maybe_readable {
                    self.close(idx);
                    return;
                }
                match c.stream.read(&mut self.scratch) {
                    Ok(0) => {
                        self.close(idx);
                        return;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.close(idx);
                        return;
                    }
                    _ => {}
                }
            }
            let c = &mut self.conns[idx];
            c.stream.shutdown_write();
            c.state = State::Linger;
            c.last_active = now_secs();
        }
    }

    fn run_timers(&mut self) {
        loop {
            let due = WCTX.with(|w| {
                let mut w = w.borrow_mut();
                let w = w.as_mut()?;
                loop {
                    let Reverse((at, id)) = *w.timers.peek()?;
                    if at > Instant::now() {
                        return None;
                    }
                    w.timers.pop();
                    if let Some(t) = w.timer_regs.remove(&id) {
                        return Some(t);
                    }
                }
            });
            let Some(t) = due else { break };
            // SAFETY: the module's callback with its own data and context, on its worker.
            unsafe { (t.cb)(t.data.0, t.ctx, -1, 0) };
        }
    }

    fn run_wakes(&mut self) {
        for _ in 0..64 {
            let wakes = WCTX
                .with(|w| w.borrow_mut().as_mut().map(|w| std::mem::take(&mut w.wakes)).unwrap_or_default());
            if wakes.is_empty() {
                return;
            }
            for id in wakes {
                let idx = (id >> 32) as usize;
                let gen = id as u32;
                let Some(c) = self.conns.get_mut(idx) else { continue };
                if c.gen != gen || c.req.is_none() {
                    continue;
                }
                if c.suspended {
                    c.state = State::Handle;
                    c.resume = true;
                    self.drive(idx);
                }
            }
        }
    }

    /// Add the bytes `req` moved since they were last counted to the worker's totals.
    fn count_bytes(&self, req: &mut Request) {
        let c = &self.shared.counters;
        stats::bump(&c.bytes_in, req.bytes_in.saturating_sub(req.counted_in));
        stats::bump(&c.bytes_out, req.bytes_out.saturating_sub(req.counted_out));
        req.counted_in = req.bytes_in;
        req.counted_out = req.bytes_out;
    }

    /// Describe this worker's connections for the snapshot requests waiting in its inbox.
    fn answer_asks(&mut self) {
        for ask in self.shared.take_asks() {
            let mut counts = [0u64; CONN_STATE_COUNT as usize];
            let mut records = Vec::with_capacity(self.conns.len().min(ask.max));
            let now_ms = now_us() / 1000;
            let now_s = now_secs();
            for (_, c) in self.conns.iter() {
                let state = match c.state {
                    State::ReadHead if c.req.is_none() && c.rbuf.is_empty() && c.served > 0 => {
                        CONN_STATE_KEEP_ALIVE
                    }
                    State::ReadHead => CONN_STATE_READ,
                    State::ReadBody => CONN_STATE_READ_POST,
                    State::Handle => CONN_STATE_HANDLE_REQUEST,
                    State::Write => CONN_STATE_WRITE,
                    State::Linger => CONN_STATE_CLOSE,
                };
                counts[state as usize] += 1;
                if records.len() >= ask.max {
                    continue;
                }
                let mut r = stats::Record {
                    state,
                    worker: self.index,
                    remote_port: u32::from(c.info.peer.remote_port),
                    requests: u64::from(c.served),
                    age_ms: now_s.saturating_sub(c.last_active) * 1000,
                    content_length: -1,
                    remote_addr: c.info.peer.remote_addr.clone(),
                    ..Default::default()
                };
                // A head still arriving has no request to describe yet.
                if let Some(req) = c.req.as_ref().filter(|_| c.state != State::ReadHead) {
                    r.age_ms = now_ms.saturating_sub(req.start_us / 1000);
                    r.bytes_in = req.bytes_in;
                    r.content_length = req.head.content_length.map_or(-1, |n| n as i64);
                    r.bytes_out = req.bytes_out;
                    r.bytes_total = req.bytes_out + c.out.len() + req.body.len();
                    r.status = u32::from(req.status);
                    r.method = req.head.method.clone();
                    r.host = req.head.host.clone();
                    if req.target_orig.is_empty() {
                        r.target = req.head.target.clone();
                    } else {
                        r.target = req.target_orig.clone();
                        r.target_rewritten = req.head.target.clone();
                    }
                    r.physical = req.physical.clone();
                }
                records.push(r);
            }
            ask.answer(records, &counts);
        }
    }

    fn check_timeouts(&mut self, now: u64) {
        let mut expired = Vec::new();
        let counters = &self.shared.counters;
        for (k, c) in self.conns.iter_mut() {
            if let Some(req) = c.req.as_mut() {
                // Long transfers show in the per-second figures while they run.
                stats::bump(&counters.bytes_in, req.bytes_in.saturating_sub(req.counted_in));
                stats::bump(&counters.bytes_out, req.bytes_out.saturating_sub(req.counted_out));
                req.counted_in = req.bytes_in;
                req.counted_out = req.bytes_out;
            }
            let idle = now.saturating_sub(c.last_active);
            if idle >= 1 && c.rbuf.is_empty() && c.rbuf.capacity() > 0 && c.req.is_none() {
                // Idle keep-alive connection: give its read buffer back.
                crate::chunk::recycle_buf(std::mem::take(&mut c.rbuf));
            }
            let core = c.req.as_ref().map(|r| r.core()).unwrap_or(&self.loaded.core_base[0]);
            let limit = match c.state {
                State::ReadHead if c.rbuf.is_empty() && c.req.is_none() => {
                    if c.served > 0 {
                        core.max_keep_alive_idle
                    } else {
                        core.max_read_idle
                    }
                }
                State::ReadHead | State::ReadBody => core.max_read_idle,
                State::Write if !c.out.is_empty() => core.max_write_idle,
                State::Linger => 2,
                _ => continue,
            };
            if idle >= u64::from(limit) {
                expired.push(k);
            }
        }
        for k in expired {
            self.close(k);
        }
    }
}

/// Call `done` for the blocking jobs of this worker that finished.
fn run_completions() {
    let done = WCTX.with(|w| {
        let mut w = w.borrow_mut();
        let w = w.as_mut()?;
        let done = w.completions.take();
        w.jobs_out = w.jobs_out.saturating_sub(done.len());
        Some(done)
    });
    for f in done.into_iter().flatten() {
        f();
    }
}

fn dispatch_fd(key: usize, ev: &mio::event::Event) {
    let reg = WCTX.with(|w| {
        let w = w.borrow();
        let w = w.as_ref()?;
        let r = w.fds.get(key)?;
        Some((r.fd, r.data, r.cb, r.ctx))
    });
    let Some((fd, data, cb, ctx)) = reg else { return };
    let mut e = 0;
    if ev.is_readable() {
        e |= FD_READABLE;
    }
    if ev.is_writable() {
        e |= FD_WRITABLE;
    }
    if ev.is_read_closed() || ev.is_write_closed() {
        e |= FD_HUP;
    }
    if ev.is_error() {
        e |= FD_ERROR;
    }
    // SAFETY: the module's callback with its own data and context, on its worker thread.
    unsafe { cb(data.0, ctx, fd, e) };
}

/// Formats an integer without allocating.
struct ItoaBuf(u64);

fn itoa_buf(n: u64) -> ItoaBuf {
    ItoaBuf(n)
}

impl ItoaBuf {
    fn as_bytes<'a>(&self, buf: &'a mut [u8; 20]) -> &'a [u8] {
        let mut n = self.0;
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        &buf[i..]
    }
}

// SAFETY: a Worker moves to its thread once, before it has any connection; ConnInfo slot
// pointers are module state dereferenced only by modules on that thread.
unsafe impl Send for ConnInfo {}
