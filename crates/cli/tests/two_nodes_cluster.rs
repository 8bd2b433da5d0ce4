//! Two `switchboard serve` processes on a 3-master Redis Cluster the test starts
//! (`REDIS_CLUSTER_NODES`): sessions, rate limits, notifications, messages and unread counters,
//! jobs (8 queues spread over the 3 masters) and the cache (a tag invalidated without a namespace
//! is a miss in every namespace) are shared through HTTP, and publications through node B reach
//! clients on node A over sharded pub/sub — a raw WebSocket client, and the real centrifuge-js SDK
//! (its whole scenario: personal channel, chat, refusal, typing, disconnect and recovery, with
//! node B's API).

mod common;

use common::{API_KEY, Node, TOKEN_SECRET, client, client_token, read_until, run_centrifuge_js_scenario};
use futures_util::SinkExt;
use serde_json::{Value, json};
use switchboard_conformance::RedisCluster;
use tokio_tungstenite::tungstenite::Message;

/// Sends `body` with `method` and answers the status and JSON body (`null` when empty).
async fn call(http: &reqwest::Client, method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = http.request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_nodes_share_every_capability_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let seeds = cluster.seeds().join(",");
    let env = [
        ("REDIS_CLUSTER_NODES", seeds.as_str()),
        ("SWITCHBOARD_REDIS__KEY_PREFIX", "sbc:"),
        ("SWITCHBOARD_API_KEYS", concat!("test:", "test-key-0123456789abcdef")),
        ("SWITCHBOARD_TOKEN_SECRET", TOKEN_SECRET),
    ];
    assert!(API_KEY.starts_with("test-key"));
    let (a, b) = (Node::start(&env), Node::start(&env));
    let http = client();
    use reqwest::Method as M;

    // The engine is Redis on the cluster, found from the seeds alone.
    let (_, info) = call(&http, M::GET, a.api("/info"), None).await;
    assert_eq!(info["engine"]["name"], "redis", "{info}");

    // Sessions: created on A, read and deleted on B.
    let (status, created) = call(&http, M::POST, a.api("/sessions"), Some(json!({"user_id": "ann"}))).await;
    assert_eq!(status, 201, "{created}");
    let id = created["session"]["id"].as_str().expect("id").to_owned();
    assert_eq!(call(&http, M::GET, b.api(&format!("/sessions/{id}")), None).await.1["user_id"], "ann");

    // A rate limit of 3 per minute is shared: two checks on A, one on B, then both refuse.
    let check = json!({"key": "user:ann", "policy": {"limit": 3, "window_ms": 60000}});
    let mut allowed = Vec::new();
    for node in [&a, &b, &a, &b] {
        let (_, answer) = call(&http, M::POST, node.api("/rate-limits/check"), Some(check.clone())).await;
        allowed.push(answer["allowed"].as_bool().expect("allowed"));
    }
    assert_eq!(allowed, [true, true, true, false]);

    // Notifications: created on A, read on B, the unread count agrees on A.
    let note = json!({"id": "n1", "title": "hello"});
    assert_eq!(call(&http, M::POST, a.api("/users/ann/notifications"), Some(note)).await.0, 201);
    let (status, _) = call(&http, M::POST, b.api("/users/ann/notifications/n1/read"), Some(json!({}))).await;
    assert_eq!(status, 200);
    let (_, count) = call(&http, M::GET, a.api("/users/ann/notifications/unread-count"), None).await;
    assert_eq!(count["unread"], 0, "{count}");

    // Messages and unread counters: members on different shards, posted on A, listed on B.
    let members = json!({"members": ["ann", "bob", "cyd"]});
    assert_eq!(call(&http, M::PUT, a.api("/conversations/c1"), Some(members)).await.0, 200);
    for i in 0..3 {
        let message = json!({"id": format!("m{i}"), "sender": "ann", "content": "hi"});
        assert_eq!(call(&http, M::POST, a.api("/conversations/c1/messages"), Some(message)).await.0, 200);
    }
    for user in ["bob", "cyd"] {
        let (_, totals) = call(&http, M::GET, b.api(&format!("/users/{user}/unread")), None).await;
        assert_eq!(totals["unread"], 3, "{user}: {totals}");
    }

    // Jobs: enqueued through A into 8 queues, fetched and completed through B.
    for i in 0..8 {
        let job = json!({"type": "mail.send", "payload": {"n": i}, "job_id": format!("job-{i}")});
        assert_eq!(call(&http, M::POST, a.api(&format!("/queues/q{i}/jobs")), Some(job)).await.0, 201);
    }
    let queues: Vec<String> = (0..8).map(|i| format!("q{i}")).collect();
    let fetch = json!({"queues": queues, "max_jobs": 8, "wait_ms": 0});
    let (_, fetched) = call(&http, M::POST, b.api("/queues/fetch"), Some(fetch)).await;
    let jobs = fetched["jobs"].as_array().cloned().unwrap_or_default();
    assert_eq!(jobs.len(), 8, "{fetched}");
    for job in &jobs {
        let (id, lease) = (job["id"].as_str().unwrap(), job["lease_token"].as_str().unwrap());
        let done = json!({"lease_token": lease});
        assert_eq!(call(&http, M::POST, b.api(&format!("/jobs/{id}/complete")), Some(done)).await.0, 204);
    }
    let (_, job) = call(&http, M::GET, a.api("/jobs/job-3"), None).await;
    assert_eq!(job["state"], "completed", "{job}");
    // Each queue is its own slot: the 8 queues' keys are spread over all 3 masters.
    let holding = cluster.nodes[..3]
        .iter()
        .filter(|node| !node.cli(&["--scan", "--pattern", "sbc:{jobs:*"]).trim().is_empty())
        .count();
    assert_eq!(holding, 3, "the 8 queues spread over the 3 masters");

    // Cache: set on A with a tag, read on B, the tag invalidated on B is a miss on A.
    let value = json!({"value": {"name": "Ann"}, "tags": ["user:ann"]});
    assert_eq!(call(&http, M::PUT, a.api("/cache/user_profile/ann"), Some(value)).await.0, 204);
    assert_eq!(call(&http, M::GET, b.api("/cache/user_profile/ann"), None).await.1["value"]["name"], "Ann");
    let invalidate = json!({"namespace": "user_profile", "tags": ["user:ann"]});
    assert_eq!(call(&http, M::POST, b.api("/cache/invalidate"), Some(invalidate)).await.0, 200);
    assert_eq!(call(&http, M::GET, a.api("/cache/user_profile/ann"), None).await.0, 404);
    // A tag invalidated without a namespace is a miss in every namespace, on every shard.
    for namespace in ["user_profile", "photo_metadata", "match_recommendations"] {
        let value = json!({"value": {"of": "bob"}, "tags": ["user:bob"]});
        assert_eq!(call(&http, M::PUT, a.api(&format!("/cache/{namespace}/bob")), Some(value)).await.0, 204);
    }
    let everywhere = json!({"tags": ["user:bob"]});
    assert_eq!(call(&http, M::POST, b.api("/cache/invalidate"), Some(everywhere)).await.0, 200);
    for namespace in ["user_profile", "photo_metadata", "match_recommendations"] {
        let (status, _) = call(&http, M::GET, a.api(&format!("/cache/{namespace}/bob")), None).await;
        assert_eq!(status, 404, "{namespace}");
    }

    // A publication through B reaches a WebSocket client on A.
    let (mut ws, _) = tokio_tungstenite::connect_async(a.ws_url()).await.expect("connect to node A");
    ws.send(Message::text(
        json!({"id": 1, "connect": {"token": client_token("ann", "phone", TOKEN_SECRET)}}).to_string(),
    ))
    .await
    .unwrap();
    let reply = read_until(&mut ws, |v| v["id"] == json!(1)).await;
    assert!(reply["connect"]["subs"]["user:ann"].is_object(), "{reply}");
    let publish = json!({"channel": "user:ann", "data": {"type": "note", "data": {"via": "b"}}});
    assert_eq!(call(&http, M::POST, b.api("/publish"), Some(publish)).await.0, 200);
    let push = read_until(&mut ws, |v| v.get("push").is_some()).await;
    assert_eq!(push["push"]["pub"]["data"]["data"]["via"], "b");
}

#[tokio::test]
async fn centrifuge_js_on_node_a_follows_the_api_of_node_b() {
    let cluster = RedisCluster::start(3, 0);
    let seeds = cluster.seeds().join(",");
    let env = [
        ("REDIS_CLUSTER_NODES", seeds.as_str()),
        ("SWITCHBOARD_REDIS__KEY_PREFIX", "sbjs:"),
        ("SWITCHBOARD_API_KEYS", concat!("test:", "test-key-0123456789abcdef")),
        ("SWITCHBOARD_TOKEN_SECRET", TOKEN_SECRET),
    ];
    let (a, b) = (Node::start(&env), Node::start(&env));
    let http = client();
    let members = json!({"type": "group", "members": ["alice", "bob"]});
    assert_eq!(call(&http, reqwest::Method::PUT, b.api("/conversations/c1"), Some(members)).await.0, 200);
    run_centrifuge_js_scenario(&a.ws_url(), &client_token("alice", "web-1", TOKEN_SECRET), &b.api("")).await;
}
