//! The command line and process life: -v -V -h -t -tt -p, config errors with file:line and
//! the key, daemonising with a pid file, SIGTERM, SIGINT (graceful), SIGHUP (reopen logs).

use featherd_e2e::*;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn write_conf(dir: &TempDir, text: &str) -> String {
    dir.write("www/index.html", "hi\n");
    let t = text.replace("@DIR@", &dir.path().display().to_string());
    dir.write("featherd.conf", t).display().to_string()
}

#[test]
fn version_features_help() {
    let (code, out, _) = featherd(&["-v"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("featherd/"), "{out}");
    let (code, out, _) = featherd(&["-V"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.trim() == "+ IPv6 support"), "{out}");
    assert!(out.lines().any(|l| l.trim().starts_with("- TLS support")), "{out}");
    assert!(out.lines().all(|l| !l.trim().starts_with(['+', '-'])
        || l.trim().starts_with("+ ")
        || l.trim().starts_with("- ")));
    let (code, out, _) = featherd(&["-h"]);
    assert_eq!(code, 0);
    assert!(out.contains("-tt"));
    let (code, _, err) = featherd(&["-Q"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown option"));
}

#[test]
fn syntax_check_and_print() {
    let dir = TempDir::new("cli");
    let ok = write_conf(&dir, "server.document-root = \"@DIR@/www\"\nvar.x = \"a\" + \"b\"\nserver.tag = var.x\n$HTTP[\"host\"] == \"h\" { server.tag = \"h\" }\n");
    let (code, out, _) = featherd(&["-t", "-f", &ok]);
    assert_eq!((code, out.trim()), (0, "Syntax OK"));
    let (code, out, err) = featherd(&["-tt", "-f", &ok, "-m", &target_dir().display().to_string()]);
    assert_eq!((code, out.trim()), (0, "Syntax OK"), "{err}");
    let (code, out, _) = featherd(&["-p", "-f", &ok]);
    assert_eq!(code, 0);
    assert!(
        out.contains("server.tag") && out.contains("\"ab\"") && out.contains("$HTTP[\"host\"] == \"h\""),
        "{out}"
    );

    let bad =
        dir.write("bad.conf", "server.port = 80\nserver.tag = (\n\"a\" \"b\"\n)\n").display().to_string();
    let (code, _, err) = featherd(&["-t", "-f", &bad]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.conf:3:"), "error names file:line:col: {err}");
}

#[test]
fn unknown_key_names_file_line_and_closest_key() {
    let dir = TempDir::new("cli");
    let c = write_conf(&dir, "server.document-root = \"@DIR@/www\"\nserver.prot = 8080\n");
    let (code, out, err) = featherd(&["-tt", "-f", &c, "-m", &target_dir().display().to_string()]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("featherd.conf:2:"), "{err}");
    assert!(err.contains("\"server.prot\""), "{err}");
    assert!(err.contains("did you mean \"server.port\""), "{err}");
    // -t checks syntax only; the key check needs the modules (-tt).
    assert_eq!(featherd(&["-t", "-f", &c]).0, 0);
    let c = write_conf(&dir, "server.document-root = \"@DIR@/www\"\nserver.port = \"eighty\"\n");
    let (code, _, err) = featherd(&["-tt", "-f", &c, "-m", &target_dir().display().to_string()]);
    assert_eq!(code, 1);
    assert!(err.contains("featherd.conf:2:") && err.contains("server.port"), "{err}");
}

#[test]
fn shipped_config_passes_tt() {
    let conf = workspace_root().join("conf.d/featherd.conf");
    let (code, out, err) =
        featherd(&["-tt", "-f", &conf.display().to_string(), "-m", &target_dir().display().to_string()]);
    assert_eq!(code, 0, "{out}{err}");
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn daemonises_writes_pid_file_and_stops_on_sigterm() {
    let dir = TempDir::new("daemon");
    let port = free_port();
    let c = write_conf(
        &dir,
        &format!(
            "server.document-root = \"@DIR@/www\"\nserver.bind = \"127.0.0.1\"\nserver.port = {port}\nserver.pid-file = \"@DIR@/featherd.pid\"\nserver.errorlog = \"@DIR@/error.log\"\nserver.compat-module-load = \"disable\"\nserver.modules = (\"mod_panic\")\n"
        ),
    );
    // Without -D the command returns once the server runs in the background.
    let (code, _, err) = featherd(&["-f", &c, "-m", &target_dir().display().to_string()]);
    assert_eq!(code, 0, "{err}");
    wait_port(port);
    let pid: i32 = std::fs::read_to_string(dir.path().join("featherd.pid")).unwrap().trim().parse().unwrap();
    assert_eq!(get(port, "/ok").status, 200);
    // SAFETY: signalling the daemon we started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: signal 0 only checks existence.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.path().join("featherd.pid").exists(), "pid file removed at exit");
}

#[test]
fn sigint_finishes_in_flight_requests_then_exits() {
    let conf = format!(
        "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_waiter\", \"mod_panic\" )\n"
    );
    let mut s = Server::start(&conf);
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let bport = backend.local_addr().unwrap().port();
    let port = s.port;
    let inflight = std::thread::spawn(move || get(port, &format!("/wait?{bport}")));
    let (mut peer, _) = backend.accept().unwrap();
    s.signal(libc::SIGINT);
    s.wait_log("graceful shutdown");
    // New connections are refused once listening stopped.
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    }
    peer.write_all(b"late\n").unwrap();
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "got: late\n");
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn sighup_reopens_the_error_log() {
    let s = Server::start(&format!(
        "{BASE}\nserver.compat-module-load = \"disable\"\nserver.modules = ( \"mod_panic\" )\n"
    ));
    let log = s.dir.path().join("error.log");
    s.wait_log("server started");
    std::fs::rename(&log, s.dir.path().join("error.log.1")).unwrap();
    s.signal(libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("SIGHUP: logs reopened") {
            break;
        }
        assert!(Instant::now() < deadline, "new error.log never written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let old = std::fs::read_to_string(s.dir.path().join("error.log.1")).unwrap();
    assert!(old.contains("server started") && !old.contains("SIGHUP"), "{old}");
}

#[test]
fn a_port_held_by_another_server_is_refused() {
    // The workers share their port through SO_REUSEPORT; a second server must still not be able
    // to join the port of the first one (it would silently take half of its connections).
    let first = Server::start(&format!("{BASE}\nserver.modules = ()\n"));
    let f = Server::start_fail(
        &format!("{BASE}\nserver.modules = ()\nserver.port := {}\nserver.errorlog := \"\"\n", first.port),
        None,
    );
    assert_eq!(f.code, Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("cannot bind") && f.stderr.contains("in use"), "{}", f.stderr);
    // And an unrelated plain listener on a port is noticed too.
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = other.local_addr().expect("addr").port();
    let f = Server::start_fail(
        &format!("{BASE}\nserver.modules = ()\nserver.port := {port}\nserver.errorlog := \"\"\n"),
        None,
    );
    assert!(f.stderr.contains("cannot bind"), "{}", f.stderr);
}
