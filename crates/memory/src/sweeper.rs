//! The sweeper: the engine's loop that periodically drops expired entries from every store.

use std::sync::Weak;
use std::time::Duration;

use switchboard_core::Timestamp;
use tokio_util::sync::CancellationToken;

/// A store with entries that expire.
pub(crate) trait Sweepable: Send + Sync {
    /// Drops every entry that expired at or before `now`.
    fn sweep(&self, now: Timestamp);
}

/// A store held weakly, so the sweeper stops when the engine is dropped.
pub(crate) type WeakSweepable = Weak<dyn Sweepable>;

/// Sweeps every `interval` until `stop` (or until every store is gone).
pub(crate) async fn run(interval: Duration, stores: Vec<WeakSweepable>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Timestamp::now();
        let mut alive = false;
        for store in &stores {
            if let Some(store) = store.upgrade() {
                store.sweep(now);
                alive = true;
            }
        }
        if !alive {
            return;
        }
    }
}
