//! When a job runs next: the rules that a worker applies to its own mirrors and that the
//! manager applies to pooled ones. One implementation serves both sides.
//!
//! - Interval (tunasync's rule): the next run is `interval` minutes after the last one
//!   ended, however long it took. Fixed rate: at anchor + k × interval, the first such slot
//!   after the last run ended (a run that overlaps a slot skips it; runs never stack).
//! - Cron: the next occurrence of a 5-field expression after the last run ended.
//! - Cron times, the fixed-rate anchor and blackout windows are read in the job's
//!   [`Zone`] (the host's local zone unless named).
//! - Blackouts ([`Blackout`]): a run that comes due inside a window waits for its end.
//! - Re-run after failure: a run that failed all its attempts is tried again after a
//!   delay that doubles with each failed run in a row, never later than its schedule.
//! - Jitter: up to this much random delay is added to each scheduled run, so that many
//!   mirrors on one schedule do not all start in the same second.
//! - Retries: the attempts of one run are spaced by [`retry_delay`].

pub mod blackout;
pub mod extras;
pub mod zone;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use rand::Rng;
use serde::{Serialize, Serializer};

pub use self::blackout::{Blackout, BlackoutError};
pub use self::extras::ScheduleExtras;
pub use self::zone::{Zone, ZoneError};

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

    /// The first occurrence after `after`, read in `zone`.
    fn next_after(&self, after: DateTime<Utc>, zone: Zone) -> Option<DateTime<Utc>> {
        let cron = croner::Cron::from_str(&self.text).ok()?;
        zone.next_cron(&cron, after)
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
///
/// Serialized into pool fingerprints: a field left at its default is left out, so a
/// definition that does not use a newer rule has the fingerprint it had before the rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rules {
    pub timing: Timing,
    /// Up to this much random delay is added to each scheduled run.
    #[serde(serialize_with = "seconds")]
    pub jitter: Duration,
    #[serde(skip_serializing_if = "Zone::is_local")]
    pub zone: Zone,
    /// Fixed rate: intervals are counted from this time of day (in `zone`), not from the
    /// end of the last run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_rate_anchor: Option<NaiveTime>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blackouts: Vec<Blackout>,
    /// After a run that failed all its attempts, the next is tried this long after it
    /// (doubling with each failed run in a row), unless its schedule comes first.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "optional_seconds"
    )]
    pub retry_after_failure: Option<Duration>,
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}

fn optional_seconds<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.unwrap_or_default().as_secs())
}

/// How many times a window's end can lead into another window before the search stops.
const MAX_CHAINED_WINDOWS: usize = 64;

impl Rules {
    /// `timing` and `jitter`, with every other rule at its default.
    pub fn new(timing: Timing, jitter: Duration) -> Rules {
        Rules {
            timing,
            jitter,
            zone: Zone::Local,
            fixed_rate_anchor: None,
            blackouts: Vec::new(),
            retry_after_failure: None,
        }
    }

