//! [`MemoryConfig`]: settings of the memory engine.

use std::time::Duration;

/// Settings of the memory engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryConfig {
    /// How often expired entries are swept (default 1 s). Reads never see expired entries
    /// whatever this is; it only bounds how long dead entries use memory.
    pub sweep_interval: Duration,
    /// Byte budget of the cache (default 64 MiB): past it the least recently used values are
    /// evicted.
    pub cache_max_bytes: usize,
    /// Most job records held, in every state (default 1 000 000): an enqueue past it is refused
    /// as `engine_unavailable` (503) until jobs complete and are trimmed.
    pub max_jobs: usize,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { sweep_interval: Duration::from_secs(1), cache_max_bytes: 64 * 1024 * 1024, max_jobs: 1_000_000 }
    }
}
