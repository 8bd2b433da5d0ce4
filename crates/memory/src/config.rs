//! [`MemoryConfig`]: settings of the memory engine.

use std::path::PathBuf;
use std::time::Duration;

use switchboard_core::{Error, Result};

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
    /// Where the durable mode keeps its journal (default none: state lives in memory only and is
    /// lost on restart). When set, every state change is persisted before it is acknowledged,
    /// and a restart restores the state; one process at a time owns the dir.
    pub data_dir: Option<PathBuf>,
    /// When the journal is fsynced (default [`SyncPolicy::EverySec`]); only used with a data dir.
    pub sync: SyncPolicy,
    /// Log bytes written after which the state is snapshotted and older logs deleted (default
    /// 64 MiB).
    pub compact_log_bytes: u64,
}

/// When the durable mode's journal is fsynced, like Redis's `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    /// Before every answer: no acknowledged write is lost, even on power loss. Concurrent
    /// changes share one fsync (group commit).
    Always,
    /// Once a second: a process crash loses nothing (every acknowledged change is written to the
    /// OS first); a power loss loses at most about a second.
    #[default]
    EverySec,
    /// Never explicitly: a process crash loses nothing, a power loss what the OS had not written.
    No,
}

impl SyncPolicy {
    /// Its setting value: `always`, `everysec` or `no`.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPolicy::Always => "always",
            SyncPolicy::EverySec => "everysec",
            SyncPolicy::No => "no",
        }
    }
}

impl std::fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SyncPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "always" => Ok(SyncPolicy::Always),
            "everysec" => Ok(SyncPolicy::EverySec),
            "no" => Ok(SyncPolicy::No),
            _ => Err(Error::invalid("sync", "must be always, everysec or no")),
        }
    }
}

impl MemoryConfig {
    /// Checks the settings: every one must be above zero (a zero sweep interval would stop the
    /// sweeper, a zero budget would refuse every write).
    pub fn validate(&self) -> Result<()> {
        if self.sweep_interval.is_zero() {
            return Err(Error::invalid("memory.sweep_interval", "must be above zero"));
        }
        if self.cache_max_bytes == 0 {
            return Err(Error::invalid("memory.cache_max_bytes", "must be above zero"));
        }
        if self.max_jobs == 0 {
            return Err(Error::invalid("memory.max_jobs", "must be above zero"));
        }
        if self.compact_log_bytes == 0 {
            return Err(Error::invalid("memory.compact_log_bytes", "must be above zero"));
        }
        Ok(())
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            sweep_interval: Duration::from_secs(1),
            cache_max_bytes: 64 * 1024 * 1024,
            max_jobs: 1_000_000,
            data_dir: None,
            sync: SyncPolicy::EverySec,
            compact_log_bytes: 64 * 1024 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_setting_is_refused_naming_it() {
        assert!(MemoryConfig::default().validate().is_ok());
        let zero_sweep = MemoryConfig { sweep_interval: Duration::ZERO, ..MemoryConfig::default() };
        assert!(matches!(zero_sweep.validate(), Err(Error::InvalidArgument(m)) if m.contains("sweep_interval")));
        let zero_jobs = MemoryConfig { max_jobs: 0, ..MemoryConfig::default() };
        assert!(crate::engine(zero_jobs).is_err());
    }
}
