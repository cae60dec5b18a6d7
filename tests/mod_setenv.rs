//! mod_setenv through the real server: request headers added, replaced and removed before
//! backends see them, environment variables reaching a CGI script (mod_cgi) and a PHP script
//! (php-cgi under mod_fastcgi), response headers added, replaced and removed on every
//! response (static files, scripts, error pages, 304), once per request across a local
//! redirect, different settings per host and per URL, and bad settings refused at start.

use featherd_e2e::*;

const CGI: &str = r#"
server.modules = ( "mod_setenv", "mod_cgi" )
cgi.assign = ( ".py" => "/usr/bin/python3" )
"#;

/// A server with the CGI fixtures in `www/cgi/` and a static file, with `extra` config.
fn start(extra: &str) -> Server {
    let dir = TempDir::new("setenv");
    for f in ["env.py", "headers.py", "localredir.py"] {
        dir.write(
            &format!("www/cgi/{f}"),
            std::fs::read(workspace_root().join("tests/fixtures/cgi").join(f)).unwrap(),
        );
    }
    dir.write("www/page.txt", "page\n");
    dir.write("www/dir/.keep", "");
    Server::start_in(dir, &format!("{BASE}\n{CGI}\n{extra}\n"), None)
}

fn send(s: &Server, host: &str, path: &str, headers: &[&str]) -> Response {
    let mut r = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    request(s.port, &r)
}

/// NAME=value lines of a script's output.
fn var(r: &Response, name: &str) -> Option<String> {
    r.text().lines().find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
}

fn all<'a>(r: &'a Response, name: &str) -> Vec<&'a str> {
    r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn request_headers_reach_the_script_added_replaced_and_removed() {
    let s = start(
        r#"
setenv.add-request-header = ( "X-Add" => "one", "X-New" => "fresh" )
setenv.set-request-header = ( "X-Set" => "forced", "User-Agent" => "", "X-Absent" => "" )
"#,
    );
    let r = send(
        &s,
        "localhost",
        "/cgi/env.py",
        &["X-Add: two", "X-Set: from-client", "User-Agent: secret-agent/1.0", "X-Keep: kept"],
    );
    assert_eq!(r.status, 200, "{}", s.error_log());
    // add joins to the client's value, as lighttpd does.
    assert_eq!(var(&r, "HTTP_X_ADD").as_deref(), Some("two, one"), "{}", r.text());
    assert_eq!(var(&r, "HTTP_X_NEW").as_deref(), Some("fresh"));
    assert_eq!(var(&r, "HTTP_X_SET").as_deref(), Some("forced"));
    assert_eq!(var(&r, "HTTP_USER_AGENT"), None, "an empty set-request-header value removes");
    assert_eq!(var(&r, "HTTP_X_ABSENT"), None);
    assert_eq!(var(&r, "HTTP_X_KEEP").as_deref(), Some("kept"));
    // A header the client sent twice: every value is kept and ours comes last.
    let r = send(&s, "localhost", "/cgi/env.py", &["X-Add: a", "X-Add: b"]);
    assert_eq!(var(&r, "HTTP_X_ADD").as_deref(), Some("a, b, one"));
    // Without the header from the client, add creates it.
    let r = send(&s, "localhost", "/cgi/env.py", &[]);
    assert_eq!(var(&r, "HTTP_X_ADD").as_deref(), Some("one"));
    assert_eq!(var(&r, "HTTP_X_SET").as_deref(), Some("forced"));
}

#[test]
fn environment_reaches_a_cgi_script() {
    let s = start(
        r#"
setenv.add-environment = ( "APP_ENV" => "production", "APP_LIST" => "a", "EMPTY_ADD" => "" )
setenv.set-environment = ( "APP_LIST" => "replaced", "APP_BLANK" => "", "REMOTE_USER" => "forced-user" )
"#,
    );
    let r = s.get("/cgi/env.py");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(var(&r, "APP_ENV").as_deref(), Some("production"), "{}", r.text());
    // set is applied after add: it replaces.
    assert_eq!(var(&r, "APP_LIST").as_deref(), Some("replaced"));
    // An empty value is passed as an empty variable, as lighttpd does.
    assert_eq!(var(&r, "APP_BLANK").as_deref(), Some(""));
    assert_eq!(var(&r, "EMPTY_ADD").as_deref(), Some(""));
    assert_eq!(var(&r, "REMOTE_USER").as_deref(), Some("forced-user"));
    // The standard variables are still there.
    assert_eq!(var(&r, "SCRIPT_NAME").as_deref(), Some("/cgi/env.py"));
}

