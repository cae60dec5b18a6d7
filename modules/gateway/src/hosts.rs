//! Backend mounts and hosts, as lighttpd's `fastcgi.server`, `scgi.server` and `proxy.server`
//! describe them, and the balancing between the hosts of a mount.
//!
//! ```text
//! fastcgi.server = ( ".php" => ( ( "socket" => "/run/php.sock", "bin-path" => "/usr/bin/php-cgi" ) ),
//!                    "/app" => ( "a" => ( "host" => "127.0.0.1", "port" => 9000, "check-local" => "disable" ),
//!                                "b" => ( "host" => "127.0.0.1", "port" => 9001, "check-local" => "disable" ) ) )
//! ```
//!
//! * [`parse_server`] turns such a value into [`Mounts`] (once per config block, at start).
//! * [`Mounts::find`] picks the mount for a request path (extension suffix or path prefix).
//! * [`Mount::pick`] chooses a host with a [`Balance`] policy among the hosts that are not
//!   disabled; [`Host::lease`] counts the request as active on it until the lease drops.
//! * [`Host::disable`] takes a host out for its `disable-time` after a failed connect.
//! * [`connect`] / [`connect_finished`]: a non-blocking connect to a TCP or unix address.
//!
//! Counters are atomics in `Arc<Host>`, so every worker thread sees the same load. With a
//! [`ParseOptions::stats`] prefix, hosts also publish lighttpd's backend statistics as named
//! counters (see [`HostCounters`]), which mod_status lists at `status.statistics-url`.

use featherd_mod_api::{Counter, Value};
use socket2::{Domain, SockAddr, Socket, Type};
use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Where a backend listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Tcp(a) => write!(f, "{a}"),
            Addr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// `mode` of a host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Responder,
    Authorizer,
}

impl HostConfig {
    /// A host with every option at its default (lighttpd's), named `name`.
    pub fn defaults(name: String) -> HostConfig {
        HostConfig {
            name,
            addr: Addr::Unix(PathBuf::new()),
            host: None,
            check_local: true,
            bin_path: None,
            bin_environment: vec![],
            bin_copy_environment: vec![],
            min_procs: 1,
            max_procs: 1,
            max_load_per_proc: 1,
            idle_timeout: 60,
            disable_time: 1,
            connect_timeout: 8,
            read_timeout: 0,
            write_timeout: 0,
            fix_root_scriptname: false,
            strip_request_uri: None,
            broken_scriptfilename: false,
            x_sendfile: false,
            x_sendfile_docroot: vec![],
            mode: Mode::Responder,
            docroot: None,
            extra: vec![],
        }
    }
}

/// One host's settings, as written in the config.
#[derive(Clone, Debug)]
pub struct HostConfig {
    /// The label (`"name" => ( ... )`) or "mount#index".
    pub name: String,
    pub addr: Addr,
    /// `host` as written (for a Host header or a log line).
    pub host: Option<String>,
    pub check_local: bool,
    pub bin_path: Option<String>,
    pub bin_environment: Vec<(String, String)>,
    pub bin_copy_environment: Vec<String>,
    pub min_procs: u32,
    pub max_procs: u32,
    pub max_load_per_proc: u32,
    pub idle_timeout: u32,
    /// Seconds a host stays out after a failed connect.
    pub disable_time: u32,
    /// Seconds to wait for a connect / for the backend to send something / for it to accept
    /// request bytes; 0 = no limit.
    pub connect_timeout: u32,
    pub read_timeout: u32,
    pub write_timeout: u32,
    pub fix_root_scriptname: bool,
    pub strip_request_uri: Option<String>,
    pub broken_scriptfilename: bool,
    pub x_sendfile: bool,
    pub x_sendfile_docroot: Vec<String>,
    pub mode: Mode,
    pub docroot: Option<String>,
    /// Options the calling module declared in [`ParseOptions::extra`], as text.
    pub extra: Vec<(String, String)>,
}

/// A host with its shared counters.
#[derive(Debug)]
pub struct Host {
    pub config: HostConfig,
    /// Index in its mount.
    pub index: usize,
    active: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds since [`epoch`] until which the host is out (0 = up).
    disabled_until: AtomicU64,
    /// The named counters it publishes (None without a statistics prefix, or on a server
    /// without named counters).
    counters: Option<HostCounters>,
}

