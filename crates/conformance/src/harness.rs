//! Test harness: engine factories, a real `redis-server` on a free port, a Redis Cluster and a
//! Sentinel deployment of such servers ([`RedisCluster`], [`RedisSentinel`]), and [`eventually`].

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
    /// `memory`, `durable` (the memory engine with a data dir), `redis`, `redis-cluster` or
    /// `redis-sentinel`.
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
    /// Starts the node (live subscriptions and workers need it), unless it runs already.
    pub fn start(&self) {
        if !self.sb.is_running() {
            self.sb.start().expect("start the node");
        }
    }

    /// A raw engine of the same kind, no facade over it yet: for Redis a new connection to the
    /// same server and key prefix, for memory a fresh engine.
    pub async fn raw_engine(&self) -> Engine {
        match &self.redis {
            Some(config) => switchboard_redis::connect(config.clone()).await.expect("connect another engine"),
            None => switchboard_memory::engine(MemoryConfig::default()).expect("valid memory config"),
        }
    }

    /// A fresh engine of the same kind ([`TestEngine::raw_engine`]) with a facade built from
    /// `config` changed by `change` (the `test` policies included), for options off by default.
    pub async fn configured(&self, change: impl FnOnce(&mut SwitchboardConfig)) -> TestEngine {
        let mut config = test_config();
        change(&mut config);
        let engine = self.raw_engine().await;
        let sb = Switchboard::new(engine.clone(), config).expect("valid config");
        TestEngine { engine, sb, name: self.name, redis: self.redis.clone(), data_dir: None }
    }

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

/// A Redis engine on this test process's shared 3-master [`RedisCluster`], under a key prefix
/// no other case uses.
pub async fn redis_cluster_engine() -> TestEngine {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    let cluster = CLUSTER.get_or_init(|| RedisCluster::start(3, 0));
    redis_engine_on(RedisConfig::default().with_cluster_nodes(cluster.seeds()), "redis-cluster").await
}

/// A Redis engine on this test process's shared [`RedisSentinel`] deployment, under a key
/// prefix no other case uses.
pub async fn redis_sentinel_engine() -> TestEngine {
    static DEPLOYMENT: OnceLock<RedisSentinel> = OnceLock::new();
    let deployment = DEPLOYMENT.get_or_init(RedisSentinel::start_unsettled);
    redis_engine_on(
        RedisConfig::default().with_sentinels(deployment.addresses(), RedisSentinel::MASTER),
        "redis-sentinel",
    )
    .await
}

