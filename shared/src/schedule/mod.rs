//! When a job runs next: the rules that a worker applies to its own mirrors and that the
//! manager applies to pooled ones. One implementation serves both sides.
//!
//! - Interval (tunasync's rule): the next run is `interval` minutes after the last one
//!   ended, however long it took.
//! - Cron: the next occurrence of a 5-field expression (local time) after the last run
//!   ended.
//! - Jitter: up to this much random delay is added to each scheduled run, so that many
//!   mirrors on one schedule do not all start in the same second.
//! - Retries: the attempts of one run are spaced by [`retry_delay`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Serialize, Serializer};

/// A validated 5-field cron expression (minute hour day month weekday).
#[derive(Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a 5-field cron expression (minute hour day month weekday)")]
pub struct CronError(pub String);

impl CronExpr {
    pub fn parse(text: &str) -> Result<CronExpr, CronError> {
        let n_fields = text.split_whitespace().count();
        if n_fields != 5 || croner::Cron::from_str(text).is_err() {
            return Err(CronError(text.to_owned()));
        }
        Ok(CronExpr {
            text: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first occurrence after `after`, in the host's local time.
    fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let cron = croner::Cron::from_str(&self.text).ok()?;
        cron.find_next_occurrence(&after.with_timezone(&chrono::Local), false)
            .ok()
            .map(|next| next.with_timezone(&Utc))
    }
}

impl fmt::Debug for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for CronExpr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// What decides the next run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// Minutes from the end of a run to the next; 0 runs again at once.
    Interval {
        minutes: u64,
    },
    Cron(CronExpr),
}

/// A job's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rules {
    pub timing: Timing,
    /// Up to this much random delay is added to each scheduled run.
    #[serde(serialize_with = "seconds")]
    pub jitter: Duration,
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}

impl Rules {
    pub fn interval(minutes: u64) -> Rules {
        Rules {
            timing: Timing::Interval { minutes },
            jitter: Duration::ZERO,
        }
    }

    /// Minutes between runs when the schedule is an interval (0 for cron schedules).
    pub fn interval_minutes(&self) -> u64 {
        match &self.timing {
            Timing::Interval { minutes } => *minutes,
            Timing::Cron(_) => 0,
        }
    }

    pub fn cron(&self) -> Option<&CronExpr> {
        match &self.timing {
            Timing::Cron(cron) => Some(cron),
            Timing::Interval { .. } => None,
        }
    }

    /// The next run after one that ended at `ended`, before jitter.
    pub fn next_after(&self, ended: DateTime<Utc>) -> DateTime<Utc> {
        let interval = |minutes: u64| {
            ended + chrono::Duration::minutes(i64::try_from(minutes).unwrap_or(i64::MAX / 60_000))
        };
        match &self.timing {
            Timing::Interval { minutes } => interval(*minutes),
            // An expression that never occurs again (none passes validation) falls back to
            // a day.
            Timing::Cron(cron) => cron.next_after(ended).unwrap_or_else(|| interval(24 * 60)),
        }
    }

    /// `at` plus a random part of the jitter.
    pub fn jittered(&self, at: DateTime<Utc>, rng: &mut impl Rng) -> DateTime<Utc> {
        let jitter = self.jitter.as_secs();
        if jitter == 0 {
            return at;
        }
        let extra = rng.random_range(0..=jitter);
        at + chrono::Duration::seconds(i64::try_from(extra).unwrap_or(0))
    }

    /// When a job runs that is known to have last succeeded at `last_success` (or never):
    /// its next run after that success, but not before `now`.
    pub fn resume(&self, last_success: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        match last_success {
            None => now,
            Some(success) => self.next_after(success).max(now),
        }
    }
}

/// The wait before attempt `attempt + 1` of a run (tunasync retries at once; we back off a
/// little): 1 s, 2 s, 4 s, 8 s, then 16 s.
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(5).saturating_sub(1)).min(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn an_interval_counts_from_the_end_of_the_last_run() {
        let rules = Rules::interval(120);
        assert_eq!(
            rules.next_after(at("2026-11-26T10:07:00Z")),
            at("2026-11-26T12:07:00Z")
        );
        assert_eq!(
            Rules::interval(0).next_after(at("2026-11-26T10:07:00Z")),
            at("2026-11-26T10:07:00Z")
        );
    }

    #[test]
    fn cron_picks_the_next_occurrence() {
        let rules = Rules {
            timing: Timing::Cron(CronExpr::parse("*/15 * * * *").unwrap()),
            jitter: Duration::ZERO,
        };
        let ended = at("2026-11-26T10:07:00Z");
        let next = rules.next_after(ended);
        assert!(next > ended && next <= ended + chrono::Duration::minutes(15));
        assert_eq!(next.timestamp() % (15 * 60), 0, "on a quarter hour");
        for bad in ["* * * *", "*/15 * * * * *", "61 * * * *", "not cron"] {
            assert_eq!(CronExpr::parse(bad), Err(CronError(bad.to_owned())));
        }
    }

    #[test]
    fn jitter_stays_within_its_bound_and_resume_never_looks_back() {
        let rules = Rules {
            timing: Timing::Interval { minutes: 60 },
            jitter: Duration::from_secs(30),
        };
        let base = at("2026-11-26T10:00:00Z");
        let mut rng = rand::rng();
        for _ in 0..200 {
            let jittered = rules.jittered(base, &mut rng);
            assert!(jittered >= base && jittered <= base + chrono::Duration::seconds(30));
        }
        let now = at("2026-11-26T12:00:00Z");
        assert_eq!(rules.resume(None, now), now);
        assert_eq!(rules.resume(Some(at("2026-11-26T09:00:00Z")), now), now);
        assert_eq!(
            rules.resume(Some(at("2026-11-26T11:30:00Z")), now),
            at("2026-11-26T12:30:00Z")
        );
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 16, 16]);
    }
}