/// lighttpd's backend statistics for one host, under `PREFIX.backend.ID.` where PREFIX is
/// the module's ("fastcgi", "scgi", "proxy") and ID the host's label. featherd's `max-procs`
/// children share one socket, so each host has one "process", number 0:
///
/// * `ID.0.connected`: connections to the backend established (one per request sent);
/// * `ID.0.died` / `ID.0.overloaded`: connects that failed (refused, unreachable, timed out)
///   / that failed with EAGAIN (a full unix-socket backlog);
/// * `ID.0.disabled`: times the host was taken out for its `disable-time`;
/// * `ID.0.load` and `ID.load`: requests in flight on the host now;
/// * `PREFIX.active-requests`: requests in flight on all the module's hosts;
/// * `PREFIX.requests`: requests sent to a backend since start (once connected).
///
/// Each is one relaxed atomic operation where it changes.
#[derive(Debug)]
pub struct HostCounters {
    connected: Counter,
    died: Counter,
    overloaded: Counter,
    disabled: Counter,
    proc_load: Counter,
    load: Counter,
    active_requests: Counter,
    requests: Counter,
}

impl HostCounters {
    /// Register the counters of host `label` under `prefix`; None when the server has no
    /// named counters (older than ABI 1.7, or no server at all: unit tests).
    fn new(prefix: &str, label: &str) -> Option<HostCounters> {
        // A counter name is printable ASCII without spaces or ':'.
        let id: String =
            label.chars().map(|c| if c.is_ascii_graphic() && c != ':' { c } else { '_' }).collect();
        let c = |tail: &str| featherd_mod_api::stat_counter(&format!("{prefix}.backend.{id}.{tail}"));
        Some(HostCounters {
            connected: c("0.connected")?,
            died: c("0.died")?,
            overloaded: c("0.overloaded")?,
            disabled: c("0.disabled")?,
            proc_load: c("0.load")?,
            load: c("load")?,
            active_requests: featherd_mod_api::stat_counter(&format!("{prefix}.active-requests"))?,
            requests: featherd_mod_api::stat_counter(&format!("{prefix}.requests"))?,
        })
    }
}

fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64 + 1
}

impl Host {
    /// Requests in flight on this host (all workers).
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
    /// Requests ever sent to this host.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Whether the host may be tried now.
    pub fn is_up(&self) -> bool {
        let until = self.disabled_until.load(Ordering::Relaxed);
        until == 0 || now_ms() >= until
    }
    /// Take the host out for its `disable-time` (after a failed connect).
    pub fn disable(&self) {
        let ms = u64::from(self.config.disable_time.max(1)) * 1000;
        self.disabled_until.store(now_ms() + ms, Ordering::Relaxed);
        if let Some(c) = &self.counters {
            c.disabled.add(1);
        }
    }
    /// A connect to the host failed with `e`: counted (`died`, or `overloaded` for EAGAIN),
    /// and the host is taken out for its `disable-time`.
    pub fn connect_failed(&self, e: &io::Error) {
        if let Some(c) = &self.counters {
            if e.kind() == io::ErrorKind::WouldBlock {
                c.overloaded.add(1);
            } else {
                c.died.add(1);
            }
        }
        self.disable();
    }
    /// A connection to the host is established (for its `connected` counter).
    pub fn connected(&self) {
        if let Some(c) = &self.counters {
            c.connected.add(1);
            c.requests.add(1);
        }
    }
    /// Put the host back at once (e.g. its process was respawned).
    pub fn enable(&self) {
        self.disabled_until.store(0, Ordering::Relaxed);
    }
    /// Count a request as active on this host until the lease is dropped.
    pub fn lease(self: &Arc<Self>) -> Lease {
        self.active.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = &self.counters {
            c.proc_load.add(1);
            c.load.add(1);
            c.active_requests.add(1);
        }
        Lease(self.clone())
    }
}

/// A request's hold on a host (see [`Host::lease`]).
#[derive(Debug)]
pub struct Lease(Arc<Host>);

