//! Isolation between users over the WebSocket: a connected user can neither read nor change
//! another user's notifications, personal channel and sessions, or conversation lists, unread
//! counters and receipts. Only the backend (API key) acts for other users.
//!
//! Each case checks the victim's state through the core services before and after, that
//! nothing was published on the victim's channels (stream positions unchanged), and that the
//! victim's connected device gets nothing (its next push is a marker published afterwards).

use serde_json::{Value, json};
use switchboard_conformance::TestEngine;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{
    ChannelName, ConversationId, CreateSession, Message, NewMessage, NewNotification, NewPublication, StreamPosition,
    UnreadTotals, UserConversation, UserId,
};

use crate::common::{Claims, Client, Server, token};

fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

fn notification(id: &str) -> NewNotification {
    serde_json::from_value(json!({"id": id, "title": format!("Title {id}")})).unwrap()
}

async fn connected(server: &Server, user: &str, device: &str) -> Client {
    let mut c = server.client().await;
    let reply = c.connect(&token(user, device), json!({})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    c
}

async fn rpc(client: &mut Client, method: &str, data: Value) -> Value {
    let id = client.send(json!({"rpc": {"method": method, "data": data}})).await;
    client.reply(id).await
}

async fn position(server: &Server, channel: &ChannelName) -> StreamPosition {
    server.sb.streams().position(channel).await.unwrap()
}

/// Publishes a marker on `channel`; `client` (subscribed to it) must get it as its very next
/// push: proof that nothing else reached it meanwhile.
async fn next_push_is_marker(server: &Server, client: &mut Client, channel: &ChannelName, who: &str) {
    let marker = json!({"type": "marker", "data": {"who": who}});
    server.sb.streams().publish(channel, NewPublication::new(marker.clone())).await.unwrap();
    let push = client.push().await;
    assert_eq!((&push["channel"], &push["pub"]["data"]), (&json!(channel.as_str()), &marker), "{who} got {push}");
}

fn change_ids(reply: &Value) -> Vec<String> {
    let changes = reply["rpc"]["data"]["changes"].as_array().unwrap_or_else(|| panic!("no changes: {reply}"));
    changes.iter().map(|c| c["id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// `notifications.read` / `notifications.dismiss` with the ids of another user's notifications
/// act on the caller's own notifications only (ids are per user: the caller's own `n1` changes,
/// the victim's `n1` and `n2` do not), and a user field in the arguments is refused.
pub(crate) async fn notifications_of_others_cannot_be_read_or_changed(t: TestEngine) {
    let server = Server::start(t).await;
    let notifications = server.sb.notifications();
    let (vic, mal) = (user("vic"), user("mal"));
    for id in ["n1", "n2"] {
        notifications.create(&vic, notification(id)).await.unwrap();
    }
    notifications.create(&mal, notification("n1")).await.unwrap();
    let mut victim = connected(&server, "vic", "phone").await;
    let mut attacker = connected(&server, "mal", "phone").await;
    let vic_channel = ChannelName::user(&vic);
    let before_list = serde_json::to_value(notifications.list(&vic, None, 10, false).await.unwrap()).unwrap();
    let before_position = position(&server, &vic_channel).await;

    let reply = rpc(&mut attacker, "notifications.read", json!({"ids": ["n1", "n2"]})).await;
    assert_eq!(change_ids(&reply), ["n1"], "only the caller's own n1: {reply}");
    let reply = rpc(&mut attacker, "notifications.dismiss", json!({"ids": ["n1", "n2"]})).await;
    assert_eq!(change_ids(&reply), ["n1"], "only the caller's own n1: {reply}");
    assert_eq!(reply["rpc"]["data"]["changes"][0]["dismissed"], true, "{reply}");
    let reply = rpc(&mut attacker, "notifications.read", json!({"all": true})).await;
    assert_eq!(change_ids(&reply), Vec::<String>::new(), "read-all is the caller's: {reply}");
    // Naming another user is refused (107), not silently ignored.
    for data in [
        json!({"ids": ["n2"], "user_id": "vic"}),
        json!({"ids": ["n2"], "user": "vic"}),
        json!({"all": true, "user_id": "vic"}),
    ] {
        for method in ["notifications.read", "notifications.dismiss"] {
            let reply = rpc(&mut attacker, method, data.clone()).await;
            assert_eq!(reply["error"]["code"], 107, "{method} {data}: {reply}");
        }
    }
    // The attacker cannot read them either: not the personal channel, not its history.
    let id = attacker.send(json!({"subscribe": {"channel": "user:vic"}})).await;
    assert_eq!(attacker.reply(id).await["error"]["code"], 103);
    let id = attacker.send(json!({"history": {"channel": "user:vic", "limit": 10}})).await;
    assert_eq!(attacker.reply(id).await["error"]["code"], 103);

    // The victim: both still unread, the list as it was, nothing published or received.
    for id in ["n1", "n2"] {
        let status = notifications.status(&vic, &id.parse().unwrap()).await.unwrap().expect("exists");
        assert!(!status.read && !status.dismissed, "vic's {id}: {status:?}");
    }
    assert_eq!(notifications.unread_count(&vic).await.unwrap(), 2);
    let after_list = serde_json::to_value(notifications.list(&vic, None, 10, false).await.unwrap()).unwrap();
    assert_eq!(after_list, before_list);
    assert_eq!(position(&server, &vic_channel).await, before_position, "nothing was published to vic");
    next_push_is_marker(&server, &mut victim, &vic_channel, "vic").await;
    // The attacker's own notification did change.
    let own = notifications.status(&mal, &"n1".parse().unwrap()).await.unwrap().expect("exists");
    assert!(own.read && own.dismissed, "{own:?}");
    assert_eq!(notifications.unread_count(&mal).await.unwrap(), 0);
}

/// Another user's personal channel (their notifications, unread counters, disconnect orders)
/// and sessions are out of reach: no subscription (103, also with recovery), no history, no
/// recovery through the connect command's `subs`, and a token carrying their session id is
/// refused at connect (3500). There is no RPC for sessions at all.
pub(crate) async fn personal_channels_and_sessions_of_others_are_refused(t: TestEngine) {
    let server = Server::start(t).await;
    let (vic, mal) = (user("vic"), user("mal"));
    let session = server.sb.sessions().create(CreateSession::for_user(vic.clone())).await.unwrap().session;
    server.sb.notifications().create(&vic, notification("secret")).await.unwrap();
    let vic_channel = ChannelName::user(&vic);
    let before_position = position(&server, &vic_channel).await;
    assert!(before_position.offset > 0);

    // Recovery of another user's channel through connect: only the caller's own comes back.
    let mut attacker = server.client().await;
    let subs = json!({
        "user:vic": {"recover": true, "epoch": before_position.epoch, "offset": 0},
        "user:mal": {"recover": true, "epoch": "", "offset": 0},
    });
    let reply = attacker.connect(&token("mal", "phone"), subs).await;
    let granted = reply["connect"]["subs"].as_object().unwrap_or_else(|| panic!("{reply}"));
    assert_eq!(granted.keys().collect::<Vec<_>>(), ["user:mal"], "{reply}");
    assert!(!reply.to_string().contains("secret"), "vic's notification leaked: {reply}");

    for subscribe in [
        json!({"channel": "user:vic"}),
        json!({"channel": "user:vic", "recover": true, "epoch": before_position.epoch, "offset": 0}),
    ] {
        let id = attacker.send(json!({"subscribe": subscribe})).await;
        let reply = attacker.reply(id).await;
        assert_eq!(reply["error"]["code"], 103, "{subscribe}: {reply}");
    }
    for history in [
        json!({"channel": "user:vic", "limit": 10}),
        json!({"channel": "user:vic", "limit": 10, "since": {"epoch": before_position.epoch, "offset": 0}}),
        json!({"channel": "user:vic", "limit": 0}),
    ] {
        let id = attacker.send(json!({"history": history})).await;
        let reply = attacker.reply(id).await;
        assert_eq!(reply["error"]["code"], 103, "{history}: {reply}");
        assert!(!reply.to_string().contains("secret"), "{reply}");
    }
    for method in ["sessions.list", "sessions.get", "sessions.delete"] {
        let reply = rpc(&mut attacker, method, json!({"user_id": "vic", "session_id": session.id.as_str()})).await;
        assert_eq!(reply["error"]["code"], 104, "{method}: {reply}");
    }

    // A token of the attacker naming the victim's session is refused at connect.
    let mut c = server.client().await;
    let sid = session.id.as_str();
    c.send(json!({"connect": {"token": Claims { sid: Some(sid), ..Claims::new("mal", "phone") }.sign()}})).await;
    assert_eq!(c.closed().await, Some(3500));
    // The victim's own token with that session connects; the session is untouched.
    let mut victim = server.client().await;
    let reply = victim.connect(&Claims { sid: Some(sid), ..Claims::new("vic", "phone") }.sign(), json!({})).await;
    assert!(reply.get("error").is_none(), "{reply}");
    let kept = server.sb.sessions().get(&session.id).await.unwrap().expect("the session still exists");
    assert_eq!(kept.user_id, vic);
    assert_eq!(server.sb.sessions().list(&mal).await.unwrap().len(), 0);
    assert_eq!(position(&server, &vic_channel).await, before_position, "nothing was published to vic");
    next_push_is_marker(&server, &mut victim, &vic_channel, "vic").await;
}

fn group(members: &[&str]) -> ConversationSpec {
    ConversationSpec {
        kind: ConversationKind::Group,
        name: None,
        avatar_url: None,
        members: members.iter().map(|m| user(m)).collect(),
    }
}

fn message(id: &str, sender: &str) -> NewMessage {
    NewMessage {
        id: id.parse().unwrap(),
        sender: user(sender),
        content: json!(format!("text {id}")),
        created_at: None,
        preview: None,
    }
}

/// Everything of conversation `pair` (members ann and ben) that other users could change.
#[derive(Debug, PartialEq)]
struct PairState {
    entries: Vec<Option<UserConversation>>,
    totals: Vec<UnreadTotals>,
    cached: Vec<Message>,
}

async fn pair_state(server: &Server) -> PairState {
    let messages = server.sb.messages();
    let pair = ConversationId::new("pair").unwrap();
    let mut state = PairState { entries: Vec::new(), totals: Vec::new(), cached: Vec::new() };
    for member in [user("ann"), user("ben")] {
        state.entries.push(messages.entry(&member, &pair).await.unwrap());
        state.totals.push(messages.totals(&member).await.unwrap());
    }
    state.cached = messages.recent(&pair, 10, None).await.unwrap().messages;
    state
}

/// `conversations.read` and `messages.delivered` on a conversation the caller is not a member
/// of are refused with 103 and change nobody's list, unread counter or receipts; with a message
/// id of another conversation in the caller's own conversation they change nothing there either.
pub(crate) async fn conversation_lists_of_others_cannot_be_read_or_changed(t: TestEngine) {
    let server = Server::start(t).await;
    let (pair, own) = (ConversationId::new("pair").unwrap(), ConversationId::new("own").unwrap());
    let conversations = server.sb.conversations();
    conversations.put(&pair, group(&["ann", "ben"])).await.unwrap();
    conversations.put(&own, group(&["ann", "mal"])).await.unwrap();
    let messages = server.sb.messages();
    messages.post(&pair, message("m1", "ann")).await.unwrap();
    messages.post(&own, message("o1", "ann")).await.unwrap();

    let mut ann = connected(&server, "ann", "phone").await;
    let id = ann.send(json!({"subscribe": {"channel": "chat:pair"}})).await;
    assert!(ann.reply(id).await.get("error").is_none());
    let mut ben = connected(&server, "ben", "phone").await;
    let mut mal = connected(&server, "mal", "phone").await;

    let (ann_id, ben_id) = (user("ann"), user("ben"));
    let before = pair_state(&server).await;
    assert_eq!(before.entries[1].as_ref().map(|e| e.unread), Some(1), "ben has m1 unread");
    let channels = [ChannelName::user(&ann_id), ChannelName::user(&ben_id), ChannelName::chat("pair").unwrap()];
    let mut positions = Vec::new();
    for channel in &channels {
        positions.push(position(&server, channel).await);
    }

    // Not a member: refused with 103, whatever the message ids.
    for (method, data) in [
        ("conversations.read", json!({"conversation_id": "pair", "message_id": "m1"})),
        ("conversations.read", json!({"conversation_id": "pair", "message_id": "o1"})),
        ("conversations.read", json!({"conversation_id": "nowhere", "message_id": "m1"})),
        ("messages.delivered", json!({"conversation_id": "pair", "message_ids": ["m1"]})),
        ("messages.delivered", json!({"conversation_id": "nowhere", "message_ids": ["m1"]})),
        ("typing", json!({"conversation_id": "pair", "typing": true})),
    ] {
        let reply = rpc(&mut mal, method, data.clone()).await;
        assert_eq!(reply["error"]["code"], 103, "{method} {data}: {reply}");
    }
    // Naming another user is refused.
    let data = json!({"conversation_id": "pair", "message_id": "m1", "user_id": "ben"});
    assert_eq!(rpc(&mut mal, "conversations.read", data).await["error"]["code"], 107);
    // Nor can the non-member read the conversation.
    for command in [
        json!({"subscribe": {"channel": "chat:pair"}}),
        json!({"history": {"channel": "chat:pair", "limit": 10}}),
        json!({"presence": {"channel": "chat:pair"}}),
    ] {
        let id = mal.send(command.clone()).await;
        assert_eq!(mal.reply(id).await["error"]["code"], 103, "{command}");
    }
    // In the caller's own conversation, another conversation's message id moves nothing there.
    let reply = rpc(&mut mal, "messages.delivered", json!({"conversation_id": "own", "message_ids": ["m1"]})).await;
    assert_eq!(reply["rpc"]["data"]["message_ids"], json!([]), "{reply}");
    let reply = rpc(&mut mal, "conversations.read", json!({"conversation_id": "own", "message_id": "m1"})).await;
    assert!(reply.get("error").is_none(), "{reply}");

    // Nobody in `pair` changed: lists, counters, cached messages and their receipts.
    let after = pair_state(&server).await;
    assert_eq!(after, before);
    let m1 = &after.cached[0];
    assert_eq!((m1.delivered_count, m1.read_count), (0, 0), "{m1:?}");
    for (channel, before) in channels.iter().zip(&positions) {
        assert_eq!(&position(&server, channel).await, before, "nothing was published on {channel:?}");
    }
    next_push_is_marker(&server, &mut ben, &channels[1], "ben").await;
    next_push_is_marker(&server, &mut ann, &channels[2], "ann").await;
}
