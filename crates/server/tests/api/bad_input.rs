//! Bad input of every kind: each answer is a 4xx with the JSON envelope and the right code.

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::json;

use crate::common::{KEY, MAX_BODY, TestApp};

#[tokio::test]
async fn missing_or_wrong_api_key_is_401() {
    let app = TestApp::new();
    let r = app.public_get("/api/v1/info").await;
    r.assert_error(401, "unauthenticated");
    assert_eq!(r.header("www-authenticate"), "Bearer");

    for auth in ["Bearer wrong-key", "Bearer ", "Basic dGVzdA==", KEY, "Bearer test-key-012345678"] {
        let req = Request::get("/api/v1/info").header(header::AUTHORIZATION, auth).body(Body::empty()).unwrap();
        let r = app.send(req).await;
        r.assert_error(401, "unauthenticated");
        assert_eq!(r.header("www-authenticate"), "Bearer");
    }
    // The second configured key works as well as the first.
    let req =
        Request::get("/api/v1/info").header(header::AUTHORIZATION, "Bearer another-key").body(Body::empty()).unwrap();
    app.send(req).await.assert_status(200);

    // Authentication comes before anything else, even a wrong method or a bad body.
    let req = Request::put("/api/v1/sessions").body(Body::from("{")).unwrap();
    app.send(req).await.assert_error(401, "unauthenticated");
}

#[tokio::test]
async fn unknown_route_is_404_and_wrong_method_is_405() {
    let app = TestApp::new();
    app.get("/api/v1/nope").await.assert_error(404, "not_found");
    app.public_get("/nope").await.assert_error(404, "not_found");

    let r = app.call(Method::PUT, "/api/v1/sessions", Some(json!({}))).await;
    let message = r.assert_error(405, "invalid_argument");
    assert!(message.contains("PUT"), "{message}");
    assert!(r.header("allow").contains("POST"), "{:?}", r.headers);

    app.call(Method::POST, "/health", None).await.assert_error(405, "invalid_argument");
}

#[tokio::test]
async fn malformed_json_wrong_types_and_unknown_fields_are_400() {
    let app = TestApp::new();
    let r = app.raw(Method::POST, "/api/v1/sessions", "application/json", "{\"user_id\": ").await;
    r.assert_error(400, "invalid_argument");

    let r = app.post("/api/v1/sessions", json!({"user_id": 42})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("user_id"), "{message}");

    let r = app.post("/api/v1/sessions", json!({"user_id": "a", "colour": "red"})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("colour"), "{message}");

    let r = app.post("/api/v1/sessions", json!({"user_id": "a", "device": {"nickname": "x"}})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("nickname"), "{message}");

    let r = app.post("/api/v1/sessions", json!({})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("user_id"), "{message}");

    let r = app.post("/api/v1/tokens/deny", json!({"jti": "t", "expires_at": "tomorrow"})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("expires_at"), "{message}");

    let r = app.post("/api/v1/users/u/tokens/revoke", json!({"after": "2030-01-01T00:00:00Z"})).await;
    r.assert_error(400, "invalid_argument");

    let id = app.create_session("gina").await;
    let r = app.patch(&format!("/api/v1/sessions/{id}"), json!({"data": {}, "extra": 1})).await;
    r.assert_error(400, "invalid_argument");
    let r = app.patch(&format!("/api/v1/sessions/{id}"), json!({"data": "not an object"})).await;
    r.assert_error(400, "invalid_argument");
    let r = app.patch(&format!("/api/v1/sessions/{id}"), json!({})).await;
    r.assert_error(400, "invalid_argument");
}

#[tokio::test]
async fn wrong_content_type_is_415_with_the_envelope() {
    let app = TestApp::new();
    let r = app.raw(Method::POST, "/api/v1/sessions", "text/plain", "{\"user_id\": \"a\"}").await;
    r.assert_error(415, "invalid_argument");
    let r = app.raw(Method::POST, "/api/v1/rate-limits/check", "text/plain", "{}").await;
    r.assert_error(415, "invalid_argument");
    let r = app.raw(Method::POST, "/api/v1/users/u/tokens/revoke", "text/plain", "{}").await;
    r.assert_error(415, "invalid_argument");
}

