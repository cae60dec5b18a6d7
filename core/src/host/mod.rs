//! The module host: loads `mod_*.so` files, checks their ABI, builds the hook chains, owns
//! the validated configuration, and runs set_defaults. What the modules call back into is in
//! [`api`].

pub mod api;

use crate::conf::{self, CoreConf, ServerConf, CORE_KEYS};
use crate::config::{Config, Value};
use featherd_mod_api::abi::*;
use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A module's data pointer, shared by all threads (the module promises `Sync` behaviour).
#[derive(Clone, Copy)]
pub struct DataPtr(pub *mut c_void);
// SAFETY: modules are required (ABI rule) to make their data usable from any worker thread.
unsafe impl Send for DataPtr {}
// SAFETY: see above.
unsafe impl Sync for DataPtr {}

pub struct ModKey {
    pub name: String,
    pub kind: u32,
    pub scope: u32,
}

pub struct LoadedModule {
    pub name: String,
    pub path: PathBuf,
    pub version: String,
    pub description: String,
    pub abi_minor_size: u32,
    pub desc: ModuleDescriptor,
    pub data: DataPtr,
    pub keys: Vec<ModKey>,
    /// Never closed: a graceful restart drops the old configuration while the process goes
    /// on, and unloading a Rust library (thread-local destructors, threads it started) is not
    /// safe. Loading the same file again returns the same library.
    _lib: std::mem::ManuallyDrop<libloading::Library>,
}

// SAFETY: the descriptor copy holds function pointers and pointers to the module's static
// data, which stay valid and immutable while the library is loaded (we never unload).
unsafe impl Send for LoadedModule {}
// SAFETY: see above.
unsafe impl Sync for LoadedModule {}

/// What the host keeps of a module for services that only get a module id.
#[derive(Clone)]
pub struct ModInfo {
    pub name: Arc<str>,
    pub description: Arc<str>,
    pub data: DataPtr,
    pub version: Arc<str>,
    /// `HOOK_*` bits of the hooks the descriptor sets.
    pub hooks: u32,
    pub descriptor_size: u32,
}

/// The `HOOK_*` bits of the hooks a descriptor sets.
pub fn hook_bits(d: &ModuleDescriptor) -> u32 {
    let mut bits = 0;
    let mut add = |set: bool, bit: u32| {
        if set {
            bits |= bit;
        }
    };
    add(d.uri_raw.is_some(), HOOK_URI_RAW);
    add(d.uri_clean.is_some(), HOOK_URI_CLEAN);
    add(d.docroot.is_some(), HOOK_DOCROOT);
    add(d.physical.is_some(), HOOK_PHYSICAL);
    add(d.subrequest_start.is_some(), HOOK_SUBREQUEST_START);
    add(d.subrequest.is_some(), HOOK_SUBREQUEST);
    add(d.response_start.is_some(), HOOK_RESPONSE_START);
    add(d.request_done.is_some(), HOOK_REQUEST_DONE);
    add(d.request_reset.is_some(), HOOK_REQUEST_RESET);
    add(d.connection_accept.is_some(), HOOK_CONNECTION_ACCEPT);
    add(d.connection_shut_wr.is_some(), HOOK_CONNECTION_SHUT_WR);
    add(d.connection_close.is_some(), HOOK_CONNECTION_CLOSE);
    add(d.trigger.is_some(), HOOK_TRIGGER);
    add(d.sighup.is_some(), HOOK_SIGHUP);
    add(d.waitpid.is_some(), HOOK_WAITPID);
    add(d.worker_init.is_some(), HOOK_WORKER_INIT);
    add(d.connection_preface.is_some(), HOOK_CONNECTION_PREFACE);
    bits
}

/// Module id → info, for `log`, `fd_register`, `timer_add`.
pub static REGISTRY: RwLock<Vec<ModInfo>> = RwLock::new(Vec::new());

