//! The end-to-end test harness: start the real `featherd` binary (built by
//! `cargo build --workspace`) with a config written for the test, wait until its port answers,
//! and talk to it over 127.0.0.1 with raw sockets or curl. Every server is stopped (SIGTERM,
//! then waited for) when its handle drops.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// target/debug (or release): where cargo put featherd and the module libraries.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test>-<hash>
    exe.parent().and_then(Path::parent).expect("target dir").to_path_buf()
}

pub fn featherd_bin() -> PathBuf {
    let p = target_dir().join("featherd");
    assert!(p.is_file(), "{} is missing: run `cargo build --workspace` before the tests", p.display());
    p
}

/// The workspace root (for fixtures and third-party crates).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "featherd-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn write(&self, rel: &str, data: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        std::fs::write(&p, data).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port that was free a moment ago, and never handed out before by this test process (tests
/// run in parallel threads: two of them must not race for one port).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let p = TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if !given.contains(&p) {
            given.push(p);
            return p;
        }
    }
}

pub struct Server {
    pub child: Option<Child>,
    pub port: u16,
    pub dir: TempDir,
    pub conf: PathBuf,
}

/// Result of a start that was expected to fail.
pub struct Failed {
    pub code: Option<i32>,
    pub stderr: String,
}

/// Fill `@PORT@`, `@DIR@` (the test's temp dir) and `@DOCROOT@` (`@DIR@/www`).
fn render(conf: &str, port: u16, dir: &Path) -> String {
    conf.replace("@PORT@", &port.to_string())
        .replace("@DOCROOT@", &dir.join("www").display().to_string())
        .replace("@DIR@", &dir.display().to_string())
}

/// A config header most tests share: docroot, loopback port, error log in the temp dir.
pub const BASE: &str = r#"
server.document-root = "@DOCROOT@"
server.bind = "127.0.0.1"
server.port = @PORT@
server.errorlog = "@DIR@/error.log"
server.max-worker = 2
"#;

impl Server {
    /// Start featherd in the foreground with `conf` (placeholders filled), using `module_dir`
    /// (default: the target dir) and wait until it accepts connections.
    pub fn start(conf: &str) -> Server {
        Self::start_in(TempDir::new("srv"), conf, None)
    }

    pub fn start_in(dir: TempDir, conf: &str, module_dir: Option<&Path>) -> Server {
        match Self::try_start(dir, conf, module_dir) {
            Ok(s) => s,
            Err(f) => panic!("featherd did not start (exit {:?}):\n{}", f.code, f.stderr),
        }
    }

