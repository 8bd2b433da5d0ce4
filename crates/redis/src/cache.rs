//! `RedisCache`: each value a hash expiring with its TTL (plus stale grace), per-namespace tag
//! versions, indexes, counters and leases, all in the namespace's slot; every operation is one
//! script.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use redis::{Script, ScriptInvocation, Value};
use switchboard_core::{
    CacheKeyPage, CacheLeaseOutcome, CacheLeaseRequest, CacheStats, CacheStore, CacheWrite, Error, LeaseToken, Result,
    Timestamp,
};

use crate::connection::{Conn, lua};
use crate::keys::Keys;

/// A cache script: common.lua, then cache_common.lua, then the operation.
fn cache_lua(body: &str) -> Script {
    lua(&format!("{}{body}", include_str!("../lua/cache_common.lua")))
}

static GET: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_get.lua")));
static SET: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_set.lua")));
static DELETE: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_delete.lua")));
static INVALIDATE_TAGS: LazyLock<Script> =
    LazyLock::new(|| cache_lua(include_str!("../lua/cache_invalidate_tags.lua")));
static INVALIDATE_PREFIX: LazyLock<Script> =
    LazyLock::new(|| cache_lua(include_str!("../lua/cache_invalidate_prefix.lua")));
static TAG_VERSIONS: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_tag_versions.lua")));
static STATS: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_stats.lua")));
static KEYS: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_keys.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_lease.lua")));
static SET_LEASED: LazyLock<Script> = LazyLock::new(|| cache_lua(include_str!("../lua/cache_set_leased.lua")));

/// Namespaces this process registered in the namespace set: past this many it stops
/// remembering (and registers again; `SADD` is idempotent), so memory stays bounded.
const MAX_REMEMBERED_NAMESPACES: usize = 10_000;

/// The cache in Redis. See [`CacheStore`] for the contract.
///
/// Reads compare each value's recorded tag versions with the namespace's current ones inside
/// the read script, so an invalidation (one `HINCRBY` per tag, one script) and a set are
/// ordered by Redis and a value set before an invalidation is never returned after it.
/// `evictions` is always 0: Redis' own `maxmemory` eviction is invisible here.
pub(crate) struct RedisCache {
    conn: Conn,
    keys: Keys,
    /// Namespaces already added to the namespace set by this process, and the circuit's
    /// opening count when they were: a connection loss (maybe a Redis restart that lost the set)
    /// makes it register each one again. A std mutex: held for one lookup, never across an
    /// await.
    registered: Mutex<(u64, HashSet<String>)>,
}

impl RedisCache {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisCache { conn, keys, registered: Mutex::default() }
    }

    /// Adds `namespace` to the set behind [`CacheStore::namespaces`] once per process. The set
    /// is its own key (its own slot), so it cannot be written by the namespace's scripts.
    async fn register(&self, namespace: &str) -> Result<()> {
        let generation = self.conn.circuit().openings();
        {
            let mut registered = self.registered.lock().unwrap_or_else(PoisonError::into_inner);
            if registered.0 != generation {
                *registered = (generation, HashSet::new());
            }
            if registered.1.contains(namespace) {
                return Ok(());
            }
        }
        let mut cmd = redis::cmd("SADD");
        cmd.arg(self.keys.cache_namespaces()).arg(namespace);
        let _added: i64 = self.conn.cmd("cache.register", &cmd).await?;
        let mut registered = self.registered.lock().unwrap_or_else(PoisonError::into_inner);
        if registered.0 != generation || registered.1.len() >= MAX_REMEMBERED_NAMESPACES {
            registered.1.clear();
        }
        registered.1.insert(namespace.to_owned());
        Ok(())
    }

    /// An invocation with the namespace's lease-related keys for `key`: tag versions,
    /// counters, both value indexes, the value, the lease and both lease indexes.
    fn lease_invocation<'a>(&self, script: &'a Script, namespace: &str, key: &str) -> ScriptInvocation<'a> {
        let mut invocation = self.namespace_invocation(script, namespace);
        invocation
            .key(self.keys.cache_entry(namespace, key))
            .key(self.keys.cache_lease(namespace, key))
            .key(self.keys.cache_lease_index(namespace))
            .key(self.keys.cache_lease_expiry(namespace));
        invocation
    }

    /// An invocation with the namespace's tag versions, counters and both indexes as
    /// KEYS[1..4].
    fn namespace_invocation<'a>(&self, script: &'a Script, namespace: &str) -> ScriptInvocation<'a> {
        let mut invocation = script.key(self.keys.cache_tags(namespace));
        invocation
            .key(self.keys.cache_stats(namespace))
            .key(self.keys.cache_index(namespace))
            .key(self.keys.cache_expiry(namespace));
        invocation
    }

    async fn read(&self, namespace: &str, keys: &[String], count: bool) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.namespace_invocation(&GET, namespace);
        for key in keys {
            invocation.key(self.keys.cache_entry(namespace, key));
        }
        invocation.arg(if count { "1" } else { "0" });
        for key in keys {
            invocation.arg(key.as_str());
        }
        self.conn.script("cache.get", &invocation).await
    }
}

