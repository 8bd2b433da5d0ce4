//! Notifications: create (201/200), list with paging and unread count, get, read, dismiss,
//! read-all, and the `notification.*` events on the user's channel.

use serde_json::{Value, json};
use switchboard_core::{ChannelName, UserId};

use crate::common::TestApp;

fn note(id: &str) -> Value {
    json!({"id": id, "app_name": "shop", "title": format!("Title {id}"), "body": "Hi", "data": {"order": 7},
           "priority": "high", "collapse_key": "orders"})
}

async fn events(app: &TestApp, user: &str) -> Vec<Value> {
    let channel = ChannelName::user(&UserId::new(user).unwrap());
    let read = app.sb.streams().history(&channel, 100).await.unwrap();
    read.publications.into_iter().map(|p| json!({"data": p.data, "exclude": p.exclude_device})).collect()
}

#[tokio::test]
async fn create_list_read_dismiss_read_all() {
    let app = TestApp::new();
    let r = app.post("/api/v1/users/alice/notifications", note("n1")).await;
    let created = r.assert_status(201).clone();
    assert_eq!(created["id"], "n1");
    assert_eq!(created["priority"], "high");
    assert_eq!(created["data"], json!({"order": 7}));
    assert_eq!((created["read"].clone(), created["dismissed"].clone()), (json!(false), json!(false)));
    // The same id again: 200 with the stored one.
    let r = app.post("/api/v1/users/alice/notifications", json!({"id": "n1", "title": "other"})).await;
    assert_eq!(r.assert_status(200), &created);
    for id in ["n2", "n3"] {
        app.post("/api/v1/users/alice/notifications", json!({"id": id, "title": "t"})).await.assert_status(201);
    }

    let r = app.get("/api/v1/users/alice/notifications?limit=2").await;
    let page = r.assert_status(200).clone();
    let ids: Vec<&str> = page["notifications"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["n3", "n2"]);
    assert_eq!(page["unread"], 3);
    let cursor = page["next_cursor"].as_str().unwrap();
    let r = app.get(&format!("/api/v1/users/alice/notifications?limit=2&cursor={cursor}")).await;
    let rest = r.assert_status(200);
    assert_eq!(rest["notifications"][0]["id"], "n1");
    assert!(rest.get("next_cursor").is_none());

    let r = app.post("/api/v1/users/alice/notifications/n1/read", json!({"source_device": "phone"})).await;
    let answer = r.assert_status(200);
    assert_eq!(answer["changed"], true);
    assert_eq!(answer["status"]["read"], true);
    let r = app.call(axum::http::Method::POST, "/api/v1/users/alice/notifications/n1/read", None).await;
    assert_eq!(r.assert_status(200)["changed"], false, "a second read changes nothing");
    let r = app.post("/api/v1/users/alice/notifications/n2/dismiss", json!({})).await;
    assert_eq!(r.assert_status(200)["status"]["dismissed"], true);
    assert_eq!(app.delete("/api/v1/users/alice/notifications/n3?source_device=tablet").await.status.as_u16(), 204);
    assert_eq!(app.get("/api/v1/users/alice/notifications/unread-count").await.assert_status(200)["unread"], 0);
    let r = app.get("/api/v1/users/alice/notifications/n3").await;
    assert_eq!(r.assert_status(200)["dismissed"], true);

    let r = app.post("/api/v1/users/alice/notifications/read-all", json!({"source_device": "phone"})).await;
    let changes = r.assert_status(200)["changes"].as_array().unwrap().clone();
    let changed: Vec<&str> = changes.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(changed, ["n3", "n2"], "the dismissed ones were not read yet");
    let r = app.call(axum::http::Method::POST, "/api/v1/users/alice/notifications/read-all", None).await;
    assert_eq!(r.assert_status(200)["changes"], json!([]));
    let r = app.get("/api/v1/users/alice/notifications?unread_only=true").await;
    assert_eq!(r.assert_status(200)["notifications"], json!([]));

    let seen = events(&app, "alice").await;
    let kinds: Vec<&str> = seen.iter().map(|e| e["data"]["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "notification.new",
            "notification.new",
            "notification.new",
            "notification.updated",
            "notification.updated",
            "notification.updated",
            "notification.updated",
            "notification.updated",
        ]
    );
    assert_eq!(
        seen[3]["data"]["data"],
        json!({"id": "n1", "read": true, "dismissed": false,
                                                "updated_at": seen[3]["data"]["data"]["updated_at"]})
    );
    assert_eq!(seen[3]["exclude"], "phone");
    assert_eq!(seen[5]["exclude"], "tablet");

    // Unread again, then read again.
    let r = app.post("/api/v1/users/alice/notifications/n1/unread", json!({"source_device": "phone"})).await;
    let answer = r.assert_status(200);
    assert_eq!((answer["changed"].clone(), answer["status"]["read"].clone()), (json!(true), json!(false)));
    assert_eq!(app.get("/api/v1/users/alice/notifications/unread-count").await.assert_status(200)["unread"], 1);
    let r = app.call(axum::http::Method::POST, "/api/v1/users/alice/notifications/n1/unread", None).await;
    assert_eq!(r.assert_status(200)["changed"], false);
    app.post("/api/v1/users/alice/notifications/nope/unread", json!({})).await.assert_error(404, "not_found");
    app.post("/api/v1/users/alice/notifications/n1/read", json!({})).await.assert_status(200);
}

