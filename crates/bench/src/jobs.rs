//! `switchboard-bench jobs`: jobs enqueued and processed per second (the goal: jobs >= 5x
//! BullMQ), through the library (`Jobs::enqueue_bulk` / `enqueue`, the library [`Worker`]) or
//! through the HTTP API of a running `switchboard serve` (`POST /queues/{q}/jobs[/bulk]`,
//! `POST /queues/fetch` + `POST /jobs/complete`); `--summary` prints the comparison table of
//! a results file that `scripts/bench-jobs` fills from every side (BullMQ included).
//!
//! Workloads, each on a queue of its own (and, with `--flush`, an emptied Redis database):
//! - **enqueue bulk**: `--producers` tasks store `--jobs` jobs in batches of `--batch`;
//! - **enqueue single**: `--producers` tasks store them one call per job;
//! - **process**: `--jobs` jobs pre-enqueued, then workers with a no-op handler at each
//!   `--concurrency`; the time from the workers' start to the last completion (stored);
//! - **mixed**: the best concurrency's workers run while `--producers` tasks enqueue one by one;
//!   the time from the start to the last completion.
//!
//! With `--redis-url` on a Redis side, each workload also records Redis's work per job
//! (`INFO cpu commandstats` before and after, via `redis-cli`).
//!
//! [`Worker`]: switchboard_core::Worker

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_core::{EnqueueJob, JobType, QueueName, Switchboard, WorkerOptions};
use tokio::sync::Notify;

use crate::engine::EngineKind;

/// Where the jobs go.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Target {
    /// The library, in this process, on `--engine`.
    Library,
    /// The HTTP API of the server at `--url`.
    Http,
}

/// Arguments of `switchboard-bench jobs`.
#[derive(Args)]
pub(crate) struct JobsArgs {
    /// Library or HTTP.
    #[arg(long, value_enum, default_value = "library")]
    target: Target,
    /// Engine of the library target (the server picks its own).
    #[arg(long, value_enum, default_value = "memory")]
    engine: EngineKind,
    /// Redis URL (library on Redis, and `--flush`) [env: REDIS_URL].
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Base URL of the server (`--target http`), e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    url: Option<String>,
    /// API key of the server [env: BENCH_API_KEY].
    #[arg(long, env = "BENCH_API_KEY")]
    api_key: Option<String>,
    /// Jobs per workload.
    #[arg(long, default_value_t = 50_000)]
    jobs: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 16)]
    producers: usize,
    /// Jobs per bulk enqueue (1..=1000).
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Worker concurrencies to try (library: the worker's concurrency; HTTP: concurrent worker
    /// loops); the best is reported and used for the mixed run.
    #[arg(long, value_delimiter = ',', default_values_t = [50usize, 100, 200, 500])]
    concurrency: Vec<usize>,
    /// HTTP workers: `max_jobs` of each fetch (completed together).
    #[arg(long, default_value_t = 10)]
    fetch_max: usize,
    /// Empty the Redis database (`redis-cli FLUSHDB`) before each workload: only for a Redis
    /// started for the benchmark.
    #[arg(long)]
    flush: bool,
    /// Skip the mixed run.
    #[arg(long)]
    no_mixed: bool,
    /// Append one JSON line per workload to this file.
    #[arg(long)]
    results: Option<PathBuf>,
    /// Print the comparison table of a results file, then exit.
    #[arg(long, value_name = "RESULTS")]
    summary: Option<PathBuf>,
}

/// One line of a results file (`bench/bullmq/bench.mjs` writes the same).
#[derive(Serialize, Deserialize)]
struct Outcome {
    target: String,
    workload: String,
    rate: f64,
    jobs: usize,
    seconds: f64,
    note: String,
    /// What Redis did for the workload, per job (when the side knows its Redis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    redis: Option<RedisCost>,
}

/// Redis's work per job over one workload, from `INFO cpu commandstats` before and after.
#[derive(Clone, Copy, Serialize, Deserialize)]
struct RedisCost {
    /// redis-server CPU (user + system), µs per job.
    cpu_us: f64,
    /// Script calls (EVALSHA and EVAL) per job.
    scripts: f64,
    /// Time inside scripts, µs per job (commandstats).
    script_us: f64,
    /// Commands per job, the scripts' inner calls included.
    commands: f64,
}

