//! The tagged cache: namespaced byte values with TTLs, tags invalidated by version counters,
//! prefix invalidation, per-namespace stats, and the [`CacheStore`] contract.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use crate::error::Result;

/// One value to store. The service validates every field before a store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheWrite {
    /// The key inside the namespace (1..=512 bytes).
    pub key: String,
    /// The value, opaque bytes (the [`crate::Cache`] service stores JSON).
    pub value: Vec<u8>,
    /// How long the value lives (> 0).
    pub ttl: Duration,
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

    /// Removes every value whose key starts with `prefix`; how many were removed.
    async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64>;

    /// The namespace's counters.
    async fn stats(&self, namespace: &str) -> Result<CacheStats>;
}
