//! The node's one lifecycle, end to end: `serve` starts every loop on the node, and its shutdown
//! ends them all — connections, workers, schedules, sweeps, the engine's own loops — before it
//! closes the engine; afterwards nothing holds the engine.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use switchboard_conformance::{TestEngine, eventually};
use switchboard_core::{
    EnqueueJob, Error, JobType, PutSchedule, QueueName, ScheduleName, ScheduleSpec, Switchboard, SwitchboardConfig,
    WorkerOptions,
};
use switchboard_server::gateway::{GatewayConfig, TokenKey, TokenVerifier};
use switchboard_server::{ApiKey, AppState, ServerConfig, builtin_jobs};
use tokio_util::sync::CancellationToken;

use crate::common::{API_KEY, Client, SECRET, token};

/// Loops every running node has, whatever its engine.
const NODE_LOOPS: [&str; 6] =
    ["hub.dispatch", "presence.sweep", "typing.sweep", "jobs.schedules", "gateway.denials", "gateway.presence_refresh"];

pub(crate) async fn shutdown_ends_every_task_and_closes_the_engine(t: TestEngine) {
    // A facade of its own over the test engine, with the built-in push hook (which holds the
    // jobs service), so that afterwards only this test's handles can keep the engine alive.
    let engine = t.raw_engine().await;
    let engine_loop = if t.name == "redis" { "redis.broker" } else { "memory.sweeper" };
    let alive = Arc::downgrade(&engine.notifications);
    drop(t);
    let sb = Switchboard::builder(engine, SwitchboardConfig::default())
        .push_hook_with(builtin_jobs::queue_pushes)
        .build()
        .expect("facade");
    let config = ServerConfig {
        api_keys: vec![ApiKey::new("tests", API_KEY)],
        gateway: GatewayConfig {
            tokens: Some(TokenVerifier::new(&TokenKey::Hs256(SECRET.into())).expect("verifier")),
            ..GatewayConfig::default()
        },
        drain_timeout: Duration::from_secs(20),
        ..ServerConfig::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let served = tokio::spawn(switchboard_server::serve(listener, AppState::new(sb.clone(), config), shutdown.clone()));
    eventually(Duration::from_secs(10), "the node runs", || async { sb.is_running() }).await;

    // Two devices connected and subscribed to their personal channels.
    let mut clients = Vec::new();
    for device in ["phone", "laptop"] {
        let mut client = Client::open(addr).await;
        let reply = client.connect(&token("lena", device), json!({})).await;
        assert!(reply.get("connect").is_some(), "{reply}");
        clients.push(client);
    }
    // A worker whose jobs take a while, with one running when the shutdown comes.
    let queue = QueueName::new("slow").expect("queue");
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let (s, f) = (started.clone(), finished.clone());
    let _worker = sb
        .jobs()
        .worker(WorkerOptions { fetch_wait: Duration::from_millis(200), ..WorkerOptions::new(vec![queue.clone()]) })
        .handle("slow.job", move |_| {
            let (s, f) = (s.clone(), f.clone());
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.fetch_add(1, Ordering::SeqCst);
                Ok(None)
            }
        })
        .expect("handler")
        .start()
        .expect("the worker starts on the running node");
    sb.jobs()
        .enqueue(EnqueueJob::new(queue, JobType::new("slow.job").expect("type"), json!({})))
        .await
        .expect("enqueue");
    // A schedule, fired by the node's schedule loop.
    let ticks = QueueName::new("ticks").expect("queue");
    let put = PutSchedule {
        spec: ScheduleSpec::EveryMs(1000),
        job: EnqueueJob::new(ticks.clone(), JobType::new("tick").expect("type"), json!({})),
    };
    sb.jobs().put_schedule(&ScheduleName::new("every-second").expect("name"), put).await.expect("schedule");
    eventually(Duration::from_secs(10), "the schedule loop fires", || async {
        sb.jobs().stats(&ticks).await.is_ok_and(|s| s.waiting > 0)
    })
    .await;
    eventually(Duration::from_secs(10), "the job runs", || async { started.load(Ordering::SeqCst) == 1 }).await;

    let running: Vec<String> = sb.node().tasks().into_iter().map(|(name, _)| name).collect();
    for expected in NODE_LOOPS.iter().chain([&engine_loop, &"jobs.worker", &"gateway.connection"]) {
        assert!(running.iter().any(|name| name == expected), "{expected} runs: {running:?}");
    }

    shutdown.cancel();
    served.await.expect("serve ended").expect("serve stopped cleanly");
    for client in &mut clients {
        assert_eq!(client.closed().await, Some(3001), "told to reconnect elsewhere");
    }
    assert_eq!(sb.node().tasks(), Vec::<(String, usize)>::new(), "every task ended within the drain timeout");
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the running job finished before the node stopped");
    assert!(!sb.is_running());
    let closed = sb.engine().health.ping().await.expect_err("the engine is closed");
    assert!(matches!(closed, Error::Unavailable(_)), "{closed:?}");
    let refused = sb.jobs().worker(WorkerOptions::new(vec![ticks])).start().expect_err("the node has stopped");
    assert!(matches!(refused, Error::Unavailable(_)), "{refused:?}");

    drop(clients);
    drop(sb);
    assert!(alive.upgrade().is_none(), "something still holds the engine after the facade is gone");
}
