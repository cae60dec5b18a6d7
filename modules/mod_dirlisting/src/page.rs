//! The listing as bytes: ordering of entries, the HTML page and the JSON array, and the
//! small helpers they need (escaping, human sizes, dates, the Accept header). Pure functions
//! over plain data, so every case is unit-tested without a server.
//!
//! Names are bytes, as the file system gives them: in HTML they are written as they are
//! (escaped), so a page in another `dir-listing.encoding` shows them right; in links they are
//! percent-encoded byte by byte; in JSON (always UTF-8) a name that is not UTF-8 has its bad
//! bytes replaced by U+FFFD.

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use std::cmp::Ordering;

/// One directory entry (symbolic links followed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    pub is_dir: bool,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Content type from `mimetype.assign` (files only; empty for directories).
    pub mime: Vec<u8>,
}

/// The column a listing is ordered by (Apache's and lighttpd's `?C=` letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Name,
    Modified,
    Size,
    Type,
}

impl Column {
    fn letter(self) -> char {
        match self {
            Column::Name => 'N',
            Column::Modified => 'M',
            Column::Size => 'S',
            Column::Type => 'T',
        }
    }
}

/// How entries are ordered. Directories always come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    pub column: Column,
    pub descending: bool,
}

impl Default for Order {
    fn default() -> Self {
        Order { column: Column::Name, descending: false }
    }
}

impl Order {
    /// The order a query string asks for: `C=N|M|S|T` (`D` also means type) and `O=A|D`,
    /// separated by `&` or `;`. Anything else keeps the default (by name, ascending).
    pub fn from_query(query: &[u8]) -> Order {
        let mut o = Order::default();
        for pair in query.split(|&c| c == b'&' || c == b';') {
            match pair {
                b"C=N" => o.column = Column::Name,
                b"C=M" => o.column = Column::Modified,
                b"C=S" => o.column = Column::Size,
                b"C=T" | b"C=D" => o.column = Column::Type,
                b"O=A" => o.descending = false,
                b"O=D" => o.descending = true,
                _ => {}
            }
        }
        o
    }
}

/// Natural, case-insensitive order of names ("file2" before "file10", "b" before "C"),
/// bytes as the tie-break so that the order is total.
pub fn natural_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let si = i;
            let sj = j;
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let na = trim_zeros(&a[si..i]);
            let nb = trim_zeros(&b[sj..j]);
            let c = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
            if c != Ordering::Equal {
                return c;
            }
        } else {
            let c = a[i].to_ascii_lowercase().cmp(&b[j].to_ascii_lowercase());
            if c != Ordering::Equal {
                return c;
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j)).then_with(|| a.cmp(b))
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let n = d.iter().take_while(|&&c| c == b'0').count().min(d.len().saturating_sub(1));
    &d[n..]
}

/// Order `entries`: directories first, then by the column (ties by name), reversed within
/// each group when descending.
pub fn sort_entries(entries: &mut [Entry], order: Order) {
    entries.sort_by(|x, y| {
        y.is_dir.cmp(&x.is_dir).then_with(|| {
            let c = match order.column {
                Column::Name => Ordering::Equal,
                Column::Modified => x.mtime.cmp(&y.mtime),
                // A directory's size says nothing to a reader (the page shows "-").
                Column::Size if x.is_dir => Ordering::Equal,
                Column::Size => x.size.cmp(&y.size),
                Column::Type => x.mime.cmp(&y.mime),
            }
            .then_with(|| natural_cmp(&x.name, &y.name));
            if order.descending {
                c.reverse()
            } else {
                c
            }
        })
    });
}

/// Escape text for HTML content and attribute values. Control characters other than tab,
/// line feed and carriage return become character references (lighttpd does the same).
pub fn escape_html(out: &mut Vec<u8>, text: &[u8]) {
    for &c in text {
        match c {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\'' => out.extend_from_slice(b"&#39;"),
            b'\t' | b'\n' | b'\r' => out.push(c),
            0..=0x1f | 0x7f => out.extend_from_slice(format!("&#x{c:x};").as_bytes()),
            _ => out.push(c),
        }
    }
}

