//! Failover under a running server: one `switchboard serve` with `redis.wait_replicas = 1` on a
//! Sentinel deployment (master, replica, three Sentinels) and on a 3-master Cluster with a
//! replica per master, while WebSocket clients are subscribed to several recoverable channels
//! and enqueues and publications run through HTTP. The master (on the Cluster: the master that
//! holds the jobs and some of the channels) is SIGKILLed; then
//! - the server serves again without a restart, within 5 s of the promotion being visible in
//!   Redis;
//! - every client stays connected or reconnects with recovery, and ends up with every
//!   acknowledged publication of each of its channels exactly once, in order, with no hole in
//!   the offsets and no offset handed out twice;
//! - once a replica is back (the killed node restarted), every acknowledged enqueue is fetched
//!   and completed: with `wait_replicas = 1` none is lost.
//!
//! Run with `cargo nextest run -p switchboard --test redis_failover` (`FAILOVER_LOG=<filter>` sets
//! the server's `RUST_LOG`, e.g. `warn,switchboard_redis=debug`).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Node, TOKEN_SECRET, client, client_token};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use switchboard_conformance::{RedisCluster, RedisSentinel, RedisServer, eventually};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Longest wait for the promotion to show in Redis (a correctness bound, not a benchmark).
const PROMOTION: Duration = Duration::from_secs(30);
/// How long after the promotion the server must serve again.
const SERVES_AFTER_PROMOTION: Duration = Duration::from_secs(5);
/// Clients, one per user; each is subscribed to its personal channel and to every chat.
const USERS: usize = 4;
/// Chat channels (conversations of every user).
const CHATS: usize = 4;

/// Where the test kills and restores the master.
enum Topology {
    Sentinel(RedisSentinel),
    Cluster {
        cluster: RedisCluster,
        /// The master to kill (index in `cluster.nodes`).
        victim: usize,
        /// Its replica, promoted by the failover.
        replica: usize,
    },
}

impl Topology {
    fn victim(&self) -> &RedisServer {
        match self {
            Topology::Sentinel(d) => &d.master,
            Topology::Cluster { cluster, victim, .. } => &cluster.nodes[*victim],
        }
    }

    fn replica(&self) -> &RedisServer {
        match self {
            Topology::Sentinel(d) => &d.replica,
            Topology::Cluster { cluster, replica, .. } => &cluster.nodes[*replica],
        }
    }

    /// Whether the failover is visible in Redis: under Sentinel, the Sentinels name the replica
    /// as the master; on the Cluster, the replica has taken the victim's slots.
    fn promoted(&self) -> bool {
        match self {
            Topology::Sentinel(d) => d.current_master_port() == Some(d.replica.port()),
            Topology::Cluster { .. } => self.replica().cli(&["role"]).starts_with("master"),
        }
    }

    /// Starts the killed node again as a replica of the promoted one, so writes confirmed by a
    /// replica (`wait_replicas = 1`) can succeed again.
    fn restore(&mut self) {
        match self {
            Topology::Sentinel(d) => {
                let port = d.master.port();
                let new_master = d.replica.port().to_string();
                d.master = RedisServer::start_with(port, &["--replicaof", "127.0.0.1", &new_master]);
            }
            // Its cluster config file still names the cluster: it rejoins as a replica of the
            // node that took its slots.
            Topology::Cluster { cluster, victim, .. } => cluster.restart(*victim),
        }
    }
}

/// What one WebSocket client saw, shared with the test while it runs.
#[derive(Debug, Default)]
struct ClientLog {
    /// Per channel: every publication received (live, recovered or caught up), `(offset, n)` in
    /// arrival order; `n` is the load's sequence number in the data.
    received: BTreeMap<String, Vec<(u64, Option<u64>)>>,
    /// Per channel: `(epoch, offset)` of the first subscription (the stream's top then).
    start: BTreeMap<String, (String, u64)>,
    /// Successful connects (1 without any reconnect).
    connects: u32,
    /// Subscriptions ended by the server and made again with recovery.
    resubscribes: u32,
    /// Anything that breaks the contract (a recovery that did not recover, an epoch change).
    problems: Vec<String>,
}

