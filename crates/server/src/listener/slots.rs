//! Connection slots: the `max_connections` cap, and the health reserve past it whose oldest
//! connection still waiting for its request makes way for a new one.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;

/// Descriptors the cap leaves for everything else: the listener, engine connections, log
/// files, and a few WebSockets.
const FD_HEADROOM: u64 = 64;

/// Which pool a connection's slot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pool {
    /// One of `max_connections`: serves everything.
    Main,
    /// One of `health_reserve_connections`: serves one `/health*` request.
    HealthReserve,
}

impl Pool {
    fn label(self) -> &'static str {
        match self {
            Pool::Main => "main",
            Pool::HealthReserve => "health_reserve",
        }
    }
}

/// Both pools.
pub(super) struct Slots {
    main: Arc<Semaphore>,
    reserve: Arc<Reserve>,
}

impl Slots {
    /// `max_connections` main slots and `reserve` health-only ones.
    pub(super) fn new(max_connections: usize, reserve: usize) -> Self {
        Slots {
            main: Arc::new(Semaphore::new(max_connections)),
            reserve: Arc::new(Reserve {
                capacity: reserve,
                entries: Mutex::new(VecDeque::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// A slot for a new connection: a main one if free, else a reserve one (evicting the oldest
    /// reserve connection that has not sent its request yet, if need be), else none.
    pub(super) fn admit(&self) -> Option<Slot> {
        if let Ok(permit) = self.main.clone().try_acquire_owned() {
            return Some(Slot::new(Pool::Main, Arc::new(SlotState::new(0, Some(permit))), None));
        }
        let state = self.reserve.admit()?;
        Some(Slot::new(Pool::HealthReserve, state, Some(self.reserve.clone())))
    }
}

/// The health reserve. Attackers can open reserve connections too; letting the newest
/// connection push out the oldest one still silent means a probe, which sends its request at
/// once, gets served unless the reserve is refilled faster than it can send a request.
struct Reserve {
    capacity: usize,
    /// Oldest first, pushed-out ones included until their connection is closed.
    entries: Mutex<VecDeque<Arc<SlotState>>>,
    next_id: AtomicU64,
}

impl Reserve {
    fn admit(&self) -> Option<Arc<SlotState>> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let active = entries.iter().filter(|e| !e.evict.is_cancelled()).count();
        if active >= self.capacity {
            // Pushed-out connections hold their descriptor until their task closes them: a
            // flood must not outrun that, so they count too, up to twice the reserve.
            if entries.len() >= 2 * self.capacity {
                return None;
            }
            // Connections already being served are never pushed out.
            let oldest_silent =
                entries.iter().find(|e| !e.evict.is_cancelled() && e.waiting.load(Ordering::Relaxed))?;
            metrics::counter!("switchboard_http_connections_rejected_total", "reason" => "evicted").increment(1);
            oldest_silent.evict.cancel();
        }
        let state = Arc::new(SlotState::new(self.next_id.fetch_add(1, Ordering::Relaxed), None));
        entries.push_back(state.clone());
        Some(state)
    }

    fn release(&self, id: u64) {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).retain(|e| e.id != id);
    }
}

/// What a connection and the reserve share about it.
#[derive(Debug)]
pub(super) struct SlotState {
    id: u64,
    /// Cancelled when the reserve pushes this connection out.
    evict: CancellationToken,
    /// Until its request head has arrived.
    waiting: AtomicBool,
    /// A main slot's permit, until the connection ends or is upgraded.
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

impl SlotState {
    fn new(id: u64, permit: Option<OwnedSemaphorePermit>) -> Self {
        SlotState { id, evict: CancellationToken::new(), waiting: AtomicBool::new(true), permit: Mutex::new(permit) }
    }

    /// Gives a main slot back (once): when the connection ends, or earlier when it is upgraded
    /// to WebSocket, before the `101` is written, so a client that saw it finds the slot free.
    pub(super) fn give_back(&self) {
        if self.permit.lock().unwrap_or_else(PoisonError::into_inner).take().is_some() {
            metrics::gauge!("switchboard_http_connections", "pool" => Pool::Main.label()).decrement(1.0);
        }
    }

    /// The request head arrived: from now on the connection is not pushed out.
    pub(super) fn head_received(&self) {
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// Completes when the reserve pushes this connection out (never for main slots).
    pub(super) fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.evict.cancelled()
    }
}

/// A connection's hold on a slot, given back when dropped; the open-connections gauge follows it.
pub(super) struct Slot {
    pool: Pool,
    state: Arc<SlotState>,
    reserve: Option<Arc<Reserve>>,
}

impl Slot {
    fn new(pool: Pool, state: Arc<SlotState>, reserve: Option<Arc<Reserve>>) -> Self {
        metrics::gauge!("switchboard_http_connections", "pool" => pool.label()).increment(1.0);
        Slot { pool, state, reserve }
    }

    /// Whether this connection may only serve `/health*`.
    pub(super) fn health_only(&self) -> bool {
        self.pool == Pool::HealthReserve
    }

    /// The state shared with the reserve.
    pub(super) fn state(&self) -> &Arc<SlotState> {
        &self.state
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        match &self.reserve {
            Some(reserve) => {
                reserve.release(self.state.id);
                metrics::gauge!("switchboard_http_connections", "pool" => self.pool.label()).decrement(1.0);
            }
            None => self.state.give_back(),
        }
    }
}

/// The cap in force: `max_connections`, lowered (with a warning) when it and the reserve do
/// not fit under the open-files limit, so the cap, not the kernel, is what refuses connections
/// and the health reserve stays usable.
pub(super) fn fitted_cap(config: &ServerConfig) -> usize {
    let limit = open_files_limit();
    let cap = fit(config.max_connections, config.health_reserve_connections, limit);
    if cap < config.max_connections {
        tracing::warn!(
            max_connections = config.max_connections,
            health_reserve_connections = config.health_reserve_connections,
            open_files_limit = limit,
            connections.cap = cap,
            "max_connections lowered to fit under the open-files limit; raise `ulimit -n` to allow more"
        );
    }
    cap
}

fn fit(max_connections: usize, reserve: usize, open_files: Option<u64>) -> usize {
    let Some(open_files) = open_files else { return max_connections };
    // Reserve connections being pushed out still hold a descriptor: twice the reserve.
    let room = open_files.saturating_sub(2 * reserve as u64 + FD_HEADROOM).max(1);
    max_connections.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// The soft limit on open files, where the platform reports it (Linux: `/proc/self/limits`).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "unlimited" does not parse: no limit to fit under.
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_under_the_open_files_limit() {
        assert_eq!(fit(10_000, 16, Some(1024)), 1024 - 2 * 16 - 64);
        assert_eq!(fit(500, 16, Some(1024)), 500);
        assert_eq!(fit(10_000, 16, None), 10_000);
        assert_eq!(fit(10_000, 16, Some(10)), 1);
        if cfg!(target_os = "linux") {
            assert!(open_files_limit().is_some_and(|n| n > 0));
        }
    }

    #[test]
    fn the_reserve_pushes_out_its_oldest_silent_connection() {
        let slots = Slots::new(1, 2);
        let main = slots.admit().expect("main slot");
        assert!(!main.health_only());
        let first = slots.admit().expect("reserve slot");
        let second = slots.admit().expect("reserve slot");
        assert!(first.health_only() && second.health_only());
        first.state().head_received();
        // Full: the oldest connection still silent (the second) makes way.
        let third = slots.admit().expect("a silent one makes way");
        assert!(second.state().evict.is_cancelled());
        assert!(!first.state().evict.is_cancelled());
        third.state().head_received();
        // Both held connections are being served: nothing to push out.
        assert!(slots.admit().is_none());
        drop(first);
        assert!(slots.admit().is_some(), "a released reserve slot is free again");
        // Pushed-out connections still count until closed, up to twice the reserve.
        let one = Slots::new(0, 1);
        let silent = one.admit().expect("reserve slot");
        let newer = one.admit().expect("the silent one makes way");
        assert!(silent.state().evict.is_cancelled() && !newer.state().evict.is_cancelled());
        assert!(one.admit().is_none(), "the pushed-out connection is not closed yet");
        drop(silent);
        assert!(one.admit().is_some(), "once it is closed, the next one may push out the newer");

        main.state().give_back();
        let upgraded_past = slots.admit().expect("an upgraded connection's main slot is free");
        assert!(!upgraded_past.health_only());
        drop(main);
        assert!(slots.admit().is_some_and(|s| s.health_only()), "upgraded slots are given back once");
    }
}
