//! The messages of the protocol's `client.proto` that the gateway reads and writes, as `prost`
//! structs written by hand. Field numbers are the definition's; fields the gateway has no use for
//! are left out, so the decoder skips them like any unknown field. `data` fields are raw bytes:
//! for Switchboard, JSON text.

use std::collections::BTreeMap;

/// `Command`: one of the optional requests, with the id its reply carries.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Command {
    #[prost(uint32, tag = "1")]
    pub(crate) id: u32,
    #[prost(message, optional, tag = "4")]
    pub(crate) connect: Option<ConnectRequest>,
    #[prost(message, optional, tag = "5")]
    pub(crate) subscribe: Option<SubscribeRequest>,
    #[prost(message, optional, tag = "6")]
    pub(crate) unsubscribe: Option<ChannelRequest>,
    #[prost(message, optional, tag = "7")]
    pub(crate) publish: Option<PublishRequest>,
    #[prost(message, optional, tag = "8")]
    pub(crate) presence: Option<ChannelRequest>,
    #[prost(message, optional, tag = "9")]
    pub(crate) presence_stats: Option<ChannelRequest>,
    #[prost(message, optional, tag = "10")]
    pub(crate) history: Option<HistoryRequest>,
    #[prost(message, optional, tag = "11")]
    pub(crate) ping: Option<Empty>,
    #[prost(message, optional, tag = "12")]
    pub(crate) send: Option<DataOnly>,
    #[prost(message, optional, tag = "13")]
    pub(crate) rpc: Option<RpcRequest>,
    #[prost(message, optional, tag = "14")]
    pub(crate) refresh: Option<RefreshRequest>,
    #[prost(message, optional, tag = "15")]
    pub(crate) sub_refresh: Option<SubRefreshRequest>,
}

/// A message without fields (`PingRequest`, `PingResult`, `UnsubscribeResult`, `PublishResult`).
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct Empty {}

/// A message whose only field is `bytes data = 1` (`SendRequest`, `RPCResult`, `Message`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct DataOnly {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) data: Vec<u8>,
}

/// A request whose only field is `string channel = 1` (`UnsubscribeRequest`,
/// `PresenceRequest`, `PresenceStatsRequest`).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ChannelRequest {
    #[prost(string, tag = "1")]
    pub(crate) channel: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConnectRequest {
    #[prost(string, tag = "1")]
    pub(crate) token: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) data: Vec<u8>,
    #[prost(btree_map = "string, message", tag = "3")]
    pub(crate) subs: BTreeMap<String, SubRecovery>,
    #[prost(string, tag = "4")]
    pub(crate) name: String,
    #[prost(string, tag = "5")]
    pub(crate) version: String,
}

