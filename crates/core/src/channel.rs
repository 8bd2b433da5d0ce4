//! [`ChannelName`]: a validated `<namespace>:<id>` channel name and the namespace table.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{UserId, validate_id};
use crate::limits::MAX_ID_BYTES;
use crate::stream::Retention;

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 160;

const DAY: Duration = Duration::from_secs(86_400);

/// Every namespace a channel may live in, with its default retention. A new namespace is one
/// more line here.
pub const NAMESPACES: &[(&str, Retention)] = &[
    ("user", Retention { max_len: 1000, max_age: Duration::from_secs(7 * 86_400) }),
    ("chat", Retention { max_len: 100, max_age: DAY }),
    // No history; the age only bounds how long the offset counter (and its epoch) is kept.
    ("presence", Retention { max_len: 0, max_age: DAY }),
];

/// The namespace of the node-wide control channel ([`ChannelName::control`]): not in
/// [`NAMESPACES`], so no client or API call can name it.
const CONTROL_NAMESPACE: &str = "switchboard";

/// A channel name: `<namespace>:<id>`, the namespace one of [`NAMESPACES`], the id following the
/// id rule of [`crate::ids::validate_id`] (it may contain `:` itself), at most
/// [`MAX_CHANNEL_BYTES`] in all.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "chat:general"))]
pub struct ChannelName(String);

impl ChannelName {
    /// Validates and wraps `value`.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        Self::parse_field("channel", value)
    }

    /// Like [`Self::new`] but naming `field` in the error.
    pub fn parse_field(field: &str, value: impl Into<String>) -> Result<Self> {
        let name = value.into();
        if name.len() > MAX_CHANNEL_BYTES {
            return Err(Error::invalid(field, format!("must be at most {MAX_CHANNEL_BYTES} bytes")));
        }
        let Some((namespace, id)) = name.split_once(':') else {
            return Err(Error::invalid(field, format!("must be <namespace>:<id> with a namespace of {}", known())));
        };
        if !NAMESPACES.iter().any(|(ns, _)| *ns == namespace) {
            return Err(Error::invalid(field, format!("unknown namespace {namespace:?}; known are {}", known())));
        }
        validate_id(field, id, MAX_ID_BYTES, &[])?;
        Ok(ChannelName(name))
    }

    /// `user:<id>`: the user's personal channel.
    pub fn user(user: &UserId) -> Self {
        Self::known("user", user.as_str())
    }

    /// `chat:<id>`: a conversation's channel.
    pub fn chat(conversation_id: &str) -> Result<Self> {
        Self::new(format!("chat:{conversation_id}"))
    }

    /// `presence:<id>`: a user's presence channel.
    pub fn presence(user: &UserId) -> Self {
        Self::known("presence", user.as_str())
    }

    /// `switchboard:control`: the channel every node's gateway listens to for control events
    /// that are not tied to one channel (see [`crate::control`]). [`ChannelName::new`] refuses
    /// it, so only the services can publish there.
    pub fn control() -> Self {
        Self::known(CONTROL_NAMESPACE, "control")
    }

    // A listed namespace and a validated id always make a valid name (137 bytes at most).
    fn known(namespace: &'static str, id: &str) -> Self {
        ChannelName(format!("{namespace}:{id}"))
    }

    /// The namespace, e.g. `chat`.
    pub fn namespace(&self) -> &str {
        self.0.split_once(':').map_or("", |(ns, _)| ns)
    }

    /// The part after the namespace, e.g. the conversation id of `chat:<id>`.
    pub fn id(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, id)| id)
    }

    /// The whole name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn known() -> String {
    NAMESPACES.iter().map(|(ns, _)| *ns).collect::<Vec<_>>().join(", ")
}

impl TryFrom<String> for ChannelName {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<ChannelName> for String {
    fn from(c: ChannelName) -> String {
        c.0
    }
}

impl FromStr for ChannelName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl AsRef<str> for ChannelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChannelName({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespace_colon_id() {
        let c = ChannelName::new("chat:team:42").unwrap();
        assert_eq!((c.namespace(), c.id(), c.as_str()), ("chat", "team:42", "chat:team:42"));
        let alice = UserId::new("alice").unwrap();
        assert_eq!(ChannelName::user(&alice).as_str(), "user:alice");
        assert_eq!(ChannelName::presence(&alice), ChannelName::new("presence:alice").unwrap());
        assert_eq!(ChannelName::chat("g1").unwrap().namespace(), "chat");
        for bad in ["", "chat", "chat:", "nope:x", "chat:a b", ":x", "user:{x}"] {
            let err = ChannelName::new(bad).unwrap_err().to_string();
            assert!(err.starts_with("channel: "), "{bad}: {err}");
        }
        assert!(ChannelName::new(format!("chat:{}", "x".repeat(129))).is_err());
        let long = UserId::new("u".repeat(128)).unwrap();
        assert!(ChannelName::new(ChannelName::presence(&long).as_str()).is_ok());
        let json: ChannelName = serde_json::from_str("\"user:bob\"").unwrap();
        assert_eq!(serde_json::to_string(&json).unwrap(), "\"user:bob\"");
        assert!(serde_json::from_str::<ChannelName>("\"bad\"").is_err());
    }
}
