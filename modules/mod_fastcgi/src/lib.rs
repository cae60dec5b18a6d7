//! mod_fastcgi: lighttpd's `fastcgi.server`. Routing, hosts, balancing, spawning and the
//! response handling live in featherd-gateway; this crate is the FastCGI wire format
//! ([`FastCgi`]) and the module's configuration.

use featherd_gateway::backend::Protocol;
use featherd_gateway::env::Env;
use featherd_gateway::glue::{self, GatewayConf, GatewayState};
use featherd_gateway::hosts::{Mode, ParseOptions};
use featherd_gateway::spawn::Spawner;
use featherd_mod_api::{export_module, Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};

const VERSION: u8 = 1;
const BEGIN_REQUEST: u8 = 1;
const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const STDERR: u8 = 7;
const ROLE_RESPONDER: u16 = 1;
const ROLE_AUTHORIZER: u16 = 2;
/// The one request on each connection (FCGI_KEEP_CONN is off: a connection per request).
const REQUEST_ID: u16 = 1;
const MAX_CONTENT: usize = 65535;

fn record(out: &mut Vec<u8>, kind: u8, content: &[u8]) {
    debug_assert!(content.len() <= MAX_CONTENT);
    // Records are padded to a multiple of 8 bytes, as the specification recommends.
    let pad = (8 - content.len() % 8) % 8;
    out.extend_from_slice(&[VERSION, kind]);
    out.extend_from_slice(&REQUEST_ID.to_be_bytes());
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[pad as u8, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat(0).take(pad));
}

/// A stream (PARAMS, STDIN) split into records of at most 65535 bytes.
fn stream(out: &mut Vec<u8>, kind: u8, data: &[u8]) {
    for c in data.chunks(MAX_CONTENT) {
        record(out, kind, c);
    }
}

fn nv_len(out: &mut Vec<u8>, n: usize) {
    if n < 128 {
        out.push(n as u8);
    } else {
        out.extend_from_slice(&((n as u32 & 0x7fff_ffff) | 0x8000_0000).to_be_bytes());
    }
}

/// FastCGI name-value pairs (1-byte lengths below 128, else 4 bytes with the high bit set).
pub fn encode_params(env: &Env) -> Vec<u8> {
    let mut p = Vec::with_capacity(env.iter().map(|(n, v)| n.len() + v.len() + 8).sum());
    encode_params_into(env, &mut p);
    p
}

fn encode_params_into(env: &Env, p: &mut Vec<u8>) {
    for (n, v) in env.iter() {
        nv_len(p, n.len());
        nv_len(p, v.len());
        p.extend_from_slice(n);
        p.extend_from_slice(v);
    }
}

/// The FastCGI protocol, one request per connection.
#[derive(Default)]
pub struct FastCgi;

impl Protocol for FastCgi {
    fn request_head(&mut self, env: &Env, mode: Mode, out: &mut Vec<u8>) -> Result<(), String> {
        let role = if mode == Mode::Authorizer { ROLE_AUTHORIZER } else { ROLE_RESPONDER };
        let mut begin = [0u8; 8];
        begin[..2].copy_from_slice(&role.to_be_bytes());
        let params: usize = env.iter().map(|(n, v)| n.len() + v.len() + 8).sum();
        // Room for everything, so the records are written without growing the buffer: the
        // PARAMS stream (headers and padding of each 64 KiB record), the BEGIN_REQUEST
        // record, the empty PARAMS record, and the empty STDIN record that may follow.
        out.reserve(params + (params / MAX_CONTENT + 1) * 16 + 48);
        record(out, BEGIN_REQUEST, &begin);
        if params <= MAX_CONTENT {
            // The usual case: one PARAMS record, encoded in place (its length patched after).
            let at = out.len();
            out.extend_from_slice(&[VERSION, PARAMS, 0, 0, 0, 0, 0, 0]);
            encode_params_into(env, out);
            let len = out.len() - at - 8;
            let pad = (8 - len % 8) % 8;
            out[at + 2..at + 4].copy_from_slice(&REQUEST_ID.to_be_bytes());
            out[at + 4..at + 6].copy_from_slice(&(len as u16).to_be_bytes());
            out[at + 6] = pad as u8;
            out.resize(out.len() + pad, 0);
        } else {
            stream(out, PARAMS, &encode_params(env));
        }
        record(out, PARAMS, &[]);
        Ok(())
    }

    fn request_body(&mut self, data: &[u8], out: &mut Vec<u8>) {
        stream(out, STDIN, data);
    }

    fn request_end(&mut self, out: &mut Vec<u8>) {
        record(out, STDIN, &[]);
    }

    fn response(
        &mut self,
        input: &mut Vec<u8>,
        stdout: &mut Vec<u8>,
        stderr: &mut Vec<u8>,
    ) -> Result<bool, String> {
        let mut pos = 0;
        let mut done = false;
        while input.len() - pos >= 8 {
            let h = &input[pos..pos + 8];
            if h[0] != VERSION {
                return Err(format!("FastCGI version {} (expected 1)", h[0]));
            }
            let len = u16::from_be_bytes([h[4], h[5]]) as usize;
            let total = 8 + len + h[6] as usize;
            if input.len() - pos < total {
                break;
            }
            let kind = h[1];
            let id = u16::from_be_bytes([h[2], h[3]]);
            let body = &input[pos + 8..pos + 8 + len];
            pos += total;
            if id != REQUEST_ID {
                // Management records (id 0) and strays are not ours.
                continue;
            }
            match kind {
                STDOUT => stdout.extend_from_slice(body),
                STDERR => stderr.extend_from_slice(body),
                END_REQUEST => {
                    if body.len() >= 5 && body[4] != 0 {
                        let why = match body[4] {
                            1 => "cannot multiplex connections",
                            2 => "overloaded",
                            3 => "unknown role",
                            _ => "unknown protocol status",
                        };
                        return Err(format!("request refused: {why}"));
                    }
                    done = true;
                    break;
                }
                _ => {}
            }
        }
        input.drain(..pos);
        Ok(done)
    }

