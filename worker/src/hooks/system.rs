//! Hooks that call out to the system: exec_on_success / exec_on_failure, ZFS, Btrfs.

use std::path::Path;

use tokio::process::Command;
use tracing::{debug, info};

use super::{Attempt, tunasync_env};
use crate::config::JobConfig;

/// Runs each command of an exec hook with the `TUNASYNC_*` variables and
/// `TUNASYNC_JOB_EXIT_STATUS`, in the worker's own working directory (as tunasync).
pub async fn run_exec_hooks(
    job: &JobConfig,
    attempt: &Attempt,
    commands: &[Vec<String>],
    status: &str,
) -> Result<(), String> {
    for argv in commands {
        let Some((program, args)) = argv.split_first() else {
            continue;
        };
        let mut command = Command::new(program);
        for name in crate::runner::SERVICE_MANAGER_ENV {
            command.env_remove(name);
        }
        let output = command
            .args(args)
            .envs(tunasync_env(job, attempt))
            .env("TUNASYNC_JOB_EXIT_STATUS", status)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|err| format!("{program}: {err}"))?;
        debug!(mirror = %job.name, ?argv, stdout = %String::from_utf8_lossy(&output.stdout), "exec hook ran");
        if !output.status.success() {
            return Err(format!("{}: {}", argv.join(" "), exit_text(output.status)));
        }
    }
    Ok(())
}

/// Go's `exec.ExitError` text: `exit status N` or `signal: killed`.
pub fn exit_text(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal: {}", signal_name(signal)),
        (None, None) => "exit status unknown".to_owned(),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "killed",
        libc::SIGTERM => "terminated",
        libc::SIGINT => "interrupt",
        libc::SIGHUP => "hangup",
        libc::SIGSEGV => "segmentation fault",
        libc::SIGPIPE => "broken pipe",
        libc::SIGABRT => "aborted",
        _ => "signal",
    }
}

/// Whether `dir` is a mount point (its device differs from its parent's, or it is `/`).
pub fn is_mount_point(dir: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir)?;
    let Some(parent) = dir.parent() else {
        return Ok(true);
    };
    let parent_meta = std::fs::metadata(if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    })?;
    Ok(meta.dev() != parent_meta.dev() || meta.ino() == parent_meta.ino())
}

/// ZFS pre-job: the working directory must be a mounted dataset; we never create one.
pub async fn zfs_check(job: &JobConfig, pool: &str) -> Result<(), String> {
    let dir = job.mirror_dir.clone();
    let mounted = tokio::task::spawn_blocking(move || is_mount_point(&dir))
        .await
        .map_err(|err| err.to_string())?;
    let dataset = format!("{pool}/{}", job.name).to_lowercase();
    match mounted {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => {
            info!(mirror = %job.name, "ZFS: {} is not a mounted dataset", job.mirror_dir.display());
            Err(format!(
                "{} is not a mount point: create it with `zfs create -o mountpoint={} {dataset}`",
                job.mirror_dir.display(),
                job.mirror_dir.display()
            ))
        }
    }
}

async fn btrfs(args: &[&str]) -> Result<(), String> {
    let output = Command::new("btrfs")
        .args(args)
        .output()
        .await
        .map_err(|err| format!("btrfs {}: {err}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "btrfs {}: {}: {}",
            args.join(" "),
            exit_text(output.status),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Btrfs pre-job: the working directory is a subvolume (created when missing).
pub async fn btrfs_prepare(job: &JobConfig) -> Result<(), String> {
    let dir = job.mirror_dir.display().to_string();
    if job.mirror_dir.exists() {
        btrfs(&["subvolume", "show", &dir])
            .await
            .map_err(|err| format!("{dir} exists but is not a Btrfs subvolume ({err})"))
    } else {
        btrfs(&["subvolume", "create", &dir]).await
    }
}

/// Btrfs post-success: replace the mirror's snapshot with a new one.
pub async fn btrfs_snapshot(job: &JobConfig) -> Result<(), String> {
    let Some(snapshot) = &job.snapshot_path else {
        return Ok(());
    };
    let snapshot = snapshot.display().to_string();
    if Path::new(&snapshot).exists() {
        btrfs(&["subvolume", "delete", &snapshot]).await?;
    }
    btrfs(&[
        "subvolume",
        "snapshot",
        &job.mirror_dir.display().to_string(),
        &snapshot,
    ])
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points() {
        assert!(is_mount_point(Path::new("/")).unwrap());
        assert!(is_mount_point(Path::new("/proc")).unwrap());
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()).unwrap());
        assert!(is_mount_point(&dir.path().join("missing")).is_err());
    }
}
