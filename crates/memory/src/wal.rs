//! The on-disk record format of the durable mode: length-prefixed, checksummed frames, and the
//! scan that reads them back telling a torn tail (dropped) from corruption (fatal).
//!
//! A frame is `len: u32 LE`, `header_crc: u32 LE` (CRC-32 of the four length bytes),
//! `payload_crc: u32 LE` (CRC-32 of the payload), then `len` payload bytes. A payload is
//! `seq: u64 LE`, `store: u8`, then the store's record (JSON, or binary: see [`crate::codec`]).
//! Logs and snapshots use the same frames.

/// Bytes before a frame's payload.
pub(crate) const HEADER: usize = 12;
/// Bytes of a payload before the store's record.
pub(crate) const PREFIX: usize = 9;
/// Largest payload accepted when reading; a header claiming more is corruption.
pub(crate) const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// Appends one frame holding `record` of `store` at `seq` to `out`.
pub(crate) fn encode(out: &mut Vec<u8>, seq: u64, store: u8, record: &[u8]) {
    let len = (PREFIX + record.len()) as u32;
    let len_bytes = len.to_le_bytes();
    let mut payload_crc = crc32fast::Hasher::new();
    payload_crc.update(&seq.to_le_bytes());
    payload_crc.update(&[store]);
    payload_crc.update(record);
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc32fast::hash(&len_bytes).to_le_bytes());
    out.extend_from_slice(&payload_crc.finalize().to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(store);
    out.extend_from_slice(record);
}

/// One record read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame<'a> {
    pub(crate) seq: u64,
    pub(crate) store: u8,
    pub(crate) record: &'a [u8],
}

/// What a scan found.
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    pub(crate) frames: Vec<Frame<'a>>,
    /// Length of the valid prefix; bytes past it are a torn tail.
    pub(crate) valid_len: usize,
}

/// Reads every frame of `bytes`. An incomplete last frame (a write cut short by a crash) ends the
/// scan: its bytes are reported as a torn tail. A damaged frame followed by more data is
/// corruption: `Err(offset)` of that frame.
pub(crate) fn scan(bytes: &[u8]) -> Result<Scan<'_>, usize> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let torn = Ok(Scan { frames: Vec::new(), valid_len: at });
        if rest.len() < HEADER {
            return torn.map(|s| Scan { frames, ..s });
        }
        let len_bytes: [u8; 4] = rest[0..4].try_into().unwrap_or_default();
        let header_crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        if crc32fast::hash(&len_bytes) != header_crc {
            // A file extended by the crash but never written reads as zeros.
            if rest.iter().all(|b| *b == 0) {
                return torn.map(|s| Scan { frames, ..s });
            }
            return Err(at);
        }
        let len = u32::from_le_bytes(len_bytes) as usize;
        if !(PREFIX..=MAX_PAYLOAD).contains(&len) {
            return Err(at);
        }
        if rest.len() < HEADER + len {
            return torn.map(|s| Scan { frames, ..s });
        }
        let payload_crc = u32::from_le_bytes(rest[8..12].try_into().unwrap_or_default());
        let payload = &rest[HEADER..HEADER + len];
        if crc32fast::hash(payload) != payload_crc {
            // Only the very last frame may be a partly written one.
            if rest.len() == HEADER + len {
                return torn.map(|s| Scan { frames, ..s });
            }
            return Err(at);
        }
        frames.push(Frame {
            seq: u64::from_le_bytes(payload[0..8].try_into().unwrap_or_default()),
            store: payload[8],
            record: &payload[PREFIX..],
        });
        at += HEADER + len;
    }
    Ok(Scan { frames, valid_len: at })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        for (seq, body) in [(1u64, &b"{\"a\":1}"[..]), (2, b"{\"b\":[1,2,3]}"), (3, b"\"c\"")] {
            encode(&mut out, seq, 7, body);
            ends.push(out.len());
        }
        (out, ends)
    }

    #[test]
    fn frames_read_back_in_order() {
        let (bytes, ends) = three();
        let scan = scan(&bytes).expect("valid");
        assert_eq!(scan.valid_len, ends[2]);
        assert_eq!(scan.frames.iter().map(|f| f.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(scan.frames[1].record, b"{\"b\":[1,2,3]}");
        assert_eq!(scan.frames[2].store, 7);
    }

    #[test]
    fn every_cut_is_a_torn_tail_keeping_the_whole_frames_before_it() {
        let (bytes, ends) = three();
        for cut in 0..bytes.len() {
            let scan = scan(&bytes[..cut]).unwrap_or_else(|at| panic!("cut at {cut} read as corruption at {at}"));
            let whole = ends.iter().filter(|end| **end <= cut).count();
            assert_eq!(scan.frames.len(), whole, "cut at {cut}");
            assert_eq!(scan.valid_len, if whole == 0 { 0 } else { ends[whole - 1] });
        }
    }

    #[test]
    fn a_zero_filled_tail_is_torn() {
        let (mut bytes, ends) = three();
        bytes.extend_from_slice(&[0; 40]);
        let scan = scan(&bytes).expect("zeros are a torn tail");
        assert_eq!((scan.frames.len(), scan.valid_len), (3, ends[2]));
    }

    #[test]
    fn a_flipped_byte_before_the_last_frame_is_corruption_at_its_frame() {
        let (bytes, ends) = three();
        for at in 0..ends[1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let frame_start = if at < ends[0] { 0 } else { ends[0] };
            assert_eq!(scan(&damaged).map(|s| s.frames.len()).err(), Some(frame_start), "flip at {at}");
        }
    }
}
