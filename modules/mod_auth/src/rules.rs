//! `auth.require`: which paths need which credentials, parsed at start into [`Rule`]s.
//!
//! ```text
//! auth.require = ( "/prefix" => ( "method"  => "basic" | "digest" | "extern",
//!                                 "realm"   => "...",
//!                                 "require" => "valid-user" | "user=a|user=b|group=g|host=h",
//!                                 "algorithm" => "SHA-256|MD5",      # digest, optional
//!                                 "nonce_secret" => "...",           # digest, optional
//!                                 "userhash" => "enable" ) )         # digest, optional
//! ```
//!
//! The checks and messages are lighttpd's (mod_auth.c), so a config it refuses is refused here
//! too, with the setting's file:line added by the server.

use featherd_authn::{ALGO_MD5, ALGO_SHA256, ALGO_SHA512_256};
use featherd_mod_api::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Basic,
    Digest,
    /// Someone before mod_auth (a FastCGI authorizer, mod_extforward, ...) set REMOTE_USER.
    Extern,
}

/// The client's `-sess` variants are accepted for every algorithm (lighttpd too).
pub const ALGO_SESS: u32 = 1 << 8;

#[derive(Clone, Debug)]
pub struct Rule {
    /// The URL-path prefix (decoded path, case-sensitive).
    pub prefix: String,
    pub method: Method,
    pub realm: String,
    /// The `ALGO_*` bits a Digest client may use (MD5 when not configured).
    pub algorithms: u32,
    pub nonce_secret: Option<String>,
    pub userhash: bool,
    pub valid_user: bool,
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// Parsed but never matched (lighttpd: "'host' not implemented"); warned about at start.
    pub hosts: Vec<String>,
    /// Stable identity of the rule (config block and position): the credential cache key.
    pub id: u64,
}

/// Parse the algorithm list `"SHA-256|MD5"` into `ALGO_*` bits.
pub fn parse_algorithms(s: &str) -> Result<u32, String> {
    let mut bits = 0;
    for a in s.split('|') {
        bits |= parse_algorithm(a)
            .ok_or_else(|| format!("invalid algorithm {a:?} in {s:?} (MD5, SHA-256, SHA-512-256)"))?;
    }
    Ok(bits & !ALGO_SESS)
}

/// One algorithm name as a client or the config writes it, case-insensitive, with an
/// optional `-sess` suffix (`ALGO_SESS` bit). An empty name is MD5 (RFC 2617 default).
pub fn parse_algorithm(a: &str) -> Option<u32> {
    let a = a.trim();
    if a.is_empty() {
        return Some(ALGO_MD5);
    }
    let (base, sess) = match a.len().checked_sub(5).and_then(|i| a.get(i..)) {
        Some(t) if t.eq_ignore_ascii_case("-sess") => (&a[..a.len() - 5], ALGO_SESS),
        _ => (a, 0),
    };
    let algo = if base.eq_ignore_ascii_case("MD5") {
        ALGO_MD5
    } else if base.eq_ignore_ascii_case("SHA-256") {
        ALGO_SHA256
    } else if base.eq_ignore_ascii_case("SHA-512-256") {
        ALGO_SHA512_256
    } else {
        return None;
    };
    Some(algo | sess)
}

/// The name used in challenges.
pub fn algorithm_name(a: u32) -> &'static str {
    match a {
        ALGO_SHA256 => "SHA-256",
        ALGO_SHA512_256 => "SHA-512-256",
        _ => "MD5",
    }
}

const EXPECT: &str = "(expecting \"valid-user\" or \"user=a|user=b|group=g|host=h\")";

/// The `require` field into the rule's user/group/host lists.
fn parse_require_field(rule: &mut Rule, s: &str) -> Result<(), String> {
    if s == "valid-user" {
        rule.valid_user = true;
        return Ok(());
    }
    for tok in s.split('|') {
        if tok.is_empty() {
            continue;
        }
        let Some((k, v)) = tok.split_once('=') else {
            return Err(format!(
                "error parsing auth.require 'require' field: missing '=' {EXPECT}: {s:?} near {tok:?}"
            ));
        };
        if v.is_empty() {
            return Err(format!(
                "error parsing auth.require 'require' field: missing token after '=' {EXPECT}: {s:?} near {tok:?}"
            ));
        }
        match k {
            "user" => rule.users.push(v.to_owned()),
            "group" => rule.groups.push(v.to_owned()),
            "host" => rule.hosts.push(v.to_owned()),
            _ if tok.starts_with("valid-user") => {
                return Err(format!(
                    "error parsing auth.require 'require' field: valid-user can not be combined with other require rules {EXPECT}: {s:?}"
                ))
            }
            _ => {
                return Err(format!(
                    "error parsing auth.require 'require' field: invalid/unsupported token {EXPECT}: {s:?} near {tok:?}"
                ))
            }
        }
    }
    Ok(())
}

const SHAPE: &str = "auth.require = ( \"urlpath\" => ( \"option\" => \"value\" ) )";

