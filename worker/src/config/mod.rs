//! The worker's config: tunasync's `worker.conf`, read as it is, checked strictly.
//!
//! [`raw`] is the file as written; this module reads the files (includes, `[global]`, nested
//! mirrors) and `mirror` resolves each leaf mirror into a [`JobConfig`] with the exact
//! command line its provider will run. Every problem is collected (not just the first)
//! and names the file and the key.

mod fingerprint;
pub use fingerprint::FINGERPRINT_VERSION;
mod publish;
mod schedule;
mod stages;
pub use schedule::DEFAULT_PRIORITY;
pub use stages::{DEFAULT_RSYNC_TIMEOUT, RSYNC_DEFAULT_OPTIONS};
mod deployment;
mod mirror;
use mirror::{flatten, resolve_mirror};
pub mod raw;
pub mod units;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tunasync_shared::broker::{BrokerConfig, Deployment};
use tunasync_shared::names::{MirrorName, PoolName, WorkerId};
use tunasync_shared::schedule::Rules;
use tunasync_shared::wire::event::ProviderKind;

use raw::{RawFile, RawIncluded, RawMirror};

/// Concurrent jobs when `concurrent` is left out (tunasync's 0 would run nothing).
pub const DEFAULT_CONCURRENT: usize = 10;
/// Attempts per run when `retry` is left out (tunasync's default).
pub const DEFAULT_RETRY: u32 = 2;
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// The whole worker configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    pub file: PathBuf,
    pub name: WorkerId,
    pub concurrent: usize,
    /// `[global.per_upstream_concurrent]`: at most this many runs against a host at once
    /// (host names in lower case).
    pub per_upstream_concurrent: BTreeMap<String, usize>,
    pub heartbeat_interval: Duration,
    /// How this worker reaches the manager (which `load_as` was given).
    pub deployment: Deployment,
    /// `[broker]`: always there for [`Deployment::Cluster`], never for `Standalone`.
    pub broker: Option<BrokerConfig>,
    /// `[health] addr`: where `/healthz` and `/readyz` are served; none by default.
    pub health_addr: Option<SocketAddr>,
    pub cgroup: Option<CgroupSettings>,
    pub zfs: Option<ZfsSettings>,
    pub btrfs: bool,
    pub docker: bool,
    /// In file order: the main file's mirrors, then each included file's.
    pub jobs: Vec<JobConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CgroupSettings {
    /// An explicit group ("manual mode"), or `None` for the worker's own cgroup.
    pub group: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZfsSettings {
    pub zpool: String,
}

/// One job, resolved: everything the pipeline needs, nothing left to default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobConfig {
    pub name: MirrorName,
    pub provider: ProviderKind,
    pub upstream: String,
    pub is_master: bool,
    /// The pool of workers this mirror belongs to: any member may run it, and the manager
    /// schedules it. `None`: this worker's own mirror.
    pub pool: Option<PoolName>,
    /// When it runs: `interval` (minutes from the end of a run to the next, tunasync's rule)
    /// or `cron`, `jitter`, and the rules of `schedule.rs`.
    pub schedule: Rules,
    /// 0..=100: when slots are scarce, the higher waiting job starts first.
    pub priority: u8,
    /// Attempts per run.
    pub retry: u32,
    /// Seconds an attempt may take; `None`: no limit.
    pub timeout_secs: Option<u64>,
    /// The working directory (`mirror_dir`).
    pub mirror_dir: PathBuf,
    /// Where the run logs go; `/dev/null` means no log files.
    pub log_dir: PathBuf,
    /// The command line of each stage (two for two-stage rsync).
    pub stages: Vec<Vec<String>>,
    /// Environment added to the worker's own (`env`, plus `USER` / `RSYNC_PASSWORD`).
    pub env: BTreeMap<String, String>,
    /// Non-zero exit codes that count as success.
    pub success_exit_codes: Vec<i32>,
    pub size_pattern: Option<String>,
    pub fail_on_match: Option<String>,
    pub exec_on_success: Vec<Vec<String>>,
    pub exec_on_success_extra: Vec<Vec<String>>,
    pub exec_on_failure: Vec<Vec<String>>,
    pub exec_on_failure_extra: Vec<Vec<String>>,
    pub exclude_file: Option<PathBuf>,
    pub memory_limit: Option<u64>,
    /// Tried in order after `upstream` when the upstreams are probed (`check_upstream`).
    pub upstream_fallback: Vec<String>,
    /// Probe the upstreams before each run and use the first that answers.
    pub check_upstream: bool,
    /// `atomic_publish`: runs write to `mirror_dir` (the staging copy) and a success swaps
    /// it with the served tree.
    pub publish: Option<crate::publish::Publish>,
    /// A run is skipped (reported failed) while `mirror_dir`'s filesystem has less free.
    pub disk_min_free: Option<crate::disk::MinFree>,
    pub docker: Option<DockerJob>,
    /// Btrfs: where this mirror's snapshot goes (when `[btrfs_snapshot]` is enabled).
    pub snapshot_path: Option<PathBuf>,
    /// Where users find the mirror, and a line about it (for MirrorZ and tunasync.json).
    pub url: Option<String>,
    pub desc: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerJob {
    pub image: String,
    pub volumes: Vec<String>,
    pub options: Vec<String>,
}

/// One problem with the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Which key: e.g. `global.concurrent` or `mirrors.debian.upstream`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            )
        }
    }
}

