//! `MemoryCache`: namespaced values under one byte budget with LRU eviction, tag versions,
//! leases, TTL (and stale grace) checked on read and swept.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::{
    CacheKeyPage, CacheLeaseOutcome, CacheLeaseRequest, CacheStats, CacheStore, CacheWrite, LeaseToken, Result,
    Timestamp,
};

use crate::lock;
use crate::sweeper::Sweepable;

/// Bytes charged per entry on top of its key, value and tags (map slots, LRU node).
const ENTRY_OVERHEAD: usize = 96;

/// The cache in memory. See [`CacheStore`] for the contract.
///
/// One mutex over everything: the byte budget and the LRU order are global across namespaces,
/// and every operation is a few map updates, so a single lock keeps each operation atomic
/// (tag checks and writes included) without lock ordering.
pub(crate) struct MemoryCache {
    max_bytes: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    namespaces: HashMap<String, Namespace>,
    /// Versions of tags invalidated in every namespace at once: a tag's version in a namespace
    /// is its own count plus this one, so namespaces created later count them too.
    everywhere: HashMap<String, u64>,
    /// Use tick -> (namespace, key): least recently used first.
    lru: BTreeMap<u64, (String, String)>,
    tick: u64,
    bytes: usize,
}

#[derive(Default)]
struct Namespace {
    /// Ordered so prefix invalidation is a range scan.
    entries: BTreeMap<String, Entry>,
    tag_versions: HashMap<String, u64>,
    /// Live (or expired, until swept or replaced) leases by key; ordered for prefix drops.
    leases: BTreeMap<String, Lease>,
    stats: CacheStats,
}

struct Lease {
    token: LeaseToken,
    expires_at: Timestamp,
    /// (tag, its version when the lease was granted).
    tags: Vec<(String, u64)>,
}

struct Entry {
    value: Vec<u8>,
    /// Fresh before this; stale (leases only) from here until `expires_at`.
    fresh_until: Timestamp,
    /// Gone from here on.
    expires_at: Timestamp,
    /// (tag, its version when the value was set).
    tags: Vec<(String, u64)>,
    used: u64,
    bytes: usize,
}

impl MemoryCache {
    pub(crate) fn new(max_bytes: usize) -> Self {
        MemoryCache { max_bytes, state: Mutex::default() }
    }
}

impl State {
    /// Removes one entry and its LRU node; `true` if it was there.
    fn remove(&mut self, namespace: &str, key: &str) -> bool {
        let Some(ns) = self.namespaces.get_mut(namespace) else { return false };
        let Some(entry) = ns.entries.remove(key) else { return false };
        self.lru.remove(&entry.used);
        self.bytes -= entry.bytes;
        true
    }

    /// The fresh value of `key`, touching its LRU position. See [`State::lookup`].
    fn read(&mut self, namespace: &str, key: &str, now: Timestamp) -> Option<Vec<u8>> {
        self.lookup(namespace, key, now).and_then(|(value, fresh)| fresh.then_some(value))
    }

    /// The stored value of `key` and whether it is fresh (else stale, within its grace),
    /// touching its LRU position; removes it if expired or invalidated by a tag.
    fn lookup(&mut self, namespace: &str, key: &str, now: Timestamp) -> Option<(Vec<u8>, bool)> {
        let ns = self.namespaces.get_mut(namespace)?;
        let entry = ns.entries.get_mut(key)?;
        let everywhere = &self.everywhere;
        let invalidated = entry.tags.iter().any(|(tag, v)| version(&ns.tag_versions, everywhere, tag) > *v);
        if invalidated || entry.expires_at <= now {
            self.remove(namespace, key);
            return None;
        }
        self.tick += 1;
        self.lru.remove(&entry.used);
        entry.used = self.tick;
        self.lru.insert(self.tick, (namespace.to_owned(), key.to_owned()));
        Some((entry.value.clone(), entry.fresh_until > now))
    }

