//! `extforward.forwarder`: which proxies are trusted, by address, network or "all".
//!
//! lighttpd's rules: an entry is `"address" => "trust"` (or `"untrusted"`), a CIDR network
//! `"10.0.0.0/8" => "trust"` (networks can only be trusted), or `"all" => "trust"`. "all"
//! decides for the connecting peer only: the addresses inside a forwarded chain are checked
//! against the explicit entries, never against "all" (a chain is what the client wrote).

use std::net::IpAddr;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forwarders {
    /// `"all" => "trust"`: Some(true); "all" with any other value: Some(false) (nobody).
    pub all: Option<bool>,
    /// Single addresses and whether they are trusted ("untrusted" entries override networks).
    pub addrs: Vec<(IpAddr, bool)>,
    /// Trusted networks.
    pub nets: Vec<(IpAddr, u8)>,
    /// Other exact names (unix socket paths), trusted or not.
    pub names: Vec<(String, bool)>,
}

/// What parsing the list found besides the entries: messages to log, not errors.
pub type Warnings = Vec<String>;

impl Forwarders {
    /// Parse `( "key" => "trust", ... )`. Errors name the entry; warnings are for entries
    /// lighttpd accepts but treats as untrusted.
    pub fn parse(entries: &[(String, String)]) -> Result<(Forwarders, Warnings), String> {
        let mut f = Forwarders::default();
        let mut warn = Vec::new();
        for (k, v) in entries {
            let trusted = if v.eq_ignore_ascii_case("trust") {
                true
            } else {
                if !v.eq_ignore_ascii_case("untrusted") {
                    warn.push(format!("expected \"trust\", not \"{k}\" => \"{v}\": treated as untrusted"));
                }
                false
            };
            if k.eq_ignore_ascii_case("all") {
                f.all = Some(trusted);
            } else if let Some((addr, bits)) = k.split_once('/').filter(|_| !k.starts_with('/')) {
                let addr = addr.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(addr);
                let ip = parse_ip(addr).ok_or_else(|| format!("\"{k}\": not an address/prefix network"))?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let prefix =
                    (!bits.is_empty() && bits.len() <= 3 && bits.bytes().all(|b| b.is_ascii_digit()))
                        .then(|| bits.parse::<u8>().ok())
                        .flatten()
                        .filter(|&p| p >= 1 && p <= max)
                        .ok_or_else(|| format!("\"{k}\": invalid netmask (1 to {max})"))?;
                if trusted {
                    f.nets.push((ip, prefix));
                } else {
                    warn.push(format!("untrusted networks are ignored (\"{k}\" => \"{v}\")"));
                }
            } else if let Some(ip) =
                parse_ip(k.strip_prefix('[').and_then(|a| a.strip_suffix(']')).unwrap_or(k))
            {
                f.addrs.push((ip, trusted));
            } else if k.starts_with('/') {
                f.names.push((k.clone(), trusted));
            } else {
                return Err(format!(
                    "\"{k}\" is not an IP address, a network (addr/bits), \"all\" or a unix socket path"
                ));
            }
        }
        Ok((f, warn))
    }

    /// Whether an address a proxy reported (or the peer's address) is a trusted proxy,
    /// "all" aside.
    pub fn is_trusted(&self, addr: &[u8]) -> bool {
        let Some(s) = std::str::from_utf8(addr).ok() else { return false };
        match parse_ip(s) {
            Some(ip) => {
                if let Some(&(_, t)) = self.addrs.iter().find(|(a, _)| *a == ip) {
                    return t;
                }
                self.nets.iter().any(|&(n, p)| featherd_mod_api::util::in_network(n, p, ip))
            }
            None => self.names.iter().any(|(n, t)| *t && n == s),
        }
    }

    /// Whether the connecting peer is trusted: "all" decides when present.
    pub fn peer_trusted(&self, addr: &[u8]) -> bool {
        match self.all {
            Some(t) => t,
            None => self.is_trusted(addr),
        }
    }
}

/// An IP address; IPv4-mapped IPv6 counts as IPv4.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fw(list: &[(&str, &str)]) -> Forwarders {
        let v: Vec<(String, String)> = list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        Forwarders::parse(&v).expect("valid list").0
    }

    #[test]
    fn addresses_networks_and_all() {
        let f = fw(&[
            ("10.0.0.1", "trust"),
            ("192.168.0.0/16", "trust"),
            ("192.168.7.7", "untrusted"),
            ("2001:db8::/32", "Trust"),
            ("[2001:db9::]/48", "trust"),
            ("::1", "trust"),
        ]);
        let cases: &[(&str, bool)] = &[
            ("10.0.0.1", true),
            ("10.0.0.2", false),
            ("192.168.1.2", true),
            ("192.168.7.7", false), // an untrusted address wins over its network
            ("::ffff:192.168.1.2", true),
            ("2001:db8:ffff::1", true),
            ("2001:DB8::1", true),
            ("2001:db9:1::1", false),
            ("2001:db9::5", true),
            ("::1", true),
            ("0:0:0:0:0:0:0:1", true),
            ("unknown", false),
            ("", false),
            ("10.0.0.1:80", false),
        ];
        for (a, want) in cases {
            assert_eq!(f.is_trusted(a.as_bytes()), *want, "{a}");
        }
        assert!(!f.peer_trusted(b"127.0.0.1"));
        let all = fw(&[("all", "trust")]);
        assert!(all.peer_trusted(b"203.0.113.5"));
        assert!(!all.is_trusted(b"203.0.113.5"), "all is for the peer only");
        let none = fw(&[("all", "deny"), ("10.0.0.1", "trust")]);
        assert!(!none.peer_trusted(b"10.0.0.1"), "all with another value trusts nobody");
    }

    #[test]
    fn bad_entries_are_errors_or_warnings() {
        let parse = |k: &str, v: &str| Forwarders::parse(&[(k.to_string(), v.to_string())]);
        for bad in ["10.0.0.0/", "10.0.0.0/33", "10.0.0.0/0", "10.0.0.0/x", "foo/8", "localhost", "10.0.0"] {
            assert!(parse(bad, "trust").is_err(), "{bad}");
        }
        let (f, w) = parse("10.0.0.1", "yes").expect("accepted");
        assert!(!f.is_trusted(b"10.0.0.1"));
        assert_eq!(w.len(), 1);
        let (f, w) = parse("10.0.0.0/8", "untrusted").expect("accepted");
        assert!(f.nets.is_empty() && w.len() == 1);
        let (f, _) = parse("/run/proxy.sock", "trust").expect("a socket path");
        assert!(f.is_trusted(b"/run/proxy.sock"));
    }
}
