//! mod_simple_vhost through the real server: the Host header picks the directory
//! server-root/HOST/document-root (port stripped, case folded), unknown hosts get the default
//! host's, no Host header can reach a directory outside the server root, and the settings
//! differ per site through conditional blocks.

use featherd_e2e::*;

const VHOSTS: &str = r#"
server.modules = ( "mod_simple_vhost" )
index-file.names = ( "index.html" )
simple-vhost.server-root = "@DIR@/vhosts"
simple-vhost.document-root = "htdocs"
"#;

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

/// The sites every test uses: a.test, b.test, default.test, and the main document root.
fn sites(s: &Server) {
    s.dir.write("vhosts/a.test/htdocs/index.html", "A");
    s.dir.write("vhosts/a.test/htdocs/page.txt", "A page");
    s.dir.write("vhosts/b.test/htdocs/index.html", "B");
    s.dir.write("vhosts/default.test/htdocs/index.html", "DEFAULT");
    s.dir.write("www/index.html", "WWW");
    s.dir.write("www/only-in-www.txt", "WWW file");
}

#[test]
fn the_host_picks_the_directory() {
    let s = Server::start(&format!("{BASE}{VHOSTS}simple-vhost.default-host = \"default.test\"\n"));
    sites(&s);
    let cases = [
        ("a.test", "/", "A"),
        ("a.test", "/page.txt", "A page"),
        ("b.test", "/", "B"),
        // The port is not part of the directory name; names are case-insensitive.
        ("a.test:8080", "/", "A"),
        ("A.TEST", "/", "A"),
        ("B.Test:1", "/", "B"),
        // A trailing dot names the same host.
        ("a.test.", "/", "A"),
        // No directory for the host: the default host's.
        ("unknown.test", "/", "DEFAULT"),
        ("127.0.0.1", "/", "DEFAULT"),
    ];
    for (host, path, want) in cases {
        let r = get_host(&s, host, path);
        assert_eq!((r.status, r.text().as_str()), (200, want), "Host: {host} {path}\n{}", r.head);
    }
    // The site's own tree only: the main document root is not looked at.
    assert_eq!(get_host(&s, "a.test", "/only-in-www.txt").status, 404);
    // HTTP/1.0 without a Host header: the default host.
    let r = request(s.port, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "DEFAULT"));
    // The same through curl.
    let url = format!("http://127.0.0.1:{}/", s.port);
    let (code, out, err) = curl(&["-H", "Host: b.test", &url]);
    assert_eq!((code, out.as_str()), (0, "B"), "{err}");
}

#[test]
fn no_host_header_leaves_the_server_root() {
    let s = Server::start(&format!("{BASE}{VHOSTS}simple-vhost.default-host = \"default.test\"\n"));
    sites(&s);
    // What an escape would reach: server-root/../htdocs, server-root/htdocs, /htdocs.
    s.dir.write("htdocs/index.html", "SECRET parent");
    s.dir.write("vhosts/htdocs/index.html", "SECRET root");
    s.dir.write("vhosts/x/htdocs/index.html", "SECRET x");
    let evil = [
        "..",
        "../",
        "../..",
        ".",
        "./..",
        "...",
        ".a.test",
        "a.test/..",
        "a.test/../..",
        "x/../..",
        "..%2f..",
        "%2e%2e",
        "..\\..",
        "[..]",
        "[::1]/..",
        "a.test:80/../..",
        "..:80",
        ".:80",
        "x:..",
        "a.test\t/..",
    ];
    for host in evil {
        let raw_req = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let r = request(s.port, &raw_req);
        assert!(!r.text().contains("SECRET"), "Host: {host:?} escaped: {}", r.text());
        assert!(r.status == 400 || r.text() == "DEFAULT", "Host: {host:?}: {} {}", r.status, r.text());
    }
    // The authority of an absolute-form target is the host too.
    for target in ["http://../", "http://a.test/../../htdocs/", "http://x/..%2f..%2fhtdocs/"] {
        let r =
            request(s.port, &format!("GET {target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"));
        assert!(!r.text().contains("SECRET"), "{target} escaped: {}", r.text());
    }
    // The server is still fine.
    assert_eq!(get_host(&s, "a.test", "/").text(), "A");
}

