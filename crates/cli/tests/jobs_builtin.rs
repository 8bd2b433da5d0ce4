//! The built-in job types run by `switchboard serve`, on both engines: `webhook.deliver` signs
//! every attempt and retries on 5xx until the receiver accepts it; `notification.deliver`
//! creates reminders when due, and a reminder cancelled by its unique key never arrives.

mod common;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{Node, client, redis_env};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_conformance::{RedisServer, eventually};

/// The key the servers sign webhooks with.
const SECRET: &str = "whsec-test-0123456789abcdef";
const API_KEYS: &str = concat!("test:", "test-key-0123456789abcdef");

fn memory_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SWITCHBOARD_ENGINE", "memory"),
        ("SWITCHBOARD_API_KEYS", API_KEYS),
        ("SWITCHBOARD_TOKEN_SECRET", "test-secret-for-tokens-only"),
        ("SWITCHBOARD_WEBHOOK_SECRET", SECRET),
    ]
}

/// Runs `case` on a memory node, then on a Redis node (its own redis-server).
async fn on_memory<F, Fut>(case: F)
where
    F: FnOnce(Node) -> Fut,
    Fut: Future<Output = ()>,
{
    case(Node::start(&memory_env())).await;
}

async fn on_redis<F, Fut>(prefix: &str, case: F)
where
    F: FnOnce(Node) -> Fut,
    Fut: Future<Output = ()>,
{
    let redis = RedisServer::start();
    let url = redis.url();
    let mut env = redis_env(&url, prefix);
    env.push(("SWITCHBOARD_WEBHOOK_SECRET", SECRET));
    case(Node::start(&env)).await;
}

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Delivery {
    delivery_id: Option<String>,
    attempt: Option<String>,
    signature: Option<String>,
    extra_header: Option<String>,
    body: Vec<u8>,
    answered: u16,
}

/// A webhook receiver that answers 500 to the first `failures` requests, then 200.
#[derive(Default)]
struct Receiver {
    failures: usize,
    seen: Mutex<Vec<Delivery>>,
}

impl Receiver {
    fn deliveries(&self) -> Vec<Delivery> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

async fn receive(State(receiver): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut seen = receiver.seen.lock().unwrap_or_else(PoisonError::into_inner);
    let status = if seen.len() < receiver.failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK };
    seen.push(Delivery {
        delivery_id: header("switchboard-delivery"),
        attempt: header("switchboard-attempt"),
        signature: header("switchboard-signature"),
        extra_header: header("x-shop"),
        body: body.to_vec(),
        answered: status.as_u16(),
    });
    status
}

/// Serves `receiver` on a free loopback port; its URL.
async fn start_receiver(receiver: Arc<Receiver>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
    let addr = listener.local_addr().expect("receiver address");
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(receiver);
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/hook")
}

/// What a receiver does with `Switchboard-Signature: t=<unix>,v1=<hex>`: recomputes
/// HMAC-SHA256(secret, "<t>.<raw body>") itself and compares (and checks the time is recent).
fn signature_valid(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock after 1970").as_secs();
    if now.abs_diff(t) > 300 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    expected == v1
}