/// A Redis engine with `config` under a fresh key prefix.
pub async fn redis_engine_on(config: RedisConfig, name: &'static str) -> TestEngine {
    static CASE: AtomicU64 = AtomicU64::new(0);
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let config = config.with_key_prefix(format!("sbt:{}:{name}:{case}:", std::process::id()));
    let engine = switchboard_redis::connect(config.clone()).await.expect("connect to the test deployment");
    TestEngine { redis: Some(config), ..wrap(engine, name) }
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
        Self::start_free(|_| (Vec::new(), Vec::new()))
    }

    /// Starts `redis-server` on `port` with extra arguments (e.g. `["--appendonly", "yes"]`);
    /// they come last, so they override the defaults (no persistence, `--dir` a directory of
    /// its own under the temp dir, the same for a restart on the same port).
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        Self::spawn(port, &[], extra).unwrap_or_else(|why| panic!("{why}"))
    }

    /// Starts a server on free ports: `args` gets the port (and may take more free ports) and
    /// returns the leading and extra arguments (see [`RedisServer::spawn`]). Another test
    /// process may take a port between its choice and the server's bind; then this tries again
    /// with other ports.
    fn start_free(args: impl Fn(u16) -> (Vec<String>, Vec<String>)) -> RedisServer {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let (leading, extra) = args(port);
            let leading: Vec<&str> = leading.iter().map(String::as_str).collect();
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            match Self::spawn(port, &leading, &extra) {
                Ok(server) => return server,
                Err(why) => last = why,
            }
        }
        panic!("{last}")
    }

    /// Starts `redis-server <leading...> --port <port> ... <extra...>`: `leading` comes first,
    /// where `redis-server` expects a config file. Fails if the server exits or another one
    /// answers on the port.
    fn spawn(port: u16, leading: &[&str], extra: &[&str]) -> Result<RedisServer, String> {
        require_tool("redis-server");
        // Its own directory: a replica writes the RDB it receives there, and a server started
        // later in a shared directory would load it.
        let dir = std::env::temp_dir().join(format!("sb-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let port_s = port.to_string();
        let mut args = leading.to_vec();
        args.extend_from_slice(&["--port", &port_s, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
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
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
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

    /// Waits until this server (its process id, not another on the port) answers PING.
    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let alive = Command::new("kill").args(["-0", &self.pid.to_string()]).status().is_ok_and(|s| s.success());
            if !alive {
                return Err(format!("redis-server on port {} exited at start (port taken?)", self.port));
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let mut buf = [0u8; 7];
                if s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n" {
                    let info = self.cli(&["info", "server"]);
                    return match info.contains(&format!("process_id:{}\r", self.pid))
                        || info.contains(&format!("process_id:{}\n", self.pid))
                    {
                        true => Ok(()),
                        false => Err(format!("another redis-server answers on port {}", self.port)),
                    };
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("redis-server on port {} did not answer PING within {timeout:?}", self.port))
    }

    /// Stops the server and waits until it has exited.
    pub fn stop(mut self) {
        self.shutdown();
    }

    /// Kills the server at once (SIGKILL: no shutdown save, no final fsync) and waits until it
    /// has exited; a restart on the same port and `--dir` shows what it had persisted.
    pub fn kill_hard(mut self) {
        self.kill_now();
        self.shutdown();
    }

    /// SIGKILLs the server, leaving this handle (and its shell) to be dropped later.
    pub fn kill_now(&self) {
        let status = Command::new("kill").args(["-9", &self.pid.to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -9 redis-server {}", self.pid);
    }

    /// Runs `redis-cli -p <port> <args...>` and returns its output (for test set-up only).
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args).unwrap_or_else(|e| panic!("redis-cli {args:?}: {e}"))
    }

    /// [`RedisServer::cli`] that answers a failure (the server closed the connection, as a
    /// master does to its clients while a failover demotes it) instead of panicking.
    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        require_tool("redis-cli");
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// Panics with install advice unless `tool --version` runs: Redis tests never skip silently.
fn require_tool(tool: &str) {
    static CHECKED: OnceLock<()> = OnceLock::new();
    let ok = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if tool == "redis-server" && CHECKED.get().is_some() {
        return;
    }
    if !ok(tool) {
        panic!(
            "{tool} is not installed: the Redis engine tests need a real one. Install it with \
             `apt-get install redis-server` (which brings redis-cli and redis-sentinel; scripts/test does this for you)."
        );
    }
    if tool == "redis-server" {
        let _ = CHECKED.set(());
    }
}

/// A Redis Cluster this process started: `masters` masters on free loopback ports, each with
/// `replicas_per_master` replicas, slots split evenly. Stopped when dropped.
pub struct RedisCluster {
    /// Every node, masters first as created (roles change after a failover).
    pub nodes: Vec<RedisServer>,
    masters: usize,
    config_files: Vec<std::path::PathBuf>,
    /// Each node's cluster arguments (config file, bus port), for [`RedisCluster::restart`].
    cluster_args: Vec<Vec<String>>,
}

impl std::fmt::Debug for RedisCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCluster").field("nodes", &self.nodes).finish_non_exhaustive()
    }
}

impl RedisCluster {
    /// Starts the nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` and knows every other node.
    pub fn start(masters: usize, replicas_per_master: usize) -> RedisCluster {
        require_tool("redis-server");
        require_tool("redis-cli");
        let count = masters * (1 + replicas_per_master);
        let mut nodes = Vec::with_capacity(count);
        let mut config_files = Vec::with_capacity(count);
        let mut cluster_args = Vec::with_capacity(count);
        for _ in 0..count {
            let file = std::cell::RefCell::new(std::path::PathBuf::new());
            let args = std::cell::RefCell::new(Vec::new());
            let node = RedisServer::start_free(|port| {
                let path = std::env::temp_dir().join(format!("sb-cluster-{}-{port}.conf", std::process::id()));
                let _ = std::fs::remove_file(&path);
                let extra = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    path.to_string_lossy().into_owned(),
                    "--cluster-port".into(),
                    free_port().to_string(),
                    "--cluster-node-timeout".into(),
                    "2000".into(),
                ];
                *file.borrow_mut() = path;
                *args.borrow_mut() = extra.clone();
                (Vec::new(), extra)
            });
            let file = file.into_inner();
            nodes.push(node);
            config_files.push(file);
            cluster_args.push(args.into_inner());
        }
        let cluster = RedisCluster { nodes, masters, config_files, cluster_args };
        // What `redis-cli --cluster create` does, without its one-second waits: distinct config
        // epochs, an even slot split over the masters, every node introduced to the first, then
        // each replica attached to its master.
        let first = cluster.nodes[0].port().to_string();
        // The bus port is not port + 10000 here (`--cluster-port`): MEET must name it.
        let first_nodes = cluster.nodes[0].cli(&["cluster", "nodes"]);
        let first_bus = first_nodes
            .lines()
            .find(|l| l.contains("myself"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|addr| addr.split('@').nth(1))
            .and_then(|bus| bus.split(',').next())
            .unwrap_or_else(|| panic!("no bus port in CLUSTER NODES: {first_nodes}"))
            .to_owned();
        for (i, master) in cluster.nodes[..masters].iter().enumerate() {
            master.cli(&["cluster", "set-config-epoch", &(i + 1).to_string()]);
            let start = 16384 * i / masters;
            let end = 16384 * (i + 1) / masters - 1;
            let reply = master.cli(&["cluster", "addslotsrange", &start.to_string(), &end.to_string()]);
            assert!(reply.trim() == "OK", "CLUSTER ADDSLOTSRANGE {start} {end}: {reply}");
        }
        for node in &cluster.nodes[1..] {
            let reply = node.cli(&["cluster", "meet", "127.0.0.1", &first, &first_bus]);
            assert!(reply.trim() == "OK", "CLUSTER MEET: {reply}");
        }
        for (i, replica) in cluster.nodes[masters..].iter().enumerate() {
            let master_id = cluster.nodes[i % masters].cli(&["cluster", "myid"]).trim().to_owned();
            let deadline = Instant::now() + Duration::from_secs(30);
            // The replica must know the master first (the meet spreads by gossip).
            while replica.cli(&["cluster", "replicate", &master_id]).trim() != "OK" {
                assert!(Instant::now() < deadline, "replica {} never learned master {master_id}", replica.port());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster.wait_ok(Duration::from_secs(30));
        cluster
    }

    /// Waits until every node reports `cluster_state:ok` and sees every node and every replica.
    pub fn wait_ok(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let ok = self.nodes.iter().all(|node| {
                let info = node.cli(&["cluster", "info"]);
                info.contains("cluster_state:ok")
                    && info.contains(&format!("cluster_known_nodes:{}", self.nodes.len()))
                    && node.cli(&["cluster", "nodes"]).lines().filter(|l| l.contains("slave")).count()
                        == self.nodes.len() - self.masters
            });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "the test cluster did not reach cluster_state:ok within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts the node at `index` again (after a kill) on its port with its cluster config file,
    /// which still names the cluster and its other nodes: it rejoins, and a master whose slots
    /// were taken over meanwhile comes back as a replica of the node that took them. Returns
    /// without waiting for it to rejoin.
    pub fn restart(&mut self, index: usize) {
        let port = self.nodes[index].port();
        let args: Vec<&str> = self.cluster_args[index].iter().map(String::as_str).collect();
        // The old handle's shell goes first (it only waits for the killed server).
        self.nodes[index].shutdown();
        self.nodes[index] = RedisServer::start_with(port, &args);
    }

    /// The index in [`RedisCluster::nodes`] of the master serving `slot` now.
    pub fn master_of(&self, slot: u16) -> usize {
        let nodes = self.live_node().cli(&["cluster", "nodes"]);
        let port = nodes
            .lines()
            .filter(|l| l.contains("master") && !l.contains("fail"))
            .find(|l| {
                l.split_whitespace().skip(8).any(|range| match range.split_once('-') {
                    Some((a, b)) => {
                        a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b)
                    }
                    None => range.parse::<u16>().is_ok_and(|s| s == slot),
                })
            })
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|addr| addr.split('@').next()?.rsplit(':').next()?.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("no master serves slot {slot}:\n{nodes}"));
        self.index_of(port)
    }

    /// The index in [`RedisCluster::nodes`] of a replica of the master at index `master`.
    pub fn replica_of(&self, master: usize) -> usize {
        let nodes = self.live_node().cli(&["cluster", "nodes"]);
        let master_port = self.nodes[master].port();
        let master_id = nodes
            .lines()
            .find(|l| l.split_whitespace().nth(1).is_some_and(|a| a.starts_with(&format!("127.0.0.1:{master_port}@"))))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("node {master_port} is not in the cluster:\n{nodes}"))
            .to_owned();
        let port = nodes
            .lines()
            .find(|l| l.split_whitespace().nth(3) == Some(master_id.as_str()))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|addr| addr.split('@').next()?.rsplit(':').next()?.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("node {master_port} has no replica:\n{nodes}"));
        self.index_of(port)
    }

    fn index_of(&self, port: u16) -> usize {
        self.nodes.iter().position(|n| n.port() == port).unwrap_or_else(|| panic!("no node on port {port}"))
    }

    /// A node that answers (the first one, unless it was killed).
    fn live_node(&self) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| TcpStream::connect(("127.0.0.1", n.port())).is_ok())
            .expect("every cluster node is down")
    }

    /// The seed node addresses, `127.0.0.1:<port>` each.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        for file in &self.config_files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A Sentinel deployment this process started: a master, one replica of it, and three
