//! docs/COOKBOOK.md runs: every ```http recipe in it is sent, in order, to a live `switchboard
//! serve` on the memory engine and on Redis (its own redis-server), and its documented answer is
//! checked; every call a cookbook table names must be exercised by a recipe of its section. So
//! the cookbook cannot drift from the product.
//!
//! A recipe is a request line (`METHOD /api/v1/...`), an optional JSON body, a blank line, the
//! status, and an optional JSON answer that the real one must contain: objects by the keys
//! shown, arrays by their first elements, `"…"` for any value, `"$name"` to capture a value that
//! later recipes use as `$name` (in paths and bodies); `$tomorrow` is one day from now.

mod common;

use std::collections::HashMap;

use common::{API_KEY, Node, client, redis_env};
use serde_json::Value;
use switchboard_conformance::RedisServer;

const COOKBOOK: &str = include_str!("../../../docs/COOKBOOK.md");

/// One documented call and its documented answer.
#[derive(Debug)]
struct Recipe {
    section: String,
    method: String,
    path: String,
    body: Option<String>,
    status: u16,
    answer: Option<Value>,
}

/// The recipes of the cookbook, and for each section the calls its table names
/// (`METHOD /path` with `{placeholders}`).
fn parse(text: &str) -> (Vec<Recipe>, Vec<(String, String)>) {
    let mut recipes = Vec::new();
    let mut named = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.to_owned();
        } else if line.starts_with('|') {
            named.extend(calls_in(line).into_iter().map(|call| (section.clone(), call)));
        } else if line.trim() == "```http" {
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            recipes.push(recipe(&section, &block));
        }
    }
    (recipes, named)
}

fn recipe(section: &str, block: &[&str]) -> Recipe {
    let gap = block.iter().position(|l| l.trim().is_empty()).unwrap_or_else(|| panic!("no blank line in {block:?}"));
    let (request, answer) = block.split_at(gap);
    let (method, path) = request[0].split_once(' ').unwrap_or_else(|| panic!("bad request line {:?}", request[0]));
    let body = (request.len() > 1).then(|| request[1..].join("\n"));
    let answer: Vec<&str> = answer.iter().copied().filter(|l| !l.trim().is_empty()).collect();
    let status = answer[0].split_whitespace().next().and_then(|s| s.parse().ok()).expect("status line");
    let answer = (answer.len() > 1).then(|| {
        let text = answer[1..].join("\n");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("answer of {method} {path} is not JSON ({e}): {text}"))
    });
    Recipe { section: section.to_owned(), method: method.to_owned(), path: path.to_owned(), body, status, answer }
}

/// The `` `METHOD /path` `` calls in a table row (the path ends at a space, backtick or `?`).
fn calls_in(row: &str) -> Vec<String> {
    let mut calls = Vec::new();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        let mut rest = row;
        while let Some(at) = rest.find(&format!("`{method} /")) {
            let call = &rest[at + 1..];
            let path_start = method.len() + 1;
            let end = call[path_start..].find(['`', ' ', '?']).map_or(call.len(), |e| path_start + e);
            calls.push(call[..end].to_owned());
            rest = &call[end..];
        }
    }
    calls
}

/// Whether a recipe's `METHOD /api/v1/...` is the call `METHOD /...` with placeholders.
fn exercises(recipe: &Recipe, call: &str) -> bool {
    let (method, pattern) = call.split_once(' ').expect("method and path");
    let path = recipe.path.split('?').next().unwrap_or_default();
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    let (want, got): (Vec<&str>, Vec<&str>) = (pattern.split('/').collect(), path.split('/').collect());
    method == recipe.method
        && want.len() == got.len()
        && want.iter().zip(&got).all(|(w, g)| w == g || (w.starts_with('{') && w.ends_with('}')))
}

