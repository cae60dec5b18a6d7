//! mod_dirlisting: a listing for a directory that has no index file.
//!
//! Data in: at SUBREQUEST_START, a GET or HEAD for a path ending with '/' whose physical path
//! the host stat'ed as a directory, nobody having answered or claimed it (mod_indexfile runs
//! first and turns the request into one for the index file when there is one), and
//! `dir-listing.activate`. The module then claims the request; in SUBREQUEST it reads the
//! directory in batches (waking itself between them, so that a huge directory does not hold
//! up the worker's other connections), stats each entry (symbolic links followed) and
//! answers. Data out: `200` with an HTML page (`text/html`) or, when the client's `Accept`
//! asks for `application/json`, a JSON array (see [`page::json`]); `Vary: Accept` either way;
//! `403` when the directory cannot be read.
//!
//! What is listed and how is decided by the `dir-listing.*` keys below; the page itself is
//! built by [`page`].

pub mod page;

use featherd_mod_api::{
    Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, Value, FILE_KIND_DIRECTORY,
};
use page::{Entry, Footer, Order, Page};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

/// A `dir-listing.exclude` pattern. Patterns the `regex` crate cannot compile (look-around,
/// back-references: PCRE syntax that lighttpd accepts) are compiled with `fancy-regex`.
#[derive(Debug)]
pub enum Matcher {
    Plain(regex::bytes::Regex),
    Fancy(Box<fancy_regex::Regex>),
}

impl Matcher {
    pub fn new(pattern: &str) -> Result<Matcher, String> {
        match regex::bytes::Regex::new(pattern) {
            Ok(re) => Ok(Matcher::Plain(re)),
            Err(plain) => match fancy_regex::Regex::new(pattern) {
                Ok(re) => Ok(Matcher::Fancy(Box::new(re))),
                Err(_) => {
                    let detail = plain.to_string();
                    let last = detail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid");
                    Err(format!("invalid regex {pattern:?}: {}", last.trim().trim_start_matches("error: ")))
                }
            },
        }
    }

    /// Whether `name` matches. A pattern that fails while matching (fancy-regex's backtrack
    /// limit) counts as a match: the entry is hidden rather than shown by mistake.
    pub fn is_match(&self, name: &[u8]) -> bool {
        match self {
            Matcher::Plain(re) => re.is_match(name),
            Matcher::Fancy(re) => re.is_match(&String::from_utf8_lossy(name)).unwrap_or(true),
        }
    }
}

/// Configuration, merged per request.
#[derive(Clone, Debug)]
pub struct DirListingConfig {
    /// `dir-listing.activate` (also `server.dir-listing`).
    pub activate: bool,
    /// `dir-listing.exclude`: names matching any of these are not listed.
    pub excludes: Arc<Vec<Matcher>>,
    /// `dir-listing.hide-dotfiles`: names starting with '.' are not listed.
    pub hide_dotfiles: bool,
    pub external_css: Option<String>,
    pub external_js: Option<String>,
    /// `dir-listing.encoding`: the charset the page declares.
    pub encoding: Option<String>,
    /// `dir-listing.show-readme`: the file shown below the listing.
    pub show_readme: Option<String>,
    pub hide_readme_file: bool,
    /// `dir-listing.show-header`: the file shown above the listing.
    pub show_header: Option<String>,
    pub hide_header_file: bool,
    /// `dir-listing.set-footer`: HTML for the footer (default: `server.tag`, as text).
    pub set_footer: Option<String>,
    /// `dir-listing.encode-readme` / `.encode-header`: show the file as text (escaped, in a
    /// `<pre>`) rather than as HTML.
    pub encode_readme: bool,
    pub encode_header: bool,
    /// `dir-listing.auto-layout`: write the HTML document around the listing.
    pub auto_layout: bool,
    /// `dir-listing.sort`: sort on the server (else the page's script sorts).
    pub sort: bool,
    /// `dir-listing.cache` asked for caching (accepted, not implemented: see the docs).
    pub cache: bool,
}

