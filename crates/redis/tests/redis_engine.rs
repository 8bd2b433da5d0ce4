//! Redis-engine specifics the shared conformance suite cannot see: outages, the circuit and
//! recovery, start-up failures, secrets in URLs, the key layout and expiries, the active-session
//! count's lag, the Lua rate-limit script decision for decision against core's reference
//! algorithms, the Lua job backoff delay for delay against core's `Backoff::delay_ms`, and the
//! job id index surviving stale entries.
//! Every test starts its own `redis-server` on a free port.

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use switchboard_core::ratelimit::algorithms::{LimiterState, evaluate};
use switchboard_core::session::data_size;
use switchboard_core::{
    Algorithm, Backoff, DeviceInfo, Engine, Error, JobId, JobRetention, JobState, JobType, LeaseToken, NewJob,
    NewSession, Policy, QueueName, RateLimitKey, RateLimitRequest, Retry, SessionData, TokenId, UserId,
};
use switchboard_redis::RedisConfig;

/// A `redis-server` this test started on a free loopback port; killed when dropped.
struct Server {
    port: u16,
    child: Child,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        Server::start_on(free_port(), extra)
    }

    fn start_on(port: u16, extra: &[&str]) -> Server {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start redis-server ({e}); install it with `apt-get install redis-server`")
            });
        let server = Server { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let ok = Command::new("kill").args([signal, &self.child.id().to_string()]).status().is_ok_and(|s| s.success());
        assert!(ok, "kill {signal} failed");
    }

    fn stop(mut self) -> u16 {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.signal_cont_quietly();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    // A stopped (SIGSTOP) process must be continued for SIGKILL bookkeeping to finish promptly.
    fn signal_cont_quietly(&self) -> std::io::Result<std::process::ExitStatus> {
        Command::new("kill").args(["-CONT", &self.child.id().to_string()]).stderr(Stdio::null()).status()
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

fn config(server: &Server, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: server.url(),
        key_prefix: prefix.into(),
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_millis(300),
        ..RedisConfig::default()
    }
}

async fn raw(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url()).expect("url").get_multiplexed_async_connection().await.expect("raw connection")
}

fn new_session(user: &str, idle: Duration, absolute: Duration) -> NewSession {
    NewSession {
        user_id: UserId::new(user).unwrap(),
        device: DeviceInfo { kind: Some("web".into()), ..DeviceInfo::default() },
        ip: Some("10.0.0.1".into()),
        user_agent: None,
        data: SessionData::new(),
        idle_ttl: idle,
        absolute_ttl: absolute,
        id: None,
        replace_device: None,
    }
}

fn key(k: &str) -> RateLimitKey {
    RateLimitKey::new(k).unwrap()
}

