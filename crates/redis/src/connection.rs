//! [`Conn`]: the one shared connection of the engine on any topology ([`Backend`]: a standalone
//! `ConnectionManager`, which reconnects with backoff; a redis-rs cluster connection, which
//! routes each command to its slot's master and follows slot moves; or a master found through
//! Sentinel, replaced when the Sentinels name another), the timeout and circuit check around
//! every call, the mapping of Redis errors to core's kinds, and [`lua`], which builds a script
//! from its file.

use std::future::Future;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::io::tcp::{TcpSettings, socket2};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, FromRedisValue, IntoConnectionInfo,
    Pipeline, RedisError, RedisFuture, RedisResult, Script, ScriptInvocation, ServerErrorKind, Value,
};
use switchboard_core::{Error, Result};

use crate::circuit::Circuit;
use crate::config::{RedisConfig, Topology, parse_host_port};

/// Helpers prepended to every script (server clock, integer formatting, session expiry).
const COMMON_LUA: &str = include_str!("../lua/common.lua");

/// Oldest Redis with everything the scripts use (`SET ... PXAT`, `ZADD ... GT`).
const MIN_VERSION: (u32, u32) = (6, 2);
/// Oldest Redis a Cluster needs: live delivery is sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`).
pub(crate) const MIN_CLUSTER_VERSION: (u32, u32) = (7, 0);

/// A script from its file, with the common helpers in front. Called by SHA (`EVALSHA`); on
/// `NOSCRIPT` (e.g. after Redis restarted) redis-rs loads it and retries once.
pub(crate) fn lua(body: &str) -> Script {
    Script::new(&format!("{COMMON_LUA}{body}"))
}

/// The shared connection. Cheap to clone: the backend is an `Arc` over multiplexed connections
/// that every caller pipelines on, and every clone shares one [`Circuit`].
#[derive(Clone)]
pub(crate) struct Conn {
    /// The connection once made: set at once by [`Conn::connect`], by the background connector
    /// of [`Conn::connect_in_background`] when Redis first answers. Calls before that fail at
    /// once (the circuit is open meanwhile).
    backend: Arc<OnceLock<Backend>>,
    /// Whether the topology is a Redis Cluster (known from the settings, before connecting).
    cluster: bool,
    /// Whether the topology is Sentinel.
    sentinel: bool,
    circuit: Arc<Circuit>,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// [`RedisConfig::wait_replicas`].
    wait_replicas: u32,
}

/// The data connection of one topology.
#[derive(Clone)]
pub(crate) enum Backend {
    /// One server.
    Standalone {
        manager: ConnectionManager,
        /// For connections the manager does not multiplex (the broker's pub/sub connection).
        client: Arc<Client>,
    },
    /// A Redis Cluster: every command goes to the master of its first key's slot.
    Cluster {
        connection: ClusterConnection,
        /// The seed nodes, for the broker's own cluster connection (RESP3, sharded pub/sub:
        /// `SSUBSCRIBE` on each channel's shard).
        seeds: Arc<Vec<redis::ConnectionInfo>>,
        /// The settings of the data connection, which the broker's connection shares.
        timeouts: (Duration, Duration),
    },
    /// The master the Sentinels name now.
    Sentinel(Arc<SentinelLink>),
}

/// One call's connection: whatever the backend multiplexes on now.
#[derive(Clone)]
pub(crate) enum Handle {
    Manager(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Manager(c) => c.req_packed_command(cmd),
            Handle::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Handle::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Manager(c) => c.get_db(),
            Handle::Cluster(c) => c.get_db(),
        }
    }
}

impl Backend {
    /// The connection for one call.
    pub(crate) fn handle(&self) -> Handle {
        match self {
            Backend::Standalone { manager, .. } => Handle::Manager(manager.clone()),
            Backend::Cluster { connection, .. } => Handle::Cluster(connection.clone()),
            Backend::Sentinel(link) => Handle::Manager(link.current().1),
        }
    }

    /// A client for a dedicated (pub/sub) connection to the one server, or to the Sentinels'
    /// master now; `None` on a Cluster, where the broker uses [`Backend::sharded_pubsub`].
    pub(crate) fn pubsub_client(&self) -> Option<Client> {
        match self {
            Backend::Standalone { client, .. } => Some(Client::clone(client)),
            Backend::Cluster { .. } => None,
            Backend::Sentinel(link) => Some(link.current().0),
        }
    }

