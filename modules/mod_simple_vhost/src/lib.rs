//! mod_simple_vhost: one directory per virtual host.
//!
//! Data in: at DOCROOT, the request's host (lower-case, port already stripped by the core) and
//! this module's settings for the request. Data out: the document root
//! `server-root/HOST/document-root/` when that directory exists, else
//! `server-root/DEFAULT-HOST/document-root/`, else nothing (the request keeps
//! `server.document-root`). With `simple-vhost.debug`, a line in the error log for each
//! candidate that is not a directory.
//!
//! A host name can never leave the server root: one that is empty, starts with a dot or
//! holds a slash (the core already refuses such Host headers with 400; this module checks
//! again rather than trust every caller) is never put into a path, and the default host is
//! used instead.

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct SimpleVhostConfig {
    /// `simple-vhost.server-root`, ending with '/'; None (unset or "") disables the module.
    pub server_root: Option<String>,
    /// `simple-vhost.default-host`; None when unset or "".
    pub default_host: Option<String>,
    /// `simple-vhost.document-root`; None when unset or "".
    pub document_root: Option<String>,
    /// `simple-vhost.debug`: log the candidates that are not directories.
    pub debug: bool,
}

const KEY_SERVER_ROOT: usize = 0;
const KEY_DEFAULT_HOST: usize = 1;
const KEY_DOCUMENT_ROOT: usize = 2;
const KEY_DEBUG: usize = 3;

fn non_empty(v: &Value) -> Result<Option<String>, String> {
    let s = v.to_str()?;
    if s.contains('\0') {
        return Err("a path cannot contain a NUL byte".into());
    }
    Ok((!s.trim().is_empty()).then(|| s.to_owned()))
}

