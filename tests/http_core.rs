//! Core HTTP/1.x behaviour of the real server, observed over raw sockets: keep-alive and
//! pipelining, framing errors, limits, URL normalisation, directory redirects, PATH_INFO,
//! conditions and captures per request, listeners from `$SERVER["socket"]`.

use featherd_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// BASE plus the probe and panic fixtures, no default modules.
fn conf(extra: &str) -> String {
    format!(
        "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_probe\", \"mod_panic\" )\n{extra}\n"
    )
}

fn probe(s: &Server, target: &str) -> String {
    let r = s.get(target);
    assert_eq!(r.status, 200, "{target}: {}", r.head);
    r.text()
}

fn line<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let s = Server::start(&conf(""));
    let req = "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /probe-early?1 HTTP/1.1\r\nHost: b\r\n\r\nGET /ok HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
    let data = raw(s.port, req.as_bytes());
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 3, "{}", String::from_utf8_lossy(&data));
    assert_eq!(rs[0].text(), "still here\n");
    assert!(rs[1].text().contains("host=b\n"));
    assert_eq!(rs[2].header("connection"), Some("close"));
    assert!(rs[0].header("connection").is_none());
}

#[test]
fn pipelined_requests_after_half_close_are_all_answered() {
    let s = Server::start(&conf(""));
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    let one = "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    c.write_all(one.repeat(20).as_bytes()).unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut data = Vec::new();
    c.read_to_end(&mut data).unwrap();
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 20);
    assert!(rs.iter().all(|r| r.status == 200));
}

#[test]
fn http10_closes_unless_keep_alive() {
    let s = Server::start(&conf(""));
    let r = request(s.port, "GET /ok HTTP/1.0\r\n\r\n");
    assert!(r.head.starts_with("HTTP/1.0 200 OK"), "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"));
    let data = raw(s.port, b"GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /ok HTTP/1.0\r\n\r\n");
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 2);
    assert_eq!(rs[0].header("connection"), Some("keep-alive"));
}

