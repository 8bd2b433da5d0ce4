//! Validated identifiers. Every id that comes from outside is checked once, here, when it is
//! built; the rest of the code can trust it.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};
use crate::limits::{MAX_ID_BYTES, MAX_RATE_LIMIT_KEY_BYTES};

/// The id rule (user, device, conversation, queue, ... ids) as a JSON Schema pattern, for the
/// documents that describe the API.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:@-]{1,128}$";
/// [`RateLimitKey`]'s rule as a JSON Schema pattern.
pub const RATE_LIMIT_KEY_PATTERN: &str = "^[A-Za-z0-9._:@/-]{1,256}$";
/// [`SessionId`]'s shape as a JSON Schema pattern.
pub const SESSION_ID_PATTERN: &str = "^[A-Za-z0-9_-]{24}$";
/// [`LeaseToken`]'s shape as a JSON Schema pattern.
pub const LEASE_TOKEN_PATTERN: &str = "^[A-Za-z0-9_-]{16,64}$";

fn id_char_ok(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-')
}

/// Checks `value` against the id rule (1–`max` bytes of `[A-Za-z0-9._:@-]`, plus any
/// `extra` bytes), naming `field` in the error.
pub fn validate_id(field: &str, value: &str, max: usize, extra: &[u8]) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(Error::invalid(field, format!("must be at most {max} bytes")));
    }
    if let Some(bad) = value.bytes().find(|b| !id_char_ok(*b) && !extra.contains(b)) {
        let shown = if bad.is_ascii_graphic() { format!("{:?}", bad as char) } else { format!("byte 0x{bad:02x}") };
        return Err(Error::invalid(field, format!("contains {shown}; allowed are A-Z a-z 0-9 . _ : @ -")));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr, $extra:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(try_from = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "alice"))]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                validate_id($field, &value, $max, $extra)?;
                Ok(Self(value))
            }

            /// Like [`Self::new`] but naming `field` in the error (e.g. a path segment).
            pub fn parse_field(field: &str, value: impl Into<String>) -> Result<Self> {
                let value = value.into();
                validate_id(field, &value, $max, $extra)?;
                Ok(Self(value))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        // The string itself: `serde(into = "String")` would copy it on every serialization.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A user id: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    UserId, "user_id", MAX_ID_BYTES, &[]
);
id_type!(
    /// A device id: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    DeviceId, "device_id", MAX_ID_BYTES, &[]
);
id_type!(
    /// A conversation id: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    ConversationId, "conversation_id", MAX_ID_BYTES, &[]
);
id_type!(
    /// A notification id, chosen by the backend: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    NotificationId, "notification_id", MAX_ID_BYTES, &[]
);
id_type!(
    /// A message id: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    MessageId, "message_id", MAX_ID_BYTES, &[]
);
id_type!(
    /// A JWT id (`jti`): 1–128 bytes of `[A-Za-z0-9._:@-]`.
    TokenId, "jti", MAX_ID_BYTES, &[]
);
id_type!(
    /// A rate-limit key such as `ip:10.0.0.1` or `user:42/send_message`: 1–256 bytes of
    /// `[A-Za-z0-9._:@/-]`.
    RateLimitKey, "key", MAX_RATE_LIMIT_KEY_BYTES, b"/"
);

id_type!(
    /// A job queue name: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    QueueName, "queue", MAX_ID_BYTES, &[]
);
id_type!(
    /// A job type such as `webhook.deliver`: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    JobType, "type", MAX_ID_BYTES, &[]
);
id_type!(
    /// A job id, chosen by the caller (idempotent enqueue) or generated: 1–128 bytes of
    /// `[A-Za-z0-9._:@-]`.
    JobId, "job_id", MAX_ID_BYTES, &[]
);
id_type!(
    /// A schedule name: 1–128 bytes of `[A-Za-z0-9._:@-]`.
    ScheduleName, "name", MAX_ID_BYTES, &[]
);

