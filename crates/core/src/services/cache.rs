//! [`Cache`]: the tagged cache with JSON values, validation, namespace TTLs, per-namespace
//! metrics, single-flight `get_or_set` in a process and leases (with stale-while-revalidate)
//! across processes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Notify, OnceCell};

use super::observe;
use crate::cache::{CacheKeyPage, CacheLeaseOutcome, CacheLeaseRequest, CacheStats, CacheStore, CacheWrite};
use crate::config::CacheConfig;
use crate::error::{Error, Result};
use crate::ids::LeaseToken;
use crate::limits::{
    MAX_BATCH, MAX_CACHE_KEY_BYTES, MAX_CACHE_LEASE_MS, MAX_CACHE_LEASE_WAIT_MS, MAX_CACHE_NAMESPACE_BYTES,
    MAX_CACHE_TAGS, MAX_CACHE_TTL_SECONDS, MAX_CACHE_VALUE_BYTES, MAX_ID_BYTES,
};
use crate::time::Timestamp;

/// Default lease length when the caller gives none.
pub const DEFAULT_CACHE_LEASE: Duration = Duration::from_secs(10);
/// Default wait for another caller's value when the caller gives none.
pub const DEFAULT_CACHE_LEASE_WAIT: Duration = Duration::from_secs(5);
/// Longest pause between two polls of a waiting lease caller (other nodes' values are seen by
/// polling; this node's wake waiters at once).
const MAX_POLL_PAUSE: Duration = Duration::from_millis(100);
/// Metric label of namespaces not listed in `cache.namespaces` (bounded label cardinality).
const OTHER_NAMESPACE: &str = "other";

/// One computation shared by every concurrent `get_or_set` caller of a key on this node.
type Flight = Arc<OnceCell<Result<Value>>>;

/// (namespace, key) -> what this node's callers of that key share.
type PerKey<T> = Arc<Mutex<HashMap<(String, String), T>>>;

/// How to store a value: all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheSetOptions {
    /// Fresh for this long (default: the namespace's TTL from config).
    pub ttl: Option<Duration>,
    /// Stale-while-revalidate grace after the TTL (default none): see [`Cache::lease`].
    pub stale: Option<Duration>,
    /// Tags to invalidate it by (at most 32). Must be empty with `lease_token`: a leased value
    /// takes the tags given to [`Cache::lease`].
    pub tags: Vec<String>,
    /// Store only if this token holds the key's lease (and release it).
    pub lease_token: Option<LeaseToken>,
}

/// How to ask for a lease: all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheLeaseOptions {
    /// How long a granted lease is held (default 10 s, at most 5 min).
    pub lease: Option<Duration>,
    /// How long to wait for another caller's value while it holds the lease (default 5 s, at
    /// most 30 s; zero answers at once).
    pub wait: Option<Duration>,
    /// The tags the value will carry; their versions are recorded now, so a value computed
    /// across an invalidation of one of them is a miss as soon as it is stored.
    pub tags: Vec<String>,
}

/// A lease this caller holds: compute the value and store it with
/// [`CacheSetOptions::lease_token`] before `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLease {
    /// The secret to store the value with.
    pub token: LeaseToken,
    /// When the lease runs out and another caller may take it.
    pub expires_at: Timestamp,
}

/// The answer of [`Cache::lease`].
#[derive(Debug, Clone, PartialEq)]
pub enum CacheLeaseAnswer {
    /// A fresh value (possibly stored by the lease holder while this caller waited).
    Fresh(Value),
    /// A value past its TTL, within its stale grace. `lease` is `Some` for exactly one caller
    /// at a time: it should revalidate (compute and store) while everyone uses the stale value.
    Stale {
        /// The stale value.
        value: Value,
        /// The lease to revalidate with, if this caller got it.
        lease: Option<CacheLease>,
    },
    /// No value: this caller holds the lease and should compute and store the value.
    Granted(CacheLease),
    /// No value, and another caller still held the lease when the wait ran out: retry after
    /// at most `retry_after` (when that lease runs out; the value may come sooner).
    Pending {
        /// Time until the other caller's lease runs out.
        retry_after: Duration,
    },
}

