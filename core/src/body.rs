//! The request body on its way from the socket to the handler: framing (Content-Length,
//! chunked, or "until the client closes" for an upgraded connection), the chunked decoder,
//! and the store the handler reads from with `request_body_read`. Up to 64 KiB stay in memory;
//! beyond that, when the body is buffered rather than streamed, it spills to an unlinked
//! temporary file under `server.upload-dirs`, so a 1 GiB upload never sits in memory.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Unread body bytes kept in memory before spilling (or, when streaming, before the socket
/// is no longer read: backpressure towards the client).
pub const MEM_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the hex size; `ext` once extensions (or whitespace) started.
    Size {
        size: u64,
        digits: u8,
        ext: bool,
    },
    /// CR of the size line seen; LF expected.
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// Trailer lines; `empty` while the current line has no bytes.
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(u64),
    Chunked(Chunk),
    UntilEof,
}

/// Where the body goes and how much of it came.
pub struct BodyIn {
    framing: Framing,
    mem: Vec<u8>,
    mem_pos: usize,
    file: Option<File>,
    file_len: u64,
    file_pos: u64,
    /// Decoded body bytes received so far.
    pub received: u64,
    /// All of the body arrived.
    pub complete: bool,
}

impl Default for BodyIn {
    fn default() -> Self {
        BodyIn {
            framing: Framing::None,
            mem: Vec::new(),
            mem_pos: 0,
            file: None,
            file_len: 0,
            file_pos: 0,
            received: 0,
            complete: true,
        }
    }
}

impl BodyIn {
    pub fn reset(&mut self) {
        self.framing = Framing::None;
        self.mem.clear();
        if self.mem.capacity() > MEM_LIMIT * 2 {
            self.mem = Vec::new();
        }
        self.mem_pos = 0;
        self.file = None;
        self.file_len = 0;
        self.file_pos = 0;
        self.received = 0;
        self.complete = true;
    }

    /// A body of `len` bytes (0: none).
    pub fn start_length(&mut self, len: u64) {
        self.reset();
        self.framing = Framing::Length(len);
        self.complete = len == 0;
    }

    pub fn start_chunked(&mut self) {
        self.reset();
        self.framing = Framing::Chunked(Chunk::Size { size: 0, digits: 0, ext: false });
        self.complete = false;
    }

    /// After a 101 response the client's bytes are a raw stream until it closes.
    pub fn start_until_eof(&mut self) {
        self.framing = Framing::UntilEof;
        self.complete = false;
    }

    /// A raw stream after a 101: every byte is news for the handler.
    pub fn is_tunnel(&self) -> bool {
        self.framing == Framing::UntilEof
    }

    pub fn is_chunked(&self) -> bool {
        matches!(self.framing, Framing::Chunked(_))
    }

    /// The client closed its side: a raw stream ends; any other unfinished body is cut short.
    pub fn client_eof(&mut self) -> bool {
        if self.framing == Framing::UntilEof {
            self.complete = true;
            return true;
        }
        false
    }

    /// Unread bytes held (memory and file).
    pub fn buffered(&self) -> u64 {
        (self.mem.len() - self.mem_pos) as u64 + (self.file_len - self.file_pos)
    }

    /// Take body bytes from the start of `data` (what the client sent); returns how many
    /// bytes of `data` belong to the body (the rest is the next request). Err is the status
    /// to answer (400 for a malformed chunked body, 413 when over `max`, 500 when the spill
    /// file cannot be written).
    pub fn feed(&mut self, data: &[u8], max: u64, spill_dir: Option<&str>) -> Result<usize, u16> {
        let mut used = 0;
        while used < data.len() && !self.complete {
            let rest = &data[used..];
            match self.framing {
                Framing::None => {
                    self.complete = true;
                }
                Framing::Length(left) => {
                    let n = (left.min(rest.len() as u64)) as usize;
                    self.store(&rest[..n], max, spill_dir)?;
                    used += n;
                    self.framing = Framing::Length(left - n as u64);
                    if left == n as u64 {
                        self.complete = true;
                    }
                }
                Framing::UntilEof => {
                    self.store(rest, max, spill_dir)?;
                    used += rest.len();
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let n = (left.min(rest.len() as u64)) as usize;
                    self.store(&rest[..n], max, spill_dir)?;
                    used += n;
                    self.framing = Framing::Chunked(if left == n as u64 {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(left - n as u64)
                    });
                }
                Framing::Chunked(st) => {
                    used += 1;
                    match step(st, rest[0])? {
                        Chunk::Done => {
                            self.framing = Framing::None;
                            self.complete = true;
                        }
                        next => self.framing = Framing::Chunked(next),
                    }
                }
            }
        }
        Ok(used)
    }

