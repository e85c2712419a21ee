//! The cgroup hook (cgroup v2): each run in a child group named after the mirror, with its
//! memory limit; afterwards every process left in it is killed and the group removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{CgroupSettings, JobConfig};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The group under which job groups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupBase {
    dir: PathBuf,
}

impl CgroupBase {
    pub fn for_tests(dir: &str) -> Self {
        CgroupBase {
            dir: PathBuf::from(dir),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sets up the base group at start-up. Manual mode (`group` set): that group must exist
    /// and be writable. Implicit mode: the worker's own cgroup, whose processes move to a
    /// `__worker` child so that job groups may have controllers (cgroup v2's rule).
    pub fn prepare(settings: &CgroupSettings) -> Result<CgroupBase, String> {
        if !Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
            return Err(
                "cgroup v2 is not mounted at /sys/fs/cgroup (cgroup v1 is not supported)"
                    .to_owned(),
            );
        }
        let dir = match &settings.group {
            Some(group) => {
                let relative = group.strip_prefix("/").unwrap_or(group);
                let dir = Path::new(CGROUP_ROOT).join(relative);
                let probe = dir.join("__test");
                std::fs::create_dir(&probe)
                    .and_then(|()| std::fs::remove_dir(&probe))
                    .map_err(|err| format!("cgroup {} is not usable: {err}", dir.display()))?;
                dir
            }
            None => {
                let own =
                    std::fs::read_to_string("/proc/self/cgroup").map_err(|err| err.to_string())?;
                let relative = own
                    .lines()
                    .find_map(|line| line.strip_prefix("0::"))
                    .ok_or("cannot find this process's cgroup v2 group")?;
                let dir = Path::new(CGROUP_ROOT).join(relative.trim_start_matches('/'));
                let worker = dir.join("__worker");
                std::fs::create_dir_all(&worker)
                    .map_err(|err| format!("cannot create {}: {err}", worker.display()))?;
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines() {
                    let _ = std::fs::write(worker.join("cgroup.procs"), pid);
                }
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+memory");
                dir
            }
        };
        Ok(CgroupBase { dir })
    }
}

/// Pre-exec: the job's group, with `memory.max` when the mirror has a `memory_limit`.
pub fn create_job_group(base: &CgroupBase, job: &JobConfig) -> Result<PathBuf, String> {
    let dir = base.dir.join(job.name.as_str());
    if let Err(err) = std::fs::create_dir(&dir)
        && err.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Err(format!("cannot create cgroup {}: {err}", dir.display()));
    }
    if let Some(bytes) = job.memory_limit {
        std::fs::write(dir.join("memory.max"), bytes.to_string())
            .map_err(|err| format!("cannot set memory.max of {}: {err}", dir.display()))?;
    }
    Ok(dir)
}

/// Post-exec: SIGKILL whatever is left in the group (three rounds), then remove it.
pub async fn kill_and_remove(group: &Path) -> Result<(), String> {
    for delay in [
        Duration::from_millis(10),
        Duration::from_secs(1),
        Duration::from_secs(2),
    ] {
        if std::fs::write(group.join("cgroup.kill"), "1").is_err() {
            let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
            for pid in procs
                .lines()
                .filter_map(|pid| pid.trim().parse::<libc::pid_t>().ok())
            {
                // SAFETY: kill(2) on a pid read from the group; no memory is involved.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        tokio::time::sleep(delay).await;
        let left = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
        if left.trim().is_empty() {
            return std::fs::remove_dir(group)
                .map_err(|err| format!("cannot remove cgroup {}: {err}", group.display()));
        }
    }
    Err("Unable to kill all child tasks".to_owned())
}
