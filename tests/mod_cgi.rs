//! mod_cgi through the real server with real interpreters (python3, perl, sh): the CGI
//! environment, request bodies in and out, NPH, local and client redirects, X-Sendfile,
//! stderr in the error log, scripts killed when their client goes away or the server stops,
//! children reaped, and a large slow download that does not grow the server's memory.
//! Every server runs one worker, so a script that blocked the worker would stall the other
//! requests these tests make meanwhile.

use featherd_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

const ASSIGN: &str =
    r#"cgi.assign = ( ".pl" => "/usr/bin/perl", ".py" => "/usr/bin/python3", ".cgi" => "" )"#;

/// A server with the fixtures in `www/cgi/` and `extra` config lines.
fn start(extra: &str) -> Server {
    let conf = format!(
        r#"
server.document-root = "@DOCROOT@"
server.bind = "127.0.0.1"
server.port = @PORT@
server.errorlog = "@DIR@/error.log"
server.max-worker = 1
server.modules += ( "mod_cgi" )
{ASSIGN}
{extra}
"#
    );
    let dir = TempDir::new("cgi");
    let cgi = dir.path().join("www/cgi");
    std::fs::create_dir_all(&cgi).unwrap();
    let src = workspace_root().join("tests/fixtures/cgi");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), cgi.join(e.file_name())).unwrap();
    }
    Server::start_in(dir, &conf, None)
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// NAME=value lines of the env dump.
fn vars(r: &Response) -> Vec<(String, String)> {
    r.text().lines().filter_map(|l| l.split_once('=').map(|(a, b)| (a.to_string(), b.to_string()))).collect()
}

fn var<'a>(v: &'a [(String, String)], name: &str) -> Option<&'a str> {
    v.iter().find(|(n, _)| n == name).map(|(_, x)| x.as_str())
}

