//! The people commands end to end: `users`, `login`, `whoami`, `passwd`, `logout`,
//! `audit tail|export|verify`.

use envseal_e2e::{ok, run, Server, ServerOptions};

const PW: &str = "cli-test-password-42";
const CANARY: &str = "canary-3b1f9e77c2d04a8e-cli";

#[test]
fn users_login_and_audit_from_the_command_line() {
    let server = Server::start_with(ServerOptions {
        env: vec![
            ("ENVSEAL_ARGON2_MEMORY_KIB".into(), "1024".into()),
            ("ENVSEAL_ARGON2_ITERATIONS".into(), "1".into()),
        ],
        ..Default::default()
    });
    ok(server.cli().args(["projects", "create", "dify"]), b"");
    ok(
        server.cli().args(["projects", "add-env", "dify", "prod"]),
        b"",
    );
    ok(
        server.cli().args([
            "secrets",
            "set",
            "-p",
            "dify",
            "-e",
            "prod",
            "SECRET_KEY",
            "--raw",
        ]),
        CANARY.as_bytes(),
    );

    // A weak password is refused with the rule, never the password.
    let (code, _, err) = run(
        server.cli().args([
            "users",
            "create",
            "alice",
            "--role",
            "operator",
            "-p",
            "dify",
            "--password-stdin",
        ]),
        b"short\n",
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("weak_password") && !err.contains("short\n"),
        "{err}"
    );
    let out = ok(
        server.cli().args([
            "users",
            "create",
            "alice",
            "--role",
            "operator",
            "-p",
            "dify",
            "--password-stdin",
        ]),
        format!("{PW}\n").as_bytes(),
    );
    assert!(String::from_utf8_lossy(&out).starts_with("alice\tdify:operator"));

    let token = String::from_utf8(ok(
        server
            .cli()
            .args(["login", "-u", "alice", "--password-stdin"]),
        PW.as_bytes(),
    ))
    .unwrap();
    let token = token.trim().to_owned();
    assert!(token.starts_with("ess_"));
    let who = ok(server.cli_with_token(&token).args(["whoami"]), b"");
    assert_eq!(
        String::from_utf8_lossy(&who),
        "alice\tuser\ndify\toperator\n"
    );
    // The operator reads its project's secrets.
    let v = ok(
        server.cli_with_token(&token).args([
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
    assert_eq!(v, CANARY.as_bytes());
    // Not users.
    let (code, _, err) = run(server.cli_with_token(&token).args(["users", "list"]), b"");
    assert_eq!(code, 2, "{err}");

    // Wrong password: the generic answer.
    let (code, _, err) = run(
        server
            .cli()
            .args(["login", "-u", "alice", "--password-stdin"]),
        b"nope-nope-nope\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("invalid_credentials"), "{err}");
    let (code, _, err) = run(
        server
            .cli()
            .args(["login", "-u", "nobody", "--password-stdin"]),
        b"nope-nope-nope\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("invalid_credentials"), "{err}");

    // passwd ends the session.
    ok(
        server.cli_with_token(&token).args(["passwd"]),
        format!("{PW}\nanother-cli-password-43\n").as_bytes(),
    );
    let (code, _, _) = run(server.cli_with_token(&token).args(["whoami"]), b"");
    assert_eq!(code, 2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session");
    ok(
        server
            .cli()
            .args(["login", "-u", "alice", "--password-stdin", "--save"])
            .arg(&file),
        b"another-cli-password-43\n",
    );
    ok(
        server
            .cli()
            .env_remove("ENVSEAL_TOKEN")
            .arg("--token-file")
            .arg(&file)
            .args(["whoami"]),
        b"",
    );
    ok(
        server
            .cli()
            .env_remove("ENVSEAL_TOKEN")
            .arg("--token-file")
            .arg(&file)
            .args(["logout"]),
        b"",
    );
    let (code, _, _) = run(
        server
            .cli()
            .env_remove("ENVSEAL_TOKEN")
            .arg("--token-file")
            .arg(&file)
            .args(["whoami"]),
        b"",
    );
    assert_eq!(code, 2);

    let list = String::from_utf8(ok(server.cli().args(["users", "list"]), b"")).unwrap();
    assert!(
        list.contains("alice\tdify:operator\tmfa=off\tactive"),
        "{list}"
    );
    ok(
        server
            .cli()
            .args(["users", "set-roles", "alice", "--grant", "dify:viewer"]),
        b"",
    );

    // Audit: JSON lines, a valid chain, no value anywhere.
    let tail = String::from_utf8(ok(server.cli().args(["audit", "tail", "-n", "3"]), b"")).unwrap();
    assert_eq!(tail.lines().count(), 3);
    for line in tail.lines() {
        let e: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(e["hash"].as_str().unwrap().len() == 64);
    }
    let export = String::from_utf8(ok(server.cli().args(["audit", "export"]), b"")).unwrap();
    assert!(export.lines().count() > 10);
    assert!(export.contains("\"secret.read\""));
    assert!(!export.contains(CANARY));
    assert!(!export.contains(PW));
    assert!(!export.contains(&token));
    let out = String::from_utf8(ok(server.cli().args(["audit", "verify"]), b"")).unwrap();
    assert!(out.starts_with("ok: "), "{out}");
    let (code, out, _) = run(
        server
            .cli()
            .args(["audit", "verify", "--expect-min-seq", "100000"]),
        b"",
    );
    assert_eq!(code, 1);
    assert!(String::from_utf8_lossy(&out).contains("truncated"));
    assert!(!server.log().contains(CANARY));
    assert!(!server.log().contains(PW));
}
