//! mod_staticfile through the real server: bodies and lengths, content types (built-in table,
//! `mimetype.assign`, per condition), validators and conditional requests, byte ranges and
//! If-Range, HEAD, excluded extensions, the ETag settings, large files over sendfile,
//! percent-encoded names, and path traversal attempts.

use featherd_e2e::*;
use std::fs::{File, FileTimes};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// BASE with the default modules (mod_indexfile, mod_staticfile) loaded.
fn conf(extra: &str) -> String {
    format!("{BASE}\n{extra}\n")
}

/// 784111777 s after the epoch, as an HTTP date.
const MTIME: u64 = 784_111_777;
const MTIME_HTTP: &str = "Sun, 06 Nov 1994 08:49:37 GMT";

fn set_mtime(path: &Path, secs: u64, nsec: u32) {
    let f = File::options().write(true).open(path).expect("open for set_times");
    let t = UNIX_EPOCH + Duration::new(secs, nsec);
    f.set_times(FileTimes::new().set_modified(t).set_accessed(SystemTime::now())).expect("set mtime");
}

/// Write a file in the docroot with a fixed mtime.
fn put(s: &Server, rel: &str, data: impl AsRef<[u8]>) -> std::path::PathBuf {
    let p = s.docroot().join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, data).expect("write");
    set_mtime(&p, MTIME, 0);
    p
}

/// A request with extra header lines, over a fresh connection closed after the answer.
fn req(s: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (n, v) in headers {
        r.push_str(&format!("{n}: {v}\r\n"));
    }
    r.push_str("\r\n");
    request(s.port, &r)
}

fn etag_of(s: &Server, path: &str) -> String {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.head);
    r.header("etag").unwrap_or_else(|| panic!("no ETag for {path}: {}", r.head)).to_string()
}

/// Read from `c` until `buf` holds a complete head; returns the index after it.
fn read_head(c: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return p + 4;
        }
        let n = c.read(&mut chunk).expect("read head");
        assert!(n > 0, "connection closed before a complete head: {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[test]
fn serves_exact_body_with_length_type_and_validators() {
    // Files are rewritten and fetched again within a second: without the stat cache each
    // request sees the file as it is now.
    let s = Server::start(&conf("server.stat-cache-engine = \"disable\""));
    put(&s, "hello.txt", "hello world\n");
    let r = s.get("/hello.txt");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.body, b"hello world\n");
    assert_eq!(r.header("content-length"), Some("12"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("last-modified"), Some(MTIME_HTTP));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    let etag = r.header("etag").expect("ETag");
    assert!(
        etag.len() > 2
            && etag.starts_with('"')
            && etag.ends_with('"')
            && etag[1..etag.len() - 1].bytes().all(|b| b.is_ascii_digit()),
        "ETag {etag}"
    );
    // Same file, same tag; a rewritten file gets a new one.
    assert_eq!(etag_of(&s, "/hello.txt"), etag);
    put(&s, "hello.txt", "hello world, again\n");
    let r2 = s.get("/hello.txt");
    assert_eq!(r2.body, b"hello world, again\n");
    assert_ne!(r2.header("etag"), Some(etag));
    // An empty file is a 200 with Content-Length 0.
    put(&s, "empty.txt", "");
    let r = s.get("/empty.txt");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    assert!(r.body.is_empty());
    // A missing file is the core's 404.
    assert_eq!(s.get("/nope.txt").status, 404);
}

#[test]
fn content_type_from_the_built_in_table() {
    let s = Server::start(&conf(""));
    let cases = [
        ("a.html", "text/html"),
        ("a.css", "text/css"),
        ("a.js", "text/javascript"),
        ("a.json", "application/json"),
        ("a.png", "image/png"),
        ("a.gz", "application/gzip"),
        ("a.tar.gz", "application/x-tgz"), // longest suffix wins
        ("a.unknownext", "application/octet-stream"),
    ];
    for (name, _) in &cases {
        put(&s, name, "x");
    }
    for (name, ty) in &cases {
        let r = s.get(&format!("/{name}"));
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.header("content-type"), Some(*ty), "{name}");
    }
}

