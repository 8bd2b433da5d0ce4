//! `diagnose`: the Redis checks behind `switchboard doctor` — the topology (a Cluster's nodes
//! and slot coverage, the Sentinels' master and replicas), and for each master reachability,
//! version >= 6.2 (7.0 on a Cluster), persistence and an eviction policy that cannot evict jobs.

use std::time::Duration;

use redis::{ConnectionInfo, IntoConnectionInfo};

use crate::config::{RedisConfig, Topology};
use crate::connection::{ask_sentinels, node_info, sentinel_infos};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckLevel {
    /// Fine.
    Ok,
    /// Works, but not as recommended.
    Warn,
    /// Switchboard cannot run like this.
    Error,
}

impl CheckLevel {
    /// `ok`, `warn` or `error`.
    pub fn label(self) -> &'static str {
        match self {
            CheckLevel::Ok => "ok",
            CheckLevel::Warn => "warn",
            CheckLevel::Error => "error",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Severity.
    pub level: CheckLevel,
    /// What was found, for a human.
    pub message: String,
}

fn check(level: CheckLevel, message: impl Into<String>) -> Check {
    Check { level, message: message.into() }
}

/// Checks the Redis deployment `config` points at: its topology, then every master. Never
/// fails: problems are findings.
pub async fn diagnose(config: RedisConfig) -> Vec<Check> {
    let mut out = Vec::new();
    if let Err(e) = config.validate() {
        out.push(check(CheckLevel::Error, e.to_string()));
        return out;
    }
    let template = match config.url.as_str().into_connection_info() {
        Ok(info) => info,
        Err(e) => {
            out.push(check(CheckLevel::Error, format!("redis: invalid URL: {e}")));
            return out;
        }
    };
    match config.topology() {
        Topology::Standalone => diagnose_server(&config, template, "redis", &mut out).await,
        Topology::Cluster => diagnose_cluster(&config, &template, &mut out).await,
        Topology::Sentinel => diagnose_sentinel(&config, &template, &mut out).await,
    }
    out
}

/// `CLUSTER NODES` from the first seed that answers: nodes, slot coverage, replicas per master;
/// then each master's own checks.
async fn diagnose_cluster(config: &RedisConfig, template: &ConnectionInfo, out: &mut Vec<Check>) {
    let mut nodes_reply = None;
    for seed in &config.cluster_nodes {
        let Ok(info) = node_info(seed, template) else { continue };
        let ask = async {
            let client = redis::Client::open(info)?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("CLUSTER").arg("NODES").query_async::<String>(&mut conn).await
        };
        if let Ok(Ok(reply)) = tokio::time::timeout(config.connect_timeout, ask).await {
            nodes_reply = Some(reply);
            break;
        }
    }
    let Some(reply) = nodes_reply else {
        out.push(check(CheckLevel::Error, "redis: cluster: no seed node answered CLUSTER NODES"));
        return;
    };
    let nodes = parse_cluster_nodes(&reply);
    let masters: Vec<&ClusterNode> = nodes.iter().filter(|n| n.master_of.is_none() && n.slots > 0).collect();
    let covered: u32 = masters.iter().map(|m| m.slots).sum();
    let failing = nodes.iter().filter(|n| n.failing).count();
    let level = if covered == 16384 && failing == 0 { CheckLevel::Ok } else { CheckLevel::Error };
    out.push(check(
        level,
        format!(
            "redis: cluster: {} nodes, {} masters serving slots, {covered} of 16384 slots covered, {failing} failing",
            nodes.len(),
            masters.len()
        ),
    ));
    for master in &masters {
        let replicas = nodes.iter().filter(|n| n.master_of.as_deref() == Some(master.id.as_str())).count();
        let level = if replicas == 0 { CheckLevel::Warn } else { CheckLevel::Ok };
        let advice = if replicas == 0 { " (no failover possible for its slots)" } else { "" };
        out.push(check(
            level,
            format!("redis: cluster master {}: {} slots, {replicas} replica(s){advice}", master.address, master.slots),
        ));
    }
    for master in masters {
        match node_info(&master.address, template) {
            Ok(info) => diagnose_server(config, info, &format!("redis {}", master.address), out).await,
            Err(e) => out.push(check(CheckLevel::Error, format!("redis {}: {e}", master.address))),
        }
    }
}

/// One line of `CLUSTER NODES`.
struct ClusterNode {
    id: String,
    /// `host:port` (without the bus port).
    address: String,
    /// The master's id, for a replica.
    master_of: Option<String>,
    failing: bool,
    slots: u32,
}

fn parse_cluster_nodes(reply: &str) -> Vec<ClusterNode> {
    reply
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 8 {
                return None;
            }
            let address = fields[1].split('@').next()?.to_owned();
            let slots = fields[8..]
                .iter()
                .filter(|range| !range.starts_with('['))
                .map(|range| match range.split_once('-') {
                    Some((a, b)) => b.parse::<u32>().unwrap_or(0).saturating_sub(a.parse().unwrap_or(0)) + 1,
                    None => u32::from(range.parse::<u16>().is_ok()),
                })
                .sum();
            Some(ClusterNode {
                id: fields[0].to_owned(),
                address,
                master_of: (fields[3] != "-").then(|| fields[3].to_owned()),
                failing: fields[2].contains("fail"),
                slots,
            })
        })
        .collect()
}

