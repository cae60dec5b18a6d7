//! mod_redirect: answer a request with a redirect to another URL, as lighttpd 1.4's
//! mod_redirect.
//!
//! Data in: `url.redirect` (a list of `"regex" => "replacement"`) and `url.redirect-code`,
//! merged per request over the matching conditional blocks; at `uri_clean`, the request
//! target (path and query, not decoded; after mod_rewrite, the rewritten one), the parts of
//! its URL and the groups of the regex condition enclosing the list (`%n`).
//!
//! Data out: for the first rule whose regex matches the target, the response: the status of
//! `url.redirect-code` (301 by default), a `Location` header with the expanded replacement
//! and an empty body. A rule with a blank replacement matches without redirecting and ends
//! the list. The substitutions are mod_rewrite's (crate `featherd-urlsubst`).

use featherd_mod_api::{Handler, Hooks, Key, Module, ModuleConfig, Request, Value};
use featherd_urlsubst::{process, rules_from_value, Outcome, Rule, Url};
use std::sync::Arc;

/// The statuses `url.redirect-code` accepts.
pub const REDIRECT_CODES: [u16; 5] = [301, 302, 303, 307, 308];

/// Configuration, merged per request.
#[derive(Clone, Debug, Default)]
pub struct RedirectConfig {
    /// The block the list was set in (for `%n`) and its rules.
    pub rules: Option<(u32, Vec<Arc<Rule>>)>,
    /// `url.redirect-code`; None means 301.
    pub code: Option<u16>,
}

impl ModuleConfig for RedirectConfig {
    const KEYS: &'static [Key] = &[Key::array("url.redirect"), Key::int("url.redirect-code")];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.rules = Some((v.block(), rules_from_value(v)?)),
            1 => {
                let c = v.to_int()?;
                match u16::try_from(c).ok().filter(|c| REDIRECT_CODES.contains(c)) {
                    Some(c) => self.code = Some(c),
                    None => {
                        return Err(format!("{c} is not a redirect status; use 301, 302, 303, 307 or 308"))
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct Redirect;

impl Module for Redirect {
    const NAME: &'static str = "mod_redirect";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "redirects requests by regex (url.redirect)";
    const HOOKS: Hooks = Hooks::URI_CLEAN;
    type Config = RedirectConfig;
    type RequestState = ();
    type ConnectionState = ();

    fn init() -> Self {
        Redirect
    }

    fn set_defaults(&mut self, configs: &featherd_mod_api::Configs<RedirectConfig>) -> Result<(), String> {
        if let Some((_, rules)) = &configs.global().rules {
            for r in rules.iter().filter(|r| r.template().uses_condition()) {
                log::warn!("rule {r:?} uses %n outside a regex condition: %n is always empty there");
            }
        }
        Ok(())
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let Some((block, rules)) = conf.rules.as_ref().filter(|(_, r)| !r.is_empty()) else {
            return Handler::GoOn;
        };
        // Only paths are redirected: not CONNECT's authority-form target.
        if !req.target().starts_with(b"/") {
            return Handler::GoOn;
        }
        let outcome = {
            let url = Url::of(req);
            process(rules.iter().map(|r| &**r), req.target(), &url, |n| req.capture(*block, n))
        };
        match outcome {
            Outcome::NoMatch | Outcome::Stop { .. } => Handler::GoOn,
            Outcome::Failed(e) => {
                log::error!("{e} while matching {}", String::from_utf8_lossy(req.target()));
                req.set_status(500);
                Handler::Finished
            }
            Outcome::Replace { rule, result } => {
                log::debug!(
                    "rule {:?}: {} redirected to {}",
                    rules.get(rule),
                    String::from_utf8_lossy(req.target()),
                    String::from_utf8_lossy(&result)
                );
                req.set_response_header("Location", &result);
                req.set_status(conf.code.unwrap_or(301));
                req.set_content_length(0);
                Handler::Finished
            }
        }
    }
}

featherd_mod_api::export_module!(Redirect);
