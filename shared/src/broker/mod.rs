//! AMQP 0-9-1 over TLS, behind a small interface.
//!
//! The manager and the workers use [`Transport`]: publish a message and wait until the broker
//! confirmed it, or subscribe to a queue and get [`Incoming`] messages to acknowledge one by
//! one or in batches. [`AmqpBroker`] implements it on lapin and rustls, keeping a publishing
//! and a consuming connection alive: each reconnects after a broker restart with capped,
//! jittered backoff, declares the topology again, and resumes its subscriptions.
//! [`MemoryBroker`] implements it in process (single-host use, logic tests), feeding the
//! same [`Subscription`] and [`Incoming`] types.
//!
//! - [`config`]: `[broker]` settings and their checks.
//! - [`topology`]: exchange and queue names under a namespace, and who declares what.
//! - [`amqp`]: the lapin implementation (connection supervisor, publishing).
//! - [`any`]: either, chosen at run time.
//! - [`memory`]: the in-process implementation (`tunasync standalone`, logic tests).
//! - [`subscription`]: consumed messages and their acknowledgements.

pub mod amqp;
pub mod any;
pub mod config;
pub mod memory;
pub mod subscription;
pub mod topology;

use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

pub use amqp::AmqpBroker;
pub use any::AnyTransport;
pub use config::{BrokerConfig, ConfigError, QueueType};
pub use memory::{MemoryBroker, MemoryTransport};
pub use subscription::{Incoming, Subscription, ack_batch};
pub use topology::{QueueRole, Role, Topology};

use crate::names::{PoolName, WorkerId};
use crate::wire::{CommandEnvelope, EventEnvelope};

/// What can go wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("invalid broker settings")]
    Config(#[from] ConfigError),
    #[error("cannot read {what} {path}")]
    ReadFile {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot connect to {url}")]
    Connect {
        url: String,
        #[source]
        source: lapin::Error,
    },
    #[error("AMQP {operation} failed")]
    Amqp {
        operation: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker refused the message (negative confirm)")]
    Nacked,
    #[error("the broker could not route the message to any queue")]
    Unroutable,
    #[error("not connected to the broker after {0:?}")]
    NotConnected(Duration),
    #[error("the broker client has shut down")]
    Closed,
}

impl BrokerError {
    pub(crate) fn amqp(operation: &'static str) -> impl FnOnce(lapin::Error) -> BrokerError {
        move |source| BrokerError::Amqp { operation, source }
    }
}

/// How the manager and the workers of a site reach each other, which decides whether the
/// config files need `[broker]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deployment {
    /// Separate processes, through RabbitMQ: `[broker]` is required.
    #[default]
    Cluster,
    /// `tunasync standalone`: the manager and one worker in one process, through
    /// [`MemoryBroker`]; a `[broker]` section is ignored (kept for the day the site splits
    /// them into two processes).
    Standalone,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `<ns>.events` with this routing key (`<worker id>.<kind>`).
    Event { routing_key: String },
    /// `<ns>.cmd` with the target worker's id as routing key.
    Command { worker: WorkerId },
    /// `<ns>.pool` with the pool's name as routing key: whichever member is free takes it.
    Pool { pool: PoolName },
}

impl Route {
    /// What the message is, in a word (for logs).
    pub fn kind(&self) -> &'static str {
        match self {
            Route::Event { .. } => "event",
            Route::Command { .. } => "command",
            Route::Pool { .. } => "pool run",
        }
    }
}

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub route: Route,
    /// The message kind: the AMQP `type` property.
    pub kind: &'static str,
    pub message_id: Uuid,
    pub payload: Vec<u8>,
    /// After this long in a queue the broker dead-letters the message instead of delivering it.
    pub expiration: Option<Duration>,
}

impl Outgoing {
    pub fn event(envelope: &EventEnvelope) -> Self {
        Outgoing {
            route: Route::Event {
                routing_key: envelope.routing_key(),
            },
            kind: envelope.event.kind().as_str(),
            message_id: envelope.header.id,
            payload: envelope.encode(),
            expiration: None,
        }
    }

    /// A pool run, for `pool`'s queue. It does not expire: it waits for a free member.
    pub fn pool_run(envelope: &CommandEnvelope, pool: PoolName) -> Self {
        Outgoing {
            route: Route::Pool { pool },
            kind: envelope.command.kind().as_str(),
            message_id: envelope.header.id,
            payload: envelope.encode(),
            expiration: None,
        }
    }

    pub fn command(envelope: &CommandEnvelope, expiration: Duration) -> Self {
        Outgoing {
            route: Route::Command {
                worker: envelope.header.worker.clone(),
            },
            kind: envelope.command.kind().as_str(),
            message_id: envelope.header.id,
            payload: envelope.encode(),
            expiration: Some(expiration),
        }
    }
}

/// The interface the manager and workers use to talk through the broker.
pub trait Transport: Clone + Send + Sync + 'static {
    /// Publishes `message` and returns once the broker has confirmed it (it is then stored in
    /// every queue it was routed to). Waits while the broker is unreachable; callers bound
    /// the wait with a timeout of their own.
    fn publish(&self, message: Outgoing) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Consumes `queue` with at most `prefetch` unacknowledged messages in flight, across
    /// reconnections, until the transport shuts down or the subscription is dropped.
    fn subscribe(
        &self,
        queue: QueueRole,
        prefetch: u16,
    ) -> impl Future<Output = Result<Subscription, BrokerError>> + Send;

    /// Declares the queue of `pool` (idempotent), so that runs published to it wait there
    /// for its members.
    fn declare_pool(&self, pool: &PoolName)
    -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Whether the broker is reachable right now.
    fn is_connected(&self) -> bool;

    /// Why the broker holds back what we publish (a memory or disk alarm), while it does.
    fn blocked(&self) -> Option<String> {
        None
    }
}
