//! Running a command in its own process group, with its output in a log file, a timeout and
//! a kill switch; stopping it means SIGTERM to the whole group, then SIGKILL after a grace
//! period, so no grandchild (rsync's ssh, a script's children) survives.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// Between SIGTERM and SIGKILL (tunasync's 2 s).
pub const GRACE: Duration = Duration::from_secs(2);

/// Where a command's stdout and stderr go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Nowhere (`log_dir = "/dev/null"`).
    Discard,
    /// A file, truncated first.
    Truncate(PathBuf),
    /// A file, appended to (stage 2 of two-stage rsync).
    Append(PathBuf),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    /// Added to the worker's own environment; these win.
    pub env: BTreeMap<String, String>,
    pub output: Output,
    /// A cgroup directory the child joins before it runs anything.
    pub cgroup: Option<PathBuf>,
    /// Where the child's process group is written down while it runs (see
    /// `leftovers.rs`).
    pub pid_file: Option<PathBuf>,
}

/// How a run ended.
#[derive(Debug)]
pub enum Ending {
    Exited(ExitStatus),
    TimedOut(Duration),
    Killed,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("empty command line")]
    Empty,
    #[error("cannot open the log file {path}")]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for the command")]
    Wait(#[source] std::io::Error),
}

fn open_output(output: &Output) -> Result<(Stdio, Stdio), RunError> {
    let open = |path: &Path, append: bool| -> Result<File, RunError> {
        let mut options = OpenOptions::new();
        options.create(true).write(true);
        if append {
            options.append(true);
        } else {
            options.truncate(true);
        }
        options.open(path).map_err(|source| RunError::Log {
            path: path.to_owned(),
            source,
        })
    };
    let file = match output {
        Output::Discard => return Ok((Stdio::null(), Stdio::null())),
        Output::Truncate(path) => open(path, false)?,
        Output::Append(path) => open(path, true)?,
    };
    let second = file.try_clone().map_err(|source| RunError::Log {
        path: PathBuf::from("(log file)"),
        source,
    })?;
    Ok((Stdio::from(file), Stdio::from(second)))
}

/// Sends `signal` to every process of the group led by `pgid`.
pub fn signal_group(pgid: u32, signal: i32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// The service manager's variables (systemd's `Type=notify` socket and watchdog): they are
/// the daemon's, and a job that inherited them could speak for it.
pub const SERVICE_MANAGER_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Runs `spec` until it exits, `timeout` passes or `kill` is cancelled.
pub async fn run(
    spec: &Spec,
    timeout: Option<Duration>,
    kill: &CancellationToken,
) -> Result<Ending, RunError> {
    let (program, args) = spec.argv.split_first().ok_or(RunError::Empty)?;
    let (stdout, stderr) = open_output(&spec.output)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0)
        .kill_on_drop(true);
    for name in SERVICE_MANAGER_ENV {
        command.env_remove(name);
    }
    if let Some(cgroup) = &spec.cgroup {
        join_cgroup_before_exec(&mut command, cgroup)?;
    }
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pgid = child.id().unwrap_or(0);
    debug!(pid = pgid, argv = ?spec.argv, "started");
    if let Some(path) = &spec.pid_file {
        crate::leftovers::record(path, pgid);
    }
    let ending = wait_or_stop(&mut child, pgid, timeout, kill).await;
    if let Some(path) = &spec.pid_file {
        crate::leftovers::clear(path);
    }
    ending
}

async fn wait_or_stop(
    child: &mut tokio::process::Child,
    pgid: u32,
    timeout: Option<Duration>,
    kill: &CancellationToken,
) -> Result<Ending, RunError> {
    let sleep = async {
        match timeout {
            Some(timeout) => tokio::time::sleep(timeout).await,
            None => std::future::pending().await,
        }
    };
    let ending = tokio::select! {
        status = child.wait() => return status.map(Ending::Exited).map_err(RunError::Wait),
        () = sleep => Ending::TimedOut(timeout.unwrap_or_default()),
        () = kill.cancelled() => Ending::Killed,
    };
    terminate(child, pgid).await;
    Ok(ending)
}

