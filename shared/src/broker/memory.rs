//! The in-process implementation of [`Transport`], for `tunasync standalone` (the manager
//! and one worker in one process) and for logic tests: the same queues, routes and
//! acknowledgements as the broker's topology, held in memory.
//!
//! A [`MemoryBroker`] is the "broker": one per process. Each side gets its own
//! [`MemoryTransport`] from [`MemoryBroker::connect`], which declares what its [`Role`]
//! owns (a worker: its command queue), as the AMQP side does on every connect.
//!
//! What it keeps of RabbitMQ's behaviour, so that code above it cannot tell the difference:
//! - routes: events go to the manager's queue; a command to its worker's queue, or
//!   [`BrokerError::Unroutable`] when that worker never connected; a pool run to its pool's
//!   queue (declared by the manager or by a member subscribing), else unroutable;
//! - per-consumer prefetch; messages shared round-robin among a queue's consumers;
//! - manual acknowledgements (`ack`, `ack` of everything up to a message, `requeue` with
//!   `redelivered` set, `dead_letter` into the dead-letter queue); a dropped subscription's
//!   unacknowledged messages go back to the front of their queue, redelivered;
//! - per-message expiration: an expired message is dead-lettered instead of delivered.
//!
//! One difference, on purpose: nothing here survives the process, so an event's publish
//! returns only once the manager has **acknowledged** it, which it does after committing
//! it to the store. A worker's outbox keeps an event until then, so what a worker was told
//! is delivered is in the store, as with the broker's confirms. Commands and pool runs are
//! confirmed when queued, as by the broker (a crash loses them, as it loses the process
//! that waits for their answers).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::subscription::{Acker, DropHook};
use super::{BrokerError, Incoming, Outgoing, QueueRole, Role, Route, Subscription, Transport};
use crate::names::PoolName;

/// Dead-lettered messages kept (the oldest go first): nothing consumes them but an operator
/// or a test, and the manager logs each one it dead-letters.
pub const DEAD_CAPACITY: usize = 1000;

/// The prefetch of a subscription that asked for 0 ("no limit" in AMQP).
const UNLIMITED_PREFETCH: usize = 1024;

/// The queues of one process. Cheap to clone; every clone is the same broker.
#[derive(Clone, Default)]
pub struct MemoryBroker {
    hub: Arc<Hub>,
}

impl std::fmt::Debug for MemoryBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBroker").finish_non_exhaustive()
    }
}

/// One side's handle on a [`MemoryBroker`].
#[derive(Clone, Debug)]
pub struct MemoryTransport {
    broker: MemoryBroker,
    /// The sender identity stamped on what this side publishes (a worker's id: in-process,
    /// nobody can claim another's).
    user_id: Option<String>,
}

#[derive(Default)]
struct Hub {
    state: Mutex<Queues>,
}

#[derive(Default)]
struct Queues {
    queues: HashMap<QueueRole, Queue>,
    next_consumer: u64,
    closed: bool,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Message>,
    consumers: Vec<Consumer>,
    /// Where the round-robin over consumers starts next.
    turn: usize,
}

struct Consumer {
    id: u64,
    prefetch: usize,
    sender: mpsc::Sender<Incoming>,
    /// Delivered, not yet acknowledged, by delivery tag.
    unacked: BTreeMap<u64, Message>,
    next_tag: u64,
}

struct Message {
    payload: Vec<u8>,
    kind: String,
    message_id: String,
    user_id: Option<String>,
    routing_key: String,
    redelivered: bool,
    expires_at: Option<Instant>,
    /// Told when the message is done with (acknowledged or dead-lettered): an event's
    /// publisher waits for it.
    settled: Option<oneshot::Sender<()>>,
}

impl Message {
    fn settle(&mut self) {
        if let Some(settled) = self.settled.take() {
            let _ = settled.send(());
        }
    }
}

/// What an acknowledgement does to a delivered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settle {
    Ack { multiple: bool },
    Requeue,
    DeadLetter,
}

/// Where a delivered message is, for its acknowledgement.
#[derive(Clone)]
pub(crate) struct MemoryAcker {
    hub: Arc<Hub>,
    queue: QueueRole,
    consumer: u64,
    tag: u64,
}

impl std::fmt::Debug for MemoryAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryAcker")
            .field("queue", &self.queue)
            .field("consumer", &self.consumer)
            .field("tag", &self.tag)
            .finish()
    }
}

impl MemoryAcker {
    /// The consumer the message was delivered to: a `multiple` ack reaches only its messages.
    pub(crate) fn channel_key(&self) -> (u64, u16) {
        (self.consumer, 0)
    }

