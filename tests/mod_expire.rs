//! mod_expire through the real server: `Cache-Control: max-age` and `Expires` by URL prefix
//! (longest first) and by content type prefix, counted from the access or from the file's
//! modification time, only on 200/206/304 answers to GET and HEAD, never over a
//! `Cache-Control` the response has already, never "modification" for a response without a
//! file; settings per host and per URL; malformed specs refused at start with file:line.

use featherd_e2e::*;
use std::fs::{File, FileTimes};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn conf(modules: &str, extra: &str) -> String {
    format!(
        "{BASE}\nserver.modules = ( {modules} )\n\
         mimetype.assign = ( \".png\" => \"image/png\", \".gif\" => \"image/gif\", \".txt\" => \"text/plain\", \
         \".css\" => \"text/css\", \".json\" => \"application/json\" )\n{extra}\n"
    )
}

fn start(extra: &str) -> Server {
    let s = Server::start(&conf("\"mod_expire\"", extra));
    let d = s.docroot();
    for rel in [
        "static/a.png",
        "static/long/b.png",
        "img/c.png",
        "img/d.gif",
        "e.txt",
        "f.css",
        "g.json",
        "news/h.txt",
    ] {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, rel).unwrap();
    }
    s
}

fn send(s: &Server, method: &str, host: &str, path: &str, headers: &[&str]) -> Response {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    request(s.port, &r)
}

fn secs(date: &str) -> i64 {
    let t = httpdate::parse_http_date(date).unwrap_or_else(|e| panic!("bad HTTP date {date:?}: {e}"));
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// max-age of a response, checking that Expires is now + max-age (the Date header is the
/// server's now, give or take the second that may have passed in between).
fn max_age(r: &Response) -> Option<i64> {
    let cc = r.header("Cache-Control")?;
    let n: i64 = cc.strip_prefix("max-age=").unwrap_or_else(|| panic!("Cache-Control {cc}")).parse().unwrap();
    let expires =
        secs(r.header("Expires").unwrap_or_else(|| panic!("Cache-Control without Expires: {}", r.head)));
    let date = secs(r.header("Date").expect("Date"));
    assert!((expires - date - n).abs() <= 1, "Expires {expires} is not Date {date} + {n}");
    Some(n)
}

fn age_of(s: &Server, path: &str) -> Option<i64> {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.head);
    max_age(&r)
}

#[test]
fn by_url_prefix_longest_first_then_by_content_type() {
    let s = start(
        r#"
expire.url = ( "/static/" => "access plus 1 days 2 hours", "/static/long/" => "now 1 year" )
expire.mimetypes = ( "image/" => "access plus 1 hours", "image/gif" => "access plus 2 minutes",
                     "text/*" => "access plus 30 seconds" )
"#,
    );
    let cases = [
        ("/static/a.png", Some(93_600)),
        ("/static/long/b.png", Some(31_104_000)),
        ("/img/c.png", Some(3_600)),
        ("/img/d.gif", Some(120)),
        ("/e.txt", Some(30)),
        ("/f.css", Some(30)),
        ("/g.json", None),
    ];
    for (path, want) in cases {
        assert_eq!(age_of(&s, path), want, "{path}");
    }
    let r = s.get("/g.json");
    assert!(r.header("Expires").is_none(), "{}", r.head);
}

fn set_mtime(p: &std::path::Path, secs: i64) {
    let f = File::options().write(true).open(p).unwrap();
    let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
    f.set_times(FileTimes::new().set_modified(t).set_accessed(SystemTime::now())).unwrap();
}

