//! Job logs from workers: publish a `log` command to the worker's queue, then gather the
//! `log-chunk` events that answer it (they come back through `<ns>.manager` like every
//! event; ingestion hands them here, nothing stores them).
//!
//! Bounded: the answer must be complete within [`LOG_TIMEOUT`]; at most [`MAX_CHUNKS`]
//! chunks wait for their reader; a reader that goes away takes its place with it, and
//! chunks for nobody are dropped.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, warn};
use tunasync_shared::broker::{BrokerError, Outgoing, Transport};
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::CommandEnvelope;
use tunasync_shared::wire::command::{Command, LogRequest};
use tunasync_shared::wire::event::{LogChunk, LogError};
use uuid::Uuid;

use crate::dispatch::Waiting;

/// How long a whole answer may take.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(15);
/// Chunks that may wait for their reader (the worker sends at most 8 MiB in 64 KiB).
const MAX_CHUNKS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum LogFetchError {
    #[error("worker {0} has no command queue: it never connected to the broker")]
    NoQueue(WorkerId),
    #[error("cannot ask worker {worker} for the log")]
    Broker {
        worker: WorkerId,
        #[source]
        source: Box<BrokerError>,
    },
    #[error("worker {worker} did not send the log within {timeout:?}")]
    Timeout { worker: WorkerId, timeout: Duration },
    #[error("part of the log was lost on the way")]
    Incomplete,
    #[error("{0:?}")]
    Worker(LogError),
}

type Waiters = HashMap<Uuid, (WorkerId, mpsc::Sender<LogChunk>)>;

pub struct LogRequests<T> {
    transport: T,
    waiting: Mutex<Waiters>,
    expiry: Duration,
}

impl<T: Transport> LogRequests<T> {
    pub fn new(transport: T, expiry: Duration) -> Self {
        LogRequests {
            transport,
            waiting: Mutex::new(HashMap::new()),
            expiry,
        }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks `worker` for a job's log and returns it whole.
    pub async fn fetch(
        &self,
        worker: &WorkerId,
        request: LogRequest,
    ) -> Result<String, LogFetchError> {
        let envelope = CommandEnvelope::new(worker.clone(), Command::Log(request));
        let id = envelope.header.id;
        let (sender, mut chunks) = mpsc::channel(MAX_CHUNKS);
        self.waiters().insert(id, (worker.clone(), sender));
        let _waiting = Waiting::new(&self.waiting, id);
        let timeout = || LogFetchError::Timeout {
            worker: worker.clone(),
            timeout: LOG_TIMEOUT,
        };
        let gathered = tokio::time::timeout(LOG_TIMEOUT, async {
            self.transport
                .publish(Outgoing::command(&envelope, self.expiry))
                .await
                .map_err(|source| match source {
                    BrokerError::Unroutable => LogFetchError::NoQueue(worker.clone()),
                    source => LogFetchError::Broker {
                        worker: worker.clone(),
                        source: Box::new(source),
                    },
                })?;
            debug!(%worker, %id, "log asked for");
            let mut text = String::new();
            let mut next = 0;
            loop {
                let chunk = chunks.recv().await.ok_or_else(timeout)?;
                if let Some(error) = chunk.error {
                    return Err(LogFetchError::Worker(error));
                }
                if chunk.index != next {
                    return Err(LogFetchError::Incomplete);
                }
                text.push_str(&chunk.text);
                if chunk.last {
                    return Ok(text);
                }
                next += 1;
            }
        })
        .await;
        gathered.unwrap_or_else(|_| Err(timeout()))
    }

    /// Hands a chunk to whoever waits for it.
    pub fn deliver(&self, from: &WorkerId, chunk: LogChunk) {
        let waiters = self.waiters();
        match waiters.get(&chunk.request) {
            Some((worker, sender)) if worker == from => {
                if sender.try_send(chunk).is_err() {
                    warn!(%from, "a log chunk nobody could take; dropped");
                }
            }
            Some((worker, _)) => {
                warn!(%from, expected = %worker, "a log chunk from another worker; ignored");
            }
            None => debug!(%from, request = %chunk.request, "a log chunk nobody waits for"),
        }
    }
}
