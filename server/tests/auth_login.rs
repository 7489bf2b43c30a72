//! Login: identical answers for unknown users, wrong passwords and locked accounts;
//! rate limits before any argon2 work; lockout and admin unlock; trusted proxies;
//! sessions (bearer and cookie), logout and expiry; the password policy.

mod common;

use common::{auth_with, fresh_ip, harness, Resp, ADMIN};
use envseal_server::login::AuthConfig;
use std::time::Duration;

const PW: &str = "correct-horse-battery-9";

fn relaxed() -> AuthConfig {
    let mut c = AuthConfig::default();
    c.limits.per_ip = 10_000;
    c.limits.per_account = 10_000;
    c.limits.global = 10_000;
    c
}

/// Status, body and the headers a client could tell apart by.
fn shape(r: &Resp) -> (u16, serde_json::Value, Vec<(String, String)>) {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| *k != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    headers.sort();
    (r.status.as_u16(), r.json.clone(), headers)
}

#[tokio::test]
async fn unknown_user_wrong_password_and_locked_account_look_the_same() {
    for b in common::backends("unknown_user_wrong_password_and_locked_account_look_the_same").await
    {
        let h = harness(&b.store, auth_with(relaxed())).await;
        h.create_user("alice", PW, &[("*", "viewer")]).await;
        let hasher = &h.state.auth.hasher;

        let before = hasher.computations();
        let unknown = h
            .login("mallory", "whatever-password", None, &fresh_ip())
            .await;
        assert_eq!(
            hasher.computations(),
            before + 1,
            "unknown user: one argon2 run"
        );
        let wrong = h
            .login("alice", "whatever-password", None, &fresh_ip())
            .await;
        assert_eq!(
            hasher.computations(),
            before + 2,
            "wrong password: one argon2 run"
        );
        assert_eq!(unknown.status, 401);
        assert_eq!(unknown.json["code"], "invalid_credentials");
        assert_eq!(shape(&unknown), shape(&wrong), "{}", b.name);

        // Five failures lock alice; then even the right password answers the same.
        for _ in 0..4 {
            h.login("alice", "nope-nope-nope", None, &fresh_ip()).await;
        }
        let locked = h.login("alice", PW, None, &fresh_ip()).await;
        assert_eq!(shape(&locked), shape(&wrong), "{}", b.name);
        // Unknown names lock the same way (nothing to learn from lockouts either).
        for _ in 0..5 {
            h.login("mallory", "x-x-x-x-x-x", None, &fresh_ip()).await;
        }
        assert_eq!(
            shape(&h.login("mallory", "y", None, &fresh_ip()).await),
            shape(&wrong)
        );

        // Timing: both paths run one argon2 verification of the same cost.
        let mut unknown_t = Vec::new();
        let mut wrong_t = Vec::new();
        for i in 0..9 {
            let name = format!("timing{i}");
            let t = std::time::Instant::now();
            h.login(&name, "wrong-password-x", None, &fresh_ip()).await;
            unknown_t.push(t.elapsed());
            if i == 0 {
                h.create_user("bob", PW, &[]).await;
            }
            let t = std::time::Instant::now();
            h.login("bob", &format!("wrong-password-{i}"), None, &fresh_ip())
                .await;
            wrong_t.push(t.elapsed());
            h.call(
                "POST",
                "/v1/users/bob/unlock",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        }
        unknown_t.sort();
        wrong_t.sort();
        let (u, w) = (unknown_t[4].as_secs_f64(), wrong_t[4].as_secs_f64());
        assert!(
            u / w < 4.0 && w / u < 4.0,
            "median unknown {u}s vs wrong {w}s"
        );

        // Admin unlock lets the right password in again.
        let r = h
            .call(
                "POST",
                "/v1/users/alice/unlock",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(h.login("alice", PW, None, &fresh_ip()).await.status, 200);

        // The audit log tells the truth that the answers hide.
        let reasons: Vec<String> = h
            .audit_rows()
            .await
            .into_iter()
            .filter(|r| r.action == "auth.login")
            .map(|r| r.reason)
            .collect();
        for reason in ["unknown_user", "bad_password", "locked"] {
            assert!(
                reasons.iter().any(|r| r == reason),
                "{reason} in {reasons:?}"
            );
        }
        assert!(h
            .audit_rows()
            .await
            .iter()
            .any(|r| r.action == "auth.lockout" && r.target == "alice"));
    }
}

#[tokio::test]
async fn limits_refuse_before_argon2_with_retry_after() {
    for b in common::backends("limits_refuse_before_argon2_with_retry_after").await {
        let h = harness(&b.store, auth_with(AuthConfig::default())).await;
        h.create_user("alice", PW, &[]).await;
        let hasher = &h.state.auth.hasher;

        // Per address: 10 a minute, whatever the names.
        for i in 0..10 {
            let r = h
                .login(&format!("u{i}"), "bad-password-1", None, "198.51.100.7")
                .await;
            assert_eq!(r.status, 401, "attempt {i}");
        }
        let before = hasher.computations();
        let r = h.login("u99", "bad-password-1", None, "198.51.100.7").await;
        assert_eq!(r.status, 429);
        assert_eq!(r.json["code"], "rate_limited");
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        assert_eq!(
            hasher.computations(),
            before,
            "no argon2 work for a refused attempt"
        );

        // Per account: 5 a minute, whatever the addresses (the 5 failures also lock it).
        for _ in 0..5 {
            assert_eq!(
                h.login("alice", "bad-password-2", None, &fresh_ip())
                    .await
                    .status,
                401
            );
        }
        let r = h.login("alice", PW, None, &fresh_ip()).await;
        assert_eq!(r.status, 429);
        // An unknown name is limited exactly the same way.
        for _ in 0..5 {
            h.login("nobody", "bad-password-2", None, &fresh_ip()).await;
        }
        assert_eq!(h.login("nobody", PW, None, &fresh_ip()).await.status, 429);

        // Global: 100 a minute; 10 + 5 + 5 used so far.
        let mut statuses = Vec::new();
        for i in 0..100 {
            statuses.push(
                h.login(&format!("g{i}"), "bad-password-3", None, &fresh_ip())
                    .await
                    .status
                    .as_u16(),
            );
        }
        assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 80);
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20);
        assert_eq!(
            hasher.computations(),
            100 + 1,
            "argon2 ran only for admitted attempts (+1 at user creation)"
        );
    }
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let b = common::backends("forwarded_for_is_believed_only_from_a_trusted_proxy")
        .await
        .remove(0);
    // Untrusted peer: the header is ignored, all attempts share the peer's window.
    let h = harness(&b.store, auth_with(AuthConfig::default())).await;
    for i in 0..10 {
        let fwd = format!("203.0.113.{i}");
        let r = h
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(serde_json::json!({"username": format!("x{i}"), "password": "p"})),
                "192.0.2.1",
                &[("x-forwarded-for", &fwd)],
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let r = h
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(serde_json::json!({"username": "y", "password": "p"})),
            "192.0.2.1",
            &[("x-forwarded-for", "203.0.113.200")],
        )
        .await;
    assert_eq!(
        r.status, 429,
        "spoofed X-Forwarded-For must not escape the limit"
    );

    // Trusted proxy: each forwarded client has its own window, recorded in the audit.
    let c = AuthConfig {
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        ..AuthConfig::default()
    };
    let b2 = common::backends("forwarded_for_trusted").await.remove(0);
    let h = harness(&b2.store, auth_with(c)).await;
    for i in 0..12 {
        let fwd = format!("203.0.113.{i}");
        let r = h
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(serde_json::json!({"username": format!("x{i}"), "password": "p"})),
                "127.0.0.1",
                &[("x-forwarded-for", &fwd), ("user-agent", "probe/1.0")],
            )
            .await;
        assert_eq!(r.status, 401);
    }
    let rows = h.audit_rows().await;
    let last = rows
        .iter()
        .rev()
        .find(|r| r.action == "auth.login")
        .unwrap();
    assert_eq!(last.ip, "203.0.113.11");
    assert_eq!(last.user_agent, "probe/1.0");
    assert_eq!(last.result, "failure");
}

