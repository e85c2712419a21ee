//! `tunasync worker --check`: the resolved jobs, as JSON, for operators to review.

use serde::Serialize;

use crate::config::{JobConfig, WorkerConfig};

#[derive(Debug, Serialize)]
pub struct CheckedJob<'a> {
    pub name: &'a str,
    pub provider: &'a str,
    pub upstream: &'a str,
    /// The pool whose members share this mirror; absent for the worker's own mirrors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<&'a str>,
    /// What members of a pool compare: the same on every worker defining the job the same.
    pub fingerprint: String,
    /// Where runs write (with `atomic_publish`, the staging copy).
    pub mirror_dir: String,
    /// With `atomic_publish`: the served tree a success swaps with `mirror_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_dir: Option<String>,
    pub log_dir: String,
    /// Minutes after a run ends until the next (unless `cron`).
    pub interval: u64,
    pub retry: u32,
    /// Seconds; 0 means no limit.
    pub timeout: u64,
    /// "every N minutes after the last run" or "cron: …", plus jitter.
    pub schedule: String,
    /// The zone cron times, the fixed-rate anchor and blackouts are read in.
    pub timezone: &'a str,
    /// Windows in which no run starts on its schedule.
    pub blackout: Vec<String>,
    /// 0..=100: the higher waiting job gets the next free slot.
    pub priority: u8,
    /// After a run that failed all its attempts, the first wait before it is tried again
    /// (doubling); absent: it waits for its schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_failure: Option<String>,
    /// The worker's limit on concurrent runs, shared by every job.
    pub concurrent: usize,
    pub role: &'static str,
    /// The exact command line of each stage (`argv` is the first, for one-stage providers).
    pub argv: &'a [String],
    pub stages: &'a [Vec<String>],
    pub env: Vec<String>,
    pub success_exit_codes: &'a [i32],
    pub docker_image: Option<&'a str>,
    pub memory_limit: Option<u64>,
    /// Probed before each run, with the fallbacks tried in order.
    pub check_upstream: bool,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub upstream_fallback: &'a [String],
    /// The least free space on `mirror_dir`'s filesystem for a run to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_min_free: Option<String>,
}

fn describe(job: &JobConfig) -> String {
    let rules = &job.schedule;
    let base = match (rules.cron(), rules.fixed_rate_anchor) {
        (Some(cron), _) => format!("cron: {cron}"),
        (None, Some(anchor)) => format!(
            "every {} minutes from {} (fixed rate)",
            rules.interval_minutes(),
            anchor.format("%H:%M")
        ),
        (None, None) => format!(
            "every {} minutes after the last run",
            rules.interval_minutes()
        ),
    };
    if rules.jitter.is_zero() {
        base
    } else {
        format!("{base}, plus up to {}s of jitter", rules.jitter.as_secs())
    }
}

/// The JSON array `--check` prints. Passwords in the environment are masked.
pub fn render(config: &WorkerConfig) -> String {
    let jobs: Vec<CheckedJob<'_>> = config
        .jobs
        .iter()
        .map(|job| CheckedJob {
            name: job.name.as_str(),
            provider: job.provider.as_str(),
            upstream: &job.upstream,
            pool: job.pool.as_ref().map(|pool| pool.as_str()),
            fingerprint: job.fingerprint(),
            mirror_dir: job.mirror_dir.display().to_string(),
            served_dir: job
                .publish
                .as_ref()
                .map(|publish| publish.served.display().to_string()),
            log_dir: job.log_dir.display().to_string(),
            interval: job.schedule.interval_minutes(),
            retry: job.retry,
            timeout: job.timeout_secs.unwrap_or(0),
            schedule: describe(job),
            timezone: job.schedule.zone.name(),
            blackout: job
                .schedule
                .blackouts
                .iter()
                .map(ToString::to_string)
                .collect(),
            priority: job.priority,
            retry_after_failure: job
                .schedule
                .retry_after_failure
                .map(|delay| humantime::format_duration(delay).to_string()),
            concurrent: config.concurrent,
            role: if job.is_master { "master" } else { "slave" },
            argv: job.stages.first().map(Vec::as_slice).unwrap_or_default(),
            stages: &job.stages,
            env: job
                .env
                .iter()
                .map(|(key, value)| {
                    if key.contains("PASSWORD") || key.contains("SECRET") || key.contains("TOKEN") {
                        format!("{key}=***")
                    } else {
                        format!("{key}={value}")
                    }
                })
                .collect(),
            success_exit_codes: &job.success_exit_codes,
            docker_image: job.docker.as_ref().map(|docker| docker.image.as_str()),
            memory_limit: job.memory_limit,
            disk_min_free: job.disk_min_free.map(|min| min.to_string()),
            check_upstream: job.check_upstream,
            upstream_fallback: &job.upstream_fallback,
        })
        .collect();
    serde_json::to_string_pretty(&jobs).unwrap_or_else(|_| "[]".to_owned())
}