impl Default for DirListingConfig {
    fn default() -> Self {
        DirListingConfig {
            activate: false,
            excludes: Arc::new(Vec::new()),
            hide_dotfiles: true,
            external_css: None,
            external_js: None,
            encoding: Some("utf-8".into()),
            show_readme: None,
            hide_readme_file: false,
            show_header: None,
            hide_header_file: false,
            set_footer: None,
            encode_readme: true,
            encode_header: true,
            auto_layout: true,
            sort: true,
            cache: false,
        }
    }
}

const KEY_ACTIVATE: usize = 0;
const KEY_SERVER_DIR_LISTING: usize = 1;
const KEY_EXCLUDE: usize = 2;
const KEY_HIDE_DOTFILES: usize = 3;
const KEY_EXTERNAL_CSS: usize = 4;
const KEY_EXTERNAL_JS: usize = 5;
const KEY_ENCODING: usize = 6;
const KEY_SHOW_README: usize = 7;
const KEY_HIDE_README_FILE: usize = 8;
const KEY_SHOW_HEADER: usize = 9;
const KEY_HIDE_HEADER_FILE: usize = 10;
const KEY_SET_FOOTER: usize = 11;
const KEY_ENCODE_README: usize = 12;
const KEY_ENCODE_HEADER: usize = 13;
const KEY_AUTO_LAYOUT: usize = 14;
const KEY_CACHE: usize = 15;
const KEY_SORT: usize = 16;

/// A string setting where "" means unset.
fn optional(v: &Value) -> Result<Option<String>, String> {
    let s = v.to_str()?;
    Ok((!s.trim().is_empty()).then(|| s.to_owned()))
}

/// `show-readme`/`show-header`: "enable" means the default file name, "disable" (or "")
/// none, anything else is the file name (relative to the directory, or absolute).
fn include_name(v: &Value, default: &str) -> Result<Option<String>, String> {
    let s = v.to_str()?;
    if s.contains('\0') {
        return Err("a file name cannot contain a NUL byte".into());
    }
    Ok(match s.trim() {
        "" => None,
        t if t.eq_ignore_ascii_case("enable") => Some(default.to_owned()),
        t if t.eq_ignore_ascii_case("disable") => None,
        _ => Some(s.to_owned()),
    })
}

fn cache_setting(v: &Value) -> Result<bool, String> {
    let mut max_age = 15;
    let mut path = false;
    for (k, val) in v.iter() {
        match k {
            Some("max-age") => max_age = val.as_int().ok_or("\"max-age\" must be an integer")?,
            Some("path") => {
                val.as_str().ok_or("\"path\" must be a string")?;
                path = true;
            }
            _ => {}
        }
    }
    if max_age != 0 && !path {
        return Err("must include \"path\" (or \"max-age\" => 0)".into());
    }
    Ok(max_age != 0)
}

