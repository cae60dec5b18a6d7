//! mod_userdir through the real server: `/~user/...` maps to basepath/user/path (or
//! basepath/u/user/path with letterhomes) or, without a base path, to the user's home
//! directory from the password database; `/~user` redirects to `/~user/`; include and
//! exclude lists and `userdir.active` per site; no user name leaves the base path.

use featherd_e2e::*;
use std::path::PathBuf;
use std::process::Command;

const USERDIR: &str = r#"
server.modules = ( "mod_userdir" )
index-file.names = ( "index.html" )
userdir.path = "public_html"
userdir.basepath = "@DIR@/users"
"#;

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

fn users(s: &Server) {
    s.dir.write("users/alice/public_html/index.html", "alice home");
    s.dir.write("users/alice/public_html/doc.txt", "alice doc");
    s.dir.write("users/alice/public_html/sub/index.html", "alice sub");
    s.dir.write("users/alice/private.txt", "alice private");
    s.dir.write("users/bob/public_html/index.html", "bob home");
    s.dir.write("users/a/alice/public_html/index.html", "alice by letter");
    s.dir.write("www/index.html", "WWW");
}

#[test]
fn basepath_maps_users_to_their_directories() {
    let s = Server::start(&format!("{BASE}{USERDIR}"));
    users(&s);
    let cases = [
        ("/~alice/", 200, "alice home"),
        ("/~alice/doc.txt", 200, "alice doc"),
        ("/~alice/sub/", 200, "alice sub"),
        ("/~%61lice/doc.txt", 200, "alice doc"),
        ("/~bob/", 200, "bob home"),
        ("/~alice/nope.txt", 404, ""),
        // Only public_html is served.
        ("/~alice/../private.txt", 404, ""),
        ("/~carol/", 404, ""),
        ("/", 200, "WWW"),
    ];
    for (path, status, body) in cases {
        let r = s.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.head);
        if status == 200 {
            assert_eq!(r.text(), body, "{path}");
        }
    }
    let (code, out, err) = curl(&[&format!("http://127.0.0.1:{}/~bob/", s.port)]);
    assert_eq!((code, out.as_str()), (0, "bob home"), "{err}");
}

#[test]
fn user_without_slash_is_redirected() {
    let s = Server::start(&format!("{BASE}{USERDIR}"));
    users(&s);
    let r = get_host(&s, "example.test:8080", "/~alice");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/~alice/"));
    let r = get_host(&s, "example.test", "/~alice?x=1&y");
    assert_eq!(r.header("location"), Some("/~alice/?x=1&y"));
    // The client's spelling of the path is kept.
    let r = get_host(&s, "example.test", "/~%61lice");
    assert_eq!(r.header("location"), Some("/~%61lice/"));
    // "/~" alone is nobody's.
    assert_eq!(s.get("/~").status, 404);
    // curl follows the redirect to the directory.
    let (code, out, err) = curl(&["-L", &format!("http://127.0.0.1:{}/~alice", s.port)]);
    assert_eq!((code, out.as_str()), (0, "alice home"), "{err}");
}

#[test]
fn user_names_never_leave_the_base_path() {
    let s = Server::start(&format!("{BASE}{USERDIR}"));
    users(&s);
    // What "/~../" would reach with the name used as is: DIR/users/../public_html.
    s.dir.write("public_html/index.html", "SECRET parent");
    s.dir.write("users/public_html/index.html", "SECRET base");
    s.dir.write("users/./public_html/index.html", "SECRET base");
    for path in [
        "/~../",
        "/~%2e%2e/",
        "/~%2E%2E/index.html",
        "/~./",
        "/~%2e/",
        "/~..%2fpublic_html/",
        "/~alice%2f..%2f../",
        "/~a\\..\\/",
        "/~alice/../../public_html/",
        "/~alice/%2e%2e/%2e%2e/public_html/",
    ] {
        let r = request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
        assert!(!r.text().contains("SECRET"), "{path} escaped: {}", r.text());
    }
    assert_eq!(s.get("/~alice/").text(), "alice home");
}

#[test]
fn per_site_letterhomes_lists_and_activation() {
    let conf = format!(
        r#"{BASE}{USERDIR}
userdir.exclude-user = ( "bob" )
$HTTP["host"] == "letters.test" {{
    userdir.letterhomes = "enable"
}} else $HTTP["host"] =~ "^only-bob\." {{
    userdir.exclude-user = ( )
    userdir.include-user = ( "bob" )
}} else $HTTP["host"] =~ "^off\." {{
    userdir.active = "disable"
}} else $HTTP["host"] =~ "^home\." {{
    userdir.path = ""
}}
"#
    );
    let s = Server::start(&conf);
    users(&s);
    s.dir.write("users/alice/home.txt", "alice's home directory");
    let cases = [
        ("any.test", "/~alice/", 200, "alice home"),
        // Excluded everywhere but on only-bob.
        ("any.test", "/~bob/", 404, ""),
        ("letters.test", "/~alice/", 200, "alice by letter"),
        ("only-bob.test", "/~bob/", 200, "bob home"),
        ("only-bob.test", "/~alice/", 404, ""),
        ("off.test", "/~alice/", 404, ""),
        // userdir.path = "": the user's directory itself.
        ("home.test", "/~alice/home.txt", 200, "alice's home directory"),
        ("home.test", "/~alice/public_html/doc.txt", 200, "alice doc"),
    ];
    for (host, path, status, body) in cases {
        let r = get_host(&s, host, path);
        assert_eq!(r.status, status, "{host} {path}: {}", r.head);
        if status == 200 {
            assert_eq!(r.text(), body, "{host} {path}");
        }
    }
    // Inactive: /~alice is not redirected either.
    assert_eq!(get_host(&s, "off.test", "/~alice").status, 404);
}

