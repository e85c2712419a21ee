//! Pools with the real binaries: a manager and three `tunasync worker`s sharing one pool,
//! syncing into one directory, as a site with shared storage runs them. A member SIGKILLed
//! in the middle of a run loses it to another; a member frozen (SIGSTOP) past
//! `offline_after` stops its stale run when it wakes and does not report over the run that
//! replaced it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tunasync_e2e::site::{self, Files, get_json};
use tunasync_e2e::{Daemon, tunasynctl, wait_for};
use tunasync_shared::testkit::BrokerEnv;

const WAIT: Duration = Duration::from_secs(60);
/// The manager's `offline_after`.
const OFFLINE_AFTER: Duration = Duration::from_secs(3);

/// A pooled mirror that runs for `secs` seconds and leaves its shell's PID (and, when it
/// ends by itself, a `done` mark) in the running member's log directory.
fn slow_mirror(name: &str, secs: u32) -> String {
    format!(
        "[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\n\
         command = \"/bin/sh -c 'echo $$ > $TUNASYNC_LOG_DIR/run.pid; sleep {secs}; touch $TUNASYNC_LOG_DIR/run.done'\"\n"
    )
}

struct Pool {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    env: BrokerEnv,
    ctl: PathBuf,
    port: u16,
    _manager: Daemon,
    members: Vec<(String, Daemon)>,
}

impl Pool {
    fn start(namespace: &str, members: &[&str], mirrors: &str) -> Pool {
        let env = BrokerEnv::get();
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_owned();
        let files = Files {
            dir: &dir,
            env: &env,
            namespace,
        };
        let port = site::free_port();
        let manager_conf = files.manager_conf(port, &format!("{}s", OFFLINE_AFTER.as_secs()));
        let ctl = files.ctl_conf(port);
        let manager = Daemon::start(
            "manager",
            &["manager", "-c", manager_conf.to_str().unwrap()],
            &dir.join("manager.log"),
        );
        wait_for(WAIT, "the manager's API", || {
            tunasynctl(&ctl, &["workers"]).status.success()
        });
        let shared = dir.join("shared-storage");
        let mut started = Vec::new();
        for name in members {
            let global = format!(
                "mirror_dir = \"{}\"\nconcurrent = 1\npool = \"shared\"\n",
                shared.display()
            );
            let conf = files.worker_conf_with(name, &files.plain_broker(), &global, mirrors);
            let daemon = Daemon::start(
                name,
                &["worker", "-c", conf.to_str().unwrap()],
                &dir.join(format!("{name}.log")),
            );
            started.push(((*name).to_owned(), daemon));
        }
        Pool {
            _temp: temp,
            dir,
            env,
            ctl,
            port,
            _manager: manager,
            members: started,
        }
    }

    fn history(&self, mirror: &str) -> Vec<Value> {
        let url = format!(
            "https://localhost:{}/jobs/shared/{mirror}/history",
            self.port
        );
        get_json(&url, &self.env.ca_cert)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Where member `name`'s run of `mirror` leaves its marks.
    fn marks(&self, name: &str, mirror: &str) -> PathBuf {
        self.dir.join("log").join(name).join(mirror)
    }

    /// The member running `mirror` now: whose marks show a run that has not ended.
    fn runner(&self, mirror: &str) -> Option<usize> {
        self.members.iter().position(|(name, _)| {
            let marks = self.marks(name, mirror);
            marks.join("run.pid").exists() && !marks.join("run.done").exists()
        })
    }

    fn member(&mut self, idx: usize) -> &mut Daemon {
        &mut self.members[idx].1
    }
}

/// The `/proc` entry of the process whose PID `marks/run.pid` holds.
fn process_of(marks: &Path) -> PathBuf {
    let pid = std::fs::read_to_string(marks.join("run.pid")).unwrap_or_default();
    PathBuf::from(format!("/proc/{}", pid.trim()))
}

/// Ends a process a killed worker left behind (by its PID, from the marks it wrote).
fn end_leftover(marks: &Path) {
    if let Ok(pid) = std::fs::read_to_string(marks.join("run.pid"))
        && let Ok(pid) = pid.trim().parse::<libc::pid_t>()
        && Path::new(&format!("/proc/{pid}")).exists()
    {
        // SAFETY: kill(2) on a PID our own test's job wrote down.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

#[test]
fn a_killed_member_loses_its_pooled_run_to_another() {
    let mut pool = Pool::start("pools-kill", &["m1", "m2"], &slow_mirror("slow", 5));
    wait_for(WAIT, "a member to run the pooled mirror", || {
        pool.runner("slow").is_some()
    });
    let Some(first) = pool.runner("slow") else {
        unreachable!()
    };
    let killed = pool.members[first].0.clone();
    pool.member(first).kill();
    let leftover = pool.marks(&killed, "slow");
    end_leftover(&leftover);

    // Within offline_after and a few seconds, the other member has it, and it ends well.
    site::wait_status(&pool.ctl, "shared", "slow", "success", WAIT);
    let history = pool.history("slow");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1]["worker"], killed.as_str());
    assert_eq!(
        (
            history[1]["result"].as_str(),
            history[1]["error_msg"].as_str()
        ),
        (Some("failed"), Some("worker offline"))
    );
    assert_ne!(history[0]["worker"], killed.as_str());
    assert_eq!(history[0]["result"], "success");
}

#[test]
fn a_frozen_member_stops_its_stale_run_and_does_not_report_over_the_new_one() {
    let mut pool = Pool::start("pools-stop", &["m1", "m2"], &slow_mirror("slow", 20));
    wait_for(WAIT, "a member to run the pooled mirror", || {
        pool.runner("slow").is_some()
    });
    let Some(frozen_idx) = pool.runner("slow") else {
        unreachable!()
    };
    let frozen = pool.members[frozen_idx].0.clone();
    let stale = process_of(&pool.marks(&frozen, "slow"));
    pool.member(frozen_idx).freeze();
    // The manager gives the run to the other member once the frozen one is offline.
    wait_for(WAIT, "the other member to take the run", || {
        pool.history("slow")
            .first()
            .is_some_and(|run| run["worker"] != frozen.as_str() && run["result"] != "failed")
    });
    pool.member(frozen_idx).thaw();
    // Awake, it sees it was cut off for longer than offline_after and ends its stale run.
    wait_for(WAIT, "the stale run's process to end", || !stale.exists());
    site::wait_status(&pool.ctl, "shared", "slow", "syncing", WAIT);
    let history = pool.history("slow");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_ne!(history[0]["worker"], frozen.as_str(), "{history:?}");
    assert_eq!(history[1]["error_msg"], "worker offline");
    assert!(
        !pool.marks(&frozen, "slow").join("run.done").exists(),
        "the stale run did not run to its end"
    );
    let other = 1 - frozen_idx;
    end_leftover(&pool.marks(&pool.members[other].0.clone(), "slow"));
}