/// Counters of `INFO cpu commandstats`.
#[derive(Clone, Copy, Default)]
struct RedisCounters {
    cpu_s: f64,
    scripts: f64,
    script_us: f64,
    commands: f64,
}

impl RedisCounters {
    /// Reads them with `redis-cli`.
    fn read(url: &str) -> anyhow::Result<Self> {
        let out = std::process::Command::new("redis-cli")
            .args(["-u", url, "INFO", "cpu", "commandstats"])
            .output()
            .context("redis-cli not found")?;
        anyhow::ensure!(out.status.success(), "redis-cli INFO: {}", String::from_utf8_lossy(&out.stderr));
        let mut c = RedisCounters::default();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let line = line.trim();
            if let Some(v) = line.strip_prefix("used_cpu_user:").or_else(|| line.strip_prefix("used_cpu_sys:")) {
                c.cpu_s += v.parse::<f64>().unwrap_or(0.0);
            } else if let Some((name, fields)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) {
                let field = |key: &str| {
                    fields.split(',').find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse::<f64>().ok())
                };
                let calls = field("calls").unwrap_or(0.0);
                // INFO, FLUSHDB and the like are the benchmark's, not the workload's.
                if matches!(name, "info" | "flushdb" | "config" | "ping" | "client" | "hello" | "select") {
                    continue;
                }
                c.commands += calls;
                if matches!(name, "evalsha" | "eval" | "evalsha_ro" | "eval_ro" | "fcall") {
                    c.scripts += calls;
                    c.script_us += field("usec").unwrap_or(0.0);
                }
            }
        }
        Ok(c)
    }

    /// The cost per job of `jobs` jobs between `before` and `self`.
    fn per_job(&self, before: &RedisCounters, jobs: usize) -> RedisCost {
        let n = jobs as f64;
        RedisCost {
            cpu_us: (self.cpu_s - before.cpu_s) * 1e6 / n,
            scripts: (self.scripts - before.scripts) / n,
            script_us: (self.script_us - before.script_us) / n,
            commands: (self.commands - before.commands) / n,
        }
    }
}

/// The side being measured and where its jobs go.
struct Bench {
    args: JobsArgs,
    label: &'static str,
    side: Side,
    phase: usize,
}

#[derive(Clone)]
enum Side {
    Library(Switchboard),
    Http(Http),
}

#[derive(Clone)]
struct Http {
    client: reqwest::Client,
    base: String,
    auth: String,
}

