//! mod_redirect through the real server: `Location` and status for the first matching rule,
//! `url.redirect-code` per site (else-chains), `%n` from host conditions, every substitution
//! byte for byte, blank replacements, redirects after mod_rewrite, and refused settings.

use featherd_e2e::*;

fn start(extra: &str) -> Server {
    Server::start(&format!("{BASE}\nserver.modules += ( \"mod_redirect\" )\n{extra}\n"))
}

fn send(s: &Server, method: &str, host: &str, path: &str) -> Response {
    request(
        s.port,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    send(s, "GET", host, path)
}

#[test]
fn a_match_is_a_301_with_location_and_no_body() {
    let s = start(r#"url.redirect = ( "^/old/(.*)$" => "/new/$1", "^/old" => "/never" )"#);
    std::fs::create_dir_all(s.docroot().join("new")).unwrap();
    std::fs::write(s.docroot().join("new/page"), "the new page").unwrap();
    for method in ["GET", "HEAD", "POST", "DELETE"] {
        let r = send(&s, method, "localhost", "/old/page?a=1");
        assert_eq!(r.status, 301, "{method}: {}", r.head);
        assert_eq!(r.header("Location"), Some("/new/page?a=1"), "{method}");
        assert_eq!(r.header("Content-Length"), Some("0"), "{method}");
        assert!(r.body.is_empty(), "{method}");
    }
    // The first rule that matches decides; anything else is left alone.
    assert_eq!(s.get("/older").header("Location"), Some("/never"));
    assert_eq!(s.get("/new/page").text(), "the new page");
    // A real client follows it.
    let (code, out, err) = curl(&["-L", &format!("http://127.0.0.1:{}/old/page", s.port)]);
    assert_eq!((code, out.as_str()), (0, "the new page"), "{err}");
}

#[test]
fn redirect_codes_per_site() {
    let s = start(
        r#"
url.redirect = ( "^/r/(.*)$" => "/t/$1" )
$HTTP["host"] == "302.test" {
    url.redirect-code = 302
} else $HTTP["host"] == "303.test" {
    url.redirect-code = 303
} else $HTTP["host"] == "307.test" {
    url.redirect-code = 307
} else $HTTP["host"] =~ "^308\.(.*)$" {
    url.redirect-code = 308
    url.redirect = ( "^/r/(.*)$" => "https://%1/$1" )
}
"#,
    );
    let cases = [
        ("localhost", 301, "/t/x"),
        ("302.test", 302, "/t/x"),
        ("303.test", 303, "/t/x"),
        ("307.test", 307, "/t/x"),
        ("308.example.org", 308, "https://example.org/x"),
    ];
    for (host, code, location) in cases {
        let r = get_host(&s, host, "/r/x");
        assert_eq!(r.status, code, "{host}");
        assert_eq!(r.header("Location"), Some(location), "{host}");
    }
}

#[test]
fn host_groups_in_the_location() {
    let s = start(
        r#"
$HTTP["host"] =~ "^www\.(.*)$" {
    url.redirect = ( "^/(.*)" => "http://%1/$1" )
} else $HTTP["host"] =~ "^(.+)\.example\.org$" {
    url.redirect = ( "^/(.*)" => "/sites/%1/$1" )
} else $HTTP["host"] == "plain.test" {
    url.redirect = ( "^/(.*)" => "/plain/$1" )
}
"#,
    );
    let cases = [
        ("www.example.com", "/a/b?c", Some("http://example.com/a/b?c")),
        ("blog.example.org", "/post/1", Some("/sites/blog/post/1")),
        ("a.b.example.org", "/", Some("/sites/a.b/")),
        ("plain.test", "/x", Some("/plain/x")),
        ("other.test", "/x", None),
    ];
    for (host, path, location) in cases {
        let r = get_host(&s, host, path);
        assert_eq!(r.header("Location"), location, "{host}{path}");
        assert_eq!(r.status, if location.is_some() { 301 } else { 404 }, "{host}{path}");
    }
}

#[test]
fn every_substitution_byte_for_byte() {
    let s = start(
        r#"
url.redirect = (
    "^/keep/"           => "",
    "^/raw/(.*)$"       => "/x/$1",
    "^/esc/(.*)$"       => "/x/${esc:1}",
    "^/escape/(.*)$"    => "/x/${escape:1}",
    "^/nde/(.*)$"       => "/x/${escnde:1}",
    "^/psnde/(.*)$"     => "/x/${escpsnde:1}",
    "^/braces/(.*)$"    => "/x/${1}",
    "^/noesc/(.*)$"     => "/x/${noesc:1}",
    "^/lower/(.*)$"     => "/x/${tolower:1}",
    "^/upper/(.*)$"     => "/x/${toupper:1}",
    "^/lowesc/(.*)$"    => "/x/${tolower:esc:1}",
    "^/enc/(.*)$"       => "/x/${encb64u:1}",
    "^/dec/(.*)$"       => "/x/${decb64u:1}",
    "^/url/"            => "${url.scheme}://${url.authority}:${url.port}${url.path}|${url.query}|${esc:url.path}",
    "^/qsa/([^?]*)"     => "/x/$1${qsa}",
    "^/qsa2/([^?]*)"    => "/x/$1?a=b${qsa}",
    "^/lit/"            => "/x/$$1/%%1/%a/$a",
    "^/big/(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)" => "/x/$10-${10}-${12}-${13}",
    "^/cond/"           => "/x/%1",
    "^/https"           => "https://${url.authority}${url.path}${qsa}",
)
"#,
    );
    let port = s.port;
    let cases: Vec<(&str, &str, String)> = vec![
        // (target, Host, Location)
        ("/raw/a%20b/c?d=e&f", "localhost", "/x/a%20b/c?d=e&f".into()),
        ("/esc/a%20b/c?d=e&f", "localhost", "/x/a%2520b%2Fc%3Fd%3De%26f".into()),
        ("/escape/a~b", "localhost", "/x/a~b".into()),
        ("/nde/a%20b/c%2Fd%41?d=e", "localhost", "/x/a%20b%2Fc%2FdA%3Fd%3De".into()),
        ("/psnde/a%20b/c%2fd%7e?d=e", "localhost", "/x/a%20b/c%2fd~%3Fd%3De".into()),
        ("/braces/a%20b/c?d", "localhost", "/x/a%20b/c%3Fd".into()),
        ("/noesc/a%20b/c?d=e", "localhost", "/x/a%20b/c?d=e".into()),
        ("/lower/AbC%2F", "localhost", "/x/abc%2F".into()),
        ("/upper/AbC%2f", "localhost", "/x/ABC%2f".into()),
        ("/lowesc/AbC%2F", "localhost", "/x/abc%252f".into()),
        ("/enc/hello", "localhost", "/x/aGVsbG8".into()),
        ("/dec/aGVsbG8", "localhost", "/x/hello".into()),
        ("/dec/!!", "localhost", "/x/".into()),
        (
            "/url/p%20q?a%20b=c",
            "WWW.Ex.ORG:81",
            format!("http://www.ex.org:81:{port}/url/p%20q|a%20b=c|%2Furl%2Fp%2520q"),
        ),
        ("/qsa/a?q=1", "localhost", "/x/a?q=1".into()),
        ("/qsa/a", "localhost", "/x/a".into()),
        ("/qsa/a?", "localhost", "/x/a?".into()),
        ("/qsa2/a?q=1", "localhost", "/x/a?a=b&q=1".into()),
        ("/qsa2/a?", "localhost", "/x/a?a=b".into()),
        ("/qsa2/a", "localhost", "/x/a?a=b".into()),
        ("/lit/", "localhost", "/x/$1/%1/%a/$a".into()),
        ("/big/abcdefghijklm", "localhost", "/x/a0-j-l-".into()),
        ("/cond/", "localhost", "/x/".into()),
        ("/https/a?b", "example.org", "https://example.org/https/a?b".into()),
    ];
    for (target, host, location) in cases {
        let r = get_host(&s, host, target);
        assert_eq!(r.status, 301, "{target}: {}", r.head);
        assert_eq!(r.header("Location"), Some(location.as_str()), "{target} ({host})");
    }
    // A blank replacement: no redirect, and the rules after it are not tried.
    assert_eq!(s.get("/keep/raw/x").status, 404);
}

#[test]
fn the_target_is_matched_after_mod_rewrite() {
    let s = Server::start(&format!(
        "{BASE}\nserver.modules += ( \"mod_rewrite\", \"mod_redirect\" )\n\
         url.rewrite-once = ( \"^/a/(.*)\" => \"/b/$1\" )\n\
         url.redirect = ( \"^/b/(.*)\" => \"/c/$1\" )\n"
    ));
    let r = s.get("/a/x?y");
    assert_eq!((r.status, r.header("Location")), (301, Some("/c/x?y")));
}

#[test]
fn refused_settings_name_the_file_line_and_key() {
    let cases = [
        (
            "url.redirect-code = 200",
            "url.redirect-code: 200 is not a redirect status; use 301, 302, 303, 307 or 308",
        ),
        ("url.redirect-code = 404", "url.redirect-code: 404 is not a redirect status"),
        ("url.redirect-code = 300", "url.redirect-code: 300 is not a redirect status"),
        ("url.redirect-code = 70000", "url.redirect-code: 70000 is not a redirect status"),
        ("url.redirect-code = \"moved\"", "url.redirect-code"),
        ("url.redirect = ( \"^/(\" => \"/x\" )", "url.redirect: invalid regex \"^/(\""),
        (
            "url.redirect = ( \"^/\" => \"/${esc:url.host}\" )",
            "url.redirect: in \"^/\" => \"/${esc:url.host}\": unknown substitution",
        ),
        ("url.redirect = ( \"/a\" )", "url.redirect: expected a list of \"regex\" => \"replacement\""),
    ];
    for (line, want) in cases {
        let conf = format!(
            "{BASE}\nserver.modules += ( \"mod_redirect\" )\n$HTTP[\"host\"] == \"x\" {{\n{line}\n}}\n"
        );
        let f = Server::start_fail(&conf, None);
        assert!(f.stderr.contains(want), "{line}: {}", f.stderr);
        let n = conf.lines().position(|l| l == line).unwrap() + 1;
        assert!(f.stderr.contains(&format!("featherd.conf:{n}:")), "{line}: {}", f.stderr);
    }
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/redirect.conf");
    let s = Server::start(&format!(
        "{BASE}\ninclude \"{}\"\nurl.redirect = ( \"^/from$\" => \"/to\" )\n",
        snippet.display()
    ));
    assert_eq!(s.get("/from").header("Location"), Some("/to"));
}

#[test]
fn connect_is_not_redirected() {
    let s = start(r#"url.redirect = ( "" => "https://elsewhere.test/" )"#);
    let r = request(s.port, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n");
    assert_eq!((r.status, r.header("Location")), (405, None), "{}", r.head);
    assert_eq!(s.get("/x").header("Location"), Some("https://elsewhere.test/"));
}
