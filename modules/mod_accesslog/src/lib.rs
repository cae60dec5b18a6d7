//! mod_accesslog: one line per finished request, in an Apache-style format.
//!
//! Data in: the configuration (`accesslog.filename`, `accesslog.format`,
//! `accesslog.use-syslog`, `accesslog.syslog-level`), read and checked at start: formats are
//! parsed once per config block, and every distinct file is opened (or piped logger started)
//! once and shared by the blocks naming it. Then, at REQUEST_DONE, the request's values (read
//! through the SDK by [`ReqValues`]). Data out: the rendered line, appended to the block's file,
//! written to its piped logger's stdin, or sent to syslog. SIGHUP reopens the files (for
//! logrotate); WAITPID and TRIGGER restart a piped logger that exited.

pub mod format;
pub mod sink;
pub mod time;

use featherd_mod_api::{Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use format::{Format, LogValues, DEFAULT_FORMAT};
use sink::{Sink, Syslog};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Configuration, merged per request.
#[derive(Clone, Debug)]
pub struct AccessLogConfig {
    /// A path, or `|command` for a piped logger; None (or empty) logs nothing.
    pub filename: Option<String>,
    /// Shared: the parsed format is cloned into every merged config of every request.
    pub format: Arc<Format>,
    pub use_syslog: bool,
    pub syslog_level: u8,
}

fn default_format() -> Arc<Format> {
    static DEFAULT: OnceLock<Arc<Format>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| {
            // The default is a constant covered by the tests; an empty format is only a
            // fallback that cannot be reached.
            Arc::new(Format::parse(DEFAULT_FORMAT).unwrap_or(Format { fields: Vec::new() }))
        })
        .clone()
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig { filename: None, format: default_format(), use_syslog: false, syslog_level: 6 }
    }
}

