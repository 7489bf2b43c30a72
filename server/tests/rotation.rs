//! Rotation state over the API on SQLite and PostgreSQL: labels, the four steps,
//! one winner of concurrent rotations, takeover of abandoned ones, linked values
//! written in one revision, policies and the audit trail.

mod common;

use common::{Harness, Resp, ADMIN};
use serde_json::{json, Value};

const SECRET: &str = "/v1/projects/dify/environments/prod/secrets";

async fn call(h: &Harness, method: &str, path: &str, body: Option<Value>) -> Resp {
    h.call(method, path, Some(ADMIN), body, "127.0.0.1", &[])
        .await
}

async fn put(h: &Harness, name: &str, value: &str) {
    let r = call(
        h,
        "PUT",
        &format!("{SECRET}/{name}"),
        Some(json!({ "value": value })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.json);
}

async fn value(h: &Harness, name: &str) -> String {
    let r = call(h, "GET", &format!("{SECRET}/{name}"), None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    r.json["value"].as_str().unwrap().to_owned()
}

async fn revision(h: &Harness) -> i64 {
    let r = call(h, "GET", "/v1/projects/dify/environments/prod/export", None).await;
    assert_eq!(r.status, 200);
    r.json["revision"].as_i64().unwrap()
}

async fn start(h: &Harness, name: &str, value: &str, lease: i64) -> Resp {
    call(
        h,
        "POST",
        &format!("{SECRET}/{name}/rotation"),
        Some(json!({ "value": value, "lease_secs": lease })),
    )
    .await
}

async fn report(h: &Harness, name: &str, id: &str, step: &str, ok: bool) -> Resp {
    call(
        h,
        "POST",
        &format!("{SECRET}/{name}/rotation/step"),
        Some(json!({ "rotation_id": id, "step": step, "ok": ok, "error": (!ok).then_some("refused") })),
    )
    .await
}

async fn finish(h: &Harness, name: &str, id: &str, also: Value) -> Resp {
    call(
        h,
        "POST",
        &format!("{SECRET}/{name}/rotation/finish"),
        Some(json!({ "rotation_id": id, "also": also })),
    )
    .await
}

async fn status(h: &Harness, name: &str) -> Value {
    let r = call(h, "GET", &format!("{SECRET}/{name}/rotation"), None).await;
    assert_eq!(r.status, 200, "{}", r.json);
    r.json
}

async fn setup(b: &common::Backend) -> Harness {
    let h = common::harness(&b.store, common::cheap_auth()).await;
    h.setup_projects().await;
    h
}

/// Runs start → set → test → finish and returns the finish answer.
async fn rotate(h: &Harness, name: &str, new: &str) -> Value {
    let s = start(h, name, new, 60).await;
    assert_eq!(s.status, 200, "{}", s.json);
    let id = s.json["rotation_id"].as_str().unwrap().to_owned();
    assert_eq!(report(h, name, &id, "set", true).await.status, 204);
    assert_eq!(report(h, name, &id, "test", true).await.status, 204);
    let f = finish(h, name, &id, json!({})).await;
    assert_eq!(f.status, 200, "{}", f.json);
    f.json
}

#[tokio::test]
async fn finish_makes_pending_current_and_old_previous() {
    for b in common::backends("finish_makes_pending_current_and_old_previous").await {
        let h = setup(&b).await;
        put(&h, "DB_PASSWORD", "old-canary-7f3a").await;
        let before = revision(&h).await;
        let s = start(&h, "DB_PASSWORD", "new-canary-91bd", 60).await;
        assert_eq!(s.status, 200, "{}: {}", b.name, s.json);
        assert_eq!(s.json["step"], "created");
        assert_eq!(s.json["resumed"], false);
        let id = s.json["rotation_id"].as_str().unwrap().to_owned();
        // While pending, the export and `current` still serve the old value.
        let st = status(&h, "DB_PASSWORD").await;
        assert_eq!(st["labels"]["current"], 1);
        assert_eq!(st["labels"]["pending"], 2);
        assert_eq!(st["rotation"]["step"], "created");
        assert_eq!(value(&h, "DB_PASSWORD").await, "old-canary-7f3a");
        assert_eq!(
            revision(&h).await,
            before,
            "{}: creating a pending value changes no revision",
            b.name
        );
        // Finish refuses to run before the test step has passed.
        let early = finish(&h, "DB_PASSWORD", &id, json!({})).await;
        assert_eq!(early.status, 400, "{}", early.json);
        assert_eq!(
            report(&h, "DB_PASSWORD", &id, "test", true).await.status,
            400
        );
        assert_eq!(
            report(&h, "DB_PASSWORD", &id, "set", true).await.status,
            204
        );
        assert_eq!(
            report(&h, "DB_PASSWORD", &id, "test", true).await.status,
            204
        );
        let f = finish(&h, "DB_PASSWORD", &id, json!({})).await;
        assert_eq!(f.status, 200, "{}", f.json);
        assert_eq!(f.json["version"], 2);
        assert_eq!(value(&h, "DB_PASSWORD").await, "new-canary-91bd");
        let st = status(&h, "DB_PASSWORD").await;
        assert_eq!(st["labels"], json!({ "current": 2, "previous": 1 }));
        assert!(st["rotation"].is_null());
        let old = call(&h, "GET", &format!("{SECRET}/DB_PASSWORD?version=1"), None).await;
        assert_eq!(old.json["value"], "old-canary-7f3a");
        assert_eq!(revision(&h).await, before + 1);
        // Steps are audited with outcomes; no value reaches the audit log.
        let rows = h.audit_rows().await;
        let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        for a in [
            "rotation.create",
            "rotation.set",
            "rotation.test",
            "rotation.finish",
        ] {
            assert!(
                actions.contains(&a),
                "{}: {a} missing from {actions:?}",
                b.name
            );
        }
        let text = format!(
            "{:?}",
            rows.iter()
                .map(|r| (&r.details, &r.reason))
                .collect::<Vec<_>>()
        );
        assert!(
            !text.contains("canary"),
            "{}: a value reached the audit log",
            b.name
        );
        // A finished rotation can be followed by another.
        rotate(&h, "DB_PASSWORD", "third").await;
        assert_eq!(
            status(&h, "DB_PASSWORD").await["labels"],
            json!({ "current": 3, "previous": 2 })
        );
    }
}

#[tokio::test]
async fn two_concurrent_rotations_do_not_both_win() {
    for b in common::backends("two_concurrent_rotations_do_not_both_win").await {
        let h = setup(&b).await;
        put(&h, "REDIS_PASSWORD", "old").await;
        for round in 0..5 {
            let (a, c) = tokio::join!(
                start(&h, "REDIS_PASSWORD", "from-a", 60),
                start(&h, "REDIS_PASSWORD", "from-b", 60)
            );
            let mut statuses = [a.status.as_u16(), c.status.as_u16()];
            statuses.sort();
            assert_eq!(
                statuses,
                [200, 409],
                "{} round {round}: {} / {}",
                b.name,
                a.json,
                c.json
            );
            let loser = if a.status == 409 { &a } else { &c };
            assert_eq!(loser.json["code"], "rotation_conflict");
            let winner = if a.status == 200 { &a } else { &c };
            let id = winner.json["rotation_id"].as_str().unwrap().to_owned();
            let r = call(
                &h,
                "POST",
                &format!("{SECRET}/REDIS_PASSWORD/rotation/cancel"),
                Some(json!({ "rotation_id": id })),
            )
            .await;
            assert_eq!(r.status, 204, "{}", r.json);
        }
        assert_eq!(value(&h, "REDIS_PASSWORD").await, "old");
    }
}

#[tokio::test]
async fn a_failed_step_leaves_current_and_the_next_rotation_runs() {
    for b in common::backends("a_failed_step_leaves_current_and_the_next_rotation_runs").await {
        let h = setup(&b).await;
        put(&h, "DB_PASSWORD", "old").await;
        for failing in ["set", "test"] {
            let s = start(&h, "DB_PASSWORD", "never", 60).await;
            let id = s.json["rotation_id"].as_str().unwrap().to_owned();
            if failing == "test" {
                assert_eq!(
                    report(&h, "DB_PASSWORD", &id, "set", true).await.status,
                    204
                );
            }
            assert_eq!(
                report(&h, "DB_PASSWORD", &id, failing, false).await.status,
                204
            );
            let st = status(&h, "DB_PASSWORD").await;
            assert_eq!(st["rotation"]["last_error"], "refused");
            assert_eq!(finish(&h, "DB_PASSWORD", &id, json!({})).await.status, 400);
            let c = call(
                &h,
                "POST",
                &format!("{SECRET}/DB_PASSWORD/rotation/cancel"),
                Some(json!({ "rotation_id": id, "reason": "test failed" })),
            )
            .await;
            assert_eq!(c.status, 204);
            assert_eq!(value(&h, "DB_PASSWORD").await, "old", "{}", b.name);
            assert_eq!(
                status(&h, "DB_PASSWORD").await["labels"],
                json!({ "current": 1 })
            );
        }
        let failures = h
            .audit_rows()
            .await
            .into_iter()
            .filter(|r| r.action.starts_with("rotation.") && r.result == "failure")
            .count();
        assert!(
            failures >= 2,
            "{}: failed steps are audited as failures",
            b.name
        );
        rotate(&h, "DB_PASSWORD", "new").await;
        assert_eq!(value(&h, "DB_PASSWORD").await, "new");
    }
}

#[tokio::test]
async fn an_abandoned_rotation_is_resumed_with_its_pending_value() {
    for b in common::backends("an_abandoned_rotation_is_resumed_with_its_pending_value").await {
        let h = setup(&b).await;
        put(&h, "DB_PASSWORD", "old").await;
        let first = start(&h, "DB_PASSWORD", "first-pending", 1).await;
        let id1 = first.json["rotation_id"].as_str().unwrap().to_owned();
        assert_eq!(
            report(&h, "DB_PASSWORD", &id1, "set", true).await.status,
            204
        );
        // Re-arm a short lease, then let the runner "die".
        let r = call(
            &h,
            "POST",
            &format!("{SECRET}/DB_PASSWORD/rotation/step"),
            Some(json!({ "rotation_id": id1, "step": "set", "ok": true, "lease_secs": 1 })),
        )
        .await;
        assert_eq!(r.status, 204);
        // While the lease is live, a second run gets a conflict.
        assert_eq!(start(&h, "DB_PASSWORD", "second", 60).await.status, 409);
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        assert_eq!(status(&h, "DB_PASSWORD").await["rotation"]["stale"], true);
        let second = start(&h, "DB_PASSWORD", "second", 60).await;
        assert_eq!(second.status, 200, "{}", second.json);
        assert_eq!(second.json["resumed"], true);
        assert_eq!(second.json["step"], "set");
        assert_eq!(
            second.json["pending"]["value"], "first-pending",
            "the target may hold it already"
        );
        let id2 = second.json["rotation_id"].as_str().unwrap().to_owned();
        // The dead runner can no longer act.
        assert_eq!(
            report(&h, "DB_PASSWORD", &id1, "test", true).await.status,
            409
        );
        assert_eq!(
            report(&h, "DB_PASSWORD", &id2, "test", true).await.status,
            204
        );
        assert_eq!(finish(&h, "DB_PASSWORD", &id2, json!({})).await.status, 200);
        assert_eq!(value(&h, "DB_PASSWORD").await, "first-pending");
    }
}

#[tokio::test]
async fn linked_values_are_written_in_one_transaction_and_one_revision() {
    for b in common::backends("linked_values_are_written_in_one_transaction_and_one_revision").await
    {
        let h = setup(&b).await;
        put(&h, "REDIS_PASSWORD", "difyai123456").await;
        put(
            &h,
            "CELERY_BROKER_URL",
            "redis://:difyai123456@redis:6379/1",
        )
        .await;
        let policy = json!({
            "rotate_every": "30d",
            "rotator": { "kind": "password", "length": 24 },
            "links": [
                { "name": "CELERY_BROKER_URL", "embed": "url_password" },
                { "name": "REDIS_PASSWORD_COPY", "embed": "copy" }
            ]
        });
        let r = call(
            &h,
            "PUT",
            &format!("{SECRET}/REDIS_PASSWORD/rotation/policy"),
            Some(policy),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.json);
        assert_eq!(r.json["due_at"], 0, "never rotated: due now");
        let before = revision(&h).await;
        let done = rotate(&h, "REDIS_PASSWORD", "p#q@r/s%t").await;
        assert_eq!(
            done["written"],
            json!(["REDIS_PASSWORD", "CELERY_BROKER_URL", "REDIS_PASSWORD_COPY"])
        );
        assert_eq!(
            revision(&h).await,
            before + 1,
            "{}: one revision for all",
            b.name
        );
        assert_eq!(
            value(&h, "CELERY_BROKER_URL").await,
            "redis://:p%23q%40r%2Fs%25t@redis:6379/1"
        );
        assert_eq!(value(&h, "REDIS_PASSWORD_COPY").await, "p#q@r/s%t");
        assert_eq!(
            status(&h, "CELERY_BROKER_URL").await["labels"]["previous"],
            1
        );
        let list = call(
            &h,
            "GET",
            "/v1/projects/dify/environments/prod/rotations",
            None,
        )
        .await;
        assert_eq!(list.status, 200);
        let entry = &list.json["secrets"][0];
        assert_eq!(entry["name"], "REDIS_PASSWORD");
        let now = list.json["now"].as_i64().unwrap();
        let due = entry["due_at"].as_i64().unwrap();
        assert!(due > now + 29 * 86_400, "{}: next due in 30 days", b.name);
    }
}

#[tokio::test]
async fn a_broken_link_fails_finish_and_writes_nothing() {
    for b in common::backends("a_broken_link_fails_finish_and_writes_nothing").await {
        let h = setup(&b).await;
        put(&h, "REDIS_PASSWORD", "old").await;
        put(&h, "CELERY_BROKER_URL", "not a url").await;
        let policy = json!({ "links": [{ "name": "CELERY_BROKER_URL", "embed": "url_password" }] });
        let r = call(
            &h,
            "PUT",
            &format!("{SECRET}/REDIS_PASSWORD/rotation/policy"),
            Some(policy),
        )
        .await;
        assert_eq!(r.status, 200);
        let before = revision(&h).await;
        let s = start(&h, "REDIS_PASSWORD", "new", 60).await;
        let id = s.json["rotation_id"].as_str().unwrap().to_owned();
        report(&h, "REDIS_PASSWORD", &id, "set", true).await;
        report(&h, "REDIS_PASSWORD", &id, "test", true).await;
        let f = finish(&h, "REDIS_PASSWORD", &id, json!({})).await;
        assert_eq!(f.status, 400, "{}", f.json);
        assert!(f.json["message"]
            .as_str()
            .unwrap()
            .contains("CELERY_BROKER_URL"));
        assert_eq!(value(&h, "REDIS_PASSWORD").await, "old");
        assert_eq!(revision(&h).await, before);
        assert_eq!(
            status(&h, "REDIS_PASSWORD").await["rotation"]["step"],
            "tested"
        );
    }
}

#[tokio::test]
async fn bad_policies_and_foreign_runners_are_refused() {
    for b in common::backends("bad_policies_and_foreign_runners_are_refused").await {
        let h = setup(&b).await;
        put(&h, "SECRET_KEY", "old").await;
        for bad in [
            json!([1, 2]),
            json!({ "rotate_every": "soon" }),
            json!({ "links": [{ "name": "lower-case", "embed": "copy" }] }),
            json!({ "links": [{ "name": "X", "embed": "weird" }] }),
            json!({ "links": [{ "name": "SECRET_KEY", "embed": "copy" }] }),
        ] {
            let r = call(
                &h,
                "PUT",
                &format!("{SECRET}/SECRET_KEY/rotation/policy"),
                Some(bad.clone()),
            )
            .await;
            assert_eq!(r.status, 400, "{}: {bad} gave {}", b.name, r.json);
        }
        assert_eq!(start(&h, "MISSING", "x", 60).await.status, 404);
        let s = start(&h, "SECRET_KEY", "new", 60).await;
        assert_eq!(
            report(&h, "SECRET_KEY", "rot_not_mine", "set", true)
                .await
                .status,
            409
        );
        let r = call(
            &h,
            "POST",
            &format!("{SECRET}/SECRET_KEY/rotation/cancel"),
            Some(json!({})),
        )
        .await;
        assert_eq!(
            r.status, 409,
            "a live rotation is not cancelled without force"
        );
        let r = call(
            &h,
            "POST",
            &format!("{SECRET}/SECRET_KEY/rotation/cancel"),
            Some(json!({ "force": true })),
        )
        .await;
        assert_eq!(r.status, 204);
        let id = s.json["rotation_id"].as_str().unwrap();
        assert_eq!(report(&h, "SECRET_KEY", id, "set", true).await.status, 409);
        assert_eq!(value(&h, "SECRET_KEY").await, "old");
    }
}
