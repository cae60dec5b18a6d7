//! The CGI processes this module started, until the core reaps them.
//!
//! The core's main thread reaps every child (`waitpid(-1)`) and offers the pid to the
//! modules' `waitpid` hooks, so a module never waits itself. A pid is only signalled while it
//! is in this table, i.e. before its `waitpid` hook ran, so a pid the kernel has recycled for
//! another process is never hit. Spawning happens with the table locked: a child that exits
//! at once is reaped by the core, and its hook call waits for the lock until the pid is in the
//! table, so it is always recognised as ours.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a script may go on after its request is over before it gets SIGTERM.
pub const GRACE: Duration = Duration::from_secs(2);
/// How long after SIGTERM before SIGKILL.
pub const KILL_AFTER: Duration = Duration::from_secs(2);

pub struct Tracked {
    /// The script, for log lines.
    pub script: String,
    /// When to send SIGTERM (set once the request no longer needs the process).
    pub term_at: Option<Instant>,
    /// When to send SIGKILL (set once SIGTERM went out).
    pub kill_at: Option<Instant>,
    /// We signalled it: a death by signal is expected, not worth a log line.
    pub signalled: bool,
}

static CHILDREN: Mutex<BTreeMap<i32, Tracked>> = Mutex::new(BTreeMap::new());

/// The table, also after a panic elsewhere poisoned the lock (its data stays consistent:
/// every update is a single insert, remove or field store).
pub fn table() -> MutexGuard<'static, BTreeMap<i32, Tracked>> {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Signal the script's process group (the script and whatever it started).
fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects; pid > 0 is a child we have not been told was
    // reaped, and it leads its own process group (spawned with process_group(0)).
    unsafe {
        if libc::kill(-pid, sig) != 0 {
            libc::kill(pid, sig);
        }
    }
}

fn term(pid: i32, t: &mut Tracked, now: Instant) {
    signal(pid, libc::SIGTERM);
    t.signalled = true;
    t.term_at = None;
    t.kill_at = Some(now + KILL_AFTER);
}

/// The request is done with `pid`. `now_kill`: it was abandoned (client gone, error), so
/// SIGTERM it at once; otherwise it finished its output and gets a short grace to exit.
pub fn release(pid: i32, now_kill: bool) {
    let mut t = table();
    let Some(c) = t.get_mut(&pid) else { return };
    let now = Instant::now();
    if now_kill && c.kill_at.is_none() {
        log::debug!("terminating CGI pid {pid} ({}): its request is gone", c.script);
        term(pid, c, now);
    } else if c.term_at.is_none() && c.kill_at.is_none() {
        c.term_at = Some(now + GRACE);
    }
}

/// About once a second (main thread): escalate on processes that overstay.
pub fn tick() {
    let now = Instant::now();
    let mut t = table();
    for (&pid, c) in t.iter_mut() {
        if c.term_at.is_some_and(|at| at <= now) {
            log::info!("CGI pid {pid} ({}) still running after its request ended: SIGTERM", c.script);
            term(pid, c, now);
        } else if c.kill_at.is_some_and(|at| at <= now) {
            log::warn!("CGI pid {pid} ({}) ignored SIGTERM: SIGKILL", c.script);
            signal(pid, libc::SIGKILL);
            c.kill_at = None;
        }
    }
}

/// The core reaped `pid`. Returns whether it was ours.
pub fn reaped(pid: i32, status: i32) -> bool {
    let Some(c) = table().remove(&pid) else { return false };
    if libc::WIFSIGNALED(status) && !c.signalled {
        log::error!("CGI pid {pid} ({}) died with signal {}", c.script, libc::WTERMSIG(status));
    } else if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0 {
        log::info!("CGI pid {pid} ({}) exited with status {}", c.script, libc::WEXITSTATUS(status));
    }
    true
}

/// Server shutdown (main thread, workers gone, the core no longer reaps): stop every
/// remaining script and reap it here, SIGKILL after a short wait.
pub fn shutdown() {
    let mut t = table();
    if t.is_empty() {
        return;
    }
    let now = Instant::now();
    for (&pid, c) in t.iter_mut() {
        term(pid, c, now);
    }
    let deadline = now + KILL_AFTER;
    while !t.is_empty() {
        let pids: Vec<i32> = t.keys().copied().collect();
        for pid in pids {
            let mut st = 0;
            // SAFETY: waitpid on our own child with a valid status pointer; WNOHANG.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid || r < 0 {
                t.remove(&pid);
            }
        }
        if t.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            for (&pid, c) in t.iter() {
                log::warn!("CGI pid {pid} ({}) ignored SIGTERM at shutdown: SIGKILL", c.script);
                signal(pid, libc::SIGKILL);
                let mut st = 0;
                // SAFETY: as above; SIGKILL was just sent, so this returns promptly.
                unsafe { libc::waitpid(pid, &mut st, 0) };
            }
            t.clear();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
