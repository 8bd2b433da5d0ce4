//! Access ends when the permission ends, on every node: a removed member, a member of a replaced
//! or deleted conversation and a removed contact are unsubscribed (`unsubscribe` push, code 2403)
//! and receive nothing published after the change; a denied token's connections are closed
//! wherever they are. Each case runs two nodes: changes go through node B, clients sit on node A
//! (on Redis two engines with their own brokers and hubs; on memory two gateways over one engine).

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_conformance::TestEngine;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{ChannelName, ConversationId, DeviceId, NewMessage, NewPublication, Timestamp, TokenId, UserId};

use crate::common::{Claims, Client, Server, token};

/// The unsubscribe code for a revoked permission.
const ACCESS_REVOKED: u64 = 2403;

fn user(id: &str) -> UserId {
    UserId::new(id).unwrap()
}

/// Two nodes over one backing store.
async fn two_nodes(t: TestEngine) -> (Server, Server) {
    let sibling = t.sibling().await;
    (Server::start(t).await, Server::start(sibling).await)
}

async fn put_conversation(server: &Server, id: &str, members: &[&str]) {
    let spec = ConversationSpec {
        kind: ConversationKind::Group,
        name: None,
        avatar_url: None,
        members: members.iter().map(|m| user(m)).collect(),
    };
    server.sb.conversations().put(&ConversationId::new(id).unwrap(), spec).await.unwrap();
}

async fn post(server: &Server, conversation: &str, id: &str, sender: &str) {
    let message = NewMessage {
        id: id.parse().unwrap(),
        sender: user(sender),
        content: json!("after the change"),
        created_at: None,
        preview: None,
    };
    server.sb.messages().post(&ConversationId::new(conversation).unwrap(), message).await.unwrap();
}

/// A client of `user` on `server`, subscribed to `channels`.
async fn subscribed(server: &Server, user: &str, channels: &[&str]) -> Client {
    let mut c = server.client().await;
    let reply = c.connect(&token(user, "phone"), json!({})).await;
    assert!(reply.get("connect").is_some(), "{reply}");
    for channel in channels {
        let id = c.send(json!({"subscribe": {"channel": channel}})).await;
        let reply = c.reply(id).await;
        assert!(reply.get("error").is_none(), "subscribe {channel}: {reply}");
    }
    c
}

/// Publishes a marker on the user's personal channel (through `server`), then reads the client's
/// pushes until it has seen both the marker and the unsubscribe from `channel`: nothing of
/// `channel` may arrive other than that unsubscribe, whose code is returned.
async fn unsubscribed_and_nothing_else(server: &Server, client: &mut Client, user: &str, channel: &str) -> u64 {
    let marker = json!({"type": "test.marker", "data": {}});
    server.sb.streams().publish(&ChannelName::user(&self::user(user)), NewPublication::new(marker)).await.unwrap();
    let (mut code, mut marked) = (None, false);
    while code.is_none() || !marked {
        let push = client.push().await;
        if push["channel"] == channel {
            assert!(push.get("pub").is_none(), "{user} received on {channel} after losing access: {push}");
            let unsubscribe = &push["unsubscribe"];
            assert!(unsubscribe.is_object(), "{push}");
            code = unsubscribe["code"].as_u64();
        } else if push["pub"]["data"]["type"] == "test.marker" {
            marked = true;
        }
    }
    code.unwrap_or_default()
}

/// The client is still connected, and `channel` is refused to it now.
async fn refused_but_connected(client: &mut Client, channel: &str) {
    let id = client.send(json!({"subscribe": {"channel": channel}})).await;
    let reply = client.reply(id).await;
    assert_eq!(reply["error"]["code"], json!(103), "{reply}");
}

/// The next push on `channel` is the publication of event `kind`; other channels' pushes are
/// skipped.
async fn next_event(client: &mut Client, channel: &str, kind: &str) -> Value {
    for _ in 0..20 {
        let push = client.push().await;
        if push["channel"] == channel {
            assert_eq!(push["pub"]["data"]["type"], kind, "{push}");
            return push;
        }
    }
    panic!("no {kind} on {channel}");
}

pub(crate) async fn a_removed_member_stops_receiving_at_once(t: TestEngine) {
    let (a, b) = two_nodes(t).await;
    put_conversation(&b, "zed", &["ann", "cat"]).await;
    let mut ann = subscribed(&a, "ann", &["chat:zed"]).await;
    let mut cat = subscribed(&a, "cat", &["chat:zed"]).await;

    let zed = ConversationId::new("zed").unwrap();
    let updated = b.sb.conversations().update_members(&zed, &[], &[user("ann")]).await.unwrap();
    assert!(updated.is_some(), "the conversation exists");
    post(&b, "zed", "m1", "cat").await;

    assert_eq!(unsubscribed_and_nothing_else(&b, &mut ann, "ann", "chat:zed").await, ACCESS_REVOKED);
    refused_but_connected(&mut ann, "chat:zed").await;
    // The remaining member goes on receiving.
    next_event(&mut cat, "chat:zed", "message.new").await;
}

