//! Conformance cases for the jobs service over each engine: schedules fired by two
//! schedulers at once, the library worker (concurrency, retries, panics, graceful shutdown),
//! and the long-poll.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_core::{
    Backoff, EnqueueJob, JobFailure, JobId, JobState, JobType, PutSchedule, QueueName, ScheduleName, ScheduleSpec,
    WorkerOptions,
};

use crate::harness::{TestEngine, eventually};

fn queue(name: &str) -> QueueName {
    QueueName::new(name).unwrap()
}

fn job(q: &str, id: &str) -> EnqueueJob {
    let mut job = EnqueueJob::new(queue(q), JobType::new("test.job").unwrap(), json!({"id": id}));
    job.job_id = Some(JobId::new(id).unwrap());
    job.backoff = Some(Backoff::Fixed { delay_ms: 10 });
    job
}

/// Two nodes run the schedule loop at once: each tick is fired by exactly one of them.
pub async fn two_schedulers_fire_each_tick_once(t: &TestEngine) {
    let other = t.sibling().await;
    let name = ScheduleName::new("every-second").unwrap();
    let put = PutSchedule {
        spec: ScheduleSpec::EveryMs(1000),
        job: EnqueueJob::new(queue("ticks"), JobType::new("tick").unwrap(), json!({})),
    };
    t.sb.jobs().put_schedule(&name, put.clone()).await.unwrap();
    // The second node upserts the same schedule at its start: the tick stays.
    other.sb.jobs().put_schedule(&name, put).await.unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let run = |sb: switchboard_core::Switchboard, fired: Arc<AtomicUsize>| async move {
        let until = Instant::now() + Duration::from_millis(3500);
        while Instant::now() < until {
            fired.fetch_add(sb.jobs().fire_due_schedules().await.unwrap(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::join!(run(t.sb.clone(), fired.clone()), run(other.sb.clone(), fired.clone()));
    let jobs = t.sb.jobs().list(&queue("ticks"), JobState::Waiting, 0, 100).await.unwrap();
    let fired = fired.load(Ordering::SeqCst);
    assert!((3..=4).contains(&jobs.len()), "{} ticks in 3.5 s", jobs.len());
    assert_eq!(fired, jobs.len(), "every fire made one job: no tick fired twice");
    let mut ticks: Vec<i64> = jobs.iter().map(|j| j.id.as_str().rsplit('@').next().unwrap().parse().unwrap()).collect();
    ticks.sort_unstable();
    assert!(ticks.windows(2).all(|w| w[1] - w[0] == 1000), "{ticks:?}");
    let state = t.sb.jobs().get_schedule(&name).await.unwrap().unwrap();
    assert_eq!(state.last_fired_at.map(|at| at.as_millis()), ticks.last().copied());
}

/// The worker runs every job once, never more than its concurrency at a time, and stores
/// results.
pub async fn worker_runs_jobs_within_its_concurrency(t: &TestEngine) {
    t.start();
    let jobs = t.sb.jobs();
    jobs.enqueue_bulk((0..40).map(|i| job("work", &format!("w{i}"))).collect()).await.unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let mut options = WorkerOptions::new(vec![queue("work")]);
    options.concurrency = 4;
    options.fetch_wait = Duration::from_millis(200);
    let (r, p, n) = (running.clone(), peak.clone(), runs.clone());
    let worker = jobs
        .worker(options)
        .handle("test.job", move |ctx| {
            let (running, peak, runs) = (r.clone(), p.clone(), n.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(15)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                runs.fetch_add(1, Ordering::SeqCst);
                let payload: serde_json::Value = ctx.payload()?;
                Ok(Some(json!({"echo": payload["id"]})))
            }
        })
        .unwrap()
        .start()
        .unwrap();
    eventually(Duration::from_secs(10), "every job processed", || async {
        jobs.stats(&queue("work")).await.unwrap().processed == 40
    })
    .await;
    worker.shutdown().await;
    assert_eq!(runs.load(Ordering::SeqCst), 40);
    let peak = peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "peak concurrency {peak}");
    let done = jobs.get(&JobId::new("w7").unwrap()).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result.as_deref(), Some(br#"{"echo":"w7"}"#.as_slice()));
}

/// A failing or panicking handler retries the job; a permanent failure kills it; a job type
/// without a handler fails rather than vanishing.
pub async fn worker_failures_and_panics_are_recorded_and_retried(t: &TestEngine) {
    t.start();
    let jobs = t.sb.jobs();
    jobs.enqueue(job("flaky", "flaky")).await.unwrap();
    jobs.enqueue(job("flaky", "boom")).await.unwrap();
    let mut bad = job("flaky", "bad");
    bad.max_attempts = Some(5);
    jobs.enqueue(bad).await.unwrap();
    // A handler that panics before it even returns its future (outside any await).
    let mut early = EnqueueJob::new(queue("flaky"), JobType::new("early.panic").unwrap(), json!({}));
    early.job_id = Some(JobId::new("early").unwrap());
    early.max_attempts = Some(2);
    early.backoff = Some(Backoff::Fixed { delay_ms: 10 });
    jobs.enqueue(early).await.unwrap();
    let mut unknown = EnqueueJob::new(queue("flaky"), JobType::new("nobody.handles").unwrap(), json!({}));
    unknown.job_id = Some(JobId::new("unknown").unwrap());
    unknown.max_attempts = Some(1);
    jobs.enqueue(unknown).await.unwrap();
    let mut options = WorkerOptions::new(vec![queue("flaky")]);
    options.fetch_wait = Duration::from_millis(100);
    let worker = jobs
        .worker(options)
        .handle("test.job", |ctx| async move {
            let id = ctx.job().id.as_str().to_owned();
            let attempt = ctx.job().attempts;
            match id.as_str() {
                "flaky" if attempt < 3 => Err(JobFailure::retry(format!("try {attempt}"))),
                "boom" if attempt == 1 => panic!("handler bug"),
                "bad" => Err(JobFailure::permanent("payload is wrong")),
                _ => Ok(None),
            }
        })
        .unwrap()
        .handle("early.panic", |_ctx| -> std::future::Ready<switchboard_core::JobOutcome> {
            panic!("bug before any await")
        })
        .unwrap()
        .start()
        .unwrap();
    let get = |id: &'static str| async move { jobs.get(&JobId::new(id).unwrap()).await.unwrap().unwrap() };
    eventually(Duration::from_secs(10), "every job settled", || async {
        get("flaky").await.state == JobState::Completed
            && get("boom").await.state == JobState::Completed
            && get("bad").await.state == JobState::Dead
            && get("unknown").await.state == JobState::Dead
            && get("early").await.state == JobState::Dead
    })
    .await;
    worker.shutdown().await;
    let flaky = get("flaky").await;
    assert_eq!(flaky.attempts, 3);
    assert_eq!(flaky.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["try 1", "try 2"]);
    let boom = get("boom").await;
    assert_eq!((boom.attempts, boom.errors[0].message.as_str()), (2, "the handler panicked"));
    let bad = get("bad").await;
    assert_eq!(bad.attempts, 1, "a permanent failure is not retried");
    assert!(get("unknown").await.errors[0].message.contains("no handler"));
    let early = get("early").await;
    assert_eq!(early.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), ["the handler panicked"; 2]);
}

/// Shutdown stops fetching, lets short jobs finish and gives back the leases of jobs still
/// running after the grace: they are waiting again, their attempt not counted.
pub async fn worker_shutdown_finishes_or_releases(t: &TestEngine) {
    t.start();
    let jobs = t.sb.jobs();
    jobs.enqueue(job("slow", "quick")).await.unwrap();
    jobs.enqueue(job("slow", "stuck")).await.unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let mut options = WorkerOptions::new(vec![queue("slow")]);
    options.concurrency = 2;
    options.fetch_wait = Duration::from_millis(100);
    options.shutdown_grace = Duration::from_millis(500);
    let s = started.clone();
    let worker = jobs
        .worker(options)
        .handle("test.job", move |ctx| {
            let started = s.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                let pause = if ctx.job().id.as_str() == "quick" { 100 } else { 60_000 };
                tokio::time::sleep(Duration::from_millis(pause)).await;
                Ok(None)
            }
        })
        .unwrap()
        .start()
        .unwrap();
    eventually(Duration::from_secs(5), "both jobs started", || async { started.load(Ordering::SeqCst) == 2 }).await;
    worker.shutdown().await;
    let quick = jobs.get(&JobId::new("quick").unwrap()).await.unwrap().unwrap();
    assert_eq!(quick.state, JobState::Completed);
    let stuck = jobs.get(&JobId::new("stuck").unwrap()).await.unwrap().unwrap();
    assert_eq!((stuck.state, stuck.attempts), (JobState::Waiting, 0));
    // Nothing fetches after shutdown.
    jobs.enqueue(job("slow", "after")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = jobs.get(&JobId::new("after").unwrap()).await.unwrap().unwrap();
    assert_eq!(after.state, JobState::Waiting);
}

/// A batch completion answers each job on its own and records the good ones in order.
pub async fn complete_many_answers_each_job(t: &TestEngine) {
    let jobs = t.sb.jobs();
    jobs.enqueue_bulk((1..=3).map(|i| job("batch", &format!("b{i}"))).collect()).await.unwrap();
    let leased = jobs.fetch(&[queue("batch")], 3, Duration::ZERO, None).await.unwrap();
    assert_eq!(leased.len(), 3);
    let other_token = leased[0].lease_token.clone();
    let mut batch = Vec::new();
    for (i, l) in leased.iter().enumerate() {
        // The second job is completed with another job's token: refused, left active.
        let token = if i == 1 { other_token.clone() } else { l.lease_token.clone() };
        batch.push(jobs.completion(l.job.id.clone(), token, Some(&json!({"n": i}))).unwrap());
    }
    batch.push(jobs.completion(JobId::new("missing").unwrap(), other_token, None).unwrap());
    let answers = jobs.complete_many(&batch).await.unwrap();
    assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
    assert!(matches!(answers[1], Err(switchboard_core::Error::Conflict(_))), "{answers:?}");
    assert!(matches!(answers[3], Err(switchboard_core::Error::NotFound(_))), "{answers:?}");
    let stats = jobs.stats(&queue("batch")).await.unwrap();
    assert_eq!((stats.processed, stats.completed, stats.active), (2, 2, 1));
    let done = jobs.list(&queue("batch"), JobState::Completed, 0, 10).await.unwrap();
    assert_eq!(done.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(), ["b3", "b1"], "newest first");
    assert_eq!(done[0].result.as_deref(), Some(br#"{"n":2}"#.as_slice()));
    let second = jobs.get(&JobId::new("b2").unwrap()).await.unwrap().unwrap();
    assert_eq!(second.state, JobState::Active);
}

/// A long-poll returns as soon as a job is enqueued (through this node) and an empty answer
/// after its wait.
pub async fn long_poll_returns_when_a_job_arrives(t: &TestEngine) {
    let jobs = t.sb.jobs();
    let started = Instant::now();
    let queues = [queue("lp")];
    let poll = jobs.fetch(&queues, 5, Duration::from_secs(10), None);
    let enqueue = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        jobs.enqueue(job("lp", "lp1")).await.unwrap();
    };
    let (fetched, ()) = tokio::join!(poll, enqueue);
    let fetched = fetched.unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].job.id.as_str(), "lp1");
    assert!(started.elapsed() < Duration::from_secs(8), "woken by the enqueue, not the timeout");
    let empty = jobs.fetch(&[queue("lp")], 5, Duration::from_millis(200), None).await.unwrap();
    assert!(empty.is_empty());
    // A delayed job is picked up when due, within one long-poll.
    let mut delayed = job("lp", "lp2");
    delayed.due = switchboard_core::Due::After(Duration::from_millis(300));
    jobs.enqueue(delayed).await.unwrap();
    let fetched = jobs.fetch(&[queue("lp")], 5, Duration::from_secs(5), None).await.unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].job.id.as_str(), "lp2");
}

