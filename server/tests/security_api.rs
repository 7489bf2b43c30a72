//! Regressions of an attack pass against the API, driven in-process: the leak check as
//! a value oracle, losing the last admin, scope leaks through listings, and error
//! bodies that echo input.

mod common;

use common::{auth_with, fresh_ip, harness, Harness, ADMIN};
use envseal_server::login::AuthConfig;
use envseal_server::store::TokenRow;

const PW: &str = "a-long-and-varied-password-1";
const PROD_VALUE: &str = "prod-canary-9f3b2e71";

fn config() -> AuthConfig {
    AuthConfig {
        require_admin_mfa: false,
        ..AuthConfig::default()
    }
}

async fn put(h: &Harness, path: &str, value: &str) {
    let r = h
        .call(
            "PUT",
            path,
            Some(ADMIN),
            Some(serde_json::json!({ "value": value })),
            "127.0.0.1",
            &[],
        )
        .await;
    assert!(r.status.is_success(), "{path}: {}", r.json);
}

async fn leak_check(h: &Harness, token: &str, ip: &str, values: &[&str]) -> common::Resp {
    let candidates: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| serde_json::json!({ "id": i, "value": v }))
        .collect();
    h.call(
        "POST",
        "/v1/leaks/check",
        Some(token),
        Some(serde_json::json!({ "candidates": candidates })),
        ip,
        &[],
    )
    .await
}

