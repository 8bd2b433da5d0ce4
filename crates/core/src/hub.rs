//! [`Hub`]: node-local fan-out of broker deliveries to any number of local subscribers, with one
//! upstream subscription per channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::mpsc;

use crate::broker::{Broker, BrokerEvent, BrokerMessage, BrokerReceiver};
use crate::channel::ChannelName;
use crate::error::{Error, Result};
use crate::lifecycle::Lifecycle;

/// Events a subscriber's queue holds by default before it counts as lagging.
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 1024;

/// What a [`HubSubscription`] receives.
#[derive(Debug, Clone, PartialEq)]
pub enum HubEvent {
    /// A publication on the channel, in offset order.
    Publication(Arc<BrokerMessage>),
    /// Live delivery may have missed publications (the broker reconnected or overflowed): re-read
    /// the stream since the last offset seen. The subscription goes on.
    Gap,
    /// This subscriber did not keep up: its queue filled, so it was closed. Nothing follows.
    Lagged,
}

/// Node-local fan-out. Cheap to clone.
///
/// The first local subscriber of a channel subscribes the broker, the last one to go
/// unsubscribes it, so a node holds one upstream subscription per channel however many local
/// subscribers it has. One task drains the broker's queue and hands each event to every local
/// subscriber of its channel with `try_send`, so a slow subscriber never holds up the others: a
/// subscriber whose queue is full is closed and told [`HubEvent::Lagged`]. Memory stays bounded
/// by the queue capacities.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

struct Inner {
    broker: Arc<dyn Broker>,
    capacity: usize,
    next_id: AtomicU64,
    channels: Mutex<HashMap<ChannelName, Channel>>,
    /// The broker's queue until the node's dispatch loop takes it ([`Hub::dispatch`]).
    receiver: Mutex<Option<BrokerReceiver>>,
    /// The node: subscriptions need its dispatch loop, upstream unsubscribes run on it.
    node: Lifecycle,
}

struct Channel {
    subscribers: HashMap<u64, Subscriber>,
    /// Whether the broker holds this channel. Changed only under this lock, so upstream
    /// subscribe and unsubscribe of one channel never overlap; the entry stays in the map until
    /// the broker no longer holds the channel, so every subscriber of the channel shares it.
    upstream: Arc<tokio::sync::Mutex<bool>>,
}

struct Subscriber {
    tx: mpsc::Sender<HubEvent>,
    lagged: Arc<AtomicBool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent before anything that could panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub over `broker` with subscriber queues of `capacity` events, delivering once `node`
    /// runs its [`Hub::dispatch`] loop. Fails with [`Error::Conflict`] if the broker's queue was
    /// already taken (one hub per broker).
    pub fn new(broker: Arc<dyn Broker>, capacity: usize, node: Lifecycle) -> Result<Hub> {
        let receiver = broker
            .take_receiver()
            .ok_or_else(|| Error::Conflict("hub: the broker already has a hub; build one per engine".into()))?;
        let inner = Inner {
            broker,
            capacity: capacity.max(1),
            next_id: AtomicU64::new(0),
            channels: Mutex::new(HashMap::new()),
            receiver: Mutex::new(Some(receiver)),
            node,
        };
        Ok(Hub { inner: Arc::new(inner) })
    }

    /// Subscribes to `channel`: returns once publications made from now on are delivered to
    /// the subscription (see [`Broker::subscribe`]). Fails with [`Error::Unavailable`] if the
    /// node does not run (nothing would deliver) or the broker cannot subscribe.
    pub async fn subscribe(&self, channel: &ChannelName) -> Result<HubSubscription> {
        self.inner.node.ensure_running()?;
        let (tx, rx) = mpsc::channel(self.inner.capacity);
        let lagged = Arc::new(AtomicBool::new(false));
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let upstream = {
            let mut channels = lock(&self.inner.channels);
            let entry = channels.entry(channel.clone()).or_insert_with(|| Channel {
                subscribers: HashMap::new(),
                upstream: Arc::new(tokio::sync::Mutex::new(false)),
            });
            entry.subscribers.insert(id, Subscriber { tx, lagged: lagged.clone() });
            entry.upstream.clone()
        };
        let subscription =
            HubSubscription { channel: channel.clone(), id, rx, lagged, hub: Arc::downgrade(&self.inner) };
        let mut subscribed = upstream.lock().await;
        if !*subscribed {
            // On failure the subscription is dropped, which removes it again.
            self.inner.broker.subscribe(channel).await?;
            *subscribed = true;
            metrics::gauge!("switchboard_hub_channels").increment(1.0);
        }
        Ok(subscription)
    }

