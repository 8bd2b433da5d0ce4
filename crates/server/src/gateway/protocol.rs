//! The Centrifugo client protocol v2 as Rust types: [`Command`]s from clients, [`Reply`]s and
//! [`Push`]es from the server, with their JSON encoding. The Protobuf variant converts to and
//! from the same types ([`super::protobuf`]), so the connection loop sees one model.
//!
//! JSON names are those of the protocol's `client.proto` (snake_case). As the reference server
//! does, a field holding its zero value (`false`, `0`, `""`, an empty map or list, no `data`) is
//! left out, except the few the protocol always writes: `ClientInfo.user`/`client`, the history
//! result's `publications`/`epoch`/`offset`, the presence result's `presence` and the presence
//! stats' `num_clients`/`num_users`. Decoding is lenient the same way: unknown fields are ignored
//! and `null` reads as the zero value, so newer SDKs keep working. Offsets are JSON numbers
//! (`u64`). `data` fields carry any JSON value verbatim ([`RawJson`]).
//!
//! Both directions serialize and deserialize, so Rust test clients can speak the protocol too.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeOwned, Deserializer};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::codes::{DisconnectCode, ErrorCode, UnsubscribeCode};

/// A JSON value carried verbatim: the `data` of commands, publications and RPC results. It is
/// kept as text (validated JSON), so a handler parses it once into its own type and a publication
/// is embedded in pushes without being parsed again. `Debug` shows its size, never its content.
///
/// The text never holds a line break: replies are newline-delimited, so line breaks (which valid
/// JSON can only have as whitespace between tokens) are turned into spaces when a value is built.
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct RawJson(Box<RawValue>);

impl RawJson {
    /// Wraps JSON text, checking that it is one valid JSON value.
    pub fn from_text(text: impl Into<String>) -> Result<Self, serde_json::Error> {
        RawValue::from_string(text.into()).and_then(Self::single_line)
    }

    /// Replaces line breaks by spaces. Valid JSON has raw `\n`/`\r` only as whitespace between
    /// tokens (inside strings they must be escaped), so this never changes the value.
    fn single_line(raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        if raw.get().contains(['\n', '\r']) {
            RawValue::from_string(raw.get().replace(['\n', '\r'], " ")).map(RawJson)
        } else {
            Ok(RawJson(raw))
        }
    }

    /// Serializes `value` to JSON.
    pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(RawJson)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parses the value into `T` (e.g. an RPC method's arguments).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(d)?;
        RawJson::single_line(raw).map_err(serde::de::Error::custom)
    }
}

impl PartialEq for RawJson {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}
impl Eq for RawJson {}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RawJson({} bytes)", self.get().len())
    }
}

/// Zero values are left out of the JSON, as the protocol's encoder does.
fn is_zero<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// `null` reads as the zero value, as it does for the reference server's decoder.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An empty message (`{}`): the results of unsubscribe, publish and ping, the ping request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Empty {}

// ---------------------------------------------------------------------------------------------
// Commands

/// One command from a client: `{"id": 1, "<method>": {...}}`. The reply to it carries the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Correlates the reply; 0 only for [`Method::Pong`] and [`Method::Send`] (which get none).
    pub id: u32,
    /// What the client asks for.
    pub method: Method,
}

/// The request of a [`Command`]: exactly one per command.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// The empty command `{}`: the client's pong to a server ping. No reply.
    Pong,
    /// `connect`: authenticate with a token, recover server-side subscriptions.
    Connect(ConnectRequest),
    /// `subscribe` to a channel.
    Subscribe(SubscribeRequest),
    /// `unsubscribe` from a channel.
    Unsubscribe(UnsubscribeRequest),
    /// `publish` into a channel.
    Publish(PublishRequest),
    /// `presence`: who is in a channel.
    Presence(PresenceRequest),
    /// `presence_stats`: how many clients and users are in a channel.
    PresenceStats(PresenceStatsRequest),
    /// `history`: a channel's recent publications.
    History(HistoryRequest),
    /// `ping` with an id: the client-initiated ping of older SDKs, answered with `"ping": {}`.
    Ping,
    /// `send`: an asynchronous message to the server, no reply.
    Send(SendRequest),
    /// `rpc`: call a server method.
    Rpc(RpcRequest),
    /// `refresh`: a new connection token before the current one expires.
    Refresh(RefreshRequest),
    /// `sub_refresh`: a new subscription token.
    SubRefresh(SubRefreshRequest),
}

