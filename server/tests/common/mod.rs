//! Test support: a fresh store on every backend that is available.
#![allow(dead_code, unreachable_pub)]

use envseal_server::crypto::{KeyProvider, LocalKeyProvider};
use envseal_server::secrets::Secrets;
use envseal_server::store::Store;
use sqlx::Connection as _;
use std::sync::Arc;

/// A store with its temp dir (kept alive) and a name for messages.
pub struct Backend {
    pub name: &'static str,
    pub store: Arc<Store>,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

/// SQLite always; PostgreSQL when `ENVSEAL_TEST_POSTGRES_URL` is set (required under
/// `ENVSEAL_TEST_STRICT=1`). Each gets a fresh, empty database.
pub async fn backends(test: &str) -> Vec<Backend> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    out.push(Backend {
        name: "sqlite",
        store: Arc::new(Store::connect(&url).await.unwrap()),
        url,
        _dir: Some(dir),
    });
    match std::env::var("ENVSEAL_TEST_POSTGRES_URL") {
        Ok(base) => {
            let url = fresh_pg_schema(&base).await;
            out.push(Backend {
                name: "postgres",
                store: Arc::new(Store::connect(&url).await.unwrap()),
                url,
                _dir: None,
            });
        }
        Err(_) => {
            if std::env::var("ENVSEAL_TEST_STRICT").as_deref() == Ok("1") {
                panic!("{test}: ENVSEAL_TEST_POSTGRES_URL is not set and ENVSEAL_TEST_STRICT=1 forbids skipping");
            }
            eprintln!("SKIPPED {test} on postgres: ENVSEAL_TEST_POSTGRES_URL is not set");
        }
    }
    out
}

