//! The time zone a job's cron times, fixed-rate anchor and blackout windows are read in:
//! the host's local zone (as tunasync reads them) or a named IANA zone.

use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Timelike as _, Utc};
use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Zone {
    /// The host's local zone.
    #[default]
    Local,
    Named(chrono_tz::Tz),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time zone: write an IANA name such as \"Asia/Shanghai\" or \"UTC\"")]
pub struct ZoneError(pub String);

/// How far a local time in a daylight-saving gap is moved forward, at most.
const GAP_LIMIT_MINUTES: i64 = 24 * 60;

impl Zone {
    /// An IANA name, or `local` (also the empty text) for the host's zone.
    pub fn parse(text: &str) -> Result<Zone, ZoneError> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("local") {
            return Ok(Zone::Local);
        }
        chrono_tz::Tz::from_str(text)
            .map(Zone::Named)
            .map_err(|_| ZoneError(text.to_owned()))
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Zone::Local)
    }

    pub fn name(&self) -> &str {
        match self {
            Zone::Local => "local",
            Zone::Named(tz) => tz.name(),
        }
    }

    /// The wall-clock time of `at` in this zone.
    pub fn local(&self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Local => at.with_timezone(&chrono::Local).naive_local(),
            Zone::Named(tz) => at.with_timezone(tz).naive_local(),
        }
    }

    /// The instant of wall-clock time `local`: the earlier one when the clock shows it
    /// twice (the hour repeated when daylight saving ends), and the first valid instant
    /// after it when the clock skips it (the hour skipped when daylight saving starts).
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Local => instant_in(&chrono::Local, local),
            Zone::Named(tz) => instant_in(tz, local),
        }
    }

    /// The next occurrence of `cron` after `after`, read in this zone (croner runs a time
    /// the clock skips once, at the first valid instant after it, and a time the clock shows
    /// twice once).
    pub(super) fn next_cron(
        &self,
        cron: &croner::Cron,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Zone::Local => cron
                .find_next_occurrence(&after.with_timezone(&chrono::Local), false)
                .ok()
                .map(|next| next.to_utc()),
            Zone::Named(tz) => cron
                .find_next_occurrence(&after.with_timezone(tz), false)
                .ok()
                .map(|next| next.to_utc()),
        }
    }
}

fn instant_in<Tz: TimeZone>(zone: &Tz, local: NaiveDateTime) -> DateTime<Utc> {
    for minutes in 0..=GAP_LIMIT_MINUTES {
        let wall = local + chrono::Duration::minutes(minutes);
        // The first minute past a gap: its start, not `local`'s offset into it.
        let wall = if minutes == 0 {
            wall
        } else {
            wall.with_second(0).unwrap_or(wall)
        };
        match zone.from_local_datetime(&wall) {
            LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => return at.to_utc(),
            LocalResult::None => {}
        }
    }
    // No zone skips a whole day: read it as UTC.
    local.and_utc()
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap()
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn names_gaps_and_repeats() {
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        assert_eq!(berlin.name(), "Europe/Berlin");
        assert_eq!(Zone::parse("").unwrap(), Zone::Local);
        assert_eq!(Zone::parse("Local").unwrap(), Zone::Local);
        assert_eq!(
            Zone::parse("Mars/Olympus"),
            Err(ZoneError("Mars/Olympus".into()))
        );
        // 2026-03-29: Berlin's clocks skip from 02:00 to 03:00.
        assert_eq!(
            berlin.instant(local("2026-03-29 02:30")),
            utc("2026-03-29T01:00:00Z")
        );
        assert_eq!(
            berlin.instant(local("2026-03-29 01:30")),
            utc("2026-03-29T00:30:00Z")
        );
        // 2026-10-25: 02:00-03:00 comes twice; the first one counts.
        assert_eq!(
            berlin.instant(local("2026-10-25 02:30")),
            utc("2026-10-25T00:30:00Z")
        );
        assert_eq!(
            berlin.local(utc("2026-10-25T01:30:00Z")),
            local("2026-10-25 02:30"),
            "the second 02:30"
        );
        let shanghai = Zone::parse("Asia/Shanghai").unwrap();
        assert_eq!(
            shanghai.instant(local("2026-12-02 08:00")),
            utc("2026-12-02T00:00:00Z")
        );
    }
}
