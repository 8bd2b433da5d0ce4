//! The gateway's protocol codec and token verification against JSON written the way
//! centrifuge-js sends and expects it, plus a property test feeding random frames to the decoder.

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_core::{SessionId, Timestamp, UserId};
use switchboard_server::gateway::codes::{DisconnectCode, ErrorCode, UnsubscribeCode};
use switchboard_server::gateway::frame::{
    DEFAULT_MAX_COMMANDS_PER_FRAME, DEFAULT_MAX_FRAME_BYTES, FrameEncoder, FrameLimits, decode_frame,
    decode_frame_with, encode_frame, encode_reply,
};
use switchboard_server::gateway::protocol::{
    ClientInfo, Command, CommandResult, ConnectResult, HistoryResult, Method, PresenceResult, PresenceStatsResult,
    ProtocolError, Publication, PushBody, RawJson, Reply, RpcResult, SubRecovery, SubscribePush, SubscribeResult,
};
use switchboard_server::gateway::token::{InvalidToken, TokenError, TokenKey, TokenVerifier};

// ---------------------------------------------------------------------------------------------
// Helpers

fn one(frame: &str) -> Command {
    let mut cmds: Vec<_> = decode_frame(frame).collect();
    assert_eq!(cmds.len(), 1, "{frame}");
    match cmds.pop() {
        Some(Ok(cmd)) => cmd,
        other => panic!("{frame}: {other:?}"),
    }
}

/// Decodes `frame`, re-encodes the command and compares both as JSON values (key order aside).
fn round_trip(frame: &str) -> Command {
    let cmd = one(frame);
    let again = serde_json::to_value(&cmd).unwrap_or_else(|e| panic!("{e}"));
    let original: Value = serde_json::from_str(frame).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again, original, "{frame}");
    cmd
}

/// Encodes `reply`, compares with `expected` byte for byte (field order and omissions), and reads
/// it back.
fn encodes_as(reply: Reply, expected: &str) {
    let line = encode_reply(&reply).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(line, expected);
    let back: Reply = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{expected}: {e}"));
    assert_eq!(back, reply, "{expected}");
}

