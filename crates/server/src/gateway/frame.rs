//! The JSON variant's framing: one WebSocket text frame holds one or more commands (or replies),
//! one JSON object per line. [`decode_frame`] reads a client frame within [`FrameLimits`];
//! [`FrameEncoder`] batches encoded replies into frames.

use std::iter::FusedIterator;

use super::protocol::{Command, ProtocolError, Reply, WireCommand};

/// Default bound on one client frame: 64 KiB, as the reference server's default.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;

/// Default bound on commands in one client frame. SDKs batch a connect and their subscribes into
/// one frame, so this sits well above the subscriptions-per-connection limit.
pub const DEFAULT_MAX_COMMANDS_PER_FRAME: usize = 256;

/// Bounds on one client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest frame, in bytes.
    pub max_frame_bytes: usize,
    /// Most commands in one frame.
    pub max_commands: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits { max_frame_bytes: DEFAULT_MAX_FRAME_BYTES, max_commands: DEFAULT_MAX_COMMANDS_PER_FRAME }
    }
}

/// Reads the commands of one text frame with the default [`FrameLimits`]. See
/// [`decode_frame_with`].
pub fn decode_frame(frame: &str) -> FrameDecoder<'_> {
    decode_frame_with(frame, FrameLimits::default())
}

/// Reads the commands of one text frame: one JSON object per line, separated by `\n`, with at
/// most one `\n` at the end.
///
/// Yields each command in order. The first problem is yielded as an error and ends the
/// iteration; every [`ProtocolError`] means the client broke the protocol, and the reference
/// server closes the connection with "bad request" (3501). A frame over the size or command limit
/// is refused before any command is read, so none of it is acted on. An empty frame is an error
/// (a pong is the empty *object* `{}`); so is an empty line between commands.
pub fn decode_frame_with(frame: &str, limits: FrameLimits) -> FrameDecoder<'_> {
    if frame.len() > limits.max_frame_bytes {
        return FrameDecoder::failed(ProtocolError::FrameTooLarge { size: frame.len(), limit: limits.max_frame_bytes });
    }
    let body = frame.strip_suffix('\n').unwrap_or(frame);
    if body.is_empty() {
        return FrameDecoder::failed(ProtocolError::EmptyFrame);
    }
    let count = body.bytes().filter(|&b| b == b'\n').count() + 1;
    if count > limits.max_commands {
        return FrameDecoder::failed(ProtocolError::TooManyCommands { count, limit: limits.max_commands });
    }
    FrameDecoder { state: State::Lines { lines: body.split('\n'), index: 0, remaining: count } }
}

/// The commands of one frame; see [`decode_frame_with`].
#[derive(Debug)]
pub struct FrameDecoder<'a> {
    state: State<'a>,
}

#[derive(Debug)]
enum State<'a> {
    Lines { lines: std::str::Split<'a, char>, index: usize, remaining: usize },
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
            State::Lines { mut lines, index, remaining } => {
                let line = lines.next()?;
                let decoded = decode_line(line, index);
                if decoded.is_ok() && remaining > 1 {
                    self.state = State::Lines { lines, index: index + 1, remaining: remaining - 1 };
                }
                Some(decoded)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.state {
            State::Lines { remaining, .. } => (0, Some(*remaining)),
            State::Failed(_) => (1, Some(1)),
            State::Done => (0, Some(0)),
        }
    }
}

impl FusedIterator for FrameDecoder<'_> {}

fn decode_line(line: &str, index: usize) -> Result<Command, ProtocolError> {
    let wire: WireCommand = serde_json::from_str(line).map_err(|e| ProtocolError::Malformed {
        index,
        kind: match e.classify() {
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
            serde_json::error::Category::Io => "io",
        },
        column: e.column(),
    })?;
    Command::from_wire(wire)
}

/// One reply as one line of JSON (no trailing newline): encode a publication's push once and
/// hand the same line to every subscriber's [`FrameEncoder::push_line`].
pub fn encode_reply(reply: &Reply) -> Result<String, serde_json::Error> {
    serde_json::to_string(reply)
}

/// Several replies as one frame, one per line.
pub fn encode_frame<'a>(replies: impl IntoIterator<Item = &'a Reply>) -> Result<String, serde_json::Error> {
    let mut encoder = FrameEncoder::new(usize::MAX);
    for reply in replies {
        encoder.push(reply)?;
    }
    Ok(encoder.take().unwrap_or_default())
}

/// Batches replies into text frames: lines joined by `\n`, no trailing newline (SDKs trim the
/// frame and split it on `\n`). A writer loop pushes what is queued while [`fits`](Self::fits)
/// says yes, then sends [`take`](Self::take).
#[derive(Debug, Clone)]
pub struct FrameEncoder {
    buf: String,
    count: usize,
    max_frame_bytes: usize,
}

