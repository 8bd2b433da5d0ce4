//! A chat backend's Redis layer, on Switchboard's library: sessions, a rate-limit policy,
//! presence, a conversation with messages and unread counters, notifications, a cache with
//! tags, a typed job with a worker and a cron schedule, and an in-process subscription — on
//! the embedded engine, or on Redis with `--redis redis://host:port`.
//!
//! `cargo run -p chat-backend [-- --redis redis://127.0.0.1:6379]`. It checks what it sees at
//! every step and exits non-zero on the first surprise.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_core::{
    ChannelName, ConnectionInfo, ConversationId, ConversationKind, ConversationSpec, CreateSession, DeviceId,
    EnqueueJob, Error, HubEvent, JobType, MessageId, NewMessage, NewNotification, NotificationId, PolicyRef, Priority,
    PutSchedule, QueueName, RateLimitCheck, RateLimitKey, Result, ScheduleName, ScheduleSpec, Switchboard,
    SwitchboardConfig, Timestamp, UserId, WorkerOptions,
};
use switchboard_redis::RedisConfig;

/// What the app keeps in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SessionInfo {
    plan: String,
    locale: String,
}

/// A profile as the app's database would return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    photos: u32,
}

/// The payload of the `email.welcome` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct WelcomeEmail {
    to: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    let engine = match redis_url()? {
        Some(url) => switchboard_redis::connect(RedisConfig::new(url)).await?,
        None => switchboard_memory::engine(switchboard_memory::MemoryConfig::default())?,
    };
    let mut config = SwitchboardConfig::default();
    config.rate_limits.policies.insert("send_message".into(), "5 per 10 s".parse()?);
    let sb = Switchboard::builder(engine, config).build()?;
    // The one lifecycle call: starts the node (sweeps, schedules, the engine's loops), runs the
    // backend until it is done, then drains every task and closes the engine.
    let mut outcome = None;
    let report = sb.run_until(async { outcome = Some(chat_backend(&sb).await) }, Duration::from_secs(10)).await?;
    outcome.unwrap_or_else(|| Err(Error::Internal("the backend did not run".into())))?;
    if !report.drained() {
        return Err(Error::Internal(format!("tasks left running: {:?}", report.unfinished)));
    }
    println!("chat backend: every step checked on the {} engine", sb.engine().health.info().name);
    Ok(())
}

/// `--redis <url>`, if given.
fn redis_url() -> Result<Option<String>> {
    let mut args = std::env::args().skip(1);
    match (args.next().as_deref(), args.next()) {
        (None, _) => Ok(None),
        (Some("--redis"), Some(url)) => Ok(Some(url)),
        _ => Err(Error::invalid("arguments", "usage: chat-backend [--redis redis://host:port]")),
    }
}

/// Fails the run with `what` unless `ok`.
fn check(ok: bool, what: &str) -> Result<()> {
    match ok {
        true => Ok(()),
        false => Err(Error::Internal(format!("check failed: {what}"))),
    }
}

