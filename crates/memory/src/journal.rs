//! The durable mode's write-ahead journal: every store appends one record per state change (under
//! its own lock, so a store's records are in the order its changes were made), and waits for the
//! record to be written ([`SyncPolicy::EverySec`], [`SyncPolicy::No`]) or written and fsynced
//! ([`SyncPolicy::Always`]) before it answers. Group commit without a thread switch: the first
//! waiting request that finds no write under way becomes the leader and writes everything
//! appended so far as one batch — one `write` and, under `always`, one fsync — for every request
//! waiting on it; the others wait for the batch that covers them. The journal's own thread only
//! writes records nobody waits for, fsyncs under `everysec` and probes the log after a failure.
//!
//! Records are JSON, or binary ([`crate::codec`]) on the hot paths; each store's `replay` reads
//! both. Files in the data dir: `LOCK` (held by the one process that owns the dir), `log-<gen>`
//! (frames of [`crate::wal`]) and `snapshot-<gen>`. A snapshot holds, per store, the journal sequence it
//! was cut at (taken under the store's lock) and records that rebuild its state; at start the
//! newest snapshot is loaded, then every log of its generation or later is replayed, skipping each
//! store's records at or below its cut. Compaction starts a new log generation, writes a snapshot
//! of that generation beside it (temporary file, fsync, rename) and deletes older files.
//!
//! Without a data dir the journal is off: appends cost one branch and waits are immediate.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use switchboard_core::{Error, Result};
use tokio::sync::Notify;

use crate::config::SyncPolicy;
use crate::{codec, lock, wal};

/// The store tag of each durable store, the second field of every record (never reuse a value).
pub(crate) mod store {
    pub(crate) const SESSIONS: u8 = 1;
    pub(crate) const DENYLIST: u8 = 2;
    pub(crate) const NOTIFICATIONS: u8 = 3;
    pub(crate) const INBOX: u8 = 4;
    pub(crate) const STREAMS: u8 = 5;
    pub(crate) const JOBS: u8 = 6;
    pub(crate) const MESSAGES: u8 = 7;
    pub(crate) const CONVERSATIONS: u8 = 8;
    pub(crate) const RATE_LIMITS: u8 = 9;
    pub(crate) const PRESENCE: u8 = 10;
    /// A record of no store: the frame the journal thread appends to test that the log can be written
    /// again after a failed write. Replay skips it.
    pub(crate) const PROBE: u8 = 0;
}

/// A store whose state the journal persists.
pub(crate) trait Durable: Send + Sync {
    /// Applies one of the store's own records (at start, before anything is served).
    fn replay(&self, record: &[u8]) -> serde_json::Result<()>;
    /// Writes records that rebuild the whole state: calls [`Sink::begin`] first, under the same
    /// lock its mutations append under, and keeps that lock until the last record.
    fn snapshot(&self, sink: &mut Sink) -> serde_json::Result<()>;
    /// Replaces the whole state by the one `records` rebuild (the store's records in the journal,
    /// snapshot first): the roll-back after a failed write. Swaps it in under the store's lock.
    fn restore(&self, records: &[&[u8]]) -> serde_json::Result<()>;
}

/// The usual [`Durable::restore`]: `records` replayed into `fresh` (a store of the same kind with
/// no journal), whose state then takes the place of `store`'s under its lock.
pub(crate) fn restore_from<S: Durable, T>(
    store: &S,
    fresh: S,
    records: &[&[u8]],
    state: impl Fn(&S) -> &Mutex<T>,
) -> serde_json::Result<()> {
    records.iter().try_for_each(|record| fresh.replay(record))?;
    std::mem::swap(&mut *crate::lock(state(store)), &mut *crate::lock(state(&fresh)));
    Ok(())
}

/// The journal handle every store holds; `Default` is off (the plain memory engine).
#[derive(Clone, Default)]
pub(crate) struct Journal(Option<Arc<Owner>>);

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Journal(on)" } else { "Journal(off)" })
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // A compaction holds a store while it snapshots it, so it may end up with the last handle
        // and release the dir after the engine is gone: wait for it instead (unless on its thread).
        if let Some(owner) = &self.0 {
            let mut compaction = lock(&owner.shared.compaction);
            while compaction.running.is_some_and(|id| id != std::thread::current().id()) {
                compaction =
                    owner.shared.compaction_done.wait(compaction).unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }
}

/// Proof of an append; [`Ticket::wait`] resolves once the record is as durable as the policy asks.
#[must_use = "a change is acknowledged only after its record is durable: await `wait`"]
pub(crate) struct Ticket(Waiting);

enum Waiting {
    Done,
    Failed(String),
    On(Arc<Shared>, u64),
}

