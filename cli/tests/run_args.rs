//! `envseal run` argument checks that need no server: they fail before any request.

use std::process::Command;

fn envseal_run(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envseal"));
    for k in [
        "ENVSEAL_TOKEN_FILE",
        "ENVSEAL_PROJECT",
        "ENVSEAL_ENV",
        "ENVSEAL_FALLBACK_PATH",
        "ENVSEAL_FALLBACK_PASSPHRASE",
        "ENVSEAL_FALLBACK_PASSPHRASE_FILE",
        "ENVSEAL_DIFY_SERVICE",
    ] {
        cmd.env_remove(k);
    }
    let out = cmd
        .env("ENVSEAL_TOKEN", "est_x")
        .env("ENVSEAL_ADDR", "http://127.0.0.1:9")
        .args(["run", "-p", "dify", "-e", "prod"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_clear_errors() {
    for (args, want) in [
        (
            &["--fallback-only", "--", "true"][..],
            "--fallback-only needs --fallback-path",
        ),
        (&["--file", "NOEQUALS", "--", "true"], "must be NAME=PATH"),
        (&["--file", "A-B=/dev/shm/x", "--", "true"], "must match"),
        (
            &["--file", "A=relative", "--", "true"],
            "absolute file path",
        ),
        (
            &[
                "--file",
                "A=/dev/shm/x",
                "--file",
                "A=/dev/shm/y",
                "--",
                "true",
            ],
            "names A twice",
        ),
        (
            &["--profile", "dify", "--prefix", "X_", "--", "true"],
            "cannot be combined",
        ),
        (&["--prefix", "1", "--", "true"], "must match"),
        (
            &["--fallback-max-age", "3 fortnights", "--", "true"],
            "is not a duration",
        ),
        (&["--total-timeout", "0", "--", "true"], "positive duration"),
    ] {
        let (code, err) = envseal_run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn a_command_is_required_unless_dry_run() {
    let (code, err) = envseal_run(&[]);
    assert_eq!(code, 2);
    assert!(err.contains("COMMAND"), "{err}");
}

#[test]
fn unreachable_server_without_fallback_fails_fast() {
    let started = std::time::Instant::now();
    let (code, err) = envseal_run(&["--retries", "2", "--", "true"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the envseal server"), "{err}");
    assert!(err.contains("gave up after 3 attempts"), "{err}");
    assert!(err.contains("no fallback file is configured"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}
