//! Conformance cases for [`switchboard_core::SessionStore`] and the sessions service.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{
    CreateSession, DeviceId, DeviceInfo, Error, NewSession, NoPresenceEvents, Presence, PresenceConfig, SessionData,
    SessionId, Sessions, SessionsConfig, Timestamp, UserId,
};

use crate::harness::{TestEngine, eventually};

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn data(v: Value) -> SessionData {
    v.as_object().cloned().expect("an object")
}

fn new_session(user_id: &UserId, idle: Duration, absolute: Duration) -> NewSession {
    NewSession {
        user_id: user_id.clone(),
        device: DeviceInfo::default(),
        ip: None,
        user_agent: None,
        data: SessionData::new(),
        idle_ttl: idle,
        absolute_ttl: absolute,
        id: None,
        replace_device: None,
    }
}

const HOUR: Duration = Duration::from_secs(3600);

/// Every field given at creation comes back from `get`, with consistent times.
pub async fn create_then_get_returns_every_field(t: &TestEngine) {
    let before = Timestamp::now();
    let req = CreateSession {
        device: DeviceInfo {
            device_id: Some(DeviceId::new("phone-1").unwrap()),
            kind: Some("mobile".into()),
            os: Some("iOS 19".into()),
            browser: None,
            location: Some("Berlin, DE".into()),
            app_version: Some("4.2.0".into()),
        },
        ip: Some("10.0.0.7".into()),
        user_agent: Some("Winkr/4.2".into()),
        data: data(json!({"role": "admin", "prefs": {"theme": "dark"}, "n": 3})),
        idle_ttl_seconds: Some(600),
        absolute_ttl_seconds: Some(7200),
        ..CreateSession::for_user(user("alice"))
    };
    let created = t.sb.sessions().create(req.clone()).await.unwrap();
    assert!(created.evicted.is_empty());
    let s = t.sb.sessions().get(&created.session.id).await.unwrap().expect("session is live");
    assert_eq!(s, created.session);
    assert_eq!(s.user_id, req.user_id);
    assert_eq!(s.device, req.device);
    assert_eq!(s.ip, req.ip);
    assert_eq!(s.user_agent, req.user_agent);
    assert_eq!(s.data, req.data);
    assert_eq!(s.idle_ttl_ms, 600_000);
    // The engine's clock may differ slightly from ours (Redis TIME); allow a little skew.
    assert!(s.created_at.as_millis() >= before.as_millis() - 1000, "created_at {:?} vs {before:?}", s.created_at);
    assert_eq!(s.last_active_at, s.created_at);
    assert_eq!(s.expires_at.as_millis(), s.created_at.as_millis() + 600_000);
    assert_eq!(s.absolute_expires_at.as_millis(), s.created_at.as_millis() + 7_200_000);
}

/// A well-formed id that was never issued is simply absent.
pub async fn unknown_session_is_none(t: &TestEngine) {
    let id = SessionId::generate(&user("nobody")).unwrap();
    let store = &t.engine.sessions;
    assert_eq!(store.get(&id).await.unwrap(), None);
    assert_eq!(store.touch(&id).await.unwrap(), None);
    assert_eq!(store.update_data(&id, &data(json!({"a": 1})), 4096).await.unwrap(), None);
    assert!(!store.delete(&id).await.unwrap());
}

