//! An engine that cannot be reached: API calls answer 503 `engine_unavailable` without leaking
//! the engine's error text, health says unhealthy / not ready, and the server itself stays up.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, header};
use serde_json::json;
use switchboard_core::{
    CreatedSession, Decision, Engine, EngineHealth, EngineInfo, Error, NewSession, Policy, RateLimitKey,
    RateLimitRequest, RateLimiter, Result, Session, SessionData, SessionId, SessionStore, Timestamp, TokenDenylist,
    TokenId, UserId,
};

use crate::common::{KEY, TestApp};

const DETAIL: &str = "connection refused by 10.9.8.7:6379";

fn down<T>() -> Result<T> {
    Err(Error::Unavailable(DETAIL.to_owned()))
}

struct Down;

#[async_trait]
impl SessionStore for Down {
    async fn create(&self, _: NewSession, _: u32) -> Result<CreatedSession> {
        down()
    }
    async fn get(&self, _: &SessionId) -> Result<Option<Session>> {
        down()
    }
    async fn touch(&self, _: &SessionId) -> Result<Option<Session>> {
        down()
    }
    async fn update_data(&self, _: &SessionId, _: &SessionData, _: usize) -> Result<Option<Session>> {
        down()
    }
    async fn delete(&self, _: &SessionId) -> Result<bool> {
        down()
    }
    async fn list(&self, _: &UserId) -> Result<Vec<Session>> {
        down()
    }
    async fn delete_user_sessions(&self, _: &UserId, _: Option<&SessionId>) -> Result<Vec<SessionId>> {
        down()
    }
    async fn count_active(&self) -> Result<u64> {
        down()
    }
}

#[async_trait]
impl TokenDenylist for Down {
    async fn deny(&self, _: &TokenId, _: Timestamp) -> Result<()> {
        down()
    }
    async fn denied_until(&self, _: &TokenId) -> Result<Option<Timestamp>> {
        down()
    }
    async fn undeny(&self, _: &TokenId) -> Result<bool> {
        down()
    }
    async fn revoke_before(&self, _: &UserId, _: Timestamp, _: Timestamp) -> Result<Timestamp> {
        down()
    }
    async fn revoked_before(&self, _: &UserId) -> Result<Option<Timestamp>> {
        down()
    }
}

#[async_trait]
impl RateLimiter for Down {
    async fn check(&self, _: &[RateLimitRequest]) -> Result<Vec<Decision>> {
        down()
    }
    async fn status(&self, _: &RateLimitKey, _: &Policy) -> Result<Decision> {
        down()
    }
    async fn reset(&self, _: &RateLimitKey) -> Result<bool> {
        down()
    }
}

#[async_trait]
impl EngineHealth for Down {
    async fn ping(&self) -> Result<Duration> {
        down()
    }
    fn connected(&self) -> bool {
        false
    }
    fn info(&self) -> EngineInfo {
        EngineInfo { name: "down".into(), location: "nowhere".into(), key_prefix: String::new() }
    }
}

/// Sessions, tokens, rate limits and health are down; the capabilities these routes do not use
/// come from a memory engine.
fn down_engine() -> Engine {
    let down = Arc::new(Down);
    let rest = switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid memory config");
    Engine { sessions: down.clone(), denylist: down.clone(), rate_limiter: down.clone(), health: down, ..rest }
}

