//! The error kinds shared by every layer; engines convert their own errors into these.

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable set of error kinds. The server maps each to one HTTP status and envelope code (the
/// table in docs/API.md, "Errors"); the messages of the client-facing kinds are safe to show to
/// the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The input is malformed or out of bounds; the message names the field.
    #[error("{0}")]
    InvalidArgument(String),
    /// An input is larger than its bound; the message names the bound.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The thing addressed does not exist (or has expired).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// The caller is over a rate limit.
    #[error("rate limited, retry after {retry_after_ms} ms")]
    RateLimited {
        /// How long until a retry may succeed.
        retry_after_ms: u64,
    },
    /// The engine (e.g. Redis) cannot be reached or did not answer within its timeout.
    #[error("engine unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected engine answer. The message is logged, never sent to clients.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// An [`Error::InvalidArgument`] naming `field`.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Error::InvalidArgument(format!("{field}: {why}"))
    }

    /// A short stable name for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "invalid_argument",
            Error::PayloadTooLarge(_) => "payload_too_large",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::PermissionDenied(_) => "permission_denied",
            Error::RateLimited { .. } => "rate_limited",
            Error::Unavailable(_) => "engine_unavailable",
            Error::Internal(_) => "internal",
        }
    }
}