/// Sentinels (quorum 2) monitoring it as [`RedisSentinel::MASTER`], with a 1 s down-after time.
/// Stopped when dropped.
pub struct RedisSentinel {
    /// The first master.
    pub master: RedisServer,
    /// Its replica.
    pub replica: RedisServer,
    /// The three Sentinels.
    pub sentinels: Vec<RedisServer>,
    config_files: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSentinel")
            .field("master", &self.master)
            .field("replica", &self.replica)
            .field("sentinels", &self.sentinels)
            .finish_non_exhaustive()
    }
}

impl RedisSentinel {
    /// The monitored master's name.
    pub const MASTER: &'static str = "sbmaster";

    /// Starts the master, the replica and the Sentinels, and waits until the replica is in sync
    /// and every Sentinel knows it and the other Sentinels.
    pub fn start() -> RedisSentinel {
        Self::start_with(true)
    }

    /// Like [`RedisSentinel::start`], but returns once the Sentinels answer where the master
    /// is, without waiting for them to discover the replica and each other (a few seconds):
    /// enough for cases that need no failover.
    pub fn start_unsettled() -> RedisSentinel {
        Self::start_with(false)
    }

    fn start_with(settled: bool) -> RedisSentinel {
        require_tool("redis-server");
        require_tool("redis-cli");
        let master = RedisServer::start();
        let master_port = master.port().to_string();
        let replica = RedisServer::start_free(|_| {
            (Vec::new(), vec!["--replicaof".into(), "127.0.0.1".into(), master_port.clone()])
        });
        let mut sentinels = Vec::new();
        let mut config_files = Vec::new();
        for _ in 0..3 {
            let file = std::cell::RefCell::new(std::path::PathBuf::new());
            let sentinel = RedisServer::start_free(|port| {
                let path = std::env::temp_dir().join(format!("sb-sentinel-{}-{port}.conf", std::process::id()));
                let config = format!(
                    "sentinel monitor {name} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n\
                     sentinel parallel-syncs {name} 1\n",
                    name = Self::MASTER
                );
                std::fs::write(&path, config).expect("write a sentinel config file");
                let leading = vec![path.to_string_lossy().into_owned(), "--sentinel".into()];
                *file.borrow_mut() = path;
                (leading, Vec::new())
            });
            sentinels.push(sentinel);
            let file = file.into_inner();
            config_files.push(file);
        }
        let deployment = RedisSentinel { master, replica, sentinels, config_files };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = !settled
                && deployment
                    .sentinels
                    .iter()
                    .all(|s| s.cli(&["sentinel", "get-master-addr-by-name", Self::MASTER]).contains(&master_port));
            if ready {
                return deployment;
            }
            let ready = settled
                && deployment.sentinels.iter().all(|s| {
                    let info = s.cli(&["sentinel", "master", Self::MASTER]);
                    let field = |name: &str| {
                        let mut lines = info.lines();
                        lines.by_ref().find(|l| l.trim() == name);
                        lines.next().map(|v| v.trim().to_owned()).unwrap_or_default()
                    };
                    field("num-slaves") == "1" && field("num-other-sentinels") == "2"
                })
                && deployment.master.cli(&["info", "replication"]).contains("state=online");
            if ready {
                return deployment;
            }
            assert!(Instant::now() < deadline, "the test Sentinels did not discover each other within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The Sentinels' addresses, `127.0.0.1:<port>` each.
    pub fn addresses(&self) -> Vec<String> {
        self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port())).collect()
    }

    /// The master's port as the first Sentinel reports it now.
    pub fn current_master_port(&self) -> Option<u16> {
        let out = self.sentinels[0].cli(&["sentinel", "get-master-addr-by-name", Self::MASTER]);
        out.lines().nth(1).and_then(|p| p.trim().parse().ok())
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.sentinels.clear();
        for file in &self.config_files {
            let _ = std::fs::remove_file(file);
        }
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
