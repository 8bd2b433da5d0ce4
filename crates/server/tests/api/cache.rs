//! `/cache`: values, batches, invalidation, stats, bad input, the lease protocol with concurrent
//! callers, and stale-while-revalidate — on the memory engine and on a real redis-server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use serde_json::{Value, json};

use crate::common::{MAX_BODY, TestApp};

/// Runs each listed case on the memory engine and on a real redis-server.
macro_rules! on_both_engines {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(super::TestApp::new()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let engine = switchboard_conformance::redis_engine().await;
                    super::$case(super::TestApp::with_switchboard(engine.sb)).await;
                }
            )*
        }
    };
}

on_both_engines!(
    put_get_delete,
    mget_and_mset,
    invalidation_by_tags_and_prefix,
    stats_per_namespace_and_of_all,
    keys_are_listed_by_prefix,
    bad_input_is_refused,
    lease_flow_with_concurrent_callers,
    lease_tokens_that_do_not_hold_the_lease_store_nothing,
    stale_values_are_served_while_one_caller_revalidates,
);

const NS: &str = "/api/v1/cache/api_response";

async fn put(app: &TestApp, key: &str, body: Value) -> u16 {
    app.put(&format!("{NS}/{key}"), body).await.status.as_u16()
}

async fn put_value_get_delete(app: &TestApp) {
    assert_eq!(put(app, "k1", json!({"value": {"a": [1, 2]}})).await, 204);
    let r = app.get(&format!("{NS}/k1")).await;
    assert_eq!(r.assert_status(200)["value"], json!({"a": [1, 2]}));
    // A JSON null is a value like any other.
    assert_eq!(put(app, "null", json!({"value": null, "ttl_seconds": 60, "tags": ["t1"]})).await, 204);
    assert_eq!(app.get(&format!("{NS}/null")).await.assert_status(200)["value"], Value::Null);
    // Keys are any UTF-8; `/` travels percent-encoded.
    assert_eq!(put(app, "user%2F1%3Aprofile", json!({"value": "slash"})).await, 204);
    assert_eq!(app.get(&format!("{NS}/user%2F1%3Aprofile")).await.assert_status(200)["value"], "slash");
    let r = app.post(&format!("{NS}/mget"), json!({"keys": ["user/1:profile"]})).await;
    assert_eq!(r.assert_status(200)["entries"][0]["value"], "slash");
}

async fn put_get_delete(app: TestApp) {
    put_value_get_delete(&app).await;
    app.get(&format!("{NS}/missing")).await.assert_error(404, "not_found");
    app.get("/api/v1/cache/user_profile/k1").await.assert_error(404, "not_found");
    app.delete(&format!("{NS}/k1")).await.assert_status(204);
    app.delete(&format!("{NS}/k1")).await.assert_error(404, "not_found");
    app.get(&format!("{NS}/k1")).await.assert_error(404, "not_found");
}

async fn mget_and_mset(app: TestApp) {
    let body = json!({
        "entries": [{"key": "a", "value": 1}, {"key": "b", "value": "two"}, {"key": "c", "value": {"x": 3}}],
        "ttl_seconds": 120,
        "tags": ["batch"],
    });
    assert_eq!(app.post(&format!("{NS}/mset"), body).await.assert_status(200)["stored"], 3);
    let r = app.post(&format!("{NS}/mget"), json!({"keys": ["c", "nope", "a"]})).await;
    assert_eq!(
        r.assert_status(200)["entries"],
        json!([
            {"key": "c", "hit": true, "value": {"x": 3}},
            {"key": "nope", "hit": false},
            {"key": "a", "hit": true, "value": 1},
        ])
    );
    app.post("/api/v1/cache/invalidate", json!({"namespace": "api_response", "tags": ["batch"]}))
        .await
        .assert_status(200);
    let r = app.post(&format!("{NS}/mget"), json!({"keys": ["a", "b"]})).await;
    assert_eq!(r.assert_status(200)["entries"], json!([{"key": "a", "hit": false}, {"key": "b", "hit": false}]));
    let r = app.post(&format!("{NS}/mget"), json!({"keys": []})).await;
    assert_eq!(r.assert_status(200)["entries"], json!([]));
}

