//! mod_extforward through the real server: X-Forwarded-For chains and `Forwarded` from
//! trusted and untrusted peers (addresses, v4 and v6 networks, "all"), the forwarded address
//! choosing `$HTTP["remoteip"]` blocks (mod_setenv, mod_access and a core setting), the access
//! log and a CGI script's REMOTE_ADDR / HTTPS, keep-alive, and the HAProxy PROXY protocol
//! (v1, v2 built here byte by byte) on a `$SERVER["socket"]` of its own, with malformed,
//! missing and truncated headers closing only their connection.
//!
//! Clients come from 127.0.0.1 (the trusted proxy in most configurations) or from 127.0.0.2
//! (an untrusted peer: any 127/8 address is local on Linux).

use featherd_e2e::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A server running `www/env.py` (the CGI environment) with these modules and `extra`.
fn start(extra: &str) -> Server {
    let conf = format!(
        r#"{BASE}
server.modules = ( "mod_access", "mod_accesslog", "mod_extforward", "mod_setenv", "mod_cgi" )
cgi.assign = ( ".py" => "/usr/bin/python3" )
accesslog.filename = "@DIR@/access.log"
{extra}
"#
    );
    let dir = TempDir::new("extforward");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("docroot");
    std::fs::copy(workspace_root().join("tests/fixtures/cgi/env.py"), www.join("env.py")).expect("env.py");
    std::fs::write(www.join("index.txt"), "hello\n").expect("index.txt");
    Server::start_in(dir, &conf, None)
}

