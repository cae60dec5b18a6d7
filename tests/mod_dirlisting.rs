//! mod_dirlisting through the real server: listings of directories without an index file,
//! as HTML (every name escaped in text and percent-encoded in links, directories first, a
//! parent link, sortable by the query) or as JSON for `Accept: application/json`; HEAD;
//! dotfiles, excludes, header and readme files, layout settings and activation per site.

use featherd_e2e::*;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

const LISTING: &str = r#"
index-file.names = ( "index.html" )
server.tag = "featherd-test"
$HTTP["host"] == "list.test" {
    dir-listing.activate = "enable"
}
"#;

fn get_host(s: &Server, host: &str, path: &str) -> Response {
    request(s.port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

fn get_json(s: &Server, host: &str, path: &str) -> Response {
    request(
        s.port,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
        ),
    )
}

fn start(extra: &str) -> Server {
    Server::start(&format!("{BASE}{LISTING}{extra}"))
}

/// Undo the page's HTML escaping.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Undo percent-encoding.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// One row of the listing table: (href as written, name as shown (unescaped), row class).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    href: String,
    name: String,
    class: String,
}

/// The rows of the listing's table, in page order (the parent link included).
fn rows(html: &str) -> Vec<Row> {
    let tbody = html.split("<tbody>").nth(1).and_then(|t| t.split("</tbody>").next()).expect("a table body");
    tbody
        .split("<tr")
        .skip(1)
        .map(|tr| {
            let class =
                tr.strip_prefix(" class=\"").and_then(|c| c.split('"').next()).unwrap_or("").to_string();
            let a = tr.split("<td class=\"n\"><a href=\"").nth(1).expect("a name cell with a link");
            let (href, rest) = a.split_once("\">").expect("href");
            let name = rest.split("</a>").next().expect("link text");
            Row { href: href.to_string(), name: unescape(name), class }
        })
        .collect()
}

fn names(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| r.name.clone()).collect()
}

fn set_mtime(p: &Path, secs: u64) {
    // A read-only descriptor is enough for the owner (and works for directories).
    let f = std::fs::File::open(p).expect("open");
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).expect("set mtime");
}

// A file name cannot hold '/', so no "</script>"; these do the same harm if not escaped.
const EVIL_SCRIPT: &str = "<script>alert(1)<\\script>.html";
const EVIL_TAG: &str = "<img src=x onerror=alert(2)>";
const EVIL_QUOTE: &str = "a\"b&c.txt";

/// A directory with awkward names.
fn evil_dir(s: &Server) {
    s.dir.write(&format!("www/list/{EVIL_SCRIPT}"), "script file");
    s.dir.write(&format!("www/list/{EVIL_QUOTE}"), "quote file");
    s.dir.write(&format!("www/list/{EVIL_TAG}"), "tag file");
    s.dir.write("www/list/plain.txt", "abc");
    s.dir.write("www/list/100% sure.txt", "percent");
    s.dir.write("www/list/ünïcødé.txt", "unicode");
    s.dir.write("www/list/javascript:alert(1)", "colon");
    s.dir.write("www/list/sub dir/inner.txt", "inner");
    s.dir.write("www/list/.hidden", "hidden");
    s.dir.write("www/list/.config/x", "hidden dir");
}

