//! One client connection: the protocol state machine from the socket's first frame to its close.
//! The loop is generic over the socket's `Sink`/`Stream` so tests can drive it with channels.
//!
//! Life of a connection: the socket opens → the client must `connect` within the connect timeout
//! (token verified, denylist / revoke-before / session checked, per-user connection limit) → it is
//! registered in this node's registry and in presence, and subscribed to its personal channel
//! `user:<id>` with recovery from the connect command's `subs` → commands are answered in order
//! while publications are pushed by one forwarder task per subscription → the server pings every
//! `ping_interval` and expects a pong → the connection ends on close, a protocol violation, a
//! missed pong, an expired token, a slow reader, a disconnect order or shutdown, and is then
//! unregistered everywhere.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::Deserialize;
use switchboard_core::SetStatus;
use switchboard_core::presence::ConnectionInfo;
use switchboard_core::{
    ChannelName, ConversationId, DeviceId, Error, Policy, PolicyRef, RateLimitCheck, RateLimitKey, Timestamp,
    TokenCheck, TokenId, UserId,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::codec::{Payload, Protocol};
use super::codes::{DisconnectCode, ErrorCode};
use super::frame::{FrameLimits, decode_frame_with};
use super::outbox::{Outbox, OutboxReceiver, Outgoing, outbox};
use super::protocol::{
    Command, CommandResult, ConnectRequest, ConnectResult, HistoryRequest, HistoryResult, Method, PresenceResult,
    PresenceStatsResult, ProtocolError, RawJson, RefreshResult, Reply, RpcRequest, RpcResult, SubscribeRequest,
};
use super::registry::{Order, TokenRef, TooManyConnections};
use super::subscription::{Access, Identity, Recover, Subscription, subscribe};
use super::token::ClientClaims;
use super::{Shared, random_id};

/// Largest batch of replies and pushes written as one frame.
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// How long the writer may take to flush a final close after the connection ended.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

/// What the HTTP upgrade knew about the client.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnMeta {
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    /// The wire format chosen at the handshake.
    pub(crate) protocol: Protocol,
}

/// Why a connection ended.
enum End {
    /// The client closed the socket or it broke.
    Closed,
    /// The server ends it with this code.
    Disconnect(DisconnectCode),
}

/// The authenticated side of a connection.
struct Client {
    claims: ClientClaims,
    info: ConnectionInfo,
    expires: Instant,
}

struct Connection {
    shared: Arc<Shared>,
    meta: ConnMeta,
    outbox: Outbox,
    orders_tx: mpsc::UnboundedSender<Order>,
    orders_rx: mpsc::UnboundedReceiver<Order>,
    client: Option<Client>,
    subs: HashMap<ChannelName, Subscription>,
    /// When the next server ping is due.
    ping_at: Instant,
    /// When the pong to the last ping must have arrived by, if one is outstanding.
    pong_by: Option<Instant>,
}

/// Serves one WebSocket until it ends. `sink` and `stream` are the socket's two halves.
pub(crate) async fn serve<Si, St, E>(shared: Arc<Shared>, meta: ConnMeta, sink: Si, mut stream: St)
where
    Si: Sink<Message> + Unpin + Send + 'static,
    St: Stream<Item = Result<Message, E>> + Unpin + Send,
{
    let slow = CancellationToken::new();
    let (out, rx) = outbox(shared.config.send_queue_bytes, slow.clone());
    let stop_writing = CancellationToken::new();
    let writing = write_loop(sink, rx, shared.metrics.frames_out.clone());
    let stop_writer = stop_writing.clone();
    let writer = tokio::spawn(async move {
        tokio::select! {
            () = stop_writer.cancelled() => {}
            () = writing => {}
        }
    });
    let (orders_tx, orders_rx) = mpsc::unbounded_channel();
    let connections = metrics::gauge!("switchboard_gateway_connections", "protocol" => meta.protocol.name());
    connections.increment(1.0);
    let mut conn = Connection {
        ping_at: Instant::now() + shared.config.ping_interval,
        shared,
        meta,
        outbox: out,
        orders_tx,
        orders_rx,
        client: None,
        subs: HashMap::new(),
        pong_by: None,
    };
    let end = conn.run(&mut stream, &slow).await;
    Box::pin(conn.finish(end)).await;
    connections.decrement(1.0);
    // The writer ends once every outbox clone is gone (subscriptions were just dropped); a client
    // that stopped reading does not get to hold the socket open past the flush time.
    drop(conn);
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_FLUSH, &mut writer).await.is_err() {
        stop_writing.cancel();
        let _ = writer.await;
    }
}

