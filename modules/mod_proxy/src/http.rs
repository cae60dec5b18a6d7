//! The HTTP/1.1 side of the proxy, free of the server so that it is tested on its own: the
//! request head sent to a backend, the backend's response head, the framing of its body, and
//! the rewriting of headers between the two sides (`proxy.header` maps).

/// Headers that describe one hop, never forwarded in either direction (RFC 9110 §7.6.1), plus
/// those the proxy writes itself.
const HOP_BY_HOP: &[&str] =
    &["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "proxy-connection"];

/// The names listed in Connection headers (they are hop-by-hop too).
pub fn connection_tokens<'a>(headers: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(b"connection") {
            for t in v.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if !t.is_empty() {
                    out.push(t.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

fn is_hop_by_hop(name: &[u8], listed: &[Vec<u8>]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
        || listed.iter().any(|l| name.eq_ignore_ascii_case(l))
}

/// `proxy.header` maps and switches.
#[derive(Clone, Debug, Default)]
pub struct HeaderOpts {
    pub map_host_request: Vec<(String, String)>,
    pub map_host_response: Vec<(String, String)>,
    pub map_urlpath: Vec<(String, String)>,
    pub https_remap: bool,
    pub upgrade: bool,
    pub connect: bool,
    pub force_http10: bool,
}

/// `proxy.forwarded` parameters of the RFC 7239 header.
#[derive(Clone, Copy, Debug, Default)]
pub struct ForwardedOpts {
    pub for_: bool,
    pub proto: bool,
    pub host: bool,
    pub by: bool,
}

impl ForwardedOpts {
    pub fn any(&self) -> bool {
        self.for_ || self.proto || self.host || self.by
    }
}

/// The Host a request is sent with after `map-host-request`: an exact (case-insensitive) key,
/// else the `"-"` key; a value of `"-"` or `""` keeps the client's.
pub fn map_host_request(map: &[(String, String)], host: &str) -> String {
    let hit =
        map.iter().find(|(k, _)| k.eq_ignore_ascii_case(host)).or_else(|| map.iter().find(|(k, _)| k == "-"));
    match hit {
        Some((_, v)) if v != "-" && !v.is_empty() => v.clone(),
        _ => host.to_string(),
    }
}

/// An authority the backend used in a response header, mapped back for the client per
/// `map-host-response`: an exact key, else `"-"` when it is the authority the backend was
/// sent; the value `"-"` stands for the client's own Host. None: leave it.
pub fn map_host_response(
    map: &[(String, String)],
    authority: &str,
    sent_host: &str,
    client_host: &str,
) -> Option<String> {
    let hit = map.iter().find(|(k, _)| k.eq_ignore_ascii_case(authority)).or_else(|| {
        if authority.eq_ignore_ascii_case(sent_host) {
            map.iter().find(|(k, _)| k == "-")
        } else {
            None
        }
    })?;
    match hit.1.as_str() {
        "" => None,
        "-" => Some(client_host.to_string()),
        v => Some(v.to_string()),
    }
}

/// `map-urlpath`, request direction: the first key that prefixes the path is replaced by its
/// value.
pub fn map_path_request(map: &[(String, String)], target: &[u8]) -> Vec<u8> {
    for (k, v) in map {
        if target.starts_with(k.as_bytes()) {
            let mut out = v.as_bytes().to_vec();
            out.extend_from_slice(&target[k.len()..]);
            return out;
        }
    }
    target.to_vec()
}

/// `map-urlpath`, response direction: a path the backend wrote that starts with a value is
/// given back its key.
pub fn map_path_response(map: &[(String, String)], path: &str) -> Option<String> {
    for (k, v) in map {
        if !v.is_empty() && path.starts_with(v.as_str()) {
            return Some(format!("{k}{}", &path[v.len()..]));
        }
    }
    None
}

/// What the request head needs from the client's request.
pub struct RequestInfo<'a> {
    pub method: &'a [u8],
    /// Path and query as sent to the backend (after map-urlpath).
    pub target: &'a [u8],
    /// The Host header to send (after mapping / replace-http-host).
    pub host: &'a str,
    /// The client's Host header as received (for X-Host and Forwarded host).
    pub client_host: &'a [u8],
    /// The client (the request's remote address).
    pub remote_addr: &'a str,
    /// The peer this server talked to: the client, or the trusted proxy whose headers
    /// mod_extforward took the client from (then the incoming chain names the client already,
    /// and this hop is the one to append, as lighttpd does).
    pub hop_addr: &'a str,
    pub local_addr: &'a str,
    pub scheme: &'a str,
    pub content_length: Option<u64>,
    /// The client sent a chunked body (it is re-chunked to the backend).
    pub chunked_body: bool,
    /// Forward Upgrade and ask the backend to switch.
    pub upgrade: Option<&'a [u8]>,
    pub http10: bool,
    pub forwarded: ForwardedOpts,
}

/// RFC 7239 node: IPv6 addresses are bracketed and quoted.
fn forwarded_node(addr: &str) -> String {
    if addr.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("\"[{addr}]\"")
    } else if addr.contains(':') || addr.contains('[') {
        format!("\"{addr}\"")
    } else {
        addr.to_string()
    }
}

fn forwarded_value(s: &[u8]) -> String {
    let token =
        !s.is_empty() && s.iter().all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if token {
        String::from_utf8_lossy(s).into_owned()
    } else {
        let mut o = String::from("\"");
        for &b in s {
            if b == b'"' || b == b'\\' {
                o.push('\\');
            }
            if b.is_ascii() && !b.is_ascii_control() {
                o.push(b as char);
            }
        }
        o.push('"');
        o
    }
}

/// The head sent to the backend: the client's end-to-end headers, Host as decided, and the
/// forwarding headers lighttpd sends (X-Forwarded-For appended, X-Host, X-Forwarded-Proto,
/// and RFC 7239 Forwarded when configured).
pub fn build_request(info: &RequestInfo<'_>, headers: &[(&[u8], &[u8])]) -> Vec<u8> {
    let listed = connection_tokens(headers.iter().copied());
    let mut h = Vec::with_capacity(512);
    h.extend_from_slice(info.method);
    h.push(b' ');
    h.extend_from_slice(info.target);
    h.extend_from_slice(if info.http10 { b" HTTP/1.0\r\n" } else { b" HTTP/1.1\r\n" });
    h.extend_from_slice(b"Host: ");
    h.extend_from_slice(info.host.as_bytes());
    h.extend_from_slice(b"\r\n");
    let mut xff: Option<Vec<u8>> = None;
    let mut fwd: Option<Vec<u8>> = None;
    for &(n, v) in headers {
        if is_hop_by_hop(n, &listed)
            || n.eq_ignore_ascii_case(b"host")
            || n.eq_ignore_ascii_case(b"content-length")
            || n.eq_ignore_ascii_case(b"expect")
            || n.eq_ignore_ascii_case(b"x-host")
            || n.eq_ignore_ascii_case(b"x-forwarded-proto")
        {
            continue;
        }
        if n.eq_ignore_ascii_case(b"x-forwarded-for") {
            let x = xff.get_or_insert_with(Vec::new);
            if !x.is_empty() {
                x.extend_from_slice(b", ");
            }
            x.extend_from_slice(v);
            continue;
        }
        if n.eq_ignore_ascii_case(b"forwarded") && info.forwarded.any() {
            let x = fwd.get_or_insert_with(Vec::new);
            if !x.is_empty() {
                x.extend_from_slice(b", ");
            }
            x.extend_from_slice(v);
            continue;
        }
        h.extend_from_slice(n);
        h.extend_from_slice(b": ");
        h.extend_from_slice(v);
        h.extend_from_slice(b"\r\n");
    }
    let mut x = xff.unwrap_or_default();
    if !x.is_empty() {
        x.extend_from_slice(b", ");
    }
    x.extend_from_slice(info.hop_addr.as_bytes());
    h.extend_from_slice(b"X-Forwarded-For: ");
    h.extend_from_slice(&x);
    h.extend_from_slice(b"\r\n");
    if !info.client_host.is_empty() {
        // Both names, as lighttpd sends them (X-Forwarded-Host is what most applications
        // and frameworks read).
        for name in [&b"X-Host: "[..], b"X-Forwarded-Host: "] {
            h.extend_from_slice(name);
            h.extend_from_slice(info.client_host);
            h.extend_from_slice(b"\r\n");
        }
    }
    h.extend_from_slice(b"X-Forwarded-Proto: ");
    h.extend_from_slice(info.scheme.as_bytes());
    h.extend_from_slice(b"\r\n");
    if info.forwarded.any() {
        let f = info.forwarded;
        let mut parts: Vec<String> = Vec::new();
        if f.for_ {
            parts.push(format!("for={}", forwarded_node(info.hop_addr)));
        }
        if f.proto {
            parts.push(format!("proto={}", info.scheme));
        }
        if f.host && !info.client_host.is_empty() {
            parts.push(format!("host={}", forwarded_value(info.client_host)));
        }
        if f.by {
            parts.push(format!("by={}", forwarded_node(info.local_addr)));
        }
        let mut v = fwd.unwrap_or_default();
        if v.is_empty() && f.for_ && info.hop_addr != info.remote_addr {
            // The client came in an X-Forwarded-For chain: name it in Forwarded terms too.
            v.extend_from_slice(format!("for={}", forwarded_node(info.remote_addr)).as_bytes());
        }
        if !v.is_empty() {
            v.extend_from_slice(b", ");
        }
        v.extend_from_slice(parts.join(";").as_bytes());
        h.extend_from_slice(b"Forwarded: ");
        h.extend_from_slice(&v);
        h.extend_from_slice(b"\r\n");
    }
    if let Some(l) = info.content_length {
        h.extend_from_slice(format!("Content-Length: {l}\r\n").as_bytes());
    } else if info.chunked_body && !info.http10 {
        h.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if let Some(u) = info.upgrade {
        h.extend_from_slice(b"Upgrade: ");
        h.extend_from_slice(u);
        h.extend_from_slice(b"\r\nConnection: upgrade\r\n");
    } else if info.http10 {
        h.extend_from_slice(b"Connection: close\r\n");
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// How the backend frames its response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the backend closes.
    Close,
}

/// A parsed backend response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    /// HTTP/1.1 (else 1.0).
    pub minor: u8,
    /// End-to-end headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    /// The Content-Length the backend announced.
    pub content_length: Option<u64>,
    /// The backend lets the connection be reused.
    pub keep_alive: bool,
    /// Length of the head in the buffer.
    pub len: usize,
}

#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    Partial,
    Invalid,
}

/// The head of a backend response (`head_request`: the body is empty whatever is announced).
pub fn parse_response(buf: &[u8], head_request: bool) -> Result<ResponseHead, HeadError> {
    let mut hs = [httparse::EMPTY_HEADER; 128];
    let mut r = httparse::Response::new(&mut hs);
    let len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err(HeadError::Partial),
        Err(_) => return Err(HeadError::Invalid),
    };
    let status = r.code.ok_or(HeadError::Invalid)?;
    let minor = r.version.unwrap_or(0);
    let pairs: Vec<(&[u8], &[u8])> = r.headers.iter().map(|h| (h.name.as_bytes(), h.value)).collect();
    let listed = connection_tokens(pairs.iter().copied());
    let mut keep_alive = minor >= 1;
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut headers = Vec::with_capacity(pairs.len());
    for (n, v) in &pairs {
        if n.eq_ignore_ascii_case(b"connection") {
            for t in v.split(|&b| b == b',') {
                let t = t.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && minor == 0 {
                    keep_alive = true;
                }
            }
        }
        if n.eq_ignore_ascii_case(b"transfer-encoding") {
            // Anything but chunked last cannot be framed (RFC 9112 §6.3).
            let last = v.rsplit(|&b| b == b',').next().unwrap_or(b"").trim_ascii();
            if last.eq_ignore_ascii_case(b"chunked") {
                chunked = true;
            } else {
                return Err(HeadError::Invalid);
            }
            continue;
        }
        if n.eq_ignore_ascii_case(b"content-length") {
            let l: u64 =
                std::str::from_utf8(v).ok().and_then(|s| s.trim().parse().ok()).ok_or(HeadError::Invalid)?;
            if length.is_some_and(|p| p != l) {
                return Err(HeadError::Invalid);
            }
            length = Some(l);
            continue;
        }
        if is_hop_by_hop(n, &listed) {
            continue;
        }
        headers.push((String::from_utf8_lossy(n).into_owned(), v.to_vec()));
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::None
    } else if chunked {
        Framing::Chunked
    } else if let Some(l) = length {
        Framing::Length(l)
    } else {
        keep_alive = false;
        Framing::Close
    };
    Ok(ResponseHead { status, minor, headers, framing, content_length: length, keep_alive, len })
}