async fn some_call(engine: &Engine) -> switchboard_core::Result<()> {
    engine.rate_limiter.status(&key("probe"), &Policy::gcra(5, 1000)).await?;
    engine.sessions.count_active().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_fast_while_redis_is_down_and_recover_when_it_returns() {
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "o:")).await.expect("connect");
    let created =
        engine.sessions.create(new_session("alice", Duration::from_secs(60), Duration::from_secs(600)), 0).await;
    let id = created.expect("create").session.id;

    let port = server.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let err = some_call(&engine).await.expect_err("redis is down");
        assert!(matches!(&err, Error::Unavailable(m) if m.starts_with("redis: ")), "{err:?}");
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
        assert!(matches!(engine.health.ping().await, Err(Error::Unavailable(_))));
    }

    // A fresh server on the same port: no scripts loaded (NOSCRIPT -> reload), no data.
    let _server = Server::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while some_call(&engine).await.is_err() {
        assert!(Instant::now() < deadline, "engine did not recover after redis came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(engine.sessions.get(&id).await.expect("get"), None);
    let again =
        engine.sessions.create(new_session("alice", Duration::from_secs(60), Duration::from_secs(600)), 0).await;
    let again = again.expect("create after recovery").session;
    assert_eq!(engine.sessions.touch(&again.id).await.expect("touch").map(|s| s.id), Some(again.id));
    assert!(engine.health.ping().await.is_ok());
}

/// The broker's pub/sub connection survives a Redis restart: hub subscribers are told about the
/// gap once every channel is subscribed again, and later publications reach them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_subscribers_get_a_gap_after_a_redis_restart_and_then_live_publications() {
    use switchboard_core::{ChannelName, HubEvent, NewPublication, Switchboard, SwitchboardConfig};
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "bk:")).await.expect("connect");
    let sb = Switchboard::new(engine, SwitchboardConfig::default()).expect("facade");
    sb.start().expect("start the node");
    let ch = ChannelName::new("chat:restart").unwrap();
    let event = |n: u64| NewPublication::new(json!({"type": "t", "data": {"n": n}}));
    let next = async |sub: &mut switchboard_core::HubSubscription| {
        tokio::time::timeout(Duration::from_secs(15), sub.recv()).await.expect("an event in time").expect("open")
    };
    let mut sub = sb.hub().subscribe(&ch).await.expect("subscribe");
    let before = sb.streams().publish(&ch, event(1)).await.expect("publish");
    assert!(matches!(next(&mut sub).await, HubEvent::Publication(m) if m.publication.offset == 1));

    let port = server.stop();
    let err = sb.streams().publish(&ch, event(2)).await.expect_err("redis is down");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    let started = Instant::now();
    let refused = sb.hub().subscribe(&ChannelName::new("chat:other").unwrap()).await.expect_err("cannot subscribe");
    assert!(matches!(refused, Error::Unavailable(_)), "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    let _server = Server::start_on(port, &[]);
    assert_eq!(next(&mut sub).await, HubEvent::Gap, "the hub reports the interruption");
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        match sb.streams().publish(&ch, event(3)).await {
            Ok(position) => break position,
            Err(e) => assert!(Instant::now() < deadline, "publish did not recover: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(after.epoch, before.epoch, "a fresh server lost the history: new epoch");
    assert_eq!(after.offset, 1);
    match next(&mut sub).await {
        HubEvent::Publication(m) => assert_eq!((m.epoch.as_str(), m.publication.offset), (after.epoch.as_str(), 1)),
        other => panic!("expected the new publication, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_times_out_at_the_command_timeout() {
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "h:")).await.expect("connect");
    some_call(&engine).await.expect("works before");
    server.signal("-STOP");
    let started = Instant::now();
    let err = engine.rate_limiter.status(&key("k"), &Policy::gcra(1, 1000)).await.expect_err("hung");
    let took = started.elapsed();
    assert!(matches!(&err, Error::Unavailable(m) if m.contains("no answer within 300 ms")), "{err:?}");
    assert!(took >= Duration::from_millis(250) && took < Duration::from_millis(1000), "took {took:?}");
    server.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(5);
    while some_call(&engine).await.is_err() {
        assert!(Instant::now() < deadline, "engine did not recover after redis resumed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `check` every 20 ms until it holds; panics with `what` after `timeout`.
async fn eventually(timeout: Duration, what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The circuit opens on the first connection loss a call sees (after which calls are refused
/// without waiting for the 2 s command timeout), and closes by itself, with no call needed,
/// once Redis is back on the same port; the broker reports its connection the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_opens_on_a_lost_connection_and_closes_when_redis_is_back() {
    let server = Server::start(&[]);
    let config = RedisConfig { command_timeout: Duration::from_secs(2), ..config(&server, "ci:") };
    let engine = switchboard_redis::connect(config).await.expect("connect");
    // The node runs the broker's loop.
    let node = switchboard_core::Switchboard::new(engine.clone(), switchboard_core::SwitchboardConfig::default())
        .expect("facade");
    node.start().expect("start the node");
    some_call(&engine).await.expect("works before");
    assert!(engine.health.connected());
    eventually(Duration::from_secs(5), "the broker connects", || engine.broker.connected()).await;

    let port = server.stop();
    let err = some_call(&engine).await.expect_err("redis is down");
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
    assert!(!engine.health.connected(), "the first failure opens the circuit");
    for _ in 0..20 {
        let started = Instant::now();
        let err = engine.rate_limiter.status(&key("k"), &Policy::gcra(1, 1000)).await.expect_err("open");
        let took = started.elapsed();
        assert!(matches!(&err, Error::Unavailable(m) if m.contains("not connected")), "{err:?}");
        assert!(took < Duration::from_millis(100), "refused in {took:?}");
    }
    assert!(matches!(engine.health.ping().await, Err(Error::Unavailable(_))));
    eventually(Duration::from_secs(5), "the broker reports its connection lost", || !engine.broker.connected()).await;
    let refused = engine.broker.subscribe(&switchboard_core::ChannelName::new("chat:x").unwrap()).await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert!(!engine.health.connected(), "stays open while Redis is away");

    let _server = Server::start_on(port, &[]);
    eventually(Duration::from_secs(10), "the probe closes the circuit", || engine.health.connected()).await;
    some_call(&engine).await.expect("serves again");
    eventually(Duration::from_secs(10), "the broker reconnects", || engine.broker.connected()).await;
}

/// A hung Redis (SIGSTOP): the first call to time out opens the circuit, which also ends the
/// calls still waiting on the same connection, instead of each waiting out its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_end_when_the_circuit_opens() {
    let server = Server::start(&[]);
    let config = RedisConfig { command_timeout: Duration::from_millis(1000), ..config(&server, "if:") };
    let engine = switchboard_redis::connect(config).await.expect("connect");
    some_call(&engine).await.expect("works before");
    server.signal("-STOP");

    let first = {
        let engine = engine.clone();
        tokio::spawn(async move { engine.rate_limiter.status(&key("a"), &Policy::gcra(1, 1000)).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let second = engine.rate_limiter.status(&key("b"), &Policy::gcra(1, 1000)).await.expect_err("hung");
    let took = started.elapsed();
    let first = first.await.expect("join").expect_err("hung");
    assert!(matches!(&first, Error::Unavailable(m) if m.contains("no answer within 1000 ms")), "{first:?}");
    assert!(matches!(&second, Error::Unavailable(m) if m.contains("connection lost")), "{second:?}");
    // Its own timeout would end it 1000 ms after it started; the circuit ends it about 500 ms in.
    assert!(took < Duration::from_millis(850), "the call in flight took {took:?}");
    assert!(!engine.health.connected());

    server.signal("-CONT");
    eventually(Duration::from_secs(10), "the probe closes the circuit", || engine.health.connected()).await;
    some_call(&engine).await.expect("serves again");
}

#[tokio::test]
async fn start_up_fails_clearly_when_redis_is_unreachable() {
    // Nothing listens on this port.
    let port = free_port();
    let started = Instant::now();
    let err = switchboard_redis::connect(RedisConfig::new(format!("redis://127.0.0.1:{port}"))).await.err();
    assert!(
        matches!(&err, Some(Error::Unavailable(m)) if m.starts_with("redis: cannot connect to redis://127.0.0.1:"))
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    // Something accepts but never answers: bounded by connect_timeout.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://127.0.0.1:{}", silent.local_addr().expect("addr").port());
    let config = RedisConfig { connect_timeout: Duration::from_millis(400), ..RedisConfig::new(url) };
    let started = Instant::now();
    let err = switchboard_redis::connect(config).await.err();
    assert!(matches!(&err, Some(Error::Unavailable(m)) if m.contains("no answer within 400 ms")), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1500));

    let err = switchboard_redis::connect(RedisConfig::new("redis://127.0.0.1:1").with_key_prefix("{x}")).await.err();
    assert!(matches!(err, Some(Error::InvalidArgument(m)) if m.starts_with("redis: key_prefix")));
}

#[tokio::test]
async fn passwords_never_show_and_wrong_ones_are_refused() {
    let server = Server::start(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}/0", server.port);
    let engine = switchboard_redis::connect(RedisConfig::new(url)).await.expect("connect with password");
    let info = engine.health.info();
    assert_eq!(info.name, "redis");
    assert_eq!(info.location, format!("redis://:***@127.0.0.1:{}/0", server.port));
    assert_eq!(info.key_prefix, "sb:");
    assert!(engine.health.ping().await.expect("ping") < Duration::from_secs(1));

    let wrong = format!("redis://:nope-secret@127.0.0.1:{}", server.port);
    let err = switchboard_redis::connect(RedisConfig::new(wrong)).await.expect_err("wrong password");
    let text = err.to_string();
    assert!(matches!(err, Error::Unavailable(_)), "{text}");
    assert!(!text.contains("nope-secret"), "{text}");
}

/// A self-signed certificate for 127.0.0.1 in a fresh directory: (dir, cert, key).
fn self_signed_cert() -> (std::path::PathBuf, String, String) {
    let dir = std::env::temp_dir().join(format!("sb-redis-tls-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}); install it with `apt-get install openssl`"));
    assert!(status.success(), "openssl could not make a test certificate");
    let path = |p: std::path::PathBuf| p.to_str().expect("utf-8 temp path").to_owned();
    (dir, path(cert), path(key))
}

#[tokio::test]
async fn tls_connections_work_and_untrusted_certificates_are_refused() {
    let (dir, cert, key) = self_signed_cert();
    let port = free_port();
    let tls_port = port.to_string();
    let server = Server::start_on(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &cert,
            "--tls-auth-clients",
            "no",
        ],
    );
    // `#insecure` skips verification: the self-signed certificate is accepted.
    let url = format!("rediss://127.0.0.1:{port}/#insecure");
    let engine = switchboard_redis::connect(RedisConfig::new(url)).await.expect("connect over TLS");
    engine.health.ping().await.expect("ping over TLS");
    let created = engine.sessions.create(new_session("tls", Duration::from_secs(60), Duration::from_secs(60)), 0).await;
    assert!(engine.sessions.get(&created.expect("create").session.id).await.expect("get").is_some());

    // Verified against the system roots, which do not hold it: refused, with a clear error.
    let err = switchboard_redis::connect(RedisConfig::new(format!("rediss://127.0.0.1:{port}"))).await.err();
    assert!(
        matches!(&err, Some(Error::Unavailable(m)) if m.starts_with("redis: cannot connect to rediss://")),
        "{err:?}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn resp3_connections_decode_the_same_replies() {
    let server = Server::start(&[]);
    let url = format!("{}/?protocol=resp3", server.url());
    let engine = switchboard_redis::connect(RedisConfig::new(url).with_key_prefix("r3:")).await.expect("connect");
    let user = UserId::new("erin").unwrap();
    let created =
        engine.sessions.create(new_session("erin", Duration::from_secs(60), Duration::from_secs(60)), 0).await;
    let id = created.expect("create").session.id;
    assert!(engine.sessions.touch(&id).await.expect("touch").is_some());
    let mut patch = SessionData::new();
    patch.insert("a".into(), json!(1));
    assert!(engine.sessions.update_data(&id, &patch, 100).await.expect("update").is_some());
    assert_eq!(engine.sessions.list(&user).await.expect("list").len(), 1);
    assert_eq!(engine.sessions.count_active().await.expect("count"), 1);
    assert!(engine.sessions.delete(&id).await.expect("delete"));
    assert_eq!(engine.sessions.get(&id).await.expect("get"), None, "nil is None over RESP3 too");
    assert_eq!(engine.sessions.touch(&id).await.expect("touch"), None);
    let jti = TokenId::new("j").unwrap();
    assert_eq!(engine.denylist.denied_until(&jti).await.expect("denied_until"), None);
    assert_eq!(engine.denylist.revoked_before(&user).await.expect("revoked_before"), None);
    let decision = engine.rate_limiter.status(&key("k"), &Policy::gcra(2, 1000)).await.expect("status");
    assert_eq!((decision.allowed, decision.remaining), (true, 2));
}

#[tokio::test]
async fn keys_follow_the_layout_and_expire_with_their_state() {
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "lay:")).await.expect("connect");
    let mut r = raw(&server).await;

    let created =
        engine.sessions.create(new_session("alice", Duration::from_secs(60), Duration::from_secs(90)), 0).await;
    let session = created.expect("create").session;
    let shard = format!("{:04x}", session.id.shard());
    let session_key = format!("lay:s:{{{shard}}}:{}", session.id);
    let index_key = format!("lay:u:{{{shard}}}:alice");
    let session_exp: i64 = redis::cmd("PEXPIRETIME").arg(&session_key).query_async(&mut r).await.expect("pexpiretime");
    assert_eq!(session_exp, session.expires_at.as_millis());
    let index_exp: i64 = redis::cmd("PEXPIRETIME").arg(&index_key).query_async(&mut r).await.expect("pexpiretime");
    assert_eq!(index_exp, session.absolute_expires_at.as_millis());
    let score: Option<i64> = r.zscore(&index_key, session.id.as_str()).await.expect("zscore");
    assert_eq!(score, Some(session.last_active_at.as_millis()));

    let until = switchboard_core::Timestamp::now().plus(Duration::from_secs(30));
    engine.denylist.deny(&TokenId::new("j1").unwrap(), until).await.expect("deny");
    let deny_exp: i64 = redis::cmd("PEXPIRETIME").arg("lay:dl:{j1}").query_async(&mut r).await.expect("pexpiretime");
    assert_eq!(deny_exp, until.as_millis());
    let keep = until.plus(Duration::from_secs(60));
    engine.denylist.revoke_before(&UserId::new("alice").unwrap(), until, keep).await.expect("revoke");
    let revoke_exp: i64 =
        redis::cmd("PEXPIRETIME").arg("lay:rb:{alice}").query_async(&mut r).await.expect("pexpiretime");
    assert_eq!(revoke_exp, keep.as_millis());

    let gcra = RateLimitRequest { key: key("ip:1"), policy: Policy::gcra(10, 10_000), cost: 1 };
    let log = RateLimitRequest {
        key: key("ip:2"),
        policy: Policy::gcra(10, 10_000).with_algorithm(Algorithm::SlidingLog),
        cost: 3,
    };
    let window = RateLimitRequest {
        key: key("ip:3"),
        policy: Policy::gcra(10, 10_000).with_algorithm(Algorithm::SlidingWindow),
        cost: 1,
    };
    engine.rate_limiter.check(&[gcra, log, window]).await.expect("check");
    for (k, kind) in [("lay:rl:{ip:1}", "string"), ("lay:rl:{ip:2}", "zset"), ("lay:rl:{ip:3}", "hash")] {
        let t: String = redis::cmd("TYPE").arg(k).query_async(&mut r).await.expect("type");
        assert_eq!(t, kind, "{k}");
        let ttl: i64 = r.pttl(k).await.expect("pttl");
        assert!(ttl > 0 && ttl <= 20_000, "{k}: {ttl}");
    }
    let members: usize = r.zcard("lay:rl:{ip:2}").await.expect("zcard");
    assert_eq!(members, 3, "one unique member per unit of cost");

    let mut all: Vec<String> = r.keys("lay:*").await.expect("keys");
    all.sort();
    let mut expected = vec![
        session_key,
        index_key,
        "lay:sessions:active".to_owned(),
        "lay:dl:{j1}".to_owned(),
        "lay:rb:{alice}".to_owned(),
        "lay:rl:{ip:1}".to_owned(),
        "lay:rl:{ip:2}".to_owned(),
        "lay:rl:{ip:3}".to_owned(),
    ];
    expected.sort();
    assert_eq!(all, expected);
}

#[tokio::test]
async fn the_active_count_is_refreshed_rarely_and_never_undercounts() {
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "c:")).await.expect("connect");
    let mut r = raw(&server).await;
    let idle = Duration::from_millis(800);
    let session = engine.sessions.create(new_session("bob", idle, Duration::from_secs(60)), 0).await.expect("create");
    let session = session.session;
    let member = session.id.as_str();
    let counted = async |r: &mut redis::aio::MultiplexedConnection| -> i64 {
        let score: Option<i64> = r.zscore("c:sessions:active", member).await.expect("zscore");
        score.expect("counted")
    };
    // Recorded past the expiry by idle / 8, so touches within that slack change nothing.
    assert_eq!(counted(&mut r).await, session.expires_at.as_millis() + 100);
    let touched = engine.sessions.touch(&session.id).await.expect("touch").expect("live");
    if touched.expires_at.as_millis() <= session.expires_at.as_millis() + 100 {
        assert_eq!(counted(&mut r).await, session.expires_at.as_millis() + 100);
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let touched = engine.sessions.touch(&session.id).await.expect("touch").expect("live");
    assert_eq!(counted(&mut r).await, touched.expires_at.as_millis() + 100);
    assert_eq!(engine.sessions.count_active().await.expect("count"), 1);

    // Never counted once deleted; counted no longer than idle / 8 past an idle expiry.
    let other = engine.sessions.create(new_session("carol", idle, Duration::from_secs(60)), 0).await.expect("create");
    assert_eq!(engine.sessions.count_active().await.expect("count"), 2);
    assert!(engine.sessions.delete(&other.session.id).await.expect("delete"));
    assert_eq!(engine.sessions.count_active().await.expect("count"), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine.sessions.count_active().await.expect("count") != 0 {
        assert!(Instant::now() < deadline, "count did not follow the expiry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(switchboard_core::Timestamp::now() >= touched.expires_at);
    let left: usize = r.zcard("c:sessions:active").await.expect("zcard");
    assert_eq!(left, 0, "counting trims ended entries");

    // Creating trims too, so the set stays bounded when nobody counts.
    let short = Duration::from_millis(200);
    let gone = engine.sessions.create(new_session("dan", short, Duration::from_secs(60)), 0).await.expect("create");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(switchboard_core::Timestamp::now() > gone.session.expires_at.plus(Duration::from_millis(25)));
    engine.sessions.create(new_session("eve", idle, Duration::from_secs(60)), 0).await.expect("create");
    let members: Vec<String> = r.zrange("c:sessions:active", 0, -1).await.expect("zrange");
    assert_eq!(members.len(), 1, "the ended session's entry was dropped by the create");
}

#[tokio::test]
async fn data_size_is_measured_byte_for_byte_like_core() {
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "d:")).await.expect("connect");
    let created =
        engine.sessions.create(new_session("dave", Duration::from_secs(60), Duration::from_secs(60)), 0).await;
    let id = created.expect("create").session.id;
    // Multi-byte names and values, escapes, nested values, numbers.
    let mut patch = SessionData::new();
    patch.insert("größe".into(), json!("naïve \"quoted\"\n€"));
    patch.insert("list".into(), json!([1, 2.5, {"k": null}]));
    patch.insert("n".into(), json!(-12.75));
    let size = data_size(&patch);
    let updated = engine.sessions.update_data(&id, &patch, size).await.expect("update at the limit").expect("live");
    assert_eq!(updated.data, patch);

    let mut one_more = SessionData::new();
    one_more.insert("x".into(), json!(1));
    let err = engine.sessions.update_data(&id, &one_more, size + 1).await.expect_err("one byte over");
    assert!(matches!(err, Error::PayloadTooLarge(_)));
    assert_eq!(engine.sessions.get(&id).await.expect("get").expect("live").data, patch, "nothing changed");

    // Replacing a field counts only the new value; null deletes.
    let mut replace = SessionData::new();
    replace.insert("größe".into(), json!("é"));
    replace.insert("n".into(), serde_json::Value::Null);
    let mut expected = patch.clone();
    expected.insert("größe".into(), json!("é"));
    expected.remove("n");
    let updated = engine.sessions.update_data(&id, &replace, data_size(&expected)).await.expect("update");
    assert_eq!(updated.expect("live").data, expected);
}

// ---------------------------------------------------------------------------------------------
// The Lua rate-limit script against core's reference algorithms, on an injected clock.

/// The production script with one change: `now_ms()` reads the key `parity:now` instead of TIME.
fn script_with_fake_clock() -> redis::Script {
    let common = include_str!("../lua/common.lua");
    let header = "local function now_ms()\n";
    assert!(common.contains(header), "common.lua changed: update the parity test");
    let fake = common.replacen(
        header,
        "local function now_ms()\n  do return tonumber(redis.call('GET', 'parity:now')) end\n",
        1,
    );
    redis::Script::new(&format!("{fake}{}", include_str!("../lua/ratelimit_check.lua")))
}

/// The memory engine's bookkeeping: state per key with the time it stops mattering.
#[derive(Default)]
struct Model {
    state: HashMap<String, (LimiterState, i64)>,
}

impl Model {
    fn check(
        &mut self,
        requests: &[(String, Policy, u32)],
        consume: bool,
        now: i64,
    ) -> Vec<switchboard_core::Decision> {
        let evaluations: Vec<_> = requests
            .iter()
            .map(|(k, p, cost)| {
                let stored = self.state.get(k).filter(|(_, exp)| *exp > now).map(|(s, _)| s.clone());
                evaluate(stored.as_ref(), p, *cost, now)
            })
            .collect();
        if consume && evaluations.iter().all(|e| e.consumed.is_some()) {
            requests
                .iter()
                .zip(evaluations)
                .filter_map(|((k, _, _), e)| {
                    let (decision, state, exp) = e.consumed?;
                    self.state.insert(k.clone(), (state, exp));
                    Some(decision)
                })
                .collect()
        } else {
            evaluations.into_iter().map(|e| e.current).collect()
        }
    }
}

/// xorshift64*: deterministic, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn the_lua_script_decides_exactly_like_core() {
    let server = Server::start(&[]);
    let mut r = raw(&server).await;
    let script = script_with_fake_clock();
    let (secs, _): (i64, i64) = redis::cmd("TIME").query_async(&mut r).await.expect("time");
    let mut now = secs * 1000 + 123;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut model = Model::default();

    // Fixed limit, window and burst per key (the algorithm varies): the clock here runs ahead of
    // the real one, so Redis keeps state the model has dropped; each algorithm must then treat
    // it as empty, as it does for the same window.
    // Limits that do not divide their window give fractional GCRA intervals whose sums land a
    // hair off whole milliseconds: that is where EPS and the order of float operations matter.
    let shapes =
        [(1, 1), (2, 10), (3, 1000), (7, 1000), (6, 1000), (3, 10), (5, 333), (40, 1500), (7, 60_000), (9, 100)];
    let keys: Vec<(String, u32, u64, Option<u32>)> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(limit, window))| {
            let burst = if rng.below(2) == 0 { None } else { Some(1 + rng.below(2 * limit as u64) as u32) };
            (format!("k{i}"), limit, window, burst)
        })
        .collect();
    let algorithms = [Algorithm::Gcra, Algorithm::SlidingWindow, Algorithm::SlidingLog];

    for step in 0..8000 {
        // Many steps land on the same millisecond or on round multiples of the windows.
        now += match rng.below(10) {
            0..=2 => 0,
            3 | 4 => rng.below(20) as i64,
            5 | 6 => [1, 10, 100, 333, 334, 500, 1000, 1500][rng.below(8) as usize],
            7 => rng.below(400) as i64,
            _ => rng.below(2000) as i64,
        };
        let n = 1 + rng.below(3) as usize;
        let mut picked: Vec<usize> = Vec::new();
        while picked.len() < n {
            let k = rng.below(keys.len() as u64) as usize;
            if !picked.contains(&k) {
                picked.push(k);
            }
        }
        let consume = rng.below(5) != 0;
        let requests: Vec<(String, Policy, u32)> = picked
            .iter()
            .map(|&k| {
                let (name, limit, window_ms, burst) = &keys[k];
                // Each key mostly keeps one algorithm and sometimes switches.
                let algorithm = if rng.below(4) == 0 { algorithms[rng.below(3) as usize] } else { algorithms[k % 3] };
                let policy = Policy { algorithm, limit: *limit, window_ms: *window_ms, burst: *burst };
                let cost = if consume { 1 + rng.below(u64::from(policy.capacity())) as u32 } else { 1 };
                (name.clone(), policy, cost)
            })
            .collect();

        let expected = model.check(&requests, consume, now);
        let _: () = r.set("parity:now", now).await.expect("set clock");
        let mut invocation = script.prepare_invoke();
        for (name, policy, cost) in &requests {
            invocation
                .key(format!("p:rl:{{{name}}}"))
                .arg(policy.algorithm.as_str())
                .arg(policy.limit)
                .arg(policy.window_ms)
                .arg(policy.capacity())
                .arg(*cost)
                .arg(u8::from(consume));
        }
        let flat: Vec<i64> = invocation.invoke_async(&mut r).await.expect("script");
        let got: Vec<switchboard_core::Decision> = flat
            .chunks_exact(5)
            .map(|c| switchboard_core::Decision {
                allowed: c[0] == 1,
                limit: c[1] as u32,
                remaining: c[2] as u32,
                reset_after_ms: c[3] as u64,
                retry_after_ms: c[4] as u64,
            })
            .collect();
        assert_eq!(got, expected, "step {step} at {now}: {requests:?} consume={consume}");
    }
}

/// Pipelined presence scripts (batch refresh, bulk, sweep) reload themselves after
/// `SCRIPT FLUSH`, and a user's presence keys share the user's slot while the online and due
/// sets share theirs.
#[tokio::test]
async fn presence_pipelines_survive_script_flush_and_keys_keep_their_slots() {
    use switchboard_core::{ConnectionInfo, DeviceId, Timestamp};
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "pp:")).await.unwrap();
    let mut raw = raw(&server).await;
    let conn = |user: &str, id: &str| ConnectionInfo {
        conn_id: id.into(),
        user_id: UserId::new(user).unwrap(),
        device_id: DeviceId::new("d1").unwrap(),
        node_id: "n1".into(),
        connected_at: Timestamp::now(),
        ip: None,
        user_agent: None,
    };
    let (a, b) = (conn("alice", "c1"), conn("bob", "c2"));
    engine.presence.connect(&a, Duration::from_secs(60)).await.unwrap();
    engine.presence.connect(&b, Duration::from_secs(60)).await.unwrap();

    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut raw).await.unwrap();
    let out = engine.presence.refresh(&[a.conn_ref(), b.conn_ref()], Duration::from_secs(60)).await.unwrap();
    assert_eq!(out.refreshed, 2);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut raw).await.unwrap();
    let both = engine.presence.bulk(&[a.user_id.clone(), b.user_id.clone()], Duration::ZERO).await.unwrap();
    assert!(both.iter().all(|p| p.online));
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut raw).await.unwrap();
    engine.presence.disconnect(&a.conn_ref(), Duration::ZERO).await.unwrap();
    let mut offline = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while offline.is_empty() && Instant::now() < deadline {
        offline = engine.presence.sweep(Duration::ZERO, 100).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(offline, vec![a.user_id.clone()]);

    let slot = |key: &str| -> String {
        let open = key.find('{').expect("a hash tag");
        let close = key[open..].find('}').expect("a closed hash tag");
        key[open + 1..open + close].to_owned()
    };
    let mut keys: Vec<String> = raw.keys("pp:*").await.unwrap();
    keys.sort();
    assert!(keys.contains(&"pp:pr:{bob}".to_owned()) && keys.contains(&"pp:pl:{bob}".to_owned()), "{keys:?}");
    for key in &keys {
        let tag = slot(key);
        assert!(["alice", "bob", "presence"].contains(&tag.as_str()), "{key} has tag {tag}");
    }
    let ttl: i64 = raw.pttl("pp:pr:{bob}").await.unwrap();
    assert!(ttl > 29 * 86_400_000, "presence state is kept for the retention, got {ttl} ms");
    let online: Vec<String> = raw.zrange("pp:{presence}:online", 0, -1).await.unwrap();
    assert_eq!(online, ["bob"]);
}