impl Method {
    /// The method's JSON name (`"pong"` for the empty command), for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Pong => "pong",
            Method::Connect(_) => "connect",
            Method::Subscribe(_) => "subscribe",
            Method::Unsubscribe(_) => "unsubscribe",
            Method::Publish(_) => "publish",
            Method::Presence(_) => "presence",
            Method::PresenceStats(_) => "presence_stats",
            Method::History(_) => "history",
            Method::Ping => "ping",
            Method::Send(_) => "send",
            Method::Rpc(_) => "rpc",
            Method::Refresh(_) => "refresh",
            Method::SubRefresh(_) => "sub_refresh",
        }
    }

    /// The channel the method addresses, if it addresses one.
    pub fn channel(&self) -> Option<&str> {
        match self {
            Method::Subscribe(r) => Some(&r.channel),
            Method::Unsubscribe(r) => Some(&r.channel),
            Method::Publish(r) => Some(&r.channel),
            Method::Presence(r) => Some(&r.channel),
            Method::PresenceStats(r) => Some(&r.channel),
            Method::History(r) => Some(&r.channel),
            Method::SubRefresh(r) => Some(&r.channel),
            _ => None,
        }
    }
}

/// `connect`. SDKs send `{"token": "...", "subs": {"user:42": {"recover": true, "epoch": "...",
/// "offset": 7}}}`; `subs` lists the server-side subscriptions to recover.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectRequest {
    /// The connection JWT.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub token: String,
    /// Custom connect data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
    /// Server-side subscriptions the client had, by channel, with its position in each.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub subs: BTreeMap<String, SubRecovery>,
    /// Client name (SDK setting).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub name: String,
    /// Client version (SDK setting).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub version: String,
}

/// A server-side subscription's position in a `connect` command's `subs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRecovery {
    /// Whether the client asks to recover missed publications.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub recover: bool,
    /// The stream epoch the client last saw.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub epoch: String,
    /// The last offset the client received.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub offset: u64,
}

/// `subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscribeRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
    /// A subscription token, when the channel needs one.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub token: String,
    /// Whether the client asks to recover publications since `epoch`/`offset`.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub recover: bool,
    /// The stream epoch the client last saw.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub epoch: String,
    /// The last offset the client received.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Custom subscribe data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
    /// The client wants stream positions tracked (`positioned` subscription).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub positioned: bool,
    /// The client wants a recoverable subscription.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub recoverable: bool,
    /// The client wants join/leave pushes.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub join_leave: bool,
    /// Subscription feature bits the SDK supports (centrifuge-js sends 1, channel compaction;
    /// the server may ignore them: a result without `id` keeps pushes addressed by name).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub flag: i64,
}

/// `unsubscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribeRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
}

/// `publish`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
    /// The publication's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

/// `presence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
}

/// `presence_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceStatsRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
}

/// `history`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
    /// How many publications at most: 0 asks for none (only the stream position), a negative
    /// value for all the server allows.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub limit: i32,
    /// Return publications after this position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
    /// Newest first.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub reverse: bool,
}

/// A position in a channel stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPosition {
    /// The offset.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// The epoch.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub epoch: String,
}

/// `send`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SendRequest {
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

/// `rpc`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RpcRequest {
    /// The method name (`typing`, `presence.status`, ...).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub method: String,
    /// The arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

/// `refresh`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRequest {
    /// The new connection token.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub token: String,
}

/// `sub_refresh`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRefreshRequest {
    /// The channel.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub channel: String,
    /// The new subscription token.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub token: String,
}

