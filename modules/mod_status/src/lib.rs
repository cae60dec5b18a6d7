//! mod_status: what the server is doing, as lighttpd's mod_status shows it, over every worker.
//!
//! Data in: at URI_CLEAN, a request whose decoded path equals `status.status-url`,
//! `status.config-url` or `status.statistics-url` as they apply to it (conditional blocks
//! decide who may see the pages: `$HTTP["remoteip"]`, or mod_auth listed before this module).
//! Figures come from the host: `server_stats` (totals summed over the workers), a connection
//! snapshot every worker answers from its own loop (`collect_connections`), the named counters
//! modules publish (`stat_counters`) and the module list (`modules`). About once a second
//! (TRIGGER) the module keeps the requests and bytes out of the last second, for lighttpd's
//! 5-second sliding averages.
//!
//! Data out: the status page claims the request and, in SUBREQUEST, waits for the snapshot,
//! then answers `200` with HTML, `?auto` text or `?json` (see [`page`]). The configuration and
//! statistics pages are answered at once in URI_CLEAN (`204` for statistics when no module
//! publishes a counter, as lighttpd).

pub mod page;

use featherd_mod_api::{
    ConnList, Handler, Hooks, Key, Module, ModuleConfig, Request, Value, CONN_STATE_COUNT,
};
use page::Figures;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Mutex;

/// The module's keys, merged per request.
#[derive(Clone, Debug)]
pub struct StatusConfig {
    pub status_url: Option<String>,
    pub config_url: Option<String>,
    pub statistics_url: Option<String>,
    /// `status.enable-sort` (default enabled, as lighttpd).
    pub sort: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig { status_url: None, config_url: None, statistics_url: None, sort: true }
    }
}

/// An empty URL is lighttpd's "unset".
fn url(v: &Value) -> Result<Option<String>, String> {
    let s = v.to_str()?;
    if s.trim().is_empty() {
        return Ok(None);
    }
    if !s.starts_with('/') {
        return Err(format!("\"{s}\" is not a URL path (it must start with '/')"));
    }
    Ok(Some(s.to_owned()))
}

impl ModuleConfig for StatusConfig {
    const KEYS: &'static [Key] = &[
        Key::string("status.status-url"),
        Key::string("status.config-url"),
        Key::string("status.statistics-url"),
        Key::boolean("status.enable-sort"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.status_url = url(v)?,
            1 => self.config_url = url(v)?,
            2 => self.statistics_url = url(v)?,
            _ => self.sort = v.to_bool()?,
        }
        Ok(())
    }
}

/// Requests and bytes out of each of the last five seconds.
#[derive(Default)]
struct Window {
    last: Option<(u64, u64)>,
    requests: [u64; 5],
    traffic: [u64; 5],
    next: usize,
}

impl Window {
    fn tick(&mut self, requests: u64, bytes_out: u64) {
        if let Some((r, b)) = self.last {
            self.requests[self.next] = requests.saturating_sub(r);
            self.traffic[self.next] = bytes_out.saturating_sub(b);
            self.next = (self.next + 1) % 5;
        }
        self.last = Some((requests, bytes_out));
    }
    fn averages(&self) -> (f64, f64) {
        (self.requests.iter().sum::<u64>() as f64 / 5.0, self.traffic.iter().sum::<u64>() as f64 / 5.0)
    }
}

pub struct Status {
    window: Mutex<Window>,
}

/// Per request: the snapshot being collected for the status page.
#[derive(Default)]
pub struct StatusState {
    snapshot: Option<Rc<RefCell<Option<ConnList>>>>,
}

/// Records asked for from each worker for the HTML and JSON pages (the counts always cover
/// every connection).
const MAX_LISTED: u32 = 50_000;

/// Which answer of the status URL a query string asks for (lighttpd's rules: exactly `auto`,
/// or starting with `json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Html,
    Auto,
    Json,
}

pub fn format_of(query: Option<&[u8]>) -> Format {
    match query {
        Some(b"auto") => Format::Auto,
        Some(q) if q.starts_with(b"json") => Format::Json,
        _ => Format::Html,
    }
}

/// `?refresh=N` (N > 0, at most a week), as lighttpd reads it: the digits after `refresh=`.
pub fn refresh_of(query: Option<&[u8]>) -> Option<u64> {
    let q = query?.strip_prefix(b"refresh=")?;
    let digits: Vec<u8> = q.iter().copied().take_while(u8::is_ascii_digit).collect();
    if digits.is_empty() {
        return None;
    }
    // Only digits: a parse error is an overflow.
    let n: u64 = std::str::from_utf8(&digits).ok()?.parse().unwrap_or(u64::MAX);
    (n > 0).then_some(n.min(604_800))
}

fn server_tag(req: &Request<Status>) -> String {
    match req.server_tag() {
        Some(t) => String::from_utf8_lossy(t).into_owned(),
        None => format!("featherd/{}", featherd_mod_api::server_version()),
    }
}

impl Status {
    fn status_page(&self, req: &mut Request<Self>, conns: ConnList) -> Handler {
        let Some(stats) = featherd_mod_api::server_stats() else {
            req.set_status(500);
            return Handler::Finished;
        };
        let (requests_5s, traffic_5s) = self.window.lock().map(|w| w.averages()).unwrap_or((0.0, 0.0));
        let authority = req.header("Host").unwrap_or(req.host()).to_vec();
        let f = Figures { tag: server_tag(req), authority, stats, requests_5s, traffic_5s, conns };
        let query = req.query().map(<[u8]>::to_vec);
        let (body, ctype) = match format_of(query.as_deref()) {
            Format::Auto => (page::auto(&f), "text/plain"),
            Format::Json => match query.as_deref().and_then(page::jsonp_name) {
                Some(name) => (page::json(&f, Some(name)), "application/javascript"),
                None => (page::json(&f, None), "application/json"),
            },
            Format::Html => {
                let sort = req.config().sort;
                (page::html(&f, refresh_of(query.as_deref()), sort), "text/html; charset=utf-8")
            }
        };
        req.set_status(200);
        req.set_response_header("Content-Type", ctype);
        req.append_body(body.as_bytes());
        Handler::Finished
    }

