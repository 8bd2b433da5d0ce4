//! Failover: a Redis engine keeps serving, commands and live delivery alike, after the master it
//! talks to is killed, under Sentinel and on a Cluster (where live delivery is sharded pub/sub,
//! each channel subscribed on its own shard). Each test starts its own deployment.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_conformance::harness::redis_engine_on;
use switchboard_conformance::{RedisCluster, RedisSentinel, RedisServer, TestEngine};
use switchboard_core::{Backoff, ChannelName, Due, Error, HubEvent, JobId, JobType, NewJob, NewPublication, QueueName};
use switchboard_redis::RedisConfig;

/// Longest wait for a failover and the engine following it.
const FAILOVER: Duration = Duration::from_secs(40);

fn event(n: u64) -> NewPublication {
    NewPublication::new(json!({"type": "test.event", "data": {"n": n}}))
}

/// `field:value` from an `INFO` reply.
fn info_field(info: &str, field: &str) -> Option<u64> {
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).and_then(|v| v.trim().parse().ok())
}

/// Waits until `replica` has received everything `master` wrote, so killing the master loses
/// nothing (replication is asynchronous).
fn wait_replicated(master: &RedisServer, replica: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let written = info_field(&master.cli(&["info", "replication"]), "master_repl_offset");
        let received = info_field(&replica.cli(&["info", "replication"]), "slave_repl_offset");
        if written.is_some() && received >= written {
            return;
        }
        assert!(Instant::now() < deadline, "the replica did not catch up: {received:?} < {written:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After a kill: publishes on `ch` until a publication succeeds again, then until one made
/// since then reaches the hub subscriber `sub`; returns the time until commands worked and
/// whether a gap was reported meanwhile.
async fn serves_again(
    t: &TestEngine,
    ch: &ChannelName,
    sub: &mut switchboard_core::HubSubscription,
    killed: Instant,
) -> (Duration, bool) {
    let mut n = 100;
    let commands_back = loop {
        n += 1;
        if t.sb.streams().publish(ch, event(n)).await.is_ok() {
            break killed.elapsed();
        }
        assert!(killed.elapsed() < FAILOVER, "publishing did not work again within {FAILOVER:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let since = n;
    let mut gap = false;
    loop {
        // Publications made while the subscription was being restored are missed (and
        // reported as a gap); keep publishing until one is delivered live.
        while let Some(event) = sub.try_recv() {
            match event {
                HubEvent::Gap => gap = true,
                HubEvent::Publication(m) if m.publication.data["data"]["n"].as_u64() >= Some(since) => {
                    return (commands_back, gap);
                }
                HubEvent::Publication(_) => {}
                HubEvent::Lagged => panic!("the test subscriber lagged"),
            }
        }
        assert!(killed.elapsed() < FAILOVER, "live delivery did not resume within {FAILOVER:?}");
        n += 1;
        let _ = t.sb.streams().publish(ch, event(n)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_moves_commands_and_pubsub_to_the_new_master() {
    let deployment = RedisSentinel::start();
    let config = RedisConfig::default().with_sentinels(deployment.addresses(), RedisSentinel::MASTER);
    let t = redis_engine_on(config, "sentinel-failover").await;
    // The node runs the broker and the Sentinel watch.
    t.start();
    let ch = ChannelName::new("chat:failover").unwrap();
    let mut sub = t.sb.hub().subscribe(&ch).await.unwrap();
    let first = t.sb.streams().publish(&ch, event(1)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(HubEvent::Publication(m))) => assert_eq!(m.publication.offset, first.offset),
        other => panic!("expected the first publication, got {other:?}"),
    }
    wait_replicated(&deployment.master, &deployment.replica);

    let old = deployment.master.port();
    deployment.master.kill_now();
    let killed = Instant::now();
    let (commands_back, gap) = serves_again(&t, &ch, &mut sub, killed).await;
    println!("sentinel: commands served again {} ms after SIGKILL of the master", commands_back.as_millis());
    assert!(gap, "the missed publications were reported as a gap");
    let now_master = deployment.current_master_port();
    assert_eq!(now_master, Some(deployment.replica.port()), "the replica was promoted (old master {old})");
    // The publication acknowledged before the kill survived (it had reached the replica), and
    // offsets go on from it in the same epoch.
    let history = t.sb.streams().history(&ch, 1000).await.unwrap();
    assert_eq!(history.publications.first().map(|p| p.offset), Some(first.offset));
    assert_eq!(history.position.epoch, first.epoch);
    let offsets: Vec<u64> = history.publications.iter().map(|p| p.offset).collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "no hole in the stream: {offsets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_keeps_serving_the_killed_masters_slots() {
    let cluster = RedisCluster::start(3, 1);
    let t = redis_engine_on(RedisConfig::default().with_cluster_nodes(cluster.seeds()), "cluster-failover").await;
    // The node runs the broker and the Sentinel watch.
    t.start();
    let ch = ChannelName::new("chat:failover").unwrap();
    let mut sub = t.sb.hub().subscribe(&ch).await.unwrap();
    let first = t.sb.streams().publish(&ch, event(1)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(HubEvent::Publication(m))) => assert_eq!(m.publication.offset, first.offset),
        other => panic!("expected the first publication, got {other:?}"),
    }
    // The master holding the channel's stream, and its replica.
    let key = format!("{}st:{{{ch}}}:m", t.engine.health.info().key_prefix);
    let slot: u16 = cluster.nodes[0].cli(&["cluster", "keyslot", &key]).trim().parse().unwrap();
    let owner = cluster.master_of(slot);
    let replica = cluster.replica_of(owner);
    wait_replicated(&cluster.nodes[owner], &cluster.nodes[replica]);

    cluster.nodes[owner].kill_now();
    let killed = Instant::now();
    let (commands_back, gap) = serves_again(&t, &ch, &mut sub, killed).await;
    println!("cluster: the killed master's slots served again {} ms after SIGKILL", commands_back.as_millis());
    let history = t.sb.streams().history(&ch, 1000).await.unwrap();
    assert_eq!(history.publications.first().map(|p| p.offset), Some(first.offset));
    assert_eq!(history.position.epoch, first.epoch);
    let offsets: Vec<u64> = history.publications.iter().map(|p| p.offset).collect();
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "no hole in the stream: {offsets:?}");
    // The channel was subscribed on the killed shard (sharded pub/sub): the publications made
    // meanwhile were missed, and that was reported.
    assert!(gap, "the missed publications were reported as a gap");
}

fn job(id: &str) -> NewJob {
    NewJob {
        id: JobId::new(id).unwrap(),
        queue: QueueName::new("failover").unwrap(),
        job_type: JobType::new("test.job").unwrap(),
        payload: br#"{"n":1}"#.to_vec(),
        priority: 0,
        due: Due::Now,
        max_attempts: 3,
        backoff: Backoff::Fixed { delay_ms: 60_000 },
        lease: Duration::from_secs(30),
        unique_key: None,
    }
}

/// With `wait_replicas = 1` an enqueue is acknowledged only once the replica has it, so every
/// acknowledged enqueue survives SIGKILL of the master, even while enqueues run during the kill.
/// With no replica left the enqueues fail (503) instead of being acknowledged unprotected, and
/// work again once a replica is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_wait_replicas_keeps_every_acknowledged_enqueue() {
    let deployment = RedisSentinel::start();
    let config = RedisConfig {
        wait_replicas: 1,
        ..RedisConfig::default().with_sentinels(deployment.addresses(), RedisSentinel::MASTER)
    };
    let t = redis_engine_on(config, "sentinel-wait").await;
    // The node runs the broker and the Sentinel watch.
    t.start();
    let started = Instant::now();
    t.engine.jobs.enqueue(&[job("first")]).await.unwrap();
    println!("sentinel: one enqueue confirmed by the replica took {} ms", started.elapsed().as_millis());
    let jobs = t.engine.jobs.clone();
    let enqueuer = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        let mut refused_after_kill = 0;
        for n in 0..100_000 {
            let id = format!("j-{n}");
            match jobs.enqueue(&[job(&id)]).await {
                Ok(_) => acknowledged.push(id),
                Err(Error::Unavailable(why)) => {
                    if refused_after_kill == 0 {
                        println!("first refusal after {} acknowledged: {why}", acknowledged.len());
                    }
                    refused_after_kill += 1;
                    if refused_after_kill > 20 {
                        return acknowledged;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("enqueue: {e}"),
            }
        }
        acknowledged
    });
    // Let some enqueues through, then kill the master while they run.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old_port = deployment.master.port();
    deployment.master.kill_now();
    let acknowledged = enqueuer.await.unwrap();
    assert!(acknowledged.len() >= 5, "enqueues ran before the kill: {}", acknowledged.len());

    // Once the replica is promoted, with no replica of its own, enqueues are refused...
    let killed = Instant::now();
    let refused = loop {
        match t.engine.jobs.enqueue(&[job("after-kill")]).await {
            Err(Error::Unavailable(why)) if why.contains("replicas are online") => break why,
            Err(Error::Unavailable(_)) => {}
            other => panic!("expected a refusal for want of a replica, got {other:?}"),
        }
        assert!(killed.elapsed() < FAILOVER, "the failover did not complete within {FAILOVER:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("sentinel: refused without a replica: {refused}");
    // ...and every acknowledged one is there.
    for id in &acknowledged {
        let found = t.engine.jobs.get(&JobId::new(id).unwrap()).await.unwrap();
        assert!(found.is_some(), "acknowledged job {id} was lost in the failover");
    }
    println!("sentinel: {} acknowledged enqueues, all kept", acknowledged.len());

    // A replica back (the old master's port, following the new master): enqueues work again.
    let new_master = deployment.current_master_port().expect("a master");
    let _replica = RedisServer::start_with(old_port, &["--replicaof", "127.0.0.1", &new_master.to_string()]);
    let back = Instant::now();
    loop {
        if t.engine.jobs.enqueue(&[job("with-replica")]).await.is_ok() {
            break;
        }
        assert!(back.elapsed() < FAILOVER, "enqueues did not work again with a replica back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A failover the Sentinels carry out on request (`SENTINEL FAILOVER`, no connection lost): the
/// engine follows the `+switch-master` event (or, failing that, the old master's `READONLY`
/// answers), so once the old master has turned replica writes go to the new master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_requested_failover_is_followed() {
    let deployment = RedisSentinel::start();
    let config = RedisConfig::default().with_sentinels(deployment.addresses(), RedisSentinel::MASTER);
    let t = redis_engine_on(config, "sentinel-switch").await;
    // The node runs the broker and the Sentinel watch.
    t.start();
    let ch = ChannelName::new("chat:switch").unwrap();
    let first = t.sb.streams().publish(&ch, event(1)).await.unwrap();
    wait_replicated(&deployment.master, &deployment.replica);
    let reply = deployment.sentinels[0].cli(&["sentinel", "failover", RedisSentinel::MASTER]);
    assert!(reply.contains("OK"), "SENTINEL FAILOVER: {reply}");
    let started = Instant::now();
    // The old master drops its clients while it is demoted: a refused `ROLE` is asked again.
    while !deployment.master.try_cli(&["role"]).is_ok_and(|role| role.starts_with("slave")) {
        assert!(started.elapsed() < FAILOVER, "the old master was not turned replica within {FAILOVER:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let demoted = Instant::now();
    let mut refusals = 0;
    let second = loop {
        match t.sb.streams().publish(&ch, event(2)).await {
            Ok(position) => break position,
            Err(_) => refusals += 1,
        }
        assert!(demoted.elapsed() < FAILOVER, "writes did not reach the new master within {FAILOVER:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "sentinel: writes on the new master {} ms after the old one turned replica ({refusals} refused meanwhile)",
        demoted.elapsed().as_millis()
    );
    assert_eq!(second.offset, first.offset + 1);
    // The write is on the new master.
    let key = format!("{}st:{{{ch}}}:x", t.engine.health.info().key_prefix);
    assert_eq!(deployment.replica.cli(&["xlen", &key]).trim(), "2", "both publications on the new master");
    assert!(deployment.replica.cli(&["role"]).starts_with("master"));
}

/// On a Cluster live delivery uses sharded pub/sub: a channel with a subscriber is subscribed
/// with `SSUBSCRIBE` on the shard holding its stream, and on no node with a plain `SUBSCRIBE`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_channels_are_subscribed_on_their_own_shard() {
    let cluster = RedisCluster::start(3, 0);
    let t = redis_engine_on(RedisConfig::default().with_cluster_nodes(cluster.seeds()), "cluster-sharded").await;
    t.start();
    let prefix = t.engine.health.info().key_prefix;
    let channels: Vec<ChannelName> = (0..6).map(|i| ChannelName::new(format!("chat:shard-{i}")).unwrap()).collect();
    let mut subs = Vec::new();
    for ch in &channels {
        subs.push(t.sb.hub().subscribe(ch).await.unwrap());
    }
    let mut owners = std::collections::BTreeSet::new();
    for (ch, sub) in channels.iter().zip(&mut subs) {
        let published = t.sb.streams().publish(ch, event(1)).await.unwrap();
        match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
            Ok(Some(HubEvent::Publication(m))) => assert_eq!(m.publication.offset, published.offset),
            other => panic!("expected the publication on {ch}, got {other:?}"),
        }
        let name = format!("{prefix}ps:{{{ch}}}");
        let slot: u16 = cluster.nodes[0].cli(&["cluster", "keyslot", &name]).trim().parse().unwrap();
        let owner = cluster.master_of(slot);
        owners.insert(owner);
        for (i, node) in cluster.nodes.iter().enumerate() {
            let sharded = node.cli(&["pubsub", "shardnumsub", &name]);
            let plain = node.cli(&["pubsub", "numsub", &name]);
            let count = |reply: &str| reply.lines().nth(1).and_then(|l| l.trim().parse::<u64>().ok()).unwrap_or(0);
            assert_eq!(count(&sharded), u64::from(i == owner), "{name} on node {i}: {sharded}");
            assert_eq!(count(&plain), 0, "{name} on node {i}: no plain subscription");
        }
    }
    assert!(owners.len() > 1, "the channels spread over several shards: {owners:?}");
}