// ---------------------------------------------------------------------------------------------
// Jobs: the Lua backoff against core's reference, and the key layout.

#[tokio::test]
async fn the_lua_backoff_delays_exactly_like_core() {
    let server = Server::start(&[]);
    let mut r = raw(&server).await;
    let common = format!("{}{}", include_str!("../lua/common.lua"), include_str!("../lua/job_common.lua"));
    let script = redis::Script::new(&format!(
        "{common}\nreturn tostring(backoff_delay(ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])))"
    ));
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..400 {
        let max = 1 + rng.below(switchboard_core::jobs::MAX_BACKOFF_MS);
        let base = rng.below(max + 1);
        let backoff = match i % 3 {
            0 => Backoff::Exponential { base_ms: base, max_ms: max, jitter: rng.below(2) == 1 },
            1 => Backoff::Fixed { delay_ms: base },
            _ => Backoff::Polynomial { base_ms: base / 1000, exponent: 1 + rng.below(8) as u32, max_ms: max },
        };
        let attempt = [0, 1, 2, 3, 7, 20, 40, 1000][rng.below(8) as usize] as u32;
        let random = (rng.below(1 << 53) as f64) / (1u64 << 53) as f64;
        let lua: String = script
            .arg("pfx:")
            .arg(backoff.encode())
            .arg(attempt)
            .arg(random.to_string())
            .invoke_async(&mut r)
            .await
            .expect("backoff script");
        assert_eq!(lua.parse::<u64>().ok(), Some(backoff.delay_ms(attempt, random)), "{backoff:?} {attempt} {random}");
    }
}

