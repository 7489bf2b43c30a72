//! End-to-end: the real server binary driven by the real CLI.

use envseal_e2e::{ok, run, Server, ServerOptions};

/// A canary that must never appear anywhere on disk or in logs.
fn canary(i: usize) -> String {
    format!("canary-{i}-7c1e0a55d2b84f1f9a3e")
}

fn setup(server: &Server) {
    ok(server.cli().args(["projects", "create", "dify"]), b"");
    ok(
        server.cli().args(["projects", "add-env", "dify", "prod"]),
        b"",
    );
    ok(
        server
            .cli()
            .args(["projects", "add-env", "dify", "staging"]),
        b"",
    );
}

fn set(server: &Server, env: &str, name: &str, value: &[u8]) {
    let mut cmd = server.cli();
    cmd.args(["secrets", "set", "-p", "dify", "-e", env, name, "--raw"]);
    if value.is_empty() {
        cmd.arg("--allow-empty");
    }
    ok(&mut cmd, value);
}

#[test]
fn fifty_secrets_round_trip_over_tls_byte_for_byte() {
    let server = Server::start_with(ServerOptions {
        tls: true,
        ..Default::default()
    });
    assert!(server.url.starts_with("https://"), "{}", server.url);
    setup(&server);
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\r\nBKcwggSjAgEAAoIBAQ\n-----END PRIVATE KEY-----\n";
    let mut expected = serde_json::Map::new();
    for i in 0..50 {
        let name = format!("SECRET_{i:02}");
        let value = match i {
            0 => pem.to_owned(),
            1 => "p#ss w0rd$with\"quotes'and\\backslash".to_owned(),
            2 => String::new(),
            3 => "ünïcødé ✓".to_owned(),
            _ => canary(i),
        };
        set(&server, "prod", &name, value.as_bytes());
        expected.insert(name, serde_json::Value::String(value));
    }
    let out = ok(
        server
            .cli()
            .args(["export", "-p", "dify", "-e", "prod", "--format", "json"]),
        b"",
    );
    let got: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(got, expected);

    // The PEM survives byte for byte through `get --reveal` too.
    let out = ok(
        server.cli().args([
            "secrets",
            "get",
            "-p",
            "dify",
            "-e",
            "prod",
            "SECRET_00",
            "--reveal",
        ]),
        b"",
    );
    assert_eq!(out, pem.as_bytes());

    // Without --reveal, no value is printed.
    let out = ok(
        server
            .cli()
            .args(["secrets", "get", "-p", "dify", "-e", "prod", "SECRET_10"]),
        b"",
    );
    assert!(!String::from_utf8_lossy(&out).contains(&canary(10)));

    // Without trusting the self-signed CA, TLS is refused.
    let (code, _, err) = run(
        server
            .cli()
            .env_remove("ENVSEAL_CA_CERT")
            .args(["projects", "list"]),
        b"",
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}

#[test]
fn binary_values_survive() {
    let server = Server::start();
    setup(&server);
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, &binary).unwrap();
    ok(
        server
            .cli()
            .args([
                "secrets",
                "set",
                "-p",
                "dify",
                "-e",
                "prod",
                "BLOB",
                "--from-file",
            ])
            .arg(&file),
        b"",
    );
    let out = ok(
        server.cli().args([
            "secrets", "get", "-p", "dify", "-e", "prod", "BLOB", "--reveal",
        ]),
        b"",
    );
    assert_eq!(out, binary);
    // .env export cannot carry binary: a clear error, not mangled output.
    let (code, _, err) = run(
        server.cli().args(["export", "-p", "dify", "-e", "prod"]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(err.contains("BLOB is binary"), "{err}");
}

#[test]
fn canary_never_on_disk_or_in_logs() {
    let mut server = Server::start();
    setup(&server);
    for i in 0..20 {
        set(&server, "prod", &format!("K{i}"), canary(i).as_bytes());
    }
    // Reads, history, rollback and delete all run through the log too.
    ok(
        server.cli().args(["export", "-p", "dify", "-e", "prod"]),
        b"",
    );
    set(&server, "prod", "K0", canary(100).as_bytes());
    ok(
        server
            .cli()
            .args(["secrets", "rollback", "-p", "dify", "-e", "prod", "K0", "1"]),
        b"",
    );
    ok(
        server
            .cli()
            .args(["secrets", "rm", "-p", "dify", "-e", "prod", "K1"]),
        b"",
    );
    let log_before_stop = server.log();
    server.kill(); // no checkpoint: the WAL keeps everything
    let mut haystack = log_before_stop.into_bytes();
    let mut files = 0;
    for entry in std::fs::read_dir(&server.data_dir).unwrap() {
        let path = entry.unwrap().path();
        haystack.extend(std::fs::read(&path).unwrap());
        files += 1;
    }
    assert!(files >= 3, "expected db, wal and key files");
    for i in (0..20).chain([100]) {
        let c = canary(i);
        assert!(
            !haystack.windows(c.len()).any(|w| w == c.as_bytes()),
            "canary {c} found on disk or in the log"
        );
    }
}

#[test]
fn wrong_master_key_refuses_to_start_and_touches_nothing() {
    let mut server = Server::start();
    setup(&server);
    set(&server, "prod", "A", b"value");
    server.stop();
    let data = server.data_dir.clone();
    let db = std::fs::read(data.join("envseal.db")).unwrap();
    // Replace the master key with another valid key.
    let key_path = data.join("master.key");
    std::fs::remove_file(&key_path).unwrap();
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("k");
    // A fresh server creates a fresh key; borrow it.
    {
        let s2 = Server::start_with(ServerOptions {
            args: vec!["--master-key-file".into(), other_key.display().to_string()],
            ..Default::default()
        });
        drop(s2);
    }
    std::fs::copy(&other_key, &key_path).unwrap();
    let mut cmd = std::process::Command::new(envseal_e2e::bin("envseal-server"));
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data)
        .env_remove("ENVSEAL_DATABASE_URL")
        .env_remove("ENVSEAL_MASTER_PASSPHRASE");
    let (code, _, err) = run(&mut cmd, b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("master key does not match"), "{err}");
    assert_eq!(
        std::fs::read(data.join("envseal.db")).unwrap(),
        db,
        "database changed"
    );
}

#[test]
fn restart_keeps_everything_and_kill_loses_no_acknowledged_write() {
    let mut server = Server::start();
    setup(&server);
    for i in 0..10 {
        set(
            &server,
            "prod",
            &format!("K{i}"),
            format!("v{i}").as_bytes(),
        );
    }
    let data = server.data_dir.clone();
    let token = server.admin_token.clone();
    server.kill(); // SIGKILL right after the last acknowledged write
    let server = Server::start_with(ServerOptions {
        data_dir: Some(data),
        admin_token: Some(token),
        ..Default::default()
    });
    let out = ok(
        server
            .cli()
            .args(["export", "-p", "dify", "-e", "prod", "--format", "json"]),
        b"",
    );
    let got: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(got.len(), 10);
    for i in 0..10 {
        assert_eq!(got[&format!("K{i}")], format!("v{i}"));
    }
}

#[test]
fn scoped_tokens_cannot_cross_environments_and_revocation_is_immediate() {
    let server = Server::start();
    setup(&server);
    set(&server, "prod", "A", b"prod-value");
    set(&server, "staging", "A", b"staging-value");
    let token = String::from_utf8(ok(
        server.cli().args([
            "tokens", "create", "--name", "dify-api", "-p", "dify", "-e", "staging",
        ]),
        b"",
    ))
    .unwrap()
    .trim()
    .to_owned();
    assert!(token.starts_with("est_"));
    let get = |env: &str| {
        run(
            server
                .cli_with_token(&token)
                .args(["secrets", "get", "-p", "dify", "-e", env, "A", "--reveal"]),
            b"",
        )
    };
    let (code, out, _) = get("staging");
    assert_eq!((code, out.as_slice()), (0, &b"staging-value"[..]));
    let (code, out, err) = get("prod");
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("403"), "{err}");
    // Read-only: writes are refused.
    let (code, _, err) = run(
        server
            .cli_with_token(&token)
            .args(["secrets", "set", "-p", "dify", "-e", "staging", "A"]),
        b"x",
    );
    assert_eq!(code, 2);
    assert!(err.contains("403"), "{err}");
    // Revoke by id, found through the list.
    let list = String::from_utf8(ok(server.cli().args(["tokens", "list"]), b"")).unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("dify-api"))
        .and_then(|l| l.split('\t').next())
        .unwrap()
        .to_owned();
    assert!(
        !list.contains(&token),
        "token list must not show token values"
    );
    ok(server.cli().args(["tokens", "revoke", &id]), b"");
    let (code, _, err) = get("staging");
    assert_eq!(code, 2);
    assert!(err.contains("401"), "{err}");
}

