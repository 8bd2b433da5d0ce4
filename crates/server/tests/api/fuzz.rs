//! The OpenAPI document fuzzed (SPEC §8): for every operation it lists, requests built from its
//! own schemas — mostly plausible values, some of the wrong type, out of bounds, unknown fields
//! or hostile strings — in path, query and body. Every answer must be a non-5xx (the harness
//! fails the test on any 5xx, and a panicking handler fails it too).
//!
//! Deterministic: the seed is fixed (override with `SWITCHBOARD_FUZZ_SEED`, the number of rounds
//! per operation with `SWITCHBOARD_FUZZ_ROUNDS`).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use crate::common::{KEY, TestApp};

/// Sends one request straight to the router (a panicking handler fails the test here).
async fn send(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> StatusCode {
    let mut req = Request::builder().method(method).uri(path).header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    let body = match body {
        Some(v) => {
            req = req.header(header::CONTENT_TYPE, "application/json");
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    app.router.clone().oneshot(req.body(body).expect("request")).await.expect("infallible").status()
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
        if depth > 6 || self.rng.chance(8) {
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
            "string" => json!(hostile_string(&mut self.rng)),
            "integer" | "number" => {
                // Long-polls and waits stay short so the fuzz stays fast; big values are refused.
                if name.ends_with("wait_ms") {
                    return json!(self.rng.pick(&[0, 1, -1, 10_000_000]));
                }
                number(&mut self.rng)
            }
            "boolean" => json!(self.rng.chance(50)),
            "null" => Value::Null,
            _ => junk(&mut self.rng, depth),
        }
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
        if self.rng.chance(8) {
            map.insert("unexpected_field".into(), junk(&mut self.rng, depth + 1));
        }
        Value::Object(map)
    }

    fn path_segment(&mut self) -> String {
        let raw = match self.rng.below(10) {
            0..=5 => (*self.rng.pick(&["alice", "c1", "n1", "q", "emails", "api_response", "k1", "s1"])).to_owned(),
            _ => hostile_string(&mut self.rng),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_survives_generated_input_without_a_5xx() {
    let app = TestApp::new();
    let doc = app.get("/api/v1/openapi.json").await.assert_status(200).clone();
    let seed = std::env::var("SWITCHBOARD_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_cafe_u64);
    let rounds: usize = std::env::var("SWITCHBOARD_FUZZ_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(25);
    let mut fuzz = Fuzzer { doc: &doc, rng: Rng(seed | 1) };
    let paths = doc["paths"].as_object().expect("paths").clone();
    let mut sent = 0;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for (template, operations) in &paths {
        if !template.starts_with("/api/v1/") {
            continue;
        }
        for (method, op) in operations.as_object().expect("operations") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else { continue };
            let body_schema = op.pointer("/requestBody/content/application~1json/schema").cloned();
            let query: Vec<(String, Value)> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "query")
                        .map(|p| (p["name"].as_str().unwrap_or_default().to_owned(), p["schema"].clone()))
                        .collect()
                })
                .unwrap_or_default();
            for _ in 0..rounds {
                let mut path = String::new();
                for part in template.split_inclusive('/') {
                    if part.starts_with('{') {
                        path.push_str(&fuzz.path_segment());
                        if part.ends_with('/') {
                            path.push('/');
                        }
                    } else {
                        path.push_str(part);
                    }
                }
                let mut params = Vec::new();
                for (name, schema) in &query {
                    if fuzz.rng.chance(50) {
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
                let status = send(&app, method.clone(), &path, body.as_ref()).await;
                assert!(!status.is_server_error(), "{method} {path} with {body:?} answered {status} (seed {seed})");
                *by_status.entry(status.as_u16()).or_default() += 1;
                sent += 1;
            }
        }
    }
    eprintln!("fuzz: {sent} requests, answers by status: {by_status:?}");
    assert!(sent > 1000, "only {sent} requests: is the document empty?");
    // The generator must get past validation often enough to reach the handlers' real work.
    let accepted: usize = by_status.range(200..300).map(|(_, n)| n).sum();
    assert!(accepted * 10 > sent, "only {accepted} of {sent} requests were accepted: {by_status:?}");
}
