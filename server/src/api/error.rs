//! The one HTTP error type. Clients get a stable code and a message that never holds
//! secret values or internals; the cause of a 5xx is logged, not sent.

use crate::secrets::SecretsError;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use envseal_core::wire::ErrorBody;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or invalid (400).
    #[error("{message}")]
    BadRequest {
        /// Stable code.
        code: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No valid credentials (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated but not allowed (403).
    #[error("these credentials are not allowed to do that")]
    Forbidden,
    /// Login refused: unknown user, wrong password, locked or disabled account, wrong
    /// code (401). One answer for all of them.
    #[error("invalid username or password")]
    InvalidCredentials,
    /// The password is right and the account needs a TOTP or recovery code (401).
    #[error("this account requires a TOTP code: send it as \"totp\"")]
    MfaRequired,
    /// A machine token on an endpoint for user sessions only (403).
    #[error("{0}")]
    NotASession(&'static str),
    /// Admins must enrol TOTP before anything else (403).
    #[error("enrol TOTP first: POST /v1/auth/mfa/enroll, then /v1/auth/mfa/confirm")]
    MfaEnrolmentRequired,
    /// A rate limit is reached (429, with `Retry-After`).
    #[error("too many attempts; try again later")]
    TooManyRequests {
        /// Seconds until a retry may pass.
        retry_after_secs: u64,
    },
    /// No such thing (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// State conflict (409).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// Body over the limit (413).
    #[error("request body is larger than the server accepts")]
    PayloadTooLarge,
    /// Request headers over the limit (431).
    #[error("request headers are larger than the server accepts")]
    HeadersTooLarge,
    /// An error answer produced outside the handlers (an unsupported method, a path or
    /// query string that does not parse, a timeout), in the one error shape.
    #[error("{}", http_message(*.0))]
    Http(StatusCode),
    /// Login state (Redis) or password hashing is unavailable (503): logins fail
    /// closed. The cause is logged.
    #[error("login is temporarily unavailable")]
    LoginUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A dependency is down (503); the cause is logged.
    #[error("service unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The key provider (Vault, KMS) cannot be reached and the data key is not cached
    /// (503, `kms_unavailable`); the cause is logged.
    #[error("the key provider is unavailable")]
    KeyProviderUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data failed authentication (500); logged.
    #[error("integrity check failed")]
    Integrity(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Anything else (500); logged.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// A 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotASession(_) => (StatusCode::FORBIDDEN, "not_a_session"),
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::MfaRequired => (StatusCode::UNAUTHORIZED, "mfa_required"),
            ApiError::MfaEnrolmentRequired => (StatusCode::FORBIDDEN, "mfa_enrolment_required"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::Http(status) => (*status, http_code(*status)),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::LoginUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "login_unavailable"),
            ApiError::KeyProviderUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "kms_unavailable")
            }
            ApiError::Integrity(_) => (StatusCode::INTERNAL_SERVER_ERROR, "integrity_error"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

/// Stable codes of error answers produced outside the handlers.
fn http_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "not_found",
        405 => "method_not_allowed",
        406 => "not_acceptable",
        408 => "timeout",
        411 => "length_required",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        431 => "headers_too_large",
        500..=599 => "internal",
        _ => "invalid_request",
    }
}

/// Their messages: fixed text, nothing taken from the request.
fn http_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        404 => "no such route",
        405 => "this method is not allowed on this route (see the Allow header)",
        406 => "the server answers only application/json",
        408 => "the request took too long",
        411 => "the request needs a Content-Length",
        413 => "request body is larger than the server accepts",
        415 => "expected a JSON body with Content-Type: application/json",
        431 => "request headers are larger than the server accepts",
        500..=599 => "internal error",
        _ => "the request's path, query string or headers are invalid",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.parts();
        let retry_after = match &self {
            ApiError::TooManyRequests { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let message = match &self {
            ApiError::Unavailable(cause) => {
                tracing::error!(error = %cause, "dependency unavailable");
                "the server cannot reach its database or key provider; try again".to_owned()
            }
            ApiError::LoginUnavailable(cause) => {
                tracing::error!(error = %cause, "login refused: its state store is unavailable");
                "login is unavailable: the server cannot reach its rate-limit store (Redis) \
                 or database; logins are refused until it is back"
                    .to_owned()
            }
            ApiError::KeyProviderUnavailable(cause) => {
                tracing::error!(error = %cause, "key provider unavailable");
                "the server cannot reach its key provider (Vault or KMS); reads of recently \
                 used secrets still work, everything else waits until it is back"
                    .to_owned()
            }
            ApiError::Integrity(cause) => {
                tracing::error!(error = %cause, "stored data failed its integrity check");
                "a stored value failed its integrity check; the server log has details".to_owned()
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                code: code.to_owned(),
                message,
            }),
        )
            .into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs.max(1)),
            );
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("resource"),
            StoreError::Conflict => ApiError::Conflict {
                code: "already_exists",
                message: "it already exists".to_owned(),
            },
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed,
            ) => ApiError::Unavailable(Box::new(e)),
            e => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(e: SecretsError) -> Self {
        use crate::crypto::CryptoError;
        match e {
            SecretsError::Store(s) => s.into(),
            SecretsError::Crypto(CryptoError::Provider(_)) => {
                ApiError::KeyProviderUnavailable(Box::new(e))
            }
            SecretsError::Crypto(_) => ApiError::Integrity(Box::new(e)),
            SecretsError::NotFound(what) => ApiError::NotFound(what),
            SecretsError::CasConflict { .. } => ApiError::Conflict {
                code: "cas_conflict",
                message: e.to_string(),
            },
            SecretsError::Destroyed(_) => ApiError::Conflict {
                code: "destroyed",
                message: e.to_string(),
            },
            SecretsError::Invalid(message) => ApiError::BadRequest {
                code: "invalid_request",
                message,
            },
            SecretsError::Busy => ApiError::Conflict {
                code: "busy",
                message: e.to_string(),
            },
        }
    }
}

