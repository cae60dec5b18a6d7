//! Per-request evaluation of the condition blocks.

use super::cond::{Captured, CondField, CondOp, Condition, Matcher};
use super::Config;
use std::net::IpAddr;

/// What a condition needs from a request; implemented by the server.
pub trait RequestFacts {
    /// The request's value for `field`; `None` when the header is absent.
    /// Like lighttpd, an absent value is matched as the empty string.
    fn field(&self, field: &CondField) -> Option<&str>;
    fn remote_ip(&self) -> Option<IpAddr>;
    /// The port of `$HTTP["host"]` when the client sent one other than the scheme's default.
    fn host_port(&self) -> Option<u16> {
        None
    }
}

const INLINE_WORDS: usize = 4;

/// A bitset that lives on the stack for up to 256 blocks, so evaluating a
/// typical configuration does not allocate.
#[derive(Debug, Clone)]
enum Bits {
    Inline([u64; INLINE_WORDS]),
    Heap(Vec<u64>),
}

impl Bits {
    fn new(n: usize) -> Bits {
        let words = n.div_ceil(64);
        if words <= INLINE_WORDS {
            Bits::Inline([0; INLINE_WORDS])
        } else {
            Bits::Heap(vec![0; words])
        }
    }

    fn words(&self) -> &[u64] {
        match self {
            Bits::Inline(w) => w,
            Bits::Heap(w) => w,
        }
    }

    fn get(&self, i: usize) -> bool {
        self.words().get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn set(&mut self, i: usize) {
        let words: &mut [u64] = match self {
            Bits::Inline(w) => w,
            Bits::Heap(w) => w,
        };
        if let Some(w) = words.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }
}

const NO_CAPTURE: u32 = u32::MAX;

/// Which blocks apply to one request, and the regex captures for `%n`.
#[derive(Debug, Clone)]
pub struct Evaluation {
    matched: Bits,
    captures: Vec<Captured>,
    /// Per block: index into `captures` of the nearest matching regex at or
    /// above it. Empty until the first regex matches.
    nearest: Vec<u32>,
}

impl std::fmt::Debug for Captured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Captured").field("subject", &self.subject).field("spans", &self.spans).finish()
    }
}

impl Clone for Captured {
    fn clone(&self) -> Self {
        Captured { subject: self.subject.clone(), spans: self.spans.clone() }
    }
}

impl Evaluation {
    pub fn evaluate(cfg: &Config, facts: &dyn RequestFacts) -> Evaluation {
        let n = cfg.blocks.len();
        let mut ev = Evaluation { matched: Bits::new(n), captures: Vec::new(), nearest: Vec::new() };
        // A chain is "taken" once one of its branches matched; later
        // branches are then skipped without evaluating their condition.
        let mut taken = Bits::new(n);
        let mut host_port = None;
        if n > 0 {
            ev.matched.set(0);
        }
        for b in cfg.blocks.iter().skip(1) {
            let id = b.id;
            // Blocks come in document order; anything else is a corrupted
            // Config and simply does not match.
            let Some(parent) = b.parent.filter(|&p| p < id) else {
                continue;
            };
            if !ev.matched.get(parent) {
                continue;
            }
            if let Some(prev) = b.else_of {
                if prev >= id || taken.get(prev) {
                    taken.set(id);
                    continue;
                }
            }
            let (hit, cap) = match &b.cond {
                None => (true, None),
                Some(c) => check(c, facts, &mut host_port),
            };
            if !hit {
                continue;
            }
            ev.matched.set(id);
            taken.set(id);
            if let Some(cap) = cap {
                if ev.nearest.is_empty() {
                    ev.nearest = vec![NO_CAPTURE; n];
                }
                let idx = u32::try_from(ev.captures.len()).unwrap_or(NO_CAPTURE);
                ev.captures.push(cap);
                if let Some(slot) = ev.nearest.get_mut(id) {
                    *slot = idx;
                }
            } else if !ev.nearest.is_empty() {
                let inherited = ev.nearest.get(parent).copied().unwrap_or(NO_CAPTURE);
                if let Some(slot) = ev.nearest.get_mut(id) {
                    *slot = inherited;
                }
            }
        }
        ev
    }

    pub fn matched(&self, block: usize) -> bool {
        self.matched.get(block)
    }

    /// `%n` for values in `block`: group `n` of the nearest regex condition
    /// at or above `block` that matched (`%0` is the whole match).
    pub fn capture(&self, block: usize, n: usize) -> Option<&str> {
        let idx = *self.nearest.get(block)?;
        let cap = self.captures.get(usize::try_from(idx).ok()?)?;
        let (start, end) = (*cap.spans.get(n)?)?;
        cap.subject.get(start..end)
    }
}

/// The port of a `host:digits` or `[v6]:digits` pattern.
fn pattern_port(p: &str) -> Option<&str> {
    let tail = p.rsplit_once(']').map_or(p, |(_, t)| t);
    let (_, port) = tail.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then_some(port)
}

fn check<'a>(
    c: &Condition,
    facts: &'a dyn RequestFacts,
    host_port: &'a mut Option<String>,
) -> (bool, Option<Captured>) {
    if let Matcher::Cidr { .. } = c.matcher {
        let ip = facts.remote_ip().or_else(|| facts.field(&c.field).and_then(|s| s.parse().ok()));
        return match ip {
            Some(ip) => (c.matches_ip(ip).unwrap_or(false), None),
            // No address: "is in the network" is false.
            None => (c.op.negated(), None),
        };
    }
    let formatted;
    // As lighttpd: the host is matched with the port the client sent (unless it is the
    // scheme's default), except that `==` and `!=` compare ports only when both the pattern
    // and the request have one.
    let mut subject_host_port: Option<&str> = None;
    if c.field == CondField::Host {
        let host = facts.field(&c.field).unwrap_or("");
        let eq = matches!(c.op, CondOp::Eq | CondOp::Ne);
        match (facts.host_port(), pattern_port(&c.pattern)) {
            (Some(_), None) if eq => {}
            (Some(p), _) => {
                // Built once per evaluation, however many host conditions there are.
                let s = host_port.get_or_insert_with(|| format!("{host}:{p}"));
                subject_host_port = Some(s.as_str());
            }
            (None, Some(port)) if eq => {
                // No port sent: compare with the pattern's host part.
                let base = &c.pattern[..c.pattern.len() - port.len() - 1];
                return ((host == base) != c.op.negated(), None);
            }
            (None, _) => {}
        }
    }
    let subject = match subject_host_port {
        Some(s) => s,
        None => match facts.field(&c.field) {
            Some(s) => s,
            None if c.field == CondField::RemoteIp => match facts.remote_ip() {
                Some(ip) => {
                    formatted = ip.to_string();
                    &formatted
                }
                None => "",
            },
            None => "",
        },
    };
    if c.op == CondOp::Match && c.is_regex() {
        match c.captures(subject) {
            Some(cap) => (true, Some(cap)),
            None => (false, None),
        }
    } else {
        (c.matches_str(subject), None)
    }
}
