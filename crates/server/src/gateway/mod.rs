//! The WebSocket gateway at `/connection/websocket`: the Centrifugo client protocol v2 in both
//! variants (JSON in text frames, the default; Protobuf in binary frames, chosen at the
//! handshake), so the existing Centrifugo SDKs connect unchanged. Both codecs decode into and
//! encode from one command/reply model, so everything past the edge is shared.
//!
//! # Layout
//! - [`codes`]: the protocol's error, disconnect and unsubscribe codes, with the SDKs' retry rules.
//! - [`protocol`]: commands, replies and pushes with the protocol's JSON names (the shared model).
//! - [`frame`]: the JSON variant's newline-delimited frames: the bounded [`decode_frame`] and the
//!   [`FrameEncoder`].
//! - [`protobuf`]: the Protobuf variant's varint-delimited frames and `client.proto` messages.
//! - [`codec`]: [`Protocol`], chosen at the handshake by [`negotiate`], and encoding per variant.
//! - [`token`]: [`TokenVerifier`], client JWTs (HS256, RS256 or ES256) to [`ClientClaims`].
//! - [`config`]: [`GatewayConfig`], limits and timings.
//! - `node`: [`Gateway`], this node's gateway: the upgrade, background tasks, shutdown.
//! - `registry`: this node's connections by user (limits, targeted disconnects).
//! - `connection`: one connection's state machine, generic over the socket's halves.
//! - `subscription`: subscribe-then-recover and the per-subscription forwarder.
//! - `outbox`: the per-connection send queue, bounded by bytes.
//! - `control`: disconnect orders that reach every node ([`disconnect_everywhere`]).
//! - `rpc`: the client RPC methods (`typing`, `presence.status`, `presence.get`).
//!
//! # Example
//! ```
//! use switchboard_server::gateway::protocol::{CommandResult, Method, RpcResult};
//! use switchboard_server::gateway::{ErrorCode, FrameEncoder, Reply, decode_frame};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let frame = concat!(
//!     r#"{"id":1,"rpc":{"method":"typing","data":{"typing":true}}}"#,
//!     "\n",
//!     r#"{"id":2,"presence":{"channel":"chat:x"}}"#,
//! );
//! let mut out = FrameEncoder::new(64 * 1024);
//! for command in decode_frame(frame) {
//!     // An error is a protocol violation: close with `error.disconnect()` (3501, bad request).
//!     let command = command?;
//!     let reply = match command.method {
//!         Method::Rpc(rpc) if rpc.method == "typing" => {
//!             Reply::result(command.id, CommandResult::Rpc(RpcResult::default()))
//!         }
//!         _ => Reply::error(command.id, ErrorCode::PermissionDenied),
//!     };
//!     out.push(&reply)?;
//! }
//! let expected = concat!(
//!     r#"{"id":1,"rpc":{}}"#,
//!     "\n",
//!     r#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#,
//! );
//! assert_eq!(out.take().as_deref(), Some(expected));
//! # Ok(()) }
//! ```

pub mod codec;
pub mod codes;
pub mod config;
mod connection;
mod control;
pub mod frame;
mod node;
mod outbox;
pub mod protobuf;
pub mod protocol;
mod registry;
mod rpc;
mod subscription;
pub mod token;

pub use codec::{Negotiated, Protocol, Refusal, negotiate};
pub use codes::{DisconnectCode, ErrorCode, UnsubscribeCode};
pub use config::GatewayConfig;
pub use control::{DisconnectTarget, disconnect_everywhere};
pub use frame::{FrameEncoder, FrameLimits, decode_frame, decode_frame_with, encode_frame, encode_reply};
pub use node::Gateway;
pub(crate) use node::{Shared, random_id, upgrade};
pub use protocol::{Command, CommandResult, Method, ProtocolError, PushBody, RawJson, Reply};
pub use token::{ClientClaims, TokenError, TokenKey, TokenVerifier};
