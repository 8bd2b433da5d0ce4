//! Conformance cases for [`switchboard_core::PresenceStore`] and the presence service: devices,
//! live entries and their TTLs, batch refresh, status and invisibility, queries, contacts, and
//! `presence.changed` transitions with the grace period and concurrent sweepers.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use switchboard_core::{
    ConnectionInfo, DeviceId, DeviceRegistration, Error, Platform, Presence, PresenceConfig, PresenceEvents,
    PresenceStatus, SetStatus, Timestamp, Transition, UserId, UserPresence,
};

use crate::harness::{TestEngine, eventually};

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).expect("valid device id")
}

fn conn(u: &str, d: &str, id: &str) -> ConnectionInfo {
    ConnectionInfo {
        conn_id: id.to_owned(),
        user_id: user(u),
        device_id: device(d),
        node_id: "node-a".to_owned(),
        connected_at: Timestamp::now(),
        ip: Some("10.0.0.1".into()),
        user_agent: Some("test/1".into()),
    }
}

const MINUTE: Duration = Duration::from_secs(60);
/// The store's answers with no offline grace period: online exactly while an entry is live.
const NO_GRACE: Duration = Duration::ZERO;
const WAIT: Duration = Duration::from_secs(5);

/// Records every `presence.changed` event.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<UserPresence>>,
    /// Deliveries to followers' `user:` channels: (followers, whose presence, online).
    for_followers: Mutex<Vec<(Vec<UserId>, UserId, bool)>>,
}

impl Recorder {
    fn events(&self) -> Vec<UserPresence> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    fn offline_events(&self, u: &str) -> usize {
        self.events().iter().filter(|p| p.user_id.as_str() == u && !p.online).count()
    }
}

#[async_trait]
impl PresenceEvents for Recorder {
    async fn presence_changed(&self, presence: &UserPresence) {
        if let Ok(mut events) = self.events.lock() {
            events.push(presence.clone());
        }
    }

    async fn presence_changed_for(&self, followers: &[UserId], presence: &UserPresence) {
        if let Ok(mut deliveries) = self.for_followers.lock() {
            deliveries.push((followers.to_vec(), presence.user_id.clone(), presence.online));
        }
    }
}

/// A presence service on `t`'s store with a short grace period, recording its events.
fn service(t: &TestEngine, grace_ms: u64, recorder: &Arc<Recorder>) -> Presence {
    let config = PresenceConfig { offline_grace_ms: grace_ms, ..PresenceConfig::default() };
    Presence::new(t.engine.presence.clone(), config, recorder.clone())
}

/// Devices are upserted (keeping their registration time), listed most recently active first,
/// and removed; bounds are enforced by the service.
pub async fn devices_are_upserted_listed_and_removed(t: &TestEngine) {
    let svc = t.sb.presence();
    let alice = user("alice");
    let reg = DeviceRegistration {
        platform: Platform::Ios,
        push_token: Some("apns-token".into()),
        app_version: Some("4.2.0".into()),
        meta: json!({"model": "iPhone 17"}).as_object().cloned().unwrap_or_default(),
        ..DeviceRegistration::default()
    };
    let phone = svc.register_device(&alice, &device("phone"), reg.clone()).await.unwrap();
    assert_eq!(phone.platform, Platform::Ios);
    assert_eq!(phone.push_token.as_deref(), Some("apns-token"));
    assert_eq!(phone.registered_at, phone.last_active_at);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let web = svc.register_device(&alice, &device("web"), DeviceRegistration::default()).await.unwrap();
    assert_eq!(web.platform, Platform::Other);

    let listed = svc.devices(&alice).await.unwrap();
    assert_eq!(listed.iter().map(|d| d.device_id.as_str()).collect::<Vec<_>>(), ["web", "phone"]);
    assert_eq!(listed[1], phone);

    tokio::time::sleep(Duration::from_millis(5)).await;
    let updated =
        svc.register_device(&alice, &device("phone"), DeviceRegistration { push_token: None, ..reg }).await.unwrap();
    assert_eq!(updated.registered_at, phone.registered_at);
    assert!(updated.last_active_at > phone.last_active_at);
    assert_eq!(updated.push_token, None);
    assert_eq!(svc.devices(&alice).await.unwrap()[0].device_id.as_str(), "phone");

    assert!(svc.remove_device(&alice, &device("phone")).await.unwrap());
    assert!(!svc.remove_device(&alice, &device("phone")).await.unwrap());
    assert_eq!(svc.devices(&alice).await.unwrap(), vec![web]);
    assert!(svc.devices(&user("bob")).await.unwrap().is_empty());

    let huge_token = DeviceRegistration { push_token: Some("x".repeat(4097)), ..DeviceRegistration::default() };
    assert!(matches!(svc.register_device(&alice, &device("p2"), huge_token).await, Err(Error::InvalidArgument(_))));
    let meta = json!({"blob": "y".repeat(5000)}).as_object().cloned().unwrap_or_default();
    let huge_meta = DeviceRegistration { meta, ..DeviceRegistration::default() };
    assert!(matches!(svc.register_device(&alice, &device("p2"), huge_meta).await, Err(Error::PayloadTooLarge(_))));
}

