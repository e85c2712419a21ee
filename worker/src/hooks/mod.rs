//! Hooks around each run, in tunasync's order.
//!
//! Added in this order: log limiter, ZFS, Btrfs, Docker (when enabled and the mirror has an
//! image) or cgroup, `exec_on_success`, `exec_on_success_extra`, `exec_on_failure`,
//! `exec_on_failure_extra`. `pre-job` and `pre-exec` run in that order; `post-exec`,
//! `post-success` and `post-fail` in reverse.

pub mod cgroup;
pub mod docker;
pub mod loglimit;
pub mod system;

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::config::{JobConfig, WorkerConfig};

/// Where the hooks keep what one attempt needs.
#[derive(Debug, Default)]
pub struct Attempt {
    /// The attempt's log file; `None`: output is discarded.
    pub log_file: Option<PathBuf>,
    /// The cgroup the job runs in.
    pub cgroup: Option<PathBuf>,
    /// The run this attempt belongs to (its log is found by it).
    pub run_id: uuid::Uuid,
}

impl Attempt {
    pub fn log_file_text(&self) -> String {
        self.log_file
            .as_ref()
            .map_or_else(|| "/dev/null".to_owned(), |path| path.display().to_string())
    }
}

/// The machine-wide settings hooks need (from the worker's config).
#[derive(Debug, Clone, Default)]
pub struct HookSettings {
    pub cgroup: Option<cgroup::CgroupBase>,
    pub zfs_pool: Option<String>,
    pub btrfs: bool,
}

impl HookSettings {
    pub fn from_config(config: &WorkerConfig, cgroup: Option<cgroup::CgroupBase>) -> Self {
        HookSettings {
            cgroup,
            zfs_pool: config.zfs.as_ref().map(|zfs| zfs.zpool.clone()),
            btrfs: config.btrfs,
        }
    }
}

/// One hook of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    LogLimiter,
    Zfs { pool: String },
    Btrfs,
    Docker,
    Cgroup,
    ExecOnSuccess(Vec<Vec<String>>),
    ExecOnFailure(Vec<Vec<String>>),
}

/// The phases a hook can fail in, as tunasync names them in `error exec hook <phase>: …`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    PreJob,
    PreExec,
    PostExec,
    PostSuccess,
    PostFail,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreJob => "pre-job",
            Phase::PreExec => "pre-exec",
            Phase::PostExec => "post-exec",
            Phase::PostSuccess => "post-success",
            Phase::PostFail => "post-fail",
        }
    }
}

/// The hooks of `job`, in tunasync's order.
pub fn hooks_for(job: &JobConfig, settings: &HookSettings) -> Vec<Hook> {
    let mut hooks = vec![Hook::LogLimiter];
    if let Some(pool) = &settings.zfs_pool {
        hooks.push(Hook::Zfs { pool: pool.clone() });
    }
    if settings.btrfs && job.snapshot_path.is_some() {
        hooks.push(Hook::Btrfs);
    }
    if job.docker.is_some() {
        hooks.push(Hook::Docker);
    } else if settings.cgroup.is_some() {
        hooks.push(Hook::Cgroup);
    }
    for (list, success) in [
        (&job.exec_on_success, true),
        (&job.exec_on_success_extra, true),
        (&job.exec_on_failure, false),
        (&job.exec_on_failure_extra, false),
    ] {
        if !list.is_empty() {
            hooks.push(if success {
                Hook::ExecOnSuccess(list.clone())
            } else {
                Hook::ExecOnFailure(list.clone())
            });
        }
    }
    hooks
}

/// The five `TUNASYNC_*` variables of a job's attempt.
pub fn tunasync_env(job: &JobConfig, attempt: &Attempt) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("TUNASYNC_MIRROR_NAME".to_owned(), job.name.to_string()),
        (
            "TUNASYNC_WORKING_DIR".to_owned(),
            job.mirror_dir.display().to_string(),
        ),
        ("TUNASYNC_UPSTREAM_URL".to_owned(), job.upstream.clone()),
        (
            "TUNASYNC_LOG_DIR".to_owned(),
            job.log_dir.display().to_string(),
        ),
        ("TUNASYNC_LOG_FILE".to_owned(), attempt.log_file_text()),
    ])
}