impl ModuleConfig for SimpleVhostConfig {
    const KEYS: &'static [Key] = &[
        Key::string("simple-vhost.server-root"),
        Key::string("simple-vhost.default-host"),
        Key::string("simple-vhost.document-root"),
        Key::any("simple-vhost.debug"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            KEY_SERVER_ROOT => {
                self.server_root = non_empty(v)?.map(|mut s| {
                    if !s.ends_with('/') {
                        s.push('/');
                    }
                    s
                })
            }
            KEY_DEFAULT_HOST => self.default_host = non_empty(v)?,
            KEY_DOCUMENT_ROOT => self.document_root = non_empty(v)?,
            KEY_DEBUG => {
                // lighttpd reads a number here; "enable"/"disable" are accepted too.
                self.debug = match (v.as_int(), v.as_bool()) {
                    (Some(n), _) => n != 0,
                    (None, Some(b)) => b,
                    _ => return Err("expected an integer or \"enable\"/\"disable\"".into()),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether a host name may be used as a directory name below the server root.
pub fn host_is_safe(host: &[u8]) -> bool {
    !host.is_empty() && host[0] != b'.' && !host.contains(&b'/') && !host.contains(&0)
}

/// `server_root` (ending with '/') + `host` + `document_root`, ending with '/'. `host` None
/// stands for an unset default host: then the path is `server_root` + `document_root`.
pub fn build_path(server_root: &str, host: Option<&[u8]>, document_root: Option<&str>) -> Vec<u8> {
    let mut p = server_root.as_bytes().to_vec();
    if let Some(h) = host {
        p.extend_from_slice(h);
    }
    if let Some(d) = document_root {
        if !p.ends_with(b"/") {
            p.push(b'/');
        }
        p.extend_from_slice(d.trim_start_matches('/').as_bytes());
    }
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p
}

/// The document root for `host`, given a test for "is a directory" (passed in so that the
/// choice is testable without a disk) and a sink for debug lines.
pub fn choose_docroot(
    conf: &SimpleVhostConfig,
    host: &[u8],
    is_dir: impl Fn(&[u8]) -> bool,
    mut debug: impl FnMut(&[u8]),
) -> Option<Vec<u8>> {
    let root = conf.server_root.as_deref()?;
    let document_root = conf.document_root.as_deref();
    if host_is_safe(host) {
        let p = build_path(root, Some(host), document_root);
        if is_dir(&p) {
            return Some(p);
        }
        debug(&p);
    }
    let p = build_path(root, conf.default_host.as_deref().map(str::as_bytes), document_root);
    if is_dir(&p) {
        return Some(p);
    }
    debug(&p);
    None
}

fn is_dir(p: &[u8]) -> bool {
    std::fs::metadata(OsStr::from_bytes(p)).is_ok_and(|m| m.is_dir())
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct SimpleVhost;

impl Module for SimpleVhost {
    const NAME: &'static str = "mod_simple_vhost";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "document root = server-root + host + document-root";
    const HOOKS: Hooks = Hooks::DOCROOT;
    type Config = SimpleVhostConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        SimpleVhost
    }

    fn docroot(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        if conf.server_root.is_none() {
            return Handler::GoOn;
        }
        let debug = conf.debug;
        let found = choose_docroot(&conf, req.host(), is_dir, |p| {
            if debug {
                log::info!("not a directory: {}", String::from_utf8_lossy(p));
            }
        });
        if let Some(p) = found {
            if debug {
                log::info!("document root {}", String::from_utf8_lossy(&p));
            }
            req.set_docroot(&p);
        }
        Handler::GoOn
    }
}

featherd_mod_api::export_module!(SimpleVhost);

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(root: &str, default: Option<&str>, docroot: Option<&str>) -> SimpleVhostConfig {
        SimpleVhostConfig {
            server_root: Some(root.into()),
            default_host: default.map(Into::into),
            document_root: docroot.map(Into::into),
            debug: false,
        }
    }

    #[test]
    fn build_path_table() {
        let cases: &[(&str, Option<&str>, Option<&str>, &str)] = &[
            ("/srv/", Some("a.test"), Some("htdocs"), "/srv/a.test/htdocs/"),
            ("/srv/", Some("a.test"), Some("/htdocs/"), "/srv/a.test/htdocs/"),
            ("/srv/", Some("a.test"), None, "/srv/a.test/"),
            ("/srv/", None, Some("htdocs"), "/srv/htdocs/"),
            ("/srv/", None, None, "/srv/"),
        ];
        for (root, host, doc, want) in cases {
            let got = build_path(root, host.map(str::as_bytes), *doc);
            assert_eq!(String::from_utf8_lossy(&got), *want, "{root} {host:?} {doc:?}");
        }
    }

    #[test]
    fn unsafe_hosts_fall_back_to_the_default() {
        let dirs = ["/srv/a.test/htdocs/", "/srv/www.test/htdocs/", "/srv/../htdocs/", "/srv/./htdocs/"];
        let fs = |p: &[u8]| dirs.iter().any(|d| d.as_bytes() == p);
        let c = conf("/srv/", Some("www.test"), Some("htdocs"));
        let cases: &[(&str, &str)] = &[
            ("a.test", "/srv/a.test/htdocs/"),
            ("nope.test", "/srv/www.test/htdocs/"),
            ("", "/srv/www.test/htdocs/"),
            ("..", "/srv/www.test/htdocs/"),
            (".", "/srv/www.test/htdocs/"),
            ("../x", "/srv/www.test/htdocs/"),
            ("a.test/..", "/srv/www.test/htdocs/"),
            (".hidden", "/srv/www.test/htdocs/"),
        ];
        for (host, want) in cases {
            let got = choose_docroot(&c, host.as_bytes(), fs, |_| {});
            assert_eq!(got.as_deref(), Some(want.as_bytes()), "host {host:?}");
        }
    }

    #[test]
    fn no_default_means_root_plus_document_root_then_nothing() {
        let c = conf("/srv/", None, Some("htdocs"));
        let got = choose_docroot(&c, b"x.test", |p| p == b"/srv/htdocs/", |_| {});
        assert_eq!(got.as_deref(), Some(&b"/srv/htdocs/"[..]));
        let mut logged = Vec::new();
        let got = choose_docroot(&c, b"x.test", |_| false, |p| logged.push(p.to_vec()));
        assert_eq!(got, None);
        assert_eq!(logged, vec![b"/srv/x.test/htdocs/".to_vec(), b"/srv/htdocs/".to_vec()]);
    }

    #[test]
    fn disabled_without_server_root() {
        let c = SimpleVhostConfig::default();
        assert_eq!(choose_docroot(&c, b"a.test", |_| true, |_| {}), None);
    }
}
