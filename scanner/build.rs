//! Compiles the rule files under `rules/` into the scanner: each `rules/*.toml` is
//! parsed and checked here, and a table of rule definitions is generated. A rule
//! without an id, a regex with a `secret` capture, keywords, a confidence, and at
//! least one positive and one negative example fails the build.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    provider: String,
    rules: Vec<RuleFile>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    name: String,
    keywords: Vec<String>,
    #[serde(default)]
    ignore_case: bool,
    #[serde(default = "yes")]
    boundary: bool,
    #[serde(default)]
    window: u8,
    regex: String,
    #[serde(default = "default_entropy")]
    entropy: f64,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    context: Vec<String>,
    confidence: String,
    #[serde(default)]
    config_only: bool,
    #[serde(default)]
    code_only: bool,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    positive: Vec<String>,
    #[serde(default)]
    negative: Vec<String>,
}

fn yes() -> bool {
    true
}

fn default_entropy() -> f64 {
    3.0
}

fn fail(file: &str, id: &str, why: &str) -> ! {
    panic!("scanner rule file {file}, rule {id:?}: {why}");
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("scanner/rules exists")
        .map(|e| e.expect("readable rules dir").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    let mut ids = BTreeSet::new();
    // (rank, file, line): high-confidence rules report first, generic code last.
    let mut lines: Vec<(u8, String, String)> = Vec::new();
    for path in &paths {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).expect("readable rule file");
        let file: File =
            basic_toml::from_str(&text).unwrap_or_else(|e| panic!("scanner rule file {name}: {e}"));
        if file.rules.is_empty() {
            panic!("scanner rule file {name}: no [[rules]]");
        }
        for r in file.rules {
            let id = r.id.as_str();
            let ok_id = !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok_id {
                fail(&name, id, "id must be lowercase letters, digits and '-'");
            }
            if !ids.insert(r.id.clone()) {
                fail(&name, id, "duplicate id");
            }
            if r.keywords.is_empty() || r.keywords.iter().any(|k| k.len() < 2) {
                fail(&name, id, "needs keywords of at least two characters");
            }
            if !r.regex.contains("(?P<secret>") {
                fail(&name, id, "regex needs a named capture (?P<secret>…)");
            }
            if r.context.iter().any(|c| c.to_ascii_lowercase() != *c) {
                fail(&name, id, "context words are written in lower case");
            }
            if r.positive.is_empty() || r.negative.is_empty() {
                fail(
                    &name,
                    id,
                    "needs at least one positive and one negative example",
                );
            }
            if !matches!(r.confidence.as_str(), "high" | "medium" | "low") {
                fail(&name, id, "confidence is high, medium or low");
            }
            let mut classes = 0u8;
            for c in &r.classes {
                classes |= match c.as_str() {
                    "lower" => 1,
                    "upper" => 2,
                    "digit" => 4,
                    _ => fail(&name, id, "classes are lower, upper, digit"),
                };
            }
            let checksum = match r.checksum.as_deref() {
                None | Some("none") => "Checksum::None",
                Some("crc32-base62") => "Checksum::Crc32Base62",
                Some(_) => fail(&name, id, "checksum is none or crc32-base62"),
            };
            if !(0.0..=8.0).contains(&r.entropy) || r.window > 8 {
                fail(&name, id, "entropy is 0..=8 bits and window 0..=8 lines");
            }
            let confidence = match r.confidence.as_str() {
                "high" => "Confidence::High",
                "medium" => "Confidence::Medium",
                _ => "Confidence::Low",
            };
            let _ = r.note;
            if r.config_only && r.code_only {
                fail(&name, id, "config_only and code_only exclude each other");
            }
            // Generic code rules report last, after every provider's rule.
            let rank = match (r.code_only, r.confidence.as_str()) {
                (true, _) => 3,
                (_, "high") => 0,
                (_, "medium") => 1,
                _ => 2,
            };
            let mut out = String::new();
            let _ = writeln!(
                out,
                "    RuleDef {{ id: {:?}, name: {:?}, provider: {:?}, file: {:?}, \
                 keywords: &{:?}, ignore_case: {}, boundary: {}, window: {}, regex: {:?}, \
                 entropy: {:?}, classes: {}, checksum: {}, context: &{:?}, \
                 confidence: {}, config_only: {}, code_only: {}, positive: &{:?}, negative: &{:?} }},",
                r.id,
                r.name,
                file.provider,
                name,
                r.keywords,
                r.ignore_case,
                r.boundary,
                r.window,
                r.regex,
                r.entropy,
                classes,
                checksum,
                r.context,
                confidence,
                r.config_only,
                r.code_only,
                r.positive,
                r.negative,
            );
            lines.push((rank, name.clone(), out));
        }
    }
    lines.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut out = String::from("// Generated by build.rs from scanner/rules/*.toml.\n");
    out.push_str("pub(crate) static DATA_RULES: &[RuleDef] = &[\n");
    for (_, _, line) in lines {
        out.push_str(&line);
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("data_rules.rs");
    std::fs::write(dest, out).expect("write generated rules");
}