fn raw(text: &str) -> Option<RawJson> {
    Some(RawJson::from_text(text).unwrap_or_else(|e| panic!("{text}: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Commands, as centrifuge-js writes them

#[test]
fn connect_with_server_side_subscriptions_to_recover() {
    let cmd = round_trip(
        r#"{"id":1,"connect":{"token":"eyJ.x.y","data":{"app":"web"},"name":"js","version":"5.0.0","subs":{"user:42":{"recover":true,"epoch":"abc","offset":7}}}}"#,
    );
    let Method::Connect(c) = cmd.method else { panic!("not connect") };
    assert_eq!(cmd.id, 1);
    assert_eq!(c.token, "eyJ.x.y");
    assert_eq!(c.data, raw(r#"{"app":"web"}"#));
    assert_eq!((c.name.as_str(), c.version.as_str()), ("js", "5.0.0"));
    let expected =
        BTreeMap::from([("user:42".to_owned(), SubRecovery { recover: true, epoch: "abc".into(), offset: 7 })]);
    assert_eq!(c.subs, expected);
}

#[test]
fn connect_first_time_and_headers_ignored() {
    let Method::Connect(c) = round_trip(r#"{"id":1,"connect":{}}"#).method else { panic!("not connect") };
    assert!(c.token.is_empty() && c.subs.is_empty() && c.data.is_none());
    // `headers` (emulation) is not used by the gateway; it is tolerated.
    let cmd = one(r#"{"id":1,"connect":{"token":"t","headers":{"X-A":"1"}}}"#);
    assert!(matches!(cmd.method, Method::Connect(_)));
}

#[test]
fn offsets_are_u64_numbers() {
    let big = u64::MAX;
    let frame = format!(r#"{{"id":2,"subscribe":{{"channel":"chat:1","recover":true,"epoch":"e","offset":{big}}}}}"#);
    let Method::Subscribe(s) = round_trip(&frame).method else { panic!("not subscribe") };
    assert_eq!(s.offset, big);
    // A string offset is a type error, as for the reference server.
    let bad = decode_frame(r#"{"id":2,"subscribe":{"channel":"c","offset":"7"}}"#).collect::<Vec<_>>();
    assert!(matches!(bad[..], [Err(ProtocolError::Malformed { kind: "data", .. })]));
}

#[test]
fn subscribe_as_the_sdk_sends_it() {
    // centrifuge-js 5 always sends `flag` (channel compaction) and may send delta/tf.
    let Method::Subscribe(s) = round_trip(
        r#"{"id":3,"subscribe":{"channel":"chat:c1","recover":true,"offset":12,"epoch":"xyz","flag":1,"join_leave":true}}"#,
    )
    .method
    else {
        panic!("not subscribe")
    };
    assert_eq!(s.channel, "chat:c1");
    assert!(s.recover && s.join_leave);
    assert_eq!((s.epoch.as_str(), s.offset, s.flag), ("xyz", 12, 1));
    let cmd = one(r#"{"id":3,"subscribe":{"channel":"chat:c1","delta":"fossil","tf":{"op":"","key":"a"}}}"#);
    assert!(matches!(cmd.method, Method::Subscribe(_)));
}

#[test]
fn the_other_commands() {
    assert!(
        matches!(round_trip(r#"{"id":4,"unsubscribe":{"channel":"chat:c1"}}"#).method, Method::Unsubscribe(u) if u.channel == "chat:c1")
    );
    let Method::Publish(p) = round_trip(r#"{"id":5,"publish":{"channel":"chat:c1","data":{"text":"hi"}}}"#).method
    else {
        panic!("not publish")
    };
    assert_eq!(p.data, raw(r#"{"text":"hi"}"#));
    assert!(matches!(round_trip(r#"{"id":6,"presence":{"channel":"chat:c1"}}"#).method, Method::Presence(_)));
    assert!(matches!(
        round_trip(r#"{"id":7,"presence_stats":{"channel":"chat:c1"}}"#).method,
        Method::PresenceStats(_)
    ));
    let Method::History(h) = round_trip(
        r#"{"id":8,"history":{"channel":"chat:c1","since":{"offset":5,"epoch":"e1"},"limit":10,"reverse":true}}"#,
    )
    .method
    else {
        panic!("not history")
    };
    assert_eq!((h.limit, h.reverse), (10, true));
    let since = h.since.unwrap_or_default();
    assert_eq!((since.offset, since.epoch.as_str()), (5, "e1"));
    let Method::Rpc(r) =
        round_trip(r#"{"id":9,"rpc":{"method":"typing","data":{"conversation_id":"c1","typing":true}}}"#).method
    else {
        panic!("not rpc")
    };
    assert_eq!(r.method, "typing");
    // `rpc` without data (JSON.stringify drops undefined).
    assert!(
        matches!(round_trip(r#"{"id":10,"rpc":{"method":"presence.get"}}"#).method, Method::Rpc(r) if r.data.is_none())
    );
    assert!(
        matches!(round_trip(r#"{"id":11,"refresh":{"token":"eyJ.new.t"}}"#).method, Method::Refresh(r) if r.token == "eyJ.new.t")
    );
    assert!(matches!(
        round_trip(r#"{"id":12,"sub_refresh":{"channel":"chat:c1","token":"s"}}"#).method,
        Method::SubRefresh(_)
    ));
    // `send` has no id: no reply is expected.
    let send = round_trip(r#"{"send":{"data":{"hello":"server"}}}"#);
    assert_eq!(send.id, 0);
    assert!(matches!(send.method, Method::Send(_)));
    // The old client-initiated ping, and the pong to a server ping.
    assert_eq!(round_trip(r#"{"id":13,"ping":{}}"#).method, Method::Ping);
    assert_eq!(round_trip("{}"), Command { id: 0, method: Method::Pong });
}

#[test]
fn data_with_line_breaks_cannot_break_framing() {
    let pretty = "{\n  \"a\": [1,\r\n 2]\n}";
    let data = RawJson::from_text(pretty).unwrap_or_else(|e| panic!("{e}"));
    assert!(!data.get().contains('\n') && !data.get().contains('\r'));
    assert_eq!(data.parse::<Value>().ok(), Some(json!({"a": [1, 2]})));
    // Also when a RawJson is read from pretty JSON by some other path.
    let p: Publication = serde_json::from_str("{\"data\": {\n\"x\": 1\n}}").unwrap_or_else(|e| panic!("{e}"));
    let line = encode_reply(&Reply::push("c", PushBody::Pub(p))).unwrap_or_default();
    assert!(!line.contains('\n'));
}

// ---------------------------------------------------------------------------------------------
// Frames

#[test]
fn several_commands_in_one_frame() {
    // The SDK batches a connect and its subscribes into one frame.
    let frame = concat!(
        r#"{"id":1,"connect":{"token":"t","subs":{"user:42":{"recover":true,"offset":3,"epoch":"e"}}}}"#,
        "\n",
        r#"{"id":2,"subscribe":{"channel":"chat:a","flag":1}}"#,
        "\n",
        r#"{"id":3,"subscribe":{"channel":"presence:bob","flag":1}}"#,
    );
    let ids: Vec<u32> = decode_frame(frame).map(|c| c.map(|c| c.id).unwrap_or(0)).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    // One trailing newline is allowed.
    assert_eq!(decode_frame(&format!("{frame}\n")).filter(Result::is_ok).count(), 3);
}

#[test]
fn oversize_frames_are_refused_whole() {
    let big_data = "x".repeat(DEFAULT_MAX_FRAME_BYTES);
    let frame = format!(r#"{{"id":1,"publish":{{"channel":"chat:a","data":"{big_data}"}}}}"#);
    let got: Vec<_> = decode_frame(&frame).collect();
    assert_eq!(got, vec![Err(ProtocolError::FrameTooLarge { size: frame.len(), limit: DEFAULT_MAX_FRAME_BYTES })]);
    assert_eq!(got[0].as_ref().err().map(ProtocolError::disconnect), Some(DisconnectCode::BadRequest));
    // Exactly at the limit is fine.
    let limits = FrameLimits { max_frame_bytes: 2, max_commands: 1 };
    assert!(decode_frame_with("{}", limits).all(|c| c.is_ok()));
    let many = vec!["{}"; DEFAULT_MAX_COMMANDS_PER_FRAME + 1].join("\n");
    assert!(matches!(decode_frame(&many).collect::<Vec<_>>()[..], [Err(ProtocolError::TooManyCommands { .. })]));
}

#[test]
fn malformed_json_and_protocol_violations() {
    type Check = fn(&ProtocolError) -> bool;
    let cases: [(&str, Check); 10] = [
        ("{", |e| matches!(e, ProtocolError::Malformed { kind: "eof", .. })),
        ("[1,2]", |e| matches!(e, ProtocolError::Malformed { kind: "data", .. })),
        ("null", |e| matches!(e, ProtocolError::Malformed { kind: "data", .. })),
        (r#"{"id":1,"connect":{"token":5}}"#, |e| matches!(e, ProtocolError::Malformed { kind: "data", .. })),
        (r#"{"id":1} trailing"#, |e| matches!(e, ProtocolError::Malformed { kind: "syntax", .. })),
        (r#"{"id":1}"#, |e| matches!(e, ProtocolError::NoMethod { id: 1 })),
        (r#"{"id":1,"bogus":{}}"#, |e| matches!(e, ProtocolError::NoMethod { id: 1 })),
        (r#"{"connect":{"token":"t"}}"#, |e| matches!(e, ProtocolError::MissingId { method: "connect" })),
        (r#"{"id":1,"rpc":{},"send":{}}"#, |e| matches!(e, ProtocolError::SeveralMethods { id: 1 })),
        (r#"{"id":1,"history":{"limit":1}}"#, |e| matches!(e, ProtocolError::MissingChannel { method: "history" })),
    ];
    for (frame, check) in cases {
        let got: Vec<_> = decode_frame(frame).collect();
        match &got[..] {
            [Err(e)] => assert!(check(e), "{frame}: {e:?}"),
            other => panic!("{frame}: {other:?}"),
        }
    }
}

#[test]
fn errors_never_quote_the_input() {
    let secret = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2ln";
    let frame = format!(r#"{{"id":"{secret}","connect":{{}}}}"#);
    let got: Vec<_> = decode_frame(&frame).collect();
    let message = got[0].as_ref().err().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("malformed") && !message.contains(secret), "{message}");
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let depth = 30_000;
    let open_close = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    // Nesting inside `data` is carried verbatim (scanned, not parsed); parsing it later hits
    // serde_json's recursion limit instead of the stack.
    let frame = format!(r#"{{"id":1,"rpc":{{"method":"m","data":{open_close}}}}}"#);
    assert!(frame.len() <= DEFAULT_MAX_FRAME_BYTES);
    let Some(Ok(Command { method: Method::Rpc(rpc), .. })) = decode_frame(&frame).next() else { panic!("not rpc") };
    assert!(rpc.data.map(|d| d.parse::<Value>().is_err()).unwrap_or(false));
    // So is an unknown field, skipped the same way.
    let frame = format!(r#"{{"id":1,"unknown":{open_close},"ping":{{}}}}"#);
    assert_eq!(decode_frame(&frame).collect::<Vec<_>>(), vec![Ok(Command { id: 1, method: Method::Ping })]);
    // Deep objects where the schema has known fields: skipped as unknown content, no overflow.
    let objects = format!("{}1{}", r#"{"a":"#.repeat(depth / 3), "}".repeat(depth / 3));
    for frame in [
        format!(r#"{{"id":1,"ping":{objects}}}"#),
        format!(r#"{{"id":1,"connect":{{"subs":{{"user:1":{objects}}}}}}}"#),
        format!(r#"{{"id":1,"history":{{"channel":"c","since":{objects}}}}}"#),
    ] {
        assert!(frame.len() <= DEFAULT_MAX_FRAME_BYTES);
        let got: Vec<_> = decode_frame(&frame).collect();
        assert!(matches!(got[..], [Ok(_)]), "{got:?}");
    }
}

#[test]
fn unknown_fields_are_tolerated() {
    let cmd = one(r#"{"id":1,"future":{"x":[1,{"y":null}]},"presence":{"channel":"chat:a","extra":true}}"#);
    assert!(matches!(cmd.method, Method::Presence(p) if p.channel == "chat:a"));
}

// ---------------------------------------------------------------------------------------------
// Replies and pushes, as centrifuge-js reads them

#[test]
fn connect_result_with_recovered_personal_channel() {
    let recovered = SubscribeResult {
        recoverable: true,
        epoch: "abc".into(),
        publications: vec![
            Publication {
                data: raw(r#"{"type":"message.created","data":{"id":"m1"}}"#),
                offset: 8,
                ..Default::default()
            },
            Publication {
                data: raw(r#"{"type":"message.created","data":{"id":"m2"}}"#),
                offset: 9,
                ..Default::default()
            },
        ],
        recovered: true,
        offset: 9,
        was_recovering: true,
        ..Default::default()
    };
    let result = ConnectResult {
        client: "c0ffee".into(),
        version: "0.1.0".into(),
        expires: true,
        ttl: 3540,
        subs: BTreeMap::from([("user:42".to_owned(), recovered)]),
        ping: 25,
        pong: true,
        node: "node-a".into(),
        ..Default::default()
    };
    encodes_as(
        Reply::result(1, CommandResult::Connect(result)),
        concat!(
            r#"{"id":1,"connect":{"client":"c0ffee","version":"0.1.0","expires":true,"ttl":3540,"#,
            r#""subs":{"user:42":{"recoverable":true,"epoch":"abc","publications":["#,
            r#"{"data":{"type":"message.created","data":{"id":"m1"}},"offset":8},"#,
            r#"{"data":{"type":"message.created","data":{"id":"m2"}},"offset":9}],"#,
            r#""recovered":true,"offset":9,"was_recovering":true}},"ping":25,"pong":true,"node":"node-a"}}"#
        ),
    );
}

#[test]
fn subscribe_results() {
    encodes_as(Reply::result(2, CommandResult::Subscribe(SubscribeResult::default())), r#"{"id":2,"subscribe":{}}"#);
    // Recovery beyond retention: recoverable, new position, `recovered` left out (false).
    encodes_as(
        Reply::result(
            3,
            CommandResult::Subscribe(SubscribeResult {
                recoverable: true,
                epoch: "e2".into(),
                offset: 100,
                was_recovering: true,
                ..Default::default()
            }),
        ),
        r#"{"id":3,"subscribe":{"recoverable":true,"epoch":"e2","offset":100,"was_recovering":true}}"#,
    );
}

#[test]
fn history_presence_rpc_and_empty_results() {
    encodes_as(
        Reply::result(4, CommandResult::History(HistoryResult::default())),
        r#"{"id":4,"history":{"publications":[],"epoch":"","offset":0}}"#,
    );
    encodes_as(
        Reply::result(
            5,
            CommandResult::History(HistoryResult {
                publications: vec![Publication { data: raw(r#"{"n":1}"#), offset: 1, ..Default::default() }],
                epoch: "e".into(),
                offset: 1,
            }),
        ),
        r#"{"id":5,"history":{"publications":[{"data":{"n":1},"offset":1}],"epoch":"e","offset":1}}"#,
    );
    let info =
        ClientInfo { user: "bob".into(), client: "c2".into(), conn_info: raw(r#"{"name":"Bob"}"#), chan_info: None };
    encodes_as(
        Reply::result(6, CommandResult::Presence(PresenceResult { presence: BTreeMap::from([("c2".into(), info)]) })),
        r#"{"id":6,"presence":{"presence":{"c2":{"user":"bob","client":"c2","conn_info":{"name":"Bob"}}}}}"#,
    );
    encodes_as(
        Reply::result(7, CommandResult::Presence(PresenceResult::default())),
        r#"{"id":7,"presence":{"presence":{}}}"#,
    );
    encodes_as(
        Reply::result(8, CommandResult::PresenceStats(PresenceStatsResult::default())),
        r#"{"id":8,"presence_stats":{"num_clients":0,"num_users":0}}"#,
    );
    encodes_as(
        Reply::result(9, CommandResult::Rpc(RpcResult { data: raw(r#"{"ok":true}"#) })),
        r#"{"id":9,"rpc":{"data":{"ok":true}}}"#,
    );
    encodes_as(Reply::result(10, CommandResult::Rpc(RpcResult::default())), r#"{"id":10,"rpc":{}}"#);
    encodes_as(Reply::result(11, CommandResult::Unsubscribe), r#"{"id":11,"unsubscribe":{}}"#);
    encodes_as(Reply::result(12, CommandResult::Publish), r#"{"id":12,"publish":{}}"#);
    encodes_as(Reply::result(13, CommandResult::Ping), r#"{"id":13,"ping":{}}"#);
}

#[test]
fn errors_and_server_ping() {
    encodes_as(
        Reply::error(3, ErrorCode::PermissionDenied),
        r#"{"id":3,"error":{"code":103,"message":"permission denied"}}"#,
    );
    encodes_as(Reply::error(1, ErrorCode::TokenExpired), r#"{"id":1,"error":{"code":109,"message":"token expired"}}"#);
    encodes_as(
        Reply::error(2, ErrorCode::Internal),
        r#"{"id":2,"error":{"code":100,"message":"internal server error","temporary":true}}"#,
    );
    encodes_as(Reply::Ping, "{}");
}

#[test]
fn pushes() {
    let info = ClientInfo { user: "bob".into(), client: "c2".into(), ..Default::default() };
    encodes_as(
        Reply::push(
            "user:42",
            PushBody::Pub(Publication {
                data: raw(r#"{"type":"notification.created","data":{"id":"n1"}}"#),
                info: Some(info.clone()),
                offset: 10,
                tags: BTreeMap::from([("k".into(), "v".into())]),
                time: 0,
            }),
        ),
        concat!(
            r#"{"push":{"channel":"user:42","pub":{"data":{"type":"notification.created","data":{"id":"n1"}},"#,
            r#""info":{"user":"bob","client":"c2"},"offset":10,"tags":{"k":"v"}}}}"#
        ),
    );
    encodes_as(
        Reply::push("chat:a", PushBody::Join(info.clone())),
        r#"{"push":{"channel":"chat:a","join":{"info":{"user":"bob","client":"c2"}}}}"#,
    );
    encodes_as(
        Reply::push("chat:a", PushBody::Leave(info)),
        r#"{"push":{"channel":"chat:a","leave":{"info":{"user":"bob","client":"c2"}}}}"#,
    );
    encodes_as(
        Reply::push("chat:a", PushBody::Unsubscribe(UnsubscribeCode::Server.into())),
        r#"{"push":{"channel":"chat:a","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}"#,
    );
    encodes_as(
        Reply::push("", PushBody::Disconnect(DisconnectCode::Shutdown.into())),
        r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}"#,
    );
    encodes_as(
        Reply::push("", PushBody::Disconnect(DisconnectCode::ForceNoReconnect.into())),
        r#"{"push":{"disconnect":{"code":3503,"reason":"force disconnect"}}}"#,
    );
    encodes_as(
        Reply::push(
            "user:42",
            PushBody::Subscribe(SubscribePush {
                recoverable: true,
                epoch: "e".into(),
                offset: 4,
                ..Default::default()
            }),
        ),
        r#"{"push":{"channel":"user:42","subscribe":{"recoverable":true,"epoch":"e","offset":4}}}"#,
    );
}

#[test]
fn replies_batch_into_frames_the_sdk_splits() {
    let replies = [
        Reply::result(1, CommandResult::Connect(ConnectResult { client: "c".into(), ..Default::default() })),
        Reply::result(2, CommandResult::Subscribe(SubscribeResult::default())),
        Reply::Ping,
    ];
    let frame = encode_frame(&replies).unwrap_or_default();
    // What centrifuge-js does: data.trim().split('\n').map(JSON.parse).
    let read: Vec<Reply> =
        frame.trim().split('\n').map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    assert_eq!(read, replies);

    // Writer-loop batching: fan-out encodes the push once and reuses the line.
    let line = encode_reply(&Reply::push("chat:a", PushBody::Pub(Publication { offset: 1, ..Default::default() })))
        .unwrap_or_default();
    let mut enc = FrameEncoder::new(3 * line.len() + 2);
    let mut frames = Vec::new();
    for _ in 0..7 {
        if !enc.fits(line.len()) {
            frames.extend(enc.take());
        }
        enc.push_line(&line);
    }
    frames.extend(enc.take());
    assert_eq!(frames.iter().map(|f| f.split('\n').count()).collect::<Vec<_>>(), vec![3, 3, 1]);
}

// ---------------------------------------------------------------------------------------------
// Property test: no input makes the decoder panic or produce unbounded output

fn protocol_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "id", "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats", "history", "ping",
            "send", "rpc", "refresh", "sub_refresh", "channel", "token", "subs", "recover", "epoch", "offset", "data",
            "method", "since", "limit", "reverse", "flag", "name", "version",
        ])
        .prop_map(String::from),
        1 => any::<String>(),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map(protocol_key(), inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A line: random text, a random JSON value, or a command-shaped object with random fields.
fn frame_line() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        json_value().prop_map(|v| v.to_string()),
        (any::<u32>(), protocol_key(), btree_map(protocol_key(), json_value(), 0..5)).prop_map(|(id, method, body)| {
            json!({"id": id, method: Value::Object(body.into_iter().collect())}).to_string()
        }),
    ]
}

fn assert_bounded(frame: &str, limits: FrameLimits) {
    let lines = frame.strip_suffix('\n').unwrap_or(frame).split('\n').count();
    let out: Vec<_> = decode_frame_with(frame, limits).collect();
    assert!(!out.is_empty(), "every frame yields at least one command or one error");
    assert!(out.len() <= lines.min(limits.max_commands).max(1));
    // At most one error, and it ends the output.
    if let Some(pos) = out.iter().position(Result::is_err) {
        assert_eq!(pos, out.len() - 1);
    }
    for cmd in out.into_iter().flatten() {
        // Whatever was accepted encodes again.
        assert!(serde_json::to_string(&cmd).is_ok());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in any::<String>()) {
        assert_bounded(&s, FrameLimits::default());
    }

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        assert_bounded(&String::from_utf8_lossy(&bytes), FrameLimits::default());
    }

    #[test]
    fn random_json_lines_never_panic(lines in vec(frame_line(), 0..12), trailing in any::<bool>()) {
        let mut frame = lines.join("\n");
        if trailing {
            frame.push('\n');
        }
        assert_bounded(&frame, FrameLimits::default());
        assert_bounded(&frame, FrameLimits { max_frame_bytes: 512, max_commands: 4 });
    }
}

// ---------------------------------------------------------------------------------------------
// Client tokens

const SECRET: &str = "gateway-test-secret";
const RS_PRIVATE: &str = include_str!("fixtures/jwt/rs256_private.pem");
const RS_PUBLIC: &str = include_str!("fixtures/jwt/rs256_public.pem");
const RS_OTHER_PUBLIC: &str = include_str!("fixtures/jwt/rs256_other_public.pem");
const ES_PRIVATE: &str = include_str!("fixtures/jwt/es256_private.pem");
const ES_PUBLIC: &str = include_str!("fixtures/jwt/es256_public.pem");

fn now_s() -> i64 {
    Timestamp::now().as_millis() / 1000
}

fn session_id() -> SessionId {
    let user = UserId::new("user-42").unwrap_or_else(|e| panic!("{e}"));
    SessionId::generate(&user).unwrap_or_else(|e| panic!("{e}"))
}

fn claims_with_session(sid: &SessionId) -> Value {
    let now = now_s();
    json!({
        "sub": "user-42", "device": "ios.1", "iat": now - 5, "exp": now + 3600,
        "jti": "tok-1", "sid": sid.as_str(),
        "channels": ["ignored"], "info": {"name": "Ann"}
    })
}

fn claims() -> Value {
    claims_with_session(&session_id())
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    encode(&Header::new(alg), claims, key).unwrap_or_else(|e| panic!("{e}"))
}

fn hs(claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET.as_bytes()), claims)
}

fn rs(claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(RS_PRIVATE.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    sign(Algorithm::RS256, &key, claims)
}

fn es(claims: &Value) -> String {
    let key = EncodingKey::from_ec_pem(ES_PRIVATE.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    sign(Algorithm::ES256, &key, claims)
}

fn verifier(key: TokenKey) -> TokenVerifier {
    TokenVerifier::new(&key).unwrap_or_else(|e| panic!("{e}"))
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn hs256_token_gives_the_claims_the_connect_handler_needs() {
    let sid = session_id();
    let c = verifier(TokenKey::Hs256(SECRET.into()))
        .verify(&hs(&claims_with_session(&sid)))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.user.as_str(), "user-42");
    assert_eq!(c.device.as_str(), "ios.1");
    assert_eq!(c.token_id.as_ref().map(|t| t.as_str()), Some("tok-1"));
    assert_eq!(c.session, Some(sid));
    assert_eq!(c.info, raw(r#"{"name":"Ann"}"#));
    assert!(c.issued_at < Timestamp::now());
    assert!((3590..=3600).contains(&c.ttl_seconds(Timestamp::now())));
}

#[test]
fn wrong_secret_is_invalid_not_expired() {
    let token = sign(Algorithm::HS256, &EncodingKey::from_secret(b"another secret"), &claims());
    let err = verifier(TokenKey::Hs256(SECRET.into())).verify(&token).err();
    assert_eq!(err, Some(TokenError::Invalid(InvalidToken::BadSignature)));
    // Even when it is also expired: expiry is only told for genuine tokens.
    let mut old = claims();
    old["exp"] = json!(now_s() - 3600);
    let token = sign(Algorithm::HS256, &EncodingKey::from_secret(b"another secret"), &old);
    assert_eq!(
        verifier(TokenKey::Hs256(SECRET.into())).verify(&token).err(),
        Some(TokenError::Invalid(InvalidToken::BadSignature))
    );
}

#[test]
fn expired_token_maps_to_token_expired() {
    let mut c = claims();
    c["exp"] = json!(now_s() - 60);
    let err = verifier(TokenKey::Hs256(SECRET.into())).verify(&hs(&c)).err();
    assert_eq!(err, Some(TokenError::Expired));
    assert_eq!(err.map(|e| e.error_code().code()), Some(109));
}

#[test]
fn alg_none_is_refused() {
    let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    let v = verifier(TokenKey::Hs256(SECRET.into()));
    for token in [format!("{header}.{payload}."), format!("{header}.{payload}"), format!("{header}.{payload}.c2ln")] {
        let err = v.verify(&token).err();
        assert!(matches!(err, Some(TokenError::Invalid(_))), "{token}: {err:?}");
        assert_eq!(err.and_then(|e| e.disconnect()), Some(DisconnectCode::InvalidToken));
    }
    // `None` spelled otherwise is no better.
    let header = b64(br#"{"alg":"None"}"#);
    assert!(matches!(v.verify(&format!("{header}.{payload}.")), Err(TokenError::Invalid(_))));
}

#[test]
fn tampered_payload_is_refused() {
    let token = hs(&claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut c = claims();
    c["sub"] = json!("admin");
    parts[1] = b64(c.to_string().as_bytes());
    let forged = parts.join(".");
    assert_eq!(
        verifier(TokenKey::Hs256(SECRET.into())).verify(&forged).err(),
        Some(TokenError::Invalid(InvalidToken::BadSignature))
    );
}

#[test]
fn rs256_and_es256_with_public_keys() {
    let rs_verifier = verifier(TokenKey::Rs256(RS_PUBLIC.into()));
    assert_eq!(rs_verifier.algorithm(), "RS256");
    assert_eq!(rs_verifier.verify(&rs(&claims())).map(|c| c.user.to_string()).ok().as_deref(), Some("user-42"));
    let es_verifier = verifier(TokenKey::Es256(ES_PUBLIC.into()));
    assert_eq!(es_verifier.verify(&es(&claims())).map(|c| c.device.to_string()).ok().as_deref(), Some("ios.1"));

    // Signed by another RSA key.
    let other = verifier(TokenKey::Rs256(RS_OTHER_PUBLIC.into()));
    assert_eq!(other.verify(&rs(&claims())).err(), Some(TokenError::Invalid(InvalidToken::BadSignature)));
    // An ES256 token to the RS256 verifier and the reverse.
    assert_eq!(rs_verifier.verify(&es(&claims())).err(), Some(TokenError::Invalid(InvalidToken::WrongAlgorithm)));
    assert_eq!(es_verifier.verify(&rs(&claims())).err(), Some(TokenError::Invalid(InvalidToken::WrongAlgorithm)));
    // Expired RS256 token.
    let mut c = claims();
    c["exp"] = json!(now_s() - 60);
    assert_eq!(rs_verifier.verify(&rs(&c)).err(), Some(TokenError::Expired));
}

#[test]
fn algorithm_confusion_is_refused() {
    let rs_verifier = verifier(TokenKey::Rs256(RS_PUBLIC.into()));
    // The classic attack: HS256 with the server's public key (known to everyone) as the secret.
    let forged = sign(Algorithm::HS256, &EncodingKey::from_secret(RS_PUBLIC.as_bytes()), &claims());
    assert_eq!(rs_verifier.verify(&forged).err(), Some(TokenError::Invalid(InvalidToken::WrongAlgorithm)));
    // Any HS256 token.
    assert_eq!(rs_verifier.verify(&hs(&claims())).err(), Some(TokenError::Invalid(InvalidToken::WrongAlgorithm)));
    // And an RS256 token to an HS256 verifier.
    let hs_verifier = verifier(TokenKey::Hs256(SECRET.into()));
    assert_eq!(hs_verifier.verify(&rs(&claims())).err(), Some(TokenError::Invalid(InvalidToken::WrongAlgorithm)));
}

#[test]
fn pem_of_the_wrong_kind_is_a_config_error() {
    assert!(TokenVerifier::new(&TokenKey::Es256(RS_PUBLIC.into())).is_err());
    assert!(TokenVerifier::new(&TokenKey::Rs256(ES_PUBLIC.into())).is_err());
    assert!(TokenVerifier::new(&TokenKey::Rs256(RS_PRIVATE.into())).is_err());
}
