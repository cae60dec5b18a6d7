//! The hook logic every `*.server` module shares (mod_fastcgi, mod_scgi): which requests a
//! mount takes and when it claims them, lighttpd's way.
//!
//! * `uri_clean`: a mount whose first host has `check-local = "disable"` claims at once (the
//!   backend decides what exists); an authorizer mount is asked right here and the request
//!   goes on (or is answered with the authorizer's refusal).
//! * `subrequest_start`: a mount with `check-local` enabled claims once the core has found the
//!   file (a missing file was answered with 404 before).
//! * `subrequest`: the exchange runs until the response is complete.
//!
//! A module sets `type RequestState = GatewayState<ItsProtocol>` and forwards its hooks here.

use crate::backend::{balance_key, Exchange, Outcome, Protocol};
use crate::hosts::{self, Balance, Mode, Mount, MountKind, Mounts, ParseOptions};
use featherd_mod_api::{Handler, Module, Request, Value};
use std::sync::Arc;

/// The settings a `*.server` module has (`PREFIX.server`, `.balance`, `.map-extensions`,
/// `.debug`).
#[derive(Clone, Default)]
pub struct GatewayConf {
    pub mounts: Option<Arc<Mounts>>,
    pub balance: Balance,
    pub map_extensions: Vec<(String, String)>,
    pub debug: bool,
}

impl GatewayConf {
    pub fn set_server(&mut self, key: &str, v: &Value, opts: &ParseOptions) -> Result<(), String> {
        self.mounts = Some(hosts::parse_server(key, v, opts)?);
        Ok(())
    }
    pub fn set_balance(&mut self, v: &Value) -> Result<(), String> {
        self.balance = Balance::parse(v.to_str()?)?;
        Ok(())
    }
    pub fn set_map_extensions(&mut self, v: &Value) -> Result<(), String> {
        self.map_extensions = v.to_str_map()?;
        Ok(())
    }
    /// An integer level (lighttpd) or a boolean.
    pub fn set_debug(&mut self, v: &Value) -> Result<(), String> {
        self.debug = match (v.as_int(), v.as_bool()) {
            (Some(n), _) => n != 0,
            (None, Some(b)) => b,
            _ => return Err("expected an integer or \"enable\"/\"disable\"".into()),
        };
        Ok(())
    }
}

/// Per-request state of a gateway module.
pub struct GatewayState<P: Protocol> {
    /// Matched a check-local mount: claim in subrequest_start.
    pending: Option<Arc<Mount>>,
    /// An authorizer being asked in uri_clean.
    authorizing: bool,
    exchange: Option<Exchange<P>>,
}

impl<P: Protocol> Default for GatewayState<P> {
    fn default() -> Self {
        GatewayState { pending: None, authorizing: false, exchange: None }
    }
}

impl<P: Protocol> GatewayState<P> {
    /// The exchange, once the request is routed to a backend.
    pub fn exchange(&self) -> Option<&Exchange<P>> {
        self.exchange.as_ref()
    }
}

fn new_exchange<M: Module, P: Protocol>(
    req: &Request<M>,
    conf: &GatewayConf,
    mount: Arc<Mount>,
    proto: P,
) -> Exchange<P> {
    let key = balance_key(req, conf.balance);
    Exchange::new(mount, conf.balance, key, proto, conf.debug)
}

fn run<M, P>(req: &mut Request<M>) -> Outcome
where
    M: Module<RequestState = GatewayState<P>>,
    P: Protocol + 'static,
{
    let Some(mut ex) = req.state().exchange.take() else { return Outcome::Failed(500) };
    let o = ex.step(req);
    if o == Outcome::Wait {
        req.state().exchange = Some(ex);
    }
    o
}

/// `uri_clean`: route the request (see the module docs).
pub fn uri_clean<M, P>(req: &mut Request<M>, conf: &GatewayConf, proto: impl FnOnce() -> P) -> Handler
where
    M: Module<RequestState = GatewayState<P>>,
    P: Protocol + 'static,
{
    if req.state().authorizing {
        // Called again after WaitForEvent: the authorizer's answer may be in.
        let o = run(req);
        if o != Outcome::Wait {
            req.state().authorizing = false;
        }
        return o.handler(req);
    }
    // A restart (local redirect, rewrite) routes afresh.
    let st = req.state();
    st.pending = None;
    st.exchange = None;
    if req.claimed_by_other() {
        return Handler::GoOn;
    }
    let Some(mounts) = conf.mounts.as_ref() else { return Handler::GoOn };
    let Some(mount) = mounts.find(req.path(), &conf.map_extensions).cloned() else { return Handler::GoOn };
    let Some(first) = mount.hosts.first() else { return Handler::GoOn };
    if first.config.mode == Mode::Authorizer {
        let ex = new_exchange(req, conf, mount, proto());
        let st = req.state();
        st.exchange = Some(ex);
        st.authorizing = true;
        let o = run(req);
        if o != Outcome::Wait {
            req.state().authorizing = false;
        }
        return o.handler(req);
    }
    if first.config.check_local {
        req.state().pending = Some(mount);
        return Handler::GoOn;
    }
    if req.claim() {
        let ex = new_exchange(req, conf, mount, proto());
        req.state().exchange = Some(ex);
    }
    Handler::GoOn
}

/// `subrequest_start`: claim a check-local mount whose file exists.
pub fn subrequest_start<M, P>(req: &mut Request<M>, conf: &GatewayConf, proto: impl FnOnce() -> P) -> Handler
where
    M: Module<RequestState = GatewayState<P>>,
    P: Protocol + 'static,
{
    let mount = match req.state().pending.take() {
        Some(m) => m,
        None => {
            // "/x.php/more": the extension is at the end of the file the core found, with
            // the rest split off as PATH_INFO.
            if req.path_info().is_empty() {
                return Handler::GoOn;
            }
            let Some(mounts) = conf.mounts.as_ref() else { return Handler::GoOn };
            let found = mounts.find(req.physical_path(), &conf.map_extensions).cloned();
            match found {
                Some(m)
                    if m.kind == MountKind::Extension
                        && m.hosts
                            .first()
                            .is_some_and(|h| h.config.check_local && h.config.mode == Mode::Responder) =>
                {
                    m
                }
                _ => return Handler::GoOn,
            }
        }
    };
    if req.claimed_by_other() || !req.claim() {
        return Handler::GoOn;
    }
    let ex = new_exchange(req, conf, mount, proto());
    req.state().exchange = Some(ex);
    Handler::GoOn
}

/// `subrequest`: run the exchange.
pub fn subrequest<M, P>(req: &mut Request<M>) -> Handler
where
    M: Module<RequestState = GatewayState<P>>,
    P: Protocol + 'static,
{
    run(req).handler(req)
}

/// Every host of every config block (for [`crate::spawn::Spawner::new`]).
pub fn all_hosts<'a>(confs: impl Iterator<Item = &'a GatewayConf>) -> Vec<Arc<crate::hosts::Host>> {
    let mut v: Vec<Arc<crate::hosts::Host>> = Vec::new();
    for c in confs {
        for h in c.mounts.iter().flat_map(|m| m.hosts()) {
            if !v.iter().any(|x| Arc::ptr_eq(x, h)) {
                v.push(h.clone());
            }
        }
    }
    v
}
