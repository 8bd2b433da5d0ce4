//! `MemoryJobs`: the [`JobStore`] in process memory — per queue, one ordered index of job ids per
//! state, all under one mutex, so every operation is atomic and costs O(log n) per job it moves.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::jobs::{Backoff, MAX_KEPT_ERRORS, MAX_TYPE_SCAN, cut_error};
use switchboard_core::{
    Due, EnqueueOutcome, Enqueued, Error, FailOutcome, Fetched, Job, JobError, JobId, JobRetention, JobState, JobStore,
    JobType, LeaseToken, LeasedJob, NewJob, QueueCounts, QueueName, Result, Retry, Schedule, ScheduleName,
    ScheduleState, Timestamp,
};

use crate::journal::{self, Durable, Journal, Sink, store};
use crate::{codec, lock};

/// A lease token read back from a binary record.
fn read_token(token: &str) -> serde_json::Result<LeaseToken> {
    LeaseToken::new(token).map_err(|_| codec::error("invalid lease token"))
}

/// The job store in memory.
pub(crate) struct MemoryJobs {
    // One std mutex: critical sections are short, never await, and multi-job moves (settling,
    // bulk enqueue, fire_schedule) must be atomic.
    state: Mutex<State>,
    /// Most job records held (every state); an enqueue that would pass it is refused.
    max_jobs: usize,
    journal: Journal,
}

