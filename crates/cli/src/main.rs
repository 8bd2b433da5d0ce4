//! The `switchboard` binary: `serve` (the server), `init` (write a config with fresh secrets),
//! `token` (mint a client JWT) and `doctor` (check the engine and print the effective config).
//! The benchmarks are a binary of their own, `switchboard-bench`.
//!
//! # Layout
//! - `settings`: every setting from file, environment and flags.
//! - `serve`: engine selection, dev mode, the server's life and graceful shutdown.
//! - `secrets`: random API keys and token secrets.
//! - `token`: client JWTs.
//! - `init`, `doctor`: the other subcommands.

mod doctor;
mod init;
mod secrets;
mod serve;
mod settings;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use settings::{EngineKind, FlagOverrides, FlagRedis, LogFormat};

/// Switchboard: real-time state for chat, social and notification apps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. With no configuration at all: dev mode (memory engine, loopback, random
    /// API key and token secret printed at start). With `--data-dir`: the memory engine keeps
    /// every acknowledged write across restarts.
    Serve(CommonArgs),
    /// Write a config file with fresh random secrets.
    Init {
        /// Where to write it.
        #[arg(long, default_value = settings::DEFAULT_CONFIG_FILE)]
        output: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Mint a client JWT (HS256 with the configured token secret).
    Token(token::TokenArgs),
    /// Check the engine (Redis version, persistence, eviction policy; or the memory engine's data
    /// dir, its size, sync policy and last compaction) and print the effective config with
    /// secrets redacted.
    Doctor(CommonArgs),
}

/// Settings every subcommand that loads the config accepts.
#[derive(Args, Clone, Default)]
pub(crate) struct CommonArgs {
    /// Config file (default: ./switchboard.toml when it exists).
    #[arg(long, env = "SWITCHBOARD_CONFIG")]
    config: Option<PathBuf>,
    /// host:port to listen on [env: SWITCHBOARD_LISTEN].
    #[arg(long)]
    listen: Option<String>,
    /// Engine [env: SWITCHBOARD_ENGINE].
    #[arg(long, value_enum)]
    engine: Option<EngineKind>,
    /// Redis URL [env: REDIS_URL].
    #[arg(long)]
    redis_url: Option<String>,
    /// Redis Cluster seed nodes, comma-separated [env: REDIS_CLUSTER_NODES].
    #[arg(long, value_delimiter = ',')]
    redis_cluster_nodes: Option<Vec<String>>,
    /// Redis Sentinel addresses, comma-separated [env: REDIS_SENTINELS].
    #[arg(long, value_delimiter = ',')]
    redis_sentinels: Option<Vec<String>>,
    /// Name of the master the Sentinels monitor [env: REDIS_SENTINEL_MASTER].
    #[arg(long)]
    redis_sentinel_master: Option<String>,
    /// Exit at start-up when Redis cannot be reached, instead of answering 503 until it can
    /// [env: SWITCHBOARD_REDIS__FAIL_FAST].
    #[arg(long)]
    redis_fail_fast: bool,
    /// Redis key prefix [env: SWITCHBOARD_REDIS__KEY_PREFIX].
    #[arg(long)]
    key_prefix: Option<String>,
    /// Comma-separated API keys, each `name:key` or `key` [env: SWITCHBOARD_API_KEYS].
    #[arg(long, value_delimiter = ',')]
    api_keys: Option<Vec<String>>,
    /// HS256 secret for client tokens [env: SWITCHBOARD_TOKEN_SECRET].
    #[arg(long)]
    token_secret: Option<String>,
    /// Node name [env: SWITCHBOARD_NODE_ID].
    #[arg(long)]
    node_id: Option<String>,
    /// Log format [env: SWITCHBOARD_LOG_FORMAT].
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// Memory engine: keep every state change in this directory, so a restart restores it
    /// [env: SWITCHBOARD_DATA_DIR]; the fsync policy is `data_sync` [env: SWITCHBOARD_DATA_SYNC].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Any setting by its config path, e.g. `--set sessions.max_per_user=5` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl CommonArgs {
    pub(crate) fn load(&self) -> anyhow::Result<settings::Loaded> {
        let redis = FlagRedis {
            url: self.redis_url.clone(),
            key_prefix: self.key_prefix.clone(),
            cluster_nodes: self.redis_cluster_nodes.clone(),
            sentinels: self.redis_sentinels.clone(),
            sentinel_master: self.redis_sentinel_master.clone(),
            fail_fast: self.redis_fail_fast.then_some(true),
        };
        let redis = (redis.url.is_some()
            || redis.key_prefix.is_some()
            || redis.cluster_nodes.is_some()
            || redis.sentinels.is_some()
            || redis.sentinel_master.is_some()
            || redis.fail_fast.is_some())
        .then_some(redis);
        let flags = FlagOverrides {
            listen: self.listen.clone(),
            engine: self.engine,
            api_keys: self.api_keys.clone(),
            token_secret: self.token_secret.clone(),
            node_id: self.node_id.clone(),
            log_format: self.log_format,
            data_dir: self.data_dir.clone(),
            redis,
        };
        settings::load(self.config.as_deref(), flags, &self.set)
    }
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
            Command::Serve(args) => serve::run(args).await,
            Command::Init { output, force } => init::run(&output, force),
            Command::Token(args) => token::run(args),
            Command::Doctor(args) => doctor::run(args).await,
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
