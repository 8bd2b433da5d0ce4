//! Disk full on the durable single node, for real: `switchboard serve --data-dir` runs under a
//! file-size limit (`ulimit -f`, with SIGXFSZ ignored, so a write past it fails with EFBIG like
//! one on a full disk). Writes past the limit answer 503 `engine_unavailable` and change nothing,
//! reads go on; once the limit is raised (`prlimit` on the running server) writes are accepted
//! again; `doctor` reports a data dir it cannot write; after a SIGKILL and a restart every
//! acknowledged write is there and no refused one.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Node, client};
use serde_json::{Value, json};
use switchboard_conformance::TempDir;

fn env(dir: &str) -> Vec<(&str, &str)> {
    vec![
        ("SWITCHBOARD_DATA_DIR", dir),
        ("SWITCHBOARD_DATA_SYNC", "everysec"),
        ("SWITCHBOARD_API_KEYS", concat!("test:", "test-key-0123456789abcdef")),
        ("SWITCHBOARD_TOKEN_SECRET", "test-secret-for-tokens-only"),
        ("SWITCHBOARD_BUILTIN_JOBS", "false"),
    ]
}

/// Creates notification `id` (about 1 KiB of journal each) for its own user.
async fn create(http: &reqwest::Client, node: &Node, id: &str) -> (u16, Value) {
    let body = json!({"id": id, "title": "disk full", "body": "x".repeat(900)});
    let r = http.post(node.api(&format!("/users/u{id}/notifications"))).json(&body).send().await.expect("answered");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn exists(http: &reqwest::Client, node: &Node, id: &str) -> bool {
    let r = http.get(node.api(&format!("/users/u{id}/notifications/{id}"))).send().await.expect("answered");
    match r.status().as_u16() {
        200 => true,
        404 => false,
        other => panic!("reading notification {id}: {other}"),
    }
}

#[tokio::test]
async fn a_full_disk_refuses_writes_with_503_keeps_reads_and_loses_nothing_acknowledged() {
    let dir = TempDir::new("disk-full");
    let dir_str = dir.path().to_str().expect("utf-8 temp dir").to_owned();
    let http = client();
    // 64 blocks of 512 bytes: 32 KiB per file.
    let node = Node::start_after("trap '' XFSZ; ulimit -S -f 64; ", &env(&dir_str));
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for n in 0..200 {
        let id = format!("n{n}");
        let (status, body) = create(&http, &node, &id).await;
        match status {
            201 => acked.push(id),
            503 => {
                assert_eq!(body["error"]["code"], "engine_unavailable", "{body}");
                refused.push(id);
                break;
            }
            other => panic!("create {id}: {other} {body}"),
        }
    }
    assert!(!refused.is_empty(), "the file-size limit was never reached ({} writes acknowledged)", acked.len());
    assert!(acked.len() >= 5, "a few writes fit under the limit: {}", acked.len());
    // Later writes, of any store, are refused too, and change nothing.
    for n in 200..205 {
        let id = format!("n{n}");
        let (status, body) = create(&http, &node, &id).await;
        assert_eq!((status, body["error"]["code"].as_str()), (503, Some("engine_unavailable")), "{body}");
        refused.push(id);
    }
    // A small record (a token denial) may still fit in the bytes left under the limit: the
    // journal probes the file every second and takes writes again once one fits. Either way it
    // is answered truthfully: refused (503) and absent, or acknowledged and kept.
    let deny = json!({"jti": "small-jti", "expires_at": "2099-01-01T00:00:00Z"});
    let r = http.post(node.api("/tokens/deny")).json(&deny).send().await.expect("answered");
    let deny_acked = match r.status().as_u16() {
        503 => false,
        200 | 201 | 204 => true,
        other => panic!("deny: {other}"),
    };
    let denied = |node: &Node| {
        let (http, url) = (http.clone(), node.api("/tokens/deny/small-jti"));
        async move { http.get(url).send().await.expect("answered").status().as_u16() == 200 }
    };
    assert_eq!(denied(&node).await, deny_acked, "the denial reads as it was answered");
    // Reads go on, and see no refused change.
    for id in &acked {
        assert!(exists(&http, &node, id).await, "acknowledged {id} is readable");
    }
    for id in &refused {
        assert!(!exists(&http, &node, id).await, "refused {id} was rolled back");
    }

    // Space comes back: raise the running server's limit.
    let raised = Command::new("prlimit")
        .args(["--pid", &node.pid.to_string(), "--fsize=unlimited:"])
        .status()
        .expect("prlimit (util-linux) is needed by this test");
    assert!(raised.success(), "prlimit --fsize on the server");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut attempt = 0;
    let resumed = loop {
        attempt += 1;
        let id = format!("after-{attempt}");
        let (status, body) = create(&http, &node, &id).await;
        match status {
            201 => break id,
            503 => refused.push(id),
            other => panic!("create {id}: {other} {body}"),
        }
        assert!(Instant::now() < deadline, "writes were not accepted again within 20 s of the limit being raised");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    acked.push(resumed);
    for n in 0..20 {
        let id = format!("later-{n}");
        assert_eq!(create(&http, &node, &id).await.0, 201);
        acked.push(id);
    }

    // `doctor` tells a data dir that cannot be written (here: under the same kind of limit).
    let doctor = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' XFSZ; ulimit -S -f 1; exec "$0" doctor --data-dir "$1""#)
        .arg(env!("CARGO_BIN_EXE_switchboard"))
        .arg(&dir_str)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run switchboard doctor");
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(!doctor.status.success(), "doctor counts it as a problem:\n{report}");
    assert!(report.contains("error data dir cannot be written (File too large"), "{report}");

    node.kill_hard();
    drop(node);
    let node = Node::start(&env(&dir_str));
    for id in &acked {
        assert!(exists(&http, &node, id).await, "acknowledged {id} survived the restart");
    }
    for id in &refused {
        assert!(!exists(&http, &node, id).await, "refused {id} is not there after the restart");
    }
    assert_eq!(denied(&node).await, deny_acked, "the denial survives the restart exactly as it was answered");
}
