//! `switchboard-bench chat`: measures the chat and notification flows on an
//! engine — posting messages to conversations of 2, 100 and 1 000 members (the whole post flow:
//! cache, every member's list and unread counter, `message.new` and one `unread.changed` per
//! counted member, typing cleared), and creating a notification then reading it from one device
//! (`notification.new`, then `notification.updated` to the user's other devices) — through the
//! library and through HTTP (an in-process server on a loopback port, keep-alive clients in the
//! same process, as `switchboard-bench capabilities` does).
//!
//! Load shape: `--conversations` conversations of each size (default 32) whose members come from
//! one pool of 10 000 users (so a user belongs to several conversations, as in a real app);
//! `--concurrency` tasks (default 32) each post to conversation `(task + i) mod conversations` at
//! their `i`-th call, so about one post per conversation is in flight at a time, the sender being
//! a member picked round-robin.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::json;
use switchboard_core::{
    ConversationId, ConversationKind, ConversationSpec, DeviceId, MessageId, NewMessage, NewNotification,
    NotificationId, Switchboard, UserId,
};
use switchboard_server::{ApiKey, AppState, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::engine::EngineKind;
use crate::measure::{Figures, expect_ok, measure};

/// Users the conversations' members and the notifications' recipients are drawn from.
const USER_POOL: usize = 10_000;
/// Width of the workload column.
const W: usize = 40;

/// Arguments of `switchboard-bench chat`.
#[derive(Args)]
pub(crate) struct ChatArgs {
    /// Engine to measure.
    #[arg(long, value_enum, default_value = "memory")]
    engine: EngineKind,
    /// Redis URL (for `--engine redis`) [env: REDIS_URL].
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Concurrent callers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds per workload.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Conversation sizes (members) to post to.
    #[arg(long, value_delimiter = ',', default_values_t = [2usize, 100, 1000])]
    sizes: Vec<usize>,
    /// Conversations of each size; posts go round-robin over them.
    #[arg(long, default_value_t = 32)]
    conversations: usize,
    /// Skip the HTTP workloads.
    #[arg(long)]
    no_http: bool,
    /// Skip the notification workloads.
    #[arg(long)]
    no_notifications: bool,
}

/// The conversations of one size and their members.
struct Group {
    size: usize,
    ids: Vec<ConversationId>,
    members: Vec<Vec<UserId>>,
}

impl Group {
    /// The conversation and sender of call `i` of `task`.
    fn pick(&self, task: usize, i: usize) -> (&ConversationId, &UserId) {
        let k = (task + i) % self.ids.len();
        let members = &self.members[k];
        (&self.ids[k], &members[(task * 31 + i) % members.len()])
    }
}

pub(crate) async fn run(args: ChatArgs) -> anyhow::Result<()> {
    // A fresh prefix per run so figures never depend on an earlier run's keys.
    let run_id = std::process::id();
    let sb = args.engine.build(args.redis_url.as_deref(), &format!("sbchat:{run_id}:")).await?;
    let duration = Duration::from_secs(args.seconds);
    let c = args.concurrency.max(1);
    let engine = args.engine.name();
    println!(
        "engine: {engine} ({}), concurrency {c}, {}s per workload, {} conversations of each size, {} CPUs",
        sb.engine().health.info().location,
        args.seconds,
        args.conversations.max(1),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );

    let users: Arc<Vec<UserId>> =
        Arc::new((0..USER_POOL).map(|u| UserId::new(format!("cu{u}"))).collect::<Result<_, _>>()?);
    let mut groups = Vec::new();
    for &size in &args.sizes {
        let started = Instant::now();
        groups.push(Arc::new(seed_group(&sb, &users, size, args.conversations.max(1)).await?));
        eprintln!(
            "# seeded {} conversations of {size} members in {:.1?}",
            args.conversations.max(1),
            started.elapsed()
        );
    }

    println!("| {:<W$} | {:>10} | {:>8} | {:>8} |", "workload", "ops/s", "p50 µs", "p99 µs");
    println!("|{:-<w2$}|{:->12}|{:->10}|{:->10}|", "", "", "", "", w2 = W + 2);

    for group in &groups {
        let (msgs, g) = (sb.messages().clone(), group.clone());
        let size = group.size;
        measure(&format!("library messages.post, {size} members"), c, duration, move |task, i| {
            let (msgs, g) = (msgs.clone(), g.clone());
            async move {
                let (conversation, sender) = g.pick(task, i);
                let message = NewMessage {
                    id: MessageId::new(format!("l{size}-{task}-{i}"))?,
                    sender: sender.clone(),
                    content: json!("a benchmark message of ordinary length"),
                    created_at: None,
                    preview: None,
                };
                let outcome = msgs.post(conversation, message).await?;
                anyhow::ensure!(i == 0 || !outcome.duplicate, "duplicate post");
                Ok(())
            }
        })
        .await?
        .print_padded(W);
    }

    if args.no_notifications {
        if !args.no_http {
            http_workloads(sb.clone(), &groups, c, duration, false).await?;
        }
        return Ok(());
    }
    let notifications = sb.notifications().clone();
    measure("library notifications.create", c, duration, move |task, i| {
        let n = notifications.clone();
        let users = users.clone();
        async move {
            let user = &users[(task * 7919 + i) % USER_POOL];
            n.create(user, notification(&format!("lc-{task}-{i}"))?).await?;
            Ok(())
        }
    })
    .await?
    .print_padded(W);
    let device = DeviceId::new("phone")?;
    for f in create_then_read(&sb, c, duration, device).await? {
        f.print_padded(W);
    }

    if !args.no_http {
        http_workloads(sb.clone(), &groups, c, duration, true).await?;
    }
    Ok(())
}

fn notification(id: &str) -> anyhow::Result<NewNotification> {
    Ok(NewNotification {
        id: NotificationId::new(id)?,
        app_name: None,
        title: "New follower".into(),
        body: "Someone started following you".into(),
        data: json!({"kind": "follow"}),
        priority: Default::default(),
        collapse_key: None,
    })
}

/// `n` conversations of `size` members each, from the user pool (overlapping windows).
async fn seed_group(sb: &Switchboard, users: &[UserId], size: usize, n: usize) -> anyhow::Result<Group> {
    anyhow::ensure!((2..=USER_POOL).contains(&size), "sizes must be 2..={USER_POOL}");
    let mut group = Group { size, ids: Vec::with_capacity(n), members: Vec::with_capacity(n) };
    for k in 0..n {
        let id = ConversationId::new(format!("g{size}-{k}"))?;
        let members: Vec<UserId> = (0..size).map(|j| users[(k * 7919 + j) % USER_POOL].clone()).collect();
        let spec = ConversationSpec {
            kind: if size == 2 { ConversationKind::Direct } else { ConversationKind::Group },
            name: Some(format!("bench {size} #{k}")),
            avatar_url: None,
            members: members.clone(),
        };
        sb.conversations().put(&id, spec).await?;
        group.ids.push(id);
        group.members.push(members);
    }
    Ok(group)
}

/// The create-and-sync flow: each task creates a notification for a user, then reads it from the
/// user's device `device` (which publishes `notification.updated` to the user's other devices);
/// each step is timed apart. Both steps run the same number of times: one rate, two latencies.
async fn create_then_read(
    sb: &Switchboard,
    concurrency: usize,
    duration: Duration,
    device: DeviceId,
) -> anyhow::Result<Vec<Figures>> {
    let started = Instant::now();
    let deadline = started + duration;
    let changed = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let (n, device, changed) = (sb.notifications().clone(), device.clone(), changed.clone());
            tokio::spawn(async move {
                let (mut create_us, mut read_us) = (Vec::with_capacity(1 << 14), Vec::with_capacity(1 << 14));
                let mut i = 0;
                while Instant::now() < deadline {
                    let user = UserId::new(format!("cu{}", (task * 7919 + i * 13) % USER_POOL))?;
                    let new = notification(&format!("lr-{task}-{i}"))?;
                    let id = new.id.clone();
                    let t = Instant::now();
                    n.create(&user, new).await?;
                    create_us.push(t.elapsed().as_micros() as u64);
                    let t = Instant::now();
                    let changes = n.read(&user, std::slice::from_ref(&id), Some(&device)).await?;
                    read_us.push(t.elapsed().as_micros() as u64);
                    changed.fetch_add(changes.len(), Ordering::Relaxed);
                    i += 1;
                    // Every client takes its turn (see `measure`).
                    tokio::task::yield_now().await;
                }
                anyhow::Ok((create_us, read_us))
            })
        })
        .collect();
    let (mut creates, mut reads) = (Vec::new(), Vec::new());
    for t in tasks {
        let (c, r) = t.await??;
        anyhow::ensure!(!c.is_empty(), "a client made no call: not a figure at concurrency {concurrency}");
        creates.extend(c);
        reads.extend(r);
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(changed.load(Ordering::Relaxed) == reads.len(), "a read changed nothing");
    Ok(vec![
        Figures::from_latencies("library create+read: create step", creates, elapsed),
        Figures::from_latencies("library create+read: read step (sync)", reads, elapsed),
    ])
}