    pub fn try_start(dir: TempDir, conf: &str, module_dir: Option<&Path>) -> Result<Server, Failed> {
        std::fs::create_dir_all(dir.path().join("www")).expect("docroot");
        let port = free_port();
        let conf_path = dir.path().join("featherd.conf");
        std::fs::write(&conf_path, render(conf, port, dir.path())).expect("write conf");
        let mdir = module_dir.map(Path::to_path_buf).unwrap_or_else(target_dir);
        let mut child = Command::new(featherd_bin())
            .arg("-D")
            .arg("-f")
            .arg(&conf_path)
            .arg("-m")
            .arg(&mdir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn featherd");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return Err(Failed { code: status.code(), stderr: err });
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "featherd did not open port {port} within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Server { child: Some(child), port, dir, conf: conf_path })
    }

    /// Start with a config that must be refused; returns the exit code and stderr.
    pub fn start_fail(conf: &str, module_dir: Option<&Path>) -> Failed {
        match Self::try_start(TempDir::new("fail"), conf, module_dir) {
            Ok(_) => panic!("featherd started but was expected to refuse the configuration"),
            Err(f) => f,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Wait for the process to exit (after a signal); returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let mut child = self.child.take()?;
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return s.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("featherd did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Wait until the error log contains `needle` (the server writes it asynchronously).
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let l = self.error_log();
            if l.contains(needle) {
                return l;
            }
            assert!(Instant::now() < deadline, "error log never contained {needle:?}:\n{l}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn docroot(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    pub fn get(&self, path: &str) -> Response {
        get(self.port, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Send raw bytes, half-close, read everything until the server closes (10 s at most).
pub fn raw(port: u16, req: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(req).expect("send");
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// Parse every response in `data` (for pipelining); bodies by Content-Length or chunked.
pub fn parse_responses(mut data: &[u8], head_request: bool) -> Vec<Response> {
    let mut out = Vec::new();
    while let Some(end) = find(data, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&data[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_string(), v.trim().to_string())))
            .collect();
        let mut rest = &data[end + 4..];
        let hv = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
        let body: Vec<u8>;
        if head_request || status == 304 || status == 204 {
            body = Vec::new();
        } else if let Some(cl) = hv("content-length").and_then(|v| v.parse::<usize>().ok()) {
            let n = cl.min(rest.len());
            body = rest[..n].to_vec();
            rest = &rest[n..];
        } else if hv("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut b = Vec::new();
            while let Some(le) = find(rest, b"\r\n") {
                let size =
                    usize::from_str_radix(String::from_utf8_lossy(&rest[..le]).trim(), 16).unwrap_or(0);
                rest = &rest[le + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or(&[]);
                    break;
                }
                let n = size.min(rest.len());
                b.extend_from_slice(&rest[..n]);
                rest = rest.get(n + 2..).unwrap_or(&[]);
            }
            body = b;
        } else {
            body = rest.to_vec();
            rest = &[];
        }
        out.push(Response { status, head, headers, body });
        data = rest;
    }
    out
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// GET with Connection: close over a fresh connection.
pub fn get(port: u16, path: &str) -> Response {
    request(port, &format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"))
}

/// Send one raw request and parse the single response.
pub fn request(port: u16, req: &str) -> Response {
    let head = req.starts_with("HEAD ");
    let data = raw(port, req.as_bytes());
    parse_responses(&data, head)
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no response to {req:?}; got {:?}", String::from_utf8_lossy(&data)))
}

/// Run curl with arguments; returns (exit code, stdout, stderr).
pub fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl").args(["-sS", "--max-time", "20"]).args(args).output().expect("run curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run featherd with arguments (no server): (exit code, stdout, stderr).
pub fn featherd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(featherd_bin()).args(args).output().expect("run featherd");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Write `conf` (placeholders filled, with a fresh port) as `dir/featherd.conf`; returns the
/// port and the file. For tests that start featherd themselves ([`featherd_command`]).
pub fn write_config(dir: &TempDir, conf: &str) -> (u16, PathBuf) {
    std::fs::create_dir_all(dir.path().join("www")).expect("docroot");
    let port = free_port();
    let path = dir.path().join("featherd.conf");
    std::fs::write(&path, render(conf, port, dir.path())).expect("write conf");
    (port, path)
}

/// `featherd -D -f CONF -m TARGET`, stdin and stdout null, stderr piped: for the caller to add
/// flags, descriptors or environment, and to spawn.
pub fn featherd_command(conf: &Path) -> Command {
    let mut c = Command::new(featherd_bin());
    c.arg("-D")
        .arg("-f")
        .arg(conf)
        .arg("-m")
        .arg(target_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Wait until `f` holds (10 s at most), polling.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Server {
    /// Replace the configuration file (placeholders filled with this server's port and
    /// directory), e.g. before SIGUSR1.
    pub fn rewrite_conf(&self, conf: &str) {
        std::fs::write(&self.conf, render(conf, self.port, self.dir.path())).expect("write conf");
    }

    /// Wait until the error log contains `needle` at least `n` times.
    pub fn wait_log_count(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let l = self.error_log();
            if l.matches(needle).count() >= n {
                return l;
            }
            assert!(Instant::now() < deadline, "error log never contained {needle:?} {n} times:\n{l}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
