//! HTTP API tests: the router over a fresh memory engine, driven with `oneshot`. Every request
//! goes through `common::TestApp::send`, which fails the test on any 5xx.

#![allow(unreachable_pub, missing_docs)]

mod bad_input;
mod cache;
mod common;
mod conversations;
mod devices;
mod disconnect;
mod fuzz;
mod jobs;
mod messages;
mod notifications;
mod numeric_inputs;
mod ops;
mod presence;
mod pubsub;
mod rate_limits;
mod sessions;
mod tokens;
mod unavailable;
