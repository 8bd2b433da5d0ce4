//! Conformance cases for [`switchboard_core::JobStore`], on the raw store: priorities and FIFO,
//! queue order and pause, delays, backoff, leases (expiry, heartbeat, release), the dead set,
//! unique keys, idempotent ids, refusals, counts, retention, lists, concurrent fetchers and
//! schedules with their compare-and-set fire.
//!
//! Engine time is read from the store itself (`Fetched::now`, `QueueCounts::now_ms`, the
//! `due_schedules` clock, the times on records), so no case compares against the test's clock.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::jobs::{MAX_ERROR_BYTES, MAX_KEPT_ERRORS, MAX_PRIORITY, MIN_PRIORITY};
use switchboard_core::{
    Backoff, Due, EnqueueOutcome, Enqueued, Error, FailOutcome, Fetched, Job, JobId, JobRetention, JobState, JobStore,
    JobType, LeaseToken, NewJob, QueueCounts, QueueName, Result, Retry, Schedule, ScheduleName, ScheduleSpec,
    Timestamp,
};

use crate::harness::{TestEngine, eventually};

fn q(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn jid(id: &str) -> JobId {
    JobId::new(id).unwrap()
}

/// A job due now with priority 0, 3 attempts, a fixed 60 s backoff and a 30 s lease.
fn job(queue: &str, id: &str) -> NewJob {
    NewJob {
        id: jid(id),
        queue: q(queue),
        job_type: JobType::new("test.job").unwrap(),
        payload: br#"{"n":1}"#.to_vec(),
        priority: 0,
        due: Due::Now,
        max_attempts: 3,
        backoff: Backoff::Fixed { delay_ms: 60_000 },
        lease: Duration::from_secs(30),
        unique_key: None,
    }
}

fn with_key(mut j: NewJob, key: &str) -> NewJob {
    j.unique_key = Some(key.to_owned());
    j
}

fn tokens(n: usize) -> Vec<LeaseToken> {
    (0..n).map(|_| LeaseToken::generate().unwrap()).collect()
}

fn keep() -> JobRetention {
    JobRetention::default()
}

fn store(t: &TestEngine) -> &dyn JobStore {
    t.engine.jobs.as_ref()
}

async fn enqueue(t: &TestEngine, jobs: &[NewJob]) -> Vec<Enqueued> {
    store(t).enqueue(jobs).await.unwrap()
}

/// Fetches up to `n` jobs from `queues` under the jobs' own leases.
async fn fetch(t: &TestEngine, queues: &[&str], n: usize) -> Fetched {
    fetch_leased(t, queues, n, None).await
}

async fn fetch_leased(t: &TestEngine, queues: &[&str], n: usize, lease: Option<Duration>) -> Fetched {
    let queues: Vec<QueueName> = queues.iter().map(|s| q(s)).collect();
    store(t).fetch(&queues, &tokens(n), lease, &keep()).await.unwrap()
}

/// Fetches exactly one job, which must be `id`; its token.
async fn fetch_one(t: &TestEngine, queue: &str, id: &str) -> LeaseToken {
    let f = fetch(t, &[queue], 1).await;
    assert_eq!(ids(&f), [id], "fetching {id} from {queue}");
    f.jobs[0].lease_token.clone()
}

/// Fetches from `queue` until something comes (within 5 s).
async fn fetch_eventually(t: &TestEngine, queue: &str, what: &str) -> Fetched {
    let got: Mutex<Option<Fetched>> = Mutex::new(None);
    let got_ref = &got;
    eventually(Duration::from_secs(5), what, move || async move {
        let f = fetch(t, &[queue], 1).await;
        let found = !f.jobs.is_empty();
        if found {
            *got_ref.lock().unwrap() = Some(f);
        }
        found
    })
    .await;
    got.into_inner().unwrap().unwrap()
}

fn ids(f: &Fetched) -> Vec<&str> {
    f.jobs.iter().map(|l| l.job.id.as_str()).collect()
}

fn list_ids(jobs: &[Job]) -> Vec<&str> {
    jobs.iter().map(|j| j.id.as_str()).collect()
}

async fn get(t: &TestEngine, id: &str) -> Option<Job> {
    store(t).get(&jid(id)).await.unwrap()
}

async fn must_get(t: &TestEngine, id: &str) -> Job {
    get(t, id).await.unwrap_or_else(|| panic!("job {id} is missing"))
}

async fn counts(t: &TestEngine, queue: &str) -> QueueCounts {
    store(t).counts(&q(queue), &keep()).await.unwrap()
}

async fn list(t: &TestEngine, queue: &str, state: JobState, offset: u64, limit: usize) -> Vec<Job> {
    store(t).list(&q(queue), state, offset, limit).await.unwrap()
}

/// Fails the current attempt of `id` under `token`.
async fn fail(t: &TestEngine, id: &str, token: &LeaseToken, message: &str, retry: Retry) -> FailOutcome {
    store(t).fail(&jid(id), token, message, retry, 0.5, &keep()).await.unwrap()
}

async fn complete(t: &TestEngine, id: &str, token: &LeaseToken) {
    store(t).complete(&jid(id), token, None, &keep()).await.unwrap();
}

/// The engine clock.
async fn engine_now(t: &TestEngine) -> Timestamp {
    store(t).due_schedules(0).await.unwrap().0
}

fn ms_between(earlier: Timestamp, later: Timestamp) -> i64 {
    later.as_millis() - earlier.as_millis()
}

fn is_conflict<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::Conflict(_)))
}

fn is_not_found<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(r, Err(Error::NotFound(_)))
}

/// Higher priority is fetched first; within a level, enqueue order (across bulk and single
/// enqueues); a fetched job is active with its attempt counted and the job's own lease.
pub async fn priority_then_fifo_within_a_level(t: &TestEngine) {
    let prio = |id: &str, p: i32| NewJob { priority: p, ..job("work", id) };
    let created = enqueue(t, &[prio("a", 0), prio("b", 5), prio("c", -3), prio("d", 5), prio("e", 0)]).await;
    assert!(created.iter().all(|e| e.outcome == EnqueueOutcome::Created && e.state == JobState::Waiting));
    enqueue(t, &[prio("f", MAX_PRIORITY)]).await;
    enqueue(t, &[prio("g", MIN_PRIORITY)]).await;
    enqueue(t, &[prio("h", 5)]).await;

    let toks = tokens(3);
    let first = store(t).fetch(&[q("work")], &toks, None, &keep()).await.unwrap();
    assert_eq!(ids(&first), ["f", "b", "d"]);
    for (leased, token) in first.jobs.iter().zip(&toks) {
        assert_eq!(&leased.lease_token, token, "the i-th job gets the i-th token");
        assert_eq!(leased.job.state, JobState::Active);
        assert_eq!(leased.job.attempts, 1);
        assert_eq!(leased.job.started_at, Some(first.now));
        assert_eq!(leased.job.lease_expires_at, Some(first.now.plus(Duration::from_secs(30))));
    }
    let rest = fetch(t, &["work"], 10).await;
    assert_eq!(ids(&rest), ["h", "a", "e", "c", "g"]);
    let none = fetch(t, &["work"], 10).await;
    assert!(none.jobs.is_empty());
    assert_eq!(
        none.next_event_at,
        Some(first.now.plus(Duration::from_secs(30))),
        "with nothing delayed, the next event is the first lease end"
    );
}

