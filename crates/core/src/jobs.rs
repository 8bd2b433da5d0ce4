//! Background jobs: queues with strict priorities, delays, leases, retries with backoff, a dead
//! set, retention, schedules, and the [`JobStore`] contract.
//!
//! A job moves through these states:
//!
//! ```text
//!  enqueue ──► delayed ──(due)──► waiting ──(fetch: attempt+1, lease)──► active ──complete──► completed
//!                 ▲                  ▲  ▲                                  │  │
//!                 │                  │  └────────(lease expired)───────────┘  │
//!                 └──────(fail, attempts left: backoff)───────────────────────┤
//!                                    dead ◄──(fail or lease expired, no attempts left)
//! ```
//!
//! Delivery is at least once: a worker that dies keeps its jobs only until their lease runs out.

use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{JobId, JobType, LeaseToken, QueueName, ScheduleName};
use crate::time::Timestamp;

/// Highest priority (runs first).
pub const MAX_PRIORITY: i32 = 1000;
/// Lowest priority.
pub const MIN_PRIORITY: i32 = -1000;
/// Most errors kept on a job record (the newest).
pub const MAX_KEPT_ERRORS: usize = 10;
/// Longest error message kept, in bytes (longer ones are cut at a char boundary and marked).
pub const MAX_ERROR_BYTES: usize = 2048;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Due, waiting for a worker (ordered by priority, then FIFO).
    Waiting,
    /// Not due yet (delayed or waiting for a retry).
    Delayed,
    /// Leased by a worker.
    Active,
    /// Finished successfully (kept by count and age).
    Completed,
    /// Failed its last attempt (kept by count and age until retried or deleted).
    Dead,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 5] =
        [JobState::Waiting, JobState::Delayed, JobState::Active, JobState::Completed, JobState::Dead];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Result<Self> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| Error::invalid("state", "must be one of waiting, delayed, active, completed, dead"))
    }

    /// Waiting or delayed: not started, cancellable.
    pub fn is_pending(self) -> bool {
        matches!(self, JobState::Waiting | JobState::Delayed)
    }
}

/// How long to wait before the next attempt after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Backoff {
    /// `base_ms * 2^(attempt-1)`, at most `max_ms`; with `jitter`, a uniform pick in
    /// `[d/2, d]` so retries of many jobs failing together spread out.
    Exponential {
        /// Delay after the first failed attempt (at most `max_ms`).
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2592000000_u64))]
        base_ms: u64,
        /// Upper bound of the delay, at most 2592000000 (30 d).
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2592000000_u64))]
        max_ms: u64,
        /// Whether to spread the delay.
        #[serde(default = "default_true")]
        jitter: bool,
    },
    /// Always `delay_ms`.
    Fixed {
        /// The delay, at most 2592000000 (30 d).
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2592000000_u64))]
        delay_ms: u64,
    },
    /// `base_ms * attempt^exponent`, at most `max_ms`.
    Polynomial {
        /// Delay unit.
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2592000000_u64))]
        base_ms: u64,
        /// The power (1..=8).
        #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 8))]
        exponent: u32,
        /// Upper bound of the delay.
        #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 2592000000_u64))]
        max_ms: u64,
    },
}

fn default_true() -> bool {
    true
}

/// Longest backoff delay accepted (30 d).
pub const MAX_BACKOFF_MS: u64 = 30 * 24 * 3600 * 1000;

impl Default for Backoff {
    /// Exponential from 1 s up to 1 h with jitter.
    fn default() -> Self {
        Backoff::Exponential { base_ms: 1000, max_ms: 3_600_000, jitter: true }
    }
}

impl Backoff {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<()> {
        let (base, max) = match *self {
            Backoff::Exponential { base_ms, max_ms, .. } => (base_ms, max_ms),
            Backoff::Fixed { delay_ms } => (delay_ms, delay_ms),
            Backoff::Polynomial { base_ms, exponent, max_ms } => {
                if !(1..=8).contains(&exponent) {
                    return Err(Error::invalid("backoff.exponent", "must be 1..=8"));
                }
                (base_ms, max_ms)
            }
        };
        if max > MAX_BACKOFF_MS || base > max {
            return Err(Error::invalid("backoff", format!("delays must be <= {MAX_BACKOFF_MS} ms and base <= max")));
        }
        Ok(())
    }

