//! featherd-urlsubst: the `( "regex" => "replacement", ... )` lists of mod_rewrite and
//! mod_redirect, statically linked into both (lighttpd keeps the same in `keyvalue.c` and
//! `burl.c`).
//!
//! Data in: at start, the list as the configuration wrote it ([`rules_from_value`], which
//! compiles each regex and parses each replacement into a [`Template`], so that a mistake is
//! reported with the setting's file:line). Per request, the subject (the request target,
//! not decoded), the parts of the URL ([`Url`]) and the captures of the regex condition that
//! encloses the list. Data out: an [`Outcome`]: which rule matched and the expanded result.
//!
//! The rules are tried in order and the first regex that matches decides: a blank
//! replacement stops the list without a result (lighttpd's way to exempt URLs from the rules
//! after it), any other replacement is expanded:
//!
//! | in the replacement | becomes |
//! | --- | --- |
//! | `$0`..`$9` | a group of the rule's regex, as it is |
//! | `%0`..`%9` | a group of the enclosing regex condition (`$HTTP["host"] =~ ...`), as it is |
//! | `${1}`, `%{1}` (up to `${99}`) | the same, escaped as `escpsnde` |
//! | `${MOD:...:1}` | the group through modifiers, see below |
//! | `${url.scheme}`, `${url.authority}`, `${url.port}`, `${url.path}`, `${url.query}` | parts of the request URL, as they are (modifiers apply) |
//! | `${qsa}` | the request's query appended: `&query` if the result has a `?` already, else `?query`; nothing when the request had no `?` |
//! | `$$`, `%%` | a literal `$`, `%` |
//! | `$` or `%` before anything else | itself |
//!
//! Modifiers: `esc:`/`escape:` percent-encode everything but `A-Z a-z 0-9 - . _ ~`
//! (an existing `%` too); `escnde:` the same without double-encoding `%XX`; `escpsnde:` as
//! `escnde:` and keeps `/`; `noesc:`/`noescape:` insert as is; `tolower:`/`toupper:` change
//! the letters (not inside `%XX`); `encb64u:`/`decb64u:` base64url-encode (no padding) or
//! decode. The value is decoded, then encoded, then escaped, then its case changed; decoded
//! bytes are escaped as `escpsnde` unless an escape modifier says otherwise.
//!
//! Whatever the rules say, bytes that can never appear in a URL (controls, space, DEL) are
//! percent-encoded in the result, so a result is always a valid request target or
//! `Location` value.

use featherd_mod_api::{Module, Request, Value, ValueKind};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

// ---------------------------------------------------------------------------------------------
// Escaping (lighttpd's burl_append)

/// How an inserted value is percent-encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// As it is (`noesc:`, and `$1` without braces).
    Raw,
    /// Everything but unreserved characters, `%` included (`esc:`).
    All,
    /// Everything but unreserved characters; `%XX` kept (decoded if unreserved) (`escnde:`).
    Nde,
    /// As `Nde`, and `/` kept (`escpsnde:`, the default of `${1}`).
    Psnde,
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn pct(out: &mut Vec<u8>, b: u8) {
    out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
}

/// The `%XX` at `s[i..]`, if any.
fn escape_at(s: &[u8], i: usize) -> Option<u8> {
    if s.get(i) != Some(&b'%') {
        return None;
    }
    let h = hexval(*s.get(i + 1)?)?;
    let l = hexval(*s.get(i + 2)?)?;
    Some(h << 4 | l)
}

/// Append `src` to `out`, percent-encoded as `esc` says.
pub fn escape_into(out: &mut Vec<u8>, src: &[u8], esc: Escape) {
    match esc {
        Escape::Raw => out.extend_from_slice(src),
        Escape::All => {
            for &b in src {
                if unreserved(b) {
                    out.push(b);
                } else {
                    pct(out, b);
                }
            }
        }
        Escape::Nde | Escape::Psnde => {
            let mut i = 0;
            while i < src.len() {
                if let Some(x) = escape_at(src, i) {
                    if unreserved(x) {
                        out.push(x);
                    } else {
                        // UTF-8, controls and reserved characters stay encoded, as sent.
                        out.extend_from_slice(&src[i..i + 3]);
                    }
                    i += 3;
                    continue;
                }
                let b = src[i];
                if unreserved(b) || (esc == Escape::Psnde && b == b'/') {
                    out.push(b);
                } else {
                    pct(out, b);
                }
                i += 1;
            }
        }
    }
}

/// Change the case of the letters of `s`, leaving `%XX` sequences alone.
fn change_case(s: &mut [u8], upper: bool) {
    let mut i = 0;
    while i < s.len() {
        if escape_at(s, i).is_some() {
            i += 3;
            continue;
        }
        if upper {
            s[i].make_ascii_uppercase();
        } else {
            s[i].make_ascii_lowercase();
        }
        i += 1;
    }
}

