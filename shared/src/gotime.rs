//! Times as tunasync writes them.
//!
//! tunasync stores Go `time.Time` values, which keep the UTC offset they were made with. On the
//! worker↔manager side they are RFC 3339 with Go's trimmed nanoseconds (`RFC3339Nano`); in
//! `GET /jobs` they are `2006-01-02 15:04:05 -0700` text plus Unix seconds. Go's zero time,
//! `0001-01-01T00:00:00Z`, means "never" and is printed as it is (`-62135596800` seconds).

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, NaiveDate, Offset, TimeZone, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with the UTC offset it was recorded with; Go's zero time means "never".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GoTime(DateTime<FixedOffset>);

impl Default for GoTime {
    fn default() -> Self {
        Self::ZERO
    }
}

impl GoTime {
    /// Go's zero time, `0001-01-01T00:00:00Z`.
    pub const ZERO: GoTime = GoTime(zero_time());

    pub fn new(time: DateTime<FixedOffset>) -> Self {
        Self(time)
    }

    /// Now, in the machine's local offset (as tunasync's manager stamps times).
    pub fn now_local() -> Self {
        let now = chrono::Local::now();
        Self(now.with_timezone(&now.offset().fix()))
    }

    /// A Unix time in seconds, in UTC.
    pub fn from_unix(seconds: i64) -> Option<Self> {
        Utc.timestamp_opt(seconds, 0)
            .single()
            .map(|time| Self(time.fixed_offset()))
    }

    pub fn is_zero(&self) -> bool {
        self.0 == zero_time()
    }

    pub fn as_datetime(&self) -> DateTime<FixedOffset> {
        self.0
    }

    /// Seconds since the Unix epoch (`time.Unix()`), `-62135596800` for the zero time.
    pub fn unix(&self) -> i64 {
        self.0.timestamp()
    }

    /// The `GET /jobs` text form: `2006-01-02 15:04:05 -0700`, in the stored offset.
    pub fn web_string(&self) -> String {
        self.0.format("%Y-%m-%d %H:%M:%S %z").to_string()
    }

    /// Go's `RFC3339Nano`: fraction without trailing zeros, `Z` for a zero offset.
    pub fn rfc3339_nano(&self) -> String {
        let mut out = self.0.format("%Y-%m-%dT%H:%M:%S").to_string();
        let nanos = self.0.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let digits = format!("{nanos:09}");
            let _ = write!(out, ".{}", digits.trim_end_matches('0'));
        }
        if self.0.offset().local_minus_utc() == 0 {
            out.push('Z');
        } else {
            out.push_str(&self.0.format("%:z").to_string());
        }
        out
    }

    /// Parses RFC 3339 (any fraction, `Z` or an offset).
    pub fn parse_rfc3339(text: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(Self)
    }
}

const fn zero_time() -> DateTime<FixedOffset> {
    let Some(date) = NaiveDate::from_ymd_opt(1, 1, 1) else {
        panic!("0001-01-01 is a valid date");
    };
    let Some(naive) = date.and_hms_opt(0, 0, 0) else {
        panic!("00:00:00 is a valid time");
    };
    let Some(utc) = FixedOffset::east_opt(0) else {
        panic!("a zero offset is valid");
    };
    DateTime::from_naive_utc_and_offset(naive, utc)
}

impl From<DateTime<Utc>> for GoTime {
    fn from(time: DateTime<Utc>) -> Self {
        Self(time.fixed_offset())
    }
}

impl From<DateTime<FixedOffset>> for GoTime {
    fn from(time: DateTime<FixedOffset>) -> Self {
        Self(time)
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.rfc3339_nano())
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        GoTime::parse_rfc3339(&text)
            .map_err(|err| serde::de::Error::custom(format!("invalid time {text:?}: {err}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_time_matches_go() {
        let zero = GoTime::ZERO;
        assert!(zero.is_zero());
        assert_eq!(zero.rfc3339_nano(), "0001-01-01T00:00:00Z");
        assert_eq!(zero.web_string(), "0001-01-01 00:00:00 +0000");
        assert_eq!(zero.unix(), -62135596800);
        assert_eq!(GoTime::parse_rfc3339("0001-01-01T00:00:00Z").unwrap(), zero);
        assert_eq!(GoTime::default(), zero);
    }

    #[test]
    fn formats_round_trip_like_go() {
        // (as written by tunasync, web form, unix seconds)
        let cases = [
            (
                "2026-11-26T11:42:43.681257497+08:00",
                "2026-11-26 11:42:43 +0800",
                1795664563,
            ),
            (
                "2026-11-26T03:49:04.30612841Z",
                "2026-11-26 03:49:04 +0000",
                1795664944,
            ),
            (
                "2030-01-02T03:04:05Z",
                "2030-01-02 03:04:05 +0000",
                1893553445,
            ),
            (
                "2030-01-02T03:04:05+08:00",
                "2030-01-02 03:04:05 +0800",
                1893524645,
            ),
            (
                "2020-03-10T17:45:07.1+08:00",
                "2020-03-10 17:45:07 +0800",
                1583833507,
            ),
        ];
        for (rfc, web, ts) in cases {
            let time = GoTime::parse_rfc3339(rfc).unwrap();
            assert_eq!(time.rfc3339_nano(), rfc);
            assert_eq!(time.web_string(), web);
            assert_eq!(time.unix(), ts);
            let json = serde_json::to_string(&time).unwrap();
            assert_eq!(json, format!("\"{rfc}\""));
            assert_eq!(serde_json::from_str::<GoTime>(&json).unwrap(), time);
        }
    }

    #[test]
    fn bad_times_are_errors() {
        for bad in ["\"yesterday\"", "\"2026-13-01T00:00:00Z\"", "12", "null"] {
            assert!(serde_json::from_str::<GoTime>(bad).is_err(), "{bad}");
        }
    }
}
