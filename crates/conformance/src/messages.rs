//! Conformance cases for [`switchboard_core::MessageStore`] and the messages service: post and
//! recent with paging, the cache bound, cache-aside fill and `cached: false`, edit and delete,
//! receipts that never go backwards, and the events each step publishes.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::message::CacheBounds;
use switchboard_core::{ChannelName, ConversationId, DeliveryStatus, Error, MessageId, NewMessage, Timestamp, UserId};

use crate::harness::{TestEngine, eventually};

pub(crate) fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

pub(crate) fn conv(name: &str) -> ConversationId {
    ConversationId::new(name).expect("valid conversation id")
}

pub(crate) fn mid(name: &str) -> MessageId {
    MessageId::new(name).expect("valid message id")
}

pub(crate) fn text(id: &str, sender: &str, content: &str) -> NewMessage {
    NewMessage { id: mid(id), sender: user(sender), content: json!(content), created_at: None, preview: None }
}

/// A group conversation with `members`.
pub(crate) async fn group(t: &TestEngine, id: &str, members: &[&str]) -> ConversationId {
    let spec = ConversationSpec {
        kind: ConversationKind::Group,
        name: None,
        avatar_url: None,
        members: members.iter().map(|m| user(m)).collect(),
    };
    t.sb.conversations().put(&conv(id), spec).await.expect("put conversation");
    conv(id)
}

/// The event types published on a channel, oldest first.
pub(crate) async fn event_types(t: &TestEngine, channel: &ChannelName) -> Vec<String> {
    let read = t.sb.streams().history(channel, 1000).await.expect("history");
    read.publications.iter().map(|p| p.data["type"].as_str().unwrap_or("").to_owned()).collect()
}

fn ids(messages: &[switchboard_core::Message]) -> Vec<String> {
    messages.iter().map(|m| m.id.to_string()).collect()
}

/// A post is cached and published; recent pages newest first with `before`; a repeated post
/// is a duplicate that publishes nothing new.
pub async fn post_recent_and_before_paging(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "c1", &["alice", "bob"]).await;
    for i in 1..=5 {
        let mut msg = text(&format!("m{i}"), "alice", &format!("hello {i}"));
        msg.created_at = Some(Timestamp::now().plus(Duration::from_millis(i)));
        let out = m.post(&c, msg).await.unwrap();
        assert!(!out.duplicate);
        assert_eq!(out.message.status, DeliveryStatus::Sent);
    }
    let page = m.recent(&c, 2, None).await.unwrap();
    assert!(page.cached);
    assert_eq!(ids(&page.messages), ["m5", "m4"]);
    let next = m.recent(&c, 2, Some(&mid("m4"))).await.unwrap();
    assert_eq!(ids(&next.messages), ["m3", "m2"]);
    let last = m.recent(&c, 10, Some(&mid("m2"))).await.unwrap();
    assert_eq!(ids(&last.messages), ["m1"]);
    assert!(m.recent(&c, 10, Some(&mid("unknown"))).await.unwrap().messages.is_empty());
    assert_eq!(page.messages[0].content, json!("hello 5"));
    assert_eq!(page.messages[0].sender, user("alice"));
    let again = m.post(&c, text("m5", "alice", "other")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.content, json!("hello 5"));
    let chat = ChannelName::chat("c1").unwrap();
    assert_eq!(event_types(t, &chat).await, vec!["message.new"; 5]);
}

/// The cache keeps the newest 100 messages.
pub async fn cache_keeps_the_newest_100(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "big", &["alice", "bob"]).await;
    let base = Timestamp::now();
    for i in 0..130u64 {
        let mut msg = text(&format!("m{i:03}"), "alice", "x");
        msg.created_at = Some(base.plus(Duration::from_millis(i)));
        m.post(&c, msg).await.unwrap();
    }
    let page = m.recent(&c, 100, None).await.unwrap();
    assert_eq!(page.messages.len(), 100);
    assert_eq!(page.messages[0].id, mid("m129"));
    assert_eq!(page.messages[99].id, mid("m030"));
    assert!(m.recent(&c, 100, Some(&mid("m030"))).await.unwrap().messages.is_empty());
}

