//! Property tests of the Protobuf decoder: arbitrary bytes, mutated valid frames and arbitrary
//! length prefixes never panic, and the bytes the decoder allocates stay proportional to the
//! bytes it was given (never to a length a prefix announces), so a frame within the limit costs
//! at most a fixed multiple of the limit.
//!
//! This file is its own test binary because it installs a counting global allocator, and holds
//! a single test so that nothing else runs while the decoder is measured.

use std::alloc::System;
use std::collections::BTreeMap;

use cap::Cap;
use proptest::collection::vec;
use proptest::prelude::*;
use switchboard_server::gateway::frame::{DEFAULT_MAX_FRAME_BYTES, FrameLimits};
use switchboard_server::gateway::protobuf::{decode_frame_with, encode_command};
use switchboard_server::gateway::protocol::{
    Command, ConnectRequest, HistoryRequest, Method, RawJson, RpcRequest, StreamPosition, SubRecovery, SubscribeRequest,
};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// Bytes the decoder may allocate per byte of frame, in total over a whole frame (every
/// allocation counted, freed or not, so the peak is lower). The worst case is the connect
/// command's `subs` map: an entry is 6 bytes on the wire and a tree-node slot plus a key
/// string in memory, built once by the decoder and once for the model, with the node splits
/// of both; `subs_map_is_the_worst_case` below measures about 54.
const BYTES_PER_FRAME_BYTE: usize = 64;
/// Fixed costs of decoding a frame whatever its size (the first node of a map, an error value).
const FIXED_BYTES: usize = 16 * 1024;

/// Decodes `frame` as the connection loop does (each command handled, then dropped) and
/// returns every byte allocated meanwhile.
fn allocated_while_decoding(frame: &[u8], limits: FrameLimits) -> usize {
    let before = ALLOC.total_allocated();
    for command in decode_frame_with(frame, limits) {
        drop(std::hint::black_box(command));
    }
    ALLOC.total_allocated() - before
}

fn budget(frame: &[u8]) -> usize {
    frame.len() * BYTES_PER_FRAME_BYTE + FIXED_BYTES
}

fn check(frame: &[u8]) -> Result<(), TestCaseError> {
    let limits = FrameLimits::default();
    let used = allocated_while_decoding(frame, limits);
    prop_assert!(used <= budget(frame), "{used} bytes allocated for a frame of {} bytes", frame.len());
    Ok(())
}

