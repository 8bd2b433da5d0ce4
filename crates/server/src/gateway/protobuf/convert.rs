//! Between the Protobuf messages and the one command/reply model both codecs share: commands go
//! through the same [`WireCommand`] checks as JSON ones, replies are built from the same
//! [`Reply`] values. `data` travels as bytes holding the JSON text.

use super::messages as pb;
use crate::gateway::protocol::{
    ClientInfo, Command, CommandResult, ConnectRequest, ConnectResult, DisconnectPush, ErrorReply, HistoryRequest,
    HistoryResult, MessagePush, Method, PresenceRequest, PresenceResult, PresenceStatsRequest, PresenceStatsResult,
    ProtocolError, Publication, PublishRequest, Push, PushBody, RawJson, RefreshPush, RefreshRequest, RefreshResult,
    Reply, RpcRequest, RpcResult, SendRequest, StreamPosition, SubRecovery, SubRefreshRequest, SubRefreshResult,
    SubscribePush, SubscribeRequest, SubscribeResult, UnsubscribePush, UnsubscribeRequest, WireCommand, WireReply,
};

/// Empty bytes are "no data" (proto3's zero value); anything else must be one JSON value.
fn json_data(bytes: Vec<u8>, method: &'static str) -> Result<Option<RawJson>, ProtocolError> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8(bytes).map_err(|_| ProtocolError::DataNotJson { method })?;
    RawJson::from_text(text).map(Some).map_err(|_| ProtocolError::DataNotJson { method })
}

