//! mod_accesslog through the real server: the default line field by field, custom formats,
//! escaping of request values, one log per config block, SIGHUP reopening a rotated file,
//! and piped loggers (including their restart). Lines are written after the response, so
//! every check polls the log file until the expected line is there.

use featherd_e2e::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules += ( \"mod_accesslog\" )\n{extra}\n")
}

/// Poll `path` until one of its lines contains `needle`; returns that line.
fn wait_line(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(needle)) {
            return l.to_string();
        }
        assert!(Instant::now() < deadline, "{} never got a line with {needle:?}:\n{text}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn log_path(s: &Server, name: &str) -> PathBuf {
    s.dir.path().join(name)
}

/// Split a default-format line: (remote, host, user, time, request line, status, bytes,
/// referer, user agent).
fn split_default(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    for _ in 0..3 {
        let (a, b) = rest.split_once(' ').unwrap_or_else(|| panic!("short line {line:?}"));
        out.push(a.to_string());
        rest = b;
    }
    let end = rest.find("] ").unwrap_or_else(|| panic!("no time in {line:?}"));
    out.push(rest[..=end].to_string());
    rest = &rest[end + 2..];
    // Quoted fields may contain \" escapes; unquoted ones are single words.
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let mut i = 0;
            let b = r.as_bytes();
            while b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            out.push(r[..i].to_string());
            rest = r[i + 1..].trim_start_matches(' ');
        } else {
            let (a, b) = rest.split_once(' ').unwrap_or((rest, ""));
            out.push(a.to_string());
            rest = b;
        }
    }
    out
}

