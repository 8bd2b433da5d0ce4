//! The two variants of the client protocol on one endpoint: [`Protocol`], chosen once per
//! connection at the WebSocket handshake, and the encoding of replies into what the
//! connection's outbox sends (text frames for JSON, binary frames for Protobuf).

use super::protocol::{ProtocolError, Reply};
use super::{frame, protobuf};

/// The wire format of one connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Newline-delimited JSON in text frames (the default).
    #[default]
    Json,
    /// Varint-length-delimited Protobuf messages in binary frames.
    Protobuf,
}

/// The subprotocol of the JSON variant.
pub const JSON_SUBPROTOCOL: &str = "centrifuge-json";
/// The subprotocol of the Protobuf variant.
pub const PROTOBUF_SUBPROTOCOL: &str = "centrifuge-protobuf";

impl Protocol {
    /// `json` or `protobuf`: the metrics label and the value of the legacy query forms.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Json => "json",
            Protocol::Protobuf => "protobuf",
        }
    }

    /// The WebSocket subprotocol that selects this variant.
    pub fn subprotocol(self) -> &'static str {
        match self {
            Protocol::Json => JSON_SUBPROTOCOL,
            Protocol::Protobuf => PROTOBUF_SUBPROTOCOL,
        }
    }

    fn from_format(value: &str) -> Option<Self> {
        match value {
            "json" => Some(Protocol::Json),
            "protobuf" => Some(Protocol::Protobuf),
            _ => None,
        }
    }
}

/// The outcome of a handshake: the variant, and the subprotocol to echo (when the client asked
/// for one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// The connection's wire format.
    pub protocol: Protocol,
    /// The `Sec-WebSocket-Protocol` of the response, when the client sent that header.
    pub echo: Option<&'static str>,
}

/// Why a handshake is refused (answered `400 Bad Request` before the upgrade, so an SDK asking
/// for a format this server does not speak fails at once instead of after its first frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The client asked only for subprotocols this server does not speak.
    #[error("unsupported WebSocket subprotocol: this endpoint speaks centrifuge-json and centrifuge-protobuf")]
    Subprotocol,
    /// `cf_protocol` or `format` names a format this server does not speak.
    #[error("unsupported format: cf_protocol and format may be json or protobuf")]
    Format,
    /// The subprotocol and the query (or the two query forms) name different formats.
    #[error("conflicting formats in the subprotocol and the query")]
    Conflict,
}

/// Chooses the variant from the subprotocols the client requested and the request's query
/// string. `centrifuge-protobuf` (echoed) or `cf_protocol=protobuf` / `format=protobuf` select
/// Protobuf; `centrifuge-json` (echoed), `=json` or nothing select JSON. A client listing both
/// subprotocols gets Protobuf (the SDKs list one). Anything else this server does not speak is
/// refused.
pub fn negotiate<'a>(requested: impl IntoIterator<Item = &'a str>, query: Option<&str>) -> Result<Negotiated, Refusal> {
    let mut from_query = None;
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "cf_protocol" || key == "format" {
            let protocol = Protocol::from_format(value).ok_or(Refusal::Format)?;
            if from_query.is_some_and(|p| p != protocol) {
                return Err(Refusal::Conflict);
            }
            from_query = Some(protocol);
        }
    }
    let mut asked = false;
    let (mut json, mut protobuf) = (false, false);
    for sub in requested {
        asked = true;
        json |= sub == JSON_SUBPROTOCOL;
        protobuf |= sub == PROTOBUF_SUBPROTOCOL;
    }
    let from_header = match (protobuf, json) {
        (true, _) => Some(Protocol::Protobuf),
        (false, true) => Some(Protocol::Json),
        (false, false) if asked => return Err(Refusal::Subprotocol),
        (false, false) => None,
    };
    let protocol = match (from_header, from_query) {
        (Some(h), Some(q)) if h != q => return Err(Refusal::Conflict),
        (Some(p), _) | (None, Some(p)) => p,
        (None, None) => Protocol::Json,
    };
    Ok(Negotiated { protocol, echo: from_header.map(Protocol::subprotocol) })
}

/// Encoded replies as the outbox queues them: JSON lines or length-delimited messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Payload {
    /// One or more JSON replies joined by `\n`, for a text frame.
    Text(String),
    /// One or more length-delimited Protobuf replies, back to back, for a binary frame.
    Binary(Vec<u8>),
}

