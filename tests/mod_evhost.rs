//! mod_evhost through the real server: `evhost.path-pattern` turns the parts of the Host
//! header into a document root (%0 domain.tld, %1 tld, %2 domain, %3 first subdomain, ...,
//! %_ the whole host, %{N.M} one character), hosts without a directory keep
//! server.document-root, no Host header can reach a directory the pattern does not name, and
//! the pattern differs per site through conditional blocks.

use featherd_e2e::*;

const EVHOST: &str = r#"
server.modules = ( "mod_evhost" )
index-file.names = ( "index.html" )
evhost.path-pattern = "@DIR@/sites/%0/%3/"
"#;

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

fn text(s: &Server, host: &str) -> (u16, String) {
    let r = get_host(s, host, "/");
    (r.status, r.text())
}

#[test]
fn parts_of_the_host_pick_the_directory() {
    let s = Server::start(&format!("{BASE}{EVHOST}"));
    s.dir.write("sites/example.com/www/index.html", "example www");
    s.dir.write("sites/example.com/blog/index.html", "example blog");
    s.dir.write("sites/example.org/www/index.html", "org www");
    s.dir.write("sites/example.com/index.html", "example bare");
    s.dir.write("sites/[::1]/index.html", "ipv6");
    s.dir.write("sites/0.1/0/index.html", "ipv4 parts");
    s.dir.write("www/index.html", "DOCROOT");
    let cases = [
        ("www.example.com", "example www"),
        ("blog.example.com:8080", "example blog"),
        ("WWW.Example.ORG", "org www"),
        // %3 of a two-label host is empty: sites/example.com//
        ("example.com", "example bare"),
        // Only the first subdomain counts: %4 is not in the pattern.
        ("x.blog.example.com", "example blog"),
        // An IPv6 literal is %0 as a whole.
        ("[::1]", "ipv6"),
        // An IPv4 address is split at its dots like a name (as lighttpd does).
        ("127.0.0.1", "ipv4 parts"),
        // Not a directory: server.document-root.
        ("nosuch.example.com", "DOCROOT"),
        ("example.net", "DOCROOT"),
    ];
    for (host, want) in cases {
        assert_eq!(text(&s, host), (200, want.to_string()), "Host: {host}");
    }
    // lighttpd logs the path it tried.
    s.wait_log(&format!("not a directory: {}/sites/example.com/nosuch/", s.dir.path().display()));
    // No Host header: nothing to build from.
    let r = request(s.port, "GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.text(), "DOCROOT");
}

#[test]
fn whole_host_characters_and_percent_in_conditional_blocks() {
    let conf = format!(
        r#"{BASE}{EVHOST}
$HTTP["host"] =~ "\.net$" {{
    evhost.path-pattern = "@DIR@/letters/%{{2.1}}/%{{2.2}}/%_"
}} else $HTTP["host"] =~ "\.pct$" {{
    evhost.path-pattern = "@DIR@/pct/100%%/%2/%{{3.9}}/"
}} else $HTTP["host"] == "plain.test" {{
    evhost.path-pattern = ""
}}
"#
    );
    let s = Server::start(&conf);
    s.dir.write("letters/e/x/shop.example.net/index.html", "shop by letters");
    s.dir.write("pct/100%/site/index.html", "percent");
    s.dir.write("sites/plain.test/index.html", "not this");
    s.dir.write("sites/example.com/www/index.html", "example www");
    s.dir.write("www/index.html", "DOCROOT");
    let cases = [
        ("shop.example.net", "shop by letters"),
        ("Shop.Example.Net", "shop by letters"),
        ("site.pct", "percent"),
        ("a.site.pct", "percent"),
        // An empty pattern switches the module off for the site.
        ("plain.test", "DOCROOT"),
        ("www.example.com", "example www"),
    ];
    for (host, want) in cases {
        assert_eq!(text(&s, host), (200, want.to_string()), "Host: {host}");
    }
}

#[test]
fn no_host_header_leaves_the_patterns_directories() {
    let conf = format!(
        r#"{BASE}{EVHOST}
$HTTP["host"] =~ "\.dots$" {{
    evhost.path-pattern = "@DIR@/sites/x/%4.%3.%5/"
}} else $HTTP["host"] =~ "\.whole$" {{
    evhost.path-pattern = "@DIR@/sites/%_/"
}}
"#
    );
    let s = Server::start(&conf);
    s.dir.write("sites/example.com/www/index.html", "example www");
    s.dir.write("sites/x/c.b./index.html", "dots ok");
    // What an escape would reach.
    s.dir.write("sites/index.html", "SECRET sites");
    s.dir.write("index.html", "SECRET dir");
    s.dir.write("www/index.html", "DOCROOT");
    // Parts missing from the host must not turn "%4.%3.%5" into "..": the pattern would
    // then name sites/x/../ = sites/.
    assert_eq!(text(&s, "c.b.a.dots"), (200, "dots ok".to_string()));
    assert_eq!(text(&s, "a.dots"), (200, "DOCROOT".to_string()));
    s.wait_log("would leave the path pattern's directories");
    let evil = [
        "..",
        "../..",
        ".",
        "..:80",
        "...",
        ".x.whole",
        "../x.whole",
        "a/../../x.whole",
        "%2e%2e.whole",
        "..\\..",
        "[..]",
        "[::1]/../..",
    ];
    for host in evil {
        let r = get_host(&s, host, "/");
        assert!(!r.text().contains("SECRET"), "Host: {host:?} escaped: {}", r.text());
        assert!(r.status == 400 || r.text() == "DOCROOT", "Host: {host:?}: {} {}", r.status, r.text());
    }
    assert_eq!(text(&s, "www.example.com"), (200, "example www".to_string()));
}

#[test]
fn bad_patterns_are_refused_with_file_and_line() {
    for bad in ["/srv/%x/", "/srv/%{1.}/", "/srv/%{12}/", "/srv/%"] {
        let f = Server::start_fail(
            &format!("{BASE}server.modules = ( \"mod_evhost\" )\nevhost.path-pattern = \"{bad}\"\n"),
            None,
        );
        assert!(f.stderr.contains("featherd.conf:"), "{}", f.stderr);
        assert!(f.stderr.contains("evhost.path-pattern: invalid sequence"), "{bad}: {}", f.stderr);
    }
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/evhost.conf");
    let conf =
        format!("{BASE}\ninclude \"{}\"\nevhost.path-pattern := \"@DIR@/sites/%2/\"\n", snippet.display());
    let s = Server::start(&conf);
    s.dir.write("sites/example/hello.txt", "hello example");
    assert_eq!(get_host(&s, "www.example.org", "/hello.txt").text(), "hello example");
}
