//! The memory engine's cache byte budget: least recently used values are evicted and counted.

use std::time::Duration;

use switchboard_core::{CacheWrite, Error};
use switchboard_memory::MemoryConfig;

fn write(key: &str, len: usize) -> CacheWrite {
    CacheWrite {
        key: key.to_owned(),
        value: vec![b'x'; len],
        ttl: Duration::from_secs(60),
        stale: Duration::ZERO,
        tags: Vec::new(),
        tag_versions: None,
    }
}

#[tokio::test]
async fn the_least_recently_used_value_is_evicted_under_the_byte_budget() -> Result<(), Error> {
    // Each value costs 1000 bytes plus its key and a fixed overhead (~100): four fit in 4500.
    let config = MemoryConfig { cache_max_bytes: 4500, ..MemoryConfig::default() };
    let cache = switchboard_memory::engine(config).expect("valid memory config").cache;
    let ns = "n";
    for key in ["a", "b", "c", "d"] {
        cache.mset(ns, &[write(key, 1000)]).await?;
    }
    assert_eq!(cache.stats(ns).await?.evictions, 0);
    // `a` becomes the most recently used, so `b` is the one to go.
    assert!(cache.mget(ns, &["a".to_owned()]).await?[0].is_some());
    cache.mset(ns, &[write("e", 1000)]).await?;
    let keys: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|k| (*k).to_owned()).collect();
    let present: Vec<bool> = cache.mget(ns, &keys).await?.iter().map(Option::is_some).collect();
    assert_eq!(present, vec![true, false, true, true, true]);
    let stats = cache.stats(ns).await?;
    assert_eq!((stats.evictions, stats.keys), (1, 4));

    // Many writes stay within the budget.
    for i in 0..200 {
        cache.mset(ns, &[write(&format!("k{i}"), 1000)]).await?;
    }
    let stats = cache.stats(ns).await?;
    assert!(stats.keys <= 4, "{stats:?}");
    assert_eq!(stats.evictions, 201);
    Ok(())
}
