//! The error log: the `log` crate with a fern dispatcher writing lighttpd-style lines
//! (`TIME: (SOURCE) message`) to `server.errorlog` or stderr. SIGHUP reopens the file in place
//! (the new file is dup2'ed onto the same descriptor), so a rotated log is picked up without a
//! lock on the logging path.

use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::sync::Mutex;

/// Where the log file is, for reopening: (path, fd).
static TARGET: Mutex<Option<(String, RawFd)>> = Mutex::new(None);

struct FdWriter(RawFd);

impl Write for FdWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: writing from a valid buffer to a descriptor this module owns for the life
        // of the process.
        let n = unsafe { libc::write(self.0, buf.as_ptr() as *const libc::c_void, buf.len()) };
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

/// Install the logger. `path` None logs to stderr.
pub fn init(path: Option<&str>, level: log::LevelFilter) -> Result<(), String> {
    let out: Box<dyn Write + Send> = match path {
        Some(p) if !p.is_empty() => {
            let fd = open_append(p).map_err(|e| format!("cannot open server.errorlog {p:?}: {e}"))?;
            if let Ok(mut t) = TARGET.lock() {
                *t = Some((p.to_string(), fd));
            }
            Box::new(FdWriter(fd))
        }
        _ => Box::new(io::stderr()),
    };
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
        .chain(fern::Output::writer(out, "\n"));
    // A second init (graceful restart) keeps the first logger; the target file is reopened.
    let _ = d.apply();
    log::set_max_level(level);
    Ok(())
}

/// SIGHUP: reopen the log file at its path.
pub fn reopen() {
    let Ok(t) = TARGET.lock() else { return };
    let Some((path, fd)) = t.as_ref() else { return };
    match open_append(path) {
        Ok(new) => {
            // SAFETY: dup3 onto our own log descriptor, then close the temporary one.
            unsafe {
                libc::dup3(new, *fd, libc::O_CLOEXEC);
                libc::close(new);
            }
        }
        Err(e) => log::error!("cannot reopen server.errorlog {path:?}: {e}"),
    }
}
