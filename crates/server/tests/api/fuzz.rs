//! The OpenAPI document fuzzed, on both engines: for every operation it lists, requests built
//! from its own schemas — mostly values its patterns and bounds allow, some of the wrong type, out
//! of bounds, unknown fields or hostile strings — in path, query and body. Every answer must be
//! a non-5xx (a panicking handler fails the test too) whose status the document lists for that
//! operation, and since the document states what the server accepts, more than half of the
//! requests must be accepted.
//!
//! Deterministic: the seed is fixed (override with `SWITCHBOARD_FUZZ_SEED`, the number of rounds
//! per operation with `SWITCHBOARD_FUZZ_ROUNDS`).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::common::{KEY, TestApp};

/// Sends one request straight to the router (a panicking handler fails the test here); returns
/// the status and the error message, if any.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    content_type: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    let response = app.router.clone().oneshot(req.body(body).expect("request")).await.expect("infallible");
    let status = response.status();
    let bytes = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, answer["error"]["message"].as_str().unwrap_or_default().to_owned())
}

/// A small deterministic generator (xorshift64*): no dependency, reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const STRINGS: &[&str] = &[
    "alice",
    "bob",
    "c1",
    "n1",
    "x",
    "",
    " ",
    "a b",
    "é",
    "user:alice",
    "chat:c1",
    "..",
    "../../etc",
    "{odd}",
    "0",
    "-1",
    "null",
    "true",
    "%",
    "\u{0}",
    "line\nbreak",
    "🙂",
    "2030-01-01T00:00:00Z",
];

fn hostile_string(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => "x".repeat(rng.pick(&[129, 257, 513, 5000]).to_owned()),
        1 => "é".repeat(100),
        _ => (*rng.pick(STRINGS)).to_owned(),
    }
}

fn number(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => json!(-1),
        1 => json!(0),
        2 => json!(1),
        3 => json!(1001),
        4 => json!(65_536),
        5 => json!(i64::MAX),
        6 => json!(u64::MAX),
        7 => json!(-9_007_199_254_740_993i64),
        8 => json!(0.5),
        9 => json!(1e300),
        10 => json!(2_147_483_648u64),
        _ => json!(rng.below(100)),
    }
}

/// A value of any type, for type confusion.
fn junk(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => json!(rng.chance(50)),
        2 => number(rng),
        3 => json!(hostile_string(rng)),
        4 => Value::Array((0..rng.below(3)).map(|_| junk(rng, depth + 1)).collect()),
        _ => {
            let mut map = Map::new();
            map.insert(hostile_string(rng), junk(rng, depth + 1));
            Value::Object(map)
        }
    }
}

struct Fuzzer<'a> {
    doc: &'a Value,
    rng: Rng,
    /// Values known to exist on the server, by the pattern they match.
    known: std::collections::HashMap<String, Vec<String>>,
    /// Records known to exist on the server, by the path parameter that names them.
    records: std::collections::HashMap<&'static str, Vec<String>>,
}

/// Builds a string matching `pattern`, for the pattern shapes the document uses: `^`/`$`
/// anchors, `(a|b)` groups of literals, `[...]` classes with ranges, literals, and `{n}` or
/// `{m,n}` counts.
fn build(pattern: &str, rng: &mut Rng) -> String {
    let chars: Vec<char> = pattern.trim_start_matches('^').trim_end_matches('$').chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        // One atom: the strings it can produce.
        let choices: Vec<String> = match chars[i] {
            '(' => {
                let end = i + chars[i..].iter().position(|c| *c == ')').expect("closed group");
                let group: String = chars[i + 1..end].iter().collect();
                i = end + 1;
                group.split('|').map(str::to_owned).collect()
            }
            '[' => {
                let end = i + chars[i..].iter().position(|c| *c == ']').expect("closed class");
                let class = &chars[i + 1..end];
                i = end + 1;
                let mut members = Vec::new();
                let mut j = 0;
                while j < class.len() {
                    if j + 2 < class.len() && class[j + 1] == '-' {
                        members.extend((class[j]..=class[j + 2]).map(String::from));
                        j += 3;
                    } else {
                        members.push(class[j].to_string());
                        j += 1;
                    }
                }
                members
            }
            c => {
                i += 1;
                vec![c.to_string()]
            }
        };
        let (low, high) = if chars.get(i) == Some(&'{') {
            let end = i + chars[i..].iter().position(|c| *c == '}').expect("closed count");
            let count: String = chars[i + 1..end].iter().collect();
            i = end + 1;
            match count.split_once(',') {
                Some((m, n)) => (m.parse().expect("count"), n.parse().expect("count")),
                None => {
                    let n: usize = count.parse().expect("count");
                    (n, n)
                }
            }
        } else {
            (1, 1)
        };
        // Mostly short, sometimes the longest allowed.
        let len = if rng.chance(5) { high } else { low + rng.below(high.min(low + 8) - low + 1) };
        for _ in 0..len {
            let choice: &String = rng.pick(&choices);
            out.push_str(choice);
        }
    }
    out
}

