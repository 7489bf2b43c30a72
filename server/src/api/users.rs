//! `/v1/users`: people and their roles. Server admins only (admin on `*`), including
//! unlocking a locked-out account and resetting a lost second factor.

use super::extract::{Auth, Body};
use super::{event, ApiError, AppState};
use crate::audit::Outcome;
use crate::auth::Role;
use crate::limiter::account_key;
use crate::login::validate_username;
use crate::store::{RoleRow, StoreError, UserRow};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use envseal_core::validate_slug;
use envseal_core::wire::{CreateUser, RoleGrant, SetPassword, SetRoles, UserInfo, UserList};
use std::sync::Arc;
use zeroize::Zeroizing;

fn require_admin(auth: &Auth) -> Result<(), ApiError> {
    if auth.0.is_admin() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Checks grants: known roles, `*` or an existing project, one grant per project.
async fn role_rows(state: &AppState, grants: &[RoleGrant]) -> Result<Vec<RoleRow>, ApiError> {
    let mut rows: Vec<RoleRow> = Vec::new();
    for g in grants {
        let Some(role) = Role::parse(&g.role) else {
            return Err(ApiError::bad_request(
                "invalid_role",
                "a role is one of admin, operator, developer, viewer",
            ));
        };
        if g.project != "*" {
            validate_slug("project", &g.project)?;
            state.store.project(&g.project).await.map_err(|e| match e {
                StoreError::NotFound => ApiError::NotFound("project"),
                e => e.into(),
            })?;
        }
        if rows.iter().any(|r| r.project == g.project) {
            return Err(ApiError::bad_request(
                "invalid_role",
                "more than one role for the same project",
            ));
        }
        rows.push(RoleRow {
            project: g.project.clone(),
            role: role.as_str().to_owned(),
        });
    }
    Ok(rows)
}

async fn info(state: &AppState, u: &UserRow) -> Result<UserInfo, ApiError> {
    let roles = state.store.user_roles(&u.id).await?;
    let locked = state
        .auth
        .limiter
        .locked(&account_key(&u.username))
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?
        .is_some();
    Ok(UserInfo {
        id: u.id.clone(),
        username: u.username.clone(),
        roles: roles
            .into_iter()
            .map(|r| RoleGrant {
                project: r.project,
                role: r.role,
            })
            .collect(),
        mfa: u.totp_enabled == 1,
        created_at: u.created_at,
        locked,
    })
}

async fn user(state: &AppState, name: &str) -> Result<UserRow, ApiError> {
    state
        .store
        .user_by_name(name)
        .await?
        .ok_or(ApiError::NotFound("user"))
}

/// Checks the policy, hashes (bounded argon2) and stores a new password; every
/// session of the user ends.
pub(super) async fn store_password(
    state: &AppState,
    user: &UserRow,
    password: Zeroizing<String>,
) -> Result<(), ApiError> {
    state
        .auth
        .config
        .policy
        .check(&user.username, &password)
        .map_err(|m| ApiError::bad_request("weak_password", m))?;
    let hash = state
        .auth
        .hasher
        .hash(password)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    Ok(state
        .store
        .set_password(&user.id, &hash, crate::now())
        .await?)
}

/// All users.
#[utoipa::path(get, path = "/v1/users", responses((status = 200, body = UserList)))]
pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    auth: Auth,
) -> Result<Json<UserList>, ApiError> {
    require_admin(&auth)?;
    let mut users = Vec::new();
    for u in state.store.list_users().await? {
        users.push(info(&state, &u).await?);
    }
    Ok(Json(UserList { users }))
}

