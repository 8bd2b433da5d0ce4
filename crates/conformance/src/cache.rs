//! Conformance cases for [`switchboard_core::CacheStore`] and the cache service: get/set/
//! delete/exists, TTL expiry, tag invalidation (also racing sets), mget/mset, prefix
//! invalidation, stats, bounds, and single-flight `get_or_set`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::{CacheStats, Error};

use crate::harness::{TestEngine, eventually};

const NS: &str = "api_response";

fn tags(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Values are stored, read, reported by `exists` and deleted.
pub async fn set_get_exists_and_delete(t: &TestEngine) {
    let c = t.sb.cache();
    assert_eq!(c.get(NS, "k").await.unwrap(), None);
    c.set(NS, "k", &json!({"a": 1}), None, &[]).await.unwrap();
    assert_eq!(c.get(NS, "k").await.unwrap(), Some(json!({"a": 1})));
    assert!(c.exists(NS, "k").await.unwrap());
    c.set(NS, "k", &json!("replaced"), None, &[]).await.unwrap();
    assert_eq!(c.get(NS, "k").await.unwrap(), Some(json!("replaced")));
    assert_eq!(c.get("user_profile", "k").await.unwrap(), None, "namespaces do not mix");
    assert!(c.delete(NS, "k").await.unwrap());
    assert!(!c.delete(NS, "k").await.unwrap());
    assert!(!c.exists(NS, "k").await.unwrap());
}

/// A value is gone once its TTL runs out, and stops counting as a key.
pub async fn values_expire_after_their_ttl(t: &TestEngine) {
    let c = t.sb.cache();
    c.set(NS, "short", &json!(1), Some(Duration::from_millis(300)), &[]).await.unwrap();
    c.set(NS, "long", &json!(2), Some(Duration::from_secs(60)), &[]).await.unwrap();
    assert_eq!(c.get(NS, "short").await.unwrap(), Some(json!(1)));
    eventually(Duration::from_secs(3), "the short value expires", || async {
        c.get(NS, "short").await.unwrap().is_none()
    })
    .await;
    assert_eq!(c.get(NS, "long").await.unwrap(), Some(json!(2)));
    assert_eq!(c.stats(NS).await.unwrap().keys, 1);
}

/// Invalidating a tag makes every value carrying it a miss; others stay; later sets live.
pub async fn tags_invalidate_their_values(t: &TestEngine) {
    let c = t.sb.cache();
    c.set(NS, "a", &json!("a"), None, &tags(&["user-1"])).await.unwrap();
    c.set(NS, "b", &json!("b"), None, &tags(&["user-2"])).await.unwrap();
    c.set(NS, "ab", &json!("ab"), None, &tags(&["user-2", "user-1"])).await.unwrap();
    c.set("geospatial", "a", &json!("other"), None, &tags(&["user-1"])).await.unwrap();
    c.invalidate_tags(NS, &tags(&["user-1"])).await.unwrap();
    assert_eq!(c.get(NS, "a").await.unwrap(), None);
    assert_eq!(c.get(NS, "ab").await.unwrap(), None);
    assert_eq!(c.get(NS, "b").await.unwrap(), Some(json!("b")));
    assert_eq!(c.get("geospatial", "a").await.unwrap(), Some(json!("other")), "tags are per namespace");
    c.set(NS, "a", &json!("again"), None, &tags(&["user-1"])).await.unwrap();
    assert_eq!(c.get(NS, "a").await.unwrap(), Some(json!("again")), "a set after the invalidation lives");
}

/// A set racing an invalidation of its tag never survives it once it was visible before the
/// invalidation started, and an unordered pair leaves either nothing or a set that finished
/// after the invalidation began.
pub async fn a_set_racing_an_invalidation_never_survives_it(t: &TestEngine) {
    let c = t.sb.cache().clone();
    let tag = tags(&["race"]);
    for i in 0..200u32 {
        // Ordered through visibility: the invalidation starts only once the value is readable,
        // possibly before the set call has returned (a two-step set would leave it behind).
        let seen_key = format!("seen-{i}");
        let setter = {
            let (c, tag, key) = (c.clone(), tag.clone(), seen_key.clone());
            tokio::spawn(async move { c.set(NS, &key, &json!(i), None, &tag).await.unwrap() })
        };
        let invalidator = {
            let (c, tag, key) = (c.clone(), tag.clone(), seen_key.clone());
            tokio::spawn(async move {
                while !c.exists(NS, &key).await.unwrap() {
                    tokio::task::yield_now().await;
                }
                c.invalidate_tags(NS, &tag).await.unwrap();
            })
        };
        setter.await.unwrap();
        invalidator.await.unwrap();
        assert_eq!(
            c.get(NS, &seen_key).await.unwrap(),
            None,
            "iteration {i}: a value written before the invalidation survived"
        );

        // Unordered: the value may survive only if the set had not finished when the
        // invalidation started.
        let key = format!("pair-{i}");
        let setter = {
            let (c, tag, key) = (c.clone(), tag.clone(), key.clone());
            tokio::spawn(async move {
                c.set(NS, &key, &json!(i), None, &tag).await.unwrap();
                Instant::now()
            })
        };
        let invalidator = {
            let (c, tag) = (c.clone(), tag.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                c.invalidate_tags(NS, &tag).await.unwrap();
                started
            })
        };
        let set_done = setter.await.unwrap();
        let invalidation_started = invalidator.await.unwrap();
        let got = c.get(NS, &key).await.unwrap();
        assert!(got.is_none() || got == Some(json!(i)), "iteration {i}: unexpected {got:?}");
        if set_done < invalidation_started {
            assert_eq!(got, None, "iteration {i}: a set that finished before the invalidation survived it");
        }
    }
}

