//! Request bodies end to end: Content-Length and chunked framing, malformed chunked bodies,
//! `server.stream-request-body` 0 (buffered, spilled to a file under server.upload-dirs) and
//! 2 (streamed with backpressure), with the server's peak memory checked from /proc while a
//! large body goes through.

use featherd_e2e::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

fn conf(extra: &str) -> String {
    format!(
        "{BASE}\nserver.max-worker := 1\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_waiter\", \"mod_probe\", \"mod_panic\" )\nserver.upload-dirs = ( \"@DIR@\" )\n{extra}\n"
    )
}

fn peak_rss_kib(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Upload `total` bytes (a repeating pattern) to /upload; returns the response and the sum.
fn upload(port: u16, total: u64, chunked: bool) -> (Response, u64) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = if chunked {
        "POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_string()
    } else {
        format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n")
    };
    s.write_all(head.as_bytes()).unwrap();
    let block: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let mut sent = 0u64;
    let mut sum = 0u64;
    while sent < total {
        let n = (block.len() as u64).min(total - sent) as usize;
        if chunked {
            s.write_all(format!("{n:x}\r\n").as_bytes()).unwrap();
        }
        s.write_all(&block[..n]).unwrap();
        if chunked {
            s.write_all(b"\r\n").unwrap();
        }
        sum = block[..n].iter().fold(sum, |a, &b| a.wrapping_add(u64::from(b)));
        sent += n as u64;
    }
    if chunked {
        s.write_all(b"0\r\n\r\n").unwrap();
    }
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    (parse_responses(&out, false).remove(0), sum)
}

#[test]
fn chunked_bodies_are_decoded_and_malformed_ones_refused() {
    let s = Server::start(&conf(""));
    let r = request(
        s.port,
        "POST /probe-early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\nA\r\n, chunked!\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.text().contains("body=hello, chunked!\n"), "{}", r.text());
    assert!(r.text().contains("content_length=15\n"), "buffered chunked body gets a length: {}", r.text());
    for bad in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloXX\r\n0\r\n\r\n",
        "5\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\nbad\ntrailer\r\n\r\n",
    ] {
        let req = format!("POST /probe-early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{bad}");
        let rs = parse_responses(&raw(s.port, req.as_bytes()), false);
        assert_eq!(rs.len(), 1, "{bad:?}");
        assert_eq!(rs[0].status, 400, "{bad:?}");
        assert_eq!(rs[0].header("connection"), Some("close"));
    }
    // Pipelined after a chunked body: the next request is intact.
    let data = raw(
        s.port,
        b"POST /probe-early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    );
    let rs = parse_responses(&data, false);
    assert_eq!(rs.len(), 2);
    assert!(rs[0].text().contains("body=abc\n"));
    assert_eq!(rs[1].text(), "still here\n");
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let s = Server::start(&conf(""));
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST /probe-early HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 25];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.write_all(b"data").unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    let r = parse_responses(&rest, false).remove(0);
    assert!(r.text().contains("body=data\n"));
}

#[test]
fn buffered_upload_spills_to_disk_and_keeps_memory_low() {
    let s = Server::start(&conf("server.stream-request-body = 0\n"));
    let total = 300u64 << 20;
    let (r, sum) = upload(s.port, total, false);
    assert_eq!(r.text(), format!("bytes={total} sum={sum}\n"));
    let peak = peak_rss_kib(s.pid());
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB for a {total}-byte upload");
    let (r, sum) = upload(s.port, 20 << 20, true);
    assert_eq!(r.text(), format!("bytes={} sum={sum}\n", 20u64 << 20));
}

#[test]
fn streamed_upload_is_paced_by_the_handler() {
    let s = Server::start(&conf("server.stream-request-body = 2\n"));
    let total = 300u64 << 20;
    let (r, sum) = upload(s.port, total, false);
    assert_eq!(r.text(), format!("bytes={total} sum={sum}\n"));
    let (r, sum) = upload(s.port, 30 << 20, true);
    assert_eq!(r.text(), format!("bytes={} sum={sum}\n", 30u64 << 20));
    let peak = peak_rss_kib(s.pid());
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB");
    // Nothing was written to the upload directory in streaming mode 2.
    let files = std::fs::read_dir(s.dir.path()).unwrap().count();
    assert!(files <= 4, "stray files in the upload dir");
}

#[test]
fn body_over_the_limit_is_refused_while_streaming() {
    let s = Server::start(&conf("server.stream-request-body = 2\nserver.max-request-size = 64\n"));
    let mut c = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let block = vec![b'x'; 32 * 1024];
    for _ in 0..4 {
        if c.write_all(format!("{:x}\r\n", block.len()).as_bytes()).is_err() || c.write_all(&block).is_err() {
            break;
        }
        let _ = c.write_all(b"\r\n");
    }
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
    assert_eq!(s.get("/ok").status, 200);
}
