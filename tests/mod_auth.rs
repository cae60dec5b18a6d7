//! mod_auth and mod_authn_file through the real server: password files written by
//! apache2-utils' `htpasswd` and `htdigest` in every format they offer, curl with `--basic`
//! and `--digest`, a Python Digest client for SHA-256 / SHA-512-256 / userhash / nonce
//! counts, raw sockets for malformed headers, conditional `auth.require` blocks, group files,
//! the extern method behind a FastCGI authorizer, REMOTE_USER in a CGI script and in the
//! access log, the credential cache, start-up checks, the delayed answer to wrong passwords,
//! and bcrypt checks on the blocking pool while other clients are served.

use featherd_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Users in the htpasswd file: one per format `htpasswd` writes.
const FORMATS: &[(&str, &str)] = &[
    ("-B", "bcrypt"),
    ("-m", "apr1"),
    ("-s", "sha1"),
    ("-d", "crypt"),
    ("-2", "sha256crypt"),
    ("-5", "sha512crypt"),
];

fn run(cmd: &mut Command) {
    let out =
        cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?} (apt-get install apache2-utils): {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// `htpasswd -b FLAG file user password` (creating the file first if needed).
fn htpasswd(file: &Path, flag: &str, user: &str, pw: &str) {
    let mut c = Command::new("htpasswd");
    c.arg(if file.exists() { "-b" } else { "-cb" });
    for f in flag.split(' ').filter(|f| !f.is_empty()) {
        c.arg(f);
    }
    run(c.arg(file).arg(user).arg(pw));
}

/// `htdigest file realm user`, the password typed twice on stdin.
fn htdigest(file: &Path, realm: &str, user: &str, pw: &str) {
    let mut c = Command::new("htdigest");
    if !file.exists() {
        c.arg("-c");
    }
    let mut child = c
        .arg(file)
        .arg(realm)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run htdigest (apt-get install apache2-utils)");
    child.stdin.take().expect("stdin").write_all(format!("{pw}\n{pw}\n").as_bytes()).expect("write");
    assert!(child.wait().expect("htdigest").success());
}

/// A site: `www/` with small files and the password files in the temp dir.
fn site() -> TempDir {
    let d = TempDir::new("auth");
    for p in ["www/index.txt", "www/a/x.txt", "www/a/b/x.txt", "www/p/x.txt", "www/s/x.txt", "www/g/x.txt"] {
        d.write(p, format!("file {p}\n"));
    }
    d.write("www/pub.txt", "public\n");
    let hp = d.path().join("users.htpasswd");
    for (flag, user) in FORMATS {
        htpasswd(&hp, flag, user, &format!("pw-{user}"));
    }
    htpasswd(&hp, "-B", "alice", "secret");
    htpasswd(&hp, "-m", "bob", "builder");
    htdigest(&d.path().join("users.htdigest"), "Digest Realm", "carol", "carolpw");
    d.write("users.plain", "dave:davepw\nerin:erinpw\n# a comment\n\nbroken line without colon\n");
    d.write("groups", "admins: alice erin\nstaff: bob\n");
    d
}

/// A config with the password files set; `extra` may set server.modules,
/// server.max-worker and auth.delay-invalid-creds (default here: no delay, one worker
/// fewer than BASE's two only when asked).
fn conf(extra: &str) -> String {
    let mut c = BASE.to_string();
    if extra.contains("server.max-worker") {
        c = c.replace("server.max-worker = 2", "");
    }
    if !extra.contains("server.modules") {
        c.push_str("server.modules = ( \"mod_auth\", \"mod_authn_file\", \"mod_staticfile\" )\n");
    }
    if !extra.contains("auth.delay-invalid-creds") {
        c.push_str("auth.delay-invalid-creds = 0\n");
    }
    format!(
        "{c}auth.backend.htpasswd.userfile = \"@DIR@/users.htpasswd\"\n\
         auth.backend.htdigest.userfile = \"@DIR@/users.htdigest\"\n\
         auth.backend.plain.userfile = \"@DIR@/users.plain\"\n\
         auth.backend.plain.groupfile = \"@DIR@/groups\"\n{extra}\n"
    )
}

fn url(s: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", s.port)
}

/// curl with `args`; returns (HTTP status, body).
fn curl_status(args: &[&str]) -> (u16, String) {
    let mut a = vec!["-o", "-", "-w", "\n%{http_code}"];
    a.extend_from_slice(args);
    let (code, out, err) = curl(&a);
    assert_eq!(code, 0, "curl {args:?}: {err}");
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.trim().parse().unwrap_or(0), body.to_string())
}

