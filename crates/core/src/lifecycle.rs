//! [`Lifecycle`]: the node's background work — every loop on one [`TaskTracker`], ended by one
//! [`CancellationToken`], on the tokio runtime the node was started in — and its orderly end.
//!
//! The facade owns one ([`crate::Switchboard::start`] binds it, [`crate::Switchboard::shutdown`]
//! ends it); layers above (the gateway, workers) spawn their loops through it, so one shutdown
//! drains them all before the engine is closed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};

/// A background loop, boxed: what an engine hands the node to run
/// ([`crate::engine::EngineLifecycle::background`]).
pub type BackgroundTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The node's background work. Cheap to clone; every clone is the same node.
#[derive(Clone)]
pub struct Lifecycle {
    state: Arc<State>,
}

struct State {
    tracker: TaskTracker,
    stop: CancellationToken,
    /// The runtime every task runs on, set once by [`Lifecycle::bind`]: tasks spawned later from
    /// another runtime (a worker started in a test's own runtime) still run on the node's.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Set when the node's runtime shut down under it (its tasks were dropped, not ended).
    runtime_gone: AtomicBool,
    /// Running tasks by name, for the shutdown report.
    running: Mutex<BTreeMap<&'static str, usize>>,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle")
            .field("started", &self.started())
            .field("stopping", &self.state.stop.is_cancelled())
            .field("tasks", &*self.running())
            .finish()
    }
}

/// How a shutdown went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    /// From the cancellation to the engine closed.
    pub took: Duration,
    /// Tasks still running when the drain timeout ran out, by name and count; empty when every
    /// task ended in time.
    pub unfinished: Vec<(String, usize)>,
}

impl ShutdownReport {
    /// Whether every task ended within the drain timeout.
    pub fn drained(&self) -> bool {
        self.unfinished.is_empty()
    }
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle::new()
    }
}

