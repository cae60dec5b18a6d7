//! Idle backend connections kept for reuse, per worker thread (a connection is only ever used
//! on the worker whose poller it would be registered with) and per host.

use socket2::{SockRef, Socket};
use std::cell::RefCell;
use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// Idle connections kept per host and worker; beyond this the oldest is closed.
pub const MAX_IDLE_PER_HOST: usize = 16;
/// An idle connection older than this is closed rather than reused: backends close idle
/// connections on their own timers, and a stale one costs a failed attempt.
pub const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

thread_local! {
    static POOL: RefCell<HashMap<usize, Vec<(Socket, Instant)>>> = RefCell::new(HashMap::new());
}

/// Keep `sock` for the host identified by `key`.
pub fn put(key: usize, sock: Socket) {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.entry(key).or_default();
        if v.len() >= MAX_IDLE_PER_HOST {
            v.remove(0);
        }
        v.push((sock, Instant::now()));
    });
}

/// The most recently used idle connection to the host that still looks open.
pub fn take(key: usize) -> Option<Socket> {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        let v = p.get_mut(&key)?;
        while let Some((s, at)) = v.pop() {
            if at.elapsed() < MAX_IDLE_AGE && still_open(&s) {
                return Some(s);
            }
        }
        None
    })
}

/// An idle connection must have nothing to read: EOF means the backend closed it, and bytes
/// would be a protocol error. (The backend may still close it the moment we send; the caller
/// retries on a fresh connection then.)
fn still_open(s: &Socket) -> bool {
    let mut b = [MaybeUninit::<u8>::uninit(); 1];
    match SockRef::from(s).peek(&mut b) {
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
        Ok(_) => false,
    }
}

/// Idle connections held on this worker (all hosts), for tests and debug lines.
pub fn idle_count() -> usize {
    POOL.with(|p| p.borrow().values().map(Vec::len).sum())
}
