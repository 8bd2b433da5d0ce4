//! Delivery: the personal channel, offline recovery, chat channels, typing, disconnect orders.

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_conformance::TestEngine;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{ChannelName, ConversationId, NewPublication, Retention, UserId};
use switchboard_server::gateway::{DisconnectTarget, disconnect_everywhere};

use crate::common::{Got, Server, token};

fn event(n: u64) -> NewPublication {
    NewPublication::new(json!({"type": "test.event", "data": {"n": n}}))
}

fn personal(user: &str) -> ChannelName {
    ChannelName::user(&UserId::new(user).unwrap())
}

pub(crate) async fn personal_channel_delivery_and_positions(t: TestEngine) {
    let server = Server::start(t).await;
    let mut c = server.client().await;
    let reply = c.connect(&token("alice", "phone"), json!({})).await;
    let sub = &reply["connect"]["subs"]["user:alice"];
    assert_eq!(sub["recoverable"], json!(true), "{reply}");
    let epoch = sub["epoch"].as_str().expect("epoch").to_owned();
    let position = server.sb.streams().publish(&personal("alice"), event(1)).await.unwrap();
    assert_eq!(position.epoch, epoch);
    let push = c.push().await;
    assert_eq!(push["channel"], "user:alice");
    assert_eq!(push["pub"]["data"], json!({"type": "test.event", "data": {"n": 1}}));
    assert_eq!(push["pub"]["offset"], json!(position.offset));
    // A publication for another device of the same user is not delivered to this one.
    let mut other = event(2);
    other.only_devices = vec![switchboard_core::DeviceId::new("laptop").unwrap()];
    server.sb.streams().publish(&personal("alice"), other).await.unwrap();
    server.sb.streams().publish(&personal("alice"), event(3)).await.unwrap();
    let push = c.push().await;
    assert_eq!(push["pub"]["data"]["data"]["n"], json!(3), "the laptop-only event was skipped: {push}");
}

async fn connect_at(server: &Server, user: &str) -> (crate::common::Client, String, u64) {
    let mut c = server.client().await;
    let reply = c.connect(&token(user, "phone"), json!({})).await;
    let sub = reply["connect"]["subs"][format!("user:{user}")].clone();
    (c, sub["epoch"].as_str().unwrap_or_default().to_owned(), sub["offset"].as_u64().unwrap_or(0))
}

pub(crate) async fn offline_device_recovers_10000_publications_in_order(t: TestEngine) {
    let server = Server::start(t).await;
    let (c, epoch, offset) = connect_at(&server, "bob").await;
    drop(c);
    // Retention sized for the test: the `user:` default keeps 1 000.
    let retention = Retention { max_len: 20_000, max_age: Duration::from_secs(3600) };
    for n in 0..10_000 {
        server.sb.streams().publish_with(&personal("bob"), event(n), retention).await.unwrap();
    }
    let mut c = server.client().await;
    let subs = json!({"user:bob": {"recover": true, "epoch": epoch, "offset": offset}});
    let reply = c.connect(&token("bob", "phone"), subs).await;
    let sub = &reply["connect"]["subs"]["user:bob"];
    assert_eq!(sub["recovered"], json!(true));
    assert_eq!(sub["was_recovering"], json!(true));
    let pubs = sub["publications"].as_array().expect("publications");
    assert_eq!(pubs.len(), 10_000);
    for (i, p) in pubs.iter().enumerate() {
        assert_eq!(p["offset"].as_u64(), Some(offset + 1 + i as u64), "no gap, no duplicate");
        assert_eq!(p["data"]["data"]["n"].as_u64(), Some(i as u64), "in order");
    }
    // Then live ones follow without a gap.
    let next = server.sb.streams().publish(&personal("bob"), event(10_000)).await.unwrap();
    assert_eq!(c.push().await["pub"]["offset"], json!(next.offset));
    assert_eq!(next.offset, offset + 10_001);
}