impl Lease {
    pub fn host(&self) -> &Arc<Host> {
        &self.0
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
        if let Some(c) = &self.0.counters {
            c.proc_load.sub(1);
            c.load.sub(1);
            c.active_requests.sub(1);
        }
    }
}

/// How a mount's key matches request paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountKind {
    /// ".php": the path ends with it.
    Extension,
    /// "/app": the path is it or starts with it followed by '/' (or it ends with '/').
    Prefix,
}

/// One `"key" => ( hosts )` entry.
#[derive(Debug)]
pub struct Mount {
    pub key: String,
    pub kind: MountKind,
    pub hosts: Vec<Arc<Host>>,
    rr: AtomicUsize,
}

/// `*.balance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Balance {
    /// The host with the fewest active requests (lighttpd's default).
    #[default]
    Fair,
    RoundRobin,
    /// By request path and authority: the same URL goes to the same host.
    Hash,
    /// By client address: a client stays on one host.
    Sticky,
}

impl Balance {
    pub fn parse(s: &str) -> Result<Balance, String> {
        match s {
            "fair" | "least-connection" => Ok(Balance::Fair),
            "round-robin" => Ok(Balance::RoundRobin),
            "hash" => Ok(Balance::Hash),
            "sticky" => Ok(Balance::Sticky),
            _ => Err(format!("unknown balance \"{s}\" (fair, round-robin, hash or sticky)")),
        }
    }
}

/// FNV-1a, for rendezvous hashing: stable across restarts and platforms.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Mount {
    /// Whether `path` falls under this mount.
    pub fn matches(&self, path: &[u8]) -> bool {
        let k = self.key.as_bytes();
        match self.kind {
            MountKind::Extension => path.ends_with(k),
            MountKind::Prefix => {
                path.starts_with(k) && (k.ends_with(b"/") || path.len() == k.len() || path[k.len()] == b'/')
            }
        }
    }

    /// Choose a host for a request: `key` is what [`Balance::Hash`] (path + authority) or
    /// [`Balance::Sticky`] (client address) hash; hosts in `tried` or disabled are skipped.
    /// None when every host is out.
    pub fn pick(&self, balance: Balance, key: &[u8], tried: &[usize]) -> Option<Arc<Host>> {
        let up = || self.hosts.iter().filter(|h| h.is_up() && !tried.contains(&h.index));
        match balance {
            Balance::Fair => up().min_by_key(|h| h.active()).cloned(),
            Balance::RoundRobin => {
                let n = self.hosts.len();
                let start = self.rr.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| &self.hosts[(start + i) % n])
                    .find(|h| h.is_up() && !tried.contains(&h.index))
                    .cloned()
            }
            // Rendezvous hashing: only the keys of a host that goes down move elsewhere.
            Balance::Hash | Balance::Sticky => {
                up().max_by_key(|h| fnv(&[key, h.config.name.as_bytes()])).cloned()
            }
        }
    }

    /// "name (addr), name (addr)" for log lines.
    pub fn describe_hosts(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("{} ({})", h.config.name, h.config.addr))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Every mount of one `*.server` value, in config order.
#[derive(Debug, Default)]
pub struct Mounts {
    pub list: Vec<Arc<Mount>>,
}

impl Mounts {
    /// The first mount matching `path`. With `map` (`*.map-extensions`, e.g. ".php3" → ".php"),
    /// a path ending in a mapped extension is looked up under its target.
    pub fn find(&self, path: &[u8], map: &[(String, String)]) -> Option<&Arc<Mount>> {
        if let Some(m) = self.list.iter().find(|m| m.matches(path)) {
            return Some(m);
        }
        let (_, to) = map.iter().find(|(from, _)| path.ends_with(from.as_bytes()))?;
        self.list.iter().find(|m| m.kind == MountKind::Extension && m.key == *to)
    }

    /// Every host of every mount.
    pub fn hosts(&self) -> impl Iterator<Item = &Arc<Host>> {
        self.list.iter().flat_map(|m| m.hosts.iter())
    }
}

/// What a module allows beyond the common host options.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParseOptions {
    /// Extra option names accepted (kept as text in [`HostConfig::extra`]).
    pub extra: &'static [&'static str],
    /// Whether a host may have no address (mod_proxy always needs one; so does FastCGI).
    pub require_addr: bool,
    /// The prefix of the named counters the hosts publish ("fastcgi", "scgi", "proxy"; see
    /// [`HostCounters`]); "" publishes none.
    pub stats: &'static str,
}

