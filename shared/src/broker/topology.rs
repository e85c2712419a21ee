//! Exchange and queue names under a namespace, and who declares what.
//!
//! | name | kind | published by | consumed by |
//! |---|---|---|---|
//! | `<ns>.cmd` | direct exchange | manager | — |
//! | `<ns>.worker.<id>` | queue bound to `<ns>.cmd` with key `<id>` | — | worker `<id>` |
//! | `<ns>.events` | topic exchange, key `<worker id>.<kind>` | workers | — |
//! | `<ns>.manager` | queue bound to `<ns>.events` with `#` | — | manager |
//! | `<ns>.dead` | fanout exchange and queue | the broker (rejected, expired) | operators |
//! | `<ns>.pool` | direct exchange | manager | — |
//! | `<ns>.pool.<pool>` | queue bound to `<ns>.pool` with key `<pool>` | — | the pool's members |
//!
//! The manager declares everything shared. A worker declares only its own queue and binding
//! and checks the shared exchanges passively, so that in hardened mode its broker user needs
//! no rights on anything else. (In plain mode, where the worker's user may configure
//! everything, a worker that starts before any manager declares the shared part itself.)
//! A pool's queue is declared by the manager when it learns of the pool (from a member's
//! `hello`); members only read it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

use super::{BrokerError, QueueType};
use crate::names::{PoolName, WorkerId};

/// Who is connecting, which decides what is declared on every (re)connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Declares the whole shared topology.
    Manager,
    /// Declares its own queue and binding; checks the shared exchanges.
    Worker(WorkerId),
    /// Declares nothing (tools and tests that only publish or read).
    Client,
}

/// A queue one can subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum QueueRole {
    Manager,
    Worker(WorkerId),
    Dead,
    /// A pool's runs, read by its members.
    Pool(PoolName),
}

/// The names of a cluster's exchanges and queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    namespace: String,
    queue_type: QueueType,
}

impl Topology {
    pub fn new(namespace: impl Into<String>, queue_type: QueueType) -> Self {
        Topology {
            namespace: namespace.into(),
            queue_type,
        }
    }

