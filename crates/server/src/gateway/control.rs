//! Disconnect orders that reach every node: an ephemeral publication of a reserved type on the
//! user's personal channel, which the gateway intercepts (clients never see it). Every node with a
//! connection of that user is subscribed to that channel, so the order reaches exactly those
//! nodes, whichever node the API call came to.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::{ChannelName, DeviceId, NewPublication, Result, SessionId, Switchboard, Timestamp, UserId};

use super::codes::DisconnectCode;
use super::registry::DisconnectOrder;
use super::subscription::Identity;

/// The reserved publication type of a disconnect order.
pub(crate) const DISCONNECT_TYPE: &str = "_switchboard.disconnect";

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
    sb.streams().publish_ephemeral(&ChannelName::user(user), NewPublication::new(data)).await
}

/// Whether `data` is a control publication, and if so the order it gives the connection `who`
/// (`None` inside when it addresses another connection of the same user). Control publications
/// are never shown to clients.
pub(crate) fn control(data: &Value, who: &Identity) -> Option<Option<DisconnectOrder>> {
    if data.get("type").and_then(Value::as_str) != Some(DISCONNECT_TYPE) {
        return None;
    }
    let Some(target) = data.get("data").and_then(|d| DisconnectTarget::deserialize(d).ok()) else {
        return Some(None);
    };
    let matches = target.device_id.as_ref().is_none_or(|d| *d == who.device)
        && target.session_id.as_ref().is_none_or(|s| Some(s) == who.session.as_ref())
        && target.issued_before.is_none_or(|t| who.issued_at < t);
    let code = if target.reconnect { DisconnectCode::ForceReconnect } else { DisconnectCode::ForceNoReconnect };
    Some(matches.then_some(DisconnectOrder { code }))
}
