//! The cgroup hook: each run in a child group named after the mirror, with its memory
//! limit; afterwards every process left in it is killed and the group removed. cgroup v2
//! (the unified hierarchy) where the host mounts it, else cgroup v1's memory controller, as
//! tunasync supports both; picked from the host at start-up.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{CgroupSettings, JobConfig};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// cgroup v1's memory controller hierarchy.
const V1_MEMORY_ROOT: &str = "/sys/fs/cgroup/memory";

/// Which cgroup interface the host offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// The unified hierarchy: `memory.max`, `cgroup.kill`.
    V2,
    /// The memory controller's own hierarchy: `memory.limit_in_bytes`.
    V1,
}

/// The group under which job groups are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupBase {
    dir: PathBuf,
    version: CgroupVersion,
}

impl CgroupBase {
    pub fn for_tests(dir: &str) -> Self {
        CgroupBase {
            dir: PathBuf::from(dir),
            version: CgroupVersion::V2,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// Sets up the base group at start-up. Manual mode (`group` set): that group must exist
    /// and be writable. Implicit mode: the worker's own cgroup (with v2, its processes move
    /// to a `__worker` child so that job groups may have controllers: v2's rule).
    pub fn prepare(settings: &CgroupSettings) -> Result<CgroupBase, String> {
        if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
            return Self::prepare_v2(settings);
        }
        if Path::new(V1_MEMORY_ROOT).join("cgroup.procs").exists() {
            return Self::prepare_v1(settings);
        }
        Err(format!(
            "no cgroup v2 at {CGROUP_ROOT} and no cgroup v1 memory controller at {V1_MEMORY_ROOT}"
        ))
    }

    fn prepare_v2(settings: &CgroupSettings) -> Result<CgroupBase, String> {
        let dir = match &settings.group {
            Some(group) => usable(Path::new(CGROUP_ROOT), group)?,
            None => {
                let relative = own_group(|line| line.strip_prefix("0::"))
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
        Ok(CgroupBase {
            dir,
            version: CgroupVersion::V2,
        })
    }

    fn prepare_v1(settings: &CgroupSettings) -> Result<CgroupBase, String> {
        let root = Path::new(V1_MEMORY_ROOT);
        let dir = match &settings.group {
            Some(group) => usable(root, group)?,
            None => {
                // `4:memory:/some/group`: the line of the hierarchy with the memory controller.
                let relative = own_group(|line| {
                    let (_, rest) = line.split_once(':')?;
                    let (controllers, path) = rest.split_once(':')?;
                    controllers
                        .split(',')
                        .any(|c| c == "memory")
                        .then_some(path)
                })
                .ok_or("cannot find this process's cgroup v1 memory group")?;
                usable(root, Path::new(&relative))?
            }
        };
        Ok(CgroupBase {
            dir,
            version: CgroupVersion::V1,
        })
    }
}

/// This process's group, from the first line of `/proc/self/cgroup` that `pick` reads.
fn own_group(pick: impl Fn(&str) -> Option<&str>) -> Option<String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own.lines().find_map(|line| pick(line).map(str::to_owned))
}

/// `root`/`group`, once a child group could be made (and removed) in it.
fn usable(root: &Path, group: &Path) -> Result<PathBuf, String> {
    let relative = group.strip_prefix("/").unwrap_or(group);
    let dir = root.join(relative);
    let probe = dir.join("__test");
    std::fs::create_dir(&probe)
        .and_then(|()| std::fs::remove_dir(&probe))
        .map_err(|err| format!("cgroup {} is not usable: {err}", dir.display()))?;
    Ok(dir)
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
        let limit = bytes.to_string();
        let set = |file: &str| {
            std::fs::write(dir.join(file), &limit)
                .map_err(|err| format!("cannot set {file} of {}: {err}", dir.display()))
        };
        match base.version {
            CgroupVersion::V2 => set("memory.max")?,
            CgroupVersion::V1 => {
                set("memory.limit_in_bytes")?;
                // With swap accounting, memory and swap together: no way around the limit
                // by swapping (it may not be below memory.limit_in_bytes, set first).
                if dir.join("memory.memsw.limit_in_bytes").exists() {
                    set("memory.memsw.limit_in_bytes")?;
                }
            }
        }
    }
    Ok(dir)
}

/// Post-exec: SIGKILL whatever is left in the group (three rounds; `cgroup.kill` with v2,
/// each process of `cgroup.procs` with v1), then remove it.
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