#[tokio::test]
async fn invalid_ids_in_body_path_and_query_name_the_field() {
    let app = TestApp::new();
    let r = app.post("/api/v1/sessions", json!({"user_id": "a b"})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    let r = app.post("/api/v1/sessions", json!({"user_id": "x".repeat(129)})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    let r = app.post("/api/v1/sessions", json!({"user_id": "a", "device": {"device_id": "d/1"}})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("device_id"));
    let r = app.post("/api/v1/tokens/deny", json!({"jti": "", "expires_at": "2099-01-01T00:00:00Z"})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("jti"));

    let r = app.get("/api/v1/users/a%20b/sessions").await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    let r = app.get(&format!("/api/v1/users/{}/tokens/revoke", "x".repeat(129))).await;
    assert!(r.assert_error(400, "invalid_argument").contains("user_id"));
    let r = app.get("/api/v1/sessions/not-a-session").await;
    assert!(r.assert_error(400, "invalid_argument").contains("session_id"));
    let r = app.delete("/api/v1/sessions/%E2%82%AC").await;
    assert!(r.assert_error(400, "invalid_argument").contains("session_id"));
    let r = app.get("/api/v1/tokens/deny/a%22b").await;
    assert!(r.assert_error(400, "invalid_argument").contains("jti"));
    // Invalid UTF-8 in a path segment.
    app.get("/api/v1/users/%FF/sessions").await.assert_error(400, "invalid_argument");

    let r = app.delete("/api/v1/users/u/sessions?except=nope").await;
    assert!(r.assert_error(400, "invalid_argument").contains("except"));
    let r = app.delete("/api/v1/users/u/sessions?other=1").await;
    r.assert_error(400, "invalid_argument");
    let r = app.get("/api/v1/rate-limits/status?key=a%20b&policy=login").await;
    assert!(r.assert_error(400, "invalid_argument").contains("key"));
    let r = app.delete("/api/v1/rate-limits").await;
    assert!(r.assert_error(400, "invalid_argument").contains("key"));
}

#[tokio::test]
async fn oversize_body_and_data_are_413() {
    let app = TestApp::new();
    let big = json!({"user_id": "a", "data": {"blob": "x".repeat(MAX_BODY)}});
    let message = app.post("/api/v1/sessions", big).await.assert_error(413, "payload_too_large");
    assert!(message.contains(&MAX_BODY.to_string()), "{message}");

    let r = app.raw(Method::POST, "/api/v1/rate-limits/check", "application/json", "x".repeat(MAX_BODY + 1)).await;
    r.assert_error(413, "payload_too_large");
    let r = app.raw(Method::POST, "/api/v1/users/u/tokens/revoke", "application/json", "x".repeat(MAX_BODY + 1)).await;
    r.assert_error(413, "payload_too_large");

    // Over the 4 KiB data bound but under the body limit.
    let over = json!({"user_id": "a", "data": {"blob": "x".repeat(5000)}});
    let message = app.post("/api/v1/sessions", over).await.assert_error(413, "payload_too_large");
    assert!(message.contains("data"), "{message}");
    let id = app.create_session("hank").await;
    let r = app.patch(&format!("/api/v1/sessions/{id}"), json!({"data": {"blob": "x".repeat(5000)}})).await;
    r.assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn bad_rate_limit_checks_are_400() {
    let app = TestApp::new();
    let cases = [
        json!({"key": "ip:1", "policy": "no_such_policy"}),
        json!({"key": "ip:1", "policy": {"limit": 0, "window_ms": 1000}}),
        json!({"key": "ip:1", "policy": {"limit": 1, "window_ms": 1000, "colour": 1}}),
        json!({"key": "ip:1", "policy": "login", "cost": 0}),
        json!({"key": "ip:1", "policy": "login", "cost": 3}),
        json!({"key": "ip 1", "policy": "login"}),
        json!({"key": "ip:1"}),
        json!({"key": "ip:1", "policy": "login", "extra": true}),
        json!({"checks": []}),
        json!({"checks": [{"key": "a", "policy": "login"}, {"key": "a", "policy": "login"}]}),
        json!({"checks": [{"key": "a", "policy": "login"}], "key": "b"}),
        json!({"checks": "login"}),
        json!([{"key": "a", "policy": "login"}]),
        json!("login"),
    ];
    for body in cases {
        let r = app.post("/api/v1/rate-limits/check", body.clone()).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["code"], "invalid_argument", "{body}: {}", r.text);
    }
    let r = app.post("/api/v1/rate-limits/check", json!({"key": "ip:1", "policy": "no_such_policy"})).await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.starts_with("policy: ") && message.contains("no_such_policy"), "{message}");
    let batch = json!({"checks": [{"key": "ip:1", "policy": "login"}, {"key": "ip:2", "policy": "no_such_policy"}]});
    let message = app.post("/api/v1/rate-limits/check", batch).await.assert_error(400, "invalid_argument");
    assert!(message.starts_with("checks[1].policy: "), "{message}");
    app.raw(Method::POST, "/api/v1/rate-limits/check", "application/json", "")
        .await
        .assert_error(400, "invalid_argument");

    for query in [
        "key=ip:1",
        "key=ip:1&policy=nope",
        "key=ip:1&policy=login&limit=3",
        "key=ip:1&limit=3",
        "key=ip:1&limit=abc&window_ms=1000",
        "key=ip:1&limit=3&window_ms=1000&algorithm=leaky",
        "key=ip:1&limit=0&window_ms=1000",
        "key=ip:1&policy=login&colour=red",
        "policy=login",
    ] {
        let r = app.get(&format!("/api/v1/rate-limits/status?{query}")).await;
        assert_eq!(r.status.as_u16(), 400, "{query}: {}", r.text);
        assert_eq!(r.json["error"]["code"], "invalid_argument", "{query}: {}", r.text);
    }
}

/// A query parameter the route does not have is refused, not silently ignored (a filter that
/// does not exist must not look applied).
#[tokio::test]
async fn unknown_query_parameters_are_refused() {
    let app = TestApp::new();
    app.create_session("alice").await;
    let r = app.get("/api/v1/users/alice/sessions?device=phone").await;
    let message = r.assert_error(400, "invalid_argument");
    assert!(message.contains("`device`"), "{message}");
    let r = app.get("/api/v1/users/alice/notifications?limit=5&unread_only=true&sort=new").await;
    assert!(r.assert_error(400, "invalid_argument").contains("`sort`"));
    // The documented ones still work.
    app.get("/api/v1/users/alice/notifications?limit=5&unread_only=true").await.assert_status(200);
    app.get("/api/v1/users/alice/sessions").await.assert_status(200);
}

/// A body on a route that takes none is refused, not ignored: a touch cannot look like it set a
/// new idle TTL.
#[tokio::test]
async fn a_body_on_a_route_without_one_is_refused() {
    let app = TestApp::new();
    let id = app.create_session("alice").await;
    let touch = format!("/api/v1/sessions/{id}/touch");
    let r = app.post(&touch, json!({"idle_ttl_seconds": 1800})).await;
    assert!(r.assert_error(400, "invalid_argument").contains("takes no body"));
    app.raw(Method::POST, &touch, "application/json", "").await.assert_status(200);
}
