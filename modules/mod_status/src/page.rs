//! The pages mod_status serves, as pure functions of the figures (unit-tested below):
//!
//! * [`auto`]: lighttpd's (and Apache's) plain-text `?auto` format, for scrapers;
//! * [`json`]: `?json`, lighttpd's keys plus the states and the connection table;
//! * [`html`]: the status page;
//! * [`statistics`]: the named counters, `name: value` lines;
//! * [`config_html`]: the server's features and the loaded modules.
//!
//! Everything a client controls (Host, target, and so the physical path) and everything a
//! module declares is HTML-escaped; JSON strings are escaped by serde_json.

use featherd_mod_api::{
    ConnList, ConnSnapshot, LoadedModule, ServerStats, CONN_STATE_COUNT, CONN_STATE_KEEP_ALIVE,
};
use std::fmt::Write;

/// lighttpd's state names, by `CONN_STATE_*` (`connection_get_state`), and their one-letter
/// forms for the scoreboard. `KEEP_ALIVE` is lighttpd's 'k'.
pub const STATES: [(&str, char); CONN_STATE_COUNT as usize] = [
    ("connect", '.'),
    ("req-start", 'q'),
    ("read", 'r'),
    ("req-end", 'Q'),
    ("readpost", 'R'),
    ("handle-req", 'h'),
    ("resp-start", 's'),
    ("write", 'W'),
    ("resp-end", 'S'),
    ("error", 'E'),
    ("close", 'C'),
    ("keep-alive", 'k'),
];

/// The order the legend and the scoreboard use: keep-alive first, as lighttpd's legend.
const ORDER: [usize; CONN_STATE_COUNT as usize] = [11, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

fn state_name(s: u32) -> &'static str {
    STATES.get(s as usize).map_or("(unknown)", |x| x.0)
}

/// Everything a status page shows.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// `server.tag` (empty: none).
    pub tag: String,
    /// The Host the page was asked for.
    pub authority: Vec<u8>,
    pub stats: ServerStats,
    /// Requests and bytes out per second over the last five seconds.
    pub requests_5s: f64,
    pub traffic_5s: f64,
    pub conns: ConnList,
}

impl Figures {
    pub fn uptime(&self) -> u64 {
        u64::try_from(self.stats.now - self.stats.start_time).unwrap_or(0)
    }
    /// Connections open, over every worker (from the snapshot, so that it agrees with the
    /// scoreboard).
    pub fn busy(&self) -> u64 {
        self.conns.counts.iter().sum()
    }
    /// How many connections could still be opened: `server.max-connections`, or without one
    /// half the open-files limit (the core's own default when `server.max-fds` is set).
    pub fn idle(&self) -> u64 {
        let cap =
            if self.stats.max_connections > 0 { self.stats.max_connections } else { self.stats.fd_limit / 2 };
        cap.saturating_sub(self.busy())
    }
    /// One letter per open connection, grouped by state.
    pub fn scoreboard(&self) -> String {
        let mut s = String::new();
        for i in ORDER {
            for _ in 0..self.conns.counts[i] {
                s.push(STATES[i].1);
            }
        }
        s
    }
}

/// `?auto`: lighttpd's text format, field for field.
pub fn auto(f: &Figures) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Total Accesses: {}", f.stats.requests);
    let _ = writeln!(s, "Total kBytes: {}", f.stats.bytes_out / 1024);
    let _ = writeln!(s, "Uptime: {}", f.uptime());
    let _ = writeln!(s, "BusyServers: {}", f.busy());
    let _ = writeln!(s, "IdleServers: {}", f.idle());
    s.push_str("Scoreboard: ");
    s.push_str(&f.scoreboard());
    s.push_str(&"_".repeat(f.idle() as usize));
    s.push('\n');
    s
}

