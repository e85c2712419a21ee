//! The rules: what is wrong now, read from the committed model (pure).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tunasync_shared::names::WorkerId;

use super::config::AlertsConfig;
use super::incidents::{IncidentKey, Rule};
use crate::model::Model;

/// Every rule that holds now, with what it found. `check_offline` is false while the
/// manager has just started (workers' heartbeats sent meanwhile are still being read).
pub fn evaluate(
    config: &AlertsConfig,
    model: &Model,
    offline: &BTreeSet<WorkerId>,
    check_offline: bool,
    now: DateTime<Utc>,
) -> BTreeMap<IncidentKey, String> {
    let mut holding = BTreeMap::new();
    for ((mirror, worker), job) in &model.jobs {
        if job.hold.is_some() {
            // Stopped or disabled by the operator: not a problem of the mirror.
            continue;
        }
        if config.failures > 0 && job.consecutive_failures >= config.failures {
            let mut summary = match job.consecutive_failures {
                1 => format!("{mirror} on {worker}: the last run failed"),
                n => format!("{mirror} on {worker}: the last {n} runs failed"),
            };
            if !job.error_msg.is_empty() {
                summary.push_str(&format!(" (last error: {})", job.error_msg));
            }
            holding.insert(IncidentKey::job(Rule::Failures, mirror, worker), summary);
        }
        if let Some(limit) = config.stale_limit(mirror)
            && !job.last_update.is_zero()
        {
            let age = (now - job.last_update.as_datetime().to_utc())
                .to_std()
                .unwrap_or_default();
            if age > limit {
                holding.insert(
                    IncidentKey::job(Rule::Stale, mirror, worker),
                    format!(
                        "{mirror} on {worker}: no successful sync for {} (the limit is {}); \
                         last success {}",
                        rounded(age),
                        rounded(limit),
                        job.last_update.web_string()
                    ),
                );
            }
        }
    }
    if config.worker_offline && check_offline {
        for worker in offline {
            let Some(record) = model.workers.get(worker) else {
                continue;
            };
            holding.insert(
                IncidentKey::worker(Rule::WorkerOffline, worker),
                format!(
                    "worker {worker} is offline: its last heartbeat was at {}",
                    record.last_online.web_string()
                ),
            );
        }
    }
    holding
}

/// Whether maintenance covers what `key` is about.
pub fn muted(model: &Model, key: &IncidentKey) -> bool {
    match &key.mirror {
        Some(mirror) => model
            .maintenance
            .of_job(&(mirror.clone(), key.worker.clone()))
            .is_some(),
        None => model.maintenance.of_worker(&key.worker).is_some(),
    }
}

/// A duration to the second, or the minute once it is an hour or more.
fn rounded(duration: Duration) -> String {
    let secs = duration.as_secs();
    let secs = if secs >= 3600 { secs / 60 * 60 } else { secs };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Hold, JobRecord, WorkerRecord};
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::maintenance::Scope;
    use tunasync_shared::names::MirrorName;

    fn mirror(name: &str) -> MirrorName {
        MirrorName::new(name).unwrap()
    }

    fn w1() -> WorkerId {
        WorkerId::new("w1").unwrap()
    }

    fn model_with(jobs: &[(&str, JobRecord)]) -> Model {
        let mut model = Model::default();
        model.workers.insert(w1(), WorkerRecord::new(GoTime::ZERO));
        for (name, job) in jobs {
            model.jobs.insert((mirror(name), w1()), job.clone());
        }
        model
    }

    #[test]
    fn failures_stale_and_offline() {
        let now = Utc::now();
        let day_ago = GoTime::from(now - chrono::Duration::days(1));
        let failing = JobRecord {
            consecutive_failures: 3,
            error_msg: "exit status 23".into(),
            last_update: day_ago,
            ..JobRecord::default()
        };
        let two_hours_ago = GoTime::from(now - chrono::Duration::hours(2));
        let nearly = JobRecord {
            consecutive_failures: 2,
            last_update: two_hours_ago,
            ..JobRecord::default()
        };
        let recent = JobRecord {
            last_update: two_hours_ago,
            ..JobRecord::default()
        };
        let held = JobRecord {
            consecutive_failures: 9,
            hold: Some(Hold::Disabled),
            last_update: day_ago,
            ..JobRecord::default()
        };
        let never = JobRecord::default();
        let model = model_with(&[
            ("debian", failing),
            ("ubuntu", nearly),
            ("old", held),
            ("new", never),
            ("recent", recent),
        ]);
        let config = AlertsConfig {
            stale_after: Some(Duration::from_secs(3 * 3600)),
            mirror_stale_after: [(mirror("ubuntu"), Duration::from_secs(3600))]
                .into_iter()
                .collect(),
            ..AlertsConfig::default()
        };
        let offline: BTreeSet<WorkerId> = [w1()].into_iter().collect();
        let holding = evaluate(&config, &model, &offline, true, now);
        let keys: Vec<(Rule, Option<&str>)> = holding
            .keys()
            .map(|key| (key.rule, key.mirror.as_ref().map(MirrorName::as_str)))
            .collect();
        assert_eq!(
            keys,
            [
                (Rule::Failures, Some("debian")),
                (Rule::Stale, Some("debian")),
                // A limit of its own, shorter than the global one.
                (Rule::Stale, Some("ubuntu")),
                (Rule::WorkerOffline, None),
            ]
        );
        let failures = &holding[&IncidentKey::job(Rule::Failures, &mirror("debian"), &w1())];
        assert!(
            failures.ends_with("debian on w1: the last 3 runs failed (last error: exit status 23)")
        );
        let stale = &holding[&IncidentKey::job(Rule::Stale, &mirror("debian"), &w1())];
        assert!(stale.contains("no successful sync for 1day"), "{stale}");

        let quiet = evaluate(&config, &model, &offline, false, now);
        assert!(!quiet.keys().any(|key| key.rule == Rule::WorkerOffline));
    }

    #[test]
    fn maintenance_mutes_what_it_covers() {
        let mut model = model_with(&[("debian", JobRecord::default())]);
        let debian = IncidentKey::job(Rule::Failures, &mirror("debian"), &w1());
        let worker = IncidentKey::worker(Rule::WorkerOffline, &w1());
        assert!(!muted(&model, &debian));
        model.maintenance.windows.insert(
            Scope::new(None, Some(mirror("debian"))),
            crate::model::maintenance::Window {
                message: String::new(),
                since: GoTime::ZERO,
            },
        );
        assert!(muted(&model, &debian));
        assert!(
            !muted(&model, &worker),
            "a mirror's maintenance is not the worker's"
        );
        model.maintenance.windows.insert(
            Scope::new(Some(w1()), None),
            crate::model::maintenance::Window {
                message: String::new(),
                since: GoTime::ZERO,
            },
        );
        assert!(muted(&model, &worker));
    }
}
