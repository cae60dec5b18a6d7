//! The CGI/1.1 environment (RFC 3875 section 4.1) for a request, as lighttpd builds it: the
//! same list goes to a CGI script's process environment, a FastCGI PARAMS stream and an SCGI
//! or uwsgi header.

use featherd_mod_api::{Module, Request};

/// Knobs that differ between gateways and their configurations.
#[derive(Clone, Debug, Default)]
pub struct EnvOptions<'a> {
    /// `SERVER_SOFTWARE`, e.g. "featherd/0.1.0".
    pub server_software: &'a str,
    /// lighttpd's `fix-root-scriptname`: for a backend mounted at "/", put the whole path in
    /// PATH_INFO and leave SCRIPT_NAME empty.
    pub fix_root_scriptname: bool,
    /// lighttpd's `strip-request-uri`: remove this prefix from REQUEST_URI.
    pub strip_request_uri: Option<&'a str>,
    /// lighttpd's `broken-scriptfilename`: SCRIPT_FILENAME includes PATH_INFO (what PHP's
    /// cgi.fix_pathinfo=1 expects from lighttpd).
    pub broken_scriptfilename: bool,
    /// For a prefix-mounted backend (`"/app" => ...` with check-local disabled): the mount
    /// point becomes SCRIPT_NAME and the rest PATH_INFO.
    pub mount_prefix: Option<&'a str>,
}

/// One environment: (name, value) pairs in a stable order, names unique. All bytes live in one
/// buffer (a request's environment is built with a handful of allocations, not two per
/// variable); a replaced value stays behind as garbage until the environment is dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    buf: Vec<u8>,
    vars: Vec<Var>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Var {
    name: (u32, u32),
    value: (u32, u32),
}

impl Env {
    pub fn with_capacity(vars: usize, bytes: usize) -> Env {
        Env { buf: Vec::with_capacity(bytes), vars: Vec::with_capacity(vars) }
    }

    /// An empty environment with at least this room: the one this thread gave back with
    /// [`Env::recycle`] (a gateway builds one per request), or a new one.
    pub fn reuse(vars: usize, bytes: usize) -> Env {
        let mut e = SPARE.take().unwrap_or_default();
        e.buf.clear();
        e.vars.clear();
        e.buf.reserve(bytes);
        e.vars.reserve(vars);
        e
    }

    /// Keep this environment's storage for the next [`Env::reuse`] on this thread.
    pub fn recycle(self) {
        if self.buf.capacity() <= 64 * 1024 {
            SPARE.set(Some(self));
        }
    }

    /// [`Env::join`] for a name known not to be among the first `from` variables.
    fn join_from(&mut self, from: usize, name: &[u8], sep: &[u8], value: &[u8]) {
        match self.vars[from..].iter().position(|v| self.span(v.name) == name) {
            Some(i) => {
                let i = from + i;
                let old = self.vars[i].value;
                let at = self.buf.len();
                self.buf.extend_from_within(old.0 as usize..(old.0 + old.1) as usize);
                self.buf.extend_from_slice(sep);
                self.buf.extend_from_slice(value);
                self.vars[i].value = (at as u32, (self.buf.len() - at) as u32);
            }
            None => self.push_new(name, value),
        }
    }

    fn span(&self, (at, len): (u32, u32)) -> &[u8] {
        &self.buf[at as usize..(at + len) as usize]
    }

    fn store(&mut self, data: &[u8]) -> (u32, u32) {
        let at = self.buf.len() as u32;
        self.buf.extend_from_slice(data);
        (at, data.len() as u32)
    }

    fn find(&self, name: &[u8]) -> Option<usize> {
        self.vars.iter().position(|v| self.span(v.name) == name)
    }

    pub fn len(&self) -> usize {
        self.vars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The pairs in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.vars.iter().map(|v| (self.span(v.name), self.span(v.value)))
    }

    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.find(name).map(|i| self.span(self.vars[i].value))
    }

    /// Set `name` (replacing its value in place, or appending it).
    pub fn set(&mut self, name: &[u8], value: &[u8]) {
        match self.find(name) {
            Some(i) => self.vars[i].value = self.store(value),
            None => self.push_new(name, value),
        }
    }

    /// Append `value` to `name`'s value after `sep`, or set it.
    pub fn join(&mut self, name: &[u8], sep: &[u8], value: &[u8]) {
        let Some(i) = self.find(name) else { return self.push_new(name, value) };
        let old = self.vars[i].value;
        let at = self.buf.len();
        self.buf.extend_from_within(old.0 as usize..(old.0 + old.1) as usize);
        self.buf.extend_from_slice(sep);
        self.buf.extend_from_slice(value);
        self.vars[i].value = (at as u32, (self.buf.len() - at) as u32);
    }

    /// Append a variable known not to be set yet (the caller's promise; no search).
    fn push_new(&mut self, name: &[u8], value: &[u8]) {
        let name = self.store(name);
        let value = self.store(value);
        self.vars.push(Var { name, value });
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for Env {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(it: I) -> Env {
        let mut e = Env::default();
        for (n, v) in it {
            e.set(n.as_ref(), v.as_ref());
        }
        e
    }
}

thread_local! {
    static SPARE: std::cell::Cell<Option<Env>> = const { std::cell::Cell::new(None) };
}

/// `User-Agent` → `HTTP_USER_AGENT`.
pub fn header_var(name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 5);
    header_var_into(name, &mut v);
    v
}

