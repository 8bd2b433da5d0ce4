//! The conformance suite on a 3-master Redis Cluster started by the harness on free ports, and
//! how the jobs capability spreads over the masters.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_conformance::harness::redis_engine_on;
use switchboard_conformance::{RedisCluster, RedisServer};
use switchboard_core::{
    Backoff, Due, EnqueueOutcome, JobId, JobRetention, JobState, JobType, LeaseToken, NewJob, QueueName,
};
use switchboard_redis::RedisConfig;

switchboard_conformance::suite!(switchboard_conformance::redis_cluster_engine);

fn job(id: &str, queue: &str) -> NewJob {
    NewJob {
        id: JobId::new(id).unwrap(),
        queue: QueueName::new(queue).unwrap(),
        job_type: JobType::new("t").unwrap(),
        payload: b"{}".to_vec(),
        priority: 0,
        due: Due::Now,
        max_attempts: 1,
        backoff: Backoff::Fixed { delay_ms: 0 },
        lease: Duration::from_secs(30),
        unique_key: None,
    }
}

/// Each queue is its own slot: the jobs of 8 queues land on all 3 masters, every queue's keys on
/// one master; ids stay global (one id, one job, whichever queue asks), and a fetch over queues
/// on different masters drains them in the order given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_spread_over_the_masters() {
    let cluster = RedisCluster::start(3, 0);
    let t = redis_engine_on(RedisConfig::default().with_cluster_nodes(cluster.seeds()), "jobs-spread").await;
    let jobs = &t.engine.jobs;
    let queues: Vec<String> = (0..8).map(|i| format!("queue-{i}")).collect();
    let batch: Vec<NewJob> = (0..16).map(|i| job(&format!("job-{i}"), &queues[i % 8])).collect();
    let out = jobs.enqueue(&batch).await.unwrap();
    assert!(out.iter().all(|e| e.outcome == EnqueueOutcome::Created), "{out:?}");

    // Which masters hold each queue's keys (asked of every master with SCAN).
    let masters = &cluster.nodes[..3];
    let mut holders: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); queues.len()];
    for (m, node) in masters.iter().enumerate() {
        let keys = node.cli(&["--scan", "--pattern", "*{jobs:*"]);
        for key in keys.lines() {
            let queue = key.split("{jobs:").nth(1).and_then(|rest| rest.split('}').next()).unwrap();
            let q = queues.iter().position(|name| name == queue).expect("a queue of this test");
            holders[q].insert(m);
        }
    }
    for (q, nodes) in holders.iter().enumerate() {
        assert_eq!(nodes.len(), 1, "the keys of {} are on one master: {nodes:?}", queues[q]);
    }
    let used: BTreeSet<usize> = holders.iter().flatten().copied().collect();
    assert_eq!(used.len(), 3, "8 queues spread over all 3 masters: {holders:?}");

    // Ids are global: an id of queue-0 enqueued to queue-1 is the existing job.
    let again = jobs.enqueue(&[job("job-0", &queues[1])]).await.unwrap();
    assert_eq!((again[0].outcome, again[0].state), (EnqueueOutcome::ExistingId, JobState::Waiting));
    assert_eq!(jobs.get(&JobId::new("job-0").unwrap()).await.unwrap().unwrap().queue.as_str(), queues[0]);

    // A fetch over all queues takes them in the order given, by id and queue.
    let order: Vec<QueueName> = queues.iter().rev().map(|q| QueueName::new(q.as_str()).unwrap()).collect();
    let tokens: Vec<LeaseToken> = (0..20).map(|_| LeaseToken::generate().unwrap()).collect();
    let fetched = jobs.fetch(&order, &tokens, None, &JobRetention::default()).await.unwrap();
    let got: Vec<&str> = fetched.jobs.iter().map(|j| j.job.queue.as_str()).collect();
    let want: Vec<&str> = queues.iter().rev().flat_map(|q| [q.as_str(), q.as_str()]).collect();
    assert_eq!(got, want);
}

