//! mod_alias: serve a URL prefix from another place on disk.
//!
//! Data in: `alias.url` (`"/url-prefix" => "/filesystem/path"`, merged per request over the
//! matching conditional blocks), and at PHYSICAL the document root and the physical path the
//! core composed (document root + URL path).
//! Data out: for a request whose path starts with an alias prefix, the document root becomes
//! the alias target and the physical path the target followed by the rest of the path, so the
//! core's stat, PATH_INFO split and directory redirect, and the handlers after it (static
//! files, index files, CGI's `DOCUMENT_ROOT` and `SCRIPT_FILENAME`) all work on the aliased
//! place. A path whose rest would climb out of the target is answered 403.
//!
//! The longest matching prefix wins (lighttpd takes the first in the list and refuses a list
//! where a longer prefix comes after a shorter one). Prefixes are plain byte prefixes of the
//! path, as in lighttpd: `/icons` also matches `/iconsets/x`; write `/icons/` to stop at the
//! segment (see `docs/modules/mod_alias.md` for the trailing-slash pitfall).

use featherd_mod_api::{Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};

/// One `"/prefix" => "/target"` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    pub prefix: String,
    pub target: String,
}

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct AliasConfig {
    /// Sorted longest prefix first, so the first match is the longest.
    pub aliases: Vec<Alias>,
}

/// Check and sort one `alias.url` list.
pub fn parse_aliases(pairs: Vec<(String, String)>) -> Result<Vec<Alias>, String> {
    let mut out = Vec::with_capacity(pairs.len());
    for (prefix, target) in pairs {
        if !prefix.starts_with('/') {
            return Err(format!(
                "the URL prefix \"{prefix}\" must start with '/' (request paths always do; to move the \
                 whole site use server.document-root)"
            ));
        }
        if !target.starts_with('/') {
            return Err(format!("the target of \"{prefix}\" must be an absolute path, not \"{target}\""));
        }
        if target.contains('\0') {
            return Err(format!("the target of \"{prefix}\" contains a NUL byte"));
        }
        out.push(Alias { prefix, target });
    }
    // Stable: equal lengths keep their order (the parser refuses duplicate keys anyway).
    out.sort_by_key(|a| std::cmp::Reverse(a.prefix.len()));
    Ok(out)
}

impl ModuleConfig for AliasConfig {
    const KEYS: &'static [Key] = &[Key::array("alias.url")];

    fn apply(&mut self, _key: usize, v: &Value) -> Result<(), String> {
        let pairs = v
            .to_str_map()
            .map_err(|_| "expected a list of \"/url-prefix\" => \"/filesystem/path\"".to_string())?;
        self.aliases = parse_aliases(pairs)?;
        Ok(())
    }
}

/// Where a request maps.
#[derive(Debug, PartialEq, Eq)]
pub enum Mapping {
    /// No prefix matches.
    None,
    /// New document root and physical path.
    To { docroot: Vec<u8>, physical: Vec<u8> },
    /// The rest of the path would leave the target (`/icons..` with `"/icons" => "/x/icons/"`).
    Escapes,
}

/// Map the URL part of a physical path (`url`, starting with '/') through the aliases. With
/// `nocase` (the core lower-cased the physical path) prefixes are compared without regard to
/// ASCII case, as lighttpd does under `server.force-lowercase-filenames`.
pub fn map(aliases: &[Alias], url: &[u8], nocase: bool) -> Mapping {
    let matches = |p: &[u8]| {
        url.len() >= p.len()
            && if nocase { url[..p.len()].eq_ignore_ascii_case(p) } else { url.starts_with(p) }
    };
    let Some(a) = aliases.iter().find(|a| matches(a.prefix.as_bytes())) else {
        return Mapping::None;
    };
    let rest = &url[a.prefix.len()..];
    if escapes(a.target.as_bytes(), rest) {
        return Mapping::Escapes;
    }
    let mut physical = Vec::with_capacity(a.target.len() + rest.len());
    physical.extend_from_slice(a.target.as_bytes());
    physical.extend_from_slice(rest);
    Mapping::To { docroot: a.target.as_bytes().to_vec(), physical }
}