/// The cache service. Values are JSON here and bytes (their JSON encoding) in the store.
#[derive(Clone)]
pub struct Cache {
    store: Arc<dyn CacheStore>,
    config: CacheConfig,
    /// (namespace, key) -> the computation in flight. A std mutex: held only to look up or
    /// remove an entry, never across an await.
    flights: PerKey<Flight>,
    /// (namespace, key) -> lease callers of this node waiting for its value, woken by a set
    /// through this service. A std mutex, never held across an await.
    waiters: PerKey<Arc<Notify>>,
    /// How many keys have waiters: lets sets skip the lock when nobody waits.
    waiting: Arc<AtomicUsize>,
    /// Metric label of each configured namespace (others are `other`).
    labels: Arc<HashMap<String, Arc<str>>>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Cache {
    /// Wraps `store`.
    pub fn new(store: Arc<dyn CacheStore>, config: CacheConfig) -> Self {
        let labels = config.namespaces.keys().map(|n| (n.clone(), Arc::from(n.as_str()))).collect();
        Cache {
            store,
            config,
            flights: Arc::default(),
            waiters: Arc::default(),
            waiting: Arc::default(),
            labels: Arc::new(labels),
        }
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
        let hits = raw.iter().filter(|v| v.is_some()).count() as u64;
        self.count("switchboard_cache_hits_total", namespace, hits);
        self.count("switchboard_cache_misses_total", namespace, raw.len() as u64 - hits);
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
        let options = CacheSetOptions { ttl, tags: tags.to_vec(), ..CacheSetOptions::default() };
        self.set_with(namespace, key, value, &options).await.map(|_| ())
    }

    /// Stores `value` under `key` with `options`. `false` only with a lease token that does
    /// not hold the key's lease (expired, taken over after expiry, or dropped by a delete or a
    /// prefix invalidation): then nothing was stored, because a value computed before those
    /// could otherwise outlive them. See [`CacheStore::set_leased`].
    pub async fn set_with(&self, namespace: &str, key: &str, value: &Value, options: &CacheSetOptions) -> Result<bool> {
        if options.lease_token.is_some() && !options.tags.is_empty() {
            return Err(Error::invalid("tags", "a set with a lease token takes the tags given to the lease"));
        }
        let entry = self.write(namespace, key, value, options)?;
        let stored = match &options.lease_token {
            Some(token) => observe("cache", "set_leased", self.store.set_leased(namespace, &entry, token)).await?,
            None => {
                observe("cache", "set", self.store.mset(namespace, std::slice::from_ref(&entry))).await?;
                true
            }
        };
        if stored {
            self.count("switchboard_cache_sets_total", namespace, 1);
            self.wake(namespace, std::iter::once(key));
        }
        Ok(stored)
    }

    /// Stores every `(key, value)` (at most 1000) with one `ttl` and `tags`, atomically.
    pub async fn mset(
        &self,
        namespace: &str,
        entries: &[(String, Value)],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<()> {
        let options = CacheSetOptions { ttl, tags: tags.to_vec(), ..CacheSetOptions::default() };
        self.mset_with(namespace, entries, &options).await
    }

    /// Stores every `(key, value)` (at most 1000) with one set of `options`, atomically. Lease
    /// tokens are per key: `options.lease_token` must be `None`.
    pub async fn mset_with(
        &self,
        namespace: &str,
        entries: &[(String, Value)],
        options: &CacheSetOptions,
    ) -> Result<()> {
        if options.lease_token.is_some() {
            return Err(Error::invalid("lease_token", "leases are per key: store leased values one by one"));
        }
        check_batch(entries.len())?;
        let writes = entries.iter().map(|(k, v)| self.write(namespace, k, v, options)).collect::<Result<Vec<_>>>()?;
        observe("cache", "mset", self.store.mset(namespace, &writes)).await?;
        self.count("switchboard_cache_sets_total", namespace, writes.len() as u64);
        self.wake(namespace, entries.iter().map(|(k, _)| k.as_str()));
        Ok(())
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
        if tags.is_empty() {
            return Err(Error::invalid("tags", "give at least one tag"));
        }
        check_tags(tags)?;
        observe("cache", "invalidate_tags", self.store.invalidate_tags(namespace, tags)).await?;
        self.count("switchboard_cache_invalidations_total", namespace, 1);
        Ok(())
    }

    /// Invalidates every value carrying one of `tags` in every namespace (e.g. everything about
    /// one user, whichever namespace caches it); how many namespaces were known. See
    /// [`CacheStore::invalidate_tags_everywhere`].
    pub async fn invalidate_tags_everywhere(&self, tags: &[String]) -> Result<u64> {
        if tags.is_empty() {
            return Err(Error::invalid("tags", "give at least one tag"));
        }
        check_tags(tags)?;
        let namespaces =
            observe("cache", "invalidate_tags_everywhere", self.store.invalidate_tags_everywhere(tags)).await?;
        self.count("switchboard_cache_invalidations_total", OTHER_NAMESPACE, 1);
        Ok(namespaces)
    }

    /// Removes every value whose key starts with `prefix` (non-empty) and drops their leases;
    /// how many values.
    pub async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64> {
        check_namespace(namespace)?;
        check_key(prefix).map_err(|_| Error::invalid("prefix", format!("must be 1..={MAX_CACHE_KEY_BYTES} bytes")))?;
        let removed = observe("cache", "invalidate_prefix", self.store.invalidate_prefix(namespace, prefix)).await?;
        self.count("switchboard_cache_invalidations_total", namespace, 1);
        Ok(removed)
    }

    /// The namespace's counters.
    pub async fn stats(&self, namespace: &str) -> Result<CacheStats> {
        check_namespace(namespace)?;
        observe("cache", "stats", self.store.stats(namespace)).await
    }

    /// Keys of `namespace` starting with `prefix` (may be empty), paged (`limit` 1..=1000,
    /// default 100). See [`CacheStore::keys`].
    pub async fn keys(
        &self,
        namespace: &str,
        prefix: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> Result<CacheKeyPage> {
        check_namespace(namespace)?;
        if prefix.len() > MAX_CACHE_KEY_BYTES {
            return Err(Error::invalid("prefix", format!("must be at most {MAX_CACHE_KEY_BYTES} bytes")));
        }
        if let Some(cursor) = cursor
            && (cursor.is_empty() || cursor.len() > MAX_CACHE_KEY_BYTES)
        {
            return Err(Error::invalid("cursor", format!("must be 1..={MAX_CACHE_KEY_BYTES} bytes")));
        }
        let limit = limit.unwrap_or(100);
        if limit == 0 || limit > MAX_BATCH {
            return Err(Error::invalid("limit", format!("must be 1..={MAX_BATCH}")));
        }
        observe("cache", "keys", self.store.keys(namespace, prefix, cursor, limit)).await
    }

    /// The counters of every namespace the engine has seen and every configured one, by name
    /// (at most 1000 namespaces).
    pub async fn stats_all(&self) -> Result<Vec<(String, CacheStats)>> {
        let mut names = observe("cache", "namespaces", self.store.namespaces(MAX_BATCH)).await?;
        names.extend(self.config.namespaces.keys().cloned());
        names.sort_unstable();
        names.dedup();
        names.truncate(MAX_BATCH);
        let mut all = Vec::with_capacity(names.len());
        for name in names {
            let stats = observe("cache", "stats", self.store.stats(&name)).await?;
            all.push((name, stats));
        }
        Ok(all)
    }

    /// Stampede protection across processes: the fresh value of `key`, or else the right to
    /// compute it. The first caller to miss gets a lease ([`CacheLeaseAnswer::Granted`]) and
    /// should store the value with its token; callers arriving while the lease is held wait
    /// (up to `options.wait`) for that value. A lease that runs out (its holder died) is granted
    /// to the next caller. Within a value's stale grace every caller gets the stale value at
    /// once and exactly one of them also gets a lease to revalidate it.
    pub async fn lease(&self, namespace: &str, key: &str, options: &CacheLeaseOptions) -> Result<CacheLeaseAnswer> {
        check_namespace(namespace)?;
        check_key(key)?;
        check_tags(&options.tags)?;
        let lease = options.lease.unwrap_or(DEFAULT_CACHE_LEASE);
        if lease.is_zero() || lease > Duration::from_millis(MAX_CACHE_LEASE_MS) {
            return Err(Error::invalid("lease_ms", format!("must be 1..={MAX_CACHE_LEASE_MS}")));
        }
        let wait = options.wait.unwrap_or(DEFAULT_CACHE_LEASE_WAIT);
        if wait > Duration::from_millis(MAX_CACHE_LEASE_WAIT_MS) {
            return Err(Error::invalid("wait_ms", format!("must be at most {MAX_CACHE_LEASE_WAIT_MS}")));
        }
        let mut request = CacheLeaseRequest {
            key: key.to_owned(),
            token: LeaseToken::generate()?,
            ttl: lease,
            tags: options.tags.clone(),
            count: true,
        };
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(5);
        let waiter = Waiter::new(self, namespace, key);
        loop {
            // Registered before the read, so a set landing between the read and the wait
            // still wakes this caller.
            let notified = waiter.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let outcome = observe("cache", "lease", self.store.acquire_lease(namespace, &request)).await?;
            if request.count {
                let name = if matches!(outcome, CacheLeaseOutcome::Hit(_)) {
                    "switchboard_cache_hits_total"
                } else {
                    "switchboard_cache_misses_total"
                };
                self.count(name, namespace, 1);
            }
            request.count = false;
            let (expires_at, stale) = match outcome {
                CacheLeaseOutcome::Hit(bytes) => return Ok(CacheLeaseAnswer::Fresh(decode(&bytes)?)),
                CacheLeaseOutcome::Granted { expires_at, stale } => {
                    let lease = CacheLease { token: request.token, expires_at };
                    return Ok(match stale {
                        Some(bytes) => CacheLeaseAnswer::Stale { value: decode(&bytes)?, lease: Some(lease) },
                        None => CacheLeaseAnswer::Granted(lease),
                    });
                }
                CacheLeaseOutcome::Held { expires_at, stale } => (expires_at, stale),
            };
            if let Some(bytes) = stale {
                return Ok(CacheLeaseAnswer::Stale { value: decode(&bytes)?, lease: None });
            }
            // The lease's end is on the engine's clock; clamp it so skew cannot stall or spin.
            let lease_left =
                Duration::from_millis(Timestamp::now().millis_until(expires_at).clamp(1, MAX_CACHE_LEASE_MS));
            let now = Instant::now();
            if now >= deadline {
                return Ok(CacheLeaseAnswer::Pending { retry_after: lease_left });
            }
            let nap = pause.min(deadline - now).min(lease_left);
            let _ = tokio::time::timeout(nap, notified).await;
            pause = (pause * 2).min(MAX_POLL_PAUSE);
        }
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
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
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
                let options = CacheSetOptions { ttl, tags: tags.to_vec(), ..CacheSetOptions::default() };
                let mut entry = self.write(namespace, key, &value, &options)?;
                entry.tag_versions = Some(versions);
                observe("cache", "set", self.store.mset(namespace, std::slice::from_ref(&entry))).await?;
                self.count("switchboard_cache_sets_total", namespace, 1);
                self.wake(namespace, std::iter::once(key));
                Ok(value)
            })
            .await
            .clone();
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(&id).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&id);
        }
        result
    }

    /// [`Cache::get_or_set`] for any serde type, stored as JSON. `compute` fails with any error
    /// that converts into [`Error`] (wrap the caller's own with [`Error::external`]; they reach
    /// every waiting caller). A stored value that is not a `T` fails with [`Error::Conflict`].
    pub async fn get_or_set_as<T, E, F, Fut>(
        &self,
        namespace: &str,
        key: &str,
        ttl: Option<Duration>,
        tags: &[String],
        compute: F,
    ) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        E: Into<Error>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let value = self
            .get_or_set(namespace, key, ttl, tags, || async {
                let computed = compute().await.map_err(Into::into)?;
                serde_json::to_value(computed).map_err(|e| Error::invalid("value", e))
            })
            .await?;
        typed(key, value)
    }

    /// [`Cache::get`] as a serde type; a stored value that is not a `T` fails with
    /// [`Error::Conflict`].
    pub async fn get_as<T: DeserializeOwned>(&self, namespace: &str, key: &str) -> Result<Option<T>> {
        self.get(namespace, key).await?.map(|value| typed(key, value)).transpose()
    }

    fn write(&self, namespace: &str, key: &str, value: &Value, options: &CacheSetOptions) -> Result<CacheWrite> {
        check_namespace(namespace)?;
        check_key(key)?;
        check_tags(&options.tags)?;
        let ttl = options.ttl.unwrap_or_else(|| self.config.default_ttl(namespace));
        if ttl.is_zero() || ttl > Duration::from_secs(MAX_CACHE_TTL_SECONDS) {
            return Err(Error::invalid("ttl_seconds", format!("must be > 0 and at most {MAX_CACHE_TTL_SECONDS}")));
        }
        let stale = options.stale.unwrap_or_default();
        if stale > Duration::from_secs(MAX_CACHE_TTL_SECONDS) {
            return Err(Error::invalid("stale_seconds", format!("must be at most {MAX_CACHE_TTL_SECONDS}")));
        }
        let bytes = serde_json::to_vec(value).map_err(|e| Error::invalid("value", e))?;
        if bytes.len() > MAX_CACHE_VALUE_BYTES {
            return Err(Error::PayloadTooLarge(format!("value: must be at most {MAX_CACHE_VALUE_BYTES} bytes")));
        }
        Ok(CacheWrite { key: key.to_owned(), value: bytes, ttl, stale, tags: options.tags.clone(), tag_versions: None })
    }

    /// Adds `n` to a per-namespace counter; namespaces not in `cache.namespaces` share the
    /// label `other`, so clients cannot grow the label set.
    fn count(&self, name: &'static str, namespace: &str, n: u64) {
        if n == 0 {
            return;
        }
        let label: metrics::SharedString = match self.labels.get(namespace) {
            Some(label) => label.clone().into(),
            None => OTHER_NAMESPACE.into(),
        };
        metrics::counter!(name, "namespace" => label).increment(n);
    }

    /// Wakes this node's lease callers waiting for any of `keys`.
    fn wake<'k>(&self, namespace: &str, keys: impl Iterator<Item = &'k str>) {
        if self.waiting.load(Ordering::Acquire) == 0 {
            return;
        }
        let waiters = self.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if let Some(notify) = waiters.get(&(namespace.to_owned(), key.to_owned())) {
                notify.notify_waiters();
            }
        }
    }
}

