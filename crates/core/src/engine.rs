//! [`Engine`]: the capability implementations one engine provides, chosen once at start-up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::cache::CacheStore;
use crate::conversation::ConversationStore;
use crate::denylist::TokenDenylist;
use crate::error::Result;
use crate::jobs::JobStore;
use crate::lifecycle::BackgroundTask;
use crate::message::{InboxStore, MessageStore};
use crate::notification::NotificationStore;
use crate::presence::PresenceStore;
use crate::ratelimit::RateLimiter;
use crate::session::SessionStore;
use crate::stream::{CursorStore, StreamStore};
use crate::typing::TypingStore;

/// Liveness and identity of an engine.
#[async_trait]
pub trait EngineHealth: Send + Sync + 'static {
    /// One round trip to the engine's backing store; the time it took.
    async fn ping(&self) -> Result<Duration>;

    /// Whether the backing store is reachable as far as the engine knows, without a round trip:
    /// false from the moment a connection loss is seen until a reconnection succeeds (calls
    /// meanwhile fail at once with [`crate::Error::Unavailable`]). Always true for an engine
    /// that keeps its state in-process.
    fn connected(&self) -> bool;

    /// What the engine is, for `/api/v1/info` and `doctor`.
    fn info(&self) -> EngineInfo;
}

/// The engine's own background work, and its end. The node drives both
/// ([`crate::Switchboard::start`], [`crate::Switchboard::shutdown`]), so an engine never spawns
/// a task by itself.
#[async_trait]
pub trait EngineLifecycle: Send + Sync + 'static {
    /// The loops the engine needs while the node serves, by name (the memory engine's expiry
    /// sweeper, the Redis broker's pub/sub connection); each ends once `stop` is cancelled.
    /// Called once; later calls return nothing.
    fn background(&self, stop: CancellationToken) -> Vec<(&'static str, BackgroundTask)>;

    /// Releases what the engine holds open (connections, files); called once at shutdown, after
    /// every loop ended. From then on [`EngineHealth::ping`] fails with
    /// [`crate::Error::Unavailable`], and so does every call of an engine with connections.
    async fn close(&self);
}

/// Description of a running engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EngineInfo {
    /// `memory` or `redis`.
    pub name: String,
    /// Where it keeps its state, secrets redacted (e.g. `redis://127.0.0.1:6379/0`,
    /// `cluster 10.0.0.1:6379,10.0.0.2:6379` or `sentinel mymaster via 10.0.0.1:26379`).
    pub location: String,
    /// Key prefix (Redis) or empty.
    pub key_prefix: String,
}

/// One engine's implementations of every capability, as trait objects.
#[derive(Clone)]
pub struct Engine {
    /// Sessions.
    pub sessions: Arc<dyn SessionStore>,
    /// Token denylist.
    pub denylist: Arc<dyn TokenDenylist>,
    /// Rate limits.
    pub rate_limiter: Arc<dyn RateLimiter>,
    /// Channel streams.
    pub streams: Arc<dyn StreamStore>,
    /// Device cursors on `user:` streams.
    pub cursors: Arc<dyn CursorStore>,
    /// This node's cross-node fan-out (its queue is taken by the facade's hub).
    pub broker: Arc<dyn Broker>,
    /// Presence, devices and contacts.
    pub presence: Arc<dyn PresenceStore>,
    /// Conversations and their members.
    pub conversations: Arc<dyn ConversationStore>,
    /// Typing indicators.
    pub typing: Arc<dyn TypingStore>,
    /// Recent-messages cache and receipts.
    pub messages: Arc<dyn MessageStore>,
    /// Per-user conversation lists and unread counters.
    pub inbox: Arc<dyn InboxStore>,
    /// Notifications and their read/dismissed state.
    pub notifications: Arc<dyn NotificationStore>,
    /// Tagged cache.
    pub cache: Arc<dyn CacheStore>,
    /// Job queues and schedules.
    pub jobs: Arc<dyn JobStore>,
    /// Health.
    pub health: Arc<dyn EngineHealth>,
    /// Background loops and closing.
    pub lifecycle: Arc<dyn EngineLifecycle>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("info", &self.health.info()).finish_non_exhaustive()
    }
}
