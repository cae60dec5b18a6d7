//! `X-Sendfile`: a backend answers with a header naming a file and the server sends that file
//! instead of the backend's body. The path is checked here against the directories the
//! configuration allows, the same way for every gateway (CGI, FastCGI, SCGI, proxy).

use featherd_mod_api::{Module, Request};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The response headers that carry a file name (lighttpd's names).
pub const HEADERS: [&str; 2] = ["X-Sendfile", "X-LIGHTTPD-send-file"];

/// Why a file named by a backend is not sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not valid %-encoding or not UTF-8 after decoding: the backend is broken (502).
    BadEncoding,
    /// Not an absolute path (502).
    NotAbsolute,
    /// No allowed directory is configured: nothing may be sent (403).
    NoDocroot,
    /// Outside every allowed directory (403).
    OutsideDocroot(PathBuf),
    /// Missing (404).
    NotFound(PathBuf),
    /// Not a regular file, or not readable (403).
    Forbidden(PathBuf),
}

impl Refused {
    /// The status the client gets.
    pub fn status(&self) -> u16 {
        match self {
            Refused::BadEncoding | Refused::NotAbsolute => 502,
            Refused::NoDocroot | Refused::OutsideDocroot(_) | Refused::Forbidden(_) => 403,
            Refused::NotFound(_) => 404,
        }
    }
}

/// Decode `%XX` escapes (lighttpd url-decodes the header value); None for a bad escape or a
/// result that is not UTF-8 or contains NUL.
pub fn url_decode(v: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let h = v.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(h).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    if out.contains(&0) || std::str::from_utf8(&out).is_err() {
        return None;
    }
    Some(out)
}

/// Remove `.`, `..` and repeated slashes from an absolute path, lexically ("/a/../../b" is
/// "/b"), so that a prefix check means what it says.
pub fn simplify(p: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for seg in p.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = Vec::with_capacity(p.len());
    for s in &parts {
        out.push(b'/');
        out.extend_from_slice(s);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

fn under(path: &Path, dir: &Path) -> bool {
    // Path::starts_with compares whole components: "/srv/ab" is not under "/srv/a".
    path.starts_with(dir)
}

/// Resolve the header value `value` to a file that may be sent: decoded, simplified, and,
/// after symlinks are resolved, inside one of `docroots`. An empty `docroots` allows nothing.
pub fn resolve(value: &[u8], docroots: &[String]) -> Result<PathBuf, Refused> {
    let decoded = url_decode(value).ok_or(Refused::BadEncoding)?;
    if decoded.first() != Some(&b'/') {
        return Err(Refused::NotAbsolute);
    }
    let path = PathBuf::from(OsStr::from_bytes(&simplify(&decoded)));
    if docroots.is_empty() {
        return Err(Refused::NoDocroot);
    }
    if !docroots.iter().any(|d| under(&path, Path::new(d))) {
        return Err(Refused::OutsideDocroot(path));
    }
    // A symlink inside an allowed directory must not lead out of it.
    let real = match std::fs::canonicalize(&path) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Refused::NotFound(path)),
        Err(_) => return Err(Refused::Forbidden(path)),
    };
    let inside = docroots.iter().any(|d| {
        let d = Path::new(d);
        under(&real, d) || std::fs::canonicalize(d).is_ok_and(|rd| under(&real, &rd))
    });
    if !inside {
        return Err(Refused::OutsideDocroot(real));
    }
    Ok(path)
}

/// Answer `req` with the file a backend named in an X-Sendfile header: checked with
/// [`resolve`] against `allowed` (the configured `*.x-sendfile-docroot`; when that is empty,
/// the request's document root — lighttpd would allow any file), opened, typed and queued.
/// A refusal is logged (`who` names the backend, `key` the setting) and answered with its
/// status. False only when the file could not be queued (the request then fails).
pub fn answer<M: Module>(
    req: &mut Request<M>,
    value: &[u8],
    allowed: &[String],
    who: &str,
    key: &str,
) -> bool {
    let shown = String::from_utf8_lossy(value).into_owned();
    let refuse = |req: &mut Request<M>, status: u16, why: String| {
        log::error!("{who}: X-Sendfile {shown:?} refused: {why}");
        req.remove_response_header("Content-Type");
        req.set_status(status);
        true
    };
    let docroot;
    let allowed = if allowed.is_empty() {
        docroot = [String::from_utf8_lossy(req.docroot()).into_owned()];
        if docroot[0].is_empty() {
            &[][..]
        } else {
            &docroot[..]
        }
    } else {
        allowed
    };
    let path = match resolve(value, allowed) {
        Ok(p) => p,
        Err(r) => {
            let why = match &r {
                Refused::BadEncoding => "bad %-encoding or not UTF-8".to_string(),
                Refused::NotAbsolute => "not an absolute path".to_string(),
                Refused::NoDocroot => format!("{key} is not set and there is no document root"),
                Refused::OutsideDocroot(p) => {
                    format!("{} is outside {key} (or the document root when it is not set)", p.display())
                }
                Refused::NotFound(p) => format!("{} does not exist", p.display()),
                Refused::Forbidden(p) => format!("{} cannot be read", p.display()),
            };
            return refuse(req, r.status(), why);
        }
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            let st = if e.kind() == std::io::ErrorKind::NotFound { 404 } else { 403 };
            return refuse(req, st, format!("{}: {e}", path.display()));
        }
    };
    let len = match file.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return refuse(req, 403, format!("{} is not a regular file", path.display())),
    };
    if req.response_header("Content-Type").is_none() {
        let ct = req.mimetype_for(path.as_os_str().as_bytes()).to_vec();
        if !ct.is_empty() {
            req.set_response_header("Content-Type", ct);
        }
    }
    req.set_content_length(len);
    req.method() == b"HEAD" || len == 0 || req.append_file(file, 0, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_simplify() {
        assert_eq!(url_decode(b"/a%20b"), Some(b"/a b".to_vec()));
        assert_eq!(url_decode(b"/a%2"), None);
        assert_eq!(url_decode(b"/a%00"), None);
        assert_eq!(url_decode(b"/a%ff"), None);
        assert_eq!(simplify(b"/a/./b//c/../d"), b"/a/b/d");
        assert_eq!(simplify(b"/../../etc/passwd"), b"/etc/passwd");
        assert_eq!(simplify(b"/"), b"/");
    }

    #[test]
    fn docroots() {
        let d = vec!["/tmp".to_string()];
        assert_eq!(resolve(b"relative", &d), Err(Refused::NotAbsolute));
        assert_eq!(resolve(b"/tmp/x", &[]), Err(Refused::NoDocroot));
        assert!(matches!(resolve(b"/tmp/../etc/passwd", &d), Err(Refused::OutsideDocroot(_))));
        assert!(matches!(resolve(b"/tmpx/a", &d), Err(Refused::OutsideDocroot(_))));
        assert!(matches!(resolve(b"/tmp/does-not-exist-xsendfile", &d), Err(Refused::NotFound(_))));
    }
}