#[test]
fn path_info_and_missing_files_outside_a_long_document_root() {
    // The user directory lies outside the document root, whose path is longer than the
    // physical path of the request: the core's PATH_INFO search must cope.
    let conf = format!(
        "{BASE}{USERDIR}server.document-root := \"@DIR@/www/a/rather/long/document/root/that/goes/on/and/on\"\nuserdir.basepath := \"@DIR@/u\"\n"
    );
    let s = Server::start(&conf);
    std::fs::create_dir_all(s.dir.path().join("www/a/rather/long/document/root/that/goes/on/and/on"))
        .unwrap();
    s.dir.write("u/al/public_html/doc.txt", "doc");
    assert_eq!(s.get("/~al/doc.txt").text(), "doc");
    assert_eq!(s.get("/~al/doc.txt/extra/info").text(), "doc");
    assert_eq!(s.get("/~al/missing").status, 404);
    assert_eq!(s.get("/~al/missing/deeper/still").status, 404);
    assert_eq!(s.get("/~zz/x").status, 404);
    assert_eq!(s.get("/~al/doc.txt").text(), "doc", "the server is still fine");
}

/// The user running the tests and their home directory, from the password database.
fn current_user() -> Option<(String, PathBuf)> {
    let out = Command::new("id").arg("-un").output().ok()?;
    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
    let out = Command::new("getent").args(["passwd", &name]).output().ok()?;
    let line = String::from_utf8(out.stdout).ok()?;
    let home = line.trim().split(':').nth(5)?.to_string();
    (!name.is_empty() && home.starts_with('/')).then(|| (name, PathBuf::from(home)))
}

/// A directory in the home directory, removed on drop.
struct HomeDir(PathBuf);

impl Drop for HomeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn real_user_from_the_password_database() {
    let Some((user, home)) = current_user() else {
        eprintln!("skipped: cannot tell the current user or their home directory");
        return;
    };
    let sub = format!("featherd-e2e-userdir-{}", std::process::id());
    let dir = HomeDir(home.join(&sub));
    if std::fs::create_dir_all(&dir.0)
        .and_then(|_| std::fs::write(dir.0.join("hi.txt"), "hi from home"))
        .is_err()
    {
        eprintln!("skipped: the home directory {} is not writable", home.display());
        return;
    }
    let conf = format!(
        r#"{BASE}
server.modules = ( "mod_userdir" )
userdir.path = "{sub}"
$HTTP["host"] == "strict.test" {{
    userdir.exclude-user = ( "{user}" )
}}
"#
    );
    let s = Server::start(&conf);
    let r = s.get(&format!("/~{user}/hi.txt"));
    assert_eq!((r.status, r.text().as_str()), (200, "hi from home"), "{}", r.head);
    assert_eq!(get_host(&s, "strict.test", &format!("/~{user}/hi.txt")).status, 404);
    assert_eq!(s.get("/~no-such-user-featherd/hi.txt").status, 404);
    // A user whose home lacks the directory is left alone as well.
    std::fs::remove_dir_all(&dir.0).unwrap();
    assert_eq!(s.get(&format!("/~{user}/hi.txt")).status, 404);
}

#[test]
fn bad_settings_are_refused_with_file_and_line() {
    let f = Server::start_fail(&format!("{BASE}{USERDIR}userdir.letterhomes = \"sometimes\"\n"), None);
    assert!(f.stderr.contains("featherd.conf:") && f.stderr.contains("userdir.letterhomes"), "{}", f.stderr);
    let f = Server::start_fail(&format!("{BASE}{USERDIR}userdir.exclude-user = ( 1, 2 )\n"), None);
    assert!(f.stderr.contains("userdir.exclude-user"), "{}", f.stderr);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/userdir.conf");
    let conf = format!("{BASE}\ninclude \"{}\"\nuserdir.basepath = \"@DIR@/users\"\n", snippet.display());
    let s = Server::start(&conf);
    s.dir.write("users/jan/public_html/hello.txt", "hello jan");
    s.dir.write("users/root/public_html/hello.txt", "hello root");
    assert_eq!(s.get("/~jan/hello.txt").text(), "hello jan");
    // The snippet excludes root.
    assert_eq!(s.get("/~root/hello.txt").status, 404);
}