/// Why a command read from a frame is not acceptable. Every kind is a protocol violation: the
/// reference server answers all of them by closing with [`DisconnectCode::BadRequest`]. Messages
/// never quote the client's input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame holds no command at all.
    #[error("empty frame")]
    EmptyFrame,
    /// The frame is larger than the configured limit.
    #[error("frame of {size} bytes is over the limit of {limit} bytes")]
    FrameTooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The frame holds more commands than the configured limit.
    #[error("frame holds {count} commands, over the limit of {limit}")]
    TooManyCommands {
        /// Commands in the frame.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A line is not a JSON command object (syntax, or a field of the wrong type).
    #[error("command {index} of the frame is malformed: {kind} error at column {column}")]
    Malformed {
        /// The command's position in the frame, from 0.
        index: usize,
        /// `syntax`, `data` (wrong type or value) or `eof` (truncated).
        kind: &'static str,
        /// Column of the error in the line, from 1.
        column: usize,
    },
    /// A command with a method but without an id (only pong and send may omit it).
    #[error("{method} command without id")]
    MissingId {
        /// The method's name.
        method: &'static str,
    },
    /// A command with an id but no method this protocol knows.
    #[error("command {id} has no known method")]
    NoMethod {
        /// The command's id.
        id: u32,
    },
    /// A command naming more than one method (the protocol allows refusing it).
    #[error("command {id} has more than one method")]
    SeveralMethods {
        /// The command's id.
        id: u32,
    },
    /// A channel method without a channel.
    #[error("{method} command without channel")]
    MissingChannel {
        /// The method's name.
        method: &'static str,
    },
    /// Protobuf: a message's length prefix is not a varint (too long, or cut off).
    #[error("the length prefix of message {index} is not a valid varint")]
    BadLength {
        /// The message's position in the frame, from 0.
        index: usize,
    },
    /// Protobuf: a message announces more bytes than a frame may hold. Refused before anything
    /// is allocated for it.
    #[error("message {index} announces {len} bytes, over the frame limit of {limit} bytes")]
    LengthOverLimit {
        /// The message's position in the frame, from 0.
        index: usize,
        /// The announced length.
        len: u64,
        /// The frame limit.
        limit: usize,
    },
    /// Protobuf: a message announces more bytes than the frame has left.
    #[error("message {index} announces {len} bytes, only {remaining} follow")]
    Truncated {
        /// The message's position in the frame, from 0.
        index: usize,
        /// The announced length.
        len: u64,
        /// The bytes left in the frame.
        remaining: usize,
    },
    /// Protobuf: a message is not a valid `Command` (bad field encoding, truncated field).
    #[error("message {index} is not a valid Protobuf command")]
    Undecodable {
        /// The message's position in the frame, from 0.
        index: usize,
    },
    /// Protobuf: a command's `data` bytes are not JSON text (Switchboard's payloads are JSON in
    /// both variants).
    #[error("{method} command data is not JSON")]
    DataNotJson {
        /// The method's name.
        method: &'static str,
    },
    /// A binary frame on a JSON connection, or a text frame on a Protobuf connection.
    #[error("a {got} frame on a {protocol} connection")]
    WrongFrameType {
        /// `text` or `binary`.
        got: &'static str,
        /// The connection's protocol (`json` or `protobuf`).
        protocol: &'static str,
    },
}

impl ProtocolError {
    /// How the connection is closed: always [`DisconnectCode::BadRequest`] (terminal), as the
    /// reference server does for any malformed or unexpected frame.
    pub fn disconnect(&self) -> DisconnectCode {
        DisconnectCode::BadRequest
    }
}

/// The wire shape of a command: every method optional, as in `client.proto`. Both codecs decode
/// into it, so [`Command::from_wire`] applies the same rules to both.
#[derive(Default, Deserialize)]
pub(super) struct WireCommand {
    #[serde(default, deserialize_with = "nullable")]
    pub(super) id: u32,
    pub(super) connect: Option<ConnectRequest>,
    pub(super) subscribe: Option<SubscribeRequest>,
    pub(super) unsubscribe: Option<UnsubscribeRequest>,
    pub(super) publish: Option<PublishRequest>,
    pub(super) presence: Option<PresenceRequest>,
    pub(super) presence_stats: Option<PresenceStatsRequest>,
    pub(super) history: Option<HistoryRequest>,
    /// `ping` is an empty message in both variants.
    #[serde(default, deserialize_with = "present")]
    pub(super) ping: bool,
    pub(super) send: Option<SendRequest>,
    pub(super) rpc: Option<RpcRequest>,
    pub(super) refresh: Option<RefreshRequest>,
    pub(super) sub_refresh: Option<SubRefreshRequest>,
}

/// Whether an optional empty message is there (`null` reads as absent).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<Empty>::deserialize(d)?.is_some())
}