    pub fn cmd_exchange(&self) -> String {
        format!("{}.cmd", self.namespace)
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    pub fn manager_queue(&self) -> String {
        format!("{}.manager", self.namespace)
    }

    pub fn pool_exchange(&self) -> String {
        format!("{}.pool", self.namespace)
    }

    pub fn pool_queue(&self, pool: &PoolName) -> String {
        format!("{}.pool.{}", self.namespace, pool)
    }

    pub fn worker_queue(&self, worker: &WorkerId) -> String {
        format!("{}.worker.{}", self.namespace, worker)
    }

    pub fn queue_name(&self, queue: &QueueRole) -> String {
        match queue {
            QueueRole::Manager => self.manager_queue(),
            QueueRole::Worker(worker) => self.worker_queue(worker),
            QueueRole::Dead => self.dead_queue(),
            QueueRole::Pool(pool) => self.pool_queue(pool),
        }
    }

    /// Declares a pool's queue and binds it (the manager, when it learns of the pool).
    pub(crate) async fn declare_pool(
        &self,
        connection: &Connection,
        pool: &PoolName,
    ) -> Result<(), BrokerError> {
        let channel = open_channel(connection).await?;
        let queue = self.pool_queue(pool);
        declare_queue(&channel, &queue, self.queue_arguments(true)).await?;
        bind(&channel, &queue, &self.pool_exchange(), pool.as_str()).await?;
        close_quietly(channel).await;
        Ok(())
    }

    /// Declares what `role` owns, on a fresh connection.
    pub(crate) async fn declare(
        &self,
        connection: &Connection,
        role: &Role,
    ) -> Result<(), BrokerError> {
        match role {
            Role::Manager => {
                let channel = open_channel(connection).await?;
                self.declare_shared(&channel).await?;
                close_quietly(channel).await;
                Ok(())
            }
            Role::Worker(worker) => {
                self.check_or_declare_shared(connection).await?;
                let channel = open_channel(connection).await?;
                let queue = self.worker_queue(worker);
                declare_queue(&channel, &queue, self.queue_arguments(true)).await?;
                channel
                    .queue_bind(
                        queue.as_str().into(),
                        self.cmd_exchange().as_str().into(),
                        worker.as_str().into(),
                        QueueBindOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(BrokerError::amqp("queue.bind"))?;
                close_quietly(channel).await;
                Ok(())
            }
            Role::Client => Ok(()),
        }
    }

    async fn declare_shared(&self, channel: &Channel) -> Result<(), BrokerError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        for (name, kind) in [
            (self.cmd_exchange(), ExchangeKind::Direct),
            (self.events_exchange(), ExchangeKind::Topic),
            (self.dead_exchange(), ExchangeKind::Fanout),
            (self.pool_exchange(), ExchangeKind::Direct),
        ] {
            channel
                .exchange_declare(name.as_str().into(), kind, durable, FieldTable::default())
                .await
                .map_err(BrokerError::amqp("exchange.declare"))?;
        }
        declare_queue(channel, &self.dead_queue(), self.queue_arguments(false)).await?;
        bind(channel, &self.dead_queue(), &self.dead_exchange(), "").await?;
        declare_queue(channel, &self.manager_queue(), self.queue_arguments(true)).await?;
        bind(channel, &self.manager_queue(), &self.events_exchange(), "#").await?;
        Ok(())
    }

    /// A worker checks that the manager declared the shared exchanges; where it may (plain
    /// mode), it declares what is missing itself.
    async fn check_or_declare_shared(&self, connection: &Connection) -> Result<(), BrokerError> {
        let channel = open_channel(connection).await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let mut missing = None;
        for (name, kind) in [
            (self.cmd_exchange(), ExchangeKind::Direct),
            (self.events_exchange(), ExchangeKind::Topic),
        ] {
            if let Err(err) = channel
                .exchange_declare(name.as_str().into(), kind, passive, FieldTable::default())
                .await
            {
                missing = Some(err);
                break;
            }
        }
        match missing {
            None => {
                close_quietly(channel).await;
                Ok(())
            }
            Some(passive_error) => {
                // The failed passive declare closed that channel; try declaring on a new one.
                let channel = open_channel(connection).await?;
                match self.declare_shared(&channel).await {
                    Ok(()) => {
                        close_quietly(channel).await;
                        Ok(())
                    }
                    Err(_) => Err(BrokerError::Amqp {
                        operation: "exchange.declare (passive): the manager has not declared the topology yet",
                        source: passive_error,
                    }),
                }
            }
        }
    }

    fn queue_arguments(&self, dead_letter: bool) -> FieldTable {
        let mut arguments = FieldTable::default();
        if dead_letter {
            arguments.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.dead_exchange().into()),
            );
        }
        if self.queue_type == QueueType::Quorum {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        arguments
    }
}

async fn open_channel(connection: &Connection) -> Result<Channel, BrokerError> {
    connection
        .create_channel()
        .await
        .map_err(BrokerError::amqp("channel.open"))
}

async fn close_quietly(channel: Channel) {
    let _ = channel.close(200, ShortString::from("done")).await;
}

async fn declare_queue(
    channel: &Channel,
    name: &str,
    arguments: FieldTable,
) -> Result<(), BrokerError> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), options, arguments)
        .await
        .map(|_| ())
        .map_err(BrokerError::amqp("queue.declare"))
}

async fn bind(
    channel: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
) -> Result<(), BrokerError> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(BrokerError::amqp("queue.bind"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_design() {
        let topology = Topology::new("tunasync", QueueType::Classic);
        let worker = WorkerId::new("w1").unwrap();
        assert_eq!(topology.cmd_exchange(), "tunasync.cmd");
        assert_eq!(topology.events_exchange(), "tunasync.events");
        assert_eq!(topology.dead_exchange(), "tunasync.dead");
        assert_eq!(topology.manager_queue(), "tunasync.manager");
        assert_eq!(topology.worker_queue(&worker), "tunasync.worker.w1");
        assert_eq!(topology.queue_name(&QueueRole::Dead), "tunasync.dead");
        let pool = PoolName::new("fast").unwrap();
        assert_eq!(topology.pool_exchange(), "tunasync.pool");
        assert_eq!(
            topology.queue_name(&QueueRole::Pool(pool)),
            "tunasync.pool.fast"
        );
    }
}