fn get_auth(port: u16, path: &str, authorization: &str) -> Response {
    request(
        port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {authorization}\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn b64(s: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const BASIC_ALL: &str = r#"auth.backend = "htpasswd"
auth.require = ( "/a" => ( "method" => "basic", "realm" => "Area A", "require" => "valid-user" ) )"#;

#[test]
fn basic_login_with_every_htpasswd_format() {
    let s = Server::start_in(site(), &conf(BASIC_ALL), None);
    for (_, user) in FORMATS {
        let creds = format!("{user}:pw-{user}");
        let (st, body) = curl_status(&["--basic", "-u", &creds, &url(&s, "/a/x.txt")]);
        assert_eq!((st, body.as_str()), (200, "file www/a/x.txt\n"), "{user}: {}", s.error_log());
        let creds = format!("{user}:wrong");
        let (st, _) = curl_status(&["--basic", "-u", &creds, &url(&s, "/a/x.txt")]);
        assert_eq!(st, 401, "{user} with a wrong password");
    }
    let (st, _) = curl_status(&["--basic", "-u", "nobody:pw", &url(&s, "/a/x.txt")]);
    assert_eq!(st, 401);
    // Outside the protected prefix nothing is asked.
    assert_eq!(s.get("/pub.txt").status, 200);
    let log = s.wait_log("password doesn't match for /a/x.txt username: nobody IP: 127.0.0.1");
    assert!(log.contains("username: bcrypt"), "{log}");
}

#[test]
fn basic_challenge_and_malformed_authorization() {
    let s = Server::start_in(site(), &conf(BASIC_ALL), None);
    let r = s.get("/a/x.txt");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), Some(r#"Basic realm="Area A", charset="UTF-8""#));
    let ok = format!("Basic {}", b64("alice:secret"));
    assert_eq!(get_auth(s.port, "/a/x.txt", &ok).status, 200);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("basic  {}", b64("alice:secret"))).status, 200);
    // Bad base64, no colon: 400 (lighttpd's answers); another scheme or none: 401.
    assert_eq!(get_auth(s.port, "/a/x.txt", "Basic !!!!").status, 400);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("nocolon"))).status, 400);
    assert_eq!(get_auth(s.port, "/a/x.txt", "Basic ").status, 401);
    assert_eq!(get_auth(s.port, "/a/x.txt", "Bearer abc").status, 401);
    assert_eq!(get_auth(s.port, "/a/x.txt", "Basic").status, 401);
    // Huge credentials: refused, not decoded; a header past the core's limit gets 431.
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", "QUFB".repeat(1000))).status, 401);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Digest {}", "x=\"".repeat(1500))).status, 401);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", "QUFB".repeat(340))).status, 400);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", "A".repeat(20_000))).status, 431);
    // Control characters in the user name and binary junk.
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("al\u{1}ice:secret"))).status, 401);
    let junk = (0u8..=255).filter(|b| b.is_ascii_graphic()).map(char::from).collect::<String>();
    assert!(matches!(get_auth(s.port, "/a/x.txt", &format!("Basic {junk}")).status, 400 | 401));
    // Still serving.
    assert_eq!(get_auth(s.port, "/a/x.txt", &ok).status, 200);
}

