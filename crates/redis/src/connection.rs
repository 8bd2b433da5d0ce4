//! [`Conn`]: the one shared connection (a `ConnectionManager`, which reconnects with backoff),
//! the timeout and circuit check around every call, the mapping of Redis errors to core's kinds,
//! and [`lua`], which builds a script from its file.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::{TcpSettings, socket2};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ErrorKind, FromRedisValue, IntoConnectionInfo, Pipeline,
    RedisError, RedisResult, Script, ScriptInvocation, ServerErrorKind,
};
use switchboard_core::{Error, Result};

use crate::circuit::Circuit;
use crate::config::RedisConfig;

/// Helpers prepended to every script (server clock, integer formatting, session expiry).
const COMMON_LUA: &str = include_str!("../lua/common.lua");

/// Oldest Redis with everything the scripts use (`SET ... PXAT`, `ZADD ... GT`).
const MIN_VERSION: (u32, u32) = (6, 2);

/// A script from its file, with the common helpers in front. Called by SHA (`EVALSHA`); on
/// `NOSCRIPT` (e.g. after Redis restarted) redis-rs loads it and retries once.
pub(crate) fn lua(body: &str) -> Script {
    Script::new(&format!("{COMMON_LUA}{body}"))
}

/// The shared connection. Cheap to clone: the manager is an `Arc` over one multiplexed
/// connection that every caller pipelines on, and every clone shares one [`Circuit`].
#[derive(Clone)]
pub(crate) struct Conn {
    manager: ConnectionManager,
    circuit: Arc<Circuit>,
    /// For connections the manager does not multiplex (the broker's pub/sub connection).
    client: Client,
    connect_timeout: Duration,
    command_timeout: Duration,
}

impl Conn {
    /// Connects, failing with [`Error::Unavailable`] if Redis cannot be reached (and answer a
    /// PING) within `connect_timeout`, all steps included.
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Conn> {
        let deadline = tokio::time::Instant::now() + config.connect_timeout;
        let location = config.redacted_url();
        let unreachable = |why: String| Error::Unavailable(format!("redis: cannot connect to {location}: {why}"));
        let info = config
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| Error::InvalidArgument(format!("redis: url {location} is not usable: {e}")))?;
        if matches!(info.addr(), ConnectionAddr::TcpTls { .. }) {
            // redis-rs builds its TLS config on the process-wide rustls provider. Installing ring
            // explicitly keeps that unambiguous if another crate enables a second provider; an
            // error only means one is installed already.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let info = info.set_tcp_settings(tcp_settings(config.command_timeout));
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
        let no_answer = || unreachable(format!("no answer within {} ms", config.connect_timeout.as_millis()));
        match tokio::time::timeout_at(deadline, probe).await {
            Err(_) => return Err(no_answer()),
            Ok(Err(e)) if e.is_timeout() => return Err(no_answer()),
            Ok(Err(e)) if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) => {
                tracing::warn!("redis: INFO is not permitted; cannot check the server version");
            }
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(info)) => check_version(&info)?,
        }

        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            // Reconnection: 50 ms, 100 ms, ... at most 1 s apart, so service resumes within about
            // a second of Redis coming back. While the circuit is open only its probe uses the
            // manager; after a round's last try the probe's next ping starts a new round.
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(8);
        let manager =
            tokio::time::timeout_at(deadline, ConnectionManager::new_with_config(client.clone(), manager_config))
                .await
                .map_err(|_| no_answer())?
                .map_err(|e| if e.is_timeout() { no_answer() } else { unreachable(e.to_string()) })?;
        Ok(Conn {
            manager,
            // A probe ping may wait for a reconnection attempt and then for its answer.
            circuit: Circuit::new(config.connect_timeout + config.command_timeout),
            client,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
        })
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

    /// The client, with the configured TCP settings, for dedicated connections.
    pub(crate) fn client(&self) -> &Client {
        &self.client
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
        let mut conn = self.manager.clone();
        self.timed(op, invocation.invoke_async(&mut conn)).await
    }

    /// Runs many invocations of one script in one pipeline: one round trip, each invocation
    /// atomic on its own (so each may address its own slot). Pipelined `EVALSHA` does not load
    /// the script on `NOSCRIPT`; then nothing ran (every call is the same script), so this loads
    /// it and sends the pipeline once more.
    pub(crate) async fn script_batch<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        invocations: &[ScriptInvocation<'_>],
    ) -> Result<Vec<T>> {
        if invocations.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for invocation in invocations {
            pipe.invoke_script(invocation);
        }
        let mut conn = self.manager.clone();
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

    /// Runs one command.
    pub(crate) async fn cmd<T: FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> Result<T> {
        let mut conn = self.manager.clone();
        self.timed(op, cmd.query_async(&mut conn)).await
    }

    /// Runs a pipeline (one round trip; not atomic unless built with `.atomic()`).
    pub(crate) async fn pipe<T: FromRedisValue>(&self, op: &'static str, pipe: &Pipeline) -> Result<T> {
        let mut conn = self.manager.clone();
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
            Ok(Err(e)) => Err(map_error(op, &e)),
            Err(_) => Err(self.lost(no_answer())),
        }
    }

    /// Opens the circuit for `why` and returns it as the call's error.
    fn lost(&self, why: String) -> Error {
        self.circuit.trip(&self.manager, &why);
        Error::Unavailable(why)
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

/// Checks `redis_version` in an `INFO server` reply against [`MIN_VERSION`].
fn check_version(info: &str) -> Result<()> {
    let Some(version) = info.lines().find_map(|l| l.strip_prefix("redis_version:")) else {
        return Ok(());
    };
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_VERSION {
        return Err(Error::Unavailable(format!(
            "redis: server version {} is too old; Switchboard needs Redis {}.{} or later",
            version.trim(),
            MIN_VERSION.0,
            MIN_VERSION.1
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_servers_are_refused() {
        assert!(check_version("# Server\r\nredis_version:7.0.15\r\n").is_ok());
        assert!(check_version("redis_version:6.2.0\r\n").is_ok());
        assert!(check_version("redis_version:6.0.9\r\n").unwrap_err().to_string().contains("6.0.9"));
        assert!(check_version("no version here").is_ok());
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
