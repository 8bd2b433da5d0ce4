//! The Protobuf variant end to end with a raw Rust client: the handshake (subprotocol and query
//! forms, refusals before the upgrade), the framing edges (several commands per frame, batched
//! replies, ping/pong, bad length prefixes, truncated messages, unknown fields, frames of the
//! other variant), and the same behaviour as JSON for delivery, RPCs, recovery and refusals.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_conformance::TestEngine;
use switchboard_core::conversation::{ConversationKind, ConversationSpec};
use switchboard_core::{ChannelName, ConversationId, NewPublication, UserId};
use switchboard_server::gateway::GatewayConfig;
use switchboard_server::gateway::protobuf::{decode_replies, encode_command};
use switchboard_server::gateway::protocol::{
    Command, CommandResult, ConnectRequest, HistoryRequest, Method, Push, PushBody, RawJson, Reply, RpcRequest,
    SubRecovery, SubscribeRequest,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::common::{Claims, Server, now_s, token};

/// How a client asks for the Protobuf variant.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ask {
    Subprotocol,
    Query(&'static str),
}

/// What the server sent: a reply, or the close frame's code.
#[derive(Debug)]
pub(crate) enum Got {
    Reply(Reply),
    Closed(Option<u16>),
}

pub(crate) struct ProtoClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    queue: VecDeque<Reply>,
    next_id: u32,
    closed: Option<Option<u16>>,
    /// Whether to answer server pings (a client that does not is closed with 3012).
    pub(crate) answer_pings: bool,
    /// Binary frames received, and replies in them.
    pub(crate) frames: usize,
    pub(crate) replies: usize,
    /// Server pings received.
    pub(crate) pings: usize,
}

/// Opens a WebSocket to `/connection/websocket` with `subprotocol` and `query`; the handshake
/// response or the HTTP status of a refusal.
pub(crate) async fn handshake(
    server: &Server,
    subprotocol: Option<&str>,
    query: &str,
) -> Result<(WebSocketStream<MaybeTlsStream<TcpStream>>, Option<String>), u16> {
    let mut request =
        format!("ws://{}/connection/websocket{query}", server.addr).into_client_request().expect("request");
    if let Some(sub) = subprotocol {
        request.headers_mut().insert("sec-websocket-protocol", sub.parse().expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, response)) => {
            let echoed =
                response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
            Ok((ws, echoed))
        }
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("handshake failed: {e}"),
    }
}

impl ProtoClient {
    pub(crate) async fn open(server: &Server, ask: Ask) -> ProtoClient {
        let (ws, echoed) = match ask {
            Ask::Subprotocol => handshake(server, Some("centrifuge-protobuf"), "").await,
            Ask::Query(q) => handshake(server, None, q).await,
        }
        .expect("the handshake is accepted");
        if matches!(ask, Ask::Subprotocol) {
            assert_eq!(echoed.as_deref(), Some("centrifuge-protobuf"));
        }
        ProtoClient {
            ws,
            queue: VecDeque::new(),
            next_id: 1,
            closed: None,
            answer_pings: true,
            frames: 0,
            replies: 0,
            pings: 0,
        }
    }

    pub(crate) async fn send_raw(&mut self, frame: Vec<u8>) {
        let _ = self.ws.send(Message::binary(frame)).await;
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        let _ = self.ws.send(Message::text(text)).await;
    }

    fn command(&mut self, method: Method) -> Command {
        let id = self.next_id;
        self.next_id += 1;
        Command { id, method }
    }

    /// Sends the commands in one binary frame; returns their ids.
    pub(crate) async fn send_all(&mut self, methods: Vec<Method>) -> Vec<u32> {
        let commands: Vec<Command> = methods.into_iter().map(|m| self.command(m)).collect();
        let frame = commands.iter().flat_map(encode_command).collect();
        self.send_raw(frame).await;
        commands.iter().map(|c| c.id).collect()
    }

    pub(crate) async fn send(&mut self, method: Method) -> u32 {
        self.send_all(vec![method]).await[0]
    }

