//! [`Settings`]: every setting of the binary, merged from defaults, `switchboard.toml`,
//! `SWITCHBOARD_*` / `REDIS_*` environment variables and command-line flags (later wins).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use switchboard_core::SwitchboardConfig;
use switchboard_memory::{MemoryConfig, SyncPolicy};
use switchboard_server::ServerConfig;
use switchboard_server::config as server;

/// The default listen address: loopback only.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7700";
/// The config file read from the working directory when no `--config` is given.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "switchboard.toml";

/// Which engine holds the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EngineKind {
    /// In-process, single node, nothing to install.
    Memory,
    /// Redis: many nodes.
    Redis,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Every setting of the binary.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Settings {
    /// host:port to listen on.
    pub(crate) listen: String,
    /// Engine; unset means redis when a Redis address is configured, memory otherwise.
    pub(crate) engine: Option<EngineKind>,
    /// API keys, each `name:key` or just `key`.
    pub(crate) api_keys: Vec<String>,
    /// HS256 secret for client tokens.
    pub(crate) token_secret: Option<String>,
    /// HMAC-SHA256 key of `webhook.deliver` and `push.send` signatures.
    pub(crate) webhook_secret: Option<String>,
    /// Where `push.send` jobs are POSTed (none: no pushes are queued).
    pub(crate) push_webhook_url: Option<String>,
    /// Whether this node runs the built-in job types' worker.
    pub(crate) builtin_jobs: bool,
    /// Largest JSON body in bytes.
    pub(crate) max_body_bytes: usize,
    /// How long a client may take to send a request's headers (and a keep-alive connection may
    /// idle) before the connection is closed.
    pub(crate) header_read_timeout_ms: u64,
    /// How long a client may take to send a request's body before it is answered 408.
    pub(crate) body_read_timeout_ms: u64,
    /// Longest an `/api/v1` request may take before it is answered 503 (long-polls get their
    /// own wait on top).
    pub(crate) request_timeout_ms: u64,
    /// Most HTTP connections open at once; WebSocket connections stop counting once upgraded.
    pub(crate) max_connections: usize,
    /// Extra connections past `max_connections` that may only serve `/health*`.
    pub(crate) health_reserve_connections: usize,
    /// Name of this node in logs and /info (default: host name and pid).
    pub(crate) node_id: Option<String>,
    /// Deadline of the health checks in milliseconds (`/health`, `/health/ready`).
    pub(crate) health_timeout_ms: u64,
    /// Log format.
    pub(crate) log_format: LogFormat,
    /// Memory engine: where its journal lives (durable mode); unset keeps state in memory only.
    pub(crate) data_dir: Option<PathBuf>,
    /// Memory engine with a data dir: when the journal is fsynced (`always`, `everysec`, `no`).
    pub(crate) data_sync: SyncPolicy,
    /// Redis engine settings.
    pub(crate) redis: RedisSettings,
    /// Service settings: sessions, tokens, rate limits.
    #[serde(flatten)]
    pub(crate) switchboard: SwitchboardConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: DEFAULT_LISTEN.into(),
            engine: None,
            api_keys: Vec::new(),
            token_secret: None,
            webhook_secret: None,
            push_webhook_url: None,
            builtin_jobs: true,
            max_body_bytes: switchboard_core::limits::DEFAULT_MAX_BODY_BYTES,
            header_read_timeout_ms: server::DEFAULT_HEADER_READ_TIMEOUT.as_millis() as u64,
            body_read_timeout_ms: server::DEFAULT_BODY_READ_TIMEOUT.as_millis() as u64,
            request_timeout_ms: server::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64,
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
            health_reserve_connections: server::DEFAULT_HEALTH_RESERVE_CONNECTIONS,
            node_id: None,
            health_timeout_ms: switchboard_server::ServerConfig::default().health_timeout.as_millis() as u64,
            log_format: LogFormat::Text,
            data_dir: None,
            data_sync: SyncPolicy::default(),
            redis: RedisSettings::default(),
            switchboard: SwitchboardConfig::default(),
        }
    }
}

