//! The durable mode of the embedded engine: every capability's state written before a restart is
//! there after it (engine built on a temporary data dir, written, dropped, rebuilt, compared),
//! with and without a compaction in between; the dir lock; torn tails and corruption.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use switchboard_core::InboxFilter;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::message::{CacheBounds, DeliveryStatus, InboxPost, NewMessage};
use switchboard_core::notification::{Mark, NotificationRetention};
use switchboard_core::ratelimit::{Algorithm, Policy};
use switchboard_core::{
    Backoff, ChannelName, ConversationId, DeviceId, DeviceInfo, Due, Engine, EnqueueOutcome, JobId, JobRetention,
    JobState, JobType, LeaseToken, MessageId, NewJob, NewNotification, NewPublication, NewSession, NotificationId,
    Priority, QueueName, Retention, Retry, Schedule, ScheduleName, ScheduleSpec, SessionData, StreamPosition,
    Timestamp, TokenId, UnreadTotals, UserConversation, UserId,
};
use switchboard_core::{RateLimitKey, RateLimitRequest, SessionId};
use switchboard_memory::{MemoryConfig, SyncPolicy};

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("switchboard-durable-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn config(dir: &Path, sync: SyncPolicy) -> MemoryConfig {
    MemoryConfig { data_dir: Some(dir.to_path_buf()), sync, ..MemoryConfig::default() }
}

fn open(dir: &Path) -> Engine {
    switchboard_memory::engine(config(dir, SyncPolicy::Always)).expect("the data dir opens")
}

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn new_session(user_id: &UserId, idle: Duration) -> NewSession {
    NewSession {
        user_id: user_id.clone(),
        device: DeviceInfo::default(),
        ip: Some("10.0.0.1".into()),
        user_agent: None,
        data: SessionData::new(),
        idle_ttl: idle,
        absolute_ttl: idle * 10,
        id: None,
        replace_device: None,
    }
}

fn notification(id: &str) -> NewNotification {
    NewNotification {
        id: NotificationId::new(id).expect("valid id"),
        app_name: None,
        title: format!("title {id}"),
        body: String::new(),
        data: json!({"id": id}),
        priority: Priority::Normal,
        collapse_key: None,
    }
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the data dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("log-")))
        .collect();
    logs.sort();
    logs
}

/// The newest non-empty log (a start always begins a new, empty one).
fn newest_log(dir: &Path) -> PathBuf {
    logs(dir).into_iter().rev().find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)).expect("a log with records")
}

#[tokio::test]
async fn sessions_survive_a_restart_and_ttls_count_the_downtime() {
    let dir = TempDir::new();
    let (alice, bob) = (user("alice"), user("bob"));
    let (kept, updated, deleted, short) = {
        let engine = open(&dir.0);
        let s = &engine.sessions;
        let kept = s.create(new_session(&alice, Duration::from_secs(600)), 0).await.unwrap().session;
        let updated = s.create(new_session(&alice, Duration::from_secs(600)), 0).await.unwrap().session;
        let mut patch = SessionData::new();
        patch.insert("cart".into(), json!([1, 2]));
        s.update_data(&updated.id, &patch, 4096).await.unwrap().expect("live");
        let updated = s.touch(&updated.id).await.unwrap().expect("live");
        let deleted = s.create(new_session(&bob, Duration::from_secs(600)), 0).await.unwrap().session;
        assert!(s.delete(&deleted.id).await.unwrap());
        let short = s.create(new_session(&bob, Duration::from_millis(300)), 0).await.unwrap().session;
        (kept, updated, deleted, short)
    };
    // Down for longer than the short session's idle TTL.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let engine = open(&dir.0);
    let s = &engine.sessions;
    assert_eq!(s.get(&kept.id).await.unwrap(), Some(kept.clone()));
    let restored = s.get(&updated.id).await.unwrap().expect("the updated session");
    assert_eq!(restored, updated);
    assert_eq!(restored.data.get("cart"), Some(&json!([1, 2])));
    assert_eq!(s.get(&deleted.id).await.unwrap(), None, "a deleted session stays deleted");
    assert_eq!(s.get(&short.id).await.unwrap(), None, "a session that expired while down stays expired");
    assert_eq!(s.list(&alice).await.unwrap().len(), 2);
    assert_eq!(s.count_active().await.unwrap(), 2);
}

#[tokio::test]
async fn the_denylist_survives_a_restart() {
    let dir = TempDir::new();
    let (denied, undenied) = (TokenId::new("jti-1").unwrap(), TokenId::new("jti-2").unwrap());
    let until = Timestamp::now().plus(Duration::from_secs(3600));
    let before = Timestamp::now();
    {
        let engine = open(&dir.0);
        engine.denylist.deny(&denied, until).await.unwrap();
        engine.denylist.deny(&undenied, until).await.unwrap();
        assert!(engine.denylist.undeny(&undenied).await.unwrap());
        engine.denylist.revoke_before(&user("carol"), before, until).await.unwrap();
    }
    let engine = open(&dir.0);
    assert_eq!(engine.denylist.denied_until(&denied).await.unwrap(), Some(until));
    assert_eq!(engine.denylist.denied_until(&undenied).await.unwrap(), None);
    assert_eq!(engine.denylist.revoked_before(&user("carol")).await.unwrap(), Some(before));
}

#[tokio::test]
async fn notifications_and_their_read_state_survive_a_restart() {
    let dir = TempDir::new();
    let dave = user("dave");
    let retention = NotificationRetention { max_per_user: 3, max_age: Duration::from_secs(3600) };
    {
        let engine = open(&dir.0);
        let n = &engine.notifications;
        for id in ["n1", "n2", "n3", "n4"] {
            assert!(n.create(&dave, &notification(id), retention).await.unwrap().created);
        }
        let read = [NotificationId::new("n3").unwrap()];
        assert_eq!(n.mark(&dave, &read, Mark::Read).await.unwrap().len(), 1);
    }
    let engine = open(&dir.0);
    let n = &engine.notifications;
    let page = n.list(&dave, None, 10, false).await.unwrap();
    let ids: Vec<&str> = page.notifications.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids, vec!["n4", "n3", "n2"], "the oldest was trimmed by count before the restart");
    assert_eq!(n.unread_count(&dave).await.unwrap(), 2);
    assert!(!n.create(&dave, &notification("n4"), retention).await.unwrap().created, "create stays idempotent");
    let fresh = n.create(&dave, &notification("n5"), retention).await.unwrap().notification;
    let listed = n.list(&dave, None, 1, false).await.unwrap();
    assert_eq!(listed.notifications[0].id, fresh.id, "new ones sort after the restored ones");
}

