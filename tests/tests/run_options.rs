//! `envseal run` options: existing variables and `--override`, `--only`, `--prefix`,
//! `--require`, `--dry-run`, `--file` / `--mount` on tmpfs, TLS with a private CA, and
//! exec-mode failures.

use envseal_e2e::{
    create_env, launcher, machine_token, run, set_secret, skip_or_fail, Server, ServerOptions,
};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

const PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIIB\r\n\tx\n-----END PRIVATE KEY-----\n";

fn setup(opts: ServerOptions) -> (Server, String) {
    let server = Server::start_with(opts);
    create_env(&server, "dify", "prod");
    set_secret(&server, "dify", "prod", "DB_PASSWORD", b"opt-canary-db");
    set_secret(
        &server,
        "dify",
        "prod",
        "REDIS_PASSWORD",
        b"opt-canary-redis",
    );
    set_secret(&server, "dify", "prod", "SA_KEY", PEM);
    let token = machine_token(&server, "dify", "prod");
    (server, token)
}

/// Runs `sh -c script` under the launcher; returns (code, stdout, stderr).
fn sh(server: &Server, token: &str, flags: &[&str], script: &str) -> (i32, String, String) {
    let mut cmd = launcher(server, token, "dify", "prod");
    cmd.args(flags).args(["--", "sh", "-c", script]);
    let (code, out, err) = run(&mut cmd, b"");
    (code, String::from_utf8(out).unwrap(), err)
}

#[test]
fn existing_variables_win_unless_override() {
    let (server, token) = setup(ServerOptions::default());
    let mut cmd = launcher(&server, &token, "dify", "prod");
    cmd.env("DB_PASSWORD", "from-compose")
        .args(["--", "sh", "-c", "printf %s \"$DB_PASSWORD\""]);
    let (code, out, err) = run(&mut cmd, b"");
    assert_eq!((code, out.as_slice()), (0, &b"from-compose"[..]), "{err}");
    assert!(
        err.contains("kept DB_PASSWORD from the environment"),
        "{err}"
    );
    let mut cmd = launcher(&server, &token, "dify", "prod");
    cmd.env("DB_PASSWORD", "from-compose").args([
        "--override",
        "--",
        "sh",
        "-c",
        "printf %s \"$DB_PASSWORD\"",
    ]);
    let (code, out, _) = run(&mut cmd, b"");
    assert_eq!((code, out.as_slice()), (0, &b"opt-canary-db"[..]));
    // The token never reaches the command.
    let (code, out, _) = sh(&server, &token, &[], "printf %s \"${ENVSEAL_TOKEN-unset}\"");
    assert_eq!((code, out.as_str()), (0, "unset"));
}

#[test]
fn only_prefix_and_require() {
    let (server, token) = setup(ServerOptions::default());
    let (code, out, err) = sh(
        &server,
        &token,
        &["--only", "DB_PASSWORD", "--prefix", "APP_"],
        "printf '%s|%s|%s' \"$APP_DB_PASSWORD\" \"${DB_PASSWORD-unset}\" \"${APP_REDIS_PASSWORD-unset}\"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "opt-canary-db|unset|unset");
    let (code, out, err) = sh(
        &server,
        &token,
        &["--require", "DB_PASSWORD,NOPE,ALSO_NOPE"],
        "true",
    );
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("required secrets missing from dify/prod: NOPE, ALSO_NOPE"),
        "{err}"
    );
    let (code, _, err) = sh(&server, &token, &["--only", "BAD-NAME"], "true");
    assert_eq!(code, 2);
    assert!(
        err.contains("BAD-NAME") && err.contains("must match"),
        "{err}"
    );
}

#[test]
fn dry_run_prints_names_and_never_values() {
    let (server, token) = setup(ServerOptions::default());
    let mut cmd = launcher(&server, &token, "dify", "prod");
    cmd.env("REDIS_PASSWORD", "inherited").arg("--dry-run");
    let (code, out, err) = run(&mut cmd, b"");
    assert_eq!(code, 0, "{err}");
    let out = String::from_utf8(out).unwrap();
    assert_eq!(
        out,
        "DB_PASSWORD\tenv\nREDIS_PASSWORD\tkept (already set; --override replaces it)\nSA_KEY\tenv\n"
    );
    assert!(!err.contains("canary") && !err.contains("PRIVATE"), "{err}");
}

fn fs_is_tmpfs(dir: &Path) -> bool {
    std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "tmpfs")
}

