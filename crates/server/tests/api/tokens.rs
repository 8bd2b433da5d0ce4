//! Token denylist and revoke-before.

use serde_json::json;
use switchboard_core::Timestamp;

use crate::common::TestApp;

#[tokio::test]
async fn deny_check_undeny() {
    let app = TestApp::new();
    let r = app.post("/api/v1/tokens/deny", json!({"jti": "tok-1", "expires_at": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(r.assert_status(200), &json!({"jti": "tok-1", "denied_until": "2099-01-01T00:00:00.000Z"}));

    // Denying again with an earlier expiry keeps the later one.
    let r = app.post("/api/v1/tokens/deny", json!({"jti": "tok-1", "expires_at": "2098-01-01T00:00:00Z"})).await;
    assert_eq!(r.assert_status(200)["denied_until"], "2099-01-01T00:00:00.000Z");

    let r = app.get("/api/v1/tokens/deny/tok-1").await;
    assert_eq!(r.assert_status(200), &json!({"jti": "tok-1", "denied_until": "2099-01-01T00:00:00.000Z"}));

    assert_eq!(app.delete("/api/v1/tokens/deny/tok-1").await.status.as_u16(), 204);
    app.get("/api/v1/tokens/deny/tok-1").await.assert_error(404, "not_found");
    app.delete("/api/v1/tokens/deny/tok-1").await.assert_error(404, "not_found");
}

/// A whole token (no `jti`, longer than any id) is denied by its digest, which names the denial;
/// exactly one of `jti` and `token` is accepted.
#[tokio::test]
async fn deny_a_whole_token_by_its_digest() {
    let app = TestApp::new();
    let token = format!("eyJhbGciOiJIUzI1NiJ9.{}.c2ln", "e".repeat(200));
    let r = app.post("/api/v1/tokens/deny", json!({"token": token, "expires_at": "2099-01-01T00:00:00Z"})).await;
    let id = r.assert_status(200)["jti"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(app.get(&format!("/api/v1/tokens/deny/{id}")).await.assert_status(200)["jti"], id.as_str());
    let both = json!({"jti": "x", "token": "y", "expires_at": "2099-01-01T00:00:00Z"});
    app.post("/api/v1/tokens/deny", both).await.assert_error(400, "invalid_argument");
    let neither = json!({"expires_at": "2099-01-01T00:00:00Z"});
    app.post("/api/v1/tokens/deny", neither).await.assert_error(400, "invalid_argument");
    let empty = json!({"token": "", "expires_at": "2099-01-01T00:00:00Z"});
    app.post("/api/v1/tokens/deny", empty).await.assert_error(400, "invalid_argument");
    assert_eq!(app.delete(&format!("/api/v1/tokens/deny/{id}")).await.status.as_u16(), 204);
}

#[tokio::test]
async fn denying_an_expired_token_stores_nothing() {
    let app = TestApp::new();
    let r = app.post("/api/v1/tokens/deny", json!({"jti": "old", "expires_at": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(r.assert_status(200), &json!({"jti": "old", "denied_until": null}));
    app.get("/api/v1/tokens/deny/old").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn revoke_before_defaults_to_now_and_never_moves_back() {
    let app = TestApp::new();
    let r = app.get("/api/v1/users/frank/tokens/revoke").await;
    assert_eq!(r.assert_status(200), &json!({"user_id": "frank", "revoked_before": null}));

    let before = Timestamp::now();
    // No body at all: `before` is now.
    let r = app.call(axum::http::Method::POST, "/api/v1/users/frank/tokens/revoke", None).await;
    let at = r.assert_status(200)["revoked_before"].as_str().unwrap().to_owned();
    let at = Timestamp::parse_rfc3339(&at).unwrap();
    assert!(at >= before && at <= Timestamp::now(), "{at:?}");

    // An explicit later time moves it forward; an earlier one does not move it back.
    let r = app.post("/api/v1/users/frank/tokens/revoke", json!({"before": "2099-01-01T00:00:00Z"})).await;
    assert_eq!(r.assert_status(200)["revoked_before"], "2099-01-01T00:00:00.000Z");
    let r = app.post("/api/v1/users/frank/tokens/revoke", json!({"before": "2001-01-01T00:00:00Z"})).await;
    assert_eq!(r.assert_status(200)["revoked_before"], "2099-01-01T00:00:00.000Z");
    // An empty object is the same as no body.
    let r = app.post("/api/v1/users/frank/tokens/revoke", json!({})).await;
    assert_eq!(r.assert_status(200)["revoked_before"], "2099-01-01T00:00:00.000Z");

    let r = app.get("/api/v1/users/frank/tokens/revoke").await;
    assert_eq!(r.assert_status(200), &json!({"user_id": "frank", "revoked_before": "2099-01-01T00:00:00.000Z"}));
}

#[tokio::test]
async fn an_invalid_id_in_a_body_names_its_field_once() {
    let app = TestApp::new();
    let long = "x".repeat(129);
    let r = app.post("/api/v1/tokens/deny", json!({"jti": long, "expires_at": "2099-01-01T00:00:00Z"})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("jti: must be at most 128 bytes"), "{message}");
    assert!(!message.contains("jti: jti:"), "the field is named twice: {message}");
}