fn new_job(id: &str, queue: &str, unique: Option<&str>) -> NewJob {
    NewJob {
        id: JobId::new(id).unwrap(),
        queue: QueueName::new(queue).unwrap(),
        job_type: JobType::new("t").unwrap(),
        payload: b"{}".to_vec(),
        priority: 0,
        due: Default::default(),
        max_attempts: 2,
        backoff: Backoff::Fixed { delay_ms: 0 },
        lease: Duration::from_secs(30),
        unique_key: unique.map(str::to_owned),
    }
}

/// On one server (standalone, Sentinel) every job key stays in `{jobs}` with job hashes found
/// by id alone (the layout earlier versions wrote), so no id index is kept; finished jobs leave
/// nothing behind.
#[tokio::test]
async fn on_one_server_job_keys_keep_one_slot_and_need_no_index() {
    let server = Server::start(&[]);
    let engine = switchboard_redis::connect(config(&server, "jb:")).await.expect("connect");
    let jobs = &engine.jobs;
    jobs.enqueue(&[new_job("a", "q1", Some("k")), new_job("b", "q2", None)]).await.unwrap();
    let retention = JobRetention { completed_max: 0, ..JobRetention::default() };
    let token = LeaseToken::generate().unwrap();
    let q = |s: &str| QueueName::new(s).unwrap();
    let fetched = jobs.fetch(&[q("q2"), q("q1")], std::slice::from_ref(&token), None, &retention).await.unwrap();
    assert_eq!(fetched.jobs[0].job.id.as_str(), "b");
    jobs.complete(&JobId::new("b").unwrap(), &token, None, &retention).await.unwrap();
    let fetched = jobs.fetch(&[q("q1")], std::slice::from_ref(&token), None, &retention).await.unwrap();
    let a = JobId::new("a").unwrap();
    let outcome = jobs.fail(&a, &token, "boom", Retry::Never, 0.5, &retention).await.unwrap();
    assert_eq!((fetched.jobs.len(), outcome.state), (1, JobState::Dead));

    let mut raw = raw(&server).await;
    let mut keys: Vec<String> = raw.keys("jb:*").await.unwrap();
    keys.sort();
    for key in &keys {
        assert!(key.starts_with("jb:{jobs}:"), "{key} is outside the jobs slot");
    }
    // b completed with completed_max 0: its hash is gone; a is dead and freed its unique key.
    // Job hashes are found by id alone: no index.
    assert!(!keys.contains(&"jb:{jobs}:j:b".to_owned()), "{keys:?}");
    assert!(keys.contains(&"jb:{jobs}:j:a".to_owned()) && keys.contains(&"jb:{jobs}:q:q1:x".to_owned()), "{keys:?}");
    assert!(!keys.contains(&"jb:{jobs}:q:q1:u".to_owned()), "{keys:?}");
    assert!(!keys.contains(&"jb:{jobs}:ix".to_owned()), "{keys:?}");
    let queues: Vec<String> = raw.smembers("jb:{jobs}:queues").await.unwrap();
    assert_eq!(queues.len(), 2, "{queues:?}");
    let counts = jobs.counts(&q("q1"), &retention).await.unwrap();
    assert_eq!((counts.dead, counts.failed_total, counts.failed_this_minute), (1, 1, 1));
    jobs.retry_dead(&a).await.unwrap();
    assert_eq!(jobs.get(&a).await.unwrap().unwrap().state, JobState::Waiting);
}

