//! The server always keeps an administrator: revoking the last admin token, deleting
//! the last user who is admin on `*`, or taking that role away, is refused with
//! `409 last_admin`. (A server without an admin can only be repaired offline, with
//! `envseal-server admin recover`.)

use super::{ApiError, AppState};
use crate::auth::Role;

/// The credential a request is about to remove.
pub(super) enum Removing<'a> {
    /// A machine token, by id.
    Token(&'a str),
    /// A user's `*` admin role (deleted, or its roles replaced), by user id.
    User(&'a str),
}

/// Refuses the change unless another usable admin credential remains: an admin token
/// neither revoked nor expired, or a user admin on `*` who is not disabled.
pub(super) async fn keep_one(state: &AppState, removing: Removing<'_>) -> Result<(), ApiError> {
    let now = crate::now();
    let tokens = state.store.list_tokens().await?;
    let other_token = tokens.iter().any(|t| {
        t.access == "admin"
            && t.revoked_at.is_none()
            && t.expires_at.is_none_or(|e| e > now)
            && !matches!(removing, Removing::Token(id) if id == t.id)
    });
    if other_token {
        return Ok(());
    }
    for u in state.store.list_users().await? {
        if u.disabled_at.is_some() || matches!(removing, Removing::User(id) if id == u.id) {
            continue;
        }
        let roles = state.store.user_roles(&u.id).await?;
        if roles
            .iter()
            .any(|r| r.project == "*" && Role::parse(&r.role) == Some(Role::Admin))
        {
            return Ok(());
        }
    }
    Err(ApiError::Conflict {
        code: "last_admin",
        message: "this is the last administrator credential of the server; create another \
                  admin token or admin user first"
            .to_owned(),
    })
}
