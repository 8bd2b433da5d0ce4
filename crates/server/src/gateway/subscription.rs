//! Subscriptions of one connection: subscribe-then-read recovery, access that ends when the
//! permission ends, and the forwarder task that pushes a channel's live publications in offset
//! order, filling any gap from the stream.
//!
//! The race between reading history and live delivery is closed by subscribing to the hub
//! first (live publications queue up), then reading the stream up to its top, then forwarding
//! live publications whose offset is above what was read: nothing is lost between the two, and
//! duplicates are dropped by offset.
//!
//! Access is checked *after* the hub subscription is made, so an access change announced on the
//! channel is either seen by the check or queued for the forwarder. The forwarder handles the
//! channel's events one at a time, so when an announcement says this user's access changed, it
//! checks again before anything published after the change; a `Gap` (announcements may have been
//! lost) checks again too.

use std::sync::{Arc, Mutex, PoisonError};

use switchboard_core::control::{self as core_control, Control};
use switchboard_core::hub::{HubEvent, HubSubscription};
use switchboard_core::{
    ChannelName, ConversationId, DeviceId, Encodings, Error, Publication, Result, Retention, StreamPosition,
    Switchboard, Timestamp, UserId,
};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::codec::{Payload, Protocol};
use super::codes::{DisconnectCode, ErrorCode, UnsubscribeCode};
use super::outbox::Outbox;
use super::protocol::{self, PushBody, RawJson, Reply, SubscribeResult};
use super::registry::Order;
use super::{Shared, control};

/// Publications read per round trip while recovering.
const PAGE: usize = 1000;

/// How long the personal channel's forwarder waits before recording what it delivered as the
/// device's cursor: at most one engine write per connection per this period, whatever the rate.
const CURSOR_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

/// Where the client says it was in a channel.
#[derive(Debug, Clone)]
pub(crate) struct Recover {
    pub(crate) epoch: String,
    pub(crate) offset: u64,
}

/// What entitles a user to a channel: checked when the subscription starts and again whenever
/// the channel announces that this user's access changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// The user's own channel (`user:<self>`, `presence:<self>`): never revoked.
    Own,
    /// `chat:<id>`: while a member of the conversation.
    Member {
        /// The conversation.
        conversation: ConversationId,
        /// The subscriber.
        user: UserId,
    },
    /// `presence:<other>`: while `other` is one of the user's contacts.
    Contact {
        /// The subscriber.
        user: UserId,
        /// Whose presence.
        other: UserId,
    },
}

impl Access {
    /// The rule for `user` on `channel`; channels nobody but their owner may use are refused.
    pub(crate) fn for_channel(channel: &ChannelName, user: &UserId) -> std::result::Result<Access, ErrorCode> {
        match channel.namespace() {
            "chat" => {
                let conversation = ConversationId::new(channel.id()).map_err(|_| ErrorCode::UnknownChannel)?;
                Ok(Access::Member { conversation, user: user.clone() })
            }
            "presence" => {
                let other = UserId::new(channel.id()).map_err(|_| ErrorCode::UnknownChannel)?;
                Ok(if other == *user { Access::Own } else { Access::Contact { user: user.clone(), other } })
            }
            "user" if channel.id() == user.as_str() => Ok(Access::Own),
            _ => Err(ErrorCode::PermissionDenied),
        }
    }

    /// Whether the rule holds now (read from the engine).
    pub(crate) async fn allowed(&self, sb: &Switchboard) -> Result<bool> {
        match self {
            Access::Own => Ok(true),
            Access::Member { conversation, user } => sb.conversations().is_member(conversation, user).await,
            Access::Contact { user, other } => sb.presence().is_contact(user, other).await,
        }
    }
}

/// A live subscription: its forwarder stops when this is dropped.
pub(crate) struct Subscription {
    /// Tells this subscription from a later one to the same channel.
    pub(crate) id: u64,
    /// Whether the connection still holds this subscription (the forwarder's `held`).
    held: Arc<Mutex<bool>>,
    /// Cancels the forwarder when dropped.
    _forwarding: DropGuard,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Taken under the lock the forwarder pushes under: a push of the forwarder either went
        // into the outbox already, ahead of whatever the connection sends next (the
        // `unsubscribe` reply), or is not made. Cancelling the task alone would let a push under
        // way on another thread land after that reply.
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = false;
        metrics::gauge!("switchboard_gateway_subscriptions").decrement(1.0);
    }
}

/// A publication as the protocol carries it.
pub(crate) fn to_wire(p: &Publication) -> Option<protocol::Publication> {
    Some(protocol::Publication {
        data: RawJson::to_json(&p.data).ok(),
        offset: p.offset,
        time: p.time.as_millis(),
        ..protocol::Publication::default()
    })
}