    /// On a Cluster, a connection of the broker's own (RESP3) whose pub/sub pushes go to
    /// `pushes`: `SSUBSCRIBE` goes to each channel's shard, and redis-rs resubscribes after a
    /// reconnection or a slot move (announced by a `Disconnection` push or an unasked
    /// `SUNSUBSCRIBE`). `None` for the other topologies.
    pub(crate) async fn sharded_pubsub(
        &self,
        pushes: tokio::sync::mpsc::UnboundedSender<redis::PushInfo>,
    ) -> Option<RedisResult<ClusterConnection>> {
        let Backend::Cluster { seeds, timeouts: (connect_timeout, command_timeout), .. } = self else { return None };
        let client = ClusterClientBuilder::new(seeds.iter().cloned())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(*connect_timeout)
            .response_timeout(*command_timeout)
            .tcp_settings(tcp_settings(*command_timeout))
            .retries(3)
            .min_retry_wait(50)
            .max_retry_wait(1000)
            .build();
        Some(match client {
            Ok(client) => client.get_async_connection().await,
            Err(e) => Err(e),
        })
    }

    /// One probe of a lost connection: for Sentinel, first asks the Sentinels where the master
    /// is now (and moves there); then a PING. The standalone and cluster connections reconnect
    /// by themselves, which the PING waits for.
    pub(crate) async fn probe(&self) -> RedisResult<()> {
        if let Backend::Sentinel(link) = self {
            link.follow().await?;
            // A PING on a master that died waits out the connection manager's reconnection
            // attempts (seconds). When the link moves meanwhile (the `+switch-master` watch
            // found the promoted replica), that PING is dropped for one on the new master, so
            // calls are served again as soon as the Sentinels name it.
            loop {
                // Taken before reading the link, so a move in between is not missed.
                let moved = link.moved.notified();
                let (_, mut manager) = link.current();
                let ping = redis::cmd("PING");
                tokio::select! {
                    outcome = ping.query_async::<()>(&mut manager) => return outcome,
                    () = moved => {}
                }
            }
        }
        let mut handle = self.handle();
        let ping = redis::cmd("PING");
        match &mut handle {
            // Any one node answering means the cluster connection works; slots whose master is
            // down fail on their own until the cluster promotes a replica.
            Handle::Cluster(c) => c
                .route_command(
                    ping,
                    redis::cluster_routing::RoutingInfo::SingleNode(
                        redis::cluster_routing::SingleNodeRoutingInfo::Random,
                    ),
                )
                .await
                .map(drop),
            Handle::Manager(c) => ping.query_async::<()>(c).await,
        }
    }
}

/// The master of a Sentinel deployment, and how to find it again. On every probe of a lost
/// connection (refused, reset, timed out, or `READONLY` from a master demoted to replica), the
/// Sentinels are asked again and, when they name another address, a new connection to it
/// replaces the old one.
pub(crate) struct SentinelLink {
    sentinels: Vec<ConnectionInfo>,
    master_name: String,
    /// The data nodes' settings (credentials, database, TLS), with the master's address to fill.
    template: ConnectionInfo,
    manager_config: ConnectionManagerConfig,
    connect_timeout: Duration,
    /// The master's client and connection now.
    current: RwLock<(Client, ConnectionManager, ConnectionAddr)>,
    /// Woken whenever `current` moves to another master (see [`Backend::probe`]).
    moved: tokio::sync::Notify,
}

impl SentinelLink {
    fn current(&self) -> (Client, ConnectionManager) {
        let guard = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (guard.0.clone(), guard.1.clone())
    }

    /// Asks each Sentinel in turn for the master's address; the first answer wins.
    async fn ask(&self) -> RedisResult<ConnectionAddr> {
        ask_sentinels(&self.sentinels, &self.master_name, &self.template, self.connect_timeout).await
    }

    /// Moves to the address the Sentinels name, when it changed.
    async fn follow(&self) -> RedisResult<()> {
        let addr = self.ask().await?;
        let known = self.current.read().unwrap_or_else(PoisonError::into_inner).2.clone();
        if addr == known {
            return Ok(());
        }
        let (client, manager) =
            connect_master(&self.template, &addr, &self.manager_config, self.connect_timeout).await?;
        tracing::warn!(master = %self.master_name, address = %addr, "redis: sentinel: following the master to its new address");
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (client, manager, addr);
        self.moved.notify_waiters();
        Ok(())
    }
}

