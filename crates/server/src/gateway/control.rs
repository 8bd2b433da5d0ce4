//! Disconnect orders that reach every node: an ephemeral publication of a reserved type on the
//! user's personal channel, which the gateway intercepts (clients never see it). Every node with a
//! connection of that user is subscribed to that channel, so the order reaches exactly those
//! nodes, whichever node the API call came to. Denied tokens reach every node through the
//! node-wide control channel instead (see [`switchboard_core::control`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::control::DISCONNECT_TYPE;
use switchboard_core::{ChannelName, DeviceId, NewPublication, Result, SessionId, Switchboard, Timestamp, UserId};

use super::codes::DisconnectCode;
use super::registry::TokenRef;

/// Which of a user's connections to end, on every node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisconnectTarget {
    /// Only this device's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<DeviceId>,
    /// Only connections made with a token of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<SessionId>,
    /// Only connections whose token was issued before this time (revoke-before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_before: Option<Timestamp>,
    /// Whether the clients may reconnect (with a new token).
    #[serde(default)]
    pub reconnect: bool,
}

/// Sends a disconnect order for `user`'s matching connections to every node.
pub async fn disconnect_everywhere(sb: &Switchboard, user: &UserId, target: &DisconnectTarget) -> Result<()> {
    let data = serde_json::json!({"type": DISCONNECT_TYPE, "data": target});
    sb.streams().publish_control(&ChannelName::user(user), NewPublication::new(data)).await
}

/// The disconnect order `data` carries, if it is one.
pub(crate) fn disconnect_order(data: &Value) -> Option<DisconnectTarget> {
    if data.get("type").and_then(Value::as_str) != Some(DISCONNECT_TYPE) {
        return None;
    }
    data.get("data").and_then(|d| DisconnectTarget::deserialize(d).ok())
}

impl DisconnectTarget {
    /// The code the matching connections are closed with.
    pub(crate) fn code(&self) -> DisconnectCode {
        if self.reconnect { DisconnectCode::ForceReconnect } else { DisconnectCode::ForceNoReconnect }
    }

    /// Whether the order addresses a connection of `device` authenticated with `token`.
    pub(crate) fn matches(&self, device: &DeviceId, token: &TokenRef) -> bool {
        self.device_id.as_ref().is_none_or(|d| d == device)
            && self.session_id.as_ref().is_none_or(|s| Some(s) == token.session.as_ref())
            && self.issued_before.is_none_or(|t| switchboard_core::denylist::revoked_by(token.issued_at, t))
    }
}
