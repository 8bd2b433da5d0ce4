//! The per-connection outbox: what the gateway has to send to one client, bounded by bytes.
//! Pushing never waits (fan-out must not be slowed by one slow reader); when the bytes waiting
//! would pass the limit, the connection is marked slow and closed instead of growing memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// One thing to write to the socket.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A newline-delimited batch of replies and pushes, sent as one text frame.
    Text(String),
    /// Close the socket with this code and reason, after everything queued before it.
    Close(u16, String),
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
    /// A close that arrived while a batch was being built: sent right after that batch.
    pending_close: Option<Outgoing>,
}

/// The outbox is over its byte limit: the client reads too slowly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Overflow;

/// An outbox holding at most `limit` bytes, and its receiver. `slow` is cancelled on overflow.
pub(crate) fn outbox(limit: usize, slow: CancellationToken) -> (Outbox, OutboxReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (Outbox { tx, queued: queued.clone(), limit, slow }, OutboxReceiver { rx, queued, pending_close: None })
}

impl Outbox {
    /// Queues one frame. Fails (and marks the connection slow) when the bytes waiting would
    /// exceed the limit, or when the connection is already gone.
    pub(crate) fn push(&self, frame: String) -> Result<(), Overflow> {
        let len = frame.len();
        let before = self.queued.fetch_add(len, Ordering::AcqRel);
        // One message larger than the limit (a big recovery) may go through an empty queue:
        // memory stays bounded by that one message.
        if before > 0 && before + len > self.limit {
            self.queued.fetch_sub(len, Ordering::AcqRel);
            self.slow.cancel();
            return Err(Overflow);
        }
        self.tx.send(Outgoing::Text(frame)).map_err(|_| Overflow)
    }

    /// Queues a close after everything already queued.
    pub(crate) fn close(&self, code: u16, reason: impl Into<String>) {
        let _ = self.tx.send(Outgoing::Close(code, reason.into()));
    }

    /// Bytes waiting to be written.
    #[cfg(test)]
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

impl OutboxReceiver {
    /// The next thing to write: a close, or every text frame already waiting joined into one
    /// batch of at most about `max_batch` bytes (fewer, larger frames under fan-out load).
    pub(crate) async fn next(&mut self, max_batch: usize) -> Option<Outgoing> {
        if let Some(close) = self.pending_close.take() {
            return Some(close);
        }
        let first = self.rx.recv().await?;
        let Outgoing::Text(mut batch) = first else { return Some(first) };
        self.release(batch.len());
        while batch.len() < max_batch {
            match self.rx.try_recv() {
                Ok(Outgoing::Text(more)) => {
                    self.release(more.len());
                    batch.push('\n');
                    batch.push_str(&more);
                }
                Ok(close @ Outgoing::Close(..)) => {
                    // Keep order: this batch first, the close right after it.
                    self.pending_close = Some(close);
                    break;
                }
                Err(_) => break,
            }
        }
        Some(Outgoing::Text(batch))
    }

    fn release(&self, len: usize) {
        self.queued.fetch_sub(len, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_in_order_and_keeps_the_close_last() {
        let slow = CancellationToken::new();
        let (tx, mut rx) = outbox(1024, slow.clone());
        tx.push("a".into()).unwrap();
        tx.push("b".into()).unwrap();
        tx.close(3000, "bye");
        tx.push("after".into()).unwrap();
        assert!(matches!(rx.next(1 << 16).await, Some(Outgoing::Text(t)) if t == "a\nb"));
        assert!(matches!(rx.next(1 << 16).await, Some(Outgoing::Close(3000, _))));
        assert_eq!(tx.queued_bytes(), 5);
        assert!(!slow.is_cancelled());
    }

    #[tokio::test]
    async fn overflow_marks_the_connection_slow_and_never_grows() {
        let slow = CancellationToken::new();
        let (tx, _rx) = outbox(10, slow.clone());
        tx.push("12345".into()).unwrap();
        tx.push("12345".into()).unwrap();
        assert_eq!(tx.push("1".into()), Err(Overflow));
        assert!(slow.is_cancelled());
        // An oversized message alone in an empty queue is let through.
        let (tx, _rx) = outbox(10, CancellationToken::new());
        tx.push("a much longer message".into()).unwrap();
        assert_eq!(tx.push("x".into()), Err(Overflow));
        assert_eq!(tx.queued_bytes(), 21, "the refused push left nothing behind");
    }
}