#[test]
fn mimetype_assign_replaces_the_table_and_changes_per_condition() {
    let s = Server::start(&conf(
        r#"
mimetype.assign = ( ".txt" => "text/x-custom", ".html" => "text/html; charset=utf-8" )
mimetype.default = "application/x-fallback"
$HTTP["url"] =^ "/special/" {
    mimetype.assign = ( ".txt" => "application/x-special" )
}
"#,
    ));
    put(&s, "a.txt", "plain");
    put(&s, "a.html", "<p>");
    put(&s, "a.css", "p{}");
    put(&s, "special/a.txt", "special");
    put(&s, "special/a.html", "<p>");
    let ty = |p: &str| {
        let r = s.get(p);
        assert_eq!(r.status, 200, "{p}");
        r.header("content-type").map(str::to_owned)
    };
    assert_eq!(ty("/a.txt").as_deref(), Some("text/x-custom"));
    assert_eq!(ty("/a.html").as_deref(), Some("text/html; charset=utf-8"));
    // The assigned table replaced the built-in one: .css is no longer known.
    assert_eq!(ty("/a.css").as_deref(), Some("application/x-fallback"));
    // Inside the block, its own table applies, per request.
    assert_eq!(ty("/special/a.txt").as_deref(), Some("application/x-special"));
    assert_eq!(ty("/special/a.html").as_deref(), Some("application/x-fallback"));
    // And outside again after a request inside (nothing sticks to the connection or worker).
    assert_eq!(ty("/a.txt").as_deref(), Some("text/x-custom"));
}

#[test]
fn if_none_match_gives_304_without_body_on_a_keep_alive_connection() {
    let s = Server::start(&conf(""));
    put(&s, "page.html", "<h1>cached</h1>\n");
    let etag = etag_of(&s, "/page.html");

    let mut c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    c.write_all(format!("GET /page.html HTTP/1.1\r\nHost: a\r\nIf-None-Match: {etag}\r\n\r\n").as_bytes())
        .expect("send 1");
    let mut buf = Vec::new();
    let end = read_head(&mut c, &mut buf);
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    assert!(head.starts_with("HTTP/1.1 304 Not Modified\r\n"), "{head}");
    assert!(head.contains(&format!("\r\nETag: {etag}\r\n")), "{head}");
    assert!(head.contains(&format!("\r\nLast-Modified: {MTIME_HTTP}\r\n")), "{head}");
    assert!(head.contains("\r\nContent-Type: text/html\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("\r\nconnection: close"), "{head}");
    // A second request on the same connection: its answer must follow the 304 head directly.
    c.write_all(b"GET /page.html HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").expect("send 2");
    c.read_to_end(&mut buf).expect("read rest");
    let rest = &buf[end..];
    assert!(
        rest.starts_with(b"HTTP/1.1 200 OK\r\n"),
        "bytes after the 304 head: {:?}",
        String::from_utf8_lossy(rest)
    );
    let rs = parse_responses(&buf, false);
    assert_eq!(rs.len(), 2, "{}", String::from_utf8_lossy(&buf));
    assert_eq!(rs[0].status, 304);
    assert_eq!(rs[1].status, 200);
    assert_eq!(rs[1].body, b"<h1>cached</h1>\n");
    assert_eq!(rs[1].header("connection"), Some("close"));
}

/// (name, method, headers, expected status)
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16);

#[test]
fn if_none_match_forms() {
    let s = Server::start(&conf(""));
    put(&s, "f.txt", "0123456789");
    let etag = etag_of(&s, "/f.txt");
    let weak = format!("W/{etag}");
    let list = format!("\"1\", {weak}, \"2\"");
    let cases: Vec<Case> = vec![
        ("exact", "GET", vec![("If-None-Match", &etag)], 304),
        ("star", "GET", vec![("If-None-Match", "*")], 304),
        ("weak", "GET", vec![("If-None-Match", &weak)], 304),
        ("list", "GET", vec![("If-None-Match", &list)], 304),
        ("HEAD", "HEAD", vec![("If-None-Match", &etag)], 304),
        ("other tag", "GET", vec![("If-None-Match", "\"12345\"")], 200),
        ("unquoted", "GET", vec![("If-None-Match", etag.trim_matches('"'))], 200),
        ("POST", "POST", vec![("If-None-Match", "*"), ("Content-Length", "0")], 412),
        // A matching If-None-Match wins over an If-Modified-Since that says "modified"…
        (
            "INM beats IMS",
            "GET",
            vec![("If-None-Match", &etag), ("If-Modified-Since", "Thu, 01 Jan 1970 00:00:00 GMT")],
            304,
        ),
        // …and a non-matching one makes If-Modified-Since irrelevant.
        ("INM ignores IMS", "GET", vec![("If-None-Match", "\"1\""), ("If-Modified-Since", MTIME_HTTP)], 200),
        // With a Range, only the strong comparison applies: a weak tag does not match.
        ("weak + Range", "GET", vec![("If-None-Match", &weak), ("Range", "bytes=0-1")], 206),
        ("strong + Range", "GET", vec![("If-None-Match", &etag), ("Range", "bytes=0-1")], 304),
    ];
    for (name, method, headers, want) in cases {
        let r = req(&s, method, "/f.txt", &headers);
        assert_eq!(r.status, want, "{name}: {}", r.head);
        match want {
            304 => {
                assert!(r.header("content-length").is_none(), "{name}: {}", r.head);
                assert_eq!(r.header("etag"), Some(etag.as_str()), "{name}");
            }
            200 => assert_eq!(r.body, b"0123456789", "{name}"),
            206 => assert_eq!(r.body, b"01", "{name}"),
            _ => {}
        }
    }
}

#[test]
fn if_modified_since_equal_or_later_is_304_earlier_is_200() {
    let s = Server::start(&conf(""));
    put(&s, "f.css", "body{}");
    let cases: &[(&str, u16)] = &[
        (MTIME_HTTP, 304),
        ("Sun, 06 Nov 1994 08:49:38 GMT", 304),
        ("Sun, 01 Jan 2012 00:00:00 GMT", 304),
        // A date later than now is invalid (RFC 7232 3.3, as lighttpd): the file is sent.
        ("Thu, 01 Jan 2099 00:00:00 GMT", 200),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 304), // RFC 850 form of the same date
        ("Sun, 06 Nov 1994 08:49:36 GMT", 200),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 200),
        ("not a date", 200),
    ];
    for (ims, want) in cases {
        let r = req(&s, "GET", "/f.css", &[("If-Modified-Since", ims)]);
        assert_eq!(r.status, *want, "{ims}: {}", r.head);
        if *want == 200 {
            assert_eq!(r.body, b"body{}", "{ims}");
        }
    }
    // POST ignores If-Modified-Since.
    let r = req(&s, "POST", "/f.css", &[("If-Modified-Since", MTIME_HTTP), ("Content-Length", "0")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"body{}");
}

