//! The `cgi.*` keys.

use featherd_mod_api::{Key, ModuleConfig, Value, ValueKind};
use std::sync::Arc;

/// mod_cgi's settings as they apply to one request.
#[derive(Clone, Default)]
pub struct CgiConfig {
    /// `cgi.assign`: (suffix of the physical path, interpreter or "" to run the file itself),
    /// in configuration order; the first suffix that matches wins.
    pub assign: Arc<Vec<(String, String)>>,
    /// `cgi.execute-x-only`: refuse (403) a matching file without an execute bit.
    pub execute_x_only: bool,
    /// `cgi.x-sendfile`: honour `X-Sendfile` / `X-LIGHTTPD-send-file`.
    pub x_sendfile: bool,
    /// `cgi.x-sendfile-docroot`: directories X-Sendfile may name files in.
    pub x_sendfile_docroot: Arc<Vec<String>>,
    /// `cgi.local-redir`: `Location: /path` without `Status:` restarts the request there.
    pub local_redir: bool,
}

impl CgiConfig {
    /// The interpreter for a physical path ("" = run the file itself), if it is a CGI script.
    pub fn interpreter_for(&self, physical: &[u8]) -> Option<&str> {
        self.assign.iter().find(|(suffix, _)| physical.ends_with(suffix.as_bytes())).map(|(_, i)| i.as_str())
    }
}

fn parse_assign(v: &Value) -> Result<Vec<(String, String)>, String> {
    if v.kind() != ValueKind::Array {
        return Err("cgi.assign: expected ( \".ext\" => \"/path/to/interpreter\", ... )".into());
    }
    let mut out = Vec::new();
    for (k, val) in v.iter() {
        let Some(k) = k else {
            return Err("cgi.assign: expected ( \".ext\" => \"/path/to/interpreter\", ... )".into());
        };
        let interp =
            val.as_str().ok_or_else(|| format!("cgi.assign: the value for {k:?} must be a string"))?;
        if !interp.is_empty() && !interp.starts_with('/') {
            // Scripts get no PATH from the server, so a bare name could never be found.
            return Err(format!(
                "cgi.assign: the interpreter for {k:?} must be an absolute path or \"\" (run the file itself), not {interp:?}"
            ));
        }
        out.push((k.to_owned(), interp.to_owned()));
    }
    Ok(out)
}

fn parse_docroots(v: &Value) -> Result<Vec<String>, String> {
    let list = v.to_str_list().map_err(|e| format!("cgi.x-sendfile-docroot: {e}"))?;
    let mut out = Vec::with_capacity(list.len());
    for d in list {
        if !d.starts_with('/') {
            return Err(format!("cgi.x-sendfile-docroot: paths must begin with '/'; invalid: {d:?}"));
        }
        let trimmed = d.trim_end_matches('/');
        out.push(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() });
    }
    Ok(out)
}

impl ModuleConfig for CgiConfig {
    const KEYS: &'static [Key] = &[
        Key::array("cgi.assign"),
        Key::boolean("cgi.execute-x-only"),
        Key::boolean("cgi.x-sendfile"),
        Key::any("cgi.x-sendfile-docroot"),
        Key::boolean("cgi.local-redir"),
        // lighttpd keys this module does not implement: accepted when they ask for nothing.
        Key::boolean("cgi.upgrade"),
        Key::any("cgi.limits"),
        Key::boolean("cgi.tempfile-accum"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.assign = Arc::new(parse_assign(v)?),
            1 => self.execute_x_only = v.to_bool()?,
            2 => self.x_sendfile = v.to_bool()?,
            3 => self.x_sendfile_docroot = Arc::new(parse_docroots(v)?),
            4 => self.local_redir = v.to_bool()?,
            5 if v.to_bool()? => {
                return Err("cgi.upgrade (WebSocket tunnels through CGI) is not supported".into());
            }
            6 if v.kind() != ValueKind::Array || !v.is_empty() => {
                return Err("cgi.limits is not supported yet; remove it".into())
            }
            // Request bodies go to the script through a pipe as they come: nothing to spill.
            7 => {
                v.to_bool()?;
            }
            _ => {}
        }
        Ok(())
    }
}
