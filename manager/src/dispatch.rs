//! Commands to workers: publish, then wait (bounded) for the worker's `cmd-result`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, warn};
use tunasync_shared::broker::{BrokerError, Outgoing, Transport};
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::{Command, Welcome};
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
}

type Waiters = HashMap<Uuid, (WorkerId, oneshot::Sender<CmdOutcome>)>;

pub struct Dispatcher<T> {
    transport: T,
    /// Commands sent and not answered yet, by envelope id.
    waiting: Mutex<Waiters>,
    timeout: Duration,
    expiry: Duration,
}

impl<T: Transport> Dispatcher<T> {
    pub fn new(transport: T, timeout: Duration, expiry: Duration) -> Self {
        Dispatcher {
            transport,
            waiting: Mutex::new(HashMap::new()),
            timeout,
            expiry,
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `command` to `worker` and waits for its answer.
    pub async fn send(
        &self,
        worker: &WorkerId,
        command: Command,
    ) -> Result<CmdOutcome, DispatchError> {
        let envelope = CommandEnvelope::new(worker.clone(), command);
        let id = envelope.header.id;
        let (sender, answer) = oneshot::channel();
        self.waiters().insert(id, (worker.clone(), sender));
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
        self.waiters().remove(&id);
        match outcome {
            Ok(result) => result,
            Err(_) => Err(DispatchError::Timeout {
                worker: worker.clone(),
                timeout: self.timeout,
            }),
        }
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

    /// Answers a worker's `hello` (no answer expected).
    pub async fn welcome(&self, worker: &WorkerId, welcome: Welcome) -> Result<(), BrokerError> {
        let envelope = CommandEnvelope::new(worker.clone(), Command::Welcome(welcome));
        self.transport
            .publish(Outgoing::command(&envelope, self.expiry))
            .await
    }
}
