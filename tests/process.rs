//! Process life beyond start and stop: the graceful restart (SIGUSR1) under load and with bad
//! configurations, listening sockets handed over by systemd (`LISTEN_FDS`), one connection on
//! stdin (`-1`), the idle exit (`-i`), and the privilege drop after binding.

use featherd_e2e::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A config with mod_skeleton answering `/skeleton` with `greeting` and `server.tag` set to it.
fn gen_conf(greeting: &str, workers: u32) -> String {
    format!(
        "{BASE}\nserver.max-worker := {workers}\nserver.modules = ( \"mod_skeleton\", \"mod_waiter\" )\n\
         skeleton.enable = \"enable\"\nskeleton.greeting = \"{greeting}\"\nserver.tag = \"{greeting}\"\n"
    )
}

/// What one load client saw.
#[derive(Default)]
struct Seen {
    ok: u64,
    /// Response bodies (the greeting) and how often each came.
    bodies: BTreeMap<String, u64>,
    failures: Vec<String>,
}

/// Read one response (Content-Length framed) from a keep-alive connection: (status, body,
/// whether the server closes the connection after it).
fn read_response(r: &mut BufReader<TcpStream>) -> Result<(u16, String, bool), String> {
    let mut line = String::new();
    if r.read_line(&mut line).map_err(|e| format!("read: {e}"))? == 0 {
        return Err("connection closed before a response".into());
    }
    let status: u16 =
        line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or(format!("status line {line:?}"))?;
    let (mut len, mut close) = (0usize, false);
    loop {
        line.clear();
        if r.read_line(&mut line).map_err(|e| format!("read head: {e}"))? == 0 {
            return Err("connection closed in the head".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').unwrap_or((l, ""));
        if n.eq_ignore_ascii_case("content-length") {
            len = v.trim().parse().map_err(|_| format!("bad length {v:?}"))?;
        } else if n.eq_ignore_ascii_case("connection") && v.trim().eq_ignore_ascii_case("close") {
            close = true;
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(|e| format!("read body: {e}"))?;
    Ok((status, String::from_utf8_lossy(&body).trim().to_string(), close))
}

/// A client that sends `GET /skeleton` back to back over keep-alive connections until `stop`,
/// reconnecting when the server says `Connection: close`. Anything else (a refused or reset
/// connection, a connection closed without an answer, a status other than 200) is a failure.
fn load_client(port: u16, stop: Arc<AtomicBool>, total: Arc<AtomicU64>) -> Seen {
    let mut seen = Seen::default();
    let mut conn: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut c = match conn.take() {
            Some(c) => c,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
                    BufReader::new(s)
                }
                Err(e) => {
                    seen.failures.push(format!("connect: {e}"));
                    continue;
                }
            },
        };
        if let Err(e) = c.get_mut().write_all(b"GET /skeleton HTTP/1.1\r\nHost: load\r\n\r\n") {
            seen.failures.push(format!("write: {e}"));
            continue;
        }
        match read_response(&mut c) {
            Ok((200, body, close)) => {
                seen.ok += 1;
                total.fetch_add(1, Ordering::Relaxed);
                *seen.bodies.entry(body).or_default() += 1;
                if !close {
                    conn = Some(c);
                }
            }
            Ok((status, body, _)) => seen.failures.push(format!("status {status}: {body}")),
            Err(e) => seen.failures.push(e),
        }
    }
    seen
}

#[test]
fn sigusr1_restarts_under_load_without_a_failed_request() {
    let s = Server::start(&gen_conf("gen1", 2));
    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (stop, total, port) = (stop.clone(), total.clone(), s.port);
            std::thread::spawn(move || load_client(port, stop, total))
        })
        .collect();
    wait_for("the load clients to get answers", || total.load(Ordering::Relaxed) > 200);
    // Each restart changes the module's greeting, the core's server.tag and the number of
    // workers (more, fewer, more again), while the clients keep going.
    for (i, (greeting, workers)) in [("gen2", 3), ("gen3", 1), ("gen4", 2)].into_iter().enumerate() {
        s.rewrite_conf(&gen_conf(greeting, workers));
        let before = total.load(Ordering::Relaxed);
        s.signal(libc::SIGUSR1);
        s.wait_log_count("graceful restart done", i + 1);
        let r = s.get("/skeleton");
        assert_eq!((r.status, r.text().trim()), (200, greeting));
        assert_eq!(r.header("server"), Some(greeting));
        wait_for("more answers after the restart", || total.load(Ordering::Relaxed) > before + 200);
    }
    stop.store(true, Ordering::Relaxed);
    let mut all = Seen::default();
    for c in clients {
        let seen = c.join().expect("client thread");
        all.ok += seen.ok;
        all.failures.extend(seen.failures);
        for (b, n) in seen.bodies {
            *all.bodies.entry(b).or_default() += n;
        }
    }
    assert!(
        all.failures.is_empty(),
        "{} failed request(s) of {}: {:?}",
        all.failures.len(),
        all.ok,
        all.failures
    );
    for g in ["gen1", "gen2", "gen3", "gen4"] {
        assert!(all.bodies.get(g).is_some_and(|n| *n > 0), "no answer from {g}: {:?}", all.bodies);
    }
    assert_eq!(all.bodies.len(), 4, "{:?}", all.bodies);
    let log = s.error_log();
    assert!(log.contains("graceful restart done, 3 worker(s)"), "{log}");
    assert!(log.contains("graceful restart done, 1 worker(s)"), "{log}");
}