impl Command {
    /// Checks a decoded wire command against the protocol's rules: one method, an id unless it
    /// is the pong or `send`, a channel for the channel methods.
    pub(super) fn from_wire(w: WireCommand) -> Result<Self, ProtocolError> {
        let id = w.id;
        let mut methods = Vec::with_capacity(1);
        methods.extend(w.connect.map(Method::Connect));
        methods.extend(w.subscribe.map(Method::Subscribe));
        methods.extend(w.unsubscribe.map(Method::Unsubscribe));
        methods.extend(w.publish.map(Method::Publish));
        methods.extend(w.presence.map(Method::Presence));
        methods.extend(w.presence_stats.map(Method::PresenceStats));
        methods.extend(w.history.map(Method::History));
        methods.extend(w.ping.then_some(Method::Ping));
        methods.extend(w.send.map(Method::Send));
        methods.extend(w.rpc.map(Method::Rpc));
        methods.extend(w.refresh.map(Method::Refresh));
        methods.extend(w.sub_refresh.map(Method::SubRefresh));
        if methods.len() > 1 {
            return Err(ProtocolError::SeveralMethods { id });
        }
        let method = match methods.pop() {
            None if id == 0 => Method::Pong,
            None => return Err(ProtocolError::NoMethod { id }),
            Some(m) => m,
        };
        // Only the pong and `send` travel without an id: neither gets a reply.
        if id == 0 && !matches!(method, Method::Pong | Method::Send(_)) {
            return Err(ProtocolError::MissingId { method: method.name() });
        }
        if method.channel().is_some_and(str::is_empty) {
            return Err(ProtocolError::MissingChannel { method: method.name() });
        }
        Ok(Command { id, method })
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = WireCommand::deserialize(d)?;
        Command::from_wire(wire).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if self.id != 0 {
            m.serialize_entry("id", &self.id)?;
        }
        match &self.method {
            Method::Pong => {}
            Method::Connect(r) => m.serialize_entry("connect", r)?,
            Method::Subscribe(r) => m.serialize_entry("subscribe", r)?,
            Method::Unsubscribe(r) => m.serialize_entry("unsubscribe", r)?,
            Method::Publish(r) => m.serialize_entry("publish", r)?,
            Method::Presence(r) => m.serialize_entry("presence", r)?,
            Method::PresenceStats(r) => m.serialize_entry("presence_stats", r)?,
            Method::History(r) => m.serialize_entry("history", r)?,
            Method::Ping => m.serialize_entry("ping", &Empty {})?,
            Method::Send(r) => m.serialize_entry("send", r)?,
            Method::Rpc(r) => m.serialize_entry("rpc", r)?,
            Method::Refresh(r) => m.serialize_entry("refresh", r)?,
            Method::SubRefresh(r) => m.serialize_entry("sub_refresh", r)?,
        }
        m.end()
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// One message from the server: a command's result or error, a push, or the server ping.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The server ping: `{}`. Clients answer with the empty command when the connect result
    /// said `"pong": true`.
    Ping,
    /// A command's result: `{"id": 1, "<method>": {...}}`.
    Result {
        /// The command's id.
        id: u32,
        /// The result.
        result: CommandResult,
    },
    /// A command's error: `{"id": 1, "error": {"code": 103, "message": "permission denied"}}`.
    Error {
        /// The command's id.
        id: u32,
        /// The error.
        error: ErrorReply,
    },
    /// An asynchronous push: `{"push": {"channel": "...", "pub": {...}}}`.
    Push(Push),
}

impl Reply {
    /// The result of command `id`.
    pub fn result(id: u32, result: CommandResult) -> Self {
        Reply::Result { id, result }
    }

    /// The protocol error `code` for command `id`, with the protocol's message.
    pub fn error(id: u32, code: ErrorCode) -> Self {
        Reply::Error { id, error: code.into() }
    }

    /// A push into `channel` (empty for connection-level pushes such as `disconnect`).
    pub fn push(channel: impl Into<String>, body: PushBody) -> Self {
        Reply::Push(Push { channel: channel.into(), body })
    }

    /// The id this reply answers (0 for pushes and the ping).
    pub fn id(&self) -> u32 {
        match self {
            Reply::Result { id, .. } | Reply::Error { id, .. } => *id,
            Reply::Ping | Reply::Push(_) => 0,
        }
    }
}

/// The result of a command, by method.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandResult {
    /// `connect`.
    Connect(ConnectResult),
    /// `subscribe`.
    Subscribe(SubscribeResult),
    /// `unsubscribe`: `{}`.
    Unsubscribe,
    /// `publish`: `{}`.
    Publish,
    /// `presence`.
    Presence(PresenceResult),
    /// `presence_stats`.
    PresenceStats(PresenceStatsResult),
    /// `history`.
    History(HistoryResult),
    /// `ping`: `{}`.
    Ping,
    /// `rpc`.
    Rpc(RpcResult),
    /// `refresh`.
    Refresh(RefreshResult),
    /// `sub_refresh`.
    SubRefresh(SubRefreshResult),
}

/// An error reply: `{"code": 103, "message": "permission denied"}` (`temporary` when true).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// The code ([`ErrorCode`]).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub code: u32,
    /// A short message; the protocol's reason for the code.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub message: String,
    /// Whether retrying may succeed.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub temporary: bool,
}

impl From<ErrorCode> for ErrorReply {
    fn from(code: ErrorCode) -> Self {
        ErrorReply { code: code.code(), message: code.reason().to_owned(), temporary: code.temporary() }
    }
}

/// The `connect` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConnectResult {
    /// The connection's id, unique per connection.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub client: String,
    /// Server version.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub version: String,
    /// Whether the connection expires (then the SDK sends `refresh` before `ttl` runs out).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub expires: bool,
    /// Seconds until the connection expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ttl: u32,
    /// Custom data for the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
    /// Server-side subscriptions, by channel, with recovered publications.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub subs: BTreeMap<String, SubscribeResult>,
    /// Server ping interval in seconds (0: no pings).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ping: u32,
    /// Whether the client must answer pings with a pong.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub pong: bool,
    /// Session id (unidirectional transports; unused on WebSocket).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub session: String,
    /// The node's name.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub node: String,
    /// Server time in milliseconds since the epoch (optional).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub time: i64,
}

