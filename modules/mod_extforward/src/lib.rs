//! mod_extforward: the client's real address (and scheme) when featherd sits behind trusted
//! proxies or load balancers, as lighttpd 1.4's module of that name.
//!
//! Data in: `extforward.forwarder` (who is trusted), `extforward.headers` (which request
//! headers to read), `extforward.params` (what else of `Forwarded` to use) and
//! `extforward.hap-PROXY` (read a HAProxy PROXY protocol header at the start of a connection).
//! Data out:
//! * at `uri_raw`: when the connecting peer is a trusted proxy, the client's
//!   address from the first configured header present ([`headers`]: the rightmost address
//!   that is not a trusted proxy) becomes the request's remote address, and
//!   `X-Forwarded-Proto` or `proto=` its scheme (host core services of ABI 1.6: conditions
//!   are evaluated again, so `$HTTP["remoteip"]` blocks, the access log, backends' `REMOTE_ADDR`
//!   and every later module see the client). For this request only: the next request of a
//!   keep-alive connection starts from the peer's address again;
//! * for a connection on which `extforward.hap-PROXY` is enabled and whose peer is trusted:
//!   the PROXY header ([`proxy`]) is read before HTTP (a connection preface, ABI 1.6) and its
//!   source address is the connection's for all its requests; a malformed or missing header
//!   closes the connection without a response.

pub mod headers;
pub mod proxy;
pub mod trust;

use featherd_mod_api::{
    Configs, Connection, Handler, Hooks, Key, Module, ModuleConfig, Preface, Request, Value,
};
use std::sync::Arc;
use trust::Forwarders;

/// lighttpd's default when `extforward.headers` is not set (and the server-wide
/// `extforward.hap-PROXY` is off).
pub const DEFAULT_HEADERS: &[&str] = &["X-Forwarded-For", "Forwarded-For"];

/// Configuration, merged per request (and per connection for `hap-PROXY`).
#[derive(Clone, Debug, Default)]
pub struct ExtforwardConfig {
    /// Nothing is done without it.
    pub forwarder: Option<Arc<Forwarders>>,
    /// None or empty: the default headers.
    pub headers: Option<Vec<String>>,
    /// `extforward.params`: use `host=` / `remote_user=` of `Forwarded`.
    pub host: bool,
    pub remote_user: bool,
    pub hap_proxy: bool,
    pub ssl_client_verify: bool,
}

/// Log each configuration warning once (a configuration is applied again for requests
/// matching sibling blocks).
fn warn_once(msg: String) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if !seen.contains(&msg) {
        log::warn!("extforward.forwarder: {msg}");
        seen.push(msg);
    }
}

/// `extforward.params`: `( "host" => "enable", "remote_user" => 1 )`. `for` and `proto` are
/// always used (as in lighttpd); they may be listed as enabled.
fn parse_params(v: &Value) -> Result<(bool, bool), String> {
    let (mut host, mut user) = (false, false);
    if v.kind() != featherd_mod_api::ValueKind::Array {
        return Err("expected a list of \"param\" => \"enable\"".into());
    }
    for (k, val) in v.iter() {
        let Some(k) = k else { return Err("expected a list of \"param\" => \"enable\"".into()) };
        let on = val.as_bool().ok_or_else(|| {
            format!("extforward.params values must be one of: 0, 1, enable, disable; error for key: {k}")
        })?;
        match k {
            "host" => host = on,
            "remote_user" => user = on,
            "for" | "proto" if on => {}
            "for" | "proto" => return Err(format!("{k} is always used; it cannot be disabled")),
            _ => {
                return Err(format!(
                    "extforward.params keys must be one of: host, remote_user (for, proto), but not: {k}"
                ))
            }
        }
    }
    Ok((host, user))
}

impl ModuleConfig for ExtforwardConfig {
    const KEYS: &'static [Key] = &[
        Key::array("extforward.forwarder"),
        Key::any("extforward.headers"),
        Key::array("extforward.params"),
        Key::boolean("extforward.hap-PROXY"),
        Key::boolean("extforward.hap-PROXY-ssl-client-verify"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => {
                let list =
                    v.to_str_map().map_err(|_| "expected a list of \"IPaddr\" => \"trust\"".to_string())?;
                let (f, warnings) = Forwarders::parse(&list)?;
                warnings.into_iter().for_each(warn_once);
                self.forwarder = Some(Arc::new(f));
            }
            1 => {
                let names = v.to_str_list().map_err(|_| "expected a list of \"headername\"".to_string())?;
                if let Some(bad) = names
                    .iter()
                    .find(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_graphic() && b != b':'))
                {
                    return Err(format!("\"{bad}\" is not a header name"));
                }
                self.headers = Some(names);
            }
            2 => (self.host, self.remote_user) = parse_params(v)?,
            3 => self.hap_proxy = v.to_bool()?,
            _ => self.ssl_client_verify = v.to_bool()?,
        }
        Ok(())
    }
}

