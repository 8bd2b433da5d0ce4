//! [`AppState`]: what every handler shares (the services, the server config, metrics, uptime).

use std::sync::Arc;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use switchboard_core::Switchboard;

use crate::config::ServerConfig;
use crate::gateway::Gateway;

/// Shared state of the HTTP server; cheap to clone (everything is behind `Arc`s).
#[derive(Clone)]
pub struct AppState {
    sb: Switchboard,
    config: Arc<ServerConfig>,
    metrics: PrometheusHandle,
    started: Instant,
    gateway: Gateway,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("node_id", &self.config.node_id).finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `sb` with `config`. Installs the global metrics recorder on first use (see
    /// [`crate::metrics_handle`]).
    pub fn new(sb: Switchboard, config: ServerConfig) -> Self {
        let gateway = Gateway::new(sb.clone(), config.gateway.clone(), config.node_id.clone());
        AppState {
            sb,
            config: Arc::new(config),
            metrics: crate::metrics::metrics_handle(),
            started: Instant::now(),
            gateway,
        }
    }

    /// The services.
    pub fn sb(&self) -> &Switchboard {
        &self.sb
    }

    /// The server settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The Prometheus handle `/metrics` renders.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.metrics
    }

    /// When this state was built (the server's start, for `uptime_seconds`).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// This node's WebSocket gateway.
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }
}
