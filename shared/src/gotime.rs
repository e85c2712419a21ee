//! Times as tunasync writes them.
//!
//! tunasync stores Go `time.Time` values, which keep the UTC offset they were made with. On the
//! worker↔manager side they are RFC 3339 with Go's trimmed nanoseconds (`RFC3339Nano`); in
//! `GET /jobs` they are `2006-01-02 15:04:05 -0700` text plus Unix seconds. Go's zero time,
//! `0001-01-01T00:00:00Z`, means "never" and is printed as it is (`-62135596800` seconds).

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, TimeZone, Timelike, Utc};
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
        self.web_text().as_str().to_owned()
    }

    /// Go's `RFC3339Nano`: fraction without trailing zeros, `Z` for a zero offset.
    pub fn rfc3339_nano(&self) -> String {
        self.rfc3339_text().as_str().to_owned()
    }

    /// [`Self::web_string`] without an allocation (the `GET /jobs` renderer calls it for
    /// every time of every job).
    pub fn web_text(&self) -> TimeText {
        let mut text = TimeText::default();
        if !self.write_date_time(&mut text, b' ') {
            let _ = write!(text, "{}", self.0.format("%Y-%m-%d %H:%M:%S"));
        }
        text.push(b' ');
        self.write_offset(&mut text, None);
        text
    }

    /// [`Self::rfc3339_nano`] without an allocation (every stored record and wire event
    /// carries several).
    pub fn rfc3339_text(&self) -> TimeText {
        let mut text = TimeText::default();
        if !self.write_date_time(&mut text, b'T') {
            let _ = write!(text, "{}", self.0.format("%Y-%m-%dT%H:%M:%S"));
        }
        let mut nanos = self.0.nanosecond() % 1_000_000_000;
        if nanos != 0 {
            let mut digits = 9;
            while nanos.is_multiple_of(10) {
                nanos /= 10;
                digits -= 1;
            }
            text.push(b'.');
            text.push_digits(nanos, digits);
        }
        if self.0.offset().local_minus_utc() == 0 {
            text.push(b'Z');
        } else {
            self.write_offset(&mut text, Some(b':'));
        }
        text
    }

    /// The UTC offset as `+hhmm`, or `+hh:mm` with a `separator`.
    fn write_offset(&self, text: &mut TimeText, separator: Option<u8>) {
        let offset = self.0.offset().local_minus_utc();
        text.push(if offset < 0 { b'-' } else { b'+' });
        let minutes = offset.unsigned_abs() / 60;
        text.push_two(minutes / 60);
        if let Some(separator) = separator {
            text.push(separator);
        }
        text.push_two(minutes % 60);
    }

    /// `YYYY-MM-DD?hh:mm:ss` in the stored offset; `false` (nothing written) for years
    /// outside 0–9999, which chrono's formatter handles.
    fn write_date_time(&self, text: &mut TimeText, separator: u8) -> bool {
        let local = self.0.naive_local();
        let Ok(year) = u32::try_from(local.year()) else {
            return false;
        };
        if year > 9999 {
            return false;
        }
        text.push_digits(year, 4);
        text.push(b'-');
        text.push_two(local.month());
        text.push(b'-');
        text.push_two(local.day());
        text.push(separator);
        text.push_two(local.hour());
        text.push(b':');
        text.push_two(local.minute());
        text.push(b':');
        text.push_two(local.second());
        true
    }

    /// Parses RFC 3339 (any fraction, `Z` or an offset).
    pub fn parse_rfc3339(text: &str) -> Result<Self, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(Self)
    }
}

/// A formatted time on the stack: the longest form, `-999999-12-31T23:59:59.999999999+23:59`,
/// fits with room to spare.
#[derive(Clone, Copy)]
pub struct TimeText {
    bytes: [u8; 48],
    len: usize,
}

impl Default for TimeText {
    fn default() -> Self {
        TimeText {
            bytes: [0; 48],
            len: 0,
        }
    }
}

impl TimeText {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are pushed, and `write_str` copies whole `str`s.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }

    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    fn push_two(&mut self, value: u32) {
        self.push_digits(value, 2);
    }

    /// `value` zero-padded to `width` digits (its low `width` digits).
    fn push_digits(&mut self, mut value: u32, width: usize) {
        let start = self.len;
        for _ in 0..width {
            self.push(b'0');
        }
        for idx in (start..self.len).rev() {
            self.bytes[idx] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
}

impl std::fmt::Write for TimeText {
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
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

crate::openapi::string_schema!(
    GoTime,
    "A time as Go's encoding/json writes it (RFC 3339 with nanoseconds when there are any); \
     0001-01-01T00:00:00Z for never.",
    Some(utoipa::openapi::KnownFormat::DateTime),
    None
);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.rfc3339_text().as_str())
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
            (
                "2021-06-30T23:59:59.000000001-03:30",
                "2021-06-30 23:59:59 -0330",
                1625110199,
            ),
            (
                "1999-12-31T18:15:00.12+05:45",
                "1999-12-31 18:15:00 +0545",
                946643400,
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
    fn fast_formatting_matches_chronos() {
        let offsets = [0, 3600 * 8, -3600 * 3 - 1800, 3600 * 5 + 2700, -3600 * 12];
        for step in 0..2000_i64 {
            let seconds = -62_135_596_800 + step * 130_000_007_919;
            let nanos = (step as u32).wrapping_mul(2_654_435_761) % 1_000_000_000;
            let offset = FixedOffset::east_opt(offsets[step as usize % offsets.len()]).unwrap();
            let Some(utc) = DateTime::from_timestamp(seconds, nanos) else {
                continue;
            };
            let time = GoTime::new(utc.with_timezone(&offset));
            let mut rfc = time.0.format("%Y-%m-%dT%H:%M:%S%.f").to_string();
            if rfc.contains('.') {
                rfc = rfc.trim_end_matches('0').trim_end_matches('.').to_owned();
            }
            rfc.push_str(&if offset.local_minus_utc() == 0 {
                "Z".to_owned()
            } else {
                time.0.format("%:z").to_string()
            });
            assert_eq!(time.rfc3339_nano(), rfc);
            assert_eq!(
                time.web_string(),
                time.0.format("%Y-%m-%d %H:%M:%S %z").to_string()
            );
        }
    }

    #[test]
    fn bad_times_are_errors() {
        for bad in ["\"yesterday\"", "\"2026-13-01T00:00:00Z\"", "12", "null"] {
            assert!(serde_json::from_str::<GoTime>(bad).is_err(), "{bad}");
        }
    }
}
