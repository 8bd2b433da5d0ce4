//! `MemoryRateLimiter`: limiter state per key under one mutex (so multi-key checks are atomic),
//! decided by core's reference algorithms. Idle keys are dropped once their window has passed.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use switchboard_core::ratelimit::algorithms::{LimiterState, evaluate};
use switchboard_core::{Decision, Policy, RateLimitKey, RateLimitRequest, RateLimiter, Result, Timestamp};

use crate::journal::{self, Durable, Journal, Sink, store};
use crate::sweeper::Sweepable;
use crate::{codec, lock};

#[derive(Default)]
pub(crate) struct MemoryRateLimiter {
    // One lock for all keys: critical sections are a few hundred nanoseconds of arithmetic, far
    // below what contention on two cores would make noticeable, and multi-key checks stay simple.
    state: Mutex<HashMap<RateLimitKey, Entry>>,
    journal: Journal,
}

/// A journal record is the list of one check's new key states, or a reset.
#[derive(serde::Serialize, serde::Deserialize)]
enum Change<'a> {
    Set(Cow<'a, RateLimitKey>, Cow<'a, LimiterState>, i64),
    Reset(Cow<'a, RateLimitKey>),
}

/// The kind byte of a binary record: one check's new key states, each a key, its state and its
/// expiry (see [`write_set`]), up to the record's end.
const SETS: u8 = 1;

/// Writes one key's new state into a [`SETS`] record.
fn write_set(w: &mut codec::Writer<'_>, key: &RateLimitKey, state: &LimiterState, expires_at_ms: i64) {
    w.str(key.as_str());
    match state {
        LimiterState::Gcra { tat } => {
            w.u8(0).f64(*tat);
        }
        LimiterState::Window { index, curr, prev } => {
            w.u8(1).i64(*index).u64(*curr).u64(*prev);
        }
        LimiterState::Log { entries } => {
            w.u8(2).u64(entries.len() as u64);
            for at in entries {
                w.i64(*at);
            }
        }
    }
    w.i64(expires_at_ms);
}

/// Reads one key's state written by [`write_set`].
fn read_set(r: &mut codec::Reader<'_>) -> serde_json::Result<(RateLimitKey, LimiterState, i64)> {
    let key = r.parse("rate-limit key")?;
    let state = match r.u8()? {
        0 => LimiterState::Gcra { tat: r.f64()? },
        1 => LimiterState::Window { index: r.i64()?, curr: r.u64()?, prev: r.u64()? },
        2 => {
            let n = r.u64()?;
            let mut entries = std::collections::VecDeque::new();
            for _ in 0..n {
                entries.push_back(r.i64()?);
            }
            LimiterState::Log { entries }
        }
        _ => return Err(codec::error("unknown rate-limit state")),
    };
    Ok((key, state, r.i64()?))
}

impl MemoryRateLimiter {
    pub(crate) fn new(journal: Journal) -> Self {
        MemoryRateLimiter { state: Mutex::default(), journal }
    }
}

impl Durable for MemoryRateLimiter {
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()> {
        journal::restore_from(self, Self::new(Journal::default()), records, |s| &s.state)
    }

    fn replay(&self, record: &[u8]) -> serde_json::Result<()> {
        let changes: Vec<Change<'_>> = match codec::Reader::of(record) {
            Some((SETS, mut r)) => {
                let mut changes = Vec::new();
                while !r.is_empty() {
                    let (key, state, expires_at_ms) = read_set(&mut r)?;
                    changes.push(Change::Set(Cow::Owned(key), Cow::Owned(state), expires_at_ms));
                }
                changes
            }
            Some(_) => return Err(codec::error("unknown rate-limit record")),
            None => serde_json::from_slice(record)?,
        };
        let mut map = lock(&self.state);
        for change in changes {
            match change {
                Change::Set(key, state, expires_at_ms) => {
                    map.insert(key.into_owned(), Entry { state: state.into_owned(), expires_at_ms });
                }
                Change::Reset(key) => drop(map.remove(key.as_ref())),
            }
        }
        Ok(())
    }

    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()> {
        let map = lock(&self.state);
        sink.begin();
        for (key, e) in map.iter() {
            sink.record_binary(SETS, |w| write_set(w, key, &e.state, e.expires_at_ms));
        }
        Ok(())
    }
}

struct Entry {
    state: LimiterState,
    /// When the state no longer matters (ms since epoch).
    expires_at_ms: i64,
}

fn stored(map: &HashMap<RateLimitKey, Entry>, key: &RateLimitKey, now_ms: i64) -> Option<LimiterState> {
    map.get(key).filter(|e| e.expires_at_ms > now_ms).map(|e| e.state.clone())
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, requests: &[RateLimitRequest]) -> Result<Vec<Decision>> {
        self.journal.writable()?;
        let now_ms = Timestamp::now().as_millis();
        let (decisions, written) = {
            let mut map = lock(&self.state);
            let evaluations: Vec<_> = requests
                .iter()
                .map(|r| evaluate(stored(&map, &r.key, now_ms).as_ref(), &r.policy, r.cost, now_ms))
                .collect();
            if !evaluations.iter().all(|e| e.consumed.is_some()) {
                return Ok(evaluations.into_iter().map(|e| e.current).collect());
            }
            // Written from the evaluations (a key checked twice is written twice, the later state
            // last, as the map keeps it), then applied.
            let written = self.journal.append_binary(store::RATE_LIMITS, SETS, |w| {
                for (request, evaluation) in requests.iter().zip(&evaluations) {
                    if let Some((_, state, expires_at_ms)) = &evaluation.consumed {
                        write_set(w, &request.key, state, *expires_at_ms);
                    }
                }
            });
            let mut decisions = Vec::with_capacity(requests.len());
            for (request, evaluation) in requests.iter().zip(evaluations) {
                if let Some((decision, state, expires_at_ms)) = evaluation.consumed {
                    map.insert(request.key.clone(), Entry { state, expires_at_ms });
                    decisions.push(decision);
                }
            }
            (decisions, written)
        };
        written.wait().await?;
        Ok(decisions)
    }

    async fn status(&self, key: &RateLimitKey, policy: &Policy) -> Result<Decision> {
        let now_ms = Timestamp::now().as_millis();
        let map = lock(&self.state);
        Ok(evaluate(stored(&map, key, now_ms).as_ref(), policy, 1, now_ms).current)
    }

    async fn reset(&self, key: &RateLimitKey) -> Result<bool> {
        self.journal.writable()?;
        let now_ms = Timestamp::now().as_millis();
        let (live, written) = {
            let mut map = lock(&self.state);
            let Some(entry) = map.remove(key) else { return Ok(false) };
            (
                entry.expires_at_ms > now_ms,
                self.journal.append(store::RATE_LIMITS, &[Change::Reset(Cow::Borrowed(key))]),
            )
        };
        written.wait().await?;
        Ok(live)
    }
}

impl Sweepable for MemoryRateLimiter {
    fn sweep(&self, now: Timestamp) {
        let now_ms = now.as_millis();
        lock(&self.state).retain(|_, e| e.expires_at_ms > now_ms);
    }
}