/// A fetch filtered by types leases only jobs of those types, in fetch order (priority, then
/// FIFO), across the queues in order; the others stay waiting where they were, and an
/// unfiltered fetch then gets them in their order.
pub async fn fetch_by_types_leases_only_those(t: &TestEngine) {
    let jobs = t.sb.jobs();
    let typed = |q: &str, id: &str, ty: &str, priority: i32| {
        let mut job = job(q, id);
        job.job_type = JobType::new(ty).unwrap();
        job.priority = priority;
        job
    };
    jobs.enqueue_bulk(vec![
        typed("mixed", "e1", "email.send", 0),
        typed("mixed", "p1", "push.send", 0),
        typed("mixed", "e2", "email.send", 0),
        typed("mixed", "p2", "push.send", 5),
        typed("mixed", "s1", "sms.send", 0),
        typed("other", "p3", "push.send", 0),
    ])
    .await
    .unwrap();
    let push = [JobType::new("push.send").unwrap()];
    let queues = [queue("mixed"), queue("other")];
    let no_wait = Duration::ZERO;
    let leased = jobs.fetch_of_types_until(&queues, &push, 10, no_wait, None, std::future::pending()).await.unwrap();
    let ids: Vec<_> = leased.iter().map(|l| l.job.id.to_string()).collect();
    assert_eq!(ids, ["p2", "p1", "p3"], "priority first, then FIFO, queue by queue");
    let sms_and_email = [JobType::new("sms.send").unwrap(), JobType::new("email.send").unwrap()];
    let leased = jobs.fetch_of_types_until(&queues, &sms_and_email, 1, no_wait, None, std::future::pending()).await;
    assert_eq!(leased.unwrap()[0].job.id.as_str(), "e1", "several types: the first of any");
    let waiting = jobs.list(&queue("mixed"), JobState::Waiting, 0, 10).await.unwrap();
    let ids: Vec<_> = waiting.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(ids, ["e2", "s1"], "the others stayed where they were");
    let rest = jobs.fetch(&queues, 10, no_wait, None).await.unwrap();
    assert_eq!(rest.iter().map(|l| l.job.id.to_string()).collect::<Vec<_>>(), ["e2", "s1"]);
    let none = jobs.fetch_of_types_until(&queues, &push, 1, no_wait, None, std::future::pending()).await.unwrap();
    assert!(none.is_empty());
    let too_many: Vec<JobType> = (0..33).map(|i| JobType::new(format!("t{i}")).unwrap()).collect();
    let refused = jobs.fetch_of_types_until(&queues, &too_many, 1, no_wait, None, std::future::pending()).await;
    assert!(matches!(refused, Err(switchboard_core::Error::InvalidArgument(_))));
}
