//! `RedisJobs`: the [`JobStore`] in Redis. Every job, queue and schedule key shares the one hash
//! slot `{jobs}`, and every operation is one script.
//!
//! Why one slot: job ids are global (`/jobs/{id}` names no queue), and one fetch takes from
//! several queues in order, so both must reach any queue's keys from one script. This is
//! BullMQ's choice too (a hash-tagged prefix); on Redis Cluster the jobs capability therefore
//! lives on one shard.
//!
//! Layout (the key table in `keys.rs`, the hash fields in `job_common.lua`): a hash per job;
//! per queue a waiting ZSET scored `(MAX_PRIORITY - priority) * 2^41 + seq` (strict between
//! priority levels, FIFO within one by a per-queue sequence, taken with `ZPOPMIN`), a delayed
//! ZSET by due ms, an active ZSET by lease end ms, completed and dead ZSETs by finish time
//! (trimmed by count and age, with the trimmed jobs' hashes), a unique-key hash and a meta hash
//! (paused, sequence, totals and rolling per-minute counters); a set of queue names; and for
//! schedules a definition hash (core's [`Schedule`] as JSON), a ZSET of next ticks and a hash
//! of last fired ticks.
//!
//! Costs: every script is O(log n) per job it touches; enqueue of a batch and fetch of many
//! jobs are one round trip each, and records are read with one `HMGET` of fixed fields. Fetch
//! first settles the listed queues that are not paused (due delayed jobs to waiting, expired
//! leases reclaimed), at most 1000 jobs per call, so a backlog is worked off
//! over several calls while `next_event_at` (then in the past) keeps long-polls awake.
//! Retention trims at most 1000 jobs per set per call the same way. Lease tokens are compared
//! with plain equality in Lua (there is no constant-time compare; tokens are 128 random bits).
//!
//! `fail` computes the retry delay in Lua, operation for operation as [`Backoff::delay_ms`],
//! from the stored [`Backoff::encode`] form.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, ScriptInvocation, Value};
use serde::Deserialize;
use switchboard_core::jobs::cut_error;
use switchboard_core::{
    Backoff, Completion, Due, EnqueueOutcome, Enqueued, Error, FailOutcome, Fetched, Job, JobError, JobId,
    JobRetention, JobState, JobStore, JobType, LeaseToken, LeasedJob, NewJob, QueueCounts, QueueName, Result, Retry,
    Schedule, ScheduleName, ScheduleState, Timestamp,
};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

/// A job script: common.lua, then job_common.lua, then the operation.
fn job_lua(body: &str) -> Script {
    lua(&format!("{}{body}", include_str!("../lua/job_common.lua")))
}

static ENQUEUE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_enqueue.lua")));
static FETCH: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_fetch.lua")));
static COMPLETE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_complete.lua")));
static COMPLETE_MANY: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_complete_many.lua")));
static FAIL: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_fail.lua")));
static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_heartbeat.lua")));
static PROGRESS: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_progress.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_release.lua")));
static GET: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_get.lua")));
static REMOVE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_remove.lua")));
static CANCEL_UNIQUE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_cancel_unique.lua")));
static CANCEL_UNIQUE_PREFIX: LazyLock<Script> =
    LazyLock::new(|| job_lua(include_str!("../lua/job_cancel_unique_prefix.lua")));
static RETRY_DEAD: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_retry_dead.lua")));
static LIST: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_list.lua")));
static COUNTS: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_counts.lua")));
static SCHEDULE_PUT: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_schedule_put.lua")));
static SCHEDULE_GET: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_schedule_get.lua")));
static SCHEDULE_DELETE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_schedule_delete.lua")));
static SCHEDULE_DUE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_schedule_due.lua")));
static SCHEDULE_FIRE: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_schedule_fire.lua")));

/// Longest age handed to a script (about 317 years): keeps `(now - age) * 1024` exact in Lua.
const MAX_AGE_MS: u64 = 10_000_000_000_000;

/// The job store in Redis. See [`JobStore`] for the contract.
pub(crate) struct RedisJobs {
    conn: Conn,
    keys: Keys,
}