    /// The delay before the attempt after failed attempt number `attempt` (1-based); `random`
    /// in `[0, 1)` picks the jitter. Engines compute exactly this (the Redis engine in Lua).
    pub fn delay_ms(&self, attempt: u32, random: f64) -> u64 {
        let n = f64::from(attempt.max(1));
        match *self {
            Backoff::Fixed { delay_ms } => delay_ms,
            Backoff::Exponential { base_ms, max_ms, jitter } => {
                let d = (base_ms as f64 * 2f64.powf(n - 1.0)).min(max_ms as f64);
                let d = if jitter { d / 2.0 + d / 2.0 * random.clamp(0.0, 1.0) } else { d };
                d.floor() as u64
            }
            Backoff::Polynomial { base_ms, exponent, max_ms } => {
                (base_ms as f64 * n.powi(exponent as i32)).min(max_ms as f64).floor() as u64
            }
        }
    }

    /// The compact form engines store: `e:<base>:<max>:<0|1>`, `f:<delay>`,
    /// `p:<base>:<exponent>:<max>`.
    pub fn encode(&self) -> String {
        match *self {
            Backoff::Exponential { base_ms, max_ms, jitter } => format!("e:{base_ms}:{max_ms}:{}", u8::from(jitter)),
            Backoff::Fixed { delay_ms } => format!("f:{delay_ms}"),
            Backoff::Polynomial { base_ms, exponent, max_ms } => format!("p:{base_ms}:{exponent}:{max_ms}"),
        }
    }

    /// Parses [`Backoff::encode`]'s form.
    pub fn decode(s: &str) -> Result<Self> {
        let bad = || Error::Internal(format!("bad stored backoff {s:?}"));
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<u64>().ok()).ok_or_else(bad);
        match parts.first().copied() {
            Some("e") => Ok(Backoff::Exponential { base_ms: num(1)?, max_ms: num(2)?, jitter: num(3)? == 1 }),
            Some("f") => Ok(Backoff::Fixed { delay_ms: num(1)? }),
            Some("p") => Ok(Backoff::Polynomial {
                base_ms: num(1)?,
                exponent: u32::try_from(num(2)?).map_err(|_| bad())?,
                max_ms: num(3)?,
            }),
            _ => Err(bad()),
        }
    }
}

/// `error` as a job record keeps it: over [`MAX_ERROR_BYTES`], its longest char-boundary prefix
/// of at most `MAX_ERROR_BYTES - 3` bytes and `…` (3 bytes). Every engine cuts with this.
pub fn cut_error(error: &str) -> Cow<'_, str> {
    const MARK: char = '…';
    if error.len() <= MAX_ERROR_BYTES {
        return Cow::Borrowed(error);
    }
    let mut end = MAX_ERROR_BYTES - MARK.len_utf8();
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{MARK}", &error[..end]))
}

/// When a new job becomes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Due {
    /// At once.
    #[default]
    Now,
    /// This long after the engine's clock at enqueue.
    After(Duration),
    /// At this time (in the past: at once).
    At(Timestamp),
}

/// A job to enqueue, validated by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The id: given by the caller (enqueue is idempotent by id) or generated.
    pub id: JobId,
    /// The queue.
    pub queue: QueueName,
    /// What kind of job; workers pick their handler by it.
    pub job_type: JobType,
    /// The payload, JSON text (at most 512 KiB).
    pub payload: Vec<u8>,
    /// [`MIN_PRIORITY`]..=[`MAX_PRIORITY`]; higher runs first, FIFO within a level.
    pub priority: i32,
    /// When it becomes due.
    pub due: Due,
    /// Attempts before the job is dead (>= 1).
    pub max_attempts: u32,
    /// Delay between attempts.
    pub backoff: Backoff,
    /// How long a fetch leases the job unless the fetch names its own lease.
    pub lease: Duration,
    /// At most one pending or active job of the queue holds this key; a second enqueue with it
    /// returns the first job instead.
    pub unique_key: Option<String>,
}

/// What an enqueue did with one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EnqueueOutcome {
    /// A new job was stored.
    Created,
    /// A job with this id already existed (in any state); nothing changed.
    ExistingId,
    /// A pending or active job of the queue holds the unique key; nothing changed.
    DuplicateUniqueKey,
}