/// Touching keeps a session alive past its idle TTL; without touches it expires.
pub async fn touch_slides_the_idle_expiry(t: &TestEngine) {
    let store = &t.engine.sessions;
    let u = user("slider");
    let s = store.create(new_session(&u, Duration::from_millis(800), HOUR), 0).await.unwrap().session;
    let started = tokio::time::Instant::now();
    let mut last = s.last_active_at;
    while started.elapsed() < Duration::from_millis(1600) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let touched = store.touch(&s.id).await.unwrap().expect("touched sessions stay live");
        assert!(touched.last_active_at >= last);
        assert_eq!(touched.expires_at.as_millis(), touched.last_active_at.as_millis() + 800);
        last = touched.last_active_at;
    }
    assert!(last > s.last_active_at, "touch moves last_active_at");
    eventually(Duration::from_secs(3), "untouched session expires", || async {
        store.get(&s.id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.touch(&s.id).await.unwrap(), None, "an expired session cannot be revived");
}

/// The absolute expiry caps the sliding one.
pub async fn touch_is_capped_by_the_absolute_expiry(t: &TestEngine) {
    let store = &t.engine.sessions;
    let u = user("capped");
    let s = store.create(new_session(&u, HOUR, Duration::from_millis(700)), 0).await.unwrap().session;
    assert_eq!(s.expires_at, s.absolute_expires_at);
    let touched = store.touch(&s.id).await.unwrap().expect("live");
    assert_eq!(touched.expires_at, s.absolute_expires_at);
    eventually(Duration::from_secs(3), "session ends at its absolute expiry despite touches", || async {
        store.touch(&s.id).await.unwrap().is_none()
    })
    .await;
    assert_eq!(store.get(&s.id).await.unwrap(), None);
}

/// A patch replaces only the fields it names; `null` deletes a field.
pub async fn data_is_updated_field_by_field(t: &TestEngine) {
    let req = CreateSession {
        data: data(json!({"a": 1, "b": "two", "keep": [1, 2]})),
        ..CreateSession::for_user(user("patcher"))
    };
    let s = t.sb.sessions().create(req).await.unwrap().session;
    let patched =
        t.sb.sessions().update_data(&s.id, &data(json!({"a": {"x": 2}, "b": null, "c": true}))).await.unwrap();
    let expected = data(json!({"a": {"x": 2}, "keep": [1, 2], "c": true}));
    assert_eq!(patched.expect("live").data, expected);
    assert_eq!(t.sb.sessions().get(&s.id).await.unwrap().expect("live").data, expected);
    let untouched = t.sb.sessions().get(&s.id).await.unwrap().expect("live");
    assert_eq!(untouched.last_active_at, s.last_active_at, "an update is not activity");
}

/// Many writers patching different fields at once: every write survives.
pub async fn concurrent_field_updates_lose_nothing(t: &TestEngine) {
    let s = t.sb.sessions().create(CreateSession::for_user(user("racer"))).await.unwrap().session;
    let writers = (0..40).map(|i| {
        let sessions = t.sb.sessions().clone();
        let id = s.id.clone();
        tokio::spawn(async move { sessions.update_data(&id, &data(json!({ format!("f{i}"): i }))).await })
    });
    for w in futures_util::future::join_all(writers).await {
        assert!(w.expect("writer task").expect("update").is_some());
    }
    let got = t.sb.sessions().get(&s.id).await.unwrap().expect("live").data;
    assert_eq!(got.len(), 40, "every field written concurrently is present: {got:?}");
    for i in 0..40 {
        assert_eq!(got.get(&format!("f{i}")), Some(&json!(i)));
    }
}

/// A patch that would push the data over its bound is refused whole.
pub async fn oversize_data_is_refused_and_changes_nothing(t: &TestEngine) {
    let store = &t.engine.sessions;
    let mut new = new_session(&user("big"), HOUR, HOUR);
    new.data = data(json!({"a": "x".repeat(60)}));
    let s = store.create(new, 0).await.unwrap().session;
    let patch = data(json!({"b": "y".repeat(60), "a": null}));
    // a (1 + 62 bytes) is replaced by b (1 + 62 bytes): exactly at the bound of 63.
    assert!(store.update_data(&s.id, &patch, 63).await.unwrap().is_some());
    let err = store.update_data(&s.id, &data(json!({"c": 1})), 63).await.unwrap_err();
    assert!(matches!(err, Error::PayloadTooLarge(_)), "{err:?}");
    assert_eq!(store.get(&s.id).await.unwrap().expect("live").data, data(json!({"b": "y".repeat(60)})));
    // The service refuses an oversize create before it reaches the engine.
    let huge = CreateSession { data: data(json!({"x": "z".repeat(5000)})), ..CreateSession::for_user(user("big")) };
    assert!(matches!(t.sb.sessions().create(huge).await, Err(Error::PayloadTooLarge(_))));
}

/// Delete removes the session once; a second delete reports it gone.
pub async fn delete_removes_the_session(t: &TestEngine) {
    let u = user("leaver");
    let s = t.sb.sessions().create(CreateSession::for_user(u.clone())).await.unwrap().session;
    assert!(t.sb.sessions().delete(&s.id).await.unwrap());
    assert_eq!(t.sb.sessions().get(&s.id).await.unwrap(), None);
    assert!(!t.sb.sessions().delete(&s.id).await.unwrap());
    assert!(t.sb.sessions().list(&u).await.unwrap().is_empty());
}

/// Listing orders by last activity, newest first.
pub async fn list_is_most_recently_active_first(t: &TestEngine) {
    let store = &t.engine.sessions;
    let u = user("lister");
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(store.create(new_session(&u, HOUR, HOUR), 0).await.unwrap().session.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store.touch(&ids[0]).await.unwrap().expect("live");
    let listed: Vec<SessionId> = store.list(&u).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![ids[0].clone(), ids[2].clone(), ids[1].clone()]);
}

/// Creating one more than the maximum evicts the least recently active session.
pub async fn max_per_user_evicts_the_least_recently_active(t: &TestEngine) {
    let store = &t.engine.sessions;
    let u = user("evictee");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let created = store.create(new_session(&u, HOUR, HOUR), 3).await.unwrap();
        assert!(created.evicted.is_empty());
        ids.push(created.session.id);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store.touch(&ids[0]).await.unwrap().expect("live");
    // Activity times have millisecond resolution and ties are unordered: keep them apart.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let fourth = store.create(new_session(&u, HOUR, HOUR), 3).await.unwrap();
    assert_eq!(fourth.evicted, vec![ids[1].clone()], "the least recently active goes");
    assert_eq!(store.get(&ids[1]).await.unwrap(), None);
    assert_eq!(store.list(&u).await.unwrap().len(), 3);
    // Lowering the maximum evicts several at once, oldest first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let fifth = store.create(new_session(&u, HOUR, HOUR), 2).await.unwrap();
    assert_eq!(fifth.evicted, vec![ids[2].clone(), ids[0].clone()]);
    let listed: Vec<SessionId> = store.list(&u).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![fifth.session.id, fourth.session.id]);
}

