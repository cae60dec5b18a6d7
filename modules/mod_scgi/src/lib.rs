//! mod_scgi: lighttpd's `scgi.server`, speaking SCGI (`scgi.protocol = "scgi"`) or uwsgi
//! (`"uwsgi"`). Routing, hosts, balancing, spawning and the response handling live in
//! featherd-gateway; this crate is the two request encodings and the configuration.

use featherd_gateway::backend::Protocol;
use featherd_gateway::env::Env;
use featherd_gateway::glue::{self, GatewayConf, GatewayState};
use featherd_gateway::hosts::{Mode, ParseOptions};
use featherd_gateway::spawn::Spawner;
use featherd_mod_api::{export_module, Configs, Handler, Hooks, Key, Module, ModuleConfig, Request, Value};

/// The request encoding: both answer with a plain byte stream ended by closing the connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wire {
    #[default]
    Scgi,
    Uwsgi,
}

/// SCGI or uwsgi, one request per connection.
#[derive(Default)]
pub struct Scgi {
    pub wire: Wire,
}

fn content_length(env: &Env) -> &[u8] {
    env.get(b"CONTENT_LENGTH").unwrap_or(b"0")
}

/// SCGI: a netstring of NUL-separated names and values, CONTENT_LENGTH first, SCGI=1.
pub fn scgi_header(env: &Env) -> Vec<u8> {
    let mut h = Vec::with_capacity(env.iter().map(|(n, v)| n.len() + v.len() + 2).sum::<usize>() + 32);
    for (n, v) in [(&b"CONTENT_LENGTH"[..], content_length(env)), (b"SCGI", b"1")] {
        h.extend_from_slice(n);
        h.push(0);
        h.extend_from_slice(v);
        h.push(0);
    }
    for (n, v) in env.iter() {
        // A NUL inside would shift every later pair; such a value cannot be sent.
        if n == b"CONTENT_LENGTH" || n == b"SCGI" || n.contains(&0) || v.contains(&0) {
            continue;
        }
        h.extend_from_slice(n);
        h.push(0);
        h.extend_from_slice(v);
        h.push(0);
    }
    let mut out = format!("{}:", h.len()).into_bytes();
    out.extend_from_slice(&h);
    out.push(b',');
    out
}

/// uwsgi: a 4-byte header (modifier1 0 = WSGI, 16-bit little-endian size, modifier2 0), then
/// each variable as 16-bit little-endian length + bytes for name and value.
pub fn uwsgi_packet(env: &Env) -> Result<Vec<u8>, String> {
    let mut vars = Vec::new();
    for (n, v) in env.iter() {
        let (Ok(nl), Ok(vl)) = (u16::try_from(n.len()), u16::try_from(v.len())) else {
            return Err(format!("variable {} too long for uwsgi", String::from_utf8_lossy(n)));
        };
        vars.extend_from_slice(&nl.to_le_bytes());
        vars.extend_from_slice(n);
        vars.extend_from_slice(&vl.to_le_bytes());
        vars.extend_from_slice(v);
    }
    let size = u16::try_from(vars.len()).map_err(|_| "uwsgi header over 64 KiB".to_string())?;
    let mut out = vec![0u8];
    out.extend_from_slice(&size.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&vars);
    Ok(out)
}

impl Protocol for Scgi {
    fn request_head(&mut self, env: &Env, _mode: Mode, out: &mut Vec<u8>) -> Result<(), String> {
        match self.wire {
            Wire::Scgi => out.extend_from_slice(&scgi_header(env)),
            Wire::Uwsgi => out.extend_from_slice(&uwsgi_packet(env)?),
        }
        Ok(())
    }

    fn request_body(&mut self, data: &[u8], out: &mut Vec<u8>) {
        out.extend_from_slice(data);
    }

    fn request_end(&mut self, _out: &mut Vec<u8>) {}

    fn response(
        &mut self,
        input: &mut Vec<u8>,
        stdout: &mut Vec<u8>,
        _stderr: &mut Vec<u8>,
    ) -> Result<bool, String> {
        stdout.append(input);
        Ok(false)
    }