#[tokio::test]
async fn unknown_notifications_are_404() {
    let app = TestApp::new();
    app.get("/api/v1/users/bob/notifications/nope").await.assert_error(404, "not_found");
    app.post("/api/v1/users/bob/notifications/nope/read", json!({})).await.assert_error(404, "not_found");
    app.post("/api/v1/users/bob/notifications/nope/dismiss", json!({})).await.assert_error(404, "not_found");
    app.delete("/api/v1/users/bob/notifications/nope").await.assert_error(404, "not_found");
    let r = app.get("/api/v1/users/bob/notifications").await;
    assert_eq!(r.assert_status(200), &json!({"notifications": [], "unread": 0}));
}

#[tokio::test]
async fn bad_notification_input_is_4xx() {
    let app = TestApp::new();
    let big = "x".repeat(5000);
    let cases = [
        json!({"title": "no id"}),
        json!({"id": "a b", "title": "t"}),
        json!({"id": "n", "title": "t", "priority": "urgent"}),
        json!({"id": "n", "title": "x".repeat(300)}),
        json!({"id": "n", "title": "t", "body": big}),
        json!({"id": "n", "title": "t", "extra": 1}),
        json!({"id": "n", "title": "t", "collapse_key": "k".repeat(300)}),
        json!({"id": "n"}),
    ];
    for body in cases {
        let r = app.post("/api/v1/users/u/notifications", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r = app.post("/api/v1/users/u/notifications", json!({"id": "n", "title": "t", "data": {"x": big}})).await;
    r.assert_error(413, "payload_too_large");
    let r = app.post("/api/v1/users/a%20b/notifications", note("n")).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    let r = app.get(&format!("/api/v1/users/u/notifications/{}", "x".repeat(129))).await;
    assert!(r.assert_error(400, "invalid_argument").contains("notification_id"));
    for query in ["limit=0", "limit=1001", "limit=x", "cursor=abc", "cursor=", "unread_only=maybe", "other=1"] {
        let r = app.get(&format!("/api/v1/users/u/notifications?{query}")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
    }
    app.post("/api/v1/users/u/notifications", note("n")).await.assert_status(201);
    for body in [json!({"source_device": "a b"}), json!({"device": "x"}), json!([1])] {
        let r = app.post("/api/v1/users/u/notifications/n/read", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        let r = app.post("/api/v1/users/u/notifications/read-all", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r = app.raw(axum::http::Method::POST, "/api/v1/users/u/notifications/n/dismiss", "application/json", "{").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    let r = app.delete("/api/v1/users/u/notifications/n?source_device=a%20b").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
}
