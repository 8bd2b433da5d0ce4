//! `MemorySessions`: sessions in two maps (by id, and each user's ids) under one mutex, so every
//! multi-step operation (create with eviction, delete all but one) is atomic.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::session::data_size;
use switchboard_core::{
    CreatedSession, Error, NewSession, Result, Session, SessionData, SessionId, SessionStore, Timestamp, UserId,
};

use crate::journal::{self, Durable, Journal, Sink, store};
use crate::sweeper::Sweepable;
use crate::{codec, lock};

#[derive(Default)]
pub(crate) struct MemorySessions {
    state: Mutex<State>,
    journal: Journal,
}

/// A journal record: the changes of one operation, each a whole session, a touch (its new last
/// activity and expiry: the most frequent change stays a few dozen bytes) or a deletion.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    Put(Box<Cow<'a, Session>>),
    Delete(Cow<'a, SessionId>),
    Touch(Cow<'a, SessionId>, Timestamp, Timestamp),
}

/// The kind byte of a binary touch record: the session id, its new last activity and expiry (ms).
const TOUCH: u8 = 1;

impl MemorySessions {
    pub(crate) fn new(journal: Journal) -> Self {
        MemorySessions { state: Mutex::default(), journal }
    }
}

impl Durable for MemorySessions {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let changes: Vec<Change<'_>> = match codec::Reader::of(record) {
            Some((TOUCH, mut r)) => {
                let id: SessionId = r.parse("session id")?;
                let (last_active_at, expires_at) = (Timestamp::from_millis(r.i64()?), Timestamp::from_millis(r.i64()?));
                r.end()?;
                vec![Change::Touch(Cow::Owned(id), last_active_at, expires_at)]
            }
            Some(_) => return Err(codec::error("unknown session record")),
            None => serde_json::from_slice(record)?,
        };
        let mut state = lock(&self.state);
        for change in changes {
            match change {
                Change::Put(session) => state.put((*session).into_owned()),
                Change::Delete(id) => drop(state.remove(&id)),
                Change::Touch(id, last_active_at, expires_at) => {
                    if let Some(session) = state.by_id.get_mut(id.as_ref()) {
                        session.last_active_at = last_active_at;
                        session.expires_at = expires_at;
                    }
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for session in state.by_id.values() {
            sink.record(&[Change::Put(Box::new(Cow::Borrowed(session)))])?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    by_id: HashMap<SessionId, Session>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
}

impl State {
    /// The live session, dropping it if it has expired.
    fn live(&mut self, id: &SessionId, now: Timestamp) -> Option<&mut Session> {
        let expired = self.by_id.get(id).is_some_and(|s| s.expires_at <= now);
        if expired {
            self.remove(id);
            return None;
        }
        self.by_id.get_mut(id)
    }

    fn put(&mut self, session: Session) {
        self.by_user.entry(session.user_id.clone()).or_default().insert(session.id.clone());
        self.by_id.insert(session.id.clone(), session);
    }

    fn remove(&mut self, id: &SessionId) -> Option<Session> {
        let session = self.by_id.remove(id)?;
        if let Some(ids) = self.by_user.get_mut(&session.user_id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&session.user_id);
            }
        }
        Some(session)
    }

    /// The user's live session ids, most recently active first, dropping expired ones.
    fn user_sessions(&mut self, user: &UserId, now: Timestamp) -> Vec<SessionId> {
        let ids: Vec<SessionId> = self.by_user.get(user).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        let mut live: Vec<(Timestamp, SessionId)> = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(s) = self.live(&id, now) {
                live.push((s.last_active_at, id));
            }
        }
        live.sort_by_key(|entry| std::cmp::Reverse(entry.0));
        live.into_iter().map(|(_, id)| id).collect()
    }
}

#[async_trait]
impl SessionStore for MemorySessions {
    async fn create(&self, new: NewSession, max_per_user: u32) -> Result<CreatedSession> {
        self.journal.writable()?;
        let id = match &new.id {
            Some(id) => id.clone(),
            None => SessionId::generate(&new.user_id)?,
        };
        let now = Timestamp::now();
        let absolute_expires_at = now.plus(new.absolute_ttl);
        let session = Session {
            id,
            user_id: new.user_id,
            device: new.device,
            ip: new.ip,
            user_agent: new.user_agent,
            data: new.data,
            created_at: now,
            last_active_at: now,
            expires_at: now.plus(new.idle_ttl).min(absolute_expires_at),
            absolute_expires_at,
            idle_ttl_ms: new.idle_ttl.as_millis() as u64,
        };
        let mut evicted = Vec::new();
        let mut replaced = Vec::new();
        let written = {
            let mut state = lock(&self.state);
            if state.live(&session.id, now).is_some() {
                return Err(Error::Conflict("session id already in use".into()));
            }
            if let Some(device) = &new.replace_device {
                for other in state.user_sessions(&session.user_id, now) {
                    let same = state.by_id.get(&other).is_some_and(|s| s.device.device_id.as_ref() == Some(device));
                    if same {
                        state.remove(&other);
                        replaced.push(other);
                    }
                }
            }
            if max_per_user > 0 {
                let existing = state.user_sessions(&session.user_id, now);
                let keep = max_per_user as usize - 1;
                // Least recently active last in `existing`: evict from the end, oldest first.
                for victim in existing.iter().skip(keep).rev() {
                    state.remove(victim);
                    evicted.push(victim.clone());
                }
            }
            state.put(session.clone());
            let mut changes: Vec<Change<'_>> =
                replaced.iter().chain(&evicted).map(|id| Change::Delete(Cow::Borrowed(id))).collect();
            changes.push(Change::Put(Box::new(Cow::Borrowed(&session))));
            self.journal.append(store::SESSIONS, &changes)
        };
        written.wait().await?;
        Ok(CreatedSession { session, evicted, replaced })
    }

    async fn get(&self, id: &SessionId) -> Result<Option<Session>> {
        Ok(lock(&self.state).live(id, Timestamp::now()).map(|s| s.clone()))
    }

    async fn touch(&self, id: &SessionId) -> Result<Option<Session>> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (session, written) = {
            let mut state = lock(&self.state);
            let session = state.live(id, now).map(|s| {
                s.last_active_at = now;
                s.expires_at = now.plus(std::time::Duration::from_millis(s.idle_ttl_ms)).min(s.absolute_expires_at);
                s.clone()
            });
            let written = session.as_ref().map(|s| {
                self.journal.append_binary(store::SESSIONS, TOUCH, |w| {
                    w.str(id.as_str()).i64(now.as_millis()).i64(s.expires_at.as_millis());
                })
            });
            (session, written)
        };
        if let Some(written) = written {
            written.wait().await?;
        }
        Ok(session)
    }

    async fn update_data(&self, id: &SessionId, patch: &SessionData, max_data_bytes: usize) -> Result<Option<Session>> {
        self.journal.writable()?;
        let (session, written) = {
            let mut state = lock(&self.state);
            let Some(session) = state.live(id, Timestamp::now()) else { return Ok(None) };
            let mut merged = session.data.clone();
            for (field, value) in patch {
                if value.is_null() {
                    merged.remove(field);
                } else {
                    merged.insert(field.clone(), value.clone());
                }
            }
            if data_size(&merged) > max_data_bytes {
                return Err(Error::PayloadTooLarge(format!("data: must be at most {max_data_bytes} bytes")));
            }
            session.data = merged;
            let session = session.clone();
            let written = self.journal.append(store::SESSIONS, &[Change::Put(Box::new(Cow::Borrowed(&session)))]);
            (session, written)
        };
        written.wait().await?;
        Ok(Some(session))
    }

    async fn delete(&self, id: &SessionId) -> Result<bool> {
        self.journal.writable()?;
        let written = {
            let mut state = lock(&self.state);
            let live = state.live(id, Timestamp::now()).is_some();
            if !(live && state.remove(id).is_some()) {
                return Ok(false);
            }
            self.journal.append(store::SESSIONS, &[Change::Delete(Cow::Borrowed(id))])
        };
        written.wait().await?;
        Ok(true)
    }

    async fn list(&self, user: &UserId) -> Result<Vec<Session>> {
        let mut state = lock(&self.state);
        let ids = state.user_sessions(user, Timestamp::now());
        Ok(ids.iter().filter_map(|id| state.by_id.get(id).cloned()).collect())
    }

    async fn delete_user_sessions(&self, user: &UserId, except: Option<&SessionId>) -> Result<Vec<SessionId>> {
        self.journal.writable()?;
        let (deleted, written) = {
            let mut state = lock(&self.state);
            let ids = state.user_sessions(user, Timestamp::now());
            let deleted: Vec<SessionId> = ids.into_iter().filter(|id| Some(id) != except).collect();
            for id in &deleted {
                state.remove(id);
            }
            let changes: Vec<Change<'_>> = deleted.iter().map(|id| Change::Delete(Cow::Borrowed(id))).collect();
            let written = (!changes.is_empty()).then(|| self.journal.append(store::SESSIONS, &changes));
            (deleted, written)
        };
        if let Some(written) = written {
            written.wait().await?;
        }
        Ok(deleted)
    }

    async fn count_active(&self) -> Result<u64> {
        let now = Timestamp::now();
        Ok(lock(&self.state).by_id.values().filter(|s| s.expires_at > now).count() as u64)
    }
}

impl Sweepable for MemorySessions {
    fn sweep(&self, now: Timestamp) {
        let mut state = lock(&self.state);
        let expired: Vec<SessionId> =
            state.by_id.values().filter(|s| s.expires_at <= now).map(|s| s.id.clone()).collect();
        for id in expired {
            state.remove(&id);
        }
    }
}
