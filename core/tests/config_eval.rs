//! Condition evaluation against a request.

use featherd::config::{parse_str, CondField, Config, Evaluation, RequestFacts};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

#[derive(Default)]
struct Req {
    fields: HashMap<CondField, String>,
    ip: Option<IpAddr>,
}

impl Req {
    fn new() -> Req {
        Req::default()
    }
    fn with(mut self, f: CondField, v: &str) -> Req {
        self.fields.insert(f, v.to_string());
        self
    }
    fn ip(mut self, ip: &str) -> Req {
        self.ip = Some(ip.parse().unwrap());
        self
    }
}

impl RequestFacts for Req {
    fn field(&self, field: &CondField) -> Option<&str> {
        self.fields.get(field).map(String::as_str)
    }
    fn remote_ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

fn cfg(src: &str) -> Config {
    parse_str(src, Path::new("e.conf")).unwrap()
}

fn matched(c: &Config, r: &Req) -> Vec<usize> {
    let ev = Evaluation::evaluate(c, r);
    (0..c.blocks.len()).filter(|&b| ev.matched(b)).collect()
}

fn one(cond: &str, r: &Req) -> bool {
    let c = cfg(&format!("{cond} {{ x = 1 }}"));
    Evaluation::evaluate(&c, r).matched(1)
}

#[test]
fn operators() {
    let host = |h: &str| Req::new().with(CondField::Host, h);
    let cases: &[(&str, &str, bool)] = &[
        (r#"$HTTP["host"] == "example.org""#, "example.org", true),
        (r#"$HTTP["host"] == "example.org""#, "www.example.org", false),
        (r#"$HTTP["host"] != "example.org""#, "example.org", false),
        (r#"$HTTP["host"] != "example.org""#, "other", true),
        (r#"$HTTP["host"] =~ "example\.(org|net)$""#, "www.example.net", true),
        (r#"$HTTP["host"] =~ "^example""#, "www.example.org", false),
        (r#"$HTTP["host"] !~ "^www\.""#, "www.example.org", false),
        (r#"$HTTP["host"] !~ "^www\.""#, "example.org", true),
        (r#"$HTTP["host"] =^ "www.""#, "www.example.org", true),
        (r#"$HTTP["host"] =^ "www.""#, "example.org", false),
        (r#"$HTTP["host"] =$ ".org""#, "example.org", true),
        (r#"$HTTP["host"] =$ ".org""#, "example.net", false),
        (r#"$HTTP["host"] =~ "^(?!admin\.)""#, "admin.example", false),
        (r#"$HTTP["host"] =~ "^(?!admin\.)""#, "www.example", true),
        (r#"$HTTP["host"] =~ "^(\w)\1""#, "aab", true),
        (r#"$HTTP["host"] =~ "^(\w)\1""#, "abb", false),
    ];
    for (cond, value, want) in cases {
        assert_eq!(one(cond, &host(value)), *want, "{cond} on {value:?}");
    }
}

#[test]
fn fields_are_read_from_the_request() {
    let r = Req::new()
        .with(CondField::Url, "/index.php")
        .with(CondField::QueryString, "a=1")
        .with(CondField::Scheme, "https")
        .with(CondField::RequestMethod, "POST")
        .with(CondField::UserAgent, "curl/8")
        .with(CondField::Referer, "http://x/")
        .with(CondField::Cookie, "s=1")
        .with(CondField::Language, "de")
        .with(CondField::RequestHeader("X-Api".into()), "k")
        .with(CondField::ServerSocket, ":8443")
        .with(CondField::PhysicalPath, "/srv/www/index.php");
    for cond in [
        r#"$HTTP["url"] =$ ".php""#,
        r#"$HTTP["querystring"] == "a=1""#,
        r#"$HTTP["scheme"] == "https""#,
        r#"$HTTP["request-method"] == "POST""#,
        r#"$HTTP["useragent"] =^ "curl/""#,
        r#"$HTTP["referer"] =~ "^http://""#,
        r#"$HTTP["cookie"] =~ "s=""#,
        r#"$HTTP["language"] == "de""#,
        r#"$REQUEST_HEADER["X-Api"] == "k""#,
        r#"$SERVER["socket"] == ":8443""#,
        r#"$PHYSICAL["path"] =^ "/srv/""#,
    ] {
        assert!(one(cond, &r), "{cond}");
    }
    assert!(!one(r#"$SERVER["socket"] == ":80""#, &r));
}

#[test]
fn remoteip_cidr_v4_and_v6() {
    let cases: &[(&str, &str, bool)] = &[
        (r#"$HTTP["remoteip"] == "10.0.0.0/8""#, "10.1.2.3", true),
        (r#"$HTTP["remoteip"] == "10.0.0.0/8""#, "11.1.2.3", false),
        (r#"$HTTP["remoteip"] != "10.0.0.0/8""#, "11.1.2.3", true),
        (r#"$HTTP["remoteip"] != "10.0.0.0/8""#, "10.255.0.1", false),
        (r#"$HTTP["remoteip"] == "192.168.1.7""#, "192.168.1.7", true),
        (r#"$HTTP["remoteip"] == "192.168.1.7""#, "192.168.1.8", false),
        (r#"$HTTP["remoteip"] == "192.168.1.77/24""#, "192.168.1.8", true),
        (r#"$HTTP["remoteip"] == "0.0.0.0/0""#, "8.8.8.8", true),
        (r#"$HTTP["remoteip"] == "10.0.0.0/8""#, "::ffff:10.9.9.9", true),
        (r#"$HTTP["remoteip"] == "2001:db8::/32""#, "2001:db8:1::5", true),
        (r#"$HTTP["remoteip"] == "2001:db8::/32""#, "2001:db9::5", false),
        (r#"$HTTP["remoteip"] == "::1""#, "::1", true),
        (r#"$HTTP["remoteip"] == "::1""#, "127.0.0.1", false),
        (r#"$HTTP["remoteip"] != "::/0""#, "fe80::1", false),
        (r#"$HTTP["remoteip"] =~ "^10\.""#, "10.0.0.1", true),
        (r#"$HTTP["remoteip"] !~ "^10\.""#, "10.0.0.1", false),
    ];
    for (cond, ip, want) in cases {
        assert_eq!(one(cond, &Req::new().ip(ip)), *want, "{cond} for {ip}");
    }
    // Without an address nothing is inside a network.
    assert!(!one(r#"$HTTP["remoteip"] == "0.0.0.0/0""#, &Req::new()));
    assert!(one(r#"$HTTP["remoteip"] != "0.0.0.0/0""#, &Req::new()));
}

#[test]
fn children_only_if_parent_matched() {
    let c = cfg(r#"
$HTTP["host"] == "a" {
    $HTTP["url"] =^ "/x" { k = 1 }
}
$HTTP["url"] =^ "/x" { k = 2 }
"#);
    let r = Req::new().with(CondField::Host, "b").with(CondField::Url, "/x/y");
    assert_eq!(matched(&c, &r), vec![0, 3]);
    let r = Req::new().with(CondField::Host, "a").with(CondField::Url, "/x/y");
    assert_eq!(matched(&c, &r), vec![0, 1, 2, 3]);
    let ev = Evaluation::evaluate(&c, &r);
    assert_eq!(c.effective(&ev, "k").unwrap().value.as_int(), Some(2));
}

#[test]
fn else_chains_take_exactly_one_branch() {
    let c = cfg(r#"
$HTTP["host"] == "a" { b = 1 }
else $HTTP["host"] == "b" { b = 2 }
else if $HTTP["url"] =^ "/c" { b = 3 }
else { b = 4 }
"#);
    let cases: &[(&str, &str, usize)] = &[("a", "/c", 1), ("b", "/c", 2), ("z", "/c", 3), ("z", "/d", 4)];
    for (host, url, branch) in cases {
        let r = Req::new().with(CondField::Host, host).with(CondField::Url, url);
        assert_eq!(matched(&c, &r), vec![0, *branch], "{host} {url}");
        let ev = Evaluation::evaluate(&c, &r);
        assert_eq!(c.effective(&ev, "b").unwrap().value.as_int(), Some(*branch as i64));
    }
    // An else-if chain without a final else may take no branch.
    let c = cfg(r#"$HTTP["host"] == "a" { } else $HTTP["host"] == "b" { }"#);
    assert_eq!(matched(&c, &Req::new().with(CondField::Host, "c")), vec![0]);
    // A chain nested in a block that did not match takes no branch.
    let c = cfg(r#"$HTTP["url"] == "/" { $HTTP["host"] == "a" { } else { } }"#);
    assert_eq!(matched(&c, &Req::new().with(CondField::Url, "/x")), vec![0]);
    assert_eq!(matched(&c, &Req::new().with(CondField::Url, "/")), vec![0, 1, 3]);
}

#[test]
fn captures() {
    let c = cfg(r#"
$HTTP["host"] =~ "^(www\.)?([^.]+)\.org$" {
    a = 1
    $HTTP["url"] =^ "/static" { b = 1 }
    $HTTP["url"] =~ "^/u/(\w+)" { c = 1 }
    $HTTP["url"] !~ "^/admin" { d = 1 }
}
"#);
    let r = Req::new().with(CondField::Host, "www.example.org").with(CondField::Url, "/u/alice");
    let ev = Evaluation::evaluate(&c, &r);
    assert_eq!(matched(&c, &r), vec![0, 1, 3, 4]);
    assert_eq!(ev.capture(1, 0), Some("www.example.org"));
    assert_eq!(ev.capture(1, 1), Some("www."));
    assert_eq!(ev.capture(1, 2), Some("example"));
    assert_eq!(ev.capture(1, 3), None);
    // Nested regex overrides; non-regex and !~ blocks inherit.
    assert_eq!(ev.capture(3, 1), Some("alice"));
    assert_eq!(ev.capture(3, 0), Some("/u/alice"));
    assert_eq!(ev.capture(4, 2), Some("example"));
    assert_eq!(ev.capture(0, 0), None);
    // Unmatched blocks have no captures.
    assert_eq!(ev.capture(2, 1), None);
    let r = Req::new().with(CondField::Host, "example.org").with(CondField::Url, "/static/x");
    let ev = Evaluation::evaluate(&c, &r);
    assert_eq!(ev.capture(2, 2), Some("example"));
    // An optional group that did not take part is None.
    assert_eq!(ev.capture(2, 1), None);
    // fancy-regex captures too.
    let c = cfg(r#"$HTTP["host"] =~ "^(\w+)(?=\.org)" { }"#);
    let ev = Evaluation::evaluate(&c, &Req::new().with(CondField::Host, "site.org"));
    assert_eq!(ev.capture(1, 1), Some("site"));
}

#[test]
fn absent_header_is_matched_as_empty() {
    let h = || CondField::RequestHeader("X-Token".into());
    let absent = Req::new();
    let empty = Req::new().with(h(), "");
    let set = Req::new().with(h(), "t");
    for r in [&absent, &empty] {
        assert!(one(r#"$REQUEST_HEADER["X-Token"] == """#, r));
        assert!(!one(r#"$REQUEST_HEADER["X-Token"] != """#, r));
        assert!(one(r#"$REQUEST_HEADER["X-Token"] =~ "^$""#, r));
        assert!(!one(r#"$REQUEST_HEADER["X-Token"] =~ ".""#, r));
    }
    assert!(one(r#"$REQUEST_HEADER["X-Token"] != """#, &set));
    assert!(one(r#"$HTTP["referer"] !~ "example""#, &absent));
}

#[test]
fn many_blocks_use_the_heap_bitset() {
    let mut src = String::new();
    for i in 0..300 {
        src.push_str(&format!("$HTTP[\"url\"] == \"/{i}\" {{ n = {i} }}\n"));
    }
    let c = cfg(&src);
    let ev = Evaluation::evaluate(&c, &Req::new().with(CondField::Url, "/299"));
    assert!(ev.matched(300));
    assert!(!ev.matched(299));
    assert_eq!(c.effective(&ev, "n").unwrap().value.as_int(), Some(299));
    assert!(!ev.matched(5000));
}
