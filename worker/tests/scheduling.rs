//! The scheduling and job-control keys with a real worker on the private broker (the test
//! plays the manager): re-run after failure, blackouts, cgroup limits, disk quota,
//! per-upstream limits, upstream fallback with a real rsync daemon, atomic publish.

mod common;

use tunasync_shared::both_transports;

use std::time::Duration;

use common::{Kind, Started, WAIT};
use tokio_util::sync::CancellationToken;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{RsyncDaemon, make_tree, same_tree, wait_until};
use tunasync_shared::wire::event::CmdOutcome;

fn command_mirror(name: &str, command: &str, more: &str) -> String {
    format!(
        "[[mirrors]]\nname = \"{name}\"\nprovider = \"command\"\ncommand = \"{command}\"\n{more}"
    )
}

/// A free loopback port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap()
}

both_transports!(
    a_failed_mirror_is_tried_again_after_retry_after_failure,
    a_failed_mirror_is_tried_again_after_retry_after_failure_over
);
/// A mirror whose runs fail is tried again after `retry_after_failure` (doubling), not a
/// whole interval later; once it succeeds it waits for its interval again.
async fn a_failed_mirror_is_tried_again_after_retry_after_failure_over(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("ok");
    let mirrors = command_mirror(
        "flaky",
        &format!("/bin/sh -c 'test -e {}'", ok.display()),
        "retry = 1\nretry_after_failure = \"1s\"\n",
    );
    let worker = Started::start_over(kind, "rerun", dir, 3, &mirrors).await;
    // interval = 1440: without the rule the second run would come a day later.
    wait_until(WAIT, "two failed runs", || worker.ends("flaky").len() >= 2).await;
    let failed = worker.ends("flaky");
    assert!(
        failed
            .iter()
            .all(|report| report.status == SyncStatus::Failed)
    );
    let gap = failed[1].at.unix() - failed[0].at.unix();
    assert!((1..=3).contains(&gap), "tried again after 1 s: {gap} s");
    std::fs::write(&ok, "").unwrap();
    wait_until(WAIT, "a successful run", || worker.successes("flaky") == 1).await;
    wait_until(WAIT, "the next run a day after the success", || {
        let success = worker
            .ends("flaky")
            .into_iter()
            .find(|report| report.status == SyncStatus::Success);
        matches!((success, worker.next_schedule("flaky")),
            (Some(success), Some(next)) if next.unix() - success.at.unix() >= 1439 * 60)
    })
    .await;
    worker.stop().await;
}

both_transports!(
    a_blackout_holds_scheduled_runs_and_plain_starts_but_not_forced_ones,
    a_blackout_holds_scheduled_runs_and_plain_starts_but_not_forced_ones_over
);
/// A blackout window: the run due at start-up waits for its end; `start` without `-f` is
/// taken but waits too, and says until when; `start -f` runs at once.
async fn a_blackout_holds_scheduled_runs_and_plain_starts_but_not_forced_ones_over(kind: Kind) {
    // A window from an hour ago to two hours ahead, in UTC (across midnight if need be).
    let now = chrono::Utc::now();
    let window_end = now + chrono::Duration::hours(2);
    let window = format!(
        "{}-{}",
        (now - chrono::Duration::hours(1)).format("%H:%M"),
        window_end.format("%H:%M")
    );
    let mirrors = command_mirror(
        "quiet",
        "/bin/true",
        &format!("timezone = \"UTC\"\nblackout = [\"{window}\"]\n"),
    ) + &command_mirror("free", "/bin/true", "");
    let worker =
        Started::start_over(kind, "blackout", tempfile::tempdir().unwrap(), 3, &mirrors).await;
    // Reports come in order: once the other mirror has run, quiet would have started too.
    wait_until(WAIT, "the free mirror's run", || {
        worker.successes("free") == 1
    })
    .await;
    let window_end = window_end.timestamp() / 60 * 60;
    wait_until(WAIT, "quiet scheduled at the window's end", || {
        worker
            .next_schedule("quiet")
            .is_some_and(|at| at.unix() == window_end)
    })
    .await;
    match worker.start_job("quiet", false).await {
        CmdOutcome::Deferred { reason } => assert!(
            reason.starts_with(&format!(
                "quiet is in its blackout window \"{window}\": it starts at "
            )) && reason.ends_with("(start -f runs it now)"),
            "{reason}"
        ),
        other => panic!("a plain start in a blackout: {other:?}"),
    }
    assert!(worker.manager.statuses("quiet").is_empty(), "nothing ran");
    assert_eq!(worker.start_job("quiet", true).await, CmdOutcome::Accepted);
    wait_until(WAIT, "the forced run", || worker.successes("quiet") == 1).await;
    worker.stop().await;
}