fn post(conversation: &str, message: &str, sender: &UserId) -> InboxPost {
    InboxPost {
        conversation_id: ConversationId::new(conversation).unwrap(),
        message_id: MessageId::new(message).unwrap(),
        sender: sender.clone(),
        preview: format!("preview {message}"),
        at: Timestamp::now(),
    }
}

#[tokio::test]
async fn inbox_entries_and_unread_counters_survive_a_restart_exactly() {
    let dir = TempDir::new();
    let (erin, frank) = (user("erin"), user("frank"));
    let members = [erin.clone(), frank.clone()];
    let c1 = ConversationId::new("c1").unwrap();
    {
        let engine = open(&dir.0);
        let inbox = &engine.inbox;
        for m in ["m1", "m2", "m3"] {
            inbox.record_post(&members, &post("c1", m, &erin)).await.unwrap();
        }
        inbox.record_post(&members, &post("c2", "m4", &erin)).await.unwrap();
        let settings = switchboard_core::InboxSettings { muted: Some(true), ..Default::default() };
        inbox.update(&frank, &ConversationId::new("c2").unwrap(), settings).await.unwrap().expect("entry");
    }
    let engine = open(&dir.0);
    let inbox = &engine.inbox;
    assert_eq!(inbox.totals(&frank).await.unwrap(), UnreadTotals { unread: 3, muted_unread: 1 });
    assert_eq!(inbox.get(&frank, &c1).await.unwrap().expect("entry").unread, 3);
    // A retried post already counted is still recognised after the restart.
    let retried = inbox.record_post(&members, &post("c1", "m3", &erin)).await.unwrap();
    assert!(!retried[1].counted);
    let read = inbox.read(&frank, &c1, &MessageId::new("m3").unwrap()).await.unwrap().expect("entry");
    assert_eq!((read.cleared, read.totals.unread), (3, 0));
    drop(engine);
    let engine = open(&dir.0);
    assert_eq!(engine.inbox.totals(&frank).await.unwrap(), UnreadTotals { unread: 0, muted_unread: 1 });
}

/// An imported list stays loaded across restarts and compactions, with its imported entries and
/// repaired counters; an empty import (a user with no conversations) is remembered too.
#[tokio::test]
async fn imported_lists_stay_loaded_across_restarts_and_compactions() {
    let dir = TempDir::new();
    let (gina, hank) = (user("gina"), user("hank"));
    let c = ConversationId::new("imported").unwrap();
    let entry = UserConversation {
        unread: 5,
        name: Some("Old friends".into()),
        ..UserConversation::new(c.clone(), Timestamp::now())
    };
    let config = MemoryConfig { compact_log_bytes: 20_000, ..config(&dir.0, SyncPolicy::EverySec) };
    {
        let engine = switchboard_memory::engine(config.clone()).unwrap();
        engine.inbox.import(&gina, std::slice::from_ref(&entry)).await.unwrap();
        engine.inbox.import(&hank, &[]).await.unwrap();
        engine.inbox.set_unread(&gina, &c, 2).await.unwrap().expect("entry");
    }
    let engine = open(&dir.0);
    let page = engine.inbox.list(&gina, InboxFilter::All, None, 10).await.unwrap();
    assert!(page.loaded);
    assert_eq!(page.conversations[0].name.as_deref(), Some("Old friends"));
    assert_eq!(page.conversations[0].unread, 2);
    assert!(engine.inbox.list(&hank, InboxFilter::All, None, 10).await.unwrap().loaded);
    drop(engine);
    {
        // Enough later writes to compact: the snapshot must carry the loaded flags.
        let engine = switchboard_memory::engine(config).unwrap();
        for round in 0..3 {
            write_some(&engine, round).await;
        }
    }
    let snapshots = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().starts_with("snapshot-"))
        .count();
    assert_eq!(snapshots, 1, "compacted");
    let engine = open(&dir.0);
    assert!(engine.inbox.list(&hank, InboxFilter::All, None, 10).await.unwrap().loaded);
    assert_eq!(engine.inbox.totals(&gina).await.unwrap().unread, 2);
}

fn event(n: u64) -> NewPublication {
    NewPublication::new(json!({"type": "test.event", "data": {"n": n}}))
}

#[tokio::test]
async fn streams_keep_their_epoch_and_offsets_so_a_client_recovers_with_no_gap() {
    let dir = TempDir::new();
    let gina = user("gina");
    let channel = ChannelName::user(&gina);
    let retention = Retention::for_channel(&channel);
    let phone = DeviceId::new("phone").unwrap();
    let seen = {
        let engine = open(&dir.0);
        for n in 1..=3 {
            engine.streams.publish(&channel, event(n), retention).await.unwrap();
        }
        let seen = engine.streams.position(&channel).await.unwrap();
        engine.cursors.ack(&gina, &phone, &seen).await.unwrap();
        for n in 4..=5 {
            engine.streams.publish(&channel, event(n), retention).await.unwrap();
        }
        seen
    };
    let engine = open(&dir.0);
    let read = engine.streams.read_since(&channel, &seen, 100).await.unwrap();
    assert!(read.recovered, "the client's (epoch, offset) is still valid");
    assert_eq!(read.position, StreamPosition { epoch: seen.epoch.clone(), offset: 5 });
    let offsets: Vec<u64> = read.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![4, 5]);
    assert_eq!(read.publications[1].data["data"]["n"], 5);
    assert_eq!(engine.cursors.cursor(&gina, &phone).await.unwrap(), Some(seen.clone()));
    let next = engine.streams.publish(&channel, event(6), retention).await.unwrap();
    assert_eq!(next, StreamPosition { epoch: seen.epoch, offset: 6 }, "offsets continue");
}

#[tokio::test]
async fn a_stream_first_read_keeps_its_epoch_across_a_restart() {
    let dir = TempDir::new();
    let channel = ChannelName::user(&user("hana"));
    let first = open(&dir.0).streams.position(&channel).await.unwrap();
    assert_eq!(open(&dir.0).streams.position(&channel).await.unwrap(), first);
}

