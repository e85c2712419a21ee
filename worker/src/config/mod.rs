//! The worker's config: tunasync's `worker.conf`, read as it is, checked strictly.
//!
//! [`raw`] is the file as written; this module applies tunasync's defaults, nested-mirror
//! inheritance and includes, and resolves each leaf mirror into a [`JobConfig`] with the
//! exact command line its provider will run. Every problem is collected (not just the first)
//! and names the file and the key.

mod fingerprint;
pub use fingerprint::FINGERPRINT_VERSION;
mod publish;
mod schedule;
mod stages;
pub use schedule::DEFAULT_PRIORITY;
use stages::split_command;
pub use stages::{DEFAULT_RSYNC_TIMEOUT, RSYNC_DEFAULT_OPTIONS};
mod deployment;
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

use raw::{RawFile, RawGlobal, RawIncluded, RawMirror};
use units::{TemplateFields, memory_bytes, render_template};

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

/// Leaves of a mirror tree, each with what it inherits from its ancestors.
fn flatten(mirror: RawMirror, leaves: &mut Vec<RawMirror>) {
    if mirror.mirrors.is_empty() {
        leaves.push(mirror);
        return;
    }
    let mut parent = mirror;
    let children = std::mem::take(&mut parent.mirrors);
    for mut child in children {
        child.inherit_from(&parent);
        flatten(child, leaves);
    }
}

fn merge_codes(lists: &[&[i32]]) -> Vec<i32> {
    let mut merged = Vec::new();
    for code in lists.iter().flat_map(|list| list.iter()) {
        if !merged.contains(code) {
            merged.push(*code);
        }
    }
    merged
}

