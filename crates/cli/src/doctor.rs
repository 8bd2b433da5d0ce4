//! `switchboard doctor`: checks the engine and prints the effective config, secrets redacted.

use crate::CommonArgs;
use crate::settings::EngineKind;

pub(crate) async fn run(args: CommonArgs) -> anyhow::Result<()> {
    let loaded = args.load()?;
    let settings = loaded.settings;
    match &loaded.config_file {
        Some(path) => println!("config file: {}", path.display()),
        None => println!("config file: none (defaults, environment and flags only)"),
    }
    println!("effective config:\n{}", serde_json::to_string_pretty(&settings.redacted())?);
    let mut problems = 0;
    match settings.engine_kind() {
        EngineKind::Memory => println!("ok    engine: memory (state is lost on restart)"),
        EngineKind::Redis => {
            let report = switchboard_redis::diagnose(settings.redis.engine_config()).await;
            for check in &report {
                println!("{:<5} {}", check.level.label(), check.message);
                if check.level == switchboard_redis::CheckLevel::Error {
                    problems += 1;
                }
            }
        }
    }
    if settings.api_keys.is_empty() {
        println!("warn  no API keys configured: `serve` would run in dev mode (loopback only)");
    }
    if settings.token_secret.is_none() {
        println!("warn  no token secret configured: client tokens cannot be verified");
    }
    if problems > 0 {
        anyhow::bail!("{problems} problem(s) found");
    }
    Ok(())
}
