//! `MemoryPresence`: devices, live entries, statuses and contacts under one mutex, with the
//! online set and a [`Schedule`] of users whose offline check is due.
//!
//! With a data dir the journal keeps what outlives a connection: each user's status setting and
//! devices' last-seen times (recorded when a device's entry starts or ends and when the sweep
//! reports the user offline — never per refresh or repeated heartbeat), registered devices (with
//! their activity time when an entry starts) and contacts. Live entries are not kept: after a restart every device is offline, with the
//! last-seen time of its last recorded transition.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::presence::PRESENCE_RETENTION;
use switchboard_core::{
    ConnRef, ConnectionInfo, Device, DeviceId, DevicePresence, DeviceRegistration, Error, NodeReport, OnlinePage,
    PresenceStore, RefreshOutcome, Result, StatusChange, StatusSetting, Timestamp, Transition, UserId, UserPresence,
};

use crate::journal::{Durable, Journal, Sink, store};
use crate::lock;
use crate::schedule::Schedule;
use crate::sweeper::Sweepable;

/// Presence in memory. See [`PresenceStore`] for the contract.
///
/// `due` holds every reported-online user at a time no later than their next possible offline
/// transition (the end of their last entry, or the end of the grace period); a sweep visits
/// only users that are due and reschedules those still online.
pub(crate) struct MemoryPresence {
    state: Mutex<State>,
    /// Node reports by node id, with their expiry (not journalled: nodes report again).
    nodes: Mutex<HashMap<String, (NodeReport, Timestamp)>>,
    journal: Journal,
}

/// A journal record: what outlives a connection of one user, a device, or a contact list.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change {
    User {
        user: UserId,
        setting: StatusSetting,
        seen: Vec<(DeviceId, Timestamp)>,
        off: Timestamp,
        keep_until: Timestamp,
    },
    Device(Box<Device>),
    RemoveDevice(UserId, DeviceId),
    Contacts {
        user: UserId,
        ids: Vec<UserId>,
        expires: Option<Timestamp>,
    },
}

impl Change {
    fn user(user: &UserId, u: &UserState) -> Change {
        Change::User {
            user: user.clone(),
            setting: u.setting.clone(),
            seen: u.seen.iter().map(|(d, at)| (d.clone(), *at)).collect(),
            off: u.off,
            keep_until: u.keep_until,
        }
    }

    fn contacts(user: &UserId, c: &Contacts) -> Change {
        Change::Contacts { user: user.clone(), ids: c.ids.iter().cloned().collect(), expires: c.expires }
    }
}

impl MemoryPresence {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryPresence { state: Mutex::default(), nodes: Mutex::default(), journal }
    }

    /// Records `user`'s state without waiting: a presence transition is not refused or slowed
    /// by the journal (its record goes out with the next batch; none while it cannot be written).
    fn log_user(&self, state: &State, user: &UserId) {
        if let Some(u) = state.users.get(user)
            && self.journal.writable().is_ok()
        {
            drop(self.journal.append(store::PRESENCE, &Change::user(user, u)));
        }
    }
}

impl MemoryPresence {
    /// Records a registered device whose activity time a new live entry just moved (so its
    /// retention counts from there after a restart too); not waited for, like [`Self::log_user`].
    fn log_device(&self, state: &State, user: &UserId, device: &DeviceId) {
        if let Some(d) = state.devices.get(user).and_then(|m| m.get(device))
            && self.journal.writable().is_ok()
        {
            drop(self.journal.append(store::PRESENCE, &Change::Device(Box::new(d.clone()))));
        }
    }
}

