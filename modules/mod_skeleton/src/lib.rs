//! mod_skeleton: the template to copy when writing a featherd module.
//!
//! It implements every hook the server offers, each with a note on when the server calls it,
//! what it should return and what modules typically do there. It does one real thing so that
//! the template is exercised end to end: with `skeleton.enable = "enable"`, a request for the
//! path `/skeleton` is answered `200 text/plain` with `skeleton.greeting`.
//!
//! Data in: two config keys (read at start, merged per request), the request path, and the
//! server's calls to the hooks. Data out: the greeting response for `/skeleton`, an
//! `X-Skeleton` response header on it, and a few log lines (debug level, info at start).
//!
//! To start a module of your own: copy this crate to `modules/mod_NAME`, rename the crate,
//! the types and `NAME`, delete the hooks you do not need *and* their flags in `HOOKS` (a
//! hook not listed there is never called and costs nothing), and declare your keys.
//!
//! Threads: the module value is shared by all worker threads once `set_defaults` returned,
//! so hooks get `&self`. Anything mutable goes in the per-request or per-connection state
//! (one owner at a time, no locking needed) or behind your own `Mutex`/atomics.

use featherd_mod_api::{Configs, Connection, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Configuration

const DEFAULT_GREETING: &str = "hello from mod_skeleton";

/// The module's settings. The SDK builds one per config block at start (defaults, then the
/// global block, then each conditional block over its parent) and hands each request the one
/// its matching blocks produce, so `apply` runs at start only, never per request.
#[derive(Clone, Debug, Default)]
pub struct SkeletonConfig {
    /// `skeleton.greeting`; None means the built-in default.
    pub greeting: Option<String>,
    /// `skeleton.enable`; off unless configured, so loading the module changes nothing.
    pub enable: bool,
}

impl ModuleConfig for SkeletonConfig {
    // The keys this module owns: the server refuses unknown keys and checks the value kinds
    // declared here, reporting file:line. `Key::…(…).server()` would restrict a key to the
    // global block.
    const KEYS: &'static [Key] = &[Key::string("skeleton.greeting"), Key::boolean("skeleton.enable")];

    /// `key` is the index in `KEYS`. An `Err` is shown with the setting's file:line and the
    /// server refuses to start: validate here, not at request time.
    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => {
                let g = v.to_str()?;
                if g.contains(['\r', '\n']) {
                    return Err("the greeting must be a single line".into());
                }
                self.greeting = Some(g.to_owned());
            }
            1 => self.enable = v.to_bool()?,
            _ => {}
        }
        Ok(())
    }
}

/// The response body for `path`, if this module answers it. Kept apart from the hooks so it
/// can be unit-tested without a server.
pub fn answer_for(conf: &SkeletonConfig, path: &[u8]) -> Option<String> {
    if !conf.enable || path != b"/skeleton" {
        return None;
    }
    let mut body = conf.greeting.clone().unwrap_or_else(|| DEFAULT_GREETING.to_owned());
    body.push('\n');
    Some(body)
}

// ---------------------------------------------------------------------------------------------
// State

/// Per-request state: created by `req.state()` on first use, dropped by the SDK after
/// `request_reset`. Never keep a `Request` itself past the hook that received it.
#[derive(Debug, Default)]
pub struct RequestState {
    /// Set when this module claimed the request; later hooks only act on our own requests.
    pub claimed_at: Option<Instant>,
}

/// Per-connection state: lives across the keep-alive requests of one connection, dropped
/// after `connection_close`.
#[derive(Debug, Default)]
pub struct ConnectionState {
    pub accepted_at: Option<Instant>,
}

// ---------------------------------------------------------------------------------------------
// The module

/// Module-wide data, created by `init`. Here: nothing but a count for the start-up log line.
#[derive(Debug, Default)]
pub struct Skeleton {
    enabled_blocks: usize,
}

impl Module for Skeleton {
    /// Must match the file name: the server loads `mod_skeleton.so` for "mod_skeleton".
    const NAME: &'static str = "mod_skeleton";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    /// Shown by `featherd -V`.
    const DESCRIPTION: &'static str = "template module: answers /skeleton with a greeting";
    /// Every hook, to show them all. A real module lists only those it implements.
    const HOOKS: Hooks = Hooks::URI_RAW
        .union(Hooks::URI_CLEAN)
        .union(Hooks::DOCROOT)
        .union(Hooks::PHYSICAL)
        .union(Hooks::SUBREQUEST_START)
        .union(Hooks::SUBREQUEST)
        .union(Hooks::RESPONSE_START)
        .union(Hooks::REQUEST_DONE)
        .union(Hooks::REQUEST_RESET)
        .union(Hooks::CONNECTION_ACCEPT)
        .union(Hooks::CONNECTION_SHUT_WR)
        .union(Hooks::CONNECTION_CLOSE)
        .union(Hooks::TRIGGER)
        .union(Hooks::SIGHUP)
        .union(Hooks::WAITPID)
        .union(Hooks::WORKER_INIT);
    type Config = SkeletonConfig;
    type RequestState = RequestState;
    type ConnectionState = ConnectionState;

