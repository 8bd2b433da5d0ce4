//! [`Keys`]: the only place key names are built. Every key starts with the configured prefix;
//! the part in `{...}` is the hash tag that decides the cluster slot, chosen so that all keys a
//! script touches share one slot.
//!
//! | key | type | tag |
//! |-----|------|-----|
//! | `<p>s:{<shard>}:<session id>` | hash: one session | user shard |
//! | `<p>s:{<id shard>}:a:<session id>` | string: the user shard of a caller-chosen session id | id hash |
//! | `<p>u:{<shard>}:<user id>` | ZSET: the user's session ids -> last active ms | user shard |
//! | `<p>sessions:active` | ZSET: session id -> counted-until ms (its own slot) | whole key |
//! | `<p>dl:{<jti>}` | string: denied-until ms | token id |
//! | `<p>rb:{<user id>}` | hash: revoked-before and kept-until ms | user id |
//! | `<p>rl:{<rate-limit key>}` | string, hash or ZSET: limiter state | rate-limit key |
//! | `<p>st:{<channel>}:m` | hash: a stream's epoch `e`, top offset `o`, max age ms `a` | channel |
//! | `<p>st:{<channel>}:x` | STREAM: publications, id `<offset>-0`, fields `t` (ms), `p` | channel |
//! | `<p>cur:{user:<user id>}` | hash: device id -> `<epoch> <offset>` cursor | the user's channel |
//! | `<p>ps:{<channel>}` | pub/sub channel (not a key) of a stream's live publications | channel |
//! | `<p>pr:{<user id>}` | hash: presence state `on`, `st`, `tx`, `inv`, `off`, `s:<device>`, `c:<conn>` | user id |
//! | `<p>pl:{<user id>}` | ZSET: live entries `c <device> <conn>` / `h <device>` -> expiry ms | user id |
//! | `<p>dv:{<user id>}` | hash: `j:<device>` registration JSON, `r:<device>` registered ms | user id |
//! | `<p>da:{<user id>}` | ZSET: device -> last active ms | user id |
//! | `<p>ct:{<user id>}` | SET: contacts | user id |
//! | `<p>{presence}:online` | ZSET (all scores 0, by id): users reported online | `presence` |
//! | `<p>{presence}:nodes` | hash: node id -> its report JSON (connections, time, expiry) | `presence` |
//! | `<p>{presence}:due` | ZSET: user -> when to check for an offline transition | `presence` |
//! | `<p>{presence}:claimed` | ZSET: user -> claim lease end, while a node settles it | `presence` |
//! | `<p>cv:{<conversation id>}` | hash: kind `k`, name `n`, avatar `a`, created `c`, updated `u` ms | conversation id |
//! | `<p>cm:{<conversation id>}` | SET: members | conversation id |
//! | `<p>ty:{<conversation id>}` | ZSET: user -> typing expiry ms | conversation id |
//! | `<p>tt:{<conversation id>}` | hash: user -> last start event ms (throttle) | conversation id |
//! | `<p>{typing}:due` / `:claimed` | ZSET: conversation -> next expiry / claim lease end | `typing` |
//! | `<p>mi:{<conversation id>}` | ZSET: cached message id -> created ms | conversation id |
//! | `<p>mh:{<conversation id>}` | hash: `cached`, `age` ms, per message `s:`/`c:`/`t:`/`e:`/`d:`/`x:`/`dc:`/`rc:<id>` | conversation id |
//! | `<p>mr:{<conversation id>}:<message id>` | hash: recipient -> status rank 1..3 | conversation id |
//! | `<p>ie:{<user id>}` | hash: conversation id -> list entry JSON (`i`, `p`, `t`, `u`, `pin`, `mute`, `arch`) | user id |
//! | `<p>it:{<user id>}` | hash: unread totals `u` (not muted), `m` (muted) | user id |
//! | `<p>ic:{<user id>}:<conversation id>` | SET: message ids counted as unread since the last read | user id |
//! | `<p>nt:{<user id>}` | ZSET: notification id -> sequence number (creation order) | user id |
//! | `<p>nh:{<user id>}` | hash: `q` last sequence, `a` max age ms, `j:<id>` JSON, `s:<id>` state | user id |
//! | `<p>c:{<namespace>}:e:<key>` | hash: a cached value `v`, fresh-until ms `f` (with a stale grace), `g:<tag>` tag version at set time | namespace |
//! | `<p>c:{<namespace>}:tv` | hash: tag -> current version | namespace |
//! | `<p>c:{<namespace>}:st` | hash: counters `hits`, `misses`, `sets`, `invalidations` | namespace |
//! | `<p>c:{<namespace>}:ix` | ZSET (all scores 0, by key): cached keys, for prefix scans | namespace |
//! | `<p>c:{<namespace>}:ex` | ZSET: cached key -> expiry ms, for the `keys` count | namespace |
//! | `<p>c:{<namespace>}:l:<key>` | hash: a key's lease: token `t`, expiry ms `x`, `g:<tag>` tag versions at grant | namespace |
//! | `<p>c:{<namespace>}:lx` | ZSET (all scores 0, by key): leased keys, for prefix invalidation | namespace |
//! | `<p>c:{<namespace>}:le` | ZSET: leased key -> lease expiry ms, to prune `lx` | namespace |
//! | `<p>c:namespaces` | SET: every cache namespace used (for stats of all namespaces) | itself |
//! | `<p>{jobs:<queue>}:j:<job id>` | hash: one job (fields in `job_common.lua`) | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:w` | ZSET: waiting job ids -> `(1000 - priority) * 2^41 + seq` | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:d` | ZSET: delayed job ids -> due ms | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:a` | ZSET: active job ids -> lease end ms | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:c` / `:x` | ZSET: completed / dead job ids -> finish ms * 1024 (+ tie-break) | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:u` | hash: unique key -> holding job id | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:m` | hash: `paused`, `seq`, totals `ct`/`ft`, minute counters `cm`/`cc`/`cp`, `fm`/`fc`/`fp` | `jobs:<queue>` |
//! | `<p>{jobs:<queue>}:g` | ZSET: ended id claims `<claim number>:<job id>` -> ms it ended (kept 10 minutes) | `jobs:<queue>` |
//! | `<p>{jobs}:ix` | hash: job id -> its claim `<claim number>:<queue>` | `jobs` |
//! | `<p>{jobs}:ixn` | string: the last claim number | `jobs` |
//! | `<p>{jobs}:queues` | SET: queue names | `jobs` |
//! | `<p>{jobs}:sd` | hash: schedule name -> definition JSON | `jobs` |
//! | `<p>{jobs}:sn` | ZSET: schedule name -> next tick ms | `jobs` |
//! | `<p>{jobs}:sl` | hash: schedule name -> last fired tick ms | `jobs` |
//!
//! `<shard>` is [`SessionId::shard`] (= [`user_shard`] of the owner) as four hex digits. Scripts
//! that walk a user's index get the session key prefix of the shard (from
//! [`Keys::session_prefix`]) and append session ids to it; a session script gets the index
//! prefix ([`Keys::user_index_prefix`]) and appends the user id stored in the session. Both stay
//! in the slot of the declared keys. Ids cannot contain braces (the id rule), so tags stay intact.
//!
//! A cache namespace is one slot: its tag versions must be read in the same script as its
//! values, so on Redis Cluster one namespace lives on one shard (spread load with several
//! namespaces). Cache keys may contain braces; only the first `{...}`, the namespace, counts.
//!
//! Job keys have two layouts. On a Cluster each queue is one slot, `{jobs:<queue>}` (as BullMQ
//! does with a hash-tagged queue prefix), as the table shows, so queues spread over the shards;
//! every operation on one queue or on one job is one script in that slot. On one server
//! (standalone, Sentinel), where slots mean nothing, every job key is in `{jobs}`: a queue's
//! parts are `<p>{jobs}:q:<queue>:<part>` and a job's hash `<p>{jobs}:j:<job id>`, found by its
//! id alone, so no id index is kept (ids are global by their key) and an enqueue or an
//! operation by id is one script. The queue scripts get [`Keys::job_queue_prefix`] (and on one
//! server the prefix of job hashes) and build `j:<id>` and the one-letter parts after it
//! (`job_common.lua`), so keys of different queues or ids never collide. Queue names and
//! schedules stay in `{jobs}` on every topology.
//!
//! Job ids on a Cluster: ids are global (`/jobs/{id}` names no queue) and may be chosen by the caller, so
//! the index `{jobs}:ix` maps each id to its queue through a claim `<number>:<queue>` (numbers
//! from `{jobs}:ixn`, never reused). An enqueue first claims its id (a claimed id keeps its
//! claim), then creates the job in the claimed queue under the claim's number (`n` in the job's
//! hash). A claim ends, in the queue's slot and atomically with what ends it, when its job is
//! deleted (removed, cancelled, trimmed by retention), when an enqueue stored nothing under it
//! (duplicate unique key), or when an enqueue for another queue still finds no job under it
//! after short pauses (about 150 ms: a claim whose enqueue crashed; one being created right now
//! shows its job meanwhile): the number is written to the queue's `g` set, remembered 10
//! minutes (far longer than an enqueue takes). A queue never creates a job under an ended
//! claim; the enqueue holding it claims again. Ended claims are then dropped from the index (only while they are still the
//! id's claim); a crash before that leaves an index entry whose claim has ended, which the next
//! enqueue or lookup of the id treats as absent. So a job exists only in the queue its id's
//! current claim names, and at most once.
//!
//! [`slot`] computes a key's Cluster slot, for operations that must know whether keys share one.