#[tokio::test]
async fn api_calls_answer_503_without_internals() {
    let app = TestApp::with_engine(down_engine());
    let session = "AAAAAAAAAAAAAAAAAAAAAAAA";
    let calls = [
        ("POST", "/api/v1/sessions".to_owned(), Some(json!({"user_id": "a"}))),
        ("GET", format!("/api/v1/sessions/{session}"), None),
        ("PATCH", format!("/api/v1/sessions/{session}"), Some(json!({"data": {}}))),
        ("DELETE", format!("/api/v1/sessions/{session}"), None),
        ("POST", format!("/api/v1/sessions/{session}/touch"), None),
        ("GET", "/api/v1/users/a/sessions".to_owned(), None),
        ("DELETE", "/api/v1/users/a/sessions".to_owned(), None),
        ("POST", "/api/v1/tokens/deny".to_owned(), Some(json!({"jti": "t", "expires_at": "2099-01-01T00:00:00Z"}))),
        ("GET", "/api/v1/tokens/deny/t".to_owned(), None),
        ("DELETE", "/api/v1/tokens/deny/t".to_owned(), None),
        ("POST", "/api/v1/users/a/tokens/revoke".to_owned(), None),
        ("GET", "/api/v1/users/a/tokens/revoke".to_owned(), None),
        ("POST", "/api/v1/rate-limits/check".to_owned(), Some(json!({"key": "k", "policy": "login"}))),
        ("GET", "/api/v1/rate-limits/status?key=k&policy=login".to_owned(), None),
        ("DELETE", "/api/v1/rate-limits?key=k".to_owned(), None),
        ("GET", "/api/v1/stats".to_owned(), None),
    ];
    for (method, path, body) in calls {
        let mut req =
            Request::builder().method(method).uri(&path).header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let r = app.send_allowing_503(req.body(body).unwrap()).await;
        r.assert_error(503, "engine_unavailable");
        assert!(!r.text.contains("10.9.8.7"), "{method} {path} leaked: {}", r.text);
    }
    // What does not need the engine still works.
    app.get("/api/v1/info").await.assert_status(200);
    app.public_get("/health/live").await.assert_status(200);
    let metrics = app.public_get("/metrics").await;
    metrics.assert_status(200);
    assert!(metrics.text.contains("switchboard_engine_errors_total{"), "{}", metrics.text);
}

#[tokio::test]
async fn health_reports_the_engine_down() {
    let app = TestApp::with_engine(down_engine());
    let get = |path: &'static str| app.send_allowing_503(Request::get(path).body(Body::empty()).unwrap());
    let r = get("/health").await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.json["status"], "unhealthy");
    assert_eq!(r.json["components"]["engine"], json!({"status": "unhealthy", "error": "engine_unavailable"}));
    let r = get("/health/ready").await;
    assert_eq!((r.status.as_u16(), &r.json), (503, &json!({"status": "not_ready"})));
    let r = get("/health/engine").await;
    assert_eq!((r.status.as_u16(), &r.json["status"]), (503, &json!("unhealthy")));
    assert!(!r.text.contains("10.9.8.7"), "{}", r.text);
}

/// An engine whose ping never answers (a hung backing store that still looks connected).
struct Hung;

#[async_trait]
impl EngineHealth for Hung {
    async fn ping(&self) -> Result<Duration> {
        std::future::pending().await
    }
    fn connected(&self) -> bool {
        true
    }
    fn info(&self) -> EngineInfo {
        EngineInfo { name: "hung".into(), location: "nowhere".into(), key_prefix: String::new() }
    }
}

#[tokio::test]
async fn health_answers_within_its_deadline_when_a_check_hangs() {
    let rest = switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid memory config");
    let app = TestApp::with_engine(Engine { health: Arc::new(Hung), ..rest });
    let get = |path: &'static str| app.send_allowing_503(Request::get(path).body(Body::empty()).unwrap());
    // The default deadline is 1 s; the other checks run meanwhile, not after it.
    let started = std::time::Instant::now();
    let r = get("/health/ready").await;
    let took = started.elapsed();
    assert_eq!((r.status.as_u16(), &r.json), (503, &json!({"status": "not_ready"})));
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(1500), "took {took:?}");
    let r = get("/health").await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(
        r.json["components"]["engine"],
        json!({"status": "unhealthy", "error": "check timed out after 1000 ms"})
    );
    assert_eq!(r.json["components"]["jobs"]["status"], "healthy");
    assert_eq!(r.json["components"]["pubsub"]["status"], "healthy");
}
