//! mod_rewrite through the real server: once and repeat lists (and their old names) chosen
//! per site with conditional blocks and else-chains, `%n` from the host condition, every
//! substitution as a CGI script sees the rewritten target, `-if-not-file` lists with existing
//! and missing files, a PHP front controller behind mod_fastcgi (REQUEST_URI, QUERY_STRING,
//! SCRIPT_NAME, PATH_INFO), rewrite loops answered 500, and refused settings.

use featherd_e2e::*;

/// A server with mod_rewrite and mod_cgi, the CGI environment dumper at `/env.py`, and
/// `extra` config lines.
fn start(extra: &str) -> Server {
    let conf = format!(
        "{BASE}\nserver.modules += ( \"mod_rewrite\", \"mod_cgi\", \"mod_accesslog\" )\n\
         cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n\
         accesslog.filename = \"@DIR@/access.log\"\n\
         accesslog.format = \"%r|%U|%q|%>s\"\n{extra}\n"
    );
    let dir = TempDir::new("rewrite");
    dir.write("www/env.py", std::fs::read(workspace_root().join("tests/fixtures/cgi/env.py")).unwrap());
    dir.write("www/file.txt", "the file\n");
    Server::start_in(dir, &conf, None)
}

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

/// NAME=value of the env dump (None when the script did not get it).
fn var(r: &Response, name: &str) -> Option<String> {
    r.text().lines().find_map(|l| l.strip_prefix(&format!("{name}=")).map(str::to_string))
}

fn write(s: &Server, rel: &str, body: &str) {
    let p = s.docroot().join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, body).unwrap();
}

#[test]
fn once_and_repeat_lists_and_their_old_names_per_site() {
    let s = start(
        r#"
url.rewrite-once = ( "^/o/x(.*)$" => "/o/$1" )
$HTTP["host"] == "final.test" {
    url.rewrite-final = ( "^/o/x(.*)$" => "/o/$1" )
} else $HTTP["host"] == "old.test" {
    url.rewrite = ( "^/o/x(.*)$" => "/o/$1" )
} else $HTTP["host"] == "repeat.test" {
    url.rewrite-repeat = ( "^/o/x(.*)$" => "/o/$1" )
} else $HTTP["host"] == "both.test" {
    # One block: its once-rules are tried before its repeat-rules, and a once-rule that
    # matched ends rewriting, so the repeat-rule never sees its result.
    url.rewrite-repeat = ( "^/o/xx(.*)$" => "/o/$1", "^/o/y$" => "/o/never.txt" )
    url.rewrite-once = ( "^/o/xy$" => "/o/y" )
} else $HTTP["host"] == "off.test" {
    # An empty list in a block turns the enclosing block's rules off.
    url.rewrite-once = ( )
}
"#,
    );
    for (rel, body) in [
        ("o/xxf.txt", "xxf"),
        ("o/f.txt", "f"),
        ("o/xxxf.txt", "xxxf"),
        ("o/y", "y"),
        ("o/never.txt", "never"),
    ] {
        write(&s, rel, body);
    }
    // A once-rule rewrites once: its result is not tried again after the restart.
    for host in ["localhost", "final.test", "old.test"] {
        let r = get_host(&s, host, "/o/xxxf.txt");
        assert_eq!((r.status, r.text().as_str()), (200, "xxf"), "{host}");
    }
    // A repeat-rule rewrites as long as it matches.
    assert_eq!(get_host(&s, "repeat.test", "/o/xxxf.txt").text(), "f");
    assert_eq!(get_host(&s, "both.test", "/o/xxxxf.txt").text(), "f");
    // The once-rule comes first and stops there.
    assert_eq!(get_host(&s, "both.test", "/o/xy").text(), "y");
    assert_eq!(get_host(&s, "off.test", "/o/xxxf.txt").text(), "xxxf");
}