fn bytes(data: &Option<RawJson>) -> Vec<u8> {
    data.as_ref().map(|d| d.get().as_bytes().to_vec()).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Commands (server side: decode; client side: encode)

impl TryFrom<pb::Command> for Command {
    type Error = ProtocolError;

    fn try_from(c: pb::Command) -> Result<Self, ProtocolError> {
        let wire = WireCommand {
            id: c.id,
            connect: c
                .connect
                .map(|r| {
                    Ok::<_, ProtocolError>(ConnectRequest {
                        token: r.token,
                        data: json_data(r.data, "connect")?,
                        subs: r
                            .subs
                            .into_iter()
                            .map(|(channel, s)| {
                                (channel, SubRecovery { recover: s.recover, epoch: s.epoch, offset: s.offset })
                            })
                            .collect(),
                        name: r.name,
                        version: r.version,
                    })
                })
                .transpose()?,
            subscribe: c
                .subscribe
                .map(|r| {
                    Ok::<_, ProtocolError>(SubscribeRequest {
                        channel: r.channel,
                        token: r.token,
                        recover: r.recover,
                        epoch: r.epoch,
                        offset: r.offset,
                        data: json_data(r.data, "subscribe")?,
                        positioned: r.positioned,
                        recoverable: r.recoverable,
                        join_leave: r.join_leave,
                        flag: r.flag,
                    })
                })
                .transpose()?,
            unsubscribe: c.unsubscribe.map(|r| UnsubscribeRequest { channel: r.channel }),
            publish: c
                .publish
                .map(|r| {
                    Ok::<_, ProtocolError>(PublishRequest { channel: r.channel, data: json_data(r.data, "publish")? })
                })
                .transpose()?,
            presence: c.presence.map(|r| PresenceRequest { channel: r.channel }),
            presence_stats: c.presence_stats.map(|r| PresenceStatsRequest { channel: r.channel }),
            history: c.history.map(|r| HistoryRequest {
                channel: r.channel,
                limit: r.limit,
                since: r.since.map(|p| StreamPosition { offset: p.offset, epoch: p.epoch }),
                reverse: r.reverse,
            }),
            ping: c.ping.is_some(),
            send: c
                .send
                .map(|r| Ok::<_, ProtocolError>(SendRequest { data: json_data(r.data, "send")? }))
                .transpose()?,
            rpc: c
                .rpc
                .map(|r| Ok::<_, ProtocolError>(RpcRequest { method: r.method, data: json_data(r.data, "rpc")? }))
                .transpose()?,
            refresh: c.refresh.map(|r| RefreshRequest { token: r.token }),
            sub_refresh: c.sub_refresh.map(|r| SubRefreshRequest { channel: r.channel, token: r.token }),
        };
        Command::from_wire(wire)
    }
}

impl From<&Command> for pb::Command {
    fn from(c: &Command) -> Self {
        let mut out = pb::Command { id: c.id, ..pb::Command::default() };
        match &c.method {
            Method::Pong => {}
            Method::Connect(r) => {
                out.connect = Some(pb::ConnectRequest {
                    token: r.token.clone(),
                    data: bytes(&r.data),
                    subs: r
                        .subs
                        .iter()
                        .map(|(channel, s)| {
                            let s = pb::SubRecovery { recover: s.recover, epoch: s.epoch.clone(), offset: s.offset };
                            (channel.clone(), s)
                        })
                        .collect(),
                    name: r.name.clone(),
                    version: r.version.clone(),
                })
            }
            Method::Subscribe(r) => {
                out.subscribe = Some(pb::SubscribeRequest {
                    channel: r.channel.clone(),
                    token: r.token.clone(),
                    recover: r.recover,
                    epoch: r.epoch.clone(),
                    offset: r.offset,
                    data: bytes(&r.data),
                    positioned: r.positioned,
                    recoverable: r.recoverable,
                    join_leave: r.join_leave,
                    flag: r.flag,
                })
            }
            Method::Unsubscribe(r) => out.unsubscribe = Some(pb::ChannelRequest { channel: r.channel.clone() }),
            Method::Publish(r) => {
                out.publish = Some(pb::PublishRequest { channel: r.channel.clone(), data: bytes(&r.data) })
            }
            Method::Presence(r) => out.presence = Some(pb::ChannelRequest { channel: r.channel.clone() }),
            Method::PresenceStats(r) => out.presence_stats = Some(pb::ChannelRequest { channel: r.channel.clone() }),
            Method::History(r) => {
                out.history = Some(pb::HistoryRequest {
                    channel: r.channel.clone(),
                    limit: r.limit,
                    since: r.since.as_ref().map(|p| pb::StreamPosition { offset: p.offset, epoch: p.epoch.clone() }),
                    reverse: r.reverse,
                })
            }
            Method::Ping => out.ping = Some(pb::Empty {}),
            Method::Send(r) => out.send = Some(pb::DataOnly { data: bytes(&r.data) }),
            Method::Rpc(r) => out.rpc = Some(pb::RpcRequest { data: bytes(&r.data), method: r.method.clone() }),
            Method::Refresh(r) => out.refresh = Some(pb::RefreshRequest { token: r.token.clone() }),
            Method::SubRefresh(r) => {
                out.sub_refresh = Some(pb::SubRefreshRequest { channel: r.channel.clone(), token: r.token.clone() })
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Replies (server side: encode; client side: decode)

fn client_info(c: &ClientInfo) -> pb::ClientInfo {
    pb::ClientInfo {
        user: c.user.clone(),
        client: c.client.clone(),
        conn_info: bytes(&c.conn_info),
        chan_info: bytes(&c.chan_info),
    }
}

fn publication(p: &Publication) -> pb::Publication {
    pb::Publication {
        data: bytes(&p.data),
        info: p.info.as_ref().map(client_info),
        offset: p.offset,
        tags: p.tags.clone(),
        time: p.time,
    }
}

fn subscribe_result(r: &SubscribeResult) -> pb::SubscribeResult {
    pb::SubscribeResult {
        expires: r.expires,
        ttl: r.ttl,
        recoverable: r.recoverable,
        epoch: r.epoch.clone(),
        publications: r.publications.iter().map(publication).collect(),
        recovered: r.recovered,
        offset: r.offset,
        positioned: r.positioned,
        data: bytes(&r.data),
        was_recovering: r.was_recovering,
    }
}

fn push(p: &Push) -> pb::Push {
    let mut out = pb::Push { channel: p.channel.clone(), ..pb::Push::default() };
    match &p.body {
        PushBody::Pub(publ) => out.publication = Some(publication(publ)),
        PushBody::Join(info) => out.join = Some(pb::InfoOnly { info: Some(client_info(info)) }),
        PushBody::Leave(info) => out.leave = Some(pb::InfoOnly { info: Some(client_info(info)) }),
        PushBody::Unsubscribe(u) => out.unsubscribe = Some(pb::Unsubscribe { code: u.code, reason: u.reason.clone() }),
        PushBody::Message(m) => out.message = Some(pb::DataOnly { data: bytes(&m.data) }),
        PushBody::Subscribe(s) => {
            out.subscribe = Some(pb::Subscribe {
                recoverable: s.recoverable,
                epoch: s.epoch.clone(),
                offset: s.offset,
                positioned: s.positioned,
                data: bytes(&s.data),
            })
        }
        PushBody::Disconnect(d) => {
            out.disconnect = Some(pb::Disconnect { code: d.code, reason: d.reason.clone(), reconnect: d.reconnect })
        }
        PushBody::Refresh(r) => out.refresh = Some(pb::Refresh { expires: r.expires, ttl: r.ttl }),
    }
    out
}

impl From<&Reply> for pb::Reply {
    fn from(reply: &Reply) -> Self {
        let mut out = pb::Reply { id: reply.id(), ..pb::Reply::default() };
        match reply {
            Reply::Ping => {}
            Reply::Error { error, .. } => {
                out.error =
                    Some(pb::Error { code: error.code, message: error.message.clone(), temporary: error.temporary })
            }
            Reply::Push(p) => out.push = Some(push(p)),
            Reply::Result { result, .. } => match result {
                CommandResult::Connect(r) => {
                    out.connect = Some(pb::ConnectResult {
                        client: r.client.clone(),
                        version: r.version.clone(),
                        expires: r.expires,
                        ttl: r.ttl,
                        data: bytes(&r.data),
                        subs: r.subs.iter().map(|(c, s)| (c.clone(), subscribe_result(s))).collect(),
                        ping: r.ping,
                        pong: r.pong,
                        session: r.session.clone(),
                        node: r.node.clone(),
                        time: r.time,
                    })
                }
                CommandResult::Subscribe(r) => out.subscribe = Some(subscribe_result(r)),
                CommandResult::Unsubscribe => out.unsubscribe = Some(pb::Empty {}),
                CommandResult::Publish => out.publish = Some(pb::Empty {}),
                CommandResult::Presence(r) => {
                    out.presence = Some(pb::PresenceResult {
                        presence: r.presence.iter().map(|(k, c)| (k.clone(), client_info(c))).collect(),
                    })
                }
                CommandResult::PresenceStats(r) => {
                    out.presence_stats =
                        Some(pb::PresenceStatsResult { num_clients: r.num_clients, num_users: r.num_users })
                }
                CommandResult::History(r) => {
                    out.history = Some(pb::HistoryResult {
                        publications: r.publications.iter().map(publication).collect(),
                        epoch: r.epoch.clone(),
                        offset: r.offset,
                    })
                }
                CommandResult::Ping => out.ping = Some(pb::Empty {}),
                CommandResult::Rpc(r) => out.rpc = Some(pb::DataOnly { data: bytes(&r.data) }),
                CommandResult::Refresh(r) => {
                    out.refresh = Some(pb::RefreshResult {
                        client: r.client.clone(),
                        version: r.version.clone(),
                        expires: r.expires,
                        ttl: r.ttl,
                    })
                }
                CommandResult::SubRefresh(r) => {
                    out.sub_refresh = Some(pb::SubRefreshResult { expires: r.expires, ttl: r.ttl })
                }
            },
        }
        out
    }
}

/// A reply's data for a Rust client: JSON text, as the server writes it.
fn reply_data(bytes: Vec<u8>) -> Result<Option<RawJson>, &'static str> {
    json_data(bytes, "reply").map_err(|_| "reply data is not JSON")
}

fn from_client_info(c: pb::ClientInfo) -> Result<ClientInfo, &'static str> {
    Ok(ClientInfo {
        user: c.user,
        client: c.client,
        conn_info: reply_data(c.conn_info)?,
        chan_info: reply_data(c.chan_info)?,
    })
}

fn from_publication(p: pb::Publication) -> Result<Publication, &'static str> {
    Ok(Publication {
        data: reply_data(p.data)?,
        info: p.info.map(from_client_info).transpose()?,
        offset: p.offset,
        tags: p.tags,
        time: p.time,
    })
}

fn from_publications(ps: Vec<pb::Publication>) -> Result<Vec<Publication>, &'static str> {
    ps.into_iter().map(from_publication).collect()
}

fn from_subscribe_result(r: pb::SubscribeResult) -> Result<SubscribeResult, &'static str> {
    Ok(SubscribeResult {
        expires: r.expires,
        ttl: r.ttl,
        recoverable: r.recoverable,
        epoch: r.epoch,
        publications: from_publications(r.publications)?,
        recovered: r.recovered,
        offset: r.offset,
        positioned: r.positioned,
        data: reply_data(r.data)?,
        was_recovering: r.was_recovering,
    })
}