/// Index entries a crash left behind never make an id misbehave: an entry whose job was deleted
/// (the crash came between the delete and the index update) or whose enqueue never created the
/// job (the crash came between the claim and the queue script) reads as no job, and the id can
/// be enqueued again, to that queue or another, exactly once; the enqueue that held the ended
/// claim can no longer create under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_id_claims_are_no_job_and_the_id_can_be_enqueued_again() {
    use EnqueueOutcome::{Created, ExistingId};
    let cluster = RedisCluster::start(3, 0);
    let node = &cluster.nodes[0];
    let cli = |args: &[&str]| node.cli(&[&["-c"], args].concat());
    let config = RedisConfig::default().with_cluster_nodes(cluster.seeds()).with_key_prefix("js:");
    let engine = switchboard_redis::connect(config).await.expect("connect");
    let jobs = &engine.jobs;
    let id = |s: &str| JobId::new(s).unwrap();
    let outcomes = |out: Vec<switchboard_core::Enqueued>| out.into_iter().map(|e| e.outcome).collect::<Vec<_>>();
    let index = |id: &str| cli(&["HGET", "js:{jobs}:ix", id]).trim().to_owned();
    let set_index = |id: &str, claim: &str| assert_eq!(cli(&["HSET", "js:{jobs}:ix", id, claim]).trim(), "1");
    let get_queue =
        |name: String| async move { jobs.get(&id(&name)).await.unwrap().unwrap().queue.as_str().to_owned() };

    // 1. Deleted, then its index entry put back as a crash would have left it.
    jobs.enqueue(&[job("gone", "qa")]).await.unwrap();
    let claim = index("gone");
    assert!(claim.ends_with(":qa"), "{claim}");
    assert_eq!(jobs.remove(&id("gone")).await.unwrap(), Some(JobState::Waiting));
    assert_eq!(index("gone"), "", "remove frees the claim");
    set_index("gone", &claim);
    assert!(jobs.get(&id("gone")).await.unwrap().is_none());
    assert_eq!(jobs.remove(&id("gone")).await.unwrap(), None);
    assert!(matches!(jobs.retry_dead(&id("gone")).await, Err(switchboard_core::Error::NotFound(_))));
    // Again to the same queue, and to another queue: each is a new job, once.
    let out = jobs.enqueue(&[job("gone", "qa"), job("gone", "qb")]).await.unwrap();
    assert_eq!(outcomes(out), [Created, ExistingId]);
    let now = index("gone");
    assert_ne!(now, claim, "a fresh claim");
    assert_eq!(get_queue("gone".into()).await, "qa");
    // Deleted once more with the stale entry put back: another queue gets it.
    assert_eq!(jobs.remove(&id("gone")).await.unwrap(), Some(JobState::Waiting));
    set_index("gone", &now);
    assert_eq!(outcomes(jobs.enqueue(&[job("gone", "qb")]).await.unwrap()), [Created]);
    assert_eq!(outcomes(jobs.enqueue(&[job("gone", "qa")]).await.unwrap()), [ExistingId]);
    assert_eq!(get_queue("gone".into()).await, "qb");
    let waiting_a = jobs.list(&QueueName::new("qa").unwrap(), JobState::Waiting, 0, 10).await.unwrap();
    assert!(waiting_a.is_empty(), "no second copy in qa: {waiting_a:?}");

    // 2. A claim whose job was never created (claim number 999).
    set_index("lost", "999:qa");
    assert!(jobs.get(&id("lost")).await.unwrap().is_none());
    assert_eq!(outcomes(jobs.enqueue(&[job("lost", "qb")]).await.unwrap()), [Created]);
    assert_eq!(get_queue("lost".into()).await, "qb");
    assert!(index("lost").ends_with(":qb"));
    // The claim ended in qa: an enqueue still holding it would be told to claim again.
    let ended = cli(&["ZSCORE", "js:{jobs:qa}:g", "999:lost"]);
    assert!(!ended.trim().is_empty(), "the abandoned claim is ended in its queue");
    // And to its own queue, a claim never created is simply used.
    set_index("late", "998:qa");
    assert_eq!(outcomes(jobs.enqueue(&[job("late", "qa")]).await.unwrap()), [Created]);
    assert_eq!(outcomes(jobs.enqueue(&[job("late", "qb")]).await.unwrap()), [ExistingId]);

    // 3. A duplicate unique key stores nothing and leaves no claim behind.
    let unique = |id: &str| NewJob { unique_key: Some("k".into()), ..job(id, "qa") };
    jobs.enqueue(&[unique("holder")]).await.unwrap();
    let out = jobs.enqueue(&[unique("dup")]).await.unwrap();
    assert_eq!(out[0].id.as_str(), "holder");
    assert_eq!(index("dup"), "");
    assert_eq!(outcomes(jobs.enqueue(&[job("dup", "qb")]).await.unwrap()), [Created]);

    // 4. Enqueues of one id to two queues at once: one job, in the queue whose enqueue created it.
    for n in 0..30 {
        let name = format!("race-{n}");
        let (to_c, to_d) = ([job(&name, "qc")], [job(&name, "qd")]);
        let (x, y) = tokio::join!(jobs.enqueue(&to_c), jobs.enqueue(&to_d));
        let (x, y) = (x.unwrap().remove(0), y.unwrap().remove(0));
        let created: Vec<&str> =
            [(&x, "qc"), (&y, "qd")].into_iter().filter(|(e, _)| e.outcome == Created).map(|(_, q)| q).collect();
        assert_eq!(created.len(), 1, "{x:?} {y:?}");
        assert!(x.outcome == ExistingId || y.outcome == ExistingId, "{x:?} {y:?}");
        assert_eq!(get_queue(name.clone()).await, created[0]);
    }
    let waiting = |queue: &'static str| async move {
        jobs.counts(&QueueName::new(queue).unwrap(), &JobRetention::default()).await.unwrap().waiting
    };
    assert_eq!(waiting("qc").await + waiting("qd").await, 30, "each raced id is one job");
}

