//! [`SwitchboardConfig`]: the service-level settings every engine shares (defaults, maxima,
//! named policies). Engine and server settings live in their own crates.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::limits::MAX_DATA_BYTES;
use crate::ratelimit::Policy;

/// Settings of the services, with the defaults of SPEC §3.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwitchboardConfig {
    /// Sessions (§3.1).
    pub sessions: SessionsConfig,
    /// Token denylist (§3.2).
    pub tokens: TokensConfig,
    /// Rate limits (§3.3).
    pub rate_limits: RateLimitsConfig,
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
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            idle_ttl_seconds: 3600,
            absolute_ttl_seconds: 30 * 86_400,
            max_per_user: 10,
            max_data_bytes: MAX_DATA_BYTES,
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitsConfig {
    /// Policies by name.
    #[serde(deserialize_with = "policies_from_strings_or_tables")]
    pub policies: BTreeMap<String, Policy>,
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