/// The `subscribe` result, also each entry of the connect result's `subs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscribeResult {
    /// Whether the subscription expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub expires: bool,
    /// Seconds until it expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ttl: u32,
    /// Whether the channel's stream can be recovered from (the SDK then tracks epoch/offset).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub recoverable: bool,
    /// The stream's epoch.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub epoch: String,
    /// Publications missed since the client's position (with `recover`), oldest first.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub publications: Vec<Publication>,
    /// Whether every missed publication was recovered (no gap).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub recovered: bool,
    /// The stream's top offset.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Whether the subscription is positioned.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub positioned: bool,
    /// Custom subscribe data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
    /// Whether the client asked to recover.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub was_recovering: bool,
}

/// A publication in a channel: in `pub` pushes, subscribe results and history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    /// The payload (for Switchboard `{"type": "<event>", "data": {...}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
    /// The publisher, when a client published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<ClientInfo>,
    /// The publication's offset in the channel stream (the epoch is in the subscribe result).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Tags.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub tags: BTreeMap<String, String>,
    /// Publication time in milliseconds since the epoch (optional).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub time: i64,
}

/// A connection as others see it: in presence, join/leave and publication `info`. `user` and
/// `client` are always written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The user id.
    #[serde(default, deserialize_with = "nullable")]
    pub user: String,
    /// The connection id.
    #[serde(default, deserialize_with = "nullable")]
    pub client: String,
    /// Connection-level info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn_info: Option<RawJson>,
    /// Channel-level info.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chan_info: Option<RawJson>,
}

/// The `presence` result: connections in the channel by connection id (always written).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PresenceResult {
    /// Connection id -> client info.
    #[serde(default, deserialize_with = "nullable")]
    pub presence: BTreeMap<String, ClientInfo>,
}

/// The `presence_stats` result (both fields always written).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceStatsResult {
    /// Connections in the channel.
    #[serde(default, deserialize_with = "nullable")]
    pub num_clients: u32,
    /// Distinct users in the channel.
    #[serde(default, deserialize_with = "nullable")]
    pub num_users: u32,
}

/// The `history` result (all fields always written).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryResult {
    /// Publications, oldest first unless `reverse` was asked.
    #[serde(default, deserialize_with = "nullable")]
    pub publications: Vec<Publication>,
    /// The stream's epoch.
    #[serde(default, deserialize_with = "nullable")]
    pub epoch: String,
    /// The stream's top offset.
    #[serde(default, deserialize_with = "nullable")]
    pub offset: u64,
}

/// The `rpc` result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RpcResult {
    /// The method's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

/// The `refresh` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshResult {
    /// The connection's id.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub client: String,
    /// Server version.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub version: String,
    /// Whether the connection expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub expires: bool,
    /// Seconds until it expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ttl: u32,
}

/// The `sub_refresh` result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubRefreshResult {
    /// Whether the subscription expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub expires: bool,
    /// Seconds until it expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ttl: u32,
}

// ---------------------------------------------------------------------------------------------
// Pushes

/// An asynchronous message to the client: `{"channel": "chat:1", "pub": {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The channel it concerns; empty (left out) for connection-level pushes.
    pub channel: String,
    /// What happened.
    pub body: PushBody,
}

/// The content of a [`Push`], by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum PushBody {
    /// `pub`: a publication in a subscribed channel.
    Pub(Publication),
    /// `join`: a connection subscribed (`{"info": {...}}`).
    Join(ClientInfo),
    /// `leave`: a connection unsubscribed (`{"info": {...}}`).
    Leave(ClientInfo),
    /// `unsubscribe`: the server ended a subscription.
    Unsubscribe(UnsubscribePush),
    /// `message`: an asynchronous message to this connection.
    Message(MessagePush),
    /// `subscribe`: the server made a server-side subscription after connect.
    Subscribe(SubscribePush),
    /// `disconnect`: the server closes the connection (on WebSocket the close frame carries the
    /// same code and reason).
    Disconnect(DisconnectPush),
    /// `refresh`: the server extended the connection's lifetime.
    Refresh(RefreshPush),
}

impl PushBody {
    /// The push kind's JSON name.
    pub fn name(&self) -> &'static str {
        match self {
            PushBody::Pub(_) => "pub",
            PushBody::Join(_) => "join",
            PushBody::Leave(_) => "leave",
            PushBody::Unsubscribe(_) => "unsubscribe",
            PushBody::Message(_) => "message",
            PushBody::Subscribe(_) => "subscribe",
            PushBody::Disconnect(_) => "disconnect",
            PushBody::Refresh(_) => "refresh",
        }
    }
}