/// SIGTERM to the group; SIGKILL to the group after [`GRACE`]; reap the child.
async fn terminate(child: &mut tokio::process::Child, pgid: u32) {
    signal_group(pgid, libc::SIGTERM);
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(_) => {
            // The leader is gone; members that ignored SIGTERM still get SIGKILL.
            signal_group(pgid, libc::SIGKILL);
        }
        Err(_) => {
            warn!(pid = pgid, "still running {GRACE:?} after SIGTERM: SIGKILL");
            signal_group(pgid, libc::SIGKILL);
            let _ = child.wait().await;
        }
    }
}

fn join_cgroup_before_exec(command: &mut Command, cgroup: &Path) -> Result<(), RunError> {
    use std::os::unix::ffi::OsStrExt;
    let procs = cgroup.join("cgroup.procs");
    let path =
        std::ffi::CString::new(procs.as_os_str().as_bytes()).map_err(|_| RunError::Spawn {
            program: "cgroup".into(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "cgroup path holds a NUL byte",
            ),
        })?;
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (open, write, close) on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // "0" means the writing process itself.
            let written = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if written != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, output: Output) -> Spec {
        Spec {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            output,
            cgroup: None,
            pid_file: None,
        }
    }

    fn alive(pid: i32) -> bool {
        // A zombie is as good as dead.
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit(')')
                .next()
                .unwrap_or_default()
                .trim_start()
                .starts_with('Z'),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn output_env_and_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("job.log");
        std::fs::write(&log, "old content that is much longer than the new one\n").unwrap();
        let ending = run(
            &spec(
                "echo $GREETING; echo oops >&2; exit 3",
                Output::Truncate(log.clone()),
            ),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(matches!(ending, Ending::Exited(status) if status.code() == Some(3)));
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "hello\noops\n",
            "truncated, not overwritten in place"
        );
        run(
            &spec("echo more", Output::Append(log.clone())),
            None,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "hello\noops\nmore\n"
        );
        let err = run(
            &Spec {
                argv: vec![],
                ..spec("", Output::Discard)
            },
            None,
            &CancellationToken::new(),
        )
        .await;
        assert!(matches!(err, Err(RunError::Empty)));
        let err = run(
            &Spec {
                argv: vec!["/nonexistent/x".into()],
                ..spec("", Output::Discard)
            },
            None,
            &CancellationToken::new(),
        )
        .await;
        assert!(matches!(err, Err(RunError::Spawn { .. })));
    }

    /// Stop and timeout reach the whole group: a grandchild does not survive.
    #[tokio::test]
    async fn stopping_kills_grandchildren() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let kill = CancellationToken::new();
        let running = {
            let spec = spec(&script, Output::Discard);
            let kill = kill.clone();
            tokio::spawn(async move { run(&spec, None, &kill).await })
        };
        tunasync_shared::testkit::wait_until(
            Duration::from_secs(10),
            "the grandchild to start",
            || std::fs::read_to_string(&pidfile).is_ok_and(|text| !text.trim().is_empty()),
        )
        .await;
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(alive(grandchild));
        kill.cancel();
        let ending = running.await.unwrap().unwrap();
        assert!(matches!(ending, Ending::Killed));
        tunasync_shared::testkit::wait_until(
            Duration::from_secs(5),
            "the grandchild to die",
            || !alive(grandchild),
        )
        .await;

        // A script that ignores SIGTERM is killed after the grace period.
        let ending = run(
            &spec("trap '' TERM; sleep 300 & wait; sleep 300", Output::Discard),
            Some(Duration::from_millis(200)),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert!(
            matches!(ending, Ending::TimedOut(timeout) if timeout == Duration::from_millis(200))
        );
    }
}
