//! Publish, broadcast, history (newest and since a position), channel presence.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn publish_then_history_returns_it() {
    let app = TestApp::new();
    let event = json!({"type": "message.new", "data": {"text": "hi"}});
    let r = app.post("/api/v1/publish", json!({"channel": "chat:general", "data": event})).await;
    let position = r.assert_status(200).clone();
    assert_eq!(position["offset"], 1);
    let epoch = position["epoch"].as_str().unwrap().to_owned();
    let second = json!({"channel": "chat:general", "data": {"type": "message.new"}, "exclude_device": "d1"});
    assert_eq!(app.post("/api/v1/publish", second).await.assert_status(200)["offset"], 2);

    let r = app.get("/api/v1/channels/chat:general/history").await;
    let read = r.assert_status(200);
    assert_eq!(read["recovered"], true);
    assert_eq!(read["position"], json!({"epoch": epoch, "offset": 2}));
    let publications = read["publications"].as_array().unwrap();
    assert_eq!(publications.len(), 2);
    assert_eq!(publications[0]["offset"], 1);
    assert_eq!(publications[0]["data"], event);
    assert!(publications[0]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(publications[1]["exclude_device"], "d1");

    let r = app.get("/api/v1/channels/chat:general/history?limit=1").await;
    assert_eq!(r.assert_status(200)["publications"][0]["offset"], 2);

    // Since a position: what came after it.
    let r = app.get(&format!("/api/v1/channels/chat:general/history?since_offset=1&since_epoch={epoch}")).await;
    let read = r.assert_status(200);
    assert_eq!(read["recovered"], true);
    assert_eq!(read["publications"].as_array().unwrap().len(), 1);
    assert_eq!(read["publications"][0]["offset"], 2);

    // A position of another epoch is not recoverable: 200 with `recovered: false`.
    let r = app.get("/api/v1/channels/chat:general/history?since_offset=1&since_epoch=0123456789abcdef").await;
    assert_eq!(r.assert_status(200)["recovered"], false);

    // A channel never published to.
    let r = app.get("/api/v1/channels/user:nobody/history").await;
    let read = r.assert_status(200);
    assert_eq!(read["publications"], json!([]));
    assert_eq!(read["position"]["offset"], 0);
}

