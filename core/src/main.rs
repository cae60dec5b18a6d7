//! The `featherd` command: lighttpd's flags.

use featherd::server::{self, Options};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: featherd -f <configfile> [options]
  -f <name>  filename of the config file
  -m <name>  module directory (default: the directory of the featherd binary)
  -i <secs>  graceful shutdown after <secs> of inactivity
  -1         process single (one) connection on the stdin socket, then exit
  -p         print the parsed config file in internal form, and exit
  -t         test config file syntax, then exit
  -tt        test config file syntax, load and init modules, then exit
  -D         don't go to background (default: go to background)
  -v         show version
  -V         show compile-time features
  -h         show this help
";

fn features() -> String {
    let mut s = format!(
        "featherd/{} - a web server in the lighttpd tradition\n\nFeatures:\n\n",
        env!("CARGO_PKG_VERSION")
    );
    for (sign, name) in featherd::server::FEATURES {
        s.push_str(&format!("\t{sign} {name}\n"));
    }
    s.push_str(&format!(
        "\nModule ABI: {}.{} (symbol {})\n",
        featherd_mod_api::abi::ABI_MAJOR,
        featherd_mod_api::abi::ABI_MINOR,
        featherd_mod_api::abi::MODULE_SYMBOL
    ));
    s
}

fn main() -> ExitCode {
    let mut config: Option<PathBuf> = None;
    let mut module_dir: Option<PathBuf> = None;
    let mut foreground = false;
    let mut test = 0;
    let mut print = false;
    let mut oneshot = false;
    let mut idle_limit = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-f" => config = args.next().map(PathBuf::from),
            "-m" => module_dir = args.next().map(PathBuf::from),
            "-D" => foreground = true,
            "-1" => oneshot = true,
            "-i" => {
                // As lighttpd: a whole, non-negative number of seconds (0: no limit).
                let v = args.next().unwrap_or_default();
                match v.parse::<u64>() {
                    Ok(n) => idle_limit = n,
                    Err(_) => {
                        eprintln!("featherd: invalid idle timeout value: {v:?}\n{USAGE}");
                        return ExitCode::from(255);
                    }
                }
            }
            "-t" => test += 1,
            "-tt" => test += 2,
            "-p" => print = true,
            "-v" => {
                println!("featherd/{} - a web server in the lighttpd tradition", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "-V" => {
                print!("{}", features());
                return ExitCode::SUCCESS;
            }
            "-h" | "-?" | "--help" => {
                print!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("featherd: unknown option {other:?}\n{USAGE}");
                return ExitCode::from(255);
            }
        }
    }
    let Some(config) = config else {
        eprintln!("featherd: no config file given (-f)\n{USAGE}");
        return ExitCode::from(255);
    };
    let opts = Options {
        config,
        module_dir: module_dir.unwrap_or_else(server::default_module_dir),
        foreground,
        oneshot,
        idle_limit,
    };
    if print {
        return match featherd::config::parse_file(&opts.config) {
            Ok(c) => {
                print!("{}", c.print());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    if test > 0 {
        let r = if test == 1 {
            featherd::config::parse_file(&opts.config).map(|_| ()).map_err(|e| e.to_string())
        } else {
            // Log to stderr so module messages during init are visible.
            server::load_config(&opts, true, true).map(|l| featherd::host::cleanup(&l))
        };
        return match r {
            Ok(()) => {
                println!("Syntax OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    match server::run(opts) {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("featherd: {e}");
            log::error!("{e}");
            ExitCode::FAILURE
        }
    }
}
