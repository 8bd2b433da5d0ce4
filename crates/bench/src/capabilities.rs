//! `switchboard-bench capabilities`: measures rate-limit checks, session get/touch and cache get/set on an
//! engine, through the library and through HTTP (an in-process server on a loopback port, driven
//! by keep-alive clients in the same process), and — for Redis — the same run's `redis-benchmark`
//! figures for one EVALSHA of a trivial script and for plain GET/SET at the same concurrency:
//! the physical limits of the Redis engine.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use switchboard_core::{
    ChannelName, CreateSession, EnqueueJob, JobType, NewPublication, Policy, PolicyRef, QueueName, RateLimitCheck,
    RateLimitKey, SessionId, Switchboard, UserId,
};
use switchboard_server::{ApiKey, AppState, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::engine::EngineKind;
use crate::measure::{Figures, expect_ok, measure, parse_redis_benchmark};

/// Arguments of `switchboard-bench capabilities`.
#[derive(Args)]
pub(crate) struct CapabilitiesArgs {
    /// Engine to measure.
    #[arg(long, value_enum, default_value = "memory")]
    engine: EngineKind,
    /// Redis URL (for `--engine redis`) [env: REDIS_URL].
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Concurrent callers.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Skip the HTTP workloads.
    #[arg(long)]
    no_http: bool,
}

pub(crate) async fn run(args: CapabilitiesArgs) -> anyhow::Result<()> {
    // A fresh prefix per run so figures never depend on an earlier run's keys.
    let prefix = format!("sbbench:{}:", std::process::id());
    let sb = args.engine.build(args.redis_url.as_deref(), &prefix).await?;
    let duration = Duration::from_secs(args.seconds);
    let c = args.concurrency.max(1);
    println!(
        "engine: {} ({}), concurrency {c}, {}s per workload, {} CPUs",
        args.engine.name(),
        sb.engine().health.info().location,
        args.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| {:<34} | {:>10} | {:>8} | {:>8} |", "workload", "ops/s", "p50 µs", "p99 µs");
    println!("|{:-<36}|{:->12}|{:->10}|{:->10}|", "", "", "", "");

    if args.engine == EngineKind::Redis
        && let Some(url) = &args.redis_url
    {
        match redis_benchmark_evalsha(url, c, duration).await {
            Ok(f) => f.print(),
            Err(e) => println!("| redis-benchmark EVALSHA: unavailable ({e:#}) |"),
        }
        match crate::cache::redis_benchmark(url, c, duration).await {
            Ok(figures) => figures.iter().for_each(Figures::print),
            Err(e) => println!("| redis-benchmark GET/SET: unavailable ({e:#}) |"),
        }
    }

    let sessions = seed_sessions(&sb, 1000).await?;
    // A policy that always allows: the benchmark measures the decision, not the denial.
    let policy = Policy::gcra(1_000_000, 1);
    let sessions = Arc::new(sessions);

    let rl = sb.rate_limits().clone();
    measure("library rate_limit.check (gcra)", c, duration, move |task, i| {
        let rl = rl.clone();
        async move {
            let key =
                RateLimitKey::new(format!("bench:{}", (task * 7919 + i) % 10_000)).map_err(anyhow::Error::from)?;
            rl.check(&[RateLimitCheck { key, policy: PolicyRef::Inline(policy), cost: None }]).await?;
            Ok(())
        }
    })
    .await?
    .print();
    let (s, ids) = (sb.sessions().clone(), sessions.clone());
    measure("library session.get", c, duration, move |task, i| {
        let (s, ids) = (s.clone(), ids.clone());
        async move {
            s.get(&ids[(task + i) % ids.len()]).await?.context("session vanished")?;
            Ok(())
        }
    })
    .await?
    .print();
    let (s, ids) = (sb.sessions().clone(), sessions.clone());
    measure("library session.touch", c, duration, move |task, i| {
        let (s, ids) = (s.clone(), ids.clone());
        async move {
            s.touch(&ids[(task + i) % ids.len()]).await?.context("session vanished")?;
            Ok(())
        }
    })
    .await?
    .print();
    crate::cache::library(&sb, c, duration).await?.iter().for_each(Figures::print);
    jobs_round_trip(&sb, c, duration).await?.print();
    fan_out(&sb, c, duration).await?;

    if !args.no_http {
        http_workloads(sb.clone(), sessions, c, duration).await?;
    }
    Ok(())
}

/// One job enqueued, fetched and completed per operation, each task on one of 8 queues (so on a
/// Cluster the queues spread over the shards). A task fetches after its own enqueue, so its
/// queue always holds a job for it.
async fn jobs_round_trip(sb: &Switchboard, c: usize, duration: Duration) -> anyhow::Result<Figures> {
    let jobs = sb.jobs().clone();
    measure("library job enqueue+fetch+complete (8 queues)", c, duration, move |task, _| {
        let jobs = jobs.clone();
        async move {
            let queue = QueueName::new(format!("bench-{}", task % 8))?;
            jobs.enqueue(EnqueueJob::new(queue.clone(), JobType::new("bench.noop")?, serde_json::json!({"n": 1})))
                .await?;
            let leased = jobs.fetch(std::slice::from_ref(&queue), 1, Duration::ZERO, None).await?;
            let job = leased.first().context("no job fetched")?;
            jobs.complete(&job.job.id, &job.lease_token, None).await?;
            Ok(())
        }
    })
    .await
}

/// Publications on 100 channels, each with a live subscriber on this node, so every one also
/// goes out through the engine's pub/sub (on a Cluster `SPUBLISH` on the channel's shard, to the
/// broker subscribed there). The publish rate is the figure; the subscribers only drain.
async fn fan_out(sb: &Switchboard, c: usize, duration: Duration) -> anyhow::Result<()> {
    if !sb.is_running() {
        sb.start()?;
    }
    let channels: Vec<ChannelName> =
        (0..100).map(|i| ChannelName::new(format!("chat:bench-{i}"))).collect::<Result<_, _>>()?;
    for channel in &channels {
        let mut subscription = sb.hub().subscribe(channel).await?;
        tokio::spawn(async move { while subscription.recv().await.is_some() {} });
    }
    let (streams, channels) = (sb.streams().clone(), Arc::new(channels));
    measure("library streams.publish (subscribed)", c, duration, move |task, i| {
        let (streams, channels) = (streams.clone(), channels.clone());
        async move {
            let channel = &channels[(task * 31 + i) % channels.len()];
            streams
                .publish(channel, NewPublication::new(serde_json::json!({"type": "bench", "data": {"i": i}})))
                .await?;
            Ok(())
        }
    })
    .await?
    .print();
    Ok(())
}

async fn seed_sessions(sb: &Switchboard, n: usize) -> anyhow::Result<Vec<SessionId>> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let user = UserId::new(format!("bench-user-{i}"))?;
        ids.push(sb.sessions().create(CreateSession::for_user(user)).await?.session.id);
    }
    Ok(ids)
}

