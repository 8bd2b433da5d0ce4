//! [`GatewayConfig`]: limits and timings of the WebSocket gateway (docs/PROTOCOL.md lists them).

use std::time::Duration;

use switchboard_core::Policy;

use super::token::TokenVerifier;

/// Settings of the gateway, with the defaults docs/PROTOCOL.md documents.
#[derive(Clone)]
pub struct GatewayConfig {
    /// Verifies client tokens; without one every connect is refused.
    pub tokens: Option<TokenVerifier>,
    /// Server ping interval; the client answers each ping with a pong (default 25 s).
    pub ping_interval: Duration,
    /// How long after a ping the pong may take before the connection is closed (default 10 s).
    pub pong_timeout: Duration,
    /// Largest client frame in bytes (default 64 KiB).
    pub max_frame_bytes: usize,
    /// Bytes waiting to be sent to one client before it is disconnected as slow (default 1 MiB).
    pub send_queue_bytes: usize,
    /// Most connections of one user on this node (default 20).
    pub max_connections_per_user: usize,
    /// Most client subscriptions of one connection, the personal channel not counted
    /// (default 128).
    pub max_subscriptions: usize,
    /// How long a client has to send `connect` after the socket opens (default 10 s).
    pub connect_timeout: Duration,
    /// Most publications recovered in one subscribe or connect (default 10 000).
    pub max_recovered: usize,
    /// Per-user limit of RPC calls.
    pub rpc_limit: Policy,
    /// Per-user limit of `typing` RPC calls.
    pub typing_limit: Policy,
    /// Per-IP limit of connects.
    pub connect_limit: Policy,
}

impl std::fmt::Debug for GatewayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the token keys: they are secrets.
        f.debug_struct("GatewayConfig")
            .field("verifies_tokens", &self.tokens.is_some())
            .field("ping_interval", &self.ping_interval)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field("max_subscriptions", &self.max_subscriptions)
            .finish_non_exhaustive()
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            tokens: None,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(10),
            max_frame_bytes: super::frame::DEFAULT_MAX_FRAME_BYTES,
            send_queue_bytes: 1024 * 1024,
            max_connections_per_user: 20,
            max_subscriptions: 128,
            connect_timeout: Duration::from_secs(10),
            max_recovered: 10_000,
            rpc_limit: Policy::gcra(50, 1000),
            typing_limit: Policy::gcra(5, 1000),
            connect_limit: Policy::gcra(120, 60_000),
        }
    }
}