#[test]
fn environment_and_request_headers_reach_php_over_fastcgi() {
    let dir = TempDir::new("setenv-php");
    dir.write(
        "www/getenv.php",
        std::fs::read(workspace_root().join("tests/fixtures/fastcgi/getenv.php")).unwrap(),
    );
    let conf = format!(
        r#"{BASE}
server.modules = ( "mod_setenv", "mod_fastcgi" )
fastcgi.server = ( ".php" => ( "php" => ( "socket" => "@DIR@/php.sock", "bin-path" => "/usr/bin/php-cgi" ) ) )
setenv.add-environment = ( "APP_ENV" => "staging", "APP_JOIN" => "first" )
setenv.set-request-header = ( "X-Forwarded-Proto" => "https" )
$HTTP["host"] == "a.test" {{
    setenv.set-environment = ( "APP_ENV" => "site-a", "APP_JOIN" => "" )
}} else $HTTP["host"] == "b.test" {{
    setenv.add-environment = ( "APP_ENV" => "site-b" )
}}
"#
    );
    let s = Server::start_in(dir, &conf, None);
    let q = "/getenv.php?APP_ENV,APP_JOIN,HTTP_X_FORWARDED_PROTO";
    let r = send(&s, "localhost", q, &[]);
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.error_log());
    assert_eq!(var(&r, "APP_ENV").as_deref(), Some("staging"), "{}", r.text());
    assert_eq!(var(&r, "APP_JOIN").as_deref(), Some("first"));
    assert_eq!(var(&r, "HTTP_X_FORWARDED_PROTO").as_deref(), Some("https"));
    // a.test: its set-environment comes after the inherited add-environment.
    let r = send(&s, "a.test", q, &[]);
    assert_eq!(var(&r, "APP_ENV").as_deref(), Some("site-a"), "{}", r.text());
    assert_eq!(var(&r, "APP_JOIN").as_deref(), Some(""));
    assert_eq!(var(&r, "HTTP_X_FORWARDED_PROTO").as_deref(), Some("https"));
    // b.test: its own add list replaces the global one.
    let r = send(&s, "b.test", q, &[]);
    assert_eq!(var(&r, "APP_ENV").as_deref(), Some("site-b"), "{}", r.text());
    assert_eq!(var(&r, "APP_JOIN").as_deref(), Some("(unset)"));
}

#[test]
fn request_headers_reach_a_proxied_server() {
    // The stdlib Python echo server of the mod_proxy tests; it prints "ready PORT" once it
    // listens, then echoes each request's headers as "header: Name: value" lines.
    let port = free_port();
    let mut child = std::process::Command::new("python3")
        .arg(workspace_root().join("tests/fixtures/proxy/backend.py"))
        .args([&port.to_string(), "echo"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    let out = child.stdout.take().expect("stdout");
    std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line).expect("ready line");
    assert!(line.starts_with("ready"), "{line:?}");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _backend = Kill(child);
    // mod_setenv after mod_proxy in the list: the proxy builds its request later anyway.
    let s = Server::start(&format!(
        "{BASE}\nserver.modules = ( \"mod_proxy\", \"mod_setenv\" )\n\
         proxy.server = ( \"\" => ( ( \"host\" => \"127.0.0.1\", \"port\" => {port} ) ) )\n\
         setenv.add-request-header = ( \"X-Add\" => \"one\" )\n\
         setenv.set-request-header = ( \"X-Set\" => \"forced\", \"User-Agent\" => \"\" )\n"
    ));
    let r = send(&s, "localhost", "/anything", &["X-Add: two", "User-Agent: secret-agent/1.0"]);
    assert_eq!(r.status, 200, "{}\n{}", r.head, s.error_log());
    let text = r.text();
    let headers: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("header: ")).collect();
    let has = |h: &str| headers.iter().any(|x| x.eq_ignore_ascii_case(h));
    assert!(has("X-Add: two, one"), "{headers:?}");
    assert!(has("X-Set: forced"), "{headers:?}");
    assert!(!headers.iter().any(|h| h.to_ascii_lowercase().starts_with("user-agent:")), "{headers:?}");
}

#[test]
fn response_headers_on_every_response() {
    let s = start(
        r#"
index-file.names = ( "index.html" )
setenv.add-response-header = ( "Set-Cookie" => "from=server", "X-Added" => "1" )
setenv.set-response-header = ( "X-Script" => "", "Accept-Ranges" => "", "X-Frame-Options" => "DENY" )
"#,
    );
    // A script's own Set-Cookie stays, ours is a second line; its X-Script is removed.
    let r = s.get("/cgi/headers.py");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.text(), "headers\n");
    let mut cookies = all(&r, "Set-Cookie");
    cookies.sort();
    assert_eq!(cookies, ["from=script", "from=server"], "{}", r.head);
    assert!(r.header("X-Script").is_none(), "{}", r.head);
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    // A static file: the handler's Accept-Ranges is removed.
    let r = s.get("/page.txt");
    assert_eq!(r.status, 200);
    assert!(r.header("Accept-Ranges").is_none(), "{}", r.head);
    assert_eq!(all(&r, "X-Added"), ["1"]);
    // Error pages and bodiless answers get them too.
    let etag = r.header("ETag").expect("ETag").to_string();
    let not_modified = send(&s, "localhost", "/page.txt", &[&format!("If-None-Match: {etag}")]);
    let head = request(s.port, "HEAD /page.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    for (what, r, status) in [
        ("404", s.get("/missing.txt"), 404),
        ("403 (directory without index)", s.get("/dir/"), 403),
        ("304", not_modified, 304),
        ("HEAD", head, 200),
        ("301 (directory redirect)", s.get("/dir"), 301),
        ("400 (malformed path)", s.get("/bad%zz"), 400),
    ] {
        assert_eq!(r.status, status, "{what}: {}", r.head);
        assert_eq!(r.header("X-Frame-Options"), Some("DENY"), "{what}: {}", r.head);
        assert_eq!(all(&r, "Set-Cookie"), ["from=server"], "{what}");
    }
    // curl sees the same.
    let (code, out, err) = curl(&["-sI", &format!("http://127.0.0.1:{}/missing.txt", s.port)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("X-Frame-Options: DENY"), "{out}");
}

