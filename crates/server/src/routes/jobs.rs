//! `/queues`, `/jobs`: enqueue (one or bulk), fetch with a long-poll, complete / fail /
//! heartbeat / progress / release under a lease token, job records, retry and removal, queue
//! stats and listings, pause/resume, cancel by unique key.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::{
    Backoff, Due, EnqueueJob, EnqueueOutcome, Enqueued, FailOutcome, JobId, JobState, JobType, JobView, LeaseToken,
    QueueName, QueueStats, Retry, Timestamp,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{JobPath, QueuePath};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path, Query};
use crate::state::AppState;

/// Default long-poll of a fetch.
const DEFAULT_FETCH_WAIT_MS: u64 = 5000;
/// Default page of a queue listing.
const DEFAULT_LIMIT: usize = 50;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(enqueue))
        .routes(routes!(enqueue_bulk))
        .routes(routes!(fetch))
        .routes(routes!(complete))
        .routes(routes!(complete_many))
        .routes(routes!(fail))
        .routes(routes!(heartbeat))
        .routes(routes!(progress))
        .routes(routes!(release))
        .routes(routes!(get_job, remove_job))
        .routes(routes!(retry_job))
        .routes(routes!(list_queues))
        .routes(routes!(get_queue))
        .routes(routes!(pause_queue))
        .routes(routes!(resume_queue))
        .routes(routes!(cancel_unique))
}

/// A job to enqueue.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueRequest {
    /// The job type (workers pick their handler by it), e.g. `email.send` or the built-in
    /// `webhook.deliver`, `notification.deliver`, `push.send`.
    #[serde(rename = "type")]
    job_type: JobType,
    /// The payload, any JSON up to 512 KiB (default `{}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    payload: Option<Value>,
    /// -1000..=1000, higher runs first; FIFO within a level (default 0).
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    priority: i32,
    /// Due this long from now, 0..=31536000000 ms (not with `run_at`).
    #[schema(minimum = 0, maximum = 31536000000_u64)]
    delay_ms: Option<u64>,
    /// Due at this time (not with `delay_ms`).
    run_at: Option<Timestamp>,
    /// Attempts before the job is dead, 1..=1000 (default 25).
    #[schema(minimum = 1, maximum = 1000)]
    max_attempts: Option<u32>,
    /// Delay between attempts (default exponential 1 s .. 1 h with jitter).
    backoff: Option<Backoff>,
    /// Lease of a fetch, 100..=3600000 ms (default 30 s).
    #[schema(minimum = 100, maximum = 3600000)]
    lease_ms: Option<u64>,
    /// While a pending or active job of this queue holds the key, enqueueing another with it
    /// returns that job instead.
    unique_key: Option<String>,
    /// The job's id; enqueueing an id that exists changes nothing (idempotent).
    job_id: Option<JobId>,
}

impl EnqueueRequest {
    fn into_job(self, queue: QueueName) -> Result<EnqueueJob, ApiError> {
        let due = match (self.delay_ms, self.run_at) {
            (Some(_), Some(_)) => return Err(ApiError::invalid("give either delay_ms or run_at, not both")),
            (Some(ms), None) => Due::After(Duration::from_millis(ms)),
            (None, Some(at)) => Due::At(at),
            (None, None) => Due::Now,
        };
        Ok(EnqueueJob {
            queue,
            job_type: self.job_type,
            payload: self.payload.unwrap_or_else(|| Value::Object(Default::default())),
            priority: self.priority,
            due,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            lease: self.lease_ms.map(Duration::from_millis),
            unique_key: self.unique_key,
            job_id: self.job_id,
        })
    }
}

/// Enqueue a job. 201 when a job was created; 200 when the `job_id` existed or a pending job
/// holds the `unique_key` (the answer names that job).
#[utoipa::path(
    post,
    path = "/queues/{queue}/jobs",
    tag = "jobs",
    params(QueuePath),
    request_body = EnqueueRequest,
    responses(
        (status = CREATED, description = "Created", body = Enqueued),
        (status = OK, description = "Existing id or held unique key: nothing changed", body = Enqueued),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, description = "Payload over 512 KiB", body = ErrorBody),
    )
)]
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    Path(QueuePath { queue }): Path<QueuePath>,
    Json(request): Json<EnqueueRequest>,
) -> Result<(StatusCode, Json<Enqueued>), ApiError> {
    let job = request.into_job(queue)?;
    let done = state.sb().jobs().enqueue(job).await?;
    let status = if done.outcome == EnqueueOutcome::Created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(done)))
}