/// Queues are drained in the order given, whatever the priorities; a paused queue is skipped
/// until resumed.
pub async fn queues_are_drained_in_order_and_paused_ones_skipped(t: &TestEngine) {
    let urgent = |id: &str| NewJob { priority: MAX_PRIORITY, ..job("urgent", id) };
    enqueue(t, &[job("bulk", "b1"), job("bulk", "b2"), urgent("u1"), urgent("u2")]).await;
    let f = fetch(t, &["bulk", "urgent"], 3).await;
    assert_eq!(ids(&f), ["b1", "b2", "u1"], "the first queue is drained first");

    enqueue(t, &[job("bulk", "b3")]).await;
    store(t).set_paused(&q("bulk"), true).await.unwrap();
    assert!(counts(t, "bulk").await.paused);
    let f = fetch(t, &["bulk", "urgent"], 5).await;
    assert_eq!(ids(&f), ["u2"], "the paused queue is skipped");
    assert!(fetch(t, &["bulk"], 5).await.jobs.is_empty());
    assert_eq!(counts(t, "bulk").await.waiting, 1);

    store(t).set_paused(&q("bulk"), false).await.unwrap();
    assert!(!counts(t, "bulk").await.paused);
    assert_eq!(ids(&fetch(t, &["urgent", "bulk"], 5).await), ["b3"]);

    let names = store(t).queues().await.unwrap();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "queues are listed by name");
    assert!(names.contains(&q("bulk")) && names.contains(&q("urgent")));
}

/// A delayed job (`Due::After` or `Due::At`) is not fetched before it is due and is fetched
/// after; `next_event_at` reports the first due time.
pub async fn delayed_jobs_wait_until_due(t: &TestEngine) {
    let now = engine_now(t).await;
    let at = now.plus(Duration::from_millis(1500));
    let after = NewJob { due: Due::After(Duration::from_millis(1000)), ..job("later", "after") };
    let at_job = NewJob { due: Due::At(at), ..job("later", "at") };
    let states: Vec<JobState> =
        enqueue(t, &[after, at_job, job("later", "now")]).await.iter().map(|e| e.state).collect();
    assert_eq!(states, [JobState::Delayed, JobState::Delayed, JobState::Waiting]);

    let after_job = must_get(t, "after").await;
    assert_eq!(after_job.state, JobState::Delayed);
    assert_eq!(ms_between(after_job.created_at, after_job.run_at), 1000);
    assert_eq!(must_get(t, "at").await.run_at, at);

    let f = fetch(t, &["later"], 5).await;
    assert_eq!(ids(&f), ["now"], "delayed jobs are not fetched before they are due");
    assert_eq!(f.next_event_at, Some(after_job.run_at), "the first delayed job is the next event");
    let c = counts(t, "later").await;
    assert_eq!((c.waiting, c.delayed, c.active), (0, 2, 1));
    assert_eq!(list_ids(&list(t, "later", JobState::Delayed, 0, 10).await), ["after", "at"]);

    let mut fetched: Vec<(String, Timestamp)> = Vec::new();
    for what in ["the job due after 1 s is fetched", "the job due at a time is fetched"] {
        let f = fetch_eventually(t, "later", what).await;
        fetched.extend(f.jobs.iter().map(|l| (l.job.id.to_string(), f.now)));
    }
    assert_eq!(fetched[0].0, "after");
    assert_eq!(fetched[1].0, "at");
    assert!(fetched[0].1 >= after_job.run_at, "fetched before it was due");
    assert!(fetched[1].1 >= at, "fetched before it was due");
}

/// fail with `Retry::Backoff` delays by the job's backoff (`retry_at = now + delay`, jitter in
/// `[d/2, d]`), `Retry::After` by its delay, 0 means waiting at once, `Retry::Never` and the
/// last attempt mean dead.
pub async fn failures_back_off_by_the_job_schedule(t: &TestEngine) {
    // One queue per job, so a retry coming due never overtakes the job a step fetches.
    let with_backoff = |id: &str, backoff: Backoff| NewJob { backoff, max_attempts: 5, ..job(id, id) };
    let exp = Backoff::Exponential { base_ms: 100, max_ms: 1000, jitter: false };
    enqueue(t, &[with_backoff("fixed", Backoff::Fixed { delay_ms: 5000 })]).await;
    enqueue(t, &[with_backoff("exp", exp)]).await;

    // The delay between the failure (the error's time) and the retry, checked on the record.
    async fn delay_of(t: &TestEngine, id: &str, outcome: FailOutcome) -> i64 {
        let job = must_get(t, id).await;
        assert_eq!(job.state, outcome.state);
        let retry_at = outcome.retry_at.expect("a retry has a time");
        assert_eq!(job.run_at, retry_at, "the record is due at retry_at");
        ms_between(job.errors.last().unwrap().at, retry_at)
    }

    let tok = fetch_one(t, "fixed", "fixed").await;
    let out = fail(t, "fixed", &tok, "no", Retry::Backoff).await;
    assert_eq!(out.state, JobState::Delayed);
    assert_eq!(delay_of(t, "fixed", out).await, 5000);

    // Exponential without jitter: 100, 200, 400 ms after attempts 1, 2, 3.
    for (attempt, expected) in [(1u32, 100i64), (2, 200), (3, 400)] {
        let f = fetch_eventually(t, "exp", "the exponential job is due again").await;
        let tok = f.jobs[0].lease_token.clone();
        assert_eq!(f.jobs[0].job.attempts, attempt);
        let out = fail(t, "exp", &tok, "again", Retry::Backoff).await;
        assert_eq!(out.state, JobState::Delayed);
        assert_eq!(delay_of(t, "exp", out).await, expected, "exponential delay after attempt {attempt}");
    }

    // Jitter picks in [d/2, d] with the given random number.
    let jittered = Backoff::Exponential { base_ms: 4000, max_ms: 60_000, jitter: true };
    for (i, random) in [0.0, 0.5, 0.999_999].into_iter().enumerate() {
        let id = format!("jitter{i}");
        enqueue(t, &[with_backoff(&id, jittered)]).await;
        let tok = fetch_one(t, &id, &id).await;
        let out = store(t).fail(&jid(&id), &tok, "x", Retry::Backoff, random, &keep()).await.unwrap();
        let delay = delay_of(t, &id, out).await;
        assert_eq!(delay, jittered.delay_ms(1, random) as i64, "random {random}");
        assert!((2000..=4000).contains(&delay), "jitter {delay} outside [d/2, d]");
    }

    let poly = Backoff::Polynomial { base_ms: 700, exponent: 2, max_ms: 10_000 };
    enqueue(t, &[with_backoff("poly", poly)]).await;
    let tok = fetch_one(t, "poly", "poly").await;
    let out = fail(t, "poly", &tok, "x", Retry::Backoff).await;
    assert_eq!(delay_of(t, "poly", out).await, 700);

    enqueue(t, &[with_backoff("after", Backoff::Fixed { delay_ms: 60_000 })]).await;
    let tok = fetch_one(t, "after", "after").await;
    let out = fail(t, "after", &tok, "x", Retry::After(Duration::from_millis(2500))).await;
    assert_eq!(out.state, JobState::Delayed);
    assert_eq!(delay_of(t, "after", out).await, 2500, "Retry::After overrides the backoff");

    enqueue(t, &[with_backoff("now", Backoff::Fixed { delay_ms: 60_000 })]).await;
    let tok = fetch_one(t, "now", "now").await;
    let out = fail(t, "now", &tok, "x", Retry::After(Duration::ZERO)).await;
    assert_eq!(out.state, JobState::Waiting, "a zero delay means waiting at once");
    assert_eq!(delay_of(t, "now", out).await, 0);
    let tok = fetch_one(t, "now", "now").await;

    let out = fail(t, "now", &tok, "fatal", Retry::Never).await;
    assert_eq!(out, FailOutcome { state: JobState::Dead, retry_at: None }, "Retry::Never kills with attempts left");
    let dead = must_get(t, "now").await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 2));
    assert!(dead.finished_at.is_some());

    enqueue(t, &[NewJob { max_attempts: 1, ..with_backoff("last", Backoff::Fixed { delay_ms: 10 }) }]).await;
    let tok = fetch_one(t, "last", "last").await;
    let out = fail(t, "last", &tok, "x", Retry::Backoff).await;
    assert_eq!(out, FailOutcome { state: JobState::Dead, retry_at: None }, "no attempts left");
}

