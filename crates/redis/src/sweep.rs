//! Claim and reschedule of the due sets that presence and typing sweeps walk: a sweep claims
//! what is due (a lease, in the due set's slot), settles each claimed member with a script in
//! the member's own slot, then reschedules or drops it. Three round trips per sweep, however
//! many members, and never a scan of members that are not due.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use switchboard_core::Result;

use crate::connection::{Conn, lua};

static CLAIM: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/sweep_claim.lua")));
static RESCHEDULE: LazyLock<Script> = LazyLock::new(|| lua(include_str!("../lua/sweep_reschedule.lua")));

/// How long a claim holds: a node that stops mid-sweep delays the members it claimed by this
/// much, no more.
const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// The keys of one due set (all in one slot).
pub(crate) struct DueSet {
    /// Member -> when to check it (ms).
    pub(crate) due: String,
    /// Member -> claim lease end (ms).
    pub(crate) claimed: String,
    /// An index members leave when done (the online set), if any.
    pub(crate) index: Option<String>,
}

/// What to do with a claimed member after settling it.
pub(crate) enum Next {
    /// Check again at this time (ms).
    At(i64),
    /// Nothing more to check.
    Done,
}

impl DueSet {
    /// Claims up to `limit` members that are due.
    pub(crate) async fn claim(&self, conn: &Conn, op: &'static str, limit: usize) -> Result<Vec<String>> {
        let mut invocation = CLAIM.key(&self.due);
        invocation.key(&self.claimed).arg(CLAIM_LEASE.as_millis() as u64).arg(limit);
        conn.script(op, &invocation).await
    }

    /// Ends the claims of `settled`.
    pub(crate) async fn reschedule(&self, conn: &Conn, op: &'static str, settled: &[(String, Next)]) -> Result<()> {
        if settled.is_empty() {
            return Ok(());
        }
        let mut invocation = RESCHEDULE.key(&self.due);
        invocation.key(&self.claimed);
        if let Some(index) = &self.index {
            invocation.key(index);
        }
        for (member, next) in settled {
            invocation.arg(member).arg(match next {
                Next::At(at) => *at,
                Next::Done => -1,
            });
        }
        let _handled: i64 = conn.script(op, &invocation).await?;
        Ok(())
    }
}
