//! [`Keys`]: the only place key names are built. Every key starts with the configured prefix;
//! the part in `{...}` is the hash tag that decides the cluster slot, chosen so that all keys a
//! script touches share one slot.
//!
//! | key | type | tag |
//! |-----|------|-----|
//! | `<p>s:{<shard>}:<session id>` | hash: one session | user shard |
//! | `<p>u:{<shard>}:<user id>` | ZSET: the user's session ids -> last active ms | user shard |
//! | `<p>sessions:active` | ZSET: session id -> counted-until ms (its own slot) | whole key |
//! | `<p>dl:{<jti>}` | string: denied-until ms | token id |
//! | `<p>rb:{<user id>}` | hash: revoked-before and kept-until ms | user id |
//! | `<p>rl:{<rate-limit key>}` | string, hash or ZSET: limiter state | rate-limit key |
//!
//! `<shard>` is [`SessionId::shard`] (= [`user_shard`] of the owner) as four hex digits. Scripts
//! that walk a user's index get the session key prefix of the shard (from
//! [`Keys::session_prefix`]) and append session ids to it; a session script gets the index
//! prefix ([`Keys::user_index_prefix`]) and appends the user id stored in the session. Both stay
//! in the slot of the declared keys. Ids cannot contain braces (SPEC §2), so tags stay intact.

use switchboard_core::ids::user_shard;
use switchboard_core::{RateLimitKey, SessionId, TokenId, UserId};

/// Builds every key name from the configured prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (validated by [`crate::RedisConfig::validate`]: no braces).
    pub(crate) fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.to_owned() }
    }

    /// `<p>s:{<shard>}:`: a session id appended gives that session's key.
    pub(crate) fn session_prefix(&self, shard: u16) -> String {
        format!("{}s:{{{shard:04x}}}:", self.prefix)
    }

    /// The hash holding one session.
    pub(crate) fn session(&self, id: &SessionId) -> String {
        let mut key = self.session_prefix(id.shard());
        key.push_str(id.as_str());
        key
    }

    /// `<p>u:{<shard>}:`: a user id appended gives that user's session index.
    pub(crate) fn user_index_prefix(&self, shard: u16) -> String {
        format!("{}u:{{{shard:04x}}}:", self.prefix)
    }

    /// The user's session index (ZSET session id -> last active ms), in the slot of the user's
    /// sessions.
    pub(crate) fn user_index(&self, user: &UserId) -> String {
        let mut key = self.user_index_prefix(user_shard(user));
        key.push_str(user.as_str());
        key
    }

    /// The set of sessions counted by `count_active` (session id -> counted-until ms).
    pub(crate) fn active_sessions(&self) -> String {
        format!("{}sessions:active", self.prefix)
    }

    /// A denied token id (denied-until ms).
    pub(crate) fn denied(&self, jti: &TokenId) -> String {
        format!("{}dl:{{{jti}}}", self.prefix)
    }

    /// A user's revoke-before time.
    pub(crate) fn revoked(&self, user: &UserId) -> String {
        format!("{}rb:{{{user}}}", self.prefix)
    }

    /// The limiter state of a rate-limit key.
    pub(crate) fn rate_limit(&self, key: &RateLimitKey) -> String {
        format!("{}rl:{{{key}}}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster would use for `key`.
    fn tag(key: &str) -> &str {
        match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                _ => key,
            },
            None => key,
        }
    }

    #[test]
    fn a_users_sessions_and_index_share_a_slot() {
        let keys = Keys::new("sb:");
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user).unwrap();
        let session = keys.session(&id);
        let index = keys.user_index(&user);
        assert_eq!(session, format!("sb:s:{{{:04x}}}:{}", user_shard(&user), id.as_str()));
        assert_eq!(tag(&session), tag(&index));
        assert_eq!(format!("{}{}", keys.session_prefix(id.shard()), id.as_str()), session);
        assert_eq!(format!("{}{}", keys.user_index_prefix(id.shard()), user.as_str()), index);
    }

    #[test]
    fn other_keys_are_tagged_by_their_id() {
        let keys = Keys::new("app1:");
        assert_eq!(keys.denied(&TokenId::new("j-1").unwrap()), "app1:dl:{j-1}");
        assert_eq!(keys.revoked(&UserId::new("bob").unwrap()), "app1:rb:{bob}");
        assert_eq!(keys.rate_limit(&RateLimitKey::new("ip:10.0.0.1/send").unwrap()), "app1:rl:{ip:10.0.0.1/send}");
        assert_eq!(keys.active_sessions(), "app1:sessions:active");
        assert_eq!(tag(&keys.rate_limit(&RateLimitKey::new("user:1").unwrap())), "user:1");
    }
}