/// The first live entry makes the user online; a second device keeps them online; the last
/// disconnect reports `MaybeOffline`.
pub async fn connections_drive_online_and_maybe_offline(t: &TestEngine) {
    let store = &t.engine.presence;
    let alice = user("alice");
    assert!(!store.get(&alice, NO_GRACE).await.unwrap().online);
    let phone = conn("alice", "phone", "c-phone");
    let web = conn("alice", "web", "c-web");
    assert_eq!(store.connect(&phone, MINUTE).await.unwrap(), Transition::WentOnline);
    assert_eq!(store.connect(&web, MINUTE).await.unwrap(), Transition::Unchanged);

    let p = store.get(&alice, NO_GRACE).await.unwrap();
    assert!(p.online);
    assert_eq!(p.status, PresenceStatus::Online);
    assert_eq!(
        p.devices.iter().map(|d| (d.device_id.as_str(), d.online)).collect::<Vec<_>>(),
        [("phone", true), ("web", true)]
    );
    assert!(p.last_seen.is_some());
    let conns = store.connections(&alice).await.unwrap();
    assert_eq!(conns, vec![phone.clone(), web.clone()]);

    assert_eq!(store.disconnect(&phone.conn_ref(), MINUTE).await.unwrap(), Transition::Unchanged);
    let p = store.get(&alice, NO_GRACE).await.unwrap();
    assert!(p.online, "the web device keeps alice online");
    assert_eq!(p.devices.iter().map(|d| d.online).collect::<Vec<_>>(), [false, true]);
    assert_eq!(store.disconnect(&phone.conn_ref(), MINUTE).await.unwrap(), Transition::Unchanged, "already gone");

    assert_eq!(store.disconnect(&web.conn_ref(), MINUTE).await.unwrap(), Transition::MaybeOffline);
    let lingering = store.get(&alice, MINUTE).await.unwrap();
    assert!(lingering.online, "online for the grace period after the last disconnect");
    assert_eq!(lingering.status, PresenceStatus::Online);
    assert!(lingering.devices.iter().all(|d| !d.online), "no device is online");
    let p = store.get(&alice, NO_GRACE).await.unwrap();
    assert!(!p.online);
    assert_eq!(p.status, PresenceStatus::Offline);
    assert_eq!(p.devices.len(), 2, "devices stay listed with their last-seen time");
    assert!(store.connections(&alice).await.unwrap().is_empty());
}

/// A connection not refreshed leaves presence when its TTL runs out (a crashed node).
pub async fn connections_expire_after_their_ttl(t: &TestEngine) {
    let store = &t.engine.presence;
    let c = conn("alice", "phone", "c-1");
    assert_eq!(store.connect(&c, Duration::from_millis(300)).await.unwrap(), Transition::WentOnline);
    assert!(store.get(&user("alice"), NO_GRACE).await.unwrap().online);
    eventually(WAIT, "the connection expires", || async { !store.get(&user("alice"), NO_GRACE).await.unwrap().online })
        .await;
    assert!(store.connections(&user("alice")).await.unwrap().is_empty());
    let out = store.refresh(&[c.conn_ref()], MINUTE).await.unwrap();
    assert_eq!((out.refreshed, out.missing), (0, vec![c.conn_ref()]), "an expired connection is not revived");
    assert!(!store.get(&user("alice"), NO_GRACE).await.unwrap().online);
}