#[test]
fn sigusr1_restarts_under_wrk_without_errors() {
    let conf = |g: &str| {
        format!(
            "{}\naccesslog.filename = \"@DIR@/access.log\"\nserver.modules += ( \"mod_accesslog\" )\n",
            gen_conf(g, 2)
        )
    };
    let s = Server::start(&conf("gen1"));
    let wrk = Command::new("wrk")
        .args(["-t2", "-c32", "-d4s", "--timeout", "10s"])
        .arg(format!("http://127.0.0.1:{}/skeleton", s.port))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("wrk (apt install wrk)");
    let log = s.dir.path().join("access.log");
    wait_for("wrk's first requests", || std::fs::metadata(&log).is_ok_and(|m| m.len() > 10_000));
    for (i, g) in ["gen2", "gen3"].into_iter().enumerate() {
        s.rewrite_conf(&conf(g));
        s.signal(libc::SIGUSR1);
        s.wait_log_count("graceful restart done", i + 1);
        assert_eq!(s.get("/skeleton").text().trim(), g);
    }
    let out = wrk.wait_with_output().expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").and_then(|(n, _)| n.parse().ok()))
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    assert!(requests > 1000, "{text}");
    assert!(!text.contains("Socket errors"), "wrk saw errors:\n{text}");
    assert!(!text.contains("Non-2xx"), "wrk saw failed responses:\n{text}");
    // The access log was reopened by each generation and got every request.
    let lines = || std::fs::read_to_string(&log).unwrap_or_default().lines().count() as u64;
    wait_for(&format!("{requests} access log lines"), || lines() >= requests);
}