    /// The next reply (answering server pings), or the close.
    pub(crate) async fn next(&mut self) -> Got {
        loop {
            if let Some(r) = self.queue.pop_front() {
                return Got::Reply(r);
            }
            if let Some(code) = self.closed {
                return Got::Closed(code);
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("server answered within 20 s");
            match frame {
                Some(Ok(Message::Binary(bytes))) => {
                    self.frames += 1;
                    let replies = decode_replies(&bytes, usize::MAX).expect("the server sent valid replies");
                    assert!(!replies.is_empty(), "an empty binary frame");
                    self.replies += replies.len();
                    for reply in replies {
                        if reply == Reply::Ping {
                            self.pings += 1;
                            if self.answer_pings {
                                self.send_raw(vec![0x00]).await; // the empty command: pong
                            }
                        } else {
                            self.queue.push_back(reply);
                        }
                    }
                }
                Some(Ok(Message::Text(text))) => panic!("a text frame on a Protobuf connection: {text}"),
                Some(Ok(Message::Close(frame))) => self.closed = Some(frame.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => self.closed = Some(self.closed.flatten()),
            }
        }
    }

    /// The reply to command `id`; pushes read meanwhile stay queued in order.
    pub(crate) async fn reply(&mut self, id: u32) -> Reply {
        let mut skipped = VecDeque::new();
        loop {
            match self.next().await {
                Got::Reply(r) if r.id() == id => {
                    skipped.extend(self.queue.drain(..));
                    self.queue = skipped;
                    return r;
                }
                Got::Reply(r) => skipped.push_back(r),
                Got::Closed(code) => panic!("closed ({code:?}) before the reply to {id}"),
            }
        }
    }

    pub(crate) async fn push(&mut self) -> Push {
        match self.next().await {
            Got::Reply(Reply::Push(p)) => p,
            other => panic!("expected a push, got {other:?}"),
        }
    }

    pub(crate) async fn closed(&mut self) -> Option<u16> {
        loop {
            if let Got::Closed(code) = self.next().await {
                return code;
            }
        }
    }

    pub(crate) async fn connect(&mut self, token: &str) -> Reply {
        let id = self.send(connect(token)).await;
        self.reply(id).await
    }
}

pub(crate) fn connect(token: &str) -> Method {
    Method::Connect(ConnectRequest { token: token.into(), ..ConnectRequest::default() })
}

fn rpc(method: &str, data: Value) -> Method {
    Method::Rpc(RpcRequest { method: method.into(), data: RawJson::to_json(&data).ok() })
}

fn subscribe(channel: &str) -> Method {
    Method::Subscribe(SubscribeRequest { channel: channel.into(), ..SubscribeRequest::default() })
}

/// The JSON of a publication's data (bytes on the wire).
fn data(push: &Push) -> Value {
    match &push.body {
        PushBody::Pub(p) => serde_json::from_str(p.data.as_ref().expect("data").get()).expect("JSON data"),
        other => panic!("not a publication: {other:?}"),
    }
}

fn error_code(reply: &Reply) -> Option<u32> {
    match reply {
        Reply::Error { error, .. } => Some(error.code),
        _ => None,
    }
}

fn personal(user: &str) -> ChannelName {
    ChannelName::user(&UserId::new(user).unwrap())
}

fn event(n: u64) -> NewPublication {
    NewPublication::new(json!({"type": "test.event", "data": {"n": n}}))
}

// ---------------------------------------------------------------------------------------------
// Handshake

pub(crate) async fn handshake_selects_the_variant(t: TestEngine) {
    let server = Server::start(t).await;
    // The subprotocol, echoed; and the legacy query forms, which SDKs send without one.
    for ask in [Ask::Subprotocol, Ask::Query("?cf_protocol=protobuf"), Ask::Query("?format=protobuf")] {
        let mut c = ProtoClient::open(&server, ask).await;
        let reply = c.connect(&token("hana", "phone")).await;
        assert!(matches!(reply, Reply::Result { result: CommandResult::Connect(_), .. }), "{ask:?}: {reply:?}");
    }
    // JSON is the default, and `centrifuge-json` is echoed when asked for.
    let (_, echoed) = handshake(&server, None, "").await.expect("plain");
    assert_eq!(echoed, None);
    let (mut ws, echoed) = handshake(&server, Some("centrifuge-json"), "").await.expect("json");
    assert_eq!(echoed.as_deref(), Some("centrifuge-json"));
    let connect = json!({"id": 1, "connect": {"token": token("hana", "laptop")}}).to_string();
    ws.send(Message::text(connect)).await.unwrap();
    match ws.next().await {
        Some(Ok(Message::Text(text))) => assert!(text.contains("\"connect\""), "{text}"),
        other => panic!("{other:?}"),
    }
    // Formats this server does not speak are refused before the upgrade.
    assert_eq!(handshake(&server, Some("centrifuge-msgpack"), "").await.err(), Some(400));
    assert_eq!(handshake(&server, None, "?cf_protocol=msgpack").await.err(), Some(400));
    assert_eq!(handshake(&server, None, "?format=xml").await.err(), Some(400));
    assert_eq!(handshake(&server, Some("centrifuge-json"), "?format=protobuf").await.err(), Some(400));
}

// ---------------------------------------------------------------------------------------------
// Framing

pub(crate) async fn several_commands_per_frame_and_batched_replies(t: TestEngine) {
    let server = Server::start(t).await;
    let mut c = ProtoClient::open(&server, Ask::Subprotocol).await;
    // Connect and commands in one frame, as the SDKs send them; replies come in order.
    let ids = c
        .send_all(vec![
            connect(&token("ivan", "phone")),
            Method::Ping,
            Method::History(HistoryRequest { channel: "user:ivan".into(), limit: 10, ..Default::default() }),
            rpc("presence.status", json!({"status": "busy"})),
        ])
        .await;
    let mut order = Vec::new();
    for id in &ids {
        let reply = c.reply(*id).await;
        assert_eq!(error_code(&reply), None, "{reply:?}");
        order.push(reply.id());
    }
    assert_eq!(order, ids);
    // A hundred commands in one frame: the replies come back batched, several per frame.
    let before = (c.frames, c.replies);
    let ids = c.send_all((0..100).map(|_| Method::Ping).collect()).await;
    for id in &ids {
        assert!(matches!(c.reply(*id).await, Reply::Result { result: CommandResult::Ping, .. }));
    }
    let (frames, replies) = (c.frames - before.0, c.replies - before.1);
    assert!(replies >= 100 && frames < replies, "{replies} replies in {frames} frames");
}

pub(crate) async fn ping_and_pong_are_empty_messages(t: TestEngine) {
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(100),
        pong_timeout: Duration::from_millis(400),
        ..GatewayConfig::default()
    };
    let server = Server::start_with(t, config).await;
    let mut c = ProtoClient::open(&server, Ask::Subprotocol).await;
    c.connect(&token("jo", "phone")).await;
    // The client answers every ping (an empty message) with the empty command; the connection
    // lives on.
    while c.pings < 3 {
        let id = c.send(Method::Ping).await;
        c.reply(id).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let id = c.send(rpc("presence.status", json!({"status": "away"}))).await;
    assert_eq!(error_code(&c.reply(id).await), None);
    // A client that does not answer is closed with 3012 (no pong).
    let mut silent = ProtoClient::open(&server, Ask::Subprotocol).await;
    silent.answer_pings = false;
    silent.connect(&token("jo", "laptop")).await;
    assert_eq!(silent.closed().await, Some(3012));
}

/// A connected client, then `frame`: the connection is closed with 3501.
async fn closes_with_bad_request(server: &Server, frame: Vec<u8>) {
    let mut c = ProtoClient::open(server, Ask::Subprotocol).await;
    c.connect(&token("kim", "phone")).await;
    c.send_raw(frame).await;
    assert_eq!(c.closed().await, Some(3501));
}

pub(crate) async fn bad_framing_closes_with_bad_request(t: TestEngine) {
    let server = Server::start(t).await;
    // A length prefix past the frame limit (4 GiB announced; nothing that size is allocated).
    closes_with_bad_request(&server, vec![0x80, 0x80, 0x80, 0x80, 0x10, 0x08, 0x01]).await;
    // A length prefix just past the 64 KiB limit, with the frame itself small.
    closes_with_bad_request(&server, vec![0x81, 0x80, 0x04, 0x08, 0x01]).await;
    // A message cut short: five bytes announced, two sent.
    closes_with_bad_request(&server, vec![0x05, 0x08, 0x02]).await;
    // A bad varint: eleven continuation bytes.
    closes_with_bad_request(&server, vec![0xff; 11]).await;
    // A field inside the message cut short (the id's varint never ends).
    closes_with_bad_request(&server, vec![0x02, 0x08, 0x80]).await;
    // An empty frame.
    closes_with_bad_request(&server, vec![]).await;
    // A frame over the 64 KiB limit.
    closes_with_bad_request(&server, vec![0x00; 64 * 1024 + 1]).await;
    // Before connect too, and without the command being acted on.
    let mut c = ProtoClient::open(&server, Ask::Subprotocol).await;
    c.send_raw(vec![0xff, 0xff, 0xff, 0xff, 0x0f]).await;
    assert_eq!(c.closed().await, Some(3501));
}

/// Writes protobuf field `number` of wire type `wire` as a key.
fn key(number: u32, wire: u32) -> Vec<u8> {
    varint(u64::from(number << 3 | wire))
}

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn len_field(number: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = key(number, 2);
    out.extend(varint(bytes.len() as u64));
    out.extend(bytes);
    out
}

fn delimited(message: &[u8]) -> Vec<u8> {
    let mut out = varint(message.len() as u64);
    out.extend(message);
    out
}

pub(crate) async fn unknown_fields_are_skipped(t: TestEngine) {
    let server = Server::start(t).await;
    let mut c = ProtoClient::open(&server, Ask::Subprotocol).await;
    // ConnectRequest { token, headers (6, a map we do not read), profile (9), field 50 }.
    let mut connect = len_field(1, token("lena", "phone").as_bytes());
    connect.extend(len_field(6, &[len_field(1, b"x-app").as_slice(), &len_field(2, b"1")].concat()));
    connect.extend(len_field(9, b"mobile"));
    connect.extend(key(50, 0));
    connect.extend(varint(7));
    // Command { id: 1, connect, field 99 (varint), field 100 (fixed64), field 101 (fixed32) }.
    let mut command = key(1, 0);
    command.extend(varint(1));
    command.extend(len_field(4, &connect));
    command.extend(key(99, 0));
    command.extend(varint(123_456));
    command.extend(key(100, 1));
    command.extend([1, 2, 3, 4, 5, 6, 7, 8]);
    command.extend(key(101, 5));
    command.extend([1, 2, 3, 4]);
    c.send_raw(delimited(&command)).await;
    let reply = c.reply(1).await;
    let Reply::Result { result: CommandResult::Connect(result), .. } = reply else { panic!("{reply:?}") };
    assert!(result.subs.contains_key("user:lena"), "{result:?}");
    // An unknown method alone is a command without a method, as in JSON: refused.
    let mut unknown = key(1, 0);
    unknown.extend(varint(2));
    unknown.extend(len_field(40, &[]));
    c.send_raw(delimited(&unknown)).await;
    assert_eq!(c.closed().await, Some(3501));
}

pub(crate) async fn frames_of_the_other_variant_are_refused(t: TestEngine) {
    let server = Server::start(t).await;
    // A Protobuf frame on a JSON connection.
    let mut json_client = server.client().await;
    json_client.connect(&token("mia", "phone"), json!({})).await;
    let (mut ws, _) = handshake(&server, None, "").await.expect("json");
    ws.send(Message::text(json!({"id": 1, "connect": {"token": token("mia", "laptop")}}).to_string())).await.unwrap();
    let _ = ws.next().await;
    ws.send(Message::binary(encode_command(&Command { id: 2, method: Method::Ping }))).await.unwrap();
    let mut code = None;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Close(frame) = m {
            code = frame.map(|f| u16::from(f.code));
            break;
        }
    }
    assert_eq!(code, Some(3501));
    // A JSON frame on a Protobuf connection.
    let mut c = ProtoClient::open(&server, Ask::Subprotocol).await;
    c.connect(&token("mia", "tablet")).await;
    c.send_text(r#"{"id":2,"ping":{}}"#).await;
    assert_eq!(c.closed().await, Some(3501));
    // The JSON connection opened first is untouched.
    let id = json_client.send(json!({"ping": {}})).await;
    assert_eq!(json_client.reply(id).await["ping"], json!({}));
}

// ---------------------------------------------------------------------------------------------
// Same behaviour as JSON

pub(crate) async fn delivery_rpc_recovery_and_refusals(t: TestEngine) {
    let server = Server::start(t).await;
    let team = ConversationId::new("crew").unwrap();
    let members = ["nico", "olga"].map(|u| UserId::new(u).unwrap()).to_vec();
    let spec = ConversationSpec { kind: ConversationKind::Group, name: None, avatar_url: None, members };
    server.sb.conversations().put(&team, spec).await.unwrap();

    // Two devices of one user (one on each query form) get a personal publication as JSON bytes.
    let mut phone = ProtoClient::open(&server, Ask::Subprotocol).await;
    let mut laptop = ProtoClient::open(&server, Ask::Query("?format=protobuf")).await;
    let reply = phone.connect(&token("nico", "phone")).await;
    let Reply::Result { result: CommandResult::Connect(connected), .. } = reply else { panic!("{reply:?}") };
    assert!(connected.expires && connected.ttl > 0 && connected.pong, "{connected:?}");
    let sub = &connected.subs["user:nico"];
    assert!(sub.recoverable, "{sub:?}");
    let (epoch, offset) = (sub.epoch.clone(), sub.offset);
    laptop.connect(&token("nico", "laptop")).await;
    let position = server.sb.streams().publish(&personal("nico"), event(1)).await.unwrap();
    for device in [&mut phone, &mut laptop] {
        let push = device.push().await;
        assert_eq!(push.channel, "user:nico");
        assert_eq!(data(&push), json!({"type": "test.event", "data": {"n": 1}}));
        assert!(matches!(&push.body, PushBody::Pub(p) if p.offset == position.offset));
    }

    // Chat: subscribe, the typing RPC and its event reach the other member (on JSON).
    let mut olga = server.client().await;
    olga.connect(&token("olga", "phone"), json!({})).await;
    let id = olga.send(json!({"subscribe": {"channel": "chat:crew"}})).await;
    assert!(olga.reply(id).await.get("error").is_none());
    let id = phone.send(subscribe("chat:crew")).await;
    assert_eq!(error_code(&phone.reply(id).await), None);
    let id = phone.send(rpc("typing", json!({"conversation_id": "crew", "typing": true}))).await;
    let reply = phone.reply(id).await;
    assert!(matches!(&reply, Reply::Result { result: CommandResult::Rpc(r), .. } if r.data.is_some()), "{reply:?}");
    let typing = json!({"type": "typing", "data": {"conversation_id": "crew", "user_id": "nico", "typing": true}});
    assert_eq!(olga.push().await["pub"]["data"], typing);
    assert_eq!(data(&phone.push().await), typing);
    // A backend message reaches both formats with the same payload.
    let chat = ChannelName::chat("crew").unwrap();
    let message = json!({"type": "message.new", "data": {"text": "hé ✓"}});
    server.sb.streams().publish(&chat, NewPublication::new(message.clone())).await.unwrap();
    assert_eq!(data(&phone.push().await), message);
    assert_eq!(olga.push().await["pub"]["data"], message);
    // Bad RPC arguments get the same error code as in JSON.
    let id = phone.send(rpc("typing", json!({"conversation_id": 5}))).await;
    assert_eq!(error_code(&phone.reply(id).await), Some(107));

    // Refusals: a chat of others (103), an expired token (109, the socket stays usable, and a
    // fresh token connects), an invalid token (3500).
    let id = phone.send(subscribe("chat:elsewhere")).await;
    assert_eq!(error_code(&phone.reply(id).await), Some(103));
    let mut c = ProtoClient::open(&server, Ask::Subprotocol).await;
    let expired = Claims { iat: now_s() - 7200, exp: now_s() - 3600, ..Claims::new("nico", "tablet") }.sign();
    assert_eq!(error_code(&c.connect(&expired).await), Some(109));
    let reply = c.connect(&token("nico", "tablet")).await;
    assert!(matches!(reply, Reply::Result { result: CommandResult::Connect(_), .. }), "{reply:?}");
    let id = c
        .send(Method::Refresh(switchboard_server::gateway::protocol::RefreshRequest { token: token("nico", "tablet") }))
        .await;
    assert!(matches!(c.reply(id).await, Reply::Result { result: CommandResult::Refresh(r), .. } if r.expires));
    let mut bad = ProtoClient::open(&server, Ask::Subprotocol).await;
    bad.send(connect(&Claims::new("nico", "x").sign_with("wrong-secret"))).await;
    assert_eq!(bad.closed().await, Some(3500));

    // Recovery: the phone goes away; what was published meanwhile comes back in order, once.
    drop(phone);
    for n in 2..=300 {
        server.sb.streams().publish(&personal("nico"), event(n)).await.unwrap();
    }
    let mut phone = ProtoClient::open(&server, Ask::Subprotocol).await;
    let subs = [("user:nico".to_owned(), SubRecovery { recover: true, epoch, offset })].into();
    let id =
        phone.send(Method::Connect(ConnectRequest { token: token("nico", "phone"), subs, ..Default::default() })).await;
    let reply = phone.reply(id).await;
    let Reply::Result { result: CommandResult::Connect(connected), .. } = reply else { panic!("{reply:?}") };
    let sub = &connected.subs["user:nico"];
    assert!(sub.recovered && sub.was_recovering, "{sub:?}");
    let ns: Vec<u64> = sub
        .publications
        .iter()
        .map(|p| serde_json::from_str::<Value>(p.data.as_ref().unwrap().get()).unwrap()["data"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(ns, (1..=300).collect::<Vec<_>>());
}