/// Percent-encode what can never be part of a URL or a header value: controls, space, DEL.
fn sanitize(s: Vec<u8>) -> Vec<u8> {
    if !s.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return s;
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    for b in s {
        if b <= b' ' || b == 0x7f {
            pct(&mut out, b);
        } else {
            out.push(b);
        }
    }
    out
}

fn b64_encode(src: &[u8]) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(src).into_bytes()
}

fn b64_decode(src: &[u8]) -> Vec<u8> {
    use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode, GeneralPurposeConfig};
    use base64::Engine;
    // Padding is optional in base64url; a value that is not base64url inserts nothing.
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(src).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Templates

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    Lower,
    Upper,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base64 {
    Encode,
    Decode,
}

/// The modifiers of one `${...}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Modifiers {
    escape: Option<Escape>,
    case: Option<Case>,
    base64: Option<Base64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UrlPart {
    Scheme,
    Authority,
    Port,
    Path,
    Query,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(Vec<u8>),
    /// `$n` (the rule's regex) or `%n` (the enclosing condition); `default` is the escape
    /// used when no modifier names one.
    Group {
        cond: bool,
        n: u32,
        mods: Modifiers,
        default: Escape,
    },
    Url(UrlPart, Modifiers),
    Qsa(Modifiers),
}

/// A replacement, parsed once.
#[derive(Clone, Debug)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

const MODIFIERS: &str = "esc, escape, escnde, escpsnde, noesc, noescape, tolower, toupper, encb64u, decb64u";

fn parse_braced(sigil: char, inner: &str) -> Result<Part, String> {
    let whole = || format!("{sigil}{{{inner}}}");
    let mut segs: Vec<&str> = inner.split(':').collect();
    let last = segs.pop().unwrap_or_default();
    let mut mods = Modifiers::default();
    for m in segs {
        match m {
            "esc" | "escape" => mods.escape = Some(Escape::All),
            "escnde" => mods.escape = Some(Escape::Nde),
            "escpsnde" => mods.escape = Some(Escape::Psnde),
            "noesc" | "noescape" => mods.escape = Some(Escape::Raw),
            "tolower" => mods.case = Some(Case::Lower),
            "toupper" => mods.case = Some(Case::Upper),
            "encb64u" => mods.base64 = Some(Base64::Encode),
            "decb64u" => mods.base64 = Some(Base64::Decode),
            _ => return Err(format!("unknown modifier {m:?} in {} (known: {MODIFIERS})", whole())),
        }
    }
    Ok(match last {
        "url.scheme" => Part::Url(UrlPart::Scheme, mods),
        "url.authority" => Part::Url(UrlPart::Authority, mods),
        "url.port" => Part::Url(UrlPart::Port, mods),
        "url.path" => Part::Url(UrlPart::Path, mods),
        "url.query" => Part::Url(UrlPart::Query, mods),
        "qsa" => Part::Qsa(mods),
        n if (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) => {
            Part::Group { cond: sigil == '%', n: n.parse().unwrap_or(0), mods, default: Escape::Psnde }
        }
        other => {
            return Err(format!(
                "unknown substitution {other:?} in {} (expected a group number 0-99, url.scheme, \
                 url.authority, url.port, url.path, url.query or qsa)",
                whole()
            ))
        }
    })
}

impl Template {
    /// Parse a replacement. Errors name the offending `${...}`.
    pub fn parse(source: &str) -> Result<Template, String> {
        let s = source.as_bytes();
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            if (c != b'$' && c != b'%') || i + 1 >= s.len() {
                lit.push(c);
                i += 1;
                continue;
            }
            let next = s[i + 1];
            let part = if next == b'{' {
                let Some(len) = s[i + 2..].iter().position(|&b| b == b'}') else {
                    return Err(format!(
                        "unterminated {}{{ (write {}{} for a literal {})",
                        c as char, c as char, c as char, c as char
                    ));
                };
                let inner = &source[i + 2..i + 2 + len];
                i += len + 3;
                parse_braced(c as char, inner)?
            } else if next.is_ascii_digit() {
                i += 2;
                Part::Group {
                    cond: c == b'%',
                    n: u32::from(next - b'0'),
                    mods: Modifiers::default(),
                    default: Escape::Raw,
                }
            } else {
                // "$$" and "%%" are the literal character; "$x" and "%x" stay as they are.
                lit.push(c);
                if next != c {
                    lit.push(next);
                }
                i += 2;
                continue;
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            parts.push(part);
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Template { source: source.to_owned(), parts })
    }