#[test]
fn byte_ranges_and_416() {
    let s = Server::start(&conf(""));
    put(&s, "digits.txt", "0123456789");
    let cases: &[(&str, u16, &str, &str)] = &[
        // (Range, status, Content-Range, body)
        ("bytes=0-4", 206, "bytes 0-4/10", "01234"),
        ("bytes=5-", 206, "bytes 5-9/10", "56789"),
        ("bytes=-3", 206, "bytes 7-9/10", "789"),
        ("bytes=9-9", 206, "bytes 9-9/10", "9"),
        ("bytes=5-100", 206, "bytes 5-9/10", "56789"),
        ("bytes=-30", 206, "bytes 0-9/10", "0123456789"),
        ("bytes=10-", 416, "bytes */10", ""),
        ("bytes=10-20", 416, "bytes */10", ""),
        ("bytes=-0", 416, "bytes */10", ""),
    ];
    for (range, status, cr, body) in cases {
        let r = req(&s, "GET", "/digits.txt", &[("Range", range)]);
        assert_eq!(r.status, *status, "{range}: {}", r.head);
        assert_eq!(r.header("content-range"), Some(*cr), "{range}");
        if *status == 206 {
            assert_eq!(r.text(), *body, "{range}");
            assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()), "{range}");
            assert_eq!(r.header("accept-ranges"), Some("bytes"), "{range}");
        } else {
            assert!(!r.text().contains("0123"), "{range}: the file must not be sent");
        }
    }
    // Ignored: the whole file with 200 (malformed, several ranges, other unit, HEAD, HTTP/1.0).
    for range in ["bytes=4-2", "bytes=0-1,x", "items=0-1"] {
        let r = req(&s, "GET", "/digits.txt", &[("Range", range)]);
        assert_eq!((r.status, r.text().as_str()), (200, "0123456789"), "{range}");
        assert!(r.header("content-range").is_none(), "{range}");
    }
    let r = request(s.port, "GET /digits.txt HTTP/1.0\r\nRange: bytes=0-4\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    assert!(r.header("accept-ranges").is_none(), "{}", r.head);
    let r = req(&s, "HEAD", "/digits.txt", &[("Range", "bytes=0-4")]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("10")));
    // curl agrees on the framing.
    let (code, out, err) = curl(&["-r", "2-5", &format!("http://127.0.0.1:{}/digits.txt", s.port)]);
    assert_eq!((code, out.as_str()), (0, "2345"), "{err}");
}

