//! mod_fastcgi end to end, with real backends: php-cgi started by featherd (`bin-path`) and by
//! spawn-fcgi (unix socket and TCP), fcgiwrap running shell and Perl CGI scripts, and a Python
//! WSGI application over flup (responder and authorizer).

use featherd_e2e::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn fixtures() -> PathBuf {
    workspace_root().join("tests/fixtures/fastcgi")
}

/// A temp dir whose docroot holds the PHP fixtures and a static file.
fn site() -> TempDir {
    let dir = TempDir::new("fcgi");
    for f in [
        "env.php",
        "post.php",
        "status.php",
        "redirect.php",
        "local.php",
        "sendfile.php",
        "slow.php",
        "stream.php",
    ] {
        dir.write(&format!("www/{f}"), std::fs::read(fixtures().join(f)).expect("fixture"));
    }
    dir.write("www/target.txt", "the target of a local redirect\n");
    dir.write("allowed/file.txt", "sent by X-Sendfile\n");
    dir.write("secret/file.txt", "must not be sent\n");
    dir
}

/// A process the test started, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_socket(p: &Path) {
    wait_until(&format!("socket {}", p.display()), || std::os::unix::net::UnixStream::connect(p).is_ok());
}

fn wait_port(port: u16) {
    wait_until(&format!("port {port}"), || TcpStream::connect(("127.0.0.1", port)).is_ok());
}

/// php-cgi under spawn-fcgi in the foreground (-n), on a unix socket or a TCP port.
fn spawn_fcgi_php(args: &[&str]) -> Proc {
    let c = Command::new("spawn-fcgi")
        .arg("-n")
        .args(args)
        .arg("--")
        .arg("/usr/bin/php-cgi")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn-fcgi (apt install spawn-fcgi php-cgi)");
    Proc(c)
}

/// The Python WSGI app over flup.
fn flup(mode: &str, addr: &str, name: &str) -> Proc {
    let mut c = Command::new("python3")
        .arg(fixtures().join("app.py"))
        .args([mode, addr, name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = [0u8; 6];
    let _ = c.stdout.as_mut().expect("stdout").read_exact(&mut line);
    let p = Proc(c);
    if addr.starts_with('/') {
        wait_socket(Path::new(addr));
    } else if let Some(port) = addr.rsplit(':').next().and_then(|p| p.parse().ok()) {
        wait_port(port);
    }
    p
}

fn php_conf(server: &str) -> String {
    format!(
        "{BASE}\nserver.modules = ( \"mod_fastcgi\", \"mod_staticfile\" )\n\
         mimetype.assign = ( \".txt\" => \"text/plain\" )\nfastcgi.server = {server}\n"
    )
}

const PHP_BIN: &str = r#"( ".php" => ( "php" => (
    "socket" => "@DIR@/php.sock",
    "bin-path" => "/usr/bin/php-cgi",
    "x-sendfile" => "enable",
    "x-sendfile-docroot" => ( "@DIR@/allowed" ),
) ) )"#;

fn kv(text: &str, k: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{k}=")))
        .unwrap_or_else(|| panic!("{k} missing in {text}"))
        .to_string()
}

#[test]
fn php_bin_path_environment() {
    let s = Server::start_in(site(), &php_conf(PHP_BIN), None);
    let r = request(
        s.port,
        "GET /env.php/extra/path?a=1&b=two HTTP/1.1\r\nHost: example.test\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.error_log());
    let t = r.text();
    assert_eq!(kv(&t, "SCRIPT_NAME"), "/env.php");
    assert_eq!(kv(&t, "SCRIPT_FILENAME"), format!("{}/env.php", s.docroot().display()));
    assert_eq!(kv(&t, "PATH_INFO"), "/extra/path");
    assert_eq!(kv(&t, "QUERY_STRING"), "a=1&b=two");
    assert_eq!(kv(&t, "REQUEST_URI"), "/env.php/extra/path?a=1&b=two");
    assert_eq!(kv(&t, "HTTP_X_TEST"), "yes");
    assert_eq!(kv(&t, "HTTP_HOST"), "example.test");
    assert!(kv(&t, "SERVER_SOFTWARE").starts_with("featherd/"));
    assert_eq!(r.header("Content-Type"), Some("text/plain;charset=UTF-8"));
    // check-local: a missing script is the server's 404, not the backend's.
    assert_eq!(s.get("/missing.php").status, 404);
    // The static file next to it is not for FastCGI.
    assert_eq!(s.get("/target.txt").text(), "the target of a local redirect\n");
}

#[test]
fn php_post_echo_large_body() {
    let s = Server::start_in(site(), &php_conf(PHP_BIN), None);
    let body: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i * 7 % 251) as u8).collect();
    let f = s.dir.write("body.bin", &body);
    let out = s.dir.path().join("out.bin");
    let (code, head, err) = curl(&[
        "-D",
        "-",
        "-o",
        out.to_str().expect("utf8"),
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("http://127.0.0.1:{}/post.php", s.port),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(head.contains(&format!("X-Len: {}", body.len())), "{head}\n{}", s.error_log());
    assert_eq!(std::fs::read(&out).expect("out"), body);
}

#[test]
fn php_status_and_redirects() {
    let s = Server::start_in(site(), &php_conf(PHP_BIN), None);
    let r = s.get("/status.php");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "short and stout\n");
    let r = s.get("/redirect.php");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("Location"), Some("http://example.org/elsewhere"));
    // Local redirect: the server serves /target.txt itself, the client sees no redirect.
    let r = s.get("/local.php");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.text(), "the target of a local redirect\n");
    assert!(r.header("Location").is_none());
}