impl Hook {
    pub async fn pre_job(&self, job: &JobConfig) -> Result<(), String> {
        match self {
            Hook::Zfs { pool } => system::zfs_check(job, pool).await,
            Hook::Btrfs => system::btrfs_prepare(job).await,
            _ => Ok(()),
        }
    }

    pub async fn pre_exec(
        &self,
        job: &JobConfig,
        settings: &HookSettings,
        attempt: &mut Attempt,
    ) -> Result<(), String> {
        match self {
            Hook::LogLimiter => {
                if job.log_dir.as_os_str() == "/dev/null" {
                    attempt.log_file = None;
                    return Ok(());
                }
                let log_dir = job.log_dir.clone();
                let name = job.name.to_string();
                let run_id = attempt.run_id;
                let path = tokio::task::spawn_blocking(move || {
                    loglimit::start_attempt(&log_dir, &name, chrono::Local::now(), run_id)
                })
                .await
                .map_err(|err| err.to_string())?
                .map_err(|err| format!("log directory {}: {err}", job.log_dir.display()))?;
                attempt.log_file = Some(path);
                Ok(())
            }
            Hook::Docker => docker::prepare(job).await,
            Hook::Cgroup => match &settings.cgroup {
                Some(base) => {
                    attempt.cgroup = Some(cgroup::create_job_group(base, job)?);
                    Ok(())
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    pub async fn post_exec(&self, job: &JobConfig, attempt: &mut Attempt) -> Result<(), String> {
        match self {
            Hook::Docker => docker::check_removed(job).await,
            Hook::Cgroup => match attempt.cgroup.take() {
                Some(group) => cgroup::kill_and_remove(&group).await,
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    pub async fn post_success(&self, job: &JobConfig, attempt: &Attempt) -> Result<(), String> {
        match self {
            Hook::ExecOnSuccess(commands) => {
                system::run_exec_hooks(job, attempt, commands, "success").await
            }
            Hook::Btrfs => system::btrfs_snapshot(job).await,
            _ => Ok(()),
        }
    }

    pub async fn post_fail(&self, job: &JobConfig, attempt: &mut Attempt) -> Result<(), String> {
        match self {
            Hook::ExecOnFailure(commands) => {
                system::run_exec_hooks(job, attempt, commands, "failure").await
            }
            Hook::LogLimiter => {
                if let Some(log) = attempt.log_file.take() {
                    let run_id = attempt.run_id;
                    let failed =
                        tokio::task::spawn_blocking(move || loglimit::mark_failed(&log, run_id))
                            .await
                            .map_err(|err| err.to_string())?
                            .map_err(|err| format!("cannot mark the log failed: {err}"))?;
                    attempt.log_file = Some(failed);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_follow_tunasyncs_order() {
        let text = r#"
[broker]
url = "amqp://localhost"
[global]
name = "w"
log_dir = "/tmp/l/{{.Name}}"
mirror_dir = "/tmp/d"
exec_on_success = ["/bin/s"]
exec_on_failure = ["/bin/f"]
[docker]
enable = true
[[mirrors]]
name = "a"
provider = "command"
command = "true"
exec_on_success_extra = ["/bin/se"]
exec_on_failure_extra = ["/bin/fe"]
[[mirrors]]
name = "b"
provider = "command"
command = "true"
docker_image = "alpine"
"#;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.conf");
        std::fs::write(&path, text).unwrap();
        let config = WorkerConfig::load(&path).unwrap().config;
        let settings = HookSettings {
            cgroup: Some(cgroup::CgroupBase::for_tests("/sys/fs/cgroup/x")),
            zfs_pool: Some("tank".into()),
            btrfs: false,
        };
        let a = hooks_for(&config.jobs[0], &settings);
        assert_eq!(
            a,
            [
                Hook::LogLimiter,
                Hook::Zfs {
                    pool: "tank".into()
                },
                Hook::Cgroup,
                Hook::ExecOnSuccess(vec![vec!["/bin/s".into()]]),
                Hook::ExecOnSuccess(vec![vec!["/bin/se".into()]]),
                Hook::ExecOnFailure(vec![vec!["/bin/f".into()]]),
                Hook::ExecOnFailure(vec![vec!["/bin/fe".into()]]),
            ]
        );
        let b = hooks_for(&config.jobs[1], &settings);
        assert_eq!(
            b[2],
            Hook::Docker,
            "docker instead of cgroup when the mirror has an image"
        );
    }
}
