//! [`RedisConfig`]: where the Redis engine connects (one server, a Cluster's seed nodes or
//! Sentinels), its key prefix and its timeouts; [`Topology`], the deployment it describes.

use std::fmt;
use std::time::Duration;

use redis::{ConnectionAddr, IntoConnectionInfo};
use switchboard_core::{Error, Result};

/// Most replicas `wait_replicas` may ask for.
const MAX_WAIT_REPLICAS: u32 = 64;

/// Longest key prefix accepted.
const MAX_PREFIX_BYTES: usize = 64;

/// Settings of the Redis engine.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`; `rediss://...` for TLS, verified against
    /// the system's root certificates (`rediss://...#insecure` skips verification, e.g. for a
    /// self-signed certificate); or `redis+unix:///path?db=0&pass=...` (default
    /// `redis://127.0.0.1:6379`).
    pub url: String,
    /// Prepended to every key, so several deployments can share one Redis (default `sb:`).
    pub key_prefix: String,
    /// Longest wait for the first connection at start-up, and for each reconnection attempt
    /// (default 5 s).
    pub connect_timeout: Duration,
    /// Longest wait for any one call, including waiting for a reconnection; past it the call
    /// fails with [`Error::Unavailable`] (default 2 s).
    pub command_timeout: Duration,
    /// Seed nodes of a Redis Cluster (`host:port`, `redis://...` or `rediss://...`); any
    /// reachable one is enough to discover the cluster. Empty: not a cluster. A `host:port`
    /// entry takes the scheme (TLS or not) and credentials of `url`, which then only supplies
    /// those (a cluster has no database number).
    pub cluster_nodes: Vec<String>,
    /// Addresses of the Sentinels (`host:port` or `redis://...`) that monitor
    /// [`sentinel_master`](Self::sentinel_master). Empty: no Sentinel. The master's address
    /// replaces `url`'s host and port; `url`'s credentials, database and TLS apply to it.
    pub sentinels: Vec<String>,
    /// Name of the master the Sentinels monitor (`SENTINEL get-master-addr-by-name <name>`).
    pub sentinel_master: String,
    /// Password of the Sentinels themselves (`requirepass` of the sentinel processes), when set.
    pub sentinel_password: Option<String>,
    /// Replicas that must have a write before the writes that must survive a failover (job
    /// enqueue and completion, notification create, session create) are acknowledged: `WAIT n`
    /// after them, failing the call with [`Error::Unavailable`] when fewer replicas confirm within
    /// three quarters of `command_timeout`, and at once when the master has fewer replicas
    /// online (`ROLE`); the write itself stays. 0, the default, waits for none: replication is
    /// asynchronous, and a write acknowledged just before its master dies can be lost.
    pub wait_replicas: u32,
}

/// Which kind of Redis deployment a [`RedisConfig`] addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// One server (`url`).
    Standalone,
    /// A Redis Cluster discovered from `cluster_nodes`.
    Cluster,
    /// A master found through `sentinels`.
    Sentinel,
}