/// One lease caller's registration in [`Cache::waiters`]; removes the key's entry when the last
/// caller waiting for it leaves (also when cancelled).
struct Waiter<'a> {
    cache: &'a Cache,
    id: (String, String),
    notify: Arc<Notify>,
}

impl<'a> Waiter<'a> {
    fn new(cache: &'a Cache, namespace: &str, key: &str) -> Self {
        let id = (namespace.to_owned(), key.to_owned());
        let mut waiters = cache.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        let notify = waiters
            .entry(id.clone())
            .or_insert_with(|| {
                cache.waiting.fetch_add(1, Ordering::AcqRel);
                Arc::default()
            })
            .clone();
        Waiter { cache, id, notify }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut waiters = self.cache.waiters.lock().unwrap_or_else(PoisonError::into_inner);
        // The map's reference and ours: nobody else waits for this key (clones happen under
        // this lock, so the count cannot grow meanwhile).
        if Arc::strong_count(&self.notify) == 2 && waiters.remove(&self.id).is_some() {
            self.cache.waiting.fetch_sub(1, Ordering::AcqRel);
        }
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

/// A cached value as `T`.
fn typed<T: DeserializeOwned>(key: &str, value: Value) -> Result<T> {
    serde_json::from_value(value)
        .map_err(|e| Error::Conflict(format!("cache: the value of {key:?} is not of the type asked for: {e}")))
}
