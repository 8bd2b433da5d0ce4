//! Switchboard's core: identifiers, domain types, errors, one trait per capability (the contract
//! is written on the trait), the domain services that add defaults, validation and metrics on top
//! of the traits, and the [`Switchboard`] facade. No HTTP and no Redis here: engines implement the
//! traits, the server exposes the services.
//!
//! # Layout
//! - [`error`]: the error kinds every layer shares ([`Error`], [`Result`]).
//! - [`ids`]: validated identifiers ([`UserId`], [`DeviceId`], [`SessionId`], ...).
//! - [`time`]: [`Timestamp`], milliseconds since the epoch, RFC 3339 on the wire.
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
//! - [`config`]: [`SwitchboardConfig`], the service-level settings shared by every engine.
//! - [`services`]: [`Sessions`], [`Tokens`], [`RateLimits`], [`Streams`], [`Presence`], [`Typing`],
//!   [`Conversations`], [`Messages`], [`Notifications`], [`Cache`], [`Jobs`]: what the server and
//!   library users call.
//! - [`switchboard`]: the [`Switchboard`] facade and its [`SwitchboardBuilder`].
//!
//! # Example
//! ```no_run
//! # async fn demo(sb: switchboard_core::Switchboard) -> switchboard_core::Result<()> {
//! use switchboard_core::{CreateSession, UserId};
//! let created = sb.sessions().create(CreateSession::for_user(UserId::new("alice")?)).await?;
//! let again = sb.sessions().touch(&created.session.id).await?;
//! assert!(again.is_some());
//! # Ok(()) }
//! ```

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

pub use broker::{Broker, BrokerEvent, BrokerMessage, BrokerReceiver, BrokerSender, Encodings, broker_queue};
pub use cache::{CacheKeyPage, CacheLeaseOutcome, CacheLeaseRequest, CacheStats, CacheStore, CacheWrite};
pub use channel::ChannelName;
pub use config::{
    CacheConfig, JobsConfig, NotificationsConfig, PresenceConfig, RateLimitsConfig, SessionsConfig, SwitchboardConfig,
    TokensConfig, TypingConfig,
};
pub use conversation::{Conversation, ConversationKind, ConversationSpec, ConversationStore};
pub use denylist::{TokenCheck, TokenDenylist};
pub use engine::{Engine, EngineHealth, EngineInfo};
pub use error::{Error, Result};
pub use hub::{Hub, HubEvent, HubSubscription};
pub use ids::{
    ConversationId, DeviceId, JobId, JobType, LeaseToken, MessageId, NotificationId, QueueName, RateLimitKey,
    ScheduleName, SessionId, TokenId, UserId,
};
pub use jobs::{
    Backoff, Completion, Due, EnqueueOutcome, Enqueued, FailOutcome, Fetched, Job, JobError, JobRetention, JobState,
    JobStore, LeasedJob, NewJob, QueueCounts, Retry, Schedule, ScheduleSpec, ScheduleState,
};
pub use message::{
    DeliveryStatus, InboxFilter, InboxPage, InboxSettings, InboxStore, Message, MessageStore, NewMessage, PostOutcome,
    RecentMessages, UnreadTotals, UserConversation,
};
pub use notification::{
    CreatedNotification, NewNotification, Notification, NotificationChange, NotificationPage, NotificationRetention,
    NotificationStatus, NotificationStore, Priority,
};
pub use presence::{
    ConnRef, ConnectionInfo, Device, DevicePresence, DeviceRegistration, OnlinePage, PendingFrom, Platform,
    PresenceStatus, PresenceStore, RefreshOutcome, StatusChange, StatusSetting, Transition, UserPresence,
};
pub use ratelimit::{Algorithm, Decision, Policy, RateLimitRequest, RateLimiter};
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
pub use session::{CreatedSession, DeviceInfo, NewSession, Session, SessionData, SessionStore};
pub use stream::{CursorStore, NewPublication, Publication, Retention, StreamPosition, StreamRead, StreamStore};
pub use switchboard::{Switchboard, SwitchboardBuilder};
pub use time::Timestamp;
pub use typing::{TypingEvent, TypingStart, TypingStore};
