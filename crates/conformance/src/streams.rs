//! Conformance cases for [`switchboard_core::StreamStore`], [`switchboard_core::CursorStore`],
//! the streams service, and live delivery through [`switchboard_core::Broker`] and the hub.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_core::{
    ChannelName, DeviceId, DeviceRegistration, Error, HubEvent, HubSubscription, NewPublication, PendingFrom,
    Retention, StreamPosition, UserId,
};

use crate::harness::{TestEngine, eventually};

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).expect("valid channel")
}

fn device(name: &str) -> DeviceId {
    DeviceId::new(name).expect("valid device id")
}

fn event(n: u64) -> NewPublication {
    NewPublication::new(json!({"type": "test.event", "data": {"n": n}}))
}

fn n_of(data: &Value) -> u64 {
    data["data"]["n"].as_u64().expect("a test event")
}

fn offsets(read: &switchboard_core::StreamRead) -> Vec<u64> {
    read.publications.iter().map(|p| p.offset).collect()
}

/// The next publication a hub subscription receives, within a few seconds.
async fn next_publication(sub: &mut HubSubscription) -> (String, u64, u64) {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
            Ok(Some(HubEvent::Publication(m))) => {
                return (m.epoch.clone(), m.publication.offset, n_of(&m.publication.data));
            }
            Ok(Some(HubEvent::Gap)) => continue,
            other => panic!("expected a publication, got {other:?}"),
        }
    }
}

const LONG: Duration = Duration::from_secs(3600);

