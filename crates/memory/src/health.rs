//! `MemoryHealth`: the memory engine is always reachable; its location says where (if anywhere)
//! its state is kept.

use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::{EngineHealth, EngineInfo, Result};

pub(crate) struct MemoryHealth {
    /// `in-process`, or the data dir and sync policy of the durable mode.
    pub(crate) location: String,
}

#[async_trait]
impl EngineHealth for MemoryHealth {
    async fn ping(&self) -> Result<Duration> {
        Ok(Duration::ZERO)
    }

    fn connected(&self) -> bool {
        true
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { name: "memory".into(), location: self.location.clone(), key_prefix: String::new() }
    }
}
