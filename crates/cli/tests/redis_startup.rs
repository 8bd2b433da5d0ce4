//! Start-up before Redis: `switchboard serve` starts with no Redis reachable, is live but not
//! ready and answers API calls with 503 `engine_unavailable`, then serves once Redis comes up,
//! pub/sub included; with `redis.fail_fast` it exits instead.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, client, redis_env};
use serde_json::{Value, json};
use switchboard_conformance::{RedisServer, eventually, free_port};

#[tokio::test]
async fn serve_starts_before_redis_and_serves_once_it_is_up() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let node = Node::start(&redis_env(&url, "sbstart:"));
    let http = client();
    let create = || http.post(node.api("/sessions")).json(&json!({"user_id": "dana"})).send();
    let get = |path: &'static str| http.get(format!("{}{path}", node.base)).send();

    assert_eq!(get("/health/live").await.unwrap().status(), 200);
    let ready = get("/health/ready").await.unwrap();
    assert_eq!(ready.status(), 503);
    let health: Value = get("/health").await.unwrap().json().await.unwrap();
    assert_eq!(health["components"]["engine"]["status"], "unhealthy", "{health}");
    assert_eq!(health["components"]["pubsub"]["status"], "unhealthy", "{health}");
    let r = create().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "engine_unavailable", "{body}");

    let _redis = RedisServer::start_with(port, &[]);
    let up = Instant::now();
    eventually(Duration::from_secs(20), "the API serves once Redis is up", || async {
        create().await.map(|r| r.status() == 201).unwrap_or(false)
    })
    .await;
    eprintln!("serving {:?} after redis-server started", up.elapsed());
    // Ready needs the pub/sub connection too, which connects once the engine has.
    eventually(Duration::from_secs(20), "ready once Redis is up", || async {
        get("/health/ready").await.map(|r| r.status() == 200).unwrap_or(false)
    })
    .await;
    let health: Value = get("/health").await.unwrap().json().await.unwrap();
    assert_eq!(health["components"]["pubsub"]["status"], "healthy", "{health}");
}

/// `--redis-fail-fast` and `SWITCHBOARD_REDIS__FAIL_FAST=true`: no Redis, no server.
#[test]
fn fail_fast_exits_when_redis_is_not_reachable() {
    let url = format!("redis://127.0.0.1:{}", free_port());
    let by_flag: &[&str] = &["serve", "--redis-fail-fast"];
    let by_env: &[&str] = &["serve"];
    for (args, fail_fast_env) in [(by_flag, None), (by_env, Some("true"))] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .env("SWITCHBOARD_REDIS__CONNECT_TIMEOUT_MS", "500")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in redis_env(&url, "sbff:") {
            cmd.env(k, v);
        }
        if let Some(v) = fail_fast_env {
            cmd.env("SWITCHBOARD_REDIS__FAIL_FAST", v);
        }
        let mut child = cmd.spawn().expect("spawn switchboard");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("switchboard serve {args:?} kept running without Redis");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!status.success(), "{args:?}: exit {status}");
        assert!(stderr.contains("cannot connect"), "{args:?}: {stderr}");
        assert!(!String::from_utf8_lossy(&output.stdout).contains("switchboard listening"));
    }
}
