//! Keeps `include/featherd_module.h` in step with `src/abi.rs`, and checks that C sees the
//! same layout as Rust.
//!
//! The header is generated with cbindgen (a dev-dependency) from `src/abi.rs` and
//! `cbindgen.toml`. When it differs from the committed file the test fails; regenerate with
//!
//! ```text
//! FEATHERD_BLESS=1 cargo test -p featherd-mod-api --test c_header
//! ```
//!
//! The C checks need a C compiler (`cc`, or `$CC`); without one they print a note and pass.

use featherd_mod_api::abi::{
    HostApi, ModuleDescriptor, ABI_MAJOR, HOST_API_SIZE_V1_0, MODULE_DESCRIPTOR_SIZE_V1_0,
};
use std::path::{Path, PathBuf};
use std::process::Command;

const HEADER: &str = "include/featherd_module.h";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The typedefs that cbindgen.toml writes by hand (in `after_includes`) because cbindgen
/// would order them after their first use.
const HAND_WRITTEN: &[&str] = &[
    "fd_result_t",
    "fd_request_hook",
    "fd_connection_hook",
    "fd_server_hook",
    "fd_waitpid_hook",
    "fd_preface_hook",
];

fn config() -> cbindgen::Config {
    cbindgen::Config::from_file(crate_dir().join("cbindgen.toml")).expect("read cbindgen.toml")
}

fn generate() -> String {
    generate_with(config())
}

fn generate_with(config: cbindgen::Config) -> String {
    let dir = crate_dir();
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/abi.rs"))
        .generate()
        .expect("cbindgen could not generate the header from src/abi.rs");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("cbindgen wrote UTF-8")
}

#[test]
fn header_is_up_to_date() {
    let generated = generate();
    let path = crate_dir().join(HEADER);
    if std::env::var_os("FEATHERD_BLESS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| committed.lines().count().min(generated.lines().count()))
            + 1;
        panic!(
            "mod-api/{HEADER} is stale (first difference at line {line}): src/abi.rs or \
             cbindgen.toml changed. Regenerate it with\n\n    \
             FEATHERD_BLESS=1 cargo test -p featherd-mod-api --test c_header\n\nand commit it."
        );
    }
}

/// The hand-written typedefs say what cbindgen would have said.
#[test]
fn hand_written_typedefs_match_abi_rs() {
    let mut config = config();
    config.export.exclude.retain(|name| !HAND_WRITTEN.contains(&name.as_str()));
    config.export.include.extend(HAND_WRITTEN.iter().map(|s| s.to_string()));
    config.after_includes = None;
    let unfiltered = generate_with(config);
    let ours = config_after_includes();
    let ours = typedefs(&ours);
    for name in HAND_WRITTEN {
        let def = typedefs(&unfiltered)
            .into_iter()
            .find(|l| l.contains(&format!("(*{name})")) || l.ends_with(&format!(" {name};")))
            .unwrap_or_else(|| panic!("cbindgen emitted no typedef for {name}"));
        assert!(
            ours.contains(&def),
            "cbindgen.toml after_includes has no typedef `{def}`: update it from src/abi.rs"
        );
    }
}

/// The typedef statements of C text, each on one line with its whitespace collapsed (cbindgen
/// wraps a long function-pointer typedef over several lines).
fn typedefs(c: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for l in c.lines() {
        let l = l.trim();
        if cur.is_none() && l.starts_with("typedef") {
            cur = Some(String::new());
        }
        if let Some(s) = cur.as_mut() {
            if !s.is_empty() && !s.ends_with('(') {
                s.push(' ');
            }
            s.push_str(l);
            if l.ends_with(';') {
                out.push(cur.take().unwrap_or_default());
            }
        }
    }
    out
}

fn config_after_includes() -> String {
    config().after_includes.unwrap_or_default()
}

