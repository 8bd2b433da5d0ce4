//! The error kinds shared by every layer; engines convert their own errors into these.

use std::sync::Arc;

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A stable set of error kinds. The server maps each to one HTTP status and envelope code
/// (docs/API.md, "Errors"); the messages of the client-facing kinds are safe to show to the
/// caller. New kinds may be added: matches outside this crate need a catch-all arm.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
    /// An error of the caller's own code (a cache loader, a job handler, a database call),
    /// carried through unchanged as this error's source ([`Error::external`], or `?` on a
    /// boxed error, an I/O error or a JSON error).
    #[error("{0}")]
    External(#[source] ExternalError),
}

/// A caller's own error inside an [`Error`], shared so errors stay cheap to clone (a cache
/// computation's error reaches every caller that waited for it).
#[derive(Clone)]
pub struct ExternalError(Arc<dyn std::error::Error + Send + Sync>);

impl ExternalError {
    /// The caller's error.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Debug for ExternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl std::fmt::Display for ExternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for ExternalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Two external errors are equal when they are the same error (not merely the same text).
impl PartialEq for ExternalError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ExternalError {}

impl From<Box<dyn std::error::Error + Send + Sync>> for Error {
    fn from(e: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Error::External(ExternalError(Arc::from(e)))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::external(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::external(e)
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] naming `field`.
    pub fn invalid(field: &str, why: impl std::fmt::Display) -> Self {
        Error::InvalidArgument(format!("{field}: {why}"))
    }

    /// Wraps an error of the caller's own code (anything boxable: `anyhow::Error`, a database
    /// driver's error, a `String`) as [`Error::External`], its source kept.
    pub fn external(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::from(e.into())
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
            Error::External(_) => "external",
        }
    }
}

#[cfg(test)]
mod external_tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database: connection refused")]
    struct DbError;

    #[test]
    fn a_callers_error_is_carried_with_its_source() {
        let e = Error::external(DbError);
        assert_eq!(e.to_string(), "database: connection refused");
        assert_eq!(e.kind(), "external");
        let Error::External(inner) = &e else { panic!("{e:?}") };
        assert!(inner.get().downcast_ref::<DbError>().is_some(), "the caller's own error, downcastable");
        assert_eq!(e.clone(), e, "clones are the same error");
        assert_ne!(Error::external(DbError), e, "two errors with the same text are not the same error");
        let io: Error = std::io::Error::other("disk").into();
        assert!(matches!(io, Error::External(_)));
    }
}
