//! mod_status end to end: the real server with two workers, real clients over 127.0.0.1, real
//! backends (php-cgi over FastCGI, Python CGI scripts). The pages are served only at their URLs
//! and inside the conditions that set them; `?auto` and `?json` count exactly over both
//! workers and agree; connections held mid-request show in their states; client text is
//! escaped; the configuration page lists the modules; the statistics page shows FastCGI
//! backend counters moving; totals survive a graceful restart.

use featherd_e2e::*;
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn conf(extra: &str) -> String {
    format!("{BASE}\nserver.modules = ( \"mod_status\", \"mod_staticfile\" )\nmimetype.assign = ( \".txt\" => \"text/plain\" )\n{extra}\n")
}

fn get_host(port: u16, path: &str, host: &str) -> Response {
    request(port, &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s
}

/// Read one response (head and a Content-Length body) from a keep-alive connection.
fn read_one(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("content-length"))
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                assert_eq!(got.len(), end + 4 + len, "more than one response");
                return got;
            }
        }
        let n = s.read(&mut buf).expect("read a response");
        assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

/// GET `path` on a kept connection: the request's length, the response's length on the
/// wire (head and body), and the response.
fn keep_get(s: &mut TcpStream, path: &str) -> (usize, usize, Response) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let raw = read_one(s);
    (req.len(), raw.len(), parse_responses(&raw, false).remove(0))
}

/// `?auto` as a map of its fields.
fn fields(text: &str) -> HashMap<String, String> {
    text.lines().filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn json(r: &Response) -> serde_json::Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", r.text()))
}

#[test]
fn pages_only_at_their_urls_and_inside_their_conditions() {
    let s = Server::start(&conf(
        r#"
$HTTP["host"] == "status.local" {
    status.status-url = "/server-status"
}
$HTTP["host"] == "nosort.local" {
    status.status-url = "/server-status"
    status.enable-sort = "disable"
}
$HTTP["remoteip"] == "127.0.0.2" {
    status.config-url = "/server-config"
}
"#,
    ));
    assert_eq!(get_host(s.port, "/server-status", "www.local").status, 404);
    assert_eq!(get_host(s.port, "/server-status/", "status.local").status, 404);
    assert_eq!(get_host(s.port, "/server-statusx", "status.local").status, 404);
    assert_eq!(get_host(s.port, "/Server-Status", "status.local").status, 404);
    assert_eq!(get_host(s.port, "/server-config", "status.local").status, 404);
    std::fs::write(s.docroot().join("server-status"), "a plain file\n").unwrap();

    let r = get_host(s.port, "/server-status", "status.local");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    let t = r.text();
    assert!(t.contains("<h1>Server-Status (featherd/"), "{t}");
    assert!(t.contains("<script>") && t.contains("class=\"sortable\""), "sorting is on by default");
    // Elsewhere the URL is an ordinary path: the file (404 above, before it existed).
    assert_eq!(get_host(s.port, "/server-status", "www.local").text(), "a plain file\n");
    let plain = get_host(s.port, "/server-status", "nosort.local").text();
    assert!(plain.contains("<h1>Server-Status") && !plain.contains("<script>"), "{plain}");
    // HEAD gets the head only.
    let h =
        request(s.port, "HEAD /server-status HTTP/1.1\r\nHost: status.local\r\nConnection: close\r\n\r\n");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());

    // The configuration page only for clients from 127.0.0.2 (curl binds there).
    let url = format!("http://127.0.0.1:{}/server-config", s.port);
    let (code, out, err) = curl(&["--interface", "127.0.0.2", "-w", "\n%{http_code}", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("\n200") && out.contains("Loaded Modules"), "{out}");
    let (_, out, _) = curl(&["-w", "\n%{http_code}", &url]);
    assert!(out.ends_with("\n404"), "{out}");
}

