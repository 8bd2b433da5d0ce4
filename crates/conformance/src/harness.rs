//! Test harness: engine factories, a real `redis-server` on a free port, and [`eventually`].

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use switchboard_core::{Engine, Switchboard, SwitchboardConfig};
use switchboard_memory::{MemoryConfig, SyncPolicy};
use switchboard_redis::RedisConfig;

/// An engine under test, with the facade over it. Holds whatever keeps the engine alive.
pub struct TestEngine {
    /// The raw capability implementations.
    pub engine: Engine,
    /// The services over them, with default config plus the `test` policies.
    pub sb: Switchboard,
    /// `memory`, `durable` (the memory engine with a data dir) or `redis`.
    pub name: &'static str,
    /// For Redis: the settings, so [`TestEngine::sibling`] can connect another node.
    redis: Option<RedisConfig>,
    /// For the durable engine: its data dir, removed when the last holder is dropped.
    data_dir: Option<Arc<TempDir>>,
}

/// A fresh directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory (not created yet: the engine creates it).
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("switchboard-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        TempDir(path)
    }

    /// Its path.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl std::fmt::Debug for TestEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEngine").field("name", &self.name).finish_non_exhaustive()
    }
}

impl TestEngine {
    /// Another node on the same backing store: for Redis a second engine (own connections, own
    /// broker and hub) on the same server and key prefix; for memory, which has one node only,
    /// this same engine.
    pub async fn sibling(&self) -> TestEngine {
        match &self.redis {
            Some(config) => {
                let engine = switchboard_redis::connect(config.clone()).await.expect("connect the sibling");
                TestEngine { redis: Some(config.clone()), ..wrap(engine, self.name) }
            }
            None => TestEngine {
                engine: self.engine.clone(),
                sb: self.sb.clone(),
                name: self.name,
                redis: None,
                data_dir: self.data_dir.clone(),
            },
        }
    }
}

fn test_config() -> SwitchboardConfig {
    let mut config = SwitchboardConfig::default();
    config.rate_limits.policies.insert("test_send".into(), "3 per 60 s".parse().expect("valid policy"));
    config
}

fn wrap(engine: Engine, name: &'static str) -> TestEngine {
    let sb = Switchboard::new(engine.clone(), test_config()).expect("test config is valid");
    TestEngine { engine, sb, name, redis: None, data_dir: None }
}

/// A fresh memory engine with a fast sweeper.
pub async fn memory_engine() -> TestEngine {
    let config = MemoryConfig { sweep_interval: Duration::from_millis(50), ..MemoryConfig::default() };
    wrap(switchboard_memory::engine(config).expect("valid memory config"), "memory")
}

/// A fresh durable memory engine (sync `everysec`) on its own temporary data dir, with a fast
/// sweeper.
pub async fn durable_engine() -> TestEngine {
    let dir = Arc::new(TempDir::new("conformance"));
    let config = MemoryConfig {
        sweep_interval: Duration::from_millis(50),
        data_dir: Some(dir.path().to_path_buf()),
        sync: SyncPolicy::EverySec,
        ..MemoryConfig::default()
    };
    let engine = switchboard_memory::engine(config).expect("the data dir opens");
    TestEngine { data_dir: Some(dir), ..wrap(engine, "durable") }
}

/// A Redis engine on this test process's shared `redis-server`, under a key prefix no other case
/// uses.
pub async fn redis_engine() -> TestEngine {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    static CASE: AtomicU64 = AtomicU64::new(0);
    let server = SERVER.get_or_init(RedisServer::start);
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let config =
        RedisConfig { key_prefix: format!("sbt:{}:{case}:", std::process::id()), ..RedisConfig::new(server.url()) };
    let engine = switchboard_redis::connect(config.clone()).await.expect("connect to the test redis-server");
    TestEngine { redis: Some(config), ..wrap(engine, "redis") }
}

/// A `redis-server` this process started on a free loopback port, stopped when dropped — and also
/// when this process dies: it runs under a shell that kills it once our end of its stdin closes.
pub struct RedisServer {
    port: u16,
    pid: u32,
    shell: Child,
    stdin: Option<ChildStdin>,
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer").field("port", &self.port).field("pid", &self.pid).finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Starts `redis-server` on a free port without persistence. Panics with install advice if
    /// `redis-server` is missing: Redis tests never skip silently.
    pub fn start() -> RedisServer {
        Self::start_with(free_port(), &[])
    }

    /// Starts `redis-server` on `port` with extra arguments (e.g. `["--appendonly", "yes"]`);
    /// they come last, so they override the defaults (no persistence, `--dir` the temp dir).
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let version = Command::new("redis-server").arg("--version").output();
        if !version.is_ok_and(|o| o.status.success()) {
            panic!(
                "redis-server is not installed: the Redis engine tests need a real one. Install it with \
                 `apt-get install redis-server` (scripts/test does this for you)."
            );
        }
        let dir = std::env::temp_dir();
        let port_s = port.to_string();
        let mut args = vec!["--port", &port_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
        args.extend_from_slice(&[
            "--dir",
            dir.to_str().unwrap_or("/tmp"),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]);
        args.extend_from_slice(extra);
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(r#"redis-server "$@" >/dev/null 2>&1 & pid=$!; echo $pid; read _closed; kill $pid 2>/dev/null; wait $pid"#)
            .arg("sh")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh for redis-server");
        let stdin = shell.stdin.take();
        let mut line = String::new();
        if let Some(stdout) = shell.stdout.take() {
            BufReader::new(stdout).read_line(&mut line).expect("read redis-server's pid");
        }
        let pid = line.trim().parse().expect("the shell prints redis-server's pid");
        let server = RedisServer { port, pid, shell, stdin };
        server.wait_ready(Duration::from_secs(10));
        server
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends one inline command and returns the first reply line (for test set-up only).
    pub fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to test redis");
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        stream.write_all(format!("{command}\r\n").as_bytes()).expect("write to test redis");
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).expect("read from test redis");
        line.trim_end().to_owned()
    }

    fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {} did not answer PING within {timeout:?}", self.port);
    }

    /// Stops the server and waits until it has exited.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Kills the server at once (SIGKILL: no shutdown save, no final fsync) and waits until it
    /// has exited; a restart on the same port and `--dir` shows what it had persisted.
    pub fn kill_hard(mut self) {
        let status = Command::new("kill").args(["-9", &self.pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -9 redis-server {}", self.pid);
        self.shutdown();
    }

    fn shutdown(&mut self) {
        // Closing its stdin makes the shell kill redis-server and wait for it.
        drop(self.stdin.take());
        let _ = self.shell.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("find a free port")
}

/// Polls `check` every 20 ms until it returns true; panics with `what` after `timeout`. TTL cases
/// use this instead of fixed sleeps.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("not true within {timeout:?}: {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
