//! `RedisBroker`: one dedicated pub/sub connection per node multiplexing every channel with
//! local subscribers (on a Cluster, sharded: one connection per shard); it reconnects with
//! backoff, resubscribes everything, reports the gap, and tells health whether it is connected.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind};
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
/// `unsubscribe` are requests to it. Standalone and Sentinel (on the current master) use plain
/// `SUBSCRIBE`. A Cluster uses sharded pub/sub: the publish script `SPUBLISH`es on the
/// channel's own shard (the pub/sub channel shares the stream's hash tag), and the broker's
/// cluster connection (RESP3) `SSUBSCRIBE`s each channel on its shard, one connection per
/// shard, so a publication crosses no other shard. redis-rs resubscribes after a node's
/// connection drops or a slot moves; either one is reported as a gap (a `Disconnection` push, or
/// a `SUNSUBSCRIBE` the broker did not ask for), so subscribers recover from the stream.
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
    /// Where each connection attempt connects: the server, the Sentinels' master now, or the
    /// cluster's seeds for a connection of its own (none before the engine first connects).
    backend: Arc<OnceLock<Backend>>,
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

/// The live subscription connection of one topology.
enum Sub {
    /// A plain pub/sub connection (standalone, Sentinel).
    Plain { sink: PubSubSink, stream: PubSubStream },
    /// The broker's cluster connection, its pushes arriving on `pushes` (Cluster).
    Sharded { connection: ClusterConnection, pushes: mpsc::UnboundedReceiver<PushInfo> },
}

impl Sub {
    async fn subscribe(&mut self, name: &str) -> redis::RedisResult<()> {
        match self {
            Sub::Plain { sink, .. } => sink.subscribe(name).await,
            Sub::Sharded { connection, .. } => connection.ssubscribe(name).await,
        }
    }

    async fn unsubscribe(&mut self, name: &str) -> redis::RedisResult<()> {
        match self {
            Sub::Plain { sink, .. } => sink.unsubscribe(name).await,
            Sub::Sharded { connection, .. } => connection.sunsubscribe(name).await,
        }
    }

    async fn ping(&mut self) -> redis::RedisResult<()> {
        match self {
            Sub::Plain { sink, .. } => sink.ping::<redis::Value>().await.map(drop),
            Sub::Sharded { connection, .. } => {
                redis::cmd("PING").query_async::<redis::Value>(connection).await.map(drop)
            }
        }
    }
}

/// What arrived on the subscription connection.
enum Arrival {
    /// A publication: pub/sub channel name and payload.
    Message(Vec<u8>, Vec<u8>),
    /// Publications may have been missed: on every channel (`None`), or on one.
    Gap(Option<Vec<u8>>),
    /// Nothing to act on (subscription confirmations).
    Nothing,
    /// The connection ended.
    Closed,
}

impl Sub {
    async fn next(&mut self) -> Arrival {
        match self {
            Sub::Plain { stream, .. } => match stream.next().await {
                Some(message) => Arrival::Message(
                    message.get_channel_name().as_bytes().to_vec(),
                    message.get_payload_bytes().to_vec(),
                ),
                None => Arrival::Closed,
            },
            Sub::Sharded { pushes, .. } => match pushes.recv().await {
                None => Arrival::Closed,
                Some(push) => match (push.kind, push.data.as_slice()) {
                    (PushKind::SMessage, [channel, payload]) => match (bytes_of(channel), bytes_of(payload)) {
                        (Some(channel), Some(payload)) => Arrival::Message(channel, payload),
                        _ => Arrival::Gap(None),
                    },
                    (PushKind::Disconnection, _) => Arrival::Gap(None),
                    (PushKind::SUnsubscribe, [channel, ..]) => Arrival::Gap(bytes_of(channel)),
                    _ => Arrival::Nothing,
                },
            },
        }
    }
}

fn bytes_of(value: &redis::Value) -> Option<Vec<u8>> {
    match value {
        redis::Value::BulkString(bytes) => Some(bytes.clone()),
        redis::Value::SimpleString(text) => Some(text.clone().into_bytes()),
        _ => None,
    }
}

