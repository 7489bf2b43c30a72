//! The `envseal` binary's own checks that need no server.

use std::process::Command;

fn envseal() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envseal"));
    for k in [
        "ENVSEAL_TOKEN",
        "ENVSEAL_TOKEN_FILE",
        "ENVSEAL_ADDR",
        "ENVSEAL_PROJECT",
        "ENVSEAL_ENV",
    ] {
        cmd.env_remove(k);
    }
    cmd
}

#[test]
fn missing_token_is_a_clear_error() {
    let out = envseal().args(["projects", "list"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no token: set ENVSEAL_TOKEN"), "{err}");
}

#[test]
fn invalid_secret_name_rejected_before_any_request() {
    let out = envseal()
        .env("ENVSEAL_TOKEN", "est_x")
        .env("ENVSEAL_ADDR", "http://127.0.0.1:9")
        .args(["secrets", "get", "-p", "dify", "-e", "prod", "BAD-NAME"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must match [A-Za-z_][A-Za-z0-9_]*"), "{err}");
}

#[test]
fn unreachable_server_fails_fast_with_a_clear_message() {
    let started = std::time::Instant::now();
    let out = envseal()
        .env("ENVSEAL_TOKEN", "est_x")
        .env("ENVSEAL_ADDR", "http://127.0.0.1:9")
        .args(["projects", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the envseal server"), "{err}");
    assert!(!err.contains("est_x"), "token leaked into an error: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn token_is_not_accepted_as_a_flag() {
    let out = envseal()
        .args(["--token", "est_x", "projects", "list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