/// Writes some state of several stores, returning what to check.
async fn write_some(engine: &Engine, round: u64) {
    let ivan = user("ivan");
    let channel = ChannelName::user(&ivan);
    let retention = NotificationRetention { max_per_user: 100, max_age: Duration::from_secs(3600) };
    for i in 0..20 {
        let n = round * 100 + i;
        engine.sessions.create(new_session(&ivan, Duration::from_secs(600)), 0).await.unwrap();
        engine.streams.publish(&channel, event(n), Retention::for_channel(&channel)).await.unwrap();
        engine.notifications.create(&ivan, &notification(&format!("n{n}")), retention).await.unwrap();
        engine
            .inbox
            .record_post(std::slice::from_ref(&ivan), &post("c", &format!("m{n}"), &user("judy")))
            .await
            .unwrap();
        engine.jobs.enqueue(&[new_job("compact", &format!("j{n}"))]).await.unwrap();
    }
    // One job taken and completed per round.
    let (queue, keep) = (QueueName::new("compact").unwrap(), JobRetention::default());
    let token = LeaseToken::generate().unwrap();
    let fetched = engine.jobs.fetch(&[queue], std::slice::from_ref(&token), None, &keep).await.unwrap();
    engine.jobs.complete(&fetched.jobs[0].job.id, &token, None, &keep).await.unwrap();
}

async fn state_of(engine: &Engine) -> (usize, StreamPosition, usize, u64, u64, (u64, u64, u64)) {
    let ivan = user("ivan");
    let channel = ChannelName::user(&ivan);
    (
        engine.sessions.list(&ivan).await.unwrap().len(),
        engine.streams.position(&channel).await.unwrap(),
        engine.streams.history(&channel, 1000).await.unwrap().publications.len(),
        engine.notifications.unread_count(&ivan).await.unwrap(),
        engine.inbox.totals(&ivan).await.unwrap().unread,
        {
            let counts =
                engine.jobs.counts(&QueueName::new("compact").unwrap(), &JobRetention::default()).await.unwrap();
            (counts.waiting, counts.completed, counts.completed_total)
        },
    )
}

#[tokio::test]
async fn a_compaction_keeps_every_state_and_later_changes() {
    let dir = TempDir::new();
    let before = {
        let config = MemoryConfig { compact_log_bytes: 20_000, ..config(&dir.0, SyncPolicy::EverySec) };
        let engine = switchboard_memory::engine(config).unwrap();
        for round in 0..3 {
            write_some(&engine, round).await;
        }
        state_of(&engine).await
    };
    assert_eq!((before.3, before.5), (60, (57, 3, 3)));
    let snapshots = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().starts_with("snapshot-"))
        .count();
    assert_eq!(snapshots, 1, "the small log size made it compact (older snapshots deleted)");
    let engine = open(&dir.0);
    assert_eq!(state_of(&engine).await, before);
    write_some(&engine, 3).await;
    let after = state_of(&engine).await;
    drop(engine);
    assert_eq!(state_of(&open(&dir.0)).await, after);
}

#[tokio::test]
async fn a_second_engine_on_the_same_dir_is_refused_naming_it() {
    let dir = TempDir::new();
    let first = open(&dir.0);
    let second = switchboard_memory::engine(config(&dir.0, SyncPolicy::Always));
    let Err(error) = second else { panic!("the dir is locked") };
    let message = error.to_string();
    assert!(message.contains("in use by another") && message.contains(&dir.0.display().to_string()), "{message}");
    drop(first);
    open(&dir.0);
}

/// Whole frames at the start of `bytes` (each is `len: u32 LE`, two checksums, `len` bytes) and
/// the length they cover.
fn whole_frames(bytes: &[u8]) -> (u64, usize) {
    let (mut count, mut at) = (0, 0);
    while bytes.len() >= at + 12 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        if bytes.len() < at + 12 + len {
            break;
        }
        count += 1;
        at += 12 + len;
    }
    (count, at)
}

#[tokio::test]
async fn a_torn_tail_is_dropped_and_every_whole_record_kept() {
    let dir = TempDir::new();
    let hugo = user("hugo");
    let retention = NotificationRetention { max_per_user: 1000, max_age: Duration::from_secs(3600) };
    {
        let engine = open(&dir.0);
        for i in 0..30 {
            engine.notifications.create(&hugo, &notification(&format!("n{i}")), retention).await.unwrap();
        }
    }
    let log = newest_log(&dir.0);
    let whole = std::fs::read(&log).unwrap();
    // Cut points spread over the log (a fixed pseudo-random walk: reproducible).
    let mut cut = whole.len();
    let mut kept = 30;
    let mut seed = 0x2545_f491_u64;
    for _ in 0..8 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        cut -= 1 + (seed >> 33) as usize % (whole.len() / 10);
        std::fs::write(&log, &whole[..cut]).unwrap();
        for other in logs(&dir.0) {
            if other != log {
                std::fs::remove_file(other).unwrap();
            }
        }
        let (whole_records, whole_len) = whole_frames(&whole[..cut]);
        let engine = open(&dir.0);
        let count = engine.notifications.unread_count(&hugo).await.unwrap();
        assert_eq!(count, whole_records, "cut at {cut}: every whole record is kept");
        assert!(count <= kept);
        kept = count;
        drop(engine);
        assert_eq!(std::fs::metadata(&log).unwrap().len(), whole_len as u64, "the torn tail was truncated");
    }
}

#[tokio::test]
async fn a_flipped_byte_mid_log_stops_start_up_naming_the_file_and_offset() {
    let dir = TempDir::new();
    {
        let engine = open(&dir.0);
        for i in 0..10 {
            engine
                .denylist
                .deny(&TokenId::new(format!("jti-{i}")).unwrap(), Timestamp::now().plus(Duration::from_secs(60)))
                .await
                .unwrap();
        }
    }
    let log = newest_log(&dir.0);
    let mut bytes = std::fs::read(&log).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&log, &bytes).unwrap();
    let Err(error) = switchboard_memory::engine(config(&dir.0, SyncPolicy::Always)) else { panic!("start-up stops") };
    let message = error.to_string();
    assert!(message.contains(&log.display().to_string()), "{message}");
    assert!(message.contains("corrupt at byte offset"), "{message}");
    // The offset named is the damaged record's, at or before the flipped byte.
    let offset: usize = message
        .split("byte offset ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("an offset");
    assert!(offset <= middle && middle - offset < 200, "offset {offset}, flipped {middle}");
    assert_eq!(std::fs::read(&log).unwrap(), bytes, "nothing was truncated");
}

