//! [`Jobs`]: job queues with JSON payloads, defaults, validation, long-poll fetch, metrics and
//! schedules.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;

use super::observe;
use crate::config::JobsConfig;
use crate::error::{Error, Result};
use crate::ids::{JobId, JobType, LeaseToken, QueueName, ScheduleName, validate_id};
use crate::jobs::{
    Backoff, Completion, Due, Enqueued, FailOutcome, Job, JobError, JobState, JobStore, LeasedJob, MAX_ERROR_BYTES,
    MAX_PRIORITY, MIN_PRIORITY, NewJob, QueueCounts, Retry, Schedule, ScheduleSpec, ScheduleState,
};
use crate::lifecycle::Lifecycle;
use crate::limits::{MAX_BATCH, MAX_JOB_PAYLOAD_BYTES, MAX_LIST_OFFSET};
use crate::time::Timestamp;

/// Most attempts a job may have.
pub const MAX_ATTEMPTS: u32 = 1000;
/// Shortest lease (100 ms) and longest (1 h).
pub const MIN_LEASE: Duration = Duration::from_millis(100);
/// Longest lease.
pub const MAX_LEASE: Duration = Duration::from_secs(3600);
/// Longest delay before a job is due (365 d).
pub const MAX_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest unique key.
pub const MAX_UNIQUE_KEY_BYTES: usize = 256;
/// Most jobs one fetch may lease.
pub const MAX_FETCH: usize = 1000;
/// Longest long-poll.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(60);
/// Most queues one fetch may name.
pub const MAX_FETCH_QUEUES: usize = 32;
/// Shortest every-N schedule period.
pub const MIN_SCHEDULE_EVERY: Duration = Duration::from_secs(1);

/// A job to enqueue. Build it with [`EnqueueJob::new`] and set what differs from the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct EnqueueJob {
    /// The queue.
    pub queue: QueueName,
    /// The job type.
    pub job_type: JobType,
    /// The payload (at most 512 KiB of JSON).
    pub payload: Value,
    /// -1000..=1000, higher first (default 0).
    pub priority: i32,
    /// When it becomes due (default now).
    pub due: Due,
    /// Attempts (default `jobs.default_max_attempts`, 25).
    pub max_attempts: Option<u32>,
    /// Backoff (default exponential 1 s .. 1 h with jitter).
    pub backoff: Option<Backoff>,
    /// Lease (default `jobs.default_lease_seconds`, 30 s).
    pub lease: Option<Duration>,
    /// Dedup key while pending or active.
    pub unique_key: Option<String>,
    /// The id (default: generated); enqueue is idempotent by id.
    pub job_id: Option<JobId>,
}

impl EnqueueJob {
    /// A job whose payload is `payload` as JSON (read it back with
    /// [`JobContext::payload`](crate::JobContext::payload) or a
    /// [`Worker::handle_as`](crate::Worker::handle_as) handler).
    pub fn with_payload(queue: QueueName, job_type: JobType, payload: &impl Serialize) -> Result<Self> {
        let payload = serde_json::to_value(payload).map_err(|e| Error::invalid("payload", e))?;
        Ok(EnqueueJob::new(queue, job_type, payload))
    }

    /// A job of `job_type` on `queue` with `payload` and every default.
    pub fn new(queue: QueueName, job_type: JobType, payload: Value) -> Self {
        EnqueueJob {
            queue,
            job_type,
            payload,
            priority: 0,
            due: Due::Now,
            max_attempts: None,
            backoff: None,
            lease: None,
            unique_key: None,
            job_id: None,
        }
    }
}

/// A job record with JSON payload, progress and result, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobView {
    /// Id.
    pub id: JobId,
    /// Queue.
    pub queue: QueueName,
    /// Type.
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Payload.
    pub payload: Value,
    /// Priority (higher first).
    pub priority: i32,
    /// State.
    pub state: JobState,
    /// Attempts started.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Backoff.
    pub backoff: Backoff,
    /// Default lease, ms.
    pub lease_ms: u64,
    /// Dedup key.
    pub unique_key: Option<String>,
    /// Enqueued at.
    pub created_at: Timestamp,
    /// Due at.
    pub run_at: Timestamp,
    /// Latest attempt started at.
    pub started_at: Option<Timestamp>,
    /// Completed or died at.
    pub finished_at: Option<Timestamp>,
    /// Current lease ends at.
    pub lease_expires_at: Option<Timestamp>,
    /// Latest progress.
    pub progress: Option<Value>,
    /// Result.
    pub result: Option<Value>,
    /// Newest errors, oldest first.
    pub errors: Vec<JobError>,
}