/// The answer of an enqueue, per job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enqueued {
    /// The job's id: the new one, or the existing job that made this one a duplicate.
    pub id: JobId,
    /// What happened.
    pub outcome: EnqueueOutcome,
    /// The state of the job `id` names.
    pub state: JobState,
}

/// One failed attempt on a job record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobError {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    /// What the worker said (or `lease expired`).
    pub message: String,
    /// When.
    pub at: Timestamp,
}

/// A job record (serde: how the embedded engine's durable mode stores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// Queue.
    pub queue: QueueName,
    /// Type.
    pub job_type: JobType,
    /// Payload, JSON text.
    pub payload: Vec<u8>,
    /// Priority.
    pub priority: i32,
    /// State.
    pub state: JobState,
    /// Attempts started so far (an expired lease counts; a released one does not).
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Backoff between attempts.
    pub backoff: Backoff,
    /// Default lease.
    pub lease: Duration,
    /// Dedup key.
    pub unique_key: Option<String>,
    /// When it was enqueued.
    pub created_at: Timestamp,
    /// When it is (or was) due for its next attempt.
    pub run_at: Timestamp,
    /// When its latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When it completed or died.
    pub finished_at: Option<Timestamp>,
    /// When the current lease ends (active jobs).
    pub lease_expires_at: Option<Timestamp>,
    /// The latest progress a worker reported, JSON text.
    pub progress: Option<Vec<u8>>,
    /// The result of a completed job, JSON text.
    pub result: Option<Vec<u8>>,
    /// The newest errors (at most [`MAX_KEPT_ERRORS`]), oldest first.
    pub errors: Vec<JobError>,
}

/// A job handed to a worker with its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedJob {
    /// The record (state `active`, `attempts` counting this attempt, `lease_expires_at` set).
    pub job: Job,
    /// The proof of the lease: complete, fail, heartbeat, progress and release need it.
    pub lease_token: LeaseToken,
}

/// Most waiting jobs of one queue a fetch filtered by types looks at: a type buried deeper
/// under jobs of other types waits until those are fetched (give such types a queue of their
/// own).
pub const MAX_TYPE_SCAN: usize = 1000;

/// The answer of a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fetched {
    /// The leased jobs, best first (queue order, then priority, then FIFO).
    pub jobs: Vec<LeasedJob>,
    /// The engine's clock.
    pub now: Timestamp,
    /// The earliest time something may become fetchable in these queues without another
    /// enqueue: the first delayed job's due time or the first active lease's end. Long-polls
    /// sleep until then at most.
    pub next_event_at: Option<Timestamp>,
}

/// One completion of a batch ([`JobStore::complete_many`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The job.
    pub id: JobId,
    /// Its lease.
    pub token: LeaseToken,
    /// Its result, JSON text.
    pub result: Option<Vec<u8>>,
}

/// How a failed attempt continues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After the job's backoff for this attempt, if attempts are left.
    Backoff,
    /// After this delay, if attempts are left.
    After(Duration),
    /// Never: the job is dead at once.
    Never,
}

/// What a failure did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FailOutcome {
    /// `delayed` (will retry), `waiting` (retry at once) or `dead`.
    pub state: JobState,
    /// When the retry is due (not for dead jobs).
    pub retry_at: Option<Timestamp>,
}

/// Bounds on finished jobs, per queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobRetention {
    /// Completed jobs kept (newest); 0 keeps none.
    pub completed_max: u64,
    /// Completed jobs older than this are dropped.
    pub completed_max_age: Duration,
    /// Dead jobs kept (newest).
    pub dead_max: u64,
    /// Dead jobs older than this are dropped.
    pub dead_max_age: Duration,
}