#[test]
fn host_condition_captures_and_else_chains() {
    let s = start(
        r#"
$HTTP["host"] == "a.test" {
    url.rewrite-once = ( "^/(.*)" => "/a/$1" )
} else $HTTP["host"] =~ "^(.+)\.example\.org$" {
    url.rewrite-once = ( "^/(.*)" => "/sites/%1/$1" )
} else $HTTP["host"] =~ "^([^.]+)\.([^.]+)\.test$" {
    url.rewrite-once = ( "^/(.*)" => "/%2/%1/%0/$1" )
}
"#,
    );
    write(&s, "a/page.txt", "site a");
    write(&s, "sites/blog/page.txt", "the blog");
    write(&s, "sites/shop/page.txt", "the shop");
    write(&s, "y/x/x.y.test/page.txt", "two groups and the whole match");
    write(&s, "page.txt", "no rule");
    let cases = [
        ("a.test", "site a"),
        ("blog.example.org", "the blog"),
        ("shop.example.org", "the shop"),
        ("x.y.test", "two groups and the whole match"),
        ("other.test", "no rule"),
    ];
    for (host, body) in cases {
        let r = get_host(&s, host, "/page.txt");
        assert_eq!((r.status, r.text().as_str()), (200, body), "{host}");
    }
    // The access log keeps the request line as sent; %U and %q are the rewritten target's.
    let line = "GET /page.txt HTTP/1.1|/sites/blog/page.txt||200";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(s.dir.path().join("access.log")).unwrap_or_default().contains(line) {
        assert!(std::time::Instant::now() < deadline, "access log has no {line:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn every_substitution_as_the_backend_sees_it() {
    let s = start(
        r#"
url.rewrite-once = (
    "^/t/raw/(.*)$"      => "/env.py?$1",
    "^/t/esc/(.*)$"      => "/env.py?${esc:1}",
    "^/t/escape/(.*)$"   => "/env.py?${escape:1}",
    "^/t/nde/(.*)$"      => "/env.py?${escnde:1}",
    "^/t/psnde/(.*)$"    => "/env.py?${escpsnde:1}",
    "^/t/braces/(.*)$"   => "/env.py?${1}",
    "^/t/noesc/(.*)$"    => "/env.py?${noesc:1}",
    "^/t/lower/(.*)$"    => "/env.py?${tolower:1}",
    "^/t/upper/(.*)$"    => "/env.py?${toupper:1}",
    "^/t/enc/(.*)$"      => "/env.py?${encb64u:1}",
    "^/t/dec/(.*)$"      => "/env.py?${decb64u:1}",
    "^/t/url/[^?]*"      => "/env.py?s=${url.scheme}&a=${url.authority}&p=${url.port}&path=${url.path}&q=${url.query}",
    "^/t/qsa/([^?]*)"    => "/env.py?r=$1${qsa}",
    "^/t/qsa2/([^?]*)"   => "/env.py${qsa}",
    "^/t/lit/"           => "/env.py?d=$$1&p=%%25&x=%x",
    "^/t/host/"          => "/env.py?h=%1",
    "^/t/groups/(a)(b)?(c)" => "/env.py?$3$2$1$0",
)
$HTTP["host"] =~ "^([a-z]+)\.cond\.test$" {
    url.rewrite-once = ( "^/t/host/" => "/env.py?h=%1&all=%0" )
}
"#,
    );
    let port = s.port;
    let cases: Vec<(&str, &str, String)> = vec![
        // (request target, Host, QUERY_STRING the script gets)
        ("/t/raw/a%20b/c?d=e", "localhost", "a%20b/c?d=e".into()),
        ("/t/esc/a%20b/c?d=e&f", "localhost", "a%2520b%2Fc%3Fd%3De%26f".into()),
        ("/t/escape/a%20b/c", "localhost", "a%2520b%2Fc".into()),
        ("/t/nde/a%20b/c%41", "localhost", "a%20b%2FcA".into()),
        ("/t/psnde/a%20b/c%41?d", "localhost", "a%20b/cA%3Fd".into()),
        ("/t/braces/a%20b/c?d", "localhost", "a%20b/c%3Fd".into()),
        ("/t/noesc/a%20b/c?d=e", "localhost", "a%20b/c?d=e".into()),
        ("/t/lower/AbC%2F", "localhost", "abc%2F".into()),
        ("/t/upper/AbC%2f", "localhost", "ABC%2f".into()),
        ("/t/enc/hello", "localhost", "aGVsbG8".into()),
        ("/t/dec/aGVsbG8gd29ybGQ", "localhost", "hello%20world".into()),
        ("/t/url/x%20y?q=1", "Example.ORG", format!("s=http&a=example.org&p={port}&path=/t/url/x%20y&q=q=1")),
        ("/t/url/z", "localhost:1234", format!("s=http&a=localhost:1234&p={port}&path=/t/url/z&q=")),
        ("/t/qsa/v?q=1&w", "localhost", "r=v&q=1&w".into()),
        ("/t/qsa/v", "localhost", "r=v".into()),
        ("/t/qsa2/v?q=1", "localhost", "q=1".into()),
        ("/t/lit/", "localhost", "d=$1&p=%25&x=%x".into()),
        // %1 outside a regex condition is empty; inside one it is its group.
        ("/t/host/", "localhost", "h=".into()),
        ("/t/host/", "abc.cond.test", "h=abc&all=abc.cond.test".into()),
        // An optional group that did not take part is empty.
        ("/t/groups/ac", "localhost", "ca/t/groups/ac".into()),
    ];
    for (target, host, want) in cases {
        let r = get_host(&s, host, target);
        assert_eq!(r.status, 200, "{target}: {}\n{}", r.head, s.error_log());
        assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some(want.as_str()), "{target} ({host})");
        // The script sees what the client asked for and where the server took it.
        assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some(target), "{target}");
        assert_eq!(var(&r, "REDIRECT_URI"), Some(format!("/env.py?{want}")), "{target}");
        assert_eq!(var(&r, "SCRIPT_NAME").as_deref(), Some("/env.py"), "{target}");
    }
    // Not rewritten: no REDIRECT_URI.
    let r = s.get("/env.py?plain");
    assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some("/env.py?plain"));
    assert_eq!(var(&r, "REDIRECT_URI"), None);
}

