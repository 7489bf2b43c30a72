//! The HTTP API driven in-process (`oneshot`, no socket).

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use envseal_server::api::{app, AppState};
use envseal_server::secrets::Secrets;
use http_body_util::BodyExt as _;
use std::time::Duration;
use tower::ServiceExt as _;

const ADMIN: &str = "est_admin_token_for_api_tests_0123456789abcdef";

struct Api {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

async fn api_on(b: &common::Backend) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = b.store.clone();
    let hash = envseal_server::auth::hash_token(ADMIN);
    store
        .insert_token(&envseal_server::store::TokenRow {
            id: "admin".into(),
            name: "admin".into(),
            token_hash: hash,
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
    let secrets = Secrets::new(store.clone(), common::fresh_keys(dir.path()), 10);
    let state = AppState::new(
        store,
        secrets,
        common::cheap_auth(),
        envseal_server::cache::Cache::new(Duration::from_secs(30)),
        false,
        Duration::from_secs(10),
    );
    Api {
        router: app(state),
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, headers, json)
    }

    async fn json(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: serde_json::Value,
    ) -> (StatusCode, serde_json::Value) {
        let (s, _, j) = self
            .call(method, uri, token, Some(serde_json::to_vec(&body).unwrap()))
            .await;
        (s, j)
    }

    async fn setup(&self) {
        let (s, _) = self
            .json(
                "POST",
                "/v1/projects",
                Some(ADMIN),
                serde_json::json!({"name": "dify"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED);
        for env in ["prod", "staging"] {
            let (s, _) = self
                .json(
                    "POST",
                    "/v1/projects/dify/environments",
                    Some(ADMIN),
                    serde_json::json!({ "name": env }),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
    }

    async fn token(&self, envs: &[&str], access: &str, ttl: Option<i64>) -> String {
        let (s, j) = self
            .json(
                "POST",
                "/v1/tokens",
                Some(ADMIN),
                serde_json::json!({"name": "svc", "project": "dify", "environments": envs,
                                   "access": access, "ttl_seconds": ttl}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{j}");
        j["token"].as_str().unwrap().to_owned()
    }
}

const PROD: &str = "/v1/projects/dify/environments/prod";

#[tokio::test]
async fn bodies_over_the_limit_are_refused_cleanly() {
    for b in common::backends("bodies_over_the_limit_are_refused_cleanly").await {
        let api = api_on(&b).await;
        api.setup().await;
        let huge = format!("{{\"value\":\"{}\"}}", "a".repeat(10 * 1024 * 1024));
        let (s, _, j) = api
            .call(
                "PUT",
                &format!("{PROD}/secrets/BIG"),
                Some(ADMIN),
                Some(huge.into_bytes()),
            )
            .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{}", b.name);
        assert_eq!(j["code"], "payload_too_large");
        // Under the body limit but over the value limit: a clear 400.
        let big = format!("{{\"value\":\"{}\"}}", "a".repeat(300 * 1024));
        let (s, _, j) = api
            .call(
                "PUT",
                &format!("{PROD}/secrets/BIG"),
                Some(ADMIN),
                Some(big.into_bytes()),
            )
            .await;
        assert_eq!(
            (s, j["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("value_too_large"))
        );
        // Nothing was stored.
        let (s, _, _) = api
            .call("GET", &format!("{PROD}/secrets/BIG"), Some(ADMIN), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn bad_input_gets_clear_errors_that_never_echo_values() {
    for b in common::backends("bad_input_gets_clear_errors").await {
        let api = api_on(&b).await;
        api.setup().await;
        let cases: Vec<(&str, String, Vec<u8>, &str)> = vec![
            (
                "PUT",
                format!("{PROD}/secrets/A"),
                b"{not json".to_vec(),
                "invalid_json",
            ),
            (
                "PUT",
                format!("{PROD}/secrets/A"),
                br#"{"cas":"canary-77"}"#.to_vec(),
                "invalid_body",
            ),
            (
                "PUT",
                format!("{PROD}/secrets/A"),
                br#"{"value":"x","value_base64":"eA=="}"#.to_vec(),
                "invalid_value",
            ),
            (
                "PUT",
                format!("{PROD}/secrets/A"),
                br#"{"value_base64":"***"}"#.to_vec(),
                "invalid_value",
            ),
            (
                "PUT",
                format!("{PROD}/secrets/A"),
                br#"{}"#.to_vec(),
                "invalid_value",
            ),
            (
                "PUT",
                format!("{PROD}/secrets/1BAD"),
                br#"{"value":"x"}"#.to_vec(),
                "invalid_name",
            ),
            (
                "PUT",
                format!("{PROD}/secrets/A%2DB"),
                br#"{"value":"x"}"#.to_vec(),
                "invalid_name",
            ),
            (
                "POST",
                "/v1/projects".into(),
                br#"{"name":"Bad Name"}"#.to_vec(),
                "invalid_name",
            ),
            (
                "POST",
                "/v1/projects".into(),
                br#"{"name":"ok","extra":"canary-77"}"#.to_vec(),
                "invalid_body",
            ),
        ];
        for (method, uri, body, code) in cases {
            let (s, _, j) = api
                .call(method, &uri, Some(ADMIN), Some(body.clone()))
                .await;
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "{}: {uri} {}",
                b.name,
                String::from_utf8_lossy(&body)
            );
            assert_eq!(j["code"], code, "{uri}: {j}");
            assert!(!j.to_string().contains("canary-77"), "value echoed: {j}");
        }
        let (s, _, j) = api.call("GET", "/v1/nope", Some(ADMIN), None).await;
        assert_eq!(
            (s, j["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
}

#[tokio::test]
async fn tokens_are_scoped_checked_and_expire() {
    for b in common::backends("tokens_are_scoped_checked_and_expire").await {
        let api = api_on(&b).await;
        api.setup().await;
        for env in ["prod", "staging"] {
            let (s, _) = api
                .json(
                    "PUT",
                    &format!("/v1/projects/dify/environments/{env}/secrets/A"),
                    Some(ADMIN),
                    serde_json::json!({"value": format!("{env}-value")}),
                )
                .await;
            assert_eq!(s, StatusCode::OK);
        }
        let staging_reader = api.token(&["staging"], "read", None).await;
        let (s, _, j) = api
            .call(
                "GET",
                "/v1/projects/dify/environments/staging/secrets/A",
                Some(&staging_reader),
                None,
            )
            .await;
        assert_eq!(
            (s, j["value"].as_str()),
            (StatusCode::OK, Some("staging-value"))
        );
        for uri in [
            format!("{PROD}/secrets/A"),
            format!("{PROD}/export"),
            format!("{PROD}/secrets"),
        ] {
            let (s, _, j) = api.call("GET", &uri, Some(&staging_reader), None).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{}: {uri}", b.name);
            assert!(!j.to_string().contains("prod-value"));
        }
        let (s, _) = api
            .json(
                "PUT",
                "/v1/projects/dify/environments/staging/secrets/A",
                Some(&staging_reader),
                serde_json::json!({"value": "x"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Scoped tokens cannot administer.
        let (s, _, _) = api
            .call("GET", "/v1/tokens", Some(&staging_reader), None)
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, _) = api
            .json(
                "POST",
                "/v1/projects",
                Some(&staging_reader),
                serde_json::json!({"name": "x"}),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Unknown, malformed and missing tokens are all the same 401.
        for t in [Some("est_nope"), Some(""), None] {
            let (s, h, j) = api.call("GET", &format!("{PROD}/secrets/A"), t, None).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED);
            assert_eq!(j["code"], "unauthorized");
            assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
        }
        // Expiry.
        let short = api.token(&["*"], "read", Some(1)).await;
        let (s, _, _) = api
            .call("GET", &format!("{PROD}/secrets/A"), Some(&short), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (s, _, j) = api
            .call("GET", &format!("{PROD}/secrets/A"), Some(&short), None)
            .await;
        assert_eq!(
            (s, j["message"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("token expired"))
        );
    }
}

#[tokio::test]
async fn export_has_an_etag_and_answers_304() {
    for b in common::backends("export_has_an_etag_and_answers_304").await {
        let api = api_on(&b).await;
        api.setup().await;
        api.json(
            "PUT",
            &format!("{PROD}/secrets/A"),
            Some(ADMIN),
            serde_json::json!({"value": "1"}),
        )
        .await;
        let (s, h, j) = api
            .call("GET", &format!("{PROD}/export"), Some(ADMIN), None)
            .await;
        assert_eq!(s, StatusCode::OK);
        let tag = h[header::ETAG].to_str().unwrap().to_owned();
        assert_eq!(tag, format!("\"{}\"", j["revision"]));
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let req = Request::get(format!("{PROD}/export"))
            .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
            .header(header::IF_NONE_MATCH, &tag)
            .body(Body::empty())
            .unwrap();
        let resp = api.router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{}", b.name);
        // A write changes the tag.
        api.json(
            "PUT",
            &format!("{PROD}/secrets/B"),
            Some(ADMIN),
            serde_json::json!({"value": "2"}),
        )
        .await;
        let (_, h2, j2) = api
            .call("GET", &format!("{PROD}/export"), Some(ADMIN), None)
            .await;
        assert_ne!(h2[header::ETAG].to_str().unwrap(), tag);
        assert_eq!(j2["secrets"]["B"]["value"], "2");
    }
}

#[tokio::test]
async fn health_readiness_and_openapi() {
    let b = common::backends("health_readiness_and_openapi")
        .await
        .remove(0);
    let api = api_on(&b).await;
    let (s, _, _) = api.call("GET", "/healthz", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, j) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(
        (s, j["database"].as_str(), j["keys"].as_str()),
        (StatusCode::OK, Some("ok"), Some("ok"))
    );
    let (s, _, j) = api.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(j["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/projects",
        "/v1/projects/{project}/environments/{env}/export",
        "/v1/projects/{project}/environments/{env}/secrets/{name}",
        "/v1/tokens",
    ] {
        assert!(j["paths"].get(path).is_some(), "missing {path}");
    }
    // Readiness reports a database that went away.
    b.store.close().await;
    let (s, _, j) = api.call("GET", "/readyz", None, None).await;
    assert_eq!(
        (s, j["database"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    // And requests that need it get a 503 with a generic body.
    let (s, _, j) = api.call("GET", "/v1/projects", Some(ADMIN), None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{j}");
    assert_eq!(j["code"], "unavailable");
}

#[tokio::test]
async fn leak_check_matches_current_values_the_caller_may_see() {
    for b in common::backends("leak_check_matches_current_values").await {
        let api = api_on(&b).await;
        api.setup().await;
        for (env, value) in [
            ("prod", "prod-leak-value"),
            ("staging", "staging-leak-value"),
        ] {
            let (s, _) = api
                .json(
                    "PUT",
                    &format!("/v1/projects/dify/environments/{env}/secrets/OPENAI_API_KEY"),
                    Some(ADMIN),
                    serde_json::json!({ "value": value }),
                )
                .await;
            assert_eq!(s, StatusCode::OK);
        }
        // An old value no longer counts once replaced.
        api.json(
            "PUT",
            &format!("{PROD}/secrets/DB_PASSWORD"),
            Some(ADMIN),
            serde_json::json!({"value": "old-password"}),
        )
        .await;
        api.json(
            "PUT",
            &format!("{PROD}/secrets/DB_PASSWORD"),
            Some(ADMIN),
            serde_json::json!({"value": "new-password"}),
        )
        .await;
        let body = serde_json::json!({"candidates": [
            {"value": "prod-leak-value", "id": 1},
            {"value": "staging-leak-value", "id": 2},
            {"value": "not-stored-anywhere", "id": 3},
            {"value": "old-password", "id": 4},
            {"value": "new-password", "id": 5},
        ]});
        let (s, j) = api
            .json("POST", "/v1/leaks/check", Some(ADMIN), body.clone())
            .await;
        assert_eq!(s, StatusCode::OK, "{}: {j}", b.name);
        let got: Vec<(i64, String)> = j["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["id"].as_i64().unwrap(),
                    format!(
                        "{}/{}/{}",
                        m["project"].as_str().unwrap(),
                        m["environment"].as_str().unwrap(),
                        m["name"].as_str().unwrap()
                    ),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "dify/prod/OPENAI_API_KEY".to_owned()),
                (2, "dify/staging/OPENAI_API_KEY".to_owned()),
                (5, "dify/prod/DB_PASSWORD".to_owned()),
            ],
            "{}",
            b.name
        );
        // A token scoped to staging learns nothing about prod.
        let staging = api.token(&["staging"], "read", None).await;
        let (_, j) = api
            .json("POST", "/v1/leaks/check", Some(&staging), body)
            .await;
        let ids: Vec<i64> = j["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap())
            .collect();
        assert_eq!(ids, vec![2]);
        // Fingerprints are keyed: not a plain SHA-256 of the value.
        let fp: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT v.fingerprint FROM secret_versions v JOIN secrets s ON s.id = v.secret_id \
             WHERE s.name = 'DB_PASSWORD' AND v.version = 2",
        )
        .fetch_one(b.store.pool())
        .await
        .unwrap();
        let fp = fp.expect("fingerprint stored");
        use sha2::Digest as _;
        assert_ne!(fp, sha2::Sha256::digest(b"new-password").to_vec());
        assert_eq!(fp.len(), 32);
        // Too many candidates: a clear 400.
        let many: Vec<_> = (0..501)
            .map(|i| serde_json::json!({"value": "x", "id": i}))
            .collect();
        let (s, j) = api
            .json(
                "POST",
                "/v1/leaks/check",
                Some(ADMIN),
                serde_json::json!({"candidates": many}),
            )
            .await;
        assert_eq!(
            (s, j["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("too_many_candidates"))
        );
    }
}