/// Subscribes `who` to `channel`: live first, then the access check, then recovery from
/// `recover` (when given), then a forwarder that pushes into `outbox`. Returns the subscription
/// and the subscribe result (with the recovered publications for the device); fails with
/// [`Error::PermissionDenied`] when `access` does not hold.
pub(crate) async fn subscribe(
    shared: &Arc<Shared>,
    channel: &ChannelName,
    who: &Identity,
    access: Access,
    recover: Option<Recover>,
    outbox: Outbox,
    orders: mpsc::UnboundedSender<Order>,
) -> Result<(Subscription, SubscribeResult)> {
    let live = shared.sb.hub().subscribe(channel).await?;
    if !access.allowed(&shared.sb).await? {
        return Err(Error::PermissionDenied(format!("no access to {channel}")));
    }
    let streams = shared.sb.streams();
    // Channels without history (`presence:`) are positioned but cannot be recovered.
    let recoverable = Retention::for_channel(channel).max_len > 0;
    let recover = recover.filter(|_| recoverable);
    let (publications, position, recovered) = match &recover {
        Some(r) => {
            let since = StreamPosition { epoch: r.epoch.clone(), offset: r.offset };
            read_all_since(shared, channel, since, shared.config.max_recovered).await?
        }
        None => (Vec::new(), streams.position(channel).await?, false),
    };
    let wire: Vec<protocol::Publication> =
        publications.iter().filter(|p| p.is_for(&who.device)).filter_map(to_wire).collect();
    metrics::counter!("switchboard_gateway_recovered_publications_total").increment(wire.len() as u64);
    let result = SubscribeResult {
        recoverable,
        positioned: true,
        epoch: position.epoch.clone(),
        offset: position.offset,
        publications: wire,
        recovered,
        was_recovering: recover.is_some(),
        ..SubscribeResult::default()
    };
    let id = shared.next_subscription_id();
    let personal = channel.namespace() == "user";
    let held = Arc::new(Mutex::new(true));
    let forwarder = Forwarder {
        shared: shared.clone(),
        id,
        held: held.clone(),
        personal,
        channel: channel.clone(),
        who: who.clone(),
        access,
        last: position,
        outbox,
        orders,
        // What recovery handed over counts as delivered too.
        cursor_due: (personal && recovered).then(|| tokio::time::Instant::now() + CURSOR_DELAY),
    };
    let stop = CancellationToken::new();
    let forwarding = stop.clone().drop_guard();
    // On the connection's runtime, counted by the node until it ends.
    tokio::spawn(shared.sb.node().track("gateway.subscription", async move {
        tokio::select! {
            () = stop.cancelled() => {}
            () = forwarder.run(live) => {}
        }
    }));
    metrics::gauge!("switchboard_gateway_subscriptions").increment(1.0);
    Ok((Subscription { id, held, _forwarding: forwarding }, result))
}

/// Everything after `since` up to the top, at most `max`: `(publications, top, recovered)`.
/// More than `max` missed counts as not recovered (the client resyncs instead).
async fn read_all_since(
    shared: &Shared,
    channel: &ChannelName,
    mut since: StreamPosition,
    max: usize,
) -> Result<(Vec<Publication>, StreamPosition, bool)> {
    let streams = shared.sb.streams();
    let mut all = Vec::new();
    loop {
        let read = streams.read_since(channel, &since, PAGE).await?;
        if !read.recovered {
            return Ok((Vec::new(), read.position, false));
        }
        let done = read.publications.last().is_none_or(|p| p.offset >= read.position.offset);
        if let Some(last) = read.publications.last() {
            since.offset = last.offset;
        }
        all.extend(read.publications);
        if all.len() > max {
            return Ok((Vec::new(), read.position, false));
        }
        if done {
            // Everything read is at or below this top; later ones arrive live.
            let top = StreamPosition { epoch: read.position.epoch, offset: since.offset.max(read.position.offset) };
            return Ok((all, top, true));
        }
    }
}

/// Whose subscription it is: publications may be addressed to some devices, access changes to
/// some users; and the wire format of the connection it belongs to.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) protocol: Protocol,
}

struct Forwarder {
    shared: Arc<Shared>,
    /// This subscription's number (see [`Subscription::id`]).
    id: u64,
    /// `true` until the connection drops the [`Subscription`]; every push to the client is made
    /// holding this lock, and only while it is `true`.
    held: Arc<Mutex<bool>>,
    channel: ChannelName,
    /// The user's own channel, which also carries disconnect orders.
    personal: bool,
    who: Identity,
    access: Access,
    /// The last position delivered (or skipped as not for this device).
    last: StreamPosition,
    outbox: Outbox,
    orders: mpsc::UnboundedSender<Order>,
    /// On the personal channel: when to record `last` as the device's delivery cursor (so the
    /// HTTP `pending` list does not hand the device what it already received); `None` when
    /// nothing was delivered since the last record.
    cursor_due: Option<tokio::time::Instant>,
}