impl ModuleConfig for DirListingConfig {
    const KEYS: &'static [Key] = &[
        Key::boolean("dir-listing.activate"),
        Key::boolean("server.dir-listing"),
        Key::array("dir-listing.exclude"),
        Key::boolean("dir-listing.hide-dotfiles"),
        Key::string("dir-listing.external-css"),
        Key::string("dir-listing.external-js"),
        Key::string("dir-listing.encoding"),
        Key::string("dir-listing.show-readme"),
        Key::boolean("dir-listing.hide-readme-file"),
        Key::string("dir-listing.show-header"),
        Key::boolean("dir-listing.hide-header-file"),
        Key::string("dir-listing.set-footer"),
        Key::boolean("dir-listing.encode-readme"),
        Key::boolean("dir-listing.encode-header"),
        Key::boolean("dir-listing.auto-layout"),
        Key::array("dir-listing.cache"),
        Key::boolean("dir-listing.sort"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            KEY_ACTIVATE | KEY_SERVER_DIR_LISTING => self.activate = v.to_bool()?,
            KEY_EXCLUDE => {
                let list = v.to_str_list()?;
                self.excludes = Arc::new(list.iter().map(|p| Matcher::new(p)).collect::<Result<_, _>>()?);
            }
            KEY_HIDE_DOTFILES => self.hide_dotfiles = v.to_bool()?,
            KEY_EXTERNAL_CSS => self.external_css = optional(v)?,
            KEY_EXTERNAL_JS => self.external_js = optional(v)?,
            KEY_ENCODING => {
                let e = optional(v)?;
                if e.as_deref()
                    .is_some_and(|e| !e.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(&c)))
                {
                    return Err("expected a charset name such as \"utf-8\"".into());
                }
                self.encoding = e;
            }
            KEY_SHOW_README => self.show_readme = include_name(v, "README.txt")?,
            KEY_HIDE_README_FILE => self.hide_readme_file = v.to_bool()?,
            KEY_SHOW_HEADER => self.show_header = include_name(v, "HEADER.txt")?,
            KEY_HIDE_HEADER_FILE => self.hide_header_file = v.to_bool()?,
            KEY_SET_FOOTER => self.set_footer = optional(v)?,
            KEY_ENCODE_README => self.encode_readme = v.to_bool()?,
            KEY_ENCODE_HEADER => self.encode_header = v.to_bool()?,
            KEY_AUTO_LAYOUT => self.auto_layout = v.to_bool()?,
            KEY_CACHE => self.cache = cache_setting(v)?,
            KEY_SORT => self.sort = v.to_bool()?,
            _ => {}
        }
        Ok(())
    }
}

/// Whether an entry called `name` is listed under `conf`.
pub fn listed(conf: &DirListingConfig, name: &[u8]) -> bool {
    if name == b"." || name == b".." || name.is_empty() {
        return false;
    }
    if conf.hide_dotfiles && name[0] == b'.' {
        return false;
    }
    let is = |setting: &Option<String>| setting.as_deref().is_some_and(|s| s.as_bytes() == name);
    if (conf.hide_readme_file && is(&conf.show_readme)) || (conf.hide_header_file && is(&conf.show_header)) {
        return false;
    }
    !conf.excludes.iter().any(|m| m.is_match(name))
}

/// Entries read per turn before the module yields to the worker's other connections.
const BATCH: usize = 256;
/// At most this much of a header or readme file is shown as text (an unencoded one is sent
/// whole, from the file).
const MAX_INCLUDE_TEXT: u64 = 1 << 20;

/// A listing being read.
pub struct Job {
    dir: std::fs::ReadDir,
    entries: Vec<Entry>,
    json: bool,
}

/// A piece of the response body.
enum Part {
    Mem(Vec<u8>),
    File(File, u64),
}