#[test]
fn malformed_requests_get_400_and_the_server_stays_up() {
    let s = Server::start(&conf(""));
    let cases: &[(&str, u16)] = &[
        ("GET / HTTP/1.1\r\n\r\n", 400),                   // no Host
        ("GARBAGE\r\n\r\n", 400),                          // no request line
        ("GET / HTTP/3.0\r\nHost: a\r\n\r\n", 505),        // version
        ("GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),    // bad escape
        ("GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n", 400),   // NUL
        ("GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400), // not origin-form
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        ("GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", 400), // space before colon
        ("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n", 400), // obs-fold
        ("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),        // bad host
    ];
    for (req, status) in cases {
        let data = raw(s.port, req.as_bytes());
        let rs = parse_responses(&data, false);
        assert_eq!(rs.len(), 1, "{req:?} → {}", String::from_utf8_lossy(&data));
        assert_eq!(rs[0].status, *status, "{req:?}");
        assert_eq!(rs[0].header("connection"), Some("close"), "{req:?}");
    }
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn oversized_head_gets_431_and_body_over_limit_413() {
    let s = Server::start(&conf("server.max-request-field-size = 1024\nserver.max-request-size = 1\n"));
    let big = format!("GET /ok HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n", "x".repeat(2000));
    assert_eq!(request(s.port, &big).status, 431);
    let post = format!("POST /ok HTTP/1.1\r\nHost: a\r\nContent-Length: 2048\r\n\r\n{}", "y".repeat(2048));
    assert_eq!(request(s.port, &post).status, 413);
    let small = "POST /probe-early HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    let r = request(s.port, small);
    assert!(r.text().contains("body=hello\n"), "{}", r.text());
}

#[test]
fn paths_are_normalised_before_modules_see_them() {
    let s = Server::start(&conf(""));
    assert_eq!(s.get("/x/../ok").text(), "still here\n");
    assert_eq!(s.get("//./ok").text(), "still here\n");
    let t = probe(&s, "/probe-early/a/%2e%2e/b%20c//d?x=%41&probe");
    assert_eq!(line(&t, "path"), "/probe-early/b c/d");
    assert_eq!(line(&t, "query"), "x=%41&probe");
    assert_eq!(line(&t, "target"), "/probe-early/a/%2e%2e/b%20c//d?x=%41&probe");
    // Dot-segments can never climb out of the document root.
    let r = s.get("/%2e%2e/%2e%2e/%2e%2e/etc/passwd");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("root:"));
}

#[test]
fn absolute_dir_redirect_feature_flag_names_scheme_and_host() {
    let s = Server::start(&conf(
        r#"server.feature-flags = ( "server.absolute-dir-redirect" => "enable", "server.h2proto" => "enable" )"#,
    ));
    std::fs::create_dir_all(s.docroot().join("dir")).unwrap();
    let r = request(s.port, "GET /dir?a=b HTTP/1.1\r\nHost: example.org:8080\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("location")), (301, Some("http://example.org:8080/dir/?a=b")));
}

#[test]
fn directory_without_slash_redirects_and_path_info_is_split() {
    let s = Server::start(&conf(""));
    std::fs::create_dir_all(s.docroot().join("dir")).unwrap();
    std::fs::write(s.docroot().join("dir/script.php"), "x").unwrap();
    let r = request(s.port, "GET /dir?a=b HTTP/1.1\r\nHost: example.org:8080\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 301);
    // A path alone, as lighttpd 1.4.64+; the client's spelling of the path is kept.
    assert_eq!(r.header("location"), Some("/dir/?a=b"));
    let r = request(s.port, "GET /%64ir HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("location"), Some("/%64ir/"));
    let t = probe(&s, "/dir/script.php/extra/path?probe");
    assert_eq!(line(&t, "path_info"), "/extra/path");
    assert!(line(&t, "physical").ends_with("/www/dir/script.php"), "{t}");
    assert_eq!(line(&t, "file_size"), "1");
    // Nothing handles a plain file here (no mod_staticfile): 403, as lighttpd.
    assert_eq!(s.get("/dir/script.php").status, 403);
    assert_eq!(s.get("/missing").status, 404);
}

#[test]
fn conditions_select_config_per_request_with_captures() {
    let extra = r#"
probe.text = "global"
$HTTP["host"] =~ "^(.+)\.example\.org$" {
    probe.text = "vhost"
    $HTTP["url"] =^ "/probe-early/admin" { probe.text = "admin" }
}
else $HTTP["host"] == "other.test" { probe.text = "other" }
$HTTP["url"] =~ "^/probe-early/tag/(\w+)" { server.tag = "tagged" }
"#;
    let s = Server::start(&conf(extra));
    let get_host = |host: &str, path: &str| {
        request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    let t = get_host("shop.example.org", "/probe-early").text();
    assert_eq!(line(&t, "text"), "vhost");
    assert_eq!(line(&t, "capture1"), "shop");
    let t = get_host("blog.example.org", "/probe-early/admin").text();
    assert_eq!(line(&t, "text"), "admin");
    assert_eq!(line(&t, "capture1"), "blog", "captures of the enclosing regex condition");
    assert_eq!(line(&get_host("other.test", "/probe-early").text(), "text"), "other");
    assert_eq!(line(&get_host("nomatch", "/probe-early").text(), "text"), "global");
    let r = get_host("x", "/probe-early/tag/abc");
    assert_eq!(r.header("server"), Some("tagged"));
    assert!(get_host("x", "/probe-early").header("server").unwrap_or("").starts_with("featherd/"));
}

#[test]
fn head_has_headers_and_no_body_options_star_and_date() {
    let s = Server::start(&conf(""));
    let data = raw(s.port, b"HEAD /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&data);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Content-Length: 11\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "HEAD must have no body: {text:?}");
    let r = request(s.port, "OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r.header("allow").unwrap_or("").contains("GET"));
    let d = r.header("date").unwrap_or("");
    assert!(d.ends_with(" GMT") && d.len() == 29, "Date: {d}");
    let r = s.get("/missing");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<h1>404 Not Found</h1>"));
}

#[test]
fn errorfile_prefix_serves_custom_error_pages() {
    let dir = TempDir::new("errfile");
    dir.write("errors/status-404.html", "custom not found\n");
    let s = Server::start_in(dir, &conf("server.errorfile-prefix = \"@DIR@/errors/status-\"\n"), None);
    let r = s.get("/missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "custom not found\n");
}

#[test]
fn keep_alive_request_limit_closes_the_connection() {
    let s = Server::start(&conf("server.max-keep-alive-requests = 2\n"));
    let data = raw(s.port, "GET /ok HTTP/1.1\r\nHost: a\r\n\r\n".repeat(3).as_bytes());
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 2, "the third request is not answered on this connection");
    assert_eq!(rs[1].header("connection"), Some("close"));
}

#[test]
fn idle_and_slow_clients_time_out() {
    let s = Server::start(&conf("server.max-read-idle = 1\nserver.max-keep-alive-idle = 1\n"));
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHo").unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    assert!(t0.elapsed() < Duration::from_secs(5), "slow client was not dropped");
    assert!(buf.is_empty(), "nothing is answered to an incomplete head");
    // Other clients are unaffected.
    assert_eq!(s.get("/ok").status, 200);
}

#[test]
fn extra_listeners_unix_and_ipv6() {
    let dir = TempDir::new("listen");
    let sock = dir.path().join("featherd.sock");
    let v6port = free_port();
    let extra = format!(
        "$SERVER[\"socket\"] == \"{}\" {{ probe.text = \"unix\" }}\n$SERVER[\"socket\"] == \"[::1]:{v6port}\" {{ probe.text = \"v6\" }}\n",
        sock.display()
    );
    let s = Server::start_in(dir, &conf(&extra), None);
    let (code, out, err) =
        curl(&["--unix-socket", &sock.display().to_string(), "http://localhost/probe-early"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(line(&out, "text"), "unix");
    let (code, out, err) = curl(&["-g", &format!("http://[::1]:{v6port}/probe-early")]);
    if code == 7 && err.contains("Couldn't connect") && !std::path::Path::new("/proc/net/if_inet6").exists() {
        eprintln!("no IPv6 on this machine; skipping the [::1] part");
    } else {
        assert_eq!(code, 0, "{err}");
        assert_eq!(line(&out, "text"), "v6");
        assert_eq!(line(&out, "remote"), "::1");
    }
    let t = probe(&s, "/probe-early");
    assert_eq!(line(&t, "text"), "");
}

#[test]
fn follow_symlink_disabled_refuses_links_below_the_document_root() {
    let s = Server::start(&format!(
        "{BASE}\nserver.modules = ( \"mod_staticfile\" )\n\
         $HTTP[\"host\"] == \"strict.test\" {{ server.follow-symlink = \"disable\" }}\n"
    ));
    let root = s.docroot();
    std::fs::write(root.join("real.txt"), "real\n").expect("write");
    std::fs::create_dir_all(root.join("dir")).expect("mkdir");
    std::fs::write(root.join("dir/inner.txt"), "inner\n").expect("write");
    std::os::unix::fs::symlink(root.join("real.txt"), root.join("link.txt")).expect("symlink");
    std::os::unix::fs::symlink(root.join("dir"), root.join("linkdir")).expect("symlink");
    let get_as = |host: &str, path: &str| {
        request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    // Default: links are followed.
    for p in ["/real.txt", "/link.txt", "/linkdir/inner.txt"] {
        assert_eq!(get_as("any.test", p).status, 200, "{p}");
    }
    // Disabled: a link anywhere below the document root is refused, also with PATH_INFO.
    assert_eq!(get_as("strict.test", "/real.txt").text(), "real\n");
    assert_eq!(get_as("strict.test", "/dir/inner.txt").text(), "inner\n");
    for p in ["/link.txt", "/linkdir/inner.txt", "/link.txt/more/path"] {
        let r = get_as("strict.test", p);
        assert_eq!(r.status, 403, "{p}");
        assert!(!r.text().contains("real"), "{p}");
    }
}

#[test]
fn error_handlers_answer_server_errors_with_the_error_status() {
    let s = Server::start(&format!(
        "{BASE}\nserver.modules = ( \"mod_cgi\", \"mod_staticfile\" )\n\
         cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n\
         server.error-handler-404 = \"/errors/404.html\"\n\
         $HTTP[\"host\"] == \"dyn.test\" {{ server.error-handler = \"/errors/handler.py\"\n\
         server.error-handler-404 = \"\" }}\n\
         $HTTP[\"host\"] == \"gone.test\" {{ server.error-handler-404 = \"/errors/gone.py\" }}\n\
         $HTTP[\"host\"] == \"broken.test\" {{ server.error-handler-404 = \"/errors/nothing-here.html\" }}\n"
    ));
    let root = s.docroot();
    std::fs::create_dir_all(root.join("errors")).expect("mkdir");
    std::fs::create_dir_all(root.join("emptydir")).expect("mkdir");
    std::fs::write(root.join("errors/404.html"), "<h1>custom not found</h1>\n").expect("write");
    std::fs::write(
        root.join("errors/handler.py"),
        "import os\nprint('Status: 200')\nprint('Content-Type: text/plain')\nprint()\n\
         print('status', os.environ.get('REDIRECT_STATUS'), 'method', os.environ.get('REQUEST_METHOD'))\n\
         print('uri', os.environ.get('REQUEST_URI'), os.environ.get('REDIRECT_URI'))\n",
    )
    .expect("write");
    std::fs::write(
        root.join("errors/gone.py"),
        "print('Status: 410 Gone')\nprint('Content-Type: text/plain')\nprint()\nprint('gone for good')\n",
    )
    .expect("write");
    let ask = |method: &str, host: &str, path: &str| {
        request(
            s.port,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
    };
    // A static 404 page keeps the 404 status (no "soft 404").
    let r = ask("GET", "any.test", "/missing.txt");
    assert_eq!((r.status, r.text().as_str()), (404, "<h1>custom not found</h1>\n"));
    assert_eq!(r.header("content-type"), Some("text/html"));
    // HEAD gets the head of it.
    let r = ask("HEAD", "any.test", "/missing.txt");
    assert_eq!((r.status, r.body.len()), (404, 0));
    // server.error-handler takes every error: 404 and 403 (a directory without index), with
    // REDIRECT_STATUS, asked with GET also for a POST; its 200 carries the error status.
    // The handler learns what was asked for from REQUEST_URI, as in lighttpd.
    let r = ask("GET", "dyn.test", "/missing.txt?q");
    assert_eq!(
        (r.status, r.text().trim()),
        (404, "status 404 method GET\nuri /missing.txt?q /errors/handler.py")
    );
    let r = ask("GET", "dyn.test", "/emptydir/");
    assert_eq!(
        (r.status, r.text().trim()),
        (403, "status 403 method GET\nuri /emptydir/ /errors/handler.py")
    );
    let r = ask("POST", "dyn.test", "/missing.txt");
    assert_eq!(
        (r.status, r.text().trim()),
        (404, "status 404 method GET\nuri /missing.txt /errors/handler.py")
    );
    // A dynamic handler may choose another status.
    let r = ask("GET", "gone.test", "/missing.txt");
    assert_eq!((r.status, r.text().trim()), (410, "gone for good"));
    // A handler that is itself missing: the plain error, no loop.
    let r = ask("GET", "broken.test", "/missing.txt");
    assert_eq!(r.status, 404);
    assert!(!r.text().contains("custom"));
    // Existing files are untouched.
    let r = ask("GET", "dyn.test", "/errors/404.html");
    assert_eq!(r.status, 200);
}

#[test]
fn methods_lighttpd_answers_411_501_and_options() {
    let s = Server::start(&format!("{BASE}\nserver.modules = ( \"mod_staticfile\" )\n"));
    std::fs::write(s.docroot().join("f.txt"), "file\n").expect("write");
    let ask = |req: &str| request(s.port, req);
    // A POST must carry its length (also an empty one): 411, in HTTP/1.0 and 1.1.
    let r = ask("POST /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 411);
    let r = ask("POST /f.txt HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 411);
    let r = ask("POST /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "file\n"));
    let r = ask(
        "POST /f.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    // Methods nobody implements here: 501; an unknown method: 501 before any lookup.
    for m in ["PUT", "DELETE", "PATCH", "PROPFIND"] {
        let r =
            ask(&format!("{m} /f.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"));
        assert_eq!(r.status, 501, "{m}");
    }
    let r = ask("FOO /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 501);
    // OPTIONS on a file says what it allows.
    let r = ask("OPTIONS /f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (200, Some("OPTIONS, GET, HEAD, POST")));
    assert!(r.body.is_empty());
    // The server is fine afterwards.
    assert_eq!(s.get("/f.txt").status, 200);
}

#[test]
fn http_parseopts_backslash_utf8_and_query() {
    let opts = "server.http-parseopts = ( \"url-path-backslash-trans\" => \"enable\",\n\
                \"url-invalid-utf8-reject\" => \"enable\", \"url-query-20-plus\" => \"enable\" )";
    let s = Server::start(&format!(
        "{BASE}\nserver.modules = ( \"mod_cgi\", \"mod_staticfile\" )\n\
         cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n{opts}\n"
    ));
    let root = s.docroot();
    std::fs::create_dir_all(root.join("d")).expect("mkdir");
    std::fs::write(root.join("d/f.txt"), "inside\n").expect("write");
    std::fs::write(root.join("caf\u{e9}.txt"), "utf8\n").expect("write");
    std::fs::write(root.join("q.py"), "import os\nprint()\nprint(os.environ['QUERY_STRING'])\n")
        .expect("write");
    let ask = |t: &str| request(s.port, &format!("GET {t} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
    assert_eq!(ask("/d\\f.txt").text(), "inside\n");
    assert_eq!(ask("/d\\..\\d/f.txt").text(), "inside\n");
    assert_eq!(ask("/caf%C3%A9.txt").status, 200);
    assert_eq!(ask("/caf%E9.txt").status, 400);
    assert_eq!(ask("/q.py?a=b%20c&d=%2520").text().trim(), "a=b+c&d=%2520");
    // Without the options: backslash is a plain character, bad UTF-8 just a missing file.
    let plain = Server::start(&format!("{BASE}\nserver.modules = ( \"mod_staticfile\" )\n"));
    std::fs::create_dir_all(plain.docroot().join("d")).expect("mkdir");
    std::fs::write(plain.docroot().join("d/f.txt"), "inside\n").expect("write");
    let r = request(plain.port, "GET /d\\f.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 404);
    let r = request(plain.port, "GET /caf%E9.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 404);
    // An unknown option is refused with its place.
    let f = Server::start_fail(
        &format!(
            "{BASE}\nserver.http-parseopts = ( \"url-frobnicate\" => \"enable\" )\nserver.errorlog := \"\"\n"
        ),
        None,
    );
    assert!(f.stderr.contains("featherd.conf:") && f.stderr.contains("url-frobnicate"), "{}", f.stderr);
}

/// Request smuggling vectors (RFC 9112): each is refused with its status and the connection
/// is closed by the server, so the request hidden behind it in the same packet is never
/// answered. The client keeps its side open: the server must close by itself.
#[test]
fn smuggling_vectors_are_refused_and_close_the_connection() {
    let s = Server::start(&conf(""));
    let hidden = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    let post = "POST /ok HTTP/1.1\r\nHost: a\r\n";
    let cases: Vec<(&str, String, u16)> = vec![
        ("CL and TE", format!("{post}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        ("TE and CL", format!("{post}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), 400),
        ("differing CL", format!("{post}Content-Length: 5\r\nContent-Length: 6\r\n\r\n"), 400),
        ("duplicate CL", format!("{post}Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400),
        ("CL list", format!("{post}Content-Length: 5, 5\r\n\r\n"), 400),
        ("CL sign", format!("{post}Content-Length: +5\r\n\r\n"), 400),
        ("CL hex", format!("{post}Content-Length: 0x5\r\n\r\n"), 400),
        ("obs-fold", "GET /ok HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n".into(), 400),
        ("obs-fold of TE", format!("{post}Transfer-Encoding:\r\n chunked\r\n\r\n"), 400),
        ("space before colon", format!("{post}Transfer-Encoding : chunked\r\n\r\n"), 400),
        ("tab before colon", format!("{post}Content-Length\t: 5\r\n\r\n"), 400),
        ("TE not final chunked", format!("{post}Transfer-Encoding: chunked, identity\r\n\r\n"), 400),
        ("TE without chunked", format!("{post}Transfer-Encoding: identity\r\n\r\n"), 400),
        (
            "TE chunked twice",
            format!("{post}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400,
        ),
        ("TE chunked, chunked", format!("{post}Transfer-Encoding: chunked, chunked\r\n\r\n"), 400),
        ("TE look-alike", format!("{post}Transfer-Encoding: xchunked\r\n\r\n"), 400),
        ("TE coding we lack", format!("{post}Transfer-Encoding: gzip, chunked\r\n\r\n"), 501),
        ("TE in HTTP/1.0", "POST /ok HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".into(), 400),
        ("bare CR in a value", "GET /ok HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n".into(), 400),
        ("bare CR ending a line", "GET /ok HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n".into(), 400),
        ("NUL in a value", "GET /ok HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n".into(), 400),
        ("NUL in a name", "GET /ok HTTP/1.1\r\nHost: a\r\nX-\x00A: 1\r\n\r\n".into(), 400),
        ("two spaces before the version", "GET /ok  HTTP/1.1\r\nHost: a\r\n\r\n".into(), 400),
        ("no version", "GET /ok\r\nHost: a\r\n\r\n".into(), 400),
        ("bad chunk size", format!("{post}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 400),
        (
            "chunk size overflow",
            format!("{post}Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
            400,
        ),
        ("chunk without CRLF", format!("{post}Transfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\n"), 400),
        ("chunk size LF only", format!("{post}Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), 400),
        ("two Host headers", "GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
    ];
    for (name, req, status) in &cases {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(req.as_bytes()).unwrap();
        c.write_all(hidden).unwrap();
        let mut data = Vec::new();
        let _ = c.read_to_end(&mut data);
        let rs = parse_responses(&data, false);
        assert_eq!(rs.len(), 1, "{name}: {}", String::from_utf8_lossy(&data));
        assert_eq!(rs[0].status, *status, "{name}");
        assert_eq!(rs[0].header("connection"), Some("close"), "{name}");
    }
    assert_eq!(s.get("/ok").status, 200);
}

/// `server.max-connections`: at the limit the server stops accepting (the next client waits
/// in the kernel's queue, unanswered) and goes on as soon as a connection closes.
#[test]
fn max_connections_pauses_accepting_and_resumes() {
    let s = Server::start(&conf("server.max-connections = 2\nserver.max-worker := 1\n"));
    let ka = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    let answered = |c: &mut TcpStream| {
        let mut buf = [0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"still here\n") {
            match c.read(&mut buf) {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c.write_all(ka).unwrap();
        assert!(answered(&mut c));
        held.push(c);
    }
    let mut third = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    third.write_all(ka).unwrap();
    third.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(third.read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "a third connection was served above server.max-connections = 2"
    );
    drop(held.remove(0));
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(answered(&mut third), "the waiting connection was not served after one closed");
    // Many clients through the two slots, each closing: accepting keeps resuming.
    for i in 0..50 {
        drop(held.pop());
        let r = s.get("/ok");
        assert_eq!(r.status, 200, "client {i}");
    }
}
