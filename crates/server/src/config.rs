//! [`ServerConfig`] and [`ApiKey`]: the HTTP server's own settings.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::gateway::GatewayConfig;
use switchboard_core::limits::DEFAULT_MAX_BODY_BYTES;

/// Default of [`ServerConfig::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServerConfig::body_read_timeout`].
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServerConfig::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Default of [`ServerConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default of [`ServerConfig::health_reserve_connections`].
pub const DEFAULT_HEALTH_RESERVE_CONNECTIONS: usize = 16;

/// Bounds of the three timeouts, in milliseconds.
const TIMEOUT_RANGE_MS: std::ops::RangeInclusive<u128> = 10..=3_600_000;

/// Settings of the HTTP server. The CLI fills it from `switchboard.toml`, the environment and
/// flags; engine and service settings live in their own config structs.
#[derive(Clone)]
pub struct ServerConfig {
    /// Keys accepted in `Authorization: Bearer <key>` on `/api/v1`. Empty rejects every request.
    pub api_keys: Vec<ApiKey>,
    /// Largest request body in bytes (default 1 MiB); larger bodies get 413.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request's headers, and how long a keep-alive
    /// connection may sit idle waiting for its next request; then the connection is closed
    /// (setting `header_read_timeout_ms`, default 10 s).
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body once its headers are in; then the
    /// request is answered 408 and the connection closed (setting `body_read_timeout_ms`,
    /// default 30 s).
    pub body_read_timeout: Duration,
    /// Longest an `/api/v1` request may take, reading its body included; then 503 `unavailable`
    /// (setting `request_timeout_ms`, default 30 s). Long-polls (`POST /queues/fetch`, cache
    /// lease waits) get their own longest wait on top.
    pub request_timeout: Duration,
    /// Most HTTP connections open at once (default 10 000). A connection upgraded to WebSocket
    /// stops counting (the gateway has its own limits).
    pub max_connections: usize,
    /// Connections accepted past `max_connections` that may only serve `/health*`, one request
    /// each, so probes still answer when the cap is reached (default 16; 0: none). Past the
    /// reserve too, new connections are closed at once.
    pub health_reserve_connections: usize,
    /// This node's name, reported by `/api/v1/info`.
    pub node_id: String,
    /// The WebSocket gateway's settings (its token key among them).
    pub gateway: GatewayConfig,
    /// The built-in job types and their worker.
    pub jobs: crate::builtin_jobs::BuiltinJobsConfig,
    /// Deadline of the health checks (default 1 s): `/health` and `/health/ready` run every
    /// component's check at once and report a check still running at the deadline unhealthy.
    pub health_timeout: Duration,
    /// At shutdown, how long the node's loops, connections and workers may take to end before
    /// the engine is closed anyway (default 35 s: a worker's default grace for running jobs, 30 s,
    /// plus the gateway's drain of its connections, 5 s).
    pub drain_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            api_keys: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            health_reserve_connections: DEFAULT_HEALTH_RESERVE_CONNECTIONS,
            node_id: "local".to_owned(),
            gateway: GatewayConfig::default(),
            jobs: crate::builtin_jobs::BuiltinJobsConfig::default(),
            health_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(35),
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("api_keys", &self.api_keys)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("max_connections", &self.max_connections)
            .field("health_reserve_connections", &self.health_reserve_connections)
            .field("node_id", &self.node_id)
            .field("health_timeout", &self.health_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Checks the connection and timeout settings; the error names the setting.
    pub fn validate(&self) -> switchboard_core::Result<()> {
        use switchboard_core::Error;
        for (name, value) in [
            ("header_read_timeout_ms", self.header_read_timeout),
            ("body_read_timeout_ms", self.body_read_timeout),
            ("request_timeout_ms", self.request_timeout),
        ] {
            if !TIMEOUT_RANGE_MS.contains(&value.as_millis()) {
                return Err(Error::invalid(
                    name,
                    format!(
                        "must be {}..={} ms, got {}",
                        TIMEOUT_RANGE_MS.start(),
                        TIMEOUT_RANGE_MS.end(),
                        value.as_millis()
                    ),
                ));
            }
        }
        if !(1..=10_000_000).contains(&self.max_connections) {
            return Err(Error::invalid(
                "max_connections",
                format!("must be 1..=10000000, got {}", self.max_connections),
            ));
        }
        if self.health_reserve_connections > 1000 {
            return Err(Error::invalid(
                "health_reserve_connections",
                format!("must be 0..=1000, got {}", self.health_reserve_connections),
            ));
        }
        if self.max_body_bytes == 0 {
            return Err(Error::invalid("max_body_bytes", "must be > 0"));
        }
        Ok(())
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

    #[test]
    fn validation_names_the_setting() {
        assert!(ServerConfig::default().validate().is_ok());
        let cases = [
            (ServerConfig { header_read_timeout: Duration::ZERO, ..ServerConfig::default() }, "header_read_timeout_ms"),
            (
                ServerConfig { body_read_timeout: Duration::from_secs(7200), ..ServerConfig::default() },
                "body_read_timeout_ms",
            ),
            (
                ServerConfig { request_timeout: Duration::from_millis(1), ..ServerConfig::default() },
                "request_timeout_ms",
            ),
            (ServerConfig { max_connections: 0, ..ServerConfig::default() }, "max_connections"),
            (
                ServerConfig { health_reserve_connections: 20_000, ..ServerConfig::default() },
                "health_reserve_connections",
            ),
        ];
        for (config, name) in cases {
            let error = config.validate().expect_err(name).to_string();
            assert!(error.contains(name), "{error}");
        }
    }
}