/// A chunked body that does not follow RFC 9112 §7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadChunk;

/// Incremental decoder of a chunked body. Feed it bytes; it appends the data to `out` and
/// says how much input it consumed.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: ChunkState,
    left: u64,
    pub done: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data,
    DataEnd,
    Trailer,
}

impl Dechunker {
    /// Consume what can be decoded from `inp`. Err: the backend's framing is broken.
    pub fn feed(&mut self, inp: &[u8], out: &mut Vec<u8>) -> Result<usize, BadChunk> {
        let mut pos = 0;
        while pos < inp.len() && !self.done {
            match self.state {
                ChunkState::Size => {
                    let Some(nl) = inp[pos..].iter().position(|&b| b == b'\n') else {
                        if inp.len() - pos > 1024 {
                            return Err(BadChunk);
                        }
                        return Ok(pos);
                    };
                    let line = &inp[pos..pos + nl];
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"").trim_ascii();
                    let size = std::str::from_utf8(hex)
                        .ok()
                        .filter(|s| !s.is_empty() && s.len() <= 15)
                        .and_then(|s| u64::from_str_radix(s, 16).ok())
                        .ok_or(BadChunk)?;
                    pos += nl + 1;
                    if size == 0 {
                        self.state = ChunkState::Trailer;
                    } else {
                        self.left = size;
                        self.state = ChunkState::Data;
                    }
                }
                ChunkState::Data => {
                    let n = (inp.len() - pos).min(self.left as usize);
                    out.extend_from_slice(&inp[pos..pos + n]);
                    pos += n;
                    self.left -= n as u64;
                    if self.left == 0 {
                        self.state = ChunkState::DataEnd;
                    }
                }
                ChunkState::DataEnd => {
                    let Some(nl) = inp[pos..].iter().position(|&b| b == b'\n') else {
                        return Ok(pos);
                    };
                    if !inp[pos..pos + nl].trim_ascii().is_empty() {
                        return Err(BadChunk);
                    }
                    pos += nl + 1;
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailer => {
                    // Trailer fields are dropped: the client response is re-framed.
                    let Some(nl) = inp[pos..].iter().position(|&b| b == b'\n') else {
                        if inp.len() - pos > 8192 {
                            return Err(BadChunk);
                        }
                        return Ok(pos);
                    };
                    let empty = inp[pos..pos + nl].trim_ascii().is_empty();
                    pos += nl + 1;
                    if empty {
                        self.done = true;
                    }
                }
            }
        }
        Ok(pos)
    }
}