/// A node's memory of a job's queue is only a guess: this node enqueued "moved" to qe; another
/// node removes it, enqueues it to qf and leases it; this node's lease operations still find it
/// in qf (on every topology).
async fn lease_operations_follow_a_moved_job(config: RedisConfig) {
    let config = config.with_key_prefix("mv:");
    let jobs = switchboard_redis::connect(config.clone()).await.expect("connect").jobs;
    let id = |s: &str| JobId::new(s).unwrap();
    let other = switchboard_redis::connect(config.clone()).await.expect("connect a second node");
    let retention = JobRetention::default();
    jobs.enqueue(&[job("moved", "qe")]).await.unwrap();
    assert_eq!(other.jobs.remove(&id("moved")).await.unwrap(), Some(JobState::Waiting));
    other.jobs.enqueue(&[job("moved", "qf")]).await.unwrap();
    let tokens = [LeaseToken::generate().unwrap(), LeaseToken::generate().unwrap()];
    let qf = [QueueName::new("qf").unwrap()];
    let leased = other.jobs.fetch(&qf, &tokens[..1], None, &retention).await.unwrap();
    assert_eq!(leased.jobs.len(), 1);
    let wrong = jobs.heartbeat(&id("moved"), &tokens[1], None).await;
    assert!(matches!(wrong, Err(switchboard_core::Error::Conflict(_))), "{wrong:?}");
    jobs.heartbeat(&id("moved"), &tokens[0], None).await.expect("found in qf");
    let done = [switchboard_core::Completion { id: id("moved"), token: tokens[0].clone(), result: None }];
    let answers = jobs.complete_many(&done, &retention).await.unwrap();
    assert!(answers[0].is_ok(), "{answers:?}");
    assert_eq!(jobs.get(&id("moved")).await.unwrap().unwrap().state, JobState::Completed);
    let gone = jobs.complete_many(&done, &retention).await.unwrap();
    assert!(matches!(gone[0], Err(switchboard_core::Error::Conflict(_))), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_operations_follow_a_moved_job_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    lease_operations_follow_a_moved_job(RedisConfig::default().with_cluster_nodes(cluster.seeds())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_operations_follow_a_moved_job_on_one_server() {
    let server = RedisServer::start();
    lease_operations_follow_a_moved_job(RedisConfig { url: server.url(), ..RedisConfig::default() }).await;
}
