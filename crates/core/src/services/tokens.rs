//! [`Tokens`]: the token denylist and revoke-before times, with validation and metrics.

use std::sync::Arc;
use std::time::Duration;

use super::{Streams, observe};
use crate::channel::ChannelName;
use crate::config::TokensConfig;
use crate::control;
use crate::denylist::{TokenCheck, TokenDenylist};
use crate::error::Result;
use crate::ids::{TokenId, UserId};
use crate::time::Timestamp;

/// The tokens service.
#[derive(Clone)]
pub struct Tokens {
    store: Arc<dyn TokenDenylist>,
    config: TokensConfig,
    /// Where denials are announced to every node's gateway.
    streams: Streams,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Tokens {
    /// Wraps `store`; denials are announced through `streams`.
    pub fn new(store: Arc<dyn TokenDenylist>, config: TokensConfig, streams: Streams) -> Self {
        Tokens { store, config, streams }
    }

    /// Denies `jti` until `expires_at` (the token's `exp`), and ends the connections that use it
    /// on every node. See [`TokenDenylist::deny`].
    pub async fn deny(&self, jti: &TokenId, expires_at: Timestamp) -> Result<()> {
        observe("tokens", "deny", self.store.deny(jti, expires_at)).await?;
        self.streams.publish_control(&ChannelName::control(), control::token_denied(jti)).await
    }

    /// `Some(until)` while denied.
    pub async fn denied_until(&self, jti: &TokenId) -> Result<Option<Timestamp>> {
        observe("tokens", "is_denied", self.store.denied_until(jti)).await
    }

    /// Takes `jti` off the denylist.
    pub async fn undeny(&self, jti: &TokenId) -> Result<bool> {
        observe("tokens", "undeny", self.store.undeny(jti)).await
    }

    /// Rejects every token of `user` issued before `before` (default now), counted in whole
    /// seconds ([`crate::denylist::revoked_by`]); returns the time in force (revoke times never
    /// move backwards).
    pub async fn revoke_before(&self, user: &UserId, before: Option<Timestamp>) -> Result<Timestamp> {
        let before = before.unwrap_or_else(Timestamp::now);
        let keep_until = before.plus(Duration::from_secs(self.config.max_token_ttl_seconds));
        observe("tokens", "revoke", self.store.revoke_before(user, before, keep_until)).await
    }

    /// The user's revoke-before time.
    pub async fn revoked_before(&self, user: &UserId) -> Result<Option<Timestamp>> {
        observe("tokens", "revoked_before", self.store.revoked_before(user)).await
    }

    /// Whether a token (its `jti`, `sub` and `iat`) may still be used.
    pub async fn check(&self, jti: Option<&TokenId>, user: &UserId, issued_at: Timestamp) -> Result<TokenCheck> {
        if let Some(jti) = jti
            && self.denied_until(jti).await?.is_some()
        {
            return Ok(TokenCheck::Denied);
        }
        match self.revoked_before(user).await? {
            Some(before) if crate::denylist::revoked_by(issued_at, before) => Ok(TokenCheck::Revoked),
            _ => Ok(TokenCheck::Valid),
        }
    }
}
