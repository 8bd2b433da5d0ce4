//! `MemoryNotifications`: each user's notifications in creation order under one mutex.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::notification::{
    CreatedNotification, Mark, NewNotification, Notification, NotificationChange, NotificationPage,
    NotificationRetention, NotificationStore,
};
use switchboard_core::{Error, NotificationId, Result, Timestamp, UserId};

use crate::journal::{self, Durable, Journal, Sink, Ticket, store};
use crate::lock;

#[derive(Default)]
pub(crate) struct MemoryNotifications {
    users: Mutex<HashMap<UserId, UserNotifications>>,
    journal: Journal,
}

/// A journal record is the list of one operation's changes.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    /// A notification as created or changed, with its user's list settings.
    Put { user: Cow<'a, UserId>, seq: u64, next_seq: u64, max_age_ms: u64, notification: Cow<'a, Notification> },
    /// The user's notifications before `below` were dropped (count retention).
    Trim { user: Cow<'a, UserId>, below: u64 },
}

impl<'a> Change<'a> {
    fn put(user: &'a UserId, state: &UserNotifications, seq: u64, notification: &'a Notification) -> Self {
        Change::Put {
            user: Cow::Borrowed(user),
            seq,
            next_seq: state.next_seq,
            max_age_ms: state.max_age.as_millis().min(u64::MAX as u128) as u64,
            notification: Cow::Borrowed(notification),
        }
    }
}

impl MemoryNotifications {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryNotifications { users: Mutex::default(), journal }
    }
}

