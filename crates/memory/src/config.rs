//! [`MemoryConfig`]: settings of the memory engine.

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
        Ok(())
    }
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig { sweep_interval: Duration::from_secs(1), cache_max_bytes: 64 * 1024 * 1024, max_jobs: 1_000_000 }
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
