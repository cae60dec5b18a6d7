//! mod_evhost: the document root built from a pattern and the parts of the host name.
//!
//! Data in: at DOCROOT, the request's host (lower-case, port already stripped by the core) and
//! the pattern `evhost.path-pattern`, parsed at start. Data out: the document root the
//! pattern yields, when it is a directory; otherwise nothing changes (the request keeps
//! `server.document-root`) and the error log says which path was tried.
//!
//! The host `sub2.sub1.domain.tld` is numbered from the right, as lighttpd does:
//!
//! | pattern | value |
//! | --- | --- |
//! | `%0` | `domain.tld` (the last two labels) |
//! | `%1` | `tld` |
//! | `%2` | `domain` |
//! | `%3` | `sub1` |
//! | `%4` ... `%9` | `sub2` and further left |
//! | `%_` | the whole host |
//! | `%{N}` | the same as `%N` |
//! | `%{N.M}` | character M (1-based) of part N; `M` = 0 is the whole part |
//! | `%%` | a `%` sign |
//!
//! A part that the host does not have (`%3` of `example.com`) is empty. An IPv6 literal
//! (`[::1]`) has only `%0` and `%_`, both the literal with its brackets.
//!
//! A host can never leave the directories the pattern names: a host that is empty, starts
//! with a dot or holds a slash is not used at all (the core refuses such Host headers with
//! 400 already), and a result in which text taken from the host forms a `.` or `..` path
//! segment (for instance `%3.%4` with both parts missing) is refused.

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;

/// One piece of a parsed pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    /// `%_`: the whole host.
    Host,
    /// `%N` or `%{N}`: part N.
    Part(u8),
    /// `%{N.M}`: character M (1-based) of part N.
    PartChar(u8, u8),
}

/// Parse `evhost.path-pattern`; the error names the first bad sequence.
pub fn parse_pattern(pattern: &str) -> Result<Vec<Piece>, String> {
    let b = pattern.as_bytes();
    let mut out = Vec::new();
    let mut lit = Vec::new();
    let mut i = 0;
    let bad = |at: usize| {
        let end = (at + 6).min(b.len());
        format!(
            "invalid sequence {:?} at byte {at}: expected %%, %_, %0-%9, %{{N}} or %{{N.M}} (N, M single digits)",
            String::from_utf8_lossy(&b[at..end])
        )
    };
    while i < b.len() {
        if b[i] != b'%' {
            lit.push(b[i]);
            i += 1;
            continue;
        }
        let piece = match b.get(i + 1) {
            Some(b'%') => {
                lit.push(b'%');
                i += 2;
                continue;
            }
            Some(b'_') => {
                i += 2;
                Piece::Host
            }
            Some(d) if d.is_ascii_digit() => {
                i += 2;
                Piece::Part(d - b'0')
            }
            Some(b'{') => match (b.get(i + 2), b.get(i + 3), b.get(i + 4), b.get(i + 5)) {
                (Some(n), Some(b'}'), _, _) if n.is_ascii_digit() => {
                    i += 4;
                    Piece::Part(n - b'0')
                }
                (Some(n), Some(b'.'), Some(m), Some(b'}')) if n.is_ascii_digit() && m.is_ascii_digit() => {
                    i += 6;
                    if *m == b'0' {
                        Piece::Part(n - b'0')
                    } else {
                        Piece::PartChar(n - b'0', m - b'0')
                    }
                }
                _ => return Err(bad(i)),
            },
            _ => return Err(bad(i)),
        };
        if !lit.is_empty() {
            out.push(Piece::Literal(std::mem::take(&mut lit)));
        }
        out.push(piece);
    }
    if !lit.is_empty() {
        out.push(Piece::Literal(lit));
    }
    Ok(out)
}

/// The parts of a host: index 0 is `%0`, 1 is `%1` (the last label), and so on.
pub fn host_parts(host: &[u8]) -> Vec<&[u8]> {
    if host.first() == Some(&b'[') {
        return vec![host];
    }
    // %0: what follows the second-to-last dot (the whole host when it has fewer dots).
    let mut dots = host.iter().enumerate().rev().filter(|(_, &c)| c == b'.').map(|(i, _)| i);
    let zero = match (dots.next(), dots.next()) {
        (Some(_), Some(second)) => &host[second + 1..],
        _ => host,
    };
    let mut parts = vec![zero];
    // %1 and up: the labels from the right; empty labels ("a..b") are not counted.
    parts.extend(host.split(|&c| c == b'.').rev().filter(|l| !l.is_empty()));
    parts
}

/// Build the document root for `host` (ending with '/'), or None when text from the host
/// would form a `.` or `..` path segment.
pub fn build_docroot(pieces: &[Piece], host: &[u8]) -> Option<Vec<u8>> {
    let parts = host_parts(host);
    let mut out: Vec<u8> = Vec::new();
    // Where text from the host was inserted (also when it was empty). Host text holds no
    // '/', so each insertion lies within one path segment.
    let mut marks: Vec<usize> = Vec::new();
    for p in pieces {
        let host_text: &[u8] = match p {
            Piece::Literal(l) => {
                out.extend_from_slice(l);
                continue;
            }
            Piece::Host => host,
            Piece::Part(n) => parts.get(*n as usize).copied().unwrap_or_default(),
            Piece::PartChar(n, m) => {
                let part = parts.get(*n as usize).copied().unwrap_or_default();
                (*m as usize)
                    .checked_sub(1)
                    .and_then(|i| part.get(i))
                    .map(std::slice::from_ref)
                    .unwrap_or_default()
            }
        };
        marks.push(out.len());
        out.extend_from_slice(host_text);
    }
    if !out.ends_with(b"/") {
        out.push(b'/');
    }
    let mut start = 0;
    for seg in out.split(|&c| c == b'/') {
        let end = start + seg.len();
        if (seg == b"." || seg == b"..") && marks.iter().any(|&m| (start..=end).contains(&m)) {
            return None;
        }
        start = end + 1;
    }
    Some(out)
}

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct EvhostConfig {
    /// `evhost.path-pattern`, parsed; None (unset or "") disables the module.
    pub pattern: Option<Arc<Vec<Piece>>>,
}