impl JobView {
    /// The view of `job` (unparseable stored JSON shows as a string, never an error).
    pub fn of(job: &Job) -> Self {
        JobView {
            id: job.id.clone(),
            queue: job.queue.clone(),
            job_type: job.job_type.clone(),
            payload: json_or_string(&job.payload),
            priority: job.priority,
            state: job.state,
            attempts: job.attempts,
            max_attempts: job.max_attempts,
            backoff: job.backoff,
            lease_ms: u64::try_from(job.lease.as_millis()).unwrap_or(u64::MAX),
            unique_key: job.unique_key.clone(),
            created_at: job.created_at,
            run_at: job.run_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            lease_expires_at: job.lease_expires_at,
            progress: job.progress.as_deref().map(json_or_string),
            result: job.result.as_deref().map(json_or_string),
            errors: job.errors.clone(),
        }
    }
}

fn json_or_string(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// Counts and throughput of one queue.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    /// The queue.
    pub queue: QueueName,
    /// Due and waiting for a worker.
    pub waiting: u64,
    /// Not due yet (delayed, or waiting for a retry).
    pub delayed: u64,
    /// Leased by workers.
    pub active: u64,
    /// Completed records kept.
    pub completed: u64,
    /// Failed attempts since the queue was first used (errors and expired leases).
    pub failed: u64,
    /// Dead records kept.
    pub dead: u64,
    /// Whether fetches skip the queue.
    pub paused: bool,
    /// Jobs completed since the queue was first used.
    pub processed: u64,
    /// Completions over the last 60 s (the previous minute weighted by what of it lies in
    /// the window, plus this minute).
    pub completed_per_minute: u64,
    /// Failed attempts over the last 60 s, counted the same way.
    pub failed_per_minute: u64,
}

impl QueueStats {
    fn of(queue: QueueName, c: &QueueCounts) -> Self {
        // The share of the previous minute still inside the last 60 s.
        let into_minute = c.now_ms.rem_euclid(60_000) as f64 / 60_000.0;
        let window = |this: u64, last: u64| this + (last as f64 * (1.0 - into_minute)).round() as u64;
        QueueStats {
            queue,
            waiting: c.waiting,
            delayed: c.delayed,
            active: c.active,
            completed: c.completed,
            failed: c.failed_total,
            dead: c.dead,
            paused: c.paused,
            processed: c.completed_total,
            completed_per_minute: window(c.completed_this_minute, c.completed_last_minute),
            failed_per_minute: window(c.failed_this_minute, c.failed_last_minute),
        }
    }
}

/// A schedule to upsert.
#[derive(Debug, Clone, PartialEq)]
pub struct PutSchedule {
    /// When it fires.
    pub spec: ScheduleSpec,
    /// The jobs it makes (`due`, `unique_key` and `job_id` are ignored: each tick's job id is
    /// `<schedule name>@<tick ms>`).
    pub job: EnqueueJob,
}

/// A schedule as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    /// Name.
    pub name: ScheduleName,
    /// Cron expression (UTC), if it is one.
    pub cron: Option<String>,
    /// Period in ms, if it is an every-N schedule.
    pub every_ms: Option<u64>,
    /// Queue of its jobs.
    pub queue: QueueName,
    /// Type of its jobs.
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Payload of its jobs.
    pub payload: Value,
    /// Priority of its jobs.
    pub priority: i32,
    /// Attempts of its jobs.
    pub max_attempts: u32,
    /// Backoff of its jobs.
    pub backoff: Backoff,
    /// Lease of its jobs, ms.
    pub lease_ms: u64,
    /// Next tick.
    pub next_fire_at: Option<Timestamp>,
    /// Last tick fired.
    pub last_fired_at: Option<Timestamp>,
}

impl ScheduleView {
    /// The view of `state`.
    pub fn of(state: &ScheduleState) -> Self {
        let s = &state.schedule;
        let (cron, every_ms) = match &s.spec {
            ScheduleSpec::Cron(expr) => (Some(expr.clone()), None),
            ScheduleSpec::EveryMs(ms) => (None, Some(*ms)),
        };
        ScheduleView {
            name: s.name.clone(),
            cron,
            every_ms,
            queue: s.queue.clone(),
            job_type: s.job_type.clone(),
            payload: json_or_string(s.payload.as_bytes()),
            priority: s.priority,
            max_attempts: s.max_attempts,
            backoff: s.backoff,
            lease_ms: s.lease_ms,
            next_fire_at: state.next_fire_at,
            last_fired_at: state.last_fired_at,
        }
    }
}

