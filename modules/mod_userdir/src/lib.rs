//! mod_userdir: `/~user/...` served from a directory of that user.
//!
//! Data in: at PHYSICAL, the decoded request path (it must start with `/~`), this module's
//! settings for the request and, without `userdir.basepath`, the user's home directory from
//! the password database (`getpwnam_r`, through the `nix` crate). Data out: the physical path
//! `HOME/userdir.path/REST` or `basepath/[u/]user/userdir.path/REST`, or a 301 to `/~user/`
//! for `/~user`. Anything else (no such user, an excluded user, a home without the
//! directory) leaves the request alone: it goes on under the document root, where it
//! usually ends in 404.
//!
//! The rest of the path after `/~user/` is already normalised by the core (no `..` segments),
//! and with a base path the user name is limited to `[A-Za-z0-9._-]` and may not be `.` or
//! `..`, so a request cannot leave the user's directory.

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Configuration, merged per request.
#[derive(Clone, Debug)]
pub struct UserdirConfig {
    /// `userdir.path`: the directory below the home (or base) directory. None (unset)
    /// disables the module; "" means the home directory itself.
    pub path: Option<String>,
    /// `userdir.exclude-user`: users never mapped.
    pub exclude: Vec<String>,
    /// `userdir.include-user`: when not empty, only these users are mapped.
    pub include: Vec<String>,
    /// `userdir.basepath`: `basepath/user/path` instead of the password database.
    pub basepath: Option<String>,
    /// `userdir.letterhomes`: `basepath/u/user/path` (the user's first letter in between).
    pub letterhomes: bool,
    /// `userdir.active`.
    pub active: bool,
}

impl Default for UserdirConfig {
    fn default() -> Self {
        // Active by default, as lighttpd: an unset userdir.path keeps it inert all the same.
        UserdirConfig {
            path: None,
            exclude: Vec::new(),
            include: Vec::new(),
            basepath: None,
            letterhomes: false,
            active: true,
        }
    }
}

const KEY_PATH: usize = 0;
const KEY_EXCLUDE: usize = 1;
const KEY_INCLUDE: usize = 2;
const KEY_BASEPATH: usize = 3;
const KEY_LETTERHOMES: usize = 4;
const KEY_ACTIVE: usize = 5;

fn path_value(v: &Value) -> Result<String, String> {
    let s = v.to_str()?;
    if s.contains('\0') {
        return Err("a path cannot contain a NUL byte".into());
    }
    Ok(s.to_owned())
}

impl ModuleConfig for UserdirConfig {
    const KEYS: &'static [Key] = &[
        Key::string("userdir.path"),
        Key::array("userdir.exclude-user"),
        Key::array("userdir.include-user"),
        Key::string("userdir.basepath"),
        Key::boolean("userdir.letterhomes"),
        Key::boolean("userdir.active"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            KEY_PATH => self.path = Some(path_value(v)?),
            KEY_EXCLUDE => self.exclude = v.to_str_list()?,
            KEY_INCLUDE => self.include = v.to_str_list()?,
            KEY_BASEPATH => {
                let p = path_value(v)?;
                self.basepath = (!p.trim().is_empty()).then_some(p);
            }
            KEY_LETTERHOMES => self.letterhomes = v.to_bool()?,
            KEY_ACTIVE => self.active = v.to_bool()?,
            _ => {}
        }
        Ok(())
    }
}

/// What a request path means to this module.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Not a user directory path (or an empty user name): not ours.
    None,
    /// `/~user` without the slash: redirect to the directory.
    Redirect,
    /// `/~user/rest`: the user and what follows the slash after the name.
    User { user: &'a [u8], rest: &'a [u8] },
}

pub fn parse_path(path: &[u8]) -> Target<'_> {
    let Some(after) = path.strip_prefix(b"/~") else { return Target::None };
    match after.iter().position(|&c| c == b'/') {
        None if after.is_empty() => Target::None,
        None => Target::Redirect,
        Some(0) => Target::None,
        Some(i) => Target::User { user: &after[..i], rest: &after[i + 1..] },
    }
}

/// Whether the settings let `user` have a user directory.
pub fn user_allowed(conf: &UserdirConfig, user: &[u8]) -> bool {
    if conf.exclude.iter().any(|u| u.as_bytes() == user) {
        return false;
    }
    conf.include.is_empty() || conf.include.iter().any(|u| u.as_bytes() == user)
}

/// A user name that may be used as a directory name below the base path.
pub fn valid_basepath_user(user: &[u8]) -> bool {
    user != b"."
        && user != b".."
        && !user.is_empty()
        && user.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `a` and `b` joined by exactly one '/'.
fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut p = a.to_vec();
    let b = b.strip_prefix(b"/").unwrap_or(b);
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(b);
    p
}