/// Connect to 127.0.0.1:`port` from `src` (an address of this host).
fn connect_from(src: &str, port: u16) -> TcpStream {
    connect_to_from(src, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn connect_to_from(src: &str, to: SocketAddr) -> TcpStream {
    let domain = if to.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::STREAM, None).expect("socket");
    let from = SocketAddr::new(src.parse().expect("source address"), 0);
    s.bind(&from.into()).expect("bind the client's source address");
    s.connect(&to.into()).expect("connect");
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

/// Send `data` on `s`, half-close, read to the end.
fn exchange(mut s: TcpStream, data: &[u8]) -> Vec<u8> {
    s.write_all(data).expect("send");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// GET `path` from `src` with extra header lines; one response.
fn get_from(src: &str, port: u16, path: &str, headers: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}\r\n");
    let data = exchange(connect_from(src, port), req.as_bytes());
    parse_responses(&data, false)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response to {req:?}: {:?}", String::from_utf8_lossy(&data)))
}

/// The CGI environment as NAME=value pairs.
fn env(r: &Response) -> Vec<(String, String)> {
    r.text().lines().filter_map(|l| l.split_once('=').map(|(a, b)| (a.to_string(), b.to_string()))).collect()
}

fn var(r: &Response, name: &str) -> Option<String> {
    env(r).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// REMOTE_ADDR a CGI script sees for a request from `src` with `headers`.
fn remote_addr(s: &Server, src: &str, headers: &str) -> String {
    let r = get_from(src, s.port, "/env.py", headers);
    assert_eq!(r.status, 200, "{headers:?}: {}", r.head);
    var(&r, "REMOTE_ADDR").unwrap_or_default()
}

const TRUST_LOCAL: &str = r#"extforward.forwarder = ( "127.0.0.1" => "trust" )"#;

#[test]
fn only_a_trusted_peer_is_believed() {
    let s = start(TRUST_LOCAL);
    let r = get_from(
        "127.0.0.1",
        s.port,
        "/env.py",
        "X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("192.0.2.9"), "{}", r.text());
    assert_eq!(var(&r, "REMOTE_PORT").as_deref(), Some("0"), "a header carries no port (lighttpd: 0)");
    assert_eq!(var(&r, "HTTPS").as_deref(), Some("on"));
    assert_eq!(var(&r, "REQUEST_SCHEME").as_deref(), Some("https"));
    assert_eq!(
        var(&r, "HTTP_X_FORWARDED_FOR").as_deref(),
        Some("192.0.2.9"),
        "the header stays for the backend"
    );

    // The same headers from a peer that is not a trusted proxy change nothing.
    let r = get_from(
        "127.0.0.2",
        s.port,
        "/env.py",
        "X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("127.0.0.2"));
    assert_eq!(var(&r, "HTTPS"), None);
    assert_eq!(var(&r, "REQUEST_SCHEME").as_deref(), Some("http"));

    // No header: the peer. A proto that is not exactly http or https (a list) is ignored.
    assert_eq!(remote_addr(&s, "127.0.0.1", ""), "127.0.0.1");
    let r = get_from(
        "127.0.0.1",
        s.port,
        "/env.py",
        "X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: https, http\r\n",
    );
    assert_eq!(var(&r, "REQUEST_SCHEME").as_deref(), Some("http"));
    // Forwarded-For, the other default header; X-Real-IP is read only when configured.
    assert_eq!(remote_addr(&s, "127.0.0.1", "Forwarded-For: 192.0.2.10\r\n"), "192.0.2.10");
    assert_eq!(remote_addr(&s, "127.0.0.1", "X-Real-IP: 192.0.2.11\r\n"), "127.0.0.1");
}

#[test]
fn x_forwarded_for_chains_networks_and_all() {
    let s = start(
        r#"extforward.forwarder = ( "127.0.0.1" => "trust", "10.0.0.0/8" => "trust",
                         "10.9.9.9" => "untrusted", "2001:db8::/32" => "trust", "::1/128" => "trust" )
extforward.headers = ( "X-Forwarded-For", "X-Real-IP" )
$SERVER["socket"] == "[::1]:@PORT@" { }"#,
    );
    let cases: &[(&str, &str)] = &[
        // The rightmost address that is not a trusted proxy is the client.
        ("X-Forwarded-For: 198.51.100.1, 192.0.2.1, 10.0.0.1, 10.200.0.7", "192.0.2.1"),
        ("X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2", "192.0.2.1"),
        // An address listed as untrusted ends the walk inside a trusted network.
        ("X-Forwarded-For: 192.0.2.1, 10.9.9.9, 10.0.0.1", "10.9.9.9"),
        // IPv6 networks, and an IPv6 client behind them.
        ("X-Forwarded-For: 2001:db9::1, 2001:db8:1::5", "2001:db9::1"),
        // Every hop trusted: nothing changes.
        ("X-Forwarded-For: 10.0.0.1, 2001:db8::1", "127.0.0.1"),
        // Something that is no address where the trust ends: nothing changes.
        ("X-Forwarded-For: 192.0.2.1:1234", "127.0.0.1"),
        // The first configured header present wins.
        ("X-Real-IP: 192.0.2.50\r\nX-Forwarded-For: 192.0.2.51", "192.0.2.51"),
        ("X-Real-IP: 192.0.2.50", "192.0.2.50"),
    ];
    for (h, want) in cases {
        assert_eq!(remote_addr(&s, "127.0.0.1", &format!("{h}\r\n")), *want, "{h}");
    }
    // A trusted peer over IPv6 (::1 is in ::1/128).
    let to = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, s.port));
    let req =
        "GET /env.py HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Forwarded-For: 192.0.2.66\r\n\r\n";
    let r = parse_responses(&exchange(connect_to_from("::1", to), req.as_bytes()), false).remove(0);
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("192.0.2.66"), "{}", r.text());

    // "all": any peer is a trusted proxy, but the chain's hops are checked one by one.
    // A request restarted by a rewrite (mod_rewrite comes after mod_extforward in uri_raw, so
    // mod_extforward runs again, with the client as the peer) keeps the same answer.
    let all = start(
        r#"extforward.forwarder = ( "all" => "trust", "10.0.0.1" => "trust" )
server.modules += ( "mod_rewrite" )
url.rewrite-once = ( "^/old$" => "/env.py" )"#,
    );
    assert_eq!(remote_addr(&all, "127.0.0.2", "X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n"), "192.0.2.1");
    assert_eq!(remote_addr(&all, "127.0.0.2", "X-Forwarded-For: 192.0.2.1, 10.0.0.2\r\n"), "10.0.0.2");
    let r = get_from("127.0.0.2", all.port, "/old", "X-Forwarded-For: 192.0.2.1, 10.0.0.1\r\n");
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("192.0.2.1"), "{}", r.head);
    assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some("/old"));
}