impl RedisConfig {
    /// The defaults with another URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig { url: url.into(), ..RedisConfig::default() }
    }

    /// The same settings with another key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The same settings for a Redis Cluster with these seed nodes.
    pub fn with_cluster_nodes<S: Into<String>>(mut self, nodes: impl IntoIterator<Item = S>) -> Self {
        self.cluster_nodes = nodes.into_iter().map(Into::into).collect();
        self
    }

    /// The same settings for the master `master` found through these Sentinels.
    pub fn with_sentinels<S: Into<String>>(
        mut self,
        sentinels: impl IntoIterator<Item = S>,
        master: impl Into<String>,
    ) -> Self {
        self.sentinels = sentinels.into_iter().map(Into::into).collect();
        self.sentinel_master = master.into();
        self
    }

    /// The deployment these settings address: Cluster when `cluster_nodes` is set, Sentinel when
    /// `sentinels` is, one server otherwise ([`validate`](Self::validate) refuses both).
    pub fn topology(&self) -> Topology {
        if !self.cluster_nodes.is_empty() {
            Topology::Cluster
        } else if !self.sentinels.is_empty() {
            Topology::Sentinel
        } else {
            Topology::Standalone
        }
    }

    /// Checks every setting; errors name the subsystem and the setting (`redis: ...`) and never
    /// echo a password.
    pub fn validate(&self) -> Result<()> {
        if !self.cluster_nodes.is_empty() && !self.sentinels.is_empty() {
            return Err(Error::InvalidArgument(
                "redis: cluster_nodes and sentinels are both set; a deployment is either a Cluster or under Sentinel"
                    .into(),
            ));
        }
        for (i, node) in self.cluster_nodes.iter().enumerate() {
            check_address("cluster_nodes", i, node)?;
        }
        for (i, sentinel) in self.sentinels.iter().enumerate() {
            check_address("sentinels", i, sentinel)?;
        }
        let master = self.sentinel_master.trim();
        if self.sentinels.is_empty() && (!master.is_empty() || self.sentinel_password.is_some()) {
            return Err(Error::InvalidArgument(
                "redis: sentinel_master and sentinel_password need sentinels (the Sentinels' addresses)".into(),
            ));
        }
        if !self.sentinels.is_empty()
            && (master.is_empty() || master.len() > 200 || master.chars().any(|c| !c.is_ascii_graphic()))
        {
            return Err(Error::InvalidArgument(
                "redis: sentinel_master must name the monitored master (printable ASCII, no spaces, at most 200 bytes)"
                    .into(),
            ));
        }
        if self.url.trim().is_empty() {
            return Err(Error::InvalidArgument("redis: url must not be empty".into()));
        }
        if let Err(e) = self.url.as_str().into_connection_info() {
            return Err(Error::InvalidArgument(format!("redis: url {} is not usable: {e}", redact_url(&self.url))));
        }
        if self.key_prefix.len() > MAX_PREFIX_BYTES {
            return Err(Error::InvalidArgument(format!("redis: key_prefix must be at most {MAX_PREFIX_BYTES} bytes")));
        }
        // Braces would change the hash tags that keep each script's keys on one cluster slot.
        if let Some(bad) = self.key_prefix.chars().find(|c| !c.is_ascii_graphic() || matches!(c, '{' | '}')) {
            return Err(Error::InvalidArgument(format!(
                "redis: key_prefix must be printable ASCII without spaces or braces, found {bad:?}"
            )));
        }
        if self.wait_replicas > MAX_WAIT_REPLICAS {
            return Err(Error::InvalidArgument(format!("redis: wait_replicas must be at most {MAX_WAIT_REPLICAS}")));
        }
        for (name, value) in [("connect_timeout", self.connect_timeout), ("command_timeout", self.command_timeout)] {
            if value.is_zero() || value > Duration::from_secs(3600) {
                return Err(Error::InvalidArgument(format!("redis: {name} must be between 1 ms and 1 h")));
            }
        }
        Ok(())
    }

    /// Where the engine connects, safe to log and show: the URL, `cluster <seed nodes>`, or
    /// `sentinel <master> via <sentinels>`, passwords replaced by `***`.
    pub fn redacted_location(&self) -> String {
        let list = |l: &[String]| l.iter().map(|a| redact_url(a)).collect::<Vec<_>>().join(",");
        match self.topology() {
            Topology::Standalone => self.redacted_url(),
            Topology::Cluster => format!("cluster {}", list(&self.cluster_nodes)),
            Topology::Sentinel => format!("sentinel {} via {}", self.sentinel_master, list(&self.sentinels)),
        }
    }

    /// The URL with any password replaced by `***`, safe to log and show.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "sb:".into(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
            cluster_nodes: Vec::new(),
            sentinels: Vec::new(),
            sentinel_master: String::new(),
            sentinel_password: None,
            wait_replicas: 0,
        }
    }
}

// By hand, so the URL's password never reaches a log.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("cluster_nodes", &self.cluster_nodes.iter().map(|n| redact_url(n)).collect::<Vec<_>>())
            .field("sentinels", &self.sentinels.iter().map(|n| redact_url(n)).collect::<Vec<_>>())
            .field("sentinel_master", &self.sentinel_master)
            .field("sentinel_password", &self.sentinel_password.as_ref().map(|_| "***"))
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