/// The `unsubscribe` push: `{"code": 2000, "reason": "server unsubscribe"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnsubscribePush {
    /// The code ([`UnsubscribeCode`]; 2500 and above make the SDK resubscribe).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub code: u32,
    /// The reason.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub reason: String,
}

impl From<UnsubscribeCode> for UnsubscribePush {
    fn from(code: UnsubscribeCode) -> Self {
        UnsubscribePush { code: code.code(), reason: code.reason().to_owned() }
    }
}

/// The `disconnect` push: `{"code": 3001, "reason": "shutdown", "reconnect": true}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisconnectPush {
    /// The close code ([`DisconnectCode`]).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub code: u32,
    /// The reason.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub reason: String,
    /// Whether the client should reconnect (SDKs derive it from the code range as well).
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub reconnect: bool,
}

impl From<DisconnectCode> for DisconnectPush {
    fn from(code: DisconnectCode) -> Self {
        DisconnectPush { code: code.code(), reason: code.reason().to_owned(), reconnect: code.reconnect() }
    }
}

/// The `message` push.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MessagePush {
    /// The message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

/// The `subscribe` push (a server-side subscription made after connect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubscribePush {
    /// Whether the stream can be recovered from.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub recoverable: bool,
    /// The stream's epoch.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub epoch: String,
    /// The stream's top offset.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub offset: u64,
    /// Whether the subscription is positioned.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub positioned: bool,
    /// Custom data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

/// The `refresh` push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshPush {
    /// Whether the connection expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub expires: bool,
    /// Seconds until it expires.
    #[serde(default, deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub ttl: u32,
}

/// `{"info": {...}}`, the body of join and leave pushes.
#[derive(Serialize, Deserialize)]
struct InfoWrapper<T> {
    info: T,
}

impl Serialize for Push {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if !self.channel.is_empty() {
            m.serialize_entry("channel", &self.channel)?;
        }
        match &self.body {
            PushBody::Pub(p) => m.serialize_entry("pub", p)?,
            PushBody::Join(info) => m.serialize_entry("join", &InfoWrapper { info })?,
            PushBody::Leave(info) => m.serialize_entry("leave", &InfoWrapper { info })?,
            PushBody::Unsubscribe(u) => m.serialize_entry("unsubscribe", u)?,
            PushBody::Message(msg) => m.serialize_entry("message", msg)?,
            PushBody::Subscribe(sub) => m.serialize_entry("subscribe", sub)?,
            PushBody::Disconnect(d) => m.serialize_entry("disconnect", d)?,
            PushBody::Refresh(r) => m.serialize_entry("refresh", r)?,
        }
        m.end()
    }
}

/// The wire shape of a push.
#[derive(Deserialize)]
struct WirePush {
    #[serde(default, deserialize_with = "nullable")]
    channel: String,
    #[serde(rename = "pub")]
    publication: Option<Publication>,
    join: Option<InfoWrapper<ClientInfo>>,
    leave: Option<InfoWrapper<ClientInfo>>,
    unsubscribe: Option<UnsubscribePush>,
    message: Option<MessagePush>,
    subscribe: Option<SubscribePush>,
    disconnect: Option<DisconnectPush>,
    refresh: Option<RefreshPush>,
}

impl<'de> Deserialize<'de> for Push {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WirePush::deserialize(d)?;
        let mut bodies = Vec::with_capacity(1);
        bodies.extend(w.publication.map(PushBody::Pub));
        bodies.extend(w.join.map(|j| PushBody::Join(j.info)));
        bodies.extend(w.leave.map(|l| PushBody::Leave(l.info)));
        bodies.extend(w.unsubscribe.map(PushBody::Unsubscribe));
        bodies.extend(w.message.map(PushBody::Message));
        bodies.extend(w.subscribe.map(PushBody::Subscribe));
        bodies.extend(w.disconnect.map(PushBody::Disconnect));
        bodies.extend(w.refresh.map(PushBody::Refresh));
        match (bodies.pop(), bodies.is_empty()) {
            (Some(body), true) => Ok(Push { channel: w.channel, body }),
            (Some(_), false) => Err(serde::de::Error::custom("push with more than one kind")),
            (None, _) => Err(serde::de::Error::custom("push of no known kind")),
        }
    }
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match self {
            Reply::Ping => {}
            Reply::Error { id, error } => {
                if *id != 0 {
                    m.serialize_entry("id", id)?;
                }
                m.serialize_entry("error", error)?;
            }
            Reply::Push(push) => m.serialize_entry("push", push)?,
            Reply::Result { id, result } => {
                if *id != 0 {
                    m.serialize_entry("id", id)?;
                }
                match result {
                    CommandResult::Connect(r) => m.serialize_entry("connect", r)?,
                    CommandResult::Subscribe(r) => m.serialize_entry("subscribe", r)?,
                    CommandResult::Unsubscribe => m.serialize_entry("unsubscribe", &Empty {})?,
                    CommandResult::Publish => m.serialize_entry("publish", &Empty {})?,
                    CommandResult::Presence(r) => m.serialize_entry("presence", r)?,
                    CommandResult::PresenceStats(r) => m.serialize_entry("presence_stats", r)?,
                    CommandResult::History(r) => m.serialize_entry("history", r)?,
                    CommandResult::Ping => m.serialize_entry("ping", &Empty {})?,
                    CommandResult::Rpc(r) => m.serialize_entry("rpc", r)?,
                    CommandResult::Refresh(r) => m.serialize_entry("refresh", r)?,
                    CommandResult::SubRefresh(r) => m.serialize_entry("sub_refresh", r)?,
                }
            }
        }
        m.end()
    }
}