async fn invalidation_by_tags_and_prefix(app: TestApp) {
    for key in ["user:1:a", "user:1:b", "user:10:a"] {
        assert_eq!(put(&app, key, json!({"value": key, "tags": ["u"]})).await, 204);
    }
    let r = app.post("/api/v1/cache/invalidate", json!({"namespace": "api_response", "prefix": "user:1:"})).await;
    assert_eq!(r.assert_status(200)["removed"], 2);
    app.get(&format!("{NS}/user:1:a")).await.assert_error(404, "not_found");
    app.get(&format!("{NS}/user:10:a")).await.assert_status(200);
    let r = app.post("/api/v1/cache/invalidate", json!({"namespace": "api_response", "tags": ["u"]})).await;
    assert_eq!(r.assert_status(200), &json!({}));
    app.get(&format!("{NS}/user:10:a")).await.assert_error(404, "not_found");

    // No namespace: the tags in every namespace.
    for ns in ["profile", "photos"] {
        let r = app.put(&format!("/api/v1/cache/{ns}/u123"), json!({"value": ns, "tags": ["user:123"]})).await;
        r.assert_status(204);
        let r = app.put(&format!("/api/v1/cache/{ns}/u9"), json!({"value": ns, "tags": ["user:9"]})).await;
        r.assert_status(204);
    }
    let r = app.post("/api/v1/cache/invalidate", json!({"tags": ["user:123"]})).await;
    assert!(r.assert_status(200)["namespaces"].as_u64().unwrap() >= 2, "{:?}", r.json);
    for ns in ["profile", "photos"] {
        app.get(&format!("/api/v1/cache/{ns}/u123")).await.assert_error(404, "not_found");
        app.get(&format!("/api/v1/cache/{ns}/u9")).await.assert_status(200);
    }
    let r = app.post("/api/v1/cache/invalidate", json!({"prefix": "user:"})).await;
    r.assert_error(400, "invalid_argument");
}

async fn keys_are_listed_by_prefix(app: TestApp) {
    for key in ["user:1:a", "user:1:b", "user:2:a", "geo:1"] {
        assert_eq!(put(&app, key, json!({"value": 1})).await, 204);
    }
    let r = app.get("/api/v1/cache?namespace=api_response&prefix=user:1:").await;
    assert_eq!(r.assert_status(200), &json!({"keys": ["user:1:a", "user:1:b"]}));
    let r = app.get("/api/v1/cache?namespace=api_response&prefix=user:&limit=2").await;
    let page = r.assert_status(200);
    assert_eq!(
        (page["keys"].clone(), page["next_cursor"].clone()),
        (json!(["user:1:a", "user:1:b"]), json!("user:1:b"))
    );
    let r = app.get("/api/v1/cache?namespace=api_response&prefix=user:&limit=2&cursor=user:1:b").await;
    assert_eq!(r.assert_status(200)["keys"], json!(["user:2:a"]));
    app.get("/api/v1/cache?prefix=user:").await.assert_error(400, "invalid_argument");
    app.get("/api/v1/cache?namespace=api_response&limit=0").await.assert_error(400, "invalid_argument");
}

async fn stats_per_namespace_and_of_all(app: TestApp) {
    assert_eq!(put(&app, "s", json!({"value": 1})).await, 204);
    app.get(&format!("{NS}/s")).await.assert_status(200);
    app.get(&format!("{NS}/nope")).await.assert_error(404, "not_found");
    app.put("/api/v1/cache/my-own-namespace/k", json!({"value": true})).await.assert_status(204);
    let r = app.get("/api/v1/cache/stats?namespace=api_response").await;
    assert_eq!(
        r.assert_status(200)["namespaces"]["api_response"],
        json!({"hits": 1, "misses": 1, "sets": 1, "invalidations": 0, "evictions": 0, "keys": 1})
    );
    let all = app.get("/api/v1/cache/stats").await;
    let all = all.assert_status(200)["namespaces"].as_object().expect("namespaces").clone();
    for name in ["api_response", "my-own-namespace", "user_profile", "geospatial"] {
        assert!(all.contains_key(name), "{name} missing from {all:?}");
    }
    assert_eq!(all["my-own-namespace"]["sets"], 1);
}

