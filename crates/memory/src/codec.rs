//! The compact binary encoding of the durable mode's hottest journal records (a session touch, a
//! rate-limit state, a job's changes, an inbox post, a posted message, a stream publication):
//! fixed-width little-endian numbers and length-prefixed strings, written straight from the
//! store's state under its lock instead of through JSON. Every other record stays JSON; a store's
//! `replay` tells them apart by the first byte ([`BINARY`]), so journals written before these
//! records existed still read.

/// The first byte of a binary record: a UTF-8 continuation byte, so never the first byte of a
/// JSON record (nor of the `null` of a snapshot's cut).
pub(crate) const BINARY: u8 = 0xB1;

/// Writes one binary record (after [`BINARY`] and the store's kind byte).
pub(crate) struct Writer<'a>(&'a mut Vec<u8>);

impl<'a> Writer<'a> {
    /// Starts a record of `kind` in `out`.
    pub(crate) fn new(out: &'a mut Vec<u8>, kind: u8) -> Self {
        out.push(BINARY);
        out.push(kind);
        Writer(out)
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn i64(&mut self, v: i64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub(crate) fn f64(&mut self, v: f64) -> &mut Self {
        self.0.extend_from_slice(&v.to_bits().to_le_bytes());
        self
    }

    /// Bytes: their length (`u32`), then the bytes.
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.0.extend_from_slice(v);
        self
    }

    /// A string: its length (`u32`), then its bytes.
    pub(crate) fn str(&mut self, v: &str) -> &mut Self {
        self.bytes(v.as_bytes())
    }

    /// Optional bytes: a presence byte, then the bytes as [`Writer::bytes`].
    pub(crate) fn opt_bytes(&mut self, v: Option<&[u8]>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(bytes) => self.u8(1).bytes(bytes),
        }
    }

    /// A JSON value as its text, like [`Writer::bytes`].
    pub(crate) fn json(&mut self, v: &serde_json::Value) -> &mut Self {
        let at = self.0.len();
        self.0.extend_from_slice(&[0; 4]);
        // Writing a `Value` into a `Vec` cannot fail: its map keys are strings, a `Vec` takes
        // every byte.
        let _ = serde_json::to_writer(&mut *self.0, v);
        let len = (self.0.len() - at - 4) as u32;
        self.0[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self
    }

    /// An optional integer: a presence byte, then the integer.
    pub(crate) fn opt_i64(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            None => self.u8(0),
            Some(v) => self.u8(1).i64(v),
        }
    }
}

/// Reads one binary record back; every read fails (never panics) on a record cut short.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

/// The error of an undecodable binary record, as the stores' `replay` reports it.
pub(crate) fn error(what: &str) -> serde_json::Error {
    <serde_json::Error as serde::de::Error>::custom(format!("binary record: {what}"))
}

impl<'a> Reader<'a> {
    /// The reader of `record` and its kind byte, or `None` if `record` is not binary (JSON).
    pub(crate) fn of(record: &'a [u8]) -> Option<(u8, Self)> {
        match record {
            [BINARY, kind, rest @ ..] => Some((*kind, Reader { rest })),
            _ => None,
        }
    }

    fn take<const N: usize>(&mut self) -> serde_json::Result<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>().ok_or_else(|| error("cut short"))?;
        self.rest = rest;
        Ok(*head)
    }

    pub(crate) fn bytes(&mut self) -> serde_json::Result<&'a [u8]> {
        let len = u32::from_le_bytes(self.take()?) as usize;
        if self.rest.len() < len {
            return Err(error("cut short"));
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> serde_json::Result<u8> {
        Ok(self.take::<1>()?[0])
    }

    pub(crate) fn u64(&mut self) -> serde_json::Result<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }

    pub(crate) fn i64(&mut self) -> serde_json::Result<i64> {
        Ok(i64::from_le_bytes(self.take()?))
    }

    pub(crate) fn f64(&mut self) -> serde_json::Result<f64> {
        Ok(f64::from_bits(u64::from_le_bytes(self.take()?)))
    }

    pub(crate) fn str(&mut self) -> serde_json::Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| error("a string is not UTF-8"))
    }

    /// A string parsed into a validated value (an id), its error naming `what`.
    pub(crate) fn parse<T: TryFrom<String>>(&mut self, what: &str) -> serde_json::Result<T> {
        T::try_from(self.str()?.to_owned()).map_err(|_| error(&format!("invalid {what}")))
    }

    pub(crate) fn opt_bytes(&mut self) -> serde_json::Result<Option<&'a [u8]>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            _ => Err(error("bad presence byte")),
        }
    }

    pub(crate) fn json(&mut self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_slice(self.bytes()?)
    }

    pub(crate) fn opt_str(&mut self) -> serde_json::Result<Option<&'a str>> {
        self.opt_bytes()?.map(|b| std::str::from_utf8(b).map_err(|_| error("a string is not UTF-8"))).transpose()
    }

    pub(crate) fn opt_i64(&mut self) -> serde_json::Result<Option<i64>> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.i64().map(Some),
            _ => Err(error("bad presence byte")),
        }
    }

    /// Whether the record has more bytes.
    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Fails unless the whole record was read.
    pub(crate) fn end(&self) -> serde_json::Result<()> {
        if self.rest.is_empty() { Ok(()) } else { Err(error("trailing bytes")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_back_and_a_cut_record_fails() {
        let mut out = Vec::new();
        Writer::new(&mut out, 7)
            .json(&serde_json::json!({"a": [1, "b"]}))
            .str("key:1")
            .i64(-5)
            .u64(9)
            .f64(1.5)
            .opt_bytes(Some(b"r"))
            .opt_bytes(None)
            .opt_i64(Some(4));
        let (kind, mut r) = Reader::of(&out).expect("binary");
        assert_eq!(kind, 7);
        assert_eq!(r.json().expect("json"), serde_json::json!({"a": [1, "b"]}));
        assert_eq!(r.str().expect("str"), "key:1");
        assert_eq!((r.i64().expect("i64"), r.u64().expect("u64"), r.f64().expect("f64")), (-5, 9, 1.5));
        assert_eq!(r.opt_bytes().expect("some"), Some(&b"r"[..]));
        assert_eq!(r.opt_bytes().expect("none"), None);
        assert_eq!(r.opt_i64().expect("opt_i64"), Some(4));
        assert!(r.end().is_ok());
        for cut in 2..out.len() {
            let (_, mut r) = Reader::of(&out[..cut]).expect("binary");
            let read = (|| -> serde_json::Result<()> {
                r.json()?;
                r.str()?;
                r.i64()?;
                r.u64()?;
                r.f64()?;
                r.opt_bytes()?;
                r.opt_bytes()?;
                r.opt_i64()?;
                Ok(())
            })();
            assert!(read.is_err(), "cut at {cut} read as whole");
        }
    }

    #[test]
    fn json_records_are_not_binary() {
        for json in [&b"[{\"a\":1}]"[..], b"{}", b"\"x\"", b"null", b""] {
            assert!(Reader::of(json).is_none());
        }
    }
}
