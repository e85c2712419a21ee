//! A job's controller: one task per job that owns its state (idle, running, paused,
//! disabled) and obeys control messages, tunasync's job state machine.
//!
//! While running: `start` is ignored; `stop` kills the run and pauses; `disable` kills and
//! disables; `restart` kills (reported `failed` / "killed by manager") and runs again;
//! `halt` (shutdown) kills (reported the same way) and ends the task. While idle: `start` and
//! `restart` run it (also when paused or disabled); `stop` pauses; `disable` disables.
//! A changed config that arrives during a run is taken after the run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tunasync_shared::names::{MirrorName, PoolName};
use tunasync_shared::status::SyncStatus;
use uuid::Uuid;

use crate::config::JobConfig;
use crate::hooks::HookSettings;
use crate::outbox::Outbox;
use crate::pipeline::{self, KILLED, RunEnd};
use crate::report::{LocalState, Reporter};
use crate::slots::{Slot, Slots};

/// What the worker asks of a job.
#[derive(Debug)]
pub enum Control {
    Start {
        force: bool,
    },
    /// Run a pooled mirror's run that the manager granted this worker.
    StartPooled(PooledStart),
    Stop(By),
    Disable(By),
    Restart,
    Halt,
    Reconfigure(Arc<JobConfig>),
}

/// A granted run of a pooled mirror.
#[derive(Debug)]
pub struct PooledStart {
    pub pool: PoolName,
    pub lease: u64,
    pub run_id: Uuid,
    /// The slot reserved for it before it was claimed; none for a forced run.
    pub slot: Option<Slot>,
}

/// Who stops or disables a job, which decides whether a run it kills is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// The operator's command: the manager recorded it already (tunasync reports nothing).
    Command,
    /// The manager's stored state in a `welcome` (the worker had run the job before it
    /// learnt of the hold): the run it kills is reported, so its history entry ends.
    Welcome,
    /// Fencing: a pooled run the manager has given to another member since this one was cut
    /// off. Killed without a report; the job stays idle.
    Fence,
}

/// The error of a run killed because the manager holds the job paused or disabled.
pub const HELD: &str = "killed: the manager holds this job paused or disabled";

/// The job's own idea of where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Idle,
    Waiting,
    Running,
    Paused,
    Disabled,
}

/// What a job tells the worker when a run is over.
#[derive(Debug, Clone)]
pub struct Finished {
    pub name: MirrorName,
    /// Whether the job should be scheduled again (the run ended by itself).
    pub schedule: bool,
    /// Runs in a row that failed all their attempts, this one included (0: it succeeded).
    pub failed_runs: u32,
}

/// The worker's handle on a job.
pub struct JobHandle {
    pub control: mpsc::Sender<Control>,
    pub mode: watch::Receiver<Mode>,
    pub state: watch::Receiver<LocalState>,
    pub config: Arc<JobConfig>,
    pub task: JoinHandle<()>,
}

/// Everything a job task shares with the rest of the worker.
#[derive(Clone)]
pub struct JobContext {
    pub settings: Arc<HookSettings>,
    pub outbox: Outbox,
    pub slots: Slots,
    pub upstreams: crate::upstreams::UpstreamLimits,
    pub finished: mpsc::Sender<Finished>,
    pub metrics: crate::metrics::JobMetrics,
}

/// Starts the task of `config` in `mode` (idle, paused or disabled).
pub fn spawn(config: Arc<JobConfig>, mode: Mode, context: JobContext) -> JobHandle {
    let (control, receiver) = mpsc::channel(16);
    let (mode_tx, mode_rx) = watch::channel(mode);
    let (state_tx, state_rx) = watch::channel(LocalState {
        status: match mode {
            Mode::Paused => SyncStatus::Paused,
            Mode::Disabled => SyncStatus::Disabled,
            _ => SyncStatus::None,
        },
        ..LocalState::default()
    });
    let job = Job {
        reporter: Reporter {
            job: config.clone(),
            outbox: context.outbox.clone(),
            state: Arc::new(state_tx),
            pooled: None,
            metrics: context.metrics.clone(),
        },
        context,
        mode: mode_tx,
        receiver,
        failed_runs: 0,
    };
    let task = tokio::spawn(job.run());
    JobHandle {
        control,
        mode: mode_rx,
        state: state_rx,
        config,
        task,
    }
}

