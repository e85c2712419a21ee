//! A member's side of a pool: take runs off the pool's queue while a slot is free.
//!
//! One consumer per pool this worker's file names. It reads the pool's queue only while the
//! worker has a free slot (none while its own jobs wait for one), one run at a time, so a
//! busy member never hoards runs that an idle one could take. For each run it reserves a
//! slot (a forced run takes none) and hands the delivery to the main loop, which claims the
//! run from the manager and, once granted, acks the delivery and starts the run; the
//! consumer waits for that before it reads on (the delivery must be acked on the channel it
//! came on, or the broker would hand it to another member).

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tunasync_shared::broker::{Incoming, QueueRole, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::names::PoolName;
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::pool::PoolRun;

use crate::slots::{Slot, Slots};

/// How long the main loop may take to settle a delivery (claim → grant) before the
/// consumer stops waiting for it.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// A run taken off a pool's queue, not acknowledged yet.
pub struct Delivery {
    pub run: PoolRun,
    /// Reserved for the run; none when the run is forced.
    pub slot: Option<Slot>,
    pub incoming: Incoming,
    /// Answered once the delivery is acked or returned.
    pub settled: oneshot::Sender<()>,
}

/// Consumes `pool`'s queue until `shutdown`, handing each run to `deliveries`.
pub async fn consume<T: Transport>(
    transport: T,
    pool: PoolName,
    slots: Slots,
    deliveries: mpsc::Sender<Delivery>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = slots.wait_free() => {}
            () = shutdown.cancelled() => return,
        }
        let mut queue = match transport.subscribe(QueueRole::Pool(pool.clone()), 1).await {
            Ok(queue) => queue,
            Err(err) => {
                warn!(%pool, error = %error_chain(&err), "cannot read the pool's queue; trying again");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    () = shutdown.cancelled() => return,
                }
            }
        };
        debug!(%pool, "reading the pool's queue");
        loop {
            let incoming = tokio::select! {
                incoming = queue.next() => incoming,
                () = slots.wait_full() => break,
                () = shutdown.cancelled() => return,
            };
            let Some(incoming) = incoming else { return };
            let run = match CommandEnvelope::decode(&incoming.payload) {
                Ok(CommandEnvelope {
                    command: Command::PoolRun(run),
                    ..
                }) if run.pool == pool => run,
                Ok(other) => {
                    warn!(%pool, kind = other.command.kind().as_str(), "not a run of this pool; dead-lettered");
                    let _ = incoming.dead_letter().await;
                    continue;
                }
                Err(err) => {
                    warn!(%pool, error = %error_chain(&err), "undecodable pool run; dead-lettered");
                    let _ = incoming.dead_letter().await;
                    continue;
                }
            };
            let slot = if run.force {
                None
            } else {
                match slots.try_acquire() {
                    Some(slot) => Some(slot),
                    None => {
                        // Taken meanwhile by a job of this worker: the run goes back for
                        // another member, and this one stops reading.
                        let _ = incoming.requeue().await;
                        break;
                    }
                }
            };
            let (settled, on_settled) = oneshot::channel();
            let delivery = Delivery {
                run,
                slot,
                incoming,
                settled,
            };
            if deliveries.send(delivery).await.is_err() {
                return;
            }
            let _ = tokio::time::timeout(SETTLE_TIMEOUT, on_settled).await;
            if slots.free() == 0 {
                break;
            }
        }
    }
}

/// How long a claim may wait for the manager's grant.
pub const CLAIM_TIMEOUT: Duration = Duration::from_secs(10);

type ClaimKey = (PoolName, tunasync_shared::names::MirrorName, u64);

/// The runs this member claimed and waits to hear about (owned by the main loop).
#[derive(Default)]
pub struct Claims {
    pending: std::collections::HashMap<ClaimKey, (Delivery, tokio::time::Instant)>,
}

impl Claims {
    pub fn insert(&mut self, delivery: Delivery) {
        let key = (
            delivery.run.pool.clone(),
            delivery.run.mirror.clone(),
            delivery.run.lease,
        );
        self.pending
            .insert(key, (delivery, tokio::time::Instant::now()));
    }

    /// The claimed delivery `grant` answers.
    pub fn take(&mut self, grant: &tunasync_shared::wire::pool::Grant) -> Option<Delivery> {
        let key = (grant.pool.clone(), grant.mirror.clone(), grant.lease);
        self.pending.remove(&key).map(|(delivery, _)| delivery)
    }

    /// Claims whose grant did not come in time.
    pub fn expired(&mut self) -> Vec<Delivery> {
        let expired: Vec<ClaimKey> = self
            .pending
            .iter()
            .filter(|(_, (_, since))| since.elapsed() >= CLAIM_TIMEOUT)
            .map(|(key, _)| key.clone())
            .collect();
        expired
            .into_iter()
            .filter_map(|key| self.pending.remove(&key).map(|(delivery, _)| delivery))
            .collect()
    }
}

/// Acks (`keep`: this member runs it, or nobody needs it back) or returns a delivery to its
/// queue, and lets its consumer read on; the slot reserved for it.
pub async fn settle(delivery: Delivery, keep: bool) -> Option<Slot> {
    let Delivery {
        slot,
        incoming,
        settled,
        run,
    } = delivery;
    let result = if keep {
        incoming.ack().await
    } else {
        incoming.requeue().await
    };
    if let Err(err) = result {
        warn!(pool = %run.pool, mirror = %run.mirror, error = %error_chain(&err), "cannot settle a pool run's delivery");
    }
    let _ = settled.send(());
    slot
}