/// Checks entry `i` (counted from 1 in the message) of the address list `setting`: `host:port`,
/// `redis://...` or `rediss://...`.
fn check_address(setting: &str, i: usize, address: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "redis: {setting}: entry {} ({}) {why}; expected host:port, redis://host:port or rediss://host:port",
            i + 1,
            redact_url(address)
        )))
    };
    let address = address.trim();
    if address.is_empty() {
        return bad("is empty");
    }
    if address.contains("://") {
        if !(address.starts_with("redis://") || address.starts_with("rediss://")) {
            return bad("has an unsupported scheme");
        }
        return match address.into_connection_info() {
            Ok(info) if matches!(info.addr(), ConnectionAddr::Tcp(..) | ConnectionAddr::TcpTls { .. }) => Ok(()),
            Ok(_) => bad("is not a TCP address"),
            Err(_) => bad("is not a usable URL"),
        };
    }
    match parse_host_port(address) {
        Some(_) => Ok(()),
        None => bad("is not host:port"),
    }
}

/// `host:port` (IPv6 as `[::1]:port`) split, when well formed.
pub(crate) fn parse_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    let valid =
        !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    valid.then(|| (host.to_owned(), port))
}

/// Replaces the password of `scheme://user:password@host` (the whole user info when it has no
/// `:`, since some write `redis://password@host`) and `pass` / `password` query values by `***`.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&authority);
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redact_url("redis://:s3cret@host:6379/1"), "redis://:***@host:6379/1");
        assert_eq!(redact_url("rediss://app:s3cret@host"), "rediss://app:***@host");
        assert_eq!(redact_url("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redact_url("redis://a:b@c@host/2"), "redis://a:***@host/2");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        let config = RedisConfig::new("redis://u:s3cret@h");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn validation_names_the_subsystem() {
        assert!(RedisConfig::default().validate().is_ok());
        assert!(RedisConfig::new("redis+unix:///tmp/r.sock").validate().is_ok());
        for bad in [
            RedisConfig::new(""),
            RedisConfig::new("http://host"),
            RedisConfig::new("redis://:s3cret@host:notaport"),
            RedisConfig::default().with_key_prefix("a{b}"),
            RedisConfig::default().with_key_prefix("a b"),
            RedisConfig { command_timeout: Duration::ZERO, ..RedisConfig::default() },
            RedisConfig::default().with_cluster_nodes(["a:1"]).with_sentinels(["b:2"], "m"),
            RedisConfig::default().with_cluster_nodes(["a:1", "nope"]),
            RedisConfig::default().with_cluster_nodes(["a:0"]),
            RedisConfig::default().with_cluster_nodes([""]),
            RedisConfig::default().with_cluster_nodes(["http://a:1"]),
            RedisConfig::default().with_cluster_nodes(["redis://:s3cret@a:x"]),
            RedisConfig::default().with_sentinels(["a:26379"], ""),
            RedisConfig::default().with_sentinels(["a:26379", "a b:1"], "m"),
            RedisConfig { sentinel_master: "m".into(), ..RedisConfig::default() },
            RedisConfig { wait_replicas: 65, ..RedisConfig::default() },
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.starts_with("redis: "), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn topology_follows_the_address_lists() {
        assert_eq!(RedisConfig::default().topology(), Topology::Standalone);
        let cluster = RedisConfig::default().with_cluster_nodes(["10.0.0.1:7000", "redis://h:7001", "rediss://h:7002"]);
        assert!(cluster.validate().is_ok());
        assert_eq!(cluster.topology(), Topology::Cluster);
        let sentinel = RedisConfig::default().with_sentinels(["[::1]:26379", "s2:26379"], "mymaster");
        assert!(sentinel.validate().is_ok());
        assert_eq!(sentinel.topology(), Topology::Sentinel);
        let err = RedisConfig::default().with_cluster_nodes(["a:1", "b"]).validate().unwrap_err().to_string();
        assert!(err.contains("cluster_nodes") && err.contains("entry 2"), "{err}");
        let err = RedisConfig::default().with_cluster_nodes(["a:1"]).with_sentinels(["b:2"], "m");
        let err = err.validate().unwrap_err().to_string();
        assert!(err.contains("cluster_nodes") && err.contains("sentinels"), "{err}");
        assert_eq!(parse_host_port("[::1]:6379"), Some(("::1".into(), 6379)));
    }
}
