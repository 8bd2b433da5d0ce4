//! [`Switchboard`]: the facade over one engine's services.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::channel::ChannelName;
use crate::config::SwitchboardConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::hub::{DEFAULT_SUBSCRIBER_CAPACITY, Hub};
use crate::ids::{ConversationId, UserId};
use crate::lifecycle::{Lifecycle, ShutdownReport};
use crate::services::Messages;
use crate::services::wiring::{MembersOfConversations, PresenceToStreams, TypingToStreams};
use crate::services::{
    Cache, Conversations, DEFAULT_MAX_MEMBERS, Jobs, NoPushHook, Notifications, Presence, PushHook, RateLimits,
    Sessions, Streams, Tokens, Typing,
};

/// Whose `user:` channels a broadcast reaches ([`Switchboard::user_channels`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// The user's contacts.
    ContactsOf(UserId),
    /// The conversation's members.
    MembersOf(ConversationId),
}

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
    node: Lifecycle,
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
        let node = Lifecycle::new();
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
        let jobs = Jobs::new(engine.jobs.clone(), config.jobs.clone(), node.clone());
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
        )
        .with_config(config.messages.clone());
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
            hub: Hub::new(engine.broker.clone(), DEFAULT_SUBSCRIBER_CAPACITY, node.clone())?,
            node,
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

    /// The `user:` channels of an audience, without the users in `except`, in ascending user
    /// order: what a broadcast to "the contacts of u" or "the members of c but the sender"
    /// publishes on (with [`Streams::publish`] on each). [`Error::NotFound`] for a conversation
    /// that does not exist.
    pub async fn user_channels(&self, audience: &Audience, except: &[UserId]) -> Result<Vec<ChannelName>> {
        let mut users = match audience {
            Audience::ContactsOf(user) => self.presence().contacts(user).await?,
            Audience::MembersOf(conversation) => match self.conversations().get(conversation).await? {
                Some(c) => c.members,
                None => return Err(Error::NotFound("conversation not found".into())),
            },
        };
        users.retain(|u| !except.contains(u));
        users.sort();
        users.dedup();
        Ok(users.iter().map(ChannelName::user).collect())
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

    /// Job queues, workers and schedules. Schedules fire while the node runs
    /// ([`Switchboard::start`]); workers run on the node.
    pub fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    /// Presence, devices and contacts. Offline transitions are announced while the node runs
    /// ([`Switchboard::start`] sweeps every [`Presence::sweep_interval`]).
    pub fn presence(&self) -> &Presence {
        &self.inner.presence
    }

    /// Typing indicators; only conversation members may type. Expiry stop events are sent
    /// while the node runs ([`Switchboard::start`] sweeps every [`Typing::sweep_interval`]).
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

    /// This node's fan-out of live publications to local subscribers (while the node runs).
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

    /// Starts the node on the current tokio runtime: the engine's loops (the memory engine's
    /// expiry sweeper, the Redis broker's pub/sub connection), the hub's delivery to local
    /// subscribers, the presence and typing sweeps (offline and typing-stop events), and the
    /// schedule loop. Workers ([`Worker::start`](crate::Worker::start)) and the layers above
    /// ([`Switchboard::node`]) run on it too. Until it is started, live subscriptions and
    /// workers are refused with [`Error::Unavailable`] and nothing is swept (expired entries
    /// are still never returned). Fails outside a runtime or when started before.
    pub fn start(&self) -> Result<()> {
        let node = &self.inner.node;
        node.bind()?;
        for (name, task) in self.inner.engine.lifecycle.background(node.stopping()) {
            node.spawn(name, task)?;
        }
        let dispatch = self.inner.hub.dispatch().ok_or_else(|| Error::Conflict("the hub already runs".into()))?;
        node.spawn("hub.dispatch", dispatch)?;
        let presence = self.inner.presence.clone();
        node.spawn(
            "presence.sweep",
            every(node.stopping(), presence.sweep_interval(), "presence", move || {
                let presence = presence.clone();
                async move { presence.sweep().await.map(drop) }
            }),
        )?;
        let typing = self.inner.typing.clone();
        node.spawn(
            "typing.sweep",
            every(node.stopping(), typing.sweep_interval(), "typing", move || {
                let typing = typing.clone();
                async move { typing.sweep().await.map(drop) }
            }),
        )?;
        node.spawn("jobs.schedules", self.inner.jobs.clone().run_schedules())?;
        tracing::debug!(engine = %self.inner.engine.health.info().name, "node started");
        Ok(())
    }

    /// The node's background work: where the layers above spawn their loops and track their
    /// connections, and the token that tells them to stop.
    pub fn node(&self) -> &Lifecycle {
        &self.inner.node
    }

    /// Whether the node runs: started, not shutting down, its runtime alive.
    pub fn is_running(&self) -> bool {
        self.inner.node.is_running()
    }

    /// Ends the node: cancels every loop (workers stop fetching and finish their jobs within
    /// their grace), waits up to `drain` for all of them, then closes the engine — last, so
    /// every loop could still use it. What did not end in time is in the report (and logged).
    pub async fn shutdown(&self, drain: Duration) -> ShutdownReport {
        let started = Instant::now();
        let unfinished = self.inner.node.stop(drain).await;
        self.inner.engine.lifecycle.close().await;
        let report = ShutdownReport { took: started.elapsed(), unfinished };
        tracing::info!(took_ms = report.took.as_millis() as u64, drained = report.drained(), "node stopped");
        report
    }

    /// The whole lifecycle in one call: starts the node, serves until `signal` resolves (e.g.
    /// `tokio::signal::ctrl_c()`), then shuts it down with `drain`.
    pub async fn run_until(&self, signal: impl Future, drain: Duration) -> Result<ShutdownReport> {
        self.start()?;
        signal.await;
        Ok(self.shutdown(drain).await)
    }
}

/// Runs `work` every `interval` until `stop`. A failure is logged at warn the first time after a
/// success (the events it would have sent are late until it works again), repeats at debug (an
/// outage would repeat it every interval), the recovery at info.
async fn every<F, Fut>(stop: CancellationToken, interval: Duration, what: &'static str, work: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let failing = AtomicBool::new(false);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match work().await {
            Err(e) if !failing.swap(true, Ordering::Relaxed) => {
                tracing::warn!(sweep = what, error = %e, "sweep failed; expiry events wait until it works again");
            }
            Err(e) => tracing::debug!(sweep = what, error = %e, "sweep failed again"),
            Ok(()) if failing.swap(false, Ordering::Relaxed) => tracing::info!(sweep = what, "sweep works again"),
            Ok(()) => {}
        }
    }
}