    /// Local subscribers of `channel`.
    pub fn subscribers(&self, channel: &ChannelName) -> usize {
        lock(&self.inner.channels).get(channel).map_or(0, |c| c.subscribers.len())
    }

    /// Channels with local subscribers (or an upstream unsubscribe still under way).
    pub fn channels(&self) -> usize {
        lock(&self.inner.channels).len()
    }

    /// The loop that drains the broker's queue into the local subscribers until the node stops
    /// (or the hub or the broker is gone); the node runs it. `None` once taken.
    pub fn dispatch(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let receiver = lock(&self.inner.receiver).take()?;
        let stop = self.inner.node.stopping();
        let hub = Arc::downgrade(&self.inner);
        Some(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = dispatch(hub, receiver) => {}
            }
        })
    }
}

/// Drains the broker's queue until the hub or the broker is gone.
async fn dispatch(hub: Weak<Inner>, mut receiver: BrokerReceiver) {
    while let Some(event) = receiver.recv().await {
        let Some(hub) = hub.upgrade() else { return };
        match event {
            BrokerEvent::Message(message) => {
                let channel = message.channel.clone();
                hub.deliver(Some(&channel), || HubEvent::Publication(message.clone()));
            }
            BrokerEvent::Gap { channel } => hub.deliver(channel.as_ref(), || HubEvent::Gap),
        }
    }
}

impl Inner {
    /// Hands an event to every subscriber of `channel` (of every channel when `None`); closes
    /// the ones whose queue is full or who are gone.
    fn deliver(self: &Arc<Self>, channel: Option<&ChannelName>, event: impl Fn() -> HubEvent) {
        let mut emptied = Vec::new();
        {
            let mut channels = lock(&self.channels);
            let mut visit = |name: &ChannelName, c: &mut Channel| {
                let before = c.subscribers.len();
                c.subscribers.retain(|_, s| match s.tx.try_send(event()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        s.lagged.store(true, Ordering::Release);
                        metrics::counter!("switchboard_hub_lagged_total").increment(1);
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                });
                if before > 0 && c.subscribers.is_empty() {
                    emptied.push(name.clone());
                }
            };
            match channel {
                Some(name) => {
                    if let Some(c) = channels.get_mut(name) {
                        visit(name, c);
                    }
                }
                None => channels.iter_mut().for_each(|(name, c)| visit(name, c)),
            }
        }
        for name in emptied {
            self.release(name);
        }
    }

    /// Removes one subscriber; the last one of a channel releases the upstream subscription.
    fn remove(self: &Arc<Self>, channel: &ChannelName, id: u64) {
        let emptied = {
            let mut channels = lock(&self.channels);
            channels.get_mut(channel).is_some_and(|c| c.subscribers.remove(&id).is_some() && c.subscribers.is_empty())
        };
        if emptied {
            self.release(channel.clone());
        }
    }

    /// Unsubscribes the broker from `channel` in the background if it still has no subscriber.
    fn release(self: &Arc<Self>, channel: ChannelName) {
        let hub = self.clone();
        // On a node that no longer runs there is nothing to release: its broker goes with it.
        let _ = self.node.spawn("hub.release", async move {
            let Some(upstream) = lock(&hub.channels).get(&channel).map(|c| c.upstream.clone()) else { return };
            let mut subscribed = upstream.lock().await;
            if lock(&hub.channels).get(&channel).is_some_and(|c| !c.subscribers.is_empty()) {
                return;
            }
            if *subscribed {
                if let Err(e) = hub.broker.unsubscribe(&channel).await {
                    // The broker may keep delivering the channel; the hub drops what has no
                    // subscriber, and the next subscribe is idempotent.
                    tracing::warn!(channel.name = %channel, error = %e, "hub: upstream unsubscribe failed");
                }
                *subscribed = false;
                metrics::gauge!("switchboard_hub_channels").decrement(1.0);
            }
            let mut channels = lock(&hub.channels);
            if channels.get(&channel).is_some_and(|c| c.subscribers.is_empty()) {
                channels.remove(&channel);
            }
        });
    }
}

/// One local subscription to a channel; unsubscribes when dropped.
pub struct HubSubscription {
    channel: ChannelName,
    id: u64,
    rx: mpsc::Receiver<HubEvent>,
    lagged: Arc<AtomicBool>,
    hub: Weak<Inner>,
}