fn proc_status(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

fn status_field(status: &str, field: &str) -> Option<String> {
    status.lines().find_map(|l| l.strip_prefix(field).map(|v| v.trim().to_string()))
}

/// Wait until process `pid` is gone (reaped, not a zombie).
fn wait_gone(pid: i32, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        match proc_status(pid) {
            None => return,
            Some(s) => {
                assert!(
                    Instant::now() < deadline,
                    "CGI pid {pid} still there after {within:?}: state {:?}",
                    status_field(&s, "State:")
                );
            }
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Children of `parent` that are zombies.
fn zombies_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Some(s) = proc_status(pid) else { continue };
        if status_field(&s, "PPid:").as_deref() == Some(&parent.to_string())
            && status_field(&s, "State:").is_some_and(|st| st.starts_with('Z'))
        {
            out.push(pid);
        }
    }
    out
}

/// Open a request and read until the script's `pid=N` line arrived; returns the stream
/// (response still open) and N.
fn open_with_pid(port: u16, path: &str) -> (TcpStream, i32) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(i) = text.find("pid=") {
            let digits: String = text[i + 4..].chars().take_while(char::is_ascii_digit).collect();
            if text[i + 4 + digits.len()..].starts_with('\n') {
                assert!(text.starts_with("HTTP/1.1 200"), "{text}");
                return (s, digits.parse().unwrap());
            }
        }
        let n = s.read(&mut buf).expect("read the script's pid");
        assert!(n > 0, "connection closed before the pid: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// Close with a reset (SO_LINGER 0): how a client that went away looks to the server.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on our own socket with a properly sized linger struct.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    drop(s);
}

fn assert_child_of(pid: i32, parent: i32) {
    let st = proc_status(pid).unwrap_or_else(|| panic!("CGI pid {pid} is not running"));
    assert_eq!(status_field(&st, "PPid:").as_deref(), Some(parent.to_string().as_str()), "{st}");
}

#[test]
fn environment_of_a_get() {
    let s = start("");
    let r = request(
        s.port,
        "GET /cgi/env.py/extra/path?a=1&b=two HTTP/1.1\r\nHost: localhost\r\nX-Custom: custom value\r\nProxy: http://evil.example:3128\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    let v = vars(&r);
    let docroot = s.docroot().display().to_string();
    assert_eq!(var(&v, "REQUEST_METHOD"), Some("GET"));
    assert_eq!(var(&v, "QUERY_STRING"), Some("a=1&b=two"));
    assert_eq!(var(&v, "SCRIPT_NAME"), Some("/cgi/env.py"));
    assert_eq!(var(&v, "PATH_INFO"), Some("/extra/path"));
    assert_eq!(var(&v, "SCRIPT_FILENAME"), Some(format!("{docroot}/cgi/env.py").as_str()));
    assert_eq!(var(&v, "REQUEST_URI"), Some("/cgi/env.py/extra/path?a=1&b=two"));
    assert_eq!(var(&v, "HTTP_X_CUSTOM"), Some("custom value"));
    assert_eq!(var(&v, "REMOTE_ADDR"), Some("127.0.0.1"));
    assert_eq!(var(&v, "SERVER_PORT"), Some(s.port.to_string().as_str()));
    assert_eq!(var(&v, "REDIRECT_STATUS"), Some("200"));
    assert_eq!(var(&v, "GATEWAY_INTERFACE"), Some("CGI/1.1"));
    assert!(var(&v, "SERVER_SOFTWARE").is_some_and(|x| x.starts_with("featherd/")));
    // httpoxy: the client's Proxy header never becomes HTTP_PROXY.
    assert_eq!(var(&v, "HTTP_PROXY"), None, "{}", r.text());
    // Nothing from the server's own environment (the test runner's CARGO_*, PATH, HOME).
    for (n, _) in &v {
        assert!(!n.starts_with("CARGO"), "server environment leaked: {n}");
    }
    assert_eq!(var(&v, "PATH"), None);
    assert_eq!(var(&v, "HOME"), None);
    // lighttpd's conventions: run in the script's directory, the script as argument.
    assert_eq!(var(&v, "CWD"), Some(format!("{docroot}/cgi").as_str()));
    assert_eq!(var(&v, "ARGV"), Some(format!("{docroot}/cgi/env.py").as_str()));
}

#[test]
fn environment_of_a_post() {
    let s = start("");
    let body = "x=1&y=2";
    let r = request(
        s.port,
        &format!(
            "POST /cgi/env.py HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = vars(&r);
    assert_eq!(var(&v, "REQUEST_METHOD"), Some("POST"));
    assert_eq!(var(&v, "CONTENT_TYPE"), Some("application/x-www-form-urlencoded"));
    assert_eq!(var(&v, "CONTENT_LENGTH"), Some("7"));
    assert_eq!(var(&v, "QUERY_STRING"), Some(""));
    assert_eq!(var(&v, "PATH_INFO"), None);
}

#[test]
fn post_body_of_megabytes_is_echoed() {
    let s = start("");
    let body: Vec<u8> =
        (0..3 * 1024 * 1024 + 17).map(|i: u32| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let mut req = format!(
        "POST /cgi/echo.pl HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    let data = raw(s.port, &req);
    let r = parse_responses(&data, false).into_iter().next().expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Got-Length"), Some(body.len().to_string().as_str()));
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "echoed body differs");
}

#[test]
fn nph_status_line_and_headers_pass_through() {
    let s = start("");
    let r = s.get("/cgi/nph-status.py");
    assert_eq!(r.status, 203, "{}", r.head);
    assert_eq!(r.header("X-Nph"), Some("yes"));
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(r.text(), "nph body\n");
}

#[test]
fn local_redirect_restarts_the_request_when_enabled() {
    let s = start(r#"cgi.local-redir = "enable""#);
    let r = s.get("/cgi/localredir.py");
    assert_eq!(r.status, 200, "{}", r.head);
    let v = vars(&r);
    assert_eq!(var(&v, "SCRIPT_NAME"), Some("/cgi/env.py"), "{}", r.text());
    assert_eq!(var(&v, "QUERY_STRING"), Some("from=redirect"));
    // As lighttpd: REQUEST_URI is what the client asked for, REDIRECT_URI where it went.
    assert_eq!(var(&v, "REQUEST_URI"), Some("/cgi/localredir.py"));
    assert_eq!(var(&v, "REDIRECT_URI"), Some("/cgi/env.py?from=redirect"));
    assert_eq!(r.header("Location"), None);
}

#[test]
fn local_redirect_loop_is_a_500_on_a_connection_that_goes_on() {
    let s = start(r#"cgi.local-redir = "enable""#);
    // Two scripts that send the request to each other.
    std::fs::write(s.docroot().join("cgi/ping.py"), "print(\"Location: /cgi/pong.py\")\nprint()\n").unwrap();
    std::fs::write(s.docroot().join("cgi/pong.py"), "print(\"Location: /cgi/ping.py?again\")\nprint()\n")
        .unwrap();
    let data = raw(
        s.port,
        b"GET /cgi/ping.py HTTP/1.1\r\nHost: a\r\n\r\nGET /cgi/nph-status.py HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&data));
    assert_eq!(rs[0].status, 500);
    assert_eq!(rs[1].status, 203);
    s.wait_log("restarted more than 16 times (rewrite loop?): /cgi/pong.py (sent as /cgi/ping.py)");
}

#[test]
fn local_redirect_is_a_302_by_default() {
    // lighttpd's default: cgi.local-redir is disabled.
    let s = start("");
    let r = s.get("/cgi/localredir.py");
    assert_eq!(r.status, 302, "{}", r.head);
    assert_eq!(r.header("Location"), Some("/cgi/env.py?from=redirect"));
}

#[test]
fn client_redirect() {
    let s = start(r#"cgi.local-redir = "enable""#);
    let r = s.get("/cgi/clientredir.py");
    assert_eq!(r.status, 302, "{}", r.head);
    assert_eq!(r.header("Location"), Some("http://example.org/elsewhere"));
}

#[test]
fn x_sendfile_inside_the_allowed_directory() {
    let s = start(
        r#"cgi.x-sendfile = "enable"
cgi.x-sendfile-docroot = ( "@DIR@/files" )"#,
    );
    let files = s.dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let content = "the file named by X-Sendfile\n".repeat(1000);
    std::fs::write(files.join("big file.txt"), &content).unwrap();
    // %-encoded in the header, as lighttpd url-decodes it.
    let target = format!("{}/big%20file.txt", files.display());
    let r = s.get(&format!("/cgi/sendfile.py?{target}"));
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("Content-Length"), Some(content.len().to_string().as_str()));
    assert_eq!(r.header("Content-Type"), Some("text/x-from-script"));
    assert_eq!(r.header("X-Sendfile"), None);
    assert_eq!(r.text(), content);

    // Outside the allowed directory, also by "..": 403 and a log line.
    let r = s.get("/cgi/sendfile.py?/etc/passwd");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("root:"));
    s.wait_log("X-Sendfile \"/etc/passwd\" refused: /etc/passwd is outside cgi.x-sendfile-docroot");
    let r = s.get(&format!("/cgi/sendfile.py?{}/../featherd.conf", files.display()));
    assert_eq!(r.status, 403);
    let r = s.get(&format!("/cgi/sendfile.py?{}/missing.txt", files.display()));
    assert_eq!(r.status, 404);
    // A symlink inside pointing out is refused too.
    std::os::unix::fs::symlink("/etc/passwd", files.join("link")).unwrap();
    let r = s.get(&format!("/cgi/sendfile.py?{}/link", files.display()));
    assert_eq!(r.status, 403);
}

#[test]
fn x_sendfile_without_docroots_is_limited_to_the_document_root() {
    // lighttpd would send any file; featherd allows the document root only (as FastCGI/SCGI).
    let s = start(r#"cgi.x-sendfile = "enable""#);
    let target = s.docroot().join("cgi/env.py");
    let r = s.get(&format!("/cgi/sendfile.py?{}", target.display()));
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, std::fs::read(&target).expect("script"));
    let r = s.get("/cgi/sendfile.py?/etc/passwd");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("root:"));
    s.wait_log("/etc/passwd is outside cgi.x-sendfile-docroot (or the document root when it is not set)");
}

#[test]
fn x_sendfile_disabled_sends_the_script_body() {
    let s = start("");
    let r = s.get("/cgi/sendfile.py?/etc/passwd");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("X-Sendfile"), None, "the header names a server path; never passed on");
    assert_eq!(r.text(), "script body\n");
}

#[test]
fn stderr_goes_to_the_error_log() {
    let s = start("");
    let r = s.get("/cgi/stderr.py");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "ok\n");
    let log = s.wait_log("cgi-stderr-marker two");
    let line = log.lines().find(|l| l.contains("cgi-stderr-marker one")).expect("first stderr line");
    assert!(line.contains("(mod_cgi)") && line.contains("stderr.py"), "{line}");
}

/// With `server.breakagelog`, scripts write their stderr to it directly (as lighttpd), and it
/// is reopened on SIGHUP like the error log (logrotate moves the file away first).
#[test]
fn stderr_goes_to_the_breakagelog_when_set() {
    let s = start(r#"server.breakagelog = "@DIR@/breakage.log""#);
    let path = s.dir.path().join("breakage.log");
    let r = s.get("/cgi/stderr.py");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    wait_for("the script's stderr in the breakage log", || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("cgi-stderr-marker two"))
    });
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "cgi-stderr-marker one\ncgi-stderr-marker two\n");
    assert!(!s.error_log().contains("cgi-stderr-marker"), "{}", s.error_log());
    // Rotated: moved away, SIGHUP, and the next script writes to a new file at the path.
    std::fs::rename(&path, s.dir.path().join("breakage.log.1")).unwrap();
    // SAFETY: a signal to the server process this test started.
    unsafe { libc::kill(s.pid(), libc::SIGHUP) };
    s.wait_log("SIGHUP: logs reopened");
    assert_eq!(s.get("/cgi/stderr.py").status, 200);
    wait_for("stderr in the reopened breakage log", || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("cgi-stderr-marker two"))
    });
}