/// Jobs to enqueue together.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    /// 1..=1000 jobs, stored atomically in this order.
    jobs: Vec<EnqueueRequest>,
}

/// The answer per job, in order.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BulkAnswer {
    /// One per job of the request.
    jobs: Vec<Enqueued>,
}

/// Enqueue up to 1000 jobs atomically (all or none), in order.
#[utoipa::path(
    post,
    path = "/queues/{queue}/jobs/bulk",
    tag = "jobs",
    params(QueuePath),
    request_body = BulkRequest,
    responses(
        (status = OK, body = BulkAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody),
    )
)]
pub(crate) async fn enqueue_bulk(
    State(state): State<AppState>,
    Path(QueuePath { queue }): Path<QueuePath>,
    Json(request): Json<BulkRequest>,
) -> Result<Json<BulkAnswer>, ApiError> {
    let jobs = request.jobs.into_iter().map(|r| r.into_job(queue.clone())).collect::<Result<Vec<_>, _>>()?;
    Ok(Json(BulkAnswer { jobs: state.sb().jobs().enqueue_bulk(jobs).await? }))
}

/// What a worker asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FetchRequest {
    /// 1..=32 queues, tried in this order (a queue is drained before the next).
    queues: Vec<QueueName>,
    /// Only jobs of these types (at most 32; default every type). Jobs of other types stay
    /// waiting; a fetch looks at the first 1000 waiting jobs of each queue.
    #[serde(default)]
    types: Vec<JobType>,
    /// Most jobs to lease, 1..=1000 (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    max_jobs: Option<usize>,
    /// Long-poll: wait up to this long for a job, 0..=60000 ms (default 5000).
    #[schema(minimum = 0, maximum = 60000)]
    wait_ms: Option<u64>,
    /// Lease of these jobs, 100..=3600000 ms (default each job's own).
    #[schema(minimum = 100, maximum = 3600000)]
    lease_ms: Option<u64>,
}

/// A leased job: the record and the token that proves the lease.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LeasedJobView {
    /// The job.
    #[serde(flatten)]
    job: JobView,
    /// Send it back with complete, fail, heartbeat, progress or release.
    lease_token: LeaseToken,
}

/// The leased jobs (empty when none came within the wait).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FetchAnswer {
    /// Leased jobs, best first.
    jobs: Vec<LeasedJobView>,
}

/// Lease jobs from one or more queues, waiting (long-poll) until one is available or the wait
/// is over (or the node shuts down).
#[utoipa::path(
    post,
    path = "/queues/fetch",
    tag = "jobs",
    request_body = FetchRequest,
    responses((status = OK, body = FetchAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn fetch(
    State(state): State<AppState>,
    Json(request): Json<FetchRequest>,
) -> Result<Json<FetchAnswer>, ApiError> {
    let wait = Duration::from_millis(request.wait_ms.unwrap_or(DEFAULT_FETCH_WAIT_MS));
    let lease = request.lease_ms.map(Duration::from_millis);
    // A node shutting down answers its long-polls at once (empty) so the drain does not wait.
    let stopping = state.gateway().stopping();
    let max = request.max_jobs.unwrap_or(1);
    let jobs = state.sb().jobs();
    let leased =
        jobs.fetch_of_types_until(&request.queues, &request.types, max, wait, lease, stopping.cancelled()).await?;
    let jobs =
        leased.into_iter().map(|l| LeasedJobView { job: JobView::of(&l.job), lease_token: l.lease_token }).collect();
    Ok(Json(FetchAnswer { jobs }))
}

/// Completion of a leased job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteRequest {
    /// The fetch's token.
    lease_token: LeaseToken,
    /// Kept on the job record (JSON up to 512 KiB).
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
}

/// Complete a leased job. 409 when the lease was lost (it expired and the job was handed out
/// again, or it finished).
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/complete",
    tag = "jobs",
    params(JobPath),
    request_body = CompleteRequest,
    responses(
        (status = NO_CONTENT, description = "Completed"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "Lease lost", body = ErrorBody),
    )
)]
pub(crate) async fn complete(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
    Json(request): Json<CompleteRequest>,
) -> Result<StatusCode, ApiError> {
    state.sb().jobs().complete(&id, &request.lease_token, request.result.as_ref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One completion of a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteItem {
    /// The job.
    job_id: JobId,
    /// The fetch's token.
    lease_token: LeaseToken,
    /// Kept on the job record (JSON up to 512 KiB).
    #[schema(value_type = Option<Object>)]
    result: Option<Value>,
}

/// Completions of many leased jobs.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteManyRequest {
    /// 1..=1000 completions.
    jobs: Vec<CompleteItem>,
}

/// The outcome of one completion of a batch.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompleteOutcome {
    /// The job.
    job_id: JobId,
    /// `completed`, `not_found` or `conflict` (the lease was lost).
    status: &'static str,
}