/// Redis settings: a URL, or the seeds' host/port/password/db.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RedisSettings {
    /// `redis://[:password@]host:port/db` or `rediss://` for TLS.
    pub(crate) url: Option<String>,
    /// Host, when no URL is given.
    pub(crate) host: Option<String>,
    /// Port (default 6379).
    pub(crate) port: Option<u16>,
    /// Password (AUTH).
    pub(crate) password: Option<String>,
    /// Username (ACL).
    pub(crate) username: Option<String>,
    /// Database number.
    pub(crate) db: Option<u32>,
    /// Prefix of every key (default `sb:`).
    pub(crate) key_prefix: String,
    /// Connect timeout in milliseconds.
    pub(crate) connect_timeout_ms: u64,
    /// Timeout of every command in milliseconds.
    pub(crate) command_timeout_ms: u64,
    /// Seed nodes of a Redis Cluster, a list or one comma-separated string of `host:port`,
    /// `redis://` or `rediss://` addresses [env: REDIS_CLUSTER_NODES]. The URL settings above
    /// (password, username, TLS) apply to every node.
    #[serde(deserialize_with = "address_list")]
    pub(crate) cluster_nodes: Option<Vec<String>>,
    /// Sentinel addresses, like `cluster_nodes` [env: REDIS_SENTINELS]; the master they name
    /// takes the place of the URL's host and port.
    #[serde(deserialize_with = "address_list")]
    pub(crate) sentinels: Option<Vec<String>>,
    /// Name of the master the Sentinels monitor [env: REDIS_SENTINEL_MASTER].
    pub(crate) sentinel_master: Option<String>,
    /// Password of the Sentinels [env: REDIS_SENTINEL_PASSWORD].
    pub(crate) sentinel_password: Option<String>,
    /// Replicas that must confirm job enqueues and completions, notification and session
    /// creates before they are acknowledged (`WAIT`); 0 waits for none.
    pub(crate) wait_replicas: u32,
    /// Exit at start-up when Redis cannot be reached within the connect timeout. Off (the
    /// default): start anyway, answer 503 `engine_unavailable` (and not ready) until Redis first
    /// answers, then serve [env: SWITCHBOARD_REDIS__FAIL_FAST; flag --redis-fail-fast].
    pub(crate) fail_fast: bool,
}

/// An address list given as a list or as one comma-separated string (as environment variables
/// and `--set` give it); blanks are dropped, so `""` is an empty list.
fn address_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let raw = Option::<Raw>::deserialize(deserializer)?;
    Ok(raw.map(|raw| {
        let entries = match raw {
            Raw::One(s) => s.split(',').map(str::to_owned).collect(),
            Raw::Many(v) => v,
        };
        entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()).map(String::from).collect()
    }))
}

impl Default for RedisSettings {
    fn default() -> Self {
        let d = switchboard_redis::RedisConfig::default();
        RedisSettings {
            url: None,
            host: None,
            port: None,
            password: None,
            username: None,
            db: None,
            key_prefix: d.key_prefix,
            connect_timeout_ms: d.connect_timeout.as_millis() as u64,
            command_timeout_ms: d.command_timeout.as_millis() as u64,
            cluster_nodes: None,
            sentinels: None,
            sentinel_master: None,
            sentinel_password: None,
            wait_replicas: d.wait_replicas,
            fail_fast: false,
        }
    }
}

impl RedisSettings {
    fn configured(&self) -> bool {
        self.url.is_some() || self.host.is_some() || self.cluster_nodes.is_some() || self.sentinels.is_some()
    }

