//! [`Gateway`]: this node's WebSocket gateway — the `/connection/websocket` upgrade, the registry
//! of connections, its loops on the node (presence refresh in batches, the control-channel
//! listener) and the draining of its connections at shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use switchboard_core::control::{self, Control};
use switchboard_core::hub::HubEvent;
use switchboard_core::{ChannelName, Switchboard, UserId};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::codec::negotiate;
use super::codes::DisconnectCode;
use super::config::GatewayConfig;
use super::connection::{ConnMeta, serve};
use super::registry::{Registry, Target};
use crate::state::AppState;

/// Most connections refreshed in presence per round trip.
const REFRESH_BATCH: usize = 1000;
/// How long shutdown waits for connections to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Metric handles of the per-message paths, registered once instead of looked up per call.
pub(crate) struct GatewayMetrics {
    pub(crate) publications_out: metrics::Counter,
    pub(crate) fanout_latency: metrics::Histogram,
    pub(crate) frames_in: metrics::Counter,
    pub(crate) frames_out: metrics::Counter,
}

impl GatewayMetrics {
    fn register() -> Self {
        GatewayMetrics {
            publications_out: metrics::counter!("switchboard_gateway_publications_out_total"),
            fanout_latency: metrics::histogram!("switchboard_gateway_fanout_latency_seconds"),
            frames_in: metrics::counter!("switchboard_gateway_frames_in_total"),
            frames_out: metrics::counter!("switchboard_gateway_frames_out_total"),
        }
    }
}

/// State shared by every connection of this node.
pub(crate) struct Shared {
    pub(crate) metrics: GatewayMetrics,
    pub(crate) sb: Switchboard,
    pub(crate) config: GatewayConfig,
    pub(crate) node_id: String,
    pub(crate) registry: Registry,
    /// Cancelled by [`Gateway::shutdown`] or with the node.
    pub(crate) shutdown: CancellationToken,
    /// This gateway's connections, drained by [`Gateway::shutdown`] (the node tracks them too).
    connections: TaskTracker,
    next_subscription: AtomicU64,
}

impl Shared {
    /// A number no other subscription on this node has.
    pub(crate) fn next_subscription_id(&self) -> u64 {
        self.next_subscription.fetch_add(1, Ordering::Relaxed)
    }
}

/// The gateway of one node. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// A random connection id: 96 bits, URL-safe base64.
pub(crate) fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

impl Gateway {
    /// A gateway over `sb`. Its loops start with [`Gateway::start`], on `sb`'s node.
    pub fn new(sb: Switchboard, config: GatewayConfig, node_id: String) -> Self {
        let shared = Shared {
            metrics: GatewayMetrics::register(),
            shutdown: sb.node().stopping().child_token(),
            sb,
            config,
            node_id,
            registry: Registry::default(),
            connections: TaskTracker::new(),
            next_subscription: AtomicU64::new(1),
        };
        Gateway { shared: Arc::new(shared) }
    }

    /// Starts its loops on the node (which must run: [`Switchboard::start`]): presence refresh
    /// of this node's connections in batches, and the listener for denied tokens.
    pub fn start(&self) -> switchboard_core::Result<()> {
        let shared = self.shared.clone();
        let node = shared.sb.node();
        node.spawn("gateway.denials", listen_for_denials(shared.clone()))?;
        // A third of the presence TTL (`presence.connection_ttl_seconds`), so one missed round
        // does not let a live connection expire.
        let ttl = Duration::from_secs(shared.sb.presence().config().connection_ttl_seconds);
        let refresh = (ttl / 3).max(Duration::from_millis(100));
        node.spawn("gateway.presence_refresh", periodic(shared.clone(), refresh, refresh_presence))?;
        Ok(())
    }

    /// The state connections share (for the connection loop's own tests).
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Connections on this node.
    pub fn connections(&self) -> usize {
        self.shared.registry.len()
    }

    /// Ends the user's connections on this node (all, or one device's); returns how many.
    pub fn disconnect_user(&self, user: &UserId, device: Option<switchboard_core::DeviceId>, reconnect: bool) -> usize {
        let code = if reconnect { DisconnectCode::ForceReconnect } else { DisconnectCode::ForceNoReconnect };
        self.shared.registry.disconnect(user, &Target { device, ..Target::default() }, code)
    }

    /// Cancelled when this node starts shutting down (long-polls end early on it).
    pub(crate) fn stopping(&self) -> CancellationToken {
        self.shared.shutdown.clone()
    }

    /// Stops accepting, tells every client to reconnect elsewhere, and waits (bounded) for the
    /// connections and the gateway's loops to finish.
    pub async fn shutdown(&self) {
        self.shared.shutdown.cancel();
        self.shared.registry.disconnect_all(DisconnectCode::Shutdown);
        self.shared.connections.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, self.shared.connections.wait()).await.is_err() {
            tracing::warn!(connections = self.shared.registry.len(), "gateway: drain timed out");
        }
    }
}

