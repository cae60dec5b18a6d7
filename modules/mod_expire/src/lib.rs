//! mod_expire: tell caches how long a response stays fresh.
//!
//! Data in: `expire.url` (`"/url-prefix" => "<spec>"`) and `expire.mimetypes`
//! (`"type/prefix" => "<spec>"`), merged per request over the matching conditional blocks and
//! parsed at start (a malformed spec refuses to start, naming file:line); at RESPONSE_START
//! the status, method, request path, the response's `Content-Type` and `Cache-Control`, the
//! server's clock and, for `modification`, the host's stat of the physical path.
//! Data out: `Cache-Control: max-age=N` and `Expires: <HTTP date>` on 200, 206 and 304
//! answers to GET and HEAD that do not carry a `Cache-Control` already.
//!
//! A spec is `<access|now|modification> [plus] {<num> <unit>}+`, units `years` (360 days, as
//! lighttpd), `months` (30 days), `weeks`, `days`, `hours`, `minutes`, `seconds`, singular
//! or plural. `access` and `now` count from the time of the request; `modification` from the
//! file's mtime, and a response without a file gets nothing. `max-age` always counts from
//! now (an expiry in the past gives `max-age=0`), as in lighttpd.

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value, FILE_KIND_REGULAR};
use std::time::{Duration, UNIX_EPOCH};

/// What an expiry counts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// `access` or `now`: the time of the request.
    Access,
    /// `modification`: the file's modification time.
    Modification,
}

/// A parsed spec: base plus an offset in seconds (may be negative, as lighttpd accepts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expiry {
    pub base: Base,
    pub seconds: i64,
}

fn unit_seconds(unit: &str) -> Option<i64> {
    let u = unit.to_ascii_lowercase();
    let u = u.strip_suffix('s').unwrap_or(&u);
    Some(match u {
        "year" => 360 * 86_400,
        "month" => 30 * 86_400,
        "week" => 7 * 86_400,
        "day" => 86_400,
        "hour" => 3_600,
        "minute" => 60,
        "second" => 1,
        _ => return None,
    })
}

/// Parse `<access|now|modification> [plus] {<num> <unit>}+`.
pub fn parse_spec(spec: &str) -> Result<Expiry, String> {
    let mut words = spec.split_ascii_whitespace().peekable();
    let base = match words.next().map(str::to_ascii_lowercase).as_deref() {
        Some("access") | Some("now") => Base::Access,
        Some("modification") => Base::Modification,
        Some(w) => {
            return Err(format!("\"{spec}\": starts with \"{w}\", expected access, now or modification"))
        }
        None => return Err("empty expiry: expected e.g. \"access plus 1 days\"".into()),
    };
    if words.peek().is_some_and(|w| w.eq_ignore_ascii_case("plus")) {
        words.next();
    }
    let mut seconds: i64 = 0;
    let mut terms = 0;
    while let Some(num) = words.next() {
        let n: i64 = num
            .parse()
            .map_err(|_| format!("\"{spec}\": \"{num}\" is not a number (expected <num> <unit> pairs)"))?;
        let Some(unit) = words.next() else {
            return Err(format!(
                "\"{spec}\": {num} has no unit (years, months, weeks, days, hours, minutes, seconds)"
            ));
        };
        let per = unit_seconds(unit).ok_or_else(|| {
            format!(
                "\"{spec}\": unknown unit \"{unit}\" (years, months, weeks, days, hours, minutes, seconds)"
            )
        })?;
        seconds = n
            .checked_mul(per)
            .and_then(|s| s.checked_add(seconds))
            .ok_or_else(|| format!("\"{spec}\": the duration is too large"))?;
        terms += 1;
    }
    if terms == 0 {
        return Err(format!("\"{spec}\": no duration, expected e.g. \"{} plus 1 days\"", spec.trim()));
    }
    Ok(Expiry { base, seconds })
}

/// Configuration, merged per request. Each list is sorted longest key first.
#[derive(Clone, Debug, Default)]
pub struct ExpireConfig {
    pub url: Vec<(String, Expiry)>,
    pub mimetypes: Vec<(String, Expiry)>,
}

