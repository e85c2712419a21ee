//! The pipeline with real processes: status sequences, hooks, logs, sizes, retries, timeouts.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::Event;
use tunasync_shared::wire::event::JobStatus;

use super::*;
use crate::config::WorkerConfig;
use crate::hooks::HookSettings;
use crate::outbox::Outbox;
use crate::report::{LocalState, Reporter};

struct Case {
    dir: tempfile::TempDir,
    reporter: Reporter,
}

fn case(mirror: &str) -> Case {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    let text = format!(
        "[broker]\nurl = \"amqp://localhost\"\n[global]\nname = \"w\"\nlog_dir = \"{root}/log/{{{{.Name}}}}\"\nmirror_dir = \"{root}/data\"\n{mirror}"
    );
    let path = dir.path().join("worker.conf");
    std::fs::write(&path, text).unwrap();
    let config = match WorkerConfig::load(&path) {
        Ok(loaded) => loaded.config,
        Err(err) => panic!("{err}"),
    };
    let job = Arc::new(config.jobs[0].clone());
    let (state, _) = watch::channel(LocalState::default());
    Case {
        reporter: Reporter {
            pooled: None,
            job,
            outbox: Outbox::new(WorkerId::new("w").unwrap()),
            state: Arc::new(state),
            metrics: crate::metrics::JobMetrics::default(),
        },
        dir,
    }
}

fn statuses(case: &Case) -> Vec<JobStatus> {
    case.reporter
        .outbox
        .take_all()
        .into_iter()
        .filter_map(|envelope| match envelope.event {
            Event::Status(status) => Some(status),
            _ => None,
        })
        .collect()
}

fn sequence(statuses: &[JobStatus]) -> Vec<SyncStatus> {
    statuses.iter().map(|status| status.status).collect()
}

async fn run_case(case: &Case) -> RunEnd {
    run(
        &case.reporter,
        &HookSettings::default(),
        &CancellationToken::new(),
        uuid::Uuid::new_v4(),
    )
    .await
}

#[tokio::test]
async fn a_command_job_succeeds_with_its_size_and_env() {
    let case = case(
        r#"[[mirrors]]
name = "cmd-ok"
provider = "command"
upstream = "https://example.org/x/"
command = "/bin/sh -c 'echo name=$TUNASYNC_MIRROR_NAME dir=$TUNASYNC_WORKING_DIR up=$TUNASYNC_UPSTREAM_URL file=$TUNASYNC_LOG_FILE mine=$MY_VAR pwd=$(pwd); echo Total size is 12.5M'"
size_pattern = "Total size is ([0-9\\.]+[KMGTP]?)"
env = { MY_VAR = "my value", TUNASYNC_UPSTREAM_URL = "overridden" }
"#,
    );
    assert_eq!(run_case(&case).await, RunEnd::Success);
    let reported = statuses(&case);
    assert_eq!(
        sequence(&reported),
        [
            SyncStatus::PreSyncing,
            SyncStatus::Syncing,
            SyncStatus::Success
        ]
    );
    assert_eq!(reported[2].size.as_deref(), Some("12.5M"));
    assert!(
        reported
            .iter()
            .all(|status| status.run_id == reported[0].run_id)
    );
    let log_dir = case.dir.path().join("log/cmd-ok");
    let latest = std::fs::read_link(log_dir.join("latest")).unwrap();
    let log = std::fs::read_to_string(log_dir.join(&latest)).unwrap();
    let data = case.dir.path().join("data/cmd-ok");
    assert!(
        log.contains(&format!("name=cmd-ok dir={}", data.display())),
        "{log}"
    );
    assert!(
        log.contains("up=overridden"),
        "the env table wins over TUNASYNC_*: {log}"
    );
    assert!(
        log.contains(&format!("file={}", log_dir.join(&latest).display())),
        "{log}"
    );
    assert!(log.contains("mine=my value"), "{log}");
    assert!(log.contains(&format!("pwd={}", data.display())), "{log}");
    let state = case.reporter.state.borrow().clone();
    assert_eq!(state.status, SyncStatus::Success);
    assert!(!state.last_update.is_zero());
}