/// The jobs service. Cheap to clone; clones share the wake-up signal of this node's
/// long-polls.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
    config: JobsConfig,
    /// Woken when this node enqueues, so its idle long-polls look again at once.
    enqueued: Arc<Notify>,
    /// The node its workers and schedule loop run on.
    pub(super) node: Lifecycle,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Jobs {
    /// Wraps `store`.
    /// The service over `store`; its workers and schedule loop run on `node`.
    pub fn new(store: Arc<dyn JobStore>, config: JobsConfig, node: Lifecycle) -> Self {
        Jobs { store, config, enqueued: Arc::new(Notify::new()), node }
    }

    /// The settings in force.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// Enqueues one job.
    pub async fn enqueue(&self, job: EnqueueJob) -> Result<Enqueued> {
        let mut done = self.enqueue_bulk(vec![job]).await?;
        done.pop().ok_or_else(|| Error::Internal("enqueue answered nothing".into()))
    }

    /// Enqueues up to 1000 jobs in order: atomically when they share one queue; across queues
    /// each queue's part is atomic (see [`JobStore`](crate::JobStore)).
    pub async fn enqueue_bulk(&self, jobs: Vec<EnqueueJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Err(Error::invalid("jobs", "must not be empty"));
        }
        if jobs.len() > MAX_BATCH {
            return Err(Error::invalid("jobs", format!("at most {MAX_BATCH} per call")));
        }
        let new: Vec<NewJob> = jobs.into_iter().map(|j| self.new_job(j)).collect::<Result<_>>()?;
        let done = observe("jobs", "enqueue", self.store.enqueue(&new)).await?;
        let mut created = 0;
        for (job, result) in new.iter().zip(&done) {
            if result.outcome == crate::jobs::EnqueueOutcome::Created {
                metrics::counter!("switchboard_jobs_enqueued_total", "queue" => job.queue.to_string()).increment(1);
                created += 1;
            }
        }
        self.wake(created);
        Ok(done)
    }

    /// Wakes up to `jobs` of this node's idle long-polls (one per new job, not all of them: the
    /// others would only find nothing); at least one of those each gets a job or looks again.
    fn wake(&self, jobs: usize) {
        for _ in 0..jobs.min(MAX_FETCH) {
            self.enqueued.notify_one();
        }
    }

    fn new_job(&self, j: EnqueueJob) -> Result<NewJob> {
        let payload = serde_json::to_vec(&j.payload).map_err(|e| Error::invalid("payload", e))?;
        if payload.len() > MAX_JOB_PAYLOAD_BYTES {
            return Err(Error::PayloadTooLarge(format!("payload: must be at most {MAX_JOB_PAYLOAD_BYTES} bytes")));
        }
        if !(MIN_PRIORITY..=MAX_PRIORITY).contains(&j.priority) {
            return Err(Error::invalid("priority", format!("must be {MIN_PRIORITY}..={MAX_PRIORITY}")));
        }
        if let Due::After(d) = j.due
            && d > MAX_DELAY
        {
            return Err(Error::invalid("delay_ms", format!("must be at most {} ms", MAX_DELAY.as_millis())));
        }
        if let Due::At(at) = j.due
            && Timestamp::now().millis_until(at) > MAX_DELAY.as_millis() as u64
        {
            return Err(Error::invalid("run_at", "must be within 365 days"));
        }
        let max_attempts = j.max_attempts.unwrap_or(self.config.default_max_attempts);
        if !(1..=MAX_ATTEMPTS).contains(&max_attempts) {
            return Err(Error::invalid("max_attempts", format!("must be 1..={MAX_ATTEMPTS}")));
        }
        let backoff = j.backoff.unwrap_or_default();
        backoff.validate()?;
        let lease = j.lease.unwrap_or(Duration::from_secs(self.config.default_lease_seconds));
        check_lease("lease_ms", lease)?;
        if let Some(key) = &j.unique_key {
            validate_id("unique_key", key, MAX_UNIQUE_KEY_BYTES, b"/")?;
        }
        Ok(NewJob {
            id: match j.job_id {
                Some(id) => id,
                None => JobId::generate()?,
            },
            queue: j.queue,
            job_type: j.job_type,
            payload,
            priority: j.priority,
            due: j.due,
            max_attempts,
            backoff,
            lease,
            unique_key: j.unique_key,
        })
    }

    /// Leases up to `max` jobs from `queues` (tried in order); waits up to `wait` for one to
    /// become available (a long-poll); `lease` overrides the jobs' own.
    pub async fn fetch(
        &self,
        queues: &[QueueName],
        max: usize,
        wait: Duration,
        lease: Option<Duration>,
    ) -> Result<Vec<LeasedJob>> {
        self.fetch_until(queues, max, wait, lease, std::future::pending()).await
    }

    /// [`Jobs::fetch`] that also stops waiting (between engine calls, so no lease is lost)
    /// when `stop` completes.
    pub async fn fetch_until(
        &self,
        queues: &[QueueName],
        max: usize,
        wait: Duration,
        lease: Option<Duration>,
        stop: impl Future<Output = ()>,
    ) -> Result<Vec<LeasedJob>> {
        self.fetch_of_types_until(queues, &[], max, wait, lease, stop).await
    }

    /// [`Jobs::fetch_until`] of the jobs whose type is one of `types` (at most 32; all when
    /// empty). See [`JobStore::fetch_of_types`] for which jobs a filtered fetch looks at.
    pub async fn fetch_of_types_until(
        &self,
        queues: &[QueueName],
        types: &[JobType],
        max: usize,
        wait: Duration,
        lease: Option<Duration>,
        stop: impl Future<Output = ()>,
    ) -> Result<Vec<LeasedJob>> {
        if types.len() > MAX_FETCH_QUEUES {
            return Err(Error::invalid("types", format!("must name at most {MAX_FETCH_QUEUES} types")));
        }
        if queues.is_empty() || queues.len() > MAX_FETCH_QUEUES {
            return Err(Error::invalid("queues", format!("must name 1..={MAX_FETCH_QUEUES} queues")));
        }
        if !(1..=MAX_FETCH).contains(&max) {
            return Err(Error::invalid("max_jobs", format!("must be 1..={MAX_FETCH}")));
        }
        if wait > MAX_FETCH_WAIT {
            return Err(Error::invalid("wait_ms", format!("must be at most {} ms", MAX_FETCH_WAIT.as_millis())));
        }
        if let Some(lease) = lease {
            check_lease("lease_ms", lease)?;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let retention = self.config.retention();
        tokio::pin!(stop);
        // Drawn once: a token is used only by the fetch that leases a job with it.
        let tokens: Vec<LeaseToken> = (0..max).map(|_| LeaseToken::generate()).collect::<Result<_>>()?;
        loop {
            // Registered before the engine call so an enqueue in between is not missed.
            let woken = self.enqueued.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let fetched =
                observe("jobs", "fetch", self.store.fetch_of_types(queues, types, &tokens, lease, &retention)).await?;
            if !fetched.jobs.is_empty() {
                metrics::counter!("switchboard_jobs_fetched_total").increment(fetched.jobs.len() as u64);
                return Ok(fetched.jobs);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let until_event = fetched
                .next_event_at
                .map(|at| Duration::from_millis(fetched.now.millis_until(at).max(1)))
                .unwrap_or(poll);
            let sleep = until_event.min(poll).min(deadline - now);
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(sleep) => {}
                () = &mut stop => return Ok(Vec::new()),
            }
        }
    }

    /// Completes a leased job with an optional result.
    pub async fn complete(&self, id: &JobId, token: &LeaseToken, result: Option<&Value>) -> Result<()> {
        let result = result.map(encode_small("result")).transpose()?;
        let retention = self.config.retention();
        observe("jobs", "complete", self.store.complete(id, token, result.as_deref(), &retention)).await?;
        metrics::counter!("switchboard_jobs_completed_total").increment(1);
        Ok(())
    }

    /// A validated [`Completion`] for [`Jobs::complete_many`].
    pub fn completion(&self, id: JobId, token: LeaseToken, result: Option<&Value>) -> Result<Completion> {
        Ok(Completion { id, token, result: result.map(encode_small("result")).transpose()? })
    }

    /// Completes up to 1000 leased jobs in one engine call, each answered on its own (in
    /// order): `Ok`, or the [`Jobs::complete`] error of that job.
    pub async fn complete_many(&self, completions: &[Completion]) -> Result<Vec<Result<()>>> {
        if completions.len() > MAX_BATCH {
            return Err(Error::invalid("jobs", format!("at most {MAX_BATCH} per call")));
        }
        let retention = self.config.retention();
        let answers = observe("jobs", "complete_many", self.store.complete_many(completions, &retention)).await?;
        let done = answers.iter().filter(|a| a.is_ok()).count();
        metrics::counter!("switchboard_jobs_completed_total").increment(done as u64);
        Ok(answers)
    }

    /// Fails the current attempt of a leased job.
    pub async fn fail(&self, id: &JobId, token: &LeaseToken, error: &str, retry: Retry) -> Result<FailOutcome> {
        if let Retry::After(d) = retry
            && d > MAX_DELAY
        {
            return Err(Error::invalid("retry_in_ms", format!("must be at most {} ms", MAX_DELAY.as_millis())));
        }
        // A little over the bound, so the store cuts it and marks the cut.
        let error = truncate(error, MAX_ERROR_BYTES + 4);
        let random = random_unit()?;
        let retention = self.config.retention();
        let outcome = observe("jobs", "fail", self.store.fail(id, token, error, retry, random, &retention)).await?;
        metrics::counter!("switchboard_jobs_failed_total", "dead" => if outcome.state == JobState::Dead { "true" } else { "false" })
            .increment(1);
        if outcome.state == JobState::Waiting {
            self.wake(1);
        }
        Ok(outcome)
    }

    /// Extends a lease to `lease` (default the job's) from now; the new end.
    pub async fn heartbeat(&self, id: &JobId, token: &LeaseToken, lease: Option<Duration>) -> Result<Timestamp> {
        if let Some(lease) = lease {
            check_lease("lease_ms", lease)?;
        }
        observe("jobs", "heartbeat", self.store.heartbeat(id, token, lease)).await
    }

    /// Records progress on a leased job.
    pub async fn progress(&self, id: &JobId, token: &LeaseToken, progress: &Value) -> Result<()> {
        let progress = encode_small("progress")(progress)?;
        observe("jobs", "progress", self.store.progress(id, token, &progress)).await
    }

    /// Gives a leased job back without counting the attempt.
    pub async fn release(&self, id: &JobId, token: &LeaseToken) -> Result<()> {
        observe("jobs", "release", self.store.release(id, token)).await?;
        self.wake(1);
        Ok(())
    }

    /// The record of `id`.
    pub async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        observe("jobs", "get", self.store.get(id)).await
    }

    /// Cancels a pending job or deletes a finished one; the state it was in.
    /// [`Error::NotFound`] if there is none, [`Error::Conflict`] if it is active.
    pub async fn remove(&self, id: &JobId) -> Result<JobState> {
        observe("jobs", "remove", self.store.remove(id))
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id} not found")))
    }

    /// Cancels the pending jobs of `queue` holding any of `unique_keys` (at most 1000); their
    /// ids.
    pub async fn cancel_unique(&self, queue: &QueueName, unique_keys: &[String]) -> Result<Vec<JobId>> {
        if unique_keys.is_empty() || unique_keys.len() > MAX_BATCH {
            return Err(Error::invalid("unique_keys", format!("must hold 1..={MAX_BATCH} keys")));
        }
        for key in unique_keys {
            validate_id("unique_keys", key, MAX_UNIQUE_KEY_BYTES, b"/")?;
        }
        observe("jobs", "cancel_unique", self.store.cancel_unique(queue, unique_keys)).await
    }

    /// Cancels the pending jobs of `queue` whose unique key starts with `prefix` (a unique key's
    /// shape, e.g. `reminder:conv-42:`); their ids.
    pub async fn cancel_unique_prefix(&self, queue: &QueueName, prefix: &str) -> Result<Vec<JobId>> {
        validate_id("unique_key_prefix", prefix, MAX_UNIQUE_KEY_BYTES, b"/")?;
        observe("jobs", "cancel_unique", self.store.cancel_unique_prefix(queue, prefix)).await
    }

    /// Moves a dead job back to waiting with fresh attempts.
    pub async fn retry_dead(&self, id: &JobId) -> Result<()> {
        observe("jobs", "retry", self.store.retry_dead(id)).await?;
        self.wake(1);
        Ok(())
    }

    /// Jobs of `queue` in `state`, paged (`offset` 0..=10^9, `limit` 1..=1000).
    pub async fn list(&self, queue: &QueueName, state: JobState, offset: u64, limit: usize) -> Result<Vec<Job>> {
        if !(1..=MAX_BATCH).contains(&limit) {
            return Err(Error::invalid("limit", format!("must be 1..={MAX_BATCH}")));
        }
        if offset > MAX_LIST_OFFSET {
            return Err(Error::invalid("offset", format!("must be at most {MAX_LIST_OFFSET}")));
        }
        observe("jobs", "list", self.store.list(queue, state, offset, limit)).await
    }

    /// Counts and throughput of `queue`.
    pub async fn stats(&self, queue: &QueueName) -> Result<QueueStats> {
        let counts = observe("jobs", "counts", self.store.counts(queue, &self.config.retention())).await?;
        Ok(QueueStats::of(queue.clone(), &counts))
    }

    /// Stats of every known queue.
    pub async fn queues(&self) -> Result<Vec<QueueStats>> {
        let names = observe("jobs", "queues", self.store.queues()).await?;
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            all.push(self.stats(&name).await?);
        }
        Ok(all)
    }

    /// Pauses (`true`) or resumes fetching from `queue`.
    pub async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        observe("jobs", "pause", self.store.set_paused(queue, paused)).await?;
        if !paused {
            self.enqueued.notify_waiters();
        }
        Ok(())
    }

    /// Creates or replaces the schedule `name`; `true` if it is new. An unchanged timing keeps
    /// its next tick, so every node may upsert the same schedule at start-up.
    pub async fn put_schedule(&self, name: &ScheduleName, put: PutSchedule) -> Result<(bool, ScheduleState)> {
        let spec = check_spec(&put.spec)?;
        let job = self.new_job(put.job.clone())?;
        let schedule = Schedule {
            name: name.clone(),
            spec: put.spec,
            queue: job.queue,
            job_type: job.job_type,
            payload: String::from_utf8(job.payload).map_err(|e| Error::Internal(e.to_string()))?,
            priority: job.priority,
            max_attempts: job.max_attempts,
            backoff: job.backoff,
            lease_ms: u64::try_from(job.lease.as_millis()).unwrap_or(u64::MAX),
        };
        let existing = observe("jobs", "get_schedule", self.store.get_schedule(name)).await?;
        let last_fired_at = existing.as_ref().and_then(|old| old.last_fired_at);
        let next = match existing {
            Some(old) if old.schedule.spec == schedule.spec => old.next_fire_at,
            _ => spec.next_after(Timestamp::now()),
        };
        if next.is_none() {
            return Err(Error::invalid("cron", "has no future time"));
        }
        let created = observe("jobs", "put_schedule", self.store.put_schedule(&schedule, next)).await?;
        let state = ScheduleState { schedule, next_fire_at: next, last_fired_at };
        Ok((created, state))
    }

    /// The schedule `name`.
    pub async fn get_schedule(&self, name: &ScheduleName) -> Result<Option<ScheduleState>> {
        observe("jobs", "get_schedule", self.store.get_schedule(name)).await
    }

    /// Removes the schedule `name`; `true` if it existed.
    pub async fn delete_schedule(&self, name: &ScheduleName) -> Result<bool> {
        observe("jobs", "delete_schedule", self.store.delete_schedule(name)).await
    }

    /// Every schedule.
    pub async fn schedules(&self) -> Result<Vec<ScheduleState>> {
        observe("jobs", "list_schedules", self.store.list_schedules()).await
    }

    /// Fires every due schedule tick this node wins (each tick is fired by exactly one node);
    /// how many it fired. A schedule that missed several ticks (every node was down) fires
    /// once and continues from now.
    pub async fn fire_due_schedules(&self) -> Result<usize> {
        let (now, due) = observe("jobs", "due_schedules", self.store.due_schedules(100)).await?;
        let mut fired = 0;
        for state in due {
            let Some(tick) = state.next_fire_at else { continue };
            let s = &state.schedule;
            let Ok(spec) = check_spec(&s.spec) else { continue };
            let next = spec.next_tick(tick, now);
            let job = NewJob {
                id: tick_job_id(&s.name, tick)?,
                queue: s.queue.clone(),
                job_type: s.job_type.clone(),
                payload: s.payload.clone().into_bytes(),
                priority: s.priority,
                due: Due::Now,
                max_attempts: s.max_attempts,
                backoff: s.backoff,
                lease: Duration::from_millis(s.lease_ms),
                unique_key: None,
            };
            if observe("jobs", "fire_schedule", self.store.fire_schedule(&s.name, tick, next, &job)).await? {
                fired += 1;
                metrics::counter!("switchboard_jobs_schedule_fired_total").increment(1);
            }
        }
        if fired > 0 {
            self.wake(fired);
        }
        Ok(fired)
    }

    /// Fires due schedules every `jobs.schedule_interval_ms` until the node stops; the node
    /// runs it ([`crate::Switchboard::start`]). Every node runs it: each tick still fires once.
    pub(crate) async fn run_schedules(self) {
        let stop = self.node.stopping();
        let mut ticker = tokio::time::interval(Duration::from_millis(self.config.schedule_interval_ms));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            if let Err(e) = self.fire_due_schedules().await {
                tracing::warn!(error = %e, "firing due schedules failed");
            }
        }
    }
}

