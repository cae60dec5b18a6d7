//! The module ABI, end to end: real binary, real `.so` files.
//! (a) a third-party module built outside the workspace loads and serves;
//! (b) a module for another ABI major is refused, naming the file and both versions;
//! (c) a module with an older (shorter) descriptor loads and runs;
//! (d) a module panic gives that request a 500, names the module in the error log, and the
//!     next request succeeds;
//! (e) a module written in C against the generated header loads and answers;
//! (f) a request suspended on a module-registered fd completes when the fd becomes readable,
//!     while other connections are served.

use featherd_e2e::*;
use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn module_file(name: &str) -> PathBuf {
    let d = target_dir();
    let p = d.join(format!("lib{name}.so"));
    assert!(p.is_file(), "{} missing: run cargo build --workspace", p.display());
    p
}

/// A module directory holding only the named modules (so tests can load fixtures alone).
fn module_dir_with(files: &[(PathBuf, &str)]) -> TempDir {
    let d = TempDir::new("mods");
    for (src, name) in files {
        std::fs::copy(src, d.path().join(format!("{name}.so"))).expect("copy module");
    }
    d
}

#[test]
fn a_third_party_module_builds_alone_and_loads() {
    let root = workspace_root();
    let manifest = root.join("tests/third-party/mod_hello/Cargo.toml");
    let target = target_dir().join("third-party");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("run cargo build for mod_hello");
    assert!(out.status.success(), "mod_hello failed to build:\n{}", String::from_utf8_lossy(&out.stderr));
    let so = target.join("debug/libmod_hello.so");
    assert!(so.is_file(), "no {}", so.display());
    let mods = module_dir_with(&[(so, "mod_hello")]);
    let conf = format!(
        "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_hello\" )\n\
         $HTTP[\"url\"] =^ \"/hello/fr\" {{ hello.greeting = \"bonjour\" }}\n"
    );
    let s = Server::start_in(TempDir::new("hello"), &conf, Some(mods.path()));
    let r = s.get("/hello");
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("hello, world ("), "{}", r.text());
    let r = s.get("/hello/fr");
    assert!(r.text().starts_with("bonjour, world ("), "per-request config merge: {}", r.text());
    // Not its URL: nobody serves it.
    assert_eq!(s.get("/other").status, 404);
    s.wait_log("(mod_hello) mod_hello loaded");
}

#[test]
fn b_module_for_another_abi_major_is_refused() {
    let mods = module_dir_with(&[(module_file("mod_badabi"), "mod_badabi")]);
    let conf =
        format!("{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_badabi\" )\n");
    let f = Server::start_fail(&conf, Some(mods.path()));
    assert_ne!(f.code, Some(0));
    let expect_file = mods.path().join("mod_badabi.so").display().to_string();
    assert!(f.stderr.contains(&expect_file), "names the file: {}", f.stderr);
    assert!(f.stderr.contains("ABI 2"), "names the module's ABI: {}", f.stderr);
    assert!(f.stderr.contains("ABI 1"), "names the server's ABI: {}", f.stderr);
}

#[test]
fn b_missing_module_names_the_directory() {
    let mods = TempDir::new("empty");
    let conf =
        format!("{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_nosuch\" )\n");
    let f = Server::start_fail(&conf, Some(mods.path()));
    assert_ne!(f.code, Some(0));
    assert!(f.stderr.contains("mod_nosuch"), "{}", f.stderr);
    assert!(f.stderr.contains(&mods.path().display().to_string()), "names the directory: {}", f.stderr);
    assert!(f.stderr.contains("featherd.conf:"), "names the config line: {}", f.stderr);
}

#[test]
fn c_older_shorter_descriptor_loads_and_runs() {
    let mods = module_dir_with(&[(module_file("mod_oldabi"), "mod_oldabi")]);
    let conf =
        format!("{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_oldabi\" )\n");
    let s = Server::start_in(TempDir::new("old"), &conf, Some(mods.path()));
    let r = s.get("/old");
    assert_eq!(r.status, 200);
    // The 1.1 field past the module's declared size was not read: no poison.
    assert_eq!(r.text(), "old module ok; description seen by the server: []\n");
}

#[test]
fn d_panic_in_a_hook_is_contained() {
    let mods = module_dir_with(&[(module_file("mod_panic"), "mod_panic")]);
    let conf =
        format!("{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_panic\" )\n");
    let s = Server::start_in(TempDir::new("panic"), &conf, Some(mods.path()));
    let r = s.get("/panic");
    assert_eq!(r.status, 500);
    let log = s.wait_log("deliberate test panic");
    assert!(log.contains("(mod_panic) panic in uri_clean: deliberate test panic"), "{log}");
    for _ in 0..3 {
        let r = s.get("/ok");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "still here\n");
    }
}

