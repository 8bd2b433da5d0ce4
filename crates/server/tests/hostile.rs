//! Hostile HTTP clients against a real server on a loopback port: trickled headers, bodies that
//! never arrive, lying `Content-Length`, connection floods, slow `/api/v1` requests. Timeouts are
//! configured short; every assertion allows generous slack for a loaded machine.

#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use switchboard_conformance::TestEngine;
use switchboard_server::{ApiKey, AppState, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

const API_KEY: &str = "hostile-test-api-key";

/// A running server over the memory engine; stopped when dropped.
struct Server {
    addr: SocketAddr,
    shutdown: CancellationToken,
    _engine: TestEngine,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Server {
    /// `config` plus the test API key.
    async fn start(config: ServerConfig) -> Server {
        let engine = switchboard_conformance::memory_engine().await;
        let config = ServerConfig { api_keys: vec![ApiKey::new("tests", API_KEY)], ..config };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let state = AppState::new(engine.sb.clone(), config);
        tokio::spawn(switchboard_server::serve(listener, state, shutdown.clone()));
        Server { addr, shutdown, _engine: engine }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.expect("connect")
    }

    /// One request on a fresh connection.
    async fn send(&self, head: &str, body: &[u8]) -> Reply {
        let mut tcp = self.connect().await;
        tcp.write_all(head.as_bytes()).await.expect("write head");
        tcp.write_all(body).await.expect("write body");
        read_reply(&mut tcp, Duration::from_secs(10)).await.expect("a reply")
    }
}

/// The head of a request with the API key; `extra` lines end in `\r\n`.
fn head(method: &str, path: &str, extra: &str) -> String {
    format!("{method} {path} HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {API_KEY}\r\n{extra}\r\n")
}

/// A parsed answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    json: Value,
}

impl Reply {
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.json["error"]["code"], code, "{self:?}");
        assert!(self.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
    }

    fn closes(&self) -> bool {
        self.head.to_ascii_lowercase().contains("connection: close")
    }
}

/// Reads one response (head and `Content-Length` body); `None` if the connection closed or
/// nothing complete came within `within`.
async fn read_reply(tcp: &mut TcpStream, within: Duration) -> Option<Reply> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let length = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + length {
                    let status = head.split_whitespace().nth(1)?.parse().ok()?;
                    let json = serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                    return Some(Reply { status, head, json });
                }
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok().flatten()
}

/// Waits for the server to close `tcp` (EOF or reset), reading and discarding whatever it sends;
/// the time it took, or `None` if still open after `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let drain = async {
        let mut chunk = [0u8; 1024];
        while let Ok(n) = tcp.read(&mut chunk).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::time::timeout(within, drain).await.ok().map(|()| started.elapsed())
}

