//! Cross-node fan-out: the [`Broker`] contract (one node's upstream subscriptions, delivering
//! publications from every node), its events, and [`broker_queue`], the bounded queue every
//! broker delivers into.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::channel::ChannelName;
use crate::error::Result;
use crate::stream::Publication;

/// Events a broker queue holds by default. A hub drains it without waiting on subscribers, so it
/// only fills when the node cannot keep up at all.
pub const BROKER_QUEUE_CAPACITY: usize = 8192;

/// One publication delivered by the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerMessage {
    /// Its channel.
    pub channel: ChannelName,
    /// The stream's epoch when it was published.
    pub epoch: String,
    /// The publication, with its offset.
    pub publication: Publication,
    /// A transport's encodings of this message, each computed by the first local subscriber
    /// that needs it and shared by the others, so a fan-out encodes once per node and format
    /// rather than once per subscriber. Engines leave them empty.
    pub encoded: Encodings,
}

/// The encodings of one message a transport may share between subscribers: one text and one
/// binary form (for the gateway, the JSON and Protobuf variants of the client protocol). A
/// form no subscriber needs is never computed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Encodings {
    /// The text form.
    pub text: OnceLock<Arc<str>>,
    /// The binary form.
    pub binary: OnceLock<Arc<[u8]>>,
}

impl BrokerMessage {
    /// A message with nothing encoded yet.
    pub fn new(channel: ChannelName, epoch: String, publication: Publication) -> Self {
        BrokerMessage { channel, epoch, publication, encoded: Encodings::default() }
    }
}

/// What a broker delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum BrokerEvent {
    /// A publication on a subscribed channel.
    Message(Arc<BrokerMessage>),
    /// Live delivery may have missed publications on `channel`, or on every subscribed channel
    /// when `None` (the upstream connection was re-established, or this queue overflowed).
    /// Subscribers must re-read the stream since the last offset they saw.
    Gap {
        /// The channel concerned, `None` for all.
        channel: Option<ChannelName>,
    },
}

/// Node-local delivery of the publications of every node.
///
/// Contract, for every engine:
/// - The broker keeps one set of subscribed channels for the whole node: `subscribe` and
///   `unsubscribe` are idempotent per channel (no counting; [`crate::Hub`] counts local
///   subscribers and calls them once per channel).
/// - `subscribe` returns once publications made from then on are delivered; it fails (and the
///   channel is not subscribed) if that cannot be confirmed, e.g. with
///   [`crate::Error::Unavailable`] while the backing store is unreachable.
/// - Delivery goes into one bounded queue ([`BrokerReceiver`], taken once by the node's hub):
///   for each channel in offset order. Nothing ever blocks on the queue: when it is full, events
///   are dropped and a [`BrokerEvent::Gap`] for every channel is queued as soon as there is
///   room. After any interruption of upstream delivery the broker re-subscribes every channel
///   by itself and then queues a `Gap { channel: None }`.
#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Starts delivering `channel`'s publications.
    async fn subscribe(&self, channel: &ChannelName) -> Result<()>;

    /// Stops delivering `channel`'s publications.
    async fn unsubscribe(&self, channel: &ChannelName) -> Result<()>;

    /// The delivery queue; `Some` on the first call only.
    fn take_receiver(&self) -> Option<BrokerReceiver>;

    /// Whether upstream delivery is live now, without a round trip: false while the broker's
    /// connection to the backing store is down or not yet made (it is reconnecting; `subscribe`
    /// fails meanwhile). Always true for an in-process broker.
    fn connected(&self) -> bool;
}

/// The receiving end of a broker's queue.
pub type BrokerReceiver = mpsc::Receiver<BrokerEvent>;

/// The sending end of a broker's queue: never blocks, turns overflow into a [`BrokerEvent::Gap`].
#[derive(Debug, Clone)]
pub struct BrokerSender {
    tx: mpsc::Sender<BrokerEvent>,
    /// Set when an event was dropped and the gap not yet reported.
    lost: Arc<AtomicBool>,
}

/// A bounded broker queue of `capacity` events (at least 2).
pub fn broker_queue(capacity: usize) -> (BrokerSender, BrokerReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(2));
    (BrokerSender { tx, lost: Arc::new(AtomicBool::new(false)) }, rx)
}

impl BrokerSender {
    /// Queues `event` without waiting. When the queue is full the event is dropped, and a gap
    /// for every channel is reported before the next event that fits.
    pub fn send(&self, event: BrokerEvent) {
        if self.lost.load(Ordering::Acquire) {
            match self.tx.try_send(BrokerEvent::Gap { channel: None }) {
                Ok(()) => self.lost.store(false, Ordering::Release),
                Err(mpsc::error::TrySendError::Full(_)) => return,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(event) {
            self.lost.store(true, Ordering::Release);
            metrics::counter!("switchboard_broker_dropped_total").increment(1);
        }
    }

    /// Whether the receiving end is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_turns_into_one_gap() {
        let (tx, mut rx) = broker_queue(2);
        let gap = |c: Option<&str>| BrokerEvent::Gap { channel: c.map(|c| ChannelName::new(c).unwrap()) };
        for c in ["chat:1", "chat:2", "chat:3", "chat:4"] {
            tx.send(gap(Some(c)));
        }
        assert_eq!(rx.try_recv().ok(), Some(gap(Some("chat:1"))));
        assert_eq!(rx.try_recv().ok(), Some(gap(Some("chat:2"))));
        assert!(rx.try_recv().is_err());
        tx.send(gap(Some("chat:5")));
        assert_eq!(rx.try_recv().ok(), Some(gap(None)));
        assert_eq!(rx.try_recv().ok(), Some(gap(Some("chat:5"))));
    }
}
