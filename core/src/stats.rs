//! Server-wide figures for status pages (ABI 1.7 host services, used by mod_status): the
//! per-worker counters, the snapshot of every worker's connections, and the named counters
//! modules publish (lighttpd's plugin statistics).
//!
//! Data flow:
//!
//! * **Counters.** Each worker owns a [`WorkerShared`] and is the only thread that writes its
//!   [`WorkerCounters`]: a plain load and store (no read-modify-write, no lock), a few times
//!   per request. [`server_stats`] (any thread) sums the live workers' counters and those of
//!   the workers that have ended (folded into the registry when a worker ends, so totals
//!   survive a graceful restart).
//! * **Connection snapshots.** [`collect`] puts a [`Collection`] in every live worker's inbox
//!   and wakes it. Each worker answers from its own loop, between two events
//!   ([`WorkerShared::take_asks`], then [`Collection::answer`]): it walks its own connections,
//!   so nothing is shared while a worker serves and no worker waits for another. The last
//!   answer hands the finished collection to the caller's reply (the calling worker's
//!   completion queue, see [`crate::worker`]). A worker that ends answers what is left in its
//!   inbox with nothing, so a collection always completes while its caller runs.
//! * **Named counters.** [`counter`] returns a process-lifetime `AtomicI64` by name; modules
//!   update it themselves (relaxed atomics). [`counter_at`] lists those asked for since the
//!   configuration was last loaded ([`new_configuration`]), in name order.

use featherd_mod_api::abi::{ServerStats, CONN_STATE_COUNT};
use mio::Waker;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// Counters of one worker, written only by that worker's thread.
#[derive(Default)]
pub struct WorkerCounters {
    pub requests: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub accepted: AtomicU64,
    pub open: AtomicU64,
}

/// Add `n` to a counter its owning thread alone writes: a load and a store, which on x86 and
/// ARM are plain moves (a read-modify-write would lock the bus for nothing).
#[inline]
pub fn bump(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Subtract `n` (same single-writer rule as [`bump`]).
#[inline]
pub fn drop_by(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_sub(n), Ordering::Relaxed);
}

/// What a worker shares with the rest of the server: its counters and its inbox of snapshot
/// requests.
pub struct WorkerShared {
    pub index: u32,
    pub counters: WorkerCounters,
    inbox: Mutex<Inbox>,
    /// Something is in the inbox (checked once per loop turn, without the lock).
    pending: AtomicBool,
    waker: Option<Arc<Waker>>,
}

#[derive(Default)]
struct Inbox {
    /// The worker has ended: asks are answered at once, with nothing.
    closed: bool,
    asks: Vec<Arc<Collection>>,
}

impl WorkerShared {
    /// Whether a snapshot request waits (one relaxed load: the worker's loop calls it every
    /// turn).
    #[inline]
    pub fn has_asks(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// The snapshot requests waiting for this worker.
    pub fn take_asks(&self) -> Vec<Arc<Collection>> {
        if !self.pending.swap(false, Ordering::Acquire) {
            return Vec::new();
        }
        match self.inbox.lock() {
            Ok(mut i) => std::mem::take(&mut i.asks),
            Err(p) => std::mem::take(&mut p.into_inner().asks),
        }
    }

    fn ask(&self, c: &Arc<Collection>) -> bool {
        let mut inbox = match self.inbox.lock() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        if inbox.closed {
            return false;
        }
        inbox.asks.push(c.clone());
        drop(inbox);
        self.pending.store(true, Ordering::Release);
        if let Some(w) = &self.waker {
            let _ = w.wake();
        }
        true
    }
}

/// One connection as its worker described it (owned copies: the connection goes on).
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub state: u32,
    pub worker: u32,
    pub remote_port: u32,
    pub requests: u64,
    pub age_ms: u64,
    pub bytes_in: u64,
    pub content_length: i64,
    pub bytes_out: u64,
    pub bytes_total: u64,
    pub status: u32,
    pub remote_addr: String,
    pub method: Vec<u8>,
    pub host: Vec<u8>,
    pub target: Vec<u8>,
    pub target_rewritten: Vec<u8>,
    pub physical: Vec<u8>,
}

/// The answers so far, then the finished list.
#[derive(Default)]
pub struct Answers {
    pub records: Vec<Record>,
    pub counts: [u64; CONN_STATE_COUNT as usize],
}

type Reply = Box<dyn FnOnce(Arc<Collection>) + Send>;

/// One snapshot request, travelling to every worker and back to its caller.
pub struct Collection {
    /// Records wanted from each worker (the counts cover every connection).
    pub max: usize,
    remaining: AtomicUsize,
    partial: Mutex<Answers>,
    finished: OnceLock<Answers>,
    reply: Mutex<Option<Reply>>,
}

impl Collection {
    /// A worker's answer. The last one finishes the collection and calls the reply.
    pub fn answer(self: &Arc<Self>, records: Vec<Record>, counts: &[u64; CONN_STATE_COUNT as usize]) {
        {
            let mut p = match self.partial.lock() {
                Ok(p) => p,
                Err(e) => e.into_inner(),
            };
            p.records.extend(records);
            for (a, b) in p.counts.iter_mut().zip(counts) {
                *a += b;
            }
        }
        self.one_done();
    }

