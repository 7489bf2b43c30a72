//! Two real `envseal-server` processes on one PostgreSQL schema and one Redis: login
//! failures on one count on the other, a lockout made on one holds on the other, a
//! session from one works on the other, and the audit log stays one chain.

use envseal_e2e::{http, ok, postgres_url, redis_prefix, redis_url, run, Server, ServerOptions};

const PW: &str = "replica-test-password-7";

fn login(server: &Server, user: &str, password: &str) -> envseal_e2e::HttpResponse {
    let body = serde_json::json!({ "username": user, "password": password }).to_string();
    http(&server.url, "POST", "/v1/auth/login", &[], Some(&body)).unwrap()
}

fn locked(server: &Server, user: &str) -> bool {
    let auth = format!("Bearer {}", server.admin_token);
    let r = http(
        &server.url,
        "GET",
        &format!("/v1/users/{user}"),
        &[("Authorization", &auth)],
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["locked"].as_bool().unwrap()
}

#[test]
fn two_servers_on_one_postgres_and_one_redis_share_failures_and_lockouts() {
    let test = "two_servers_on_one_postgres_and_one_redis_share_failures_and_lockouts";
    let Some(pg) = postgres_url(test) else { return };
    let Some(redis) = redis_url(test) else { return };
    let opts = ServerOptions {
        database_url: Some(pg),
        admin_token: Some(format!(
            "est_admin_replicas_{}",
            redis_prefix().replace('-', "_")
        )),
        env: vec![
            (
                "ENVSEAL_MASTER_PASSPHRASE".into(),
                "one passphrase for both replicas".into(),
            ),
            ("ENVSEAL_REDIS_URL".into(), redis),
            ("ENVSEAL_REDIS_PREFIX".into(), redis_prefix()),
            ("ENVSEAL_LOGIN_LIMIT_IP".into(), "100".into()),
            ("ENVSEAL_ARGON2_MEMORY_KIB".into(), "1024".into()),
            ("ENVSEAL_ARGON2_ITERATIONS".into(), "1".into()),
        ],
        ..Default::default()
    };
    let a = Server::start_with(opts.clone());
    let b = Server::start_with(opts);
    assert!(
        a.log().contains("backend=\"redis\"") || a.log().contains("backend=redis"),
        "{}",
        a.log()
    );

    ok(
        a.cli().args([
            "users",
            "create",
            "alice",
            "--role",
            "viewer",
            "--password-stdin",
        ]),
        PW.as_bytes(),
    );

    // 2 failures on A and 3 on B: 5 consecutive failures lock alice on both.
    for _ in 0..2 {
        assert_eq!(login(&a, "alice", "wrong-password-1").status, 401);
    }
    assert!(!locked(&b, "alice"));
    for _ in 0..3 {
        assert_eq!(login(&b, "alice", "wrong-password-1").status, 401);
    }
    assert!(locked(&a, "alice"), "failures on B did not count on A");
    assert!(locked(&b, "alice"));

    // The lockout made through B holds on A (the right password is refused), and an
    // unlock on B frees A. The account window (5/min) is full, so a right password
    // answers 429 until it frees; either way, never a session.
    let r = login(&a, "alice", PW);
    assert!(
        r.status == 401 || r.status == 429,
        "{} {}",
        r.status,
        r.body
    );
    ok(b.cli().args(["users", "unlock", "alice"]), b"");
    assert!(!locked(&a, "alice"));

    // Sessions made on one replica are valid on the other.
    ok(
        a.cli().args([
            "users",
            "create",
            "bob",
            "--role",
            "admin",
            "--password-stdin",
        ]),
        PW.as_bytes(),
    );
    let token = String::from_utf8(ok(
        a.cli().args(["login", "-u", "bob", "--password-stdin"]),
        PW.as_bytes(),
    ))
    .unwrap();
    let token = token.trim();
    let who = ok(b.cli_with_token(token).args(["whoami"]), b"");
    assert!(String::from_utf8_lossy(&who).starts_with("bob\tuser"));

    // One audit chain, written by both servers.
    let out = ok(b.cli().args(["audit", "verify"]), b"");
    assert!(
        String::from_utf8_lossy(&out).starts_with("ok: "),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let export = String::from_utf8(ok(a.cli().args(["audit", "export"]), b"")).unwrap();
    let starts = export
        .lines()
        .filter(|l| l.contains("\"server.start\""))
        .count();
    assert_eq!(starts, 2, "both servers append to one chain");
    let failures = export
        .lines()
        .filter(|l| l.contains("\"auth.login\"") && l.contains("\"bad_password\""))
        .count();
    assert_eq!(failures, 5);
    let (code, _, _) = run(a.cli().args(["audit", "verify"]), b"");
    assert_eq!(code, 0);
}
