//! Machine tokens: created (shown once), listed, revoked. Admin only.

use super::extract::{Auth, Body};
use super::{ApiError, AppState};
use crate::auth::{format_environments, generate_token, hash_token};
use crate::store::TokenRow;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use envseal_core::validate_slug;
use envseal_core::wire::{Access, CreateToken, CreatedToken, TokenInfo, TokenList};
use std::sync::Arc;

pub(crate) fn token_info(t: TokenRow) -> TokenInfo {
    TokenInfo {
        id: t.id,
        name: t.name,
        project: t.project_name,
        environments: if t.environments.is_empty() {
            Vec::new()
        } else {
            t.environments.split(',').map(str::to_owned).collect()
        },
        access: t.access,
        created_at: t.created_at,
        expires_at: t.expires_at,
        revoked_at: t.revoked_at,
    }
}

fn require_admin(auth: &Auth) -> Result<(), ApiError> {
    if auth.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Creates a scoped machine token. The answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken)))]
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(req): Body<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    require_admin(&auth)?;
    if req.name.trim().is_empty() || req.name.len() > 128 || req.name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            "token name must be 1–128 printable characters",
        ));
    }
    validate_slug("project", &req.project)?;
    if req.environments.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_scope",
            "name at least one environment, or \"*\" for all",
        ));
    }
    let project = state
        .store
        .project(&req.project)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("project"),
            e => e.into(),
        })?;
    let known: Vec<String> = state
        .store
        .environments(project.id)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    for env in req.environments.iter().filter(|e| *e != "*") {
        validate_slug("environment", env)?;
        if !known.contains(env) {
            return Err(ApiError::bad_request(
                "invalid_scope",
                format!("environment {env} does not exist in {}", project.name),
            ));
        }
    }
    let now = crate::now();
    let expires_at = match req.ttl_seconds {
        Some(ttl) if ttl <= 0 => {
            return Err(ApiError::bad_request(
                "invalid_ttl",
                "ttl_seconds must be positive",
            ))
        }
        Some(ttl) => Some(now.saturating_add(ttl)),
        None => None,
    };
    let (id, token) = generate_token();
    let row = TokenRow {
        id,
        name: req.name,
        token_hash: hash_token(&token),
        project_id: Some(project.id),
        project_name: Some(project.name),
        environments: format_environments(&req.environments),
        access: match req.access {
            Access::Read => "read",
            Access::Write => "write",
        }
        .to_owned(),
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    if !state.store.insert_token(&row).await? {
        return Err(ApiError::Conflict {
            code: "busy",
            message: "token collision; try again".to_owned(),
        });
    }
    tracing::info!(token = %row.id, name = %row.name, by = %auth.0.name, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            info: token_info(row),
            token: token.to_string(),
        }),
    ))
}

/// Lists tokens (never their values).
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = TokenList)))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<TokenList>, ApiError> {
    require_admin(&auth)?;
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.into_iter().map(token_info).collect(),
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", responses((status = 204)))]
pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    state
        .store
        .revoke_token(&id, crate::now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("token"),
            e => e.into(),
        })?;
    tracing::info!(token = %id, by = %auth.0.name, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
