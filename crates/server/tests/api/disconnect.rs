//! Disconnect orders: the disconnect route, and the session and revocation routes that end the
//! WebSocket connections of what they remove. Observed as the control publications every node
//! receives on the user's personal channel.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::{Value, json};
use switchboard_core::{
    ChannelName, Engine, Error, HubEvent, HubSubscription, NewPublication, Result, Retention, StreamPosition,
    StreamRead, StreamStore, UserId,
};

use crate::common::{KEY, TestApp};

async fn personal(app: &TestApp, user: &str) -> HubSubscription {
    let user = UserId::new(user).unwrap();
    if !app.sb.is_running() {
        app.sb.start().unwrap();
    }
    app.sb.hub().subscribe(&ChannelName::user(&user)).await.unwrap()
}

/// The next disconnect order's target.
async fn next_order(sub: &mut HubSubscription) -> Value {
    let event = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("an order in time");
    let Some(HubEvent::Publication(message)) = event else { panic!("expected a publication, got {event:?}") };
    assert_eq!(message.publication.offset, 0, "orders are not stored");
    assert_eq!(message.publication.data["type"], "_switchboard.disconnect");
    message.publication.data["data"].clone()
}

async fn no_more_orders(sub: &mut HubSubscription) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(sub.try_recv().is_none());
}

#[tokio::test]
async fn disconnect_route_sends_the_order() {
    let app = TestApp::new();
    let mut sub = personal(&app, "alice").await;
    let r = app.post("/api/v1/users/alice/disconnect", json!({"device_id": "phone", "reconnect": true})).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    assert_eq!(next_order(&mut sub).await, json!({"device_id": "phone", "reconnect": true}));

    let r = app.call(axum::http::Method::POST, "/api/v1/users/alice/disconnect", None).await;
    assert_eq!(r.status.as_u16(), 202, "{}", r.text);
    assert_eq!(next_order(&mut sub).await, json!({"reconnect": false}));

    for body in [json!({"device_id": "a b"}), json!({"reconnect": "yes"}), json!({"session_id": "x"})] {
        let r = app.post("/api/v1/users/alice/disconnect", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
    }
    let r = app.post("/api/v1/users/a%20b/disconnect", json!({})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    no_more_orders(&mut sub).await;
}

#[tokio::test]
async fn deleted_and_evicted_sessions_disconnect_their_connections() {
    let app = TestApp::new();
    let mut sub = personal(&app, "alice").await;
    let first = app.create_session("alice").await;
    let second = app.create_session("alice").await;
    let third = app.create_session("alice").await;
    no_more_orders(&mut sub).await;

    assert_eq!(app.delete(&format!("/api/v1/sessions/{second}")).await.status.as_u16(), 204);
    assert_eq!(next_order(&mut sub).await, json!({"session_id": second, "reconnect": false}));
    app.delete(&format!("/api/v1/sessions/{second}")).await.assert_error(404, "not_found");

    // The test config allows 3 sessions per user: one more evicts the least recently active.
    // Times have millisecond precision: make `first` strictly the least recently active.
    tokio::time::sleep(Duration::from_millis(3)).await;
    app.post(&format!("/api/v1/sessions/{third}/touch"), json!({})).await.assert_status(200);
    app.create_session("alice").await;
    let fourth = app.create_session("alice").await;
    assert_eq!(next_order(&mut sub).await, json!({"session_id": first, "reconnect": false}));

    let r = app.delete(&format!("/api/v1/users/alice/sessions?except={fourth}")).await;
    let deleted = r.assert_status(200)["deleted"].as_array().unwrap().clone();
    assert_eq!(deleted.len(), 2);
    let mut ordered = Vec::new();
    for _ in 0..2 {
        ordered.push(next_order(&mut sub).await["session_id"].as_str().unwrap().to_owned());
    }
    let mut expected: Vec<String> = deleted.iter().map(|v| v.as_str().unwrap().to_owned()).collect();
    ordered.sort();
    expected.sort();
    assert_eq!(ordered, expected);
    assert!(deleted.contains(&json!(third)));
    no_more_orders(&mut sub).await;
}

#[tokio::test]
async fn revoking_tokens_disconnects_older_ones_with_reconnect() {
    let app = TestApp::new();
    let mut sub = personal(&app, "alice").await;
    let r = app.post("/api/v1/users/alice/tokens/revoke", json!({"before": "2030-01-01T00:00:00Z"})).await;
    let revoked = r.assert_status(200)["revoked_before"].clone();
    assert_eq!(next_order(&mut sub).await, json!({"issued_before": revoked, "reconnect": true}));

    // Revoke times never move backwards: the order carries the time in force.
    let r = app.post("/api/v1/users/alice/tokens/revoke", json!({"before": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(r.assert_status(200)["revoked_before"], revoked);
    assert_eq!(next_order(&mut sub).await["issued_before"], revoked);
}

/// Streams that cannot be reached: disconnect orders cannot be sent.
struct DownStreams;

fn down<T>() -> Result<T> {
    Err(Error::Unavailable("pub/sub at 10.9.8.7 refused".into()))
}

#[async_trait]
impl StreamStore for DownStreams {
    async fn publish(&self, _: &ChannelName, _: NewPublication, _: Retention) -> Result<StreamPosition> {
        down()
    }
    async fn publish_ephemeral(&self, _: &ChannelName, _: NewPublication) -> Result<()> {
        down()
    }
    async fn read_since(&self, _: &ChannelName, _: &StreamPosition, _: usize) -> Result<StreamRead> {
        down()
    }
    async fn history(&self, _: &ChannelName, _: usize) -> Result<StreamRead> {
        down()
    }
    async fn position(&self, _: &ChannelName) -> Result<StreamPosition> {
        down()
    }
    async fn remove(&self, _: &ChannelName) -> Result<bool> {
        down()
    }
}

#[tokio::test]
async fn a_failed_order_does_not_fail_the_change_that_called_for_it() {
    let engine = switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid memory config");
    let app = TestApp::with_engine(Engine { streams: Arc::new(DownStreams), ..engine });
    let id = app.create_session("alice").await;
    assert_eq!(app.delete(&format!("/api/v1/sessions/{id}")).await.status.as_u16(), 204);
    // Three sessions are allowed per user: the fourth evicts one.
    for _ in 0..4 {
        app.create_session("alice").await;
    }
    app.delete("/api/v1/users/alice/sessions").await.assert_status(200);
    app.post("/api/v1/users/alice/tokens/revoke", json!({})).await.assert_status(200);

    // The disconnect route itself is the order: it fails, without leaking the detail.
    let req = Request::post("/api/v1/users/alice/disconnect")
        .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    let r = app.send_allowing_503(req).await;
    r.assert_error(503, "engine_unavailable");
    assert!(!r.text.contains("10.9.8.7"), "{}", r.text);
}
