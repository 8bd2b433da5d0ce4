//! Conformance cases for [`switchboard_core::TypingStore`] and the typing service: start, stop,
//! list, throttled start events, stop events on expiry (once, with concurrent sweepers), and the
//! membership hook.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::{
    AllowAllMembers, ConversationId, Error, MembershipCheck, Result, Typing, TypingConfig, TypingEvent, TypingEvents,
    UserId,
};

use crate::harness::{TestEngine, eventually};

fn user(name: &str) -> UserId {
    UserId::new(name).expect("valid user id")
}

fn chat(name: &str) -> ConversationId {
    ConversationId::new(name).expect("valid conversation id")
}

/// Records every `typing` event as (user, typing).
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<TypingEvent>>,
}

impl Recorder {
    fn seen(&self) -> Vec<(String, bool)> {
        let events = self.events.lock().map(|e| e.clone()).unwrap_or_default();
        events.into_iter().map(|e| (e.user_id.to_string(), e.typing)).collect()
    }
}

#[async_trait]
impl TypingEvents for Recorder {
    async fn typing_changed(&self, event: &TypingEvent) {
        if let Ok(mut events) = self.events.lock() {
            events.push(event.clone());
        }
    }
}

fn service(t: &TestEngine, ttl_ms: u64, recorder: &Arc<Recorder>) -> Typing {
    service_with(t, ttl_ms, recorder, Arc::new(AllowAllMembers))
}

fn service_with(t: &TestEngine, ttl_ms: u64, recorder: &Arc<Recorder>, members: Arc<dyn MembershipCheck>) -> Typing {
    let config = TypingConfig { ttl_ms, ..TypingConfig::default() };
    Typing::new(t.engine.typing.clone(), config, recorder.clone(), members)
}

fn pairs(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(u, b)| (u.to_string(), *b)).collect()
}

/// Starts and stops are listed and announced; a second stop reports nothing.
pub async fn start_stop_and_list(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let svc = service(t, 10_000, &recorder);
    let c = chat("c1");
    assert!(svc.start(&c, &user("bob")).await.unwrap().first);
    assert!(svc.start(&c, &user("alice")).await.unwrap().first);
    assert_eq!(svc.typing_users(&c).await.unwrap(), [user("alice"), user("bob")]);
    assert!(svc.typing_users(&chat("c2")).await.unwrap().is_empty());

    assert!(svc.stop(&c, &user("alice")).await.unwrap());
    assert!(!svc.stop(&c, &user("alice")).await.unwrap());
    assert_eq!(svc.typing_users(&c).await.unwrap(), [user("bob")]);
    svc.set(&c, &user("bob"), false).await.unwrap();
    assert!(svc.typing_users(&c).await.unwrap().is_empty());
    assert_eq!(recorder.seen(), pairs(&[("bob", true), ("alice", true), ("alice", false), ("bob", false)]));
}

/// Repeated starts within the throttle window emit one event; a start after a stop is a new
/// transition and is announced.
pub async fn repeated_starts_are_throttled(t: &TestEngine) {
    let recorder = Arc::new(Recorder::default());
    let svc = service(t, 10_000, &recorder);
    let c = chat("c1");
    assert!(svc.start(&c, &user("alice")).await.unwrap().first);
    assert!(!svc.start(&c, &user("alice")).await.unwrap().first);
    assert!(!svc.start(&c, &user("alice")).await.unwrap().first);
    assert_eq!(recorder.seen(), pairs(&[("alice", true)]));

    let store = &t.engine.typing;
    let short = Duration::from_millis(200);
    assert!(store.start(&chat("c2"), &user("bob"), Duration::from_secs(10), short).await.unwrap().first);
    assert!(!store.start(&chat("c2"), &user("bob"), Duration::from_secs(10), short).await.unwrap().first);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        store.start(&chat("c2"), &user("bob"), Duration::from_secs(10), short).await.unwrap().first,
        "after the throttle window a start is announced again"
    );

    svc.stop(&c, &user("alice")).await.unwrap();
    assert!(svc.start(&c, &user("alice")).await.unwrap().first);
    assert_eq!(recorder.seen(), pairs(&[("alice", true), ("alice", false), ("alice", true)]));
}

/// When the TTL runs out a stop is announced exactly once, even with two nodes sweeping; a
/// later explicit stop reports nothing.
pub async fn expiry_announces_one_stop(t: &TestEngine) {
    let other = t.sibling().await;
    let recorder = Arc::new(Recorder::default());
    let node_a = service(t, 300, &recorder);
    let node_b = service(&other, 300, &recorder);
    let c = chat("c1");
    node_a.start(&c, &user("alice")).await.unwrap();
    node_a.start(&chat("c2"), &user("bob")).await.unwrap();
    eventually(Duration::from_secs(5), "both stop events", || async {
        let (a, b) = tokio::join!(node_a.sweep(), node_b.sweep());
        a.unwrap();
        b.unwrap();
        recorder.seen().iter().filter(|(_, typing)| !typing).count() >= 2
    })
    .await;
    for _ in 0..10 {
        let (a, b) = tokio::join!(node_a.sweep(), node_b.sweep());
        a.unwrap();
        b.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut seen = recorder.seen();
    seen.sort();
    assert_eq!(seen, pairs(&[("alice", false), ("alice", true), ("bob", false), ("bob", true)]));
    assert!(node_a.typing_users(&c).await.unwrap().is_empty());
    assert!(!node_b.stop(&c, &user("alice")).await.unwrap(), "the expiry already reported the stop");
}

/// Only members may type, through the membership hook.
pub async fn non_members_may_not_type(t: &TestEngine) {
    struct OnlyAlice;
    #[async_trait]
    impl MembershipCheck for OnlyAlice {
        async fn is_member(&self, _conversation: &ConversationId, user: &UserId) -> Result<bool> {
            Ok(user.as_str() == "alice")
        }
    }
    let recorder = Arc::new(Recorder::default());
    let svc = service_with(t, 10_000, &recorder, Arc::new(OnlyAlice));
    assert!(svc.start(&chat("c1"), &user("alice")).await.unwrap().first);
    assert!(matches!(svc.start(&chat("c1"), &user("mallory")).await, Err(Error::PermissionDenied(_))));
    assert_eq!(svc.typing_users(&chat("c1")).await.unwrap(), [user("alice")]);
}
