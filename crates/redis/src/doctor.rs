//! `diagnose`: the Redis checks behind `switchboard doctor` — reachability, version >= 6.2,
//! persistence and an eviction policy that cannot evict jobs.

use crate::config::RedisConfig;

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

/// Checks the Redis server `config` points at. Never fails: problems are findings.
pub async fn diagnose(config: RedisConfig) -> Vec<Check> {
    let mut out = Vec::new();
    if let Err(e) = config.validate() {
        out.push(check(CheckLevel::Error, e.to_string()));
        return out;
    }
    let client = match redis::Client::open(config.url.as_str()) {
        Ok(c) => c,
        Err(e) => {
            out.push(check(CheckLevel::Error, format!("redis: invalid URL: {e}")));
            return out;
        }
    };
    let connecting = tokio::time::timeout(config.connect_timeout, client.get_multiplexed_async_connection());
    let mut conn = match connecting.await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            out.push(check(CheckLevel::Error, format!("redis: cannot connect: {e}")));
            return out;
        }
        Err(_) => {
            out.push(check(CheckLevel::Error, format!("redis: no connection within {:?}", config.connect_timeout)));
            return out;
        }
    };
    out.push(check(CheckLevel::Ok, format!("redis: connected, key prefix {:?}", config.key_prefix)));

    let info: String = match redis::cmd("INFO").arg("server").query_async(&mut conn).await {
        Ok(i) => i,
        Err(e) => {
            out.push(check(CheckLevel::Error, format!("redis: INFO failed: {e}")));
            return out;
        }
    };
    let version = info.lines().find_map(|l| l.strip_prefix("redis_version:")).unwrap_or("unknown").trim().to_owned();
    let parts: Vec<u32> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.len() >= 2 && (parts[0], parts[1]) >= (6, 2) {
        out.push(check(CheckLevel::Ok, format!("redis: version {version} (>= 6.2)")));
    } else {
        out.push(check(CheckLevel::Error, format!("redis: version {version}; Switchboard needs 6.2 or newer")));
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
                out.push(check(CheckLevel::Ok, format!("redis: persistence: AOF on (appendfsync {fsync})")));
            } else if !save.is_empty() {
                out.push(check(CheckLevel::Warn, format!("redis: persistence: RDB snapshots only ({save}); recent writes are lost on a crash — use appendonly yes for jobs")));
            } else {
                out.push(check(CheckLevel::Warn, "redis: persistence is off: every restart loses all state"));
            }
        }
        _ => out.push(check(CheckLevel::Warn, "redis: CONFIG GET is not allowed; cannot check persistence")),
    }
    match config_get("maxmemory-policy").await {
        Some(policy) if policy == "noeviction" => out.push(check(CheckLevel::Ok, "redis: maxmemory-policy noeviction")),
        Some(policy) => out.push(check(
            CheckLevel::Warn,
            format!("redis: maxmemory-policy {policy}: under memory pressure Redis may evict sessions, denylist entries and jobs; use noeviction"),
        )),
        None => out.push(check(CheckLevel::Warn, "redis: CONFIG GET is not allowed; cannot check maxmemory-policy")),
    }
    out
}
