//! Switchboard's core: identifiers, domain types, errors, one trait per capability (the contract
//! is written on the trait), the domain services that add defaults, validation and metrics on top
//! of the traits, and the [`Switchboard`] facade. No HTTP and no Redis here: engines implement the
//! traits, the server exposes the services.
//!
//! # Layout
//! - [`error`]: the error kinds every layer shares ([`Error`], [`Result`]).
//! - [`ids`]: validated identifiers ([`UserId`], [`DeviceId`], [`SessionId`], ...).
//! - [`time`]: [`Timestamp`], milliseconds since the epoch, RFC 3339 on the wire.
//! - [`lifecycle`]: [`Lifecycle`], the node's background loops on one task tracker, and its
//!   orderly shutdown ([`ShutdownReport`]).
//! - [`limits`]: the input bounds every layer enforces (docs/API.md gives each).
//! - [`session`]: sessions and the [`SessionStore`] contract.
//! - [`denylist`]: revoked tokens and the [`TokenDenylist`] contract.
//! - [`ratelimit`]: policies, decisions, the reference algorithms (`algorithms`) and the
//!   [`RateLimiter`] contract.
//! - [`channel`]: [`ChannelName`], `<namespace>:<id>`, and the namespace table.
//! - [`control`]: control publications (access changed, token denied) that end live access on
//!   every node.
//! - [`stream`]: channel streams, the [`StreamStore`] and [`CursorStore`] contracts.
//! - [`broker`]: cross-node fan-out, the [`Broker`] contract and its bounded queue.
//! - [`hub`]: [`Hub`], node-local fan-out to local subscribers over one [`Broker`].
//! - [`presence`]: devices, connections, status, contacts and the [`PresenceStore`] contract.
//! - [`typing`]: typing indicators and the [`TypingStore`] contract.
//! - [`conversation`]: conversations and their members, the [`ConversationStore`] contract.
//! - [`message`]: cached messages, receipts and per-user lists: [`MessageStore`], [`InboxStore`].
//! - [`notification`]: notifications, their read/dismissed state and the [`NotificationStore`]
//!   contract.
//! - [`cache`]: tagged cached values and the [`CacheStore`] contract.
//! - [`jobs`]: job queues, leases, retries, schedules and the [`JobStore`] contract.
//! - [`engine`]: [`Engine`], the set of capability implementations an engine provides.
//! - [`contracts`]: every trait an engine implements, in one place.
//! - [`config`]: [`SwitchboardConfig`], the service-level settings shared by every engine.
//! - [`services`]: [`Sessions`], [`Tokens`], [`RateLimits`], [`Streams`], [`Presence`], [`Typing`],
//!   [`Conversations`], [`Messages`], [`Notifications`], [`Cache`], [`Jobs`]: what the server and
//!   library users call.
//! - [`switchboard`]: the [`Switchboard`] facade and its [`SwitchboardBuilder`].
//!
//! # Start here
//! A [`Switchboard`] is every service over one engine: the embedded one
//! (`switchboard_memory::engine`, nothing to install) or Redis (`switchboard_redis::connect`).
//! Build it, start its node, call its services, shut it down:
//! ```no_run
//! # async fn demo(engine: switchboard_core::Engine) -> switchboard_core::Result<()> {
//! use std::time::Duration;
//! use switchboard_core::{CreateSession, Switchboard, SwitchboardConfig, UserId};
//! // engine: `switchboard_memory::engine(MemoryConfig::default())?`, or
//! // `switchboard_redis::connect(RedisConfig::new("redis://127.0.0.1:6379")).await?`
//! let sb = Switchboard::builder(engine, SwitchboardConfig::default()).build()?;
//! // The node's loops: sweeps (offline and typing-stop events), schedules, live delivery.
//! sb.start()?;
//! let login = sb.sessions().create(CreateSession::for_user(UserId::new("alice")?)).await?;
//! assert!(sb.sessions().touch(&login.session.id).await?.is_some());
//! // Every loop drained (workers finish their jobs), then the engine closed.
//! let report = sb.shutdown(Duration::from_secs(10)).await;
//! assert!(report.drained());
//! # Ok(()) }
//! ```
//! [`Switchboard::run_until`] is the same lifecycle in one call. The services are
//! [`Sessions`], [`Tokens`], [`RateLimits`], [`Streams`] (with the [`Hub`] for in-process
//! subscriptions), [`Presence`], [`Typing`], [`Conversations`], [`Messages`],
//! [`Notifications`], [`Cache`] and [`Jobs`] (with [`Worker`]); [`Error`] is every call's
//! error, and a caller's own errors travel inside it ([`Error::external`]). Values the app
//! defines travel as serde types: [`Cache::get_or_set_as`], [`EnqueueJob::with_payload`] and
//! [`Worker::handle_as`], [`CreateSession::with_data`] and [`Session::data_as`]. A whole chat
//! backend is in the repository's `examples/chat-backend`. Engine authors start at
//! [`contracts`].

