//! `switchboard-bench gateway`: one load client for Switchboard's WebSocket gateway (Centrifugo
//! client protocol v2, in its JSON or its Protobuf variant) and for a Socket.IO server (engine.io v4 / socket.io v5 over a raw
//! WebSocket), so both get the same load: memory per idle connection, fan-out latency of one
//! publication to many subscribers, and delivered publications per second.
//!
//! Latency is the time from just before the HTTP publish request to each subscriber's receipt,
//! measured with the wall-clock nanoseconds embedded in the payload (client and server share the
//! machine's clock). Every publication is one HTTP request on both servers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_server::gateway::protobuf::{decode_replies, encode_command};
use switchboard_server::gateway::protocol::{
    Command as PbCommand, CommandResult, ConnectRequest, Method, Reply, SubscribeRequest, UnsubscribeRequest,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How long one connection may take to open and handshake.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a subscribe (or join) may take to be acknowledged.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for every subscriber to receive one latency publication.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Publication requests in flight during the throughput burst.
const BURST_PUBLISHERS: usize = 4;

/// Arguments of `switchboard-bench gateway`.
#[derive(Args)]
pub(crate) struct GatewayArgs {
    /// Which server: `switchboard` (Centrifugo protocol, JSON), `switchboard-protobuf` (the same
    /// server, Protobuf variant) or `socketio` (socket.io v5).
    #[arg(long, value_enum)]
    target: Target,
    /// The server's base URL, e.g. http://127.0.0.1:7700.
    #[arg(long)]
    url: String,
    /// The server's process id: its RSS is read from `/proc/<pid>/status`.
    #[arg(long)]
    server_pid: u32,
    /// API key sent as `Authorization: Bearer` with publications (and conversation puts).
    #[arg(long, env = "BENCH_API_KEY")]
    api_key: String,
    /// HS256 secret client tokens are minted with (switchboard only).
    #[arg(long, env = "SWITCHBOARD_TOKEN_SECRET")]
    token_secret: Option<String>,
    /// Idle connections held while memory is measured (more are opened if a fan-out needs them).
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Subscriber counts of the latency runs, comma-separated (0 = none).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    fanout: Vec<usize>,
    /// Publications per latency run (each waits for every subscriber before the next).
    #[arg(long, default_value_t = 20)]
    publications: usize,
    /// Subscribers of the throughput burst.
    #[arg(long, default_value_t = 1000)]
    burst_subscribers: usize,
    /// Publications of the throughput burst.
    #[arg(long, default_value_t = 500)]
    burst: usize,
    /// Connections opened at once.
    #[arg(long, default_value_t = 200)]
    connect_concurrency: usize,
    /// Connections per loopback source address (127.1.x.y); 0 = the OS default source. Switchboard
    /// limits connects per IP (120 a minute), as a real deployment sees many client addresses.
    #[arg(long, default_value_t = 100)]
    per_source_ip: usize,
    /// The conversation (`chat:<id>`) or room the subscribers join.
    #[arg(long, default_value = "bench")]
    channel: String,
}

/// The server under test.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Switchboard,
    SwitchboardProtobuf,
    Socketio,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Switchboard => "Switchboard gateway (JSON)",
            Target::SwitchboardProtobuf => "Switchboard gateway (Protobuf)",
            Target::Socketio => "Socket.IO",
        }
    }

    fn is_switchboard(self) -> bool {
        matches!(self, Target::Switchboard | Target::SwitchboardProtobuf)
    }
}

/// One publication received by one subscriber.
struct Delivery {
    seq: u64,
    sent_ns: u64,
    received_ns: u64,
}

/// Connections the server (or the network) ended during the run.
#[derive(Default)]
struct Drops {
    count: AtomicU64,
    first: Mutex<Option<String>>,
}