#[test]
fn expired_token_is_refused() {
    let server = Server::start();
    setup(&server);
    set(&server, "prod", "A", b"v");
    let token = String::from_utf8(ok(
        server.cli().args([
            "tokens", "create", "--name", "short", "-p", "dify", "-e", "prod", "--ttl", "1",
        ]),
        b"",
    ))
    .unwrap()
    .trim()
    .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, _, err) = run(
        server
            .cli_with_token(&token)
            .args(["secrets", "get", "-p", "dify", "-e", "prod", "A"]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(err.contains("token expired"), "{err}");
}

#[test]
fn postgres_backend_end_to_end() {
    let Some(url) = envseal_e2e::postgres_url("postgres_backend_end_to_end") else {
        return;
    };
    let server = Server::start_with(ServerOptions {
        database_url: Some(url),
        ..Default::default()
    });
    setup(&server);
    set(&server, "prod", "DB_PASSWORD", b"pg-value\n");
    let out = ok(
        server.cli().args([
            "secrets",
            "get",
            "-p",
            "dify",
            "-e",
            "prod",
            "DB_PASSWORD",
            "--reveal",
        ]),
        b"",
    );
    assert_eq!(out, b"pg-value\n");
}

#[test]
fn ten_mebibyte_body_is_refused_cleanly_over_a_real_socket() {
    use std::io::{Read as _, Write as _};
    let server = Server::start();
    setup(&server);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let body = format!("{{\"value\":\"{}\"}}", "a".repeat(10 * 1024 * 1024));
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "PUT /v1/projects/dify/environments/prod/secrets/BIG HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        server.admin_token,
        body.len()
    )
    .unwrap();
    // The server may answer and close before the whole body is sent.
    let _ = stream.write_all(body.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // The server is still healthy and stored nothing.
    let (code, _, err) = run(
        server
            .cli()
            .args(["secrets", "get", "-p", "dify", "-e", "prod", "BIG"]),
        b"",
    );
    assert_eq!(code, 2);
    assert!(err.contains("404"), "{err}");
}

#[test]
fn cli_refuses_oversized_values_before_sending() {
    let server = Server::start();
    setup(&server);
    let big = vec![b'a'; envseal_core::MAX_VALUE_BYTES + 1];
    let (code, _, err) = run(
        server
            .cli()
            .args(["secrets", "set", "-p", "dify", "-e", "prod", "BIG", "--raw"]),
        &big,
    );
    assert_eq!(code, 2);
    assert!(err.contains("at most 262144 bytes"), "{err}");
}

#[test]
fn passphrase_master_key_survives_restart_and_a_wrong_one_is_refused() {
    let passphrase = (
        "ENVSEAL_MASTER_PASSPHRASE".to_owned(),
        "correct horse battery staple".to_owned(),
    );
    let mut server = Server::start_with(ServerOptions {
        env: vec![passphrase.clone()],
        ..Default::default()
    });
    setup(&server);
    set(&server, "prod", "A", b"pass-value");
    assert!(
        !server.data_dir.join("master.key").exists(),
        "no key file in passphrase mode"
    );
    let data = server.data_dir.clone();
    let token = server.admin_token.clone();
    server.stop();
    let server = Server::start_with(ServerOptions {
        env: vec![passphrase],
        data_dir: Some(data.clone()),
        admin_token: Some(token),
        ..Default::default()
    });
    let out = ok(
        server.cli().args([
            "secrets", "get", "-p", "dify", "-e", "prod", "A", "--reveal",
        ]),
        b"",
    );
    assert_eq!(out, b"pass-value");
    drop(server);
    let mut cmd = std::process::Command::new(envseal_e2e::bin("envseal-server"));
    cmd.arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(&data)
        .env_remove("ENVSEAL_DATABASE_URL")
        .env("ENVSEAL_MASTER_PASSPHRASE", "wrong horse battery staple");
    let (code, _, err) = run(&mut cmd, b"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("master key does not match"), "{err}");
}