pub fn module_info(id: u32) -> Option<ModInfo> {
    REGISTRY.read().ok()?.get(id as usize).cloned()
}

/// A table a module offers to the others (`service_register`): name, provider, address.
struct Service {
    name: Vec<u8>,
    provider: u32,
    table: usize,
}

/// Services of the loaded modules, cleared with [`REGISTRY`] when modules are (re)loaded.
static SERVICES: RwLock<Vec<Service>> = RwLock::new(Vec::new());

/// 0, or -1 when another module took the name.
fn register_service(name: &[u8], provider: u32, table: *const c_void) -> i32 {
    let Ok(mut s) = SERVICES.write() else { return -1 };
    if s.iter().any(|x| x.name == name) {
        return -1;
    }
    s.push(Service { name: name.to_vec(), provider, table: table as usize });
    0
}

fn lookup_service(name: &[u8]) -> Option<(u32, *const c_void)> {
    let s = SERVICES.read().ok()?;
    s.iter().find(|x| x.name == name).map(|x| (x.provider, x.table as *const c_void))
}

/// (module index, hook) in server.modules order.
pub type Chain<F> = Vec<(usize, F)>;

#[derive(Default)]
pub struct Chains {
    pub uri_raw: Chain<fd_request_hook>,
    pub uri_clean: Chain<fd_request_hook>,
    pub docroot: Chain<fd_request_hook>,
    pub physical: Chain<fd_request_hook>,
    pub subrequest_start: Chain<fd_request_hook>,
    pub response_start: Chain<fd_request_hook>,
    pub request_done: Chain<fd_request_hook>,
    /// Reverse order.
    pub request_reset: Chain<fd_request_hook>,
    pub connection_accept: Chain<fd_connection_hook>,
    pub connection_shut_wr: Chain<fd_connection_hook>,
    /// Reverse order.
    pub connection_close: Chain<fd_connection_hook>,
    pub trigger: Chain<fd_server_hook>,
    pub sighup: Chain<fd_server_hook>,
    pub waitpid: Chain<fd_waitpid_hook>,
}

/// Everything a request needs from the server's configuration; immutable once built.
pub struct Loaded {
    pub cfg: Config,
    pub server: ServerConf,
    pub modules: Vec<LoadedModule>,
    pub chains: Chains,
    /// For owner 0 (the core) and each module (index + 1): the conditional blocks that set
    /// at least one of its keys.
    pub owner_blocks: Vec<Vec<u32>>,
    /// Core settings per block: defaults, global, then each enclosing block down to it.
    pub core_base: Vec<CoreConf>,
    pub block_parent: Vec<Option<u32>>,
    /// Some condition tests `$PHYSICAL[...]`: evaluate again once the physical path is known.
    pub has_physical_conds: bool,
    /// Which facts a module can change some condition tests (a change to another one needs
    /// no new evaluation).
    pub cond_use: CondUse,
}

/// Whether any condition tests the remote address, the scheme or the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct CondUse {
    pub remote_ip: bool,
    pub scheme: bool,
    pub host: bool,
}

impl CondUse {
    pub fn of(cfg: &Config) -> CondUse {
        use crate::config::CondField;
        let mut u = CondUse::default();
        for c in cfg.blocks.iter().filter_map(|b| b.cond.as_ref()) {
            match &c.field {
                CondField::RemoteIp => u.remote_ip = true,
                CondField::Scheme => u.scheme = true,
                CondField::Host => u.host = true,
                CondField::RequestHeader(h) if h.eq_ignore_ascii_case("host") => u.host = true,
                _ => {}
            }
        }
        u
    }
}

impl Loaded {
    /// Whether `a` encloses `b`.
    pub fn is_ancestor(&self, a: u32, mut b: u32) -> bool {
        while let Some(p) = self.block_parent.get(b as usize).copied().flatten() {
            if p == a {
                return true;
            }
            b = p;
        }
        false
    }
}

