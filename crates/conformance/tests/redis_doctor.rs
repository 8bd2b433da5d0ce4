//! `switchboard_redis::diagnose` (behind `switchboard doctor`) reports the topology of a
//! harness-started Cluster and Sentinel deployment, then checks each master, as it checks a
//! standalone server.

use switchboard_conformance::{RedisCluster, RedisSentinel};
use switchboard_redis::{CheckLevel, RedisConfig, diagnose};

fn lines(report: &[switchboard_redis::Check]) -> String {
    report.iter().map(|c| format!("{} {}", c.level.label(), c.message)).collect::<Vec<_>>().join("\n")
}

#[tokio::test]
async fn doctor_reports_cluster_nodes_slot_coverage_and_each_master() {
    let cluster = RedisCluster::start(3, 0);
    let report = diagnose(RedisConfig::default().with_cluster_nodes(cluster.seeds())).await;
    let text = lines(&report);
    let coverage = report.iter().find(|c| c.message.contains("slots covered")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(coverage.level, CheckLevel::Ok, "{text}");
    assert!(coverage.message.contains("3 masters serving slots, 16384 of 16384 slots covered, 0 failing"), "{text}");
    let without_replica = report.iter().filter(|c| c.message.contains("0 replica(s)")).collect::<Vec<_>>();
    assert_eq!(without_replica.len(), 3, "{text}");
    assert!(without_replica.iter().all(|c| c.level == CheckLevel::Warn), "{text}");
    for seed in cluster.seeds() {
        let version = format!("redis {seed}: version");
        assert!(report.iter().any(|c| c.message.starts_with(&version) && c.level == CheckLevel::Ok), "{text}");
        let policy = format!("redis {seed}: maxmemory-policy");
        assert!(report.iter().any(|c| c.message.starts_with(&policy)), "{text}");
    }
    assert!(report.iter().all(|c| c.level != CheckLevel::Error), "{text}");
}

#[tokio::test]
async fn doctor_reports_the_sentinel_master_and_its_replicas() {
    let deployment = RedisSentinel::start();
    let config = RedisConfig::default().with_sentinels(deployment.addresses(), RedisSentinel::MASTER);
    let report = diagnose(config).await;
    let text = lines(&report);
    let master = format!("127.0.0.1:{}", deployment.master.port());
    let topology =
        report.iter().find(|c| c.message.contains("redis: sentinel: master")).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(topology.level, CheckLevel::Ok, "{text}");
    assert!(topology.message.contains(&master) && topology.message.contains("1 replica(s), 3 Sentinel(s)"), "{text}");
    assert!(report.iter().any(|c| c.message.starts_with(&format!("redis {master}: version"))), "{text}");
    assert!(report.iter().all(|c| c.level != CheckLevel::Error), "{text}");

    let wrong = RedisConfig::default().with_sentinels(deployment.addresses(), "no-such-master");
    let report = diagnose(wrong).await;
    assert!(
        report.iter().any(|c| c.level == CheckLevel::Error && c.message.contains("no-such-master")),
        "{}",
        lines(&report)
    );
}

#[tokio::test]
async fn doctor_checks_a_standalone_server() {
    let server = switchboard_conformance::RedisServer::start();
    let report = diagnose(RedisConfig::new(server.url())).await;
    let text = lines(&report);
    assert!(report.iter().any(|c| c.level == CheckLevel::Ok && c.message.starts_with("redis: version")), "{text}");
    assert!(
        report
            .iter()
            .any(|c| c.level == CheckLevel::Warn
                && c.message == "redis: persistence is off: every restart loses all state"),
        "{text}"
    );
    drop(server);
    let report =
        diagnose(RedisConfig::new(format!("redis://127.0.0.1:{}", switchboard_conformance::harness::free_port())))
            .await;
    assert!(
        report.iter().any(|c| c.level == CheckLevel::Error && c.message.starts_with("redis: cannot connect")),
        "{}",
        lines(&report)
    );
}
