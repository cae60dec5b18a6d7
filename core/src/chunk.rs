//! A queue of body chunks: memory buffers and file ranges. Response bodies are built in one
//! by modules and drained to the socket by the worker: memory chunks with writev, file ranges
//! with sendfile, so a file never passes through user space.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

pub enum Chunk {
    Mem {
        buf: Vec<u8>,
        off: usize,
    },
    /// A file range; the descriptor may be shared with the worker's file cache.
    File {
        fd: Arc<OwnedFd>,
        off: u64,
        len: u64,
    },
}

impl Chunk {
    fn remaining(&self) -> u64 {
        match self {
            Chunk::Mem { buf, off } => (buf.len() - off) as u64,
            Chunk::File { len, .. } => *len,
        }
    }
}

#[derive(Default)]
pub struct ChunkQueue {
    chunks: VecDeque<Chunk>,
    bytes: u64,
    /// TCP_CORK is set on the socket (see `write_to`).
    corked: bool,
}

fn cork(sock: i32, on: bool) {
    let v: libc::c_int = on.into();
    // SAFETY: setsockopt with a valid int option value on the caller's socket.
    unsafe {
        libc::setsockopt(
            sock,
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Outcome of one [`ChunkQueue::write_to`] attempt.
pub enum WriteResult {
    /// Wrote this many bytes (maybe less than queued).
    Wrote(u64),
    /// The socket is full.
    WouldBlock,
}

/// The outcome of a write system call that returned -1: a full socket or an interrupted call
/// are not errors.
fn last_write_error() -> io::Result<WriteResult> {
    let e = io::Error::last_os_error();
    match e.kind() {
        io::ErrorKind::WouldBlock => Ok(WriteResult::WouldBlock),
        io::ErrorKind::Interrupted => Ok(WriteResult::Wrote(0)),
        _ => Err(e),
    }
}

impl ChunkQueue {
    pub fn len(&self) -> u64 {
        self.bytes
    }
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.bytes = 0;
    }

    /// Free the queue's memory if it is empty.
    pub fn release(&mut self) {
        if self.chunks.is_empty() {
            self.chunks = VecDeque::new();
        }
    }

    /// Append bytes, coalescing with a small trailing memory chunk.
    pub fn push_mem(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.bytes += data.len() as u64;
        if let Some(Chunk::Mem { buf, .. }) = self.chunks.back_mut() {
            if buf.len() + data.len() <= 16 * 1024 {
                buf.extend_from_slice(data);
                return;
            }
        }
        self.chunks.push_back(Chunk::Mem { buf: data.to_vec(), off: 0 });
    }

    pub fn push_vec(&mut self, buf: Vec<u8>) {
        if buf.is_empty() {
            return;
        }
        self.bytes += buf.len() as u64;
        self.chunks.push_back(Chunk::Mem { buf, off: 0 });
    }

    pub fn push_file(&mut self, fd: OwnedFd, off: u64, len: u64) {
        self.push_shared_file(Arc::new(fd), off, len);
    }

    pub fn push_shared_file(&mut self, fd: Arc<OwnedFd>, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.bytes += len;
        self.chunks.push_back(Chunk::File { fd, off, len });
    }

    /// Read file chunks of at most `max` bytes into memory (pread), so that they can be
    /// written together with what precedes them. A chunk that cannot be read stays a file.
    pub fn inline_small_files(&mut self, max: u64) {
        for c in self.chunks.iter_mut() {
            if let Chunk::File { fd, off, len } = c {
                if *len <= max {
                    let mut buf = vec![0u8; *len as usize];
                    // SAFETY: pread into our own buffer of exactly len bytes from the chunk's
                    // open file descriptor.
                    let n = unsafe {
                        libc::pread(
                            fd.as_raw_fd(),
                            buf.as_mut_ptr() as *mut libc::c_void,
                            buf.len(),
                            *off as libc::off_t,
                        )
                    };
                    if n >= 0 && n as usize == buf.len() {
                        *c = Chunk::Mem { buf, off: 0 };
                    }
                }
            }
        }
    }

    /// Move every chunk of `other` to the end of this queue, framing each as an HTTP/1.1
    /// chunk when `chunked`.
    pub fn take_from(&mut self, other: &mut ChunkQueue, chunked: bool) {
        while let Some(c) = other.chunks.pop_front() {
            let n = c.remaining();
            other.bytes -= n;
            if n == 0 {
                continue;
            }
            if chunked {
                self.push_mem(format!("{n:x}\r\n").as_bytes());
            }
            self.bytes += n;
            self.chunks.push_back(c);
            if chunked {
                self.push_mem(b"\r\n");
            }
        }
    }

    /// Write as much as the socket takes in one system call: writev of the leading memory
    /// chunks, or sendfile of a leading file range.
    pub fn write_to(&mut self, sock: i32) -> io::Result<WriteResult> {
        let Some(front) = self.chunks.front() else { return Ok(WriteResult::Wrote(0)) };
        let n = match front {
            Chunk::Mem { .. } => {
                // A head followed by a file: cork, so that the head leaves in the same full-size
                // segments as the file's first bytes instead of as a tiny segment of its own
                // (TCP_NODELAY is on). The first sendfile uncorks. On loopback this more than
                // doubles 1 MiB keep-alive throughput: the receiver's work per byte drops.
                if !self.corked && self.chunks.iter().any(|c| matches!(c, Chunk::File { .. })) {
                    cork(sock, true);
                    self.corked = true;
                }
                let mut iov: [libc::iovec; 16] =
                    [libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 0 }; 16];
                let mut cnt = 0;
                for c in self.chunks.iter() {
                    let Chunk::Mem { buf, off } = c else { break };
                    iov[cnt] = libc::iovec {
                        iov_base: buf[*off..].as_ptr() as *mut libc::c_void,
                        iov_len: buf.len() - off,
                    };
                    cnt += 1;
                    if cnt == iov.len() {
                        break;
                    }
                }
                // SAFETY: iov[..cnt] point into buffers owned by self.chunks, alive and
                // unmodified during the call; sock is a socket fd owned by the caller.
                let r = unsafe { libc::writev(sock, iov.as_ptr(), cnt as libc::c_int) };
                if r < 0 {
                    return last_write_error();
                }
                r as u64
            }
            Chunk::File { fd, off, len } => {
                let mut o: libc::off_t = *off as libc::off_t;
                let want = (*len).min(256 * 1024) as usize;
                // SAFETY: fd is an open file owned by the chunk, sock the caller's socket; o
                // is a valid off_t the kernel updates.
                let r = unsafe { libc::sendfile(sock, fd.as_raw_fd(), &mut o, want) };
                if self.corked {
                    cork(sock, false);
                    self.corked = false;
                }
                if r < 0 {
                    return last_write_error();
                }
                if r == 0 {
                    // The file shrank under us: the promised length cannot be delivered.
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file truncated while sending"));
                }
                r as u64
            }
        };
        self.consume(n);
        Ok(WriteResult::Wrote(n))
    }

    fn consume(&mut self, mut n: u64) {
        self.bytes -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else { break };
            let rem = front.remaining();
            if n >= rem {
                n -= rem;
                self.chunks.pop_front();
            } else {
                match front {
                    Chunk::Mem { off, .. } => *off += n as usize,
                    Chunk::File { off, len, .. } => {
                        *off += n;
                        *len -= n;
                    }
                }
                n = 0;
            }
        }
    }

    /// Copy out up to `max` bytes of leading memory chunks (for tests and small reads).
    pub fn peek_mem(&self, max: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for c in &self.chunks {
            let Chunk::Mem { buf, off } = c else { break };
            v.extend_from_slice(&buf[*off..]);
            if v.len() >= max {
                v.truncate(max);
                break;
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_and_writing() {
        let mut body = ChunkQueue::default();
        body.push_mem(b"hello");
        body.push_mem(b" world");
        let mut out = ChunkQueue::default();
        out.push_mem(b"HEAD\r\n");
        out.take_from(&mut body, true);
        assert!(body.is_empty());
        assert_eq!(out.peek_mem(1000), b"HEAD\r\nb\r\nhello world\r\n");
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut total = 0;
        while !out.is_empty() {
            if let Ok(WriteResult::Wrote(n)) = out.write_to(a.as_raw_fd()) {
                total += n;
            }
        }
        assert_eq!(total, 22);
        drop(a);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut &b, &mut s).unwrap();
        assert_eq!(s, "HEAD\r\nb\r\nhello world\r\n");
    }

    #[test]
    fn file_chunks_use_sendfile() {
        let dir = std::env::temp_dir().join(format!("featherd-chunk-{}", std::process::id()));
        std::fs::write(&dir, b"0123456789").unwrap();
        let f = std::fs::File::open(&dir).unwrap();
        let mut q = ChunkQueue::default();
        q.push_file(f.into(), 2, 5);
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        while !q.is_empty() {
            q.write_to(a.as_raw_fd()).unwrap();
        }
        drop(a);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut &b, &mut s).unwrap();
        assert_eq!(s, "23456");
        std::fs::remove_file(&dir).unwrap();
    }
}
