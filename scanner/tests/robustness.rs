//! Hostile input for the matcher: random bytes, keyword soups, truncated encodings,
//! enormous lines. Nothing may panic and every hit must point at a real line. (The
//! cargo-fuzz target in `fuzz/` explores the same entry point without bounds.)

use envseal_scan::Scanner;
use rand::{Rng, SeedableRng};

const FRAGMENTS: &[&str] = &[
    "sk-",
    "sk-proj-",
    "sk-ant-api03-",
    "ghp_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "AKIA",
    "AIza",
    "hf_",
    "SG.",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "eyJ",
    "postgres://u:",
    "@h/",
    "redis://:",
    "%",
    "%4",
    "%zz",
    "password=",
    "PASSWORD: ",
    "\"token\": \"",
    "${X:-",
    "}",
    "kind: Secret",
    "data:",
    "base64,",
    "c2stcHJvai",
    "Z2hwXw",
    "=",
    "==",
    "\n",
    "\r\n",
    "\0",
    "é",
    "\u{1F600}",
    "azure",
    "deepseek",
    "zhipu",
    "JQQJ9",
    "app-",
    "dataset-",
    "ENV ",
    "- ",
    "'",
    "\"",
    "#",
    " ",
    "aws_secret_access_key",
    "envseal:allow",
];

fn check(scanner: &Scanner, data: &[u8], path: Option<&str>) {
    let lines = data.iter().filter(|&&b| b == b'\n').count() as u32 + 1;
    for h in scanner.scan(data, path) {
        assert!(h.line >= 1 && h.line <= lines);
    }
}

#[test]
fn random_bytes_and_keyword_soups_never_panic() {
    let scanner = Scanner::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-.";
    for round in 0..1500 {
        let mut data = Vec::new();
        for _ in 0..rng.gen_range(1..60) {
            match rng.gen_range(0..3) {
                0 => {
                    data.extend_from_slice(FRAGMENTS[rng.gen_range(0..FRAGMENTS.len())].as_bytes())
                }
                1 => {
                    for _ in 0..rng.gen_range(1..80) {
                        data.push(alphabet[rng.gen_range(0..alphabet.len())]);
                    }
                }
                _ => {
                    for _ in 0..rng.gen_range(1..16) {
                        data.push(rng.gen());
                    }
                }
            }
        }
        let path = [
            None,
            Some(".env"),
            Some("a.yaml"),
            Some("x.lock"),
            Some("m.rs"),
        ][round % 5];
        check(&scanner, &data, path);
    }
}

#[test]
fn huge_single_line_and_unterminated_blocks() {
    let scanner = Scanner::new();
    let mut long = "password=".repeat(20_000).into_bytes();
    long.extend_from_slice(&b"x".repeat(100_000));
    check(&scanner, &long, Some(".env"));
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}", "QUJD".repeat(50_000));
    check(&scanner, pem.as_bytes(), None);
    let b64 = format!("c2stcHJvai{}", "A".repeat(200_000));
    check(&scanner, b64.as_bytes(), None);
}