both_transports!(
    cgroup_memory_limits_and_leftover_processes,
    cgroup_memory_limits_and_leftover_processes_over
);
/// `[cgroup]` on this host's cgroup (v1's memory controller or v2): a run over its
/// `memory_limit` is killed and reported failed, one under it succeeds, and a process that
/// left the run's process group (`setsid`) is killed with the run's group.
async fn cgroup_memory_limits_and_leftover_processes_over(kind: Kind) {
    assert!(
        std::path::Path::new("/usr/bin/python3").exists(),
        "python3 is missing: install it with `apt-get install python3`"
    );
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("leaver.pid");
    let allocate = |mebibytes: u32| {
        format!("/usr/bin/python3 -c 'x = bytes(range(256)) * ({mebibytes} << 12); print(len(x))'")
    };
    let mirrors = command_mirror("hog", &allocate(256), "memory_limit = \"64M\"\nretry = 1\n")
        + &command_mirror("small", &allocate(1), "memory_limit = \"64M\"\n")
        + &command_mirror(
            "leaver",
            &format!(
                "/bin/sh -c 'setsid sleep 300 & echo $! > {}'",
                pid_file.display()
            ),
            "",
        )
        + "[cgroup]\nenable = true\n";
    let worker = Started::start_over(kind, "cgroup", dir, 3, &mirrors).await;
    worker.wait_ended(&["hog", "small", "leaver"]).await;
    let hog = worker.ended("hog").unwrap();
    assert_eq!(hog.status, SyncStatus::Failed, "over 64M: {hog:?}");
    assert_eq!(worker.ended("small").unwrap().status, SyncStatus::Success);
    assert_eq!(worker.ended("leaver").unwrap().status, SyncStatus::Success);
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    let left = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    // Gone, or a zombie nobody reaped yet (its parent, the shell, has exited).
    let state = std::fs::read_to_string(left.join("stat")).unwrap_or_default();
    let state = state
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("");
    assert!(
        !left.exists() || state == "Z",
        "the run's background sleep (pid {}) survived: state {state:?}",
        pid.trim()
    );
    worker.stop().await;
}

both_transports!(
    a_run_without_enough_free_disk_space_is_skipped_and_reported_failed,
    a_run_without_enough_free_disk_space_is_skipped_and_reported_failed_over
);
/// `disk_min_free` against the real free space of the test's filesystem: a mirror asking
/// for more than there is is skipped and reported failed with the reason; one asking for
/// little runs.
async fn a_run_without_enough_free_disk_space_is_skipped_and_reported_failed_over(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let free = tunasync_worker::disk::free_space(dir.path()).unwrap();
    // More than the filesystem has free, in bytes; and a percentage it cannot reach.
    let too_much = format!("{}K", free.available / 1024 + 1024 * 1024);
    let touch = format!("/bin/touch {}", ran.display());
    let mirrors = command_mirror("full", &touch, &format!("disk_min_free = \"{too_much}\"\n"))
        + &command_mirror("percent", &touch, "disk_min_free = \"100%\"\n")
        + &command_mirror("roomy", "/bin/true", "disk_min_free = \"1K\"\n");
    let worker = Started::start_over(kind, "disk", dir, 3, &mirrors).await;
    worker.wait_ended(&["full", "percent", "roomy"]).await;
    for mirror in ["full", "percent"] {
        let report = worker.ended(mirror).unwrap();
        assert_eq!(report.status, SyncStatus::Failed, "{report:?}");
        assert!(
            report.error_msg.starts_with("not enough free disk space: ")
                && report.error_msg.contains("below disk_min_free"),
            "{}",
            report.error_msg
        );
    }
    assert!(!ran.exists(), "the skipped runs ran nothing");
    assert_eq!(worker.ended("roomy").unwrap().status, SyncStatus::Success);
    worker.stop().await;
}

both_transports!(
    runs_against_one_upstream_host_stay_within_its_limit,
    runs_against_one_upstream_host_stay_within_its_limit_over
);
/// `[global.per_upstream_concurrent]`: with slots for all, runs against one host still go
/// one at a time (each would leave an `overlap` mark, and fail, if another held the
/// host's lock).
async fn runs_against_one_upstream_host_stay_within_its_limit_over(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("host.lock");
    let overlap = dir.path().join("overlap");
    let names = ["u0", "u1", "u2"];
    let mut mirrors = "[global.per_upstream_concurrent]\n\"up.example.org\" = 1\n".to_owned();
    for name in names {
        mirrors += &command_mirror(
            name,
            &format!(
                "/bin/sh -c 'mkdir {lock} || touch {overlap}; sleep 0.5; rmdir {lock}'",
                lock = lock.display(),
                overlap = overlap.display()
            ),
            &format!("upstream = \"rsync://Up.Example.org/{name}/\"\n"),
        );
    }
    mirrors += &command_mirror(
        "elsewhere",
        "/bin/true",
        "upstream = \"rsync://other.example.org/x/\"\n",
    );
    let worker = Started::start_over(kind, "upstream", dir, 4, &mirrors).await;
    wait_until(WAIT, "every run to succeed", || {
        names
            .iter()
            .chain(&["elsewhere"])
            .all(|name| worker.successes(name) == 1)
    })
    .await;
    assert!(!overlap.exists(), "two runs against up.example.org at once");
    worker.stop().await;
}