#[test]
fn html_listing_escapes_every_name() {
    let s = start("");
    evil_dir(&s);
    let r = get_host(&s, "list.test", "/list/");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let html = r.text();
    assert_eq!(r.header("content-length"), Some(html.len().to_string().as_str()));
    // The file name never appears as markup: exactly one script element (the page's own).
    assert!(!html.contains(EVIL_SCRIPT) && !html.contains(EVIL_TAG), "raw name in the page");
    assert_eq!(html.matches("<script").count(), 1, "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;\\script&gt;.html"));
    assert!(html.contains("href=\"%3Cscript%3Ealert%281%29%3C%5Cscript%3E.html\""));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;</a>"));
    assert!(html.contains("href=\"%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E\""));
    assert!(html.contains(">a&quot;b&amp;c.txt</a>"));
    assert!(html.contains("href=\"a%22b%26c.txt\""));
    assert!(html.contains("href=\"javascript%3Aalert%281%29\""), "a name is never a scheme");
    assert!(html.contains("<title>Index of /list/</title>"));
    let rows = rows(&html);
    // Parent first, directories before files, names in order; dotfiles hidden.
    assert_eq!(
        names(&rows),
        [
            "..",
            "sub dir",
            "100% sure.txt",
            EVIL_TAG,
            EVIL_SCRIPT,
            EVIL_QUOTE,
            "javascript:alert(1)",
            "plain.txt",
            "ünïcødé.txt"
        ]
    );
    assert_eq!(rows[0].href, "../");
    assert_eq!((rows[1].href.as_str(), rows[1].class.as_str()), ("sub%20dir/", "d"));
    // Every link leads back to its file through the server.
    for row in &rows[2..] {
        let r = get_host(&s, "list.test", &format!("/list/{}", row.href));
        assert_eq!(r.status, 200, "{row:?}");
        let on_disk = std::fs::read(s.docroot().join("list").join(&row.name)).unwrap();
        assert_eq!(r.body, on_disk, "{row:?}");
        assert_eq!(percent_decode(&row.href), row.name.as_bytes(), "href decodes to the name");
    }
    let r = get_host(&s, "list.test", &format!("/list/{}", rows[1].href));
    assert_eq!(names(&rows_of(&r)), ["..", "inner.txt"]);
    // Sizes and dates are shown for people, exact values in attributes.
    assert!(html.contains("data-v=\"3\" title=\"3 bytes\">3 B</td>"), "{html}");
    assert!(html.contains("<td class=\"t\">text/plain</td>"));
    assert!(html.contains("<div class=\"foot\">featherd-test</div>"));
}

fn rows_of(r: &Response) -> Vec<Row> {
    assert_eq!(r.status, 200, "{}", r.head);
    rows(&r.text())
}

#[test]
fn names_that_are_not_utf8() {
    let s = start("");
    let dir = s.docroot().join("bytes");
    std::fs::create_dir_all(&dir).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9 <b>.txt");
    std::fs::write(dir.join(name), "latin-1 name").unwrap();
    let r = get_host(&s, "list.test", "/bytes/");
    assert_eq!(r.status, 200);
    let shown: &[u8] = b"caf\xe9 &lt;b&gt;.txt";
    assert!(r.body.windows(shown.len()).any(|w| w == shown), "the name as bytes, escaped");
    let html = String::from_utf8_lossy(&r.body).into_owned();
    let row = rows(&html).into_iter().nth(1).expect("one file");
    assert_eq!(row.href, "caf%E9%20%3Cb%3E.txt");
    assert_eq!(get_host(&s, "list.test", &format!("/bytes/{}", row.href)).text(), "latin-1 name");
    let j: serde_json::Value = serde_json::from_slice(&get_json(&s, "list.test", "/bytes/").body).unwrap();
    assert_eq!(j[0]["name"], "caf\u{fffd} <b>.txt");
}