/// Whether `target` followed by `rest` has a `.` or `..` segment made of bytes of `rest`.
/// The core's normalised path has no such segment of its own, but its first segment can
/// become one when glued to the target: `/icons..` with `"/icons" => "/usr/share/icons/"`
/// would read `/usr/share/icons/..`.
pub fn escapes(target: &[u8], rest: &[u8]) -> bool {
    if rest.is_empty() {
        return false;
    }
    // The segment the first byte of `rest` belongs to starts after the target's last '/'.
    let seg_start = target.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let mut joined = target[seg_start..].to_vec();
    joined.extend_from_slice(rest);
    let first_len = target.len() - seg_start;
    let mut pos = 0;
    for seg in joined.split(|&b| b == b'/') {
        let end = pos + seg.len();
        // Only segments that contain bytes of `rest` are new.
        if end > first_len && (seg == b"." || seg == b"..") {
            return true;
        }
        pos = end + 1;
    }
    false
}

/// Prefixes that look like the classic trailing-slash mistake, for a warning at start.
pub fn slash_mismatches(aliases: &[Alias]) -> Vec<String> {
    aliases
        .iter()
        .filter(|a| a.prefix.len() > 1 && a.prefix.ends_with('/') != a.target.ends_with('/'))
        .map(|a| format!("\"{}\" => \"{}\"", a.prefix, a.target))
        .collect()
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct AliasModule;

impl Module for AliasModule {
    const NAME: &'static str = "mod_alias";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "maps URL prefixes to other places on disk (alias.url)";
    const HOOKS: Hooks = Hooks::PHYSICAL;
    type Config = AliasConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        AliasModule
    }

    fn set_defaults(&mut self, configs: &Configs<AliasConfig>) -> Result<(), String> {
        let mut seen = Vec::new();
        for c in configs.all() {
            for m in slash_mismatches(&c.aliases) {
                if !seen.contains(&m) {
                    log::warn!(
                        "alias.url {m}: one of prefix and target ends with '/' and the other does not; \
                         paths under it will be glued without a separator or with a double one"
                    );
                    seen.push(m);
                }
            }
        }
        Ok(())
    }

    fn physical(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 {
            return Handler::GoOn;
        }
        let conf = req.config();
        if conf.aliases.is_empty() {
            return Handler::GoOn;
        }
        // As lighttpd: the URL part is the physical path minus the document root (which is
        // the path, lower-cased under server.force-lowercase-filenames). A physical path that
        // another module moved elsewhere is left alone.
        let docroot = req.docroot();
        let root_len = docroot.len() - usize::from(docroot.ends_with(b"/"));
        let physical = req.physical_path();
        let Some(url) = physical
            .get(root_len..)
            .filter(|u| physical.starts_with(&docroot[..root_len]) && u.starts_with(b"/"))
        else {
            return Handler::GoOn;
        };
        let nocase = url != req.path() && url.eq_ignore_ascii_case(req.path());
        match map(&conf.aliases, url, nocase) {
            Mapping::None => Handler::GoOn,
            Mapping::Escapes => {
                log::info!(
                    "403 for {}: the path would leave the alias target",
                    String::from_utf8_lossy(req.path())
                );
                req.set_status(403);
                Handler::Finished
            }
            Mapping::To { docroot, physical } => {
                log::debug!(
                    "{} -> {}",
                    String::from_utf8_lossy(req.path()),
                    String::from_utf8_lossy(&physical)
                );
                req.set_docroot(&docroot);
                req.set_physical_path(&physical);
                Handler::GoOn
            }
        }
    }
}