impl RedisJobs {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisJobs { conn, keys }
    }

    /// An invocation with `key` as KEYS[1] and the jobs prefix as ARGV[1] (job_common.lua).
    fn invocation<'a>(&self, script: &'a Script, key: String) -> ScriptInvocation<'a> {
        let mut invocation = script.key(key);
        invocation.arg(self.keys.jobs_prefix());
        invocation
    }

    /// An invocation on one job: its hash as KEYS[1], then the prefix and the id.
    fn job_invocation<'a>(&self, script: &'a Script, id: &JobId) -> ScriptInvocation<'a> {
        let mut invocation = self.invocation(script, self.keys.job(id));
        invocation.arg(id.as_str());
        invocation
    }

    /// An invocation on the schedules: definitions, next ticks and last fired as KEYS[1..3].
    fn schedule_invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = self.invocation(script, self.keys.schedules());
        invocation.key(self.keys.schedule_next()).key(self.keys.schedule_last());
        invocation
    }

    /// Runs a lease operation whose script answers a status code first (0 ok, 1 missing,
    /// 2 not held); the rest of the answer.
    async fn leased(&self, op: &'static str, invocation: &ScriptInvocation<'_>, id: &JobId) -> Result<Vec<Value>> {
        let value: Value = self.conn.script(op, invocation).await?;
        let mut items = match value {
            Value::Array(items) => items.into_iter(),
            single => vec![single].into_iter(),
        };
        let code = num(items.next().unwrap_or(Value::Nil), op)?;
        status(code, id, op)?;
        Ok(items.collect())
    }
}

/// Maps a lease script's status code to the contract's errors.
fn status(code: i64, id: &JobId, op: &str) -> Result<()> {
    match code {
        0 => Ok(()),
        1 => Err(Error::NotFound(format!("job {id} not found"))),
        2 => Err(Error::Conflict(format!("job {id} is not active under this lease token"))),
        other => Err(Error::Internal(format!("redis: {op}: unexpected status {other}"))),
    }
}

/// Adds one job's 12 arguments as `enqueue_job` in job_common.lua reads them.
fn job_args(invocation: &mut ScriptInvocation<'_>, job: &NewJob) {
    let (due_kind, due_ms) = match job.due {
        Due::Now => ("n", 0),
        Due::After(d) => ("a", millis(d)),
        Due::At(t) => ("t", t.as_millis()),
    };
    invocation
        .arg(job.id.as_str())
        .arg(job.queue.as_str())
        .arg(job.job_type.as_str())
        .arg(job.payload.as_slice())
        .arg(job.priority)
        .arg(due_kind)
        .arg(due_ms)
        .arg(job.max_attempts)
        .arg(job.backoff.encode())
        .arg(millis(job.lease))
        .arg(if job.unique_key.is_some() { "1" } else { "0" })
        .arg(job.unique_key.as_deref().unwrap_or(""));
}

/// A duration in whole ms, bounded so Lua's doubles stay exact.
fn millis(d: Duration) -> i64 {
    d.as_millis().min(u128::from(MAX_AGE_MS)) as i64
}

fn age_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).min(MAX_AGE_MS)
}

fn bad(op: &str, what: &str) -> Error {
    Error::Internal(format!("redis: {op}: unexpected reply: {what}"))
}

/// An integer reply (or a decimal string, as Redis returns scores).
fn num(v: Value, op: &str) -> Result<i64> {
    match v {
        Value::Int(n) => Ok(n),
        Value::BulkString(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().map(|f| f as i64)))
            .ok_or_else(|| bad(op, "not a number")),
        Value::Double(f) => Ok(f as i64),
        _ => Err(bad(op, "not a number")),
    }
}

fn opt_num(v: Value, op: &str) -> Result<Option<i64>> {
    match v {
        Value::Nil => Ok(None),
        v => num(v, op).map(Some),
    }
}

fn opt_bytes(v: Value, op: &str) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::Int(n) => Ok(Some(n.to_string().into_bytes())),
        _ => Err(bad(op, "not a string")),
    }
}

fn text(v: Value, op: &str) -> Result<String> {
    let bytes = opt_bytes(v, op)?.ok_or_else(|| bad(op, "missing string"))?;
    String::from_utf8(bytes).map_err(|_| bad(op, "not UTF-8"))
}

fn array(v: Value, op: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        _ => Err(bad(op, "not an array")),
    }
}