fn new_job(queue: &str, id: &str) -> NewJob {
    NewJob {
        id: JobId::new(id).unwrap(),
        queue: QueueName::new(queue).unwrap(),
        job_type: JobType::new("test.job").unwrap(),
        payload: br#"{"n":1}"#.to_vec(),
        priority: 0,
        due: Due::Now,
        max_attempts: 3,
        backoff: Backoff::Fixed { delay_ms: 60_000 },
        lease: Duration::from_secs(30),
        unique_key: None,
    }
}

#[tokio::test]
async fn jobs_keep_their_state_and_a_lease_that_ran_out_while_down_is_retried() {
    let dir = TempDir::new();
    let keep = JobRetention::default();
    let work = QueueName::new("work").unwrap();
    let id = |s: &str| JobId::new(s).unwrap();
    let schedule = Schedule {
        name: ScheduleName::new("nightly").unwrap(),
        spec: ScheduleSpec::EveryMs(60_000),
        queue: work.clone(),
        job_type: JobType::new("maintenance.tick").unwrap(),
        payload: "{}".to_owned(),
        priority: 0,
        max_attempts: 3,
        backoff: Backoff::default(),
        lease_ms: 30_000,
    };
    let next_fire = Timestamp::now().plus(Duration::from_secs(60));
    let leased = {
        let engine = open(&dir.0);
        let jobs = &engine.jobs;
        let unique = NewJob { unique_key: Some("only-one".into()), ..new_job("work", "unique") };
        let later = NewJob { due: Due::After(Duration::from_secs(3600)), ..new_job("work", "later") };
        jobs.enqueue(&[new_job("work", "done"), new_job("work", "leased"), unique, later]).await.unwrap();
        let token = LeaseToken::generate().unwrap();
        let fetched = jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&token), None, &keep).await.unwrap();
        jobs.complete(&fetched.jobs[0].job.id, &token, Some(b"42"), &keep).await.unwrap();
        // A short lease that runs out while the engine is down.
        let token = LeaseToken::generate().unwrap();
        let lease = Some(Duration::from_millis(200));
        let fetched =
            jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&token), lease, &keep).await.unwrap();
        jobs.progress(&fetched.jobs[0].job.id, &token, b"{\"half\":true}").await.unwrap();
        jobs.put_schedule(&schedule, Some(next_fire)).await.unwrap();
        jobs.set_paused(&QueueName::new("idle").unwrap(), true).await.unwrap();
        fetched.jobs[0].job.clone()
    };
    assert_eq!(leased.id, id("leased"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let engine = open(&dir.0);
    let jobs = &engine.jobs;
    let done = jobs.get(&id("done")).await.unwrap().expect("the completed job");
    assert_eq!((done.state, done.result.as_deref()), (JobState::Completed, Some(&b"42"[..])));
    assert_eq!(jobs.get(&id("later")).await.unwrap().expect("delayed").state, JobState::Delayed);
    let counts = jobs.counts(&work, &keep).await.unwrap();
    assert_eq!(counts.completed_total, 1);
    assert_eq!(counts.failed_total, 1, "the lease that ran out while down counts as a failure");
    assert_eq!((counts.waiting, counts.delayed, counts.active, counts.completed), (2, 1, 0, 1));
    let retried = jobs.get(&id("leased")).await.unwrap().expect("the leased job");
    assert_eq!(retried.state, JobState::Waiting);
    assert_eq!(retried.errors.last().map(|e| e.message.as_str()), Some("lease expired"));
    assert_eq!(retried.progress.as_deref(), Some(&b"{\"half\":true}"[..]));
    let duplicate = NewJob { unique_key: Some("only-one".into()), ..new_job("work", "again") };
    let answer = jobs.enqueue(&[duplicate]).await.unwrap();
    assert_eq!((answer[0].outcome, answer[0].id.clone()), (EnqueueOutcome::DuplicateUniqueKey, id("unique")));
    // FIFO order survives: the unique job entered waiting before the requeued one.
    let token = LeaseToken::generate().unwrap();
    let fetched = jobs
        .fetch(std::slice::from_ref(&work), &[token.clone(), LeaseToken::generate().unwrap()], None, &keep)
        .await
        .unwrap();
    let order: Vec<&str> = fetched.jobs.iter().map(|j| j.job.id.as_str()).collect();
    assert_eq!(order, vec!["unique", "leased"]);
    assert_eq!(fetched.jobs[1].job.attempts, 2);
    let stored = jobs.get_schedule(&schedule.name).await.unwrap().expect("the schedule");
    assert_eq!((stored.schedule, stored.next_fire_at), (schedule, Some(next_fire)));
    assert!(jobs.counts(&QueueName::new("idle").unwrap(), &keep).await.unwrap().paused);
}

#[tokio::test]
async fn messages_conversations_and_rate_limits_survive_a_restart() {
    let dir = TempDir::new();
    let (kim, leo) = (user("kim"), user("leo"));
    let c = ConversationId::new("chat").unwrap();
    let bounds = CacheBounds { max_len: 3, max_age: Duration::from_secs(3600) };
    let mid = |s: &str| MessageId::new(s).unwrap();
    let message = |id: &str| NewMessage::new(mid(id), kim.clone(), json!({"text": id}));
    let limit = RateLimitRequest {
        key: RateLimitKey::new("login/kim").unwrap(),
        policy: "3 per 60 s".parse().unwrap(),
        cost: 1,
    };
    {
        let engine = open(&dir.0);
        let spec = ConversationSpec {
            kind: ConversationKind::Group,
            name: Some("team".into()),
            avatar_url: None,
            members: vec![kim.clone(), leo.clone()],
        };
        engine.conversations.put(&c, &spec, 100).await.unwrap();
        engine.conversations.update_members(&c, &[user("max")], std::slice::from_ref(&leo), 100).await.unwrap();
        for id in ["m1", "m2", "m3", "m4"] {
            engine.messages.post(&c, &message(id), bounds).await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        engine.messages.edit(&c, &mid("m3"), &json!({"text": "edited"})).await.unwrap().expect("edited");
        assert!(engine.messages.delete(&c, &mid("m4")).await.unwrap());
        engine.messages.set_status(&c, &leo, &[mid("m2")], DeliveryStatus::Read).await.unwrap();
        for _ in 0..2 {
            assert!(engine.rate_limiter.check(std::slice::from_ref(&limit)).await.unwrap()[0].allowed);
        }
    }
    let engine = open(&dir.0);
    let conversation = engine.conversations.get(&c).await.unwrap().expect("the conversation");
    assert_eq!(conversation.name.as_deref(), Some("team"));
    assert_eq!(conversation.members, vec![kim.clone(), user("max")]);
    let recent = engine.messages.recent(&c, 10, None).await.unwrap();
    assert!(recent.cached);
    let ids: Vec<&str> = recent.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["m4", "m3", "m2"], "the count bound held before the restart");
    assert!(recent.messages[0].deleted);
    assert_eq!(recent.messages[1].content, json!({"text": "edited"}));
    assert_eq!((recent.messages[2].read_count, recent.messages[2].status), (1, DeliveryStatus::Read));
    assert!(engine.messages.set_status(&c, &leo, &[mid("m2")], DeliveryStatus::Read).await.unwrap().is_empty());
    let third = engine.rate_limiter.check(std::slice::from_ref(&limit)).await.unwrap()[0];
    assert!(third.allowed && third.remaining == 0, "two of three were used before the restart: {third:?}");
    assert!(!engine.rate_limiter.check(std::slice::from_ref(&limit)).await.unwrap()[0].allowed);
}

#[tokio::test]
async fn presence_keeps_last_seen_status_devices_and_contacts_and_every_device_comes_back_offline() {
    use switchboard_core::{ConnectionInfo, DeviceRegistration, PresenceStatus, StatusSetting};
    let dir = TempDir::new();
    let (alice, bob) = (user("alice"), user("bob"));
    let (phone, laptop) = (DeviceId::new("phone").unwrap(), DeviceId::new("laptop").unwrap());
    let grace = Duration::ZERO;
    let setting = StatusSetting { status: PresenceStatus::Busy, text: Some("in a meeting".into()), invisible: false };
    let conn = ConnectionInfo {
        conn_id: "c1".into(),
        user_id: alice.clone(),
        device_id: laptop.clone(),
        node_id: "n1".into(),
        connected_at: Timestamp::now(),
        ip: None,
        user_agent: None,
    };
    let (before, registered) = {
        let engine = open(&dir.0);
        let p = &engine.presence;
        p.set_status(&alice, &setting, grace).await.unwrap();
        let registration = DeviceRegistration { push_token: Some("push-1".into()), ..DeviceRegistration::default() };
        let registered = p.upsert_device(&alice, &phone, registration).await.unwrap();
        assert_eq!(registered.push_token.as_deref(), Some("push-1"));
        p.set_contacts(&alice, std::slice::from_ref(&bob), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The phone is still live when the engine stops; the laptop disconnected before.
        p.heartbeat(&alice, &phone, Duration::from_secs(60)).await.unwrap();
        p.connect(&conn, Duration::from_secs(60)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.disconnect(&conn.conn_ref(), grace).await.unwrap();
        let before = p.get(&alice, grace).await.unwrap();
        assert!(before.online, "the phone is live");
        let registered = p.devices(&alice).await.unwrap();
        assert!(registered[0].last_active_at > registered[0].registered_at, "the heartbeat moved it");
        // Presence records are not waited for: let the writer take them before the engine stops.
        engine.sessions.create(new_session(&bob, Duration::from_secs(60)), 0).await.unwrap();
        (before, registered)
    };
    let engine = open(&dir.0);
    let p = &engine.presence;
    let after = p.get(&alice, grace).await.unwrap();
    assert!(!after.online, "nobody is connected after a restart");
    assert_eq!(after.status_text.as_deref(), Some("in a meeting"));
    let mut seen_before: Vec<_> = before.devices.iter().map(|d| (d.device_id.clone(), d.last_seen)).collect();
    let mut seen_after: Vec<_> = after.devices.iter().map(|d| (d.device_id.clone(), d.last_seen)).collect();
    seen_before.sort();
    seen_after.sort();
    assert_eq!(seen_after, seen_before, "each device keeps its last-seen time");
    assert!(after.devices.iter().all(|d| !d.online));
    assert_eq!(p.devices(&alice).await.unwrap(), registered, "with the activity time of its last entry");
    assert_eq!(p.contacts(&alice).await.unwrap(), vec![bob.clone()]);
    assert_eq!(p.online_count().await.unwrap(), 0);
    // Going online again after the restart works as usual.
    p.heartbeat(&alice, &phone, Duration::from_secs(60)).await.unwrap();
    assert!(p.get(&alice, grace).await.unwrap().online);
}

#[tokio::test]
async fn the_sweep_records_the_last_refresh_of_a_device_that_went_offline() {
    use switchboard_core::ConnectionInfo;
    let dir = TempDir::new();
    let alice = user("alice");
    let conn = ConnectionInfo {
        conn_id: "c1".into(),
        user_id: alice.clone(),
        device_id: DeviceId::new("tablet").unwrap(),
        node_id: "n1".into(),
        connected_at: Timestamp::now(),
        ip: None,
        user_agent: None,
    };
    let refreshed_at = {
        let engine = open(&dir.0);
        let p = &engine.presence;
        p.connect(&conn, Duration::from_millis(300)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A refresh is not journalled by itself.
        assert_eq!(p.refresh(&[conn.conn_ref()], Duration::from_millis(100)).await.unwrap().refreshed, 1);
        let refreshed_at = p.get(&alice, Duration::ZERO).await.unwrap().devices[0].last_seen;
        // Past the connection's first expiry, when the sweep is due to look at the user.
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(p.sweep(Duration::ZERO, 100).await.unwrap(), vec![alice.clone()], "the entry ran out");
        // The sweep's record is not waited for: a waited write after it flushes it.
        engine.sessions.create(new_session(&alice, Duration::from_secs(60)), 0).await.unwrap();
        refreshed_at
    };
    let engine = open(&dir.0);
    let after = engine.presence.get(&alice, Duration::ZERO).await.unwrap();
    assert_eq!(after.devices.len(), 1);
    assert!(!after.devices[0].online);
    assert_eq!(after.devices[0].last_seen, refreshed_at, "the refresh's time, recorded by the sweep");
}

/// The state `fixtures/json-journal` holds, checked on `engine`: a data dir written before the
/// hottest records were binary (every record JSON).
async fn assert_json_journal_state(engine: &Engine, century_policy: impl Fn(Algorithm) -> Policy) {
    let (ana, bo) = (user("ana"), user("bo"));
    let id = SessionId::custom("session_id", "fixture-session-0123456789abcdef0123").unwrap();
    let session = engine.sessions.get(&id).await.unwrap().expect("the session");
    assert!(session.last_active_at > session.created_at, "the touch replayed");
    // Each key was checked once: a second check leaves what it leaves on a fresh engine.
    let fresh = switchboard_memory::engine(MemoryConfig::default()).unwrap();
    for (key, algorithm) in
        [("rl/gcra", Algorithm::Gcra), ("rl/window", Algorithm::SlidingWindow), ("rl/log", Algorithm::SlidingLog)]
    {
        let limit =
            RateLimitRequest { key: RateLimitKey::new(key).unwrap(), policy: century_policy(algorithm), cost: 1 };
        let reference = fresh.rate_limiter.status(&limit.key, &limit.policy).await.unwrap();
        fresh.rate_limiter.check(std::slice::from_ref(&limit)).await.unwrap();
        let expected = fresh.rate_limiter.status(&limit.key, &limit.policy).await.unwrap();
        let replayed = engine.rate_limiter.status(&limit.key, &limit.policy).await.unwrap();
        assert_eq!(replayed.remaining, expected.remaining, "{key}");
        assert_ne!(replayed.remaining, reference.remaining, "{key} was used");
    }
    let done = engine.jobs.get(&JobId::new("j1").unwrap()).await.unwrap().expect("j1");
    assert_eq!((done.state, done.result.as_deref()), (JobState::Completed, Some(&b"42"[..])));
    assert_eq!(engine.jobs.get(&JobId::new("j2").unwrap()).await.unwrap().expect("j2").state, JobState::Waiting);
    let c1 = ConversationId::new("c1").unwrap();
    let entry = engine.inbox.get(&bo, &c1).await.unwrap().expect("bo's entry");
    assert_eq!((entry.unread, entry.last_message_id.as_ref().map(MessageId::as_str)), (2, Some("m2")));
    assert_eq!(engine.inbox.totals(&ana).await.unwrap().unread, 0, "the sender's own posts are not unread");
    let recent = engine.messages.recent(&c1, 10, None).await.unwrap();
    let ids: Vec<&str> = recent.messages.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, vec!["m2", "m1"]);
    let history = engine.streams.history(&ChannelName::new("chat:c1").unwrap(), 10).await.unwrap();
    let data: Vec<&serde_json::Value> = history.publications.iter().map(|p| &p.data).collect();
    assert_eq!(data, vec![&json!({"n": 0}), &json!({"n": 1})]);
}

/// A data dir whose records are all JSON (written before touches, rate-limit states, job
/// changes, inbox posts, message puts and publications were binary) still reads, and keeps
/// reading once binary records follow.
#[tokio::test]
async fn a_journal_of_json_records_still_reads_and_binary_records_follow_it() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/json-journal");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.0.join(entry.file_name())).unwrap();
    }
    let century = |algorithm| Policy::gcra(3, 100 * 365 * 24 * 3600 * 1000).with_algorithm(algorithm);
    {
        let engine = open(&dir.0);
        assert_json_journal_state(&engine, century).await;
        // New records (binary) after the old ones.
        let limit =
            RateLimitRequest { key: RateLimitKey::new("rl/new").unwrap(), policy: century(Algorithm::Gcra), cost: 1 };
        engine.rate_limiter.check(std::slice::from_ref(&limit)).await.unwrap();
        let post = InboxPost { at: Timestamp::now(), ..post("c1", "m3", &user("ana")) };
        engine.inbox.record_post(&[user("ana"), user("bo")], &post).await.unwrap();
    }
    let engine = open(&dir.0);
    let key = RateLimitKey::new("rl/new").unwrap();
    assert!(engine.rate_limiter.status(&key, &century(Algorithm::Gcra)).await.unwrap().remaining < 3);
    assert_eq!(engine.inbox.get(&user("bo"), &ConversationId::new("c1").unwrap()).await.unwrap().unwrap().unread, 3);
}

/// A data dir whose job records are all whole jobs (written before leases and completions were
/// written as moves) still reads: a completed job, a job whose lease ran out while down, a
/// waiting job.
#[tokio::test]
async fn a_journal_of_whole_job_records_still_reads() {
    let dir = TempDir::new();
    std::fs::create_dir_all(&dir.0).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/binary-jobs-journal");
    for entry in std::fs::read_dir(&fixture).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.0.join(entry.file_name())).unwrap();
    }
    let engine = open(&dir.0);
    let (jobs, keep, id) = (&engine.jobs, JobRetention::default(), |s: &str| JobId::new(s).unwrap());
    let done = jobs.get(&id("j1")).await.unwrap().expect("j1");
    assert_eq!((done.state, done.attempts, done.result.as_deref()), (JobState::Completed, 1, Some(&b"7"[..])));
    let counts = jobs.counts(&QueueName::new("work").unwrap(), &keep).await.unwrap();
    assert_eq!((counts.waiting, counts.active, counts.completed, counts.completed_total), (2, 0, 1, 1));
    let expired = jobs.get(&id("j2")).await.unwrap().expect("j2");
    assert_eq!((expired.state, expired.attempts), (JobState::Waiting, 1));
    assert_eq!(expired.errors.last().map(|e| e.message.as_str()), Some("lease expired"));
    assert_eq!(jobs.get(&id("j3")).await.unwrap().expect("j3").state, JobState::Waiting);
}

