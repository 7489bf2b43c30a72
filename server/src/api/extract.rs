//! Request extractors: the authenticated principal (machine token, session bearer
//! token or session cookie), the client's address and user agent, and a JSON body
//! whose rejections are [`ApiError`]s (never echoing the body back).

use super::{ApiError, AppState};
use crate::auth::{hash_token, Principal, Scope, TokenRejection};
use crate::login::{client_ip, printable, SessionAuthError, SessionRejection};
use crate::mfa::SESSION_PREFIX;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Name of the browser session cookie.
pub(super) const SESSION_COOKIE: &str = "envseal_session";

/// Who is on the other end of the connection.
#[derive(Debug, Clone, Default)]
pub(super) struct Client {
    /// Client address (socket peer, or forwarded by a trusted proxy).
    pub(super) ip: Option<IpAddr>,
    /// User agent, printable characters only.
    pub(super) user_agent: String,
}

impl Client {
    /// The address as text (empty when unknown).
    pub(super) fn ip_text(&self) -> String {
        self.ip.map(|ip| ip.to_string()).unwrap_or_default()
    }

    fn from_parts(parts: &Parts, state: &AppState) -> Client {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Client {
            ip: client_ip(peer, &forwarded, &state.auth.config.trusted_proxies),
            user_agent: parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(printable)
                .unwrap_or_default(),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client::from_parts(parts, state))
    }
}

/// The authenticated caller, allowed to act (a session that must enrol TOTP first is
/// refused with `mfa_enrolment_required`).
pub(super) struct Auth(pub(super) Principal, pub(super) Client);

/// The authenticated caller, including a session that may only enrol TOTP.
pub(super) struct AnyAuth(pub(super) Principal, pub(super) Client);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let AnyAuth(principal, client) = AnyAuth::from_request_parts(parts, state).await?;
        if let Scope::User(u) = &principal.scope {
            if u.mfa_enrolment_required {
                return Err(ApiError::MfaEnrolmentRequired);
            }
        }
        Ok(Auth(principal, client))
    }
}

impl FromRequestParts<Arc<AppState>> for AnyAuth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        const MISSING: &str = "missing or invalid bearer token";
        let client = Client::from_parts(parts, state);
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|header| {
                header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && t.len() <= 256)
                    .ok_or(ApiError::Unauthorized(MISSING))
            })
            .transpose()?;
        let token = match bearer {
            Some(t) => t.to_owned(),
            None => {
                let cookie = session_cookie(parts).ok_or(ApiError::Unauthorized(MISSING))?;
                if !same_origin_or_safe(parts) {
                    return Err(ApiError::Forbidden);
                }
                cookie
            }
        };
        if token.starts_with(SESSION_PREFIX) {
            return match state.auth.authenticate_session(&state.store, &token).await {
                Ok(p) => Ok(AnyAuth(p, client)),
                Err(SessionAuthError::Rejected(SessionRejection::Invalid)) => {
                    Err(ApiError::Unauthorized(MISSING))
                }
                Err(SessionAuthError::Rejected(SessionRejection::Expired)) => {
                    Err(ApiError::Unauthorized("session expired; log in again"))
                }
                Err(SessionAuthError::Store(e)) => Err(e.into()),
            };
        }
        let hash = hash_token(&token);
        let generation = state.store.generation();
        let row = match state.cache.token(&hash, generation) {
            Some(row) => row,
            None => {
                let row = state
                    .store
                    .token_by_hash(&hash)
                    .await?
                    .ok_or(ApiError::Unauthorized(MISSING))?;
                state.cache.put_token(row.clone(), generation);
                row
            }
        };
        match Principal::from_row(&token, row, crate::now()) {
            Ok(p) => Ok(AnyAuth(p, client)),
            Err(TokenRejection::Invalid) => Err(ApiError::Unauthorized(MISSING)),
            Err(TokenRejection::Expired) => Err(ApiError::Unauthorized("token expired")),
        }
    }
}

/// Cross-site request defence for cookie sessions (on top of `SameSite=Strict`): a
/// state-changing request that carries an `Origin` must come from the server's own
/// origin. Requests without `Origin` are not from a browser page's script or form.
fn same_origin_or_safe(parts: &Parts) -> bool {
    use axum::http::Method;
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, h)| h)
        .trim_end_matches('/');
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

/// The session token from the `Cookie` header, if any.
fn session_cookie(parts: &Parts) -> Option<String> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == SESSION_COOKIE && !v.is_empty() && v.len() <= 256)
        .map(|(_, v)| v.to_owned())
}

/// A JSON body. Errors name the problem in fixed words and repeat nothing of the input
/// (no value, field name, enum variant or number).
pub(super) struct Body<T>(pub(super) T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            })
            .is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !json_type {
            return Err(ApiError::bad_request(
                "invalid_body",
                "expected a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::bad_request("invalid_body", "request body could not be read")
                }
            })?;
        let bytes = zeroize::Zeroizing::new(bytes.to_vec());
        match serde_json::from_slice::<T>(&bytes) {
            Ok(v) => Ok(Body(v)),
            Err(e) if e.is_data() => integral_numbers_as_integers(&bytes).map(Body),
            Err(_) => Err(ApiError::bad_request(
                "invalid_json",
                "request body is not valid JSON",
            )),
        }
    }
}

/// JSON Schema counts `5.0` as the integer 5; serde does not. A body refused for its
/// shape is read once more with every integral number (within i64) made an integer.
/// The intermediate document's strings are wiped afterwards. Errors repeat nothing of
/// the input: serde's text names the offending field, variant or number as sent.
fn integral_numbers_as_integers<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    fn fix(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64() {
                    if f.fract() == 0.0 && f > i64::MIN as f64 && f < i64::MAX as f64 {
                        *v = serde_json::Value::from(f as i64);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(fix),
            serde_json::Value::Object(o) => o.values_mut().for_each(fix),
            _ => {}
        }
    }
    fn wipe(v: &mut serde_json::Value) {
        use zeroize::Zeroize as _;
        match v {
            serde_json::Value::String(s) => s.zeroize(),
            serde_json::Value::Array(a) => a.iter_mut().for_each(wipe),
            serde_json::Value::Object(o) => o.values_mut().for_each(wipe),
            _ => {}
        }
    }
    let shape = || {
        ApiError::bad_request(
            "invalid_body",
            "request body does not match the expected shape: check field names, types and \
             allowed values against /v1/openapi.json",
        )
    };
    let mut doc: serde_json::Value = serde_json::from_slice(bytes).map_err(|_| shape())?;
    fix(&mut doc);
    let out = T::deserialize(&doc).map_err(|_| shape());
    wipe(&mut doc);
    out
}