fn parse_list(v: &Value, what: &str) -> Result<Vec<(String, Expiry)>, String> {
    let pairs =
        v.to_str_map().map_err(|_| format!("expected a list of \"{what}\" => \"access plus 1 days\""))?;
    let mut out = Vec::with_capacity(pairs.len());
    for (k, spec) in pairs {
        out.push((k, parse_spec(&spec)?));
    }
    out.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
    Ok(out)
}

impl ModuleConfig for ExpireConfig {
    const KEYS: &'static [Key] = &[Key::array("expire.url"), Key::array("expire.mimetypes")];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.url = parse_list(v, "/url-prefix")?,
            _ => {
                let mut l = parse_list(v, "type/prefix")?;
                // "image/*" means the prefix "image/", as in lighttpd.
                for (k, _) in &mut l {
                    if k.ends_with('*') {
                        k.pop();
                    }
                }
                l.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
                self.mimetypes = l;
            }
        }
        Ok(())
    }
}

/// The expiry for a response: the longest `expire.url` prefix of the path, else the longest
/// `expire.mimetypes` prefix of the content type (with no content type, only a `""` entry).
pub fn lookup(conf: &ExpireConfig, path: &[u8], content_type: Option<&[u8]>) -> Option<Expiry> {
    if let Some((_, e)) = conf.url.iter().find(|(k, _)| path.starts_with(k.as_bytes())) {
        return Some(*e);
    }
    let ct = content_type.unwrap_or(b"");
    conf.mimetypes
        .iter()
        .find(|(k, _)| if content_type.is_some() { ct.starts_with(k.as_bytes()) } else { k.is_empty() })
        .map(|(_, e)| *e)
}

/// RFC 9111 1.2.2: caches treat a larger max-age as 2^31.
pub const MAX_AGE_LIMIT: i64 = 1 << 31;

/// (max-age, Expires time) for an expiry. `mtime` is needed for `modification`.
pub fn compute(e: Expiry, now: i64, mtime: Option<i64>) -> Option<(i64, i64)> {
    let base = match e.base {
        Base::Access => now,
        Base::Modification => mtime?,
    };
    let expires = base.saturating_add(e.seconds).max(now);
    let max_age = (expires - now).min(MAX_AGE_LIMIT);
    Some((max_age, now + max_age))
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct Expire;

impl Module for Expire {
    const NAME: &'static str = "mod_expire";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "sets Cache-Control max-age and Expires by URL prefix or content type";
    const HOOKS: Hooks = Hooks::RESPONSE_START;
    type Config = ExpireConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        Expire
    }

    fn response_start(&self, req: &mut Request<Self>) -> Handler {
        if !matches!(req.status(), 200 | 206 | 304) || !matches!(req.method(), b"GET" | b"HEAD") {
            return Handler::GoOn;
        }
        let conf = req.config();
        if (conf.url.is_empty() && conf.mimetypes.is_empty())
            || req.response_header("Cache-Control").is_some()
        {
            return Handler::GoOn;
        }
        let Some(e) = lookup(&conf, req.path(), req.response_header("Content-Type")) else {
            return Handler::GoOn;
        };
        let mtime = match e.base {
            Base::Access => None,
            // Only a response that maps to a file has a modification time.
            Base::Modification => match req.file_info() {
                Some(fi) if fi.kind == FILE_KIND_REGULAR => Some(fi.mtime),
                _ => return Handler::GoOn,
            },
        };
        let now = featherd_mod_api::now();
        let Some((max_age, expires)) = compute(e, now, mtime) else { return Handler::GoOn };
        let when = UNIX_EPOCH + Duration::from_secs(u64::try_from(expires).unwrap_or(0));
        req.set_response_header("Expires", httpdate::fmt_http_date(when));
        req.set_response_header("Cache-Control", format!("max-age={max_age}"));
        Handler::GoOn
    }
}

