//! Conversations, their members, and typing (members only).

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn put_get_members_delete() {
    let app = TestApp::new();
    let spec = json!({"type": "group", "name": "Hikers", "avatar_url": "https://x.test/a.png",
                      "members": ["bob", "alice", "bob"]});
    let r = app.put("/api/v1/conversations/c-1", spec).await;
    let conversation = r.assert_status(200).clone();
    assert_eq!(conversation["id"], "c-1");
    assert_eq!(conversation["type"], "group");
    assert_eq!(conversation["name"], "Hikers");
    assert_eq!(conversation["members"], json!(["alice", "bob"]));
    assert!(conversation["created_at"].as_str().unwrap().ends_with('Z'));

    assert_eq!(app.get("/api/v1/conversations/c-1").await.assert_status(200), &conversation);

    let r = app.post("/api/v1/conversations/c-1/members", json!({"add": ["carol"], "remove": ["alice"]})).await;
    assert_eq!(r.assert_status(200)["members"], json!(["bob", "carol"]));
    let r = app.post("/api/v1/conversations/c-1/members", json!({})).await;
    assert_eq!(r.assert_status(200)["members"], json!(["bob", "carol"]));

    assert_eq!(app.delete("/api/v1/conversations/c-1").await.status.as_u16(), 204);
    app.get("/api/v1/conversations/c-1").await.assert_error(404, "not_found");
    app.delete("/api/v1/conversations/c-1").await.assert_error(404, "not_found");
    app.post("/api/v1/conversations/c-1/members", json!({"add": ["x"]})).await.assert_error(404, "not_found");

    let r = app.put("/api/v1/conversations/dm", json!({"type": "direct", "members": ["a", "b"]})).await;
    assert_eq!(r.assert_status(200)["type"], "direct");
}

#[tokio::test]
async fn bad_conversation_input_is_4xx() {
    let app = TestApp::new();
    let r = app.get("/api/v1/conversations/a%20b").await;
    assert!(r.assert_error(400, "invalid_argument").contains("conversation_id"));
    let r = app.put(&format!("/api/v1/conversations/{}", "x".repeat(129)), json!({})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("conversation_id"));

    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let cases = [
        json!({"type": "direct", "members": ["a", "b", "c"]}),
        json!({"type": "channel"}),
        json!({"members": ["a b"]}),
        json!({"name": "x".repeat(300)}),
        json!({"members": [], "topic": "x"}),
        json!({"kind": "group"}),
    ];
    for body in cases {
        let r = app.put("/api/v1/conversations/c", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    app.put("/api/v1/conversations/c", json!({"members": ["a"]})).await.assert_status(200);
    for body in [json!({"add": many}), json!({"remove": many}), json!({"add": ["a b"]}), json!({"add": [], "x": 1})] {
        let r = app.post("/api/v1/conversations/c/members", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    }
}

#[tokio::test]
async fn typing_is_for_members_only() {
    let app = TestApp::new();
    app.put("/api/v1/conversations/room", json!({"members": ["alice", "bob"]})).await.assert_status(200);

    let r = app.post("/api/v1/conversations/room/typing", json!({"user_id": "alice", "typing": true})).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let r = app.get("/api/v1/conversations/room/typing").await;
    assert_eq!(r.assert_status(200), &json!({"user_ids": ["alice"]}));

    let r = app.post("/api/v1/conversations/room/typing", json!({"user_id": "mallory", "typing": true})).await;
    r.assert_error(403, "permission_denied");
    let r = app.post("/api/v1/conversations/nowhere/typing", json!({"user_id": "alice", "typing": true})).await;
    r.assert_error(403, "permission_denied");

    let r = app.post("/api/v1/conversations/room/typing", json!({"user_id": "alice", "typing": false})).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_eq!(app.get("/api/v1/conversations/room/typing").await.assert_status(200), &json!({"user_ids": []}));

    for body in [
        json!({"user_id": "alice"}),
        json!({"user_id": "a b", "typing": true}),
        json!({"user_id": "alice", "typing": "yes"}),
        json!({"user_id": "alice", "typing": true, "device_id": "d"}),
    ] {
        let r = app.post("/api/v1/conversations/room/typing", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r = app.get("/api/v1/conversations/a%2Fb/typing").await;
    assert!(r.assert_error(400, "invalid_argument").contains("conversation_id"));
}
