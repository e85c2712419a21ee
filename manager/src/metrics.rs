//! `GET /metrics`: Prometheus text exposition of what the view holds.

use std::fmt::Write as _;

use tunasync_shared::status::SyncStatus;

use crate::model::Model;
use crate::pool_status::PoolSummary;

/// Parses tunasync's size text (`1.33T`, `20.07K`, `512`, `5GB`) into bytes (binary units).
pub fn size_bytes(size: &str) -> Option<f64> {
    let text = size.trim().trim_end_matches(['B', 'b']);
    let (number, multiplier) = match text.chars().last()? {
        'K' | 'k' => (&text[..text.len() - 1], 1024f64),
        'M' | 'm' => (&text[..text.len() - 1], 1024f64.powi(2)),
        'G' | 'g' => (&text[..text.len() - 1], 1024f64.powi(3)),
        'T' | 't' => (&text[..text.len() - 1], 1024f64.powi(4)),
        'P' | 'p' => (&text[..text.len() - 1], 1024f64.powi(5)),
        _ => (text, 1.0),
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .map(|value| value * multiplier)
}

/// The log follows' metrics.
pub fn follows(counts: &crate::log_requests::FollowCounts) -> String {
    use std::sync::atomic::Ordering;
    format!(
        "# HELP tunasync_log_follows Job logs being followed through the manager now.\n\
         # TYPE tunasync_log_follows gauge\n\
         tunasync_log_follows {}\n\
         # HELP tunasync_log_follows_stopped_total Follows whose worker stopped sending after their reader went away.\n\
         # TYPE tunasync_log_follows_stopped_total counter\n\
         tunasync_log_follows_stopped_total {}\n",
        counts.open.load(Ordering::Relaxed),
        counts.stopped_after_reader_left.load(Ordering::Relaxed),
    )
}

/// Renders the metrics of `model`; `online` tells whether a worker is online; `pools` are
/// the pools' summaries.
pub fn render(
    model: &Model,
    online: impl Fn(&tunasync_shared::names::WorkerId) -> bool,
    pools: &[PoolSummary],
    events_applied: u64,
) -> String {
    let mut out = String::with_capacity(256 + model.jobs.len() * 256);
    let _ = writeln!(
        out,
        "# HELP tunasync_workers Known workers.\n# TYPE tunasync_workers gauge"
    );
    let _ = writeln!(out, "tunasync_workers {}", model.workers.len());
    let _ = writeln!(
        out,
        "# HELP tunasync_worker_online Whether the worker's heartbeats are current.\n# TYPE tunasync_worker_online gauge"
    );
    for worker in model.workers.keys() {
        let _ = writeln!(
            out,
            "tunasync_worker_online{{worker=\"{worker}\"}} {}",
            u8::from(online(worker))
        );
    }
    let _ = writeln!(
        out,
        "# HELP tunasync_mirrors Jobs by status.\n# TYPE tunasync_mirrors gauge"
    );
    for status in SyncStatus::ALL {
        let count = model
            .jobs
            .values()
            .filter(|job| job.status == status)
            .count();
        let _ = writeln!(out, "tunasync_mirrors{{status=\"{status}\"}} {count}");
    }
    let _ = writeln!(
        out,
        "# HELP tunasync_mirror_status The job's status (1 for the current one).\n# TYPE tunasync_mirror_status gauge"
    );
    for ((mirror, worker), job) in &model.jobs {
        let _ = writeln!(
            out,
            "tunasync_mirror_status{{mirror=\"{mirror}\",worker=\"{worker}\",status=\"{}\"}} 1",
            job.status
        );
    }
    let _ = writeln!(
        out,
        "# HELP tunasync_mirror_last_success_timestamp_seconds End of the last successful sync.\n# TYPE tunasync_mirror_last_success_timestamp_seconds gauge"
    );
    for ((mirror, worker), job) in &model.jobs {
        if !job.last_update.is_zero() {
            let _ = writeln!(
                out,
                "tunasync_mirror_last_success_timestamp_seconds{{mirror=\"{mirror}\",worker=\"{worker}\"}} {}",
                job.last_update.unix()
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tunasync_mirror_size_bytes The mirror's size as last reported.\n# TYPE tunasync_mirror_size_bytes gauge"
    );
    for ((mirror, worker), job) in &model.jobs {
        if let Some(bytes) = size_bytes(&job.size) {
            let _ = writeln!(
                out,
                "tunasync_mirror_size_bytes{{mirror=\"{mirror}\",worker=\"{worker}\"}} {bytes}"
            );
        }
    }
    render_pools(&mut out, pools);
    let _ = writeln!(
        out,
        "# HELP tunasync_events_applied_total Worker events applied since start.\n# TYPE tunasync_events_applied_total counter"
    );
    let _ = writeln!(out, "tunasync_events_applied_total {events_applied}");
    out
}

/// A per-pool gauge: its name, its help text, and how to read it.
type PoolGauge = (&'static str, &'static str, fn(&PoolSummary) -> Option<i64>);

fn render_pools(out: &mut String, pools: &[PoolSummary]) {
    if pools.is_empty() {
        return;
    }
    let gauges: [PoolGauge; 4] = [
        (
            "members_online",
            "Members of the pool that are online.",
            |pool| {
                Some(
                    pool.status
                        .members
                        .iter()
                        .filter(|member| member.online)
                        .count() as i64,
                )
            },
        ),
        (
            "free_slots",
            "Slots free for the pool's runs on its online members.",
            |pool| Some(i64::from(pool.status.free_slots)),
        ),
        ("queued_runs", "Runs waiting in the pool's queue.", |pool| {
            Some(i64::from(pool.status.queued_runs))
        }),
        (
            "oldest_queued_seconds",
            "How long the oldest queued run has waited.",
            |pool| pool.status.oldest_queued_secs,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP tunasync_pool_{name} {help}\n# TYPE tunasync_pool_{name} gauge"
        );
        for pool in pools {
            if let Some(value) = value(pool) {
                let _ = writeln!(
                    out,
                    "tunasync_pool_{name}{{pool=\"{}\"}} {value}",
                    pool.pool
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP tunasync_pool_definition_differs A member's definition of a pooled mirror differs from the pool's.\n# TYPE tunasync_pool_definition_differs gauge"
    );
    for pool in pools {
        for differing in &pool.status.differing {
            let _ = writeln!(
                out,
                "tunasync_pool_definition_differs{{pool=\"{}\",mirror=\"{}\",worker=\"{}\"}} 1",
                pool.pool, differing.mirror, differing.worker
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{JobRecord, WorkerRecord};
    use tunasync_shared::gotime::GoTime;
    use tunasync_shared::names::{MirrorName, WorkerId};

    #[test]
    fn sizes_in_tunasyncs_units() {
        let cases = [
            ("1.33T", 1.33 * 1024f64.powi(4)),
            ("20.07K", 20.07 * 1024.0),
            ("512", 512.0),
            ("5GB", 5.0 * 1024f64.powi(3)),
        ];
        for (text, bytes) in cases {
            assert!((size_bytes(text).unwrap() - bytes).abs() < 1.0, "{text}");
        }
        for bad in ["", "unknown", "G", "1.2.3M"] {
            assert_eq!(size_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn exposition_lists_workers_jobs_and_counts() {
        let mut model = Model::default();
        let worker = WorkerId::new("w1").unwrap();
        model
            .workers
            .insert(worker.clone(), WorkerRecord::new(GoTime::ZERO));
        model.jobs.insert(
            (MirrorName::new("debian").unwrap(), worker.clone()),
            JobRecord {
                status: SyncStatus::Success,
                size: "2G".into(),
                last_update: GoTime::from_unix(1_800_000_000).unwrap(),
                ..JobRecord::default()
            },
        );
        let text = render(&model, |_| true, &[], 7);
        for expected in [
            "tunasync_workers 1\n",
            "tunasync_worker_online{worker=\"w1\"} 1\n",
            "tunasync_mirrors{status=\"success\"} 1\n",
            "tunasync_mirrors{status=\"failed\"} 0\n",
            "tunasync_mirror_status{mirror=\"debian\",worker=\"w1\",status=\"success\"} 1\n",
            "tunasync_mirror_last_success_timestamp_seconds{mirror=\"debian\",worker=\"w1\"} 1800000000\n",
            "tunasync_mirror_size_bytes{mirror=\"debian\",worker=\"w1\"} 2147483648\n",
            "tunasync_events_applied_total 7\n",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }
}