#[tokio::test]
async fn broadcast_reports_each_channel() {
    let app = TestApp::new();
    app.post("/api/v1/publish", json!({"channel": "user:bob", "data": {}})).await.assert_status(200);
    let body = json!({"channels": ["user:alice", "user:bob", "chat:room"], "data": {"type": "promo"},
                      "only_devices": ["phone"]});
    let r = app.post("/api/v1/broadcast", body).await;
    let results = r.assert_status(200)["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 3);
    let got: Vec<(&str, u64)> =
        results.iter().map(|r| (r["channel"].as_str().unwrap(), r["offset"].as_u64().unwrap())).collect();
    assert_eq!(got, [("user:alice", 1), ("user:bob", 2), ("chat:room", 1)]);
    assert!(results.iter().all(|r| r["epoch"].is_string() && r.get("error").is_none()));

    let r = app.get("/api/v1/channels/user:bob/history").await;
    assert_eq!(r.assert_status(200)["publications"][1]["only_devices"], json!(["phone"]));
}

#[tokio::test]
async fn bad_publish_and_broadcast_input_is_4xx() {
    let app = TestApp::new();
    let cases = [
        json!({"channel": "foo:bar", "data": {}}),
        json!({"channel": "general", "data": {}}),
        json!({"channel": "chat:a b", "data": {}}),
        json!({"channel": "chat:a", "data": {}, "exclude_device": "a/b"}),
        json!({"channel": "chat:a", "data": {}, "only_devices": ["ok", ""]}),
        json!({"channel": "chat:a"}),
        json!({"channel": "chat:a", "data": {}, "ttl": 1}),
        json!({"channel": "user:a", "data": {"type": "_switchboard.disconnect", "data": {}}}),
    ];
    for body in cases {
        let r = app.post("/api/v1/publish", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["code"], "invalid_argument", "{body}");
    }
    let r = app.post("/api/v1/publish", json!({"channel": "foo:bar", "data": {}})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("channel") && message.contains("namespace"), "{message}");

    let big = json!({"type": "x", "data": {"blob": "x".repeat(33 * 1024)}});
    let r = app.post("/api/v1/publish", json!({"channel": "chat:a", "data": big})).await;
    assert!(r.assert_error(413, "payload_too_large").contains("data"));
    let r = app.post("/api/v1/broadcast", json!({"channels": ["chat:a", "chat:b"], "data": big})).await;
    r.assert_error(413, "payload_too_large");
    // Nothing was published.
    let r = app.get("/api/v1/channels/chat:a/history").await;
    assert_eq!(r.assert_status(200)["position"]["offset"], 0);

    let many: Vec<String> = (0..1001).map(|i| format!("user:u{i}")).collect();
    let cases = [
        json!({"channels": [], "data": {}}),
        json!({"channels": many, "data": {}}),
        json!({"channels": ["chat:a", "nope:b"], "data": {}}),
        json!({"channel": "chat:a", "data": {}}),
        json!({"channels": ["chat:a"], "data": {}, "extra": true}),
        json!({"channels": ["chat:a"], "data": {"type": "_switchboard.x"}}),
    ];
    for body in cases {
        let r = app.post("/api/v1/broadcast", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{}: {}", body.to_string().chars().take(80).collect::<String>(), r.text);
    }
    let r = app.post("/api/v1/broadcast", json!({"channels": [], "data": {}})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("channels"));
}

/// A broadcast to an audience: the `user:` channels of a user's contacts, or of a conversation's
/// members without the sender; exactly one target; an unknown conversation is 404.
#[tokio::test]
async fn broadcast_to_contacts_and_to_members_but_the_sender() {
    let app = TestApp::new();
    assert_eq!(app.put("/api/v1/users/ann/contacts", json!({"contacts": ["bob", "cy"]})).await.status.as_u16(), 204);
    let data = json!({"type": "story.posted", "data": {"by": "ann"}});
    let r = app.post("/api/v1/broadcast", json!({"contacts_of": "ann", "data": data})).await;
    let channels: Vec<_> =
        r.assert_status(200)["results"].as_array().unwrap().iter().map(|r| r["channel"].clone()).collect();
    assert_eq!(channels, [json!("user:bob"), json!("user:cy")]);
    let history = app.get("/api/v1/channels/user:cy/history").await;
    assert_eq!(history.assert_status(200)["publications"][0]["data"], data);

    app.put("/api/v1/conversations/g", json!({"members": ["ann", "bob", "dee"]})).await.assert_status(200);
    let body = json!({"members_of": "g", "except_users": ["ann"], "data": data});
    let r = app.post("/api/v1/broadcast", body).await;
    let channels: Vec<_> =
        r.assert_status(200)["results"].as_array().unwrap().iter().map(|r| r["channel"].clone()).collect();
    assert_eq!(channels, [json!("user:bob"), json!("user:dee")]);
    let r = app.get("/api/v1/channels/user:ann/history").await;
    assert_eq!(r.assert_status(200)["publications"], json!([]), "the sender is left out");

    let missing = json!({"members_of": "nope", "data": data});
    app.post("/api/v1/broadcast", missing).await.assert_error(404, "not_found");
    let both = json!({"members_of": "g", "contacts_of": "ann", "data": data});
    app.post("/api/v1/broadcast", both).await.assert_error(400, "invalid_argument");
    let stray = json!({"channels": ["user:bob"], "except_users": ["ann"], "data": data});
    app.post("/api/v1/broadcast", stray).await.assert_error(400, "invalid_argument");
}

#[tokio::test]
async fn bad_history_input_is_400() {
    let app = TestApp::new();
    for path in [
        "/api/v1/channels/foo:bar/history",
        "/api/v1/channels/chat/history",
        "/api/v1/channels/chat:a%20b/history",
        "/api/v1/channels/chat:a/history?limit=0",
        "/api/v1/channels/chat:a/history?limit=1001",
        "/api/v1/channels/chat:a/history?since_offset=1",
        "/api/v1/channels/chat:a/history?since_epoch=abc",
        "/api/v1/channels/chat:a/history?since_offset=-1&since_epoch=abc",
        "/api/v1/channels/chat:a/history?since_offset=1&since_epoch=abc&before=2",
    ] {
        let r = app.get(path).await;
        assert_eq!(r.status.as_u16(), 400, "{path}: {}", r.text);
        assert_eq!(r.json["error"]["code"], "invalid_argument", "{path}");
    }
    let long_epoch = "e".repeat(65);
    let r = app.get(&format!("/api/v1/channels/chat:a/history?since_offset=1&since_epoch={long_epoch}")).await;
    assert!(r.assert_error(400, "invalid_argument").contains("epoch"));
    let r = app.get(&format!("/api/v1/channels/chat:{}/history", "x".repeat(200))).await;
    assert!(r.assert_error(400, "invalid_argument").contains("channel"));
}

#[tokio::test]
async fn channel_presence_lists_online_visible_members() {
    let app = TestApp::new();
    let spec = json!({"members": ["alice", "bob", "carol", "dave"]});
    app.put("/api/v1/conversations/room", spec).await.assert_status(200);
    for (user, device) in [("alice", "phone"), ("bob", "web"), ("erin", "web")] {
        let path = format!("/api/v1/users/{user}/devices/{device}/heartbeat");
        app.post(&path, json!({})).await.assert_status(200);
    }
    app.put("/api/v1/users/bob/presence/status", json!({"status": "online", "invisible": true}))
        .await
        .assert_status(200);

    let r = app.get("/api/v1/channels/chat:room/presence").await;
    let presence = r.assert_status(200)["presence"].as_array().unwrap().clone();
    assert_eq!(presence.len(), 1, "{presence:?}");
    assert_eq!(presence[0]["user_id"], "alice");
    assert_eq!(presence[0]["online"], true);

    let r = app.get("/api/v1/channels/user:alice/presence").await;
    assert!(r.assert_error(400, "invalid_argument").contains("chat:"));
    app.get("/api/v1/channels/presence:alice/presence").await.assert_error(400, "invalid_argument");
    app.get("/api/v1/channels/other:alice/presence").await.assert_error(400, "invalid_argument");
    app.get("/api/v1/channels/chat:missing/presence").await.assert_error(404, "not_found");
}
