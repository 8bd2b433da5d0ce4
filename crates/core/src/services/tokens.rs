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

    /// Denies a whole token (the seeds' "blacklist the token") until `expires_at`: stored by its
    /// digest ([`crate::denylist::token_digest`]), which is returned and names the denial in
    /// [`Tokens::denied_until`] and [`Tokens::undeny`].
    pub async fn deny_token(&self, token: &str, expires_at: Timestamp) -> Result<TokenId> {
        let id = crate::denylist::token_digest(token)?;
        self.deny(&id, expires_at).await?;
        Ok(id)
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

    /// Whether a token may still be used: none of its denylist `ids` (its `jti`, its digest) is
    /// denied, and its `iat` is not before `user`'s revoke-before time.
    pub async fn check(&self, ids: &[&TokenId], user: &UserId, issued_at: Timestamp) -> Result<TokenCheck> {
        for id in ids {
            if self.denied_until(id).await?.is_some() {
                return Ok(TokenCheck::Denied);
            }
        }
        match self.revoked_before(user).await? {
            Some(before) if crate::denylist::revoked_by(issued_at, before) => Ok(TokenCheck::Revoked),
            _ => Ok(TokenCheck::Valid),
        }
    }
}