impl JobId {
    /// A fresh random id: `j` and 128 random bits, URL-safe base64.
    pub fn generate() -> Result<Self> {
        Ok(JobId(format!("j{}", random_b64(16)?)))
    }
}

/// URL-safe base64 (no padding) of `n` random bytes.
fn random_b64(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The secret proving that a worker holds a job's lease: 128 random bits, URL-safe base64.
/// Equality is constant time; `Debug` never shows it.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "Zm9vYmFyYmF6cXV4cXV1eA"))]
pub struct LeaseToken(String);

impl LeaseToken {
    /// A fresh token.
    pub fn generate() -> Result<Self> {
        Ok(LeaseToken(random_b64(16)?))
    }

    /// Validates the shape of a token received from outside (16–64 URL-safe base64 bytes).
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        let ok = (16..=64).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(LeaseToken(value)) } else { Err(Error::invalid("lease_token", "is not a lease token")) }
    }

    /// The token as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for LeaseToken {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for LeaseToken {}

impl TryFrom<String> for LeaseToken {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<LeaseToken> for String {
    fn from(token: LeaseToken) -> String {
        token.0
    }
}

impl Serialize for LeaseToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Debug for LeaseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LeaseToken(…)")
    }
}

/// Random bytes in a session id, after the two shard bytes: 128 bits.
const SESSION_RANDOM_BYTES: usize = 16;
const SESSION_ID_BYTES: usize = 2 + SESSION_RANDOM_BYTES;

/// Shortest session id a caller may choose: 32 characters of the URL-safe base64 alphabet
/// (192 bits of that alphabet; a UUID's 32 hex digits carry 128).
pub const MIN_CUSTOM_SESSION_ID_CHARS: usize = 32;

/// Longest session id a caller may choose.
pub const MAX_CUSTOM_SESSION_ID_CHARS: usize = 128;

/// A session id. Generated ids are URL-safe base64 (no padding, 24 characters) of two shard
/// bytes derived from the user id and 128 random bits. The shard lets the Redis engine keep a
/// user's sessions and their index in one hash slot (so one script can evict atomically on
/// Cluster) while a lookup by id alone still finds the slot. A caller may instead choose the id
/// (an app whose token names the session before it is stored): 32..=128 characters of
/// `[A-Za-z0-9_-]` (see [`SessionId::custom`]); such ids carry no shard. Equality is constant
/// time.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, example = "q83vAAECAwQFBgcICQoLDA0ODw"))]
pub struct SessionId(String);

impl std::hash::Hash for SessionId {
    // Consistent with the constant-time `PartialEq`: equal ids have equal bytes.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.as_bytes().hash(state);
    }
}

impl SessionId {
    /// A fresh id for a session of `user`.
    pub fn generate(user: &UserId) -> Result<Self> {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        bytes[..2].copy_from_slice(&user_shard(user).to_be_bytes());
        getrandom::fill(&mut bytes[2..]).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        Ok(SessionId(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Validates the shape of a session id received from outside: a generated id or a
    /// caller-chosen one.
    pub fn new(value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if Self::is_generated_shape(&value) || Self::is_custom_shape(&value) {
            Ok(SessionId(value))
        } else {
            Err(Error::invalid("session_id", "is not a session id"))
        }
    }

    /// A caller-chosen id: 32..=128 characters of `[A-Za-z0-9_-]`, so it is as hard to guess as
    /// a generated one when the caller draws it at random. `field` names the input in errors.
    pub fn custom(field: &str, value: impl Into<String>) -> Result<Self> {
        let value = value.into();
        if Self::is_custom_shape(&value) {
            Ok(SessionId(value))
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "must be {MIN_CUSTOM_SESSION_ID_CHARS}..={MAX_CUSTOM_SESSION_ID_CHARS} characters of A-Z, a-z, 0-9, '_' and '-'"
                ),
            ))
        }
    }