#[test]
fn if_range_honours_the_range_only_for_our_exact_validator() {
    let s = Server::start(&conf(""));
    put(&s, "digits.txt", "0123456789");
    let etag = etag_of(&s, "/digits.txt");
    let weak = format!("W/{etag}");
    let cases: &[(&str, u16)] = &[
        (&etag, 206),
        (MTIME_HTTP, 206),
        ("\"0\"", 200),
        (&weak, 200),
        ("Sun, 06 Nov 1994 08:49:38 GMT", 200),
    ];
    for (ir, want) in cases {
        let r = req(&s, "GET", "/digits.txt", &[("Range", "bytes=2-3"), ("If-Range", ir)]);
        assert_eq!(r.status, *want, "If-Range {ir}: {}", r.head);
        let body = if *want == 206 { "23" } else { "0123456789" };
        assert_eq!(r.text(), body, "If-Range {ir}");
    }
}

#[test]
fn head_has_the_same_headers_and_no_body() {
    let s = Server::start(&conf(""));
    put(&s, "doc.json", "{\"a\": 1}\n");
    let g = s.get("/doc.json");
    let data = raw(s.port, b"HEAD /doc.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&data).into_owned();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "HEAD must have no body: {text:?}");
    let h = parse_responses(&data, true).remove(0);
    for name in ["content-length", "content-type", "etag", "last-modified", "accept-ranges"] {
        assert!(g.header(name).is_some(), "GET lacks {name}");
        assert_eq!(h.header(name), g.header(name), "{name}");
    }
    assert_eq!(h.header("content-length"), Some("9"));
    // Nothing of a body follows the HEAD head on a keep-alive connection either.
    let data = raw(
        s.port,
        b"HEAD /doc.json HTTP/1.1\r\nHost: a\r\n\r\nGET /doc.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let end = data.windows(4).position(|w| w == b"\r\n\r\n").expect("head") + 4;
    assert!(data[end..].starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&data));
    let second = parse_responses(&data[end..], false).remove(0);
    assert_eq!(second.body, b"{\"a\": 1}\n");
    // curl -I sees the same.
    let (code, out, err) = curl(&["-I", &format!("http://127.0.0.1:{}/doc.json", s.port)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Content-Length: 9\r\n"), "{out}");
}

#[test]
fn excluded_extensions_are_not_served() {
    let s = Server::start(&conf(
        "static-file.exclude-extensions = ( \".php\", \".inc\" )\n$HTTP[\"url\"] =^ \"/open/\" { static-file.exclude-extensions = ( ) }\n",
    ));
    put(&s, "index.php", "<?php echo $secret_password; ?>");
    put(&s, "lib.inc", "db_password=hunter2");
    put(&s, "ok.txt", "fine");
    put(&s, "open/page.php", "<?php visible ?>");
    for p in ["/index.php", "/lib.inc"] {
        let r = s.get(p);
        assert_eq!(r.status, 403, "{p}: {}", r.head);
        assert!(!r.text().contains("password"), "{p}: source leaked");
    }
    assert_eq!(s.get("/ok.txt").text(), "fine");
    // The setting is per condition: the block that clears the list serves .php again.
    let r = s.get("/open/page.php");
    assert_eq!((r.status, r.text().as_str()), (200, "<?php visible ?>"));
}

#[test]
fn etag_settings_choose_what_the_tag_depends_on() {
    let s = Server::start(&conf(
        r#"
server.stat-cache-engine = "disable"
$HTTP["url"] =^ "/noinode/" { etag.use-inode = "disable" }
$HTTP["url"] =^ "/nomtime/" { etag.use-mtime = "disable" }
$HTTP["url"] =^ "/sizeonly/" { etag.use-inode = "disable"  etag.use-mtime = "disable" }
$HTTP["url"] =^ "/nofields/" { etag.use-inode = "disable"  etag.use-mtime = "disable"  etag.use-size = "disable" }
$HTTP["url"] =^ "/noetags/" { static-file.etags = "disable" }
"#,
    ));
    // Two files alike in size and mtime differ only in their inode.
    for d in ["all", "noinode"] {
        put(&s, &format!("{d}/a.txt"), "same");
        put(&s, &format!("{d}/b.txt"), "same");
    }
    assert_ne!(etag_of(&s, "/all/a.txt"), etag_of(&s, "/all/b.txt"), "the inode is in the tag by default");
    assert_eq!(etag_of(&s, "/noinode/a.txt"), etag_of(&s, "/noinode/b.txt"), "etag.use-inode = disable");

    // Changing only the mtime (nanoseconds) changes the tag unless use-mtime is off.
    let all = put(&s, "all/m.txt", "m");
    let nomtime = put(&s, "nomtime/m.txt", "m");
    let (before_all, before_nomtime) = (etag_of(&s, "/all/m.txt"), etag_of(&s, "/nomtime/m.txt"));
    set_mtime(&all, MTIME, 1);
    set_mtime(&nomtime, MTIME + 3600, 0);
    assert_ne!(etag_of(&s, "/all/m.txt"), before_all, "mtime nanoseconds are in the tag");
    assert_eq!(etag_of(&s, "/nomtime/m.txt"), before_nomtime, "etag.use-mtime = disable");

    // Only the size left: equal sizes, equal tags; different sizes, different tags.
    put(&s, "sizeonly/a.txt", "four");
    let b = put(&s, "sizeonly/b.txt", "4444");
    set_mtime(&b, MTIME + 99, 0);
    put(&s, "sizeonly/c.txt", "five!");
    assert_eq!(etag_of(&s, "/sizeonly/a.txt"), etag_of(&s, "/sizeonly/b.txt"));
    assert_ne!(etag_of(&s, "/sizeonly/a.txt"), etag_of(&s, "/sizeonly/c.txt"));

    // No field, or etags off: no ETag at all, Last-Modified still there, and a tag the
    // client remembers from elsewhere does not produce a 304.
    let known = etag_of(&s, "/all/a.txt");
    for p in ["/nofields/x.txt", "/noetags/x.txt"] {
        put(&s, &p[1..], "x");
        let r = s.get(p);
        assert_eq!(r.status, 200, "{p}");
        assert!(r.header("etag").is_none(), "{p}: {}", r.head);
        assert_eq!(r.header("last-modified"), Some(MTIME_HTTP), "{p}");
        assert_eq!(req(&s, "GET", p, &[("If-None-Match", &known)]).status, 200, "{p}");
        assert_eq!(req(&s, "GET", p, &[("If-Modified-Since", MTIME_HTTP)]).status, 304, "{p}");
    }
}

#[test]
fn disable_pathinfo_refuses_a_file_with_path_info() {
    let s = Server::start(&conf(
        "$HTTP[\"url\"] =^ \"/strict/\" { static-file.disable-pathinfo = \"enable\" }\n",
    ));
    put(&s, "loose/page.html", "loose");
    put(&s, "strict/page.html", "strict");
    let r = s.get("/loose/page.html/extra/info");
    assert_eq!((r.status, r.text().as_str()), (200, "loose"));
    assert_eq!(s.get("/strict/page.html/extra/info").status, 403);
    assert_eq!(s.get("/strict/page.html").text(), "strict");
}

/// Deterministic bytes that are not all alike (so an offset error shows).
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn large_file_is_sent_completely_also_to_two_clients_at_once() {
    let s = Server::start(&conf(""));
    let data = pattern(20 * 1024 * 1024 + 123);
    put(&s, "big.bin", &data);
    let url = format!("http://127.0.0.1:{}/big.bin", s.port);
    let out_dir = TempDir::new("dl");
    let fetch = |name: &str| {
        let out = out_dir.path().join(name).display().to_string();
        let (code, stdout, err) = curl(&["-o", &out, "-w", "%{http_code} %{size_download}", &url]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(stdout, format!("200 {}", data.len()));
        let got = std::fs::read(&out).expect("downloaded file");
        assert_eq!(got.len(), data.len(), "{name}: length");
        assert!(got == data, "{name}: content differs");
    };
    fetch("one.bin");
    std::thread::scope(|sc| {
        let a = sc.spawn(|| fetch("a.bin"));
        let b = sc.spawn(|| fetch("b.bin"));
        a.join().expect("download a");
        b.join().expect("download b");
    });
    // A range deep inside the file comes from the right offset.
    let (code, _, err) =
        curl(&["-r", "15000000-15000099", "-o", &out_dir.path().join("r").display().to_string(), &url]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(out_dir.path().join("r")).expect("range"), &data[15_000_000..15_000_100]);
}

#[test]
fn percent_encoded_names_with_spaces_and_utf8() {
    let s = Server::start(&conf(""));
    put(&s, "my file ü.txt", "umlaut\n");
    put(&s, "dir with space/100%.txt", "percent\n");
    let r = s.get("/my%20file%20%C3%BC.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "umlaut\n"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(s.get("/dir%20with%20space/100%25.txt").text(), "percent\n");
    let (code, out, err) = curl(&[&format!("http://127.0.0.1:{}/my%20file%20%c3%bc.txt", s.port)]);
    assert_eq!((code, out.as_str()), (0, "umlaut\n"), "{err}");
    // Not the same name in another encoding.
    assert_eq!(s.get("/my%20file%20u.txt").status, 404);
}

#[test]
fn traversal_attempts_never_leave_the_document_root() {
    for opts in ["", "server.http-parseopts = ( \"url-path-2f-decode\" => \"enable\" )"] {
        let dir = TempDir::new("traversal");
        dir.write("secret.txt", "TOP-SECRET beside the docroot\n");
        dir.write("www/sub/page.txt", "page\n");
        let s = Server::start_in(dir, &conf(opts), None);
        let targets = [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/%2E%2E/secret.txt",
            "/.%2e/secret.txt",
            "/..%2fsecret.txt",
            "/..%2Fsecret.txt",
            "/%2e%2e%2fsecret.txt",
            "/sub/..%2f..%2fsecret.txt",
            "/sub/%2e%2e/%2e%2e/%2e%2e/secret.txt",
            "/..%5csecret.txt",
            "/..\\secret.txt",
            "//../secret.txt",
            "/./.././secret.txt",
        ];
        for t in targets {
            let data =
                raw(s.port, format!("GET {t} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes());
            let text = String::from_utf8_lossy(&data);
            assert!(!text.contains("TOP-SECRET"), "[{opts}] {t} leaked the secret:\n{text}");
            let r = parse_responses(&data, false).remove(0);
            assert!(matches!(r.status, 400 | 403 | 404), "[{opts}] {t}: {}", r.head);
        }
        // curl with --path-as-is sends the dot-segments unchanged.
        let (_, out, _) =
            curl(&["--path-as-is", &format!("http://127.0.0.1:{}/sub/../../secret.txt", s.port)]);
        assert!(!out.contains("TOP-SECRET"), "[{opts}] curl: {out}");
        // Dot-segments inside the docroot still resolve.
        assert_eq!(s.get("/sub/../sub/./page.txt").text(), "page\n");
    }
}

#[test]
fn file_cache_never_mixes_versions_of_a_replaced_file() {
    // With the stat and file cache on (the default), a file replaced under load may be served
    // as the old or the new version for up to a second, but every response is one whole
    // version with its own length and validators: never an old length with new bytes.
    let s = Server::start(&conf(""));
    let small: Vec<String> = (0..4).map(|i| format!("version {i} ").repeat(10 + i * 7)).collect();
    let large: Vec<Vec<u8>> = (0..4).map(|i| vec![b'a' + i as u8; 40_000 + i * 5_000]).collect();
    let dir = s.docroot();
    for round in 0..40 {
        let i = round % 4;
        // Replace by rename (what deploy tools do), then fetch both files a few times.
        for (name, data) in [("s.txt", small[i].as_bytes()), ("l.bin", large[i].as_slice())] {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, data).expect("write");
            std::fs::rename(&tmp, dir.join(name)).expect("rename");
        }
        for _ in 0..3 {
            let r = s.get("/s.txt");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
            assert!(small.iter().any(|v| v.as_bytes() == r.body.as_slice()), "a whole version");
            let r = s.get("/l.bin");
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
            assert!(large.contains(&r.body), "a whole version of the large file");
        }
    }
}

/// The parts of a multipart/byteranges body: (Content-Type, Content-Range, bytes).
fn byteranges(r: &Response) -> Vec<(String, String, Vec<u8>)> {
    let ct = r.header("content-type").expect("content-type");
    let boundary = ct.strip_prefix("multipart/byteranges; boundary=").unwrap_or_else(|| panic!("{ct}"));
    let delim = format!("\r\n--{boundary}");
    let body = &r.body;
    let find =
        |from: usize, pat: &[u8]| body[from..].windows(pat.len()).position(|w| w == pat).map(|p| p + from);
    let mut parts = Vec::new();
    let mut at = find(0, delim.as_bytes()).expect("first boundary");
    assert_eq!(at, 0, "the body starts with the first boundary");
    loop {
        at += delim.len();
        if body[at..].starts_with(b"--\r\n") {
            assert_eq!(at + 4, body.len(), "nothing after the closing boundary");
            return parts;
        }
        assert!(body[at..].starts_with(b"\r\n"));
        let head_end = find(at, b"\r\n\r\n").expect("part head");
        let head = String::from_utf8_lossy(&body[at + 2..head_end]).into_owned();
        let next = find(head_end + 4, delim.as_bytes()).expect("next boundary");
        let field = |name: &str| {
            head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default()
        };
        parts.push((field("Content-Type:"), field("Content-Range:"), body[head_end + 4..next].to_vec()));
        at = next;
    }
}

#[test]
fn several_ranges_give_multipart_byteranges() {
    let s = Server::start(&conf(""));
    put(&s, "digits.txt", "0123456789");
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    put(&s, "big.bin", &big);
    let r = req(&s, "GET", "/digits.txt", &[("Range", "bytes=0-1,4-5,-2")]);
    assert_eq!(r.status, 206, "{}", r.head);
    assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
    assert!(r.header("content-range").is_none(), "no top-level Content-Range: {}", r.head);
    let parts = byteranges(&r);
    let want = [("bytes 0-1/10", "01"), ("bytes 4-5/10", "45"), ("bytes 8-9/10", "89")];
    assert_eq!(parts.len(), 3);
    for ((ct, cr, data), (wcr, wdata)) in parts.iter().zip(want) {
        assert_eq!(ct, "text/plain");
        assert_eq!((cr.as_str(), data.as_slice()), (wcr, wdata.as_bytes()));
    }
    // Overlapping and adjacent ranges are merged: one range left is a plain 206.
    let r = req(&s, "GET", "/digits.txt", &[("Range", "bytes=0-3,2-5,6-6")]);
    assert_eq!(
        (r.status, r.header("content-range"), r.text().as_str()),
        (206, Some("bytes 0-6/10"), "0123456")
    );
    // Ranges past the end are dropped; none left: 416.
    let r = req(&s, "GET", "/digits.txt", &[("Range", "bytes=0-0,50-60")]);
    assert_eq!((r.status, r.text().as_str()), (206, "0"));
    let r = req(&s, "GET", "/digits.txt", &[("Range", "bytes=50-60,70-")]);
    assert_eq!((r.status, r.header("content-range")), (416, Some("bytes */10")));
    // Large file ranges go out with sendfile, each part exact.
    let r = req(&s, "GET", "/big.bin", &[("Range", "bytes=10-20000,50000-99999")]);
    let parts = byteranges(&r);
    assert_eq!(parts[0].2, &big[10..=20000]);
    assert_eq!(parts[1].2, &big[50000..]);
    assert_eq!(parts[1].1, "bytes 50000-99999/100000");
    // curl splits them the same way.
    let (code, out, err) = curl(&["-s", "-r", "0-1,8-9", &format!("http://127.0.0.1:{}/digits.txt", s.port)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Content-Range: bytes 0-1/10\r\n\r\n01\r\n--"), "{out}");
    assert!(out.contains("Content-Range: bytes 8-9/10\r\n\r\n89\r\n--"), "{out}");
}

#[test]
fn range_requests_can_be_switched_off_per_condition() {
    let s = Server::start(&conf(r#"$HTTP["url"] =^ "/norange/" { server.range-requests = "disable" }"#));
    put(&s, "digits.txt", "0123456789");
    put(&s, "norange/digits.txt", "0123456789");
    let r = req(&s, "GET", "/digits.txt", &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.text().as_str()), (206, "01"));
    let r = req(&s, "GET", "/norange/digits.txt", &[("Range", "bytes=0-1")]);
    assert_eq!((r.status, r.text().as_str()), (200, "0123456789"));
    assert!(r.header("accept-ranges").is_none(), "{}", r.head);
    assert!(r.header("content-range").is_none(), "{}", r.head);
}