#[test]
fn if_not_file_lists_leave_existing_files_alone() {
    let s = start(
        r#"
url.rewrite-if-not-file = ( "^/static/" => "", "" => "/env.py${qsa}" )
$HTTP["host"] == "once.test" {
    url.rewrite-if-not-file = ( "^/r/x(.*)$" => "/r/$1" )
} else $HTTP["host"] == "repeat.test" {
    url.rewrite-repeat-if-not-file = ( "^/r/x(.*)$" => "/r/$1" )
} else $HTTP["host"] == "uri.test" {
    # Rewritten in uri_raw first: a once-rule ends rewriting, so the if-not-file list of the
    # same request is not tried any more.
    url.rewrite-once = ( "^/u/(.*)$" => "/gone/$1" )
    url.rewrite-if-not-file = ( "" => "/file.txt" )
}
"#,
    );
    std::fs::create_dir_all(s.docroot().join("dir")).unwrap();
    write(&s, "r/xf.txt", "xf");
    // An existing file is served as it is.
    let r = s.get("/file.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "the file\n"));
    // A missing one goes to the front controller, with the query.
    let r = s.get("/blog/post-1?x=1&y=2");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some("/blog/post-1?x=1&y=2"));
    assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some("x=1&y=2"));
    assert_eq!(var(&r, "SCRIPT_NAME").as_deref(), Some("/env.py"));
    assert_eq!(var(&r, "REDIRECT_URI").as_deref(), Some("/env.py?x=1&y=2"));
    let r = s.get("/blog/post-2");
    assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some(""));
    assert_eq!(var(&r, "REDIRECT_URI").as_deref(), Some("/env.py"));
    // A directory is not a file (lighttpd's rule): rewritten too.
    assert_eq!(var(&s.get("/dir"), "REQUEST_URI").as_deref(), Some("/dir"));
    assert_eq!(var(&s.get("/"), "REQUEST_URI").as_deref(), Some("/"));
    // An existing file followed by PATH_INFO is that file.
    let r = s.get("/env.py/extra/path?z");
    assert_eq!(var(&r, "PATH_INFO").as_deref(), Some("/extra/path"));
    assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some("z"));
    assert_eq!(var(&r, "REDIRECT_URI"), None);
    // A blank replacement exempts what its regex matches.
    assert_eq!(s.get("/static/missing.css").status, 404);

    // Once: one rewrite, then the result stands even if it is missing too.
    assert_eq!(get_host(&s, "once.test", "/r/xxf.txt").text(), "xf");
    assert_eq!(get_host(&s, "once.test", "/r/xxxf.txt").status, 404);
    assert_eq!(get_host(&s, "once.test", "/r/xf.txt").text(), "xf");
    // Repeat: again as long as the file is missing.
    assert_eq!(get_host(&s, "repeat.test", "/r/xxxxf.txt").text(), "xf");
    assert_eq!(get_host(&s, "repeat.test", "/r/xxxxg.txt").status, 404);
    assert_eq!(get_host(&s, "uri.test", "/u/x").status, 404);
    assert_eq!(get_host(&s, "uri.test", "/missing").text(), "the file\n");
}