    fn one_done(self: &Arc<Self>) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let answers = match self.partial.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(e) => std::mem::take(&mut *e.into_inner()),
        };
        let _ = self.finished.set(answers);
        let reply = match self.reply.lock() {
            Ok(mut r) => r.take(),
            Err(e) => e.into_inner().take(),
        };
        if let Some(f) = reply {
            f(self.clone());
        }
    }

    /// The finished list (None before every worker answered).
    pub fn finished(&self) -> Option<&Answers> {
        self.finished.get()
    }
}

#[derive(Default)]
struct Registry {
    live: Vec<Arc<WorkerShared>>,
    /// Totals of the workers that have ended: requests, bytes in, bytes out, accepted.
    retired: [u64; 4],
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { live: Vec::new(), retired: [0; 4] });
static START: OnceLock<i64> = OnceLock::new();
static MAX_CONNECTIONS: AtomicU64 = AtomicU64::new(0);
static RESTARTS: AtomicU64 = AtomicU64::new(0);

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    match REGISTRY.lock() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    }
}

/// The server starts (the first configuration): uptime counts from here.
pub fn mark_start() {
    let _ = START.set(crate::http::unix_now() as i64);
}

/// A generation of workers starts with this `server.max-connections` (0: none).
pub fn set_max_connections(n: usize) {
    MAX_CONNECTIONS.store(n as u64, Ordering::Relaxed);
}

/// A graceful restart was committed.
pub fn count_restart() {
    RESTARTS.fetch_add(1, Ordering::Relaxed);
}

/// The shared part of a new worker (woken with `waker` when asked for a snapshot).
pub fn new_worker(index: u32, waker: Option<Arc<Waker>>) -> Arc<WorkerShared> {
    Arc::new(WorkerShared {
        index,
        counters: WorkerCounters::default(),
        inbox: Mutex::new(Inbox::default()),
        pending: AtomicBool::new(false),
        waker,
    })
}

/// A worker's loop starts: it is listed (and asked for snapshots) until [`unregister`].
pub fn register(w: &Arc<WorkerShared>) {
    mark_start();
    registry().live.push(w.clone());
}

/// A worker has ended: keep its totals, answer what waits in its inbox with nothing.
pub fn unregister(w: &Arc<WorkerShared>) {
    {
        let mut r = registry();
        r.live.retain(|x| !Arc::ptr_eq(x, w));
        let c = &w.counters;
        for (t, v) in r.retired.iter_mut().zip([&c.requests, &c.bytes_in, &c.bytes_out, &c.accepted]) {
            *t = t.wrapping_add(v.load(Ordering::Relaxed));
        }
    }
    let asks = {
        let mut inbox = match w.inbox.lock() {
            Ok(i) => i,
            Err(p) => p.into_inner(),
        };
        inbox.closed = true;
        std::mem::take(&mut inbox.asks)
    };
    for a in asks {
        a.answer(Vec::new(), &[0; CONN_STATE_COUNT as usize]);
    }
}

fn fd_limit() -> u64 {
    let mut l = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 || l.rlim_cur == libc::RLIM_INFINITY {
        return 0;
    }
    l.rlim_cur
}

/// The server-wide figures.
pub fn server_stats() -> ServerStats {
    let r = registry();
    let mut s = ServerStats {
        struct_size: std::mem::size_of::<ServerStats>() as u32,
        workers: r.live.len() as u32,
        start_time: START.get().copied().unwrap_or_else(|| crate::http::unix_now() as i64),
        now: crate::http::unix_now() as i64,
        requests: r.retired[0],
        bytes_in: r.retired[1],
        bytes_out: r.retired[2],
        connections: r.retired[3],
        connections_open: 0,
        max_connections: MAX_CONNECTIONS.load(Ordering::Relaxed),
        fd_limit: 0,
        restarts: RESTARTS.load(Ordering::Relaxed),
    };
    for w in &r.live {
        let c = &w.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        s.requests = s.requests.wrapping_add(get(&c.requests));
        s.bytes_in = s.bytes_in.wrapping_add(get(&c.bytes_in));
        s.bytes_out = s.bytes_out.wrapping_add(get(&c.bytes_out));
        s.connections = s.connections.wrapping_add(get(&c.accepted));
        s.connections_open = s.connections_open.wrapping_add(get(&c.open));
    }
    drop(r);
    s.fd_limit = fd_limit();
    s
}