    /// The replacement as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// A blank replacement: a match stops the list without a result.
    pub fn is_blank(&self) -> bool {
        self.source.is_empty()
    }

    /// Whether it uses `%n` (the enclosing condition's groups).
    pub fn uses_condition(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Group { cond: true, .. }))
    }

    /// Expand with the rule's groups `group(n)`, the condition's `cond(n)` and the URL.
    pub fn expand<'g, 'c>(
        &self,
        group: impl Fn(u32) -> Option<&'g [u8]>,
        cond: impl Fn(u32) -> Option<&'c [u8]>,
        url: &Url,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.source.len() + url.target.len());
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Group { cond: c, n, mods, default } => {
                    let v = if *c { cond(*n) } else { group(*n) };
                    insert(&mut out, v.unwrap_or_default(), *mods, *default);
                }
                Part::Url(UrlPart::Port, _) => out.extend_from_slice(url.port.to_string().as_bytes()),
                Part::Url(part, mods) => {
                    let v: &[u8] = match part {
                        UrlPart::Scheme => url.scheme,
                        UrlPart::Authority => &url.authority,
                        UrlPart::Path => url.path(),
                        _ => url.query.unwrap_or_default(),
                    };
                    insert(&mut out, v, *mods, Escape::Raw);
                }
                Part::Qsa(mods) => {
                    if let Some(q) = url.query {
                        if out.contains(&b'?') {
                            if !q.is_empty() {
                                out.push(b'&');
                            }
                        } else {
                            out.push(b'?');
                        }
                        insert(&mut out, q, *mods, Escape::Raw);
                    }
                }
            }
        }
        sanitize(out)
    }
}

/// Append `v` through `mods`: decode, encode, escape, change case.
fn insert(out: &mut Vec<u8>, v: &[u8], mods: Modifiers, default: Escape) {
    let mut escape = mods.escape.unwrap_or(default);
    let v: Cow<[u8]> = match mods.base64 {
        Some(Base64::Decode) => {
            // Decoded bytes can be anything: escape them unless told otherwise.
            escape = mods.escape.unwrap_or(Escape::Psnde);
            Cow::Owned(b64_decode(v))
        }
        Some(Base64::Encode) => Cow::Owned(b64_encode(v)),
        None => Cow::Borrowed(v),
    };
    let start = out.len();
    escape_into(out, &v, escape);
    if let Some(case) = mods.case {
        change_case(&mut out[start..], case == Case::Upper);
    }
}

// ---------------------------------------------------------------------------------------------
// The request's URL

/// The parts of the request URL that `${url.*}` and `${qsa}` insert.
#[derive(Clone, Debug, Default)]
pub struct Url<'a> {
    /// "http" or "https".
    pub scheme: &'a [u8],
    /// Host and port as the client named them (the Host header, lower-case).
    pub authority: Cow<'a, [u8]>,
    /// The port of the socket the request came in on.
    pub port: u16,
    /// The target (path and query, not decoded).
    pub target: &'a [u8],
    /// The query without '?'; None when the target had no '?'.
    pub query: Option<&'a [u8]>,
}

impl<'a> Url<'a> {
    /// The path part of the target, not decoded.
    pub fn path(&self) -> &'a [u8] {
        let end = self.target.iter().position(|&b| b == b'?' || b == b'#').unwrap_or(self.target.len());
        &self.target[..end]
    }

    /// The URL of `req` as it stands (after any rewrite so far).
    pub fn of<M: Module>(req: &'a Request<'_, M>) -> Url<'a> {
        let host = req.host();
        // The Host header keeps the port the client used; it names the same host as the
        // request unless an absolute-form target named another (which then wins).
        let authority = match req.header("host") {
            Some(h) if !h.is_empty() && host_part(h).eq_ignore_ascii_case(host) => {
                Cow::Owned(h.to_ascii_lowercase())
            }
            _ if !host.is_empty() => Cow::Borrowed(host),
            _ => Cow::Borrowed(req.local_addr()),
        };
        Url {
            scheme: req.scheme(),
            authority,
            port: port_of(req.local_addr()),
            target: req.target(),
            query: req.query(),
        }
    }
}

/// "host:port" or "[v6]:port" → host (brackets kept off).
fn host_part(a: &[u8]) -> &[u8] {
    if let Some(rest) = a.strip_prefix(b"[") {
        return rest.iter().position(|&b| b == b']').map_or(rest, |e| &rest[..e]);
    }
    a.iter().position(|&b| b == b':').map_or(a, |e| &a[..e])
}

