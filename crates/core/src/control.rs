//! Control publications: events of reserved types that the services publish so that every node's
//! gateway ends access the moment the permission behind it ends. Clients never see them and the
//! API refuses to publish them.
//!
//! Access changes travel *on the channel they concern*, so they reach each node's subscribers in
//! the same order as that channel's publications: a subscriber whose access ended is told before
//! any publication made after the change, whatever node made it. Denied tokens are not tied to a
//! channel a node would already be subscribed to, so they travel on the node-wide
//! [`crate::ChannelName::control`] channel every gateway listens to.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::ids::{TokenId, UserId};
use crate::stream::NewPublication;

/// Publication types starting with this are reserved for control events.
pub const RESERVED_TYPE_PREFIX: &str = "_switchboard.";
/// The type of an [`AccessChanged`] event.
pub const ACCESS_CHANGED_TYPE: &str = "_switchboard.access";
/// The type of a [`TokenDenied`] event.
pub const TOKEN_DENIED_TYPE: &str = "_switchboard.token_denied";
/// The type of the gateway's disconnect orders (its body is the gateway's own).
pub const DISCONNECT_TYPE: &str = "_switchboard.disconnect";
/// Most users named in one [`AccessChanged`] event; longer lists are split.
pub const MAX_USERS_PER_EVENT: usize = 500;

/// The rule that let users subscribe to a channel changed (a member was removed, a conversation
/// was replaced or deleted, a contact was removed): the named subscribers (all when `users` is
/// `None`) must check their access again before anything else of that channel reaches them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessChanged {
    /// The subscribers concerned; `None` for every subscriber of the channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<UserId>>,
}

impl AccessChanged {
    /// Whether `user`'s subscriptions must check again.
    pub fn concerns(&self, user: &UserId) -> bool {
        self.users.as_ref().is_none_or(|users| users.contains(user))
    }
}

/// A token id was put on the denylist: connections authenticated with it end on every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenDenied {
    /// The denied `jti`.
    pub token_id: TokenId,
}

/// A control event, as read back from a publication's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// See [`AccessChanged`].
    AccessChanged(AccessChanged),
    /// See [`TokenDenied`].
    TokenDenied(TokenDenied),
    /// A reserved type this module does not define (the gateway's own disconnect orders), or a
    /// malformed one: never shown to clients either way.
    Other,
}

/// Whether `data` carries a reserved type: such publications are control events, never shown to
/// clients.
pub fn is_reserved(data: &Value) -> bool {
    data.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with(RESERVED_TYPE_PREFIX))
}

/// Refuses a publication of a reserved type: only control events carry one, and they go through
/// [`crate::Streams::publish_control`]. Every other publishing path checks it, so no caller can
/// forge a control event.
pub fn refuse_reserved(data: &Value) -> crate::Result<()> {
    match is_reserved(data) {
        true => Err(crate::Error::invalid(
            "data.type",
            format!("types starting with {RESERVED_TYPE_PREFIX:?} are reserved"),
        )),
        false => Ok(()),
    }
}

/// The control event `data` carries, or `None` for an ordinary publication.
pub fn parse(data: &Value) -> Option<Control> {
    if !is_reserved(data) {
        return None;
    }
    let body = data.get("data").cloned().unwrap_or(Value::Null);
    let control = match data.get("type").and_then(Value::as_str) {
        Some(ACCESS_CHANGED_TYPE) => serde_json::from_value(body).map(Control::AccessChanged).ok(),
        Some(TOKEN_DENIED_TYPE) => serde_json::from_value(body).map(Control::TokenDenied).ok(),
        _ => None,
    };
    Some(control.unwrap_or(Control::Other))
}

/// The publications announcing that `users` (all subscribers when `None`) must check their
/// access again: one, or several when the list is long.
pub fn access_changed(users: Option<&[UserId]>) -> Vec<NewPublication> {
    let event = |users: Option<&[UserId]>| {
        let data = json!({"type": ACCESS_CHANGED_TYPE, "data": AccessChanged { users: users.map(<[UserId]>::to_vec) }});
        NewPublication::new(data)
    };
    match users {
        None => vec![event(None)],
        Some(users) => users.chunks(MAX_USERS_PER_EVENT).map(|chunk| event(Some(chunk))).collect(),
    }
}

/// The publication announcing that `token_id` is denied.
pub fn token_denied(token_id: &TokenId) -> NewPublication {
    NewPublication::new(json!({"type": TOKEN_DENIED_TYPE, "data": TokenDenied { token_id: token_id.clone() }}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_events_read_back_and_ordinary_ones_are_not_control() {
        let ann = UserId::new("ann").unwrap();
        let events = access_changed(Some(std::slice::from_ref(&ann)));
        assert_eq!(events.len(), 1);
        let Some(Control::AccessChanged(change)) = parse(&events[0].data) else { panic!("{:?}", events[0].data) };
        assert!(change.concerns(&ann));
        assert!(!change.concerns(&UserId::new("ben").unwrap()));

        let all = access_changed(None);
        let Some(Control::AccessChanged(change)) = parse(&all[0].data) else { panic!() };
        assert!(change.concerns(&ann), "everyone is concerned");

        let jti = TokenId::new("t-1").unwrap();
        assert_eq!(parse(&token_denied(&jti).data), Some(Control::TokenDenied(TokenDenied { token_id: jti })));
        assert_eq!(parse(&json!({"type": "_switchboard.unknown"})), Some(Control::Other));
        assert_eq!(parse(&json!({"type": "message.new", "data": {}})), None);
        assert_eq!(parse(&json!("text")), None);
    }

    #[test]
    fn long_user_lists_are_split() {
        let users: Vec<UserId> = (0..1001).map(|n| UserId::new(format!("u{n}")).unwrap()).collect();
        let events = access_changed(Some(&users));
        assert_eq!(events.len(), 3);
        let named: usize = events
            .iter()
            .map(|e| match parse(&e.data) {
                Some(Control::AccessChanged(AccessChanged { users: Some(u) })) => u.len(),
                other => panic!("{other:?}"),
            })
            .sum();
        assert_eq!(named, 1001);
    }
}
