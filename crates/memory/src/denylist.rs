//! `MemoryDenylist`: denied token ids and per-user revoke-before times, each with its expiry.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::{Result, Timestamp, TokenDenylist, TokenId, UserId};

use crate::journal::{self, Durable, Journal, Sink, store};
use crate::lock;
use crate::sweeper::Sweepable;

#[derive(Default)]
pub(crate) struct MemoryDenylist {
    state: Mutex<State>,
    journal: Journal,
}

/// A journal record: an entry's new value, or its removal.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change {
    Denied(TokenId, Timestamp),
    Undenied(TokenId),
    Revoked(UserId, Timestamp, Timestamp),
}

impl MemoryDenylist {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryDenylist { state: Mutex::default(), journal }
    }
}

impl Durable for MemoryDenylist {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let mut state = lock(&self.state);
        match serde_json::from_slice(record)? {
            Change::Denied(jti, until) => drop(state.denied.insert(jti, until)),
            Change::Undenied(jti) => drop(state.denied.remove(&jti)),
            Change::Revoked(user, before, keep) => drop(state.revoked.insert(user, (before, keep))),
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for (jti, until) in &state.denied {
            sink.record(&Change::Denied(jti.clone(), *until))?;
        }
        for (user, (before, keep)) in &state.revoked {
            sink.record(&Change::Revoked(user.clone(), *before, *keep))?;
        }
        Ok(())
    }
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
        self.journal.writable()?;
        if until <= Timestamp::now() {
            return Ok(());
        }
        let written = {
            let mut state = lock(&self.state);
            let entry = state.denied.entry(jti.clone()).or_insert(until);
            *entry = (*entry).max(until);
            self.journal.append(store::DENYLIST, &Change::Denied(jti.clone(), *entry))
        };
        written.wait().await
    }

    async fn denied_until(&self, jti: &TokenId) -> Result<Option<Timestamp>> {
        let now = Timestamp::now();
        Ok(lock(&self.state).denied.get(jti).copied().filter(|until| *until > now))
    }

    async fn undeny(&self, jti: &TokenId) -> Result<bool> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (live, written) = {
            let mut state = lock(&self.state);
            let Some(until) = state.denied.remove(jti) else { return Ok(false) };
            (until > now, self.journal.append(store::DENYLIST, &Change::Undenied(jti.clone())))
        };
        written.wait().await?;
        Ok(live)
    }

    async fn revoke_before(&self, user: &UserId, before: Timestamp, keep_until: Timestamp) -> Result<Timestamp> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (before, written) = {
            let mut state = lock(&self.state);
            let entry = state.revoked.entry(user.clone()).or_insert((before, keep_until));
            if entry.1 <= now {
                *entry = (before, keep_until);
            }
            *entry = (entry.0.max(before), entry.1.max(keep_until));
            (entry.0, self.journal.append(store::DENYLIST, &Change::Revoked(user.clone(), entry.0, entry.1)))
        };
        written.wait().await?;
        Ok(before)
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
