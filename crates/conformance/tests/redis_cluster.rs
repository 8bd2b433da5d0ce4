//! The conformance suite on a 3-master Redis Cluster started by the harness on free ports, and
//! how the jobs capability spreads over the masters.

use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_conformance::RedisCluster;
use switchboard_conformance::harness::redis_engine_on;
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
