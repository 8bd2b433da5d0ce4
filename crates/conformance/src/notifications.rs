//! Conformance cases for [`switchboard_core::NotificationStore`] and the notifications service:
//! idempotent create, list order, paging and filter, unread count, read/dismiss/read-all that
//! report only real changes (also under concurrency), retention by count and age, the
//! `notification.*` events on the user's channel, and the push hook.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use switchboard_core::notification::{Mark, NotificationRetention};
use switchboard_core::{
    ChannelName, DeviceId, NewNotification, Notification, NotificationId, Notifications, Priority, PushHook, UserId,
};

use crate::harness::{TestEngine, eventually};

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn nid(name: &str) -> NotificationId {
    NotificationId::new(name).expect("valid notification id")
}

fn new(id: &str, title: &str) -> NewNotification {
    NewNotification {
        id: nid(id),
        app_name: Some("tests".into()),
        title: title.into(),
        body: format!("body of {id}"),
        data: json!({"n": id, "list": [], "nested": {"x": 1.5}}),
        priority: Priority::Normal,
        collapse_key: None,
    }
}

fn ids(list: &[Notification]) -> Vec<String> {
    list.iter().map(|n| n.id.to_string()).collect()
}

/// The events on `user:<name>`, as (type, data).
async fn events(t: &TestEngine, name: &str) -> Vec<(String, Value, Option<DeviceId>)> {
    let read = t.sb.streams().history(&ChannelName::user(&user(name)), 1000).await.unwrap();
    read.publications
        .into_iter()
        .map(|p| (p.data["type"].as_str().unwrap_or_default().to_owned(), p.data["data"].clone(), p.exclude_device))
        .collect()
}

/// Creating an id again changes nothing and returns the stored notification; only the first
/// create publishes `notification.new`.
pub async fn create_is_idempotent_by_id(t: &TestEngine) {
    let svc = t.sb.notifications();
    let alice = user("alice");
    let first = svc.create(&alice, new("n1", "Hello")).await.unwrap();
    assert!(first.created);
    let n = &first.notification;
    assert_eq!((n.title.as_str(), n.read, n.dismissed), ("Hello", false, false));
    assert_eq!(n.data, json!({"n": "n1", "list": [], "nested": {"x": 1.5}}), "data comes back as sent");
    assert_eq!(n.created_at, n.updated_at);

    let again = svc.create(&alice, new("n1", "Other title")).await.unwrap();
    assert!(!again.created);
    assert_eq!(again.notification, first.notification);
    assert_eq!(svc.get(&alice, &nid("n1")).await.unwrap(), Some(first.notification.clone()));
    assert_eq!(svc.get(&user("bob"), &nid("n1")).await.unwrap(), None, "per user");
    assert_eq!(svc.get(&alice, &nid("n2")).await.unwrap(), None);

    let seen = events(t, "alice").await;
    assert_eq!(seen.len(), 1, "one event: {seen:?}");
    assert_eq!(seen[0].0, "notification.new");
    assert_eq!(seen[0].1["id"], "n1");
    assert_eq!(seen[0].1["title"], "Hello");
}

/// Lists are newest first, paged by cursor without gaps or repeats, and filter unread ones.
pub async fn list_is_newest_first_paged_and_filtered(t: &TestEngine) {
    let svc = t.sb.notifications();
    let bob = user("bob");
    for i in 0..7 {
        svc.create(&bob, new(&format!("n{i}"), "t")).await.unwrap();
    }
    let all = svc.list(&bob, None, 100, false).await.unwrap();
    assert_eq!(ids(&all.notifications), ["n6", "n5", "n4", "n3", "n2", "n1", "n0"]);
    assert_eq!(all.next_cursor, None);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = svc.list(&bob, cursor.as_deref(), 3, false).await.unwrap();
        assert!(page.notifications.len() <= 3);
        seen.extend(ids(&page.notifications));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["n6", "n5", "n4", "n3", "n2", "n1", "n0"]);

    svc.read(&bob, &[nid("n6"), nid("n3")], None).await.unwrap();
    svc.dismiss(&bob, &[nid("n5")], None).await.unwrap();
    let unread = svc.list(&bob, None, 2, true).await.unwrap();
    assert_eq!(ids(&unread.notifications), ["n4", "n2"]);
    let rest = svc.list(&bob, unread.next_cursor.as_deref(), 10, true).await.unwrap();
    assert_eq!(ids(&rest.notifications), ["n1", "n0"]);
    assert_eq!(rest.next_cursor, None);
    assert!(svc.list(&bob, Some("not-a-cursor"), 10, false).await.is_err());
    assert!(svc.list(&user("nobody"), None, 10, false).await.unwrap().notifications.is_empty());
}