/// `mset` stores a batch; `mget` answers in order with misses in place; batches are bounded.
pub async fn mget_and_mset(t: &TestEngine) {
    let c = t.sb.cache();
    let entries: Vec<(String, Value)> = (0..3).map(|i| (format!("m{i}"), json!({ "i": i }))).collect();
    c.mset(NS, &entries, None, &tags(&["batch"])).await.unwrap();
    let keys = vec!["m2".to_owned(), "missing".to_owned(), "m0".to_owned(), "m1".to_owned()];
    let got = c.mget(NS, &keys).await.unwrap();
    assert_eq!(got, vec![Some(json!({"i": 2})), None, Some(json!({"i": 0})), Some(json!({"i": 1}))]);
    c.invalidate_tags(NS, &tags(&["batch"])).await.unwrap();
    assert_eq!(c.mget(NS, &keys).await.unwrap(), vec![None, None, None, None]);
    let too_many: Vec<String> = (0..1001).map(|i| format!("k{i}")).collect();
    assert!(matches!(c.mget(NS, &too_many).await, Err(Error::InvalidArgument(_))));
}

/// Prefix invalidation removes exactly the keys under the prefix in that namespace.
pub async fn prefix_invalidation_removes_only_matching_keys(t: &TestEngine) {
    let c = t.sb.cache();
    for key in ["user:1:a", "user:1:b", "user:10:a", "user:2:a"] {
        c.set(NS, key, &json!(key), None, &[]).await.unwrap();
    }
    c.set("geospatial", "user:1:a", &json!(1), None, &[]).await.unwrap();
    assert_eq!(c.invalidate_prefix(NS, "user:1:").await.unwrap(), 2);
    assert_eq!(c.get(NS, "user:1:a").await.unwrap(), None);
    assert_eq!(c.get(NS, "user:1:b").await.unwrap(), None);
    assert_eq!(c.get(NS, "user:10:a").await.unwrap(), Some(json!("user:10:a")));
    assert_eq!(c.get(NS, "user:2:a").await.unwrap(), Some(json!("user:2:a")));
    assert_eq!(c.get("geospatial", "user:1:a").await.unwrap(), Some(json!(1)));
    assert_eq!(c.invalidate_prefix(NS, "nothing").await.unwrap(), 0);
}