fn resolve_mirror(
    mirror: &RawMirror,
    idx: usize,
    global: &RawGlobal,
    raw: &RawFile,
    file: &Path,
    collector: &mut Collector,
) -> Option<JobConfig> {
    let shown_name = mirror
        .name
        .clone()
        .unwrap_or_else(|| format!("#{}", idx + 1));
    let key = |field: &str| format!("mirrors.{shown_name}.{field}");
    let n_problems = collector.problems.len();

    let name = match MirrorName::new(mirror.name.clone().unwrap_or_default()) {
        Ok(name) => Some(name),
        Err(err) => {
            collector.problem(file, key("name"), err.to_string());
            None
        }
    };
    let provider = match mirror.provider.as_deref().unwrap_or("") {
        "" | "rsync" => ProviderKind::Rsync,
        "two-stage-rsync" => ProviderKind::TwoStageRsync,
        "command" => ProviderKind::Command,
        other => {
            collector.problem(
                file,
                key("provider"),
                format!("unknown provider {other:?}: use rsync, two-stage-rsync or command"),
            );
            ProviderKind::Rsync
        }
    };
    let is_rsync = provider != ProviderKind::Command;
    let upstream_fallback: Vec<String> = mirror
        .upstream_fallback
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|fallback| !fallback.trim().is_empty())
        .collect();
    for fallback in &upstream_fallback {
        if is_rsync && !fallback.ends_with('/') {
            collector.problem(
                file,
                key("upstream_fallback"),
                format!("{fallback:?} must end with '/' for rsync providers"),
            );
        }
    }
    let check_upstream = mirror
        .check_upstream
        .or(global.check_upstream)
        .unwrap_or(!upstream_fallback.is_empty());
    if !check_upstream && !upstream_fallback.is_empty() {
        collector.problem(
            file,
            key("check_upstream"),
            "upstream_fallback is used only when the upstreams are probed: leave check_upstream out or set it true",
        );
    }
    let upstream = mirror.upstream.clone().unwrap_or_default();
    if is_rsync && !upstream.ends_with('/') {
        collector.problem(
            file,
            key("upstream"),
            format!("{upstream:?} must end with '/' for rsync providers"),
        );
    }
    let is_master = match mirror.role.as_deref() {
        None | Some("") | Some("master") => true,
        Some("slave") => false,
        Some(other) => {
            collector.warn(
                file,
                format_args!(
                    "`{}`: unknown role {other:?}, counted as master",
                    key("role")
                ),
            );
            true
        }
    };

    let non_negative = |value: Option<i64>, field: &str, collector: &mut Collector| -> u64 {
        match value {
            Some(value) if value < 0 => {
                collector.problem(file, key(field), format!("{value} is negative"));
                0
            }
            Some(value) => value as u64,
            None => 0,
        }
    };
    let interval = match non_negative(mirror.interval, "interval", collector) {
        0 => global.interval.max(0) as u64,
        n => n,
    };
    let retry = match non_negative(mirror.retry, "retry", collector) {
        0 => match global.retry {
            n if n > 0 => u32::try_from(n).unwrap_or(DEFAULT_RETRY),
            _ => DEFAULT_RETRY,
        },
        n => u32::try_from(n).unwrap_or(DEFAULT_RETRY),
    };
    let timeout = match non_negative(mirror.timeout, "timeout", collector) {
        0 => global.timeout.max(0) as u64,
        n => n,
    };

    let (schedule, priority) = schedule::resolve(mirror, global, interval, file, &key, collector);

    let pool = match (mirror.pool.as_deref(), global.pool.as_deref()) {
        (Some(text), _) if !text.is_empty() => Some((text, key("pool"))),
        (_, Some(text)) if !text.is_empty() => Some((text, "global.pool".to_owned())),
        _ => None,
    };
    let pool = pool.and_then(|(text, at)| match PoolName::new(text) {
        Ok(pool) => Some(pool),
        Err(err) => {
            collector.problem(file, at, err.to_string());
            None
        }
    });

    let name_text = name
        .as_ref()
        .map_or(shown_name.as_str(), MirrorName::as_str);
    let mirror_dir = match mirror.mirror_dir.as_deref().filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let mut dir = PathBuf::from(&global.mirror_dir);
            if let Some(subdir) = mirror
                .mirror_subdir
                .as_deref()
                .filter(|dir| !dir.is_empty())
            {
                dir.push(subdir);
            }
            dir.push(name_text);
            dir
        }
    };
    if !mirror_dir.is_absolute() {
        collector.problem(
            file,
            key("mirror_dir"),
            format!(
                "{} is not absolute: set global.mirror_dir or the mirror's mirror_dir",
                mirror_dir.display()
            ),
        );
    }
    // With atomic_publish, runs write to the staging copy and mirror_dir is what is served.
    let (mirror_dir, publish) =
        publish::resolve(mirror, global, name_text, mirror_dir, file, &key, collector);
    let log_template = mirror
        .log_dir
        .as_deref()
        .filter(|dir| !dir.is_empty())
        .unwrap_or(&global.log_dir);
    let fields = TemplateFields {
        name: name_text,
        provider: provider.as_str(),
        upstream: &upstream,
    };
    let log_dir = match render_template(log_template, &fields) {
        Ok(dir) if dir.is_empty() => {
            collector.problem(
                file,
                key("log_dir"),
                "no log_dir: set global.log_dir (or \"/dev/null\" for no logs)",
            );
            PathBuf::new()
        }
        Ok(dir) => PathBuf::from(dir),
        Err(err) => {
            collector.problem(file, key("log_dir"), err);
            PathBuf::new()
        }
    };

    for (field, pattern) in [
        ("size_pattern", &mirror.size_pattern),
        ("fail_on_match", &mirror.fail_on_match),
    ] {
        if let Some(pattern) = pattern
            && let Err(err) = regex_lite::Regex::new(pattern)
        {
            let reason = err.to_string();
            let reason = reason
                .lines()
                .last()
                .unwrap_or_default()
                .trim_start_matches("error: ")
                .to_owned();
            collector.problem(
                file,
                key(field),
                format!("invalid regular expression {pattern:?}: {reason}"),
            );
        }
    }
    if !is_rsync
        && mirror
            .rsync_success_exit_codes
            .as_ref()
            .is_some_and(|codes| !codes.is_empty())
    {
        collector.warn(
            file,
            format_args!(
                "`{}` is ignored for the command provider",
                key("rsync_success_exit_codes")
            ),
        );
    }
    let success_exit_codes = if is_rsync {
        merge_codes(&[
            &global.dangerous_global_success_exit_codes,
            mirror.success_exit_codes.as_deref().unwrap_or_default(),
            &global.dangerous_global_rsync_success_exit_codes,
            mirror
                .rsync_success_exit_codes
                .as_deref()
                .unwrap_or_default(),
        ])
    } else {
        merge_codes(&[
            &global.dangerous_global_success_exit_codes,
            mirror.success_exit_codes.as_deref().unwrap_or_default(),
        ])
    };

    let commands = |field: &str, list: &[String], collector: &mut Collector| -> Vec<Vec<String>> {
        list.iter()
            .filter_map(|text| {
                let words = split_command(text);
                if words.is_none() {
                    collector.problem(
                        file,
                        key(field),
                        format!("cannot split the command {text:?}"),
                    );
                }
                words
            })
            .collect()
    };
    let exec_on_success = match mirror
        .exec_on_success
        .as_deref()
        .filter(|list| !list.is_empty())
    {
        Some(list) => commands("exec_on_success", list, collector),
        None => commands("exec_on_success", &global.exec_on_success, collector),
    };
    let exec_on_failure = match mirror
        .exec_on_failure
        .as_deref()
        .filter(|list| !list.is_empty())
    {
        Some(list) => commands("exec_on_failure", list, collector),
        None => commands("exec_on_failure", &global.exec_on_failure, collector),
    };
    let exec_on_success_extra = commands(
        "exec_on_success_extra",
        mirror.exec_on_success_extra.as_deref().unwrap_or_default(),
        collector,
    );
    let exec_on_failure_extra = commands(
        "exec_on_failure_extra",
        mirror.exec_on_failure_extra.as_deref().unwrap_or_default(),
        collector,
    );

    let memory_limit = match mirror
        .memory_limit
        .as_deref()
        .filter(|text| !text.is_empty())
    {
        Some(text) => match memory_bytes(text) {
            Ok(bytes) => Some(bytes),
            Err(err) => {
                collector.problem(file, key("memory_limit"), err);
                None
            }
        },
        None => None,
    };
    let disk_min_free = match mirror
        .disk_min_free
        .as_deref()
        .or(global.disk_min_free.as_deref())
        .filter(|text| !text.trim().is_empty())
    {
        Some(text) => match crate::disk::MinFree::parse(text) {
            Ok(min) => Some(min),
            Err(err) => {
                collector.problem(file, key("disk_min_free"), err);
                None
            }
        },
        None => None,
    };
    let exclude_file = mirror
        .exclude_file
        .as_deref()
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);

    let (stages, env) = stages::build(
        mirror,
        global,
        provider,
        &upstream,
        &mirror_dir,
        exclude_file.as_deref(),
        file,
        &key,
        collector,
    );

    let docker = match mirror
        .docker_image
        .as_deref()
        .filter(|image| !image.is_empty())
    {
        Some(image) if raw.docker.enable => {
            let mut volumes = raw.docker.volumes.clone();
            volumes.extend(mirror.docker_volumes.clone().unwrap_or_default());
            let mut options = raw.docker.options.clone();
            options.extend(mirror.docker_options.clone().unwrap_or_default());
            Some(DockerJob {
                image: image.to_owned(),
                volumes,
                options,
            })
        }
        _ => None,
    };
    let snapshot_path = raw.btrfs_snapshot.enable.then(|| {
        mirror
            .snapshot_path
            .as_deref()
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(&raw.btrfs_snapshot.snapshot_path).join(name_text))
    });

    if collector.problems.len() > n_problems {
        return None;
    }
    Some(JobConfig {
        name: name?,
        provider,
        upstream,
        is_master,
        pool,
        schedule,
        priority,
        retry,
        timeout_secs: (timeout > 0).then_some(timeout),
        mirror_dir,
        log_dir,
        stages,
        env,
        success_exit_codes,
        size_pattern: mirror
            .size_pattern
            .clone()
            .filter(|pattern| !pattern.is_empty()),
        fail_on_match: mirror
            .fail_on_match
            .clone()
            .filter(|pattern| !pattern.is_empty()),
        exec_on_success,
        exec_on_success_extra,
        exec_on_failure,
        exec_on_failure_extra,
        exclude_file,
        memory_limit,
        disk_min_free,
        publish,
        upstream_fallback,
        check_upstream,
        docker,
        snapshot_path,
        url: mirror.url.clone().filter(|url| !url.trim().is_empty()),
        desc: mirror.desc.clone().filter(|desc| !desc.trim().is_empty()),
    })
}

#[cfg(test)]
mod tests;
