//! Secret routes under `/v1/projects/{project}/environments/{env}`, including the
//! whole-environment export that the launcher uses.

use super::extract::{Auth, Body};
use super::{event, ApiError, AppState, MAX_VALUE_BYTES};
use crate::audit::Outcome;
use crate::auth::Permission;
use crate::cache::{CachedExport, CachedExportBody};
use crate::secrets::Write;
use crate::store::{EnvRow, SecretRow};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use envseal_core::wire::{
    Destroy, EnvironmentExport, PutSecret, Rollback, SecretList, SecretMeta, SecretWithValue,
    VersionList, VersionMeta,
};
use envseal_core::{validate_env_var_name, validate_slug};
use serde::Deserialize;
use std::sync::Arc;
use zeroize::Zeroizing;

fn target(env: &EnvRow, name: &str) -> String {
    format!("{}/{}/{name}", env.project_name, env.name)
}

/// Checks the caller may use `permission` in `project`/`env`; a refusal is audited.
/// Runs before any lookup so that a token learns nothing about environments it
/// cannot reach.
async fn authorize(
    state: &AppState,
    auth: &Auth,
    project: &str,
    env: &str,
    permission: Permission,
) -> Result<(), ApiError> {
    validate_slug("project", project)?;
    validate_slug("environment", env)?;
    if auth.0.allows(project, env, permission) {
        return Ok(());
    }
    state
        .audit
        .record(
            event(
                &auth.0,
                &auth.1,
                "access.denied",
                format!("{project}/{env}"),
            )
            .outcome(Outcome::Denied, "permission")
            .details(serde_json::json!({ "needed": format!("{permission:?}").to_lowercase() })),
        )
        .await?;
    Err(ApiError::Forbidden)
}

/// Authorises, then resolves the environment.
pub(super) async fn environment(
    state: &AppState,
    auth: &Auth,
    project: &str,
    env: &str,
    permission: Permission,
) -> Result<EnvRow, ApiError> {
    authorize(state, auth, project, env, permission).await?;
    match state.store.environment(project, env).await {
        Err(crate::store::StoreError::NotFound) => {
            Err(super::metadata::environment_not_found(state, project).await)
        }
        other => other.map_err(Into::into),
    }
}

pub(super) fn meta_wire(s: SecretRow) -> SecretMeta {
    SecretMeta {
        name: s.name,
        version: s.current_version,
        description: s.description,
        created_at: s.created_at,
        updated_at: s.updated_at,
        deleted_at: s.deleted_at,
    }
}

fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("digits are a valid header")
}

/// The whole environment in one answer, with an ETag; `If-None-Match` gives 304.
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/export",
    responses((status = 200, body = EnvironmentExport), (status = 304)))]
pub(super) async fn export(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &auth, &project, &env, Permission::Read).await?;
    let generation = state.store.generation();
    let cached = match state.cache.export(&project, &env, generation) {
        Some(hit) => hit,
        None => {
            let env = environment(&state, &auth, &project, &env, Permission::Read).await?;
            if headers.get(header::IF_NONE_MATCH) == Some(&etag(env.revision)) {
                return Ok(not_modified(env.revision));
            }
            let (revision, values) = state.secrets.export(&env).await?;
            let body = EnvironmentExport {
                project: env.project_name.clone(),
                environment: env.name.clone(),
                revision,
                secrets: values
                    .into_iter()
                    .map(|(name, value)| (name, value.to_wire()))
                    .collect(),
            };
            let mut json = Zeroizing::new(Vec::with_capacity(4096));
            serde_json::to_writer(&mut *json, &body)
                .map_err(|e| ApiError::Internal(Box::new(e)))?;
            let built = Arc::new(CachedExport {
                env,
                revision,
                names: body.secrets.keys().cloned().collect(),
                body: json,
            });
            state.cache.put_export(built.clone(), generation);
            built
        }
    };
    state
        .audit
        .record(
            event(
                &auth.0,
                &auth.1,
                "secret.export",
                format!("{}/{}", cached.env.project_name, cached.env.name),
            )
            .details(serde_json::json!({ "revision": cached.revision, "names": cached.names })),
        )
        .await?;
    tracing::debug!(project = %cached.env.project_name, env = %cached.env.name, by = %auth.0.name, "environment exported");
    if headers.get(header::IF_NONE_MATCH) == Some(&etag(cached.revision)) {
        return Ok(not_modified(cached.revision));
    }
    let tag = etag(cached.revision);
    let body = axum::body::Body::from(bytes::Bytes::from_owner(CachedExportBody(cached)));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, tag),
        ],
        body,
    )
        .into_response())
}

fn not_modified(revision: i64) -> Response {
    (StatusCode::NOT_MODIFIED, [(header::ETAG, etag(revision))]).into_response()
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    #[serde(default)]
    deleted: bool,
}

/// Secret names and metadata (no values).
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/secrets",
    params(("deleted" = Option<bool>, Query, description = "include soft-deleted secrets")),
    responses((status = 200, body = SecretList)))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<SecretList>, ApiError> {
    let env = environment(&state, &auth, &project, &env, Permission::Metadata).await?;
    let rows = state.store.list_secrets(env.id, q.deleted).await?;
    Ok(Json(SecretList {
        secrets: rows.into_iter().map(meta_wire).collect(),
    }))
}

#[derive(Deserialize)]
pub(super) struct GetQuery {
    version: Option<i64>,
}