/// `connect_in_background` with no Redis yet, on every topology: the engine is built at once,
/// refuses calls with `Unavailable` and reports itself (and pub/sub) down; on a standalone
/// server it serves, pub/sub included, once Redis comes up on the address. A setting that can
/// never work still fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_connected_in_the_background_serves_once_redis_is_up() {
    use switchboard_core::{Switchboard, SwitchboardConfig};
    let port = free_port();
    let standalone = RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        key_prefix: "bg:".into(),
        connect_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(300),
        ..RedisConfig::default()
    };
    let cluster = RedisConfig {
        cluster_nodes: vec![format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port())],
        ..standalone.clone()
    };
    let sentinel = RedisConfig {
        sentinels: vec![format!("127.0.0.1:{}", free_port())],
        sentinel_master: "mymaster".into(),
        ..standalone.clone()
    };
    for (topology, config) in [("cluster", cluster), ("sentinel", sentinel)] {
        let engine = switchboard_redis::connect_in_background(config.clone()).await.expect(topology);
        let err = some_call(&engine).await.expect_err("nothing to connect to");
        assert!(matches!(&err, Error::Unavailable(_)), "{topology}: {err:?}");
        assert!(!engine.health.connected(), "{topology}");
        assert!(!engine.broker.connected(), "{topology}");
        assert!(switchboard_redis::connect(config).await.is_err(), "{topology}: connect fails fast");
    }
    let bad = RedisConfig { url: "redis://127.0.0.1:notaport".into(), ..standalone.clone() };
    assert!(matches!(switchboard_redis::connect_in_background(bad).await, Err(Error::InvalidArgument(_))));

    let engine = switchboard_redis::connect_in_background(standalone).await.expect("built without redis");
    let sb = Switchboard::new(engine, SwitchboardConfig::default()).expect("facade");
    sb.start().expect("the node starts without redis");
    let engine = sb.engine();
    assert!(matches!(some_call(engine).await, Err(Error::Unavailable(_))));
    assert!(!engine.health.connected());
    assert!(!engine.broker.connected());

    let _server = Server::start_on(port, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while some_call(engine).await.is_err() || !engine.broker.connected() {
        assert!(Instant::now() < deadline, "the engine did not connect after redis came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(engine.health.connected());
    assert!(engine.health.ping().await.is_ok());
    sb.shutdown(Duration::from_secs(5)).await;
}
