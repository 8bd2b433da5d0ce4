//! `switchboard-bench durability`: what durability costs. The same library workloads (session
//! create and touch, rate-limit checks, a job enqueued, fetched and completed, a message post to a
//! two-member conversation) on the memory engine, the durable memory engine with `everysec` and
//! with `always` (a fresh data dir each), and — given `--redis-url` — Redis (run it with
//! `appendfsync always` to compare like with like; `scripts/bench-durable` does).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{
    ConversationId, CreateSession, EnqueueJob, JobType, MessageId, NewMessage, Policy, PolicyRef, QueueName,
    RateLimitCheck, RateLimitKey, SessionId, Switchboard, SwitchboardConfig, UserId,
};
use switchboard_memory::{MemoryConfig, SyncPolicy};

use crate::engine::EngineKind;
use crate::measure::{Figures, measure};

/// Arguments of `switchboard-bench durability`.
#[derive(Args)]
pub(crate) struct DurabilityArgs {
    /// Redis URL to measure as well (start it with `appendfsync always`) [env: REDIS_URL].
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Where the durable runs put their data dirs (default: the system temp dir).
    #[arg(long)]
    data_root: Option<PathBuf>,
    /// Concurrent callers.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Targets to measure, in this order (`redis` only with `--redis-url`).
    #[arg(long, value_delimiter = ',', default_value = "memory,everysec,always,redis")]
    targets: Vec<Target>,
    /// The durable targets' `compact_log_bytes`, in MiB (default: the engine's default).
    #[arg(long)]
    compact_log_mib: Option<u64>,
    /// Workloads to run on each target.
    #[arg(long, value_delimiter = ',', default_value = "create,touch,rate-limit,jobs,posts")]
    workloads: Vec<Workload>,
    /// After the table, this many rounds of each workload on the memory engine and right after it
    /// on durable `everysec` (fresh engines each time), and the median of their ratios: a target
    /// measured right after the other sees nearly the same machine, where the table's rows are
    /// tens of seconds apart.
    #[arg(long, default_value_t = 0)]
    paired_rounds: usize,
    /// Seconds per workload in each paired round.
    #[arg(long, default_value_t = 2)]
    paired_seconds: u64,
}

/// A target of `--targets`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Target {
    /// The memory engine without a data dir.
    Memory,
    /// The durable memory engine, `sync everysec`.
    Everysec,
    /// The durable memory engine, `sync always`.
    Always,
    /// The Redis of `--redis-url`.
    Redis,
}

/// A workload of `--workloads`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Workload {
    /// `session.create`.
    Create,
    /// `session.touch` over 1 000 seeded sessions.
    Touch,
    /// `rate_limit.check` (GCRA, 10 000 keys).
    RateLimit,
    /// One job enqueued, fetched and completed.
    Jobs,
    /// `messages.post` to 100 two-member conversations.
    Posts,
}

/// Width of the workload column.
const W: usize = 44;

pub(crate) async fn run(args: DurabilityArgs) -> anyhow::Result<()> {
    let c = args.concurrency.max(1);
    let duration = Duration::from_secs(args.seconds);
    let root = args.data_root.clone().unwrap_or_else(std::env::temp_dir);
    println!(
        "concurrency {c}, {}s per workload, {} CPUs, data dirs under {}",
        args.seconds,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        root.display()
    );
    println!("| {:<W$} | {:>10} | {:>8} | {:>8} |", "workload (target)", "ops/s", "p50 µs", "p99 µs");
    println!("|{:-<w2$}|{:->12}|{:->10}|{:->10}|", "", "", "", "", w2 = W + 2);
    let targets = args.targets.iter().filter_map(|t| match t {
        Target::Memory => Some(("memory", None)),
        Target::Everysec => Some(("durable everysec", Some(SyncPolicy::EverySec))),
        Target::Always => Some(("durable always", Some(SyncPolicy::Always))),
        Target::Redis => args.redis_url.is_some().then_some(("redis", None)),
    });
    for (name, sync) in targets {
        for figures in on_target(&args, &root, name, sync, &args.workloads, c, duration).await? {
            figures.print_padded(W);
        }
    }
    if args.paired_rounds > 0 {
        paired(&args, &root, c).await?;
    }
    Ok(())
}