impl From<envseal_core::NameError> for ApiError {
    /// Says which rule the name breaks without repeating the name.
    fn from(e: envseal_core::NameError) -> Self {
        use envseal_core::NameError;
        let message = match e {
            NameError::Empty { kind } => format!("{kind} name is empty"),
            NameError::TooLong { kind, max, .. } => {
                format!("{kind} name is longer than {max} characters")
            }
            NameError::Invalid { kind, rule, .. } => format!("{kind} name is invalid: {rule}"),
            NameError::Reserved { kind, .. } => format!(
                "{kind} name is reserved: names starting with {} are envseal's own settings",
                envseal_core::name::RESERVED_PREFIX
            ),
            NameError::Dangerous { kind, why, .. } => format!(
                "{kind} name is refused: that variable means {why}; set allow_dangerous_name \
                 to store it anyway"
            ),
        };
        ApiError::bad_request("invalid_name", message)
    }
}

impl From<crate::audit::AuditError> for ApiError {
    fn from(e: crate::audit::AuditError) -> Self {
        // An operation that cannot be recorded is not done: fail closed.
        ApiError::Unavailable(Box::new(e))
    }
}

impl From<crate::login::LoginError> for ApiError {
    fn from(e: crate::login::LoginError) -> Self {
        use crate::login::LoginError;
        match e {
            LoginError::RateLimited { retry_after } => ApiError::TooManyRequests {
                retry_after_secs: retry_after.as_secs_f64().ceil() as u64,
            },
            LoginError::InvalidCredentials => ApiError::InvalidCredentials,
            LoginError::MfaRequired => ApiError::MfaRequired,
            LoginError::Unavailable(_) => ApiError::LoginUnavailable(Box::new(e)),
            LoginError::Internal(_) => ApiError::Internal(Box::new(e)),
        }
    }
}
