//! Switchboard's embedded in-memory engine: every capability in one process, nothing to install.
//! State lives in mutex-guarded maps; expiry is checked lazily on every read and a sweeper task
//! removes what expired in between, so memory stays bounded by live state. Without a data dir,
//! state is lost on restart; with one ([`MemoryConfig::data_dir`]), every state change is written
//! to a journal before it is acknowledged and a restart restores it (see docs/ARCHITECTURE.md).
//!
//! # Layout
//! - `config`: [`MemoryConfig`], [`SyncPolicy`].
//! - `journal`: the durable mode: the write-ahead journal, group commit (a waiting request leads
//!   the batch; the journal thread under `always`), recovery, the roll-back and probe after a
//!   failed write, snapshots and compaction, the dir lock, and [`data_dir_status`].
//! - `wal`: the journal's checksummed record frames and the scan telling a torn tail from
//!   corruption.
//! - `codec`: the compact binary encoding of the hottest journal records (JSON for the rest).
//! - `session`: `MemorySessions`, the [`switchboard_core::SessionStore`].
//! - `denylist`: `MemoryDenylist`, the [`switchboard_core::TokenDenylist`].
//! - `ratelimit`: `MemoryRateLimiter`, the [`switchboard_core::RateLimiter`].
//! - `stream`: `MemoryStreams`, the [`switchboard_core::StreamStore`] and
//!   [`switchboard_core::CursorStore`].
//! - `broker`: `MemoryBroker`, the in-process [`switchboard_core::Broker`].
//! - `presence`: `MemoryPresence`, the [`switchboard_core::PresenceStore`].
//! - `conversation`: `MemoryConversations`, the [`switchboard_core::ConversationStore`].
//! - `typing`: `MemoryTyping`, the [`switchboard_core::TypingStore`].
//! - `message`: `MemoryMessages`, the [`switchboard_core::MessageStore`].
//! - `inbox`: `MemoryInbox`, the [`switchboard_core::InboxStore`].
//! - `notification`: `MemoryNotifications`, the [`switchboard_core::NotificationStore`].
//! - `cache`: `MemoryCache`, the [`switchboard_core::CacheStore`] (byte budget, LRU).
//! - `jobs`: `MemoryJobs`, the [`switchboard_core::JobStore`].
//! - `schedule`: keys ordered by due time, so sweeps visit only what is due.
//! - `health`: `MemoryHealth`, and `MemoryLifecycle` (the sweeper's loop, closing).
//! - `sweeper`: the loop that drops expired entries.

mod broker;
mod cache;
mod codec;
mod config;
mod conversation;
mod denylist;
mod health;
mod inbox;
mod jobs;
mod journal;
mod message;
mod notification;
mod presence;
mod ratelimit;
mod schedule;
mod session;
mod stream;
mod sweeper;
mod typing;
mod wal;

use std::sync::Arc;

use switchboard_core::{Engine, Result, Switchboard, SwitchboardConfig};

pub use config::{MemoryConfig, SyncPolicy};
pub use journal::{DataDirStatus, data_dir_status};
use journal::{Durable, store};

