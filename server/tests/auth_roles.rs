//! The role table: each role (and each kind of machine token) can do exactly what
//! docs/auth.md says, and nothing more.

mod common;

use common::{auth_with, harness, ADMIN};
use envseal_server::login::AuthConfig;

const PW: &str = "a-long-and-varied-password-1";

/// Who calls.
const WHO: &[&str] = &[
    "admin",
    "padmin",
    "operator",
    "developer",
    "viewer",
    "outsider",
    "rtoken",
    "wtoken",
];

/// (operation, method, uri, body, principals allowed). Everyone else gets 403.
/// (operation, method, uri, body, principals allowed).
type Row = (
    &'static str,
    &'static str,
    String,
    Option<serde_json::Value>,
    Vec<&'static str>,
);

fn table() -> Vec<Row> {
    let p = "/v1/projects/dify/environments";
    let staff = vec!["admin", "padmin", "operator"];
    let mut t = vec![
        (
            "show project",
            "GET",
            "/v1/projects/dify".to_owned(),
            None,
            vec![
                "admin",
                "padmin",
                "operator",
                "developer",
                "viewer",
                "rtoken",
                "wtoken",
            ],
        ),
        (
            "create project",
            "POST",
            "/v1/projects".to_owned(),
            Some(serde_json::json!({"name": "NAME"})),
            vec!["admin"],
        ),
        (
            "create environment",
            "POST",
            "/v1/projects/dify/environments".to_owned(),
            Some(serde_json::json!({"name": "NAME"})),
            vec!["admin", "padmin"],
        ),
        (
            "list prod names",
            "GET",
            format!("{p}/prod/secrets"),
            None,
            vec![
                "admin",
                "padmin",
                "operator",
                "developer",
                "viewer",
                "rtoken",
                "wtoken",
            ],
        ),
        (
            "read prod value",
            "GET",
            format!("{p}/prod/secrets/A"),
            None,
            vec!["admin", "padmin", "operator", "rtoken", "wtoken"],
        ),
        (
            "export prod",
            "GET",
            format!("{p}/prod/export"),
            None,
            vec!["admin", "padmin", "operator", "rtoken", "wtoken"],
        ),
        (
            "write prod",
            "PUT",
            format!("{p}/prod/secrets/A"),
            Some(serde_json::json!({"value": "v"})),
            vec!["admin", "padmin", "operator", "wtoken"],
        ),
        (
            "prod versions",
            "GET",
            format!("{p}/prod/secrets/A/versions"),
            None,
            vec![
                "admin",
                "padmin",
                "operator",
                "developer",
                "viewer",
                "rtoken",
                "wtoken",
            ],
        ),
        (
            "read staging value",
            "GET",
            format!("{p}/staging/secrets/A"),
            None,
            vec!["admin", "padmin", "operator", "developer", "wtoken"],
        ),
        (
            "export staging",
            "GET",
            format!("{p}/staging/export"),
            None,
            vec!["admin", "padmin", "operator", "developer", "wtoken"],
        ),
        (
            "write staging",
            "PUT",
            format!("{p}/staging/secrets/A"),
            Some(serde_json::json!({"value": "v"})),
            vec!["admin", "padmin", "operator", "developer", "wtoken"],
        ),
        (
            "list staging names",
            "GET",
            format!("{p}/staging/secrets"),
            None,
            vec![
                "admin",
                "padmin",
                "operator",
                "developer",
                "viewer",
                "wtoken",
            ],
        ),
        (
            "create token",
            "POST",
            "/v1/tokens".to_owned(),
            Some(
                serde_json::json!({"name": "NAME", "project": "dify", "environments": ["*"], "access": "read"}),
            ),
            staff.clone(),
        ),
        (
            "list tokens",
            "GET",
            "/v1/tokens".to_owned(),
            None,
            staff.clone(),
        ),
        (
            "list users",
            "GET",
            "/v1/users".to_owned(),
            None,
            vec!["admin"],
        ),
        (
            "create user",
            "POST",
            "/v1/users".to_owned(),
            Some(serde_json::json!({"username": "NAME", "password": PW, "roles": []})),
            vec!["admin"],
        ),
        (
            "unlock user",
            "POST",
            "/v1/users/viewer/unlock".to_owned(),
            None,
            vec!["admin"],
        ),
        (
            "read audit",
            "GET",
            "/v1/audit".to_owned(),
            None,
            vec!["admin"],
        ),
        (
            "verify audit",
            "GET",
            "/v1/audit/verify".to_owned(),
            None,
            vec!["admin"],
        ),
    ];
    // Other project: only the server admin and its viewer.
    t.push((
        "show other project",
        "GET",
        "/v1/projects/other".to_owned(),
        None,
        vec!["admin", "outsider"],
    ));
    t
}

