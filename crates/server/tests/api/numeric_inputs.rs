//! Every numeric input of the API, fed random and extreme integers (0, negatives, the i64 and u64
//! extremes, 2^53 ± 1, 1e300, fractions) on both engines side by side. Each answer must be a
//! non-5xx, both engines must give the same status, and an error must leave Redis exactly as it
//! was (its `DEBUG DIGEST` covers every key, value and whether a key has an expiry).
//!
//! The cases are checked against the OpenAPI document: a numeric field the document lists with no
//! case here fails the test, so a new field cannot skip this.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Method, Request, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchboard_conformance::RedisServer;
use switchboard_conformance::harness::free_port;
use switchboard_core::Switchboard;
use tower::ServiceExt;

use crate::common::{KEY, TestApp, switchboard_config};

/// Where the number goes.
#[derive(Clone, Copy)]
enum Slot {
    /// A query parameter.
    Query(&'static str),
    /// A JSON pointer into the body.
    Body(&'static str),
}

/// Some state a case needs before each request.
#[derive(Clone, Copy, PartialEq)]
enum Needs {
    Nothing,
    /// A fresh job in `numq`, leased: `{job}` and `{lease}` are replaced with it.
    LeasedJob,
    /// A waiting job in `numq`, so a fetch answers at once instead of long-polling.
    WaitingJob,
}

struct Case {
    method: Method,
    /// Path and fixed query; `{n}` becomes a number unique to the request.
    path: &'static str,
    body: Option<Value>,
    slot: Slot,
    needs: Needs,
    /// The field as the OpenAPI scan names it: "<METHOD> <template> query:<name>" or
    /// "<METHOD> <template> body.<a.b>" (array items as `[]`).
    covers: &'static str,
    /// Whether the field's documented edges (minimum, maximum) are accepted with the rest of
    /// the body as it is; `false` where another field bounds this one (`base_ms <= max_ms`, a
    /// cost within the policy's capacity).
    edges: bool,
}

fn case(method: Method, path: &'static str, body: Option<Value>, slot: Slot, covers: &'static str) -> Case {
    let edges = !["base_ms", "max_ms", "cost"].iter().any(|bound_by_another| covers.ends_with(bound_by_another));
    Case { method, path, body, slot, needs: Needs::Nothing, covers, edges }
}

fn enqueue_body() -> Value {
    json!({"type": "num.test", "payload": {}, "backoff": {"kind": "exponential", "base_ms": 1000, "max_ms": 60000}})
}

fn cases() -> Vec<Case> {
    use Method as M;
    use Slot::{Body as B, Query as Q};
    let exp = json!({"kind": "exponential", "base_ms": 1000, "max_ms": 60000});
    let fixed = json!({"kind": "fixed", "delay_ms": 1000});
    let poly = json!({"kind": "polynomial", "base_ms": 1000, "exponent": 2, "max_ms": 60000});
    let enqueue = |backoff: &Value| json!({"type": "num.test", "payload": {}, "backoff": backoff});
    let bulk = |backoff: &Value| json!({"jobs": [{"type": "num.test", "payload": {}, "backoff": backoff}]});
    let schedule = |backoff: &Value| json!({"queue": "numq", "type": "num.tick", "payload": {}, "every_ms": 60000, "backoff": backoff});
    let mut cases = vec![
        case(
            M::POST,
            "/api/v1/cache/ns/mset",
            Some(json!({"entries": [{"key": "k{n}", "value": 1}], "ttl_seconds": 60})),
            B("/ttl_seconds"),
            "POST /api/v1/cache/{namespace}/mset body.ttl_seconds",
        ),
        case(
            M::POST,
            "/api/v1/cache/ns/mset",
            Some(json!({"entries": [{"key": "k{n}", "value": 1}], "ttl_seconds": 60, "stale_seconds": 10})),
            B("/stale_seconds"),
            "POST /api/v1/cache/{namespace}/mset body.stale_seconds",
        ),
        case(
            M::PUT,
            "/api/v1/cache/ns/k{n}",
            Some(json!({"value": 1, "ttl_seconds": 60})),
            B("/ttl_seconds"),
            "PUT /api/v1/cache/{namespace}/{key} body.ttl_seconds",
        ),
        case(
            M::PUT,
            "/api/v1/cache/ns/k{n}",
            Some(json!({"value": 1, "ttl_seconds": 60, "stale_seconds": 10})),
            B("/stale_seconds"),
            "PUT /api/v1/cache/{namespace}/{key} body.stale_seconds",
        ),
        case(
            M::POST,
            "/api/v1/cache/ns/l{n}/lease",
            Some(json!({"lease_ms": 1000})),
            B("/lease_ms"),
            "POST /api/v1/cache/{namespace}/{key}/lease body.lease_ms",
        ),
        case(
            M::POST,
            "/api/v1/cache/ns/l{n}/lease",
            Some(json!({"wait_ms": 0})),
            B("/wait_ms"),
            "POST /api/v1/cache/{namespace}/{key}/lease body.wait_ms",
        ),
        case(
            M::GET,
            "/api/v1/channels/chat:c1/history",
            None,
            Q("limit"),
            "GET /api/v1/channels/{channel}/history query:limit",
        ),
        case(
            M::GET,
            "/api/v1/channels/chat:c1/history?since_epoch=e1",
            None,
            Q("since_offset"),
            "GET /api/v1/channels/{channel}/history query:since_offset",
        ),
        case(
            M::GET,
            "/api/v1/conversations/c1/messages",
            None,
            Q("limit"),
            "GET /api/v1/conversations/{conversation_id}/messages query:limit",
        ),
        case(M::GET, "/api/v1/presence/online", None, Q("limit"), "GET /api/v1/presence/online query:limit"),
        case(M::GET, "/api/v1/cache?namespace=numns", None, Q("limit"), "GET /api/v1/cache query:limit"),
        case(M::GET, "/api/v1/queues/numq?state=waiting", None, Q("offset"), "GET /api/v1/queues/{queue} query:offset"),
        case(M::GET, "/api/v1/queues/numq?state=waiting", None, Q("limit"), "GET /api/v1/queues/{queue} query:limit"),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(json!({"type": "num.test", "payload": {}, "delay_ms": 10})),
            B("/delay_ms"),
            "POST /api/v1/queues/{queue}/jobs body.delay_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue_body()),
            B("/lease_ms"),
            "POST /api/v1/queues/{queue}/jobs body.lease_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue_body()),
            B("/max_attempts"),
            "POST /api/v1/queues/{queue}/jobs body.max_attempts",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue_body()),
            B("/priority"),
            "POST /api/v1/queues/{queue}/jobs body.priority",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue(&exp)),
            B("/backoff/base_ms"),
            "POST /api/v1/queues/{queue}/jobs body.backoff.base_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue(&exp)),
            B("/backoff/max_ms"),
            "POST /api/v1/queues/{queue}/jobs body.backoff.max_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue(&fixed)),
            B("/backoff/delay_ms"),
            "POST /api/v1/queues/{queue}/jobs body.backoff.delay_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue(&poly)),
            B("/backoff/exponent"),
            "POST /api/v1/queues/{queue}/jobs body.backoff.exponent",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue(&poly)),
            B("/backoff/base_ms"),
            "POST /api/v1/queues/{queue}/jobs body.backoff.base_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs",
            Some(enqueue(&poly)),
            B("/backoff/max_ms"),
            "POST /api/v1/queues/{queue}/jobs body.backoff.max_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(json!({"jobs": [{"type": "num.test", "payload": {}, "delay_ms": 10}]})),
            B("/jobs/0/delay_ms"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].delay_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&exp)),
            B("/jobs/0/lease_ms"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].lease_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&exp)),
            B("/jobs/0/max_attempts"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].max_attempts",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&exp)),
            B("/jobs/0/priority"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].priority",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&exp)),
            B("/jobs/0/backoff/base_ms"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].backoff.base_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&exp)),
            B("/jobs/0/backoff/max_ms"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].backoff.max_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&fixed)),
            B("/jobs/0/backoff/delay_ms"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].backoff.delay_ms",
        ),
        case(
            M::POST,
            "/api/v1/queues/numq/jobs/bulk",
            Some(bulk(&poly)),
            B("/jobs/0/backoff/exponent"),
            "POST /api/v1/queues/{queue}/jobs/bulk body.jobs[].backoff.exponent",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"key": "k{n}", "policy": "login", "cost": 1})),
            B("/cost"),
            "POST /api/v1/rate-limits/check body.cost",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"key": "k{n}", "policy": {"limit": 10, "window_ms": 60000, "burst": 5}})),
            B("/policy/burst"),
            "POST /api/v1/rate-limits/check body.policy.burst",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"key": "k{n}", "policy": {"limit": 10, "window_ms": 60000}})),
            B("/policy/limit"),
            "POST /api/v1/rate-limits/check body.policy.limit",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"key": "k{n}", "policy": {"limit": 10, "window_ms": 60000, "algorithm": "sliding_log"}})),
            B("/policy/window_ms"),
            "POST /api/v1/rate-limits/check body.policy.window_ms",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"checks": [{"key": "k{n}", "policy": "login", "cost": 1}]})),
            B("/checks/0/cost"),
            "POST /api/v1/rate-limits/check body.checks[].cost",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"checks": [{"key": "k{n}", "policy": {"limit": 10, "window_ms": 60000, "burst": 5}}]})),
            B("/checks/0/policy/burst"),
            "POST /api/v1/rate-limits/check body.checks[].policy.burst",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(
                json!({"checks": [{"key": "k{n}", "policy": {"limit": 10, "window_ms": 60000, "algorithm": "sliding_window"}}]}),
            ),
            B("/checks/0/policy/limit"),
            "POST /api/v1/rate-limits/check body.checks[].policy.limit",
        ),
        case(
            M::POST,
            "/api/v1/rate-limits/check",
            Some(json!({"checks": [{"key": "k{n}", "policy": {"limit": 10, "window_ms": 60000}}]})),
            B("/checks/0/policy/window_ms"),
            "POST /api/v1/rate-limits/check body.checks[].policy.window_ms",
        ),
        case(
            M::GET,
            "/api/v1/rate-limits/status?key=k1&window_ms=60000",
            None,
            Q("limit"),
            "GET /api/v1/rate-limits/status query:limit",
        ),
        case(
            M::GET,
            "/api/v1/rate-limits/status?key=k1&limit=10",
            None,
            Q("window_ms"),
            "GET /api/v1/rate-limits/status query:window_ms",
        ),
        case(
            M::GET,
            "/api/v1/rate-limits/status?key=k1&limit=10&window_ms=60000",
            None,
            Q("burst"),
            "GET /api/v1/rate-limits/status query:burst",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&exp)),
            B("/every_ms"),
            "PUT /api/v1/schedules/{name} body.every_ms",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&exp)),
            B("/lease_ms"),
            "PUT /api/v1/schedules/{name} body.lease_ms",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&exp)),
            B("/max_attempts"),
            "PUT /api/v1/schedules/{name} body.max_attempts",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&exp)),
            B("/priority"),
            "PUT /api/v1/schedules/{name} body.priority",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&exp)),
            B("/backoff/base_ms"),
            "PUT /api/v1/schedules/{name} body.backoff.base_ms",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&exp)),
            B("/backoff/max_ms"),
            "PUT /api/v1/schedules/{name} body.backoff.max_ms",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&fixed)),
            B("/backoff/delay_ms"),
            "PUT /api/v1/schedules/{name} body.backoff.delay_ms",
        ),
        case(
            M::PUT,
            "/api/v1/schedules/s{n}",
            Some(schedule(&poly)),
            B("/backoff/exponent"),
            "PUT /api/v1/schedules/{name} body.backoff.exponent",
        ),
        case(
            M::POST,
            "/api/v1/sessions",
            Some(json!({"user_id": "u{n}", "absolute_ttl_seconds": 3600})),
            B("/absolute_ttl_seconds"),
            "POST /api/v1/sessions body.absolute_ttl_seconds",
        ),
        case(
            M::POST,
            "/api/v1/sessions",
            Some(json!({"user_id": "u{n}", "idle_ttl_seconds": 600})),
            B("/idle_ttl_seconds"),
            "POST /api/v1/sessions body.idle_ttl_seconds",
        ),
        case(
            M::PUT,
            "/api/v1/users/u{n}/contacts",
            Some(json!({"contacts": ["bob"], "ttl_seconds": 60})),
            B("/ttl_seconds"),
            "PUT /api/v1/users/{user_id}/contacts body.ttl_seconds",
        ),
        case(
            M::GET,
            "/api/v1/users/alice/conversations",
            None,
            Q("limit"),
            "GET /api/v1/users/{user_id}/conversations query:limit",
        ),
        case(
            M::PUT,
            "/api/v1/users/alice/conversations",
            Some(
                json!({"conversations": [{"conversation_id": "imported{n}", "last_message_at": "2026-01-01T00:00:00Z"}]}),
            ),
            B("/conversations/0/unread"),
            "PUT /api/v1/users/{user_id}/conversations body.conversations[].unread",
        ),
        case(
            M::PUT,
            "/api/v1/users/alice/conversations/c1/unread",
            Some(json!({})),
            B("/unread"),
            "PUT /api/v1/users/{user_id}/conversations/{conversation_id}/unread body.unread",
        ),
        case(
            M::POST,
            "/api/v1/users/alice/devices/d1/ack",
            Some(json!({"epoch": "e", "offset": 1})),
            B("/offset"),
            "POST /api/v1/users/{user_id}/devices/{device_id}/ack body.offset",
        ),
        case(
            M::POST,
            "/api/v1/users/alice/devices/d{n}/heartbeat",
            Some(json!({"ttl_seconds": 30})),
            B("/ttl_seconds"),
            "POST /api/v1/users/{user_id}/devices/{device_id}/heartbeat body.ttl_seconds",
        ),
        case(
            M::GET,
            "/api/v1/users/alice/devices/d1/pending",
            None,
            Q("limit"),
            "GET /api/v1/users/{user_id}/devices/{device_id}/pending query:limit",
        ),
        case(
            M::GET,
            "/api/v1/users/alice/notifications",
            None,
            Q("limit"),
            "GET /api/v1/users/{user_id}/notifications query:limit",
        ),
    ];
    let leased = [
        (
            "/api/v1/jobs/{job}/fail",
            json!({"lease_token": "{lease}", "error": "e", "retry_in_ms": 10}),
            "/retry_in_ms",
            "POST /api/v1/jobs/{job_id}/fail body.retry_in_ms",
        ),
        (
            "/api/v1/jobs/{job}/heartbeat",
            json!({"lease_token": "{lease}", "lease_ms": 1000}),
            "/lease_ms",
            "POST /api/v1/jobs/{job_id}/heartbeat body.lease_ms",
        ),
    ];
    for (path, body, pointer, covers) in leased {
        cases.push(Case { needs: Needs::LeasedJob, ..case(M::POST, path, Some(body), B(pointer), covers) });
    }
    for (pointer, covers) in [
        ("/lease_ms", "POST /api/v1/queues/fetch body.lease_ms"),
        ("/max_jobs", "POST /api/v1/queues/fetch body.max_jobs"),
        ("/wait_ms", "POST /api/v1/queues/fetch body.wait_ms"),
    ] {
        let body = json!({"queues": ["numq"], "max_jobs": 1, "wait_ms": 0});
        cases.push(Case {
            needs: Needs::WaitingJob,
            ..case(M::POST, "/api/v1/queues/fetch", Some(body), B(pointer), covers)
        });
    }
    cases
}

