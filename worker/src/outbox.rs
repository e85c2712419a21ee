//! Events on their way to the manager: numbered when they happen, kept (bounded) while the
//! broker is away, published in order with confirms.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use tunasync_shared::broker::{Outgoing, Transport};
use tunasync_shared::error_chain;
use tunasync_shared::names::WorkerId;
use tunasync_shared::wire::{Event, EventEnvelope, EventKind, SequenceSource};

/// Events kept while the broker is unreachable. The oldest status-like events are dropped
/// first when it overflows; the `hello` sent on reconnection carries the current state anyway.
pub const CAPACITY: usize = 10_000;

#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
}

struct Shared {
    worker: WorkerId,
    sequence: SequenceSource,
    queue: Mutex<VecDeque<EventEnvelope>>,
    notify: Notify,
}

impl Outbox {
    pub fn new(worker: WorkerId) -> Self {
        Outbox {
            shared: Arc::new(Shared {
                worker,
                sequence: SequenceSource::new(),
                queue: Mutex::new(VecDeque::new()),
                notify: Notify::new(),
            }),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<EventEnvelope>> {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Numbers `event` and queues it for publishing.
    pub fn push(&self, event: Event) {
        let envelope = EventEnvelope::new(
            self.shared.worker.clone(),
            self.shared.sequence.next(),
            event,
        );
        {
            let mut queue = self.queue();
            if queue.len() >= CAPACITY {
                let position = queue
                    .iter()
                    .position(|queued| queued.event.kind() != EventKind::CmdResult)
                    .unwrap_or(0);
                queue.remove(position);
                warn!("event queue full ({CAPACITY}): dropped the oldest event");
            }
            queue.push_back(envelope);
        }
        self.shared.notify.notify_one();
    }

    /// Takes every queued event (tests read what was reported this way).
    #[cfg(test)]
    pub fn take_all(&self) -> Vec<EventEnvelope> {
        self.queue().drain(..).collect()
    }

    fn len(&self) -> usize {
        self.queue().len()
    }

    fn pop_if_front(&self, envelope: &EventEnvelope) {
        let mut queue = self.queue();
        if queue
            .front()
            .is_some_and(|front| front.header.id == envelope.header.id)
        {
            queue.pop_front();
        }
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
            let publish = transport.publish(Outgoing::event(&envelope));
            tokio::pin!(publish);
            let result = tokio::select! {
                result = &mut publish => result,
                () = shutdown.cancelled() => {
                    // Let the message in flight finish, so the flush below does not send it twice.
                    if let Ok(Ok(())) = tokio::time::timeout(drain, publish).await {
                        self.pop_if_front(&envelope);
                    }
                    break;
                }
            };
            match result {
                Ok(()) => {
                    debug!(
                        kind = envelope.event.kind().as_str(),
                        seq = envelope.seq,
                        "event published"
                    );
                    let mut queue = self.queue();
                    if queue
                        .front()
                        .is_some_and(|front| front.header.id == envelope.header.id)
                    {
                        queue.pop_front();
                    }
                }
                Err(err) => {
                    warn!(error = %error_chain(&err), "cannot publish an event; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        () = shutdown.cancelled() => break,
                    }
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
