//! Server life: read the configuration, load the modules, bind the listeners (or take them
//! from systemd), daemonise, drop privileges, start the workers, and run the main thread's
//! loop (signals, the 1 Hz trigger, child reaping, the idle limit) until told to stop. A
//! graceful restart (SIGUSR1) replaces the workers and the modules while the listening
//! sockets, held here, stay open.

use crate::conf::ServerConf;
use crate::host::{self, Loaded};
use crate::worker::{self, Control, ListenSock, Listener, Worker};
use std::io::{self, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Compile-time features, as `-V` lists them and the `server_features` host service reports.
pub const FEATURES: &[(&str, &str)] = &[
    ("+", "IPv6 support"),
    ("+", "unix domain socket support"),
    ("+", "epoll support"),
    ("+", "sendfile support"),
    ("+", "writev support"),
    ("+", "SO_REUSEPORT worker support"),
    ("+", "regex conditionals support"),
    ("+", "look-around and back-reference regex support"),
    ("+", "dynamic module support"),
    ("+", "C module support"),
    ("-", "TLS support"),
    ("-", "HTTP/2 support"),
];

pub struct Options {
    pub config: PathBuf,
    pub module_dir: PathBuf,
    pub foreground: bool,
    /// `-1`: serve the connected socket on stdin, then exit.
    pub oneshot: bool,
    /// `-i SECS`: graceful shutdown after this many seconds without activity (0: never).
    pub idle_limit: u64,
}

/// What a listener binds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Turn a lighttpd socket spec into an address: "host:port", ":port", "[v6]:port", "/path".
pub fn parse_socket_spec(spec: &str, default_port: u16) -> Result<BindAddr, String> {
    if spec.starts_with('/') {
        return Ok(BindAddr::Unix(PathBuf::from(spec)));
    }
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        let end = rest.find(']').ok_or_else(|| format!("bad socket address {spec:?}"))?;
        let port = rest[end + 1..].strip_prefix(':').map(str::to_owned);
        (rest[..end].to_string(), port)
    } else {
        match spec.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p.to_string())),
            _ => (spec.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port in socket address {spec:?}"))?,
        None => default_port,
    };
    let host = if host.is_empty() { "0.0.0.0".to_string() } else { host };
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {spec:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("{spec:?} resolves to no address"))?;
    Ok(BindAddr::Tcp(addr))
}

/// The listeners the configuration asks for: server.bind/server.port (unless `include_main` is
/// false) and every `$SERVER["socket"] == "..."` block. Each entry is (name for conditions,
/// address).
pub fn listen_specs(loaded: &Loaded, include_main: bool) -> Result<Vec<(String, BindAddr)>, String> {
    let s = &loaded.server;
    let mut out = Vec::new();
    let main_name = match &s.bind {
        Some(b) if b.starts_with('/') => b.clone(),
        Some(b) if b.contains(':') && !b.starts_with('[') => format!("[{b}]:{}", s.port),
        Some(b) => format!("{b}:{}", s.port),
        None => format!(":{}", s.port),
    };
    if include_main {
        out.push((main_name.clone(), parse_socket_spec(&main_name, s.port)?));
    }
    for b in &loaded.cfg.blocks {
        let Some(c) = &b.cond else { continue };
        if c.field == crate::config::CondField::ServerSocket && c.op == crate::config::CondOp::Eq {
            let addr = parse_socket_spec(&c.pattern, s.port).map_err(|e| format!("{}: {e}", c.loc))?;
            if !out.iter().any(|(_, a)| *a == addr) {
                out.push((c.pattern.clone(), addr));
            }
        }
    }
    Ok(out)
}

/// `server.defer-accept` on a TCP listening socket we bound: the kernel completes the
/// handshake but queues the connection for accept only once its first bytes are in (or after
/// `secs`), so a new connection is read, answered and closed in the loop turn that accepts
/// it, with no poller registration and no wake-up of its own.
fn set_defer_accept(fd: &OwnedFd, secs: u32) {
    let v = libc::c_int::try_from(secs).unwrap_or(libc::c_int::MAX);
    // SAFETY: fd is an open socket we own; v outlives the call and the length is its size.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::warn!("server.defer-accept: setsockopt failed: {}", io::Error::last_os_error());
    }
}

/// Apply `server.defer-accept` to every TCP socket we bound (inherited sockets keep the
/// settings of whoever made them).
fn apply_defer_accept(sets: &[ListenSet], secs: u32) {
    for s in sets.iter().filter(|s| !s.inherited && matches!(s.addr, BindAddr::Tcp(_))) {
        for fd in &s.socks {
            set_defer_accept(fd, secs);
        }
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking().cloexec(), None)?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    // Inherited by every accepted socket: small responses leave in one writev, and a head
    // followed by a sendfile must not wait for the client's delayed ACK (Nagle would hold it
    // ~40 ms).
    sock.set_nodelay(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    Ok(sock.into())
}

/// Bind `addr` without SO_REUSEPORT and let it go: fails with EADDRINUSE when any socket,
/// SO_REUSEPORT or not, is bound to the address already.
fn probe_tcp(addr: SocketAddr) -> io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.cloexec(), None)?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())
}