async fn http_workloads(
    sb: Switchboard,
    groups: &[Arc<Group>],
    c: usize,
    duration: Duration,
    with_notifications: bool,
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

    for group in groups {
        let (cl, b, a, g) = (client.clone(), base.clone(), auth.clone(), group.clone());
        let size = group.size;
        measure(&format!("http POST .../messages, {size} members"), c, duration, move |task, i| {
            let (cl, b, a, g) = (cl.clone(), b.clone(), a.clone(), g.clone());
            async move {
                let (conversation, sender) = g.pick(task, i);
                let body = json!({"id": format!("h{size}-{task}-{i}"), "sender": sender, "content": "a benchmark message of ordinary length"});
                let url = format!("{b}/conversations/{conversation}/messages");
                expect_ok(cl.post(url).header("authorization", a).json(&body).send().await?).await
            }
        })
        .await?
        .print_padded(W);
    }

    if !with_notifications {
        shutdown.cancel();
        return Ok(server.await??);
    }
    let (cl, b, a) = (client.clone(), base.clone(), auth.clone());
    measure("http POST /users/{u}/notifications", c, duration, move |task, i| {
        let (cl, b, a) = (cl.clone(), b.clone(), a.clone());
        async move {
            let user = format!("cu{}", (task * 7919 + i) % USER_POOL);
            let body = json!({"id": format!("hc-{task}-{i}"), "title": "New follower", "body": "Someone started following you", "data": {"kind": "follow"}});
            expect_ok(cl.post(format!("{b}/users/{user}/notifications")).header("authorization", a).json(&body).send().await?)
                .await
        }
    })
    .await?
    .print_padded(W);
    let (cl, b, a) = (client.clone(), base.clone(), auth.clone());
    measure("http create + POST .../{n}/read (pair)", c, duration, move |task, i| {
        let (cl, b, a) = (cl.clone(), b.clone(), a.clone());
        async move {
            let user = format!("cu{}", (task * 7919 + i * 13) % USER_POOL);
            let id = format!("hr-{task}-{i}");
            let body = json!({"id": id, "title": "New follower", "body": "Someone started following you", "data": {"kind": "follow"}});
            let url = format!("{b}/users/{user}/notifications");
            expect_ok(cl.post(&url).header("authorization", a.as_str()).json(&body).send().await?).await?;
            let read = cl
                .post(format!("{url}/{id}/read"))
                .header("authorization", a)
                .json(&json!({"source_device": "phone"}))
                .send()
                .await?;
            anyhow::ensure!(read.status().is_success(), "HTTP {}", read.status());
            let answer: serde_json::Value = read.json().await?;
            // Call 0 runs twice (warm-up, then measured): its second read changes nothing.
            anyhow::ensure!(i == 0 || answer["changed"] == json!(true), "the read changed nothing");
            Ok(())
        }
    })
    .await?
    .print_padded(W);

    shutdown.cancel();
    server.await??;
    Ok(())
}