async fn bad_input_is_refused(app: TestApp) {
    let cases: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (Method::PUT, "/api/v1/cache/bad%20ns/k".into(), Some(json!({"value": 1})), 400, "namespace"),
        (Method::GET, format!("/api/v1/cache/{}/k", "n".repeat(65)), None, 400, "namespace"),
        (Method::GET, format!("{NS}/{}", "k".repeat(513)), None, 400, "key"),
        (Method::PUT, format!("{NS}/k"), Some(json!({})), 400, "value"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "ttl_seconds": 0})), 400, "ttl_seconds"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "ttl_seconds": -5})), 400, "ttl_seconds"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "ttl_seconds": 2_592_001})), 400, "ttl_seconds"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "ttl_seconds": "60"})), 400, "ttl_seconds"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "stale_seconds": 2_592_001})), 400, "stale_seconds"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "ttl": 5})), 400, "unknown field"),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "tags": ["a b"]})), 400, "tags"),
        (
            Method::PUT,
            format!("{NS}/k"),
            Some(json!({"value": 1, "tags": (0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()})),
            400,
            "tags",
        ),
        (Method::PUT, format!("{NS}/k"), Some(json!({"value": 1, "lease_token": "short"})), 400, "lease_token"),
        (
            Method::PUT,
            format!("{NS}/k"),
            Some(json!({"value": 1, "lease_token": "AAAAAAAAAAAAAAAAAAAAAA", "tags": ["t"]})),
            400,
            "tags",
        ),
        (
            Method::POST,
            format!("{NS}/mget"),
            Some(json!({"keys": (0..1001).map(|i| format!("k{i}")).collect::<Vec<_>>()})),
            400,
            "1000",
        ),
        (Method::POST, format!("{NS}/mget"), Some(json!({"keys": [""]})), 400, "key"),
        (Method::POST, format!("{NS}/mget"), Some(json!({"key": ["a"]})), 400, "unknown field"),
        (
            Method::POST,
            format!("{NS}/mset"),
            Some(
                json!({"entries": (0..1001).map(|i| json!({"key": format!("k{i}"), "value": i})).collect::<Vec<_>>()}),
            ),
            400,
            "1000",
        ),
        (Method::POST, format!("{NS}/mset"), Some(json!({"entries": [{"key": "a"}]})), 400, "value"),
        (
            Method::POST,
            format!("{NS}/mset"),
            Some(json!({"entries": [{"key": "a", "value": 1}], "ttl_seconds": 0})),
            400,
            "ttl_seconds",
        ),
        (Method::POST, format!("{NS}/k/lease"), Some(json!({"lease_ms": 0})), 400, "lease_ms"),
        (Method::POST, format!("{NS}/k/lease"), Some(json!({"lease_ms": 300_001})), 400, "lease_ms"),
        (Method::POST, format!("{NS}/k/lease"), Some(json!({"wait_ms": 30_001})), 400, "wait_ms"),
        (Method::POST, format!("{NS}/k/lease"), Some(json!({"wait": 1})), 400, "unknown field"),
        (Method::POST, "/api/v1/cache/invalidate".into(), Some(json!({"namespace": "api_response"})), 400, "tags"),
        (
            Method::POST,
            "/api/v1/cache/invalidate".into(),
            Some(json!({"namespace": "api_response", "tags": ["a"], "prefix": "p"})),
            400,
            "prefix",
        ),
        (
            Method::POST,
            "/api/v1/cache/invalidate".into(),
            Some(json!({"namespace": "api_response", "tags": []})),
            400,
            "tags",
        ),
        (
            Method::POST,
            "/api/v1/cache/invalidate".into(),
            Some(json!({"namespace": "api_response", "prefix": ""})),
            400,
            "prefix",
        ),
        (
            Method::POST,
            "/api/v1/cache/invalidate".into(),
            Some(json!({"namespace": "b@d!", "tags": ["a"]})),
            400,
            "namespace",
        ),
        (Method::POST, "/api/v1/cache/invalidate".into(), Some(json!({"prefix": "p"})), 400, "namespace"),
        (Method::POST, "/api/v1/cache/invalidate".into(), Some(json!({"tags": ["bad tag"]})), 400, "tags"),
        (Method::GET, "/api/v1/cache/stats?namespace=bad%20ns".into(), None, 400, "namespace"),
        (Method::GET, "/api/v1/cache/stats?ns=x".into(), None, 400, "unknown field"),
    ];
    for (method, path, body, status, mention) in cases {
        let r = app.call(method.clone(), &path, body).await;
        let message = r.assert_error(status, "invalid_argument");
        assert!(message.contains(mention), "{method} {path}: {message:?} does not mention {mention:?}");
    }
    // Over the body limit (1 MiB by default, 64 KiB in these tests): 413, nothing stored.
    let big = json!({"value": "x".repeat(MAX_BODY)});
    app.put(&format!("{NS}/big"), big.clone()).await.assert_error(413, "payload_too_large");
    let batch = json!({"entries": [{"key": "big", "value": big["value"]}]});
    app.post(&format!("{NS}/mset"), batch).await.assert_error(413, "payload_too_large");
    app.get(&format!("{NS}/big")).await.assert_error(404, "not_found");
    // `mget`/`mset` are routes of their own: a key of that name is reached through mget.
    app.call(Method::GET, &format!("{NS}/mget"), None).await.assert_status(405);
}