#[test]
fn forwarded_header_for_proto_host_and_quoting() {
    let s = start(
        r#"extforward.forwarder = ( "127.0.0.1" => "trust", "10.0.0.0/8" => "trust" )
extforward.headers = ( "Forwarded", "X-Forwarded-For" )
extforward.params = ( "host" => "enable", "remote_user" => 1 )"#,
    );
    let get = |h: &str| get_from("127.0.0.1", s.port, "/env.py", &format!("Forwarded: {h}\r\n"));
    let r = get(
        r#"for=192.0.2.60;proto=https;host="Example.COM:8443";remote_user="b\"ob", for=10.0.0.1;proto=http"#,
    );
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("192.0.2.60"));
    assert_eq!(var(&r, "HTTPS").as_deref(), Some("on"), "proto of the client's element");
    assert_eq!(var(&r, "HTTP_HOST").as_deref(), Some("example.com:8443"));
    assert_eq!(var(&r, "SERVER_NAME").as_deref(), Some("example.com"));
    assert_eq!(var(&r, "REMOTE_USER").as_deref(), Some("b\"ob"));

    let addr = |h: &str| var(&get(h), "REMOTE_ADDR").unwrap_or_default();
    assert_eq!(addr("for=192.0.2.61"), "192.0.2.61", "a single element");
    assert_eq!(addr(r#"for="[2001:db8:cafe::17]:4711""#), "2001:db8:cafe::17");
    assert_eq!(addr(r#"For="192.0.2.62:80";by=10.0.0.1"#), "192.0.2.62");
    assert_eq!(addr("for=_hidden, for=10.0.0.3"), "10.0.0.3", "trust ends at an obfuscated node");
    assert_eq!(addr("for=unknown"), "127.0.0.1");
    assert_eq!(addr("for=198.51.100.1, for=192.0.2.63, for=10.0.0.1"), "192.0.2.63");
    // Forwarded comes first in extforward.headers.
    let r = get_from(
        "127.0.0.1",
        s.port,
        "/env.py",
        "X-Forwarded-For: 192.0.2.99\r\nForwarded: for=192.0.2.64\r\n",
    );
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("192.0.2.64"));

    // Broken quoting, brackets or host: 400, so that nothing half-parsed is believed.
    for bad in [r#"for="192.0.2.1"#, r#"for="[]""#, r#"for=192.0.2.1;host="bad host""#] {
        assert_eq!(get(bad).status, 400, "{bad}");
    }
    // Not from a trusted proxy: not even parsed.
    let r = get_from("127.0.0.2", s.port, "/env.py", "Forwarded: for=\"192.0.2.1\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("127.0.0.2"));
}

#[test]
fn remoteip_conditions_follow_the_forwarded_address() {
    let s = start(&format!(
        r#"{TRUST_LOCAL}
$HTTP["remoteip"] == "192.0.2.0/24" {{
    setenv.set-response-header = ( "X-Net" => "documentation" )
    server.tag = "behind-proxy"
}}
$HTTP["remoteip"] =~ "^198\.51\.100\." {{
    url.access-deny = ( "" )
}}
$HTTP["scheme"] == "https" {{
    setenv.set-response-header = ( "X-Scheme" => "secure" )
}}"#
    ));
    let r = get_from("127.0.0.1", s.port, "/index.txt", "X-Forwarded-For: 192.0.2.5\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Net"), Some("documentation"), "{}", r.head);
    assert_eq!(r.header("Server"), Some("behind-proxy"), "a core setting of the block applies too");
    let r = get_from("127.0.0.1", s.port, "/index.txt", "X-Forwarded-For: 198.51.100.7\r\n");
    assert_eq!(r.status, 403, "mod_access denies the forwarded client: {}", r.head);
    assert_eq!(r.header("X-Net"), None);
    let r = get_from(
        "127.0.0.1",
        s.port,
        "/index.txt",
        "X-Forwarded-For: 203.0.113.1\r\nX-Forwarded-Proto: https\r\n",
    );
    assert_eq!((r.status, r.header("X-Net"), r.header("X-Scheme")), (200, None, Some("secure")));
    // The proxy itself, and an untrusted peer claiming a denied address, are not affected.
    assert_eq!(get_from("127.0.0.1", s.port, "/index.txt", "").status, 200);
    assert_eq!(get_from("127.0.0.2", s.port, "/index.txt", "X-Forwarded-For: 198.51.100.7\r\n").status, 200);
}

#[test]
fn access_log_and_keep_alive() {
    let s = start(&format!(
        r#"{TRUST_LOCAL}
accesslog.format = "%h %r"
$HTTP["remoteip"] == "192.0.2.5" {{ setenv.set-response-header = ( "X-Client" => "forwarded" ) }}"#
    ));
    let mut c = connect_from("127.0.0.1", s.port);
    c.write_all(b"GET /index.txt HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 192.0.2.5\r\n\r\n")
        .expect("send");
    let first = read_response(&mut c);
    assert_eq!(first.header("X-Client"), Some("forwarded"));
    // The next request on the connection, without the header: the peer again.
    c.write_all(b"GET /env.py HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").expect("send");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let second = parse_responses(&rest, false).remove(0);
    assert_eq!(second.header("X-Client"), None);
    assert_eq!(var(&second, "REMOTE_ADDR").as_deref(), Some("127.0.0.1"));

    let log_path = s.dir.path().join("access.log");
    wait_for("two access log lines", || {
        std::fs::read_to_string(&log_path).is_ok_and(|l| l.lines().count() >= 2)
    });
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines[0], "192.0.2.5 GET /index.txt HTTP/1.1", "{log}");
    assert!(lines[1].starts_with("127.0.0.1 ") && lines[1].ends_with(" GET /env.py HTTP/1.1"), "{log}");
}

/// One response from a keep-alive connection (by Content-Length).
fn read_response(c: &mut TcpStream) -> Response {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(r) = parse_responses(&got, false).into_iter().next() {
            let cl: usize = r.header("Content-Length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if r.body.len() >= cl {
                return r;
            }
        }
        let n = c.read(&mut buf).expect("read a response");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

// ---- the PROXY protocol

const V2_SIG: [u8; 12] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = V2_SIG.to_vec();
    h.push(0x20 | cmd);
    h.push(family);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp4(src: [u8; 4], sport: u16, tlvs: &[u8]) -> Vec<u8> {
    let mut b = src.to_vec();
    b.extend_from_slice(&[198, 51, 100, 9]);
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    b.extend_from_slice(tlvs);
    v2(1, 0x11, &b)
}

fn v2_tcp6(src: std::net::Ipv6Addr, sport: u16) -> Vec<u8> {
    let mut b = src.octets().to_vec();
    b.extend_from_slice(&std::net::Ipv6Addr::LOCALHOST.octets());
    b.extend_from_slice(&sport.to_be_bytes());
    b.extend_from_slice(&443u16.to_be_bytes());
    v2(1, 0x21, &b)
}

fn tlv(t: u8, v: &[u8]) -> Vec<u8> {
    let mut o = vec![t];
    o.extend_from_slice(&(v.len() as u16).to_be_bytes());
    o.extend_from_slice(v);
    o
}

/// A server whose second port expects a PROXY header from trusted peers.
fn start_proxy(extra: &str) -> (Server, u16) {
    let hap = free_port();
    let s = start(&format!(
        r#"{TRUST_LOCAL}
server.max-read-idle = 2
$SERVER["socket"] == "127.0.0.1:{hap}" {{
    extforward.hap-PROXY = "enable"
    extforward.hap-PROXY-ssl-client-verify = "enable"
}}
$HTTP["remoteip"] == "192.0.2.0/24" {{ setenv.set-response-header = ( "X-Net" => "documentation" ) }}
{extra}"#
    ));
    (s, hap)
}

const ENV_REQ: &[u8] = b"GET /env.py HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Send `preface` + ENV_REQ from 127.0.0.1 to `port`; the response.
fn proxied(port: u16, preface: &[u8]) -> Response {
    let mut data = preface.to_vec();
    data.extend_from_slice(ENV_REQ);
    let out = exchange(connect_from("127.0.0.1", port), &data);
    parse_responses(&out, false)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response after {preface:?}: {:?}", String::from_utf8_lossy(&out)))
}

fn addr_port(r: &Response) -> (String, String) {
    (var(r, "REMOTE_ADDR").unwrap_or_default(), var(r, "REMOTE_PORT").unwrap_or_default())
}

#[test]
fn proxy_protocol_v1_and_v2_on_its_socket() {
    let (s, hap) = start_proxy("");
    let r = proxied(hap, b"PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\r\n");
    assert_eq!(addr_port(&r), ("192.0.2.1".into(), "4711".into()), "{}", r.text());
    assert_eq!(r.header("X-Net"), Some("documentation"), "$HTTP[\"remoteip\"] sees the PROXY address");
    assert_eq!(var(&r, "SERVER_PORT"), Some(hap.to_string()), "the local side stays ours");
    let r = proxied(hap, b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 443\r\n");
    assert_eq!(addr_port(&r), ("2001:db8::1".into(), "4711".into()));
    let r = proxied(hap, b"PROXY UNKNOWN\r\n");
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("127.0.0.1"), "UNKNOWN keeps the peer");

    let r = proxied(hap, &v2_tcp4([192, 0, 2, 7], 5555, &tlv(0x04, b"noop")));
    assert_eq!(addr_port(&r), ("192.0.2.7".into(), "5555".into()));
    let r = proxied(hap, &v2_tcp6("2001:db8::7".parse().expect("v6"), 5556));
    assert_eq!(addr_port(&r), ("2001:db8::7".into(), "5556".into()));
    // LOCAL (a health check): the peer's own address, even with addresses in the block.
    let r = proxied(hap, &v2(0, 0x00, &[]));
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("127.0.0.1"));
    assert_eq!(var(&r, "SSL_CLIENT_VERIFY").as_deref(), Some("NONE"));
    let local = v2_tcp4([192, 0, 2, 7], 5555, &[]);
    let mut local_cmd = local.clone();
    local_cmd[12] = 0x20;
    assert_eq!(var(&proxied(hap, &local_cmd), "REMOTE_ADDR").as_deref(), Some("127.0.0.1"));

    // TLS at the proxy (PP2_TYPE_SSL): https, the TLS variables, the verified client.
    let mut ssl = vec![0x01 | 0x02];
    ssl.extend_from_slice(&0u32.to_be_bytes());
    ssl.extend(tlv(0x21, b"TLSv1.3"));
    ssl.extend(tlv(0x22, b"alice"));
    let mut tlvs = tlv(0x20, &ssl);
    tlvs.extend(tlv(0x05, b"req-42"));
    let r = proxied(hap, &v2_tcp4([192, 0, 2, 8], 6000, &tlvs));
    assert_eq!(var(&r, "HTTPS").as_deref(), Some("on"), "{}", r.text());
    assert_eq!(var(&r, "REQUEST_SCHEME").as_deref(), Some("https"));
    assert_eq!(var(&r, "SSL_PROTOCOL").as_deref(), Some("TLSv1.3"));
    assert_eq!(var(&r, "PP2_UNIQUE_ID").as_deref(), Some("req-42"));
    assert_eq!(var(&r, "SSL_CLIENT_VERIFY").as_deref(), Some("SUCCESS"));
    assert_eq!(var(&r, "REMOTE_USER").as_deref(), Some("alice"));
    assert_eq!(var(&r, "AUTH_TYPE").as_deref(), Some("SSL_CLIENT_VERIFY"));

    // The PROXY address is the connection's: a second request on it keeps it. Headers from
    // the (untrusted) client behind the proxy are not believed.
    let mut c = connect_from("127.0.0.1", hap);
    c.write_all(b"PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\r\n").expect("send");
    c.write_all(b"GET /index.txt HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n")
        .expect("send");
    let first = read_response(&mut c);
    assert_eq!(first.header("X-Net"), Some("documentation"));
    c.write_all(ENV_REQ).expect("send");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let second = parse_responses(&rest, false).remove(0);
    assert_eq!(addr_port(&second), ("192.0.2.1".into(), "4711".into()));

    // The other port needs no PROXY header, and a PROXY line there is just a bad request.
    let r = get_from("127.0.0.1", s.port, "/env.py", "");
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("127.0.0.1"));
    let out =
        exchange(connect_from("127.0.0.1", s.port), b"PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\r\n\r\n");
    let r = parse_responses(&out, false).remove(0);
    assert!(r.status >= 400, "{}", r.head);
    // An untrusted peer on the PROXY port is served as plain HTTP (lighttpd's rule).
    let r = parse_responses(&exchange(connect_from("127.0.0.2", hap), ENV_REQ), false).remove(0);
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("127.0.0.2"));
}