#[test]
fn applied_once_across_a_local_redirect() {
    let s = start(
        r#"
cgi.local-redir = "enable"
setenv.add-request-header = ( "X-Add" => "one" )
setenv.add-environment = ( "APP_LIST" => "a" )
setenv.add-response-header = ( "X-Added" => "1" )
"#,
    );
    // localredir.py sends "Location: /cgi/env.py?from=redirect": the request restarts there.
    let r = s.get("/cgi/localredir.py");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some("from=redirect"), "{}", r.text());
    assert_eq!(var(&r, "HTTP_X_ADD").as_deref(), Some("one"));
    assert_eq!(var(&r, "APP_LIST").as_deref(), Some("a"));
    assert_eq!(all(&r, "X-Added"), ["1"]);
}

#[test]
fn settings_per_host_and_per_url() {
    let s = start(
        r#"
setenv.set-response-header = ( "X-Site" => "global" )
$HTTP["host"] == "a.test" {
    setenv.set-response-header = ( "X-Site" => "a" )
    setenv.set-request-header = ( "X-Who" => "a" )
} else $HTTP["host"] == "b.test" {
    setenv.set-response-header = ( "X-Site" => "" )
    setenv.set-request-header = ( "X-Who" => "b" )
}
$HTTP["url"] =~ "^/cgi/" {
    setenv.add-environment = ( "UNDER_CGI" => "yes" )
}
"#,
    );
    let cases = [
        ("other.test", "/page.txt", Some("global"), None, None),
        ("a.test", "/page.txt", Some("a"), None, None),
        ("b.test", "/page.txt", None, None, None),
        ("a.test", "/cgi/env.py", Some("a"), Some("a"), Some("yes")),
        ("b.test", "/cgi/env.py", None, Some("b"), Some("yes")),
        ("other.test", "/cgi/env.py", Some("global"), None, Some("yes")),
    ];
    for (host, path, site, who, under_cgi) in cases {
        let r = send(&s, host, path, &[]);
        assert_eq!(r.status, 200, "{host}{path}: {}", r.head);
        assert_eq!(r.header("X-Site"), site, "{host}{path}: {}", r.head);
        if path.starts_with("/cgi/") {
            assert_eq!(var(&r, "HTTP_X_WHO").as_deref(), who, "{host}{path}");
            assert_eq!(var(&r, "UNDER_CGI").as_deref(), under_cgi, "{host}{path}");
        }
    }
}

#[test]
fn bad_settings_refuse_to_start() {
    let conf = |extra: &str| format!("{BASE}\nserver.modules = ( \"mod_setenv\" )\n{extra}\n");
    let f = Server::start_fail(&conf(r#"setenv.add-response-header = ( "Bad Name" => "v" )"#), None);
    assert!(
        f.stderr.contains("setenv.add-response-header") && f.stderr.contains("not a valid header name"),
        "{}",
        f.stderr
    );
    assert!(f.stderr.contains("featherd.conf:"), "no file:line in {}", f.stderr);
    let f = Server::start_fail(&conf(r#"setenv.set-request-header = ( "X:Y" => "v" )"#), None);
    assert!(f.stderr.contains("not a valid header name"), "{}", f.stderr);
    let f = Server::start_fail(&conf(r#"setenv.set-environment = ( "A=B" => "v" )"#), None);
    assert!(
        f.stderr.contains("setenv.set-environment") && f.stderr.contains("environment variable name"),
        "{}",
        f.stderr
    );
    let f = Server::start_fail(&conf(r#"setenv.add-environment = ( "A", "B" )"#), None);
    assert!(f.stderr.contains("\"name\" => \"value\""), "{}", f.stderr);
    let f = Server::start_fail(&format!("{BASE}\nsetenv.add-environment = ( \"A\" => \"B\" )\n"), None);
    assert!(f.stderr.contains("setenv.add-environment"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/setenv.conf");
    let s = Server::start(&format!(
        "{BASE}\ninclude \"{}\"\nsetenv.set-response-header = ( \"X-Test\" => \"1\" )\n",
        snippet.display()
    ));
    std::fs::write(s.docroot().join("x.txt"), "x\n").unwrap();
    let r = s.get("/x.txt");
    assert_eq!((r.status, r.header("X-Test")), (200, Some("1")));
}
