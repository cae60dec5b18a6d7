//! Conditions of `$FIELD["..."] op "pattern"` blocks and how they match.

use super::Location;
use std::fmt;
use std::net::IpAddr;

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CondField {
    /// `$HTTP["host"]`
    Host,
    /// `$HTTP["url"]` (the path, without query string)
    Url,
    /// `$HTTP["querystring"]`
    QueryString,
    /// `$HTTP["remoteip"]` (also spelled `remote-ip`)
    RemoteIp,
    /// `$HTTP["scheme"]`
    Scheme,
    /// `$HTTP["request-method"]`
    RequestMethod,
    /// `$HTTP["useragent"]` (also `user-agent`)
    UserAgent,
    /// `$HTTP["referer"]`
    Referer,
    /// `$HTTP["cookie"]`
    Cookie,
    /// `$HTTP["language"]` (Accept-Language)
    Language,
    /// `$REQUEST_HEADER["Name"]`
    RequestHeader(String),
    /// `$SERVER["socket"]`: the listening socket the request came in on.
    ServerSocket,
    /// `$PHYSICAL["path"]`
    PhysicalPath,
    /// `$PHYSICAL["existing-path"]`
    PhysicalExistingPath,
}

impl CondField {
    /// Maps `$SCOPE["name"]` to a field; `None` if lighttpd has no such field.
    pub fn from_parts(scope: &str, name: &str) -> Option<CondField> {
        Some(match (scope, name) {
            ("HTTP", "host") => CondField::Host,
            ("HTTP", "url") => CondField::Url,
            ("HTTP", "querystring") => CondField::QueryString,
            ("HTTP", "remoteip" | "remote-ip") => CondField::RemoteIp,
            ("HTTP", "scheme") => CondField::Scheme,
            ("HTTP", "request-method") => CondField::RequestMethod,
            ("HTTP", "useragent" | "user-agent") => CondField::UserAgent,
            ("HTTP", "referer") => CondField::Referer,
            ("HTTP", "cookie") => CondField::Cookie,
            ("HTTP", "language") => CondField::Language,
            ("REQUEST_HEADER", h) if !h.is_empty() => CondField::RequestHeader(h.to_string()),
            ("SERVER", "socket") => CondField::ServerSocket,
            ("PHYSICAL", "path") => CondField::PhysicalPath,
            ("PHYSICAL", "existing-path") => CondField::PhysicalExistingPath,
            _ => return None,
        })
    }

    fn parts(&self) -> (&'static str, &str) {
        match self {
            CondField::Host => ("HTTP", "host"),
            CondField::Url => ("HTTP", "url"),
            CondField::QueryString => ("HTTP", "querystring"),
            CondField::RemoteIp => ("HTTP", "remoteip"),
            CondField::Scheme => ("HTTP", "scheme"),
            CondField::RequestMethod => ("HTTP", "request-method"),
            CondField::UserAgent => ("HTTP", "useragent"),
            CondField::Referer => ("HTTP", "referer"),
            CondField::Cookie => ("HTTP", "cookie"),
            CondField::Language => ("HTTP", "language"),
            CondField::RequestHeader(h) => ("REQUEST_HEADER", h),
            CondField::ServerSocket => ("SERVER", "socket"),
            CondField::PhysicalPath => ("PHYSICAL", "path"),
            CondField::PhysicalExistingPath => ("PHYSICAL", "existing-path"),
        }
    }
}

impl fmt::Display for CondField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scope, name) = self.parts();
        write!(f, "${scope}[{}]", quote(name))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CondOp {
    Eq,
    Ne,
    Match,
    NotMatch,
    Prefix,
    Suffix,
}

impl CondOp {
    pub fn as_str(self) -> &'static str {
        match self {
            CondOp::Eq => "==",
            CondOp::Ne => "!=",
            CondOp::Match => "=~",
            CondOp::NotMatch => "!~",
            CondOp::Prefix => "=^",
            CondOp::Suffix => "=$",
        }
    }

    /// True for `!=` and `!~`, whose result is the negated comparison.
    pub fn negated(self) -> bool {
        matches!(self, CondOp::Ne | CondOp::NotMatch)
    }
}

impl fmt::Display for CondOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compiled form of a condition's pattern.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// `==`, `!=`, `=^`, `=$` on a string.
    Literal,
    /// `=~`, `!~` that the `regex` crate handles (linear time).
    Regex(Box<regex::Regex>),
    /// `=~`, `!~` needing look-around or back-references.
    Fancy(Box<fancy_regex::Regex>),
    /// `==`, `!=` on `$HTTP["remoteip"]`: an address or network.
    Cidr { net: IpAddr, prefix: u8 },
}

