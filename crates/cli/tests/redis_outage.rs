//! Stopping redis-server under a running server: calls fail fast with 503, readiness says so,
//! and the server serves again once Redis is back, without a restart.

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
    assert_eq!(http.get(format!("{}/health/ready", node.base)).send().await.unwrap().status(), 200);
}