#[test]
fn digest_md5_with_curl_and_htdigest() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"auth.backend = "htdigest"
auth.require = ( "/p" => ( "method" => "digest", "realm" => "Digest Realm", "require" => "valid-user" ) )"#,
        ),
        None,
    );
    let r = s.get("/p/x.txt");
    assert_eq!(r.status, 401);
    let www = r.header("WWW-Authenticate").expect("challenge").to_string();
    for part in [
        r#"Digest realm="Digest Realm""#,
        r#"charset="UTF-8""#,
        "algorithm=MD5",
        r#"qop="auth""#,
        "nonce=\"",
        "opaque=\"",
    ] {
        assert!(www.contains(part), "{part} missing in {www}");
    }
    assert!(!www.contains("stale") && !www.contains("userhash"), "{www}");
    let (st, body) = curl_status(&["--digest", "-u", "carol:carolpw", &url(&s, "/p/x.txt")]);
    assert_eq!((st, body.as_str()), (200, "file www/p/x.txt\n"), "{}", s.error_log());
    let (st, _) = curl_status(&["--digest", "-u", "carol:nope", &url(&s, "/p/x.txt")]);
    assert_eq!(st, 401);
    let (st, _) = curl_status(&["--digest", "-u", "mallory:carolpw", &url(&s, "/p/x.txt")]);
    assert_eq!(st, 401);
    // Basic against a digest realm: a challenge, not a login.
    assert_eq!(get_auth(s.port, "/p/x.txt", &format!("Basic {}", b64("carol:carolpw"))).status, 401);
    // Missing fields: 400.
    assert_eq!(get_auth(s.port, "/p/x.txt", r#"Digest username="carol", realm="Digest Realm""#).status, 400);
    assert_eq!(get_auth(s.port, "/p/x.txt", "Digest ,,,==\"").status, 400);
    assert_eq!(get_auth(s.port, "/p/x.txt", &format!("Digest {}", "x=\"".repeat(1500))).status, 400);
}

/// Run the Python Digest client; one JSON-ish line per request it made.
fn digest_client(port: u16, path: &str, user: &str, pw: &str, algo: &str, opts: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg(workspace_root().join("tests/fixtures/auth/digest.py"))
        .args([&port.to_string(), path, user, pw, algo])
        .args(opts)
        .output()
        .expect("python3");
    assert!(out.status.success(), "digest.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn status_of(line: &str) -> u16 {
    line.split("\"status\": ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

const DIGEST_SHA: &str = r#"auth.backend = "plain"
auth.require = ( "/s" => ( "method" => "digest", "realm" => "Shared", "require" => "valid-user",
                           "algorithm" => "SHA-256|SHA-512-256|MD5", "nonce_secret" => "s3cret" ) )"#;

#[test]
fn digest_sha256_from_a_python_client() {
    let s = Server::start_in(site(), &conf(DIGEST_SHA), None);
    let r = s.get("/s/x.txt");
    let www: Vec<&str> =
        r.headers.iter().filter(|(n, _)| n == "WWW-Authenticate").map(|(_, v)| v.as_str()).collect();
    assert_eq!(www.len(), 3, "{www:?}");
    assert!(www[0].contains("algorithm=SHA-512-256") && www[1].contains("algorithm=SHA-256"), "{www:?}");
    assert!(www[2].contains("algorithm=MD5"), "{www:?}");
    for algo in ["SHA-256", "SHA-512-256", "MD5"] {
        let out = digest_client(s.port, "/s/x.txt", "dave", "davepw", algo, &[]);
        assert_eq!(status_of(&out[0]), 200, "{algo}: {out:?}\n{}", s.error_log());
        assert!(out[0].contains("file www/s/x.txt"), "{out:?}");
        let out = digest_client(s.port, "/s/x.txt", "dave", "wrong", algo, &[]);
        assert_eq!(status_of(&out[0]), 401, "{algo}: {out:?}");
    }
    let out = digest_client(s.port, "/s/x.txt", "erin", "erinpw", "SHA-256", &["--sess"]);
    assert_eq!(status_of(&out[0]), 200, "{out:?}");
    // A digest computed for another URI is refused (400, lighttpd's answer).
    let out = digest_client(s.port, "/s/x.txt", "dave", "davepw", "SHA-256", &["--uri", "/s/other"]);
    assert_eq!(status_of(&out[0]), 400, "{out:?}");
}

#[test]
fn digest_nonces_expire_and_cannot_be_replayed() {
    let s = Server::start_in(site(), &conf(DIGEST_SHA), None);
    // The same nonce count twice: the second is refused as stale; the next count passes.
    let out = digest_client(s.port, "/s/x.txt", "dave", "davepw", "SHA-256", &["--replay"]);
    assert_eq!(out.iter().map(|l| status_of(l)).collect::<Vec<_>>(), vec![200, 401, 200], "{out:?}");
    assert!(out[1].contains("stale=true") && out[1].contains("algorithm=SHA-256"), "{out:?}");
    // A nonce made with the secret 11 minutes ago: stale.
    let out = digest_client(
        s.port,
        "/s/x.txt",
        "dave",
        "davepw",
        "SHA-256",
        &["--nonce-age", "660", "--secret", "s3cret"],
    );
    assert_eq!(status_of(&out[0]), 401, "{out:?}");
    assert!(out[0].contains("stale=true"), "{out:?}");
    // Made 9.5 minutes ago: still good, and the answer offers the next nonce.
    let out = digest_client(
        s.port,
        "/s/x.txt",
        "dave",
        "davepw",
        "SHA-256",
        &["--nonce-age", "570", "--secret", "s3cret"],
    );
    assert_eq!(status_of(&out[0]), 200, "{out:?}");
    assert!(out[0].contains("nextnonce="), "{out:?}");
    // Made with another secret: refused, not stale.
    let out = digest_client(
        s.port,
        "/s/x.txt",
        "dave",
        "davepw",
        "SHA-256",
        &["--nonce-age", "1", "--secret", "guess"],
    );
    assert_eq!(status_of(&out[0]), 401, "{out:?}");
    assert!(!out[0].contains("stale=true"), "{out:?}");
    s.wait_log("digest: nonce mismatch");
}

#[test]
fn digest_userhash_hides_the_user_name() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"auth.backend = "plain"
auth.require = ( "/s" => ( "method" => "digest", "realm" => "Shared", "require" => "user=dave",
                           "algorithm" => "SHA-256", "userhash" => "enable" ) )
server.modules = ( "mod_auth", "mod_authn_file", "mod_accesslog", "mod_staticfile" )
accesslog.filename = "@DIR@/access.log""#,
        ),
        None,
    );
    let r = s.get("/s/x.txt");
    assert!(r.header("WWW-Authenticate").is_some_and(|w| w.contains("userhash=true")), "{:?}", r.headers);
    let out = digest_client(s.port, "/s/x.txt", "dave", "davepw", "SHA-256", &["--userhash"]);
    assert_eq!(status_of(&out[0]), 200, "{out:?}\n{}", s.error_log());
    // The access log names the real user, found from the hash.
    let log = wait_file(&s.dir.path().join("access.log"), " dave [");
    assert!(log.contains("\"GET /s/x.txt HTTP/1.1\" 200"), "{log}");
    // erin's password is right but the rule admits dave only.
    let out = digest_client(s.port, "/s/x.txt", "erin", "erinpw", "SHA-256", &["--userhash"]);
    assert_eq!(status_of(&out[0]), 401, "{out:?}");
    let (st, _) = curl_status(&["--digest", "-u", "dave:davepw", &url(&s, "/s/x.txt")]);
    assert_eq!(st, 200, "curl sends userhash when asked to");
}

fn wait_file(p: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = std::fs::read_to_string(p).unwrap_or_default();
        if t.contains(needle) {
            return t;
        }
        assert!(Instant::now() < deadline, "{} never contained {needle:?}:\n{t}", p.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn require_per_host_and_per_url_in_conditional_blocks() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"auth.backend = "htpasswd"
$HTTP["host"] == "private.test" {
  auth.require = ( "" => ( "method" => "basic", "realm" => "Host", "require" => "user=alice" ) )
}
$HTTP["url"] =~ "^/g/" {
  auth.backend = "plain"
  auth.require = ( "/g/" => ( "method" => "basic", "realm" => "Groups", "require" => "user=dave|group=admins" ) )
}
$HTTP["url"] =^ "/a/" {
  auth.require = ( "/a/" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ),
                   "/a/b/" => ( "method" => "basic", "realm" => "AB", "require" => "user=bob" ) )
}"#,
        ),
        None,
    );
    let host = |h: &str, creds: Option<&str>| {
        let auth = creds.map(|c| format!("Authorization: Basic {}\r\n", b64(c))).unwrap_or_default();
        request(s.port, &format!("GET /index.txt HTTP/1.1\r\nHost: {h}\r\n{auth}Connection: close\r\n\r\n"))
    };
    assert_eq!(host("public.test", None).status, 200);
    let r = host("private.test", None);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), Some(r#"Basic realm="Host", charset="UTF-8""#));
    assert_eq!(host("private.test", Some("bob:builder")).status, 401, "bob is not alice");
    assert_eq!(host("private.test", Some("alice:secret")).status, 200);
    // Longest prefix: /a/b/ wants bob, /a/ anyone.
    let b = |path: &str, c: &str| get_auth(s.port, path, &format!("Basic {}", b64(c))).status;
    assert_eq!(b("/a/x.txt", "alice:secret"), 200);
    assert_eq!(b("/a/b/x.txt", "alice:secret"), 401);
    assert_eq!(b("/a/b/x.txt", "bob:builder"), 200);
    assert_eq!(s.get("/a/b/x.txt").header("WWW-Authenticate"), Some(r#"Basic realm="AB", charset="UTF-8""#));
    // Groups from the group file (plain backend in that block): erin is an admin, dave
    // named; a listed admin unknown to the user file cannot log in.
    assert_eq!(b("/g/x.txt", "erin:erinpw"), 200);
    assert_eq!(b("/g/x.txt", "dave:davepw"), 200);
    assert_eq!(b("/g/x.txt", "alice:secret"), 401);
    s.wait_log("lighttpd would never match it");
}

#[test]
fn remote_user_reaches_cgi_and_the_access_log() {
    let d = site();
    let cgi = d.path().join("www/a/env.py");
    std::fs::copy(workspace_root().join("tests/fixtures/cgi/env.py"), &cgi).expect("copy env.py");
    let s = Server::start_in(
        d,
        &format!(
            "{BASE}\nserver.modules = ( \"mod_auth\", \"mod_cgi\", \"mod_accesslog\", \"mod_staticfile\" )\n\
             cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n\
             accesslog.filename = \"@DIR@/access.log\"\n\
             auth.backend = \"htpasswd\"\nauth.backend.htpasswd.userfile = \"@DIR@/users.htpasswd\"\n\
             auth.backend.plain.userfile = \"@DIR@/users.plain\"\n\
             auth.require = ( \"/a\" => ( \"method\" => \"basic\", \"realm\" => \"A\", \"require\" => \"valid-user\" ) )\n\
             $HTTP[\"url\"] =~ \"^/a/env.py\" {{ auth.backend = \"plain\"\n\
             auth.require = ( \"/a\" => ( \"method\" => \"digest\", \"realm\" => \"D\", \"require\" => \"valid-user\" ) ) }}\n"
        ),
        None,
    );
    // mod_authn_file was not listed: loaded for the file backend, with a notice.
    s.wait_log("needs mod_authn_file, which is not in server.modules: loaded automatically");
    let (st, body) = curl_status(&["--digest", "-u", "dave:davepw", &url(&s, "/a/env.py")]);
    assert_eq!(st, 200, "{}", s.error_log());
    assert!(body.lines().any(|l| l == "REMOTE_USER=dave"), "{body}");
    assert!(body.lines().any(|l| l == "AUTH_TYPE=Digest"), "{body}");
    let (st, _) = curl_status(&["-u", "alice:secret", &url(&s, "/a/x.txt")]);
    assert_eq!(st, 200);
    let log = wait_file(&s.dir.path().join("access.log"), " alice [");
    assert!(log.contains(" dave [") && log.contains("\"GET /a/x.txt HTTP/1.1\" 200"), "{log}");
    assert!(log.lines().any(|l| l.contains(" - [") && l.contains(" 401 ")), "{log}");
}

#[test]
fn extern_method_trusts_a_user_set_before() {
    let d = site();
    let sock = d.path().join("authz.sock");
    let mut authz = Command::new("python3")
        .arg(workspace_root().join("tests/fixtures/auth/authorizer.py"))
        .arg(&sock)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 authorizer (pip install flup)");
    let mut ready = [0u8; 6];
    authz.stdout.as_mut().expect("stdout").read_exact(&mut ready).expect("authorizer ready");
    let s = Server::start_in(
        d,
        &conf(&format!(
            r#"server.modules = ( "mod_fastcgi", "mod_auth", "mod_authn_file", "mod_staticfile" )
fastcgi.server = ( "/a/" => ( ( "socket" => "{}", "mode" => "authorizer", "check-local" => "disable" ) ),
                   "/x/" => ( ( "socket" => "{}", "mode" => "authorizer", "check-local" => "disable" ) ) )
auth.backend = "htpasswd"
auth.require = ( "/a/" => ( "method" => "extern", "realm" => "E", "require" => "user=extuser" ),
                 "/x/" => ( "method" => "basic", "realm" => "X", "require" => "valid-user" ) )
$HTTP["url"] =^ "/x/" {{ auth.extern-authn = "enable" }}"#,
            sock.display(),
            sock.display()
        )),
        None,
    );
    s.wait_log(
        "Warning: mod_auth should be listed in server.modules before dynamic backends such as mod_fastcgi",
    );
    let tok = |path: &str| {
        request(
            s.port,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Token: letmein\r\nConnection: close\r\n\r\n"),
        )
    };
    let r = tok("/a/x.txt");
    assert_eq!(r.status, 200, "{}", s.error_log());
    assert_eq!(r.text(), "file www/a/x.txt\n");
    // Basic with auth.extern-authn: the authorizer's user is enough, no password asked.
    let r = tok("/x/none.txt");
    assert_eq!(r.status, 404, "{:?}", r.head);
    let _ = authz.kill();
    let _ = authz.wait();
}

#[test]
fn extern_method_without_a_user_is_refused() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"auth.require = ( "/a/" => ( "method" => "extern", "realm" => "E", "require" => "valid-user" ) )"#,
        ),
        None,
    );
    let r = s.get("/a/x.txt");
    assert_eq!(r.status, 401);
    assert_eq!(r.header("WWW-Authenticate"), None);
}

