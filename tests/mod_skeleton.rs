//! mod_skeleton (the template module) through the real server: off unless enabled, answers
//! `/skeleton` with its greeting and an `X-Skeleton` header when enabled, and takes both
//! settings from conditional blocks per request.

use featherd_e2e::*;

fn conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules += ( \"mod_skeleton\" )\n{extra}\n")
}

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

#[test]
fn loaded_but_not_enabled_changes_nothing() {
    let s = Server::start(&conf(""));
    let r = s.get("/skeleton");
    assert_eq!(r.status, 404, "{}", r.head);
    assert!(r.header("x-skeleton").is_none());
    // A real file of that name is served by mod_staticfile as usual.
    std::fs::write(s.docroot().join("skeleton"), "from disk\n").unwrap();
    let r = s.get("/skeleton");
    assert_eq!((r.status, r.text().as_str()), (200, "from disk\n"));
    assert!(r.header("x-skeleton").is_none(), "{}", r.head);
}

#[test]
fn enabled_answers_skeleton_with_the_default_greeting() {
    let s = Server::start(&conf("skeleton.enable = \"enable\""));
    std::fs::write(s.docroot().join("other.txt"), "other\n").unwrap();
    let r = s.get("/skeleton");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b"hello from mod_skeleton\n");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some("24"));
    assert_eq!(r.header("x-skeleton"), Some("1"));
    // Only that exact path, and the header only on its own answers.
    for p in ["/skeleton/", "/skeletons", "/skeleton.txt"] {
        let r = s.get(p);
        assert_eq!(r.status, 404, "{p}: {}", r.head);
        assert!(r.header("x-skeleton").is_none(), "{p}");
    }
    let r = s.get("/other.txt");
    assert_eq!(r.text(), "other\n");
    assert!(r.header("x-skeleton").is_none());
    // It answers before mod_staticfile even when a file of that name exists.
    std::fs::write(s.docroot().join("skeleton"), "from disk\n").unwrap();
    assert_eq!(s.get("/skeleton").text(), "hello from mod_skeleton\n");
    // Keep-alive: two answers on one connection, HEAD without a body.
    let data = raw(
        s.port,
        b"GET /skeleton HTTP/1.1\r\nHost: a\r\n\r\nGET /skeleton?x=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&data));
    assert!(rs.iter().all(|r| r.body == b"hello from mod_skeleton\n" && r.header("x-skeleton") == Some("1")));
    let data = raw(s.port, b"HEAD /skeleton HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&data);
    assert!(text.contains("Content-Length: 24\r\n") && text.ends_with("\r\n\r\n"), "{text}");
    let (code, out, err) = curl(&[&format!("http://127.0.0.1:{}/skeleton", s.port)]);
    assert_eq!((code, out.as_str()), (0, "hello from mod_skeleton\n"), "{err}");
}

#[test]
fn greeting_and_enable_per_conditional_block() {
    let s = Server::start(&conf(
        r#"
skeleton.enable = "enable"
$HTTP["host"] == "fr.test" { skeleton.greeting = "bonjour de mod_skeleton" }
$HTTP["host"] == "de.test" {
    skeleton.greeting = "hallo von mod_skeleton"
    $HTTP["remote-ip"] == "127.0.0.1" { skeleton.greeting = "hallo, lokaler Gast" }
}
$HTTP["host"] == "off.test" { skeleton.enable = "disable" }
"#,
    ));
    let cases = [
        ("fr.test", 200, "bonjour de mod_skeleton\n"),
        ("de.test", 200, "hallo, lokaler Gast\n"),
        ("off.test", 404, ""),
        ("any.test", 200, "hello from mod_skeleton\n"),
        ("fr.test", 200, "bonjour de mod_skeleton\n"),
    ];
    for (host, status, body) in cases {
        let r = get_host(&s, host, "/skeleton");
        assert_eq!(r.status, status, "{host}: {}", r.head);
        if status == 200 {
            assert_eq!(r.text(), body, "{host}");
            assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()), "{host}");
        }
    }
}

#[test]
fn enabled_only_in_one_block() {
    let s = Server::start(&conf("$HTTP[\"host\"] == \"on.test\" { skeleton.enable = \"enable\" }"));
    assert_eq!(get_host(&s, "on.test", "/skeleton").text(), "hello from mod_skeleton\n");
    assert_eq!(get_host(&s, "other.test", "/skeleton").status, 404);
}
