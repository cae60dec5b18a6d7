//! mod_alias through the real server: URL prefixes served from other directories (and single
//! files), the longest prefix winning in any order, the plain-prefix and trailing-slash
//! pitfalls as lighttpd has them, the core's directory redirect, PATH_INFO, index files and
//! CGI variables under an alias, settings per host and per URL, and path traversal attempts
//! over raw sockets (dot segments, percent-encoded dots and slashes, `/icons..`) that must
//! never reach a file outside the alias target.

use featherd_e2e::*;

fn conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules = ( \"mod_alias\" )\n{extra}\n")
}

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

/// A temp dir with the docroot and the directories the aliases point to.
fn site() -> TempDir {
    let d = TempDir::new("alias");
    d.write("www/index.html", "docroot home\n");
    d.write("www/icons/x.txt", "the docroot's icons/x.txt\n");
    d.write("icons/x.txt", "icon x\n");
    d.write("icons/sub/y.txt", "icon y\n");
    d.write("icons-old/z.txt", "old icon z\n");
    d.write("one/f.txt", "one\n");
    d.write("two/f.txt", "two\n");
    d.write("three/f.txt", "three\n");
    d.write("a/f.txt", "site a\n");
    d.write("b/f.txt", "site b\n");
    d.write("special/f.txt", "special\n");
    d.write("manual/index.html", "manual home\n");
    d.write("secret.txt", "TOP SECRET\n");
    d
}