impl Forwarder {
    async fn run(mut self, mut live: HubSubscription) {
        loop {
            let event = match self.cursor_due {
                Some(due) => tokio::select! {
                    event = live.recv() => event,
                    () = tokio::time::sleep_until(due) => {
                        self.record_cursor().await;
                        continue;
                    }
                },
                None => live.recv().await,
            };
            let Some(event) = event else { break };
            let outcome = match event {
                // Ephemeral publications stand outside the stream: no epoch, no offset.
                HubEvent::Publication(msg) if msg.publication.offset == 0 => self.on_ephemeral(&msg.publication).await,
                HubEvent::Publication(msg) if msg.epoch != self.last.epoch => Err(Gap::Lost),
                HubEvent::Publication(msg) => self.on_publication(&msg.publication, Some(&msg.encoded)).await,
                // Access announcements may have been lost with the publications.
                HubEvent::Gap => match self.check_access().await {
                    Ok(()) => self.catch_up().await,
                    Err(gap) => Err(gap),
                },
                HubEvent::Lagged => Err(Gap::Lost),
            };
            match outcome {
                Ok(()) => {}
                Err(Gap::Lost) => {
                    // The client reconnects and recovers from the position it has.
                    metrics::counter!("switchboard_gateway_insufficient_state_total").increment(1);
                    let _ = self.orders.send(Order::Disconnect(DisconnectCode::InsufficientState));
                    return;
                }
                Err(Gap::Ended(code)) => {
                    self.end(code);
                    return;
                }
                Err(Gap::Slow | Gap::Left) => return,
            }
        }
    }

    /// A live-only publication; control events are acted on and never shown to the client.
    async fn on_ephemeral(&self, p: &Publication) -> std::result::Result<(), Gap> {
        match core_control::parse(&p.data) {
            None => self.push(p, None),
            Some(Control::AccessChanged(change)) if change.concerns(&self.who.user) => self.check_access().await,
            Some(_) => {
                if self.personal
                    && let Some(target) = control::disconnect_order(&p.data)
                {
                    let _ = self.orders.send(Order::DisconnectIf(target));
                }
                Ok(())
            }
        }
    }

    /// Checks the subscription's access again: when it no longer holds, forwarding stops here.
    async fn check_access(&self) -> std::result::Result<(), Gap> {
        match self.access.allowed(&self.shared.sb).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Gap::Ended(UnsubscribeCode::AccessRevoked)),
            // Unknown is not allowed: the client subscribes again, and is checked then.
            Err(e) => {
                tracing::warn!(channel.name = %self.channel, error = %e, "gateway: access check failed");
                Err(Gap::Ended(UnsubscribeCode::InsufficientState))
            }
        }
    }

    /// Tells the client the subscription ended, and its connection to forget it.
    fn end(&self, code: UnsubscribeCode) {
        if code == UnsubscribeCode::AccessRevoked {
            metrics::counter!("switchboard_gateway_access_revoked_total").increment(1);
        }
        let push = Reply::push(self.channel.as_str(), PushBody::Unsubscribe(code.into()));
        if let Ok(payload) = self.who.protocol.encode(&push) {
            let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
            if *held {
                // A full outbox means the connection is being closed as slow anyway.
                let _ = self.outbox.push(payload);
            }
        }
        let _ = self.orders.send(Order::SubscriptionEnded { channel: self.channel.clone(), id: self.id });
    }

    async fn on_publication(&mut self, p: &Publication, encoded: Encoded<'_>) -> std::result::Result<(), Gap> {
        if p.offset <= self.last.offset {
            return Ok(()); // already delivered by recovery or catch-up
        }
        if p.offset > self.last.offset + 1 {
            // Publications were lost on the way, and access announcements may have been too.
            self.check_access().await?;
            self.catch_up().await?;
            if p.offset <= self.last.offset {
                return Ok(());
            }
        }
        self.deliver(p, encoded)
    }

    /// Reads what live delivery missed from the stream.
    async fn catch_up(&mut self) -> std::result::Result<(), Gap> {
        let (missed, top, recovered) =
            read_all_since(&self.shared, &self.channel, self.last.clone(), self.shared.config.max_recovered)
                .await
                .map_err(|e: Error| {
                    tracing::warn!(channel.name = %self.channel, error = %e, "gateway: catch-up read failed");
                    Gap::Lost
                })?;
        if !recovered {
            return Err(Gap::Lost);
        }
        for p in &missed {
            self.deliver(p, None)?;
        }
        self.last.offset = self.last.offset.max(top.offset);
        Ok(())
    }

    fn deliver(&mut self, p: &Publication, encoded: Encoded<'_>) -> std::result::Result<(), Gap> {
        self.last.offset = p.offset;
        if self.personal && self.cursor_due.is_none() {
            self.cursor_due = Some(tokio::time::Instant::now() + CURSOR_DELAY);
        }
        self.push(p, encoded)
    }

    /// Records the last position handed to this connection as its device's cursor. A failure
    /// only leaves those publications in the device's pending list: logged, not fatal.
    async fn record_cursor(&mut self) {
        self.cursor_due = None;
        if let Err(e) = self.shared.sb.streams().ack(&self.who.user, &self.who.device, &self.last).await {
            tracing::debug!(user.id = %self.who.user, device.id = %self.who.device, error = %e, "gateway: delivery cursor not recorded");
        }
    }

    fn push(&self, p: &Publication, encoded: Encoded<'_>) -> std::result::Result<(), Gap> {
        if !p.is_for(&self.who.device) {
            return Ok(());
        }
        let push = || Some(Reply::push(self.channel.as_str(), PushBody::Pub(to_wire(p)?)));
        // Live publications are encoded once per node and format, and shared by every local
        // subscriber of that format; a format nobody here speaks is never encoded.
        let payload = match self.who.protocol {
            Protocol::Json => {
                let cell = encoded.map(|e| &e.text);
                let text = shared(cell, || push().and_then(|r| super::frame::encode_reply(&r).ok()).map(Arc::from));
                let Some(text) = text else { return Ok(()) };
                Payload::Text(String::from(&*text))
            }
            Protocol::Protobuf => {
                let cell = encoded.map(|e| &e.binary);
                let bytes = shared(cell, || push().map(|r| Arc::from(super::protobuf::encode_reply(&r))));
                let Some(bytes) = bytes else { return Ok(()) };
                Payload::Binary(Vec::from(&*bytes))
            }
        };
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if !*held {
            return Err(Gap::Left);
        }
        let metrics = &self.shared.metrics;
        metrics.publications_out.increment(1);
        // Publish to queued-for-this-client, on the engine's clock (the same machine's for memory).
        metrics.fanout_latency.record(p.time.millis_until(Timestamp::now()) as f64 / 1000.0);
        self.outbox.push(payload).map_err(|_| Gap::Slow)
    }
}