/// Concurrent creates never leave a user above the maximum, and every eviction is reported.
pub async fn concurrent_creates_never_exceed_the_maximum(t: &TestEngine) {
    let u = user("stampede");
    let creators = (0..30).map(|_| {
        let store = t.engine.sessions.clone();
        let u = u.clone();
        tokio::spawn(async move { store.create(new_session(&u, HOUR, HOUR), 5).await })
    });
    let mut created = HashSet::new();
    let mut evicted = HashSet::new();
    for c in futures_util::future::join_all(creators).await {
        let c = c.expect("task").expect("create");
        created.insert(c.session.id.to_string());
        evicted.extend(c.evicted.into_iter().map(|id| id.to_string()));
    }
    let listed: HashSet<String> =
        t.engine.sessions.list(&u).await.unwrap().into_iter().map(|s| s.id.to_string()).collect();
    assert_eq!(listed.len(), 5);
    assert_eq!(evicted.len(), 25, "each eviction reported once");
    assert_eq!(listed.union(&evicted).count(), 30);
    assert!(listed.is_subset(&created));
}

/// Logout everywhere else keeps one session and touches no other user.
pub async fn delete_user_sessions_keeps_the_exception_and_other_users(t: &TestEngine) {
    let sessions = t.sb.sessions();
    let (u, other) = (user("everywhere"), user("bystander"));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(sessions.create(CreateSession::for_user(u.clone())).await.unwrap().session.id);
    }
    let theirs = sessions.create(CreateSession::for_user(other.clone())).await.unwrap().session.id;
    let mut deleted = sessions.delete_user_sessions(&u, Some(&ids[1])).await.unwrap();
    deleted.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![ids[0].clone(), ids[2].clone()];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(deleted, expected);
    let left: Vec<SessionId> = sessions.list(&u).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(left, vec![ids[1].clone()]);
    assert!(sessions.get(&theirs).await.unwrap().is_some());
    assert_eq!(sessions.delete_user_sessions(&u, None).await.unwrap(), vec![ids[1].clone()]);
    assert!(sessions.list(&u).await.unwrap().is_empty());
}

/// The active count follows creates, deletes and expiries.
pub async fn count_active_follows_creates_deletes_and_expiry(t: &TestEngine) {
    let store = &t.engine.sessions;
    let base = store.count_active().await.unwrap();
    let u = user("counted");
    let short = store.create(new_session(&u, Duration::from_millis(500), HOUR), 0).await.unwrap().session;
    let long = store.create(new_session(&u, HOUR, HOUR), 0).await.unwrap().session;
    let gone = store.create(new_session(&u, HOUR, HOUR), 0).await.unwrap().session;
    assert_eq!(store.count_active().await.unwrap(), base + 3);
    assert!(store.delete(&gone.id).await.unwrap());
    assert_eq!(store.count_active().await.unwrap(), base + 2);
    eventually(Duration::from_secs(4), "expired session leaves the count", || async {
        store.count_active().await.unwrap() == base + 1
    })
    .await;
    assert!(store.get(&short.id).await.unwrap().is_none());
    assert!(store.get(&long.id).await.unwrap().is_some());
    let listed: Vec<SessionId> = store.list(&u).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![long.id]);
}

