//! The error log: the `log` crate with a fern dispatcher writing lighttpd-style lines
//! (`TIME: (SOURCE) message`) to `server.errorlog` or stderr. SIGHUP reopens the file in place
//! (the new file is dup2'ed onto the same descriptor), so a rotated log is picked up without a
//! lock on the logging path. A graceful restart calls [`init`] again: a new path is opened and
//! takes over the same descriptor the same way.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;

/// A log file whose descriptor number never changes once opened: reopening (SIGHUP, a
/// graceful restart) dup2s the new file onto it, so writers and children holding the number
/// need no lock.
struct LogFile {
    /// The config key, for messages.
    key: &'static str,
    /// The descriptor: `unset` until a file is opened.
    fd: AtomicI32,
    /// The file's path, for reopening; None while there is none.
    target: Mutex<Option<String>>,
    unset: i32,
}

/// Log lines go to 2 (stderr) or the `server.errorlog` file.
static ERROR_LOG: LogFile =
    LogFile { key: "server.errorlog", fd: AtomicI32::new(2), target: Mutex::new(None), unset: 2 };

/// `server.breakagelog`: where CGI scripts' stderr goes (mod_cgi hands the descriptor to the
/// script as its stderr), -1 when not set; a module may pass it to a child at any moment.
static BREAKAGE_LOG: LogFile =
    LogFile { key: "server.breakagelog", fd: AtomicI32::new(-1), target: Mutex::new(None), unset: -1 };

impl LogFile {
    fn fd(&self) -> i32 {
        self.fd.load(Ordering::Relaxed)
    }

    /// Point at `path` (start and graceful restart; the same path is opened again, as SIGHUP
    /// does). None or empty: no file; a descriptor given up is left open, since a line being
    /// written (or a child being handed it) must not land in whatever file reuses the number.
    fn place(&self, path: Option<&str>) -> Result<(), String> {
        let key = self.key;
        let mut target = self.target.lock().map_err(|_| format!("{key} lock poisoned"))?;
        match path {
            Some(p) if !p.is_empty() => {
                let fd = match open_append(p) {
                    Ok(fd) => fd,
                    Err(e) if target.as_deref() == Some(p) => {
                        // A restart after the privilege drop may not open the file again: the
                        // descriptor open since the start still writes to it.
                        drop(target);
                        log::warn!("cannot reopen {key} {p:?} ({e}); going on with the open file");
                        return Ok(());
                    }
                    Err(e) => return Err(format!("cannot open {key} {p:?}: {e}")),
                };
                if target.is_some() {
                    // SAFETY: dup3 onto our own descriptor, then close the temporary one.
                    unsafe {
                        libc::dup3(fd, self.fd(), libc::O_CLOEXEC);
                        libc::close(fd);
                    }
                } else {
                    self.fd.store(fd, Ordering::Relaxed);
                }
                *target = Some(p.to_string());
            }
            _ => {
                self.fd.store(self.unset, Ordering::Relaxed);
                *target = None;
            }
        }
        Ok(())
    }

    /// SIGHUP: reopen the file at its path.
    fn reopen(&self) {
        let Ok(t) = self.target.lock() else { return };
        let Some(path) = t.as_ref() else { return };
        match open_append(path) {
            Ok(new) => {
                // SAFETY: dup3 onto our own descriptor, then close the temporary one.
                unsafe {
                    libc::dup3(new, self.fd(), libc::O_CLOEXEC);
                    libc::close(new);
                }
            }
            Err(e) => log::error!("cannot reopen {} {path:?}: {e}", self.key),
        }
    }
}

struct FdWriter;

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fd = ERROR_LOG.fd();
        // SAFETY: writing from a valid buffer to stderr or to the log descriptor, which this
        // module owns for the life of the process.
        let n = unsafe { libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn open_append(path: &str) -> io::Result<RawFd> {
    let c = CString::new(path).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: open(2) with a valid C string.
    let fd = unsafe {
        libc::open(c.as_ptr(), libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_CLOEXEC, 0o644)
    };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

fn source(target: &str) -> &str {
    // Core messages carry Rust module paths; modules log under their own name.
    if target.starts_with("featherd") {
        "featherd"
    } else {
        target
    }
}

/// The log file's path, if logging goes to a file.
pub fn current_path() -> Option<String> {
    ERROR_LOG.target.lock().ok()?.clone()
}

/// Install the logger (the first call) or point it at a new place (a graceful restart; the
/// same path is opened again, as SIGHUP does). `path` None or empty logs to stderr.
pub fn init(path: Option<&str>, level: log::LevelFilter) -> Result<(), String> {
    ERROR_LOG.place(path)?;
    let d = fern::Dispatch::new()
        .format(|out, msg, rec| {
            out.finish(format_args!(
                "{}: ({}) {}",
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()),
                source(rec.target()),
                msg
            ))
        })
        .level(level)
        .chain(fern::Output::writer(Box::new(FdWriter), "\n"));
    // A second init (graceful restart) keeps the first dispatcher, which writes to ERROR_LOG.
    let _ = d.apply();
    log::set_max_level(level);
    Ok(())
}

/// SIGHUP: reopen the log file at its path.
pub fn reopen() {
    ERROR_LOG.reopen();
}

/// Open `server.breakagelog` (start and graceful restart); None or empty: none.
pub fn init_breakage(path: Option<&str>) -> Result<(), String> {
    BREAKAGE_LOG.place(path)
}

/// The breakage log's descriptor, or -1.
pub fn breakage_fd() -> i32 {
    BREAKAGE_LOG.fd()
}

/// SIGHUP: reopen the breakage log at its path.
pub fn reopen_breakage() {
    BREAKAGE_LOG.reopen();
}