    fn eof_ends_response(&self) -> bool {
        false
    }
}

#[derive(Clone, Default)]
pub struct FastCgiConfig {
    gw: GatewayConf,
}

impl ModuleConfig for FastCgiConfig {
    const KEYS: &'static [Key] = &[
        Key::array("fastcgi.server"),
        Key::string("fastcgi.balance"),
        Key::array("fastcgi.map-extensions"),
        Key::any("fastcgi.debug"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.gw.set_server(
                "fastcgi.server",
                v,
                &ParseOptions { extra: &[], require_addr: true, stats: "fastcgi" },
            ),
            1 => self.gw.set_balance(v),
            2 => self.gw.set_map_extensions(v),
            3 => self.gw.set_debug(v),
            _ => Ok(()),
        }
    }
}

pub struct ModFastCgi {
    spawner: Spawner,
}

impl Module for ModFastCgi {
    const NAME: &'static str = "mod_fastcgi";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "FastCGI backends: fastcgi.server";
    const HOOKS: Hooks = Hooks::URI_CLEAN
        .union(Hooks::SUBREQUEST_START)
        .union(Hooks::SUBREQUEST)
        .union(Hooks::WORKER_INIT)
        .union(Hooks::TRIGGER)
        .union(Hooks::WAITPID);
    type Config = FastCgiConfig;
    type RequestState = GatewayState<FastCgi>;
    type ConnectionState = ();

    fn init() -> Self {
        featherd_gateway::hosts::forget_parsed();
        ModFastCgi { spawner: Spawner::new(std::iter::empty()) }
    }

    fn set_defaults(&mut self, configs: &Configs<FastCgiConfig>) -> Result<(), String> {
        let hosts = glue::all_hosts(configs.all().iter().map(|c| &c.gw));
        self.spawner = Spawner::new(hosts.iter());
        Ok(())
    }

    fn worker_init(&self, _worker: u32) -> Result<(), String> {
        // Started here rather than in set_defaults so that `-tt` (which never runs workers)
        // does not start processes; `start` runs once however many workers there are.
        self.spawner.start();
        Ok(())
    }

    fn cleanup(&mut self) {
        self.spawner.stop();
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        glue::uri_clean(req, &conf.gw, FastCgi::default)
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        glue::subrequest_start(req, &conf.gw, FastCgi::default)
    }

    fn subrequest(&self, req: &mut Request<Self>) -> Handler {
        glue::subrequest(req)
    }

    fn trigger(&self) {
        self.spawner.trigger();
    }

    fn waitpid(&self, pid: i32, status: i32) -> bool {
        self.spawner.waitpid(pid, status)
    }
}

export_module!(ModFastCgi);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_and_records() {
        let env: Env =
            [(b"A".to_vec(), b"b".to_vec()), (b"LONG".to_vec(), vec![b'x'; 200])].into_iter().collect();
        let p = encode_params(&env);
        assert_eq!(&p[..4], &[1, 1, b'A', b'b']);
        assert_eq!(&p[4..9], &[4, 0x80, 0, 0, 200]);
        let mut out = Vec::new();
        stream(&mut out, STDIN, &vec![7u8; 70000]);
        // 65535 + 1 byte of padding, then 4465 + 7.
        assert_eq!(out.len(), 8 + 65535 + 1 + 8 + 4465 + 7);
        let mut input = Vec::new();
        record(&mut input, STDOUT, b"Status: 200\r\n\r\nhi");
        record(&mut input, STDERR, b"oops\n");
        let mut end = [0u8; 8];
        end[4] = 0;
        record(&mut input, END_REQUEST, &end);
        let (mut o, mut e) = (Vec::new(), Vec::new());
        let mut half = input[..20].to_vec();
        assert_eq!(FastCgi.response(&mut half, &mut o, &mut e), Ok(false));
        assert!(o.is_empty());
        assert_eq!(FastCgi.response(&mut input, &mut o, &mut e), Ok(true));
        assert_eq!(o, b"Status: 200\r\n\r\nhi");
        assert_eq!(e, b"oops\n");
    }

    #[test]
    fn request_head_in_place_equals_records_of_the_stream() {
        for n in [0usize, 1, 7, 100, 300, 70_000] {
            let env: Env =
                [(b"A".to_vec(), b"b".to_vec()), (b"X".to_vec(), vec![b'y'; n])].into_iter().collect();
            let mut fast = Vec::new();
            FastCgi.request_head(&env, Mode::Responder, &mut fast).unwrap();
            let mut plain = Vec::new();
            let mut begin = [0u8; 8];
            begin[..2].copy_from_slice(&ROLE_RESPONDER.to_be_bytes());
            record(&mut plain, BEGIN_REQUEST, &begin);
            stream(&mut plain, PARAMS, &encode_params(&env));
            record(&mut plain, PARAMS, &[]);
            assert_eq!(fast, plain, "value of {n} bytes");
        }
    }
}