use switchboard_core::ids::user_shard;
use switchboard_core::{ChannelName, ConversationId, JobId, RateLimitKey, SessionId, TokenId, UserId};

/// The Redis Cluster slot of `key`: CRC16 of its hash tag (the first `{...}` with something in
/// it) or of the whole key, modulo 16384.
pub(crate) fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let tagged = key.find('{').and_then(|open| {
        let close = key[open + 1..].find('}')? + open + 1;
        (close > open + 1).then(|| &bytes[open + 1..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(bytes)) % 16384
}

/// Builds every key name from the configured prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (validated by [`crate::RedisConfig::validate`]: no braces).
    pub(crate) fn new(prefix: &str) -> Self {
        Keys { prefix: prefix.to_owned() }
    }

    /// `<p>s:{<shard>}:`: a session id appended gives that session's key.
    pub(crate) fn session_prefix(&self, shard: u16) -> String {
        format!("{}s:{{{shard:04x}}}:", self.prefix)
    }

    /// The hash holding one session.
    pub(crate) fn session(&self, id: &SessionId) -> String {
        let mut key = self.session_prefix(id.shard());
        key.push_str(id.as_str());
        key
    }

    /// The alias of a caller-chosen session id: its user's shard, in the id's own slot (the
    /// session namespace extended with `a:`; generated ids never contain `:`).
    pub(crate) fn session_alias(&self, id: &SessionId) -> String {
        format!("{}a:{}", self.session_prefix(id.shard()), id.as_str())
    }

    /// `<p>u:{<shard>}:`: a user id appended gives that user's session index.
    pub(crate) fn user_index_prefix(&self, shard: u16) -> String {
        format!("{}u:{{{shard:04x}}}:", self.prefix)
    }

    /// The user's session index (ZSET session id -> last active ms), in the slot of the user's
    /// sessions.
    pub(crate) fn user_index(&self, user: &UserId) -> String {
        let mut key = self.user_index_prefix(user_shard(user));
        key.push_str(user.as_str());
        key
    }

    /// The set of sessions counted by `count_active` (session id -> counted-until ms).
    pub(crate) fn active_sessions(&self) -> String {
        format!("{}sessions:active", self.prefix)
    }

    /// A denied token id (denied-until ms).
    pub(crate) fn denied(&self, jti: &TokenId) -> String {
        format!("{}dl:{{{jti}}}", self.prefix)
    }

    /// A user's revoke-before time.
    pub(crate) fn revoked(&self, user: &UserId) -> String {
        format!("{}rb:{{{user}}}", self.prefix)
    }

    /// The limiter state of a rate-limit key.
    pub(crate) fn rate_limit(&self, key: &RateLimitKey) -> String {
        format!("{}rl:{{{key}}}", self.prefix)
    }

    /// A stream's meta hash.
    pub(crate) fn stream_meta(&self, channel: &ChannelName) -> String {
        format!("{}st:{{{channel}}}:m", self.prefix)
    }

    /// A stream's publications.
    pub(crate) fn stream_entries(&self, channel: &ChannelName) -> String {
        format!("{}st:{{{channel}}}:x", self.prefix)
    }

    /// The device cursors of a user, in the slot of the user's personal channel so the ack
    /// script can check the stream's epoch.
    pub(crate) fn cursors(&self, user: &UserId) -> String {
        format!("{}cur:{{{}}}", self.prefix, ChannelName::user(user))
    }

    /// The pub/sub channel carrying a stream's live publications; tagged like the stream so a
    /// sharded `SPUBLISH` from the publish script stays in its slot on Cluster.
    pub(crate) fn stream_pubsub(&self, channel: &ChannelName) -> String {
        format!("{}ps:{{{channel}}}", self.prefix)
    }

    /// A user's presence state hash.
    pub(crate) fn presence_state(&self, user: &UserId) -> String {
        format!("{}pr:{{{user}}}", self.prefix)
    }

    /// A user's live entries (connections and heartbeats -> expiry ms).
    pub(crate) fn presence_live(&self, user: &UserId) -> String {
        format!("{}pl:{{{user}}}", self.prefix)
    }

    /// A user's device registrations.
    pub(crate) fn devices(&self, user: &UserId) -> String {
        format!("{}dv:{{{user}}}", self.prefix)
    }

    /// A user's device activity index (device -> last active ms).
    pub(crate) fn device_activity(&self, user: &UserId) -> String {
        format!("{}da:{{{user}}}", self.prefix)
    }

    /// A user's contacts.
    pub(crate) fn contacts(&self, user: &UserId) -> String {
        format!("{}ct:{{{user}}}", self.prefix)
    }

    /// Users reported online (lexicographic paging).
    pub(crate) fn presence_online(&self) -> String {
        format!("{}{{presence}}:online", self.prefix)
    }

    /// Node reports by node id.
    pub(crate) fn presence_nodes(&self) -> String {
        format!("{}{{presence}}:nodes", self.prefix)
    }

    /// Users whose offline check is due, by time.
    pub(crate) fn presence_due(&self) -> String {
        format!("{}{{presence}}:due", self.prefix)
    }

    /// Users being settled by some node, by claim lease end.
    pub(crate) fn presence_claimed(&self) -> String {
        format!("{}{{presence}}:claimed", self.prefix)
    }

    /// A conversation's metadata hash (kind, name, avatar, times).
    pub(crate) fn conversation(&self, conversation: &ConversationId) -> String {
        format!("{}cv:{{{conversation}}}", self.prefix)
    }

    /// A conversation's member SET, in the slot of its metadata.
    pub(crate) fn conversation_members(&self, conversation: &ConversationId) -> String {
        format!("{}cm:{{{conversation}}}", self.prefix)
    }

    /// A conversation's typing entries.
    pub(crate) fn typing(&self, conversation: &ConversationId) -> String {
        format!("{}ty:{{{conversation}}}", self.prefix)
    }

    /// A conversation's typing throttle times.
    pub(crate) fn typing_throttle(&self, conversation: &ConversationId) -> String {
        format!("{}tt:{{{conversation}}}", self.prefix)
    }

    /// Conversations whose earliest typing entry is due to expire, by time.
    pub(crate) fn typing_due(&self) -> String {
        format!("{}{{typing}}:due", self.prefix)
    }

    /// Conversations being settled by some node, by claim lease end.
    pub(crate) fn typing_claimed(&self) -> String {
        format!("{}{{typing}}:claimed", self.prefix)
    }

    /// A conversation's cached message ids by creation time.
    pub(crate) fn message_index(&self, conversation: &ConversationId) -> String {
        format!("{}mi:{{{conversation}}}", self.prefix)
    }

    /// A conversation's cached messages and cache state, in the slot of the index.
    pub(crate) fn messages(&self, conversation: &ConversationId) -> String {
        format!("{}mh:{{{conversation}}}", self.prefix)
    }

    /// `<p>mr:{<conversation>}:`: a message id appended gives that message's receipts hash
    /// (scripts append ids; the tag keeps them in the conversation's slot).
    pub(crate) fn message_receipts_prefix(&self, conversation: &ConversationId) -> String {
        format!("{}mr:{{{conversation}}}:", self.prefix)
    }

    /// A user's conversation list entries.
    pub(crate) fn inbox(&self, user: &UserId) -> String {
        format!("{}ie:{{{user}}}", self.prefix)
    }

    /// A user's unread totals, in the slot of their list.
    pub(crate) fn inbox_totals(&self, user: &UserId) -> String {
        format!("{}it:{{{user}}}", self.prefix)
    }

    /// The message ids counted in a user's unread count of one conversation.
    pub(crate) fn inbox_counted(&self, user: &UserId, conversation: &ConversationId) -> String {
        format!("{}ic:{{{user}}}:{conversation}", self.prefix)
    }

    /// A user's notification ids in creation order.
    pub(crate) fn notification_index(&self, user: &UserId) -> String {
        format!("{}nt:{{{user}}}", self.prefix)
    }

    /// A user's notifications and their state, in the slot of the index.
    pub(crate) fn notifications(&self, user: &UserId) -> String {
        format!("{}nh:{{{user}}}", self.prefix)
    }

    /// `<p>c:{<namespace>}:e:`: a cache key appended gives that value's key.
    pub(crate) fn cache_entry_prefix(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:e:", self.prefix)
    }

    /// One cached value, in its namespace's slot.
    pub(crate) fn cache_entry(&self, namespace: &str, key: &str) -> String {
        let mut k = self.cache_entry_prefix(namespace);
        k.push_str(key);
        k
    }

    /// A namespace's tag versions.
    pub(crate) fn cache_tags(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:tv", self.prefix)
    }

    /// A namespace's counters.
    pub(crate) fn cache_stats(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:st", self.prefix)
    }

    /// A namespace's keys by name (prefix scans).
    pub(crate) fn cache_index(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:ix", self.prefix)
    }

    /// A namespace's keys by expiry.
    pub(crate) fn cache_expiry(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:ex", self.prefix)
    }

    /// `<p>{jobs}:`: the global job keys (id index, queue names, schedules).
    pub(crate) fn jobs_prefix(&self) -> String {
        format!("{}{{jobs}}:", self.prefix)
    }

    /// The queue scripts build every key of the queue's own after it: `<p>{jobs:<queue>}:` on
    /// a Cluster (`sharded`), `<p>{jobs}:q:<queue>:` on one server.
    pub(crate) fn job_queue_prefix(&self, queue: &str, sharded: bool) -> String {
        if sharded { format!("{}{{jobs:{queue}}}:", self.prefix) } else { format!("{}q:{queue}:", self.jobs_prefix()) }
    }

    /// One job's hash (built the same way by `job_key` in `job_common.lua`): in its queue's slot
    /// on a Cluster (`sharded`), `<p>{jobs}:j:<id>` on one server.
    pub(crate) fn job(&self, queue: &str, id: &JobId, sharded: bool) -> String {
        if sharded {
            format!("{}j:{id}", self.job_queue_prefix(queue, true))
        } else {
            format!("{}j:{id}", self.jobs_prefix())
        }
    }

    /// A queue's meta hash (`paused`, `seq`, counters), as `qkey(queue, 'm')` in Lua.
    pub(crate) fn job_queue_meta(&self, queue: &str, sharded: bool) -> String {
        format!("{}m", self.job_queue_prefix(queue, sharded))
    }

    /// The set of queue names.
    pub(crate) fn job_queues(&self) -> String {
        format!("{}queues", self.jobs_prefix())
    }

    /// The id index: job id -> claim `<number>:<queue>`.
    pub(crate) fn job_index(&self) -> String {
        format!("{}ix", self.jobs_prefix())
    }

    /// The last claim number.
    pub(crate) fn job_claims(&self) -> String {
        format!("{}ixn", self.jobs_prefix())
    }

    /// Schedule definitions (name -> JSON).
    pub(crate) fn schedules(&self) -> String {
        format!("{}sd", self.jobs_prefix())
    }

    /// Schedules by next tick.
    pub(crate) fn schedule_next(&self) -> String {
        format!("{}sn", self.jobs_prefix())
    }

    /// The last tick each schedule fired.
    pub(crate) fn schedule_last(&self) -> String {
        format!("{}sl", self.jobs_prefix())
    }

    /// `<p>c:{<namespace>}:l:`: a cache key appended gives that key's lease.
    pub(crate) fn cache_lease_prefix(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:l:", self.prefix)
    }

    /// One key's lease, in its namespace's slot.
    pub(crate) fn cache_lease(&self, namespace: &str, key: &str) -> String {
        let mut k = self.cache_lease_prefix(namespace);
        k.push_str(key);
        k
    }

    /// A namespace's leased keys by name (prefix invalidation).
    pub(crate) fn cache_lease_index(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:lx", self.prefix)
    }

    /// A namespace's leased keys by lease expiry.
    pub(crate) fn cache_lease_expiry(&self, namespace: &str) -> String {
        format!("{}c:{{{namespace}}}:le", self.prefix)
    }

    /// Every cache namespace used (a key of its own slot: only plain commands touch it).
    pub(crate) fn cache_namespaces(&self) -> String {
        format!("{}c:namespaces", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash tag Redis Cluster would use for `key`.
    fn tag(key: &str) -> &str {
        match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &key[open + 1..open + 1 + len],
                _ => key,
            },
            None => key,
        }
    }

    #[test]
    fn a_users_sessions_and_index_share_a_slot() {
        let keys = Keys::new("sb:");
        let user = UserId::new("alice").unwrap();
        let id = SessionId::generate(&user).unwrap();
        let session = keys.session(&id);
        let index = keys.user_index(&user);
        assert_eq!(session, format!("sb:s:{{{:04x}}}:{}", user_shard(&user), id.as_str()));
        assert_eq!(tag(&session), tag(&index));
        assert_eq!(format!("{}{}", keys.session_prefix(id.shard()), id.as_str()), session);
        assert_eq!(format!("{}{}", keys.user_index_prefix(id.shard()), user.as_str()), index);
    }

    #[test]
    fn a_cache_namespace_is_one_slot_even_for_keys_with_braces() {
        let keys = Keys::new("sb:");
        let entry = keys.cache_entry("user_profile", "{odd}:key");
        assert_eq!(entry, "sb:c:{user_profile}:e:{odd}:key");
        assert_eq!(format!("{}{{odd}}:key", keys.cache_entry_prefix("user_profile")), entry);
        for key in [
            keys.cache_tags("user_profile"),
            keys.cache_stats("user_profile"),
            keys.cache_index("user_profile"),
            keys.cache_expiry("user_profile"),
            keys.cache_lease("user_profile", "{odd}:key"),
            keys.cache_lease_index("user_profile"),
            keys.cache_lease_expiry("user_profile"),
        ] {
            assert_eq!(tag(&key), tag(&entry));
        }
        assert_eq!(tag(&entry), "user_profile");
    }

    #[test]
    fn other_keys_are_tagged_by_their_id() {
        let keys = Keys::new("app1:");
        assert_eq!(keys.denied(&TokenId::new("j-1").unwrap()), "app1:dl:{j-1}");
        assert_eq!(keys.revoked(&UserId::new("bob").unwrap()), "app1:rb:{bob}");
        assert_eq!(keys.rate_limit(&RateLimitKey::new("ip:10.0.0.1/send").unwrap()), "app1:rl:{ip:10.0.0.1/send}");
        assert_eq!(keys.active_sessions(), "app1:sessions:active");
        assert_eq!(tag(&keys.rate_limit(&RateLimitKey::new("user:1").unwrap())), "user:1");
    }

    #[test]
    fn message_keys_share_the_conversations_slot_and_inbox_keys_the_users() {
        let keys = Keys::new("sb:");
        let c = ConversationId::new("c1").unwrap();
        let u = UserId::new("bob").unwrap();
        let receipts = format!("{}m1", keys.message_receipts_prefix(&c));
        for key in [keys.messages(&c), receipts] {
            assert_eq!(tag(&key), tag(&keys.message_index(&c)));
        }
        for key in [keys.inbox_totals(&u), keys.inbox_counted(&u, &c)] {
            assert_eq!(tag(&key), tag(&keys.inbox(&u)));
        }
        assert_eq!(keys.inbox_counted(&u, &c), "sb:ic:{bob}:c1");
    }

    #[test]
    fn each_queue_is_its_own_slot_and_global_job_keys_share_jobs() {
        let keys = Keys::new("sb:");
        let j1 = JobId::new("j-1").unwrap();
        let job = keys.job("mail", &j1, true);
        assert_eq!(job, "sb:{jobs:mail}:j:j-1");
        assert_eq!(format!("{}j:j-1", keys.job_queue_prefix("mail", true)), job);
        assert_eq!(keys.job_queue_meta("mail", true), "sb:{jobs:mail}:m");
        assert_eq!(tag(&job), tag(&keys.job_queue_meta("mail", true)));
        assert_ne!(slot(&keys.job_queue_meta("mail", true)), slot(&keys.job_queue_meta("sms", true)));
        // One server: every job key under `{jobs}`, job hashes by id alone.
        assert_eq!(keys.job("mail", &j1, false), "sb:{jobs}:j:j-1");
        assert_eq!(keys.job_queue_meta("mail", false), "sb:{jobs}:q:mail:m");
        for key in [
            keys.job_queues(),
            keys.job_index(),
            keys.job_claims(),
            keys.schedules(),
            keys.schedule_next(),
            keys.schedule_last(),
        ] {
            assert_eq!(tag(&key), "jobs");
        }
    }

    #[test]
    fn a_streams_keys_cursors_and_pubsub_channel_share_a_slot() {
        let keys = Keys::new("sb:");
        let user = UserId::new("alice").unwrap();
        let channel = ChannelName::user(&user);
        assert_eq!(keys.stream_meta(&channel), "sb:st:{user:alice}:m");
        assert_eq!(keys.stream_entries(&channel), "sb:st:{user:alice}:x");
        assert_eq!(keys.cursors(&user), "sb:cur:{user:alice}");
        assert_eq!(keys.stream_pubsub(&channel), "sb:ps:{user:alice}");
        for key in [keys.stream_entries(&channel), keys.cursors(&user), keys.stream_pubsub(&channel)] {
            assert_eq!(tag(&key), tag(&keys.stream_meta(&channel)));
        }
    }

    #[test]
    fn slots_are_those_redis_computes() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("{user1000}.following"), slot("user1000"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"), "an empty first tag means the whole key");
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }
}
