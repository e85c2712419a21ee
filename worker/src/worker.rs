//! The worker's main loop: the one owner of the job table and the schedule.
//!
//! It reacts to a closed set of inputs: commands from the worker's queue, jobs finishing,
//! the schedule coming due, reload requests (SIGHUP), a periodic tick (heartbeats, `hello`
//! after every (re)connection, the start-up deadline for the manager's `welcome`), and
//! shutdown (every running job is stopped and reported, then the process may exit).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use tunasync_shared::broker::{BrokerError, Incoming, QueueRole, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::gotime::GoTime;
use tunasync_shared::names::{MirrorName, PoolName};
use tunasync_shared::status::SyncStatus;
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::{Command, LogRequest, MaintenanceSet, Welcome};
use tunasync_shared::wire::event::{
    CmdOutcome, CmdResult, Event, Heartbeat, Hello, JobRemoved, JobSnapshot,
    Schedule as ScheduleEvent, ScheduledRun,
};
use uuid::Uuid;

use crate::config::{JobConfig, WorkerConfig};
use crate::hooks::HookSettings;
use crate::job::{self, By, Control, Finished, JobContext, JobHandle, Mode};
use crate::logs;
use crate::maintenance::Maintenance;
use crate::outbox::{self, Outbox};
use crate::pool::{self, Claims, Delivery};
use crate::schedule::Schedule;
use crate::slots::Slots;

mod pools;

/// Tunables that are not in worker.conf.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long to wait for the manager's `welcome` before running every job, counted from
    /// the first connection to the broker.
    pub welcome_wait: Duration,
    /// How long shutdown waits for running jobs to stop and events to be sent.
    pub shutdown_wait: Duration,
    /// Events kept while the broker is away.
    pub outbox_capacity: usize,
    /// The jobs' metrics (the health endpoint's `/metrics` renders them).
    pub metrics: crate::metrics::JobMetrics,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            welcome_wait: Duration::from_secs(10),
            shutdown_wait: Duration::from_secs(10),
            outbox_capacity: outbox::CAPACITY,
            metrics: crate::metrics::JobMetrics::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot consume the worker's command queue")]
    Subscribe(#[source] BrokerError),
}

pub struct Worker<T> {
    config: WorkerConfig,
    transport: T,
    options: Options,
    outbox: Outbox,
    context: JobContext,
    jobs: BTreeMap<MirrorName, JobHandle>,
    schedule: Schedule,
    schedule_changed: bool,
    finished: mpsc::Receiver<Finished>,
    session: Uuid,
    /// This host's name, for `hello`.
    host: String,
    /// Whether the jobs have been scheduled: by the first `welcome`, or after waiting for it.
    welcomed: bool,
    /// Runs taken off the pools' queues, from their consumers.
    pool_deliveries: mpsc::Receiver<Delivery>,
    pool_sender: mpsc::Sender<Delivery>,
    claims: Claims,
    /// The manager's `offline_after` (from its welcome): cut off this long, pooled runs stop.
    offline_after: Option<Duration>,
    /// The pools served (those the file's mirrors name), each stopped by its own token.
    pool_consumers: BTreeMap<PoolName, CancellationToken>,
    /// Stops every pool consumer at shutdown.
    pools_stop: CancellationToken,
    /// Logs being followed, by request: cancelled by a `log-stop` (each ends by itself too).
    follows: std::collections::HashMap<Uuid, CancellationToken>,
    /// What the manager says is in maintenance, and the runs parked meanwhile.
    maintenance: Maintenance,
}