impl Ticket {
    /// Waits until the record is written (and fsynced under `always`); a failed write (disk full,
    /// I/O error) is `engine_unavailable`.
    pub(crate) async fn wait(self) -> Result<()> {
        let (shared, seq) = match self.0 {
            Waiting::Done => return Ok(()),
            Waiting::Failed(why) => return Err(Error::Internal(why)),
            Waiting::On(shared, seq) => (shared, seq),
        };
        // Under `always` the journal's thread writes and fsyncs each batch: a leader's fsync would
        // stall its worker thread for milliseconds (measured several times slower on two cores).
        let leads = shared.policy != SyncPolicy::Always;
        if leads && shared.written.load(Ordering::Acquire) < seq {
            // Let the tasks ready on this worker append theirs first: one write then covers them.
            tokio::task::yield_now().await;
        }
        let mut yields = 0;
        loop {
            if shared.written.load(Ordering::Acquire) >= seq {
                return shared.outcome(seq);
            }
            // Registered before looking at the log, so a batch ending in between still wakes us.
            let mut notified = std::pin::pin!(shared.batch_done.notified());
            notified.as_mut().enable();
            if !leads {
                if shared.written.load(Ordering::Acquire) < seq {
                    notified.await;
                }
                continue;
            }
            let led = match shared.log.try_lock() {
                Ok(mut log) => {
                    lead(&shared, &mut log);
                    true
                }
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    lead(&shared, &mut poisoned.into_inner());
                    true
                }
                Err(std::sync::TryLockError::WouldBlock) => false,
            };
            if led {
                after_batch(&shared);
            }
            if !led && shared.written.load(Ordering::Acquire) < seq {
                if yields < MAX_YIELDS_WHILE_WRITING {
                    // Another request is writing a batch (a few microseconds): run the tasks ready
                    // on this worker meanwhile rather than park it and be woken by a syscall.
                    yields += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                notified.await;
            }
        }
    }
}

/// How many times a waiter whose record another request is writing yields before it sleeps
/// until that batch ends.
const MAX_YIELDS_WHILE_WRITING: u32 = 2;

impl Journal {
    /// `Ok` unless the journal cannot be written (a write failed: disk full, file too large, I/O
    /// error), then `engine_unavailable`. Every mutation calls it before changing anything, so a
    /// refused write leaves the state as it was.
    pub(crate) fn writable(&self) -> Result<()> {
        let Some(owner) = &self.0 else { return Ok(()) };
        if !owner.shared.unwritable.load(Ordering::Acquire) {
            return Ok(());
        }
        let why = lock(&owner.shared.failed).clone().unwrap_or_default();
        Err(Error::Unavailable(format!(
            "data dir: the journal cannot be written ({why}); writes are refused until it can, reads go on"
        )))
    }

    /// Appends `record` of `store` as JSON; call it under the lock that guards the change it
    /// records.
    pub(crate) fn append<R: Serialize + ?Sized>(&self, store: u8, record: &R) -> Ticket {
        self.append_with(store, |body| serde_json::to_writer(body, record))
    }

