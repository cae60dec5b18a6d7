//! The core's own configuration keys: their table (name, type, scope), the server-wide
//! settings read once at start ([`ServerConf`]) and the per-request settings merged over the
//! matching conditional blocks ([`CoreConf`]). Also the check that every key in the file is
//! owned by the core or a loaded module, with a "did you mean" for typos.

use crate::config::{Config, Value};
use featherd_mod_api::abi::{
    SCOPE_CONDITIONAL, SCOPE_SERVER, VALUE_ANY, VALUE_ARRAY, VALUE_BOOL, VALUE_INT, VALUE_STRING,
};
use std::sync::Arc;

/// A key the core owns: (name, kind, scope).
pub type KeyDef = (&'static str, u32, u32);

const S: u32 = SCOPE_SERVER;
const C: u32 = SCOPE_CONDITIONAL;

/// Every core key. Keys lighttpd has but featherd has no use for (its event handler and
/// network backend are fixed) are accepted so that existing configs load; they are listed in
/// [`IGNORED_KEYS`] and logged at start.
pub const CORE_KEYS: &[KeyDef] = &[
    ("server.document-root", VALUE_STRING, C),
    ("server.bind", VALUE_STRING, S),
    ("server.port", VALUE_INT, S),
    ("server.modules", VALUE_ARRAY, S),
    ("server.max-worker", VALUE_INT, S),
    ("server.errorlog", VALUE_STRING, S),
    ("server.breakagelog", VALUE_STRING, S),
    ("server.errorlog-use-syslog", VALUE_BOOL, S),
    ("server.syslog-facility", VALUE_STRING, S),
    ("server.pid-file", VALUE_STRING, S),
    ("server.username", VALUE_STRING, S),
    ("server.groupname", VALUE_STRING, S),
    ("server.chroot", VALUE_STRING, S),
    ("server.tag", VALUE_STRING, C),
    ("server.name", VALUE_STRING, C),
    ("server.max-fds", VALUE_INT, S),
    ("server.max-connections", VALUE_INT, S),
    ("server.max-keep-alive-requests", VALUE_INT, C),
    ("server.max-keep-alive-idle", VALUE_INT, C),
    ("server.max-read-idle", VALUE_INT, C),
    ("server.max-write-idle", VALUE_INT, C),
    ("server.max-request-size", VALUE_INT, C),
    ("server.max-request-field-size", VALUE_INT, S),
    ("server.use-ipv6", VALUE_BOOL, C),
    ("server.set-v6only", VALUE_BOOL, C),
    ("server.listen-backlog", VALUE_INT, C),
    ("server.follow-symlink", VALUE_BOOL, C),
    ("server.force-lowercase-filenames", VALUE_BOOL, C),
    ("server.range-requests", VALUE_BOOL, C),
    ("server.errorfile-prefix", VALUE_STRING, C),
    ("server.error-handler", VALUE_STRING, C),
    ("server.error-handler-404", VALUE_STRING, C),
    ("server.upload-dirs", VALUE_ARRAY, S),
    ("server.stream-request-body", VALUE_INT, C),
    ("server.stream-response-body", VALUE_INT, C),
    ("server.http-parseopts", VALUE_ARRAY, S),
    ("server.systemd-socket-activation", VALUE_BOOL, S),
    ("server.compat-module-load", VALUE_BOOL, S),
    ("server.graceful-shutdown-timeout", VALUE_INT, S),
    ("server.graceful-restart-bg", VALUE_BOOL, S),
    ("server.kbytes-per-second", VALUE_INT, C),
    ("connection.kbytes-per-second", VALUE_INT, C),
    ("server.reject-expect-100-with-417", VALUE_BOOL, S),
    ("server.protocol-http11", VALUE_BOOL, C),
    ("server.core-files", VALUE_BOOL, S),
    ("server.feature-flags", VALUE_ARRAY, S),
    ("mimetype.assign", VALUE_ARRAY, C),
    ("mimetype.default", VALUE_STRING, C),
    ("mimetype.use-xattr", VALUE_BOOL, C),
    ("debug.log-request-header", VALUE_BOOL, C),
    ("debug.log-response-header", VALUE_BOOL, C),
    ("debug.log-request-handling", VALUE_BOOL, C),
    ("debug.log-file-not-found", VALUE_BOOL, C),
    ("debug.log-condition-handling", VALUE_BOOL, C),
    ("debug.log-timeouts", VALUE_BOOL, C),
    ("debug.log-state-handling", VALUE_BOOL, C),
    ("debug.log-ssl-noise", VALUE_BOOL, C),
    ("server.event-handler", VALUE_STRING, S),
    ("server.network-backend", VALUE_STRING, S),
    ("server.stat-cache-engine", VALUE_STRING, S),
    ("server.stat-cache-engine-ttl", VALUE_INT, S),
    ("server.defer-accept", VALUE_INT, S),
];

/// Keys accepted for compatibility and otherwise ignored (featherd always uses epoll and
/// sendfile/writev, and stats files itself).
pub const IGNORED_KEYS: &[&str] = &[
    "server.event-handler",
    "server.network-backend",
    "server.stat-cache-engine-ttl",
    "server.core-files",
    "mimetype.use-xattr",
    "server.graceful-restart-bg",
];

/// Settings that hold for the whole server (global block only).
#[derive(Clone, Debug)]
pub struct ServerConf {
    pub bind: Option<String>,
    pub port: u16,
    pub modules: Vec<String>,
    pub max_worker: Option<usize>,
    pub errorlog: Option<String>,
    pub breakagelog: Option<String>,
    pub pid_file: Option<String>,
    pub username: Option<String>,
    pub groupname: Option<String>,
    pub chroot: Option<String>,
    pub max_fds: Option<u64>,
    pub max_connections: usize,
    pub max_request_field_size: usize,
    pub upload_dirs: Vec<String>,
    pub systemd_socket_activation: bool,
    pub compat_module_load: bool,
    pub graceful_shutdown_timeout: u64,
    pub url: crate::http::url::UrlOpts,
    /// `server.stat-cache-engine`: "simple" (default; also "inotify"/"fam") keeps a path's
    /// stat for the rest of the current second; "disable" stats every time.
    pub stat_cache: bool,
    /// `server.feature-flags` `"server.absolute-dir-redirect"`: the redirect of a directory
    /// without its trailing slash names scheme and host (lighttpd 1.4.64+ sends a relative
    /// one by default).
    pub absolute_dir_redirect: bool,
    /// `server.defer-accept`: seconds the kernel holds a new TCP connection until its first
    /// bytes arrive (TCP_DEFER_ACCEPT); 0 accepts at once. featherd's default is 1, see
    /// docs/configuration.md.
    pub defer_accept: u32,
}

impl Default for ServerConf {
    fn default() -> Self {
        ServerConf {
            bind: None,
            port: 80,
            modules: Vec::new(),
            max_worker: None,
            errorlog: None,
            breakagelog: None,
            pid_file: None,
            username: None,
            groupname: None,
            chroot: None,
            max_fds: None,
            max_connections: 0,
            max_request_field_size: 8192,
            upload_dirs: vec!["/var/tmp".into()],
            systemd_socket_activation: false,
            stat_cache: true,
            absolute_dir_redirect: false,
            defer_accept: 1,
            compat_module_load: true,
            graceful_shutdown_timeout: 8,
            url: Default::default(),
        }
    }
}

fn str_list(v: &Value) -> Vec<String> {
    match v {
        Value::Str(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|e| e.value.as_str().map(str::to_owned)).collect(),
        Value::Int(_) => Vec::new(),
    }
}

impl ServerConf {
    /// Read the server-wide keys from the global block. Errors name file:line and the key.
    pub fn from_config(cfg: &Config) -> Result<ServerConf, String> {
        let mut s = ServerConf::default();
        let Some(g) = cfg.blocks.first() else { return Ok(s) };
        for set in &g.settings {
            let bad = |what: &str| format!("{}: {} must be {what}", set.loc, set.key);
            let v = &set.value;
            match set.key.as_str() {
                "server.bind" => s.bind = v.as_str().map(str::to_owned),
                "server.port" => {
                    s.port =
                        v.as_int().and_then(|p| u16::try_from(p).ok()).ok_or_else(|| bad("a port number"))?
                }
                "server.modules" => s.modules = str_list(v),
                "server.max-worker" => {
                    let n = v.as_int().filter(|n| (0..=1024).contains(n)).ok_or_else(|| bad("0..1024"))?;
                    s.max_worker = Some((n as usize).max(1));
                }
                "server.errorlog" => s.errorlog = v.as_str().map(str::to_owned),
                "server.breakagelog" => s.breakagelog = v.as_str().map(str::to_owned),
                "server.pid-file" => s.pid_file = v.as_str().map(str::to_owned),
                "server.username" => s.username = v.as_str().filter(|x| !x.is_empty()).map(str::to_owned),
                "server.groupname" => s.groupname = v.as_str().filter(|x| !x.is_empty()).map(str::to_owned),
                "server.chroot" => s.chroot = v.as_str().filter(|x| !x.is_empty()).map(str::to_owned),
                "server.stat-cache-engine" => {
                    s.stat_cache = match v.as_str() {
                        Some("simple" | "inotify" | "fam") => true,
                        Some("disable" | "none") => false,
                        _ => return Err(bad("\"simple\" or \"disable\"")),
                    }
                }
                "server.max-fds" => s.max_fds = v.as_int().and_then(|n| u64::try_from(n).ok()),
                "server.max-connections" => {
                    s.max_connections = v.as_int().and_then(|n| usize::try_from(n).ok()).unwrap_or(0)
                }
                "server.max-request-field-size" => {
                    s.max_request_field_size =
                        v.as_int().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| bad("a byte count"))?
                }
                "server.upload-dirs" => s.upload_dirs = str_list(v),
                "server.systemd-socket-activation" => {
                    s.systemd_socket_activation = v.as_bool().unwrap_or(false)
                }
                "server.compat-module-load" => s.compat_module_load = v.as_bool().unwrap_or(true),
                "server.graceful-shutdown-timeout" => {
                    s.graceful_shutdown_timeout = v.as_int().and_then(|n| u64::try_from(n).ok()).unwrap_or(8)
                }
                "server.defer-accept" => {
                    s.defer_accept = v
                        .as_int()
                        .and_then(|n| u32::try_from(n).ok())
                        .ok_or_else(|| bad("a number of seconds (0: off)"))?
                }
                "server.feature-flags" => {
                    let Value::Array(a) = v else { return Err(bad("an array")) };
                    for e in a {
                        // The other flags tune lighttpd internals featherd does not have
                        // (HTTP/2, its own restart modes, ...): accepted and ignored.
                        match e.key.as_deref() {
                            Some("server.absolute-dir-redirect") => {
                                s.absolute_dir_redirect =
                                    e.value.as_bool().ok_or_else(|| bad("\"enable\"/\"disable\" values"))?
                            }
                            // lighttpd's place for it (Debian's default config sets 5).
                            Some("server.graceful-shutdown-timeout") => {
                                s.graceful_shutdown_timeout =
                                    e.value.as_int().and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
                                        bad("a number of seconds for server.graceful-shutdown-timeout")
                                    })?
                            }
                            _ => {}
                        }
                    }
                }
                "server.http-parseopts" => {
                    let Value::Array(a) = v else { return Err(bad("an array")) };
                    for e in a {
                        let k = e.key.as_deref().unwrap_or("");
                        let on = e.value.as_bool().ok_or_else(|| bad("\"enable\"/\"disable\" values"))?;
                        use crate::http::url::SlashPolicy;
                        match k {
                            "url-path-2f-decode" if on => s.url.slash = SlashPolicy::Decode,
                            "url-path-2f-reject" if on => s.url.slash = SlashPolicy::Reject,
                            "url-path-dotseg-remove" => s.url.dotseg_remove = on,
                            "url-path-dotseg-reject" => s.url.dotseg_remove = !on,
                            "url-ctrls-reject" => s.url.ctrls_reject = on,
                            "url-path-backslash-trans" => s.url.backslash_trans = on,
                            "url-invalid-utf8-reject" => s.url.utf8_reject = on,
                            "url-query-20-plus" => s.url.query_20_plus = on,
                            // featherd always validates headers and hosts strictly, normalises
                            // the host and decodes the path (the raw target is kept for
                            // REQUEST_URI): these are accepted in either setting.
                            "header-strict"
                            | "host-strict"
                            | "host-normalize"
                            | "url-normalize"
                            | "url-normalize-unreserved"
                            | "url-normalize-required"
                            | "url-path-2f-decode"
                            | "url-path-2f-reject" => {}
                            other => {
                                return Err(format!(
                                    "{}: {}: unknown option {other:?} (see docs/configuration.md)",
                                    set.loc, set.key
                                ))
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// Per-request core settings (may differ per conditional block).
#[derive(Clone, Debug)]
pub struct CoreConf {
    pub docroot: Option<Arc<str>>,
    /// (suffix, type), longest suffix first.
    pub mimetypes: Arc<Vec<(String, String)>>,
    pub mimetype_default: Arc<str>,
    pub tag: Arc<str>,
    pub max_keep_alive_requests: u32,
    pub max_keep_alive_idle: u32,
    pub max_read_idle: u32,
    pub max_write_idle: u32,
    /// Bytes (the config gives KiB); 0 = no limit.
    pub max_request_size: u64,
    pub follow_symlink: bool,
    pub force_lowercase: bool,
    pub range_requests: bool,
    pub errorfile_prefix: Option<Arc<str>>,
    /// `server.error-handler`: a URI that answers every error status >= 400 the server
    /// produces without a body.
    pub error_handler: Option<Arc<str>>,
    /// `server.error-handler-404`: the same for 404 only (wins over `error-handler`).
    pub error_handler_404: Option<Arc<str>>,
    pub log_request_handling: bool,
    pub log_file_not_found: bool,
    pub log_request_header: bool,
    /// `server.stream-request-body`: 0 = the whole body before the handler runs (spilled to
    /// a file under server.upload-dirs), 1 = stream to the handler, buffering the rest,
    /// 2 = stream with at most 64 KiB buffered (the client is read only as the handler reads).
    pub stream_request_body: u8,
}

impl Default for CoreConf {
    fn default() -> Self {
        CoreConf {
            docroot: None,
            mimetypes: Arc::new(default_mimetypes()),
            mimetype_default: Arc::from("application/octet-stream"),
            tag: Arc::from(concat!("featherd/", env!("CARGO_PKG_VERSION"))),
            max_keep_alive_requests: 1000,
            max_keep_alive_idle: 5,
            max_read_idle: 60,
            max_write_idle: 360,
            max_request_size: 0,
            follow_symlink: true,
            force_lowercase: false,
            range_requests: true,
            errorfile_prefix: None,
            error_handler: None,
            error_handler_404: None,
            log_request_handling: false,
            log_file_not_found: false,
            log_request_header: false,
            stream_request_body: 0,
        }
    }
}

impl CoreConf {
    /// Apply one setting of a block (types were checked already).
    pub fn apply(&mut self, key: &str, v: &Value) {
        let int = |d: u32| v.as_int().and_then(|n| u32::try_from(n).ok()).unwrap_or(d);
        match key {
            "server.document-root" => {
                self.docroot = v.as_str().map(|s| Arc::from(s.trim_end_matches('/').to_string() + ""))
            }
            "mimetype.assign" => {
                let mut m: Vec<(String, String)> = match v {
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|e| Some((e.key.clone()?, e.value.as_str()?.to_owned())))
                        .collect(),
                    _ => Vec::new(),
                };
                // Longest suffix first, so ".tar.gz" wins over ".gz".
                m.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
                self.mimetypes = Arc::new(m);
            }
            "mimetype.default" => {
                if let Some(s) = v.as_str() {
                    self.mimetype_default = Arc::from(s)
                }
            }
            "server.tag" => {
                if let Some(s) = v.as_str() {
                    self.tag = Arc::from(s)
                }
            }
            "server.max-keep-alive-requests" => self.max_keep_alive_requests = int(1000),
            "server.max-keep-alive-idle" => self.max_keep_alive_idle = int(5),
            "server.max-read-idle" => self.max_read_idle = int(60),
            "server.max-write-idle" => self.max_write_idle = int(360),
            "server.max-request-size" => self.max_request_size = u64::from(int(0)) * 1024,
            "server.follow-symlink" => self.follow_symlink = v.as_bool().unwrap_or(true),
            "server.force-lowercase-filenames" => self.force_lowercase = v.as_bool().unwrap_or(false),
            "server.range-requests" => self.range_requests = v.as_bool().unwrap_or(true),
            "server.errorfile-prefix" => self.errorfile_prefix = v.as_str().map(Arc::from),
            "server.error-handler" => {
                self.error_handler = v.as_str().filter(|s| s.starts_with('/')).map(Arc::from)
            }
            "server.error-handler-404" => {
                self.error_handler_404 = v.as_str().filter(|s| s.starts_with('/')).map(Arc::from)
            }
            "debug.log-request-handling" => self.log_request_handling = v.as_bool().unwrap_or(false),
            "debug.log-file-not-found" => self.log_file_not_found = v.as_bool().unwrap_or(false),
            "debug.log-request-header" => self.log_request_header = v.as_bool().unwrap_or(false),
            "server.stream-request-body" => self.stream_request_body = int(0).min(2) as u8,
            _ => {}
        }
    }

    /// Content type for a file name: the longest matching suffix of `mimetype.assign`.
    pub fn mimetype_for(&self, name: &[u8]) -> &str {
        for (suffix, t) in self.mimetypes.iter() {
            if suffix.is_empty() || name.ends_with(suffix.as_bytes()) {
                return t;
            }
        }
        &self.mimetype_default
    }
}

/// The types served when `mimetype.assign` is not set (lighttpd's users usually include
/// Debian's mime.conf; this covers the common web types).
fn default_mimetypes() -> Vec<(String, String)> {
    let t: &[(&str, &str)] = &[
        (".html", "text/html"),
        (".htm", "text/html"),
        (".css", "text/css"),
        (".js", "text/javascript"),
        (".mjs", "text/javascript"),
        (".json", "application/json"),
        (".txt", "text/plain"),
        (".xml", "application/xml"),
        (".svg", "image/svg+xml"),
        (".png", "image/png"),
        (".jpg", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
        (".avif", "image/avif"),
        (".ico", "image/vnd.microsoft.icon"),
        (".pdf", "application/pdf"),
        (".wasm", "application/wasm"),
        (".woff", "font/woff"),
        (".woff2", "font/woff2"),
        (".ttf", "font/ttf"),
        (".otf", "font/otf"),
        (".mp4", "video/mp4"),
        (".webm", "video/webm"),
        (".mp3", "audio/mpeg"),
        (".ogg", "audio/ogg"),
        (".wav", "audio/wav"),
        (".zip", "application/zip"),
        (".gz", "application/gzip"),
        (".tar", "application/x-tar"),
        (".tar.gz", "application/x-tgz"),
        (".bz2", "application/x-bzip2"),
        (".xz", "application/x-xz"),
        (".csv", "text/csv"),
        (".md", "text/markdown"),
    ];
    let mut v: Vec<(String, String)> = t.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    v.sort_by_key(|e| std::cmp::Reverse(e.0.len()));
    v
}

/// Check a value against a declared kind; returns what was expected on mismatch.
pub fn check_kind(kind: u32, v: &Value) -> Result<(), &'static str> {
    let ok = match kind {
        VALUE_STRING => matches!(v, Value::Str(_)) || matches!(v, Value::Int(_)),
        VALUE_INT => v.as_int().is_some(),
        VALUE_BOOL => v.as_bool().is_some(),
        VALUE_ARRAY => matches!(v, Value::Array(_)),
        VALUE_ANY => true,
        _ => true,
    };
    if ok {
        return Ok(());
    }
    Err(match kind {
        VALUE_STRING => "a string",
        VALUE_INT => "an integer",
        VALUE_BOOL => "a boolean (\"enable\" or \"disable\")",
        _ => "an array",
    })
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known key closest to `key`, if it is close enough to be a likely typo.
pub fn closest<'a>(key: &str, known: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    known
        .map(|k| (distance(key, k), k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["server.port", "server.bind", "index-file.names"];
        assert_eq!(closest("server.prot", keys.iter().copied()), Some("server.port"));
        assert_eq!(closest("index-file.name", keys.iter().copied()), Some("index-file.names"));
        assert_eq!(closest("zzz.qqq", keys.iter().copied()), None);
    }

    #[test]
    fn feature_flags_and_defer_accept() {
        let server = |text: &str| {
            let cfg = crate::config::parse_str(text, std::path::Path::new("t.conf")).expect("parses");
            ServerConf::from_config(&cfg)
        };
        let d = server("").expect("defaults");
        assert_eq!((d.absolute_dir_redirect, d.graceful_shutdown_timeout, d.defer_accept), (false, 8, 1));
        // Debian's default lighttpd.conf appends flags with +=; unknown flags are ignored.
        let s = server(
            "server.feature-flags += (\"server.h2proto\" => \"enable\")\n\
             server.feature-flags += (\"server.graceful-shutdown-timeout\" => 5)\n\
             server.feature-flags += (\"server.absolute-dir-redirect\" => \"enable\")\n\
             server.defer-accept = 0\n",
        )
        .expect("accepted");
        assert_eq!((s.absolute_dir_redirect, s.graceful_shutdown_timeout, s.defer_accept), (true, 5, 0));
        let e =
            server("server.feature-flags = (\"server.absolute-dir-redirect\" => \"maybe\")\n").unwrap_err();
        assert!(e.starts_with("t.conf:1") && e.contains("server.feature-flags"), "{e}");
        let e = server("server.defer-accept = \"soon\"\n").unwrap_err();
        assert!(e.contains("server.defer-accept"), "{e}");
    }

    #[test]
    fn mimetypes_longest_suffix() {
        let c = CoreConf::default();
        assert_eq!(c.mimetype_for(b"/a/b.tar.gz"), "application/x-tgz");
        assert_eq!(c.mimetype_for(b"/a/b.gz"), "application/gzip");
        assert_eq!(c.mimetype_for(b"/a/b.unknown"), "application/octet-stream");
    }
}
