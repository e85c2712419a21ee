//! Job processes a previous life of this worker left running (it was SIGKILLed, or its
//! host's OOM killer took it): each running job's process group is written down in its log
//! directory (`.tunasync-job.pid`: the leader's pid and its start time, so a recycled pid is
//! not mistaken for it), and at start-up, before any run, the worker ends the groups it
//! finds still running (SIGTERM, SIGKILL after the grace period). With `[cgroup]`, what is
//! left in a job's group is killed and the group removed too; with the docker hook, a
//! container `tunasync-job-<name>` still there is removed. (tunasync leaves such processes
//! and containers running: tunasync#213.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::config::JobConfig;
use crate::runner::{GRACE, signal_group};

/// The file name, in a job's log directory.
pub const PID_FILE: &str = ".tunasync-job.pid";

/// Where `job` writes down its running process group (none without a log directory).
pub fn pid_file(job: &JobConfig) -> Option<PathBuf> {
    (job.log_dir != Path::new("/dev/null")).then(|| job.log_dir.join(PID_FILE))
}

/// When process `pid` started (clock ticks after boot), from `/proc`.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Field 22 of the whole line is the 20th after the name (state is the 1st).
    let state = fields.first()?;
    if *state == "Z" {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Writes down the group led by `pid` (best effort: a log directory that cannot be written
/// only loses this safety net).
pub fn record(path: &Path, pid: u32) {
    let Some(started) = start_time(pid) else {
        return;
    };
    if let Err(err) = std::fs::write(path, format!("{pid} {started}\n")) {
        warn!(path = %path.display(), error = %err, "cannot write down the job's process group");
    }
}

pub fn clear(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// The group written down at `path`, if its leader still runs.
fn still_running(path: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut words = text.split_whitespace();
    let pid: u32 = words.next()?.parse().ok()?;
    let started: u64 = words.next()?.parse().ok()?;
    (start_time(pid) == Some(started)).then_some(pid)
}

/// Ends what previous lives left running for `jobs`; how many groups it ended.
pub async fn end_leftovers(jobs: &[JobConfig], cgroup: Option<&Path>) -> usize {
    let mut ended = 0;
    for job in jobs {
        if let Some(path) = pid_file(job) {
            if let Some(pid) = still_running(&path) {
                warn!(mirror = %job.name, pid, "a job process left by this worker's previous life still runs: ending it");
                signal_group(pid, libc::SIGTERM);
                let deadline = Instant::now() + GRACE;
                while start_time(pid).is_some() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                signal_group(pid, libc::SIGKILL);
                ended += 1;
            }
            clear(&path);
        }
        if job.docker.is_some() && crate::hooks::docker::end_leftover(job).await {
            ended += 1;
        }
        if let Some(base) = cgroup {
            let group = base.join(job.name.as_str());
            let procs = std::fs::read_to_string(group.join("cgroup.procs")).unwrap_or_default();
            if !procs.trim().is_empty() {
                warn!(mirror = %job.name, group = %group.display(), "processes left in the job's cgroup: killing them");
                ended += 1;
            }
            if group.exists()
                && let Err(err) = crate::hooks::cgroup::kill_and_remove(&group).await
            {
                warn!(mirror = %job.name, error = %err, "cannot clear the job's cgroup");
            }
        }
    }
    if ended > 0 {
        info!(ended, "ended what the worker's previous life left running");
    }
    ended
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_group_is_recognised_and_a_recycled_pid_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PID_FILE);
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("30")
            .spawn()
            .unwrap();
        record(&path, child.id());
        assert_eq!(still_running(&path), Some(child.id()));
        // The same pid with another start time: not ours.
        std::fs::write(&path, format!("{} 1\n", child.id())).unwrap();
        assert_eq!(still_running(&path), None);
        let _ = child.kill();
        let _ = child.wait();
        record(&path, child.id());
        assert!(
            std::fs::read_to_string(&path).unwrap().is_empty() || still_running(&path).is_none()
        );
    }
}