/// What a connection's PROXY header left for its requests.
#[derive(Debug, Default)]
pub struct ConnState {
    cert_verified: bool,
    env: Vec<(&'static str, Vec<u8>)>,
}

#[derive(Default)]
pub struct Extforward {
    /// Some block enables hap-PROXY: connections must be looked at.
    any_hap_proxy: bool,
    /// The default headers apply where `extforward.headers` is unset or empty (not when the
    /// global `extforward.hap-PROXY` is enabled, as lighttpd).
    default_headers: bool,
}

impl Extforward {
    /// The first configured header the request has, all its lines joined with ", ".
    fn forwarding_header(&self, req: &Request<Self>, cfg: &ExtforwardConfig) -> Option<(bool, Vec<u8>)> {
        let names: Vec<&str> = match &cfg.headers {
            Some(h) if !h.is_empty() => h.iter().map(String::as_str).collect(),
            _ if self.default_headers => DEFAULT_HEADERS.to_vec(),
            _ => return None,
        };
        for name in names {
            let mut joined: Option<Vec<u8>> = None;
            for (n, v) in req.headers() {
                if n.eq_ignore_ascii_case(name.as_bytes()) {
                    let j = joined.get_or_insert_with(Vec::new);
                    if !j.is_empty() {
                        j.extend_from_slice(b", ");
                    }
                    j.extend_from_slice(v);
                }
            }
            if let Some(j) = joined {
                return Some((name.eq_ignore_ascii_case("forwarded"), j));
            }
        }
        None
    }

    /// The connection-level environment of a PROXY v2 header, and the client certificate.
    fn connection_env(req: &mut Request<Self>, cfg: &ExtforwardConfig) {
        let (verified, env) = match req.connection_state() {
            Some(c) if c.cert_verified || !c.env.is_empty() => (c.cert_verified, c.env.clone()),
            _ => (false, Vec::new()),
        };
        for (name, value) in &env {
            if !value.contains(&0) {
                req.set_env(name, value);
            }
        }
        if cfg.ssl_client_verify {
            match env.iter().find(|(n, _)| *n == "SSL_CLIENT_S_DN_CN").filter(|_| verified) {
                Some((_, cn)) => {
                    req.set_env("SSL_CLIENT_VERIFY", b"SUCCESS");
                    req.set_env("REMOTE_USER", cn);
                    req.set_env("AUTH_TYPE", b"SSL_CLIENT_VERIFY");
                }
                None => req.set_env("SSL_CLIENT_VERIFY", b"NONE"),
            }
        }
    }

    fn bad_request(req: &mut Request<Self>, why: &dyn std::fmt::Display) -> Handler {
        log::error!("{why} (from {}): 400", String::from_utf8_lossy(req.remote_addr()));
        req.set_status(400);
        Handler::Finished
    }

