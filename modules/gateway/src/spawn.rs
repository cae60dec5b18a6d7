//! Local backends started by the server (`bin-path`), as spawn-fcgi does: the server binds the
//! host's socket (unix `socket` or TCP `host`/`port`), listens, and starts `max-procs`
//! children with that listening socket as their fd 0; they share it and accept from it. A
//! child that exits is started again (reaped by the core, reported through the `waitpid`
//! hook); all are stopped at cleanup.
//!
//! Use: build a [`Spawner`] in `set_defaults` from every host of every config block, call
//! [`Spawner::start`] once (the first `worker_init`), forward `waitpid` and `trigger`, and call
//! [`Spawner::stop`] in `cleanup`.

use crate::hosts::{Addr, Host};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct ProcSet {
    host: Arc<Host>,
    listener: Option<OwnedFd>,
    /// Live children and when each started.
    pids: Vec<(i32, Instant)>,
    /// Children to start again at the next trigger (died too quickly to restart at once).
    owed: usize,
    /// Remove the unix socket file at stop (we created it).
    unlink: bool,
}

/// The `bin-path` processes of a module.
pub struct Spawner {
    sets: Mutex<Vec<ProcSet>>,
    started: AtomicBool,
    stopping: AtomicBool,
}

/// A child that dies within this time after its start is restarted at the next trigger
/// (about a second later) instead of at once, so that a broken bin-path cannot spin.
const QUICK_DEATH: Duration = Duration::from_secs(1);