/// The user's directory when a base path is configured (no password database involved).
pub fn basepath_dir(basepath: &str, letterhomes: bool, user: &[u8], path: &str) -> Option<Vec<u8>> {
    if !valid_basepath_user(user) || (letterhomes && user[0] == b'.') {
        return None;
    }
    let mut d = basepath.as_bytes().to_vec();
    if letterhomes {
        d = join(&d, &user[..1]);
    }
    d = join(&d, user);
    Some(join(&d, path.as_bytes()))
}

/// The physical path for `rest` (what followed `/~user/`) in the user's directory `dir`.
pub fn physical_path(dir: &[u8], rest: &[u8]) -> Vec<u8> {
    join(dir, rest)
}

/// Home directories looked up recently: the password database may be a network service, so
/// a page with many images does not ask it once per image (lighttpd keeps two for a minute).
struct HomeCache {
    entries: Vec<(Vec<u8>, Option<Vec<u8>>, Instant)>,
}

const HOME_CACHE_TTL: Duration = Duration::from_secs(60);
const HOME_CACHE_SIZE: usize = 16;

impl HomeCache {
    fn get(&self, user: &[u8]) -> Option<Option<Vec<u8>>> {
        self.entries
            .iter()
            .find(|(u, _, at)| u == user && at.elapsed() < HOME_CACHE_TTL)
            .map(|(_, home, _)| home.clone())
    }
    fn put(&mut self, user: &[u8], home: Option<Vec<u8>>) {
        self.entries.retain(|(u, _, at)| u != user && at.elapsed() < HOME_CACHE_TTL);
        if self.entries.len() >= HOME_CACHE_SIZE {
            self.entries.remove(0);
        }
        self.entries.push((user.to_vec(), home, Instant::now()));
    }
}

/// Longest user name looked up (lighttpd's limit too): longer ones are no user's.
const MAX_USER_LEN: usize = 255;

fn lookup_home(user: &[u8]) -> Option<Vec<u8>> {
    let name = std::str::from_utf8(user).ok()?;
    match nix::unistd::User::from_name(name) {
        Ok(Some(u)) => Some(u.dir.as_os_str().as_bytes().to_vec()),
        Ok(None) => None,
        Err(e) => {
            log::warn!("password database lookup for {name:?} failed: {e}");
            None
        }
    }
}

fn is_dir(p: &[u8]) -> bool {
    std::fs::metadata(OsStr::from_bytes(p)).is_ok_and(|m| m.is_dir())
}

/// The `Location` for `/~user` → `/~user/`: the raw path with '/' appended and the query, a
/// path alone as the core's directory redirect and lighttpd 1.4.64+ send it (right behind a
/// proxy or TLS terminator too).
fn redirect_location<M: Module>(req: &Request<M>) -> Vec<u8> {
    let mut loc = Vec::new();
    let target = req.target();
    let (raw, query) = match target.iter().position(|&c| c == b'?') {
        Some(q) => (&target[..q], Some(&target[q + 1..])),
        None => (target, None),
    };
    // An absolute-form target ("http://host/~user"): keep its path only.
    let raw = if raw.starts_with(b"/") {
        raw
    } else {
        let after_scheme = raw.windows(3).position(|w| w == b"://").map_or(0, |i| i + 3);
        let rest = &raw[after_scheme..];
        rest.iter().position(|&c| c == b'/').map_or(&b"/"[..], |i| &rest[i..])
    };
    loc.extend_from_slice(raw);
    loc.push(b'/');
    if let Some(q) = query {
        loc.push(b'?');
        loc.extend_from_slice(q);
    }
    loc
}

/// The module: the home-directory cache is its only state.
pub struct Userdir {
    homes: Mutex<HomeCache>,
}

impl Userdir {
    fn home_of(&self, user: &[u8]) -> Option<Vec<u8>> {
        if let Some(hit) = self.homes.lock().ok().and_then(|c| c.get(user)) {
            return hit;
        }
        let home = lookup_home(user);
        if let Ok(mut c) = self.homes.lock() {
            c.put(user, home.clone());
        }
        home
    }
}