/// The id of a schedule tick's job: `<name>@<tick ms>`; a name too long for that keeps its
/// first 90 bytes and adds a hash of the whole, so two names never share tick ids.
fn tick_job_id(name: &ScheduleName, tick: Timestamp) -> Result<JobId> {
    let suffix = format!("@{}", tick.as_millis());
    let name = name.as_str();
    if name.len() + suffix.len() <= crate::limits::MAX_ID_BYTES {
        return JobId::new(format!("{name}{suffix}"));
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    JobId::new(format!("{}.{hash:016x}{suffix}", truncate(name, 90)))
}

pub(super) fn check_lease(field: &str, lease: Duration) -> Result<()> {
    if lease < MIN_LEASE || lease > MAX_LEASE {
        return Err(Error::invalid(field, format!("must be {}..={} ms", MIN_LEASE.as_millis(), MAX_LEASE.as_millis())));
    }
    Ok(())
}

/// Results and progress share the payload bound.
fn encode_small(field: &'static str) -> impl Fn(&Value) -> Result<Vec<u8>> {
    move |value| {
        let bytes = serde_json::to_vec(value).map_err(|e| Error::invalid(field, e))?;
        if bytes.len() > MAX_JOB_PAYLOAD_BYTES {
            return Err(Error::PayloadTooLarge(format!("{field}: must be at most {MAX_JOB_PAYLOAD_BYTES} bytes")));
        }
        Ok(bytes)
    }
}

/// `s` cut to at most `max` bytes at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A uniform random number in `[0, 1)` for backoff jitter.
fn random_unit() -> Result<f64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok((u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64)
}

/// A 5-field (Unix) cron expression with its day-of-week numbers moved to the `cron` crate's
/// numbering: Unix counts 0 (or 7) = Sunday .. 6 = Saturday, the crate 1 = Sunday .. 7 =
/// Saturday. Names (`MON`) are left as they are.
fn unix_day_of_week(expr: &str) -> String {
    let mut fields: Vec<String> = expr.split_whitespace().map(str::to_owned).collect();
    let Some(dow) = fields.get_mut(4) else { return expr.to_owned() };
    let shift = |n: &str| match n.parse::<u8>() {
        Ok(0 | 7) => "1".to_owned(),
        Ok(d) => (d + 1).to_string(),
        Err(_) => n.to_owned(),
    };
    let items: Vec<String> = dow
        .split(',')
        .flat_map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((range, step)) => (range, format!("/{step}")),
                None => (item, String::new()),
            };
            match range.split_once('-') {
                // A range ending on Sunday (`5-7`) becomes Friday-Saturday plus Sunday.
                Some((from, "7")) => vec![format!("{}-7{step}", shift(from)), "1".to_owned()],
                Some((from, to)) => vec![format!("{}-{}{step}", shift(from), shift(to))],
                None => vec![format!("{}{step}", shift(range))],
            }
        })
        .collect();
    *dow = items.join(",");
    fields.join(" ")
}

