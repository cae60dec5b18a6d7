//! mod_scgi end to end with real backends: a Python WSGI application over SCGI with flup (unix
//! socket and TCP), uWSGI with the uwsgi protocol, and a FastCGI authorizer in front of an
//! SCGI responder.

use featherd_e2e::*;
use std::io::Read;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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

fn wait_addr(addr: &str) {
    if addr.starts_with('/') {
        wait_until(addr, || std::os::unix::net::UnixStream::connect(addr).is_ok());
    } else {
        wait_until(addr, || TcpStream::connect(addr).is_ok());
    }
}

fn flup(mode: &str, addr: &str, name: &str) -> Proc {
    let mut c = Command::new("python3")
        .arg(workspace_root().join("tests/fixtures/fastcgi/app.py"))
        .args([mode, addr, name])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3");
    let mut line = [0u8; 6];
    let _ = c.stdout.as_mut().expect("stdout").read_exact(&mut line);
    let p = Proc(c);
    wait_addr(addr);
    p
}

fn uwsgi(addr: &str) -> Proc {
    let app: PathBuf = workspace_root().join("tests/fixtures/scgi/uwsgi_app.py");
    let c = Command::new("uwsgi")
        .args(["--plugin", "python3", "--socket", addr, "--wsgi-file"])
        .arg(&app)
        .args(["--processes", "1", "--disable-logging", "--die-on-term"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("uwsgi (apt install uwsgi uwsgi-plugin-python3)");
    let p = Proc(c);
    wait_addr(addr);
    p
}

fn conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules = ( \"mod_scgi\" )\n{extra}\n")
}

fn kv(text: &str, k: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{k}=")))
        .unwrap_or_else(|| panic!("{k} missing in {text}"))
        .to_string()
}

fn check_app(s: &Server, prefix: &str) {
    let r = request(
        s.port,
        &format!("GET {prefix}/a/b?c=d HTTP/1.1\r\nHost: x\r\nX-Test: scgi\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 200, "{}", s.error_log());
    let t = r.text();
    assert_eq!(kv(&t, "SCRIPT_NAME"), prefix);
    assert_eq!(kv(&t, "PATH_INFO"), "/a/b");
    assert_eq!(kv(&t, "QUERY_STRING"), "c=d");
    assert_eq!(kv(&t, "REQUEST_URI"), format!("{prefix}/a/b?c=d"));
    assert_eq!(kv(&t, "HTTP_X_TEST"), "scgi");
    let body: Vec<u8> = (0..1_500_000u32).map(|i| (i % 253) as u8).collect();
    let f = s.dir.write("body.bin", &body);
    let out = s.dir.path().join("out.bin");
    let (code, _, err) = curl(&[
        "-o",
        out.to_str().expect("utf8"),
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("http://127.0.0.1:{}{prefix}/post", s.port),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).expect("out"), body);
}

#[test]
fn flup_scgi_over_unix_and_tcp() {
    let dir = TempDir::new("scgi");
    let sock = dir.path().join("scgi.sock");
    let port = free_port();
    let _u = flup("scgi", sock.to_str().expect("utf8"), "u");
    let _t = flup("scgi", &format!("127.0.0.1:{port}"), "t");
    let s = Server::start_in(
        dir,
        &conf(&format!(
            r#"scgi.server = ( "/unix" => ( ( "socket" => "{}", "check-local" => "disable" ) ),
                               "/tcp" => ( ( "host" => "127.0.0.1", "port" => {port}, "check-local" => "disable" ) ) )"#,
            sock.display()
        )),
        None,
    );
    check_app(&s, "/unix");
    check_app(&s, "/tcp");
    assert_eq!(kv(&s.get("/unix/x").text(), "BACKEND"), "u");
    assert_eq!(kv(&s.get("/tcp/x").text(), "BACKEND"), "t");
}

#[test]
fn uwsgi_protocol_with_an_http_status_line() {
    let dir = TempDir::new("uwsgi");
    let sock = dir.path().join("uwsgi.sock");
    let _u = uwsgi(sock.to_str().expect("utf8"));
    let s = Server::start_in(
        dir,
        &conf(&format!(
            r#"scgi.protocol = "uwsgi"
               scgi.server = ( "/wsgi" => ( ( "socket" => "{}", "check-local" => "disable" ) ) )"#,
            sock.display()
        )),
        None,
    );
    let r = s.get("/wsgi/a/b?c=d");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.header("X-Served-By"), Some("uwsgi"));
    // uWSGI answers with "HTTP/1.1 201 Created": the status line is taken, not passed on.
    let (code, out, _) =
        curl(&["-i", "--data-binary", "hello uwsgi", &format!("http://127.0.0.1:{}/wsgi/post", s.port)]);
    assert_eq!(code, 0);
    assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello uwsgi"), "{out}");
    assert_eq!(out.matches("HTTP/1.1").count(), 1, "{out}");
    check_app(&s, "/wsgi");
}

#[test]
fn scgi_round_robin_counts_per_backend() {
    let dir = TempDir::new("scgi-rr");
    let (p1, p2) = (free_port(), free_port());
    let _a = flup("scgi", &format!("127.0.0.1:{p1}"), "a");
    let _b = flup("scgi", &format!("127.0.0.1:{p2}"), "b");
    let s = Server::start_in(
        dir,
        &conf(&format!(
            r#"scgi.balance = "round-robin"
               scgi.server = ( "/rr" => ( "a" => ( "host" => "127.0.0.1", "port" => {p1}, "check-local" => "disable" ),
                                         "b" => ( "host" => "127.0.0.1", "port" => {p2}, "check-local" => "disable" ) ) )"#
        )),
        None,
    );
    let names: Vec<String> = (0..8).map(|_| kv(&s.get("/rr/x").text(), "BACKEND")).collect();
    assert_eq!(names.iter().filter(|n| *n == "a").count(), 4, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "b").count(), 4, "{names:?}");
}

#[test]
fn fastcgi_authorizer_variables_reach_an_scgi_responder() {
    let dir = TempDir::new("auth-scgi");
    let auth = dir.path().join("auth.sock");
    let app = dir.path().join("app.sock");
    let _a = flup("fcgi-auth", auth.to_str().expect("utf8"), "auth");
    let _r = flup("scgi", app.to_str().expect("utf8"), "app");
    let s = Server::start_in(
        dir,
        &format!(
            "{BASE}\nserver.modules = ( \"mod_fastcgi\", \"mod_scgi\" )\n\
             fastcgi.server = ( \"/app\" => ( ( \"socket\" => \"{}\", \"mode\" => \"authorizer\", \"check-local\" => \"disable\" ) ) )\n\
             scgi.server = ( \"/app\" => ( ( \"socket\" => \"{}\", \"check-local\" => \"disable\" ) ) )\n",
            auth.display(),
            app.display()
        ),
        None,
    );
    let r = s.get("/app/x");
    assert_eq!(r.status, 403, "{}", s.error_log());
    let r =
        request(s.port, "GET /app/x HTTP/1.1\r\nHost: x\r\nX-Token: letmein\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(kv(&r.text(), "AUTH_USER"), "alice");
}

#[test]
fn scgi_backend_down_is_503() {
    let port = free_port();
    let s = Server::start(&conf(&format!(
        r#"scgi.server = ( "/x" => ( ( "host" => "127.0.0.1", "port" => {port}, "check-local" => "disable" ) ) )"#
    )));
    assert_eq!(s.get("/x/y").status, 503);
    s.wait_log("all backends for \"/x\" are down");
}