/// Creates an empty schema and returns a URL whose connections use it.
pub async fn fresh_pg_schema(base: &str) -> String {
    let schema = format!("t_{}_{}", std::process::id(), rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// A local key provider with a fresh key.
pub fn fresh_keys(dir: &std::path::Path) -> Arc<dyn KeyProvider> {
    Arc::new(LocalKeyProvider::from_file(&dir.join(format!("k{}", rand::random::<u64>()))).unwrap())
}

/// Secrets over a store with a fresh key, keeping `keep` versions.
pub fn secrets(store: &Arc<Store>, dir: &std::path::Path, keep: i64) -> Secrets {
    Secrets::new(store.clone(), fresh_keys(dir), keep)
}

/// Login machinery with cheap argon2 parameters and in-memory limits (defaults
/// otherwise), for tests.
pub fn cheap_auth() -> envseal_server::login::AuthService {
    auth_with(envseal_server::login::AuthConfig::default())
}

/// Login machinery from `config` with cheap argon2 parameters, limits in memory.
pub fn auth_with(
    mut config: envseal_server::login::AuthConfig,
) -> envseal_server::login::AuthService {
    config.hash = envseal_server::password::HashParams {
        m_cost: 256,
        t_cost: 1,
        p_cost: 1,
    };
    let limiter = envseal_server::limiter::Limiter::memory(config.limits);
    envseal_server::login::AuthService::new(config, limiter).unwrap()
}

/// The admin token every [`Harness`] knows.
pub const ADMIN: &str = "est_admin_token_for_auth_tests_0123456789abcdef";

/// An answer: status, headers, JSON body (Null when not JSON).
pub struct Resp {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: serde_json::Value,
}

/// A router over a store, driven in-process with a chosen client address.
pub struct Harness {
    pub router: axum::Router,
    pub state: Arc<envseal_server::api::AppState>,
    pub keys: Arc<dyn KeyProvider>,
    _dir: tempfile::TempDir,
}

/// A harness on `store` with the admin token, a fresh key and `auth`.
pub async fn harness(store: &Arc<Store>, auth: envseal_server::login::AuthService) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let keys = fresh_keys(dir.path());
    harness_with_keys(store, keys, auth, dir).await
}

/// A harness sharing `keys` (a second replica of the same deployment).
pub async fn harness_with_keys(
    store: &Arc<Store>,
    keys: Arc<dyn KeyProvider>,
    auth: envseal_server::login::AuthService,
    dir: tempfile::TempDir,
) -> Harness {
    if store
        .token_by_hash(&envseal_server::auth::hash_token(ADMIN))
        .await
        .unwrap()
        .is_none()
    {
        store
            .insert_token(&envseal_server::store::TokenRow {
                id: "admin".into(),
                name: "admin".into(),
                token_hash: envseal_server::auth::hash_token(ADMIN),
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
    let secrets = Secrets::new(store.clone(), keys.clone(), 10);
    let state = envseal_server::api::AppState::new(
        store.clone(),
        secrets,
        auth,
        envseal_server::cache::Cache::new(std::time::Duration::from_secs(30)),
        false,
        std::time::Duration::from_secs(30),
    );
    Harness {
        router: envseal_server::api::app(state.clone()),
        state,
        keys,
        _dir: dir,
    }
}

impl Harness {
    /// One request from `ip` (port 40000) with optional bearer token, JSON body and
    /// extra headers.
    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
        ip: &str,
        headers: &[(&str, &str)],
    ) -> Resp {
        use http_body_util::BodyExt as _;
        use tower::ServiceExt as _;
        let mut req = axum::http::Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(axum::body::Body::from(serde_json::to_vec(&b).unwrap()))
                .unwrap(),
            None => req.body(axum::body::Body::empty()).unwrap(),
        };
        let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(addr));
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Resp {
            status,
            headers,
            json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        }
    }

    /// `POST /v1/auth/login` from `ip`.
    pub async fn login(&self, user: &str, password: &str, totp: Option<&str>, ip: &str) -> Resp {
        let mut body = serde_json::json!({ "username": user, "password": password });
        if let Some(code) = totp {
            body["totp"] = code.into();
        }
        self.call("POST", "/v1/auth/login", None, Some(body), ip, &[])
            .await
    }

    /// Project `dify` with environments `prod`, `staging`, `dev`, and project `other`.
    pub async fn setup_projects(&self) {
        for p in ["dify", "other"] {
            let r = self
                .call(
                    "POST",
                    "/v1/projects",
                    Some(ADMIN),
                    Some(serde_json::json!({ "name": p })),
                    "127.0.0.1",
                    &[],
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.json);
        }
        for e in ["prod", "staging", "dev"] {
            let r = self
                .call(
                    "POST",
                    "/v1/projects/dify/environments",
                    Some(ADMIN),
                    Some(serde_json::json!({ "name": e })),
                    "127.0.0.1",
                    &[],
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.json);
        }
    }

    /// Creates a user with `(project, role)` grants.
    pub async fn create_user(&self, name: &str, password: &str, grants: &[(&str, &str)]) {
        let roles: Vec<serde_json::Value> = grants
            .iter()
            .map(|(p, r)| serde_json::json!({ "project": p, "role": r }))
            .collect();
        let r = self
            .call(
                "POST",
                "/v1/users",
                Some(ADMIN),
                Some(serde_json::json!({ "username": name, "password": password, "roles": roles })),
                "127.0.0.1",
                &[],
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.json);
    }

    /// Logs in (must succeed) and returns the session token.
    pub async fn session(&self, user: &str, password: &str) -> String {
        let r = self.login(user, password, None, &fresh_ip()).await;
        assert_eq!(r.status, 200, "{}", r.json);
        r.json["token"].as_str().unwrap().to_owned()
    }

    /// Every audit row, in order.
    pub async fn audit_rows(&self) -> Vec<envseal_server::store::AuditRow> {
        self.state.store.audit_page(0, 1_000_000).await.unwrap()
    }
}

/// A client address no other call in this process used.
pub fn fresh_ip() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "10.{}.{}.{}",
        100 + (n >> 16) % 100,
        (n >> 8) & 255,
        n & 255
    )
}