fn log_bytes(dir: &Path) -> u64 {
    logs(dir).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum()
}

/// A lease and a completion are journalled as the job's move, not the whole job: both survive a
/// restart (the lease token still completes the job, its unique key stays held, then is freed),
/// and each record is smaller than the job's first one.
#[tokio::test]
async fn leases_and_completions_are_small_records_that_replay_onto_the_job() {
    let dir = TempDir::new();
    let (keep, work) = (JobRetention::default(), QueueName::new("work").unwrap());
    let payload = vec![b'x'; 500];
    let job = NewJob { unique_key: Some("the-key".into()), payload: payload.clone(), ..new_job("work", "moved") };
    let (token, sizes) = {
        let engine = open(&dir.0);
        let jobs = &engine.jobs;
        let before = log_bytes(&dir.0);
        jobs.enqueue(std::slice::from_ref(&job)).await.unwrap();
        let enqueued = log_bytes(&dir.0) - before;
        let token = LeaseToken::generate().unwrap();
        let lease = Some(Duration::from_secs(3600));
        let fetched =
            jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&token), lease, &keep).await.unwrap();
        assert_eq!(fetched.jobs.len(), 1);
        (token, (enqueued, log_bytes(&dir.0) - before - enqueued))
    };
    let (enqueued, leased) = sizes;
    assert!(enqueued > 500 && leased < 200, "enqueue {enqueued} bytes, lease {leased} bytes");
    let engine = open(&dir.0);
    let jobs = &engine.jobs;
    let active = jobs.get(&JobId::new("moved").unwrap()).await.unwrap().expect("the leased job");
    assert_eq!((active.state, active.attempts, active.payload.len()), (JobState::Active, 1, 500));
    assert!(active.started_at.is_some() && active.lease_expires_at.is_some());
    let again = NewJob { id: JobId::new("other").unwrap(), ..job.clone() };
    assert_eq!(
        jobs.enqueue(std::slice::from_ref(&again)).await.unwrap()[0].outcome,
        EnqueueOutcome::DuplicateUniqueKey
    );
    let before = log_bytes(&dir.0);
    jobs.complete(&active.id, &token, Some(b"ok"), &keep).await.unwrap();
    let completed = log_bytes(&dir.0) - before;
    assert!(completed < 200, "completion {completed} bytes");
    drop(engine);
    let engine = open(&dir.0);
    let jobs = &engine.jobs;
    let done = jobs.get(&JobId::new("moved").unwrap()).await.unwrap().expect("the completed job");
    assert_eq!((done.state, done.result.as_deref(), done.payload), (JobState::Completed, Some(&b"ok"[..]), payload));
    assert_eq!((done.lease_expires_at, done.attempts), (None, 1));
    let counts = jobs.counts(&work, &keep).await.unwrap();
    assert_eq!((counts.active, counts.completed, counts.completed_total), (0, 1, 1));
    assert_eq!(jobs.enqueue(&[again]).await.unwrap()[0].outcome, EnqueueOutcome::Created, "the key was freed");
}

