//! `MemoryDenylist`: denied token ids and per-user revoke-before times, each with its expiry.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::{Result, Timestamp, TokenDenylist, TokenId, UserId};

use crate::lock;
use crate::sweeper::Sweepable;

#[derive(Default)]
pub(crate) struct MemoryDenylist {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// jti -> denied until.
    denied: HashMap<TokenId, Timestamp>,
    /// user -> (revoked before, kept until).
    revoked: HashMap<UserId, (Timestamp, Timestamp)>,
}

#[async_trait]
impl TokenDenylist for MemoryDenylist {
    async fn deny(&self, jti: &TokenId, until: Timestamp) -> Result<()> {
        if until <= Timestamp::now() {
            return Ok(());
        }
        let mut state = lock(&self.state);
        let entry = state.denied.entry(jti.clone()).or_insert(until);
        *entry = (*entry).max(until);
        Ok(())
    }

    async fn denied_until(&self, jti: &TokenId) -> Result<Option<Timestamp>> {
        let now = Timestamp::now();
        Ok(lock(&self.state).denied.get(jti).copied().filter(|until| *until > now))
    }

    async fn undeny(&self, jti: &TokenId) -> Result<bool> {
        let now = Timestamp::now();
        Ok(lock(&self.state).denied.remove(jti).is_some_and(|until| until > now))
    }

    async fn revoke_before(&self, user: &UserId, before: Timestamp, keep_until: Timestamp) -> Result<Timestamp> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let entry = state.revoked.entry(user.clone()).or_insert((before, keep_until));
        if entry.1 <= now {
            *entry = (before, keep_until);
        }
        *entry = (entry.0.max(before), entry.1.max(keep_until));
        Ok(entry.0)
    }

    async fn revoked_before(&self, user: &UserId) -> Result<Option<Timestamp>> {
        let now = Timestamp::now();
        Ok(lock(&self.state).revoked.get(user).filter(|(_, keep)| *keep > now).map(|(before, _)| *before))
    }
}

impl Sweepable for MemoryDenylist {
    fn sweep(&self, now: Timestamp) {
        let mut state = lock(&self.state);
        state.denied.retain(|_, until| *until > now);
        state.revoked.retain(|_, (_, keep)| *keep > now);
    }
}