#[test]
fn the_credential_cache_remembers_a_login() {
    let d = site();
    let file = d.path().join("users.plain");
    let s = Server::start_in(
        d,
        &conf(
            r#"auth.backend = "plain"
auth.require = ( "/a" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ) )
$HTTP["url"] =^ "/a/b/" { auth.cache = ( "max-age" => "600" ) }"#,
        ),
        None,
    );
    let b = |path: &str, c: &str| get_auth(s.port, path, &format!("Basic {}", b64(c))).status;
    assert_eq!(b("/a/x.txt", "dave:davepw"), 200);
    assert_eq!(b("/a/b/x.txt", "dave:davepw"), 200);
    // dave leaves the file: the cached block still admits him, the other asks the file.
    std::fs::write(&file, "erin:erinpw\n").expect("rewrite");
    assert_eq!(b("/a/b/x.txt", "dave:davepw"), 200);
    assert_eq!(b("/a/x.txt", "dave:davepw"), 401);
    // A wrong password is not admitted from the cache.
    assert_eq!(b("/a/b/x.txt", "dave:nope"), 401);
}

#[test]
fn wrong_credentials_are_answered_late_without_stalling_the_worker() {
    let d = site();
    let s = Server::start_in(
        d,
        &conf(
            r#"server.max-worker = 1
auth.delay-invalid-creds = 800
auth.backend = "plain"
auth.require = ( "/a" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ) )"#,
        ),
        None,
    );
    // Open the wrong login first, then fetch a file on the same (only) worker meanwhile.
    let t0 = Instant::now();
    let mut bad = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    bad.write_all(
        format!("GET /a/x.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n", b64("dave:nope"))
            .as_bytes(),
    )
    .expect("send");
    let r = s.get("/pub.txt");
    let other = t0.elapsed();
    assert_eq!(r.status, 200);
    let mut buf = Vec::new();
    bad.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = bad.read_to_end(&mut buf);
    let late = t0.elapsed();
    let head = String::from_utf8_lossy(&buf);
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // lighttpd closes the connection after wrong credentials (read_to_end returned).
    assert!(head.contains("Connection: close"), "{head}");
    assert!(late >= Duration::from_millis(750), "wrong password answered after {late:?}");
    assert!(other < Duration::from_millis(500), "another client waited {other:?} behind the delay");
    // A right password is not delayed.
    let t = Instant::now();
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("dave:davepw"))).status, 200);
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn default_delay_is_about_a_second_and_can_be_disabled() {
    let rule = r#"auth.backend = "plain"
auth.require = ( "/a" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ) )"#;
    let s = Server::start_in(site(), &conf(&format!("{rule}\n# auth.delay-invalid-creds: default")), None);
    let t = Instant::now();
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("dave:x"))).status, 401);
    assert!(t.elapsed() >= Duration::from_millis(900), "{:?}", t.elapsed());
    let s = Server::start_in(site(), &conf(&format!("{rule}\nauth.delay-invalid-creds = \"disable\"")), None);
    let t = Instant::now();
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("dave:x"))).status, 401);
    assert!(t.elapsed() < Duration::from_millis(500), "{:?}", t.elapsed());
}