fn from_push(p: pb::Push) -> Result<Push, &'static str> {
    let mut bodies = Vec::with_capacity(1);
    if let Some(publ) = p.publication {
        bodies.push(PushBody::Pub(from_publication(publ)?));
    }
    if let Some(j) = p.join {
        bodies.push(PushBody::Join(from_client_info(j.info.unwrap_or_default())?));
    }
    if let Some(l) = p.leave {
        bodies.push(PushBody::Leave(from_client_info(l.info.unwrap_or_default())?));
    }
    bodies.extend(p.unsubscribe.map(|u| PushBody::Unsubscribe(UnsubscribePush { code: u.code, reason: u.reason })));
    if let Some(m) = p.message {
        bodies.push(PushBody::Message(MessagePush { data: reply_data(m.data)? }));
    }
    if let Some(s) = p.subscribe {
        bodies.push(PushBody::Subscribe(SubscribePush {
            recoverable: s.recoverable,
            epoch: s.epoch,
            offset: s.offset,
            positioned: s.positioned,
            data: reply_data(s.data)?,
        }));
    }
    bodies.extend(
        p.disconnect
            .map(|d| PushBody::Disconnect(DisconnectPush { code: d.code, reason: d.reason, reconnect: d.reconnect })),
    );
    bodies.extend(p.refresh.map(|r| PushBody::Refresh(RefreshPush { expires: r.expires, ttl: r.ttl })));
    match (bodies.pop(), bodies.is_empty()) {
        (Some(body), true) => Ok(Push { channel: p.channel, body }),
        (Some(_), false) => Err("push with more than one kind"),
        (None, _) => Err("push of no known kind"),
    }
}