/// The connection closes without a byte of response, promptly.
fn closed_without_response(port: u16, data: &[u8], half_close: bool) {
    let mut c = connect_from("127.0.0.1", port);
    c.write_all(data).expect("send");
    if half_close {
        let _ = c.shutdown(std::net::Shutdown::Write);
    }
    let t = Instant::now();
    let mut out = Vec::new();
    let r = c.read_to_end(&mut out);
    assert!(out.is_empty(), "{data:?} got a response: {:?}", String::from_utf8_lossy(&out));
    assert!(r.is_ok() || t.elapsed() < Duration::from_secs(9), "{data:?}: not closed ({r:?})");
}

#[test]
fn bad_and_truncated_proxy_headers_close_only_their_connection() {
    let (s, hap) = start_proxy("");
    let mut bad_v2 = v2_tcp4([192, 0, 2, 7], 5555, &[]);
    bad_v2[12] = 0x22; // command 2 does not exist
    let cases: Vec<Vec<u8>> = vec![
        b"PROXY TCP4 192.0.2.1 198.51.100.2 0 443\r\n".to_vec(),
        b"PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\n".to_vec(),
        b"PROXY TCP5 192.0.2.1 198.51.100.2 4711 443\r\n".to_vec(),
        b"PROXY TCP4 2001:db8::1 198.51.100.2 4711 443\r\n".to_vec(),
        format!("PROXY TCP4 {}\r\n", "9".repeat(200)).into_bytes(),
        bad_v2,
        // A trusted peer that forgot the PROXY header.
        ENV_REQ.to_vec(),
    ];
    for data in &cases {
        let mut d = data.clone();
        d.extend_from_slice(ENV_REQ);
        closed_without_response(hap, &d, false);
    }
    // Truncated: the peer closes before the header is complete.
    let full = v2_tcp4([192, 0, 2, 7], 5555, &tlv(0x04, b"noop"));
    for cut in [1, 11, 15, 16, full.len() - 1] {
        closed_without_response(hap, &full[..cut], true);
    }
    closed_without_response(hap, b"PROXY TCP4 192.0.2.1 198.51.100.2 4711 443\r", true);
    // Nothing at all, the connection left open: closed by server.max-read-idle (2 s here).
    let mut silent = connect_from("127.0.0.1", hap);
    let t = Instant::now();
    let mut buf = [0u8; 16];
    let n = silent.read(&mut buf).expect("closed, not timed out");
    assert_eq!(n, 0);
    assert!(t.elapsed() >= Duration::from_secs(1), "closed after {:?}", t.elapsed());
    // A header that arrives in pieces is fine.
    let mut c = connect_from("127.0.0.1", hap);
    c.write_all(&full[..10]).expect("send");
    std::thread::sleep(Duration::from_millis(50));
    c.write_all(&full[10..]).expect("send");
    let r = parse_responses(&exchange(c, ENV_REQ), false).remove(0);
    assert_eq!(var(&r, "REMOTE_ADDR").as_deref(), Some("192.0.2.7"));
    // The server goes on serving both ports.
    assert_eq!(get_from("127.0.0.1", s.port, "/index.txt", "").status, 200);
    assert_eq!(
        var(&proxied(hap, b"PROXY TCP4 192.0.2.3 198.51.100.2 1 2\r\n"), "REMOTE_ADDR").as_deref(),
        Some("192.0.2.3")
    );
    let log = s.wait_log("hap-PROXY from 127.0.0.1: invalid or unsupported header");
    assert!(!log.contains("panic"), "{log}");
}