/// `auth.require`'s value into rules (in config order).
pub fn parse_require(v: &Value) -> Result<Vec<Rule>, String> {
    let mut rules = Vec::new();
    for (n, (path, entry)) in v.iter().enumerate() {
        let Some(path) = path else {
            return Err(format!("unexpected value for auth.require; expected {SHAPE}"));
        };
        let mut method = None;
        let mut realm = None;
        let mut require = None;
        let mut algos = None;
        let mut nonce_secret = None;
        let mut userhash = false;
        if entry.as_str().is_some() {
            return Err(format!("unexpected value for auth.require; expected {SHAPE}"));
        }
        for (k, val) in entry.iter() {
            let Some(k) = k else {
                return Err(format!("unexpected value for auth.require; expected {SHAPE}"));
            };
            if k == "userhash" {
                userhash = val.to_bool().map_err(|e| format!("auth.require \"userhash\": {e}"))?;
                continue;
            }
            let Some(s) = val.as_str() else {
                return Err(format!("a string was expected for: auth.require = ( \"...\" => ( ..., -> \"{k}\" <- => \"...\" ) )"));
            };
            match k {
                "method" => method = Some(s),
                "realm" => realm = Some(s),
                "require" => require = Some(s),
                "algorithm" => algos = Some(s),
                "nonce_secret" | "nonce-secret" => nonce_secret = Some(s.to_owned()),
                _ => {
                    return Err(format!(
                        "the field is unknown in: auth.require = ( \"...\" => ( ..., -> \"{k}\" <- => \"...\" ) )"
                    ))
                }
            }
        }
        let method = match method.map(str::trim) {
            None | Some("") => {
                return Err("the method field is missing or blank in: auth.require = ( \"...\" => ( ..., \"method\" => \"...\" ) )".into())
            }
            Some("basic") => Method::Basic,
            Some("digest") => Method::Digest,
            Some("extern") => Method::Extern,
            Some(m) => {
                return Err(format!(
                    "unknown method {m} (e.g. \"basic\", \"digest\" or \"extern\") in auth.require = ( \"...\" => ( ..., \"method\" => \"...\") )"
                ))
            }
        };
        let Some(realm) = realm else {
            return Err(
                "the realm field is missing in: auth.require = ( \"...\" => ( ..., \"realm\" => \"...\" ) )"
                    .into(),
            );
        };
        if realm.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(format!("the realm {realm:?} contains control characters"));
        }
        let require = match require.map(str::trim) {
            None | Some("") => {
                return Err(
                    "the require field is missing or blank in: auth.require = ( \"...\" => ( ..., \"require\" => \"...\" ) )".into(),
                )
            }
            Some(r) => r,
        };
        let algorithms = match algos.map(str::trim) {
            None | Some("") => ALGO_MD5,
            Some(a) => parse_algorithms(a).map_err(|e| {
                format!("{e}: invalid algorithm in: auth.require = ( \"...\" => ( ..., \"algorithm\" => \"...\" ) )")
            })?,
        };
        let mut rule = Rule {
            prefix: path.to_owned(),
            method,
            realm: realm.to_owned(),
            algorithms,
            nonce_secret,
            userhash,
            valid_user: false,
            users: Vec::new(),
            groups: Vec::new(),
            hosts: Vec::new(),
            id: (u64::from(v.block()) << 32) | n as u64,
        };
        parse_require_field(&mut rule, require)?;
        rules.push(rule);
    }
    Ok(rules)
}

/// The rule for `path`: the longest matching prefix.
pub fn find<'r>(rules: &'r [Rule], path: &[u8]) -> Option<(usize, &'r Rule)> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| path.starts_with(r.prefix.as_bytes()))
        .max_by_key(|(i, r)| (r.prefix.len(), std::cmp::Reverse(*i)))
}

/// Entries lighttpd would never reach (an earlier entry is a prefix of them; lighttpd takes
/// the first match in order): (later path, earlier path).
pub fn shadowed(rules: &[Rule]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        if let Some(e) = rules[..i].iter().find(|e| r.prefix.starts_with(&e.prefix)) {
            out.push((r.prefix.clone(), e.prefix.clone()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str) -> Rule {
        Rule {
            prefix: prefix.into(),
            method: Method::Basic,
            realm: "r".into(),
            algorithms: ALGO_MD5,
            nonce_secret: None,
            userhash: false,
            valid_user: true,
            users: vec![],
            groups: vec![],
            hosts: vec![],
            id: 0,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let rules = vec![rule("/a"), rule("/a/b"), rule("")];
        assert_eq!(find(&rules, b"/a/b/c").map(|r| r.0), Some(1));
        assert_eq!(find(&rules, b"/a/x").map(|r| r.0), Some(0));
        assert_eq!(find(&rules, b"/z").map(|r| r.0), Some(2));
        assert_eq!(shadowed(&rules), vec![("/a/b".to_string(), "/a".to_string())]);
        assert!(find(&[rule("/a")], b"/b").is_none());
    }

    #[test]
    fn require_field() {
        let mut r = rule("/");
        r.valid_user = false;
        parse_require_field(&mut r, "user=a|user=b|group=g|host=h").unwrap();
        assert_eq!((r.users.len(), r.groups.len(), r.hosts.len()), (2, 1, 1));
        for bad in
            ["user", "user=", "nobody=x", "user=a|valid-user", "valid-user|user=a", "user=a|valid-user=b"]
        {
            assert!(parse_require_field(&mut rule("/"), bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn algorithms() {
        assert_eq!(parse_algorithms("SHA-256|md5").unwrap(), ALGO_SHA256 | ALGO_MD5);
        assert_eq!(parse_algorithm("SHA-512-256-sess"), Some(ALGO_SHA512_256 | ALGO_SESS));
        assert_eq!(parse_algorithm(""), Some(ALGO_MD5));
        assert!(parse_algorithms("SHA-1").is_err());
    }
}
