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

/// Only the subscriber connection is down (Redis up, commands served): fan-out between nodes is
/// broken, so `/health` names pub/sub unhealthy and `/health/ready` answers 503 while API calls
/// still succeed; ready again once the subscriber reconnects. The subscriber is cut with
/// `CLIENT KILL TYPE pubsub` and kept out with `maxclients` (the command connection and this
/// test's admin connection stay).
#[tokio::test]
async fn readiness_fails_while_only_the_subscriber_is_down() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let redis = RedisServer::start();
    let url = redis.url();
    let node = Node::start(&redis_env(&url, "sbsub:"));
    let http = client();
    let create = || http.post(node.api("/sessions")).json(&json!({"user_id": "erin"})).send();
    let get = |path: &'static str| http.get(format!("{}{path}", node.base)).send();
    eventually(Duration::from_secs(10), "ready at first", || async {
        get("/health/ready").await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;

    let admin = tokio::net::TcpStream::connect(("127.0.0.1", redis.port())).await.expect("admin connection");
    let mut admin = BufReader::new(admin);
    // Inline commands; a bulk reply is read whole.
    let mut send = async |line: &str| {
        admin.get_mut().write_all(format!("{line}\r\n").as_bytes()).await.expect("send");
        let mut reply = String::new();
        admin.read_line(&mut reply).await.expect("reply");
        if let Some(len) = reply.strip_prefix('$').and_then(|n| n.trim().parse::<usize>().ok()) {
            let mut body = vec![0; len + 2];
            tokio::io::AsyncReadExt::read_exact(&mut admin, &mut body).await.expect("bulk reply");
            reply = String::from_utf8_lossy(&body).into_owned();
        }
        reply
    };
    // Every connection but the subscriber may stay; no new one is let in.
    let clients = send("CLIENT LIST").await;
    let subscribers = clients.lines().filter(|l| l.contains(" flags=P")).count();
    assert_eq!(subscribers, 1, "one subscriber connection: {clients}");
    let others = clients.lines().filter(|l| !l.trim().is_empty()).count() - subscribers;
    assert_eq!(send(&format!("CONFIG SET maxclients {others}")).await.trim(), "+OK");
    let killed = send("CLIENT KILL TYPE pubsub").await;
    assert_eq!(killed.trim(), ":1", "one subscriber connection killed");

    eventually(Duration::from_secs(10), "/health names pub/sub down while the engine is up", || async {
        let Ok(r) = get("/health").await else { return false };
        let body: Value = r.json().await.unwrap_or_default();
        body["components"]["pubsub"]["status"] == "unhealthy" && body["components"]["engine"]["status"] == "healthy"
    })
    .await;
    assert_eq!(get("/health/ready").await.unwrap().status(), 503);
    assert_eq!(get("/health/pubsub").await.unwrap().status(), 503);
    assert_eq!(create().await.unwrap().status(), 201, "commands still work");

    assert_eq!(send("CONFIG SET maxclients 10000").await.trim(), "+OK");
    eventually(Duration::from_secs(10), "ready again once the subscriber is back", || async {
        get("/health/ready").await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
}