    fn store(&mut self, bytes: &[u8], max: u64, spill_dir: Option<&str>) -> Result<(), u16> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.received += bytes.len() as u64;
        if max > 0 && self.received > max {
            return Err(413);
        }
        if self.file.is_none() {
            let unread = self.mem.len() - self.mem_pos;
            match spill_dir {
                Some(dir) if unread + bytes.len() > MEM_LIMIT => {
                    let f = temp_file(dir).map_err(|e| {
                        log::error!("cannot create a request-body file in {dir}: {e}");
                        500u16
                    })?;
                    f.write_all_at(&self.mem[self.mem_pos..], 0).map_err(|_| 500u16)?;
                    self.file_len = unread as u64;
                    self.file_pos = 0;
                    self.mem.clear();
                    self.mem_pos = 0;
                    self.file = Some(f);
                }
                _ => {
                    if self.mem_pos > 0 && self.mem_pos == self.mem.len() {
                        self.mem.clear();
                        self.mem_pos = 0;
                    }
                    self.mem.extend_from_slice(bytes);
                    return Ok(());
                }
            }
        }
        if let Some(f) = &self.file {
            f.write_all_at(bytes, self.file_len).map_err(|e| {
                log::error!("cannot write a request-body file: {e}");
                500u16
            })?;
            self.file_len += bytes.len() as u64;
        }
        Ok(())
    }

    /// The handler reads: Ok(0) at the end of the body, WouldBlock while more is coming.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.mem_pos < self.mem.len() {
            let n = (self.mem.len() - self.mem_pos).min(buf.len());
            buf[..n].copy_from_slice(&self.mem[self.mem_pos..self.mem_pos + n]);
            self.mem_pos += n;
            if self.mem_pos == self.mem.len() {
                self.mem.clear();
                self.mem_pos = 0;
            }
            return Ok(n);
        }
        if let Some(f) = &self.file {
            if self.file_pos < self.file_len {
                let want = ((self.file_len - self.file_pos) as usize).min(buf.len());
                let n = f.read_at(&mut buf[..want], self.file_pos)?;
                self.file_pos += n as u64;
                return Ok(n);
            }
        }
        if self.complete {
            Ok(0)
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

/// One byte of chunked framing (outside chunk data). Strict: CRLF line ends only, at most
/// 15 hex digits, no bytes where none belong.
fn step(st: Chunk, b: u8) -> Result<Chunk, u16> {
    Ok(match st {
        Chunk::Size { size, digits, ext: false } if b.is_ascii_hexdigit() => {
            if digits >= 15 {
                return Err(400);
            }
            let v = u64::from((b as char).to_digit(16).unwrap_or(0));
            Chunk::Size { size: size << 4 | v, digits: digits + 1, ext: false }
        }
        Chunk::Size { digits: 0, .. } => return Err(400),
        Chunk::Size { size, .. } if b == b'\r' => Chunk::SizeLf(size),
        Chunk::Size { size, digits, .. } if b == b';' || b == b' ' || b == b'\t' => {
            Chunk::Size { size, digits, ext: true }
        }
        Chunk::Size { ext: true, .. } if b == b'\n' || b == 0 => return Err(400),
        Chunk::Size { size, digits, ext: true } => Chunk::Size { size, digits, ext: true },
        Chunk::Size { .. } => return Err(400),
        Chunk::SizeLf(0) if b == b'\n' => Chunk::Trailer { empty: true },
        Chunk::SizeLf(n) if b == b'\n' => Chunk::Data(n),
        Chunk::SizeLf(_) => return Err(400),
        Chunk::DataCr if b == b'\r' => Chunk::DataLf,
        Chunk::DataLf if b == b'\n' => Chunk::Size { size: 0, digits: 0, ext: false },
        Chunk::DataCr | Chunk::DataLf => return Err(400),
        Chunk::Trailer { empty } if b == b'\r' => Chunk::TrailerLf { empty },
        Chunk::Trailer { .. } if b == b'\n' || b == 0 => return Err(400),
        Chunk::Trailer { .. } => Chunk::Trailer { empty: false },
        Chunk::TrailerLf { empty: true } if b == b'\n' => Chunk::Done,
        Chunk::TrailerLf { empty: false } if b == b'\n' => Chunk::Trailer { empty: true },
        Chunk::TrailerLf { .. } => return Err(400),
        Chunk::Data(_) | Chunk::Done => return Err(400),
    })
}

fn temp_file(dir: &str) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_TMPFILE: never visible in the directory, gone when closed.
    std::fs::OpenOptions::new().read(true).write(true).custom_flags(libc::O_TMPFILE).mode(0o600).open(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], split: usize) -> Result<(Vec<u8>, usize), u16> {
        let mut b = BodyIn::default();
        b.start_chunked();
        let mut used = 0;
        for part in input.chunks(split.max(1)) {
            if b.complete {
                break;
            }
            let n = b.feed(part, 0, None)?;
            used += n;
            if n < part.len() {
                break;
            }
        }
        if !b.complete {
            return Err(0);
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            match b.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => return Err(1),
            }
        }
        Ok((out, used))
    }

    #[test]
    fn chunked_table() {
        let ok: &[(&[u8], &[u8])] = &[
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"a;name=value\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"5 ;x\r\nhello\r\n0\r\nTrailer: yes\r\nX: y\r\n\r\n", b"hello"),
            (b"0\r\n\r\n", b""),
            (b"000005\r\nhello\r\n0\r\n\r\n", b"hello"),
        ];
        for (input, want) in ok {
            for split in [1, 2, 3, 100] {
                let (out, used) = decode(input, split).unwrap_or_else(|e| panic!("{input:?}: {e}"));
                assert_eq!(out, *want, "{input:?}");
                assert_eq!(used, input.len(), "{input:?}");
            }
        }
        let bad: &[&[u8]] = &[
            b"x\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"1000000000000000\r\n",
            b"\r\n",
            b"-5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n0\r\nbad\ntrailer\r\n\r\n",
        ];
        for input in bad {
            assert_eq!(decode(input, 100).err(), Some(400), "{input:?}");
        }
    }

    #[test]
    fn next_request_is_left_alone_and_limits_apply() {
        let mut b = BodyIn::default();
        b.start_length(3);
        assert_eq!(b.feed(b"abcGET /", 0, None), Ok(3));
        assert!(b.complete);
        let mut b = BodyIn::default();
        b.start_chunked();
        assert_eq!(b.feed(b"3\r\nabc\r\n0\r\n\r\nGET", 0, None), Ok(13));
        let mut b = BodyIn::default();
        b.start_length(10);
        assert_eq!(b.feed(b"0123456789", 5, None), Err(413));
        let mut b = BodyIn::default();
        b.start_length(10);
        b.feed(b"01234", 0, None).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(b.read(&mut buf).unwrap(), 5);
        assert_eq!(b.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn large_bodies_spill_to_a_file() {
        let dir = std::env::temp_dir();
        let mut b = BodyIn::default();
        let total = 5 * MEM_LIMIT as u64 + 17;
        b.start_length(total);
        let block: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let mut fed = 0u64;
        while fed < total {
            let n = (block.len() as u64).min(total - fed) as usize;
            assert_eq!(b.feed(&block[..n], 0, dir.to_str()), Ok(n));
            fed += n as u64;
        }
        assert!(b.complete);
        assert!(b.file.is_some(), "spilled");
        assert!(b.mem.capacity() <= 2 * MEM_LIMIT);
        let mut got = 0u64;
        let mut buf = vec![0u8; 4096];
        let mut i = 0usize;
        loop {
            let n = b.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            for &x in &buf[..n] {
                assert_eq!(x, block[i % block.len()]);
                i += 1;
            }
            got += n as u64;
        }
        assert_eq!(got, total);
    }
}
