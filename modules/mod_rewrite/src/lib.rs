//! mod_rewrite: rewrite the request target inside the server, as lighttpd 1.4's mod_rewrite.
//!
//! Data in: the rule lists of `url.rewrite-once` (and its old names `url.rewrite` and
//! `url.rewrite-final`), `url.rewrite-repeat`, `url.rewrite-if-not-file` and
//! `url.rewrite-repeat-if-not-file`, merged per request over the matching conditional
//! blocks; the request target as the client sent it (path and query, not decoded), the parts
//! of its URL, the groups of the regex condition enclosing the list (`%n`) and, for the
//! `-if-not-file` lists, the host's stat of the physical path.
//!
//! Data out: a new target (`set_target`) and `Comeback`: the server restarts the request
//! from the top with the conditions evaluated again. The client's own target stays known to
//! the server (CGI's `REQUEST_URI`, the access log's `%r`). A rewrite loop, a result that is
//! not a path, or a regex that cannot run is answered 500 with a line in the error log.
//!
//! When the lists are used (lighttpd's order):
//!
//! * `uri_raw`: the `url.rewrite-once` rules, then the `url.rewrite-repeat` rules of the same
//!   block. A rule is tried against the whole target; the first that matches rewrites.
//! * `physical`: once the document root and the physical path are known, the `-if-not-file`
//!   lists, unless the physical path is a regular file (or a regular file followed by
//!   PATH_INFO) or a module already claimed the request.
//!
//! A match of a once-rule ends rewriting for the request: after the restart no list is tried
//! again. A match of a repeat-rule lets the lists run again on the new target.

use featherd_mod_api::{
    Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, Value, FILE_KIND_REGULAR,
};
use featherd_urlsubst::{process, rules_from_value, Outcome, Rule, Url};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// More rewrites than this answer 500. The server restarts a request at most 16 times; stopping
/// at the same count here lets the error log name the rule that loops.
pub const MAX_REWRITES: u32 = 16;

/// The rules one block sets for one stage: its once-rules, then its repeat-rules.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    /// The config block the lists were set in (whose regex condition `%n` refers to).
    pub block: u32,
    pub once: Vec<Arc<Rule>>,
    pub repeat: Vec<Arc<Rule>>,
}

impl Rules {
    pub fn is_empty(&self) -> bool {
        self.once.is_empty() && self.repeat.is_empty()
    }
    /// All rules in the order they are tried.
    pub fn iter(&self) -> impl Iterator<Item = &Rule> {
        self.once.iter().chain(self.repeat.iter()).map(|r| &**r)
    }
    fn get(&self, i: usize) -> Option<&Rule> {
        self.iter().nth(i)
    }
}

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct RewriteConfig {
    /// `url.rewrite-once`, `-final`, `url.rewrite` and `url.rewrite-repeat`.
    pub uri: Option<Rules>,
    /// `url.rewrite-if-not-file` and `url.rewrite-repeat-if-not-file`.
    pub if_not_file: Option<Rules>,
}

/// The key indexes, in the order lighttpd joins the lists of one block.
const ONCE: usize = 0;
const FINAL: usize = 1;
const REWRITE: usize = 2;
const REPEAT: usize = 3;
const IF_NOT_FILE: usize = 4;
const REPEAT_IF_NOT_FILE: usize = 5;

impl ModuleConfig for RewriteConfig {
    const KEYS: &'static [Key] = &[
        Key::array("url.rewrite-once"),
        Key::array("url.rewrite-final"),
        Key::array("url.rewrite"),
        Key::array("url.rewrite-repeat"),
        Key::array("url.rewrite-if-not-file"),
        Key::array("url.rewrite-repeat-if-not-file"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        let rules = rules_from_value(v)?;
        let slot = if key < IF_NOT_FILE { &mut self.uri } else { &mut self.if_not_file };
        // The keys of one block join into one list (once-rules first: the SDK applies keys
        // in KEYS order); a block that sets any of them replaces what enclosing blocks set.
        if slot.as_ref().is_some_and(|r| r.block != v.block()) {
            *slot = None;
        }
        let r = slot.get_or_insert_with(|| Rules { block: v.block(), ..Rules::default() });
        match key {
            ONCE | FINAL | REWRITE | IF_NOT_FILE => r.once.extend(rules),
            REPEAT | REPEAT_IF_NOT_FILE => r.repeat.extend(rules),
            _ => {}
        }
        Ok(())
    }
}

/// Per request: how often it was rewritten, and whether a once-rule ended rewriting.
#[derive(Default)]
pub struct RewriteState {
    rewrites: u32,
    finished: bool,
}