    fn eof_ends_response(&self) -> bool {
        true
    }

    fn streams_unknown_length(&self) -> bool {
        false
    }
}

#[derive(Clone, Default)]
pub struct ScgiConfig {
    gw: GatewayConf,
    wire: Wire,
}

impl ModuleConfig for ScgiConfig {
    const KEYS: &'static [Key] = &[
        Key::array("scgi.server"),
        Key::string("scgi.balance"),
        Key::string("scgi.protocol"),
        Key::array("scgi.map-extensions"),
        Key::any("scgi.debug"),
    ];

    fn apply(&mut self, key: usize, v: &Value) -> Result<(), String> {
        match key {
            0 => self.gw.set_server(
                "scgi.server",
                v,
                &ParseOptions { extra: &[], require_addr: true, stats: "scgi" },
            ),
            1 => self.gw.set_balance(v),
            2 => {
                self.wire = match v.to_str()? {
                    "scgi" => Wire::Scgi,
                    "uwsgi" => Wire::Uwsgi,
                    p => return Err(format!("unknown protocol \"{p}\" (scgi or uwsgi)")),
                };
                Ok(())
            }
            3 => self.gw.set_map_extensions(v),
            4 => self.gw.set_debug(v),
            _ => Ok(()),
        }
    }
}

pub struct ModScgi {
    spawner: Spawner,
}

impl Module for ModScgi {
    const NAME: &'static str = "mod_scgi";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DESCRIPTION: &'static str = "SCGI and uwsgi backends: scgi.server";
    const HOOKS: Hooks = Hooks::URI_CLEAN
        .union(Hooks::SUBREQUEST_START)
        .union(Hooks::SUBREQUEST)
        .union(Hooks::WORKER_INIT)
        .union(Hooks::TRIGGER)
        .union(Hooks::WAITPID);
    type Config = ScgiConfig;
    type RequestState = GatewayState<Scgi>;
    type ConnectionState = ();

    fn init() -> Self {
        featherd_gateway::hosts::forget_parsed();
        ModScgi { spawner: Spawner::new(std::iter::empty()) }
    }

    fn set_defaults(&mut self, configs: &Configs<ScgiConfig>) -> Result<(), String> {
        let hosts = glue::all_hosts(configs.all().iter().map(|c| &c.gw));
        self.spawner = Spawner::new(hosts.iter());
        Ok(())
    }

    fn worker_init(&self, _worker: u32) -> Result<(), String> {
        // Not in set_defaults, so that `-tt` starts no processes; runs once for all workers.
        self.spawner.start();
        Ok(())
    }

    fn cleanup(&mut self) {
        self.spawner.stop();
    }

    fn uri_clean(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let wire = conf.wire;
        glue::uri_clean(req, &conf.gw, || Scgi { wire })
    }

    fn subrequest_start(&self, req: &mut Request<Self>) -> Handler {
        let conf = req.config();
        let wire = conf.wire;
        glue::subrequest_start(req, &conf.gw, || Scgi { wire })
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

export_module!(ModScgi);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings() {
        let env: Env =
            [(b"REQUEST_METHOD".to_vec(), b"GET".to_vec()), (b"CONTENT_LENGTH".to_vec(), b"5".to_vec())]
                .into_iter()
                .collect();
        let h = scgi_header(&env);
        assert_eq!(h, b"43:CONTENT_LENGTH\x005\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00,".to_vec());
        let p = uwsgi_packet(&env).expect("packet");
        assert_eq!(&p[..4], &[0, 40, 0, 0]);
        assert_eq!(&p[4..6], &[14, 0]);
        assert_eq!(&p[6..20], b"REQUEST_METHOD");
        assert_eq!(&p[20..22], &[3, 0]);
        let big: Env = [(b"X".to_vec(), vec![b'a'; 70000])].into_iter().collect();
        assert!(uwsgi_packet(&big).is_err());
    }
}