impl Durable for MemoryPresence {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        let fresh = Self::new(Journal::default());
        records.iter().try_for_each(|record| fresh.replay(record))?;
        let mut restored = std::mem::take(&mut *lock(&fresh.state));
        let mut state = lock(&self.state);
        // Live entries are not journalled: they stay as they are.
        for (user, u) in state.users.drain() {
            if u.reported || !u.entries.is_empty() {
                let r = restored.users.entry(user).or_default();
                r.reported = u.reported;
                r.entries = u.entries;
            }
        }
        restored.online = std::mem::take(&mut state.online);
        restored.due = std::mem::take(&mut state.due);
        *state = restored;
        Ok(())
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let mut state = lock(&self.state);
        match serde_json::from_slice(record)? {
            Change::User { user, setting, seen, off, keep_until } => {
                let u = state.users.entry(user).or_default();
                u.setting = setting;
                u.seen = seen.into_iter().collect();
                u.off = off;
                u.keep_until = keep_until;
            }
            Change::Device(device) => {
                state.devices.entry(device.user_id.clone()).or_default().insert(device.device_id.clone(), *device);
            }
            Change::RemoveDevice(user, device) => {
                if let Some(devices) = state.devices.get_mut(&user) {
                    devices.remove(&device);
                    if devices.is_empty() {
                        state.devices.remove(&user);
                    }
                }
            }
            Change::Contacts { user, ids, expires } => {
                state.contacts.insert(user, Contacts { ids: ids.into_iter().collect(), expires });
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let state = lock(&self.state);
        sink.begin();
        for (user, u) in &state.users {
            sink.record(&Change::user(user, u))?;
        }
        for device in state.devices.values().flat_map(HashMap::values) {
            sink.record(&Change::Device(Box::new(device.clone())))?;
        }
        for (user, c) in &state.contacts {
            sink.record(&Change::contacts(user, c))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    users: HashMap<UserId, UserState>,
    devices: HashMap<UserId, HashMap<DeviceId, Device>>,
    contacts: HashMap<UserId, Contacts>,
    /// Users reported online.
    online: BTreeSet<UserId>,
    due: Schedule<UserId>,
    /// Set by `leave` when it ended an entry (its caller journals the user).
    ended: bool,
}

#[derive(Default)]
struct UserState {
    setting: StatusSetting,
    /// Reported online (WentOnline returned, offline not yet swept).
    reported: bool,
    entries: HashMap<EntryKey, Live>,
    /// Device -> last time known live.
    seen: HashMap<DeviceId, Timestamp>,
    /// When the last live entry ended.
    off: Timestamp,
    /// Forget this user's state after this time (retention).
    keep_until: Timestamp,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum EntryKey {
    Conn(String),
    Heartbeat(DeviceId),
}

struct Live {
    device: DeviceId,
    expires: Timestamp,
    info: Option<ConnectionInfo>,
}

struct Contacts {
    ids: BTreeSet<UserId>,
    expires: Option<Timestamp>,
}

impl Contacts {
    fn live(&self, now: Timestamp) -> bool {
        self.expires.is_none_or(|at| at > now)
    }
}

impl UserState {
    /// Drops ended entries, remembering when the last of them ended.
    fn purge(&mut self, now: Timestamp) {
        let mut off = self.off;
        self.entries.retain(|_, live| {
            let keep = live.expires > now;
            if !keep {
                off = off.max(live.expires);
            }
            keep
        });
        self.off = off;
    }

    fn last_end(&self) -> Option<Timestamp> {
        self.entries.values().map(|l| l.expires).max()
    }

    fn presence(&self, user: &UserId, now: Timestamp, grace: Duration) -> UserPresence {
        let devices: Vec<DevicePresence> = self
            .seen
            .iter()
            .map(|(device, seen)| DevicePresence {
                device_id: device.clone(),
                online: self.entries.values().any(|l| &l.device == device && l.expires > now),
                last_seen: *seen,
            })
            .collect();
        // Entries past their expiry but not purged yet ended at their expiry.
        let off = self.entries.values().map(|l| l.expires).filter(|&at| at <= now).fold(self.off, Timestamp::max);
        let in_grace = self.reported && !devices.iter().any(|d| d.online) && now < off.plus(grace);
        UserPresence::from_parts_in_grace(user.clone(), self.setting.clone(), devices, in_grace)
    }
}

impl State {
    /// Adds or replaces a live entry and reports the transition.
    /// Also says whether the entry is new (not a refresh of one already live).
    fn enter(&mut self, user: &UserId, key: EntryKey, live: Live, now: Timestamp) -> (Transition, bool) {
        let device = live.device.clone();
        let u = self.users.entry(user.clone()).or_default();
        u.purge(now);
        let new = u.entries.insert(key, live).is_none();
        u.seen.insert(device.clone(), now);
        u.keep_until = now.plus(PRESENCE_RETENTION);
        let went_online = !u.reported;
        u.reported = true;
        let last_end = u.last_end().unwrap_or(now);
        if let Some(d) = self.devices.get_mut(user).and_then(|m| m.get_mut(&device)) {
            d.last_active_at = now;
        }
        // Never later than needed: a replaced entry may have ended later than this one.
        self.due.lower(user, last_end);
        if went_online {
            self.online.insert(user.clone());
            (Transition::WentOnline, new)
        } else {
            (Transition::Unchanged, new)
        }
    }

    /// Ends one live entry now; `MaybeOffline` when it was the user's last.
    fn leave(&mut self, user: &UserId, key: &EntryKey, grace: Duration) -> Transition {
        let now = Timestamp::now();
        let Some(u) = self.users.get_mut(user) else { return Transition::Unchanged };
        let Some(removed) = u.entries.remove(key) else { return Transition::Unchanged };
        self.ended = true;
        if removed.expires > now {
            u.seen.insert(removed.device, now);
        }
        u.purge(now);
        if !u.entries.is_empty() || !u.reported {
            return Transition::Unchanged;
        }
        u.off = u.off.max(now);
        self.due.lower(user, now.plus(grace));
        Transition::MaybeOffline
    }

    fn presence(&self, user: &UserId, now: Timestamp, grace: Duration) -> UserPresence {
        match self.users.get(user) {
            Some(u) => u.presence(user, now, grace),
            None => UserPresence::from_parts(user.clone(), StatusSetting::default(), Vec::new()),
        }
    }
}

impl MemoryPresence {
    /// Ends one live entry now, journalling the user's last-seen times when it was live.
    fn leave(&self, user: &UserId, key: &EntryKey, grace: Duration) -> Transition {
        let mut state = lock(&self.state);
        state.ended = false;
        let transition = state.leave(user, key, grace);
        if state.ended {
            self.log_user(&state, user);
        }
        transition
    }
}

#[async_trait]
impl PresenceStore for MemoryPresence {
    async fn upsert_device(
        &self,
        user: &UserId,
        device: &DeviceId,
        registration: DeviceRegistration,
    ) -> Result<Device> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (out, written) = {
            let mut state = lock(&self.state);
            let devices = state.devices.entry(user.clone()).or_default();
            let registered_at = devices
                .get(device)
                .filter(|d| d.last_active_at.plus(PRESENCE_RETENTION) > now)
                .map_or(now, |d| d.registered_at);
            let stored = Device {
                user_id: user.clone(),
                device_id: device.clone(),
                platform: registration.platform,
                push_token: registration.push_token,
                app_version: registration.app_version,
                meta: registration.meta,
                registered_at,
                last_active_at: now,
            };
            devices.insert(device.clone(), stored.clone());
            let written = self.journal.append(store::PRESENCE, &Change::Device(Box::new(stored.clone())));
            (stored, written)
        };
        written.wait().await?;
        Ok(out)
    }

    async fn devices(&self, user: &UserId) -> Result<Vec<Device>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        let mut devices: Vec<Device> = state
            .devices
            .get(user)
            .map(|m| m.values().filter(|d| d.last_active_at.plus(PRESENCE_RETENTION) > now).cloned().collect())
            .unwrap_or_default();
        devices.sort_by(|a, b| b.last_active_at.cmp(&a.last_active_at).then_with(|| a.device_id.cmp(&b.device_id)));
        Ok(devices)
    }

    async fn report_node(&self, node_id: &str, connections: u64, ttl: Duration) -> Result<()> {
        let now = Timestamp::now();
        let report = NodeReport { node_id: node_id.to_owned(), connections, reported_at: now };
        let mut nodes = lock(&self.nodes);
        nodes.retain(|_, (_, expires)| *expires > now);
        nodes.insert(node_id.to_owned(), (report, now.plus(ttl)));
        Ok(())
    }

    async fn nodes(&self) -> Result<Vec<NodeReport>> {
        let now = Timestamp::now();
        let nodes = lock(&self.nodes);
        let mut live: Vec<NodeReport> =
            nodes.values().filter(|(_, expires)| *expires > now).map(|(r, _)| r.clone()).collect();
        live.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(live)
    }

    async fn remove_device(&self, user: &UserId, device: &DeviceId) -> Result<bool> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (out, written) = {
            let mut state = lock(&self.state);
            let Some(devices) = state.devices.get_mut(user) else { return Ok(false) };
            let Some(removed) = devices.remove(device) else { return Ok(false) };
            if devices.is_empty() {
                state.devices.remove(user);
            }
            let written = self.journal.append(store::PRESENCE, &Change::RemoveDevice(user.clone(), device.clone()));
            (removed.last_active_at.plus(PRESENCE_RETENTION) > now, written)
        };
        written.wait().await?;
        Ok(out)
    }

    async fn connect(&self, conn: &ConnectionInfo, ttl: Duration) -> Result<Transition> {
        let now = Timestamp::now();
        let live = Live { device: conn.device_id.clone(), expires: now.plus(ttl), info: Some(conn.clone()) };
        let mut state = lock(&self.state);
        let (transition, new) = state.enter(&conn.user_id, EntryKey::Conn(conn.conn_id.clone()), live, now);
        if new {
            self.log_user(&state, &conn.user_id);
            self.log_device(&state, &conn.user_id, &conn.device_id);
        }
        Ok(transition)
    }

    async fn refresh(&self, conns: &[ConnRef], ttl: Duration) -> Result<RefreshOutcome> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let mut outcome = RefreshOutcome::default();
        for conn in conns {
            let live = state
                .users
                .get_mut(&conn.user_id)
                .and_then(|u| {
                    let live = u.entries.get_mut(&EntryKey::Conn(conn.conn_id.clone()))?;
                    (live.expires > now).then(|| {
                        live.expires = now.plus(ttl);
                        u.seen.insert(conn.device_id.clone(), now);
                    })
                })
                .is_some();
            if live {
                outcome.refreshed += 1;
            } else {
                outcome.missing.push(conn.clone());
            }
        }
        Ok(outcome)
    }

