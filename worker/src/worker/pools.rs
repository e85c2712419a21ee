//! A member's side of pools in the main loop: the pool consumers it runs, the runs it
//! claims and is granted, and fencing.

use std::time::Duration;

use tracing::{debug, info, warn};
use tunasync_shared::broker::Transport;
use tunasync_shared::names::PoolName;
use tunasync_shared::wire::event::Event;
use tunasync_shared::wire::pool::{Claim, Grant};

use super::Worker;
use crate::job::{By, Control, Mode, PooledStart};
use crate::pool::{self, Delivery};

impl<T: Transport> Worker<T> {
    /// Reads the queues of the pools the file's mirrors name, and only those (none in
    /// maintenance): a consumer
    /// for each new pool, and the consumers of pools no longer named are stopped (the
    /// broker hands a run one of them held, not yet claimed, to another member).
    pub(super) fn serve_pools(&mut self) {
        // A member in maintenance as a whole takes no pooled runs.
        let wanted: std::collections::BTreeSet<PoolName> = self
            .config
            .jobs
            .iter()
            .filter(|_| !self.maintenance.whole())
            .filter_map(|job| job.pool.clone())
            .collect();
        self.pool_consumers.retain(|pool, stop| {
            let keep = wanted.contains(pool);
            if !keep {
                info!(%pool, "no longer serving the pool");
                stop.cancel();
            }
            keep
        });
        for pool in wanted {
            if self.pool_consumers.contains_key(&pool) {
                continue;
            }
            info!(%pool, "serving the pool");
            let stop = self.pools_stop.child_token();
            tokio::spawn(pool::consume(
                self.transport.clone(),
                pool.clone(),
                self.context.slots.clone(),
                self.pool_sender.clone(),
                stop.clone(),
            ));
            self.pool_consumers.insert(pool, stop);
        }
    }

    /// A run taken off a pool's queue: claimed from the manager, unless this worker cannot
    /// run it now.
    pub(super) async fn on_pool_delivery(&mut self, delivery: Delivery) {
        let run = &delivery.run;
        let job = self
            .jobs
            .get(&run.mirror)
            .filter(|handle| handle.config.pool.as_ref() == Some(&run.pool));
        if let Some(handle) = job
            && *handle.mode.borrow() != Mode::Idle
        {
            debug!(pool = %run.pool, mirror = %run.mirror, "the mirror is busy here: the run goes back");
            pool::settle(delivery, false).await;
            return;
        }
        // A member whose file does not define the mirror (or defines it otherwise) claims
        // too: the manager refuses and hands the run to another member.
        let fingerprint = job.map(|handle| handle.config.fingerprint());
        self.outbox.push(Event::Claim(Claim {
            pool: run.pool.clone(),
            mirror: run.mirror.clone(),
            run_id: run.run_id,
            lease: run.lease,
            fingerprint,
        }));
        self.claims.insert(delivery);
    }

    /// The manager's answer to a claim.
    pub(super) async fn on_grant(&mut self, grant: Grant) {
        let Some(delivery) = self.claims.take(&grant) else {
            debug!(pool = %grant.pool, mirror = %grant.mirror, "a grant for no claim of ours");
            return;
        };
        let run_id = delivery.run.run_id;
        let slot = pool::settle(delivery, true).await;
        if !grant.granted {
            info!(pool = %grant.pool, mirror = %grant.mirror, reason = %grant.reason, "pool run not granted");
            return;
        }
        let Some(handle) = self.jobs.get(&grant.mirror) else {
            return;
        };
        info!(pool = %grant.pool, mirror = %grant.mirror, lease = grant.lease, "pool run granted");
        let start = PooledStart {
            pool: grant.pool,
            lease: grant.lease,
            run_id,
            slot,
        };
        let _ = handle.control.send(Control::StartPooled(start)).await;
    }

    /// Fencing: a member cut off from the broker (or frozen) for the manager's
    /// `offline_after` stops its pooled runs, which the manager has handed to others.
    pub(super) async fn fence(&mut self, frozen: Duration) {
        let Some(limit) = self.offline_after else {
            return;
        };
        let cut_off = self
            .outbox
            .since_confirmed()
            .is_some_and(|since| since > limit);
        if !cut_off && frozen <= limit {
            return;
        }
        for (name, handle) in &self.jobs {
            if handle.config.pool.is_some() && *handle.mode.borrow() == Mode::Running {
                warn!(mirror = %name, ?frozen, "cut off from the broker for longer than the manager's offline_after: stopping the pooled run (it was given away)");
                let _ = handle.control.send(Control::Stop(By::Fence)).await;
            }
        }
    }
}
