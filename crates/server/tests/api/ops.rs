//! Health, info, stats, metrics, the OpenAPI document, Swagger UI, and `serve`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::common::{KEY, TestApp};

#[tokio::test]
async fn health_endpoints() {
    let app = TestApp::new();
    let r = app.public_get("/health").await;
    let body = r.assert_status(200);
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["components"]["engine"]["status"], "healthy");
    assert!(body["components"]["engine"]["latency_ms"].is_number());
    assert_eq!(body["components"]["jobs"]["status"], "healthy");
    assert_eq!(body["components"]["pubsub"]["status"], "healthy");
    for capability in ["cache", "sessions", "rate_limits"] {
        assert_eq!(body["components"][capability]["status"], "healthy", "{capability}");
        assert!(body["components"][capability]["latency_ms"].is_number(), "{capability}: a real query");
    }
    assert_eq!(body["components"]["gateway"], json!({"status": "healthy", "counts": {"connections": 0}}));

    // The sessions component reads the live counts on the way.
    app.post("/api/v1/sessions", json!({"user_id": "hal"})).await.assert_status(201);
    app.post("/api/v1/users/hal/devices/phone/heartbeat", json!({})).await.assert_status(200);
    let body = app.public_get("/health").await;
    let counts = &body.assert_status(200)["components"]["sessions"]["counts"];
    assert_eq!(counts, &json!({"sessions_active": 1, "online_users": 1}));

    assert_eq!(app.public_get("/health/live").await.assert_status(200), &json!({"status": "alive"}));
    assert_eq!(app.public_get("/health/ready").await.assert_status(200), &json!({"status": "ready"}));
    assert_eq!(app.public_get("/health/engine").await.assert_status(200)["status"], "healthy");
    assert_eq!(app.public_get("/health/sessions").await.assert_status(200)["status"], "healthy");
    app.public_get("/health/nonsense").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn info_and_stats() {
    let app = TestApp::new();
    let r = app.get("/api/v1/info").await;
    let body = r.assert_status(200);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["node_id"], "node-test");
    assert_eq!(body["engine"]["name"], "memory");
    assert!(body["uptime_seconds"].is_u64());
    assert_eq!(body["policies"]["login"]["limit"], 2);

    let stats = app.get("/api/v1/stats").await;
    let stats = stats.assert_status(200);
    assert_eq!((stats["sessions_active"].clone(), stats["online_users"].clone()), (json!(0), json!(0)));
    assert_eq!((stats["node_id"].clone(), stats["connections"].clone()), (json!("node-test"), json!(0)));
    app.create_session("ivy").await;
    app.create_session("jack").await;
    app.post("/api/v1/users/ivy/devices/d/heartbeat", json!({})).await.assert_status(200);
    app.post("/api/v1/queues/mail/jobs", json!({"type": "t"})).await.assert_status(201);
    app.put("/api/v1/cache/api_response/k", json!({"value": 1})).await.assert_status(204);
    let stats = app.get("/api/v1/stats").await;
    let stats = stats.assert_status(200);
    assert_eq!((stats["sessions_active"].clone(), stats["online_users"].clone()), (json!(2), json!(1)));
    let mail = stats["queues"].as_array().unwrap().iter().find(|q| q["queue"] == "mail").cloned();
    assert_eq!(mail.expect("the mail queue")["waiting"], 1, "{stats}");
    assert_eq!(stats["cache"]["api_response"]["keys"], 1);
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let app = TestApp::new();
    let id = app.create_session("kim").await;
    app.get(&format!("/api/v1/sessions/{id}")).await.assert_status(200);
    app.get("/api/v1/no/such/route").await.assert_error(404, "not_found");
    for _ in 0..2 {
        app.post("/api/v1/queues/metricsq/jobs", serde_json::json!({"type": "t"})).await.assert_status(201);
    }

    let r = app.public_get("/metrics").await;
    r.assert_status(200);
    assert!(r.header("content-type").starts_with("text/plain"), "{:?}", r.headers);
    let text = &r.text;
    assert!(text.contains("switchboard_http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/api/v1/sessions/{session_id}""#), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
    assert!(text.contains(r#"method="GET""#) && text.contains(r#"status="200""#), "{text}");
    assert!(text.contains("switchboard_http_request_duration_seconds_bucket{"), "histograms render as buckets: {text}");
    assert!(text.contains("switchboard_sessions_active"), "{text}");
    let waiting = text.lines().find(|l| {
        l.starts_with("switchboard_jobs{") && l.contains(r#"queue="metricsq""#) && l.contains(r#"state="waiting""#)
    });
    assert_eq!(waiting.and_then(|l| l.rsplit(' ').next()), Some("2"), "{text}");
    assert!(text.contains("switchboard_engine_call_duration_seconds_bucket{"), "{text}");
    // Never raw paths (ids) as labels.
    assert!(!text.contains(&id), "{text}");
    assert!(!text.contains("/no/such/route"), "{text}");
}

/// Every route of the API, with its methods.
const ROUTES: &[(&str, &[&str])] = &[
    ("/api/v1/queues/{queue}/jobs", &["post"]),
    ("/api/v1/queues/{queue}/jobs/bulk", &["post"]),
    ("/api/v1/queues/fetch", &["post"]),
    ("/api/v1/jobs/{job_id}/complete", &["post"]),
    ("/api/v1/jobs/complete", &["post"]),
    ("/api/v1/jobs/{job_id}/fail", &["post"]),
    ("/api/v1/jobs/{job_id}/heartbeat", &["post"]),
    ("/api/v1/jobs/{job_id}/progress", &["post"]),
    ("/api/v1/jobs/{job_id}/release", &["post"]),
    ("/api/v1/jobs/{job_id}", &["get", "delete"]),
    ("/api/v1/jobs/{job_id}/retry", &["post"]),
    ("/api/v1/queues", &["get"]),
    ("/api/v1/queues/{queue}", &["get"]),
    ("/api/v1/queues/{queue}/pause", &["post"]),
    ("/api/v1/queues/{queue}/resume", &["post"]),
    ("/api/v1/queues/{queue}/cancel", &["post"]),
    ("/api/v1/schedules/{name}", &["get", "put", "delete"]),
    ("/api/v1/schedules", &["get"]),
    ("/api/v1/sessions", &["post"]),
    ("/api/v1/sessions/{session_id}", &["get", "patch", "delete"]),
    ("/api/v1/sessions/{session_id}/touch", &["post"]),
    ("/api/v1/users/{user_id}/sessions", &["get", "delete"]),
    ("/api/v1/tokens/deny", &["post"]),
    ("/api/v1/tokens/deny/{jti}", &["get", "delete"]),
    ("/api/v1/users/{user_id}/tokens/revoke", &["get", "post"]),
    ("/api/v1/rate-limits/check", &["post"]),
    ("/api/v1/rate-limits/status", &["get"]),
    ("/api/v1/rate-limits", &["delete"]),
    ("/api/v1/users/{user_id}/devices", &["get"]),
    ("/api/v1/users/{user_id}/devices/{device_id}", &["put", "delete"]),
    ("/api/v1/users/{user_id}/devices/{device_id}/heartbeat", &["post", "delete"]),
    ("/api/v1/users/{user_id}/devices/{device_id}/pending", &["get"]),
    ("/api/v1/users/{user_id}/devices/{device_id}/ack", &["post"]),
    ("/api/v1/users/{user_id}/presence", &["get"]),
    ("/api/v1/users/{user_id}/presence/status", &["put"]),
    ("/api/v1/presence/query", &["post"]),
    ("/api/v1/presence/online", &["get"]),
    ("/api/v1/presence/online/count", &["get"]),
    ("/api/v1/users/{user_id}/contacts", &["put", "get"]),
    ("/api/v1/users/{user_id}/contacts/add", &["post"]),
    ("/api/v1/users/{user_id}/contacts/remove", &["post"]),
    ("/api/v1/conversations/{conversation_id}/typing", &["post", "get"]),
    ("/api/v1/publish", &["post"]),
    ("/api/v1/broadcast", &["post"]),
    ("/api/v1/channels/{channel}/history", &["get"]),
    ("/api/v1/channels/{channel}/presence", &["get"]),
    ("/api/v1/users/{user_id}/disconnect", &["post"]),
    ("/api/v1/users/{user_id}/notifications", &["post", "get"]),
    ("/api/v1/users/{user_id}/notifications/unread-count", &["get"]),
    ("/api/v1/users/{user_id}/notifications/read-all", &["post"]),
    ("/api/v1/users/{user_id}/notifications/{notification_id}", &["get", "delete"]),
    ("/api/v1/users/{user_id}/notifications/{notification_id}/read", &["post"]),
    ("/api/v1/users/{user_id}/notifications/{notification_id}/dismiss", &["post"]),
    ("/api/v1/users/{user_id}/notifications/{notification_id}/unread", &["post"]),
    ("/api/v1/conversations/{conversation_id}", &["put", "get", "delete"]),
    ("/api/v1/conversations/{conversation_id}/members", &["post"]),
    ("/api/v1/conversations/{conversation_id}/messages", &["post", "get", "put", "delete"]),
    ("/api/v1/conversations/{conversation_id}/messages/{message_id}", &["patch", "delete"]),
    ("/api/v1/conversations/{conversation_id}/delivered", &["post"]),
    ("/api/v1/users/{user_id}/conversations", &["get", "put"]),
    ("/api/v1/users/{user_id}/conversations/{conversation_id}", &["get", "patch", "delete"]),
    ("/api/v1/users/{user_id}/conversations/{conversation_id}/read", &["post"]),
    ("/api/v1/users/{user_id}/conversations/{conversation_id}/unread", &["put"]),
    ("/api/v1/users/{user_id}/unread", &["get"]),
    ("/api/v1/cache/{namespace}/{key}", &["put", "get", "delete"]),
    ("/api/v1/cache/{namespace}/mget", &["post"]),
    ("/api/v1/cache/{namespace}/mset", &["post"]),
    ("/api/v1/cache/{namespace}/{key}/lease", &["post"]),
    ("/api/v1/cache/invalidate", &["post"]),
    ("/api/v1/cache/stats", &["get"]),
    ("/api/v1/cache", &["get"]),
    ("/api/v1/info", &["get"]),
    ("/api/v1/stats", &["get"]),
    ("/health", &["get"]),
    ("/health/live", &["get"]),
    ("/health/ready", &["get"]),
    ("/health/{component}", &["get"]),
    ("/metrics", &["get"]),
];

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let app = TestApp::new();
    let r = app.public_get("/api/v1/openapi.json").await;
    let doc = r.assert_status(200).clone();
    assert!(doc["openapi"].as_str().unwrap_or_default().starts_with("3.1"), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    let paths = doc["paths"].as_object().expect("paths");
    let listed: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = ROUTES.iter().map(|(p, _)| *p).collect();
    assert_eq!(listed, expected);
    for (path, methods) in ROUTES {
        for method in *methods {
            let op = &paths[*path][*method];
            assert!(op.is_object(), "{method} {path} missing");
            let secured = op["security"] == json!([{"bearer": []}]);
            assert_eq!(secured, path.starts_with("/api/v1/"), "{method} {path}: {}", op["security"]);
            if secured {
                assert!(op["responses"]["401"].is_object(), "{method} {path}");
            }
        }
    }
    // Every referenced schema exists.
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let text = doc.to_string();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
    let check = &paths["/api/v1/rate-limits/check"]["post"];
    assert!(check["description"].as_str().unwrap_or_default().contains("200"), "{check}");

    // The served document is the one `openapi()` builds.
    let built: Value = serde_json::to_value(switchboard_server::openapi()).expect("serializable");
    assert_eq!(built, doc);
}

#[tokio::test]
async fn swagger_ui_is_served() {
    let app = TestApp::new();
    let r = app.public_get("/docs/").await;
    r.assert_status(200);
    assert!(r.header("content-type").starts_with("text/html"), "{:?}", r.headers);
    let r = app.public_get("/docs/swagger-initializer.js").await;
    r.assert_status(200);
    assert!(r.text.contains("/api/v1/openapi.json"), "{}", r.text);
}

async fn start_server() -> (std::net::SocketAddr, CancellationToken, tokio::task::JoinHandle<std::io::Result<()>>) {
    let sb = switchboard_core::Switchboard::new(
        switchboard_memory::engine(switchboard_memory::MemoryConfig::default()).expect("valid memory config"),
        crate::common::switchboard_config(),
    )
    .unwrap();
    let config = switchboard_server::ServerConfig {
        api_keys: vec![switchboard_server::ApiKey::new("tests", KEY)],
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let state = switchboard_server::AppState::new(sb, config);
    let server = tokio::spawn(switchboard_server::serve(listener, state, shutdown.clone()));
    (addr, shutdown, server)
}

#[tokio::test]
async fn serve_answers_and_stops_on_cancel() {
    let (addr, shutdown, server) = start_server().await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /api/v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"node_id\""), "{answer}");

    shutdown.cancel();
    let result = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "serve did not stop cleanly: {result:?}");
}

#[tokio::test]
async fn shutdown_drains_a_request_in_flight() {
    let (addr, shutdown, server) = start_server().await;
    let body = r#"{"user_id": "drain"}"#;
    let head = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Headers and half the body, then the shutdown, then the rest: the request still completes.
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!server.is_finished(), "serve returned with a request in flight");
    stream.write_all(&body.as_bytes()[5..]).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");

    let result = tokio::time::timeout(Duration::from_secs(5), server).await;
    assert!(matches!(result, Ok(Ok(Ok(())))), "serve did not stop cleanly: {result:?}");
}
