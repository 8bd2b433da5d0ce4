//! A facade shared between tokio runtimes: its loops run on the runtime its node was started in,
//! so a subscription made from another runtime receives; once that runtime is gone, calls that
//! need the loops say so instead of waiting for deliveries that never come.

use std::time::Duration;

use serde_json::json;
use switchboard_core::{ChannelName, Error, HubEvent, NewPublication, Switchboard, SwitchboardConfig};
use switchboard_memory::MemoryEngineExt;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

#[test]
fn a_facade_serves_every_runtime_while_its_node_runs_and_says_when_it_stopped() {
    let sb = Switchboard::memory(SwitchboardConfig::default()).expect("facade");
    // The node's runtime, driven on its own thread.
    let node_runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    node_runtime.block_on(async { sb.start() }).expect("start");

    let channel = ChannelName::new("chat:across").unwrap();
    for round in 0..2 {
        // A fresh runtime each round, as each `#[tokio::test]` has its own.
        runtime().block_on(async {
            let mut live = sb.hub().subscribe(&channel).await.expect("subscribe");
            sb.streams().publish(&channel, NewPublication::new(json!({"type": "t", "data": round}))).await.unwrap();
            let event = tokio::time::timeout(Duration::from_secs(5), live.recv()).await.expect("delivered in time");
            assert!(matches!(event, Some(HubEvent::Publication(m)) if m.publication.data["data"] == round));
        });
    }

    drop(node_runtime);
    runtime().block_on(async {
        let Err(refused) = sb.hub().subscribe(&channel).await else { panic!("the node's loops are gone") };
        assert!(matches!(&refused, Error::Unavailable(m) if m.contains("runtime")), "{refused}");
    });
}