    // ---- life cycle (main thread) -----------------------------------------------------------

    /// Once, right after the server loaded the library, before the configuration is read.
    /// Create the module value; allocate nothing that depends on the config yet.
    fn init() -> Self {
        Skeleton::default()
    }

    /// Once, after the configuration was parsed and every block's `SkeletonConfig` built.
    /// Check settings that span blocks, open files, start helper processes. `Err` refuses the
    /// start (the message goes to the error log).
    fn set_defaults(&mut self, configs: &Configs<SkeletonConfig>) -> Result<(), String> {
        self.enabled_blocks = configs.all().iter().filter(|c| c.enable).count();
        log::info!("enabled in {} of {} config blocks", self.enabled_blocks, configs.all().len());
        Ok(())
    }

    /// On each worker thread as it starts (index 0..workers). For per-thread resources, e.g.
    /// a thread-local connection pool. `Err` stops the server.
    fn worker_init(&self, worker: u32) -> Result<(), String> {
        log::debug!("worker {worker} ready");
        Ok(())
    }

    /// Once at shutdown, and before a graceful restart reloads the module: close files, stop
    /// helper processes. Per-request and per-connection state is already gone.
    fn cleanup(&mut self) {
        log::debug!("cleanup");
    }

    // ---- request hooks, in the order the server calls them (worker thread) -----------------
    //
    // Each returns a Handler: GoOn (not mine: next module), Finished (the response is decided:
    // stop the chain), Comeback (the target was rewritten: restart the request),
    // WaitForEvent (suspend until woken; the same hook runs again) or Error (500).

    /// The raw target as received, before decoding: for rewrites that must see the original
    /// bytes (mod_rewrite's url.rewrite: `req.set_target(..)` then Comeback).
    fn uri_raw(&self, _req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }

    /// The decoded, normalised path (`req.path()`) is known: access control and redirects
    /// (mod_access, mod_auth, mod_redirect) answer here with a status and Finished.
    fn uri_clean(&self, _req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }

    /// Choose the document root: virtual hosting modules (mod_simple_vhost, mod_evhost) call
    /// `req.set_docroot(..)`.
    fn docroot(&self, _req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }

    /// The physical path (docroot + path) is composed: modules that map URLs elsewhere on
    /// disk (mod_alias, mod_userdir) call `req.set_physical_path(..)`.
    ///
    /// It is also the last place to claim a request that does not map to a file: after this
    /// hook the server stats the physical path and answers 404 itself when nothing is there,
    /// before `subrequest_start` runs. `/skeleton` is not a file, so this module claims here
    /// and produces the response in `subrequest` (the pattern of handlers that may have to
    /// wait, like backends); the server then skips the stat.
    fn physical(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 || answer_for(&req.config(), req.path()).is_none() {
            return Handler::GoOn;
        }
        if req.claim() {
            req.state().claimed_at = Some(Instant::now());
        }
        Handler::GoOn
    }

    /// The server stat'ed the physical path (`req.file_info()`) and split PATH_INFO; only
    /// requests for something that exists on disk get here (a missing file was answered 404
    /// already). Handlers of files decide here: either answer at once (status, body,
    /// Finished; mod_staticfile does) or claim the request and produce the response in
    /// `subrequest` (backends like mod_fastcgi for `.php` files). This module claimed in
    /// `physical` already, as its path is not a file.
    fn subrequest_start(&self, _req: &mut Request<Self>) -> Handler {
        Handler::GoOn
    }