fn on_device(u: &UserId, device: &str, replace: bool) -> CreateSession {
    CreateSession {
        device: DeviceInfo {
            device_id: Some(DeviceId::new(device).expect("valid device id")),
            ..DeviceInfo::default()
        },
        replace_device: replace,
        ..CreateSession::for_user(u.clone())
    }
}

/// With `replace_device`, logging in on a device replaces the user's live sessions on that
/// device in the same step (reported in `replaced`), leaves other devices and users alone, and
/// the sessions of one device can be looked up; without a device id the option is refused.
pub async fn login_on_a_device_replaces_its_session(t: &TestEngine) {
    let sessions = t.sb.sessions();
    let (u, other) = (user("one-per-device"), user("neighbour"));
    let phone = DeviceId::new("phone").unwrap();
    let first = sessions.create(on_device(&u, "phone", false)).await.unwrap();
    let second = sessions.create(on_device(&u, "phone", false)).await.unwrap();
    assert!(second.replaced.is_empty(), "without the option a device may hold several sessions");
    let laptop = sessions.create(on_device(&u, "laptop", true)).await.unwrap();
    assert!(laptop.replaced.is_empty());
    let theirs = sessions.create(on_device(&other, "phone", false)).await.unwrap();
    assert_eq!(sessions.list_device(&u, &phone).await.unwrap().len(), 2);

    let third = sessions.create(on_device(&u, "phone", true)).await.unwrap();
    let mut replaced: Vec<String> = third.replaced.iter().map(|id| id.to_string()).collect();
    replaced.sort();
    let mut expected = vec![first.session.id.to_string(), second.session.id.to_string()];
    expected.sort();
    assert_eq!(replaced, expected, "both earlier sessions on the phone are replaced");
    assert!(third.evicted.is_empty());
    assert!(sessions.get(&first.session.id).await.unwrap().is_none());
    let on_phone: Vec<SessionId> = sessions.list_device(&u, &phone).await.unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(on_phone, vec![third.session.id.clone()]);
    assert_eq!(sessions.list(&u).await.unwrap().len(), 2, "the laptop's session stays");
    assert!(sessions.get(&theirs.session.id).await.unwrap().is_some(), "another user's phone is not touched");
    assert!(sessions.list_device(&u, &DeviceId::new("tablet").unwrap()).await.unwrap().is_empty());

    let no_device = CreateSession { replace_device: true, ..CreateSession::for_user(u.clone()) };
    assert!(
        matches!(sessions.create(no_device).await, Err(Error::InvalidArgument(m)) if m.starts_with("replace_device"))
    );
    assert_eq!(sessions.list(&u).await.unwrap().len(), 2, "a refused create changes nothing");
}

/// Concurrent logins on one device with `replace_device` leave exactly one session on it.
pub async fn concurrent_logins_on_a_device_leave_one_session(t: &TestEngine) {
    let u = user("racing-device");
    let logins = (0..10).map(|_| {
        let sessions = t.sb.sessions().clone();
        let req = on_device(&u, "phone", true);
        tokio::spawn(async move { sessions.create(req).await })
    });
    let mut replaced = 0;
    for login in futures_util::future::join_all(logins).await {
        replaced += login.expect("task").expect("create").replaced.len();
    }
    assert_eq!(t.sb.sessions().list(&u).await.unwrap().len(), 1);
    assert_eq!(replaced, 9, "each replacement reported once");
}