    /// Appends a binary record of `store` (see [`crate::codec`]) of `kind`, which `encode` writes;
    /// call it under the lock that guards the change it records.
    pub(crate) fn append_binary(&self, store: u8, kind: u8, encode: impl FnOnce(&mut codec::Writer<'_>)) -> Ticket {
        self.append_with(store, |body| {
            encode(&mut codec::Writer::new(body, kind));
            Ok(())
        })
    }

    fn append_with(&self, store: u8, encode: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>) -> Ticket {
        let Some(owner) = &self.0 else { return Ticket(Waiting::Done) };
        thread_local! {
            // Encoding into a reused buffer spares an allocation and a free per record.
            static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let shared = &owner.shared;
        let seq = SCRATCH.with_borrow_mut(|body| {
            body.clear();
            encode(body)?;
            let mut pending = lock(&shared.pending);
            pending.last_seq += 1;
            let seq = pending.last_seq;
            wal::encode(&mut pending.buf, seq, store, body);
            drop(pending);
            if body.capacity() > 1 << 20 {
                *body = Vec::new();
            }
            Ok::<u64, serde_json::Error>(seq)
        });
        let seq = match seq {
            Ok(seq) => seq,
            Err(e) => return Ticket(Waiting::Failed(format!("journal: record of store {store}: {e}"))),
        };
        if shared.policy == SyncPolicy::Always {
            shared.wake.notify_one();
        }
        Ticket(Waiting::On(shared.clone(), seq))
    }
}

/// What a start found in the data dir.
#[derive(Debug, Default)]
struct Opened {
    /// Records replayed from logs (past the snapshot's cuts).
    replayed: u64,
    /// Bytes of a torn tail dropped from the newest log.
    torn_bytes: u64,
}

/// Owns the journal thread and the dir lock; dropping the last handle flushes and stops.
struct Owner {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    _lock: File,
}

impl Drop for Owner {
    fn drop(&mut self) {
        lock(&self.shared.pending).shutdown = true;
        self.shared.wake.notify_one();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
        // A last batch and fsync; closing the log makes any later wait fail instead of hang.
        let mut log = lock(&self.shared.log);
        lead(&self.shared, &mut log);
        if let Some(log) = log.as_mut() {
            if let Some((_, retired)) = log.retired.take() {
                let _ = retired.sync_data();
            }
            let _ = log.file.sync_data();
        }
        *log = None;
        drop(log);
        self.shared.batch_done.notify_waiters();
        // A compaction still running must not delete files once the lock is released.
        let mut compaction = lock(&self.shared.compaction);
        while compaction.running.is_some_and(|id| id != std::thread::current().id()) {
            compaction =
                self.shared.compaction_done.wait(compaction).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

struct Shared {
    dir: PathBuf,
    policy: SyncPolicy,
    compact_log_bytes: u64,
    pending: Mutex<Pending>,
    /// Wakes the journal's thread (at shutdown).
    wake: Condvar,
    /// The open log; its lock is held by the one leader writing a batch. `None` once closed.
    log: Mutex<Option<Log>>,
    /// The highest sequence written (and fsynced under `always`), failed or not.
    written: AtomicU64,
    /// Woken at the end of every batch.
    batch_done: Notify,
    /// Whether `failures` ever held anything (spares the lock on the common path).
    any_failure: AtomicBool,
    failures: Mutex<VecDeque<Failure>>,
    /// Set while the journal cannot be written; [`Journal::writable`] reads it.
    unwritable: AtomicBool,
    /// Why, while `unwritable`.
    failed: Mutex<Option<String>>,
    stores: Mutex<Vec<(u8, Weak<dyn Durable>)>>,
    compaction: Mutex<Compaction>,
    compaction_done: Condvar,
}

/// A batch buffer larger than this (after a burst) is freed rather than kept as the spare.
const MAX_KEPT_BUFFER: usize = 4 << 20;

#[derive(Default)]
struct Pending {
    /// Frames appended and not yet taken by a batch.
    buf: Vec<u8>,
    /// The other buffer, empty: the next batch's `buf`.
    spare: Vec<u8>,
    last_seq: u64,
    shutdown: bool,
}

struct Log {
    file: File,
    generation: u64,
    /// Bytes of whole records in `file`.
    bytes: u64,
    /// Written under `everysec` since the last fsync.
    unsynced: bool,
    /// The previous generation's log while its tail may not be fsynced yet (not under
    /// `always`), with its generation: fsynced by the compaction the new generation started and
    /// at the latest before the new log is ([`sync_retired`]), so a crash never keeps a later
    /// record while losing an earlier one.
    retired: Option<(u64, File)>,
}

impl Shared {
    /// Whether the record at `seq` (already written or failed) was written.
    fn outcome(&self, seq: u64) -> Result<()> {
        if !self.any_failure.load(Ordering::Acquire) {
            return Ok(());
        }
        let failures = lock(&self.failures);
        match failures.iter().rev().find(|f| f.first <= seq && seq <= f.last) {
            Some(f) => Err(Error::Unavailable(format!("data dir: write failed: {}", f.why))),
            None => Ok(()),
        }
    }
}

struct Failure {
    first: u64,
    last: u64,
    why: String,
}

/// Failed batches remembered for their waiters.
const KEPT_FAILURES: usize = 256;

#[derive(Default)]
struct Compaction {
    running: Option<ThreadId>,
    finished: u64,
    last_error: Option<String>,
}

/// Where a snapshot being written collects its records.
pub(crate) struct Sink<'a> {
    shared: &'a Shared,
    store: u8,
    cut: u64,
    out: Vec<u8>,
    /// The record being encoded (one allocation for the whole snapshot).
    body: Vec<u8>,
}

impl Sink<'_> {
    /// Records the store's cut: call it under the store's lock, before the first record.
    pub(crate) fn begin(&mut self) {
        self.cut = lock(&self.shared.pending).last_seq;
        wal::encode(&mut self.out, self.cut, self.store, b"null");
    }

    /// Adds one record that rebuilds part of the state.
    pub(crate) fn record<R: Serialize + ?Sized>(&mut self, record: &R) -> serde_json::Result<()> {
        self.body.clear();
        serde_json::to_writer(&mut self.body, record)?;
        wal::encode(&mut self.out, self.cut, self.store, &self.body);
        Ok(())
    }

    /// Adds one binary record (see [`Journal::append_binary`]) that rebuilds part of the state.
    pub(crate) fn record_binary(&mut self, kind: u8, encode: impl FnOnce(&mut codec::Writer<'_>)) {
        self.body.clear();
        encode(&mut codec::Writer::new(&mut self.body, kind));
        wal::encode(&mut self.out, self.cut, self.store, &self.body);
    }
}

fn file_name(kind: &str, generation: u64) -> String {
    format!("{kind}-{generation:020}")
}

/// `(kind, generation)` of a journal file name.
fn parse_name(name: &str) -> Option<(&str, u64)> {
    let (kind, generation) = name.split_once('-')?;
    let generation = generation.parse().ok()?;
    matches!(kind, "log" | "snapshot").then_some((kind, generation))
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::Internal(format!("data dir: {what} {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A data dir opened and read, its stores not yet rebuilt.
pub(crate) struct Recovery {
    owner: Arc<Owner>,
    snapshot: Option<(PathBuf, Vec<u8>)>,
    logs: Vec<(PathBuf, Vec<u8>)>,
    next_generation: u64,
}

/// Opens (creating it if needed) and locks `dir`, and reads its snapshot and logs.
pub(crate) fn open(dir: &Path, policy: SyncPolicy, compact_log_bytes: u64) -> Result<Recovery> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, "cannot create", e))?;
    let lock_path = dir.join("LOCK");
    let lock_file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, "cannot open", e))?;
    match lock_file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(Error::Unavailable(format!(
                "data dir {} is in use by another switchboard process (it holds {}); stop it or choose another \
                 data dir",
                dir.display(),
                lock_path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, "cannot lock", e)),
    }
    let mut snapshots = Vec::new();
    let mut logs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, "cannot list", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(dir, "cannot list", e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            // A snapshot whose writing was cut short: never renamed, so never used.
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        match parse_name(name) {
            Some(("log", generation)) => logs.push((generation, entry.path())),
            Some((_, generation)) => snapshots.push((generation, entry.path())),
            None => {}
        }
    }
    snapshots.sort();
    logs.sort();
    let newest = logs.last().map(|l| l.0).max(snapshots.last().map(|s| s.0)).unwrap_or(0);
    let base = snapshots.last().map(|s| s.0);
    let read = |path: &Path| -> Result<Vec<u8>> {
        let mut bytes = Vec::new();
        File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| io_error(path, "cannot read", e))?;
        Ok(bytes)
    };
    let snapshot = match snapshots.last() {
        Some((_, path)) => Some((path.clone(), read(path)?)),
        None => None,
    };
    let mut kept_logs = Vec::new();
    for (generation, path) in logs {
        if base.is_some_and(|base| generation < base) {
            // Covered by the snapshot; left behind by a compaction stopped before its cleanup.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        kept_logs.push((path.clone(), read(&path)?));
    }
    for (generation, path) in &snapshots {
        if Some(*generation) != base {
            let _ = std::fs::remove_file(path);
        }
    }
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        policy,
        compact_log_bytes,
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        log: Mutex::new(None),
        written: AtomicU64::new(0),
        batch_done: Notify::new(),
        any_failure: AtomicBool::new(false),
        failures: Mutex::new(VecDeque::new()),
        unwritable: AtomicBool::new(false),
        failed: Mutex::new(None),
        stores: Mutex::new(Vec::new()),
        compaction: Mutex::new(Compaction::default()),
        compaction_done: Condvar::new(),
    });
    let owner = Arc::new(Owner { shared, writer: Mutex::new(None), _lock: lock_file });
    Ok(Recovery { owner, snapshot, logs: kept_logs, next_generation: newest + 1 })
}