#[test]
fn bad_configuration_is_refused_with_its_line() {
    let cases = [
        (r#"extforward.forwarder = ( "localhost" => "trust" )"#, "\"localhost\" is not an IP address"),
        (r#"extforward.forwarder = ( "10.0.0.0/33" => "trust" )"#, "invalid netmask"),
        (r#"extforward.params = ( "by" => "enable" )"#, "keys must be one of"),
        (r#"extforward.params = ( "host" => "maybe" )"#, "values must be one of"),
        (r#"extforward.headers = ( "Bad Header" )"#, "is not a header name"),
    ];
    for (line, want) in cases {
        let conf = format!("{BASE}\nserver.modules = ( \"mod_extforward\" )\n{line}\n");
        let f = Server::start_fail(&conf, None);
        assert!(f.stderr.contains(want) && f.stderr.contains("featherd.conf:"), "{line}: {}", f.stderr);
    }
    // A value other than "trust" is accepted as untrusted, with a warning (lighttpd's rule).
    let s = start(r#"extforward.forwarder = ( "127.0.0.1" => "yes" )"#);
    assert_eq!(remote_addr(&s, "127.0.0.1", "X-Forwarded-For: 192.0.2.1\r\n"), "127.0.0.1");
    s.wait_log("treated as untrusted");
}

/// tests/fixtures/proxy/backend.py (it echoes the request's headers), killed on drop.
struct Backend(std::process::Child, u16);

impl Backend {
    fn start() -> Backend {
        use std::io::BufRead;
        let port = free_port();
        let mut child = std::process::Command::new("python3")
            .arg(workspace_root().join("tests/fixtures/proxy/backend.py"))
            .arg(port.to_string())
            .arg("b1")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start python3 backend");
        let mut line = String::new();
        let out = child.stdout.take().expect("backend stdout");
        std::io::BufReader::new(out).read_line(&mut line).expect("backend ready line");
        assert!(line.starts_with("ready"), "backend did not start: {line:?}");
        Backend(child, port)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn proxied_backends_get_the_client_and_the_hop() {
    let b = Backend::start();
    let conf = format!(
        "{BASE}\nserver.modules = ( \"mod_extforward\", \"mod_proxy\" )\n{TRUST_LOCAL}\n\
         proxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => {} ) ) )\n\
         proxy.forwarded = ( \"for\" => 1, \"proto\" => 1 )\n",
        b.1
    );
    let s = Server::start(&conf);
    let echoed = |r: &Response, name: &str| -> Option<String> {
        r.text().lines().find_map(|l| {
            let (n, v) = l.strip_prefix("header: ")?.split_once(": ")?;
            n.eq_ignore_ascii_case(name).then(|| v.to_string())
        })
    };
    let r = get_from("127.0.0.1", s.port, "/x", "X-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Proto: https\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    // As lighttpd: the chain keeps the client and gets the hop this server saw.
    assert_eq!(echoed(&r, "X-Forwarded-For").as_deref(), Some("192.0.2.9, 127.0.0.1"), "{}", r.text());
    assert_eq!(echoed(&r, "Forwarded").as_deref(), Some("for=192.0.2.9, for=127.0.0.1;proto=https"));
    assert_eq!(echoed(&r, "X-Forwarded-Proto").as_deref(), Some("https"));
    // Without a trusted proxy in front: the client is the hop.
    let r = get_from("127.0.0.2", s.port, "/x", "X-Forwarded-For: 192.0.2.9\r\n");
    assert_eq!(echoed(&r, "X-Forwarded-For").as_deref(), Some("192.0.2.9, 127.0.0.2"));
    assert_eq!(echoed(&r, "Forwarded").as_deref(), Some("for=127.0.0.2;proto=http"));
}
