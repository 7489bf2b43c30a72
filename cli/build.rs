//! Records the commit the CLI is built from, for `envseal --version`.
//! `ENVSEAL_BUILD_COMMIT` overrides it (builds without a Git checkout).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=ENVSEAL_BUILD_COMMIT");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    if let Some(head) = git(&["rev-parse", "--git-path", "HEAD"]) {
        println!("cargo:rerun-if-changed={head}");
    }
    if let Some(refs) = git(&["rev-parse", "--git-path", "refs"]) {
        println!("cargo:rerun-if-changed={refs}");
    }
    let commit = std::env::var("ENVSEAL_BUILD_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown commit".to_owned());
    println!("cargo:rustc-env=ENVSEAL_COMMIT={commit}");
}