impl Recovery {
    /// The handle to give every store before [`Recovery::finish`].
    pub(crate) fn journal(&self) -> Journal {
        Journal(Some(self.owner.clone()))
    }

    /// Rebuilds `stores` (each with its store tag) from the snapshot and the logs, then starts
    /// the journal thread on a new log generation.
    pub(crate) fn finish(self, stores: Vec<(u8, Arc<dyn Durable>)>) -> Result<()> {
        let by_tag: HashMap<u8, &Arc<dyn Durable>> = stores.iter().map(|(tag, s)| (*tag, s)).collect();
        let mut cuts: HashMap<u8, u64> = HashMap::new();
        let mut last_seq = 0;
        let corrupt = |path: &Path, offset: usize, why: &str| {
            Error::Internal(format!(
                "data dir: {} is corrupt at byte offset {offset} ({why}); start-up stopped so nothing is lost \
                 silently: restore the file from a backup, or move it away to start without its records",
                path.display()
            ))
        };
        let apply = |path: &Path, frame: &wal::Frame<'_>, offset: usize| -> Result<()> {
            let store = by_tag.get(&frame.store).ok_or_else(|| corrupt(path, offset, "unknown store"))?;
            store.replay(frame.record).map_err(|e| corrupt(path, offset, &format!("undecodable record: {e}")))
        };
        if let Some((path, bytes)) = &self.snapshot {
            let scan = wal::scan(bytes).map_err(|at| corrupt(path, at, "checksum mismatch"))?;
            if scan.valid_len != bytes.len() {
                return Err(corrupt(path, scan.valid_len, "truncated snapshot"));
            }
            let mut offset = 0;
            for frame in &scan.frames {
                if frame.record == b"null" && !cuts.contains_key(&frame.store) {
                    cuts.insert(frame.store, frame.seq);
                } else {
                    apply(path, frame, offset)?;
                }
                last_seq = last_seq.max(frame.seq);
                offset += wal::HEADER + wal::PREFIX + frame.record.len();
            }
        }
        let mut opened = Opened::default();
        let count = self.logs.len();
        for (i, (path, bytes)) in self.logs.iter().enumerate() {
            let scan = wal::scan(bytes).map_err(|at| corrupt(path, at, "checksum mismatch"))?;
            if scan.valid_len != bytes.len() {
                if i + 1 != count {
                    return Err(corrupt(path, scan.valid_len, "incomplete record before the newest log"));
                }
                let dropped = bytes.len() - scan.valid_len;
                tracing::warn!(
                    file = %path.display(),
                    offset = scan.valid_len,
                    dropped_bytes = dropped,
                    "data dir: dropped a torn record at the end of the log (a write cut short by a crash; it was \
                     never acknowledged)"
                );
                let file = OpenOptions::new().write(true).open(path).map_err(|e| io_error(path, "cannot open", e))?;
                file.set_len(scan.valid_len as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error(path, "cannot truncate", e))?;
                opened.torn_bytes = dropped as u64;
            }
            let mut offset = 0;
            for frame in &scan.frames {
                if frame.store != store::PROBE && frame.seq > cuts.get(&frame.store).copied().unwrap_or(0) {
                    apply(path, frame, offset)?;
                    opened.replayed += 1;
                }
                last_seq = last_seq.max(frame.seq);
                offset += wal::HEADER + wal::PREFIX + frame.record.len();
            }
        }
        let shared = self.owner.shared.clone();
        lock(&shared.pending).last_seq = last_seq;
        shared.written.store(last_seq, Ordering::Release);
        *lock(&shared.stores) = stores.iter().map(|(tag, s)| (*tag, Arc::downgrade(s))).collect();
        let generation = self.next_generation;
        let file = open_log(&shared.dir, generation)?;
        *lock(&shared.log) = Some(Log { file, generation, bytes: 0, unsynced: false, retired: None });
        let thread_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("switchboard-journal".into())
            .spawn(move || background(thread_shared))
            .map_err(|e| Error::Internal(format!("data dir: cannot start the journal writer: {e}")))?;
        *lock(&self.owner.writer) = Some(writer);
        if opened.replayed > 0 || opened.torn_bytes > 0 {
            tracing::info!(records = opened.replayed, torn_bytes = opened.torn_bytes, "data dir: state restored");
        }
        Ok(())
    }
}

