//! `/schedules`: cron and every-N schedules upserted by name; each tick enqueues one job,
//! exactly once across all nodes.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use switchboard_core::{Backoff, EnqueueJob, JobType, PutSchedule, QueueName, ScheduleSpec, ScheduleView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::SchedulePath;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Json, Path};
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_schedule, get_schedule, delete_schedule)).routes(routes!(list_schedules))
}

/// A schedule: exactly one of `cron` and `every_ms`, and the job each tick enqueues.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScheduleRequest {
    /// Cron expression in UTC: 5 fields (`min hour day-of-month month day-of-week`) or 6-7
    /// with seconds first.
    cron: Option<String>,
    /// Period, 1000..=31536000000 ms.
    #[schema(minimum = 1000, maximum = 31536000000_u64)]
    every_ms: Option<u64>,
    /// Queue of the jobs.
    queue: QueueName,
    /// Type of the jobs.
    #[serde(rename = "type")]
    job_type: JobType,
    /// Payload of the jobs (default `{}`).
    #[schema(value_type = Object)]
    payload: Option<Value>,
    /// Priority of the jobs, -1000..=1000 (default 0).
    #[serde(default)]
    #[schema(minimum = -1000, maximum = 1000)]
    priority: i32,
    /// Attempts of the jobs, 1..=1000 (default 25).
    #[schema(minimum = 1, maximum = 1000)]
    max_attempts: Option<u32>,
    /// Backoff of the jobs.
    backoff: Option<Backoff>,
    /// Lease of the jobs, 100..=3600000 ms (default 30 s).
    #[schema(minimum = 100, maximum = 3600000)]
    lease_ms: Option<u64>,
}

/// Create or replace a schedule. An unchanged timing keeps its next tick, so every node may
/// upsert the same schedule at start-up.
#[utoipa::path(
    put,
    path = "/schedules/{name}",
    tag = "jobs",
    params(SchedulePath),
    request_body = ScheduleRequest,
    responses(
        (status = CREATED, description = "Created", body = ScheduleView),
        (status = OK, description = "Replaced", body = ScheduleView),
        (status = BAD_REQUEST, body = ErrorBody),
    )
)]
pub(crate) async fn put_schedule(
    State(state): State<AppState>,
    Path(SchedulePath { name }): Path<SchedulePath>,
    Json(request): Json<ScheduleRequest>,
) -> Result<(StatusCode, Json<ScheduleView>), ApiError> {
    let spec = match (request.cron, request.every_ms) {
        (Some(cron), None) => ScheduleSpec::Cron(cron),
        (None, Some(ms)) => ScheduleSpec::EveryMs(ms),
        _ => return Err(ApiError::invalid("give exactly one of cron and every_ms")),
    };
    let mut job = EnqueueJob::new(
        request.queue,
        request.job_type,
        request.payload.unwrap_or_else(|| Value::Object(Default::default())),
    );
    job.priority = request.priority;
    job.max_attempts = request.max_attempts;
    job.backoff = request.backoff;
    job.lease = request.lease_ms.map(Duration::from_millis);
    let (created, stored) = state.sb().jobs().put_schedule(&name, PutSchedule { spec, job }).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(ScheduleView::of(&stored))))
}

/// A schedule with its next and last ticks.
#[utoipa::path(
    get,
    path = "/schedules/{name}",
    tag = "jobs",
    params(SchedulePath),
    responses((status = OK, body = ScheduleView), (status = BAD_REQUEST, body = ErrorBody), (status = NOT_FOUND, body = ErrorBody))
)]
pub(crate) async fn get_schedule(
    State(state): State<AppState>,
    Path(SchedulePath { name }): Path<SchedulePath>,
) -> Result<Json<ScheduleView>, ApiError> {
    match state.sb().jobs().get_schedule(&name).await? {
        Some(stored) => Ok(Json(ScheduleView::of(&stored))),
        None => Err(ApiError::not_found("schedule not found")),
    }
}

/// Remove a schedule (jobs it already enqueued stay).
#[utoipa::path(
    delete,
    path = "/schedules/{name}",
    tag = "jobs",
    params(SchedulePath),
    responses((status = NO_CONTENT, description = "Removed"), (status = BAD_REQUEST, body = ErrorBody), (status = NOT_FOUND, body = ErrorBody))
)]
pub(crate) async fn delete_schedule(
    State(state): State<AppState>,
    Path(SchedulePath { name }): Path<SchedulePath>,
) -> Result<StatusCode, ApiError> {
    if state.sb().jobs().delete_schedule(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("schedule not found"))
    }
}

/// Every schedule.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ScheduleList {
    /// By name.
    schedules: Vec<ScheduleView>,
}

/// Every schedule, by name.
#[utoipa::path(get, path = "/schedules", tag = "jobs", responses((status = OK, body = ScheduleList)))]
pub(crate) async fn list_schedules(State(state): State<AppState>) -> Result<Json<ScheduleList>, ApiError> {
    let all = state.sb().jobs().schedules().await?;
    Ok(Json(ScheduleList { schedules: all.iter().map(ScheduleView::of).collect() }))
}
