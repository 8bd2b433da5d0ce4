//! The sweeper: one task per engine that periodically drops expired entries from every store.

use std::sync::Weak;
use std::time::Duration;

use switchboard_core::Timestamp;

/// A store with entries that expire.
pub(crate) trait Sweepable: Send + Sync {
    /// Drops every entry that expired at or before `now`.
    fn sweep(&self, now: Timestamp);
}

/// A store held weakly, so the sweeper stops when the engine is dropped.
pub(crate) type WeakSweepable = Weak<dyn Sweepable>;

pub(crate) fn spawn(interval: Duration, stores: Vec<WeakSweepable>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("memory engine built outside a tokio runtime: expired entries are dropped only when read");
        return;
    };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
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
    });
}