/// A journal record is the list of one operation's changes: each job, queue or schedule it
/// touched, as it now stands (or its removal). Indexes and unique keys are rebuilt from the jobs.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    Job { job: Cow<'a, Job>, token: Option<Cow<'a, LeaseToken>>, seq: u64 },
    JobRemoved(Cow<'a, JobId>),
    Queue { name: Cow<'a, QueueName>, paused: bool, completed_total: u64, failed_total: u64 },
    Schedule(Cow<'a, ScheduleState>),
    ScheduleRemoved(Cow<'a, ScheduleName>),
}

/// The kind byte of a binary record: one operation's job and queue changes, each a tag
/// ([`JOB`], [`JOB_REMOVED`], [`QUEUE`], [`JOB_LEASED`], [`JOB_COMPLETED`], [`JOB_EXTENDED`],
/// [`JOB_PROGRESS`], [`JOB_FAILED`], [`JOB_RELEASED`]) and its fields, up to the record's end. An operation that changes a
/// schedule is written as JSON ([`Change`]).
const CHANGES: u8 = 1;
/// A whole job, its lease token and its index tie-breaker ([`write_record`]).
const JOB: u8 = 1;
const JOB_REMOVED: u8 = 2;
const QUEUE: u8 = 3;
/// A lease: only the fields a fetch changes ([`write_lease`]), applied to the job as replay
/// already holds it.
const JOB_LEASED: u8 = 4;
/// A completion: only the fields a completion changes ([`write_completion`]), applied likewise.
const JOB_COMPLETED: u8 = 5;
/// A heartbeat: the lease's new end ([`write_extension`]), applied likewise.
const JOB_EXTENDED: u8 = 6;
/// A progress report: the job's progress now ([`write_progress`]), applied likewise.
const JOB_PROGRESS: u8 = 7;
/// A failure: the job's new state and times and the error it added ([`write_failure`]), applied
/// likewise.
const JOB_FAILED: u8 = 8;
/// A release: the job waits again with its attempt given back ([`write_release`]), applied
/// likewise.
const JOB_RELEASED: u8 = 9;

/// A job state as one byte: its place in [`JobState::ALL`].
fn state_byte(state: JobState) -> u8 {
    JobState::ALL.iter().position(|s| *s == state).unwrap_or_default() as u8
}

/// Reads a state written by [`state_byte`].
fn read_state(r: &mut codec::Reader<'_>) -> serde_json::Result<JobState> {
    JobState::ALL.get(r.u8()? as usize).copied().ok_or_else(|| codec::error("unknown job state"))
}

/// Reads a count written as a `u64` that must fit a `u32` (attempts).
fn read_u32(r: &mut codec::Reader<'_>) -> serde_json::Result<u32> {
    u32::try_from(r.u64()?).map_err(|_| codec::error("integer out of range"))
}

/// Writes a whole job (every field, in declaration order) into a binary record.
fn write_job(w: &mut codec::Writer<'_>, j: &Job) {
    w.str(j.id.as_str()).str(j.queue.as_str()).str(j.job_type.as_str()).bytes(&j.payload);
    w.i64(i64::from(j.priority)).u8(state_byte(j.state)).u64(u64::from(j.attempts)).u64(u64::from(j.max_attempts));
    match j.backoff {
        Backoff::Exponential { base_ms, max_ms, jitter } => w.u8(0).u64(base_ms).u64(max_ms).u8(u8::from(jitter)),
        Backoff::Fixed { delay_ms } => w.u8(1).u64(delay_ms),
        Backoff::Polynomial { base_ms, exponent, max_ms } => w.u8(2).u64(base_ms).u64(u64::from(exponent)).u64(max_ms),
    };
    w.u64(j.lease.as_secs()).u64(u64::from(j.lease.subsec_nanos()));
    w.opt_bytes(j.unique_key.as_deref().map(str::as_bytes));
    w.i64(j.created_at.as_millis()).i64(j.run_at.as_millis());
    for at in [j.started_at, j.finished_at, j.lease_expires_at] {
        w.opt_i64(at.map(Timestamp::as_millis));
    }
    w.opt_bytes(j.progress.as_deref()).opt_bytes(j.result.as_deref()).u64(j.errors.len() as u64);
    for e in &j.errors {
        w.u64(u64::from(e.attempt)).str(&e.message).i64(e.at.as_millis());
    }
}

/// Writes a [`JOB`] change: the job, its lease token and its index tie-breaker.
fn write_record(w: &mut codec::Writer<'_>, r: &Record) {
    w.u8(JOB);
    write_job(w, &r.job);
    w.opt_bytes(r.token.as_ref().map(|t| t.as_str().as_bytes())).u64(r.seq);
}

/// Writes a [`JOB_LEASED`] change: the job became active under a lease. The state (active) is
/// the tag's; the attempt count, start, lease end and token are the job's values now.
fn write_lease(w: &mut codec::Writer<'_>, r: &Record) {
    let j = &r.job;
    w.u8(JOB_LEASED).str(j.id.as_str()).u64(u64::from(j.attempts));
    w.opt_i64(j.started_at.map(Timestamp::as_millis)).opt_i64(j.lease_expires_at.map(Timestamp::as_millis));
    w.opt_bytes(r.token.as_ref().map(|t| t.as_str().as_bytes())).u64(r.seq);
}

/// Writes a [`JOB_COMPLETED`] change: the job completed (which ends its lease and frees its
/// unique key); its finish time and result are its values now.
fn write_completion(w: &mut codec::Writer<'_>, r: &Record) {
    let j = &r.job;
    w.u8(JOB_COMPLETED).str(j.id.as_str()).opt_i64(j.finished_at.map(Timestamp::as_millis));
    w.opt_bytes(j.result.as_deref()).u64(r.seq);
}

/// Writes a [`JOB_EXTENDED`] change: a heartbeat moved the active job's lease end.
fn write_extension(w: &mut codec::Writer<'_>, r: &Record) {
    let j = &r.job;
    w.u8(JOB_EXTENDED).str(j.id.as_str()).opt_i64(j.lease_expires_at.map(Timestamp::as_millis)).u64(r.seq);
}

/// Writes a [`JOB_PROGRESS`] change: the active job's progress now.
fn write_progress(w: &mut codec::Writer<'_>, r: &Record) {
    w.u8(JOB_PROGRESS).str(r.job.id.as_str()).opt_bytes(r.job.progress.as_deref()).u64(r.seq);
}

/// Writes a [`JOB_FAILED`] change: a failure moved the job out of `active` (waiting, delayed or
/// dead) and added its last error.
fn write_failure(w: &mut codec::Writer<'_>, r: &Record, error: &JobError) {
    let j = &r.job;
    w.u8(JOB_FAILED).str(j.id.as_str()).u8(state_byte(j.state)).i64(j.run_at.as_millis());
    w.opt_i64(j.finished_at.map(Timestamp::as_millis));
    w.u64(u64::from(error.attempt)).str(&error.message).i64(error.at.as_millis()).u64(r.seq);
}

/// Writes a [`JOB_RELEASED`] change: the job left `active` for `waiting` without a failure.
fn write_release(w: &mut codec::Writer<'_>, r: &Record) {
    w.u8(JOB_RELEASED).str(r.job.id.as_str()).u64(u64::from(r.job.attempts)).u64(r.seq);
}

/// A move read from a [`JOB_LEASED`], [`JOB_COMPLETED`], [`JOB_EXTENDED`], [`JOB_PROGRESS`],
/// [`JOB_FAILED`] or [`JOB_RELEASED`] change.
enum Move {
    Leased { attempts: u32, started_at: Option<Timestamp>, lease_expires_at: Option<Timestamp>, token: LeaseToken },
    Completed { finished_at: Option<Timestamp>, result: Option<Vec<u8>> },
    Extended { lease_expires_at: Option<Timestamp> },
    Progressed { progress: Option<Vec<u8>> },
    Failed { state: JobState, run_at: Timestamp, finished_at: Option<Timestamp>, error: JobError },
    Released { attempts: u32 },
}

/// One change read back from a record, in record order.
enum Step<'a> {
    Change(Box<Change<'a>>),
    /// A job's id, its new index tie-breaker and its move.
    Move(JobId, u64, Move),
}

/// Reads one change (its tag, then its fields) of a binary [`CHANGES`] record.
fn read_change<'a>(r: &mut codec::Reader<'a>) -> serde_json::Result<Step<'a>> {
    let time = |v: Option<i64>| v.map(Timestamp::from_millis);
    Ok(Step::Change(Box::new(match r.u8()? {
        JOB => {
            let job = Cow::Owned(read_job(r)?);
            let token = match r.opt_str()? {
                Some(t) => Some(Cow::Owned(read_token(t)?)),
                None => None,
            };
            Change::Job { job, token, seq: r.u64()? }
        }
        JOB_REMOVED => Change::JobRemoved(Cow::Owned(r.parse("job id")?)),
        QUEUE => Change::Queue {
            name: Cow::Owned(r.parse("queue")?),
            paused: r.u8()? != 0,
            completed_total: r.u64()?,
            failed_total: r.u64()?,
        },
        JOB_LEASED => {
            let id = r.parse("job id")?;
            let attempts = read_u32(r)?;
            let (started_at, lease_expires_at) = (time(r.opt_i64()?), time(r.opt_i64()?));
            let token = read_token(r.opt_str()?.ok_or_else(|| codec::error("a lease without its token"))?)?;
            let change = Move::Leased { attempts, started_at, lease_expires_at, token };
            return Ok(Step::Move(id, r.u64()?, change));
        }
        JOB_COMPLETED => {
            let id = r.parse("job id")?;
            let finished_at = time(r.opt_i64()?);
            let result = r.opt_bytes()?.map(<[u8]>::to_vec);
            return Ok(Step::Move(id, r.u64()?, Move::Completed { finished_at, result }));
        }
        JOB_EXTENDED => {
            let id = r.parse("job id")?;
            let lease_expires_at = time(r.opt_i64()?);
            return Ok(Step::Move(id, r.u64()?, Move::Extended { lease_expires_at }));
        }
        JOB_PROGRESS => {
            let id = r.parse("job id")?;
            let progress = r.opt_bytes()?.map(<[u8]>::to_vec);
            return Ok(Step::Move(id, r.u64()?, Move::Progressed { progress }));
        }
        JOB_FAILED => {
            let id = r.parse("job id")?;
            let state = read_state(r)?;
            if !matches!(state, JobState::Waiting | JobState::Delayed | JobState::Dead) {
                return Err(codec::error("a failure into a state a failure never leads to"));
            }
            let (run_at, finished_at) = (Timestamp::from_millis(r.i64()?), time(r.opt_i64()?));
            let attempt = read_u32(r)?;
            let error = JobError { attempt, message: r.str()?.to_owned(), at: Timestamp::from_millis(r.i64()?) };
            return Ok(Step::Move(id, r.u64()?, Move::Failed { state, run_at, finished_at, error }));
        }
        JOB_RELEASED => {
            let id = r.parse("job id")?;
            let attempts = read_u32(r)?;
            return Ok(Step::Move(id, r.u64()?, Move::Released { attempts }));
        }
        _ => return Err(codec::error("unknown job change")),
    })))
}

/// Reads a job written by [`write_job`].
fn read_job(r: &mut codec::Reader<'_>) -> serde_json::Result<Job> {
    let (id, queue, job_type) = (r.parse("job id")?, r.parse("queue")?, r.parse("job type")?);
    let payload = r.bytes()?.to_vec();
    let priority = i32::try_from(r.i64()?).map_err(|_| codec::error("priority out of range"))?;
    let state = read_state(r)?;
    let (attempts, max_attempts) = (read_u32(r)?, read_u32(r)?);
    let backoff = match r.u8()? {
        0 => Backoff::Exponential { base_ms: r.u64()?, max_ms: r.u64()?, jitter: r.u8()? != 0 },
        1 => Backoff::Fixed { delay_ms: r.u64()? },
        2 => Backoff::Polynomial { base_ms: r.u64()?, exponent: read_u32(r)?, max_ms: r.u64()? },
        _ => return Err(codec::error("unknown backoff")),
    };
    let lease = Duration::new(r.u64()?, read_u32(r)?);
    let unique_key = r.opt_str()?.map(str::to_owned);
    let (created_at, run_at) = (Timestamp::from_millis(r.i64()?), Timestamp::from_millis(r.i64()?));
    let mut at = || r.opt_i64().map(|v| v.map(Timestamp::from_millis));
    let (started_at, finished_at, lease_expires_at) = (at()?, at()?, at()?);
    let progress = r.opt_bytes()?.map(<[u8]>::to_vec);
    let result = r.opt_bytes()?.map(<[u8]>::to_vec);
    let count = r.u64()?;
    let mut errors = Vec::new();
    for _ in 0..count {
        let attempt = read_u32(r)?;
        let message = r.str()?.to_owned();
        errors.push(JobError { attempt, message, at: Timestamp::from_millis(r.i64()?) });
    }
    Ok(Job {
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
        unique_key,
        created_at,
        run_at,
        started_at,
        finished_at,
        lease_expires_at,
        progress,
        result,
        errors,
    })
}

/// How an operation changed a job it marked, which picks the job's change in the binary record.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Any change: the whole job is written.
    Whole,
    /// Only leased by a fetch: a [`JOB_LEASED`] change is enough.
    Leased,
    /// Only completed: a [`JOB_COMPLETED`] change is enough.
    Completed,
    /// Only its lease extended by a heartbeat: a [`JOB_EXTENDED`] change is enough.
    Extended,
    /// Only its progress reported: a [`JOB_PROGRESS`] change is enough.
    Progressed,
    /// Only failed (out of `active`, one error added): a [`JOB_FAILED`] change is enough.
    Failed,
    /// Only released (back to `waiting`): a [`JOB_RELEASED`] change is enough.
    Released,
}