#[test]
fn prefix_served_from_the_target_directory() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"
index-file.names = ( "index.html" )
alias.url = ( "/icons/" => "@DIR@/icons/", "/favicon.txt" => "@DIR@/icons/x.txt", "/docs" => "@DIR@/manual" )
"#,
        ),
        None,
    );
    let cases = [
        ("/icons/x.txt", 200, "icon x\n"),
        ("/icons/sub/y.txt", 200, "icon y\n"),
        ("/favicon.txt", 200, "icon x\n"),
        ("/docs/", 200, "manual home\n"),
        ("/docs/index.html", 200, "manual home\n"),
        ("/", 200, "docroot home\n"),
        ("/icons/missing.txt", 404, ""),
        ("/icons/missing/deeper/file.txt", 404, ""),
    ];
    for (path, status, body) in cases {
        let r = s.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.head);
        if status == 200 {
            assert_eq!(r.text(), body, "{path}");
        }
    }
    // A directory without '/' gets the core's redirect to the URL with '/'.
    let r = s.get("/docs");
    assert_eq!(r.status, 301);
    assert!(r.header("Location").is_some_and(|l| l.ends_with("/docs/")), "{}", r.head);
    let (code, out, err) = curl(&["-L", &format!("http://127.0.0.1:{}/docs", s.port)]);
    assert_eq!((code, out.as_str()), (0, "manual home\n"), "{err}");
    // The static file handler's validators work on the aliased file.
    let r = s.get("/icons/x.txt");
    let etag = r.header("ETag").expect("ETag").to_string();
    let r = request(
        s.port,
        &format!(
            "GET /icons/x.txt HTTP/1.1\r\nHost: a\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 304);
}

#[test]
fn longest_prefix_wins_in_any_order() {
    for list in [
        r#"( "/a/" => "@DIR@/one/", "/a/b/" => "@DIR@/two/", "/a/b/c/" => "@DIR@/three/" )"#,
        r#"( "/a/b/c/" => "@DIR@/three/", "/a/" => "@DIR@/one/", "/a/b/" => "@DIR@/two/" )"#,
    ] {
        let s = Server::start_in(site(), &conf(&format!("alias.url = {list}")), None);
        assert_eq!(s.get("/a/f.txt").text(), "one\n", "{list}");
        assert_eq!(s.get("/a/b/f.txt").text(), "two\n", "{list}");
        assert_eq!(s.get("/a/b/c/f.txt").text(), "three\n", "{list}");
    }
}

#[test]
fn plain_prefix_and_trailing_slash_pitfalls_as_lighttpd() {
    let s = Server::start_in(
        site(),
        &conf(r#"alias.url = ( "/icons" => "@DIR@/icons", "/pics/" => "@DIR@/icons/" )"#),
        None,
    );
    // "/icons" without '/': the prefix also takes "/icons-old/...", glued to the target name.
    assert_eq!(s.get("/icons/x.txt").text(), "icon x\n");
    assert_eq!(s.get("/icons-old/z.txt").text(), "old icon z\n");
    // The docroot's own icons/ is hidden by the alias.
    assert!(!s.get("/icons/x.txt").text().contains("docroot"));
    // "/pics/" with '/': "/pics" itself is not aliased and falls to the docroot (404 here).
    assert_eq!(s.get("/pics/x.txt").text(), "icon x\n");
    assert_eq!(s.get("/pics").status, 404);
}

#[test]
fn mismatched_trailing_slash_is_warned_about_at_start() {
    let s = Server::start_in(site(), &conf(r#"alias.url = ( "/icons/" => "@DIR@/icons" )"#), None);
    s.wait_log("one of prefix and target ends with '/'");
    // As lighttpd: the rest of the path is glued to the target without a separator.
    std::fs::write(s.dir.path().join("iconsx.txt"), "glued\n").unwrap();
    assert_eq!(s.get("/icons/x.txt").text(), "glued\n");
}

/// Every answer to a traversal attempt: never the secret, never a 200.
fn assert_contained(s: &Server, target: &str, want: u16) {
    let raw_req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let data = raw(s.port, raw_req.as_bytes());
    let text = String::from_utf8_lossy(&data);
    assert!(!text.contains("TOP SECRET"), "{target} leaked the secret:\n{text}");
    let r =
        parse_responses(&data, false).into_iter().next().unwrap_or_else(|| panic!("no answer to {target}"));
    assert_eq!(r.status, want, "{target}: {}", r.head);
}

#[test]
fn traversal_never_leaves_the_alias_target() {
    // The dangerous form: prefix without '/', target with '/'.
    let alias = r#"alias.url = ( "/icons" => "@DIR@/icons/" )"#;
    let s = Server::start_in(site(), &conf(alias), None);
    assert_eq!(s.get("/icons/x.txt").text(), "icon x\n");
    let cases = [
        // Dot segments are resolved on the URL before mod_alias sees it: /secret.txt in the
        // docroot, which has none.
        ("/icons/../secret.txt", 404),
        ("/icons/../../secret.txt", 404),
        ("/icons/%2e%2e/secret.txt", 404),
        ("/icons/.%2E/secret.txt", 404),
        ("/icons/%2E%2E/%2e%2e/secret.txt", 404),
        ("/icons/sub/../../secret.txt", 404),
        // An encoded slash stays part of a name (lighttpd's default): no separator, no climb.
        ("/icons/..%2fsecret.txt", 404),
        ("/icons/..%2F..%2Fsecret.txt", 404),
        ("/icons..%2fsecret.txt", 404),
        // The rest of the path would start with ".." after the target's '/': refused.
        ("/icons../secret.txt", 403),
        ("/icons..", 403),
        ("/icons%2e%2e/secret.txt", 403),
        ("/icons.%2e/secret.txt", 403),
        ("/icons./x.txt", 403),
        // Backslashes and NUL are not separators either.
        ("/icons/..\\secret.txt", 404),
        ("/icons/%00/../secret.txt", 400),
    ];
    for (target, want) in cases {
        assert_contained(&s, target, want);
    }
    // With encoded slashes decoded, they become separators before the dot segments are
    // resolved, so the same requests still cannot climb.
    let s = Server::start_in(
        site(),
        &conf(&format!("{alias}\nserver.http-parseopts = ( \"url-path-2f-decode\" => \"enable\" )")),
        None,
    );
    for (target, want) in [
        ("/icons/..%2fsecret.txt", 404),
        ("/icons/sub%2f..%2f..%2fsecret.txt", 404),
        ("/icons..%2fsecret.txt", 403),
        ("/icons/sub%2fy.txt", 200),
    ] {
        assert_contained(&s, target, want);
    }
}

#[test]
fn cgi_environment_path_info_and_index_files_under_an_alias() {
    let dir = site();
    let env = std::fs::read(workspace_root().join("tests/fixtures/cgi/env.py")).unwrap();
    dir.write("scripts/env.py", &env);
    dir.write("scripts/index.py", &env);
    let s = Server::start_in(
        dir,
        &format!(
            "{BASE}\nserver.modules = ( \"mod_alias\", \"mod_indexfile\", \"mod_cgi\" )\n\
             cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n\
             index-file.names = ( \"index.py\" )\n\
             alias.url = ( \"/cgi-bin/\" => \"@DIR@/scripts/\" )\n"
        ),
        None,
    );
    let vars = |r: &Response| -> Vec<(String, String)> {
        r.text().lines().filter_map(|l| l.split_once('=').map(|(a, b)| (a.into(), b.into()))).collect()
    };
    let var = |v: &[(String, String)], n: &str| v.iter().find(|(k, _)| k == n).map(|(_, x)| x.clone());
    let root = s.dir.path().join("scripts").display().to_string();
    let r = s.get("/cgi-bin/env.py/extra/path?q=1");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.error_log());
    let v = vars(&r);
    assert_eq!(var(&v, "DOCUMENT_ROOT"), Some(root.clone()));
    assert_eq!(var(&v, "SCRIPT_FILENAME"), Some(format!("{root}/env.py")));
    assert_eq!(var(&v, "SCRIPT_NAME").as_deref(), Some("/cgi-bin/env.py"));
    assert_eq!(var(&v, "PATH_INFO").as_deref(), Some("/extra/path"));
    assert_eq!(var(&v, "PATH_TRANSLATED"), Some(format!("{root}/extra/path")));
    assert_eq!(var(&v, "QUERY_STRING").as_deref(), Some("q=1"));
    // The index file of the aliased directory: its URL path is the directory's plus its name.
    let r = s.get("/cgi-bin/");
    assert_eq!(r.status, 200, "{}", s.error_log());
    let v = vars(&r);
    assert_eq!(var(&v, "SCRIPT_NAME").as_deref(), Some("/cgi-bin/index.py"));
    assert_eq!(var(&v, "SCRIPT_FILENAME"), Some(format!("{root}/index.py")));
    // A missing script under the alias is the core's 404.
    assert_eq!(s.get("/cgi-bin/missing.py").status, 404);
}

#[test]
fn settings_per_host_and_per_url() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"
alias.url = ( "/files/" => "@DIR@/one/" )
$HTTP["host"] == "a.test" {
    alias.url = ( "/files/" => "@DIR@/a/" )
} else $HTTP["host"] =~ "^b\." {
    alias.url = ( "/files/" => "@DIR@/b/" )
} else $HTTP["host"] == "none.test" {
    alias.url = ( )
}
$HTTP["url"] =~ "^/special/" {
    alias.url = ( "/special/" => "@DIR@/special/" )
}
"#,
        ),
        None,
    );
    let cases = [
        ("other.test", "/files/f.txt", 200, "one\n"),
        ("a.test", "/files/f.txt", 200, "site a\n"),
        ("b.example", "/files/f.txt", 200, "site b\n"),
        ("none.test", "/files/f.txt", 404, ""),
        ("a.test", "/special/f.txt", 200, "special\n"),
        ("other.test", "/special/f.txt", 200, "special\n"),
    ];
    for (host, path, status, body) in cases {
        let r = get_host(&s, host, path);
        assert_eq!(r.status, status, "{host}{path}: {}", r.head);
        if status == 200 {
            assert_eq!(r.text(), body, "{host}{path}");
        }
    }
}