    pub(crate) fn settle(&self, how: Settle) -> Result<(), BrokerError> {
        self.hub.settle(&self.queue, self.consumer, self.tag, how)
    }
}

impl MemoryBroker {
    pub fn new() -> Self {
        Self::default()
    }

    /// A handle for `role`, after declaring what it owns.
    pub fn connect(&self, role: &Role) -> MemoryTransport {
        let user_id = match role {
            Role::Worker(worker) => {
                self.hub.lock().declare(QueueRole::Worker(worker.clone()));
                Some(worker.to_string())
            }
            Role::Manager | Role::Client => None,
        };
        MemoryTransport {
            broker: self.clone(),
            user_id,
        }
    }

    /// Ends every subscription (their `next` returns `None`) and refuses further publishes:
    /// the end of the process's life. Messages not yet acknowledged are dropped with it.
    pub fn close(&self) {
        let mut state = self.hub.lock();
        state.closed = true;
        for queue in state.queues.values_mut() {
            queue.consumers.clear();
            queue.ready.clear();
        }
    }

    /// How many messages wait in `queue`, delivered or not (for tests and logs).
    pub fn depth(&self, queue: &QueueRole) -> usize {
        let state = self.hub.lock();
        state.queues.get(queue).map_or(0, |queue| {
            queue.ready.len()
                + queue
                    .consumers
                    .iter()
                    .map(|consumer| consumer.unacked.len())
                    .sum::<usize>()
        })
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn settle(
        self: &Arc<Self>,
        queue: &QueueRole,
        consumer: u64,
        tag: u64,
        how: Settle,
    ) -> Result<(), BrokerError> {
        let mut state = self.lock();
        if state.closed {
            return Err(BrokerError::Closed);
        }
        let Some(owner) = state
            .queues
            .get_mut(queue)
            .and_then(|queue| queue.consumers.iter_mut().find(|c| c.id == consumer))
        else {
            // The subscription was dropped: its messages went back to the queue, as after a
            // lost channel.
            return Err(BrokerError::Closed);
        };
        let mut taken: Vec<Message> = match how {
            Settle::Ack { multiple: true } => {
                let later = owner.unacked.split_off(&(tag + 1));
                std::mem::replace(&mut owner.unacked, later)
                    .into_values()
                    .collect()
            }
            _ => owner.unacked.remove(&tag).into_iter().collect(),
        };
        match how {
            Settle::Ack { .. } => taken.iter_mut().for_each(Message::settle),
            Settle::Requeue => {
                if let Some(queue) = state.queues.get_mut(queue) {
                    for mut message in taken.into_iter().rev() {
                        message.redelivered = true;
                        queue.ready.push_front(message);
                    }
                }
            }
            Settle::DeadLetter => {
                for message in taken {
                    state.dead_letter(self, queue, message);
                }
            }
        }
        state.pump(self, queue);
        Ok(())
    }
}

impl Queues {
    fn declare(&mut self, queue: QueueRole) -> &mut Queue {
        self.queues.entry(queue).or_default()
    }

    /// Moves `message` to the dead-letter queue (a message dead-lettered from there is
    /// dropped, as the broker's dead queue has no dead-letter exchange of its own).
    fn dead_letter(&mut self, hub: &Arc<Hub>, from: &QueueRole, mut message: Message) {
        message.settle();
        if *from == QueueRole::Dead {
            return;
        }
        message.expires_at = None;
        message.redelivered = false;
        let dead = self.declare(QueueRole::Dead);
        if dead.ready.len() >= DEAD_CAPACITY {
            dead.ready.pop_front();
        }
        dead.ready.push_back(message);
        self.pump(hub, &QueueRole::Dead);
    }