#[test]
fn script_killed_when_the_client_resets() {
    let s = start("");
    let (conn, pid) = open_with_pid(s.port, "/cgi/sleeper.py");
    assert_child_of(pid, s.pid());
    // The single worker is not held up by the sleeping script.
    assert_eq!(s.get("/cgi/nph-status.py").status, 203);
    reset(conn);
    wait_gone(pid, Duration::from_secs(10));
    assert!(zombies_of(s.pid()).is_empty());
}

#[test]
fn script_killed_when_the_client_closes_during_output() {
    let s = start("");
    let (conn, pid) = open_with_pid(s.port, "/cgi/ticker.py");
    assert_child_of(pid, s.pid());
    drop(conn);
    wait_gone(pid, Duration::from_secs(10));
    assert!(zombies_of(s.pid()).is_empty());
}

#[test]
fn script_ignoring_sigterm_gets_sigkill() {
    let s = start("");
    let (conn, pid) = open_with_pid(s.port, "/cgi/sleeper.py?ignore-term");
    reset(conn);
    // SIGTERM at once, SIGKILL two seconds later (on the once-a-second trigger).
    wait_gone(pid, Duration::from_secs(10));
    s.wait_log("ignored SIGTERM: SIGKILL");
}

#[test]
fn scripts_stopped_at_server_shutdown() {
    let mut s = start("");
    let (conn, pid) = open_with_pid(s.port, "/cgi/sleeper.py");
    let (conn2, pid2) = open_with_pid(s.port, "/cgi/sleeper.py?ignore-term");
    s.signal(libc::SIGTERM);
    s.wait_exit(Duration::from_secs(15));
    drop((conn, conn2));
    wait_gone(pid, Duration::from_secs(5));
    wait_gone(pid2, Duration::from_secs(5));
}

