//! Chat end to end: a posted message reaches `chat:` subscribers, members' unread counters
//! update on their personal channels, a read on one device syncs the user's other device (never
//! the reading one), and delivery/read receipts arrive.

use serde_json::{Value, json};
use switchboard_conformance::TestEngine;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{ConversationId, InboxFilter, NewMessage, UserId};

use crate::common::{Client, Server, token};

/// A connected client and the pushes it received but no check has taken yet (events of
/// different channels may arrive in either order).
struct Peer {
    client: Client,
    stash: Vec<Value>,
}

impl Peer {
    /// The data of the first push on `channel` of event `kind`, stashed or next to arrive.
    async fn event(&mut self, channel: &str, kind: &str) -> Value {
        let matches = |p: &Value| p["channel"] == channel && p["pub"]["data"]["type"] == kind;
        if let Some(i) = self.stash.iter().position(matches) {
            return self.stash.remove(i)["pub"]["data"]["data"].clone();
        }
        for _ in 0..50 {
            let push = self.client.push().await;
            if matches(&push) {
                return push["pub"]["data"]["data"].clone();
            }
            self.stash.push(push);
        }
        panic!("no {kind} on {channel} within 50 pushes");
    }

    async fn rpc(&mut self, method: &str, data: Value) -> Value {
        rpc(&mut self.client, method, data).await
    }
}

async fn connected(server: &Server, user: &str, device: &str, chat: bool) -> Peer {
    let mut c = server.client().await;
    c.connect(&token(user, device), json!({})).await;
    if chat {
        let id = c.send(json!({"subscribe": {"channel": "chat:trio"}})).await;
        let reply = c.reply(id).await;
        assert!(reply.get("error").is_none(), "{reply}");
    }
    Peer { client: c, stash: Vec::new() }
}

async fn rpc(client: &mut Client, method: &str, data: Value) -> Value {
    let id = client.send(json!({"rpc": {"method": method, "data": data}})).await;
    client.reply(id).await
}

pub(crate) async fn three_members_post_read_and_receipts(t: TestEngine) {
    let server = Server::start(t).await;
    let trio = ConversationId::new("trio").unwrap();
    let members = ["ann", "ben", "cat"].map(|u| UserId::new(u).unwrap()).to_vec();
    let spec = ConversationSpec { kind: ConversationKind::Group, name: None, avatar_url: None, members };
    server.sb.conversations().put(&trio, spec).await.unwrap();
    let mut ann = connected(&server, "ann", "phone", true).await;
    let mut ben_phone = connected(&server, "ben", "phone", true).await;
    let mut ben_laptop = connected(&server, "ben", "laptop", false).await;
    let mut cat = connected(&server, "cat", "phone", true).await;

    // Ann posts (through the backend): every chat subscriber gets it, Ben's and Cat's unread grow.
    let message = NewMessage {
        id: "m1".parse().unwrap(),
        sender: UserId::new("ann").unwrap(),
        content: json!("hello trio"),
        created_at: None,
        preview: None,
    };
    server.sb.messages().post(&trio, message).await.unwrap();
    for c in [&mut ann, &mut ben_phone, &mut cat] {
        let data = c.event("chat:trio", "message.new").await;
        assert_eq!((data["id"].as_str(), data["content"].as_str()), (Some("m1"), Some("hello trio")));
    }
    for (c, user) in [(&mut ben_phone, "ben"), (&mut ben_laptop, "ben"), (&mut cat, "cat")] {
        let data = c.event(&format!("user:{user}"), "unread.changed").await;
        assert_eq!(data, json!({"conversation_id": "trio", "unread": 1, "total_unread": 1, "muted_unread": 0}));
    }
    let ben = UserId::new("ben").unwrap();
    let list = server.sb.messages().list(&ben, InboxFilter::All, None, 10).await.unwrap();
    assert_eq!(list.conversations[0].last_message_preview, "hello trio");

    // Ben's phone confirms delivery: Ann gets the receipt.
    let reply = ben_phone.rpc("messages.delivered", json!({"conversation_id": "trio", "message_ids": ["m1"]})).await;
    assert_eq!(reply["rpc"]["data"]["message_ids"], json!(["m1"]), "{reply}");
    let receipt = ann.event("chat:trio", "message.status").await;
    assert_eq!((receipt["user_id"].as_str(), receipt["status"].as_str()), (Some("ben"), Some("delivered")));

    // Ben reads on his phone: the laptop learns unread 0, Ann gets the read receipt.
    let reply = ben_phone.rpc("conversations.read", json!({"conversation_id": "trio", "message_id": "m1"})).await;
    assert_eq!(reply["rpc"]["data"]["cleared"], 1, "{reply}");
    let synced = ben_laptop.event("user:ben", "unread.changed").await;
    assert_eq!((synced["unread"].as_u64(), synced["total_unread"].as_u64()), (Some(0), Some(0)));
    let receipt = ann.event("chat:trio", "message.status").await;
    assert_eq!((receipt["user_id"].as_str(), receipt["status"].as_str()), (Some("ben"), Some("read")));

    // The phone that read never got that sync: its next unread.changed is for Cat's new message.
    let message = NewMessage {
        id: "m2".parse().unwrap(),
        sender: UserId::new("cat").unwrap(),
        content: json!({"text": "hi ben"}),
        created_at: None,
        preview: None,
    };
    server.sb.messages().post(&trio, message).await.unwrap();
    let next = ben_phone.event("user:ben", "unread.changed").await;
    assert_eq!(next["unread"], 1);

    // A non-member can neither read nor send receipts in the conversation.
    let mut dave = server.client().await;
    dave.connect(&token("dave", "phone"), json!({})).await;
    let reply = rpc(&mut dave, "conversations.read", json!({"conversation_id": "trio", "message_id": "m1"})).await;
    assert!(reply.get("error").is_some(), "{reply}");
    let reply = rpc(&mut dave, "messages.delivered", json!({"conversation_id": "trio", "message_ids": ["m2"]})).await;
    assert!(reply.get("error").is_some(), "{reply}");
    let reply = rpc(&mut dave, "conversations.read", json!({"conversation_id": "a b", "message_id": "m1"})).await;
    assert!(reply.get("error").is_some(), "{reply}");
}
