//! `RedisDenylist`: one key per denied token id (expiring when the denial ends) and one hash
//! per user for the revoke-before time; every operation is one script on the server clock.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;
use switchboard_core::{Result, Timestamp, TokenDenylist, TokenId, UserId};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

static DENY: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/deny.lua")));
static DENIED_UNTIL: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/denied_until.lua")));
static UNDENY: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/undeny.lua")));
static REVOKE_BEFORE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/revoke_before.lua")));
static REVOKED_BEFORE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/revoked_before.lua")));

/// The token denylist in Redis. See [`TokenDenylist`] for the contract.
///
/// A denied id is a string holding its denied-until time with `PXAT` at that time; the scripts
/// also compare with the server clock, so an id is reported denied strictly before that time.
/// The revoke-before time is a hash `{b, k}` expiring at its keep-until time `k`.
pub(crate) struct RedisDenylist {
    conn: Conn,
    keys: Keys,
}

impl RedisDenylist {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisDenylist { conn, keys }
    }
}

#[async_trait]
impl TokenDenylist for RedisDenylist {
    async fn deny(&self, jti: &TokenId, until: Timestamp) -> Result<()> {
        let mut invocation = DENY.key(self.keys.denied(jti));
        invocation.arg(until.as_millis());
        let _stored: i64 = self.conn.script("tokens.deny", &invocation).await?;
        Ok(())
    }

    async fn denied_until(&self, jti: &TokenId) -> Result<Option<Timestamp>> {
        let invocation = DENIED_UNTIL.key(self.keys.denied(jti));
        let until: Option<i64> = self.conn.script("tokens.denied_until", &invocation).await?;
        Ok(until.map(Timestamp::from_millis))
    }

    async fn undeny(&self, jti: &TokenId) -> Result<bool> {
        let invocation = UNDENY.key(self.keys.denied(jti));
        let was_denied: i64 = self.conn.script("tokens.undeny", &invocation).await?;
        Ok(was_denied == 1)
    }

    async fn revoke_before(&self, user: &UserId, before: Timestamp, keep_until: Timestamp) -> Result<Timestamp> {
        let mut invocation = REVOKE_BEFORE.key(self.keys.revoked(user));
        invocation.arg(before.as_millis()).arg(keep_until.as_millis());
        let in_force: i64 = self.conn.script("tokens.revoke_before", &invocation).await?;
        Ok(Timestamp::from_millis(in_force))
    }

    async fn revoked_before(&self, user: &UserId) -> Result<Option<Timestamp>> {
        let invocation = REVOKED_BEFORE.key(self.keys.revoked(user));
        let before: Option<i64> = self.conn.script("tokens.revoked_before", &invocation).await?;
        Ok(before.map(Timestamp::from_millis))
    }
}
