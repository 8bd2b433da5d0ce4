//! `switchboard serve`: picks the engine, applies dev mode, runs the server until SIGINT/SIGTERM.

use std::time::Duration;

use anyhow::{Context, bail};
use switchboard_core::Switchboard;
use switchboard_server::builtin_jobs::{self, BuiltinJobsConfig};
use switchboard_server::gateway::{GatewayConfig, TokenKey, TokenVerifier};
use switchboard_server::{ApiKey, AppState, ServerConfig};
use tokio_util::sync::CancellationToken;

use crate::CommonArgs;
use crate::secrets::random_secret;
use crate::settings::{EngineKind, LogFormat, Settings};

pub(crate) async fn run(args: CommonArgs) -> anyhow::Result<()> {
    let loaded = args.load()?;
    let mut settings = loaded.settings;
    init_logging(settings.log_format);
    let addr = settings.listen_addr()?;

    // Dev mode: nothing configured. Safe only on loopback, so refuse anything else.
    if settings.api_keys.is_empty() {
        if !addr.ip().is_loopback() {
            bail!("no API keys configured: set SWITCHBOARD_API_KEYS (or run `switchboard init`) to listen on {addr}");
        }
        let key = random_secret(24)?;
        println!("dev mode: no API keys configured; generated one for this run:");
        println!("  SWITCHBOARD_API_KEYS=dev:{key}");
        settings.api_keys.push(format!("dev:{key}"));
        if settings.token_secret.is_none() {
            let secret = random_secret(32)?;
            println!("  SWITCHBOARD_TOKEN_SECRET={secret}");
            settings.token_secret = Some(secret);
        }
        if settings.webhook_secret.is_none() {
            let secret = random_secret(32)?;
            println!("  SWITCHBOARD_WEBHOOK_SECRET={secret}");
            settings.webhook_secret = Some(secret);
        }
    }
    if settings.token_secret.is_none() {
        tracing::warn!("no token secret configured: WebSocket clients cannot connect");
    }

    let sb = build_switchboard(&settings).await?;
    let engine = sb.engine().health.info();
    let tokens = match &settings.token_secret {
        Some(secret) => Some(TokenVerifier::new(&TokenKey::Hs256(secret.clone())).context("token_secret")?),
        None => None,
    };
    let config = ServerConfig {
        api_keys: parse_api_keys(&settings.api_keys)?,
        node_id: settings.node_id.clone().unwrap_or_else(default_node_id),
        gateway: GatewayConfig { tokens, ..GatewayConfig::default() },
        jobs: BuiltinJobsConfig {
            enabled: settings.builtin_jobs,
            webhook_secret: settings.webhook_secret.clone(),
            push_webhook_url: settings.push_webhook_url.clone(),
            ..BuiltinJobsConfig::default()
        },
        health_timeout: Duration::from_millis(settings.health_timeout_ms),
        ..settings.http_config()
    };
    let state = AppState::new(sb, config);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(engine.name = %engine.name, engine.location = %engine.location, listen = %local, "switchboard started");
    // A plain line on stdout that scripts and tests can wait for.
    println!("switchboard listening on http://{local} (engine: {})", engine.name);

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    switchboard_server::serve(listener, state, shutdown).await.context("server failed")?;
    tracing::info!("switchboard stopped");
    Ok(())
}

/// Builds the facade on the configured engine.
pub(crate) async fn build_switchboard(settings: &Settings) -> anyhow::Result<Switchboard> {
    let config = settings.switchboard.clone();
    // Check the service settings before opening a connection.
    config.validate()?;
    let engine = match settings.engine_kind() {
        EngineKind::Memory => switchboard_memory::engine(settings.memory_config())?,
        EngineKind::Redis => {
            let redis = settings.redis.engine_config();
            redis.validate()?;
            match settings.redis.fail_fast {
                true => switchboard_redis::connect(redis).await?,
                // Starts anyway: 503 and not ready until Redis first answers.
                false => switchboard_redis::connect_in_background(redis).await?,
            }
        }
    };
    let mut builder = Switchboard::builder(engine, config);
    if settings.push_webhook_url.is_some() {
        builder = builder.push_hook_with(builtin_jobs::queue_pushes);
    }
    Ok(builder.build()?)
}

/// `name:key` or `key` (named `key<n>`).
fn parse_api_keys(raw: &[String]) -> anyhow::Result<Vec<ApiKey>> {
    raw.iter()
        .enumerate()
        .map(|(i, entry)| {
            let (name, key) = match entry.split_once(':') {
                Some((name, key)) => (name.to_owned(), key.to_owned()),
                None => (format!("key{}", i + 1), entry.clone()),
            };
            if key.is_empty() {
                bail!("api_keys: entry {} ({name}) has an empty key", i + 1);
            }
            if key.len() < 16 {
                tracing::warn!(api_key.name = %name, "API key is shorter than 16 characters");
            }
            Ok(ApiKey { name, key })
        })
        .collect()
}

fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "node".into());
    format!("{host}-{}", std::process::id())
}

async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutdown signal received, draining");
    token.cancel();
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
