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

/// The descriptor log lines go to: 2 (stderr) or the log file, whose descriptor never changes
/// once opened (reopening dup2s onto it).
static LOG_FD: AtomicI32 = AtomicI32::new(2);

/// The log file's path, for reopening; None while logging to stderr.
static TARGET: Mutex<Option<String>> = Mutex::new(None);

struct FdWriter;

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let fd = LOG_FD.load(Ordering::Relaxed);
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
    TARGET.lock().ok()?.clone()
}

/// Install the logger (the first call) or point it at a new place (a graceful restart; the
/// same path is opened again, as SIGHUP does). `path` None or empty logs to stderr.
pub fn init(path: Option<&str>, level: log::LevelFilter) -> Result<(), String> {
    let mut target = TARGET.lock().map_err(|_| "error log lock poisoned".to_string())?;
    match path {
        Some(p) if !p.is_empty() => {
            let fd = match open_append(p) {
                Ok(fd) => fd,
                Err(e) if target.as_deref() == Some(p) => {
                    // A restart after the privilege drop may not open the file again: the
                    // descriptor open since the start still writes to it.
                    drop(target);
                    log::warn!("cannot reopen server.errorlog {p:?} ({e}); going on with the open file");
                    return Ok(());
                }
                Err(e) => return Err(format!("cannot open server.errorlog {p:?}: {e}")),
            };
            let cur = LOG_FD.load(Ordering::Relaxed);
            if target.is_some() {
                // SAFETY: dup3 onto our own log descriptor, then close the temporary one.
                unsafe {
                    libc::dup3(fd, cur, libc::O_CLOEXEC);
                    libc::close(fd);
                }
            } else {
                LOG_FD.store(fd, Ordering::Relaxed);
            }
            *target = Some(p.to_string());
        }
        _ => {
            // A file descriptor given up is left open: a line being written by another
            // thread must not land in whatever file reuses the number.
            LOG_FD.store(2, Ordering::Relaxed);
            *target = None;
        }
    }
    drop(target);
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
    // A second init (graceful restart) keeps the first dispatcher, which writes to LOG_FD.
    let _ = d.apply();
    log::set_max_level(level);
    Ok(())
}

/// SIGHUP: reopen the log file at its path.
pub fn reopen() {
    let Ok(t) = TARGET.lock() else { return };
    let Some(path) = t.as_ref() else { return };
    match open_append(path) {
        Ok(new) => {
            // SAFETY: dup3 onto our own log descriptor, then close the temporary one.
            unsafe {
                libc::dup3(new, LOG_FD.load(Ordering::Relaxed), libc::O_CLOEXEC);
                libc::close(new);
            }
        }
        Err(e) => log::error!("cannot reopen server.errorlog {path:?}: {e}"),
    }
}

/// `server.breakagelog`: where CGI scripts' stderr goes (mod_cgi hands the descriptor to the
/// script as its stderr), -1 when not set. Like the error log, its number never changes once
/// opened: SIGHUP and a restart dup2 the reopened file onto it, so a module may pass it to a
/// child at any moment.
static BREAK_FD: AtomicI32 = AtomicI32::new(-1);
static BREAK_TARGET: Mutex<Option<String>> = Mutex::new(None);

/// Open `server.breakagelog` (start and graceful restart). None or empty: none; a descriptor
/// given up stays open (a child may be being handed it).
pub fn init_breakage(path: Option<&str>) -> Result<(), String> {
    let mut target = BREAK_TARGET.lock().map_err(|_| "breakage log lock poisoned".to_string())?;
    match path {
        Some(p) if !p.is_empty() => {
            let fd = match open_append(p) {
                Ok(fd) => fd,
                Err(e) if target.as_deref() == Some(p) => {
                    log::warn!("cannot reopen server.breakagelog {p:?} ({e}); going on with the open file");
                    return Ok(());
                }
                Err(e) => return Err(format!("cannot open server.breakagelog {p:?}: {e}")),
            };
            let cur = BREAK_FD.load(Ordering::Relaxed);
            if cur >= 0 {
                // SAFETY: dup3 onto our own breakage log descriptor, then close the temporary.
                unsafe {
                    libc::dup3(fd, cur, libc::O_CLOEXEC);
                    libc::close(fd);
                }
            } else {
                BREAK_FD.store(fd, Ordering::Relaxed);
            }
            *target = Some(p.to_string());
        }
        _ => {
            BREAK_FD.store(-1, Ordering::Relaxed);
            *target = None;
        }
    }
    Ok(())
}

/// The breakage log's descriptor, or -1.
pub fn breakage_fd() -> i32 {
    BREAK_FD.load(Ordering::Relaxed)
}

/// SIGHUP: reopen the breakage log at its path.
pub fn reopen_breakage() {
    let Ok(t) = BREAK_TARGET.lock() else { return };
    let Some(path) = t.as_ref() else { return };
    match open_append(path) {
        Ok(new) => {
            // SAFETY: dup3 onto our own breakage log descriptor, then close the temporary.
            unsafe {
                libc::dup3(new, BREAK_FD.load(Ordering::Relaxed), libc::O_CLOEXEC);
                libc::close(new);
            }
        }
        Err(e) => log::error!("cannot reopen server.breakagelog {path:?}: {e}"),
    }
}