/// One listening address and the sockets the main thread holds for it. Workers get
/// duplicates (`dup`) of these descriptors, so a worker that ends (a graceful restart) closes
/// only its copies: the sockets stay open, and connections that arrive meanwhile wait in their
/// kernel accept queues for the next workers.
struct ListenSet {
    /// The name `$SERVER["socket"]` compares with.
    name: Arc<str>,
    addr: BindAddr,
    /// TCP bound here: an SO_REUSEPORT group (each socket has its own accept queue), at least
    /// one per worker. A unix socket or an inherited socket: exactly one, shared by all.
    socks: Vec<OwnedFd>,
    /// More sockets may be bound into the group (TCP sockets we bound ourselves).
    reuseport: bool,
    /// Came from systemd socket activation: kept for the life of the process.
    inherited: bool,
    /// A unix socket file we created: removed when the set is closed.
    unlink: bool,
}

impl Drop for ListenSet {
    fn drop(&mut self) {
        self.socks.clear();
        if let (true, BindAddr::Unix(p)) = (self.unlink, &self.addr) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl ListenSet {
    /// The descriptors worker `i` of `n` accepts from: the group's sockets `j` with
    /// `j % n == i`, or, when the group has fewer sockets than there are workers (a shared
    /// socket, or a group that could not grow), one of them shared with other workers.
    fn for_worker(&self, i: usize, n: usize) -> Vec<&OwnedFd> {
        let own: Vec<&OwnedFd> = self.socks.iter().skip(i).step_by(n.max(1)).collect();
        if own.is_empty() && !self.socks.is_empty() {
            return vec![&self.socks[i % self.socks.len()]];
        }
        own
    }

    /// Bind SO_REUSEPORT sockets until the group has `n` (a restart with more workers). A
    /// failure (after a privilege drop the port may no longer be ours to bind) is logged and
    /// the workers share the sockets there are.
    fn grow(&self, n: usize) -> Vec<OwnedFd> {
        let mut more = Vec::new();
        let BindAddr::Tcp(a) = self.addr else { return more };
        if !self.reuseport {
            return more;
        }
        while self.socks.len() + more.len() < n {
            match bind_tcp(a, 1024) {
                Ok(fd) => more.push(fd),
                Err(e) => {
                    log::warn!(
                        "{}: cannot add a listening socket for a new worker ({e}); workers share",
                        self.name
                    );
                    break;
                }
            }
        }
        more
    }
}

/// Bind a new listening address: one SO_REUSEPORT TCP socket per worker, or one unix socket.
fn open_set(name: &str, addr: &BindAddr, workers: usize) -> Result<ListenSet, String> {
    let name: Arc<str> = Arc::from(name);
    match addr {
        BindAddr::Tcp(a) => {
            // The per-worker sockets share the port through SO_REUSEPORT, which would also
            // let a second server of the same user bind it silently and take half of the
            // connections. A plain bind first refuses a port that anything else holds.
            probe_tcp(*a).map_err(|e| format!("cannot bind {name} ({a}): {e}"))?;
            let mut socks = Vec::with_capacity(workers);
            for _ in 0..workers.max(1) {
                socks.push(bind_tcp(*a, 1024).map_err(|e| format!("cannot bind {name} ({a}): {e}"))?);
            }
            Ok(ListenSet {
                name,
                addr: addr.clone(),
                socks,
                reuseport: true,
                inherited: false,
                unlink: false,
            })
        }
        BindAddr::Unix(p) => {
            // A stale socket file from an earlier run would make bind fail.
            if std::fs::symlink_metadata(p).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            }) {
                let _ = std::fs::remove_file(p);
            }
            let l = std::os::unix::net::UnixListener::bind(p)
                .map_err(|e| format!("cannot bind unix socket {}: {e}", p.display()))?;
            l.set_nonblocking(true).map_err(|e| e.to_string())?;
            Ok(ListenSet {
                name,
                addr: addr.clone(),
                socks: vec![l.into()],
                reuseport: false,
                inherited: false,
                unlink: true,
            })
        }
    }
}

/// The workers' own listeners for worker `i` of `n`: duplicates of the sets' descriptors.
fn worker_listeners(sets: &[ListenSet], i: usize, n: usize) -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    for set in sets {
        for fd in set.for_worker(i, n) {
            let dup = fd.try_clone()?;
            let (sock, local) = match set.addr {
                BindAddr::Tcp(a) => (
                    ListenSock::Tcp(mio::net::TcpListener::from_std(dup.into())),
                    (!a.ip().is_unspecified()).then(|| Arc::from(a.to_string())),
                ),
                BindAddr::Unix(_) => (ListenSock::Unix(mio::net::UnixListener::from_std(dup.into())), None),
            };
            out.push(Listener { sock, name: set.name.clone(), local });
        }
    }
    Ok(out)
}

fn show_addr(a: &BindAddr) -> String {
    match a {
        BindAddr::Tcp(a) => a.to_string(),
        BindAddr::Unix(p) => p.display().to_string(),
    }
}