/// Nothing cached says `cached: false`; a fill (even empty) makes it cached; fill keeps cached
/// copies and the bound; deleting the cache forgets it.
pub async fn fill_is_cache_aside(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "cold", &["alice", "bob"]).await;
    let empty = m.recent(&c, 10, None).await.unwrap();
    assert!(!empty.cached && empty.messages.is_empty());
    assert_eq!(m.fill(&c, &[]).await.unwrap(), 0);
    assert!(m.recent(&c, 10, None).await.unwrap().cached);
    let base = Timestamp::now();
    let page: Vec<NewMessage> = (0..3u64)
        .map(|i| NewMessage {
            created_at: Some(base.plus(Duration::from_millis(i))),
            ..text(&format!("f{i}"), "bob", "old")
        })
        .collect();
    assert_eq!(m.fill(&c, &page).await.unwrap(), 3);
    m.edit(&c, &mid("f1"), json!("edited")).await.unwrap();
    assert_eq!(m.fill(&c, &page).await.unwrap(), 0);
    let recent = m.recent(&c, 10, None).await.unwrap();
    assert_eq!(ids(&recent.messages), ["f2", "f1", "f0"]);
    assert_eq!(recent.messages[1].content, json!("edited"));
    assert!(m.delete_cache(&c).await.unwrap());
    assert!(!m.recent(&c, 10, None).await.unwrap().cached);
    assert!(!m.delete_cache(&c).await.unwrap());
    // The store applies the bounds it is given.
    let store = &t.engine.messages;
    let small = CacheBounds { max_len: 2, ..CacheBounds::default() };
    assert_eq!(store.fill(&c, &page, small).await.unwrap(), 3);
    assert_eq!(ids(&store.recent(&c, 10, None).await.unwrap().messages), ["f2", "f1"]);
}

/// Retention counts from caching: messages created long before the age bound, posted or
/// filled now, are served (`cached: true` tells the truth); the whole cache is forgotten once
/// nothing was posted or filled for `max_age`.
pub async fn retention_counts_from_caching(t: &TestEngine) {
    let store = &t.engine.messages;
    let c = conv("aged");
    let bounds = CacheBounds { max_len: 100, max_age: Duration::from_millis(400) };
    let two_days_ago = Timestamp::from_millis(Timestamp::now().as_millis() - 2 * 86_400_000);
    let old = |id: &str| NewMessage { created_at: Some(two_days_ago), ..text(id, "a", "x") };
    assert_eq!(store.fill(&c, &[old("filled-1"), old("filled-2")], bounds).await.unwrap(), 2);
    store.post(&c, &old("posted"), bounds).await.unwrap();
    let page = store.recent(&c, 10, None).await.unwrap();
    assert!(page.cached);
    assert_eq!(ids(&page.messages), ["posted", "filled-2", "filled-1"]);
    eventually(Duration::from_secs(5), "the idle cache is forgotten", || async {
        !store.recent(&c, 10, None).await.unwrap().cached
    })
    .await;
    assert!(store.recent(&c, 10, None).await.unwrap().messages.is_empty());
}

/// Edit replaces the content and sets `edited_at`; delete leaves a tombstone; both publish.
pub async fn edit_and_delete(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "ed", &["alice", "bob"]).await;
    m.post(&c, text("m1", "alice", "hi")).await.unwrap();
    let edited = m.edit(&c, &mid("m1"), json!({"text": "hi!"})).await.unwrap().unwrap();
    assert_eq!(edited.content, json!({"text": "hi!"}));
    assert!(edited.edited_at.is_some());
    assert!(m.delete(&c, &mid("m1")).await.unwrap());
    assert!(!m.delete(&c, &mid("m1")).await.unwrap());
    assert_eq!(m.edit(&c, &mid("m1"), json!("again")).await.unwrap(), None);
    let cached = m.recent(&c, 10, None).await.unwrap().messages;
    assert!(cached[0].deleted);
    assert_eq!(cached[0].content, Value::Null);
    assert_eq!(m.edit(&c, &mid("nope"), json!("x")).await.unwrap(), None);
    let chat = ChannelName::chat("ed").unwrap();
    let events = event_types(t, &chat).await;
    // Edits and deletes are published even when the cache holds no copy: the backend did them.
    let expected =
        ["message.new", "message.edited", "message.deleted", "message.deleted", "message.edited", "message.edited"];
    assert_eq!(events, expected);
}

/// Oversize content, a non-member sender and an unknown conversation are refused.
pub async fn refusals_change_nothing(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "ref", &["alice", "bob"]).await;
    let big = NewMessage { content: json!("x".repeat(17 * 1024)), ..text("m1", "alice", "") };
    assert!(matches!(m.post(&c, big).await, Err(Error::PayloadTooLarge(_))));
    assert!(matches!(m.post(&c, text("m1", "mallory", "hi")).await, Err(Error::PermissionDenied(_))));
    assert!(matches!(m.post(&conv("nope"), text("m1", "alice", "hi")).await, Err(Error::NotFound(_))));
    assert!(!m.recent(&c, 10, None).await.unwrap().cached);
    assert!(m.recent(&c, 0, None).await.is_err());
}

