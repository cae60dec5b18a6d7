//! mod_access through the real server: `url.access-deny` and `url.access-allow` refuse paths by
//! their end with 403 (before anything is looked up on disk, and again on the file part once
//! PATH_INFO is split off), without regard to case; `""` refuses everything; both lists apply
//! together; the settings differ per host and per URL; bad settings refuse to start.

use featherd_e2e::*;

fn conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules = ( \"mod_access\" )\nindex-file.names = ( \"index.html\" )\n{extra}\n")
}

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

/// Files every test serves from: each would be a 200 without mod_access.
fn site(s: &Server) {
    let d = s.docroot();
    for (rel, body) in [
        ("page.html", "page\n"),
        ("notes.txt", "notes\n"),
        ("config.inc", "SECRET=1\n"),
        ("UPPER.INC", "SECRET=2\n"),
        ("draft.html~", "old\n"),
        ("index.html", "home\n"),
        ("private/data.txt", "private\n"),
        ("x.secret.html", "hidden\n"),
    ] {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
}

fn status(s: &Server, path: &str) -> u16 {
    s.get(path).status
}

#[test]
fn deny_list_refuses_matching_suffixes_with_403() {
    let s = Server::start(&conf(r#"url.access-deny = ( "~", ".inc" )"#));
    site(&s);
    let cases = [
        ("/page.html", 200),
        ("/notes.txt", 200),
        ("/config.inc", 403),
        ("/draft.html~", 403),
        // Case does not matter: a case-insensitive file system would serve config.inc here.
        ("/CONFIG.INC", 403),
        ("/UPPER.INC", 403),
        // Decided on the path, before the file system is asked: missing files are 403 too.
        ("/missing.inc", 403),
        ("/missing.txt", 404),
        // Percent-encoding is decoded first.
        ("/config%2einc", 403),
        ("/config.in%63", 403),
        // The file part of a path with PATH_INFO: config.inc would be served with /x.
        ("/config.inc/x", 403),
        ("/config.inc/", 403),
        ("/", 200),
        ("/private/data.txt", 200),
    ];
    for (path, want) in cases {
        let r = s.get(path);
        assert_eq!(r.status, want, "{path}: {}", r.head);
        assert!(!r.text().contains("SECRET"), "{path} leaked the file");
    }
    // The 403 is the core's error page, and curl sees it the same way.
    let (code, out, err) =
        curl(&["-o", "/dev/null", "-w", "%{http_code}", &format!("http://127.0.0.1:{}/config.inc", s.port)]);
    assert_eq!((code, out.as_str()), (0, "403"), "{err}");
}

#[test]
fn empty_suffix_denies_everything() {
    let s = Server::start(&conf(r#"url.access-deny = ( "" )"#));
    site(&s);
    for path in ["/", "/page.html", "/notes.txt", "/missing", "/private/"] {
        assert_eq!(status(&s, path), 403, "{path}");
    }
}

#[test]
fn allow_list_serves_only_matching_suffixes() {
    let s = Server::start(&conf(r#"url.access-allow = ( ".html", ".TXT", "/" )"#));
    site(&s);
    let cases = [
        ("/page.html", 200),
        ("/notes.txt", 200),
        ("/config.inc", 403),
        ("/draft.html~", 403),
        ("/missing.json", 403),
        // "/" lets directory requests through; the index file is found after the check.
        ("/", 200),
    ];
    for (path, want) in cases {
        assert_eq!(status(&s, path), want, "{path}");
    }
    assert_eq!(s.get("/").text(), "home\n");
    std::fs::write(s.docroot().join("private/index.html"), "private home\n").unwrap();
    assert_eq!(s.get("/private/").text(), "private home\n");
}

#[test]
fn deny_applies_also_where_allow_matches() {
    let s = Server::start(&conf(
        r#"
url.access-allow = ( ".html" )
url.access-deny = ( ".secret.html" )
"#,
    ));
    site(&s);
    assert_eq!(status(&s, "/page.html"), 200);
    assert_eq!(status(&s, "/x.secret.html"), 403);
    assert_eq!(status(&s, "/notes.txt"), 403);
}

#[test]
fn settings_per_host_and_per_url() {
    let s = Server::start(&conf(
        r#"
url.access-deny = ( ".inc" )
$HTTP["host"] == "a.test" {
    url.access-deny = ( ".txt" )
} else $HTTP["host"] =~ "^b\." {
    url.access-allow = ( ".txt" )
} else $HTTP["host"] == "open.test" {
    url.access-deny = ( )
}
$HTTP["url"] =~ "^/private/" {
    url.access-deny = ( "" )
}
"#,
    ));
    site(&s);
    let cases = [
        // Global: .inc denied.
        ("other.test", "/config.inc", 403),
        ("other.test", "/notes.txt", 200),
        ("other.test", "/private/data.txt", 403),
        // a.test replaces the list: .txt denied, .inc served.
        ("a.test", "/notes.txt", 403),
        ("a.test", "/config.inc", 200),
        ("a.test", "/page.html", 200),
        // b.example: only .txt allowed.
        ("b.example", "/notes.txt", 200),
        ("b.example", "/page.html", 403),
        ("b.example", "/config.inc", 403),
        // An empty list lifts the global one.
        ("open.test", "/config.inc", 200),
        // The URL block comes later in the file and wins for every host.
        ("a.test", "/private/data.txt", 403),
        ("open.test", "/private/data.txt", 403),
        ("b.example", "/private/data.txt", 403),
    ];
    for (host, path, want) in cases {
        let r = get_host(&s, host, path);
        assert_eq!(r.status, want, "{host}{path}: {}", r.head);
    }
}

#[test]
fn only_loaded_module_knows_the_keys_and_bad_values_refuse_to_start() {
    let f = Server::start_fail(&format!("{BASE}\nurl.access-deny = ( \"~\" )\n"), None);
    assert!(f.stderr.contains("url.access-deny"), "{}", f.stderr);
    let f = Server::start_fail(&conf("url.access-deny = ( \".inc\", 5 )"), None);
    assert!(f.stderr.contains("url.access-deny") && f.stderr.contains("list of suffixes"), "{}", f.stderr);
    assert!(f.stderr.contains("featherd.conf:"), "no file:line in {}", f.stderr);
    let f = Server::start_fail(&conf("url.access-allow = 7"), None);
    assert!(f.stderr.contains("url.access-allow"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/access.conf");
    let s = Server::start(&format!("{BASE}\ninclude \"{}\"\n", snippet.display()));
    site(&s);
    assert_eq!(status(&s, "/draft.html~"), 403);
    assert_eq!(status(&s, "/config.inc"), 403);
    assert_eq!(status(&s, "/page.html"), 200);
}