/// Listening sockets passed by systemd (`LISTEN_PID`, `LISTEN_FDS`, fds 3 and up), when
/// `server.systemd-socket-activation` is enabled. The variables are removed from the
/// environment either way, so the processes the server starts (CGI, backends) do not see them.
/// Each socket is identified by its address (getsockname) and made non-blocking and
/// close-on-exec.
fn take_inherited(enabled: bool) -> Result<Vec<ListenSet>, String> {
    if !enabled {
        return Ok(Vec::new());
    }
    let pid = std::env::var("LISTEN_PID").ok();
    let nfds = std::env::var("LISTEN_FDS").ok();
    // Only the main thread runs yet (no module is initialised), so changing the environment
    // races with nothing.
    for k in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(k);
    }
    let ours = pid.as_deref().and_then(|p| p.trim().parse::<u32>().ok()) == Some(std::process::id());
    let n = nfds.as_deref().and_then(|n| n.trim().parse::<i32>().ok()).unwrap_or(0);
    if !ours || !(1..5000).contains(&n) {
        if pid.is_some() {
            log::info!(
                "server.systemd-socket-activation: LISTEN_PID/LISTEN_FDS are not for this process; binding"
            );
        }
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for fd in 3..3 + n {
        // SAFETY: fcntl(F_GETFD) only queries the descriptor.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(format!("socket activation: LISTEN_FDS={n} but fd {fd} is not open"));
        }
        // SAFETY: systemd passes fds 3..3+LISTEN_FDS to us (sd_listen_fds(3)); each is open
        // (checked above) and taken over exactly once here.
        let sock = unsafe { socket2::Socket::from_raw_fd(fd) };
        let local = sock.local_addr().map_err(|e| format!("socket activation: fd {fd}: getsockname: {e}"))?;
        let addr = if let Some(a) = local.as_socket() {
            BindAddr::Tcp(a)
        } else if let Some(p) = local.as_pathname() {
            BindAddr::Unix(p.to_path_buf())
        } else {
            return Err(format!("socket activation: fd {fd} is neither a TCP nor a named unix socket"));
        };
        if !sock.is_listener().unwrap_or(false) || sock.r#type().ok() != Some(socket2::Type::STREAM) {
            return Err(format!(
                "socket activation: fd {fd} ({}) is not a listening stream socket",
                show_addr(&addr)
            ));
        }
        sock.set_nonblocking(true).map_err(|e| format!("socket activation: fd {fd}: {e}"))?;
        sock.set_cloexec(true).map_err(|e| format!("socket activation: fd {fd}: {e}"))?;
        let name: Arc<str> = Arc::from(show_addr(&addr));
        out.push(ListenSet {
            name,
            addr,
            socks: vec![sock.into()],
            reuseport: false,
            inherited: true,
            unlink: false,
        });
    }
    Ok(out)
}

/// The sockets to listen on at start: every address of `specs`, from the inherited sockets
/// when one has that address, bound otherwise; then the inherited sockets no address names
/// (served with the global configuration, as lighttpd does).
fn open_sets(
    specs: &[(String, BindAddr)],
    mut inherited: Vec<ListenSet>,
    workers: usize,
) -> Result<Vec<ListenSet>, String> {
    let mut sets = Vec::new();
    for (name, addr) in specs {
        if let Some(i) = inherited.iter().position(|s| s.addr == *addr) {
            let mut set = inherited.remove(i);
            set.name = Arc::from(name.as_str());
            sets.push(set);
        } else {
            sets.push(open_set(name, addr, workers)?);
        }
    }
    sets.extend(inherited);
    Ok(sets)
}

/// Parse the config and load (and with `init`, initialise) the modules.
/// The error log is opened first, so that modules' messages during init reach it.
pub fn load_config(opts: &Options, init: bool, log_to_stderr: bool) -> Result<Loaded, String> {
    let cfg = crate::config::parse_file(&opts.config).map_err(|e| e.to_string())?;
    let server = ServerConf::from_config(&cfg)?;
    let path = if log_to_stderr { None } else { server.errorlog.as_deref() };
    crate::errorlog::init(path, log::LevelFilter::Info)?;
    host::load(cfg, &host::LoadOptions { module_dir: &opts.module_dir, init })
}

fn set_max_fds(n: u64) {
    let lim = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
    // SAFETY: setrlimit with a valid struct; failure is reported, not fatal.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit into a valid struct.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
        let soft = libc::rlimit { rlim_cur: (n as libc::rlim_t).min(cur.rlim_max), rlim_max: cur.rlim_max };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
        log::warn!("server.max-fds {n}: raised the soft limit to {} only (hard limit)", soft.rlim_cur);
    }
}

/// Point the given standard descriptors at /dev/null.
fn stdio_to_devnull(fds: &[i32]) {
    // SAFETY: open/dup2/close on descriptors this process owns.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if null >= 0 {
            for &fd in fds {
                libc::dup2(null, fd);
            }
            if !fds.contains(&null) {
                libc::close(null);
            }
        }
    }
}