/// A parsed schedule timing.
enum Timing {
    Cron(Box<cron::Schedule>),
    Every(u64),
}

impl Timing {
    /// The tick after `tick` once it fired at `now`: the first one after `now` (missed ticks are
    /// skipped, not fired late), kept on the period's grid for every-N schedules.
    fn next_tick(&self, tick: Timestamp, now: Timestamp) -> Option<Timestamp> {
        match self {
            Timing::Every(ms) => {
                let period = (*ms).max(1) as i64;
                let behind = now.as_millis().saturating_sub(tick.as_millis()).max(0);
                Some(Timestamp::from_millis(tick.as_millis().saturating_add((behind / period + 1) * period)))
            }
            Timing::Cron(_) => self.next_after(if now > tick { now } else { tick }),
        }
    }

    /// The first tick strictly after `after`.
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            Timing::Every(ms) => Some(Timestamp::from_millis(after.as_millis().saturating_add(*ms as i64))),
            Timing::Cron(schedule) => {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after.as_millis())?;
                schedule.after(&at).next().map(|t| Timestamp::from_millis(t.timestamp_millis()))
            }
        }
    }
}

/// Checks a schedule timing: cron with 5 fields (minute first) or 6/7 (seconds first), or an
/// every-N period of at least 1 s.
fn check_spec(spec: &ScheduleSpec) -> Result<Timing> {
    match spec {
        ScheduleSpec::EveryMs(ms) => {
            if *ms < MIN_SCHEDULE_EVERY.as_millis() as u64 || *ms > MAX_DELAY.as_millis() as u64 {
                return Err(Error::invalid("every_ms", "must be 1000 ms ..= 365 days"));
            }
            Ok(Timing::Every(*ms))
        }
        ScheduleSpec::Cron(expr) => {
            if expr.len() > 256 {
                return Err(Error::invalid("cron", "must be at most 256 bytes"));
            }
            let fields = expr.split_whitespace().count();
            let full = match fields {
                5 => format!("0 {}", unix_day_of_week(expr)),
                6 | 7 => expr.clone(),
                _ => {
                    return Err(Error::invalid(
                        "cron",
                        "must have 5 fields (min hour dom month dow) or 6-7 (seconds first)",
                    ));
                }
            };
            cron::Schedule::from_str(&full).map(|s| Timing::Cron(Box::new(s))).map_err(|e| Error::invalid("cron", e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_accepts_five_and_six_fields() {
        let five = check_spec(&ScheduleSpec::Cron("*/5 * * * *".into())).unwrap();
        let at = Timestamp::parse_rfc3339("2026-11-22T10:03:10Z").unwrap();
        assert_eq!(five.next_after(at), Timestamp::parse_rfc3339("2026-11-22T10:05:00Z"));
        let six = check_spec(&ScheduleSpec::Cron("30 * * * * *".into())).unwrap();
        assert_eq!(six.next_after(at), Timestamp::parse_rfc3339("2026-11-22T10:03:30Z"));
        assert!(check_spec(&ScheduleSpec::Cron("* *".into())).is_err());
        assert!(check_spec(&ScheduleSpec::Cron("61 * * * *".into())).is_err());
        assert!(check_spec(&ScheduleSpec::EveryMs(10)).is_err());
        let every = check_spec(&ScheduleSpec::EveryMs(1500)).unwrap();
        assert_eq!(every.next_after(Timestamp::from_millis(1000)), Some(Timestamp::from_millis(2500)));
        let t = Timestamp::from_millis;
        assert_eq!(every.next_tick(t(1000), t(1003)), Some(t(2500)), "a late fire keeps the grid");
        assert_eq!(every.next_tick(t(1000), t(5000)), Some(t(5500)), "missed ticks are skipped");
    }

    #[test]
    fn five_field_cron_counts_days_of_week_from_sunday_zero() {
        // 2026-11-22 is a Sunday.
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let sunday = at("2026-11-22T10:00:00Z");
        let next = |expr: &str| check_spec(&ScheduleSpec::Cron(expr.into())).unwrap().next_after(sunday);
        assert_eq!(next("0 9 * * 1-5"), Some(at("2026-11-23T09:00:00Z")), "weekdays start on Monday");
        assert_eq!(next("0 9 * * 0"), Some(at("2026-11-29T09:00:00Z")), "0 is Sunday");
        assert_eq!(next("0 9 * * 7"), Some(at("2026-11-29T09:00:00Z")), "7 is Sunday too");
        assert_eq!(next("0 9 * * 6"), Some(at("2026-11-28T09:00:00Z")), "6 is Saturday");
        assert_eq!(next("0 9 * * 5-7"), Some(at("2026-11-27T09:00:00Z")), "Friday to Sunday");
        assert_eq!(next("0 9 * * MON"), Some(at("2026-11-23T09:00:00Z")));
        assert_eq!(unix_day_of_week("0 9 * * */2"), "0 9 * * */2");
    }

    #[test]
    fn tick_ids_are_distinct_for_long_names() {
        let tick = Timestamp::from_millis(1_795_324_482_726);
        let short = ScheduleName::new("cleanup").unwrap();
        assert_eq!(tick_job_id(&short, tick).unwrap().as_str(), "cleanup@1795324482726");
        let a = ScheduleName::new(format!("{}a", "x".repeat(120))).unwrap();
        let b = ScheduleName::new(format!("{}b", "x".repeat(120))).unwrap();
        assert_ne!(tick_job_id(&a, tick).unwrap(), tick_job_id(&b, tick).unwrap());
    }

    #[test]
    fn throughput_weights_the_previous_minute() {
        let counts = QueueCounts {
            completed_this_minute: 10,
            completed_last_minute: 60,
            now_ms: 15_000,
            ..QueueCounts::default()
        };
        let stats = QueueStats::of(QueueName::new("q").unwrap(), &counts);
        assert_eq!(stats.completed_per_minute, 10 + 45);
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
        let r = random_unit().unwrap();
        assert!((0.0..1.0).contains(&r));
    }
}