/// Parsed values are cached per (config block, key) so that a request-time merge of sibling
/// blocks (which applies the values again) reuses the same hosts and counters.
type Cache = Mutex<HashMap<(u32, String), Arc<Mounts>>>;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Default::default)
}

/// Forget every parsed value: a module calls this in `init`, so that a configuration loaded
/// again (a graceful restart; the library and this cache stay) is parsed afresh instead of
/// reusing the previous configuration's hosts for the same block and key.
pub fn forget_parsed() {
    if let Ok(mut c) = cache().lock() {
        c.clear();
    }
}

/// Parse a `*.server` value (the config key is `key`, for messages and the cache).
pub fn parse_server(key: &str, v: &Value, opts: &ParseOptions) -> Result<Arc<Mounts>, String> {
    let ck = (v.block(), key.to_string());
    if let Ok(c) = cache().lock() {
        if let Some(m) = c.get(&ck) {
            return Ok(m.clone());
        }
    }
    let mut mounts = Mounts::default();
    for (mkey, hosts_v) in v.iter() {
        let Some(mkey) = mkey else {
            return Err(format!("{key}: expected ( \"extension or /prefix\" => ( hosts ) )"));
        };
        // "" is lighttpd's catch-all mount (`proxy.server = ( "" => ... )`): an empty suffix
        // matches every path.
        let kind = if mkey.starts_with('/') { MountKind::Prefix } else { MountKind::Extension };
        let mut hosts = Vec::new();
        let all_scalar = hosts_v.iter().all(|(_, h)| h.as_str().is_some() || h.as_int().is_some());
        if all_scalar && !hosts_v.is_empty() {
            // `".php" => ( "host" => ..., "port" => ... )`: a single host written flat.
            hosts.push(parse_host(key, mkey, None, 0, &hosts_v, opts)?);
        } else {
            for (i, (label, hv)) in hosts_v.iter().enumerate() {
                hosts.push(parse_host(key, mkey, label, i, &hv, opts)?);
            }
        }
        if hosts.is_empty() {
            return Err(format!("{key}: \"{mkey}\" has no hosts"));
        }
        let hosts = hosts
            .into_iter()
            .enumerate()
            .map(|(index, config)| {
                let counters =
                    if opts.stats.is_empty() { None } else { HostCounters::new(opts.stats, &config.name) };
                Arc::new(Host {
                    config,
                    index,
                    active: AtomicUsize::new(0),
                    requests: AtomicU64::new(0),
                    disabled_until: AtomicU64::new(0),
                    counters,
                })
            })
            .collect();
        mounts.list.push(Arc::new(Mount { key: mkey.to_string(), kind, hosts, rr: AtomicUsize::new(0) }));
    }
    let m = Arc::new(mounts);
    if let Ok(mut c) = cache().lock() {
        c.insert(ck, m.clone());
    }
    Ok(m)
}