impl HubSubscription {
    /// The channel.
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The next event; `None` once the subscription is closed (after [`HubEvent::Lagged`], or
    /// when the hub is gone). Cancellation safe.
    pub async fn recv(&mut self) -> Option<HubEvent> {
        match self.rx.recv().await {
            Some(event) => Some(event),
            None => self.lagged.swap(false, Ordering::AcqRel).then_some(HubEvent::Lagged),
        }
    }

    /// The next event if one is queued.
    pub fn try_recv(&mut self) -> Option<HubEvent> {
        match self.rx.try_recv() {
            Ok(event) => Some(event),
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.lagged.swap(false, Ordering::AcqRel).then_some(HubEvent::Lagged)
            }
        }
    }
}

impl Drop for HubSubscription {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(&self.channel, self.id);
        }
    }
}

impl std::fmt::Debug for HubSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSubscription").field("channel", &self.channel).field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use async_trait::async_trait;
    use serde_json::json;

    use super::*;
    use crate::broker::{BrokerSender, broker_queue};
    use crate::stream::Publication;
    use crate::time::Timestamp;

    /// Counts upstream calls; the test pushes events through `sender`.
    struct FakeBroker {
        subscribes: AtomicUsize,
        unsubscribes: AtomicUsize,
        sender: BrokerSender,
        receiver: Mutex<Option<BrokerReceiver>>,
    }

    #[async_trait]
    impl Broker for FakeBroker {
        async fn subscribe(&self, _: &ChannelName) -> Result<()> {
            self.subscribes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        async fn unsubscribe(&self, _: &ChannelName) -> Result<()> {
            self.unsubscribes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn take_receiver(&self) -> Option<BrokerReceiver> {
            lock(&self.receiver).take()
        }
        fn connected(&self) -> bool {
            true
        }
    }

    fn fake() -> Arc<FakeBroker> {
        let (sender, receiver) = broker_queue(64);
        Arc::new(FakeBroker {
            subscribes: AtomicUsize::new(0),
            unsubscribes: AtomicUsize::new(0),
            sender,
            receiver: Mutex::new(Some(receiver)),
        })
    }

    fn message(channel: &ChannelName, offset: u64) -> BrokerEvent {
        let publication =
            Publication { offset, data: json!({}), time: Timestamp::now(), exclude_device: None, only_devices: vec![] };
        BrokerEvent::Message(Arc::new(BrokerMessage::new(channel.clone(), "e".into(), publication)))
    }

    async fn settle(check: impl Fn() -> bool) {
        for _ in 0..200 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("not settled");
    }

    #[tokio::test]
    async fn one_upstream_subscription_per_channel_and_lagging_subscribers_are_closed() {
        let broker = fake();
        let node = Lifecycle::new();
        let hub = Hub::new(broker.clone(), 4, node.clone()).unwrap();
        assert!(Hub::new(broker.clone(), 4, node.clone()).is_err(), "one hub per broker");
        let chat = ChannelName::new("chat:1").unwrap();
        let Err(refused) = hub.subscribe(&chat).await else { panic!("nothing delivers before the node runs") };
        assert!(matches!(&refused, Error::Unavailable(m) if m.contains("Switchboard::start")), "{refused}");
        node.bind().unwrap();
        node.spawn("hub.dispatch", hub.dispatch().expect("the dispatch loop")).unwrap();
        assert!(hub.dispatch().is_none(), "one dispatch loop");
        let mut fast = hub.subscribe(&chat).await.unwrap();
        let mut slow = hub.subscribe(&chat).await.unwrap();
        assert_eq!(broker.subscribes.load(Ordering::SeqCst), 1);

        for offset in 1..=6 {
            broker.sender.send(message(&chat, offset));
            if let Some(HubEvent::Publication(m)) = fast.recv().await {
                assert_eq!(m.publication.offset, offset);
            } else {
                panic!("fast subscriber missed {offset}");
            }
        }
        // The slow one got the first 4, then was closed.
        for offset in 1..=4 {
            assert!(matches!(slow.recv().await, Some(HubEvent::Publication(m)) if m.publication.offset == offset));
        }
        assert_eq!(slow.recv().await, Some(HubEvent::Lagged));
        assert_eq!(slow.recv().await, None);
        assert_eq!(hub.subscribers(&chat), 1);

        broker.sender.send(BrokerEvent::Gap { channel: None });
        assert_eq!(fast.recv().await, Some(HubEvent::Gap));

        drop(fast);
        drop(slow);
        settle(|| hub.channels() == 0).await;
        assert_eq!(broker.unsubscribes.load(Ordering::SeqCst), 1);
        let _again = hub.subscribe(&chat).await.unwrap();
        assert_eq!(broker.subscribes.load(Ordering::SeqCst), 2);
    }
}