#[async_trait]
impl CacheStore for RedisCache {
    async fn mget(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        self.register(namespace).await?;
        self.read(namespace, keys, true).await
    }

    async fn tag_versions(&self, namespace: &str, tags: &[String]) -> Result<Vec<u64>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
        // Registered before the versions are read: a value written later with these versions
        // is in a namespace that `invalidate_tags_everywhere` lists.
        self.register(namespace).await?;
        let mut invocation = TAG_VERSIONS.key(self.keys.cache_tags(namespace));
        for tag in tags {
            invocation.arg(tag.as_str());
        }
        self.conn.script("cache.tag_versions", &invocation).await
    }

    async fn exists(&self, namespace: &str, key: &str) -> Result<bool> {
        let found = self.read(namespace, &[key.to_owned()], false).await?;
        Ok(found.first().is_some_and(Option::is_some))
    }

    async fn mset(&self, namespace: &str, entries: &[CacheWrite]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.register(namespace).await?;
        let mut invocation = self.namespace_invocation(&SET, namespace);
        for entry in entries {
            invocation.key(self.keys.cache_entry(namespace, &entry.key));
            invocation
                .arg(entry.key.as_str())
                .arg(entry.value.as_slice())
                .arg(millis(entry.ttl).max(1))
                .arg(millis(entry.stale))
                .arg(entry.tags.len());
            for (i, tag) in entry.tags.iter().enumerate() {
                // '' asks the script for the version current at the write.
                let version = entry.tag_versions.as_ref().and_then(|v| v.get(i)).map(u64::to_string);
                invocation.arg(tag.as_str()).arg(version.unwrap_or_default());
            }
        }
        let _stored: i64 = self.conn.script("cache.set", &invocation).await?;
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        let mut invocation = DELETE.key(self.keys.cache_tags(namespace));
        invocation
            .key(self.keys.cache_index(namespace))
            .key(self.keys.cache_expiry(namespace))
            .key(self.keys.cache_entry(namespace, key))
            .key(self.keys.cache_lease(namespace, key))
            .key(self.keys.cache_lease_index(namespace))
            .key(self.keys.cache_lease_expiry(namespace))
            .arg(key);
        let removed: i64 = self.conn.script("cache.delete", &invocation).await?;
        Ok(removed == 1)
    }

    async fn invalidate_tags(&self, namespace: &str, tags: &[String]) -> Result<()> {
        self.register(namespace).await?;
        let mut invocation = INVALIDATE_TAGS.key(self.keys.cache_tags(namespace));
        invocation.key(self.keys.cache_stats(namespace));
        for tag in tags {
            invocation.arg(tag.as_str());
        }
        let _done: i64 = self.conn.script("cache.invalidate_tags", &invocation).await?;
        Ok(())
    }

    /// One `cache_invalidate_tags.lua` per namespace of the namespace set, pipelined (on a
    /// Cluster each sent to its slot's master). Every operation that reads tag versions or
    /// writes a value registers its namespace first, so a value set before this began is in a
    /// listed namespace and is invalidated; a namespace first used after the listing only holds
    /// values whose versions were read after it.
    async fn invalidate_tags_everywhere(&self, tags: &[String]) -> Result<u64> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.cache_namespaces());
        let namespaces: Vec<String> = self.conn.cmd("cache.namespaces", &cmd).await?;
        for chunk in namespaces.chunks(256) {
            let invocations: Vec<ScriptInvocation<'_>> = chunk
                .iter()
                .map(|namespace| {
                    let mut invocation = INVALIDATE_TAGS.key(self.keys.cache_tags(namespace));
                    invocation.key(self.keys.cache_stats(namespace));
                    for tag in tags {
                        invocation.arg(tag.as_str());
                    }
                    invocation
                })
                .collect();
            let _done: Vec<i64> =
                self.conn.script_batch("cache.invalidate_tags_everywhere", &INVALIDATE_TAGS, &invocations).await?;
        }
        Ok(namespaces.len() as u64)
    }

    async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64> {
        self.register(namespace).await?;
        let mut invocation = self.namespace_invocation(&INVALIDATE_PREFIX, namespace);
        invocation
            .key(self.keys.cache_lease_index(namespace))
            .key(self.keys.cache_lease_expiry(namespace))
            .arg(self.keys.cache_entry_prefix(namespace))
            .arg(prefix)
            .arg(self.keys.cache_lease_prefix(namespace));
        self.conn.script("cache.invalidate_prefix", &invocation).await
    }

    async fn keys(&self, namespace: &str, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<CacheKeyPage> {
        let mut invocation = KEYS.key(self.keys.cache_index(namespace));
        invocation.key(self.keys.cache_expiry(namespace)).arg(prefix).arg(cursor.unwrap_or("")).arg(limit);
        let (keys, next): (Vec<String>, String) = self.conn.script("cache.keys", &invocation).await?;
        Ok(CacheKeyPage { keys, next_cursor: (!next.is_empty()).then_some(next) })
    }

    async fn stats(&self, namespace: &str) -> Result<CacheStats> {
        let mut invocation = STATS.key(self.keys.cache_stats(namespace));
        invocation.key(self.keys.cache_index(namespace)).key(self.keys.cache_expiry(namespace));
        let (hits, misses, sets, invalidations, keys): (u64, u64, u64, u64, u64) =
            self.conn.script("cache.stats", &invocation).await?;
        Ok(CacheStats { hits, misses, sets, invalidations, evictions: 0, keys })
    }

    async fn acquire_lease(&self, namespace: &str, request: &CacheLeaseRequest) -> Result<CacheLeaseOutcome> {
        self.register(namespace).await?;
        let mut invocation = self.lease_invocation(&LEASE, namespace, &request.key);
        invocation
            .arg(request.key.as_str())
            .arg(request.token.as_str())
            .arg(millis(request.ttl).max(1))
            .arg(if request.count { "1" } else { "0" });
        for tag in &request.tags {
            invocation.arg(tag.as_str());
        }
        let reply: Vec<Value> = self.conn.script("cache.lease", &invocation).await?;
        parse_lease(reply)
    }

    async fn set_leased(&self, namespace: &str, write: &CacheWrite, token: &LeaseToken) -> Result<bool> {
        let mut invocation = SET_LEASED.key(self.keys.cache_stats(namespace));
        invocation
            .key(self.keys.cache_index(namespace))
            .key(self.keys.cache_expiry(namespace))
            .key(self.keys.cache_entry(namespace, &write.key))
            .key(self.keys.cache_lease(namespace, &write.key))
            .key(self.keys.cache_lease_index(namespace))
            .key(self.keys.cache_lease_expiry(namespace))
            .arg(write.key.as_str())
            .arg(token.as_str())
            .arg(write.value.as_slice())
            .arg(millis(write.ttl).max(1))
            .arg(millis(write.stale));
        let stored: i64 = self.conn.script("cache.set_leased", &invocation).await?;
        Ok(stored == 1)
    }

    async fn namespaces(&self, limit: usize) -> Result<Vec<String>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(self.keys.cache_namespaces());
        let mut names: Vec<String> = self.conn.cmd("cache.namespaces", &cmd).await?;
        names.sort_unstable();
        names.truncate(limit);
        Ok(names)
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Decodes `cache_lease.lua`'s reply.
fn parse_lease(reply: Vec<Value>) -> Result<CacheLeaseOutcome> {
    let bad = || Error::Internal("redis: unexpected cache.lease reply".into());
    let mut parts = reply.into_iter();
    let kind: String = redis::from_redis_value(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
    let second = parts.next().ok_or_else(bad)?;
    if kind == "hit" {
        return redis::from_redis_value(second).map(CacheLeaseOutcome::Hit).map_err(|_| bad());
    }
    let expires_at = Timestamp::from_millis(redis::from_redis_value(second).map_err(|_| bad())?);
    // `false` in Lua arrives as nil.
    let stale: Option<Vec<u8>> = redis::from_redis_value(parts.next().unwrap_or(Value::Nil)).map_err(|_| bad())?;
    match kind.as_str() {
        "granted" => Ok(CacheLeaseOutcome::Granted { expires_at, stale }),
        "held" => Ok(CacheLeaseOutcome::Held { expires_at, stale }),
        _ => Err(bad()),
    }
}
