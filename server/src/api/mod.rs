//! The HTTP API: routes under `/v1`, health checks and the OpenAPI document.
//!
//! Handlers authenticate, check scope, validate names, call [`crate::secrets`] or the
//! store, and serialise. This layer is the only one that knows JSON or HTTP status
//! codes; it never logs request bodies.

mod error;
mod extract;
mod projects;
mod secrets;
mod tokens;

pub use error::ApiError;

use crate::secrets::Secrets;
use crate::store::Store;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
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
        .route("/v1/projects/{project}", get(projects::show))
        .route(
            "/v1/projects/{project}/environments",
            get(projects::list_environments).post(projects::create_environment),
        )
        .route(&format!("{env}/export"), get(secrets::export))
        .route(&format!("{env}/secrets"), get(secrets::list))
        .route(
            &secret,
            get(secrets::get).put(secrets::put).delete(secrets::delete),
        )
        .route(&format!("{secret}/versions"), get(secrets::versions))
        .route(&format!("{secret}/rollback"), post(secrets::rollback))
        .route(&format!("{secret}/undelete"), post(secrets::undelete))
        .route(&format!("{secret}/destroy"), post(secrets::destroy))
        .route("/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/v1/tokens/{id}", axum::routing::delete(tokens::revoke))
        .fallback(|| async { ApiError::NotFound("route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            state.request_timeout,
        ))
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
    router.with_state(state)
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
    (
        status,
        Json(serde_json::json!({
            "database": word(db),
            "keys": word(keys),
            "key_provider": state.secrets.keys().name(),
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
        secrets::versions, secrets::rollback, secrets::undelete, secrets::destroy,
        tokens::list, tokens::create, tokens::revoke,
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
    ApiDoc::openapi()
}

async fn openapi_json() -> impl IntoResponse {
    Json(openapi())
}