/// The outcomes, in the order of the request.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CompleteManyAnswer {
    /// One per completion.
    jobs: Vec<CompleteOutcome>,
}

/// Complete up to 1000 leased jobs in one call (one engine step); each is answered on its own.
#[utoipa::path(
    post,
    path = "/jobs/complete",
    tag = "jobs",
    request_body = CompleteManyRequest,
    responses(
        (status = OK, body = CompleteManyAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = PAYLOAD_TOO_LARGE, body = ErrorBody),
    )
)]
pub(crate) async fn complete_many(
    State(state): State<AppState>,
    Json(request): Json<CompleteManyRequest>,
) -> Result<Json<CompleteManyAnswer>, ApiError> {
    if request.jobs.is_empty() {
        return Err(ApiError::invalid("jobs: must not be empty"));
    }
    let jobs = state.sb().jobs();
    let completions = request
        .jobs
        .into_iter()
        .map(|item| jobs.completion(item.job_id, item.lease_token, item.result.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let answers = jobs.complete_many(&completions).await?;
    let outcomes = completions
        .into_iter()
        .zip(answers)
        .map(|(c, answer)| {
            let status = match answer {
                Ok(()) => "completed",
                Err(switchboard_core::Error::NotFound(_)) => "not_found",
                Err(switchboard_core::Error::Conflict(_)) => "conflict",
                Err(e) => return Err(ApiError::from(e)),
            };
            Ok(CompleteOutcome { job_id: c.id, status })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(CompleteManyAnswer { jobs: outcomes }))
}

/// A failed attempt.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FailRequest {
    /// The fetch's token.
    lease_token: LeaseToken,
    /// What went wrong (kept on the record; cut at 2 KiB).
    error: String,
    /// Retry after this long instead of the job's backoff, 0..=31536000000 ms.
    #[schema(minimum = 0, maximum = 31536000000_u64)]
    retry_in_ms: Option<u64>,
    /// `false`: do not retry, the job is dead at once (default true).
    #[serde(default = "yes")]
    retry: bool,
}

fn yes() -> bool {
    true
}

/// Fail the current attempt: the job is retried after its backoff (or `retry_in_ms`) while
/// attempts are left, else it is dead.
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/fail",
    tag = "jobs",
    params(JobPath),
    request_body = FailRequest,
    responses(
        (status = OK, body = FailOutcome),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "Lease lost", body = ErrorBody),
    )
)]
pub(crate) async fn fail(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
    Json(request): Json<FailRequest>,
) -> Result<Json<FailOutcome>, ApiError> {
    let retry = match (request.retry, request.retry_in_ms) {
        (false, Some(_)) => return Err(ApiError::invalid("retry_in_ms: not with retry: false")),
        (false, None) => Retry::Never,
        (true, Some(ms)) => Retry::After(Duration::from_millis(ms)),
        (true, None) => Retry::Backoff,
    };
    Ok(Json(state.sb().jobs().fail(&id, &request.lease_token, &request.error, retry).await?))
}

/// A lease extension.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeartbeatRequest {
    /// The fetch's token.
    lease_token: LeaseToken,
    /// New lease from now, 100..=3600000 ms (default the job's).
    #[schema(minimum = 100, maximum = 3600000)]
    lease_ms: Option<u64>,
}

/// When the lease ends now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HeartbeatAnswer {
    /// The new end of the lease.
    lease_expires_at: Timestamp,
}

