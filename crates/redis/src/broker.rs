//! `RedisBroker`: one dedicated pub/sub connection per node multiplexing every channel with
//! local subscribers; it reconnects with backoff, resubscribes everything, reports the gap, and
//! tells health whether it is connected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use switchboard_core::broker::BROKER_QUEUE_CAPACITY;
use switchboard_core::{
    Broker, BrokerEvent, BrokerMessage, BrokerReceiver, BrokerSender, ChannelName, Error, Result, broker_queue,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::circuit::Circuit;
use crate::connection::{Backend, Conn, map_error};
use crate::keys::Keys;
use crate::stream::parse_publication;

/// First and longest wait between reconnection attempts.
const MIN_DELAY: Duration = Duration::from_millis(50);
const MAX_DELAY: Duration = Duration::from_secs(1);
/// How often the connection is pinged, so a peer that vanished without closing is noticed.
const PING_INTERVAL: Duration = Duration::from_secs(5);

/// The Redis engine's broker. See [`Broker`] for the contract.
///
/// One task owns the pub/sub connection and the set of subscribed channels; `subscribe` and
/// `unsubscribe` are requests to it. Every topology uses plain `SUBSCRIBE`: under Sentinel on
/// the current master, on a Cluster on one node (a seed, the next after each reconnection),
/// since a plain `PUBLISH` on any shard reaches every node over the cluster bus. Sharded
/// pub/sub (`SSUBSCRIBE` to each channel's shard, `SPUBLISH` in the publish script, one
/// connection per shard) would keep that traffic on each channel's shard instead.
pub(crate) struct RedisBroker {
    control: mpsc::Sender<Control>,
    link: Arc<Link>,
    receiver: Mutex<Option<BrokerReceiver>>,
    /// Longest wait for an answer: a connection attempt plus one command.
    answer_timeout: Duration,
}

/// The pub/sub connection's state, written by the task and read without waiting by health and
/// by `subscribe` (which fails at once while the connection is lost, as engine calls do).
struct Link(AtomicU8);

impl Link {
    /// The first connection attempt has not ended yet.
    const STARTING: u8 = 0;
    const UP: u8 = 1;
    /// Lost, or never made: the task is reconnecting.
    const DOWN: u8 = 2;

    fn get(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, state: u8) {
        self.0.store(state, Ordering::Release);
    }
}

enum Control {
    Subscribe(ChannelName, oneshot::Sender<Result<()>>),
    Unsubscribe(ChannelName, oneshot::Sender<Result<()>>),
}

impl RedisBroker {
    /// The broker and the loop that owns its connection; the node runs the loop
    /// ([`BrokerTask::run_until`]), which connects in the background.
    pub(crate) fn new(conn: &Conn, keys: Keys) -> (Self, BrokerTask) {
        let (events, receiver) = broker_queue(BROKER_QUEUE_CAPACITY);
        let (control, control_rx) = mpsc::channel(1024);
        let link = Arc::new(Link(AtomicU8::new(Link::STARTING)));
        let task = Task {
            link: link.clone(),
            circuit: conn.circuit().clone(),
            backend: conn.backend_slot().clone(),
            attempts: 0,
            keys,
            connect_timeout: conn.connect_timeout(),
            command_timeout: conn.command_timeout(),
            control: control_rx,
            events,
            channels: HashMap::new(),
        };
        let broker = RedisBroker {
            control,
            link,
            receiver: Mutex::new(Some(receiver)),
            answer_timeout: conn.connect_timeout() + conn.command_timeout(),
        };
        (broker, BrokerTask(task))
    }

    async fn request(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> Control) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let gone = || Error::Unavailable("redis: pubsub: the broker has stopped".into());
        let exchange = async {
            self.control.send(make(reply)).await.map_err(|_| gone())?;
            answer.await.map_err(|_| gone())?
        };
        tokio::time::timeout(self.answer_timeout, exchange).await.map_err(|_| {
            Error::Unavailable(format!("redis: pubsub: no answer within {} ms", self.answer_timeout.as_millis()))
        })?
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn subscribe(&self, channel: &ChannelName) -> Result<()> {
        // While the connection is lost the answer is known; at start-up the request waits for
        // the first attempt, so the first subscriptions of a fresh node succeed.
        if self.link.get() == Link::DOWN {
            return Err(Error::Unavailable("redis: pubsub: not connected; reconnecting".into()));
        }
        self.request(|reply| Control::Subscribe(channel.clone(), reply)).await
    }

    async fn unsubscribe(&self, channel: &ChannelName) -> Result<()> {
        self.request(|reply| Control::Unsubscribe(channel.clone(), reply)).await
    }

    fn take_receiver(&self) -> Option<BrokerReceiver> {
        self.receiver.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn connected(&self) -> bool {
        self.link.get() == Link::UP
    }
}

/// The broker's loop, handed to the node to run.
pub(crate) struct BrokerTask(Task);

impl BrokerTask {
    /// Owns the pub/sub connection until `stop` is cancelled or the broker is dropped; the
    /// connection closes with it.
    pub(crate) async fn run_until(self, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.0.run() => {}
        }
    }
}

/// The task owning the pub/sub connection.
struct Task {
    link: Arc<Link>,
    /// The command connection's circuit: its closing ends a backoff early.
    circuit: Arc<Circuit>,
    /// Where each connection attempt gets its client: the server, the Sentinels' master now,
    /// or the next seed node of a cluster (none before the engine first connects).
    backend: Arc<OnceLock<Backend>>,
    /// Connection attempts so far (a cluster's seed nodes are tried in turn).
    attempts: usize,
    keys: Keys,
    connect_timeout: Duration,
    command_timeout: Duration,
    control: mpsc::Receiver<Control>,
    events: BrokerSender,
    /// Subscribed channels by pub/sub channel name.
    channels: HashMap<String, ChannelName>,
}

/// Why the connected phase ended.
enum Exit {
    /// Carry on.
    Continue,
    /// Every `RedisBroker` handle is gone.
    Stopped,
    /// The connection failed; reconnect.
    Lost(String),
}

impl Task {
    async fn run(mut self) {
        let mut delay = MIN_DELAY;
        let mut interrupted = false;
        loop {
            match self.connect().await {
                None => return,
                Some(Ok((sink, stream))) => {
                    delay = MIN_DELAY;
                    self.link.set(Link::UP);
                    if interrupted {
                        tracing::info!(channels = self.channels.len(), "redis: pubsub: reconnected and resubscribed");
                        // Publications made while the connection was down were not delivered.
                        self.events.send(BrokerEvent::Gap { channel: None });
                    }
                    let exit = self.serve(sink, stream).await;
                    self.link.set(Link::DOWN);
                    match exit {
                        Exit::Stopped | Exit::Continue => return,
                        Exit::Lost(why) => tracing::warn!(error = %why, "redis: pubsub: connection lost; reconnecting"),
                    }
                    interrupted = true;
                }
                Some(Err(e)) => {
                    self.link.set(Link::DOWN);
                    tracing::debug!(error = %e, "redis: pubsub: cannot connect");
                }
            }
            // Back off, answering requests meanwhile; the command connection coming back means
            // Redis is back, so retry at once.
            let sleep = tokio::time::sleep(delay);
            let circuit = self.circuit.clone();
            let redis_back = circuit.closed();
            tokio::pin!(sleep, redis_back);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    () = &mut redis_back => break,
                    control = self.control.recv() => match control {
                        None => return,
                        Some(control) => self.answer_offline(control),
                    },
                }
            }
            delay = (delay * 2).min(MAX_DELAY);
        }
    }

    /// One connection attempt that also subscribes every known channel. Subscribe requests that
    /// arrive meanwhile wait for its outcome (so the first requests after start-up succeed);
    /// `None` when the broker is gone.
    async fn connect(&mut self) -> Option<Result<(PubSubSink, PubSubStream)>> {
        let names: Vec<String> = self.channels.keys().cloned().collect();
        let Some(backend) = self.backend.get() else {
            return Some(Err(Error::Unavailable("redis: pubsub.connect: not connected yet".into())));
        };
        let client = backend.pubsub_client(self.attempts);
        self.attempts = self.attempts.wrapping_add(1);
        let (connect_timeout, command_timeout) = (self.connect_timeout, self.command_timeout);
        let to_subscribe = names.clone();
        let attempt = async move {
            let unavailable = |e: redis::RedisError| map_error("pubsub.connect", &e);
            let pubsub = tokio::time::timeout(connect_timeout, client.get_async_pubsub())
                .await
                .map_err(|_| Error::Unavailable("redis: pubsub.connect: no answer".into()))?
                .map_err(unavailable)?;
            let (mut sink, stream) = pubsub.split();
            if !to_subscribe.is_empty() {
                tokio::time::timeout(command_timeout, sink.subscribe(&to_subscribe))
                    .await
                    .map_err(|_| Error::Unavailable("redis: pubsub.subscribe: no answer".into()))?
                    .map_err(unavailable)?;
            }
            Ok::<_, Error>((sink, stream))
        };
        tokio::pin!(attempt);
        let mut waiting = Vec::new();
        let outcome = loop {
            tokio::select! {
                outcome = &mut attempt => break outcome,
                control = self.control.recv() => match control {
                    None => return None,
                    Some(control @ Control::Subscribe(..)) => waiting.push(control),
                    Some(control) => self.answer_offline(control),
                },
            }
        };
        let (mut sink, stream) = match outcome {
            Ok(connected) => connected,
            Err(e) => {
                waiting.into_iter().for_each(|c| self.answer_offline(c));
                return Some(Err(e));
            }
        };
        // Channels unsubscribed during the attempt may have been subscribed by it.
        let stale: Vec<&String> = names.iter().filter(|n| !self.channels.contains_key(*n)).collect();
        if !stale.is_empty() && !matches!(self.timed(sink.unsubscribe(&stale)).await, Ok(())) {
            return Some(Err(Error::Unavailable("redis: pubsub.unsubscribe failed".into())));
        }
        for control in waiting {
            if let Exit::Lost(why) = self.answer(&mut sink, control).await {
                return Some(Err(Error::Unavailable(why)));
            }
        }
        Some(Ok((sink, stream)))
    }

    /// Delivers messages and answers requests until the connection fails or the broker is gone.
    async fn serve(&mut self, mut sink: PubSubSink, mut stream: PubSubStream) -> Exit {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                message = stream.next() => match message {
                    Some(message) => self.deliver(&message),
                    None => return Exit::Lost("connection closed".into()),
                },
                control = self.control.recv() => match control {
                    None => return Exit::Stopped,
                    Some(control) => {
                        if let exit @ Exit::Lost(_) = self.answer(&mut sink, control).await {
                            return exit;
                        }
                    }
                },
                _ = ping.tick() => {
                    if let Err(e) = self.timed(sink.ping::<redis::Value>()).await {
                        return Exit::Lost(format!("ping: {e}"));
                    }
                }
            }
        }
    }

    /// Carries out a request on the live connection. A failed command means the connection is
    /// unusable: the request is answered and the connection given up.
    async fn answer(&mut self, sink: &mut PubSubSink, control: Control) -> Exit {
        match control {
            Control::Subscribe(channel, reply) => {
                let name = self.keys.stream_pubsub(&channel);
                if self.channels.contains_key(&name) {
                    let _ = reply.send(Ok(()));
                    return Exit::Continue;
                }
                match self.timed(sink.subscribe(&name)).await {
                    Ok(()) => {
                        self.channels.insert(name, channel);
                        let _ = reply.send(Ok(()));
                        Exit::Continue
                    }
                    Err(e) => {
                        let why = e.to_string();
                        let _ = reply.send(Err(e));
                        Exit::Lost(why)
                    }
                }
            }
            Control::Unsubscribe(channel, reply) => {
                let name = self.keys.stream_pubsub(&channel);
                // Forgotten first: if the command fails, the reconnection will not resubscribe it.
                let known = self.channels.remove(&name).is_some();
                let _ = reply.send(Ok(()));
                match known {
                    true => match self.timed(sink.unsubscribe(&name)).await {
                        Ok(()) => Exit::Continue,
                        Err(e) => Exit::Lost(e.to_string()),
                    },
                    false => Exit::Continue,
                }
            }
        }
    }

    /// Answers a request while there is no connection.
    fn answer_offline(&mut self, control: Control) {
        match control {
            Control::Subscribe(_, reply) => {
                let _ = reply.send(Err(Error::Unavailable("redis: pubsub: not connected".into())));
            }
            Control::Unsubscribe(channel, reply) => {
                self.channels.remove(&self.keys.stream_pubsub(&channel));
                let _ = reply.send(Ok(()));
            }
        }
    }

    async fn timed<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Result<T> {
        match tokio::time::timeout(self.command_timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(map_error("pubsub", &e)),
            Err(_) => Err(Error::Unavailable(format!(
                "redis: pubsub: no answer within {} ms",
                self.command_timeout.as_millis()
            ))),
        }
    }

    /// Parses `<epoch> <offset> <time ms> <payload>` and queues it.
    fn deliver(&self, message: &redis::Msg) {
        let Some(channel) = self.channels.get(message.get_channel_name()) else { return };
        let parsed = std::str::from_utf8(message.get_payload_bytes()).ok().and_then(|text| {
            let mut parts = text.splitn(4, ' ');
            let (epoch, offset, time, payload) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
            let publication = parse_publication(offset, time, payload)?;
            Some(BrokerMessage::new(channel.clone(), epoch.to_owned(), publication))
        });
        match parsed {
            Some(message) => self.events.send(BrokerEvent::Message(Arc::new(message))),
            None => {
                tracing::warn!(channel.name = %channel, "redis: pubsub: unreadable publication");
                self.events.send(BrokerEvent::Gap { channel: Some(channel.clone()) });
            }
        }
    }
}