/// A backend heartbeat marks a device online without a socket until its TTL; the latest
/// heartbeat of a device sets its expiry.
pub async fn heartbeats_mark_a_device_online_until_their_ttl(t: &TestEngine) {
    let store = &t.engine.presence;
    let bob = user("bob");
    assert_eq!(store.heartbeat(&bob, &device("server-push"), MINUTE).await.unwrap(), Transition::WentOnline);
    assert_eq!(
        store.heartbeat(&bob, &device("server-push"), Duration::from_millis(300)).await.unwrap(),
        Transition::Unchanged
    );
    let p = store.get(&bob, NO_GRACE).await.unwrap();
    assert!(p.online && p.devices[0].online);
    assert!(store.connections(&bob).await.unwrap().is_empty(), "a heartbeat is not a connection");
    eventually(WAIT, "the heartbeat expires", || async { !store.get(&bob, NO_GRACE).await.unwrap().online }).await;
}

/// One refresh call keeps 500 connections of 50 users alive past their original TTL; a
/// disconnected connection in the batch is reported missing, not revived.
pub async fn batch_refresh_keeps_many_connections_alive(t: &TestEngine) {
    let store = &t.engine.presence;
    let ttl = Duration::from_millis(2500);
    let started = tokio::time::Instant::now();
    let mut conns = Vec::new();
    for i in 0..500 {
        let c = conn(&format!("u{:02}", i % 50), &format!("d{}", i % 3), &format!("c{i}"));
        store.connect(&c, ttl).await.unwrap();
        conns.push(c.conn_ref());
    }
    let gone = conns.pop().unwrap();
    assert_eq!(store.disconnect(&gone, MINUTE).await.unwrap(), Transition::Unchanged);
    conns.push(gone.clone());

    let out = store.refresh(&conns, Duration::from_secs(30)).await.unwrap();
    assert_eq!(out.refreshed, 499);
    assert_eq!(out.missing, vec![gone]);

    tokio::time::sleep_until(started + ttl + Duration::from_millis(300)).await;
    let users: Vec<UserId> = (0..50).map(|i| user(&format!("u{i:02}"))).collect();
    let all = store.bulk(&users, NO_GRACE).await.unwrap();
    assert!(all.iter().all(|p| p.online), "every user is still online after the original TTL");
    let live: usize = {
        let mut n = 0;
        for u in &users {
            n += store.connections(u).await.unwrap().len();
        }
        n
    };
    assert_eq!(live, 499);
}

/// Status, text and invisibility: an invisible user appears offline to others and online to
/// themself; `offline` cannot be chosen and text is bounded.
pub async fn status_text_and_invisible(t: &TestEngine) {
    let svc = t.sb.presence();
    let alice = user("alice");
    let bob = user("bob");
    let p = svc
        .set_status(&alice, SetStatus { status: PresenceStatus::Away, text: Some("lunch".into()), invisible: false })
        .await
        .unwrap();
    assert_eq!(p.status, PresenceStatus::Offline, "not connected: offline whatever the chosen status");
    assert_eq!(p.status_text.as_deref(), Some("lunch"));

    svc.connect(&conn("alice", "phone", "c-1")).await.unwrap();
    let p = svc.get(&alice).await.unwrap();
    assert!(p.online);
    assert_eq!(p.status, PresenceStatus::Away);
    assert_eq!(svc.get_for(&bob, &alice).await.unwrap(), p, "visible users look the same to others");

    let p =
        svc.set_status(&alice, SetStatus { status: PresenceStatus::Busy, text: None, invisible: true }).await.unwrap();
    assert!(p.online && p.invisible);
    assert_eq!(p.status, PresenceStatus::Busy);
    assert_eq!(p.status_text, None);
    let own = svc.get_for(&alice, &alice).await.unwrap();
    assert!(own.online && own.invisible);
    let seen = svc.get_for(&bob, &alice).await.unwrap();
    assert!(!seen.online && !seen.invisible);
    assert_eq!(seen.status, PresenceStatus::Offline);
    assert!(seen.devices.is_empty() && seen.last_seen.is_none());
    let bulk = svc.bulk(std::slice::from_ref(&alice)).await.unwrap();
    assert!(bulk[0].online && bulk[0].invisible, "bulk is the full (backend) view");

    let offline = SetStatus { status: PresenceStatus::Offline, text: None, invisible: false };
    assert!(matches!(svc.set_status(&alice, offline).await, Err(Error::InvalidArgument(_))));
    let long = SetStatus { status: PresenceStatus::Online, text: Some("é".repeat(129)), invisible: false };
    assert!(matches!(svc.set_status(&alice, long).await, Err(Error::InvalidArgument(_))));
    let ok = SetStatus { status: PresenceStatus::Online, text: Some("é".repeat(128)), invisible: false };
    assert_eq!(svc.set_status(&alice, ok).await.unwrap().status_text.map(|s| s.chars().count()), Some(128));
}

