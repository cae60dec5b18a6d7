//! Parser tests: every construct of the language and the exact position and
//! wording of errors.

use featherd::config::{parse_file, parse_str, CondField, CondOp, Config, Value};
use std::path::{Path, PathBuf};

fn parse(src: &str) -> Config {
    match parse_str(src, Path::new("t.conf")) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error for {src:?}: {e}"),
    }
}

fn error(src: &str) -> String {
    match parse_str(src, Path::new("t.conf")) {
        Ok(_) => panic!("expected an error for {src:?}"),
        Err(e) => e.to_string(),
    }
}

/// Compact, unambiguous rendering of a value for table comparisons.
fn show(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("{s:?}"),
        Value::Int(i) => i.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|e| match &e.key {
                    Some(k) => format!("{k:?}=>{}", show(&e.value)),
                    None => show(&e.value),
                })
                .collect();
            format!("({})", items.join(","))
        }
    }
}

fn global(src: &str, key: &str) -> String {
    let cfg = parse(src);
    match cfg.global(key) {
        Some(s) => show(&s.value),
        None => panic!("{key} not set by {src:?}"),
    }
}

fn setting(cfg: &Config, block: usize, key: &str) -> String {
    match cfg.blocks[block].get(key) {
        Some(s) => show(&s.value),
        None => "<unset>".into(),
    }
}