/// The numbers each field gets: the edges of every integer type a handler might parse into,
/// numbers JSON can carry but integers cannot, and random integers of every magnitude.
fn numbers(seed: u64) -> Vec<Value> {
    let mut values = vec![
        json!(0),
        json!(1),
        json!(-1),
        json!(2),
        json!(59),
        json!(1000),
        json!(86_400),
        json!(i32::MAX),
        json!(1u64 << 31),
        json!(u32::MAX),
        json!((1u64 << 53) - 1),
        json!((1u64 << 53) + 1),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(1e300),
        json!(-1e300),
        json!(0.5),
        json!(100_000_000_000_000u64),
    ];
    // xorshift64*: random integers of random bit length, either sign.
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for _ in 0..12 {
        let bits = next() % 64;
        let magnitude = next() >> (63 - bits);
        values.push(if next() % 4 == 0 { json!(-(magnitude as i64).abs()) } else { json!(magnitude) });
    }
    values
}

/// Both engines behind one router each, the Redis one on a server of its own (so its digest is
/// this test's keys alone).
struct Engines {
    memory: TestApp,
    redis: TestApp,
    server: RedisServer,
}

impl Engines {
    async fn start() -> Self {
        let server = RedisServer::start_with(free_port(), &["--enable-debug-command", "yes"]);
        // Keys that expire on their own between two digests would look like a write.
        assert_eq!(server.command("DEBUG SET-ACTIVE-EXPIRE 0"), "+OK");
        let config = switchboard_redis::RedisConfig::new(server.url());
        let engine = switchboard_redis::connect(config).await.expect("connect to the test redis-server");
        let redis =
            TestApp::with_switchboard(Switchboard::new(engine, switchboard_config()).expect("valid test config"));
        Engines { memory: TestApp::new(), redis, server }
    }