impl ClientLog {
    /// The position to recover `channel` from: the last offset received, else the start.
    fn position(&self, channel: &str) -> Option<(String, u64)> {
        let (epoch, start) = self.start.get(channel)?;
        let last = self.received.get(channel).and_then(|r| r.last()).map_or(*start, |p| p.0);
        Some((epoch.clone(), last))
    }

    fn last_offset(&self, channel: &str) -> u64 {
        self.position(channel).map_or(0, |p| p.1)
    }

    fn record(&mut self, channel: &str, publication: &Value) {
        let offset = publication["offset"].as_u64().unwrap_or(0);
        let n = publication["data"]["data"]["n"].as_u64();
        self.received.entry(channel.to_owned()).or_default().push((offset, n));
    }

    /// A subscribe result (or the personal channel's entry of a connect result).
    fn subscribed(&mut self, channel: &str, result: &Value) {
        let epoch = result["epoch"].as_str().unwrap_or_default().to_owned();
        let offset = result["offset"].as_u64().unwrap_or(0);
        match self.start.get(channel) {
            None => {
                self.start.insert(channel.to_owned(), (epoch, offset));
            }
            Some((known, _)) if *known != epoch => {
                self.problems.push(format!("{channel}: epoch changed from {known} to {epoch}"));
            }
            Some(_) => {}
        }
        if result["was_recovering"] == json!(true) && result["recovered"] != json!(true) {
            self.problems.push(format!("{channel}: not recovered: {result}"));
        }
        for p in result["publications"].as_array().into_iter().flatten() {
            self.record(channel, p);
        }
    }
}