/// A `SubscribeRequest` in the connect command's `subs`: only the position is read, which keeps
/// each entry small (the map is the one place a command can hold many values).
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SubRecovery {
    #[prost(bool, tag = "3")]
    pub(crate) recover: bool,
    #[prost(string, tag = "6")]
    pub(crate) epoch: String,
    #[prost(uint64, tag = "7")]
    pub(crate) offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SubscribeRequest {
    #[prost(string, tag = "1")]
    pub(crate) channel: String,
    #[prost(string, tag = "2")]
    pub(crate) token: String,
    #[prost(bool, tag = "3")]
    pub(crate) recover: bool,
    #[prost(string, tag = "6")]
    pub(crate) epoch: String,
    #[prost(uint64, tag = "7")]
    pub(crate) offset: u64,
    #[prost(bytes = "vec", tag = "8")]
    pub(crate) data: Vec<u8>,
    #[prost(bool, tag = "9")]
    pub(crate) positioned: bool,
    #[prost(bool, tag = "10")]
    pub(crate) recoverable: bool,
    #[prost(bool, tag = "11")]
    pub(crate) join_leave: bool,
    #[prost(int64, tag = "14")]
    pub(crate) flag: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PublishRequest {
    #[prost(string, tag = "1")]
    pub(crate) channel: String,
    #[prost(bytes = "vec", tag = "2")]
    pub(crate) data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HistoryRequest {
    #[prost(string, tag = "1")]
    pub(crate) channel: String,
    #[prost(int32, tag = "7")]
    pub(crate) limit: i32,
    #[prost(message, optional, tag = "8")]
    pub(crate) since: Option<StreamPosition>,
    #[prost(bool, tag = "9")]
    pub(crate) reverse: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct StreamPosition {
    #[prost(uint64, tag = "1")]
    pub(crate) offset: u64,
    #[prost(string, tag = "2")]
    pub(crate) epoch: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub(crate) data: Vec<u8>,
    #[prost(string, tag = "2")]
    pub(crate) method: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RefreshRequest {
    #[prost(string, tag = "1")]
    pub(crate) token: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SubRefreshRequest {
    #[prost(string, tag = "1")]
    pub(crate) channel: String,
    #[prost(string, tag = "2")]
    pub(crate) token: String,
}

// ---------------------------------------------------------------------------------------------
// Replies

/// `Reply`: a command's result or error (`id` set), a push, or the empty server ping.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Reply {
    #[prost(uint32, tag = "1")]
    pub(crate) id: u32,
    #[prost(message, optional, tag = "2")]
    pub(crate) error: Option<Error>,
    #[prost(message, optional, tag = "4")]
    pub(crate) push: Option<Push>,
    #[prost(message, optional, tag = "5")]
    pub(crate) connect: Option<ConnectResult>,
    #[prost(message, optional, tag = "6")]
    pub(crate) subscribe: Option<SubscribeResult>,
    #[prost(message, optional, tag = "7")]
    pub(crate) unsubscribe: Option<Empty>,
    #[prost(message, optional, tag = "8")]
    pub(crate) publish: Option<Empty>,
    #[prost(message, optional, tag = "9")]
    pub(crate) presence: Option<PresenceResult>,
    #[prost(message, optional, tag = "10")]
    pub(crate) presence_stats: Option<PresenceStatsResult>,
    #[prost(message, optional, tag = "11")]
    pub(crate) history: Option<HistoryResult>,
    #[prost(message, optional, tag = "12")]
    pub(crate) ping: Option<Empty>,
    #[prost(message, optional, tag = "13")]
    pub(crate) rpc: Option<DataOnly>,
    #[prost(message, optional, tag = "14")]
    pub(crate) refresh: Option<RefreshResult>,
    #[prost(message, optional, tag = "15")]
    pub(crate) sub_refresh: Option<SubRefreshResult>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Error {
    #[prost(uint32, tag = "1")]
    pub(crate) code: u32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
    #[prost(bool, tag = "3")]
    pub(crate) temporary: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ConnectResult {
    #[prost(string, tag = "1")]
    pub(crate) client: String,
    #[prost(string, tag = "2")]
    pub(crate) version: String,
    #[prost(bool, tag = "3")]
    pub(crate) expires: bool,
    #[prost(uint32, tag = "4")]
    pub(crate) ttl: u32,
    #[prost(bytes = "vec", tag = "5")]
    pub(crate) data: Vec<u8>,
    #[prost(btree_map = "string, message", tag = "6")]
    pub(crate) subs: BTreeMap<String, SubscribeResult>,
    #[prost(uint32, tag = "7")]
    pub(crate) ping: u32,
    #[prost(bool, tag = "8")]
    pub(crate) pong: bool,
    #[prost(string, tag = "9")]
    pub(crate) session: String,
    #[prost(string, tag = "10")]
    pub(crate) node: String,
    #[prost(int64, tag = "11")]
    pub(crate) time: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SubscribeResult {
    #[prost(bool, tag = "1")]
    pub(crate) expires: bool,
    #[prost(uint32, tag = "2")]
    pub(crate) ttl: u32,
    #[prost(bool, tag = "3")]
    pub(crate) recoverable: bool,
    #[prost(string, tag = "6")]
    pub(crate) epoch: String,
    #[prost(message, repeated, tag = "7")]
    pub(crate) publications: Vec<Publication>,
    #[prost(bool, tag = "8")]
    pub(crate) recovered: bool,
    #[prost(uint64, tag = "9")]
    pub(crate) offset: u64,
    #[prost(bool, tag = "10")]
    pub(crate) positioned: bool,
    #[prost(bytes = "vec", tag = "11")]
    pub(crate) data: Vec<u8>,
    #[prost(bool, tag = "12")]
    pub(crate) was_recovering: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Publication {
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) data: Vec<u8>,
    #[prost(message, optional, tag = "5")]
    pub(crate) info: Option<ClientInfo>,
    #[prost(uint64, tag = "6")]
    pub(crate) offset: u64,
    #[prost(btree_map = "string, string", tag = "7")]
    pub(crate) tags: BTreeMap<String, String>,
    #[prost(int64, tag = "9")]
    pub(crate) time: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct ClientInfo {
    #[prost(string, tag = "1")]
    pub(crate) user: String,
    #[prost(string, tag = "2")]
    pub(crate) client: String,
    #[prost(bytes = "vec", tag = "3")]
    pub(crate) conn_info: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    pub(crate) chan_info: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PresenceResult {
    #[prost(btree_map = "string, message", tag = "1")]
    pub(crate) presence: BTreeMap<String, ClientInfo>,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct PresenceStatsResult {
    #[prost(uint32, tag = "1")]
    pub(crate) num_clients: u32,
    #[prost(uint32, tag = "2")]
    pub(crate) num_users: u32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HistoryResult {
    #[prost(message, repeated, tag = "1")]
    pub(crate) publications: Vec<Publication>,
    #[prost(string, tag = "2")]
    pub(crate) epoch: String,
    #[prost(uint64, tag = "3")]
    pub(crate) offset: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RefreshResult {
    #[prost(string, tag = "1")]
    pub(crate) client: String,
    #[prost(string, tag = "2")]
    pub(crate) version: String,
    #[prost(bool, tag = "3")]
    pub(crate) expires: bool,
    #[prost(uint32, tag = "4")]
    pub(crate) ttl: u32,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct SubRefreshResult {
    #[prost(bool, tag = "1")]
    pub(crate) expires: bool,
    #[prost(uint32, tag = "2")]
    pub(crate) ttl: u32,
}

// ---------------------------------------------------------------------------------------------
// Pushes

/// `Push`: what happened in `channel` (empty for connection-level pushes), one kind set.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Push {
    #[prost(string, tag = "2")]
    pub(crate) channel: String,
    #[prost(message, optional, tag = "4")]
    pub(crate) publication: Option<Publication>,
    #[prost(message, optional, tag = "5")]
    pub(crate) join: Option<InfoOnly>,
    #[prost(message, optional, tag = "6")]
    pub(crate) leave: Option<InfoOnly>,
    #[prost(message, optional, tag = "7")]
    pub(crate) unsubscribe: Option<Unsubscribe>,
    #[prost(message, optional, tag = "8")]
    pub(crate) message: Option<DataOnly>,
    #[prost(message, optional, tag = "9")]
    pub(crate) subscribe: Option<Subscribe>,
    #[prost(message, optional, tag = "11")]
    pub(crate) disconnect: Option<Disconnect>,
    #[prost(message, optional, tag = "12")]
    pub(crate) refresh: Option<Refresh>,
}

/// `Join` and `Leave`: `ClientInfo info = 1`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct InfoOnly {
    #[prost(message, optional, tag = "1")]
    pub(crate) info: Option<ClientInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Unsubscribe {
    #[prost(uint32, tag = "2")]
    pub(crate) code: u32,
    #[prost(string, tag = "3")]
    pub(crate) reason: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Subscribe {
    #[prost(bool, tag = "1")]
    pub(crate) recoverable: bool,
    #[prost(string, tag = "4")]
    pub(crate) epoch: String,
    #[prost(uint64, tag = "5")]
    pub(crate) offset: u64,
    #[prost(bool, tag = "6")]
    pub(crate) positioned: bool,
    #[prost(bytes = "vec", tag = "7")]
    pub(crate) data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct Disconnect {
    #[prost(uint32, tag = "1")]
    pub(crate) code: u32,
    #[prost(string, tag = "2")]
    pub(crate) reason: String,
    #[prost(bool, tag = "3")]
    pub(crate) reconnect: bool,
}

#[derive(Clone, Copy, PartialEq, prost::Message)]
pub(crate) struct Refresh {
    #[prost(bool, tag = "1")]
    pub(crate) expires: bool,
    #[prost(uint32, tag = "2")]
    pub(crate) ttl: u32,
}
