//! The HTTP API: routes under `/v1`, health checks and the OpenAPI document.
//!
//! Handlers authenticate, check scope or role, validate names, call
//! [`crate::secrets`], [`crate::login`] or the store, record the operation in the
//! audit log, and serialise. This layer is the only one that knows JSON or HTTP status
//! codes; it never logs request bodies.

mod admins;
mod audit;
mod auth;
mod delete;
mod error;
mod extract;
mod leaks;
mod metadata;
mod openapi;
mod projects;
mod rotate;
mod rotation;
mod secrets;
mod tokens;
mod users;

pub use error::ApiError;

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{Principal, Scope};
use crate::login::AuthService;
use crate::secrets::Secrets;
use crate::store::Store;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use extract::Client;
use std::sync::Arc;
use std::time::Duration;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Largest secret value accepted.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;

/// What every handler can reach.
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// Secret operations.
    pub secrets: Secrets,
    /// Token and export caches.
    pub cache: crate::cache::Cache,
    /// Whether the server speaks TLS (adds HSTS).
    pub tls: bool,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// People: login, limits, lockout, sessions.
    pub auth: AuthService,
    /// The audit chain's writer.
    pub audit: AuditLog,
    /// Limits on `POST /v1/leaks/check` (the login limits, in a state of their own).
    pub leak_limiter: crate::limiter::Limiter,
    /// Held while checking that an admin remains and removing an admin credential.
    admin_change: tokio::sync::Mutex<()>,
}

impl AppState {
    /// Wires the state and starts the audit writer (needs a Tokio runtime).
    pub fn new(
        store: Arc<Store>,
        secrets: Secrets,
        auth: AuthService,
        cache: crate::cache::Cache,
        tls: bool,
        request_timeout: Duration,
    ) -> Arc<Self> {
        let leak_limiter = crate::limiter::Limiter::memory(auth.config.limits);
        Self::with_leak_limiter(
            store,
            secrets,
            auth,
            cache,
            tls,
            request_timeout,
            leak_limiter,
        )
    }

    /// Like [`AppState::new`], with the leak-check limiter given (Redis for replicas).
    pub fn with_leak_limiter(
        store: Arc<Store>,
        secrets: Secrets,
        auth: AuthService,
        cache: crate::cache::Cache,
        tls: bool,
        request_timeout: Duration,
        leak_limiter: crate::limiter::Limiter,
    ) -> Arc<Self> {
        let audit = AuditLog::start(store.clone());
        Arc::new(AppState {
            store,
            secrets,
            cache,
            tls,
            request_timeout,
            auth,
            audit,
            leak_limiter,
            admin_change: tokio::sync::Mutex::new(()),
        })
    }
}

/// How a principal appears in the audit log: `user:NAME` or `token:LABEL#ID`.
fn actor(p: &Principal) -> String {
    match p.scope {
        Scope::User(_) => format!("user:{}", p.name),
        _ => format!("token:{}#{}", p.name, p.token_id),
    }
}

/// An audit event for what `p` does from `client`.
fn event(
    p: &Principal,
    client: &Client,
    action: &'static str,
    target: impl Into<String>,
) -> AuditEvent {
    AuditEvent::new(&actor(p), action, target).client(&client.ip_text(), &client.user_agent)
}

