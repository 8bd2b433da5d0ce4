//! [`RedisConfig`]: where the Redis engine connects, its key prefix and its timeouts.

use std::fmt;
use std::time::Duration;

use redis::IntoConnectionInfo;
use switchboard_core::{Error, Result};

/// Longest key prefix accepted.
const MAX_PREFIX_BYTES: usize = 64;

/// Settings of the Redis engine.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`; `rediss://...` for TLS, verified against
    /// the system's root certificates (`rediss://...#insecure` skips verification, e.g. for a
    /// self-signed certificate); or `redis+unix:///path?db=0&pass=...` (default
    /// `redis://127.0.0.1:6379`).
    pub url: String,
    /// Prepended to every key, so several deployments can share one Redis (default `sb:`).
    pub key_prefix: String,
    /// Longest wait for the first connection at start-up, and for each reconnection attempt
    /// (default 5 s).
    pub connect_timeout: Duration,
    /// Longest wait for any one call, including waiting for a reconnection; past it the call
    /// fails with [`Error::Unavailable`] (default 2 s).
    pub command_timeout: Duration,
}

impl RedisConfig {
    /// The defaults with another URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisConfig { url: url.into(), ..RedisConfig::default() }
    }

    /// The same settings with another key prefix.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Checks every setting; errors name the subsystem and the setting (`redis: ...`) and never
    /// echo a password.
    pub fn validate(&self) -> Result<()> {
        if self.url.trim().is_empty() {
            return Err(Error::InvalidArgument("redis: url must not be empty".into()));
        }
        if let Err(e) = self.url.as_str().into_connection_info() {
            return Err(Error::InvalidArgument(format!("redis: url {} is not usable: {e}", redact_url(&self.url))));
        }
        if self.key_prefix.len() > MAX_PREFIX_BYTES {
            return Err(Error::InvalidArgument(format!("redis: key_prefix must be at most {MAX_PREFIX_BYTES} bytes")));
        }
        // Braces would change the hash tags that keep each script's keys on one cluster slot.
        if let Some(bad) = self.key_prefix.chars().find(|c| !c.is_ascii_graphic() || matches!(c, '{' | '}')) {
            return Err(Error::InvalidArgument(format!(
                "redis: key_prefix must be printable ASCII without spaces or braces, found {bad:?}"
            )));
        }
        for (name, value) in [("connect_timeout", self.connect_timeout), ("command_timeout", self.command_timeout)] {
            if value.is_zero() || value > Duration::from_secs(3600) {
                return Err(Error::InvalidArgument(format!("redis: {name} must be between 1 ms and 1 h")));
            }
        }
        Ok(())
    }

    /// The URL with any password replaced by `***`, safe to log and show.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "sb:".into(),
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_secs(2),
        }
    }
}

// By hand, so the URL's password never reaches a log.
impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .finish()
    }
}

/// Replaces the password of `scheme://user:password@host` (the whole user info when it has no
/// `:`, since some write `redis://password@host`) and `pass` / `password` query values by `***`.
fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("***@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&authority);
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://127.0.0.1:6379/0"), "redis://127.0.0.1:6379/0");
        assert_eq!(redact_url("redis://:s3cret@host:6379/1"), "redis://:***@host:6379/1");
        assert_eq!(redact_url("rediss://app:s3cret@host"), "rediss://app:***@host");
        assert_eq!(redact_url("redis://s3cret@host"), "redis://***@host");
        assert_eq!(redact_url("redis://a:b@c@host/2"), "redis://a:***@host/2");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        let config = RedisConfig::new("redis://u:s3cret@h");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn validation_names_the_subsystem() {
        assert!(RedisConfig::default().validate().is_ok());
        assert!(RedisConfig::new("redis+unix:///tmp/r.sock").validate().is_ok());
        for bad in [
            RedisConfig::new(""),
            RedisConfig::new("http://host"),
            RedisConfig::new("redis://:s3cret@host:notaport"),
            RedisConfig::default().with_key_prefix("a{b}"),
            RedisConfig::default().with_key_prefix("a b"),
            RedisConfig { command_timeout: Duration::ZERO, ..RedisConfig::default() },
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.starts_with("redis: "), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }
}
