//! mod_setenv: add or replace request headers, response headers and the environment that
//! CGI, FastCGI and SCGI backends receive.
//!
//! Data in: the six `setenv.*` lists (`"name" => "value"`, merged per request over the
//! matching conditional blocks) and the request's headers and environment.
//! Data out, as lighttpd 1.4.46 and later:
//! * at URI_CLEAN, once per request (a rewritten request that restarts does not get them
//!   twice): the request headers (`add-request-header` joins a value to an existing header
//!   with ", ", `set-request-header` replaces it, and an empty value removes it), then the
//!   environment variables (`add-environment` joins with ", ", `set-environment` replaces),
//!   which the gateway modules put last in a backend's environment, after the standard CGI
//!   variables. Handlers run after URI_CLEAN, so backends, proxies and later hooks all see
//!   the changed headers;
//! * at RESPONSE_START, for every response (error pages and other modules' answers
//!   included): the response headers (`add-response-header` adds a header line even when one
//!   of the same name exists, `set-response-header` replaces, an empty value removes).

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value};

/// One list: (name, value) in configuration order.
pub type Pairs = Vec<(String, String)>;

/// Configuration, merged per request. Each key replaces the list of the enclosing block.
#[derive(Clone, Debug, Default)]
pub struct SetenvConfig {
    pub add_request_header: Pairs,
    pub set_request_header: Pairs,
    pub add_response_header: Pairs,
    pub set_response_header: Pairs,
    pub add_environment: Pairs,
    pub set_environment: Pairs,
}

impl SetenvConfig {
    fn touches_request(&self) -> bool {
        !(self.add_request_header.is_empty()
            && self.set_request_header.is_empty()
            && self.add_environment.is_empty()
            && self.set_environment.is_empty())
    }
}

/// RFC 9110 token characters (a field name).
fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn check_header(name: &str, value: &str) -> Result<(), String> {
    if !is_token(name) {
        return Err(format!("\"{name}\" is not a valid header name"));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(format!("the value of header \"{name}\" contains a line break or NUL"));
    }
    Ok(())
}

fn check_env(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(format!(
            "\"{name}\" is not a valid environment variable name (empty, or with '=' or NUL)"
        ));
    }
    if value.contains('\0') {
        return Err(format!("the value of \"{name}\" contains a NUL byte"));
    }
    Ok(())
}

impl ModuleConfig for SetenvConfig {
    const KEYS: &'static [Key] = &[
        Key::array("setenv.add-request-header"),
        Key::array("setenv.set-request-header"),
        Key::array("setenv.add-response-header"),
        Key::array("setenv.set-response-header"),
        Key::array("setenv.add-environment"),
        Key::array("setenv.set-environment"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        let pairs = v.to_str_map().map_err(|_| "expected a list of \"name\" => \"value\"".to_string())?;
        let is_env = key >= 4;
        for (n, val) in &pairs {
            if is_env {
                check_env(n, val)?;
            } else {
                check_header(n, val)?;
            }
        }
        let slot = match key {
            0 => &mut self.add_request_header,
            1 => &mut self.set_request_header,
            2 => &mut self.add_response_header,
            3 => &mut self.set_response_header,
            4 => &mut self.add_environment,
            _ => &mut self.set_environment,
        };
        *slot = pairs;
        Ok(())
    }
}

/// `existing, value` (lighttpd's list join), or `value` alone when nothing is there yet.
pub fn joined(existing: &[&[u8]], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in existing.iter().filter(|e| !e.is_empty()) {
        out.extend_from_slice(e);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(value);
    out
}

/// Per-request state: whether the request side was applied already.
#[derive(Debug, Default)]
pub struct Applied(bool);

/// The module; it keeps no state of its own.
#[derive(Default)]
pub struct Setenv;

impl Setenv {
    fn request_side(req: &mut Request<Self>, conf: &SetenvConfig) {
        for (name, value) in &conf.add_request_header {
            if value.is_empty() {
                continue;
            }
            let v = {
                let existing: Vec<&[u8]> = req
                    .headers()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                    .map(|(_, v)| v)
                    .collect();
                joined(&existing, value.as_bytes())
            };
            req.set_header(name, &v);
        }
        for (name, value) in &conf.set_request_header {
            if value.is_empty() {
                req.remove_header(name);
            } else {
                req.set_header(name, value.as_bytes());
            }
        }
        for (name, value) in &conf.add_environment {
            let v = match req.env(name) {
                Some(e) if value.is_empty() => e.to_vec(),
                Some(e) => joined(&[e], value.as_bytes()),
                None => value.as_bytes().to_vec(),
            };
            req.set_env(name, &v);
        }
        for (name, value) in &conf.set_environment {
            req.set_env(name, value.as_bytes());
        }
    }
}

impl Module for Setenv {
    const NAME: &'static str = "mod_setenv";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "adds or replaces request and response headers and the backend environment";
    const HOOKS: Hooks = Hooks::URI_CLEAN.union(Hooks::RESPONSE_START);
    type Config = SetenvConfig;
    type RequestState = Applied;
    type ConnectionState = ();

    fn init() -> Self {
        Setenv
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        if !conf.touches_request() {
            return Handler::GoOn;
        }
        let state = req.state();
        if state.0 {
            return Handler::GoOn;
        }
        state.0 = true;
        Self::request_side(req, &conf);
        Handler::GoOn
    }

    fn response_start(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        for (name, value) in &conf.add_response_header {
            if !value.is_empty() {
                req.append_response_header(name, value);
            }
        }
        for (name, value) in &conf.set_response_header {
            if value.is_empty() {
                req.remove_response_header(name);
            } else {
                req.set_response_header(name, value);
            }
        }
        Handler::GoOn
    }
}

featherd_mod_api::export_module!(Setenv);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_and_values() {
        assert!(check_header("X-Frame-Options", "DENY").is_ok());
        assert!(check_header("X-Empty", "").is_ok());
        assert!(check_header("x_y.z~1", "a, b").is_ok());
        assert!(check_header("", "v").unwrap_err().contains("not a valid header name"));
        assert!(check_header("Bad Name", "v").is_err());
        assert!(check_header("Bad:Name", "v").is_err());
        assert!(check_header("X", "a\r\nInjected: yes").unwrap_err().contains("line break"));
        assert!(check_header("X", "a\nb").is_err());
    }

    #[test]
    fn env_names_and_values() {
        assert!(check_env("APP_ENV", "production").is_ok());
        assert!(check_env("lower.case-ok", "").is_ok());
        assert!(check_env("", "v").is_err());
        assert!(check_env("A=B", "v").is_err());
        assert!(check_env("A", "x\0y").is_err());
    }

    #[test]
    fn join_as_lighttpd() {
        assert_eq!(joined(&[], b"one"), b"one");
        assert_eq!(joined(&[b"two"], b"one"), b"two, one");
        assert_eq!(joined(&[b"a", b"b"], b"c"), b"a, b, c");
        assert_eq!(joined(&[b""], b"c"), b"c");
    }
}