#[test]
fn no_zombies_after_many_requests() {
    let s = start("");
    for _ in 0..20 {
        assert_eq!(s.get("/cgi/nph-status.py").status, 203);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let z = zombies_of(s.pid());
        if z.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "zombie CGI children: {z:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn executable_run_by_itself() {
    let s = start("");
    chmod(&s.docroot().join("cgi/hello.cgi"), 0o755);
    let r = s.get("/cgi/hello.cgi");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.text(), "shell says hi from /cgi/hello.cgi\n");
}

#[test]
fn execute_x_only() {
    // The mode changes between requests of the same second: without the stat cache, each
    // request sees the file as it is now.
    let s = start(
        r#"cgi.execute-x-only = "enable"
server.stat-cache-engine = "disable""#,
    );
    let script = s.docroot().join("cgi/env.py");
    chmod(&script, 0o644);
    let r = s.get("/cgi/env.py");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("import os"), "the script's source must not be sent");
    chmod(&script, 0o755);
    let r = s.get("/cgi/env.py");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("REQUEST_METHOD=GET"));
}

#[test]
fn interpreter_needs_no_execute_bit_by_default() {
    let s = start("");
    chmod(&s.docroot().join("cgi/env.py"), 0o644);
    let r = s.get("/cgi/env.py");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("REQUEST_METHOD=GET"));
}

