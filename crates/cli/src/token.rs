//! `switchboard token`: mints a client JWT (HS256) with the claims the gateway expects.

use anyhow::{Context, bail};
use clap::Args;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Serialize;
use switchboard_core::{DeviceId, SessionId, UserId};

use crate::CommonArgs;
use crate::secrets::random_secret;

/// Arguments of `switchboard token`.
#[derive(Args)]
pub(crate) struct TokenArgs {
    /// User id (`sub`).
    #[arg(long)]
    user: String,
    /// Device id (`device` claim).
    #[arg(long)]
    device: String,
    /// Session id the token belongs to (`sid` claim), checked at connect.
    #[arg(long)]
    sid: Option<String>,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    ttl_seconds: u64,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    device: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    iat: u64,
    exp: u64,
    jti: String,
}

pub(crate) fn run(args: TokenArgs) -> anyhow::Result<()> {
    let settings = args.common.load()?.settings;
    let Some(secret) = settings.token_secret.as_deref() else {
        bail!("no token secret configured: set SWITCHBOARD_TOKEN_SECRET, --token-secret or token_secret in the config");
    };
    let user = UserId::new(&args.user)?;
    let device = DeviceId::new(&args.device)?;
    let sid = args.sid.as_deref().map(SessionId::new).transpose()?;
    if args.ttl_seconds == 0 {
        bail!("--ttl-seconds must be > 0");
    }
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("clock before 1970")?.as_secs();
    let claims = Claims {
        sub: user.as_str(),
        device: device.as_str(),
        sid: sid.as_ref().map(SessionId::as_str),
        iat: now,
        exp: now + args.ttl_seconds,
        jti: random_secret(16)?,
    };
    let token = encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))?;
    println!("{token}");
    Ok(())
}
