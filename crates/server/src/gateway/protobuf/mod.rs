//! The Protobuf variant's framing: one WebSocket binary frame holds one or more messages, each
//! prefixed with its length as a varint (`Command`s from clients, `Reply`s from the server). The
//! empty message (a lone `0x00`) is the server's ping and the client's pong.
//!
//! Decoding is bounded: a frame over the limit is refused whole; every length prefix is checked
//! against the frame limit and the bytes actually left *before* anything is allocated for it;
//! a bad varint, a truncated message or a field that does not decode is a [`ProtocolError`]
//! (close 3501), never a panic. Unknown fields are skipped, so newer SDKs keep working.
//!
//! # Layout
//! - `messages`: the `client.proto` messages the gateway uses, as `prost` structs.
//! - `convert`: between those messages and the shared [`Command`] / [`Reply`] model.

mod convert;
mod messages;

use std::iter::FusedIterator;

use prost::Message as _;

use super::frame::FrameLimits;
use super::protocol::{Command, ProtocolError, Reply};

/// Reads the commands of one binary frame with the default [`FrameLimits`]. See
/// [`decode_frame_with`].
pub fn decode_frame(frame: &[u8]) -> FrameDecoder<'_> {
    decode_frame_with(frame, FrameLimits::default())
}

/// Reads the commands of one binary frame: varint-length-delimited `Command` messages, back to
/// back.
///
/// Yields each command in order; the first problem is yielded as an error and ends the
/// iteration, as for the JSON variant ([`crate::gateway::frame::decode_frame_with`]). The
/// framing (sizes, lengths, count) is checked for the whole frame before any command is
/// decoded, so a frame over a limit or with a bad length prefix is refused before any of it is
/// acted on. An empty frame is an error (a pong is one empty *message*, the byte `0x00`).
pub fn decode_frame_with(frame: &[u8], limits: FrameLimits) -> FrameDecoder<'_> {
    if frame.len() > limits.max_frame_bytes {
        return FrameDecoder::failed(ProtocolError::FrameTooLarge { size: frame.len(), limit: limits.max_frame_bytes });
    }
    if frame.is_empty() {
        return FrameDecoder::failed(ProtocolError::EmptyFrame);
    }
    let mut rest = frame;
    let mut count = 0;
    while !rest.is_empty() {
        match split_message(rest, count, limits.max_frame_bytes) {
            Ok((_, after)) => rest = after,
            Err(e) => return FrameDecoder::failed(e),
        }
        count += 1;
        if count > limits.max_commands {
            // Counting stops here: the frame is refused whatever follows.
            return FrameDecoder::failed(ProtocolError::TooManyCommands { count, limit: limits.max_commands });
        }
    }
    FrameDecoder { state: State::Messages { rest: frame, index: 0, limit: limits.max_frame_bytes } }
}

/// Reads a varint at the start of `buf`: `(value, bytes used)`, or `None` when it is cut off or
/// longer than a `u64` allows.
fn read_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().enumerate().take(10) {
        // The tenth byte holds the top bit of a u64 only.
        if i == 9 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// Splits the message at the start of `buf` from what follows it, checking its length prefix
/// against `limit` and against the bytes left.
fn split_message(buf: &[u8], index: usize, limit: usize) -> Result<(&[u8], &[u8]), ProtocolError> {
    let (len, used) = read_varint(buf).ok_or(ProtocolError::BadLength { index })?;
    if len > limit as u64 {
        return Err(ProtocolError::LengthOverLimit { index, len, limit });
    }
    let rest = &buf[used..];
    let remaining = rest.len();
    if len > remaining as u64 {
        return Err(ProtocolError::Truncated { index, len, remaining });
    }
    // `len <= remaining`, a usize: the cast is exact.
    Ok(rest.split_at(len as usize))
}

/// The commands of one binary frame; see [`decode_frame_with`].
#[derive(Debug)]
pub struct FrameDecoder<'a> {
    state: State<'a>,
}

#[derive(Debug)]
enum State<'a> {
    Messages { rest: &'a [u8], index: usize, limit: usize },
    Failed(ProtocolError),
    Done,
}

impl FrameDecoder<'_> {
    fn failed(error: ProtocolError) -> Self {
        FrameDecoder { state: State::Failed(error) }
    }
}

impl Iterator for FrameDecoder<'_> {
    type Item = Result<Command, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Done => None,
            State::Failed(error) => Some(Err(error)),
            State::Messages { rest, index, limit } => {
                if rest.is_empty() {
                    return None;
                }
                let decoded = split_message(rest, index, limit).and_then(|(message, after)| {
                    let command = decode_command(message, index)?;
                    Ok((command, after))
                });
                Some(match decoded {
                    Ok((command, after)) => {
                        self.state = State::Messages { rest: after, index: index + 1, limit };
                        Ok(command)
                    }
                    Err(e) => Err(e),
                })
            }
        }
    }
}

impl FusedIterator for FrameDecoder<'_> {}

fn decode_command(message: &[u8], index: usize) -> Result<Command, ProtocolError> {
    let wire = messages::Command::decode(message).map_err(|_| ProtocolError::Undecodable { index })?;
    Command::try_from(wire)
}

/// One reply as one length-delimited message: encode a publication's push once and append the
/// same bytes for every subscriber (messages are concatenated into frames as they are).
pub fn encode_reply(reply: &Reply) -> Vec<u8> {
    messages::Reply::from(reply).encode_length_delimited_to_vec()
}

/// Several replies as one binary frame.
pub fn encode_frame<'a>(replies: impl IntoIterator<Item = &'a Reply>) -> Vec<u8> {
    let mut frame = Vec::new();
    for reply in replies {
        frame.extend_from_slice(&encode_reply(reply));
    }
    frame
}