/// Read and dismiss change the unread count; read-all reads the rest.
pub async fn unread_count_follows_read_dismiss_and_read_all(t: &TestEngine) {
    let svc = t.sb.notifications();
    let carol = user("carol");
    assert_eq!(svc.unread_count(&carol).await.unwrap(), 0);
    for i in 0..5 {
        svc.create(&carol, new(&format!("n{i}"), "t")).await.unwrap();
    }
    assert_eq!(svc.unread_count(&carol).await.unwrap(), 5);
    svc.read(&carol, &[nid("n0")], None).await.unwrap();
    svc.dismiss(&carol, &[nid("n1")], None).await.unwrap();
    assert_eq!(svc.unread_count(&carol).await.unwrap(), 3);
    let status = svc.status(&carol, &nid("n1")).await.unwrap().unwrap();
    assert!(status.dismissed && !status.read);
    let changes = svc.read_all(&carol, None).await.unwrap();
    let changed: Vec<String> = changes.iter().map(|c| c.id.to_string()).collect();
    assert_eq!(changed, ["n4", "n3", "n2", "n1"], "every not-yet-read one, newest first");
    assert_eq!(svc.unread_count(&carol).await.unwrap(), 0);
    assert!(svc.read_all(&carol, None).await.unwrap().is_empty());
}

/// Mutations report exactly the real changes, and each real change publishes one
/// `notification.updated` without the source device.
pub async fn mutations_report_only_real_changes(t: &TestEngine) {
    let svc = t.sb.notifications();
    let dan = user("dan");
    let phone = DeviceId::new("phone").unwrap();
    svc.create(&dan, new("a", "t")).await.unwrap();
    svc.create(&dan, new("b", "t")).await.unwrap();

    let changes = svc.read(&dan, &[nid("a"), nid("a"), nid("missing")], Some(&phone)).await.unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!((changes[0].id.as_str(), changes[0].read, changes[0].dismissed), ("a", true, false));
    assert!(svc.read(&dan, &[nid("a")], Some(&phone)).await.unwrap().is_empty(), "a second read changes nothing");
    let changes = svc.dismiss(&dan, &[nid("a"), nid("b")], None).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| (c.id.as_str(), c.read, c.dismissed)).collect::<Vec<_>>(),
        [("a", true, true), ("b", false, true)]
    );
    assert!(svc.dismiss(&dan, &[nid("b")], None).await.unwrap().is_empty());
    let stored = svc.get(&dan, &nid("a")).await.unwrap().unwrap();
    assert!(stored.read && stored.dismissed && stored.updated_at >= stored.created_at);

    let updates: Vec<_> = events(t, "dan").await.into_iter().filter(|e| e.0 == "notification.updated").collect();
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(updates[0].1["id"], "a");
    assert_eq!(updates[0].1["read"], true);
    assert!(updates[0].1["updated_at"].is_string());
    assert_eq!(updates[0].2, Some(phone), "the source device is excluded");
    assert_eq!(updates[1].2, None);
}

/// Creating one more than the bound evicts the oldest.
pub async fn retention_by_count_evicts_the_oldest(t: &TestEngine) {
    let svc = t.sb.notifications();
    let erin = user("erin");
    assert_eq!(svc.config().max_per_user, 100);
    for i in 0..101 {
        svc.create(&erin, new(&format!("n{i}"), "t")).await.unwrap();
    }
    let all = svc.list(&erin, None, 1000, false).await.unwrap();
    assert_eq!(all.notifications.len(), 100);
    assert_eq!(all.notifications[0].id.as_str(), "n100");
    assert_eq!(all.notifications[99].id.as_str(), "n1");
    assert_eq!(svc.get(&erin, &nid("n0")).await.unwrap(), None);
    assert_eq!(svc.unread_count(&erin).await.unwrap(), 100);
    // An evicted id is not live any more: creating it again stores it anew.
    assert!(svc.create(&erin, new("n0", "again")).await.unwrap().created);
}