    fn config_page(&self, req: &mut Request<Self>) -> Handler {
        let info = page::ServerInfo {
            tag: server_tag(req),
            version: featherd_mod_api::server_version(),
            abi: format!("{}.{}", featherd_mod_api::abi::ABI_MAJOR, host_abi_minor()),
            features: featherd_mod_api::server_features().unwrap_or_default(),
            stats: featherd_mod_api::server_stats().unwrap_or_default(),
        };
        let body = page::config_html(&info, &featherd_mod_api::modules());
        req.set_status(200);
        req.set_response_header("Content-Type", "text/html; charset=utf-8");
        req.append_body(body.as_bytes());
        Handler::Finished
    }

    fn statistics_page(&self, req: &mut Request<Self>) -> Handler {
        req.set_response_header("Content-Type", "text/plain");
        match page::statistics(&featherd_mod_api::stat_counters()) {
            Some(text) => {
                req.set_status(200);
                req.append_body(text.as_bytes());
            }
            None => req.set_status(204),
        }
        Handler::Finished
    }
}

/// The ABI minor the server speaks (the module may be older or newer).
fn host_abi_minor() -> u32 {
    featherd_mod_api::host_abi_minor().unwrap_or(featherd_mod_api::abi::ABI_MINOR)
}

impl Module for Status {
    const NAME: &'static str = "mod_status";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "server status, configuration and statistics pages";
    const HOOKS: Hooks = Hooks::URI_CLEAN.union(Hooks::SUBREQUEST).union(Hooks::TRIGGER);
    type Config = StatusConfig;
    type RequestState = StatusState;
    type ConnectionState = ();

    fn init() -> Self {
        // The first second's requests count from here, not from the first trigger.
        let last = featherd_mod_api::server_stats().map(|s| (s.requests, s.bytes_out));
        Status { window: Mutex::new(Window { last, ..Window::default() }) }
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        if req.claimed_by_other() {
            return Handler::GoOn;
        }
        let conf = req.config();
        let path = req.path();
        let is = |u: &Option<String>| u.as_deref().is_some_and(|u| u.as_bytes() == path);
        if is(&conf.status_url) {
            req.state().snapshot = None;
            req.claim();
            Handler::GoOn
        } else if is(&conf.config_url) {
            self.config_page(req)
        } else if is(&conf.statistics_url) {
            self.statistics_page(req)
        } else {
            Handler::GoOn
        }
    }

    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        let cell = match &req.state().snapshot {
            Some(c) => c.clone(),
            None => {
                let cell: Rc<RefCell<Option<ConnList>>> = Rc::new(RefCell::new(None));
                // `?auto` needs the counts only.
                let max = if format_of(req.query()) == Format::Auto { 0 } else { MAX_LISTED };
                let slot = cell.clone();
                let id = req.id();
                let asked = featherd_mod_api::collect_connections(max, move |list| {
                    *slot.borrow_mut() = Some(list);
                    id.wake();
                });
                if let Err(e) = asked {
                    log::error!("cannot list the connections: {e}");
                    return self.status_page(
                        req,
                        ConnList { conns: Vec::new(), counts: [0; CONN_STATE_COUNT as usize] },
                    );
                }
                req.state().snapshot = Some(cell);
                return Handler::WaitForEvent;
            }
        };
        let list = cell.borrow_mut().take();
        match list {
            Some(list) => self.status_page(req, list),
            None => Handler::WaitForEvent,
        }
    }

    fn trigger(&self) {
        if let Some(s) = featherd_mod_api::server_stats() {
            if let Ok(mut w) = self.window.lock() {
                w.tick(s.requests, s.bytes_out);
            }
        }
    }
}

featherd_mod_api::export_module!(Status);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        assert_eq!(format_of(None), Format::Html);
        assert_eq!(format_of(Some(b"auto")), Format::Auto);
        assert_eq!(format_of(Some(b"autox")), Format::Html);
        assert_eq!(format_of(Some(b"json")), Format::Json);
        assert_eq!(format_of(Some(b"jsonp=f")), Format::Json);
        assert_eq!(refresh_of(Some(b"refresh=5")), Some(5));
        assert_eq!(refresh_of(Some(b"refresh=10x")), Some(10));
        assert_eq!(refresh_of(Some(b"refresh=0")), None);
        assert_eq!(refresh_of(Some(b"refresh=")), None);
        assert_eq!(refresh_of(Some(b"refresh=99999999999999999999999")), Some(604_800));
        assert_eq!(refresh_of(Some(b"x=1")), None);
    }

    #[test]
    fn five_second_window() {
        let mut w = Window::default();
        w.tick(10, 1000);
        assert_eq!(w.averages(), (0.0, 0.0));
        w.tick(20, 2000);
        w.tick(25, 2500);
        assert_eq!(w.averages(), (3.0, 300.0));
        for _ in 0..5 {
            w.tick(25, 2500);
        }
        assert_eq!(w.averages(), (0.0, 0.0));
    }
}
