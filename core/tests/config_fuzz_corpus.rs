//! Runs the fuzz target's checks over the seed corpus, so the corpus is
//! exercised on stable Rust without cargo-fuzz.

use featherd::config::{parse_str_with, Config, ParseOptions};
use std::path::{Path, PathBuf};

fn opts() -> ParseOptions {
    ParseOptions { includes: false, include_shell: false, ..ParseOptions::default() }
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_parse");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

fn same(a: &Config, b: &Config) -> bool {
    a.blocks.len() == b.blocks.len()
        && a.blocks.iter().zip(&b.blocks).all(|(x, y)| {
            (x.id, x.parent, x.else_of) == (y.id, y.parent, y.else_of)
                && x.cond.as_ref().map(|c| &c.text) == y.cond.as_ref().map(|c| &c.text)
                && x.settings.len() == y.settings.len()
                && x.settings.iter().zip(&y.settings).all(|(s, t)| s.key == t.key && s.value == t.value)
        })
}

/// The same checks as fuzz_targets/config_parse.rs, plus round-trip equality.
fn check(text: &str) -> Option<Config> {
    let cfg = parse_str_with(text, Path::new("corpus.conf"), &opts()).ok()?;
    let printed = cfg.print();
    let again = parse_str_with(&printed, Path::new("printed.conf"), &opts())
        .unwrap_or_else(|e| panic!("printed config does not re-parse: {e}\n{printed}"));
    assert!(same(&cfg, &again), "round trip changed the config:\n{printed}");
    assert_eq!(again.print(), printed);
    Some(cfg)
}

#[test]
fn seed_corpus_parses_prints_and_reparses() {
    let files = corpus();
    assert!(files.len() >= 15, "seed corpus too small");
    let mut ok = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let parsed = check(&text).is_some();
        // Seeds 01-18 are valid configurations; the rest are deliberately
        // broken.
        let valid = name.as_str() < "19";
        assert_eq!(parsed, valid, "{name}");
        ok += usize::from(parsed);
    }
    assert_eq!(ok, 18);
}

#[test]
fn truncations_and_mutations_of_the_corpus_never_panic() {
    for f in corpus() {
        let text = String::from_utf8_lossy(&std::fs::read(f).unwrap()).into_owned();
        let chars: Vec<char> = text.chars().collect();
        for cut in 0..chars.len() {
            let prefix: String = chars[..cut].iter().collect();
            check(&prefix);
            // Drop one character, and swap in characters that matter to the grammar.
            let mut dropped = chars.clone();
            dropped.remove(cut);
            check(&dropped.iter().collect::<String>());
            if cut % 3 != 0 {
                continue;
            }
            for c in ['"', '(', ')', '{', '}', '$', '\\', ',', '+', '=', '\n'] {
                let mut m = chars.clone();
                m[cut] = c;
                check(&m.iter().collect::<String>());
            }
        }
    }
}