/// Listens for the Sentinels' `+switch-master` event of the link's master (on one Sentinel at a
/// time, the next one when its connection ends) and moves the link to the new master at once,
/// rather than when a call first fails on the old one. Ends when the link is dropped (only a
/// `Weak` is held between events); a plain async fn, so whoever owns the engine's background
/// work can drive it.
pub(crate) async fn watch_switch_master(link: std::sync::Weak<SentinelLink>) {
    let mut attempt = 0usize;
    loop {
        let (sentinel, master_name) = match link.upgrade() {
            Some(link) => (link.sentinels[attempt % link.sentinels.len()].clone(), link.master_name.clone()),
            None => return,
        };
        attempt = attempt.wrapping_add(1);
        let subscribed = async {
            let mut pubsub = Client::open(sentinel)?.get_async_pubsub().await?;
            pubsub.subscribe("+switch-master").await?;
            Ok::<_, RedisError>(pubsub)
        };
        if let Ok(Ok(mut pubsub)) = tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            let mut messages = pubsub.on_message();
            while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                // `<name> <old ip> <old port> <new ip> <new port>`
                let payload: String = message.get_payload().unwrap_or_default();
                if payload.split(' ').next() != Some(master_name.as_str()) {
                    continue;
                }
                let Some(link) = link.upgrade() else { return };
                if let Err(e) = link.follow().await {
                    tracing::debug!(error = %e, "redis: sentinel: +switch-master seen; the new master is not ready yet");
                }
            }
        }
        if link.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `SENTINEL get-master-addr-by-name` on each Sentinel in turn; the first answer wins.
pub(crate) async fn ask_sentinels(
    sentinels: &[ConnectionInfo],
    master_name: &str,
    template: &ConnectionInfo,
    timeout: Duration,
) -> RedisResult<ConnectionAddr> {
    let mut last_error: RedisError = (ErrorKind::Io, "no sentinel answered").into();
    for sentinel in sentinels {
        let ask = async {
            let client = Client::open(sentinel.clone())?;
            let config =
                AsyncConnectionConfig::new().set_connection_timeout(Some(timeout)).set_response_timeout(Some(timeout));
            let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(master_name)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match tokio::time::timeout(timeout, ask).await {
            Ok(Ok(Some((host, port)))) => {
                return Ok(match template.addr() {
                    ConnectionAddr::TcpTls { insecure, .. } => {
                        ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: None }
                    }
                    _ => ConnectionAddr::Tcp(host, port),
                });
            }
            Ok(Ok(None)) => {
                last_error = (ErrorKind::Io, "a sentinel does not know the master", master_name.to_owned()).into();
            }
            Ok(Err(e)) => last_error = e,
            Err(_) => last_error = (ErrorKind::Io, "a sentinel did not answer in time").into(),
        }
    }
    Err(last_error)
}

/// Connects to the master at `addr` and checks that it is one (`ROLE`): right after a failover a
/// Sentinel may still name the old master for a moment.
async fn connect_master(
    template: &ConnectionInfo,
    addr: &ConnectionAddr,
    manager_config: &ConnectionManagerConfig,
    timeout: Duration,
) -> RedisResult<(Client, ConnectionManager)> {
    let client = Client::open(template.clone().set_addr(addr.clone()))?;
    let connect = async {
        let mut manager = ConnectionManager::new_with_config(client.clone(), manager_config.clone()).await?;
        let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut manager).await?;
        match role.first() {
            Some(Value::BulkString(role)) if role.as_slice() == b"master" => Ok::<_, RedisError>(manager),
            _ => Err((ErrorKind::Server(ServerErrorKind::ReadOnly), "the named master is not a master (yet)").into()),
        }
    };
    let manager = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    Ok((client, manager))
}

/// `host:port` or a URL as connection settings: a `host:port` entry takes `template`'s scheme
/// (TLS or not) and credentials.
pub(crate) fn node_info(entry: &str, template: &ConnectionInfo) -> RedisResult<ConnectionInfo> {
    if entry.contains("://") {
        return entry.into_connection_info();
    }
    let (host, port) = parse_host_port(entry).ok_or((ErrorKind::InvalidClientConfig, "not host:port"))?;
    let addr = match template.addr() {
        ConnectionAddr::TcpTls { insecure, .. } => {
            ConnectionAddr::TcpTls { host, port, insecure: *insecure, tls_params: None }
        }
        _ => ConnectionAddr::Tcp(host, port),
    };
    Ok(template.clone().set_addr(addr))
}

