//! [`ApiError`]: every failure of the HTTP API as the JSON envelope of docs/API.md, "Errors",
//! `{"error": {"code": "...", "message": "..."}}`, logged once here at the boundary.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchboard_core::Error;
use utoipa::ToSchema;

/// The error body of every failed request.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// Code and message of an [`ErrorBody`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `invalid_argument`, `unauthenticated`, `permission_denied`, `not_found`,
    /// `conflict`, `request_timeout`, `payload_too_large`, `rate_limited`, `engine_unavailable`,
    /// `unavailable` or `internal`.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// A human-readable explanation; for `invalid_argument` it names the field.
    #[schema(example = "session not found")]
    pub message: String,
}

/// An error answer: status, envelope code, message, and `Retry-After` for `rate_limited`.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after_secs: None }
    }

    /// 400 `invalid_argument`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 `unauthenticated` (answered with `WWW-Authenticate: Bearer`).
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The envelope code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Rounds milliseconds up to whole seconds (for `Retry-After` and the rate-limit headers).
pub(crate) fn ceil_secs(ms: u64) -> u64 {
    ms.div_ceil(1000)
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::InvalidArgument(m) => Self::invalid(m),
            Error::PayloadTooLarge(m) => Self::too_large(m),
            Error::NotFound(m) => Self::not_found(m),
            Error::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            Error::PermissionDenied(m) => Self::new(StatusCode::FORBIDDEN, "permission_denied", m),
            Error::RateLimited { retry_after_ms } => ApiError {
                retry_after_secs: Some(ceil_secs(retry_after_ms).max(1)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", e.to_string())
            },
            // The detail may name hosts or carry driver text: log it, answer generically.
            Error::Unavailable(detail) => {
                tracing::warn!(error.detail = %detail, "engine unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "engine_unavailable",
                    "the engine is unavailable, retry later",
                )
            }
            Error::Internal(detail) => {
                tracing::error!(error.detail = %detail, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            // The server runs no caller code that could fail this way; if it did, the detail is
            // the caller's and is not shown.
            Error::External(source) => {
                tracing::error!(error.detail = %source, "external error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            // A kind this server does not know yet: a 500 until it is mapped.
            other => {
                tracing::error!(error.kind = other.kind(), error.detail = %other, "unmapped error kind");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after_secs;
        let unauthenticated = self.status == StatusCode::UNAUTHORIZED;
        let body = ErrorBody { error: ErrorDetail { code: self.code, message: self.message } };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_kinds_map_to_the_spec_codes() {
        let cases = [
            (Error::InvalidArgument("x".into()), 400, "invalid_argument"),
            (Error::PayloadTooLarge("x".into()), 413, "payload_too_large"),
            (Error::NotFound("x".into()), 404, "not_found"),
            (Error::Conflict("x".into()), 409, "conflict"),
            (Error::PermissionDenied("x".into()), 403, "permission_denied"),
            (Error::RateLimited { retry_after_ms: 1500 }, 429, "rate_limited"),
            (Error::Unavailable("redis at 10.0.0.1 refused".into()), 503, "engine_unavailable"),
            (Error::Internal("secret detail".into()), 500, "internal"),
        ];
        for (error, status, code) in cases {
            assert_eq!(error.kind(), code, "core and server agree on the code");
            let api = ApiError::from(error);
            assert_eq!(api.status().as_u16(), status);
            assert_eq!(api.code(), code);
            assert!(!api.message().contains("secret") && !api.message().contains("10.0.0.1"));
        }
        let response = ApiError::from(Error::RateLimited { retry_after_ms: 1500 }).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