async fn http_workloads(
    sb: Switchboard,
    sessions: Arc<Vec<SessionId>>,
    c: usize,
    duration: Duration,
) -> anyhow::Result<()> {
    let key = "bench-key-0123456789abcdef".to_owned();
    let config =
        ServerConfig { api_keys: vec![ApiKey { name: "bench".into(), key: key.clone() }], ..ServerConfig::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/api/v1", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(switchboard_server::serve(listener, AppState::new(sb, config), shutdown.clone()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(c).build()?;
    let auth = format!("Bearer {key}");

    let (cl, b, a) = (client.clone(), base.clone(), auth.clone());
    measure("http POST /rate-limits/check", c, duration, move |task, i| {
        let (cl, b, a) = (cl.clone(), b.clone(), a.clone());
        async move {
            let body = serde_json::json!({"key": format!("bench:{}", (task * 7919 + i) % 10_000), "policy": {"limit": 1_000_000u32, "window_ms": 1}});
            expect_ok(cl.post(format!("{b}/rate-limits/check")).header("authorization", a).json(&body).send().await?).await
        }
    })
    .await?
    .print();
    let (cl, b, a, ids) = (client.clone(), base.clone(), auth.clone(), sessions.clone());
    measure("http GET /sessions/{id}", c, duration, move |task, i| {
        let (cl, b, a, ids) = (cl.clone(), b.clone(), a.clone(), ids.clone());
        async move {
            let id = &ids[(task + i) % ids.len()];
            expect_ok(cl.get(format!("{b}/sessions/{id}")).header("authorization", a).send().await?).await
        }
    })
    .await?
    .print();
    let (cl, b, a, ids) = (client.clone(), base.clone(), auth.clone(), sessions.clone());
    measure("http POST /sessions/{id}/touch", c, duration, move |task, i| {
        let (cl, b, a, ids) = (cl.clone(), b.clone(), a.clone(), ids.clone());
        async move {
            let id = &ids[(task + i) % ids.len()];
            expect_ok(cl.post(format!("{b}/sessions/{id}/touch")).header("authorization", a).send().await?).await
        }
    })
    .await?
    .print();
    crate::cache::http(&client, &base, &auth, c, duration).await?.iter().for_each(Figures::print);
    shutdown.cancel();
    server.await??;
    Ok(())
}

/// `redis-benchmark` running EVALSHA of `return 1` at the same concurrency.
async fn redis_benchmark_evalsha(url: &str, concurrency: usize, duration: Duration) -> anyhow::Result<Figures> {
    let sha =
        tokio::process::Command::new("redis-cli").args(["-u", url, "SCRIPT", "LOAD", "return 1"]).output().await?;
    anyhow::ensure!(sha.status.success(), "redis-cli SCRIPT LOAD failed");
    let sha = String::from_utf8_lossy(&sha.stdout).trim().to_owned();
    // Enough requests to run about as long as our workloads at ~100k/s.
    let n = (duration.as_secs().max(1) * 100_000).to_string();
    let out = tokio::process::Command::new("redis-benchmark")
        .args(["-u", url, "-c", &concurrency.to_string(), "-n", &n, "-q", "EVALSHA", &sha, "0"])
        .output()
        .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Progress updates are separated by '\r'; the final figure is the last of them:
    // "EVALSHA <sha> 0: 83000.00 requests per second, p50=0.319 msec".
    let last = text
        .rsplit(['\r', '\n'])
        .find(|l| l.contains("requests per second"))
        .context("no figure in redis-benchmark output")?;
    parse_redis_benchmark("redis-benchmark EVALSHA (limit)", last)
}
