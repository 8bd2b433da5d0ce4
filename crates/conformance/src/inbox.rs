//! Conformance cases for [`switchboard_core::InboxStore`] through the messages service: list
//! order, filters and paging, exact unread counters under concurrent posts, read-up-to with its
//! sync event, totals with muted conversations apart, idempotent fan-out, import from the app's
//! database with the loaded flag, unread repair and the conversation's name, type and avatar.

use std::time::Duration;

use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::message::{InboxPost, MAX_UNREAD};
use switchboard_core::{
    ChannelName, DeviceId, Error, InboxFilter, InboxSettings, NewMessage, Timestamp, UnreadTotals, UserConversation,
};

use crate::harness::TestEngine;
use crate::messages::{conv, event_types, group, mid, text, user};

fn listed(page: &switchboard_core::InboxPage) -> Vec<String> {
    page.conversations.iter().map(|c| c.conversation_id.to_string()).collect()
}

/// Pinned first, then newest last message; filters; cursor paging; flags; remove.
pub async fn order_filters_and_paging(t: &TestEngine) {
    let m = t.sb.messages();
    let bob = user("bob");
    let base = Timestamp::now();
    for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
        let c = group(t, name, &["alice", "bob"]).await;
        let msg = NewMessage {
            created_at: Some(base.plus(Duration::from_millis(i as u64 * 10))),
            ..text(&format!("{name}1"), "alice", &format!("in {name}"))
        };
        m.post(&c, msg).await.unwrap();
    }
    let all = m.list(&bob, InboxFilter::All, None, 10).await.unwrap();
    assert_eq!(listed(&all), ["d", "c", "b", "a"]);
    assert_eq!(all.conversations[0].last_message_preview, "in d");
    assert_eq!(all.conversations[0].last_message_id, Some(mid("d1")));
    assert_eq!(all.conversations[0].unread, 1);
    assert_eq!(all.next_cursor, None);
    let pin = InboxSettings { pinned: Some(true), ..InboxSettings::default() };
    assert!(m.update_entry(&bob, &conv("b"), pin).await.unwrap().unwrap().pinned);
    let mute = InboxSettings { muted: Some(true), ..InboxSettings::default() };
    m.update_entry(&bob, &conv("c"), mute).await.unwrap();
    let archive = InboxSettings { archived: Some(true), ..InboxSettings::default() };
    m.update_entry(&bob, &conv("a"), archive).await.unwrap();
    assert_eq!(m.update_entry(&bob, &conv("zz"), pin).await.unwrap(), None);
    assert_eq!(listed(&m.list(&bob, InboxFilter::All, None, 10).await.unwrap()), ["b", "d", "c"]);
    assert_eq!(listed(&m.list(&bob, InboxFilter::Pinned, None, 10).await.unwrap()), ["b"]);
    assert_eq!(listed(&m.list(&bob, InboxFilter::Muted, None, 10).await.unwrap()), ["c"]);
    assert_eq!(listed(&m.list(&bob, InboxFilter::Archived, None, 10).await.unwrap()), ["a"]);
    m.read(&bob, &conv("d"), &mid("d1"), None).await.unwrap();
    assert_eq!(listed(&m.list(&bob, InboxFilter::Unread, None, 10).await.unwrap()), ["b", "c"]);
    // Paging walks the same order.
    let first = m.list(&bob, InboxFilter::All, None, 2).await.unwrap();
    assert_eq!(listed(&first), ["b", "d"]);
    let cursor = first.next_cursor.clone().unwrap();
    let second = m.list(&bob, InboxFilter::All, Some(&cursor), 2).await.unwrap();
    assert_eq!(listed(&second), ["c"]);
    assert_eq!(second.next_cursor, None);
    assert!(m.list(&bob, InboxFilter::All, Some("not-a-cursor"), 2).await.is_err());
    // A new message moves a conversation up (behind the pinned one).
    m.post(
        &conv("c"),
        NewMessage { created_at: Some(base.plus(Duration::from_secs(1))), ..text("c2", "alice", "new") },
    )
    .await
    .unwrap();
    assert_eq!(listed(&m.list(&bob, InboxFilter::All, None, 10).await.unwrap()), ["b", "c", "d"]);
    // Removing takes it off the list until the next message.
    assert!(m.remove_entry(&bob, &conv("d")).await.unwrap());
    assert!(!m.remove_entry(&bob, &conv("d")).await.unwrap());
    assert_eq!(m.entry(&bob, &conv("d")).await.unwrap(), None);
    assert_eq!(listed(&m.list(&bob, InboxFilter::All, None, 10).await.unwrap()), ["b", "c"]);
    // The sender's list shows the conversation without unread.
    let alice = m.list(&user("alice"), InboxFilter::All, None, 10).await.unwrap();
    assert!(alice.conversations.iter().all(|c| c.unread == 0));
    assert_eq!(alice.conversations.len(), 4);
}

