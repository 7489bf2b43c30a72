//! Request extractors: the bearer-token principal and a JSON body whose rejections are
//! [`ApiError`]s (never echoing the body back).

use super::{ApiError, AppState};
use crate::auth::{hash_token, Principal, TokenRejection};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// The authenticated caller.
pub(super) struct Auth(pub(super) Principal);

impl FromRequestParts<Arc<AppState>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        const MISSING: &str = "missing or invalid bearer token";
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(ApiError::Unauthorized(MISSING))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && t.len() <= 256)
            .ok_or(ApiError::Unauthorized(MISSING))?;
        let hash = hash_token(token);
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
        match Principal::from_row(token, row, crate::now()) {
            Ok(p) => Ok(Auth(p)),
            Err(TokenRejection::Invalid) => Err(ApiError::Unauthorized(MISSING)),
            Err(TokenRejection::Expired) => Err(ApiError::Unauthorized("token expired")),
        }
    }
}

/// A JSON body. Errors name the problem and its position, with any string literal of
/// the input replaced by `…` so that a misplaced value is never echoed.
pub(super) struct Body<T>(pub(super) T);

impl<T, S> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge;
    }
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::bad_request(
            "invalid_body",
            "expected a JSON body with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::bad_request("invalid_json", "request body is not valid JSON")
        }
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid_body",
            format!(
                "request body does not match the expected shape: {}",
                redact_literals(&e.body_text())
            ),
        ),
        _ => ApiError::bad_request("invalid_body", "request body could not be read"),
    }
}

/// Replaces the contents of every `"…"` literal in an error message.
pub(crate) fn redact_literals(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    for c in message.chars() {
        if c == '"' {
            if !inside {
                out.push_str("\"…");
            }
            inside = !inside;
            if !inside {
                out.push('"');
            }
        } else if !inside {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals_are_redacted() {
        let m = super::redact_literals(
            "cas: invalid type: string \"canary-123\", expected i64 at line 1 column 20",
        );
        assert!(!m.contains("canary"), "{m}");
        assert!(m.contains("expected i64"), "{m}");
    }
}