featherd_mod_api::export_module!(Expire);

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (Base, i64) {
        let e = parse_spec(s).unwrap_or_else(|m| panic!("{s}: {m}"));
        (e.base, e.seconds)
    }

    #[test]
    fn grammar_accepts() {
        use Base::*;
        let cases: &[(&str, (Base, i64))] = &[
            ("access plus 1 days", (Access, 86_400)),
            ("access 1 hour", (Access, 3_600)),
            ("now plus 1 weeks", (Access, 604_800)),
            ("modification plus 1 hours", (Modification, 3_600)),
            ("access plus 1 days 2 hours", (Access, 86_400 + 7_200)),
            ("access plus 1 years", (Access, 31_104_000)),
            ("access plus 1 month", (Access, 2_592_000)),
            ("now 1 week 1 day 1 hour 1 minute 1 second", (Access, 694_861)),
            ("access plus 0 seconds", (Access, 0)),
            ("access plus -5 minutes", (Access, -300)),
            ("Access  PLUS 2  Minutes ", (Access, 120)),
            ("access plus 1 hours 1 hours", (Access, 7_200)),
        ];
        for (s, want) in cases {
            assert_eq!(ok(s), *want, "{s}");
        }
    }

    #[test]
    fn grammar_refuses() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("   ", "empty"),
            ("later plus 1 days", "expected access, now or modification"),
            ("access plus", "no duration"),
            ("access", "no duration"),
            ("access plus 1", "has no unit"),
            ("access plus days", "not a number"),
            ("access plus 1 fortnights", "unknown unit"),
            ("access plus 1 days 2", "has no unit"),
            ("access plus 1.5 days", "not a number"),
            ("access plus plus 1 days", "not a number"),
            ("access plus 99999999999999999 years", "too large"),
        ];
        for (s, msg) in cases {
            let e = parse_spec(s).expect_err(s);
            assert!(e.contains(msg), "{s}: {e}");
        }
    }

    fn conf(url: &[(&str, &str)], mt: &[(&str, &str)]) -> ExpireConfig {
        let mut c = ExpireConfig {
            url: url.iter().map(|(k, v)| (k.to_string(), parse_spec(v).unwrap())).collect(),
            mimetypes: mt
                .iter()
                .map(|(k, v)| (k.trim_end_matches('*').to_string(), parse_spec(v).unwrap()))
                .collect(),
        };
        c.url.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
        c.mimetypes.sort_by_key(|a| std::cmp::Reverse(a.0.len()));
        c
    }

    #[test]
    fn lookup_prefers_url_then_longest_prefix() {
        let c = conf(
            &[("/static/", "access 1 hours"), ("/static/long/", "access 2 hours")],
            &[("image/", "access 3 hours"), ("image/png", "access 4 hours"), ("text/*", "access 5 hours")],
        );
        let secs =
            |p: &str, ct: Option<&str>| lookup(&c, p.as_bytes(), ct.map(str::as_bytes)).map(|e| e.seconds);
        assert_eq!(secs("/static/a.png", Some("image/png")), Some(3_600));
        assert_eq!(secs("/static/long/a", None), Some(7_200));
        assert_eq!(secs("/img/a.png", Some("image/png")), Some(14_400));
        assert_eq!(secs("/img/a.gif", Some("image/gif")), Some(10_800));
        assert_eq!(secs("/a.css", Some("text/css")), Some(18_000));
        assert_eq!(secs("/a.json", Some("application/json")), None);
        assert_eq!(secs("/a", None), None);
        let d = conf(&[], &[("", "access 6 hours")]);
        assert_eq!(lookup(&d, b"/x", None).map(|e| e.seconds), Some(21_600));
        assert_eq!(lookup(&d, b"/x", Some(b"a/b")).map(|e| e.seconds), Some(21_600));
    }

    #[test]
    fn compute_counts_max_age_from_now() {
        let now = 1_000_000;
        let acc = Expiry { base: Base::Access, seconds: 3_600 };
        assert_eq!(compute(acc, now, None), Some((3_600, now + 3_600)));
        let m = Expiry { base: Base::Modification, seconds: 3_600 };
        assert_eq!(compute(m, now, None), None);
        assert_eq!(compute(m, now, Some(now - 600)), Some((3_000, now + 3_000)));
        // Expired already: now, max-age 0.
        assert_eq!(compute(m, now, Some(now - 7_200)), Some((0, now)));
        let neg = Expiry { base: Base::Access, seconds: -5 };
        assert_eq!(compute(neg, now, None), Some((0, now)));
        let huge = Expiry { base: Base::Access, seconds: i64::MAX };
        assert_eq!(compute(huge, now, None), Some((MAX_AGE_LIMIT, now + MAX_AGE_LIMIT)));
    }
}