/// The C compiler to use, or None (with a note) when there is none.
fn c_compiler() -> Option<String> {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
    match Command::new(&cc).arg("--version").output() {
        Ok(o) if o.status.success() => Some(cc),
        _ => {
            eprintln!("note: no C compiler ({cc}); skipping the C checks of the header");
            None
        }
    }
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("featherd-c-header-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const STRICT: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror"];

fn run_cc(cc: &str, args: &[&str], src: &Path) {
    let include = crate_dir().join("include");
    let out = Command::new(cc)
        .args(STRICT)
        .arg("-I")
        .arg(&include)
        .args(args)
        .arg(src)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}{}",
        src.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A module as a C author writes one: the header alone must be enough.
const MODULE_C: &str = r#"
#include "featherd_module.h"

static const fd_host_api *host;
static uint32_t my_id;

static void *hello_init(const fd_host_api *h, uint32_t module_id) {
    host = h;
    my_id = module_id;
    return NULL;
}

static fd_result_t hello_uri_clean(void *module_data, fd_request *req) {
    (void)module_data;
    fd_str path = host->request_path(req);
    if (path.len != 6 || path.ptr[0] != '/') {
        return FEATHERD_HANDLER_GO_ON;
    }
    static const char body[] = "hello\n";
    fd_str text = { (const uint8_t *)body, sizeof body - 1 };
    host->response_set_status(req, 200);
    host->response_append_mem(req, text);
    if (FEATHERD_HOST_HAS(host, module_description)) {
        (void)host->module_description(my_id);
    }
    host->log(my_id, FEATHERD_LOG_DEBUG, text);
    if (FEATHERD_HOST_HAS(host, stat_counter)) {
        static const char name[] = "hello.requests";
        fd_str n = { (const uint8_t *)name, sizeof name - 1 };
        int64_t *hits = host->stat_counter(my_id, n);
        if (hits) {
            __atomic_fetch_add(hits, 1, __ATOMIC_RELAXED);
        }
    }
    return FEATHERD_HANDLER_FINISHED;
}

#define S(lit) { (const uint8_t *)(lit), sizeof(lit) - 1 }

static const fd_config_key keys[] = {
    { .name = S("hello.greeting"), .kind = FEATHERD_VALUE_STRING, .scope = FEATHERD_SCOPE_CONDITIONAL },
};

static const fd_module_descriptor descriptor = {
    .abi_major = FEATHERD_ABI_MAJOR,
    .struct_size = sizeof(fd_module_descriptor),
    .name = S("mod_hello"),
    .version = S("1.0.0"),
    .config_keys = keys,
    .config_keys_len = sizeof keys / sizeof keys[0],
    .init = hello_init,
    .uri_clean = hello_uri_clean,
    .description = S("says hello"),
};

const fd_module_descriptor *featherd_module_v1(void) {
    return &descriptor;
}

/* The entry point has the type the host looks up. */
static const fd_module_entry entry = featherd_module_v1;
const void *use_entry(void);
const void *use_entry(void) { return (const void *)&entry; }

_Static_assert(sizeof(FEATHERD_MODULE_SYMBOL) == sizeof("featherd_module_v1"), "symbol name");
_Static_assert(FEATHERD_MODULE_DESCRIPTOR_SIZE_V1_0 < sizeof(fd_module_descriptor), "1.0 size");
_Static_assert(FEATHERD_HOST_API_SIZE_V1_0 < sizeof(fd_host_api), "1.0 size");
"#;

#[test]
fn header_compiles_as_strict_c11() {
    let Some(cc) = c_compiler() else { return };
    let dir = scratch_dir("syntax");
    let src = dir.join("module.c");
    std::fs::write(&src, MODULE_C).unwrap();
    run_cc(&cc, &["-fsyntax-only"], &src);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn c_layout_matches_rust() {
    let Some(cc) = c_compiler() else { return };
    let dir = scratch_dir("layout");
    let src = dir.join("sizes.c");
    let exe = dir.join("sizes");
    std::fs::write(
        &src,
        r#"#include <stdio.h>
#include "featherd_module.h"
int main(void) {
    printf("%zu %zu %u %u %u\n", sizeof(fd_module_descriptor), sizeof(fd_host_api),
           (unsigned)FEATHERD_MODULE_DESCRIPTOR_SIZE_V1_0, (unsigned)FEATHERD_HOST_API_SIZE_V1_0,
           (unsigned)FEATHERD_ABI_MAJOR);
    return 0;
}
"#,
    )
    .unwrap();
    run_cc(&cc, &["-o", exe.to_str().unwrap()], &src);
    let out = Command::new(&exe).output().expect("run the compiled C program");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let expected = format!(
        "{} {} {} {} {}\n",
        size_of::<ModuleDescriptor>(),
        size_of::<HostApi>(),
        MODULE_DESCRIPTOR_SIZE_V1_0,
        HOST_API_SIZE_V1_0,
        ABI_MAJOR
    );
    assert_eq!(printed, expected, "C and Rust disagree (descriptor, host api, 1.0 sizes, major)");
    let _ = std::fs::remove_dir_all(&dir);
}