    async fn disconnect(&self, conn: &ConnRef, grace: Duration) -> Result<Transition> {
        Ok(self.leave(&conn.user_id, &EntryKey::Conn(conn.conn_id.clone()), grace))
    }

    async fn end_heartbeat(&self, user: &UserId, device: &DeviceId, grace: Duration) -> Result<Transition> {
        Ok(self.leave(user, &EntryKey::Heartbeat(device.clone()), grace))
    }

    async fn heartbeat(&self, user: &UserId, device: &DeviceId, ttl: Duration) -> Result<Transition> {
        let now = Timestamp::now();
        let live = Live { device: device.clone(), expires: now.plus(ttl), info: None };
        let mut state = lock(&self.state);
        let (transition, new) = state.enter(user, EntryKey::Heartbeat(device.clone()), live, now);
        if new {
            self.log_user(&state, user);
            self.log_device(&state, user, device);
        }
        Ok(transition)
    }

    async fn connections(&self, user: &UserId) -> Result<Vec<ConnectionInfo>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        let mut conns: Vec<ConnectionInfo> = state
            .users
            .get(user)
            .map(|u| u.entries.values().filter(|l| l.expires > now).filter_map(|l| l.info.clone()).collect())
            .unwrap_or_default();
        conns.sort_by(|a, b| a.conn_id.cmp(&b.conn_id));
        Ok(conns)
    }

    async fn set_status(&self, user: &UserId, setting: &StatusSetting, grace: Duration) -> Result<StatusChange> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (out, written) = {
            let mut state = lock(&self.state);
            let u = state.users.entry(user.clone()).or_default();
            let previous = std::mem::replace(&mut u.setting, setting.clone());
            u.keep_until = u.keep_until.max(now.plus(PRESENCE_RETENTION));
            let change = StatusChange { previous, presence: u.presence(user, now, grace) };
            let written = self.journal.append(store::PRESENCE, &Change::user(user, u));
            (change, written)
        };
        written.wait().await?;
        Ok(out)
    }

    async fn get(&self, user: &UserId, grace: Duration) -> Result<UserPresence> {
        Ok(lock(&self.state).presence(user, Timestamp::now(), grace))
    }

    async fn bulk(&self, users: &[UserId], grace: Duration) -> Result<Vec<UserPresence>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        Ok(users.iter().map(|u| state.presence(u, now, grace)).collect())
    }

    async fn online_users(&self, cursor: Option<&str>, limit: usize) -> Result<OnlinePage> {
        let after = cursor.map(|c| UserId::parse_field("cursor", c)).transpose()?;
        let state = lock(&self.state);
        let start = after.as_ref().map_or(Bound::Unbounded, Bound::Excluded);
        let users: Vec<UserId> = state.online.range((start, Bound::Unbounded)).take(limit).cloned().collect();
        let next_cursor = (users.len() == limit).then(|| users.last().map(|u| u.to_string())).flatten();
        Ok(OnlinePage { users, next_cursor })
    }

    async fn online_count(&self) -> Result<u64> {
        Ok(lock(&self.state).online.len() as u64)
    }

    async fn sweep(&self, grace: Duration, limit: usize) -> Result<Vec<UserId>> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let mut offline = Vec::new();
        for user in state.due.take_due(now, limit) {
            let Some(u) = state.users.get_mut(&user) else {
                state.online.remove(&user);
                continue;
            };
            if !u.reported {
                state.online.remove(&user);
                continue;
            }
            u.purge(now);
            if let Some(last_end) = u.last_end() {
                state.due.set(&user, last_end);
            } else if now >= u.off.plus(grace) {
                u.reported = false;
                state.online.remove(&user);
                self.log_user(&state, &user);
                offline.push(user);
            } else {
                let at = u.off.plus(grace);
                state.due.set(&user, at);
            }
        }
        Ok(offline)
    }

    async fn set_contacts(&self, user: &UserId, contacts: &[UserId], ttl: Option<Duration>) -> Result<Vec<UserId>> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let entry = Contacts { ids: contacts.iter().cloned().collect(), expires: ttl.map(|ttl| now.plus(ttl)) };
        let (previous, written) = {
            let mut state = lock(&self.state);
            let written = self.journal.append(store::PRESENCE, &Change::contacts(user, &entry));
            (state.contacts.insert(user.clone(), entry), written)
        };
        written.wait().await?;
        Ok(previous.filter(|c| c.live(now)).map(|c| c.ids.into_iter().collect()).unwrap_or_default())
    }

    async fn add_contacts(&self, user: &UserId, contacts: &[UserId], max: usize) -> Result<usize> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (out, written) = {
            let mut state = lock(&self.state);
            let entry = state.contacts.entry(user.clone()).or_insert(Contacts { ids: BTreeSet::new(), expires: None });
            if !entry.live(now) {
                *entry = Contacts { ids: BTreeSet::new(), expires: None };
            }
            let new: BTreeSet<&UserId> = contacts.iter().filter(|c| !entry.ids.contains(*c)).collect();
            if entry.ids.len() + new.len() > max {
                return Err(Error::invalid("contacts", format!("at most {max} per user")));
            }
            let added = new.len();
            entry.ids.extend(contacts.iter().cloned());
            let written = self.journal.append(store::PRESENCE, &Change::contacts(user, entry));
            (added, written)
        };
        written.wait().await?;
        Ok(out)
    }

    async fn remove_contacts(&self, user: &UserId, contacts: &[UserId]) -> Result<usize> {
        self.journal.writable()?;
        let now = Timestamp::now();
        let (out, written) = {
            let mut state = lock(&self.state);
            let Some(entry) = state.contacts.get_mut(user).filter(|c| c.live(now)) else { return Ok(0) };
            let removed = contacts.iter().collect::<BTreeSet<_>>().into_iter().filter(|c| entry.ids.remove(*c)).count();
            let written = self.journal.append(store::PRESENCE, &Change::contacts(user, entry));
            (removed, written)
        };
        written.wait().await?;
        Ok(out)
    }

    async fn contacts(&self, user: &UserId) -> Result<Vec<UserId>> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        Ok(state
            .contacts
            .get(user)
            .filter(|c| c.live(now))
            .map(|c| c.ids.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn is_contact(&self, user: &UserId, other: &UserId) -> Result<bool> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        Ok(state.contacts.get(user).is_some_and(|c| c.live(now) && c.ids.contains(other)))
    }
}

impl Sweepable for MemoryPresence {
    /// Retention only: offline transitions are the presence sweep's job (it emits events).
    fn sweep(&self, now: Timestamp) {
        let mut state = lock(&self.state);
        state.devices.retain(|_, devices| {
            devices.retain(|_, d| d.last_active_at.plus(PRESENCE_RETENTION) > now);
            !devices.is_empty()
        });
        state.users.retain(|_, u| u.reported || !u.entries.is_empty() || u.keep_until > now);
        state.contacts.retain(|_, c| c.live(now));
    }
}