#[test]
fn bad_settings_refuse_to_start() {
    let f = Server::start_fail(&conf(r#"alias.url = ( "/icons/" => "relative/icons/" )"#), None);
    assert!(f.stderr.contains("alias.url") && f.stderr.contains("absolute path"), "{}", f.stderr);
    assert!(f.stderr.contains("featherd.conf:"), "no file:line in {}", f.stderr);
    let f = Server::start_fail(&conf(r#"alias.url = ( "icons/" => "/srv/icons/" )"#), None);
    assert!(f.stderr.contains("must start with '/'"), "{}", f.stderr);
    let f = Server::start_fail(&conf(r#"alias.url = ( "/icons/", "/srv/icons/" )"#), None);
    assert!(f.stderr.contains("\"/url-prefix\" => \"/filesystem/path\""), "{}", f.stderr);
    let f = Server::start_fail(&conf(r#"alias.url = ( "/a/" => "/x/", "/a/" => "/y/" )"#), None);
    assert!(f.stderr.contains("duplicate"), "{}", f.stderr);
    let f = Server::start_fail(&format!("{BASE}\nalias.url = ( \"/a/\" => \"/x/\" )\n"), None);
    assert!(f.stderr.contains("alias.url"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/alias.conf");
    let s = Server::start_in(site(), &format!("{BASE}\ninclude \"{}\"\n", snippet.display()), None);
    std::fs::write(s.docroot().join("x.txt"), "x\n").unwrap();
    assert_eq!(s.get("/x.txt").text(), "x\n");
}
