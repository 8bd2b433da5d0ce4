//! `RedisJobs`: the [`JobStore`] in Redis. On a Cluster each queue is one hash slot
//! `{jobs:<queue>}` holding its sets and its jobs' hashes, so queues spread over the shards and
//! every operation on one queue or one job is one script in one slot. Job ids are global, so an
//! id index in the `{jobs}` slot names each id's queue through a claim (how claims keep an id
//! in one queue at most, even across crashes and concurrent enqueues: `keys.rs`, "Job ids").
//! On one server (standalone, Sentinel) every job key is in `{jobs}` and a job's hash is keyed
//! by its id alone, so no index is kept and a script may touch several queues. The queue names
//! and schedules live in `{jobs}` on every topology.
//!
//! Layout (the key table in `keys.rs`, the hash fields in `job_common.lua`): a hash per job;
//! per queue a waiting ZSET scored `(MAX_PRIORITY - priority) * 2^41 + seq` (strict between
//! priority levels, FIFO within one by a per-queue sequence, taken with `ZPOPMIN`), a delayed
//! ZSET by due ms, an active ZSET by lease end ms, completed and dead ZSETs by finish time
//! (trimmed by count and age, with the trimmed jobs' hashes), a unique-key hash, a meta hash
//! (paused, sequence, totals and rolling per-minute counters) and the ended claims; globally
//! the id index, a set of queue names, and for schedules a definition hash (core's
//! [`Schedule`] as JSON), a ZSET of next ticks and a hash of last fired ticks.
//!
//! What is atomic: everything on one queue (an enqueue of jobs of one queue, a fetch's part in
//! one queue, a completion batch's part in one queue), and on one server an enqueue whatever
//! its queues. On a Cluster an enqueue spanning queues applies each queue's part atomically,
//! queue by queue in order of first appearance. A fetch over several queues runs one script
//! per queue in the order given. An operation by id runs in the queue this node remembers for
//! the job (it enqueued or leased it), else first reads the job's queue (from the index on a
//! Cluster, from the job's hash on one server: one more round trip).
//!
//! Costs: every script is O(log n) per job it touches; records are read with one `HMGET` of
//! fixed fields. Fetch first settles each listed queue that is not paused (due delayed jobs to
//! waiting, expired leases reclaimed), at most 1000 jobs per queue per call, so a backlog is
//! worked off over several calls while `next_event_at` (then in the past) keeps long-polls
//! awake. Retention trims at most 1000 jobs per set per call the same way. Lease tokens are
//! compared with plain equality in Lua (there is no constant-time compare; tokens are 128
//! random bits).
//!
//! `fail` computes the retry delay in Lua, operation for operation as [`Backoff::delay_ms`],
//! from the stored [`Backoff::encode`] form.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
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
static CLAIM: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/job_claim.lua")));
static FREE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/job_free.lua")));
static CHECK: LazyLock<Script> = LazyLock::new(|| job_lua(include_str!("../lua/job_check.lua")));
/// The server clock (for a fetch naming no queue).
static NOW: LazyLock<Script> = LazyLock::new(|| lua("return now_ms()"));

/// Rounds of claiming an id before an enqueue gives up: each round but the first follows an
/// ended claim (a crash left it, or an enqueue of the same id for another queue raced this one).
const CLAIM_ROUNDS: usize = 8;

/// Pauses before an enqueue ends another queue's claim that has no job yet (it may be being
/// created right now): about 150 ms in all, paid only after a crash or such a race.
const CHECK_PAUSES_MS: [u64; 4] = [10, 20, 40, 80];

/// Longest age handed to a script (about 317 years): keeps `(now - age) * 1024` exact in Lua.
const MAX_AGE_MS: u64 = 10_000_000_000_000;

/// Most job ids a node remembers the queue of (about 10 MB); the memory is cleared when full.
const REMEMBERED_IDS: usize = 65_536;

