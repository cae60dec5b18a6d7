//! Runs the request-head, chunked-body and URL fuzz targets' checks over their seed corpora
//! (and simple mutations of them), so CI exercises them on stable Rust without cargo-fuzz.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn corpus(name: &str) -> Vec<Vec<u8>> {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(name);
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(&dir).expect("corpus dir").map(|e| e.expect("entry").path()).collect();
    files.sort();
    assert!(files.len() >= 8, "{name}: seed corpus too small");
    files.iter().map(|f| std::fs::read(f).expect("seed")).collect()
}

/// Every seed, every prefix of it, and each seed with one byte flipped at every position.
fn run(name: &str, check: fn(&[u8])) {
    for seed in corpus(name) {
        check(&seed);
        for n in 0..seed.len() {
            check(&seed[..n]);
            let mut m = seed.clone();
            m[n] ^= 0x55;
            check(&m);
        }
    }
}

#[test]
fn head_parse_corpus() {
    run("head_parse", checks::head_parse);
}

#[test]
fn chunked_corpus() {
    run("chunked", checks::chunked);
}

#[test]
fn url_normalize_corpus() {
    run("url_normalize", checks::url_normalize);
}