fn open_log(dir: &Path, generation: u64) -> Result<File> {
    let path = dir.join(file_name("log", generation));
    let file =
        OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error(&path, "cannot create", e))?;
    sync_dir(dir).map_err(|e| io_error(dir, "cannot sync", e))?;
    Ok(file)
}

/// Writes everything appended so far as one batch: one `write` and, under `always`, one fsync.
/// Called with the log's lock held (`log`), so batches never overlap and stay in order.
fn lead(shared: &Arc<Shared>, log: &mut Option<Log>) {
    // Only a batch (under the log's lock, held here) moves it.
    let written = shared.written.load(Ordering::Acquire);
    let (through, mut batch) = {
        let mut pending = lock(&shared.pending);
        if pending.last_seq <= written {
            return;
        }
        // Appends go on into the spare buffer meanwhile: two buffers keep their capacity, so
        // neither grows through reallocations nor is freed per batch.
        let spare = std::mem::take(&mut pending.spare);
        (pending.last_seq, std::mem::replace(&mut pending.buf, spare))
    };
    match log.as_mut() {
        None => push_failure(shared, written + 1, through, "the journal is closed"),
        Some(_) if shared.unwritable.load(Ordering::Acquire) => {
            // Appended by a mutation that passed `writable` just before a failure: undo it too.
            push_failure(shared, written + 1, through, "the journal cannot be written");
            roll_back(shared);
        }
        Some(log) => {
            let result = log.file.write_all(&batch).and_then(|()| match shared.policy {
                SyncPolicy::Always => log.file.sync_data(),
                _ => Ok(()),
            });
            match result {
                Ok(()) => {
                    log.bytes += batch.len() as u64;
                    log.unsynced = shared.policy != SyncPolicy::Always;
                }
                Err(e) => {
                    // No partial frame may stay behind the next batch.
                    let _ = log.file.set_len(log.bytes);
                    push_failure(shared, written + 1, through, &e.to_string());
                    refuse(shared, e.to_string());
                    // The refused requests are answered once the state no longer shows them.
                    roll_back(shared);
                }
            }
        }
    }
    shared.written.store(through, Ordering::Release);
    batch.clear();
    if batch.capacity() <= MAX_KEPT_BUFFER {
        lock(&shared.pending).spare = batch;
    }
}