/// A caller-chosen id is used as given, found by every operation, refused while live (for any
/// user) and validated for length and alphabet, changing nothing when refused.
pub async fn caller_chosen_session_ids(t: &TestEngine) {
    let sessions = t.sb.sessions();
    let u = user("chooser");
    let chosen = "sid_7f3a9c2e41b84d0c9e5f6a7b8c9d0e1f";
    let with_id =
        |u: &UserId, id: &str| CreateSession { id: Some(id.to_owned()), ..CreateSession::for_user(u.clone()) };
    let created = sessions.create(with_id(&u, chosen)).await.unwrap().session;
    assert_eq!(created.id.as_str(), chosen);
    let id = SessionId::new(chosen).unwrap();
    assert_eq!(sessions.get(&id).await.unwrap().map(|s| s.user_id), Some(u.clone()));
    assert!(sessions.touch(&id).await.unwrap().is_some());
    let patched = sessions.update_data(&id, &data(json!({"k": 1}))).await.unwrap().expect("live");
    assert_eq!(patched.data.get("k"), Some(&json!(1)));
    assert_eq!(sessions.list(&u).await.unwrap().into_iter().map(|s| s.id).collect::<Vec<_>>(), vec![id.clone()]);

    assert!(matches!(sessions.create(with_id(&u, chosen)).await, Err(Error::Conflict(_))), "in use");
    assert!(matches!(sessions.create(with_id(&user("thief"), chosen)).await, Err(Error::Conflict(_))));
    assert!(sessions.list(&user("thief")).await.unwrap().is_empty());
    assert_eq!(sessions.get(&id).await.unwrap().map(|s| s.user_id), Some(u.clone()), "the owner keeps it");

    for bad in ["short", &"x".repeat(129), "has space in it and is long enough!!", &format!("{}/", "a".repeat(40))] {
        assert!(
            matches!(sessions.create(with_id(&u, bad)).await, Err(Error::InvalidArgument(m)) if m.starts_with("id:")),
            "{bad}"
        );
    }
    assert_eq!(sessions.list(&u).await.unwrap().len(), 1, "refusals change nothing");

    assert!(sessions.delete(&id).await.unwrap());
    assert!(sessions.get(&id).await.unwrap().is_none());
    assert!(!sessions.delete(&id).await.unwrap());
    let again = sessions.create(with_id(&u, chosen)).await.unwrap().session;
    assert_eq!(again.id, id, "a deleted session's id may be used again by its user");
    let unknown = SessionId::new("never_stored_0123456789abcdefghijklmn").unwrap();
    assert!(sessions.get(&unknown).await.unwrap().is_none());
    assert!(sessions.touch(&unknown).await.unwrap().is_none());
}

/// With `count_as_online`, creating or touching a session on a device keeps that device online
/// (a heartbeat), and deleting the device's last session ends it; sessions without a device,
/// and the option off, leave presence alone.
pub async fn active_sessions_count_their_device_online(t: &TestEngine) {
    let presence = Presence::new(t.engine.presence.clone(), PresenceConfig::default(), Arc::new(NoPresenceEvents));
    let config = SessionsConfig { count_as_online: true, ..SessionsConfig::default() };
    let sessions = Sessions::new(t.engine.sessions.clone(), config).with_presence(presence.clone());
    let u = user("session-online");
    let device_online = |d: &'static str| {
        let presence = presence.clone();
        let u = u.clone();
        async move { presence.get(&u).await.unwrap().devices.iter().any(|p| p.device_id.as_str() == d && p.online) }
    };

    let bare = sessions.create(CreateSession::for_user(u.clone())).await.unwrap().session;
    assert!(presence.get(&u).await.unwrap().devices.is_empty(), "no device id: presence untouched");
    let phone = sessions.create(on_device(&u, "phone", false)).await.unwrap().session;
    assert!(device_online("phone").await, "a new session on a device counts it online");
    let phone_again = sessions.create(on_device(&u, "phone", false)).await.unwrap().session;
    let web = sessions.create(on_device(&u, "web", false)).await.unwrap().session;
    assert!(sessions.touch(&web.id).await.unwrap().is_some());
    assert!(device_online("web").await);

    assert!(sessions.delete(&phone.id).await.unwrap());
    assert!(device_online("phone").await, "another live session on the phone keeps it online");
    assert!(sessions.delete(&phone_again.id).await.unwrap());
    assert!(!device_online("phone").await, "the phone's last session is gone");
    assert!(device_online("web").await);
    let deleted = sessions.delete_user_sessions(&u, Some(&bare.id)).await.unwrap();
    assert_eq!(deleted, vec![web.id.clone()]);
    assert!(!device_online("web").await, "logout everywhere else takes the web device offline");

    let off = Sessions::new(t.engine.sessions.clone(), SessionsConfig::default()).with_presence(presence.clone());
    let quiet = user("session-quiet");
    off.create(on_device(&quiet, "phone", false)).await.unwrap();
    assert!(presence.get(&quiet).await.unwrap().devices.is_empty(), "the option is off by default");
}