/// Bulk answers every user in the order asked, unknown users offline.
pub async fn bulk_answers_in_order(t: &TestEngine) {
    let store = &t.engine.presence;
    store.connect(&conn("b", "d", "c-b"), MINUTE).await.unwrap();
    store.heartbeat(&user("c"), &device("d"), MINUTE).await.unwrap();
    let asked = [user("c"), user("a"), user("b")];
    let got = store.bulk(&asked, NO_GRACE).await.unwrap();
    assert_eq!(
        got.iter().map(|p| (p.user_id.as_str(), p.online)).collect::<Vec<_>>(),
        [("c", true), ("a", false), ("b", true)]
    );
    assert!(store.bulk(&[], NO_GRACE).await.unwrap().is_empty());
    let too_many: Vec<UserId> = (0..1001).map(|i| user(&format!("u{i}"))).collect();
    assert!(matches!(t.sb.presence().bulk(&too_many).await, Err(Error::InvalidArgument(_))));
}

/// Paging through online users returns each exactly once, in id order; the count agrees.
pub async fn online_users_pages_cover_everyone_once(t: &TestEngine) {
    let svc = t.sb.presence();
    let mut expected = BTreeSet::new();
    for i in 0..23 {
        let u = user(&format!("user-{i:03}"));
        svc.heartbeat(&u, &device("d"), None).await.unwrap();
        expected.insert(u);
    }
    assert_eq!(svc.online_count().await.unwrap(), 23);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = svc.online_users(cursor.as_deref(), Some(5)).await.unwrap();
        assert!(page.users.len() <= 5);
        seen.extend(page.users);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected.into_iter().collect::<Vec<_>>());
    assert!(matches!(svc.online_users(None, Some(0)).await, Err(Error::InvalidArgument(_))));
}

/// Contacts are replaced, added to, removed from and queried; the relation is directed and
/// bounded; a TTL makes the set expire.
pub async fn contacts_set_add_remove_and_expire(t: &TestEngine) {
    let svc = t.sb.presence();
    let alice = user("alice");
    svc.set_contacts(&alice, &[user("bob"), user("carol")], None).await.unwrap();
    assert_eq!(svc.contacts(&alice).await.unwrap(), [user("bob"), user("carol")]);
    assert!(svc.is_contact(&alice, &user("bob")).await.unwrap());
    assert!(!svc.is_contact(&user("bob"), &alice).await.unwrap(), "contacts are directed");

    assert_eq!(svc.add_contacts(&alice, &[user("dave"), user("bob"), user("dave")]).await.unwrap(), 1);
    assert_eq!(svc.remove_contacts(&alice, &[user("carol"), user("zoe")]).await.unwrap(), 1);
    assert_eq!(svc.contacts(&alice).await.unwrap(), [user("bob"), user("dave")]);

    let store = &t.engine.presence;
    let mut replaced = store.set_contacts(&alice, &[user("erin")], None).await.unwrap();
    replaced.sort();
    assert_eq!(replaced, [user("bob"), user("dave")], "set returns what it replaced");
    assert_eq!(svc.contacts(&alice).await.unwrap(), [user("erin")], "set replaces");

    let over = store.add_contacts(&alice, &[user("f1"), user("f2")], 2).await;
    assert!(matches!(over, Err(Error::InvalidArgument(_))));
    assert_eq!(store.contacts(&alice).await.unwrap(), [user("erin")], "nothing added over the maximum");

    let frank = user("frank");
    store.set_contacts(&frank, std::slice::from_ref(&alice), Some(Duration::from_millis(300))).await.unwrap();
    assert!(store.is_contact(&frank, &alice).await.unwrap());
    eventually(WAIT, "the contacts expire", || async { !store.is_contact(&frank, &alice).await.unwrap() }).await;
    assert!(store.contacts(&frank).await.unwrap().is_empty());
    let replaced = store.set_contacts(&frank, &[user("gus")], None).await.unwrap();
    assert!(replaced.is_empty(), "expired contacts are not returned as replaced: {replaced:?}");
}