#[derive(Debug, Clone)]
pub struct Condition {
    pub field: CondField,
    pub op: CondOp,
    pub pattern: String,
    pub matcher: Matcher,
    pub loc: Location,
    /// The condition as written, normalised, e.g. `$HTTP["host"] == "example.org"`.
    pub text: String,
}

/// Captured groups of a successful regex match, as byte spans of `subject`.
pub(crate) struct Captured {
    pub subject: String,
    pub spans: Vec<Option<(usize, usize)>>,
}

impl Condition {
    pub(crate) fn new(
        field: CondField,
        op: CondOp,
        pattern: String,
        loc: Location,
    ) -> Result<Condition, String> {
        let matcher = match (op, &field) {
            (CondOp::Eq | CondOp::Ne, CondField::RemoteIp) => {
                let (net, prefix) = parse_cidr(&pattern)
                    .ok_or_else(|| format!("invalid IP address or CIDR network {}", quote(&pattern)))?;
                Matcher::Cidr { net, prefix }
            }
            (CondOp::Prefix | CondOp::Suffix, CondField::RemoteIp) => {
                return Err(format!(
                    "operator {op} cannot be used with $HTTP[\"remoteip\"] (use ==, !=, =~ or !~)"
                ))
            }
            (CondOp::Match | CondOp::NotMatch, _) => compile_regex(&pattern)?,
            _ => Matcher::Literal,
        };
        let text = format!("{field} {op} {}", quote(&pattern));
        Ok(Condition { field, op, pattern, matcher, loc, text })
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.matcher, Matcher::Regex(_) | Matcher::Fancy(_))
    }

    /// Matches a string subject, ignoring captures. The result already
    /// accounts for negated operators.
    pub fn matches_str(&self, subject: &str) -> bool {
        let hit = match &self.matcher {
            Matcher::Literal => match self.op {
                CondOp::Prefix => subject.starts_with(&self.pattern),
                CondOp::Suffix => subject.ends_with(&self.pattern),
                _ => subject == self.pattern,
            },
            Matcher::Regex(re) => re.is_match(subject),
            // A backtracking limit hit counts as "no match" rather than an
            // error: a request must never make the server fail.
            Matcher::Fancy(re) => re.is_match(subject).unwrap_or(false),
            Matcher::Cidr { net, prefix } => {
                subject.parse::<IpAddr>().map(|ip| cidr_contains(*net, *prefix, ip)).unwrap_or(false)
            }
        };
        hit != self.op.negated()
    }

    pub fn matches_ip(&self, ip: IpAddr) -> Option<bool> {
        match &self.matcher {
            Matcher::Cidr { net, prefix } => Some(cidr_contains(*net, *prefix, ip) != self.op.negated()),
            _ => None,
        }
    }

    /// For `=~` only: the captures when it matches.
    pub(crate) fn captures(&self, subject: &str) -> Option<Captured> {
        let spans = match &self.matcher {
            Matcher::Regex(re) => {
                let c = re.captures(subject)?;
                (0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect()
            }
            Matcher::Fancy(re) => {
                let c = re.captures(subject).ok()??;
                (0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect()
            }
            _ => return None,
        };
        Some(Captured { subject: subject.to_string(), spans })
    }
}

fn compile_regex(pattern: &str) -> Result<Matcher, String> {
    match regex::Regex::new(pattern) {
        Ok(re) => Ok(Matcher::Regex(Box::new(re))),
        Err(plain_err) => match fancy_regex::Regex::new(pattern) {
            Ok(re) => Ok(Matcher::Fancy(Box::new(re))),
            Err(_) => {
                let detail = plain_err.to_string();
                let last = detail
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("invalid pattern")
                    .trim()
                    .trim_start_matches("error: ");
                Err(format!("invalid regex {}: {last}", quote(pattern)))
            }
        },
    }
}

/// `addr` or `addr/prefix`, IPv4 or IPv6. Host bits in `addr` are allowed
/// (and ignored), as lighttpd does.
pub(crate) fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 3 {
                return None;
            }
            (a, Some(p.parse::<u8>().ok()?))
        }
        None => (s, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((ip, prefix))
}

pub(crate) fn cidr_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    // Dual-stack sockets report IPv4 clients as ::ffff:a.b.c.d; they must
    // still match IPv4 networks.
    let ip = match (net, ip) {
        (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => return false,
        },
        _ => ip,
    };
    featherd_mod_api::util::in_network(net, prefix, ip)
}

/// A string literal in the configuration syntax. The only escape lighttpd
/// knows is `\"`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}
