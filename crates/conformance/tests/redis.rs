//! The conformance suite on a real `redis-server` started by the harness on a free port.

switchboard_conformance::suite!(switchboard_conformance::redis_engine);
