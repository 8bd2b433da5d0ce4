//! `MemoryHealth`: the memory engine is always reachable.

use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::{EngineHealth, EngineInfo, Result};

pub(crate) struct MemoryHealth;

#[async_trait]
impl EngineHealth for MemoryHealth {
    async fn ping(&self) -> Result<Duration> {
        Ok(Duration::ZERO)
    }

    fn connected(&self) -> bool {
        true
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { name: "memory".into(), location: "in-process".into(), key_prefix: String::new() }
    }
}