/// The Sentinels' connection settings, with the Sentinels' own password.
pub(crate) fn sentinel_infos(config: &RedisConfig) -> RedisResult<Vec<ConnectionInfo>> {
    let plain = "redis://127.0.0.1".into_connection_info()?;
    config
        .sentinels
        .iter()
        .map(|s| {
            let sentinel = node_info(s, &plain)?;
            let mut redis = sentinel.redis_settings().clone();
            if let Some(password) = &config.sentinel_password {
                redis = redis.set_password(password);
            }
            Ok(sentinel.set_redis_settings(redis))
        })
        .collect()
}

impl Conn {
    /// On Sentinel, the loop that follows `+switch-master` ([`watch_switch_master`]), for the
    /// node to run; `None` on the other topologies.
    /// Before the first connection, the loop first waits for it.
    pub(crate) fn sentinel_watch(&self) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        if !self.sentinel {
            return None;
        }
        let slot = Arc::downgrade(&self.backend);
        let circuit = Arc::downgrade(&self.circuit);
        Some(async move {
            loop {
                let Some(backend) = slot.upgrade() else { return };
                if let Some(Backend::Sentinel(link)) = backend.get() {
                    let link = Arc::downgrade(link);
                    drop(backend);
                    return watch_switch_master(link).await;
                }
                drop(backend);
                let Some(circuit) = circuit.upgrade() else { return };
                let connected = circuit.closed();
                // Checked again after registering, so a connection made meanwhile is not missed.
                if slot.upgrade().is_some_and(|b| b.get().is_some()) {
                    continue;
                }
                connected.await;
            }
        })
    }

    /// Connects, failing with [`Error::Unavailable`] if Redis cannot be reached (and answer a
    /// PING) within `connect_timeout`, all steps included.
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Conn> {
        Ok(Conn::new(config, Some(open_backend(config).await?)))
    }

    /// Connects in the background: returns at once with calls failing with
    /// [`Error::Unavailable`] (the circuit open) until Redis first answers, then serves. Tries
    /// once before returning (so a reachable Redis serves from the first call); after that a
    /// task retries with backoff (50 ms doubling to 1 s), logging each failure, until it
    /// connects or the engine is dropped. Settings that cannot work (a bad URL) fail at once.
    pub(crate) async fn connect_in_background(config: &RedisConfig) -> Result<Conn> {
        match open_backend(config).await {
            Ok(backend) => Ok(Conn::new(config, Some(backend))),
            Err(e @ Error::InvalidArgument(_)) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "redis: not reachable yet; answering 503 until it is, retrying in the background");
                let conn = Conn::new(config, None);
                tokio::spawn(connect_until_reached(
                    Arc::downgrade(&conn.backend),
                    Arc::downgrade(&conn.circuit),
                    config.clone(),
                ));
                Ok(conn)
            }
        }
    }

    /// The connection over `backend`; with none yet, the circuit starts open (with no probe:
    /// whoever installs the backend closes it).
    fn new(config: &RedisConfig, backend: Option<Backend>) -> Conn {
        let topology = config.topology();
        // A probe ping may wait for a reconnection attempt and then for its answer.
        let probe_timeout = config.connect_timeout + config.command_timeout;
        let circuit = match backend {
            Some(_) => Circuit::new(probe_timeout),
            None => Circuit::new_open(probe_timeout),
        };
        let slot = Arc::new(OnceLock::new());
        if let Some(backend) = backend {
            let _ = slot.set(backend);
        }
        Conn {
            backend: slot,
            cluster: matches!(topology, Topology::Cluster),
            sentinel: matches!(topology, Topology::Sentinel),
            circuit,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
            wait_replicas: config.wait_replicas,
        }
    }

    /// Whether the connection is believed up: false from the first connection loss a call sees
    /// until a probe's PING is answered again (calls meanwhile fail at once).
    pub(crate) fn connected(&self) -> bool {
        !self.circuit.is_open()
    }

    /// The circuit every clone shares.
    pub(crate) fn circuit(&self) -> &Arc<Circuit> {
        &self.circuit
    }

    /// Whether this is a Redis Cluster, where one script or pipeline addresses one slot.
    pub(crate) fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// The connection behind once made, for dedicated (pub/sub) connections.
    pub(crate) fn backend_slot(&self) -> &Arc<OnceLock<Backend>> {
        &self.backend
    }

    /// The connection of one call; [`Error::Unavailable`] before the first connection.
    fn handle(&self, op: &'static str) -> Result<Handle> {
        match self.backend.get() {
            Some(backend) => Ok(backend.handle()),
            None => Err(Error::Unavailable(format!("redis: {op}: not connected yet"))),
        }
    }

    /// Longest wait for a connection.
    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// Longest wait for one call.
    pub(crate) fn command_timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Runs a script by SHA (loading it on `NOSCRIPT`).
    pub(crate) async fn script<T: FromRedisValue>(
        &self,
        op: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T> {
        let mut conn = self.handle(op)?;
        self.timed(op, invocation.invoke_async(&mut conn)).await
    }

    /// Runs many invocations of one script in one pipeline: one round trip, each invocation
    /// atomic on its own (so each may address its own slot). Pipelined `EVALSHA` does not load
    /// the script on `NOSCRIPT`; then nothing ran (every call is the same script), so this loads
    /// it and sends the pipeline once more. On a cluster, where one pipeline addresses one slot,
    /// the invocations are sent at once, each to its slot's master; the cluster connection
    /// writes those bound for one node back to back on its connection, so each shard still
    /// gets them pipelined.
    pub(crate) async fn script_batch<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        invocations: &[ScriptInvocation<'_>],
    ) -> Result<Vec<T>> {
        if invocations.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(Backend::Cluster { connection, .. }) = self.backend.get() {
            let calls = invocations.iter().map(|invocation| {
                let mut conn = connection.clone();
                async move { invocation.invoke_async::<T>(&mut conn).await }
            });
            let call = join_all(calls).map(|results| results.into_iter().collect::<RedisResult<Vec<T>>>());
            return self.timed(op, call).await;
        }
        let mut pipe = redis::pipe();
        for invocation in invocations {
            pipe.invoke_script(invocation);
        }
        let mut conn = self.handle(op)?;
        let call = async {
            match pipe.query_async::<Vec<T>>(&mut conn).await {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    script.load_async(&mut conn).await?;
                    pipe.query_async(&mut conn).await
                }
                other => other,
            }
        };
        self.timed(op, call).await
    }

    /// With [`RedisConfig::wait_replicas`] set, waits until that many replicas have every write
    /// this connection sent so far to the master of `key`'s slot (`WAIT`), and fails with
    /// [`Error::Unavailable`] when fewer confirm within three quarters of the command timeout.
    /// Call it right after a write that must survive a failover; without the setting it returns
    /// at once.
    pub(crate) async fn replicated(&self, op: &'static str, key: &str) -> Result<()> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        // `WAIT` blocks the connection it is sent on, which is the node's shared connection to
        // that master: every call queued behind it waits too. With fewer replicas online than
        // required (right after a failover promoted the only replica, or while one resyncs) it
        // could only time out, stalling the node for its whole bound on each waited write; so
        // `ROLE` (which lists the online replicas) is asked first, and the write fails at once.
        // A server that refuses `ROLE` (an ACL without it) is left to `WAIT`.
        let online = match self.on_master_of::<Vec<Value>>(op, key, redis::cmd("ROLE")).await {
            Ok(role) => match role.as_slice() {
                [Value::BulkString(kind), _, Value::Array(replicas), ..] if kind.as_slice() == b"master" => {
                    replicas.len()
                }
                // Not a master (any more): nothing written there can be confirmed.
                _ => 0,
            },
            Err(e @ Error::Unavailable(_)) => return Err(e),
            Err(_) => usize::MAX,
        };
        if online < self.wait_replicas as usize {
            return Err(Error::Unavailable(format!(
                "redis: {op}: written, but not confirmed: only {online} of {} replicas are online",
                self.wait_replicas
            )));
        }
        let timeout_ms = (self.command_timeout.as_millis() as u64 * 3 / 4).max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(self.wait_replicas).arg(timeout_ms);
        let confirmed: u32 = self.on_master_of(op, key, wait).await?;
        if confirmed < self.wait_replicas {
            return Err(Error::Unavailable(format!(
                "redis: {op}: written, but only {confirmed} of {} replicas confirmed it within {timeout_ms} ms",
                self.wait_replicas
            )));
        }
        Ok(())
    }

    /// Runs `cmd` on the shared connection to the master of `key`'s slot (on a Cluster, routed
    /// there; elsewhere there is one master).
    async fn on_master_of<T: FromRedisValue>(&self, op: &'static str, key: &str, cmd: Cmd) -> Result<T> {
        match self.backend.get() {
            // WAIT counts the writes of the connection it is sent on: the one to the key's master.
            Some(Backend::Cluster { connection, .. }) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::new(crate::keys::slot(key), SlotAddr::Master);
                let mut connection = connection.clone();
                let call = async move {
                    let reply = connection
                        .route_command(cmd, RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)))
                        .await?;
                    T::from_redis_value(reply).map_err(RedisError::from)
                };
                self.timed(op, call).await
            }
            _ => self.cmd(op, &cmd).await,
        }
    }

    /// Runs one command.
    pub(crate) async fn cmd<T: FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> Result<T> {
        let mut conn = self.handle(op)?;
        self.timed(op, cmd.query_async(&mut conn)).await
    }

    /// Runs a pipeline (one round trip; not atomic unless built with `.atomic()`). On a cluster
    /// every command of it must address one slot.
    pub(crate) async fn pipe<T: FromRedisValue>(&self, op: &'static str, pipe: &Pipeline) -> Result<T> {
        let mut conn = self.handle(op)?;
        self.timed(op, pipe.query_async(&mut conn)).await
    }

    /// Runs `call` unless the circuit is open, bounded by the command timeout, and opens the
    /// circuit when the call shows the connection lost. Ends at once, too, when the circuit opens
    /// while it waits (another call saw the loss first).
    // Cancellation: dropping a multiplexed call on timeout is safe; its reply is discarded
    // when it arrives, and the connection stays usable. Cost while closed: one atomic load, plus
    // the `Notified` registration (an uncontended lock, like the timeout's timer entry).
    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = RedisResult<T>>) -> Result<T> {
        let opened = self.circuit.opened();
        if self.circuit.is_open() {
            if self.circuit.is_shut() {
                return Err(Error::Unavailable(format!("redis: {op}: the engine is closed")));
            }
            return Err(Error::Unavailable(format!("redis: {op}: not connected; reconnecting")));
        }
        let no_answer = || format!("redis: {op}: no answer within {} ms", self.command_timeout.as_millis());
        let outcome = tokio::select! {
            // Biased: a call that completed is reported as it went, even if the circuit opened.
            biased;
            outcome = tokio::time::timeout(self.command_timeout, call) => outcome,
            () = opened => return Err(Error::Unavailable(format!("redis: {op}: connection lost"))),
        };
        match outcome {
            Ok(Ok(value)) => Ok(value),
            // The connection's own response timeout is the same duration and may fire first.
            Ok(Err(e)) if e.is_timeout() => Err(self.lost(no_answer())),
            Ok(Err(e)) if is_connection_loss(&e) => Err(self.lost(format!("redis: {op}: {e}"))),
            // A Sentinel master demoted to replica: find the new master.
            Ok(Err(e)) if self.sentinel && e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                Err(self.lost(format!("redis: {op}: {e}")))
            }
            Ok(Err(e)) => Err(map_error(op, &e)),
            Err(_) => Err(self.lost(no_answer())),
        }
    }

    /// Opens the circuit for `why` and returns it as the call's error.
    fn lost(&self, why: String) -> Error {
        if let Some(backend) = self.backend.get() {
            self.circuit.trip(backend, &why);
        }
        Error::Unavailable(why)
    }
}