/// N concurrent lease calls on a missing key: exactly one gets a token; the others wait and
/// receive the value once its holder PUTs it.
async fn lease_flow_with_concurrent_callers(app: TestApp) {
    const N: usize = 20;
    let app = Arc::new(app);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..N {
        let (app, tx) = (app.clone(), tx.clone());
        tokio::spawn(async move {
            let r = app.post(&format!("{NS}/hot/lease"), json!({"wait_ms": 10_000, "tags": ["hot"]})).await;
            let _ = tx.send((r.status.as_u16(), r.json, Instant::now()));
        });
    }
    drop(tx);
    let (status, first, _) = rx.recv().await.expect("an answer");
    assert_eq!(status, 200);
    assert_eq!(first["hit"], false, "{first}");
    let token = first["lease_token"].as_str().expect("the first answer holds the lease").to_owned();
    assert!(token.len() >= 22, "128 bits or more: {token}");
    assert!(first["lease_expires_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{first}");

    // Everyone else is waiting; a caller that will not wait is told to retry.
    let r = app.post(&format!("{NS}/hot/lease"), json!({"wait_ms": 0})).await;
    let pending = r.assert_status(200);
    assert_eq!((pending["hit"].clone(), pending["lease_token"].clone()), (json!(false), Value::Null), "{pending}");
    assert!(pending["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0 && ms <= 10_000), "{pending}");

    tokio::time::sleep(Duration::from_millis(100)).await;
    let stored_at = Instant::now();
    assert_eq!(put(&app, "hot", json!({"value": {"computed": 1}, "lease_token": token})).await, 204);
    let mut others = 0;
    while let Some((status, answer, at)) = rx.recv().await {
        assert_eq!(status, 200);
        assert_eq!(answer, json!({"hit": true, "stale": false, "value": {"computed": 1}, "lease_token": null}));
        assert!(at >= stored_at, "a waiter answered before the value was stored");
        others += 1;
    }
    assert_eq!(others, N - 1);
    // The lease's tag applies to the value.
    app.post("/api/v1/cache/invalidate", json!({"namespace": "api_response", "tags": ["hot"]}))
        .await
        .assert_status(200);
    app.get(&format!("{NS}/hot")).await.assert_error(404, "not_found");
    // An empty body asks with the defaults.
    let r = app.call(Method::POST, &format!("{NS}/hot/lease"), None).await;
    assert!(r.assert_status(200)["lease_token"].is_string(), "{}", r.text);
}

async fn lease_tokens_that_do_not_hold_the_lease_store_nothing(app: TestApp) {
    let r = app.post(&format!("{NS}/x/lease"), json!({"wait_ms": 0})).await;
    let token = r.assert_status(200)["lease_token"].as_str().expect("granted").to_owned();
    let wrong = "AAAAAAAAAAAAAAAAAAAAAA";
    app.put(&format!("{NS}/x"), json!({"value": 1, "lease_token": wrong})).await.assert_error(409, "conflict");
    app.get(&format!("{NS}/x")).await.assert_error(404, "not_found");
    assert_eq!(put(&app, "x", json!({"value": 2, "lease_token": token})).await, 204);
    app.put(&format!("{NS}/x"), json!({"value": 3, "lease_token": token})).await.assert_error(409, "conflict");
    assert_eq!(app.get(&format!("{NS}/x")).await.assert_status(200)["value"], 2);
    // A delete drops the lease: a value computed before it cannot land after it.
    app.delete(&format!("{NS}/x")).await.assert_status(204);
    let r = app.post(&format!("{NS}/x/lease"), json!({"wait_ms": 0})).await;
    let token = r.assert_status(200)["lease_token"].as_str().expect("granted").to_owned();
    app.delete(&format!("{NS}/x")).await.assert_error(404, "not_found");
    app.put(&format!("{NS}/x"), json!({"value": 4, "lease_token": token})).await.assert_error(409, "conflict");
}

async fn stale_values_are_served_while_one_caller_revalidates(app: TestApp) {
    assert_eq!(put(&app, "feed", json!({"value": "v1", "ttl_seconds": 1, "stale_seconds": 60})).await, 204);
    let r = app.post(&format!("{NS}/feed/lease"), json!({})).await;
    assert_eq!(r.assert_status(200), &json!({"hit": true, "stale": false, "value": "v1", "lease_token": null}));
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get(&format!("{NS}/feed")).await.status.as_u16() != 404 {
        assert!(Instant::now() < deadline, "the value never turned stale");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = app.post(&format!("{NS}/feed/lease"), json!({"wait_ms": 0})).await;
    let first = r.assert_status(200).clone();
    assert_eq!(
        (first["hit"].clone(), first["stale"].clone(), first["value"].clone()),
        (json!(true), json!(true), json!("v1"))
    );
    let token = first["lease_token"].as_str().expect("the first stale reader revalidates").to_owned();
    let r = app.post(&format!("{NS}/feed/lease"), json!({"wait_ms": 1000})).await;
    assert_eq!(r.assert_status(200), &json!({"hit": true, "stale": true, "value": "v1", "lease_token": null}));
    assert_eq!(put(&app, "feed", json!({"value": "v2", "lease_token": token, "stale_seconds": 60})).await, 204);
    assert_eq!(app.get(&format!("{NS}/feed")).await.assert_status(200)["value"], "v2");
}

#[tokio::test]
async fn cache_counters_reach_metrics_with_bounded_labels() {
    let app = TestApp::new();
    assert_eq!(put(&app, "m", json!({"value": 1})).await, 204);
    app.get(&format!("{NS}/m")).await.assert_status(200);
    app.get(&format!("{NS}/none")).await.assert_error(404, "not_found");
    app.put("/api/v1/cache/unlisted-ns-1/k", json!({"value": 1})).await.assert_status(204);
    app.put("/api/v1/cache/unlisted-ns-2/k", json!({"value": 1})).await.assert_status(204);
    app.post("/api/v1/cache/invalidate", json!({"namespace": "api_response", "tags": ["x"]})).await.assert_status(200);
    let text = app.public_get("/metrics").await.text;
    for line in [
        "switchboard_cache_hits_total{namespace=\"api_response\"}",
        "switchboard_cache_misses_total{namespace=\"api_response\"}",
        "switchboard_cache_sets_total{namespace=\"api_response\"}",
        "switchboard_cache_sets_total{namespace=\"other\"}",
        "switchboard_cache_invalidations_total{namespace=\"api_response\"}",
    ] {
        assert!(text.contains(line), "{line} missing from /metrics");
    }
    assert!(!text.contains("unlisted-ns"), "unconfigured namespaces must not become labels");
}