    /// Stores one value whose tags carry the given versions.
    fn store(&mut self, namespace: &str, write: &CacheWrite, tags: Vec<(String, u64)>, now: Timestamp) {
        self.remove(namespace, &write.key);
        self.tick += 1;
        let used = self.tick;
        let bytes =
            ENTRY_OVERHEAD + write.key.len() + write.value.len() + tags.iter().map(|(t, _)| t.len() + 8).sum::<usize>();
        let fresh_until = now.plus(write.ttl);
        let entry = Entry {
            value: write.value.clone(),
            fresh_until,
            expires_at: fresh_until.plus(write.stale),
            tags,
            used,
            bytes,
        };
        let ns = self.namespaces.entry(namespace.to_owned()).or_default();
        ns.entries.insert(write.key.clone(), entry);
        ns.stats.sets += 1;
        self.lru.insert(used, (namespace.to_owned(), write.key.clone()));
        self.bytes += bytes;
    }

    fn evict_to(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let Some((_, (namespace, key))) = self.lru.pop_first() else { break };
            if self.remove(&namespace, &key)
                && let Some(ns) = self.namespaces.get_mut(&namespace)
            {
                ns.stats.evictions += 1;
            }
        }
    }
}

#[async_trait]
impl CacheStore for MemoryCache {
    async fn mget(&self, namespace: &str, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let values: Vec<_> = keys.iter().map(|k| state.read(namespace, k, now)).collect();
        let hits = values.iter().filter(|v| v.is_some()).count() as u64;
        let stats = &mut state.namespaces.entry(namespace.to_owned()).or_default().stats;
        stats.hits += hits;
        stats.misses += values.len() as u64 - hits;
        Ok(values)
    }

    async fn tag_versions(&self, namespace: &str, tags: &[String]) -> Result<Vec<u64>> {
        let state = lock(&self.state);
        let empty = HashMap::new();
        let versions = state.namespaces.get(namespace).map_or(&empty, |ns| &ns.tag_versions);
        Ok(tags.iter().map(|t| version(versions, &state.everywhere, t)).collect())
    }

    async fn exists(&self, namespace: &str, key: &str) -> Result<bool> {
        Ok(lock(&self.state).read(namespace, key, Timestamp::now()).is_some())
    }