/// Extend the lease of a running job.
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/heartbeat",
    tag = "jobs",
    params(JobPath),
    request_body = HeartbeatRequest,
    responses(
        (status = OK, body = HeartbeatAnswer),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "Lease lost", body = ErrorBody),
    )
)]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
    Json(request): Json<HeartbeatRequest>,
) -> Result<Json<HeartbeatAnswer>, ApiError> {
    let lease = request.lease_ms.map(Duration::from_millis);
    let lease_expires_at = state.sb().jobs().heartbeat(&id, &request.lease_token, lease).await?;
    Ok(Json(HeartbeatAnswer { lease_expires_at }))
}

/// Progress of a running job.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProgressRequest {
    /// The fetch's token.
    lease_token: LeaseToken,
    /// Any JSON (e.g. a percentage), kept on the record.
    #[schema(value_type = Object)]
    progress: Value,
}

/// Record progress of a running job.
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/progress",
    tag = "jobs",
    params(JobPath),
    request_body = ProgressRequest,
    responses(
        (status = NO_CONTENT, description = "Recorded"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "Lease lost", body = ErrorBody),
    )
)]
pub(crate) async fn progress(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
    Json(request): Json<ProgressRequest>,
) -> Result<StatusCode, ApiError> {
    state.sb().jobs().progress(&id, &request.lease_token, &request.progress).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A lease to give back.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseRequest {
    /// The fetch's token.
    lease_token: LeaseToken,
}

/// Give a leased job back (it is waiting again; the attempt does not count), e.g. when a
/// worker shuts down.
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/release",
    tag = "jobs",
    params(JobPath),
    request_body = ReleaseRequest,
    responses(
        (status = NO_CONTENT, description = "Released"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "Lease lost", body = ErrorBody),
    )
)]
pub(crate) async fn release(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
    Json(request): Json<ReleaseRequest>,
) -> Result<StatusCode, ApiError> {
    state.sb().jobs().release(&id, &request.lease_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The record of a job: state, attempts, errors, progress, result and times.
#[utoipa::path(
    get,
    path = "/jobs/{job_id}",
    tag = "jobs",
    params(JobPath),
    responses(
        (status = OK, body = JobView),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
    )
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
) -> Result<Json<JobView>, ApiError> {
    match state.sb().jobs().get(&id).await? {
        Some(job) => Ok(Json(JobView::of(&job))),
        None => Err(ApiError::not_found("job not found")),
    }
}

/// What a removal removed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Removed {
    /// The state the job was in: `waiting`/`delayed` (cancelled), `completed`/`dead` (deleted).
    state: JobState,
}

/// Cancel a pending job or delete a finished (completed or dead) one. 409 for a running job.
#[utoipa::path(
    delete,
    path = "/jobs/{job_id}",
    tag = "jobs",
    params(JobPath),
    responses(
        (status = OK, body = Removed),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "The job is running", body = ErrorBody),
    )
)]
pub(crate) async fn remove_job(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
) -> Result<Json<Removed>, ApiError> {
    Ok(Json(Removed { state: state.sb().jobs().remove(&id).await? }))
}

/// Run a dead job again: waiting, with fresh attempts (its errors are kept).
#[utoipa::path(
    post,
    path = "/jobs/{job_id}/retry",
    tag = "jobs",
    params(JobPath),
    responses(
        (status = NO_CONTENT, description = "Waiting again"),
        (status = BAD_REQUEST, body = ErrorBody),
        (status = NOT_FOUND, body = ErrorBody),
        (status = CONFLICT, description = "The job is not dead", body = ErrorBody),
    )
)]
pub(crate) async fn retry_job(
    State(state): State<AppState>,
    Path(JobPath { job_id: id }): Path<JobPath>,
) -> Result<StatusCode, ApiError> {
    state.sb().jobs().retry_dead(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every queue's stats.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueList {
    /// By name.
    queues: Vec<QueueStats>,
}

/// Every queue used so far, with counts and throughput.
#[utoipa::path(
    get,
    path = "/queues",
    tag = "jobs",
    responses((status = OK, body = QueueList))
)]
pub(crate) async fn list_queues(State(state): State<AppState>) -> Result<Json<QueueList>, ApiError> {
    Ok(Json(QueueList { queues: state.sb().jobs().queues().await? }))
}