/// Fork into the background. The parent waits until the child reports that it started (or
/// failed), so `featherd -f conf` returns a meaningful exit status.
fn daemonize() -> Result<Option<OwnedFd>, String> {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 into a valid array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe: {}", io::Error::last_os_error()));
    }
    // SAFETY: fork before any thread is started (workers start after this).
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", io::Error::last_os_error())),
        0 => {
            // SAFETY: child: close the read end, start a new session.
            unsafe {
                libc::close(fds[0]);
                libc::setsid();
            }
            stdio_to_devnull(&[0, 1]);
            // SAFETY: fds[1] is the write end we own.
            Ok(Some(unsafe { OwnedFd::from_raw_fd(fds[1]) }))
        }
        _ => {
            // SAFETY: parent: fds[0] is the read end we own.
            let mut r = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            // SAFETY: close our copy of the write end so EOF arrives if the child dies.
            unsafe { libc::close(fds[1]) };
            let mut b = [0u8; 1];
            let ok = matches!(r.read(&mut b), Ok(1));
            std::process::exit(if ok { 0 } else { 1 });
        }
    }
}

/// server.groupname, server.chroot, server.username, in lighttpd's order: the names are
/// looked up and the groups set while /etc is still reachable, then the chroot, then the
/// user id. Only when started as root (the chroot is attempted in any case, and fails
/// without the privilege). Refuses to "drop" to uid 0 or gid 0, as lighttpd does.
fn drop_privileges(s: &ServerConf) -> Result<(), String> {
    use std::ffi::CString;
    let cstr = |v: &str| CString::new(v).map_err(|_| format!("bad name {v:?}"));
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut gid: Option<libc::gid_t> = None;
    let mut user: Option<(CString, libc::uid_t, libc::gid_t)> = None;
    if root {
        if let Some(g) = &s.groupname {
            let c = cstr(g)?;
            // SAFETY: getgrnam returns null or a pointer to static data, read at once.
            let gr = unsafe { libc::getgrnam(c.as_ptr()) };
            if gr.is_null() {
                return Err(format!("server.groupname {g:?}: no such group"));
            }
            // SAFETY: gr is non-null.
            gid = Some(unsafe { (*gr).gr_gid });
        }
        if let Some(u) = &s.username {
            let c = cstr(u)?;
            // SAFETY: getpwnam returns null or a pointer to static data, read at once.
            let pw = unsafe { libc::getpwnam(c.as_ptr()) };
            if pw.is_null() {
                return Err(format!("server.username {u:?}: no such user"));
            }
            // SAFETY: pw is non-null.
            let (uid, pgid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
            if uid == 0 {
                return Err(format!("server.username {u:?}: will not set uid to 0"));
            }
            gid = gid.or(Some(pgid));
            user = Some((c, uid, pgid));
        }
        if gid == Some(0) {
            return Err("server.groupname: will not set gid to 0".to_string());
        }
        if let Some(g) = gid {
            // SAFETY: setgid/setgroups/initgroups with valid arguments.
            unsafe {
                if libc::setgid(g) != 0 || libc::setgroups(0, std::ptr::null()) != 0 {
                    return Err(format!("setgid {g}: {}", io::Error::last_os_error()));
                }
                if let Some((name, _, _)) = &user {
                    if libc::initgroups(name.as_ptr(), g) != 0 {
                        return Err(format!("initgroups: {}", io::Error::last_os_error()));
                    }
                }
            }
        }
    }
    if let Some(root_dir) = &s.chroot {
        let c = cstr(root_dir)?;
        // SAFETY: chroot and chdir with valid C strings.
        if unsafe { libc::chroot(c.as_ptr()) } != 0 || unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
            return Err(format!("server.chroot {root_dir:?}: {}", io::Error::last_os_error()));
        }
    }
    if let Some((_, uid, _)) = user {
        // SAFETY: setuid with a looked-up uid.
        if unsafe { libc::setuid(uid) } != 0 {
            return Err(format!("setuid {uid}: {}", io::Error::last_os_error()));
        }
    }
    Ok(())
}

struct Signals {
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    usr1: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
    pipe_r: std::os::unix::net::UnixStream,
    /// Also written by workers as they end.
    pipe_w: std::os::unix::net::UnixStream,
}

fn install_signals() -> io::Result<Signals> {
    use signal_hook::consts::*;
    let (r, w) = std::os::unix::net::UnixStream::pair()?;
    r.set_nonblocking(true)?;
    w.set_nonblocking(true)?;
    let s = Signals {
        term: Arc::default(),
        int: Arc::default(),
        hup: Arc::default(),
        usr1: Arc::default(),
        chld: Arc::default(),
        pipe_r: r,
        pipe_w: w,
    };
    for (sig, flag) in
        [(SIGTERM, &s.term), (SIGINT, &s.int), (SIGHUP, &s.hup), (SIGUSR1, &s.usr1), (SIGCHLD, &s.chld)]
    {
        signal_hook::flag::register(sig, flag.clone())?;
        signal_hook::low_level::pipe::register(sig, s.pipe_w.try_clone()?)?;
    }
    // A client closing mid-write must not kill the server.
    // SAFETY: ignoring SIGPIPE is process-wide and has no memory-safety preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    Ok(s)
}

fn wait_signal(s: &Signals, timeout: Duration) {
    let mut pfd = libc::pollfd { fd: s.pipe_r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: poll on one valid pollfd.
    unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as i32) };
    let mut buf = [0u8; 64];
    while matches!((&s.pipe_r).read(&mut buf), Ok(n) if n > 0) {}
}

