//! The Docker hook: the job runs in `docker run --rm --name tunasync-job-<name> …`.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::process::Command;
use tracing::warn;

use crate::config::JobConfig;

/// The container of a job.
pub fn container_name(job: &JobConfig) -> String {
    format!("tunasync-job-{}", job.name)
}

/// tunasync's `docker run` line around the provider's command.
pub fn wrap(
    job: &JobConfig,
    argv: &[String],
    env: &BTreeMap<String, String>,
    log_file: Option<&str>,
) -> Vec<String> {
    let Some(docker) = &job.docker else {
        return argv.to_vec();
    };
    // SAFETY: getuid/getgid cannot fail and touch no memory.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let workdir = job.mirror_dir.display().to_string();
    let mut line: Vec<String> = [
        "docker", "run", "--rm", "-a", "STDOUT", "-a", "STDERR", "--name",
    ]
    .iter()
    .map(|word| word.to_string())
    .collect();
    line.push(container_name(job));
    line.extend([
        "-w".to_owned(),
        workdir.clone(),
        "-u".to_owned(),
        format!("{uid}:{gid}"),
    ]);
    let mut volumes = docker.volumes.clone();
    if let Some(exclude) = &job.exclude_file {
        let exclude = exclude.display();
        volumes.push(format!("{exclude}:{exclude}:ro"));
    }
    let log_dir = job.log_dir.display().to_string();
    if log_dir != "/dev/null" {
        volumes.push(format!("{log_dir}:{log_dir}"));
    }
    if let Some(log_file) = log_file {
        volumes.push(format!("{log_file}:{log_file}"));
    }
    volumes.push(format!("{workdir}:{workdir}"));
    for volume in volumes {
        line.extend(["-v".to_owned(), volume]);
    }
    for (key, value) in env {
        line.extend(["-e".to_owned(), format!("{key}={value}")]);
    }
    if let Some(bytes) = job.memory_limit {
        line.extend(["-m".to_owned(), bytes.to_string()]);
    }
    line.extend(docker.options.iter().cloned());
    line.push(docker.image.clone());
    line.extend(argv.iter().cloned());
    line
}

/// Pre-exec: the working directory exists, and a container left by a killed worker (#213)
/// is removed, so the new one can take its name.
pub async fn prepare(job: &JobConfig) -> Result<(), String> {
    tokio::fs::create_dir_all(&job.mirror_dir)
        .await
        .map_err(|err| format!("cannot create {}: {err}", job.mirror_dir.display()))?;
    let _ = Command::new("docker")
        .args(["rm", "-f", &container_name(job)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    Ok(())
}

/// At start-up, before any run: removes the job's container if a previous life of the
/// worker left it (SIGKILLed while the job ran: `--rm` never came). Whether there was one.
/// Without a `docker` command (or a daemon) there is nothing to find.
pub async fn end_leftover(job: &JobConfig) -> bool {
    let name = container_name(job);
    let filter = format!("name=^{name}$");
    let found = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", &filter])
        .stderr(std::process::Stdio::null())
        .output()
        .await;
    let ids = match found {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        }
        _ => return false,
    };
    if ids.is_empty() {
        return false;
    }
    warn!(mirror = %job.name, container = %name, "a container left by this worker's previous life: removing it");
    let removed = Command::new("docker")
        .args(["rm", "-f", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
    if !matches!(removed, Ok(status) if status.success()) {
        warn!(mirror = %job.name, container = %name, "cannot remove the container; the job's next run removes it first");
    }
    true
}

/// Stops the job's container (stop and timeout), as tunasync's `docker stop -t 2`.
pub async fn stop(job: &JobConfig) {
    let _ = Command::new("docker")
        .args(["stop", "-t", "2", &container_name(job)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await;
}

/// Post-exec: waits up to 10 s for `--rm` to remove the container.
pub async fn check_removed(job: &JobConfig) -> Result<(), String> {
    let name = container_name(job);
    let filter = format!("name=^{name}$");
    for _ in 0..20 {
        let output = Command::new("docker")
            .args(["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"])
            .output()
            .await;
        match output {
            Ok(output)
                if output.status.success()
                    && String::from_utf8_lossy(&output.stdout).trim().is_empty() =>
            {
                return Ok(());
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            Err(_) => return Ok(()),
        }
    }
    warn!(container = %name, "container {name} not removed automatically, next sync may fail");
    Ok(())
}
