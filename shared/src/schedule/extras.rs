//! The schedule rules beyond interval, cron and jitter, as a member tells the manager about
//! a pooled mirror in its `hello` (the manager schedules pooled mirrors by them).

use serde::{Deserialize, Serialize};

use super::{Blackout, Rules, Zone};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleExtras {
    /// An IANA zone name; absent: the manager host's local zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blackout: Vec<String>,
    /// `HH:MM`: the job runs at a fixed rate from this time of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_rate_anchor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_failure_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// The member's `per_upstream_concurrent` for this mirror's upstream host: at most this
    /// many of the pool's runs against the host at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_limit: Option<u32>,
}

impl ScheduleExtras {
    pub fn is_empty(&self) -> bool {
        *self == ScheduleExtras::default()
    }
}

impl Rules {
    /// This schedule's extras (with the job's `priority`), to send.
    pub fn extras(&self, priority: Option<u8>) -> ScheduleExtras {
        ScheduleExtras {
            timezone: (!self.zone.is_local()).then(|| self.zone.name().to_owned()),
            blackout: self.blackouts.iter().map(ToString::to_string).collect(),
            fixed_rate_anchor: self
                .fixed_rate_anchor
                .map(|anchor| anchor.format("%H:%M").to_string()),
            retry_after_failure_secs: self.retry_after_failure.map(|delay| delay.as_secs()),
            priority,
            upstream_limit: None,
        }
    }

    /// These rules with `extras` applied. What this build cannot read (a zone or window of
    /// a newer release) is left out.
    pub fn with_extras(mut self, extras: &ScheduleExtras) -> Rules {
        if let Some(zone) = extras
            .timezone
            .as_deref()
            .and_then(|name| Zone::parse(name).ok())
        {
            self.zone = zone;
        }
        self.blackouts = extras
            .blackout
            .iter()
            .filter_map(|window| Blackout::parse(window).ok())
            .collect();
        self.fixed_rate_anchor = extras
            .fixed_rate_anchor
            .as_deref()
            .and_then(|anchor| chrono::NaiveTime::parse_from_str(anchor, "%H:%M").ok());
        self.retry_after_failure = extras
            .retry_after_failure_secs
            .filter(|secs| *secs > 0)
            .map(std::time::Duration::from_secs);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_go_and_come_back() {
        let rules = Rules {
            zone: Zone::parse("Asia/Shanghai").unwrap(),
            blackouts: vec![Blackout::parse("08:00-18:00 Mon-Fri").unwrap()],
            fixed_rate_anchor: chrono::NaiveTime::from_hms_opt(3, 30, 0),
            retry_after_failure: Some(std::time::Duration::from_secs(600)),
            ..Rules::interval(60)
        };
        let extras = rules.extras(Some(80));
        assert_eq!(
            serde_json::to_value(&extras).unwrap(),
            serde_json::json!({
                "timezone": "Asia/Shanghai", "blackout": ["08:00-18:00 Mon-Fri"],
                "fixed_rate_anchor": "03:30", "retry_after_failure_secs": 600, "priority": 80,
            })
        );
        assert_eq!(Rules::interval(60).with_extras(&extras), rules);
        assert!(Rules::interval(60).extras(None).is_empty());
        let unknown = ScheduleExtras {
            timezone: Some("Mars/Olympus".into()),
            blackout: vec!["sometimes".into()],
            ..ScheduleExtras::default()
        };
        assert_eq!(
            Rules::interval(60).with_extras(&unknown),
            Rules::interval(60)
        );
    }
}