fn parse_host(
    key: &str,
    mount: &str,
    label: Option<&str>,
    i: usize,
    v: &Value,
    opts: &ParseOptions,
) -> Result<HostConfig, String> {
    if v.kind() != featherd_mod_api::ValueKind::Array {
        return Err(format!("{key}: \"{mount}\": expected a host as ( \"option\" => value, ... )"));
    }
    let name = label.map(str::to_owned).unwrap_or_else(|| format!("{mount}#{i}"));
    let ctx = |o: &str, e: String| format!("{key}: \"{mount}\" host {name}: \"{o}\": {e}");
    let mut host: Option<String> = None;
    let mut port: Option<u16> = None;
    let mut socket: Option<String> = None;
    let mut c = HostConfig::defaults(name.clone());
    let uint = |o: &str, v: &Value| -> Result<u32, String> {
        let n = v.to_int().map_err(|e| ctx(o, e))?;
        u32::try_from(n).map_err(|_| ctx(o, "expected a non-negative integer".into()))
    };
    for (opt, ov) in v.iter() {
        let Some(opt) = opt else {
            return Err(format!("{key}: \"{mount}\" host {name}: expected \"option\" => value"));
        };
        let s = |ov: &Value| ov.to_str().map(str::to_owned).map_err(|e| ctx(opt, e));
        let b = |ov: &Value| ov.to_bool().map_err(|e| ctx(opt, e));
        match opt {
            "host" => host = Some(s(&ov)?),
            "port" => {
                let p = match ov.as_str() {
                    Some(t) => t.parse::<i64>().map_err(|_| ctx(opt, "expected a port number".into()))?,
                    None => ov.to_int().map_err(|e| ctx(opt, e))?,
                };
                port = Some(
                    u16::try_from(p).ok().filter(|&p| p > 0).ok_or_else(|| ctx(opt, "bad port".into()))?,
                );
            }
            "socket" => socket = Some(s(&ov)?),
            "check-local" => c.check_local = b(&ov)?,
            "bin-path" => c.bin_path = Some(s(&ov)?),
            "bin-environment" => c.bin_environment = ov.to_str_map().map_err(|e| ctx(opt, e))?,
            "bin-copy-environment" => c.bin_copy_environment = ov.to_str_list().map_err(|e| ctx(opt, e))?,
            "min-procs" => c.min_procs = uint(opt, &ov)?,
            "max-procs" => c.max_procs = uint(opt, &ov)?.max(1),
            "max-load-per-proc" => c.max_load_per_proc = uint(opt, &ov)?,
            "idle-timeout" => c.idle_timeout = uint(opt, &ov)?,
            "disable-time" => c.disable_time = uint(opt, &ov)?,
            "connect-timeout" => c.connect_timeout = uint(opt, &ov)?,
            "read-timeout" => c.read_timeout = uint(opt, &ov)?,
            "write-timeout" => c.write_timeout = uint(opt, &ov)?,
            "fix-root-scriptname" => c.fix_root_scriptname = b(&ov)?,
            "strip-request-uri" => c.strip_request_uri = Some(s(&ov)?),
            "broken-scriptfilename" => c.broken_scriptfilename = b(&ov)?,
            "x-sendfile" | "allow-x-send-file" => c.x_sendfile = b(&ov)?,
            "x-sendfile-docroot" => c.x_sendfile_docroot = ov.to_str_list().map_err(|e| ctx(opt, e))?,
            "mode" => {
                c.mode = match s(&ov)?.as_str() {
                    "responder" => Mode::Responder,
                    "authorizer" => Mode::Authorizer,
                    m => return Err(ctx(opt, format!("unknown mode \"{m}\" (responder or authorizer)"))),
                }
            }
            "docroot" => c.docroot = Some(s(&ov)?),
            o if opts.extra.contains(&o) => {
                let t = match (ov.as_str(), ov.as_int()) {
                    (Some(t), _) => t.to_owned(),
                    (None, Some(n)) => n.to_string(),
                    _ => return Err(ctx(o, "expected a string or an integer".into())),
                };
                c.extra.push((o.to_owned(), t));
            }
            o => return Err(format!("{key}: \"{mount}\" host {name}: unknown option \"{o}\"")),
        }
    }
    c.addr = match (socket, host.clone(), port) {
        (Some(s), _, _) if !s.is_empty() => Addr::Unix(PathBuf::from(s)),
        (_, Some(h), Some(p)) => {
            resolve(&h, p).map_err(|e| format!("{key}: \"{mount}\" host {name}: {e}"))?
        }
        (_, None, Some(p)) => Addr::Tcp(SocketAddr::from(([127, 0, 0, 1], p))),
        (_, Some(h), None) if h.starts_with('/') => Addr::Unix(PathBuf::from(h)),
        _ if !opts.require_addr => Addr::Unix(PathBuf::new()),
        _ => {
            return Err(format!("{key}: \"{mount}\" host {name}: needs \"socket\" or \"host\" and \"port\""))
        }
    };
    c.host = host;
    if c.x_sendfile_docroot.iter().any(|d| !d.starts_with('/')) {
        return Err(format!(
            "{key}: \"{mount}\" host {name}: x-sendfile-docroot entries must be absolute paths"
        ));
    }
    Ok(c)
}