/// The wire shape of a reply: every field optional, as in `client.proto`. Both codecs' client
/// sides read into it, so [`Reply::from_wire`] applies the same rules to both.
#[derive(Default, Deserialize)]
pub(super) struct WireReply {
    #[serde(default, deserialize_with = "nullable")]
    pub(super) id: u32,
    pub(super) error: Option<ErrorReply>,
    pub(super) push: Option<Push>,
    pub(super) connect: Option<ConnectResult>,
    pub(super) subscribe: Option<SubscribeResult>,
    pub(super) unsubscribe: Option<Empty>,
    pub(super) publish: Option<Empty>,
    pub(super) presence: Option<PresenceResult>,
    pub(super) presence_stats: Option<PresenceStatsResult>,
    pub(super) history: Option<HistoryResult>,
    pub(super) ping: Option<Empty>,
    pub(super) rpc: Option<RpcResult>,
    pub(super) refresh: Option<RefreshResult>,
    pub(super) sub_refresh: Option<SubRefreshResult>,
}

impl Reply {
    /// Reads a reply the way SDKs do (used by Rust test clients): an error wins for an id, a
    /// push has no id, and a message with neither id nor push is the server ping.
    pub(super) fn from_wire(w: WireReply) -> Result<Self, &'static str> {
        let mut results = Vec::with_capacity(1);
        results.extend(w.connect.map(CommandResult::Connect));
        results.extend(w.subscribe.map(CommandResult::Subscribe));
        results.extend(w.unsubscribe.map(|_| CommandResult::Unsubscribe));
        results.extend(w.publish.map(|_| CommandResult::Publish));
        results.extend(w.presence.map(CommandResult::Presence));
        results.extend(w.presence_stats.map(CommandResult::PresenceStats));
        results.extend(w.history.map(CommandResult::History));
        results.extend(w.ping.map(|_| CommandResult::Ping));
        results.extend(w.rpc.map(CommandResult::Rpc));
        results.extend(w.refresh.map(CommandResult::Refresh));
        results.extend(w.sub_refresh.map(CommandResult::SubRefresh));
        if results.len() > 1 {
            return Err("reply with more than one result");
        }
        match (w.id, w.error, w.push, results.pop()) {
            (0, None, None, None) => Ok(Reply::Ping),
            (0, None, Some(push), None) => Ok(Reply::Push(push)),
            (id, Some(error), None, None) => Ok(Reply::Error { id, error }),
            (id, None, None, Some(result)) if id != 0 => Ok(Reply::Result { id, result }),
            _ => Err("reply is neither a result, an error, a push nor a ping"),
        }
    }
}

