//! The conformance suite on the memory engine.

switchboard_conformance::suite!(switchboard_conformance::memory_engine);
