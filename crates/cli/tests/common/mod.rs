//! Helpers for tests that run the real `switchboard` binary as separate processes.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The API key every test server gets.
pub const API_KEY: &str = "test-key-0123456789abcdef";

/// A `switchboard serve` process, stopped when dropped (and when the test process dies: it runs
/// under a shell that stops it once our end of its stdin closes).
pub struct Node {
    shell: Child,
    stdin: Option<ChildStdin>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Everything the process printed on stdout before it was ready.
    pub banner: Vec<String>,
    /// The server process's id.
    pub pid: u32,
}

impl Node {
    /// Starts `switchboard serve` on a free loopback port with `env` set (and nothing inherited
    /// that could change its configuration).
    pub fn start(env: &[(&str, &str)]) -> Node {
        Node::start_after("", env)
    }

    /// [`Node::start`], with the shell commands `prelude` run first (limits, traps: the server
    /// inherits them).
    pub fn start_after(prelude: &str, env: &[(&str, &str)]) -> Node {
        let script =
            r#""$0" serve & pid=$!; echo "switchboard pid $pid"; read _closed; kill $pid 2>/dev/null; wait $pid"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude}{script}"))
            .arg(env!("CARGO_BIN_EXE_switchboard"))
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut shell = cmd.spawn().expect("spawn switchboard");
        let stdin = shell.stdin.take();
        let stdout = shell.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let mut pid = 0;
        let base = loop {
            let line = rx.recv_timeout(Duration::from_secs(20)).expect("switchboard did not start within 20 s");
            if let Some(rest) = line.strip_prefix("switchboard listening on ") {
                break rest.split_whitespace().next().expect("address").to_owned();
            }
            if let Some(n) = line.strip_prefix("switchboard pid ") {
                pid = n.trim().parse().expect("pid");
                continue;
            }
            banner.push(line);
        };
        Node { shell, stdin, base, banner, pid }
    }

    /// Kills the server process at once (SIGKILL): no graceful shutdown, sockets left open.
    pub fn kill_hard(&self) {
        let status = Command::new("kill").args(["-9", &self.pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -9 {}", self.pid);
    }

    /// `ws://.../connection/websocket`.
    pub fn ws_url(&self) -> String {
        format!("{}/connection/websocket", self.base.replacen("http://", "ws://", 1))
    }

    /// A URL under `/api/v1`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.shell.wait();
    }
}

/// A client that sends the test API key.
pub fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {API_KEY}").parse().expect("header"));
    reqwest::Client::builder().default_headers(headers).timeout(Duration::from_secs(15)).build().expect("client")
}

/// The environment of a Redis-engine node on `url` with key prefix `prefix`.
pub fn redis_env<'a>(url: &'a str, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("SWITCHBOARD_ENGINE", "redis"),
        ("REDIS_URL", url),
        ("SWITCHBOARD_REDIS__KEY_PREFIX", prefix),
        ("SWITCHBOARD_API_KEYS", concat!("test:", "test-key-0123456789abcdef")),
        ("SWITCHBOARD_TOKEN_SECRET", TOKEN_SECRET),
    ]
}

/// The token secret of [`redis_env`] nodes.
pub const TOKEN_SECRET: &str = "test-secret-for-tokens-only";

/// A client token for `user` on `device`, valid for an hour, signed with `secret`.
pub fn client_token(user: &str, device: &str, secret: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let claims = serde_json::json!({"sub": user, "device": device, "iat": now - 5, "exp": now + 3600});
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
}

/// Reads WebSocket frames (Centrifugo JSON protocol, one command per line) until a line
/// satisfies `want`, answering pings; panics after 15 s without a frame.
pub async fn read_until<S>(ws: &mut S, want: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value
where
    S: futures_util::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + futures_util::Sink<tokio_tungstenite::tungstenite::Message>
        + Unpin,
{
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("a frame in time");
        let Some(Ok(Message::Text(text))) = frame else { panic!("socket ended: {frame:?}") };
        for line in text.as_str().split('\n') {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON");
            if v == serde_json::json!({}) {
                let _ = ws.send(Message::text("{}")).await;
            } else if want(&v) {
                return v;
            }
        }
    }
}

/// Runs the centrifuge-js scenario (tests/js/scenario.mjs: personal channel, chat, refusal,
/// typing, disconnect and recovery) as user `alice` connected to `ws_url` with `token`, the
/// scenario's API calls going to `api` (`.../api/v1`), and checks that every step passed.
pub async fn run_centrifuge_js_scenario(ws_url: &str, token: &str, api: &str) {
    let js = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        js.join("node_modules/centrifuge").exists(),
        "npm packages missing: run `npm ci --prefix crates/cli/tests/js` (scripts/test does)"
    );
    let out = tokio::process::Command::new("node")
        .arg(js.join("scenario.mjs"))
        .env("WS_URL", ws_url)
        .env("TOKEN", token)
        .env("API", api)
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