impl ModuleConfig for AccessLogConfig {
    const KEYS: &'static [Key] = &[
        Key::string("accesslog.filename"),
        Key::string("accesslog.format"),
        Key::boolean("accesslog.use-syslog"),
        Key::int("accesslog.syslog-level"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => {
                let name = v.to_str()?.trim();
                self.filename = (!name.is_empty() && name != "|").then(|| name.to_owned());
            }
            1 => self.format = Arc::new(Format::parse(v.to_str()?)?),
            2 => self.use_syslog = v.to_bool()?,
            3 => {
                let l = v.to_int()?;
                self.syslog_level = u8::try_from(l)
                    .ok()
                    .filter(|&l| l <= 7)
                    .ok_or("syslog level must be 0 (emerg) to 7 (debug)")?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The module: the open destinations, fixed after start.
#[derive(Default)]
pub struct AccessLog {
    /// By `accesslog.filename` value.
    sinks: HashMap<String, Arc<Sink>>,
    syslog: Option<Syslog>,
}

impl Module for AccessLog {
    const NAME: &'static str = "mod_accesslog";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "writes an access log (file, piped logger or syslog)";
    const HOOKS: Hooks = Hooks::REQUEST_DONE.union(Hooks::SIGHUP).union(Hooks::WAITPID).union(Hooks::TRIGGER);
    type Config = AccessLogConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        AccessLog::default()
    }

    fn set_defaults(&mut self, configs: &Configs<AccessLogConfig>) -> Result<(), String> {
        // Every file any block names is opened now, even in blocks that also turn syslog on:
        // sibling blocks merged for one request can combine the two settings.
        for c in configs.all() {
            if let Some(name) = &c.filename {
                if !self.sinks.contains_key(name) {
                    let sink = Sink::open(name).map_err(|e| format!("accesslog.filename {name:?}: {e}"))?;
                    self.sinks.insert(name.clone(), Arc::new(sink));
                }
            }
            if c.use_syslog && self.syslog.is_none() {
                self.syslog =
                    Some(Syslog::new("/dev/log").map_err(|e| format!("accesslog.use-syslog: {e}"))?);
            }
        }
        Ok(())
    }

    fn cleanup(&mut self) {
        // Closing a piped logger's stdin lets it finish and exit on its own.
        self.sinks.clear();
    }

    fn request_done(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let sink = if conf.use_syslog {
            None
        } else {
            match conf.filename.as_ref().and_then(|n| self.sinks.get(n)) {
                Some(s) => Some(s),
                None => return Handler::GoOn,
            }
        };
        let mut line = Vec::with_capacity(256);
        conf.format.render(&ReqValues::new(req), &mut line);
        match (sink, &self.syslog) {
            (Some(s), _) => {
                line.push(b'\n');
                s.write_line(&line);
            }
            (None, Some(sys)) => sys.send(conf.syslog_level, &line),
            (None, None) => {}
        }
        Handler::GoOn
    }

    fn sighup(&self) {
        for s in self.sinks.values() {
            s.reopen();
        }
    }

    fn waitpid(&self, pid: i32, _status: i32) -> bool {
        let Ok(pid) = u32::try_from(pid) else {
            return false;
        };
        self.sinks.values().any(|s| s.child_exited(pid))
    }

    fn trigger(&self) {
        for s in self.sinks.values() {
            s.respawn_if_dead();
        }
    }
}

/// A finished request seen through [`LogValues`].
pub struct ReqValues<'r, 'a> {
    req: &'r Request<'a, AccessLog>,
    end_us: u64,
}

impl<'r, 'a> ReqValues<'r, 'a> {
    pub fn new(req: &'r Request<'a, AccessLog>) -> Self {
        let end_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        ReqValues { req, end_us }
    }

    /// Size of the response head as it went out, rebuilt from the response headers.
    fn head_len(&self) -> u64 {
        let status_line = self.req.protocol().len() + 5 + reason(self.req.status()).len() + 2;
        let headers: usize = self.req.response_headers().map(|(n, v)| n.len() + 2 + v.len() + 2).sum();
        (status_line + headers + 2) as u64
    }
}

impl LogValues for ReqValues<'_, '_> {
    fn remote_addr(&self) -> &[u8] {
        self.req.remote_addr()
    }
    fn remote_port(&self) -> u16 {
        self.req.remote_port()
    }
    fn local_addr(&self) -> &[u8] {
        self.req.local_addr()
    }
    fn method(&self) -> &[u8] {
        self.req.method()
    }
    fn target(&self) -> &[u8] {
        self.req.target()
    }
    fn target_orig(&self) -> &[u8] {
        self.req.target_orig()
    }
    fn protocol(&self) -> &[u8] {
        self.req.protocol()
    }
    fn host(&self) -> &[u8] {
        self.req.host()
    }
    fn status(&self) -> u16 {
        self.req.status()
    }
    fn body_bytes(&self) -> Option<u64> {
        // The server counts body bytes itself since ABI 1.1; estimate on older servers.
        if let Some(n) = self.req.body_bytes_out() {
            return Some(n);
        }
        let cl = self
            .req
            .response_header("Content-Length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.trim().parse().ok());
        format::body_bytes(
            self.req.bytes_out(),
            self.req.method() == b"HEAD",
            self.req.status(),
            cl,
            self.head_len(),
        )
    }
    fn bytes_out(&self) -> u64 {
        self.req.bytes_out()
    }
    fn bytes_in(&self) -> u64 {
        self.req.bytes_in()
    }
    fn start_us(&self) -> u64 {
        self.req.start_us()
    }
    fn end_us(&self) -> u64 {
        self.end_us.max(self.req.start_us())
    }
    fn request_header(&self, name: &str) -> Option<&[u8]> {
        self.req.header(name)
    }
    fn response_header(&self, name: &str) -> Option<&[u8]> {
        self.req.response_header(name)
    }
    fn env(&self, name: &str) -> Option<&[u8]> {
        self.req.env(name)
    }
    fn physical_path(&self) -> &[u8] {
        self.req.physical_path()
    }
}

/// Reason phrases, only to size the status line for `%b`.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

featherd_mod_api::export_module!(AccessLog);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_uses_lighttpd_default_format() {
        let c = AccessLogConfig::default();
        assert_eq!(*c.format, Format::parse(DEFAULT_FORMAT).expect("default format parses"));
        assert!(!c.format.fields.is_empty());
        assert_eq!(c.filename, None);
        assert_eq!(c.syslog_level, 6);
    }

    #[test]
    fn descriptor_declares_hooks_and_keys() {
        let d = featherd_module_v1();
        assert!(!d.is_null());
        assert_eq!(d, featherd_module_v1(), "cached");
        let desc = featherd_mod_api::__private::descriptor::<AccessLog>();
        assert_eq!(desc.config_keys_len, 4);
        assert!(desc.request_done.is_some() && desc.sighup.is_some() && desc.waitpid.is_some());
        assert!(desc.subrequest_start.is_none());
    }

    #[test]
    fn reason_phrases_known_for_common_statuses() {
        for s in [200, 206, 304, 404, 416, 500] {
            assert!(!reason(s).is_empty(), "{s}");
        }
        assert_eq!(reason(599), "");
    }
}
