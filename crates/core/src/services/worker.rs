//! [`Worker`]: library job handlers per job type with a concurrency, automatic lease
//! heartbeats and graceful shutdown.
//!
//! ```no_run
//! # async fn demo(sb: switchboard_core::Switchboard) -> switchboard_core::Result<()> {
//! use switchboard_core::{QueueName, WorkerOptions};
//! let options = WorkerOptions::new(vec![QueueName::new("emails")?]);
//! let worker = sb
//!     .jobs()
//!     .worker(options)
//!     .handle("email.send", |job| async move {
//!         let to: String = job.payload()?;
//!         println!("sending to {to}");
//!         Ok(None)
//!     })?
//!     .start()?;
//! // ... on shutdown: stop fetching, let running jobs finish (or give their leases back).
//! worker.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

use super::jobs::Jobs;
use crate::error::{Error, Result};
use crate::ids::{JobId, JobType, LeaseToken, QueueName};
use crate::jobs::{Completion, Job, LeasedJob, Retry};

/// Most concurrent jobs of one worker.
pub const MAX_CONCURRENCY: usize = 1000;

/// Why a handler's attempt failed and how to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFailure {
    /// Recorded on the job.
    pub message: String,
    /// Whether and when to try again.
    pub retry: Retry,
}

impl JobFailure {
    /// Retry after the job's backoff (while attempts are left).
    pub fn retry(message: impl Display) -> Self {
        JobFailure { message: message.to_string(), retry: Retry::Backoff }
    }

    /// Retry after `delay` (while attempts are left).
    pub fn retry_in(message: impl Display, delay: Duration) -> Self {
        JobFailure { message: message.to_string(), retry: Retry::After(delay) }
    }

    /// Do not retry: the job is dead.
    pub fn permanent(message: impl Display) -> Self {
        JobFailure { message: message.to_string(), retry: Retry::Never }
    }
}

/// Any displayable error fails the attempt with a retry (so `?` works in handlers).
impl<E: Display> From<E> for JobFailure {
    fn from(e: E) -> Self {
        JobFailure::retry(e)
    }
}

/// What a handler returns: an optional result stored on the completed job, or a failure.
pub type JobOutcome = std::result::Result<Option<Value>, JobFailure>;

type HandlerFuture = Pin<Box<dyn Future<Output = JobOutcome> + Send>>;
type Handler = Arc<dyn Fn(JobContext) -> HandlerFuture + Send + Sync>;

/// One leased job as a handler sees it.
pub struct JobContext {
    job: Job,
    token: LeaseToken,
    jobs: Jobs,
}

impl std::fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the lease token: it is the worker's secret.
        f.debug_struct("JobContext")
            .field("job_id", &self.job.id)
            .field("attempt", &self.job.attempts)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The job record (attempts count this attempt).
    pub fn job(&self) -> &Job {
        &self.job
    }

    /// The payload as `T`; a payload that does not fit fails the job for good.
    pub fn payload<T: DeserializeOwned>(&self) -> std::result::Result<T, JobFailure> {
        serde_json::from_slice(&self.job.payload).map_err(|e| JobFailure::permanent(format!("bad payload: {e}")))
    }

    /// Reports progress (visible on the job record).
    pub async fn progress(&self, progress: &Value) -> Result<()> {
        self.jobs.progress(&self.job.id, &self.token, progress).await
    }
}

/// How a [`Worker`] fetches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Queues, tried in this order on every fetch (1..=32).
    pub queues: Vec<QueueName>,
    /// Jobs run at once (1..=1000, default 10).
    pub concurrency: usize,
    /// Lease of fetched jobs (default: each job's own). Heartbeats renew it every third.
    pub lease: Option<Duration>,
    /// Long-poll wait of each fetch (default 5 s).
    pub fetch_wait: Duration,
    /// On shutdown, how long running jobs may take to finish before their leases are given
    /// back (default 30 s).
    pub shutdown_grace: Duration,
}

