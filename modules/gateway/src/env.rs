//! The CGI/1.1 environment (RFC 3875 section 4.1) for a request, as lighttpd builds it: the
//! same list goes to a CGI script's process environment, a FastCGI PARAMS stream and an SCGI
//! or uwsgi header.

use featherd_mod_api::{Module, Request};

/// Knobs that differ between gateways and their configurations.
#[derive(Clone, Debug, Default)]
pub struct EnvOptions {
    /// `SERVER_SOFTWARE`, e.g. "featherd/0.1.0".
    pub server_software: String,
    /// lighttpd's `fix-root-scriptname`: for a backend mounted at "/", put the whole path in
    /// PATH_INFO and leave SCRIPT_NAME empty.
    pub fix_root_scriptname: bool,
    /// lighttpd's `strip-request-uri`: remove this prefix from REQUEST_URI.
    pub strip_request_uri: Option<String>,
    /// lighttpd's `broken-scriptfilename`: SCRIPT_FILENAME includes PATH_INFO (what PHP's
    /// cgi.fix_pathinfo=1 expects from lighttpd).
    pub broken_scriptfilename: bool,
    /// For a prefix-mounted backend (`"/app" => ...` with check-local disabled): the mount
    /// point becomes SCRIPT_NAME and the rest PATH_INFO.
    pub mount_prefix: Option<String>,
}

/// One environment: (name, value) pairs in a stable order, names unique.
pub type Env = Vec<(Vec<u8>, Vec<u8>)>;

fn set(env: &mut Env, name: &[u8], value: &[u8]) {
    if let Some(e) = env.iter_mut().find(|(n, _)| n == name) {
        e.1 = value.to_vec();
    } else {
        env.push((name.to_vec(), value.to_vec()));
    }
}

/// `User-Agent` → `HTTP_USER_AGENT`.
pub fn header_var(name: &[u8]) -> Vec<u8> {
    let mut v = b"HTTP_".to_vec();
    v.extend(name.iter().map(|&c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { b'_' }));
    v
}

/// Split "addr:port" (IPv6 in brackets or not) into its parts.
fn split_host_port(s: &[u8]) -> (&[u8], &[u8]) {
    match s.iter().rposition(|&b| b == b':') {
        Some(i) => {
            let host = &s[..i];
            let host = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")).unwrap_or(host);
            (host, &s[i + 1..])
        }
        None => (s, b""),
    }
}

/// Build the environment for `req`.
pub fn build<M: Module>(req: &Request<M>, opts: &EnvOptions) -> Env {
    let mut env: Env = Vec::with_capacity(32 + req.headers().count());
    let path = req.path().to_vec();
    let path_info_core = req.path_info().to_vec();
    // SCRIPT_NAME / PATH_INFO: the core split PATH_INFO off a file; a prefix mount splits at
    // the mount point; a root mount may move everything to PATH_INFO.
    let (script_name, path_info): (Vec<u8>, Vec<u8>) = if let Some(prefix) = &opts.mount_prefix {
        let p = prefix.trim_end_matches('/').as_bytes();
        if path.starts_with(p) {
            (p.to_vec(), path[p.len()..].to_vec())
        } else {
            (path.clone(), Vec::new())
        }
    } else if !path_info_core.is_empty() && path.ends_with(&path_info_core) {
        (path[..path.len() - path_info_core.len()].to_vec(), path_info_core.clone())
    } else {
        (path.clone(), Vec::new())
    };
    let (script_name, path_info) = if opts.fix_root_scriptname && opts.mount_prefix.as_deref() == Some("/") {
        (Vec::new(), path.clone())
    } else {
        (script_name, path_info)
    };

    set(&mut env, b"SERVER_SOFTWARE", opts.server_software.as_bytes());
    let host = req.host().to_vec();
    let local = req.local_addr().to_vec();
    let (laddr, lport) = split_host_port(&local);
    set(&mut env, b"SERVER_NAME", if host.is_empty() { laddr } else { &host });
    set(&mut env, b"GATEWAY_INTERFACE", b"CGI/1.1");
    set(&mut env, b"SERVER_PROTOCOL", req.protocol());
    set(&mut env, b"SERVER_PORT", lport);
    set(&mut env, b"SERVER_ADDR", laddr);
    set(&mut env, b"REQUEST_METHOD", req.method());
    set(&mut env, b"REDIRECT_STATUS", b"200");
    let mut uri = req.target().to_vec();
    if let Some(strip) = &opts.strip_request_uri {
        let s = strip.trim_end_matches('/').as_bytes();
        if !s.is_empty() && uri.starts_with(s) {
            uri.drain(..s.len());
            if uri.first() != Some(&b'/') {
                uri.insert(0, b'/');
            }
        }
    }
    set(&mut env, b"REQUEST_URI", &uri);
    let docroot = req.docroot().to_vec();
    set(&mut env, b"DOCUMENT_ROOT", &docroot);
    set(&mut env, b"SCRIPT_NAME", &script_name);
    let mut filename = req.physical_path().to_vec();
    if opts.broken_scriptfilename {
        filename.extend_from_slice(&path_info);
    }
    set(&mut env, b"SCRIPT_FILENAME", &filename);
    if !path_info.is_empty() {
        set(&mut env, b"PATH_INFO", &path_info);
        let mut translated = docroot.clone();
        translated.extend_from_slice(&path_info);
        set(&mut env, b"PATH_TRANSLATED", &translated);
    }
    set(&mut env, b"QUERY_STRING", req.query().unwrap_or(b""));
    set(&mut env, b"REMOTE_ADDR", req.remote_addr());
    set(&mut env, b"REMOTE_PORT", req.remote_port().to_string().as_bytes());
    if req.scheme() == b"https" {
        set(&mut env, b"HTTPS", b"on");
    }
    set(&mut env, b"REQUEST_SCHEME", req.scheme());
    if let Some(len) = req.content_length() {
        set(&mut env, b"CONTENT_LENGTH", len.to_string().as_bytes());
    }
    for (name, value) in req.headers() {
        if name.eq_ignore_ascii_case(b"content-type") {
            set(&mut env, b"CONTENT_TYPE", value);
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        // httpoxy: a client-sent "Proxy:" header must never become HTTP_PROXY.
        if name.eq_ignore_ascii_case(b"proxy") {
            continue;
        }
        let var = header_var(name);
        // Repeated headers are joined, as a CGI variable holds one value.
        if let Some(e) = env.iter_mut().find(|(n, _)| *n == var) {
            e.1.extend_from_slice(b", ");
            e.1.extend_from_slice(value);
        } else {
            env.push((var, value.to_vec()));
        }
    }
    // What other modules put in the request's environment (mod_setenv, mod_auth's
    // REMOTE_USER/AUTH_TYPE) comes last and wins.
    for (n, v) in req.env_vars() {
        set(&mut env, n, v);
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        assert_eq!(header_var(b"User-Agent"), b"HTTP_USER_AGENT");
        assert_eq!(header_var(b"x-a.b"), b"HTTP_X_A_B");
        assert_eq!(split_host_port(b"127.0.0.1:8080"), (&b"127.0.0.1"[..], &b"8080"[..]));
        assert_eq!(split_host_port(b"[::1]:80"), (&b"::1"[..], &b"80"[..]));
    }
}