#[test]
fn auto_and_json_count_exactly_over_two_workers() {
    let s = Server::start(&conf("server.max-connections = 100\nstatus.status-url = \"/server-status\""));
    std::fs::write(s.docroot().join("a.txt"), "some text for the counters\n").unwrap();
    let (mut sent, mut received) = (0usize, 0usize);
    // Eight kept connections, one request each, left open (idle: keep-alive).
    let mut kept = Vec::new();
    for _ in 0..8 {
        let mut c = connect(s.port);
        let (n, len, r) = keep_get(&mut c, "/a.txt");
        assert_eq!(r.status, 200);
        sent += n;
        received += len;
        kept.push(c);
    }
    // Twenty requests on connections of their own (read to the end: the server closed it).
    for _ in 0..20 {
        let req = "GET /a.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let out = raw(s.port, req.as_bytes());
        assert!(out.starts_with(b"HTTP/1.1 200 OK"));
        sent += req.len();
        received += out.len();
    }

    let mut st = connect(s.port);
    let (n_auto, auto_len, auto) = keep_get(&mut st, "/server-status?auto");
    assert_eq!(auto.status, 200);
    assert_eq!(auto.header("Content-Type"), Some("text/plain"));
    let text = auto.text();
    let f = fields(&text);
    let keys: Vec<&str> = text.lines().filter_map(|l| l.split(": ").next()).collect();
    assert_eq!(
        keys,
        ["Total Accesses", "Total kBytes", "Uptime", "BusyServers", "IdleServers", "Scoreboard"]
    );
    assert_eq!(f["Total Accesses"], "28", "{text}");
    assert_eq!(f["Total kBytes"], (received / 1024).to_string(), "{text}");
    assert!(f["Uptime"].parse::<u64>().is_ok(), "{text}");
    // The eight idle connections and this one, handling its request.
    assert_eq!(f["BusyServers"], "9", "{text}");
    assert_eq!(f["IdleServers"], "91", "{text}");
    assert_eq!(f["Scoreboard"], format!("kkkkkkkkh{}", "_".repeat(91)), "{text}");

    // The same figures as JSON, asked on the same connection: one request (the ?auto) more.
    let (n_json, _, j) = keep_get(&mut st, "/server-status?json");
    assert_eq!(j.header("Content-Type"), Some("application/json"));
    let v = json(&j);
    assert_eq!(v["RequestsTotal"], 29);
    assert_eq!(v["BytesOut"], (received + auto_len) as u64);
    assert_eq!(v["TrafficTotal"], ((received + auto_len) / 1024) as u64);
    // Every request head, but not yet this one's: a request's bytes are added when it ends
    // (or once a second while it runs).
    assert_eq!(v["BytesIn"], (sent + n_auto) as u64);
    let _ = n_json;
    assert!(v["Uptime"].as_u64().unwrap() >= f["Uptime"].parse::<u64>().unwrap());
    assert_eq!(v["BusyServers"], 9);
    assert_eq!(v["IdleServers"], 91);
    assert_eq!(v["Workers"], 2);
    assert!(v["ConnectionsTotal"].as_u64().unwrap() >= 29);
    assert_eq!(v["States"]["keep-alive"], 8);
    assert_eq!(v["States"]["handle-req"], 1);
    let conns = v["Connections"].as_array().unwrap();
    assert_eq!(conns.len(), 9);
    let workers: BTreeSet<u64> = conns.iter().map(|c| c["worker"].as_u64().unwrap()).collect();
    assert_eq!(workers, BTreeSet::from([0, 1]), "connections from both workers: {conns:?}");
    let me: Vec<&serde_json::Value> = conns.iter().filter(|c| c["state"] == "handle-req").collect();
    assert_eq!(me.len(), 1);
    assert_eq!(me[0]["uri"], "/server-status?json");
    assert_eq!(me[0]["requests"], 1, "the ?auto before it on the same connection");
    assert!(conns.iter().filter(|c| c["state"] == "keep-alive").all(|c| c["requests"] == 1));

    // jsonp, as lighttpd: a valid function name wraps the object, another is ignored.
    let (_, _, p) = keep_get(&mut st, "/server-status?jsonp=show_it");
    assert_eq!(p.header("Content-Type"), Some("application/javascript"));
    let t = p.text();
    assert!(t.starts_with("show_it({") && t.ends_with("});\n"), "{t}");
    let (_, _, p) = keep_get(&mut st, "/server-status?jsonp=alert(1)");
    assert!(p.text().starts_with('{'));
    drop(kept);
}

/// A CGI script that answers after a minute (its request stays in the handler), and the
/// fixture that sends its head and then sleeps (its request stays writing).
fn cgi_site() -> TempDir {
    let dir = TempDir::new("status-cgi");
    dir.write("www/hold.py", "import time\ntime.sleep(120)\n");
    dir.write(
        "www/sleeper.py",
        std::fs::read(workspace_root().join("tests/fixtures/cgi/sleeper.py")).expect("fixture"),
    );
    dir
}

