//! mod_access: refuse requests by the end of their URL path.
//!
//! Data in: `url.access-deny` and `url.access-allow` (lists of suffixes, merged per request
//! over the matching conditional blocks), and the decoded, normalised request path. The check
//! runs twice, as lighttpd's does: at URI_CLEAN on the path as requested, and again at
//! SUBREQUEST_START, once the core has split PATH_INFO off, on the part of the path that
//! names the file (so `/secret.inc/x`, which would serve `secret.inc` with PATH_INFO `/x`, is
//! refused like `/secret.inc`).
//! Data out: `403 Forbidden` (and the end of the hook chain) for a denied request; nothing
//! otherwise.
//!
//! Suffixes are compared without regard to ASCII case; see `docs/modules/mod_access.md` for
//! why.

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value};

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct AccessConfig {
    /// `url.access-deny`: a path ending with one of these is refused; `""` refuses all.
    pub deny: Vec<String>,
    /// `url.access-allow`: when not empty, only a path ending with one of these is served.
    pub allow: Vec<String>,
}

impl ModuleConfig for AccessConfig {
    const KEYS: &'static [Key] = &[Key::array("url.access-deny"), Key::array("url.access-allow")];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        let list = v.to_str_list().map_err(|_| "expected a list of suffixes, e.g. ( \"~\", \".inc\" )")?;
        match key {
            0 => self.deny = list,
            _ => self.allow = list,
        }
        Ok(())
    }
}

fn ends_with_nocase(path: &[u8], suffix: &str) -> bool {
    let s = suffix.as_bytes();
    path.len() >= s.len() && path[path.len() - s.len()..].eq_ignore_ascii_case(s)
}

/// Why a path is refused, or None when it may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `url.access-allow` is set and no suffix of it matches.
    NotAllowed,
    /// A suffix of `url.access-deny` matches.
    Denied,
}

/// Check `path` against the configuration. Unlike lighttpd, where a non-empty allow list
/// makes the deny list ignored, both apply: a path must match the allow list (if any) and
/// must not match the deny list.
pub fn check(conf: &AccessConfig, path: &[u8]) -> Option<Refusal> {
    if !conf.allow.is_empty() && !conf.allow.iter().any(|s| ends_with_nocase(path, s)) {
        return Some(Refusal::NotAllowed);
    }
    if conf.deny.iter().any(|s| ends_with_nocase(path, s)) {
        return Some(Refusal::Denied);
    }
    None
}

/// The paths a request is checked on at SUBREQUEST_START: the path itself and, when the core
/// split PATH_INFO off, the path without it (what names the file served).
pub fn file_part<'a>(path: &'a [u8], path_info: &[u8]) -> Option<&'a [u8]> {
    // The core splits PATH_INFO off the physical path, which may be lower-cased
    // (server.force-lowercase-filenames): compare without regard to case.
    let cut = path.len().checked_sub(path_info.len()).filter(|&c| c > 0 && !path_info.is_empty())?;
    path[cut..].eq_ignore_ascii_case(path_info).then(|| &path[..cut])
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct Access;

impl Access {
    fn enforce(req: &mut Request<Self>, paths: &[&[u8]]) -> Handler {
        let conf = req.config();
        if conf.deny.is_empty() && conf.allow.is_empty() {
            return Handler::GoOn;
        }
        let Some(why) = paths.iter().find_map(|p| check(&conf, p)) else {
            return Handler::GoOn;
        };
        log::debug!(
            "403 for {}: {}",
            String::from_utf8_lossy(req.path()),
            match why {
                Refusal::NotAllowed => "no suffix of url.access-allow matches",
                Refusal::Denied => "a suffix of url.access-deny matches",
            }
        );
        req.set_status(403);
        Handler::Finished
    }
}

impl Module for Access {
    const NAME: &'static str = "mod_access";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "refuses requests by the end of their URL path";
    const HOOKS: Hooks = Hooks::URI_CLEAN.union(Hooks::SUBREQUEST_START);
    type Config = AccessConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        Access
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 || req.method() == b"CONNECT" {
            return Handler::GoOn;
        }
        let path = req.path().to_vec();
        Self::enforce(req, &[&path])
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 {
            return Handler::GoOn;
        }
        let path = req.path().to_vec();
        let file = file_part(&path, req.path_info()).map(<[u8]>::to_vec);
        match &file {
            Some(f) => Self::enforce(req, &[&path, f]),
            None => Self::enforce(req, &[&path]),
        }
    }
}

featherd_mod_api::export_module!(Access);

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(deny: &[&str], allow: &[&str]) -> AccessConfig {
        AccessConfig {
            deny: deny.iter().map(|s| s.to_string()).collect(),
            allow: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn check_table() {
        use Refusal::*;
        // (url.access-deny, url.access-allow, path, result)
        type Case<'a> = (&'a [&'a str], &'a [&'a str], &'a str, Option<Refusal>);
        let cases: &[Case] = &[
            (&["~", ".inc"], &[], "/a/b.inc", Some(Denied)),
            (&["~", ".inc"], &[], "/a/b.php~", Some(Denied)),
            (&["~", ".inc"], &[], "/a/b.php", None),
            (&["~", ".inc"], &[], "/a/b.INC", Some(Denied)),
            (&["~", ".inc"], &[], "/a/b.inc.txt", None),
            (&[".inc"], &[], "/inc", None),
            (&[""], &[], "/", Some(Denied)),
            (&[""], &[], "/anything.html", Some(Denied)),
            (&[], &[], "/x.inc", None),
            (&[], &[".html", ".css"], "/index.html", None),
            (&[], &[".html", ".css"], "/SITE.CSS", None),
            (&[], &[".html", ".css"], "/data.json", Some(NotAllowed)),
            (&[], &[".html", ".css"], "/", Some(NotAllowed)),
            (&[], &[".html", "/"], "/dir/", None),
            // Both lists apply; deny wins over allow.
            (&[".secret.html"], &[".html"], "/x.secret.html", Some(Denied)),
            (&[".secret.html"], &[".html"], "/x.html", None),
            (&[], &[""], "/whatever", None),
        ];
        for (deny, allow, path, want) in cases {
            assert_eq!(check(&conf(deny, allow), path.as_bytes()), *want, "{deny:?} {allow:?} {path}");
        }
    }

    #[test]
    fn file_part_strips_path_info() {
        assert_eq!(file_part(b"/a.inc/x/y", b"/x/y"), Some(&b"/a.inc"[..]));
        assert_eq!(file_part(b"/a.inc/", b"/"), Some(&b"/a.inc"[..]));
        assert_eq!(file_part(b"/a.inc", b""), None);
        assert_eq!(file_part(b"/a", b"/b"), None);
        assert_eq!(file_part(b"/a", b"/a"), None);
    }
}
