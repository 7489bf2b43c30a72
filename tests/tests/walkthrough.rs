//! The README's walkthrough is `tests/walkthrough.sh`: the README quotes it between
//! its markers, and this test runs it against the real binaries, so neither can go
//! stale.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn walkthrough_block() -> String {
    let script = std::fs::read_to_string(root().join("tests/walkthrough.sh")).unwrap();
    let start = script.find("# --- walkthrough ---\n").unwrap() + "# --- walkthrough ---\n".len();
    let end = script.find("# --- end ---").unwrap();
    script[start..end].trim_end().to_owned()
}

#[test]
fn readme_quotes_the_walkthrough_script() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let block = format!("```sh\n{}\n```", walkthrough_block());
    assert!(
        readme.contains(&block),
        "README.md's walkthrough differs from tests/walkthrough.sh; paste:\n{block}"
    );
}

#[test]
fn readme_walkthrough_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let bin = envseal_e2e::bin("envseal");
    let bin_dir = bin.parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("sh");
    for (k, _) in std::env::vars() {
        if k.starts_with("ENVSEAL_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .arg(root().join("tests/walkthrough.sh"))
        .current_dir(dir.path())
        .env("PATH", path)
        .env("ENVSEAL_LISTEN", format!("127.0.0.1:{port}"))
        .env("ENVSEAL_ADDR", format!("http://127.0.0.1:{port}"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(
        out.status.success() && stdout.contains("walkthrough ok"),
        "walkthrough failed ({:?})\nstdout: {stdout}\nstderr: {stderr}\nserver: {log}",
        out.status
    );
    assert!(stdout.contains("SECRET_KEY"), "{stdout}");
    let token = std::fs::read_to_string(dir.path().join("api.token")).unwrap();
    assert!(token.starts_with("est_"), "{token}");
    assert!(!stdout.contains(token.trim()) && !stderr.contains(token.trim()));
}