    async fn mset(&self, namespace: &str, entries: &[CacheWrite]) -> Result<()> {
        let now = Timestamp::now();
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        for write in entries {
            let ns = state.namespaces.entry(namespace.to_owned()).or_default();
            let tags: Vec<_> = write
                .tags
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    let given = write.tag_versions.as_ref().and_then(|v| v.get(i).copied());
                    (t.clone(), given.unwrap_or_else(|| version(&ns.tag_versions, &state.everywhere, t)))
                })
                .collect();
            state.store(namespace, write, tags, now);
        }
        state.evict_to(self.max_bytes);
        Ok(())
    }

    async fn delete(&self, namespace: &str, key: &str) -> Result<bool> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let live = state.read(namespace, key, now).is_some();
        state.remove(namespace, key);
        if let Some(ns) = state.namespaces.get_mut(namespace) {
            ns.leases.remove(key);
        }
        Ok(live)
    }

    async fn invalidate_tags(&self, namespace: &str, tags: &[String]) -> Result<()> {
        let mut state = lock(&self.state);
        let ns = state.namespaces.entry(namespace.to_owned()).or_default();
        for tag in tags {
            *ns.tag_versions.entry(tag.clone()).or_default() += 1;
        }
        ns.stats.invalidations += 1;
        Ok(())
    }

    async fn invalidate_tags_everywhere(&self, tags: &[String]) -> Result<u64> {
        let mut state = lock(&self.state);
        for tag in tags {
            *state.everywhere.entry(tag.clone()).or_default() += 1;
        }
        for ns in state.namespaces.values_mut() {
            ns.stats.invalidations += 1;
        }
        Ok(state.namespaces.len() as u64)
    }

    async fn invalidate_prefix(&self, namespace: &str, prefix: &str) -> Result<u64> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let keys: Vec<String> = match state.namespaces.get_mut(namespace) {
            Some(ns) => {
                let leased: Vec<String> = ns
                    .leases
                    .range(prefix.to_owned()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(prefix))
                    .cloned()
                    .collect();
                for key in leased {
                    ns.leases.remove(&key);
                }
                ns.entries
                    .range(prefix.to_owned()..)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(prefix))
                    .cloned()
                    .collect()
            }
            None => Vec::new(),
        };
        let mut removed = 0;
        for key in keys {
            if state.read(namespace, &key, now).is_some() {
                removed += 1;
            }
            state.remove(namespace, &key);
        }
        state.namespaces.entry(namespace.to_owned()).or_default().stats.invalidations += 1;
        Ok(removed)
    }

    async fn keys(&self, namespace: &str, prefix: &str, cursor: Option<&str>, limit: usize) -> Result<CacheKeyPage> {
        use std::ops::Bound;
        let now = Timestamp::now();
        let state = lock(&self.state);
        let Some(ns) = state.namespaces.get(namespace) else { return Ok(CacheKeyPage::default()) };
        let start = match cursor {
            Some(c) if c >= prefix => Bound::Excluded(c.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        let keys: Vec<String> = ns
            .entries
            .range::<String, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| e.expires_at > now)
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect();
        let next_cursor = (keys.len() == limit).then(|| keys.last().cloned()).flatten();
        Ok(CacheKeyPage { keys, next_cursor })
    }

    async fn stats(&self, namespace: &str) -> Result<CacheStats> {
        let now = Timestamp::now();
        let state = lock(&self.state);
        Ok(state.namespaces.get(namespace).map_or_else(CacheStats::default, |ns| CacheStats {
            keys: ns.entries.values().filter(|e| e.expires_at > now).count() as u64,
            ..ns.stats
        }))
    }

    async fn acquire_lease(&self, namespace: &str, request: &CacheLeaseRequest) -> Result<CacheLeaseOutcome> {
        let now = Timestamp::now();
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        let found = state.lookup(namespace, &request.key, now);
        let ns = state.namespaces.entry(namespace.to_owned()).or_default();
        let stale = match found {
            Some((value, true)) => {
                ns.stats.hits += u64::from(request.count);
                return Ok(CacheLeaseOutcome::Hit(value));
            }
            Some((value, false)) => Some(value),
            None => None,
        };
        ns.stats.misses += u64::from(request.count);
        if let Some(lease) = ns.leases.get(&request.key)
            && lease.expires_at > now
        {
            return Ok(CacheLeaseOutcome::Held { expires_at: lease.expires_at, stale });
        }
        let tags = request.tags.iter().map(|t| (t.clone(), version(&ns.tag_versions, &state.everywhere, t))).collect();
        let expires_at = now.plus(request.ttl);
        ns.leases.insert(request.key.clone(), Lease { token: request.token.clone(), expires_at, tags });
        Ok(CacheLeaseOutcome::Granted { expires_at, stale })
    }

    async fn set_leased(&self, namespace: &str, write: &CacheWrite, token: &LeaseToken) -> Result<bool> {
        let now = Timestamp::now();
        let mut state = lock(&self.state);
        let Some(ns) = state.namespaces.get_mut(namespace) else { return Ok(false) };
        // `LeaseToken` equality is constant time.
        let held = ns.leases.get(&write.key).is_some_and(|l| l.expires_at > now && l.token == *token);
        if !held {
            return Ok(false);
        }
        let Some(lease) = ns.leases.remove(&write.key) else { return Ok(false) };
        state.store(namespace, write, lease.tags, now);
        state.evict_to(self.max_bytes);
        Ok(true)
    }

    async fn namespaces(&self, limit: usize) -> Result<Vec<String>> {
        let state = lock(&self.state);
        let mut names: Vec<String> = state.namespaces.keys().cloned().collect();
        names.sort_unstable();
        names.truncate(limit);
        Ok(names)
    }
}

/// A tag's version in a namespace: its own invalidations plus those made everywhere.
fn version(own: &HashMap<String, u64>, everywhere: &HashMap<String, u64>, tag: &str) -> u64 {
    own.get(tag).copied().unwrap_or(0) + everywhere.get(tag).copied().unwrap_or(0)
}

impl Sweepable for MemoryCache {
    fn sweep(&self, now: Timestamp) {
        let mut state = lock(&self.state);
        let expired: Vec<(String, String)> = state
            .namespaces
            .iter()
            .flat_map(|(n, ns)| {
                ns.entries.iter().filter(|(_, e)| e.expires_at <= now).map(move |(k, _)| (n.clone(), k.clone()))
            })
            .collect();
        for (namespace, key) in expired {
            state.remove(&namespace, &key);
        }
        for ns in state.namespaces.values_mut() {
            ns.leases.retain(|_, lease| lease.expires_at > now);
        }
        state.namespaces.retain(|_, ns| {
            !ns.entries.is_empty()
                || !ns.tag_versions.is_empty()
                || !ns.leases.is_empty()
                || ns.stats != CacheStats::default()
        });
    }
}