/// One command as one length-delimited message (for Rust clients and tests).
pub fn encode_command(command: &Command) -> Vec<u8> {
    messages::Command::from(command).encode_length_delimited_to_vec()
}

/// Reads every reply of one binary frame from the server (for Rust clients and tests), with the
/// same bounds as the server's decoder: `max_frame_bytes` for the frame and each message.
pub fn decode_replies(frame: &[u8], max_frame_bytes: usize) -> Result<Vec<Reply>, ProtocolError> {
    if frame.len() > max_frame_bytes {
        return Err(ProtocolError::FrameTooLarge { size: frame.len(), limit: max_frame_bytes });
    }
    let mut rest = frame;
    let mut replies = Vec::new();
    while !rest.is_empty() {
        let index = replies.len();
        let (message, after) = split_message(rest, index, max_frame_bytes)?;
        let wire = messages::Reply::decode(message).map_err(|_| ProtocolError::Undecodable { index })?;
        replies.push(Reply::try_from(wire).map_err(|_| ProtocolError::Undecodable { index })?);
        rest = after;
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::protocol::{CommandResult, Method, RpcRequest};

    fn all(frame: &[u8]) -> Vec<Result<Command, ProtocolError>> {
        decode_frame(frame).collect()
    }

    #[test]
    fn varints() {
        assert_eq!(read_varint(&[0x00]), Some((0, 1)));
        assert_eq!(read_varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(read_varint(&[0xff; 9].iter().copied().chain([0x01]).collect::<Vec<_>>()), Some((u64::MAX, 10)));
        assert_eq!(read_varint(&[0xff; 9].iter().copied().chain([0x02]).collect::<Vec<_>>()), None, "past u64");
        assert_eq!(read_varint(&[0x80; 11]), None, "too long");
        assert_eq!(read_varint(&[0x80, 0x80]), None, "cut off");
        assert_eq!(read_varint(&[]), None);
    }

    #[test]
    fn the_empty_message_is_the_pong_and_the_ping() {
        assert_eq!(all(&[0x00]), vec![Ok(Command { id: 0, method: Method::Pong })]);
        assert_eq!(encode_reply(&Reply::Ping), vec![0x00]);
        assert_eq!(all(&[]), vec![Err(ProtocolError::EmptyFrame)]);
    }

    #[test]
    fn commands_round_trip_through_the_model() {
        let rpc = Command {
            id: 7,
            method: Method::Rpc(RpcRequest {
                method: "typing".into(),
                data: crate::gateway::RawJson::from_text(r#"{"typing":true}"#).ok(),
            }),
        };
        let ping = Command { id: 8, method: Method::Ping };
        let mut frame = encode_command(&rpc);
        frame.extend(encode_command(&ping));
        frame.extend(encode_command(&Command { id: 0, method: Method::Pong }));
        assert_eq!(all(&frame), vec![Ok(rpc), Ok(ping), Ok(Command { id: 0, method: Method::Pong })]);
    }

    #[test]
    fn framing_errors_refuse_the_whole_frame() {
        let ping = encode_command(&Command { id: 1, method: Method::Ping });
        // A good command followed by a length prefix past the frame limit: nothing is yielded
        // but the error.
        let mut frame = ping.clone();
        frame.extend([0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(
            all(&frame),
            vec![Err(ProtocolError::LengthOverLimit { index: 1, len: 0xffff_ffff, limit: 64 * 1024 })]
        );
        let mut frame = ping.clone();
        frame.extend([0x05, 0x08]);
        assert_eq!(all(&frame), vec![Err(ProtocolError::Truncated { index: 1, len: 5, remaining: 1 })]);
        let mut frame = ping;
        frame.extend([0x80]);
        assert_eq!(all(&frame), vec![Err(ProtocolError::BadLength { index: 1 })]);
        let limits = FrameLimits { max_frame_bytes: 64, max_commands: 2 };
        assert_eq!(
            decode_frame_with(&[0, 0, 0], limits).collect::<Vec<_>>(),
            vec![Err(ProtocolError::TooManyCommands { count: 3, limit: 2 })]
        );
        assert_eq!(
            decode_frame_with(&[0; 65], limits).collect::<Vec<_>>(),
            vec![Err(ProtocolError::FrameTooLarge { size: 65, limit: 64 })]
        );
    }

    #[test]
    fn content_errors_stop_at_the_bad_command() {
        let ping = encode_command(&Command { id: 1, method: Method::Ping });
        // Field 1 (id) as a varint that is cut off inside the message.
        let mut frame = ping.clone();
        frame.extend([0x02, 0x08, 0x80]);
        let got = all(&frame);
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert_eq!(got[1], Err(ProtocolError::Undecodable { index: 1 }));
        // A method without an id, as in JSON.
        let no_id = encode_command(&Command { id: 0, method: Method::Ping });
        assert_eq!(all(&no_id), vec![Err(ProtocolError::MissingId { method: "ping" })]);
    }

    #[test]
    fn rpc_data_must_be_json() {
        let rpc = messages::Command {
            id: 3,
            rpc: Some(messages::RpcRequest { data: vec![0xff, 0x00], method: "typing".into() }),
            ..messages::Command::default()
        };
        let frame = rpc.encode_length_delimited_to_vec();
        assert_eq!(all(&frame), vec![Err(ProtocolError::DataNotJson { method: "rpc" })]);
    }

    #[test]
    fn replies_read_back() {
        let replies = [
            Reply::Ping,
            Reply::result(1, CommandResult::Publish),
            Reply::error(2, crate::gateway::ErrorCode::PermissionDenied),
        ];
        let frame = encode_frame(&replies);
        assert_eq!(decode_replies(&frame, 1024), Ok(replies.to_vec()));
    }
}