#[test]
fn no_output_is_500_and_bad_head_is_502() {
    let s = start("");
    let r = s.get("/cgi/empty.py");
    assert_eq!(r.status, 500);
    s.wait_log("empty.py: the script ended without any output");
    let r = s.get("/cgi/badhead.py");
    assert_eq!(r.status, 502);
    assert!(!r.text().contains("not a header"), "the broken output must not reach the client");
    s.wait_log("badhead.py: invalid response head");
    // The server goes on.
    assert_eq!(s.get("/cgi/nph-status.py").status, 203);
}

fn rss_kib(pid: i32) -> u64 {
    let st = proc_status(pid).expect("featherd status");
    status_field(&st, "VmRSS:").and_then(|v| v.trim_end_matches("kB").trim().parse().ok()).expect("VmRSS")
}

#[test]
fn large_slow_download_keeps_server_memory_flat() {
    let s = start("");
    // Warm up (a first CGI request) and take the baseline.
    assert_eq!(s.get("/cgi/stream.py?4").body.len(), 4 * 65536);
    let base_rss = rss_kib(s.pid());
    let pieces = 1024u64; // 64 MiB
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(conn, "GET /cgi/stream.py?{pieces} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut max_rss = 0;
    let mut reads = 0u64;
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        reads += 1;
        if reads & 3 == 0 {
            max_rss = max_rss.max(rss_kib(s.pid()));
        }
        if reads & 7 == 0 {
            // A slow reader: the script is faster than us, the server must not buffer.
            std::thread::sleep(Duration::from_millis(15));
        }
    }
    let r = parse_responses(&all, false).into_iter().next().expect("response");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(r.body.len() as u64, pieces * 65536);
    for (i, piece) in r.body.chunks(65536).enumerate() {
        let want = b'a' + (i % 26) as u8;
        assert!(piece.iter().all(|&b| b == want), "piece {i} corrupted");
    }
    eprintln!("featherd RSS: {base_rss} KiB before, {max_rss} KiB at most while streaming");
    assert!(max_rss > 0 && max_rss < 64 * 1024, "featherd RSS reached {max_rss} KiB");
    // What the server holds for one response is bounded by its high-water mark (256 KiB)
    // plus a read buffer, not by the size of the body.
    assert!(max_rss < base_rss + 16 * 1024, "featherd RSS grew from {base_rss} to {max_rss} KiB");
}