/// One stored error, as `add_error` in job_common.lua writes it.
#[derive(Deserialize)]
struct StoredError {
    a: u32,
    m: String,
    t: String,
}

/// Parses a record: the id, then the fields in `FIELDS` order (job_common.lua).
fn parse_job(v: Value, op: &str) -> Result<Job> {
    let fields: [Value; 19] = array(v, op)?.try_into().map_err(|_| bad(op, "a job record has 19 fields"))?;
    let [
        id,
        queue,
        job_type,
        payload,
        priority,
        state,
        attempts,
        max_attempts,
        backoff,
        lease,
        unique,
        created,
        run_at,
        started,
        finished,
        lease_end,
        progress,
        result,
        errors,
    ] = fields;
    let n = |v: Value| num(v, op);
    let at = |v: Value| opt_num(v, op).map(|o| o.map(Timestamp::from_millis));
    let errors = match opt_bytes(errors, op)? {
        None => Vec::new(),
        Some(json) => serde_json::from_slice::<Vec<StoredError>>(&json)
            .map_err(|e| bad(op, &format!("stored job errors: {e}")))?
            .into_iter()
            .map(|e| {
                let at = e.t.parse::<i64>().map_err(|_| bad(op, "stored error time"))?;
                Ok(JobError { attempt: e.a, message: e.m, at: Timestamp::from_millis(at) })
            })
            .collect::<Result<_>>()?,
    };
    let small = |v: i64, what: &str| u32::try_from(v).map_err(|_| bad(op, what));
    Ok(Job {
        id: JobId::new(text(id, op)?)?,
        queue: QueueName::new(text(queue, op)?)?,
        job_type: JobType::new(text(job_type, op)?)?,
        payload: opt_bytes(payload, op)?.unwrap_or_default(),
        priority: i32::try_from(n(priority)?).map_err(|_| bad(op, "priority"))?,
        state: JobState::parse(&text(state, op)?).map_err(|_| bad(op, "job state"))?,
        attempts: small(n(attempts)?, "attempts")?,
        max_attempts: small(n(max_attempts)?, "max attempts")?,
        backoff: Backoff::decode(&text(backoff, op)?)?,
        lease: Duration::from_millis(u64::try_from(n(lease)?).map_err(|_| bad(op, "lease"))?),
        unique_key: opt_bytes(unique, op)?
            .map(|b| String::from_utf8(b).map_err(|_| bad(op, "unique key")))
            .transpose()?,
        created_at: Timestamp::from_millis(n(created)?),
        run_at: Timestamp::from_millis(n(run_at)?),
        started_at: at(started)?,
        finished_at: at(finished)?,
        lease_expires_at: at(lease_end)?,
        progress: opt_bytes(progress, op)?,
        result: opt_bytes(result, op)?,
        errors,
    })
}

fn parse_schedule(json: Value, next: Value, last: Value, op: &str) -> Result<ScheduleState> {
    let json = opt_bytes(json, op)?.ok_or_else(|| bad(op, "missing schedule"))?;
    let schedule: Schedule =
        serde_json::from_slice(&json).map_err(|e| bad(op, &format!("stored schedule is not valid: {e}")))?;
    Ok(ScheduleState {
        schedule,
        next_fire_at: opt_num(next, op)?.map(Timestamp::from_millis),
        last_fired_at: opt_num(last, op)?.map(Timestamp::from_millis),
    })
}

/// Parses flat `{name, JSON, next, last, ...}` rows.
fn parse_schedules(items: Vec<Value>, op: &str) -> Result<Vec<ScheduleState>> {
    if !items.len().is_multiple_of(4) {
        return Err(bad(op, "schedule rows have 4 fields"));
    }
    let mut items = items.into_iter();
    let mut out = Vec::new();
    while let (Some(_name), Some(json), Some(next), Some(last)) =
        (items.next(), items.next(), items.next(), items.next())
    {
        out.push(parse_schedule(json, next, last, op)?);
    }
    Ok(out)
}