/// The function name of `?jsonp=NAME`, as lighttpd accepts it: letters, digits and '_',
/// starting with a letter; anything else is ignored (plain JSON).
pub fn jsonp_name(query: &[u8]) -> Option<&str> {
    let name = query.strip_prefix(b"jsonp=")?;
    let ok = name.first().is_some_and(u8::is_ascii_alphabetic)
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        std::str::from_utf8(name).ok()
    } else {
        None
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `?json`: lighttpd's keys (`RequestsTotal`, `TrafficTotal` in kB, `Uptime`, `BusyServers`,
/// `IdleServers`, `RequestAverage5s`, `TrafficAverage5s` in kB/s), then featherd's: totals
/// in bytes, workers, start time, the connections per state and the connection table.
pub fn json(f: &Figures, jsonp: Option<&str>) -> String {
    let mut states = serde_json::Map::new();
    for i in ORDER {
        states.insert(STATES[i].0.to_string(), f.conns.counts[i].into());
    }
    let conns: Vec<serde_json::Value> = f
        .conns
        .conns
        .iter()
        .map(|c| {
            serde_json::json!({
                "client": c.remote_addr,
                "port": c.remote_port,
                "worker": c.worker,
                "state": state_name(c.state),
                "requests": c.requests,
                "time_ms": c.age_ms,
                "read": c.bytes_in,
                "content_length": c.content_length,
                "written": c.bytes_out,
                "produced": c.bytes_total,
                "status": c.status,
                "method": lossy(&c.method),
                "host": lossy(&c.host),
                "uri": lossy(&c.target),
                "uri_rewritten": lossy(&c.target_rewritten),
                "file": lossy(&c.physical),
            })
        })
        .collect();
    let v = serde_json::json!({
        "RequestsTotal": f.stats.requests,
        "TrafficTotal": f.stats.bytes_out / 1024,
        "Uptime": f.uptime(),
        "BusyServers": f.busy(),
        "IdleServers": f.idle(),
        "RequestAverage5s": f.requests_5s as u64,
        "TrafficAverage5s": (f.traffic_5s / 1024.0) as u64,
        "BytesIn": f.stats.bytes_in,
        "BytesOut": f.stats.bytes_out,
        "ConnectionsTotal": f.stats.connections,
        "Workers": f.stats.workers,
        "StartedAt": f.stats.start_time,
        "Restarts": f.stats.restarts,
        "States": states,
        "Connections": conns,
    });
    let body = serde_json::to_string_pretty(&v).unwrap_or_else(|_| "{}".into());
    match jsonp {
        Some(name) => format!("{name}({body});\n"),
        None => body + "\n",
    }
}

/// HTML-escape `text` (bytes that are not UTF-8 shown as U+FFFD).
pub fn escape(text: &[u8]) -> String {
    let t = String::from_utf8_lossy(text);
    let mut s = String::with_capacity(t.len());
    for c in t.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '"' => s.push_str("&quot;"),
            '\'' => s.push_str("&#39;"),
            c => s.push(c),
        }
    }
    s
}

/// lighttpd's scaled figures: "9 req", "6.64 kbyte", "1.20 Mbyte/s"; counts in thousands
/// are whole numbers, except rates ("0.25 req/s", where lighttpd would say 0).
pub fn scaled(mut v: f64, base: f64, unit: &str) -> String {
    let mut prefix = "";
    for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
        if v <= base {
            break;
        }
        v /= base;
        prefix = p;
    }
    if base == 1000.0 && !unit.ends_with("/s") {
        format!("{} {prefix}{unit}", v as u64)
    } else {
        format!("{v:.2} {prefix}{unit}")
    }
}

/// "2 days 3 hours 4 min 5 s", as lighttpd writes an uptime.
pub fn uptime_text(mut secs: u64) -> String {
    let mut s = String::new();
    for (len, name) in [(86_400, "days"), (3_600, "hours"), (60, "min")] {
        let n = secs / len;
        secs %= len;
        if n > 0 {
            let _ = write!(s, "{n} {name} ");
        }
    }
    let _ = write!(s, "{secs} s");
    s
}

/// "2026-12-03 10:30:01 UTC".
pub fn utc_text(t: i64) -> String {
    let c = featherd_mod_api::util::Civil::from_unix(t);
    format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC", c.year, c.month, c.day, c.hour, c.min, c.sec)
}