/// Builds the router (tests drive it with `oneshot`, the binary serves it).
pub fn app(state: Arc<AppState>) -> Router {
    let env = "/v1/projects/{project}/environments/{env}";
    let secret = format!("{env}/secrets/{{name}}");
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/projects", get(projects::list).post(projects::create))
        .route(
            "/v1/projects/{project}",
            get(projects::show).delete(delete::project),
        )
        .route(
            "/v1/projects/{project}/environments",
            get(projects::list_environments).post(projects::create_environment),
        )
        .route(env, axum::routing::delete(delete::environment))
        .route(&format!("{env}/export"), get(secrets::export))
        .route(&format!("{env}/secrets"), get(secrets::list))
        .route(
            &secret,
            get(secrets::get).put(secrets::put).delete(secrets::delete),
        )
        .route(&format!("{secret}/meta"), get(metadata::get))
        .route(&format!("{secret}/versions"), get(secrets::versions))
        .route(&format!("{secret}/rollback"), post(secrets::rollback))
        .route(&format!("{secret}/undelete"), post(secrets::undelete))
        .route(&format!("{secret}/destroy"), post(secrets::destroy))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/leaks/check", post(leaks::check))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .route("/v1/tokens/{id}/rotate", post(rotate::rotate))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/auth/me", get(auth::me))
        .route(
            "/v1/auth/password",
            axum::routing::put(auth::change_password),
        )
        .route("/v1/auth/mfa/enroll", post(auth::mfa_enroll))
        .route("/v1/auth/mfa/confirm", post(auth::mfa_confirm))
        .route("/v1/auth/mfa/disable", post(auth::mfa_disable))
        .route("/v1/users", get(users::list).post(users::create))
        .route("/v1/users/{name}", get(users::show).delete(users::delete))
        .route(
            "/v1/users/{name}/roles",
            axum::routing::put(users::set_roles),
        )
        .route(
            "/v1/users/{name}/password",
            axum::routing::put(users::set_password),
        )
        .route("/v1/users/{name}/unlock", post(users::unlock))
        .route(
            "/v1/users/{name}/mfa",
            axum::routing::delete(users::reset_mfa),
        )
        .route("/v1/audit", get(audit::list))
        .route("/v1/audit/verify", get(audit::verify))
        .merge(rotation::routes())
        .fallback(|| async { ApiError::NotFound("route") })
        .method_not_allowed_fallback(|| async { ApiError::Http(StatusCode::METHOD_NOT_ALLOWED) })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
        .layer(axum::middleware::from_fn(one_error_shape))
        .layer(SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));
    if state.tls {
        router = router.layer(SetResponseHeaderLayer::overriding(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    router = crate::metrics::layer(router);
    router.with_state(state)
}

/// Most request header bytes (names and values) accepted; more is a 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most request headers accepted; more is a 431.
pub const MAX_HEADERS: usize = 64;

/// Every error answer in the one JSON shape: oversized headers are refused here, and an
/// error produced outside the handlers (axum's path and query rejections, 405, the
/// timeout's 408) has its body replaced by fixed text, so nothing of the request is
/// echoed and no error is plain text or empty.
async fn one_error_shape(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let headers = req.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return ApiError::HeadersTooLarge.into_response();
    }
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let (replacement, body) = ApiError::Http(status).into_response().into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    for (name, value) in &replacement.headers {
        parts.headers.insert(name, value.clone());
    }
    axum::response::Response::from_parts(parts, body)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers and the key provider wraps and unwraps a key.
async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let db = state.store.ping().await.is_ok();
    let keys = {
        let dek = crate::crypto::Dek::generate();
        match state.secrets.keys().wrap(&dek).await {
            Ok(w) => state.secrets.keys().unwrap(&w).await.is_ok(),
            Err(_) => false,
        }
    };
    let status = if db && keys {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    // Login state is reported but does not make the server unready: without it only
    // logins fail (closed); secret fetches go on.
    let login_state = state.auth.limiter.ping().await;
    (
        status,
        Json(serde_json::json!({
            "database": word(db),
            "keys": word(keys),
            "key_provider": state.secrets.keys().name(),
            "login_state": word(login_state),
            "login_state_backend": state.auth.limiter.backend_name(),
        })),
    )
}

#[derive(OpenApi)]
#[openapi(
    info(title = "envseal", description = "Secrets for self-hosted Dify, envelope-encrypted."),
    paths(
        projects::list, projects::create, projects::show,
        projects::list_environments, projects::create_environment,
        secrets::export, secrets::list, secrets::get, secrets::put, secrets::delete,
        secrets::versions, secrets::rollback, secrets::undelete, secrets::destroy, metadata::get,
        tokens::list, tokens::create, tokens::revoke, rotate::rotate, delete::project, delete::environment, leaks::check,
        auth::login, auth::logout, auth::me, auth::change_password,
        auth::mfa_enroll, auth::mfa_confirm, auth::mfa_disable,
        users::list, users::create, users::show, users::delete, users::set_roles,
        users::set_password, users::unlock, users::reset_mfa,
        audit::list, audit::verify,
    ),
    components(schemas(envseal_core::wire::ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3 document of this API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(rotation::RotationDoc::openapi());
    doc
}

/// The served document: [`openapi`] completed with every error answer and name pattern.
pub fn openapi_document() -> serde_json::Value {
    let mut doc = serde_json::to_value(openapi()).expect("the OpenAPI document serialises");
    openapi::complete(&mut doc);
    doc
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi_document())
}