featherd_mod_api::export_module!(AliasModule);

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(l: &[(&str, &str)]) -> Vec<Alias> {
        parse_aliases(l.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()).unwrap()
    }

    fn to(p: &str) -> String {
        p.to_string()
    }

    fn mapped(a: &[Alias], url: &str) -> Option<String> {
        match map(a, url.as_bytes(), false) {
            Mapping::To { physical, .. } => Some(String::from_utf8(physical).unwrap()),
            Mapping::None => None,
            Mapping::Escapes => Some(to("ESCAPES")),
        }
    }

    #[test]
    fn longest_prefix_wins_whatever_the_order() {
        for list in [
            &[("/a", "/one"), ("/a/b", "/two"), ("/a/b/c", "/three")][..],
            &[("/a/b/c", "/three"), ("/a", "/one"), ("/a/b", "/two")][..],
        ] {
            let a = aliases(list);
            assert_eq!(mapped(&a, "/a/x"), Some(to("/one/x")));
            assert_eq!(mapped(&a, "/a/b/x"), Some(to("/two/x")));
            assert_eq!(mapped(&a, "/a/b/c/x"), Some(to("/three/x")));
            assert_eq!(mapped(&a, "/a/bc"), Some(to("/twoc")));
            assert_eq!(mapped(&a, "/b"), None);
        }
    }

    #[test]
    fn plain_byte_prefix_as_lighttpd() {
        let a = aliases(&[("/icons", "/usr/share/icons")]);
        assert_eq!(mapped(&a, "/icons"), Some(to("/usr/share/icons")));
        assert_eq!(mapped(&a, "/icons/x.png"), Some(to("/usr/share/icons/x.png")));
        // The pitfall: a prefix without '/' also takes longer names.
        assert_eq!(mapped(&a, "/iconsets/x"), Some(to("/usr/share/iconsets/x")));
        let a = aliases(&[("/icons/", "/usr/share/icons/")]);
        assert_eq!(mapped(&a, "/icons"), None);
        assert_eq!(mapped(&a, "/iconsets/x"), None);
        assert_eq!(mapped(&a, "/icons/x.png"), Some(to("/usr/share/icons/x.png")));
        // The other pitfall: a prefix with '/' and a target without glue the names.
        let a = aliases(&[("/icons/", "/usr/share/icons")]);
        assert_eq!(mapped(&a, "/icons/x.png"), Some(to("/usr/share/iconsx.png")));
    }

    #[test]
    fn never_leaves_the_target() {
        let a = aliases(&[("/icons", "/usr/share/icons/")]);
        for url in ["/icons..", "/icons../etc/passwd", "/icons.", "/icons./x"] {
            assert_eq!(map(&a, url.as_bytes(), false), Mapping::Escapes, "{url}");
        }
        // Names that merely contain dots stay inside.
        assert_eq!(mapped(&a, "/icons.../x"), Some(to("/usr/share/icons/.../x")));
        assert_eq!(mapped(&a, "/icons..x"), Some(to("/usr/share/icons/..x")));
        assert_eq!(mapped(&a, "/icons/x"), Some(to("/usr/share/icons//x")));
        // A kept "%2F" is a character of a name, not a separator.
        assert_eq!(mapped(&a, "/icons..%2Fetc"), Some(to("/usr/share/icons/..%2Fetc")));
        // Without '/' at the end of the target, "/icons.." names a sibling, it does not climb.
        let a = aliases(&[("/icons", "/usr/share/icons")]);
        assert_eq!(mapped(&a, "/icons../etc/passwd"), Some(to("/usr/share/icons../etc/passwd")));
    }

    #[test]
    fn escapes_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("/t/", "..", true),
            ("/t/", "../x", true),
            ("/t/", ".", true),
            ("/t/", "./x", true),
            ("/t/", "x/../y", true),
            ("/t/", "/..", true),
            ("/t", "/..", true),
            ("/t", "/../x", true),
            ("/t", "..", false),
            ("/t", "/x/..", true),
            ("/t/", "...", false),
            ("/t/", "x", false),
            ("/t", "/x", false),
            ("/t", "", false),
            ("/", "..", true),
            ("/", "x", false),
        ];
        for (t, r, want) in cases {
            assert_eq!(escapes(t.as_bytes(), r.as_bytes()), *want, "{t} + {r}");
        }
    }

    #[test]
    fn case_insensitive_when_the_core_lowercased() {
        let a = aliases(&[("/Icons/", "/srv/icons/")]);
        assert_eq!(map(&a, b"/icons/x", false), Mapping::None);
        assert!(matches!(map(&a, b"/icons/x", true), Mapping::To { .. }));
    }

    #[test]
    fn refused_settings() {
        let bad = |p: &str, t: &str| parse_aliases(vec![(p.to_string(), t.to_string())]).unwrap_err();
        assert!(bad("icons", "/x").contains("must start with '/'"));
        assert!(bad("", "/x").contains("must start with '/'"));
        assert!(bad("/icons", "relative/dir").contains("absolute path"));
        assert!(bad("/icons", "").contains("absolute path"));
    }

    #[test]
    fn warns_about_slash_mismatch() {
        let a = aliases(&[("/a/", "/x"), ("/b", "/y/"), ("/c/", "/z/"), ("/d", "/w"), ("/", "/v")]);
        assert_eq!(slash_mismatches(&a), vec!["\"/a/\" => \"/x\"", "\"/b\" => \"/y/\""]);
    }
}
