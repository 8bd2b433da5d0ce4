//! Two server nodes on one redis-server: publications cross nodes, presence is shared, and a node
//! killed with SIGKILL lets its connections leave presence within their TTL plus a margin.

mod common;

use std::time::Duration;

use common::{Node, TOKEN_SECRET, client, client_token, read_until, redis_env};
use futures_util::SinkExt;
use serde_json::{Value, json};
use switchboard_conformance::{RedisServer, eventually};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn nodes_share_publications_and_presence_and_a_killed_node_leaves_presence() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mut env = redis_env(&url, "sbrt:");
    // Short presence timings so the test takes seconds (defaults: 60 s TTL, 5 s grace).
    env.extend([
        ("SWITCHBOARD_PRESENCE__CONNECTION_TTL_SECONDS", "2"),
        ("SWITCHBOARD_PRESENCE__OFFLINE_GRACE_MS", "300"),
        ("SWITCHBOARD_PRESENCE__SWEEP_INTERVAL_MS", "200"),
    ]);
    let (a, b) = (Node::start(&env), Node::start(&env));
    let http = client();

    let (mut ws, _) = tokio_tungstenite::connect_async(a.ws_url()).await.expect("connect to node A");
    ws.send(Message::text(
        json!({"id": 1, "connect": {"token": client_token("alice", "phone", TOKEN_SECRET)}}).to_string(),
    ))
    .await
    .unwrap();
    let reply = read_until(&mut ws, |v| v["id"] == json!(1)).await;
    assert!(reply["connect"]["subs"]["user:alice"].is_object(), "{reply}");

    // Published through B's API, received on A's socket.
    let publish = json!({"channel": "user:alice", "data": {"type": "note", "data": {"via": "b"}}});
    let r = http.post(b.api("/publish")).json(&publish).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let push = read_until(&mut ws, |v| v.get("push").is_some()).await;
    assert_eq!(push["push"]["pub"]["data"]["data"]["via"], "b");

    // Presence made on A is visible through B.
    let presence: Value = http.get(b.api("/users/alice/presence")).send().await.unwrap().json().await.unwrap();
    assert_eq!(presence["online"], json!(true), "{presence}");

    // B's stats count A's connection: per node and in total.
    let a_id: Value = http.get(a.api("/info")).send().await.unwrap().json().await.unwrap();
    let a_id = a_id["node_id"].as_str().expect("node id").to_owned();
    eventually(Duration::from_secs(5), "node A's report reaches B's stats", || async {
        let stats: Value = http.get(b.api("/stats")).send().await.unwrap().json().await.unwrap();
        let nodes = stats["nodes"].as_array().cloned().unwrap_or_default();
        let on_a = nodes.iter().find(|n| n["node_id"] == a_id.as_str()).map(|n| n["connections"].clone());
        stats["connections"] == json!(0) && stats["connections_total"] == json!(1) && on_a == Some(json!(1))
    })
    .await;

    // A dies without closing anything: its connection expires from presence on its own.
    a.kill_hard();
    eventually(Duration::from_secs(2 + 1 + 5), "alice's connection on the killed node leaves presence", || async {
        let p: Value = http.get(b.api("/users/alice/presence")).send().await.unwrap().json().await.unwrap();
        p["online"] == json!(false)
    })
    .await;
}