#[test]
fn states_show_connections_held_mid_request() {
    let conf = format!(
        "{BASE}\nserver.modules = ( \"mod_status\", \"mod_cgi\", \"mod_staticfile\" )\n\
         cgi.assign = ( \".py\" => \"/usr/bin/python3\" )\nstatus.status-url = \"/server-status\"\n"
    );
    let s = Server::start_in(cgi_site(), &conf, None);
    std::fs::write(s.docroot().join("a.txt"), "x\n").unwrap();

    // Idle after one request: keep-alive.
    let mut idle = connect(s.port);
    assert_eq!(keep_get(&mut idle, "/a.txt").2.status, 200);
    // Half a head: read.
    let mut half = connect(s.port);
    half.write_all(b"GET /a.txt HTTP/1.1\r\nHost: half.local\r\n").unwrap();
    // A head and part of its body: readpost.
    let mut post = connect(s.port);
    post.write_all(b"POST /a.txt HTTP/1.1\r\nHost: post.local\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    // Suspended in the handler, with client text in its target.
    let mut held = connect(s.port);
    held.write_all(b"GET /hold.py?<script>alert(1)</script> HTTP/1.1\r\nHost: held.local\r\n\r\n").unwrap();
    // The head went out, the body waits: write.
    let mut writing = connect(s.port);
    writing.write_all(b"GET /sleeper.py HTTP/1.1\r\nHost: writing.local\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("pid=") {
        let n = writing.read(&mut buf).expect("the sleeper's head");
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }

    // The connections settle into their states as the workers read them: ask until they do.
    let mut text = String::new();
    wait_for("the held connections in their states", || {
        text = s.get("/server-status?auto").text();
        fields(&text).get("BusyServers").map(String::as_str) == Some("6")
            && fields(&text)["Scoreboard"].starts_with("krRhhW")
    });
    let j = json(&s.get("/server-status?json"));
    for (state, n) in [("keep-alive", 1), ("read", 1), ("readpost", 1), ("handle-req", 2), ("write", 1)] {
        assert_eq!(j["States"][state], n, "{state}: {}", j["States"]);
    }
    let conns = j["Connections"].as_array().unwrap();
    let by_host = |h: &str| conns.iter().find(|c| c["host"] == h).unwrap_or_else(|| panic!("{h}: {conns:?}"));
    assert_eq!(by_host("post.local")["state"], "readpost");
    assert_eq!(by_host("post.local")["content_length"], 100);
    assert_eq!(by_host("post.local")["method"], "POST");
    assert_eq!(by_host("held.local")["state"], "handle-req");
    assert_eq!(by_host("held.local")["uri"], "/hold.py?<script>alert(1)</script>");
    assert_eq!(by_host("writing.local")["state"], "write");
    assert!(by_host("writing.local")["written"].as_u64().unwrap() > 0);
    // A head still arriving says nothing about its request yet.
    assert!(conns.iter().any(|c| c["state"] == "read" && c["host"] == "" && c["uri"] == ""));

    // The HTML page lists them all, with the client's text escaped.
    let page = s.get("/server-status").text();
    assert!(page.contains("/hold.py?&lt;script&gt;alert(1)&lt;/script&gt;"), "{page}");
    assert!(!page.contains("<script>alert"), "{page}");
    assert!(page.contains("<td class=\"nowrap\">readpost</td>"));
    assert!(page.contains("<td class=\"nowrap\">keep-alive</td>"));
    assert!(page.contains("<b>1</b> W = write"));
    // The core refuses markup in Host (400), so none can reach the page through it.
    assert_eq!(get_host(s.port, "/server-status", "<b>x</b>").status, 400);
    drop((idle, half, post, held, writing));
}

fn fastcgi_conf(dead_port: u16) -> String {
    format!(
        r#"{BASE}
server.modules = ( "mod_status", "mod_fastcgi", "mod_staticfile" )
status.statistics-url = "/server-statistics"
status.status-url = "/server-status"
fastcgi.server = ( ".php" => ( "php" => ( "socket" => "@DIR@/php.sock", "bin-path" => "/usr/bin/php-cgi" ) ),
                   "/down" => ( "down" => ( "host" => "127.0.0.1", "port" => {dead_port}, "check-local" => "disable", "disable-time" => 30 ) ) )
"#
    )
}

fn statistics(s: &Server) -> HashMap<String, i64> {
    let r = s.get("/server-statistics");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    let t = r.text();
    let names: Vec<&str> = t.lines().filter_map(|l| l.split(": ").next()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "in name order");
    t.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap_or_else(|_| panic!("{k}: {v}"))))
        .collect()
}

