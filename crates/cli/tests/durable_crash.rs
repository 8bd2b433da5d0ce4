//! Crash test of the durable single node: `switchboard serve --data-dir` with `always`, under a
//! load of session creates and updates, token denials, notification creates and reads, message
//! posts, job enqueues and completions and publications, is killed with SIGKILL at a random
//! moment and restarted, twenty times. The test keeps its own log of acknowledged writes: after
//! every restart each one of them is there, the unread counter is exact, a client resuming from
//! its last acknowledged (epoch, offset) recovers with no gap, and a second server on the same
//! data dir is refused.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use common::{Node, client};
use serde_json::{Value, json};
use switchboard_conformance::TempDir;

const KILL_POINTS: usize = 20;

/// Writes the server acknowledged (2xx), and the message ids whose post was attempted.
#[derive(Default, Clone)]
struct Acked {
    sessions: Vec<(String, String)>,
    denied: Vec<String>,
    notifications: Vec<String>,
    read: Vec<String>,
    jobs: Vec<String>,
    completed: Vec<String>,
    /// (epoch, offset, n) of each acknowledged publication.
    publications: Vec<(String, u64, u64)>,
    posts_attempted: Vec<String>,
    posts_acked: Vec<String>,
}

fn env(dir: &str) -> Vec<(&str, &str)> {
    vec![
        ("SWITCHBOARD_DATA_DIR", dir),
        ("SWITCHBOARD_DATA_SYNC", "always"),
        ("SWITCHBOARD_API_KEYS", concat!("test:", "test-key-0123456789abcdef")),
        ("SWITCHBOARD_TOKEN_SECRET", "test-secret-for-tokens-only"),
        ("SWITCHBOARD_BUILTIN_JOBS", "false"),
    ]
}

/// A small deterministic generator (the seed is printed, so a failing run can be replayed).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

async fn ok(r: reqwest::Result<reqwest::Response>) -> Option<Value> {
    let r = r.ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(r.json().await.unwrap_or(Value::Null))
}

/// One load task: a rotation of writes until the server stops answering.
async fn load(base: String, task: usize, next: Arc<AtomicU64>, acked: Arc<Mutex<Acked>>, stop: Arc<AtomicBool>) {
    let http = client();
    let api = |path: &str| format!("{base}/api/v1{path}");
    let log = |f: &dyn Fn(&mut Acked)| f(&mut acked.lock().unwrap_or_else(PoisonError::into_inner));
    while !stop.load(Ordering::Relaxed) {
        let n = next.fetch_add(1, Ordering::Relaxed);
        let answered = match (task + n as usize) % 6 {
            0 => {
                // One user per session: no eviction by the per-user maximum.
                let body = json!({"user_id": format!("u{n}"), "data": {"n": n}});
                match ok(http.post(api("/sessions")).json(&body).send().await).await {
                    Some(s) => {
                        let id = s["session"]["id"].as_str().unwrap_or_default().to_owned();
                        let patch = json!({"data": {"updated": n}});
                        let updated = ok(http.patch(api(&format!("/sessions/{id}"))).json(&patch).send().await).await;
                        log(&|a| {
                            a.sessions.push((id.clone(), if updated.is_some() { "updated" } else { "created" }.into()))
                        });
                        true
                    }
                    None => false,
                }
            }
            1 => {
                let jti = format!("jti-{n}");
                let until = SystemTime::now() + Duration::from_secs(3600);
                let until = chrono_like(until);
                let body = json!({"jti": jti, "expires_at": until});
                let acked_now = ok(http.post(api("/tokens/deny")).json(&body).send().await).await.is_some();
                if acked_now {
                    log(&|a| a.denied.push(jti.clone()));
                }
                acked_now
            }
            2 => {
                // One user per notification: the per-user count retention never trims one.
                let id = format!("n{n}");
                let body = json!({"id": id, "title": "crash test"});
                if ok(http.post(api(&format!("/users/u{id}/notifications"))).json(&body).send().await).await.is_none() {
                    false
                } else {
                    log(&|a| a.notifications.push(id.clone()));
                    let read = ok(http.post(api(&format!("/users/u{id}/notifications/{id}/read"))).send().await).await;
                    if read.is_some() {
                        log(&|a| a.read.push(id.clone()));
                    }
                    read.is_some()
                }
            }
            3 => {
                let id = format!("m{n}");
                log(&|a| a.posts_attempted.push(id.clone()));
                let body = json!({"id": id, "sender": "alice", "content": "hi"});
                let posted = ok(http.post(api("/conversations/crash/messages")).json(&body).send().await).await;
                if posted.is_some() {
                    log(&|a| a.posts_acked.push(id.clone()));
                }
                posted.is_some()
            }
            4 => {
                let id = format!("j{n}");
                let body = json!({"type": "crash.test", "job_id": id});
                if ok(http.post(api(&format!("/queues/q{task}/jobs"))).json(&body).send().await).await.is_none() {
                    false
                } else {
                    log(&|a| a.jobs.push(id.clone()));
                    let fetch = json!({"queues": [format!("q{task}")], "wait_ms": 0});
                    let Some(fetched) = ok(http.post(api("/queues/fetch")).json(&fetch).send().await).await else {
                        break;
                    };
                    for job in fetched["jobs"].as_array().cloned().unwrap_or_default() {
                        let (id, token) = (job["id"].as_str().unwrap_or_default(), &job["lease_token"]);
                        let done = json!({"lease_token": token});
                        if ok(http.post(api(&format!("/jobs/{id}/complete"))).json(&done).send().await).await.is_some()
                        {
                            log(&|a| a.completed.push(id.to_owned()));
                        }
                    }
                    true
                }
            }
            _ => {
                let body = json!({"channel": "user:pu", "data": {"type": "crash.test", "data": {"n": n}}});
                match ok(http.post(api("/publish")).json(&body).send().await).await {
                    Some(p) => {
                        let epoch = p["epoch"].as_str().unwrap_or_default().to_owned();
                        let offset = p["offset"].as_u64().unwrap_or(0);
                        log(&|a| a.publications.push((epoch.clone(), offset, n)));
                        true
                    }
                    None => false,
                }
            }
        };
        if !answered {
            break;
        }
    }
}

