//! What the manager tells a worker of its own accord, published off the paths that decide
//! it: the `welcome` that answers a `hello`, and the `maintenance` set after a change.
//!
//! Ingestion hands each `welcome` here once its batch is committed and goes on acking (a
//! broker that holds publishes back, during a resource alarm, must not stall the
//! consumption of events); the state actor hands each `maintenance` set here once its change
//! is committed. Notices are published one at a time in the order they came, each bounded
//! by a timeout; only the newest per worker and kind is kept (it holds the latest state).
//! One the broker did not take is tried again until it is [`MAX_AGE`] old.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tunasync_shared::broker::{BrokerError, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::command::{Command, CommandKind, MaintenanceSet, Welcome};

use crate::dispatch::Dispatcher;

/// How long one publish may wait for the broker's confirm.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// A notice not published by then is dropped (a worker waiting for its welcome runs its
/// jobs; the next `hello` is answered again, and every welcome carries the maintenance).
pub const MAX_AGE: Duration = Duration::from_secs(600);
/// The pause after a failed publish.
const RETRY_PAUSE: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Notices {
    queue: Mutex<Queue>,
    notify: Notify,
    /// Workers without a command queue, already logged (a worker restarting in a loop, or
    /// many simulated ones, would log a line per `hello`).
    unroutable: crate::once_log::OnceLog<Key>,
}

#[derive(Default)]
struct Queue {
    order: VecDeque<Key>,
    latest: HashMap<Key, Pending>,
}

/// The newest notice of each kind per worker is kept.
type Key = (WorkerId, CommandKind);

struct Pending {
    command: Command,
    queued: Instant,
    failures: u32,
}

impl Notices {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `welcome` for `worker`, replacing one not sent yet. Never waits.
    pub fn welcome(&self, worker: WorkerId, welcome: Welcome) {
        self.queue_notice(worker, Command::Welcome(welcome));
    }

    /// Queues a maintenance set for `worker`, replacing one not sent yet. Never waits.
    pub fn maintenance(&self, worker: WorkerId, set: MaintenanceSet) {
        self.queue_notice(worker, Command::Maintenance(set));
    }

    fn queue_notice(&self, worker: WorkerId, command: Command) {
        {
            let mut queue = self.queue();
            let key = (worker, command.kind());
            let pending = Pending {
                command,
                queued: Instant::now(),
                failures: 0,
            };
            if queue.latest.insert(key.clone(), pending).is_none() {
                queue.order.push_back(key);
            }
        }
        self.notify.notify_one();
    }

    /// Notices waiting to be published.
    pub fn len(&self) -> usize {
        self.queue().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn next(&self) -> Option<(Key, Pending)> {
        let mut queue = self.queue();
        let key = queue.order.pop_front()?;
        let pending = queue.latest.remove(&key)?;
        Some((key, pending))
    }

    /// Puts back a notice that was not published, unless a newer one came meanwhile.
    fn again(&self, key: Key, pending: Pending) {
        let mut queue = self.queue();
        if !queue.latest.contains_key(&key) {
            queue.latest.insert(key.clone(), pending);
            queue.order.push_back(key);
        }
    }

    /// Publishes queued notices until `shutdown`.
    pub async fn run<T: Transport>(
        self: Arc<Self>,
        dispatcher: Arc<Dispatcher<T>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let Some((key, mut pending)) = self.next() else {
                tokio::select! {
                    () = self.notify.notified() => continue,
                    () = shutdown.cancelled() => return,
                }
            };
            let (worker, kind) = (&key.0, key.1.as_str());
            let publish = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                dispatcher.notify(worker, pending.command.clone()),
            );
            let result = tokio::select! {
                result = publish => result,
                () = shutdown.cancelled() => return,
            };
            let problem = match result {
                Ok(Ok(())) => {
                    debug!(%worker, kind, "notice sent");
                    continue;
                }
                Ok(Err(err @ BrokerError::Unroutable)) => {
                    // The worker has no command queue: trying again cannot help.
                    if self.unroutable.first(key.clone()) {
                        warn!(%worker, kind, error = %error_chain(&err), "cannot tell the worker (logged once per worker and kind)");
                    } else {
                        debug!(%worker, kind, error = %error_chain(&err), "cannot tell the worker");
                    }
                    continue;
                }
                Ok(Err(err)) => error_chain(&err),
                Err(_) => format!("not confirmed within {PUBLISH_TIMEOUT:?}"),
            };
            pending.failures += 1;
            if pending.queued.elapsed() >= MAX_AGE {
                warn!(%worker, kind, %problem, "cannot send the notice; dropped it (the next hello is answered with the current state)");
                continue;
            }
            if pending.failures == 1 {
                warn!(%worker, kind, %problem, "cannot send the notice yet; trying again");
            } else {
                debug!(%worker, kind, %problem, failures = pending.failures, "notice not sent yet");
            }
            self.again(key, pending);
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
            maintenance: None,
        }
    }

    fn pending_welcome(notices: &Notices) -> (WorkerId, Welcome) {
        let ((worker, _), pending) = notices.next().unwrap();
        match pending.command {
            Command::Welcome(welcome) => (worker, welcome),
            other => panic!("not a welcome: {other:?}"),
        }
    }

    #[test]
    fn the_newest_notice_per_worker_and_kind_keeps_its_place() {
        let notices = Notices::default();
        let w1 = WorkerId::new("w1").unwrap();
        let w2 = WorkerId::new("w2").unwrap();
        notices.welcome(w1.clone(), welcome(1));
        notices.welcome(w2.clone(), welcome(2));
        notices.welcome(w1.clone(), welcome(3));
        assert_eq!(notices.len(), 2);
        let ((first, kind), pending) = notices.next().unwrap();
        assert_eq!((&first, kind), (&w1, CommandKind::Welcome));
        assert_eq!(pending.command, Command::Welcome(welcome(3)));
        // Not published: it goes back, behind w2, unless a newer one came.
        notices.again((w1.clone(), kind), pending);
        notices.welcome(w2.clone(), welcome(4));
        assert_eq!(pending_welcome(&notices), (w2.clone(), welcome(4)));
        notices.welcome(w1.clone(), welcome(5));
        let stale = Pending {
            command: Command::Welcome(welcome(3)),
            queued: Instant::now(),
            failures: 1,
        };
        notices.again((w1.clone(), CommandKind::Welcome), stale);
        assert_eq!(pending_welcome(&notices), (w1.clone(), welcome(5)));
        assert!(notices.is_empty());
        // A maintenance set does not replace a welcome, only an older set.
        let set = |generation| MaintenanceSet {
            generation,
            all: true,
            mirrors: Vec::new(),
        };
        notices.maintenance(w1.clone(), set(1));
        notices.welcome(w1.clone(), welcome(6));
        notices.maintenance(w1.clone(), set(2));
        assert_eq!(notices.len(), 2);
        let ((_, kind), pending) = notices.next().unwrap();
        assert_eq!(kind, CommandKind::Maintenance);
        assert_eq!(pending.command, Command::Maintenance(set(2)));
        assert_eq!(pending_welcome(&notices), (w1, welcome(6)));
    }
}