impl Task {
    async fn run(mut self) {
        let mut delay = MIN_DELAY;
        let mut interrupted = false;
        loop {
            match self.connect().await {
                None => return,
                Some(Ok(sub)) => {
                    delay = MIN_DELAY;
                    self.link.set(Link::UP);
                    if interrupted {
                        tracing::info!(channels = self.channels.len(), "redis: pubsub: reconnected and resubscribed");
                        // Publications made while the connection was down were not delivered.
                        self.events.send(BrokerEvent::Gap { channel: None });
                    }
                    let exit = self.serve(sub).await;
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
    async fn connect(&mut self) -> Option<Result<Sub>> {
        let names: Vec<String> = self.channels.keys().cloned().collect();
        let Some(backend) = self.backend.get().cloned() else {
            return Some(Err(Error::Unavailable("redis: pubsub.connect: not connected yet".into())));
        };
        let (connect_timeout, command_timeout) = (self.connect_timeout, self.command_timeout);
        let to_subscribe = names.clone();
        let attempt = async move {
            let unavailable = |e: redis::RedisError| map_error("pubsub.connect", &e);
            let no_answer = || Error::Unavailable("redis: pubsub.connect: no answer".into());
            let (pushes_tx, pushes) = mpsc::unbounded_channel();
            let mut sub = match backend.pubsub_client() {
                Some(client) => {
                    let pubsub = tokio::time::timeout(connect_timeout, client.get_async_pubsub())
                        .await
                        .map_err(|_| no_answer())?
                        .map_err(unavailable)?;
                    let (sink, stream) = pubsub.split();
                    Sub::Plain { sink, stream }
                }
                None => {
                    let connecting = backend.sharded_pubsub(pushes_tx);
                    let connection = tokio::time::timeout(connect_timeout, connecting)
                        .await
                        .map_err(|_| no_answer())?
                        .ok_or_else(|| Error::Internal("redis: pubsub: no sharded connection".into()))?
                        .map_err(unavailable)?;
                    Sub::Sharded { connection, pushes }
                }
            };
            // One by one: on a Cluster each channel goes to its own shard.
            for name in &to_subscribe {
                tokio::time::timeout(command_timeout, sub.subscribe(name))
                    .await
                    .map_err(|_| Error::Unavailable("redis: pubsub.subscribe: no answer".into()))?
                    .map_err(unavailable)?;
            }
            Ok::<_, Error>(sub)
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
        let mut sub = match outcome {
            Ok(connected) => connected,
            Err(e) => {
                waiting.into_iter().for_each(|c| self.answer_offline(c));
                return Some(Err(e));
            }
        };
        // Channels unsubscribed during the attempt may have been subscribed by it.
        for stale in names.iter().filter(|n| !self.channels.contains_key(*n)) {
            if self.timed(sub.unsubscribe(stale)).await.is_err() {
                return Some(Err(Error::Unavailable("redis: pubsub.unsubscribe failed".into())));
            }
        }
        for control in waiting {
            if let Exit::Lost(why) = self.answer(&mut sub, control).await {
                return Some(Err(Error::Unavailable(why)));
            }
        }
        Some(Ok(sub))
    }

    /// Delivers messages and answers requests until the connection fails or the broker is gone.
    async fn serve(&mut self, mut sub: Sub) -> Exit {
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        loop {
            tokio::select! {
                arrival = sub.next() => match arrival {
                    Arrival::Message(name, payload) => self.deliver(&name, &payload),
                    // A shard's connection dropped (a failover, say): connect again, so every
                    // channel is subscribed on the shard that serves its slot once there is one
                    // (reconnecting reports the gap).
                    Arrival::Gap(None) => return Exit::Lost("a shard's connection dropped".into()),
                    Arrival::Gap(Some(name)) => self.moved(&mut sub, name).await,
                    Arrival::Nothing => {}
                    Arrival::Closed => return Exit::Lost("connection closed".into()),
                },
                control = self.control.recv() => match control {
                    None => return Exit::Stopped,
                    Some(control) => {
                        if let exit @ Exit::Lost(_) = self.answer(&mut sub, control).await {
                            return exit;
                        }
                    }
                },
                _ = ping.tick() => {
                    if let Err(e) = self.timed(sub.ping()).await {
                        return Exit::Lost(format!("ping: {e}"));
                    }
                }
            }
        }
    }

    /// A shard unsubscribed a channel (its slot moved): subscribe it again, on the shard that
    /// serves it now, and report the gap so its subscribers recover from the stream.
    async fn moved(&mut self, sub: &mut Sub, name: Vec<u8>) {
        let Some(name) = String::from_utf8(name).ok().filter(|n| self.channels.contains_key(n)) else { return };
        if let Err(e) = self.timed(sub.subscribe(&name)).await {
            tracing::warn!(error = %e, "redis: pubsub: resubscribing a moved channel failed");
        }
        let channel = self.channels.get(&name).cloned();
        self.events.send(BrokerEvent::Gap { channel });
    }

    /// Carries out a request on the live connection. A failed command means the connection is
    /// unusable: the request is answered and the connection given up.
    async fn answer(&mut self, sub: &mut Sub, control: Control) -> Exit {
        match control {
            Control::Subscribe(channel, reply) => {
                let name = self.keys.stream_pubsub(&channel);
                if self.channels.contains_key(&name) {
                    let _ = reply.send(Ok(()));
                    return Exit::Continue;
                }
                match self.timed(sub.subscribe(&name)).await {
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
                    true => match self.timed(sub.unsubscribe(&name)).await {
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
    fn deliver(&self, name: &[u8], payload: &[u8]) {
        let Some(channel) = std::str::from_utf8(name).ok().and_then(|n| self.channels.get(n)) else { return };
        let parsed = std::str::from_utf8(payload).ok().and_then(|text| {
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
