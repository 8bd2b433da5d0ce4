//! The registry of this node's connections: per-user limits, targeted disconnects, and the list
//! the presence refresher walks.

use std::collections::HashMap;
use std::sync::Mutex;

use switchboard_core::presence::{ConnRef, ConnectionInfo};
use switchboard_core::{ChannelName, DeviceId, SessionId, Timestamp, TokenId, UserId};
use tokio::sync::mpsc;

use super::codes::DisconnectCode;
use super::control::DisconnectTarget;

/// What a connection's own loop is asked to do by other tasks (its forwarders, this node's
/// registry, other nodes through control publications).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Order {
    /// End the connection with this code.
    Disconnect(DisconnectCode),
    /// End the connection if its current token matches (a disconnect order that reached every
    /// node with a connection of this user).
    DisconnectIf(DisconnectTarget),
    /// The subscription to `channel` numbered `id` ended by itself (its access was revoked and the
    /// client was told): forget it.
    SubscriptionEnded {
        /// The channel.
        channel: ChannelName,
        /// Which subscription: the client may have subscribed again meanwhile.
        id: u64,
    },
}

/// The token a connection is authenticated with, as disconnect orders address it. Replaced on
/// `refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenRef {
    pub(crate) session: Option<SessionId>,
    pub(crate) issued_at: Timestamp,
    pub(crate) token_id: Option<TokenId>,
    /// The token's digest: a denial of the whole token names it.
    pub(crate) digest: TokenId,
}

impl TokenRef {
    /// Whether `id` is one of the token's denylist ids (its `jti` or its digest).
    fn named_by(&self, id: &TokenId) -> bool {
        self.token_id.as_ref() == Some(id) || self.digest == *id
    }
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
    token: TokenRef,
    orders: mpsc::UnboundedSender<Order>,
}

impl Entry {
    fn matches(&self, target: &Target) -> bool {
        target.device.as_ref().is_none_or(|d| *d == self.info.device_id)
            && target.session.as_ref().is_none_or(|s| Some(s) == self.token.session.as_ref())
            && target.issued_before.is_none_or(|t| switchboard_core::denylist::revoked_by(self.token.issued_at, t))
    }

    fn order(&self, code: DisconnectCode) -> bool {
        self.orders.send(Order::Disconnect(code)).is_ok()
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
        token: TokenRef,
        orders: mpsc::UnboundedSender<Order>,
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
        conns.insert(info.conn_id.clone(), Entry { info, token, orders });
        Ok(())
    }

    /// Records the token a connection refreshed to.
    pub(crate) fn refreshed(&self, user: &UserId, conn_id: &str, token: TokenRef) {
        if let Some(entry) = self.users().get_mut(user).and_then(|c| c.get_mut(conn_id)) {
            entry.token = token;
        }
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
        conns.values().filter(|e| e.matches(target)).filter(|e| e.order(code)).count()
    }

    /// Orders the connections authenticated with a token that `id` names (its `jti` or its
    /// digest) to end; returns how many were told. A scan of this node's connections: denials
    /// are rare, connections many.
    pub(crate) fn disconnect_token(&self, id: &TokenId, code: DisconnectCode) -> usize {
        let users = self.users();
        let entries = users.values().flat_map(HashMap::values);
        entries.filter(|e| e.token.named_by(id)).filter(|e| e.order(code)).count()
    }

    /// The distinct denylist ids of the tokens in use on this node, `jti`s and digests (to check
    /// them against the denylist again after denial events may have been missed).
    pub(crate) fn token_ids(&self) -> Vec<TokenId> {
        let users = self.users();
        let tokens = users.values().flat_map(HashMap::values).map(|e| &e.token);
        let ids = tokens.flat_map(|t| t.token_id.iter().chain([&t.digest]).cloned());
        ids.collect::<std::collections::HashSet<_>>().into_iter().collect()
    }

    /// Orders every connection to end (shutdown).
    pub(crate) fn disconnect_all(&self, code: DisconnectCode) -> usize {
        let users = self.users();
        users.values().flat_map(|c| c.values()).filter(|e| e.order(code)).count()
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
