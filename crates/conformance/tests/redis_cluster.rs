//! The conformance suite on a 3-master Redis Cluster started by the harness on free ports.

switchboard_conformance::suite!(switchboard_conformance::redis_cluster_engine);