struct Job {
    reporter: Reporter,
    context: JobContext,
    mode: watch::Sender<Mode>,
    receiver: mpsc::Receiver<Control>,
    /// Runs in a row that failed all their attempts (since this worker started).
    failed_runs: u32,
}

/// What a control message did to a run in progress.
enum Interrupt {
    None,
    Stop(By),
    Disable(By),
    Restart,
    Halt,
}

impl Interrupt {
    fn as_str(&self) -> &'static str {
        match self {
            Interrupt::None => "none",
            Interrupt::Stop(_) => "stop",
            Interrupt::Disable(_) => "disable",
            Interrupt::Restart => "restart",
            Interrupt::Halt => "shutdown",
        }
    }
}

impl Job {
    fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    async fn run(mut self) {
        while let Some(control) = self.receiver.recv().await {
            let mut force = match control {
                Control::Start { force } => force,
                Control::StartPooled(start) => {
                    // The manager schedules a pooled mirror: no retry or next run here.
                    if let Interrupt::Halt = self.run_once(false, Some(start)).await {
                        return;
                    }
                    continue;
                }
                Control::Restart => false,
                // Nothing runs: nothing to fence.
                Control::Stop(By::Fence) => continue,
                Control::Stop(_) => {
                    if self.mode() != Mode::Disabled {
                        self.set_mode(Mode::Paused);
                        self.reporter.set_quietly(SyncStatus::Paused);
                    }
                    continue;
                }
                Control::Disable(_) => {
                    self.set_mode(Mode::Disabled);
                    self.reporter.set_quietly(SyncStatus::Disabled);
                    continue;
                }
                Control::Halt => return,
                Control::Reconfigure(config) => {
                    self.reporter.job = config;
                    continue;
                }
            };
            loop {
                match self.run_once(force, None).await {
                    Interrupt::Restart => {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        force = false;
                    }
                    Interrupt::Halt => return,
                    Interrupt::None | Interrupt::Stop(_) | Interrupt::Disable(_) => break,
                }
            }
        }
    }