impl Durable for MemoryNotifications {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.users)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let changes: Vec<Change<'_>> = serde_json::from_slice(record)?;
        let mut users = lock(&self.users);
        for change in changes {
            match change {
                Change::Put { user, seq, next_seq, max_age_ms, notification } => {
                    let state = users.entry(user.into_owned()).or_insert_with(|| UserNotifications {
                        next_seq,
                        max_age: Duration::ZERO,
                        by_seq: BTreeMap::new(),
                        by_id: HashMap::new(),
                    });
                    state.next_seq = state.next_seq.max(next_seq);
                    state.max_age = Duration::from_millis(max_age_ms);
                    state.by_id.insert(notification.id.clone(), seq);
                    state.by_seq.insert(seq, notification.into_owned());
                }
                Change::Trim { user, below } => {
                    if let Some(state) = users.get_mut(user.as_ref()) {
                        let kept = state.by_seq.split_off(&below);
                        for n in std::mem::replace(&mut state.by_seq, kept).into_values() {
                            state.by_id.remove(&n.id);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let users = lock(&self.users);
        sink.begin();
        for (user, state) in users.iter() {
            for (seq, n) in &state.by_seq {
                sink.record(&[Change::put(user, state, *seq, n)])?;
            }
        }
        Ok(())
    }
}

/// One user's notifications by sequence number (creation order), with the id index.
struct UserNotifications {
    next_seq: u64,
    max_age: Duration,
    by_seq: BTreeMap<u64, Notification>,
    by_id: HashMap<NotificationId, u64>,
}

impl UserNotifications {
    /// Drops what is older than the retention age at `now`.
    fn trim_age(&mut self, now: Timestamp) {
        let cutoff = now.as_millis().saturating_sub(self.max_age.as_millis().min(i64::MAX as u128) as i64);
        while let Some((&seq, n)) = self.by_seq.first_key_value() {
            if n.created_at.as_millis() > cutoff {
                break;
            }
            self.by_id.remove(&n.id);
            self.by_seq.remove(&seq);
        }
    }

    fn trim_count(&mut self, max: u32) {
        while self.by_seq.len() > max as usize {
            if let Some((_, n)) = self.by_seq.pop_first() {
                self.by_id.remove(&n.id);
            }
        }
    }

    fn set(&mut self, seq: u64, mark: Mark, now: Timestamp) -> Option<NotificationChange> {
        let n = self.by_seq.get_mut(&seq)?;
        let (flag, value) = match mark {
            Mark::Read => (&mut n.read, true),
            Mark::Dismissed => (&mut n.dismissed, true),
            Mark::Unread => (&mut n.read, false),
        };
        if *flag == value {
            return None;
        }
        *flag = value;
        n.updated_at = now;
        Some(NotificationChange { id: n.id.clone(), read: n.read, dismissed: n.dismissed, updated_at: now })
    }
}

impl MemoryNotifications {
    /// Runs `f` on the user's live notifications (expired ones dropped first), if any.
    fn with_user<T>(&self, user: &UserId, f: impl FnOnce(&mut UserNotifications, Timestamp) -> T) -> Option<T> {
        let now = Timestamp::now();
        let mut users = lock(&self.users);
        let state = users.get_mut(user)?;
        state.trim_age(now);
        Some(f(state, now))
    }
}

impl MemoryNotifications {
    /// Appends the changed notifications (by sequence) of one operation, if any.
    fn log_changed(
        &self,
        user: &UserId,
        state: &UserNotifications,
        changed: &[(u64, NotificationChange)],
    ) -> Option<Ticket> {
        let changes: Vec<Change<'_>> = changed
            .iter()
            .filter_map(|(seq, _)| Some(Change::put(user, state, *seq, state.by_seq.get(seq)?)))
            .collect();
        (!changes.is_empty()).then(|| self.journal.append(store::NOTIFICATIONS, &changes))
    }

    /// Waits for the changes' record, then answers them.
    async fn settle(&self, changed: Option<(Option<Ticket>, Changed)>) -> Result<Vec<NotificationChange>> {
        let Some((written, changed)) = changed else { return Ok(Vec::new()) };
        if let Some(written) = written {
            written.wait().await?;
        }
        Ok(changed.into_iter().map(|(_, change)| change).collect())
    }
}

/// What one operation changed: each notification's sequence and its change.
type Changed = Vec<(u64, NotificationChange)>;

fn parse_cursor(cursor: Option<&str>) -> Result<u64> {
    match cursor {
        None => Ok(u64::MAX),
        Some(c) => c.parse().map_err(|_| Error::invalid("cursor", "is not a cursor")),
    }
}

#[async_trait]
impl NotificationStore for MemoryNotifications {
    async fn create(
        &self,
        user: &UserId,
        new: &NewNotification,
        retention: NotificationRetention,
    ) -> Result<CreatedNotification> {
        self.journal.writable()?;
        let (notification, written) = {
            let now = Timestamp::now();
            let mut users = lock(&self.users);
            let state = users.entry(user.clone()).or_insert_with(|| UserNotifications {
                next_seq: 1,
                max_age: retention.max_age,
                by_seq: BTreeMap::new(),
                by_id: HashMap::new(),
            });
            state.max_age = retention.max_age;
            state.trim_age(now);
            if let Some(n) = state.by_id.get(&new.id).and_then(|seq| state.by_seq.get(seq)) {
                return Ok(CreatedNotification { notification: n.clone(), created: false });
            }
            let seq = state.next_seq;
            state.next_seq += 1;
            let notification = Notification::from_new(new.clone(), now);
            state.by_id.insert(new.id.clone(), seq);
            state.by_seq.insert(seq, notification.clone());
            let oldest = state.by_seq.first_key_value().map(|(seq, _)| *seq);
            state.trim_count(retention.max_per_user);
            let mut changes = vec![Change::put(user, state, seq, &notification)];
            if let Some(below) = state.by_seq.first_key_value().map(|(seq, _)| *seq)
                && Some(below) != oldest
            {
                changes.push(Change::Trim { user: Cow::Borrowed(user), below });
            }
            let written = self.journal.append(store::NOTIFICATIONS, &changes);
            (notification, written)
        };
        written.wait().await?;
        Ok(CreatedNotification { notification, created: true })
    }

    async fn list(
        &self,
        user: &UserId,
        cursor: Option<&str>,
        limit: usize,
        unread_only: bool,
    ) -> Result<NotificationPage> {
        let before = parse_cursor(cursor)?;
        let page = self.with_user(user, |state, _| {
            let mut notifications = Vec::new();
            let mut next_cursor = None;
            for (seq, n) in state.by_seq.range(..before).rev() {
                if unread_only && !n.is_unread() {
                    continue;
                }
                if notifications.len() == limit {
                    break;
                }
                notifications.push(n.clone());
                next_cursor = Some(*seq);
            }
            // A cursor only when something older matches.
            let more =
                next_cursor.is_some_and(|last| state.by_seq.range(..last).any(|(_, n)| !unread_only || n.is_unread()));
            NotificationPage { notifications, next_cursor: next_cursor.filter(|_| more).map(|s| s.to_string()) }
        });
        Ok(page.unwrap_or(NotificationPage { notifications: Vec::new(), next_cursor: None }))
    }

    async fn get(&self, user: &UserId, id: &NotificationId) -> Result<Option<Notification>> {
        Ok(self
            .with_user(user, |state, _| state.by_id.get(id).and_then(|seq| state.by_seq.get(seq)).cloned())
            .flatten())
    }

    async fn unread_count(&self, user: &UserId) -> Result<u64> {
        let count = self.with_user(user, |state, _| state.by_seq.values().filter(|n| n.is_unread()).count());
        Ok(count.unwrap_or(0) as u64)
    }

    async fn mark(&self, user: &UserId, ids: &[NotificationId], mark: Mark) -> Result<Vec<NotificationChange>> {
        self.journal.writable()?;
        let changed = self.with_user(user, |state, now| {
            let changed: Vec<(u64, NotificationChange)> = ids
                .iter()
                .filter_map(|id| {
                    let seq = *state.by_id.get(id)?;
                    Some((seq, state.set(seq, mark, now)?))
                })
                .collect();
            (self.log_changed(user, state, &changed), changed)
        });
        self.settle(changed).await
    }

    async fn read_all(&self, user: &UserId) -> Result<Vec<NotificationChange>> {
        self.journal.writable()?;
        let changed = self.with_user(user, |state, now| {
            let seqs: Vec<u64> = state.by_seq.keys().rev().copied().collect();
            let changed: Vec<(u64, NotificationChange)> =
                seqs.into_iter().filter_map(|seq| Some((seq, state.set(seq, Mark::Read, now)?))).collect();
            (self.log_changed(user, state, &changed), changed)
        });
        self.settle(changed).await
    }
}

impl crate::sweeper::Sweepable for MemoryNotifications {
    fn sweep(&self, now: Timestamp) {
        let mut users = lock(&self.users);
        users.retain(|_, state| {
            state.trim_age(now);
            !state.by_seq.is_empty()
        });
    }
}