#[test]
fn sigusr1_finishes_in_flight_requests_while_new_connections_wait() {
    let s = Server::start(&gen_conf("gen1", 2));
    let backend = TcpListener::bind("127.0.0.1:0").expect("bind");
    let bport = backend.local_addr().expect("addr").port();
    let port = s.port;
    let inflight = std::thread::spawn(move || get(port, &format!("/wait?{bport}")));
    let (mut peer, _) = backend.accept().expect("the request reached its backend");
    // An idle keep-alive connection from before the restart.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    idle.write_all(b"GET /skeleton HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    let mut idle = BufReader::new(idle);
    assert_eq!(read_response(&mut idle).expect("answer").1, "gen1");

    s.rewrite_conf(&gen_conf("gen2", 2));
    s.signal(libc::SIGUSR1);
    s.wait_log("the new configuration is valid");
    // The old workers wait for the suspended request; meanwhile the port stays open and a new
    // connection waits in the accept queue instead of being refused.
    let mut queued = TcpStream::connect(("127.0.0.1", port)).expect("the port stays open during a restart");
    queued.set_read_timeout(Some(Duration::from_secs(15))).expect("timeout");
    queued.write_all(b"GET /skeleton HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    // The idle keep-alive connection is closed (after a moment's grace) without an answer to
    // a request it never sent.
    let mut rest = Vec::new();
    let _ = idle.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(!s.error_log().contains("graceful restart done"), "restarted before the request ended");

    peer.write_all(b"late\n").expect("backend answers");
    let r = inflight.join().expect("in-flight client");
    assert_eq!((r.status, r.text().as_str()), (200, "got: late\n"));
    assert_eq!(r.header("server"), Some("gen1"), "the old configuration finishes its request");
    let mut out = Vec::new();
    queued.read_to_end(&mut out).expect("the queued connection is answered");
    let r = parse_responses(&out, false).pop().expect("a response");
    assert_eq!((r.status, r.text().trim()), (200, "gen2"));
    s.wait_log("graceful restart done");
}

#[test]
fn an_invalid_new_configuration_keeps_the_running_one() {
    let mut s = Server::start(&gen_conf("gen1", 2));
    let check_old = |s: &Server| {
        let r = s.get("/skeleton");
        assert_eq!((r.status, r.text().trim(), r.header("server")), (200, "gen1", Some("gen1")));
    };
    // An unknown key: found while the old workers still serve.
    s.rewrite_conf(&format!("{}server.prot = 80\n", gen_conf("gen2", 2)));
    let line = gen_conf("gen2", 2).lines().count() + 1;
    s.signal(libc::SIGUSR1);
    let log = s.wait_log("keeping the current one");
    assert!(log.contains(&format!("featherd.conf:{line}:")) && log.contains("\"server.prot\""), "{log}");
    check_old(&s);
    // A syntax error.
    s.rewrite_conf(&format!("{}server.tag = (\n", gen_conf("gen2", 2)));
    s.signal(libc::SIGUSR1);
    s.wait_log_count("keeping the current one", 2);
    check_old(&s);
    // A value only the module checks (at its set_defaults, after the old workers are gone):
    // the previous configuration is started again.
    s.rewrite_conf(&format!(
        "{}server.modules += ( \"mod_accesslog\" )\naccesslog.filename = \"@DIR@/no/such/dir/access.log\"\n",
        gen_conf("gen2", 2)
    ));
    s.signal(libc::SIGUSR1);
    let log = s.wait_log("going back to the previous one");
    assert!(log.contains("accesslog.filename"), "{log}");
    s.wait_log("the previous configuration runs again");
    check_old(&s);
    assert!(s.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none()), "featherd exited");
    // An error log that cannot be opened is found before the old workers stop.
    s.rewrite_conf(&gen_conf("gen2", 2).replace("@DIR@/error.log", "@DIR@/no/such/dir/error.log"));
    s.signal(libc::SIGUSR1);
    let log = s.wait_log_count("keeping the current one", 3);
    assert!(log.contains("server.errorlog"), "{log}");
    check_old(&s);
    // And a good one is taken.
    s.rewrite_conf(&gen_conf("gen2", 2));
    s.signal(libc::SIGUSR1);
    s.wait_log("graceful restart done");
    assert_eq!(s.get("/skeleton").text().trim(), "gen2");
}

fn refused(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_err()
}

fn unix_get(path: &Path) -> Response {
    let mut c = UnixStream::connect(path).expect("unix connect");
    c.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("read");
    parse_responses(&out, false).pop().expect("a response")
}

#[test]
fn sigusr1_binds_new_addresses_and_closes_removed_ones() {
    let (q1, q2) = (free_port(), free_port());
    let one = format!("{BASE}\n$SERVER[\"socket\"] == \"127.0.0.1:{q1}\" {{ server.tag = \"q1\" }}\n");
    let two = format!(
        "{BASE}\n$SERVER[\"socket\"] == \"127.0.0.1:{q2}\" {{ server.tag = \"q2\" }}\n\
         $SERVER[\"socket\"] == \"@DIR@/s.sock\" {{ server.tag = \"unix\" }}\n"
    );
    let s = Server::start(&one);
    std::fs::write(s.docroot().join("index.html"), "hi\n").expect("write");
    assert_eq!(get(q1, "/index.html").header("server"), Some("q1"));
    assert!(refused(q2));
    s.rewrite_conf(&two);
    s.signal(libc::SIGUSR1);
    s.wait_log_count("graceful restart done", 1);
    assert!(refused(q1), "a removed address is closed");
    assert_eq!(get(q2, "/index.html").header("server"), Some("q2"));
    let sock = s.dir.path().join("s.sock");
    assert_eq!(unix_get(&sock).header("server"), Some("unix"));
    assert_eq!(s.get("/index.html").status, 200, "the main address is kept");
    s.rewrite_conf(&one);
    s.signal(libc::SIGUSR1);
    s.wait_log_count("graceful restart done", 2);
    assert!(refused(q2));
    assert!(!sock.exists(), "the unix socket file the server made is removed with it");
    assert_eq!(get(q1, "/index.html").header("server"), Some("q1"));
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(workspace_root().join("tests/fixtures").join(rel)).expect("fixture")
}