#[async_trait]
impl JobStore for RedisJobs {
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        const OP: &str = "jobs.enqueue";
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.invocation(&ENQUEUE, self.keys.job_queues());
        for job in jobs {
            job_args(&mut invocation, job);
        }
        let flat: Vec<String> = self.conn.script(OP, &invocation).await?;
        self.conn.replicated(OP, &self.keys.job_queues()).await?;
        if flat.len() != jobs.len() * 3 {
            return Err(bad(OP, "one outcome per job"));
        }
        flat.chunks_exact(3)
            .map(|row| {
                let outcome = match row[0].as_str() {
                    "c" => EnqueueOutcome::Created,
                    "i" => EnqueueOutcome::ExistingId,
                    "u" => EnqueueOutcome::DuplicateUniqueKey,
                    _ => return Err(bad(OP, "enqueue outcome")),
                };
                let state = JobState::parse(&row[2]).map_err(|_| bad(OP, "job state"))?;
                Ok(Enqueued { id: JobId::new(row[1].as_str())?, outcome, state })
            })
            .collect()
    }

    async fn fetch_of_types(
        &self,
        queues: &[QueueName],
        types: &[JobType],
        tokens: &[LeaseToken],
        lease: Option<Duration>,
        retention: &JobRetention,
    ) -> Result<Fetched> {
        const OP: &str = "jobs.fetch";
        let mut invocation = self.invocation(&FETCH, self.keys.job_queues());
        invocation
            .arg(lease.map(|l| millis(l).to_string()).unwrap_or_default())
            .arg(retention.dead_max)
            .arg(age_ms(retention.dead_max_age))
            .arg(queues.len());
        for queue in queues {
            invocation.arg(queue.as_str());
        }
        invocation.arg(types.len());
        for job_type in types {
            invocation.arg(job_type.as_str());
        }
        for token in tokens {
            invocation.arg(token.as_str());
        }
        let reply: Value = self.conn.script(OP, &invocation).await?;
        let mut items = array(reply, OP)?.into_iter();
        let now = num(items.next().unwrap_or(Value::Nil), OP)?;
        let next_event_at = opt_num(items.next().unwrap_or(Value::Nil), OP)?.map(Timestamp::from_millis);
        if items.len() > tokens.len() {
            return Err(bad(OP, "more jobs than tokens"));
        }
        let jobs = items
            .zip(tokens)
            .map(|(record, token)| Ok(LeasedJob { job: parse_job(record, OP)?, lease_token: token.clone() }))
            .collect::<Result<_>>()?;
        Ok(Fetched { jobs, now: Timestamp::from_millis(now), next_event_at })
    }

    async fn complete(
        &self,
        id: &JobId,
        token: &LeaseToken,
        result: Option<&[u8]>,
        retention: &JobRetention,
    ) -> Result<()> {
        let mut invocation = self.job_invocation(&COMPLETE, id);
        invocation
            .arg(token.as_str())
            .arg(if result.is_some() { "1" } else { "0" })
            .arg(result.unwrap_or_default())
            .arg(retention.completed_max)
            .arg(age_ms(retention.completed_max_age));
        self.leased("jobs.complete", &invocation, id).await?;
        self.conn.replicated("jobs.complete", &self.keys.job(id)).await
    }

    async fn complete_many(&self, completions: &[Completion], retention: &JobRetention) -> Result<Vec<Result<()>>> {
        const OP: &str = "jobs.complete_many";
        if completions.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.invocation(&COMPLETE_MANY, self.keys.job_queues());
        invocation.arg(retention.completed_max).arg(age_ms(retention.completed_max_age));
        for c in completions {
            invocation
                .arg(c.id.as_str())
                .arg(c.token.as_str())
                .arg(if c.result.is_some() { "1" } else { "0" })
                .arg(c.result.as_deref().unwrap_or_default());
        }
        let codes: Vec<i64> = self.conn.script(OP, &invocation).await?;
        self.conn.replicated(OP, &self.keys.job_queues()).await?;
        if codes.len() != completions.len() {
            return Err(Error::Internal(format!(
                "redis: {OP}: {} answers for {} jobs",
                codes.len(),
                completions.len()
            )));
        }
        Ok(codes.into_iter().zip(completions).map(|(code, c)| status(code, &c.id, OP)).collect())
    }

    async fn fail(
        &self,
        id: &JobId,
        token: &LeaseToken,
        error: &str,
        retry: Retry,
        random: f64,
        retention: &JobRetention,
    ) -> Result<FailOutcome> {
        const OP: &str = "jobs.fail";
        let (mode, after) = match retry {
            Retry::Backoff => ("b", 0),
            Retry::After(d) => ("a", millis(d)),
            Retry::Never => ("n", 0),
        };
        let mut invocation = self.job_invocation(&FAIL, id);
        invocation
            .arg(token.as_str())
            .arg(cut_error(error).as_ref())
            .arg(mode)
            .arg(after)
            // Display is the shortest form that parses back to the same f64 (Lua's tonumber).
            .arg(random.clamp(0.0, 1.0).to_string())
            .arg(retention.dead_max)
            .arg(age_ms(retention.dead_max_age));
        let mut rest = self.leased(OP, &invocation, id).await?.into_iter();
        let state = JobState::parse(&text(rest.next().unwrap_or(Value::Nil), OP)?).map_err(|_| bad(OP, "state"))?;
        let retry_at = opt_num(rest.next().unwrap_or(Value::Nil), OP)?.map(Timestamp::from_millis);
        Ok(FailOutcome { state, retry_at })
    }

    async fn heartbeat(&self, id: &JobId, token: &LeaseToken, lease: Option<Duration>) -> Result<Timestamp> {
        const OP: &str = "jobs.heartbeat";
        let mut invocation = self.job_invocation(&HEARTBEAT, id);
        invocation.arg(token.as_str()).arg(lease.map(|l| millis(l).to_string()).unwrap_or_default());
        let rest = self.leased(OP, &invocation, id).await?;
        let end = num(rest.into_iter().next().unwrap_or(Value::Nil), OP)?;
        Ok(Timestamp::from_millis(end))
    }

    async fn progress(&self, id: &JobId, token: &LeaseToken, progress: &[u8]) -> Result<()> {
        let mut invocation = self.job_invocation(&PROGRESS, id);
        invocation.arg(token.as_str()).arg(progress);
        self.leased("jobs.progress", &invocation, id).await.map(drop)
    }

    async fn release(&self, id: &JobId, token: &LeaseToken) -> Result<()> {
        let mut invocation = self.job_invocation(&RELEASE, id);
        invocation.arg(token.as_str());
        self.leased("jobs.release", &invocation, id).await.map(drop)
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        const OP: &str = "jobs.get";
        let invocation = self.job_invocation(&GET, id);
        match self.conn.script::<Value>(OP, &invocation).await? {
            Value::Nil => Ok(None),
            record => parse_job(record, OP).map(Some),
        }
    }

    async fn remove(&self, id: &JobId) -> Result<Option<JobState>> {
        const OP: &str = "jobs.remove";
        let invocation = self.job_invocation(&REMOVE, id);
        let reply: Value = self.conn.script(OP, &invocation).await?;
        let mut items = array(reply, OP)?.into_iter();
        match num(items.next().unwrap_or(Value::Nil), OP)? {
            0 => {
                let state = text(items.next().unwrap_or(Value::Nil), OP)?;
                JobState::parse(&state).map(Some).map_err(|_| bad(OP, "state"))
            }
            1 => Ok(None),
            2 => Err(Error::Conflict(format!("job {id} is active; fail or complete it first"))),
            _ => Err(bad(OP, "status")),
        }
    }

    async fn cancel_unique(&self, queue: &QueueName, unique_keys: &[String]) -> Result<Vec<JobId>> {
        if unique_keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.invocation(&CANCEL_UNIQUE, self.keys.job_queues());
        invocation.arg(queue.as_str());
        for key in unique_keys {
            invocation.arg(key.as_str());
        }
        let ids: Vec<String> = self.conn.script("jobs.cancel_unique", &invocation).await?;
        ids.into_iter().map(JobId::new).collect()
    }

    async fn cancel_unique_prefix(&self, queue: &QueueName, prefix: &str) -> Result<Vec<JobId>> {
        let mut invocation = self.invocation(&CANCEL_UNIQUE_PREFIX, self.keys.job_queues());
        invocation.arg(queue.as_str()).arg(prefix);
        let ids: Vec<String> = self.conn.script("jobs.cancel_unique_prefix", &invocation).await?;
        ids.into_iter().map(JobId::new).collect()
    }

    async fn retry_dead(&self, id: &JobId) -> Result<()> {
        let invocation = self.job_invocation(&RETRY_DEAD, id);
        let code: i64 = self.conn.script("jobs.retry_dead", &invocation).await?;
        match code {
            2 => Err(Error::Conflict(format!("job {id} is not dead"))),
            3 => Err(Error::Conflict(format!("another job of its queue holds the unique key of job {id}"))),
            code => status(code, id, "jobs.retry_dead"),
        }
    }

    async fn list(&self, queue: &QueueName, state: JobState, offset: u64, limit: usize) -> Result<Vec<Job>> {
        const OP: &str = "jobs.list";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (part, newest_first) = match state {
            JobState::Waiting => ("w", false),
            JobState::Delayed => ("d", false),
            JobState::Active => ("a", false),
            JobState::Completed => ("c", true),
            JobState::Dead => ("x", true),
        };
        let mut invocation = self.invocation(&LIST, self.keys.job_queues());
        invocation
            .arg(queue.as_str())
            .arg(part)
            .arg(if newest_first { "1" } else { "0" })
            .arg(offset.min(i64::MAX as u64))
            .arg(limit.min(i64::MAX as usize));
        let reply: Value = self.conn.script(OP, &invocation).await?;
        array(reply, OP)?.into_iter().map(|record| parse_job(record, OP)).collect()
    }

    async fn counts(&self, queue: &QueueName, retention: &JobRetention) -> Result<QueueCounts> {
        const OP: &str = "jobs.counts";
        let mut invocation = self.invocation(&COUNTS, self.keys.job_queues());
        invocation.arg(queue.as_str()).arg(retention.dead_max).arg(age_ms(retention.dead_max_age));
        let n: Vec<i64> = self.conn.script(OP, &invocation).await?;
        let n: [i64; 13] = n.try_into().map_err(|_| bad(OP, "13 counts"))?;
        let u = |v: i64| u64::try_from(v).map_err(|_| bad(OP, "negative count"));
        Ok(QueueCounts {
            now_ms: n[0],
            waiting: u(n[1])?,
            delayed: u(n[2])?,
            active: u(n[3])?,
            completed: u(n[4])?,
            dead: u(n[5])?,
            paused: n[6] == 1,
            completed_total: u(n[7])?,
            failed_total: u(n[8])?,
            completed_this_minute: u(n[9])?,
            completed_last_minute: u(n[10])?,
            failed_this_minute: u(n[11])?,
            failed_last_minute: u(n[12])?,
        })
    }

    async fn queues(&self) -> Result<Vec<QueueName>> {
        let names: Vec<String> =
            self.conn.cmd("jobs.queues", redis::cmd("SMEMBERS").arg(self.keys.job_queues())).await?;
        let mut queues = names.into_iter().map(QueueName::new).collect::<Result<Vec<_>>>()?;
        queues.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(queues)
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        let meta = self.keys.job_queue_meta(queue);
        let mut pipe = redis::pipe();
        pipe.atomic();
        if paused {
            pipe.hset(meta, "paused", "1");
        } else {
            pipe.hdel(meta, "paused");
        }
        pipe.sadd(self.keys.job_queues(), queue.as_str());
        self.conn.pipe::<()>("jobs.set_paused", &pipe).await
    }

    async fn put_schedule(&self, schedule: &Schedule, next_fire_at: Option<Timestamp>) -> Result<bool> {
        let json = serde_json::to_string(schedule).map_err(|e| Error::Internal(format!("schedule to JSON: {e}")))?;
        let mut invocation = self.schedule_invocation(&SCHEDULE_PUT);
        invocation
            .arg(schedule.name.as_str())
            .arg(json)
            .arg(next_fire_at.map(|t| t.as_millis().to_string()).unwrap_or_default());
        let created: i64 = self.conn.script("jobs.put_schedule", &invocation).await?;
        Ok(created == 1)
    }

    async fn get_schedule(&self, name: &ScheduleName) -> Result<Option<ScheduleState>> {
        const OP: &str = "jobs.get_schedule";
        let mut invocation = self.schedule_invocation(&SCHEDULE_GET);
        invocation.arg(name.as_str());
        let reply: Value = self.conn.script(OP, &invocation).await?;
        Ok(parse_schedules(array(reply, OP)?, OP)?.pop())
    }

    async fn delete_schedule(&self, name: &ScheduleName) -> Result<bool> {
        let mut invocation = self.schedule_invocation(&SCHEDULE_DELETE);
        invocation.arg(name.as_str());
        let removed: i64 = self.conn.script("jobs.delete_schedule", &invocation).await?;
        Ok(removed == 1)
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleState>> {
        const OP: &str = "jobs.list_schedules";
        let mut invocation = self.schedule_invocation(&SCHEDULE_GET);
        invocation.arg("");
        let reply: Value = self.conn.script(OP, &invocation).await?;
        let mut schedules = parse_schedules(array(reply, OP)?, OP)?;
        schedules.sort_by(|a, b| a.schedule.name.as_str().cmp(b.schedule.name.as_str()));
        Ok(schedules)
    }

    async fn due_schedules(&self, limit: usize) -> Result<(Timestamp, Vec<ScheduleState>)> {
        const OP: &str = "jobs.due_schedules";
        let mut invocation = self.schedule_invocation(&SCHEDULE_DUE);
        invocation.arg(limit.clamp(1, i64::MAX as usize));
        let reply: Value = self.conn.script(OP, &invocation).await?;
        let mut items = array(reply, OP)?;
        if items.is_empty() {
            return Err(bad(OP, "missing clock"));
        }
        let now = num(items.remove(0), OP)?;
        let mut due = parse_schedules(items, OP)?;
        due.truncate(limit);
        Ok((Timestamp::from_millis(now), due))
    }

    async fn fire_schedule(
        &self,
        name: &ScheduleName,
        tick: Timestamp,
        next: Option<Timestamp>,
        job: &NewJob,
    ) -> Result<bool> {
        let mut invocation = self.schedule_invocation(&SCHEDULE_FIRE);
        invocation
            .arg(name.as_str())
            .arg(tick.as_millis())
            .arg(next.map(|t| t.as_millis().to_string()).unwrap_or_default());
        job_args(&mut invocation, job);
        let fired: i64 = self.conn.script("jobs.fire_schedule", &invocation).await?;
        Ok(fired == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::jobs::MAX_ERROR_BYTES;

    fn record(errors: Option<&str>) -> Value {
        let s = |v: &str| Value::BulkString(v.as_bytes().to_vec());
        let mut fields = vec![
            s("j1"),
            s("mail"),
            s("send"),
            s("{}"),
            s("5"),
            s("active"),
            s("1"),
            s("3"),
            s("f:100"),
            s("30000"),
            Value::Nil,
            s("1000"),
            s("1000"),
            s("1001"),
            Value::Nil,
            s("31001"),
            Value::Nil,
            Value::Nil,
        ];
        fields.push(errors.map(s).unwrap_or(Value::Nil));
        Value::Array(fields)
    }

    #[test]
    fn records_parse_into_jobs() {
        let job = parse_job(record(Some(r#"[{"a":1,"m":"boom \/ ok","t":"1500"}]"#)), "test").unwrap();
        assert_eq!(job.id.as_str(), "j1");
        assert_eq!(job.state, JobState::Active);
        assert_eq!(job.backoff, Backoff::Fixed { delay_ms: 100 });
        assert_eq!(job.lease, Duration::from_secs(30));
        assert_eq!(job.lease_expires_at, Some(Timestamp::from_millis(31_001)));
        assert_eq!(job.finished_at, None);
        assert_eq!(
            job.errors,
            vec![JobError { attempt: 1, message: "boom / ok".into(), at: Timestamp::from_millis(1500) }]
        );
        assert!(parse_job(record(None), "test").unwrap().errors.is_empty());
    }

    #[test]
    fn long_errors_are_cut_at_a_char_boundary_and_marked() {
        assert_eq!(cut_error("short"), "short");
        let long = "é".repeat(MAX_ERROR_BYTES);
        let cut = cut_error(&long);
        assert!(cut.len() <= MAX_ERROR_BYTES && cut.ends_with('…'));
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn malformed_records_are_internal_errors() {
        assert!(matches!(parse_job(Value::Array(vec![Value::Nil]), "test"), Err(Error::Internal(_))));
        assert!(matches!(parse_job(record(Some("{")), "test"), Err(Error::Internal(_))));
    }
}