/// A reconnect within the grace period announces nothing; staying away longer announces
/// exactly one offline event, after the grace period.
pub async fn grace_period_hides_a_quick_reconnect(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let svc = service(t, 400, &recorder);
    let alice = user("alice");
    let first = conn("alice", "phone", "c-1");
    assert_eq!(svc.connect(&first).await.unwrap(), Transition::WentOnline);
    assert_eq!(recorder.events().len(), 1);
    assert!(recorder.events()[0].online);

    assert_eq!(svc.disconnect(&first.conn_ref()).await.unwrap(), Transition::MaybeOffline);
    assert_eq!(svc.sweep().await.unwrap(), 0, "the grace period has not passed");
    let second = conn("alice", "phone", "c-2");
    assert_eq!(svc.connect(&second).await.unwrap(), Transition::Unchanged, "no flap");
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(700);
    while tokio::time::Instant::now() < quiet_until {
        svc.sweep().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorder.events().len(), 1, "a reconnect within the grace period emits nothing");
    assert_eq!(svc.online_count().await.unwrap(), 1);

    let disconnected = tokio::time::Instant::now();
    assert_eq!(svc.disconnect(&second.conn_ref()).await.unwrap(), Transition::MaybeOffline);
    assert_eq!(svc.online_count().await.unwrap(), 1, "still reported online during the grace period");
    eventually(WAIT, "the offline event", || async {
        svc.sweep().await.unwrap();
        recorder.offline_events("alice") == 1
    })
    .await;
    assert!(disconnected.elapsed() >= Duration::from_millis(350), "not before the grace period");
    for _ in 0..10 {
        svc.sweep().await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorder.events().len(), 2, "exactly one offline event");
    assert_eq!(svc.online_count().await.unwrap(), 0);
    assert!(svc.online_users(None, None).await.unwrap().users.is_empty());
    assert!(!svc.get(&alice).await.unwrap().online);

    assert_eq!(svc.connect(&conn("alice", "web", "c-3")).await.unwrap(), Transition::WentOnline);
    assert_eq!(recorder.events().len(), 3);
}

