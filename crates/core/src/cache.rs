//! The tagged cache: namespaced byte values with TTLs, tags invalidated by version counters,
//! prefix invalidation, per-namespace stats, leases with stale-while-revalidate, and the
//! [`CacheStore`] contract.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;
use crate::ids::LeaseToken;
use crate::time::Timestamp;

/// One value to store. The service validates every field before a store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheWrite {
    /// The key inside the namespace (1..=512 bytes).
    pub key: String,
    /// The value, opaque bytes (the [`crate::Cache`] service stores JSON).
    pub value: Vec<u8>,
    /// How long the value is fresh (> 0).
    pub ttl: Duration,
    /// Stale-while-revalidate grace after `ttl` (zero: none). Within it the value is a miss
    /// for reads but [`CacheStore::acquire_lease`] still returns it, marked stale.
    pub stale: Duration,
    /// Tags it can be invalidated by (at most 32, id-like names).
    pub tags: Vec<String>,
    /// The versions of `tags` (same order) read before the value was computed, from
    /// [`CacheStore::tag_versions`]: an invalidation in between makes the value a miss at once.
    /// `None` records the versions current at the write.
    pub tag_versions: Option<Vec<u64>>,
}

/// Counters of one namespace since the engine started (Redis: since the namespace's stats
/// key was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheStats {
    /// Reads (`get`, each key of `mget`) that found a live value.
    pub hits: u64,
    /// Reads that found nothing, an expired value or one invalidated by a tag.
    pub misses: u64,
    /// Values written (`set`, each entry of `mset`).
    pub sets: u64,
    /// Invalidation calls (by tags or by prefix), one per call.
    pub invalidations: u64,
    /// Values dropped to stay under the memory engine's byte budget (always 0 on Redis, whose
    /// own `maxmemory` eviction is invisible to Switchboard).
    pub evictions: u64,
    /// Values stored and not expired. Values invalidated by a tag count until they are read or
    /// overwritten (invalidation is one counter increment, it does not visit the values).
    pub keys: u64,
}

/// What [`CacheStore::acquire_lease`] is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheLeaseRequest {
    /// The key inside the namespace.
    pub key: String,
    /// The token the lease gets if it is granted (fresh, from [`LeaseToken::generate`]).
    pub token: LeaseToken,
    /// How long a granted lease is held (> 0).
    pub ttl: Duration,
    /// The tags the leased value will carry: their versions are recorded with the lease.
    pub tags: Vec<String>,
    /// Whether this call counts a hit or a miss (`false` for the polls of a waiting caller).
    pub count: bool,
}

/// The answer of [`CacheStore::acquire_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheLeaseOutcome {
    /// A fresh value: nothing to compute.
    Hit(Vec<u8>),
    /// No fresh value and nobody held the lease: the caller now holds it until `expires_at` and
    /// should compute the value and store it with [`CacheStore::set_leased`]. `stale` is the
    /// value past its TTL but within its grace, if any.
    Granted {
        /// When the lease runs out (engine clock).
        expires_at: Timestamp,
        /// The stale value, if any.
        stale: Option<Vec<u8>>,
    },
    /// No fresh value and another caller holds the lease until `expires_at`.
    Held {
        /// When that lease runs out (engine clock).
        expires_at: Timestamp,
        /// The stale value, if any.
        stale: Option<Vec<u8>>,
    },
}

