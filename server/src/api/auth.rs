//! `/v1/auth`: login (bearer token or HttpOnly cookie), logout, who am I, own password,
//! TOTP enrolment.

use super::extract::{AnyAuth, Auth, Body, Client, SESSION_COOKIE};
use super::{event, ApiError, AppState};
use crate::audit::Outcome;
use crate::auth::{Principal, Scope};
use crate::login::LoginAttempt;
use crate::mfa;
use crate::store::{StoreError, UserRow};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use envseal_core::wire::{
    LoginRequest, LoginResponse, MfaCode, MfaEnrolment, RecoveryCodes, RoleGrant, SetPassword,
    WhoAmI,
};
use std::sync::Arc;
use zeroize::Zeroizing;

fn cookie(state: &AppState, value: &str, max_age: i64) -> HeaderValue {
    let secure = if state.auth.config.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("cookie text is ASCII")
}

/// Signs in with a password (and a TOTP or recovery code when enrolled). Unknown
/// users, wrong passwords, locked and disabled accounts all answer 401
/// `invalid_credentials`; rate limits answer 429 with `Retry-After`.
#[utoipa::path(post, path = "/v1/auth/login", request_body = LoginRequest, security(()),
    responses((status = 200, body = LoginResponse), (status = 401, body = envseal_core::wire::ErrorBody),
        (status = 429, body = envseal_core::wire::ErrorBody), (status = 503, body = envseal_core::wire::ErrorBody)))]
pub(super) async fn login(
    State(state): State<Arc<AppState>>,
    client: Client,
    Body(mut req): Body<LoginRequest>,
) -> Result<Response, ApiError> {
    if req.password.len() > crate::password::MAX_PASSWORD_LEN {
        // No stored password is this long (the policy forbids it): the attempt goes
        // through the same limits, hashing and audit, and fails like any other.
        req.password = Zeroizing::new(String::new());
    }
    let session = state
        .auth
        .login(
            &state.store,
            state.secrets.keys(),
            &state.audit,
            LoginAttempt {
                username: req.username,
                password: req.password,
                second_factor: req.totp,
                ip: client.ip,
                user_agent: client.user_agent,
            },
        )
        .await?;
    let body = LoginResponse {
        token: (!req.cookie).then(|| session.token.to_string()),
        session_id: session.id,
        username: session.username,
        expires_at: session.expires_at,
        mfa_enrolment_required: session.mfa_enrolment_required,
    };
    let mut response = Json(body).into_response();
    if req.cookie {
        let max_age = state.auth.config.session_ttl.as_secs() as i64;
        response
            .headers_mut()
            .insert(header::SET_COOKIE, cookie(&state, &session.token, max_age));
    }
    Ok(response)
}

/// Ends the current session and clears the cookie.
#[utoipa::path(post, path = "/v1/auth/logout", responses((status = 204)))]
pub(super) async fn logout(
    State(state): State<Arc<AppState>>,
    AnyAuth(p, client): AnyAuth,
) -> Result<Response, ApiError> {
    if !p.is_user() {
        return Err(ApiError::NotASession(
            "machine tokens are revoked with DELETE /v1/tokens/{id}, not logged out",
        ));
    }
    state
        .store
        .revoke_session(&p.token_id, crate::now())
        .await?;
    state
        .audit
        .record(
            event(&p, &client, "auth.logout", &p.name)
                .details(serde_json::json!({ "session": p.token_id })),
        )
        .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    Ok(response)
}

