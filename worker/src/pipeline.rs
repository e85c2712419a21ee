//! One run of a job: pre-job hooks, then per attempt pre-exec → provider → post-exec →
//! post-success | post-fail, reporting tunasync's status sequence
//! `pre-syncing → (syncing → failed)* → syncing → success | failed`.

use std::collections::BTreeMap;
use std::time::Duration;

use regex_lite::Regex;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tunasync_shared::schedule::retry_delay;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::event::ProviderKind;
use uuid::Uuid;

use crate::analysis::{count_matches, go_duration, pattern_size, rsync_exit_meaning, rsync_size};
use crate::hooks::{self, Attempt, Hook, HookSettings, Phase, docker, tunasync_env};
use crate::progress;
use crate::report::Reporter;
use crate::runner::{self, Ending, Output, Spec};

/// The error tunasync reports for a run stopped by a command or by shutdown.
pub const KILLED: &str = "killed by manager";

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Success,
    Failed(String),
    /// Stopped by `kill`; nothing was reported for the last attempt.
    Killed {
        run_id: Uuid,
        attempt: u32,
    },
}

/// Why the run must not start for lack of disk space (`disk_min_free`), if so. A
/// filesystem that cannot be asked does not stop it (the run itself then says what is wrong).
async fn disk_shortfall(job: &crate::config::JobConfig) -> Option<String> {
    let min = job.disk_min_free?;
    let dir = job.mirror_dir.clone();
    let free = tokio::task::spawn_blocking(move || crate::disk::free_space(&dir))
        .await
        .ok()?;
    match free {
        Ok(free) => min.shortfall(free, &job.mirror_dir),
        Err(err) => {
            warn!(mirror = %job.name, dir = %job.mirror_dir.display(), error = %err, "cannot read the free disk space");
            None
        }
    }
}

/// `atomic_publish`: the run's staging copy becomes the served tree.
async fn publish(job: &crate::config::JobConfig) -> Result<(), String> {
    let Some(publish) = &job.publish else {
        return Ok(());
    };
    let (staging, served) = (job.mirror_dir.clone(), publish.served.clone());
    let swapped = tokio::task::spawn_blocking(move || crate::publish::swap(&staging, &served))
        .await
        .map_err(|err| err.to_string())?;
    match swapped {
        Ok(()) => {
            info!(mirror = %job.name, served = %publish.served.display(), "published");
            Ok(())
        }
        Err(err) => Err(format!(
            "cannot publish {} as {}: {err}",
            job.mirror_dir.display(),
            publish.served.display()
        )),
    }
}