#[test]
fn json_for_clients_that_ask_for_it() {
    let s = start("");
    evil_dir(&s);
    set_mtime(&s.docroot().join("list/plain.txt"), 1_000_000_000);
    let r = get_json(&s, "list.test", "/list/");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("vary"), Some("Accept"));
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("valid JSON");
    let list = v.as_array().expect("an array");
    let got: Vec<(&str, &str)> =
        list.iter().map(|e| (e["name"].as_str().unwrap(), e["type"].as_str().unwrap())).collect();
    assert_eq!(
        got,
        [
            ("sub dir", "dir"),
            ("100% sure.txt", "file"),
            (EVIL_TAG, "file"),
            (EVIL_SCRIPT, "file"),
            (EVIL_QUOTE, "file"),
            ("javascript:alert(1)", "file"),
            ("plain.txt", "file"),
            ("ünïcødé.txt", "file"),
        ]
    );
    for e in list {
        let meta = std::fs::metadata(s.docroot().join("list").join(e["name"].as_str().unwrap())).unwrap();
        assert_eq!(e["size"].as_u64(), Some(meta.len()), "{e}");
        let mtime = meta.modified().unwrap().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(e["mtime"].as_u64(), Some(mtime), "{e}");
        assert_eq!(e.as_object().unwrap().len(), 4, "name, type, size, mtime: {e}");
    }
    assert_eq!(list[6]["name"], "plain.txt");
    assert_eq!(list[6]["mtime"], 1_000_000_000);
    // A browser's Accept header gets HTML.
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = request(
        s.port,
        &format!("GET /list/ HTTP/1.1\r\nHost: list.test\r\nAccept: {browser}\r\nConnection: close\r\n\r\n"),
    );
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    // curl, as a script would use it.
    let url = format!("http://127.0.0.1:{}/list/sub%20dir/", s.port);
    let (code, out, err) = curl(&["-H", "Host: list.test", "-H", "Accept: application/json", &url]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "inner.txt");
    assert_eq!(v[0]["size"], 5);
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let s = start("dir-listing.show-readme = \"enable\"\n");
    evil_dir(&s);
    s.dir.write("www/list/README.txt", "read me");
    let get = get_host(&s, "list.test", "/list/");
    let raw_head = raw(s.port, b"HEAD /list/ HTTP/1.1\r\nHost: list.test\r\nConnection: close\r\n\r\n");
    let text = String::from_utf8_lossy(&raw_head);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after the head: {text}");
    let head = &parse_responses(&raw_head, true)[0];
    assert_eq!(head.header("content-length"), get.header("content-length"));
    assert_eq!(head.header("content-length"), Some(get.body.len().to_string().as_str()));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    // JSON too.
    let r = request(
        s.port,
        "HEAD /list/ HTTP/1.1\r\nHost: list.test\r\nAccept: application/json\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length"),
        Some(get_json(&s, "list.test", "/list/").body.len().to_string().as_str())
    );
}