/// A raw Centrifugo-JSON client for `user`, subscribed to its personal channel (server-side) and
/// to `chats`, that reconnects and resubscribes with recovery whenever the server drops it,
/// until `stop` turns true.
async fn run_client(
    ws_url: String,
    user: String,
    chats: Vec<String>,
    log: Arc<Mutex<ClientLog>>,
    mut stop: watch::Receiver<bool>,
) {
    let token = client_token(&user, "dev-1", TOKEN_SECRET);
    let personal = format!("user:{user}");
    while !*stop.borrow() {
        let Ok((ws, _)) = tokio_tungstenite::connect_async(&ws_url).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        let mut subs = json!({});
        if let Some((epoch, offset)) = log.lock().unwrap().position(&personal) {
            subs[&personal] = json!({"recover": true, "epoch": epoch, "offset": offset});
        }
        let connect = json!({"id": 1, "connect": {"token": token, "subs": subs}});
        if tx.send(Message::text(connect.to_string())).await.is_err() {
            continue;
        }
        // Commands awaiting a reply (id -> channel), channels to (re)subscribe and when.
        let mut pending: HashMap<u64, String> = HashMap::new();
        let mut due: BTreeMap<String, tokio::time::Instant> = BTreeMap::new();
        let mut next_id = 2;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        'session: loop {
            tokio::select! {
                _ = stop.changed() => break 'session,
                _ = tick.tick() => {
                    let now = tokio::time::Instant::now();
                    let ready: Vec<String> = due.iter().filter(|(_, at)| **at <= now).map(|(c, _)| c.clone()).collect();
                    for channel in ready {
                        due.remove(&channel);
                        let mut subscribe = json!({"channel": channel});
                        if let Some((epoch, offset)) = log.lock().unwrap().position(&channel) {
                            subscribe = json!({"channel": channel, "recover": true, "epoch": epoch, "offset": offset});
                        }
                        let command = json!({"id": next_id, "subscribe": subscribe});
                        pending.insert(next_id, channel);
                        next_id += 1;
                        if tx.send(Message::text(command.to_string())).await.is_err() {
                            break 'session;
                        }
                    }
                }
                frame = rx.next() => {
                    let Some(Ok(frame)) = frame else { break 'session };
                    let text = match frame {
                        Message::Text(text) => text,
                        Message::Close(_) => break 'session,
                        _ => continue,
                    };
                    for line in text.as_str().split('\n').filter(|l| !l.trim().is_empty()) {
                        let v: Value = serde_json::from_str(line).expect("a JSON reply");
                        if v == json!({}) {
                            if tx.send(Message::text("{}")).await.is_err() {
                                break 'session;
                            }
                        } else if v["id"] == json!(1) {
                            // Refused while the engine is unavailable: the server closes the
                            // socket (or answers an error); connect again shortly.
                            if v.get("connect").is_none() {
                                break 'session;
                            }
                            let mut log = log.lock().unwrap();
                            log.connects += 1;
                            log.subscribed(&personal, &v["connect"]["subs"][&personal]);
                            for chat in &chats {
                                due.insert(chat.clone(), tokio::time::Instant::now());
                            }
                        } else if let Some(channel) = v["id"].as_u64().and_then(|id| pending.remove(&id)) {
                            match v.get("subscribe") {
                                Some(result) => log.lock().unwrap().subscribed(&channel, result),
                                None if v["error"]["code"] == json!(105) => {
                                    log.lock().unwrap().problems.push(format!("{channel}: still subscribed: {v}"));
                                }
                                // Unavailable meanwhile: try again.
                                None => {
                                    due.insert(channel, tokio::time::Instant::now() + Duration::from_millis(200));
                                }
                            }
                        } else if let Some(push) = v.get("push") {
                            let channel = push["channel"].as_str().unwrap_or_default().to_owned();
                            if let Some(publication) = push.get("pub") {
                                log.lock().unwrap().record(&channel, publication);
                            } else if push.get("unsubscribe").is_some() {
                                // `2500 insufficient state`: subscribe again and recover.
                                let code = push["unsubscribe"]["code"].as_u64();
                                if code != Some(2500) {
                                    log.lock().unwrap().problems.push(format!("{channel}: unsubscribed: {v}"));
                                }
                                log.lock().unwrap().resubscribes += 1;
                                due.insert(channel, tokio::time::Instant::now() + Duration::from_millis(100));
                            }
                        }
                    }
                }
            }
        }
        let _ = tx.close().await;
        if !*stop.borrow() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Publications and enqueues the server acknowledged.
#[derive(Debug, Default)]
struct Acknowledged {
    /// Per channel: `(offset, n)` of each acknowledged publication.
    publications: BTreeMap<String, Vec<(u64, u64)>>,
    /// Ids of the acknowledged enqueues.
    jobs: Vec<String>,
    /// Calls refused (503 or a transport error) meanwhile.
    refused_publications: u64,
    refused_enqueues: u64,
}

/// Publishes on `channels` in turn until `stop`, recording what was acknowledged.
async fn publish_load(
    node: Arc<Node>,
    channels: Vec<String>,
    acked: Arc<Mutex<Acknowledged>>,
    stop: watch::Receiver<bool>,
) {
    let http = client();
    let mut n = 0u64;
    while !*stop.borrow() {
        n += 1;
        let channel = &channels[n as usize % channels.len()];
        let body = json!({"channel": channel, "data": {"type": "test.load", "data": {"n": n}}});
        let answer = http.post(node.api("/publish")).json(&body).send().await;
        match answer {
            Ok(r) if r.status() == 200 => {
                let position: Value = r.json().await.expect("a position");
                let offset = position["offset"].as_u64().expect("offset");
                acked.lock().unwrap().publications.entry(channel.clone()).or_default().push((offset, n));
            }
            Ok(r) if r.status() == 503 => acked.lock().unwrap().refused_publications += 1,
            Err(_) => acked.lock().unwrap().refused_publications += 1,
            Ok(r) => panic!("publish answered {}: {}", r.status(), r.text().await.unwrap_or_default()),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Enqueues into `queues` in turn until `stop`, recording the acknowledged ids.
async fn enqueue_load(
    node: Arc<Node>,
    queues: Vec<String>,
    acked: Arc<Mutex<Acknowledged>>,
    stop: watch::Receiver<bool>,
) {
    let http = client();
    let mut n = 0u64;
    while !*stop.borrow() {
        n += 1;
        let queue = &queues[n as usize % queues.len()];
        let id = format!("job-{n}");
        let body = json!({"type": "test.job", "payload": {"n": n}, "job_id": id});
        let answer = http.post(node.api(&format!("/queues/{queue}/jobs"))).json(&body).send().await;
        match answer {
            Ok(r) if r.status() == 201 => acked.lock().unwrap().jobs.push(id),
            Ok(r) if r.status() == 503 => acked.lock().unwrap().refused_enqueues += 1,
            Err(_) => acked.lock().unwrap().refused_enqueues += 1,
            Ok(r) => panic!("enqueue answered {}: {}", r.status(), r.text().await.unwrap_or_default()),
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A server with the deployment settings `engine` (`REDIS_*`) and `wait_replicas = 1`.
fn start_node(engine: Vec<(&'static str, String)>, prefix: &str) -> Node {
    let mut env = engine;
    env.extend([
        ("SWITCHBOARD_REDIS__KEY_PREFIX", prefix.to_owned()),
        ("SWITCHBOARD_REDIS__WAIT_REPLICAS", "1".to_owned()),
        ("SWITCHBOARD_API_KEYS", format!("test:{}", common::API_KEY)),
        ("SWITCHBOARD_TOKEN_SECRET", TOKEN_SECRET.to_owned()),
    ]);
    if let Ok(filter) = std::env::var("FAILOVER_LOG") {
        env.push(("RUST_LOG", filter));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Node::start(&env)
}

/// The scenario both tests run once `node` serves on `topology`: `users` (each a client) and
/// `chats` (every user a member), jobs enqueued into `queues`; `probe` is a channel (and
/// `probe_job` an acknowledged job) whose keys live on the master to be killed.
async fn kill_the_master_under_load(
    topology: Topology,
    node: Node,
    users: Vec<String>,
    chats: Vec<String>,
    queues: Vec<String>,
    probe: String,
    probe_job: String,
) {
    let label = match topology {
        Topology::Sentinel(_) => "sentinel",
        Topology::Cluster { .. } => "cluster",
    };
    let node = Arc::new(node);
    let http = client();
    for chat in &chats {
        let id = chat.strip_prefix("chat:").expect("a chat channel");
        let members = json!({"members": users});
        let r = http.put(node.api(&format!("/conversations/{id}"))).json(&members).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    }

    // The clients, each subscribed to its personal channel and every chat.
    let (stop_clients, clients_stop) = watch::channel(false);
    let mut clients = Vec::new();
    for user in &users {
        let log = Arc::new(Mutex::new(ClientLog::default()));
        let task =
            tokio::spawn(run_client(node.ws_url(), user.clone(), chats.clone(), log.clone(), clients_stop.clone()));
        clients.push((user.clone(), log, task));
    }
    eventually(Duration::from_secs(15), "every client connected and subscribed", || async {
        clients.iter().all(|(_, log, _)| log.lock().unwrap().start.len() == 1 + chats.len())
    })
    .await;

    // The load: publications on every channel, enqueues into every queue.
    let channels: Vec<String> = users.iter().map(|u| format!("user:{u}")).chain(chats.iter().cloned()).collect();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    acked.lock().unwrap().jobs.push(probe_job.clone());
    let (stop_load, load_stop) = watch::channel(false);
    let publisher = tokio::spawn(publish_load(node.clone(), channels.clone(), acked.clone(), load_stop.clone()));
    let enqueuer = tokio::spawn(enqueue_load(node.clone(), queues.clone(), acked.clone(), load_stop.clone()));
    eventually(Duration::from_secs(15), "publications and enqueues acknowledged before the kill", || async {
        let a = acked.lock().unwrap();
        a.publications.values().map(Vec::len).sum::<usize>() >= 50 && a.jobs.len() >= 50
    })
    .await;

    // SIGKILL the master; the load goes on.
    let (before, before_per_channel) = {
        let a = acked.lock().unwrap();
        let per_channel: BTreeMap<String, usize> = a.publications.iter().map(|(c, l)| (c.clone(), l.len())).collect();
        ((a.publications.values().map(Vec::len).sum::<usize>(), a.jobs.len()), per_channel)
    };
    topology.victim().kill_now();
    let killed = Instant::now();
    // Gone for good (the signal is delivered asynchronously): from now on it refuses connections.
    let port = topology.victim().port();
    eventually(Duration::from_secs(5), "the killed master refuses connections", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err()
    })
    .await;
    let topology = Arc::new(Mutex::new(topology));
    let promoted = {
        let topology = topology.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                if topology.lock().unwrap().promoted() {
                    return Instant::now();
                }
                assert!(killed.elapsed() < PROMOTION, "no promotion within {PROMOTION:?} of the kill");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // Served again: a publication on a channel of the killed master and a read of a job there.
    let mut refused_probes = 0;
    let served = loop {
        let publish = json!({"channel": probe, "data": {"type": "test.probe", "data": {}}});
        let published = http.post(node.api("/publish")).json(&publish).send().await.is_ok_and(|r| r.status() == 200);
        let read = http.get(node.api(&format!("/jobs/{probe_job}"))).send().await.is_ok_and(|r| r.status() == 200);
        if published && read {
            break Instant::now();
        }
        refused_probes += 1;
        assert!(killed.elapsed() < PROMOTION + SERVES_AFTER_PROMOTION, "the server did not serve again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let promoted = promoted.await.expect("the promotion watch");
    assert!(refused_probes > 0, "the outage was seen: the first probe after the kill failed");
    let after_promotion = served.saturating_duration_since(promoted);
    println!(
        "{label}: promotion visible {} ms after SIGKILL, the server served again {} ms after SIGKILL ({} ms after the promotion)",
        (promoted - killed).as_millis(),
        (served - killed).as_millis(),
        after_promotion.as_millis()
    );
    assert!(
        after_promotion <= SERVES_AFTER_PROMOTION,
        "served again {after_promotion:?} after the promotion, over {SERVES_AFTER_PROMOTION:?}"
    );

    // The killed node back as a replica: enqueues confirmed by a replica are acknowledged again.
    let mut topology = Arc::into_inner(topology).expect("the watch is done").into_inner().unwrap();
    // The promoted master would wait 5 s (`repl-diskless-sync-delay`) for more replicas before
    // syncing the one that comes back.
    topology.replica().cli(&["config", "set", "repl-diskless-sync-delay", "0"]);
    topology.restore();
    let restored = Instant::now();
    let jobs_then = acked.lock().unwrap().jobs.len();
    eventually(Duration::from_secs(30), "enqueues acknowledged again with a replica back", || async {
        acked.lock().unwrap().jobs.len() > jobs_then + 20
    })
    .await;
    println!("{label}: enqueues acknowledged again {} ms after the replica restarted", restored.elapsed().as_millis());
    let _ = stop_load.send(true);
    publisher.await.expect("the publisher");
    enqueuer.await.expect("the enqueuer");
    let acked = Arc::into_inner(acked).expect("the load is done").into_inner().unwrap();
    let published: usize = acked.publications.values().map(Vec::len).sum();
    println!(
        "{label}: {published} publications acknowledged ({} before the kill, {} refused), {} enqueues ({} before the kill, {} refused)",
        before.0,
        acked.refused_publications,
        acked.jobs.len(),
        before.1,
        acked.refused_enqueues
    );
    assert!(acked.refused_publications > 0, "publications ran during the outage (some were refused)");
    // Every channel, those of the killed master included, had publications after the failover.
    for channel in &channels {
        let after = acked.publications.get(channel).map_or(0, Vec::len);
        let before = before_per_channel.get(channel).copied().unwrap_or(0);
        assert!(after > before, "{channel}: no publication acknowledged after the kill ({before} before)");
    }

    // No offset was handed out twice (a publication acknowledged by the killed master and lost
    // would have its offset reused by the promoted one).
    for (channel, list) in &acked.publications {
        let offsets: Vec<u64> = list.iter().map(|p| p.0).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{channel}: acknowledged offsets not increasing: {offsets:?}");
    }

    // Every client gets every acknowledged publication of its channels.
    let want: BTreeMap<&String, u64> =
        acked.publications.iter().map(|(c, list)| (c, list.last().map_or(0, |p| p.0))).collect();
    let caught_up = |log: &ClientLog, user: &str| {
        want.iter()
            .filter(|(c, _)| c.starts_with("chat:") || **c == &format!("user:{user}"))
            .all(|(c, top)| log.last_offset(c) >= *top)
    };
    eventually(Duration::from_secs(30), "every client received every acknowledged publication", || async {
        clients.iter().all(|(user, log, _)| caught_up(&log.lock().unwrap(), user))
    })
    .await;
    let _ = stop_clients.send(true);
    for (user, log, task) in clients {
        task.await.expect("the client");
        let log = log.lock().unwrap();
        println!(
            "{label}: client {user}: {} connects, {} resubscribes, {} publications",
            log.connects,
            log.resubscribes,
            log.received.values().map(Vec::len).sum::<usize>()
        );
        assert!(log.problems.is_empty(), "client {user}: {:?}", log.problems);
        let personal = format!("user:{user}");
        for channel in chats.iter().chain([&personal]) {
            let (_, start) = log.start[channel].clone();
            let received = log.received.get(channel).cloned().unwrap_or_default();
            let offsets: Vec<u64> = received.iter().map(|p| p.0).collect();
            let expected: Vec<u64> = (start + 1..=start + offsets.len() as u64).collect();
            assert_eq!(offsets, expected, "client {user}, {channel}: in order, exactly once, no hole");
            let by_offset: HashMap<u64, Option<u64>> = received.into_iter().collect();
            for (offset, n) in acked.publications.get(channel).into_iter().flatten() {
                assert_eq!(
                    by_offset.get(offset),
                    Some(&Some(*n)),
                    "client {user}, {channel}: publication {n} at {offset}"
                );
            }
        }
    }

    // Every acknowledged enqueue is there and is processed: fetched and completed. A completion
    // answered 503 (its replica confirmation late) may still have been written, so what is not
    // known completed is looked up by id; a short lease brings back jobs whose completion was
    // not written.
    let mut completed = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fetch = json!({"queues": queues, "max_jobs": 1000, "wait_ms": 0, "lease_ms": 2000});
        let r = http.post(node.api("/queues/fetch")).json(&fetch).send().await.unwrap();
        let jobs = match r.status().as_u16() {
            200 => r.json::<Value>().await.unwrap()["jobs"].as_array().cloned().unwrap_or_default(),
            503 => Vec::new(),
            status => panic!("fetch answered {status}: {}", r.text().await.unwrap_or_default()),
        };
        if !jobs.is_empty() {
            let done: Vec<Value> =
                jobs.iter().map(|j| json!({"job_id": j["id"], "lease_token": j["lease_token"]})).collect();
            let r = http.post(node.api("/jobs/complete")).json(&json!({"jobs": done})).send().await.unwrap();
            if r.status() == 200 {
                let answer: Value = r.json().await.unwrap();
                for job in answer["jobs"].as_array().into_iter().flatten() {
                    assert_eq!(job["status"], "completed", "{job}");
                    assert!(completed.insert(job["job_id"].as_str().unwrap().to_owned()), "{job} completed twice");
                }
            } else {
                assert_eq!(r.status(), 503, "{}", r.text().await.unwrap_or_default());
            }
            continue;
        }
        for id in acked.jobs.iter().filter(|id| !completed.contains(*id)).cloned().collect::<Vec<_>>() {
            let r = http.get(node.api(&format!("/jobs/{id}"))).send().await.unwrap();
            if r.status() == 200 && r.json::<Value>().await.unwrap()["state"] == "completed" {
                completed.insert(id);
            }
        }
        if acked.jobs.iter().all(|id| completed.contains(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let lost: Vec<&String> = acked.jobs.iter().filter(|id| !completed.contains(*id)).collect();
    assert!(lost.is_empty(), "{} acknowledged enqueues lost: {lost:?}", lost.len());
    println!(
        "{label}: {} acknowledged enqueues, every one processed ({} processed)",
        acked.jobs.len(),
        completed.len()
    );
    eventually(Duration::from_secs(10), "ready after the failover", || async {
        http.get(format!("{}/health/ready", node.base)).send().await.is_ok_and(|r| r.status() == 200)
    })
    .await;
    drop(topology);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_master_killed_under_load() {
    let deployment = RedisSentinel::start();
    let engine = vec![
        ("REDIS_SENTINELS", deployment.addresses().join(",")),
        ("REDIS_SENTINEL_MASTER", RedisSentinel::MASTER.to_owned()),
    ];
    let node = start_node(engine, "sbfs:");
    let topology = Topology::Sentinel(deployment);
    let users: Vec<String> = (0..USERS).map(|i| format!("u{i}")).collect();
    let chats: Vec<String> = (0..CHATS).map(|i| format!("chat:c{i}")).collect();
    let queues: Vec<String> = (0..3).map(|i| format!("q{i}")).collect();
    let probe_job = enqueue_probe(&node, &queues[0], "probe-0").await;
    kill_the_master_under_load(topology, node, users, chats, queues, "chat:probe".into(), probe_job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_master_killed_under_load() {
    let cluster = RedisCluster::start(3, 1);
    let node = start_node(vec![("REDIS_CLUSTER_NODES", cluster.seeds().join(","))], "sbfc:");
    let masters: Vec<usize> =
        (0..cluster.nodes.len()).filter(|&i| cluster.nodes[i].cli(&["role"]).starts_with("master")).collect();

    // The jobs of `q0` decide the master to kill: found by where a job's keys are.
    let candidates: Vec<String> = (0..8).map(|i| format!("q{i}")).collect();
    let mut queue_owner = BTreeMap::new();
    for queue in &candidates {
        let id = format!("probe-{queue}");
        enqueue_probe(&node, queue, &id).await;
        let owner = masters
            .iter()
            .copied()
            .find(|&m| !cluster.nodes[m].cli(&["--scan", "--pattern", &format!("*{id}*")]).trim().is_empty())
            .unwrap_or_else(|| panic!("no master holds the keys of job {id}"));
        queue_owner.insert(queue.clone(), owner);
    }
    let victim = queue_owner["q0"];
    let replica = cluster.replica_of(victim);
    // Queues on the victim, and (when jobs spread over shards) one elsewhere.
    let mut queues: Vec<String> = candidates.iter().filter(|q| queue_owner[*q] == victim).take(3).cloned().collect();
    queues.extend(candidates.iter().filter(|q| queue_owner[*q] != victim).take(1).cloned());

    // Channels by the slot of their hash tag (the channel name, docs/REDIS.md): half of them on
    // the victim.
    let on_victim = |channel: &str| {
        let slot: u16 =
            cluster.nodes[masters[0]].cli(&["cluster", "keyslot", &format!("{{{channel}}}")]).trim().parse().unwrap();
        cluster.master_of(slot) == victim
    };
    let pick = |prefix: &str, count: usize| -> Vec<String> {
        let names: Vec<String> = (0..200).map(|i| format!("{prefix}{i}")).collect();
        let channel = |name: &str| if prefix == "u" { format!("user:{name}") } else { format!("chat:{name}") };
        let mut on: Vec<String> = names.iter().filter(|n| on_victim(&channel(n))).take(count / 2).cloned().collect();
        on.extend(names.iter().filter(|n| !on_victim(&channel(n))).take(count - count / 2).cloned());
        on
    };
    let users = pick("u", USERS);
    let chats: Vec<String> = pick("c", CHATS).into_iter().map(|c| format!("chat:{c}")).collect();
    let probe = pick("p", 2).into_iter().next().map(|p| format!("chat:{p}")).expect("a probe channel");
    assert!(on_victim(&probe));
    println!(
        "cluster: killing master {victim} (replica {replica}); users {users:?}, chats {chats:?}, queues {queues:?}"
    );
    let probe_job = format!("probe-{}", queues[0]);
    let topology = Topology::Cluster { cluster, victim, replica };
    kill_the_master_under_load(topology, node, users, chats, queues, probe, probe_job).await;
}

/// Enqueues job `id` into `queue` (retrying while the deployment settles) and returns its id.
async fn enqueue_probe(node: &Node, queue: &str, id: &str) -> String {
    let http = client();
    let body = json!({"type": "test.job", "payload": {}, "job_id": id});
    eventually(Duration::from_secs(15), "the probe job enqueued", || async {
        let r = http.post(node.api(&format!("/queues/{queue}/jobs"))).json(&body).send().await;
        r.is_ok_and(|r| r.status() == 201 || r.status() == 200)
    })
    .await;
    id.to_owned()
}
