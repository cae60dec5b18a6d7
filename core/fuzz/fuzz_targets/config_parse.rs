#![no_main]

use featherd::config::{parse_str_with, ParseOptions};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Fuzz input must not read files or run commands.
    let opts = ParseOptions {
        includes: false,
        include_shell: false,
        ..ParseOptions::default()
    };
    if let Ok(cfg) = parse_str_with(&text, Path::new("fuzz.conf"), &opts) {
        let printed = cfg.print();
        let again = parse_str_with(&printed, Path::new("printed.conf"), &opts)
            .unwrap_or_else(|e| panic!("printed config does not re-parse: {e}\n{printed}"));
        assert_eq!(cfg.blocks.len(), again.blocks.len());
        for (a, b) in cfg.blocks.iter().zip(&again.blocks) {
            assert_eq!(a.settings.len(), b.settings.len());
            for (x, y) in a.settings.iter().zip(&b.settings) {
                assert_eq!((&x.key, &x.value), (&y.key, &y.value));
            }
        }
    }
});