#[test]
fn bcrypt_logins_run_off_the_event_loop() {
    let d = site();
    let hp = d.path().join("slow.htpasswd");
    htpasswd(&hp, "-B -C 12", "slow", "slowpw");
    htpasswd(&hp, "-B -C 10", "ten", "tenpw");
    let s = Server::start_in(
        d,
        &conf(
            r#"server.max-worker = 1
auth.backend = "htpasswd"
$HTTP["url"] =^ "/a" { auth.backend.htpasswd.userfile = "@DIR@/slow.htpasswd" }
auth.require = ( "/a" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ) )"#,
        ),
        None,
    );
    // How long one cost-10 check takes here (the test's output shows it).
    let t = Instant::now();
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("ten:tenpw"))).status, 200);
    eprintln!("bcrypt cost 10 login: {:?}", t.elapsed());

    // Four cost-12 logins in flight on the only worker, then a small static file.
    let t0 = Instant::now();
    let mut logins = Vec::new();
    for _ in 0..4 {
        let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
        c.write_all(
            format!(
                "GET /a/x.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
                b64("slow:slowpw")
            )
            .as_bytes(),
        )
        .expect("send");
        logins.push(c);
    }
    let r = s.get("/pub.txt");
    let static_time = t0.elapsed();
    assert_eq!(r.status, 200);
    let mut done = Vec::new();
    for mut c in logins {
        let mut buf = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
        let _ = c.read_to_end(&mut buf);
        assert!(buf.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf));
        done.push(t0.elapsed());
    }
    let first = done.iter().min().copied().unwrap_or_default();
    eprintln!("static file while 4 bcrypt cost-12 logins ran: {static_time:?}; logins done after {done:?}");
    assert!(
        static_time * 2 < first,
        "the static request ({static_time:?}) waited for the bcrypt checks (first done after {first:?})"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let cases: &[(&str, &str)] = &[
        (
            r#"auth.require = ( "/a" => ( "method" => "basic", "require" => "valid-user" ) )"#,
            "the realm field is missing",
        ),
        (
            r#"auth.require = ( "/a" => ( "method" => "magic", "realm" => "r", "require" => "valid-user" ) )"#,
            "unknown method magic",
        ),
        (
            r#"auth.require = ( "/a" => ( "method" => "basic", "realm" => "r", "require" => "user=" ) )"#,
            "missing token after '='",
        ),
        (
            r#"auth.require = ( "/a" => ( "method" => "basic", "realm" => "r", "require" => "user=x|valid-user=y" ) )"#,
            "valid-user can not be combined",
        ),
        (
            r#"auth.require = ( "/a" => ( "method" => "digest", "realm" => "r", "require" => "valid-user", "algorithm" => "SHA-1" ) )"#,
            "invalid algorithm",
        ),
        (
            r#"auth.require = ( "/a" => ( "method" => "basic", "realm" => "r", "require" => "valid-user", "colour" => "red" ) )"#,
            "the field is unknown",
        ),
        (r#"auth.require = ( "/a" => "basic" )"#, "unexpected value for auth.require"),
        (r#"auth.backend = "ldap""#, "auth.backend not supported: ldap"),
        (r#"auth.cache = ( "max-age" => "soon" )"#, "max-age"),
        (r#"auth.delay-invalid-creds = "often""#, "milliseconds"),
    ];
    for (line, msg) in cases {
        let f = Server::start_fail(&conf(line), None);
        assert!(f.stderr.contains(msg), "{line}: expected {msg:?} in:\n{}", f.stderr);
        assert!(f.stderr.contains("featherd.conf:"), "{line}: no file:line in:\n{}", f.stderr);
    }
    // Without mod_authn_file (automatic loading off) a file backend is unknown.
    let f = Server::start_fail(
        &format!(
            "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_auth\", \"mod_staticfile\" )\nauth.backend = \"htpasswd\"\n"
        ),
        None,
    );
    assert!(
        f.stderr.contains("auth.backend not supported: htpasswd") && f.stderr.contains("mod_authn_file"),
        "{}",
        f.stderr
    );
}

#[test]
fn host_rules_are_warned_about_and_never_match() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"auth.backend = "htpasswd"
auth.require = ( "/a" => ( "method" => "basic", "realm" => "A", "require" => "host=127.0.0.1" ) )"#,
        ),
        None,
    );
    s.wait_log("'host' not implemented");
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("alice:secret"))).status, 401);
}