fn kv(text: &str, k: &str) -> String {
    text.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_default().to_string()
}

#[test]
fn modules_start_again_after_sigusr1() {
    // mod_fastcgi's bin-path processes are stopped by the old configuration's cleanup and
    // started by the new one; mod_cgi runs scripts; mod_accesslog writes where the new
    // configuration says.
    let dir = TempDir::new("restart-mods");
    dir.write("www/env.php", fixture("fastcgi/env.php"));
    dir.write("www/env.py", fixture("cgi/env.py"));
    dir.write("www/secret/file.txt", "secret\n");
    dir.write("users1.plain", "dave:one\n");
    dir.write("users2.plain", "dave:two\n");
    let conf = |n: u32| {
        format!(
            "{BASE}\nserver.modules = ( \"mod_auth\", \"mod_authn_file\", \"mod_accesslog\", \"mod_cgi\", \"mod_fastcgi\", \"mod_staticfile\" )\n\
             accesslog.filename = \"@DIR@/access{n}.log\"\ncgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n\
             fastcgi.server = ( \".php\" => ( ( \"socket\" => \"@DIR@/php{n}.sock\", \"bin-path\" => \"/usr/bin/php-cgi\" ) ) )\n\
             auth.backend = \"plain\"\nauth.backend.plain.userfile = \"@DIR@/users{n}.plain\"\n\
             auth.require = ( \"/secret\" => ( \"method\" => \"basic\", \"realm\" => \"r\", \"require\" => \"valid-user\" ) )\n"
        )
    };
    // mod_auth finds mod_authn_file through the host's service registry, filled again by the
    // new modules' init.
    let secret = |s: &Server, basic: &str| {
        request(
            s.port,
            &format!("GET /secret/file.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {basic}\r\nConnection: close\r\n\r\n"),
        )
        .status
    };
    let (one, two) = ("ZGF2ZTpvbmU=", "ZGF2ZTp0d28="); // dave:one, dave:two
    let s = Server::start_in(dir, &conf(1), None);
    assert_eq!((secret(&s, one), secret(&s, two)), (200, 401));
    let r = s.get("/env.php?first");
    assert_eq!(r.status, 200, "{}\n{}", r.text(), s.error_log());
    let pid1: i32 = kv(&r.text(), "PID").parse().expect("pid");
    assert_eq!(s.get("/env.py").status, 200);
    s.rewrite_conf(&conf(2));
    s.signal(libc::SIGUSR1);
    s.wait_log_count("graceful restart done", 1);
    let mut pid2 = 0;
    wait_for("php-cgi started again", || {
        let r = s.get("/env.php?second");
        if r.status == 200 {
            pid2 = kv(&r.text(), "PID").parse().unwrap_or(0);
        }
        r.status == 200
    });
    assert!(pid2 > 0 && pid2 != pid1, "{pid1} {pid2}");
    // The new fastcgi.server is the one in effect (its backend listens on the new socket; the
    // old socket, made by the old configuration, is gone).
    assert!(s.dir.path().join("php2.sock").exists() && !s.dir.path().join("php1.sock").exists());
    assert_eq!((secret(&s, one), secret(&s, two)), (401, 200));
    let r = s.get("/env.py?after");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(kv(&r.text(), "QUERY_STRING"), "after");
    let log = s.wait_log("started /usr/bin/php-cgi");
    assert_eq!(log.matches("started /usr/bin/php-cgi").count(), 2, "{log}");
    let read = |f: &str| std::fs::read_to_string(s.dir.path().join(f)).unwrap_or_default();
    wait_for("the access log lines", || read("access2.log").contains("/env.py?after"));
    let (one, two) = (read("access1.log"), read("access2.log"));
    assert!(one.contains("/env.php?first") && !one.contains("?second"), "{one}");
    assert!(two.contains("/env.php?second") && !two.contains("?first"), "{two}");
}