/// Stats count hits, misses, sets, invalidations and live keys per namespace.
pub async fn stats_count_per_namespace(t: &TestEngine) {
    let c = t.sb.cache();
    let ns = "photo_metadata";
    assert_eq!(c.stats(ns).await.unwrap(), CacheStats::default());
    c.set(ns, "a", &json!(1), None, &[]).await.unwrap();
    c.set(ns, "b", &json!(2), None, &[]).await.unwrap();
    assert!(c.get(ns, "a").await.unwrap().is_some());
    assert!(c.get(ns, "zz").await.unwrap().is_none());
    c.mget(ns, &["b".to_owned(), "zz".to_owned()]).await.unwrap();
    assert!(c.exists(ns, "a").await.unwrap(), "exists counts nothing");
    c.invalidate_tags(ns, &tags(&["x"])).await.unwrap();
    c.set(NS, "other", &json!(0), None, &[]).await.unwrap();
    let stats = c.stats(ns).await.unwrap();
    assert_eq!(stats, CacheStats { hits: 2, misses: 2, sets: 2, invalidations: 1, evictions: 0, keys: 2 });
}

/// Bounds are enforced and refusals store nothing.
pub async fn bounds_are_enforced(t: &TestEngine) {
    let c = t.sb.cache();
    assert!(matches!(c.set(NS, "", &json!(1), None, &[]).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(c.set("bad ns", "k", &json!(1), None, &[]).await, Err(Error::InvalidArgument(_))));
    let big = json!("x".repeat(1024 * 1024));
    assert!(matches!(c.set(NS, "big", &big, None, &[]).await, Err(Error::PayloadTooLarge(_))));
    let many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    assert!(matches!(c.set(NS, "tagged", &json!(1), None, &many).await, Err(Error::InvalidArgument(_))));
    let long_key = "k".repeat(513);
    assert!(matches!(c.get(NS, &long_key).await, Err(Error::InvalidArgument(_))));
    assert!(!c.exists(NS, "big").await.unwrap());
    assert!(!c.exists(NS, "tagged").await.unwrap());
}

/// 100 concurrent `get_or_set` calls on one key run the computation once and all get its value.
pub async fn get_or_set_computes_once_for_concurrent_callers(t: &TestEngine) {
    let computations = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..100 {
        let (c, computations) = (t.sb.cache().clone(), computations.clone());
        callers.push(tokio::spawn(async move {
            c.get_or_set(NS, "expensive", None, &[], || async {
                computations.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(json!({"computed": true}))
            })
            .await
            .unwrap()
        }));
    }
    for caller in callers {
        assert_eq!(caller.await.unwrap(), json!({"computed": true}));
    }
    assert_eq!(computations.load(Ordering::SeqCst), 1);
    assert_eq!(t.sb.cache().get(NS, "expensive").await.unwrap(), Some(json!({"computed": true})));
}

/// A value computed by `get_or_set` while one of its tags is invalidated is a miss afterwards:
/// the tag versions are read before the computation, not at the write.
pub async fn get_or_set_value_computed_across_an_invalidation_is_a_miss(t: &TestEngine) {
    let c = t.sb.cache();
    let tag = tags(&["profile-7"]);
    let value = c
        .get_or_set(NS, "profile", None, &tag, || async {
            c.invalidate_tags(NS, &tag).await?;
            Ok(json!("computed from stale data"))
        })
        .await
        .unwrap();
    assert_eq!(value, json!("computed from stale data"));
    assert_eq!(c.get(NS, "profile").await.unwrap(), None);
    let fresh = c.get_or_set(NS, "profile", None, &tag, || async { Ok(json!("fresh")) }).await.unwrap();
    assert_eq!(fresh, json!("fresh"));
    assert_eq!(c.get(NS, "profile").await.unwrap(), Some(json!("fresh")));
}