/// `n` connections that each sent half a request head.
async fn hold(server: &Server, n: usize, partial: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        let mut tcp = server.connect().await;
        tcp.write_all(partial).await.expect("half a request");
        held.push(tcp);
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_headers_are_cut_at_the_header_timeout() {
    let timeout = Duration::from_millis(500);
    let server = Server::start(ServerConfig { header_read_timeout: timeout, ..ServerConfig::default() }).await;

    // 60 bytes at one per 100 ms would take 6 s: far past the timeout.
    let (mut reader, mut writer) = server.connect().await.into_split();
    let trickle = tokio::spawn(async move {
        for byte in head("GET", "/api/v1/info", "").bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(4), reader.read_to_end(&mut seen)).await;
    let took = started.elapsed();
    trickle.abort();
    assert!(closed.is_ok(), "a trickling client was still connected after {took:?}");
    assert!(took >= timeout - Duration::from_millis(100), "closed before the header timeout: {took:?}");
    assert!(!String::from_utf8_lossy(&seen).contains(" 200 "), "the trickled request was served");

    // A connection that sends nothing at all is closed the same way.
    let mut idle = server.connect().await;
    let took = closed_within(&mut idle, Duration::from_secs(4)).await;
    assert!(took.is_some_and(|t| t >= timeout - Duration::from_millis(100)), "idle connection: {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_never_arrives_is_answered_408_after_the_body_timeout() {
    let timeout = Duration::from_millis(500);
    let config = ServerConfig { body_read_timeout: timeout, ..ServerConfig::default() };
    let server = Server::start(config).await;

    let started = Instant::now();
    let mut tcp = server.connect().await;
    let request = head("POST", "/api/v1/sessions", "Content-Type: application/json\r\nContent-Length: 100\r\n");
    tcp.write_all(request.as_bytes()).await.expect("head");
    tcp.write_all(br#"{"user_id""#).await.expect("10 bytes of body");
    let reply = read_reply(&mut tcp, Duration::from_secs(5)).await.expect("an answer after the body timeout");
    let took = started.elapsed();
    reply.assert_error(408, "request_timeout");
    assert!(reply.closes(), "{reply:?}");
    assert!(took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(4), "answered after {took:?}");
    assert!(closed_within(&mut tcp, Duration::from_secs(2)).await.is_some(), "connection left open after 408");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_refused_413_before_any_body_is_read() {
    // Long body timeout: the answer must not come from it.
    let config = ServerConfig { body_read_timeout: Duration::from_secs(30), ..ServerConfig::default() };
    let server = Server::start(config).await;

    for path in ["/api/v1/sessions", "/api/v1/queues/fetch", "/no/such/route"] {
        let started = Instant::now();
        let request = head("POST", path, "Content-Type: application/json\r\nContent-Length: 99999999999\r\n");
        let reply = server.send(&request, b"").await;
        reply.assert_error(413, "payload_too_large");
        assert!(reply.json["error"]["message"].as_str().is_some_and(|m| m.contains("1048576")), "{reply:?}");
        assert!(reply.closes(), "{reply:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{path}: 413 took {:?}", started.elapsed());
    }
    // Without an API key too: the size is refused before authentication.
    let request = "POST /api/v1/sessions HTTP/1.1\r\nHost: test\r\nContent-Length: 99999999999\r\n\r\n";
    server.send(request, b"").await.assert_error(413, "payload_too_large");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_when_the_connection_cap_is_reached_and_service_resumes() {
    let config = ServerConfig {
        max_connections: 8,
        health_reserve_connections: 4,
        // Long enough that the held connections stay for the whole test.
        header_read_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let info = head("GET", "/api/v1/info", "");

    // 8 half-sent requests fill the cap.
    let held = hold(&server, 8, b"GET /api/v1/info HTTP/1.1\r\nHost: te").await;
    // The server accepts in connection order, so the 8 hold the cap before the probes arrive.
    for path in ["/health/live", "/health/ready", "/health"] {
        let reply = server.send(&format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"), b"").await;
        assert_eq!(reply.status, 200, "{path} at the cap: {reply:?}");
    }
    let refused = server.send(&info, b"").await;
    refused.assert_error(503, "unavailable");
    assert!(refused.closes(), "{refused:?}");
    assert!(refused.head.contains("retry-after: 1") || refused.head.contains("Retry-After: 1"), "{refused:?}");

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = server.send(&info, b"").await;
        if reply.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "service did not resume: {reply:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_reserve_connection_makes_way_for_a_health_probe() {
    let config = ServerConfig {
        max_connections: 2,
        health_reserve_connections: 1,
        header_read_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let mut held = hold(&server, 2, b"GET /health/live HTT").await;
    // This one takes the only reserve slot and stays silent.
    let mut squatter = hold(&server, 1, b"GET /health/li").await.remove(0);

    let reply = server.send("GET /health/live HTTP/1.1\r\nHost: test\r\n\r\n", b"").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.closes(), "reserve connections serve one request: {reply:?}");
    let took = closed_within(&mut squatter, Duration::from_secs(2)).await;
    assert!(took.is_some(), "the silent reserve connection was not pushed out");
    // The connections holding the cap were not touched.
    for tcp in &mut held {
        tcp.write_all(b"P/1.1\r\nHost: test\r\n\r\n").await.expect("rest of the request");
        let reply = read_reply(tcp, Duration::from_secs(5)).await.expect("held connection answered");
        assert_eq!(reply.status, 200, "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_without_a_reserve_are_closed_at_once() {
    let config = ServerConfig {
        max_connections: 2,
        health_reserve_connections: 0,
        header_read_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;
    let _held = hold(&server, 2, b"GET /api/v1/info HTTP/1.1\r\n").await;
    for _ in 0..5 {
        let mut extra = server.connect().await;
        let took = closed_within(&mut extra, Duration::from_secs(2)).await;
        assert!(took.is_some_and(|t| t < Duration::from_secs(1)), "a connection past the cap was held: {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_connections_stop_counting_against_the_cap() {
    let config = ServerConfig { max_connections: 2, health_reserve_connections: 0, ..ServerConfig::default() };
    let server = Server::start(config).await;
    let url = format!("ws://{}/connection/websocket", server.addr);
    let mut sockets = Vec::new();
    for _ in 0..4 {
        let (ws, response) = tokio_tungstenite::connect_async(url.as_str()).await.expect("upgrade past the HTTP cap");
        assert_eq!(response.status().as_u16(), 101);
        sockets.push(ws);
    }
    // Plain HTTP still has both slots: a keep-alive connection takes one...
    let mut kept = server.connect().await;
    kept.write_all(head("GET", "/api/v1/info", "").as_bytes()).await.expect("request");
    let reply = read_reply(&mut kept, Duration::from_secs(5)).await.expect("answer");
    assert_eq!(reply.status, 200, "{reply:?}");
    // ...a half-sent request the other, and the next connection is closed: the cap applies.
    let _held = hold(&server, 1, b"GET /api/v1/info HTTP/1.1\r\n").await;
    let mut extra = server.connect().await;
    assert!(closed_within(&mut extra, Duration::from_secs(2)).await.is_some(), "the cap did not apply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_requests_are_cut_at_the_request_timeout_but_long_polls_get_their_wait() {
    let timeout = Duration::from_millis(300);
    let config = ServerConfig {
        request_timeout: timeout,
        body_read_timeout: Duration::from_secs(30),
        ..ServerConfig::default()
    };
    let server = Server::start(config).await;

    // A body that stalls keeps the request running: the request timeout answers it.
    let started = Instant::now();
    let mut tcp = server.connect().await;
    let request = head("POST", "/api/v1/sessions", "Content-Type: application/json\r\nContent-Length: 100\r\n");
    tcp.write_all(request.as_bytes()).await.expect("head");
    tcp.write_all(br#"{"user_id""#).await.expect("10 bytes of body");
    let reply = read_reply(&mut tcp, Duration::from_secs(5)).await.expect("an answer after the request timeout");
    let took = started.elapsed();
    reply.assert_error(503, "unavailable");
    assert!(took >= timeout - Duration::from_millis(50) && took < Duration::from_secs(4), "answered after {took:?}");

    // A long-poll may wait longer than the request timeout: its own bounded wait applies.
    let body = br#"{"queues":["hostile"],"wait_ms":800}"#;
    let extra = format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    let started = Instant::now();
    let reply = server.send(&head("POST", "/api/v1/queues/fetch", &extra), body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json["jobs"], serde_json::json!([]), "{reply:?}");
    assert!(started.elapsed() >= Duration::from_millis(750), "the long-poll did not wait: {:?}", started.elapsed());
}