#[tokio::test]
async fn sessions_bearer_cookie_logout_and_expiry() {
    for b in common::backends("sessions_bearer_cookie_logout_and_expiry").await {
        let mut c = relaxed();
        c.session_ttl = Duration::from_secs(2);
        let h = harness(&b.store, auth_with(c)).await;
        h.create_user("alice", PW, &[("*", "viewer")]).await;

        // Bearer.
        let token = h.session("alice", PW).await;
        assert!(token.starts_with("ess_"));
        let r = h
            .call("GET", "/v1/auth/me", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(r.json["name"], "alice");
        assert_eq!(r.json["kind"], "user");

        // Cookie: HttpOnly, Secure, SameSite; no token in the body.
        let r = h
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(serde_json::json!({"username": "alice", "password": PW, "cookie": true})),
                &fresh_ip(),
                &[],
            )
            .await;
        assert_eq!(r.status, 200);
        assert!(r.json.get("token").is_none(), "{}", r.json);
        let set = r.headers["set-cookie"].to_str().unwrap().to_owned();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(attr), "{set}");
        }
        let pair = set.split(';').next().unwrap().to_owned();
        let r = h
            .call(
                "GET",
                "/v1/auth/me",
                None,
                None,
                "127.0.0.1",
                &[("cookie", &pair)],
            )
            .await;
        assert_eq!(r.status, 200);
        let r = h
            .call(
                "POST",
                "/v1/auth/logout",
                None,
                None,
                "127.0.0.1",
                &[
                    ("cookie", &pair),
                    ("origin", "https://evil.example"),
                    ("host", "envseal.internal:8420"),
                ],
            )
            .await;
        assert_eq!(r.status, 403, "a cross-site page used the cookie");
        let r = h
            .call(
                "POST",
                "/v1/auth/logout",
                None,
                None,
                "127.0.0.1",
                &[
                    ("cookie", &pair),
                    ("origin", "https://envseal.internal:8420"),
                    ("host", "envseal.internal:8420"),
                ],
            )
            .await;
        assert_eq!(r.status, 204);
        assert!(r.headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0"));
        let r = h
            .call(
                "GET",
                "/v1/auth/me",
                None,
                None,
                "127.0.0.1",
                &[("cookie", &pair)],
            )
            .await;
        assert_eq!(r.status, 401);

        // Expiry.
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = h
            .call("GET", "/v1/auth/me", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(r.status, 401);
        assert!(r.json["message"].as_str().unwrap().contains("expired"));

        // A password change ends every session.
        let token = h.session("alice", PW).await;
        let r = h
            .call(
                "PUT",
                "/v1/auth/password",
                Some(&token),
                Some(serde_json::json!({"current": PW, "password": "another-long-passphrase-2"})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.json);
        let r = h
            .call("GET", "/v1/auth/me", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(r.status, 401);
        assert_eq!(
            h.login("alice", "another-long-passphrase-2", None, &fresh_ip())
                .await
                .status,
            200
        );
    }
}

#[tokio::test]
async fn password_policy_applies_when_a_password_is_set() {
    let b = common::backends("password_policy_applies_when_a_password_is_set")
        .await
        .remove(0);
    let h = harness(&b.store, auth_with(relaxed())).await;
    for (name, pw) in [
        ("carol", "short"),
        ("carol", "carol-is-my-name-1"),
        ("carol", "difyai123456"),
        ("carol", "aaaaaaaaaaaaaaaa"),
    ] {
        let r = h
            .call(
                "POST",
                "/v1/users",
                Some(ADMIN),
                Some(serde_json::json!({"username": name, "password": pw, "roles": []})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 400, "{pw}");
        assert_eq!(r.json["code"], "weak_password");
        assert!(
            !r.json.to_string().contains(pw),
            "the password is echoed: {}",
            r.json
        );
    }
    for (name, code) in [("Carol", "invalid_name"), ("", "invalid_name")] {
        let r = h
            .call(
                "POST",
                "/v1/users",
                Some(ADMIN),
                Some(serde_json::json!({"username": name, "password": PW, "roles": []})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.json["code"], code);
    }
    let r = h
        .call("POST", "/v1/users", Some(ADMIN),
            Some(serde_json::json!({"username": "carol", "password": PW, "roles": [{"project": "*", "role": "root"}]})),
            "127.0.0.1", &[])
        .await;
    assert_eq!(r.json["code"], "invalid_role");
    // The people endpoints are in the OpenAPI document.
    let doc = h
        .call("GET", "/v1/openapi.json", None, None, "127.0.0.1", &[])
        .await;
    for path in [
        "/v1/auth/login",
        "/v1/auth/logout",
        "/v1/auth/mfa/enroll",
        "/v1/users",
        "/v1/users/{name}/unlock",
        "/v1/audit",
        "/v1/audit/verify",
    ] {
        assert!(doc.json["paths"].get(path).is_some(), "missing {path}");
    }
    // The stored hash is argon2id.
    h.create_user("carol", PW, &[]).await;
    let u = h.state.store.user_by_name("carol").await.unwrap().unwrap();
    assert!(u.password_hash.starts_with("$argon2id$"));
    assert!(!u.password_hash.contains(PW));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lockouts_and_brute_force_raise_alerts_by_command_and_webhook() {
    use std::io::{Read as _, Write as _};
    let b = common::backends("lockouts_and_brute_force_raise_alerts")
        .await
        .remove(0);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alerts.jsonl");
    // A one-shot webhook receiver.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hook = format!("http://{}/hook", listener.local_addr().unwrap());
    let received = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        listener.set_nonblocking(false).unwrap();
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = vec![0u8; 8192];
            let mut got = Vec::new();
            while !String::from_utf8_lossy(&got).contains('}') {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                .unwrap();
            bodies.push(String::from_utf8_lossy(&got).into_owned());
        }
        bodies
    });
    let mut c = relaxed();
    c.alerts.command = Some(format!("cat >> '{}'", file.display()));
    c.alerts.webhook = Some(envseal_server::config::SecretUrl::new(hook));
    c.alert_failures = 8;
    let h = harness(&b.store, auth_with(c)).await;
    h.create_user("alice", PW, &[]).await;
    for _ in 0..5 {
        h.login("alice", "wrong-password-1", None, &fresh_ip())
            .await;
    }
    for i in 0..3 {
        h.login(&format!("x{i}"), "wrong-password-1", None, &fresh_ip())
            .await;
    }
    let bodies = tokio::task::spawn_blocking(move || received.join().unwrap())
        .await
        .unwrap();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("\"account_locked\"") && b.contains("\"alice\"")),
        "{bodies:?}"
    );
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("\"brute_force\"") && b.contains("failure_rate")),
        "{bodies:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.contains("account_locked") && text.contains("brute_force") {
            assert!(
                !text.contains("wrong-password"),
                "a password reached an alert"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "alert command output: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same lockout does not alert twice within the quiet period.
    h.login("alice", "wrong-password-1", None, &fresh_ip())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&file).unwrap();
    assert_eq!(text.matches("account_locked").count(), 1, "{text}");
}