/// Offsets start at 1 and grow by exactly 1; the epoch stays; times come from the engine clock.
pub async fn offsets_grow_by_one_per_publication(t: &TestEngine) {
    let ch = channel("chat:offsets");
    let start = t.sb.streams().position(&ch).await.unwrap();
    assert_eq!(start.offset, 0, "a channel never published to is at offset 0");
    for n in 1..=5 {
        let pos = t.sb.streams().publish(&ch, event(n)).await.unwrap();
        assert_eq!(pos, StreamPosition { epoch: start.epoch.clone(), offset: n });
    }
    let history = t.sb.streams().history(&ch, 10).await.unwrap();
    assert_eq!(offsets(&history), vec![1, 2, 3, 4, 5]);
    assert_eq!(history.publications.iter().map(|p| n_of(&p.data)).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    assert!(history.publications.windows(2).all(|w| w[0].time <= w[1].time));
    assert_eq!(history.position, StreamPosition { epoch: start.epoch, offset: 5 });
}

/// `read_since` returns exactly what came after the position, oldest first, paged by `limit`.
pub async fn read_since_returns_exactly_the_missed_ones(t: &TestEngine) {
    let ch = channel("user:reader");
    let mut last = t.sb.streams().position(&ch).await.unwrap();
    for n in 1..=20 {
        last = t.sb.streams().publish(&ch, event(n)).await.unwrap();
    }
    let since = StreamPosition { epoch: last.epoch.clone(), offset: 7 };
    let read = t.sb.streams().read_since(&ch, &since, 1000).await.unwrap();
    assert!(read.recovered);
    assert_eq!(offsets(&read), (8..=20).collect::<Vec<_>>());
    assert_eq!(read.position, last);

    let page = t.sb.streams().read_since(&ch, &since, 5).await.unwrap();
    assert!(page.recovered);
    assert_eq!(offsets(&page), vec![8, 9, 10, 11, 12]);

    let at_top = t.sb.streams().read_since(&ch, &last, 10).await.unwrap();
    assert!(at_top.recovered && at_top.publications.is_empty());

    let ahead = StreamPosition { epoch: last.epoch.clone(), offset: 21 };
    let read = t.sb.streams().read_since(&ch, &ahead, 10).await.unwrap();
    assert!(!read.recovered && read.publications.is_empty(), "an offset beyond the top is not recovered");
}

/// Publishing 150 on a `chat:` channel keeps the newest 100; older positions are not recovered.
pub async fn retention_by_count_keeps_the_newest(t: &TestEngine) {
    let ch = channel("chat:count");
    let mut last = t.sb.streams().position(&ch).await.unwrap();
    for n in 1..=150 {
        last = t.sb.streams().publish(&ch, event(n)).await.unwrap();
    }
    let history = t.sb.streams().history(&ch, 1000).await.unwrap();
    assert_eq!(offsets(&history), (51..=150).collect::<Vec<_>>());

    let gone = StreamPosition { epoch: last.epoch.clone(), offset: 10 };
    let read = t.sb.streams().read_since(&ch, &gone, 1000).await.unwrap();
    assert!(!read.recovered && read.publications.is_empty());
    assert_eq!(read.position, last);
    let just_kept = StreamPosition { epoch: last.epoch.clone(), offset: 50 };
    let read = t.sb.streams().read_since(&ch, &just_kept, 1000).await.unwrap();
    assert!(read.recovered);
    assert_eq!(offsets(&read), (51..=150).collect::<Vec<_>>());
    let one_short = StreamPosition { epoch: last.epoch, offset: 49 };
    assert!(!t.sb.streams().read_since(&ch, &one_short, 1000).await.unwrap().recovered);

    // No history at all: offsets still count.
    let presence = channel("presence:count");
    let none = Retention::for_channel(&presence);
    t.sb.streams().publish_with(&presence, event(1), none).await.unwrap();
    let pos = t.sb.streams().publish_with(&presence, event(2), none).await.unwrap();
    assert_eq!(pos.offset, 2);
    assert!(t.sb.streams().history(&presence, 10).await.unwrap().publications.is_empty());
}

/// Publications older than `max_age` are never returned; a position before them is not
/// recovered, one after them is.
pub async fn retention_by_age_expires_publications(t: &TestEngine) {
    let ch = channel("chat:age");
    let retention = Retention { max_len: 100, max_age: Duration::from_millis(1500) };
    let first = t.sb.streams().publish_with(&ch, event(1), retention).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = t.sb.streams().publish_with(&ch, event(2), retention).await.unwrap();
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(first.epoch, second.epoch);
    let streams = t.sb.streams();
    eventually(Duration::from_secs(5), "the first publication expires before the second", || async {
        let history = streams.history(&ch, 10).await.unwrap();
        let before = streams.read_since(&ch, &StreamPosition { epoch: first.epoch.clone(), offset: 0 }, 10).await;
        let after = streams.read_since(&ch, &first, 10).await.unwrap();
        offsets(&history) == vec![2] && !before.unwrap().recovered && after.recovered && offsets(&after) == vec![2]
    })
    .await;
    eventually(Duration::from_secs(5), "everything expires", || async {
        streams.history(&ch, 10).await.unwrap().publications.is_empty()
    })
    .await;
    let read = streams.read_since(&ch, &first, 10).await.unwrap();
    assert!(!read.recovered && read.publications.is_empty());
}

/// The epoch is stable while the history lives; another epoch is never recovered; removing the
/// stream starts a new epoch at offset 0.
pub async fn epoch_is_stable_and_a_wrong_epoch_is_not_recovered(t: &TestEngine) {
    let ch = channel("chat:epoch");
    let a = t.sb.streams().position(&ch).await.unwrap();
    let b = t.sb.streams().position(&ch).await.unwrap();
    assert_eq!(a, b, "a never-published channel keeps its epoch");
    assert!(!a.epoch.is_empty());
    let pos = t.sb.streams().publish(&ch, event(1)).await.unwrap();
    assert_eq!(pos.epoch, a.epoch, "publishing keeps the epoch born on first use");
    assert_eq!(t.sb.streams().position(&ch).await.unwrap(), pos);

    let wrong = StreamPosition { epoch: "not-the-epoch".into(), offset: 0 };
    let read = t.sb.streams().read_since(&ch, &wrong, 10).await.unwrap();
    assert!(!read.recovered && read.publications.is_empty());
    assert_eq!(read.position, pos);

    assert!(t.sb.streams().remove(&ch).await.unwrap());
    let fresh = t.sb.streams().position(&ch).await.unwrap();
    assert_ne!(fresh.epoch, pos.epoch, "a lost history gets a new epoch");
    assert_eq!(fresh.offset, 0);
    assert!(!t.sb.streams().read_since(&ch, &pos, 10).await.unwrap().recovered);
    let again = t.sb.streams().publish(&ch, event(2)).await.unwrap();
    assert_eq!(again, StreamPosition { epoch: fresh.epoch, offset: 1 });

    let other = t.sb.streams().position(&channel("chat:epoch-2")).await.unwrap();
    assert_ne!(other.epoch, again.epoch, "channels have their own epochs");
}

/// `history` returns the newest `limit`, oldest first.
pub async fn history_is_the_newest_n_oldest_first(t: &TestEngine) {
    let ch = channel("chat:history");
    let empty = t.sb.streams().history(&ch, 10).await.unwrap();
    assert!(empty.recovered && empty.publications.is_empty() && empty.position.offset == 0);
    for n in 1..=30 {
        t.sb.streams().publish(&ch, event(n)).await.unwrap();
    }
    let read = t.sb.streams().history(&ch, 7).await.unwrap();
    assert_eq!(offsets(&read), (24..=30).collect::<Vec<_>>());
    assert_eq!(read.publications.iter().map(|p| n_of(&p.data)).collect::<Vec<_>>(), (24..=30).collect::<Vec<_>>());
    assert!(matches!(t.sb.streams().history(&ch, 0).await, Err(Error::InvalidArgument(_))));
}

/// `pending` lists what a device has not acked, skipping publications that exclude it or target
/// other devices; acking moves past them.
pub async fn pending_filters_excluded_and_targeted_devices(t: &TestEngine) {
    let user = UserId::new("pending-user").unwrap();
    let ch = ChannelName::user(&user);
    let (phone, laptop) = (device("phone"), device("laptop"));
    let streams = t.sb.streams();
    let all = event(1);
    let not_phone = NewPublication { exclude_device: Some(phone.clone()), ..event(2) };
    let only_laptop = NewPublication { only_devices: vec![laptop.clone()], ..event(3) };
    let only_phone = NewPublication { only_devices: vec![phone.clone(), device("tablet")], ..event(4) };
    for p in [all, not_phone, only_laptop, only_phone] {
        streams.publish(&ch, p).await.unwrap();
    }
    let for_phone = streams.pending(&user, &phone, 100).await.unwrap();
    let ns = |p: &switchboard_core::Pending| p.publications.iter().map(|p| n_of(&p.data)).collect::<Vec<_>>();
    assert_eq!(ns(&for_phone), vec![1, 4]);
    assert!(for_phone.recovered);
    assert_eq!(for_phone.ack_position.offset, 4);
    let for_laptop = streams.pending(&user, &laptop, 100).await.unwrap();
    assert_eq!(ns(&for_laptop), vec![1, 2, 3]);
    assert_eq!(for_laptop.ack_position.offset, 4, "the last publication examined, though not for it");

    // A page of one: the ack position is the last publication returned.
    let first = streams.pending(&user, &laptop, 1).await.unwrap();
    assert_eq!((ns(&first), first.ack_position.offset), (vec![1], 1));

    // Acking moves the cursor; later publications only are pending.
    streams.ack(&user, &phone, &for_phone.ack_position).await.unwrap();
    streams.publish(&ch, event(5)).await.unwrap();
    streams.publish(&ch, NewPublication { exclude_device: Some(phone.clone()), ..event(6) }).await.unwrap();
    let after = streams.pending(&user, &phone, 100).await.unwrap();
    assert_eq!(ns(&after), vec![5]);
    assert_eq!(after.ack_position.offset, 6);
    assert_eq!(ns(&streams.pending(&user, &laptop, 100).await.unwrap()), vec![1, 2, 3, 5, 6]);
}

/// A cursor never moves backwards; an ack beyond the top is refused; an ack for another epoch
/// is ignored.
pub async fn ack_never_moves_backwards(t: &TestEngine) {
    let user = UserId::new("ack-user").unwrap();
    let ch = ChannelName::user(&user);
    let phone = device("phone");
    let streams = t.sb.streams();
    assert_eq!(streams.cursor(&user, &phone).await.unwrap(), None);
    let mut top = streams.position(&ch).await.unwrap();
    for n in 1..=10 {
        top = streams.publish(&ch, event(n)).await.unwrap();
    }
    let at = |offset| StreamPosition { epoch: top.epoch.clone(), offset };
    assert_eq!(streams.ack(&user, &phone, &at(6)).await.unwrap(), Some(at(6)));
    assert_eq!(streams.ack(&user, &phone, &at(3)).await.unwrap(), Some(at(6)), "never backwards");
    assert_eq!(streams.cursor(&user, &phone).await.unwrap(), Some(at(6)));
    assert!(matches!(streams.ack(&user, &phone, &at(11)).await, Err(Error::InvalidArgument(_))));
    let stale = StreamPosition { epoch: "old-epoch".into(), offset: 9 };
    assert_eq!(streams.ack(&user, &phone, &stale).await.unwrap(), Some(at(6)), "another epoch is ignored");
    assert_eq!(streams.ack(&user, &device("new"), &stale).await.unwrap(), None);
    assert_eq!(streams.ack(&user, &phone, &at(10)).await.unwrap(), Some(at(10)));
    assert_eq!(streams.cursor(&user, &device("other")).await.unwrap(), None);

    // After the history is lost the old cursor is not recovered: pending starts over.
    streams.remove(&ch).await.unwrap();
    let fresh = streams.publish(&ch, event(11)).await.unwrap();
    let pending = streams.pending(&user, &phone, 100).await.unwrap();
    assert!(!pending.recovered);
    assert_eq!(pending.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1]);
    assert_eq!(pending.ack_position, fresh);
    assert_eq!(streams.ack(&user, &phone, &fresh).await.unwrap(), Some(fresh.clone()));
    assert!(streams.pending(&user, &phone, 100).await.unwrap().publications.is_empty());
}