    /// Delivers what waits in `role`'s queue to its consumers, as far as their prefetch
    /// allows; dead-letters what expired; takes back what dropped consumers held.
    fn pump(&mut self, hub: &Arc<Hub>, role: &QueueRole) {
        let mut expired = Vec::new();
        if let Some(queue) = self.queues.get_mut(role) {
            queue.take_back_from_dropped();
            let now = Instant::now();
            while let Some(front) = queue.ready.front() {
                if front.expires_at.is_some_and(|at| at <= now) {
                    expired.extend(queue.ready.pop_front());
                    continue;
                }
                let Some(idx) = queue.free_consumer() else {
                    break;
                };
                let Some(message) = queue.ready.pop_front() else {
                    break;
                };
                let consumer = &mut queue.consumers[idx];
                let tag = consumer.next_tag;
                consumer.next_tag += 1;
                let incoming = Incoming {
                    payload: message.payload.clone(),
                    kind: Some(message.kind.clone()),
                    message_id: Some(message.message_id.clone()),
                    user_id: message.user_id.clone(),
                    routing_key: message.routing_key.clone(),
                    redelivered: message.redelivered,
                    acker: Acker::Memory(MemoryAcker {
                        hub: Arc::clone(hub),
                        queue: role.clone(),
                        consumer: consumer.id,
                        tag,
                    }),
                };
                match consumer.sender.try_send(incoming) {
                    Ok(()) => {
                        consumer.unacked.insert(tag, message);
                    }
                    Err(_) => {
                        // Its receiver is gone (or, which the prefetch rules out, full):
                        // the message waits for another consumer.
                        queue.ready.push_front(message);
                        queue.take_back_from_dropped();
                        if queue.consumers.is_empty() {
                            break;
                        }
                    }
                }
            }
        }
        for message in expired {
            self.dead_letter(hub, role, message);
        }
    }
}

impl Queue {
    /// A consumer with room under its prefetch, taking turns.
    fn free_consumer(&mut self) -> Option<usize> {
        let n = self.consumers.len();
        let idx = (0..n)
            .map(|offset| (self.turn + offset) % n)
            .find(|&idx| self.consumers[idx].unacked.len() < self.consumers[idx].prefetch)?;
        self.turn = (idx + 1) % n;
        Some(idx)
    }

    /// What consumers whose subscription was dropped held goes back to the front of the
    /// queue, in order, marked redelivered (as the broker does when a channel closes).
    fn take_back_from_dropped(&mut self) {
        let mut returned: Vec<Message> = Vec::new();
        self.consumers.retain_mut(|consumer| {
            if !consumer.sender.is_closed() {
                return true;
            }
            returned.extend(std::mem::take(&mut consumer.unacked).into_values());
            false
        });
        for mut message in returned.into_iter().rev() {
            message.redelivered = true;
            self.ready.push_front(message);
        }
        if self.turn >= self.consumers.len() {
            self.turn = 0;
        }
    }
}

impl MemoryTransport {
    /// The broker this handle is on.
    pub fn broker(&self) -> &MemoryBroker {
        &self.broker
    }

    /// Queues `message` where its route leads; returns what tells when an event is settled.
    fn enqueue(&self, message: &Outgoing) -> Result<Option<oneshot::Receiver<()>>, BrokerError> {
        let hub = &self.broker.hub;
        let mut state = hub.lock();
        if state.closed {
            return Err(BrokerError::Closed);
        }
        let (target, routing_key) = match &message.route {
            Route::Event { routing_key } => (QueueRole::Manager, routing_key.clone()),
            Route::Command { worker } => (QueueRole::Worker(worker.clone()), worker.to_string()),
            Route::Pool { pool } => (QueueRole::Pool(pool.clone()), pool.to_string()),
        };
        let declared = matches!(target, QueueRole::Manager) || state.queues.contains_key(&target);
        if !declared {
            return Err(BrokerError::Unroutable);
        }
        let (settled, confirmed) = match message.route {
            Route::Event { .. } => {
                let (sender, receiver) = oneshot::channel();
                (Some(sender), Some(receiver))
            }
            Route::Command { .. } | Route::Pool { .. } => (None, None),
        };
        state.declare(target.clone()).ready.push_back(Message {
            payload: message.payload.clone(),
            kind: message.kind.to_owned(),
            message_id: message.message_id.to_string(),
            user_id: self.user_id.clone(),
            routing_key,
            redelivered: false,
            expires_at: message.expiration.map(|after| Instant::now() + after),
            settled,
        });
        state.pump(hub, &target);
        Ok(confirmed)
    }
}

impl Transport for MemoryTransport {
    async fn publish(&self, message: Outgoing) -> Result<(), BrokerError> {
        match self.enqueue(&message)? {
            // Dropped unsettled: the broker was closed with it in a queue.
            Some(settled) => settled.await.map_err(|_| BrokerError::Closed),
            None => Ok(()),
        }
    }