    fn apply_forwarded(
        req: &mut Request<Self>,
        cfg: &ExtforwardConfig,
        fw: &Forwarders,
        value: &[u8],
    ) -> Handler {
        let parsed = headers::parse_forwarded(value).and_then(|g| {
            headers::forwarded_client(&g, |a| fw.is_trusted(a))
                .map(|c| c.map(|c| (c.addr.to_vec(), c.proto.map(<[u8]>::to_vec), c.host, c.remote_user)))
        });
        let (addr, proto, host, user) = match parsed {
            Ok(Some(c)) => c,
            Ok(None) => return Handler::GoOn,
            Err(e) => return Self::bad_request(req, &e),
        };
        if !req.set_remote_addr(&addr, 0) {
            // Not an address (a name, garbage): nothing of it is used.
            return Handler::GoOn;
        }
        log::debug!("using address: {}", String::from_utf8_lossy(&addr));
        if let Some(p) = proto {
            req.set_scheme(&p);
        }
        if cfg.host {
            if let Some(h) = host {
                if !req.set_host(&h) {
                    return Self::bad_request(req, &headers::BadForwarded::Value("host"));
                }
            }
        }
        if cfg.remote_user {
            if let Some(u) = user {
                if u.contains(&0) {
                    return Self::bad_request(req, &headers::BadForwarded::Value("remote_user"));
                }
                req.set_env("REMOTE_USER", &u);
            }
        }
        Handler::GoOn
    }
}

impl Module for Extforward {
    const NAME: &'static str = "mod_extforward";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str =
        "the client's address and scheme as trusted proxies report them (X-Forwarded-For, Forwarded, PROXY protocol)";
    const HOOKS: Hooks = Hooks::URI_RAW.union(Hooks::CONNECTION_ACCEPT).union(Hooks::CONNECTION_PREFACE);
    type Config = ExtforwardConfig;
    // No per-request state (no allocation per request): a request restarted by a rewrite runs
    // `uri_raw` again, and gets the same answer (its address is then the client's, which is
    // either untrusted, so nothing changes, or trusted, so the same walk is made again).
    type RequestState = ();
    type ConnectionState = ConnState;

    fn init() -> Self {
        Extforward::default()
    }

    fn set_defaults(&mut self, configs: &Configs<Self::Config>) -> Result<(), String> {
        self.any_hap_proxy = configs.all().iter().any(|c| c.hap_proxy);
        self.default_headers = !configs.global().hap_proxy;
        Ok(())
    }

    fn uri_raw(&self, req: &mut Request<Self>) -> Handler {
        let cfg = req.config();
        let Some(fw) = cfg.forwarder.clone() else { return Handler::GoOn };
        if self.any_hap_proxy {
            Self::connection_env(req, &cfg);
        }
        let Some((is_forwarded, value)) = self.forwarding_header(req, &cfg) else { return Handler::GoOn };
        if !fw.peer_trusted(req.remote_addr()) {
            log::debug!(
                "remote address {} is NOT a trusted proxy, skipping",
                String::from_utf8_lossy(req.remote_addr())
            );
            return Handler::GoOn;
        }
        if is_forwarded {
            return Self::apply_forwarded(req, &cfg, &fw, &value);
        }
        let Some(addr) = headers::xff_client(&value, |a| fw.is_trusted(a)).map(<[u8]>::to_vec) else {
            return Handler::GoOn;
        };
        if req.set_remote_addr(&addr, 0) {
            log::debug!("using address: {}", String::from_utf8_lossy(&addr));
            // Only a single value is honoured (lighttpd: a list is ignored).
            if let Some(p) = req.header("X-Forwarded-Proto").map(<[u8]>::to_vec) {
                req.set_scheme(&p);
            }
        }
        Handler::GoOn
    }

    fn connection_accept(&self, con: &mut Connection<Self>) -> Handler {
        if !self.any_hap_proxy {
            return Handler::GoOn;
        }
        let cfg = con.config();
        if !cfg.hap_proxy {
            return Handler::GoOn;
        }
        let Some(fw) = &cfg.forwarder else { return Handler::GoOn };
        if fw.peer_trusted(con.remote_addr()) {
            con.claim_preface();
        } else {
            log::debug!(
                "remote address {} is NOT a trusted proxy: no PROXY header expected",
                String::from_utf8_lossy(con.remote_addr())
            );
        }
        Handler::GoOn
    }

    fn connection_preface(&self, con: &mut Connection<Self>, data: &[u8]) -> Preface {
        match proxy::parse(data) {
            proxy::Parsed::NeedMore => Preface::NeedMore,
            proxy::Parsed::Invalid(why) => {
                log::error!(
                    "hap-PROXY from {}: invalid or unsupported header ({why}): connection closed",
                    String::from_utf8_lossy(con.remote_addr())
                );
                Preface::Reject
            }
            proxy::Parsed::Done { len, header } => {
                if let Some(src) = header.source {
                    con.set_remote_addr(&src.ip().to_string(), src.port());
                }
                if header.ssl {
                    con.set_scheme("https");
                }
                if header.cert_verified || !header.env.is_empty() {
                    let st = con.state();
                    st.cert_verified = header.cert_verified;
                    st.env = header.env;
                }
                Preface::Done(len)
            }
        }
    }
}

featherd_mod_api::export_module!(Extforward);
