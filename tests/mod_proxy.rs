//! mod_proxy end to end: the real featherd with mod_proxy.so in front of real backends (the
//! stdlib Python server in tests/fixtures/proxy/backend.py, and a second featherd).

use featherd_e2e::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Python backend on a free port, killed on drop.
struct Backend {
    child: Child,
    port: u16,
}

impl Backend {
    fn start(name: &str) -> Backend {
        let port = free_port();
        Self::start_at(&port.to_string(), name, port)
    }

    /// Listening on a unix socket at `path` (port 0: no direct stats).
    fn start_unix(path: &std::path::Path, name: &str) -> Backend {
        Self::start_at(&path.display().to_string(), name, 0)
    }

    fn start_at(addr: &str, name: &str, port: u16) -> Backend {
        let script = workspace_root().join("tests/fixtures/proxy/backend.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(addr)
            .arg(name)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start python3 backend");
        // Readiness: the backend prints "ready PORT" once it listens.
        let mut line = String::new();
        let out = child.stdout.take().expect("backend stdout");
        BufReader::new(out).read_line(&mut line).expect("backend ready line");
        assert!(line.starts_with("ready"), "backend did not start: {line:?}");
        Backend { child, port }
    }

    /// The backend's counters, asked directly (not through the proxy).
    fn stats(&self) -> (u64, u64, u64) {
        let r = get(self.port, "/stats");
        let t = r.text();
        let num = |k: &str| -> u64 {
            let i = t.find(&format!("\"{k}\": ")).unwrap_or_else(|| panic!("{k} in {t}")) + k.len() + 4;
            t[i..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0)
        };
        // The stats request itself opened one connection.
        (num("connections") - 1, num("requests"), num("aborted"))
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proxy_conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules = ( \"mod_proxy\" )\n{extra}\n")
}

fn one_host(port: u16) -> String {
    format!("proxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => {port} ) ) )")
}

/// The echo's "key: value" lines.
fn echo_values(r: &Response, key: &str) -> Vec<String> {
    let p = format!("{key}: ");
    r.text().lines().filter_map(|l| l.strip_prefix(&p).map(str::to_owned)).collect()
}

fn echo_header(r: &Response, name: &str) -> Option<String> {
    echo_values(r, "header").into_iter().find_map(|h| {
        let (n, v) = h.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then(|| v.to_string())
    })
}

#[test]
fn forwards_request_and_strips_hop_by_hop_headers() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    let body = "a=1&b=2";
    let r = request(
        s.port,
        &format!(
            "POST /submit?x=%41 HTTP/1.1\r\nHost: front.example\r\nConnection: close, X-Private\r\n\
             X-Private: secret\r\nUpgrade: h2c\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\
             X-Forwarded-For: 10.9.8.7\r\nX-Custom: kept\r\nContent-Type: text/plain\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(echo_values(&r, "method"), ["POST"]);
    assert_eq!(echo_values(&r, "path"), ["/submit?x=%41"], "the raw target goes to the backend");
    assert_eq!(echo_values(&r, "version"), ["HTTP/1.1"]);
    assert_eq!(echo_values(&r, "body"), [body]);
    assert_eq!(echo_header(&r, "Host").as_deref(), Some("front.example"));
    assert_eq!(echo_header(&r, "X-Custom").as_deref(), Some("kept"));
    assert_eq!(echo_header(&r, "Content-Length").as_deref(), Some("7"));
    for h in ["X-Private", "Keep-Alive", "TE", "Proxy-Connection", "Upgrade", "Connection"] {
        assert_eq!(echo_header(&r, h), None, "{h} is hop-by-hop:\n{}", r.text());
    }
    assert_eq!(echo_header(&r, "X-Forwarded-For").as_deref(), Some("10.9.8.7, 127.0.0.1"));
    assert_eq!(echo_header(&r, "X-Host").as_deref(), Some("front.example"));
    assert_eq!(echo_header(&r, "X-Forwarded-Host").as_deref(), Some("front.example"));
    assert_eq!(echo_header(&r, "X-Forwarded-Proto").as_deref(), Some("http"));
    assert_eq!(echo_header(&r, "Forwarded"), None, "only with proxy.forwarded");
    // The backend's end-to-end response headers come through.
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
}

#[test]
fn forwarded_header_and_replace_http_host() {
    let b = Backend::start("b1");
    let conf = format!(
        "{}\nproxy.replace-http-host = 1\nproxy.forwarded = ( \"for\" => 1, \"proto\" => 1, \"host\" => 1, \"by\" => 1 )",
        one_host(b.port)
    );
    let s = Server::start(&proxy_conf(&conf));
    let r = request(
        s.port,
        "GET /f HTTP/1.1\r\nHost: front.example\r\nForwarded: for=192.0.2.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(echo_header(&r, "Host"), Some(format!("127.0.0.1:{}", b.port)));
    assert_eq!(
        echo_header(&r, "Forwarded"),
        Some(format!(
            "for=192.0.2.1, for=127.0.0.1;proto=http;host=front.example;by=\"127.0.0.1:{}\"",
            s.port
        ))
    );
}

#[test]
fn map_host_and_urlpath_both_ways() {
    let b = Backend::start("b1");
    let conf = format!(
        "{}\nproxy.header = ( \"map-host-request\" => ( \"-\" => \"backend.internal\" ),\n\
         \"map-host-response\" => ( \"-\" => \"-\" ),\n\
         \"map-urlpath\" => ( \"/front/\" => \"/back/\" ) )",
        one_host(b.port)
    );
    let s = Server::start(&proxy_conf(&conf));
    let r = request(s.port, "GET /front/echo HTTP/1.1\r\nHost: front.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(echo_values(&r, "path"), ["/back/echo"]);
    assert_eq!(echo_header(&r, "Host").as_deref(), Some("backend.internal"));
    assert_eq!(echo_header(&r, "X-Host").as_deref(), Some("front.example"));

    let r =
        request(s.port, "GET /front/redirect HTTP/1.1\r\nHost: front.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some("http://front.example/front/target?x=1"));
    assert_eq!(r.header("Content-Location"), Some("/front/here"));
    assert_eq!(r.header("Set-Cookie"), Some("sid=1; Domain=front.example; Path=/front/"));
}

#[test]
fn response_framing_chunked_close_delimited_and_bad_backends() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    let r = s.get("/chunked");
    assert_eq!((r.status, r.text().as_str()), (200, "part1-part2-part3"));
    assert_eq!(r.header("X-Trailer"), None);
    let r = s.get("/http10");
    assert_eq!((r.status, r.text().as_str()), (200, "old style body"));
    // HTTP/1.0 client: a close-delimited body.
    let r = request(s.port, "GET /chunked HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "part1-part2-part3"));
    let r = request(s.port, "HEAD /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.header("Content-Length").is_some_and(|l| l != "0"), "{}", r.head);
    assert_eq!(s.get("/garbage").status, 502);
    assert_eq!(s.get("/close-no-response").status, 502);
    // Cut short: if the head went out already the client sees a short body and a closed
    // connection; if not, an error status. Never a complete-looking 200.
    let raw_resp = raw(s.port, b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n");
    let text = String::from_utf8_lossy(&raw_resp);
    if text.starts_with("HTTP/1.1 200") {
        let body_len = raw_resp.len() - text.find("\r\n\r\n").map_or(0, |i| i + 4);
        assert!(body_len < 100_000, "a cut response must not look complete");
    } else {
        assert!(text.starts_with("HTTP/1.1 50"), "{text}");
        assert!(text.contains("Connection: close"), "{text}");
    }
    // The server goes on.
    assert_eq!(s.get("/echo").status, 200);
}

#[test]
fn silent_backend_gives_504() {
    let b = Backend::start("b1");
    let conf = format!(
        "proxy.server = ( \"/\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => {}, \"read-timeout\" => 1 ) ) )",
        b.port
    );
    let s = Server::start(&proxy_conf(&conf));
    let t = Instant::now();
    let r = s.get("/slow?ms=4000");
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    assert_eq!(s.get("/slow?ms=10").status, 200);
}

fn two_hosts(a: u16, b: u16, balance: &str) -> String {
    format!(
        "proxy.balance = \"{balance}\"\nproxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => {a} ),\n\
         ( \"host\" => \"127.0.0.1\", \"port\" => {b} ) ) )"
    )
}

fn names(port: u16, n: usize) -> (usize, usize) {
    let mut c = (0, 0);
    for _ in 0..n {
        let r = get(port, "/who");
        assert_eq!(r.status, 200);
        match echo_values(&r, "name").first().map(String::as_str) {
            Some("one") => c.0 += 1,
            Some("two") => c.1 += 1,
            other => panic!("unexpected backend {other:?}"),
        }
    }
    c
}

#[test]
fn round_robin_and_sticky_balancing() {
    let b1 = Backend::start("one");
    let b2 = Backend::start("two");
    let s = Server::start(&proxy_conf(&two_hosts(b1.port, b2.port, "round-robin")));
    assert_eq!(names(s.port, 10), (5, 5));
    drop(s);
    let s = Server::start(&proxy_conf(&two_hosts(b1.port, b2.port, "sticky")));
    let c = names(s.port, 10);
    assert!(c == (10, 0) || c == (0, 10), "one client stays on one host: {c:?}");
}

#[test]
fn backend_down_gives_503_and_the_other_host_is_used() {
    let dead = free_port();
    let s = Server::start(&proxy_conf(&one_host(dead)));
    assert_eq!(s.get("/x").status, 503);
    assert!(s.wait_log("failed").contains(&dead.to_string()));
    drop(s);
    let b = Backend::start("two");
    let s = Server::start(&proxy_conf(&two_hosts(dead, b.port, "round-robin")));
    for _ in 0..6 {
        let r = s.get("/x");
        assert_eq!(r.status, 200);
        assert_eq!(echo_values(&r, "name"), ["two"]);
    }
}

/// Read one response with a Content-Length body from a kept-alive connection.
fn read_one(s: &mut TcpStream) -> Response {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let cl: usize = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
                .and_then(|v| v.trim().parse().ok())
                .expect("content-length");
            while buf.len() < end + 4 + cl {
                let n = s.read(&mut b).expect("read body");
                assert!(n > 0, "closed mid-body");
                buf.extend_from_slice(&b[..n]);
            }
            return parse_responses(&buf[..end + 4 + cl], false).remove(0);
        }
        let n = s.read(&mut b).expect("read head");
        assert!(n > 0, "closed before a response");
        buf.extend_from_slice(&b[..n]);
    }
}

fn keepalive_run(port: u16, n: usize) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    for i in 0..n {
        c.write_all(format!("GET /k{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("send");
        let r = read_one(&mut c);
        assert_eq!(r.status, 200);
        assert_eq!(echo_values(&r, "path"), [format!("/k{i}")]);
    }
}

#[test]
fn backend_connections_are_kept_alive_and_reused() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    keepalive_run(s.port, 10);
    let (conns, reqs, _) = b.stats();
    eprintln!("backend connections: {conns}");
    assert_eq!(reqs, 10);
    assert!(conns <= 2, "10 requests over one client connection used {conns} backend connections");
    drop(s);

    // force-http10: one backend connection per request, HTTP/1.0 on the wire.
    let b = Backend::start("b2");
    let conf = format!("{}\nproxy.header = ( \"force-http10\" => \"enable\" )", one_host(b.port));
    let s = Server::start(&proxy_conf(&conf));
    keepalive_run(s.port, 5);
    assert_eq!(b.stats().0, 5);
    assert_eq!(echo_values(&s.get("/v"), "version"), ["HTTP/1.0"]);
}

#[test]
fn a_kept_connection_the_backend_closed_is_not_used() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    for path in ["/close-after", "/echo", "/close-after", "/echo"] {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("send");
        let r = read_one(&mut c);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_eq!(b.stats().0, 3, "a new connection after each close, the /echo one reused");
}

#[test]
fn large_request_body_is_sent_whole() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    let body: String = (0..3 * 1024 * 1024).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
    c.write_all(
        format!(
            "PUT /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .expect("send head");
    c.write_all(body.as_bytes()).expect("send body");
    let mut out = Vec::new();
    let mut b2 = [0u8; 65536];
    loop {
        let n = c.read(&mut b2).expect("read");
        out.extend_from_slice(&b2[..n]);
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let rest = out.strip_prefix(&interim[..]).unwrap_or(&out);
        let rs = parse_responses(rest, false);
        if let Some(r) = rs.iter().find(|r| r.status == 200) {
            if r.header("Content-Length").and_then(|l| l.parse::<usize>().ok()) == Some(r.body.len()) {
                assert_eq!(echo_values(r, "body"), [body.as_str()]);
                assert_eq!(echo_header(r, "Expect"), None, "the core answered 100-continue itself");
                return;
            }
        }
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&out[..out.len().min(600)]));
    }
}

#[test]
fn unix_socket_backend() {
    let dir = TempDir::new("proxy-sock");
    let sock = dir.path().join("backend.sock");
    let _b = Backend::start_unix(&sock, "unix");
    let conf = format!("proxy.server = ( \"/u\" => ( ( \"socket\" => \"{}\" ) ) )", sock.display());
    let s = Server::start(&proxy_conf(&conf));
    let r = request(s.port, "GET /u/x HTTP/1.1\r\nHost: front.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(echo_values(&r, "name"), ["unix"]);
    assert_eq!(echo_header(&r, "Host").as_deref(), Some("front.example"));
    // Outside the mount: not proxied (no such file here).
    assert_eq!(s.get("/other").status, 404);
}

#[test]
fn featherd_as_backend() {
    let back = Server::start(&format!("{BASE}\nserver.modules = ( \"mod_staticfile\" )\n"));
    std::fs::write(back.docroot().join("file.txt"), "served by the backend featherd\n").expect("write");
    let s = Server::start(&proxy_conf(&one_host(back.port)));
    let r = s.get("/file.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "served by the backend featherd\n"));
    assert!(r.header("ETag").is_some(), "the backend's headers come through: {}", r.head);
    assert_eq!(s.get("/missing").status, 404);
}

fn vm_rss_kib(pid: i32) -> u64 {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    st.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

#[test]
fn large_download_streams_with_bounded_memory() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    let total: u64 = 100 * 1024 * 1024;
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    c.write_all(
        format!("GET /large?bytes={total} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("send");
    let mut buf = vec![0u8; 256 * 1024];
    let mut got: u64 = 0;
    let mut max_rss = 0;
    let mut reads = 0u64;
    loop {
        let n = c.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        got += n as u64;
        reads += 1;
        if reads & 15 == 0 {
            max_rss = max_rss.max(vm_rss_kib(s.pid()));
        }
        if reads == 8 {
            // A slow client for a moment: the proxy must stop reading the backend.
            std::thread::sleep(Duration::from_millis(500));
            max_rss = max_rss.max(vm_rss_kib(s.pid()));
        }
    }
    assert!(got > total, "head + {total} body bytes, got {got}");
    assert!(got < total + 4096);
    eprintln!("max RSS {max_rss} KiB");
    assert!(max_rss > 0 && max_rss < 64 * 1024, "featherd RSS reached {max_rss} KiB");
}

#[test]
fn client_gone_closes_the_backend_connection() {
    let b = Backend::start("b1");
    let s = Server::start(&proxy_conf(&one_host(b.port)));
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(b"GET /large?bytes=2000000000 HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < 1024 * 1024 {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0);
        got += n;
    }
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if b.stats().2 >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the backend never saw its connection closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The worker goes on.
    assert_eq!(s.get("/echo").status, 200);
}

#[test]
fn bad_configuration_is_refused_with_its_line() {
    for (conf, needle) in [
        ("proxy.header = ( \"map-hots-request\" => ( \"a\" => \"b\" ) )", "map-hots-request"),
        ("proxy.balance = \"random\"", "random"),
        ("proxy.forwarded = ( \"four\" => 1 )", "four"),
        ("proxy.server = ( \"/a\" => ( ( \"host\" => \"127.0.0.1\" ) ) )", "needs"),
    ] {
        let f = Server::start_fail(&proxy_conf(conf), None);
        assert!(f.stderr.contains(needle), "{conf}: {}", f.stderr);
        assert!(f.stderr.contains("featherd.conf:"), "file:line for {conf}: {}", f.stderr);
    }
}

/// A WebSocket echo through `proxy.header = ( "upgrade" => "enable" )`: the handshake is
/// relayed, then frames flow both ways over the tunnel until the client closes.
#[test]
fn websocket_echo_through_upgrade() {
    let port = free_port();
    let mut ws = Command::new("python3")
        .arg(workspace_root().join("tests/fixtures/proxy/ws_echo.py"))
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the WebSocket echo server");
    let mut line = String::new();
    BufReader::new(ws.stdout.take().expect("stdout")).read_line(&mut line).expect("ready line");
    assert!(line.starts_with("ready"), "{line:?}");
    let conf = proxy_conf(&format!("{}\nproxy.header = ( \"upgrade\" => \"enable\" )\n", one_host(port)));
    let s = Server::start(&conf);
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        c.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(lower.contains("upgrade: websocket") && lower.contains("connection: upgrade"), "{head}");
    // RFC 6455's example key and its accept value.
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    assert!(!lower.contains("transfer-encoding") && !lower.contains("content-length"), "{head}");
    for msg in ["hello".to_string(), "through the tunnel".to_string(), "x".repeat(300)] {
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut f = vec![0x81u8];
        if msg.len() < 126 {
            f.push(0x80 | msg.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(msg.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&mask);
        f.extend(msg.bytes().enumerate().map(|(i, x)| x ^ mask[i % 4]));
        c.write_all(&f).unwrap();
        let mut h = [0u8; 2];
        c.read_exact(&mut h).unwrap();
        assert_eq!(h[0], 0x81, "an unmasked text frame comes back");
        let n = match h[1] {
            126 => {
                let mut l = [0u8; 2];
                c.read_exact(&mut l).unwrap();
                u16::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; n];
        c.read_exact(&mut p).unwrap();
        assert_eq!(String::from_utf8_lossy(&p), msg);
    }
    // A close frame: the echo server answers and closes; the tunnel closes towards us too.
    c.write_all(&[0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2]).unwrap();
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(rest.starts_with(&[0x88]), "close frame relayed: {rest:?}");
    let _ = ws.kill();
    let _ = ws.wait();
}

/// `path` through the proxy with a given Host: the backend's name.
fn name_for(port: u16, host: &str, path: &str) -> String {
    let r = request(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
    assert_eq!(r.status, 200);
    echo_values(&r, "name").first().cloned().unwrap_or_default()
}

#[test]
fn hash_balancing_keeps_a_url_on_one_host_and_spreads_urls() {
    let b1 = Backend::start("one");
    let b2 = Backend::start("two");
    let s = Server::start(&proxy_conf(&two_hosts(b1.port, b2.port, "hash")));
    let mut seen = std::collections::HashSet::new();
    for i in 0..24 {
        let path = format!("/page/{i}");
        let first = name_for(s.port, "site.test", &path);
        // The same path and authority always land on the same host.
        for _ in 0..3 {
            assert_eq!(name_for(s.port, "site.test", &path), first, "{path}");
        }
        seen.insert(first);
    }
    assert_eq!(seen.len(), 2, "24 different URLs use both hosts: {seen:?}");
    // The authority is part of the key: some path moves when only the host differs.
    let moved = (0..24).any(|i| {
        let p = format!("/page/{i}");
        name_for(s.port, "site.test", &p) != name_for(s.port, "other.test", &p)
    });
    assert!(moved, "the hash includes the authority");
    // A disabled host's URLs go to the other one.
    drop(b2);
    for i in 0..6 {
        assert_eq!(name_for(s.port, "site.test", &format!("/page/{i}")), "one");
    }
}

/// Read a response head (up to the blank line) from a raw socket.
fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[test]
fn connect_tunnels_to_the_backend_when_enabled() {
    let back = Server::start(&format!("{BASE}\nserver.modules = ( \"mod_staticfile\" )\n"));
    std::fs::write(back.docroot().join("t.txt"), "through the tunnel\n").expect("write");
    let s = Server::start(&proxy_conf(&format!(
        "$HTTP[\"host\"] == \"tunnel.test\" {{\n{}\nproxy.header = ( \"connect\" => \"enable\" )\n}}\n\
         else $HTTP[\"host\"] == \"plain.test\" {{\n{}\n}}",
        one_host(back.port),
        one_host(back.port)
    )));

    // A raw CONNECT: 200 without framing headers, then bytes both ways.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    c.write_all(b"CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n").expect("send");
    let head = read_head(&mut c);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("content-length") && !lower.contains("transfer-encoding"), "{head}");
    c.write_all(b"GET /t.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    let inner = String::from_utf8_lossy(&rest);
    assert!(inner.starts_with("HTTP/1.1 200 OK"), "{inner}");
    assert!(inner.ends_with("through the tunnel\n"), "{inner}");

    // curl as a real proxy client (--proxytunnel sends CONNECT).
    let (code, out, err) = curl(&[
        "-s",
        "-p",
        "-x",
        &format!("http://127.0.0.1:{}", s.port),
        // The authority selects the config block; the tunnel goes to its proxy.server.
        "http://tunnel.test:443/t.txt",
    ]);
    assert_eq!((code, out.as_str()), (0, "through the tunnel\n"), "{err}");

    // Where "connect" is not enabled, or for a host without any proxy, CONNECT is not allowed.
    for host in ["plain.test:443", "elsewhere.test:443"] {
        let r = request(s.port, &format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(r.status, 405, "{host}: {}", r.head);
    }
    // Authority-form is required: no path, a port, no userinfo.
    for target in ["/x", "tunnel.test", "user@tunnel.test:443"] {
        let r = request(s.port, &format!("CONNECT {target} HTTP/1.1\r\nHost: tunnel.test\r\n\r\n"));
        assert_eq!(r.status, 400, "{target}");
    }
    // The server is still fine.
    let r = request(s.port, "GET /t.txt HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
}