/// Ask every live worker to describe its connections (`max` records each); `reply` gets the
/// finished collection from the thread of the last worker to answer. False when no worker
/// runs (then `reply` is not called).
pub fn collect(max: usize, reply: impl FnOnce(Arc<Collection>) + Send + 'static) -> bool {
    let live: Vec<Arc<WorkerShared>> = registry().live.clone();
    if live.is_empty() {
        return false;
    }
    let c = Arc::new(Collection {
        max,
        // One more than the workers: released below once every worker has been asked, so that
        // an early answer cannot finish the collection before the last ask went out.
        remaining: AtomicUsize::new(live.len() + 1),
        partial: Mutex::new(Answers::default()),
        finished: OnceLock::new(),
        reply: Mutex::new(Some(Box::new(reply))),
    });
    for w in &live {
        if !w.ask(&c) {
            c.answer(Vec::new(), &[0; CONN_STATE_COUNT as usize]);
        }
    }
    c.one_done();
    true
}

// ---- named counters

struct Named {
    name: Box<[u8]>,
    value: &'static AtomicI64,
    /// The configuration that last asked for it.
    generation: u64,
}

static COUNTERS: RwLock<Vec<Named>> = RwLock::new(Vec::new());
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Whether `name` can be a counter: 1..=200 printable ASCII characters, no space, no ':'.
pub fn valid_counter_name(name: &[u8]) -> bool {
    !name.is_empty() && name.len() <= 200 && name.iter().all(|&b| b.is_ascii_graphic() && b != b':')
}

/// The counter named `name`, created at 0 (None for an invalid name). Each distinct name costs
/// one `AtomicI64` for the life of the process, so that the pointers modules keep stay valid
/// across restarts.
pub fn counter(name: &[u8]) -> Option<&'static AtomicI64> {
    if !valid_counter_name(name) {
        return None;
    }
    let generation = GENERATION.load(Ordering::Relaxed);
    let mut list = match COUNTERS.write() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    match list.binary_search_by(|n| (*n.name).cmp(name)) {
        Ok(i) => {
            list[i].generation = generation;
            Some(list[i].value)
        }
        Err(i) => {
            let value: &'static AtomicI64 = Box::leak(Box::new(AtomicI64::new(0)));
            list.insert(i, Named { name: name.into(), value, generation });
            Some(value)
        }
    }
}

/// Counter number `i` (name order) among those the current configuration asked for.
/// The name's bytes live as long as the process (entries are never removed).
pub fn counter_at(i: usize) -> Option<(&'static [u8], i64)> {
    let generation = GENERATION.load(Ordering::Relaxed);
    let list = match COUNTERS.read() {
        Ok(l) => l,
        Err(p) => p.into_inner(),
    };
    let n = list.iter().filter(|n| n.generation == generation).nth(i)?;
    // SAFETY: entries are never removed and a boxed name never moves or changes, so its bytes
    // stay valid for the life of the process, past this lock.
    let name: &'static [u8] = unsafe { std::slice::from_raw_parts(n.name.as_ptr(), n.name.len()) };
    Some((name, n.value.load(Ordering::Relaxed)))
}

/// A configuration is being (re)loaded: counters it does not ask for again are no longer
/// listed (their values are kept, should it ask later).
pub fn new_configuration() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_shared_by_name_and_listed_in_order() {
        new_configuration();
        let a = counter(b"test.b.load").unwrap();
        let b = counter(b"test.a.requests").unwrap();
        assert!(std::ptr::eq(a, counter(b"test.b.load").unwrap()));
        a.fetch_add(3, Ordering::Relaxed);
        b.fetch_add(1, Ordering::Relaxed);
        assert!(counter(b"").is_none());
        assert!(counter(b"has space").is_none());
        assert!(counter(b"has:colon").is_none());
        let listed: Vec<(&[u8], i64)> =
            (0..).map_while(counter_at).filter(|(n, _)| n.starts_with(b"test.")).collect();
        assert_eq!(listed, vec![(&b"test.a.requests"[..], 1), (&b"test.b.load"[..], 3)]);
        // A new configuration lists only what it asks for again; values are kept.
        new_configuration();
        assert!((0..).map_while(counter_at).all(|(n, _)| !n.starts_with(b"test.")));
        counter(b"test.b.load").unwrap();
        let listed: Vec<(&[u8], i64)> =
            (0..).map_while(counter_at).filter(|(n, _)| n.starts_with(b"test.")).collect();
        assert_eq!(listed, vec![(&b"test.b.load"[..], 3)]);
    }

    #[test]
    fn a_collection_completes_once_every_worker_answered() {
        let w1 = new_worker(100, None);
        let w2 = new_worker(101, None);
        register(&w1);
        register(&w2);
        let (tx, rx) = std::sync::mpsc::channel();
        assert!(collect(10, move |c| {
            let a = c.finished().unwrap();
            tx.send((a.records.len(), a.counts[2])).unwrap();
        }));
        for w in [&w1, &w2] {
            assert!(w.has_asks());
            for a in w.take_asks() {
                let mut counts = [0; CONN_STATE_COUNT as usize];
                counts[2] = 1;
                a.answer(vec![Record { worker: w.index, ..Default::default() }], &counts);
            }
            assert!(!w.has_asks());
        }
        // Other tests may run workers at the same time: ours answered, the rest end below.
        unregister(&w1);
        unregister(&w2);
        let (records, read) = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        assert!(records >= 2 && read >= 2);
    }
}
