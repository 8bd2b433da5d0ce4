//! [`SwitchboardConfig`]: the service-level settings every engine shares (defaults, maxima,
//! named policies). Engine and server settings live in their own crates.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::limits::MAX_DATA_BYTES;
use crate::ratelimit::Policy;

/// Settings of the services, with their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchboardConfig {
    /// Sessions.
    pub sessions: SessionsConfig,
    /// Token denylist.
    pub tokens: TokensConfig,
    /// Rate limits.
    pub rate_limits: RateLimitsConfig,
    /// Presence and devices.
    pub presence: PresenceConfig,
    /// Typing.
    pub typing: TypingConfig,
    /// Notifications.
    pub notifications: NotificationsConfig,
    /// Cache.
    pub cache: CacheConfig,
    /// Jobs and schedules.
    pub jobs: JobsConfig,
    /// Messages.
    pub messages: MessagesConfig,
}

impl SwitchboardConfig {
    /// Checks every bound; errors name the setting.
    pub fn validate(&self) -> Result<()> {
        let s = &self.sessions;
        if s.idle_ttl_seconds == 0 || s.absolute_ttl_seconds == 0 {
            return Err(Error::invalid("sessions", "idle_ttl_seconds and absolute_ttl_seconds must be > 0"));
        }
        if s.max_data_bytes == 0 {
            return Err(Error::invalid("sessions.max_data_bytes", "must be > 0"));
        }
        for (name, policy) in &self.rate_limits.policies {
            crate::ids::validate_id("rate_limits.policies", name, 64, &[])?;
            policy.validate(&format!("rate_limits.policies.{name}"))?;
        }
        self.presence.validate()?;
        self.typing.validate()?;
        self.notifications.retention().validate("notifications")?;
        self.cache.validate()?;
        self.jobs.validate()?;
        Ok(())
    }
}

/// Session defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// Idle TTL when the create call names none (default 1 h).
    pub idle_ttl_seconds: u64,
    /// Absolute TTL when the create call names none (default 30 d).
    pub absolute_ttl_seconds: u64,
    /// Most live sessions per user; creating one more evicts the least recently active
    /// (default 10, 0 = unlimited).
    pub max_per_user: u32,
    /// Largest session data object (default 4 KiB).
    pub max_data_bytes: usize,
    /// An active session keeps its device online (default off): creating or touching a session
    /// with a `device.device_id` sends that device a presence heartbeat (TTL
    /// `presence.heartbeat_ttl_seconds`), and deleting the device's last session ends it.
    pub count_as_online: bool,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            idle_ttl_seconds: 3600,
            absolute_ttl_seconds: 30 * 86_400,
            max_per_user: 10,
            max_data_bytes: MAX_DATA_BYTES,
            count_as_online: false,
        }
    }
}

/// Token settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    /// How long a revoke-before time is kept: the longest a client token may live (default 30 d).
    pub max_token_ttl_seconds: u64,
}

impl Default for TokensConfig {
    fn default() -> Self {
        TokensConfig { max_token_ttl_seconds: 30 * 86_400 }
    }
}

/// Named rate-limit policies, e.g. `send_message = "10 per 60 s"` or a table
/// `{ algorithm = "sliding_log", limit = 10, window_ms = 60000 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Policies by name. By default [`DEFAULT_POLICIES`]; in the config file, named policies
    /// add to them or replace one of the same name.
    #[serde(deserialize_with = "policies_from_strings_or_tables")]
    pub policies: BTreeMap<String, Policy>,
}

/// The policies every deployment has unless configured otherwise (the usual needs of a chat or
/// social app): `login` 5 per 15 min (exact sliding log: brute force), `send_message` 10 per
/// minute and `api` 100 per minute (GCRA).
pub const DEFAULT_POLICIES: [(&str, &str); 3] =
    [("login", "5 per 15 m sliding_log"), ("send_message", "10 per 60 s"), ("api", "100 per 60 s")];

impl Default for RateLimitsConfig {
    fn default() -> Self {
        let policies = DEFAULT_POLICIES
            .iter()
            .filter_map(|(name, spec)| spec.parse::<Policy>().ok().map(|p| ((*name).to_owned(), p)))
            .collect();
        RateLimitsConfig { policies }
    }
}

fn policies_from_strings_or_tables<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Policy>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Short(String),
        Full(Policy),
    }
    let raw = BTreeMap::<String, Either>::deserialize(d)?;
    raw.into_iter()
        .map(|(name, p)| match p {
            Either::Short(s) => s.parse::<Policy>().map(|p| (name, p)).map_err(serde::de::Error::custom),
            Either::Full(p) => Ok((name, p)),
        })
        .collect()
}

