//! mod_indexfile through the real server: a directory request is served from the first
//! existing name of `index-file.names` (in order, relative or docroot-relative), directories
//! without an index get the core's 403, and the list can differ per host.

use featherd_e2e::*;

fn conf(extra: &str) -> String {
    format!("{BASE}\n{extra}\n")
}

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

#[test]
fn root_serves_index_html_through_mod_staticfile() {
    let s = Server::start(&conf("index-file.names = ( \"index.html\" )"));
    std::fs::write(s.docroot().join("index.html"), "<h1>home</h1>\n").unwrap();
    let r = s.get("/");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b"<h1>home</h1>\n");
    // The type and validators are those of the index file, served by mod_staticfile.
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert_eq!(r.header("content-length"), Some("14"));
    let etag = r.header("etag").expect("ETag").to_string();
    let r = request(
        s.port,
        &format!("GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(r.status, 304);
    let r = request(s.port, "GET / HTTP/1.1\r\nHost: a\r\nRange: bytes=4-7\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "home"));
    let (code, out, err) = curl(&[&format!("http://127.0.0.1:{}/", s.port)]);
    assert_eq!((code, out.as_str()), (0, "<h1>home</h1>\n"), "{err}");
}

#[test]
fn without_names_or_without_the_module_a_directory_is_403() {
    // No index-file.names: nothing is looked up.
    let s = Server::start(&conf(""));
    std::fs::write(s.docroot().join("index.html"), "home\n").unwrap();
    assert_eq!(s.get("/").status, 403);
    // mod_indexfile not loaded: only mod_staticfile, which does not do directories; and
    // index-file.names is then an unknown key.
    let only_static = "server.compat-module-load = \"disable\"\nserver.modules = ( \"mod_staticfile\" )\n";
    let f = Server::start_fail(&conf(&format!("{only_static}index-file.names = ( \"index.html\" )")), None);
    assert!(f.stderr.contains("index-file.names"), "{}", f.stderr);
    let s = Server::start(&conf(only_static));
    std::fs::write(s.docroot().join("index.html"), "home\n").unwrap();
    assert_eq!(s.get("/").status, 403);
    assert_eq!(s.get("/index.html").text(), "home\n");
}

#[test]
fn first_existing_name_wins_in_list_order() {
    let s = Server::start(&conf("index-file.names = ( \"index.htm\", \"index.html\", \"default.txt\" )"));
    let d = s.docroot();
    for (rel, body) in [
        ("both/index.html", "both html"),
        ("both/index.htm", "both htm"),
        ("html/index.html", "html only"),
        ("html/default.txt", "not this"),
        ("txt/default.txt", "txt only"),
        ("dirnamed/index.html", "the file, not the directory"),
    ] {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }
    // A directory named like the first candidate is skipped.
    std::fs::create_dir_all(d.join("dirnamed/index.htm")).unwrap();
    // A symbolic link to a regular file counts as one.
    std::fs::create_dir_all(d.join("link")).unwrap();
    std::fs::write(d.join("target.txt"), "via link").unwrap();
    std::os::unix::fs::symlink(d.join("target.txt"), d.join("link/default.txt")).unwrap();
    let cases = [
        ("/both/", "both htm", "text/html"),
        ("/html/", "html only", "text/html"),
        ("/txt/", "txt only", "text/plain"),
        ("/dirnamed/", "the file, not the directory", "text/html"),
        ("/link/", "via link", "text/plain"),
    ];
    for (path, body, ty) in cases {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.head);
        assert_eq!(r.text(), body, "{path}");
        assert_eq!(r.header("content-type"), Some(ty), "{path}");
    }
}

#[test]
fn a_name_starting_with_slash_is_under_the_document_root() {
    let s = Server::start(&conf("index-file.names = ( \"/missing.txt\", \"/central.txt\", \"index.html\" )"));
    let d = s.docroot();
    std::fs::write(d.join("central.txt"), "central\n").unwrap();
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    std::fs::write(d.join("a/b/index.html"), "local\n").unwrap();
    // Every directory gets the central file, even one with its own index.html further down
    // the list; a missing docroot-relative name is skipped.
    for p in ["/", "/a/", "/a/b/"] {
        let r = s.get(p);
        assert_eq!((r.status, r.text().as_str()), (200, "central\n"), "{p}");
    }
    // Not relative to the directory: a/central.txt does not exist and is not asked for.
    std::fs::remove_file(d.join("central.txt")).unwrap();
    assert_eq!(s.get("/a/b/").text(), "local\n");
    assert_eq!(s.get("/a/").status, 403);
}

#[test]
fn directory_without_index_is_403_and_subdirectories_have_their_own() {
    let s = Server::start(&conf("index-file.names = ( \"index.html\" )"));
    let d = s.docroot();
    std::fs::create_dir_all(d.join("empty")).unwrap();
    std::fs::create_dir_all(d.join("files")).unwrap();
    std::fs::write(d.join("files/readme.txt"), "not an index").unwrap();
    std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
    std::fs::write(d.join("index.html"), "root").unwrap();
    std::fs::write(d.join("sub/index.html"), "sub").unwrap();
    std::fs::write(d.join("sub/deeper/index.html"), "deeper").unwrap();
    for p in ["/empty/", "/files/"] {
        let r = s.get(p);
        assert_eq!(r.status, 403, "{p}: {}", r.head);
        assert!(!r.text().contains("not an index"), "{p}");
    }
    assert_eq!(s.get("/").text(), "root");
    assert_eq!(s.get("/sub/").text(), "sub");
    assert_eq!(s.get("/sub/deeper/").text(), "deeper");
    // Without the slash the core redirects first; curl follows to the index.
    let r = s.get("/sub");
    assert_eq!(r.status, 301);
    let (code, out, err) = curl(&["-L", &format!("http://127.0.0.1:{}/sub/deeper", s.port)]);
    assert_eq!((code, out.as_str()), (0, "deeper"), "{err}");
}

#[test]
fn index_names_per_host() {
    let s = Server::start(&conf(
        r#"
index-file.names = ( "index.html" )
$HTTP["host"] == "app.test" { index-file.names = ( "/app.txt" ) }
$HTTP["host"] == "txt.test" { index-file.names = ( "index.txt", "index.html" ) }
$HTTP["host"] == "none.test" { index-file.names = ( ) }
"#,
    ));
    let d = s.docroot();
    std::fs::write(d.join("index.html"), "html").unwrap();
    std::fs::write(d.join("index.txt"), "txt").unwrap();
    std::fs::write(d.join("app.txt"), "app").unwrap();
    std::fs::create_dir_all(d.join("dir")).unwrap();
    std::fs::write(d.join("dir/index.html"), "dir html").unwrap();
    let cases = [
        ("other.test", "/", 200, "html"),
        ("app.test", "/", 200, "app"),
        ("app.test", "/dir/", 200, "app"),
        ("txt.test", "/", 200, "txt"),
        ("txt.test", "/dir/", 200, "dir html"),
        ("none.test", "/", 403, ""),
        ("other.test", "/dir/", 200, "dir html"),
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
fn server_indexfiles_is_accepted_as_the_older_name() {
    let s = Server::start(&conf("server.indexfiles = ( \"start.txt\" )"));
    std::fs::write(s.docroot().join("start.txt"), "started").unwrap();
    assert_eq!(s.get("/").text(), "started");
}