#[test]
fn default_format_fields() {
    let s = Server::start(&conf("accesslog.filename = \"@DIR@/access.log\""));
    std::fs::write(s.docroot().join("hello.txt"), "hello world\n").unwrap();
    let log = log_path(&s, "access.log");
    let r = request(
        s.port,
        "GET /hello.txt?mark=one HTTP/1.1\r\nHost: Example.Test:8080\r\nReferer: http://ref.example/page\r\nUser-Agent: e2e-agent/1.0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let line = wait_line(&log, "mark=one");
    let f = split_default(&line);
    assert_eq!(f.len(), 9, "{line}");
    assert_eq!(f[0], "127.0.0.1");
    assert_eq!(f[1], "Example.Test:8080", "%V is the Host header as sent");
    assert_eq!(f[2], "-");
    // [10/Oct/2000:13:55:36 +0000]
    let t = &f[3];
    assert!(t.len() == 28 && t.starts_with('[') && t.ends_with(" +0000]"), "time {t}");
    assert_eq!(&t[3..4], "/");
    assert_eq!(&t[7..8], "/");
    assert_eq!(&t[12..13], ":");
    assert_eq!(f[4], "GET /hello.txt?mark=one HTTP/1.1");
    assert_eq!(f[5], "200");
    assert_eq!(f[6], "12");
    assert_eq!(f[7], "http://ref.example/page");
    assert_eq!(f[8], "e2e-agent/1.0");
    assert!(line.contains(
        " \"GET /hello.txt?mark=one HTTP/1.1\" 200 12 \"http://ref.example/page\" \"e2e-agent/1.0\""
    ));

    // A 404 with neither Referer nor User-Agent: dashes, and %b is the error page's length.
    let r = request(s.port, "GET /missing?mark=two HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 404);
    let line = wait_line(&log, "mark=two");
    let f = split_default(&line);
    assert_eq!(f[1], "-", "no Host header and no host name: {line}");
    assert_eq!(f[4], "GET /missing?mark=two HTTP/1.0");
    assert_eq!(f[5], "404");
    assert_eq!(f[6], r.header("content-length").expect("length of the error page"));
    assert_eq!((f[7].as_str(), f[8].as_str()), ("-", "-"));
    assert!(line.ends_with(" \"-\" \"-\""), "{line}");

    // Bytes: HEAD and 304 have no body, a range counts what was sent.
    let etag = s.get("/hello.txt").header("etag").expect("etag").to_string();
    request(s.port, "HEAD /hello.txt?mark=head HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    request(
        s.port,
        &format!("GET /hello.txt?mark=304 HTTP/1.1\r\nHost: h\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
    );
    request(
        s.port,
        "GET /hello.txt?mark=range HTTP/1.1\r\nHost: h\r\nRange: bytes=0-4\r\nConnection: close\r\n\r\n",
    );
    for (mark, status, bytes) in [("head", "200", "0"), ("304", "304", "0"), ("range", "206", "5")] {
        let f = split_default(&wait_line(&log, &format!("mark={mark} ")));
        assert_eq!((f[5].as_str(), f[6].as_str()), (status, bytes), "{mark}");
    }
    // curl's request shows its own User-Agent.
    let (code, _, err) =
        curl(&["-A", "curl-e2e", &format!("http://127.0.0.1:{}/hello.txt?mark=curl", s.port)]);
    assert_eq!(code, 0, "{err}");
    let f = split_default(&wait_line(&log, "mark=curl"));
    assert_eq!((f[1].as_str(), f[8].as_str()), (format!("127.0.0.1:{}", s.port).as_str(), "curl-e2e"));
}

#[test]
fn custom_format_directives() {
    let s = Server::start(&conf(
        r#"accesslog.filename = "@DIR@/access.log"
accesslog.format = "[%{X-Test}i] [%{Content-Type}o] [%>s] [%D] [%U] [%q] [%m] [%H] [%%] [%v] [%{X-Absent}i] [%a] [%{Content-Length}o]""#,
    ));
    std::fs::write(s.docroot().join("a.css"), "p{}").unwrap();
    let log = log_path(&s, "access.log");
    request(
        s.port,
        "GET /a.css?x=1&y=%41 HTTP/1.1\r\nHost: Vhost.Test\r\nX-Test: marker-1\r\nConnection: close\r\n\r\n",
    );
    let line = wait_line(&log, "marker-1");
    let f: Vec<&str> =
        line.strip_prefix('[').and_then(|l| l.strip_suffix(']')).expect("brackets").split("] [").collect();
    assert_eq!(f.len(), 13, "{line}");
    assert_eq!(f[0], "marker-1");
    assert_eq!(f[1], "text/css");
    assert_eq!(f[2], "200");
    assert!(!f[3].is_empty() && f[3].bytes().all(|b| b.is_ascii_digit()), "%D = {}", f[3]);
    assert!(f[3].parse::<u64>().unwrap() < 10_000_000, "%D is in microseconds: {}", f[3]);
    assert_eq!(f[4], "/a.css");
    assert_eq!(f[5], "x=1&y=%41", "%q keeps the query as received, without the ? (as lighttpd)");
    assert_eq!(f[6], "GET");
    assert_eq!(f[7], "HTTP/1.1");
    assert_eq!(f[8], "%");
    assert_eq!(f[9], "vhost.test", "%v is the request's host name");
    assert_eq!(f[10], "-");
    assert_eq!(f[11], "127.0.0.1");
    assert_eq!(f[12], "3", "the Content-Length the head announced");

    // Without a query %q is empty; another method, protocol and status; the 404 page's type.
    request(s.port, "POST /nothing%20here HTTP/1.0\r\nX-Test: marker-2\r\nContent-Length: 0\r\n\r\n");
    let line = wait_line(&log, "marker-2");
    assert!(line.starts_with("[marker-2] [text/html; charset=utf-8] [404] ["), "{line}");
    assert!(
        line.contains("] [/nothing%20here] [] [POST] [HTTP/1.0] [%] ["),
        "%U is the path as received: {line}"
    );
}

#[test]
fn request_values_are_escaped() {
    let s = Server::start(&conf("accesslog.filename = \"@DIR@/access.log\""));
    std::fs::write(s.docroot().join("x.txt"), "x").unwrap();
    let log = log_path(&s, "access.log");
    let mut req = b"GET /x.txt?mark=esc HTTP/1.1\r\nHost: a\r\nConnection: close\r\n".to_vec();
    req.extend_from_slice(b"Referer: say \"hi\" \\ there\r\n");
    req.extend_from_slice(b"User-Agent: tab\there \xc3\xa9 \xff end\r\n\r\n");
    let data = raw(s.port, &req);
    assert!(data.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&data));
    let line = wait_line(&log, "mark=esc");
    assert!(
        line.ends_with(r#" 200 1 "say \"hi\" \\ there" "tab\there \xC3\xA9 \xFF end""#),
        "escaped fields: {line}"
    );
    // Still one line per request, and every byte printable ASCII.
    let text = read(&log);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.trim_end_matches('\n').bytes().all(|b| (0x20..0x7f).contains(&b)), "{text:?}");
    let f = split_default(&line);
    assert_eq!(f.len(), 9, "quoted fields stay parseable: {f:?}");
}

#[test]
fn each_block_logs_to_its_own_file() {
    let s = Server::start(&conf(
        r#"accesslog.filename = "@DIR@/main.log"
$HTTP["host"] == "a.test" { accesslog.filename = "@DIR@/a.log" }
$HTTP["host"] == "b.test" {
    accesslog.filename = "@DIR@/b.log"
    accesslog.format = "b-format %m %U %>s"
}
$HTTP["host"] == "quiet.test" { accesslog.filename = "" }
"#,
    ));
    let get_host = |host: &str, mark: &str| {
        let r =
            request(s.port, &format!("GET /{mark} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
        assert_eq!(r.status, 404);
    };
    get_host("a.test", "for-a");
    get_host("b.test", "for-b");
    get_host("quiet.test", "for-nobody");
    get_host("other.test", "for-main");
    let (a, b, main) = (log_path(&s, "a.log"), log_path(&s, "b.log"), log_path(&s, "main.log"));
    wait_line(&a, "/for-a ");
    assert_eq!(wait_line(&b, "for-b"), "b-format GET /for-b 404");
    wait_line(&main, "/for-main ");
    // Every request wrote its one line; none went elsewhere.
    assert!(!read(&a).contains("for-b") && !read(&a).contains("for-main"), "{}", read(&a));
    assert!(!read(&b).contains("for-a") && !read(&b).contains("for-main"), "{}", read(&b));
    assert!(!read(&main).contains("for-a") && !read(&main).contains("for-b"), "{}", read(&main));
    for f in [&a, &b, &main] {
        assert!(!read(f).contains("for-nobody"), "{}", f.display());
        assert_eq!(read(f).lines().count(), 1, "{}", f.display());
    }
}

#[test]
fn sighup_reopens_a_rotated_log_file() {
    let s = Server::start(&conf("accesslog.filename = \"@DIR@/access.log\""));
    let log = log_path(&s, "access.log");
    let rotated = log_path(&s, "access.log.1");
    s.get("/before-rotation");
    wait_line(&log, "/before-rotation ");
    std::fs::rename(&log, &rotated).unwrap();
    // Until the SIGHUP the server still writes to the file it has open.
    s.get("/after-rename");
    wait_line(&rotated, "/after-rename ");
    assert!(!log.exists());
    s.signal(libc::SIGHUP);
    s.wait_log("SIGHUP: logs reopened");
    s.get("/after-sighup");
    wait_line(&log, "/after-sighup ");
    let new = read(&log);
    assert_eq!(new.lines().count(), 1, "a fresh file: {new}");
    let old = read(&rotated);
    assert_eq!(old.lines().count(), 2, "{old}");
    assert!(!old.contains("/after-sighup"), "{old}");
    // The server keeps working and logging after the reopen.
    s.get("/once-more");
    wait_line(&log, "/once-more ");
}

#[test]
fn piped_logger_receives_lines_and_is_restarted() {
    let s = Server::start(&conf(
        "accesslog.filename = \"|echo $$ >> @DIR@/logger.pids; exec cat >> @DIR@/piped.log\"",
    ));
    let out = log_path(&s, "piped.log");
    let pids = log_path(&s, "logger.pids");
    s.get("/piped-one");
    s.get("/piped-two");
    wait_line(&out, "/piped-one ");
    wait_line(&out, "/piped-two ");
    assert!(read(&out).lines().all(|l| l.starts_with("127.0.0.1 ")), "{}", read(&out));
    // The logger dies: the server notices and starts it again.
    let first: i32 = read(&pids).trim().parse().expect("logger pid");
    // SAFETY: kill(2) on the piped logger our test server started.
    assert_eq!(unsafe { libc::kill(first, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&pids).lines().count() < 2 {
        assert!(Instant::now() < deadline, "the piped logger was not restarted:\n{}", s.error_log());
        std::thread::sleep(Duration::from_millis(20));
    }
    s.wait_log("restarted");
    s.get("/piped-after-restart");
    wait_line(&out, "/piped-after-restart ");
}

#[test]
fn bad_format_or_unwritable_file_refuses_the_start() {
    // The error log of a refused start is kept outside the server's temp dir (removed on failure).
    let logs = TempDir::new("refused");
    let header = format!(
        "server.document-root = \"@DOCROOT@\"\nserver.bind = \"127.0.0.1\"\nserver.port = @PORT@\nserver.errorlog = \"{}/error.log\"\nserver.modules += ( \"mod_accesslog\" )\n",
        logs.path().display()
    );
    let f = Server::start_fail(
        &format!("{header}accesslog.filename = \"@DIR@/a.log\"\naccesslog.format = \"%h %Z\"\n"),
        None,
    );
    let msg = format!("{}{}", f.stderr, read(&logs.path().join("error.log")));
    assert!(msg.contains("accesslog.format") && msg.contains("%Z"), "{msg}");
    let f = Server::start_fail(&format!("{header}accesslog.filename = \"@DIR@/no/such/dir/a.log\"\n"), None);
    assert_ne!(f.code, Some(0));
    let msg = format!("{}{}", f.stderr, read(&logs.path().join("error.log")));
    assert!(msg.contains("accesslog.filename") && msg.contains("no/such/dir/a.log"), "{msg}");
}