#[test]
fn activation_per_site_and_the_index_file_first() {
    let s = start(
        r#"
$HTTP["host"] =~ "^old\." {
    server.dir-listing = "enable"
    dir-listing.hide-dotfiles = "disable"
} else $HTTP["host"] =~ "^off\." {
    dir-listing.activate = "disable"
}
"#,
    );
    evil_dir(&s);
    s.dir.write("www/withindex/index.html", "the index");
    s.dir.write("www/withindex/other.txt", "x");
    // Not enabled for this host: the core's 403.
    assert_eq!(get_host(&s, "other.test", "/list/").status, 403);
    assert_eq!(get_host(&s, "off.test", "/list/").status, 403);
    assert_eq!(get_host(&s, "list.test", "/list/").status, 200);
    // server.dir-listing is the older name; dotfiles shown when asked for.
    let r = get_host(&s, "old.test", "/list/");
    let shown = names(&rows_of(&r));
    assert!(shown.contains(&".hidden".to_string()) && shown.contains(&".config".to_string()), "{shown:?}");
    assert!(!shown.contains(&".".to_string()), "{shown:?}");
    // mod_indexfile runs first: a directory with an index file is not listed.
    assert_eq!(get_host(&s, "list.test", "/withindex/").text(), "the index");
    // A directory without the slash is redirected by the core, as before.
    assert_eq!(get_host(&s, "list.test", "/list").status, 301);
    // Only GET and HEAD are listings.
    let r = request(
        s.port,
        "POST /list/ HTTP/1.1\r\nHost: list.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_ne!(r.status, 200);
    // The root has no parent link.
    let root = rows_of(&get_host(&s, "list.test", "/"));
    assert!(!root.iter().any(|r| r.href == "../"), "{root:?}");
    assert!(names(&root).contains(&"list".to_string()));
}

#[test]
fn exclude_patterns() {
    let s = start(
        r#"
$HTTP["host"] == "list.test" {
    dir-listing.exclude = ( "\.bak$", "^tmp", "^(?!keep).*\.log$" )
}
"#,
    );
    for f in ["a.txt", "a.txt.bak", "tmpfile", "x-tmp", "keep.log", "drop.log"] {
        s.dir.write(&format!("www/ex/{f}"), "x");
    }
    let r = get_host(&s, "list.test", "/ex/");
    assert_eq!(names(&rows_of(&r)), ["..", "a.txt", "keep.log", "x-tmp"]);
    // Excluded from the JSON listing as well.
    let v: serde_json::Value = serde_json::from_slice(&get_json(&s, "list.test", "/ex/").body).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let f = Server::start_fail(&format!("{BASE}dir-listing.exclude = ( \"a(b\" )\n"), None);
    assert!(f.stderr.contains("featherd.conf:"), "{}", f.stderr);
    assert!(f.stderr.contains("dir-listing.exclude: invalid regex \"a(b\""), "{}", f.stderr);
}

#[test]
fn header_and_readme_files() {
    let s = start(
        r#"
$HTTP["host"] == "list.test" {
    dir-listing.show-readme = "enable"
    dir-listing.show-header = "enable"
}
$HTTP["host"] == "raw.test" {
    dir-listing.activate = "enable"
    dir-listing.show-readme = "enable"
    dir-listing.show-header = "HEAD.html"
    dir-listing.encode-readme = "disable"
    dir-listing.encode-header = "disable"
    dir-listing.hide-readme-file = "enable"
    dir-listing.hide-header-file = "enable"
}
$HTTP["host"] == "notes.test" {
    dir-listing.activate = "enable"
    dir-listing.show-readme = "NOTES.md"
}
"#,
    );
    s.dir.write("www/docs/README.txt", "<b>read & me</b>\n");
    s.dir.write("www/docs/HEADER.txt", "<i>head</i>\n");
    s.dir.write("www/docs/HEAD.html", "<p class=\"mine\">welcome</p>\n");
    s.dir.write("www/docs/NOTES.md", "# notes <3\n");
    s.dir.write("www/docs/file.txt", "x");
    s.dir.write("www/empty-readme/README.txt", "");
    // As text, escaped: the header before the heading, the readme after the table.
    let html = get_host(&s, "list.test", "/docs/").text();
    let header = html.find("<pre class=\"header\">&lt;i&gt;head&lt;/i&gt;\n</pre>").expect(&html);
    let heading = html.find("<h2>").unwrap();
    let table_end = html.find("</table>").unwrap();
    let readme = html.find("<pre class=\"readme\">&lt;b&gt;read &amp; me&lt;/b&gt;\n</pre>").expect(&html);
    assert!(header < heading && table_end < readme, "{html}");
    assert!(!html.contains("<b>read"), "{html}");
    // Still listed unless hidden.
    assert!(names(&rows(&html)).contains(&"README.txt".to_string()));
    // As HTML, when encoding is switched off; the files themselves hidden from the list.
    let html = get_host(&s, "raw.test", "/docs/").text();
    assert!(html.contains("<p class=\"mine\">welcome</p>"), "{html}");
    assert!(html.contains("<b>read & me</b>"), "{html}");
    let listed = names(&rows(&html));
    assert!(
        !listed.contains(&"README.txt".to_string()) && !listed.contains(&"HEAD.html".to_string()),
        "{listed:?}"
    );
    assert!(listed.contains(&"HEADER.txt".to_string()), "{listed:?}");
    let len: usize = get_host(&s, "raw.test", "/docs/").header("content-length").unwrap().parse().unwrap();
    assert_eq!(len, html.len());
    // Another file name.
    let html = get_host(&s, "notes.test", "/docs/").text();
    assert!(html.contains("<pre class=\"readme\"># notes &lt;3\n</pre>"), "{html}");
    // An empty readme shows nothing.
    let html = get_host(&s, "list.test", "/empty-readme/").text();
    assert!(!html.contains("class=\"readme\""), "{html}");
}

#[test]
fn layout_settings() {
    let s = start(
        r#"
$HTTP["host"] == "ext.test" {
    dir-listing.activate = "enable"
    dir-listing.external-css = "/style/list.css"
    dir-listing.external-js = "/style/list.js?v=1&x=2"
    dir-listing.set-footer = "Files of <a href=\"/\">the example</a>"
    dir-listing.encoding = "iso-8859-1"
} else $HTTP["host"] == "bare.test" {
    dir-listing.activate = "enable"
    dir-listing.auto-layout = "disable"
    dir-listing.show-header = "enable"
    dir-listing.encode-header = "disable"
} else $HTTP["host"] == "tagged.test" {
    dir-listing.activate = "enable"
    server.tag = "<Tag & Co>"
} else $HTTP["host"] == "untagged.test" {
    dir-listing.activate = "enable"
    server.tag = ""
}
"#,
    );
    s.dir.write("www/d/file.txt", "x");
    s.dir.write("www/d/HEADER.txt", "<html><body><h1>my own page</h1>\n");
    let r = get_host(&s, "ext.test", "/d/");
    assert_eq!(r.header("content-type"), Some("text/html; charset=iso-8859-1"));
    let html = r.text();
    assert!(html.contains("<link rel=\"stylesheet\" href=\"/style/list.css\">"), "{html}");
    assert!(!html.contains("<style>"));
    assert!(html.contains("<script src=\"/style/list.js?v=1&amp;x=2\"></script>"), "{html}");
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains("<meta charset=\"iso-8859-1\">"));
    assert!(html.contains("<div class=\"foot\">Files of <a href=\"/\">the example</a></div>"), "{html}");
    // Without auto-layout: only the listing (and the header file, as HTML).
    let html = get_host(&s, "bare.test", "/d/").text();
    assert!(html.starts_with("<html><body><h1>my own page</h1>\n<h2>Index of "), "{html}");
    assert!(
        !html.contains("<!DOCTYPE") && !html.contains("<script") && !html.contains("class=\"foot\""),
        "{html}"
    );
    assert!(html.trim_end().ends_with("</div>"), "{html}");
    // The footer defaults to server.tag, as text.
    let html = get_host(&s, "tagged.test", "/d/").text();
    assert!(html.contains("<div class=\"foot\">&lt;Tag &amp; Co&gt;</div>"), "{html}");
    let html = get_host(&s, "untagged.test", "/d/").text();
    assert!(!html.contains("class=\"foot\""), "{html}");
}

