//! `envseal run` when the server is unreachable: the encrypted fallback file, its age
//! limit, tampering, and failing within the timeout when there is nothing to fall back
//! on.

use envseal_e2e::{create_env, launcher, machine_token, run, set_secret, Server};
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Setup {
    server: Server,
    token: String,
    dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    set_secret(
        &server,
        "dify",
        "prod",
        "DB_PASSWORD",
        b"fallback-canary-1f2e",
    );
    set_secret(
        &server,
        "dify",
        "prod",
        "PEM",
        b"-----BEGIN KEY-----\nab\r\ncd\n-----END KEY-----\n",
    );
    let token = machine_token(&server, "dify", "prod");
    Setup {
        server,
        token,
        dir: tempfile::tempdir().unwrap(),
    }
}

impl Setup {
    fn fallback(&self) -> PathBuf {
        self.dir.path().join("envseal.fallback")
    }

    /// Runs a check of the injected values in the child; exit 0 when they arrived.
    fn launch(&self, extra: &[&str]) -> std::process::Command {
        self.launch_within("3", extra)
    }

    fn launch_within(&self, total_timeout: &str, extra: &[&str]) -> std::process::Command {
        let mut cmd = launcher(&self.server, &self.token, "dify", "prod");
        cmd.env("ENVSEAL_FALLBACK_PATH", self.fallback())
            .args(["--retries", "1", "--total-timeout", total_timeout])
            .args(extra)
            .args([
                "--",
                "sh",
                "-c",
                r#"test "$DB_PASSWORD" = fallback-canary-1f2e && test "$(printf '%s' "$PEM" | wc -l)" -eq 4"#,
            ]);
        cmd
    }

    /// Fetches once (writing the fallback file), then stops the server.
    fn prime_then_stop(&mut self) {
        let (code, _, err) = run(&mut self.launch(&[]), b"");
        assert_eq!(code, 0, "{err}");
        assert!(self.fallback().exists(), "no fallback file was written");
        self.server.stop();
    }
}

#[test]
fn server_down_with_a_fresh_fallback_starts() {
    let mut s = setup();
    s.prime_then_stop();
    let mode = std::fs::metadata(s.fallback()).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    let bytes = std::fs::read(s.fallback()).unwrap();
    assert!(
        !bytes.windows(8).any(|w| w == b"fallback"),
        "plaintext in the fallback"
    );
    let (code, out, err) = run(&mut s.launch(&[]), b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("from the fallback file"), "{err}");
    assert!(!err.contains("canary") && !String::from_utf8_lossy(&out).contains("canary"));
    // --fallback-only never asks the server.
    let (code, _, err) = run(&mut s.launch(&["--fallback-only"]), b"");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn server_down_with_a_stale_fallback_refuses() {
    let mut s = setup();
    s.prime_then_stop();
    std::thread::sleep(Duration::from_millis(1100)); // age the file past 1 s
    let (code, _, err) = run(&mut s.launch(&["--fallback-max-age", "1"]), b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach the envseal server"), "{err}");
    assert!(err.contains("is stale"), "{err}");
    assert!(err.contains("--fallback-max-age"), "{err}");
}

#[test]
fn a_tampered_fallback_is_rejected() {
    let mut s = setup();
    s.prime_then_stop();
    let mut bytes = std::fs::read(s.fallback()).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0x40;
    std::fs::write(s.fallback(), &bytes).unwrap();
    let (code, _, err) = run(&mut s.launch(&[]), b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not authenticate"), "{err}");
    // A file of another token does not authenticate either.
    let mut s2 = setup();
    s2.prime_then_stop();
    std::fs::copy(s2.fallback(), s.fallback()).unwrap();
    let (code, _, err) = run(&mut s.launch(&[]), b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not authenticate"), "{err}");
}

#[test]
fn server_down_without_fallback_fails_within_the_timeout() {
    let mut s = setup();
    s.server.stop();
    let started = Instant::now();
    let (code, _, err) = run(&mut s.launch(&["--no-fallback"]), b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach the envseal server"), "{err}");
    assert!(err.contains("gave up after 2 attempts"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A server that accepts the connection and never answers: the total timeout holds.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", silent.local_addr().unwrap());
    let started = Instant::now();
    let mut cmd = s.launch_within("1.5", &["--no-fallback"]);
    cmd.env("ENVSEAL_ADDR", &addr).env("ENVSEAL_TIMEOUT", "30");
    let (code, _, err) = run(&mut cmd, b"");
    let elapsed = started.elapsed();
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach the envseal server"), "{err}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    drop(silent);
}

#[test]
fn a_token_the_server_refuses_does_not_fall_back() {
    let mut s = setup();
    s.prime_then_stop();
    s.server = Server::start();
    let (code, _, err) = run(&mut s.launch(&[]), b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("401"), "{err}");
}

#[test]
fn passphrase_protected_fallback_and_no_home() {
    let mut s = setup();
    let pass = s.dir.path().join("passphrase");
    std::fs::write(&pass, "correct horse battery staple\n").unwrap();
    let with_pass = |s: &Setup, extra: &[&str]| {
        let mut cmd = s.launch(extra);
        cmd.env_remove("HOME")
            .env("ENVSEAL_FALLBACK_PASSPHRASE_FILE", &pass);
        cmd
    };
    let (code, _, err) = run(&mut with_pass(&s, &[]), b"");
    assert_eq!(code, 0, "{err}");
    s.server.stop();
    let (code, _, err) = run(&mut with_pass(&s, &[]), b"");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("from the fallback file"), "{err}");
    // The token-derived key cannot read it: a clear message, not garbage.
    let (code, _, err) = run(&mut s.launch(&[]), b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("written with a passphrase"), "{err}");
    // The passphrase given through the environment is not passed on to the command.
    let mut cmd = launcher(&s.server, &s.token, "dify", "prod");
    cmd.env("ENVSEAL_FALLBACK_PATH", s.fallback())
        .env(
            "ENVSEAL_FALLBACK_PASSPHRASE",
            "correct horse battery staple",
        )
        .args(["--fallback-only", "--", "sh", "-c"])
        .arg("test -z \"${ENVSEAL_FALLBACK_PASSPHRASE+x}\" && test -z \"${ENVSEAL_TOKEN+x}\"");
    let (code, _, err) = run(&mut cmd, b"");
    assert_eq!(code, 0, "{err}");
}