async fn periodic<F, Fut>(shared: Arc<Shared>, every: Duration, work: F)
where
    F: Fn(Arc<Shared>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            _ = tick.tick() => work(shared.clone()).await,
        }
    }
}

/// Ends this node's connections whose token gets denied, as announced on the node-wide control
/// channel. Whenever announcements may have been missed (a gap in delivery, a new subscription
/// after a failure) every token in use here is checked against the denylist again.
async fn listen_for_denials(shared: Arc<Shared>) {
    let channel = ChannelName::control();
    loop {
        let subscribed = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            subscribed = shared.sb.hub().subscribe(&channel) => subscribed,
        };
        let mut live = match subscribed {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, "gateway: control channel subscription failed; retrying");
                tokio::select! {
                    _ = shared.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        recheck_tokens(&shared).await;
        loop {
            let event = tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                event = live.recv() => event,
            };
            match event {
                Some(HubEvent::Publication(msg)) => {
                    if let Some(Control::TokenDenied(denied)) = control::parse(&msg.publication.data) {
                        shared.registry.disconnect_token(&denied.token_id, DisconnectCode::InvalidToken);
                    }
                }
                Some(HubEvent::Gap) => recheck_tokens(&shared).await,
                // A lagging subscription is closed by the hub: subscribe again (and recheck).
                Some(HubEvent::Lagged) | None => break,
            }
        }
    }
}

/// Ends the connections whose token is on the denylist.
async fn recheck_tokens(shared: &Shared) {
    for jti in shared.registry.token_ids() {
        match shared.sb.tokens().denied_until(&jti).await {
            Ok(Some(_)) => {
                shared.registry.disconnect_token(&jti, DisconnectCode::InvalidToken);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "gateway: denylist recheck failed");
                return;
            }
        }
    }
}

/// Refreshes every connection of this node in presence, one round trip per batch; connections
/// presence lost (e.g. Redis was down past their TTL) are registered again. Reports the node
/// alive with its connection count on the way (the stats across nodes).
async fn refresh_presence(shared: Arc<Shared>) {
    let refs = shared.registry.conn_refs();
    if let Err(e) = shared.sb.presence().report_node(&shared.node_id, refs.len() as u64).await {
        tracing::debug!(error = %e, "gateway: node report failed");
    }
    for batch in refs.chunks(REFRESH_BATCH) {
        match shared.sb.presence().refresh(batch).await {
            Ok(outcome) => {
                for missing in outcome.missing {
                    if let Some(info) = shared.registry.info(&missing)
                        && let Err(e) = shared.sb.presence().connect(&info).await
                    {
                        tracing::debug!(error = %e, "gateway: presence re-registration failed");
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "gateway: presence refresh failed"),
        }
    }
}

/// `GET /connection/websocket`: upgrades and serves one client, in the variant of the protocol
/// it asks for (see [`negotiate`]); a variant this server does not speak is answered `400`
/// before the upgrade.
pub(crate) async fn upgrade(
    State(state): State<AppState>,
    mut ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let gateway = state.gateway().clone();
    let shared = gateway.shared.clone();
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let requested = ws.requested_protocols().filter_map(|p| p.to_str().ok()).collect::<Vec<_>>();
    let negotiated = match negotiate(requested, query.as_deref()) {
        Ok(negotiated) => negotiated,
        Err(refusal) => {
            metrics::counter!("switchboard_gateway_handshakes_refused_total").increment(1);
            tracing::debug!(error = %refusal, "gateway: handshake refused");
            return (StatusCode::BAD_REQUEST, refusal.to_string()).into_response();
        }
    };
    if let Some(echo) = negotiated.echo {
        ws.set_selected_protocol(axum::http::HeaderValue::from_static(echo));
    }
    let meta = ConnMeta {
        protocol: negotiated.protocol,
        // Present when served by `serve` (connect info on); absent in router-only tests.
        ip: extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|ConnectInfo(addr)| addr.ip().to_string()),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(switchboard_core::limits::MAX_USER_AGENT_BYTES).collect()),
    };
    let max = shared.config.max_frame_bytes;
    let connections = shared.connections.clone();
    let node = shared.sb.node().clone();
    // Small buffers: an idle connection should cost a few KiB, not the default ~128 KiB. The read
    // buffer is allocated up front and grows when a frame needs more.
    // Frames up to twice the protocol's limit are read, so those just over it get the protocol's
    // own "bad request" close rather than a transport error.
    let transport_max = max.saturating_mul(2);
    ws.read_buffer_size(1024)
        .write_buffer_size(0)
        .max_frame_size(transport_max)
        .max_message_size(transport_max)
        .on_upgrade(move |socket| {
            let (sink, stream) = socket.split();
            // One span per connection: every event it logs carries its ids once connected.
            let span = tracing::info_span!(
                "ws",
                conn.protocol = meta.protocol.name(),
                conn.id = tracing::field::Empty,
                user.id = tracing::field::Empty,
                device.id = tracing::field::Empty,
            );
            let served = serve(shared, meta, sink, stream).instrument(span);
            node.track("gateway.connection", connections.track_future(served))
        })
}