/// 10 000 publications read back in pages: no gap, no duplicate, in order.
pub async fn ten_thousand_publications_read_back_in_pages(t: &TestEngine) {
    let ch = channel("user:bulk");
    let retention = Retention { max_len: 10_000, max_age: LONG };
    let start = t.sb.streams().position(&ch).await.unwrap();
    for n in 1..=10_000 {
        t.sb.streams().publish_with(&ch, event(n), retention).await.unwrap();
    }
    let mut since = start.clone();
    let mut seen = Vec::with_capacity(10_000);
    loop {
        let read = t.sb.streams().read_since(&ch, &since, 1000).await.unwrap();
        assert!(read.recovered, "after offset {}", since.offset);
        let Some(last) = read.publications.last() else { break };
        since = StreamPosition { epoch: start.epoch.clone(), offset: last.offset };
        seen.extend(read.publications.iter().map(|p| (p.offset, n_of(&p.data))));
    }
    assert_eq!(seen.len(), 10_000);
    assert!(seen.iter().enumerate().all(|(i, &(offset, n))| offset == i as u64 + 1 && n == offset));
}

/// Concurrent publishers get offsets 1..=1600 with no gap and no duplicate.
pub async fn concurrent_publishers_get_consecutive_offsets(t: &TestEngine) {
    let ch = channel("chat:concurrent");
    let retention = Retention { max_len: 2000, max_age: LONG };
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let streams = t.sb.streams().clone();
            let ch = ch.clone();
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(200);
                for i in 0..200 {
                    got.push(streams.publish_with(&ch, event(task * 1000 + i), retention).await.unwrap().offset);
                }
                got
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in futures_util::future::join_all(tasks).await {
        let got = task.expect("publisher task");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "one publisher's offsets grow");
        all.extend(got);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1600).collect::<Vec<_>>());
    let history = t.sb.streams().history(&ch, 1000).await.unwrap();
    assert_eq!(offsets(&history), (601..=1600).collect::<Vec<_>>());
    let distinct: HashSet<u64> = history.publications.iter().map(|p| n_of(&p.data)).collect();
    assert_eq!(distinct.len(), 1000);
}