#[derive(Default)]
pub struct Rewrite;

/// Whether the physical path names a regular file, or a regular file followed by PATH_INFO
/// (the longest leading part under the document root, as the server splits it).
fn is_file<M: Module>(req: &Request<M>) -> bool {
    match req.file_info() {
        Some(fi) => return fi.kind == FILE_KIND_REGULAR,
        None if req.physical_path().is_empty() => return false,
        None => {}
    }
    let (phys, root) = (req.physical_path(), req.docroot());
    let Some(rel) = phys.strip_prefix(root) else { return false };
    let mut end = rel.len();
    while let Some(pos) = rel[..end].iter().rposition(|&b| b == b'/') {
        if pos == 0 {
            break;
        }
        let prefix = &phys[..root.len() + pos];
        match std::fs::metadata(Path::new(OsStr::from_bytes(prefix))) {
            Ok(m) => return m.is_file(),
            Err(_) => end = pos,
        }
    }
    false
}

fn answer_500<M: Module>(req: &mut Request<M>) -> Handler {
    req.set_status(500);
    Handler::Finished
}

/// Try `rules` on the current target; rewrite and come back on a match.
fn rewrite(req: &mut Request<Rewrite>, rules: &Rules, stage: &str) -> Handler {
    // Only paths are rewritten: not CONNECT's authority-form target.
    if req.state().finished || !req.target().starts_with(b"/") {
        return Handler::GoOn;
    }
    let outcome = {
        let url = Url::of(req);
        process(rules.iter(), req.target(), &url, |n| req.capture(rules.block, n))
    };
    let (index, result) = match outcome {
        Outcome::NoMatch | Outcome::Stop { .. } => return Handler::GoOn,
        Outcome::Failed(e) => {
            log::error!("{e} while rewriting {}", String::from_utf8_lossy(req.target()));
            return answer_500(req);
        }
        Outcome::Replace { rule, result } => (rule, result),
    };
    let rule = rules.get(index).map(|r| format!("{r:?}")).unwrap_or_default();
    let (from, to) = (String::from_utf8_lossy(req.target()).into_owned(), String::from_utf8_lossy(&result));
    if result.first() != Some(&b'/') {
        log::error!("{stage} rule {rule} rewrote {from} to {to:?}, which does not begin with '/'");
        return answer_500(req);
    }
    let st = req.state();
    if st.rewrites >= MAX_REWRITES {
        let orig = String::from_utf8_lossy(req.target_orig()).into_owned();
        log::error!(
            "rewrite loop: {orig} was rewritten {MAX_REWRITES} times and rule {rule} would rewrite {from} \
             again (to {to}); answering 500 (use url.rewrite-once rather than url.rewrite-repeat?)"
        );
        return answer_500(req);
    }
    st.rewrites += 1;
    if index < rules.once.len() {
        st.finished = true;
    }
    if !req.set_target(&result) {
        log::error!("{stage} rule {rule} rewrote {from} to {to:?}, which the server refused as a target");
        return answer_500(req);
    }
    log::debug!("{stage} rule {rule}: {from} -> {to}");
    Handler::Comeback
}

impl Module for Rewrite {
    const NAME: &'static str = "mod_rewrite";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "rewrites the request target by regex (url.rewrite-*)";
    const HOOKS: Hooks = Hooks::URI_RAW.union(Hooks::PHYSICAL);
    type Config = RewriteConfig;
    type RequestState = RewriteState;
    type ConnectionState = ();

    fn init() -> Self {
        Rewrite
    }

    fn set_defaults(&mut self, configs: &Configs<RewriteConfig>) -> Result<(), String> {
        let g = configs.global();
        for rules in [&g.uri, &g.if_not_file].into_iter().flatten() {
            for r in rules.iter().filter(|r| r.template().uses_condition()) {
                log::warn!("rule {r:?} uses %n outside a regex condition: %n is always empty there");
            }
        }
        Ok(())
    }

    fn uri_raw(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        match conf.uri.as_ref().filter(|r| !r.is_empty()) {
            Some(rules) => rewrite(req, rules, "url.rewrite"),
            None => Handler::GoOn,
        }
    }

    fn physical(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let Some(rules) = conf.if_not_file.as_ref().filter(|r| !r.is_empty()) else {
            return Handler::GoOn;
        };
        if req.claimed_by_other() || req.state().finished || is_file(req) {
            return Handler::GoOn;
        }
        rewrite(req, rules, "url.rewrite-if-not-file")
    }
}

featherd_mod_api::export_module!(Rewrite);
