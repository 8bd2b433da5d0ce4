//! `switchboard doctor`: checks the engine and prints the effective config, secrets redacted.

use crate::CommonArgs;
use crate::settings::EngineKind;

/// `2026-12-03T10:00:00.000Z (42 s ago)`.
fn describe_time(at: std::time::SystemTime) -> String {
    let millis = at.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let ago = std::time::SystemTime::now().duration_since(at).map_or(0, |d| d.as_secs());
    format!("{} ({ago} s ago)", switchboard_core::Timestamp::from_millis(millis).to_rfc3339())
}

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
        EngineKind::Memory => match &settings.data_dir {
            None => println!("ok    engine: memory (state is lost on restart; set data_dir to keep it)"),
            Some(dir) => match switchboard_memory::data_dir_status(dir) {
                Ok(status) => {
                    println!("ok    engine: memory, durable (data dir {})", dir.display());
                    println!("ok    data dir size: {} bytes", status.bytes);
                    println!("ok    sync policy: {}", settings.data_sync);
                    match status.last_compaction {
                        Some(at) => println!("ok    last compaction: {}", describe_time(at)),
                        None => println!("ok    last compaction: none yet"),
                    }
                    if status.in_use {
                        println!("ok    data dir in use by a running switchboard process");
                    }
                    match &status.write_error {
                        None => println!("ok    data dir writable (a 4 KiB test file written and fsynced)"),
                        Some(e) => {
                            println!(
                                "error data dir cannot be written ({e}): a running node answers writes 503 \
                                 engine_unavailable until it can, reads go on"
                            );
                            problems += 1;
                        }
                    }
                }
                Err(e) => {
                    println!("error data dir {}: {e}", dir.display());
                    problems += 1;
                }
            },
        },
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