#[test]
fn bad_settings_refuse_to_start() {
    let conf = |extra: &str| format!("{BASE}\nserver.modules += ( \"mod_cgi\" )\n{extra}\n");
    let f = Server::start_fail(&conf(r#"cgi.assign = ( ".pl" => "perl" )"#), None);
    assert!(f.stderr.contains("must be an absolute path"), "{}", f.stderr);
    let f = Server::start_fail(&conf(r#"cgi.x-sendfile-docroot = ( "relative/dir" )"#), None);
    assert!(f.stderr.contains("paths must begin with '/'"), "{}", f.stderr);
    let f = Server::start_fail(&conf(r#"cgi.limits = ( "read-timeout" => 10 )"#), None);
    assert!(f.stderr.contains("cgi.limits"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/cgi.conf");
    let conf = format!("{BASE}\ninclude \"{}\"\n{ASSIGN}\n", snippet.display());
    let s = Server::start(&conf);
    let cgi = s.docroot().join("cgi");
    std::fs::create_dir_all(&cgi).unwrap();
    std::fs::copy(workspace_root().join("tests/fixtures/cgi/nph-status.py"), cgi.join("nph-status.py"))
        .unwrap();
    assert_eq!(s.get("/cgi/nph-status.py").status, 203);
}

#[test]
fn stderr_flood_does_not_block_the_script() {
    let s = start("");
    let r = s.get("/cgi/stderr_flood.py");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "survived\n");
    s.wait_log("stderr_flood.py: stderr: flood-done");
    // Meanwhile the worker served others.
    assert_eq!(s.get("/cgi/nph-status.py").status, 203);
}

/// 1 GiB from a CGI script through a debug-built featherd: the peak RSS (VmHWM) stays under
/// 64 MiB and every byte arrives in order.
#[test]
fn one_gib_download_from_a_script() {
    let s = start("");
    let pieces = 16384u64; // 16384 × 64 KiB = 1 GiB
    let mut conn = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
    write!(conn, "GET /cgi/stream.py?{pieces} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Decode the chunked body on the fly, checking each 64 KiB piece's letter.
    let mut buf = vec![0u8; 1 << 20];
    let mut pending: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut chunk_left = 0usize;
    let mut skip_crlf = false;
    let mut body: u64 = 0;
    let mut done = false;
    while !done {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        let mut pos = 0;
        if !head_done {
            let Some(p) = pending.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
            assert!(pending.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&pending[..p]));
            head_done = true;
            pos = p + 4;
        }
        loop {
            if chunk_left > 0 {
                let take = chunk_left.min(pending.len() - pos);
                for &b in &pending[pos..pos + take] {
                    let want = b'a' + ((body / 65536) % 26) as u8;
                    assert_eq!(b, want, "byte {body}");
                    body += 1;
                }
                pos += take;
                chunk_left -= take;
                if chunk_left > 0 {
                    break;
                }
                skip_crlf = true;
            }
            if skip_crlf {
                // The CRLF after a chunk's data may come with the next read.
                if pending.len() - pos < 2 {
                    break;
                }
                pos += 2;
                skip_crlf = false;
            }
            let Some(le) = pending[pos..].windows(2).position(|w| w == b"\r\n") else { break };
            let size =
                usize::from_str_radix(std::str::from_utf8(&pending[pos..pos + le]).unwrap().trim(), 16)
                    .unwrap();
            pos += le + 2;
            if size == 0 {
                done = true;
                break;
            }
            chunk_left = size;
        }
        pending.drain(..pos);
    }
    assert_eq!(body, pieces * 65536, "the whole gibibyte arrived");
    let hwm = std::fs::read_to_string(format!("/proc/{}/status", s.pid()))
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap())
        })
        .unwrap();
    assert!(hwm < 64 * 1024, "featherd peak RSS {hwm} KiB for a 1 GiB CGI download");
}