impl Lifecycle {
    /// A node not started yet.
    pub fn new() -> Self {
        Lifecycle {
            state: Arc::new(State {
                tracker: TaskTracker::new(),
                stop: CancellationToken::new(),
                runtime: OnceLock::new(),
                runtime_gone: AtomicBool::new(false),
                running: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// Binds the node to the current tokio runtime. Fails outside a runtime, and when the node
    /// was already started or has stopped (a node runs once).
    pub(crate) fn bind(&self) -> Result<()> {
        if self.state.stop.is_cancelled() {
            return Err(Error::Conflict("the node has been shut down; build a new one".into()));
        }
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Conflict("start the node inside a tokio runtime".into()))?;
        self.state.runtime.set(handle).map_err(|_| Error::Conflict("the node is already started".into()))?;
        // A sentinel that only the runtime's own shutdown can drop before the node stops: it
        // tells later callers that the node's loops are gone, instead of letting them wait on
        // loops that no longer run.
        let watch = RuntimeWatch { state: self.state.clone(), armed: true };
        let stop = self.state.stop.clone();
        self.spawn("lifecycle.watch", async move {
            let mut watch = watch;
            stop.cancelled().await;
            watch.armed = false;
        })
        .map(drop)
    }

    /// Whether the node was started ([`crate::Switchboard::start`]).
    pub fn started(&self) -> bool {
        self.state.runtime.get().is_some()
    }

    /// Whether the node serves: started, not stopping, and its runtime still running.
    pub fn is_running(&self) -> bool {
        self.started() && !self.state.stop.is_cancelled() && !self.state.runtime_gone.load(Ordering::Acquire)
    }

    /// Fails with [`Error::Unavailable`], saying why, unless the node serves.
    pub fn ensure_running(&self) -> Result<()> {
        if self.is_running() {
            return Ok(());
        }
        let why = if !self.started() {
            "the node is not started: call Switchboard::start (or run_until) first"
        } else if self.state.stop.is_cancelled() {
            "the node is shutting down"
        } else {
            "the runtime the node was started in has shut down: start it in a runtime that outlives its use"
        };
        Err(Error::Unavailable(why.into()))
    }

    /// Cancelled when the node starts shutting down: every loop ends when it is.
    pub fn stopping(&self) -> CancellationToken {
        self.state.stop.clone()
    }

    /// Runs `task` on the node's runtime, tracked under `name` until it ends. The task must end
    /// once [`Lifecycle::stopping`] is cancelled; shutdown waits for it. Fails unless the node
    /// serves.
    pub fn spawn<F>(&self, name: &'static str, task: F) -> Result<JoinHandle<()>>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.ensure_running()?;
        let runtime = self.state.runtime.get().ok_or_else(|| Error::Internal("a running node has a runtime".into()))?;
        *lock(&self.state.running).entry(name).or_default() += 1;
        let guard = Running { state: self.state.clone(), name };
        let task = async move {
            let _guard = guard;
            task.await;
        };
        Ok(self.state.tracker.spawn_on(task, runtime))
    }

    /// `future`, counted under `name` until it ends, so shutdown waits for it too: for work
    /// spawned by someone else (a WebSocket connection, spawned by the HTTP server).
    pub fn track<F: Future>(&self, name: &'static str, future: F) -> impl Future<Output = F::Output> + use<F> {
        *lock(&self.state.running).entry(name).or_default() += 1;
        let guard = Running { state: self.state.clone(), name };
        self.state.tracker.track_future(async move {
            let _guard = guard;
            future.await
        })
    }

    /// The tasks running now, by name and count.
    pub fn tasks(&self) -> Vec<(String, usize)> {
        self.running().iter().map(|(name, count)| ((*name).to_owned(), *count)).collect()
    }

    /// Cancels every loop and waits up to `drain` for them to end; what is still running then
    /// is reported (and left to the runtime). Idempotent.
    pub(crate) async fn stop(&self, drain: Duration) -> Vec<(String, usize)> {
        self.state.stop.cancel();
        self.state.tracker.close();
        if tokio::time::timeout(drain, self.state.tracker.wait()).await.is_ok() {
            return Vec::new();
        }
        let unfinished = self.tasks();
        tracing::warn!(drain_ms = drain.as_millis() as u64, unfinished = ?unfinished, "node: drain timed out");
        unfinished
    }

    fn running(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, usize>> {
        lock(&self.state.running)
    }
}

/// Counts a task as running until it ends or is dropped.
struct Running {
    state: Arc<State>,
    name: &'static str,
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = lock(&self.state.running);
        if let Some(count) = running.get_mut(self.name) {
            *count -= 1;
            if *count == 0 {
                running.remove(self.name);
            }
        }
    }
}

/// Dropped while armed only when the runtime drops the watching task before the node stops.
struct RuntimeWatch {
    state: Arc<State>,
    armed: bool,
}

impl Drop for RuntimeWatch {
    fn drop(&mut self) {
        if self.armed {
            self.state.runtime_gone.store(true, Ordering::Release);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is consistent after every statement; a panic elsewhere cannot leave it half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tasks_run_until_stopped_and_are_counted_by_name() {
        let node = Lifecycle::new();
        assert!(matches!(node.spawn("early", async {}), Err(Error::Unavailable(m)) if m.contains("not started")));
        node.bind().unwrap();
        assert!(node.bind().is_err(), "a node starts once");
        let stop = node.stopping();
        node.spawn("loop", async move { stop.cancelled().await }).unwrap();
        assert_eq!(node.running().get("loop"), Some(&1));
        assert!(node.stop(Duration::from_secs(5)).await.is_empty());
        assert!(node.running().is_empty(), "{:?}", node.running());
        assert!(!node.is_running());
        assert!(node.spawn("late", async {}).is_err(), "nothing starts after the stop");
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_reported() {
        let node = Lifecycle::new();
        node.bind().unwrap();
        node.spawn("stubborn", std::future::pending()).unwrap();
        let unfinished = node.stop(Duration::from_millis(20)).await;
        assert_eq!(unfinished, vec![("stubborn".to_owned(), 1)]);
    }

    #[test]
    fn a_node_whose_runtime_shut_down_says_so() {
        let node = Lifecycle::new();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async { node.bind().unwrap() });
        assert!(node.is_running());
        drop(runtime);
        let err = node.ensure_running().unwrap_err();
        assert!(matches!(&err, Error::Unavailable(m) if m.contains("runtime")), "{err}");
    }
}