/// Spawn featherd with `LISTEN_PID` (`pid`; `$$` is its own pid: the shell's, which featherd
/// replaces with exec), `LISTEN_FDS` and the given sockets at fds 3, 4, ...
fn spawn_activated(conf: &Path, pid: &str, fds: &[i32]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!(
            "LISTEN_PID={pid} LISTEN_FDS={} LISTEN_FDNAMES=test; export LISTEN_PID LISTEN_FDS LISTEN_FDNAMES; exec \"$0\" \"$@\"",
            fds.len()
        ))
        .arg(featherd_bin())
        .args(["-D", "-f"])
        .arg(conf)
        .arg("-m")
        .arg(target_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let fds = fds.to_vec();
    // SAFETY: between fork and exec the closure makes only async-signal-safe calls (fcntl,
    // dup2) on descriptors the test owns: each socket is first copied above fd 100 (so that
    // placing one cannot overwrite another), then put at 3, 4, ... (dup2 clears FD_CLOEXEC on
    // the copy, so it survives the exec).
    unsafe {
        cmd.pre_exec(move || {
            for (i, &fd) in fds.iter().enumerate() {
                if libc::fcntl(fd, libc::F_DUPFD, 100 + i as i32) != 100 + i as i32 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for i in 0..fds.len() as i32 {
                if libc::dup2(100 + i, 3 + i) != 3 + i {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        })
    };
    cmd.spawn().expect("spawn featherd")
}

#[test]
fn systemd_socket_activation_uses_the_inherited_sockets() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("activation");
    dir.write("www/index.html", "hi\n");
    dir.write("www/env.py", fixture("cgi/env.py"));
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let tport = tcp.local_addr().expect("addr").port();
    let sock = dir.path().join("activated.sock");
    let unix = UnixListener::bind(&sock).expect("bind unix");
    let inode = std::fs::metadata(&sock).expect("stat").ino();
    // server.port names a port nobody listens on, and there is no server.bind: with inherited
    // sockets featherd listens on them only.
    let (port, conf) = write_config(
        &dir,
        "server.document-root = \"@DOCROOT@\"\nserver.port = @PORT@\nserver.errorlog = \"@DIR@/error.log\"\n\
         server.max-worker = 2\nserver.systemd-socket-activation = \"enable\"\n\
         server.modules = ( \"mod_cgi\", \"mod_staticfile\" )\ncgi.assign = ( \".py\" => \"/usr/bin/python3\" )\n\
         $SERVER[\"socket\"] == \"@DIR@/activated.sock\" { server.tag = \"via-unix\" }\n",
    );
    let child = spawn_activated(&conf, "$$", &[tcp.as_raw_fd(), unix.as_raw_fd()]);
    let mut s = Server { child: Some(child), port, dir, conf };
    s.wait_log("server started");
    // The test's own copies are closed: only featherd holds the sockets now.
    drop((tcp, unix));
    for _ in 0..8 {
        let r = get(tport, "/index.html");
        assert_eq!((r.status, r.text().as_str()), (200, "hi\n"));
        assert!(r.header("server").is_some_and(|t| t.starts_with("featherd/")), "{}", r.head);
    }
    assert_eq!(unix_get(&sock).header("server"), Some("via-unix"));
    assert!(refused(port), "featherd bound server.port itself");
    assert_eq!(std::fs::metadata(&sock).expect("stat").ino(), inode, "the unix socket was replaced");
    // The variables are gone from the environment the server passes on.
    let env = get(tport, "/env.py").text();
    assert!(env.contains("GATEWAY_INTERFACE=") && !env.contains("LISTEN_"), "{env}");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(sock.exists(), "a socket featherd did not create is not removed");
}

#[test]
fn sockets_passed_to_another_process_are_not_taken() {
    let dir = TempDir::new("activation-other");
    dir.write("www/index.html", "hi\n");
    let tcp = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (port, conf) =
        write_config(&dir, &format!("{BASE}\nserver.systemd-socket-activation = \"enable\"\n"));
    // LISTEN_PID names another process: featherd binds its own port and leaves fd 3 alone.
    let child = spawn_activated(&conf, "1", &[tcp.as_raw_fd()]);
    let s = Server { child: Some(child), port, dir, conf };
    let log = s.wait_log("server started");
    assert!(log.contains("not for this process"), "{log}");
    assert_eq!(s.get("/index.html").text(), "hi\n");
}

/// `featherd -1` with `stdin` as its standard input; the config's port is never bound.
fn oneshot(dir: TempDir, conf: &str, stdin: OwnedFd) -> Server {
    let (port, conf) = write_config(&dir, conf);
    let child = featherd_command(&conf).arg("-1").stdin(Stdio::from(stdin)).spawn().expect("spawn featherd");
    Server { child: Some(child), port, dir, conf }
}

#[test]
fn dash_1_serves_the_socketpair_on_stdin_then_exits() {
    let dir = TempDir::new("oneshot");
    dir.write("www/index.html", "hi\n");
    let (mine, theirs) = UnixStream::pair().expect("socketpair");
    let mut s = oneshot(dir, BASE, OwnedFd::from(theirs));
    let mut c = mine;
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    // Keep-alive works on the one connection; the last request closes it.
    c.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while parse_responses(&got, false).len() < 2 {
        let n = c.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let rs = parse_responses(&got, false);
    assert_eq!((rs[0].status, rs[0].text().as_str(), rs[1].status), (200, "hi\n", 404));
    assert!(rs[0].header("connection").is_none(), "{}", rs[0].head);
    assert!(refused(s.port), "-1 does not listen");
    c.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").expect("send");
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).expect("read to the end");
    let r = parse_responses(&rest, false).pop().expect("third response");
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(!s.error_log().contains("server started"), "{}", s.error_log());
}

#[test]
fn dash_1_serves_a_tcp_connection_and_names_its_listener() {
    let dir = TempDir::new("oneshot-tcp");
    dir.write("www/index.html", "hi\n");
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let lport = l.local_addr().expect("addr").port();
    let mut client = TcpStream::connect(("127.0.0.1", lport)).expect("connect");
    let (accepted, _) = l.accept().expect("accept");
    drop(l);
    let conf =
        format!("{BASE}\n$SERVER[\"socket\"] == \"127.0.0.1:{lport}\" {{ server.tag = \"that-socket\" }}\n");
    let mut s = oneshot(dir, &conf, OwnedFd::from(accepted));
    client.write_all(b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    client.shutdown(std::net::Shutdown::Write).expect("shutdown");
    let mut out = Vec::new();
    client.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    client.read_to_end(&mut out).expect("read");
    let r = parse_responses(&out, false).pop().expect("a response");
    assert_eq!((r.status, r.text().as_str()), (200, "hi\n"));
    assert_eq!(r.header("server"), Some("that-socket"), "{}", r.head);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn dash_1_refuses_a_stdin_that_is_not_a_socket() {
    let dir = TempDir::new("oneshot-bad");
    let (_, conf) = write_config(&dir, BASE);
    let out = featherd_command(&conf).arg("-1").output().expect("run featherd");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a socket"), "{err}");
}

#[test]
fn dash_i_exits_when_idle_and_not_while_busy() {
    let dir = TempDir::new("idle");
    dir.write("www/index.html", "hi\n");
    let (port, conf) = write_config(&dir, BASE);
    let started = Instant::now();
    let child = featherd_command(&conf).args(["-i", "1"]).spawn().expect("spawn featherd");
    let mut s = Server { child: Some(child), port, dir, conf };
    wait_for("the port", || TcpStream::connect(("127.0.0.1", port)).is_ok());
    // Busy for well over the limit: a request every 100 ms.
    while started.elapsed() < Duration::from_secs(4) {
        assert_eq!(s.get("/index.html").status, 200, "exited while busy:\n{}", s.error_log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(s.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none()), "exited while busy");
    // Then idle: it exits by itself.
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
    let log = s.error_log();
    assert!(
        log.contains("idle timeout 1s exceeded") && log.contains("server stopped after idle timeout"),
        "{log}"
    );
    assert!(refused(port));
    let (code, _, err) = featherd(&["-i", "soon", "-f", "x.conf"]);
    assert_eq!(code, 255);
    assert!(err.contains("invalid idle timeout"), "{err}");
}

#[test]
fn help_lists_dash_1_and_dash_i() {
    let (code, out, _) = featherd(&["-h"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.trim_start().starts_with("-1 ")), "{out}");
    assert!(out.lines().any(|l| l.trim_start().starts_with("-i <secs>")), "{out}");
}

/// /proc/PID/status's "Uid:" or "Gid:" line: real, effective, saved, filesystem ids.
fn proc_ids(pid: i32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

/// Run featherd with `conf`, which it must refuse (exit 1); returns its standard error. The
/// refusals here come after the first port is bound, so this waits for the exit, not the port.
fn refused_start(conf: &str) -> String {
    let dir = TempDir::new("refused");
    let (_, conf) = write_config(&dir, conf);
    let out = featherd_command(&conf).output().expect("run featherd");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    err
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn privileges_drop_after_binding_into_a_chroot() {
    let dir = TempDir::new("privdrop");
    dir.write("www/index.html", "inside the chroot\n");
    let conf = "server.document-root = \"/www\"\nserver.bind = \"127.0.0.1\"\nserver.port = @PORT@\n\
                server.errorlog = \"@DIR@/error.log\"\nserver.max-worker = 2\nserver.chroot = \"@DIR@\"\n\
                server.username = \"nobody\"\nserver.groupname = \"nogroup\"\n";
    if !is_root() {
        // Not root: the chroot cannot be done, and featherd says so instead of running without it.
        let err = refused_start(conf);
        assert!(err.contains("server.chroot"), "{err}");
        return;
    }
    let s = Server::start_in(dir, conf, None);
    s.wait_log("server started");
    // Bound as root, serving as nobody:nogroup from inside the chroot (the document root
    // "/www" exists only there).
    let r = s.get("/index.html");
    assert_eq!((r.status, r.text().as_str()), (200, "inside the chroot\n"));
    assert_eq!(proc_ids(s.pid(), "Uid:"), vec![65534; 4]);
    assert_eq!(proc_ids(s.pid(), "Gid:"), vec![65534; 4]);
    assert_eq!(proc_ids(s.pid(), "Groups:"), vec![65534]);
    let root_link = std::fs::read_link(format!("/proc/{}/root", s.pid())).expect("root link");
    assert_eq!(root_link.canonicalize().ok(), s.dir.path().canonicalize().ok());
    // No graceful restart inside a chroot (the configuration is outside): refused, still serving.
    s.signal(libc::SIGUSR1);
    s.wait_log("no graceful restart with server.chroot");
    assert_eq!(s.get("/index.html").status, 200);
    // uid 0 is refused, as lighttpd does.
    let err = refused_start(&format!("{BASE}\nserver.username = \"root\"\n"));
    assert!(err.contains("will not set uid to 0"), "{err}");
}

/// A free port below 1024 (only root can bind one).
fn privileged_port() -> u16 {
    (700..1000).find(|p| TcpListener::bind(("127.0.0.1", *p)).is_ok()).expect("a free port below 1024")
}

#[test]
fn a_restart_after_the_privilege_drop_keeps_a_privileged_port() {
    let low = if is_root() { privileged_port() } else { 80 };
    let conf = |tag: &str| {
        format!(
            "{BASE}\nserver.username = \"nobody\"\nserver.tag = \"{tag}\"\n\
             $SERVER[\"socket\"] == \"127.0.0.1:{low}\" {{ }}\n"
        )
    };
    if !is_root() {
        // Not root: the port cannot be bound at all.
        let err = refused_start(&conf("one"));
        assert!(err.contains("cannot bind"), "{err}");
        return;
    }
    let s = Server::start(&conf("one"));
    // The port opens before the privilege drop; the log line comes after it.
    s.wait_log("server started");
    assert_eq!(proc_ids(s.pid(), "Uid:"), vec![65534; 4]);
    assert_eq!(get(low, "/").header("server"), Some("one"));
    // As nobody the port could not be bound again: the restart keeps the socket it has.
    s.rewrite_conf(&conf("two"));
    s.signal(libc::SIGUSR1);
    s.wait_log("graceful restart done");
    assert_eq!(get(low, "/").header("server"), Some("two"));
    assert_eq!(s.get("/").header("server"), Some("two"));
}