/// Creates a user with roles; the password must pass the policy.
#[utoipa::path(post, path = "/v1/users", request_body = CreateUser,
    responses((status = 201, body = UserInfo), (status = 409, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Body(req): Body<CreateUser>,
) -> Result<(StatusCode, Json<UserInfo>), ApiError> {
    require_admin(&auth)?;
    validate_username(&req.username).map_err(|m| ApiError::bad_request("invalid_name", m))?;
    let roles = role_rows(&state, &req.roles).await?;
    state
        .auth
        .config
        .policy
        .check(&req.username, &req.password)
        .map_err(|m| ApiError::bad_request("weak_password", m))?;
    let hash = state
        .auth
        .hasher
        .hash(req.password)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    let now = crate::now();
    let mut id = [0u8; 8];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut id);
    let row = UserRow {
        id: hex::encode(id),
        username: req.username.clone(),
        password_hash: hash,
        created_at: now,
        updated_at: now,
        disabled_at: None,
        totp_kek_id: None,
        totp_wrapped_dek: None,
        totp_secret: None,
        totp_enabled: 0,
        totp_last_step: 0,
    };
    state
        .store
        .insert_user(&row, &roles)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict {
                code: "already_exists",
                message: "a user of this name already exists".to_owned(),
            },
            e => e.into(),
        })?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "user.create", &row.username)
                .details(serde_json::json!({ "roles": req.roles.iter().map(|g| format!("{}:{}", g.project, g.role)).collect::<Vec<_>>() })),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info(&state, &row).await?)))
}

/// One user.
#[utoipa::path(get, path = "/v1/users/{name}", responses((status = 200, body = UserInfo)))]
pub(super) async fn show(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Json<UserInfo>, ApiError> {
    require_admin(&auth)?;
    let u = user(&state, &name).await?;
    Ok(Json(info(&state, &u).await?))
}

/// Deletes a user and ends its sessions.
#[utoipa::path(delete, path = "/v1/users/{name}", responses((status = 204)))]
pub(super) async fn delete(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    let u = user(&state, &name).await?;
    let _admin_change = state.admin_change.lock().await;
    super::admins::keep_one(&state, super::admins::Removing::User(&u.id)).await?;
    state.store.delete_user(&u.id).await?;
    state
        .audit
        .record(event(&auth.0, &auth.1, "user.delete", &u.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Replaces a user's roles (effective on the next request of every session).
#[utoipa::path(put, path = "/v1/users/{name}/roles", request_body = SetRoles,
    responses((status = 200, body = UserInfo)))]
pub(super) async fn set_roles(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
    Body(req): Body<SetRoles>,
) -> Result<Json<UserInfo>, ApiError> {
    require_admin(&auth)?;
    let u = user(&state, &name).await?;
    let roles = role_rows(&state, &req.roles).await?;
    let _admin_change = state.admin_change.lock().await;
    let stays_admin = roles
        .iter()
        .any(|r| r.project == "*" && r.role == Role::Admin.as_str());
    if !stays_admin {
        super::admins::keep_one(&state, super::admins::Removing::User(&u.id)).await?;
    }
    state.store.set_roles(&u.id, &roles).await?;
    state
        .audit
        .record(
            event(&auth.0, &auth.1, "user.roles", &u.username)
                .details(serde_json::json!({ "roles": req.roles.iter().map(|g| format!("{}:{}", g.project, g.role)).collect::<Vec<_>>() })),
        )
        .await?;
    Ok(Json(info(&state, &u).await?))
}

/// Sets a user's password (admin reset); every session of the user ends.
#[utoipa::path(put, path = "/v1/users/{name}/password", request_body = SetPassword,
    responses((status = 204)))]
pub(super) async fn set_password(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
    Body(req): Body<SetPassword>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    let u = user(&state, &name).await?;
    store_password(&state, &u, req.password).await?;
    state
        .audit
        .record(event(&auth.0, &auth.1, "user.password", &u.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends a lockout and clears the failure count.
#[utoipa::path(post, path = "/v1/users/{name}/unlock", responses((status = 204)))]
pub(super) async fn unlock(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    let u = user(&state, &name).await?;
    if let Err(e) = state.auth.limiter.unlock(&account_key(&u.username)).await {
        state
            .audit
            .record(
                event(&auth.0, &auth.1, "user.unlock", &u.username)
                    .outcome(Outcome::Failure, "limiter_unavailable"),
            )
            .await?;
        return Err(ApiError::LoginUnavailable(Box::new(e)));
    }
    state
        .audit
        .record(event(&auth.0, &auth.1, "user.unlock", &u.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a user's TOTP and recovery codes (lost device); they enrol again.
#[utoipa::path(delete, path = "/v1/users/{name}/mfa", responses((status = 204)))]
pub(super) async fn reset_mfa(
    State(state): State<Arc<AppState>>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&auth)?;
    let u = user(&state, &name).await?;
    state.store.clear_totp(&u.id).await?;
    state
        .audit
        .record(event(&auth.0, &auth.1, "user.mfa_reset", &u.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