pub(crate) async fn a_replaced_or_deleted_conversation_ends_subscriptions(t: TestEngine) {
    let (a, b) = two_nodes(t).await;
    put_conversation(&b, "zed", &["ann", "cat"]).await;
    let mut ann = subscribed(&a, "ann", &["chat:zed"]).await;
    let mut cat = subscribed(&a, "cat", &["chat:zed"]).await;

    // Replaced without Ann: only Ann loses the subscription.
    put_conversation(&b, "zed", &["cat", "dan"]).await;
    post(&b, "zed", "m1", "cat").await;
    assert_eq!(unsubscribed_and_nothing_else(&b, &mut ann, "ann", "chat:zed").await, ACCESS_REVOKED);
    refused_but_connected(&mut ann, "chat:zed").await;
    next_event(&mut cat, "chat:zed", "message.new").await;

    // Deleted, then created again without Cat: Cat's subscription ended with the deletion.
    assert!(b.sb.conversations().delete(&ConversationId::new("zed").unwrap()).await.unwrap());
    put_conversation(&b, "zed", &["dan"]).await;
    post(&b, "zed", "m2", "dan").await;
    assert_eq!(unsubscribed_and_nothing_else(&b, &mut cat, "cat", "chat:zed").await, ACCESS_REVOKED);
    refused_but_connected(&mut cat, "chat:zed").await;
}

pub(crate) async fn a_removed_contact_ends_the_presence_subscription(t: TestEngine) {
    let (a, b) = two_nodes(t).await;
    let presence = b.sb.presence();
    presence.set_contacts(&user("ann"), &[user("bob"), user("cy"), user("dee")], None).await.unwrap();
    let mut ann = subscribed(&a, "ann", &["presence:bob", "presence:cy", "presence:dee"]).await;
    let phone = DeviceId::new("phone").unwrap();

    // Removed one by one: Bob's presence no longer reaches Ann.
    assert_eq!(presence.remove_contacts(&user("ann"), &[user("bob")]).await.unwrap(), 1);
    presence.heartbeat(&user("bob"), &phone, None).await.unwrap();
    assert_eq!(unsubscribed_and_nothing_else(&b, &mut ann, "ann", "presence:bob").await, ACCESS_REVOKED);
    refused_but_connected(&mut ann, "presence:bob").await;

    // Replaced without Cy: Cy's goes, Dee's stays.
    presence.set_contacts(&user("ann"), &[user("dee")], None).await.unwrap();
    presence.heartbeat(&user("cy"), &phone, None).await.unwrap();
    assert_eq!(unsubscribed_and_nothing_else(&b, &mut ann, "ann", "presence:cy").await, ACCESS_REVOKED);
    presence.heartbeat(&user("dee"), &phone, None).await.unwrap();
    next_event(&mut ann, "presence:dee", "presence.changed").await;
}

pub(crate) async fn a_denied_token_is_disconnected_on_every_node(t: TestEngine) {
    let (a, b) = two_nodes(t).await;
    let signed = |device, jti| Claims { jti: Some(jti), ..Claims::new("eve", device) }.sign();
    let connect = |server: &Server, token: String| {
        let addr = server.addr;
        async move {
            let mut c = Client::open(addr).await;
            let reply = c.connect(&token, json!({})).await;
            assert!(reply.get("connect").is_some(), "{reply}");
            c
        }
    };
    let mut on_a = connect(&a, signed("phone", "jti-1")).await;
    let mut on_b = connect(&b, signed("tablet", "jti-1")).await;
    let mut other = connect(&a, signed("laptop", "jti-2")).await;
    // A refreshed connection is addressed by its new token, not the one it connected with.
    let mut refreshed = connect(&a, signed("watch", "jti-1")).await;
    let id = refreshed.send(json!({"refresh": {"token": signed("watch", "jti-3")}})).await;
    assert!(refreshed.reply(id).await.get("refresh").is_some());

    let until = Timestamp::now().plus(Duration::from_secs(600));
    b.sb.tokens().deny(&TokenId::new("jti-1").unwrap(), until).await.unwrap();
    assert_eq!(on_a.closed().await, Some(3500), "closed on node A");
    assert_eq!(on_b.closed().await, Some(3500), "closed on node B");
    for c in [&mut other, &mut refreshed] {
        refused_but_connected(c, "chat:nowhere").await;
    }
    b.sb.tokens().deny(&TokenId::new("jti-3").unwrap(), until).await.unwrap();
    assert_eq!(refreshed.closed().await, Some(3500), "the refreshed token is denied now");
    refused_but_connected(&mut other, "chat:nowhere").await;
}

/// A token denied whole (by its digest, as apps without `jti` do) ends the connections made with
/// it on every node and is refused at connect; a token with another signature stays.
pub(crate) async fn a_token_denied_whole_is_disconnected_on_every_node(t: TestEngine) {
    let (a, b) = two_nodes(t).await;
    let token = Claims::new("ivy", "phone").sign();
    let other = Claims::new("ivy", "tablet").sign();
    let mut on_a = Client::open(a.addr).await;
    assert!(on_a.connect(&token, json!({})).await.get("connect").is_some());
    let mut on_b = Client::open(b.addr).await;
    assert!(on_b.connect(&token, json!({})).await.get("connect").is_some());
    let mut kept = Client::open(a.addr).await;
    assert!(kept.connect(&other, json!({})).await.get("connect").is_some());

    let until = Timestamp::now().plus(Duration::from_secs(600));
    b.sb.tokens().deny_token(&token, until).await.unwrap();
    assert_eq!(on_a.closed().await, Some(3500), "closed on node A");
    assert_eq!(on_b.closed().await, Some(3500), "closed on node B");
    refused_but_connected(&mut kept, "chat:nowhere").await;
    let mut again = Client::open(a.addr).await;
    again.send(json!({"connect": {"token": token}})).await;
    assert_eq!(again.closed().await, Some(3500), "refused at connect");
}
