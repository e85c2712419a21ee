//! Log tails the mirror pages showed, kept a few seconds: a page that refreshes itself
//! every 10 s in many browsers asks its worker once per [`FRESH`], not once per reader.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tunasync_shared::names::{MirrorName, WorkerId};
use uuid::Uuid;

/// How long a tail is shown again without asking the worker.
pub const FRESH: Duration = Duration::from_secs(5);
/// The most tails kept (the oldest goes first).
const MAX_TAILS: usize = 256;

type Key = (WorkerId, MirrorName, Option<Uuid>);

#[derive(Default)]
pub struct LogTails {
    kept: Mutex<HashMap<Key, (Instant, String)>>,
}

impl LogTails {
    fn kept(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Instant, String)>> {
        self.kept
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The tail read less than [`FRESH`] ago, if there is one.
    pub fn fresh(&self, key: &Key, now: Instant) -> Option<String> {
        self.kept()
            .get(key)
            .filter(|(read, _)| now.duration_since(*read) < FRESH)
            .map(|(_, text)| text.clone())
    }

    pub fn keep(&self, key: Key, text: String, now: Instant) {
        let mut kept = self.kept();
        kept.retain(|_, (read, _)| now.duration_since(*read) < FRESH);
        if kept.len() >= MAX_TAILS
            && let Some(oldest) = kept
                .iter()
                .min_by_key(|(_, (read, _))| *read)
                .map(|(key, _)| key.clone())
        {
            kept.remove(&oldest);
        }
        kept.insert(key, (now, text));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_fresh_for_a_few_seconds_and_the_store_stays_bounded() {
        let tails = LogTails::default();
        let key = |idx: usize| {
            (
                WorkerId::new("w1").unwrap(),
                MirrorName::new(format!("m{idx}")).unwrap(),
                None,
            )
        };
        let start = Instant::now();
        tails.keep(key(0), "tick\n".into(), start);
        assert_eq!(
            tails
                .fresh(&key(0), start + Duration::from_secs(1))
                .as_deref(),
            Some("tick\n")
        );
        assert_eq!(tails.fresh(&key(0), start + FRESH), None);
        for idx in 0..MAX_TAILS + 10 {
            tails.keep(
                key(idx),
                String::new(),
                start + Duration::from_millis(idx as u64),
            );
        }
        assert_eq!(tails.kept().len(), MAX_TAILS);
        assert!(
            tails
                .fresh(&key(0), start + Duration::from_secs(1))
                .is_none(),
            "the oldest went"
        );
    }
}
