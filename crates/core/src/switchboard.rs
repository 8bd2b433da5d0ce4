//! [`Switchboard`]: the facade over one engine's services.

use std::sync::Arc;

use crate::config::SwitchboardConfig;
use crate::engine::Engine;
use crate::error::Result;
use crate::hub::{DEFAULT_SUBSCRIBER_CAPACITY, Hub};
use crate::services::Messages;
use crate::services::wiring::{MembersOfConversations, PresenceToStreams, TypingToStreams};
use crate::services::{
    Cache, Conversations, DEFAULT_MAX_MEMBERS, Jobs, Notifications, Presence, RateLimits, Sessions, Streams, Tokens,
    Typing,
};

/// Every service of one engine, cheap to clone. Build it with an engine crate
/// (`switchboard_memory::MemoryEngineExt::memory`, `switchboard_redis::RedisEngineExt::redis`)
/// or from an [`Engine`] with [`Switchboard::new`].
#[derive(Clone)]
pub struct Switchboard {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: SwitchboardConfig,
    sessions: Sessions,
    tokens: Tokens,
    rate_limits: RateLimits,
    streams: Streams,
    hub: Hub,
    presence: Presence,
    typing: Typing,
    conversations: Conversations,
    messages: Messages,
    notifications: Notifications,
    cache: Cache,
    jobs: Jobs,
}

impl Switchboard {
    /// Wires the services over `engine`; fails if `config` is invalid or another facade already
    /// took the engine's broker (one facade per engine).
    pub fn new(engine: Engine, config: SwitchboardConfig) -> Result<Self> {
        config.validate()?;
        let streams = Streams::new(engine.streams.clone(), engine.cursors.clone());
        let conversations = Conversations::new(engine.conversations.clone(), DEFAULT_MAX_MEMBERS, streams.clone());
        let presence = Presence::new(engine.presence.clone(), config.presence.clone());
        presence.set_events(std::sync::Arc::new(PresenceToStreams(streams.clone())));
        let typing = Typing::new(engine.typing.clone(), config.typing.clone());
        typing.set_events(std::sync::Arc::new(TypingToStreams(streams.clone())));
        typing.set_membership(std::sync::Arc::new(MembersOfConversations(conversations.clone())));
        // Events go to `user:` streams; pushes are asked through the hook (no-op until the
        // `push.send` job exists, issue 5).
        let notifications = Notifications::new(
            engine.notifications.clone(),
            config.notifications.clone(),
            streams.clone(),
            presence.clone(),
        );
        let messages = Messages::new(
            engine.messages.clone(),
            engine.inbox.clone(),
            conversations.clone(),
            streams.clone(),
            typing.clone(),
        );
        let inner = Inner {
            messages,
            cache: Cache::new(engine.cache.clone(), config.cache.clone()),
            jobs: Jobs::new(engine.jobs.clone(), config.jobs.clone()),
            sessions: Sessions::new(engine.sessions.clone(), config.sessions.clone()),
            tokens: Tokens::new(engine.denylist.clone(), config.tokens.clone(), streams.clone()),
            rate_limits: RateLimits::new(engine.rate_limiter.clone(), config.rate_limits.clone()),
            streams,
            conversations,
            notifications,
            hub: Hub::new(engine.broker.clone(), DEFAULT_SUBSCRIBER_CAPACITY)?,
            presence,
            typing,
            engine,
            config,
        };
        Ok(Switchboard { inner: Arc::new(inner) })
    }

    /// Conversations and their members (§3.8; the membership behind `chat:` channels).
    pub fn conversations(&self) -> &Conversations {
        &self.inner.conversations
    }

    /// Messages, receipts, per-user conversation lists and unread counters (§3.8).
    pub fn messages(&self) -> &Messages {
        &self.inner.messages
    }

    /// Notifications and their cross-device sync (§3.7). Install a push hook with
    /// [`Notifications::set_push_hook`].
    pub fn notifications(&self) -> &Notifications {
        &self.inner.notifications
    }

    /// The tagged cache (§3.9).
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Job queues, workers and schedules (§3.10). Spawn [`Jobs::run_schedules`] once per node
    /// for schedules to fire.
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// Presence, devices and contacts (§3.4). Someone must call [`Presence::sweep`] every
    /// [`Presence::sweep_interval`] for offline transitions to be announced.
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Typing indicators (§3.5). Someone must call [`Typing::sweep`] every
    /// [`Typing::sweep_interval`] for expiry stop events; membership is allow-all until
    /// [`Typing::set_membership`].
    pub fn typing(&self) -> &Typing {
        &self.inner.typing
    }

    /// Sessions (§3.1).
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Token denylist and revoke-before (§3.2).
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// Rate limits (§3.3).
    pub fn rate_limits(&self) -> &RateLimits {
        &self.inner.rate_limits
    }

    /// Channel streams, recovery and per-device pending/ack (§3.6, §3.11).
    pub fn streams(&self) -> &Streams {
        &self.inner.streams
    }

    /// This node's fan-out of live publications to local subscribers (§3.6).
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The engine underneath (health, info, raw traits).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The settings in force.
    pub fn config(&self) -> &SwitchboardConfig {
        &self.inner.config
    }
}