async fn chat_backend(sb: &Switchboard) -> Result<()> {
    let alice = UserId::new("alice")?;
    let bob = UserId::new("bob")?;
    let phone = DeviceId::new("alice-phone")?;

    // Log in: a session with typed data.
    let info = SessionInfo { plan: "pro".into(), locale: "de".into() };
    let login = sb.sessions().create(CreateSession::for_user(alice.clone()).with_data(&info)?).await?;
    let session = sb.sessions().get(&login.session.id).await?;
    check(session.map(|s| s.data_as::<SessionInfo>()).transpose()? == Some(info), "the session data reads back")?;

    // The send_message policy: five per ten seconds, the sixth is refused.
    let send = || RateLimitCheck {
        key: RateLimitKey::new("user:alice").expect("a valid key"),
        policy: PolicyRef::Named("send_message".into()),
        cost: None,
    };
    for _ in 0..5 {
        check(sb.rate_limits().check(&[send()]).await?.allowed, "five messages are allowed")?;
    }
    check(!sb.rate_limits().check(&[send()]).await?.allowed, "the sixth is refused")?;

    // Presence: Alice's phone connects.
    let conn = ConnectionInfo {
        conn_id: "conn-1".into(),
        user_id: alice.clone(),
        device_id: phone,
        node_id: "node-1".into(),
        connected_at: Timestamp::now(),
        ip: None,
        user_agent: None,
    };
    sb.presence().connect(&conn).await?;
    let both = sb.presence().bulk(&[alice.clone(), bob.clone()]).await?;
    check(both.iter().map(|p| p.online).eq([true, false]), "alice is online, bob is not")?;

    // Bob listens on his personal channel, in process.
    let mut bobs_channel = sb.hub().subscribe(&ChannelName::user(&bob)).await?;

    // A direct conversation: Alice writes twice, Bob has two unread, reads, has none.
    let chat = ConversationId::new("alice-bob")?;
    let spec = ConversationSpec {
        kind: ConversationKind::Direct,
        members: vec![alice.clone(), bob.clone()],
        ..ConversationSpec::default()
    };
    sb.conversations().put(&chat, spec).await?;
    let mut last = None;
    for (n, text) in ["hi bob", "dinner tonight?"].into_iter().enumerate() {
        let id = MessageId::new(format!("m{n}"))?;
        let message = NewMessage::new(id.clone(), alice.clone(), json!({"text": text}));
        sb.messages().post(&chat, message).await?;
        last = Some(id);
    }
    check(sb.messages().totals(&bob).await?.unread == 2, "bob has two unread")?;
    check(sb.messages().recent(&chat, 50, None).await?.messages.len() == 2, "the cache holds both messages")?;
    let last = last.ok_or_else(|| Error::Internal("no message posted".into()))?;
    sb.messages().read(&bob, &chat, &last, None).await?;
    check(sb.messages().totals(&bob).await?.unread == 0, "bob read everything")?;

    // A notification for Bob, read on one device.
    let new = NewNotification {
        id: NotificationId::new("n-1")?,
        app_name: Some("chat".into()),
        title: "Alice mentioned you".into(),
        body: "dinner tonight?".into(),
        data: json!({"conversation_id": "alice-bob"}),
        priority: Priority::High,
        collapse_key: None,
    };
    let created = sb.notifications().create(&bob, new).await?;
    check(created.created && sb.notifications().unread_count(&bob).await? == 1, "bob has one unread notification")?;
    sb.notifications().read(&bob, std::slice::from_ref(&created.notification.id), None).await?;
    check(sb.notifications().unread_count(&bob).await? == 0, "read")?;

    // Bob was told live: his channel delivers the notification (after the unread changes).
    let mut types = Vec::new();
    while !types.iter().any(|t| t == "notification.new") {
        let event = tokio::time::timeout(Duration::from_secs(5), bobs_channel.recv()).await;
        let Ok(Some(HubEvent::Publication(p))) = event else {
            return check(false, &format!("bob's channel delivered {types:?}, then {event:?}"));
        };
        types.push(p.publication.data["type"].as_str().unwrap_or_default().to_owned());
    }

    // The cache: a profile loaded once, tagged by user, dropped by the tag.
    let loads = AtomicUsize::new(0);
    let tags = ["user:alice".to_owned()];
    let load = || async {
        loads.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Error>(Profile { name: "Alice".into(), photos: 3 })
    };
    let first: Profile = sb.cache().get_or_set_as("profiles", "alice", None, &tags, load).await?;
    let again: Profile = sb.cache().get_or_set_as("profiles", "alice", None, &tags, load).await?;
    check(first == again && loads.load(Ordering::SeqCst) == 1, "the second read is a hit")?;
    sb.cache().invalidate_tags("profiles", &tags).await?;
    let _: Profile = sb.cache().get_or_set_as("profiles", "alice", None, &tags, load).await?;
    check(loads.load(Ordering::SeqCst) == 2, "the tag invalidation dropped it")?;

    // A typed job with its worker, and a cron schedule that enqueues it every second.
    let emails = QueueName::new("emails")?;
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let worker = sb
        .jobs()
        .worker(WorkerOptions { fetch_wait: Duration::from_millis(200), ..WorkerOptions::new(vec![emails.clone()]) })
        .handle_as("email.welcome", move |email: WelcomeEmail, _job| {
            let counter = counter.clone();
            async move {
                if email.to.contains('@') {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                Ok(None)
            }
        })?
        .start()?;
    let welcome = JobType::new("email.welcome")?;
    let email = WelcomeEmail { to: "bob@example.com".into() };
    sb.jobs().enqueue(EnqueueJob::with_payload(emails.clone(), welcome.clone(), &email)?).await?;
    let every_second = PutSchedule {
        spec: ScheduleSpec::Cron("* * * * * *".into()),
        job: EnqueueJob::with_payload(emails, welcome, &email)?,
    };
    sb.jobs().put_schedule(&ScheduleName::new("welcome-digest")?, every_second).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sent.load(Ordering::SeqCst) < 2 {
        check(tokio::time::Instant::now() < deadline, "the job and a scheduled tick ran within 10 s")?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.shutdown().await;

    // Log out.
    check(sb.sessions().delete(&login.session.id).await?, "logged out")?;
    Ok(())
}