both_transports!(
    a_run_falls_back_to_the_upstream_that_answers,
    a_run_falls_back_to_the_upstream_that_answers_over
);
/// `upstream_fallback`: the first upstream does not answer (nothing listens on its port),
/// so the run syncs from the fallback, a real rsync daemon, and its reports say so; with
/// every upstream dead, the run is skipped with each one's reason.
async fn a_run_falls_back_to_the_upstream_that_answers_over(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    make_tree(&upstream);
    let daemon = RsyncDaemon::start(&upstream);
    let dead = format!("rsync://127.0.0.1:{}/pub/", dead_port());
    let mirrors = format!(
        "[[mirrors]]\nname = \"falls-back\"\nupstream = \"{dead}\"\nupstream_fallback = [\"{live}\"]\n\
         [[mirrors]]\nname = \"all-dead\"\nupstream = \"{dead}\"\ncheck_upstream = true\nretry = 1\n",
        live = daemon.url()
    );
    let worker = Started::start_over(kind, "fallback", dir, 3, &mirrors).await;
    worker.wait_ended(&["falls-back", "all-dead"]).await;
    let synced = worker.ended("falls-back").unwrap();
    assert_eq!(synced.status, SyncStatus::Success, "{synced:?}");
    assert_eq!(
        synced.upstream,
        daemon.url(),
        "the report names the fallback"
    );
    assert!(same_tree(&upstream, &worker.path("data/falls-back")));
    let skipped = worker.ended("all-dead").unwrap();
    assert_eq!(skipped.status, SyncStatus::Failed);
    assert!(
        skipped
            .error_msg
            .starts_with(&format!("no upstream answered: {dead} (")),
        "{}",
        skipped.error_msg
    );
    worker.stop().await;
}

both_transports!(
    readers_never_see_a_half_synced_tree_with_atomic_publish,
    readers_never_see_a_half_synced_tree_with_atomic_publish_over
);
/// `atomic_publish`: a reader holding the served directory open reads it again and again
/// while runs write their trees file by file into the staging copy; every read sees one
/// run's whole tree (40 files with one token), never a mix, and it sees successive runs'
/// trees. A failed run leaves its staging copy, and the next run resumes from it.
async fn readers_never_see_a_half_synced_tree_with_atomic_publish_over(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let mirrors = format!("staging_dir = \"{}/staging\"\n", dir.path().display())
        + &command_mirror(
            "tree",
            "/bin/sh -c 't=$(date +%s%N); for i in $(seq 1 40); do echo $t > f$i; sleep 0.01; done'",
            "atomic_publish = true\n",
        )
        + &command_mirror(
            "resume",
            "/bin/sh -c 'if [ -e partial ]; then echo resumed > result; else touch partial; exit 1; fi'",
            "atomic_publish = true\nretry = 1\n",
        );
    let worker = Started::start_over(kind, "publish", dir, 3, &mirrors).await;

    // The reader: opens the served directory, reads all 40 files through that handle.
    let served = worker.path("data/tree");
    let reading = CancellationToken::new();
    let reader = {
        let (served, reading) = (served.clone(), reading.clone());
        std::thread::spawn(move || {
            let mut trees = std::collections::BTreeSet::new();
            let mut reads = 0u32;
            while !reading.is_cancelled() {
                let Ok(handle) = std::fs::File::open(&served) else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                use std::os::fd::AsRawFd as _;
                let base = format!("/proc/self/fd/{}", handle.as_raw_fd());
                let tokens: std::collections::BTreeSet<String> = (1..=40)
                    .map(|i| std::fs::read_to_string(format!("{base}/f{i}")).unwrap_or_default())
                    .collect();
                assert_eq!(tokens.len(), 1, "a mixed or partial tree: {tokens:?}");
                trees.extend(tokens);
                reads += 1;
            }
            (trees, reads)
        })
    };
    wait_until(WAIT, "the first publish", || worker.successes("tree") == 1).await;
    for round in 2..=4 {
        assert_eq!(worker.start_job("tree", false).await, CmdOutcome::Accepted);
        wait_until(WAIT, &format!("publish {round}"), || {
            worker.successes("tree") == round
        })
        .await;
    }
    reading.cancel();
    let (trees, reads) = reader.join().expect("the reader saw only whole trees");
    assert!(trees.len() >= 3, "{reads} reads saw {} trees", trees.len());

    // The failed run left its staging copy; the next one resumed from it.
    wait_until(WAIT, "resume's first run to fail", || {
        worker.ended("resume").is_some()
    })
    .await;
    assert_eq!(worker.ended("resume").unwrap().status, SyncStatus::Failed);
    assert!(!worker.path("data/resume").exists(), "nothing published");
    assert!(worker.path("staging/resume/partial").exists());
    assert_eq!(
        worker.start_job("resume", false).await,
        CmdOutcome::Accepted
    );
    wait_until(WAIT, "resume's second run", || {
        worker.successes("resume") == 1
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(worker.path("data/resume/result")).unwrap(),
        "resumed\n"
    );
    worker.stop().await;
}
