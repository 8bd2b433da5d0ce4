//! Conformance cases for [`switchboard_core::CacheStore`] and the cache service: get/set/
//! delete/exists, TTL expiry, tag invalidation (also racing sets, and in every namespace), mget/mset, prefix
//! invalidation, stats, bounds, single-flight `get_or_set`, leases and stale-while-revalidate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::{
    CacheLease, CacheLeaseAnswer, CacheLeaseOptions, CacheSetOptions, CacheStats, Error, LeaseToken,
};

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

fn no_wait() -> CacheLeaseOptions {
    CacheLeaseOptions { wait: Some(Duration::ZERO), ..CacheLeaseOptions::default() }
}

fn leased(token: &LeaseToken) -> CacheSetOptions {
    CacheSetOptions { lease_token: Some(token.clone()), ..CacheSetOptions::default() }
}

fn granted(answer: CacheLeaseAnswer) -> CacheLease {
    match answer {
        CacheLeaseAnswer::Granted(lease) => lease,
        other => panic!("expected a granted lease, got {other:?}"),
    }
}

/// Of 50 concurrent lease calls on a missing key exactly one is granted the lease; the others
/// (not waiting) are told to retry; a hit needs no lease.
pub async fn one_lease_among_concurrent_callers(t: &TestEngine) {
    let mut callers = Vec::new();
    for _ in 0..50 {
        let c = t.sb.cache().clone();
        callers.push(tokio::spawn(async move { c.lease(NS, "hot", &no_wait()).await.unwrap() }));
    }
    let mut leases = Vec::new();
    for caller in callers {
        match caller.await.unwrap() {
            CacheLeaseAnswer::Granted(lease) => leases.push(lease),
            CacheLeaseAnswer::Pending { retry_after } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(10), "{retry_after:?}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(leases.len(), 1, "exactly one caller holds the lease");
    let c = t.sb.cache();
    assert!(c.set_with(NS, "hot", &json!("computed"), &leased(&leases[0].token)).await.unwrap());
    assert_eq!(c.lease(NS, "hot", &no_wait()).await.unwrap(), CacheLeaseAnswer::Fresh(json!("computed")));
    c.set(NS, "plain", &json!(1), None, &[]).await.unwrap();
    assert_eq!(c.lease(NS, "plain", &no_wait()).await.unwrap(), CacheLeaseAnswer::Fresh(json!(1)));
}

/// Callers that arrive while the lease is held wait and receive the value its holder stores.
pub async fn waiting_callers_receive_the_leased_value(t: &TestEngine) {
    let c = t.sb.cache().clone();
    let lease = granted(c.lease(NS, "slow", &no_wait()).await.unwrap());
    let mut waiters = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        waiters.push(tokio::spawn(async move {
            let options = CacheLeaseOptions { wait: Some(Duration::from_secs(5)), ..CacheLeaseOptions::default() };
            c.lease(NS, "slow", &options).await.unwrap()
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(c.set_with(NS, "slow", &json!({"v": 1}), &leased(&lease.token)).await.unwrap());
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), CacheLeaseAnswer::Fresh(json!({"v": 1})));
    }
}

/// An expired lease lets the next caller in; the old holder's token then stores nothing.
pub async fn an_expired_lease_lets_a_new_caller_in(t: &TestEngine) {
    let c = t.sb.cache();
    let short = CacheLeaseOptions { lease: Some(Duration::from_millis(300)), ..no_wait() };
    let first = granted(c.lease(NS, "k", &short).await.unwrap());
    assert!(matches!(c.lease(NS, "k", &short).await.unwrap(), CacheLeaseAnswer::Pending { .. }));
    let second = Arc::new(std::sync::Mutex::new(None));
    eventually(Duration::from_secs(3), "the lease runs out and is granted again", || {
        let (second, short) = (second.clone(), &short);
        async move {
            match c.lease(NS, "k", short).await.unwrap() {
                CacheLeaseAnswer::Granted(lease) => {
                    *second.lock().unwrap() = Some(lease);
                    true
                }
                _ => false,
            }
        }
    })
    .await;
    let second = second.lock().unwrap().take().unwrap();
    assert_ne!(first.token, second.token);
    assert!(!c.set_with(NS, "k", &json!("late"), &leased(&first.token)).await.unwrap(), "taken over");
    assert_eq!(c.get(NS, "k").await.unwrap(), None);
    assert!(c.set_with(NS, "k", &json!("new"), &leased(&second.token)).await.unwrap());
    assert_eq!(c.get(NS, "k").await.unwrap(), Some(json!("new")));
}

/// A set with the token stores and releases the lease; a wrong or used token, or a token whose
/// key was deleted or prefix-invalidated meanwhile, stores nothing.
pub async fn a_set_with_the_token_releases_the_lease(t: &TestEngine) {
    let c = t.sb.cache();
    let lease = granted(c.lease(NS, "a", &no_wait()).await.unwrap());
    let wrong = LeaseToken::generate().unwrap();
    assert!(!c.set_with(NS, "a", &json!("wrong"), &leased(&wrong)).await.unwrap());
    assert_eq!(c.get(NS, "a").await.unwrap(), None);
    assert!(c.set_with(NS, "a", &json!("right"), &leased(&lease.token)).await.unwrap());
    assert!(!c.set_with(NS, "a", &json!("again"), &leased(&lease.token)).await.unwrap(), "released");
    assert_eq!(c.get(NS, "a").await.unwrap(), Some(json!("right")));
    c.delete(NS, "a").await.unwrap();
    let lease = granted(c.lease(NS, "a", &no_wait()).await.unwrap());
    assert!(!matches!(c.lease(NS, "a", &no_wait()).await.unwrap(), CacheLeaseAnswer::Granted(_)));
    assert!(!c.delete(NS, "a").await.unwrap(), "nothing stored, but the lease is dropped");
    assert!(!c.set_with(NS, "a", &json!("before delete"), &leased(&lease.token)).await.unwrap());
    let lease = granted(c.lease(NS, "user:9:a", &no_wait()).await.unwrap());
    c.invalidate_prefix(NS, "user:9:").await.unwrap();
    assert!(!c.set_with(NS, "user:9:a", &json!("x"), &leased(&lease.token)).await.unwrap());
    assert_eq!(c.get(NS, "user:9:a").await.unwrap(), None);
    let tagged = CacheSetOptions { tags: tags(&["t"]), ..leased(&lease.token) };
    assert!(matches!(c.set_with(NS, "b", &json!(1), &tagged).await, Err(Error::InvalidArgument(_))));
}

/// A leased value carries the tags given to the lease with their versions at the grant: an
/// invalidation between the grant and the set makes it a miss at once; a later one too.
pub async fn a_leased_value_computed_across_an_invalidation_is_a_miss(t: &TestEngine) {
    let c = t.sb.cache();
    let with_tag = CacheLeaseOptions { tags: tags(&["user-5"]), ..no_wait() };
    let lease = granted(c.lease(NS, "profile", &with_tag).await.unwrap());
    c.invalidate_tags(NS, &tags(&["user-5"])).await.unwrap();
    assert!(c.set_with(NS, "profile", &json!("computed from old data"), &leased(&lease.token)).await.unwrap());
    assert_eq!(c.get(NS, "profile").await.unwrap(), None, "the invalidation came after the grant");
    let lease = granted(c.lease(NS, "profile", &with_tag).await.unwrap());
    assert!(c.set_with(NS, "profile", &json!("fresh"), &leased(&lease.token)).await.unwrap());
    assert_eq!(c.get(NS, "profile").await.unwrap(), Some(json!("fresh")));
    c.invalidate_tags(NS, &tags(&["user-5"])).await.unwrap();
    assert_eq!(c.get(NS, "profile").await.unwrap(), None, "the lease's tags are the value's tags");
}

/// An invalidation without a namespace applies in every namespace: each value carrying the tag
/// is a miss, whatever its namespace, values without it stay, a lease granted before it (even in
/// a namespace first used by that lease) stores a miss, and a value visible before the
/// invalidation started never survives it.
pub async fn tags_invalidate_in_every_namespace(t: &TestEngine) {
    let c = t.sb.cache().clone();
    let user = tags(&["user:123"]);
    for ns in ["profile", "photos", "matches"] {
        c.set(ns, "u123", &json!(ns), None, &user).await.unwrap();
        c.set(ns, "u9", &json!(ns), None, &tags(&["user:9"])).await.unwrap();
    }
    let with_tag = CacheLeaseOptions { tags: user.clone(), ..no_wait() };
    let lease = granted(c.lease("first-used-by-a-lease", "u123", &with_tag).await.unwrap());
    let known = c.invalidate_tags_everywhere(&user).await.unwrap();
    assert!(known >= 3, "at least the three namespaces used: {known}");
    for ns in ["profile", "photos", "matches"] {
        assert_eq!(c.get(ns, "u123").await.unwrap(), None, "{ns}: tagged value invalidated");
        assert_eq!(c.get(ns, "u9").await.unwrap(), Some(json!(ns)), "{ns}: other tags stay");
    }
    assert!(c.set_with("first-used-by-a-lease", "u123", &json!("old"), &leased(&lease.token)).await.unwrap());
    assert_eq!(c.get("first-used-by-a-lease", "u123").await.unwrap(), None, "granted before the invalidation");
    c.set("profile", "u123", &json!("again"), None, &user).await.unwrap();
    assert_eq!(c.get("profile", "u123").await.unwrap(), Some(json!("again")), "a set after it lives");
    assert!(matches!(c.invalidate_tags_everywhere(&[]).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(c.invalidate_tags_everywhere(&tags(&["bad tag!"])).await, Err(Error::InvalidArgument(_))));

    for i in 0..50u32 {
        let ns = ["profile", "photos", "matches"][i as usize % 3];
        let key = format!("seen-{i}");
        let setter = {
            let (c, tag, key) = (c.clone(), user.clone(), key.clone());
            tokio::spawn(async move { c.set(ns, &key, &json!(i), None, &tag).await.unwrap() })
        };
        let invalidator = {
            let (c, tag, key) = (c.clone(), user.clone(), key.clone());
            tokio::spawn(async move {
                while !c.exists(ns, &key).await.unwrap() {
                    tokio::task::yield_now().await;
                }
                c.invalidate_tags_everywhere(&tag).await.unwrap();
            })
        };
        setter.await.unwrap();
        invalidator.await.unwrap();
        assert_eq!(c.get(ns, &key).await.unwrap(), None, "iteration {i}: a value set before it survived");
    }
}

/// After its TTL and within its grace a value is a miss for reads, but lease calls return it as
/// stale and hand exactly one of them a lease to revalidate; after the grace it is gone.
pub async fn stale_values_are_served_while_one_caller_revalidates(t: &TestEngine) {
    let c = t.sb.cache().clone();
    let swr = CacheSetOptions {
        ttl: Some(Duration::from_millis(300)),
        stale: Some(Duration::from_secs(30)),
        ..CacheSetOptions::default()
    };
    c.set_with(NS, "feed", &json!("v1"), &swr).await.unwrap();
    let tagged_swr = CacheSetOptions { tags: tags(&["g"]), ..swr.clone() };
    c.set_with(NS, "invalidated", &json!(1), &tagged_swr).await.unwrap();
    assert_eq!(c.lease(NS, "feed", &no_wait()).await.unwrap(), CacheLeaseAnswer::Fresh(json!("v1")));
    eventually(Duration::from_secs(3), "the value turns stale", || async {
        c.get(NS, "feed").await.unwrap().is_none()
    })
    .await;
    assert!(!c.exists(NS, "feed").await.unwrap());
    assert_eq!(c.stats(NS).await.unwrap().keys, 2, "stale values are still stored");
    let mut callers = Vec::new();
    for _ in 0..20 {
        let c = c.clone();
        callers.push(tokio::spawn(async move { c.lease(NS, "feed", &no_wait()).await.unwrap() }));
    }
    let mut leases = Vec::new();
    for caller in callers {
        match caller.await.unwrap() {
            CacheLeaseAnswer::Stale { value, lease } => {
                assert_eq!(value, json!("v1"));
                leases.extend(lease);
            }
            other => panic!("expected the stale value, got {other:?}"),
        }
    }
    assert_eq!(leases.len(), 1, "exactly one caller revalidates");
    assert!(
        c.set_with(
            NS,
            "feed",
            &json!("v2"),
            &CacheSetOptions { lease_token: Some(leases[0].token.clone()), ..swr.clone() }
        )
        .await
        .unwrap()
    );
    assert_eq!(c.get(NS, "feed").await.unwrap(), Some(json!("v2")));

    let short = CacheSetOptions {
        ttl: Some(Duration::from_millis(200)),
        stale: Some(Duration::from_millis(200)),
        ..CacheSetOptions::default()
    };
    c.set_with(NS, "brief", &json!(1), &short).await.unwrap();
    // 1 ms leases, so the leases handed out while it is stale do not hold off the check.
    let blink = CacheLeaseOptions { lease: Some(Duration::from_millis(1)), ..no_wait() };
    eventually(Duration::from_secs(3), "the grace runs out", || async {
        matches!(c.lease(NS, "brief", &blink).await.unwrap(), CacheLeaseAnswer::Granted(_))
    })
    .await;
    assert!(matches!(c.lease(NS, "invalidated", &no_wait()).await.unwrap(), CacheLeaseAnswer::Stale { .. }));
    c.delete(NS, "invalidated").await.unwrap();
    c.set_with(NS, "invalidated", &json!(1), &tagged_swr).await.unwrap();
    eventually(Duration::from_secs(3), "the value turns stale", || async {
        c.get(NS, "invalidated").await.unwrap().is_none()
    })
    .await;
    c.invalidate_tags(NS, &tags(&["g"])).await.unwrap();
    assert!(
        matches!(c.lease(NS, "invalidated", &no_wait()).await.unwrap(), CacheLeaseAnswer::Granted(_)),
        "an invalidated value is never served stale"
    );
}

/// Lease options and stale grace are bounded; namespaces in use appear in `stats_all`.
pub async fn lease_bounds_and_stats_of_all_namespaces(t: &TestEngine) {
    let c = t.sb.cache();
    let bad = [
        CacheLeaseOptions { lease: Some(Duration::ZERO), ..CacheLeaseOptions::default() },
        CacheLeaseOptions { lease: Some(Duration::from_secs(301)), ..CacheLeaseOptions::default() },
        CacheLeaseOptions { wait: Some(Duration::from_secs(31)), ..CacheLeaseOptions::default() },
        CacheLeaseOptions { tags: tags(&["bad tag"]), ..CacheLeaseOptions::default() },
    ];
    for options in bad {
        assert!(matches!(c.lease(NS, "k", &options).await, Err(Error::InvalidArgument(_))), "{options:?}");
    }
    let too_stale = CacheSetOptions { stale: Some(Duration::from_secs(31 * 24 * 3600)), ..CacheSetOptions::default() };
    assert!(matches!(c.set_with(NS, "k", &json!(1), &too_stale).await, Err(Error::InvalidArgument(_))));
    c.set("custom-ns", "k", &json!(1), None, &[]).await.unwrap();
    assert!(c.get("custom-ns", "k").await.unwrap().is_some());
    let all = c.stats_all().await.unwrap();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"custom-ns") && names.contains(&"user_profile"), "{names:?}");
    let custom = all.iter().find(|(n, _)| n == "custom-ns").unwrap().1;
    assert_eq!((custom.sets, custom.hits, custom.keys), (1, 1, 1));
}

/// Listing keys by prefix pages through the live keys in byte order, each once, skipping
/// expired ones and other namespaces; bounds are checked.
pub async fn keys_are_listed_by_prefix_and_paged(t: &TestEngine) {
    let c = t.sb.cache();
    let ns = "listing";
    let mut expected = Vec::new();
    for i in 0..25 {
        let key = format!("user:{i:02}:profile");
        c.set(ns, &key, &json!(i), None, &[]).await.unwrap();
        expected.push(key);
    }
    c.set(ns, "other:1", &json!(1), None, &[]).await.unwrap();
    c.set("elsewhere", "user:99:profile", &json!(1), None, &[]).await.unwrap();
    // Expired and never read since: still in the engine's indexes, never listed.
    c.set(ns, "user:short", &json!(1), Some(Duration::from_millis(100)), &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..30 {
        let page = c.keys(ns, "user:", cursor.as_deref(), Some(7)).await.unwrap();
        assert!(page.keys.len() <= 7);
        seen.extend(page.keys);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, expected, "every live key once, in order; expired and other prefixes left out");
    let all = c.keys(ns, "", None, Some(1000)).await.unwrap();
    assert_eq!(all.keys.len(), 26);
    assert_eq!(all.next_cursor, None);
    assert!(c.keys("never-used", "", None, None).await.unwrap().keys.is_empty());
    assert!(matches!(c.keys(ns, "", None, Some(0)).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(c.keys(ns, "", None, Some(1001)).await, Err(Error::InvalidArgument(_))));
    assert!(matches!(c.keys("bad ns", "", None, None).await, Err(Error::InvalidArgument(_))));
}