/// What follows a batch, once the log's lock is released: its waiters are woken (a woken worker
/// may take this thread's core, so never while the lock is held: every waiter would stall), then
/// a log grown past `compact_log_bytes` starts a new generation and a compaction.
fn after_batch(shared: &Arc<Shared>) {
    shared.batch_done.notify_waiters();
    let mut log = match shared.log.try_lock() {
        Ok(log) => log,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        // The batch under way does it.
        Err(std::sync::TryLockError::WouldBlock) => return,
    };
    if let Some(log) = log.as_mut()
        && log.bytes >= shared.compact_log_bytes
        && !shared.unwritable.load(Ordering::Acquire)
        && lock(&shared.compaction).running.is_none()
    {
        match open_log(&shared.dir, log.generation + 1) {
            Ok(next) => {
                // The old log's last second is fsynced off this path (an fsync of tens of MiB
                // would stall every waiter): see `Log::retired`.
                let old = std::mem::replace(&mut log.file, next);
                if log.unsynced
                    && let Some((_, earlier)) = log.retired.replace((log.generation, old))
                {
                    // Not expected: the compaction that fsyncs it ended before this one starts.
                    let _ = earlier.sync_data();
                }
                (log.generation, log.bytes, log.unsynced) = (log.generation + 1, 0, false);
                start_compaction(shared, log.generation);
            }
            Err(e) => tracing::error!(error = %e, "data dir: cannot start a new log; compaction postponed"),
        }
    }
}