/// What an operation touched, turned into its journal record once it is done.
#[derive(Default)]
struct Dirty {
    jobs: Vec<(JobId, Mark)>,
    queues: Vec<QueueName>,
    schedules: Vec<ScheduleName>,
}

impl State {
    fn job_change(&self, id: &JobId) -> Change<'static> {
        match self.jobs.get(id) {
            Some(r) => {
                Change::Job { job: Cow::Owned(r.job.clone()), token: r.token.clone().map(Cow::Owned), seq: r.seq }
            }
            None => Change::JobRemoved(Cow::Owned(id.clone())),
        }
    }

    fn queue_change<'a>(name: &'a QueueName, q: &Queue) -> Change<'a> {
        Change::Queue {
            name: Cow::Borrowed(name),
            paused: q.paused,
            completed_total: q.completed_total,
            failed_total: q.failed_total,
        }
    }

    /// Writes the binary record of everything in `dirty` (which holds no schedule), read from
    /// the state as it stands: no job is cloned.
    fn write_changes(&self, dirty: &Dirty, w: &mut codec::Writer<'_>) {
        // Operations mark a handful of jobs; a bulk enqueue marks each once.
        // Past that, a job marked twice is written at each mark, in order, which replays the same.
        let few = dirty.jobs.len() <= 64;
        let seen = |i: usize, id: &JobId| few && dirty.jobs[..i].iter().any(|(other, _)| other == id);
        for (i, (id, mark)) in dirty.jobs.iter().enumerate() {
            if seen(i, id) {
                continue;
            }
            // A move alone is written as such; a job changed more than once is written whole.
            let alone = || !few || !dirty.jobs[i + 1..].iter().any(|(other, _)| other == id);
            match self.jobs.get(id) {
                Some(r) if *mark == Mark::Leased && r.job.state == JobState::Active && alone() => write_lease(w, r),
                Some(r) if *mark == Mark::Completed && r.job.state == JobState::Completed && alone() => {
                    write_completion(w, r);
                }
                Some(r) if *mark == Mark::Extended && r.job.state == JobState::Active && alone() => {
                    write_extension(w, r);
                }
                Some(r) if *mark == Mark::Progressed && r.job.state == JobState::Active && alone() => {
                    write_progress(w, r);
                }
                Some(r) if *mark == Mark::Failed && r.job.state != JobState::Active && alone() => {
                    match r.job.errors.last() {
                        Some(error) => write_failure(w, r, error),
                        None => write_record(w, r),
                    }
                }
                Some(r) if *mark == Mark::Released && r.job.state == JobState::Waiting && alone() => {
                    write_release(w, r);
                }
                Some(r) => write_record(w, r),
                None => {
                    w.u8(JOB_REMOVED).str(id.as_str());
                }
            }
        }
        for name in &dirty.queues {
            if let Some(q) = self.queues.get(name) {
                w.u8(QUEUE).str(name.as_str()).u8(u8::from(q.paused)).u64(q.completed_total).u64(q.failed_total);
            }
        }
    }

    /// The record of everything marked dirty, emptying the marks.
    fn take_changes(&mut self) -> Vec<Change<'static>> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut changes: Vec<Change<'static>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (id, _) in dirty.jobs {
            if seen.insert(id.clone()) {
                changes.push(self.job_change(&id));
            }
        }
        for name in dirty.queues {
            if let Some(q) = self.queues.get(&name) {
                let (paused, completed_total, failed_total) = (q.paused, q.completed_total, q.failed_total);
                changes.push(Change::Queue { name: Cow::Owned(name), paused, completed_total, failed_total });
            }
        }
        for name in dirty.schedules {
            changes.push(match self.schedules.get(&name) {
                Some(state) => Change::Schedule(Cow::Owned(state.clone())),
                None => Change::ScheduleRemoved(Cow::Owned(name)),
            });
        }
        changes
    }

    /// Files a job read back from the journal, replacing any earlier version of it.
    fn restore(&mut self, job: Job, token: Option<LeaseToken>, seq: u64) {
        self.unfile(&job.id);
        let queue = self.queues.entry(job.queue.clone()).or_default();
        if let Some(k) = &job.unique_key
            && !matches!(job.state, JobState::Completed | JobState::Dead)
        {
            queue.unique.insert(k.clone(), job.id.clone());
        }
        let rec = Record { job, token, seq };
        queue.index(rec.job.state).insert(key(&rec), rec.job.id.clone());
        self.next_seq = self.next_seq.max(seq);
        self.jobs.insert(rec.job.id.clone(), rec);
    }

    /// Applies a move read back from the journal to the job replay already holds.
    fn apply_move(&mut self, id: &JobId, seq: u64, change: Move) -> serde_json::Result<()> {
        let rec = self.jobs.get_mut(id).ok_or_else(|| codec::error("a move of a job never written"))?;
        let queue = self.queues.entry(rec.job.queue.clone()).or_default();
        queue.index(rec.job.state).remove(&key(rec));
        match change {
            Move::Leased { attempts, started_at, lease_expires_at, token } => {
                let j = &mut rec.job;
                (j.state, j.attempts, j.started_at, j.lease_expires_at) =
                    (JobState::Active, attempts, started_at, lease_expires_at);
                rec.token = Some(token);
            }
            Move::Completed { finished_at, result } => {
                let j = &mut rec.job;
                (j.state, j.finished_at, j.result, j.lease_expires_at) =
                    (JobState::Completed, finished_at, result, None);
                rec.token = None;
                queue.release_key(&rec.job);
            }
            Move::Extended { lease_expires_at } => rec.job.lease_expires_at = lease_expires_at,
            Move::Progressed { progress } => rec.job.progress = progress,
            Move::Failed { state, run_at, finished_at, error } => {
                let j = &mut rec.job;
                (j.state, j.run_at, j.finished_at, j.lease_expires_at) = (state, run_at, finished_at, None);
                keep_error(j, error);
                rec.token = None;
                if state == JobState::Dead {
                    queue.release_key(&rec.job);
                }
            }
            Move::Released { attempts } => {
                let j = &mut rec.job;
                (j.state, j.attempts, j.lease_expires_at) = (JobState::Waiting, attempts, None);
                rec.token = None;
            }
        }
        rec.seq = seq;
        queue.index(rec.job.state).insert(key(rec), id.clone());
        self.next_seq = self.next_seq.max(seq);
        Ok(())
    }

    /// Removes a job (in any state) from its index, its unique key and the records.
    fn unfile(&mut self, id: &JobId) {
        let Some(rec) = self.jobs.remove(id) else { return };
        if let Some(q) = self.queues.get_mut(&rec.job.queue) {
            q.index(rec.job.state).remove(&key(&rec));
            q.release_key(&rec.job);
        }
    }
}

