//! Commands to workers: publish, then wait (bounded) for the worker's `cmd-result`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, warn};
use tunasync_shared::broker::{BrokerError, Outgoing, Transport};
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::Command;
use tunasync_shared::wire::event::{CmdOutcome, CmdResult};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("worker {0} has no command queue: it never connected to the broker")]
    NoQueue(WorkerId),
    #[error("cannot publish the command to worker {worker}")]
    Broker {
        worker: WorkerId,
        #[source]
        source: BrokerError,
    },
    #[error("worker {worker} did not answer within {timeout:?}")]
    Timeout { worker: WorkerId, timeout: Duration },
    #[error("{MAX_WAITING} commands already wait for their answers; try again later")]
    Busy,
}

/// The most commands waiting for answers at once (each waits at most `[commands] timeout`).
pub const MAX_WAITING: usize = 4096;

type Waiters = HashMap<Uuid, (WorkerId, oneshot::Sender<CmdOutcome>)>;

pub struct Dispatcher<T> {
    transport: T,
    /// Commands sent and not answered yet, by envelope id.
    waiting: Mutex<Waiters>,
    timeout: Duration,
    expiry: Duration,
    telemetry: crate::metrics::Telemetry,
}

impl<T: Transport> Dispatcher<T> {
    pub fn new(
        transport: T,
        timeout: Duration,
        expiry: Duration,
        telemetry: crate::metrics::Telemetry,
    ) -> Self {
        Dispatcher {
            transport,
            waiting: Mutex::new(HashMap::new()),
            timeout,
            expiry,
            telemetry,
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Commands waiting for their answer.
    pub fn n_waiting(&self) -> usize {
        self.waiters().len()
    }

    /// Sends `command` to `worker` and waits for its answer. Dropped early (the HTTP client
    /// went away), it stops waiting: nothing is left behind for an answer that may never come.
    pub async fn send(
        &self,
        worker: &WorkerId,
        command: Command,
    ) -> Result<CmdOutcome, DispatchError> {
        let envelope = CommandEnvelope::new(worker.clone(), command);
        let id = envelope.header.id;
        let (sender, answer) = oneshot::channel();
        {
            let mut waiters = self.waiters();
            if waiters.len() >= MAX_WAITING {
                return Err(DispatchError::Busy);
            }
            waiters.insert(id, (worker.clone(), sender));
        }
        let _waiting = Waiting::new(&self.waiting, id);
        let outcome = tokio::time::timeout(self.timeout, async {
            self.transport
                .publish(Outgoing::command(&envelope, self.expiry))
                .await
                .map_err(|source| match source {
                    BrokerError::Unroutable => DispatchError::NoQueue(worker.clone()),
                    source => DispatchError::Broker {
                        worker: worker.clone(),
                        source,
                    },
                })?;
            debug!(%worker, command = envelope.command.kind().as_str(), %id, "command published");
            answer.await.map_err(|_| DispatchError::Timeout {
                worker: worker.clone(),
                timeout: self.timeout,
            })
        })
        .await;
        self.telemetry.commands_sent.inc();
        let result = match outcome {
            Ok(result) => result,
            Err(_) => Err(DispatchError::Timeout {
                worker: worker.clone(),
                timeout: self.timeout,
            }),
        };
        if result.is_err() {
            self.telemetry.commands_failed.inc();
        }
        result
    }

    /// Hands a worker's answer to whoever waits for it.
    pub fn resolve(&self, from: &WorkerId, result: CmdResult) {
        let waiter = self.waiters().remove(&result.cmd_id);
        match waiter {
            Some((worker, sender)) if &worker == from => {
                let _ = sender.send(result.outcome);
            }
            Some((worker, sender)) => {
                warn!(%from, expected = %worker, "answer to a command came from another worker; ignored");
                self.waiters().insert(result.cmd_id, (worker, sender));
            }
            None => debug!(%from, cmd_id = %result.cmd_id, "answer to a command nobody waits for"),
        }
    }

    /// Publishes a command that is not answered (a `welcome`, a `maintenance` set).
    pub async fn notify(&self, worker: &WorkerId, command: Command) -> Result<(), BrokerError> {
        let envelope = CommandEnvelope::new(worker.clone(), command);
        self.transport
            .publish(Outgoing::command(&envelope, self.expiry))
            .await
    }
}

/// A request's place among the waiters (by envelope id), given up when its sender stops
/// waiting.
pub(crate) struct Waiting<'a, V> {
    waiters: &'a Mutex<HashMap<Uuid, V>>,
    id: Uuid,
}

impl<'a, V> Waiting<'a, V> {
    pub(crate) fn new(waiters: &'a Mutex<HashMap<Uuid, V>>, id: Uuid) -> Self {
        Waiting { waiters, id }
    }
}

impl<V> Drop for Waiting<'_, V> {
    fn drop(&mut self) {
        self.waiters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::broker::{QueueRole, Subscription};
    use tunasync_shared::wire::command::Ping;

    /// A broker that never confirms a publish.
    #[derive(Clone)]
    struct Unanswered;

    impl Transport for Unanswered {
        async fn publish(&self, _message: Outgoing) -> Result<(), BrokerError> {
            std::future::pending().await
        }

        async fn subscribe(
            &self,
            _queue: QueueRole,
            _prefetch: u16,
        ) -> Result<Subscription, BrokerError> {
            Err(BrokerError::Closed)
        }

        async fn declare_pool(
            &self,
            _pool: &tunasync_shared::names::PoolName,
        ) -> Result<(), BrokerError> {
            Ok(())
        }

        fn is_connected(&self) -> bool {
            true
        }
    }

    /// A request dropped before the worker answered (the client went away) leaves no waiter
    /// behind; it used to stay until an answer that might never come.
    #[tokio::test]
    async fn a_dropped_request_leaves_no_waiter() {
        let dispatcher = Dispatcher::new(
            Unanswered,
            Duration::from_secs(3600),
            Duration::from_secs(60),
            crate::metrics::Telemetry::default(),
        );
        let worker = WorkerId::new("w1").unwrap();
        let send = dispatcher.send(&worker, Command::Ping(Ping::default()));
        let dropped_early = tokio::time::timeout(Duration::from_millis(50), send).await;
        assert!(dropped_early.is_err());
        assert_eq!(dispatcher.n_waiting(), 0);
    }

    /// Past [`MAX_WAITING`] commands waiting, the next is refused at once.
    #[tokio::test]
    async fn waiting_commands_are_bounded() {
        let dispatcher = std::sync::Arc::new(Dispatcher::new(
            Unanswered,
            Duration::from_secs(3600),
            Duration::from_secs(60),
            crate::metrics::Telemetry::default(),
        ));
        let worker = WorkerId::new("w1").unwrap();
        let waiting: Vec<_> = (0..MAX_WAITING)
            .map(|_| {
                let dispatcher = dispatcher.clone();
                let worker = worker.clone();
                tokio::spawn(async move {
                    let _ = dispatcher
                        .send(&worker, Command::Ping(Ping::default()))
                        .await;
                })
            })
            .collect();
        for _ in 0..1000 {
            if dispatcher.n_waiting() == MAX_WAITING {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(dispatcher.n_waiting(), MAX_WAITING);
        let refused = dispatcher
            .send(&worker, Command::Ping(Ping::default()))
            .await;
        assert!(matches!(refused, Err(DispatchError::Busy)), "{refused:?}");
        for task in waiting {
            task.abort();
        }
    }
}