#[test]
fn sorted_by_the_query_or_left_to_the_script() {
    let s = start(
        r#"
$HTTP["host"] == "unsorted.test" {
    dir-listing.activate = "enable"
    dir-listing.sort = "disable"
}
"#,
    );
    let d = s.docroot().join("s");
    for (name, size, mtime) in
        [("b.txt", 20, 300), ("a.png", 30, 100), ("c.txt", 10, 200), ("file10", 1, 50), ("file9", 2, 60)]
    {
        s.dir.write(&format!("www/s/{name}"), "x".repeat(size));
        set_mtime(&d.join(name), mtime);
    }
    s.dir.write("www/s/zdir/x", "x");
    s.dir.write("www/s/adir/x", "x");
    set_mtime(&d.join("adir"), 400);
    set_mtime(&d.join("zdir"), 500);
    let order = |q: &str| names(&rows_of(&get_host(&s, "list.test", &format!("/s/{q}"))))[1..].to_vec();
    assert_eq!(order(""), ["adir", "zdir", "a.png", "b.txt", "c.txt", "file9", "file10"]);
    assert_eq!(order("?C=N&O=D"), ["zdir", "adir", "file10", "file9", "c.txt", "b.txt", "a.png"]);
    // Descending reverses the directories too (they have no size to sort by: by name).
    assert_eq!(order("?C=S&O=D"), ["zdir", "adir", "a.png", "b.txt", "c.txt", "file9", "file10"]);
    assert_eq!(order("?C=S&O=A"), ["adir", "zdir", "file10", "file9", "c.txt", "b.txt", "a.png"]);
    assert_eq!(order("?C=M;O=A"), ["adir", "zdir", "file10", "file9", "a.png", "c.txt", "b.txt"]);
    // By type: application/octet-stream, image/png, text/plain.
    assert_eq!(order("?C=T"), ["adir", "zdir", "file9", "file10", "a.png", "b.txt", "c.txt"]);
    // The column headers link to the other order of the current column.
    let html = get_host(&s, "list.test", "/s/?C=S&O=A").text();
    assert!(
        html.contains("<th class=\"s\" aria-sort=\"ascending\"><a href=\"?C=S&amp;O=D\">Size</a></th>"),
        "{html}"
    );
    // JSON follows the query too.
    let v: serde_json::Value =
        serde_json::from_slice(&get_json(&s, "list.test", "/s/?C=S&O=D").body).unwrap();
    assert_eq!(v[2]["name"], "a.png");
    // dir-listing.sort = "disable": directories first, then as the file system lists them.
    let got = names(&rows_of(&get_host(&s, "unsorted.test", "/s/?C=S&O=D")))[1..].to_vec();
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for e in std::fs::read_dir(&d).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            dirs.push(n);
        } else {
            files.push(n);
        }
    }
    dirs.extend(files);
    assert_eq!(got, dirs);
    let html = get_host(&s, "unsorted.test", "/s/").text();
    assert!(!html.contains("\" aria-sort=\""), "no column marked as sorted: the script sorts");
}

