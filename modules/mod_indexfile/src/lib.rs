//! mod_indexfile: answer a request for a directory with its index file.
//!
//! Data in: at SUBREQUEST_START, the request path (it must end with '/'), the host's stat of
//! the physical path (it must be a directory), the document root, and `index-file.names`.
//! Data out: the physical path of the first name that is a regular file; the request then goes
//! on down the chain (the host stats the new path, and mod_staticfile or a backend module
//! such as mod_fastcgi serves it). Nothing is answered here: with no index file the request
//! continues unchanged (mod_dirlisting or the core's 403 take over).
//!
//! Must be loaded before mod_staticfile, which shares the hook; the core's default module
//! list does that.

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value, FILE_KIND_DIRECTORY};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct IndexFileConfig {
    /// Names tried in order. A name starting with '/' is a URL path under the document root
    /// (e.g. a central "/index.php" for every directory); others are relative to the directory.
    pub names: Vec<String>,
}

impl ModuleConfig for IndexFileConfig {
    const KEYS: &'static [Key] = &[Key::array("index-file.names"), Key::array("server.indexfiles")];

    fn apply(&mut self, _key: usize, v: &Value) -> Result<(), String> {
        // Both keys mean the same; server.indexfiles is the name lighttpd 1.4 still accepts
        // from older configurations.
        self.names = v.to_str_list()?;
        Ok(())
    }
}

/// The physical path to try for index `name` in a directory whose physical path is
/// `dir_physical` (ending with '/'), under document root `docroot`.
pub fn candidate(dir_physical: &[u8], docroot: &[u8], name: &str) -> Vec<u8> {
    let (base, rest) = match name.strip_prefix('/') {
        Some(rest) => (docroot, rest),
        None => (dir_physical, name),
    };
    let mut p = base.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(rest.as_bytes());
    p
}

/// The URL path of index `name` found for the directory at URL path `dir` (ending with '/').
pub fn index_url(dir: &[u8], name: &str) -> Vec<u8> {
    if name.starts_with('/') {
        return name.as_bytes().to_vec();
    }
    let mut u = dir.to_vec();
    u.extend_from_slice(name.as_bytes());
    u
}

/// The first name whose candidate is a regular file, with that candidate (physical path).
/// `is_file` is the file-system check, passed in so the search is testable without a disk.
pub fn find_index<'a>(
    names: &'a [String],
    dir_physical: &[u8],
    docroot: &[u8],
    is_file: impl Fn(&[u8]) -> bool,
) -> Option<(&'a str, Vec<u8>)> {
    names
        .iter()
        .filter(|n| !n.is_empty() && n.as_str() != "/")
        .map(|n| (n.as_str(), candidate(dir_physical, docroot, n)))
        .find(|(_, p)| is_file(p))
}

fn is_regular_file(p: &[u8]) -> bool {
    // Follows symlinks, like the host's stat of the physical path.
    std::fs::metadata(Path::new(OsStr::from_bytes(p))).is_ok_and(|m| m.is_file())
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct IndexFile;

impl Module for IndexFile {
    const NAME: &'static str = "mod_indexfile";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "maps a directory request to its index file";
    const HOOKS: Hooks = Hooks::SUBREQUEST_START;
    type Config = IndexFileConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        IndexFile
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 || !req.path().ends_with(b"/") || req.claimed_by_other() {
            return Handler::GoOn;
        }
        if !req.file_info().is_some_and(|fi| fi.kind == FILE_KIND_DIRECTORY) {
            return Handler::GoOn;
        }
        let conf = req.config();
        if conf.names.is_empty() {
            return Handler::GoOn;
        }
        let found = find_index(&conf.names, req.physical_path(), req.docroot(), is_regular_file);
        if let Some((name, p)) = found {
            log::debug!("index file {}", String::from_utf8_lossy(&p));
            // As lighttpd, the URL path follows, so that later modules (a FastCGI handler for
            // index.php, the access log's %U) see ".../index.php": the name replaces a path
            // for a name starting with '/', and is appended to the directory's path
            // otherwise (also when mod_alias mapped the directory elsewhere on disk).
            let url = index_url(req.path(), name);
            req.set_path(&url);
            req.set_physical_path(&p);
        }
        Handler::GoOn
    }
}

featherd_mod_api::export_module!(IndexFile);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_table() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (directory physical path, docroot, name, candidate)
            ("/srv/www/dir/", "/srv/www", "index.html", "/srv/www/dir/index.html"),
            ("/srv/www/dir", "/srv/www", "index.html", "/srv/www/dir/index.html"),
            ("/srv/www/", "/srv/www", "index.html", "/srv/www/index.html"),
            ("/srv/www/dir/", "/srv/www", "/index.php", "/srv/www/index.php"),
            ("/srv/www/dir/", "/srv/www/", "/index.php", "/srv/www/index.php"),
            ("/srv/www/dir/", "/srv/www", "/app/main.php", "/srv/www/app/main.php"),
            ("/srv/www/dir/", "/srv/www", "sub/index.htm", "/srv/www/dir/sub/index.htm"),
        ];
        for (dir, root, name, want) in cases {
            assert_eq!(
                candidate(dir.as_bytes(), root.as_bytes(), name),
                want.as_bytes(),
                "{dir} {root} {name}"
            );
        }
    }

    #[test]
    fn index_url_table() {
        assert_eq!(index_url(b"/", "index.html"), b"/index.html");
        assert_eq!(index_url(b"/a/b/", "index.php"), b"/a/b/index.php");
        assert_eq!(index_url(b"/a/b/", "/central.php"), b"/central.php");
        assert_eq!(index_url(b"/icons/", "sub/index.htm"), b"/icons/sub/index.htm");
    }

    #[test]
    fn find_index_table() {
        let files = ["/r/d/index.php", "/r/d/default.htm", "/r/central.php"];
        let fs = |p: &[u8]| files.iter().any(|f| f.as_bytes() == p);
        let names = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: &[(&[&str], Option<&str>)] = &[
            (&["index.html", "index.php"], Some("/r/d/index.php")),
            (&["default.htm", "index.php"], Some("/r/d/default.htm")),
            (&["index.html"], None),
            (&[], None),
            (&["", "/", "index.php"], Some("/r/d/index.php")),
            (&["/central.php", "index.php"], Some("/r/central.php")),
            (&["/missing.php", "index.php"], Some("/r/d/index.php")),
        ];
        for (list, want) in cases {
            let got = find_index(&names(list), b"/r/d/", b"/r", fs).map(|(_, p)| p);
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{list:?}");
        }
    }

    #[test]
    fn regular_file_check_on_disk() {
        let dir = std::env::temp_dir().join(format!("mod_indexfile_test_{}", std::process::id()));
        let sub = dir.join("sub");
        std::fs::create_dir_all(sub.join("index.html")).expect("mkdir");
        std::fs::write(dir.join("index.htm"), b"x").expect("write");
        let d = dir.as_os_str().as_bytes().to_vec();
        let names: Vec<String> = vec!["index.html".into(), "index.htm".into()];
        // A directory named like an index file is skipped.
        assert!(find_index(&names, sub.as_os_str().as_bytes(), &d, is_regular_file).is_none());
        let got = find_index(&names, &d, &d, is_regular_file).map(|(_, p)| p);
        let mut want = d.clone();
        want.extend_from_slice(b"/index.htm");
        assert_eq!(got, Some(want));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