/// The port of "addr:port".
fn port_of(addr: &[u8]) -> u16 {
    addr.iter()
        .rposition(|&b| b == b':')
        .and_then(|i| std::str::from_utf8(&addr[i + 1..]).ok())
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Rules

enum Matcher {
    /// What the `regex` crate handles (linear time), over bytes.
    Plain(regex::bytes::Regex),
    /// Look-around or back-references (PCRE users write them), over UTF-8 text.
    Fancy(Box<fancy_regex::Regex>),
}

type Spans = Vec<Option<(usize, usize)>>;

/// One `"regex" => "replacement"`.
pub struct Rule {
    pattern: String,
    matcher: Matcher,
    template: Template,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} => {:?}", self.pattern, self.template.source)
    }
}

fn compile_regex(pattern: &str) -> Result<Matcher, String> {
    match regex::bytes::Regex::new(pattern) {
        Ok(re) => Ok(Matcher::Plain(re)),
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
                    .trim_start_matches("error: ")
                    .to_string();
                Err(format!("invalid regex {pattern:?}: {last}"))
            }
        },
    }
}

impl Rule {
    /// Compile a rule. Errors name the rule and what is wrong.
    pub fn new(pattern: &str, replacement: &str) -> Result<Rule, String> {
        let matcher = compile_regex(pattern)?;
        let template =
            Template::parse(replacement).map_err(|e| format!("in {pattern:?} => {replacement:?}: {e}"))?;
        Ok(Rule { pattern: pattern.to_owned(), matcher, template })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The groups' spans when the regex matches `subject`.
    fn captures(&self, subject: &[u8]) -> Result<Option<Spans>, String> {
        match &self.matcher {
            Matcher::Plain(re) => Ok(re
                .captures(subject)
                .map(|c| (0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect())),
            Matcher::Fancy(re) => {
                // Such a regex only works on text; a target that is not UTF-8 cannot match it.
                let Ok(text) = std::str::from_utf8(subject) else { return Ok(None) };
                match re.captures(text) {
                    Ok(c) => {
                        Ok(c.map(|c| (0..c.len()).map(|i| c.get(i).map(|m| (m.start(), m.end()))).collect()))
                    }
                    Err(e) => Err(format!("regex {:?} failed: {e}", self.pattern)),
                }
            }
        }
    }
}

/// Compile a rule, or share the one compiled before for the same pair (the SDK applies the
/// settings of sibling blocks again for a request that matches both).
pub fn compile(pattern: &str, replacement: &str) -> Result<Arc<Rule>, String> {
    type Cache = Mutex<HashMap<(String, String), Arc<Rule>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (pattern.to_owned(), replacement.to_owned());
    if let Some(r) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(r);
    }
    let rule = Arc::new(Rule::new(pattern, replacement)?);
    if let Ok(mut c) = cache.lock() {
        c.insert(key, rule.clone());
    }
    Ok(rule)
}

/// Read a configuration value `( "regex" => "replacement", ... )` into compiled rules.
pub fn rules_from_value(v: &Value) -> Result<Vec<Arc<Rule>>, String> {
    const SHAPE: &str = "expected a list of \"regex\" => \"replacement\"";
    if v.kind() != ValueKind::Array {
        return Err(SHAPE.into());
    }
    v.iter()
        .map(|(k, val)| match (k, val.as_str()) {
            (Some(k), Some(r)) => compile(k, r),
            (None, _) => Err(format!("{SHAPE}; an element has no \"regex\" =>")),
            (Some(k), None) => Err(format!("{SHAPE}; the replacement of {k:?} is not a string")),
        })
        .collect()
}

/// What a list did with a subject.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// No regex matched.
    NoMatch,
    /// Rule `rule` matched and its replacement is blank: leave the subject alone.
    Stop { rule: usize },
    /// Rule `rule` matched; `result` is its expanded replacement.
    Replace { rule: usize, result: Vec<u8> },
    /// A regex could not be run (a backtracking limit); the request cannot be decided.
    Failed(String),
}

/// Try `rules` in order on `subject`; `cond(n)` is `%n` of the enclosing regex condition.
pub fn process<'r, 'c>(
    rules: impl IntoIterator<Item = &'r Rule>,
    subject: &[u8],
    url: &Url,
    cond: impl Fn(u32) -> Option<&'c [u8]>,
) -> Outcome {
    for (i, rule) in rules.into_iter().enumerate() {
        let spans = match rule.captures(subject) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => return Outcome::Failed(e),
        };
        if rule.template.is_blank() {
            return Outcome::Stop { rule: i };
        }
        let group = |n: u32| spans.get(n as usize).copied().flatten().and_then(|(s, e)| subject.get(s..e));
        let result = rule.template.expand(group, &cond, url);
        return Outcome::Replace { rule: i, result };
    }
    Outcome::NoMatch
}

#[cfg(test)]
mod tests;
