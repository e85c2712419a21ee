//! A mirror's schedule keys, resolved into [`Rules`]: tunasync's `interval`, and ours —
//! `cron`, `jitter`, `timezone`, `blackout`, `interval_mode` / `fixed_rate_anchor`,
//! `retry_after_failure` — plus `priority`. A mirror's own key wins over `[global]`'s.

use std::path::Path;
use std::time::Duration;

use chrono::NaiveTime;
use tunasync_shared::schedule::{Blackout, CronExpr, Rules, Timing, Zone};

use super::Collector;
use super::raw::{RawGlobal, RawMirror};

/// A job's priority when none is set.
pub const DEFAULT_PRIORITY: u8 = 50;

/// The rules and the priority; problems go to `collector` under `key(field)`.
pub(super) fn resolve(
    mirror: &RawMirror,
    global: &RawGlobal,
    interval: u64,
    file: &Path,
    key: &dyn Fn(&str) -> String,
    collector: &mut Collector,
) -> (Rules, u8) {
    let text = |own: &Option<String>, inherited: &Option<String>| -> Option<String> {
        own.clone()
            .or_else(|| inherited.clone())
            .filter(|text| !text.trim().is_empty())
    };
    let duration = |field: &str, value: Option<String>, collector: &mut Collector| {
        let value = value?;
        match humantime::parse_duration(&value) {
            Ok(duration) => Some(duration),
            Err(err) => {
                collector.problem(
                    file,
                    key(field),
                    format!("invalid duration {value:?}: {err}"),
                );
                None
            }
        }
    };

    let cron = match text(&mirror.cron, &global.cron)
        .as_deref()
        .map(CronExpr::parse)
    {
        None => None,
        Some(Ok(cron)) => Some(cron),
        Some(Err(err)) => {
            collector.problem(file, key("cron"), err.to_string());
            None
        }
    };
    let jitter = duration("jitter", text(&mirror.jitter, &global.jitter), collector)
        .map_or(Duration::ZERO, |jitter| {
            Duration::from_secs(jitter.as_secs())
        });
    let zone = match text(&mirror.timezone, &global.timezone) {
        None => Zone::Local,
        Some(name) => Zone::parse(&name).unwrap_or_else(|err| {
            collector.problem(file, key("timezone"), err.to_string());
            Zone::Local
        }),
    };
    let blackouts = mirror
        .blackout
        .as_ref()
        .or(global.blackout.as_ref())
        .map(|windows| {
            windows
                .iter()
                .filter_map(|window| match Blackout::parse(window) {
                    Ok(window) => Some(window),
                    Err(err) => {
                        collector.problem(file, key("blackout"), err.to_string());
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let fixed_rate = match text(&mirror.interval_mode, &global.interval_mode).as_deref() {
        None | Some("interval") => false,
        Some("fixed-rate") => true,
        Some(other) => {
            collector.problem(
                file,
                key("interval_mode"),
                format!("{other:?} is not an interval mode: write \"interval\" or \"fixed-rate\""),
            );
            false
        }
    };
    let anchor = text(&mirror.fixed_rate_anchor, &global.fixed_rate_anchor);
    let fixed_rate_anchor = if fixed_rate {
        if cron.is_some() {
            collector.problem(
                file,
                key("interval_mode"),
                "fixed-rate counts an interval; this mirror has a cron schedule",
            );
        }
        if interval == 0 {
            collector.problem(
                file,
                key("interval_mode"),
                "fixed-rate needs an interval of at least 1 minute",
            );
        }
        match anchor
            .as_deref()
            .map(|text| NaiveTime::parse_from_str(text, "%H:%M"))
        {
            None => Some(NaiveTime::MIN),
            Some(Ok(anchor)) => Some(anchor),
            Some(Err(_)) => {
                collector.problem(
                    file,
                    key("fixed_rate_anchor"),
                    format!(
                        "{:?} is not a time of day (HH:MM)",
                        anchor.unwrap_or_default()
                    ),
                );
                None
            }
        }
    } else {
        if anchor.is_some() {
            collector.problem(
                file,
                key("fixed_rate_anchor"),
                "only with interval_mode = \"fixed-rate\"",
            );
        }
        None
    };
    let retry_after_failure = duration(
        "retry_after_failure",
        text(&mirror.retry_after_failure, &global.retry_after_failure),
        collector,
    )
    .filter(|delay| !delay.is_zero());
    let priority = match mirror.priority.or(global.priority) {
        None => DEFAULT_PRIORITY,
        Some(value) => u8::try_from(value)
            .ok()
            .filter(|value| *value <= 100)
            .unwrap_or_else(|| {
                collector.problem(file, key("priority"), format!("{value} is not in 0..=100"));
                DEFAULT_PRIORITY
            }),
    };
    let timing = match cron {
        Some(cron) => Timing::Cron(cron),
        None => Timing::Interval { minutes: interval },
    };
    let rules = Rules {
        zone,
        fixed_rate_anchor,
        blackouts,
        retry_after_failure,
        ..Rules::new(timing, jitter)
    };
    (rules, priority)
}