/// php-cgi started by mod_fastcgi behind the classic front-controller rules.
#[test]
fn php_front_controller() {
    let conf = format!(
        r#"{BASE}
server.modules = ( "mod_rewrite", "mod_fastcgi", "mod_staticfile" )
fastcgi.server = ( ".php" => ( ( "socket" => "@DIR@/php.sock", "bin-path" => "/usr/bin/php-cgi" ) ) )
url.rewrite-if-not-file = ( "" => "/index.php${{qsa}}" )
$HTTP["host"] == "ci.test" {{
    url.rewrite-if-not-file = ( "^/(.+)$" => "/index.php/$1" )
}}
"#
    );
    let dir = TempDir::new("rewrite-php");
    dir.write(
        "www/index.php",
        r#"<?php
header("Content-Type: text/plain");
foreach (["REQUEST_URI", "QUERY_STRING", "SCRIPT_NAME", "PATH_INFO", "SCRIPT_FILENAME"] as $k) {
    echo $k, "=", $_SERVER[$k] ?? "", "\n";
}
echo "GET=", json_encode($_GET), "\n";
"#,
    );
    dir.write("www/style.css", "body {}\n");
    let s = Server::start_in(dir, &conf, None);
    let script = format!("{}/index.php", s.docroot().display());
    let r = s.get("/blog/post-1?x=1&y=a%20b");
    assert_eq!(r.status, 200, "{}\n{}\n{}", r.head, r.text(), s.error_log());
    assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some("/blog/post-1?x=1&y=a%20b"));
    assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some("x=1&y=a%20b"));
    assert_eq!(var(&r, "SCRIPT_NAME").as_deref(), Some("/index.php"));
    assert_eq!(var(&r, "PATH_INFO").as_deref(), Some(""));
    assert_eq!(var(&r, "SCRIPT_FILENAME"), Some(script.clone()));
    assert_eq!(var(&r, "GET").as_deref(), Some(r#"{"x":"1","y":"a b"}"#));
    // The script itself, with PATH_INFO, is not rewritten.
    let r = s.get("/index.php/route/a?b=c");
    assert_eq!(var(&r, "SCRIPT_NAME").as_deref(), Some("/index.php"));
    assert_eq!(var(&r, "PATH_INFO").as_deref(), Some("/route/a"));
    assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some("/index.php/route/a?b=c"));
    // Files are files.
    assert_eq!(s.get("/style.css").text(), "body {}\n");
    // The rule that makes PATH_INFO out of the path.
    let r = get_host(&s, "ci.test", "/welcome/index?x=1");
    assert_eq!(var(&r, "SCRIPT_NAME").as_deref(), Some("/index.php"));
    assert_eq!(var(&r, "PATH_INFO").as_deref(), Some("/welcome/index"));
    assert_eq!(var(&r, "QUERY_STRING").as_deref(), Some("x=1"));
    assert_eq!(var(&r, "REQUEST_URI").as_deref(), Some("/welcome/index?x=1"));
}