/// Expired connections and heartbeats (a crashed node) are announced offline exactly once,
/// even with two nodes sweeping concurrently.
pub async fn expiry_is_announced_once_by_concurrent_sweepers(t: &TestEngine) {
    let other = t.sibling().await;
    let recorder = Arc::new(Recorder::default());
    let node_a = service(t, 200, &recorder);
    let node_b = service(&other, 200, &recorder);
    let store = &t.engine.presence;
    let short = Duration::from_millis(300);
    assert_eq!(store.connect(&conn("alice", "phone", "c-1"), short).await.unwrap(), Transition::WentOnline);
    assert_eq!(store.heartbeat(&user("bob"), &device("d"), short).await.unwrap(), Transition::WentOnline);
    assert_eq!(node_b.online_count().await.unwrap(), 2);
    eventually(WAIT, "both offline events", || async {
        let (a, b) = tokio::join!(node_a.sweep(), node_b.sweep());
        a.unwrap();
        b.unwrap();
        recorder.offline_events("alice") >= 1 && recorder.offline_events("bob") >= 1
    })
    .await;
    for _ in 0..10 {
        let (a, b) = tokio::join!(node_a.sweep(), node_b.sweep());
        a.unwrap();
        b.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(recorder.offline_events("alice"), 1);
    assert_eq!(recorder.offline_events("bob"), 1);
    assert_eq!(recorder.events().len(), 2);
    assert_eq!(node_a.online_count().await.unwrap(), 0);
}

/// Status changes are announced when what others see changes, never for an invisible user's
/// comings and goings.
pub async fn status_changes_are_announced_and_invisible_users_stay_quiet(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let svc = service(t, 100, &recorder);
    let alice = user("alice");
    svc.connect(&conn("alice", "phone", "c-1")).await.unwrap();
    assert_eq!(recorder.events().len(), 1);
    let away = SetStatus { status: PresenceStatus::Away, text: None, invisible: false };
    svc.set_status(&alice, away.clone()).await.unwrap();
    svc.set_status(&alice, away).await.unwrap();
    assert_eq!(recorder.events().len(), 2, "the same status twice is one change");
    assert_eq!(recorder.events()[1].status, PresenceStatus::Away);

    let hidden = SetStatus { status: PresenceStatus::Away, text: None, invisible: true };
    svc.set_status(&alice, hidden).await.unwrap();
    let events = recorder.events();
    assert_eq!(events.len(), 3);
    assert!(!events[2].online && !events[2].invisible, "going invisible looks like going offline");

    svc.disconnect(&conn("alice", "phone", "c-1").conn_ref()).await.unwrap();
    eventually(WAIT, "offline settled", || async {
        svc.sweep().await.unwrap();
        svc.online_count().await.unwrap() == 0
    })
    .await;
    svc.connect(&conn("alice", "phone", "c-2")).await.unwrap();
    assert_eq!(recorder.events().len(), 3, "an invisible user's transitions are not announced");
}

/// `get`, `online_users` and `online_count` follow one rule: a user is online while a device
/// has a live entry and for the grace period after the last one ended. Asked in that order, a
/// later answer never shows the user online after an earlier one showed them offline, through
/// a disconnect, a heartbeat running out, and the grace period ending.
pub async fn get_list_and_count_agree_on_who_is_online(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let svc = service(t, 500, &recorder);
    let alice = user("alice");
    let bob = user("bob");
    let phone = conn("alice", "phone", "c-1");
    svc.connect(&phone).await.unwrap();
    svc.heartbeat(&bob, &device("server"), Some(1)).await.unwrap();
    let started = tokio::time::Instant::now();
    svc.disconnect(&phone.conn_ref()).await.unwrap();

    // One observation: (get says online, counted, listed) for each user, in that call order.
    let observe = |u: UserId| {
        let svc = svc.clone();
        async move {
            let got = svc.get(&u).await.unwrap().online;
            let counted = svc.online_count().await.unwrap();
            let listed = svc.online_users(None, None).await.unwrap().users.contains(&u);
            (got, counted, listed)
        }
    };
    let (got, counted, listed) = observe(alice.clone()).await;
    assert!(
        got && listed && counted == 2,
        "right after the disconnect, within the grace period: {got} {counted} {listed}"
    );

    let mut seen_offline = [false, false];
    loop {
        for (i, u) in [&alice, &bob].into_iter().enumerate() {
            let (got, counted, listed) = observe(u.clone()).await;
            let others_online = usize::from(!seen_offline[1 - i]);
            if !got {
                assert!(!listed, "{u}: get says offline, then the list still has them");
                assert!(
                    counted <= others_online as u64,
                    "{u}: get says offline, then the count ({counted}) still has them"
                );
                seen_offline[i] = true;
            } else {
                assert!(!seen_offline[i], "{u}: online again after being offline");
            }
            if !listed {
                let again = svc.get(u).await.unwrap().online;
                assert!(!again, "{u}: not listed, then get says online");
            }
        }
        if seen_offline == [true, true] {
            break;
        }
        assert!(started.elapsed() < WAIT, "both users go offline within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert_eq!(svc.online_count().await.unwrap(), 0);
    assert_eq!(recorder.offline_events("alice"), 1, "reading the list announced the transition once");
    assert_eq!(recorder.offline_events("bob"), 1);
}

/// Ending a device's heartbeat takes the device offline at once and the user after the grace
/// period (one offline event); a connection of the same device is not touched; ending a
/// heartbeat that does not exist changes nothing.
pub async fn ending_a_heartbeat_is_explicit_offline(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let svc = service(t, 300, &recorder);
    let (carol, phone, web) = (user("carol"), device("phone"), device("web"));
    assert_eq!(svc.end_heartbeat(&carol, &phone).await.unwrap(), Transition::Unchanged, "never seen");
    assert_eq!(svc.heartbeat(&carol, &phone, Some(600)).await.unwrap(), Transition::WentOnline);
    assert_eq!(svc.end_heartbeat(&carol, &phone).await.unwrap(), Transition::MaybeOffline);
    let p = svc.get(&carol).await.unwrap();
    assert!(!p.devices[0].online, "the device is offline at once");
    assert_eq!(svc.end_heartbeat(&carol, &phone).await.unwrap(), Transition::Unchanged, "already ended");
    eventually(WAIT, "offline after the grace period", || async { svc.online_count().await.unwrap() == 0 }).await;
    assert!(!svc.get(&carol).await.unwrap().online);
    assert_eq!(recorder.offline_events("carol"), 1);

    svc.heartbeat(&carol, &phone, Some(600)).await.unwrap();
    svc.connect(&conn("carol", "phone", "c-phone")).await.unwrap();
    svc.heartbeat(&carol, &web, Some(600)).await.unwrap();
    assert_eq!(svc.end_heartbeat(&carol, &web).await.unwrap(), Transition::Unchanged, "the phone is still live");
    assert_eq!(svc.end_heartbeat(&carol, &phone).await.unwrap(), Transition::Unchanged, "its socket keeps it live");
    let p = svc.get(&carol).await.unwrap();
    assert_eq!(
        p.devices.iter().map(|d| (d.device_id.as_str(), d.online)).collect::<Vec<_>>(),
        [("phone", true), ("web", false)]
    );
    assert_eq!(svc.connections(&carol).await.unwrap().len(), 1);
}

/// With `contacts_on_user_channel`, a user's presence changes also go to the contacts who follow
/// them back (and only those: one who is not allowed to watch learns nothing); off, to nobody;
/// an invisible user's changes to nobody either.
pub async fn presence_reaches_followers_on_their_user_channel(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let config = PresenceConfig { contacts_on_user_channel: true, offline_grace_ms: 0, ..PresenceConfig::default() };
    let svc = Presence::new(t.engine.presence.clone(), config, recorder.clone());
    let (ann, bob, cy, dee) = (user("f-ann"), user("f-bob"), user("f-cy"), user("f-dee"));
    svc.set_contacts(&ann, &[bob.clone(), cy.clone(), dee.clone()], None).await.unwrap();
    svc.set_contacts(&bob, std::slice::from_ref(&ann), None).await.unwrap();
    svc.set_contacts(&dee, &[ann.clone(), bob.clone()], None).await.unwrap();
    // cy does not follow ann back: cy must not learn ann's presence.
    svc.heartbeat(&ann, &device("phone"), Some(60)).await.unwrap();
    let deliveries = recorder.for_followers.lock().unwrap().clone();
    assert_eq!(deliveries, vec![(vec![bob.clone(), dee.clone()], ann.clone(), true)]);
    // A contact who stops following is not told any more.
    svc.remove_contacts(&dee, std::slice::from_ref(&ann)).await.unwrap();
    svc.set_status(&ann, SetStatus { status: PresenceStatus::Busy, ..SetStatus::default() }).await.unwrap();
    assert_eq!(recorder.for_followers.lock().unwrap()[1], (vec![bob.clone()], ann.clone(), true));
    // Going invisible looks like offline to followers; while invisible, nobody is told more.
    let invisible = SetStatus { invisible: true, ..SetStatus::default() };
    svc.set_status(&ann, invisible.clone()).await.unwrap();
    assert_eq!(recorder.for_followers.lock().unwrap()[2], (vec![bob.clone()], ann.clone(), false));
    svc.set_status(&ann, SetStatus { text: Some("hidden".into()), ..invisible }).await.unwrap();
    assert_eq!(recorder.for_followers.lock().unwrap().len(), 3);

    // Off (the default): the same change reaches no follower.
    let quiet = Arc::new(Recorder::default());
    let off = Presence::new(t.engine.presence.clone(), PresenceConfig::default(), quiet.clone());
    off.heartbeat(&bob, &device("phone"), Some(60)).await.unwrap();
    assert_eq!(quiet.events().len(), 1);
    assert!(quiet.for_followers.lock().unwrap().is_empty());
}

/// Node reports: each node's latest replaces its previous one, every node sees them all, and a
/// report is gone once its TTL passes without a new one.
pub async fn node_reports_are_shared_and_expire(t: &TestEngine) {
    let store = &t.engine.presence;
    let other = t.sibling().await;
    store.report_node("node-a", 3, MINUTE).await.unwrap();
    other.engine.presence.report_node("node-b", 5, Duration::from_millis(300)).await.unwrap();
    store.report_node("node-a", 4, MINUTE).await.unwrap();
    let nodes = other.engine.presence.nodes().await.unwrap();
    let seen: Vec<_> = nodes.iter().map(|n| (n.node_id.as_str(), n.connections)).collect();
    assert_eq!(seen, [("node-a", 4), ("node-b", 5)]);
    assert!(nodes.iter().all(|n| n.reported_at.as_millis() > 0));
    eventually(WAIT, "node-b's report expires", || async { store.nodes().await.unwrap().len() == 1 }).await;
    assert_eq!(store.nodes().await.unwrap()[0].node_id, "node-a");
    let refused = t.sb.presence().report_node(&"n".repeat(129), 1).await;
    assert!(matches!(refused, Err(Error::InvalidArgument(_))));
}
