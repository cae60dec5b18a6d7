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