/// Presence settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// TTL of a WebSocket connection; nodes refresh well within it (default 60 s).
    pub connection_ttl_seconds: u64,
    /// TTL of a backend heartbeat when the call names none (default 5 min).
    pub heartbeat_ttl_seconds: u64,
    /// How long a user must stay without a live entry before going offline is announced, so a
    /// reconnect does not flap (default 5 s).
    pub offline_grace_ms: u64,
    /// How often each node should sweep for offline transitions (default 1 s).
    pub sweep_interval_ms: u64,
    /// Most users settled per sweep call (default 1000).
    pub sweep_batch: usize,
    /// Most contacts per user (default 5000).
    pub max_contacts: usize,
    /// Also deliver each user's `presence.changed` on the `user:` channel of every contact who
    /// follows them back (the user is among the contact's contacts too), so a client follows its
    /// friends with no `presence:` subscription each (default off: one publication per such
    /// contact and change).
    pub contacts_on_user_channel: bool,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        PresenceConfig {
            connection_ttl_seconds: 60,
            heartbeat_ttl_seconds: 300,
            offline_grace_ms: 5000,
            sweep_interval_ms: 1000,
            sweep_batch: 1000,
            max_contacts: 5000,
            contacts_on_user_channel: false,
        }
    }
}

impl PresenceConfig {
    fn validate(&self) -> Result<()> {
        if self.connection_ttl_seconds == 0 || self.heartbeat_ttl_seconds == 0 {
            return Err(Error::invalid("presence", "connection_ttl_seconds and heartbeat_ttl_seconds must be > 0"));
        }
        if self.sweep_interval_ms == 0 || self.sweep_batch == 0 || self.max_contacts == 0 {
            return Err(Error::invalid("presence", "sweep_interval_ms, sweep_batch and max_contacts must be > 0"));
        }
        Ok(())
    }
}

/// Message settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessagesConfig {
    /// Also deliver `message.new` on each member's `user:` channel for conversations of at most
    /// this many members, so a client with hundreds of chats needs no `chat:` subscription each
    /// (default 0: off; larger groups stay on their `chat:` channel only).
    pub user_channel_max_members: u32,
}

/// Typing settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypingConfig {
    /// How long a start lasts without another (default 10 s).
    pub ttl_ms: u64,
    /// At most one start event per user per conversation per this window (default 3 s).
    pub throttle_ms: u64,
    /// How often each node should sweep for expired entries (default 1 s).
    pub sweep_interval_ms: u64,
    /// Most conversations settled per sweep call (default 1000).
    pub sweep_batch: usize,
}

impl Default for TypingConfig {
    fn default() -> Self {
        TypingConfig { ttl_ms: 10_000, throttle_ms: 3000, sweep_interval_ms: 1000, sweep_batch: 1000 }
    }
}

impl TypingConfig {
    fn validate(&self) -> Result<()> {
        if self.ttl_ms == 0 || self.sweep_interval_ms == 0 || self.sweep_batch == 0 {
            return Err(Error::invalid("typing", "ttl_ms, sweep_interval_ms and sweep_batch must be > 0"));
        }
        Ok(())
    }
}

/// Notification bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationsConfig {
    /// Most notifications kept per user; one more evicts the oldest (default 100, at most 1000).
    pub max_per_user: u32,
    /// How long a notification is kept (default 7 d).
    pub max_age_seconds: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        let retention = crate::notification::NotificationRetention::default();
        NotificationsConfig { max_per_user: retention.max_per_user, max_age_seconds: retention.max_age.as_secs() }
    }
}

impl NotificationsConfig {
    /// The bounds as a [`crate::notification::NotificationRetention`].
    pub fn retention(&self) -> crate::notification::NotificationRetention {
        crate::notification::NotificationRetention {
            max_per_user: self.max_per_user,
            max_age: std::time::Duration::from_secs(self.max_age_seconds),
        }
    }
}

