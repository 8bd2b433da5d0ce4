//! [`Cache`]: the tagged cache with JSON values, validation, namespace TTLs, metrics and
//! single-flight `get_or_set`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::OnceCell;

use super::observe;
use crate::cache::{CacheStats, CacheStore, CacheWrite};
use crate::config::CacheConfig;
use crate::error::{Error, Result};
use crate::limits::{
    MAX_BATCH, MAX_CACHE_KEY_BYTES, MAX_CACHE_NAMESPACE_BYTES, MAX_CACHE_TAGS, MAX_CACHE_TTL_SECONDS,
    MAX_CACHE_VALUE_BYTES, MAX_ID_BYTES,
};

/// One computation shared by every concurrent `get_or_set` caller of a key on this node.
type Flight = Arc<OnceCell<Result<Value>>>;

/// The cache service. Values are JSON here and bytes (their JSON encoding) in the store.
#[derive(Clone)]
pub struct Cache {
    store: Arc<dyn CacheStore>,
    config: CacheConfig,
    /// (namespace, key) -> the computation in flight. A std mutex: held only to look up or
    /// remove an entry, never across an await.
    flights: Arc<Mutex<HashMap<(String, String), Flight>>>,
}

impl Cache {
    /// Wraps `store`.
    pub fn new(store: Arc<dyn CacheStore>, config: CacheConfig) -> Self {
        Cache { store, config, flights: Arc::default() }
    }

    /// The live value of `key`, or `None`.
    pub async fn get(&self, namespace: &str, key: &str) -> Result<Option<Value>> {
        let keys = [key.to_owned()];
        Ok(self.mget(namespace, &keys).await?.into_iter().next().flatten())
    }

    /// The live values of `keys` (at most 1000), in order.
    pub async fn mget(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Value>>> {
        check_namespace(namespace)?;
        check_batch(keys.len())?;
        keys.iter().try_for_each(|k| check_key(k))?;
        let raw = observe("cache", "mget", self.store.mget(namespace, keys)).await?;
        raw.into_iter().map(|v| v.map(|bytes| decode(&bytes)).transpose()).collect()
    }

    /// Whether `key` holds a live value.
    pub async fn exists(&self, namespace: &str, key: &str) -> Result<bool> {
        check_namespace(namespace)?;
        check_key(key)?;
        observe("cache", "exists", self.store.exists(namespace, key)).await
    }

    /// Stores `value` under `key` for `ttl` (default: the namespace's) with `tags`.
    pub async fn set(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<()> {
        let entry = self.write(namespace, key, value, ttl, tags)?;
        observe("cache", "set", self.store.mset(namespace, std::slice::from_ref(&entry))).await
    }

    /// Stores every `(key, value)` (at most 1000) with one `ttl` and `tags`, atomically.
    pub async fn mset(
        &self,
        namespace: &str,
        entries: &[(String, Value)],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<()> {
        check_batch(entries.len())?;
        let writes = entries.iter().map(|(k, v)| self.write(namespace, k, v, ttl, tags)).collect::<Result<Vec<_>>>()?;
        observe("cache", "mset", self.store.mset(namespace, &writes)).await
    }

    /// Removes `key`; `true` if it was stored.
    pub async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        check_namespace(namespace)?;
        check_key(key)?;
        observe("cache", "delete", self.store.delete(namespace, key)).await
    }

    /// Invalidates every value carrying one of `tags`. See [`CacheStore::invalidate_tags`].
    pub async fn invalidate_tags(&self, namespace: &str, tags: &[String]) -> Result<()> {
        check_namespace(namespace)?;
        check_tags(tags)?;
        observe("cache", "invalidate_tags", self.store.invalidate_tags(namespace, tags)).await
    }

    /// Removes every value whose key starts with `prefix` (non-empty); how many.
    pub async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64> {
        check_namespace(namespace)?;
        check_key(prefix)?;
        observe("cache", "invalidate_prefix", self.store.invalidate_prefix(namespace, prefix)).await
    }

    /// The namespace's counters.
    pub async fn stats(&self, namespace: &str) -> Result<CacheStats> {
        check_namespace(namespace)?;
        observe("cache", "stats", self.store.stats(namespace)).await
    }

    /// The value of `key`; on a miss `compute` runs and its value is stored and returned.
    /// Concurrent callers for the same key on this node share one computation: `compute` runs
    /// once and everyone gets its result (an error too; the next call tries again). If the
    /// computing caller is cancelled, a waiting caller runs its own `compute` instead. The tag
    /// versions are read before `compute` runs, so a value computed while one of its tags was
    /// invalidated is returned to the callers but is a miss for everyone after.
    pub async fn get_or_set<F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        ttl: Option<Duration>,
        tags: &[String],
        compute: F,
    ) -> Result<Value>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Value>>,
    {
        if let Some(hit) = self.get(namespace, key).await? {
            return Ok(hit);
        }
        check_tags(tags)?;
        let id = (namespace.to_owned(), key.to_owned());
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            flights.entry(id.clone()).or_default().clone()
        };
        let result = flight
            .get_or_init(|| async {
                // Another flight may have stored the value between our miss and this cell.
                if let Some(hit) = self.get(namespace, key).await? {
                    return Ok(hit);
                }
                let versions = observe("cache", "tag_versions", self.store.tag_versions(namespace, tags)).await?;
                let value = compute().await?;
                let mut entry = self.write(namespace, key, &value, ttl, tags)?;
                entry.tag_versions = Some(versions);
                observe("cache", "set", self.store.mset(namespace, std::slice::from_ref(&entry))).await?;
                Ok(value)
            })
            .await
            .clone();
        let mut flights = self.flights.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if flights.get(&id).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&id);
        }
        result
    }

    fn write(
        &self,
        namespace: &str,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<CacheWrite> {
        check_namespace(namespace)?;
        check_key(key)?;
        check_tags(tags)?;
        let ttl = ttl.unwrap_or_else(|| self.config.default_ttl(namespace));
        if ttl.is_zero() || ttl > Duration::from_secs(MAX_CACHE_TTL_SECONDS) {
            return Err(Error::invalid("ttl", format!("must be > 0 and at most {MAX_CACHE_TTL_SECONDS} s")));
        }
        let bytes = serde_json::to_vec(value).map_err(|e| Error::invalid("value", e))?;
        if bytes.len() > MAX_CACHE_VALUE_BYTES {
            return Err(Error::PayloadTooLarge(format!("value: must be at most {MAX_CACHE_VALUE_BYTES} bytes")));
        }
        Ok(CacheWrite { key: key.to_owned(), value: bytes, ttl, tags: tags.to_vec(), tag_versions: None })
    }
}

fn decode(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Internal(format!("cache: stored value is not JSON: {e}")))
}

fn check_namespace(namespace: &str) -> Result<()> {
    crate::ids::validate_id("namespace", namespace, MAX_CACHE_NAMESPACE_BYTES, &[])
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_CACHE_KEY_BYTES {
        return Err(Error::invalid("key", format!("must be 1..={MAX_CACHE_KEY_BYTES} bytes")));
    }
    Ok(())
}

fn check_tags(tags: &[String]) -> Result<()> {
    if tags.len() > MAX_CACHE_TAGS {
        return Err(Error::invalid("tags", format!("at most {MAX_CACHE_TAGS} per entry")));
    }
    tags.iter().try_for_each(|t| crate::ids::validate_id("tags", t, MAX_ID_BYTES, &[]))
}

fn check_batch(n: usize) -> Result<()> {
    if n > MAX_BATCH {
        return Err(Error::invalid("keys", format!("at most {MAX_BATCH} per batch")));
    }
    Ok(())
}