async fn write_loop<Si: Sink<Message> + Unpin>(mut sink: Si, mut rx: OutboxReceiver, frames_out: metrics::Counter) {
    while let Some(out) = rx.next(MAX_BATCH_BYTES).await {
        match out {
            Outgoing::Frame(payload) => {
                frames_out.increment(1);
                let message = match payload {
                    Payload::Text(text) => Message::Text(text.into()),
                    Payload::Binary(bytes) => Message::Binary(bytes.into()),
                };
                if sink.send(message).await.is_err() {
                    return;
                }
            }
            Outgoing::Close(code, reason) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                break;
            }
        }
    }
    let _ = sink.close().await;
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Connection {
    async fn run<St, E>(&mut self, stream: &mut St, slow: &CancellationToken) -> End
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
    {
        let connect_by = Instant::now() + self.shared.config.connect_timeout;
        loop {
            let deadline = match &self.client {
                None => Some(connect_by),
                Some(c) => Some(self.pong_by.unwrap_or(self.ping_at).min(c.expires)),
            };
            tokio::select! {
                biased;
                _ = slow.cancelled() => {
                    metrics::counter!("switchboard_gateway_slow_disconnects_total").increment(1);
                    return End::Disconnect(DisconnectCode::Slow);
                }
                _ = self.shared.shutdown.cancelled() => return End::Disconnect(DisconnectCode::Shutdown),
                Some(order) = self.orders_rx.recv() => {
                    if let Some(code) = self.on_order(order) {
                        return End::Disconnect(code);
                    }
                }
                _ = sleep_until_opt(deadline) => {
                    if let Some(end) = self.on_timer(connect_by) {
                        return end;
                    }
                }
                frame = stream.next() => match frame {
                    None => return End::Closed,
                    // A read error is a frame over the size limit or a broken socket; for the
                    // latter the close goes nowhere anyway.
                    Some(Err(_)) => return End::Disconnect(DisconnectCode::BadRequest),
                    Some(Ok(Message::Text(text))) => {
                        self.shared.metrics.frames_in.increment(1);
                        let limits = self.frame_limits();
                        let commands = match self.meta.protocol {
                            Protocol::Json => Commands::Json(decode_frame_with(text.as_str(), limits)),
                            Protocol::Protobuf => Commands::Refused(Some(Protocol::Protobuf.wrong_frame("text"))),
                        };
                        // Boxed: the handlers' futures are large and an idle connection should
                        // not carry their space in its own state.
                        if let Err(code) = Box::pin(self.on_frame(commands)).await {
                            return End::Disconnect(code);
                        }
                    }
                    Some(Ok(Message::Binary(bytes))) => {
                        self.shared.metrics.frames_in.increment(1);
                        let limits = self.frame_limits();
                        let commands = match self.meta.protocol {
                            Protocol::Protobuf => Commands::Protobuf(super::protobuf::decode_frame_with(&bytes, limits)),
                            Protocol::Json => Commands::Refused(Some(Protocol::Json.wrong_frame("binary"))),
                        };
                        if let Err(code) = Box::pin(self.on_frame(commands)).await {
                            return End::Disconnect(code);
                        }
                    }
                    Some(Ok(Message::Close(_))) => return End::Closed,
                    Some(Ok(_)) => {}
                },
            }
        }
    }

    /// Acts on an order; `Some` ends the connection with that code.
    fn on_order(&mut self, order: Order) -> Option<DisconnectCode> {
        match order {
            Order::Disconnect(code) => Some(code),
            Order::DisconnectIf(target) => {
                let client = self.client.as_ref()?;
                target.matches(&client.claims.device, &token_ref(&client.claims)).then(|| target.code())
            }
            Order::SubscriptionEnded { channel, id } => {
                // The client may have unsubscribed and subscribed again meanwhile: keep that one.
                if self.subs.get(&channel).is_some_and(|s| s.id == id) {
                    self.subs.remove(&channel);
                }
                None
            }
        }
    }

    fn on_timer(&mut self, connect_by: Instant) -> Option<End> {
        let now = Instant::now();
        let Some(client) = &self.client else {
            return (now >= connect_by).then_some(End::Disconnect(DisconnectCode::Stale));
        };
        if now >= client.expires {
            return Some(End::Disconnect(DisconnectCode::Expired));
        }
        if self.pong_by.is_some_and(|by| now >= by) {
            return Some(End::Disconnect(DisconnectCode::NoPong));
        }
        if now >= self.ping_at {
            if self.send(&Reply::Ping).is_err() {
                return Some(End::Disconnect(DisconnectCode::Slow));
            }
            self.ping_at = now + self.shared.config.ping_interval;
            self.pong_by = Some(now + self.shared.config.pong_timeout);
        }
        None
    }

    fn frame_limits(&self) -> FrameLimits {
        FrameLimits { max_frame_bytes: self.shared.config.max_frame_bytes, ..FrameLimits::default() }
    }

    /// Handles every command of one frame in order; `Err` ends the connection.
    async fn on_frame(&mut self, commands: Commands<'_>) -> Result<(), DisconnectCode> {
        for command in commands {
            let command = command.map_err(|e| {
                tracing::debug!(error = %e, protocol = self.meta.protocol.name(), "gateway: protocol violation");
                e.disconnect()
            })?;
            self.on_command(command).await?;
        }
        Ok(())
    }

    fn send(&self, reply: &Reply) -> Result<(), DisconnectCode> {
        let payload = self.meta.protocol.encode(reply).map_err(|_| DisconnectCode::ServerError)?;
        self.outbox.push(payload).map_err(|_| DisconnectCode::Slow)
    }

    fn reply(&self, id: u32, result: Result<CommandResult, ErrorCode>) -> Result<(), DisconnectCode> {
        if id == 0 {
            return Ok(());
        }
        match result {
            Ok(result) => self.send(&Reply::result(id, result)),
            Err(code) => self.send(&Reply::error(id, code)),
        }
    }

    async fn on_command(&mut self, command: Command) -> Result<(), DisconnectCode> {
        let id = command.id;
        let name = command.method.name();
        metrics::counter!("switchboard_gateway_commands_total", "method" => name).increment(1);
        match command.method {
            Method::Connect(req) => self.connect(id, req).await,
            // Everything else needs a connected client first.
            _ if self.client.is_none() => Err(DisconnectCode::BadRequest),
            Method::Pong => {
                self.pong_by = None;
                Ok(())
            }
            Method::Ping => self.reply(id, Ok(CommandResult::Ping)),
            Method::Send(_) => Ok(()),
            Method::Subscribe(req) => {
                let result = self.subscribe(req).await;
                self.reply(id, result)
            }
            Method::Unsubscribe(req) => {
                let result = self.unsubscribe(&req.channel);
                self.reply(id, result)
            }
            // Publishing from clients is off: backends publish through the API.
            Method::Publish(_) => self.reply(id, Err(ErrorCode::PermissionDenied)),
            Method::Presence(req) => {
                let result = self.channel_presence(&req.channel).await.map(CommandResult::Presence);
                self.reply(id, result)
            }
            Method::PresenceStats(req) => {
                let result = self.channel_presence(&req.channel).await.map(|p| {
                    let users: std::collections::HashSet<&str> = p.presence.values().map(|c| c.user.as_str()).collect();
                    CommandResult::PresenceStats(PresenceStatsResult {
                        num_clients: p.presence.len() as u32,
                        num_users: users.len() as u32,
                    })
                });
                self.reply(id, result)
            }
            Method::History(req) => {
                let result = self.history(req).await;
                self.reply(id, result)
            }
            Method::Rpc(req) => {
                let result = self.rpc(req).await;
                self.reply(id, result)
            }
            Method::Refresh(req) => self.refresh(id, &req.token).await,
            Method::SubRefresh(_) => self.reply(id, Err(ErrorCode::NotAvailable)),
        }
    }

    fn user(&self) -> Option<&UserId> {
        self.client.as_ref().map(|c| &c.claims.user)
    }

    fn device(&self) -> Option<&DeviceId> {
        self.client.as_ref().map(|c| &c.claims.device)
    }

    /// `connect`: authenticate, register, subscribe the personal channel with recovery.
    async fn connect(&mut self, id: u32, req: ConnectRequest) -> Result<(), DisconnectCode> {
        if self.client.is_some() {
            return Err(DisconnectCode::BadRequest);
        }
        let shared = self.shared.clone();
        let Some(verifier) = shared.config.tokens.as_ref() else {
            tracing::warn!("gateway: connect refused, no token key is configured");
            return Err(DisconnectCode::InvalidToken);
        };
        let claims = match verifier.verify(&req.token) {
            Ok(claims) => claims,
            Err(e) => {
                tracing::debug!(error = %e, "gateway: connect token refused");
                return match e.disconnect() {
                    Some(code) => Err(code),
                    None => self.reply(id, Err(e.error_code())),
                };
            }
        };
        if let Some(ip) = &self.meta.ip
            && !self.allowed(&format!("gw:connect:{ip}"), shared.config.connect_limit).await?
        {
            return Err(DisconnectCode::TooManyRequests);
        }
        self.check_token_state(&claims).await?;

        let now = Timestamp::now();
        let info = ConnectionInfo {
            conn_id: random_id().map_err(|_| DisconnectCode::ServerError)?,
            user_id: claims.user.clone(),
            device_id: claims.device.clone(),
            node_id: shared.node_id.clone(),
            connected_at: now,
            ip: self.meta.ip.clone(),
            user_agent: self.meta.user_agent.clone(),
        };
        shared
            .registry
            .register(info.clone(), token_ref(&claims), self.orders_tx.clone(), shared.config.max_connections_per_user)
            .map_err(|TooManyConnections| DisconnectCode::ConnectionLimit)?;
        let expires = Instant::now() + Duration::from_millis(now.millis_until(claims.expires_at));
        let ttl = claims.ttl_seconds(now);
        let span = tracing::Span::current();
        span.record("conn.id", info.conn_id.as_str());
        span.record("user.id", info.user_id.as_str());
        span.record("device.id", info.device_id.as_str());
        self.client = Some(Client { claims, info: info.clone(), expires });
        if let Err(e) = shared.sb.presence().connect(&info).await {
            // The refresher registers it again; the connection itself works without presence.
            tracing::warn!(error = %e, "gateway: presence registration failed");
        }

        let personal = ChannelName::user(&info.user_id);
        let recover = req
            .subs
            .get(personal.as_str())
            .filter(|s| s.recover)
            .map(|s| Recover { epoch: s.epoch.clone(), offset: s.offset });
        let sub = self.subscribe_channel(&personal, Access::Own, recover).await.map_err(|e| {
            tracing::warn!(error = %e, "gateway: personal channel subscription failed");
            DisconnectCode::ServerError
        })?;
        let mut subs = std::collections::BTreeMap::new();
        subs.insert(personal.as_str().to_owned(), sub);
        let result = ConnectResult {
            client: info.conn_id.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            expires: true,
            ttl,
            subs,
            ping: shared.config.ping_interval.as_secs() as u32,
            pong: true,
            node: shared.node_id.clone(),
            ..ConnectResult::default()
        };
        self.ping_at = Instant::now() + shared.config.ping_interval;
        self.reply(id, Ok(CommandResult::Connect(result)))
    }

    /// Denylist, revoke-before and session checks (refused tokens never reconnect).
    async fn check_token_state(&self, claims: &ClientClaims) -> Result<(), DisconnectCode> {
        let sb = &self.shared.sb;
        let ids: Vec<&TokenId> = claims.token_id.iter().chain([&claims.digest]).collect();
        match sb.tokens().check(&ids, &claims.user, claims.issued_at).await {
            Ok(TokenCheck::Valid) => {}
            Ok(TokenCheck::Denied | TokenCheck::Revoked) => return Err(DisconnectCode::InvalidToken),
            Err(e) => return Err(engine_disconnect(&e)),
        }
        if let Some(sid) = &claims.session {
            match sb.sessions().get(sid).await {
                Ok(Some(s)) if s.user_id == claims.user => {}
                Ok(_) => return Err(DisconnectCode::InvalidToken),
                Err(e) => return Err(engine_disconnect(&e)),
            }
        }
        Ok(())
    }

    /// Whether a rate-limited action may go ahead; engine errors end the connection.
    async fn allowed(&self, key: &str, policy: Policy) -> Result<bool, DisconnectCode> {
        let Ok(key) = RateLimitKey::new(key.replace(['[', ']'], "")) else { return Ok(true) };
        let check = RateLimitCheck { key, policy: PolicyRef::Inline(policy), cost: None };
        match self.shared.sb.rate_limits().check(std::slice::from_ref(&check)).await {
            Ok(outcome) => Ok(outcome.allowed),
            Err(e) => Err(engine_disconnect(&e)),
        }
    }

    async fn subscribe_channel(
        &mut self,
        channel: &ChannelName,
        access: Access,
        recover: Option<Recover>,
    ) -> Result<super::protocol::SubscribeResult, Error> {
        let client = self.client.as_ref().ok_or_else(|| Error::Internal("not connected".into()))?;
        let who = Identity {
            user: client.claims.user.clone(),
            device: client.claims.device.clone(),
            protocol: self.meta.protocol,
        };
        let outbox = self.outbox.clone();
        let (subscription, result) =
            subscribe(&self.shared, channel, &who, access, recover, outbox, self.orders_tx.clone()).await?;
        self.subs.insert(channel.clone(), subscription);
        Ok(result)
    }

    async fn subscribe(&mut self, req: SubscribeRequest) -> Result<CommandResult, ErrorCode> {
        let channel = ChannelName::new(req.channel.as_str()).map_err(|_| ErrorCode::UnknownChannel)?;
        if self.subs.contains_key(&channel) {
            return Err(ErrorCode::AlreadySubscribed);
        }
        // The personal channel is the server's subscription: it does not count against the limit.
        let personal = self.subs.keys().filter(|c| c.namespace() == "user").count();
        if self.subs.len() - personal >= self.shared.config.max_subscriptions {
            return Err(ErrorCode::LimitExceeded);
        }
        let user = self.user().ok_or(ErrorCode::Unauthorized)?;
        // Checked by `subscribe` once the live subscription is in place, so an access change
        // cannot slip between the check and the subscription.
        let access = Access::for_channel(&channel, user)?;
        let recover = req.recover.then(|| Recover { epoch: req.epoch.clone(), offset: req.offset });
        let result = self.subscribe_channel(&channel, access, recover).await.map_err(|e| ErrorCode::from_core(&e))?;
        Ok(CommandResult::Subscribe(result))
    }

    /// Who may subscribe (and read history / presence): `chat:` members, `presence:` self or
    /// contacts, `user:` only the owner (already subscribed server-side). See [`Access`].
    async fn check_channel_access(&self, channel: &ChannelName) -> Result<(), ErrorCode> {
        let user = self.user().ok_or(ErrorCode::Unauthorized)?;
        let access = Access::for_channel(channel, user)?;
        match access.allowed(&self.shared.sb).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ErrorCode::PermissionDenied),
            Err(e) => Err(ErrorCode::from_core(&e)),
        }
    }

    fn unsubscribe(&mut self, channel: &str) -> Result<CommandResult, ErrorCode> {
        let channel = ChannelName::new(channel).map_err(|_| ErrorCode::UnknownChannel)?;
        // The personal channel is the server's subscription: clients cannot leave it.
        if self.user().is_some_and(|u| ChannelName::user(u) == channel) {
            return Err(ErrorCode::PermissionDenied);
        }
        self.subs.remove(&channel);
        Ok(CommandResult::Unsubscribe)
    }

    async fn history(&self, req: HistoryRequest) -> Result<CommandResult, ErrorCode> {
        let channel = ChannelName::new(req.channel.as_str()).map_err(|_| ErrorCode::UnknownChannel)?;
        if channel.namespace() == "presence" {
            return Err(ErrorCode::NotAvailable);
        }
        self.check_channel_access(&channel).await?;
        let streams = self.shared.sb.streams();
        let limit = match req.limit {
            n if n < 0 => 1000,
            n => (n as usize).min(1000),
        };
        let read = match &req.since {
            Some(since) => {
                let pos = switchboard_core::StreamPosition { epoch: since.epoch.clone(), offset: since.offset };
                let read =
                    streams.read_since(&channel, &pos, limit.max(1)).await.map_err(|e| ErrorCode::from_core(&e))?;
                if !read.recovered {
                    return Err(ErrorCode::UnrecoverablePosition);
                }
                read
            }
            None if limit == 0 => {
                let position = streams.position(&channel).await.map_err(|e| ErrorCode::from_core(&e))?;
                switchboard_core::StreamRead { publications: Vec::new(), position, recovered: true }
            }
            None => streams.history(&channel, limit).await.map_err(|e| ErrorCode::from_core(&e))?,
        };
        let device = self.device().cloned();
        let mut publications: Vec<_> = read
            .publications
            .iter()
            .filter(|p| device.as_ref().is_none_or(|d| p.is_for(d)))
            .take(limit)
            .filter_map(super::subscription::to_wire)
            .collect();
        if req.reverse {
            publications.reverse();
        }
        Ok(CommandResult::History(HistoryResult {
            publications,
            epoch: read.position.epoch,
            offset: read.position.offset,
        }))
    }

    /// Presence of a `chat:` channel: the members who are online (and visible), one entry per
    /// online device.
    async fn channel_presence(&self, channel: &str) -> Result<PresenceResult, ErrorCode> {
        let channel = ChannelName::new(channel).map_err(|_| ErrorCode::UnknownChannel)?;
        if channel.namespace() != "chat" {
            return Err(ErrorCode::NotAvailable);
        }
        self.check_channel_access(&channel).await?;
        let sb = &self.shared.sb;
        let conversation = ConversationId::new(channel.id()).map_err(|_| ErrorCode::UnknownChannel)?;
        let members = match sb.conversations().get(&conversation).await.map_err(|e| ErrorCode::from_core(&e))? {
            Some(c) => c.members,
            None => Vec::new(),
        };
        let mut presence = std::collections::BTreeMap::new();
        for chunk in members.chunks(1000) {
            let found = sb.presence().bulk(chunk).await.map_err(|e| ErrorCode::from_core(&e))?;
            for p in found.into_iter().map(|p| p.visible_to_others()) {
                for d in p.devices.iter().filter(|d| d.online) {
                    let client = format!("{}/{}", p.user_id, d.device_id);
                    let info = super::protocol::ClientInfo {
                        user: p.user_id.to_string(),
                        client: client.clone(),
                        ..Default::default()
                    };
                    presence.insert(client, info);
                }
            }
        }
        Ok(PresenceResult { presence })
    }

    async fn rpc(&mut self, req: RpcRequest) -> Result<CommandResult, ErrorCode> {
        let user = self.user().cloned().ok_or(ErrorCode::Unauthorized)?;
        let config = &self.shared.config;
        let (key, policy) = match req.method.as_str() {
            "typing" => (format!("gw:typing:{user}"), config.typing_limit),
            _ => (format!("gw:rpc:{user}"), config.rpc_limit),
        };
        if !self.allowed(&key, policy).await.map_err(|_| ErrorCode::Internal)? {
            return Err(ErrorCode::TooManyRequests);
        }
        let data = req.data.as_ref().map(RawJson::get).unwrap_or("{}");
        let answer = super::rpc::call(&self.shared, &user, self.device(), &req.method, data).await?;
        let data = RawJson::to_json(&answer).map_err(|_| ErrorCode::Internal)?;
        Ok(CommandResult::Rpc(RpcResult { data: Some(data) }))
    }

    /// `refresh`: a new token for the same user and device extends the connection.
    async fn refresh(&mut self, id: u32, token: &str) -> Result<(), DisconnectCode> {
        let shared = self.shared.clone();
        let Some(verifier) = shared.config.tokens.as_ref() else { return Err(DisconnectCode::InvalidToken) };
        let claims = match verifier.verify(token) {
            Ok(c) => c,
            Err(e) => {
                return match e.disconnect() {
                    Some(code) => Err(code),
                    None => self.reply(id, Err(e.error_code())),
                };
            }
        };
        let same =
            self.client.as_ref().is_some_and(|c| c.claims.user == claims.user && c.claims.device == claims.device);
        if !same {
            return Err(DisconnectCode::InvalidToken);
        }
        self.check_token_state(&claims).await?;
        let now = Timestamp::now();
        let ttl = claims.ttl_seconds(now);
        let conn_id = match &mut self.client {
            Some(client) => {
                client.expires = Instant::now() + Duration::from_millis(now.millis_until(claims.expires_at));
                // Disconnect orders address the token in force (revoke-before, denied jti).
                shared.registry.refreshed(&client.info.user_id, &client.info.conn_id, token_ref(&claims));
                client.claims = claims;
                client.info.conn_id.clone()
            }
            None => return Err(DisconnectCode::BadRequest),
        };
        let result =
            RefreshResult { client: conn_id, version: env!("CARGO_PKG_VERSION").to_owned(), expires: true, ttl };
        self.reply(id, Ok(CommandResult::Refresh(result)))
    }

    /// Unregisters everywhere and queues the close frame.
    async fn finish(&mut self, end: End) {
        self.subs.clear();
        if let Some(client) = self.client.take() {
            self.shared.registry.unregister(&client.info.user_id, &client.info.conn_id);
            if let Err(e) = self.shared.sb.presence().disconnect(&client.info.conn_ref()).await {
                tracing::debug!(error = %e, "gateway: presence unregistration failed; it will expire");
            }
        }
        if let End::Disconnect(code) = end {
            let protocol = self.meta.protocol.name();
            tracing::debug!(code = code.code(), reason = code.reason(), protocol, "gateway: disconnecting");
            self.outbox.close(code.code() as u16, code.reason());
        } else {
            self.outbox
                .close(DisconnectCode::ConnectionClosed.code() as u16, DisconnectCode::ConnectionClosed.reason());
        }
    }
}

