//! Guard rails of the CLI and launcher, end to end against a real server: export
//! quoting, dangerous and reserved names, empty values, `--only`/`--require` typos,
//! the launcher's own settings, a revoked token's fallback file, plain HTTP, and the
//! messages for TLS ports, rate limits and durations.

use envseal_e2e::{
    create_env, launcher, machine_token, ok, run, set_secret, Server, ServerOptions,
};

fn server_with_env() -> Server {
    let server = Server::start();
    create_env(&server, "dify", "prod");
    server
}

fn set(server: &Server, name: &str, value: &[u8], extra: &[&str]) -> (i32, String) {
    let (code, _, err) = run(
        server
            .cli()
            .args(["secrets", "set", "-p", "dify", "-e", "prod", name, "--raw"])
            .args(extra),
        value,
    );
    (code, err)
}

#[test]
fn export_env_backticks_do_not_run_when_sourced() {
    let server = server_with_env();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let nasty = format!(
        "`touch {0}`$(touch {0})\"\\$HOME\n;touch {0}",
        marker.display()
    );
    set_secret(&server, "dify", "prod", "NASTY", nasty.as_bytes());
    set_secret(&server, "dify", "prod", "PLAIN", b"p@ss w0rd#1");
    let out = ok(
        server
            .cli()
            .args(["export", "-p", "dify", "-e", "prod", "--format", "env"]),
        b"",
    );
    let file = dir.path().join("x.env");
    std::fs::write(&file, &out).unwrap();
    for shell in ["sh", "bash"] {
        let got = ok(
            std::process::Command::new(shell)
                .arg("-c")
                .arg("set -a; . \"$1\"; printf '%s|%s' \"$NASTY\" \"$PLAIN\"")
                .arg(shell)
                .arg(&file),
            b"",
        );
        assert_eq!(
            String::from_utf8(got).unwrap(),
            format!("{nasty}|p@ss w0rd#1"),
            "{shell}"
        );
        assert!(!marker.exists(), "{shell} ran a command from the export");
    }
}

#[test]
fn export_env_refuses_a_value_it_cannot_quote_and_prints_nothing() {
    let server = server_with_env();
    set_secret(&server, "dify", "prod", "A_OK", b"fine");
    set_secret(&server, "dify", "prod", "B_QUOTE", b"it's-canary-q");
    let (code, out, err) = run(
        server.cli().args(["export", "-p", "dify", "-e", "prod"]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(out.is_empty(), "half an export was printed");
    assert!(err.contains("B_QUOTE contains a single quote"), "{err}");
    assert!(err.contains("--format json"), "{err}");
    assert!(!err.contains("canary-q"), "{err}");
    let json = ok(
        server
            .cli()
            .args(["export", "-p", "dify", "-e", "prod", "--format", "json"]),
        b"",
    );
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["B_QUOTE"], "it's-canary-q");
}

#[test]
fn export_only_and_prefix_select_names() {
    let server = server_with_env();
    for n in ["DB_PASSWORD", "DB_USER", "SECRET_KEY"] {
        set_secret(&server, "dify", "prod", n, b"v");
    }
    let args = ["export", "-p", "dify", "-e", "prod", "--format", "json"];
    let out = ok(server.cli().args(args).args(["--prefix", "DB_"]), b"");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["DB_PASSWORD", "DB_USER"]);
    let out = ok(server.cli().args(args).args(["--only", "SECRET_KEY"]), b"");
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v.as_object().unwrap().len(), 1);
    let (code, out, err) = run(server.cli().args(args).args(["--only", "SECRET_KY"]), b"");
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("SECRET_KY (did you mean SECRET_KEY?)"),
        "{err}"
    );
}