#[test]
fn a_large_directory_is_read_in_turns() {
    let s = start("");
    let d = s.docroot().join("big");
    std::fs::create_dir_all(&d).unwrap();
    for i in 0..3000 {
        std::fs::write(d.join(format!("f{i:04}")), b"").unwrap();
    }
    let r = get_json(&s, "list.test", "/big/");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 3000);
    assert_eq!((list[0]["name"].as_str(), list[2999]["name"].as_str()), (Some("f0000"), Some("f2999")));
    let r = get_host(&s, "list.test", "/big/");
    assert_eq!(rows_of(&r).len(), 3001);
    // Keep-alive: two listings on one connection.
    let data = raw(
        s.port,
        b"GET /big/ HTTP/1.1\r\nHost: list.test\r\nAccept: application/json\r\n\r\nGET /list/ HTTP/1.1\r\nHost: list.test\r\nConnection: close\r\n\r\n",
    );
    let both = parse_responses(&data, false);
    assert_eq!(both.len(), 2);
    assert_eq!(both[0].status, 200);
    assert_eq!(both[1].status, 404);
}

#[test]
fn unreadable_directory_is_403() {
    // Root reads every directory: nothing to test then.
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() == "0" {
        eprintln!("skipped: running as root, which can read any directory");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let s = start("");
    s.dir.write("www/locked/x", "x");
    let p = s.docroot().join("locked");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o311)).unwrap();
    assert_eq!(get_host(&s, "list.test", "/locked/").status, 403);
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn bad_settings_are_refused_with_file_and_line() {
    for (setting, want) in [
        ("dir-listing.activate = \"maybe\"", "dir-listing.activate"),
        ("dir-listing.encoding = \"utf-8\\\"><script>\"", "dir-listing.encoding: expected a charset name"),
        ("dir-listing.cache = ( \"max-age\" => 10 )", "dir-listing.cache: must include \"path\""),
        ("dir-listing.show-readme = ( \"a\" )", "dir-listing.show-readme"),
    ] {
        let f = Server::start_fail(&format!("{BASE}{setting}\n"), None);
        assert!(f.stderr.contains("featherd.conf:") && f.stderr.contains(want), "{setting}: {}", f.stderr);
    }
    // lighttpd's cache setting is accepted (listings are built each time).
    let s = Server::start(&format!("{BASE}dir-listing.activate = \"enable\"\ndir-listing.cache = ( \"path\" => \"@DIR@\", \"max-age\" => 5 )\n"));
    s.wait_log("dir-listing.cache is accepted but listings are not cached");
    assert_eq!(s.get("/").status, 200);
}

#[test]
fn conf_d_snippet_loads() {
    let snippet = workspace_root().join("conf.d/dirlisting.conf");
    let s = Server::start(&format!("{BASE}\ninclude \"{}\"\n", snippet.display()));
    s.dir.write("www/pub/a.txt", "a");
    let r = s.get("/pub/");
    assert_eq!(names(&rows_of(&r)), ["..", "a.txt"]);
}
