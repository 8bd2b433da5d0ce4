//! The registry of this node's connections: per-user limits, targeted disconnects, and the list
//! the presence refresher walks.

use std::collections::HashMap;
use std::sync::Mutex;

use switchboard_core::presence::{ConnRef, ConnectionInfo};
use switchboard_core::{DeviceId, SessionId, Timestamp, UserId};
use tokio::sync::mpsc;

use super::codes::DisconnectCode;

/// Asks a connection to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DisconnectOrder {
    /// The code and reason the client is told.
    pub(crate) code: DisconnectCode,
}

/// Which of a user's connections an order addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Target {
    /// Only this device's connections.
    pub(crate) device: Option<DeviceId>,
    /// Only connections made with a token of this session.
    pub(crate) session: Option<SessionId>,
    /// Only connections whose token was issued before this time.
    pub(crate) issued_before: Option<Timestamp>,
}

struct Entry {
    info: ConnectionInfo,
    session: Option<SessionId>,
    issued_at: Timestamp,
    orders: mpsc::UnboundedSender<DisconnectOrder>,
}

impl Entry {
    fn matches(&self, target: &Target) -> bool {
        target.device.as_ref().is_none_or(|d| *d == self.info.device_id)
            && target.session.as_ref().is_none_or(|s| Some(s) == self.session.as_ref())
            && target.issued_before.is_none_or(|t| self.issued_at < t)
    }
}

/// This node's live, connected clients by user.
#[derive(Default)]
pub(crate) struct Registry {
    users: Mutex<HashMap<UserId, HashMap<String, Entry>>>,
}

/// The user already has the most connections allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyConnections;

impl Registry {
    fn users(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, HashMap<String, Entry>>> {
        self.users.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a connection unless its user already has `max_per_user` on this node.
    pub(crate) fn register(
        &self,
        info: ConnectionInfo,
        session: Option<SessionId>,
        issued_at: Timestamp,
        orders: mpsc::UnboundedSender<DisconnectOrder>,
        max_per_user: usize,
    ) -> Result<(), TooManyConnections> {
        let mut users = self.users();
        let conns = users.entry(info.user_id.clone()).or_default();
        if conns.len() >= max_per_user {
            if conns.is_empty() {
                users.remove(&info.user_id);
            }
            return Err(TooManyConnections);
        }
        conns.insert(info.conn_id.clone(), Entry { info, session, issued_at, orders });
        Ok(())
    }

    /// Removes a connection.
    pub(crate) fn unregister(&self, user: &UserId, conn_id: &str) {
        let mut users = self.users();
        if let Some(conns) = users.get_mut(user) {
            conns.remove(conn_id);
            if conns.is_empty() {
                users.remove(user);
            }
        }
    }

    /// Orders the user's matching connections to end; returns how many were told.
    pub(crate) fn disconnect(&self, user: &UserId, target: &Target, code: DisconnectCode) -> usize {
        let users = self.users();
        let Some(conns) = users.get(user) else { return 0 };
        conns.values().filter(|e| e.matches(target)).filter(|e| e.orders.send(DisconnectOrder { code }).is_ok()).count()
    }

    /// Orders every connection to end (shutdown).
    pub(crate) fn disconnect_all(&self, code: DisconnectCode) -> usize {
        let users = self.users();
        users.values().flat_map(|c| c.values()).filter(|e| e.orders.send(DisconnectOrder { code }).is_ok()).count()
    }

    /// Every connection, as presence names them.
    pub(crate) fn conn_refs(&self) -> Vec<ConnRef> {
        self.users().values().flat_map(|c| c.values()).map(|e| e.info.conn_ref()).collect()
    }

    /// The registration of a connection (to register it again after it expired in presence).
    pub(crate) fn info(&self, conn: &ConnRef) -> Option<ConnectionInfo> {
        self.users().get(&conn.user_id).and_then(|c| c.get(&conn.conn_id)).map(|e| e.info.clone())
    }

    /// Connections on this node.
    pub(crate) fn len(&self) -> usize {
        self.users().values().map(HashMap::len).sum()
    }
}