/// The master the Sentinels name, how many replicas and Sentinels they know; then the master's
/// own checks.
async fn diagnose_sentinel(config: &RedisConfig, template: &ConnectionInfo, out: &mut Vec<Check>) {
    let sentinels = match sentinel_infos(config) {
        Ok(sentinels) => sentinels,
        Err(e) => {
            out.push(check(CheckLevel::Error, format!("redis: sentinels: {e}")));
            return;
        }
    };
    let addr = match ask_sentinels(&sentinels, &config.sentinel_master, template, config.connect_timeout).await {
        Ok(addr) => addr,
        Err(e) => {
            out.push(check(
                CheckLevel::Error,
                format!("redis: sentinel: no Sentinel named master {:?}: {e}", config.sentinel_master),
            ));
            return;
        }
    };
    let mut known = None;
    for sentinel in &sentinels {
        let ask = async {
            let client = redis::Client::open(sentinel.clone())?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            let replicas: Vec<redis::Value> =
                redis::cmd("SENTINEL").arg("REPLICAS").arg(&config.sentinel_master).query_async(&mut conn).await?;
            let others: Vec<redis::Value> =
                redis::cmd("SENTINEL").arg("SENTINELS").arg(&config.sentinel_master).query_async(&mut conn).await?;
            Ok::<_, redis::RedisError>((replicas.len(), others.len() + 1))
        };
        if let Ok(Ok(counts)) = tokio::time::timeout(config.connect_timeout, ask).await {
            known = Some(counts);
            break;
        }
    }
    let (replicas, sentinel_count) = known.unwrap_or((0, 0));
    let level = if replicas == 0 || sentinel_count < 3 { CheckLevel::Warn } else { CheckLevel::Ok };
    out.push(check(
        level,
        format!(
            "redis: sentinel: master {:?} at {addr}, {replicas} replica(s), {sentinel_count} Sentinel(s) (3 or more and a replica make failover possible)",
            config.sentinel_master
        ),
    ));
    diagnose_server(config, template.clone().set_addr(addr.clone()), &format!("redis {addr}"), out).await;
}

/// Reachability, version, persistence and eviction policy of one server; findings start with
/// `label`.
async fn diagnose_server(config: &RedisConfig, info: ConnectionInfo, label: &str, out: &mut Vec<Check>) {
    let client = match redis::Client::open(info) {
        Ok(c) => c,
        Err(e) => {
            out.push(check(CheckLevel::Error, format!("{label}: invalid address: {e}")));
            return;
        }
    };
    let timeout: Duration = config.connect_timeout;
    let connecting = tokio::time::timeout(timeout, client.get_multiplexed_async_connection());
    let mut conn = match connecting.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.push(check(CheckLevel::Error, format!("{label}: cannot connect: {e}")));
            return;
        }
        Err(_) => {
            out.push(check(CheckLevel::Error, format!("{label}: no connection within {timeout:?}")));
            return;
        }
    };
    out.push(check(CheckLevel::Ok, format!("{label}: connected, key prefix {:?}", config.key_prefix)));

    let info: String = match redis::cmd("INFO").arg("server").query_async(&mut conn).await {
        Ok(i) => i,
        Err(e) => {
            out.push(check(CheckLevel::Error, format!("{label}: INFO failed: {e}")));
            return;
        }
    };
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned();
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    // A Cluster's live delivery is sharded pub/sub (Redis 7).
    let (major, minor) = match config.topology() {
        Topology::Cluster => crate::connection::MIN_CLUSTER_VERSION,
        _ => (6, 2),
    };
    if parts.len() >= 2 && (parts[0], parts[1]) >= (major, minor) {
        out.push(check(CheckLevel::Ok, format!("{label}: version {version} (>= {major}.{minor})")));
    } else {
        let needs = format!("Switchboard needs {major}.{minor} or newer");
        out.push(check(CheckLevel::Error, format!("{label}: version {version}; {needs}")));
    }

    let config_get = |name: &'static str| {
        let mut conn = conn.clone();
        async move {
            let pair: redis::RedisResult<Vec<String>> =
                redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut conn).await;
            pair.ok().and_then(|v| v.get(1).cloned())
        }
    };
    match (config_get("appendonly").await, config_get("save").await) {
        (Some(aof), Some(save)) => {
            if aof == "yes" {
                let fsync = config_get("appendfsync").await.unwrap_or_default();
                out.push(check(CheckLevel::Ok, format!("{label}: persistence: AOF on (appendfsync {fsync})")));
            } else if !save.is_empty() {
                out.push(check(CheckLevel::Warn, format!("{label}: persistence: RDB snapshots only ({save}); recent writes are lost on a crash — use appendonly yes for jobs")));
            } else {
                out.push(check(
                    CheckLevel::Warn,
                    format!("{label}: persistence is off: every restart loses all state"),
                ));
            }
        }
        _ => out.push(check(CheckLevel::Warn, format!("{label}: CONFIG GET is not allowed; cannot check persistence"))),
    }
    match config_get("maxmemory-policy").await {
        Some(policy) if policy == "noeviction" => out.push(check(CheckLevel::Ok, format!("{label}: maxmemory-policy noeviction"))),
        Some(policy) => out.push(check(
            CheckLevel::Warn,
            format!("{label}: maxmemory-policy {policy}: under memory pressure Redis may evict sessions, denylist entries and jobs; use noeviction"),
        )),
        None => out.push(check(CheckLevel::Warn, format!("{label}: CONFIG GET is not allowed; cannot check maxmemory-policy"))),
    }
}