impl Payload {
    pub(crate) fn len(&self) -> usize {
        match self {
            Payload::Text(t) => t.len(),
            Payload::Binary(b) => b.len(),
        }
    }

    /// Appends `more` to this batch when both are of one kind (a connection only ever queues
    /// one); gives it back otherwise.
    pub(crate) fn append(&mut self, more: Payload) -> Result<(), Payload> {
        match (self, more) {
            (Payload::Text(batch), Payload::Text(more)) => {
                batch.push('\n');
                batch.push_str(&more);
                Ok(())
            }
            (Payload::Binary(batch), Payload::Binary(more)) => {
                batch.extend_from_slice(&more);
                Ok(())
            }
            (_, more) => Err(more),
        }
    }
}

impl Protocol {
    /// Encodes one reply for a connection of this variant.
    pub(crate) fn encode(self, reply: &Reply) -> Result<Payload, serde_json::Error> {
        Ok(match self {
            Protocol::Json => Payload::Text(frame::encode_reply(reply)?),
            Protocol::Protobuf => Payload::Binary(protobuf::encode_reply(reply)),
        })
    }

    /// The error for a frame of the other variant's kind (`got` is `text` or `binary`).
    pub(crate) fn wrong_frame(self, got: &'static str) -> ProtocolError {
        ProtocolError::WrongFrameType { got, protocol: self.name() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(subs: &[&str], query: Option<&str>) -> Result<(Protocol, Option<&'static str>), Refusal> {
        negotiate(subs.iter().copied(), query).map(|n| (n.protocol, n.echo))
    }

    #[test]
    fn subprotocols_and_query_forms() {
        assert_eq!(pick(&[], None), Ok((Protocol::Json, None)));
        assert_eq!(pick(&["centrifuge-json"], None), Ok((Protocol::Json, Some("centrifuge-json"))));
        assert_eq!(pick(&["centrifuge-protobuf"], None), Ok((Protocol::Protobuf, Some("centrifuge-protobuf"))));
        assert_eq!(pick(&["centrifuge-json", "centrifuge-protobuf"], None).map(|p| p.0), Ok(Protocol::Protobuf));
        assert_eq!(pick(&[], Some("cf_protocol=protobuf")), Ok((Protocol::Protobuf, None)));
        assert_eq!(pick(&[], Some("a=1&format=protobuf")), Ok((Protocol::Protobuf, None)));
        assert_eq!(pick(&[], Some("format=json&cf_protocol=json")), Ok((Protocol::Json, None)));
        assert_eq!(
            pick(&["centrifuge-protobuf"], Some("cf_protocol=protobuf")),
            Ok((Protocol::Protobuf, Some("centrifuge-protobuf")))
        );
        // Unrelated query parameters are ignored.
        assert_eq!(pick(&[], Some("token=x&formats=msgpack")), Ok((Protocol::Json, None)));
    }

    #[test]
    fn formats_not_served_are_refused() {
        assert_eq!(pick(&["centrifuge-msgpack"], None), Err(Refusal::Subprotocol));
        assert_eq!(pick(&["graphql-ws"], None), Err(Refusal::Subprotocol));
        assert_eq!(pick(&[], Some("cf_protocol=msgpack")), Err(Refusal::Format));
        assert_eq!(pick(&[], Some("format=")), Err(Refusal::Format));
        assert_eq!(pick(&["centrifuge-json"], Some("format=protobuf")), Err(Refusal::Conflict));
        assert_eq!(pick(&[], Some("format=json&cf_protocol=protobuf")), Err(Refusal::Conflict));
    }

    #[test]
    fn payloads_batch_by_kind() {
        let mut text = Payload::Text("{}".into());
        assert_eq!(text.append(Payload::Text("{\"id\":1}".into())), Ok(()));
        assert_eq!(text, Payload::Text("{}\n{\"id\":1}".into()));
        let mut binary = Payload::Binary(vec![0]);
        assert_eq!(binary.append(Payload::Binary(vec![2, 8, 1])), Ok(()));
        assert_eq!(binary, Payload::Binary(vec![0, 2, 8, 1]));
        assert_eq!(binary.append(Payload::Text("{}".into())), Err(Payload::Text("{}".into())));
        assert_eq!(binary.len(), 4);
    }
}
