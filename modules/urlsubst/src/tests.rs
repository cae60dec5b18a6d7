//! Tables of cases. The expected results are what lighttpd 1.4.69 answers for the same rule
//! and target, except where a comment says featherd differs (and why).

use super::*;

fn url(target: &'static str) -> Url<'static> {
    let query = target.split_once('?').map(|(_, q)| q.as_bytes());
    Url {
        scheme: b"http",
        authority: Cow::Borrowed(b"example.org:8080"),
        port: 8080,
        target: target.as_bytes(),
        query,
    }
}

/// Run one rule on `target`, with `%n` taken from `cond`.
fn run(pattern: &str, replacement: &str, target: &'static str, cond: &[&str]) -> Outcome {
    let rule = Rule::new(pattern, replacement).unwrap_or_else(|e| panic!("{pattern} => {replacement}: {e}"));
    process([&rule], target.as_bytes(), &url(target), |n| cond.get(n as usize).map(|s| s.as_bytes()))
}

fn result(pattern: &str, replacement: &str, target: &'static str) -> String {
    match run(pattern, replacement, target, &["www.example.org", "www"]) {
        Outcome::Replace { result, .. } => String::from_utf8(result).expect("utf-8"),
        other => panic!("{pattern} => {replacement} on {target}: {other:?}"),
    }
}

#[test]
fn substitutions() {
    let cases: &[(&str, &str, &str, &str)] = &[
        // (regex, replacement, target, result)
        ("^/r/(.*)$", "/x/$1", "/r/a%20b/c?d=e&f", "/x/a%20b/c?d=e&f"),
        ("^/r/(.*)$", "/x/${noesc:1}", "/r/a%20b/c?d=e", "/x/a%20b/c?d=e"),
        ("^/r/(.*)$", "/x/${noescape:1}", "/r/a%20b/c?d=e", "/x/a%20b/c?d=e"),
        ("^/r/(.*)$", "/x/${esc:1}", "/r/a%20b/c?d=e&f", "/x/a%2520b%2Fc%3Fd%3De%26f"),
        ("^/r/(.*)$", "/x/${escape:1}", "/r/a%20b/c?d=e&f", "/x/a%2520b%2Fc%3Fd%3De%26f"),
        ("^/r/(.*)$", "/x/${escnde:1}", "/r/a%20b/c%2Fd%41?d=e", "/x/a%20b%2Fc%2FdA%3Fd%3De"),
        ("^/r/(.*)$", "/x/${escpsnde:1}", "/r/a%20b/c%2fd%7e?d=e", "/x/a%20b/c%2fd~%3Fd%3De"),
        // ${n} without a modifier is escpsnde; $n is as it is.
        ("^/r/(.*)$", "/x/${1}", "/r/a%20b/c?d", "/x/a%20b/c%3Fd"),
        ("^/r/(.*)$", "/x/${01}", "/r/abc", "/x/abc"),
        ("^/r/(.*)$", "/x/${9}|${19}|$9", "/r/abc", "/x/||"),
        // Case: the letters change, %XX sequences do not. (lighttpd 1.4.69 inserts nothing for
        // ${tolower:1} without an escape modifier and lowercases for toupper; featherd does
        // what its documentation says.)
        ("^/r/(.*)$", "/x/${tolower:1}", "/r/AbC%2F", "/x/abc%2F"),
        ("^/r/(.*)$", "/x/${toupper:1}", "/r/AbC%2f", "/x/ABC%2f"),
        ("^/r/(.*)$", "/x/${tolower:esc:1}", "/r/AbC%2F", "/x/abc%252f"),
        ("^/r/(.*)$", "/x/${tolower:noesc:1}", "/r/Ab%20C", "/x/ab%20c"),
        ("^/r/(.*)$", "/x/${encb64u:1}", "/r/hello", "/x/aGVsbG8"),
        ("^/r/(.*)$", "/x/${encb64u:1}", "/r/h%C3%A9llo?x", "/x/aCVDMyVBOWxsbz94"),
        ("^/r/(.*)$", "/x/${decb64u:1}", "/r/aGVsbG8", "/x/hello"),
        ("^/r/(.*)$", "/x/${decb64u:1}", "/r/aGVsbG8=", "/x/hello"),
        ("^/r/(.*)$", "/x/${tolower:decb64u:1}", "/r/SGVMTE8", "/x/hello"),
        // Decoded bytes are escaped unless told otherwise (lighttpd inserts them raw).
        ("^/r/(.*)$", "/x/${decb64u:1}", "/r/aMOpbGxvIHc", "/x/h%C3%A9llo%20w"),
        ("^/r/(.*)$", "/x/${noesc:decb64u:1}", "/r/aMOpbGxv", "/x/h\u{e9}llo"),
        ("^/r/(.*)$", "/x/${decb64u:1}", "/r/!!", "/x/"),
        // URL parts, as they are unless a modifier says otherwise.
        (
            "^/r/(.*)$",
            "/s=${url.scheme}&a=${url.authority}&p=${url.port}&path=${url.path}&q=${url.query}",
            "/r/x%20y?q=1",
            "/s=http&a=example.org:8080&p=8080&path=/r/x%20y&q=q=1",
        ),
        (
            "^/r/(.*)$",
            "/x/${esc:url.path}|${toupper:url.authority}",
            "/r/p%20q?a",
            "/x/%2Fr%2Fp%2520q|EXAMPLE.ORG:8080",
        ),
        ("^/r/(.*)$", "/x${url.query}", "/r/x", "/x"),
        // ${qsa}: "?" or "&" as the result needs, nothing without a query.
        ("^/r/([^?]*)", "/x/$1${qsa}", "/r/a?q=1", "/x/a?q=1"),
        ("^/r/([^?]*)", "/x/$1${qsa}", "/r/a", "/x/a"),
        ("^/r/([^?]*)", "/x/$1${qsa}", "/r/a?", "/x/a?"),
        ("^/r/([^?]*)", "/x/$1?a=b${qsa}", "/r/a?q=1", "/x/a?a=b&q=1"),
        ("^/r/([^?]*)", "/x/$1?a=b${qsa}", "/r/a?", "/x/a?a=b"),
        ("^/r/([^?]*)", "/x/$1?a=b${qsa}", "/r/a", "/x/a?a=b"),
        ("^/r/([^?]*)", "/x/${esc:qsa}", "/r/x?A=b%20", "/x/?A%3Db%2520"),
        ("", "/index.php${qsa}", "/blog/post?p=2&q", "/index.php?p=2&q"),
        // Literals.
        ("^/r/", "/x/$$1/%%1/%a/$a/$%1", "/r/", "/x/$1/%1/%a/$a/$%1"),
        ("^/r/", "/x/$", "/r/", "/x/$"),
        // $10 is $1 and a 0; ${10} is group 10.
        (
            "^/r/(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)",
            "/x/$10-${10}-${12}-${13}",
            "/r/abcdefghijklm",
            "/x/a0-j-l-",
        ),
        // The enclosing condition's groups.
        ("^/h/(.*)", "/sites/%1/$1/%0", "/h/AbC", "/sites/www/AbC/www.example.org"),
        ("^/h/(.*)", "/sites/%{toupper:1}/%{esc:0}/%9", "/h/x", "/sites/WWW/www.example.org/"),
        // Look-around needs the backtracking engine (PCRE users write it).
        ("^/(?!static/)(.*)$", "/app/$1", "/page/1", "/app/page/1"),
        ("^/(\\w+)/\\1$", "/twice/$1", "/ab/ab", "/twice/ab"),
    ];
    for (pattern, replacement, target, want) in cases {
        assert_eq!(result(pattern, replacement, target), *want, "{pattern} => {replacement} on {target}");
    }
}

#[test]
fn unmatched_blank_and_first_match_wins() {
    let rules = [
        Rule::new("^/static/", "").unwrap(),
        Rule::new("^/a", "/first").unwrap(),
        Rule::new("^/a", "/second").unwrap(),
    ];
    let p = |t: &'static str| process(rules.iter(), t.as_bytes(), &url(t), |_| None);
    assert_eq!(p("/b"), Outcome::NoMatch);
    assert_eq!(p("/static/a"), Outcome::Stop { rule: 0 });
    assert_eq!(p("/a"), Outcome::Replace { rule: 1, result: b"/first".to_vec() });
    // A rule after a blank one that matched is not tried.
    assert!(matches!(run("^/x", "", "/x", &[]), Outcome::Stop { rule: 0 }));
}

#[test]
fn results_never_hold_controls_or_spaces() {
    let r = run("^/(.*)", "/ua/%1/a b", "/x", &["", "Mozilla/5.0 (X11)\r\nX: y"]);
    assert_eq!(
        r,
        Outcome::Replace { rule: 0, result: b"/ua/Mozilla/5.0%20(X11)%0D%0AX:%20y/a%20b".to_vec() }
    );
    let r = run("^/(.*)", "/${noesc:decb64u:1}", "/YQ1i", &[]);
    assert_eq!(r, Outcome::Replace { rule: 0, result: b"/a%0Db".to_vec() });
}

#[test]
fn refused_replacements() {
    let cases: &[(&str, &str)] = &[
        ("/x/${1", "unterminated ${"),
        ("/x/%{1", "unterminated %{"),
        ("/x/${foo:1}", "unknown modifier \"foo\" in ${foo:1}"),
        ("/x/${url.host}", "unknown substitution \"url.host\""),
        ("/x/${}", "unknown substitution \"\""),
        ("/x/${123}", "unknown substitution \"123\""),
        ("/x/${esc:}", "unknown substitution \"\" in ${esc:}"),
    ];
    for (replacement, want) in cases {
        let e = Rule::new("^/", replacement).expect_err(replacement);
        assert!(e.contains(want), "{replacement}: {e}");
        assert!(e.contains(&format!("{replacement:?}")), "names the rule: {e}");
    }
    let e = Rule::new("^/(", "/x").expect_err("bad regex");
    assert!(e.starts_with("invalid regex \"^/(\""), "{e}");
}

#[test]
fn escape_table() {
    let cases: &[(&str, Escape, &str)] = &[
        ("a b/c%2f%41%zz~", Escape::Raw, "a b/c%2f%41%zz~"),
        ("a b/c%2f%41%zz~", Escape::All, "a%20b%2Fc%252f%2541%25zz~"),
        ("a b/c%2f%41%zz~", Escape::Nde, "a%20b%2Fc%2fA%25zz~"),
        ("a b/c%2f%41%zz~", Escape::Psnde, "a%20b/c%2fA%25zz~"),
        ("\u{e9}%", Escape::Psnde, "%C3%A9%25"),
        ("%4", Escape::Nde, "%254"),
    ];
    for (src, esc, want) in cases {
        let mut out = Vec::new();
        escape_into(&mut out, src.as_bytes(), *esc);
        assert_eq!(String::from_utf8_lossy(&out), *want, "{src:?} {esc:?}");
    }
}

#[test]
fn uses_condition_and_blank() {
    assert!(Template::parse("/%1").unwrap().uses_condition());
    assert!(Template::parse("/%{esc:1}").unwrap().uses_condition());
    assert!(!Template::parse("/%%1/$1").unwrap().uses_condition());
    assert!(Template::parse("").unwrap().is_blank());
    assert!(!Template::parse("/").unwrap().is_blank());
}

#[test]
fn hosts_and_ports() {
    assert_eq!(host_part(b"example.org:81"), b"example.org");
    assert_eq!(host_part(b"example.org"), b"example.org");
    assert_eq!(host_part(b"[::1]:81"), b"::1");
    assert_eq!(port_of(b"127.0.0.1:8080"), 8080);
    assert_eq!(port_of(b"[::1]:443"), 443);
    assert_eq!(port_of(b"nonsense"), 0);
}

#[test]
fn compiled_rules_are_shared() {
    let a = compile("^/shared/(.*)", "/x/$1").unwrap();
    let b = compile("^/shared/(.*)", "/x/$1").unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let c = compile("^/shared/(.*)", "/y/$1").unwrap();
    assert!(!Arc::ptr_eq(&a, &c));
    assert!(compile("(", "/").is_err());
}

#[test]
fn a_regex_past_its_backtracking_limit_fails_the_request() {
    let target = "/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb!";
    match run("^/(?=b)(b|b)*$", "/never", target, &[]) {
        Outcome::Failed(e) => assert!(e.starts_with("regex \"^/(?=b)(b|b)*$\" failed"), "{e}"),
        other => panic!("{other:?}"),
    }
}
