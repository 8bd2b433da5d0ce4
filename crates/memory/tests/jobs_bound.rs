//! The memory engine's job bound: an enqueue that would pass `max_jobs` is refused whole.

use serde_json::json;
use switchboard_core::{EnqueueJob, Error, JobId, JobType, QueueName, Switchboard, SwitchboardConfig};
use switchboard_memory::MemoryConfig;

fn job(id: &str) -> EnqueueJob {
    let mut job = EnqueueJob::new(QueueName::new("q").unwrap(), JobType::new("t").unwrap(), json!({}));
    job.job_id = Some(JobId::new(id).unwrap());
    job
}

#[tokio::test]
async fn enqueues_past_the_bound_are_refused_and_store_nothing() {
    let engine = switchboard_memory::engine(MemoryConfig { max_jobs: 3, ..MemoryConfig::default() })
        .expect("valid memory config");
    let sb = Switchboard::new(engine, SwitchboardConfig::default()).unwrap();
    let jobs = sb.jobs();
    jobs.enqueue_bulk(vec![job("a"), job("b")]).await.unwrap();
    let refused = jobs.enqueue_bulk(vec![job("c"), job("d")]).await.unwrap_err();
    assert!(matches!(&refused, Error::Unavailable(m) if m.contains("maximum of 3 jobs")), "{refused:?}");
    assert!(jobs.get(&JobId::new("c").unwrap()).await.unwrap().is_none(), "nothing of a refused batch is stored");
    jobs.enqueue(job("c")).await.unwrap();
    assert_eq!(jobs.stats(&QueueName::new("q").unwrap()).await.unwrap().waiting, 3);
    // Removing a job makes room again.
    jobs.remove(&JobId::new("a").unwrap()).await.unwrap();
    jobs.enqueue(job("d")).await.unwrap();
}
