//! `switchboard-bench`: the benchmarks, apart from the production binary. `scripts/bench*` run
//! them (each script is one documented command; see docs/BENCHMARKS.md).
//!
//! # Layout
//! - `engine`: the engine a library workload runs on.
//! - `measure`: timing calls from many tasks, table rows, `redis-benchmark` figures.
//! - `capabilities`: rate-limit checks, session get/touch and cache get/set, library and HTTP.
//! - `cache`: the cache workloads of `capabilities` (with `redis-benchmark -t get,set`).
//! - `chat`: message posts and notification create-and-read.
//! - `durability`: the same workloads on memory, durable `everysec`, durable `always` and Redis.
//! - `gateway`: the WebSocket load client (Switchboard or Socket.IO).
//! - `jobs`: jobs enqueued and processed per second, and the comparison table with BullMQ.

mod cache;
mod capabilities;
mod chat;
mod durability;
mod engine;
mod gateway;
mod jobs;
mod measure;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Switchboard's benchmarks.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure rate-limit checks, session get/touch and cache get/set through the library and
    /// HTTP.
    Capabilities(capabilities::CapabilitiesArgs),
    /// Measure message posts to conversations of 2, 100 and 1 000 members and notification
    /// create-and-read, through the library and HTTP.
    Chat(chat::ChatArgs),
    /// Measure what durability costs: sessions, rate limits, jobs and message posts on the
    /// memory engine, durable `everysec`, durable `always` and (with `--redis-url`) Redis.
    Durability(durability::DurabilityArgs),
    /// Measure the WebSocket gateway (or a Socket.IO server, same load): memory per idle
    /// connection, fan-out latency, delivered publications per second.
    Gateway(gateway::GatewayArgs),
    /// Measure jobs enqueued and processed per second through the library or HTTP (or print
    /// the comparison with BullMQ of a results file).
    Jobs(jobs::JobsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Capabilities(args) => capabilities::run(args).await,
            Command::Chat(args) => chat::run(args).await,
            Command::Durability(args) => durability::run(args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Jobs(args) => jobs::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
