//! Messages, receipts, per-user conversation lists and unread counters over HTTP.

use serde_json::json;

use crate::common::TestApp;

async fn conversation(app: &TestApp, id: &str, members: &[&str]) {
    app.put(&format!("/api/v1/conversations/{id}"), json!({"members": members})).await.assert_status(200);
}

#[tokio::test]
async fn post_recent_fill_edit_delete() {
    let app = TestApp::new();
    conversation(&app, "c1", &["alice", "bob"]).await;
    let r = app.get("/api/v1/conversations/c1/messages").await;
    assert_eq!(r.assert_status(200)["cached"], false);

    let fill = json!({"messages": [
        {"id": "future1", "sender": "bob", "content": "first", "created_at": "2030-01-01T00:00:00.000Z"},
    ]});
    // The cache orders by creation time: a message from the backend dated later sorts first.
    assert_eq!(app.put("/api/v1/conversations/c1/messages", fill).await.assert_status(200)["added"], 1);

    for i in 1..=3 {
        let body = json!({"id": format!("m{i}"), "sender": "alice", "content": {"text": format!("hello {i}")}});
        let r = app.post("/api/v1/conversations/c1/messages", body).await;
        let out = r.assert_status(200);
        assert_eq!(out["duplicate"], false);
        assert_eq!(out["message"]["status"], "sent");
    }
    let r = app.get("/api/v1/conversations/c1/messages?limit=2").await;
    let page = r.assert_status(200);
    assert_eq!(page["cached"], true);
    let ids: Vec<&str> = page["messages"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["future1", "m3"]);
    let r = app.get("/api/v1/conversations/c1/messages?limit=10&before=m3").await;
    assert_eq!(r.assert_status(200)["messages"].as_array().unwrap().len(), 2);

    let r = app.patch("/api/v1/conversations/c1/messages/m1", json!({"content": "edited"})).await;
    let edited = r.assert_status(200);
    assert_eq!(edited["content"], "edited");
    assert!(edited["edited_at"].as_str().unwrap().ends_with('Z'));
    let r = app.patch("/api/v1/conversations/c1/messages/unknown", json!({"content": "x"})).await;
    assert_eq!(r.status.as_u16(), 204);
    assert_eq!(app.delete("/api/v1/conversations/c1/messages/m1").await.status.as_u16(), 204);
    let r = app.get("/api/v1/conversations/c1/messages?limit=100").await;
    let deleted = r.assert_status(200)["messages"].as_array().unwrap().iter().find(|m| m["id"] == "m1").cloned();
    assert_eq!(deleted.unwrap()["deleted"], true);
}

