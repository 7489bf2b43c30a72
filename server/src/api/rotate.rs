//! `POST /v1/tokens/{id}/rotate`: a new token with the same name and scope, shown
//! once; the old one keeps working for a grace period (default one hour, at most 30
//! days; 0 ends it now) so that deployments can switch without an outage.

use super::extract::{Auth, Body};
use super::tokens::{manages, token_info};
use super::{event, ApiError, AppState};
use crate::auth::{generate_token, hash_token};
use crate::store::{StoreError, TokenRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use envseal_core::wire::CreatedToken;
use serde::Deserialize;
use std::sync::Arc;

/// Longest grace period accepted.
const MAX_GRACE_SECONDS: i64 = 30 * 86_400;
/// Grace period when none is given.
const DEFAULT_GRACE_SECONDS: i64 = 3600;

/// Rotation request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateToken {
    /// How long the old token stays valid (seconds; 0: it ends now).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2592000)]
    grace_seconds: Option<i64>,
}

/// Rotates a token.
#[utoipa::path(post, path = "/v1/tokens/{id}/rotate", request_body = RotateToken,
    responses((status = 201, body = CreatedToken), (status = 400, body = envseal_core::wire::ErrorBody),
        (status = 403, body = envseal_core::wire::ErrorBody), (status = 404, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn rotate(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
    Body(req): Body<RotateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let grace = req.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(ApiError::bad_request(
            "invalid_grace",
            "grace_seconds must be between 0 and 2592000 (30 days)",
        ));
    }
    let Some(old) = state.store.token_by_id(&id).await? else {
        return Err(ApiError::NotFound("token"));
    };
    if !manages(&auth, &old) {
        return Err(ApiError::Forbidden);
    }
    let now = crate::now();
    let (new_id, token) = generate_token();
    let row = TokenRow {
        id: new_id,
        name: old.name.clone(),
        token_hash: hash_token(&token),
        project_id: old.project_id,
        project_name: old.project_name.clone(),
        environments: old.environments.clone(),
        access: old.access.clone(),
        created_at: now,
        expires_at: old.expires_at,
        revoked_at: None,
    };
    let old_until = now.saturating_add(grace);
    state
        .store
        .rotate_token(&row, &old.id, old_until, now)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound("token"),
            StoreError::Conflict => ApiError::Conflict {
                code: "busy",
                message: "token collision; try again".to_owned(),
            },
            e => e.into(),
        })?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "token.rotate", &row.name).details(serde_json::json!({
                "old_token_id": old.id,
                "token_id": row.id,
                "old_valid_until": old_until,
            })),
        )
        .await?;
    tracing::info!(old = %old.id, token = %row.id, by = %auth.0.name, "token rotated");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: token_info(row),
            token: token.to_string(),
        }),
    ))
}
