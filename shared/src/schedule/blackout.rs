//! Blackout windows: times of the week when no run starts on its schedule (one that comes
//! due waits for the window's end; one running goes on).
//!
//! A window is a time range, `HH:MM-HH:MM`, and optionally the days it starts on, before
//! or after it: `Mon-Fri`, `Sat,Sun`, `Fri-Mon`. A range whose end is not after its start
//! crosses midnight (`22:00-06:00`); `00:00-00:00` is the whole day.

use std::fmt;

use chrono::{DateTime, Datelike as _, NaiveTime, Utc, Weekday};
use serde::{Serialize, Serializer};

use super::Zone;

#[derive(Clone, PartialEq, Eq)]
pub struct Blackout {
    text: String,
    /// Monday first.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a blackout window ({reason}); write e.g. \"08:00-18:00 Mon-Fri\" or \"Sat 02:00-04:00\""
)]
pub struct BlackoutError {
    pub text: String,
    pub reason: String,
}

const DAYS: [(&str, &str); 7] = [
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
];

fn day(text: &str) -> Option<usize> {
    let text = text.to_ascii_lowercase();
    DAYS.iter()
        .position(|(short, full)| text == *short || text == *full)
}

fn time(text: &str) -> Option<NaiveTime> {
    if text == "24:00" {
        return Some(NaiveTime::MIN);
    }
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

impl Blackout {
    pub fn parse(text: &str) -> Result<Blackout, BlackoutError> {
        let error = |reason: &str| BlackoutError {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let mut range = None;
        let mut days = None;
        for token in text.split_whitespace() {
            if token.contains(':') {
                if range.is_some() {
                    return Err(error("two time ranges"));
                }
                let (start, end) = token
                    .split_once('-')
                    .ok_or_else(|| error("a time range is HH:MM-HH:MM"))?;
                let start = time(start).ok_or_else(|| error("a time range is HH:MM-HH:MM"))?;
                let end = time(end).ok_or_else(|| error("a time range is HH:MM-HH:MM"))?;
                range = Some((start, end));
            } else {
                if days.is_some() {
                    return Err(error("two lists of days"));
                }
                let mut set = [false; 7];
                for part in token.split(',').filter(|part| !part.is_empty()) {
                    let (first, last) = part.split_once('-').unwrap_or((part, part));
                    let (Some(first), Some(last)) = (day(first), day(last)) else {
                        return Err(error(
                            "days are Mon, Tue, …, Sun, ranges such as Mon-Fri, or lists such as Sat,Sun",
                        ));
                    };
                    let mut index = first;
                    loop {
                        set[index] = true;
                        if index == last {
                            break;
                        }
                        index = (index + 1) % 7;
                    }
                }
                days = Some(set);
            }
        }
        let (start, end) = range.ok_or_else(|| error("no time range"))?;
        Ok(Blackout {
            text: text.trim().to_owned(),
            days: days.unwrap_or([true; 7]),
            start,
            end,
        })
    }

    /// If `at` falls in this window (read in `zone`), when the window ends.
    pub fn end_if_inside(&self, at: DateTime<Utc>, zone: Zone) -> Option<DateTime<Utc>> {
        let local = zone.local(at);
        // Today's window, or yesterday's if it crosses midnight.
        for days_back in [0, 1] {
            let date = local.date() - chrono::Duration::days(days_back);
            if !self.days[date.weekday().num_days_from_monday() as usize] {
                continue;
            }
            let start = date.and_time(self.start);
            let end_date = if self.end > self.start {
                date
            } else {
                date + chrono::Duration::days(1)
            };
            let end = end_date.and_time(self.end);
            if start <= local && local < end {
                return Some(zone.instant(end));
            }
        }
        None
    }

    /// The days it starts on, Monday first.
    pub fn weekdays(&self) -> Vec<Weekday> {
        (0..7)
            .filter(|index| self.days[*index])
            .filter_map(|index| Weekday::try_from(index as u8).ok())
            .collect()
    }
}

impl fmt::Debug for Blackout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.text)
    }
}

impl fmt::Display for Blackout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Blackout {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn windows_by_day_and_across_midnight() {
        let utc_zone = Zone::parse("UTC").unwrap();
        let office = Blackout::parse("08:00-18:00 Mon-Fri").unwrap();
        // 2026-12-02 is a Wednesday.
        assert_eq!(
            office.end_if_inside(utc("2026-12-02T09:00:00Z"), utc_zone),
            Some(utc("2026-12-02T18:00:00Z"))
        );
        assert_eq!(
            office.end_if_inside(utc("2026-12-02T18:00:00Z"), utc_zone),
            None
        );
        assert_eq!(
            office.end_if_inside(utc("2026-12-05T09:00:00Z"), utc_zone),
            None,
            "Saturday"
        );
        let night = Blackout::parse("Fri-Sat 22:00-06:00").unwrap();
        assert_eq!(
            night.end_if_inside(utc("2026-12-05T03:00:00Z"), utc_zone),
            Some(utc("2026-12-05T06:00:00Z")),
            "Friday's window, on Saturday morning"
        );
        assert_eq!(
            night.end_if_inside(utc("2026-12-03T03:00:00Z"), utc_zone),
            None
        );
        assert_eq!(night.weekdays(), [Weekday::Fri, Weekday::Sat]);
        let weekend = Blackout::parse("Sat,Sun 00:00-00:00").unwrap();
        assert_eq!(
            weekend.end_if_inside(utc("2026-12-06T12:00:00Z"), utc_zone),
            Some(utc("2026-12-07T00:00:00Z"))
        );
        let wrap = Blackout::parse("Sat-Mon 01:00-02:00").unwrap();
        assert_eq!(wrap.weekdays(), [Weekday::Mon, Weekday::Sat, Weekday::Sun]);
        // In a named zone: 08:00-18:00 in Shanghai is 00:00-10:00 UTC.
        let shanghai = Zone::parse("Asia/Shanghai").unwrap();
        assert_eq!(
            office.end_if_inside(utc("2026-12-02T01:00:00Z"), shanghai),
            Some(utc("2026-12-02T10:00:00Z"))
        );
    }

    #[test]
    fn bad_windows_say_why() {
        for bad in [
            "",
            "Mon-Fri",
            "8-18",
            "08:00-25:00",
            "Funday 01:00-02:00",
            "01:00-02:00 03:00-04:00",
        ] {
            let err = Blackout::parse(bad).unwrap_err();
            assert_eq!(err.text, bad);
            assert!(
                err.to_string().contains("is not a blackout window"),
                "{err}"
            );
        }
    }
}