    fn is_generated_shape(value: &str) -> bool {
        value.len() == 24 && URL_SAFE_NO_PAD.decode(value).is_ok_and(|b| b.len() == SESSION_ID_BYTES)
    }

    fn is_custom_shape(value: &str) -> bool {
        (MIN_CUSTOM_SESSION_ID_CHARS..=MAX_CUSTOM_SESSION_ID_CHARS).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    /// Whether the id was chosen by the caller (it then carries no shard).
    pub fn is_custom(&self) -> bool {
        !Self::is_generated_shape(&self.0)
    }

    /// The shard the session's user maps to (see [`user_shard`]) for a generated id; for a
    /// caller-chosen id, a stable hash of the id itself (it says nothing about the user).
    pub fn shard(&self) -> u16 {
        if self.is_custom() {
            return fold_hash(self.0.as_bytes());
        }
        match URL_SAFE_NO_PAD.decode(&self.0) {
            Ok(b) if b.len() >= 2 => u16::from_be_bytes([b[0], b[1]]),
            _ => 0,
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A stable 16-bit hash of a user id (FNV-1a folded), used to co-locate a user's keys.
pub fn user_shard(user: &UserId) -> u16 {
    fold_hash(user.as_str().as_bytes())
}

fn fold_hash(bytes: &[u8]) -> u16 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    ((h >> 16) ^ (h & 0xffff)) as u16
}

impl PartialEq for SessionId {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for SessionId {}

impl TryFrom<String> for SessionId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::new(value)
    }
}

impl From<SessionId> for String {
    fn from(id: SessionId) -> String {
        id.0
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl FromStr for SessionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    // Session ids are bearer secrets: keep them out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", &self.0[..4.min(self.0.len())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_spec_alphabet() {
        assert!(UserId::new("alice@example.com:web-1_2").is_ok());
        assert!(UserId::new("").is_err());
        assert!(UserId::new("a b").unwrap_err().to_string().contains("user_id"));
        assert!(UserId::new("x".repeat(129)).is_err());
        assert!(UserId::new("x".repeat(128)).is_ok());
        assert!(UserId::new("é").is_err());
        assert!(RateLimitKey::new("user:1/send").is_ok());
        assert!(DeviceId::new("dev/1").is_err());
    }

    #[test]
    fn session_ids_carry_the_user_shard_and_128_random_bits() {
        let user = UserId::new("alice").unwrap();
        let a = SessionId::generate(&user).unwrap();
        let b = SessionId::generate(&user).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 24);
        assert_eq!(a.shard(), user_shard(&user));
        assert_eq!(SessionId::new(a.as_str()).unwrap(), a);
        assert!(SessionId::new("not-a-session").is_err());
        assert!(!format!("{a:?}").contains(a.as_str()));
        assert!(!a.is_custom());
    }

    #[test]
    fn caller_chosen_session_ids_are_long_and_url_safe() {
        let uuid = "3f2b8c1e9d4a4b7f8e6c5d4b3a291807";
        let id = SessionId::custom("id", uuid).unwrap();
        assert!(id.is_custom());
        assert_eq!(SessionId::new(uuid).unwrap(), id, "lookups accept it");
        assert_eq!(id.shard(), SessionId::custom("id", uuid).unwrap().shard(), "stable");
        assert!(SessionId::custom("id", "x".repeat(31)).is_err(), "too short to be unguessable");
        assert!(SessionId::custom("id", "x".repeat(129)).is_err());
        assert!(SessionId::custom("id", format!("{}+/", "x".repeat(32))).is_err(), "URL-safe alphabet only");
        assert!(SessionId::custom("id", "x".repeat(31)).unwrap_err().to_string().starts_with("id:"));
        let generated = SessionId::generate(&UserId::new("alice").unwrap()).unwrap();
        assert!(SessionId::custom("id", generated.as_str()).is_err(), "24 characters: the generated shape");
    }
}
