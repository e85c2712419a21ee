//! Events on their way to the manager: numbered and queued under one lock (so queue order is
//! numbering order, whichever task reports), kept while the broker is away (bounded, see
//! [`backlog`]), published in order with confirms.

pub mod backlog;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tunasync_shared::broker::{Outgoing, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::{Event, EventEnvelope, SequenceSource};

use backlog::Backlog;

/// Events kept while the broker is unreachable (see [`backlog`] for what goes first when
/// that is not enough).
pub const CAPACITY: usize = 10_000;

/// How long one publish may wait for the broker's confirm before it is tried again (a
/// broker under a resource alarm holds publishes; the copy sent twice is ignored by the
/// manager, which knows its sequence number).
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    worker: WorkerId,
    sequence: SequenceSource,
    queue: Mutex<Backlog>,
    notify: Notify,
    /// When the broker last confirmed one of our events.
    confirmed: Mutex<Option<tokio::time::Instant>>,
}

impl Outbox {
    pub fn new(worker: WorkerId) -> Self {
        Self::with_capacity(worker, CAPACITY)
    }

    pub fn with_capacity(worker: WorkerId, capacity: usize) -> Self {
        Outbox {
            shared: Arc::new(Shared {
                worker,
                sequence: SequenceSource::new(),
                queue: Mutex::new(Backlog::new(capacity)),
                notify: Notify::new(),
                confirmed: Mutex::new(None),
            }),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Backlog> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Numbers `event` and queues it for publishing.
    pub fn push(&self, event: Event) {
        let dropped = {
            let mut queue = self.queue();
            let envelope = EventEnvelope::new(
                self.shared.worker.clone(),
                self.shared.sequence.next(),
                event,
            );
            queue.push(envelope)
        };
        if let Some(dropped) = dropped {
            warn!(
                capacity = CAPACITY,
                command_answers = dropped.answers,
                superseded_progress = dropped.progress,
                superseded_results = dropped.results,
                oldest = dropped.oldest,
                "event queue full while the broker is away: dropped what later events supersede"
            );
        }
        self.shared.notify.notify_one();
    }

    /// Makes the numbers of later events larger than `seen`, a number the manager holds from
    /// this worker's past; whether they had to jump.
    pub fn advance_past(&self, seen: u64) -> bool {
        let _queue = self.queue();
        self.shared.sequence.advance_past(seen)
    }

    /// Takes every queued event (tests read what was reported this way).
    #[cfg(test)]
    pub fn take_all(&self) -> Vec<EventEnvelope> {
        self.queue().drain()
    }

    /// How many events wait to be published.
    pub fn len(&self) -> usize {
        self.queue().len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue().is_empty()
    }

    /// How long ago the broker last confirmed an event of ours (none before the first).
    pub fn since_confirmed(&self) -> Option<Duration> {
        self.shared
            .confirmed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .map(|at| at.elapsed())
    }

    fn pop_if_front(&self, envelope: &EventEnvelope) {
        self.queue().pop_front_if(envelope.header.id);
    }

    /// Publishes queued events in order until `shutdown`; then tries to flush what is left
    /// for at most `drain`.
    pub async fn run<T: Transport>(
        self,
        transport: T,
        shutdown: CancellationToken,
        drain: Duration,
    ) {
        loop {
            let next = self.queue().front().cloned();
            let Some(envelope) = next else {
                tokio::select! {
                    () = self.shared.notify.notified() => continue,
                    () = shutdown.cancelled() => break,
                }
            };
            let publish = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                transport.publish(Outgoing::event(&envelope)),
            );
            tokio::pin!(publish);
            let result = tokio::select! {
                result = &mut publish => result,
                () = shutdown.cancelled() => {
                    // Let the message in flight finish, so the flush below does not send it twice.
                    if let Ok(Ok(Ok(()))) = tokio::time::timeout(drain, publish).await {
                        self.pop_if_front(&envelope);
                    }
                    break;
                }
            };
            let retry = match result {
                Ok(Ok(())) => {
                    debug!(
                        kind = envelope.event.kind().as_str(),
                        seq = envelope.seq,
                        "event published"
                    );
                    self.pop_if_front(&envelope);
                    *self
                        .shared
                        .confirmed
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) =
                        Some(tokio::time::Instant::now());
                    false
                }
                Ok(Err(err)) => {
                    warn!(error = %error_chain(&err), "cannot publish an event; retrying");
                    true
                }
                Err(_) => {
                    warn!(
                        timeout = ?PUBLISH_TIMEOUT,
                        "the broker has not confirmed an event (is it blocked by a resource alarm?); retrying"
                    );
                    false
                }
            };
            if retry {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
        // Shutting down: what the jobs reported last (e.g. "killed by manager") should still
        // reach the manager if the broker is there.
        let flush = async {
            loop {
                let next = self.queue().pop_front();
                let Some(envelope) = next else { break };
                if let Err(err) = transport.publish(Outgoing::event(&envelope)).await {
                    warn!(error = %error_chain(&err), "cannot send the last events");
                    break;
                }
            }
        };

        if tokio::time::timeout(drain, flush).await.is_err() {
            warn!(n_left = self.len(), "events left unsent at shutdown");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports from several tasks at once are queued in the order of their numbers (they
    /// used to be numbered outside the queue's lock, and the manager then took some of them
    /// for late copies).
    #[test]
    fn concurrent_reports_are_queued_in_numbering_order() {
        let outbox = Outbox::with_capacity(WorkerId::new("w").unwrap(), 100_000);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let outbox = outbox.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        outbox.push(Event::JobRemoved(
                            tunasync_shared::wire::event::JobRemoved {
                                mirror: tunasync_shared::names::MirrorName::new("m").unwrap(),
                            },
                        ));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let queued = outbox.take_all();
        assert_eq!(queued.len(), 80_000);
        let out_of_order = queued
            .windows(2)
            .filter(|pair| pair[0].seq >= pair[1].seq)
            .count();
        assert_eq!(out_of_order, 0, "events queued out of numbering order");
    }
}