/// An expired lease puts the job back (a failed attempt, error `lease expired`), the old token
/// is refused; on the last attempt the job dies.
pub async fn expired_lease_requeues_and_counts_an_attempt(t: &TestEngine) {
    enqueue(t, &[job("leases", "slow")]).await;
    let first = fetch_leased(t, &["leases"], 1, Some(Duration::from_millis(300))).await;
    assert_eq!(ids(&first), ["slow"]);
    let lease_end = first.now.plus(Duration::from_millis(300));
    assert_eq!(first.jobs[0].job.lease_expires_at, Some(lease_end), "the fetch's lease overrides the job's");
    let old = first.jobs[0].lease_token.clone();

    let again = fetch_eventually(t, "leases", "the expired job is fetched again").await;
    assert!(again.now >= lease_end, "reclaimed before its lease ended");
    let requeued = &again.jobs[0].job;
    assert_eq!(requeued.attempts, 2, "the expired lease counted as an attempt");
    assert_eq!(requeued.errors.len(), 1);
    assert_eq!((requeued.errors[0].attempt, requeued.errors[0].message.as_str()), (1, "lease expired"));

    let slow = jid("slow");
    assert!(is_conflict(&store(t).complete(&slow, &old, None, &keep()).await));
    assert!(is_conflict(&store(t).heartbeat(&slow, &old, None).await));
    assert!(is_conflict(&store(t).fail(&slow, &old, "x", Retry::Backoff, 0.0, &keep()).await));
    complete(t, "slow", &again.jobs[0].lease_token).await;
    let c = counts(t, "leases").await;
    assert_eq!((c.failed_total, c.completed_total, c.completed), (1, 1, 1));

    enqueue(t, &[NewJob { max_attempts: 1, ..job("leases", "once") }]).await;
    fetch_leased(t, &["leases"], 1, Some(Duration::from_millis(200))).await;
    eventually(Duration::from_secs(5), "the job on its last attempt dies", || async {
        counts(t, "leases").await.dead == 1
    })
    .await;
    let once = must_get(t, "once").await;
    assert_eq!(once.state, JobState::Dead);
    assert_eq!(once.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["lease expired"]);
    assert!(once.finished_at.is_some());
    assert_eq!(once.lease_expires_at, None);
    assert_eq!(counts(t, "leases").await.failed_total, 2);
}

/// A heartbeat moves the lease end (by the given lease or the job's own), so the job is not
/// reclaimed after its first lease would have ended.
pub async fn heartbeat_extends_the_lease(t: &TestEngine) {
    enqueue(t, &[job("hb", "long")]).await;
    let f = fetch_leased(t, &["hb"], 1, Some(Duration::from_millis(400))).await;
    let tok = f.jobs[0].lease_token.clone();
    let end = store(t).heartbeat(&jid("long"), &tok, Some(Duration::from_secs(10))).await.unwrap();
    assert!(ms_between(f.now, end) >= 10_000, "the new end is 10 s from the heartbeat");
    assert!(ms_between(f.now, end) < 15_000);
    assert_eq!(must_get(t, "long").await.lease_expires_at, Some(end));

    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(fetch(t, &["hb"], 1).await.jobs.is_empty(), "an extended lease is not reclaimed");
    let c = counts(t, "hb").await;
    assert_eq!((c.active, c.waiting, c.failed_total), (1, 0, 0));

    let before = engine_now(t).await;
    let end = store(t).heartbeat(&jid("long"), &tok, None).await.unwrap();
    let after = engine_now(t).await;
    assert!(end >= before.plus(Duration::from_secs(30)) && end <= after.plus(Duration::from_secs(30)));
    assert_eq!(must_get(t, "long").await.lease_expires_at, Some(end), "without a lease, the job's own");
    complete(t, "long", &tok).await;
}

