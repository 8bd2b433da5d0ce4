//! Test harness: a router over a fresh memory engine, and one `send` that every request goes
//! through, which fails the test on any 5xx (a 500 is a bug).

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use switchboard_core::{Policy, RateLimitsConfig, SessionsConfig, Switchboard, SwitchboardConfig};
use switchboard_server::{ApiKey, AppState, ServerConfig};
use tower::ServiceExt;

/// The API key the tests use.
pub const KEY: &str = "test-key-0123456789";

/// A router over a fresh memory engine.
pub struct TestApp {
    pub router: Router,
    /// The services behind the router (to observe what the API did, e.g. publications).
    pub sb: Switchboard,
}

/// An answer, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl TestResponse {
    /// A header as a string, or "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    /// Asserts the status and the envelope's code; returns the envelope's message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status.as_u16(), status, "status of {}", self.text);
        assert_eq!(self.json["error"]["code"], code, "code of {}", self.text);
        let message = self.json["error"]["message"].as_str().unwrap_or_default().to_owned();
        assert!(!message.is_empty(), "envelope without message: {}", self.text);
        message
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Value {
        assert!(self.status.is_success(), "status {} of {}", self.status, self.text);
        &self.json
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        &self.json
    }
}

/// Settings used by every test: a named `login` policy of 2 per minute, at most 3 sessions per
/// user, a small body limit so 413 is cheap to provoke.
pub fn switchboard_config() -> SwitchboardConfig {
    let mut policies = BTreeMap::new();
    policies.insert("login".to_owned(), Policy::gcra(2, 60_000));
    SwitchboardConfig {
        sessions: SessionsConfig { max_per_user: 3, ..SessionsConfig::default() },
        rate_limits: RateLimitsConfig { policies },
        ..SwitchboardConfig::default()
    }
}

pub const MAX_BODY: usize = 64 * 1024;

impl TestApp {
    pub fn new() -> Self {
        Self::with_engine(
            switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid memory config"),
        )
    }

    /// A router over `engine`.
    pub fn with_engine(engine: switchboard_core::Engine) -> Self {
        Self::with_switchboard(Switchboard::new(engine, switchboard_config()).expect("valid test config"))
    }

    /// A router over `sb` (e.g. a conformance engine's, whose engine already has its hub).
    pub fn with_switchboard(sb: Switchboard) -> Self {
        let config = ServerConfig {
            api_keys: vec![ApiKey::new("other", "another-key"), ApiKey::new("tests", KEY)],
            max_body_bytes: MAX_BODY,
            node_id: "node-test".to_owned(),
            ..ServerConfig::default()
        };
        TestApp { router: switchboard_server::router(AppState::new(sb.clone(), config)), sb }
    }

    /// Sends `req`; fails the test on a 5xx.
    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        let r = self.send_allowing_503(req).await;
        assert!(!r.status.is_server_error(), "answered {}: {}", r.status, r.text);
        r
    }

    /// Sends `req`; fails the test on a 5xx other than 503 (engine unavailable).
    pub async fn send_allowing_503(&self, req: Request<Body>) -> TestResponse {
        let what = format!("{} {}", req.method(), req.uri());
        let response = self.router.clone().oneshot(req).await.expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "{what} answered {status}: {text}"
        );
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse { status, headers, text, json }
    }

    /// An authenticated request with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> TestResponse {
        let mut req =
            Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {KEY}"));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).expect("request")).await
    }

    /// An authenticated request with a raw body and content type.
    pub async fn raw(&self, method: Method, path: &str, content_type: &str, body: impl Into<Body>) -> TestResponse {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {KEY}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .expect("request");
        self.send(req).await
    }

    /// An unauthenticated GET.
    pub async fn public_get(&self, path: &str) -> TestResponse {
        self.send(Request::get(path).body(Body::empty()).expect("request")).await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> TestResponse {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> TestResponse {
        self.call(Method::DELETE, path, None).await
    }

    pub async fn put(&self, path: &str, body: Value) -> TestResponse {
        self.call(Method::PUT, path, Some(body)).await
    }

    /// Creates a session for `user`; returns its id.
    pub async fn create_session(&self, user: &str) -> String {
        let r = self.post("/api/v1/sessions", serde_json::json!({"user_id": user})).await;
        r.assert_status(201)["session"]["id"].as_str().expect("session id").to_owned()
    }
}
