//! The conformance suite on the durable memory engine (a data dir per case).

switchboard_conformance::suite!(switchboard_conformance::durable_engine);