impl Default for JobRetention {
    /// Completed: 1 000 for 24 h; dead: 10 000 for 7 d.
    fn default() -> Self {
        JobRetention {
            completed_max: 1000,
            completed_max_age: Duration::from_secs(24 * 3600),
            dead_max: 10_000,
            dead_max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Counts of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueCounts {
    /// Due and waiting for a worker.
    pub waiting: u64,
    /// Not due yet.
    pub delayed: u64,
    /// Leased.
    pub active: u64,
    /// Completed records kept.
    pub completed: u64,
    /// Dead records kept.
    pub dead: u64,
    /// Whether fetches skip the queue.
    pub paused: bool,
    /// Jobs completed since the queue was first used.
    pub completed_total: u64,
    /// Failed attempts (errors and expired leases) since the queue was first used.
    pub failed_total: u64,
    /// Completions in the current minute (engine clock, `now_ms / 60000`).
    pub completed_this_minute: u64,
    /// Completions in the previous minute.
    pub completed_last_minute: u64,
    /// Failed attempts in the current minute.
    pub failed_this_minute: u64,
    /// Failed attempts in the previous minute.
    pub failed_last_minute: u64,
    /// The engine's clock when counted.
    #[serde(skip)]
    pub now_ms: i64,
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ScheduleSpec {
    /// A cron expression in UTC: 5 fields (`min hour dom month dow`) or 6 with seconds first.
    Cron(String),
    /// Every this many milliseconds (>= 1000).
    EveryMs(u64),
}

/// A recurring job, upserted by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Name (unique).
    pub name: ScheduleName,
    /// When it fires.
    pub spec: ScheduleSpec,
    /// The queue of the jobs it makes.
    pub queue: QueueName,
    /// The type of the jobs it makes.
    pub job_type: JobType,
    /// Their payload, JSON text.
    pub payload: String,
    /// Their priority.
    pub priority: i32,
    /// Their attempts.
    pub max_attempts: u32,
    /// Their backoff.
    pub backoff: Backoff,
    /// Their lease, ms.
    pub lease_ms: u64,
}

/// A stored schedule and its timing (serde: how the embedded engine's durable mode stores it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The definition.
    pub schedule: Schedule,
    /// The next tick (`None` when a cron expression has no future time).
    pub next_fire_at: Option<Timestamp>,
    /// The last tick fired.
    pub last_fired_at: Option<Timestamp>,
}

/// Storage of jobs, queues and schedules.
///
/// Contract:
/// - Job ids are global (across queues). Enqueue is idempotent by id: an id that exists in any
///   state is answered [`EnqueueOutcome::ExistingId`] and changes nothing. A `unique_key` is held
///   by a job of its queue from enqueue until it completes, dies or is removed; a second
///   enqueue with a held key is answered [`EnqueueOutcome::DuplicateUniqueKey`] with the
///   holder's id. The jobs of one `enqueue` call are applied in order, and those of one queue
///   atomically: the embedded engine applies the whole call atomically; on Redis, where each
///   queue is its own hash slot, a call spanning queues applies each queue's part atomically,
///   queue by queue in order of first appearance (a job whose id a crash left claimed for
///   another queue joins in a later step of its own).
/// - Fetch takes due jobs from the queues in the order given (a queue is drained before the
///   next is looked at), skipping paused queues entirely (not settled, not in `next_event_at`);
///   within a queue higher priority first, FIFO within a level by the order jobs entered
///   waiting (enqueue, a due delayed job moved over — due jobs in due-time order —, a requeue
///   after an expired lease, a retry without delay, release, retry of a dead job). Before
///   taking, it moves due delayed jobs (`run_at <= now`) to waiting and handles expired leases
///   (`lease_expires_at <= now`) of these queues: each expired lease counts as a failed attempt
///   (error `lease expired`, the attempt already counted by its fetch); with attempts left the
///   job is waiting again at once, else it is dead. A fetched job is active with `attempts + 1`,
///   `started_at`, and a lease ending `lease` (the fetch's or the job's) after the engine clock,
///   proved by the token given (the i-th job gets the i-th token). Jobs not active have
///   `lease_expires_at` `None`.
/// - complete, fail, heartbeat, progress and release need the job active under the same
///   token: a missing job is [`Error::NotFound`]; one not active under that token (its lease
///   was lost and the job requeued, or it finished) is [`Error::Conflict`]. A lease that ran out
///   but was not yet reclaimed still holds.
/// - fail records the error (newest [`MAX_KEPT_ERRORS`] kept; a message over
///   [`MAX_ERROR_BYTES`] keeps its longest char-boundary prefix of at most
///   `MAX_ERROR_BYTES - 3` bytes followed by `…`); with attempts left and a retry asked for, the
///   job is delayed by [`Retry`] (the job's [`Backoff::delay_ms`] for `attempts` and `random`)
///   with `retry_at = now + delay`, or waiting if that delay is 0 (`retry_at = now`); else it is
///   dead.
/// - release puts an active job back to waiting without counting the attempt (graceful
///   worker shutdown).
/// - Completed and dead jobs are trimmed by [`JobRetention`] whenever a job enters that state
///   (those finished more than the max age before now, then the oldest beyond the count); a
///   trimmed job's record is gone (its id may be enqueued again).
/// - Stats counters: `completed_total`, `failed_total` and per-minute counts move with every
///   completion and failed attempt.
/// - Schedules: [`JobStore::fire_schedule`] is a compare-and-set on the schedule's next tick:
///   of many nodes firing the same tick, exactly one enqueues its job (under the rules of
///   enqueue: an existing id or a held unique key stores nothing, the tick still counts).
/// - Times come from the engine's clock.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Stores `jobs` (at most 1000) in order, each queue's part atomically (see the contract).
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>>;

    /// Leases up to `tokens.len()` jobs from `queues`, one token each; `lease` overrides the
    /// jobs' own lease. `retention` bounds the dead set if expired leases kill jobs.
    async fn fetch(
        &self,
        queues: &[QueueName],
        tokens: &[LeaseToken],
        lease: Option<Duration>,
        retention: &JobRetention,
    ) -> Result<Fetched> {
        self.fetch_of_types(queues, &[], tokens, lease, retention).await
    }

    /// [`JobStore::fetch`] of the jobs whose type is one of `types` (all when empty): in each
    /// queue, the first [`MAX_TYPE_SCAN`] waiting jobs in fetch order are looked at and the
    /// matching ones leased in that order; the others stay waiting, where they were.
    async fn fetch_of_types(
        &self,
        queues: &[QueueName],
        types: &[JobType],
        tokens: &[LeaseToken],
        lease: Option<Duration>,
        retention: &JobRetention,
    ) -> Result<Fetched>;

    /// Completes an active job with an optional `result` (JSON text).
    async fn complete(
        &self,
        id: &JobId,
        token: &LeaseToken,
        result: Option<&[u8]>,
        retention: &JobRetention,
    ) -> Result<()>;

    /// Completes several active jobs (at most 1000) in one step, each exactly as
    /// [`JobStore::complete`] would and answered on its own (in order); the outer error is the
    /// engine's. The default completes them one by one.
    async fn complete_many(&self, completions: &[Completion], retention: &JobRetention) -> Result<Vec<Result<()>>> {
        let mut answers = Vec::with_capacity(completions.len());
        for c in completions {
            match self.complete(&c.id, &c.token, c.result.as_deref(), retention).await {
                Err(e @ (Error::Unavailable(_) | Error::Internal(_))) => return Err(e),
                answer => answers.push(answer),
            }
        }
        Ok(answers)
    }

    /// Fails the current attempt of an active job.
    async fn fail(
        &self,
        id: &JobId,
        token: &LeaseToken,
        error: &str,
        retry: Retry,
        random: f64,
        retention: &JobRetention,
    ) -> Result<FailOutcome>;

    /// Extends the lease to `lease` (or the job's own lease) from now; the new end.
    async fn heartbeat(&self, id: &JobId, token: &LeaseToken, lease: Option<Duration>) -> Result<Timestamp>;

    /// Records progress (JSON text) on an active job.
    async fn progress(&self, id: &JobId, token: &LeaseToken, progress: &[u8]) -> Result<()>;

    /// Puts an active job back to waiting without counting the attempt.
    async fn release(&self, id: &JobId, token: &LeaseToken) -> Result<()>;

    /// The record of `id`.
    async fn get(&self, id: &JobId) -> Result<Option<Job>>;

    /// Removes a job that is not active (cancel when pending, delete when finished); the state
    /// it was in, `None` if there was no such job. An active job is [`Error::Conflict`].
    async fn remove(&self, id: &JobId) -> Result<Option<JobState>>;

    /// Removes the pending jobs of `queue` holding any of `unique_keys`; their ids. Active
    /// holders are left alone.
    async fn cancel_unique(&self, queue: &QueueName, unique_keys: &[String]) -> Result<Vec<JobId>>;

    /// [`cancel_unique`](Self::cancel_unique) for every unique key of `queue` that starts with
    /// `prefix` (e.g. all reminders of one conversation), in one atomic step. Cost is
    /// proportional to the queue's jobs holding unique keys.
    async fn cancel_unique_prefix(&self, queue: &QueueName, prefix: &str) -> Result<Vec<JobId>>;

    /// Moves a dead job back to waiting with its attempts reset to 0 (errors kept); it holds its
    /// unique key again. [`Error::NotFound`] / [`Error::Conflict`] when missing / not dead, or
    /// Conflict when another pending or active job of the queue now holds its unique key.
    async fn retry_dead(&self, id: &JobId) -> Result<()>;

    /// Jobs of `queue` in `state`: waiting in fetch order, delayed by due time, active by lease
    /// end, completed and dead newest first; `offset` and `limit` page.
    async fn list(&self, queue: &QueueName, state: JobState, offset: u64, limit: usize) -> Result<Vec<Job>>;

    /// Counts of `queue` (due delayed jobs and expired leases are settled first, as by fetch;
    /// a paused queue is not settled).
    async fn counts(&self, queue: &QueueName, retention: &JobRetention) -> Result<QueueCounts>;

    /// Every queue ever enqueued to or paused (and not forgotten), by name.
    async fn queues(&self) -> Result<Vec<QueueName>>;

    /// Pauses or resumes fetching from `queue`.
    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()>;

    /// Stores `schedule` (replacing one of that name, whose `last_fired_at` is kept) with its
    /// next tick; `true` if new.
    async fn put_schedule(&self, schedule: &Schedule, next_fire_at: Option<Timestamp>) -> Result<bool>;

    /// The schedule `name`.
    async fn get_schedule(&self, name: &ScheduleName) -> Result<Option<ScheduleState>>;

    /// Removes the schedule `name`; `true` if it existed.
    async fn delete_schedule(&self, name: &ScheduleName) -> Result<bool>;

    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<ScheduleState>>;

    /// The engine clock and the schedules whose next tick is at or before it (at most `limit`,
    /// earliest tick first).
    async fn due_schedules(&self, limit: usize) -> Result<(Timestamp, Vec<ScheduleState>)>;

    /// If the schedule's next tick is still `tick`: enqueues `job`, moves the next tick to
    /// `next` and records `tick` as fired, atomically; `true` then. `false` if another node
    /// fired it first (or the schedule changed or is gone).
    async fn fire_schedule(
        &self,
        name: &ScheduleName,
        tick: Timestamp,
        next: Option<Timestamp>,
        job: &NewJob,
    ) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_schedules() {
        let exp = Backoff::Exponential { base_ms: 1000, max_ms: 10_000, jitter: false };
        let delays: Vec<u64> = (1..=6).map(|n| exp.delay_ms(n, 0.5)).collect();
        assert_eq!(delays, [1000, 2000, 4000, 8000, 10_000, 10_000]);
        let jittered = Backoff::Exponential { base_ms: 1000, max_ms: 10_000, jitter: true };
        assert_eq!(jittered.delay_ms(3, 0.0), 2000);
        assert_eq!(jittered.delay_ms(3, 0.999_999), 3999);
        assert_eq!(Backoff::Fixed { delay_ms: 250 }.delay_ms(7, 0.3), 250);
        let poly = Backoff::Polynomial { base_ms: 10, exponent: 2, max_ms: 1000 };
        assert_eq!((1..=5).map(|n| poly.delay_ms(n, 0.0)).collect::<Vec<_>>(), [10, 40, 90, 160, 250]);
        assert_eq!(poly.delay_ms(100, 0.0), 1000);
    }

    #[test]
    fn backoff_round_trips_its_stored_form() {
        for b in [
            Backoff::default(),
            Backoff::Fixed { delay_ms: 5 },
            Backoff::Polynomial { base_ms: 1, exponent: 4, max_ms: 99 },
        ] {
            assert_eq!(Backoff::decode(&b.encode()).unwrap(), b);
        }
        assert!(Backoff::decode("x:1").is_err());
        assert!(Backoff::Polynomial { base_ms: 1, exponent: 9, max_ms: 2 }.validate().is_err());
        assert!(Backoff::Fixed { delay_ms: MAX_BACKOFF_MS + 1 }.validate().is_err());
    }

    #[test]
    fn states_parse() {
        for s in JobState::ALL {
            assert_eq!(JobState::parse(s.as_str()).unwrap(), s);
        }
        assert!(JobState::parse("finished").is_err());
    }
}
