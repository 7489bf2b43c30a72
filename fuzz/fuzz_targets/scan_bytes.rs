//! Fuzzes the scanner's input handling: arbitrary bytes under an arbitrary kind of
//! path (config file, lock file, source, unknown) must never panic, and every hit
//! must point at a line that exists; archive expansion stays within its budget.
#![no_main]

use envseal_scan::{detect::best_per_value, Scanner};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SCANNER: OnceLock<Scanner> = OnceLock::new();

const PATHS: &[Option<&str>] = &[
    None,
    Some(".env"),
    Some("k8s/secret.yaml"),
    Some("config.json"),
    Some("Cargo.lock"),
    Some("src/main.py"),
    Some("Dockerfile"),
];

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let scanner = SCANNER.get_or_init(Scanner::new);
    let path = PATHS[usize::from(selector) % PATHS.len()];
    let hits = scanner.scan(data, path);
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
    for h in &hits {
        assert!(
            h.line >= 1 && h.line <= lines,
            "line {} of {}",
            h.line,
            lines
        );
        assert!(!h.secret.expose().is_empty());
    }
    let _ = best_per_value(hits);
    // Archive expansion never panics and never hands out more than its budget.
    let limits = envseal_scan::archive::Limits::new(1 << 20);
    let expanded = envseal_scan::archive::expand(data, &limits);
    let total: u64 = expanded.entries.iter().map(|e| e.data.len() as u64).sum();
    assert!(total <= limits.max_total, "{total} bytes expanded");
});
