//! The built-in job types (docs/API.md, "Built-in job types"), run by a library worker inside
//! the server:
//! - `webhook.deliver` (queue `webhooks`): POSTs `body` to `url` with an HMAC-SHA256 signature
//!   header; retried on 5xx, 408, 429 (after its `Retry-After`), timeouts and connection
//!   errors; other 4xx and 3xx answers (redirects are not followed) fail it for good.
//! - `notification.deliver` (queue `notifications`): creates a notification at run time, e.g.
//!   reminders enqueued with a delay and cancelled by their `unique_key`.
//! - `push.send` (queue `push`): enqueued by the notifications service when a notification's
//!   user has no device online; POSTed (signed the same way) to the configured push webhook.
//!
//! Signature: `Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
//! "<t>.<body>")>`, with `Switchboard-Delivery: <job id>` (the same on every attempt, for the
//! receiver's dedup) and `Switchboard-Attempt: <n>`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;
use switchboard_core::{
    EnqueueJob, JobContext, JobFailure, JobId, JobOutcome, JobType, Jobs, NewNotification, Notification, Priority,
    PushHook, QueueName, Switchboard, UserId, WorkerHandle, WorkerOptions,
};

/// Queue of `webhook.deliver` jobs.
pub const WEBHOOK_QUEUE: &str = "webhooks";
/// Queue of `notification.deliver` jobs.
pub const NOTIFICATION_QUEUE: &str = "notifications";
/// Queue of `push.send` jobs.
pub const PUSH_QUEUE: &str = "push";
/// The signature header.
pub const SIGNATURE_HEADER: &str = "Switchboard-Signature";
/// Longest webhook URL.
const MAX_URL_BYTES: usize = 2048;
/// Most extra headers on a webhook.
const MAX_HEADERS: usize = 20;

/// Settings of the built-in job types.
#[derive(Clone, PartialEq, Eq)]
pub struct BuiltinJobsConfig {
    /// Whether this node runs the built-in worker (default true).
    pub enabled: bool,
    /// Jobs run at once (default 16).
    pub concurrency: usize,
    /// The HMAC-SHA256 key of webhook and push signatures. Without one, webhook jobs fail
    /// (they are never sent unsigned).
    pub webhook_secret: Option<String>,
    /// Where `push.send` jobs are POSTed; without one no push jobs are enqueued.
    pub push_webhook_url: Option<String>,
    /// Timeout of one delivery (default 10 s).
    pub request_timeout: Duration,
}

