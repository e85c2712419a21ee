//! [`AnyTransport`]: a transport chosen at run time (the test suites run one set of test
//! bodies over both; a tool could take either from its flags).

use super::{
    AmqpBroker, BrokerError, MemoryTransport, Outgoing, QueueRole, Subscription, Transport,
};
use crate::names::PoolName;

/// Either implementation of [`Transport`], delegating to it.
#[derive(Clone)]
pub enum AnyTransport {
    Amqp(AmqpBroker),
    Memory(MemoryTransport),
}

impl From<AmqpBroker> for AnyTransport {
    fn from(broker: AmqpBroker) -> Self {
        AnyTransport::Amqp(broker)
    }
}

impl From<MemoryTransport> for AnyTransport {
    fn from(transport: MemoryTransport) -> Self {
        AnyTransport::Memory(transport)
    }
}

impl Transport for AnyTransport {
    async fn publish(&self, message: Outgoing) -> Result<(), BrokerError> {
        match self {
            AnyTransport::Amqp(broker) => broker.publish(message).await,
            AnyTransport::Memory(transport) => transport.publish(message).await,
        }
    }

    async fn subscribe(
        &self,
        queue: QueueRole,
        prefetch: u16,
    ) -> Result<Subscription, BrokerError> {
        match self {
            AnyTransport::Amqp(broker) => broker.subscribe(queue, prefetch).await,
            AnyTransport::Memory(transport) => transport.subscribe(queue, prefetch).await,
        }
    }

    async fn declare_pool(&self, pool: &PoolName) -> Result<(), BrokerError> {
        match self {
            AnyTransport::Amqp(broker) => broker.declare_pool(pool).await,
            AnyTransport::Memory(transport) => transport.declare_pool(pool).await,
        }
    }

    fn is_connected(&self) -> bool {
        match self {
            AnyTransport::Amqp(broker) => broker.is_connected(),
            AnyTransport::Memory(transport) => transport.is_connected(),
        }
    }

    fn blocked(&self) -> Option<String> {
        match self {
            AnyTransport::Amqp(broker) => broker.blocked(),
            AnyTransport::Memory(transport) => transport.blocked(),
        }
    }
}