impl FrameEncoder {
    /// An empty batch that [`fits`](Self::fits) lines up to `max_frame_bytes` in total.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameEncoder { buf: String::new(), count: 0, max_frame_bytes }
    }

    /// Whether a line of `len` bytes fits in the frame. A line always fits an empty frame, so a
    /// single reply larger than the limit still goes out, alone.
    pub fn fits(&self, len: usize) -> bool {
        self.count == 0 || self.buf.len().saturating_add(1).saturating_add(len) <= self.max_frame_bytes
    }

    /// Appends an encoded reply (a line from [`encode_reply`]). The caller checks
    /// [`fits`](Self::fits) first when it wants frames bounded.
    pub fn push_line(&mut self, line: &str) {
        if self.count > 0 {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
        self.count += 1;
    }

    /// Encodes and appends `reply`.
    pub fn push(&mut self, reply: &Reply) -> Result<(), serde_json::Error> {
        let line = encode_reply(reply)?;
        self.push_line(&line);
        Ok(())
    }

    /// Bytes in the frame so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the frame holds no reply.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Replies in the frame so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The frame, leaving the encoder empty; `None` when it holds no reply.
    pub fn take(&mut self) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        self.count = 0;
        Some(std::mem::take(&mut self.buf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::protocol::{CommandResult, Method};

    fn all(frame: &str) -> Vec<Result<Command, ProtocolError>> {
        decode_frame(frame).collect()
    }

    #[test]
    fn several_commands_per_frame() {
        let frame = "{\"id\":1,\"connect\":{\"token\":\"t\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"chat:1\"}}\n";
        let got = all(frame);
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Ok(Command { id: 1, method: Method::Connect(_) })));
        assert!(matches!(&got[1], Ok(Command { id: 2, method: Method::Subscribe(_) })));
    }

    #[test]
    fn crlf_is_whitespace() {
        let got = all("{\"id\":1,\"ping\":{}}\r\n{}\r\n");
        assert_eq!(got, vec![Ok(Command { id: 1, method: Method::Ping }), Ok(Command { id: 0, method: Method::Pong })]);
    }

    #[test]
    fn empty_frames_and_lines() {
        assert_eq!(all(""), vec![Err(ProtocolError::EmptyFrame)]);
        assert_eq!(all("\n"), vec![Err(ProtocolError::EmptyFrame)]);
        let got = all("{}\n\n{}");
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(matches!(got[1], Err(ProtocolError::Malformed { index: 1, kind: "eof", .. })));
        assert!(matches!(all("   ")[..], [Err(ProtocolError::Malformed { index: 0, .. })]));
    }

    #[test]
    fn stops_at_first_error() {
        let got = all("{\"id\":1,\"ping\":{}}\nnot json\n{\"id\":3,\"ping\":{}}");
        assert_eq!(got.len(), 2);
        assert!(got[0].is_ok());
        assert!(matches!(got[1], Err(ProtocolError::Malformed { index: 1, kind: "syntax", .. })));
    }

    #[test]
    fn limits_refuse_the_whole_frame() {
        let limits = FrameLimits { max_frame_bytes: 64, max_commands: 2 };
        let big = format!("{{\"id\":1,\"rpc\":{{\"method\":\"{}\"}}}}", "x".repeat(64));
        assert_eq!(
            decode_frame_with(&big, limits).collect::<Vec<_>>(),
            vec![Err(ProtocolError::FrameTooLarge { size: big.len(), limit: 64 })]
        );
        assert_eq!(
            decode_frame_with("{}\n{}\n{}", limits).collect::<Vec<_>>(),
            vec![Err(ProtocolError::TooManyCommands { count: 3, limit: 2 })]
        );
        assert_eq!(decode_frame_with("{}\n{}\n", limits).filter(Result::is_ok).count(), 2);
    }

    #[test]
    fn size_hint_is_an_upper_bound() {
        let d = decode_frame("{}\n{}\n{}");
        assert_eq!(d.size_hint(), (0, Some(3)));
        assert_eq!(d.count(), 3);
    }

    #[test]
    fn encoder_batches_within_the_limit() {
        let ping = encode_reply(&Reply::Ping).unwrap_or_default();
        let publish = encode_reply(&Reply::result(7, CommandResult::Publish)).unwrap_or_default();
        assert_eq!(ping, "{}");
        assert_eq!(publish, r#"{"id":7,"publish":{}}"#);

        let mut enc = FrameEncoder::new(ping.len() + 1 + publish.len());
        assert!(enc.take().is_none());
        assert!(enc.fits(ping.len()));
        enc.push_line(&ping);
        assert!(enc.fits(publish.len()));
        enc.push_line(&publish);
        assert!(!enc.fits(1));
        assert_eq!(enc.count(), 2);
        assert_eq!(enc.take().as_deref(), Some("{}\n{\"id\":7,\"publish\":{}}"));
        assert!(enc.is_empty());
        // An oversized reply still goes out, alone.
        assert!(enc.fits(10_000));
    }

    #[test]
    fn encode_frame_joins_lines() {
        let frame = encode_frame(&[Reply::Ping, Reply::result(1, CommandResult::Ping)]).unwrap_or_default();
        assert_eq!(frame, "{}\n{\"id\":1,\"ping\":{}}");
        assert_eq!(encode_frame(&[]).unwrap_or_default(), "");
    }
}