pub(crate) async fn recovery_beyond_retention_is_not_recovered(t: TestEngine) {
    let server = Server::start(t).await;
    let (c, epoch, offset) = connect_at(&server, "carol").await;
    drop(c);
    let small = Retention { max_len: 10, max_age: Duration::from_secs(3600) };
    for n in 0..25 {
        server.sb.streams().publish_with(&personal("carol"), event(n), small).await.unwrap();
    }
    let mut c = server.client().await;
    let subs = json!({"user:carol": {"recover": true, "epoch": epoch, "offset": offset}});
    let reply = c.connect(&token("carol", "phone"), subs).await;
    let sub = &reply["connect"]["subs"]["user:carol"];
    assert_eq!(sub.get("recovered").cloned().unwrap_or(json!(false)), json!(false), "{sub}");
    assert!(sub.get("publications").is_none_or(|p| p.as_array().is_some_and(Vec::is_empty)));
    // A wrong epoch is not recovered either.
    let mut c = server.client().await;
    let subs = json!({"user:carol": {"recover": true, "epoch": "not-the-epoch", "offset": 1}});
    let reply = c.connect(&token("carol", "tablet"), subs).await;
    assert_eq!(reply["connect"]["subs"]["user:carol"].get("recovered").cloned().unwrap_or(json!(false)), json!(false));
}

pub(crate) async fn chat_members_subscribe_and_see_typing(t: TestEngine) {
    let server = Server::start(t).await;
    let conversation = ConversationId::new("team").unwrap();
    let members = ["dan", "erin"].map(|u| UserId::new(u).unwrap()).to_vec();
    let spec = ConversationSpec { kind: ConversationKind::Group, name: None, avatar_url: None, members };
    server.sb.conversations().put(&conversation, spec).await.unwrap();
    let mut dan = server.client().await;
    dan.connect(&token("dan", "phone"), json!({})).await;
    let mut erin = server.client().await;
    erin.connect(&token("erin", "phone"), json!({})).await;
    for c in [&mut dan, &mut erin] {
        let id = c.send(json!({"subscribe": {"channel": "chat:team"}})).await;
        let reply = c.reply(id).await;
        assert!(reply.get("error").is_none(), "members may subscribe: {reply}");
    }
    // A message published by the backend reaches both.
    let chat = ChannelName::chat("team").unwrap();
    server
        .sb
        .streams()
        .publish(&chat, NewPublication::new(json!({"type": "message.new", "data": {"text": "hi"}})))
        .await
        .unwrap();
    for c in [&mut dan, &mut erin] {
        let push = c.push().await;
        assert_eq!(push["channel"], "chat:team");
        assert_eq!(push["pub"]["data"]["type"], "message.new");
    }
    // Dan types: Erin sees it live, and it takes no place in the history.
    let id = dan.send(json!({"rpc": {"method": "typing", "data": {"conversation_id": "team", "typing": true}}})).await;
    let reply = dan.reply(id).await;
    assert!(reply.get("error").is_none(), "{reply}");
    let push = erin.push().await;
    assert_eq!(
        push["pub"]["data"],
        json!({"type": "typing", "data": {"conversation_id": "team", "user_id": "dan", "typing": true}})
    );
    let history = server.sb.streams().history(&chat, 100).await.unwrap();
    assert_eq!(history.publications.len(), 1, "typing is live only");
    let id = dan.send(json!({"history": {"channel": "chat:team", "limit": 10}})).await;
    let reply = dan.reply(id).await;
    assert_eq!(reply["history"]["publications"].as_array().map(Vec::len), Some(1), "{reply}");
}

pub(crate) async fn disconnect_orders_reach_the_connection(t: TestEngine) {
    let server = Server::start(t).await;
    let (mut phone, _, _) = connect_at(&server, "frank").await;
    let mut laptop = server.client().await;
    laptop.connect(&token("frank", "laptop"), json!({})).await;
    let user = UserId::new("frank").unwrap();
    let target = DisconnectTarget {
        device_id: Some(switchboard_core::DeviceId::new("phone").unwrap()),
        reconnect: false,
        ..DisconnectTarget::default()
    };
    disconnect_everywhere(&server.sb, &user, &target).await.unwrap();
    assert_eq!(phone.closed().await, Some(3503), "force no-reconnect");
    // The laptop stays, and never sees the control message.
    server.sb.streams().publish(&personal("frank"), event(7)).await.unwrap();
    let push: Value = laptop.push().await;
    assert_eq!(push["pub"]["data"]["data"]["n"], json!(7));
}

fn notification(id: &str) -> switchboard_core::NewNotification {
    serde_json::from_value(json!({"id": id, "title": format!("Title {id}")})).unwrap()
}

