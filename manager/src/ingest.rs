//! Event ingestion: consume `<ns>.manager`, apply events in batches, ack after the commit.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use tunasync_shared::broker::{Incoming, QueueRole, Transport, ack_batch};
use tunasync_shared::error_chain;
use tunasync_shared::wire::{Event, EventEnvelope};

use crate::dispatch::Dispatcher;
use crate::model::Verified;
use crate::notices::Notices;
use crate::pool_publisher::PoolPublisher;
use crate::state::{Applied, StateHandle};

/// Unacknowledged events the broker may hand us at once.
pub const PREFETCH: u16 = 4000;
/// The most events applied in one store transaction.
pub const MAX_BATCH: usize = 2000;

/// Why an event was refused (and dead-lettered).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("undecodable event")]
    Decode(#[from] tunasync_shared::wire::DecodeError),
    #[error("routing key {routing_key:?} does not match worker {worker} and kind {kind}")]
    RoutingKey {
        routing_key: String,
        worker: String,
        kind: &'static str,
    },
    #[error("event claims worker {claimed} but was sent by broker user {user:?}")]
    Identity {
        claimed: String,
        user: Option<String>,
    },
}

/// Checks one delivery: decodes it and, in hardened mode, that the broker-verified sender is
/// the worker the event names.
pub fn check(incoming: &Incoming, require_identity: bool) -> Result<EventEnvelope, Refusal> {
    let envelope = EventEnvelope::decode(&incoming.payload)?;
    let expected = (
        envelope.header.worker.as_str(),
        envelope.event.kind().as_str(),
    );
    if incoming.routing_key.split_once('.') != Some(expected) {
        return Err(Refusal::RoutingKey {
            routing_key: incoming.routing_key.clone(),
            worker: envelope.header.worker.to_string(),
            kind: envelope.event.kind().as_str(),
        });
    }
    if require_identity && incoming.user_id.as_deref() != Some(envelope.header.worker.as_str()) {
        return Err(Refusal::Identity {
            claimed: envelope.header.worker.to_string(),
            user: incoming.user_id.clone(),
        });
    }
    Ok(envelope)
}

pub struct Ingest<T> {
    pub transport: T,
    pub state: StateHandle,
    pub dispatcher: Arc<Dispatcher<T>>,
    pub logs: Arc<crate::log_requests::LogRequests<T>>,
    pub notices: Arc<Notices>,
    pub pools: Arc<PoolPublisher<T>>,
    pub require_identity: bool,
    pub telemetry: crate::metrics::Telemetry,
}

/// A batch handed to the state actor, waiting for its commit before its acks.
struct Pending {
    accepted: Vec<Incoming>,
    applied: Option<Applied>,
    /// When the applied events were sent (for the ingest lag).
    sent: Vec<chrono::DateTime<chrono::Utc>>,
}

impl<T: Transport> Ingest<T> {
    /// Consumes until `shutdown`. Two stages overlap: while the state actor commits one
    /// batch, the next is gathered, decoded and checked; acks and welcomes follow each
    /// commit in order.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut events = match self.transport.subscribe(QueueRole::Manager, PREFETCH).await {
            Ok(events) => events,
            Err(err) => {
                error!(error = %error_chain(&err), "cannot consume the events queue");
                return;
            }
        };
        info!("consuming worker events");
        let (pending_tx, mut pending_rx) = mpsc::channel::<Pending>(1);
        let gather = async {
            let pending_tx = pending_tx;
            loop {
                let first = tokio::select! {
                    incoming = events.next() => incoming,
                    () = shutdown.cancelled() => None,
                };
                let Some(first) = first else { break };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match events.try_next() {
                        Some(incoming) => batch.push(incoming),
                        None => break,
                    }
                }
                let pending = self.submit(batch).await;
                if pending_tx.send(pending).await.is_err() {
                    break;
                }
            }
        };
        let finish = async {
            while let Some(pending) = pending_rx.recv().await {
                self.finish(pending).await;
            }
        };
        tokio::join!(gather, finish);
    }

    /// Checks a batch, dead-letters what fails, answers command results, and hands the
    /// events to the state actor.
    async fn submit(&self, batch: Vec<Incoming>) -> Pending {
        let mut verified = Vec::with_capacity(batch.len());
        let mut accepted = Vec::with_capacity(batch.len());
        let mut sent = Vec::with_capacity(batch.len());
        for incoming in batch {
            match check(&incoming, self.require_identity) {
                Err(refusal) => {
                    warn!(
                        routing_key = %incoming.routing_key,
                        user = ?incoming.user_id,
                        reason = %error_chain(&refusal),
                        "event refused; dead-lettered"
                    );
                    self.telemetry.dead_lettered.inc();
                    if let Err(err) = incoming.dead_letter().await {
                        warn!(error = %error_chain(&err), "cannot dead-letter an event");
                    }
                }
                Ok(envelope) => {
                    let worker = envelope.header.worker;
                    match envelope.event {
                        Event::CmdResult(result) => self.dispatcher.resolve(&worker, result),
                        Event::LogChunk(chunk) => self.logs.deliver(&worker, chunk),
                        event => {
                            sent.push(envelope.header.sent_at);
                            verified.push(Verified {
                                worker,
                                seq: envelope.seq,
                                event,
                            });
                        }
                    }
                    accepted.push(incoming);
                }
            }
        }
        let applied = if verified.is_empty() {
            None
        } else {
            Some(self.state.submit(verified).await)
        };
        Pending {
            accepted,
            applied,
            sent,
        }
    }

    /// Waits for a batch's commit, then queues its welcomes and acks (or requeues it).
    async fn finish(&self, pending: Pending) {
        if let Some(applied) = pending.applied {
            match applied.committed().await {
                Ok(replies) => {
                    let now = chrono::Utc::now();
                    for sent in &pending.sent {
                        let lag = now.signed_duration_since(*sent).num_microseconds();
                        let lag = lag.unwrap_or(i64::MAX).max(0) as f64 / 1e6;
                        self.telemetry.ingest_lag.observe(lag);
                    }
                    for (worker, welcome) in replies.welcomes {
                        self.notices.welcome(worker, welcome);
                    }
                    for (worker, grant) in replies.grants {
                        self.pools.grant(worker, grant);
                    }
                }
                Err(err) => {
                    // Only when the manager stops: a failed commit is retried by the state
                    // actor until it succeeds, the events waiting unacknowledged meanwhile.
                    warn!(error = %error_chain(&err), "events not stored; returning them to the queue");
                    for incoming in &pending.accepted {
                        let _ = incoming.requeue().await;
                    }
                    return;
                }
            }
        }
        if let Err(err) = ack_batch(&pending.accepted).await {
            warn!(error = %error_chain(&err), "cannot ack events; the broker will deliver them again");
        }
    }
}
