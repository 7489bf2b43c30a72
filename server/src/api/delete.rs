//! Deleting a project or an environment (admin). Refused while it holds secrets
//! unless `?force=true`; audited with how many secrets and tokens went with it.

use super::extract::Auth;
use super::{event, ApiError, AppState};
use crate::store::bulk::Removal;
use crate::store::StoreError;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use envseal_core::validate_slug;
use serde::Deserialize;
use std::sync::Arc;

/// `?force=true`.
#[derive(Deserialize)]
pub(super) struct ForceQuery {
    #[serde(default)]
    force: bool,
}

fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(what),
        e => e.into(),
    }
}

fn answer(removal: Removal, what: &str) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    match removal {
        Removal::HoldsSecrets(n) => Err(ApiError::Conflict {
            code: "not_empty",
            message: format!(
                "the {what} still holds {n} secret(s); delete them first or pass force"
            ),
        }),
        Removal::Done { secrets, tokens } => Ok((
            StatusCode::OK,
            Json(serde_json::json!({ "secrets": secrets, "tokens": tokens })),
        )),
    }
}

/// Deletes an environment.
#[utoipa::path(delete, path = "/v1/projects/{project}/environments/{env}",
    params(("force" = Option<bool>, Query, description = "delete even when it holds secrets")),
    responses((status = 200), (status = 403, body = envseal_core::wire::ErrorBody),
        (status = 404, body = envseal_core::wire::ErrorBody), (status = 409, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn environment(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path((project, env)): Path<(String, String)>,
    Query(q): Query<ForceQuery>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !auth.0.is_admin() {
        return Err(ApiError::Forbidden);
    }
    validate_slug("project", &project)?;
    validate_slug("environment", &env)?;
    let row = match state.store.environment(&project, &env).await {
        Err(StoreError::NotFound) => {
            return Err(super::metadata::environment_not_found(&state, &project).await)
        }
        other => other?,
    };
    let removal = state
        .store
        .delete_environment(&row, q.force, crate::now())
        .await
        .map_err(not_found("environment"))?;
    if let Removal::Done { secrets, tokens } = removal {
        state
            .audit
            .record(
                event(
                    &auth.0,
                    &auth.1,
                    "environment.delete",
                    format!("{project}/{env}"),
                )
                .details(serde_json::json!({
                    "secrets": secrets, "tokens_revoked": tokens, "force": q.force,
                })),
            )
            .await?;
        tracing::info!(project = %project, env = %env, secrets, tokens, by = %auth.0.name, "environment deleted");
    }
    answer(removal, "environment")
}

/// Deletes a project.
#[utoipa::path(delete, path = "/v1/projects/{project}",
    params(("force" = Option<bool>, Query, description = "delete even when it holds secrets")),
    responses((status = 200), (status = 403, body = envseal_core::wire::ErrorBody),
        (status = 404, body = envseal_core::wire::ErrorBody), (status = 409, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn project(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(project): Path<String>,
    Query(q): Query<ForceQuery>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    if !auth.0.is_admin() {
        return Err(ApiError::Forbidden);
    }
    validate_slug("project", &project)?;
    let row = state
        .store
        .project(&project)
        .await
        .map_err(not_found("project"))?;
    let removal = state
        .store
        .delete_project(&row, q.force)
        .await
        .map_err(not_found("project"))?;
    if let Removal::Done { secrets, tokens } = removal {
        state
            .audit
            .record(event(&auth.0, &auth.1, "project.delete", &project).details(
                serde_json::json!({
                    "secrets": secrets, "tokens_removed": tokens, "force": q.force,
                }),
            ))
            .await?;
        tracing::info!(project = %project, secrets, tokens, by = %auth.0.name, "project deleted");
    }
    answer(removal, "project")
}
