//! Sessions: every route's happy path, eviction, logout everywhere.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn create_get_update_touch_delete() {
    let app = TestApp::new();
    let created = app
        .post(
            "/api/v1/sessions",
            json!({
                "user_id": "alice",
                "device": {"device_id": "phone-1", "type": "mobile", "os": "iOS 19"},
                "ip": "10.0.0.1",
                "user_agent": "demo/1.0",
                "data": {"theme": "dark", "cart": 3},
                "idle_ttl_seconds": 600
            }),
        )
        .await;
    let body = created.assert_status(201);
    assert_eq!(body["evicted"], json!([]));
    let session = &body["session"];
    let id = session["id"].as_str().unwrap().to_owned();
    assert_eq!(session["user_id"], "alice");
    assert_eq!(session["device"]["type"], "mobile");
    assert_eq!(session["idle_ttl_ms"], 600_000);
    assert!(session["expires_at"].as_str().unwrap().ends_with('Z'));

    let got = app.get(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(got.assert_status(200)["data"], json!({"theme": "dark", "cart": 3}));

    let patched = app.patch(&format!("/api/v1/sessions/{id}"), json!({"data": {"cart": null, "lang": "de"}})).await;
    assert_eq!(patched.assert_status(200)["data"], json!({"theme": "dark", "lang": "de"}));

    let touched = app.post(&format!("/api/v1/sessions/{id}/touch"), json!({})).await;
    assert_eq!(touched.assert_status(200)["id"], id.as_str());

    let deleted = app.delete(&format!("/api/v1/sessions/{id}")).await;
    assert_eq!(deleted.status.as_u16(), 204);
    assert!(deleted.text.is_empty());

    app.get(&format!("/api/v1/sessions/{id}")).await.assert_error(404, "not_found");
    app.delete(&format!("/api/v1/sessions/{id}")).await.assert_error(404, "not_found");
    app.post(&format!("/api/v1/sessions/{id}/touch"), json!({})).await.assert_error(404, "not_found");
    app.patch(&format!("/api/v1/sessions/{id}"), json!({"data": {}})).await.assert_error(404, "not_found");
}

#[tokio::test]
async fn touch_needs_no_body() {
    let app = TestApp::new();
    let id = app.create_session("bob").await;
    let r = app.call(axum::http::Method::POST, &format!("/api/v1/sessions/{id}/touch"), None).await;
    r.assert_status(200);
    app.post(&format!("/api/v1/sessions/{id}/touch"), json!({})).await.assert_status(200);
}

/// A touch takes no settings: a body asking for one (the idle TTL is the session's, set at
/// creation) is refused rather than silently ignored, and the session is not touched.
#[tokio::test]
async fn touch_refuses_a_body_it_would_ignore() {
    let app = TestApp::new();
    let id = app.create_session("bea").await;
    let before = app.get(&format!("/api/v1/sessions/{id}")).await.assert_status(200)["last_active_at"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let r = app.post(&format!("/api/v1/sessions/{id}/touch"), json!({"idle_ttl_seconds": 1800})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("takes no body"));
    let after = app.get(&format!("/api/v1/sessions/{id}")).await.assert_status(200)["last_active_at"].clone();
    assert_eq!(before, after, "not touched");
}

#[tokio::test]
async fn creating_beyond_the_maximum_evicts_the_least_recently_active() {
    let app = TestApp::new();
    let first = app.create_session("carol").await;
    let second = app.create_session("carol").await;
    let third = app.create_session("carol").await;
    // Times have millisecond precision: make `first` strictly the least recently active.
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    for id in [&second, &third] {
        app.post(&format!("/api/v1/sessions/{id}/touch"), json!({})).await.assert_status(200);
    }
    let r = app.post("/api/v1/sessions", json!({"user_id": "carol"})).await;
    assert_eq!(r.assert_status(201)["evicted"], json!([first]));
    let list = app.get("/api/v1/users/carol/sessions").await;
    assert_eq!(list.assert_status(200)["sessions"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn list_and_delete_a_users_sessions() {
    let app = TestApp::new();
    let a = app.create_session("dave").await;
    let b = app.create_session("dave").await;
    let c = app.create_session("dave").await;
    let other = app.create_session("erin").await;

    // Most recently active first (times have millisecond precision).
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    app.post(&format!("/api/v1/sessions/{a}/touch"), json!({})).await.assert_status(200);
    let list = app.get("/api/v1/users/dave/sessions").await;
    let ids: Vec<&str> =
        list.assert_status(200)["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3);
    assert_eq!(ids[0], a);

    let r = app.delete(&format!("/api/v1/users/dave/sessions?except={b}")).await;
    let mut deleted: Vec<String> =
        r.assert_status(200)["deleted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    deleted.sort();
    let mut expected = vec![a.clone(), c.clone()];
    expected.sort();
    assert_eq!(deleted, expected);
    app.get(&format!("/api/v1/sessions/{b}")).await.assert_status(200);
    app.get(&format!("/api/v1/sessions/{other}")).await.assert_status(200);

    let r = app.delete("/api/v1/users/dave/sessions").await;
    assert_eq!(r.assert_status(200)["deleted"], json!([b]));
    assert_eq!(app.get("/api/v1/users/dave/sessions").await.assert_status(200)["sessions"], json!([]));
    assert_eq!(app.get("/api/v1/users/nobody/sessions").await.assert_status(200)["sessions"], json!([]));
}

/// One session per device: `replace_device` replaces the device's session (its connections are
/// closed), `?device_id=` finds it, and an app may choose the session id.
#[tokio::test]
async fn sessions_keyed_by_device_and_chosen_ids() {
    let app = TestApp::new();
    let login = |id: Option<&str>| {
        let mut body = json!({"user_id": "frank", "device": {"device_id": "phone"}, "replace_device": true});
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        body
    };
    let first = app.post("/api/v1/sessions", login(None)).await;
    let first_id = first.assert_status(201)["session"]["id"].as_str().unwrap().to_owned();
    let chosen = "app-chosen-sid-0123456789abcdefghijk";
    let second = app.post("/api/v1/sessions", login(Some(chosen))).await;
    let body = second.assert_status(201);
    assert_eq!(body["session"]["id"], chosen);
    assert_eq!(body["replaced"], json!([first_id]));
    app.get(&format!("/api/v1/sessions/{first_id}")).await.assert_error(404, "not_found");
    app.get(&format!("/api/v1/sessions/{chosen}")).await.assert_status(200);
    app.post("/api/v1/sessions", json!({"user_id": "frank", "device": {"device_id": "web"}})).await.assert_status(201);

    let on_phone = app.get("/api/v1/users/frank/sessions?device_id=phone").await;
    let ids: Vec<&str> =
        on_phone.assert_status(200)["sessions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [chosen]);
    let all = app.get("/api/v1/users/frank/sessions").await;
    assert_eq!(all.assert_status(200)["sessions"].as_array().unwrap().len(), 2);
    app.get("/api/v1/users/frank/sessions?device_id=a%20b").await.assert_error(400, "invalid_argument");

    let taken = app.post("/api/v1/sessions", json!({"user_id": "gina", "id": chosen})).await;
    taken.assert_error(409, "conflict");
    let short = app.post("/api/v1/sessions", json!({"user_id": "gina", "id": "abc"})).await;
    assert!(short.assert_error(400, "invalid_argument").starts_with("id:"));
    let no_device = app.post("/api/v1/sessions", json!({"user_id": "gina", "replace_device": true})).await;
    assert!(no_device.assert_error(400, "invalid_argument").starts_with("replace_device"));
}