fn substitute(text: &str, vars: &HashMap<String, Value>) -> String {
    let mut out = text.to_owned();
    // Longest names first, so `$lease2` is not read as `$lease` and a `2`.
    let mut names: Vec<_> = vars.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let value = match &vars[name] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        out = out.replace(&format!("${name}"), &value);
    }
    out
}

/// Checks that `actual` contains `expected`, capturing `"$name"` values; the path of the first
/// difference on failure.
fn contains(expected: &Value, actual: &Value, at: &str, vars: &mut HashMap<String, Value>) -> Result<(), String> {
    match expected {
        Value::String(s) if s == "…" => Ok(()),
        Value::String(s) if s.starts_with('$') => {
            vars.insert(s[1..].to_owned(), actual.clone());
            Ok(())
        }
        Value::Object(fields) => {
            for (key, want) in fields {
                let got = actual.get(key).ok_or_else(|| format!("{at}.{key} is missing"))?;
                contains(want, got, &format!("{at}.{key}"), vars)?;
            }
            Ok(())
        }
        Value::Array(items) => {
            let got = actual.as_array().ok_or_else(|| format!("{at} is not an array"))?;
            if got.len() < items.len() {
                return Err(format!("{at} has {} elements, {} documented", got.len(), items.len()));
            }
            items.iter().zip(got).enumerate().try_for_each(|(i, (w, g))| contains(w, g, &format!("{at}[{i}]"), vars))
        }
        _ if expected == actual => Ok(()),
        _ => Err(format!("{at} is {actual}, documented {expected}")),
    }
}

async fn run_all(node: &Node, recipes: &[Recipe]) {
    let http = client();
    let tomorrow = switchboard_core::Timestamp::now().plus(std::time::Duration::from_secs(86_400));
    let mut vars = HashMap::from([("tomorrow".to_owned(), serde_json::to_value(tomorrow).expect("a time"))]);
    for r in recipes {
        let path = substitute(&r.path, &vars);
        let url = format!("{}{path}", node.base);
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).expect("method");
        let mut request = http.request(method, &url);
        if let Some(body) = &r.body {
            request = request.header("content-type", "application/json").body(substitute(body, &vars));
        }
        let response = request.send().await.unwrap_or_else(|e| panic!("{} {path}: {e}", r.method));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let where_ = format!("[{}] {} {path}", r.section, r.method);
        assert_eq!(status, r.status, "{where_}: answered {status} {text}");
        if let Some(expected) = &r.answer {
            let actual: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{where_}: answer is not JSON ({e}): {text}"));
            if let Err(difference) = contains(expected, &actual, "answer", &mut vars) {
                panic!("{where_}: {difference}\nanswered: {actual}");
            }
        }
    }
}

fn memory_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("SWITCHBOARD_ENGINE", "memory"),
        ("SWITCHBOARD_API_KEYS", concat!("test:", "test-key-0123456789abcdef")),
        ("SWITCHBOARD_TOKEN_SECRET", "test-secret-for-tokens-only"),
    ]
}

#[test]
fn every_call_a_table_names_has_a_recipe_in_its_section() {
    assert!(API_KEY.len() > 10);
    let (recipes, named) = parse(COOKBOOK);
    assert!(recipes.len() >= 40, "only {} recipes", recipes.len());
    let missing: Vec<_> = named
        .iter()
        .filter(|(section, call)| !recipes.iter().any(|r| &r.section == section && exercises(r, call)))
        .collect();
    assert!(missing.is_empty(), "calls named in a table with no recipe in their section: {missing:#?}");
}

#[tokio::test]
async fn every_recipe_runs_on_the_memory_engine() {
    let (recipes, _) = parse(COOKBOOK);
    run_all(&Node::start(&memory_env()), &recipes).await;
}

#[tokio::test]
async fn every_recipe_runs_on_redis() {
    let (recipes, _) = parse(COOKBOOK);
    let redis = RedisServer::start();
    let url = redis.url();
    run_all(&Node::start(&redis_env(&url, "cookbook:")), &recipes).await;
}
