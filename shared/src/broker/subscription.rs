//! Consumed messages and their acknowledgements.

use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use tokio::sync::mpsc;

use super::BrokerError;
use super::memory::{MemoryAcker, Settle};

/// A stream of messages from one queue. Dropping it cancels the consumer.
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<Incoming>,
    /// Run once the receiver is closed, when the subscription is dropped.
    on_drop: Option<DropHook>,
}

pub(crate) struct DropHook(pub(crate) Box<dyn FnOnce() + Send>);

impl std::fmt::Debug for DropHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DropHook")
    }
}

impl Subscription {
    pub(crate) fn new(receiver: mpsc::Receiver<Incoming>) -> Self {
        Subscription {
            receiver,
            on_drop: None,
        }
    }

    /// Runs `hook` when the subscription is dropped, after its channel is closed.
    pub(crate) fn on_drop(mut self, hook: DropHook) -> Self {
        self.on_drop = Some(hook);
        self
    }

    /// The next message; `None` once the transport has shut down.
    pub async fn next(&mut self) -> Option<Incoming> {
        self.receiver.recv().await
    }

    /// A message that is already waiting, without waiting for one (for batching).
    pub fn try_next(&mut self) -> Option<Incoming> {
        self.receiver.try_recv().ok()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.receiver.close();
        if let Some(DropHook(hook)) = self.on_drop.take() {
            hook();
        }
    }
}

/// One consumed message. It stays unacknowledged (and counts against the prefetch limit)
/// until one of the acknowledging methods is called; if the connection drops first, the
/// broker delivers it again.
#[derive(Debug)]
pub struct Incoming {
    pub payload: Vec<u8>,
    /// The AMQP `type` property: the message kind.
    pub kind: Option<String>,
    pub message_id: Option<String>,
    /// The AMQP `user_id` property, which the broker verified against the sender's login.
    pub user_id: Option<String>,
    pub routing_key: String,
    /// Whether the broker delivered this message before (to us or another consumer).
    pub redelivered: bool,
    pub(crate) acker: Acker,
}

/// How to acknowledge a message to where it came from.
#[derive(Debug)]
pub(crate) enum Acker {
    Amqp {
        acker: lapin::Acker,
        /// Identifies the channel the message came on: `multiple` acks only reach messages of
        /// the same channel.
        channel: (u64, u16),
    },
    /// From the in-process broker.
    Memory(MemoryAcker),
}

impl Incoming {
    /// Acknowledges this message only.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.acknowledge(false).await
    }

    /// Acknowledges this message and every earlier unacknowledged one of the same channel.
    pub async fn ack_up_to(&self) -> Result<(), BrokerError> {
        self.acknowledge(true).await
    }

    async fn acknowledge(&self, multiple: bool) -> Result<(), BrokerError> {
        match &self.acker {
            Acker::Amqp { acker, .. } => acker
                .ack(BasicAckOptions { multiple })
                .await
                .map(|_| ())
                .map_err(BrokerError::amqp("basic.ack")),
            Acker::Memory(acker) => acker.settle(Settle::Ack { multiple }),
        }
    }

    /// Puts the message back in its queue for another delivery.
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        match &self.acker {
            Acker::Amqp { acker, .. } => acker
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: true,
                })
                .await
                .map(|_| ())
                .map_err(BrokerError::amqp("basic.nack")),
            Acker::Memory(acker) => acker.settle(Settle::Requeue),
        }
    }

    /// Rejects the message without requeueing: the broker moves it to the dead-letter queue.
    pub async fn dead_letter(&self) -> Result<(), BrokerError> {
        match &self.acker {
            Acker::Amqp { acker, .. } => acker
                .reject(BasicRejectOptions { requeue: false })
                .await
                .map(|_| ())
                .map_err(BrokerError::amqp("basic.reject")),
            Acker::Memory(acker) => acker.settle(Settle::DeadLetter),
        }
    }

    fn channel_key(&self) -> (u64, u16) {
        match &self.acker {
            Acker::Amqp { channel, .. } => *channel,
            Acker::Memory(acker) => acker.channel_key(),
        }
    }
}

/// Acknowledges a batch of messages taken in order from one subscription, with one
/// `multiple` ack per channel the batch spans (a reconnection in the middle of a batch means
/// two channels).
pub async fn ack_batch(batch: &[Incoming]) -> Result<(), BrokerError> {
    let mut first_error = None;
    for (idx, message) in batch.iter().enumerate() {
        let last_of_its_channel = batch
            .get(idx + 1)
            .is_none_or(|next| next.channel_key() != message.channel_key());
        if last_of_its_channel && let Err(err) = message.ack_up_to().await {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}