/// Split `scheme://authority/rest` into its parts.
fn split_url(v: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = v.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some((scheme, &rest[..end], &rest[end..]))
}

/// What the response rewriting needs to know about the request.
pub struct RemapCtx<'a> {
    pub opts: &'a HeaderOpts,
    /// The Host the backend was sent.
    pub sent_host: &'a str,
    /// The Host the client used (with port if it gave one).
    pub client_host: &'a str,
    pub client_https: bool,
}

/// Rewrite a `Location` / `Content-Location` value back into the client's view.
pub fn remap_location(ctx: &RemapCtx<'_>, v: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(v).ok()?;
    if s.starts_with('/') {
        return map_path_response(&ctx.opts.map_urlpath, s).map(String::into_bytes);
    }
    let (scheme, auth, rest) = split_url(s)?;
    let new_auth = map_host_response(&ctx.opts.map_host_response, auth, ctx.sent_host, ctx.client_host);
    let new_rest = if rest.starts_with('/') { map_path_response(&ctx.opts.map_urlpath, rest) } else { None };
    let new_scheme = if ctx.opts.https_remap && ctx.client_https && scheme.eq_ignore_ascii_case("http") {
        Some("https")
    } else {
        None
    };
    if new_auth.is_none() && new_rest.is_none() && new_scheme.is_none() {
        return None;
    }
    Some(
        format!(
            "{}://{}{}",
            new_scheme.unwrap_or(scheme),
            new_auth.as_deref().unwrap_or(auth),
            new_rest.as_deref().unwrap_or(rest)
        )
        .into_bytes(),
    )
}

