//! Pools with the real binaries: a manager and three `tunasync worker`s sharing one pool,
//! syncing into one directory, as a site with shared storage runs them. A member SIGKILLed
//! in the middle of a run loses it to another; a member frozen (SIGSTOP) past
//! `offline_after` stops its stale run when it wakes and does not report over the run that
//! replaced it. In hardened mode a member with read permission on the pool's queue runs
//! its mirrors, and one without says why in its log.

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
    dir: PathBuf,
    env: BrokerEnv,
    namespace: String,
    ctl: PathBuf,
    port: u16,
    manager_conf: PathBuf,
    manager: Daemon,
    members: Vec<(String, Daemon)>,
    /// Last: fields drop in order, and the daemons print their logs from it on a failure.
    _temp: tempfile::TempDir,
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
        let mut pool = Pool {
            _temp: temp,
            dir,
            env,
            namespace: namespace.to_owned(),
            ctl,
            port,
            manager_conf,
            manager,
            members: Vec::new(),
        };
        for name in members {
            pool.add_member(name, mirrors);
        }
        pool
    }

    fn files(&self) -> Files<'_> {
        Files {
            dir: &self.dir,
            env: &self.env,
            namespace: &self.namespace,
        }
    }

    /// Starts member `name` of pool `shared` with `mirrors`, on the shared storage.
    fn add_member(&mut self, name: &str, mirrors: &str) {
        let broker = self.files().plain_broker();
        self.add_member_with(name, &broker, mirrors);
    }

    /// Writes member `name`'s worker.conf: pool `shared` (inherited) and `mirrors`.
    fn member_conf(&self, name: &str, broker: &str, mirrors: &str) -> PathBuf {
        let global = format!(
            "mirror_dir = \"{}\"\nconcurrent = 1\npool = \"shared\"\n",
            self.dir.join("shared-storage").display()
        );
        self.files()
            .worker_conf_with(name, broker, &global, mirrors)
    }

    /// Starts member `name` with the `[broker]` section `broker`.
    fn add_member_with(&mut self, name: &str, broker: &str, mirrors: &str) {
        let conf = self.member_conf(name, broker, mirrors);
        let daemon = Daemon::start(
            name,
            &["worker", "-c", conf.to_str().unwrap()],
            &self.dir.join(format!("{name}.log")),
        );
        self.members.push((name.to_owned(), daemon));
    }

    /// Stops the manager (SIGTERM) and starts it again on the same store.
    fn restart_manager(&mut self) {
        self.manager.stop();
        self.manager = Daemon::start(
            "manager",
            &["manager", "-c", self.manager_conf.to_str().unwrap()],
            &self.dir.join("manager-2.log"),
        );
        wait_for(WAIT, "the manager's API again", || {
            tunasynctl(&self.ctl, &["workers"]).status.success()
        });
    }

    /// The pool's entry in `GET /workers` (`Null` until the manager lists it).
    fn entry(&self) -> Value {
        let url = format!("https://localhost:{}/workers", self.port);
        get_json(&url, &self.env.ca_cert)
            .as_array()
            .and_then(|entries| entries.iter().find(|entry| entry["id"] == "shared"))
            .cloned()
            .unwrap_or_default()
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

    /// How many consumers the broker counts on `pool`'s queue (none: no such queue).
    fn consumers(&self, pool: &str) -> Option<u64> {
        let queue = format!("{}.pool.{pool}", self.namespace);
        self.env
            .rabbitmqctl(&["list_queues", "--no-table-headers", "name", "consumers"])
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .and_then(|(_, count)| count.trim().parse().ok())
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

/// Five pooled mirrors, two members with one slot each: two run, three wait in the queue.
/// The manager restarts meanwhile, and a third member joins: every mirror runs exactly once
/// (nothing lost, nothing twice), the newcomer taking some of the waiting runs.
#[test]
fn queued_runs_survive_a_manager_restart_and_a_new_member_takes_them() {
    let names = ["q0", "q1", "q2", "q3", "q4"];
    // Runs long enough that the newcomer is up before a slot of the others frees.
    let mirrors: String = names.iter().map(|name| slow_mirror(name, 6)).collect();
    let mut pool = Pool::start("pools-restart", &["m1", "m2"], &mirrors);
    wait_for(WAIT, "two runs going on", || {
        names
            .iter()
            .filter(|name| pool.runner(name).is_some())
            .count()
            == 2
    });
    pool.restart_manager();
    pool.add_member("m3", &mirrors);
    for name in names {
        site::wait_status(&pool.ctl, "shared", name, "success", WAIT);
    }
    let mut by_member = std::collections::BTreeMap::new();
    for name in names {
        let history = pool.history(name);
        assert_eq!(history.len(), 1, "{name} ran once: {history:?}");
        *by_member
            .entry(history[0]["worker"].as_str().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        by_member.contains_key("m3"),
        "the member that joined took waiting runs: {by_member:?}"
    );
}

/// A pooled mirror that runs for `secs` seconds holding a lock directory in its working
/// directory on the shared storage; a run that finds the lock taken leaves an `overlap` mark.
fn locking_mirror(name: &str, secs: u32) -> String {
    format!(
        "[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\n\
         command = \"/bin/sh -c 'mkdir $TUNASYNC_WORKING_DIR/.lock || touch $TUNASYNC_WORKING_DIR/overlap; sleep {secs}; rmdir $TUNASYNC_WORKING_DIR/.lock'\"\n"
    )
}

/// Two members with one slot each and four pooled mirrors, started again and again: every
/// mirror runs each time, on both members, and never two runs of one mirror at once.
#[test]
fn four_mirrors_run_on_both_members_and_never_twice_at_once() {
    let names = ["f0", "f1", "f2", "f3"];
    let mirrors: String = names.iter().map(|name| locking_mirror(name, 1)).collect();
    let pool = Pool::start("pools-four", &["m1", "m2"], &mirrors);
    for round in 1..=3 {
        for name in names {
            wait_for(WAIT, &format!("{name}'s run {round}"), || {
                let history = pool.history(name);
                history.len() >= round && history[0]["result"] == "success"
            });
        }
        if round < 3 {
            // Starts while others run or wait: each is queued once, whatever the timing.
            for name in names {
                site::ctl_start(&pool.ctl, "shared", name);
                site::ctl_start(&pool.ctl, "shared", name);
            }
        }
    }
    let mut members = std::collections::BTreeSet::new();
    for name in names {
        let history = pool.history(name);
        assert_eq!(history.len(), 3, "{name}: {history:?}");
        assert!(history.iter().all(|run| run["result"] == "success"));
        members.extend(
            history
                .iter()
                .filter_map(|run| run["worker"].as_str().map(str::to_owned)),
        );
        let overlap = pool.dir.join("shared-storage").join(name).join("overlap");
        assert!(!overlap.exists(), "two runs of {name} at once");
    }
    assert_eq!(
        members.into_iter().collect::<Vec<_>>(),
        ["m1", "m2"],
        "both members ran pooled mirrors"
    );
}

/// A member whose file defines a pooled mirror differently is shown, and never runs it.
#[test]
fn a_member_with_another_definition_never_runs_the_pools_mirror() {
    let agreed = slow_mirror("d", 1);
    let mut pool = Pool::start("pools-differ", &["m1", "m2"], &agreed);
    // Both agreeing members first: with one of them and the odd one, the two definitions
    // would tie (and the tie-break might schedule the odd one's, rightly).
    wait_for(WAIT, "both agreeing members online", || {
        pool.entry()["members"].as_array().is_some_and(|members| {
            members
                .iter()
                .filter(|member| member["online"] == true)
                .count()
                == 2
        })
    });
    let other = slow_mirror("d", 2);
    pool.add_member("odd", &other);
    wait_for(WAIT, "the pool to show the odd member's definition", || {
        pool.entry()["differing"]
            .as_array()
            .is_some_and(|differing| differing.iter().any(|d| d["worker"] == "odd"))
    });
    site::wait_status(&pool.ctl, "shared", "d", "success", WAIT);
    // Start it a few times: the odd member may take the run off the queue, but is refused.
    for _ in 0..3 {
        let before = pool.history("d").len();
        site::ctl_start(&pool.ctl, "shared", "d");
        wait_for(WAIT, "another run", || {
            pool.history("d").len() > before && pool.history("d")[0]["result"] == "success"
        });
    }
    assert!(
        !pool.marks("odd", "d").join("run.pid").exists(),
        "the member with another definition ran the mirror"
    );
    assert!(pool.history("d").iter().all(|run| run["worker"] != "odd"));
}

/// Hardened mode: a member logged in as its own broker user runs pooled mirrors with read
/// permission on the pool's queue; a member without it says so in its log and takes none.
#[test]
fn a_hardened_member_runs_pooled_mirrors_and_one_without_the_permission_says_why() {
    let mut pool = Pool::start("hpool", &[], "");
    let mirrors = slow_mirror("h", 1);
    let hp1 = pool.files().hardened_broker("hp1");
    let hp2 = pool.files().hardened_broker("hp2");
    pool.add_member_with("hp2", &hp2, &mirrors);
    pool.add_member_with("hp1", &hp1, &mirrors);
    site::wait_status(&pool.ctl, "shared", "h", "success", WAIT);
    for _ in 0..2 {
        let before = pool.history("h").len();
        site::ctl_start(&pool.ctl, "shared", "h");
        wait_for(WAIT, "another run", || {
            pool.history("h").len() > before && pool.history("h")[0]["result"] == "success"
        });
    }
    assert!(pool.history("h").iter().all(|run| run["worker"] == "hp1"));
    let hp2_log = &pool.members[0].1;
    wait_for(
        WAIT,
        "hp2 to log why it cannot read the pool's queue",
        || {
            hp2_log
                .log_text()
                .contains("this broker user may not read the queue")
        },
    );
    let refusals = hp2_log
        .log_text()
        .matches("this broker user may not read the queue")
        .count();
    assert_eq!(refusals, 1, "said once, not on every retry");
}

/// A reload (SIGHUP) that changes the pools a member's file names: it serves a pool its
/// file names now, and stops reading the queue of one it no longer names, whose mirror no
/// member defines any more and leaves the status list.
#[test]
fn a_reload_changes_the_pools_a_member_serves() {
    let mut pool = Pool::start("pools-reload", &["m1"], &slow_mirror("a", 1));
    site::wait_status(&pool.ctl, "shared", "a", "success", WAIT);
    let broker = pool.files().plain_broker();
    let second = format!("{}pool = \"second\"\n", slow_mirror("b", 1));
    pool.member_conf("m1", &broker, &format!("{}{second}", slow_mirror("a", 1)));
    pool.member(0).hangup();
    site::wait_status(&pool.ctl, "second", "b", "success", WAIT);
    assert_eq!(pool.history("a").len(), 1);
    assert_eq!(pool.consumers("shared"), Some(1));

    pool.member_conf("m1", &broker, &second);
    pool.member(0).hangup();
    wait_for(WAIT, "m1 to stop reading pool shared's queue", || {
        pool.consumers("shared") == Some(0)
    });
    assert!(
        pool.members[0]
            .1
            .log_text()
            .contains("no longer serving the pool")
    );
    assert_eq!(pool.consumers("second"), Some(1));
    // No member defines `a` any more: it leaves the status list.
    wait_for(WAIT, "shared/a to leave GET /jobs", || {
        let jobs = get_json(
            &format!("https://localhost:{}/workers/shared/jobs", pool.port),
            &pool.env.ca_cert,
        );
        !jobs
            .as_array()
            .is_some_and(|jobs| jobs.iter().any(|job| job["name"] == "a"))
    });
}

/// A member in whole-worker maintenance stops reading the pool's queue (the broker counts
/// one consumer less), so even operators' starts of pooled mirrors go to the other member;
/// when it ends, the member reads the queue again.
#[test]
fn a_member_in_maintenance_takes_no_pooled_runs() {
    let names = ["p0", "p1", "p2"];
    let mirrors: String = names
        .iter()
        .map(|name| {
            format!(
                "[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\ncommand = \"/bin/true\"\n"
            )
        })
        .collect();
    let mut pool = Pool::start("pools-maint", &["m1"], &mirrors);
    for name in names {
        site::wait_status(&pool.ctl, "shared", name, "success", WAIT);
    }
    wait_for(WAIT, "m1 reading the pool's queue", || {
        pool.consumers("shared") == Some(1)
    });
    tunasync_e2e::ctl_ok(
        &pool.ctl,
        &["maintenance", "on", "-w", "m1", "--message", "disk swap"],
    );
    wait_for(WAIT, "m1 to stop reading the pool's queue", || {
        pool.consumers("shared") == Some(0)
    });
    pool.add_member("m2", &mirrors);
    wait_for(WAIT, "m2 reading the pool's queue", || {
        pool.consumers("shared") == Some(1)
    });
    for name in names {
        site::ctl_start(&pool.ctl, "shared", name);
    }
    for name in names {
        wait_for(WAIT, &format!("{name}'s second run"), || {
            let history = pool.history(name);
            history.len() == 2 && history[0]["result"] == "success"
        });
        let history = pool.history(name);
        assert_eq!(history[0]["worker"], "m2", "{name}: {history:?}");
        assert_eq!(history[1]["worker"], "m1", "{name}: {history:?}");
    }
    tunasync_e2e::ctl_ok(&pool.ctl, &["maintenance", "off", "-w", "m1"]);
    wait_for(WAIT, "m1 reading the pool's queue again", || {
        pool.consumers("shared") == Some(2)
    });
}