#[test]
fn dangerous_names_are_refused_at_write_time_unless_allowed() {
    let server = server_with_env();
    for name in [
        "BASH_ENV",
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "PYTHONSTARTUP",
        "NODE_OPTIONS",
        "PATH",
    ] {
        let (code, err) = set(&server, name, b"/tmp/x", &[]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains("--allow-dangerous-name"), "{name}: {err}");
    }
    // The server refuses on its own too (a client that skips the check).
    let (status, body) = put_raw(&server, "BASH_ENV", r#"{"value":"/tmp/x"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_name"), "{body}");
    let (status, body) = put_raw(
        &server,
        "BASH_ENV",
        r#"{"value":"/tmp/x","allow_dangerous_name":true}"#,
    );
    assert_eq!(status, 200, "{body}");
    let (code, err) = set(
        &server,
        "LD_PRELOAD",
        b"/tmp/x.so",
        &["--allow-dangerous-name"],
    );
    assert_eq!(code, 0, "{err}");
}

fn put_raw(server: &Server, name: &str, body: &str) -> (u16, String) {
    let auth = format!("Bearer {}", server.admin_token);
    let r = envseal_e2e::http(
        &server.url,
        "PUT",
        &format!("/v1/projects/dify/environments/prod/secrets/{name}"),
        &[("Authorization", &auth)],
        Some(body),
    )
    .unwrap();
    (r.status, r.body)
}

#[test]
fn dangerous_names_are_not_delivered_unless_allowed_per_name() {
    let server = server_with_env();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let script = dir.path().join("env.sh");
    std::fs::write(&script, format!("touch {}\n", marker.display())).unwrap();
    let (code, err) = set(
        &server,
        "BASH_ENV",
        script.to_str().unwrap().as_bytes(),
        &["--allow-dangerous-name"],
    );
    assert_eq!(code, 0, "{err}");
    set_secret(&server, "dify", "prod", "SECRET_KEY", b"k");
    let token = machine_token(&server, "dify", "prod");
    let (code, _, err) = run(
        launcher(&server, &token, "dify", "prod").args(["--", "bash", "-c", "true"]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("BASH_ENV"), "{err}");
    assert!(err.contains("--allow-name BASH_ENV"), "{err}");
    assert!(!marker.exists(), "BASH_ENV ran without being allowed");
    // Allowing another name does not allow this one.
    let (code, _, err) = run(
        launcher(&server, &token, "dify", "prod").args([
            "--allow-name",
            "LD_PRELOAD",
            "--",
            "bash",
            "-c",
            "true",
        ]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(
        launcher(&server, &token, "dify", "prod").args([
            "--allow-name",
            "BASH_ENV",
            "--",
            "bash",
            "-c",
            "true",
        ]),
        b"",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        marker.exists(),
        "explicitly allowed BASH_ENV was not delivered"
    );
}

#[test]
fn envseal_prefix_is_reserved_at_write_time() {
    let server = server_with_env();
    let (code, err) = set(&server, "ENVSEAL_X", b"v", &["--allow-dangerous-name"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("reserved"), "{err}");
    let (status, body) = put_raw(
        &server,
        "ENVSEAL_X",
        r#"{"value":"v","allow_dangerous_name":true}"#,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("reserved"), "{body}");
}

#[test]
fn empty_stdin_does_not_replace_a_value() {
    let server = server_with_env();
    set_secret(&server, "dify", "prod", "SECRET_KEY", b"keep-me");
    for input in [&b""[..], b"\n"] {
        let (code, _, err) = run(
            server
                .cli()
                .args(["secrets", "set", "-p", "dify", "-e", "prod", "SECRET_KEY"]),
            input,
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--allow-empty"), "{err}");
    }
    let value = ok(
        server.cli().args([
            "secrets",
            "get",
            "-p",
            "dify",
            "-e",
            "prod",
            "SECRET_KEY",
            "--reveal",
        ]),
        b"",
    );
    assert_eq!(value, b"keep-me");
    let (code, err) = set(&server, "EMPTY_OK", b"", &["--allow-empty"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn run_only_typo_fails_with_did_you_mean() {
    let server = server_with_env();
    set_secret(&server, "dify", "prod", "SECRET_KEY", b"k");
    let token = machine_token(&server, "dify", "prod");
    for flag in ["--only", "--require"] {
        let (code, _, err) = run(
            launcher(&server, &token, "dify", "prod").args([flag, "SECRET_KY", "--", "true"]),
            b"",
        );
        assert_eq!(code, 2, "{flag}: {err}");
        assert!(
            err.contains("SECRET_KY: did you mean SECRET_KEY?"),
            "{flag}: {err}"
        );
    }
}

#[test]
fn child_gets_no_launcher_settings_unless_passed() {
    let server = server_with_env();
    set_secret(&server, "dify", "prod", "SECRET_KEY", b"k");
    let token = machine_token(&server, "dify", "prod");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let script = "env | grep '^ENVSEAL_' | cut -d= -f1 | sort | tr '\\n' ' '";
    let mut cmd = launcher(&server, &token, "dify", "prod");
    cmd.env_remove("ENVSEAL_TOKEN")
        .env("ENVSEAL_TOKEN_FILE", &token_file)
        .env("ENVSEAL_CUSTOM", "x");
    let out = ok(cmd.args(["--", "sh", "-c", script]), b"");
    assert_eq!(String::from_utf8(out).unwrap().trim(), "");
    let mut cmd = launcher(&server, &token, "dify", "prod");
    cmd.env("ENVSEAL_CUSTOM", "x");
    let out = ok(
        cmd.args([
            "--pass-env",
            "ENVSEAL_CUSTOM,ENVSEAL_ADDR",
            "--",
            "sh",
            "-c",
            script,
        ]),
        b"",
    );
    assert_eq!(
        String::from_utf8(out).unwrap().trim(),
        "ENVSEAL_ADDR ENVSEAL_CUSTOM"
    );
    let (code, _, err) = run(
        launcher(&server, &token, "dify", "prod").args([
            "--pass-env",
            "ENVSEAL_TOKEN",
            "--",
            "true",
        ]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
}

#[test]
fn revoked_token_deletes_its_fallback_file() {
    let server = server_with_env();
    set_secret(&server, "dify", "prod", "SECRET_KEY", b"k");
    let out = ok(
        server.cli().args([
            "tokens", "create", "--name", "l", "-p", "dify", "-e", "prod",
        ]),
        b"",
    );
    let token = String::from_utf8(out).unwrap().trim().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("api.fallback");
    let fb = ["--fallback-path", fallback.to_str().unwrap()];
    ok(
        launcher(&server, &token, "dify", "prod")
            .args(fb)
            .args(["--", "true"]),
        b"",
    );
    assert!(fallback.exists());
    let list = String::from_utf8(ok(server.cli().args(["tokens", "list"]), b"")).unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("\tl\t"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    ok(server.cli().args(["tokens", "revoke", &id]), b"");
    let (code, _, err) = run(
        launcher(&server, &token, "dify", "prod")
            .args(fb)
            .args(["--", "true"]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("deleted the fallback file"), "{err}");
    assert!(
        !fallback.exists(),
        "the revoked token's fallback file is still there"
    );
}

#[test]
fn plain_http_to_a_remote_host_is_refused_unless_insecure_http() {
    let server = server_with_env();
    for addr in ["http://192.0.2.1:8420", "http://envseal.example:8420"] {
        let started = std::time::Instant::now();
        let (code, _, err) = run(
            server
                .cli()
                .env("ENVSEAL_ADDR", addr)
                .args(["secrets", "list", "-p", "dify", "-e", "prod"]),
            b"",
        );
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("refusing plain http://"), "{err}");
        assert!(err.contains("--insecure-http"), "{err}");
        assert!(!err.contains(&server.admin_token), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
    // With the flag the request is attempted (and fails to connect here).
    let (code, _, err) = run(
        server
            .cli()
            .env("ENVSEAL_ADDR", "http://192.0.2.1:8420")
            .args([
                "--insecure-http",
                "--timeout",
                "300ms",
                "secrets",
                "list",
                "-p",
                "dify",
                "-e",
                "prod",
            ]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach"), "{err}");
    // Loopback stays allowed.
    ok(
        server
            .cli()
            .args(["secrets", "list", "-p", "dify", "-e", "prod"]),
        b"",
    );
}

#[test]
fn plain_http_to_the_tls_port_says_use_https() {
    let server = Server::start_with(ServerOptions {
        tls: true,
        ..ServerOptions::default()
    });
    let plain = server.url.replace("https://", "http://");
    let (code, _, err) = run(
        server
            .cli()
            .env("ENVSEAL_ADDR", &plain)
            .args(["projects", "list"]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("this server speaks TLS; use https://"),
        "{err}"
    );
    assert!(!err.contains("[21, 3"), "{err}");
}

#[test]
fn rate_limited_answers_show_retry_after() {
    let server = Server::start_with(ServerOptions {
        env: vec![
            ("ENVSEAL_LOGIN_LIMIT_IP".into(), "1".into()),
            ("ENVSEAL_ARGON2_MEMORY_KIB".into(), "1024".into()),
            ("ENVSEAL_ARGON2_ITERATIONS".into(), "1".into()),
        ],
        ..ServerOptions::default()
    });
    let mut last = String::new();
    for _ in 0..4 {
        let (_, _, err) = run(
            server
                .cli()
                .args(["login", "-u", "nobody", "--password-stdin"]),
            b"wrong\n",
        );
        last = err;
        if last.contains("429") {
            break;
        }
    }
    assert!(last.contains("429"), "{last}");
    assert!(last.contains("retry after"), "{last}");
}

#[test]
fn tokens_create_ttl_takes_a_human_duration() {
    let server = server_with_env();
    for ttl in ["1h", "90m", "3600", "1h30m"] {
        ok(
            server.cli().args([
                "tokens", "create", "--name", "t", "-p", "dify", "-e", "prod", "--ttl", ttl,
            ]),
            b"",
        );
    }
    let (code, _, err) = run(
        server.cli().args([
            "tokens", "create", "--name", "t", "-p", "dify", "-e", "prod", "--ttl", "0",
        ]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("positive duration"), "{err}");
}

#[test]
fn fallback_max_age_message_reads_as_a_duration() {
    let server = server_with_env();
    let (code, _, err) = run(
        launcher(&server, "est_x", "dify", "prod").args(["--fallback-max-age", "0", "--", "true"]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("0ns"), "{err}");
    assert!(err.contains("positive duration"), "{err}");
}
