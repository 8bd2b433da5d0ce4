//! Two server processes on one redis-server share every piece of state.

mod common;

use common::{Node, client, redis_env};
use serde_json::{Value, json};
use switchboard_conformance::RedisServer;

#[tokio::test]
async fn two_nodes_share_sessions_and_rate_limits() {
    let redis = RedisServer::start();
    let url = redis.url();
    let env = redis_env(&url, "sbtwo:");
    let (a, b) = (Node::start(&env), Node::start(&env));
    let http = client();

    // A session created through A is read, updated and deleted through B.
    let created: Value = http
        .post(a.api("/sessions"))
        .json(&json!({"user_id": "alice", "device": {"device_id": "phone"}, "data": {"theme": "dark"}}))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["session"]["id"].as_str().expect("session id").to_owned();
    let via_b: Value = http.get(b.api(&format!("/sessions/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(via_b["user_id"], "alice");
    assert_eq!(via_b["data"]["theme"], "dark");
    let patched = http
        .patch(b.api(&format!("/sessions/{id}")))
        .json(&json!({"data": {"lang": "de", "theme": null}}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let via_a: Value = http.get(a.api(&format!("/sessions/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(via_a["data"], json!({"lang": "de"}), "A sees B's update");
    let listed: Value = http.get(a.api("/users/alice/sessions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(http.delete(b.api(&format!("/sessions/{id}"))).send().await.unwrap().status(), 204);
    assert_eq!(http.get(a.api(&format!("/sessions/{id}"))).send().await.unwrap().status(), 404);

    // A rate limit of 3 per minute is shared: two calls on A and one on B use it up.
    let check = json!({"key": "user:alice/send", "policy": {"limit": 3, "window_ms": 60000}});
    let mut allowed = Vec::new();
    for node in [&a, &a, &b, &a, &b] {
        let r: Value =
            http.post(node.api("/rate-limits/check")).json(&check).send().await.unwrap().json().await.unwrap();
        allowed.push(r["allowed"].as_bool().expect("allowed flag"));
    }
    assert_eq!(allowed, vec![true, true, true, false, false]);

    // A token denied through B is denied through A.
    let deny = json!({"jti": "tok-1", "expires_at": "2099-01-01T00:00:00.000Z"});
    assert_eq!(http.post(b.api("/tokens/deny")).json(&deny).send().await.unwrap().status(), 200);
    assert_eq!(http.get(a.api("/tokens/deny/tok-1")).send().await.unwrap().status(), 200);
}
