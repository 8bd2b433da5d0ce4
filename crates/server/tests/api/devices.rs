//! Devices, heartbeats, and per-device pending/ack on the personal channel.

use serde_json::{Value, json};

use crate::common::TestApp;

#[tokio::test]
async fn register_list_heartbeat_remove() {
    let app = TestApp::new();
    let r = app
        .put(
            "/api/v1/users/alice/devices/phone-1",
            json!({"platform": "ios", "push_token": "apns-1", "app_version": "2.1", "meta": {"model": "x"}}),
        )
        .await;
    let device = r.assert_status(200);
    assert_eq!(device["user_id"], "alice");
    assert_eq!(device["device_id"], "phone-1");
    assert_eq!(device["platform"], "ios");
    assert_eq!(device["meta"], json!({"model": "x"}));
    app.put("/api/v1/users/alice/devices/web-1", json!({})).await.assert_status(200);

    let list = app.get("/api/v1/users/alice/devices").await;
    let mut ids: Vec<&str> = list.assert_status(200)["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["phone-1", "web-1"]);

    // No body: the default TTL.
    let r = app.call(axum::http::Method::POST, "/api/v1/users/alice/devices/phone-1/heartbeat", None).await;
    assert_eq!(r.assert_status(200), &json!({"online": true, "transition": "went_online"}));
    let r = app.post("/api/v1/users/alice/devices/phone-1/heartbeat", json!({"ttl_seconds": 60})).await;
    assert_eq!(r.assert_status(200), &json!({"online": true, "transition": "unchanged"}));
    let presence = app.get("/api/v1/users/alice/presence").await;
    assert_eq!(presence.assert_status(200)["online"], true);

    // Explicit offline: the device at once, the user after the grace period.
    let r = app.delete("/api/v1/users/alice/devices/phone-1/heartbeat").await;
    assert_eq!(r.assert_status(200), &json!({"transition": "maybe_offline"}));
    let presence = app.get("/api/v1/users/alice/presence").await;
    assert_eq!(presence.assert_status(200)["devices"][0]["online"], false);
    let r = app.delete("/api/v1/users/alice/devices/phone-1/heartbeat").await;
    assert_eq!(r.assert_status(200), &json!({"transition": "unchanged"}));

    assert_eq!(app.delete("/api/v1/users/alice/devices/web-1").await.status.as_u16(), 204);
    app.delete("/api/v1/users/alice/devices/web-1").await.assert_error(404, "not_found");
    let list = app.get("/api/v1/users/alice/devices").await;
    assert_eq!(list.assert_status(200)["devices"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_device_input_is_4xx() {
    let app = TestApp::new();
    let r = app.put("/api/v1/users/a%20b/devices/d", json!({})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    let r = app.put("/api/v1/users/a/devices/d%2F1", json!({})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("device_id"));
    let r = app.delete(&format!("/api/v1/users/a/devices/{}", "x".repeat(129))).await;
    assert!(r.assert_error(400, "invalid_argument").contains("device_id"));
    let r = app.put("/api/v1/users/a/devices/d", json!({"platform": "ios", "colour": 1})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("colour"));
    let r = app.put("/api/v1/users/a/devices/d", json!({"platform": "palm"})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("platform"));
    let r = app.put("/api/v1/users/a/devices/d", json!({"meta": {"blob": "x".repeat(5000)}})).await;
    assert!(r.assert_error(413, "payload_too_large").contains("meta"));
    let r = app.put("/api/v1/users/a/devices/d", json!({"push_token": "x".repeat(5000)})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("push_token"));

    for body in
        [json!({"ttl_seconds": 0}), json!({"ttl_seconds": 86_401}), json!({"ttl": 5}), json!({"ttl_seconds": -1})]
    {
        let r = app.post("/api/v1/users/a/devices/d/heartbeat", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r = app.raw(axum::http::Method::POST, "/api/v1/users/a/devices/d/heartbeat", "text/plain", "{}").await;
    r.assert_error(415, "invalid_argument");
}

fn offsets(pending: &Value) -> Vec<u64> {
    pending["publications"].as_array().unwrap().iter().map(|p| p["offset"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn pending_skips_excluded_devices_and_ack_moves_the_cursor() {
    let app = TestApp::new();
    for (i, exclude) in [None, Some("phone"), None].into_iter().enumerate() {
        let mut body = json!({"channel": "user:alice", "data": {"type": "note", "data": {"n": i}}});
        if let Some(device) = exclude {
            body["exclude_device"] = json!(device);
        }
        app.post("/api/v1/publish", body).await.assert_status(200);
    }
    let only = json!({"channel": "user:alice", "data": {"type": "note"}, "only_devices": ["laptop"]});
    app.post("/api/v1/publish", only).await.assert_status(200);

    let phone = app.get("/api/v1/users/alice/devices/phone/pending").await;
    let phone = phone.assert_status(200).clone();
    assert_eq!(offsets(&phone), [1, 3]);
    assert_eq!(phone["recovered"], true);
    assert_eq!(phone["position"]["offset"], 4);
    assert_eq!(phone["ack_position"]["offset"], 4, "skipped publications count as examined");

    let laptop = app.get("/api/v1/users/alice/devices/laptop/pending?limit=2").await;
    assert_eq!(offsets(laptop.assert_status(200)), [1, 2]);

    let ack = json!({"epoch": phone["ack_position"]["epoch"], "offset": 4});
    let r = app.post("/api/v1/users/alice/devices/phone/ack", ack).await;
    assert_eq!(r.assert_status(200)["position"], phone["ack_position"]);
    let again = app.get("/api/v1/users/alice/devices/phone/pending").await;
    assert_eq!(offsets(again.assert_status(200)), Vec::<u64>::new());

    // A lost epoch is ignored: no cursor in force.
    let r = app.post("/api/v1/users/alice/devices/laptop/ack", json!({"epoch": "0000", "offset": 1})).await;
    assert_eq!(r.assert_status(200)["position"], Value::Null);
}

#[tokio::test]
async fn bad_pending_and_ack_input_is_400() {
    let app = TestApp::new();
    for query in ["limit=0", "limit=1001", "limit=abc", "cursor=1"] {
        let r = app.get(&format!("/api/v1/users/a/devices/d/pending?{query}")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
    }
    let r = app.get("/api/v1/users/a/devices/d%20/pending").await;
    assert!(r.assert_error(400, "invalid_argument").contains("device_id"));
    app.post("/api/v1/publish", json!({"channel": "user:a", "data": {}})).await.assert_status(200);
    let epoch = app.get("/api/v1/channels/user:a/history").await.json["position"]["epoch"].clone();
    let cases = [
        json!({"epoch": epoch, "offset": 99}),
        json!({"epoch": epoch}),
        json!({"epoch": epoch, "offset": 1, "device": "d"}),
        json!({"epoch": "x".repeat(100), "offset": 1}),
        json!({"epoch": epoch, "offset": -1}),
    ];
    for body in cases {
        let r = app.post("/api/v1/users/a/devices/d/ack", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
}

/// A newly registered device's pending list starts now, unless it asks for the retained history.
#[tokio::test]
async fn a_registered_device_starts_pending_now_unless_asked() {
    let app = TestApp::new();
    for n in 0..2 {
        let body = json!({"channel": "user:zed", "data": {"type": "note", "data": {"n": n}}});
        app.post("/api/v1/publish", body).await.assert_status(200);
    }
    app.put("/api/v1/users/zed/devices/new-phone", json!({"platform": "ios"})).await.assert_status(200);
    app.put("/api/v1/users/zed/devices/old-phone", json!({"pending_from": "oldest"})).await.assert_status(200);
    app.post("/api/v1/publish", json!({"channel": "user:zed", "data": {"type": "note"}})).await.assert_status(200);
    let fresh = app.get("/api/v1/users/zed/devices/new-phone/pending").await;
    assert_eq!(offsets(fresh.assert_status(200)), [3]);
    let all = app.get("/api/v1/users/zed/devices/old-phone/pending").await;
    assert_eq!(offsets(all.assert_status(200)), [1, 2, 3]);
    let r = app.put("/api/v1/users/zed/devices/x", json!({"pending_from": "yesterday"})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("pending_from"));
}