#[test]
fn f_wait_for_event_resumes_on_fd_readiness() {
    let mods = module_dir_with(&[
        (module_file("mod_waiter"), "mod_waiter"),
        (module_file("mod_panic"), "mod_panic"),
    ]);
    // One worker: the suspended request and the others share the same event loop.
    let conf = format!(
        "{BASE}\nserver.max-worker := 1\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_waiter\", \"mod_panic\" )\n"
    );
    let s = Server::start_in(TempDir::new("wait"), &conf, Some(mods.path()));
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = backend.local_addr().unwrap().port();
    let port = s.port;
    let waiting = std::thread::spawn(move || get(port, &format!("/wait?{bport}")));
    let (mut peer, _) = backend.accept().expect("the module connects to us");
    // While the request waits, the same worker serves others.
    for _ in 0..5 {
        let r = s.get("/ok");
        assert_eq!(r.status, 200);
    }
    assert!(!waiting.is_finished(), "the waiting request must still be suspended");
    peer.write_all(b"ping\n").unwrap();
    let r = waiting.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "got: ping\n");
    // The module's fd was released with the request: the peer sees EOF.
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    let n = std::io::BufReader::new(&peer).read_line(&mut line).unwrap_or(1);
    assert_eq!(n, 0, "module kept the backend socket open");
}

#[test]
fn e_module_written_in_c_loads_and_answers() {
    let root = workspace_root();
    let mods = TempDir::new("cmod");
    let so = mods.path().join("mod_chello.so");
    let out = Command::new("cc")
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg("-I")
        .arg(root.join("mod-api/include"))
        .arg(root.join("tests/fixtures/c/mod_chello.c"))
        .output()
        .expect("run cc (install gcc)");
    assert!(out.status.success(), "cc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let conf = format!(
        "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_chello\" )\nchello.greeting = \"bonjour\"\n"
    );
    let s = Server::start_in(TempDir::new("c"), &conf, Some(mods.path()));
    let r = request(s.port, "GET /c-hello HTTP/1.1\r\nHost: c.example\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.text(), "bonjour from C (path=/c-hello, host=c.example)\n");
    s.wait_log("(mod_chello) C module initialised");
    // The C module's own validation reports through the host with file:line and key.
    let bad = format!(
        "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_chello\" )\nchello.greeting = \"\"\n"
    );
    let f = Server::start_fail(&bad, Some(mods.path()));
    assert!(
        f.stderr.contains("featherd.conf:10:1:")
            && f.stderr.contains("chello.greeting: must be 1..127 bytes"),
        "{}",
        f.stderr
    );
}

#[test]
fn streamed_body_is_paced_by_the_client() {
    let mods = module_dir_with(&[
        (module_file("mod_waiter"), "mod_waiter"),
        (module_file("mod_panic"), "mod_panic"),
    ]);
    let conf = format!(
        "{BASE}\nserver.max-worker := 1\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_waiter\", \"mod_panic\" )\n"
    );
    let s = Server::start_in(TempDir::new("stream"), &conf, Some(mods.path()));
    // 320 blocks of 64 KiB = 20 MiB, chunked; a slow reader first.
    let mut c = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    c.write_all(b"GET /stream?320 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
    let mut first = [0u8; 1024];
    std::io::Read::read_exact(&mut c, &mut first).unwrap();
    // While that client does not read, the worker serves others.
    for _ in 0..3 {
        assert_eq!(s.get("/ok").status, 200);
    }
    let mut rest = Vec::new();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    std::io::Read::read_to_end(&mut c, &mut rest).unwrap();
    let mut all = first.to_vec();
    all.extend_from_slice(&rest);
    let r = parse_responses(&all, false).remove(0);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body.len(), 320 * 64 * 1024);
    for (i, block) in r.body.chunks(64 * 1024).enumerate() {
        let want = b'a' + (i % 26) as u8;
        assert!(block.iter().all(|&b| b == want), "block {i} corrupted");
    }
    let log = s.wait_log("stream done, max pending");
    let max: u64 = log
        .lines()
        .find_map(|l| l.split("max pending ").nth(1))
        .and_then(|n| n.trim().parse().ok())
        .expect("max pending in log");
    // The module never had more than the high-water mark (256 KiB) plus one block queued.
    assert!(max < 256 * 1024 + 64 * 1024, "queue grew to {max} bytes: no backpressure");
}

#[test]
fn timers_resume_suspended_requests() {
    let mods = module_dir_with(&[
        (module_file("mod_waiter"), "mod_waiter"),
        (module_file("mod_panic"), "mod_panic"),
    ]);
    let conf = format!(
        "{BASE}\nserver.max-worker := 1\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_waiter\", \"mod_panic\" )\n"
    );
    let s = Server::start_in(TempDir::new("timer"), &conf, Some(mods.path()));
    let port = s.port;
    let t0 = std::time::Instant::now();
    let sleeper = std::thread::spawn(move || get(port, "/sleep?400"));
    // The worker is not blocked by the sleeping request.
    let r = s.get("/ok");
    assert_eq!(r.status, 200);
    assert!(t0.elapsed() < Duration::from_millis(400), "a timer must not block the worker");
    let r = sleeper.join().unwrap();
    assert_eq!(r.text(), "slept\n");
    assert!(t0.elapsed() >= Duration::from_millis(400), "answered before the timer fired");
}