const STYLE: &str = r#"  <style>
    body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #1d2327; background: #fff; }
    h1 { font-size: 1.5em; margin: 0 0 .8em; }
    h2 { font-size: 1.15em; margin: 1.8em 0 .6em; }
    table { border-collapse: collapse; }
    th, td { padding: .3em .8em; text-align: left; vertical-align: top; }
    table.summary td:first-child { color: #50575e; }
    table.summary th { padding-top: .9em; font-size: .85em; text-transform: uppercase; letter-spacing: .04em; color: #50575e; border-bottom: 1px solid #dcdcde; }
    table.status { width: 100%; font-size: .92em; }
    table.status th { background: #1d2327; color: #fff; font-weight: 600; white-space: nowrap; }
    table.status th.sortable { cursor: pointer; user-select: none; }
    table.status th .arrow { opacity: .7; padding-left: .3em; }
    table.status tr:nth-child(even) td { background: #f6f7f7; }
    td.int { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
    td.string { overflow-wrap: anywhere; }
    td.nowrap { white-space: nowrap; }
    .states { display: flex; flex-wrap: wrap; gap: .4em; margin: .4em 0 .8em; }
    .state { border: 1px solid #dcdcde; border-radius: 4px; padding: .2em .6em; font-size: .9em; }
    .state b { font-variant-numeric: tabular-nums; }
    .state.zero { color: #a7aaad; }
    pre.scoreboard { background: #f6f7f7; border: 1px solid #dcdcde; border-radius: 4px; padding: .6em; margin: 0; white-space: pre-wrap; word-break: break-all; }
    .muted { color: #646970; font-size: .85em; }
  </style>
"#;

const SORT_SCRIPT: &str = r#"  <script>
  // Click a column heading to sort the connection table; click again to reverse.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.status th.sortable").forEach(function (th) {
      th.addEventListener("click", function () {
        var table = th.closest("table"), body = table.tBodies[0];
        var col = th.cellIndex, down = th.dataset.dir !== "down";
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col], r;
          if (x.className.indexOf("int") >= 0) {
            r = (parseFloat(x.textContent) || 0) - (parseFloat(y.textContent) || 0);
          } else {
            r = x.textContent.toLowerCase().localeCompare(y.textContent.toLowerCase());
          }
          return down ? r : -r;
        });
        table.querySelectorAll("th .arrow").forEach(function (s) { s.textContent = ""; });
        th.dataset.dir = down ? "down" : "up";
        th.querySelector(".arrow").textContent = down ? "\u2193" : "\u2191";
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
  </script>
"#;

fn head(out: &mut String, title: &str, refresh: Option<u64>, sort: bool) {
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n <head>\n  <meta charset=\"utf-8\" />\n");
    let _ = writeln!(out, "  <title>{}</title>", escape(title.as_bytes()));
    if let Some(r) = refresh {
        let _ = writeln!(out, "  <meta http-equiv=\"refresh\" content=\"{r}\" />");
    }
    out.push_str(STYLE);
    if sort {
        out.push_str(SORT_SCRIPT);
    }
    out.push_str(" </head>\n <body>\n");
}

fn row(out: &mut String, key: &str, value: &str) {
    let _ = writeln!(out, "   <tr><td>{key}</td><td>{value}</td></tr>");
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "   <tr><th colspan=\"2\">{title}</th></tr>");
}

fn uri_cell(c: &ConnSnapshot) -> String {
    let mut s = escape(&c.target);
    if !c.target_rewritten.is_empty() {
        let _ = write!(s, " <span class=\"muted\">(rewritten to {})</span>", escape(&c.target_rewritten));
    }
    s
}

fn written_cell(c: &ConnSnapshot) -> String {
    format!("{}/{}", c.bytes_out, c.bytes_total)
}

fn read_cell(c: &ConnSnapshot) -> String {
    match c.content_length {
        Some(n) => format!("{}/{}", c.bytes_in, n),
        None => format!("{}", c.bytes_in),
    }
}

/// The status page (`refresh`: `?refresh=N`, capped at a week as lighttpd does; `sort`:
/// `status.enable-sort`).
pub fn html(f: &Figures, refresh: Option<u64>, sort: bool) -> String {
    let mut o = String::with_capacity(8192 + f.conns.conns.len() * 256);
    let title =
        if f.tag.is_empty() { "Server-Status".to_string() } else { format!("Server-Status ({})", f.tag) };
    head(&mut o, &title, refresh, sort);
    let _ = writeln!(o, "  <h1>{}</h1>", escape(title.as_bytes()));

    let up = f.uptime();
    let per_sec = up.max(1) as f64;
    o.push_str("  <table class=\"summary\">\n");
    row(&mut o, "Hostname", &escape(&f.authority));
    row(&mut o, "Uptime", &uptime_text(up));
    row(&mut o, "Started at", &utc_text(f.stats.start_time));
    row(&mut o, "Workers", &f.stats.workers.to_string());
    if f.stats.restarts > 0 {
        row(&mut o, "Graceful restarts", &f.stats.restarts.to_string());
    }
    section(&mut o, "absolute (since start)");
    row(&mut o, "Requests", &scaled(f.stats.requests as f64, 1000.0, "req"));
    row(&mut o, "Traffic", &scaled(f.stats.bytes_out as f64, 1024.0, "byte"));
    row(&mut o, "Traffic in", &scaled(f.stats.bytes_in as f64, 1024.0, "byte"));
    row(&mut o, "Connections", &scaled(f.stats.connections as f64, 1000.0, "conn"));
    section(&mut o, "average (since start)");
    row(&mut o, "Requests", &scaled(f.stats.requests as f64 / per_sec, 1000.0, "req/s"));
    row(&mut o, "Traffic", &scaled(f.stats.bytes_out as f64 / per_sec, 1024.0, "byte/s"));
    section(&mut o, "average (5s sliding average)");
    row(&mut o, "Requests", &scaled(f.requests_5s, 1000.0, "req/s"));
    row(&mut o, "Traffic", &scaled(f.traffic_5s, 1024.0, "byte/s"));
    o.push_str("  </table>\n");

    let busy = f.busy();
    let _ = writeln!(o, "  <h2>{busy} connection{}</h2>", if busy == 1 { "" } else { "s" });
    o.push_str("  <div class=\"states\">\n");
    for i in ORDER {
        let n = f.conns.counts[i];
        let (name, letter) = STATES[i];
        let zero = if n == 0 { " zero" } else { "" };
        let _ = writeln!(o, "   <span class=\"state{zero}\"><b>{n}</b> {letter} = {name}</span>");
    }
    o.push_str("  </div>\n");
    let board = f.scoreboard();
    let mut lines = String::new();
    for (i, c) in board.chars().enumerate() {
        if i > 0 && i % 50 == 0 {
            lines.push('\n');
        }
        lines.push(c);
    }
    let _ =
        writeln!(o, "  <pre class=\"scoreboard\">{}</pre>", if lines.is_empty() { "&nbsp;" } else { &lines });

    o.push_str("  <h2>Connections</h2>\n  <table class=\"status\">\n   <thead><tr>");
    for h in ["Client IP", "Worker", "Read", "Written", "State", "Time", "Host", "URI", "File"] {
        if sort {
            let _ = write!(o, "<th class=\"sortable\">{h}<span class=\"arrow\"></span></th>");
        } else {
            let _ = write!(o, "<th>{h}</th>");
        }
    }
    o.push_str("</tr></thead>\n   <tbody>\n");
    for c in &f.conns.conns {
        let _ = writeln!(
            o,
            "    <tr><td class=\"nowrap\">{}</td><td class=\"int\">{}</td><td class=\"int\">{}</td><td class=\"int\">{}</td><td class=\"nowrap\">{}</td><td class=\"int\">{}</td><td class=\"nowrap\">{}</td><td class=\"string\">{}</td><td class=\"string\">{}</td></tr>",
            escape(c.remote_addr.as_bytes()),
            c.worker,
            read_cell(c),
            written_cell(c),
            if c.state == CONN_STATE_KEEP_ALIVE { "keep-alive" } else { state_name(c.state) },
            c.age_ms / 1000,
            escape(&c.host),
            uri_cell(c),
            escape(&c.physical),
        );
    }
    o.push_str("   </tbody>\n  </table>\n");
    if (f.conns.conns.len() as u64) < busy {
        let _ = writeln!(o, "  <p class=\"muted\">{} of {busy} connections listed.</p>", f.conns.conns.len());
    }
    o.push_str(" </body>\n</html>\n");
    o
}

/// `status.statistics-url`: `name: value` lines, in name order (None when there is no
/// counter: lighttpd then answers 204).
pub fn statistics(counters: &[(String, i64)]) -> Option<String> {
    if counters.is_empty() {
        return None;
    }
    let mut s = String::new();
    for (n, v) in counters {
        let _ = writeln!(s, "{n}: {v}");
    }
    Some(s)
}

/// What the configuration page shows about the server.
#[derive(Clone, Debug, Default)]
pub struct ServerInfo {
    pub tag: String,
    pub version: String,
    pub abi: String,
    /// `server_features`: "+ name" / "- name" lines.
    pub features: String,
    pub stats: ServerStats,
}

/// `status.config-url`: the server's features and the loaded modules with their hooks.
pub fn config_html(s: &ServerInfo, modules: &[LoadedModule]) -> String {
    let mut o = String::with_capacity(8192);
    let title = if s.tag.is_empty() { "Server configuration".to_string() } else { s.tag.clone() };
    head(&mut o, &title, None, false);
    let _ = writeln!(o, "  <h1>{}</h1>", escape(title.as_bytes()));
    o.push_str("  <table class=\"summary\">\n");
    section(&mut o, "Server");
    row(&mut o, "Version", &format!("featherd/{}", escape(s.version.as_bytes())));
    row(&mut o, "Module ABI", &escape(s.abi.as_bytes()));
    row(&mut o, "Workers", &s.stats.workers.to_string());
    let max = if s.stats.max_connections == 0 {
        "no limit".to_string()
    } else {
        s.stats.max_connections.to_string()
    };
    row(&mut o, "server.max-connections", &max);
    section(&mut o, "Server-Features");
    for line in s.features.lines() {
        let (sign, name) = line.split_at(line.len().min(2));
        let on = sign.trim() == "+";
        let name = name.strip_suffix(" support").unwrap_or(name);
        row(&mut o, &escape(name.as_bytes()), if on { "enabled" } else { "disabled" });
    }
    section(&mut o, "Network Engine");
    row(&mut o, "fd-Event-Handler", "linux-sysepoll");
    o.push_str("  </table>\n");
    let _ = writeln!(o, "  <h2>Loaded Modules ({})</h2>", modules.len());
    o.push_str("  <table class=\"status\">\n   <thead><tr><th>Module</th><th>Version</th><th>Description</th><th>Hooks</th></tr></thead>\n   <tbody>\n");
    for m in modules {
        let hooks: Vec<&str> = m.hooks.names().collect();
        let hooks = if hooks.is_empty() { "(none)".to_string() } else { hooks.join(", ") };
        let _ = writeln!(
            o,
            "    <tr><td class=\"nowrap\">{}</td><td class=\"nowrap\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(m.name.as_bytes()),
            escape(m.version.as_bytes()),
            escape(m.description.as_bytes()),
            hooks
        );
    }
    o.push_str("   </tbody>\n  </table>\n </body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use featherd_mod_api::{Hooks, CONN_STATE_HANDLE_REQUEST, CONN_STATE_READ};

    fn figures() -> Figures {
        let mut conns = ConnList::default();
        conns.counts[CONN_STATE_HANDLE_REQUEST as usize] = 1;
        conns.counts[CONN_STATE_KEEP_ALIVE as usize] = 2;
        conns.counts[CONN_STATE_READ as usize] = 1;
        conns.conns.push(ConnSnapshot {
            state: CONN_STATE_HANDLE_REQUEST,
            worker: 1,
            remote_addr: "127.0.0.1".into(),
            remote_port: 4242,
            age_ms: 2500,
            bytes_in: 80,
            content_length: None,
            bytes_out: 0,
            bytes_total: 10,
            method: b"GET".to_vec(),
            host: b"<b>evil</b>".to_vec(),
            target: b"/x?<script>alert(1)</script>".to_vec(),
            target_rewritten: b"/y\"&".to_vec(),
            physical: b"/srv/<x>".to_vec(),
            ..Default::default()
        });
        Figures {
            tag: "featherd/0.1.0".into(),
            authority: b"example.org:8080".to_vec(),
            stats: ServerStats {
                workers: 2,
                start_time: 1_764_756_601,
                now: 1_764_756_601 + 90_061,
                requests: 12,
                bytes_in: 900,
                bytes_out: 5_000,
                connections: 7,
                connections_open: 4,
                max_connections: 10,
                fd_limit: 20_000,
                ..Default::default()
            },
            requests_5s: 2.4,
            traffic_5s: 3000.0,
            conns,
        }
    }

    #[test]
    fn auto_is_lighttpds_format() {
        let t = auto(&figures());
        assert_eq!(
            t,
            "Total Accesses: 12\nTotal kBytes: 4\nUptime: 90061\nBusyServers: 4\nIdleServers: 6\nScoreboard: kkrh______\n"
        );
        // Without server.max-connections: half the open-files limit.
        let mut f = figures();
        f.stats.max_connections = 0;
        let t = auto(&f);
        assert!(t.contains("IdleServers: 9996\n"), "{t}");
        assert_eq!(t.lines().last().map(|l| l.len()), Some("Scoreboard: ".len() + 4 + 9996));
    }

    #[test]
    fn json_has_lighttpds_keys_and_the_table() {
        let v: serde_json::Value = serde_json::from_str(&json(&figures(), None)).unwrap();
        assert_eq!(v["RequestsTotal"], 12);
        assert_eq!(v["TrafficTotal"], 4);
        assert_eq!(v["Uptime"], 90061);
        assert_eq!(v["BusyServers"], 4);
        assert_eq!(v["IdleServers"], 6);
        assert_eq!(v["RequestAverage5s"], 2);
        assert_eq!(v["TrafficAverage5s"], 2);
        assert_eq!(v["States"]["keep-alive"], 2);
        assert_eq!(v["States"]["handle-req"], 1);
        assert_eq!(v["Connections"][0]["uri"], "/x?<script>alert(1)</script>");
        assert_eq!(v["Connections"][0]["state"], "handle-req");
        let p = json(&figures(), jsonp_name(b"jsonp=cb_1"));
        assert!(p.starts_with("cb_1({") && p.ends_with("});\n"));
        assert_eq!(jsonp_name(b"jsonp=1x"), None);
        assert_eq!(jsonp_name(b"jsonp=a(b)"), None);
        assert_eq!(jsonp_name(b"jsonp="), None);
        assert_eq!(jsonp_name(b"json"), None);
    }

    #[test]
    fn html_escapes_client_text() {
        let h = html(&figures(), Some(5), true);
        assert!(!h.contains("<script>alert"), "{h}");
        assert!(!h.contains("<b>evil"));
        assert!(h.contains("/x?&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(h.contains("&lt;b&gt;evil&lt;/b&gt;"));
        assert!(h.contains("/y&quot;&amp;"));
        assert!(h.contains("/srv/&lt;x&gt;"));
        assert!(h.contains("<meta http-equiv=\"refresh\" content=\"5\" />"));
        assert!(h.contains("1 days 1 hours 1 min 1 s"));
        assert!(h.contains("2025-12-03 10:10:01 UTC"), "{h}");
        assert!(h.contains("<b>2</b> k = keep-alive"));
        assert!(h.contains("class=\"sortable\""));
        let plain = html(&figures(), None, false);
        assert!(!plain.contains("<script>") && !plain.contains("http-equiv"));
    }

    #[test]
    fn scaled_figures() {
        assert_eq!(scaled(9.0, 1000.0, "req"), "9 req");
        assert_eq!(scaled(6800.0, 1024.0, "byte"), "6.64 kbyte");
        assert_eq!(scaled(1_500_000.0, 1000.0, "req/s"), "1.50 Mreq/s");
        assert_eq!(scaled(0.25, 1000.0, "req/s"), "0.25 req/s");
        assert_eq!(uptime_text(59), "59 s");
        assert_eq!(uptime_text(3600), "1 hours 0 s");
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn statistics_lines_and_config_page() {
        assert_eq!(statistics(&[]), None);
        assert_eq!(statistics(&[("a.b".into(), 1), ("c".into(), -2)]).as_deref(), Some("a.b: 1\nc: -2\n"));
        let m = LoadedModule {
            id: 0,
            name: "mod_x".into(),
            version: "1.0".into(),
            description: "does <x>".into(),
            hooks: Hooks::URI_CLEAN | Hooks::TRIGGER,
            descriptor_size: 0,
        };
        let info = ServerInfo {
            tag: "t".into(),
            features: "+ IPv6 support\n- TLS support\n".into(),
            ..Default::default()
        };
        let h = config_html(&info, &[m]);
        assert!(h.contains("does &lt;x&gt;"));
        assert!(h.contains("uri_clean, trigger"));
        assert!(h.contains("<td>IPv6</td><td>enabled</td>"));
        assert!(h.contains("<td>TLS</td><td>disabled</td>"));
    }
}
