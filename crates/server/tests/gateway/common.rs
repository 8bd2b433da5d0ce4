//! A real server on a loopback port and a raw WebSocket client speaking the Centrifugo JSON
//! protocol, for end-to-end tests of the gateway.

#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_conformance::TestEngine;
use switchboard_core::Switchboard;
use switchboard_server::gateway::{GatewayConfig, TokenKey, TokenVerifier};
use switchboard_server::{ApiKey, AppState, ServerConfig};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

pub const SECRET: &str = "gateway-test-secret";
pub const API_KEY: &str = "gateway-test-api-key";

/// A running server; stopped when dropped.
pub struct Server {
    pub sb: Switchboard,
    pub addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    _engine: TestEngine,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Server {
    pub async fn start(engine: TestEngine) -> Server {
        Self::start_with(engine, GatewayConfig::default()).await
    }

    pub async fn start_with(engine: TestEngine, gateway: GatewayConfig) -> Server {
        let tokens = TokenVerifier::new(&TokenKey::Hs256(SECRET.into())).expect("verifier");
        let config = ServerConfig {
            api_keys: vec![ApiKey::new("tests", API_KEY)],
            gateway: GatewayConfig { tokens: Some(tokens), ..gateway },
            ..ServerConfig::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let state = AppState::new(engine.sb.clone(), config);
        tokio::spawn(switchboard_server::serve(listener, state, shutdown.clone()));
        Server { sb: engine.sb.clone(), addr, shutdown, _engine: engine }
    }

    /// Stops the server: the gateway closes every connection.
    pub fn stop(&self) {
        self.shutdown.cancel();
    }

    pub async fn client(&self) -> Client {
        Client::open(self.addr).await
    }
}

/// Claims of a test token.
pub struct Claims<'a> {
    pub user: &'a str,
    pub device: &'a str,
    pub iat: i64,
    pub exp: i64,
    pub jti: Option<&'a str>,
    pub sid: Option<&'a str>,
}

pub fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl<'a> Claims<'a> {
    pub fn new(user: &'a str, device: &'a str) -> Self {
        Claims { user, device, iat: now_s() - 5, exp: now_s() + 3600, jti: None, sid: None }
    }

    pub fn sign_with(&self, secret: &str) -> String {
        let mut claims = json!({"sub": self.user, "device": self.device, "iat": self.iat, "exp": self.exp});
        if let Some(jti) = self.jti {
            claims["jti"] = json!(jti);
        }
        if let Some(sid) = self.sid {
            claims["sid"] = json!(sid);
        }
        let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign")
    }

    pub fn sign(&self) -> String {
        self.sign_with(SECRET)
    }
}

pub fn token(user: &str, device: &str) -> String {
    Claims::new(user, device).sign()
}

/// What the server sent: a JSON message, or the close frame's code.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Json(Value),
    Closed(Option<u16>),
}

pub struct Client {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    queue: VecDeque<Value>,
    next_id: u64,
    closed: Option<Option<u16>>,
}

impl Client {
    pub async fn open(addr: std::net::SocketAddr) -> Client {
        let (ws, _) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/connection/websocket")).await.expect("ws connect");
        Client { ws, queue: VecDeque::new(), next_id: 1, closed: None }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        let _ = self.ws.send(Message::text(text.into())).await;
    }

    pub async fn send(&mut self, command: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut command = command;
        command["id"] = json!(id);
        self.send_text(command.to_string()).await;
        id
    }

    /// The next message (answering server pings), or the close.
    pub async fn next(&mut self) -> Got {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return Got::Json(v);
            }
            if let Some(code) = self.closed {
                return Got::Closed(code);
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("server answered within 20 s");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
                        let v: Value = serde_json::from_str(line).expect("server sent JSON");
                        if v == json!({}) {
                            self.send_text("{}").await; // pong
                        } else {
                            self.queue.push_back(v);
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => self.closed = Some(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => self.closed = Some(self.closed.flatten()),
            }
        }
    }

    /// The reply to command `id`; pushes read meanwhile stay queued in order.
    pub async fn reply(&mut self, id: u64) -> Value {
        let mut skipped = VecDeque::new();
        loop {
            match self.next().await {
                Got::Json(v) if v["id"] == json!(id) => {
                    skipped.extend(self.queue.drain(..));
                    self.queue = skipped;
                    return v;
                }
                Got::Json(v) => skipped.push_back(v),
                Got::Closed(code) => panic!("closed ({code:?}) before the reply to {id}"),
            }
        }
    }

    /// The next push.
    pub async fn push(&mut self) -> Value {
        match self.next().await {
            Got::Json(v) if v.get("push").is_some() => v["push"].clone(),
            other => panic!("expected a push, got {other:?}"),
        }
    }

    /// Waits for the close and returns its code.
    pub async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Got::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    /// Sends connect and returns its reply.
    pub async fn connect(&mut self, token: &str, subs: Value) -> Value {
        let id = self.send(json!({"connect": {"token": token, "subs": subs}})).await;
        self.reply(id).await
    }
}
