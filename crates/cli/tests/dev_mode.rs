//! `switchboard serve` with no configuration at all runs in dev mode on the memory engine.

mod common;

use common::Node;

#[tokio::test]
async fn serve_without_config_runs_dev_mode() {
    let node = Node::start(&[]);
    let key_line = node
        .banner
        .iter()
        .find(|l| l.trim_start().starts_with("SWITCHBOARD_API_KEYS="))
        .expect("dev mode prints an API key");
    let key = key_line
        .trim()
        .trim_start_matches("SWITCHBOARD_API_KEYS=")
        .split_once(':')
        .map(|(_, k)| k.to_owned())
        .expect("name:key");
    assert!(
        node.banner.iter().any(|l| l.trim_start().starts_with("SWITCHBOARD_TOKEN_SECRET=")),
        "dev mode prints a token secret"
    );
    let http = reqwest::Client::new();
    assert_eq!(http.get(format!("{}/health/live", node.base)).send().await.unwrap().status(), 200);
    let info = http.get(format!("{}/api/v1/info", node.base)).send().await.unwrap();
    assert_eq!(info.status(), 401, "the API needs the key");
    let info: serde_json::Value =
        http.get(format!("{}/api/v1/info", node.base)).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(info["engine"]["name"], "memory");
}