/// The job store in Redis. See [`JobStore`] for the contract.
pub(crate) struct RedisJobs {
    conn: Conn,
    keys: Keys,
    /// Job id -> queue, as this node last enqueued or leased it: a lease operation (complete,
    /// fail, heartbeat, progress, release) tries that queue first instead of reading the index.
    /// Only a guess, checked by the script: a job with the id in that queue is the id's job (a
    /// job exists only in the queue its id's claim names), and a guess that finds no job falls
    /// back to the index.
    remembered: Mutex<HashMap<String, String>>,
}

/// An id's claim in the index: the claim number and the queue (`<number>:<queue>`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    number: String,
    queue: String,
}

impl Claim {
    fn parse(text: &str, op: &str) -> Result<Claim> {
        let (number, queue) = text.split_once(':').ok_or_else(|| bad(op, "an id claim"))?;
        Ok(Claim { number: number.to_owned(), queue: queue.to_owned() })
    }

    fn text(&self) -> String {
        format!("{}:{}", self.number, self.queue)
    }
}

/// Ended claims a queue script reports (flat `id, number, ...`) as `(id, claim)` pairs to free.
fn freed(v: Value, queue: &str, op: &str) -> Result<Vec<(String, String)>> {
    let items = array(v, op)?;
    if !items.len().is_multiple_of(2) {
        return Err(bad(op, "freed claims come in pairs"));
    }
    let mut items = items.into_iter();
    let mut out = Vec::new();
    while let (Some(id), Some(number)) = (items.next(), items.next()) {
        out.push((text(id, op)?, format!("{}:{queue}", text(number, op)?)));
    }
    Ok(out)
}