    pub fn interval(minutes: u64) -> Rules {
        Rules::new(Timing::Interval { minutes }, Duration::ZERO)
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

    /// The next run after one that ended at `ended`, before jitter, out of any blackout.
    pub fn next_after(&self, ended: DateTime<Utc>) -> DateTime<Utc> {
        self.admit(self.slot_after(ended))
    }

    /// The next run after one that ended at `ended`, the `failed_runs`-th failed run in a
    /// row (0: it succeeded).
    pub fn next_after_run(&self, ended: DateTime<Utc>, failed_runs: u32) -> DateTime<Utc> {
        let scheduled = self.next_after(ended);
        match self.retry_after_failure {
            Some(delay) if failed_runs > 0 => {
                let doubled = delay.saturating_mul(1u32 << failed_runs.saturating_sub(1).min(20));
                let retry =
                    ended + chrono::Duration::from_std(doubled).unwrap_or(chrono::TimeDelta::MAX);
                self.admit(retry).min(scheduled)
            }
            _ => scheduled,
        }
    }

    fn slot_after(&self, ended: DateTime<Utc>) -> DateTime<Utc> {
        let after_minutes = |minutes: u64| {
            ended + chrono::Duration::minutes(i64::try_from(minutes).unwrap_or(i64::MAX / 60_000))
        };
        match &self.timing {
            Timing::Interval { minutes } => match self.fixed_rate_anchor {
                Some(anchor) if *minutes > 0 => self.fixed_slot_after(ended, anchor, *minutes),
                _ => after_minutes(*minutes),
            },
            // An expression that never occurs again (none passes validation) falls back to
            // a day.
            Timing::Cron(cron) => cron
                .next_after(ended, self.zone)
                .unwrap_or_else(|| after_minutes(24 * 60)),
        }
    }

    /// The first slot anchor + k × interval strictly after `ended`, counted from the
    /// anchor on `ended`'s day.
    fn fixed_slot_after(
        &self,
        ended: DateTime<Utc>,
        anchor: NaiveTime,
        minutes: u64,
    ) -> DateTime<Utc> {
        let base = self
            .zone
            .instant(self.zone.local(ended).date().and_time(anchor));
        let period = i64::try_from(minutes.saturating_mul(60))
            .unwrap_or(i64::MAX)
            .max(1);
        let since = (ended - base).num_seconds();
        let k = since.div_euclid(period) + 1;
        base + chrono::Duration::seconds(k.saturating_mul(period))
    }

    /// `at`, or the end of the blackout window it falls in (and of the windows that end
    /// leads into).
    pub fn admit(&self, mut at: DateTime<Utc>) -> DateTime<Utc> {
        for _ in 0..MAX_CHAINED_WINDOWS {
            let end = self
                .blackouts
                .iter()
                .filter_map(|window| window.end_if_inside(at, self.zone))
                .max();
            match end {
                Some(end) if end > at => at = end,
                _ => break,
            }
        }
        at
    }

    /// The blackout window `at` falls in, and its end.
    pub fn blackout_at(&self, at: DateTime<Utc>) -> Option<(&Blackout, DateTime<Utc>)> {
        self.blackouts
            .iter()
            .find_map(|window| Some((window, window.end_if_inside(at, self.zone)?)))
    }

    /// `at` plus a random part of the jitter, out of any blackout.
    pub fn jittered(&self, at: DateTime<Utc>, rng: &mut impl Rng) -> DateTime<Utc> {
        let jitter = self.jitter.as_secs();
        if jitter == 0 {
            return self.admit(at);
        }
        let extra = rng.random_range(0..=jitter);
        self.admit(at + chrono::Duration::seconds(i64::try_from(extra).unwrap_or(0)))
    }

    /// When a job runs that is known to have last succeeded at `last_success` (or never):
    /// its next run after that success, but not before `now`.
    pub fn resume(&self, last_success: Option<DateTime<Utc>>, now: DateTime<Utc>) -> DateTime<Utc> {
        match last_success {
            None => self.admit(now),
            Some(success) => self.admit(self.slot_after(success).max(now)),
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
        let rules = Rules::new(
            Timing::Cron(CronExpr::parse("*/15 * * * *").unwrap()),
            Duration::ZERO,
        );
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
        let rules = Rules::new(Timing::Interval { minutes: 60 }, Duration::from_secs(30));
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

    fn berlin() -> Zone {
        Zone::parse("Europe/Berlin").unwrap()
    }

    fn cron_in(expr: &str, zone: Zone) -> Rules {
        Rules {
            zone,
            ..Rules::new(Timing::Cron(CronExpr::parse(expr).unwrap()), Duration::ZERO)
        }
    }

    #[test]
    fn cron_in_a_named_zone_across_daylight_saving_changes() {
        let daily = cron_in("30 2 * * *", berlin());
        // 2026-03-29 02:30 does not exist in Berlin: once, at 03:00 CEST.
        let skipped = daily.next_after(at("2026-03-28T12:00:00Z"));
        assert_eq!(skipped, at("2026-03-29T01:00:00Z"));
        assert_eq!(daily.next_after(skipped), at("2026-03-30T00:30:00Z"));
        // 2026-10-25 02:30 happens twice: once, the first time.
        let repeated = daily.next_after(at("2026-10-24T12:00:00Z"));
        assert_eq!(repeated, at("2026-10-25T00:30:00Z"));
        assert_eq!(daily.next_after(repeated), at("2026-10-26T01:30:00Z"));
        // The same expression in Shanghai (no daylight saving, UTC+8).
        let shanghai = cron_in("30 2 * * *", Zone::parse("Asia/Shanghai").unwrap());
        assert_eq!(
            shanghai.next_after(at("2026-03-28T12:00:00Z")),
            at("2026-03-28T18:30:00Z")
        );
    }

    #[test]
    fn fixed_rate_keeps_its_slots_and_skips_the_ones_a_run_overlapped() {
        let rules = Rules {
            zone: Zone::parse("UTC").unwrap(),
            fixed_rate_anchor: Some(NaiveTime::from_hms_opt(0, 15, 0).unwrap()),
            ..Rules::interval(360)
        };
        // Slots at 00:15, 06:15, 12:15, 18:15 whatever each run took.
        assert_eq!(
            rules.next_after(at("2026-12-02T00:20:00Z")),
            at("2026-12-02T06:15:00Z")
        );
        assert_eq!(
            rules.next_after(at("2026-12-02T06:15:00Z")),
            at("2026-12-02T12:15:00Z")
        );
        // A run from 06:15 to 13:00 overlapped 12:15: that slot is skipped.
        assert_eq!(
            rules.next_after(at("2026-12-02T13:00:00Z")),
            at("2026-12-02T18:15:00Z")
        );
        // Before the day's anchor: yesterday's slots continue.
        assert_eq!(
            rules.next_after(at("2026-12-02T00:05:00Z")),
            at("2026-12-02T00:15:00Z")
        );
        assert_eq!(
            rules.next_after(at("2026-12-02T23:00:00Z")),
            at("2026-12-03T00:15:00Z")
        );
    }

    #[test]
    fn a_run_due_in_a_blackout_waits_for_its_end() {
        let rules = Rules {
            zone: Zone::parse("UTC").unwrap(),
            blackouts: vec![
                Blackout::parse("08:00-18:00 Mon-Fri").unwrap(),
                Blackout::parse("17:00-19:00").unwrap(),
            ],
            ..Rules::interval(60)
        };
        // Wednesday 2026-12-02: due 10:00, waits past both overlapping windows.
        assert_eq!(
            rules.next_after(at("2026-12-02T09:00:00Z")),
            at("2026-12-02T19:00:00Z")
        );
        assert_eq!(
            rules.next_after(at("2026-12-02T05:00:00Z")),
            at("2026-12-02T06:00:00Z")
        );
        let (window, end) = rules.blackout_at(at("2026-12-02T12:00:00Z")).unwrap();
        assert_eq!(
            (window.to_string(), end),
            ("08:00-18:00 Mon-Fri".to_owned(), at("2026-12-02T18:00:00Z"))
        );
        assert_eq!(
            rules.resume(None, at("2026-12-02T12:00:00Z")),
            at("2026-12-02T19:00:00Z")
        );
        let mut rng = rand::rng();
        assert_eq!(
            rules.jittered(at("2026-12-02T12:00:00Z"), &mut rng),
            at("2026-12-02T19:00:00Z")
        );
    }

    #[test]
    fn a_failed_run_is_tried_again_sooner_doubling_up_to_its_schedule() {
        let rules = Rules {
            retry_after_failure: Some(Duration::from_secs(30 * 60)),
            ..Rules::interval(24 * 60)
        };
        let ended = at("2026-12-02T10:00:00Z");
        let after = |failed_runs| rules.next_after_run(ended, failed_runs);
        assert_eq!(
            after(0),
            at("2026-12-03T10:00:00Z"),
            "a success waits its interval"
        );
        assert_eq!(after(1), at("2026-12-02T10:30:00Z"));
        assert_eq!(after(2), at("2026-12-02T11:00:00Z"));
        assert_eq!(after(3), at("2026-12-02T12:00:00Z"));
        assert_eq!(after(6), at("2026-12-03T02:00:00Z"), "16 h");
        assert_eq!(
            after(7),
            at("2026-12-03T10:00:00Z"),
            "never later than the schedule"
        );
        assert_eq!(after(40), at("2026-12-03T10:00:00Z"));
        assert_eq!(
            Rules::interval(60).next_after_run(ended, 3),
            at("2026-12-02T11:00:00Z")
        );
    }

    #[test]
    fn new_rules_left_at_their_defaults_do_not_change_the_serialized_form() {
        let rules = Rules::new(Timing::Interval { minutes: 60 }, Duration::from_secs(5));
        assert_eq!(
            serde_json::to_string(&rules).unwrap(),
            r#"{"timing":{"interval":{"minutes":60}},"jitter":5}"#
        );
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        let delays: Vec<u64> = (1..=7).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 16, 16]);
    }
}
