//! The input bounds (docs/API.md lists them), in one place so every layer enforces the same
//! numbers.

/// Longest identifier (user, device, conversation, ...), in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// Longest rate-limit key, in bytes.
pub const MAX_RATE_LIMIT_KEY_BYTES: usize = 256;
/// Largest free-form `data` object, serialized, in bytes.
pub const MAX_DATA_BYTES: usize = 4 * 1024;
/// Longest short text field (device os, browser, location, status text...), in bytes.
pub const MAX_SHORT_TEXT_BYTES: usize = 256;
/// Longest user agent kept with a session, in bytes.
pub const MAX_USER_AGENT_BYTES: usize = 512;
/// Largest publication `data` (the event), serialized, in bytes; fits one gateway frame.
pub const MAX_PUBLICATION_BYTES: usize = 32 * 1024;
/// Largest batch (multi-key checks, bulk queries).
pub const MAX_BATCH: usize = 1000;
/// Default largest JSON body, in bytes (configurable on the server).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest cache namespace name.
pub const MAX_CACHE_NAMESPACE_BYTES: usize = 64;
/// Longest cache key.
pub const MAX_CACHE_KEY_BYTES: usize = 512;
/// Largest cached value (its JSON encoding).
pub const MAX_CACHE_VALUE_BYTES: usize = 1024 * 1024;
/// Most tags on one cached value.
pub const MAX_CACHE_TAGS: usize = 32;
/// Longest cache TTL (30 d).
pub const MAX_CACHE_TTL_SECONDS: u64 = 30 * 24 * 3600;
/// Longest cache lease (5 min): a computation that takes longer should not hold off others.
pub const MAX_CACHE_LEASE_MS: u64 = 5 * 60 * 1000;
/// Longest a cache lease call waits for another caller's value (30 s).
pub const MAX_CACHE_LEASE_WAIT_MS: u64 = 30 * 1000;
/// Largest job payload (its JSON encoding); results and progress share it.
pub const MAX_JOB_PAYLOAD_BYTES: usize = 512 * 1024;
/// Longest a contact list lives without being set again (365 d).
pub const MAX_CONTACTS_TTL_SECONDS: u64 = 365 * 24 * 3600;
/// Largest stream offset a caller may name: the largest integer every JSON client reads exactly
/// (2^53 − 1). Streams never get near it.
pub const MAX_STREAM_OFFSET: u64 = (1 << 53) - 1;
/// Deepest a job listing may page (`offset`): past it a listing is not a page any more.
pub const MAX_LIST_OFFSET: u64 = 1_000_000_000;