/// RFC 3339 of `t` in UTC (seconds precision is enough here).
fn chrono_like(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

async fn get(http: &reqwest::Client, url: String) -> (u16, Value) {
    let r = http.get(url).send().await.expect("GET after the restart");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Checks that every write acknowledged from `from` on (per kind) is there after the restart.
async fn verify(node: &Node, acked: &Acked, from: &Counts) {
    let http = client();
    for (id, what) in &acked.sessions[from.sessions..] {
        let (status, s) = get(&http, node.api(&format!("/sessions/{id}"))).await;
        assert_eq!(status, 200, "acknowledged session {id} is lost");
        if what == "updated" {
            assert!(s["data"]["updated"].is_u64(), "the acknowledged update of {id} is lost: {s}");
        }
    }
    for jti in &acked.denied[from.denied..] {
        assert_eq!(get(&http, node.api(&format!("/tokens/deny/{jti}"))).await.0, 200, "denial of {jti} lost");
    }
    for id in &acked.notifications[from.notifications..] {
        let (status, n) = get(&http, node.api(&format!("/users/u{id}/notifications/{id}"))).await;
        assert_eq!(status, 200, "acknowledged notification {id} is lost");
        if acked.read.contains(id) {
            assert_eq!(n["read"], true, "the acknowledged read of {id} is lost");
        }
    }
    for id in &acked.jobs[from.jobs..] {
        let (status, job) = get(&http, node.api(&format!("/jobs/{id}"))).await;
        assert_eq!(status, 200, "acknowledged job {id} is lost");
        if acked.completed.contains(id) {
            assert_eq!(job["state"], "completed", "the acknowledged completion of {id} is lost");
        }
    }
    // A client resuming from its last acknowledged position, and from each earlier one of this
    // round, recovers every later acknowledged publication with no gap.
    for (epoch, offset, n) in acked.publications[from.publications..].iter().rev().take(50) {
        let url =
            node.api(&format!("/channels/user:pu/history?since_epoch={epoch}&since_offset={}&limit=1", offset - 1));
        let (status, read) = get(&http, url).await;
        assert_eq!(status, 200);
        assert_eq!(read["recovered"], true, "position ({epoch}, {offset}) is not recoverable: {read}");
        assert_eq!(read["publications"][0]["offset"], *offset);
        assert_eq!(read["publications"][0]["data"]["data"]["n"], *n, "publication ({epoch}, {offset}) differs");
    }
    if let Some((epoch, offset, _)) = acked.publications.last() {
        let url = node.api(&format!("/channels/user:pu/history?since_epoch={epoch}&since_offset={offset}"));
        assert_eq!(get(&http, url).await.1["recovered"], true, "the last acknowledged position is lost");
    }
    // bob read everything before the round. Each post the server may have applied without
    // acknowledging it (in flight at the kill) is retried, as a client would (a retry of a
    // counted id is not counted again): bob's unread must then equal the round's posts exactly.
    let round = &acked.posts_attempted[from.posts..];
    for id in round.iter().filter(|id| !acked.posts_acked.contains(id)) {
        let body = json!({"id": id, "sender": "alice", "content": "hi"});
        let r = http.post(node.api("/conversations/crash/messages")).json(&body).send().await.expect("retry a post");
        assert!(r.status().is_success(), "retry of {id}: {}", r.status());
    }
    let (_, unread) = get(&http, node.api("/users/bob/unread")).await;
    assert_eq!(unread["unread"], round.len() as u64, "bob's unread counter is not exact: {unread}");
    if let Some(last) = round.last() {
        let body = json!({"message_id": last});
        let r = http.post(node.api("/users/bob/conversations/crash/read")).json(&body).send().await.expect("read");
        assert!(r.status().is_success(), "bob reads: {}", r.status());
    }
}

/// How many of each kind were acknowledged before a round.
#[derive(Default)]
struct Counts {
    sessions: usize,
    denied: usize,
    notifications: usize,
    jobs: usize,
    publications: usize,
    posts: usize,
}

impl Counts {
    fn of(a: &Acked) -> Counts {
        Counts {
            sessions: a.sessions.len(),
            denied: a.denied.len(),
            notifications: a.notifications.len(),
            jobs: a.jobs.len(),
            publications: a.publications.len(),
            posts: a.posts_attempted.len(),
        }
    }
}

#[tokio::test]
async fn every_acknowledged_write_survives_twenty_sigkills() {
    let dir = TempDir::new("crash");
    let path = dir.path().display().to_string();
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    let acked = Arc::new(Mutex::new(Acked::default()));
    let next = Arc::new(AtomicU64::new(0));
    {
        let node = Node::start(&env(&path));
        let body = json!({"type": "direct", "members": ["alice", "bob"]});
        let r = client().put(node.api("/conversations/crash")).json(&body).send().await.expect("PUT");
        assert!(r.status().is_success(), "create the conversation: {}", r.status());
        // One process owns a data dir.
        let second = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SWITCHBOARD_LISTEN", "127.0.0.1:0")
            .envs(env(&path))
            .output()
            .expect("run a second server");
        assert!(!second.status.success());
        let stderr = String::from_utf8_lossy(&second.stderr);
        assert!(stderr.contains("in use by another switchboard process"), "{stderr}");
        node.kill_hard();
    }
    for round in 0..KILL_POINTS {
        let node = Node::start(&env(&path));
        let before = Counts::of(&acked.lock().unwrap_or_else(PoisonError::into_inner));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..4)
            .map(|task| tokio::spawn(load(node.base.clone(), task, next.clone(), acked.clone(), stop.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(100 + rng.below(900))).await;
        node.kill_hard();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.expect("a load task");
        }
        drop(node);
        let node = Node::start(&env(&path));
        let log = acked.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let written = log.sessions.len() - before.sessions + log.publications.len() - before.publications;
        eprintln!("kill point {round}: {written} sessions and publications acknowledged this round");
        verify(&node, &log, &before).await;
        node.kill_hard();
    }
    // Everything acknowledged in every round, once more after one last restart.
    let node = Node::start(&env(&path));
    let log = acked.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(log.sessions.len() > KILL_POINTS && log.publications.len() > KILL_POINTS, "the load ran");
    verify(&node, &log, &Counts { posts: log.posts_attempted.len(), ..Counts::default() }).await;
}