    fn digest(&self) -> String {
        self.server.command("DEBUG DIGEST")
    }
}

async fn send(app: &TestApp, method: &Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = app.router.clone().oneshot(req.body(body).expect("request")).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Replaces `{n}`, `{job}` and `{lease}` in every string of `value`.
fn fill(value: &mut Value, vars: &[(&str, &str)]) {
    match value {
        Value::String(s) => {
            for (name, with) in vars {
                *s = s.replace(name, with);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| fill(v, vars)),
        Value::Object(map) => map.values_mut().for_each(|v| fill(v, vars)),
        _ => {}
    }
}

/// Prepares what `needs` asks for on `app`; returns the `{job}` and `{lease}` values.
async fn prepare(app: &TestApp, needs: Needs) -> (String, String) {
    if needs == Needs::Nothing {
        return (String::new(), String::new());
    }
    let (status, job) = send(app, &Method::POST, "/api/v1/queues/numq/jobs", Some(&enqueue_body())).await;
    assert_eq!(status, 201, "{job}");
    if needs == Needs::WaitingJob {
        return (String::new(), String::new());
    }
    let fetch = json!({"queues": ["numq"], "max_jobs": 1, "wait_ms": 0});
    let (status, leased) = send(app, &Method::POST, "/api/v1/queues/fetch", Some(&fetch)).await;
    assert_eq!(status, 200, "{leased}");
    let job = &leased["jobs"][0];
    (job["id"].as_str().expect("job id").to_owned(), job["lease_token"].as_str().expect("lease token").to_owned())
}

/// A field's documented bounds.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bounds {
    minimum: Option<f64>,
    maximum: Option<f64>,
}

/// The numeric fields the OpenAPI document lists, named as `Case::covers` names them, with the
/// bounds it states.
fn numeric_fields(doc: &Value) -> BTreeMap<String, Bounds> {
    fn walk(doc: &Value, schema: &Value, at: String, seen: &mut Vec<String>, out: &mut BTreeMap<String, Bounds>) {
        let mut schema = schema;
        if let Some(name) = schema.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
            if seen.iter().any(|s| s == name) {
                return;
            }
            seen.push(name.to_owned());
            schema = &doc["components"]["schemas"][name];
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for option in schema.get(key).and_then(Value::as_array).into_iter().flatten() {
                walk(doc, option, at.clone(), &mut seen.clone(), out);
            }
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if types.iter().any(|t| *t == "integer" || *t == "number") {
            let bounds = Bounds { minimum: schema["minimum"].as_f64(), maximum: schema["maximum"].as_f64() };
            out.insert(at.clone(), bounds);
        }
        for (name, property) in schema.get("properties").and_then(Value::as_object).into_iter().flatten() {
            walk(doc, property, format!("{at}.{name}"), &mut seen.clone(), out);
        }
        if let Some(items) = schema.get("items") {
            walk(doc, items, format!("{at}[]"), &mut seen.clone(), out);
        }
    }
    let mut out = BTreeMap::new();
    for (template, operations) in doc["paths"].as_object().expect("paths") {
        for (method, op) in operations.as_object().expect("operations") {
            let method = method.to_uppercase();
            for param in op["parameters"].as_array().into_iter().flatten() {
                let at = format!(
                    "{method} {template} {}:{}",
                    param["in"].as_str().unwrap_or(""),
                    param["name"].as_str().unwrap_or("")
                );
                walk(doc, &param["schema"], at, &mut Vec::new(), &mut out);
            }
            if let Some(body) = op.pointer("/requestBody/content/application~1json/schema") {
                walk(doc, body, format!("{method} {template} body"), &mut Vec::new(), &mut out);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_numeric_input_is_bounded_alike_on_both_engines_and_an_error_writes_nothing() {
    let engines = Engines::start().await;
    let doc = engines.memory.get("/api/v1/openapi.json").await.assert_status(200).clone();
    let cases = cases();
    let covered: BTreeSet<String> = cases.iter().map(|c| c.covers.to_owned()).collect();
    let fields = numeric_fields(&doc);
    let listed: BTreeSet<String> = fields.keys().cloned().collect();
    let missing: Vec<&String> = listed.difference(&covered).collect();
    assert!(missing.is_empty(), "numeric fields of the API with no case here: {missing:#?}");
    let stale: Vec<&String> = covered.difference(&listed).collect();
    assert!(stale.is_empty(), "cases for fields the API does not have: {stale:#?}");
    let unbounded: Vec<(&String, &Bounds)> =
        fields.iter().filter(|(_, b)| b.minimum.is_none() || b.maximum.is_none()).collect();
    assert!(unbounded.is_empty(), "numeric fields the document states no minimum or maximum for: {unbounded:#?}");

    // A conversation and a stream for the read cases, on both engines.
    for app in [&engines.memory, &engines.redis] {
        app.put("/api/v1/conversations/c1", json!({"members": ["alice", "bob"]})).await.assert_status(200);
        let entry = json!({"conversations": [{"conversation_id": "c1", "last_message_at": "2026-01-01T00:00:00Z"}]});
        app.put("/api/v1/users/alice/conversations", entry).await.assert_status(200);
    }

    let seed = std::env::var("SWITCHBOARD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x0b0b_5eed_u64);
    let mut failures = Vec::new();
    let mut sent = 0;
    let mut refused = 0;
    let mut n = 0u64;
    for case in &cases {
        let bounds = fields[case.covers];
        let (low, high) = (bounds.minimum.unwrap_or_default(), bounds.maximum.unwrap_or_default());
        let edges = [json!(low as i64), json!(high as i64), json!(low as i64 - 1), json!(high as i64 + 1)];
        for number in numbers(seed ^ n).into_iter().chain(edges) {
            n += 1;
            // Outside the documented bounds (or not an integer): refused. On an edge: accepted.
            let expect = match number.as_i64().map(|x| x as f64).or_else(|| number.as_u64().map(|x| x as f64)) {
                Some(x) if number.is_f64() || x < low || x > high => Some(false),
                Some(x) if case.edges && (x == low || x == high) => Some(true),
                Some(_) => None,
                None => Some(false),
            };
            let mut statuses = Vec::new();
            let mut request = String::new();
            for (engine, app) in [("memory", &engines.memory), ("redis", &engines.redis)] {
                let (job, lease) = prepare(app, case.needs).await;
                let tag = n.to_string();
                let vars = [("{n}", tag.as_str()), ("{job}", job.as_str()), ("{lease}", lease.as_str())];
                let mut path = case.path.replace("{n}", &tag).replace("{job}", &job);
                let mut body = case.body.clone();
                if let Some(body) = &mut body {
                    fill(body, &vars);
                }
                match case.slot {
                    Slot::Query(name) => {
                        let text = match &number {
                            Value::Number(x) => x.to_string(),
                            other => other.to_string(),
                        };
                        let sep = if path.contains('?') { '&' } else { '?' };
                        path = format!("{path}{sep}{name}={text}");
                    }
                    Slot::Body(pointer) => {
                        let (parent, field) = pointer.rsplit_once('/').expect("a pointer starts with /");
                        let parent = body.as_mut().and_then(|b| b.pointer_mut(parent)).and_then(Value::as_object_mut);
                        parent.expect("the case's pointer names an object").insert(field.to_owned(), number.clone());
                    }
                }
                request = format!("{} {path} {}", case.method, body.as_ref().map(Value::to_string).unwrap_or_default());
                let before = (engine == "redis").then(|| engines.digest());
                let (status, answer) = send(app, &case.method, &path, body.as_ref()).await;
                sent += 1;
                if status >= 500 {
                    failures.push(format!("{engine}: {request} answered {status}: {answer}"));
                }
                if let Some(before) = before
                    && status >= 400
                    && engines.digest() != before
                {
                    failures.push(format!("{engine}: {request} answered {status} but changed Redis: {answer}"));
                }
                statuses.push((status, answer));
            }
            if statuses[0].0 != statuses[1].0 {
                failures.push(format!(
                    "engines disagree on {request}: memory {} {}, redis {} {}",
                    statuses[0].0, statuses[0].1, statuses[1].0, statuses[1].1
                ));
            }
            if statuses[0].0 >= 400 {
                refused += 1;
            }
            match expect {
                Some(false) if statuses[0].0 < 400 => {
                    failures.push(format!("{request} is outside the documented {bounds:?} but was accepted"));
                }
                Some(true) if statuses[0].0 >= 300 => failures.push(format!(
                    "{request} is on an edge of the documented {bounds:?} but answered {} {}",
                    statuses[0].0, statuses[0].1
                )),
                _ => {}
            }
        }
    }
    eprintln!("numeric inputs: {sent} requests over {} cases, {refused} refused on both engines", cases.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
    // Both outcomes were exercised: the extremes are refused, the plausible values accepted.
    assert!(refused > 0 && refused < n, "{refused} of {n} refused");
}