/// `-1`: take over the connected socket on stdin; fds 0 and 1 then point at /dev/null, so
/// nothing the server starts inherits the connection.
fn take_stdin_socket() -> Result<OwnedFd, String> {
    use std::os::unix::fs::FileTypeExt;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on fd 0 only creates a new descriptor.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) };
    if fd < 0 {
        return Err(format!("-1: stdin is not usable: {}", io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let f = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    if !f.metadata().is_ok_and(|m| m.file_type().is_socket()) {
        return Err("-1: stdin is not a socket (featherd -1 serves a connected socket on fd 0)".to_string());
    }
    stdio_to_devnull(&[0, 1]);
    Ok(f.into())
}

/// `-1`: the name of the configured listener the connection on stdin came through (its local
/// address, else a wildcard address on its port, else the first listener), as lighttpd does.
fn oneshot_socket_name(specs: &[(String, BindAddr)], fd: &OwnedFd) -> Arc<str> {
    let local = socket2::SockRef::from(fd).local_addr().ok();
    let by_addr = local.as_ref().and_then(|l| {
        if let Some(a) = l.as_socket() {
            specs.iter().find(|(_, s)| *s == BindAddr::Tcp(a)).or_else(|| {
                specs.iter().find(
                    |(_, s)| matches!(s, BindAddr::Tcp(w) if w.port() == a.port() && w.ip().is_unspecified()),
                )
            })
        } else {
            let p = l.as_pathname()?;
            specs.iter().find(|(_, s)| matches!(s, BindAddr::Unix(u) if u == p))
        }
    });
    Arc::from(by_addr.or(specs.first()).map_or("", |(n, _)| n.as_str()))
}

/// The workers of one configuration.
struct Generation {
    loaded: Arc<Loaded>,
    control: Arc<Control>,
    threads: Vec<std::thread::JoinHandle<()>>,
    wakers: Vec<Arc<mio::Waker>>,
}

impl Generation {
    fn set_state(&self, state: u8) {
        self.control.state.store(state, Ordering::Release);
        self.wake();
    }

    fn wake(&self) {
        self.wakers.iter().for_each(|w| drop(w.wake()));
    }

    /// Every worker has ended its loop (joining then waits only for the threads' exit) or
    /// its thread is gone (also after a panic).
    fn finished(&self) -> bool {
        self.control.exited.load(Ordering::Acquire) >= self.threads.len()
            || self.threads.iter().all(|t| t.is_finished())
    }

    fn join(&mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn worker_count(s: &ServerConf) -> usize {
    s.max_worker.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Start `n` workers over `sets` (and, for `-1`, the one connection).
fn start_workers(
    mut loaded: Loaded,
    sets: &[ListenSet],
    n: usize,
    notify: &std::os::unix::net::UnixStream,
    oneshot: Option<(OwnedFd, Arc<str>)>,
) -> Result<Generation, String> {
    if loaded.server.max_connections == 0 {
        if let Some(fds) = loaded.server.max_fds {
            loaded.server.max_connections = (fds / 2) as usize;
        }
    }
    crate::stats::set_max_connections(loaded.server.max_connections);
    let loaded = Arc::new(loaded);
    let notify = notify.try_clone().map_err(|e| format!("signal pipe: {e}"))?;
    let control = Arc::new(Control::new(loaded.server.max_connections, Some(notify)));
    let mut gen =
        Generation { loaded: loaded.clone(), control: control.clone(), threads: vec![], wakers: vec![] };
    let mut oneshot = oneshot;
    for i in 0..n {
        let (poll, waker) = worker::new_poll().map_err(|e| format!("poll: {e}"))?;
        gen.wakers.push(waker);
        let l = worker_listeners(sets, i, n).map_err(|e| format!("listening sockets: {e}"))?;
        let mut w = Worker::new(i as u32, poll, l, loaded.clone(), control.clone())
            .map_err(|e| format!("worker: {e}"))?;
        if let Some((fd, name)) = oneshot.take() {
            w.adopt(fd, name).map_err(|e| format!("-1: the socket on stdin: {e}"))?;
        }
        let t = std::thread::Builder::new()
            .name(format!("featherd-w{i}"))
            .spawn(move || w.run())
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        gen.threads.push(t);
    }
    Ok(gen)
}

/// A new configuration, checked and with its new listening sockets bound, waiting for the old
/// workers to finish (SIGUSR1).
struct Restart {
    /// Modules loaded and every key checked; not initialised yet.
    loaded: Loaded,
    specs: Vec<(String, BindAddr)>,
    workers: usize,
    /// Addresses the new configuration adds, bound already (connections queue there).
    fresh: Vec<ListenSet>,
    /// More SO_REUSEPORT sockets for kept addresses (more workers than before).
    grow: Vec<(usize, Vec<OwnedFd>)>,
}

/// SIGUSR1, first step, while the old workers still serve: read and check the new
/// configuration (syntax, every key owned and of the right type, the modules found and
/// compatible, the listen addresses valid) and bind the addresses it adds. Any error leaves
/// the running server as it is.
fn prepare_restart(opts: &Options, sets: &[ListenSet], activated: bool) -> Result<Restart, String> {
    let cfg = crate::config::parse_file(&opts.config).map_err(|e| e.to_string())?;
    let loaded = host::load(cfg, &host::LoadOptions { module_dir: &opts.module_dir, init: false })?;
    let new_log = loaded.server.errorlog.as_deref().filter(|p| !p.is_empty());
    if let Some(p) = new_log.filter(|p| crate::errorlog::current_path().as_deref() != Some(*p)) {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .map_err(|e| format!("cannot open server.errorlog {p:?}: {e}"))?;
    }
    let workers = worker_count(&loaded.server);
    let include_main =
        !(activated && loaded.server.systemd_socket_activation && loaded.server.bind.is_none());
    let specs = listen_specs(&loaded, include_main)?;
    let mut fresh: Vec<ListenSet> = Vec::new();
    let mut grow = Vec::new();
    for (name, addr) in &specs {
        match sets.iter().position(|s| s.addr == *addr) {
            Some(i) => {
                let more = sets[i].grow(workers);
                if !more.is_empty() {
                    grow.push((i, more));
                }
            }
            None => fresh.push(open_set(name, addr, workers)?),
        }
    }
    Ok(Restart { loaded, specs, workers, fresh, grow })
}

/// SIGUSR1, last step, once the old workers are gone and the old modules' cleanup ran: the new
/// error log, the new modules' init, and the listening sockets of the new configuration (kept
/// ones unchanged, removed ones closed). On an error the previous configuration is loaded and
/// initialised again from its parsed form; only if that fails too does the server stop.
fn commit_restart(
    r: Restart,
    sets: &mut Vec<ListenSet>,
    old_cfg: crate::config::Config,
    old_server: &ServerConf,
    opts: &Options,
) -> Result<(Loaded, usize, bool), String> {
    let Restart { mut loaded, specs, workers, fresh, grow } = r;
    // Sockets added to a group are kept whatever happens: connections may wait in them.
    for (i, more) in grow {
        sets[i].socks.extend(more);
    }
    let s = &loaded.server;
    for (key, changed) in [
        ("server.username", s.username != old_server.username),
        ("server.groupname", s.groupname != old_server.groupname),
        ("server.chroot", s.chroot != old_server.chroot),
        ("server.pid-file", s.pid_file != old_server.pid_file),
    ] {
        if changed {
            log::warn!(
                "SIGUSR1: {key} changed; it takes effect at the next start, not on a graceful restart"
            );
        }
    }
    let applied = crate::errorlog::init(s.errorlog.as_deref(), log::LevelFilter::Info)
        .and_then(|()| crate::errorlog::init_breakage(s.breakagelog.as_deref()))
        .and_then(|()| {
            let r = host::init(&mut loaded);
            if r.is_err() {
                // Every init ran (set_defaults is what refused): release what the modules made
                // (open files, piped loggers) before the previous configuration starts again.
                host::cleanup(&loaded);
            }
            r
        });
    match applied {
        Ok(()) => {
            if let Some(n) = loaded.server.max_fds {
                set_max_fds(n);
            }
            let mut fresh = fresh;
            let mut old = std::mem::take(sets);
            for (name, addr) in &specs {
                let set = match old.iter().position(|s| s.addr == *addr) {
                    Some(i) => Some(old.remove(i)),
                    None => fresh.iter().position(|s| s.addr == *addr).map(|i| fresh.remove(i)),
                };
                if let Some(mut set) = set {
                    set.name = Arc::from(name.as_str());
                    sets.push(set);
                }
            }
            // What systemd handed over stays ours; what the new configuration dropped closes.
            let (keep, closed): (Vec<ListenSet>, Vec<ListenSet>) = old.into_iter().partition(|s| s.inherited);
            for c in &closed {
                log::info!("SIGUSR1: no longer listening on {}", c.name);
            }
            sets.extend(keep);
            apply_defer_accept(sets, loaded.server.defer_accept);
            Ok((loaded, workers, true))
        }
        Err(e) => {
            log::error!(
                "SIGUSR1: the new configuration failed to initialise, going back to the previous one: {e}"
            );
            drop(fresh);
            let _ = crate::errorlog::init(old_server.errorlog.as_deref(), log::LevelFilter::Info);
            let _ = crate::errorlog::init_breakage(old_server.breakagelog.as_deref());
            let old = host::load(old_cfg, &host::LoadOptions { module_dir: &opts.module_dir, init: true })
                .map_err(|e| {
                    format!("SIGUSR1: the previous configuration failed to initialise again: {e}")
                })?;
            let n = worker_count(&old.server);
            Ok((old, n, false))
        }
    }
}

/// What the main loop is doing.
enum Phase {
    Running,
    /// SIGUSR1: the old workers finish their requests, then the new configuration starts.
    Restarting(Box<Restart>),
    /// SIGINT, SIGTERM, the idle limit, or the end of the `-1` connection.
    Stopping,
}

/// Run the server until it is stopped. Returns the process exit code.
pub fn run(opts: Options) -> Result<i32, String> {
    // -1: take the connection before anything else may use fds 0 and 1.
    let oneshot_fd = if opts.oneshot { Some(take_stdin_socket()?) } else { None };
    crate::stats::mark_start();
    let cfg = crate::config::parse_file(&opts.config).map_err(|e| e.to_string())?;
    let server = ServerConf::from_config(&cfg)?;
    crate::errorlog::init(server.errorlog.as_deref(), log::LevelFilter::Info)?;
    crate::errorlog::init_breakage(server.breakagelog.as_deref())?;
    let inherited = if opts.oneshot { Vec::new() } else { take_inherited(server.systemd_socket_activation)? };
    let activated = !inherited.is_empty();
    let loaded = host::load(cfg, &host::LoadOptions { module_dir: &opts.module_dir, init: true })?;
    if let Some(n) = loaded.server.max_fds {
        set_max_fds(n);
    }
    let mut nworkers = worker_count(&loaded.server);
    if opts.oneshot && nworkers > 1 {
        if loaded.server.max_worker.is_some() {
            log::info!("-1 (one connection) runs one worker; server.max-worker is not used");
        }
        nworkers = 1;
    }
    // With sockets from systemd and no server.bind, server.port is not bound in addition (the
    // inherited sockets are the listeners), as lighttpd does.
    let include_main = !(activated && loaded.server.bind.is_none());
    let specs = listen_specs(&loaded, include_main)?;
    let oneshot = oneshot_fd.map(|fd| {
        let name = oneshot_socket_name(&specs, &fd);
        (fd, name)
    });
    let mut sets = if opts.oneshot { Vec::new() } else { open_sets(&specs, inherited, nworkers)? };
    apply_defer_accept(&sets, loaded.server.defer_accept);
    let ready = if opts.foreground || opts.oneshot { None } else { daemonize()? };
    if !opts.oneshot {
        if let Some(p) = &loaded.server.pid_file {
            std::fs::write(p, format!("{}\n", std::process::id()))
                .map_err(|e| format!("server.pid-file {p:?}: {e}"))?;
        }
    }
    drop_privileges(&loaded.server)?;
    let signals = install_signals().map_err(|e| format!("signals: {e}"))?;
    let pid_file = if opts.oneshot { None } else { loaded.server.pid_file.clone() };
    let chrooted = loaded.server.chroot.is_some();
    let mut gen = start_workers(loaded, &sets, nworkers, &signals.pipe_w, oneshot)?;
    if !opts.oneshot {
        let names: Vec<&str> = sets.iter().map(|s| &*s.name).collect();
        log::info!(
            "server started (featherd/{}), {} worker(s), listening on {}",
            env!("CARGO_PKG_VERSION"),
            nworkers,
            names.join(", ")
        );
    }
    if let Some(fd) = ready {
        // Started: detach stderr too (the error log has taken over), then release the parent.
        stdio_to_devnull(&[2]);
        let _ = io::Write::write_all(&mut std::fs::File::from(fd), b"1");
    }

    let mut last_trigger = Instant::now();
    let mut phase = Phase::Running;
    let mut idle_exit = false;
    loop {
        wait_signal(&signals, Duration::from_millis(1000));
        if signals.term.swap(false, Ordering::Relaxed) {
            log::info!("SIGTERM: stopping");
            gen.set_state(worker::STOP);
            phase = Phase::Stopping;
        }
        if signals.int.swap(false, Ordering::Relaxed) && !matches!(phase, Phase::Stopping) {
            log::info!("SIGINT: graceful shutdown (in-flight requests finish)");
            gen.set_state(worker::GRACEFUL);
            // Refuse new connections at once (a restart in progress is abandoned).
            sets.clear();
            phase = Phase::Stopping;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            crate::errorlog::reopen();
            crate::errorlog::reopen_breakage();
            for (m, h) in &gen.loaded.chains.sighup {
                // SAFETY: the module's hook with its own data, on the main thread.
                unsafe { h(gen.loaded.modules[*m].data.0) };
            }
            log::info!("SIGHUP: logs reopened");
        }
        if signals.usr1.swap(false, Ordering::Relaxed) {
            match phase {
                Phase::Running if opts.oneshot => {
                    // As lighttpd: no restart in one-shot mode; finish the connection and exit.
                    log::info!("SIGUSR1 with -1: graceful shutdown");
                    gen.set_state(worker::GRACEFUL);
                    phase = Phase::Stopping;
                }
                Phase::Running if chrooted => log::error!(
                    "SIGUSR1: no graceful restart with server.chroot (the configuration and the modules \
                     are outside the new root); stop and start the server to apply a new configuration"
                ),
                Phase::Running => match prepare_restart(&opts, &sets, activated) {
                    Ok(r) => {
                        log::info!("SIGUSR1: graceful restart: the new configuration is valid; in-flight requests finish first");
                        gen.set_state(worker::GRACEFUL);
                        phase = Phase::Restarting(Box::new(r));
                    }
                    Err(e) => log::error!(
                        "SIGUSR1: the new configuration is not valid; keeping the current one: {e}"
                    ),
                },
                _ => log::info!("SIGUSR1 ignored: a restart or a shutdown is already in progress"),
            }
        }
        if signals.chld.swap(false, Ordering::Relaxed) {
            reap(&gen.loaded);
        }
        if last_trigger.elapsed() >= Duration::from_secs(1) {
            last_trigger = Instant::now();
            for (m, h) in &gen.loaded.chains.trigger {
                // SAFETY: as above.
                unsafe { h(gen.loaded.modules[*m].data.0) };
            }
        }
        if opts.idle_limit > 0 && matches!(phase, Phase::Running) {
            let idle =
                crate::http::unix_now().saturating_sub(gen.control.last_activity.load(Ordering::Relaxed));
            if idle > opts.idle_limit {
                log::info!("idle timeout {}s exceeded, initiating graceful shutdown", opts.idle_limit);
                gen.set_state(worker::GRACEFUL);
                sets.clear();
                phase = Phase::Stopping;
                idle_exit = true;
            }
        }
        if gen.finished() {
            gen.join();
            let Phase::Restarting(r) = std::mem::replace(&mut phase, Phase::Running) else { break };
            host::cleanup(&gen.loaded);
            let old_server = gen.loaded.server.clone();
            let old_cfg = gen.loaded.cfg.clone();
            drop(gen);
            let (loaded, n, renewed) = match commit_restart(*r, &mut sets, old_cfg, &old_server, &opts) {
                Ok(c) => c,
                Err(e) => {
                    if let Some(p) = &pid_file {
                        let _ = std::fs::remove_file(p);
                    }
                    return Err(e);
                }
            };
            nworkers = n;
            if renewed {
                crate::stats::count_restart();
            }
            gen = start_workers(loaded, &sets, nworkers, &signals.pipe_w, None)?;
            let names: Vec<&str> = sets.iter().map(|s| &*s.name).collect();
            log::info!(
                "SIGUSR1: {}, {} worker(s), listening on {}",
                if renewed { "graceful restart done" } else { "the previous configuration runs again" },
                nworkers,
                names.join(", ")
            );
            continue;
        }
        if gen.control.state.load(Ordering::Relaxed) == worker::GRACEFUL {
            gen.wake();
        }
    }
    host::cleanup(&gen.loaded);
    if let Some(p) = &pid_file {
        let _ = std::fs::remove_file(p);
    }
    drop(sets);
    if idle_exit {
        log::info!("server stopped after idle timeout");
    } else if !opts.oneshot {
        log::info!("server stopped");
    }
    Ok(0)
}

fn reap(loaded: &Loaded) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer; WNOHANG never blocks.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
        for (m, h) in &loaded.chains.waitpid {
            // SAFETY: the module's hook with its own data, on the main thread.
            if unsafe { h(loaded.modules[*m].data.0, pid, status) } == featherd_mod_api::abi::HANDLER_FINISHED
            {
                break;
            }
        }
    }
}

/// Where the modules are by default: next to the binary.
pub fn default_module_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_specs() {
        assert_eq!(parse_socket_spec(":8080", 80), Ok(BindAddr::Tcp("0.0.0.0:8080".parse().unwrap())));
        assert_eq!(parse_socket_spec("127.0.0.1:81", 80), Ok(BindAddr::Tcp("127.0.0.1:81".parse().unwrap())));
        assert_eq!(parse_socket_spec("127.0.0.1", 80), Ok(BindAddr::Tcp("127.0.0.1:80".parse().unwrap())));
        assert_eq!(parse_socket_spec("[::1]:82", 80), Ok(BindAddr::Tcp("[::1]:82".parse().unwrap())));
        assert_eq!(parse_socket_spec("/tmp/s", 80), Ok(BindAddr::Unix("/tmp/s".into())));
        assert!(parse_socket_spec("1.2.3.4:notaport", 80).is_err());
    }

    fn set_of(n: usize) -> ListenSet {
        let socks = (0..n).map(|_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap())).collect();
        ListenSet {
            name: Arc::from("t"),
            addr: BindAddr::Tcp("127.0.0.1:1".parse().unwrap()),
            socks,
            reuseport: false,
            inherited: false,
            unlink: false,
        }
    }

    /// Which of the set's sockets each of `workers` workers gets (by index).
    fn shares(set: &ListenSet, workers: usize) -> Vec<Vec<usize>> {
        let index = |fd: &OwnedFd| set.socks.iter().position(|s| s.as_raw_fd() == fd.as_raw_fd()).unwrap();
        (0..workers).map(|i| set.for_worker(i, workers).into_iter().map(index).collect()).collect()
    }

    #[test]
    fn every_socket_of_a_group_has_a_worker() {
        // As many as workers: one each.
        assert_eq!(shares(&set_of(3), 3), vec![vec![0], vec![1], vec![2]]);
        // More sockets than workers (a restart to fewer workers): none is left without one.
        assert_eq!(shares(&set_of(4), 2), vec![vec![0, 2], vec![1, 3]]);
        assert_eq!(shares(&set_of(3), 1), vec![vec![0, 1, 2]]);
        // Fewer (a shared socket, or a group that could not grow): workers share.
        assert_eq!(shares(&set_of(1), 3), vec![vec![0], vec![0], vec![0]]);
        assert_eq!(shares(&set_of(2), 3), vec![vec![0], vec![1], vec![0]]);
    }
}