fn header_var_into(name: &[u8], v: &mut Vec<u8>) {
    v.extend_from_slice(b"HTTP_");
    v.extend(name.iter().map(|&c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { b'_' }));
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
    let mut env = Env::reuse(32 + req.headers().count(), 1024);
    let path = req.path();
    let path_info_core = req.path_info();
    // SCRIPT_NAME / PATH_INFO: the core split PATH_INFO off a file; a prefix mount splits at
    // the mount point; a root mount may move everything to PATH_INFO.
    let (script_name, path_info): (&[u8], &[u8]) = if let Some(prefix) = &opts.mount_prefix {
        let p = prefix.trim_end_matches('/').as_bytes();
        if path.starts_with(p) {
            (p, &path[p.len()..])
        } else {
            (path, b"")
        }
    } else if !path_info_core.is_empty() && path.ends_with(path_info_core) {
        (&path[..path.len() - path_info_core.len()], path_info_core)
    } else {
        (path, b"")
    };
    let (script_name, path_info) = if opts.fix_root_scriptname && opts.mount_prefix == Some("/") {
        (&b""[..], path)
    } else {
        (script_name, path_info)
    };

    // The fixed variables are distinct names: appended without a search.
    env.push_new(b"SERVER_SOFTWARE", opts.server_software.as_bytes());
    let host = req.host();
    let (laddr, lport) = split_host_port(req.local_addr());
    env.push_new(b"SERVER_NAME", if host.is_empty() { laddr } else { host });
    env.push_new(b"GATEWAY_INTERFACE", b"CGI/1.1");
    env.push_new(b"SERVER_PROTOCOL", req.protocol());
    env.push_new(b"SERVER_PORT", lport);
    env.push_new(b"SERVER_ADDR", laddr);
    env.push_new(b"REQUEST_METHOD", req.method());
    env.push_new(b"REDIRECT_STATUS", b"200");
    // As lighttpd: REQUEST_URI is what the client asked for; after mod_rewrite (or a local
    // redirect) changed the target, REDIRECT_URI is the target the request ended up with.
    let orig = req.target_orig();
    if orig != req.target() {
        env.push_new(b"REDIRECT_URI", req.target());
    }
    let mut uri = orig;
    if let Some(strip) = &opts.strip_request_uri {
        let s = strip.trim_end_matches('/').as_bytes();
        if !s.is_empty() && uri.starts_with(s) {
            uri = &uri[s.len()..];
        }
    }
    if uri.first() == Some(&b'/') || uri.len() == orig.len() {
        env.push_new(b"REQUEST_URI", uri);
    } else {
        let mut u = Vec::with_capacity(uri.len() + 1);
        u.push(b'/');
        u.extend_from_slice(uri);
        env.push_new(b"REQUEST_URI", &u);
    }
    let docroot = req.docroot();
    env.push_new(b"DOCUMENT_ROOT", docroot);
    env.push_new(b"SCRIPT_NAME", script_name);
    if opts.broken_scriptfilename && !path_info.is_empty() {
        let mut filename = req.physical_path().to_vec();
        filename.extend_from_slice(path_info);
        env.push_new(b"SCRIPT_FILENAME", &filename);
    } else {
        env.push_new(b"SCRIPT_FILENAME", req.physical_path());
    }
    if !path_info.is_empty() {
        env.push_new(b"PATH_INFO", path_info);
        let mut translated = docroot.to_vec();
        translated.extend_from_slice(path_info);
        env.push_new(b"PATH_TRANSLATED", &translated);
    }
    env.push_new(b"QUERY_STRING", req.query().unwrap_or(b""));
    env.push_new(b"REMOTE_ADDR", req.remote_addr());
    let mut num = itoa::Buffer::new();
    env.push_new(b"REMOTE_PORT", num.format(req.remote_port()).as_bytes());
    if req.scheme() == b"https" {
        env.push_new(b"HTTPS", b"on");
    }
    env.push_new(b"REQUEST_SCHEME", req.scheme());
    if let Some(len) = req.content_length() {
        env.push_new(b"CONTENT_LENGTH", num.format(len).as_bytes());
    }
    let mut var = Vec::with_capacity(64);
    // Header variables (HTTP_*) can only meet each other: a repeated header is looked for
    // among them, not among the fixed variables above.
    let http_from = env.len();
    for (name, value) in req.headers() {
        if name.eq_ignore_ascii_case(b"content-type") {
            env.set(b"CONTENT_TYPE", value);
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            continue;
        }
        // httpoxy: a client-sent "Proxy:" header must never become HTTP_PROXY.
        if name.eq_ignore_ascii_case(b"proxy") {
            continue;
        }
        var.clear();
        header_var_into(name, &mut var);
        // Repeated headers are joined, as a CGI variable holds one value.
        env.join_from(http_from, &var, b", ", value);
    }
    // What other modules put in the request's environment (mod_setenv, mod_auth's
    // REMOTE_USER/AUTH_TYPE) comes last and wins.
    for (n, v) in req.env_vars() {
        env.set(n, v);
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

    #[test]
    fn env_set_join_get() {
        let mut e = Env::default();
        e.set(b"A", b"1");
        e.set(b"B", b"2");
        e.set(b"A", b"3");
        e.join(b"B", b", ", b"4");
        e.join(b"C", b", ", b"5");
        let v: Vec<_> = e.iter().collect();
        assert_eq!(v, vec![(&b"A"[..], &b"3"[..]), (b"B", b"2, 4"), (b"C", b"5")]);
        assert_eq!(e.get(b"B"), Some(&b"2, 4"[..]));
        assert_eq!(e.len(), 3);
    }
}
