//! Writes the generated test corpus (true secrets and decoys, random keys) to a
//! directory with a `manifest.json`, for comparing scanners (`bench/scan/`).
//!
//! Usage: `cargo run --release -p envseal-scan --example corpus -- DIR`

#[path = "../tests/common/corpus.rs"]
mod corpus;

fn main() -> std::io::Result<()> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).expect("usage: corpus DIR"));
    let cases = corpus::all_cases();
    let mut manifest = Vec::new();
    for c in &cases {
        let p = dir.join(&c.path);
        std::fs::create_dir_all(p.parent().expect("corpus paths have a parent"))?;
        std::fs::write(&p, &c.content)?;
        manifest.push(serde_json::json!({
            "path": c.path,
            "rules": c.expect.iter().map(|(r, _)| *r).collect::<Vec<_>>(),
        }));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).expect("json") + "\n",
    )?;
    eprintln!("wrote {} cases to {}", cases.len(), dir.display());
    Ok(())
}