/// Find `NAME.so` (or cargo's `libNAME.so`) in `dir`.
pub fn module_path(dir: &Path, name: &str) -> Option<PathBuf> {
    [format!("{name}.so"), format!("lib{name}.so")].into_iter().map(|f| dir.join(f)).find(|p| p.is_file())
}

/// Load one module file and check its descriptor. Errors name the file and the reason.
pub fn load_module(path: &Path, name: &str) -> Result<LoadedModule, String> {
    // SAFETY: loading a module runs its initialisers; that is the point of a module, and the
    // file came from the administrator's module directory.
    let lib = unsafe { libloading::Library::new(path) }
        .map_err(|e| format!("{}: cannot load module {name}: {e}", path.display()))?;
    // SAFETY: the symbol's type is fixed by the ABI (fd_module_entry).
    let entry: libloading::Symbol<fd_module_entry> = unsafe { lib.get(MODULE_SYMBOL.as_bytes()) }.map_err(|_| {
        format!(
            "{}: not a featherd module for this server: no symbol {MODULE_SYMBOL} (built for another module ABI major?)",
            path.display()
        )
    })?;
    // SAFETY: calling the entry point the ABI defines; it returns a static descriptor.
    let p = unsafe { entry() };
    if p.is_null() {
        return Err(format!("{}: module {name} returned no descriptor", path.display()));
    }
    // The first two u32 fields are present in every version of the descriptor.
    // SAFETY: p points to at least abi_major and struct_size (every ABI major starts so).
    let (major, size) = unsafe { ((*p).abi_major, (*p).struct_size) };
    if major != ABI_MAJOR {
        return Err(format!(
            "{}: module {name} was built for module ABI {major}, this server speaks ABI {ABI_MAJOR}; rebuild the module against featherd-mod-api {ABI_MAJOR}.x",
            path.display()
        ));
    }
    if size < MODULE_DESCRIPTOR_SIZE_V1_0 {
        return Err(format!(
            "{}: module {name} declares a descriptor of {size} bytes, smaller than ABI {ABI_MAJOR}.0's {MODULE_DESCRIPTOR_SIZE_V1_0}",
            path.display()
        ));
    }
    let own = std::mem::size_of::<ModuleDescriptor>();
    let n = (size as usize).min(own);
    // Fields past the module's size stay zero: absent hooks, empty strings.
    // SAFETY: an all-zero ModuleDescriptor is valid (null pointers, None function pointers,
    // zero integers); we copy the n bytes the module declares it has, n <= size_of.
    let desc: ModuleDescriptor = unsafe {
        let mut d: ModuleDescriptor = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(p as *const u8, &mut d as *mut ModuleDescriptor as *mut u8, n);
        d
    };
    let text = |s: Str| {
        // SAFETY: descriptor strings point to the module's static data.
        String::from_utf8_lossy(unsafe { s.as_bytes() }).into_owned()
    };
    let mname = text(desc.name);
    if mname != name {
        return Err(format!(
            "{}: the file is named {name} but the module calls itself {mname:?}",
            path.display()
        ));
    }
    let mut keys = Vec::new();
    if !desc.config_keys.is_null() {
        // SAFETY: the descriptor promises config_keys_len entries of static data.
        let decls = unsafe { std::slice::from_raw_parts(desc.config_keys, desc.config_keys_len) };
        for d in decls {
            keys.push(ModKey { name: text(d.name), kind: d.kind, scope: d.scope });
        }
    }
    Ok(LoadedModule {
        name: mname,
        path: path.to_owned(),
        version: text(desc.version),
        description: text(desc.description),
        abi_minor_size: size,
        desc,
        data: DataPtr(std::ptr::null_mut()),
        keys,
        _lib: std::mem::ManuallyDrop::new(lib),
    })
}

/// Who owns a key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Owner {
    Core,
    Module(usize),
}

/// Options of [`load`].
pub struct LoadOptions<'a> {
    pub module_dir: &'a Path,
    /// Run each module's init and set_defaults (false for `-t`).
    pub init: bool,
}