/// Runs the job once (all its attempts) as run `run_id`.
pub async fn run(
    reporter: &Reporter,
    settings: &HookSettings,
    kill: &CancellationToken,
    run_id: Uuid,
) -> RunEnd {
    reporter.report(run_id, 0, SyncStatus::PreSyncing, "", None);
    // With check_upstream, this run uses the first upstream that answers (its reports say
    // which).
    let probed;
    let reporter = if reporter.job.check_upstream {
        let mut candidates = vec![reporter.job.upstream.clone()];
        candidates.extend(reporter.job.upstream_fallback.iter().cloned());
        match crate::probe::choose(&candidates, crate::probe::PROBE_TIMEOUT).await {
            Ok(upstream) if upstream == reporter.job.upstream => reporter,
            Ok(upstream) => {
                warn!(mirror = %reporter.job.name, primary = %reporter.job.upstream, %upstream, "the upstream does not answer: using a fallback");
                let mut with_fallback = reporter.clone();
                with_fallback.job =
                    std::sync::Arc::new(crate::probe::with_upstream(&reporter.job, &upstream));
                probed = with_fallback;
                &probed
            }
            Err(error) => {
                warn!(mirror = %reporter.job.name, %error, "run skipped");
                reporter.report_end(run_id, 1, SyncStatus::Failed, &error, None);
                return RunEnd::Failed(error);
            }
        }
    } else {
        reporter
    };
    let job = reporter.job.clone();
    if let Some(error) = disk_shortfall(&job).await {
        warn!(mirror = %job.name, %error, "run skipped");
        reporter.report_end(run_id, 1, SyncStatus::Failed, &error, None);
        return RunEnd::Failed(error);
    }
    let hooks = hooks::hooks_for(&job, settings);
    for hook in &hooks {
        if let Err(err) = hook.pre_job(&job).await {
            let error = format!("error exec hook {}: {err}", Phase::PreJob.as_str());
            reporter.report_end(run_id, 1, SyncStatus::Failed, &error, None);
            return RunEnd::Failed(error);
        }
    }
    let mut last_error = String::new();
    for attempt in 1..=job.retry.max(1) {
        let mut state = Attempt {
            run_id,
            ..Attempt::default()
        };
        let mut pre_exec_error = None;
        for hook in &hooks {
            if let Err(err) = hook.pre_exec(&job, settings, &mut state).await {
                pre_exec_error = Some(format!(
                    "error exec hook {}: {err}",
                    Phase::PreExec.as_str()
                ));
                break;
            }
        }
        if let Some(error) = pre_exec_error {
            reporter.report_end(run_id, attempt, SyncStatus::Failed, &error, None);
            return RunEnd::Failed(error);
        }
        reporter.report(run_id, attempt, SyncStatus::Syncing, "", None);
        let watching = watch_progress(reporter, &state, run_id, attempt);
        let mut result = run_provider(reporter, &hooks, &state, kill).await;
        drop(watching);
        for hook in hooks.iter().rev() {
            if let Err(err) = hook.post_exec(&job, &mut state).await
                && result.is_ok()
            {
                result = Err(Failure::Error(format!(
                    "error exec hook {}: {err}",
                    Phase::PostExec.as_str()
                )));
            }
        }
        if result.is_ok()
            && let Err(error) = publish(&job).await
        {
            result = Err(Failure::Error(error));
        }
        let failure = match result {
            Ok(size) => match post_success(&hooks, &job, &state).await {
                Ok(()) => {
                    info!(mirror = %job.name, size = size.as_deref().unwrap_or("unknown"), "succeeded");
                    let transferred = transferred_bytes(&job, &state).await;
                    reporter.report_success(run_id, attempt, size, transferred);
                    return RunEnd::Success;
                }
                Err(error) => Failure::Error(error),
            },
            Err(failure) => failure,
        };
        for hook in hooks.iter().rev() {
            if let Err(err) = hook.post_fail(&job, &mut state).await {
                warn!(mirror = %job.name, error = %err, "post-fail hook failed");
            }
        }
        match failure {
            Failure::Killed => return RunEnd::Killed { run_id, attempt },
            Failure::Error(error) => {
                warn!(mirror = %job.name, attempt, %error, "failed");
                if attempt < job.retry {
                    reporter.report(run_id, attempt, SyncStatus::Failed, &error, None);
                } else {
                    reporter.report_end(run_id, attempt, SyncStatus::Failed, &error, None);
                }
                last_error = error;
            }
        }
        if attempt < job.retry {
            tokio::select! {
                () = tokio::time::sleep(retry_delay(attempt)) => {}
                () = kill.cancelled() => return RunEnd::Killed { run_id, attempt },
            }
        }
    }
    RunEnd::Failed(last_error)
}

/// What a successful rsync attempt transferred, from its log's `--stats`.
async fn transferred_bytes(job: &crate::config::JobConfig, attempt: &Attempt) -> Option<u64> {
    if job.provider == ProviderKind::Command {
        return None;
    }
    let log = attempt.log_file.clone()?;
    tokio::task::spawn_blocking(move || crate::analysis::rsync_transferred(&log))
        .await
        .ok()
        .flatten()
}

async fn post_success(
    hooks: &[Hook],
    job: &crate::config::JobConfig,
    state: &Attempt,
) -> Result<(), String> {
    for hook in hooks.iter().rev() {
        hook.post_success(job, state)
            .await
            .map_err(|err| format!("error exec hook {}: {err}", Phase::PostSuccess.as_str()))?;
    }
    Ok(())
}

enum Failure {
    Killed,
    Error(String),
}

