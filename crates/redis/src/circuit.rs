//! [`Circuit`]: whether the shared connection is believed to be up. It opens when a call sees the
//! connection lost; while open, calls are refused at once and a probe pings until Redis answers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

use crate::connection::Backend;

/// First and longest wait between probe pings.
const PROBE_MIN_DELAY: Duration = Duration::from_millis(50);
const PROBE_MAX_DELAY: Duration = Duration::from_secs(1);

/// Gauge: 1 while the circuit is open (calls refused), 0 while closed.
pub(crate) const OPEN_GAUGE: &str = "switchboard_redis_circuit_open";

/// The circuit of one engine's shared connection.
///
/// Closed: calls go to Redis. Open: a connection loss was seen (refused, reset, closed, any I/O
/// error, a call timing out); calls fail at once with `Unavailable` instead of each waiting out
/// the command timeout, and one probe task pings through the `ConnectionManager` (which does the
/// reconnecting, with its own backoff) until a `PONG` closes the circuit again.
pub(crate) struct Circuit {
    /// The only state read on the hot path: one atomic load per call.
    open: AtomicBool,
    /// Wakes the calls in flight when the circuit opens: they were sent on, or are waiting for,
    /// the connection just lost, so waiting out their timeouts would only delay their 503.
    opened: Notify,
    /// Wakes whoever waits for Redis to be back (the broker's reconnection backoff), so the
    /// pub/sub connection returns with the command connection rather than up to a second later.
    closed: Notify,
    /// Longest wait for one probe ping (a reconnection attempt plus the PING).
    probe_timeout: Duration,
    /// Set when the engine is closed: open for good, no probe.
    shut: AtomicBool,
    /// How many times it opened on a connection loss.
    openings: AtomicU64,
}

impl Circuit {
    /// A closed circuit.
    pub(crate) fn new(probe_timeout: Duration) -> Arc<Circuit> {
        metrics::gauge!(OPEN_GAUGE).set(0.0);
        Arc::new(Circuit {
            open: AtomicBool::new(false),
            opened: Notify::new(),
            closed: Notify::new(),
            probe_timeout,
            shut: AtomicBool::new(false),
            openings: AtomicU64::new(0),
        })
    }

    /// An open circuit with no probe, for a connection not made yet: calls are refused until
    /// whoever makes it calls [`Circuit::close`].
    pub(crate) fn new_open(probe_timeout: Duration) -> Arc<Circuit> {
        let circuit = Circuit::new(probe_timeout);
        circuit.open.store(true, Ordering::Release);
        metrics::gauge!(OPEN_GAUGE).set(1.0);
        circuit
    }

    /// How many times the circuit opened on a connection loss: state cached from Redis before
    /// a change of this may be gone (Redis may have restarted empty).
    pub(crate) fn openings(&self) -> u64 {
        self.openings.load(Ordering::Acquire)
    }

    /// Whether calls are being refused.
    pub(crate) fn is_open(&self) -> bool {
        // Acquire pairs with the Release of `close`: a call that sees the circuit closed sees the
        // reconnected manager state the probe observed.
        self.open.load(Ordering::Acquire)
    }

    /// Whether the engine was closed ([`Circuit::shut`]).
    pub(crate) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Acquire)
    }

    /// Opens the circuit for good when the engine closes: every call from now on fails at once,
    /// the calls in flight are woken, and no probe reconnects.
    pub(crate) fn shut(&self) {
        self.shut.store(true, Ordering::Release);
        self.open.store(true, Ordering::Release);
        self.opened.notify_waiters();
        // Whoever waits for Redis to come back stops waiting.
        self.closed.notify_waiters();
    }

    /// Resolves when the circuit opens after this call. Take it *before* checking [`is_open`],
    /// so an opening between the check and the call's first poll is not missed (`Notify`
    /// delivers `notify_waiters` to every `Notified` created before it, polled or not).
    ///
    /// [`is_open`]: Circuit::is_open
    pub(crate) fn opened(&self) -> Notified<'_> {
        self.opened.notified()
    }

    /// Resolves when the circuit closes after this call (Redis answered a probe).
    pub(crate) fn closed(&self) -> Notified<'_> {
        self.closed.notified()
    }

    /// Opens the circuit after a connection loss (`why`, for the log), wakes the calls in flight
    /// and starts the probe; a no-op when already open (its probe is running).
    pub(crate) fn trip(self: &Arc<Self>, backend: &Backend, why: &str) {
        if self.open.swap(true, Ordering::AcqRel) {
            return;
        }
        self.openings.fetch_add(1, Ordering::AcqRel);
        tracing::warn!(error = %why, "redis: connection lost; calls fail at once until it is back");
        metrics::gauge!(OPEN_GAUGE).set(1.0);
        self.opened.notify_waiters();
        tokio::spawn(probe(Arc::downgrade(self), backend.clone(), self.probe_timeout));
    }

    /// Closes the circuit: calls go to Redis again, and whoever waits for it is woken.
    pub(crate) fn close(&self) {
        if self.is_shut() {
            return;
        }
        self.open.store(false, Ordering::Release);
        metrics::gauge!(OPEN_GAUGE).set(0.0);
        self.closed.notify_waiters();
        tracing::info!("redis: reconnected; serving calls again");
    }
}

/// Probes with backoff until Redis answers, then closes the circuit. A failed ping makes the
/// connection start a reconnection (in the background, with its own retries), which the next
/// ping waits for; under Sentinel each probe first asks the Sentinels where the master is
/// ([`Backend::probe`]). Ends early when the engine is dropped (only a `Weak` is held between
/// pings).
async fn probe(circuit: Weak<Circuit>, backend: Backend, probe_timeout: Duration) {
    let mut delay = PROBE_MIN_DELAY;
    loop {
        tokio::time::sleep(delay).await;
        let Some(circuit) = circuit.upgrade() else { return };
        if circuit.is_shut() {
            return;
        }
        match tokio::time::timeout(probe_timeout, backend.probe()).await {
            Ok(Ok(_)) => return circuit.close(),
            Ok(Err(e)) => tracing::debug!(error = %e, "redis: probe: no connection yet"),
            Err(_) => tracing::debug!(timeout_ms = probe_timeout.as_millis() as u64, "redis: probe: no answer"),
        }
        delay = (delay * 2).min(PROBE_MAX_DELAY);
    }
}
