//! Presence, status, bulk queries, online users and contacts.

use serde_json::{Value, json};

use crate::common::TestApp;

async fn heartbeat(app: &TestApp, user: &str, device: &str) {
    let path = format!("/api/v1/users/{user}/devices/{device}/heartbeat");
    app.post(&path, json!({"ttl_seconds": 60})).await.assert_status(200);
}

#[tokio::test]
async fn presence_status_query_and_online() {
    let app = TestApp::new();
    let r = app.get("/api/v1/users/alice/presence").await;
    let body = r.assert_status(200);
    assert_eq!(body["online"], false);
    assert_eq!(body["status"], "offline");

    heartbeat(&app, "alice", "phone").await;
    heartbeat(&app, "bob", "web").await;
    let r = app.put("/api/v1/users/alice/presence/status", json!({"status": "away", "text": "lunch"})).await;
    let body = r.assert_status(200);
    assert_eq!(body["status"], "away");
    assert_eq!(body["status_text"], "lunch");

    // The backend's view is full, even for an invisible user.
    let r = app.put("/api/v1/users/bob/presence/status", json!({"status": "busy", "invisible": true})).await;
    assert_eq!(r.assert_status(200)["invisible"], true);
    let r = app.get("/api/v1/users/bob/presence").await;
    let body = r.assert_status(200);
    assert_eq!((body["online"].clone(), body["invisible"].clone()), (json!(true), json!(true)));
    assert_eq!(body["devices"][0]["device_id"], "web");

    let r = app.post("/api/v1/presence/query", json!({"user_ids": ["bob", "carol", "alice"]})).await;
    let presences = r.assert_status(200)["presences"].as_array().unwrap().clone();
    let users: Vec<&str> = presences.iter().map(|p| p["user_id"].as_str().unwrap()).collect();
    assert_eq!(users, ["bob", "carol", "alice"]);
    assert_eq!(presences[1]["online"], false);

    let r = app.get("/api/v1/presence/online").await;
    assert_eq!(r.assert_status(200), &json!({"users": ["alice", "bob"]}));
    let r = app.get("/api/v1/presence/online?limit=1").await;
    let page = r.assert_status(200).clone();
    assert_eq!(page["users"], json!(["alice"]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let r = app.get(&format!("/api/v1/presence/online?limit=1&cursor={cursor}")).await;
    assert_eq!(r.assert_status(200)["users"], json!(["bob"]));
    assert_eq!(app.get("/api/v1/presence/online/count").await.assert_status(200), &json!({"count": 2}));
}

#[tokio::test]
async fn bad_presence_input_is_400() {
    let app = TestApp::new();
    let cases = [
        json!({"status": "offline"}),
        json!({"status": "sleeping"}),
        json!({"status": "away", "text": "x".repeat(129)}),
        json!({"status": "away", "mood": "ok"}),
        json!({}),
    ];
    for body in cases {
        let r = app.put("/api/v1/users/a/presence/status", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r = app.get("/api/v1/users/a%20b/presence").await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));

    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let r = app.post("/api/v1/presence/query", json!({"user_ids": many})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_ids"));
    let r = app.post("/api/v1/presence/query", json!({"user_ids": ["ok", "not ok"]})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_ids"));
    app.post("/api/v1/presence/query", json!({"users": []})).await.assert_error(400, "invalid_argument");

    for query in ["limit=0", "limit=1001", "limit=x", "cursor=a%20b", "page=2"] {
        let r = app.get(&format!("/api/v1/presence/online?{query}")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
    }
}

fn sorted(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v.as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn contacts_set_get_add_remove() {
    let app = TestApp::new();
    let r = app.put("/api/v1/users/alice/contacts", json!({"contacts": ["bob", "carol"], "ttl_seconds": 3600})).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    let r = app.get("/api/v1/users/alice/contacts").await;
    assert_eq!(sorted(&r.assert_status(200)["contacts"]), ["bob", "carol"]);

    let r = app.post("/api/v1/users/alice/contacts/add", json!({"contacts": ["dave", "bob"]})).await;
    assert_eq!(r.assert_status(200), &json!({"changed": 1}));
    let r = app.post("/api/v1/users/alice/contacts/remove", json!({"contacts": ["carol", "zed"]})).await;
    assert_eq!(r.assert_status(200), &json!({"changed": 1}));
    let r = app.get("/api/v1/users/alice/contacts").await;
    assert_eq!(sorted(&r.assert_status(200)["contacts"]), ["bob", "dave"]);

    let r = app.put("/api/v1/users/alice/contacts", json!({"contacts": []})).await;
    assert_eq!(r.status.as_u16(), 204, "{}", r.text);
    assert_eq!(app.get("/api/v1/users/alice/contacts").await.assert_status(200), &json!({"contacts": []}));
}

#[tokio::test]
async fn bad_contacts_input_is_400() {
    let app = TestApp::new();
    let many: Vec<String> = (0..1001).map(|i| format!("u{i}")).collect();
    let cases = [
        ("PUT", "", json!({"contacts": ["b"], "ttl_seconds": 0})),
        ("PUT", "", json!({"contacts": ["b c"]})),
        ("PUT", "", json!({"contacts": ["b"], "extra": 1})),
        ("PUT", "", json!({"friends": ["b"]})),
        ("POST", "/add", json!({"contacts": many})),
        ("POST", "/remove", json!({"contacts": many})),
        ("POST", "/add", json!({"contacts": "b"})),
        ("POST", "/remove", json!({"contacts": [], "ttl_seconds": 5})),
    ];
    for (method, suffix, body) in cases {
        let path = format!("/api/v1/users/alice/contacts{suffix}");
        let r = app.call(method.parse().unwrap(), &path, Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), 400, "{method} {path} {body}: {}", r.text);
        assert_eq!(r.json["error"]["code"], "invalid_argument");
    }
    let r = app.get("/api/v1/users/%FF/contacts").await;
    r.assert_error(400, "invalid_argument");
}