/// The data connection of `config`'s topology, failing with [`Error::Unavailable`] if Redis
/// cannot be reached (and answer a PING) within `connect_timeout`, all steps included.
async fn open_backend(config: &RedisConfig) -> Result<Backend> {
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    let location = config.redacted_location();
    let unreachable = |why: String| Error::Unavailable(format!("redis: cannot connect to {location}: {why}"));
    let info = config
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| Error::InvalidArgument(format!("redis: url {location} is not usable: {e}")))?;
    let tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. })
        || config.cluster_nodes.iter().chain(&config.sentinels).any(|n| n.starts_with("rediss://"));
    if tls {
        // redis-rs builds its TLS config on the process-wide rustls provider. Installing ring
        // explicitly keeps that unambiguous if another crate enables a second provider; an
        // error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let info = info.set_tcp_settings(tcp_settings(config.command_timeout));
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        // Reconnection: 50 ms, 100 ms, ... at most 1 s apart, so service resumes within about
        // a second of Redis coming back. While the circuit is open only its probe uses the
        // manager; after a round's last try the probe's next ping starts a new round.
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(1))
        .set_number_of_retries(8);
    let no_answer = || unreachable(format!("no answer within {} ms", config.connect_timeout.as_millis()));
    let backend = match config.topology() {
        Topology::Standalone => None,
        Topology::Cluster => {
            let nodes = config
                .cluster_nodes
                .iter()
                .map(|n| node_info(n, &info).map(|i| i.set_tcp_settings(tcp_settings(config.command_timeout))))
                .collect::<RedisResult<Vec<_>>>()
                .map_err(|e| Error::InvalidArgument(format!("redis: cluster_nodes: {e}")))?;
            let seeds = nodes.clone();
            let client = ClusterClientBuilder::new(nodes)
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .tcp_settings(tcp_settings(config.command_timeout))
                .retries(3)
                .min_retry_wait(50)
                .max_retry_wait(1000)
                .build()
                .map_err(|e| unreachable(e.to_string()))?;
            let connection = tokio::time::timeout_at(deadline, client.get_async_connection())
                .await
                .map_err(|_| no_answer())?
                .map_err(|e| unreachable(e.to_string()))?;
            let timeouts = (config.connect_timeout, config.command_timeout);
            Some(Backend::Cluster { connection, seeds: Arc::new(seeds), timeouts })
        }
        Topology::Sentinel => {
            let sentinels =
                sentinel_infos(config).map_err(|e| Error::InvalidArgument(format!("redis: sentinels: {e}")))?;
            let find = async {
                let addr = ask_sentinels(&sentinels, &config.sentinel_master, &info, config.connect_timeout).await?;
                let (client, manager) = connect_master(&info, &addr, &manager_config, config.connect_timeout).await?;
                Ok::<_, RedisError>((client, manager, addr))
            };
            let current = tokio::time::timeout_at(deadline, find)
                .await
                .map_err(|_| no_answer())?
                .map_err(|e| unreachable(format!("master {:?} via sentinels: {e}", config.sentinel_master)))?;
            let link = Arc::new(SentinelLink {
                sentinels,
                master_name: config.sentinel_master.clone(),
                template: info.clone(),
                manager_config: manager_config.clone(),
                connect_timeout: config.connect_timeout,
                current: RwLock::new(current),
                moved: tokio::sync::Notify::new(),
            });
            Some(Backend::Sentinel(link))
        }
    };
    if let Some(backend) = backend {
        let min = if matches!(backend, Backend::Cluster { .. }) { MIN_CLUSTER_VERSION } else { MIN_VERSION };
        let mut handle = backend.handle();
        // A cluster answers with one reply per master.
        let info_cmd = redis::cmd("INFO").arg("server").to_owned();
        match tokio::time::timeout_at(deadline, info_cmd.query_async::<Value>(&mut handle)).await {
            Err(_) => return Err(no_answer()),
            Ok(Err(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
                tracing::warn!("redis: INFO is not permitted; cannot check the server version");
            }
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(Value::Map(replies))) => {
                for (_, reply) in replies {
                    check_version(&String::from_redis_value(reply).unwrap_or_default(), min)?;
                }
            }
            Ok(Ok(reply)) => check_version(&String::from_redis_value(reply).unwrap_or_default(), min)?,
        }
        return Ok(backend);
    }
    let client = Client::open(info).map_err(|e| unreachable(e.to_string()))?;

    // One direct attempt first: its error (refused, auth, TLS) is clearer than a timeout
    // after the manager's retries.
    let probe_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.connect_timeout));
    let probe = async {
        let mut probe = client.get_multiplexed_async_connection_with_config(&probe_config).await?;
        redis::cmd("PING").query_async::<()>(&mut probe).await?;
        redis::cmd("INFO").arg("server").query_async::<String>(&mut probe).await
    };
    match tokio::time::timeout_at(deadline, probe).await {
        Err(_) => return Err(no_answer()),
        Ok(Err(e)) if e.is_timeout() => return Err(no_answer()),
        Ok(Err(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
            tracing::warn!("redis: INFO is not permitted; cannot check the server version");
        }
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Ok(Ok(info)) => check_version(&info, MIN_VERSION)?,
    }

    let manager = tokio::time::timeout_at(deadline, ConnectionManager::new_with_config(client.clone(), manager_config))
        .await
        .map_err(|_| no_answer())?
        .map_err(|e| if e.is_timeout() { no_answer() } else { unreachable(e.to_string()) })?;
    Ok(Backend::Standalone { manager, client: Arc::new(client) })
}

