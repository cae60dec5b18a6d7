//! Where log lines go: an append-only file, a piped logger's stdin, or syslog.
//!
//! Lines come in from worker threads as complete byte strings; each is handed to the kernel
//! in one write(2), so lines from different workers never interleave (O_APPEND makes the
//! file offset update atomic; pipe writes up to PIPE_BUF are atomic too). Reopening (SIGHUP)
//! and restarting a piped logger happen on the main thread: the new file replaces the old one
//! behind a lock held only to clone or swap an `Arc`, never during a write, and the old file
//! is closed when the last in-flight write using it finishes.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// A piped logger that died this soon after being started is not restarted at once (it would
/// spin); the once-a-second trigger retries it.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
enum Kind {
    File(String),
    Pipe {
        command: String,
        /// 0 while the logger is not running.
        pid: AtomicU32,
        started: Mutex<Instant>,
    },
}

/// One destination named by `accesslog.filename`; shared by every config block naming it.
#[derive(Debug)]
pub struct Sink {
    kind: Kind,
    out: RwLock<Arc<File>>,
    /// Set after a failed write so a full disk or a dead logger is reported once, not per
    /// request; cleared by the next successful write.
    failing: AtomicBool,
}

fn open_append(path: &str) -> io::Result<File> {
    OpenOptions::new().append(true).create(true).mode(0o644).open(path)
}

fn spawn(command: &str) -> io::Result<(File, u32)> {
    let mut child = Command::new("/bin/sh").arg("-c").arg(command).stdin(Stdio::piped()).spawn()?;
    let pid = child.id();
    let stdin = child.stdin.take().ok_or_else(|| io::Error::other("no stdin pipe"))?;
    // The Child handle is dropped without waiting: the server reaps children and reports
    // them through the waitpid hook.
    Ok((File::from(std::os::fd::OwnedFd::from(stdin)), pid))
}

impl Sink {
    /// Open what an `accesslog.filename` value names: a file, or with a leading `|` a shell
    /// command started now whose stdin receives the lines.
    pub fn open(name: &str) -> io::Result<Sink> {
        let (kind, file) = match name.strip_prefix('|') {
            Some(command) => {
                let command = command.trim_start().to_owned();
                let (file, pid) = spawn(&command)?;
                (Kind::Pipe { command, pid: AtomicU32::new(pid), started: Mutex::new(Instant::now()) }, file)
            }
            None => (Kind::File(name.to_owned()), open_append(name)?),
        };
        Ok(Sink { kind, out: RwLock::new(Arc::new(file)), failing: AtomicBool::new(false) })
    }

    fn current(&self) -> Arc<File> {
        // A poisoned lock only means a panic elsewhere while holding it; the Arc inside is
        // still a valid file.
        self.out.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, f: File) {
        *self.out.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(f);
    }

    /// Write one complete line (newline included).
    pub fn write_line(&self, line: &[u8]) {
        let f = self.current();
        match (&*f).write_all(line) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    log::info!("{}: writing again", self.describe());
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    log::error!("{}: write failed: {e} (further failures are not reported)", self.describe());
                }
            }
        }
    }

    fn describe(&self) -> String {
        match &self.kind {
            Kind::File(p) => p.clone(),
            Kind::Pipe { command, .. } => format!("|{command}"),
        }
    }

    /// SIGHUP: reopen a log file by name (after logrotate moved it away). Piped loggers keep
    /// running.
    pub fn reopen(&self) {
        if let Kind::File(path) = &self.kind {
            match open_append(path) {
                Ok(f) => self.replace(f),
                Err(e) => log::error!("reopening {path}: {e} (still writing to the old file)"),
            }
        }
    }

    /// The piped logger's pid, if this is one and it is running.
    pub fn pid(&self) -> Option<u32> {
        match &self.kind {
            Kind::Pipe { pid, .. } => Some(pid.load(Ordering::Acquire)).filter(|&p| p != 0),
            Kind::File(_) => None,
        }
    }

    /// A child exited: if it was this sink's logger, restart it (now, or from `trigger` when
    /// it died right after starting). Returns whether the pid was ours.
    pub fn child_exited(&self, exited: u32) -> bool {
        let Kind::Pipe { command, pid, started } = &self.kind else {
            return false;
        };
        if exited == 0 || pid.compare_exchange(exited, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
        log::warn!("piped logger |{command} (pid {exited}) exited");
        let age = started.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        if age >= RESPAWN_BACKOFF {
            self.respawn();
        }
        true
    }

    /// Restart a piped logger that is not running (called about once a second).
    pub fn respawn_if_dead(&self) {
        if matches!(&self.kind, Kind::Pipe { pid, .. } if pid.load(Ordering::Acquire) == 0) {
            self.respawn();
        }
    }

    fn respawn(&self) {
        let Kind::Pipe { command, pid, started } = &self.kind else {
            return;
        };
        *started.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        match spawn(command) {
            Ok((f, new_pid)) => {
                self.replace(f);
                pid.store(new_pid, Ordering::Release);
                log::info!("piped logger |{command} restarted (pid {new_pid})");
            }
            Err(e) => log::error!("restarting piped logger |{command}: {e}"),
        }
    }
}