/// A heartbeat and a progress report are journalled as the job's move too: after a restart the
/// lease ends when the heartbeat said (a lease that would have run out meanwhile without it is not
/// taken back), the progress is the last one reported, and the token still completes the job.
#[tokio::test]
async fn heartbeats_and_progress_are_small_records_that_replay_onto_the_job() {
    let dir = TempDir::new();
    let (keep, work) = (JobRetention::default(), QueueName::new("work").unwrap());
    let job = NewJob { payload: vec![b'x'; 500], ..new_job("work", "beating") };
    let id = JobId::new("beating").unwrap();
    let token = LeaseToken::generate().unwrap();
    let (first_end, end, sizes) = {
        let engine = open(&dir.0);
        let jobs = &engine.jobs;
        jobs.enqueue(std::slice::from_ref(&job)).await.unwrap();
        let short = Some(Duration::from_secs(1));
        let fetched =
            jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&token), short, &keep).await.unwrap();
        let first_end = fetched.jobs[0].job.lease_expires_at.expect("a lease end");
        let before = log_bytes(&dir.0);
        let end = jobs.heartbeat(&id, &token, Some(Duration::from_secs(3600))).await.unwrap();
        let beat = log_bytes(&dir.0) - before;
        jobs.progress(&id, &token, br#"{"done":40}"#).await.unwrap();
        jobs.progress(&id, &token, br#"{"done":80}"#).await.unwrap();
        let reported = (log_bytes(&dir.0) - before - beat) / 2;
        (first_end, end, (beat, reported))
    };
    assert!(sizes.0 < 120 && sizes.1 < 120, "heartbeat {} bytes, progress {} bytes", sizes.0, sizes.1);
    // Past the first lease's end: only the heartbeat's keeps the job active.
    while Timestamp::now() <= first_end.plus(Duration::from_millis(50)) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let engine = open(&dir.0);
    let jobs = &engine.jobs;
    let other = LeaseToken::generate().unwrap();
    let fetched = jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&other), None, &keep).await.unwrap();
    assert!(fetched.jobs.is_empty(), "the extended lease was taken back");
    let active = jobs.get(&id).await.unwrap().expect("the job");
    assert_eq!((active.state, active.lease_expires_at, active.attempts), (JobState::Active, Some(end), 1));
    assert_eq!(active.progress.as_deref(), Some(&br#"{"done":80}"#[..]));
    assert_eq!(active.payload.len(), 500);
    jobs.complete(&id, &token, None, &keep).await.unwrap();
    drop(engine);
    let done = open(&dir.0).jobs.get(&id).await.unwrap().expect("the completed job");
    assert_eq!((done.state, done.progress.as_deref()), (JobState::Completed, Some(&br#"{"done":80}"#[..])));
}

/// Leases job `id` of `queue` and fails it with `message` (retried at once while attempts are
/// left); the outcome's state and the bytes the failure added to the log.
async fn lease_and_fail(engine: &Engine, dir: &Path, queue: &QueueName, id: &JobId, message: &str) -> (JobState, u64) {
    let (keep, token) = (JobRetention::default(), LeaseToken::generate().unwrap());
    let fetched = engine.jobs.fetch(std::slice::from_ref(queue), std::slice::from_ref(&token), None, &keep).await;
    assert_eq!(fetched.unwrap().jobs[0].job.id, *id);
    let before = log_bytes(dir);
    let outcome = engine.jobs.fail(id, &token, message, Retry::After(Duration::ZERO), 0.0, &keep).await.unwrap();
    (outcome.state, log_bytes(dir) - before)
}

/// A failure is journalled as the job's move too: after a restart the retried job waits with its
/// error, the dead one is finished with both errors and its unique key freed, and the queue's
/// failure total counts both.
#[tokio::test]
async fn failures_are_small_records_that_replay_onto_the_job() {
    let dir = TempDir::new();
    let work = QueueName::new("work").unwrap();
    let job = NewJob {
        payload: vec![b'x'; 500],
        max_attempts: 2,
        unique_key: Some("once".into()),
        ..new_job("work", "failing")
    };
    let id = JobId::new("failing").unwrap();
    let first = {
        let engine = open(&dir.0);
        engine.jobs.enqueue(std::slice::from_ref(&job)).await.unwrap();
        lease_and_fail(&engine, &dir.0, &work, &id, "first failure").await
    };
    let second = {
        let engine = open(&dir.0);
        let waiting = engine.jobs.get(&id).await.unwrap().expect("the job");
        assert_eq!((waiting.state, waiting.attempts, waiting.lease_expires_at), (JobState::Waiting, 1, None));
        assert_eq!(
            waiting.errors.iter().map(|e| (e.attempt, e.message.as_str())).collect::<Vec<_>>(),
            [(1, "first failure")]
        );
        lease_and_fail(&engine, &dir.0, &work, &id, "second failure").await
    };
    assert_eq!((first.0, second.0), (JobState::Waiting, JobState::Dead));
    assert!(first.1 < 200 && second.1 < 200, "failures of {} and {} bytes", first.1, second.1);
    let engine = open(&dir.0);
    let dead = engine.jobs.get(&id).await.unwrap().expect("the dead job");
    assert_eq!((dead.state, dead.attempts, dead.payload.len()), (JobState::Dead, 2, 500));
    assert!(dead.finished_at.is_some() && dead.lease_expires_at.is_none());
    let errors: Vec<_> = dead.errors.iter().map(|e| (e.attempt, e.message.as_str())).collect();
    assert_eq!(errors, [(1, "first failure"), (2, "second failure")]);
    let counts = engine.jobs.counts(&work, &JobRetention::default()).await.unwrap();
    assert_eq!((counts.dead, counts.waiting, counts.failed_total), (1, 0, 2));
    let again = NewJob { id: JobId::new("again").unwrap(), ..job };
    assert_eq!(engine.jobs.enqueue(&[again]).await.unwrap()[0].outcome, EnqueueOutcome::Created, "the key was freed");
}

/// A release is journalled as the job's move too: after a restart the job waits with its attempt
/// given back and its unique key still held, and the old token no longer completes it.
#[tokio::test]
async fn a_release_is_a_small_record_that_replays_onto_the_job() {
    let dir = TempDir::new();
    let (keep, work) = (JobRetention::default(), QueueName::new("work").unwrap());
    let job = NewJob { payload: vec![b'x'; 500], unique_key: Some("held".into()), ..new_job("work", "released") };
    let id = JobId::new("released").unwrap();
    let token = LeaseToken::generate().unwrap();
    let released = {
        let engine = open(&dir.0);
        engine.jobs.enqueue(std::slice::from_ref(&job)).await.unwrap();
        let fetched = engine.jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&token), None, &keep);
        assert_eq!(fetched.await.unwrap().jobs.len(), 1);
        let before = log_bytes(&dir.0);
        engine.jobs.release(&id, &token).await.unwrap();
        log_bytes(&dir.0) - before
    };
    assert!(released < 100, "release {released} bytes");
    let engine = open(&dir.0);
    let waiting = engine.jobs.get(&id).await.unwrap().expect("the job");
    assert_eq!((waiting.state, waiting.attempts, waiting.lease_expires_at), (JobState::Waiting, 0, None));
    assert!(engine.jobs.complete(&id, &token, None, &keep).await.is_err(), "the released lease completed the job");
    let again = NewJob { id: JobId::new("other").unwrap(), ..job };
    assert_eq!(engine.jobs.enqueue(&[again]).await.unwrap()[0].outcome, EnqueueOutcome::DuplicateUniqueKey);
    let next = LeaseToken::generate().unwrap();
    let fetched = engine.jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&next), None, &keep).await;
    let leased = &fetched.unwrap().jobs[0].job;
    assert_eq!((leased.id.as_str(), leased.attempts), ("released", 1));
}

