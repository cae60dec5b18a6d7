//! The blocking pool: a few threads, shared by all workers, for module work that must block or
//! burn CPU (a bcrypt password check, a large directory walk) and so must not run on a worker's
//! event loop, where it would stall every other client of that worker.
//!
//! Data flow: a module calls `blocking_submit` from a hook or callback on a worker thread. The
//! task goes into one queue shared by the pool threads, together with the submitting worker's
//! [`Completions`]. A pool thread runs the module's `job`, pushes the task onto that worker's
//! completion queue and wakes the worker's poller (the same mio `Waker` the main thread uses
//! for control changes). The worker drains its queue once per loop turn
//! ([`crate::worker`]) and calls the module's `done` there, on the thread that submitted it, so
//! `done` may use every host service (wake the request, set timers).
//!
//! The threads start on the first submission (a server that never needs them never has them)
//! and live as long as the process. How many: the CPU count, at least 2 and at most 4. A job
//! that never returns keeps its thread busy forever; jobs are meant to be bounded.

use crate::host::DataPtr;
use featherd_mod_api::abi::fd_blocking_fn;
use mio::Waker;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

/// One submitted job and where its completion goes.
pub struct Task {
    pub data: DataPtr,
    pub job: fd_blocking_fn,
    pub done: fd_blocking_fn,
    pub ctx: CtxPtr,
    /// Taken before the task goes into that same queue (no reference cycle).
    reply: Option<Arc<Completions>>,
}

/// The module's context pointer. The module hands it over with the job (ABI rule: `job` runs
/// on a pool thread, `done` on the submitting worker), so moving it between threads is the
/// module's stated intent.
#[derive(Clone, Copy)]
pub struct CtxPtr(pub *mut c_void);
// SAFETY: see above; the host itself never dereferences the pointer.
unsafe impl Send for CtxPtr {}

/// Something to run on a worker's loop: a finished job's `done`, a finished connection
/// snapshot's reply ([`crate::stats`]).
pub type Completion = Box<dyn FnOnce() + Send>;

/// A worker's inbox of finished work.
pub struct Completions {
    queue: Mutex<Vec<Completion>>,
    pending: AtomicBool,
    waker: Option<Arc<Waker>>,
}

impl Completions {
    pub fn new(waker: Option<Arc<Waker>>) -> Arc<Completions> {
        Arc::new(Completions { queue: Mutex::new(Vec::new()), pending: AtomicBool::new(false), waker })
    }

    /// Whether the worker can be woken: without a waker it must poll with a short timeout
    /// while jobs are out.
    pub fn has_waker(&self) -> bool {
        self.waker.is_some()
    }

    /// Queue `t` for the worker's next loop turn and wake the worker (any thread).
    pub fn push(&self, t: Completion) {
        match self.queue.lock() {
            Ok(mut q) => q.push(t),
            Err(p) => p.into_inner().push(t),
        }
        self.pending.store(true, Ordering::Release);
        if let Some(w) = &self.waker {
            let _ = w.wake();
        }
    }

    /// The finished work, oldest first (cheap when there is none).
    pub fn take(&self) -> Vec<Completion> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        match self.queue.lock() {
            Ok(mut q) => std::mem::take(&mut *q),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        }
    }
}

struct Pool {
    tx: Mutex<Sender<Task>>,
}

static POOL: OnceLock<Option<Pool>> = OnceLock::new();

/// How many pool threads: the CPU count, between 2 and 4.
pub fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4)
}

fn start() -> Option<Pool> {
    let (tx, rx) = channel::<Task>();
    let rx = Arc::new(Mutex::new(rx));
    let mut started = 0;
    for i in 0..pool_size() {
        let rx = rx.clone();
        let t = std::thread::Builder::new().name(format!("featherd-blocking{i}")).spawn(move || run(&rx));
        match t {
            Ok(_) => started += 1,
            Err(e) => log::error!("cannot start blocking thread {i}: {e}"),
        }
    }
    if started == 0 {
        return None;
    }
    log::debug!("blocking pool started with {started} threads");
    Some(Pool { tx: Mutex::new(tx) })
}

fn run(rx: &Mutex<Receiver<Task>>) {
    loop {
        let task = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(task) = task else { return };
        // SAFETY: the module's job with its own data and context (ABI: `job` runs on a pool
        // thread and calls no host service). The Rust SDK catches panics inside the job.
        unsafe { (task.job)(task.data.0, task.ctx.0) };
        let mut task = task;
        if let Some(reply) = task.reply.take() {
            let Task { data, done, ctx, .. } = task;
            reply.push(Box::new(move || {
                // Whole wrappers (Send), not their raw-pointer fields, go into the closure.
                let (data, ctx) = (data, ctx);
                // SAFETY: the module's completion with its own data and context, run by the
                // worker that submitted the job (ABI rule for blocking_submit).
                unsafe { done(data.0, ctx.0) }
            }));
        }
    }
}

/// Queue a job; its completion goes to `reply`. False when no pool thread could be started.
pub fn submit(
    data: DataPtr,
    job: fd_blocking_fn,
    done: fd_blocking_fn,
    ctx: *mut c_void,
    reply: Arc<Completions>,
) -> bool {
    let Some(pool) = POOL.get_or_init(start) else { return false };
    let task = Task { data, job, done, ctx: CtxPtr(ctx), reply: Some(reply) };
    match pool.tx.lock() {
        Ok(tx) => tx.send(task).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant};

    static RAN: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn job(_d: *mut c_void, ctx: *mut c_void) {
        RAN.fetch_add(ctx as usize, Ordering::SeqCst);
    }
    unsafe extern "C" fn done(_d: *mut c_void, _ctx: *mut c_void) {}

    #[test]
    fn jobs_run_and_come_back_to_their_queue() {
        let reply = Completions::new(None);
        for _ in 0..10 {
            assert!(submit(DataPtr(std::ptr::null_mut()), job, done, 3 as *mut c_void, reply.clone()));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut back = 0;
        while back < 10 {
            assert!(Instant::now() < deadline, "jobs did not come back");
            back += reply.take().len();
            std::thread::yield_now();
        }
        assert_eq!(RAN.load(Ordering::SeqCst), 30);
        assert!(reply.take().is_empty());
    }
}