#[test]
fn modification_counts_from_the_file_mtime() {
    let s = start(r#"expire.url = ( "/" => "modification plus 1 hours" )"#);
    let recent = now() - 1_800;
    set_mtime(&s.docroot().join("e.txt"), recent);
    let r = s.get("/e.txt");
    assert_eq!(r.status, 200);
    // Expires is the mtime + 1 hour exactly; max-age what is left of it.
    assert_eq!(secs(r.header("Expires").expect("Expires")), recent + 3_600, "{}", r.head);
    let left = max_age(&r).expect("max-age");
    assert!((1_795..=1_800).contains(&left), "max-age {left}");
    // Modified long ago: expired already, max-age=0 and Expires now.
    set_mtime(&s.docroot().join("f.css"), 784_111_777);
    let r = s.get("/f.css");
    assert_eq!(max_age(&r), Some(0));
    assert!((secs(r.header("Expires").unwrap()) - now()).abs() <= 2);
}

#[test]
fn modification_needs_a_file() {
    let extra = r#"
skeleton.enable = "enable"
$HTTP["host"] == "a.test" {
    expire.url = ( "/" => "modification plus 1 hours" )
} else $HTTP["host"] == "b.test" {
    expire.url = ( "/" => "access plus 1 hours" )
}
"#;
    let s = Server::start(&conf("\"mod_expire\", \"mod_skeleton\"", extra));
    std::fs::write(s.docroot().join("e.txt"), "file\n").unwrap();
    // /skeleton is answered by a module, with no file behind it.
    let r = send(&s, "GET", "a.test", "/skeleton", &[]);
    assert_eq!(r.status, 200, "{}", r.head);
    assert!(r.header("Cache-Control").is_none() && r.header("Expires").is_none(), "{}", r.head);
    let r = send(&s, "GET", "b.test", "/skeleton", &[]);
    assert_eq!(max_age(&r), Some(3_600));
    // The file next to it has a modification time.
    let r = send(&s, "GET", "a.test", "/e.txt", &[]);
    assert!(max_age(&r).is_some_and(|a| (3_590..=3_600).contains(&a)), "{}", r.head);
}

#[test]
fn only_cacheable_answers_to_get_and_head() {
    let s = start(r#"expire.url = ( "/" => "access plus 10 minutes" )"#);
    let r = s.get("/e.txt");
    assert_eq!(max_age(&r), Some(600));
    let etag = r.header("ETag").unwrap().to_string();
    let cases = [
        ("HEAD", "/e.txt", vec![], 200, true),
        ("GET", "/e.txt", vec![format!("If-None-Match: {etag}")], 304, true),
        ("GET", "/e.txt", vec!["Range: bytes=0-1".to_string()], 206, true),
        ("GET", "/missing.txt", vec![], 404, false),
        ("GET", "/e.txt", vec!["Range: bytes=100-".to_string()], 416, false),
        ("POST", "/e.txt", vec!["Content-Length: 0".to_string()], 200, false),
    ];
    for (method, path, headers, status, cached) in cases {
        let h: Vec<&str> = headers.iter().map(String::as_str).collect();
        let r = send(&s, method, "localhost", path, &h);
        assert_eq!(r.status, status, "{method} {path} {h:?}: {}", r.head);
        assert_eq!(r.header("Cache-Control").is_some(), cached, "{method} {path} {h:?}: {}", r.head);
        assert_eq!(r.header("Expires").is_some(), cached, "{method} {path} {h:?}: {}", r.head);
    }
}

#[test]
fn a_cache_control_of_the_response_is_kept() {
    let dir = TempDir::new("expire-cgi");
    dir.write(
        "www/cc.py",
        "import sys\nsys.stdout.write('Content-Type: text/plain\\r\\nCache-Control: no-store\\r\\n\\r\\nmine\\n')\n",
    );
    dir.write(
        "www/plain.py",
        "import sys\nsys.stdout.write('Content-Type: text/plain\\r\\n\\r\\nplain\\n')\n",
    );
    let s = Server::start_in(
        dir,
        &conf(
            "\"mod_expire\", \"mod_cgi\"",
            "cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\nexpire.mimetypes = ( \"text/\" => \"access plus 1 days\" )",
        ),
        None,
    );
    let r = s.get("/cc.py");
    assert_eq!((r.status, r.text().as_str()), (200, "mine\n"), "{}", s.error_log());
    assert_eq!(all(&r, "Cache-Control"), ["no-store"], "{}", r.head);
    assert!(r.header("Expires").is_none());
    // A script's answer without one gets it, by its content type.
    assert_eq!(age_of(&s, "/plain.py"), Some(86_400));
}

fn all<'a>(r: &'a Response, name: &str) -> Vec<&'a str> {
    r.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

#[test]
fn settings_per_host_and_per_url() {
    let s = start(
        r#"
expire.mimetypes = ( "image/" => "access plus 1 hours" )
$HTTP["host"] == "a.test" {
    expire.mimetypes = ( "image/" => "access plus 2 hours" )
} else $HTTP["host"] == "b.test" {
    expire.mimetypes = ( )
    expire.url = ( "/img/" => "access plus 3 hours" )
}
$HTTP["url"] =~ "^/news/" {
    expire.url = ( "" => "access plus 5 minutes" )
}
"#,
    );
    let cases = [
        ("other.test", "/img/c.png", Some(3_600)),
        ("a.test", "/img/c.png", Some(7_200)),
        ("b.test", "/img/c.png", Some(10_800)),
        ("b.test", "/static/a.png", None),
        ("other.test", "/e.txt", None),
        ("other.test", "/news/h.txt", Some(300)),
        ("b.test", "/news/h.txt", Some(300)),
    ];
    for (host, path, want) in cases {
        let r = send(&s, "GET", host, path, &[]);
        assert_eq!(r.status, 200, "{host}{path}");
        assert_eq!(max_age(&r), want, "{host}{path}: {}", r.head);
    }
}

#[test]
fn malformed_specs_refuse_to_start_naming_file_line_and_key() {
    let cases = [
        (
            r#"expire.url = ( "/a/" => "access plus 1 fortnights" )"#,
            "expire.url",
            "unknown unit \"fortnights\"",
        ),
        (
            r#"expire.url = ( "/a/" => "later plus 1 days" )"#,
            "expire.url",
            "expected access, now or modification",
        ),
        (r#"expire.url = ( "/a/" => "access plus 1" )"#, "expire.url", "has no unit"),
        (r#"expire.url = ( "/a/" => "access plus" )"#, "expire.url", "no duration"),
        (
            r#"expire.mimetypes = ( "image/" => "modification plus one day" )"#,
            "expire.mimetypes",
            "not a number",
        ),
        (r#"expire.mimetypes = ( "image/", "text/" )"#, "expire.mimetypes", "expected a list"),
    ];
    for (line, key, msg) in cases {
        let text = conf("\"mod_expire\"", &format!("\n\n{line}\n"));
        let lineno = text[..text.find(line).unwrap()].matches('\n').count() + 1;
        let f = Server::start_fail(&text, None);
        assert!(f.stderr.contains(key) && f.stderr.contains(msg), "{line}:\n{}", f.stderr);
        assert!(
            f.stderr.contains(&format!("featherd.conf:{lineno}")),
            "no file:line {lineno} for {line}:\n{}",
            f.stderr
        );
    }
    let f = Server::start_fail(&format!("{BASE}\nexpire.url = ( \"/\" => \"access 1 hour\" )\n"), None);
    assert!(f.stderr.contains("expire.url"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/expire.conf");
    let s = Server::start(&format!(
        "{BASE}\ninclude \"{}\"\nexpire.url = ( \"/\" => \"access plus 1 minutes\" )\n",
        snippet.display()
    ));
    std::fs::write(s.docroot().join("x.txt"), "x\n").unwrap();
    assert_eq!(age_of(&s, "/x.txt"), Some(60));
}