    /// One run: waits for a slot (unless forced, or pooled with its slot reserved), runs,
    /// and handles control meanwhile.
    async fn run_once(&mut self, force: bool, pooled: Option<PooledStart>) -> Interrupt {
        let name = self.reporter.job.name.clone();
        self.set_mode(Mode::Waiting);
        let slots = self.context.slots.clone();
        let mut reporter = self.reporter.clone();
        let run_id = pooled
            .as_ref()
            .map_or_else(Uuid::new_v4, |start| start.run_id);
        let is_pooled = pooled.is_some();
        let (_upstream, _slot) = if let Some(start) = pooled {
            reporter.pooled = Some((start.pool, start.lease));
            (None, start.slot)
        } else if force {
            (None, None)
        } else {
            // The upstream host's turn first, then a slot: waiting for the host holds none.
            let upstreams = self.context.upstreams.clone();
            let upstream = self.reporter.job.upstream.clone();
            let priority = self.reporter.job.priority;
            let acquire = async move {
                let permit = upstreams.acquire(&upstream).await;
                (permit, slots.acquire(priority).await)
            };
            tokio::pin!(acquire);
            loop {
                tokio::select! {
                    (permit, slot) = &mut acquire => break (permit, Some(slot)),
                    control = self.receiver.recv() => match control {
                        Some(Control::Stop(by)) => {
                            self.set_mode(Mode::Paused);
                            self.reporter.set_quietly(SyncStatus::Paused);
                            return Interrupt::Stop(by);
                        }
                        Some(Control::Disable(by)) => {
                            self.set_mode(Mode::Disabled);
                            self.reporter.set_quietly(SyncStatus::Disabled);
                            return Interrupt::Disable(by);
                        }
                        Some(Control::Halt) | None => return Interrupt::Halt,
                        Some(Control::Start { force: true }) => break (None, None),
                        Some(Control::Reconfigure(config)) => self.reporter.job = config,
                        Some(Control::Start { .. } | Control::Restart | Control::StartPooled(_)) => {}
                    },
                }
            }
        };
        self.set_mode(Mode::Running);
        info!(mirror = %name, force, "start");
        let kill = CancellationToken::new();
        let mut interrupt = Interrupt::None;
        let mut pending_config = None;
        reporter.job = self.reporter.job.clone();
        let end = {
            let reporter = reporter.clone();
            let settings = self.context.settings.clone();
            let run_kill = kill.clone();
            let run = async move { pipeline::run(&reporter, &settings, &run_kill, run_id).await };
            tokio::pin!(run);
            loop {
                tokio::select! {
                    end = &mut run => break end,
                    control = self.receiver.recv() => match control {
                        Some(Control::Stop(by)) => { interrupt = Interrupt::Stop(by); kill.cancel(); }
                        Some(Control::Disable(by)) => { interrupt = Interrupt::Disable(by); kill.cancel(); }
                        Some(Control::Restart) => { interrupt = Interrupt::Restart; kill.cancel(); }
                        Some(Control::Halt) | None => { interrupt = Interrupt::Halt; kill.cancel(); }
                        Some(Control::Reconfigure(config)) => pending_config = Some(config),
                        Some(Control::Start { .. } | Control::StartPooled(_)) => {}
                    },
                }
            }
        };
        match &end {
            RunEnd::Success => self.failed_runs = 0,
            RunEnd::Failed(_) => self.failed_runs = self.failed_runs.saturating_add(1),
            RunEnd::Killed { .. } => {}
        }
        if let RunEnd::Killed { run_id, attempt } = &end {
            info!(mirror = %name, reason = interrupt.as_str(), "run killed");
            match interrupt {
                // tunasync reports restart and shutdown kills; stop and disable are the
                // manager's own doing, and it already recorded paused / disabled.
                Interrupt::Restart | Interrupt::Halt => {
                    reporter.report_end(*run_id, *attempt, SyncStatus::Failed, KILLED, None);
                }
                Interrupt::Stop(By::Fence) => {}
                Interrupt::Stop(by) | Interrupt::Disable(by) => {
                    if by == By::Welcome {
                        reporter.report_end(*run_id, *attempt, SyncStatus::Failed, HELD, None);
                    }
                    let status = match interrupt {
                        Interrupt::Stop(_) => SyncStatus::Paused,
                        _ => SyncStatus::Disabled,
                    };
                    self.reporter.set_quietly(status);
                }
                Interrupt::None => {}
            }
        }
        if let Some(config) = pending_config {
            self.reporter.job = config;
        }
        let (mode, schedule) = match interrupt {
            Interrupt::Stop(By::Fence) => (Mode::Idle, false),
            Interrupt::Stop(_) => (Mode::Paused, false),
            Interrupt::Disable(_) => (Mode::Disabled, false),
            Interrupt::Restart | Interrupt::Halt => (Mode::Idle, false),
            Interrupt::None => (Mode::Idle, !is_pooled),
        };
        self.set_mode(mode);
        let _ = self
            .context
            .finished
            .send(Finished {
                name,
                schedule,
                failed_runs: self.failed_runs,
            })
            .await;
        interrupt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorkerConfig;
    use tunasync_shared::names::WorkerId;
    use tunasync_shared::testkit::wait_until;
    use tunasync_shared::wire::Event;

    const WAIT: Duration = Duration::from_secs(10);

    fn jobs(dir: &std::path::Path) -> Vec<Arc<JobConfig>> {
        let text = format!(
            "[broker]\nurl = \"amqp://localhost\"\n[global]\nname = \"w\"\nlog_dir = \"/dev/null\"\nmirror_dir = \"{}\"\n\
             [[mirrors]]\nname = \"a\"\nprovider = \"command\"\ncommand = \"/bin/sleep 30\"\n\
             [[mirrors]]\nname = \"b\"\nprovider = \"command\"\ncommand = \"/bin/sleep 30\"\n\
             [[mirrors]]\nname = \"c\"\nprovider = \"command\"\ncommand = \"/bin/sleep 30\"\n",
            dir.display()
        );
        let path = dir.join("w.conf");
        std::fs::write(&path, text).unwrap();
        WorkerConfig::load(&path)
            .unwrap()
            .config
            .jobs
            .into_iter()
            .map(Arc::new)
            .collect()
    }

    fn mode(handle: &JobHandle) -> Mode {
        *handle.mode.borrow()
    }

    /// tunasync's concurrency test: the limit holds, `force` bypasses it, and stopping a job
    /// that waits for a slot works; a shutdown kill is reported, a stop is not.
    #[tokio::test]
    async fn concurrency_force_stop_and_halt() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(WorkerId::new("w").unwrap());
        let (finished, mut finished_rx) = mpsc::channel(16);
        let context = JobContext {
            settings: Arc::new(HookSettings::default()),
            outbox: outbox.clone(),
            slots: Slots::new(1),
            upstreams: crate::upstreams::UpstreamLimits::default(),
            finished,
            metrics: crate::metrics::JobMetrics::default(),
        };
        let handles: Vec<JobHandle> = jobs(dir.path())
            .into_iter()
            .map(|config| spawn(config, Mode::Idle, context.clone()))
            .collect();
        let [a, b, c] = &handles[..] else {
            panic!("three jobs")
        };
        a.control
            .send(Control::Start { force: false })
            .await
            .unwrap();
        wait_until(WAIT, "a to run", || mode(a) == Mode::Running).await;
        b.control
            .send(Control::Start { force: false })
            .await
            .unwrap();
        wait_until(WAIT, "b to wait for a slot", || mode(b) == Mode::Waiting).await;
        c.control
            .send(Control::Start { force: true })
            .await
            .unwrap();
        wait_until(WAIT, "c to run past the limit", || mode(c) == Mode::Running).await;
        assert_eq!(mode(b), Mode::Waiting, "the limit still holds for b");

        b.control.send(Control::Stop(By::Command)).await.unwrap();
        wait_until(WAIT, "b paused", || mode(b) == Mode::Paused).await;
        c.control.send(Control::Stop(By::Command)).await.unwrap();
        wait_until(WAIT, "c paused", || mode(c) == Mode::Paused).await;
        // b never ran, so only c's run ends; a stopped run is not scheduled again.
        let stopped = finished_rx.recv().await.unwrap();
        assert_eq!((stopped.name.as_str(), stopped.schedule), ("c", false));

        a.control.send(Control::Halt).await.unwrap();
        wait_until(WAIT, "a to end", || a.task.is_finished()).await;
        let statuses: Vec<(String, SyncStatus, String)> = outbox
            .take_all()
            .into_iter()
            .filter_map(|envelope| match envelope.event {
                Event::Status(status) => {
                    Some((status.mirror.to_string(), status.status, status.error_msg))
                }
                _ => None,
            })
            .collect();
        let failed: Vec<&(String, SyncStatus, String)> = statuses
            .iter()
            .filter(|(_, status, _)| *status == SyncStatus::Failed)
            .collect();
        assert_eq!(
            failed,
            [&("a".to_owned(), SyncStatus::Failed, KILLED.to_owned())],
            "{statuses:?}"
        );
        assert_eq!(c.state.borrow().status, SyncStatus::Paused);
    }
}
