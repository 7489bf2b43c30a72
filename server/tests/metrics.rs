//! `/metrics`: off without a token, refuses a wrong one, and with the right one shows
//! request counts by route template, cache lookups, audit commit latency and queue
//! depth, login failures and pool usage — and never a project or secret name.

mod common;

use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

const METRICS_TOKEN: &str = "mt_scrape_token_for_tests_0123456789";

async fn scrape(h: &common::Harness, token: Option<&str>) -> (u16, String) {
    let mut req = axum::http::Request::builder().uri("/metrics");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let resp = h
        .router
        .clone()
        .oneshot(req.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn metrics_need_the_token_and_count_routes_cache_audit_and_logins() {
    // The only test in this binary: it owns the process environment.
    std::env::set_var("ENVSEAL_METRICS_TOKEN", METRICS_TOKEN);
    let b = common::backends("metrics").await.remove(0);
    let h = common::harness(&b.store, common::cheap_auth()).await;
    h.setup_projects().await;
    let env = "/v1/projects/dify/environments/prod";
    let r = h
        .call(
            "PUT",
            &format!("{env}/secrets/SECRET_NAME_CANARY"),
            Some(common::ADMIN),
            Some(serde_json::json!({"value": "v"})),
            "127.0.0.1",
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.json);
    for _ in 0..3 {
        let r = h
            .call(
                "GET",
                &format!("{env}/export"),
                Some(common::ADMIN),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200);
    }
    let r = h
        .login("nobody", "wrong-password-123", None, "10.9.8.7")
        .await;
    assert_eq!(r.status, 401);

    assert_eq!(scrape(&h, None).await.0, 401);
    assert_eq!(
        scrape(&h, Some("mt_wrong_token_0123456789abcdef")).await.0,
        401
    );
    let (status, text) = scrape(&h, Some(METRICS_TOKEN)).await;
    assert_eq!(status, 200, "{text}");
    let has = |needle: &str| {
        assert!(text.contains(needle), "missing {needle} in:\n{text}");
    };
    has(
        r#"envseal_http_requests_total{route="/v1/projects/{project}/environments/{env}/export",method="GET",status="200"} 3"#,
    );
    has("envseal_http_request_duration_seconds_bucket{");
    has(r#"envseal_cache_lookups_total{cache="export",result="hit"}"#);
    has(r#"envseal_cache_lookups_total{cache="export",result="miss"}"#);
    has("envseal_audit_commit_duration_seconds_bucket");
    has("envseal_audit_queue_depth");
    has(r#"envseal_audit_events_total{action="auth.login",outcome="failure""#);
    has(r#"envseal_audit_events_total{action="secret.export",outcome="success",reason=""} 3"#);
    has("envseal_db_pool_connections");
    has("envseal_db_pool_in_use_connections");
    assert!(
        !text.contains("SECRET_NAME_CANARY"),
        "a secret name reached a label"
    );
    assert!(
        !text.contains("dify/prod"),
        "a concrete path reached a label"
    );
    assert!(!text.contains(METRICS_TOKEN));
}
