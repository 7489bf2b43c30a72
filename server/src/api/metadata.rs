//! Secret metadata without the value: `GET …/secrets/{name}/meta` needs only the
//! metadata permission (developers on production, viewers), opens no ciphertext and
//! is not a `secret.read` in the audit log. `envseal secrets get` without `--reveal`
//! uses it.

use super::error::ApiError;
use super::extract::Auth;
use super::AppState;
use crate::auth::Permission;
use axum::extract::{Path, State};
use axum::Json;
use envseal_core::validate_env_var_name;
use envseal_core::wire::SecretMeta;
use std::sync::Arc;

/// One secret's metadata (name, current version, description, times).
#[utoipa::path(get, path = "/v1/projects/{project}/environments/{env}/secrets/{name}/meta",
    responses((status = 200, body = SecretMeta), (status = 403, body = envseal_core::wire::ErrorBody),
        (status = 404, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn get(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env, name)): Path<(String, String, String)>,
) -> Result<Json<SecretMeta>, ApiError> {
    validate_env_var_name(&name)?;
    let env =
        super::secrets::environment(&state, &auth, &project, &env, Permission::Metadata).await?;
    let row = state.secrets.meta(&env, &name).await?;
    Ok(Json(super::secrets::meta_wire(row)))
}

/// What a missing environment really means: the project may be what is missing.
pub(super) async fn environment_not_found(state: &AppState, project: &str) -> ApiError {
    match state.store.project(project).await {
        Err(crate::store::StoreError::NotFound) => ApiError::NotFound("project"),
        _ => ApiError::NotFound("environment"),
    }
}