/// The commands of one frame, from either decoder (or the refusal of a frame of the wrong kind).
enum Commands<'a> {
    Json(super::frame::FrameDecoder<'a>),
    Protobuf(super::protobuf::FrameDecoder<'a>),
    Refused(Option<ProtocolError>),
}

impl Iterator for Commands<'_> {
    type Item = Result<Command, ProtocolError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Commands::Json(d) => d.next(),
            Commands::Protobuf(d) => d.next(),
            Commands::Refused(e) => e.take().map(Err),
        }
    }
}

/// The token as disconnect orders address it.
fn token_ref(claims: &ClientClaims) -> TokenRef {
    TokenRef {
        session: claims.session.clone(),
        issued_at: claims.issued_at,
        token_id: claims.token_id.clone(),
        digest: claims.digest.clone(),
    }
}

/// How to end a connection when the engine failed: unavailable engines ask the client to come
/// back later; anything else is a server error (which SDKs also retry).
fn engine_disconnect(e: &Error) -> DisconnectCode {
    tracing::warn!(error = %e, "gateway: engine call failed");
    DisconnectCode::ServerError
}

/// Arguments of `presence.get`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresenceGetArgs {
    pub(crate) user_ids: Vec<UserId>,
}

/// Arguments of `typing`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TypingArgs {
    pub(crate) conversation_id: ConversationId,
    #[serde(default = "yes")]
    pub(crate) typing: bool,
}

