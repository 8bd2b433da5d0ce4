//! The cache workloads of `switchboard-bench capabilities`: `cache().get` / `cache().set` through the library
//! and `GET` / `PUT /cache/{ns}/{key}` through HTTP, beside `redis-benchmark -t get,set` on the
//! same Redis with the same concurrency, key space and value size (the Redis engine's limit).

use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use switchboard_core::Switchboard;

use crate::measure::{Figures, expect_ok, measure};

/// Namespace of the workloads (a seed namespace: 1 min TTL).
const NS: &str = "api_response";
/// Keys the workloads spread over (`redis-benchmark -r` uses the same count).
const KEYS: usize = 10_000;

/// The value every workload stores: a small profile-like JSON object, [`value_len`] bytes.
fn value() -> Value {
    json!({"id": 12345, "name": "user-12345", "bio": "x".repeat(40), "verified": true, "followers": 678})
}

/// The encoded size of [`value`], given to `redis-benchmark -d`.
fn value_len() -> usize {
    value().to_string().len()
}

fn key(task: usize, i: usize) -> String {
    format!("bench:{}", (task * 7919 + i) % KEYS)
}

/// Seeds every key, then measures `set` and `get` through the library.
pub(crate) async fn library(sb: &Switchboard, c: usize, duration: Duration) -> anyhow::Result<Vec<Figures>> {
    let cache = sb.cache().clone();
    let v = value();
    for i in 0..KEYS {
        cache.set(NS, &format!("bench:{i}"), &v, None, &[]).await?;
    }
    let (cs, vs) = (cache.clone(), v.clone());
    let set = measure("library cache.set", c, duration, move |task, i| {
        let (cs, vs) = (cs.clone(), vs.clone());
        async move {
            cs.set(NS, &key(task, i), &vs, None, &[]).await?;
            Ok(())
        }
    })
    .await?;
    let get = measure("library cache.get", c, duration, move |task, i| {
        let cache = cache.clone();
        async move {
            cache.get(NS, &key(task, i)).await?.context("cache miss")?;
            Ok(())
        }
    })
    .await?;
    Ok(vec![set, get])
}

/// `PUT` and `GET /api/v1/cache/{ns}/{key}` against the server at `base` (keys seeded by
/// [`library`]).
pub(crate) async fn http(
    client: &reqwest::Client,
    base: &str,
    auth: &str,
    c: usize,
    duration: Duration,
) -> anyhow::Result<Vec<Figures>> {
    let body = json!({ "value": value() });
    let (cl, b, a) = (client.clone(), base.to_owned(), auth.to_owned());
    let put = measure("http PUT /cache/{ns}/{key}", c, duration, move |task, i| {
        let (cl, b, a, body) = (cl.clone(), b.clone(), a.clone(), body.clone());
        async move {
            let url = format!("{b}/cache/{NS}/{}", key(task, i));
            expect_ok(cl.put(url).header("authorization", a).json(&body).send().await?).await
        }
    })
    .await?;
    let (cl, b, a) = (client.clone(), base.to_owned(), auth.to_owned());
    let get = measure("http GET /cache/{ns}/{key}", c, duration, move |task, i| {
        let (cl, b, a) = (cl.clone(), b.clone(), a.clone());
        async move {
            let url = format!("{b}/cache/{NS}/{}", key(task, i));
            expect_ok(cl.get(url).header("authorization", a).send().await?).await
        }
    })
    .await?;
    Ok(vec![put, get])
}

/// `redis-benchmark -t set,get` at the same concurrency over the same number of keys with
/// values of the same size: plain `SET` / `GET`, the floor of any cache on this Redis.
pub(crate) async fn redis_benchmark(url: &str, c: usize, duration: Duration) -> anyhow::Result<Vec<Figures>> {
    // Enough requests to run about as long as our workloads at ~100k/s.
    let n = (duration.as_secs().max(1) * 100_000).to_string();
    let out = tokio::process::Command::new("redis-benchmark")
        .args(["-u", url, "-c", &c.to_string(), "-n", &n, "-r", &KEYS.to_string()])
        .args(["-d", &value_len().to_string(), "-t", "set,get", "-q"])
        .output()
        .await
        .context("running redis-benchmark")?;
    anyhow::ensure!(out.status.success(), "redis-benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    ["SET", "GET"]
        .into_iter()
        .map(|command| {
            // Progress updates are separated by '\r'; the final figure is the last of them:
            // "SET: 83000.00 requests per second, p50=0.319 msec".
            let line = text
                .rsplit(['\r', '\n'])
                .find(|l| l.starts_with(&format!("{command}: ")) && l.contains("requests per second"))
                .with_context(|| format!("no {command} figure in redis-benchmark output"))?;
            let name = format!("redis-benchmark {command} (limit)");
            crate::measure::parse_redis_benchmark(&name, line)
        })
        .collect()
}