/// After its last attempt a job is dead and listed so; retry_dead brings it back with attempts
/// reset and errors kept; remove deletes it (but not an active job).
pub async fn dead_after_max_attempts_then_retry_or_remove(t: &TestEngine) {
    enqueue(t, &[NewJob { max_attempts: 2, ..job("dq", "doomed") }]).await;
    let tok = fetch_one(t, "dq", "doomed").await;
    assert_eq!(fail(t, "doomed", &tok, "first", Retry::After(Duration::ZERO)).await.state, JobState::Waiting);
    let tok = fetch_one(t, "dq", "doomed").await;
    assert_eq!(fail(t, "doomed", &tok, "second", Retry::Backoff).await.state, JobState::Dead);

    let dead = must_get(t, "doomed").await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 2));
    let errs: Vec<(u32, &str)> = dead.errors.iter().map(|e| (e.attempt, e.message.as_str())).collect();
    assert_eq!(errs, [(1, "first"), (2, "second")]);
    assert!(dead.finished_at.is_some());
    assert_eq!(list_ids(&list(t, "dq", JobState::Dead, 0, 10).await), ["doomed"]);
    let c = counts(t, "dq").await;
    assert_eq!((c.dead, c.waiting, c.active), (1, 0, 0));
    assert!(fetch(t, &["dq"], 1).await.jobs.is_empty(), "dead jobs are not fetched");

    store(t).retry_dead(&jid("doomed")).await.unwrap();
    let back = must_get(t, "doomed").await;
    assert_eq!((back.state, back.attempts, back.errors.len()), (JobState::Waiting, 0, 2));
    assert_eq!(back.finished_at, None);
    let c = counts(t, "dq").await;
    assert_eq!((c.dead, c.waiting), (0, 1));
    assert!(list(t, "dq", JobState::Dead, 0, 10).await.is_empty());

    let f = fetch(t, &["dq"], 1).await;
    assert_eq!(f.jobs[0].job.attempts, 1);
    let tok = f.jobs[0].lease_token.clone();
    assert!(is_conflict(&store(t).retry_dead(&jid("doomed")).await), "only dead jobs are retried");
    assert!(is_conflict(&store(t).remove(&jid("doomed")).await), "an active job is not removed");
    assert_eq!(fail(t, "doomed", &tok, "third", Retry::Never).await.state, JobState::Dead);

    assert_eq!(store(t).remove(&jid("doomed")).await.unwrap(), Some(JobState::Dead));
    assert_eq!(get(t, "doomed").await, None);
    assert_eq!(store(t).remove(&jid("doomed")).await.unwrap(), None);
    assert_eq!(counts(t, "dq").await.dead, 0);
    assert!(is_not_found(&store(t).retry_dead(&jid("doomed")).await));

    enqueue(t, &[job("dq", "pending"), NewJob { due: Due::After(Duration::from_secs(60)), ..job("dq", "later") }])
        .await;
    assert_eq!(store(t).remove(&jid("pending")).await.unwrap(), Some(JobState::Waiting));
    assert_eq!(store(t).remove(&jid("later")).await.unwrap(), Some(JobState::Delayed));
    let c = counts(t, "dq").await;
    assert_eq!((c.waiting, c.delayed), (0, 0));
    assert!(fetch(t, &["dq"], 1).await.jobs.is_empty());
}

/// A unique key is held while its job is waiting, delayed or active (per queue), free once it
/// completes, dies or is removed; cancel_unique removes pending holders only.
pub async fn unique_key_dedups_until_the_holder_finishes(t: &TestEngine) {
    let a = enqueue(t, &[with_key(job("mail", "a"), "K")]).await;
    assert_eq!(a[0], Enqueued { id: jid("a"), outcome: EnqueueOutcome::Created, state: JobState::Waiting });
    let b = enqueue(t, &[with_key(job("mail", "b"), "K")]).await;
    assert_eq!(b[0], Enqueued { id: jid("a"), outcome: EnqueueOutcome::DuplicateUniqueKey, state: JobState::Waiting });
    assert_eq!(get(t, "b").await, None);
    let other = enqueue(t, &[with_key(job("sms", "c"), "K")]).await;
    assert_eq!(other[0].outcome, EnqueueOutcome::Created, "keys are per queue");

    let delayed = |id: &str| with_key(NewJob { due: Due::After(Duration::from_secs(60)), ..job("mail", id) }, "K2");
    assert_eq!(enqueue(t, &[delayed("d")]).await[0].state, JobState::Delayed);
    let e = enqueue(t, &[delayed("e")]).await;
    assert_eq!(e[0], Enqueued { id: jid("d"), outcome: EnqueueOutcome::DuplicateUniqueKey, state: JobState::Delayed });

    let tok = fetch_one(t, "mail", "a").await;
    let f = enqueue(t, &[with_key(job("mail", "f"), "K")]).await;
    assert_eq!(f[0], Enqueued { id: jid("a"), outcome: EnqueueOutcome::DuplicateUniqueKey, state: JobState::Active });

    let keys = vec!["K".to_owned(), "K2".to_owned(), "unknown".to_owned()];
    let cancelled = store(t).cancel_unique(&q("mail"), &keys).await.unwrap();
    assert_eq!(cancelled, [jid("d")], "the active holder is left alone");
    assert_eq!(get(t, "d").await, None);
    assert_eq!(counts(t, "mail").await.delayed, 0);
    assert_eq!(enqueue(t, &[delayed("e")]).await[0].outcome, EnqueueOutcome::Created, "cancel frees the key");

    complete(t, "a", &tok).await;
    let g = enqueue(t, &[with_key(job("mail", "g"), "K")]).await;
    assert_eq!(g[0].outcome, EnqueueOutcome::Created, "completion frees the key");
    let cancelled = store(t).cancel_unique(&q("mail"), &["K".to_owned()]).await.unwrap();
    assert_eq!(cancelled, [jid("g")]);
    assert_eq!(must_get(t, "a").await.state, JobState::Completed, "finished jobs are not cancelled");

    // Death frees the key; a retried dead job takes it back, but only if it is free.
    enqueue(t, &[with_key(NewJob { max_attempts: 1, ..job("keys", "h") }, "K3")]).await;
    let tok = fetch_one(t, "keys", "h").await;
    assert_eq!(fail(t, "h", &tok, "x", Retry::Backoff).await.state, JobState::Dead);
    assert_eq!(enqueue(t, &[with_key(job("keys", "i"), "K3")]).await[0].outcome, EnqueueOutcome::Created);
    assert!(is_conflict(&store(t).retry_dead(&jid("h")).await), "i holds the key now");
    assert_eq!(must_get(t, "h").await.state, JobState::Dead);
    assert_eq!(store(t).remove(&jid("i")).await.unwrap(), Some(JobState::Waiting));
    store(t).retry_dead(&jid("h")).await.unwrap();
    let j = enqueue(t, &[with_key(job("keys", "j"), "K3")]).await;
    assert_eq!(j[0], Enqueued { id: jid("h"), outcome: EnqueueOutcome::DuplicateUniqueKey, state: JobState::Waiting });
    store(t).remove(&jid("h")).await.unwrap();
    assert_eq!(enqueue(t, &[with_key(job("keys", "k"), "K3")]).await[0].outcome, EnqueueOutcome::Created);
}