impl TryFrom<pb::Reply> for Reply {
    type Error = &'static str;

    fn try_from(r: pb::Reply) -> Result<Self, &'static str> {
        let wire = WireReply {
            id: r.id,
            error: r.error.map(|e| ErrorReply { code: e.code, message: e.message, temporary: e.temporary }),
            push: r.push.map(from_push).transpose()?,
            connect: r
                .connect
                .map(|c| {
                    Ok::<_, &'static str>(ConnectResult {
                        client: c.client,
                        version: c.version,
                        expires: c.expires,
                        ttl: c.ttl,
                        data: reply_data(c.data)?,
                        subs: c
                            .subs
                            .into_iter()
                            .map(|(k, s)| from_subscribe_result(s).map(|s| (k, s)))
                            .collect::<Result<_, _>>()?,
                        ping: c.ping,
                        pong: c.pong,
                        session: c.session,
                        node: c.node,
                        time: c.time,
                    })
                })
                .transpose()?,
            subscribe: r.subscribe.map(from_subscribe_result).transpose()?,
            unsubscribe: r.unsubscribe.map(|_| Default::default()),
            publish: r.publish.map(|_| Default::default()),
            presence: r
                .presence
                .map(|p| {
                    p.presence
                        .into_iter()
                        .map(|(k, c)| from_client_info(c).map(|c| (k, c)))
                        .collect::<Result<_, _>>()
                        .map(|presence| PresenceResult { presence })
                })
                .transpose()?,
            presence_stats: r
                .presence_stats
                .map(|s| PresenceStatsResult { num_clients: s.num_clients, num_users: s.num_users }),
            history: r
                .history
                .map(|h| {
                    Ok::<_, &'static str>(HistoryResult {
                        publications: from_publications(h.publications)?,
                        epoch: h.epoch,
                        offset: h.offset,
                    })
                })
                .transpose()?,
            ping: r.ping.map(|_| Default::default()),
            rpc: r.rpc.map(|d| reply_data(d.data).map(|data| RpcResult { data })).transpose()?,
            refresh: r.refresh.map(|x| RefreshResult {
                client: x.client,
                version: x.version,
                expires: x.expires,
                ttl: x.ttl,
            }),
            sub_refresh: r.sub_refresh.map(|x| SubRefreshResult { expires: x.expires, ttl: x.ttl }),
        };
        Reply::from_wire(wire)
    }
}