/// A hub subscriber receives every publication made after it subscribed, in offset order, with
/// the stream's epoch; two local subscribers share one upstream subscription that goes away
/// with the last of them.
pub async fn hub_subscribers_receive_later_publications_in_order(t: &TestEngine) {
    let ch = channel("chat:live");
    t.start();
    let hub = t.sb.hub();
    let before = t.sb.streams().publish(&ch, event(0)).await.unwrap();
    let mut a = hub.subscribe(&ch).await.unwrap();
    let mut b = hub.subscribe(&ch).await.unwrap();
    assert_eq!(hub.subscribers(&ch), 2);
    for n in 1..=50 {
        t.sb.streams().publish(&ch, event(n)).await.unwrap();
    }
    for sub in [&mut a, &mut b] {
        for n in 1..=50 {
            assert_eq!(next_publication(sub).await, (before.epoch.clone(), n + 1, n));
        }
    }
    // Other channels are not delivered.
    t.sb.streams().publish(&channel("chat:elsewhere"), event(99)).await.unwrap();
    drop(a);
    t.sb.streams().publish(&ch, event(51)).await.unwrap();
    assert_eq!(next_publication(&mut b).await.2, 51);
    assert!(b.try_recv().is_none());
    drop(b);
    eventually(Duration::from_secs(5), "the hub forgets the channel", || async { hub.channels() == 0 }).await;
    let mut again = hub.subscribe(&ch).await.unwrap();
    t.sb.streams().publish(&ch, event(52)).await.unwrap();
    assert_eq!(next_publication(&mut again).await.2, 52);
}

