//! `RedisCache`: each value a hash expiring with its TTL, per-namespace tag versions, indexes
//! and counters, all in the namespace's slot; every operation is one script.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::{Script, ScriptInvocation};
use switchboard_core::{CacheStats, CacheStore, CacheWrite, Result};

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

/// The cache in Redis. See [`CacheStore`] for the contract.
///
/// Reads compare each value's recorded tag versions with the namespace's current ones inside
/// the read script, so an invalidation (one `HINCRBY` per tag, one script) and a set are
/// ordered by Redis and a value set before an invalidation is never returned after it.
/// `evictions` is always 0: Redis' own `maxmemory` eviction is invisible here.
pub(crate) struct RedisCache {
    conn: Conn,
    keys: Keys,
}

impl RedisCache {
    pub(crate) fn new(conn: Conn, keys: Keys) -> Self {
        RedisCache { conn, keys }
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
        self.read(namespace, keys, true).await
    }

    async fn tag_versions(&self, namespace: &str, tags: &[String]) -> Result<Vec<u64>> {
        if tags.is_empty() {
            return Ok(Vec::new());
        }
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
        let mut invocation = self.namespace_invocation(&SET, namespace);
        for entry in entries {
            invocation.key(self.keys.cache_entry(namespace, &entry.key));
            let ttl_ms = u64::try_from(entry.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            invocation.arg(entry.key.as_str()).arg(entry.value.as_slice()).arg(ttl_ms).arg(entry.tags.len());
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
            .arg(key);
        let removed: i64 = self.conn.script("cache.delete", &invocation).await?;
        Ok(removed == 1)
    }

    async fn invalidate_tags(&self, namespace: &str, tags: &[String]) -> Result<()> {
        let mut invocation = INVALIDATE_TAGS.key(self.keys.cache_tags(namespace));
        invocation.key(self.keys.cache_stats(namespace));
        for tag in tags {
            invocation.arg(tag.as_str());
        }
        let _done: i64 = self.conn.script("cache.invalidate_tags", &invocation).await?;
        Ok(())
    }

    async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64> {
        let mut invocation = self.namespace_invocation(&INVALIDATE_PREFIX, namespace);
        invocation.arg(self.keys.cache_entry_prefix(namespace)).arg(prefix);
        self.conn.script("cache.invalidate_prefix", &invocation).await
    }

    async fn stats(&self, namespace: &str) -> Result<CacheStats> {
        let mut invocation = STATS.key(self.keys.cache_stats(namespace));
        invocation.key(self.keys.cache_index(namespace)).key(self.keys.cache_expiry(namespace));
        let (hits, misses, sets, invalidations, keys): (u64, u64, u64, u64, u64) =
            self.conn.script("cache.stats", &invocation).await?;
        Ok(CacheStats { hits, misses, sets, invalidations, evictions: 0, keys })
    }
}