/// [`Conn::connect_in_background`]'s retries: opens the backend with backoff until it works,
/// then installs it and closes the circuit. Ends early when the engine is dropped.
async fn connect_until_reached(
    backend: std::sync::Weak<OnceLock<Backend>>,
    circuit: std::sync::Weak<Circuit>,
    config: RedisConfig,
) {
    let mut delay = Duration::from_millis(50);
    loop {
        tokio::time::sleep(delay).await;
        match circuit.upgrade() {
            Some(c) if !c.is_shut() => {}
            _ => return,
        }
        match open_backend(&config).await {
            Ok(opened) => {
                let (Some(slot), Some(circuit)) = (backend.upgrade(), circuit.upgrade()) else { return };
                let _ = slot.set(opened);
                tracing::info!(location = %config.redacted_location(), "redis: connected; serving calls");
                circuit.close();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "redis: not reachable yet; retrying"),
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// Whether `e` means the connection is gone or not answering, as opposed to Redis answering with
/// an error. redis-rs reports every such case (refused, reset, closed, a response timeout) as an
/// I/O error.
fn is_connection_loss(e: &RedisError) -> bool {
    e.is_io_error()
}

/// Nagle's algorithm would hold back small pipelined commands; keepalive and (on Linux) the user
/// timeout detect a peer that vanished without closing, so the manager reconnects.
fn tcp_settings(command_timeout: Duration) -> TcpSettings {
    let tcp = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(socket2::TcpKeepalive::new().with_time(Duration::from_secs(30)));
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let tcp = tcp.set_user_timeout(Duration::from_secs(10).max(command_timeout * 2));
    #[cfg(not(any(target_os = "android", target_os = "fuchsia", target_os = "linux")))]
    let _ = command_timeout;
    tcp
}

/// Maps a Redis error: anything that means "Redis cannot serve now" (I/O, connection lost,
/// loading, failover, out of memory, busy script) is [`Error::Unavailable`]; anything else (a
/// script error, an unexpected reply) is a bug, [`Error::Internal`].
pub(crate) fn map_error(op: &str, e: &RedisError) -> Error {
    let unavailable = e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::AuthenticationFailed
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::NoPerm
                )
        )
        || matches!(e.code(), Some("OOM" | "BUSY" | "MISCONF" | "NOREPLICAS" | "NOAUTH" | "WRONGPASS"));
    if unavailable {
        Error::Unavailable(format!("redis: {op}: {e}"))
    } else {
        Error::Internal(format!("redis: {op}: {e}"))
    }
}

/// Checks `redis_version` in an `INFO server` reply against `min` ([`MIN_VERSION`], or
/// [`MIN_CLUSTER_VERSION`] for the masters of a Cluster).
fn check_version(info: &str, min: (u32, u32)) -> Result<()> {
    let Some(version) = info.lines().find_map(|l| l.strip_prefix("redis_version:")) else {
        return Ok(());
    };
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < min {
        return Err(Error::Unavailable(format!(
            "redis: server version {} is too old; Switchboard needs Redis {}.{} or later{}",
            version.trim(),
            min.0,
            min.1,
            if min == MIN_CLUSTER_VERSION { " on a Cluster (sharded pub/sub)" } else { "" }
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_servers_are_refused() {
        assert!(check_version("# Server\r\nredis_version:7.0.15\r\n", MIN_VERSION).is_ok());
        assert!(check_version("redis_version:6.2.0\r\n", MIN_VERSION).is_ok());
        assert!(check_version("redis_version:6.0.9\r\n", MIN_VERSION).unwrap_err().to_string().contains("6.0.9"));
        assert!(check_version("no version here", MIN_VERSION).is_ok());
        // A Cluster needs sharded pub/sub.
        assert!(check_version("redis_version:7.0.0\r\n", MIN_CLUSTER_VERSION).is_ok());
        let refused = check_version("redis_version:6.2.14\r\n", MIN_CLUSTER_VERSION).unwrap_err().to_string();
        assert!(refused.contains("7.0") && refused.contains("Cluster"), "{refused}");
    }

    #[test]
    fn errors_map_to_core_kinds() {
        let io: RedisError = std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into();
        assert!(matches!(map_error("op", &io), Error::Unavailable(m) if m.starts_with("redis: op: ")));
        let bug: RedisError = (ErrorKind::UnexpectedReturnType, "bad reply").into();
        assert!(matches!(map_error("op", &bug), Error::Internal(_)));
    }

    #[test]
    fn only_a_lost_connection_opens_the_circuit() {
        for kind in
            [std::io::ErrorKind::ConnectionRefused, std::io::ErrorKind::ConnectionReset, std::io::ErrorKind::TimedOut]
        {
            let io: RedisError = std::io::Error::from(kind).into();
            assert!(is_connection_loss(&io), "{kind:?}");
        }
        // Redis answered, with an error: the connection is fine.
        let busy: RedisError = (ErrorKind::Server(ServerErrorKind::BusyLoading), "loading").into();
        assert!(!is_connection_loss(&busy));
        let bug: RedisError = (ErrorKind::UnexpectedReturnType, "bad reply").into();
        assert!(!is_connection_loss(&bug));
    }
}
