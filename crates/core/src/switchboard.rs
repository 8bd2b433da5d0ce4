//! [`Switchboard`]: the facade over one engine's services.

use std::sync::Arc;

use crate::config::SwitchboardConfig;
use crate::engine::Engine;
use crate::error::Result;
use crate::hub::{DEFAULT_SUBSCRIBER_CAPACITY, Hub};
use crate::services::Messages;
use crate::services::wiring::{MembersOfConversations, PresenceToStreams, TypingToStreams};
use crate::services::{
    Cache, Conversations, DEFAULT_MAX_MEMBERS, Jobs, NoPushHook, Notifications, Presence, PushHook, RateLimits,
    Sessions, Streams, Tokens, Typing,
};

/// Every service of one engine, cheap to clone. Build it with an engine crate
/// (`switchboard_memory::MemoryEngineExt::memory`, `switchboard_redis::RedisEngineExt::redis`),
/// or from an [`Engine`] with [`Switchboard::new`] — or [`Switchboard::builder`] to give it a
/// push hook.
#[derive(Clone)]
pub struct Switchboard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Switchboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Switchboard").field("engine", &self.inner.engine.health.info()).finish_non_exhaustive()
    }
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

/// Builds a [`Switchboard`] with what only its user can give: the push hook.
pub struct SwitchboardBuilder {
    engine: Engine,
    config: SwitchboardConfig,
    push: PushHookFactory,
}

impl std::fmt::Debug for SwitchboardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchboardBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

/// Makes the push hook from the jobs service (a hook usually enqueues a job; holding the jobs
/// service, not the facade, keeps the facade free of reference cycles).
type PushHookFactory = Box<dyn FnOnce(&Jobs) -> Arc<dyn PushHook> + Send>;

impl SwitchboardBuilder {
    /// Asks `hook` for a push when a notification is created while none of its user's devices
    /// is online (default: no pushes).
    pub fn push_hook(self, hook: Arc<dyn PushHook>) -> Self {
        self.push_hook_with(move |_| hook)
    }

    /// Like [`SwitchboardBuilder::push_hook`], with a hook made from the jobs service.
    pub fn push_hook_with(mut self, make: impl FnOnce(&Jobs) -> Arc<dyn PushHook> + Send + 'static) -> Self {
        self.push = Box::new(make);
        self
    }

    /// Wires the services over the engine; fails if the config is invalid or another facade
    /// already took the engine's broker (one facade per engine).
    pub fn build(self) -> Result<Switchboard> {
        let SwitchboardBuilder { engine, config, push } = self;
        config.validate()?;
        let streams = Streams::new(engine.streams.clone(), engine.cursors.clone());
        let conversations = Conversations::new(engine.conversations.clone(), DEFAULT_MAX_MEMBERS, streams.clone());
        let presence = Presence::new(
            engine.presence.clone(),
            config.presence.clone(),
            Arc::new(PresenceToStreams(streams.clone())),
        );
        let typing = Typing::new(
            engine.typing.clone(),
            config.typing.clone(),
            Arc::new(TypingToStreams(streams.clone())),
            Arc::new(MembersOfConversations(conversations.clone())),
        );
        let jobs = Jobs::new(engine.jobs.clone(), config.jobs.clone());
        // Events go to `user:` streams; pushes are asked through the hook.
        let notifications = Notifications::new(
            engine.notifications.clone(),
            config.notifications.clone(),
            streams.clone(),
            presence.clone(),
            push(&jobs),
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
            jobs,
            sessions: Sessions::new(engine.sessions.clone(), config.sessions.clone()).with_presence(presence.clone()),
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
}

impl Switchboard {
    /// Wires the services over `engine`; fails if `config` is invalid or another facade already
    /// took the engine's broker (one facade per engine).
    pub fn new(engine: Engine, config: SwitchboardConfig) -> Result<Self> {
        Switchboard::builder(engine, config).build()
    }

    /// A builder over `engine`, for a facade with a push hook.
    pub fn builder(engine: Engine, config: SwitchboardConfig) -> SwitchboardBuilder {
        SwitchboardBuilder { engine, config, push: Box::new(|_| Arc::new(NoPushHook)) }
    }

    /// Conversations and their members (the membership behind `chat:` channels).
    pub fn conversations(&self) -> &Conversations {
        &self.inner.conversations
    }

    /// Messages, receipts, per-user conversation lists and unread counters.
    pub fn messages(&self) -> &Messages {
        &self.inner.messages
    }

    /// Notifications and their cross-device sync. The push hook is given at construction
    /// ([`SwitchboardBuilder::push_hook`]).
    pub fn notifications(&self) -> &Notifications {
        &self.inner.notifications
    }

    /// The tagged cache.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Job queues, workers and schedules. Spawn [`Jobs::run_schedules`] once per node
    /// for schedules to fire.
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// Presence, devices and contacts. Someone must call [`Presence::sweep`] every
    /// [`Presence::sweep_interval`] for offline transitions to be announced.
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Typing indicators. Someone must call [`Typing::sweep`] every
    /// [`Typing::sweep_interval`] for expiry stop events; only conversation members may type.
    pub fn typing(&self) -> &Typing {
        &self.inner.typing
    }

    /// Sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Token denylist and revoke-before.
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// Rate limits.
    pub fn rate_limits(&self) -> &RateLimits {
        &self.inner.rate_limits
    }

    /// Channel streams, recovery and per-device pending/ack.
    pub fn streams(&self) -> &Streams {
        &self.inner.streams
    }

    /// This node's fan-out of live publications to local subscribers.
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