    async fn subscribe(
        &self,
        queue: QueueRole,
        prefetch: u16,
    ) -> Result<Subscription, BrokerError> {
        let prefetch = match usize::from(prefetch) {
            0 => UNLIMITED_PREFETCH,
            n => n,
        };
        let (sender, receiver) = mpsc::channel(prefetch);
        let hub = &self.broker.hub;
        let mut state = hub.lock();
        if state.closed {
            return Err(BrokerError::Closed);
        }
        let id = state.next_consumer;
        state.next_consumer += 1;
        state.declare(queue.clone()).consumers.push(Consumer {
            id,
            prefetch,
            sender,
            unacked: BTreeMap::new(),
            next_tag: 1,
        });
        state.pump(hub, &queue);
        drop(state);
        // A dropped subscription's messages go back to the queue at once, for its other
        // consumers or the next one.
        let hub = Arc::clone(hub);
        Ok(
            Subscription::new(receiver).on_drop(DropHook(Box::new(move || {
                hub.lock().pump(&hub, &queue);
            }))),
        )
    }

    async fn declare_pool(&self, pool: &PoolName) -> Result<(), BrokerError> {
        let mut state = self.broker.hub.lock();
        if state.closed {
            return Err(BrokerError::Closed);
        }
        state.declare(QueueRole::Pool(pool.clone()));
        Ok(())
    }

    fn is_connected(&self) -> bool {
        !self.broker.hub.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use uuid::Uuid;

    use super::*;
    use crate::broker::ack_batch;
    use crate::names::WorkerId;

    fn worker(name: &str) -> WorkerId {
        WorkerId::new(name).unwrap()
    }

    fn message(route: Route, n: u128) -> Outgoing {
        Outgoing {
            route,
            kind: "test",
            message_id: Uuid::from_u128(n),
            payload: n.to_string().into_bytes(),
            expiration: None,
        }
    }

    fn event(n: u128) -> Outgoing {
        message(
            Route::Event {
                routing_key: "w1.status".to_owned(),
            },
            n,
        )
    }

    fn command(to: &str, n: u128) -> Outgoing {
        message(Route::Command { worker: worker(to) }, n)
    }

    async fn next(subscription: &mut Subscription) -> Incoming {
        tokio::time::timeout(Duration::from_secs(5), subscription.next())
            .await
            .expect("a delivery within 5 s")
            .expect("the subscription is open")
    }

    #[tokio::test]
    async fn an_event_is_confirmed_once_the_manager_acknowledged_it() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        let worker = broker.connect(&Role::Worker(worker("w1")));
        let mut events = manager.subscribe(QueueRole::Manager, 10).await.unwrap();
        let publish = tokio::spawn({
            let worker = worker.clone();
            async move { worker.publish(event(1)).await }
        });
        let incoming = next(&mut events).await;
        assert_eq!(incoming.payload, b"1");
        assert_eq!(incoming.user_id.as_deref(), Some("w1"));
        assert_eq!(incoming.routing_key, "w1.status");
        assert_eq!(incoming.kind.as_deref(), Some("test"));
        assert!(!incoming.redelivered);
        // Not confirmed while unacknowledged: a requeue delivers it again, still pending.
        incoming.requeue().await.unwrap();
        let again = next(&mut events).await;
        assert!(again.redelivered);
        assert!(!publish.is_finished());
        again.ack().await.unwrap();
        publish.await.unwrap().unwrap();
        assert_eq!(broker.depth(&QueueRole::Manager), 0);
    }

    #[tokio::test]
    async fn commands_reach_only_workers_that_connected() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        assert!(matches!(
            manager.publish(command("w1", 1)).await,
            Err(BrokerError::Unroutable)
        ));
        let w1 = broker.connect(&Role::Worker(worker("w1")));
        // Confirmed when queued, before anyone consumes.
        manager.publish(command("w1", 2)).await.unwrap();
        let mut commands = w1
            .subscribe(QueueRole::Worker(worker("w1")), 1)
            .await
            .unwrap();
        let incoming = next(&mut commands).await;
        assert_eq!(incoming.payload, b"2");
        assert_eq!(incoming.routing_key, "w1");
        assert_eq!(incoming.user_id, None);
        incoming.ack().await.unwrap();
    }