/// The journal's thread wakes this often to write records nobody waits for.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The journal's own thread: under `always` writes and fsyncs every batch; otherwise writes
/// records nobody waits for (presence transitions, requests cancelled while waiting), fsyncs under `everysec` once a second (outside the log's lock, so
/// batches go on meanwhile), and while the log cannot be written, probes it once a second.
fn background(shared: Arc<Shared>) {
    let mut last_sync = Instant::now();
    let mut next_probe = Instant::now();
    loop {
        {
            let mut pending = lock(&shared.pending);
            let deadline = Instant::now() + FLUSH_INTERVAL;
            // Under `always` every append wakes this thread (it writes every batch); otherwise it
            // only looks every FLUSH_INTERVAL, since the waiting requests write their own batches.
            loop {
                let now = Instant::now();
                if pending.shutdown {
                    return;
                }
                if now >= deadline || (shared.policy == SyncPolicy::Always && !pending.buf.is_empty()) {
                    break;
                }
                pending = shared
                    .wake
                    .wait_timeout(pending, deadline - now)
                    .map(|(p, _)| p)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        }
        lead(&shared, &mut lock(&shared.log));
        after_batch(&shared);
        let mut log = lock(&shared.log);
        let Some(open) = log.as_mut() else { return };
        let now = Instant::now();
        if shared.unwritable.load(Ordering::Acquire) {
            if now >= next_probe {
                next_probe = now + PROBE_INTERVAL;
                if probe(open) {
                    *lock(&shared.failed) = None;
                    shared.unwritable.store(false, Ordering::Release);
                    tracing::info!("data dir: the journal can be written again; writes are accepted");
                }
            }
            continue;
        }
        if (open.unsynced || open.retired.is_some()) && now.duration_since(last_sync) >= Duration::from_secs(1) {
            open.unsynced = false;
            let file = open.file.try_clone();
            drop(log);
            last_sync = now;
            if let Err(e) = sync_retired(&shared).and(file).and_then(|f| f.sync_data()) {
                // What was written may not be on disk: refuse writes until a probe is fsynced.
                refuse(&shared, e.to_string());
                next_probe = now + PROBE_INTERVAL;
            }
        }
    }
}

/// Fsyncs the retired log, if any (outside the log's lock), and forgets it once it is on disk.
fn sync_retired(shared: &Shared) -> std::io::Result<()> {
    let retired = match lock(&shared.log).as_ref().and_then(|l| l.retired.as_ref()) {
        Some((generation, file)) => (*generation, file.try_clone()?),
        None => return Ok(()),
    };
    retired.1.sync_data()?;
    if let Some(log) = lock(&shared.log).as_mut()
        && log.retired.as_ref().is_some_and(|(generation, _)| *generation == retired.0)
    {
        log.retired = None;
    }
    Ok(())
}

fn push_failure(shared: &Shared, first: u64, last: u64, why: &str) {
    let mut failures = lock(&shared.failures);
    if failures.len() == KEPT_FAILURES {
        failures.pop_front();
    }
    failures.push_back(Failure { first, last, why: why.to_owned() });
    shared.any_failure.store(true, Ordering::Release);
}

/// Probes are this far apart while the journal cannot be written.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Refuses writes from now on ([`Journal::writable`]) until a probe succeeds.
fn refuse(shared: &Shared, why: String) {
    if !shared.unwritable.load(Ordering::Acquire) {
        tracing::error!(
            error = %why,
            "data dir: journal write failed; writes are refused (503 engine_unavailable) until it can be written \
             again, reads go on"
        );
    }
    *lock(&shared.failed) = Some(why);
    shared.unwritable.store(true, Ordering::Release);
}

/// Appends a probe frame (and fsyncs it, since an fsync may have been what failed), after cutting
/// any partial frame; `true` once the log can be written again.
fn probe(log: &mut Log) -> bool {
    let mut frame = Vec::new();
    wal::encode(&mut frame, 0, store::PROBE, b"null");
    let probed =
        log.file.set_len(log.bytes).and_then(|()| log.file.write_all(&frame)).and_then(|()| log.file.sync_data());
    if probed.is_ok() {
        log.bytes += frame.len() as u64;
    }
    probed.is_ok()
}

/// Rolls every store back to what the journal holds, so nothing refused stays visible.
fn roll_back(shared: &Shared) {
    wait_for_compaction(shared);
    if let Err(e) = rebuild(shared) {
        tracing::error!(error = %e, "data dir: cannot roll the state back to the journal");
    }
}

fn wait_for_compaction(shared: &Shared) {
    let mut compaction = lock(&shared.compaction);
    while compaction.running.is_some() {
        compaction = shared.compaction_done.wait(compaction).unwrap_or_else(std::sync::PoisonError::into_inner);
    }
}

/// Restores every store from the journal files as they are on disk (see [`Durable::restore`]).
fn rebuild(shared: &Shared) -> Result<()> {
    let dir = &shared.dir;
    let mut snapshot: Option<(u64, PathBuf)> = None;
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, "cannot list", e))?.flatten() {
        let name = entry.file_name();
        match name.to_str().and_then(parse_name) {
            Some(("log", generation)) => logs.push((generation, entry.path())),
            Some((_, generation)) if snapshot.as_ref().is_none_or(|s| s.0 < generation) => {
                snapshot = Some((generation, entry.path()));
            }
            _ => {}
        }
    }
    logs.sort();
    let base = snapshot.as_ref().map_or(0, |s| s.0);
    let mut files = Vec::new();
    for path in snapshot.iter().map(|s| &s.1).chain(logs.iter().filter(|l| l.0 >= base).map(|l| &l.1)) {
        files.push(std::fs::read(path).map_err(|e| io_error(path, "cannot read", e))?);
    }
    let mut records: HashMap<u8, Vec<&[u8]>> = HashMap::new();
    let mut cuts: HashMap<u8, u64> = HashMap::new();
    for (i, bytes) in files.iter().enumerate() {
        let in_snapshot = i == 0 && snapshot.is_some();
        let scan = wal::scan(bytes).map_err(|at| Error::Internal(format!("data dir: corrupt record at {at}")))?;
        for frame in scan.frames {
            if in_snapshot && frame.record == b"null" && !cuts.contains_key(&frame.store) {
                cuts.insert(frame.store, frame.seq);
            } else if in_snapshot
                || (frame.store != store::PROBE && frame.seq > cuts.get(&frame.store).copied().unwrap_or(0))
            {
                records.entry(frame.store).or_default().push(frame.record);
            }
        }
    }
    let stores: Vec<(u8, Weak<dyn Durable>)> = lock(&shared.stores).clone();
    for (tag, store) in stores {
        let Some(store) = store.upgrade() else { continue };
        let records = records.get(&tag).map_or(&[][..], Vec::as_slice);
        store.restore(records).map_err(|e| Error::Internal(format!("data dir: roll-back of store {tag}: {e}")))?;
    }
    tracing::warn!("data dir: state rolled back to what the journal holds; refused writes are undone");
    Ok(())
}