/// A fetch that first takes back a lease that ran out and then leases the job again changed more
/// than the lease: the job's record is whole, so the lost lease's error survives a restart.
#[tokio::test]
async fn a_job_leased_again_after_its_lease_ran_out_keeps_the_error_across_a_restart() {
    let dir = TempDir::new();
    let (keep, work) = (JobRetention::default(), QueueName::new("work").unwrap());
    let id = JobId::new("again").unwrap();
    let token = {
        let engine = open(&dir.0);
        let jobs = &engine.jobs;
        jobs.enqueue(&[new_job("work", "again")]).await.unwrap();
        let first = LeaseToken::generate().unwrap();
        let short = Some(Duration::from_millis(50));
        jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&first), short, &keep).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let second = LeaseToken::generate().unwrap();
        let long = Some(Duration::from_secs(3600));
        let fetched =
            jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&second), long, &keep).await.unwrap();
        assert_eq!(fetched.jobs.len(), 1);
        second
    };
    let engine = open(&dir.0);
    let job = engine.jobs.get(&id).await.unwrap().expect("the job");
    assert_eq!((job.state, job.attempts), (JobState::Active, 2));
    assert_eq!(job.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), vec!["lease expired"]);
    engine.jobs.complete(&id, &token, None, &keep).await.unwrap();
}

/// A lease that runs out is counted as a failure of its queue when the job is taken back, and
/// that count is journalled with the job.
#[tokio::test]
async fn a_lease_taken_back_counts_its_failure_across_a_restart() {
    let dir = TempDir::new();
    let (keep, work) = (JobRetention::default(), QueueName::new("work").unwrap());
    {
        let engine = open(&dir.0);
        let jobs = &engine.jobs;
        jobs.enqueue(&[new_job("work", "lost")]).await.unwrap();
        let token = LeaseToken::generate().unwrap();
        let short = Some(Duration::from_millis(50));
        jobs.fetch(std::slice::from_ref(&work), std::slice::from_ref(&token), short, &keep).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let counts = jobs.counts(&work, &keep).await.unwrap();
        assert_eq!((counts.waiting, counts.failed_total), (1, 1));
    }
    let engine = open(&dir.0);
    let counts = engine.jobs.counts(&work, &keep).await.unwrap();
    assert_eq!((counts.waiting, counts.active, counts.failed_total), (1, 0, 1));
}