/// Close with a reset (SO_LINGER 0): a client that went away.
fn reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on our own socket with a properly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &l as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    drop(s);
}

#[test]
fn statistics_show_fastcgi_backend_counters() {
    let dir = TempDir::new("status-fcgi");
    for f in ["env.php", "slow.php"] {
        dir.write(
            &format!("www/{f}"),
            std::fs::read(workspace_root().join("tests/fixtures/fastcgi").join(f)).expect("fixture"),
        );
    }
    let s = Server::start_in(dir, &fastcgi_conf(free_port()), None);
    // Published from the start, at zero.
    let st = statistics(&s);
    for k in [
        "fastcgi.backend.php.0.connected",
        "fastcgi.backend.php.0.died",
        "fastcgi.backend.php.0.overloaded",
        "fastcgi.backend.php.0.disabled",
        "fastcgi.backend.php.0.load",
        "fastcgi.backend.php.load",
        "fastcgi.backend.down.0.died",
        "fastcgi.active-requests",
        "fastcgi.requests",
    ] {
        assert_eq!(st.get(k), Some(&0), "{k} in {st:?}");
    }

    for _ in 0..3 {
        let r = s.get("/env.php");
        assert_eq!(r.status, 200, "{}\n{}", r.text(), s.error_log());
    }
    let st = statistics(&s);
    assert_eq!(st["fastcgi.backend.php.0.connected"], 3, "{st:?}");
    assert_eq!(st["fastcgi.requests"], 3);
    assert_eq!(st["fastcgi.backend.php.0.load"], 0);
    assert_eq!(st["fastcgi.active-requests"], 0);

    // A backend that refuses: died and disabled, and a 503.
    assert_eq!(s.get("/down/x").status, 503);
    let st = statistics(&s);
    assert_eq!(st["fastcgi.backend.down.0.died"], 1, "{st:?}");
    assert_eq!(st["fastcgi.backend.down.0.disabled"], 1);
    assert_eq!(st["fastcgi.backend.down.0.connected"], 0);
    assert_eq!(st["fastcgi.requests"], 3, "a request no backend took is not counted");

    // A request in flight is the backend's load until its client goes away.
    let mut held = connect(s.port);
    held.write_all(b"GET /slow.php HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("PID=") {
        let n = held.read(&mut buf).expect("slow.php's first line");
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let st = statistics(&s);
    assert_eq!(st["fastcgi.backend.php.0.load"], 1, "{st:?}");
    assert_eq!(st["fastcgi.backend.php.load"], 1);
    assert_eq!(st["fastcgi.active-requests"], 1);
    assert_eq!(st["fastcgi.requests"], 4);
    reset(held);
    wait_for("the load to fall back", || statistics(&s)["fastcgi.active-requests"] == 0);
    assert_eq!(statistics(&s)["fastcgi.backend.php.load"], 0);
}

#[test]
fn statistics_without_counters_is_204() {
    let s = Server::start(&conf("status.statistics-url = \"/stats\""));
    let r = s.get("/stats");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
}

#[test]
fn config_page_lists_the_loaded_modules() {
    let s = Server::start(&conf("status.config-url = \"/server-config\""));
    let r = s.get("/server-config");
    assert_eq!(r.status, 200);
    let t = r.text();
    // The two listed, and those lighttpd adds by default (mod_indexfile, mod_dirlisting).
    assert!(t.contains("<h2>Loaded Modules (4)</h2>"), "{t}");
    assert!(t.contains("<td class=\"nowrap\">mod_indexfile</td>"), "{t}");
    let row = t.lines().find(|l| l.contains("<td class=\"nowrap\">mod_status</td>")).expect("mod_status row");
    assert!(row.contains(env!("CARGO_PKG_VERSION")), "{row}");
    assert!(row.contains("server status, configuration and statistics pages"), "{row}");
    assert!(row.contains("uri_clean, subrequest, request_reset, trigger"), "{row}");
    let row =
        t.lines().find(|l| l.contains("<td class=\"nowrap\">mod_staticfile</td>")).expect("staticfile row");
    assert!(row.contains("subrequest_start"), "{row}");
    assert!(t.contains("<td>IPv6</td><td>enabled</td>"), "{t}");
    assert!(t.contains("<td>TLS</td><td>disabled</td>"), "{t}");
    assert!(t.contains("<td>Workers</td><td>2</td>"), "{t}");
}

#[test]
fn totals_survive_a_graceful_restart() {
    let c = conf("status.status-url = \"/server-status\"");
    let s = Server::start(&c);
    std::fs::write(s.docroot().join("a.txt"), "x\n").unwrap();
    for _ in 0..5 {
        assert_eq!(s.get("/a.txt").status, 200);
    }
    s.signal(libc::SIGUSR1);
    s.wait_log("graceful restart done");
    let v = json(&s.get("/server-status?json"));
    assert_eq!(v["RequestsTotal"], 5, "{v}");
    assert_eq!(v["Restarts"], 1);
    assert_eq!(v["Workers"], 2);
}

#[test]
fn mod_auth_listed_first_protects_the_page() {
    let dir = TempDir::new("status-auth");
    dir.write("users.plain", "admin:s3cret\n");
    let c = format!(
        r#"{BASE}
server.modules = ( "mod_auth", "mod_authn_file", "mod_status", "mod_staticfile" )
auth.backend = "plain"
auth.backend.plain.userfile = "@DIR@/users.plain"
auth.require = ( "/server-status" => ( "method" => "basic", "realm" => "status", "require" => "valid-user" ) )
status.status-url = "/server-status"
"#
    );
    let s = Server::start_in(dir, &c, None);
    let url = format!("http://127.0.0.1:{}/server-status?auto", s.port);
    let (_, out, _) = curl(&["-w", "\n%{http_code}", &url]);
    assert!(out.ends_with("\n401") && !out.contains("Total Accesses"), "{out}");
    let (_, out, _) = curl(&["-u", "admin:s3cret", "-w", "\n%{http_code}", &url]);
    assert!(out.ends_with("\n200") && out.contains("Total Accesses: 1\n"), "{out}");
}

#[test]
fn conf_d_snippet_loads_and_its_example_works() {
    let snippet = std::fs::read_to_string(workspace_root().join("conf.d/status.conf")).unwrap();
    // The commented example, switched on (the auth line needs mod_auth: left out).
    let enabled: String = snippet
        .lines()
        .filter(|l| !l.contains("auth.require"))
        .map(|l| l.strip_prefix('#').filter(|r| !r.starts_with('#')).unwrap_or(l))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = TempDir::new("status-snippet");
    dir.write("status.conf", &enabled);
    let s = Server::start_in(dir, &format!("{BASE}\ninclude \"@DIR@/status.conf\"\n"), None);
    assert!(s.get("/server-status?auto").text().starts_with("Total Accesses: 0\n"));
    assert_eq!(s.get("/server-statistics").status, 204);
    assert!(!s.get("/server-status").text().contains("<script>"), "enable-sort = disable");
}

/// `server.defer-accept` (featherd's default: 1 s): a TCP connection that has sent nothing
/// waits in the kernel and costs the server nothing; with 0 it is accepted at once, as by
/// lighttpd's default.
#[test]
fn silent_connections_wait_in_the_kernel_with_defer_accept() {
    for (setting, silent_accepted) in [("", false), ("server.defer-accept = 0", true)] {
        let s = Server::start(&conf(&format!(
            "server.max-worker := 1\nstatus.status-url = \"/server-status\"\n{setting}"
        )));
        let silent = connect(s.port);
        // Connected after the silent one: one worker, one accept queue.
        let j = json(&s.get("/server-status?json"));
        let n = j["Connections"].as_array().map_or(0, Vec::len);
        assert_eq!(n, if silent_accepted { 2 } else { 1 }, "{setting:?}: {j}");
        // Once it speaks it is served.
        let mut silent = silent;
        silent
            .write_all(b"GET /server-status?auto HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        silent.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{setting:?}: {out}");
    }
}