impl Drops {
    fn record(&self, why: String) {
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        first.get_or_insert(why);
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

pub(crate) async fn run(args: GatewayArgs) -> anyhow::Result<()> {
    let bench = Bench::new(args)?;
    let report = bench.run().await?;
    report.print();
    Ok(())
}

struct Bench {
    args: GatewayArgs,
    /// host:port of the server.
    addr: SocketAddr,
    http: reqwest::Client,
    drops: Arc<Drops>,
    deliveries_tx: mpsc::UnboundedSender<Delivery>,
    deliveries: mpsc::UnboundedReceiver<Delivery>,
    next_seq: u64,
}

/// Figures of one fan-out run.
struct Fanout {
    subscribers: usize,
    publications: usize,
    expected: u64,
    latencies_ns: Vec<u64>,
    publish_call_ns: Vec<u64>,
    /// RSS growth per subscription (joining the channel or room).
    per_subscription: f64,
    /// CPU time per measured publication: the server's and this client's.
    server_cpu: Duration,
    client_cpu: Duration,
}

/// Figures of the throughput burst.
struct Burst {
    subscribers: usize,
    publications: usize,
    delivered: u64,
    elapsed: Duration,
    publish_elapsed: Duration,
    latencies_ns: Vec<u64>,
}

struct Report {
    target: Target,
    url: String,
    opened: usize,
    open_elapsed: Duration,
    rss_before: u64,
    rss_idle: u64,
    fanouts: Vec<Fanout>,
    burst: Option<Burst>,
    drops: u64,
    first_drop: Option<String>,
}

impl Bench {
    fn new(args: GatewayArgs) -> anyhow::Result<Self> {
        let hostport = args
            .url
            .strip_prefix("http://")
            .context("--url must be http://host:port")?
            .trim_end_matches('/')
            .to_owned();
        let addr: SocketAddr = hostport.parse().with_context(|| format!("--url: {hostport} is not an ip:port"))?;
        if args.target.is_switchboard() && args.token_secret.is_none() {
            bail!("--token-secret (or SWITCHBOARD_TOKEN_SECRET) is needed to connect to Switchboard");
        }
        let http = reqwest::Client::builder().pool_max_idle_per_host(BURST_PUBLISHERS * 2).build()?;
        let (deliveries_tx, deliveries) = mpsc::unbounded_channel();
        Ok(Bench { args, addr, http, drops: Arc::default(), deliveries_tx, deliveries, next_seq: 0 })
    }

    async fn run(mut self) -> anyhow::Result<Report> {
        let needed = std::iter::once(self.args.connections)
            .chain(self.args.fanout.iter().copied())
            .chain(std::iter::once(self.args.burst_subscribers))
            .max()
            .unwrap_or(0);
        let rss_before = rss_bytes(self.args.server_pid)?;
        let started = Instant::now();
        let conns = self.open_all(needed).await?;
        let open_elapsed = started.elapsed();
        eprintln!(
            "{}: {} connections open in {:.1}s",
            self.args.target.name(),
            conns.len(),
            open_elapsed.as_secs_f64()
        );
        // Let the server finish what the connects started (presence writes, buffers) before reading.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_idle = rss_bytes(self.args.server_pid)?;

        let mut fanouts = Vec::new();
        let mut sizes: Vec<usize> = self.args.fanout.iter().copied().filter(|&n| n > 0).collect();
        sizes.sort_unstable();
        for n in sizes {
            fanouts.push(self.fanout(&conns, n).await?);
        }
        let burst = match (self.args.burst_subscribers, self.args.burst) {
            (0, _) | (_, 0) => None,
            (n, b) => Some(self.burst(&conns, n, b).await?),
        };
        let opened = conns.len();
        drop(conns);
        let first_drop = self.drops.first.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Ok(Report {
            target: self.args.target,
            url: self.args.url.clone(),
            opened,
            open_elapsed,
            rss_before,
            rss_idle,
            fanouts,
            burst,
            drops: self.drops.count.load(Ordering::Relaxed),
            first_drop,
        })
    }

    /// Opens `n` connections, `connect_concurrency` at a time; fails if any cannot open.
    async fn open_all(&self, n: usize) -> anyhow::Result<Vec<Conn>> {
        let gate = Arc::new(Semaphore::new(self.args.connect_concurrency.max(1)));
        let mut set = JoinSet::new();
        let secret = self.args.token_secret.clone().unwrap_or_default();
        for i in 0..n {
            let permit = gate.clone().acquire_owned().await?;
            let opener = Opener {
                target: self.args.target,
                addr: self.addr,
                source: source_ip(self.addr, i, self.args.per_source_ip),
                token: match self.args.target {
                    Target::Switchboard | Target::SwitchboardProtobuf => Some(mint_token(&secret, i)?),
                    Target::Socketio => None,
                },
                deliveries: self.deliveries_tx.clone(),
                drops: self.drops.clone(),
            };
            set.spawn(async move {
                let conn = tokio::time::timeout(OPEN_TIMEOUT, opener.open(i)).await;
                drop(permit);
                (i, conn)
            });
        }
        let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
        let mut failed = Vec::new();
        while let Some(joined) = set.join_next().await {
            let (i, conn) = joined?;
            match conn {
                Ok(Ok(conn)) => conns[i] = Some(conn),
                Ok(Err(e)) => failed.push(format!("connection {i}: {e:#}")),
                Err(_) => failed.push(format!("connection {i}: no handshake within {OPEN_TIMEOUT:?}")),
            }
        }
        if let Some(first) = failed.first() {
            bail!("{} of {n} connections failed to open; first: {first}", failed.len());
        }
        Ok(conns.into_iter().flatten().collect())
    }

    /// Subscribes the first `n` connections (after making them the conversation's members).
    async fn subscribe(&self, conns: &[Conn], n: usize) -> anyhow::Result<()> {
        if self.args.target.is_switchboard() {
            let members: Vec<String> = (0..n).map(user_id).collect();
            let url = format!("{}/api/v1/conversations/{}", self.args.url, self.args.channel);
            let res = self
                .http
                .put(url)
                .bearer_auth(&self.args.api_key)
                .json(&json!({"type": "group", "members": members}))
                .send()
                .await?;
            if !res.status().is_success() {
                bail!("PUT conversation: {} {}", res.status(), res.text().await.unwrap_or_default());
            }
        }
        let name = self.channel_name();
        self.on_each(&conns[..n], |c| c.command(Cmd::Subscribe, &name)).await.context("subscribe")
    }

    async fn unsubscribe(&self, conns: &[Conn], n: usize) -> anyhow::Result<()> {
        let name = self.channel_name();
        self.on_each(&conns[..n], |c| c.command(Cmd::Unsubscribe, &name)).await.context("unsubscribe")
    }

    async fn on_each<'a, F, Fut>(&self, conns: &'a [Conn], f: F) -> anyhow::Result<()>
    where
        F: Fn(&'a Conn) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + 'a,
    {
        let gate = self.args.connect_concurrency.max(1);
        for chunk in conns.chunks(gate) {
            for result in futures_util::future::join_all(chunk.iter().map(&f)).await {
                result?;
            }
        }
        Ok(())
    }

    fn channel_name(&self) -> String {
        match self.args.target {
            Target::Switchboard | Target::SwitchboardProtobuf => format!("chat:{}", self.args.channel),
            Target::Socketio => self.args.channel.clone(),
        }
    }

    /// One publication through the server's HTTP API, stamped when the request is about to go.
    fn publish(&self, seq: u64) -> impl std::future::Future<Output = anyhow::Result<()>> + 'static {
        let http = self.http.clone();
        let api_key = self.args.api_key.clone();
        let (target, base, channel) = (self.args.target, self.args.url.clone(), self.args.channel.clone());
        async move {
            let data = json!({"type": "bench", "data": {"t": now_ns(), "seq": seq}});
            let (url, body) = match target {
                Target::Switchboard | Target::SwitchboardProtobuf => {
                    (format!("{base}/api/v1/publish"), json!({"channel": format!("chat:{channel}"), "data": data}))
                }
                Target::Socketio => (format!("{base}/publish"), json!({"room": channel, "data": data})),
            };
            let res = http.post(url).bearer_auth(api_key).json(&body).send().await?;
            if !res.status().is_success() {
                bail!("publish: {} {}", res.status(), res.text().await.unwrap_or_default());
            }
            Ok(())
        }
    }

    /// Drops deliveries left over from an earlier run.
    fn drain(&mut self) {
        while self.deliveries.try_recv().is_ok() {}
    }

    async fn fanout(&mut self, conns: &[Conn], n: usize) -> anyhow::Result<Fanout> {
        let rss_before = rss_bytes(self.args.server_pid)?;
        self.subscribe(conns, n).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let per_subscription = (rss_bytes(self.args.server_pid)? as f64 - rss_before as f64) / n.max(1) as f64;
        // One publication to warm up, then the measured ones.
        let mut latencies_ns = Vec::with_capacity(n * self.args.publications);
        let mut publish_call_ns = Vec::new();
        let mut cpu_start = None;
        for k in 0..=self.args.publications {
            if k == 1 {
                let server = self.args.server_pid.to_string();
                cpu_start = Some((cpu_time(&server)?, cpu_time("self")?));
            }
            self.drain();
            let seq = self.next_seq;
            self.next_seq += 1;
            let started = Instant::now();
            self.publish(seq).await?;
            let call = started.elapsed();
            let mut got = Vec::with_capacity(n);
            let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
            while got.len() < n {
                match tokio::time::timeout_at(deadline, self.deliveries.recv()).await {
                    Ok(Some(d)) if d.seq == seq => got.push(d.received_ns.saturating_sub(d.sent_ns)),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            if k > 0 {
                latencies_ns.extend(got);
                publish_call_ns.push(call.as_nanos() as u64);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let per_pub =
            |start: Duration, end: Duration| (end.saturating_sub(start)) / self.args.publications.max(1) as u32;
        let (server_cpu, client_cpu) = match cpu_start {
            Some((server, client)) => {
                (per_pub(server, cpu_time(&self.args.server_pid.to_string())?), per_pub(client, cpu_time("self")?))
            }
            None => (Duration::ZERO, Duration::ZERO),
        };
        self.unsubscribe(conns, n).await?;
        eprintln!("{}: fan-out to {n} done", self.args.target.name());
        Ok(Fanout {
            subscribers: n,
            publications: self.args.publications,
            expected: (n * self.args.publications) as u64,
            latencies_ns,
            publish_call_ns,
            per_subscription,
            server_cpu,
            client_cpu,
        })
    }

    /// `publications` as fast as `BURST_PUBLISHERS` requests in flight allow, to `n` subscribers.
    async fn burst(&mut self, conns: &[Conn], n: usize, publications: usize) -> anyhow::Result<Burst> {
        self.subscribe(conns, n).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        self.drain();
        let first = self.next_seq;
        self.next_seq += publications as u64;
        let requests: Vec<_> = (0..publications as u64).map(|k| self.publish(first + k)).collect();
        let started = Instant::now();
        let publisher = tokio::spawn(async move {
            let mut requests = futures_util::stream::iter(requests).buffer_unordered(BURST_PUBLISHERS);
            while let Some(result) = requests.next().await {
                result?;
            }
            anyhow::Ok(started.elapsed())
        });
        let expected = (n * publications) as u64;
        let mut delivered = 0u64;
        let mut last = started;
        let mut latencies_ns = Vec::with_capacity(expected as usize);
        // Ends when everything arrived, or nothing arrived for a while (dropped or lost).
        while delivered < expected {
            match tokio::time::timeout(Duration::from_secs(5), self.deliveries.recv()).await {
                Ok(Some(d)) if (first..first + publications as u64).contains(&d.seq) => {
                    delivered += 1;
                    last = Instant::now();
                    latencies_ns.push(d.received_ns.saturating_sub(d.sent_ns));
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let publish_elapsed = publisher.await??;
        self.unsubscribe(conns, n).await?;
        eprintln!("{}: burst done", self.args.target.name());
        Ok(Burst { subscribers: n, publications, delivered, elapsed: last - started, publish_elapsed, latencies_ns })
    }
}

/// The loopback source address of connection `i`: `per` connections per address.
fn source_ip(server: SocketAddr, i: usize, per: usize) -> Option<IpAddr> {
    if per == 0 || !server.ip().is_loopback() || !server.is_ipv4() {
        return None;
    }
    let k = i / per;
    Some(IpAddr::V4(Ipv4Addr::new(127, 1 + (k / 62_500) as u8, ((k / 250) % 250) as u8, (k % 250) as u8 + 1)))
}

fn user_id(i: usize) -> String {
    format!("bench{i}")
}

/// The claims `switchboard token` mints.
#[derive(Serialize)]
struct Claims {
    sub: String,
    device: String,
    iat: u64,
    exp: u64,
    jti: String,
}

fn mint_token(secret: &str, i: usize) -> anyhow::Result<String> {
    let now = now_ns() / 1_000_000_000;
    let claims = Claims {
        sub: user_id(i),
        device: "bench".into(),
        iat: now,
        exp: now + 3600,
        jti: format!("bench-{}-{i}", std::process::id()),
    };
    Ok(encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes()))?)
}

/// A process's resident set size from `/proc/<pid>/status`.
fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in {path}"))?;
    Ok(kib * 1024)
}

/// CPU time (user + system, every thread) a process has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: &str) -> anyhow::Result<Duration> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    // Fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).context("bad /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).context("bad /proc stat");
    // USER_HZ is 100 on Linux whatever the kernel's HZ.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

type Ws = WebSocketStream<TcpStream>;

/// What the controller asks a connection to do.
#[derive(Clone, Copy)]
enum Cmd {
    Subscribe,
    Unsubscribe,
}

/// A command with the channel it addresses and where its acknowledgement goes.
struct Order {
    cmd: Cmd,
    channel: String,
    ack: oneshot::Sender<anyhow::Result<()>>,
}

/// One open connection; dropping it closes the socket.
struct Conn {
    orders: mpsc::Sender<Order>,
}

impl Conn {
    async fn command(&self, cmd: Cmd, channel: &str) -> anyhow::Result<()> {
        let (ack, done) = oneshot::channel();
        self.orders
            .send(Order { cmd, channel: channel.to_owned(), ack })
            .await
            .map_err(|_| anyhow!("the connection is closed"))?;
        tokio::time::timeout(ACK_TIMEOUT, done)
            .await
            .map_err(|_| anyhow!("no acknowledgement within {ACK_TIMEOUT:?}"))?
            .map_err(|_| anyhow!("the connection closed before acknowledging"))?
    }
}

/// Everything needed to open one connection.
struct Opener {
    target: Target,
    addr: SocketAddr,
    source: Option<IpAddr>,
    token: Option<String>,
    deliveries: mpsc::UnboundedSender<Delivery>,
    drops: Arc<Drops>,
}

impl Opener {
    async fn open(self, i: usize) -> anyhow::Result<Conn> {
        let socket = TcpSocket::new_v4()?;
        if let Some(ip) = self.source {
            socket.bind(SocketAddr::new(ip, 0)).with_context(|| format!("bind {ip}"))?;
        }
        let stream = socket.connect(self.addr).await.context("tcp connect")?;
        stream.set_nodelay(true)?;
        let path = match self.target {
            Target::Switchboard | Target::SwitchboardProtobuf => "/connection/websocket",
            Target::Socketio => "/socket.io/?EIO=4&transport=websocket",
        };
        let mut request = format!("ws://{}{path}", self.addr).into_client_request()?;
        if self.target == Target::SwitchboardProtobuf {
            request.headers_mut().insert("sec-websocket-protocol", "centrifuge-protobuf".parse()?);
        }
        // Small buffers: 10 000 clients in one process should not need gigabytes.
        let config = WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0);
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
            .await
            .context("websocket handshake")?;
        match self.target {
            Target::Switchboard => {
                let token = self.token.as_deref().unwrap_or_default();
                let connect = json!({"id": 1, "connect": {"token": token, "name": "bench"}});
                ws.send(Message::text(connect.to_string())).await?;
                let reply = next_text(&mut ws).await?;
                let line: SbLine = serde_json::from_str(reply.lines().next().unwrap_or_default())
                    .with_context(|| format!("connect reply: {reply}"))?;
                if line.id != 1 || line.error.is_some() {
                    bail!("connect refused: {reply}");
                }
            }
            Target::SwitchboardProtobuf => {
                let token = self.token.clone().unwrap_or_default();
                let connect =
                    Method::Connect(ConnectRequest { token, name: "bench".into(), ..ConnectRequest::default() });
                ws.send(Message::binary(encode_command(&PbCommand { id: 1, method: connect }))).await?;
                let reply = next_binary(&mut ws).await?;
                let replies = decode_replies(&reply, usize::MAX).context("connect reply")?;
                if !matches!(replies.first(), Some(Reply::Result { id: 1, result: CommandResult::Connect(_) })) {
                    bail!("connect refused: {:?}", replies.first());
                }
            }
            Target::Socketio => {
                let open = next_text(&mut ws).await?;
                if !open.starts_with('0') {
                    bail!("expected the engine.io open packet, got {open}");
                }
                ws.send(Message::text("40")).await?;
                let connected = next_text(&mut ws).await?;
                if !connected.starts_with("40") {
                    bail!("socket.io connect refused: {connected}");
                }
            }
        }
        let (orders, rx) = mpsc::channel(4);
        let session = Session { target: self.target, ws, pending: HashMap::new(), next_id: 2 };
        tokio::spawn(session.run(i, rx, self.deliveries, self.drops));
        Ok(Conn { orders })
    }
}

async fn next_binary(ws: &mut Ws) -> anyhow::Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed by the server"),
        }
    }
}

async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Close(c))) => bail!("closed by the server: {c:?}"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed by the server"),
        }
    }
}