/// The module names to load: server.modules, then the defaults lighttpd adds.
pub fn module_list(server: &ServerConf, dir: &Path) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for m in &server.modules {
        if !list.contains(m) {
            list.push(m.clone());
        }
    }
    if server.compat_module_load {
        // lighttpd loads these when not listed: indexfile and dirlisting before staticfile,
        // which must come last among the subrequest_start handlers.
        for m in ["mod_indexfile", "mod_dirlisting", "mod_staticfile"] {
            let optional = m == "mod_dirlisting";
            if !list.iter().any(|x| x == m) && (!optional || module_path(dir, m).is_some()) {
                list.push(m.to_string());
            }
        }
    }
    list
}

/// Backends that can take a request before mod_auth has seen it when listed first (the list
/// lighttpd's start-up check uses).
const DYNAMIC_BACKENDS: &[&str] =
    &["mod_ajp13", "mod_cgi", "mod_fastcgi", "mod_proxy", "mod_scgi", "mod_sockproxy", "mod_wstunnel"];

/// lighttpd's compatibility rules for authentication (its configfile.c applies the same):
/// a `mod_authn_*` listed without mod_auth brings mod_auth in first; mod_auth with
/// `auth.backend` naming a file backend ("htpasswd", "htdigest", "plain") brings
/// mod_authn_file in, with a notice; and mod_auth listed after a dynamic backend gets a
/// warning, since that backend's uri_clean hook sees requests before authentication.
pub fn compat_auth(cfg: &Config, list: &mut Vec<String>) {
    let modules_loc = cfg.global("server.modules").map(|s| format!("{}: ", s.loc)).unwrap_or_default();
    let auth_at = list.iter().position(|m| m == "mod_auth");
    if auth_at.is_none() && list.iter().any(|m| m.starts_with("mod_authn_")) {
        list.insert(0, "mod_auth".to_string());
    }
    if let Some(at) = auth_at {
        if let Some(b) = list[..at].iter().find(|m| DYNAMIC_BACKENDS.contains(&m.as_str())) {
            log::warn!(
                "{modules_loc}Warning: mod_auth should be listed in server.modules before dynamic backends such as {b}"
            );
        }
    }
    if list.iter().any(|m| m == "mod_auth") && !list.iter().any(|m| m == "mod_authn_file") {
        let file_backend = cfg.blocks.iter().find_map(|b| {
            let s = b.get("auth.backend")?;
            let v = s.value.as_str()?;
            ["htpasswd", "htdigest", "plain"].contains(&v).then(|| (s.loc.to_string(), v.to_string()))
        });
        if let Some((loc, v)) = file_backend {
            log::warn!(
                "{loc}: auth.backend = \"{v}\" needs mod_authn_file, which is not in server.modules: loaded automatically (add \"mod_authn_file\" to server.modules, as lighttpd asks too)"
            );
            list.push("mod_authn_file".to_string());
        }
    }
}