    #[tokio::test]
    async fn prefetch_bounds_what_is_in_flight_and_batches_ack_up_to_a_message() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        let _w1 = broker.connect(&Role::Worker(worker("w1")));
        for n in 1..=5 {
            manager.publish(command("w1", n)).await.unwrap();
        }
        let mut commands = manager
            .subscribe(QueueRole::Worker(worker("w1")), 2)
            .await
            .unwrap();
        let first = vec![next(&mut commands).await, next(&mut commands).await];
        assert!(
            commands.try_next().is_none(),
            "a third is held back by the prefetch"
        );
        ack_batch(&first).await.unwrap();
        let second = [next(&mut commands).await, next(&mut commands).await];
        assert_eq!(second[0].payload, b"3");
        // An ack of the later one acknowledges both (a `multiple` ack).
        second[1].ack_up_to().await.unwrap();
        assert_eq!(next(&mut commands).await.payload, b"5");
        assert_eq!(broker.depth(&QueueRole::Worker(worker("w1"))), 1);
    }

    #[tokio::test]
    async fn dead_lettered_and_expired_messages_go_to_the_dead_queue() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        let w1 = broker.connect(&Role::Worker(worker("w1")));
        let mut dead = manager.subscribe(QueueRole::Dead, 10).await.unwrap();
        let mut events = manager.subscribe(QueueRole::Manager, 10).await.unwrap();

        // A malformed event: dead-lettered, and its publisher's wait ends.
        let publish = tokio::spawn({
            let w1 = w1.clone();
            async move { w1.publish(event(7)).await }
        });
        next(&mut events).await.dead_letter().await.unwrap();
        publish.await.unwrap().unwrap();
        let corpse = next(&mut dead).await;
        assert_eq!(corpse.payload, b"7");
        assert_eq!(corpse.routing_key, "w1.status");

        // A command that waited past its expiration is dead-lettered, not delivered.
        let mut expired = command("w1", 8);
        expired.expiration = Some(Duration::ZERO);
        manager.publish(expired).await.unwrap();
        manager.publish(command("w1", 9)).await.unwrap();
        let mut commands = w1
            .subscribe(QueueRole::Worker(worker("w1")), 10)
            .await
            .unwrap();
        assert_eq!(next(&mut commands).await.payload, b"9");
        assert_eq!(next(&mut dead).await.payload, b"8");
    }

    #[tokio::test]
    async fn a_dropped_subscription_gives_back_what_it_held() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        let w1 = broker.connect(&Role::Worker(worker("w1")));
        let queue = QueueRole::Worker(worker("w1"));
        manager.publish(command("w1", 1)).await.unwrap();
        manager.publish(command("w1", 2)).await.unwrap();
        let mut first = w1.subscribe(queue.clone(), 10).await.unwrap();
        let held = next(&mut first).await;
        drop(first);
        // Acknowledging on a dropped subscription fails, as on a closed channel.
        assert!(held.ack().await.is_err());
        let mut second = w1.subscribe(queue, 10).await.unwrap();
        let again = next(&mut second).await;
        assert_eq!(again.payload, b"1");
        assert!(again.redelivered);
        assert_eq!(next(&mut second).await.payload, b"2");
    }

    #[tokio::test]
    async fn a_pool_queue_is_shared_among_its_members() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        let pool = PoolName::new("p").unwrap();
        let run = |n| message(Route::Pool { pool: pool.clone() }, n);
        assert!(matches!(
            manager.publish(run(1)).await,
            Err(BrokerError::Unroutable)
        ));
        manager.declare_pool(&pool).await.unwrap();
        let a = broker.connect(&Role::Worker(worker("a")));
        let b = broker.connect(&Role::Worker(worker("b")));
        let mut at_a = a.subscribe(QueueRole::Pool(pool.clone()), 1).await.unwrap();
        let mut at_b = b.subscribe(QueueRole::Pool(pool.clone()), 1).await.unwrap();
        manager.publish(run(2)).await.unwrap();
        manager.publish(run(3)).await.unwrap();
        manager.publish(run(4)).await.unwrap();
        let got_a = next(&mut at_a).await;
        let got_b = next(&mut at_b).await;
        assert_ne!(got_a.payload, got_b.payload);
        // The third waits for a member with room.
        assert!(at_a.try_next().is_none() && at_b.try_next().is_none());
        got_b.ack().await.unwrap();
        assert_eq!(next(&mut at_b).await.payload, b"4");
    }

    #[tokio::test]
    async fn closing_ends_subscriptions_and_pending_publishes() {
        let broker = MemoryBroker::new();
        let manager = broker.connect(&Role::Manager);
        let w1 = broker.connect(&Role::Worker(worker("w1")));
        let mut events = manager.subscribe(QueueRole::Manager, 10).await.unwrap();
        let publish = tokio::spawn({
            let w1 = w1.clone();
            async move { w1.publish(event(1)).await }
        });
        let _unacked = next(&mut events).await;
        assert!(manager.is_connected());
        broker.close();
        assert!(matches!(publish.await.unwrap(), Err(BrokerError::Closed)));
        assert!(events.next().await.is_none());
        assert!(!w1.is_connected());
        assert!(matches!(
            w1.publish(event(2)).await,
            Err(BrokerError::Closed)
        ));
    }
}
