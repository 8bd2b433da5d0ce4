//! Conformance cases for [`switchboard_core::conversation::ConversationStore`] and the
//! conversations service (the membership the gateway checks).

use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{ConversationId, Error, UserId};

use crate::harness::TestEngine;

fn conv(id: &str) -> ConversationId {
    ConversationId::new(id).expect("valid conversation id")
}

fn users(names: &[&str]) -> Vec<UserId> {
    names.iter().map(|n| UserId::new(*n).expect("valid user id")).collect()
}

fn group(members: &[&str]) -> ConversationSpec {
    ConversationSpec {
        kind: ConversationKind::Group,
        name: Some("Team".into()),
        avatar_url: None,
        members: users(members),
    }
}

/// Put stores metadata and a deduplicated, sorted member set; replacing keeps `created_at`.
pub async fn put_get_replace_and_delete(t: &TestEngine) {
    let c = t.sb.conversations();
    let id = conv("c1");
    let first = c.put(&id, group(&["carol", "alice", "bob", "alice"])).await.unwrap();
    assert_eq!(first.members, users(&["alice", "bob", "carol"]));
    assert_eq!(first.name.as_deref(), Some("Team"));
    assert_eq!(c.get(&id).await.unwrap(), Some(first.clone()));
    let spec = ConversationSpec { name: None, avatar_url: Some("https://x/a.png".into()), ..group(&["dave"]) };
    let second = c.put(&id, spec).await.unwrap();
    assert_eq!(second.created_at, first.created_at);
    assert_eq!(second.members, users(&["dave"]));
    assert_eq!(second.name, None);
    assert_eq!(c.get(&id).await.unwrap(), Some(second));
    assert!(c.delete(&id).await.unwrap());
    assert_eq!(c.get(&id).await.unwrap(), None);
    assert!(!c.delete(&id).await.unwrap());
    assert!(!c.is_member(&id, &users(&["dave"])[0]).await.unwrap());
}

/// Members are added and removed in one step; removal wins; non-members are reported as such.
pub async fn members_are_added_and_removed(t: &TestEngine) {
    let c = t.sb.conversations();
    let id = conv("c2");
    c.put(&id, group(&["alice", "bob"])).await.unwrap();
    let after =
        c.update_members(&id, &users(&["carol", "dave", "erin"]), &users(&["bob", "erin"])).await.unwrap().unwrap();
    assert_eq!(after.members, users(&["alice", "carol", "dave"]));
    let [alice, bob] = [&users(&["alice"])[0], &users(&["bob"])[0]];
    assert!(c.is_member(&id, alice).await.unwrap());
    assert!(!c.is_member(&id, bob).await.unwrap());
    assert_eq!(c.update_members(&conv("nope"), &users(&["x"]), &[]).await.unwrap(), None);
    assert!(!c.is_member(&conv("nope"), alice).await.unwrap());
}

/// Limits hold: a direct conversation has two members at most, and a refused change changes
/// nothing.
pub async fn member_limits_hold_and_refusals_change_nothing(t: &TestEngine) {
    let c = t.sb.conversations();
    let id = conv("dm");
    let spec = ConversationSpec { kind: ConversationKind::Direct, ..group(&["alice", "bob"]) };
    c.put(&id, spec.clone()).await.unwrap();
    let err = c.update_members(&id, &users(&["carol"]), &[]).await.unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err:?}");
    assert_eq!(c.get(&id).await.unwrap().unwrap().members, users(&["alice", "bob"]));
    let three = ConversationSpec { members: users(&["a", "b", "c"]), ..spec };
    assert!(matches!(c.put(&id, three).await, Err(Error::InvalidArgument(_))));
    // Swapping one member for another stays within the limit.
    let swapped = c.update_members(&id, &users(&["carol"]), &users(&["bob"])).await.unwrap().unwrap();
    assert_eq!(swapped.members, users(&["alice", "carol"]));
    // The store enforces the group limit it is given.
    let store = &t.engine.conversations;
    store.put(&conv("small"), &group(&["a", "b"]), 3).await.unwrap();
    assert!(matches!(store.update_members(&conv("small"), &users(&["c", "d"]), &[], 3).await, Err(Error::Conflict(_))));
    assert!(store.update_members(&conv("small"), &users(&["c"]), &[], 3).await.unwrap().is_some());
}

/// Concurrent member additions never lose each other.
pub async fn concurrent_additions_lose_nothing(t: &TestEngine) {
    let c = t.sb.conversations();
    let id = conv("busy");
    c.put(&id, group(&[])).await.unwrap();
    let adders = (0..40).map(|i| {
        let c = c.clone();
        let id = id.clone();
        tokio::spawn(async move { c.update_members(&id, &[UserId::new(format!("u{i}")).unwrap()], &[]).await })
    });
    for a in futures_util::future::join_all(adders).await {
        assert!(a.expect("task").expect("update").is_some());
    }
    assert_eq!(c.get(&id).await.unwrap().unwrap().members.len(), 40);
}