fn json() -> impl Strategy<Value = Option<RawJson>> {
    prop_oneof![
        Just(None),
        "[a-z]{0,12}".prop_map(|s| RawJson::to_json(&serde_json::json!({"k": s, "n": [1, 2, 3]})).ok()),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let id = 1..10_000u32;
    prop_oneof![
        Just(Command { id: 0, method: Method::Pong }),
        id.clone().prop_map(|id| Command { id, method: Method::Ping }),
        (id.clone(), "[a-z.]{1,16}", json())
            .prop_map(|(id, method, data)| Command { id, method: Method::Rpc(RpcRequest { method, data }) }),
        (id.clone(), "chat:[a-z0-9]{1,8}", any::<u64>(), "[a-z]{0,8}").prop_map(|(id, channel, offset, epoch)| {
            Command {
                id,
                method: Method::Subscribe(SubscribeRequest {
                    channel,
                    recover: true,
                    epoch,
                    offset,
                    ..Default::default()
                }),
            }
        }),
        (id.clone(), "[a-z]{1,8}", any::<i32>()).prop_map(|(id, channel, limit)| Command {
            id,
            method: Method::History(HistoryRequest {
                channel,
                limit,
                since: Some(StreamPosition { offset: 3, epoch: "e".into() }),
                reverse: true,
            })
        }),
        (id, "[a-zA-Z0-9._-]{0,64}", vec(("user:[a-z]{1,6}", any::<u64>()), 0..20)).prop_map(|(id, token, subs)| {
            let subs: BTreeMap<_, _> = subs
                .into_iter()
                .map(|(c, offset)| (c, SubRecovery { recover: true, epoch: "ep".into(), offset }))
                .collect();
            Command { id, method: Method::Connect(ConnectRequest { token, subs, ..Default::default() }) }
        }),
    ]
}

fn frame_of(commands: &[Command]) -> Vec<u8> {
    commands.iter().flat_map(encode_command).collect()
}

/// A varint as the framing writes it.
fn varint(mut value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

/// One test for the whole binary, so nothing else allocates while the decoder is measured
/// (`cargo test` would run several tests of a binary on parallel threads).
#[test]
fn decoder_never_panics_and_allocates_in_proportion_to_its_input() {
    let config = ProptestConfig { cases: 512, ..ProptestConfig::default() };

    // Arbitrary bytes.
    proptest!(config.clone(), |(frame in vec(any::<u8>(), 0..4096))| {
        check(&frame)?;
    });

    // Any length prefix, followed by fewer bytes than most of them announce.
    proptest!(config.clone(), |(len in any::<u64>(), tail in vec(any::<u8>(), 0..256))| {
        let mut frame = varint(len);
        frame.extend(&tail);
        check(&frame)?;
        // A prefix past what follows is refused, whatever it announces.
        if len > tail.len() as u64 {
            let first = decode_frame_with(&frame, FrameLimits::default()).next();
            prop_assert!(matches!(first, Some(Err(_))), "{first:?}");
        }
    });

    // Valid frames, then flipped bytes and cuts.
    proptest!(config, |(
        commands in vec(command(), 1..8),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    )| {
        let mut frame = frame_of(&commands);
        // Unmutated, every command comes back as it was sent.
        let back: Vec<_> = decode_frame_with(&frame, FrameLimits::default()).collect();
        prop_assert_eq!(back, commands.iter().cloned().map(Ok).collect::<Vec<_>>());
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] ^= byte;
        }
        if truncate {
            frame.truncate(cut.index(frame.len()));
        }
        check(&frame)?;
    });

    subs_map_is_the_worst_case();
    large_data_costs_its_size();
}

/// The most allocation a frame can cause: a connect command whose `subs` map fills the frame
/// with distinct two-byte channel names.
fn subs_map_is_the_worst_case() {
    let limits = FrameLimits::default();
    // One entry: field 3, length 4, then the key (field 1, length 2, two bytes).
    let mut connect = Vec::new();
    let mut keys = 0u32;
    while connect.len() + 6 + 16 <= DEFAULT_MAX_FRAME_BYTES && keys < 96 * 96 {
        // Two ASCII characters from 0x20 to 0x7f: 9 216 distinct names.
        let key = [0x20 + (keys / 96) as u8, 0x20 + (keys % 96) as u8];
        connect.extend([0x1a, 0x04, 0x0a, 0x02, key[0], key[1]]);
        keys += 1;
    }
    // Command { id: 1, connect: ConnectRequest { subs } }
    let mut command = vec![0x08, 0x01, 0x22];
    command.extend(varint(connect.len() as u64));
    command.extend(&connect);
    let mut frame = varint(command.len() as u64);
    frame.extend(&command);
    let decoded: Vec<_> = decode_frame_with(&frame, limits).collect();
    match decoded.as_slice() {
        [Ok(Command { method: Method::Connect(c), .. })] => assert_eq!(c.subs.len(), keys as usize),
        other => panic!("{other:?}"),
    }
    let used = allocated_while_decoding(&frame, limits);
    assert!(used <= budget(&frame), "{used} bytes for a frame of {}", frame.len());
    // And the map really is the expensive case: well above what the bytes themselves take.
    assert!(used > frame.len() * 4, "{used} bytes for a frame of {}", frame.len());
}

/// A frame filled with one RPC's data: the data is allocated once or twice, never more.
fn large_data_costs_its_size() {
    let data = serde_json::json!({"pad": "x".repeat(60_000)});
    let rpc = Command {
        id: 1,
        method: Method::Rpc(RpcRequest { method: "typing".into(), data: RawJson::to_json(&data).ok() }),
    };
    let frame = encode_command(&rpc);
    assert!(frame.len() <= DEFAULT_MAX_FRAME_BYTES);
    let used = allocated_while_decoding(&frame, FrameLimits::default());
    assert!(used >= 60_000, "the data was decoded: {used}");
    assert!(used <= 3 * frame.len(), "{used} bytes for a frame of {}", frame.len());
}
