//! The properties the fuzz targets check, shared with `core/tests/fuzz_corpus.rs`, which
//! runs them over the seed corpora on stable Rust (CI) without cargo-fuzz.

use featherd::body::BodyIn;
use featherd::http::parse::{parse_head, Head, Parsed};
use featherd::http::url::{normalize_path, SlashPolicy, UrlOpts};

/// The request-head parser: never panics, never claims more bytes than it was given,
/// answers the same for the same bytes (also after parsing something else into the same
/// `Head`, as the worker reuses it), and a complete head has a method and a target.
pub fn head_parse(data: &[u8]) {
    let mut head = Head::default();
    let first = parse_head(data, &mut head);
    if let Parsed::Complete(n) = first {
        assert!(n <= data.len(), "claimed {n} of {} bytes", data.len());
        assert!(!head.method.is_empty() && !head.target.is_empty());
        assert!(head.content_length.is_none() || !head.chunked, "Content-Length with chunked");
    }
    if let Parsed::Error(s) = first {
        assert!((400..=599).contains(&s), "status {s}");
    }
    let mut reused = Head::default();
    let _ = parse_head(b"GET /other HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", &mut reused);
    let second = parse_head(data, &mut reused);
    assert_eq!(first, second);
    if let Parsed::Complete(_) = first {
        assert_eq!(
            (&head.method, &head.target, head.content_length, head.chunked, &head.host),
            (&reused.method, &reused.target, reused.content_length, reused.chunked, &reused.host)
        );
    }
}

/// Feed `body` to a chunked decoder in pieces cut at `cuts`; the decoded bytes (or the error).
fn decode(body: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, usize, bool), u16> {
    let mut b = BodyIn::default();
    b.start_chunked();
    let mut used = 0;
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        let end = cut.clamp(start, body.len());
        let piece = &body[start..end];
        let n = b.feed(piece, 1 << 20, None)?;
        assert!(n <= piece.len());
        used += n;
        if n < piece.len() || b.complete {
            break;
        }
        start = end;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match b.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    assert_eq!(out.len() as u64, b.received);
    Ok((out, used, b.complete))
}

/// The chunked decoder: never panics, and the result does not depend on how the bytes are
/// split into reads (the first two bytes of `data` choose two cut points).
pub fn chunked(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let body = &data[2..];
    let whole = decode(body, &[]);
    let c1 = usize::from(data[0]) % (body.len() + 1);
    let c2 = c1 + usize::from(data[1]) % (body.len() + 1 - c1);
    let split = decode(body, &[c1, c2]);
    match (&whole, &split) {
        (Ok((a, used_a, done_a)), Ok((b, used_b, done_b))) => {
            if *done_a {
                assert!(*done_b, "complete at once but not in pieces");
                assert_eq!((a, used_a), (b, used_b));
            } else {
                // Incomplete either way: what was decoded so far is the same prefix.
                assert!(!*done_b);
                assert_eq!(a, b);
            }
        }
        (Err(x), Err(y)) => assert_eq!(x, y),
        // An error found at once may not be visible yet in a shorter piece, and the reverse
        // cannot happen: a complete body never errors when split.
        (Err(_), Ok((_, _, done))) => assert!(!*done, "error at once, success in pieces"),
        (Ok((_, _, done)), Err(_)) => assert!(!*done, "success at once, error in pieces"),
    }
}

/// The URL normaliser: never panics; an accepted path starts with '/', has no `.` or `..`
/// segment, no NUL, no control characters; `%2F` never becomes a separator unless asked; and
/// normalising an accepted path without '%' (or, with backslash translation, a backslash) gives it
/// back unchanged.
pub fn url_normalize(data: &[u8]) {
    let Some((&sel, raw)) = data.split_first() else { return };
    let opts = UrlOpts {
        slash: [SlashPolicy::Keep, SlashPolicy::Decode, SlashPolicy::Reject][usize::from(sel % 3)],
        dotseg_remove: sel & 4 == 0,
        ctrls_reject: sel & 8 == 0,
        backslash_trans: sel & 16 != 0,
        utf8_reject: sel & 32 != 0,
        query_20_plus: false,
    };
    let mut out = Vec::new();
    match normalize_path(raw, &opts, &mut out) {
        Ok(()) => {
            assert_eq!(out.first(), Some(&b'/'), "{out:?}");
            assert!(!out.contains(&0), "NUL in {out:?}");
            for seg in out.split(|&b| b == b'/') {
                assert!(seg != b"." && seg != b"..", "dot segment in {:?}", String::from_utf8_lossy(&out));
            }
            if opts.ctrls_reject {
                assert!(!out.iter().any(|&b| b < 0x20 || b == 0x7f), "control character in {out:?}");
            }
            // A decoded %25 is a literal '%', and a decoded %5C a literal backslash that a
            // second pass with url-path-backslash-trans would turn into '/' (as lighttpd, only
            // a backslash sent as such is a separator): those are not normal forms of input.
            let literal = out.contains(&b'%') || (opts.backslash_trans && out.contains(&b'\\'));
            if !literal {
                let mut again = Vec::new();
                assert_eq!(normalize_path(&out, &opts, &mut again), Ok(()));
                assert_eq!(again, out, "not idempotent");
            }
        }
        Err(s) => assert!((400..=599).contains(&s)),
    }
}