/// One Centrifugo protocol line (reply, push or ping); unknown fields are ignored.
#[derive(Deserialize)]
struct SbLine {
    #[serde(default)]
    id: u32,
    push: Option<SbPush>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct SbPush {
    #[serde(rename = "pub")]
    publication: Option<SbPub>,
}

#[derive(Deserialize)]
struct SbPub {
    data: Value,
}

/// A connection after its handshake: answers pings, runs the controller's orders, reports
/// every bench publication it receives.
struct Session {
    target: Target,
    ws: Ws,
    pending: HashMap<u32, oneshot::Sender<anyhow::Result<()>>>,
    next_id: u32,
}

impl Session {
    async fn run(
        mut self,
        i: usize,
        mut orders: mpsc::Receiver<Order>,
        deliveries: mpsc::UnboundedSender<Delivery>,
        drops: Arc<Drops>,
    ) {
        loop {
            tokio::select! {
                order = orders.recv() => match order {
                    None => {
                        let _ = self.ws.close(None).await;
                        return;
                    }
                    Some(order) => {
                        if let Err(e) = self.order(order).await {
                            drops.record(format!("connection {i}: send failed: {e}"));
                            return;
                        }
                    }
                },
                msg = self.ws.next() => {
                    let received_ns = now_ns();
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Binary(bytes))) => {
                            if let Err(e) = self.on_protobuf(&bytes, received_ns, &deliveries).await {
                                drops.record(format!("connection {i}: {e:#}"));
                                return;
                            }
                            continue;
                        }
                        Some(Ok(Message::Close(c))) => {
                            drops.record(format!("connection {i}: closed by the server: {c:?}"));
                            return;
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => {
                            drops.record(format!("connection {i}: {e}"));
                            return;
                        }
                        None => {
                            drops.record(format!("connection {i}: closed"));
                            return;
                        }
                    };
                    let result = match self.target {
                        Target::Switchboard | Target::SwitchboardProtobuf => {
                            self.on_centrifugo(text.as_str(), received_ns, &deliveries).await
                        }
                        Target::Socketio => self.on_socketio(text.as_str(), received_ns, &deliveries).await,
                    };
                    if let Err(e) = result {
                        drops.record(format!("connection {i}: {e:#}"));
                        return;
                    }
                }
            }
        }
    }

    async fn order(&mut self, order: Order) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        if self.target == Target::SwitchboardProtobuf {
            let channel = order.channel;
            let method = match order.cmd {
                Cmd::Subscribe => Method::Subscribe(SubscribeRequest { channel, ..SubscribeRequest::default() }),
                Cmd::Unsubscribe => Method::Unsubscribe(UnsubscribeRequest { channel }),
            };
            self.pending.insert(id, order.ack);
            self.ws.send(Message::binary(encode_command(&PbCommand { id, method }))).await?;
            return Ok(());
        }
        let text = match (self.target, order.cmd) {
            (Target::Switchboard | Target::SwitchboardProtobuf, Cmd::Subscribe) => {
                json!({"id": id, "subscribe": {"channel": order.channel}}).to_string()
            }
            (Target::Switchboard | Target::SwitchboardProtobuf, Cmd::Unsubscribe) => {
                json!({"id": id, "unsubscribe": {"channel": order.channel}}).to_string()
            }
            (Target::Socketio, Cmd::Subscribe) => format!("42{id}{}", json!(["join", order.channel])),
            (Target::Socketio, Cmd::Unsubscribe) => format!("42{id}{}", json!(["leave", order.channel])),
        };
        self.pending.insert(id, order.ack);
        self.ws.send(Message::text(text)).await?;
        Ok(())
    }

    fn ack(&mut self, id: u32, result: anyhow::Result<()>) {
        if let Some(ack) = self.pending.remove(&id) {
            let _ = ack.send(result);
        }
    }

    async fn on_centrifugo(
        &mut self,
        text: &str,
        received_ns: u64,
        deliveries: &mpsc::UnboundedSender<Delivery>,
    ) -> anyhow::Result<()> {
        for raw in text.lines().filter(|l| !l.is_empty()) {
            let line: SbLine = serde_json::from_str(raw).with_context(|| format!("bad line from the server: {raw}"))?;
            match (line.id, line.push) {
                (0, Some(push)) => {
                    if let Some(p) = push.publication {
                        report(&p.data, received_ns, deliveries);
                    }
                }
                // A server ping: `{}`, answered with `{}`.
                (0, None) => self.ws.send(Message::text("{}")).await?,
                (id, _) => {
                    let result = match line.error {
                        Some(e) => Err(anyhow!("server error: {e}")),
                        None => Ok(()),
                    };
                    self.ack(id, result);
                }
            }
        }
        Ok(())
    }

    /// A binary frame of the Protobuf variant: length-delimited replies, pushes and pings. Read
    /// through [`pb`], which decodes only the fields the bench needs, so the client does about the
    /// work its JSON counterpart does (one JSON parse of the payload per delivery).
    async fn on_protobuf(
        &mut self,
        frame: &[u8],
        received_ns: u64,
        deliveries: &mpsc::UnboundedSender<Delivery>,
    ) -> anyhow::Result<()> {
        use prost::Message as _;
        let mut rest = frame;
        while !rest.is_empty() {
            let reply = pb::Reply::decode_length_delimited(&mut rest).context("bad frame from the server")?;
            match reply {
                pb::Reply { id: 0, push: Some(push), .. } => {
                    if let Some(p) = push.publication {
                        report(&serde_json::from_slice(&p.data)?, received_ns, deliveries);
                    }
                }
                // A server ping: the empty message, answered with the empty command.
                pb::Reply { id: 0, .. } => self.ws.send(Message::binary(vec![0u8])).await?,
                pb::Reply { id, error: Some(e), .. } => self.ack(id, Err(anyhow!("server error {}", e.code))),
                pb::Reply { id, .. } => self.ack(id, Ok(())),
            }
        }
        Ok(())
    }

    async fn on_socketio(
        &mut self,
        text: &str,
        received_ns: u64,
        deliveries: &mpsc::UnboundedSender<Delivery>,
    ) -> anyhow::Result<()> {
        if text == "2" {
            self.ws.send(Message::text("3")).await?;
        } else if let Some(event) = text.strip_prefix("42") {
            let event: Value = serde_json::from_str(event).with_context(|| format!("bad event: {text}"))?;
            if event.get(0).and_then(Value::as_str) == Some("pub")
                && let Some(data) = event.get(1)
            {
                report(data, received_ns, deliveries);
            }
        } else if let Some(ack) = text.strip_prefix("43") {
            let digits = ack.find(|c: char| !c.is_ascii_digit()).unwrap_or(ack.len());
            let id = ack[..digits].parse().with_context(|| format!("bad ack: {text}"))?;
            self.ack(id, Ok(()));
        } else if text.starts_with("41") || text == "1" {
            bail!("disconnected by the server: {text}");
        }
        Ok(())
    }
}