#[tokio::test]
async fn lists_unread_read_and_flags() {
    let app = TestApp::new();
    conversation(&app, "g1", &["alice", "bob"]).await;
    conversation(&app, "g2", &["alice", "bob"]).await;
    for (c, id) in [("g1", "a1"), ("g1", "a2"), ("g2", "b1")] {
        let body = json!({"id": id, "sender": "alice", "content": format!("msg {id}")});
        app.post(&format!("/api/v1/conversations/{c}/messages"), body).await.assert_status(200);
    }
    let r = app.get("/api/v1/users/bob/unread").await;
    assert_eq!(r.assert_status(200), &json!({"unread": 3, "muted_unread": 0}));
    let r = app.get("/api/v1/users/bob/conversations").await;
    let list = r.assert_status(200)["conversations"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2);
    let g1 = list.iter().find(|c| c["conversation_id"] == "g1").unwrap();
    assert_eq!((g1["last_message_preview"].as_str(), g1["unread"].as_u64()), (Some("msg a2"), Some(2)));

    let r = app.patch("/api/v1/users/bob/conversations/g1", json!({"pinned": true, "muted": true})).await;
    assert_eq!(r.assert_status(200)["pinned"], true);
    let r = app.get("/api/v1/users/bob/unread").await;
    assert_eq!(r.assert_status(200), &json!({"unread": 1, "muted_unread": 2}));
    let r = app.get("/api/v1/users/bob/conversations?filter=pinned&limit=1").await;
    let page = r.assert_status(200);
    assert_eq!(page["conversations"][0]["conversation_id"], "g1");
    assert!(page.get("next_cursor").is_none());
    let r = app.get("/api/v1/users/bob/conversations?limit=1").await;
    let cursor = r.assert_status(200)["next_cursor"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/api/v1/users/bob/conversations?limit=1&cursor={cursor}")).await;
    assert_eq!(r.assert_status(200)["conversations"][0]["conversation_id"], "g2");

    let r = app
        .post("/api/v1/users/bob/conversations/g1/read", json!({"message_id": "a2", "source_device": "phone"}))
        .await;
    assert_eq!(r.assert_status(200)["cleared"], 2);
    let r = app.get("/api/v1/users/bob/unread").await;
    assert_eq!(r.assert_status(200), &json!({"unread": 1, "muted_unread": 0}));
    let r = app.get("/api/v1/users/bob/conversations?filter=unread").await;
    assert_eq!(r.assert_status(200)["conversations"].as_array().unwrap().len(), 1);

    assert_eq!(app.delete("/api/v1/users/bob/conversations/g2").await.status.as_u16(), 204);
    app.delete("/api/v1/users/bob/conversations/g2").await.assert_error(404, "not_found");
    app.patch("/api/v1/users/bob/conversations/g2", json!({"pinned": true})).await.assert_error(404, "not_found");
    let r = app.get("/api/v1/users/bob/unread").await;
    assert_eq!(r.assert_status(200), &json!({"unread": 0, "muted_unread": 0}));
}

#[tokio::test]
async fn bad_message_input_is_4xx() {
    let app = TestApp::new();
    conversation(&app, "c", &["alice", "bob"]).await;
    let post = |body: serde_json::Value| {
        let app = &app;
        async move { app.post("/api/v1/conversations/c/messages", body).await }
    };
    post(json!({"id": "m1", "sender": "mallory", "content": "hi"})).await.assert_error(403, "permission_denied");
    let big = "x".repeat(17 * 1024);
    let r = post(json!({"id": "m1", "sender": "alice", "content": big})).await;
    assert!(r.assert_error(413, "payload_too_large").contains("16384"));
    for body in [
        json!({"id": "a b", "sender": "alice", "content": "hi"}),
        json!({"id": "m1", "sender": "a/b", "content": "hi"}),
        json!({"id": "m1", "sender": "alice"}),
        json!({"id": "m1", "sender": "alice", "content": "hi", "extra": 1}),
        json!({"id": "m1", "sender": "alice", "content": "hi", "created_at": "yesterday"}),
        json!([]),
    ] {
        let r = post(body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r =
        app.post("/api/v1/conversations/nope/messages", json!({"id": "m1", "sender": "alice", "content": "x"})).await;
    r.assert_error(404, "not_found");
    let r =
        app.post("/api/v1/conversations/a%20b/messages", json!({"id": "m1", "sender": "alice", "content": "x"})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("conversation_id"));
    for path in [
        "/api/v1/conversations/c/messages?limit=0",
        "/api/v1/conversations/c/messages?limit=101",
        "/api/v1/conversations/c/messages?limit=x",
        "/api/v1/conversations/c/messages?before=a%20b",
        "/api/v1/conversations/c/messages?other=1",
        "/api/v1/users/a%20b/conversations",
        "/api/v1/users/bob/conversations?filter=nope",
        "/api/v1/users/bob/conversations?cursor=x",
        "/api/v1/users/bob/conversations?limit=0",
        "/api/v1/users/a%20b/unread",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.text);
    }
    let r = app.patch("/api/v1/conversations/c/messages/a%20b", json!({"content": "x"})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("message_id"));
    app.patch("/api/v1/conversations/c/messages/m1", json!({"content": "x".repeat(17 * 1024)}))
        .await
        .assert_error(413, "payload_too_large");
    app.patch("/api/v1/users/bob/conversations/c", json!({"pinned": "yes"}))
        .await
        .assert_error(400, "invalid_argument");
    app.post("/api/v1/users/mallory/conversations/c/read", json!({"message_id": "m1"}))
        .await
        .assert_error(403, "permission_denied");
    app.post("/api/v1/users/bob/conversations/c/read", json!({})).await.assert_error(400, "invalid_argument");
    let too_many: Vec<serde_json::Value> =
        (0..1001).map(|i| json!({"id": format!("m{i}"), "sender": "bob", "content": "x"})).collect();
    app.put("/api/v1/conversations/c/messages", json!({"messages": too_many}))
        .await
        .assert_error(400, "invalid_argument");
}

/// One entry of a user's list by id, and clearing a conversation's message cache.
#[tokio::test]
async fn one_entry_and_clearing_the_cache() {
    let app = TestApp::new();
    conversation(&app, "c9", &["alice", "bob"]).await;
    let body = json!({"id": "m1", "sender": "alice", "content": "hi"});
    app.post("/api/v1/conversations/c9/messages", body).await.assert_status(200);
    let entry = app.get("/api/v1/users/bob/conversations/c9").await;
    let entry = entry.assert_status(200);
    assert_eq!((entry["conversation_id"].clone(), entry["unread"].clone()), (json!("c9"), json!(1)));
    app.get("/api/v1/users/carol/conversations/c9").await.assert_error(404, "not_found");

    assert_eq!(app.delete("/api/v1/conversations/c9/messages").await.status.as_u16(), 204);
    let r = app.get("/api/v1/conversations/c9/messages").await;
    assert_eq!(r.assert_status(200)["cached"], false, "the next read fills from the database");
    app.delete("/api/v1/conversations/c9/messages").await.assert_error(404, "not_found");
    assert_eq!(app.get("/api/v1/users/bob/conversations/c9").await.assert_status(200)["unread"], 1, "lists untouched");

    // Delivery receipts from a backend's own socket layer.
    let body = json!({"id": "m2", "sender": "alice", "content": "again"});
    app.post("/api/v1/conversations/c9/messages", body).await.assert_status(200);
    let receipt = json!({"user_id": "bob", "message_ids": ["m2", "nope"]});
    let r = app.post("/api/v1/conversations/c9/delivered", receipt.clone()).await;
    assert_eq!(r.assert_status(200), &json!({"message_ids": ["m2"], "status": "delivered"}));
    let r = app.post("/api/v1/conversations/c9/delivered", receipt).await;
    assert_eq!(r.assert_status(200)["message_ids"], json!([]), "never twice");
    let recent = app.get("/api/v1/conversations/c9/messages").await;
    assert_eq!(recent.assert_status(200)["messages"][0]["status"], "delivered");
    let outsider = json!({"user_id": "carol", "message_ids": ["m2"]});
    app.post("/api/v1/conversations/c9/delivered", outsider).await.assert_error(403, "permission_denied");
    let empty = json!({"user_id": "bob", "message_ids": []});
    app.post("/api/v1/conversations/c9/delivered", empty).await.assert_error(400, "invalid_argument");
}

/// A user's list imported from the app's database: `loaded` tells "never loaded" from "no
/// conversations"; an entry's unread count can be repaired; bad bodies are 400 and write nothing.
#[tokio::test]
async fn import_a_list_and_repair_a_counter() {
    let app = TestApp::new();
    let r = app.get("/api/v1/users/zoe/conversations").await;
    assert_eq!(r.assert_status(200)["loaded"], false);
    let entries = json!({"conversations": [
        {"conversation_id": "c1", "last_message_at": "2026-01-01T10:00:00Z", "unread": 3,
         "last_message_preview": "see you", "name": "Ana", "type": "direct"},
        {"conversation_id": "c2", "last_message_at": "2026-01-02T10:00:00Z", "muted": true, "unread": 1},
    ]});
    let r = app.put("/api/v1/users/zoe/conversations", entries).await;
    assert_eq!(r.assert_status(200), &json!({"added": 2, "totals": {"unread": 3, "muted_unread": 1}}));
    let page = app.get("/api/v1/users/zoe/conversations").await;
    let page = page.assert_status(200);
    assert_eq!(page["loaded"], true);
    assert_eq!(page["conversations"][1]["name"], "Ana");
    assert_eq!(page["conversations"][1]["type"], "direct");
    let r = app.put("/api/v1/users/zoe/conversations/c1/unread", json!({"unread": 0})).await;
    assert_eq!(r.assert_status(200)["totals"], json!({"unread": 0, "muted_unread": 1}));
    app.put("/api/v1/users/zoe/conversations/nope/unread", json!({"unread": 1})).await.assert_error(404, "not_found");
    app.put("/api/v1/users/zoe/conversations/c1/unread", json!({"unread": -1}))
        .await
        .assert_error(400, "invalid_argument");
    let twice = json!({"conversations": [
        {"conversation_id": "d", "last_message_at": "2026-01-01T10:00:00Z"},
        {"conversation_id": "d", "last_message_at": "2026-01-01T10:00:00Z"},
    ]});
    app.put("/api/v1/users/yan/conversations", twice).await.assert_error(400, "invalid_argument");
    let unknown =
        json!({"conversations": [{"conversation_id": "d", "last_message_at": "2026-01-01T10:00:00Z", "colour": 1}]});
    app.put("/api/v1/users/yan/conversations", unknown).await.assert_error(400, "invalid_argument");
    assert_eq!(app.get("/api/v1/users/yan/conversations").await.assert_status(200)["loaded"], false, "nothing written");
}