/// Three devices of one user: a read through the RPC on the phone reaches the laptop (connected)
/// and the tablet (on reconnect, by recovery) as `notification.updated`, never the phone.
pub(crate) async fn notification_reads_sync_to_the_other_devices(t: TestEngine) {
    let server = Server::start(t).await;
    let user = UserId::new("gina").unwrap();
    let (tablet, epoch, offset) = connect_at(&server, "gina").await;
    drop(tablet);
    let mut phone = server.client().await;
    phone.connect(&token("gina", "phone-1"), json!({})).await;
    let mut laptop = server.client().await;
    laptop.connect(&token("gina", "laptop"), json!({})).await;

    server.sb.notifications().create(&user, notification("n1")).await.unwrap();
    for c in [&mut phone, &mut laptop] {
        let push = c.push().await;
        assert_eq!(push["pub"]["data"]["type"], "notification.new");
        assert_eq!(push["pub"]["data"]["data"]["id"], "n1");
    }

    let id = phone.send(json!({"rpc": {"method": "notifications.read", "data": {"ids": ["n1"]}}})).await;
    let reply = phone.reply(id).await;
    assert_eq!(reply["rpc"]["data"]["changes"][0]["id"], "n1", "{reply}");
    let push = laptop.push().await;
    assert_eq!(push["pub"]["data"]["type"], "notification.updated");
    assert_eq!(push["pub"]["data"]["data"]["read"], true);
    // A second read changes nothing and sends nothing.
    let id = phone.send(json!({"rpc": {"method": "notifications.read", "data": {"all": true}}})).await;
    assert_eq!(phone.reply(id).await["rpc"]["data"]["changes"], json!([]));
    let id = laptop.send(json!({"rpc": {"method": "notifications.dismiss", "data": {"ids": ["n1"]}}})).await;
    assert_eq!(laptop.reply(id).await["rpc"]["data"]["changes"][0]["dismissed"], true);
    let push = phone.push().await;
    assert_eq!(push["pub"]["data"]["type"], "notification.updated", "the phone sees the laptop's dismiss");
    assert_eq!(push["pub"]["data"]["data"]["dismissed"], true);
    // The phone never saw its own read: the next thing after the dismiss is the marker.
    server.sb.streams().publish(&personal("gina"), event(99)).await.unwrap();
    assert_eq!(phone.push().await["pub"]["data"]["data"]["n"], json!(99));
    assert_eq!(laptop.push().await["pub"]["data"]["data"]["n"], json!(99), "nor did the laptop see its own");

    // Bad arguments are refused.
    for data in [json!({"ids": ["a b"]}), json!({"ids": [], "all": false}), json!({"ids": ["n1"], "all": true})] {
        let id = phone.send(json!({"rpc": {"method": "notifications.read", "data": data}})).await;
        assert!(phone.reply(id).await.get("error").is_some(), "{data}");
    }

    let mut tablet = server.client().await;
    let subs = json!({"user:gina": {"recover": true, "epoch": epoch, "offset": offset}});
    let reply = tablet.connect(&token("gina", "phone"), subs).await;
    let sub = &reply["connect"]["subs"]["user:gina"];
    assert_eq!(sub["recovered"], json!(true), "{sub}");
    let types: Vec<(String, Value)> = sub["publications"]
        .as_array()
        .expect("publications")
        .iter()
        .map(|p| (p["data"]["type"].as_str().unwrap_or_default().to_owned(), p["data"]["data"].clone()))
        .collect();
    assert_eq!(types.len(), 4, "{types:?}");
    assert_eq!(types[0].0, "notification.new");
    assert_eq!((types[1].0.as_str(), &types[1].1["read"]), ("notification.updated", &json!(true)));
    assert_eq!((types[2].0.as_str(), &types[2].1["dismissed"]), ("notification.updated", &json!(true)));

    // The list agrees.
    let page = server.sb.notifications().list(&user, None, 10, false).await.unwrap();
    assert!(page.notifications[0].read && page.notifications[0].dismissed);
    assert_eq!(server.sb.notifications().unread_count(&user).await.unwrap(), 0);
}

