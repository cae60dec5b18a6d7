//! Server life: read the configuration, load the modules, bind the listeners, daemonise,
//! drop privileges, start the workers, and run the main thread's loop (signals, the 1 Hz
//! trigger, child reaping) until told to stop.

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

pub struct Options {
    pub config: PathBuf,
    pub module_dir: PathBuf,
    pub foreground: bool,
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

/// The listeners the configuration asks for: server.bind/server.port and every
/// `$SERVER["socket"] == "..."` block. Each entry is (name for conditions, address).
pub fn listen_specs(loaded: &Loaded) -> Result<Vec<(String, BindAddr)>, String> {
    let s = &loaded.server;
    let mut out = Vec::new();
    let main_name = match &s.bind {
        Some(b) if b.starts_with('/') => b.clone(),
        Some(b) if b.contains(':') && !b.starts_with('[') => format!("[{b}]:{}", s.port),
        Some(b) => format!("{b}:{}", s.port),
        None => format!(":{}", s.port),
    };
    out.push((main_name.clone(), parse_socket_spec(&main_name, s.port)?));
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

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
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

/// Bind one set of listeners per worker (TCP with SO_REUSEPORT; unix sockets shared).
fn bind_all(specs: &[(String, BindAddr)], workers: usize) -> Result<Vec<Vec<Listener>>, String> {
    let mut per: Vec<Vec<Listener>> = (0..workers).map(|_| Vec::new()).collect();
    for (name, addr) in specs {
        let name: Arc<str> = Arc::from(name.as_str());
        match addr {
            BindAddr::Tcp(a) => {
                // The per-worker sockets share the port through SO_REUSEPORT, which would also
                // let a second server of the same user bind it silently and take half of the
                // connections. A plain bind first refuses a port that anything else holds.
                probe_tcp(*a).map_err(|e| format!("cannot bind {name} ({a}): {e}"))?;
                for list in per.iter_mut() {
                    let l = bind_tcp(*a, 1024).map_err(|e| format!("cannot bind {name} ({a}): {e}"))?;
                    list.push(Listener {
                        sock: ListenSock::Tcp(mio::net::TcpListener::from_std(l)),
                        name: name.clone(),
                        local: (!a.ip().is_unspecified()).then(|| Arc::from(a.to_string())),
                    });
                }
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
                for list in per.iter_mut() {
                    let c = l.try_clone().map_err(|e| e.to_string())?;
                    list.push(Listener {
                        sock: ListenSock::Unix(mio::net::UnixListener::from_std(c)),
                        name: name.clone(),
                        local: None,
                    });
                }
            }
        }
    }
    Ok(per)
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
            // SAFETY: child: close the read end, start a new session, detach stdio.
            unsafe {
                libc::close(fds[0]);
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                    libc::close(null);
                }
            }
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

fn drop_privileges(s: &ServerConf) -> Result<(), String> {
    use std::ffi::CString;
    let cstr = |v: &str| CString::new(v).map_err(|_| format!("bad name {v:?}"));
    if let Some(root) = &s.chroot {
        let c = cstr(root)?;
        // SAFETY: chroot and chdir with valid C strings.
        if unsafe { libc::chroot(c.as_ptr()) } != 0 || unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
            return Err(format!("server.chroot {root:?}: {}", io::Error::last_os_error()));
        }
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    if let Some(g) = &s.groupname {
        let c = cstr(g)?;
        // SAFETY: getgrnam returns null or a pointer to static data.
        let gr = unsafe { libc::getgrnam(c.as_ptr()) };
        if gr.is_null() {
            return Err(format!("server.groupname {g:?}: no such group"));
        }
        // SAFETY: gr is non-null; setgid/setgroups with valid arguments.
        unsafe {
            if libc::setgid((*gr).gr_gid) != 0 || libc::setgroups(0, std::ptr::null()) != 0 {
                return Err(format!("setgid {g}: {}", io::Error::last_os_error()));
            }
        }
    }
    if let Some(u) = &s.username {
        let c = cstr(u)?;
        // SAFETY: getpwnam returns null or a pointer to static data.
        let pw = unsafe { libc::getpwnam(c.as_ptr()) };
        if pw.is_null() {
            return Err(format!("server.username {u:?}: no such user"));
        }
        // SAFETY: pw is non-null.
        unsafe {
            if s.groupname.is_none() && libc::setgid((*pw).pw_gid) != 0 {
                return Err(format!("setgid: {}", io::Error::last_os_error()));
            }
            if libc::initgroups(c.as_ptr(), (*pw).pw_gid) != 0 || libc::setuid((*pw).pw_uid) != 0 {
                return Err(format!("setuid {u}: {}", io::Error::last_os_error()));
            }
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
    };
    for (sig, flag) in
        [(SIGTERM, &s.term), (SIGINT, &s.int), (SIGHUP, &s.hup), (SIGUSR1, &s.usr1), (SIGCHLD, &s.chld)]
    {
        signal_hook::flag::register(sig, flag.clone())?;
        signal_hook::low_level::pipe::register(sig, w.try_clone()?)?;
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

/// Run the server until it is stopped. Returns the process exit code.
pub fn run(opts: Options) -> Result<i32, String> {
    let mut loaded = load_config(&opts, true, false)?;
    if let Some(n) = loaded.server.max_fds {
        set_max_fds(n);
    }
    let nworkers = loaded
        .server
        .max_worker
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let specs = listen_specs(&loaded)?;
    let listeners = bind_all(&specs, nworkers)?;
    let ready = if opts.foreground { None } else { daemonize()? };
    if let Some(p) = &loaded.server.pid_file {
        std::fs::write(p, format!("{}\n", std::process::id()))
            .map_err(|e| format!("server.pid-file {p:?}: {e}"))?;
    }
    drop_privileges(&loaded.server)?;
    let signals = install_signals().map_err(|e| format!("signals: {e}"))?;
    if loaded.server.max_connections == 0 {
        if let Some(fds) = loaded.server.max_fds {
            loaded.server.max_connections = (fds / 2) as usize;
        }
    }
    let loaded = Arc::new(loaded);
    let control = Arc::new(Control {
        state: std::sync::atomic::AtomicU8::new(worker::RUN),
        connections: Default::default(),
        max_connections: loaded.server.max_connections,
    });
    let mut threads = Vec::new();
    let mut wakers = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let (poll, waker) = worker::new_poll().map_err(|e| format!("poll: {e}"))?;
        wakers.push(waker);
        let w = Worker::new(i as u32, poll, l, loaded.clone(), control.clone())
            .map_err(|e| format!("worker: {e}"))?;
        let t = std::thread::Builder::new()
            .name(format!("featherd-w{i}"))
            .spawn(move || w.run())
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
        threads.push(t);
    }
    let names: Vec<&str> = specs.iter().map(|(n, _)| n.as_str()).collect();
    log::info!(
        "server started (featherd/{}), {} worker(s), listening on {}",
        env!("CARGO_PKG_VERSION"),
        nworkers,
        names.join(", ")
    );
    if let Some(fd) = ready {
        // Started: detach stderr too (the error log has taken over), then release the parent.
        // SAFETY: open/dup2/close on descriptors this process owns.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null >= 0 {
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
        let _ = io::Write::write_all(&mut std::fs::File::from(fd), b"1");
    }

    let mut last_trigger = Instant::now();
    let mut stopping = false;
    loop {
        wait_signal(&signals, Duration::from_millis(1000));
        if signals.term.swap(false, Ordering::Relaxed) {
            log::info!("SIGTERM: stopping");
            control.state.store(worker::STOP, Ordering::Release);
            wakers.iter().for_each(|w| drop(w.wake()));
            stopping = true;
        }
        if signals.int.swap(false, Ordering::Relaxed) && !stopping {
            log::info!("SIGINT: graceful shutdown (in-flight requests finish)");
            control.state.store(worker::GRACEFUL, Ordering::Release);
            wakers.iter().for_each(|w| drop(w.wake()));
            stopping = true;
        }
        if signals.hup.swap(false, Ordering::Relaxed) {
            crate::errorlog::reopen();
            for (m, h) in &loaded.chains.sighup {
                // SAFETY: the module's hook with its own data, on the main thread.
                unsafe { h(loaded.modules[*m].data.0) };
            }
            log::info!("SIGHUP: logs reopened");
        }
        if signals.usr1.swap(false, Ordering::Relaxed) {
            log::warn!("SIGUSR1: graceful restart is not implemented yet; ignored");
        }
        if signals.chld.swap(false, Ordering::Relaxed) {
            reap(&loaded);
        }
        if last_trigger.elapsed() >= Duration::from_secs(1) {
            last_trigger = Instant::now();
            for (m, h) in &loaded.chains.trigger {
                // SAFETY: as above.
                unsafe { h(loaded.modules[*m].data.0) };
            }
        }
        if threads.iter().all(|t| t.is_finished()) {
            break;
        }
        if stopping && control.state.load(Ordering::Relaxed) == worker::GRACEFUL {
            wakers.iter().for_each(|w| drop(w.wake()));
        }
    }
    for t in threads {
        let _ = t.join();
    }
    host::cleanup(&loaded);
    if let Some(p) = &loaded.server.pid_file {
        let _ = std::fs::remove_file(p);
    }
    for (_, a) in &specs {
        if let BindAddr::Unix(p) = a {
            let _ = std::fs::remove_file(p);
        }
    }
    log::info!("server stopped");
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
}