    /// Refuses an empty address list and anything [`switchboard_redis::RedisConfig::validate`]
    /// refuses; every error names the setting and its environment variable.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        for (name, env, list) in [
            ("redis.cluster_nodes", "REDIS_CLUSTER_NODES", &self.cluster_nodes),
            ("redis.sentinels", "REDIS_SENTINELS", &self.sentinels),
        ] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                bail!("invalid configuration: {name} ({env}) is set but lists no address");
            }
        }
        self.engine_config().validate().map_err(|e| {
            let message = e.to_string();
            let env = [
                ("cluster_nodes", "REDIS_CLUSTER_NODES"),
                ("sentinel_master", "REDIS_SENTINEL_MASTER"),
                ("sentinel_password", "REDIS_SENTINEL_PASSWORD"),
                ("sentinels", "REDIS_SENTINELS"),
                ("url", "REDIS_URL"),
            ]
            .iter()
            .filter(|(setting, _)| message.contains(setting))
            .map(|(_, env)| *env)
            .collect::<Vec<_>>();
            match env.is_empty() {
                true => anyhow::anyhow!("invalid configuration: {message}"),
                false => anyhow::anyhow!("invalid configuration: {message} (environment: {})", env.join(", ")),
            }
        })
    }

    /// The URL to connect to, built from host/port/password/db when no URL is set.
    pub(crate) fn resolved_url(&self) -> String {
        if let Some(url) = &self.url {
            return url.clone();
        }
        let host = self.host.as_deref().unwrap_or("127.0.0.1");
        let port = self.port.unwrap_or(6379);
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(p)) => format!("{}:{}@", encode(u), encode(p)),
            (None, Some(p)) => format!(":{}@", encode(p)),
            _ => String::new(),
        };
        let db = self.db.map(|d| format!("/{d}")).unwrap_or_default();
        format!("redis://{auth}{host}:{port}{db}")
    }

    /// The Redis engine's config.
    pub(crate) fn engine_config(&self) -> switchboard_redis::RedisConfig {
        switchboard_redis::RedisConfig {
            key_prefix: self.key_prefix.clone(),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            command_timeout: Duration::from_millis(self.command_timeout_ms),
            cluster_nodes: self.cluster_nodes.clone().unwrap_or_default(),
            sentinels: self.sentinels.clone().unwrap_or_default(),
            sentinel_master: self.sentinel_master.clone().unwrap_or_default(),
            sentinel_password: self.sentinel_password.clone(),
            wait_replicas: self.wait_replicas,
            ..switchboard_redis::RedisConfig::new(self.resolved_url())
        }
    }
}

/// Percent-encodes the characters that would break a URL's userinfo.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Overrides from command-line flags; only the flags given are applied.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FlagOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<EngineKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_keys: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) node_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) log_format: Option<LogFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) redis: Option<FlagRedis>,
}

/// Redis flag overrides.
#[derive(Debug, Default, Serialize)]
pub(crate) struct FlagRedis {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cluster_nodes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sentinels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sentinel_master: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fail_fast: Option<bool>,
}

/// Where the settings came from, for the dev-mode decision and `doctor`.
pub(crate) struct Loaded {
    pub(crate) settings: Settings,
    pub(crate) config_file: Option<PathBuf>,
}

/// Loads settings: defaults <- config file <- environment <- flags <- `--set KEY=VALUE`.
pub(crate) fn load(config: Option<&Path>, flags: FlagOverrides, set: &[String]) -> anyhow::Result<Loaded> {
    load_with(config, flags, set, |name| std::env::var(name).ok())
}