#[test]
fn per_site_settings_in_conditional_blocks() {
    let conf = format!(
        r#"{BASE}{VHOSTS}
simple-vhost.default-host = "default.test"
$HTTP["host"] == "c.test" {{
    simple-vhost.document-root = "public"
}} else $HTTP["host"] =~ "^static\." {{
    simple-vhost.server-root = ""
}} else $HTTP["host"] =~ "^other\." {{
    simple-vhost.server-root = "@DIR@/other-vhosts"
    simple-vhost.default-host = "fallback"
}}
"#
    );
    let s = Server::start(&conf);
    sites(&s);
    s.dir.write("vhosts/c.test/htdocs/index.html", "C htdocs");
    s.dir.write("vhosts/c.test/public/index.html", "C public");
    s.dir.write("vhosts/static.test/htdocs/index.html", "not this");
    s.dir.write("other-vhosts/fallback/htdocs/index.html", "OTHER fallback");
    s.dir.write("other-vhosts/other.test/htdocs/index.html", "OTHER");
    let cases = [
        ("c.test", "C public"),
        ("a.test", "A"),
        // An empty server-root switches the module off: server.document-root.
        ("static.test", "WWW"),
        ("other.test", "OTHER"),
        ("other.example", "OTHER fallback"),
        ("nothing.test", "DEFAULT"),
    ];
    for (host, want) in cases {
        let r = get_host(&s, host, "/");
        assert_eq!((r.status, r.text().as_str()), (200, want), "Host: {host}");
    }
}

#[test]
fn without_a_default_host_server_root_and_document_root_then_the_document_root() {
    let s = Server::start(&format!("{BASE}{VHOSTS}"));
    sites(&s);
    // As lighttpd: with no default host the fallback is server-root + document-root...
    s.dir.write("vhosts/htdocs/index.html", "ROOT htdocs");
    assert_eq!(get_host(&s, "a.test", "/").text(), "A");
    assert_eq!(get_host(&s, "unknown.test", "/").text(), "ROOT htdocs");
    // ...and when that is not a directory either, server.document-root.
    std::fs::remove_dir_all(s.dir.path().join("vhosts/htdocs")).unwrap();
    assert_eq!(get_host(&s, "unknown.test", "/").text(), "WWW");
}

#[test]
fn debug_logs_the_directories_that_are_missing() {
    let conf = format!(
        r#"{BASE}{VHOSTS}
simple-vhost.default-host = "default.test"
$HTTP["host"] =~ "^dbg\." {{
    simple-vhost.debug = 1
}}
"#
    );
    let s = Server::start(&conf);
    sites(&s);
    assert_eq!(get_host(&s, "quiet.test", "/").text(), "DEFAULT");
    assert_eq!(get_host(&s, "dbg.test", "/").text(), "DEFAULT");
    let want = format!("not a directory: {}/vhosts/dbg.test/htdocs/", s.dir.path().display());
    let log = s.wait_log(&want);
    assert!(!log.contains("quiet.test"), "debug is off for other hosts:\n{log}");
}

#[test]
fn bad_settings_are_refused_with_file_and_line() {
    let f = Server::start_fail(&format!("{BASE}{VHOSTS}simple-vhost.debug = \"sometimes\"\n"), None);
    assert!(f.stderr.contains("featherd.conf:"), "{}", f.stderr);
    assert!(f.stderr.contains("simple-vhost.debug: expected an integer"), "{}", f.stderr);
    let f = Server::start_fail(&format!("{BASE}{VHOSTS}simple-vhost.server-root = ( \"a\" )\n"), None);
    assert!(f.stderr.contains("simple-vhost.server-root"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/simple_vhost.conf");
    let conf = format!(
        "{BASE}\ninclude \"{}\"\nsimple-vhost.server-root := \"@DIR@/vhosts\"\nsimple-vhost.default-host := \"default.test\"\n",
        snippet.display()
    );
    let s = Server::start(&conf);
    s.dir.write("vhosts/a.test/htdocs/hello.txt", "hello a");
    s.dir.write("vhosts/default.test/htdocs/hello.txt", "hello default");
    assert_eq!(get_host(&s, "a.test", "/hello.txt").text(), "hello a");
    assert_eq!(get_host(&s, "b.test", "/hello.txt").text(), "hello default");
}