/// Cache namespaces and their default TTLs. Any namespace may be used; one without an
/// entry here gets `default_ttl_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Namespace -> default TTL in seconds (seed values: user_profile 900, photo_metadata 3600,
    /// match_recommendations 600, api_response 60, geospatial 300).
    pub namespaces: BTreeMap<String, u64>,
    /// Default TTL of namespaces not listed (default 300 s).
    pub default_ttl_seconds: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let seeds = [
            ("user_profile", 15 * 60),
            ("photo_metadata", 60 * 60),
            ("match_recommendations", 10 * 60),
            ("api_response", 60),
            ("geospatial", 5 * 60),
        ];
        CacheConfig {
            namespaces: seeds.into_iter().map(|(name, ttl)| (name.to_owned(), ttl)).collect(),
            default_ttl_seconds: 300,
        }
    }
}

impl CacheConfig {
    /// Checks names and TTLs.
    pub fn validate(&self) -> Result<()> {
        if self.default_ttl_seconds == 0 {
            return Err(Error::invalid("cache.default_ttl_seconds", "must be > 0"));
        }
        for (name, ttl) in &self.namespaces {
            crate::ids::validate_id("cache.namespaces", name, crate::limits::MAX_CACHE_NAMESPACE_BYTES, &[])?;
            if *ttl == 0 {
                return Err(Error::invalid(&format!("cache.namespaces.{name}"), "must be > 0"));
            }
        }
        Ok(())
    }

    /// The default TTL of `namespace`.
    pub fn default_ttl(&self, namespace: &str) -> std::time::Duration {
        std::time::Duration::from_secs(self.namespaces.get(namespace).copied().unwrap_or(self.default_ttl_seconds))
    }
}

/// Job defaults and bounds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// Attempts of a job that names none (default 25).
    pub default_max_attempts: u32,
    /// Lease of a job that names none (default 30 s).
    pub default_lease_seconds: u64,
    /// Completed jobs kept per queue (default 1 000).
    pub completed_max: u64,
    /// How long completed jobs are kept (default 24 h).
    pub completed_max_age_seconds: u64,
    /// Dead jobs kept per queue (default 10 000).
    pub dead_max: u64,
    /// How long dead jobs are kept (default 7 d).
    pub dead_max_age_seconds: u64,
    /// How often an idle long-poll looks at the engine again for jobs enqueued through other
    /// nodes (jobs enqueued through this node wake it at once; default 100 ms).
    pub poll_interval_ms: u64,
    /// How often each node looks for due schedule ticks (default 500 ms).
    pub schedule_interval_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        let retention = crate::jobs::JobRetention::default();
        JobsConfig {
            default_max_attempts: 25,
            default_lease_seconds: 30,
            completed_max: retention.completed_max,
            completed_max_age_seconds: retention.completed_max_age.as_secs(),
            dead_max: retention.dead_max,
            dead_max_age_seconds: retention.dead_max_age.as_secs(),
            poll_interval_ms: 100,
            schedule_interval_ms: 500,
        }
    }
}

impl JobsConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        if !(1..=crate::services::MAX_ATTEMPTS).contains(&self.default_max_attempts) {
            return Err(Error::invalid("jobs.default_max_attempts", "must be 1..=1000"));
        }
        if !(1..=3600).contains(&self.default_lease_seconds) {
            return Err(Error::invalid("jobs.default_lease_seconds", "must be 1..=3600"));
        }
        if !(10..=10_000).contains(&self.poll_interval_ms) {
            return Err(Error::invalid("jobs.poll_interval_ms", "must be 10..=10000"));
        }
        if !(50..=60_000).contains(&self.schedule_interval_ms) {
            return Err(Error::invalid("jobs.schedule_interval_ms", "must be 50..=60000"));
        }
        Ok(())
    }

    /// The retention bounds as a [`crate::jobs::JobRetention`].
    pub fn retention(&self) -> crate::jobs::JobRetention {
        crate::jobs::JobRetention {
            completed_max: self.completed_max,
            completed_max_age: std::time::Duration::from_secs(self.completed_max_age_seconds),
            dead_max: self.dead_max,
            dead_max_age: std::time::Duration::from_secs(self.dead_max_age_seconds),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::Algorithm;

    #[test]
    fn the_default_policies_all_parse() {
        let policies = RateLimitsConfig::default().policies;
        assert_eq!(policies.len(), DEFAULT_POLICIES.len(), "every default parses");
        let login = &policies["login"];
        assert_eq!((login.algorithm, login.limit, login.window_ms), (Algorithm::SlidingLog, 5, 15 * 60_000));
        assert_eq!((policies["send_message"].limit, policies["send_message"].window_ms), (10, 60_000));
        assert_eq!((policies["api"].limit, policies["api"].window_ms), (100, 60_000));
    }
}