fn start_compaction(shared: &Arc<Shared>, generation: u64) {
    let thread_shared = shared.clone();
    let mut compaction = lock(&shared.compaction);
    let spawned = std::thread::Builder::new().name("switchboard-compaction".into()).spawn(move || {
        let result = compact(&thread_shared, generation);
        if let Err(e) = &result {
            tracing::error!(error = %e, "data dir: compaction failed; the logs are kept");
        }
        let mut compaction = lock(&thread_shared.compaction);
        compaction.running = None;
        compaction.finished += 1;
        compaction.last_error = result.err().map(|e| e.to_string());
        thread_shared.compaction_done.notify_all();
    });
    match spawned {
        Ok(handle) => compaction.running = Some(handle.thread().id()),
        Err(e) => tracing::error!(error = %e, "data dir: cannot start a compaction"),
    }
}

/// Writes `snapshot-<generation>` from every store (after fsyncing the previous log, see
/// `Log::retired`) and deletes the files it covers.
fn compact(shared: &Shared, generation: u64) -> Result<()> {
    let stores: Vec<(u8, Weak<dyn Durable>)> = lock(&shared.stores).clone();
    let mut out = Vec::new();
    for (tag, store) in stores {
        // A store dropped meanwhile (the engine is stopping) would be missing from the snapshot
        // while the logs holding its records get deleted: keep the logs instead.
        let Some(store) = store.upgrade() else {
            return Err(Error::Unavailable("data dir: compaction skipped: the engine is stopping".into()));
        };
        let mut sink = Sink { shared, store: tag, cut: 0, out: std::mem::take(&mut out), body: Vec::new() };
        store.snapshot(&mut sink).map_err(|e| Error::Internal(format!("data dir: snapshot of store {tag}: {e}")))?;
        out = sink.out;
    }
    if let Err(e) = sync_retired(shared) {
        // What the previous log holds may not be on disk: refuse writes until a probe is fsynced.
        refuse(shared, e.to_string());
        return Err(Error::Unavailable(format!("data dir: cannot fsync the previous log: {e}")));
    }
    let dir = &shared.dir;
    let path = dir.join(file_name("snapshot", generation));
    let tmp = dir.join(format!("{}.tmp", file_name("snapshot", generation)));
    File::create(&tmp)
        .and_then(|mut f| f.write_all(&out).and_then(|()| f.sync_all()))
        .map_err(|e| io_error(&tmp, "cannot write", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io_error(&path, "cannot rename", e))?;
    sync_dir(dir).map_err(|e| io_error(dir, "cannot sync", e))?;
    let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, "cannot list", e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if let Some((_, g)) = name.to_str().and_then(parse_name)
            && g < generation
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    tracing::info!(snapshot = %path.display(), bytes = out.len(), "data dir: compacted");
    Ok(())
}

/// What `doctor` shows of a data dir, read without taking its lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDirStatus {
    /// Total bytes of the journal files.
    pub bytes: u64,
    /// When the newest snapshot was written (the last compaction), if any.
    pub last_compaction: Option<SystemTime>,
    /// Whether a process holds the dir's lock now.
    pub in_use: bool,
    /// Why a small test file (4 KiB, written, fsynced and removed) could not be written in the
    /// dir — disk full, read-only, no permission — if it could not; `None` if it could (or the dir
    /// does not exist yet).
    pub write_error: Option<String>,
}

/// Reads the status of the data dir at `dir` (which need not exist yet: then it is empty).
pub fn data_dir_status(dir: &Path) -> std::io::Result<DataDirStatus> {
    let mut status = DataDirStatus { bytes: 0, last_compaction: None, in_use: false, write_error: None };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(status),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let meta = entry.metadata()?;
        status.bytes += meta.len();
        let name = entry.file_name();
        if let Some(("snapshot", _)) = name.to_str().and_then(parse_name) {
            status.last_compaction = status.last_compaction.max(meta.modified().ok());
        }
    }
    if let Ok(lock_file) = OpenOptions::new().write(true).open(dir.join("LOCK")) {
        status.in_use = matches!(lock_file.try_lock(), Err(std::fs::TryLockError::WouldBlock));
    }
    // A `.tmp` name: start-up removes such files, so one left by a crash here does no harm.
    let test = dir.join(format!("doctor-{}.tmp", std::process::id()));
    let written = File::create(&test).and_then(|mut f| f.write_all(&[0; 4096]).and_then(|()| f.sync_data()));
    let _ = std::fs::remove_file(&test);
    status.write_error = written.err().map(|e| e.to_string());
    Ok(status)
}