/// One secret's value (current, or `?version=N`).
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/secrets/{name}",
    params(("version" = Option<i64>, Query, description = "a kept version")),
    responses((status = 200, body = SecretWithValue), (status = 404, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Query(q): Query<GetQuery>,
) -> Result<Json<SecretWithValue>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Read).await?;
    let (version, value) = state.secrets.get(&env, &name, q.version).await?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "secret.read", target(&env, &name))
                .details(serde_json::json!({ "version": version })),
        )
        .await?;
    tracing::info!(project = %env.project_name, env = %env.name, secret = %name, version, by = %auth.0.name, "secret read");
    Ok(Json(SecretWithValue {
        name,
        version,
        value: value.to_wire(),
    }))
}

/// Writes a new version (optionally check-and-set).
#[utoipa::path(put, path = "/v1/projects/{project}/environments/{env}/secrets/{name}",
    request_body = PutSecret,
    responses((status = 200, body = SecretMeta), (status = 409, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn put(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<PutSecret>,
) -> Result<Json<SecretMeta>, ApiError> {
    envseal_core::check_deliverable(&name, req.allow_dangerous_name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let value = req
        .decode_value()
        .map_err(|e| ApiError::bad_request("invalid_value", e.to_string()))?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(ApiError::bad_request(
            "value_too_large",
            format!("a value may be at most {MAX_VALUE_BYTES} bytes"),
        ));
    }
    let version = state
        .secrets
        .put(
            &env,
            Write {
                name: &name,
                value: &value,
                cas: req.cas,
                description: req.description.as_deref(),
                actor: &auth.0.name,
                now: crate::now(),
                derived: req.derived.unwrap_or(false),
            },
        )
        .await?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "secret.write", target(&env, &name))
                .details(serde_json::json!({ "version": version })),
        )
        .await?;
    tracing::info!(project = %env.project_name, env = %env.name, secret = %name, version, by = %auth.0.name, "secret written");
    let row = state.secrets.meta(&env, &name).await?;
    Ok(Json(meta_wire(row)))
}

/// Soft-deletes a secret (it leaves the export; versions are kept).
#[utoipa::path(delete, path = "/v1/projects/{project}/environments/{env}/secrets/{name}",
    responses((status = 204)))]
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    state.secrets.delete(&env, &name, crate::now()).await?;
    state
        .audit
        .record(event(
            &auth.0,
            &auth.1,
            "secret.delete",
            target(&env, &name),
        ))
        .await?;
    tracing::info!(project = %env.project_name, env = %env.name, secret = %name, by = %auth.0.name, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Restores a soft-deleted secret.
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/undelete",
    responses((status = 200, body = SecretMeta)))]
pub(super) async fn undelete(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
) -> Result<Json<SecretMeta>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    state
        .secrets
        .undelete(&env, &name)
        .await
        .map_err(|e| state_conflict(e, "not_deleted"))?;
    state
        .audit
        .record(event(
            &auth.0,
            &auth.1,
            "secret.undelete",
            target(&env, &name),
        ))
        .await?;
    tracing::info!(project = %env.project_name, env = %env.name, secret = %name, by = %auth.0.name, "secret undeleted");
    Ok(Json(meta_wire(state.secrets.meta(&env, &name).await?)))
}

/// Kept versions, newest first.
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/versions",
    responses((status = 200, body = VersionList)))]
pub(super) async fn versions(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
) -> Result<Json<VersionList>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Metadata).await?;
    let (secret, rows) = state.secrets.versions(&env, &name).await?;
    Ok(Json(VersionList {
        versions: rows
            .into_iter()
            .map(|v| VersionMeta {
                current: v.version == secret.current_version,
                version: v.version,
                created_at: v.created_at,
                created_by: v.created_by,
                destroyed: v.destroyed_at.is_some(),
            })
            .collect(),
    }))
}

/// What the secret's state forbids (rollback to the current version, destroying the
/// current version, undeleting a live secret) is a 409, not a malformed request.
fn state_conflict(e: crate::secrets::SecretsError, code: &'static str) -> ApiError {
    match e {
        crate::secrets::SecretsError::Invalid(message) => ApiError::Conflict { code, message },
        e => e.into(),
    }
}

/// Makes an older version's value current again (as a new version).
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/rollback",
    request_body = Rollback, responses((status = 200, body = SecretMeta)))]
pub(super) async fn rollback(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<Rollback>,
) -> Result<Json<SecretMeta>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let version = state
        .secrets
        .rollback(&env, &name, req.version, &auth.0.name, crate::now())
        .await
        .map_err(|e| state_conflict(e, "already_current"))?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "secret.rollback", target(&env, &name))
                .details(serde_json::json!({ "from": req.version, "version": version })),
        )
        .await?;
    tracing::info!(project = %env.project_name, env = %env.name, secret = %name, from = req.version, version, by = %auth.0.name, "secret rolled back");
    Ok(Json(meta_wire(state.secrets.meta(&env, &name).await?)))
}

/// Crypto-erases versions for good.
#[utoipa::path(post, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/destroy",
    request_body = Destroy, responses((status = 200)))]
pub(super) async fn destroy(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
    Body(req): Body<Destroy>,
) -> Result<Json<serde_json::Value>, ApiError> {
    validate_env_var_name(&name)?;
    let env = environment(&state, &auth, &project, &env, Permission::Write).await?;
    let n = state
        .secrets
        .destroy(&env, &name, &req.versions, crate::now())
        .await
        .map_err(|e| state_conflict(e, "current_version"))?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "secret.destroy", target(&env, &name))
                .details(serde_json::json!({ "versions": req.versions, "destroyed": n })),
        )
        .await?;
    tracing::info!(project = %env.project_name, env = %env.name, secret = %name, versions = ?req.versions, by = %auth.0.name, "secret versions destroyed");
    Ok(Json(serde_json::json!({ "destroyed": n })))
}