/// What the WebSocket delivered to a device becomes its cursor: the HTTP pending list does not
/// hand it the same publications again; other devices keep theirs.
pub(crate) async fn websocket_delivery_advances_the_device_cursor(t: TestEngine) {
    let server = Server::start(t).await;
    let alice = UserId::new("alice").unwrap();
    let (phone, laptop) =
        (switchboard_core::DeviceId::new("phone").unwrap(), switchboard_core::DeviceId::new("laptop").unwrap());
    let streams = server.sb.streams();
    let mut c = server.client().await;
    c.connect(&token("alice", "phone"), json!({})).await;
    for n in 1..=2 {
        streams.publish(&personal("alice"), event(n)).await.unwrap();
    }
    for n in 1..=2 {
        assert_eq!(c.push().await["pub"]["data"]["data"]["n"], json!(n));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let pending = streams.pending(&alice, &phone, 100).await.unwrap();
        if pending.publications.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the delivered publications stay pending: {pending:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(streams.cursor(&alice, &phone).await.unwrap().map(|c| c.offset), Some(2));
    assert_eq!(streams.pending(&alice, &laptop, 100).await.unwrap().publications.len(), 2, "the laptop got nothing");
}

/// With the options on, a client subscribed to nothing but its personal channel gets the
/// `message.new` of its small conversations and the `presence.changed` of the contacts it
/// follows (who follow it back), on `user:<id>`, with positions like any publication.
pub(crate) async fn the_personal_channel_carries_messages_and_contacts_presence(t: TestEngine) {
    let t = t
        .configured(|config| {
            config.messages.user_channel_max_members = 10;
            config.presence.contacts_on_user_channel = true;
        })
        .await;
    let server = Server::start(t).await;
    let sb = server.sb.clone();
    let (mut bob, _, _) = connect_at(&server, "bob").await;
    let id = |s: &str| switchboard_core::UserId::new(s).unwrap();
    let spec = switchboard_core::ConversationSpec { members: vec![id("amy"), id("bob")], ..Default::default() };
    let conversation = switchboard_core::ConversationId::new("small").unwrap();
    sb.conversations().put(&conversation, spec).await.unwrap();
    let message =
        switchboard_core::NewMessage::new(switchboard_core::MessageId::new("m1").unwrap(), id("amy"), json!("hi bob"));
    sb.messages().post(&conversation, message).await.unwrap();
    let push = bob.push().await;
    assert_eq!(push["channel"], "user:bob");
    assert_eq!(push["pub"]["data"]["type"], "message.new", "{push}");
    assert_eq!(push["pub"]["data"]["data"]["id"], "m1");
    assert_eq!(bob.push().await["pub"]["data"]["type"], "unread.changed");

    sb.presence().set_contacts(&id("amy"), &[id("bob")], None).await.unwrap();
    sb.presence().set_contacts(&id("bob"), &[id("amy")], None).await.unwrap();
    let phone = switchboard_core::DeviceId::new("phone").unwrap();
    sb.presence().heartbeat(&id("amy"), &phone, Some(60)).await.unwrap();
    let push = bob.push().await;
    assert_eq!(push["channel"], "user:bob");
    assert_eq!(push["pub"]["data"]["type"], "presence.changed", "{push}");
    assert_eq!(push["pub"]["data"]["data"]["user_id"], "amy");
    assert_eq!(push["pub"]["data"]["data"]["online"], true);
}

/// Subscribed and unsubscribed over and over while the channel is published to: nothing of the
/// channel arrives between an `unsubscribe` reply and the next `subscribe` reply (the forwarder of
/// the subscription just left may be pushing at that very moment, and must not get through).
pub(crate) async fn nothing_arrives_between_unsubscribe_and_the_next_subscribe(t: TestEngine) {
    let server = Server::start(t).await;
    let conversation = ConversationId::new("busy").unwrap();
    let members = vec![UserId::new("fay").unwrap()];
    let spec = ConversationSpec { kind: ConversationKind::Group, name: None, avatar_url: None, members };
    server.sb.conversations().put(&conversation, spec).await.unwrap();
    let chat = ChannelName::chat("busy").unwrap();
    let sb = server.sb.clone();
    let publisher = tokio::spawn(async move {
        for n in 0.. {
            let _ = sb.streams().publish(&chat, event(n)).await;
            tokio::task::yield_now().await;
        }
    });
    let mut c = server.client().await;
    c.connect(&token("fay", "phone"), json!({})).await;
    // Whatever of the channel arrives while waiting for a subscribe reply came after the previous
    // unsubscribe reply (or before the first subscription).
    let mut stray = Vec::new();
    for _ in 0..300 {
        let id = c.send(json!({"subscribe": {"channel": "chat:busy"}})).await;
        loop {
            match c.next().await {
                Got::Json(v) if v["id"] == json!(id) => {
                    assert!(v.get("error").is_none(), "{v}");
                    break;
                }
                Got::Json(v) if v["push"]["channel"] == "chat:busy" => stray.push(v),
                Got::Json(_) => {}
                Got::Closed(code) => panic!("closed: {code:?}"),
            }
        }
        let id = c.send(json!({"unsubscribe": {"channel": "chat:busy"}})).await;
        while !matches!(c.next().await, Got::Json(v) if v["id"] == json!(id)) {}
    }
    publisher.abort();
    assert!(stray.is_empty(), "{} pushes after an unsubscribe reply, e.g. {}", stray.len(), stray[0]);
}