impl Durable for MemoryJobs {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(self.max_jobs, Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let steps: Vec<Step<'_>> = match codec::Reader::of(record) {
            Some((CHANGES, mut r)) => {
                let mut steps = Vec::new();
                while !r.is_empty() {
                    steps.push(read_change(&mut r)?);
                }
                steps
            }
            Some(_) => return Err(codec::error("unknown job record")),
            None => serde_json::from_slice::<Vec<Change<'_>>>(record)?
                .into_iter()
                .map(|c| Step::Change(Box::new(c)))
                .collect(),
        };
        let mut s = lock(&self.state);
        for step in steps {
            let change = match step {
                Step::Move(id, seq, change) => {
                    s.apply_move(&id, seq, change)?;
                    continue;
                }
                Step::Change(change) => *change,
            };
            match change {
                Change::Job { job, token, seq } => s.restore(job.into_owned(), token.map(Cow::into_owned), seq),
                Change::JobRemoved(id) => s.unfile(&id),
                Change::Queue { name, paused, completed_total, failed_total } => {
                    let q = s.queues.entry(name.into_owned()).or_default();
                    (q.paused, q.completed_total, q.failed_total) = (paused, completed_total, failed_total);
                }
                Change::Schedule(state) => {
                    let state = state.into_owned();
                    let name = state.schedule.name.clone();
                    let next = state.next_fire_at;
                    s.schedules.insert(name.clone(), state);
                    s.due_schedules.retain(|(_, n)| *n != name);
                    if let Some(at) = next {
                        s.due_schedules.insert((at.as_millis(), name));
                    }
                }
                Change::ScheduleRemoved(name) => {
                    s.schedules.remove(name.as_ref());
                    s.due_schedules.retain(|(_, n)| n != name.as_ref());
                }
            }
        }
        s.dirty = Dirty::default();
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let s = lock(&self.state);
        sink.begin();
        for (name, q) in &s.queues {
            sink.record(&[State::queue_change(name, q)])?;
        }
        for r in s.jobs.values() {
            sink.record_binary(CHANGES, |w| write_record(w, r));
        }
        for state in s.schedules.values() {
            sink.record(&[Change::Schedule(Cow::Borrowed(state))])?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct State {
    /// Source of the tie-breakers in the state indexes (FIFO order within a key).
    next_seq: u64,
    jobs: HashMap<JobId, Record>,
    queues: HashMap<QueueName, Queue>,
    schedules: BTreeMap<ScheduleName, ScheduleState>,
    /// `(next_fire_at, name)` of every schedule with a next tick.
    due_schedules: BTreeSet<(i64, ScheduleName)>,
    /// What the current operation changed (for the journal).
    dirty: Dirty,
}

struct Record {
    job: Job,
    /// The lease proof while active.
    token: Option<LeaseToken>,
    /// Second half of the record's key in its state index, renewed whenever it is filed.
    seq: u64,
}

/// Job ids by `(first, seq)`; `first` depends on the state, see [`key`].
type Index = BTreeMap<(i64, u64), JobId>;

#[derive(Default)]
struct Queue {
    paused: bool,
    /// By `(-priority, seq)`: fetch order.
    waiting: Index,
    /// By `(run_at, seq)`.
    delayed: Index,
    /// By `(lease end, seq)`.
    active: Index,
    /// By `(finished_at, seq)`: oldest first, trimmed from the front.
    completed: Index,
    /// By `(finished_at, seq)`.
    dead: Index,
    /// Unique key -> the pending or active job holding it.
    unique: HashMap<String, JobId>,
    completed_total: u64,
    failed_total: u64,
    completions: PerMinute,
    failures: PerMinute,
}

impl Queue {
    fn index(&mut self, state: JobState) -> &mut Index {
        match state {
            JobState::Waiting => &mut self.waiting,
            JobState::Delayed => &mut self.delayed,
            JobState::Active => &mut self.active,
            JobState::Completed => &mut self.completed,
            JobState::Dead => &mut self.dead,
        }
    }

    /// Drops the unique key of `job` if `job` holds it.
    fn release_key(&mut self, job: &Job) {
        if let Some(key) = &job.unique_key
            && self.unique.get(key) == Some(&job.id)
        {
            self.unique.remove(key);
        }
    }

    fn count_failure(&mut self, now: Timestamp) {
        self.failed_total += 1;
        self.failures.add(minute(now));
    }
}

/// Events in the current and the previous minute of the engine clock.
#[derive(Default, Clone, Copy)]
struct PerMinute {
    minute: i64,
    current: u64,
    previous: u64,
}

impl PerMinute {
    fn roll(&mut self, minute: i64) {
        // A clock that steps back counts into the newest minute seen.
        if minute <= self.minute {
            return;
        }
        self.previous = if minute == self.minute + 1 { self.current } else { 0 };
        self.current = 0;
        self.minute = minute;
    }

    fn add(&mut self, minute: i64) {
        self.roll(minute);
        self.current += 1;
    }

    /// `(current, previous)` as seen at `minute`.
    fn read(mut self, minute: i64) -> (u64, u64) {
        self.roll(minute);
        (self.current, self.previous)
    }
}

fn minute(now: Timestamp) -> i64 {
    now.as_millis().div_euclid(60_000)
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The record's key in the index of its state.
fn key(r: &Record) -> (i64, u64) {
    let j = &r.job;
    let first = match j.state {
        JobState::Waiting => -i64::from(j.priority),
        JobState::Delayed => j.run_at.as_millis(),
        JobState::Active => j.lease_expires_at.map_or(i64::MAX, Timestamp::as_millis),
        JobState::Completed | JobState::Dead => j.finished_at.map_or(0, Timestamp::as_millis),
    };
    (first, r.seq)
}

fn push_error(job: &mut Job, message: &str, now: Timestamp) {
    keep_error(job, JobError { attempt: job.attempts, message: cut_error(message).into_owned(), at: now });
}

/// Adds `error` to the job's errors, keeping the newest [`MAX_KEPT_ERRORS`].
fn keep_error(job: &mut Job, error: JobError) {
    job.errors.push(error);
    if job.errors.len() > MAX_KEPT_ERRORS {
        let extra = job.errors.len() - MAX_KEPT_ERRORS;
        job.errors.drain(..extra);
    }
}

impl State {
    /// Takes job `id` out of its state index, lets `edit` change it (its state too) and files it
    /// under its new state with a fresh sequence number. Leaving `active` drops the lease;
    /// finishing drops the unique key.
    fn refile(&mut self, id: &JobId, edit: impl FnOnce(&mut Job)) -> Option<&mut Record> {
        let State { jobs, queues, next_seq, dirty, .. } = self;
        let rec = jobs.get_mut(id)?;
        dirty.jobs.push((id.clone(), Mark::Whole));
        let queue = queues.get_mut(&rec.job.queue)?;
        queue.index(rec.job.state).remove(&key(rec));
        edit(&mut rec.job);
        if rec.job.state != JobState::Active {
            rec.token = None;
            rec.job.lease_expires_at = None;
        }
        if matches!(rec.job.state, JobState::Completed | JobState::Dead) {
            queue.release_key(&rec.job);
        }
        *next_seq += 1;
        rec.seq = *next_seq;
        queue.index(rec.job.state).insert(key(rec), id.clone());
        Some(rec)
    }

    /// Marks how the job [`State::refile`] just moved changed (it marks [`Mark::Whole`]).
    fn mark(&mut self, mark: Mark) {
        if let Some(last) = self.dirty.jobs.last_mut() {
            last.1 = mark;
        }
    }

    /// Drops the finished jobs of `state` (completed or dead) beyond `max` or older than `max_age`.
    fn trim(&mut self, queue: &QueueName, state: JobState, max: u64, max_age: Duration, now: Timestamp) {
        let Some(q) = self.queues.get_mut(queue) else { return };
        let index = q.index(state);
        let cutoff = now.as_millis().saturating_sub(millis(max_age));
        while let Some((&(finished, _), _)) = index.first_key_value() {
            if index.len() as u64 <= max && finished >= cutoff {
                break;
            }
            if let Some((_, id)) = index.pop_first() {
                self.jobs.remove(&id);
                self.dirty.jobs.push((id, Mark::Whole));
            }
        }
    }

    fn trim_dead(&mut self, queue: &QueueName, retention: &JobRetention, now: Timestamp) {
        self.trim(queue, JobState::Dead, retention.dead_max, retention.dead_max_age, now);
    }

    /// Moves due delayed jobs of `queue` to waiting and reclaims its expired leases.
    fn settle(&mut self, queue: &QueueName, now: Timestamp, retention: &JobRetention) {
        let now_ms = now.as_millis();
        let first_due = |s: &mut State, state: JobState| {
            let q = s.queues.get_mut(queue)?;
            let (&(at, _), id) = q.index(state).first_key_value()?;
            (at <= now_ms).then(|| id.clone())
        };
        while let Some(id) = first_due(self, JobState::Delayed) {
            self.refile(&id, |j| j.state = JobState::Waiting);
        }
        let (mut died, mut lost) = (false, false);
        while let Some(id) = first_due(self, JobState::Active) {
            if let Some(q) = self.queues.get_mut(queue) {
                q.count_failure(now);
            }
            lost = true;
            self.refile(&id, |j| {
                push_error(j, "lease expired", now);
                if j.attempts < j.max_attempts {
                    j.state = JobState::Waiting;
                    j.run_at = now;
                } else {
                    j.state = JobState::Dead;
                    j.finished_at = Some(now);
                    died = true;
                }
            });
        }
        if lost {
            // The queue's failure total changed with the jobs taken back.
            self.dirty.queues.push(queue.clone());
        }
        if died {
            self.trim_dead(queue, retention, now);
        }
    }

    fn enqueue_one(&mut self, new: &NewJob, now: Timestamp) -> Enqueued {
        if let Some(rec) = self.jobs.get(&new.id) {
            return Enqueued { id: new.id.clone(), outcome: EnqueueOutcome::ExistingId, state: rec.job.state };
        }
        let queue = self.queues.entry(new.queue.clone()).or_default();
        if let Some(holder) = new.unique_key.as_ref().and_then(|k| queue.unique.get(k))
            && let Some(rec) = self.jobs.get(holder)
        {
            return Enqueued { id: holder.clone(), outcome: EnqueueOutcome::DuplicateUniqueKey, state: rec.job.state };
        }
        let run_at = match new.due {
            Due::Now => now,
            Due::After(d) => now.plus(d),
            Due::At(at) => at,
        };
        let state = if run_at > now { JobState::Delayed } else { JobState::Waiting };
        let job = Job {
            id: new.id.clone(),
            queue: new.queue.clone(),
            job_type: new.job_type.clone(),
            payload: new.payload.clone(),
            priority: new.priority,
            state,
            attempts: 0,
            max_attempts: new.max_attempts,
            backoff: new.backoff,
            lease: new.lease,
            unique_key: new.unique_key.clone(),
            created_at: now,
            run_at,
            started_at: None,
            finished_at: None,
            lease_expires_at: None,
            progress: None,
            result: None,
            errors: Vec::new(),
        };
        if let Some(k) = &new.unique_key {
            queue.unique.insert(k.clone(), new.id.clone());
        }
        self.dirty.jobs.push((new.id.clone(), Mark::Whole));
        self.dirty.queues.push(new.queue.clone());
        self.next_seq += 1;
        let rec = Record { job, token: None, seq: self.next_seq };
        queue.index(state).insert(key(&rec), new.id.clone());
        self.jobs.insert(new.id.clone(), rec);
        Enqueued { id: new.id.clone(), outcome: EnqueueOutcome::Created, state }
    }

    /// The record of an active job leased under `token`.
    fn leased(&mut self, id: &JobId, token: &LeaseToken) -> Result<&mut Record> {
        let rec = self.jobs.get_mut(id).ok_or_else(|| Error::NotFound(format!("job {id} not found")))?;
        if rec.job.state != JobState::Active || rec.token.as_ref() != Some(token) {
            return Err(Error::Conflict(format!("job {id} is not leased under this token")));
        }
        Ok(rec)
    }

    /// Removes a job that is not active from its index, its unique key and the records.
    fn drop_job(&mut self, id: &JobId) -> Option<JobState> {
        let rec = self.jobs.remove(id)?;
        self.dirty.jobs.push((id.clone(), Mark::Whole));
        if let Some(q) = self.queues.get_mut(&rec.job.queue) {
            q.index(rec.job.state).remove(&key(&rec));
            q.release_key(&rec.job);
        }
        Some(rec.job.state)
    }

    fn set_next_fire(&mut self, name: &ScheduleName, next: Option<Timestamp>) {
        let Some(s) = self.schedules.get_mut(name) else { return };
        self.dirty.schedules.push(name.clone());
        if let Some(old) = s.next_fire_at {
            self.due_schedules.remove(&(old.as_millis(), name.clone()));
        }
        s.next_fire_at = next;
        if let Some(new) = next {
            self.due_schedules.insert((new.as_millis(), name.clone()));
        }
    }
}

impl MemoryJobs {
    pub(crate) fn new(max_jobs: usize, journal: Journal) -> Self {
        MemoryJobs { state: Mutex::default(), max_jobs, journal }
    }

    /// Runs `f` under the lock, then waits for the journal record of what it changed.
    async fn with<T>(&self, f: impl FnOnce(&mut State, Timestamp) -> T) -> Result<T> {
        let now = Timestamp::now();
        let (out, written) = {
            let mut s = lock(&self.state);
            let out = f(&mut s, now);
            let written = if s.dirty.schedules.is_empty() {
                let dirty = std::mem::take(&mut s.dirty);
                let written = (!dirty.jobs.is_empty() || !dirty.queues.is_empty())
                    .then(|| self.journal.append_binary(store::JOBS, CHANGES, |w| s.write_changes(&dirty, w)));
                // Hand the marks' allocations back for the next operation.
                let (mut jobs, mut queues) = (dirty.jobs, dirty.queues);
                jobs.clear();
                queues.clear();
                (s.dirty.jobs, s.dirty.queues) = (jobs, queues);
                written
            } else {
                let changes = s.take_changes();
                Some(self.journal.append(store::JOBS, &changes))
            };
            (out, written)
        };
        if let Some(written) = written {
            written.wait().await?;
        }
        Ok(out)
    }
}

/// See [`JobStore`] for the contract of every method.
#[async_trait]
impl JobStore for MemoryJobs {
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<Enqueued>> {
        self.journal.writable()?;
        self.with(|s, now| {
            // All or nothing: a batch that could pass the bound is refused whole (counting
            // every job as new keeps the check O(1)).
            if s.jobs.len() + jobs.len() > self.max_jobs {
                return Err(Error::Unavailable(format!(
                    "the memory engine holds its maximum of {} jobs; complete or remove jobs first",
                    self.max_jobs
                )));
            }
            Ok(jobs.iter().map(|j| s.enqueue_one(j, now)).collect())
        })
        .await?
    }

    async fn fetch_of_types(
        &self,
        queues: &[QueueName],
        types: &[JobType],
        tokens: &[LeaseToken],
        lease: Option<Duration>,
        retention: &JobRetention,
    ) -> Result<Fetched> {
        self.journal.writable()?;
        self.with(|s, now| {
            let mut jobs = Vec::new();
            let mut next_event: Option<i64> = None;
            for name in queues {
                if s.queues.get(name).is_none_or(|q| q.paused) {
                    continue;
                }
                s.settle(name, now, retention);
                let wanted = tokens.len() - jobs.len();
                let ids: Vec<JobId> = match s.queues.get(name) {
                    None => Vec::new(),
                    Some(q) if types.is_empty() => q.waiting.values().take(wanted).cloned().collect(),
                    Some(q) => q
                        .waiting
                        .values()
                        .take(MAX_TYPE_SCAN)
                        .filter(|id| s.jobs.get(*id).is_some_and(|r| types.contains(&r.job.job_type)))
                        .take(wanted)
                        .cloned()
                        .collect(),
                };
                for id in ids {
                    let Some(token) = tokens.get(jobs.len()) else { break };
                    let Some(rec) = s.refile(&id, |j| {
                        j.state = JobState::Active;
                        j.attempts += 1;
                        j.started_at = Some(now);
                        j.lease_expires_at = Some(now.plus(lease.unwrap_or(j.lease)));
                    }) else {
                        break;
                    };
                    rec.token = Some(token.clone());
                    jobs.push(LeasedJob { job: rec.job.clone(), lease_token: token.clone() });
                    s.mark(Mark::Leased);
                }
                if let Some(q) = s.queues.get(name) {
                    let firsts = [q.delayed.first_key_value(), q.active.first_key_value()];
                    for (&(at, _), _) in firsts.into_iter().flatten() {
                        next_event = Some(next_event.map_or(at, |n| n.min(at)));
                    }
                }
            }
            Fetched { jobs, now, next_event_at: next_event.map(Timestamp::from_millis) }
        })
        .await
    }

    async fn complete(
        &self,
        id: &JobId,
        token: &LeaseToken,
        result: Option<&[u8]>,
        retention: &JobRetention,
    ) -> Result<()> {
        self.journal.writable()?;
        self.with(|s, now| {
            let queue = s.leased(id, token)?.job.queue.clone();
            s.refile(id, |j| {
                j.state = JobState::Completed;
                j.finished_at = Some(now);
                j.result = result.map(<[u8]>::to_vec);
            });
            s.mark(Mark::Completed);
            s.dirty.queues.push(queue.clone());
            if let Some(q) = s.queues.get_mut(&queue) {
                q.completed_total += 1;
                q.completions.add(minute(now));
            }
            s.trim(&queue, JobState::Completed, retention.completed_max, retention.completed_max_age, now);
            Ok(())
        })
        .await?
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
        self.journal.writable()?;
        self.with(|s, now| {
            let job = &s.leased(id, token)?.job;
            let queue = job.queue.clone();
            let delay = match retry {
                _ if job.attempts >= job.max_attempts => None,
                Retry::Backoff => Some(job.backoff.delay_ms(job.attempts, random)),
                Retry::After(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                Retry::Never => None,
            };
            if let Some(q) = s.queues.get_mut(&queue) {
                q.count_failure(now);
            }
            s.dirty.queues.push(queue.clone());
            let moved = s
                .refile(id, |j| {
                    push_error(j, error, now);
                    match delay {
                        Some(0) => {
                            j.state = JobState::Waiting;
                            j.run_at = now;
                        }
                        Some(ms) => {
                            j.state = JobState::Delayed;
                            j.run_at = now.plus(Duration::from_millis(ms));
                        }
                        None => {
                            j.state = JobState::Dead;
                            j.finished_at = Some(now);
                        }
                    }
                })
                .map(|r| (r.job.state, r.job.run_at));
            if moved.is_some() {
                s.mark(Mark::Failed);
            }
            let outcome = match moved {
                Some((JobState::Dead, _)) | None => FailOutcome { state: JobState::Dead, retry_at: None },
                Some((state, run_at)) => FailOutcome { state, retry_at: Some(run_at) },
            };
            if outcome.state == JobState::Dead {
                s.trim_dead(&queue, retention, now);
            }
            Ok(outcome)
        })
        .await?
    }

    async fn heartbeat(&self, id: &JobId, token: &LeaseToken, lease: Option<Duration>) -> Result<Timestamp> {
        self.journal.writable()?;
        self.with(|s, now| {
            s.leased(id, token)?;
            let end = s
                .refile(id, |j| j.lease_expires_at = Some(now.plus(lease.unwrap_or(j.lease))))
                .and_then(|r| r.job.lease_expires_at);
            let end = end.ok_or_else(|| Error::Internal("heartbeat lost the job".into()))?;
            s.mark(Mark::Extended);
            Ok(end)
        })
        .await?
    }

    async fn progress(&self, id: &JobId, token: &LeaseToken, progress: &[u8]) -> Result<()> {
        self.journal.writable()?;
        self.with(|s, _| {
            s.leased(id, token)?.job.progress = Some(progress.to_vec());
            s.dirty.jobs.push((id.clone(), Mark::Progressed));
            Ok(())
        })
        .await?
    }

    async fn release(&self, id: &JobId, token: &LeaseToken) -> Result<()> {
        self.journal.writable()?;
        self.with(|s, _| {
            s.leased(id, token)?;
            let released = s.refile(id, |j| {
                j.state = JobState::Waiting;
                j.attempts = j.attempts.saturating_sub(1);
            });
            if released.is_some() {
                s.mark(Mark::Released);
            }
            Ok(())
        })
        .await?
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        self.with(|s, _| s.jobs.get(id).map(|r| r.job.clone())).await
    }

    async fn remove(&self, id: &JobId) -> Result<Option<JobState>> {
        self.journal.writable()?;
        self.with(|s, _| match s.jobs.get(id) {
            Some(r) if r.job.state == JobState::Active => Err(Error::Conflict(format!("job {id} is active"))),
            _ => Ok(s.drop_job(id)),
        })
        .await?
    }

    async fn cancel_unique(&self, queue: &QueueName, unique_keys: &[String]) -> Result<Vec<JobId>> {
        self.journal.writable()?;
        self.with(|s, _| {
            let mut removed = Vec::new();
            for k in unique_keys {
                let Some(holder) = s.queues.get(queue).and_then(|q| q.unique.get(k)).cloned() else { continue };
                if s.jobs.get(&holder).is_some_and(|r| r.job.state.is_pending()) {
                    s.drop_job(&holder);
                    removed.push(holder);
                }
            }
            removed
        })
        .await
    }

    async fn cancel_unique_prefix(&self, queue: &QueueName, prefix: &str) -> Result<Vec<JobId>> {
        self.journal.writable()?;
        self.with(|s, _| {
            let holders: Vec<JobId> = s
                .queues
                .get(queue)
                .map(|q| q.unique.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(_, id)| id.clone()).collect())
                .unwrap_or_default();
            let mut removed = Vec::new();
            for holder in holders {
                if s.jobs.get(&holder).is_some_and(|r| r.job.state.is_pending()) {
                    s.drop_job(&holder);
                    removed.push(holder);
                }
            }
            removed
        })
        .await
    }

    async fn retry_dead(&self, id: &JobId) -> Result<()> {
        self.journal.writable()?;
        self.with(|s, now| {
            let rec = s.jobs.get(id).ok_or_else(|| Error::NotFound(format!("job {id} not found")))?;
            if rec.job.state != JobState::Dead {
                return Err(Error::Conflict(format!("job {id} is not dead")));
            }
            let (queue, unique_key) = (rec.job.queue.clone(), rec.job.unique_key.clone());
            if let Some(k) = &unique_key
                && s.queues.get(&queue).is_some_and(|q| q.unique.contains_key(k))
            {
                return Err(Error::Conflict(format!("another job of queue {queue} holds unique key {k:?}")));
            }
            s.refile(id, |j| {
                j.state = JobState::Waiting;
                j.attempts = 0;
                j.finished_at = None;
                j.run_at = now;
            });
            if let (Some(k), Some(q)) = (unique_key, s.queues.get_mut(&queue)) {
                q.unique.insert(k, id.clone());
            }
            Ok(())
        })
        .await?
    }

    async fn list(&self, queue: &QueueName, state: JobState, offset: u64, limit: usize) -> Result<Vec<Job>> {
        self.with(|s, _| {
            let State { jobs, queues, .. } = s;
            let Some(q) = queues.get_mut(queue) else { return Vec::new() };
            let skip = usize::try_from(offset).unwrap_or(usize::MAX);
            let index = q.index(state);
            let ids: Box<dyn Iterator<Item = &JobId>> = match state {
                JobState::Completed | JobState::Dead => Box::new(index.values().rev()),
                _ => Box::new(index.values()),
            };
            ids.skip(skip).take(limit).filter_map(|id| jobs.get(id).map(|r| r.job.clone())).collect()
        })
        .await
    }

    async fn counts(&self, queue: &QueueName, retention: &JobRetention) -> Result<QueueCounts> {
        self.with(|s, now| {
            if s.queues.get(queue).is_some_and(|q| !q.paused) {
                s.settle(queue, now, retention);
            }
            let Some(q) = s.queues.get(queue) else {
                return QueueCounts { now_ms: now.as_millis(), ..QueueCounts::default() };
            };
            let (completed_this_minute, completed_last_minute) = q.completions.read(minute(now));
            let (failed_this_minute, failed_last_minute) = q.failures.read(minute(now));
            QueueCounts {
                waiting: q.waiting.len() as u64,
                delayed: q.delayed.len() as u64,
                active: q.active.len() as u64,
                completed: q.completed.len() as u64,
                dead: q.dead.len() as u64,
                paused: q.paused,
                completed_total: q.completed_total,
                failed_total: q.failed_total,
                completed_this_minute,
                completed_last_minute,
                failed_this_minute,
                failed_last_minute,
                now_ms: now.as_millis(),
            }
        })
        .await
    }

    async fn queues(&self) -> Result<Vec<QueueName>> {
        let mut names: Vec<QueueName> = self.with(|s, _| s.queues.keys().cloned().collect()).await?;
        names.sort();
        Ok(names)
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        self.journal.writable()?;
        self.with(|s, _| {
            s.queues.entry(queue.clone()).or_default().paused = paused;
            s.dirty.queues.push(queue.clone());
        })
        .await
    }

    async fn put_schedule(&self, schedule: &Schedule, next_fire_at: Option<Timestamp>) -> Result<bool> {
        self.journal.writable()?;
        self.with(|s, _| {
            let name = &schedule.name;
            let old = s.schedules.remove(name);
            if let Some(at) = old.as_ref().and_then(|o| o.next_fire_at) {
                s.due_schedules.remove(&(at.as_millis(), name.clone()));
            }
            let last_fired_at = old.as_ref().and_then(|o| o.last_fired_at);
            s.dirty.schedules.push(name.clone());
            s.schedules.insert(name.clone(), ScheduleState { schedule: schedule.clone(), next_fire_at, last_fired_at });
            if let Some(at) = next_fire_at {
                s.due_schedules.insert((at.as_millis(), name.clone()));
            }
            old.is_none()
        })
        .await
    }

    async fn get_schedule(&self, name: &ScheduleName) -> Result<Option<ScheduleState>> {
        self.with(|s, _| s.schedules.get(name).cloned()).await
    }

    async fn delete_schedule(&self, name: &ScheduleName) -> Result<bool> {
        self.journal.writable()?;
        self.with(|s, _| {
            s.set_next_fire(name, None);
            s.dirty.schedules.push(name.clone());
            s.schedules.remove(name).is_some()
        })
        .await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleState>> {
        self.with(|s, _| s.schedules.values().cloned().collect()).await
    }

    async fn due_schedules(&self, limit: usize) -> Result<(Timestamp, Vec<ScheduleState>)> {
        self.with(|s, now| {
            let due = s
                .due_schedules
                .iter()
                .take_while(|(at, _)| *at <= now.as_millis())
                .take(limit)
                .filter_map(|(_, name)| s.schedules.get(name).cloned())
                .collect();
            (now, due)
        })
        .await
    }

    async fn fire_schedule(
        &self,
        name: &ScheduleName,
        tick: Timestamp,
        next: Option<Timestamp>,
        job: &NewJob,
    ) -> Result<bool> {
        self.journal.writable()?;
        self.with(|s, now| {
            let Some(state) = s.schedules.get_mut(name) else { return false };
            if state.next_fire_at != Some(tick) {
                return false;
            }
            state.last_fired_at = Some(tick);
            s.set_next_fire(name, next);
            s.enqueue_one(job, now);
            true
        })
        .await
    }
}
