//! The audit chain: every operation is recorded with the previous entry's hash;
//! editing, deleting or reordering any row is found by verification, which names the
//! first broken entry; concurrent appends (several replicas) stay one chain; and no
//! secret value, password or token ever reaches it.

mod common;

use common::{auth_with, fresh_ip, harness, Harness, ADMIN};
use envseal_server::login::AuthConfig;

const CANARY: &str = "canary-5f0e2c1b9d7a4e36-audit";
const PW: &str = "correct-horse-battery-9";

async fn busy_log(h: &Harness) {
    h.setup_projects().await;
    let base = "/v1/projects/dify/environments/prod/secrets";
    for name in ["SECRET_KEY", "DB_PASSWORD"] {
        let r = h
            .call(
                "PUT",
                &format!("{base}/{name}"),
                Some(ADMIN),
                Some(serde_json::json!({"value": CANARY})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            h.call(
                "GET",
                &format!("{base}/{name}"),
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[]
            )
            .await
            .status,
            200
        );
    }
    h.call(
        "GET",
        "/v1/projects/dify/environments/prod/export",
        Some(ADMIN),
        None,
        "127.0.0.1",
        &[],
    )
    .await;
    h.call(
        "DELETE",
        &format!("{base}/DB_PASSWORD"),
        Some(ADMIN),
        None,
        "127.0.0.1",
        &[],
    )
    .await;
    let t = h
        .call("POST", "/v1/tokens", Some(ADMIN),
            Some(serde_json::json!({"name": "dify-api", "project": "dify", "environments": ["prod"], "access": "read"})),
            "127.0.0.1", &[])
        .await;
    let token = t.json["token"].as_str().unwrap().to_owned();
    h.call(
        "GET",
        &format!("{base}/SECRET_KEY"),
        Some(&token),
        None,
        "127.0.0.1",
        &[],
    )
    .await;
    h.call(
        "DELETE",
        &format!("/v1/tokens/{}", t.json["info"]["id"].as_str().unwrap()),
        Some(ADMIN),
        None,
        "127.0.0.1",
        &[],
    )
    .await;
    // A password that is the canary, a login with the canary as password, a wrong one.
    h.create_user("alice", &format!("{CANARY}-pw"), &[("dify", "viewer")])
        .await;
    h.login("alice", CANARY, None, &fresh_ip()).await;
    h.login("mallory", CANARY, Some("123456"), &fresh_ip())
        .await;
    let s = h.session("alice", &format!("{CANARY}-pw")).await;
    // A denied read by a viewer.
    h.call(
        "GET",
        &format!("{base}/SECRET_KEY"),
        Some(&s),
        None,
        "127.0.0.1",
        &[],
    )
    .await;
    h.call("POST", "/v1/auth/logout", Some(&s), None, "127.0.0.1", &[])
        .await;
}

async fn verify(h: &Harness) -> serde_json::Value {
    let r = h
        .call(
            "GET",
            "/v1/audit/verify",
            Some(ADMIN),
            None,
            "127.0.0.1",
            &[],
        )
        .await;
    assert_eq!(r.status, 200);
    r.json
}

async fn exec(h: &Harness, sql: &str) {
    sqlx::query(sql)
        .execute(h.state.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn every_operation_is_chained_and_no_value_is_recorded() {
    for b in common::backends("every_operation_is_chained_and_no_value_is_recorded").await {
        let h = harness(&b.store, auth_with(AuthConfig::default())).await;
        busy_log(&h).await;
        let rows = h.audit_rows().await;
        let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        for a in [
            "project.create",
            "environment.create",
            "secret.write",
            "secret.read",
            "secret.export",
            "secret.delete",
            "token.create",
            "token.revoke",
            "user.create",
            "auth.login",
            "access.denied",
            "auth.logout",
        ] {
            assert!(actions.contains(&a), "{a} missing from {actions:?}");
        }
        let token_read = rows
            .iter()
            .find(|r| r.action == "secret.read" && r.actor.starts_with("token:dify-api"))
            .unwrap();
        assert_eq!(token_read.target, "dify/prod/SECRET_KEY");
        assert!(token_read.details.contains("\"version\":1"));
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(r.seq, i as i64 + 1);
            let prev = if i == 0 {
                envseal_server::store::GENESIS_HASH.to_owned()
            } else {
                rows[i - 1].hash.clone()
            };
            assert_eq!(r.prev_hash, prev);
        }
        let dump = format!("{rows:?}");
        assert!(
            !dump.contains(CANARY),
            "{}: a value reached the audit log",
            b.name
        );
        assert!(!dump.contains("est_"), "a token reached the audit log");
        assert!(
            !dump.contains("ess_"),
            "a session token reached the audit log"
        );
        let v = verify(&h).await;
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["entries"], rows.len());

        // The canary is nowhere in the database file either.
        if b.name == "sqlite" {
            h.state.store.close().await;
            let path = b
                .url
                .trim_start_matches("sqlite://")
                .split('?')
                .next()
                .unwrap()
                .to_owned();
            for f in [path.clone(), format!("{path}-wal")] {
                if let Ok(bytes) = std::fs::read(&f) {
                    assert!(
                        !bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()),
                        "{f}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn edits_deletions_and_reordering_are_detected_at_the_first_broken_entry() {
    // (what the attacker does, the first entry reported)
    let cases: [(&str, &[&str], i64); 5] = [
        (
            "edit a field",
            &["UPDATE audit_log SET target = 'nothing-to-see' WHERE seq = 7"],
            7,
        ),
        (
            "edit the actor",
            &["UPDATE audit_log SET actor = 'someone-else' WHERE seq = 12"],
            12,
        ),
        ("delete a row", &["DELETE FROM audit_log WHERE seq = 5"], 6),
        (
            "swap two rows",
            &[
                "UPDATE audit_log SET seq = -1 WHERE seq = 9",
                "UPDATE audit_log SET seq = 9 WHERE seq = 10",
                "UPDATE audit_log SET seq = 10 WHERE seq = -1",
            ],
            9,
        ),
        (
            "rewrite a row's hash",
            &["UPDATE audit_log SET hash = prev_hash WHERE seq = 4"],
            4,
        ),
    ];
    for (what, sql, first) in cases {
        for b in common::backends("edits_deletions_and_reordering_are_detected").await {
            let h = harness(&b.store, auth_with(AuthConfig::default())).await;
            busy_log(&h).await;
            assert_eq!(verify(&h).await["ok"], true);
            for s in sql {
                exec(&h, s).await;
            }
            let v = verify(&h).await;
            assert_eq!(v["ok"], false, "{what} on {}: {v}", b.name);
            assert_eq!(v["first_broken"]["seq"], first, "{what} on {}: {v}", b.name);
        }
    }
}

#[tokio::test]
async fn concurrent_appends_from_two_replicas_form_one_chain() {
    for b in common::backends("concurrent_appends_from_two_replicas_form_one_chain").await {
        // A second store on the same database: another replica's connection pool.
        let other = if b.name == "postgres" {
            std::sync::Arc::new(envseal_server::store::Store::connect(&b.url).await.unwrap())
        } else {
            b.store.clone()
        };
        let a = envseal_server::audit::AuditLog::start(b.store.clone());
        let c = envseal_server::audit::AuditLog::start(other);
        let mut tasks = Vec::new();
        for i in 0..200 {
            let log = if i % 2 == 0 { a.clone() } else { c.clone() };
            tasks.push(tokio::spawn(async move {
                log.record(envseal_server::audit::AuditEvent::new(
                    "t",
                    "test.append",
                    format!("n{i}"),
                ))
                .await
                .unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort();
        assert_eq!(seqs, (1..=200).collect::<Vec<i64>>(), "{}", b.name);
        let v = envseal_server::audit::verify(&b.store).await.unwrap();
        assert_eq!(v.first_broken, None, "{}", b.name);
        assert_eq!(v.entries, 200);
    }
}

#[tokio::test]
async fn a_canary_password_never_reaches_an_error_message() {
    let b = common::backends("a_canary_password_never_reaches_an_error_message")
        .await
        .remove(0);
    let h = harness(&b.store, auth_with(AuthConfig::default())).await;
    for body in [
        serde_json::json!({"username": "a", "password": 5, "x": CANARY}),
        serde_json::json!({"username": CANARY, "password": CANARY, "totp": 7}),
        serde_json::json!({"username": "a", "password": CANARY, "extra": true}),
    ] {
        let r = h
            .call("POST", "/v1/auth/login", None, Some(body), "127.0.0.1", &[])
            .await;
        assert_eq!(r.status, 400);
        assert!(!r.json.to_string().contains(CANARY), "{}", r.json);
    }
    let _ = PW;
}