/// Rewrite the `Domain` and `Path` attributes of a `Set-Cookie` value.
pub fn remap_set_cookie(ctx: &RemapCtx<'_>, v: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(v).ok()?;
    let mut changed = false;
    let mut parts: Vec<String> = Vec::new();
    for (i, p) in s.split(';').enumerate() {
        if i > 0 {
            let t = p.trim_start();
            let lead = &p[..p.len() - t.len()];
            if let Some((k, val)) = t.split_once('=') {
                if k.trim().eq_ignore_ascii_case("domain") {
                    let dot = val.starts_with('.');
                    let d = val.trim_start_matches('.');
                    if let Some(nd) =
                        map_host_response(&ctx.opts.map_host_response, d, ctx.sent_host, ctx.client_host)
                    {
                        // A cookie domain has no port.
                        let nd = nd.rsplit_once(':').map_or(nd.as_str(), |(h, _)| h).to_string();
                        parts.push(format!("{lead}{k}={}{nd}", if dot { "." } else { "" }));
                        changed = true;
                        continue;
                    }
                } else if k.trim().eq_ignore_ascii_case("path") {
                    if let Some(np) = map_path_response(&ctx.opts.map_urlpath, val) {
                        parts.push(format!("{lead}{k}={np}"));
                        changed = true;
                        continue;
                    }
                }
            }
        }
        parts.push(p.to_string());
    }
    changed.then(|| parts.join(";").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info<'a>() -> RequestInfo<'a> {
        RequestInfo {
            method: b"GET",
            target: b"/a?b",
            host: "back:8080",
            client_host: b"front.example",
            remote_addr: "10.0.0.1",
            hop_addr: "10.0.0.1",
            local_addr: "127.0.0.1:80",
            scheme: "http",
            content_length: None,
            chunked_body: false,
            upgrade: None,
            http10: false,
            forwarded: ForwardedOpts::default(),
        }
    }

    #[test]
    fn request_strips_hop_by_hop_and_appends_xff() {
        let hs: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"front.example"),
            (b"Connection", b"keep-alive, X-Private"),
            (b"X-Private", b"secret"),
            (b"Keep-Alive", b"300"),
            (b"TE", b"trailers"),
            (b"X-Forwarded-For", b"1.2.3.4"),
            (b"Accept", b"*/*"),
        ];
        let h = String::from_utf8(build_request(&info(), &hs)).unwrap();
        assert!(h.starts_with("GET /a?b HTTP/1.1\r\nHost: back:8080\r\n"), "{h}");
        assert!(!h.contains("X-Private") && !h.contains("Keep-Alive") && !h.contains("TE:"), "{h}");
        assert!(h.contains("Accept: */*\r\n"));
        assert!(h.contains("X-Forwarded-For: 1.2.3.4, 10.0.0.1\r\n"), "{h}");
        assert!(h.contains("X-Host: front.example\r\n"));
        assert!(h.contains("X-Forwarded-Host: front.example\r\n"));
        assert!(!h.contains("Forwarded: "), "{h}");
    }

    #[test]
    fn forwarded_header() {
        let mut i = info();
        i.remote_addr = "::1";
        i.hop_addr = "::1";
        i.forwarded = ForwardedOpts { for_: true, proto: true, host: true, by: true };
        let hs: Vec<(&[u8], &[u8])> = vec![(b"Forwarded", b"for=1.1.1.1")];
        let h = String::from_utf8(build_request(&i, &hs)).unwrap();
        assert!(
            h.contains(
                "Forwarded: for=1.1.1.1, for=\"[::1]\";proto=http;host=front.example;by=\"127.0.0.1:80\"\r\n"
            ),
            "{h}"
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_hop_is_appended() {
        // mod_extforward took the client (192.0.2.9) from the proxy's (10.0.0.1) headers: the
        // chains keep the client and get the hop this server saw.
        let mut i = info();
        i.remote_addr = "192.0.2.9";
        i.forwarded = ForwardedOpts { for_: true, ..ForwardedOpts::default() };
        let hs: Vec<(&[u8], &[u8])> = vec![(b"X-Forwarded-For", b"192.0.2.9")];
        let h = String::from_utf8(build_request(&i, &hs)).unwrap();
        assert!(h.contains("X-Forwarded-For: 192.0.2.9, 10.0.0.1\r\n"), "{h}");
        assert!(h.contains("Forwarded: for=192.0.2.9, for=10.0.0.1\r\n"), "{h}");
        let hs: Vec<(&[u8], &[u8])> = vec![(b"Forwarded", b"for=192.0.2.9;proto=https")];
        let h = String::from_utf8(build_request(&i, &hs)).unwrap();
        assert!(h.contains("Forwarded: for=192.0.2.9;proto=https, for=10.0.0.1\r\n"), "{h}");
    }

    #[test]
    fn response_framing() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nKeep-Alive: x\r\n\r\nhello", false)
            .unwrap();
        assert_eq!((r.status, r.framing, r.keep_alive), (200, Framing::Length(5), true));
        assert!(r.headers.is_empty());
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false).unwrap();
        assert_eq!(r.framing, Framing::Chunked);
        let r = parse_response(b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n", false).unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::Close, false));
        assert_eq!(parse_response(b"HTTP/1.1 200 OK\r\n", false).unwrap_err(), HeadError::Partial);
        assert_eq!(parse_response(b"garbage\r\n\r\n", false).unwrap_err(), HeadError::Invalid);
        let r = parse_response(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", false)
            .unwrap();
        assert!(!r.keep_alive);
    }

    #[test]
    fn dechunk_in_pieces() {
        let body = b"5\r\nhello\r\na;x=y\r\n0123456789\r\n0\r\nT: v\r\n\r\n";
        for split in 1..body.len() {
            let mut d = Dechunker::default();
            let mut out = Vec::new();
            let mut buf = body[..split].to_vec();
            let n = d.feed(&buf, &mut out).unwrap();
            buf.drain(..n);
            buf.extend_from_slice(&body[split..]);
            let n = d.feed(&buf, &mut out).unwrap();
            assert_eq!(n, buf.len());
            assert!(d.done);
            assert_eq!(out, b"hello0123456789");
        }
        assert!(Dechunker::default().feed(b"zz\r\n", &mut Vec::new()).is_err());
    }

    #[test]
    fn host_maps() {
        let m =
            vec![("-".to_string(), "backend.internal".to_string()), ("a.example".into(), "b.example".into())];
        assert_eq!(map_host_request(&m, "a.example"), "b.example");
        assert_eq!(map_host_request(&m, "other"), "backend.internal");
        let r = vec![("-".to_string(), "-".to_string())];
        assert_eq!(
            map_host_response(&r, "backend.internal", "backend.internal", "front:81").as_deref(),
            Some("front:81")
        );
        assert_eq!(map_host_response(&r, "elsewhere", "backend.internal", "front"), None);
    }

    #[test]
    fn location_and_cookie() {
        let opts = HeaderOpts {
            map_host_response: vec![("back.example".into(), "front.example".into())],
            map_urlpath: vec![("/front/".into(), "/back/".into())],
            https_remap: true,
            ..Default::default()
        };
        let ctx = RemapCtx {
            opts: &opts,
            sent_host: "back.example",
            client_host: "front.example",
            client_https: true,
        };
        assert_eq!(
            remap_location(&ctx, b"http://back.example/back/x?y").unwrap(),
            b"https://front.example/front/x?y"
        );
        assert_eq!(remap_location(&ctx, b"/back/z").unwrap(), b"/front/z");
        assert_eq!(remap_location(&ctx, b"/other"), None);
        assert_eq!(
            remap_set_cookie(&ctx, b"a=b; Domain=.back.example; Path=/back/p").unwrap(),
            b"a=b; Domain=.front.example; Path=/front/p"
        );
        assert_eq!(map_path_request(&opts.map_urlpath, b"/front/q?x"), b"/back/q?x");
    }
}
