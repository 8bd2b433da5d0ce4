//! [`Switchboard`]: the facade over one engine's services.

use std::sync::Arc;

use crate::config::SwitchboardConfig;
use crate::engine::Engine;
use crate::error::Result;
use crate::services::{RateLimits, Sessions, Tokens};

/// Every service of one engine, cheap to clone. Build it with an engine crate
/// (`switchboard_memory::MemoryEngineExt::memory`, `switchboard_redis::RedisEngineExt::redis`)
/// or from an [`Engine`] with [`Switchboard::new`].
#[derive(Clone)]
pub struct Switchboard {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    config: SwitchboardConfig,
    sessions: Sessions,
    tokens: Tokens,
    rate_limits: RateLimits,
}

impl Switchboard {
    /// Wires the services over `engine`; fails if `config` is invalid.
    pub fn new(engine: Engine, config: SwitchboardConfig) -> Result<Self> {
        config.validate()?;
        let inner = Inner {
            sessions: Sessions::new(engine.sessions.clone(), config.sessions.clone()),
            tokens: Tokens::new(engine.denylist.clone(), config.tokens.clone()),
            rate_limits: RateLimits::new(engine.rate_limiter.clone(), config.rate_limits.clone()),
            engine,
            config,
        };
        Ok(Switchboard { inner: Arc::new(inner) })
    }

    /// Sessions (§3.1).
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// Token denylist and revoke-before (§3.2).
    pub fn tokens(&self) -> &Tokens {
        &self.inner.tokens
    }

    /// Rate limits (§3.3).
    pub fn rate_limits(&self) -> &RateLimits {
        &self.inner.rate_limits
    }

    /// The engine underneath (health, info, raw traits).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The settings in force.
    pub fn config(&self) -> &SwitchboardConfig {
        &self.inner.config
    }
}