impl Fuzzer<'_> {
    fn resolve<'s>(&'s self, schema: &'s Value) -> &'s Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                self.doc.pointer(&format!("/components/schemas/{name}")).unwrap_or(&Value::Null)
            }
            None => schema,
        }
    }

    /// A value for `schema`: mostly plausible, sometimes not.
    fn value(&mut self, schema: &Value, name: &str, depth: u32) -> Value {
        if depth > 6 || self.rng.chance(3) {
            return junk(&mut self.rng, depth);
        }
        let schema = self.resolve(schema).clone();
        for key in ["oneOf", "anyOf", "allOf"] {
            if let Some(options) = schema.get(key).and_then(Value::as_array)
                && !options.is_empty()
            {
                let chosen = options[self.rng.below(options.len())].clone();
                return self.value(&chosen, name, depth + 1);
            }
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array)
            && !choices.is_empty()
            && self.rng.chance(85)
        {
            return choices[self.rng.below(choices.len())].clone();
        }
        let kind = match schema.get("type") {
            Some(Value::String(t)) => t.clone(),
            Some(Value::Array(types)) => {
                let types: Vec<&str> = types.iter().filter_map(Value::as_str).filter(|t| *t != "null").collect();
                if types.is_empty() || self.rng.chance(10) {
                    "null".into()
                } else {
                    (*self.rng.pick(&types)).to_owned()
                }
            }
            _ if schema.get("properties").is_some() => "object".into(),
            _ => return junk(&mut self.rng, depth),
        };
        match kind.as_str() {
            "object" => self.object(&schema, depth),
            "array" => {
                let items = schema.get("items").cloned().unwrap_or(Value::Null);
                let n = if self.rng.chance(3) { 1001 } else { self.rng.below(4) };
                Value::Array(
                    (0..n).map(|_| if n > 10 { json!("x") } else { self.value(&items, name, depth + 1) }).collect(),
                )
            }
            "string" if schema.get("format").and_then(Value::as_str) == Some("date-time") => {
                let options = ["2030-01-01T00:00:00Z", "2000-01-01T00:00:00.000Z", "yesterday", "2030-13-40T99:00:00Z"];
                json!(self.rng.pick(&options))
            }
            "string" => json!(self.string(&schema)),
            "integer" | "number" => {
                // Long-polls and waits stay short so the fuzz stays fast; big values are refused.
                if name.ends_with("wait_ms") {
                    return json!(self.rng.pick(&[0, 1, -1, 10_000_000]));
                }
                let bounds = (schema["minimum"].as_i64(), schema["maximum"].as_i64());
                match bounds {
                    (Some(low), Some(high)) if self.rng.chance(90) => json!(self.in_range(low, high)),
                    _ => number(&mut self.rng),
                }
            }
            "boolean" => json!(self.rng.chance(50)),
            "null" => Value::Null,
            _ => junk(&mut self.rng, depth),
        }
    }

    /// A string for `schema`: mostly one its pattern (or length) allows, sometimes hostile.
    fn string(&mut self, schema: &Value) -> String {
        if self.rng.chance(6) {
            return hostile_string(&mut self.rng);
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            return self.matching(pattern);
        }
        match schema["maxLength"].as_u64() {
            Some(max) => {
                let len = 1 + self.rng.below(max.min(12) as usize);
                (0..len).map(|_| *self.rng.pick(&['a', 'b', 'z', '0', '9', '-', '.'])).collect()
            }
            None => hostile_string(&mut self.rng),
        }
    }

    /// An integer in `low..=high`: an edge or a small step past the low one.
    fn in_range(&mut self, low: i64, high: i64) -> i64 {
        match self.rng.below(4) {
            0 => low,
            1 => high,
            _ => low.saturating_add((self.rng.next() % (high.saturating_sub(low).min(1000) as u64 + 1)) as i64),
        }
    }

    /// A string `pattern` matches: a value seen in this server's set-up when one matches (so
    /// requests reach existing records), else one built from the pattern.
    fn matching(&mut self, pattern: &str) -> String {
        if let Some(known) = self.known.get(pattern).filter(|k| !k.is_empty())
            && self.rng.chance(75)
        {
            return self.rng.pick(known).clone();
        }
        build(pattern, &mut self.rng)
    }

    fn object(&mut self, schema: &Value, depth: u32) -> Value {
        let mut map = Map::new();
        let required: Vec<String> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (key, property) in properties.clone() {
                let keep = if required.contains(&key) { 92 } else { 60 };
                if self.rng.chance(keep) {
                    let value = self.value(&property, &key, depth + 1);
                    map.insert(key, value);
                }
            }
        } else if schema.get("additionalProperties").is_some() {
            for _ in 0..self.rng.below(3) {
                map.insert(hostile_string(&mut self.rng), junk(&mut self.rng, depth + 1));
            }
        }
        if self.rng.chance(4) {
            map.insert("unexpected_field".into(), junk(&mut self.rng, depth + 1));
        }
        Value::Object(map)
    }

    /// A path segment for parameter `name` of `schema`, percent-encoded: mostly a record that
    /// exists, so lookups find something.
    fn path_segment(&mut self, name: &str, schema: &Value) -> String {
        let raw = match self.records.get(name) {
            Some(records) if self.rng.chance(85) => self.rng.pick(records).clone(),
            _ => {
                let schema = self.resolve(schema).clone();
                self.string(&schema)
            }
        };
        encode(&raw)
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What the set-up created: values by the pattern they match, records by the path parameter
/// that names them.
struct Seeded {
    known: std::collections::HashMap<String, Vec<String>>,
    records: std::collections::HashMap<&'static str, Vec<String>>,
}

/// Records the generated requests can refer to: a conversation with a message, notifications,
/// devices, a session, a job, a schedule, a denied token, cached values.
async fn seed_records(app: &TestApp, doc: &Value) -> Seeded {
    let pattern = |schema: &str| doc["components"]["schemas"][schema]["pattern"].as_str().expect("pattern").to_owned();
    let ids = ["alice", "bob", "c1", "n1", "q", "emails", "k1", "s1", "d1", "m1"];
    app.put("/api/v1/conversations/c1", json!({"members": ["alice", "bob"]})).await.assert_success();
    let message = json!({"id": "m1", "sender": "alice", "content": {"text": "hi"}});
    app.post("/api/v1/conversations/c1/messages", message).await.assert_success();
    for user in ["alice", "bob"] {
        let notification = json!({"id": "n1", "title": "hello"});
        app.post(&format!("/api/v1/users/{user}/notifications"), notification).await.assert_success();
        let heartbeat = json!({"ttl_seconds": 300});
        app.post(&format!("/api/v1/users/{user}/devices/d1/heartbeat"), heartbeat).await.assert_success();
    }
    // Not a user the generator picks: creating its sessions would evict this one (3 per user).
    let session = app.create_session("carol").await;
    let job = app.post("/api/v1/queues/q/jobs", json!({"type": "t", "payload": {}})).await;
    let job = job.assert_success()["id"].as_str().expect("job id").to_owned();
    let schedule = json!({"queue": "q", "type": "t", "payload": {}, "every_ms": 3_600_000});
    app.put("/api/v1/schedules/s1", schedule).await.assert_success();
    app.post("/api/v1/tokens/deny", json!({"jti": "j1", "expires_at": "2099-01-01T00:00:00Z"})).await.assert_success();
    app.put("/api/v1/cache/ns/k1", json!({"value": 1, "ttl_seconds": 3600})).await.assert_success();

    let mut known = std::collections::HashMap::new();
    known.insert(pattern("UserId"), ids.map(str::to_owned).to_vec());
    known.insert(pattern("ChannelName"), ["chat:c1", "user:alice", "presence:bob"].map(str::to_owned).to_vec());
    known.insert(pattern("SessionId"), vec![session.clone()]);
    let records = [
        ("user_id", vec!["alice", "bob"]),
        ("conversation_id", vec!["c1"]),
        ("message_id", vec!["m1"]),
        ("notification_id", vec!["n1"]),
        ("device_id", vec!["d1"]),
        ("session_id", vec![session.as_str()]),
        ("job_id", vec![job.as_str()]),
        ("queue", vec!["q"]),
        ("name", vec!["s1"]),
        ("jti", vec!["j1"]),
        ("namespace", vec!["ns"]),
        ("key", vec!["k1"]),
        ("channel", vec!["chat:c1", "user:alice"]),
    ]
    .into_iter()
    .map(|(name, values)| (name, values.into_iter().map(str::to_owned).collect()))
    .collect();
    Seeded { known, records }
}

async fn every_operation_survives_generated_input(app: TestApp) {
    let doc = app.get("/api/v1/openapi.json").await.assert_status(200).clone();
    let seed = std::env::var("SWITCHBOARD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_cafe_u64);
    let rounds: usize = std::env::var("SWITCHBOARD_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    let mut fuzz = Fuzzer { doc: &doc, rng: Rng(seed | 1), known: Default::default(), records: Default::default() };
    let paths = doc["paths"].as_object().expect("paths").clone();
    let mut sent = 0;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    // SWITCHBOARD_FUZZ_REPORT=1 prints why requests were refused, most common first.
    let report = std::env::var_os("SWITCHBOARD_FUZZ_REPORT").is_some();
    let mut refusals = std::collections::HashMap::<String, usize>::new();
    let mut undocumented = std::collections::BTreeSet::<String>::new();
    // Every round seeds the records again and runs every operation once, deletions last, so the
    // other operations find the records the set-up made.
    let mut operations: Vec<(&String, Method, &Value)> = paths
        .iter()
        .filter(|(template, _)| template.starts_with("/api/v1/"))
        .flat_map(|(template, ops)| {
            ops.as_object().expect("operations").iter().filter_map(move |(method, op)| {
                method.to_uppercase().parse::<Method>().ok().map(|method| (template, method, op))
            })
        })
        .collect();
    operations.sort_by_key(|(_, method, _)| *method == Method::DELETE);
    for _ in 0..rounds {
        let Seeded { known, records } = seed_records(&app, &doc).await;
        (fuzz.known, fuzz.records) = (known, records);
        for (template, method, op) in &operations {
            let body_schema = op.pointer("/requestBody/content/application~1json/schema").cloned();
            let path_params: std::collections::HashMap<String, Value> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p["schema"].clone()))
                .collect();
            let query: Vec<(String, Value, bool)> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "query")
                        .map(|p| {
                            let name = p["name"].as_str().unwrap_or_default().to_owned();
                            (name, p["schema"].clone(), p["required"] == true)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut path = String::new();
            for part in template.split_inclusive('/') {
                if part.starts_with('{') {
                    let name = part.trim_end_matches('/').trim_matches(|c| c == '{' || c == '}');
                    let schema = path_params.get(name).cloned().unwrap_or(Value::Null);
                    path.push_str(&fuzz.path_segment(name, &schema));
                    if part.ends_with('/') {
                        path.push('/');
                    }
                } else {
                    path.push_str(part);
                }
            }
            let mut params = Vec::new();
            for (name, schema, required) in &query {
                if fuzz.rng.chance(if *required { 95 } else { 50 }) {
                    let value = match fuzz.value(schema, name, 0) {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    params.push(format!("{}={}", encode(name), encode(&value)));
                }
            }
            if !params.is_empty() {
                path = format!("{path}?{}", params.join("&"));
            }
            let body = body_schema.as_ref().map(|schema| fuzz.value(schema, "", 0));
            // Now and then a body that says it is not JSON.
            let content_type = if fuzz.rng.chance(3) { "text/plain" } else { "application/json" };
            let (status, message) = send(&app, method.clone(), &path, body.as_ref(), content_type).await;
            if report && !status.is_success() {
                let reason: String = message.chars().take(150).collect();
                *refusals.entry(format!("{method} {template} {status}: {reason}")).or_default() += 1;
            }
            assert!(!status.is_server_error(), "{method} {path} with {body:?} answered {status} (seed {seed})");
            if op["responses"].get(status.as_str()).is_none() {
                undocumented.insert(format!("{method} {template} answers {status}, not in its responses"));
            }
            *by_status.entry(status.as_u16()).or_default() += 1;
            sent += 1;
        }
    }
    eprintln!("fuzz: {sent} requests, answers by status: {by_status:?}");
    let mut refusals: Vec<(String, usize)> = refusals.into_iter().collect();
    refusals.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (reason, n) in refusals.iter().take(60) {
        eprintln!("{n:5}  {reason}");
    }
    assert!(sent > 1000, "only {sent} requests: is the document empty?");
    assert!(
        undocumented.is_empty(),
        "answers the document does not list:\n{}",
        Vec::from_iter(undocumented).join("\n")
    );
    // Generated from schemas that state what the server accepts, most requests get past
    // validation and reach the handlers' real work.
    let accepted: usize = by_status.range(200..300).map(|(_, n)| n).sum();
    eprintln!("fuzz: {accepted} of {sent} accepted ({:.1}%)", accepted as f64 * 100.0 / sent as f64);
    assert!(accepted * 2 > sent, "only {accepted} of {sent} requests were accepted: {by_status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_survives_generated_input_without_a_5xx_memory() {
    every_operation_survives_generated_input(TestApp::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_survives_generated_input_without_a_5xx_redis() {
    let engine = switchboard_conformance::redis_engine().await;
    every_operation_survives_generated_input(TestApp::with_switchboard(engine.sb.clone())).await;
}
