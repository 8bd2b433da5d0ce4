//! [`ServerConfig`] and [`ApiKey`]: the HTTP server's own settings.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::gateway::GatewayConfig;
use switchboard_core::limits::DEFAULT_MAX_BODY_BYTES;

/// Settings of the HTTP server. The CLI fills it from `switchboard.toml`, the environment and
/// flags; engine and service settings live in their own config structs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Keys accepted in `Authorization: Bearer <key>` on `/api/v1`. Empty rejects every request.
    pub api_keys: Vec<ApiKey>,
    /// Largest request body in bytes (default 1 MiB); larger bodies get 413.
    pub max_body_bytes: usize,
    /// This node's name, reported by `/api/v1/info`.
    pub node_id: String,
    /// The WebSocket gateway's settings (its token key among them).
    pub gateway: GatewayConfig,
    /// The built-in job types and their worker.
    pub jobs: crate::builtin_jobs::BuiltinJobsConfig,
    /// Deadline of the health checks (default 1 s): `/health` and `/health/ready` run every
    /// component's check at once and report a check still running at the deadline unhealthy.
    pub health_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_keys: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            node_id: "local".to_owned(),
            gateway: GatewayConfig::default(),
            jobs: crate::builtin_jobs::BuiltinJobsConfig::default(),
            health_timeout: Duration::from_secs(1),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("api_keys", &self.api_keys)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("node_id", &self.node_id)
            .field("health_timeout", &self.health_timeout)
            .finish_non_exhaustive()
    }
}

/// A named API key. The name shows up in logs; the key never does (`Debug` redacts it).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// Who holds the key, e.g. `billing-backend`.
    pub name: String,
    /// The secret itself.
    pub key: String,
}

impl ApiKey {
    /// A key named `name`.
    pub fn new(name: impl Into<String>, key: impl Into<String>) -> Self {
        ApiKey { name: name.into(), key: key.into() }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey").field("name", &self.name).field("key", &"<redacted>").finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_key() {
        let config = ServerConfig { api_keys: vec![ApiKey::new("ci", "s3cret-value")], ..ServerConfig::default() };
        let shown = format!("{config:?}");
        assert!(shown.contains("ci") && shown.contains("<redacted>"), "{shown}");
        assert!(!shown.contains("s3cret-value"), "{shown}");
    }
}