impl RedisJobs {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisJobs { conn, keys, remembered: Mutex::new(HashMap::new()) }
    }

    /// Whether job keys are laid out one slot per queue (on a Cluster; keys.rs, "Job keys").
    fn sharded(&self) -> bool {
        self.conn.is_cluster()
    }

    /// ARGV[1] of a queue script: the queue prefix, and on one server a newline and the prefix
    /// of job hashes (job_common.lua).
    fn queue_arg(&self, queue: &str) -> String {
        let prefix = self.keys.job_queue_prefix(queue, self.sharded());
        if self.sharded() { prefix } else { format!("{prefix}\n{}", self.keys.jobs_prefix()) }
    }

    /// A queue's meta hash: the key that routes its scripts and WAITs.
    fn queue_meta(&self, queue: &str) -> String {
        self.keys.job_queue_meta(queue, self.sharded())
    }

    /// Remembers that job `id` is in `queue`.
    fn remember(&self, id: &str, queue: &str) {
        let mut remembered = self.remembered.lock().unwrap_or_else(|e| e.into_inner());
        if remembered.len() >= REMEMBERED_IDS && !remembered.contains_key(id) {
            remembered.clear();
        }
        if remembered.get(id).is_none_or(|q| q != queue) {
            remembered.insert(id.to_owned(), queue.to_owned());
        }
    }

    /// The queue job `id` was last seen in by this node, if any (a guess).
    fn guess(&self, id: &str) -> Option<String> {
        self.remembered.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned()
    }

    /// An invocation on a queue: its meta hash as KEYS[1] (the slot), the queue prefix as
    /// ARGV[1] (job_common.lua).
    fn queue_invocation<'a>(&self, script: &'a Script, queue: &str) -> ScriptInvocation<'a> {
        let mut invocation = script.key(self.queue_meta(queue));
        invocation.arg(self.queue_arg(queue));
        invocation
    }

    /// An invocation on one job of `queue`: its hash as KEYS[1], then the queue prefix and the id.
    fn job_invocation<'a>(&self, script: &'a Script, queue: &str, id: &JobId) -> ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.job(queue, id, self.sharded()));
        invocation.arg(self.queue_arg(queue)).arg(id.as_str());
        invocation
    }

    /// An invocation on the schedules: definitions, next ticks and last fired as KEYS[1..3].
    fn schedule_invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.schedules());
        invocation.key(self.keys.schedule_next()).key(self.keys.schedule_last());
        invocation.arg(self.keys.jobs_prefix());
        invocation
    }

    /// The queue of job `id`, if any: on a Cluster the queue its claim names (a claim that
    /// ended but is still listed names a queue without the job, which every caller treats as
    /// no job); on one server the queue in its hash.
    async fn queue_of(&self, op: &'static str, id: &JobId) -> Result<Option<String>> {
        Ok(self.queues_of(op, std::slice::from_ref(id)).await?.pop().flatten())
    }

    /// [`RedisJobs::queue_of`] of several ids, with one command.
    async fn queues_of(&self, op: &'static str, ids: &[JobId]) -> Result<Vec<Option<String>>> {
        if self.sharded() {
            let mut index = redis::cmd("HMGET");
            index.arg(self.keys.job_index());
            for id in ids {
                index.arg(id.as_str());
            }
            let claims: Vec<Option<String>> = self.conn.cmd(op, &index).await?;
            if claims.len() != ids.len() {
                return Err(bad(op, "one claim per job"));
            }
            return claims.into_iter().map(|c| c.map(|c| Claim::parse(&c, op).map(|c| c.queue)).transpose()).collect();
        }
        // One server: the queue field of each job's hash, pipelined.
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hget(self.keys.job("", id, false), "q");
        }
        self.conn.pipe(op, &pipe).await
    }

    /// Drops ended claims `(id, claim)` from the index (each only while it is still the id's).
    async fn free(&self, op: &'static str, claims: &[(String, String)]) -> Result<()> {
        if claims.is_empty() {
            return Ok(());
        }
        let mut invocation = FREE.key(self.keys.job_index());
        for (id, claim) in claims {
            invocation.arg(id.as_str()).arg(claim.as_str());
        }
        self.conn.script::<i64>(op, &invocation).await.map(drop)
    }

    /// Runs a lease operation whose script answers a status code first (0 ok, 1 missing,
    /// 2 not held) in the queue this node remembers for `id`, else (or when that queue has no
    /// such job) in the queue the index names; the queue and the rest of the answer. An id
    /// without a claim is missing.
    async fn leased(
        &self,
        op: &'static str,
        script: &Script,
        id: &JobId,
        args: impl Fn(&mut ScriptInvocation<'_>),
    ) -> Result<(String, Vec<Value>)> {
        let guess = self.guess(id.as_str());
        if let Some(queue) = &guess {
            let (code, rest) = self.leased_in(op, script, queue, id, &args).await?;
            if code != 1 {
                status(code, id, op)?;
                return Ok((queue.clone(), rest));
            }
        }
        let queue = match self.queue_of(op, id).await? {
            Some(queue) if guess.as_ref() != Some(&queue) => queue,
            _ => return Err(Error::NotFound(format!("job {id} not found"))),
        };
        let (code, rest) = self.leased_in(op, script, &queue, id, &args).await?;
        status(code, id, op)?;
        self.remember(id.as_str(), &queue);
        Ok((queue, rest))
    }

    /// One lease script on `id` in `queue`: its status code and the rest of its answer.
    async fn leased_in(
        &self,
        op: &'static str,
        script: &Script,
        queue: &str,
        id: &JobId,
        args: &impl Fn(&mut ScriptInvocation<'_>),
    ) -> Result<(i64, Vec<Value>)> {
        let mut invocation = self.job_invocation(script, queue, id);
        args(&mut invocation);
        let value: Value = self.conn.script(op, &invocation).await?;
        let mut items = match value {
            Value::Array(items) => items.into_iter(),
            single => vec![single].into_iter(),
        };
        let code = num(items.next().unwrap_or(Value::Nil), op)?;
        Ok((code, items.collect()))
    }

    /// The state of the job `claim` (for another queue than the caller's) names, or `None` once
    /// the claim has ended. A claim without a job is either being created right now or was left
    /// by a crash: it is looked at again after short pauses, and ended when still empty.
    async fn check_claim(&self, id: &JobId, claim: &Claim) -> Result<Option<JobState>> {
        const OP: &str = "jobs.enqueue";
        for pause_ms in CHECK_PAUSES_MS.iter().copied().map(Some).chain([None]) {
            let mut invocation = self.job_invocation(&CHECK, &claim.queue, id);
            invocation.arg(claim.number.as_str()).arg(if pause_ms.is_none() { "1" } else { "0" });
            let reply: Vec<String> = self.conn.script(OP, &invocation).await?;
            match reply.as_slice() {
                [i, state] if i == "i" => return JobState::parse(state).map(Some).map_err(|_| bad(OP, "job state")),
                [r] if r == "r" => return Ok(None),
                [p] if p == "p" => {}
                _ => return Err(bad(OP, "check outcome")),
            }
            if let Some(ms) = pause_ms {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
        Err(bad(OP, "a claim neither ended nor created"))
    }

    /// Completes `members` (indexes into `completions`) in `queue` with one script: their
    /// status codes, in order (0 done, 1 no such job there, 2 not active under the token).
    async fn complete_in(
        &self,
        op: &'static str,
        queue: &str,
        members: &[usize],
        completions: &[Completion],
        retention: &JobRetention,
    ) -> Result<Vec<i64>> {
        let mut invocation = self.queue_invocation(&COMPLETE_MANY, queue);
        invocation.arg(retention.completed_max).arg(age_ms(retention.completed_max_age));
        for &i in members {
            let c = &completions[i];
            invocation
                .arg(c.id.as_str())
                .arg(c.token.as_str())
                .arg(if c.result.is_some() { "1" } else { "0" })
                .arg(c.result.as_deref().unwrap_or_default());
        }
        let reply: Value = self.conn.script(op, &invocation).await?;
        let mut parts = array(reply, op)?.into_iter();
        let codes = array(parts.next().unwrap_or(Value::Nil), op)?;
        if codes.len() != members.len() {
            return Err(Error::Internal(format!("redis: {op}: {} answers for {} jobs", codes.len(), members.len())));
        }
        let codes = codes.into_iter().map(|c| num(c, op)).collect::<Result<Vec<_>>>()?;
        if codes.contains(&0) {
            self.conn.replicated(op, &self.queue_meta(queue)).await?;
        }
        self.free_reported(op, queue, parts.next().unwrap_or(Value::Nil)).await?;
        Ok(codes)
    }

    /// Frees the ended claims a script reports (flat `id, claim number`) in `queue`.
    async fn free_reported(&self, op: &'static str, queue: &str, reported: Value) -> Result<()> {
        let claims = freed(reported, queue, op)?;
        self.free(op, &claims).await
    }
}

/// Adds member `i` to the group of `queue` (groups in order of first appearance).
fn group(groups: &mut Vec<(String, Vec<usize>)>, queue: &str, i: usize) {
    match groups.iter_mut().find(|(q, _)| q == queue) {
        Some((_, members)) => members.push(i),
        None => groups.push((queue.to_owned(), vec![i])),
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

/// Adds one job's 13 arguments (its claim number first) as `enqueue_job` in job_common.lua
/// reads them.
fn job_args(invocation: &mut ScriptInvocation<'_>, number: &str, job: &NewJob) {
    let (due_kind, due_ms) = match job.due {
        Due::Now => ("n", 0),
        Due::After(d) => ("a", millis(d)),
        Due::At(t) => ("t", t.as_millis()),
    };
    invocation
        .arg(number)
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
        let mut answers: Vec<Option<Enqueued>> = vec![None; jobs.len()];
        let mut pending: Vec<usize> = (0..jobs.len()).collect();
        let mut touched: Vec<String> = Vec::new();
        for _ in 0..CLAIM_ROUNDS {
            if pending.is_empty() {
                break;
            }
            // Claim the ids (an id already claimed keeps its claim). On one server, where ids are
            // global by their key, no claims: every job goes to its own queue (number empty).
            let claims: Vec<String> = if self.sharded() {
                let mut invocation = CLAIM.key(self.keys.job_index());
                invocation.key(self.keys.job_queues()).key(self.keys.job_claims());
                for &i in &pending {
                    invocation.arg(jobs[i].id.as_str()).arg(jobs[i].queue.as_str());
                }
                self.conn.script(OP, &invocation).await?
            } else {
                pending.iter().map(|&i| format!(":{}", jobs[i].queue)).collect()
            };
            if claims.len() != pending.len() {
                return Err(bad(OP, "one claim per job"));
            }
            // Jobs whose id is claimed for their own queue, grouped by queue in order of first
            // appearance; the others name a job (or a stale claim) in another queue.
            let mut groups: Vec<(String, Vec<(usize, String)>)> = Vec::new();
            let mut others: Vec<(usize, Claim)> = Vec::new();
            for (&i, claim) in pending.iter().zip(&claims) {
                let claim = Claim::parse(claim, OP)?;
                if claim.queue == jobs[i].queue.as_str() {
                    // On one server the whole batch is one script (every queue's keys are there),
                    // sent with the first job's queue.
                    let script_queue = if self.sharded() { claim.queue } else { jobs[pending[0]].queue.to_string() };
                    match groups.iter_mut().find(|(q, _)| *q == script_queue) {
                        Some((_, members)) => members.push((i, claim.number)),
                        None => groups.push((script_queue, vec![(i, claim.number)])),
                    }
                } else {
                    others.push((i, claim));
                }
            }
            let mut retry = Vec::new();
            let mut to_free = Vec::new();
            for (queue, members) in groups {
                let mut invocation = self.queue_invocation(&ENQUEUE, &queue);
                for (i, number) in &members {
                    job_args(&mut invocation, number, &jobs[*i]);
                }
                let reply: Value = self.conn.script(OP, &invocation).await?;
                let mut parts = array(reply, OP)?.into_iter();
                let rows = array(parts.next().unwrap_or(Value::Nil), OP)?;
                to_free.extend(freed(parts.next().unwrap_or(Value::Nil), &queue, OP)?);
                if rows.len() != members.len() * 3 {
                    return Err(bad(OP, "one outcome per job"));
                }
                let mut rows = rows.into_iter();
                for (i, number) in members {
                    let (outcome, id, state) = match (rows.next(), rows.next(), rows.next()) {
                        (Some(o), Some(id), Some(s)) => (text(o, OP)?, text(id, OP)?, text(s, OP)?),
                        _ => return Err(bad(OP, "one outcome per job")),
                    };
                    let outcome = match outcome.as_str() {
                        "c" => EnqueueOutcome::Created,
                        "i" => EnqueueOutcome::ExistingId,
                        "u" => EnqueueOutcome::DuplicateUniqueKey,
                        "r" => {
                            to_free.push((id, format!("{number}:{queue}")));
                            retry.push(i);
                            continue;
                        }
                        _ => return Err(bad(OP, "enqueue outcome")),
                    };
                    let state = JobState::parse(&state).map_err(|_| bad(OP, "job state"))?;
                    if outcome == EnqueueOutcome::Created {
                        self.remember(&id, jobs[i].queue.as_str());
                    }
                    answers[i] = Some(Enqueued { id: JobId::new(id)?, outcome, state });
                }
                if !touched.contains(&queue) {
                    touched.push(queue);
                }
            }
            for (i, claim) in others {
                let id = &jobs[i].id;
                match self.check_claim(id, &claim).await? {
                    Some(state) => {
                        answers[i] = Some(Enqueued { id: id.clone(), outcome: EnqueueOutcome::ExistingId, state });
                    }
                    None => {
                        to_free.push((id.as_str().to_owned(), claim.text()));
                        retry.push(i);
                    }
                }
            }
            self.free(OP, &to_free).await?;
            retry.sort_unstable();
            pending = retry;
        }
        if let Some(&i) = pending.first() {
            return Err(Error::Unavailable(format!(
                "job id {} is being enqueued to another queue at the same time; try again",
                jobs[i].id
            )));
        }
        for queue in &touched {
            self.conn.replicated(OP, &self.queue_meta(queue)).await?;
        }
        if !jobs.is_empty() && self.sharded() {
            // On one server there is no index.
            self.conn.replicated(OP, &self.keys.job_index()).await?;
        }
        answers.into_iter().map(|a| a.ok_or_else(|| bad(OP, "a job without an outcome"))).collect()
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
        let mut jobs: Vec<LeasedJob> = Vec::new();
        let mut now: Option<i64> = None;
        let mut next_event_at: Option<i64> = None;
        for queue in queues {
            let queue = queue.as_str();
            let left = &tokens[jobs.len()..];
            let mut invocation = self.queue_invocation(&FETCH, queue);
            invocation
                .arg(lease.map(|l| millis(l).to_string()).unwrap_or_default())
                .arg(retention.dead_max)
                .arg(age_ms(retention.dead_max_age))
                .arg(types.len());
            for t in types {
                invocation.arg(t.as_str());
            }
            for token in left {
                invocation.arg(token.as_str());
            }
            let reply: Value = self.conn.script(OP, &invocation).await?;
            let mut items = array(reply, OP)?.into_iter();
            let at = num(items.next().unwrap_or(Value::Nil), OP)?;
            now = Some(now.map_or(at, |n| n.max(at)));
            if let Some(next) = opt_num(items.next().unwrap_or(Value::Nil), OP)? {
                next_event_at = Some(next_event_at.map_or(next, |n| n.min(next)));
            }
            let claims = freed(items.next().unwrap_or(Value::Nil), queue, OP)?;
            if items.len() > left.len() {
                return Err(bad(OP, "more jobs than tokens"));
            }
            for (record, token) in items.zip(left) {
                let job = parse_job(record, OP)?;
                self.remember(job.id.as_str(), queue);
                jobs.push(LeasedJob { job, lease_token: token.clone() });
            }
            self.free(OP, &claims).await?;
        }
        let now = match now {
            Some(now) => now,
            None => self.conn.script(OP, &NOW.key(self.keys.job_queues())).await?,
        };
        Ok(Fetched { jobs, now: Timestamp::from_millis(now), next_event_at: next_event_at.map(Timestamp::from_millis) })
    }

    async fn complete(
        &self,
        id: &JobId,
        token: &LeaseToken,
        result: Option<&[u8]>,
        retention: &JobRetention,
    ) -> Result<()> {
        const OP: &str = "jobs.complete";
        let (queue, rest) = self
            .leased(OP, &COMPLETE, id, |invocation| {
                invocation
                    .arg(token.as_str())
                    .arg(if result.is_some() { "1" } else { "0" })
                    .arg(result.unwrap_or_default())
                    .arg(retention.completed_max)
                    .arg(age_ms(retention.completed_max_age));
            })
            .await?;
        self.conn.replicated(OP, &self.queue_meta(&queue)).await?;
        self.free_reported(OP, &queue, rest.into_iter().next().unwrap_or(Value::Nil)).await
    }

    async fn complete_many(&self, completions: &[Completion], retention: &JobRetention) -> Result<Vec<Result<()>>> {
        const OP: &str = "jobs.complete_many";
        let mut answers: Vec<Option<Result<()>>> = vec![None; completions.len()];
        // First each job in the queue this node remembers for it; the others, and the guesses
        // that found no job, in the queue the index names.
        let mut guesses: Vec<Option<String>> = completions.iter().map(|c| self.guess(c.id.as_str())).collect();
        let mut pending: Vec<usize> = Vec::new();
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, guess) in guesses.iter().enumerate() {
            match guess {
                Some(queue) => group(&mut groups, queue, i),
                None => pending.push(i),
            }
        }
        for round in 0..2 {
            if !pending.is_empty() {
                let ids: Vec<JobId> = pending.iter().map(|&i| completions[i].id.clone()).collect();
                let queues = self.queues_of(OP, &ids).await?;
                for (&i, queue) in pending.iter().zip(queues) {
                    match queue {
                        Some(queue) if guesses[i].as_ref() != Some(&queue) => {
                            group(&mut groups, &queue, i);
                            guesses[i] = None;
                        }
                        _ => answers[i] = Some(status(1, &completions[i].id, OP)),
                    }
                }
            }
            pending = Vec::new();
            for (queue, members) in std::mem::take(&mut groups) {
                let codes = self.complete_in(OP, &queue, &members, completions, retention).await?;
                for (code, i) in codes.into_iter().zip(members) {
                    if code == 1 && round == 0 && guesses[i].is_some() {
                        pending.push(i);
                        continue;
                    }
                    if code != 1 {
                        self.remember(completions[i].id.as_str(), &queue);
                    }
                    answers[i] = Some(status(code, &completions[i].id, OP));
                }
            }
        }
        answers.into_iter().map(|a| a.ok_or_else(|| bad(OP, "a job without an answer"))).collect()
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
        let (queue, rest) = self
            .leased(OP, &FAIL, id, |invocation| {
                invocation
                    .arg(token.as_str())
                    .arg(cut_error(error).as_ref())
                    .arg(mode)
                    .arg(after)
                    // Display is the shortest form that parses back to the same f64 (Lua's tonumber).
                    .arg(random.clamp(0.0, 1.0).to_string())
                    .arg(retention.dead_max)
                    .arg(age_ms(retention.dead_max_age));
            })
            .await?;
        let mut rest = rest.into_iter();
        let claims = rest.next().unwrap_or(Value::Nil);
        let state = JobState::parse(&text(rest.next().unwrap_or(Value::Nil), OP)?).map_err(|_| bad(OP, "state"))?;
        let retry_at = opt_num(rest.next().unwrap_or(Value::Nil), OP)?.map(Timestamp::from_millis);
        self.free_reported(OP, &queue, claims).await?;
        Ok(FailOutcome { state, retry_at })
    }

    async fn heartbeat(&self, id: &JobId, token: &LeaseToken, lease: Option<Duration>) -> Result<Timestamp> {
        const OP: &str = "jobs.heartbeat";
        let (_, rest) = self
            .leased(OP, &HEARTBEAT, id, |invocation| {
                invocation.arg(token.as_str()).arg(lease.map(|l| millis(l).to_string()).unwrap_or_default());
            })
            .await?;
        let end = num(rest.into_iter().next().unwrap_or(Value::Nil), OP)?;
        Ok(Timestamp::from_millis(end))
    }

    async fn progress(&self, id: &JobId, token: &LeaseToken, progress: &[u8]) -> Result<()> {
        self.leased("jobs.progress", &PROGRESS, id, |invocation| {
            invocation.arg(token.as_str()).arg(progress);
        })
        .await
        .map(drop)
    }

    async fn release(&self, id: &JobId, token: &LeaseToken) -> Result<()> {
        self.leased("jobs.release", &RELEASE, id, |invocation| {
            invocation.arg(token.as_str());
        })
        .await
        .map(drop)
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        const OP: &str = "jobs.get";
        let Some(queue) = self.queue_of(OP, id).await? else {
            return Ok(None);
        };
        let invocation = self.job_invocation(&GET, &queue, id);
        match self.conn.script::<Value>(OP, &invocation).await? {
            Value::Nil => Ok(None),
            record => parse_job(record, OP).map(Some),
        }
    }

    async fn remove(&self, id: &JobId) -> Result<Option<JobState>> {
        const OP: &str = "jobs.remove";
        let Some(queue) = self.queue_of(OP, id).await? else {
            return Ok(None);
        };
        let invocation = self.job_invocation(&REMOVE, &queue, id);
        let reply: Value = self.conn.script(OP, &invocation).await?;
        let mut items = array(reply, OP)?.into_iter();
        match num(items.next().unwrap_or(Value::Nil), OP)? {
            0 => {
                let state = text(items.next().unwrap_or(Value::Nil), OP)?;
                let state = JobState::parse(&state).map_err(|_| bad(OP, "state"))?;
                self.free_reported(OP, &queue, items.next().unwrap_or(Value::Nil)).await?;
                Ok(Some(state))
            }
            1 => Ok(None),
            2 => Err(Error::Conflict(format!("job {id} is active; fail or complete it first"))),
            _ => Err(bad(OP, "status")),
        }
    }

    async fn cancel_unique(&self, queue: &QueueName, unique_keys: &[String]) -> Result<Vec<JobId>> {
        const OP: &str = "jobs.cancel_unique";
        if unique_keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.queue_invocation(&CANCEL_UNIQUE, queue.as_str());
        invocation.arg(queue.as_str());
        for key in unique_keys {
            invocation.arg(key.as_str());
        }
        let reply: Value = self.conn.script(OP, &invocation).await?;
        self.cancelled(OP, queue, reply).await
    }

    async fn cancel_unique_prefix(&self, queue: &QueueName, prefix: &str) -> Result<Vec<JobId>> {
        const OP: &str = "jobs.cancel_unique_prefix";
        let mut invocation = self.queue_invocation(&CANCEL_UNIQUE_PREFIX, queue.as_str());
        invocation.arg(queue.as_str()).arg(prefix);
        let reply: Value = self.conn.script(OP, &invocation).await?;
        self.cancelled(OP, queue, reply).await
    }

    async fn retry_dead(&self, id: &JobId) -> Result<()> {
        const OP: &str = "jobs.retry_dead";
        let Some(queue) = self.queue_of(OP, id).await? else {
            return Err(Error::NotFound(format!("job {id} not found")));
        };
        let invocation = self.job_invocation(&RETRY_DEAD, &queue, id);
        let code: i64 = self.conn.script(OP, &invocation).await?;
        match code {
            2 => Err(Error::Conflict(format!("job {id} is not dead"))),
            3 => Err(Error::Conflict(format!("another job of its queue holds the unique key of job {id}"))),
            code => status(code, id, OP),
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
        let mut invocation = self.queue_invocation(&LIST, queue.as_str());
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
        let mut invocation = self.queue_invocation(&COUNTS, queue.as_str());
        invocation.arg(queue.as_str()).arg(retention.dead_max).arg(age_ms(retention.dead_max_age));
        let reply: Value = self.conn.script(OP, &invocation).await?;
        let mut items = array(reply, OP)?;
        if items.len() != 14 {
            return Err(bad(OP, "13 counts and the freed claims"));
        }
        let claims = freed(items.pop().unwrap_or(Value::Nil), queue.as_str(), OP)?;
        let n = items.into_iter().map(|v| num(v, OP)).collect::<Result<Vec<i64>>>()?;
        self.free(OP, &claims).await?;
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
        const OP: &str = "jobs.set_paused";
        // Two slots: the queue's meta hash, then the queue-name set (each write on its own).
        let meta = self.queue_meta(queue.as_str());
        let mut cmd = if paused { redis::cmd("HSET") } else { redis::cmd("HDEL") };
        cmd.arg(meta).arg("paused");
        if paused {
            cmd.arg("1");
        }
        self.conn.cmd::<i64>(OP, &cmd).await?;
        self.conn.cmd::<i64>(OP, redis::cmd("SADD").arg(self.keys.job_queues()).arg(queue.as_str())).await.map(drop)
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
        // The tick is claimed in `{jobs}` (once across nodes), then its job enqueued in its
        // queue's slot; the job's id derives from the schedule and the tick, so a retry is
        // idempotent. A crash between the two loses that one tick's job.
        let mut invocation = self.schedule_invocation(&SCHEDULE_FIRE);
        invocation
            .arg(name.as_str())
            .arg(tick.as_millis())
            .arg(next.map(|t| t.as_millis().to_string()).unwrap_or_default());
        let fired: i64 = self.conn.script("jobs.fire_schedule", &invocation).await?;
        if fired != 1 {
            return Ok(false);
        }
        self.enqueue(std::slice::from_ref(job)).await?;
        Ok(true)
    }
}

impl RedisJobs {
    /// The ids a cancel script removed (its reply: the ids, then the claims to free).
    async fn cancelled(&self, op: &'static str, queue: &QueueName, reply: Value) -> Result<Vec<JobId>> {
        let mut parts = array(reply, op)?.into_iter();
        let removed = array(parts.next().unwrap_or(Value::Nil), op)?;
        self.free_reported(op, queue.as_str(), parts.next().unwrap_or(Value::Nil)).await?;
        removed.into_iter().map(|id| JobId::new(text(id, op)?)).collect()
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
