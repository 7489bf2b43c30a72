//! Machine tokens: created (shown once), listed, revoked. Server admins manage every
//! token; project admins and operators manage their project's tokens.

use super::extract::{Auth, Body};
use super::{event, ApiError, AppState};
use crate::auth::{format_environments, generate_token, hash_token};
use crate::auth::{Role, Scope};
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

/// Whether the caller may manage tokens of some project at all.
fn manages_any(auth: &Auth) -> bool {
    match &auth.0.scope {
        Scope::Admin => true,
        Scope::Project { .. } => false,
        Scope::User(u) => u.roles.iter().any(|b| b.role >= Role::Operator),
    }
}

/// Whether the caller may manage this token.
pub(super) fn manages(auth: &Auth, t: &TokenRow) -> bool {
    auth.0.is_admin()
        || t.project_name
            .as_deref()
            .is_some_and(|p| auth.0.can_manage_tokens(p))
}

/// Creates a scoped machine token. The answer is the only time it is shown.
#[utoipa::path(post, path = "/v1/tokens", request_body = CreateToken,
    responses((status = 201, body = CreatedToken)))]
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(req): Body<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    if !manages_any(&auth) {
        return Err(ApiError::Forbidden);
    }
    if req.name.trim().is_empty()
        || req.name.chars().count() > 128
        || req.name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(
            "invalid_name",
            "token name must be 1–128 printable characters",
        ));
    }
    validate_slug("project", &req.project)?;
    if !auth.0.can_manage_tokens(&req.project) {
        return Err(ApiError::Forbidden);
    }
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
            return Err(ApiError::NotFound("environment"));
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
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "token.create", &row.name).details(serde_json::json!({
                "token_id": row.id,
                "project": row.project_name,
                "environments": row.environments,
                "access": row.access,
                "expires_at": row.expires_at,
            })),
        )
        .await?;
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
    if !manages_any(&auth) {
        return Err(ApiError::Forbidden);
    }
    let tokens = state.store.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens
            .into_iter()
            .filter(|t| manages(&auth, t))
            .map(token_info)
            .collect(),
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", responses((status = 204)))]
pub(super) async fn revoke(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !manages_any(&auth) {
        return Err(ApiError::Forbidden);
    }
    let Some(row) = state.store.token_by_id(&id).await? else {
        return Err(ApiError::NotFound("token"));
    };
    if !manages(&auth, &row) {
        return Err(ApiError::Forbidden);
    }
    let _admin_change = state.admin_change.lock().await;
    if row.access == "admin" && row.revoked_at.is_none() {
        super::admins::keep_one(&state, super::admins::Removing::Token(&row.id)).await?;
    }
    state
        .store
        .revoke_token(&id, crate::now())
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => ApiError::NotFound("token"),
            e => e.into(),
        })?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "token.revoke", &row.name)
                .details(serde_json::json!({ "token_id": id })),
        )
        .await?;
    tracing::info!(token = %id, by = %auth.0.name, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