fn grants(p: &Principal) -> Vec<RoleGrant> {
    match &p.scope {
        Scope::User(u) => u
            .roles
            .iter()
            .map(|b| RoleGrant {
                project: b.project.clone(),
                role: b.role.as_str().to_owned(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Who the caller is.
#[utoipa::path(get, path = "/v1/auth/me", responses((status = 200, body = WhoAmI)))]
pub(super) async fn me(AnyAuth(p, _): AnyAuth) -> Json<WhoAmI> {
    let (kind, mfa_enrolment_required) = match &p.scope {
        Scope::User(u) => ("user", u.mfa_enrolment_required),
        Scope::Admin => ("admin-token", false),
        Scope::Project { .. } => ("token", false),
    };
    Json(WhoAmI {
        name: p.name.clone(),
        kind: kind.to_owned(),
        roles: grants(&p),
        mfa_enrolment_required,
    })
}

/// The signed-in user's row (sessions only).
async fn own_user(state: &AppState, p: &Principal) -> Result<UserRow, ApiError> {
    let Some(id) = p.user_id() else {
        return Err(ApiError::NotASession(
            "this needs a user session, not a machine token",
        ));
    };
    state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::Unauthorized("missing or invalid bearer token"))
}

/// Changes one's own password (needs the current one); ends every session.
#[utoipa::path(put, path = "/v1/auth/password", request_body = SetPassword, responses((status = 204)))]
pub(super) async fn change_password(
    State(state): State<Arc<AppState>>,
    Auth(p, client): Auth,
    Body(req): Body<SetPassword>,
) -> Result<StatusCode, ApiError> {
    let user = own_user(&state, &p).await?;
    // The current password is checked like a login: limited first, failures counted.
    let account = crate::limiter::account_key(&user.username);
    match state
        .auth
        .limiter
        .admit(&crate::limiter::ip_key(client.ip), &account)
        .await
        .map_err(|e| ApiError::LoginUnavailable(Box::new(e)))?
    {
        crate::limiter::Admission::Allowed => {}
        crate::limiter::Admission::Limited { retry_after, .. } => {
            return Err(ApiError::TooManyRequests {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            })
        }
    }
    let current = req.current.unwrap_or_default();
    let ok = state
        .auth
        .hasher
        .verify(current, Some(user.password_hash.clone()))
        .await
        .map_err(|e| ApiError::LoginUnavailable(Box::new(e)))?;
    if !ok {
        let _ = state.auth.limiter.record_failure(&account).await;
        state
            .audit
            .record(
                event(&p, &client, "user.password", &user.username)
                    .outcome(Outcome::Failure, "bad_password"),
            )
            .await?;
        return Err(ApiError::InvalidCredentials);
    }
    super::users::store_password(&state, &user, req.password).await?;
    state
        .audit
        .record(event(&p, &client, "user.password", &user.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Starts TOTP enrolment: a new secret, shown once, pending until confirmed.
#[utoipa::path(post, path = "/v1/auth/mfa/enroll", responses((status = 200, body = MfaEnrolment)))]
pub(super) async fn mfa_enroll(
    State(state): State<Arc<AppState>>,
    AnyAuth(p, client): AnyAuth,
) -> Result<Json<MfaEnrolment>, ApiError> {
    let user = own_user(&state, &p).await?;
    let secret = mfa::new_secret();
    let (wrapped, sealed) = mfa::seal(state.secrets.keys(), &user.id, &secret)
        .await
        .map_err(|e| ApiError::Unavailable(Box::new(e)))?;
    state
        .store
        .set_totp_pending(&user.id, &wrapped.kek_id, &wrapped.blob, &sealed)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict {
                code: "mfa_enrolled",
                message: "TOTP is already enrolled; disable it first".to_owned(),
            },
            e => e.into(),
        })?;
    state
        .audit
        .record(
            event(&p, &client, "mfa.enroll", &user.username)
                .details(serde_json::json!({ "kek": wrapped.kek_id })),
        )
        .await?;
    Ok(Json(MfaEnrolment {
        secret: mfa::base32(&secret).to_string(),
        otpauth_uri: mfa::otpauth_uri(&user.username, &secret).to_string(),
    }))
}

/// Opens the user's (pending or enrolled) TOTP secret.
async fn totp_secret(state: &AppState, user: &UserRow) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let (Some(kek), Some(wrapped), Some(sealed)) =
        (&user.totp_kek_id, &user.totp_wrapped_dek, &user.totp_secret)
    else {
        return Err(ApiError::Conflict {
            code: "mfa_not_started",
            message: "no TOTP secret: POST /v1/auth/mfa/enroll first".to_owned(),
        });
    };
    mfa::open(state.secrets.keys(), &user.id, kek, wrapped, sealed)
        .await
        .map_err(|e| ApiError::Integrity(Box::new(e)))
}

/// Checks a code against the secret and consumes its step (replays fail).
async fn consume_code(state: &AppState, user: &UserRow, code: &str) -> Result<bool, ApiError> {
    let secret = totp_secret(state, user).await?;
    let Some(step) = mfa::matching_step(&secret, code, crate::now() as u64) else {
        return Ok(false);
    };
    Ok(state.store.advance_totp_step(&user.id, step).await?)
}

/// Confirms enrolment with a current code; answers the recovery codes, once.
#[utoipa::path(post, path = "/v1/auth/mfa/confirm", request_body = MfaCode,
    responses((status = 200, body = RecoveryCodes)))]
pub(super) async fn mfa_confirm(
    State(state): State<Arc<AppState>>,
    AnyAuth(p, client): AnyAuth,
    Body(req): Body<MfaCode>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let user = own_user(&state, &p).await?;
    if user.totp_enabled == 1 {
        return Err(ApiError::Conflict {
            code: "mfa_enrolled",
            message: "TOTP is already enrolled".to_owned(),
        });
    }
    let secret = totp_secret(&state, &user).await?;
    let Some(step) = mfa::matching_step(&secret, &req.code, crate::now() as u64) else {
        state
            .audit
            .record(
                event(&p, &client, "mfa.confirm", &user.username)
                    .outcome(Outcome::Failure, "bad_totp"),
            )
            .await?;
        return Err(ApiError::bad_request(
            "invalid_totp",
            "the code does not match",
        ));
    };
    let codes = mfa::recovery_codes();
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| mfa::recovery_hash(c)).collect();
    state
        .store
        .enable_totp(&user.id, step, &hashes)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::Conflict {
                code: "mfa_not_started",
                message: "no pending TOTP enrolment".to_owned(),
            },
            e => e.into(),
        })?;
    state
        .audit
        .record(
            event(&p, &client, "mfa.confirm", &user.username)
                .details(serde_json::json!({ "recovery_codes": codes.len() })),
        )
        .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
    }))
}

/// Turns TOTP off for oneself (needs a current code).
#[utoipa::path(post, path = "/v1/auth/mfa/disable", request_body = MfaCode, responses((status = 204)))]
pub(super) async fn mfa_disable(
    State(state): State<Arc<AppState>>,
    Auth(p, client): Auth,
    Body(req): Body<MfaCode>,
) -> Result<StatusCode, ApiError> {
    let user = own_user(&state, &p).await?;
    if user.totp_enabled != 1 || !consume_code(&state, &user, &req.code).await? {
        state
            .audit
            .record(
                event(&p, &client, "mfa.disable", &user.username)
                    .outcome(Outcome::Failure, "bad_totp"),
            )
            .await?;
        return Err(ApiError::bad_request(
            "invalid_totp",
            "the code does not match",
        ));
    }
    state.store.clear_totp(&user.id).await?;
    state
        .audit
        .record(event(&p, &client, "mfa.disable", &user.username))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