/// Builds the memory engine; fails if `config` is invalid ([`MemoryConfig::validate`]). Its
/// sweeper runs while the node does ([`Switchboard::start`]); until then expired entries are
/// never returned but are only dropped when next read.
///
/// With a data dir, it locks the dir (failing if another process holds it), restores the state
/// the journal holds and starts the journal's thread, which stops once the engine is
/// dropped. A corrupt journal fails it with the file and offset.
pub fn engine(config: MemoryConfig) -> Result<Engine> {
    config.validate()?;
    let recovery = match &config.data_dir {
        Some(dir) => Some(journal::open(dir, config.sync, config.compact_log_bytes)?),
        None => None,
    };
    let journal = recovery.as_ref().map(journal::Recovery::journal).unwrap_or_default();
    let location = match &config.data_dir {
        Some(dir) => format!("{} (sync {})", dir.display(), config.sync),
        None => "in-process".to_owned(),
    };
    let sessions = Arc::new(session::MemorySessions::new(journal.clone()));
    let denylist = Arc::new(denylist::MemoryDenylist::new(journal.clone()));
    let rate_limiter = Arc::new(ratelimit::MemoryRateLimiter::new(journal.clone()));
    let broker = Arc::new(broker::MemoryBroker::new());
    let streams = Arc::new(stream::MemoryStreams::new(broker.clone(), journal.clone()));
    let presence = Arc::new(presence::MemoryPresence::new(journal.clone()));
    let typing = Arc::new(typing::MemoryTyping::default());
    let messages = Arc::new(message::MemoryMessages::new(journal.clone()));
    let notifications = Arc::new(notification::MemoryNotifications::new(journal.clone()));
    let cache = Arc::new(cache::MemoryCache::new(config.cache_max_bytes));
    let inbox = Arc::new(inbox::MemoryInbox::new(journal.clone()));
    let jobs = Arc::new(jobs::MemoryJobs::new(config.max_jobs, journal.clone()));
    let conversations = Arc::new(conversation::MemoryConversations::new(journal.clone()));
    if let Some(recovery) = recovery {
        recovery.finish(vec![
            (store::SESSIONS, sessions.clone() as Arc<dyn Durable>),
            (store::DENYLIST, denylist.clone() as Arc<dyn Durable>),
            (store::NOTIFICATIONS, notifications.clone() as Arc<dyn Durable>),
            (store::INBOX, inbox.clone() as Arc<dyn Durable>),
            (store::STREAMS, streams.clone() as Arc<dyn Durable>),
            (store::JOBS, jobs.clone() as Arc<dyn Durable>),
            (store::MESSAGES, messages.clone() as Arc<dyn Durable>),
            (store::CONVERSATIONS, conversations.clone() as Arc<dyn Durable>),
            (store::RATE_LIMITS, rate_limiter.clone() as Arc<dyn Durable>),
            (store::PRESENCE, presence.clone() as Arc<dyn Durable>),
        ])?;
    }
    let sweepable = vec![
        Arc::downgrade(&sessions) as sweeper::WeakSweepable,
        Arc::downgrade(&denylist) as sweeper::WeakSweepable,
        Arc::downgrade(&rate_limiter) as sweeper::WeakSweepable,
        Arc::downgrade(&streams) as sweeper::WeakSweepable,
        Arc::downgrade(&presence) as sweeper::WeakSweepable,
        Arc::downgrade(&typing) as sweeper::WeakSweepable,
        Arc::downgrade(&messages) as sweeper::WeakSweepable,
        Arc::downgrade(&notifications) as sweeper::WeakSweepable,
        Arc::downgrade(&cache) as sweeper::WeakSweepable,
    ];
    let closed = health::Closed::default();
    Ok(Engine {
        sessions,
        denylist,
        rate_limiter,
        cursors: streams.clone(),
        streams,
        broker,
        presence,
        typing,
        notifications,
        cache,
        jobs,
        messages,
        inbox,
        conversations,
        health: Arc::new(health::MemoryHealth { closed: closed.clone(), location }),
        lifecycle: Arc::new(health::MemoryLifecycle {
            closed,
            sweep_interval: config.sweep_interval,
            sweepable: std::sync::Mutex::new(Some(sweepable)),
        }),
    })
}

/// `Switchboard::memory(config)`: the facade on a fresh memory engine.
pub trait MemoryEngineExt: Sized {
    /// A [`Switchboard`] on a fresh memory engine with default [`MemoryConfig`].
    fn memory(config: SwitchboardConfig) -> Result<Self>;
}

impl MemoryEngineExt for Switchboard {
    fn memory(config: SwitchboardConfig) -> Result<Self> {
        Switchboard::new(engine(MemoryConfig::default())?, config)
    }
}

/// Locks a mutex, ignoring poisoning: every critical section in this crate leaves its map
/// consistent before anything that can panic, so the data behind a poisoned lock is still valid.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
