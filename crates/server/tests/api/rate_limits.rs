//! Rate limits: named and inline policies, multi-key atomicity, status, reset, headers.

use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn named_policy_allows_then_denies_with_headers() {
    let app = TestApp::new();
    let check = json!({"key": "ip:10.0.0.1", "policy": "login"});

    let r = app.post("/api/v1/rate-limits/check", check.clone()).await;
    let body = r.assert_status(200);
    assert_eq!(body["allowed"], true);
    assert_eq!(body["retry_after_ms"], 0);
    assert_eq!(body["decisions"][0]["key"], "ip:10.0.0.1");
    assert_eq!(body["decisions"][0]["policy_name"], "login");
    assert_eq!(body["decisions"][0]["remaining"], 1);
    assert_eq!(r.header("ratelimit-policy"), "\"login\";q=2;w=60");
    assert!(r.header("ratelimit").starts_with("\"login\";r=1;t="), "{}", r.header("ratelimit"));
    assert_eq!(r.header("retry-after"), "");

    app.post("/api/v1/rate-limits/check", check.clone()).await.assert_status(200);

    // Denied: still 200 (the backend asked a question), with Retry-After.
    let r = app.post("/api/v1/rate-limits/check", check.clone()).await;
    let body = r.assert_status(200);
    assert_eq!(body["allowed"], false);
    assert!(body["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(r.header("ratelimit").starts_with("\"login\";r=0;t="), "{}", r.header("ratelimit"));
    let retry: u64 = r.header("retry-after").parse().expect("Retry-After in seconds");
    assert!((1..=30).contains(&retry), "{retry}");

    // Status consumes nothing and reports the same.
    let r = app.get("/api/v1/rate-limits/status?key=ip:10.0.0.1&policy=login").await;
    let body = r.assert_status(200);
    assert_eq!(body["allowed"], false);
    assert_eq!(body["remaining"], 0);
    assert_eq!(body["policy"]["limit"], 2);
    assert!(!r.header("retry-after").is_empty());
    assert_eq!(r.header("ratelimit-policy"), "\"login\";q=2;w=60");

    // Reset gives the full allowance back; a second reset finds nothing.
    assert_eq!(app.delete("/api/v1/rate-limits?key=ip:10.0.0.1").await.status.as_u16(), 204);
    app.delete("/api/v1/rate-limits?key=ip:10.0.0.1").await.assert_error(404, "not_found");
    let r = app.post("/api/v1/rate-limits/check", check).await;
    assert_eq!(r.assert_status(200)["allowed"], true);
}

#[tokio::test]
async fn inline_policies_and_cost() {
    let app = TestApp::new();
    let r = app
        .post(
            "/api/v1/rate-limits/check",
            json!({"key": "user:1/send", "policy": {"algorithm": "sliding_log", "limit": 5, "window_ms": 60500}, "cost": 3}),
        )
        .await;
    let body = r.assert_status(200);
    assert_eq!(body["allowed"], true);
    assert_eq!(body["decisions"][0]["remaining"], 2);
    assert!(body["decisions"][0].get("policy_name").is_none());
    // Unnamed policies are named by their key; windows round up to whole seconds.
    assert_eq!(r.header("ratelimit-policy"), "\"user:1/send\";q=5;w=61");

    let r = app.get("/api/v1/rate-limits/status?key=user:1/send&limit=5&window_ms=60500&algorithm=sliding_log").await;
    assert_eq!(r.assert_status(200)["remaining"], 2);
}

#[tokio::test]
async fn multi_key_checks_are_all_or_nothing() {
    let app = TestApp::new();
    let batch = json!({"checks": [
        {"key": "ip:1", "policy": {"limit": 1, "window_ms": 60000}},
        {"key": "user:1", "policy": {"limit": 10, "window_ms": 60000}},
    ]});
    let r = app.post("/api/v1/rate-limits/check", batch.clone()).await;
    let body = r.assert_status(200);
    assert_eq!(body["allowed"], true);
    assert_eq!(body["decisions"].as_array().unwrap().len(), 2);
    // The tightest key (ip:1, nothing left) is the one in the headers.
    assert!(r.header("ratelimit").starts_with("\"ip:1\";r=0;"), "{}", r.header("ratelimit"));

    let r = app.post("/api/v1/rate-limits/check", batch).await;
    let body = r.assert_status(200);
    assert_eq!(body["allowed"], false);
    assert_eq!(body["decisions"][0]["allowed"], false);
    assert_eq!(body["decisions"][1]["allowed"], true);
    assert!(!r.header("retry-after").is_empty());

    // The denied batch consumed nothing from user:1.
    let r = app.get("/api/v1/rate-limits/status?key=user:1&limit=10&window_ms=60000").await;
    assert_eq!(r.assert_status(200)["remaining"], 9);
}