/// Why a config cannot be used: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.iter().map(Problem::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

/// A loaded config and the warnings about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: WorkerConfig,
    pub warnings: Vec<String>,
}

struct Collector {
    problems: Vec<Problem>,
    warnings: Vec<String>,
}

impl Collector {
    fn problem(&mut self, file: &Path, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            file: file.to_owned(),
            key: key.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, file: &Path, message: impl std::fmt::Display) {
        self.warnings.push(format!("{}: {message}", file.display()));
    }
}

fn parse_toml<T: serde::de::DeserializeOwned + Default>(
    text: &str,
    file: &Path,
    collector: &mut Collector,
) -> Option<T> {
    let deserializer = match toml::Deserializer::parse(text) {
        Ok(deserializer) => deserializer,
        Err(err) => {
            collector.problem(file, "", err.to_string().trim_end().to_owned());
            return None;
        }
    };
    let mut unknown = Vec::new();
    let parsed = serde_ignored::deserialize(deserializer, |path| unknown.push(path.to_string()));
    match parsed {
        Ok(value) => {
            for key in unknown {
                collector.warn(file, format_args!("unknown key `{key}` ignored"));
            }
            Some(value)
        }
        Err(err) => {
            collector.problem(file, "", err.to_string().trim_end().to_owned());
            None
        }
    }
}

