//! Helpers for end-to-end tests: the real binaries (`tunasync`, `tunasynctl`) as child
//! processes, each stopped by its own PID when the test ends.

pub mod browser;
pub mod docker;
pub mod events;
pub mod site;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// A built binary of the workspace (`cargo test --workspace` builds them first).
pub fn binary(name: &str) -> PathBuf {
    let exe =
        std::env::current_exe().unwrap_or_else(|err| panic!("cannot find the test binary: {err}"));
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build` or `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A daemon started by a test; SIGTERM (then SIGKILL) by its PID on drop.
pub struct Daemon {
    pub name: String,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(name: &str, args: &[&str], log: &Path) -> Daemon {
        Daemon::start_program(name, &binary("tunasync"), args, log)
    }

    /// [`Daemon::start`] with more environment variables.
    pub fn start_with_env(name: &str, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(name, &binary("tunasync"), args, log, env)
    }

    /// Another program (Prometheus, Alertmanager, …), handled the same way.
    pub fn start_program(name: &str, program: &Path, args: &[&str], log: &Path) -> Daemon {
        Daemon::spawn(name, program, args, log, &[])
    }

    fn spawn(
        name: &str,
        program: &Path,
        args: &[&str],
        log: &Path,
        env: &[(&str, &str)],
    ) -> Daemon {
        assert!(
            program.exists(),
            "{} is missing: install it (see .ci/run for the Debian packages)",
            program.display()
        );
        let file = std::fs::File::create(log)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", log.display()));
        let err_file = file.try_clone().unwrap_or_else(|err| panic!("{err}"));
        let child = Command::new(program)
            .args(args)
            .env("RUST_LOG", "info,lapin=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Daemon {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child
            && let Ok(pid) = libc::pid_t::try_from(child.id())
        {
            // SAFETY: kill(2) on the PID of our own child; no memory is involved.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// SIGTERM, and wait (bounded) for the exit; SIGKILL if it does not come.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait_exit(Duration::from_secs(20))
    }

    /// SIGKILL: as if the machine died.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(10));
    }

    /// SIGSTOP: the process freezes (its jobs, in their own process groups, go on).
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`Daemon::freeze`].
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    /// SIGHUP (reload).
    pub fn hangup(&self) {
        self.signal(libc::SIGHUP);
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("---- last lines of {} ----", self.name);
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
        self.stop();
    }
}

/// Runs tunasynctl with `args`; its output.
pub fn tunasynctl(config: &Path, args: &[&str]) -> Output {
    Command::new(binary("tunasynctl"))
        .arg("-c")
        .arg(config)
        .args(args)
        .env_remove("TUNASYNC_TOKEN")
        .env("HOME", config.parent().unwrap_or(Path::new("/nonexistent")))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|err| panic!("cannot run tunasynctl: {err}"))
}

/// Runs tunasynctl and expects success; its stdout.
pub fn ctl_ok(config: &Path, args: &[&str]) -> String {
    let output = tunasynctl(config, args);
    assert!(
        output.status.success(),
        "tunasynctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `condition` every 100 ms, panicking after `limit` with `what`.
pub fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