/// The encoding in `cell` when there is one, else `encode`'s (stored in `cell` for the other
/// subscribers when there is a cell).
fn shared<T: ?Sized>(
    cell: Option<&std::sync::OnceLock<Arc<T>>>,
    encode: impl FnOnce() -> Option<Arc<T>>,
) -> Option<Arc<T>> {
    match cell {
        Some(cell) => match cell.get() {
            Some(done) => Some(done.clone()),
            None => {
                let fresh = encode()?;
                Some(cell.get_or_init(|| fresh).clone())
            }
        },
        None => encode(),
    }
}

/// The shared encodings of a live publication, when there are some.
type Encoded<'a> = Option<&'a Encodings>;

/// Why forwarding stops.
enum Gap {
    /// Publications were missed and cannot be read back: the client must recover.
    Lost,
    /// The subscription ends (its access was revoked, or could not be checked).
    Ended(UnsubscribeCode),
    /// The client reads too slowly: the connection is already being closed.
    Slow,
    /// The connection no longer holds the subscription (the client unsubscribed).
    Left,
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// Subscribers of one format share one encoding of a live publication; a format no
    /// subscriber speaks is never encoded.
    #[test]
    fn each_format_is_encoded_once_and_only_when_needed() {
        let encodings = Encodings::default();
        let text_runs = Cell::new(0);
        for _ in 0..3 {
            let text = shared(Some(&encodings.text), || {
                text_runs.set(text_runs.get() + 1);
                Some(Arc::from("{\"push\":{}}"))
            });
            assert_eq!(text.as_deref(), Some("{\"push\":{}}"));
        }
        assert_eq!(text_runs.get(), 1);
        assert!(encodings.binary.get().is_none(), "no Protobuf subscriber, no Protobuf encoding");
        let binary_runs = Cell::new(0);
        for _ in 0..2 {
            let bytes = shared(Some(&encodings.binary), || {
                binary_runs.set(binary_runs.get() + 1);
                Some(Arc::from(&[0x02, 0x22, 0x00][..]))
            });
            assert_eq!(bytes.as_deref(), Some(&[0x02, 0x22, 0x00][..]));
        }
        assert_eq!(binary_runs.get(), 1);
        // Without a shared cell (recovery, catch-up) every call encodes.
        let runs = Cell::new(0);
        for _ in 0..2 {
            shared::<str>(None, || {
                runs.set(runs.get() + 1);
                Some(Arc::from("x"))
            });
        }
        assert_eq!(runs.get(), 2);
    }
}