impl ModuleConfig for EvhostConfig {
    const KEYS: &'static [Key] = &[Key::string("evhost.path-pattern")];

    fn apply(&mut self, _key: usize, v: &Value) -> Result<(), String> {
        let s = v.to_str()?;
        if s.contains('\0') {
            return Err("a path cannot contain a NUL byte".into());
        }
        self.pattern = if s.trim().is_empty() { None } else { Some(Arc::new(parse_pattern(s)?)) };
        Ok(())
    }
}

fn is_dir(p: &[u8]) -> bool {
    std::fs::metadata(OsStr::from_bytes(p)).is_ok_and(|m| m.is_dir())
}

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct Evhost;

impl Module for Evhost {
    const NAME: &'static str = "mod_evhost";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "document root from a pattern over the parts of the host name";
    const HOOKS: Hooks = Hooks::DOCROOT;
    type Config = EvhostConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        Evhost
    }

    fn docroot(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let Some(pattern) = conf.pattern.clone() else {
            return Handler::GoOn;
        };
        let host = req.host();
        if host.is_empty() || host[0] == b'.' || host.contains(&b'/') || host.contains(&0) {
            return Handler::GoOn;
        }
        let Some(p) = build_docroot(&pattern, host) else {
            log::warn!("host {:?} would leave the path pattern's directories", String::from_utf8_lossy(host));
            return Handler::GoOn;
        };
        if is_dir(&p) {
            req.set_docroot(&p);
        } else {
            log::info!("not a directory: {}", String::from_utf8_lossy(&p));
        }
        Handler::GoOn
    }
}

featherd_mod_api::export_module!(Evhost);

#[cfg(test)]
mod tests {
    use super::*;

    fn build(pattern: &str, host: &str) -> Option<String> {
        let p = parse_pattern(pattern).expect("pattern");
        build_docroot(&p, host.as_bytes()).map(|v| String::from_utf8(v).expect("utf8"))
    }

    #[test]
    fn parts_are_numbered_from_the_right() {
        let cases: &[(&str, &[&str])] = &[
            ("www.example.com", &["example.com", "com", "example", "www"]),
            ("a.b.example.com", &["example.com", "com", "example", "b", "a"]),
            ("example.com", &["example.com", "com", "example"]),
            ("localhost", &["localhost", "localhost"]),
            ("127.0.0.1", &["0.1", "1", "0", "0", "127"]),
            ("a..b", &[".b", "b", "a"]),
            ("[::1]", &["[::1]"]),
        ];
        for (host, want) in cases {
            let got: Vec<String> =
                host_parts(host.as_bytes()).iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            assert_eq!(got, *want, "{host}");
        }
    }

    #[test]
    fn patterns_table() {
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/srv/%0/%3/", "www.example.com", Some("/srv/example.com/www/")),
            ("/srv/%2-%1/htdocs", "www.example.com", Some("/srv/example-com/htdocs/")),
            ("/srv/%_", "www.example.com", Some("/srv/www.example.com/")),
            ("/srv/%{3.1}/%3", "www.example.com", Some("/srv/w/www/")),
            ("/srv/%{2.1}/%{2.2}/%2", "example.com", Some("/srv/e/x/example/")),
            ("/srv/%{2.9}x", "example.com", Some("/srv/x/")),
            ("/srv/%{3}/%{3.0}", "www.example.com", Some("/srv/www/www/")),
            ("/srv/%4/", "www.example.com", Some("/srv//")),
            ("/srv/100%%/%1/", "example.com", Some("/srv/100%/com/")),
            ("/srv/%0/", "[::1]", Some("/srv/[::1]/")),
            ("/srv/%1/", "[::1]", Some("/srv//")),
            // Literal dot segments are the administrator's business...
            ("/srv/./%0/../x/", "example.com", Some("/srv/./example.com/../x/")),
            // ...dot segments made of host text are refused.
            ("/srv/%3.%4/", "example.com", None),
            ("/srv/%4.%3.%5/", "example.com", None),
            ("/srv/%3./", "example.com", None),
            ("/srv/.%3./", "example.com", None),
            ("/srv/%3/", "example.com", Some("/srv//")),
        ];
        for (pattern, host, want) in cases {
            assert_eq!(build(pattern, host).as_deref(), *want, "{pattern} {host}");
        }
    }

    #[test]
    fn bad_patterns_are_refused() {
        for p in [
            "/srv/%",
            "/srv/%x",
            "/srv/%{",
            "/srv/%{a}",
            "/srv/%{1",
            "/srv/%{1.}",
            "/srv/%{1.x}",
            "/srv/%{12}",
        ] {
            let e = parse_pattern(p).expect_err(p);
            assert!(e.contains("invalid sequence"), "{p}: {e}");
        }
        assert_eq!(parse_pattern("/a/%%b").expect("ok"), vec![Piece::Literal(b"/a/%b".to_vec())]);
    }
}