/// Which jobs of a queue to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct QueueQuery {
    /// List the jobs in this state: waiting (fetch order), delayed (by due time), active (by
    /// lease end), completed or dead (newest first).
    #[param(value_type = Option<JobState>)]
    state: Option<String>,
    /// Jobs to skip, 0..=1000000000.
    #[serde(default)]
    #[param(minimum = 0, maximum = 1000000000_u64)]
    offset: u64,
    /// Jobs to return, 1..=1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// A queue's stats and, with `state`, a page of its jobs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct QueueAnswer {
    /// Counts and throughput.
    stats: QueueStats,
    /// The page asked for with `state`.
    #[serde(skip_serializing_if = "Option::is_none")]
    jobs: Option<Vec<JobView>>,
}

/// A queue's counts and throughput; with `state`, a page of its jobs in that state.
#[utoipa::path(
    get,
    path = "/queues/{queue}",
    tag = "jobs",
    params(QueuePath, QueueQuery),
    responses((status = OK, body = QueueAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn get_queue(
    State(state): State<AppState>,
    Path(QueuePath { queue }): Path<QueuePath>,
    Query(query): Query<QueueQuery>,
) -> Result<Json<QueueAnswer>, ApiError> {
    let jobs = state.sb().jobs();
    let listed = match query.state.as_deref() {
        Some(s) => {
            let page =
                jobs.list(&queue, JobState::parse(s)?, query.offset, query.limit.unwrap_or(DEFAULT_LIMIT)).await?;
            Some(page.iter().map(JobView::of).collect())
        }
        None => None,
    };
    Ok(Json(QueueAnswer { stats: jobs.stats(&queue).await?, jobs: listed }))
}

/// Stop handing out jobs of a queue (enqueue still works; running jobs go on).
#[utoipa::path(
    post,
    path = "/queues/{queue}/pause",
    tag = "jobs",
    params(QueuePath),
    responses((status = NO_CONTENT, description = "Paused"), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn pause_queue(
    State(state): State<AppState>,
    Path(QueuePath { queue }): Path<QueuePath>,
) -> Result<StatusCode, ApiError> {
    state.sb().jobs().set_paused(&queue, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Hand out jobs of a paused queue again.
#[utoipa::path(
    post,
    path = "/queues/{queue}/resume",
    tag = "jobs",
    params(QueuePath),
    responses((status = NO_CONTENT, description = "Resumed"), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn resume_queue(
    State(state): State<AppState>,
    Path(QueuePath { queue }): Path<QueuePath>,
) -> Result<StatusCode, ApiError> {
    state.sb().jobs().set_paused(&queue, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unique keys whose pending jobs to cancel: a list, or a prefix (exactly one of the two).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelRequest {
    /// 1..=1000 keys.
    #[serde(default)]
    unique_keys: Option<Vec<String>>,
    /// Every unique key starting with this (e.g. `reminder:conv-42:`).
    #[serde(default)]
    unique_key_prefix: Option<String>,
}

/// The cancelled jobs.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CancelAnswer {
    /// Ids of the pending jobs removed (running holders are left alone).
    cancelled: Vec<JobId>,
}

/// Cancel the pending jobs of a queue holding any of these unique keys, or any unique key with
/// this prefix ("the vendor answered, cancel all reminders of the conversation").
#[utoipa::path(
    post,
    path = "/queues/{queue}/cancel",
    tag = "jobs",
    params(QueuePath),
    request_body = CancelRequest,
    responses((status = OK, body = CancelAnswer), (status = BAD_REQUEST, body = ErrorBody))
)]
pub(crate) async fn cancel_unique(
    State(state): State<AppState>,
    Path(QueuePath { queue }): Path<QueuePath>,
    Json(request): Json<CancelRequest>,
) -> Result<Json<CancelAnswer>, ApiError> {
    let jobs = state.sb().jobs();
    let cancelled = match (request.unique_keys, request.unique_key_prefix) {
        (Some(keys), None) => jobs.cancel_unique(&queue, &keys).await?,
        (None, Some(prefix)) => jobs.cancel_unique_prefix(&queue, &prefix).await?,
        _ => {
            return Err(ApiError::from(switchboard_core::Error::invalid(
                "unique_keys",
                "give unique_keys or unique_key_prefix, not both",
            )));
        }
    };
    Ok(Json(CancelAnswer { cancelled }))
}