impl Default for BuiltinJobsConfig {
    fn default() -> Self {
        BuiltinJobsConfig {
            enabled: true,
            concurrency: 16,
            webhook_secret: None,
            push_webhook_url: None,
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for BuiltinJobsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuiltinJobsConfig")
            .field("enabled", &self.enabled)
            .field("concurrency", &self.concurrency)
            .field("webhook_secret", &self.webhook_secret.as_ref().map(|_| "<redacted>"))
            .field("push_webhook_url", &self.push_webhook_url)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// The payload of `webhook.deliver`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookPayload {
    /// `http://` or `https://` URL.
    pub url: String,
    /// The JSON body POSTed.
    #[serde(default)]
    pub body: Value,
    /// Extra headers (at most 20).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

/// The payload of `notification.deliver`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationPayload {
    /// Whom it is for.
    pub user_id: UserId,
    /// The notification (its id makes the delivery idempotent).
    pub notification: NewNotification,
}

/// `HMAC-SHA256(secret, "<t>.<body>")` as the signature header's value.
pub fn signature(secret: &str, unix_seconds: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_seconds},v1={hex}")
}

/// The push hook that queues a `push.send` job per notification whose user has no device
/// online; give it at construction when a push webhook is configured:
/// `Switchboard::builder(engine, config).push_hook_with(builtin_jobs::queue_pushes)`.
pub fn queue_pushes(jobs: &Jobs) -> Arc<dyn PushHook> {
    Arc::new(QueuePushes { jobs: jobs.clone() })
}

/// Starts the built-in worker on `sb`; `None` when disabled. Pushes are queued only by a facade
/// built with [`queue_pushes`].
pub fn start(sb: &Switchboard, config: &BuiltinJobsConfig) -> switchboard_core::Result<Option<WorkerHandle>> {
    if !config.enabled {
        return Ok(None);
    }
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| switchboard_core::Error::Internal(format!("webhook client: {e}")))?;
    let deliver = Arc::new(Deliverer { client, secret: config.webhook_secret.clone() });
    let queues =
        [WEBHOOK_QUEUE, NOTIFICATION_QUEUE, PUSH_QUEUE].map(QueueName::new).into_iter().collect::<Result<_, _>>()?;
    let mut options = WorkerOptions::new(queues);
    options.concurrency = config.concurrency;
    let webhook = deliver.clone();
    let push = deliver;
    let push_url = config.push_webhook_url.clone();
    let notifications = sb.clone();
    let worker = sb
        .jobs()
        .worker(options)
        .handle("webhook.deliver", move |job| {
            let deliver = webhook.clone();
            async move {
                let payload: WebhookPayload = job.payload()?;
                deliver.post(&job, &payload.url, &payload.body, &payload.headers).await
            }
        })?
        .handle("notification.deliver", move |job| {
            let sb = notifications.clone();
            async move {
                let payload: NotificationPayload = job.payload()?;
                let created =
                    sb.notifications().create(&payload.user_id, payload.notification).await.map_err(|e| match e {
                        switchboard_core::Error::InvalidArgument(_) | switchboard_core::Error::PayloadTooLarge(_) => {
                            JobFailure::permanent(e)
                        }
                        other => JobFailure::retry(other),
                    })?;
                Ok(Some(json!({ "notification_id": created.notification.id, "created": created.created })))
            }
        })?
        .handle("push.send", move |job| {
            let deliver = push.clone();
            let url = push_url.clone();
            async move {
                let Some(url) = url else {
                    return Err(JobFailure::permanent("no push webhook configured"));
                };
                let body: Value = job.payload()?;
                deliver.post(&job, &url, &body, &Default::default()).await
            }
        })?
        .start()?;
    Ok(Some(worker))
}

/// Signs and POSTs deliveries.
struct Deliverer {
    client: reqwest::Client,
    secret: Option<String>,
}

impl Deliverer {
    async fn post(
        &self,
        job: &JobContext,
        url: &str,
        body: &Value,
        headers: &std::collections::BTreeMap<String, String>,
    ) -> JobOutcome {
        let Some(secret) = &self.secret else {
            return Err(JobFailure::permanent("no webhook secret configured: deliveries are never sent unsigned"));
        };
        if url.len() > MAX_URL_BYTES || !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(JobFailure::permanent("url: must be an http(s) URL of at most 2048 bytes"));
        }
        if headers.len() > MAX_HEADERS {
            return Err(JobFailure::permanent("headers: at most 20"));
        }
        // The signature and delivery headers are ours alone: a payload may not add a second one.
        if let Some(name) = headers.keys().find(|name| {
            let name = name.to_ascii_lowercase();
            name.starts_with("switchboard-") || matches!(name.as_str(), "content-type" | "content-length" | "host")
        }) {
            return Err(JobFailure::permanent(format!("headers: {name} is set by Switchboard")));
        }
        let bytes = serde_json::to_vec(body).map_err(JobFailure::permanent)?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, signature(secret, now, &bytes))
            .header("Switchboard-Delivery", job.job().id.as_str())
            .header("Switchboard-Attempt", job.job().attempts.to_string());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = match request.body(bytes).send().await {
            Ok(response) => response,
            Err(e) if e.is_builder() => return Err(JobFailure::permanent(format!("bad request: {e}"))),
            Err(e) => return Err(JobFailure::retry(format!("delivery failed: {e}"))),
        };
        let status = response.status();
        if status.is_success() {
            return Ok(Some(json!({ "status": status.as_u16() })));
        }
        let message = format!("receiver answered {status}");
        if status.as_u16() == 429 {
            let after =
                response.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
            return Err(match after {
                Some(secs) => JobFailure::retry_in(message, Duration::from_secs(secs.min(3600))),
                None => JobFailure::retry(message),
            });
        }
        if status.is_server_error() || status.as_u16() == 408 {
            return Err(JobFailure::retry(message));
        }
        Err(JobFailure::permanent(message))
    }
}