/// Load the modules, check every key of the configuration, build the chains and the
/// per-block core settings, and (with `init`) initialise the modules.
pub fn load(cfg: Config, opts: &LoadOptions) -> Result<Loaded, String> {
    let server = ServerConf::from_config(&cfg)?;
    let mut names = module_list(&server, opts.module_dir);
    if server.compat_module_load {
        compat_auth(&cfg, &mut names);
    }
    let mut modules = Vec::new();
    for name in &names {
        let Some(path) = module_path(opts.module_dir, name) else {
            let loc = cfg.global("server.modules").map(|s| format!("{}: ", s.loc)).unwrap_or_default();
            return Err(format!(
                "{loc}module {name} not found: looked for {name}.so and lib{name}.so in {}",
                opts.module_dir.display()
            ));
        };
        modules.push(load_module(&path, name)?);
    }

    // Key ownership: the core's keys, then each module's.
    let mut owners: HashMap<&str, (Owner, u32, u32)> = HashMap::new();
    for (k, kind, scope) in CORE_KEYS {
        owners.insert(k, (Owner::Core, *kind, *scope));
    }
    for (i, m) in modules.iter().enumerate() {
        for k in &m.keys {
            if let Some((prev, _, _)) = owners.get(k.name.as_str()) {
                if *prev != Owner::Core {
                    let Owner::Module(j) = prev else { unreachable!() };
                    return Err(format!(
                        "modules {} and {} both declare the key {}",
                        modules[*j].name, m.name, k.name
                    ));
                }
            }
            owners.insert(k.name.as_str(), (Owner::Module(i), k.kind, k.scope));
        }
    }
    let mut owner_blocks = vec![Vec::new(); modules.len() + 1];
    let mut errors = Vec::new();
    for b in &cfg.blocks {
        for s in &b.settings {
            let Some(&(owner, kind, scope)) = owners.get(s.key.as_str()) else {
                let hint = conf::closest(&s.key, owners.keys().copied())
                    .map(|k| format!(" (did you mean {k:?}?)"))
                    .unwrap_or_default();
                let loaded = if s.key.contains('.') {
                    let prefix = s.key.split('.').next().unwrap_or("");
                    format!("; is the module that owns {prefix}.* listed in server.modules?")
                } else {
                    String::new()
                };
                errors.push(format!("{}: unknown config key {:?}{hint}{loaded}", s.loc, s.key));
                continue;
            };
            if let Err(want) = conf::check_kind(kind, &s.value) {
                errors.push(format!("{}: {} must be {want}, not {}", s.loc, s.key, s.value.type_name()));
                continue;
            }
            if scope == SCOPE_SERVER && b.id != 0 {
                log::warn!("{}: {} is a server-wide setting and is ignored inside a condition", s.loc, s.key);
            }
            if b.id != 0 {
                let idx = match owner {
                    Owner::Core => 0,
                    Owner::Module(i) => i + 1,
                };
                if owner_blocks[idx].last() != Some(&(b.id as u32)) {
                    owner_blocks[idx].push(b.id as u32);
                }
            }
            if conf::IGNORED_KEYS.contains(&s.key.as_str()) {
                log::debug!("{}: {} is accepted for compatibility and has no effect", s.loc, s.key);
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }

    // Per-block core settings.
    let mut core_base: Vec<CoreConf> = Vec::with_capacity(cfg.blocks.len());
    let mut block_parent = Vec::with_capacity(cfg.blocks.len());
    for b in &cfg.blocks {
        let parent = b.parent.filter(|&p| p < core_base.len());
        let mut c = match parent {
            Some(p) => core_base[p].clone(),
            None => CoreConf::default(),
        };
        for s in &b.settings {
            c.apply(&s.key, &s.value);
        }
        core_base.push(c);
        block_parent.push(parent.map(|p| p as u32));
    }
    if core_base.is_empty() {
        core_base.push(CoreConf::default());
        block_parent.push(None);
    }

    let mut chains = Chains::default();
    for (i, m) in modules.iter().enumerate() {
        let d = &m.desc;
        macro_rules! add {
            ($($h:ident),*) => { $( if let Some(f) = d.$h { chains.$h.push((i, f)); } )* };
        }
        add!(
            uri_raw,
            uri_clean,
            docroot,
            physical,
            subrequest_start,
            response_start,
            request_done,
            request_reset,
            connection_accept,
            connection_shut_wr,
            connection_close,
            trigger,
            sighup,
            waitpid
        );
    }
    chains.request_reset.reverse();
    chains.connection_close.reverse();

    let has_physical_conds = cfg.blocks.iter().any(|b| {
        b.cond.as_ref().is_some_and(|c| {
            matches!(
                c.field,
                crate::config::CondField::PhysicalPath | crate::config::CondField::PhysicalExistingPath
            )
        })
    });
    let cond_use = CondUse::of(&cfg);
    let mut loaded = Loaded {
        cfg,
        server,
        modules,
        chains,
        owner_blocks,
        core_base,
        block_parent,
        has_physical_conds,
        cond_use,
    };
    if opts.init {
        init(&mut loaded)?;
    }
    Ok(loaded)
}

/// Initialise the modules of a configuration [`load`]ed without `init`: the module ids the
/// host services know (the registry) become this configuration's, then every module's `init`
/// and `set_defaults` run. A graceful restart checks a new configuration with `load` while the
/// old one still serves, and calls this only once the old modules' `cleanup` has run: the
/// registry and a module's library (shared by both configurations) belong to one
/// configuration at a time.
pub fn init(loaded: &mut Loaded) -> Result<(), String> {
    {
        let mut reg = REGISTRY.write().map_err(|_| "module registry poisoned".to_string())?;
        reg.clear();
        if let Ok(mut s) = SERVICES.write() {
            s.clear();
        }
        // Named counters the new configuration does not ask for again are no longer listed.
        crate::stats::new_configuration();
        for m in &loaded.modules {
            reg.push(ModInfo {
                name: Arc::from(m.name.as_str()),
                description: Arc::from(m.description.as_str()),
                data: DataPtr(std::ptr::null_mut()),
                version: Arc::from(m.version.as_str()),
                hooks: hook_bits(&m.desc),
                descriptor_size: m.abi_minor_size,
            });
        }
    }
    init_modules(loaded)
}

/// The handle behind `fd_config` during set_defaults.
pub struct ConfigCtx<'a> {
    pub cfg: &'a Config,
    pub modules: &'a [LoadedModule],
    pub errors: std::cell::RefCell<Vec<String>>,
}

fn init_modules(loaded: &mut Loaded) -> Result<(), String> {
    for (i, m) in loaded.modules.iter_mut().enumerate() {
        if let Some(init) = m.desc.init {
            // SAFETY: calling the module's init with our static host table, once.
            let data = unsafe { init(&api::HOST_API, i as u32) };
            m.data = DataPtr(data);
            if let Ok(mut reg) = REGISTRY.write() {
                if let Some(r) = reg.get_mut(i) {
                    r.data = DataPtr(data);
                }
            }
        }
    }
    let Loaded { cfg, modules, .. } = loaded;
    let ctx = ConfigCtx { cfg, modules, errors: Default::default() };
    let mut failed = Vec::new();
    for m in ctx.modules.iter() {
        if let Some(sd) = m.desc.set_defaults {
            // SAFETY: ctx outlives the call; the module reads config through host services.
            let r = unsafe { sd(m.data.0, &ctx as *const ConfigCtx as *const fd_config) };
            if r != 0 {
                failed.push(m.name.clone());
            }
        }
    }
    let errors = ctx.errors.into_inner();
    if !errors.is_empty() || !failed.is_empty() {
        let mut msg = errors;
        if msg.is_empty() {
            msg.push(format!(
                "module(s) {} refused the configuration (see the error log)",
                failed.join(", ")
            ));
        }
        return Err(msg.join("\n"));
    }
    Ok(())
}

/// Call every module's cleanup (reverse order).
pub fn cleanup(loaded: &Loaded) {
    for m in loaded.modules.iter().rev() {
        if let Some(c) = m.desc.cleanup {
            // SAFETY: last call into the module with its own data pointer.
            unsafe { c(m.data.0) };
        }
    }
}

/// The value of a module's key `key` in `block`, if that block sets it.
pub fn module_value<'a>(ctx: &ConfigCtx<'a>, module: usize, block: usize, key: usize) -> Option<&'a Value> {
    let name = &ctx.modules.get(module)?.keys.get(key)?.name;
    let b = ctx.cfg.blocks.get(block)?;
    b.settings.iter().find(|s| &s.key == name).map(|s| &s.value)
}