impl WorkerConfig {
    /// Reads and checks `file` and the files it includes, for a worker of a cluster.
    pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
        Self::load_as(file, Deployment::Cluster)
    }

    /// Reads and checks `file` and the files it includes, for `deployment`.
    pub fn load_as(file: &Path, deployment: Deployment) -> Result<Loaded, ConfigError> {
        let mut collector = Collector {
            problems: Vec::new(),
            warnings: Vec::new(),
        };
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(err) => {
                collector.problem(file, "", format!("cannot read the file: {err}"));
                return Err(ConfigError {
                    problems: collector.problems,
                });
            }
        };
        let config = Self::parse_collecting(&text, file, deployment, &mut collector);
        match config {
            Some(config) if collector.problems.is_empty() => Ok(Loaded {
                config,
                warnings: collector.warnings,
            }),
            _ => Err(ConfigError {
                problems: collector.problems,
            }),
        }
    }

    fn parse_collecting(
        text: &str,
        file: &Path,
        deployment: Deployment,
        collector: &mut Collector,
    ) -> Option<WorkerConfig> {
        let raw: RawFile = parse_toml(text, file, collector)?;
        let global = &raw.global;

        let name = match WorkerId::new(&global.name) {
            Ok(name) => Some(name),
            Err(err) => {
                collector.problem(file, "global.name", err.to_string());
                None
            }
        };
        let concurrent = match global.concurrent {
            None => DEFAULT_CONCURRENT,
            Some(n) if n >= 1 => usize::try_from(n).unwrap_or(DEFAULT_CONCURRENT),
            Some(n) => {
                collector.problem(
                    file,
                    "global.concurrent",
                    format!("{n} would never run a job: set at least 1, or leave it out for {DEFAULT_CONCURRENT}"),
                );
                DEFAULT_CONCURRENT
            }
        };
        let mut per_upstream_concurrent = BTreeMap::new();
        for (host, limit) in &global.per_upstream_concurrent {
            match usize::try_from(*limit) {
                Ok(limit) if limit >= 1 && !host.trim().is_empty() => {
                    per_upstream_concurrent.insert(host.trim().to_ascii_lowercase(), limit);
                }
                _ => collector.problem(
                    file,
                    format!("global.per_upstream_concurrent.{host}"),
                    format!("{limit} runs at once would never run a job against this host: set at least 1"),
                ),
            }
        }
        for (key, value) in [
            ("global.interval", global.interval),
            ("global.retry", global.retry),
            ("global.timeout", global.timeout),
        ] {
            if value < 0 {
                collector.problem(file, key, format!("{value} is negative"));
            }
        }
        let heartbeat_interval = match &global.heartbeat_interval {
            None => DEFAULT_HEARTBEAT,
            Some(text) => match humantime::parse_duration(text) {
                Ok(duration) if !duration.is_zero() => duration,
                _ => {
                    collector.problem(
                        file,
                        "global.heartbeat_interval",
                        format!("invalid duration {text:?}"),
                    );
                    DEFAULT_HEARTBEAT
                }
            },
        };
        let health_addr = raw
            .health
            .addr
            .as_ref()
            .and_then(|text| match text.parse() {
                Ok(addr) => Some(addr),
                Err(_) => {
                    collector.problem(
                        file,
                        "health.addr",
                        format!("{text:?} is not an address with a port (e.g. \"127.0.0.1:6001\")"),
                    );
                    None
                }
            });
        let ignored_manager = match deployment {
            Deployment::Cluster => {
                "[manager] is ignored: workers reach the manager through the broker ([broker])"
            }
            Deployment::Standalone => {
                "[manager] is ignored: in standalone mode the manager runs in this process"
            }
        };
        if raw.manager.is_some() {
            collector.warn(file, ignored_manager);
        }
        if raw.server.is_some() {
            collector.warn(
                file,
                "[server] is ignored: workers open no port; commands arrive through the broker",
            );
        }
        if global.status_file.is_some() || global.token.is_some() {
            collector.warn(
                file,
                "`global.status_file` / `global.token` are ignored (tunasync ignored them too)",
            );
        }
        if raw.cgroup.base_path.is_some() || raw.cgroup.subsystem.is_some() {
            collector.warn(
                file,
                "`cgroup.base_path` / `cgroup.subsystem` are ignored (legacy)",
            );
        }
        let broker = deployment::broker(deployment, raw.broker.clone(), file, collector);
        if raw.zfs.enable && raw.zfs.zpool.is_empty() {
            collector.problem(file, "zfs.zpool", "required when [zfs] is enabled");
        }
        if raw.btrfs_snapshot.enable && raw.btrfs_snapshot.snapshot_path.is_empty() {
            collector.problem(
                file,
                "btrfs_snapshot.snapshot_path",
                "required when [btrfs_snapshot] is enabled",
            );
        }

        // The main file's mirrors, then the included files' in glob order.
        let mut sources: Vec<(PathBuf, Vec<RawMirror>)> =
            vec![(file.to_owned(), raw.mirrors.clone())];
        if !raw.include.include_mirrors.is_empty() {
            let pattern = if Path::new(&raw.include.include_mirrors).is_absolute() {
                raw.include.include_mirrors.clone()
            } else {
                let base = file.parent().unwrap_or(Path::new("."));
                base.join(&raw.include.include_mirrors)
                    .display()
                    .to_string()
            };
            match glob::glob(&pattern) {
                Err(err) => collector.problem(
                    file,
                    "include.include_mirrors",
                    format!("invalid glob: {err}"),
                ),
                Ok(paths) => {
                    let mut paths: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
                    paths.sort();
                    for path in paths {
                        match std::fs::read_to_string(&path) {
                            Ok(text) => {
                                if let Some(included) =
                                    parse_toml::<RawIncluded>(&text, &path, collector)
                                {
                                    sources.push((path, included.mirrors));
                                }
                            }
                            Err(err) => collector.problem(
                                &path,
                                "",
                                format!("cannot read the included file: {err}"),
                            ),
                        }
                    }
                }
            }
        }

        let mut jobs = Vec::new();
        let mut seen = BTreeSet::new();
        for (source, mirrors) in &sources {
            let mut leaves = Vec::new();
            for mirror in mirrors {
                flatten(mirror.clone(), &mut leaves);
            }
            for (idx, leaf) in leaves.into_iter().enumerate() {
                if let Some(job) = resolve_mirror(&leaf, idx, global, &raw, source, collector) {
                    if !seen.insert(job.name.clone()) {
                        collector.problem(
                            source,
                            format!("mirrors.{}", job.name),
                            "a mirror of this name is defined twice",
                        );
                        continue;
                    }
                    jobs.push(job);
                }
            }
        }

        Some(WorkerConfig {
            file: file.to_owned(),
            name: name?,
            concurrent,
            per_upstream_concurrent,
            heartbeat_interval,
            deployment,
            broker: broker?,
            health_addr,
            cgroup: raw.cgroup.enable.then(|| CgroupSettings {
                group: (!raw.cgroup.group.is_empty()).then(|| PathBuf::from(&raw.cgroup.group)),
            }),
            zfs: raw.zfs.enable.then(|| ZfsSettings {
                zpool: raw.zfs.zpool.clone(),
            }),
            btrfs: raw.btrfs_snapshot.enable,
            docker: raw.docker.enable,
            jobs,
        })
    }

    pub fn job(&self, name: &MirrorName) -> Option<&JobConfig> {
        self.jobs.iter().find(|job| &job.name == name)
    }
}

#[cfg(test)]
mod tests;