fn yes() -> bool {
    true
}

/// Arguments of `presence.status`.
pub(crate) type StatusArgs = SetStatus;

#[cfg(test)]
mod tests {
    use switchboard_core::{NewPublication, SwitchboardConfig};
    use switchboard_memory::MemoryEngineExt;

    use super::*;
    use crate::gateway::{Gateway, GatewayConfig, TokenKey, TokenVerifier};

    fn token() -> String {
        let now = Timestamp::now().as_millis() / 1000;
        let claims = serde_json::json!({"sub": "slow", "device": "d", "iat": now - 5, "exp": now + 600});
        let key = jsonwebtoken::EncodingKey::from_secret(b"secret");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    }

    /// A client that stops reading is disconnected as slow once 64 KiB wait for it, instead of
    /// the server buffering without bound; the close comes after what was queued.
    #[tokio::test]
    async fn a_client_that_stops_reading_is_closed_as_slow() {
        let sb = switchboard_core::Switchboard::memory(SwitchboardConfig::default()).unwrap();
        sb.start().unwrap();
        let config = GatewayConfig {
            tokens: Some(TokenVerifier::new(&TokenKey::Hs256("secret".into())).unwrap()),
            send_queue_bytes: 64 * 1024,
            ..GatewayConfig::default()
        };
        let gateway = Gateway::new(sb.clone(), config, "test".into());
        // The socket: what the client sends, and a one-slot sink that we read by hand.
        let (to_server, from_client) = mpsc::unbounded_channel::<Message>();
        let incoming = Box::pin(futures_util::stream::unfold(from_client, |mut rx| async move {
            rx.recv().await.map(|m| (Ok::<_, std::convert::Infallible>(m), rx))
        }));
        let (sink, mut socket) = mpsc::channel::<Message>(1);
        let sink = tokio_util::sync::PollSender::new(sink);
        let served = tokio::spawn(serve(gateway.shared(), ConnMeta::default(), sink, incoming));
        let connect = serde_json::json!({"id": 1, "connect": {"token": token()}}).to_string();
        to_server.send(Message::Text(connect.into())).unwrap();
        let reply = socket.recv().await.expect("connect reply");
        assert!(reply.to_text().unwrap().contains("\"connect\""), "{reply:?}");

        // Stop reading; publish far more than the limit.
        let channel = ChannelName::user(&UserId::new("slow").unwrap());
        let big = "x".repeat(4096);
        for n in 0..100 {
            let event = serde_json::json!({"type": "bulk", "data": {"n": n, "pad": big}});
            sb.streams().publish(&channel, NewPublication::new(event)).await.unwrap();
        }
        // The connection ends by itself (slow), without anyone reading.
        tokio::time::timeout(Duration::from_secs(10), served).await.expect("the slow connection ended").unwrap();
        assert_eq!(gateway.connections(), 0, "unregistered");
    }
}