pub mod broker;
pub mod cache;
pub mod channel;
pub mod config;
pub mod control;
pub mod conversation;
pub mod denylist;
pub mod engine;
pub mod error;
pub mod hub;
pub mod ids;
pub mod jobs;
pub mod lifecycle;
pub mod limits;
pub mod message;
pub mod notification;
pub mod presence;
pub mod ratelimit;
pub mod services;
pub mod session;
pub mod stream;
pub mod switchboard;
pub mod time;
pub mod typing;

// What a Rust backend calls: the facade, its services and their types.
pub use broker::BrokerMessage;
pub use cache::{CacheKeyPage, CacheStats};
pub use channel::ChannelName;
pub use config::{
    CacheConfig, JobsConfig, MessagesConfig, NotificationsConfig, PresenceConfig, RateLimitsConfig, SessionsConfig,
    SwitchboardConfig, TokensConfig, TypingConfig,
};
pub use conversation::{Conversation, ConversationKind, ConversationSpec};
pub use denylist::TokenCheck;
pub use engine::{Engine, EngineInfo};
pub use error::{Error, ExternalError, Result};
pub use hub::{Hub, HubEvent, HubSubscription};
pub use ids::{
    ConversationId, DeviceId, JobId, JobType, LeaseToken, MessageId, NotificationId, QueueName, RateLimitKey,
    ScheduleName, SessionId, TokenId, UserId,
};
pub use jobs::{
    Backoff, Completion, Due, EnqueueOutcome, Enqueued, FailOutcome, Fetched, Job, JobError, JobRetention, JobState,
    LeasedJob, QueueCounts, Retry, Schedule, ScheduleSpec, ScheduleState,
};
pub use lifecycle::{Lifecycle, ShutdownReport};
pub use message::{
    DeliveryStatus, ImportOutcome, InboxFilter, InboxPage, InboxSettings, Message, NewMessage, PostOutcome,
    RecentMessages, UnreadSet, UnreadTotals, UserConversation,
};
pub use notification::{
    CreatedNotification, NewNotification, Notification, NotificationChange, NotificationPage, NotificationRetention,
    NotificationStatus, Priority,
};
pub use presence::{
    ConnRef, ConnectionInfo, Device, DevicePresence, DeviceRegistration, NodeReport, OnlinePage, PendingFrom, Platform,
    PresenceStatus, RefreshOutcome, StatusChange, StatusSetting, Transition, UserPresence,
};
pub use ratelimit::{Algorithm, Decision, Policy};
pub use services::{AllowAllMembers, MembershipCheck, NoTypingEvents, Typing, TypingEvents};
pub use services::{
    Cache, CacheLease, CacheLeaseAnswer, CacheLeaseOptions, CacheSetOptions, Messages, Pending, Streams,
};
pub use services::{CheckOutcome, CreateSession, KeyDecision, PolicyRef, RateLimitCheck, RateLimits, Sessions, Tokens};
pub use services::{Conversations, NoPresenceEvents, Presence, PresenceEvents, SetStatus};
pub use services::{
    EnqueueJob, JobContext, JobFailure, JobOutcome, JobView, Jobs, PutSchedule, QueueStats, ScheduleView, Worker,
    WorkerHandle, WorkerOptions,
};
pub use services::{NoPushHook, Notifications, PushHook};
pub use session::{CreatedSession, DeviceInfo, Session, SessionData};
pub use stream::{NewPublication, Publication, Retention, StreamPosition, StreamRead};
pub use switchboard::{Audience, Switchboard, SwitchboardBuilder};
pub use time::Timestamp;
pub use typing::{TypingEvent, TypingStart};

// The engine-side contracts, also at the root so engine crates name them briefly; documented
// in `contracts`.
#[doc(hidden)]
pub use contracts::*;

/// The contracts an engine implements — one trait per capability, the contract written on the
/// trait — and the types that cross them. A Rust backend does not need them: it calls the
/// services of a [`Switchboard`]. An engine crate implements every trait and hands the set over
/// as an [`Engine`]; the conformance suite checks that it keeps each contract.
pub mod contracts {
    pub use crate::broker::{Broker, BrokerEvent, BrokerReceiver, BrokerSender, Encodings, broker_queue};
    pub use crate::cache::{CacheLeaseOutcome, CacheLeaseRequest, CacheStore, CacheWrite};
    pub use crate::conversation::ConversationStore;
    pub use crate::denylist::TokenDenylist;
    pub use crate::engine::{EngineHealth, EngineLifecycle};
    pub use crate::jobs::{JobStore, NewJob};
    pub use crate::lifecycle::BackgroundTask;
    pub use crate::message::{InboxStore, MessageStore};
    pub use crate::notification::NotificationStore;
    pub use crate::presence::PresenceStore;
    pub use crate::ratelimit::{RateLimitRequest, RateLimiter};
    pub use crate::session::{NewSession, SessionStore};
    pub use crate::stream::{CursorStore, StreamStore};
    pub use crate::typing::TypingStore;
}
