//! The real centrifuge-js SDK (npm `centrifuge`, pinned in tests/js/package.json) against a
//! `switchboard serve` process: token from `switchboard token`, personal channel, chat
//! membership, refusal, the typing RPC and recovery after a dropped connection.

mod common;

use std::path::Path;
use std::process::Command;

use common::{API_KEY, Node, client};
use serde_json::json;

const SECRET: &str = "centrifuge-js-test-secret";

#[tokio::test]
async fn centrifuge_js_connects_subscribes_calls_and_recovers() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/centrifuge").exists(),
        "npm packages missing: run `npm ci --prefix crates/cli/tests/js` (scripts/test does)"
    );
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

    let ws = node.base.replacen("http://", "ws://", 1) + "/connection/websocket";
    let out = tokio::process::Command::new("node")
        .arg(js.join("scenario.mjs"))
        .env("WS_URL", ws)
        .env("TOKEN", token)
        .env("API", node.api(""))
        .env("API_KEY", API_KEY)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the centrifuge-js scenario failed:\n{stdout}");
    for step in
        ["connected", "personal publication", "chat subscribed", "foreign chat refused", "typing", "recovered", "done"]
    {
        assert!(stdout.contains(&format!("\"step\":\"{step}\"")), "missing step {step}:\n{stdout}");
    }
}
