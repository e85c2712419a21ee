//! Pool runs and grants on their way to the broker.
//!
//! The pool scheduler (the state actor's `pool_tick`) commits each hand-out before it comes
//! here; a run is published with a confirm to its pool's queue (declared the first time),
//! and the confirmation is recorded. A run whose publication fails is simply not recorded
//! as published: the scheduler hands it here again after `PUBLISH_RETRY`. A grant goes to
//! the claiming member's own queue at once, in a task of its own.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tunasync_shared::broker::{Outgoing, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::names::{PoolName, WorkerId};
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::pool::Grant;

use crate::model::pools::Publication;

use crate::state::{Mutation, StateHandle};

/// How long one publish may wait for the broker's confirm.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

pub struct PoolPublisher<T> {
    transport: T,
    state: StateHandle,
    /// How long a grant may wait in the member's queue.
    expiry: Duration,
    runs: Mutex<VecDeque<Publication>>,
    notify: Notify,
    /// Pools whose queue this process has declared.
    declared: Mutex<HashSet<PoolName>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<T: Transport> PoolPublisher<T> {
    pub fn new(transport: T, state: StateHandle, expiry: Duration) -> Arc<Self> {
        Arc::new(PoolPublisher {
            transport,
            state,
            expiry,
            runs: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            declared: Mutex::new(HashSet::new()),
        })
    }

    /// Queues runs the scheduler handed out (and committed).
    pub fn runs(&self, runs: Vec<Publication>) {
        if runs.is_empty() {
            return;
        }
        lock(&self.runs).extend(runs);
        self.notify.notify_one();
    }

    /// Sends `grant` to the member that claimed the run.
    pub fn grant(self: &Arc<Self>, member: WorkerId, grant: Grant) {
        let publisher = self.clone();
        tokio::spawn(async move {
            let envelope = CommandEnvelope::new(member.clone(), Command::Grant(grant));
            let publish = publisher
                .transport
                .publish(Outgoing::command(&envelope, publisher.expiry));
            match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
                Ok(Ok(())) => debug!(%member, "grant sent"),
                Ok(Err(err)) => {
                    warn!(%member, error = %error_chain(&err), "cannot send a grant; the run is handed out again later")
                }
                Err(_) => {
                    warn!(%member, "a grant was not confirmed in time; the run is handed out again later")
                }
            }
        });
    }

    /// Publishes queued runs until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let next = lock(&self.runs).pop_front();
            let Some(run) = next else {
                tokio::select! {
                    () = self.notify.notified() => continue,
                    () = shutdown.cancelled() => return,
                }
            };
            tokio::select! {
                () = self.publish(run) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn publish(&self, publication: Publication) {
        let Publication { run, retry_at } = publication;
        let pool = run.pool.clone();
        let declared = lock(&self.declared).contains(&pool);
        if !declared {
            match tokio::time::timeout(PUBLISH_TIMEOUT, self.transport.declare_pool(&pool)).await {
                Ok(Ok(())) => {
                    lock(&self.declared).insert(pool.clone());
                }
                Ok(Err(err)) => {
                    warn!(%pool, error = %error_chain(&err), "cannot declare the pool's queue; trying again later");
                    return;
                }
                Err(_) => {
                    warn!(%pool, "declaring the pool's queue timed out; trying again later");
                    return;
                }
            }
        }
        let key = (pool.clone(), run.mirror.clone());
        let lease = run.lease;
        let envelope = CommandEnvelope::new(pool.as_worker_id(), Command::PoolRun(run));
        let publish = self
            .transport
            .publish(Outgoing::pool_run(&envelope, pool.clone()));
        match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
            Ok(Ok(())) => {
                debug!(%pool, mirror = %key.1, lease, "pool run published");
                if let Err(err) = self
                    .state
                    .mutate(Mutation::PoolRunPublished {
                        key,
                        lease,
                        retry_at,
                    })
                    .await
                {
                    debug!(error = %error_chain(&err), "cannot record a publication; it is published again later");
                }
            }
            Ok(Err(err)) => {
                warn!(%pool, error = %error_chain(&err), "cannot publish a pool run; trying again later");
            }
            Err(_) => warn!(%pool, "a pool run was not confirmed in time; trying again later"),
        }
    }
}