/// tunasync's sequence for a failing job with retry 2, its error text, `.fail` logs and
/// exec hooks with `TUNASYNC_JOB_EXIT_STATUS`, run after each failed attempt.
#[tokio::test]
async fn a_failing_job_is_retried_and_reported() {
    let hooks_dir = tempfile::tempdir().unwrap();
    let hook_log = hooks_dir.path().join("hooks.txt");
    let case = case(&format!(
        r#"exec_on_failure = ["/bin/sh -c 'echo $TUNASYNC_MIRROR_NAME $TUNASYNC_JOB_EXIT_STATUS >> {}'"]
[[mirrors]]
name = "cmd-fail"
provider = "command"
command = "/bin/sh -c 'echo trying; exit 3'"
retry = 2
"#,
        hook_log.display()
    ));
    let outcome = run_case(&case).await;
    assert_eq!(outcome, RunEnd::Failed("exit status 3".into()));
    let reported = statuses(&case);
    assert_eq!(
        sequence(&reported),
        [
            SyncStatus::PreSyncing,
            SyncStatus::Syncing,
            SyncStatus::Failed,
            SyncStatus::Syncing,
            SyncStatus::Failed
        ]
    );
    assert_eq!(reported[2].error_msg, "exit status 3");
    assert_eq!((reported[2].attempt, reported[4].attempt), (1, 2));
    assert_eq!(
        std::fs::read_to_string(&hook_log).unwrap(),
        "cmd-fail failure\ncmd-fail failure\n"
    );
    let log_dir = case.dir.path().join("log/cmd-fail");
    let latest = std::fs::read_link(log_dir.join("latest")).unwrap();
    assert!(
        latest.to_str().unwrap().ends_with(".log.fail"),
        "{latest:?}"
    );
    assert_eq!(
        std::fs::read_to_string(log_dir.join(latest)).unwrap(),
        "trying\n"
    );
}

#[tokio::test]
async fn fail_on_match_exit_codes_and_timeouts() {
    let failmatch = case(
        r#"[[mirrors]]
name = "t-failmatch"
provider = "command"
command = "/bin/sh -c 'echo ERROR one; echo ok; echo ERROR two'"
fail_on_match = "ERROR"
retry = 1
"#,
    );
    assert_eq!(
        run_case(&failmatch).await,
        RunEnd::Failed("Fail-on-match regexp found 2 matches".into())
    );

    let exitcode = case(
        r#"[[mirrors]]
name = "t-exitcode"
provider = "command"
command = "/bin/sh -c 'exit 199'"
success_exit_codes = [199]
"#,
    );
    assert_eq!(run_case(&exitcode).await, RunEnd::Success);

    let nomatch = case(
        r#"[[mirrors]]
name = "t-size-nomatch"
provider = "command"
command = "/bin/echo nothing to see"
size_pattern = "Total size is ([0-9\\.]+[KMGTP]?)"
"#,
    );
    assert_eq!(run_case(&nomatch).await, RunEnd::Success);
    let reported = statuses(&nomatch);
    assert_eq!(reported.last().unwrap().size, None, "size stays unknown");

    let timeout = case(
        r#"[[mirrors]]
name = "t-timeout"
provider = "command"
command = "/bin/sleep 30"
timeout = 1
retry = 1
"#,
    );
    assert_eq!(
        run_case(&timeout).await,
        RunEnd::Failed("t-timeout timeout after 1s".into())
    );
}

#[tokio::test]
async fn a_failing_rsync_log_explains_the_exit_code() {
    tunasync_shared::testkit::require_program("rsync", "rsync");
    let case = case(
        r#"[[mirrors]]
name = "rsync-noconn"
upstream = "rsync://127.0.0.1:1/nothing/"
retry = 1
"#,
    );
    let RunEnd::Failed(error) = run_case(&case).await else {
        panic!("expected a failure")
    };
    assert_eq!(error, "exit status 10");
    let log_dir = case.dir.path().join("log/rsync-noconn");
    let log =
        std::fs::read_to_string(log_dir.join(std::fs::read_link(log_dir.join("latest")).unwrap()))
            .unwrap();
    assert!(
        log.trim_end().ends_with("rsync error: Error in socket I/O"),
        "{log}"
    );
}

#[tokio::test]
async fn a_killed_run_reports_nothing_more() {
    let case = case(
        r#"[[mirrors]]
name = "slow"
provider = "command"
command = "/bin/sleep 30"
log_dir = "/dev/null"
"#,
    );
    let kill = CancellationToken::new();
    let running = {
        let reporter = case.reporter.clone();
        let kill = kill.clone();
        tokio::spawn(async move {
            run(
                &reporter,
                &HookSettings::default(),
                &kill,
                uuid::Uuid::new_v4(),
            )
            .await
        })
    };
    tunasync_shared::testkit::wait_until(std::time::Duration::from_secs(10), "syncing", || {
        case.reporter.state.borrow().status == SyncStatus::Syncing
    })
    .await;
    kill.cancel();
    let outcome = running.await.unwrap();
    assert!(
        matches!(outcome, RunEnd::Killed { attempt: 1, .. }),
        "{outcome:?}"
    );
    assert_eq!(
        sequence(&statuses(&case)),
        [SyncStatus::PreSyncing, SyncStatus::Syncing]
    );
    assert!(!Path::new("/dev/null/latest").exists());
}
