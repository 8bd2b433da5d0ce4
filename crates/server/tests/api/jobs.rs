//! Jobs over HTTP: enqueue (idempotent id, unique keys), fetch with a long-poll, the lease
//! calls, records, dead jobs and retry, queue stats and listings, pause/resume, cancel by
//! unique key, schedules, and bad input.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestApp;

async fn fetch(app: &TestApp, queues: &[&str], max: usize) -> Vec<Value> {
    let r = app.post("/api/v1/queues/fetch", json!({"queues": queues, "max_jobs": max, "wait_ms": 0})).await;
    r.assert_status(200)["jobs"].as_array().unwrap().clone()
}

#[tokio::test]
async fn enqueue_is_idempotent_by_id_and_deduplicated_by_unique_key() {
    let app = TestApp::new();
    let r = app
        .post("/api/v1/queues/emails/jobs", json!({"type": "email.send", "payload": {"to": "a"}, "job_id": "e1"}))
        .await;
    assert_eq!(r.assert_status(201), &json!({"id": "e1", "outcome": "created", "state": "waiting"}));
    let r = app
        .post("/api/v1/queues/emails/jobs", json!({"type": "email.send", "payload": {"to": "b"}, "job_id": "e1"}))
        .await;
    assert_eq!(r.assert_status(200)["outcome"], "existing_id");
    let job = app.get("/api/v1/jobs/e1").await;
    assert_eq!(job.assert_status(200)["payload"], json!({"to": "a"}), "the first payload stays");

    let first = app.post("/api/v1/queues/emails/jobs", json!({"type": "t", "unique_key": "welcome:alice"})).await;
    let first_id = first.assert_status(201)["id"].clone();
    let again = app.post("/api/v1/queues/emails/jobs", json!({"type": "t", "unique_key": "welcome:alice"})).await;
    let again = again.assert_status(200);
    assert_eq!((again["id"].clone(), again["outcome"].clone()), (first_id, json!("duplicate_unique_key")));

    let r = app
        .post("/api/v1/queues/emails/jobs/bulk", json!({"jobs": [{"type": "t", "job_id": "b1"}, {"type": "t", "job_id": "b2"}, {"type": "t", "job_id": "b1"}]}))
        .await;
    let outcomes: Vec<&str> =
        r.assert_status(200)["jobs"].as_array().unwrap().iter().map(|j| j["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["created", "created", "existing_id"]);
    let stats = app.get("/api/v1/queues/emails").await;
    assert_eq!(stats.assert_status(200)["stats"]["waiting"], 4);
}

#[tokio::test]
async fn a_leased_job_reports_progress_heartbeats_and_completes_once() {
    let app = TestApp::new();
    app.post("/api/v1/queues/q/jobs", json!({"type": "t", "job_id": "j1", "payload": [1, 2]})).await.assert_status(201);
    let jobs = fetch(&app, &["q"], 10).await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(
        (job["id"].clone(), job["state"].clone(), job["attempts"].clone()),
        (json!("j1"), json!("active"), json!(1))
    );
    assert_eq!(job["payload"], json!([1, 2]));
    let token = job["lease_token"].as_str().unwrap().to_owned();
    assert!(fetch(&app, &["q"], 10).await.is_empty(), "a leased job is not handed out twice");

    let p = app.post("/api/v1/jobs/j1/progress", json!({"lease_token": token, "progress": {"pct": 50}})).await;
    p.assert_status(204);
    let before = job["lease_expires_at"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let hb = app.post("/api/v1/jobs/j1/heartbeat", json!({"lease_token": token, "lease_ms": 60_000})).await;
    assert!(hb.assert_status(200)["lease_expires_at"].as_str().unwrap() > before.as_str());

    let wrong = app.post("/api/v1/jobs/j1/complete", json!({"lease_token": "AAAAAAAAAAAAAAAAAAAAAA"})).await;
    wrong.assert_error(409, "conflict");
    let done = app.post("/api/v1/jobs/j1/complete", json!({"lease_token": token, "result": {"sent": true}})).await;
    done.assert_status(204);
    let again = app.post("/api/v1/jobs/j1/complete", json!({"lease_token": token})).await;
    again.assert_error(409, "conflict");
    let record = app.get("/api/v1/jobs/j1").await;
    let record = record.assert_status(200);
    assert_eq!(record["state"], "completed");
    assert_eq!(record["result"], json!({"sent": true}));
    assert_eq!(record["progress"], json!({"pct": 50}));
    assert!(record["finished_at"].is_string());
    app.post("/api/v1/jobs/nope/complete", json!({"lease_token": token})).await.assert_error(404, "not_found");
    let stats = app.get("/api/v1/queues/q").await;
    let stats = &stats.assert_status(200)["stats"];
    assert_eq!(
        (stats["completed"].clone(), stats["processed"].clone(), stats["active"].clone()),
        (json!(1), json!(1), json!(0))
    );
}

#[tokio::test]
async fn a_batch_completion_answers_each_job() {
    let app = TestApp::new();
    for id in ["m1", "m2"] {
        app.post("/api/v1/queues/q/jobs", json!({"type": "t", "job_id": id})).await.assert_status(201);
    }
    let jobs = fetch(&app, &["q"], 2).await;
    let body = json!({"jobs": [
        {"job_id": "m1", "lease_token": jobs[0]["lease_token"], "result": 1},
        {"job_id": "m2", "lease_token": jobs[0]["lease_token"]},
        {"job_id": "zz", "lease_token": jobs[1]["lease_token"]},
    ]});
    let r = app.post("/api/v1/jobs/complete", body).await;
    let statuses: Vec<&str> =
        r.assert_status(200)["jobs"].as_array().unwrap().iter().map(|j| j["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["completed", "conflict", "not_found"]);
    assert_eq!(app.get("/api/v1/jobs/m1").await.assert_status(200)["result"], 1);
    assert_eq!(app.get("/api/v1/jobs/m2").await.assert_status(200)["state"], "active");
    app.post("/api/v1/jobs/complete", json!({"jobs": []})).await.assert_error(400, "invalid_argument");
}

#[tokio::test]
async fn failures_retry_then_die_and_dead_jobs_can_be_retried_or_deleted() {
    let app = TestApp::new();
    let body = json!({"type": "t", "job_id": "f1", "max_attempts": 2, "backoff": {"kind": "fixed", "delay_ms": 100}});
    app.post("/api/v1/queues/q/jobs", body).await.assert_status(201);
    let token = fetch(&app, &["q"], 1).await[0]["lease_token"].clone();
    let r = app.post("/api/v1/jobs/f1/fail", json!({"lease_token": token, "error": "smtp down"})).await;
    assert_eq!(r.assert_status(200)["state"], "delayed");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let jobs = fetch(&app, &["q"], 1).await;
    assert_eq!(jobs[0]["attempts"], 2);
    let r =
        app.post("/api/v1/jobs/f1/fail", json!({"lease_token": jobs[0]["lease_token"], "error": "still down"})).await;
    assert_eq!(r.assert_status(200)["state"], "dead");
    let record = app.get("/api/v1/jobs/f1").await;
    let errors: Vec<&str> = record.assert_status(200)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(errors, ["smtp down", "still down"]);
    let dead = app.get("/api/v1/queues/q?state=dead").await;
    assert_eq!(dead.assert_status(200)["jobs"][0]["id"], "f1");

    app.post("/api/v1/jobs/f1/retry", json!({})).await.assert_status(204);
    assert_eq!(app.get("/api/v1/jobs/f1").await.assert_status(200)["state"], "waiting");
    app.post("/api/v1/jobs/f1/retry", json!({})).await.assert_error(409, "conflict");
    let removed = app.delete("/api/v1/jobs/f1").await;
    assert_eq!(removed.assert_status(200)["state"], "waiting");
    app.get("/api/v1/jobs/f1").await.assert_error(404, "not_found");

    // retry: false kills at once.
    app.post("/api/v1/queues/q/jobs", json!({"type": "t", "job_id": "f2"})).await.assert_status(201);
    let token = fetch(&app, &["q"], 1).await[0]["lease_token"].clone();
    let r = app.post("/api/v1/jobs/f2/fail", json!({"lease_token": token, "error": "bad input", "retry": false})).await;
    assert_eq!(r.assert_status(200)["state"], "dead");
}

#[tokio::test]
async fn fetch_follows_priority_and_queue_order_and_pause() {
    let app = TestApp::new();
    for (id, priority) in [("low", -5), ("mid1", 0), ("high", 10), ("mid2", 0)] {
        app.post("/api/v1/queues/a/jobs", json!({"type": "t", "job_id": id, "priority": priority}))
            .await
            .assert_status(201);
    }
    app.post("/api/v1/queues/b/jobs", json!({"type": "t", "job_id": "other", "priority": 1000}))
        .await
        .assert_status(201);
    let ids: Vec<Value> = fetch(&app, &["a", "b"], 10).await.iter().map(|j| j["id"].clone()).collect();
    assert_eq!(ids, [json!("high"), json!("mid1"), json!("mid2"), json!("low"), json!("other")]);

    app.post("/api/v1/queues/c/jobs", json!({"type": "t", "job_id": "c1"})).await.assert_status(201);
    app.post("/api/v1/queues/c/pause", json!({})).await.assert_status(204);
    assert!(fetch(&app, &["c"], 1).await.is_empty());
    assert_eq!(app.get("/api/v1/queues/c").await.assert_status(200)["stats"]["paused"], true);
    app.post("/api/v1/queues/c/resume", json!({})).await.assert_status(204);
    assert_eq!(fetch(&app, &["c"], 1).await[0]["id"], "c1");
    let all = app.get("/api/v1/queues").await;
    let names: Vec<&str> =
        all.assert_status(200)["queues"].as_array().unwrap().iter().map(|q| q["queue"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[tokio::test]
async fn a_long_poll_returns_as_soon_as_a_job_is_enqueued() {
    let app = TestApp::new();
    let started = Instant::now();
    let poll = app.post("/api/v1/queues/fetch", json!({"queues": ["lp"], "wait_ms": 10_000}));
    let enqueue = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        app.post("/api/v1/queues/lp/jobs", json!({"type": "t", "job_id": "late"})).await.assert_status(201);
    };
    let (r, ()) = tokio::join!(poll, enqueue);
    assert_eq!(r.assert_status(200)["jobs"][0]["id"], "late");
    // Returned because the job came, not because the wait ran out.
    assert!(started.elapsed() < Duration::from_secs(9), "{:?}", started.elapsed());
    let empty = app.post("/api/v1/queues/fetch", json!({"queues": ["lp"], "wait_ms": 300})).await;
    assert_eq!(empty.assert_status(200)["jobs"], json!([]));
}

#[tokio::test]
async fn delayed_jobs_wait_and_unique_keys_cancel_pending_reminders() {
    let app = TestApp::new();
    for (key, delay) in [("reminder:r1:8h", 60_000), ("reminder:r1:24h", 120_000)] {
        let body = json!({"type": "notification.deliver", "unique_key": key, "delay_ms": delay});
        app.post("/api/v1/queues/reminders/jobs", body).await.assert_status(201);
    }
    let stats = app.get("/api/v1/queues/reminders").await;
    assert_eq!(stats.assert_status(200)["stats"]["delayed"], 2);
    assert!(fetch(&app, &["reminders"], 10).await.is_empty(), "not due yet");
    let r = app
        .post("/api/v1/queues/reminders/cancel", json!({"unique_keys": ["reminder:r1:8h", "reminder:r1:24h", "other"]}))
        .await;
    assert_eq!(r.assert_status(200)["cancelled"].as_array().unwrap().len(), 2);
    let stats = app.get("/api/v1/queues/reminders").await;
    assert_eq!(stats.assert_status(200)["stats"]["delayed"], 0);

    // All reminders of one conversation at once, by prefix.
    for key in ["reminder:r2:8h", "reminder:r2:24h", "reminder:r3:8h"] {
        let body = json!({"type": "notification.deliver", "unique_key": key, "delay_ms": 60_000});
        app.post("/api/v1/queues/reminders/jobs", body).await.assert_status(201);
    }
    let r = app.post("/api/v1/queues/reminders/cancel", json!({"unique_key_prefix": "reminder:r2:"})).await;
    assert_eq!(r.assert_status(200)["cancelled"].as_array().unwrap().len(), 2);
    let stats = app.get("/api/v1/queues/reminders").await;
    assert_eq!(stats.assert_status(200)["stats"]["delayed"], 1);
    let both = json!({"unique_keys": ["a"], "unique_key_prefix": "b"});
    app.post("/api/v1/queues/reminders/cancel", both).await.assert_error(400, "invalid_argument");
    app.post("/api/v1/queues/reminders/cancel", json!({})).await.assert_error(400, "invalid_argument");
}

#[tokio::test]
async fn schedules_are_upserted_by_name_and_fire_their_ticks() {
    let app = TestApp::new();
    let body =
        json!({"every_ms": 1000, "queue": "maint", "type": "maintenance.cleanup", "payload": {"older_than_days": 30}});
    let created = app.put("/api/v1/schedules/cleanup", body.clone()).await;
    let created = created.assert_status(201).clone();
    assert_eq!(created["every_ms"], 1000);
    let next = created["next_fire_at"].clone();
    assert!(next.is_string());
    let same = app.put("/api/v1/schedules/cleanup", body).await;
    assert_eq!(same.assert_status(200)["next_fire_at"], next, "unchanged timing keeps its tick");
    let cron = app.put("/api/v1/schedules/nightly", json!({"cron": "0 3 * * *", "queue": "maint", "type": "t"})).await;
    assert!(cron.assert_status(201)["next_fire_at"].as_str().unwrap().ends_with("T03:00:00.000Z"));
    let list = app.get("/api/v1/schedules").await;
    let names: Vec<&str> =
        list.assert_status(200)["schedules"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["cleanup", "nightly"]);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.sb.jobs().fire_due_schedules().await.unwrap(), 1);
    assert_eq!(app.sb.jobs().fire_due_schedules().await.unwrap(), 0, "a tick fires once");
    let jobs = fetch(&app, &["maint"], 10).await;
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0]["id"].as_str().unwrap().starts_with("cleanup@"));
    assert_eq!(jobs[0]["payload"], json!({"older_than_days": 30}));
    let fired = app.get("/api/v1/schedules/cleanup").await;
    assert!(fired.assert_status(200)["last_fired_at"].is_string());

    app.delete("/api/v1/schedules/cleanup").await.assert_status(204);
    app.get("/api/v1/schedules/cleanup").await.assert_error(404, "not_found");
    app.delete("/api/v1/schedules/cleanup").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn bad_job_input_is_refused_with_a_clear_4xx() {
    let app = TestApp::new();
    let cases = [
        ("/api/v1/queues/q/jobs", json!({"type": "t", "priority": 5000}), "priority"),
        ("/api/v1/queues/q/jobs", json!({"type": "t", "delay_ms": 10, "run_at": "2030-01-01T00:00:00Z"}), "delay_ms"),
        ("/api/v1/queues/q/jobs", json!({"type": "bad type"}), "type"),
        ("/api/v1/queues/q/jobs", json!({"type": "t", "max_attempts": 0}), "max_attempts"),
        ("/api/v1/queues/q/jobs", json!({"type": "t", "lease_ms": 5}), "lease_ms"),
        (
            "/api/v1/queues/q/jobs",
            json!({"type": "t", "backoff": {"kind": "polynomial", "base_ms": 1, "exponent": 20, "max_ms": 9}}),
            "exponent",
        ),
        ("/api/v1/queues/q/jobs", json!({"type": "t", "unique_key": "has space"}), "unique_key"),
        ("/api/v1/queues/q/jobs", json!({"type": "t", "surprise": 1}), "surprise"),
        ("/api/v1/queues/bad%20queue/jobs", json!({"type": "t"}), "queue"),
        ("/api/v1/queues/q/jobs/bulk", json!({"jobs": []}), "jobs"),
        ("/api/v1/queues/fetch", json!({"queues": []}), "queues"),
        ("/api/v1/queues/fetch", json!({"queues": ["q"], "wait_ms": 600_000}), "wait_ms"),
        ("/api/v1/queues/fetch", json!({"queues": ["q"], "max_jobs": 0}), "max_jobs"),
        ("/api/v1/queues/fetch", json!({"queues": ["q"], "types": ["bad type"]}), "types"),
        (
            "/api/v1/queues/fetch",
            json!({"queues": ["q"], "types": (0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "types",
        ),
        ("/api/v1/jobs/j/complete", json!({"lease_token": "short"}), "lease_token"),
        (
            "/api/v1/jobs/j/fail",
            json!({"lease_token": "AAAAAAAAAAAAAAAAAAAAAA", "error": "x", "retry": false, "retry_in_ms": 5}),
            "retry_in_ms",
        ),
        ("/api/v1/queues/q/cancel", json!({"unique_keys": []}), "unique_keys"),
    ];
    for (path, body, field) in cases {
        let message = app.post(path, body.clone()).await.assert_error(400, "invalid_argument");
        assert!(message.contains(field), "{path} {body}: {message}");
    }
    let big = json!({"type": "t", "payload": "x".repeat(600 * 1024)});
    app.post("/api/v1/queues/q/jobs", big).await.assert_error(413, "payload_too_large");
    let many: Vec<Value> = (0..1001).map(|_| json!({"type": "t"})).collect();
    app.post("/api/v1/queues/q/jobs/bulk", json!({"jobs": many})).await.assert_error(400, "invalid_argument");
    app.get("/api/v1/queues/q?state=finished").await.assert_error(400, "invalid_argument");
    app.get("/api/v1/jobs/bad%20id").await.assert_error(400, "invalid_argument");
    for body in [
        json!({"cron": "* * *", "queue": "q", "type": "t"}),
        json!({"cron": "* * * * *", "every_ms": 5000, "queue": "q", "type": "t"}),
        json!({"every_ms": 10, "queue": "q", "type": "t"}),
    ] {
        app.put("/api/v1/schedules/s", body).await.assert_error(400, "invalid_argument");
    }
}