#[test]
fn loops_and_bad_results_are_answered_500() {
    let s = start(
        r#"
url.rewrite-repeat = ( "^/loop/a" => "/loop/b", "^/loop/b" => "/loop/a", "^/grow/(.*)" => "/grow/x$1" )
$HTTP["host"] == "once.test" {
    # A once-rule whose result matches it again is applied once, not forever.
    url.rewrite-once = ( "^/self(.*)" => "/self$1" )
} else $HTTP["host"] == "bad.test" {
    url.rewrite-once = ( "^/rel" => "relative/path", "^/empty" => "${url.query}", "^/(?=b)(b|b)*$" => "/never" )
}
"#,
    );
    // Two requests on one connection: the loop gets a 500, the connection goes on.
    let data = raw(
        s.port,
        b"GET /loop/a HTTP/1.1\r\nHost: localhost\r\n\r\nGET /file.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&data));
    assert_eq!(rs[0].status, 500);
    assert_eq!((rs[1].status, rs[1].text().as_str()), (200, "the file\n"));
    let log = s.wait_log("rewrite loop: /loop/a was rewritten 16 times");
    assert!(log.contains("url.rewrite-once rather than url.rewrite-repeat"), "{log}");
    assert_eq!(s.get("/grow/a").status, 500);
    assert_eq!(get_host(&s, "once.test", "/self-file").status, 404);
    // A result that is not a path.
    assert_eq!(get_host(&s, "bad.test", "/rel").status, 500);
    s.wait_log("rewrote /rel to \"relative/path\", which does not begin with '/'");
    assert_eq!(get_host(&s, "bad.test", "/empty").status, 500);
    // A look-around regex that backtracks past its limit: an answer, not a hung worker.
    assert_eq!(get_host(&s, "bad.test", "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb!").status, 500);
    s.wait_log("failed: ");
}

#[test]
fn refused_settings_name_the_file_line_and_key() {
    let cases = [
        ("url.rewrite-once = ( \"^/(\" => \"/x\" )", "url.rewrite-once: invalid regex \"^/(\""),
        (
            "url.rewrite-repeat = ( \"^/\" => \"/${foo:1}\" )",
            "url.rewrite-repeat: in \"^/\" => \"/${foo:1}\": unknown modifier \"foo\"",
        ),
        (
            "url.rewrite-if-not-file = ( \"^/\" => \"/${1\" )",
            "url.rewrite-if-not-file: in \"^/\" => \"/${1\": unterminated ${",
        ),
        (
            "url.rewrite-repeat-if-not-file = ( \"/a\", \"/b\" )",
            "url.rewrite-repeat-if-not-file: expected a list of \"regex\" => \"replacement\"",
        ),
        (
            "url.rewrite-final = ( \"^/\" => \"/${url.host}\" )",
            "url.rewrite-final: in \"^/\" => \"/${url.host}\": unknown substitution \"url.host\"",
        ),
        ("url.rewrite = \"/x\"", "url.rewrite"),
    ];
    for (line, want) in cases {
        let conf = format!(
            "{BASE}\nserver.modules += ( \"mod_rewrite\" )\n$HTTP[\"host\"] == \"x\" {{\n{line}\n}}\n"
        );
        let f = Server::start_fail(&conf, None);
        assert!(f.stderr.contains(want), "{line}: {}", f.stderr);
        let n = conf.lines().position(|l| l == line).unwrap() + 1;
        assert!(f.stderr.contains(&format!("featherd.conf:{n}:")), "{line}: {}", f.stderr);
    }
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/rewrite.conf");
    let s = Server::start(&format!("{BASE}\ninclude \"{}\"\n", snippet.display()));
    std::fs::write(s.docroot().join("file.txt"), "served").unwrap();
    assert_eq!(s.get("/file.txt").text(), "served");
}

#[test]
fn connect_targets_are_left_alone() {
    let s = start(r#"url.rewrite-once = ( "" => "/file.txt" )"#);
    let r = request(s.port, "CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n");
    assert_eq!(r.status, 405, "{}", r.head);
    assert_eq!(s.get("/anything").text(), "the file\n");
    let line = "CONNECT tunnel.test:443 HTTP/1.1|tunnel.test:443||405";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(s.dir.path().join("access.log")).unwrap_or_default().contains(line) {
        assert!(std::time::Instant::now() < deadline, "access log has no {line:?}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
