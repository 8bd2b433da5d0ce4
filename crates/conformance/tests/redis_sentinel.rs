//! The conformance suite on a master found through three Sentinels, all started by the harness
//! on free ports.

switchboard_conformance::suite!(switchboard_conformance::redis_sentinel_engine);
