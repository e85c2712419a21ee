//! Logging a refusal once per sender and reason, so a stranger retrying, a scanner or a
//! misbehaving worker does not flood the log: the first one at warn level, the rest at
//! debug level.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::Mutex;

/// How many (sender, reason) pairs are remembered before the memory starts again (each is
/// then logged once more).
pub const REMEMBERED: usize = 4096;

/// The (sender, reason) pairs already logged.
#[derive(Debug)]
pub struct OnceLog<K> {
    seen: Mutex<HashSet<K>>,
}

impl<K> Default for OnceLog<K> {
    fn default() -> Self {
        OnceLog {
            seen: Mutex::new(HashSet::new()),
        }
    }
}

impl<K: Hash + Eq> OnceLog<K> {
    /// Whether `key` is seen for the first time (then log it at warn level).
    pub fn first(&self, key: K) -> bool {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.len() >= REMEMBERED {
            seen.clear();
        }
        seen.insert(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pair_is_first_once_and_memory_is_bounded() {
        let log = OnceLog::default();
        assert!(log.first(("a", 1)));
        assert!(!log.first(("a", 1)));
        assert!(log.first(("a", 2)));
        for idx in 0..REMEMBERED * 2 {
            log.first(("many", idx));
        }
        assert!(log.seen.lock().unwrap().len() <= REMEMBERED);
    }
}