/// A second enqueue of an id (in any state, any queue, or twice in one bulk call) is answered
/// ExistingId and changes nothing.
pub async fn enqueue_is_idempotent_by_id(t: &TestEngine) {
    let first = NewJob { payload: br#"{"v":1}"#.to_vec(), ..job("idem", "x") };
    let second = NewJob { payload: br#"{"v":2}"#.to_vec(), priority: 9, ..job("idem", "x") };
    assert_eq!(enqueue(t, &[first]).await[0].outcome, EnqueueOutcome::Created);
    let again = enqueue(t, std::slice::from_ref(&second)).await;
    assert_eq!(again[0], Enqueued { id: jid("x"), outcome: EnqueueOutcome::ExistingId, state: JobState::Waiting });
    let elsewhere = enqueue(t, &[NewJob { queue: q("other"), ..second.clone() }]).await;
    assert_eq!(elsewhere[0].outcome, EnqueueOutcome::ExistingId, "ids are global");
    let x = must_get(t, "x").await;
    assert_eq!((x.payload.as_slice(), x.priority, x.queue.as_str()), (&br#"{"v":1}"#[..], 0, "idem"));
    assert_eq!(counts(t, "idem").await.waiting, 1);
    assert_eq!(counts(t, "other").await.waiting, 0);

    let y1 = NewJob { payload: b"1".to_vec(), ..job("idem", "y") };
    let y2 = NewJob { payload: b"2".to_vec(), ..job("idem", "y") };
    let bulk = enqueue(t, &[y1, y2, job("idem", "z")]).await;
    let outcomes: Vec<EnqueueOutcome> = bulk.iter().map(|e| e.outcome).collect();
    assert_eq!(outcomes, [EnqueueOutcome::Created, EnqueueOutcome::ExistingId, EnqueueOutcome::Created]);
    assert_eq!(bulk[1].id, jid("y"));
    assert_eq!(must_get(t, "y").await.payload, b"1");
    assert_eq!(counts(t, "idem").await.waiting, 3);

    let tok = fetch_one(t, "idem", "x").await;
    complete(t, "x", &tok).await;
    let done = enqueue(t, &[second]).await;
    assert_eq!(done[0], Enqueued { id: jid("x"), outcome: EnqueueOutcome::ExistingId, state: JobState::Completed });
    let x = must_get(t, "x").await;
    assert_eq!((x.state, x.payload.as_slice()), (JobState::Completed, &br#"{"v":1}"#[..]));
    assert_eq!(counts(t, "idem").await.waiting, 2);
}

/// complete, fail, heartbeat, progress and release refuse a wrong token or a job not active
/// (Conflict) and an unknown job (NotFound), and change nothing.
pub async fn wrong_token_or_unknown_job_is_refused(t: &TestEngine) {
    enqueue(t, &[job("tok", "active"), job("tok", "idle")]).await;
    let tok = fetch_one(t, "tok", "active").await;
    let bad = LeaseToken::generate().unwrap();
    let s = store(t);
    for (id, token, not_found) in [("active", &bad, false), ("idle", &tok, false), ("missing", &tok, true)] {
        let id = jid(id);
        let check = |what: &str, conflict: bool, missing: bool| {
            let ok = if not_found { missing } else { conflict };
            assert!(ok, "{what} on {id:?}: expected {}", if not_found { "NotFound" } else { "Conflict" });
        };
        let r = s.complete(&id, token, None, &keep()).await;
        check("complete", is_conflict(&r), is_not_found(&r));
        let r = s.fail(&id, token, "x", Retry::Backoff, 0.0, &keep()).await;
        check("fail", is_conflict(&r), is_not_found(&r));
        let r = s.heartbeat(&id, token, None).await;
        check("heartbeat", is_conflict(&r), is_not_found(&r));
        let r = s.progress(&id, token, b"1").await;
        check("progress", is_conflict(&r), is_not_found(&r));
        let r = s.release(&id, token).await;
        check("release", is_conflict(&r), is_not_found(&r));
    }
    let active = must_get(t, "active").await;
    assert_eq!((active.state, active.attempts, active.errors.len()), (JobState::Active, 1, 0));
    assert_eq!(active.progress, None);
    assert_eq!(must_get(t, "idle").await.state, JobState::Waiting);
    let c = counts(t, "tok").await;
    assert_eq!((c.waiting, c.active, c.failed_total, c.completed_total), (1, 1, 0, 0));

    complete(t, "active", &tok).await;
    assert!(is_conflict(&s.complete(&jid("active"), &tok, None, &keep()).await), "finished jobs have no lease");
    assert!(is_conflict(&s.progress(&jid("active"), &tok, b"2").await));
}

/// Progress, results and errors (newest kept, long ones cut) are visible in the record.
pub async fn progress_result_and_errors_are_recorded(t: &TestEngine) {
    enqueue(t, &[NewJob { max_attempts: 20, ..job("rec", "p") }]).await;
    let tok = fetch_one(t, "rec", "p").await;
    store(t).progress(&jid("p"), &tok, br#"{"pct":50}"#).await.unwrap();
    assert_eq!(must_get(t, "p").await.progress.as_deref(), Some(&br#"{"pct":50}"#[..]));
    store(t).progress(&jid("p"), &tok, br#"{"pct":60}"#).await.unwrap();
    assert_eq!(must_get(t, "p").await.progress.as_deref(), Some(&br#"{"pct":60}"#[..]));

    let mut tok = tok;
    for n in 1..=12u32 {
        fail(t, "p", &tok, &format!("error {n}"), Retry::After(Duration::ZERO)).await;
        tok = fetch_one(t, "rec", "p").await;
    }
    let p = must_get(t, "p").await;
    assert_eq!(p.attempts, 13);
    assert_eq!(p.errors.len(), MAX_KEPT_ERRORS);
    let kept: Vec<(u32, String)> = p.errors.iter().map(|e| (e.attempt, e.message.clone())).collect();
    let expected: Vec<(u32, String)> = (3..=12).map(|n| (n, format!("error {n}"))).collect();
    assert_eq!(kept, expected, "the newest errors, oldest first");
    assert!(p.errors.windows(2).all(|w| w[0].at <= w[1].at));

    let long = "é".repeat(MAX_ERROR_BYTES);
    fail(t, "p", &tok, &long, Retry::After(Duration::ZERO)).await;
    let cut = must_get(t, "p").await.errors.last().unwrap().message.clone();
    assert!(cut.len() <= MAX_ERROR_BYTES && cut.len() >= MAX_ERROR_BYTES - 8, "cut to {} bytes", cut.len());
    let kept_part = cut.trim_end_matches('…');
    assert!(kept_part.len() < cut.len(), "a cut message is marked");
    assert!(long.starts_with(kept_part) && !kept_part.is_empty());

    let tok = fetch_one(t, "rec", "p").await;
    store(t).complete(&jid("p"), &tok, Some(br#"{"ok":true}"#), &keep()).await.unwrap();
    let p = must_get(t, "p").await;
    assert_eq!(p.state, JobState::Completed);
    assert_eq!(p.result.as_deref(), Some(&br#"{"ok":true}"#[..]));
    assert_eq!(p.progress.as_deref(), Some(&br#"{"pct":60}"#[..]));
    assert!(p.finished_at.is_some() && p.started_at.is_some());
    assert_eq!(p.lease_expires_at, None);
    assert_eq!(p.errors.len(), MAX_KEPT_ERRORS);
}

/// release puts an active job back to waiting (behind those already waiting at its level)
/// without counting the attempt; its token is then refused.
pub async fn release_does_not_count_the_attempt(t: &TestEngine) {
    enqueue(t, &[job("rel", "r1"), job("rel", "r2")]).await;
    let tok = fetch_one(t, "rel", "r1").await;
    store(t).release(&jid("r1"), &tok).await.unwrap();
    let r1 = must_get(t, "r1").await;
    assert_eq!((r1.state, r1.attempts, r1.lease_expires_at), (JobState::Waiting, 0, None));
    assert!(is_conflict(&store(t).complete(&jid("r1"), &tok, None, &keep()).await));
    assert!(is_conflict(&store(t).release(&jid("r1"), &tok).await));

    let f = fetch(t, &["rel"], 2).await;
    assert_eq!(ids(&f), ["r2", "r1"], "a released job goes back behind the waiting ones");
    assert_eq!(f.jobs[1].job.attempts, 1);
    let c = counts(t, "rel").await;
    assert_eq!((c.active, c.failed_total), (2, 0));
}

/// Every field of the counts follows enqueue, fetch, complete, fail, remove and pause.
pub async fn counts_follow_every_operation(t: &TestEngine) {
    let start = engine_now(t).await;
    let empty = counts(t, "cq").await;
    assert_eq!(empty, QueueCounts { now_ms: empty.now_ms, ..QueueCounts::default() });

    let later = NewJob { due: Due::After(Duration::from_secs(60)), ..job("cq", "later") };
    enqueue(t, &[job("cq", "a"), job("cq", "b"), job("cq", "c"), job("cq", "d"), later]).await;
    let expect = |c: QueueCounts, waiting, delayed, active, completed, dead, done, failed| {
        let actual = (c.waiting, c.delayed, c.active, c.completed, c.dead, c.completed_total, c.failed_total);
        assert_eq!(actual, (waiting, delayed, active, completed, dead, done, failed), "{c:?}");
        // Per-minute counts: exact when every operation happened in the minute counted.
        if c.now_ms.div_euclid(60_000) == start.as_millis().div_euclid(60_000) {
            assert_eq!((c.completed_this_minute, c.completed_last_minute), (done, 0), "{c:?}");
            assert_eq!((c.failed_this_minute, c.failed_last_minute), (failed, 0), "{c:?}");
        } else {
            assert_eq!(c.completed_this_minute + c.completed_last_minute, done, "{c:?}");
            assert_eq!(c.failed_this_minute + c.failed_last_minute, failed, "{c:?}");
        }
    };
    expect(counts(t, "cq").await, 4, 1, 0, 0, 0, 0, 0);

    let f = fetch(t, &["cq"], 2).await;
    expect(counts(t, "cq").await, 2, 1, 2, 0, 0, 0, 0);
    complete(t, "a", &f.jobs[0].lease_token).await;
    expect(counts(t, "cq").await, 2, 1, 1, 1, 0, 1, 0);
    fail(t, "b", &f.jobs[1].lease_token, "x", Retry::After(Duration::ZERO)).await;
    expect(counts(t, "cq").await, 3, 1, 0, 1, 0, 1, 1);
    let f = fetch(t, &["cq"], 1).await;
    fail(t, "c", &f.jobs[0].lease_token, "x", Retry::Never).await;
    expect(counts(t, "cq").await, 2, 1, 0, 1, 1, 1, 2);
    let f = fetch(t, &["cq"], 1).await;
    fail(t, "d", &f.jobs[0].lease_token, "x", Retry::Backoff).await;
    expect(counts(t, "cq").await, 1, 2, 0, 1, 1, 1, 3);
    store(t).remove(&jid("later")).await.unwrap();
    store(t).remove(&jid("a")).await.unwrap();
    expect(counts(t, "cq").await, 1, 1, 0, 0, 1, 1, 3);
    store(t).set_paused(&q("cq"), true).await.unwrap();
    let c = counts(t, "cq").await;
    assert!(c.paused);
    expect(c, 1, 1, 0, 0, 1, 1, 3);
    assert!(c.now_ms >= start.as_millis());
}

/// Completed and dead jobs beyond the retention count are dropped oldest first, as records too.
pub async fn retention_by_count_keeps_the_newest(t: &TestEngine) {
    let retention = JobRetention { completed_max: 2, dead_max: 1, ..JobRetention::default() };
    enqueue(t, &[job("ret", "c1"), job("ret", "c2"), job("ret", "c3"), job("ret", "c4")]).await;
    let f = fetch(t, &["ret"], 4).await;
    for leased in &f.jobs {
        store(t).complete(&leased.job.id, &leased.lease_token, None, &retention).await.unwrap();
        // Distinct finish times, so "oldest" does not hinge on ties within a millisecond.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let c = counts(t, "ret").await;
    assert_eq!((c.completed, c.completed_total), (2, 4));
    assert_eq!(list_ids(&list(t, "ret", JobState::Completed, 0, 10).await), ["c4", "c3"]);
    assert_eq!(get(t, "c1").await, None, "a trimmed job's record is gone");
    assert_eq!(get(t, "c2").await, None);
    assert_eq!(enqueue(t, &[job("ret", "c1")]).await[0].outcome, EnqueueOutcome::Created, "its id is free again");

    let doomed = |id: &str| NewJob { max_attempts: 1, ..job("ret-dead", id) };
    enqueue(t, &[doomed("d1"), doomed("d2")]).await;
    let f = fetch(t, &["ret-dead"], 2).await;
    for leased in &f.jobs {
        store(t).fail(&leased.job.id, &leased.lease_token, "x", Retry::Backoff, 0.0, &retention).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(counts(t, "ret-dead").await.dead, 1);
    assert_eq!(get(t, "d1").await, None);
    assert_eq!(list_ids(&list(t, "ret-dead", JobState::Dead, 0, 10).await), ["d2"]);

    let none = JobRetention { completed_max: 0, ..JobRetention::default() };
    enqueue(t, &[job("ret-none", "z")]).await;
    let tok = fetch_one(t, "ret-none", "z").await;
    store(t).complete(&jid("z"), &tok, None, &none).await.unwrap();
    assert_eq!(get(t, "z").await, None, "completed_max 0 keeps none");
    let c = counts(t, "ret-none").await;
    assert_eq!((c.completed, c.completed_total), (0, 1));
}

/// Completed and dead jobs older than the retention age are dropped when another one finishes.
pub async fn retention_by_age_drops_old_finished_jobs(t: &TestEngine) {
    let short = Duration::from_millis(400);
    let retention = JobRetention { completed_max_age: short, dead_max_age: short, ..JobRetention::default() };
    enqueue(t, &[job("age", "a"), job("age", "b")]).await;
    let doomed = |id: &str| NewJob { max_attempts: 1, ..job("age-dead", id) };
    enqueue(t, &[doomed("da"), doomed("db")]).await;

    let tok = fetch_one(t, "age", "a").await;
    store(t).complete(&jid("a"), &tok, None, &retention).await.unwrap();
    let tok = fetch_one(t, "age-dead", "da").await;
    store(t).fail(&jid("da"), &tok, "x", Retry::Never, 0.0, &retention).await.unwrap();
    assert_eq!(must_get(t, "a").await.state, JobState::Completed, "young jobs are kept");

    tokio::time::sleep(Duration::from_millis(700)).await;
    let tok = fetch_one(t, "age", "b").await;
    store(t).complete(&jid("b"), &tok, None, &retention).await.unwrap();
    assert_eq!(get(t, "a").await, None, "the old completed job is dropped");
    assert_eq!(must_get(t, "b").await.state, JobState::Completed);
    assert_eq!(counts(t, "age").await.completed, 1);

    let tok = fetch_one(t, "age-dead", "db").await;
    store(t).fail(&jid("db"), &tok, "x", Retry::Never, 0.0, &retention).await.unwrap();
    assert_eq!(get(t, "da").await, None, "the old dead job is dropped");
    assert_eq!(must_get(t, "db").await.state, JobState::Dead);
    assert_eq!(counts(t, "age-dead").await.dead, 1);
}

/// list: waiting in fetch order, delayed by due time, active by lease end, completed and dead
/// newest first; offset and limit page.
pub async fn lists_are_ordered_and_paged(t: &TestEngine) {
    let prio = |id: &str, p: i32| NewJob { priority: p, ..job("lq", id) };
    enqueue(t, &[prio("w1", 0), prio("w2", 5), prio("w3", 0), prio("w4", 5), prio("w5", -1)]).await;
    let waiting = list(t, "lq", JobState::Waiting, 0, 10).await;
    assert_eq!(list_ids(&waiting), ["w2", "w4", "w1", "w3", "w5"]);
    assert!(waiting.iter().all(|j| j.state == JobState::Waiting && j.queue.as_str() == "lq"));
    assert_eq!(list_ids(&list(t, "lq", JobState::Waiting, 1, 2).await), ["w4", "w1"]);
    assert!(list(t, "lq", JobState::Waiting, 5, 10).await.is_empty());
    assert!(list(t, "nothing-here", JobState::Waiting, 0, 10).await.is_empty());

    let delayed = |id: &str, s: u64| NewJob { due: Due::After(Duration::from_secs(s)), ..job("lq", id) };
    enqueue(t, &[delayed("x30", 30), delayed("x10", 10), delayed("x20", 20)]).await;
    assert_eq!(list_ids(&list(t, "lq", JobState::Delayed, 0, 10).await), ["x10", "x20", "x30"]);
    assert_eq!(list_ids(&list(t, "lq", JobState::Delayed, 2, 10).await), ["x30"]);

    let long = fetch_leased(t, &["lq"], 1, Some(Duration::from_secs(30))).await;
    let short = fetch_leased(t, &["lq"], 1, Some(Duration::from_secs(10))).await;
    assert_eq!((ids(&long), ids(&short)), (vec!["w2"], vec!["w4"]));
    assert_eq!(list_ids(&list(t, "lq", JobState::Active, 0, 10).await), ["w4", "w2"]);

    complete(t, "w2", &long.jobs[0].lease_token).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    complete(t, "w4", &short.jobs[0].lease_token).await;
    assert_eq!(list_ids(&list(t, "lq", JobState::Completed, 0, 10).await), ["w4", "w2"]);
    assert_eq!(list_ids(&list(t, "lq", JobState::Completed, 1, 1).await), ["w2"]);

    let tok = fetch_one(t, "lq", "w1").await;
    fail(t, "w1", &tok, "x", Retry::Never).await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    let tok = fetch_one(t, "lq", "w3").await;
    fail(t, "w3", &tok, "x", Retry::Never).await;
    assert_eq!(list_ids(&list(t, "lq", JobState::Dead, 0, 10).await), ["w3", "w1"]);
    assert_eq!(list_ids(&list(t, "lq", JobState::Dead, 0, 1).await), ["w3"]);
    assert!(list(t, "lq", JobState::Active, 0, 10).await.is_empty());
}

/// 20 concurrent fetchers over 500 jobs: every job is fetched exactly once and none is lost.
pub async fn concurrent_fetchers_take_every_job_exactly_once(t: &TestEngine) {
    let jobs: Vec<NewJob> = (0..500).map(|i| job("race", &format!("job{i}"))).collect();
    enqueue(t, &jobs).await;
    let mut workers = Vec::new();
    for _ in 0..20 {
        let s: Arc<dyn JobStore> = t.engine.jobs.clone();
        workers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let f = s.fetch(&[q("race")], &tokens(7), None, &keep()).await.unwrap();
                if f.jobs.is_empty() {
                    return seen;
                }
                for leased in f.jobs {
                    s.complete(&leased.job.id, &leased.lease_token, None, &keep()).await.unwrap();
                    seen.push(leased.job.id);
                }
            }
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    let distinct: HashSet<&JobId> = all.iter().collect();
    assert_eq!(all.len(), 500, "every job fetched once");
    assert_eq!(distinct.len(), 500, "no job fetched twice");
    let c = counts(t, "race").await;
    assert_eq!((c.waiting, c.active, c.completed, c.completed_total), (0, 0, 500, 500));
}

fn schedule(name: &str, queue: &str) -> Schedule {
    Schedule {
        name: ScheduleName::new(name).unwrap(),
        spec: ScheduleSpec::EveryMs(60_000),
        queue: q(queue),
        job_type: JobType::new("maintenance.tick").unwrap(),
        payload: "{}".to_owned(),
        priority: 0,
        max_attempts: 3,
        backoff: Backoff::default(),
        lease_ms: 30_000,
    }
}

fn sname(name: &str) -> ScheduleName {
    ScheduleName::new(name).unwrap()
}

/// Schedules are upserted by name, read, listed by name and deleted; due_schedules returns
/// only those whose next tick has come.
pub async fn schedules_are_stored_listed_and_due(t: &TestEngine) {
    let s = store(t);
    let now = engine_now(t).await;
    let ago = |ms: u64| Timestamp::from_millis(now.as_millis() - ms as i64);
    assert!(s.put_schedule(&schedule("b-due", "sq"), Some(ago(1000))).await.unwrap());
    assert!(s.put_schedule(&schedule("a-later", "sq"), Some(now.plus(Duration::from_secs(60)))).await.unwrap());
    assert!(s.put_schedule(&schedule("c-never", "sq"), None).await.unwrap());
    assert!(s.put_schedule(&schedule("d-due", "sq"), Some(ago(2000))).await.unwrap());

    let replaced = Schedule { spec: ScheduleSpec::EveryMs(5000), ..schedule("b-due", "sq") };
    assert!(!s.put_schedule(&replaced, Some(ago(1000))).await.unwrap(), "a put of an existing name replaces");
    let got = s.get_schedule(&sname("b-due")).await.unwrap().unwrap();
    assert_eq!(got.schedule, replaced);
    assert_eq!((got.next_fire_at, got.last_fired_at), (Some(ago(1000)), None));
    assert_eq!(s.get_schedule(&sname("missing")).await.unwrap(), None);

    let names: Vec<String> = s.list_schedules().await.unwrap().iter().map(|st| st.schedule.name.to_string()).collect();
    assert_eq!(names, ["a-later", "b-due", "c-never", "d-due"]);

    let (clock, due) = s.due_schedules(10).await.unwrap();
    assert!(clock >= now);
    let mut due_names: Vec<String> = due.iter().map(|st| st.schedule.name.to_string()).collect();
    due_names.sort();
    assert_eq!(due_names, ["b-due", "d-due"], "only schedules whose tick has come");
    assert_eq!(s.due_schedules(1).await.unwrap().1.len(), 1, "at most limit");

    // Moving a tick into the future takes it out of the due ones.
    assert!(!s.put_schedule(&replaced, Some(now.plus(Duration::from_secs(60)))).await.unwrap());
    let due = s.due_schedules(10).await.unwrap().1;
    assert_eq!(due.iter().map(|st| st.schedule.name.as_str()).collect::<Vec<_>>(), ["d-due"]);

    assert!(s.delete_schedule(&sname("c-never")).await.unwrap());
    assert!(!s.delete_schedule(&sname("c-never")).await.unwrap());
    assert_eq!(s.get_schedule(&sname("c-never")).await.unwrap(), None);
    assert!(s.delete_schedule(&sname("d-due")).await.unwrap());
    assert!(s.due_schedules(10).await.unwrap().1.is_empty(), "a deleted schedule is not due");
    assert_eq!(s.list_schedules().await.unwrap().len(), 2);
}

/// fire_schedule is a compare-and-set on the next tick: of 10 concurrent fires of one tick,
/// exactly one wins and exactly one job is enqueued.
pub async fn concurrent_fires_of_one_tick_enqueue_once(t: &TestEngine) {
    let tick = Timestamp::from_millis(engine_now(t).await.as_millis() - 10);
    let next = tick.plus(Duration::from_secs(60));
    store(t).put_schedule(&schedule("tick", "ticks"), Some(tick)).await.unwrap();

    let mut fires = Vec::new();
    for i in 0..10 {
        let s: Arc<dyn JobStore> = t.engine.jobs.clone();
        fires.push(tokio::spawn(async move {
            let j = job("ticks", &format!("fire{i}"));
            s.fire_schedule(&sname("tick"), tick, Some(next), &j).await.unwrap()
        }));
    }
    let mut won = 0;
    for f in fires {
        won += usize::from(f.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one fire wins the tick");
    assert_eq!(counts(t, "ticks").await.waiting, 1, "exactly one job enqueued");
    let st = store(t).get_schedule(&sname("tick")).await.unwrap().unwrap();
    assert_eq!((st.next_fire_at, st.last_fired_at), (Some(next), Some(tick)));
    assert!(store(t).due_schedules(10).await.unwrap().1.is_empty());

    let late = job("ticks", "late");
    assert!(!store(t).fire_schedule(&sname("tick"), tick, Some(next), &late).await.unwrap(), "a fired tick is gone");
    assert_eq!(get(t, "late").await, None);
    assert!(store(t).fire_schedule(&sname("tick"), next, None, &late).await.unwrap());
    assert_eq!(counts(t, "ticks").await.waiting, 2);
    let st = store(t).get_schedule(&sname("tick")).await.unwrap().unwrap();
    assert_eq!((st.next_fire_at, st.last_fired_at), (None, Some(next)));
    assert!(!store(t).fire_schedule(&sname("nope"), tick, None, &job("ticks", "ghost")).await.unwrap());
    assert_eq!(get(t, "ghost").await, None);
}

/// Cancelling by unique-key prefix removes every pending holder whose key starts with it (and
/// nothing else: other prefixes, other queues, active holders); the service validates it.
pub async fn cancel_by_unique_key_prefix(t: &TestEngine) {
    let delayed = |id: &str, key: &str| {
        with_key(NewJob { due: Due::After(Duration::from_secs(3600)), ..job("reminders", id) }, key)
    };
    enqueue(
        t,
        &[
            delayed("r8", "reminder:conv-1:8h"),
            delayed("r24", "reminder:conv-1:24h"),
            delayed("r48", "reminder:conv-10:48h"),
            delayed("other", "reminder:conv-2:8h"),
            with_key(job("reminders", "now"), "reminder:conv-1:now"),
        ],
    )
    .await;
    enqueue(t, &[with_key(job("elsewhere", "x"), "reminder:conv-1:8h")]).await;
    let tok = fetch_one(t, "reminders", "now").await;

    let mut cancelled = store(t).cancel_unique_prefix(&q("reminders"), "reminder:conv-1:").await.unwrap();
    cancelled.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(cancelled, [jid("r24"), jid("r8")], "conv-10 and conv-2 do not match; the active one stays");
    assert_eq!(get(t, "r8").await, None);
    assert!(get(t, "r48").await.is_some() && get(t, "other").await.is_some() && get(t, "x").await.is_some());
    assert_eq!(must_get(t, "now").await.state, JobState::Active);
    assert!(store(t).cancel_unique_prefix(&q("reminders"), "reminder:conv-1:").await.unwrap().is_empty());
    let again = enqueue(t, &[delayed("r8b", "reminder:conv-1:8h")]).await;
    assert_eq!(again[0].outcome, EnqueueOutcome::Created, "cancel frees the keys");
    complete(t, "now", &tok).await;

    let jobs = t.sb.jobs();
    assert_eq!(jobs.cancel_unique_prefix(&q("reminders"), "reminder:").await.unwrap().len(), 3);
    assert!(matches!(jobs.cancel_unique_prefix(&q("reminders"), "").await, Err(Error::InvalidArgument(_))));
    assert!(matches!(jobs.cancel_unique_prefix(&q("reminders"), "has space").await, Err(Error::InvalidArgument(_))));
}
