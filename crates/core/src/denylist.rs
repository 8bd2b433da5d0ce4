//! Revoked tokens: a denylist of JWT ids (or of whole tokens, by digest) kept until the token's
//! own expiry, and a per-user "revoked before" time that rejects every older token (logout
//! everywhere for JWTs).

use std::fmt::Write as _;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::ids::{TokenId, UserId};
use crate::time::Timestamp;

/// Longest raw token accepted for a denial by token.
pub const MAX_RAW_TOKEN_BYTES: usize = 16 * 1024;

/// The denylist id of a whole token, for apps that deny the token itself rather than its `jti`:
/// `sha256:` and the lowercase hex SHA-256 of the token's bytes (71 bytes, whatever the token's
/// length; the token itself is never stored). The gateway checks both ids of every token.
pub fn token_digest(token: &str) -> Result<TokenId> {
    if token.is_empty() || token.len() > MAX_RAW_TOKEN_BYTES {
        return Err(Error::invalid("token", format!("must be 1..={MAX_RAW_TOKEN_BYTES} bytes")));
    }
    let mut id = String::with_capacity(71);
    id.push_str("sha256:");
    for byte in Sha256::digest(token.as_bytes()) {
        let _ = write!(id, "{byte:02x}");
    }
    TokenId::new(id)
}

/// Why a token is refused, or that it is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    /// Neither denied nor revoked.
    Valid,
    /// Its `jti` or its digest ([`token_digest`]) is on the denylist.
    Denied,
    /// It was issued before the user's revoke-before time.
    Revoked,
}

/// Storage of denied token ids and per-user revoke-before times.
///
/// Contract: a denied id is reported denied from the moment [`TokenDenylist::deny`] returns until
/// exactly `until` (engine clock), then forgotten. Revoke-before times only move forward.
#[async_trait]
pub trait TokenDenylist: Send + Sync + 'static {
    /// Denies `jti` until `until`. Denying again keeps the later of the two times. A time in the
    /// past stores nothing (the token has expired anyway).
    async fn deny(&self, jti: &TokenId, until: Timestamp) -> Result<()>;

    /// `Some(until)` while `jti` is denied, else `None`.
    async fn denied_until(&self, jti: &TokenId) -> Result<Option<Timestamp>>;

    /// Removes `jti` from the denylist; `false` if it was not on it.
    async fn undeny(&self, jti: &TokenId) -> Result<bool>;

    /// Rejects every token of `user` issued before `before`; kept until `keep_until` (the
    /// longest a token can live). Never moves an existing time backwards: returns the time in
    /// force afterwards.
    async fn revoke_before(&self, user: &UserId, before: Timestamp, keep_until: Timestamp) -> Result<Timestamp>;

    /// The user's revoke-before time, if any.
    async fn revoked_before(&self, user: &UserId) -> Result<Option<Timestamp>>;
}

/// Whether a token issued at `issued_at` falls under the revoke-before time `before`. A JWT's
/// `iat` has whole seconds while `before` has milliseconds, so both count in whole seconds: a
/// token issued in an earlier second is revoked; one issued in the second of the revoke or later
/// is not, so "log out everywhere else" followed at once by a fresh token for this device works.
pub fn revoked_by(issued_at: Timestamp, before: Timestamp) -> bool {
    issued_at.as_millis().div_euclid(1000) < before.as_millis().div_euclid(1000)
}