impl Spawner {
    /// The hosts with a `bin-path` among `hosts` (the same host may be listed twice).
    pub fn new<'a>(hosts: impl Iterator<Item = &'a Arc<Host>>) -> Spawner {
        let mut sets: Vec<ProcSet> = Vec::new();
        for h in hosts {
            if h.config.bin_path.is_none() || sets.iter().any(|s| Arc::ptr_eq(&s.host, h)) {
                continue;
            }
            sets.push(ProcSet { host: h.clone(), listener: None, pids: vec![], owed: 0, unlink: false });
        }
        Spawner { sets: Mutex::new(sets), started: AtomicBool::new(false), stopping: AtomicBool::new(false) }
    }

    pub fn is_empty(&self) -> bool {
        self.sets.lock().map(|s| s.is_empty()).unwrap_or(true)
    }

    /// Bind and start everything (once; later calls return at once). Errors are logged and
    /// leave that host without processes (its requests get 503).
    pub fn start(&self) {
        let Ok(mut sets) = self.sets.lock() else { return };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        for set in sets.iter_mut() {
            match bind(&set.host.config.addr) {
                Ok(Some(fd)) => {
                    set.unlink = matches!(set.host.config.addr, Addr::Unix(_));
                    set.listener = Some(fd);
                }
                Ok(None) => {
                    log::info!(
                        "{}: a backend already listens on {}; not starting {}",
                        set.host.config.name,
                        set.host.config.addr,
                        set.host.config.bin_path.as_deref().unwrap_or("")
                    );
                    continue;
                }
                Err(e) => {
                    log::error!("{}: cannot listen on {}: {e}", set.host.config.name, set.host.config.addr);
                    continue;
                }
            }
            for _ in 0..set.host.config.max_procs {
                spawn_one(set);
            }
        }
    }

    /// A child exited: restart it if it was ours. Returns whether it was.
    pub fn waitpid(&self, pid: i32, status: i32) -> bool {
        let Ok(mut sets) = self.sets.lock() else { return false };
        for set in sets.iter_mut() {
            let Some(i) = set.pids.iter().position(|&(p, _)| p == pid) else { continue };
            let (_, started) = set.pids.swap_remove(i);
            if self.stopping.load(Ordering::Acquire) {
                return true;
            }
            log::warn!(
                "{}: backend process {pid} ({}) {}; starting a new one",
                set.host.config.name,
                set.host.config.bin_path.as_deref().unwrap_or(""),
                describe_status(status)
            );
            if started.elapsed() < QUICK_DEATH {
                set.owed += 1;
            } else {
                spawn_one(set);
            }
            return true;
        }
        false
    }

    /// About once a second: restart children owed.
    pub fn trigger(&self) {
        if self.stopping.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut sets) = self.sets.lock() else { return };
        for set in sets.iter_mut() {
            while set.owed > 0 {
                set.owed -= 1;
                spawn_one(set);
            }
        }
    }

    /// The pids of the live children (for status pages and tests).
    pub fn pids(&self) -> Vec<i32> {
        self.sets
            .lock()
            .map(|s| s.iter().flat_map(|s| s.pids.iter().map(|p| p.0)).collect())
            .unwrap_or_default()
    }

    /// Stop every child (SIGTERM, then SIGKILL after a second) and remove the sockets we made.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let Ok(mut sets) = self.sets.lock() else { return };
        let mut pids: Vec<i32> = sets.iter().flat_map(|s| s.pids.iter().map(|p| p.0)).collect();
        for &p in &pids {
            // SAFETY: kill(2) on a child we started and have not seen exit.
            unsafe { libc::kill(p, libc::SIGTERM) };
        }
        // The core's reaper has stopped by now (cleanup runs after the main loop), so reap
        // our own children here, by pid.
        let deadline = Instant::now() + Duration::from_secs(1);
        while !pids.is_empty() {
            pids.retain(|&p| {
                let mut st = 0;
                // SAFETY: waitpid on our own child with WNOHANG.
                let r = unsafe { libc::waitpid(p, &mut st, libc::WNOHANG) };
                r == 0
            });
            if Instant::now() > deadline {
                for &p in &pids {
                    // SAFETY: as above; the child ignored SIGTERM.
                    unsafe {
                        libc::kill(p, libc::SIGKILL);
                        libc::waitpid(p, std::ptr::null_mut(), 0);
                    }
                }
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for set in sets.iter_mut() {
            set.pids.clear();
            set.listener = None;
            if let (true, Addr::Unix(p)) = (set.unlink, &set.host.config.addr) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

fn describe_status(status: i32) -> String {
    if libc::WIFEXITED(status) {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("was killed by signal {}", libc::WTERMSIG(status))
    } else {
        format!("ended (wait status {status})")
    }
}

/// Bind and listen on `addr`; None when a live backend already answers there.
fn bind(addr: &Addr) -> std::io::Result<Option<OwnedFd>> {
    match addr {
        Addr::Unix(p) => {
            if p.exists() {
                // A unix connect does not wait: it succeeds or is refused at once.
                if std::os::unix::net::UnixStream::connect(p).is_ok() {
                    return Ok(None);
                }
                std::fs::remove_file(p)?;
            }
            let l = std::os::unix::net::UnixListener::bind(p)?;
            Ok(Some(l.into()))
        }
        Addr::Tcp(a) => {
            let l = std::net::TcpListener::bind(a)?;
            Ok(Some(l.into()))
        }
    }
}

fn spawn_one(set: &mut ProcSet) {
    let Some(listener) = &set.listener else { return };
    let c = &set.host.config;
    let Some(bin) = &c.bin_path else { return };
    let stdin = match listener.try_clone() {
        Ok(fd) => fd,
        Err(e) => {
            log::error!("{}: dup of the listening socket: {e}", c.name);
            return;
        }
    };
    // As lighttpd: through the shell, so bin-path may carry arguments.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("exec {bin}"));
    if !c.bin_copy_environment.is_empty() {
        cmd.env_clear();
        for name in &c.bin_copy_environment {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
    }
    for (k, v) in &c.bin_environment {
        cmd.env(k, v);
    }
    // The socket is the child's fd 0 (the FastCGI convention); its output is not ours to
    // read, and an unread pipe would block it.
    cmd.stdin(Stdio::from(stdin)).stdout(Stdio::null()).stderr(Stdio::null());
    match cmd.spawn() {
        Ok(child) => {
            let pid = child.id() as i32;
            // The core reaps (waitpid(-1)); dropping the handle neither waits nor kills.
            drop(child);
            log::info!("{}: started {bin} as process {pid} on {}", c.name, c.addr);
            set.pids.push((pid, Instant::now()));
            set.host.enable();
        }
        Err(e) => log::error!("{}: cannot start {bin}: {e}", c.name),
    }
}
