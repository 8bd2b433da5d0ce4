//! The per-connection outbox: what the gateway has to send to one client, bounded by bytes.
//! Pushing never waits (fan-out must not be slowed by one slow reader); when the bytes waiting
//! would pass the limit, the connection is marked slow and closed instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::codec::Payload;

/// One thing to write to the socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A batch of encoded replies and pushes, sent as one frame (text for JSON, binary for
    /// Protobuf).
    Frame(Payload),
    /// Close the socket with this code and reason, after everything queued before it. The reason
    /// is static, which keeps `Outgoing` as small as a payload (the channel allocates its slots
    /// in blocks up front, per connection).
    Close(u16, &'static str),
}

/// The sending half, cheap to clone (one per subscription forwarder, one for replies).
#[derive(Clone)]
pub(crate) struct Outbox {
    tx: mpsc::UnboundedSender<Outgoing>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    slow: CancellationToken,
}

/// The receiving half, owned by the writer task.
pub(crate) struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    queued: Arc<AtomicUsize>,
    /// What arrived while a batch was being built and could not join it (a close): sent
    /// right after that batch.
    pending: Option<Outgoing>,
}

/// The outbox is over its byte limit: the client reads too slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// An outbox holding at most `limit` bytes, and its receiver. `slow` is cancelled on overflow.
pub(crate) fn outbox(limit: usize, slow: CancellationToken) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued: queued.clone(), limit, slow }, OutboxReceiver { rx, queued, pending: None })
}

impl Outbox {
    /// Queues encoded replies. Fails (and marks the connection slow) when the bytes waiting
    /// would exceed the limit, or when the connection is already gone.
    pub(crate) fn push(&self, frame: Payload) -> Result<(), Overflow> {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        // One message larger than the limit (a big recovery) may go through an empty queue:
        // memory stays bounded by that one message.
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.slow.cancel();
            return Err(Overflow);
        }
        self.tx.send(Outgoing::Frame(frame)).map_err(|_| Overflow)
    }

    /// Queues a close after everything already queued.
    pub(crate) fn close(&self, code: u16, reason: &'static str) {
        let _ = self.tx.send(Outgoing::Close(code, reason));
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl OutboxReceiver {
    /// The next thing to write: a close, or every frame already waiting joined into one batch
    /// of at most about `max_batch` bytes (fewer, larger frames under fan-out load).
    pub(crate) async fn next(&mut self, max_batch: usize) -> Option<Outgoing> {
        let first = match self.pending.take() {
            Some(pending) => pending,
            None => self.rx.recv().await?,
        };
        let Outgoing::Frame(mut batch) = first else { return Some(first) };
        self.release(batch.len());
        while batch.len() < max_batch {
            match self.rx.try_recv() {
                Ok(Outgoing::Frame(more)) => {
                    let len = more.len();
                    if let Err(other) = batch.append(more) {
                        // Of another kind (never on one connection): it starts the next batch.
                        self.pending = Some(Outgoing::Frame(other));
                        break;
                    }
                    self.release(len);
                }
                Ok(close @ Outgoing::Close(..)) => {
                    // Keep order: this batch first, the close right after it.
                    self.pending = Some(close);
                    break;
                }
                Err(_) => break,
            }
        }
        Some(Outgoing::Frame(batch))
    }

    fn release(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outgoing_message_is_no_larger_than_a_payload() {
        assert_eq!(std::mem::size_of::<Outgoing>(), std::mem::size_of::<Payload>());
    }

    fn text(t: &str) -> Payload {
        Payload::Text(t.into())
    }

    #[tokio::test]
    async fn binary_messages_are_concatenated_into_one_frame() {
        let (tx, mut rx) = outbox(1024, CancellationToken::new());
        tx.push(Payload::Binary(vec![0])).unwrap();
        tx.push(Payload::Binary(vec![2, 8, 1])).unwrap();
        tx.close(3001, "shutdown");
        assert!(matches!(rx.next(1 << 16).await, Some(Outgoing::Frame(Payload::Binary(b))) if b == [0, 2, 8, 1]));
        assert!(matches!(rx.next(1 << 16).await, Some(Outgoing::Close(3001, _))));
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn batches_in_order_and_keeps_the_close_last() {
        let slow = CancellationToken::new();
        let (tx, mut rx) = outbox(1024, slow.clone());
        tx.push(text("a")).unwrap();
        tx.push(text("b")).unwrap();
        tx.close(3000, "bye");
        tx.push(text("after")).unwrap();
        assert!(matches!(rx.next(1 << 16).await, Some(Outgoing::Frame(Payload::Text(t))) if t == "a\nb"));
        assert!(matches!(rx.next(1 << 16).await, Some(Outgoing::Close(3000, _))));
        assert_eq!(tx.queued_bytes(), 5);
        assert!(!slow.is_cancelled());
    }

    #[tokio::test]
    async fn overflow_marks_the_connection_slow_and_never_grows() {
        let slow = CancellationToken::new();
        let (tx, _rx) = outbox(10, slow.clone());
        tx.push(text("12345")).unwrap();
        tx.push(Payload::Binary(vec![5; 5])).unwrap();
        assert_eq!(tx.push(text("1")), Err(Overflow));
        assert!(slow.is_cancelled());
        // An oversized message alone in an empty queue is let through.
        let (tx, _rx) = outbox(10, CancellationToken::new());
        tx.push(text("a much longer message")).unwrap();
        assert_eq!(tx.push(text("x")), Err(Overflow));
        assert_eq!(tx.queued_bytes(), 21, "the refused push left nothing behind");
    }
}