fn matched(r: &common::Resp) -> Vec<String> {
    r.json["matches"]
        .as_array()
        .unwrap_or_else(|| panic!("no matches in {}", r.json))
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["environment"].as_str().unwrap(),
                m["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn leaks_check_requires_read_permission() {
    for b in common::backends("leaks_check_requires_read_permission").await {
        let h = harness(&b.store, auth_with(config())).await;
        h.setup_projects().await;
        put(
            &h,
            "/v1/projects/dify/environments/prod/secrets/DB_PASSWORD",
            PROD_VALUE,
        )
        .await;
        put(
            &h,
            "/v1/projects/dify/environments/dev/secrets/DB_PASSWORD",
            "dev-value-1234",
        )
        .await;
        h.create_user("dev", PW, &[("dify", "developer")]).await;
        h.create_user("view", PW, &[("dify", "viewer")]).await;
        let values = [PROD_VALUE, "dev-value-1234"];
        // Developers see prod names but not prod values: a prod match is an oracle.
        let dev = h.session("dev", PW).await;
        let r = leak_check(&h, &dev, &fresh_ip(), &values).await;
        assert_eq!(r.status, 200, "{}: {}", b.name, r.json);
        assert_eq!(matched(&r), vec!["dev/DB_PASSWORD"], "{}", b.name);
        // Viewers read no values at all.
        let view = h.session("view", PW).await;
        let r = leak_check(&h, &view, &fresh_ip(), &values).await;
        assert_eq!(matched(&r), Vec::<String>::new(), "{}", b.name);
        // The admin reads everything.
        let r = leak_check(&h, ADMIN, &fresh_ip(), &values).await;
        assert_eq!(
            matched(&r),
            vec!["prod/DB_PASSWORD", "dev/DB_PASSWORD"],
            "{}",
            b.name
        );
    }
}

#[tokio::test]
async fn leaks_check_is_rate_limited_like_logins() {
    for b in common::backends("leaks_check_is_rate_limited_like_logins").await {
        let mut cfg = config();
        cfg.limits.per_account = 3;
        cfg.limits.per_ip = 100;
        cfg.limits.global = 100;
        let h = harness(&b.store, auth_with(cfg)).await;
        h.setup_projects().await;
        put(
            &h,
            "/v1/projects/dify/environments/prod/secrets/DB_PASSWORD",
            PROD_VALUE,
        )
        .await;
        for i in 0..3 {
            let r = leak_check(&h, ADMIN, &fresh_ip(), &["guess"]).await;
            assert_eq!(r.status, 200, "{} call {i}: {}", b.name, r.json);
        }
        // The fourth guess from the same caller is refused, even from a new address,
        // and the right value is not tested.
        let r = leak_check(&h, ADMIN, &fresh_ip(), &[PROD_VALUE]).await;
        assert_eq!(r.status, 429, "{}: {}", b.name, r.json);
        assert_eq!(r.json["code"], "rate_limited");
        assert!(r.headers.contains_key("retry-after"));
        assert!(r.json.get("matches").is_none());
        // Leak checks do not use up the login budget.
        h.create_user("alice", PW, &[("dify", "viewer")]).await;
        let ip = fresh_ip();
        for _ in 0..3 {
            assert_eq!(h.login("alice", PW, None, &ip).await.status, 200);
        }
        // Per client address too.
        let mut cfg = config();
        cfg.limits.per_ip = 2;
        let h2 = common::harness_with_keys(
            &b.store,
            h.keys.clone(),
            auth_with(cfg),
            tempfile::tempdir().unwrap(),
        )
        .await;
        let ip = fresh_ip();
        assert_eq!(leak_check(&h2, ADMIN, &ip, &["a"]).await.status, 200);
        assert_eq!(leak_check(&h2, ADMIN, &ip, &["a"]).await.status, 200);
        assert_eq!(leak_check(&h2, ADMIN, &ip, &["a"]).await.status, 429);
    }
}

#[tokio::test]
async fn leaks_check_audits_every_call_with_candidate_count() {
    for b in common::backends("leaks_check_audits_every_call_with_candidate_count").await {
        let mut cfg = config();
        cfg.limits.per_account = 2;
        let h = harness(&b.store, auth_with(cfg)).await;
        h.setup_projects().await;
        put(
            &h,
            "/v1/projects/dify/environments/prod/secrets/DB_PASSWORD",
            PROD_VALUE,
        )
        .await;
        leak_check(&h, ADMIN, &fresh_ip(), &[PROD_VALUE, "x", "y"]).await;
        leak_check(&h, ADMIN, &fresh_ip(), &["z"]).await;
        let refused = leak_check(&h, ADMIN, &fresh_ip(), &["a", "b", "c", "d"]).await;
        assert_eq!(refused.status, 429);
        let rows: Vec<_> = h
            .audit_rows()
            .await
            .into_iter()
            .filter(|r| r.action == "leak.check")
            .collect();
        let seen: Vec<(i64, String)> = rows
            .iter()
            .map(|r| {
                let d: serde_json::Value = serde_json::from_str(&r.details).unwrap();
                (d["candidates"].as_i64().unwrap(), r.result.clone())
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                (3, "success".to_owned()),
                (1, "success".to_owned()),
                (4, "denied".to_owned())
            ],
            "{}",
            b.name
        );
        for r in &rows {
            assert!(!format!("{r:?}").contains(PROD_VALUE), "{}", b.name);
        }
    }
}

async fn insert_admin_token(h: &Harness, id: &str, token: &str) {
    h.state
        .store
        .insert_token(&TokenRow {
            id: id.into(),
            name: id.into(),
            token_hash: envseal_server::auth::hash_token(token),
            project_id: None,
            project_name: None,
            environments: "*".into(),
            access: "admin".into(),
            created_at: 0,
            expires_at: None,
            revoked_at: None,
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn last_admin_token_cannot_revoke_itself() {
    for b in common::backends("last_admin_token_cannot_revoke_itself").await {
        let h = harness(&b.store, auth_with(config())).await;
        let r = h
            .call(
                "DELETE",
                "/v1/tokens/admin",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 409, "{}: {}", b.name, r.json);
        assert_eq!(r.json["code"], "last_admin");
        let r = h
            .call("GET", "/v1/tokens", Some(ADMIN), None, "127.0.0.1", &[])
            .await;
        assert_eq!(r.status, 200, "{}: the admin token still works", b.name);
        // An expired admin token does not count as another admin.
        h.state
            .store
            .insert_token(&TokenRow {
                id: "old".into(),
                name: "old".into(),
                token_hash: envseal_server::auth::hash_token(
                    "est_expired_admin_token_0123456789abcdef",
                ),
                project_id: None,
                project_name: None,
                environments: "*".into(),
                access: "admin".into(),
                created_at: 0,
                expires_at: Some(1),
                revoked_at: None,
            })
            .await
            .unwrap();
        let r = h
            .call(
                "DELETE",
                "/v1/tokens/admin",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 409, "{}: {}", b.name, r.json);
        // With a second admin token, the first may go.
        let second = "est_second_admin_token_0123456789abcdef0123";
        insert_admin_token(&h, "second", second).await;
        let r = h
            .call(
                "DELETE",
                "/v1/tokens/admin",
                Some(second),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 204, "{}: {}", b.name, r.json);
        let r = h
            .call(
                "DELETE",
                "/v1/tokens/second",
                Some(second),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 409, "{}: {}", b.name, r.json);
    }
}

#[tokio::test]
async fn last_admin_user_cannot_be_deleted_or_demoted() {
    for b in common::backends("last_admin_user_cannot_be_deleted_or_demoted").await {
        let h = harness(&b.store, auth_with(config())).await;
        h.create_user("boss", PW, &[("*", "admin")]).await;
        // The user is an admin: the token may go.
        let r = h
            .call(
                "DELETE",
                "/v1/tokens/admin",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 204, "{}: {}", b.name, r.json);
        let boss = h.session("boss", PW).await;
        let r = h
            .call(
                "PUT",
                "/v1/users/boss/roles",
                Some(&boss),
                Some(serde_json::json!({ "roles": [{ "project": "*", "role": "viewer" }] })),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 409, "{}: {}", b.name, r.json);
        assert_eq!(r.json["code"], "last_admin");
        let r = h
            .call(
                "DELETE",
                "/v1/users/boss",
                Some(&boss),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 409, "{}: {}", b.name, r.json);
        // Still admin: a role change that keeps `*` admin passes.
        let r = h
            .call(
                "PUT",
                "/v1/users/boss/roles",
                Some(&boss),
                Some(serde_json::json!({ "roles": [{ "project": "*", "role": "admin" }] })),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}: {}", b.name, r.json);
        let r = h
            .call("GET", "/v1/users", Some(&boss), None, "127.0.0.1", &[])
            .await;
        assert_eq!(r.status, 200, "{}: {}", b.name, r.json);
    }
}

#[tokio::test]
async fn scoped_token_does_not_list_other_environments() {
    for b in common::backends("scoped_token_does_not_list_other_environments").await {
        let h = harness(&b.store, auth_with(config())).await;
        h.setup_projects().await;
        let r = h
            .call(
                "POST",
                "/v1/tokens",
                Some(ADMIN),
                Some(serde_json::json!({
                    "name": "dev-only", "project": "dify", "environments": ["dev"], "access": "read"
                })),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
        let token = r.json["token"].as_str().unwrap().to_owned();
        let r = h
            .call(
                "GET",
                "/v1/projects/dify",
                Some(&token),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "{}: {}", b.name, r.json);
        assert_eq!(
            r.json["environments"],
            serde_json::json!(["dev"]),
            "{}",
            b.name
        );
        let r = h
            .call("GET", "/v1/projects", Some(&token), None, "127.0.0.1", &[])
            .await;
        assert_eq!(
            r.json["projects"][0]["environments"],
            serde_json::json!(["dev"]),
            "{}",
            b.name
        );
        let r = h
            .call(
                "GET",
                "/v1/projects/dify/environments",
                Some(&token),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        let names: Vec<&str> = r
            .json
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["dev"], "{}", b.name);
        // The admin still sees them all.
        let r = h
            .call(
                "GET",
                "/v1/projects/dify",
                Some(ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.json["environments"].as_array().unwrap().len(), 3);
    }
}

/// The one error shape: exactly `code` and `message`, both strings.
fn assert_error_shape(what: &str, status: axum::http::StatusCode, body: &serde_json::Value) {
    assert!(
        status.is_client_error() || status.is_server_error(),
        "{what}: {status}"
    );
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {status} body is not a JSON object: {body}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, vec!["code", "message"], "{what}: {body}");
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn errors_echo_nothing_the_client_sent() {
    let b = common::backends("errors_echo_nothing_the_client_sent")
        .await
        .remove(0);
    let h = harness(&b.store, auth_with(config())).await;
    h.setup_projects().await;
    put(&h, "/v1/projects/dify/environments/dev/secrets/A", "v").await;
    let p = "/v1/projects/dify/environments/dev";
    type Case = (
        &'static str,
        &'static str,
        String,
        Option<serde_json::Value>,
    );
    let cases: Vec<Case> = vec![
        (
            "bidi in a secret name",
            "PUT",
            format!("{p}/secrets/CANARYNAME%E2%80%AEX"),
            Some(serde_json::json!({ "value": "v" })),
        ),
        (
            "bidi in a project name",
            "POST",
            "/v1/projects".into(),
            Some(serde_json::json!({ "name": "canaryname\u{202e}x" })),
        ),
        (
            "long project name",
            "POST",
            "/v1/projects".into(),
            Some(serde_json::json!({ "name": "canaryname".repeat(10) })),
        ),
        (
            "number for a string",
            "POST",
            "/v1/projects".into(),
            Some(serde_json::json!({ "name": 918273645 })),
        ),
        (
            "unknown field",
            "POST",
            "/v1/projects".into(),
            Some(serde_json::json!({ "name": "x", "canaryfield": 1 })),
        ),
        (
            "unknown enum variant",
            "POST",
            "/v1/tokens".into(),
            Some(
                serde_json::json!({ "name": "t", "project": "dify", "environments": ["dev"], "access": "canaryvariant" }),
            ),
        ),
        (
            "unknown environment in scope",
            "POST",
            "/v1/tokens".into(),
            Some(
                serde_json::json!({ "name": "t", "project": "dify", "environments": ["canaryname"], "access": "read" }),
            ),
        ),
        (
            "existing project",
            "POST",
            "/v1/projects".into(),
            Some(serde_json::json!({ "name": "dify" })),
        ),
        (
            "negative ttl",
            "POST",
            "/v1/tokens".into(),
            Some(
                serde_json::json!({ "name": "t", "project": "dify", "environments": ["dev"], "access": "read", "ttl_seconds": -918273645 }),
            ),
        ),
        (
            "rollback to the current version",
            "POST",
            format!("{p}/secrets/A/rollback"),
            Some(serde_json::json!({ "version": 1 })),
        ),
        (
            "destroy an unknown version",
            "POST",
            format!("{p}/secrets/A/destroy"),
            Some(serde_json::json!({ "versions": [918273645] })),
        ),
        (
            "bad query number",
            "GET",
            "/v1/audit?limit=canary918273645".into(),
            None,
        ),
        (
            "query overflow",
            "GET",
            "/v1/audit?limit=918273645918273645918273645".into(),
            None,
        ),
        (
            "bad query bool",
            "GET",
            format!("{p}/secrets?deleted=canaryvariant"),
            None,
        ),
        ("method not allowed", "PATCH", "/v1/projects".into(), None),
        ("unknown route", "GET", "/v1/canaryroute".into(), None),
        (
            "duplicate role",
            "POST",
            "/v1/users".into(),
            Some(
                serde_json::json!({ "username": "u1", "password": PW, "roles": [
                { "project": "dify", "role": "viewer" }, { "project": "dify", "role": "admin" }] }),
            ),
        ),
        (
            "existing user",
            "POST",
            "/v1/users".into(),
            Some(serde_json::json!({ "username": "canaryuser", "password": PW, "roles": [] })),
        ),
    ];
    h.create_user("canaryuser", PW, &[]).await;
    for (what, method, uri, body) in cases {
        let r = h
            .call(method, &uri, Some(ADMIN), body, "127.0.0.1", &[])
            .await;
        assert_error_shape(what, r.status, &r.json);
        let text = r.json.to_string();
        for canary in ["canary", "CANARY", "918273645", "\u{202e}", "\\u202e"] {
            assert!(
                !text.contains(canary),
                "{what}: {canary:?} echoed in {text}"
            );
        }
    }
    // Too many or too large headers: 431 in the same shape.
    let many: Vec<(String, String)> = (0..80).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let many_refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let r = h
        .call(
            "GET",
            "/v1/projects",
            Some(ADMIN),
            None,
            "127.0.0.1",
            &many_refs,
        )
        .await;
    assert_eq!(r.status, 431);
    assert_error_shape("many headers", r.status, &r.json);
    let big = "c".repeat(40 * 1024);
    let r = h
        .call(
            "GET",
            "/v1/projects",
            Some(ADMIN),
            None,
            "127.0.0.1",
            &[("x-big", &big)],
        )
        .await;
    assert_eq!(r.status, 431);
    assert_error_shape("large header", r.status, &r.json);
    // 405 keeps its Allow header.
    let r = h
        .call("PATCH", "/v1/projects", Some(ADMIN), None, "127.0.0.1", &[])
        .await;
    assert_eq!(r.status, 405);
    assert!(r.headers.contains_key("allow"));
    assert_eq!(r.json["code"], "method_not_allowed");
}