    /// Only for the module that claimed the request: produce the response. Return Finished
    /// when the whole body is queued; a streaming handler queues part of it and returns
    /// WaitForEvent, and is called again when woken (fd readiness, timer, `RequestId::wake`)
    /// or when the client has drained the queue below `req.high_water()`.
    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        let Some(body) = answer_for(&req.config(), req.path()) else {
            // Claimed under a config that no longer applies: cannot happen without a rewrite,
            // but a handler must never leave a claimed request unanswered.
            req.set_status(404);
            return Handler::Finished;
        };
        req.set_status(200);
        req.set_response_header("Content-Type", "text/plain");
        req.set_content_length(body.len() as u64);
        req.append_body(body.as_bytes());
        Handler::Finished
    }

    /// The status and headers are about to be sent (for every response, also errors and
    /// other modules' answers): add or adjust headers (mod_setenv, mod_expire, mod_deflate).
    fn response_start(&self, req: &mut Request<Self>) -> Handler {
        // `state()` creates the state on first use, so asking allocates a small default one
        // for requests this module never touched; the SDK has no look-without-creating yet.
        if req.state().claimed_at.is_some() {
            req.set_response_header("X-Skeleton", "1");
        }
        Handler::GoOn
    }

    /// The response is fully sent (or the client went away): logging and statistics
    /// (mod_accesslog, mod_status). The request's values are still readable.
    fn request_done(&self, req: &mut Request<Self>) -> Handler {
        if let Some(t) = req.state().claimed_at {
            log::debug!("answered /skeleton in {} µs", t.elapsed().as_micros());
        }
        Handler::GoOn
    }

    /// Last call for this request (also after errors and aborted requests): release what the
    /// state holds that needs more than a drop (backend connections to return to a pool,
    /// registered fds, timers). The SDK drops `RequestState` right after.
    fn request_reset(&self, _req: &mut Request<Self>) {}

    // ---- connection hooks (worker thread) ---------------------------------------------------

    /// A client connected (before any request): per-connection limits and bookkeeping
    /// (mod_evasive). Error closes the connection.
    fn connection_accept(&self, con: &mut Connection<Self>) -> Handler {
        con.state().accepted_at = Some(Instant::now());
        Handler::GoOn
    }

    /// The server is about to shut down writing on the connection (lingering close): flush
    /// or abort connection-level work.
    fn connection_shut_wr(&self, _con: &mut Connection<Self>) -> Handler {
        Handler::GoOn
    }

    /// The connection is closed: release per-connection resources. `ConnectionState` is
    /// dropped right after.
    fn connection_close(&self, con: &mut Connection<Self>) {
        if let Some(t) = con.state().accepted_at {
            log::trace!(
                "connection from {} lasted {} ms",
                String::from_utf8_lossy(con.remote_addr()),
                t.elapsed().as_millis()
            );
        }
    }

    // ---- server hooks (main thread) ---------------------------------------------------------

    /// About once a second: timeouts, cache expiry, restarting helpers that died.
    fn trigger(&self) {}

    /// SIGHUP: reopen log files (logrotate moved them away), as mod_accesslog does.
    fn sighup(&self) {}

    /// A child process exited. Return true if `pid` was one of yours (a piped logger, a CGI
    /// or FastCGI process), so the server stops asking other modules.
    fn waitpid(&self, _pid: i32, _status: i32) -> bool {
        false
    }
}

featherd_mod_api::export_module!(Skeleton);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_when_enabled_and_on_its_path() {
        let on = SkeletonConfig { enable: true, greeting: None };
        let custom = SkeletonConfig { enable: true, greeting: Some("hi there".into()) };
        let off = SkeletonConfig { enable: false, greeting: Some("hi there".into()) };
        let cases: &[(&SkeletonConfig, &str, Option<&str>)] = &[
            (&on, "/skeleton", Some("hello from mod_skeleton\n")),
            (&custom, "/skeleton", Some("hi there\n")),
            (&off, "/skeleton", None),
            (&on, "/skeleton/", None),
            (&on, "/skeletons", None),
            (&on, "/", None),
        ];
        for (conf, path, want) in cases {
            assert_eq!(answer_for(conf, path.as_bytes()).as_deref(), *want, "{path} {conf:?}");
        }
    }

    #[test]
    fn disabled_by_default() {
        let c = SkeletonConfig::default();
        assert!(!c.enable);
        assert_eq!(answer_for(&c, b"/skeleton"), None);
    }

    #[test]
    fn descriptor_lists_every_hook_and_both_keys() {
        let d = featherd_mod_api::__private::descriptor::<Skeleton>();
        assert_eq!(d.config_keys_len, 2);
        assert!(d.uri_raw.is_some() && d.uri_clean.is_some() && d.docroot.is_some() && d.physical.is_some());
        assert!(d.subrequest_start.is_some() && d.subrequest.is_some() && d.response_start.is_some());
        assert!(d.request_done.is_some() && d.request_reset.is_some());
        assert!(
            d.connection_accept.is_some() && d.connection_shut_wr.is_some() && d.connection_close.is_some()
        );
        assert!(d.trigger.is_some() && d.sighup.is_some() && d.waitpid.is_some() && d.worker_init.is_some());
        assert_eq!(featherd_module_v1(), featherd_module_v1(), "one descriptor per load");
    }
}