/// Storage of cached values.
///
/// Contract:
/// - Everything is scoped by a namespace (a validated id-like name); keys, tags and stats of
///   two namespaces never mix. Values are bytes; a value is live until its TTL runs out
///   (engine clock) and is never returned afterwards.
/// - Tags are versioned per namespace: [`CacheStore::invalidate_tags`] increments each tag's
///   version in one atomic step; [`CacheStore::mset`] records, atomically with the write, the
///   versions of its tags at that moment; a read treats a value whose recorded version of any
///   tag is older than that tag's current version as a miss (and deletes it). So a set that is
///   ordered before an invalidation can never be read after it, whatever the interleaving:
///   there is no index of tagged keys for an invalidation to miss.
/// - `get`/`mget` count hits and misses; `exists` counts nothing.
/// - Freshness: a value is fresh for its `ttl`, then stale for its `stale` grace, then gone.
///   Only [`CacheStore::acquire_lease`] returns stale values; every other read treats them as
///   misses, and `delete` reports them as not stored. [`CacheStats::keys`] counts them.
/// - Leases: at most one live lease per key. A lease records the versions of its tags when it
///   is granted; [`CacheStore::set_leased`] stores the value with those versions, so a value
///   computed across an invalidation of one of its tags is a miss at once. `delete` and
///   `invalidate_prefix` also drop the leases of the keys they cover, so a value computed before
///   them can never be stored by its lease after them. Tokens are compared in constant time.
#[async_trait]
pub trait CacheStore: Send + Sync + 'static {
    /// The live values of `keys`, in order (`None` for a miss). One atomic read.
    async fn mget(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>>;

    /// The current versions of `tags` (0 for a tag never invalidated), in order.
    async fn tag_versions(&self, namespace: &str, tags: &[String]) -> Result<Vec<u64>>;

    /// Whether `key` holds a live value (no stats counted).
    async fn exists(&self, namespace: &str, key: &str) -> Result<bool>;

    /// Stores every entry (replacing what was there) in one atomic step, each recording its
    /// [`CacheWrite::tag_versions`] or else the current versions of its tags.
    async fn mset(&self, namespace: &str, entries: &[CacheWrite]) -> Result<()>;

    /// Removes `key`; `true` if a value was stored there.
    async fn delete(&self, namespace: &str, key: &str) -> Result<bool>;

    /// Increments the version of every tag in `tags`, in one atomic step: every value set
    /// before it with one of these tags is a miss from the moment this returns.
    async fn invalidate_tags(&self, namespace: &str, tags: &[String]) -> Result<()>;

    /// [`CacheStore::invalidate_tags`] in every namespace: every
    /// value set before it, in any namespace, with one of these tags is a miss from the moment
    /// this returns. Atomic per namespace (engines may take one step per namespace); how many
    /// namespaces were known at the time.
    async fn invalidate_tags_everywhere(&self, tags: &[String]) -> Result<u64>;

    /// Removes every value whose key starts with `prefix`; how many were removed.
    async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64>;

    /// The namespace's counters.
    async fn stats(&self, namespace: &str) -> Result<CacheStats>;

    /// Keys of the namespace starting with `prefix` whose values have not expired (the keys
    /// [`CacheStats::keys`] counts: a value invalidated by a tag may be listed until it is read),
    /// in ascending byte order, at most `limit` after `cursor` (exclusive). Paging through
    /// returns every key that lives throughout exactly once. `next_cursor` is `None` on the last
    /// page; a page may hold fewer than `limit` keys (even none) before it. For debugging: cost
    /// is proportional to the keys scanned.
    async fn keys(&self, namespace: &str, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<CacheKeyPage>;

    /// In one atomic step: a fresh value of `request.key` is a [`CacheLeaseOutcome::Hit`]; else a
    /// live lease on the key is [`CacheLeaseOutcome::Held`]; else this caller is granted the lease
    /// (replacing an expired one) with `request.token`, for `request.ttl`, recording the current
    /// versions of `request.tags`. Counts one hit or miss when `request.count`.
    async fn acquire_lease(&self, namespace: &str, request: &CacheLeaseRequest) -> Result<CacheLeaseOutcome>;

    /// In one atomic step: if `token` holds the live lease of `write.key`, stores the value
    /// with the lease's tags and their versions recorded at the grant (`write.tags` and
    /// `write.tag_versions` are ignored), releases the lease, counts a set and returns `true`.
    /// Otherwise (no lease, expired, another token, dropped by `delete` or `invalidate_prefix`)
    /// stores nothing and returns `false`.
    async fn set_leased(&self, namespace: &str, write: &CacheWrite, token: &LeaseToken) -> Result<bool>;

    /// The namespaces this engine has seen (values, tags, leases or counters), sorted, at most
    /// `limit` of them.
    async fn namespaces(&self, limit: usize) -> Result<Vec<String>>;
}

/// One page of [`CacheStore::keys`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CacheKeyPage {
    /// Keys, in ascending byte order.
    pub keys: Vec<String>,
    /// Pass it as `cursor` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