fn resolve(host: &str, port: u16) -> Result<Addr, String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    (h, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve \"{host}\": {e}"))?
        .next()
        .map(Addr::Tcp)
        .ok_or_else(|| format!("\"{host}\" has no address"))
}

/// Start a non-blocking connect. The socket may still be connecting: wait until it is
/// writable, then call [`connect_finished`].
pub fn connect(addr: &Addr) -> io::Result<Socket> {
    connect_now(addr).map(|(s, _)| s)
}

/// As [`connect`], also saying whether the connect completed at once (the usual case for a
/// unix socket), so the caller can skip the check after writability.
pub fn connect_now(addr: &Addr) -> io::Result<(Socket, bool)> {
    let (domain, sa) = match addr {
        Addr::Tcp(a) => (Domain::for_address(*a), SockAddr::from(*a)),
        Addr::Unix(p) => (Domain::UNIX, SockAddr::unix(p)?),
    };
    // Non-blocking and close-on-exec from socket(2) itself: no fcntl round trips.
    let s = Socket::new(domain, Type::STREAM.nonblocking().cloexec(), None)?;
    if matches!(addr, Addr::Tcp(_)) {
        let _ = s.set_nodelay(true);
    }
    match s.connect(&sa) {
        Ok(()) => Ok((s, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok((s, false)),
        // A unix socket with a full backlog: the backend is overloaded, same as refused here.
        Err(e) => Err(e),
    }
}

/// After writability: Ok if the connect succeeded, else its error.
pub fn connect_finished(s: &Socket) -> io::Result<()> {
    if let Some(e) = s.take_error()? {
        return Err(e);
    }
    // Writable without an error but not connected yet (a spurious wake): ENOTCONN here.
    s.peer_addr().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, i: usize) -> Arc<Host> {
        Arc::new(Host {
            config: HostConfig { addr: Addr::Unix(PathBuf::from("/x")), ..HostConfig::defaults(name.into()) },
            index: i,
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            disabled_until: AtomicU64::new(0),
            counters: None,
        })
    }

    fn mount(kind: MountKind, key: &str, n: usize) -> Mount {
        Mount {
            key: key.into(),
            kind,
            hosts: (0..n).map(|i| host(&format!("h{i}"), i)).collect(),
            rr: AtomicUsize::new(0),
        }
    }

    #[test]
    fn matching() {
        let p = mount(MountKind::Prefix, "/app", 1);
        assert!(p.matches(b"/app"));
        assert!(p.matches(b"/app/x"));
        assert!(!p.matches(b"/apple"));
        let e = mount(MountKind::Extension, ".php", 1);
        assert!(e.matches(b"/a/b.php"));
        assert!(!e.matches(b"/a/b.php/x"));
        let ms = Mounts { list: vec![Arc::new(e)] };
        assert!(ms.find(b"/x.php3", &[(".php3".into(), ".php".into())]).is_some());
        assert!(ms.find(b"/x.php4", &[(".php3".into(), ".php".into())]).is_none());
    }

    #[test]
    fn balancing() {
        let m = mount(MountKind::Prefix, "/", 3);
        let picks: Vec<usize> =
            (0..6).map(|_| m.pick(Balance::RoundRobin, b"", &[]).unwrap().index).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let _l1 = m.hosts[0].lease();
        let _l2 = m.hosts[2].lease();
        assert_eq!(m.pick(Balance::Fair, b"", &[]).unwrap().index, 1);
        assert_eq!(m.pick(Balance::Fair, b"", &[1]).unwrap().index, 0);
        let a = m.pick(Balance::Sticky, b"10.0.0.1", &[]).unwrap().index;
        assert!((0..10).all(|_| m.pick(Balance::Sticky, b"10.0.0.1", &[]).unwrap().index == a));
        m.hosts[a].disable();
        let b = m.pick(Balance::Sticky, b"10.0.0.1", &[]).unwrap().index;
        assert_ne!(a, b);
        for h in &m.hosts {
            h.disable();
        }
        assert!(m.pick(Balance::Fair, b"", &[]).is_none());
        m.hosts[1].enable();
        assert_eq!(m.pick(Balance::Hash, b"/x", &[]).unwrap().index, 1);
    }
}