/// [`load`] with `REDIS_*` variables read through `env` (tests pass their own).
fn load_with(
    config: Option<&Path>,
    flags: FlagOverrides,
    set: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<Loaded> {
    let config_file = match config {
        Some(path) => {
            if !path.exists() {
                bail!("config file {} does not exist", path.display());
            }
            Some(path.to_path_buf())
        }
        None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.exists()),
    };
    let mut figment = Figment::from(Serialized::defaults(Settings::default()));
    if let Some(path) = &config_file {
        figment = figment.merge(Toml::file_exact(path));
    }
    // SWITCHBOARD_SESSIONS__MAX_PER_USER=5 sets sessions.max_per_user; lists are handled below.
    figment = figment.merge(Env::prefixed("SWITCHBOARD_").ignore(&["API_KEYS", "CONFIG"]).split("__"));
    if let Ok(keys) = std::env::var("SWITCHBOARD_API_KEYS") {
        let keys: Vec<String> = keys.split(',').map(str::trim).filter(|k| !k.is_empty()).map(String::from).collect();
        figment = figment.merge(Serialized::default("api_keys", keys));
    }
    for (var, field) in [
        ("REDIS_URL", "redis.url"),
        ("REDIS_HOST", "redis.host"),
        ("REDIS_PASSWORD", "redis.password"),
        ("REDIS_USERNAME", "redis.username"),
        ("REDIS_SENTINEL_MASTER", "redis.sentinel_master"),
        ("REDIS_SENTINEL_PASSWORD", "redis.sentinel_password"),
    ] {
        if let Some(value) = env(var).map(|v| v.trim().to_owned())
            && !value.is_empty()
        {
            figment = figment.merge(Serialized::default(field, value));
        }
    }
    // Lists: set means set, even to nothing (refused below, naming the variable).
    for (var, field) in [("REDIS_CLUSTER_NODES", "redis.cluster_nodes"), ("REDIS_SENTINELS", "redis.sentinels")] {
        if let Some(value) = env(var) {
            figment = figment.merge(Serialized::default(field, value));
        }
    }
    for (var, field) in [("REDIS_PORT", "redis.port"), ("REDIS_DB", "redis.db")] {
        if let Some(value) = env(var).map(|v| v.trim().to_owned())
            && !value.is_empty()
        {
            let n: u32 = value.parse().with_context(|| format!("{var} must be a number, got {value:?}"))?;
            figment = figment.merge(Serialized::default(field, n));
        }
    }
    figment = figment.merge(Serialized::defaults(flags));
    for entry in set {
        let Some((key, value)) = entry.split_once('=') else {
            bail!("--set {entry:?}: expected KEY=VALUE, e.g. sessions.max_per_user=5");
        };
        // Parsed like an environment value: numbers and booleans become numbers and booleans.
        let value: figment::value::Value = value.parse().unwrap_or_else(|_| value.into());
        figment = figment.merge(Serialized::default(key.trim(), value));
    }
    let settings: Settings = figment.extract().context("invalid configuration")?;
    if settings.health_timeout_ms == 0 {
        bail!("invalid configuration: health_timeout_ms must be at least 1");
    }
    if settings.data_dir.is_some() && settings.engine_kind() == EngineKind::Redis {
        bail!("invalid configuration: data_dir is for the memory engine; the redis engine keeps its state in Redis");
    }
    settings.switchboard.validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    settings.http_config().validate().map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
    if settings.engine_kind() == EngineKind::Redis {
        settings.redis.validate()?;
    }
    Ok(Loaded { settings, config_file })
}

impl Settings {
    /// The engine in force: as named, else redis when a Redis address is configured.
    pub(crate) fn engine_kind(&self) -> EngineKind {
        self.engine.unwrap_or(if self.redis.configured() { EngineKind::Redis } else { EngineKind::Memory })
    }

    /// The HTTP server's limits and timeouts; keys, node id, gateway and jobs are left at their
    /// defaults for the caller to fill.
    pub(crate) fn http_config(&self) -> ServerConfig {
        ServerConfig {
            max_body_bytes: self.max_body_bytes,
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            max_connections: self.max_connections,
            health_reserve_connections: self.health_reserve_connections,
            ..ServerConfig::default()
        }
    }

    /// The memory engine's config: in memory only, or durable with a data dir.
    pub(crate) fn memory_config(&self) -> MemoryConfig {
        MemoryConfig { data_dir: self.data_dir.clone(), sync: self.data_sync, ..MemoryConfig::default() }
    }

    /// The listen address, parsed.
    pub(crate) fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen
            .parse()
            .with_context(|| format!("listen: {:?} is not host:port (e.g. {DEFAULT_LISTEN})", self.listen))
    }

    /// The settings as JSON with every secret replaced by `"<redacted>"`.
    pub(crate) fn redacted(&self) -> serde_json::Value {
        let mut copy = self.clone();
        copy.api_keys = copy
            .api_keys
            .iter()
            .map(|k| match k.split_once(':') {
                Some((name, _)) => format!("{name}:<redacted>"),
                None => "<redacted>".into(),
            })
            .collect();
        copy.token_secret = copy.token_secret.map(|_| "<redacted>".into());
        copy.webhook_secret = copy.webhook_secret.map(|_| "<redacted>".into());
        copy.redis.password = copy.redis.password.map(|_| "<redacted>".into());
        copy.redis.url = copy.redis.url.map(|u| redact_url(&u));
        copy.redis.sentinel_password = copy.redis.sentinel_password.map(|_| "<redacted>".into());
        for list in [&mut copy.redis.cluster_nodes, &mut copy.redis.sentinels].into_iter().flatten() {
            list.iter_mut().for_each(|address| *address = redact_url(address));
        }
        serde_json::to_value(copy).unwrap_or_default()
    }
}