/// Lines to the local syslog daemon over its datagram socket (`/dev/log`), facility daemon.
#[derive(Debug)]
pub struct Syslog {
    sock: UnixDatagram,
    path: String,
    failing: AtomicBool,
}

const LOG_DAEMON: u32 = 3 << 3;

impl Syslog {
    pub fn new(path: &str) -> io::Result<Syslog> {
        Ok(Syslog { sock: UnixDatagram::unbound()?, path: path.to_owned(), failing: AtomicBool::new(false) })
    }

    /// The datagram for one line: `<PRI>featherd[pid]: line`; syslog daemons add the time
    /// and host themselves.
    pub fn message(level: u8, line: &[u8]) -> Vec<u8> {
        let mut m = format!("<{}>featherd[{}]: ", LOG_DAEMON | u32::from(level.min(7)), std::process::id())
            .into_bytes();
        m.extend_from_slice(line);
        m
    }

    pub fn send(&self, level: u8, line: &[u8]) {
        match self.sock.send_to(&Self::message(level, line), &self.path) {
            Ok(_) => self.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    log::error!("syslog {}: {e} (further failures are not reported)", self.path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mod_accesslog_{}_{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn concurrent_lines_do_not_interleave_and_reopen_follows_rotation() {
        let d = tmp("file");
        let log = d.join("access.log");
        let name = log.to_str().expect("utf-8 temp path").to_owned();
        let sink = Arc::new(Sink::open(&name).expect("open"));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = Arc::clone(&sink);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(100 + t * 50));
                        s.write_line(line.as_bytes());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        let text = std::fs::read_to_string(&log).expect("read");
        assert_eq!(text.lines().count(), 800);
        for l in text.lines() {
            let mut parts = l.split(' ');
            assert_eq!(parts.next(), Some("thread"), "{l}");
            let t: usize = parts.next().and_then(|s| s.parse().ok()).expect("thread number");
            assert_eq!(parts.nth(2).map(str::len), Some(100 + t * 50), "{l}");
        }

        // logrotate: move the file away, SIGHUP, new lines go to a new file of the old name.
        let rotated = d.join("access.log.1");
        std::fs::rename(&log, &rotated).expect("rename");
        sink.write_line(b"late line to the old file\n");
        sink.reopen();
        sink.write_line(b"first line of the new file\n");
        assert!(std::fs::read_to_string(&rotated).expect("rotated").ends_with("late line to the old file\n"));
        assert_eq!(std::fs::read_to_string(&log).expect("new"), "first line of the new file\n");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn piped_logger_receives_lines() {
        let d = tmp("pipe");
        let out = d.join("piped.log");
        let sink = Sink::open(&format!("| cat > '{}'", out.display())).expect("spawn");
        assert!(sink.pid().is_some());
        sink.write_line(b"one\n");
        sink.write_line(b"two\n");
        drop(sink); // closes the pipe: cat sees EOF and exits
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text == "one\ntwo\n" {
                break;
            }
            assert!(Instant::now() < deadline, "piped logger wrote {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn waitpid_only_claims_own_pid() {
        let d = tmp("pidcheck");
        let sink = Sink::open("|cat > /dev/null").expect("spawn");
        let pid = sink.pid().expect("running");
        assert!(!sink.child_exited(pid.wrapping_add(100_000)));
        assert!(!sink.child_exited(0));
        let file = Sink::open(d.join("f.log").to_str().expect("utf-8")).expect("open");
        assert!(!file.child_exited(pid));
        assert_eq!(file.pid(), None);
        drop(sink);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn unwritable_file_is_an_error_at_open() {
        assert!(Sink::open("/nonexistent-dir-for-test/access.log").is_err());
    }

    #[test]
    fn syslog_message_shape() {
        let m = Syslog::message(6, b"127.0.0.1 - - line");
        let s = String::from_utf8(m).expect("ascii");
        assert!(s.starts_with("<30>featherd["), "{s}");
        assert!(s.ends_with("]: 127.0.0.1 - - line"), "{s}");
        assert!(String::from_utf8(Syslog::message(200, b"x")).expect("ascii").starts_with("<31>"));
    }

    #[test]
    fn syslog_datagrams_arrive() {
        let d = tmp("syslog");
        let path = d.join("log.sock");
        let server = UnixDatagram::bind(&path).expect("bind");
        let s = Syslog::new(path.to_str().expect("utf-8")).expect("socket");
        s.send(6, b"hello");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).expect("recv");
        assert!(buf[..n].starts_with(b"<30>featherd["));
        assert!(buf[..n].ends_with(b"]: hello"));
        let _ = std::fs::remove_dir_all(&d);
    }
}
