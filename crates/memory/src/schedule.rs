//! [`Schedule`]: keys ordered by when they are next due, so a sweep visits only what is due
//! instead of scanning every entry.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use switchboard_core::Timestamp;

/// Each key at most once, with the time it is next due.
pub(crate) struct Schedule<K> {
    by_time: BTreeSet<(Timestamp, K)>,
    at: HashMap<K, Timestamp>,
}

impl<K> Default for Schedule<K> {
    fn default() -> Self {
        Schedule { by_time: BTreeSet::new(), at: HashMap::new() }
    }
}

impl<K: Clone + Ord + Hash> Schedule<K> {
    /// Makes `key` due at `when`, replacing any earlier schedule.
    pub(crate) fn set(&mut self, key: &K, when: Timestamp) {
        self.remove(key);
        self.by_time.insert((when, key.clone()));
        self.at.insert(key.clone(), when);
    }

    /// Makes `key` due at `when` unless it is already due earlier.
    pub(crate) fn lower(&mut self, key: &K, when: Timestamp) {
        match self.at.get(key) {
            Some(current) if *current <= when => {}
            _ => self.set(key, when),
        }
    }

    /// Unschedules `key`.
    pub(crate) fn remove(&mut self, key: &K) {
        if let Some(when) = self.at.remove(key) {
            self.by_time.remove(&(when, key.clone()));
        }
    }

    /// Takes (unschedules) up to `limit` keys due at or before `now`, earliest first.
    pub(crate) fn take_due(&mut self, now: Timestamp, limit: usize) -> Vec<K> {
        let due: Vec<K> =
            self.by_time.iter().take_while(|(when, _)| *when <= now).take(limit).map(|(_, k)| k.clone()).collect();
        for key in &due {
            self.remove(key);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_what_is_due_earliest_first() {
        let mut s = Schedule::default();
        s.set(&"a", Timestamp::from_millis(30));
        s.set(&"b", Timestamp::from_millis(10));
        s.lower(&"a", Timestamp::from_millis(20));
        s.lower(&"b", Timestamp::from_millis(50));
        s.set(&"c", Timestamp::from_millis(100));
        assert_eq!(s.take_due(Timestamp::from_millis(25), 10), vec!["b", "a"]);
        assert!(s.take_due(Timestamp::from_millis(25), 10).is_empty());
        s.remove(&"c");
        assert!(s.take_due(Timestamp::from_millis(1000), 10).is_empty());
    }
}