impl<T: Transport> Worker<T> {
    pub fn new(
        config: WorkerConfig,
        transport: T,
        settings: HookSettings,
        options: Options,
    ) -> Self {
        let outbox = Outbox::with_capacity(config.name.clone(), options.outbox_capacity);
        let (finished_tx, finished) = mpsc::channel(256);
        let (pool_sender, pool_deliveries) = mpsc::channel(16);
        let context = JobContext {
            settings: Arc::new(settings),
            outbox: outbox.clone(),
            slots: Slots::new(config.concurrent),
            upstreams: crate::upstreams::UpstreamLimits::new(&config.per_upstream_concurrent),
            finished: finished_tx,
            metrics: options.metrics.clone(),
        };
        let mut worker = Worker {
            config,
            transport,
            options,
            outbox,
            context,
            jobs: BTreeMap::new(),
            schedule: Schedule::default(),
            schedule_changed: false,
            finished,
            session: Uuid::new_v4(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .unwrap_or_default(),
            welcomed: false,
            pool_deliveries,
            pool_sender,
            claims: Claims::default(),
            offline_after: None,
            pool_consumers: BTreeMap::new(),
            pools_stop: CancellationToken::new(),
            follows: std::collections::HashMap::new(),
            maintenance: Maintenance::default(),
        };
        let configs: Vec<JobConfig> = worker.config.jobs.clone();
        for job in configs {
            worker.add_job(Arc::new(job), Mode::Idle);
        }
        worker
    }

    fn add_job(&mut self, config: Arc<JobConfig>, mode: Mode) {
        let handle = job::spawn(config.clone(), mode, self.context.clone());
        self.jobs.insert(config.name.clone(), handle);
    }

    /// Runs until `shutdown`; `reload` asks for the config file to be applied again.
    pub async fn run(
        mut self,
        mut reload: mpsc::Receiver<()>,
        shutdown: CancellationToken,
    ) -> Result<(), WorkerError> {
        let mut commands = self
            .transport
            .subscribe(QueueRole::Worker(self.config.name.clone()), 16)
            .await
            .map_err(WorkerError::Subscribe)?;
        let outbox_stop = CancellationToken::new();
        let publisher = tokio::spawn(self.outbox.clone().run(
            self.transport.clone(),
            outbox_stop.clone(),
            self.options.shutdown_wait,
        ));
        info!(worker = %self.config.name, n_jobs = self.jobs.len(), concurrent = self.config.concurrent, "worker started");
        self.serve_pools();
        let mut last_tick = tokio::time::Instant::now();
        let mut first_connected: Option<tokio::time::Instant> = None;
        let mut reload_open = true;
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        let mut was_connected = false;
        let mut last_heartbeat: Option<tokio::time::Instant> = None;
        loop {
            let due_in = self
                .schedule
                .next_due()
                .map(|at| (at - Utc::now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                incoming = commands.next() => match incoming {
                    Some(incoming) => self.on_command(incoming).await,
                    None => break,
                },
                finished = self.finished.recv() => {
                    if let Some(finished) = finished {
                        self.on_finished(finished);
                    }
                }
                () = tokio::time::sleep(due_in) => self.start_due().await,
                delivery = self.pool_deliveries.recv() => {
                    if let Some(delivery) = delivery {
                        self.on_pool_delivery(delivery).await;
                    }
                }
                request = reload.recv(), if reload_open => match request {
                    Some(()) => match self.reload().await {
                        Ok(()) => info!("config reloaded"),
                        Err(err) => warn!("reload refused, the old config stays:\n{err}"),
                    },
                    // Nobody can ask for reloads any more (the `reload` command still can).
                    None => reload_open = false,
                },
                _ = tick.tick() => {
                    let frozen = last_tick.elapsed();
                    last_tick = tokio::time::Instant::now();
                    self.fence(frozen).await;
                    for expired in self.claims.expired() {
                        warn!(pool = %expired.run.pool, mirror = %expired.run.mirror, "no answer to a claim: the run goes back to the pool");
                        pool::settle(expired, false).await;
                    }
                    let connected = self.transport.is_connected();
                    if connected && !was_connected {
                        first_connected.get_or_insert_with(tokio::time::Instant::now);
                        self.send_hello();
                    }
                    was_connected = connected;
                    if last_heartbeat.is_none_or(|at| at.elapsed() >= self.config.heartbeat_interval) {
                        self.send_heartbeat();
                        last_heartbeat = Some(tokio::time::Instant::now());
                    }
                    if !self.welcomed
                        && first_connected.is_some_and(|at| at.elapsed() >= self.options.welcome_wait)
                    {
                        warn!(waited = ?self.options.welcome_wait, "no welcome from the manager since connecting: running every job now");
                        self.welcomed = true;
                        self.schedule_all_now();
                    }
                }
                () = shutdown.cancelled() => break,
            }
            if self.schedule_changed {
                self.schedule_changed = false;
                self.send_schedule();
            }
        }
        self.pools_stop.cancel();
        self.halt().await;
        outbox_stop.cancel();
        let _ = publisher.await;
        info!("worker stopped");
        Ok(())
    }

    async fn halt(&mut self) {
        info!(n_jobs = self.jobs.len(), "stopping every job");
        for handle in self.jobs.values() {
            let _ = handle.control.send(Control::Halt).await;
        }
        let deadline = tokio::time::Instant::now() + self.options.shutdown_wait;
        for (name, handle) in std::mem::take(&mut self.jobs) {
            let task = handle.task;
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                warn!(mirror = %name, "job did not stop in time");
            }
        }
    }

    fn schedule_at(&mut self, name: &MirrorName, at: DateTime<Utc>) {
        // A pooled mirror is scheduled by the manager.
        if let Some(handle) = self.jobs.get(name)
            && handle.config.pool.is_none()
        {
            let at = handle.config.schedule.jittered(at, &mut rand::rng());
            self.schedule.set(name.clone(), at);
            self.schedule_changed = true;
        }
    }

    fn unschedule(&mut self, name: &MirrorName) {
        if self.schedule.get(name).is_some() {
            self.schedule.remove(name);
            self.schedule_changed = true;
        }
    }

    fn schedule_all_now(&mut self) {
        let now = Utc::now();
        let idle: Vec<MirrorName> = self
            .jobs
            .iter()
            .filter(|(_, handle)| *handle.mode.borrow() == Mode::Idle)
            .map(|(name, _)| name.clone())
            .collect();
        for name in idle {
            self.schedule_at(&name, now);
        }
    }

    async fn start_due(&mut self) {
        let due = self.schedule.pop_due(Utc::now());
        if due.is_empty() {
            return;
        }
        self.schedule_changed = true;
        for name in due {
            if self.maintenance.holds(&name) {
                info!(mirror = %name, "due, but in maintenance: it runs when the maintenance ends");
                self.maintenance.park(name);
                continue;
            }
            if let Some(handle) = self.jobs.get(&name) {
                let _ = handle.control.send(Control::Start { force: false }).await;
            }
        }
    }

    /// A new maintenance set: runs parked by a maintenance that ended are scheduled now
    /// (their jitter spreads them out), and a member in maintenance as a whole stops
    /// reading its pools' queues.
    async fn apply_maintenance(&mut self, set: MaintenanceSet) {
        let whole = self.maintenance.whole();
        let Some(released) = self.maintenance.update(set) else {
            return;
        };
        if whole != self.maintenance.whole() {
            info!(
                in_maintenance = self.maintenance.whole(),
                "maintenance of the whole worker changed"
            );
            self.serve_pools();
        }
        let now = Utc::now();
        for name in released {
            info!(mirror = %name, "maintenance ended: running what came due meanwhile");
            self.schedule_at(&name, now);
        }
    }

    fn on_finished(&mut self, finished: Finished) {
        if !finished.schedule {
            return;
        }
        let Some(handle) = self.jobs.get(&finished.name) else {
            return;
        };
        let next = handle
            .config
            .schedule
            .next_after_run(Utc::now(), finished.failed_runs);
        if finished.failed_runs > 0 && handle.config.schedule.retry_after_failure.is_some() {
            info!(mirror = %finished.name, next = %next, failed_runs = finished.failed_runs, "failed: tried again at the next retry_after_failure");
        } else {
            info!(mirror = %finished.name, next = %next, "next run scheduled");
        }
        self.schedule_at(&finished.name, next);
    }

    async fn on_command(&mut self, incoming: Incoming) {
        let envelope = match CommandEnvelope::decode(&incoming.payload) {
            Ok(envelope) if envelope.header.worker == self.config.name => envelope,
            Ok(envelope) => {
                warn!(target_worker = %envelope.header.worker, "command for another worker; dead-lettered");
                let _ = incoming.dead_letter().await;
                return;
            }
            Err(err) => {
                warn!(error = %error_chain(&err), "undecodable command; dead-lettered");
                let _ = incoming.dead_letter().await;
                return;
            }
        };
        let kind = envelope.command.kind();
        let mirror = envelope.command.mirror().cloned();
        info!(command = kind.as_str(), mirror = ?mirror.as_ref().map(MirrorName::as_str), "received command");
        match envelope.command {
            Command::Log(request) => {
                self.send_log(envelope.header.id, request);
                if let Err(err) = incoming.ack().await {
                    warn!(error = %error_chain(&err), "cannot ack a command");
                }
                return;
            }
            Command::LogStop(stop) => {
                if let Some(follow) = self.follows.remove(&stop.request) {
                    follow.cancel();
                }
                if let Err(err) = incoming.ack().await {
                    warn!(error = %error_chain(&err), "cannot ack a command");
                }
                return;
            }
            _ => {}
        }
        let outcome = self.apply(envelope.command).await;
        if let Err(err) = incoming.ack().await {
            warn!(error = %error_chain(&err), "cannot ack a command");
        }
        if let Some(outcome) = outcome {
            self.outbox.push(Event::CmdResult(CmdResult {
                cmd_id: envelope.header.id,
                cmd: kind,
                mirror,
                outcome,
            }));
        }
    }

    /// Answers a `log` command with the job's latest log, in chunks, off the main loop; a
    /// follow then goes on while the job runs.
    fn send_log(&mut self, request_id: Uuid, request: LogRequest) {
        let job = self.jobs.get(&request.mirror);
        let log_dir = job.map(|handle| handle.config.log_dir.clone());
        let mode = job.map(|handle| handle.mode.clone());
        let outbox = self.outbox.clone();
        self.follows.retain(|_, follow| !follow.is_cancelled());
        let stop = self.pools_stop.child_token();
        self.follows.insert(request_id, stop.clone());
        tokio::spawn(async move {
            let answered = tokio::task::spawn_blocking(move || {
                logs::answer_from(request_id, &request, log_dir.as_deref())
            })
            .await;
            let Ok((chunks, from)) = answered else {
                return;
            };
            for chunk in chunks {
                outbox.push(Event::LogChunk(chunk));
            }
            match (from, mode) {
                (Some(from), Some(mode)) => {
                    let running = move || *mode.borrow() == Mode::Running;
                    logs::follow(request_id, from, running, stop, |chunk| {
                        outbox.push(Event::LogChunk(chunk));
                    })
                    .await;
                }
                _ => stop.cancel(),
            }
        });
    }

    /// Applies a command; the answer to send (none for `welcome`).
    async fn apply(&mut self, command: Command) -> Option<CmdOutcome> {
        let not_found = |mirror: &MirrorName| CmdOutcome::Refused {
            reason: format!("mirror {mirror} not found"),
        };
        let (mirror, control) = match command {
            Command::Welcome(welcome) => {
                self.apply_welcome(welcome).await;
                return None;
            }
            Command::Maintenance(set) => {
                self.apply_maintenance(set).await;
                return None;
            }
            Command::Grant(grant) => {
                self.on_grant(grant).await;
                return None;
            }
            Command::PoolRun(_) => {
                warn!("a pool run on the worker's own queue; ignored");
                return None;
            }
            // Handled before (`send_log`).
            Command::Log(_) | Command::LogStop(_) => return None,
            Command::Reload(_) => {
                return Some(match self.reload().await {
                    Ok(()) => CmdOutcome::Accepted,
                    Err(reason) => CmdOutcome::Refused { reason },
                });
            }
            Command::Ping(ping) => {
                return Some(match ping.mirror {
                    Some(mirror) if !self.jobs.contains_key(&mirror) => not_found(&mirror),
                    _ => CmdOutcome::Accepted,
                });
            }
            Command::Start(start) => (start.mirror, Control::Start { force: start.force }),
            Command::Stop(target) => (target.mirror, Control::Stop(By::Command)),
            Command::Disable(target) => (target.mirror, Control::Disable(By::Command)),
            Command::Restart(target) => (target.mirror, Control::Restart),
        };
        let Some(handle) = self.jobs.get(&mirror) else {
            return Some(not_found(&mirror));
        };
        let control = match (&handle.config.pool, control) {
            (Some(pool), Control::Start { .. } | Control::Restart) => {
                return Some(CmdOutcome::Refused {
                    reason: format!(
                        "{mirror} is a mirror of pool {pool}: start it through the pool (-w {pool})"
                    ),
                });
            }
            // The manager holds a pooled mirror itself: the member only ends the run, and
            // stays ready for the pool's next one.
            (Some(_), Control::Stop(_) | Control::Disable(_)) => Control::Stop(By::Fence),
            (_, control) => control,
        };
        // A start without -f in a blackout window waits for its end.
        if let Control::Start { force: false } = control
            && let Some((window, end)) = handle.config.schedule.blackout_at(Utc::now())
        {
            let window = window.to_string();
            self.maintenance.unpark(&mirror);
            // Scheduled like any run (jitter, then out of every window).
            self.schedule_at(&mirror, end);
            let at = self.schedule.get(&mirror).unwrap_or(end);
            info!(mirror = %mirror, until = %at, "start during a blackout: it waits");
            let reason = format!(
                "{mirror} is in its blackout window \"{window}\": it starts at {} (start -f runs it now)",
                tunasync_shared::gotime::GoTime::from(at).web_string()
            );
            return Some(CmdOutcome::Deferred { reason });
        }
        let sender = handle.control.clone();
        self.unschedule(&mirror);
        self.maintenance.unpark(&mirror);
        if sender.send(control).await.is_err() {
            return Some(CmdOutcome::Refused {
                reason: format!("job {mirror} has stopped"),
            });
        }
        Some(CmdOutcome::Accepted)
    }

    /// The manager's stored state decides what stays disabled or paused (every `welcome`,
    /// also one that comes after the worker stopped waiting for it and ran its jobs: those
    /// the operator stopped or disabled are stopped again) and, the first time, when each
    /// job runs next (the last success plus its interval).
    async fn apply_welcome(&mut self, welcome: Welcome) {
        if let Some(secs) = welcome.offline_after_secs {
            self.offline_after = Some(Duration::from_secs(secs));
        }
        if let Some(seen) = welcome.last_seq
            && self.outbox.advance_past(seen)
        {
            warn!(
                manager_holds = seen,
                "the manager holds event numbers from this worker that are ahead of its own \
                 (was the clock stepped back?): numbering continues after them; sending the \
                 state again"
            );
            self.send_hello();
        }
        if let Some(set) = welcome.maintenance {
            self.apply_maintenance(set).await;
        }
        let first = !self.welcomed;
        self.welcomed = true;
        let now = Utc::now();
        let mut known = Vec::new();
        for stored in welcome.jobs {
            let Some(handle) = self.jobs.get(&stored.mirror) else {
                continue;
            };
            known.push(stored.mirror.clone());
            let mode = *handle.mode.borrow();
            match stored.status {
                SyncStatus::Disabled => {
                    if mode != Mode::Disabled {
                        if !first {
                            info!(mirror = %stored.mirror, "disabled by the manager's stored state");
                        }
                        let _ = handle.control.send(Control::Disable(By::Welcome)).await;
                        self.unschedule(&stored.mirror);
                    }
                }
                SyncStatus::Paused => {
                    if !matches!(mode, Mode::Paused | Mode::Disabled) {
                        if !first {
                            info!(mirror = %stored.mirror, "paused by the manager's stored state");
                        }
                        let _ = handle.control.send(Control::Stop(By::Welcome)).await;
                        self.unschedule(&stored.mirror);
                    }
                }
                _ if !first => {}
                _ => {
                    let last_success = (!stored.last_update.is_zero())
                        .then(|| stored.last_update.as_datetime().to_utc());
                    let next = handle.config.schedule.resume(last_success, now);
                    self.schedule_at(&stored.mirror, next);
                }
            }
        }
        if !first {
            return;
        }
        let unknown: Vec<MirrorName> = self
            .jobs
            .keys()
            .filter(|name| !known.contains(name))
            .cloned()
            .collect();
        for name in unknown {
            self.schedule_at(&name, now);
        }
        info!(
            n_scheduled = self.schedule.len(),
            "welcome from the manager applied"
        );
    }

    /// Applies the config file again. On error nothing changes.
    pub async fn reload(&mut self) -> Result<(), String> {
        let file = self.config.file.clone();
        let deployment = self.config.deployment;
        let loaded = tokio::task::spawn_blocking(move || WorkerConfig::load_as(&file, deployment))
            .await
            .map_err(|err| err.to_string())?
            .map_err(|err| err.to_string())?;
        for warning in &loaded.warnings {
            warn!("{warning}");
        }
        let new = loaded.config;
        if new.name != self.config.name
            || new.broker != self.config.broker
            || new.health_addr != self.config.health_addr
        {
            warn!("global.name, [broker] and [health] changes take effect after a restart");
        }
        if new.cgroup != self.config.cgroup
            || new.zfs != self.config.zfs
            || new.btrfs != self.config.btrfs
        {
            warn!("[cgroup], [zfs] and [btrfs_snapshot] changes take effect after a restart");
        }
        self.context.slots.set_limit(new.concurrent);
        self.context
            .upstreams
            .set_limits(&new.per_upstream_concurrent);

        let new_jobs: BTreeMap<MirrorName, JobConfig> = new
            .jobs
            .iter()
            .map(|job| (job.name.clone(), job.clone()))
            .collect();
        let removed: Vec<MirrorName> = self
            .jobs
            .keys()
            .filter(|name| !new_jobs.contains_key(*name))
            .cloned()
            .collect();
        for name in removed {
            if let Some(handle) = self.jobs.remove(&name) {
                let _ = handle.control.send(Control::Disable(By::Command)).await;
                let _ = handle.control.send(Control::Halt).await;
            }
            self.unschedule(&name);
            info!(mirror = %name, "job removed by reload");
            self.outbox
                .push(Event::JobRemoved(JobRemoved { mirror: name }));
        }
        let now = Utc::now();
        for (name, job) in new_jobs {
            match self.jobs.get_mut(&name) {
                None => {
                    info!(mirror = %name, "job added by reload");
                    self.add_job(Arc::new(job), Mode::Idle);
                    self.schedule_at(&name, now);
                }
                Some(handle) if *handle.config != job => {
                    info!(mirror = %name, "job changed by reload");
                    let config = Arc::new(job);
                    handle.config = config.clone();
                    let _ = handle
                        .control
                        .send(Control::Reconfigure(config.clone()))
                        .await;
                    if config.pool.is_some() {
                        // Now the manager's to schedule.
                        self.unschedule(&name);
                    } else if *handle.mode.borrow() == Mode::Idle {
                        self.schedule_at(&name, now);
                    }
                }
                Some(_) => {}
            }
        }
        let file = self.config.file.clone();
        self.config = WorkerConfig { file, ..new };
        self.serve_pools();
        self.send_hello();
        Ok(())
    }

    fn snapshot(&self) -> Vec<JobSnapshot> {
        self.jobs
            .iter()
            .map(|(name, handle)| {
                let state = handle.state.borrow().clone();
                let config = &handle.config;
                JobSnapshot {
                    mirror: name.clone(),
                    provider: config.provider,
                    upstream: config.upstream.clone(),
                    is_master: config.is_master,
                    interval_minutes: config.schedule.interval_minutes(),
                    cron: config.schedule.cron().map(|cron| cron.to_string()),
                    jitter_secs: config.schedule.jitter.as_secs(),
                    status: state.status,
                    run_id: state.run_id,
                    last_update: state.last_update,
                    last_started: state.last_started,
                    last_ended: state.last_ended,
                    next_schedule: self.schedule.get(name).map_or(GoTime::ZERO, GoTime::from),
                    size: state.size,
                    error_msg: state.error_msg,
                    pool: config.pool.clone(),
                    fingerprint: Some(config.fingerprint()),
                    url: config.url.clone(),
                    desc: config.desc.clone(),
                    // The manager schedules pooled mirrors by these.
                    rules: if config.pool.is_some() {
                        let priority = (config.priority != crate::config::DEFAULT_PRIORITY)
                            .then_some(config.priority);
                        let mut extras = config.schedule.extras(priority);
                        extras.upstream_limit = self
                            .context
                            .upstreams
                            .limit_of(&config.upstream)
                            .and_then(|limit| u32::try_from(limit).ok());
                        extras
                    } else {
                        Default::default()
                    },
                }
            })
            .collect()
    }

    fn send_hello(&self) {
        self.outbox.push(Event::Hello(Hello {
            version: tunasync_shared::VERSION.to_owned(),
            host: self.host.clone(),
            session: self.session,
            heartbeat_interval_secs: u32::try_from(self.config.heartbeat_interval.as_secs())
                .unwrap_or(u32::MAX),
            jobs: self.snapshot(),
        }));
    }

    fn send_heartbeat(&self) {
        let running = self
            .jobs
            .iter()
            .filter(|(_, handle)| *handle.mode.borrow() == Mode::Running)
            .map(|(name, _)| name.clone())
            .collect();
        let free_slots = u32::try_from(self.context.slots.free()).unwrap_or(u32::MAX);
        self.outbox.push(Event::Heartbeat(Heartbeat {
            session: self.session,
            interval_secs: u32::try_from(self.config.heartbeat_interval.as_secs())
                .unwrap_or(u32::MAX),
            running,
            free_slots: Some(free_slots),
        }));
    }

    fn send_schedule(&self) {
        let schedules = self
            .schedule
            .entries()
            .map(|(name, at)| ScheduledRun {
                mirror: name.clone(),
                next_schedule: GoTime::from(at),
            })
            .collect();
        self.outbox
            .push(Event::Schedule(ScheduleEvent { schedules }));
    }
}