/// Reads replies the way SDKs do (used by Rust test clients): an error wins for an id, a push
/// has no id, and a message with neither id nor push is the server ping.
impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Reply::from_wire(WireReply::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(json: &str) -> Result<Command, String> {
        serde_json::from_str::<Command>(json).map_err(|e| e.to_string())
    }

    fn raw(text: &str) -> Option<RawJson> {
        RawJson::from_text(text).ok()
    }

    #[test]
    fn empty_command_is_pong() {
        assert_eq!(cmd("{}"), Ok(Command { id: 0, method: Method::Pong }));
        assert_eq!(serde_json::to_string(&Command { id: 0, method: Method::Pong }).ok().as_deref(), Some("{}"));
    }

    #[test]
    fn id_rules() {
        assert!(cmd(r#"{"id":0,"rpc":{"method":"typing"}}"#).is_err_and(|e| e.contains("without id")));
        assert!(cmd(r#"{"id":3}"#).is_err_and(|e| e.contains("no known method")));
        assert!(cmd(r#"{"id":3,"bogus":{}}"#).is_err_and(|e| e.contains("no known method")));
        assert!(cmd(r#"{"id":-1,"ping":{}}"#).is_err());
        assert!(cmd(r#"{"id":4294967296,"ping":{}}"#).is_err());
        assert!(cmd(r#"{"id":"1","ping":{}}"#).is_err());
        // `send` needs no id.
        assert!(matches!(cmd(r#"{"send":{"data":{"a":1}}}"#), Ok(Command { id: 0, method: Method::Send(_) })));
    }

    #[test]
    fn one_method_per_command() {
        let two = r#"{"id":1,"presence":{"channel":"a"},"history":{"channel":"a"}}"#;
        assert!(cmd(two).is_err_and(|e| e.contains("more than one method")));
        // A method set to null is absent (Go reads null into a nil pointer).
        let nulled = r#"{"id":1,"presence":{"channel":"a"},"history":null}"#;
        assert!(matches!(cmd(nulled), Ok(Command { method: Method::Presence(_), .. })));
    }

    #[test]
    fn channel_methods_need_a_channel() {
        for m in ["subscribe", "unsubscribe", "publish", "presence", "presence_stats", "history", "sub_refresh"] {
            let json = format!(r#"{{"id":1,"{m}":{{}}}}"#);
            assert!(cmd(&json).is_err_and(|e| e.contains("without channel")), "{m}");
        }
    }

    #[test]
    fn lenient_like_the_reference_server() {
        let json = r#"{"id":2,"subscribe":{"channel":"chat:1","token":null,"delta":"fossil","tf":{"op":"and"},
            "flag":1,"type":0},"future_field":[1,2,3]}"#;
        let Ok(Command { id: 2, method: Method::Subscribe(sub) }) = cmd(json) else { panic!("not decoded") };
        assert_eq!(sub.channel, "chat:1");
        assert_eq!(sub.token, "");
        assert_eq!(sub.flag, 1);
    }

    #[test]
    fn raw_json_keeps_text_and_hides_content_in_debug() {
        let Ok(Command { method: Method::Rpc(rpc), .. }) =
            cmd(r#"{"id":9,"rpc":{"method":"typing","data":{"conversation_id":"c1","typing":true}}}"#)
        else {
            panic!("not decoded")
        };
        let data = rpc.data.unwrap_or_else(|| panic!("no data"));
        assert_eq!(data.get(), r#"{"conversation_id":"c1","typing":true}"#);
        assert_eq!(format!("{data:?}"), "RawJson(38 bytes)");
        #[derive(Deserialize)]
        struct Typing {
            conversation_id: String,
            typing: bool,
        }
        let t: Typing = data.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((t.conversation_id.as_str(), t.typing), ("c1", true));
        assert!(RawJson::from_text("{not json").is_err());
        assert_eq!(RawJson::to_json(&[1, 2]).ok(), raw("[1,2]"));
    }

    #[test]
    fn error_reply_from_code() {
        let r = Reply::error(5, ErrorCode::TooManyRequests);
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some(r#"{"id":5,"error":{"code":111,"message":"too many requests","temporary":true}}"#)
        );
        let r = Reply::error(6, ErrorCode::TokenExpired);
        assert_eq!(
            serde_json::to_string(&r).ok().as_deref(),
            Some(r#"{"id":6,"error":{"code":109,"message":"token expired"}}"#)
        );
    }

    #[test]
    fn replies_read_back() {
        for json in [
            "{}",
            r#"{"id":1,"publish":{}}"#,
            r#"{"id":1,"error":{"code":103,"message":"permission denied"}}"#,
            r#"{"push":{"channel":"c","join":{"info":{"user":"u","client":"c1"}}}}"#,
            r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}"#,
        ] {
            let reply: Reply = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            assert_eq!(serde_json::to_string(&reply).ok().as_deref(), Some(json));
        }
        assert!(serde_json::from_str::<Reply>(r#"{"id":1}"#).is_err());
        assert!(serde_json::from_str::<Reply>(r#"{"push":{"channel":"c"}}"#).is_err());
    }

    #[test]
    fn pushes_from_codes() {
        let p = Reply::push("", PushBody::Disconnect(DisconnectCode::InvalidToken.into()));
        assert_eq!(
            serde_json::to_string(&p).ok().as_deref(),
            Some(r#"{"push":{"disconnect":{"code":3500,"reason":"invalid token"}}}"#)
        );
        let p = Reply::push("chat:1", PushBody::Unsubscribe(UnsubscribeCode::InsufficientState.into()));
        assert_eq!(
            serde_json::to_string(&p).ok().as_deref(),
            Some(r#"{"push":{"channel":"chat:1","unsubscribe":{"code":2500,"reason":"insufficient state"}}}"#)
        );
    }
}