#[tokio::test]
async fn every_role_can_do_exactly_what_it_may() {
    for b in common::backends("every_role_can_do_exactly_what_it_may").await {
        let mut config = AuthConfig::default();
        config.limits.per_ip = 1000;
        config.limits.per_account = 1000;
        config.limits.global = 1000;
        let h = harness(&b.store, auth_with(config)).await;
        h.setup_projects().await;
        for env in ["prod", "staging"] {
            let r = h
                .call(
                    "PUT",
                    &format!("/v1/projects/dify/environments/{env}/secrets/A"),
                    Some(ADMIN),
                    Some(serde_json::json!({"value": "v0"})),
                    "127.0.0.1",
                    &[],
                )
                .await;
            assert_eq!(r.status, 200);
        }
        h.create_user("admin", PW, &[("*", "admin")]).await;
        h.create_user("padmin", PW, &[("dify", "admin")]).await;
        h.create_user("operator", PW, &[("dify", "operator")]).await;
        h.create_user("developer", PW, &[("dify", "developer")])
            .await;
        h.create_user("viewer", PW, &[("dify", "viewer")]).await;
        h.create_user("outsider", PW, &[("other", "viewer")]).await;
        let mut tokens = std::collections::HashMap::new();
        for who in &WHO[..6] {
            tokens.insert(*who, h.session(who, PW).await);
        }
        for (who, envs, access) in [
            ("rtoken", vec!["prod"], "read"),
            ("wtoken", vec!["*"], "write"),
        ] {
            let r = h
                .call("POST", "/v1/tokens", Some(ADMIN),
                    Some(serde_json::json!({"name": who, "project": "dify", "environments": envs, "access": access})),
                    "127.0.0.1", &[])
                .await;
            assert_eq!(r.status, 201);
            tokens.insert(who, r.json["token"].as_str().unwrap().to_owned());
        }
        let mut failures = Vec::new();
        for (n, (op, method, uri, body, allowed)) in table().into_iter().enumerate() {
            for who in WHO {
                let body = body.clone().map(|b| {
                    serde_json::from_str(&b.to_string().replace("NAME", &format!("n{n}-{who}")))
                        .unwrap()
                });
                let r = h
                    .call(method, &uri, Some(&tokens[who]), body, "127.0.0.1", &[])
                    .await;
                let want_ok = allowed.contains(who);
                let got_ok = r.status.is_success();
                if want_ok != got_ok || (!got_ok && r.status != 403) {
                    failures.push(format!("{op} as {who}: got {} {}", r.status, r.json));
                }
            }
        }
        assert!(failures.is_empty(), "{}: {failures:#?}", b.name);

        // Values never reach a viewer or a developer in prod, by any route.
        for who in ["viewer", "developer"] {
            let r = h
                .call(
                    "GET",
                    "/v1/projects/dify/environments/prod/secrets",
                    Some(&tokens[who]),
                    None,
                    "127.0.0.1",
                    &[],
                )
                .await;
            assert!(!r.json.to_string().contains("v0"), "{who}: {}", r.json);
        }
        // An operator cannot mint admin power: its tokens are scoped to its project.
        let r = h
            .call("POST", "/v1/tokens", Some(&tokens["operator"]),
                Some(serde_json::json!({"name": "x", "project": "other", "environments": ["*"], "access": "write"})),
                "127.0.0.1", &[])
            .await;
        assert_eq!(r.status, 403);
        // Listing projects shows only those with a role.
        let r = h
            .call(
                "GET",
                "/v1/projects",
                Some(&tokens["outsider"]),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        let names: Vec<&str> = r.json["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["other"]);
        // Roles apply from the next request on.
        let r = h
            .call(
                "PUT",
                "/v1/users/viewer/roles",
                Some(ADMIN),
                Some(serde_json::json!({"roles": [{"project": "dify", "role": "operator"}]})),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200);
        let r = h
            .call(
                "GET",
                "/v1/projects/dify/environments/prod/secrets/A",
                Some(&tokens["viewer"]),
                None,
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 200);
    }
}
