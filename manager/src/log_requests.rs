//! Job logs from workers: publish a `log` command to the worker's queue, then gather the
//! `log-chunk` events that answer it (they come back through `<ns>.manager` like every
//! event; ingestion hands them here, nothing stores them).
//!
//! Bounded: the answer must be complete within [`LOG_TIMEOUT`]; at most [`MAX_CHUNKS`]
//! chunks wait for their reader; a reader that goes away takes its place with it, and
//! chunks for nobody are dropped.

use std::collections::{HashMap, HashSet};
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
    #[error("{MAX_WAITING} log requests and follows are open already; try again later")]
    Busy,
}

/// The most log requests and follows open at once.
pub const MAX_WAITING: usize = 256;

type Waiters = HashMap<Uuid, (WorkerId, mpsc::Sender<LogChunk>)>;

pub struct LogRequests<T> {
    transport: T,
    waiting: Mutex<Waiters>,
    /// Follows whose reader went away, until their worker's last chunk says it stopped.
    abandoned: Mutex<HashSet<Uuid>>,
    /// Counts follows (`/metrics`).
    telemetry: crate::metrics::Telemetry,
    expiry: Duration,
}

/// The most abandoned follows remembered (a worker that never answers the `log-stop` does
/// not grow the set without end).
const MAX_ABANDONED: usize = 1024;

impl<T: Transport> LogRequests<T> {
    pub fn new(transport: T, expiry: Duration, telemetry: crate::metrics::Telemetry) -> Self {
        LogRequests {
            transport,
            waiting: Mutex::new(HashMap::new()),
            abandoned: Mutex::new(HashSet::new()),
            telemetry,
            expiry,
        }
    }

    fn abandoned(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        self.abandoned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Waiters> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a request waiting for chunks, unless [`MAX_WAITING`] already wait.
    fn register(
        &self,
        id: Uuid,
        worker: &WorkerId,
        sender: mpsc::Sender<LogChunk>,
    ) -> Result<(), LogFetchError> {
        let mut waiters = self.waiters();
        if waiters.len() >= MAX_WAITING {
            return Err(LogFetchError::Busy);
        }
        waiters.insert(id, (worker.clone(), sender));
        Ok(())
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
        self.register(id, worker, sender)?;
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
            None => {
                drop(waiters);
                if chunk.last && self.abandoned().remove(&chunk.request) {
                    debug!(%from, request = %chunk.request, "the worker stopped a follow nobody reads");
                    self.telemetry.log_follows_stopped.inc();
                } else {
                    debug!(%from, request = %chunk.request, "a log chunk nobody waits for");
                }
            }
        }
    }
}

/// The longest a follow is read (the worker's own limit is the same).
pub const FOLLOW_LIMIT: Duration = Duration::from_secs(30 * 60);

/// A followed log as it arrives: text pieces until the worker's last chunk. Dropped
/// before that (its reader went away), it tells the worker to stop sending.
pub struct Follow<T: Transport> {
    requests: std::sync::Arc<LogRequests<T>>,
    worker: WorkerId,
    id: Uuid,
    chunks: mpsc::Receiver<LogChunk>,
    next: u32,
    ended: bool,
}

impl<T: Transport> Follow<T> {
    /// The next piece of text; `None` once the log ended (or broke off, or the follow's
    /// time ran out).
    pub async fn next_text(&mut self) -> Option<String> {
        if self.ended {
            return None;
        }
        let chunk = tokio::time::timeout(FOLLOW_LIMIT, self.chunks.recv())
            .await
            .ok()
            .flatten();
        let Some(chunk) = chunk else {
            self.ended = true;
            return None;
        };
        if chunk.error.is_some() || chunk.index != self.next {
            self.ended = true;
            return None;
        }
        self.next += 1;
        self.ended = chunk.last;
        Some(chunk.text)
    }
}

impl<T: Transport> Drop for Follow<T> {
    fn drop(&mut self) {
        self.requests.waiters().remove(&self.id);
        self.requests.telemetry.log_follows.dec();
        if self.ended {
            return;
        }
        {
            let mut abandoned = self.requests.abandoned();
            if abandoned.len() >= MAX_ABANDONED {
                abandoned.clear();
            }
            abandoned.insert(self.id);
        }
        let requests = self.requests.clone();
        let worker = self.worker.clone();
        let id = self.id;
        tokio::spawn(async move {
            let envelope = CommandEnvelope::new(
                worker.clone(),
                Command::LogStop(tunasync_shared::wire::command::LogStop { request: id }),
            );
            if let Err(err) = requests
                .transport
                .publish(Outgoing::command(&envelope, requests.expiry))
                .await
            {
                debug!(%worker, error = %tunasync_shared::error_chain(&err), "cannot tell the worker to stop a follow");
            }
        });
    }
}

impl<T: Transport> LogRequests<T> {
    /// Asks `worker` for a job's log and what the running job goes on writing. Fails only
    /// if the worker cannot be asked; the first piece is its answer so far.
    pub async fn follow(
        self: &std::sync::Arc<Self>,
        worker: &WorkerId,
        request: LogRequest,
    ) -> Result<(Option<String>, Follow<T>), LogFetchError> {
        let envelope = CommandEnvelope::new(
            worker.clone(),
            Command::Log(LogRequest {
                follow: true,
                ..request
            }),
        );
        let id = envelope.header.id;
        let (sender, chunks) = mpsc::channel(MAX_CHUNKS);
        self.register(id, worker, sender)?;
        self.telemetry.log_follows.inc();
        let mut follow = Follow {
            requests: self.clone(),
            worker: worker.clone(),
            id,
            chunks,
            next: 0,
            ended: false,
        };
        let published = tokio::time::timeout(
            LOG_TIMEOUT,
            self.transport
                .publish(Outgoing::command(&envelope, self.expiry)),
        )
        .await;
        match published {
            Ok(Ok(())) => {}
            Ok(Err(BrokerError::Unroutable)) => {
                follow.ended = true;
                return Err(LogFetchError::NoQueue(worker.clone()));
            }
            Ok(Err(source)) => {
                follow.ended = true;
                return Err(LogFetchError::Broker {
                    worker: worker.clone(),
                    source: Box::new(source),
                });
            }
            Err(_) => {
                follow.ended = true;
                return Err(LogFetchError::Timeout {
                    worker: worker.clone(),
                    timeout: LOG_TIMEOUT,
                });
            }
        }
        // The first chunk says whether there is a log at all.
        let first = tokio::time::timeout(LOG_TIMEOUT, follow.chunks.recv()).await;
        match first {
            Ok(Some(chunk)) => match chunk.error {
                Some(error) => {
                    follow.ended = true;
                    Err(LogFetchError::Worker(error))
                }
                None if chunk.index != 0 => Err(LogFetchError::Incomplete),
                None => {
                    follow.next = 1;
                    follow.ended = chunk.last;
                    Ok((Some(chunk.text), follow))
                }
            },
            _ => Err(LogFetchError::Timeout {
                worker: worker.clone(),
                timeout: LOG_TIMEOUT,
            }),
        }
    }
}
