//! Stopping redis-server under a running server: calls fail fast with 503 (at once after the
//! first failure), readiness says so within its deadline, and the server serves again once Redis
//! is back, without a restart.

mod common;

use std::time::{Duration, Instant};

use common::{Node, client, redis_env};
use serde_json::{Value, json};
use switchboard_conformance::{RedisServer, eventually};

#[tokio::test]
async fn server_survives_redis_going_away_and_coming_back() {
    let redis = RedisServer::start();
    let port = redis.port();
    let url = redis.url();
    let mut env = redis_env(&url, "sbout:");
    env.push(("SWITCHBOARD_REDIS__COMMAND_TIMEOUT_MS", "500"));
    let node = Node::start(&env);
    let http = client();
    let create = || http.post(node.api("/sessions")).json(&json!({"user_id": "bob"})).send();

    assert_eq!(create().await.unwrap().status(), 201);
    assert_eq!(http.get(format!("{}/health/ready", node.base)).send().await.unwrap().status(), 200);

    redis.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let r = create().await.unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "engine_unavailable");
        assert!(!body["error"]["message"].as_str().unwrap_or("").is_empty());
        // The command timeout is 500 ms; give scheduling plenty of slack but never a hang.
        assert!(took < Duration::from_secs(3), "answered in {took:?}");
    }
    let ready = http.get(format!("{}/health/ready", node.base)).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(http.get(format!("{}/health/live", node.base)).send().await.unwrap().status(), 200);

    let _redis = RedisServer::start_with(port, &[]);
    eventually(Duration::from_secs(15), "the server serves again after Redis is back", || async {
        create().await.map(|r| r.status() == 201).unwrap_or(false)
    })
    .await;
    // Readiness also needs the pub/sub connection, which reconnects on its own.
    eventually(Duration::from_secs(5), "ready again after Redis is back", || async {
        let ready = http.get(format!("{}/health/ready", node.base)).send().await;
        ready.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
}

/// With the default 2 s command timeout: once the first failure is seen, every call is refused at
/// once (no wait for a timeout) until Redis is back, readiness answers within its 1 s deadline and
/// names pub/sub too, and service resumes on the same port without a restart.
#[tokio::test]
async fn an_outage_is_answered_at_once_until_redis_is_back() {
    let redis = RedisServer::start();
    let port = redis.port();
    let url = redis.url();
    let node = Node::start(&redis_env(&url, "sbfast:"));
    let http = client();
    let create = || http.post(node.api("/sessions")).json(&json!({"user_id": "carol"})).send();
    let ready = || http.get(format!("{}/health/ready", node.base)).send();

    assert_eq!(create().await.unwrap().status(), 201);
    assert_eq!(ready().await.unwrap().status(), 200);

    redis.stop();
    let started = Instant::now();
    assert_eq!(create().await.unwrap().status(), 503, "the first call sees the connection loss");
    eprintln!("first call after the stop answered in {:?}", started.elapsed());
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let r = create().await.unwrap();
        let took = started.elapsed();
        assert_eq!(r.status(), 503);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "engine_unavailable");
        // A bound of the behaviour (refused without a round trip), far under the 2 s timeout.
        assert!(took < Duration::from_millis(100), "a call during the outage took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("slowest of 20 calls during the outage: {slowest:?}");

    let started = Instant::now();
    let r = ready().await.unwrap();
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    eprintln!("/health/ready answered 503 in {took:?}");
    assert!(took < Duration::from_secs(1), "/health/ready took {took:?}, over its 1 s deadline");
    eventually(Duration::from_secs(5), "/health names pub/sub as down", || async {
        let Ok(r) = http.get(format!("{}/health", node.base)).send().await else { return false };
        let body: Value = r.json().await.unwrap_or_default();
        body["components"]["pubsub"]["status"] == "unhealthy" && body["components"]["engine"]["status"] == "unhealthy"
    })
    .await;

    let _redis = RedisServer::start_with(port, &[]);
    let back = Instant::now();
    eventually(Duration::from_secs(15), "the server serves again after Redis is back", || async {
        create().await.map(|r| r.status() == 201).unwrap_or(false)
    })
    .await;
    eprintln!("serving again {:?} after redis-server restarted", back.elapsed());
    let back = Instant::now();
    eventually(Duration::from_secs(5), "ready again after Redis is back", || async {
        ready().await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    eprintln!("ready again {:?} after the first call served", back.elapsed());
}
