//! tools/featherd-enable-mod and featherd-disable-mod: conf-available snippets (the shipped
//! conf.d/ ones) linked into conf-enabled/, which the main configuration includes; checked by
//! the real featherd parsing the result.

use featherd_e2e::*;
use std::path::Path;
use std::process::Command;

fn tool(name: &str, confdir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(workspace_root().join("tools").join(name))
        .arg("-c")
        .arg(confdir)
        .args(args)
        .output()
        .expect("run the tool");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The configuration as featherd reads it (`-p`), modules loaded from the target dir.
fn effective(conf: &Path) -> String {
    let dir = target_dir();
    let (code, out, err) =
        featherd(&["-p", "-f", conf.to_str().expect("utf8"), "-m", dir.to_str().expect("utf8")]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn snippets_are_enabled_and_disabled_by_links() {
    let dir = TempDir::new("enmod");
    let avail = dir.path().join("conf-available");
    std::fs::create_dir_all(&avail).expect("mkdir");
    for e in std::fs::read_dir(workspace_root().join("conf.d")).expect("conf.d") {
        let p = e.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.ends_with(".conf") && name != "featherd.conf" {
            // A numbered name fixes the include order; the tool finds it by its module name.
            let target = if name == "fastcgi.conf" { "10-fastcgi.conf".to_string() } else { name };
            std::fs::copy(&p, avail.join(target)).expect("copy");
        }
    }
    let conf = dir.write(
        "featherd.conf",
        format!(
            "server.document-root = \"{0}/www\"\nserver.port = 8080\ninclude \"conf-enabled/*.conf\"\n",
            dir.path().display()
        ),
    );
    std::fs::create_dir_all(dir.path().join("conf-enabled")).expect("mkdir");
    let before = effective(&conf);
    assert!(!before.contains("mod_accesslog"), "{before}");

    let (code, out, _) = tool("featherd-enable-mod", dir.path(), &["-l"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["accesslog", "-"]), "{out}");
    assert!(out.lines().any(|l| l.starts_with("fastcgi ")), "{out}");

    let (code, out, err) = tool("featherd-enable-mod", dir.path(), &["accesslog", "fastcgi"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("enabled accesslog") && out.contains("enabled fastcgi"), "{out}");
    let link = dir.path().join("conf-enabled/accesslog.conf");
    assert_eq!(std::fs::read_link(&link).expect("a link"), Path::new("../conf-available/accesslog.conf"));
    assert!(dir.path().join("conf-enabled/10-fastcgi.conf").exists());
    let after = effective(&conf);
    assert!(after.contains("mod_accesslog") && after.contains("mod_fastcgi"), "{after}");
    assert!(after.contains("accesslog.filename"), "{after}");

    // Idempotent, listed as enabled.
    let (code, out, _) = tool("featherd-enable-mod", dir.path(), &["accesslog"]);
    assert_eq!((code, out.contains("already enabled")), (0, true), "{out}");
    let (_, out, _) = tool("featherd-enable-mod", dir.path(), &["-l"]);
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["accesslog", "enabled"]),
        "{out}"
    );

    // Unknown or malicious names are refused.
    for bad in ["nosuchmodule", "../featherd", ""] {
        let (code, _, err) = tool("featherd-enable-mod", dir.path(), &[bad]);
        assert_eq!(code, 1, "{bad:?}: {err}");
        assert!(!err.is_empty());
    }

    let (code, out, _) = tool("featherd-disable-mod", dir.path(), &["accesslog"]);
    assert_eq!((code, out.contains("disabled accesslog")), (0, true), "{out}");
    assert!(!link.exists() && std::fs::symlink_metadata(&link).is_err());
    let (_, out, _) = tool("featherd-disable-mod", dir.path(), &["accesslog"]);
    assert!(out.contains("is not enabled"), "{out}");
    let last = effective(&conf);
    assert!(!last.contains("mod_accesslog") && last.contains("mod_fastcgi"), "{last}");
}