/// Runs `which` on a fresh engine of the target `name` (a fresh data dir when `sync` is given).
async fn on_target(
    args: &DurabilityArgs,
    root: &std::path::Path,
    name: &str,
    sync: Option<SyncPolicy>,
    which: &[Workload],
    c: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Figures>> {
    let dir = root.join(format!("switchboard-bench-durable-{}-{}", std::process::id(), name.replace(' ', "-")));
    let _ = std::fs::remove_dir_all(&dir);
    let sb = match (name, sync) {
        ("redis", _) => {
            EngineKind::Redis.build(args.redis_url.as_deref(), &format!("sbdur:{}:", std::process::id())).await?
        }
        (_, None) => {
            Switchboard::new(switchboard_memory::engine(MemoryConfig::default())?, SwitchboardConfig::default())?
        }
        (_, Some(sync)) => {
            let mut config = MemoryConfig { data_dir: Some(dir.clone()), sync, ..MemoryConfig::default() };
            if let Some(mib) = args.compact_log_mib {
                config.compact_log_bytes = mib << 20;
            }
            Switchboard::new(switchboard_memory::engine(config)?, SwitchboardConfig::default())?
        }
    };
    let figures = workloads(&sb, name, which, c, duration).await;
    drop(sb);
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

/// `--paired-rounds`: each workload on memory then at once on `everysec`, round after round; prints
/// the median `everysec / memory` ratio of each workload and every round's ratio.
async fn paired(args: &DurabilityArgs, root: &std::path::Path, c: usize) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.paired_seconds);
    let mut ratios: Vec<(Workload, Vec<f64>)> = args.workloads.iter().map(|w| (*w, Vec::new())).collect();
    for _ in 0..args.paired_rounds {
        for (workload, ratios) in &mut ratios {
            let which = std::slice::from_ref(workload);
            let memory = on_target(args, root, "memory", None, which, c, duration).await?;
            let durable =
                on_target(args, root, "durable everysec", Some(SyncPolicy::EverySec), which, c, duration).await?;
            ratios.push(durable[0].rate() / memory[0].rate());
        }
    }
    println!();
    println!(
        "paired: everysec / memory, {} rounds of {}s per target (memory, then everysec at once)",
        args.paired_rounds, args.paired_seconds
    );
    println!("| {:<12} | {:>6} | rounds", "workload", "median");
    println!("|{:-<14}|{:->8}|--------", "", "");
    for (workload, mut ratios) in ratios {
        let rounds = ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(" ");
        ratios.sort_by(f64::total_cmp);
        let mid = ratios.len() / 2;
        let median = if ratios.len() % 2 == 1 { ratios[mid] } else { (ratios[mid - 1] + ratios[mid]) / 2.0 };
        println!("| {:<12} | {median:>6.2} | {rounds}", workload.label());
    }
    Ok(())
}

impl Workload {
    fn label(self) -> &'static str {
        match self {
            Workload::Create => "create",
            Workload::Touch => "touch",
            Workload::RateLimit => "rate-limit",
            Workload::Jobs => "jobs",
            Workload::Posts => "posts",
        }
    }
}

async fn workloads(
    sb: &Switchboard,
    target: &str,
    which: &[Workload],
    c: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Figures>> {
    let mut out = Vec::new();
    if which.contains(&Workload::Create) {
        let sessions = sb.sessions().clone();
        out.push(
            measure(&format!("session.create ({target})"), c, duration, move |task, i| {
                let s = sessions.clone();
                async move {
                    let user = UserId::new(format!("du-{}", (task * 7919 + i) % 10_000))?;
                    s.create(CreateSession::for_user(user)).await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    if which.contains(&Workload::Touch) {
        let mut ids: Vec<SessionId> = Vec::with_capacity(1000);
        for i in 0..1000 {
            ids.push(sb.sessions().create(CreateSession::for_user(UserId::new(format!("dt-{i}"))?)).await?.session.id);
        }
        let (sessions, ids) = (sb.sessions().clone(), Arc::new(ids));
        out.push(
            measure(&format!("session.touch ({target})"), c, duration, move |task, i| {
                let (s, ids) = (sessions.clone(), ids.clone());
                async move {
                    s.touch(&ids[(task + i) % ids.len()]).await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    if which.contains(&Workload::RateLimit) {
        let (limits, policy) = (sb.rate_limits().clone(), Policy::gcra(1_000_000, 1));
        out.push(
            measure(&format!("rate_limit.check ({target})"), c, duration, move |task, i| {
                let rl = limits.clone();
                async move {
                    let key = RateLimitKey::new(format!("bench:{}", (task * 7919 + i) % 10_000))?;
                    rl.check(&[RateLimitCheck { key, policy: PolicyRef::Inline(policy), cost: None }]).await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    if which.contains(&Workload::Jobs) {
        let jobs = sb.jobs().clone();
        out.push(
            measure(&format!("job enqueue+fetch+complete ({target})"), c, duration, move |task, _| {
                let jobs = jobs.clone();
                async move {
                    let queue = QueueName::new(format!("dq-{task}"))?;
                    let job = EnqueueJob::new(queue.clone(), JobType::new("bench.noop")?, json!({"n": 1}));
                    jobs.enqueue(job).await?;
                    let leased = jobs.fetch(std::slice::from_ref(&queue), 1, Duration::ZERO, None).await?;
                    let job = leased.first().ok_or_else(|| anyhow::anyhow!("no job fetched"))?;
                    jobs.complete(&job.job.id, &job.lease_token, None).await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    if which.contains(&Workload::Posts) {
        let mut conversations = Vec::with_capacity(100);
        for k in 0..100 {
            let id = ConversationId::new(format!("dc-{k}"))?;
            let members = vec![UserId::new(format!("dm-{k}-a"))?, UserId::new(format!("dm-{k}-b"))?];
            let spec = ConversationSpec {
                kind: ConversationKind::Direct,
                name: None,
                avatar_url: None,
                members: members.clone(),
            };
            sb.conversations().put(&id, spec).await?;
            conversations.push((id, members[0].clone()));
        }
        let (messages, conversations) = (sb.messages().clone(), Arc::new(conversations));
        out.push(
            measure(&format!("messages.post, 2 members ({target})"), c, duration, move |task, i| {
                let (m, cs) = (messages.clone(), conversations.clone());
                async move {
                    let (conversation, sender) = &cs[(task + i) % cs.len()];
                    let id = MessageId::new(format!("dp-{task}-{i}"))?;
                    let message = NewMessage::new(id, sender.clone(), json!("a benchmark message of ordinary length"));
                    m.post(conversation, message).await?;
                    Ok(())
                }
            })
            .await?,
        );
    }
    Ok(out)
}
