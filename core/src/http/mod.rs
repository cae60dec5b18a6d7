//! HTTP/1.x pieces that are pure functions over bytes: the request head parser, the URL
//! normaliser, header lists, status texts, the cached Date header and built-in error pages.
//! No sockets here; the worker feeds bytes in and writes what these functions produce.

pub mod headers;
pub mod parse;
pub mod url;

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// A status whose response never has a body (RFC 9110 6.4.1).
pub fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

/// The built-in error page for a status without a body of its own.
pub fn error_page(status: u16) -> String {
    let r = reason(status);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{status} {r}</title>\n</head>\n<body>\n<h1>{status} {r}</h1>\n</body>\n</html>\n"
    )
}

struct DateCache {
    second: u64,
    value: String,
}

thread_local! {
    static DATE: RefCell<DateCache> = const { RefCell::new(DateCache { second: u64::MAX, value: String::new() }) };
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    let cached = NOW.with(std::cell::Cell::get);
    if cached != 0 {
        return cached;
    }
    clock_secs()
}

fn clock_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

thread_local! {
    /// The current second as a worker last read it (0: not cached on this thread).
    static NOW: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Read the clock once for this thread: [`unix_now`] answers from it until the next call (a
/// worker calls this after each poll, so a burst of events costs one clock read).
pub fn tick() -> u64 {
    let now = clock_secs();
    NOW.with(|n| n.set(now));
    now
}

/// Whether `v` holds a CR, LF or NUL (which never belong in a header value). One pass
/// without an early exit, which the compiler turns into vector code (values are short:
/// cheaper than a search routine's set-up).
pub fn has_cr_lf_nul(v: &[u8]) -> bool {
    v.iter().fold(0u8, |bad, &b| bad | ((b == b'\r') as u8 | (b == b'\n') as u8 | (b == 0) as u8)) != 0
}

/// Append the current HTTP date (IMF-fixdate), formatted at most once per second per thread.
pub fn append_date(out: &mut Vec<u8>) {
    let now = unix_now();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.second != now {
            d.second = now;
            d.value = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(now));
        }
        out.extend_from_slice(d.value.as_bytes());
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_bodies() {
        assert_eq!(reason(404), "Not Found");
        assert_eq!(reason(431), "Request Header Fields Too Large");
        assert!(status_has_no_body(304));
        assert!(status_has_no_body(204));
        assert!(!status_has_no_body(200));
        assert!(error_page(403).contains("<h1>403 Forbidden</h1>"));
    }

    #[test]
    fn date_is_imf_fixdate() {
        let mut v = Vec::new();
        append_date(&mut v);
        let s = String::from_utf8(v).unwrap();
        assert!(s.ends_with(" GMT"), "{s}");
        assert_eq!(s.len(), 29);
    }
}
