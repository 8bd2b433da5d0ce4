//! `MemoryBroker`: in-process fan-out; `MemoryStreams` hands it every publication under the
//! stream's lock, so delivery order is offset order.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use switchboard_core::broker::BROKER_QUEUE_CAPACITY;
use switchboard_core::{
    Broker, BrokerEvent, BrokerMessage, BrokerReceiver, BrokerSender, ChannelName, Publication, Result, broker_queue,
};

use crate::lock;

/// The memory engine's broker. See [`Broker`] for the contract. There is only one node, so
/// upstream delivery is never interrupted: the only gap it reports is its queue overflowing.
pub(crate) struct MemoryBroker {
    subscribed: Mutex<HashSet<ChannelName>>,
    sender: BrokerSender,
    receiver: Mutex<Option<BrokerReceiver>>,
}

impl MemoryBroker {
    pub(crate) fn new() -> Self {
        let (sender, receiver) = broker_queue(BROKER_QUEUE_CAPACITY);
        MemoryBroker { subscribed: Mutex::new(HashSet::new()), sender, receiver: Mutex::new(Some(receiver)) }
    }

    /// Queues a publication if its channel is subscribed. Never blocks: the caller holds the
    /// stream lock.
    pub(crate) fn deliver(&self, channel: &ChannelName, epoch: &str, publication: &Publication) {
        if !lock(&self.subscribed).contains(channel) {
            return;
        }
        let message = BrokerMessage::new(channel.clone(), epoch.to_owned(), publication.clone());
        self.sender.send(BrokerEvent::Message(Arc::new(message)));
    }
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn subscribe(&self, channel: &ChannelName) -> Result<()> {
        lock(&self.subscribed).insert(channel.clone());
        Ok(())
    }

    async fn unsubscribe(&self, channel: &ChannelName) -> Result<()> {
        lock(&self.subscribed).remove(channel);
        Ok(())
    }

    fn take_receiver(&self) -> Option<BrokerReceiver> {
        lock(&self.receiver).take()
    }

    fn connected(&self) -> bool {
        true
    }
}