/// Everything but RFC 3986's unreserved characters: a name becomes one relative path segment
/// whatever it holds (`:` too, so `javascript:x` stays a file name, not a scheme).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A relative link to `name`: percent-encoded, so that it is one path segment of the current
/// directory whatever the name holds; a directory gets its trailing slash.
pub fn href(name: &[u8], is_dir: bool) -> String {
    let mut h = percent_encode(name, SEGMENT).to_string();
    if is_dir {
        h.push('/');
    }
    h
}

/// `1.2 KiB`, `34 MiB`, `512 B`: one decimal below ten units, whole units above.
pub fn human_size(n: u64) -> String {
    if n < 1024 {
        return format!("{n} B");
    }
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{:.1} {}", (v * 10.0).floor() / 10.0, UNITS[u])
    } else {
        format!("{} {}", v.floor(), UNITS[u])
    }
}

/// (year, month, day, hour, minute, second) in UTC for seconds since the epoch.
pub fn utc(t: i64) -> (i64, u32, u32, u32, u32, u32) {
    let c = featherd_mod_api::util::Civil::from_unix(t);
    (c.year, c.month, c.day, c.hour, c.min, c.sec)
}

/// `2024-05-01T13:45:07Z`
pub fn rfc3339(t: i64) -> String {
    let (y, mo, d, h, mi, s) = utc(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2024-05-01 13:45` (UTC; the page's script shows it in the reader's time zone).
pub fn short_date(t: i64) -> String {
    let (y, mo, d, h, mi, _) = utc(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}")
}

/// Whether the client asks for JSON: `application/json` listed with a quality above zero
/// and not below that of `text/html` (an explicit entry for each; wildcards decide nothing,
/// so browsers, which send `text/html` and `*/*`, get HTML).
pub fn wants_json(accept: &[u8]) -> bool {
    let mut json: Option<f32> = None;
    let mut html: Option<f32> = None;
    for item in accept.split(|&c| c == b',') {
        let mut parts = item.split(|&c| c == b';');
        let media = parts.next().unwrap_or_default().trim_ascii();
        let mut q = 1.0f32;
        for p in parts {
            let p = p.trim_ascii();
            if let Some(v) = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) {
                q = std::str::from_utf8(v).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0.0);
            }
        }
        if media.eq_ignore_ascii_case(b"application/json") {
            json = Some(json.map_or(q, |j| j.max(q)));
        } else if media.eq_ignore_ascii_case(b"text/html") {
            html = Some(html.map_or(q, |h| h.max(q)));
        }
    }
    match (json, html) {
        (Some(j), None) => j > 0.0,
        (Some(j), Some(h)) => j > 0.0 && j >= h,
        _ => false,
    }
}

/// The JSON listing: an array of `{"name", "type": "dir"|"file", "size", "mtime"}`, one
/// entry per line, keys in that order.
pub fn json(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + entries.len() * 80);
    out.push(b'[');
    for (i, e) in entries.iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"\n{\"name\":" } else { b",\n{\"name\":" });
        // serde_json escapes the name (quotes, backslashes, control characters).
        let name = serde_json::Value::String(String::from_utf8_lossy(&e.name).into_owned());
        out.extend_from_slice(name.to_string().as_bytes());
        let kind = if e.is_dir { "dir" } else { "file" };
        out.extend_from_slice(
            format!(",\"type\":\"{kind}\",\"size\":{},\"mtime\":{}}}", e.size, e.mtime).as_bytes(),
        );
    }
    out.extend_from_slice(if entries.is_empty() { b"]\n" } else { b"\n]\n" });
    out
}

/// What the footer shows.
#[derive(Clone, Copy, Debug)]
pub enum Footer<'a> {
    /// `dir-listing.set-footer`: HTML, written as configured (lighttpd's behaviour).
    Html(&'a str),
    /// `server.tag`: plain text, escaped.
    Text(&'a [u8]),
    None,
}

/// Settings of one page.
pub struct Page<'a> {
    /// The URL path of the directory (ends with '/').
    pub path: &'a [u8],
    /// `dir-listing.encoding`: the charset named in the page.
    pub encoding: Option<&'a str>,
    pub external_css: Option<&'a str>,
    pub external_js: Option<&'a str>,
    pub auto_layout: bool,
    pub footer: Footer<'a>,
    /// The order the entries are in, when the server sorted them (None: as read).
    pub order: Option<Order>,
}

/// The page in three parts, so that the header file goes between the first two and the
/// readme between the last two: (document head up to `<body>`, heading and table, footer
/// and script up to `</html>`). Without auto-layout the first and last are empty.
pub struct Html {
    pub head: Vec<u8>,
    pub listing: Vec<u8>,
    pub tail: Vec<u8>,
}

pub fn html(page: &Page, entries: &[Entry]) -> Html {
    Html {
        head: if page.auto_layout { html_head(page) } else { Vec::new() },
        listing: html_listing(page, entries),
        tail: if page.auto_layout { html_tail(page) } else { Vec::new() },
    }
}

const STYLE: &str = include_str!("listing.css");
const SCRIPT: &str = include_str!("listing.js");

fn html_head(page: &Page) -> Vec<u8> {
    let mut o = Vec::with_capacity(4096);
    o.extend_from_slice(b"<!DOCTYPE html>\n<html>\n<head>\n");
    if let Some(enc) = page.encoding {
        o.extend_from_slice(b"<meta charset=\"");
        escape_html(&mut o, enc.as_bytes());
        o.extend_from_slice(b"\">\n");
    }
    o.extend_from_slice(
        b"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Index of ",
    );
    escape_html(&mut o, page.path);
    o.extend_from_slice(b"</title>\n");
    match page.external_css {
        Some(css) => {
            o.extend_from_slice(b"<link rel=\"stylesheet\" href=\"");
            escape_html(&mut o, css.as_bytes());
            o.extend_from_slice(b"\">\n");
        }
        None => {
            o.extend_from_slice(b"<style>\n");
            o.extend_from_slice(STYLE.as_bytes());
            o.extend_from_slice(b"</style>\n");
        }
    }
    o.extend_from_slice(b"</head>\n<body>\n");
    o
}

/// The heading: "Index of " and the path, each directory of it a link to that directory.
fn heading(o: &mut Vec<u8>, path: &[u8]) {
    o.extend_from_slice(b"<h2>Index of ");
    let segments: Vec<&[u8]> = path.split(|&c| c == b'/').filter(|s| !s.is_empty()).collect();
    let n = segments.len();
    let up = |o: &mut Vec<u8>, levels: usize| {
        if levels == 0 {
            o.extend_from_slice(b"./");
        } else {
            for _ in 0..levels {
                o.extend_from_slice(b"../");
            }
        }
    };
    o.extend_from_slice(b"<a href=\"");
    up(o, n);
    o.extend_from_slice(b"\">/</a>");
    for (i, seg) in segments.iter().enumerate() {
        o.extend_from_slice(b"<a href=\"");
        up(o, n - 1 - i);
        o.extend_from_slice(b"\">");
        escape_html(o, seg);
        o.extend_from_slice(b"/</a>");
    }
    o.extend_from_slice(b"</h2>\n");
}

fn html_listing(page: &Page, entries: &[Entry]) -> Vec<u8> {
    let mut o = Vec::with_capacity(1024 + entries.len() * 320);
    heading(&mut o, page.path);
    o.extend_from_slice(b"<div class=\"list\">\n<table>\n<thead><tr>");
    for (col, class, title) in [
        (Column::Name, "n", "Name"),
        (Column::Modified, "m", "Last Modified"),
        (Column::Size, "s", "Size"),
        (Column::Type, "t", "Type"),
    ] {
        let current = page.order.filter(|o| o.column == col);
        o.extend_from_slice(format!("<th class=\"{class}\"").as_bytes());
        if let Some(cur) = current {
            let s = if cur.descending { "descending" } else { "ascending" };
            o.extend_from_slice(format!(" aria-sort=\"{s}\"").as_bytes());
        }
        // The link sorts by this column; on the current column it reverses the order.
        let next_desc = current.is_some_and(|c| !c.descending);
        let dir = if next_desc { 'D' } else { 'A' };
        o.extend_from_slice(
            format!("><a href=\"?C={}&amp;O={dir}\">{title}</a></th>", col.letter()).as_bytes(),
        );
    }
    o.extend_from_slice(b"</tr></thead>\n<tbody>\n");
    if page.path != b"/" {
        o.extend_from_slice(
            b"<tr class=\"d p\"><td class=\"n\"><a href=\"../\">..</a>/</td>\
              <td class=\"m\"></td><td class=\"s\">-</td><td class=\"t\">Directory</td></tr>\n",
        );
    }
    for e in entries {
        o.extend_from_slice(if e.is_dir { &b"<tr class=\"d\">"[..] } else { &b"<tr>"[..] });
        o.extend_from_slice(b"<td class=\"n\"><a href=\"");
        o.extend_from_slice(href(&e.name, e.is_dir).as_bytes());
        o.extend_from_slice(b"\">");
        escape_html(&mut o, &e.name);
        o.extend_from_slice(if e.is_dir { &b"</a>/</td>"[..] } else { &b"</a></td>"[..] });
        o.extend_from_slice(
            format!(
                "<td class=\"m\" data-v=\"{}\"><time datetime=\"{}\">{}</time></td>",
                e.mtime,
                rfc3339(e.mtime),
                short_date(e.mtime)
            )
            .as_bytes(),
        );
        if e.is_dir {
            o.extend_from_slice(b"<td class=\"s\" data-v=\"-1\">-</td><td class=\"t\">Directory</td></tr>\n");
        } else {
            o.extend_from_slice(
                format!(
                    "<td class=\"s\" data-v=\"{}\" title=\"{} bytes\">{}</td><td class=\"t\">",
                    e.size,
                    e.size,
                    human_size(e.size)
                )
                .as_bytes(),
            );
            escape_html(&mut o, &e.mime);
            o.extend_from_slice(b"</td></tr>\n");
        }
    }
    o.extend_from_slice(b"</tbody>\n</table>\n</div>\n");
    o
}

fn html_tail(page: &Page) -> Vec<u8> {
    let mut o = Vec::with_capacity(4096);
    match page.footer {
        Footer::Html(f) => {
            o.extend_from_slice(b"<div class=\"foot\">");
            o.extend_from_slice(f.as_bytes());
            o.extend_from_slice(b"</div>\n");
        }
        Footer::Text(t) => {
            o.extend_from_slice(b"<div class=\"foot\">");
            escape_html(&mut o, t);
            o.extend_from_slice(b"</div>\n");
        }
        Footer::None => {}
    }
    match page.external_js {
        Some(js) => {
            o.extend_from_slice(b"<script src=\"");
            escape_html(&mut o, js.as_bytes());
            o.extend_from_slice(b"\"></script>\n");
        }
        None => {
            o.extend_from_slice(b"<script>\n");
            o.extend_from_slice(SCRIPT.as_bytes());
            o.extend_from_slice(b"</script>\n");
        }
    }
    o.extend_from_slice(b"</body>\n</html>\n");
    o
}

/// A header or readme file shown as text: `<pre class="CLASS">` with the content escaped.
pub fn pre(class: &str, text: &[u8]) -> Vec<u8> {
    let mut o = Vec::with_capacity(text.len() + 64);
    o.extend_from_slice(format!("<pre class=\"{class}\">").as_bytes());
    escape_html(&mut o, text);
    o.extend_from_slice(b"</pre>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, is_dir: bool, size: u64, mtime: i64, mime: &str) -> Entry {
        Entry { name: name.as_bytes().to_vec(), is_dir, size, mtime, mime: mime.as_bytes().to_vec() }
    }

    fn names(v: &[Entry]) -> Vec<String> {
        v.iter().map(|e| String::from_utf8_lossy(&e.name).into_owned()).collect()
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["file10", "File2", "file1", "b", "A", "a", "file02", "x9y", "x10y"];
        v.sort_by(|a, b| natural_cmp(a.as_bytes(), b.as_bytes()));
        assert_eq!(v, ["A", "a", "b", "file1", "File2", "file02", "file10", "x9y", "x10y"]);
    }

    #[test]
    fn directories_first_in_every_order() {
        let list = vec![
            e("b.txt", false, 10, 300, "text/plain"),
            e("zdir", true, 4096, 100, ""),
            e("a.png", false, 30, 100, "image/png"),
            e("adir", true, 4096, 200, ""),
            e("c.txt", false, 20, 200, "text/plain"),
        ];
        let cases: &[(&str, &[&str])] = &[
            ("", &["adir", "zdir", "a.png", "b.txt", "c.txt"]),
            ("C=N&O=D", &["zdir", "adir", "c.txt", "b.txt", "a.png"]),
            ("C=M&O=A", &["zdir", "adir", "a.png", "c.txt", "b.txt"]),
            ("C=M;O=D", &["adir", "zdir", "b.txt", "c.txt", "a.png"]),
            ("C=S&O=A", &["adir", "zdir", "b.txt", "c.txt", "a.png"]),
            ("C=S&O=D", &["zdir", "adir", "a.png", "c.txt", "b.txt"]),
            ("C=T", &["adir", "zdir", "a.png", "b.txt", "c.txt"]),
            ("C=X&O=Q&junk", &["adir", "zdir", "a.png", "b.txt", "c.txt"]),
        ];
        for (q, want) in cases {
            let mut v = list.clone();
            sort_entries(&mut v, Order::from_query(q.as_bytes()));
            assert_eq!(names(&v), *want, "query {q:?}");
        }
    }

    #[test]
    fn escaping() {
        let mut o = Vec::new();
        escape_html(&mut o, b"<script>alert(1)</script>&\"'\x01\x7f\t");
        assert_eq!(o, b"&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;&#x1;&#x7f;\t");
        assert_eq!(href(b"a\"b&c.txt", false), "a%22b%26c.txt");
        assert_eq!(
            href(b"<script>alert(1)</script>.html", false),
            "%3Cscript%3Ealert%281%29%3C%2Fscript%3E.html"
        );
        assert_eq!(href(b"javascript:alert(1)", false), "javascript%3Aalert%281%29");
        assert_eq!(href(b"sp ace\xff", true), "sp%20ace%FF/");
        assert_eq!(href(b"a-b_c.d~e", false), "a-b_c.d~e");
    }

    #[test]
    fn sizes() {
        let cases: &[(u64, &str)] = &[
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (10 * 1024 - 1, "9.9 KiB"),
            (10 * 1024, "10 KiB"),
            (1024 * 1024 - 1, "1023 KiB"),
            (5 * 1024 * 1024 * 1024, "5.0 GiB"),
            (u64::MAX, "16 EiB"),
        ];
        for (n, want) in cases {
            assert_eq!(human_size(*n), *want, "{n}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(short_date(4_102_444_799), "2099-12-31 23:59");
    }

    #[test]
    fn accept_table() {
        let cases: &[(&str, bool)] = &[
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/json;q=0", false),
            ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", false),
            ("*/*", false),
            ("", false),
            ("text/html;q=0.5, application/json", true),
            ("application/json;q=0.5, text/html", false),
            ("application/json, text/html", true),
            ("application/json, */*;q=0.1", true),
            ("application/jsonx", false),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_json(accept.as_bytes()), *want, "{accept:?}");
        }
    }

    #[test]
    fn json_listing() {
        let v = vec![
            e("d", true, 4096, 5, ""),
            Entry { name: b"a\"b\xff".to_vec(), ..e("", false, 3, 7, "text/plain") },
        ];
        let parsed: serde_json::Value = serde_json::from_slice(&json(&v)).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!([
                {"name": "d", "type": "dir", "size": 4096, "mtime": 5},
                {"name": "a\"b\u{fffd}", "type": "file", "size": 3, "mtime": 7},
            ])
        );
        assert_eq!(json(&[]), b"[]\n");
        let text = String::from_utf8(json(&v)).expect("utf8");
        assert_eq!(
            text,
            "[\n{\"name\":\"d\",\"type\":\"dir\",\"size\":4096,\"mtime\":5},\n\
             {\"name\":\"a\\\"b\u{fffd}\",\"type\":\"file\",\"size\":3,\"mtime\":7}\n]\n"
        );
        let ctl = Entry { name: b"new\nline\\".to_vec(), ..v[0].clone() };
        let parsed: serde_json::Value = serde_json::from_slice(&json(&[ctl])).expect("valid JSON");
        assert_eq!(parsed[0]["name"], "new\nline\\");
    }

    fn page<'a>(path: &'a [u8], order: Option<Order>) -> Page<'a> {
        Page {
            path,
            encoding: Some("utf-8"),
            external_css: None,
            external_js: None,
            auto_layout: true,
            footer: Footer::Text(b"featherd/<test>"),
            order,
        }
    }

    #[test]
    fn html_escapes_names_and_links() {
        let v = vec![e("<b>&dir", true, 0, 0, ""), e("a\"b&c.txt", false, 1, 0, "text/plain")];
        let h = html(&page(b"/x<y>/", Some(Order::default())), &v);
        let listing = String::from_utf8(h.listing).expect("utf8");
        assert!(listing.contains("<a href=\"%3Cb%3E%26dir/\">&lt;b&gt;&amp;dir</a>/"), "{listing}");
        assert!(listing.contains("<a href=\"a%22b%26c.txt\">a&quot;b&amp;c.txt</a>"), "{listing}");
        assert!(
            listing.contains("<h2>Index of <a href=\"../\">/</a><a href=\"./\">x&lt;y&gt;/</a></h2>"),
            "{listing}"
        );
        assert!(listing
            .contains("<th class=\"n\" aria-sort=\"ascending\"><a href=\"?C=N&amp;O=D\">Name</a></th>"));
        assert!(listing.contains("<th class=\"m\"><a href=\"?C=M&amp;O=A\">"));
        assert!(listing.contains("<a href=\"../\">..</a>/"), "parent link");
        let head = String::from_utf8(h.head).expect("utf8");
        assert!(head.contains("<title>Index of /x&lt;y&gt;/</title>"));
        assert!(head.contains("<meta charset=\"utf-8\">") && head.contains("<style>"));
        let tail = String::from_utf8(h.tail).expect("utf8");
        assert!(tail.contains("<div class=\"foot\">featherd/&lt;test&gt;</div>"));
        assert!(tail.contains("<script>") && tail.ends_with("</html>\n"));
    }

    #[test]
    fn html_root_has_no_parent_and_layout_can_be_off() {
        let mut p = page(b"/", None);
        p.auto_layout = false;
        let h = html(&p, &[]);
        assert!(h.head.is_empty() && h.tail.is_empty());
        let listing = String::from_utf8(h.listing).expect("utf8");
        assert!(!listing.contains("href=\"../\""), "{listing}");
        assert!(!listing.contains("aria-sort"), "not sorted by the server");
        assert!(listing.starts_with("<h2>Index of <a href=\"./\">/</a></h2>"), "{listing}");
    }

    #[test]
    fn external_files_and_footer_html() {
        let mut p = page(b"/a/b/", None);
        p.external_css = Some("/s.css?a=1&b=\"2\"");
        p.external_js = Some("/s.js");
        p.footer = Footer::Html("<em>hi</em>");
        p.encoding = None;
        let h = html(&p, &[]);
        let head = String::from_utf8(h.head).expect("utf8");
        assert!(head.contains("<link rel=\"stylesheet\" href=\"/s.css?a=1&amp;b=&quot;2&quot;\">"));
        assert!(!head.contains("<style>") && !head.contains("charset"));
        let tail = String::from_utf8(h.tail).expect("utf8");
        assert!(tail.contains("<script src=\"/s.js\"></script>") && !tail.contains("<script>\n"));
        assert!(tail.contains("<div class=\"foot\"><em>hi</em></div>"));
        let listing = String::from_utf8(h.listing).expect("utf8");
        assert!(
            listing.contains("<a href=\"../../\">/</a><a href=\"../\">a/</a><a href=\"./\">b/</a>"),
            "{listing}"
        );
    }

    #[test]
    fn pre_escapes() {
        assert_eq!(pre("readme", b"<i>x</i>"), b"<pre class=\"readme\">&lt;i&gt;x&lt;/i&gt;</pre>\n");
    }
}