/// A publication made through one node reaches subscribers on another node (for the memory
/// engine, which has one node, its own hub).
pub async fn publications_reach_subscribers_on_other_nodes(t: &TestEngine) {
    let other = t.sibling().await;
    t.start();
    other.start();
    let ch = channel("user:fanout");
    let mut here = t.sb.hub().subscribe(&ch).await.unwrap();
    let mut there = other.sb.hub().subscribe(&ch).await.unwrap();
    let mut positions = Vec::new();
    for n in 1..=20 {
        let node = if n % 2 == 0 { &other } else { t };
        positions.push(node.sb.streams().publish(&ch, event(n)).await.unwrap());
    }
    for sub in [&mut here, &mut there] {
        for (n, pos) in (1..=20).zip(&positions) {
            assert_eq!(next_publication(sub).await, (pos.epoch.clone(), pos.offset, n));
        }
    }
    let read = other.sb.streams().history(&ch, 100).await.unwrap();
    assert_eq!(offsets(&read), (1..=20).collect::<Vec<_>>(), "both nodes see one stream");
}

/// Publications of a reserved type are control events: every publishing path refuses them (so
/// no caller can forge one) and writes nothing; the control path takes only them.
pub async fn reserved_types_are_refused_except_as_control_events(t: &TestEngine) {
    let ch = channel("user:forger");
    let forged = || NewPublication::new(json!({"type": "_switchboard.disconnect", "data": {}}));
    let refused = |result: switchboard_core::Result<()>| {
        assert!(matches!(&result, Err(Error::InvalidArgument(m)) if m.starts_with("data.type")), "{result:?}");
    };
    let streams = t.sb.streams();
    refused(streams.publish(&ch, forged()).await.map(drop));
    refused(streams.broadcast(std::slice::from_ref(&ch), forged()).await.map(drop));
    refused(streams.publish_with(&ch, forged(), Retention::for_channel(&ch)).await.map(drop));
    refused(streams.publish_ephemeral(&ch, forged()).await);
    assert_eq!(streams.position(&ch).await.unwrap().offset, 0, "nothing was stored");
    refused(streams.publish_control(&ch, event(1)).await);
    streams.publish_control(&ch, forged()).await.expect("a control event goes through the control path");
}