#[test]
fn php_x_sendfile_inside_and_outside_the_docroot() {
    let dir = site();
    let allowed = dir.path().join("allowed/file.txt");
    let secret = dir.path().join("secret/file.txt");
    let s = Server::start_in(dir, &php_conf(PHP_BIN), None);
    let r = s.get(&format!("/sendfile.php?f={}", allowed.display()));
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.text(), "sent by X-Sendfile\n");
    assert_eq!(r.header("Content-Length"), Some("19"));
    assert!(r.header("X-Sendfile").is_none());
    let r = s.get(&format!("/sendfile.php?f={}", secret.display()));
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("must not be sent"));
    s.wait_log("outside x-sendfile-docroot");
    // A path climbing out of the allowed root is refused too.
    let r = s.get(&format!("/sendfile.php?f={}/allowed/../secret/file.txt", s.dir.path().display()));
    assert_eq!(r.status, 403);
}

#[test]
fn php_x_sendfile_ignored_when_disabled() {
    let conf =
        php_conf(r#"( ".php" => ( ( "socket" => "@DIR@/php.sock", "bin-path" => "/usr/bin/php-cgi" ) ) )"#);
    let dir = site();
    let secret = dir.path().join("secret/file.txt");
    let s = Server::start_in(dir, &conf, None);
    let r = s.get(&format!("/sendfile.php?f={}", secret.display()));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "this body must not be sent\n");
}

fn pid_of(text: &str) -> i32 {
    kv(text, "PID").parse().expect("pid")
}

#[test]
fn php_killed_mid_response_is_respawned() {
    let s = Server::start_in(site(), &php_conf(PHP_BIN), None);
    let first = pid_of(&s.get("/env.php").text());
    // Read the head and the first line of a slow response, then kill the backend.
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    c.write_all(b"GET /slow.php HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("PID=") || !got.ends_with(b"\n") {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body_start = text.find("PID=").expect("pid");
    let pid = pid_of(&text[body_start..]);
    assert_eq!(pid, first);
    // SAFETY: kill(2) on the php-cgi process featherd started for this test.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // The response is cut: the connection closes without the chunked terminator.
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("0\r\n\r\n"), "response was completed: {rest:?}");
    // The next request works, served by a new process.
    s.wait_log("starting a new one");
    let mut second = 0;
    wait_until("a new php-cgi", || {
        let r = s.get("/env.php");
        if r.status == 200 {
            second = pid_of(&r.text());
        }
        r.status == 200
    });
    assert_ne!(second, first);
}