/// The parts of `client.proto`'s `Reply` the bench reads (field numbers as there; everything
/// else is skipped).
mod pb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Reply {
        #[prost(uint32, tag = "1")]
        pub(super) id: u32,
        #[prost(message, optional, tag = "2")]
        pub(super) error: Option<Error>,
        #[prost(message, optional, tag = "4")]
        pub(super) push: Option<Push>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Error {
        #[prost(uint32, tag = "1")]
        pub(super) code: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Push {
        #[prost(message, optional, tag = "4")]
        pub(super) publication: Option<Publication>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Publication {
        #[prost(bytes = "vec", tag = "4")]
        pub(super) data: Vec<u8>,
    }
}

/// Reports a bench publication (`{"type":"bench","data":{"t":..,"seq":..}}`); ignores others.
fn report(data: &Value, received_ns: u64, deliveries: &mpsc::UnboundedSender<Delivery>) {
    if data.get("type").and_then(Value::as_str) != Some("bench") {
        return;
    }
    let stamp = data.get("data");
    let field = |name: &str| stamp.and_then(|s| s.get(name)).and_then(Value::as_u64);
    if let (Some(sent_ns), Some(seq)) = (field("t"), field("seq")) {
        let _ = deliveries.send(Delivery { seq, sent_ns, received_ns });
    }
}

/// The `q` quantile (0..=1) of sorted `values`.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(ns: u64) -> String {
    format!("{:.2} ms", ns as f64 / 1e6)
}

fn kib(bytes: f64) -> String {
    format!("{:.2} KiB", bytes / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// `12345` as `12 345`.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

impl Report {
    fn print(&self) {
        let row = |k: &str, v: String| println!("| {k:<56} | {v:>28} |");
        println!("### {} ({})", self.target.name(), self.url);
        println!();
        row("measure", "value".into());
        println!("|{:-<58}|{:->30}|", "", "");
        row(
            "connections open",
            format!("{} in {:.1} s", thousands(self.opened as u64), self.open_elapsed.as_secs_f64()),
        );
        row("server RSS before connecting", mib(self.rss_before));
        row(&format!("server RSS with {} idle connections", thousands(self.opened as u64)), mib(self.rss_idle));
        let per = (self.rss_idle as f64 - self.rss_before as f64) / self.opened.max(1) as f64;
        row("**memory per idle connection**", format!("**{}**", kib(per)));
        for f in &self.fanouts {
            let mut lat = f.latencies_ns.clone();
            lat.sort_unstable();
            let mut calls = f.publish_call_ns.clone();
            calls.sort_unstable();
            let n = thousands(f.subscribers as u64);
            row(&format!("memory per subscription ({n} on one channel)"), kib(f.per_subscription));
            row(
                &format!("**fan-out to {n}: p50 / p99**"),
                format!("**{} / {}**", ms(quantile(&lat, 0.5)), ms(quantile(&lat, 0.99))),
            );
            row(&format!("fan-out to {n}: max"), ms(lat.last().copied().unwrap_or(0)));
            row(&format!("fan-out to {n}: publish call p50"), ms(quantile(&calls, 0.5)));
            row(
                &format!("fan-out to {n}: CPU per publication, server / client"),
                format!("{} / {}", ms(f.server_cpu.as_nanos() as u64), ms(f.client_cpu.as_nanos() as u64)),
            );
            row(
                &format!("fan-out to {n}: received / expected ({} pubs)", f.publications),
                format!("{} / {}", thousands(lat.len() as u64), thousands(f.expected)),
            );
        }
        if let Some(b) = &self.burst {
            let mut lat = b.latencies_ns.clone();
            lat.sort_unstable();
            let n = thousands(b.subscribers as u64);
            let rate = b.delivered as f64 / b.elapsed.as_secs_f64().max(1e-9);
            row(
                &format!("**burst of {} pubs to {n}: delivered/s**", b.publications),
                format!("**{}**", thousands(rate as u64)),
            );
            row(
                "burst: publications/s accepted",
                thousands((b.publications as f64 / b.publish_elapsed.as_secs_f64().max(1e-9)) as u64),
            );
            row(
                "burst: received / expected",
                format!("{} / {}", thousands(b.delivered), thousands((b.subscribers * b.publications) as u64)),
            );
            row("burst: latency p50 / p99", format!("{} / {}", ms(quantile(&lat, 0.5)), ms(quantile(&lat, 0.99))));
        }
        row("connections dropped during the run", thousands(self.drops));
        if let Some(first) = &self.first_drop {
            println!();
            println!("first drop: {first}");
        }
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_hold_per_connections_each_and_stay_on_loopback() {
        let server: SocketAddr = "127.0.0.1:7700".parse().unwrap();
        assert_eq!(source_ip(server, 0, 100), Some(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 1))));
        assert_eq!(source_ip(server, 99, 100), source_ip(server, 0, 100));
        assert_eq!(source_ip(server, 100, 100), Some(IpAddr::V4(Ipv4Addr::new(127, 1, 0, 2))));
        assert_eq!(source_ip(server, 25_000, 100), Some(IpAddr::V4(Ipv4Addr::new(127, 1, 1, 1))));
        assert_eq!(source_ip(server, 5, 0), None);
        assert_eq!(source_ip("10.0.0.1:7700".parse().unwrap(), 5, 100), None);
    }

    #[test]
    fn quantiles_and_numbers_read_as_the_tables_show_them() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&sorted, 0.5), 51);
        assert_eq!(quantile(&sorted, 0.99), 99);
        assert_eq!(quantile(&[], 0.5), 0);
        assert_eq!(thousands(1_234_567), "1 234 567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn only_bench_publications_are_reported() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        report(&json!({"type": "bench", "data": {"t": 10, "seq": 3}}), 25, &tx);
        report(&json!({"type": "conversation.updated", "data": {}}), 25, &tx);
        report(&json!({"type": "bench", "data": {"seq": 3}}), 25, &tx);
        let d = rx.try_recv().unwrap();
        assert_eq!((d.seq, d.sent_ns, d.received_ns), (3, 10, 25));
        assert!(rx.try_recv().is_err());
    }
}
