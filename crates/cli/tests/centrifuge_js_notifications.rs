//! Notifications synced across three devices of one user, end to end with the real centrifuge-js
//! SDK against a `switchboard serve` process (tests/js/notifications.mjs): the backend creates
//! notifications over HTTP, devices 1 and 2 get `notification.new` live, device 1 reads through
//! the `notifications.read` RPC, device 2 gets `notification.updated` and device 1 never does,
//! device 3 (offline meanwhile) recovers both events in order on reconnect, and the list and the
//! unread count agree with what the devices saw.

mod common;

use std::path::Path;
use std::process::Command;

use common::{API_KEY, Node, client};
use serde_json::Value;

const SECRET: &str = "centrifuge-js-notifications-secret";
const USER: &str = "nora";

fn mint(user: &str, device: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["token", "--user", user, "--device", device])
        .env_clear()
        .env("SWITCHBOARD_TOKEN_SECRET", SECRET)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run switchboard token");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

#[tokio::test]
async fn centrifuge_js_notifications_sync_across_three_devices() {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/centrifuge").exists(),
        "npm packages missing: run `npm ci --prefix crates/cli/tests/js` (scripts/test does)"
    );
    let keys = format!("test:{API_KEY}");
    let node = Node::start(&[("SWITCHBOARD_API_KEYS", keys.as_str()), ("SWITCHBOARD_TOKEN_SECRET", SECRET)]);

    let out = tokio::process::Command::new("node")
        .arg(js.join("notifications.mjs"))
        .env("WS_URL", node.ws_url())
        .env("USER", USER)
        .env("TOKEN_1", mint(USER, "phone"))
        .env("TOKEN_2", mint(USER, "laptop"))
        .env("TOKEN_3", mint(USER, "tablet"))
        .env("API", node.api(""))
        .env("API_KEY", API_KEY)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the centrifuge-js notifications scenario failed:\n{stdout}");
    for step in [
        "connected",
        "device 3 offline",
        "new notifications live",
        "read synced to device 2",
        "source device excluded",
        "device 3 recovered",
        "list agrees",
        "done",
    ] {
        assert!(stdout.contains(&format!("\"step\":\"{step}\"")), "missing step {step}:\n{stdout}");
    }

    // The server's state after the scenario, read independently of the script.
    let http = client();
    let list: Value =
        http.get(node.api(&format!("/users/{USER}/notifications"))).send().await.unwrap().json().await.unwrap();
    let states: Vec<(&str, bool, bool)> = list["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| (n["id"].as_str().unwrap_or_default(), n["read"] == true, n["dismissed"] == true))
        .collect();
    assert_eq!(states, [("n2", false, false), ("n1", true, false)], "{list}");
    assert_eq!(list["unread"], 1, "{list}");
}
