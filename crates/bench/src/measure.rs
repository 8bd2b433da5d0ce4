//! What every workload shares: timing calls from many tasks, the table rows, and reading
//! `redis-benchmark`'s figures.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Figures of one workload.
pub(crate) struct Figures {
    name: String,
    ops: u64,
    elapsed: Duration,
    p50_us: u64,
    p99_us: u64,
}

impl Figures {
    pub(crate) fn print(&self) {
        self.print_padded(34);
    }

    /// Prints the row with the workload's name padded to `width`.
    pub(crate) fn print_padded(&self, width: usize) {
        println!("| {:<width$} | {:>10.0} | {:>8} | {:>8} |", self.name, self.rate(), self.p50_us, self.p99_us);
    }

    /// Operations per second.
    pub(crate) fn rate(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// The figures of `latencies_us` (one per operation) over `elapsed`.
    pub(crate) fn from_latencies(name: &str, mut latencies_us: Vec<u64>, elapsed: Duration) -> Figures {
        latencies_us.sort_unstable();
        let all = &latencies_us;
        let pct =
            |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0);
        Figures { name: name.to_owned(), ops: all.len() as u64, elapsed, p50_us: pct(0.50), p99_us: pct(0.99) }
    }
}

/// Reads the answer's body; an error unless it is a 2xx.
pub(crate) async fn expect_ok(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let _ = response.bytes().await?;
    anyhow::ensure!(status.is_success(), "HTTP {status}");
    Ok(())
}

/// Runs `op(task, iteration)` from `concurrency` tasks for `duration`; counts and times each call.
pub(crate) async fn measure<F, Fut>(
    name: &str,
    concurrency: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Figures>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    // Warm up connections and caches before measuring.
    for task in 0..concurrency {
        op(task, 0).await?;
    }
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies_us = Vec::with_capacity(1 << 16);
                let mut i = 0;
                while Instant::now() < deadline {
                    let t = Instant::now();
                    op(task, i).await?;
                    latencies_us.push(t.elapsed().as_micros() as u64);
                    i += 1;
                    // A client waits for its answer before it asks again, so the others get their
                    // turn. An operation that never suspends (the memory engine's) would otherwise
                    // keep its worker thread until the deadline: one client per core would run,
                    // not `concurrency`.
                    tokio::task::yield_now().await;
                }
                anyhow::Ok(latencies_us)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut idle_clients = 0;
    for t in tasks {
        let latencies_us = t.await??;
        idle_clients += usize::from(latencies_us.is_empty());
        all.extend(latencies_us);
    }
    anyhow::ensure!(
        idle_clients == 0,
        "{name}: {idle_clients} of {concurrency} clients made no call in {duration:?}: not a figure at that concurrency"
    );
    Ok(Figures::from_latencies(name, all, started.elapsed()))
}

/// The figures of one `redis-benchmark -q` result line (`<test>: <rate> requests per second,
/// p50=<ms> msec`), as one second of `rate` operations.
pub(crate) fn parse_redis_benchmark(name: &str, line: &str) -> anyhow::Result<Figures> {
    let figures = line.rsplit_once(": ").map(|(_, f)| f).context("unparsable redis-benchmark figure")?;
    let rate: f64 =
        figures.split_whitespace().next().and_then(|s| s.parse().ok()).context("unparsable redis-benchmark rate")?;
    let p50_us = figures
        .split("p50=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |ms| (ms * 1000.0) as u64);
    Ok(Figures { name: name.to_owned(), ops: rate as u64, elapsed: Duration::from_secs(1), p50_us, p99_us: 0 })
}