/// Notifications older than the retention age are never returned, counted or changed.
pub async fn retention_by_age_expires_notifications(t: &TestEngine) {
    let store = &t.engine.notifications;
    let frank = user("frank");
    let short = NotificationRetention { max_per_user: 10, max_age: Duration::from_millis(300) };
    store.create(&frank, &new("old", "t"), short).await.unwrap();
    assert_eq!(store.unread_count(&frank).await.unwrap(), 1);
    eventually(Duration::from_secs(5), "the notification expires", || async {
        store.get(&frank, &nid("old")).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.unread_count(&frank).await.unwrap(), 0);
    assert!(store.list(&frank, None, 10, false).await.unwrap().notifications.is_empty());
    assert!(store.mark(&frank, &[nid("old")], Mark::Read).await.unwrap().is_empty());
    assert!(store.create(&frank, &new("old", "t"), short).await.unwrap().created, "an expired id is free");
}

/// Twenty tasks reading and dismissing the same ids at once: each id is reported read exactly
/// once and dismissed exactly once in total, with one event per report.
pub async fn concurrent_read_and_dismiss_report_each_change_once(t: &TestEngine) {
    let svc = t.sb.notifications();
    let gus = user("gus");
    let all: Vec<NotificationId> = (0..10).map(|i| nid(&format!("n{i}"))).collect();
    for id in &all {
        svc.create(&gus, new(id.as_str(), "t")).await.unwrap();
    }
    let mut tasks = Vec::new();
    for task in 0..20 {
        let svc = svc.clone();
        let gus = gus.clone();
        let ids = all.clone();
        tasks.push(tokio::spawn(async move {
            if task % 2 == 0 {
                svc.read(&gus, &ids, None).await.unwrap()
            } else {
                svc.dismiss(&gus, &ids, None).await.unwrap()
            }
        }));
    }
    let mut reads: HashMap<String, usize> = HashMap::new();
    let mut dismissals: HashMap<String, usize> = HashMap::new();
    for (i, task) in tasks.into_iter().enumerate() {
        for change in task.await.unwrap() {
            let tally = if i % 2 == 0 { &mut reads } else { &mut dismissals };
            *tally.entry(change.id.to_string()).or_default() += 1;
        }
    }
    for id in &all {
        assert_eq!(reads.get(id.as_str()), Some(&1), "{id} read once: {reads:?}");
        assert_eq!(dismissals.get(id.as_str()), Some(&1), "{id} dismissed once: {dismissals:?}");
        let s = svc.status(&gus, id).await.unwrap().unwrap();
        assert!(s.read && s.dismissed);
    }
    let updates = events(t, "gus").await.into_iter().filter(|e| e.0 == "notification.updated").count();
    assert_eq!(updates, 20, "one event per real change");
}

/// Records the notifications the push hook was asked about.
#[derive(Default)]
struct PushRecorder {
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl PushHook for PushRecorder {
    async fn no_device_online(&self, _user: &UserId, notification: &Notification) {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(notification.id.to_string());
        }
    }
}

/// The push hook is asked when no device of the user is online, and only for new ones.
pub async fn push_is_asked_only_when_no_device_is_online(t: &TestEngine) {
    let recorder = Arc::new(PushRecorder::default());
    // The facade's own service has no hook; this one, on the same engine, has the recorder.
    let svc = &Notifications::new(
        t.engine.notifications.clone(),
        t.sb.notifications().config().clone(),
        t.sb.streams().clone(),
        t.sb.presence().clone(),
        recorder.clone(),
    );
    let hana = user("hana");
    svc.create(&hana, new("offline", "t")).await.unwrap();
    svc.create(&hana, new("offline", "t")).await.unwrap();
    t.sb.presence().heartbeat(&hana, &DeviceId::new("phone").unwrap(), Some(60)).await.unwrap();
    svc.create(&hana, new("online", "t")).await.unwrap();
    let asked = recorder.asked.lock().map(|a| a.clone()).unwrap_or_default();
    assert_eq!(asked, ["offline"]);
}

/// Marking unread clears `read` (a real change is announced to the other devices), counts again
/// as unread unless dismissed, and reports nothing when already unread.
pub async fn mark_unread_clears_read(t: &TestEngine) {
    let svc = t.sb.notifications();
    let ivy = user("ivy");
    let phone = DeviceId::new("phone").unwrap();
    svc.create(&ivy, new("a", "t")).await.unwrap();
    svc.create(&ivy, new("b", "t")).await.unwrap();
    assert!(svc.unread(&ivy, &[nid("a")], None).await.unwrap().is_empty(), "already unread");
    svc.read_all(&ivy, None).await.unwrap();
    assert_eq!(svc.unread_count(&ivy).await.unwrap(), 0);
    svc.dismiss(&ivy, &[nid("b")], None).await.unwrap();

    let changes = svc.unread(&ivy, &[nid("a"), nid("b"), nid("a"), nid("missing")], Some(&phone)).await.unwrap();
    assert_eq!(
        changes.iter().map(|c| (c.id.as_str(), c.read, c.dismissed)).collect::<Vec<_>>(),
        [("a", false, false), ("b", false, true)]
    );
    assert_eq!(svc.unread_count(&ivy).await.unwrap(), 1, "the dismissed one does not count");
    assert!(!svc.get(&ivy, &nid("a")).await.unwrap().unwrap().read);
    let unread_only = svc.list(&ivy, None, 10, true).await.unwrap();
    assert_eq!(unread_only.notifications.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a"]);
    let updates: Vec<_> = events(t, "ivy").await.into_iter().filter(|e| e.0 == "notification.updated").collect();
    let last = updates.last().expect("updates");
    assert_eq!((last.1["id"].clone(), last.1["read"].clone()), (json!("b"), json!(false)));
    assert_eq!(last.2, Some(phone), "the source device is excluded");
    assert!(svc.unread(&ivy, &[nid("a")], None).await.unwrap().is_empty());
    assert!(matches!(t.engine.notifications.mark(&ivy, &[nid("a")], Mark::Read).await, Ok(c) if c.len() == 1));
}
