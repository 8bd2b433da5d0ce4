//! The real centrifuge-js SDK (npm `centrifuge`, pinned in tests/js/package.json) against a
//! `switchboard serve` process: token from `switchboard token`, personal channel, chat
//! membership, refusal, the typing RPC and recovery after a dropped connection.

mod common;

use std::process::Command;

use common::{API_KEY, Node, client, run_centrifuge_js_scenario};
use serde_json::json;

const SECRET: &str = "centrifuge-js-test-secret";

#[tokio::test]
async fn centrifuge_js_connects_subscribes_calls_and_recovers() {
    let keys = format!("test:{API_KEY}");
    let node = Node::start(&[("SWITCHBOARD_API_KEYS", keys.as_str()), ("SWITCHBOARD_TOKEN_SECRET", SECRET)]);
    let http = client();
    let put = http
        .put(node.api("/conversations/c1"))
        .json(&json!({"type": "group", "members": ["alice", "bob"]}))
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());

    let token = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--user", "alice", "--device", "web-1"])
        .env_clear()
        .env("SWITCHBOARD_TOKEN_SECRET", SECRET)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run switchboard token");
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout).expect("utf-8").trim().to_owned();

    run_centrifuge_js_scenario(&node.ws_url(), &token, &node.api("")).await;
}