/// 50 concurrent posts from different senders to one conversation of 5 members leave every
/// member's unread count exact, and each counted post told that member.
pub async fn unread_is_exact_under_concurrent_posts(t: &TestEngine) {
    let members = ["u0", "u1", "u2", "u3", "u4"];
    let c = group(t, "busy", &members).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let sb = t.sb.clone();
        let c = c.clone();
        let sender = members[i % members.len()];
        tasks.push(tokio::spawn(async move { sb.messages().post(&c, text(&format!("m{i}"), sender, "hi")).await }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for name in members {
        let u = user(name);
        // Each member sent 10 of the 50.
        let entry = t.sb.messages().entry(&u, &c).await.unwrap().unwrap();
        assert_eq!(entry.unread, 40, "{name}");
        assert_eq!(t.sb.messages().totals(&u).await.unwrap(), UnreadTotals { unread: 40, muted_unread: 0 });
        let events = event_types(t, &ChannelName::user(&u)).await;
        assert_eq!(events.iter().filter(|e| *e == "unread.changed").count(), 40, "{name}");
    }
    assert_eq!(t.sb.messages().recent(&c, 100, None).await.unwrap().messages.len(), 50);
}

/// Reading up to a message clears the unread count, syncs the user's other devices (never the
/// source device) and sends a read receipt; a second read changes nothing.
pub async fn read_up_to_resets_and_syncs(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "rd", &["alice", "bob"]).await;
    m.post(&c, text("m1", "alice", "one")).await.unwrap();
    m.post(&c, text("m2", "alice", "two")).await.unwrap();
    let bob = user("bob");
    let phone = DeviceId::new("phone").unwrap();
    let read = m.read(&bob, &c, &mid("m2"), Some(&phone)).await.unwrap();
    assert_eq!(read.cleared, 2);
    assert_eq!(read.totals, UnreadTotals::default());
    assert_eq!(m.entry(&bob, &c).await.unwrap().unwrap().unread, 0);
    let stream = t.sb.streams().history(&ChannelName::user(&bob), 100).await.unwrap();
    let last = stream.publications.last().unwrap();
    assert_eq!(last.data["type"], "unread.changed");
    assert_eq!(last.data["data"]["unread"], 0);
    assert!(!last.is_for(&phone));
    assert!(last.is_for(&DeviceId::new("laptop").unwrap()));
    let again = m.read(&bob, &c, &mid("m2"), Some(&phone)).await.unwrap();
    assert_eq!(again.cleared, 0);
    let after = t.sb.streams().history(&ChannelName::user(&bob), 100).await.unwrap();
    assert_eq!(after.publications.len(), stream.publications.len());
    let m2 = m.recent(&c, 1, None).await.unwrap().messages.remove(0);
    assert_eq!(m2.read_count, 1);
    assert!(m.read(&user("mallory"), &c, &mid("m2"), None).await.is_err());
    // Counting starts again after the read.
    m.post(&c, text("m3", "alice", "three")).await.unwrap();
    assert_eq!(m.entry(&bob, &c).await.unwrap().unwrap().unread, 1);
}

/// Totals keep muted conversations apart; muting moves a conversation's unread across; removing
/// an entry takes its unread out.
pub async fn totals_keep_muted_apart(t: &TestEngine) {
    let m = t.sb.messages();
    let bob = user("bob");
    let loud = group(t, "loud", &["alice", "bob"]).await;
    let quiet = group(t, "quiet", &["alice", "bob"]).await;
    m.post(&quiet, text("q1", "alice", "x")).await.unwrap();
    let mute = InboxSettings { muted: Some(true), ..InboxSettings::default() };
    m.update_entry(&bob, &quiet, mute).await.unwrap();
    assert_eq!(m.totals(&bob).await.unwrap(), UnreadTotals { unread: 0, muted_unread: 1 });
    for i in 0..3 {
        m.post(&loud, text(&format!("l{i}"), "alice", "x")).await.unwrap();
        m.post(&quiet, text(&format!("q{}", i + 2), "alice", "x")).await.unwrap();
    }
    assert_eq!(m.totals(&bob).await.unwrap(), UnreadTotals { unread: 3, muted_unread: 4 });
    let unmute = InboxSettings { muted: Some(false), ..InboxSettings::default() };
    m.update_entry(&bob, &quiet, unmute).await.unwrap();
    assert_eq!(m.totals(&bob).await.unwrap(), UnreadTotals { unread: 7, muted_unread: 0 });
    m.remove_entry(&bob, &loud).await.unwrap();
    assert_eq!(m.totals(&bob).await.unwrap(), UnreadTotals { unread: 4, muted_unread: 0 });
    assert_eq!(m.totals(&user("nobody")).await.unwrap(), UnreadTotals::default());
}

/// The fan-out counts a message id once per member, so a retried fan-out repairs rather than
/// double counts; an older message does not replace a newer preview.
pub async fn fan_out_is_idempotent_by_message_id(t: &TestEngine) {
    let inbox = &t.engine.inbox;
    let members = [user("alice"), user("bob")];
    let now = Timestamp::now();
    let post = |id: &str, at: Timestamp| InboxPost {
        conversation_id: conv("idem"),
        message_id: mid(id),
        sender: user("alice"),
        preview: format!("preview {id}"),
        at,
    };
    let first = inbox.record_post(&members, &post("m2", now)).await.unwrap();
    assert_eq!((first[1].unread, first[1].counted), (1, true));
    assert!(!first[0].counted);
    let again = inbox.record_post(&members, &post("m2", now)).await.unwrap();
    assert_eq!((again[1].unread, again[1].counted), (1, false));
    let older = inbox.record_post(&members, &post("m1", Timestamp::from_millis(now.as_millis() - 1000))).await.unwrap();
    assert_eq!(older[1].unread, 2);
    let entry = inbox.get(&user("bob"), &conv("idem")).await.unwrap().unwrap();
    assert_eq!(entry.last_message_preview, "preview m2");
    assert_eq!(entry.last_message_at, now);
    assert_eq!(inbox.totals(&user("bob")).await.unwrap().unread, 2);
}

/// A post may give the list preview explicitly (an end-to-end encrypted app must not have its
/// ciphertext shown); without one the preview comes from the content; an over-long one is
/// refused and changes nothing.
pub async fn an_explicit_preview_replaces_the_content_in_lists(t: &TestEngine) {
    let m = t.sb.messages();
    let c = group(t, "sealed", &["alice", "bob"]).await;
    let sealed = NewMessage { preview: Some("New message".into()), ..text("s1", "alice", "q7Zk…ciphertext") };
    m.post(&c, sealed).await.unwrap();
    let entry = m.entry(&user("bob"), &c).await.unwrap().expect("listed");
    assert_eq!(entry.last_message_preview, "New message");
    assert_eq!(m.recent(&c, 10, None).await.unwrap().messages[0].content, serde_json::json!("q7Zk…ciphertext"));

    m.post(&c, text("s2", "bob", "plain")).await.unwrap();
    assert_eq!(m.entry(&user("alice"), &c).await.unwrap().expect("listed").last_message_preview, "plain");

    let long = NewMessage { preview: Some("é".repeat(201)), ..text("s3", "alice", "x") };
    assert!(
        matches!(m.post(&c, long).await, Err(switchboard_core::Error::InvalidArgument(msg)) if msg.starts_with("preview"))
    );
    assert_eq!(m.recent(&c, 10, None).await.unwrap().messages.len(), 2, "nothing cached");
    let exact = NewMessage { preview: Some("é".repeat(200)), ..text("s4", "alice", "x") };
    m.post(&c, exact).await.unwrap();
    assert_eq!(m.entry(&user("bob"), &c).await.unwrap().expect("listed").last_message_preview.chars().count(), 200);
}

fn imported(id: &str, at: Timestamp, unread: u64) -> UserConversation {
    UserConversation { unread, last_message_preview: format!("last of {id}"), ..UserConversation::new(conv(id), at) }
}

/// An import fills a never-loaded list: `loaded` tells "never loaded" from "no conversations";
/// entries already there (a post raced the database read) are kept; the totals follow the
/// imported counts, muted apart; bad input is refused and changes nothing.
pub async fn import_fills_the_list_and_marks_it_loaded(t: &TestEngine) {
    let m = t.sb.messages();
    let (bob, carol) = (user("bob"), user("carol"));
    let page = m.list(&bob, InboxFilter::All, None, 10).await.unwrap();
    assert!(!page.loaded && page.conversations.is_empty(), "never loaded");
    // An empty import marks the list loaded: now an empty page means "no conversations".
    let empty = m.import(&carol, &[]).await.unwrap();
    assert_eq!((empty.added, empty.totals), (0, UnreadTotals::default()));
    let page = m.list(&carol, InboxFilter::All, None, 10).await.unwrap();
    assert!(page.loaded && page.conversations.is_empty());

    // A post arrives before the import: its entry is live state and stays.
    let live = group(t, "live", &["alice", "bob"]).await;
    m.post(&live, text("l1", "alice", "fresh")).await.unwrap();
    assert!(!m.list(&bob, InboxFilter::All, None, 10).await.unwrap().loaded, "a post does not load a list");
    let base = Timestamp::now();
    let old = |secs: u64| Timestamp::from_millis(base.as_millis() - secs as i64 * 1000);
    let quiet = UserConversation {
        muted: true,
        pinned: true,
        name: Some("Book club".into()),
        kind: Some(ConversationKind::Group),
        avatar_url: Some("https://example.com/b.png".into()),
        ..imported("club", old(7200), 4)
    };
    let entries = [imported("live", old(60), 9), imported("dm", old(3600), 2), quiet];
    let outcome = m.import(&bob, &entries).await.unwrap();
    assert_eq!(outcome.added, 2);
    assert_eq!(outcome.totals, UnreadTotals { unread: 1 + 2, muted_unread: 4 });
    assert_eq!(m.totals(&bob).await.unwrap(), outcome.totals);
    let page = m.list(&bob, InboxFilter::All, None, 10).await.unwrap();
    assert!(page.loaded);
    assert_eq!(listed(&page), ["club", "live", "dm"]);
    let live_entry = &page.conversations[1];
    assert_eq!((live_entry.unread, live_entry.last_message_preview.as_str()), (1, "fresh"), "the live entry is kept");
    // Imported metadata shows for a conversation the app keeps to itself; a registered one shows
    // its own.
    let club = &page.conversations[0];
    assert_eq!(club.name.as_deref(), Some("Book club"));
    assert_eq!(club.avatar_url.as_deref(), Some("https://example.com/b.png"));
    assert_eq!((club.unread, club.pinned, club.muted), (4, true, true));
    assert_eq!(live_entry.kind, Some(ConversationKind::Group), "from the registered conversation");
    // A message after the import counts on top of the imported count, exactly once.
    let dm = group(t, "dm", &["alice", "bob"]).await;
    m.post(&dm, text("d9", "alice", "hi")).await.unwrap();
    m.post(&dm, text("d9", "alice", "hi")).await.unwrap();
    assert_eq!(m.entry(&bob, &dm).await.unwrap().unwrap().unread, 3);
    assert_eq!(m.totals(&bob).await.unwrap(), UnreadTotals { unread: 4, muted_unread: 4 });
    // Importing again adds only what is missing.
    let again = m.import(&bob, &[imported("dm", old(10), 50), imported("new", old(5), 1)]).await.unwrap();
    assert_eq!(again.added, 1);
    assert_eq!(m.entry(&bob, &dm).await.unwrap().unwrap().unread, 3);

    // Refusals: the same conversation twice, an over-long preview, an absurd count.
    let before = m.list(&user("dave"), InboxFilter::All, None, 10).await.unwrap();
    let twice = [imported("x", base, 1), imported("x", base, 2)];
    assert!(matches!(m.import(&user("dave"), &twice).await, Err(Error::InvalidArgument(_))));
    let long = UserConversation { last_message_preview: "é".repeat(201), ..imported("x", base, 1) };
    assert!(matches!(m.import(&user("dave"), &[long]).await, Err(Error::InvalidArgument(_))));
    let huge = imported("x", base, MAX_UNREAD + 1);
    assert!(matches!(m.import(&user("dave"), &[huge]).await, Err(Error::InvalidArgument(_))));
    assert_eq!(m.list(&user("dave"), InboxFilter::All, None, 10).await.unwrap(), before, "nothing written");
}

/// Setting an unread count repairs the entry and moves the totals by the difference (muted
/// apart), tells the user's devices, and 0 behaves as a read: counting starts again.
pub async fn unread_can_be_set_explicitly(t: &TestEngine) {
    let m = t.sb.messages();
    let bob = user("bob");
    let c = group(t, "fix", &["alice", "bob"]).await;
    let quiet = group(t, "fixq", &["alice", "bob"]).await;
    m.post(&c, text("f1", "alice", "x")).await.unwrap();
    m.post(&quiet, text("q1", "alice", "x")).await.unwrap();
    m.update_entry(&bob, &quiet, InboxSettings { muted: Some(true), ..InboxSettings::default() }).await.unwrap();
    let set = m.set_unread(&bob, &c, 7).await.unwrap().expect("entry");
    assert_eq!(set.entry.unread, 7);
    assert_eq!(set.totals, UnreadTotals { unread: 7, muted_unread: 1 });
    let last = t.sb.streams().history(&ChannelName::user(&bob), 100).await.unwrap().publications.pop().unwrap();
    assert_eq!((last.data["type"].as_str(), last.data["data"]["unread"].as_u64()), (Some("unread.changed"), Some(7)));
    let set = m.set_unread(&bob, &quiet, 3).await.unwrap().unwrap();
    assert_eq!(set.totals, UnreadTotals { unread: 7, muted_unread: 3 });
    // 0 behaves as a read: the next message counts from 0.
    let zero = m.set_unread(&bob, &c, 0).await.unwrap().unwrap();
    assert_eq!(zero.totals, UnreadTotals { unread: 0, muted_unread: 3 });
    m.post(&c, text("f2", "alice", "y")).await.unwrap();
    assert_eq!(m.entry(&bob, &c).await.unwrap().unwrap().unread, 1);
    assert_eq!(m.set_unread(&bob, &conv("none"), 1).await.unwrap(), None);
    assert!(matches!(m.set_unread(&bob, &c, MAX_UNREAD + 1).await, Err(Error::InvalidArgument(_))));
    assert_eq!(m.entry(&bob, &c).await.unwrap().unwrap().unread, 1, "nothing written");
}

/// List entries carry the registered conversation's name, type and avatar, current at every
/// read (a rename shows at once).
pub async fn entries_carry_the_conversation_name_type_and_avatar(t: &TestEngine) {
    let m = t.sb.messages();
    let spec = ConversationSpec {
        kind: ConversationKind::Group,
        name: Some("Hikers".into()),
        avatar_url: Some("https://example.com/h.png".into()),
        members: vec![user("alice"), user("bob")],
    };
    let c = conv("hike");
    t.sb.conversations().put(&c, spec.clone()).await.unwrap();
    m.post(&c, text("h1", "alice", "x")).await.unwrap();
    let entry = m.entry(&user("bob"), &c).await.unwrap().unwrap();
    assert_eq!(entry.name.as_deref(), Some("Hikers"));
    assert_eq!(entry.kind, Some(ConversationKind::Group));
    assert_eq!(entry.avatar_url.as_deref(), Some("https://example.com/h.png"));
    t.sb.conversations().put(&c, ConversationSpec { name: Some("Hikers 2026".into()), ..spec }).await.unwrap();
    let page = m.list(&user("bob"), InboxFilter::All, None, 10).await.unwrap();
    assert_eq!(page.conversations[0].name.as_deref(), Some("Hikers 2026"));
}
