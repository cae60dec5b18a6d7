//! One server, several sites: every module is loaded once, and conditional blocks switch each
//! module's behaviour on for the sites that want it (docs/configuration.md, "Sites and
//! snippets"). The snippets under conf.d/ are the ones a site includes.

use featherd_e2e::*;

#[test]
fn each_site_enables_its_own_set_of_behaviours() {
    let s = Server::start(&format!(
        r#"{BASE}
server.modules = ( "mod_access", "mod_alias", "mod_rewrite", "mod_redirect", "mod_setenv",
                   "mod_expire", "mod_auth", "mod_authn_file", "mod_indexfile", "mod_staticfile" )
index-file.names = ( "index.html" )
$HTTP["host"] == "blog.test" {{
    server.document-root = "@DIR@/blog"
    url.rewrite-if-not-file = ( "^/posts/([a-z]+)$" => "/post.html?name=$1" )
    expire.url = ( "/" => "access plus 1 hours" )
}}
else $HTTP["host"] == "old.test" {{
    url.redirect = ( "^/(.*)" => "http://blog.test/$1" )
}}
else $HTTP["host"] =~ "^(admin)\.test$" {{
    server.document-root = "@DIR@/admin"
    auth.backend = "plain"
    auth.backend.plain.userfile = "@DIR@/users"
    auth.require = ( "/" => ( "method" => "basic", "realm" => "admin area", "require" => "valid-user" ) )
    url.access-deny = ( ".bak" )
    setenv.add-response-header = ( "X-Site" => "admin" )
}}
else $HTTP["host"] == "files.test" {{
    alias.url = ( "/pub/" => "@DIR@/public/" )
}}
"#
    ));
    let d = s.dir.path();
    for (p, c) in [
        ("blog/index.html", "blog home\n"),
        ("blog/post.html", "a post\n"),
        ("admin/index.html", "admin home\n"),
        ("admin/secret.bak", "backup\n"),
        ("public/readme.txt", "public file\n"),
        ("www/index.html", "default site\n"),
    ] {
        s.dir.write(p, c);
    }
    std::fs::write(d.join("users"), "alice:wonder\n").expect("users");
    let ask = |host: &str, path: &str, extra: &str| {
        request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"))
    };

    // blog: rewrite and expire, no auth.
    let r = ask("blog.test", "/posts/hello", "");
    assert_eq!((r.status, r.text().as_str()), (200, "a post\n"));
    assert_eq!(r.header("cache-control"), Some("max-age=3600"));
    // old: only redirects.
    let r = ask("old.test", "/posts/hello", "");
    assert_eq!((r.status, r.header("location")), (301, Some("http://blog.test/posts/hello")));
    // admin (selected by a regex with a capture): auth, access rules and its own header.
    let r = ask("admin.test", "/", "");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"admin area\", charset=\"UTF-8\""));
    assert_eq!(r.header("x-site"), Some("admin"));
    let auth = "Authorization: Basic YWxpY2U6d29uZGVy\r\n"; // alice:wonder
    let r = ask("admin.test", "/", auth);
    assert_eq!((r.status, r.text().as_str()), (200, "admin home\n"), "{}", s.error_log());
    assert_eq!(ask("admin.test", "/secret.bak", auth).status, 403);
    assert!(ask("admin.test", "/", auth).header("cache-control").is_none(), "no expire here");
    // files: the alias only there.
    assert_eq!(ask("files.test", "/pub/readme.txt", "").text(), "public file\n");
    assert_eq!(ask("blog.test", "/pub/readme.txt", "").status, 404);
    // Any other host: the plain default site, none of the above.
    let r = ask("other.test", "/", "");
    assert_eq!((r.status, r.text().as_str()), (200, "default site\n"));
    assert!(r.header("x-site").is_none() && r.header("cache-control").is_none());
    assert_eq!(ask("other.test", "/posts/hello", "").status, 404);
}

/// `$HTTP["host"]` and ports, as lighttpd 1.4 matches them: the other operators see the port
/// the client sent (not the scheme's default), `==` and `!=` compare ports only when the
/// pattern and the request both have one. Checked against lighttpd 1.4.69 case by case.
#[test]
fn host_conditions_see_the_port_as_lighttpd_does() {
    let s = Server::start(&format!(
        r#"{BASE}
server.modules = ( "mod_setenv", "mod_indexfile", "mod_staticfile" )
index-file.names = ( "index.html" )
$HTTP["host"] == "a.test:8080" {{ setenv.add-response-header = ( "X-Eq-Port" => "1" ) }}
$HTTP["host"] == "b.test" {{ setenv.set-response-header = ( "X-Eq" => "1" ) }}
$HTTP["host"] =~ "^c\.test$" {{ server.tag = "c-exact" }}
else $HTTP["host"] =~ "^c\.test:([0-9]+)$" {{ server.tag = "c-port" }}
$HTTP["host"] =$ ".d.test" {{ server.tag = "d-suffix" }}
"#
    ));
    s.dir.write("www/index.html", "home\n");
    let ask =
        |host: &str| request(s.port, &format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
    // `==` with a port: the same port, or none sent (the default port counts as none).
    for (host, hit) in [
        ("a.test:8080", true),
        ("a.test", true),
        ("a.test:80", true),
        ("A.TEST.:8080", true),
        ("a.test:9999", false),
    ] {
        assert_eq!(ask(host).header("x-eq-port").is_some(), hit, "{host}");
    }
    // `==` without a port: any port.
    for host in ["b.test", "b.test:8080", "b.test:80"] {
        assert_eq!(ask(host).header("x-eq"), Some("1"), "{host}");
    }
    // Regexes and suffixes see the port that was sent.
    assert_eq!(ask("c.test").header("server"), Some("c-exact"));
    assert_eq!(ask("c.test:80").header("server"), Some("c-exact"));
    assert_eq!(ask("c.test:8080").header("server"), Some("c-port"));
    assert_eq!(ask("x.d.test").header("server"), Some("d-suffix"));
    assert_ne!(ask("x.d.test:8080").header("server"), Some("d-suffix"));
}
