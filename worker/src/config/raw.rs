//! worker.conf as written: tunasync's keys (and ours), before defaults and inheritance.
//!
//! Every mirror key is optional here, so inheritance can tell "not set" from "set"; like
//! tunasync (mergo with override), a child's zero value (`false`, `0`, `""`, `[]`) does not
//! replace its parent's value.

use std::collections::BTreeMap;

use serde::Deserialize;
use tunasync_shared::broker::BrokerConfig;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawFile {
    pub global: RawGlobal,
    /// tunasync's HTTP-era sections: accepted, with a warning.
    pub manager: Option<toml::Table>,
    pub server: Option<toml::Table>,
    pub broker: Option<BrokerConfig>,
    pub cgroup: RawCgroup,
    pub zfs: RawZfs,
    pub btrfs_snapshot: RawBtrfs,
    pub docker: RawDocker,
    pub include: RawInclude,
    /// New: a local address serving `/healthz` and `/readyz` (no port unless set).
    pub health: RawHealth,
    pub mirrors: Vec<RawMirror>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawGlobal {
    pub name: String,
    pub log_dir: String,
    pub mirror_dir: String,
    pub concurrent: Option<i64>,
    pub interval: i64,
    pub retry: i64,
    pub timeout: i64,
    pub rsync_options: Vec<String>,
    pub exec_on_success: Vec<String>,
    pub exec_on_failure: Vec<String>,
    pub dangerous_global_success_exit_codes: Vec<i32>,
    pub dangerous_global_rsync_success_exit_codes: Vec<i32>,
    /// New: a 5-field cron expression for every mirror that has none of its own.
    pub cron: Option<String>,
    /// New: a random delay up to this long added to every scheduled run (e.g. "5m").
    pub jitter: Option<String>,
    /// New: the pool of workers every mirror without a pool of its own belongs to.
    pub pool: Option<String>,
    /// New: how often the worker tells the manager it is alive (default "10s").
    pub heartbeat_interval: Option<String>,
    /// New: at most this many runs against one upstream host at once.
    pub per_upstream_concurrent: BTreeMap<String, i64>,
    /// New: an IANA zone for cron, the fixed-rate anchor and blackouts (default: the
    /// host's).
    pub timezone: Option<String>,
    /// New: windows in which no run starts on its schedule, e.g. "08:00-18:00 Mon-Fri".
    pub blackout: Option<Vec<String>>,
    /// New: `interval` (from the end of a run, tunasync's rule) or `fixed-rate`.
    pub interval_mode: Option<String>,
    /// New: with `fixed-rate`, the time of day the intervals count from ("00:00").
    pub fixed_rate_anchor: Option<String>,
    /// New: 0..=100 (50): when slots are scarce, the higher waiting job starts first.
    pub priority: Option<i64>,
    /// New: after a run that failed all its attempts, try again this long after it.
    pub retry_after_failure: Option<String>,
    /// New: the least free space (`500G`, `10%`) on `mirror_dir`'s filesystem for a run.
    pub disk_min_free: Option<String>,
    /// New: runs sync into `staging_dir` and a success swaps it with `mirror_dir` at once.
    pub atomic_publish: Option<bool>,
    /// New: the staging copy's directory (in `[global]`: a root, the mirror's name added).
    pub staging_dir: Option<String>,
    /// New: other upstreams to use when the first does not answer (with `check_upstream`).
    pub upstream_fallback: Option<Vec<String>>,
    /// New: probe the upstreams before each run (default: on when there are fallbacks).
    pub check_upstream: Option<bool>,
    /// tunasync's unused legacy keys.
    pub status_file: Option<toml::Value>,
    pub token: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawHealth {
    pub addr: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCgroup {
    pub enable: bool,
    pub group: String,
    /// Ignored by tunasync too (legacy).
    pub base_path: Option<String>,
    pub subsystem: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawZfs {
    pub enable: bool,
    pub zpool: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBtrfs {
    pub enable: bool,
    pub snapshot_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDocker {
    pub enable: bool,
    pub volumes: Vec<String>,
    pub options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawInclude {
    pub include_mirrors: String,
}

/// A file named by `[include] include_mirrors`: only `[[mirrors]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIncluded {
    pub mirrors: Vec<RawMirror>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RawMirror {
    pub name: Option<String>,
    pub provider: Option<String>,
    pub upstream: Option<String>,
    pub interval: Option<i64>,
    pub retry: Option<i64>,
    pub timeout: Option<i64>,
    pub mirror_dir: Option<String>,
    pub mirror_subdir: Option<String>,
    pub log_dir: Option<String>,
    pub env: Option<BTreeMap<String, String>>,
    pub role: Option<String>,
    pub exec_on_success: Option<Vec<String>>,
    pub exec_on_failure: Option<Vec<String>>,
    pub exec_on_success_extra: Option<Vec<String>>,
    pub exec_on_failure_extra: Option<Vec<String>>,
    pub success_exit_codes: Option<Vec<i32>>,
    pub rsync_success_exit_codes: Option<Vec<i32>>,
    pub command: Option<String>,
    pub fail_on_match: Option<String>,
    pub size_pattern: Option<String>,
    pub use_ipv6: Option<bool>,
    pub use_ipv4: Option<bool>,
    pub exclude_file: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub rsync_no_timeout: Option<bool>,
    pub rsync_timeout: Option<i64>,
    pub rsync_options: Option<Vec<String>>,
    pub rsync_override: Option<Vec<String>>,
    pub rsync_override_only: Option<bool>,
    pub stage1_profile: Option<String>,
    pub memory_limit: Option<String>,
    pub docker_image: Option<String>,
    pub docker_volumes: Option<Vec<String>>,
    pub docker_options: Option<Vec<String>>,
    pub snapshot_path: Option<String>,
    /// New: a 5-field cron expression instead of `interval`.
    pub cron: Option<String>,
    /// New: a random delay up to this long added to each scheduled run.
    pub jitter: Option<String>,
    /// New: the pool of workers this mirror belongs to (any member may run it).
    pub pool: Option<String>,
    /// New: an IANA zone for cron, the fixed-rate anchor and blackouts (default: the
    /// host's).
    pub timezone: Option<String>,
    /// New: windows in which no run starts on its schedule, e.g. "08:00-18:00 Mon-Fri".
    pub blackout: Option<Vec<String>>,
    /// New: `interval` (from the end of a run, tunasync's rule) or `fixed-rate`.
    pub interval_mode: Option<String>,
    /// New: with `fixed-rate`, the time of day the intervals count from ("00:00").
    pub fixed_rate_anchor: Option<String>,
    /// New: 0..=100 (50): when slots are scarce, the higher waiting job starts first.
    pub priority: Option<i64>,
    /// New: after a run that failed all its attempts, try again this long after it.
    pub retry_after_failure: Option<String>,
    /// New: the least free space (`500G`, `10%`) on `mirror_dir`'s filesystem for a run.
    pub disk_min_free: Option<String>,
    /// New: runs sync into `staging_dir` and a success swaps it with `mirror_dir` at once.
    pub atomic_publish: Option<bool>,
    /// New: the staging copy's directory (in `[global]`: a root, the mirror's name added).
    pub staging_dir: Option<String>,
    /// New: other upstreams to use when the first does not answer (with `check_upstream`).
    pub upstream_fallback: Option<Vec<String>>,
    /// New: probe the upstreams before each run (default: on when there are fallbacks).
    pub check_upstream: Option<bool>,
    /// New: where users find the mirror (MirrorZ's `url`, also in tunasync.json). Not
    /// inherited.
    pub url: Option<String>,
    /// New: a line about the mirror (MirrorZ's `desc`). Not inherited.
    pub desc: Option<String>,
    pub mirrors: Vec<RawMirror>,
}

/// Whether a value counts as set for inheritance (Go's non-zero).
trait NonZero {
    fn is_set(&self) -> bool;
}

impl NonZero for String {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl NonZero for i64 {
    fn is_set(&self) -> bool {
        *self != 0
    }
}
impl NonZero for bool {
    fn is_set(&self) -> bool {
        *self
    }
}
impl<T> NonZero for Vec<T> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}

fn inherit<T: NonZero + Clone>(child: &mut Option<T>, parent: &Option<T>) {
    let child_set = child.as_ref().is_some_and(NonZero::is_set);
    if !child_set && let Some(value) = parent {
        *child = Some(value.clone());
    }
}

/// Takes the parent's value only when the child has none at all.
fn inherit_unset<T: Clone>(child: &mut Option<T>, parent: &Option<T>) {
    if child.is_none() {
        child.clone_from(parent);
    }
}

impl RawMirror {
    /// Fills what this mirror leaves unset (or zero) from its parent; `env` tables merge,
    /// the child's keys winning.
    pub fn inherit_from(&mut self, parent: &RawMirror) {
        inherit(&mut self.name, &parent.name);
        inherit(&mut self.provider, &parent.provider);
        inherit(&mut self.upstream, &parent.upstream);
        inherit(&mut self.interval, &parent.interval);
        inherit(&mut self.retry, &parent.retry);
        inherit(&mut self.timeout, &parent.timeout);
        inherit(&mut self.mirror_dir, &parent.mirror_dir);
        inherit(&mut self.mirror_subdir, &parent.mirror_subdir);
        inherit(&mut self.log_dir, &parent.log_dir);
        inherit(&mut self.role, &parent.role);
        inherit(&mut self.exec_on_success, &parent.exec_on_success);
        inherit(&mut self.exec_on_failure, &parent.exec_on_failure);
        inherit(
            &mut self.exec_on_success_extra,
            &parent.exec_on_success_extra,
        );
        inherit(
            &mut self.exec_on_failure_extra,
            &parent.exec_on_failure_extra,
        );
        inherit(&mut self.success_exit_codes, &parent.success_exit_codes);
        inherit(
            &mut self.rsync_success_exit_codes,
            &parent.rsync_success_exit_codes,
        );
        inherit(&mut self.command, &parent.command);
        inherit(&mut self.fail_on_match, &parent.fail_on_match);
        inherit(&mut self.size_pattern, &parent.size_pattern);
        inherit(&mut self.use_ipv6, &parent.use_ipv6);
        inherit(&mut self.use_ipv4, &parent.use_ipv4);
        inherit(&mut self.exclude_file, &parent.exclude_file);
        inherit(&mut self.username, &parent.username);
        inherit(&mut self.password, &parent.password);
        inherit(&mut self.rsync_no_timeout, &parent.rsync_no_timeout);
        inherit(&mut self.rsync_timeout, &parent.rsync_timeout);
        inherit(&mut self.rsync_options, &parent.rsync_options);
        inherit(&mut self.rsync_override, &parent.rsync_override);
        inherit(&mut self.rsync_override_only, &parent.rsync_override_only);
        inherit(&mut self.stage1_profile, &parent.stage1_profile);
        inherit(&mut self.memory_limit, &parent.memory_limit);
        inherit(&mut self.docker_image, &parent.docker_image);
        inherit(&mut self.docker_volumes, &parent.docker_volumes);
        inherit(&mut self.docker_options, &parent.docker_options);
        inherit(&mut self.snapshot_path, &parent.snapshot_path);
        inherit(&mut self.cron, &parent.cron);
        inherit(&mut self.jitter, &parent.jitter);
        inherit(&mut self.pool, &parent.pool);
        inherit(&mut self.timezone, &parent.timezone);
        inherit(&mut self.interval_mode, &parent.interval_mode);
        inherit(&mut self.fixed_rate_anchor, &parent.fixed_rate_anchor);
        inherit(&mut self.retry_after_failure, &parent.retry_after_failure);
        inherit(&mut self.disk_min_free, &parent.disk_min_free);
        inherit_unset(&mut self.atomic_publish, &parent.atomic_publish);
        inherit(&mut self.staging_dir, &parent.staging_dir);
        inherit_unset(&mut self.check_upstream, &parent.check_upstream);
        // 0 and an empty list are values of their own here.
        inherit_unset(&mut self.priority, &parent.priority);
        inherit_unset(&mut self.blackout, &parent.blackout);
        if let Some(parent_env) = &parent.env {
            let mut env = parent_env.clone();
            env.extend(self.env.take().unwrap_or_default());
            self.env = Some(env);
        }
    }
}