impl WorkerOptions {
    /// Defaults for `queues`.
    pub fn new(queues: Vec<QueueName>) -> Self {
        WorkerOptions {
            queues,
            concurrency: 10,
            lease: None,
            fetch_wait: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A set of job handlers fetching from some queues. Build with [`Jobs::worker`], add
/// handlers with [`Worker::handle`], then [`Worker::start`].
pub struct Worker {
    jobs: Jobs,
    options: WorkerOptions,
    handlers: HashMap<JobType, Handler>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<&str> = self.handlers.keys().map(JobType::as_str).collect();
        types.sort_unstable();
        f.debug_struct("Worker").field("options", &self.options).field("job_types", &types).finish_non_exhaustive()
    }
}

impl Jobs {
    /// A worker on this service.
    pub fn worker(&self, options: WorkerOptions) -> Worker {
        Worker { jobs: self.clone(), options, handlers: HashMap::new() }
    }
}

impl Worker {
    /// Runs `handler` for jobs of `job_type`. Jobs of a type without a handler fail (and are
    /// retried, perhaps by a worker that has one).
    pub fn handle<F, Fut>(mut self, job_type: &str, handler: F) -> Result<Self>
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobOutcome> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self.handlers.insert(JobType::new(job_type)?, handler);
        Ok(self)
    }

    /// Like [`Worker::handle`], with the payload read as `T` first; a payload that is not a `T`
    /// fails the job for good.
    pub fn handle_as<T, F, Fut>(self, job_type: &str, handler: F) -> Result<Self>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T, JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = JobOutcome> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.handle(job_type, move |job| {
            let handler = handler.clone();
            async move {
                let payload: T = job.payload()?;
                handler(payload, job).await
            }
        })
    }

