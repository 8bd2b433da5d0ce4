//! The stock Centrifugo SDKs in both variants of the protocol, on both engines, through one
//! scenario (tests/js/sdk.mjs for centrifuge-js, its default and its Protobuf build;
//! tests/python/sdk.py for centrifuge-python, `use_protobuf` off and on): connect with
//! a token; a publication to `user:<id>` on two devices; an offline device recovering 1 000
//! missed publications in order; chat subscribe, the typing RPC and its event;
//! `notifications.read` synced to the other device and not the source; refusals (a chat of
//! others 103, an expired token 109 then a fresh one, an invalid token 3500).

mod common;

use std::path::{Path, PathBuf};

use common::{API_KEY, Node, client, redis_env};
use serde_json::json;
use switchboard_conformance::RedisServer;

/// The token secret of [`redis_env`], used for memory nodes too.
const SECRET: &str = "test-secret-for-tokens-only";
const USER: &str = "uma";

fn sign(claims: serde_json::Value, secret: &str) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn token(device: &str) -> String {
    sign(json!({"sub": USER, "device": device, "iat": now() - 5, "exp": now() + 3600}), SECRET)
}

/// The scenario's tokens, as the scripts read them from the environment.
fn tokens() -> Vec<(&'static str, String)> {
    vec![
        ("TOKEN_A", token("a")),
        ("TOKEN_B", token("b")),
        ("TOKEN_C", token("c")),
        ("TOKEN_EXPIRED", sign(json!({"sub": USER, "device": "d", "iat": now() - 7200, "exp": now() - 3600}), SECRET)),
        ("TOKEN_FRESH", token("d")),
        ("TOKEN_INVALID", sign(json!({"sub": USER, "device": "e", "iat": now(), "exp": now() + 600}), "another-key")),
    ]
}

#[derive(Clone, Copy)]
enum Engine {
    Memory,
    Redis,
}

/// A node on `engine` (and the redis-server it uses, stopped after the node), with `USER` a
/// member of conversation c1 and not of c2.
async fn start(engine: Engine) -> (Node, Option<RedisServer>) {
    let (node, redis) = match engine {
        Engine::Memory => {
            let keys = format!("test:{API_KEY}");
            (Node::start(&[("SWITCHBOARD_API_KEYS", keys.as_str()), ("SWITCHBOARD_TOKEN_SECRET", SECRET)]), None)
        }
        Engine::Redis => {
            let redis = RedisServer::start();
            let url = redis.url();
            (Node::start(&redis_env(&url, "sdk:")), Some(redis))
        }
    };
    let http = client();
    for (id, members) in [("c1", json!([USER, "vic"])), ("c2", json!(["vic", "wes"]))] {
        let put = http
            .put(node.api(&format!("/conversations/{id}")))
            .json(&json!({"type": "group", "members": members}))
            .send()
            .await
            .expect("PUT conversation");
        assert!(put.status().is_success(), "{}", put.status());
    }
    (node, redis)
}

/// The steps every run must print, in order.
const STEPS: [&str; 9] = [
    "connected",
    "personal publication on two devices",
    "offline device recovered",
    "chat subscribed, typing",
    "read synced to the other device only",
    "foreign chat refused",
    "expired token refreshed",
    "invalid token refused",
    "done",
];

fn assert_steps(stdout: &str, what: &str) {
    let mut from = 0;
    for step in STEPS {
        let needle = format!("\"step\":\"{step}\"");
        match stdout[from..].find(&needle) {
            Some(at) => from += at + needle.len(),
            None => panic!("{what}: missing step {step}:\n{stdout}"),
        }
    }
}

fn js_dir() -> PathBuf {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/centrifuge").exists(),
        "npm packages missing: run `npm ci --prefix crates/cli/tests/js` (scripts/test does)"
    );
    js
}

/// Runs `script` of the SDK `sdk` with `interpreter` in `dir` against a fresh node on `engine`,
/// speaking `protocol`; the script prints the scenario's steps.
async fn run_sdk(sdk: &str, interpreter: &str, dir: &Path, script: &str, engine: Engine, protocol: &str) {
    let (node, _redis) = start(engine).await;
    let out = tokio::process::Command::new(interpreter)
        .arg(dir.join(script))
        .current_dir(dir)
        .env("WS_URL", node.ws_url())
        .env("API", node.api(""))
        .env("API_KEY", API_KEY)
        .env("PROTOCOL", protocol)
        .env("USER", USER)
        .envs(tokens())
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {interpreter}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the {sdk} {protocol} scenario failed:\n{stdout}");
    assert_steps(&stdout, &format!("{sdk} {protocol}"));
    assert!(stdout.contains(&format!("\"protocol\":\"{protocol}\"")), "{stdout}");
}

async fn centrifuge_js(engine: Engine, protocol: &str) {
    run_sdk("centrifuge-js", "node", &js_dir(), "sdk.mjs", engine, protocol).await;
}

#[tokio::test]
async fn centrifuge_js_json_memory() {
    centrifuge_js(Engine::Memory, "json").await;
}

#[tokio::test]
async fn centrifuge_js_protobuf_memory() {
    centrifuge_js(Engine::Memory, "protobuf").await;
}

#[tokio::test]
async fn centrifuge_js_json_redis() {
    centrifuge_js(Engine::Redis, "json").await;
}

#[tokio::test]
async fn centrifuge_js_protobuf_redis() {
    centrifuge_js(Engine::Redis, "protobuf").await;
}

fn python_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python");
    let found = std::process::Command::new("python3")
        .args(["-c", "import centrifuge"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "centrifuge-python missing: run `python3 -m pip install -r crates/cli/tests/python/requirements.txt` \
         (scripts/test does)"
    );
    dir
}

async fn centrifuge_python(engine: Engine, protocol: &str) {
    run_sdk("centrifuge-python", "python3", &python_dir(), "sdk.py", engine, protocol).await;
}

#[tokio::test]
async fn centrifuge_python_json_memory() {
    centrifuge_python(Engine::Memory, "json").await;
}

#[tokio::test]
async fn centrifuge_python_protobuf_memory() {
    centrifuge_python(Engine::Memory, "protobuf").await;
}

#[tokio::test]
async fn centrifuge_python_json_redis() {
    centrifuge_python(Engine::Redis, "json").await;
}

#[tokio::test]
async fn centrifuge_python_protobuf_redis() {
    centrifuge_python(Engine::Redis, "protobuf").await;
}