/// Job priority of the push of a `priority: "high"` notification (others run at 0).
const HIGH_PUSH_PRIORITY: i32 = 100;

/// The push hook: a `push.send` job per notification whose user has no device online. It holds
/// the jobs service, not the facade, so the facade holding the hook is no reference cycle.
struct QueuePushes {
    jobs: Jobs,
}

#[async_trait]
impl PushHook for QueuePushes {
    async fn no_device_online(&self, user: &UserId, notification: &Notification) {
        let enqueue = || -> switchboard_core::Result<EnqueueJob> {
            let mut job = EnqueueJob::new(
                QueueName::new(PUSH_QUEUE)?,
                JobType::new("push.send")?,
                json!({ "user_id": user, "notification": notification }),
            );
            // One push per notification, however often the hook fires for it; the user id's
            // length keeps `push:<user>:<id>` unambiguous (ids may contain `:`). Ids too long for
            // that get a fresh id (no dedup).
            let user = user.as_str();
            let id = format!("push:{}:{user}:{}", user.len(), notification.id);
            job.job_id = Some(JobId::new(id).or_else(|_| JobId::generate())?);
            // High-priority notifications jump the push queue.
            job.priority = match notification.priority {
                Priority::High => HIGH_PUSH_PRIORITY,
                _ => 0,
            };
            Ok(job)
        };
        let result = match enqueue() {
            Ok(job) => self.jobs.enqueue(job).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(user.id = %user, error = %e, "could not enqueue a push");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A high-priority notification's push runs before the normal ones queued earlier.
    #[tokio::test]
    async fn high_priority_notifications_are_pushed_first() {
        let engine = switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid config");
        let config = switchboard_core::SwitchboardConfig::default();
        let sb = Switchboard::builder(engine, config).push_hook_with(queue_pushes).build().unwrap();
        let user = UserId::new("offline").unwrap();
        let note = |id: &str, priority| NewNotification {
            priority,
            ..serde_json::from_value(json!({"id": id, "title": "t"})).expect("a notification")
        };
        sb.notifications().create(&user, note("normal", Priority::Normal)).await.unwrap();
        sb.notifications().create(&user, note("urgent", Priority::High)).await.unwrap();
        let queue = QueueName::new(PUSH_QUEUE).unwrap();
        let fetched = sb.jobs().fetch(std::slice::from_ref(&queue), 2, Duration::ZERO, None).await.unwrap();
        let order: Vec<&str> = fetched.iter().map(|j| j.job.id.as_str()).collect();
        assert_eq!(order, ["push:7:offline:urgent", "push:7:offline:normal"]);
    }

    /// The facade holds the hook; the hook must not hold the facade, or neither is ever dropped.
    #[tokio::test]
    async fn a_facade_with_the_push_hook_is_dropped_with_its_engine() {
        let engine =
            switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid memory config");
        let store = Arc::downgrade(&engine.notifications);
        let config = switchboard_core::SwitchboardConfig::default();
        let sb = Switchboard::builder(engine, config).push_hook_with(queue_pushes).build().unwrap();
        assert!(store.upgrade().is_some());
        drop(sb);
        assert!(store.upgrade().is_none(), "something still holds the engine after the facade is gone");
    }

    #[test]
    fn signature_is_hmac_sha256_of_time_dot_body() {
        let sig = signature("secret", 1_700_000_000, br#"{"a":1}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(br#"1700000000.{"a":1}"#);
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, format!("t=1700000000,v1={hex}"));
        assert_ne!(signature("other", 1_700_000_000, br#"{"a":1}"#), sig);
    }
}