#[test]
fn file_and_mount_write_0400_files_on_tmpfs_only() {
    let shm = Path::new("/dev/shm");
    if !fs_is_tmpfs(shm) {
        skip_or_fail("file_and_mount_write_0400_files", "/dev/shm is not a tmpfs");
        return;
    }
    let (server, token) = setup(ServerOptions::default());
    let dir = tempfile::tempdir_in(shm).unwrap();
    let key = dir.path().join("sa.pem");
    let flag = format!("SA_KEY={}", key.display());
    let (code, out, err) = sh(
        &server,
        &token,
        &["--file", &flag],
        "printf '%s|%s' \"${SA_KEY-unset}\" \"$DB_PASSWORD\"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "unset|opt-canary-db");
    assert_eq!(std::fs::read(&key).unwrap(), PEM);
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o400);

    let mount = dir.path().join("all");
    std::fs::create_dir(&mount).unwrap();
    let mount_flag = mount.display().to_string();
    let (code, out, err) = sh(
        &server,
        &token,
        &["--mount", &mount_flag],
        "printf '%s' \"${DB_PASSWORD-unset}\"",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "unset");
    assert_eq!(
        std::fs::read(mount.join("DB_PASSWORD")).unwrap(),
        b"opt-canary-db"
    );
    assert_eq!(std::fs::read(mount.join("SA_KEY")).unwrap(), PEM);

    // A directory on a disk is refused unless --allow-non-tmpfs.
    let disk = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    if fs_is_tmpfs(disk.path()) {
        return;
    }
    let flag = format!("SA_KEY={}", disk.path().join("k").display());
    let (code, _, err) = sh(&server, &token, &["--file", &flag], "true");
    assert_eq!(code, 2);
    assert!(err.contains("is not on tmpfs"), "{err}");
    assert!(!disk.path().join("k").exists());
    let (code, _, err) = sh(
        &server,
        &token,
        &["--file", &flag, "--allow-non-tmpfs"],
        "true",
    );
    assert_eq!(code, 0, "{err}");
}

#[test]
fn tls_with_a_private_ca() {
    let (server, token) = setup(ServerOptions {
        tls: true,
        ..Default::default()
    });
    assert!(server.url.starts_with("https://"));
    let (code, out, err) = sh(&server, &token, &[], "printf %s \"$SA_KEY\"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.as_bytes(), PEM);
    // Without the CA the server is not trusted, and that is not "unreachable" forever:
    // bounded retries, then a clear error.
    let mut cmd = launcher(&server, &token, "dify", "prod");
    cmd.env_remove("ENVSEAL_CA_CERT")
        .args(["--retries", "0", "--", "true"]);
    let (code, _, err) = run(&mut cmd, b"");
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach the envseal server"), "{err}");
}

#[test]
fn missing_or_unexecutable_command() {
    let (server, token) = setup(ServerOptions::default());
    for supervise in [false, true] {
        let mut cmd = launcher(&server, &token, "dify", "prod");
        if supervise {
            cmd.arg("--supervise");
        }
        cmd.args(["--quiet", "--", "/nonexistent/envseal-test"]);
        let (code, _, err) = run(&mut cmd, b"");
        assert_eq!(code, 127, "{err}");
        assert!(
            err.contains("cannot execute /nonexistent/envseal-test"),
            "{err}"
        );
        let mut cmd = launcher(&server, &token, "dify", "prod");
        if supervise {
            cmd.arg("--supervise");
        }
        cmd.args(["--quiet", "--", "/dev/null"]);
        let (code, _, err) = run(&mut cmd, b"");
        assert_eq!(code, 126, "{err}");
    }
}

#[test]
fn runs_as_uid_1001_without_a_home_directory() {
    // Dify's images run as UID 1001 with no home: nothing may need $HOME.
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    let has_setpriv = std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !is_root || !has_setpriv {
        eprintln!("SKIPPED runs_as_uid_1001: needs root and setpriv to switch users");
        return;
    }
    let (server, token) = setup(ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    // The build directory may not be reachable for UID 1001: copy the binary.
    let exe = dir.path().join("envseal");
    std::fs::copy(envseal_e2e::bin("envseal"), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fallback = dir.path().join("state").join("api.fallback");
    std::fs::create_dir(fallback.parent().unwrap()).unwrap();
    std::fs::set_permissions(
        fallback.parent().unwrap(),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid", "1001", "--regid", "1001", "--clear-groups", "--"])
        .arg(&exe)
        .args(["run", "-p", "dify", "-e", "prod", "--fallback-path"])
        .arg(&fallback)
        .args([
            "--",
            "sh",
            "-c",
            "test \"$(id -u)\" = 1001 && printf %s \"$DB_PASSWORD\"",
        ])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ENVSEAL_ADDR", &server.url)
        .env("ENVSEAL_TOKEN", &token)
        .current_dir(dir.path());
    let (code, out, err) = run(&mut cmd, b"");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, b"opt-canary-db");
    let meta = std::fs::metadata(&fallback).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 1001);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}