/// A device registered without a cursor starts its pending list at the stream's current
/// position (or at the oldest retained publication when asked); registering again never moves
/// an existing cursor.
pub async fn a_new_device_starts_at_the_current_position(t: &TestEngine) {
    let user = UserId::new("new-device-user").unwrap();
    let ch = ChannelName::user(&user);
    let streams = t.sb.streams();
    let presence = t.sb.presence();
    for n in 1..=3 {
        streams.publish(&ch, event(n)).await.unwrap();
    }
    let ns = |p: &switchboard_core::Pending| p.publications.iter().map(|p| n_of(&p.data)).collect::<Vec<_>>();
    let (fresh, history) = (device("fresh"), device("history"));
    presence.register_device(&user, &fresh, DeviceRegistration::default()).await.unwrap();
    assert_eq!(streams.cursor(&user, &fresh).await.unwrap().map(|c| c.offset), Some(3));
    assert!(streams.pending(&user, &fresh, 100).await.unwrap().publications.is_empty(), "the past is not pending");
    let oldest = DeviceRegistration { pending_from: PendingFrom::Oldest, ..DeviceRegistration::default() };
    presence.register_device(&user, &history, oldest).await.unwrap();
    assert_eq!(streams.cursor(&user, &history).await.unwrap(), None);

    streams.publish(&ch, event(4)).await.unwrap();
    assert_eq!(ns(&streams.pending(&user, &fresh, 100).await.unwrap()), vec![4]);
    assert_eq!(ns(&streams.pending(&user, &history, 100).await.unwrap()), vec![1, 2, 3, 4]);

    // Registering again (an app update, a new push token) keeps the cursor.
    presence.register_device(&user, &fresh, DeviceRegistration::default()).await.unwrap();
    assert_eq!(ns(&streams.pending(&user, &fresh, 100).await.unwrap()), vec![4]);

    // A user whose stream was never published to: the device starts at offset 0, and the first
    // publication is pending.
    let quiet = UserId::new("quiet-user").unwrap();
    presence.register_device(&quiet, &fresh, DeviceRegistration::default()).await.unwrap();
    streams.publish(&ChannelName::user(&quiet), event(1)).await.unwrap();
    assert_eq!(ns(&streams.pending(&quiet, &fresh, 100).await.unwrap()), vec![1]);
}

/// A broadcast audience resolves to `user:` channels: a user's contacts, or a conversation's
/// members without the sender; an unknown conversation is `NotFound`.
pub async fn audiences_resolve_to_user_channels(t: &TestEngine) {
    use switchboard_core::Audience;
    let id = |s: &str| UserId::new(s).unwrap();
    t.sb.presence().set_contacts(&id("au-ann"), &[id("au-cy"), id("au-bob")], None).await.unwrap();
    let contacts = t.sb.user_channels(&Audience::ContactsOf(id("au-ann")), &[]).await.unwrap();
    assert_eq!(contacts, [channel("user:au-bob"), channel("user:au-cy")]);
    let spec = switchboard_core::ConversationSpec {
        members: vec![id("au-ann"), id("au-bob"), id("au-dee")],
        ..switchboard_core::ConversationSpec::default()
    };
    let conversation = switchboard_core::ConversationId::new("au-c").unwrap();
    t.sb.conversations().put(&conversation, spec).await.unwrap();
    let members = t.sb.user_channels(&Audience::MembersOf(conversation), &[id("au-ann")]).await.unwrap();
    assert_eq!(members, [channel("user:au-bob"), channel("user:au-dee")]);
    let missing = Audience::MembersOf(switchboard_core::ConversationId::new("au-none").unwrap());
    assert!(matches!(t.sb.user_channels(&missing, &[]).await, Err(Error::NotFound(_))));
    assert!(t.sb.user_channels(&Audience::ContactsOf(id("au-nobody")), &[]).await.unwrap().is_empty());
}
