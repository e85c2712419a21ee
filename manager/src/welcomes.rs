//! Answers to `hello`s, published off the ingestion path.
//!
//! Ingestion hands each `welcome` here once its batch is committed and goes on acking: a
//! broker that holds publishes back (a resource alarm) must not stall the consumption of
//! events. Welcomes are published one at a time in the order they came, each bounded by a
//! timeout; only the newest per worker is kept (it holds the latest stored state). One the
//! broker did not take is tried again until it is [`MAX_AGE`] old.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tunasync_shared::broker::{BrokerError, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::command::Welcome;

use crate::dispatch::Dispatcher;

/// How long one publish may wait for the broker's confirm.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// A welcome not published by then is dropped (the worker, having waited for it, runs its
/// jobs; the next `hello` is answered again).
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// The pause after a failed publish.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Welcomes {
    queue: Mutex<Queue>,
    notify: Notify,
}

#[derive(Default)]
struct Queue {
    order: VecDeque<WorkerId>,
    latest: HashMap<WorkerId, Pending>,
}

struct Pending {
    welcome: Welcome,
    queued: Instant,
    failures: u32,
}

impl Welcomes {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `welcome` for `worker`, replacing one not sent yet. Never waits.
    pub fn send(&self, worker: WorkerId, welcome: Welcome) {
        {
            let mut queue = self.queue();
            let pending = Pending {
                welcome,
                queued: Instant::now(),
                failures: 0,
            };
            if queue.latest.insert(worker.clone(), pending).is_none() {
                queue.order.push_back(worker);
            }
        }
        self.notify.notify_one();
    }

    /// Welcomes waiting to be published.
    pub fn len(&self) -> usize {
        self.queue().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn next(&self) -> Option<(WorkerId, Pending)> {
        let mut queue = self.queue();
        let worker = queue.order.pop_front()?;
        let pending = queue.latest.remove(&worker)?;
        Some((worker, pending))
    }

    /// Puts back a welcome that was not published, unless a newer one came meanwhile.
    fn again(&self, worker: WorkerId, pending: Pending) {
        let mut queue = self.queue();
        if !queue.latest.contains_key(&worker) {
            queue.latest.insert(worker.clone(), pending);
            queue.order.push_back(worker);
        }
    }

    /// Publishes queued welcomes until `shutdown`.
    pub async fn run<T: Transport>(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher<T>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let Some((worker, mut pending)) = self.next() else {
                tokio::select! {
                    () = self.notify.notified() => continue,
                    () = shutdown.cancelled() => return,
                }
            };
            let publish = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                dispatcher.welcome(&worker, pending.welcome.clone()),
            );
            let result = tokio::select! {
                result = publish => result,
                () = shutdown.cancelled() => return,
            };
            let problem = match result {
                Ok(Ok(())) => {
                    debug!(%worker, "welcome sent");
                    continue;
                }
                Ok(Err(err @ BrokerError::Unroutable)) => {
                    // The worker has no command queue: trying again cannot help.
                    warn!(%worker, error = %error_chain(&err), "cannot answer hello");
                    continue;
                }
                Ok(Err(err)) => error_chain(&err),
                Err(_) => format!("not confirmed within {PUBLISH_TIMEOUT:?}"),
            };
            pending.failures += 1;
            if pending.queued.elapsed() >= MAX_AGE {
                warn!(%worker, %problem, "cannot send the welcome; dropped it (the next hello is answered again)");
                continue;
            }
            if pending.failures == 1 {
                warn!(%worker, %problem, "cannot send the welcome yet; trying again");
            } else {
                debug!(%worker, %problem, failures = pending.failures, "welcome not sent yet");
            }
            self.again(worker, pending);
            tokio::select! {
                () = tokio::time::sleep(RETRY_PAUSE) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn welcome(n: u64) -> Welcome {
        Welcome {
            jobs: vec![],
            last_seq: Some(n),
            offline_after_secs: None,
        }
    }

    #[test]
    fn the_newest_welcome_per_worker_keeps_its_place() {
        let welcomes = Welcomes::default();
        let w1 = WorkerId::new("w1").unwrap();
        let w2 = WorkerId::new("w2").unwrap();
        welcomes.send(w1.clone(), welcome(1));
        welcomes.send(w2.clone(), welcome(2));
        welcomes.send(w1.clone(), welcome(3));
        assert_eq!(welcomes.len(), 2);
        let (first, pending) = welcomes.next().unwrap();
        assert_eq!((&first, &pending.welcome), (&w1, &welcome(3)));
        // Not published: it goes back, behind w2, unless a newer one came.
        welcomes.again(w1.clone(), pending);
        welcomes.send(w2.clone(), welcome(4));
        let (second, pending) = welcomes.next().unwrap();
        assert_eq!((second, pending.welcome), (w2, welcome(4)));
        welcomes.send(w1.clone(), welcome(5));
        let stale = Pending {
            welcome: welcome(3),
            queued: Instant::now(),
            failures: 1,
        };
        welcomes.again(w1.clone(), stale);
        let (third, pending) = welcomes.next().unwrap();
        assert_eq!((third, pending.welcome), (w1, welcome(5)));
        assert!(welcomes.is_empty());
    }
}
