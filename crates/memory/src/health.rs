//! `MemoryHealth` and `MemoryLifecycle`: the memory engine is reachable until it is closed; its
//! location says where (if anywhere) its state is kept; its one background loop is the expiry
//! sweeper.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::{BackgroundTask, EngineHealth, EngineInfo, EngineLifecycle, Error, Result};
use tokio_util::sync::CancellationToken;

use crate::sweeper::{self, WeakSweepable};

/// Set once the engine is closed.
pub(crate) type Closed = Arc<AtomicBool>;

pub(crate) struct MemoryHealth {
    pub(crate) closed: Closed,
    /// `in-process`, or the data dir and sync policy of the durable mode.
    pub(crate) location: String,
}

#[async_trait]
impl EngineHealth for MemoryHealth {
    async fn ping(&self) -> Result<Duration> {
        match self.closed.load(Ordering::Acquire) {
            true => Err(Error::Unavailable("memory engine: closed".into())),
            false => Ok(Duration::ZERO),
        }
    }

    fn connected(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    fn info(&self) -> EngineInfo {
        EngineInfo { name: "memory".into(), location: self.location.clone(), key_prefix: String::new() }
    }
}

pub(crate) struct MemoryLifecycle {
    pub(crate) closed: Closed,
    pub(crate) sweep_interval: Duration,
    /// The stores the sweeper visits, until the node takes them.
    pub(crate) sweepable: Mutex<Option<Vec<WeakSweepable>>>,
}

#[async_trait]
impl EngineLifecycle for MemoryLifecycle {
    fn background(&self, stop: CancellationToken) -> Vec<(&'static str, BackgroundTask)> {
        let taken = crate::lock(&self.sweepable).take();
        taken.map_or_else(Vec::new, |stores| {
            vec![("memory.sweeper", Box::pin(sweeper::run(self.sweep_interval, stores, stop)) as BackgroundTask)]
        })
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}
