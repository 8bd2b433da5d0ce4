//! `switchboard init`: writes a commented config file with fresh random secrets.

use std::path::Path;

use anyhow::{Context, bail};

use crate::secrets::random_secret;

pub(crate) fn run(output: &Path, force: bool) -> anyhow::Result<()> {
    if output.exists() && !force {
        bail!("{} already exists (use --force to overwrite)", output.display());
    }
    let api_key = random_secret(32)?;
    let token_secret = random_secret(48)?;
    let webhook_secret = random_secret(32)?;
    let text = format!(
        r#"# Switchboard configuration. Every setting can also be set as SWITCHBOARD_<NAME> (nested:
# SWITCHBOARD_SESSIONS__MAX_PER_USER) or as a flag of `switchboard serve`.

listen = "{listen}"
# engine = "memory"            # or "redis"; redis is chosen when a Redis address is set
api_keys = ["backend:{api_key}"]
token_secret = "{token_secret}"
webhook_secret = "{webhook_secret}"   # signs webhook.deliver and push.send deliveries
# push_webhook_url = "https://push.example.com/send"   # push.send target; unset: no pushes queued
# builtin_jobs = true            # run webhook.deliver / notification.deliver / push.send here
# max_body_bytes = 1048576
# health_timeout_ms = 1000      # /health and /health/ready answer within this
# header_read_timeout_ms = 10000     # headers (and keep-alive idle) must arrive within this
# body_read_timeout_ms = 30000       # a body that has not arrived by then gets 408
# request_timeout_ms = 30000         # /api/v1 requests answer 503 past this (long-polls: + their wait)
# max_connections = 10000            # keep well under `ulimit -n`; WebSockets stop counting once upgraded
# health_reserve_connections = 16    # extra connections past the cap that serve only /health*

[redis]
# url = "redis://127.0.0.1:6379/0"   # rediss:// for TLS; or host/port/password/db
key_prefix = "sb:"
connect_timeout_ms = 5000
command_timeout_ms = 2000

[sessions]
idle_ttl_seconds = 3600
absolute_ttl_seconds = 2592000
max_per_user = 10
# count_as_online = true   # an active session (created or touched) keeps its device online

[messages]
# user_channel_max_members = 50   # message.new also on each member's user: channel in chats up to 50

[presence]
# contacts_on_user_channel = true # presence.changed also on the user: channel of contacts who follow back

[jobs]
default_max_attempts = 25
default_lease_seconds = 30

[tokens]
max_token_ttl_seconds = 2592000

[rate_limits.policies]
send_message = "10 per 60 s"
login = "5 per 15 m sliding_log"
"#,
        listen = crate::settings::DEFAULT_LISTEN,
    );
    write_private(output, &text).with_context(|| format!("cannot write {}", output.display()))?;
    println!("wrote {} (API key and token secret are in it; keep it private)", output.display());
    Ok(())
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}