    /// Starts fetching and running jobs on the node ([`crate::Switchboard::start`] first): the
    /// worker stops with [`WorkerHandle::shutdown`] or with the node, whose shutdown waits for it.
    pub fn start(self) -> Result<WorkerHandle> {
        let o = &self.options;
        if o.queues.is_empty() || o.queues.len() > super::MAX_FETCH_QUEUES {
            return Err(Error::invalid("queues", "must name 1..=32 queues"));
        }
        if !(1..=MAX_CONCURRENCY).contains(&o.concurrency) {
            return Err(Error::invalid("concurrency", format!("must be 1..={MAX_CONCURRENCY}")));
        }
        if o.fetch_wait > super::MAX_FETCH_WAIT {
            return Err(Error::invalid("fetch_wait", "must be at most 60 s"));
        }
        if let Some(lease) = o.lease {
            super::jobs::check_lease("lease", lease)?;
        }
        let node = self.jobs.node.clone();
        node.ensure_running()?;
        let (stop, stopped) = watch::channel(false);
        // The node's stop is this worker's stop too.
        let node_stop = node.stopping();
        let stop_on_node = stop.clone();
        node.spawn("jobs.worker.stop", async move {
            tokio::select! {
                () = node_stop.cancelled() => { let _ = stop_on_node.send(true); }
                () = stop_on_node.closed() => {}
            }
        })?;
        let task = node.spawn("jobs.worker", self.run(stopped))?;
        Ok(WorkerHandle { stop, task })
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.options.concurrency));
        let leases: Leases = Arc::default();
        // Completions go to one task that records them in batches: one engine call for all the
        // jobs finished meanwhile instead of one each.
        let (completed, batches) = mpsc::unbounded_channel();
        let completer = tokio::spawn(record_completions(self.jobs.clone(), batches));
        let handlers = Arc::new(self.handlers);
        let mut running = JoinSet::new();
        loop {
            while let Some(ended) = running.try_join_next() {
                if let Err(e) = ended {
                    tracing::error!(error = %e, "a job attempt task failed");
                }
            }
            let first = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stop.wait_for(|stopped| *stopped) => break,
            };
            let mut permits = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            let mut stop_wait = stop.clone();
            let stopping = async move {
                let _ = stop_wait.wait_for(|stopped| *stopped).await;
            };
            let fetched = self
                .jobs
                .fetch_until(&self.options.queues, permits.len(), self.options.fetch_wait, self.options.lease, stopping)
                .await;
            let fetched = match fetched {
                Ok(fetched) => fetched,
                Err(e) => {
                    tracing::warn!(error = %e, "worker fetch failed; retrying in 1 s");
                    drop(permits);
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.wait_for(|stopped| *stopped) => break,
                    }
                    continue;
                }
            };
            for leased in fetched {
                let Some(permit) = permits.pop() else { break };
                let attempt = Attempt {
                    jobs: self.jobs.clone(),
                    handler: handlers.get(&leased.job.job_type).cloned(),
                    lease: self.options.lease.unwrap_or(leased.job.lease),
                    leases: leases.clone(),
                    completed: completed.clone(),
                };
                // The permit goes with the attempt and then with its completion: it is freed
                // once the completion is recorded, so unrecorded completions never pile up past
                // the concurrency (nor wait while their leases run out).
                // One span per job attempt.
                let span = tracing::info_span!(
                    "job",
                    job.id = %leased.job.id,
                    job.type = %leased.job.job_type,
                    job.attempt = leased.job.attempts,
                    queue.name = %leased.job.queue,
                );
                running.spawn(attempt.run(leased, permit).instrument(span));
            }
        }
        // Stop fetching; let running jobs finish within the grace, then give back the rest.
        let drained =
            tokio::time::timeout(self.options.shutdown_grace, async { while running.join_next().await.is_some() {} })
                .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
            let held: Vec<(JobId, LeaseToken)> =
                leases.lock().unwrap_or_else(PoisonError::into_inner).drain().collect();
            for (id, token) in held {
                if let Err(e) = self.jobs.release(&id, &token).await {
                    tracing::warn!(job.id = %id, error = %e, "could not give a lease back at shutdown");
                }
            }
        }
        // Every attempt is over: record the last completions, then stop.
        drop(completed);
        if let Err(e) = completer.await {
            tracing::error!(error = %e, "the completion task failed");
        }
    }
}

/// Most completions recorded in one engine call (a fetch may lease as many).
const COMPLETION_BATCH: usize = crate::limits::MAX_BATCH;

/// A completion waiting to be recorded, with the concurrency slot it still holds.
type PendingCompletion = (Completion, OwnedSemaphorePermit);