#[test]
fn php_under_spawn_fcgi_on_unix_and_tcp() {
    let dir = site();
    let sock = dir.path().join("ext.sock");
    let port = free_port();
    let _unix = spawn_fcgi_php(&["-s", sock.to_str().expect("utf8")]);
    let _tcp = spawn_fcgi_php(&["-a", "127.0.0.1", "-p", &port.to_string()]);
    wait_socket(&sock);
    wait_port(port);
    let unix = php_conf(&format!(r#"( ".php" => ( ( "socket" => "{}" ) ) )"#, sock.display()));
    let tcp = php_conf(&format!(r#"( ".php" => ( ( "host" => "127.0.0.1", "port" => {port} ) ) )"#));
    let s = Server::start_in(dir, &unix, None);
    let r = s.get("/env.php?via=unix");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(kv(&r.text(), "QUERY_STRING"), "via=unix");
    let s = Server::start_in(site(), &tcp, None);
    let r = s.get("/env.php/x?via=tcp");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(kv(&r.text(), "QUERY_STRING"), "via=tcp");
    assert_eq!(kv(&r.text(), "PATH_INFO"), "/x");
}

#[test]
fn fcgiwrap_runs_shell_and_perl_scripts() {
    let dir = site();
    for f in ["hello.sh", "hello.pl"] {
        let p = dir.path().join("www").join(f);
        std::fs::copy(fixtures().join(f), &p).expect("copy");
    }
    let sock = dir.path().join("fcgiwrap.sock");
    let _w = Proc(
        Command::new("fcgiwrap")
            .args(["-s", &format!("unix:{}", sock.display())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fcgiwrap (apt install fcgiwrap)"),
    );
    wait_socket(&sock);
    let conf = php_conf(&format!(
        r#"( ".sh" => ( ( "socket" => "{0}" ) ), ".pl" => ( ( "socket" => "{0}" ) ) )"#,
        sock.display()
    ));
    let s = Server::start_in(dir, &conf, None);
    let r = s.get("/hello.sh?q=1");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.header("X-Runner"), Some("fcgiwrap"));
    assert_eq!(r.text(), "shell says hi\nSCRIPT_NAME=/hello.sh\nQUERY_STRING=q=1\n");
    let r = request(
        s.port,
        "POST /hello.pl HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.text(), "perl says hi to POST\n");
}

#[test]
fn python_wsgi_over_flup() {
    let dir = TempDir::new("fcgi-py");
    let sock = dir.path().join("py.sock");
    let _app = flup("fcgi", sock.to_str().expect("utf8"), "py1");
    let conf = php_conf(&format!(
        r#"( "/py" => ( ( "socket" => "{}", "check-local" => "disable" ) ) )"#,
        sock.display()
    ));
    let s = Server::start_in(dir, &conf, None);
    let r = request(
        s.port,
        "GET /py/some/where?x=y HTTP/1.1\r\nHost: x\r\nX-Test: 1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", s.error_log());
    let t = r.text();
    assert_eq!(kv(&t, "SCRIPT_NAME"), "/py");
    assert_eq!(kv(&t, "PATH_INFO"), "/some/where");
    assert_eq!(kv(&t, "QUERY_STRING"), "x=y");
    assert_eq!(kv(&t, "HTTP_X_TEST"), "1");
    let body = vec![b'z'; 200_000];
    let f = s.dir.write("b.bin", &body);
    let (code, out, _) = curl(&[
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("http://127.0.0.1:{}/py/post", s.port),
    ]);
    assert_eq!(code, 0);
    assert_eq!(out.len(), body.len());
}

#[test]
fn authorizer_allows_and_denies() {
    let dir = TempDir::new("fcgi-auth");
    dir.write("www/private/data.txt", "private data\n");
    let sock = dir.path().join("auth.sock");
    let _app = flup("fcgi-auth", sock.to_str().expect("utf8"), "auth");
    let conf = php_conf(&format!(
        r#"( "/private" => ( ( "socket" => "{}", "mode" => "authorizer", "check-local" => "disable" ) ) )"#,
        sock.display()
    ));
    let s = Server::start_in(dir, &conf, None);
    let r = s.get("/private/data.txt");
    assert_eq!(r.status, 403, "{}", s.error_log());
    assert_eq!(r.text(), "denied by the authorizer\n");
    let r = request(
        s.port,
        "GET /private/data.txt HTTP/1.1\r\nHost: x\r\nX-Token: letmein\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.text(), "private data\n");
}

fn dist_conf(balance: &str, p1: u16, p2: u16) -> String {
    php_conf(&format!(
        r#"( ".php" => ( "a" => ( "host" => "127.0.0.1", "port" => {p1} ), "b" => ( "host" => "127.0.0.1", "port" => {p2} ) ) )
fastcgi.balance = "{balance}""#
    ))
}

#[test]
fn round_robin_and_sticky_distribution() {
    let (p1, p2) = (free_port(), free_port());
    let _a = spawn_fcgi_php(&["-a", "127.0.0.1", "-p", &p1.to_string()]);
    let _b = spawn_fcgi_php(&["-a", "127.0.0.1", "-p", &p2.to_string()]);
    wait_port(p1);
    wait_port(p2);
    let s = Server::start_in(site(), &dist_conf("round-robin", p1, p2), None);
    let pids: Vec<i32> = (0..6).map(|_| pid_of(&s.get("/env.php").text())).collect();
    let mut distinct = pids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 2, "{pids:?}");
    assert_eq!(pids.iter().filter(|&&p| p == pids[0]).count(), 3, "{pids:?}");
    for w in pids.windows(2) {
        assert_ne!(w[0], w[1], "round-robin alternates: {pids:?}");
    }
    drop(s);
    let s = Server::start_in(site(), &dist_conf("sticky", p1, p2), None);
    let pids: Vec<i32> = (0..6).map(|_| pid_of(&s.get("/env.php").text())).collect();
    assert!(pids.iter().all(|&p| p == pids[0]), "one client stays on one backend: {pids:?}");
}

#[test]
fn all_backends_down_is_503_with_a_log_line() {
    let (p1, p2) = (free_port(), free_port());
    let s = Server::start_in(site(), &dist_conf("fair", p1, p2), None);
    let r = s.get("/env.php");
    assert_eq!(r.status, 503);
    let log = s.wait_log("all backends for \".php\" are down");
    assert!(log.contains(&format!("127.0.0.1:{p1}")) && log.contains(&format!("127.0.0.1:{p2}")), "{log}");
    // One comes up: after its disable-time it is tried again and answers.
    let _a = spawn_fcgi_php(&["-a", "127.0.0.1", "-p", &p2.to_string()]);
    wait_port(p2);
    wait_until("the backend back in service", || s.get("/env.php").status == 200);
}

#[test]
fn backend_that_never_answers_gets_504() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    // Accepts and reads, never answers (a hung application).
    let t = std::thread::spawn(move || {
        let (mut c, _) = l.accept().expect("accept");
        let mut buf = [0u8; 4096];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    let conf = php_conf(&format!(
        r#"( "/hang" => ( ( "host" => "127.0.0.1", "port" => {port}, "check-local" => "disable", "read-timeout" => 1 ) ) )"#
    ));
    let s = Server::start_in(site(), &conf, None);
    let start = Instant::now();
    let r = s.get("/hang");
    assert_eq!(r.status, 504);
    assert!(start.elapsed() < Duration::from_secs(5));
    s.wait_log("no response within the read-timeout");
    drop(s);
    let _ = t.join();
}

#[test]
fn client_gone_mid_download_releases_the_backend() {
    let s = Server::start_in(site(), &php_conf(PHP_BIN), None);
    let mark = s.dir.path().join("mark.txt");
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.write_all(format!("GET /stream.php?mark={} HTTP/1.1\r\nHost: x\r\n\r\n", mark.display()).as_bytes())
        .expect("send");
    let mut buf = vec![0u8; 65536];
    let mut total = 0;
    while total < 300_000 {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0);
        total += n;
    }
    drop(c);
    // php-cgi notices its output is gone once featherd closes the backend connection.
    wait_until("php to see the abort", || {
        std::fs::read_to_string(&mark).is_ok_and(|m| m.starts_with("aborted"))
    });
    // And the backend is free for the next request.
    assert_eq!(s.get("/env.php").status, 200);
}

#[test]
fn unknown_host_option_is_a_config_error() {
    let f = Server::start_fail(
        &php_conf(r#"( ".php" => ( ( "socket" => "/tmp/x.sock", "max-prcs" => 2 ) ) )"#),
        None,
    );
    assert!(f.stderr.contains("unknown option \"max-prcs\""), "{}", f.stderr);
}

fn peak_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 1 GiB up to a FastCGI application and 1 GiB down from it, through a debug-built featherd
/// whose peak RSS must stay under 64 MiB: bodies stream, they are never held.
#[test]
fn one_gib_upload_and_download_stream_through() {
    for mode in [0, 2] {
        let dir = TempDir::new("fcgi-big");
        let sock = dir.path().join("big.sock");
        let _app = flup("fcgi", sock.to_str().expect("utf8"), "big");
        let conf = format!(
            "{}\nserver.stream-request-body = {mode}\nserver.upload-dirs = ( \"@DIR@\" )\n",
            php_conf(&format!(
                r#"( "/app" => ( ( "socket" => "{}", "check-local" => "disable" ) ) )"#,
                sock.display()
            ))
        );
        let s = Server::start_in(dir, &conf, None);
        let total: u64 = 1 << 30;
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        c.write_all(
            format!(
                "POST /app/count HTTP/1.1\r\nHost: x\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
        let block: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
        let block_sum = block.iter().fold(0u64, |a, &b| a.wrapping_add(u64::from(b)));
        for _ in 0..(total >> 20) {
            c.write_all(&block).unwrap();
        }
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        let r = parse_responses(&out, false).remove(0);
        assert_eq!(
            r.text(),
            format!("bytes={total} sum={}\n", block_sum.wrapping_mul(total >> 20)),
            "mode {mode}"
        );

        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        c.write_all(b"GET /app/big?1024 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut buf = vec![0u8; 1 << 20];
        let mut got: u64 = 0;
        let mut head_done = false;
        let mut pending = Vec::new();
        loop {
            let n = c.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            if head_done {
                got += n as u64;
            } else {
                pending.extend_from_slice(&buf[..n]);
                if let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&pending[..p]).into_owned();
                    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                    got += (pending.len() - p - 4) as u64;
                    head_done = true;
                }
            }
        }
        assert_eq!(got, total, "mode {mode}: whole download\n{}", s.error_log());
        let peak = peak_rss_kib(s.pid());
        assert!(peak < 64 * 1024, "mode {mode}: featherd peak RSS {peak} KiB moving 2 GiB");
    }
}