#[test]
fn misconfigured_method_is_a_500() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"auth.backend = "htpasswd"
auth.require = ( "/p" => ( "method" => "digest", "realm" => "D", "require" => "valid-user" ),
                 "/a" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ) )
$HTTP["url"] =^ "/a" { auth.backend = "" }"#,
        ),
        None,
    );
    // htpasswd files hold no digests: lighttpd answers 500 before asking for credentials.
    assert_eq!(s.get("/p/x.txt").status, 500);
    s.wait_log("auth.require \"method\" => \"digest\" invalid (try \"basic\"?)");
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("alice:secret"))).status, 500);
    s.wait_log("auth.backend not configured for /a/x.txt");
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/auth.conf");
    let conf = format!(
        "{BASE}\ninclude \"{}\"\nauth.backend = \"htpasswd\"\nauth.backend.htpasswd.userfile = \"@DIR@/users.htpasswd\"\n\
         auth.delay-invalid-creds = \"disable\"\n\
         auth.require = ( \"/a/\" => ( \"method\" => \"basic\", \"realm\" => \"A\", \"require\" => \"user=bob\" ) )\n",
        snippet.display()
    );
    let s = Server::start_in(site(), &conf, None);
    assert_eq!(s.get("/a/x.txt").status, 401);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("bob:builder"))).status, 200);
    assert!(!s.error_log().contains("loaded automatically"), "{}", s.error_log());
}

#[test]
fn a_backend_module_alone_brings_mod_auth_in() {
    let s = Server::start_in(
        site(),
        &conf(
            r#"server.modules = ( "mod_authn_file", "mod_staticfile" )
auth.backend = "plain"
auth.require = ( "/a/" => ( "method" => "basic", "realm" => "A", "require" => "valid-user" ) )"#,
        ),
        None,
    );
    assert_eq!(s.get("/a/x.txt").status, 401);
    assert_eq!(get_auth(s.port, "/a/x.txt", &format!("Basic {}", b64("dave:davepw"))).status, 200);
}