/// `redis://user:secret@host` -> `redis://user:<redacted>@host`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:<redacted>@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_flags_reach_nested_settings_and_win() {
        let set = ["sessions.max_per_user=3".to_owned(), "redis.key_prefix=app:".to_owned()];
        let loaded = load(Some(Path::new("/nonexistent/switchboard.toml")), FlagOverrides::default(), &set);
        assert!(loaded.is_err(), "a named config file must exist");
        let loaded = load(None, FlagOverrides::default(), &set).expect("valid settings");
        assert_eq!(loaded.settings.switchboard.sessions.max_per_user, 3);
        assert_eq!(loaded.settings.redis.key_prefix, "app:");
        assert!(load(None, FlagOverrides::default(), &["nonsense".to_owned()]).is_err());
        assert!(load(None, FlagOverrides::default(), &["sessions.no_such_setting=1".to_owned()]).is_err());
        assert!(load(None, FlagOverrides::default(), &["health_timeout_ms=0".to_owned()]).is_err());
        let loaded = load(None, FlagOverrides::default(), &["health_timeout_ms=250".to_owned()]).expect("valid");
        assert_eq!(loaded.settings.health_timeout_ms, 250);
    }

    #[test]
    fn the_data_dir_and_sync_policy_reach_the_memory_engine() {
        let defaults = load(None, FlagOverrides::default(), &[]).expect("valid settings").settings;
        assert_eq!(defaults.memory_config().data_dir, None);
        assert_eq!(defaults.memory_config().sync, SyncPolicy::EverySec);
        let flags = FlagOverrides { data_dir: Some("/var/lib/switchboard".into()), ..FlagOverrides::default() };
        let set = ["data_sync=always".to_owned()];
        let config = load(None, flags, &set).expect("valid settings").settings.memory_config();
        assert_eq!(config.data_dir.as_deref(), Some(Path::new("/var/lib/switchboard")));
        assert_eq!(config.sync, SyncPolicy::Always);
        assert!(load(None, FlagOverrides::default(), &["data_sync=sometimes".to_owned()]).is_err());
        let redis = ["engine=redis".to_owned(), "data_dir=/tmp/x".to_owned()];
        let error = load(None, FlagOverrides::default(), &redis).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("data_dir is for the memory engine"), "{error}");
    }

    #[test]
    fn http_limits_are_settable_and_validated_by_name() {
        let set = ["max_connections=900".to_owned(), "header_read_timeout_ms=2500".to_owned()];
        let loaded = load(None, FlagOverrides::default(), &set).expect("valid settings");
        let config = loaded.settings.http_config();
        assert_eq!(config.max_connections, 900);
        assert_eq!(config.header_read_timeout, Duration::from_millis(2500));
        assert_eq!(config.request_timeout, server::DEFAULT_REQUEST_TIMEOUT);
        for bad in ["max_connections=0", "request_timeout_ms=0", "body_read_timeout_ms=99999999"] {
            let error = load(None, FlagOverrides::default(), &[bad.to_owned()]).err().expect(bad);
            let name = bad.split('=').next().unwrap_or_default();
            assert!(format!("{error:#}").contains(name), "{bad}: {error:#}");
        }
    }

    #[test]
    fn redis_url_is_built_from_the_seed_variables() {
        let r = RedisSettings {
            host: Some("cache".into()),
            port: Some(6380),
            password: Some("p@ss".into()),
            db: Some(2),
            ..RedisSettings::default()
        };
        assert_eq!(r.resolved_url(), "redis://:p%40ss@cache:6380/2");
        assert_eq!(redact_url("redis://:p%40ss@cache:6380/2"), "redis://:<redacted>@cache:6380/2");
        assert_eq!(redact_url("redis://cache:6380"), "redis://cache:6380");
    }

    fn load_env(vars: &[(&str, &str)], set: &[&str]) -> anyhow::Result<Settings> {
        let set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
        let lookup = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned());
        load_with(None, FlagOverrides::default(), &set, lookup).map(|loaded| loaded.settings)
    }

    #[test]
    fn topology_variables_pick_redis_and_reach_the_engine_config() {
        let settings = load_env(&[("REDIS_CLUSTER_NODES", " 10.0.0.1:7000, redis://10.0.0.2:7001 ,")], &[]).unwrap();
        assert_eq!(settings.engine_kind(), EngineKind::Redis);
        let config = settings.redis.engine_config();
        assert_eq!(config.cluster_nodes, ["10.0.0.1:7000", "redis://10.0.0.2:7001"]);
        assert_eq!(config.topology(), switchboard_redis::Topology::Cluster);

        let vars = [
            ("REDIS_SENTINELS", "s1:26379,s2:26379,s3:26379"),
            ("REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_SENTINEL_PASSWORD", "s3cret"),
            ("REDIS_PASSWORD", "data-pass"),
        ];
        let settings = load_env(&vars, &[]).unwrap();
        assert_eq!(settings.engine_kind(), EngineKind::Redis);
        let config = settings.redis.engine_config();
        assert_eq!(config.topology(), switchboard_redis::Topology::Sentinel);
        assert_eq!(config.sentinels.len(), 3);
        assert_eq!(config.sentinel_master, "mymaster");
        assert_eq!(config.sentinel_password.as_deref(), Some("s3cret"));
        assert!(config.url.contains("data-pass"), "the data nodes' password goes with the URL");
        let shown = settings.redacted().to_string();
        assert!(!shown.contains("s3cret") && !shown.contains("data-pass"), "{shown}");

        // The file / SWITCHBOARD_REDIS__* / --set path takes the same comma-separated form, or a list.
        let settings = load_env(&[], &["redis.cluster_nodes=a:7000,b:7001", "redis.wait_replicas=1"]).unwrap();
        assert_eq!(settings.redis.engine_config().wait_replicas, 1);
        assert_eq!(settings.redis.engine_config().cluster_nodes, ["a:7000", "b:7001"]);
        assert_eq!(settings.engine_kind(), EngineKind::Redis);
        let settings = load_env(&[], &[r#"redis.sentinels=["a:26379"]"#, "redis.sentinel_master=m"]).unwrap();
        assert_eq!(settings.redis.engine_config().sentinels, ["a:26379"]);
        // A named engine still wins.
        let settings = load_env(&[("REDIS_CLUSTER_NODES", "a:7000")], &["engine=memory"]).unwrap();
        assert_eq!(settings.engine_kind(), EngineKind::Memory);
    }

    #[test]
    fn bad_topology_settings_are_start_up_errors_naming_the_setting() {
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: [(Vars, &[&str], &str); 7] = [
            (
                &[("REDIS_CLUSTER_NODES", "a:7000"), ("REDIS_SENTINELS", "b:26379"), ("REDIS_SENTINEL_MASTER", "m")],
                &[],
                "REDIS_SENTINELS",
            ),
            (&[("REDIS_CLUSTER_NODES", "")], &[], "REDIS_CLUSTER_NODES"),
            (&[("REDIS_CLUSTER_NODES", " , ")], &[], "REDIS_CLUSTER_NODES"),
            (&[("REDIS_SENTINELS", ""), ("REDIS_SENTINEL_MASTER", "m")], &[], "REDIS_SENTINELS"),
            (&[("REDIS_CLUSTER_NODES", "a:7000,not-an-address")], &[], "REDIS_CLUSTER_NODES"),
            (&[("REDIS_SENTINELS", "a:26379")], &[], "REDIS_SENTINEL_MASTER"),
            (&[], &["redis.cluster_nodes=a:99999"], "cluster_nodes"),
        ];
        for (vars, set, named) in cases {
            let error =
                format!("{:#}", load_env(vars, set).err().unwrap_or_else(|| panic!("{vars:?} {set:?} must fail")));
            assert!(error.contains(named), "{vars:?} {set:?}: {error}");
        }
    }
}