async fn get_json(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn webhook_is_signed_and_retried_until_accepted(node: Node) {
    let receiver = Arc::new(Receiver { failures: 2, ..Receiver::default() });
    let url = start_receiver(receiver.clone()).await;
    let http = client();
    let body = json!({"event": "order.paid", "order": {"id": "o-17", "total": 12.5}, "note": "grüße"});

    let r = http
        .post(node.api("/queues/webhooks/jobs"))
        .json(&json!({
            "type": "webhook.deliver",
            "payload": {"url": url, "body": body, "headers": {"x-shop": "s-1"}},
            "max_attempts": 5,
            "backoff": {"kind": "fixed", "delay_ms": 200},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let enqueued: Value = r.json().await.unwrap();
    let id = enqueued["id"].as_str().expect("job id").to_owned();

    let job_url = node.api(&format!("/jobs/{id}"));
    eventually(Duration::from_secs(20), "the webhook job completes", || async {
        get_json(&http, job_url.clone()).await.1["state"] == "completed"
    })
    .await;
    // Give a (wrong) extra delivery time to show up: several backoffs and poll intervals.
    tokio::time::sleep(Duration::from_millis(800)).await;

    let (status, job) = get_json(&http, job_url.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(job["attempts"], 3, "{job}");
    let errors = job["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 2, "one error per refused attempt: {job}");
    assert!(errors.iter().all(|e| e["message"].as_str().unwrap_or("").contains("500")), "{job}");
    assert_eq!(job["result"]["status"], 200, "{job}");

    let deliveries = receiver.deliveries();
    assert_eq!(deliveries.len(), 3, "exactly three requests: {deliveries:?}");
    assert_eq!(deliveries.iter().map(|d| d.answered).collect::<Vec<_>>(), [500, 500, 200]);
    assert_eq!(deliveries.iter().filter(|d| d.answered == 200).count(), 1, "delivered successfully once");
    for (n, d) in deliveries.iter().enumerate() {
        assert_eq!(d.delivery_id.as_deref(), Some(id.as_str()), "the same delivery id on every attempt");
        assert_eq!(d.attempt.as_deref(), Some((n + 1).to_string().as_str()), "attempt header");
        assert_eq!(d.extra_header.as_deref(), Some("s-1"), "the job's extra header");
        let sent: Value = serde_json::from_slice(&d.body).expect("a JSON body");
        assert_eq!(sent, body, "the body is the payload's body");
        let signature = d.signature.as_deref().expect("a Switchboard-Signature header");
        assert!(signature_valid(SECRET, signature, &d.body), "attempt {} is signed with the secret", n + 1);
        // The check does catch a wrong key or a changed body.
        assert!(!signature_valid("not-the-secret", signature, &d.body), "a wrong secret must not verify");
        let mut tampered = d.body.clone();
        tampered.extend_from_slice(b" ");
        assert!(!signature_valid(SECRET, signature, &tampered), "a changed body must not verify");
    }
}

#[tokio::test]
async fn webhook_is_signed_and_retried_until_accepted_memory() {
    on_memory(webhook_is_signed_and_retried_until_accepted).await;
}

#[tokio::test]
async fn webhook_is_signed_and_retried_until_accepted_redis() {
    on_redis("sbjbw:", webhook_is_signed_and_retried_until_accepted).await;
}

async fn notification_ids(http: &reqwest::Client, node: &Node, user: &str) -> Vec<String> {
    let (status, list) = get_json(http, node.api(&format!("/users/{user}/notifications"))).await;
    assert_eq!(status, 200, "{list}");
    list["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter_map(|n| n["id"].as_str().map(str::to_owned))
        .collect()
}

async fn cancelled_reminder_never_arrives(node: Node) {
    const DELAY_MS: u64 = 1500;
    let http = client();
    let user = "carol";
    let reminder = |suffix: &str| {
        json!({
            "type": "notification.deliver",
            "payload": {
                "user_id": user,
                "notification": {"id": format!("remind-r1-{suffix}"), "title": "Vendor has not answered", "body": "r1"},
            },
            "delay_ms": DELAY_MS,
            "unique_key": format!("reminder:r1:{suffix}"),
        })
    };
    let enqueued_at = Instant::now();
    let mut ids = Vec::new();
    for suffix in ["a", "b"] {
        let r = http.post(node.api("/queues/notifications/jobs")).json(&reminder(suffix)).send().await.unwrap();
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["state"], "delayed", "{body}");
        ids.push(body["id"].as_str().expect("job id").to_owned());
    }
    let (job_a, job_b) = (ids[0].clone(), ids[1].clone());

    let r = http
        .post(node.api("/queues/notifications/cancel"))
        .json(&json!({"unique_keys": ["reminder:r1:b"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cancelled: Value = r.json().await.unwrap();
    assert_eq!(cancelled["cancelled"], json!([job_b]), "only the b reminder is cancelled");
    assert_eq!(get_json(&http, node.api(&format!("/jobs/{job_b}"))).await.0, 404, "the cancelled job is gone");
    if enqueued_at.elapsed() < Duration::from_millis(DELAY_MS / 2) {
        // Still well before the due time: nothing delivered early.
        assert!(notification_ids(&http, &node, user).await.is_empty(), "no reminder before its delay");
    }

    eventually(Duration::from_secs(15), "reminder a becomes a notification", || async {
        notification_ids(&http, &node, user).await.contains(&"remind-r1-a".to_owned())
    })
    .await;
    // The worker records completions after the handler's effect, in batches: the notification
    // can be visible a moment before the job reads as completed.
    eventually(Duration::from_secs(15), "reminder a is recorded as completed", || async {
        get_json(&http, node.api(&format!("/jobs/{job_a}"))).await.1["state"] == "completed"
    })
    .await;
    let (_, job) = get_json(&http, node.api(&format!("/jobs/{job_a}"))).await;
    assert_eq!(job["result"]["notification_id"], "remind-r1-a", "{job}");

    // Well past b's due time plus several poll intervals and a worker round.
    let quiet_until = enqueued_at + Duration::from_millis(DELAY_MS + 2000);
    tokio::time::sleep_until(quiet_until.into()).await;
    let delivered = notification_ids(&http, &node, user).await;
    assert_eq!(delivered, ["remind-r1-a"], "the cancelled reminder never arrives");
    let (_, stats) = get_json(&http, node.api("/queues/notifications")).await;
    let stats = &stats["stats"];
    assert_eq!((&stats["waiting"], &stats["delayed"], &stats["active"]), (&json!(0), &json!(0), &json!(0)), "{stats}");
    assert_eq!(stats["processed"], 1, "one reminder ran: {stats}");
    // The key is free again once its holder is gone: a new b reminder can be scheduled.
    let r = http.post(node.api("/queues/notifications/jobs")).json(&reminder("b")).send().await.unwrap();
    assert_eq!(r.status(), 201, "a cancelled job no longer holds its unique key");
}

#[tokio::test]
async fn cancelled_reminder_never_arrives_memory() {
    on_memory(cancelled_reminder_never_arrives).await;
}

#[tokio::test]
async fn cancelled_reminder_never_arrives_redis() {
    on_redis("sbjbr:", cancelled_reminder_never_arrives).await;
}