#[test]
fn values() {
    let cases: &[(&str, &str, &str)] = &[
        (r#"a = "x""#, "a", r#""x""#),
        (r#"a = """#, "a", r#""""#),
        ("a = 42", "a", "42"),
        ("a = 012", "a", "12"),
        ("a = 0", "a", "0"),
        (r#"a = "q\"q""#, "a", r#""q\"q""#),
        // Only \" is an escape; other backslashes stay (regexes need them).
        (r#"a = "x\\y\n""#, "a", r#""x\\\\y\\n""#),
        (r#"a = "^/a\.b$""#, "a", r#""^/a\\.b$""#),
        ("a = \"line1\nline2\"", "a", r#""line1\nline2""#),
        (r#"a = "é ü 日本""#, "a", r#""é ü 日本""#),
        ("a = ( )", "a", "()"),
        ("a = ()", "a", "()"),
        (r#"a = ( "x" )"#, "a", r#"("x")"#),
        (r#"a = ( "x", "y", )"#, "a", r#"("x","y")"#),
        (r#"a = ( "x",, "y" )"#, "a", r#"("x","y")"#),
        (r#"a = ( "k" => "v" )"#, "a", r#"("k"=>"v")"#),
        (r#"a = ( "k" => ( "n" => 1 ) )"#, "a", r#"("k"=>("n"=>1))"#),
        (r#"a = ( ( "x" ) )"#, "a", r#"(("x"))"#),
        (r#"a = ( "k" => "v", "w" )"#, "a", r#"("k"=>"v","w")"#),
        ("a = ( 1, 2 )", "a", "(1,2)"),
        (r#"a = "x" + "y""#, "a", r#""xy""#),
        ("a = 1 + 2 + 3", "a", "6"),
        (r#"a = "s" + 3"#, "a", r#""s3""#),
        (r#"a = 3 + "s""#, "a", r#""3s""#),
        (r#"a = ( "x" ) + ( "y" )"#, "a", r#"("x","y")"#),
        (r#"a = ( "k" => 1 ) + ( "j" => 2 )"#, "a", r#"("k"=>1,"j"=>2)"#),
        ("a = \"x\" +\n \"y\"", "a", r#""xy""#),
        ("a =\n \"y\"", "a", r#""y""#),
        (r#"a = ( "k" + "2" => "v" + "w" )"#, "a", r#"("k2"=>"vw")"#),
        ("a = \"x\" # comment\n# another\n", "a", r#""x""#),
        ("a = \"x#not-a-comment\"", "a", r#""x#not-a-comment""#),
        ("\r\na = \"crlf\"\r\n", "a", r#""crlf""#),
        ("\ta\u{a0}=\t1", "a", "1"),
        ("a = 1 b = 2", "b", "2"),
        ("server.document-root = \"/x\"", "server.document-root", r#""/x""#),
        ("mod_x.some_key-2 = 1", "mod_x.some_key-2", "1"),
        // Plain keys and var.* can be referenced once set.
        ("server.port = 80\na = server.port", "a", "80"),
        ("root = \"/srv\"\na = root + \"/x\"", "a", r#""/srv/x""#),
        ("var.d = \"/srv\"\na = var.d + \"/www\"", "a", r#""/srv/www""#),
        ("var.n = 2\nvar.n += 3\na = var.n", "a", "5"),
        ("var.l = ( \"x\" )\na = var.l + ( \"y\" )", "a", r#"("x","y")"#),
        // Append, override.
        ("a = \"x\"\na += \"y\"", "a", r#""xy""#),
        ("a = 1\na += 2", "a", "3"),
        ("a = ( 1 )\na += ( 2 )", "a", "(1,2)"),
        ("a += \"fresh\"", "a", r#""fresh""#),
        ("a = \"x\"\na := \"y\"", "a", r#""y""#),
        ("a := \"only\"", "a", r#""only""#),
        ("a = \"x\"\na := \"y\"\na += \"z\"", "a", r#""yz""#),
        ("global { a = 1 }", "a", "1"),
        ("global {\n a = 1\n}\nb = a", "b", "1"),
    ];
    for (src, key, want) in cases {
        assert_eq!(&global(src, key), want, "source: {src:?}");
    }
}

#[test]
fn predefined_variables_and_environment() {
    std::env::set_var("FEATHERD_TEST_ENV", "from-env");
    assert_eq!(global("a = env.FEATHERD_TEST_ENV + \"!\"", "a"), r#""from-env!""#);
    assert_eq!(global("a = var.PID", "a"), std::process::id().to_string());
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(global("a = var.CWD", "a"), format!("{:?}", cwd.to_string_lossy()));
    // Variables are a parse-time device: they are not settings.
    let cfg = parse("var.x = 1\na = var.x");
    assert!(cfg.global("var.x").is_none());
    assert!(cfg.global("var.PID").is_none());
}

#[test]
fn benchmark_template_parses() {
    let src = r#"server.document-root = "/tmp/d"
server.bind          = "127.0.0.1"
server.port          = 8080
server.modules       = ( )
server.max-worker              = 0              # single process (default)
index-file.names     = ( "index.html" )
mimetype.assign      = (
    ".html" => "text/html",
    ".txt"  => "text/plain",
)
fastcgi.server = ( ".php" =>
    (( "socket"      => "/tmp/php.sock",
       "check-local" => "enable",
    ))
)
"#;
    let cfg = parse(src);
    assert_eq!(cfg.blocks.len(), 1);
    assert_eq!(cfg.global("server.port").unwrap().value, Value::Int(8080));
    assert_eq!(cfg.global("server.max-worker").unwrap().value.as_int(), Some(0));
    let fcgi = &cfg.global("fastcgi.server").unwrap().value;
    let php = fcgi.get(".php").unwrap().as_array().unwrap();
    assert_eq!(php.len(), 1);
    assert_eq!(php[0].value.get("check-local").and_then(Value::as_bool), Some(true));
    let s = cfg.global("server.bind").unwrap();
    assert_eq!(s.loc.to_string(), "t.conf:2:1");
}

#[test]
fn value_accessors() {
    for (v, b) in [
        ("\"enable\"", Some(true)),
        ("\"Disable\"", Some(false)),
        ("\"TRUE\"", Some(true)),
        ("\"false\"", Some(false)),
        ("\"1\"", Some(true)),
        ("\"0\"", Some(false)),
        ("1", Some(true)),
        ("0", Some(false)),
        ("2", None),
        ("\"maybe\"", None),
        ("( )", None),
    ] {
        let cfg = parse(&format!("a = {v}"));
        assert_eq!(cfg.global("a").unwrap().value.as_bool(), b, "{v}");
    }
    let cfg = parse("a = \"17\"\nb = ( \"x\" )\nc = 5");
    let (a, b, c) =
        (&cfg.global("a").unwrap().value, &cfg.global("b").unwrap().value, &cfg.global("c").unwrap().value);
    assert_eq!(a.as_int(), Some(17));
    assert_eq!(a.as_str(), Some("17"));
    assert_eq!(b.as_int(), None);
    assert_eq!(b.as_array().map(<[_]>::len), Some(1));
    assert_eq!(c.as_str(), None);
    assert_eq!((a.type_name(), b.type_name(), c.type_name()), ("string", "array", "integer"));
}

#[test]
fn errors_have_exact_positions() {
    let cases: &[(&str, &str)] = &[
        ("a = \"abc", "t.conf:1:5: unterminated string"),
        ("a = (\"x\" \"y\")", "t.conf:1:10: expected \"=>\", \",\" or \")\" in array, found string \"y\""),
        ("a = ( \"k\" => \"v\" }", "t.conf:1:18: expected \",\" or \")\" in array, found \"}\""),
        (
            "a = (\n  \"x\",\n  \"y\"\n",
            "t.conf:4:1: expected \"=>\", \",\" or \")\" in array, found end of file",
        ),
        ("a = ( , )", "t.conf:1:7: expected a value (string, integer, array or variable), found \",\""),
        ("a = ( 1 => 2 )", "t.conf:1:7: array key must be a string, found integer"),
        ("a = ( \"k\" => 1, \"k\" => 2 )", "t.conf:1:17: duplicate array key \"k\""),
        ("a = ( \"k\" => 1 ) + ( \"k\" => 2 )", "t.conf:1:18: duplicate array key \"k\" when merging arrays"),
        ("a \"x\"", "t.conf:1:3: expected \"=\", \"+=\" or \":=\" after \"a\", found string \"x\""),
        ("a = ", "t.conf:1:5: expected a value (string, integer, array or variable), found end of file"),
        ("a = 1;", "t.conf:1:6: unexpected ';' (statements are separated by newlines)"),
        (
            "a = 10k",
            "t.conf:1:7: unexpected character 'k' after integer 10 (integers are plain decimal digits)",
        ),
        ("a = 99999999999999999999", "t.conf:1:5: integer 99999999999999999999 is out of range"),
        ("a = 9223372036854775807 + 1", "t.conf:1:25: integer overflow in \"+\""),
        ("a = \"x\" + ( \"y\" )", "t.conf:1:9: type error: cannot combine string and array with \"+\""),
        ("a = ( \"y\" ) + \"x\"", "t.conf:1:13: type error: cannot combine array and string with \"+\""),
        (
            "a = ( \"y\" )\na += \"x\"",
            "t.conf:2:1: in \"a +=\": type error: cannot combine array and string with \"+\"",
        ),
        (
            "a = 1\na = 2",
            "t.conf:2:1: duplicate config variable \"a\" (use \":=\" to override or \"+=\" to append)",
        ),
        (
            "$HTTP[\"host\"] == \"x\" {\n  a = 1\n  a = 2\n}",
            "t.conf:3:3: duplicate config variable \"a\" (use \":=\" to override or \"+=\" to append)",
        ),
        (
            "var.x = 1\nvar.x = 2",
            "t.conf:2:1: duplicate config variable \"var.x\" (use \":=\" to override or \"+=\" to append)",
        ),
        ("a = nope.key", "t.conf:1:5: undefined variable \"nope.key\""),
        ("a = var.nope", "t.conf:1:5: undefined variable \"var.nope\""),
        (
            "a = env.FEATHERD_SURELY_UNSET_VAR",
            "t.conf:1:5: environment variable \"FEATHERD_SURELY_UNSET_VAR\" is not set",
        ),
        ("env.X = 1", "t.conf:1:1: cannot assign to \"env.X\": env.* reads the process environment"),
        ("a = 1 }", "t.conf:1:7: unexpected \"}\" without an open block"),
        (
            "$HTTP[\"host\"] == \"x\" {\n  a = 1\n",
            "t.conf:3:1: expected \"}\" to close the block opened at 1:22, found end of file",
        ),
        (
            "$HTTP[\"host\"] = \"x\" { }",
            "t.conf:1:15: expected a condition operator (==, !=, =~, !~, =^ or =$), found \"=\"",
        ),
        ("$HTTP[\"host\"] <> \"x\" { }", "t.conf:1:15: unexpected character '<'"),
        ("$HTTP[\"host\"] ! \"x\" { }", "t.conf:1:15: unexpected '!' (only \"!=\" and \"!~\" exist)"),
        ("$HTTP[\"hots\"] == \"x\" { }", "t.conf:1:2: unknown condition field $HTTP[\"hots\"]"),
        ("$FOO[\"x\"] == \"x\" { }", "t.conf:1:2: unknown condition field $FOO[\"x\"]"),
        ("$HTTP[\"host\"] == \"x\"\na = 1", "t.conf:2:1: expected \"{\" after the condition, found \"a\""),
        ("$HTTP[\"host\"] == ( \"x\" ) { }", "t.conf:1:18: condition pattern must be a string, found array"),
        ("$HTTP[\"host\"] =~ \"(unclosed\" { }", "t.conf:1:18: invalid regex \"(unclosed\": unclosed group"),
        (
            "$HTTP[\"remoteip\"] == \"10.0.0.0/33\" { }",
            "t.conf:1:22: invalid IP address or CIDR network \"10.0.0.0/33\"",
        ),
        (
            "$HTTP[\"remoteip\"] == \"10.0.0.300\" { }",
            "t.conf:1:22: invalid IP address or CIDR network \"10.0.0.300\"",
        ),
        (
            "$HTTP[\"remoteip\"] != \"::1/129\" { }",
            "t.conf:1:22: invalid IP address or CIDR network \"::1/129\"",
        ),
        (
            "$HTTP[\"remoteip\"] =^ \"10.\" { }",
            "t.conf:1:22: operator =^ cannot be used with $HTTP[\"remoteip\"] (use ==, !=, =~ or !~)",
        ),
        ("else { }", "t.conf:1:1: \"else\" without a preceding condition block"),
        (
            "$HTTP[\"host\"] == \"x\" { } else a = 1",
            "t.conf:1:31: expected a condition or \"{\" after \"else\", found \"a\"",
        ),
        (
            "$HTTP[\"host\"] == \"x\" { global { a = 1 } }",
            "t.conf:1:24: \"global { }\" is only allowed at the top level",
        ),
        ("a = 1 :", "t.conf:1:7: unexpected character ':' (did you mean \":=\"?)"),
        ("a = \"x\0\"", "t.conf:1:7: NUL byte in string"),
        ("a = 1 \0", "t.conf:1:7: stray NUL byte"),
        ("\"x\" = 1", "t.conf:1:1: expected a key, a condition, \"include\" or \"}\", found string \"x\""),
        ("include \"does-not-exist.conf\"", "t.conf:1:9: include file not found: \"./does-not-exist.conf\""),
        ("include_shell \"exit 3\"", "t.conf:1:15: include_shell \"exit 3\" exited with status 3"),
    ];
    for (src, want) in cases {
        assert_eq!(&error(src), want, "source: {src:?}");
    }
}

#[test]
fn nesting_is_limited() {
    let deep = format!("a = {}1{}", "(".repeat(200), ")".repeat(200));
    assert_eq!(error(&deep), "t.conf:1:68: nesting too deep (limit 64)");
    let blocks = "$HTTP[\"url\"] == \"x\" {\n".repeat(100);
    assert_eq!(error(&blocks), "t.conf:65:1: nesting too deep (limit 64)");
}

#[test]
fn conditional_blocks() {
    let cfg = parse(
        r#"a = "top"
$HTTP["host"] == "example.org" {
    a = "host"
    $HTTP["url"] =~ "^/(x)" {
        b = 1
    }
}
$SERVER["socket"] == ":8443" { ssl.engine = "enable" }
"#,
    );
    assert_eq!(cfg.blocks.len(), 4);
    let b1 = &cfg.blocks[1];
    assert_eq!((b1.id, b1.parent, b1.else_of), (1, Some(0), None));
    let c = b1.cond.as_ref().unwrap();
    assert_eq!((&c.field, c.op), (&CondField::Host, CondOp::Eq));
    assert_eq!(c.pattern, "example.org");
    assert_eq!(c.text, r#"$HTTP["host"] == "example.org""#);
    assert_eq!(c.loc.to_string(), "t.conf:2:1");
    assert_eq!(b1.loc.to_string(), "t.conf:2:1");
    assert_eq!(cfg.blocks[2].parent, Some(1));
    assert!(cfg.blocks[2].cond.as_ref().unwrap().is_regex());
    assert_eq!(setting(&cfg, 2, "b"), "1");
    assert_eq!(setting(&cfg, 1, "a"), r#""host""#);
    assert_eq!(setting(&cfg, 0, "a"), r#""top""#);
    assert_eq!(cfg.blocks[3].cond.as_ref().unwrap().field, CondField::ServerSocket);
    assert_eq!(setting(&cfg, 3, "ssl.engine"), r#""enable""#);
}

#[test]
fn all_condition_fields_and_operators() {
    let fields: &[(&str, CondField)] = &[
        (r#"$HTTP["host"]"#, CondField::Host),
        (r#"$HTTP["url"]"#, CondField::Url),
        (r#"$HTTP["querystring"]"#, CondField::QueryString),
        (r#"$HTTP["scheme"]"#, CondField::Scheme),
        (r#"$HTTP["request-method"]"#, CondField::RequestMethod),
        (r#"$HTTP["useragent"]"#, CondField::UserAgent),
        (r#"$HTTP["user-agent"]"#, CondField::UserAgent),
        (r#"$HTTP["referer"]"#, CondField::Referer),
        (r#"$HTTP["cookie"]"#, CondField::Cookie),
        (r#"$HTTP["language"]"#, CondField::Language),
        (r#"$REQUEST_HEADER["X-Forwarded-For"]"#, CondField::RequestHeader("X-Forwarded-For".into())),
        (r#"$SERVER["socket"]"#, CondField::ServerSocket),
        (r#"$PHYSICAL["path"]"#, CondField::PhysicalPath),
        (r#"$PHYSICAL["existing-path"]"#, CondField::PhysicalExistingPath),
    ];
    let ops = [
        ("==", CondOp::Eq),
        ("!=", CondOp::Ne),
        ("=~", CondOp::Match),
        ("!~", CondOp::NotMatch),
        ("=^", CondOp::Prefix),
        ("=$", CondOp::Suffix),
    ];
    for (text, field) in fields {
        for (op_text, op) in ops {
            let cfg = parse(&format!("{text} {op_text} \"a\" {{ x = 1 }}"));
            let c = cfg.blocks[1].cond.as_ref().unwrap();
            assert_eq!((&c.field, c.op), (field, op), "{text} {op_text}");
        }
    }
    // remoteip: CIDR for == and !=, regex for =~ and !~.
    for src in [
        r#"$HTTP["remoteip"] == "10.0.0.0/8" { }"#,
        r#"$HTTP["remoteip"] != "192.168.1.7" { }"#,
        r#"$HTTP["remote-ip"] == "2001:db8::/32" { }"#,
        r#"$HTTP["remoteip"] == "::1" { }"#,
        r#"$HTTP["remoteip"] =~ "^10\." { }"#,
        r#"$HTTP["remoteip"] !~ "^10\." { }"#,
    ] {
        assert_eq!(parse(src).blocks[1].cond.as_ref().unwrap().field, CondField::RemoteIp);
    }
    // Field names and patterns are expressions.
    let cfg = parse("var.h = \"example\"\n$HTTP[\"ho\" + \"st\"] == var.h + \".org\" { }");
    let c = cfg.blocks[1].cond.as_ref().unwrap();
    assert_eq!((&c.field, c.pattern.as_str()), (&CondField::Host, "example.org"));
    // A pattern lighttpd users write with look-around falls back to fancy-regex.
    parse(r#"$HTTP["url"] =~ "^/(?!admin)" { }"#);
    parse(r#"$HTTP["host"] =~ "^(a+)\1$" { }"#);
}

#[test]
fn else_chains() {
    let cfg = parse(
        r#"$HTTP["host"] == "a" { x = 1 }
else $HTTP["host"] == "b" { x = 2 }
else if $HTTP["host"] == "c" { x = 3 }
elseif $HTTP["host"] == "d" { x = 4 }
elsif $HTTP["host"] == "e" { x = 5 }
elif $HTTP["host"] == "f" { x = 6 }
else { x = 7 }
$HTTP["url"] == "/" { y = 1 }
"#,
    );
    let chain: Vec<_> = cfg.blocks.iter().map(|b| b.else_of).collect();
    assert_eq!(chain, vec![None, None, Some(1), Some(2), Some(3), Some(4), Some(5), Some(6), None]);
    assert!(cfg.blocks[7].cond.is_none());
    assert_eq!(cfg.blocks[7].parent, Some(0));
    assert_eq!(cfg.blocks[7].loc.to_string(), "t.conf:7:1");
    assert_eq!(setting(&cfg, 7, "x"), "7");
    assert_eq!(cfg.blocks[8].else_of, None);
    // Braces and else may be spread over lines.
    let cfg = parse("$HTTP[\"host\"] == \"a\"\n{\n x = 1\n}\nelse\n{\n x = 2\n}\n");
    assert_eq!(cfg.blocks[2].else_of, Some(1));
    // "if" before a condition is accepted, as in newer lighttpd.
    let cfg = parse("if $HTTP[\"host\"] == \"a\" { }");
    assert_eq!(cfg.blocks.len(), 2);
    // Nested chains stay inside their parent.
    let cfg = parse("$HTTP[\"host\"] == \"a\" {\n $HTTP[\"url\"] == \"/\" { } else { }\n}");
    assert_eq!(cfg.blocks[3].parent, Some(1));
    assert_eq!(cfg.blocks[3].else_of, Some(2));
}

#[test]
fn append_starts_from_enclosing_blocks() {
    let cfg = parse(
        r#"list = ( "a" )
str = "x"
$HTTP["host"] == "h" {
    list += ( "b" )
    str += "y"
    ref = str
    $HTTP["url"] =^ "/p" {
        list += ( "c" )
        str := "over"
    }
} else {
    list += ( "e" )
}
list += ( "z" )
"#,
    );
    assert_eq!(setting(&cfg, 0, "list"), r#"("a","z")"#);
    assert_eq!(setting(&cfg, 1, "list"), r#"("a","b")"#);
    assert_eq!(setting(&cfg, 1, "str"), r#""xy""#);
    assert_eq!(setting(&cfg, 1, "ref"), r#""xy""#);
    assert_eq!(setting(&cfg, 2, "list"), r#"("a","b","c")"#);
    assert_eq!(setting(&cfg, 2, "str"), r#""over""#);
    // The else branch starts from its parent, not from its sibling.
    assert_eq!(setting(&cfg, 3, "list"), r#"("a","e")"#);
    // var.* is scoped the same way.
    let cfg = parse("var.v = \"g\"\n$HTTP[\"host\"] == \"h\" { var.v += \"1\"\n x = var.v }\ny = var.v");
    assert_eq!(setting(&cfg, 1, "x"), r#""g1""#);
    assert_eq!(setting(&cfg, 0, "y"), r#""g""#);
}

#[test]
fn error_display_without_location() {
    let e = parse_file(Path::new("/nonexistent/featherd.conf")).unwrap_err();
    assert!(e.loc.is_none());
    assert!(e.to_string().starts_with("cannot read config file \"/nonexistent/featherd.conf\""));
}

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("featherd-config-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn includes_and_globs() {
    let d = TempDir::new("inc");
    let main = d.write(
        "main.conf",
        r#"a = ( "main" )
include "conf.d/*.conf"
include "nomatch/*.conf"
include "sub/one.conf"
$HTTP["host"] == "x" {
    include "inblock.conf"
}
"#,
    );
    d.write("conf.d/20-b.conf", "a += ( \"20\" )\n");
    d.write("conf.d/10-a.conf", "a += ( \"10\" )\n");
    d.write("conf.d/readme.txt", "not config (\n");
    // Relative to the including file's directory.
    d.write("sub/one.conf", "include \"two.conf\"\n");
    d.write("sub/two.conf", "b = \"two\"\n");
    d.write("inblock.conf", "c = \"in block\"\n");
    let cfg = parse_file(&main).unwrap();
    assert_eq!(setting(&cfg, 0, "a"), r#"("main","10","20")"#);
    assert_eq!(setting(&cfg, 0, "b"), r#""two""#);
    assert_eq!(setting(&cfg, 1, "c"), r#""in block""#);
    let names: Vec<_> =
        cfg.files.iter().map(|p| p.strip_prefix(&d.0).unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["main.conf", "conf.d/10-a.conf", "conf.d/20-b.conf", "sub/one.conf", "sub/two.conf", "inblock.conf"]
    );
}

#[test]
fn include_falls_back_to_main_directory_like_lighttpd() {
    let d = TempDir::new("fallback");
    let main = d.write("main.conf", "include \"sub/one.conf\"\n");
    d.write("sub/one.conf", "include \"top.conf\"\n");
    d.write("top.conf", "t = 1\n");
    let cfg = parse_file(&main).unwrap();
    assert_eq!(setting(&cfg, 0, "t"), "1");
}

#[test]
fn include_errors_point_into_the_right_file() {
    let d = TempDir::new("incerr");
    let main = d.write("main.conf", "a = 1\ninclude \"bad.conf\"\n");
    d.write("bad.conf", "\n\nb = ( \"x\" }\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:11: expected \"=>\", \",\" or \")\" in array, found \"}}\"",
            d.0.join("bad.conf").display()
        )
    );
    let main = d.write("missing.conf", "\n  include \"nope.conf\"\n");
    let e = parse_file(&main).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:2:11: include file not found: \"{}\"", main.display(), d.0.join("nope.conf").display())
    );
    let selfinc = d.write("self.conf", "include \"self.conf\"\n");
    let e = parse_file(&selfinc).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:1:9: includes nested too deeply (limit 32); does a file include itself?",
            selfinc.display()
        )
    );
}

#[test]
fn include_shell_output_is_parsed() {
    let cfg = parse(
        "server.port = 81\ninclude_shell \"echo 'a = \\\"from shell\\\"'; echo 'b = server.port + 1'\"",
    );
    assert_eq!(setting(&cfg, 0, "a"), r#""from shell""#);
    assert_eq!(setting(&cfg, 0, "b"), "82");
    let e = error("include_shell \"echo 'a = ('\"");
    assert_eq!(
        e,
        "include_shell \"echo 'a = ('\":2:1: expected a value (string, integer, array or variable), found end of file"
    );
    // Debian's style: the command is built with "+".
    let cfg = parse("server.port = 80\ninclude_shell \"echo x = \" + server.port");
    assert_eq!(setting(&cfg, 0, "x"), "80");
}

#[test]
fn debian_style_config() {
    let d = TempDir::new("debian");
    let main = d.write(
        "lighttpd.conf",
        r#"server.modules = (
	"mod_indexfile",
	"mod_access",
	"mod_alias",
 	"mod_redirect",
)

server.document-root        = "/var/www/html"
server.upload-dirs          = ( "/var/cache/lighttpd/uploads" )
server.errorlog             = "/var/log/lighttpd/error.log"
server.pid-file             = "/run/lighttpd.pid"
server.username             = "www-data"
server.groupname            = "www-data"
server.port                 = 80

# features
#https://redmine.lighttpd.net/projects/lighttpd/wiki/Server_feature-flagsDetails
server.feature-flags       += ("server.h2proto" => "enable")
server.feature-flags       += ("server.h2c"     => "enable")
server.feature-flags       += ("server.graceful-shutdown-timeout" => 5)

# strict parsing and normalization of URL for consistency and security
server.http-parseopts = (
  "header-strict"           => "enable",# default
  "host-strict"             => "enable",# default
  "url-path-2f-decode"      => "enable",
  "url-path-dotseg-remove"  => "enable",# default
)

index-file.names            = ( "index.php", "index.html" )
url.access-deny             = ( "~", ".inc" )
static-file.exclude-extensions = ( ".php", ".pl", ".fcgi" )

# default listening port for IPv6 falls back to the IPv4 port
include_shell "echo '$SERVER[\"socket\"] == \"[::]:" + server.port + "\" { }'"
include "conf-enabled/*.conf"

#server.compat-module-load   = "disable"
server.modules += (
	"mod_dirlisting",
	"mod_staticfile",
)
"#,
    );
    d.write(
        "conf-enabled/10-ssl.conf",
        r#"$SERVER["socket"] == "0.0.0.0:443" {
	ssl.engine  = "enable"
	ssl.pemfile = "/etc/lighttpd/server.pem"
	ssl.cipher-list = "HIGH"
}
"#,
    );
    let cfg = parse_file(&main).unwrap();
    assert_eq!(cfg.blocks.len(), 3);
    assert_eq!(cfg.blocks[1].cond.as_ref().unwrap().text, r#"$SERVER["socket"] == "[::]:80""#);
    assert_eq!(setting(&cfg, 2, "ssl.engine"), r#""enable""#);
    assert_eq!(
        setting(&cfg, 0, "server.feature-flags"),
        r#"("server.h2proto"=>"enable","server.h2c"=>"enable","server.graceful-shutdown-timeout"=>5)"#
    );
    assert_eq!(cfg.global("server.modules").unwrap().value.as_array().unwrap().len(), 6);
}

#[test]
fn print_round_trips() {
    let src = r#"a = "q\"uote" + 1
list = ( "x", ( "nested" ), "k" => ( "deep" => 2 ), )
var.base = "/srv"
root = var.base + "/www"
$HTTP["host"] =~ "^(www\.)?example\.org$" {
    root := "/srv/example"
    list += ( "y" )
    $HTTP["url"] =^ "/a" { z = 1 } else if $HTTP["url"] =$ ".php" { z = 2 } else { z = 3 }
}
else $HTTP["remoteip"] == "10.0.0.0/8" { internal = "enable" }
$REQUEST_HEADER["X-Quote\"d"] != "" { q = 1 }
"#;
    let cfg = parse(src);
    let printed = cfg.print();
    let again = parse_str(&printed, Path::new("printed.conf")).unwrap();
    assert_eq!(cfg.blocks.len(), again.blocks.len(), "{printed}");
    for (a, b) in cfg.blocks.iter().zip(&again.blocks) {
        assert_eq!((a.id, a.parent, a.else_of), (b.id, b.parent, b.else_of), "{printed}");
        assert_eq!(a.cond.as_ref().map(|c| &c.text), b.cond.as_ref().map(|c| &c.text));
        let kv = |x: &featherd::config::Block| {
            x.settings.iter().map(|s| (s.key.clone(), s.value.clone())).collect::<Vec<_>>()
        };
        assert_eq!(kv(a), kv(b), "{printed}");
    }
    assert_eq!(again.print(), printed);
}