pub(crate) async fn run(args: JobsArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.summary {
        return summary(path);
    }
    anyhow::ensure!(args.jobs > 0 && args.producers > 0, "--jobs and --producers must be > 0");
    anyhow::ensure!((1..=1000).contains(&args.batch), "--batch must be 1..=1000");
    anyhow::ensure!((1..=1000).contains(&args.fetch_max), "--fetch-max must be 1..=1000");
    anyhow::ensure!(
        !args.concurrency.is_empty() && args.concurrency.iter().all(|c| (1..=1000).contains(c)),
        "--concurrency must be 1..=1000"
    );
    let (label, side) = match args.target {
        Target::Library => {
            let prefix = format!("sbjobs:{}:", std::process::id());
            let sb = args.engine.build(args.redis_url.as_deref(), &prefix).await?;
            // Workers run on the node.
            sb.start()?;
            let label = match args.engine {
                EngineKind::Memory => "library-memory",
                EngineKind::Redis => "library-redis",
            };
            (label, Side::Library(sb))
        }
        Target::Http => {
            let url = args.url.as_deref().context("--target http needs --url")?.trim_end_matches('/');
            let key = args.api_key.as_deref().context("--target http needs --api-key (or BENCH_API_KEY)")?;
            let most = args.concurrency.iter().max().copied().unwrap_or(1).max(args.producers);
            let client = reqwest::Client::builder().pool_max_idle_per_host(most).tcp_nodelay(true).build()?;
            let http = Http { client, base: format!("{url}/api/v1"), auth: format!("Bearer {key}") };
            ("http-redis", Side::Http(http))
        }
    };
    anyhow::ensure!(!args.flush || args.redis_url.is_some(), "--flush needs --redis-url");
    println!(
        "switchboard {label}: {} jobs per workload, {} producers, batches of {}, concurrency {:?}{}, {} CPUs",
        args.jobs,
        args.producers,
        args.batch,
        args.concurrency,
        if args.target == Target::Http { format!(" (fetch max_jobs {})", args.fetch_max) } else { String::new() },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let mut bench = Bench { args, label, side, phase: 0 };
    bench.run_all().await
}

impl Bench {
    async fn run_all(&mut self) -> anyhow::Result<()> {
        let (p, b) = (self.args.producers, self.args.batch);

        let queue = self.fresh_queue()?;
        let (redis, t) = (self.redis_counters()?, Instant::now());
        self.enqueue_all(&queue, b).await?;
        self.report("enqueue_bulk", t.elapsed(), redis, format!("{p} producers, bulk of {b}"))?;

        let queue = self.fresh_queue()?;
        let (redis, t) = (self.redis_counters()?, Instant::now());
        self.enqueue_all(&queue, 1).await?;
        self.report("enqueue_single", t.elapsed(), redis, format!("{p} concurrent enqueue"))?;

        let mut best: Option<(Duration, usize, Option<RedisCost>)> = None;
        for c in self.args.concurrency.clone() {
            let queue = self.fresh_queue()?;
            self.enqueue_all(&queue, b).await?;
            let redis = self.redis_counters()?;
            let elapsed = self.process(&queue, c, false).await?;
            let cost = self.report(&format!("process_c{c}"), elapsed, redis, self.worker_note(c))?;
            if best.is_none_or(|(d, ..)| elapsed < d) {
                best = Some((elapsed, c, cost));
            }
        }
        let Some((elapsed, c, cost)) = best else { return Ok(()) };
        let note = format!("best of {:?}: {}", self.args.concurrency, self.worker_note(c));
        self.record("process", elapsed, cost, note)?;

        if !self.args.no_mixed {
            let queue = self.fresh_queue()?;
            let redis = self.redis_counters()?;
            let elapsed = self.process(&queue, c, true).await?;
            self.report("mixed", elapsed, redis, format!("{}, {p} concurrent enqueue", self.worker_note(c)))?;
        }
        self.flush()
    }

    fn worker_note(&self, c: usize) -> String {
        match self.side {
            Side::Library(_) => format!("worker concurrency {c}"),
            Side::Http(_) => format!("{c} HTTP workers, max_jobs {}", self.args.fetch_max),
        }
    }

    /// A queue no earlier workload used, on an emptied database with `--flush`.
    fn fresh_queue(&mut self) -> anyhow::Result<QueueName> {
        self.flush()?;
        self.phase += 1;
        Ok(QueueName::new(format!("bench-{}-{}", std::process::id(), self.phase))?)
    }

    fn flush(&self) -> anyhow::Result<()> {
        let (true, Some(url)) = (self.args.flush, &self.args.redis_url) else { return Ok(()) };
        let out = std::process::Command::new("redis-cli")
            .args(["-u", url, "FLUSHDB"])
            .output()
            .context("--flush runs redis-cli, which was not found")?;
        anyhow::ensure!(out.status.success(), "redis-cli FLUSHDB: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    /// Redis's counters now, when this side knows its Redis (`--redis-url`).
    fn redis_counters(&self) -> anyhow::Result<Option<RedisCounters>> {
        let redis = matches!(self.side, Side::Http(_)) || self.args.engine == EngineKind::Redis;
        match &self.args.redis_url {
            Some(url) if redis => Ok(Some(RedisCounters::read(url)?)),
            _ => Ok(None),
        }
    }

    /// Prints and records a workload that took `elapsed`, with Redis's cost since `before`.
    fn report(
        &self,
        workload: &str,
        elapsed: Duration,
        before: Option<RedisCounters>,
        note: String,
    ) -> anyhow::Result<Option<RedisCost>> {
        let cost = match (before, &self.args.redis_url) {
            (Some(before), Some(url)) => Some(RedisCounters::read(url)?.per_job(&before, self.args.jobs)),
            _ => None,
        };
        self.record(workload, elapsed, cost, note)?;
        Ok(cost)
    }

    fn record(&self, workload: &str, elapsed: Duration, redis: Option<RedisCost>, note: String) -> anyhow::Result<()> {
        let jobs = self.args.jobs;
        let seconds = elapsed.as_secs_f64();
        let rate = jobs as f64 / seconds;
        let cost = redis.map_or(String::new(), |r| {
            format!(
                "; redis per job: {:.1} µs CPU, {:.2} scripts ({:.1} µs), {:.1} commands",
                r.cpu_us, r.scripts, r.script_us, r.commands
            )
        });
        println!(
            "switchboard {:<15} {workload:<16} {rate:>8.0} jobs/s  ({jobs} jobs in {seconds:.2} s; {note}{cost})",
            self.label
        );
        if let Some(path) = &self.args.results {
            let target = self.label.into();
            let line = Outcome { target, workload: workload.into(), rate, jobs, seconds, note, redis };
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
            writeln!(file, "{}", serde_json::to_string(&line)?)?;
        }
        Ok(())
    }

    /// Enqueues `--jobs` jobs to `queue` from `--producers` tasks, `chunk` per call.
    async fn enqueue_all(&self, queue: &QueueName, chunk: usize) -> anyhow::Result<()> {
        enqueue_all(&self.side, queue, self.args.jobs, self.args.producers, chunk).await
    }

    /// Runs workers at concurrency `c` until `--jobs` completions (with `produce`, while
    /// producers enqueue them); the time from the workers' start to the last completion.
    async fn process(&self, queue: &QueueName, c: usize, produce: bool) -> anyhow::Result<Duration> {
        let total = self.args.jobs;
        let started = Instant::now();
        let producing = produce.then(|| {
            let (side, queue, producers) = (self.side.clone(), queue.clone(), self.args.producers);
            tokio::spawn(async move { enqueue_all(&side, &queue, total, producers, 1).await })
        });
        let elapsed = match &self.side {
            Side::Library(sb) => library_work(sb, queue, c, total, started).await?,
            Side::Http(http) => http_work(http, queue, c, self.args.fetch_max, total, started).await?,
        };
        if let Some(producing) = producing {
            producing.await??;
        }
        self.check_processed(queue, total).await?;
        Ok(elapsed)
    }

    /// Every job of `queue` was completed exactly once, and none is left.
    async fn check_processed(&self, queue: &QueueName, total: usize) -> anyhow::Result<()> {
        let stats: Value = match &self.side {
            Side::Library(sb) => serde_json::to_value(sb.jobs().stats(queue).await?)?,
            Side::Http(http) => {
                let response =
                    http.client.get(format!("{}/queues/{queue}", http.base)).header("authorization", &http.auth).send();
                let answer: Value = ok(response.await?).await?.json().await?;
                answer["stats"].clone()
            }
        };
        let count = |field: &str| stats[field].as_u64().unwrap_or(u64::MAX);
        anyhow::ensure!(
            count("processed") == total as u64 && count("waiting") == 0 && count("active") == 0 && count("failed") == 0,
            "queue {queue} after the run: {stats}"
        );
        Ok(())
    }
}

/// Enqueues `total` jobs to `queue` from `producers` tasks, `chunk` per call.
async fn enqueue_all(
    side: &Side,
    queue: &QueueName,
    total: usize,
    producers: usize,
    chunk: usize,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..producers)
        .map(|_| {
            let (next, queue, side) = (next.clone(), queue.clone(), side.clone());
            tokio::spawn(async move {
                loop {
                    let first = next.fetch_add(chunk, Ordering::Relaxed);
                    if first >= total {
                        return anyhow::Ok(());
                    }
                    side.enqueue(&queue, first, chunk.min(total - first)).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// The payload of job `i`: small, as a real notification job's would be.
fn payload(i: usize) -> Value {
    json!({"user": format!("u{}", i % 1000), "kind": "bench", "n": i})
}

impl Side {
    /// Enqueues jobs `first..first + count` (one call when `count` > 1: bulk).
    async fn enqueue(&self, queue: &QueueName, first: usize, count: usize) -> anyhow::Result<()> {
        match self {
            Side::Library(sb) => {
                let job_type = JobType::new("noop")?;
                if count == 1 {
                    sb.jobs().enqueue(EnqueueJob::new(queue.clone(), job_type, payload(first))).await?;
                } else {
                    let jobs =
                        (first..first + count).map(|i| EnqueueJob::new(queue.clone(), job_type.clone(), payload(i)));
                    sb.jobs().enqueue_bulk(jobs.collect()).await?;
                }
            }
            Side::Http(http) => {
                let url = format!("{}/queues/{queue}/jobs", http.base);
                let request = if count == 1 {
                    http.client.post(url).json(&json!({"type": "noop", "payload": payload(first)}))
                } else {
                    let jobs: Vec<Value> =
                        (first..first + count).map(|i| json!({"type": "noop", "payload": payload(i)})).collect();
                    http.client.post(format!("{url}/bulk")).json(&json!({ "jobs": jobs }))
                };
                let _ = ok(request.header("authorization", &http.auth).send().await?).await?.bytes().await?;
            }
        }
        Ok(())
    }
}

/// The response if it is a success, else an error with its status and body.
async fn ok(response: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    anyhow::bail!("HTTP {status}: {body}")
}

/// The library [`switchboard_core::Worker`] at concurrency `c` with a no-op handler, until
/// `total` jobs are done; stopped gracefully (so every completion is stored) before the clock
/// stops.
async fn library_work(
    sb: &Switchboard,
    queue: &QueueName,
    c: usize,
    total: usize,
    started: Instant,
) -> anyhow::Result<Duration> {
    let handled = Arc::new(AtomicUsize::new(0));
    let all_handled = Arc::new(Notify::new());
    let options =
        WorkerOptions { concurrency: c, fetch_wait: Duration::from_secs(1), ..WorkerOptions::new(vec![queue.clone()]) };
    let (h, all) = (handled.clone(), all_handled.clone());
    let worker = sb
        .jobs()
        .worker(options)
        .handle("noop", move |_| {
            if h.fetch_add(1, Ordering::Relaxed) + 1 == total {
                all.notify_one();
            }
            async { Ok(None) }
        })?
        .start()?;
    all_handled.notified().await;
    // Shutdown waits for the running attempts, i.e. for the last completions to be stored.
    worker.shutdown().await;
    Ok(started.elapsed())
}

#[derive(Deserialize)]
struct FetchAnswer {
    jobs: Vec<Leased>,
}

#[derive(Deserialize)]
struct Leased {
    id: String,
    lease_token: String,
}

/// `c` HTTP worker loops (fetch up to `fetch_max`, complete them in one call), until `total`
/// completions;
/// the time of the last one.
async fn http_work(
    http: &Http,
    queue: &QueueName,
    c: usize,
    fetch_max: usize,
    total: usize,
    started: Instant,
) -> anyhow::Result<Duration> {
    let done = Arc::new(AtomicUsize::new(0));
    let finished: Arc<OnceLock<Duration>> = Arc::default();
    let fetch = json!({"queues": [queue], "max_jobs": fetch_max, "wait_ms": 200});
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            let (http, done, finished, fetch) = (http.clone(), done.clone(), finished.clone(), fetch.clone());
            tokio::spawn(async move {
                while done.load(Ordering::Relaxed) < total {
                    let response = http
                        .client
                        .post(format!("{}/queues/fetch", http.base))
                        .header("authorization", &http.auth)
                        .json(&fetch)
                        .send()
                        .await?;
                    let answer: FetchAnswer = ok(response).await?.json().await?;
                    if answer.jobs.is_empty() {
                        continue;
                    }
                    // The fetched jobs (no-ops) completed together in one call.
                    let n = answer.jobs.len();
                    let batch: Vec<_> = answer
                        .jobs
                        .into_iter()
                        .map(|job| json!({"job_id": job.id, "lease_token": job.lease_token}))
                        .collect();
                    let response = http
                        .client
                        .post(format!("{}/jobs/complete", http.base))
                        .header("authorization", &http.auth)
                        .json(&json!({ "jobs": batch }))
                        .send()
                        .await?;
                    let _ = ok(response).await?.bytes().await?;
                    if done.fetch_add(n, Ordering::Relaxed) + n >= total {
                        let _ = finished.set(started.elapsed());
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    finished.get().copied().context("the workers stopped before every job was completed")
}

/// Display names and column order of the summary.
const TARGETS: [(&str, &str); 4] = [
    ("bullmq", "BullMQ"),
    ("library-redis", "Switchboard library (Redis)"),
    ("http-redis", "Switchboard HTTP (Redis)"),
    ("library-memory", "Switchboard library (memory)"),
];
const WORKLOADS: [(&str, &str); 4] = [
    ("enqueue_bulk", "enqueue, bulk (jobs/s)"),
    ("enqueue_single", "enqueue, one per call (jobs/s)"),
    ("process", "process, pre-enqueued (jobs/s)"),
    ("mixed", "mixed enqueue + process (jobs/s)"),
];

/// Prints the comparison table of a results file, each figure with its ratio to BullMQ's.
fn summary(path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let outcomes: Vec<Outcome> =
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
    let rate = |target: &str, workload: &str| {
        outcomes.iter().rev().find(|o| o.target == target && o.workload == workload).map(|o| o.rate)
    };
    let targets: Vec<_> = TARGETS.iter().filter(|(t, _)| outcomes.iter().any(|o| o.target == *t)).collect();
    let header: Vec<&str> = targets.iter().map(|(_, name)| *name).collect();
    println!("| {:<34} | {} |", "workload", header.join(" | "));
    println!("|{:-<36}|{}", "", header.iter().map(|h| format!("{:->w$}|", ":", w = h.len() + 2)).collect::<String>());
    for (workload, name) in WORKLOADS {
        let base = rate("bullmq", workload);
        let cells: Vec<String> = targets
            .iter()
            .map(|(target, title)| {
                let cell = match (rate(target, workload), base) {
                    (Some(r), Some(b)) if *target != "bullmq" => format!("{} ({:.2}x)", thousands(r), r / b),
                    (Some(r), _) => thousands(r),
                    (None, _) => "—".into(),
                };
                format!("{cell:>w$}", w = title.len())
            })
            .collect();
        println!("| {name:<34} | {} |", cells.join(" | "));
    }
    println!();
    println!("Redis's work per job (INFO cpu / commandstats before and after each workload):");
    println!();
    println!(
        "| {:<34} | {:<28} | {:>10} | {:>10} | {:>13} | {:>10} |",
        "workload", "side", "CPU µs", "scripts", "in scripts µs", "commands"
    );
    println!("|{:-<36}|{:-<30}|{:->11}:|{:->11}:|{:->14}:|{:->11}:|", "", "", "", "", "", "");
    for (workload, name) in WORKLOADS {
        for (target, title) in &targets {
            let found = outcomes.iter().rev().find(|o| o.target == *target && o.workload == workload);
            if let Some(r) = found.and_then(|o| o.redis) {
                println!(
                    "| {name:<34} | {title:<28} | {:>10.1} | {:>10.2} | {:>13.1} | {:>10.1} |",
                    r.cpu_us, r.scripts, r.script_us, r.commands
                );
            }
        }
    }
    println!();
    for (target, title) in &targets {
        for o in outcomes.iter().filter(|o| o.target == *target && o.workload.starts_with("process_c")) {
            println!("#   {title}: {} {:.0} jobs/s ({})", o.workload, o.rate, o.note);
        }
    }
    Ok(())
}

/// `1234567.8` as `1 234 568`.
fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(d);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1234567.8), "1 234 568");
    }
}