/// Records completions as they come, each call taking every one queued meanwhile.
async fn record_completions(jobs: Jobs, mut queued: mpsc::UnboundedReceiver<PendingCompletion>) {
    let mut pending = Vec::with_capacity(COMPLETION_BATCH);
    while queued.recv_many(&mut pending, COMPLETION_BATCH).await > 0 {
        let batch: Vec<Completion> = pending.drain(..).map(|(completion, _slot)| completion).collect();
        // A short engine outage should not cost a whole batch of finished jobs another run:
        // try a few times (the leases hold meanwhile) before leaving them to run out.
        let mut recorded = jobs.complete_many(&batch).await;
        for pause_ms in [100, 400, 1600] {
            if !matches!(recorded, Err(Error::Unavailable(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            recorded = jobs.complete_many(&batch).await;
        }
        match recorded {
            Ok(answers) => {
                for (completion, answer) in batch.iter().zip(answers) {
                    if let Err(e) = answer {
                        // The lease was lost: the job runs again elsewhere (at least once).
                        tracing::warn!(job.id = %completion.id, error = %e, "could not record a completion");
                    }
                }
            }
            // Engine down: the leases run out and the jobs run again (at least once).
            Err(e) => tracing::warn!(jobs = batch.len(), error = %e, "could not record completions"),
        }
    }
}

/// The leases a worker holds, to give back if it must stop before its jobs finish.
type Leases = Arc<Mutex<HashMap<JobId, LeaseToken>>>;

/// One attempt of one leased job.
struct Attempt {
    jobs: Jobs,
    handler: Option<Handler>,
    lease: Duration,
    leases: Leases,
    completed: mpsc::UnboundedSender<PendingCompletion>,
}

/// Aborts the handler task when the attempt is dropped (e.g. aborted at shutdown).
struct AbortOnDrop(JoinHandle<JobOutcome>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Attempt {
    async fn run(self, leased: LeasedJob, slot: OwnedSemaphorePermit) {
        let LeasedJob { job, lease_token: token } = leased;
        let id = job.id.clone();
        let Some(handler) = self.handler.clone() else {
            let message = format!("no handler for job type {} on this worker", job.job_type);
            self.finish(&id, &token, Err(JobFailure::retry(message)), slot).await;
            return;
        };
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), token.clone());
        let ctx = JobContext { job, token: token.clone(), jobs: self.jobs.clone() };
        // Its own task: a panicking handler fails its job instead of the worker.
        // Called inside the task too, so a handler panicking before its first await is caught.
        let mut task = AbortOnDrop(tokio::spawn(async move { handler(ctx).await }));
        // The first beat a third of the lease from now (`interval`'s immediate first tick would
        // cost a timer round, ~1 ms, per job).
        let period = self.lease / 3;
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut beating = true;
        let outcome = loop {
            tokio::select! {
                joined = &mut task.0 => break joined,
                _ = heartbeat.tick(), if beating => {
                    match self.jobs.heartbeat(&id, &token, Some(self.lease)).await {
                        Ok(_) => {}
                        Err(e @ (Error::Conflict(_) | Error::NotFound(_))) => {
                            // The lease is lost (the job runs elsewhere): stop renewing; the
                            // handler's outcome will be refused.
                            tracing::warn!(job.id = %id, error = %e, "lease lost while running");
                            beating = false;
                        }
                        Err(e) => tracing::warn!(job.id = %id, error = %e, "lease heartbeat failed"),
                    }
                }
            }
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) if e.is_panic() => Err(JobFailure::retry("the handler panicked")),
            Err(_) => Err(JobFailure::retry("the handler was cancelled")),
        };
        self.finish(&id, &token, outcome, slot).await;
        self.leases.lock().unwrap_or_else(PoisonError::into_inner).remove(&id);
    }

    async fn finish(&self, id: &JobId, token: &LeaseToken, outcome: JobOutcome, slot: OwnedSemaphorePermit) {
        let done = match outcome {
            Ok(result) => match self.jobs.completion(id.clone(), token.clone(), result.as_ref()) {
                Ok(completion) => {
                    // Only fails once the worker is gone, and then nothing can be recorded.
                    let _ = self.completed.send((completion, slot));
                    Ok(())
                }
                Err(e) => {
                    let message = format!("bad result: {e}");
                    self.jobs.fail(id, token, &message, Retry::Never).await.map(|_| ())
                }
            },
            Err(failure) => self.jobs.fail(id, token, &failure.message, failure.retry).await.map(|_| ()),
        };
        if let Err(e) = done {
            // Lost lease (the job runs again elsewhere) or engine down (the lease runs out and
            // the job runs again): at-least-once either way.
            tracing::warn!(job.id = %id, error = %e, "could not record the job's outcome");
        }
    }
}

/// A running [`Worker`]. Keep it: dropping it stops the worker (as [`WorkerHandle::shutdown`]
/// does, without waiting).
#[must_use = "dropping the handle stops the worker"]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle").field("finished", &self.task.is_finished()).finish_non_exhaustive()
    }
}

impl WorkerHandle {
    /// Stops fetching, waits for running jobs up to the grace, gives back the leases of those
    /// still running, and returns when the worker is gone.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "worker task failed");
        }
    }
}
