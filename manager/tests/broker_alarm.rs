//! The manager under a RabbitMQ memory alarm: the broker stops reading from connections
//! that publish. Its own test binary: the alarm is the whole node's.
//!
//! Before, one connection both consumed and published: the first `welcome` published during
//! the alarm blocked that connection, and with it the acks, so the manager stopped at the
//! events the broker had already handed it (its prefetch) and stayed stuck.

mod common;

use common::{FakeWorker, Setup, TestManager, WAIT, wait_until_async};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tunasync_shared::broker::{AmqpBroker, Outgoing, Role, Transport};
use tunasync_shared::names::WorkerId;
use tunasync_shared::status::SyncStatus;
use tunasync_shared::testkit::{BrokerEnv, wait_until};
use tunasync_shared::wire::{EventEnvelope, SequenceSource};
use uuid::Uuid;

/// More events than the manager's prefetch, so that it must ack to get the rest.
const EVENTS: usize = tunasync_manager::ingest::PREFETCH as usize + 1000;

/// Sets a memory alarm on the node; lifts it when dropped (also when the test fails).
struct MemoryAlarm(BrokerEnv);

impl MemoryAlarm {
    fn raise(env: &BrokerEnv) -> MemoryAlarm {
        env.rabbitmqctl(&["set_vm_memory_high_watermark", "0.0001"]);
        MemoryAlarm(env.clone())
    }
}

impl Drop for MemoryAlarm {
    fn drop(&mut self) {
        // RabbitMQ's default watermark.
        self.0.rabbitmqctl(&["set_vm_memory_high_watermark", "0.4"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_alarm_does_not_stop_ingestion() {
    let manager = TestManager::start(Setup::default()).await;
    let stopped = manager.stop().await;
    let namespace = stopped.1.clone();
    // While the manager is down: a hello (its answer will be published during the alarm),
    // then more status events than the manager takes before it acks.
    let manager_env = BrokerEnv::get();
    let worker = FakeWorker::start("w1", manager_env.tls_config(&namespace)).await;
    worker.hello(&["m0"]).await;
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    let publisher = AmqpBroker::start(
        manager_env.tls_config(&namespace),
        Role::Client,
        shutdown.clone(),
    )
    .unwrap();
    publisher.wait_connected(WAIT).await.unwrap();
    let seq = SequenceSource::new();
    seq.advance_past(worker.seq.next());
    let mut publishing = JoinSet::new();
    for chunk in 0..50 {
        let envelopes: Vec<EventEnvelope> = (0..EVENTS / 50)
            .map(|idx| {
                let mirror = format!("m{}", chunk * (EVENTS / 50) + idx);
                let status = worker.status(&mirror, SyncStatus::Success, Uuid::new_v4(), None);
                EventEnvelope::new(WorkerId::new("w1").unwrap(), seq.next(), status)
            })
            .collect();
        let publisher = publisher.clone();
        publishing.spawn(async move {
            for envelope in envelopes {
                publisher.publish(Outgoing::event(&envelope)).await.unwrap();
            }
        });
    }
    while let Some(done) = publishing.join_next().await {
        done.unwrap();
    }

    let alarm = MemoryAlarm::raise(&manager_env);
    let manager = TestManager::start_unready(Setup::again(stopped)).await;
    wait_until_async(
        WAIT,
        "every event to be applied during the alarm",
        || async { manager.get_json("/jobs").await.as_array().unwrap().len() == EVENTS },
    )
    .await;
    wait_until_async(WAIT, "/readyz to say publishing is blocked", || async {
        let response = manager.get("/readyz").await;
        response.status() == 503
            && response
                .text()
                .await
                .unwrap()
                .contains("the broker blocks publishing")
    })
    .await;
    assert_eq!(
        worker.welcomes(),
        0,
        "nothing was published during the alarm"
    );

    drop(alarm);
    wait_until(WAIT, "the welcome, once the alarm is over", || {
        worker.welcomes() > 0
    })
    .await;
    wait_until_async(WAIT, "/readyz to be ready again", || async {
        manager.get("/readyz").await.status() == 200
    })
    .await;
}
