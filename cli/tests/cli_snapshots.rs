//! Output as a contract: stdout, stderr and exit status of the CLI's refusals that
//! need no server, pinned with insta snapshots (`cli/tests/snapshots/`).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Runs `envseal ARGS` with `stdin`, a token that is never sent, and no inherited
/// `ENVSEAL_*` settings; returns "exit: N\n--- stdout\n…\n--- stderr\n…".
fn envseal(args: &[&str], stdin: &[u8]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envseal"));
    for (k, _) in std::env::vars() {
        if k.starts_with("ENVSEAL_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(args)
        .env("ENVSEAL_TOKEN", "est_snapshot_canary_token")
        .env("ENVSEAL_ADDR", "http://127.0.0.1:9")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("snapshot_canary"),
        "the token was printed: {text}"
    );
    text
}

#[test]
fn secrets_set_empty_stdin() {
    insta::assert_snapshot!(envseal(
        &["secrets", "set", "-p", "dify", "-e", "prod", "SECRET_KEY"],
        b""
    ));
}

#[test]
fn secrets_set_reserved_prefix() {
    insta::assert_snapshot!(envseal(
        &["secrets", "set", "-p", "dify", "-e", "prod", "ENVSEAL_X"],
        b"v"
    ));
}

#[test]
fn secrets_set_dangerous_name() {
    insta::assert_snapshot!(envseal(
        &["secrets", "set", "-p", "dify", "-e", "prod", "LD_PRELOAD"],
        b"v"
    ));
}

#[test]
fn plain_http_to_a_remote_host() {
    insta::assert_snapshot!(envseal(
        &[
            "--addr",
            "http://192.0.2.1:8420",
            "projects",
            "list",
            "--format",
            "json"
        ],
        b""
    ));
}

#[test]
fn address_with_credentials() {
    insta::assert_snapshot!(envseal(
        &[
            "--addr",
            "https://user:hunter2@envseal.example",
            "projects",
            "list"
        ],
        b""
    ));
}

#[test]
fn tokens_create_zero_ttl() {
    insta::assert_snapshot!(envseal(
        &["tokens", "create", "--name", "x", "-p", "dify", "-e", "prod", "--ttl", "0"],
        b""
    ));
}

#[test]
fn run_zero_fallback_max_age() {
    insta::assert_snapshot!(envseal(
        &[
            "run",
            "-p",
            "dify",
            "-e",
            "prod",
            "--fallback-max-age",
            "0",
            "--",
            "true"
        ],
        b""
    ));
}

#[test]
fn run_pass_env_token() {
    insta::assert_snapshot!(envseal(
        &[
            "run",
            "-p",
            "dify",
            "-e",
            "prod",
            "--pass-env",
            "ENVSEAL_TOKEN",
            "--",
            "true"
        ],
        b""
    ));
}

#[test]
fn secrets_get_reveal_with_format() {
    insta::assert_snapshot!(envseal(
        &["secrets", "get", "-p", "dify", "-e", "prod", "A", "--reveal", "--format", "json"],
        b""
    ));
}

#[test]
fn unreachable_server() {
    insta::assert_snapshot!(envseal(
        &["secrets", "list", "-p", "dify", "-e", "prod", "--format", "json"],
        b""
    ));
}
