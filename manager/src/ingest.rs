//! Event ingestion: consume `<ns>.manager`, apply events in batches, ack after the commit.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};
use tunasync_shared::broker::{Incoming, QueueRole, Transport, ack_batch};
use tunasync_shared::error_chain;
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::event::EventKind;
use tunasync_shared::wire::{Event, EventEnvelope};

use crate::dispatch::Dispatcher;
use crate::model::Verified;
use crate::notices::Notices;
use crate::once_log::OnceLog;
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

/// Drops the `hello`s and heartbeats of a batch that a later one of the same worker in the
/// same batch supersedes (a `hello` is the worker's whole account of its jobs, a heartbeat
/// its whole liveness report), keeping `sent` in step; how many were dropped. They are
/// still acknowledged with the batch. So a worker flooding the queue with them costs one
/// application per batch, and the other workers' events behind it wait for decoding only.
fn supersede(verified: &mut Vec<Verified>, sent: &mut Vec<chrono::DateTime<chrono::Utc>>) -> usize {
    let mut latest: std::collections::HashSet<(&WorkerId, EventKind)> = Default::default();
    let keep: Vec<bool> = verified
        .iter()
        .rev()
        .map(|event| {
            let kind = event.event.kind();
            !matches!(kind, EventKind::Hello | EventKind::Heartbeat)
                || latest.insert((&event.worker, kind))
        })
        .collect::<Vec<bool>>()
        .into_iter()
        .rev()
        .collect();
    let dropped = keep.iter().filter(|kept| !**kept).count();
    if dropped > 0 {
        let mut flags = keep.iter();
        verified.retain(|_| *flags.next().unwrap_or(&true));
        let mut flags = keep.iter();
        sent.retain(|_| *flags.next().unwrap_or(&true));
    }
    dropped
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
    /// Refusals already logged, per sender (the broker user, or the routing key without
    /// one) and reason.
    pub refusals: OnceLog<(String, &'static str)>,
}

/// A batch handed to the state actor, waiting for its commit before its acks.
struct Pending {
    accepted: Vec<Incoming>,
    applied: Option<Applied>,
    /// When the applied events were sent (for the ingest lag).
    sent: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Refusal {
    /// The reason's name, for logging once per sender and reason.
    fn reason(&self) -> &'static str {
        match self {
            Refusal::Decode(_) => "undecodable",
            Refusal::RoutingKey { .. } => "routing key",
            Refusal::Identity { .. } => "identity",
        }
    }
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
                    let sender = incoming
                        .user_id
                        .clone()
                        .unwrap_or_else(|| incoming.routing_key.clone());
                    if self.refusals.first((sender, refusal.reason())) {
                        warn!(
                            routing_key = %incoming.routing_key,
                            user = ?incoming.user_id,
                            reason = %error_chain(&refusal),
                            "event refused; dead-lettered (logged once per sender and reason)"
                        );
                    } else {
                        debug!(
                            routing_key = %incoming.routing_key,
                            user = ?incoming.user_id,
                            reason = %error_chain(&refusal),
                            "event refused; dead-lettered"
                        );
                    }
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
        let superseded = supersede(&mut verified, &mut sent);
        if superseded > 0 {
            self.telemetry.events_superseded.inc_by(superseded as u64);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tunasync_shared::wire::event::Heartbeat;

    fn heartbeat(worker: &str, seq: u64) -> Verified {
        Verified {
            worker: WorkerId::new(worker).unwrap(),
            seq,
            event: Event::Heartbeat(Heartbeat {
                session: uuid::Uuid::nil(),
                interval_secs: 10,
                running: vec![],
                free_slots: None,
            }),
        }
    }

    #[test]
    fn only_the_last_heartbeat_of_each_worker_in_a_batch_is_applied() {
        let mut batch: Vec<Verified> = (1..=1000).map(|seq| heartbeat("flood", seq)).collect();
        batch.insert(500, heartbeat("quiet", 7));
        let mut sent: Vec<chrono::DateTime<chrono::Utc>> = (0..batch.len())
            .map(|idx| chrono::DateTime::from_timestamp(idx as i64, 0).unwrap())
            .collect();
        assert_eq!(supersede(&mut batch, &mut sent), 999);
        let left: Vec<(&str, u64)> = batch
            .iter()
            .map(|event| (event.worker.as_str(), event.seq))
            .collect();
        assert_eq!(left, [("quiet", 7), ("flood", 1000)]);
        let stamps: Vec<i64> = sent.iter().map(|at| at.timestamp()).collect();
        assert_eq!(stamps, [500, 1000], "the send times stay with their events");
    }
}