/// A recipient's status only moves forward; receipts are published for real changes only; the
/// sender's own status and unknown messages are ignored.
pub async fn status_never_goes_backwards(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "st", &["alice", "bob", "carol"]).await;
    m.post(&c, text("m1", "alice", "hi")).await.unwrap();
    m.post(&c, text("m2", "alice", "there")).await.unwrap();
    let both = [mid("m1"), mid("m2"), mid("ghost")];
    let moved = m.set_status(&c, &user("bob"), &both, DeliveryStatus::Delivered).await.unwrap();
    assert_eq!(moved.message_ids, [mid("m1"), mid("m2")]);
    let moved = m.set_status(&c, &user("bob"), &[mid("m1")], DeliveryStatus::Read).await.unwrap();
    assert_eq!(moved.message_ids, [mid("m1")]);
    let back = m.set_status(&c, &user("bob"), &[mid("m1")], DeliveryStatus::Delivered).await.unwrap();
    assert!(back.message_ids.is_empty());
    let again = m.set_status(&c, &user("bob"), &[mid("m1")], DeliveryStatus::Read).await.unwrap();
    assert!(again.message_ids.is_empty());
    let own = m.set_status(&c, &user("alice"), &[mid("m1")], DeliveryStatus::Read).await.unwrap();
    assert!(own.message_ids.is_empty());
    // Carol reads m1 directly (sent -> read counts as delivered too).
    m.set_status(&c, &user("carol"), &[mid("m1")], DeliveryStatus::Read).await.unwrap();
    assert!(matches!(
        m.set_status(&c, &user("mallory"), &[mid("m1")], DeliveryStatus::Read).await,
        Err(Error::PermissionDenied(_))
    ));
    let recent = m.recent(&c, 10, None).await.unwrap().messages;
    let (m2, m1) = (&recent[0], &recent[1]);
    assert_eq!((m1.status, m1.delivered_count, m1.read_count), (DeliveryStatus::Read, 2, 2));
    assert_eq!((m2.status, m2.delivered_count, m2.read_count), (DeliveryStatus::Delivered, 1, 0));
    let chat = ChannelName::chat("st").unwrap();
    let statuses = event_types(t, &chat).await.into_iter().filter(|e| e == "message.status").count();
    assert_eq!(statuses, 3);
}

/// Concurrent status updates from many recipients count each exactly once.
pub async fn concurrent_receipts_count_exactly(t: &TestEngine) {
    let members: Vec<String> = (0..20).map(|i| format!("u{i}")).collect();
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let c = group(t, "rc", &names).await;
    t.sb.messages().post(&c, text("m1", "u0", "hi")).await.unwrap();
    let mut tasks = Vec::new();
    for name in members.iter().skip(1) {
        for status in [DeliveryStatus::Delivered, DeliveryStatus::Read, DeliveryStatus::Delivered] {
            let sb = t.sb.clone();
            let (c, u) = (c.clone(), user(name));
            tasks.push(tokio::spawn(async move { sb.messages().set_status(&c, &u, &[mid("m1")], status).await }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let m1 = t.sb.messages().recent(&c, 1, None).await.unwrap().messages.remove(0);
    assert_eq!((m1.status, m1.delivered_count, m1.read_count), (DeliveryStatus::Read, 19, 19));
}

/// With `messages.user_channel_max_members`, `message.new` also reaches every member's `user:`
/// channel in conversations of at most that many members (larger ones stay on `chat:` only), once
/// per message: a retried post publishes nothing again.
pub async fn small_conversations_also_deliver_on_user_channels(t: &TestEngine) {
    let config = switchboard_core::MessagesConfig { user_channel_max_members: 3 };
    let m = switchboard_core::services::Messages::new(
        t.engine.messages.clone(),
        t.engine.inbox.clone(),
        t.sb.conversations().clone(),
        t.sb.streams().clone(),
        t.sb.typing().clone(),
    )
    .with_config(config);
    let small = group(t, "uc-small", &["uc-a", "uc-b", "uc-c"]).await;
    let big = group(t, "uc-big", &["uc-a", "uc-b", "uc-c", "uc-d"]).await;
    m.post(&small, text("s1", "uc-a", "hello")).await.unwrap();
    m.post(&small, text("s1", "uc-a", "hello")).await.unwrap();
    m.post(&big, text("b1", "uc-a", "to many")).await.unwrap();
    for member in ["uc-a", "uc-b", "uc-c"] {
        let types = event_types(t, &ChannelName::user(&user(member))).await;
        let new: Vec<_> = types.iter().filter(|t| *t == "message.new").collect();
        assert_eq!(new.len(), 1, "{member}: {types:?}");
    }
    let history = t.sb.streams().history(&ChannelName::user(&user("uc-b")), 100).await.unwrap();
    let delivered = history.publications.iter().find(|p| p.data["type"] == "message.new").unwrap();
    assert_eq!(delivered.data["data"]["id"], "s1");
    assert_eq!(delivered.data["data"]["conversation_id"], "uc-small");
    assert!(!event_types(t, &ChannelName::user(&user("uc-d"))).await.contains(&"message.new".to_owned()));
    assert_eq!(event_types(t, &ChannelName::chat("uc-big").unwrap()).await, ["message.new"]);
}