impl Part {
    fn len(&self) -> u64 {
        match self {
            Part::Mem(m) => m.len() as u64,
            Part::File(_, n) => *n,
        }
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = dir.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// The header or readme file `name` of directory `dir`: as text in a `<pre>` (`encode`) or
/// as the file itself. Nothing for a file that is missing, not regular or empty.
fn include(dir: &[u8], name: &str, encode: bool, class: &str) -> Option<Part> {
    let path = if name.starts_with('/') { name.as_bytes().to_vec() } else { join(dir, name.as_bytes()) };
    let f = File::open(OsStr::from_bytes(&path)).ok()?;
    let m = f.metadata().ok().filter(|m| m.is_file() && m.len() > 0)?;
    if !encode {
        return Some(Part::File(f, m.len()));
    }
    let mut text = Vec::new();
    if let Err(e) = f.take(MAX_INCLUDE_TEXT).read_to_end(&mut text) {
        log::warn!("cannot read {}: {e}", String::from_utf8_lossy(&path));
        return None;
    }
    Some(Part::Mem(page::pre(class, &text)))
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct DirListing;

impl DirListing {
    /// Read up to [`BATCH`] entries; true when the directory is exhausted.
    fn read_batch(conf: &DirListingConfig, dir_path: &[u8], job: &mut Job) -> bool {
        for _ in 0..BATCH {
            let Some(item) = job.dir.next() else { return true };
            let Ok(de) = item else { continue };
            let name = de.file_name();
            let name = name.as_bytes();
            if !listed(conf, name) {
                continue;
            }
            // stat, not lstat: a link shows what it points to; a dangling one is skipped
            // (as lighttpd does).
            let Ok(m) = std::fs::metadata(OsStr::from_bytes(&join(dir_path, name))) else { continue };
            job.entries.push(Entry {
                name: name.to_vec(),
                is_dir: m.is_dir(),
                size: m.len(),
                mtime: m.mtime(),
                mime: Vec::new(),
            });
        }
        false
    }

    fn respond(req: &mut Request<Self>, conf: &DirListingConfig, mut job: Job) -> Handler {
        for e in job.entries.iter_mut().filter(|e| !e.is_dir) {
            let mime = req.mimetype_for(&e.name);
            e.mime = if mime.is_empty() { b"application/octet-stream".to_vec() } else { mime.to_vec() };
        }
        let order = conf.sort.then(|| Order::from_query(req.query().unwrap_or_default()));
        match order {
            Some(o) => page::sort_entries(&mut job.entries, o),
            // Directories first all the same; otherwise the order the directory was read in.
            None => job.entries.sort_by_key(|e| !e.is_dir),
        }
        let (content_type, parts) = if job.json {
            ("application/json".to_owned(), vec![Part::Mem(page::json(&job.entries))])
        } else {
            let dir = req.physical_path().to_vec();
            let path = req.path().to_vec();
            let tag = req.server_tag().map(<[u8]>::to_vec);
            let footer = match (&conf.set_footer, &tag) {
                (Some(f), _) => Footer::Html(f),
                (None, Some(t)) if !t.is_empty() => Footer::Text(t),
                _ => Footer::None,
            };
            let p = Page {
                path: &path,
                encoding: conf.encoding.as_deref(),
                external_css: conf.external_css.as_deref(),
                external_js: conf.external_js.as_deref(),
                auto_layout: conf.auto_layout,
                footer,
                order,
            };
            let html = page::html(&p, &job.entries);
            let mut parts = vec![Part::Mem(html.head)];
            if let Some(h) = &conf.show_header {
                parts.extend(include(&dir, h, conf.encode_header, "header"));
            }
            parts.push(Part::Mem(html.listing));
            if let Some(r) = &conf.show_readme {
                parts.extend(include(&dir, r, conf.encode_readme, "readme"));
            }
            parts.push(Part::Mem(html.tail));
            let ct = match &conf.encoding {
                Some(e) => format!("text/html; charset={e}"),
                None => "text/html".to_owned(),
            };
            (ct, parts)
        };
        req.set_status(200);
        req.set_response_header("Content-Type", content_type);
        req.append_response_header("Vary", "Accept");
        req.set_content_length(parts.iter().map(Part::len).sum());
        if req.method() == b"HEAD" {
            // Same headers; the body would be dropped.
            return Handler::Finished;
        }
        for part in parts {
            match part {
                Part::Mem(m) if m.is_empty() => {}
                Part::Mem(m) => req.append_body(&m),
                Part::File(f, n) => {
                    if !req.append_file(f, 0, n) {
                        log::error!("could not queue an included file");
                        return Handler::Error;
                    }
                }
            }
        }
        Handler::Finished
    }
}

impl Module for DirListing {
    const NAME: &'static str = "mod_dirlisting";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "HTML and JSON listings of directories without an index file";
    const HOOKS: Hooks = Hooks::SUBREQUEST_START.union(Hooks::SUBREQUEST);
    type Config = DirListingConfig;
    type RequestState = Option<Job>;
    type ConnectionState = ();

    fn init() -> Self {
        DirListing
    }

    fn set_defaults(&mut self, configs: &Configs<DirListingConfig>) -> Result<(), String> {
        if configs.all().iter().any(|c| c.cache) {
            log::warn!(
                "dir-listing.cache is accepted but listings are not cached: each one is built when asked for"
            );
        }
        Ok(())
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 || req.claimed_by_other() || !req.path().ends_with(b"/") {
            return Handler::GoOn;
        }
        if req.method() != b"GET" && req.method() != b"HEAD" {
            return Handler::GoOn;
        }
        if !req.file_info().is_some_and(|fi| fi.kind == FILE_KIND_DIRECTORY) {
            return Handler::GoOn;
        }
        if !req.config().activate {
            return Handler::GoOn;
        }
        let dir_path = req.physical_path().to_vec();
        let dir = match std::fs::read_dir(OsStr::from_bytes(&dir_path)) {
            Ok(d) => d,
            Err(e) => {
                log::info!("cannot list {}: {e}", String::from_utf8_lossy(&dir_path));
                req.set_status(403);
                return Handler::Finished;
            }
        };
        if !req.claim() {
            return Handler::GoOn;
        }
        let json = req.header("Accept").is_some_and(page::wants_json);
        *req.state() = Some(Job { dir, entries: Vec::new(), json });
        Handler::GoOn
    }

    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let dir_path = req.physical_path().to_vec();
        let done = match req.state().as_mut() {
            Some(job) => Self::read_batch(&conf, &dir_path, job),
            None => {
                // Claimed but no listing under way: cannot happen; never leave it unanswered.
                req.set_status(500);
                return Handler::Finished;
            }
        };
        if !done {
            // Let the worker serve others, then go on where this batch stopped.
            if req.id().wake() {
                return Handler::WaitForEvent;
            }
            log::error!("could not schedule the rest of the listing");
            return Handler::Error;
        }
        match req.state().take() {
            Some(job) => Self::respond(req, &conf, job),
            None => Handler::Error,
        }
    }
}

featherd_mod_api::export_module!(DirListing);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_table() {
        let mut c = DirListingConfig::default();
        assert!(!listed(&c, b"."));
        assert!(!listed(&c, b".."));
        assert!(!listed(&c, b".hidden"));
        assert!(listed(&c, b"README.txt"));
        c.hide_dotfiles = false;
        assert!(listed(&c, b".hidden"));
        assert!(!listed(&c, b".."));
        c.show_readme = Some("README.txt".into());
        assert!(listed(&c, b"README.txt"));
        c.hide_readme_file = true;
        assert!(!listed(&c, b"README.txt"));
        c.show_header = Some("HEADER.txt".into());
        c.hide_header_file = true;
        assert!(!listed(&c, b"HEADER.txt"));
        c.excludes = Arc::new(vec![
            Matcher::new(r"\.bak$").expect("re"),
            Matcher::new(r"^tmp(?!keep)").expect("fancy re"),
        ]);
        assert!(!listed(&c, b"x.bak"));
        assert!(listed(&c, b"x.bak.txt"));
        assert!(!listed(&c, b"tmpfile"));
        assert!(listed(&c, b"tmpkeep"));
        assert!(listed(&c, b"\xff\xfe"));
    }

    #[test]
    fn matcher_errors_name_the_pattern() {
        let e = Matcher::new("a(b").expect_err("unbalanced");
        assert!(e.contains("invalid regex \"a(b\""), "{e}");
        assert!(matches!(Matcher::new("(a)\\1").expect("backref"), Matcher::Fancy(_)));
    }

    #[test]
    fn descriptor_has_both_hooks() {
        let d = featherd_mod_api::__private::descriptor::<DirListing>();
        assert!(d.subrequest_start.is_some() && d.subrequest.is_some());
        assert!(d.request_reset.is_some(), "the state holds an open directory");
        assert_eq!(d.config_keys_len, DirListingConfig::KEYS.len());
    }
}