/// Runs the provider's stages; the size found on success.
async fn run_provider(
    reporter: &Reporter,
    hooks: &[Hook],
    attempt: &Attempt,
    kill: &CancellationToken,
) -> Result<Option<String>, Failure> {
    let job = &reporter.job;
    if let Err(err) = tokio::fs::create_dir_all(&job.mirror_dir).await {
        return Err(Failure::Error(format!(
            "cannot create {}: {err}",
            job.mirror_dir.display()
        )));
    }
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    if job.provider == ProviderKind::Command {
        env.extend(tunasync_env(job, attempt));
    }
    env.extend(job.env.clone());
    let in_docker = hooks.contains(&Hook::Docker);
    let cgroup = attempt.cgroup.clone();
    let timeout = job.timeout_secs.map(Duration::from_secs);
    for (idx, stage) in job.stages.iter().enumerate() {
        let output = match (&attempt.log_file, idx) {
            (None, _) => Output::Discard,
            (Some(path), 0) => Output::Truncate(path.clone()),
            (Some(path), _) => Output::Append(path.clone()),
        };
        let log_file = attempt
            .log_file
            .as_ref()
            .map(|path| path.display().to_string());
        let argv = if in_docker {
            docker::wrap(job, stage, &env, log_file.as_deref())
        } else {
            stage.clone()
        };
        let spec = Spec {
            argv,
            cwd: job.mirror_dir.clone(),
            env: env.clone(),
            output,
            cgroup: cgroup.clone(),
            // Not for a docker run: the container's processes are docker's.
            pid_file: (!in_docker)
                .then(|| crate::leftovers::pid_file(job))
                .flatten(),
        };
        let ending = runner::run(&spec, timeout, kill).await.map_err(|err| {
            let text = tunasync_shared::error_chain(&err);
            Failure::Error(text)
        })?;
        match ending {
            Ending::Exited(status) => {
                let code = status.code();
                let accepted = status.success()
                    || code.is_some_and(|code| job.success_exit_codes.contains(&code));
                if !accepted {
                    let error = hooks::system::exit_text(status);
                    if job.provider != ProviderKind::Command
                        && let (Some(code), Some(path)) = (code, &attempt.log_file)
                        && let Some(meaning) = rsync_exit_meaning(code)
                    {
                        append_line(path, &format!("rsync error: {meaning}")).await;
                    }
                    return Err(Failure::Error(error));
                }
            }
            Ending::TimedOut(limit) => {
                if in_docker {
                    docker::stop(job).await;
                }
                return Err(Failure::Error(format!(
                    "{} timeout after {}",
                    job.name,
                    go_duration(limit)
                )));
            }
            Ending::Killed => {
                if in_docker {
                    docker::stop(job).await;
                }
                return Err(Failure::Killed);
            }
        }
    }
    analyse(reporter, attempt).await
}

/// Reports the attempt's progress from its log while it runs, until the guard is dropped
/// (also when the run's future is).
fn watch_progress(
    reporter: &Reporter,
    attempt_state: &Attempt,
    run_id: Uuid,
    attempt: u32,
) -> tokio_util::sync::DropGuard {
    let stop = CancellationToken::new();
    if let Some(log) = attempt_state.log_file.clone() {
        let reporter = reporter.clone();
        let rsync = reporter.job.provider != ProviderKind::Command;
        let started = std::time::Instant::now();
        tokio::spawn(progress::watch(log, rsync, stop.clone(), move |counts| {
            reporter.progress(run_id, attempt, started.elapsed(), counts);
        }));
    }
    stop.drop_guard()
}

async fn append_line(path: &std::path::Path, line: &str) {
    use tokio::io::AsyncWriteExt;
    if let Ok(mut file) = tokio::fs::OpenOptions::new().append(true).open(path).await {
        let _ = file.write_all(format!("{line}\n").as_bytes()).await;
    }
}

/// After a successful exit: `fail_on_match`, then the size.
async fn analyse(reporter: &Reporter, attempt: &Attempt) -> Result<Option<String>, Failure> {
    let job = reporter.job.clone();
    let log = attempt.log_file.clone();
    let analysed = tokio::task::spawn_blocking(move || -> Result<Option<String>, String> {
        match job.provider {
            ProviderKind::Rsync | ProviderKind::TwoStageRsync => {
                Ok(log.as_deref().and_then(rsync_size))
            }
            ProviderKind::Command => {
                if job.fail_on_match.is_none() && job.size_pattern.is_none() {
                    return Ok(None);
                }
                let Some(log) = log else {
                    return Err("invalid log file".to_owned());
                };
                let text = std::fs::read(&log)
                    .map_err(|err| format!("cannot read {}: {err}", log.display()))?;
                let text = String::from_utf8_lossy(&text);
                if let Some(pattern) = &job.fail_on_match {
                    let pattern = Regex::new(pattern).map_err(|err| err.to_string())?;
                    let n_matches = count_matches(&text, &pattern);
                    if n_matches > 0 {
                        return Err(format!("Fail-on-match regexp found {n_matches} matches"));
                    }
                }
                match &job.size_pattern {
                    Some(pattern) => {
                        let pattern = Regex::new(pattern).map_err(|err| err.to_string())?;
                        Ok(pattern_size(&text, &pattern))
                    }
                    None => Ok(None),
                }
            }
        }
    })
    .await
    .map_err(|err| Failure::Error(err.to_string()))?;
    analysed.map_err(Failure::Error)
}

#[cfg(test)]
mod tests;