impl Module for Userdir {
    const NAME: &'static str = "mod_userdir";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "maps /~user/ to a directory of the user";
    const HOOKS: Hooks = Hooks::PHYSICAL;
    type Config = UserdirConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        Userdir { homes: Mutex::new(HomeCache { entries: Vec::new() }) }
    }

    fn physical(&self, req: &mut Request<Self>) -> Handler {
        if req.status() != 0 || req.claimed_by_other() {
            return Handler::GoOn;
        }
        let target = parse_path(req.path());
        if target == Target::None {
            return Handler::GoOn;
        }
        let conf = req.config();
        let Some(path) = conf.path.as_deref().filter(|_| conf.active) else {
            return Handler::GoOn;
        };
        let (user, rest) = match target {
            Target::None => return Handler::GoOn,
            Target::Redirect => {
                let loc = redirect_location(req);
                req.set_response_header("Location", &loc);
                req.set_status(301);
                return Handler::Finished;
            }
            Target::User { user, rest } => (user.to_vec(), rest.to_vec()),
        };
        if user.len() > MAX_USER_LEN || !user_allowed(&conf, &user) {
            return Handler::GoOn;
        }
        let dir = match conf.basepath.as_deref() {
            Some(base) => match basepath_dir(base, conf.letterhomes, &user, path) {
                Some(d) => d,
                None => return Handler::GoOn,
            },
            None => {
                let Some(home) = self.home_of(&user) else { return Handler::GoOn };
                let d = join(&home, path.as_bytes());
                if !is_dir(&d) {
                    return Handler::GoOn;
                }
                d
            }
        };
        req.set_physical_path(&physical_path(&dir, &rest));
        Handler::GoOn
    }
}

featherd_mod_api::export_module!(Userdir);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_path_table() {
        let u = |user: &'static str, rest: &'static str| Target::User {
            user: user.as_bytes(),
            rest: rest.as_bytes(),
        };
        let cases: &[(&str, Target)] = &[
            ("/~jan/", u("jan", "")),
            ("/~jan/a/b.html", u("jan", "a/b.html")),
            ("/~jan", Target::Redirect),
            ("/~", Target::None),
            ("/~/", Target::None),
            ("/~/x", Target::None),
            ("/jan/", Target::None),
            ("/x/~jan/", Target::None),
        ];
        for (path, want) in cases {
            assert_eq!(&parse_path(path.as_bytes()), want, "{path}");
        }
    }

    #[test]
    fn include_and_exclude() {
        let mut c = UserdirConfig { path: Some("public_html".into()), ..UserdirConfig::default() };
        assert!(user_allowed(&c, b"jan"));
        c.exclude = vec!["root".into()];
        assert!(!user_allowed(&c, b"root"));
        assert!(user_allowed(&c, b"jan"));
        c.include = vec!["jan".into(), "root".into()];
        assert!(user_allowed(&c, b"jan"));
        assert!(!user_allowed(&c, b"eve"));
        assert!(!user_allowed(&c, b"root"), "exclude wins");
        assert!(!user_allowed(&c, b"JAN"), "names are compared exactly");
    }

    #[test]
    fn basepath_table() {
        let cases: &[(&str, bool, &str, &str, Option<&str>)] = &[
            ("/var/www/users/", false, "jan", "htdocs", Some("/var/www/users/jan/htdocs")),
            ("/var/www/users", false, "jan", "", Some("/var/www/users/jan/")),
            ("/var/www/users", true, "jan", "htdocs", Some("/var/www/users/j/jan/htdocs")),
            ("/u", false, "a.b-c_d", "x", Some("/u/a.b-c_d/x")),
            ("/u", false, "..", "x", None),
            ("/u", false, ".", "x", None),
            ("/u", true, ".jan", "x", None),
            ("/u", false, "a\\b", "x", None),
            ("/u", false, "a%2fb", "x", None),
            ("/u", false, "j\u{e4}n", "x", None),
        ];
        for (base, letters, user, path, want) in cases {
            let got = basepath_dir(base, *letters, user.as_bytes(), path);
            assert_eq!(got.as_deref(), want.map(str::as_bytes), "{base} {letters} {user} {path}");
        }
        assert_eq!(physical_path(b"/u/jan/htdocs", b"a/b.html"), b"/u/jan/htdocs/a/b.html");
        assert_eq!(physical_path(b"/u/jan/", b""), b"/u/jan/");
    }

    #[test]
    fn home_cache_forgets_and_is_bounded() {
        let mut c = HomeCache { entries: Vec::new() };
        assert_eq!(c.get(b"jan"), None);
        c.put(b"jan", Some(b"/home/jan".to_vec()));
        c.put(b"nobody-here", None);
        assert_eq!(c.get(b"jan"), Some(Some(b"/home/jan".to_vec())));
        assert_eq!(c.get(b"nobody-here"), Some(None));
        for i in 0..40 {
            c.put(format!("u{i}").as_bytes(), None);
        }
        assert!(c.entries.len() <= HOME_CACHE_SIZE);
        assert_eq!(c.get(b"jan"), None);
    }

    #[test]
    fn root_has_a_home() {
        assert!(lookup_home(b"root").is_some_and(|h| h.starts_with(b"/")));
        assert_eq!(lookup_home(b"no-such-user-featherd"), None);
    }
}
