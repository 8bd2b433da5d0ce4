//! Domain services: what the server and library users call. Each wraps an engine trait with
//! defaults from [`crate::SwitchboardConfig`], input validation, and engine-call metrics.
//!
//! # Layout
//! - `cache`: [`Cache`], JSON values, namespace TTLs, per-namespace metrics, single-flight
//!   `get_or_set` and leases with stale-while-revalidate.
//! - `sessions`: [`Sessions`].
//! - `tokens`: [`Tokens`].
//! - `rate_limits`: [`RateLimits`].
//! - `streams`: [`Streams`], publish/history/recovery and pending/ack.
//! - `presence`: [`Presence`], devices, connections, status, contacts and `presence.changed`.
//! - `typing`: [`Typing`], throttled typing events and stop-on-expiry.
//! - `messages`: [`Messages`], post/edit/delete/receipts with their events and per-user lists.
//! - `jobs`: [`Jobs`], enqueue/fetch (long-poll)/complete/fail, stats, schedules.
//! - `worker`: [`Worker`], library job handlers with a concurrency and graceful shutdown.
//! - `notifications`: [`Notifications`], `notification.new` / `notification.updated` and the
//!   push hook.
//! - `conversations`: [`Conversations`], member limits, and the access-changed events that end
//!   live subscriptions of removed members.
//! - `wiring`: how the services feed each other (presence and typing events to streams, typing
//!   membership from conversations).

mod cache;
mod conversations;
mod jobs;
mod messages;
mod notifications;
mod presence;
mod rate_limits;
mod sessions;
mod streams;
mod tokens;
mod typing;
pub(crate) mod wiring;
mod worker;

pub use cache::{
    Cache, CacheLease, CacheLeaseAnswer, CacheLeaseOptions, CacheSetOptions, DEFAULT_CACHE_LEASE,
    DEFAULT_CACHE_LEASE_WAIT,
};
pub use conversations::{Conversations, DEFAULT_MAX_MEMBERS};
pub use jobs::{
    EnqueueJob, JobView, Jobs, MAX_ATTEMPTS, MAX_DELAY, MAX_FETCH, MAX_FETCH_QUEUES, MAX_FETCH_WAIT, MAX_LEASE,
    MAX_UNIQUE_KEY_BYTES, MIN_LEASE, MIN_SCHEDULE_EVERY, PutSchedule, QueueStats, ScheduleView,
};
pub use messages::Messages;
pub use notifications::{NoPushHook, Notifications, PushHook};
pub use presence::{NoPresenceEvents, Presence, PresenceEvents, SetStatus};
pub use rate_limits::{CheckOutcome, KeyDecision, PolicyRef, RateLimitCheck, RateLimits};
pub use sessions::{CreateSession, Sessions};
pub use streams::{Pending, Streams};
pub use tokens::Tokens;
pub use typing::{AllowAllMembers, MembershipCheck, NoTypingEvents, Typing, TypingEvents};
pub use worker::{JobContext, JobFailure, JobOutcome, MAX_CONCURRENCY, Worker, WorkerHandle, WorkerOptions};

use std::future::Future;
use std::time::Instant;

use crate::error::{Error, Result};

/// Runs one engine call, recording its latency and (for engine failures) an error count.
async fn observe<T>(capability: &'static str, op: &'static str, call: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!("switchboard_engine_call_duration_seconds", "capability" => capability, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if let Err(e @ (Error::Unavailable(_) | Error::Internal(_))) = &result {
        metrics::counter!("switchboard_engine_errors_total", "capability" => capability, "op" => op, "kind" => e.kind())
            .increment(1);
    }
    result
}

/// Checks an optional short text field's length.
fn check_text(field: &str, value: &Option<String>, max: usize) -> Result<()> {
    match value {
        Some(v) if v.len() > max => Err(Error::invalid(field, format!("must be at most {max} bytes"))),
        _ => Ok(()),
    }
}
